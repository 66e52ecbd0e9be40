/*
 * test/storage/log_basic.c - the partition log (lib/storage/storage.h) on a
 * healthy disk: append/read, segments and rolling, reopen, offset_for_time,
 * truncate_to, the directory lock, argument checking, index files, the
 * durability policies, and concurrent appenders and readers.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>

#include <inttypes.h>
#include <sys/stat.h>

#include "util.h"

TestSuite(log_basic, .init = tu_setup, .fini = tu_teardown, .timeout = 120);

/* ---- append and read ------------------------------------------------------- */

Test(log_basic, append_read_roundtrip)
{
    ks_log *log = tu_log_open(tu_io, tu_dir, NULL);
    cr_assert_eq(ks_log_start_offset(log), 0);
    cr_assert_eq(ks_log_end_offset(log), 0);
    tu_rng rng = { 1 };
    int64_t end = 0;
    for (int call = 0; call < 60; call++) {
        /* 1..5 batches per call, 1..20 records each */
        unsigned nb = (unsigned)tu_range(&rng, 1, 5);
        tu_batch b[5];
        ks_batch kb[5];
        int64_t seq = end;
        for (unsigned i = 0; i < nb; i++) {
            int n = (int)tu_range(&rng, 1, 20);
            tu_build(&b[i], (uint64_t)seq, n);
            seq += n;
            kb[i] = (ks_batch){ .batch = b[i].buf, .len = b[i].len };
        }
        int rc = ks_log_append(log, kb, nb, 0);
        cr_assert_eq(rc, 0, "append: %s", klog_strerror(rc));
        for (unsigned i = 0; i < nb; i++) {
            cr_assert_eq(kb[i].result, 0);
            /* dense and increasing: each batch starts where the last ended */
            cr_assert_eq(kb[i].base_offset, end, "batch %u of call %d at %lld, expected %lld", i, call,
                         (long long)kb[i].base_offset, (long long)end);
            end += b[i].n;
            tu_batch_free(&b[i]);
        }
        cr_assert_eq(ks_log_end_offset(log), end);
    }
    tu_expect_identity(log, end);
    /* reading at the end is empty, past it is out of range */
    ks_view v;
    cr_assert_eq(ks_log_read(log, end, 4096, &v), 0);
    cr_assert_eq(v.len, 0);
    ks_view_release(&v);
    cr_assert_eq(ks_log_read(log, end + 1, 4096, &v), KLOG_EOFFSET);
    cr_assert_eq(ks_log_read(log, -1, 4096, &v), KLOG_EOFFSET);
    tu_log_close(log);
}

/* Every offset reads back as the batch that holds it, across segments. */
Test(log_basic, read_every_offset)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_rng rng = { 2 };
    /* batch boundaries, to know which batch holds which offset */
    int64_t bases[1000];
    int nbat = 0;
    while (ks_log_end_offset(log) < 1500) {
        bases[nbat++] = ks_log_end_offset(log);
        tu_append_seq(log, (int)tu_range(&rng, 1, 9), 0);
    }
    bases[nbat] = ks_log_end_offset(log);
    cr_assert_gt(ks_log_segment_count(log), 3);
    int bi = 0;
    for (int64_t o = 0; o < bases[nbat]; o++) {
        while (bases[bi + 1] <= o)
            bi++;
        for (int pass = 0; pass < 2; pass++) {
            size_t max = pass == 0 ? 1 : 3000;
            ks_view v;
            int rc = ks_log_read(log, o, max, &v);
            cr_assert_eq(rc, 0, "read %lld: %s", (long long)o, klog_strerror(rc));
            cr_assert_eq(v.first_offset, bases[bi], "read %lld: first %lld, batch starts at %lld",
                         (long long)o, (long long)v.first_offset, (long long)bases[bi]);
            cr_assert_gt(v.next_offset, o);
            cr_assert_gt(v.len, 0);
            if (pass == 0) {
                /* max_bytes 1: exactly the one batch */
                cr_assert_eq(v.next_offset, bases[bi + 1]);
            } else {
                cr_assert_leq(v.len, 3000);
            }
            tu_content c = { 0 };
            int64_t next = v.first_offset;
            rc = tu_decode_view(&v, &next, &c);
            cr_assert_eq(rc, 0, "decode view at %lld: %d", (long long)o, rc);
            for (size_t i = 0; i < c.n; i++) {
                cr_assert(c.r[i].ok);
                cr_assert_eq(c.r[i].seq, (uint64_t)c.r[i].offset);
            }
            tu_content_free(&c);
            ks_view_release(&v);
            ks_view_release(&v); /* idempotent */
        }
    }
    tu_log_close(log);
}

/* Small segments: the log rolls, files are named by base offset, sealed
 * segments get index files, and sizes add up. */
Test(log_basic, segments_roll)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_rng rng = { 3 };
    unsigned segs = 1;
    while (ks_log_segment_count(log) < 6) {
        tu_append_seq(log, (int)tu_range(&rng, 1, 12), 0);
        unsigned now = ks_log_segment_count(log);
        cr_assert(now == segs || now == segs + 1, "segment count jumped from %u to %u", segs, now);
        segs = now;
    }
    int64_t end = ks_log_end_offset(log);
    tu_name names[64];
    size_t n = tu_list(tu_dir, ".log", names, 64);
    cr_assert_eq(n, ks_log_segment_count(log));
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char p[TU_PATH];
        tu_path(p, tu_dir, names[i]);
        off_t sz = tu_fsize(p);
        total += (uint64_t)sz;
        cr_assert_leq(sz, (off_t)cfg.segment_bytes, "%s is %lld bytes", names[i], (long long)sz);
        long long base = strtoll(names[i], NULL, 10);
        /* the file name is the base offset of its first batch */
        ks_view v;
        cr_assert_eq(ks_log_read(log, base, 1, &v), 0);
        cr_assert_eq(v.first_offset, base, "%s: first batch at %lld", names[i], (long long)v.first_offset);
        ks_view_release(&v);
        if (i + 1 < n) {
            char ix[TU_PATH];
            snprintf(ix, sizeof ix, "%s/%020lld.index", tu_dir, base);
            cr_assert(tu_exists(ix), "sealed segment %s has no .index", names[i]);
            snprintf(ix, sizeof ix, "%s/%020lld.timeindex", tu_dir, base);
            cr_assert(tu_exists(ix), "sealed segment %s has no .timeindex", names[i]);
        }
    }
    cr_assert_eq(ks_log_size_bytes(log), total);
    tu_expect_identity(log, end);
    tu_log_close(log);
}

/* Segment age comes from the injected clock (and the first batch's
 * timestamp, as in Kafka). */
static int64_t test_clock;
static int64_t clock_fn(void *arg)
{
    (void)arg;
    return test_clock;
}

/* Append 3 records stamped ts, with the clock at `now`. */
static void append_stamped(ks_log *log, int64_t now, int64_t stamp)
{
    test_clock = now;
    int64_t ts[3] = { stamp, stamp, stamp };
    int64_t end = ks_log_end_offset(log), base;
    tu_batch b;
    tu_build_ts(&b, (uint64_t)end, 3, ts);
    int rc = tu_append1(log, &b, 0, &base);
    cr_assert_eq(rc, 0, "append: %s", klog_strerror(rc));
    cr_assert_eq(base, end);
    tu_batch_free(&b);
}

static void append_at(ks_log *log, int64_t now) { append_stamped(log, now, now); }

/* Records stamped long ago (a replay, a mirror of old data, readings
 * forwarded after days offline) roll by their own timestamps, as Kafka's
 * segment.ms does, not one segment per batch against the clock; the tick
 * rolls such a segment once it has been active segment.ms. */
Test(log_basic, old_timestamps_do_not_roll_every_batch)
{
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.segment_ms = 1000;
    cfg.clock_ms = clock_fn;
    const int64_t t0 = 1700000000000ll, old = t0 - 30ll * 86400 * 1000;
    test_clock = t0;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    for (int i = 0; i < 20; i++)
        append_stamped(log, t0 + i * 10, old + i * 10);
    cr_assert_eq(ks_log_segment_count(log), 1, "records of 30 days ago rolled %zu segments",
                 (size_t)ks_log_segment_count(log));
    /* their own timestamps 1000 ms apart: a roll */
    append_stamped(log, t0 + 200, old + 1000);
    cr_assert_eq(ks_log_segment_count(log), 2);
    /* the tick: by the clock, from when the segment became active */
    test_clock = t0 + 1199;
    cr_assert_eq(ks_log_tick(log), 0);
    cr_assert_eq(ks_log_segment_count(log), 2);
    test_clock = t0 + 1200;
    cr_assert_eq(ks_log_tick(log), 0);
    cr_assert_eq(ks_log_segment_count(log), 3, "tick did not roll a segment active for 1000 ms");
    tu_expect_identity(log, 63);
    tu_log_close(log);
}

Test(log_basic, roll_by_age)
{
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.segment_ms = 1000;
    cfg.clock_ms = clock_fn;
    const int64_t t0 = 1700000000000ll;
    test_clock = t0;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    append_at(log, t0);
    append_at(log, t0 + 500);
    append_at(log, t0 + 999);
    cr_assert_eq(ks_log_segment_count(log), 1, "rolled before the segment was 1000 ms old");
    append_at(log, t0 + 1000);
    cr_assert_eq(ks_log_segment_count(log), 2, "did not roll a 1000 ms old segment");
    /* the new segment starts with the batch that triggered the roll */
    char p[TU_PATH];
    snprintf(p, sizeof p, "%s/%020d.log", tu_dir, 9);
    cr_assert(tu_exists(p), "no segment file at base 9");
    /* ks_log_tick rolls an aged segment without an append */
    test_clock = t0 + 1500;
    cr_assert_eq(ks_log_tick(log), 0);
    cr_assert_eq(ks_log_segment_count(log), 2);
    test_clock = t0 + 2000;
    cr_assert_eq(ks_log_tick(log), 0);
    cr_assert_eq(ks_log_segment_count(log), 3, "tick did not roll the aged segment");
    /* an empty segment never rolls, however old */
    test_clock = t0 + 10000;
    cr_assert_eq(ks_log_tick(log), 0);
    cr_assert_eq(ks_log_segment_count(log), 3);
    append_at(log, t0 + 10000);
    cr_assert_eq(ks_log_segment_count(log), 3);
    tu_expect_identity(log, 15);
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_expect_identity(log, 15);
    tu_log_close(log);
}

/* A clean close and reopen keeps end, start and content; appends continue. */
Test(log_basic, reopen_preserves_everything)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_rng rng = { 4 };
    for (int i = 0; i < 80; i++)
        tu_append_seq(log, (int)tu_range(&rng, 1, 10), 0);
    int64_t end = ks_log_end_offset(log), start = ks_log_start_offset(log);
    unsigned segs = ks_log_segment_count(log);
    uint64_t size = ks_log_size_bytes(log);
    cr_assert_gt(segs, 2);
    tu_log_close(log);
    for (int round = 0; round < 3; round++) {
        log = tu_log_open(tu_io, tu_dir, &cfg);
        cr_assert_eq(ks_log_end_offset(log), end);
        cr_assert_eq(ks_log_start_offset(log), start);
        cr_assert_eq(ks_log_durable_offset(log), end);
        cr_assert_eq(ks_log_segment_count(log), segs);
        cr_assert_eq(ks_log_size_bytes(log), size);
        tu_expect_identity(log, end);
        tu_append_seq(log, 4, 0);
        end += 4;
        segs = ks_log_segment_count(log);
        size = ks_log_size_bytes(log);
        tu_log_close(log);
    }
    /* the same through a read-only open */
    ks_log_config ro = cfg;
    ro.read_only = true;
    log = tu_log_open(tu_io, tu_dir, &ro);
    cr_assert_eq(ks_log_end_offset(log), end);
    tu_expect_identity(log, end);
    tu_log_close(log);
}

/* ---- offset_for_time ------------------------------------------------------- */

/* Brute force: the first record with timestamp >= ts, or the end. */
static int64_t scan_for_time(const tu_content *c, int64_t ts)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->r[i].ts >= ts)
            return c->r[i].offset;
    return c->end;
}

/* Timestamps around 10 ms per record, jittered so they are not monotonic
 * (within and across batches). */
static void fill_jittered(ks_log *log, tu_rng *rng, int batches)
{
    for (int k = 0; k < batches; k++) {
        int n = (int)tu_range(rng, 1, 8);
        int64_t end = ks_log_end_offset(log), ts[8], base;
        for (int i = 0; i < n; i++)
            ts[i] = 1000000 + (end + i) * 10 + (int64_t)tu_range(rng, 0, 60) - 30;
        if (k % 17 == 5)
            ts[0] -= 400; /* a record far in the past */
        tu_batch b;
        tu_build_ts(&b, (uint64_t)end, n, ts);
        cr_assert_eq(tu_append1(log, &b, 0, &base), 0);
        tu_batch_free(&b);
    }
}

static void check_time_lookups(ks_log *log)
{
    tu_content c;
    cr_assert_eq(tu_read_all(log, &c), 0);
    int64_t probes[] = { INT64_MIN, -1, 0, 999000, INT64_MAX, 1000000 + c.end * 10 + 1000 };
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        int64_t got = -7;
        cr_assert_eq(ks_log_offset_for_time(log, probes[i], &got), 0);
        cr_assert_eq(got, scan_for_time(&c, probes[i]), "ts %lld: got %lld, scan says %lld",
                     (long long)probes[i], (long long)got, (long long)scan_for_time(&c, probes[i]));
    }
    for (size_t i = 0; i < c.n; i++) {
        for (int64_t d = -1; d <= 1; d++) {
            int64_t ts = c.r[i].ts + d, got = -7;
            cr_assert_eq(ks_log_offset_for_time(log, ts, &got), 0);
            cr_assert_eq(got, scan_for_time(&c, ts), "ts %lld: got %lld, scan says %lld",
                         (long long)ts, (long long)got, (long long)scan_for_time(&c, ts));
        }
    }
    tu_content_free(&c);
}

Test(log_basic, offset_for_time_matches_scan)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    int64_t got = -7;
    cr_assert_eq(ks_log_offset_for_time(log, 0, &got), 0);
    cr_assert_eq(got, 0, "empty log: offset_for_time must give the end offset");
    tu_rng rng = { 5 };
    fill_jittered(log, &rng, 120);
    cr_assert_gt(ks_log_segment_count(log), 3);
    check_time_lookups(log);
    tu_log_close(log);
    /* again with the indexes loaded from disk */
    log = tu_log_open(tu_io, tu_dir, &cfg);
    check_time_lookups(log);
    tu_log_close(log);
}

/* ---- truncate_to ----------------------------------------------------------- */

typedef struct tlog {
    int64_t bases[512]; /* batch base offsets, then the end */
    int nbat;
    int64_t segbase[64];
    int nseg;
} tlog;

/* Three records per batch, seq == offset; several segments. */
static ks_log *make_tlog(const char *dir, const ks_log_config *cfg, tlog *t)
{
    ks_log *log = tu_log_open(tu_io, dir, cfg);
    t->nbat = 0;
    while (ks_log_segment_count(log) < 5) {
        t->bases[t->nbat++] = ks_log_end_offset(log);
        tu_append_seq(log, 3, 0);
    }
    /* a few batches in the last segment */
    for (int i = 0; i < 3; i++) {
        t->bases[t->nbat++] = ks_log_end_offset(log);
        tu_append_seq(log, 3, 0);
    }
    t->bases[t->nbat] = ks_log_end_offset(log);
    tu_name names[64];
    t->nseg = (int)tu_list(dir, ".log", names, 64);
    for (int i = 0; i < t->nseg; i++)
        t->segbase[i] = strtoll(names[i], NULL, 10);
    return log;
}

/* Sequence numbers after truncating to `keep` and appending `more` records
 * of generation 2. */
static void expect_after_truncate(ks_log *log, int64_t keep, int64_t more)
{
    uint64_t *seq = malloc((size_t)(keep + more + 1) * sizeof *seq);
    for (int64_t i = 0; i < keep; i++)
        seq[i] = (uint64_t)i;
    for (int64_t i = keep; i < keep + more; i++)
        seq[i] = (2ull << 40) | (uint64_t)i;
    cr_assert_eq(ks_log_end_offset(log), keep + more);
    tu_expect(log, seq, (size_t)(keep + more));
    free(seq);
}

static void append_gen2(ks_log *log, int n)
{
    int64_t end = ks_log_end_offset(log), base;
    tu_batch b;
    tu_build(&b, (2ull << 40) | (uint64_t)end, n);
    cr_assert_eq(tu_append1(log, &b, 0, &base), 0);
    cr_assert_eq(base, end, "append after truncate at %lld, end was %lld", (long long)base, (long long)end);
    tu_batch_free(&b);
}

static void truncate_case(const char *name, int which)
{
    char dir[TU_PATH];
    tu_sub(dir, name);
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    tlog t;
    ks_log *log = make_tlog(dir, &cfg, &t);
    int64_t end = t.bases[t.nbat];
    int64_t last_seg = t.segbase[t.nseg - 1];
    int64_t target, want;
    switch (which) {
    case 0: target = end; want = end; break;                                   /* no-op */
    case 1: target = t.bases[t.nbat - 1] + 1; want = t.bases[t.nbat - 1]; break; /* mid-batch, active */
    case 2: target = t.bases[t.nbat - 2]; want = target; break;                 /* batch boundary, active */
    case 3: target = last_seg; want = last_seg; break;                         /* segment boundary */
    case 4: target = last_seg - 1; want = last_seg - 3; break;                 /* last batch of a sealed segment */
    case 5: target = t.segbase[1] + 4; want = t.segbase[1] + 3; break;         /* mid-batch, sealed */
    case 6: target = t.segbase[2]; want = target; break;                       /* base of a sealed segment */
    case 7: target = 1; want = 0; break;                                       /* into the first batch */
    default: target = 0; want = 0; break;                                      /* everything */
    }
    int64_t new_end = -7;
    int rc = ks_log_truncate_to(log, target, &new_end);
    cr_assert_eq(rc, 0, "%s: truncate_to(%lld): %s", name, (long long)target, klog_strerror(rc));
    cr_assert_eq(new_end, want, "%s: truncate_to(%lld) gave end %lld, expected %lld", name,
                 (long long)target, (long long)new_end, (long long)want);
    cr_assert_eq(ks_log_end_offset(log), want);
    cr_assert_leq(ks_log_durable_offset(log), want);
    expect_after_truncate(log, want, 0);
    ks_view v;
    cr_assert_eq(ks_log_read(log, want, 4096, &v), 0);
    cr_assert_eq(v.len, 0);
    if (want < end)
        cr_assert_eq(ks_log_read(log, want + 1, 4096, &v), KLOG_EOFFSET);
    /* no segment file starts at or above the new end, except an empty active one */
    tu_name names[64];
    size_t n = tu_list(dir, ".log", names, 64);
    for (size_t i = 0; i < n; i++) {
        long long b = strtoll(names[i], NULL, 10);
        char p[TU_PATH];
        tu_path(p, dir, names[i]);
        cr_assert(b < want || (b == want && tu_fsize(p) == 0) || (b == 0 && want == 0),
                  "%s: segment %s survived truncation to %lld", name, names[i], (long long)want);
    }
    /* append again, past the old end and across a roll */
    int64_t more = 0;
    for (int i = 0; i < 30; i++, more += 3)
        append_gen2(log, 3);
    expect_after_truncate(log, want, more);
    tu_log_close(log);
    log = tu_log_open(tu_io, dir, &cfg);
    expect_after_truncate(log, want, more);
    append_gen2(log, 3);
    more += 3;
    expect_after_truncate(log, want, more);
    tu_log_close(log);
}

Test(log_basic, truncate_to_noop) { truncate_case("t-noop", 0); }
Test(log_basic, truncate_to_mid_batch) { truncate_case("t-midbatch", 1); }
Test(log_basic, truncate_to_batch_boundary) { truncate_case("t-batch", 2); }
Test(log_basic, truncate_to_segment_boundary) { truncate_case("t-segbase", 3); }
Test(log_basic, truncate_to_end_of_sealed) { truncate_case("t-sealed-end", 4); }
Test(log_basic, truncate_to_mid_sealed) { truncate_case("t-sealed-mid", 5); }
Test(log_basic, truncate_to_sealed_base) { truncate_case("t-sealed-base", 6); }
Test(log_basic, truncate_to_first_batch) { truncate_case("t-first", 7); }
Test(log_basic, truncate_to_zero) { truncate_case("t-zero", 8); }

Test(log_basic, truncate_to_out_of_range)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    tlog t;
    ks_log *log = make_tlog(tu_dir, &cfg, &t);
    int64_t end = t.bases[t.nbat], ne = -7;
    cr_assert_eq(ks_log_truncate_to(log, end + 1, &ne), KLOG_EOFFSET);
    cr_assert_eq(ks_log_truncate_to(log, -1, &ne), KLOG_EOFFSET);
    expect_after_truncate(log, end, 0);
    tu_log_close(log);
}

/* ---- the directory lock ------------------------------------------------------ */

Test(log_basic, second_writer_locked_read_only_works)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *a = tu_log_open(tu_io, tu_dir, &cfg);
    for (int i = 0; i < 30; i++)
        tu_append_seq(a, 5, 0);
    int64_t end = ks_log_end_offset(a);
    cr_assert_eq(ks_log_sync(a), 0);

    ks_log *b = (ks_log *)0x1;
    cr_assert_eq(ks_log_open(&b, tu_io, tu_dir, &cfg), KLOG_ELOCKED);
    cr_assert_null(b, "a failed open must leave *out NULL");
    /* a second engine in the same process is refused just the same */
    kio *io2 = tu_io_open();
    cr_assert_eq(ks_log_open(&b, io2, tu_dir, &cfg), KLOG_ELOCKED);

    ks_log_config ro = cfg;
    ro.read_only = true;
    ks_log *r = tu_log_open(io2, tu_dir, &ro);
    cr_assert_eq(ks_log_end_offset(r), end);
    tu_expect_identity(r, end);
    tu_batch x;
    tu_build(&x, 0, 1);
    cr_assert_eq(tu_append1(r, &x, 0, NULL), KLOG_EREADONLY);
    cr_assert_eq(ks_log_truncate_to(r, 0, NULL), KLOG_EREADONLY);
    tu_batch_free(&x);
    cr_assert_eq(ks_log_end_offset(r), end);
    tu_log_close(r);
    /* the writer was not disturbed */
    tu_append_seq(a, 5, 0);
    tu_log_close(a);
    /* once the writer is gone, a new one gets in */
    b = tu_log_open(io2, tu_dir, &cfg);
    tu_expect_identity(b, end + 5);
    tu_log_close(b);
    kio_close(io2);
}

/* ---- following a writer (ks_log_refresh) ------------------------------------------ */

static int64_t follow_heard;
static void follow_listener(void *arg, int64_t end)
{
    (void)arg;
    follow_heard = end;
}

/* A reader whose mapping is smaller than the writer's segments (its own
 * segment.bytes), through a roll, retention and the directory's removal. */
Test(log_basic, read_only_follows_a_writer)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    cfg.segment_bytes = 16 * 1024;
    ks_log *w = tu_log_open(tu_io, tu_dir, &cfg);
    tu_append_seq(w, 5, 0);
    ks_log_config ro = tu_small_cfg(KS_DURABILITY_NONE);
    ro.read_only = true;
    ro.segment_bytes = 1024;
    ro.max_batch_bytes = 4096; /* a mapping of 5 KiB: the writer's segment outgrows it */
    ks_log *r = tu_log_open(tu_io, tu_dir, &ro);
    ks_log_set_listener(r, follow_listener, NULL);
    cr_assert_eq(ks_log_refresh(w, false), KLOG_ESTATE, "a writer's log follows no one");
    cr_assert_eq(ks_log_end_offset(r), 5);
    for (int round = 0; round < 40; round++) {
        tu_append_seq(w, 20, 0);
        follow_heard = -1;
        cr_assert_eq(ks_log_refresh(r, false), 0);
        cr_assert_eq(ks_log_end_offset(r), ks_log_end_offset(w), "round %d", round);
        cr_assert_eq(follow_heard, ks_log_end_offset(w), "the listener was not told");
    }
    cr_assert_gt(ks_log_segment_count(w), 1, "the writer never rolled");
    cr_assert_eq(ks_log_segment_count(r), ks_log_segment_count(w));
    tu_expect_identity(r, ks_log_end_offset(w));
    /* nothing new: nothing heard */
    follow_heard = -1;
    cr_assert_eq(ks_log_refresh(r, true), 0);
    cr_assert_eq(follow_heard, -1);
    /* retention at the writer: the reader's start follows at its next listing */
    int64_t end = ks_log_end_offset(w);
    cr_assert_gt(ks_log_drop_oldest(w, false, false), 0);
    cr_assert_eq(ks_log_refresh(r, true), 0);
    cr_assert_eq(ks_log_start_offset(r), ks_log_start_offset(w));
    cr_assert_gt(ks_log_start_offset(r), 0);
    cr_assert_eq(ks_log_segment_count(r), ks_log_segment_count(w));
    /* a view held across the directory's removal stays readable */
    ks_view v;
    cr_assert_eq(ks_log_read(r, end - 1, 1 << 20, &v), 0);
    cr_assert_gt(v.len, 0);
    tu_log_close(w);
    tu_rmrf(tu_dir);
    cr_assert_eq(ks_log_refresh(r, true), -ENOENT);
    cr_assert_eq(ks_log_end_offset(r), end);
    tu_content c = { 0 };
    cr_assert_eq(tu_decode_view(&v, &(int64_t){ v.first_offset }, &c), 0);
    tu_content_free(&c);
    ks_view_release(&v);
    tu_log_close(r);
}

/* ---- argument checking -------------------------------------------------------- */

Test(log_basic, bad_config)
{
    ks_log_config bad[12];
    int nbad = 0;
    ks_log_config c;
#define BAD(stmt) do { ks_log_config_init(&c); stmt; bad[nbad++] = c; } while (0)
    BAD(c.segment_bytes = 0);
    BAD(c.segment_bytes = 100);
    BAD(c.segment_bytes = 1ull << 40);
    BAD(c.max_batch_bytes = 0);
    BAD(c.max_batch_bytes = KF_HDR_SIZE - 1);
    BAD(c.max_batch_bytes = KF_BATCH_MAX + 1);
    BAD(c.index_interval_bytes = 0);
    BAD(c.durability = (enum ks_durability)7);
    BAD(c.segment_ms = -1);
    BAD(c.flush_ms = -5);
#undef BAD
    for (int i = 0; i < nbad; i++) {
        ks_log *log = (ks_log *)0x1;
        int rc = ks_log_open(&log, tu_io, tu_dir, &bad[i]);
        cr_assert_eq(rc, KLOG_ECONF, "bad config #%d: got %d (%s)", i, rc, klog_strerror(rc));
        cr_assert_null(log);
        cr_assert(!tu_exists(tu_dir), "bad config #%d created the directory", i);
    }
    /* the defaults and the smallest segment are fine */
    ks_log *log = tu_log_open(tu_io, tu_dir, NULL);
    tu_log_close(log);
    ks_log_config_init(&c);
    c.segment_bytes = 1024;
    log = tu_log_open(tu_io, tu_dir, &c);
    tu_append_seq(log, 1, 0);
    tu_log_close(log);
}

Test(log_basic, batch_too_big_writes_nothing)
{
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.max_batch_bytes = 2048;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_append_seq(log, 2, 0);
    uint64_t size = ks_log_size_bytes(log);
    char seg[TU_PATH];
    snprintf(seg, sizeof seg, "%s/%020d.log", tu_dir, 0);
    off_t fsz = tu_fsize(seg);

    tu_batch big, ok1, ok2;
    cr_assert_eq(tu_build_ex(&big, 2, 3, NULL, 3000), 0);
    cr_assert_gt(big.len, 2048);
    int64_t base = 0;
    cr_assert_eq(tu_append1(log, &big, 0, &base), KLOG_ETOOBIG);
    cr_assert_eq(ks_log_end_offset(log), 2);
    cr_assert_eq(ks_log_size_bytes(log), size);
    cr_assert_eq(tu_fsize(seg), fsz);

    /* in a group, the batches before the big one go in, the rest do not */
    tu_build(&ok1, 2, 4);
    tu_build(&ok2, 6, 4);
    ks_batch kb[3] = { { .batch = ok1.buf, .len = ok1.len },
                       { .batch = big.buf, .len = big.len },
                       { .batch = ok2.buf, .len = ok2.len } };
    cr_assert_eq(ks_log_append(log, kb, 3, 0), KLOG_ETOOBIG);
    cr_assert_eq(kb[0].result, 0);
    cr_assert_eq(kb[0].base_offset, 2);
    cr_assert_eq(kb[1].result, KLOG_ETOOBIG);
    cr_assert_neq(kb[2].result, 0, "a batch after the failing one was appended");
    cr_assert_eq(ks_log_end_offset(log), 6);
    tu_expect_identity(log, 6);
    tu_batch_free(&big);
    tu_batch_free(&ok1);
    tu_batch_free(&ok2);
    tu_log_close(log);
}

static void expect_rejected(ks_log *log, void *buf, size_t len, unsigned flags, const char *what,
                            bool format_ok)
{
    int64_t end = ks_log_end_offset(log);
    uint64_t size = ks_log_size_bytes(log);
    ks_batch kb = { .batch = buf, .len = len };
    int rc = ks_log_append(log, &kb, 1, flags);
    cr_assert(rc == KLOG_ECORRUPT || (format_ok && rc == KLOG_EFORMAT),
              "%s: append gave %d (%s), expected KLOG_ECORRUPT", what, rc, klog_strerror(rc));
    cr_assert_eq(kb.result, rc);
    cr_assert_eq(ks_log_end_offset(log), end, "%s: end moved", what);
    cr_assert_eq(ks_log_size_bytes(log), size, "%s: bytes were written", what);
}

Test(log_basic, garbage_is_rejected)
{
    ks_log *log = tu_log_open(tu_io, tu_dir, NULL);
    tu_append_seq(log, 3, 0);
    uint8_t buf[4096];

    expect_rejected(log, NULL, 100, 0, "NULL batch", false);
    memset(buf, 0, sizeof buf);
    expect_rejected(log, buf, 10, 0, "10 bytes", false);
    expect_rejected(log, buf, 200, 0, "200 zero bytes", false);
    tu_rng rng = { 6 };
    for (int i = 0; i < 200; i++) {
        size_t len = (size_t)tu_range(&rng, KF_HDR_SIZE, sizeof buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)tu_rand(&rng);
        buf[KF_OFF_MAGIC] = KF_MAGIC;
        expect_rejected(log, buf, len, 0, "random bytes", false);
        expect_rejected(log, buf, len, KS_APPEND_VERIFY, "random bytes (verify)", false);
    }

    tu_batch b;
    tu_build(&b, 3, 5);
    cr_assert_lt(b.len + 8, sizeof buf);
    memcpy(buf, b.buf, b.len);
    expect_rejected(log, buf, b.len - 1, 0, "batch missing its last byte", false);
    memset(buf + b.len, 0xab, 8);
    expect_rejected(log, buf, b.len + 8, 0, "batch with trailing bytes", false);
    uint32_t l;
    memcpy(&l, buf + KF_OFF_LENGTH, 4);
    l += 4;
    memcpy(buf + KF_OFF_LENGTH, &l, 4);
    expect_rejected(log, buf, b.len + 4, KS_APPEND_VERIFY, "batch whose length was changed", false);
    memcpy(buf, b.buf, b.len);
    buf[b.len - 3] ^= 0x10;
    expect_rejected(log, buf, b.len, KS_APPEND_VERIFY, "batch with a flipped bit (verify)", false);
    memcpy(buf, b.buf, b.len);
    buf[KF_OFF_MAGIC] = 99;
    expect_rejected(log, buf, b.len, 0, "unknown magic", true);

    /* the log is still fine and takes the real batch */
    int64_t base;
    cr_assert_eq(tu_append1(log, &b, KS_APPEND_VERIFY, &base), 0);
    cr_assert_eq(base, 3);
    tu_batch_free(&b);
    tu_expect_identity(log, 8);
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, NULL);
    tu_expect_identity(log, 8);
    tu_log_close(log);
}

/* ---- index files ------------------------------------------------------------- */

/* What the indexes answer: a read at every offset, and time lookups. */
typedef struct lookup {
    int rc;
    int64_t first, next;
    size_t len;
} lookup;

typedef struct lookups {
    int64_t end;
    lookup *rd1, *rd2;   /* max_bytes 1 and 1500, for offsets 0..end */
    int64_t *tsq, *tso;  /* time probes and their answers */
    size_t nts;
} lookups;

static void take_lookups(ks_log *log, lookups *L)
{
    L->end = ks_log_end_offset(log);
    size_t n = (size_t)L->end + 1;
    L->rd1 = calloc(n, sizeof *L->rd1);
    L->rd2 = calloc(n, sizeof *L->rd2);
    for (int64_t o = 0; o <= L->end; o++) {
        for (int k = 0; k < 2; k++) {
            ks_view v;
            lookup *x = k ? &L->rd2[o] : &L->rd1[o];
            x->rc = ks_log_read(log, o, k ? 1500 : 1, &v);
            x->first = v.first_offset;
            x->next = v.next_offset;
            x->len = v.len;
            ks_view_release(&v);
        }
    }
    tu_content c;
    cr_assert_eq(tu_read_all(log, &c), 0);
    L->nts = 0;
    L->tsq = calloc(c.n * 2 + 4, sizeof *L->tsq);
    L->tso = calloc(c.n * 2 + 4, sizeof *L->tso);
    L->tsq[L->nts++] = INT64_MIN;
    L->tsq[L->nts++] = INT64_MAX;
    for (size_t i = 0; i < c.n; i++) {
        L->tsq[L->nts++] = c.r[i].ts;
        L->tsq[L->nts++] = c.r[i].ts + 1;
    }
    for (size_t i = 0; i < L->nts; i++) {
        cr_assert_eq(ks_log_offset_for_time(log, L->tsq[i], &L->tso[i]), 0);
        cr_assert_eq(L->tso[i], scan_for_time(&c, L->tsq[i]));
    }
    tu_content_free(&c);
}

static void free_lookups(lookups *L)
{
    free(L->rd1);
    free(L->rd2);
    free(L->tsq);
    free(L->tso);
}

static void same_lookups(const lookups *a, const lookups *b, const char *what)
{
    cr_assert_eq(a->end, b->end, "%s: end %lld vs %lld", what, (long long)a->end, (long long)b->end);
    for (int64_t o = 0; o <= a->end; o++) {
        for (int k = 0; k < 2; k++) {
            const lookup *x = k ? &a->rd2[o] : &a->rd1[o], *y = k ? &b->rd2[o] : &b->rd1[o];
            cr_assert(x->rc == y->rc && x->first == y->first && x->next == y->next && x->len == y->len,
                      "%s: read(%lld, %s) was rc %d [%lld,%lld) %zu bytes, now rc %d [%lld,%lld) %zu bytes",
                      what, (long long)o, k ? "1500" : "1", x->rc, (long long)x->first,
                      (long long)x->next, x->len, y->rc, (long long)y->first, (long long)y->next, y->len);
        }
    }
    cr_assert_eq(a->nts, b->nts);
    for (size_t i = 0; i < a->nts; i++)
        cr_assert_eq(a->tso[i], b->tso[i], "%s: offset_for_time(%lld) was %lld, now %lld", what,
                     (long long)a->tsq[i], (long long)a->tso[i], (long long)b->tso[i]);
}

enum garble { G_DELETE, G_RANDOM, G_HALF, G_ZERO, G_EMPTY, G_EXTEND, G_SWAP, G_OTHER_SEGMENT, G_NMODES };
static const char *const garble_name[] = { "deleted", "random bytes", "truncated", "zero-filled",
                                           "emptied", "extended", "swapped", "another segment's" };

/* Damage every index file in dir. */
static void garble_indexes(const char *dir, enum garble g, tu_rng *rng)
{
    tu_name ix[128], tx[128];
    size_t ni = tu_list(dir, ".index", ix, 128), nt = tu_list(dir, ".timeindex", tx, 128);
    cr_assert_gt(ni, 2);
    cr_assert_eq(ni, nt);
    for (size_t i = 0; i < ni; i++) {
        for (int k = 0; k < 2; k++) {
            char p[TU_PATH];
            tu_path(p, dir, k ? tx[i] : ix[i]);
            size_t len;
            uint8_t *b = tu_slurp(p, &len);
            switch (g) {
            case G_DELETE:
                cr_assert_eq(unlink(p), 0);
                break;
            case G_RANDOM:
                for (size_t j = 0; j < len; j++)
                    b[j] = (uint8_t)tu_rand(rng);
                tu_spit(p, b, len);
                break;
            case G_HALF:
                tu_truncate(p, (off_t)(len / 2));
                break;
            case G_ZERO:
                memset(b, 0, len);
                tu_spit(p, b, len);
                break;
            case G_EMPTY:
                tu_truncate(p, 0);
                break;
            case G_EXTEND: {
                uint8_t extra[100];
                for (size_t j = 0; j < sizeof extra; j++)
                    extra[j] = (uint8_t)tu_rand(rng);
                tu_poke(p, (off_t)len, extra, sizeof extra);
                break;
            }
            case G_SWAP: {
                /* .index gets the .timeindex's bytes and vice versa */
                char q[TU_PATH];
                tu_path(q, dir, k ? ix[i] : tx[i]);
                if (k == 0) {
                    size_t ql;
                    uint8_t *qb = tu_slurp(q, &ql);
                    tu_spit(p, qb, ql);
                    tu_spit(q, b, len);
                    free(qb);
                }
                break;
            }
            case G_OTHER_SEGMENT: {
                /* a well-formed index of the next segment (wrong base) */
                char q[TU_PATH];
                tu_path(q, dir, k ? tx[(i + 1) % ni] : ix[(i + 1) % ni]);
                size_t ql;
                uint8_t *qb = tu_slurp(q, &ql);
                char tmp[TU_PATH];
                snprintf(tmp, sizeof tmp, "%s.swap", p);
                tu_spit(tmp, qb, ql);
                free(qb);
                break;
            }
            default:
                break;
            }
            free(b);
        }
    }
    if (g == G_OTHER_SEGMENT) {
        for (size_t i = 0; i < ni; i++) {
            for (int k = 0; k < 2; k++) {
                char p[TU_PATH], tmp[TU_PATH];
                tu_path(p, dir, k ? tx[i] : ix[i]);
                snprintf(tmp, sizeof tmp, "%s.swap", p);
                cr_assert_eq(rename(tmp, p), 0);
            }
        }
    }
}

static void index_case(enum garble g)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_rng rng = { 7 + (uint64_t)g };
    fill_jittered(log, &rng, 150);
    cr_assert_gt(ks_log_segment_count(log), 4);
    unsigned segs = ks_log_segment_count(log);
    lookups before, after, again;
    take_lookups(log, &before);
    tu_log_close(log);

    garble_indexes(tu_dir, g, &rng);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    cr_assert_eq(ks_log_segment_count(log), segs);
    take_lookups(log, &after);
    same_lookups(&before, &after, garble_name[g]);
    tu_expect_identity(log, before.end);
    /* the rebuilt indexes of sealed segments were written back */
    tu_name names[64];
    size_t n = tu_list(tu_dir, ".log", names, 64);
    for (size_t i = 0; i + 1 < n; i++) {
        char p[TU_PATH];
        snprintf(p, sizeof p, "%s/%.20s.index", tu_dir, names[i]);
        cr_assert(tu_exists(p), "%s: %s was not rebuilt", garble_name[g], p);
    }
    tu_log_close(log);

    log = tu_log_open(tu_io, tu_dir, &cfg);
    take_lookups(log, &again);
    same_lookups(&before, &again, garble_name[g]);
    tu_log_close(log);
    free_lookups(&before);
    free_lookups(&after);
    free_lookups(&again);
}

Test(log_basic, index_files_deleted) { index_case(G_DELETE); }
Test(log_basic, index_files_random) { index_case(G_RANDOM); }
Test(log_basic, index_files_truncated) { index_case(G_HALF); }
Test(log_basic, index_files_zeroed) { index_case(G_ZERO); }
Test(log_basic, index_files_emptied) { index_case(G_EMPTY); }
Test(log_basic, index_files_extended) { index_case(G_EXTEND); }
Test(log_basic, index_files_swapped) { index_case(G_SWAP); }
Test(log_basic, index_files_of_another_segment) { index_case(G_OTHER_SEGMENT); }

/* ---- durability ----------------------------------------------------------- */

Test(log_basic, durability_always)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_ALWAYS);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_rng rng = { 8 };
    for (int i = 0; i < 60; i++) {
        unsigned nb = (unsigned)tu_range(&rng, 1, 3);
        tu_batch b[3];
        ks_batch kb[3];
        int64_t seq = ks_log_end_offset(log);
        for (unsigned j = 0; j < nb; j++) {
            int n = (int)tu_range(&rng, 1, 6);
            tu_build(&b[j], (uint64_t)seq, n);
            seq += n;
            kb[j] = (ks_batch){ .batch = b[j].buf, .len = b[j].len };
        }
        cr_assert_eq(ks_log_append(log, kb, nb, 0), 0);
        for (unsigned j = 0; j < nb; j++) {
            int64_t last = kb[j].base_offset + b[j].n - 1;
            cr_assert_geq(ks_log_durable_offset(log), last + 1,
                          "ALWAYS: batch ending at %lld acknowledged, durable offset %lld",
                          (long long)last, (long long)ks_log_durable_offset(log));
            tu_batch_free(&b[j]);
        }
    }
    cr_assert_gt(ks_log_segment_count(log), 2);
    cr_assert_eq(ks_log_durable_offset(log), ks_log_end_offset(log));
    tu_expect_identity(log, ks_log_end_offset(log));
    tu_log_close(log);
}

Test(log_basic, durability_none)
{
    ks_log *log = tu_log_open(tu_io, tu_dir, NULL);
    for (int i = 0; i < 20; i++) {
        tu_append_seq(log, 4, 0);
        cr_assert_leq(ks_log_durable_offset(log), ks_log_end_offset(log));
    }
    cr_assert_eq(ks_log_sync(log), 0);
    cr_assert_eq(ks_log_durable_offset(log), 80, "durable %lld after ks_log_sync, end 80",
                 (long long)ks_log_durable_offset(log));
    cr_assert_eq(ks_log_sync(log), 0); /* nothing new: still fine */
    tu_append_seq(log, 4, 0);
    /* KS_APPEND_SYNC makes one append durable whatever the policy */
    tu_append_seq(log, 4, KS_APPEND_SYNC);
    cr_assert_eq(ks_log_durable_offset(log), 88);
    tu_append_seq(log, 4, 0);
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, NULL);
    cr_assert_eq(ks_log_end_offset(log), 92);
    cr_assert_eq(ks_log_durable_offset(log), 92, "after reopen durable is %lld, end 92",
                 (long long)ks_log_durable_offset(log));
    tu_expect_identity(log, 92);
    tu_log_close(log);
}

Test(log_basic, durability_interval_records)
{
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.durability = KS_DURABILITY_INTERVAL;
    cfg.flush_records = 50;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    int64_t unsynced = 0;
    for (int i = 0; i < 40; i++) {
        int n = 7;
        tu_append_seq(log, n, 0);
        unsynced += n;
        cr_assert_leq(ks_log_durable_offset(log), ks_log_end_offset(log));
        if (unsynced >= 50) {
            cr_assert_eq(ks_log_durable_offset(log), ks_log_end_offset(log),
                         "INTERVAL: %lld unsynced records (flush_records 50) but durable %lld < end %lld",
                         (long long)unsynced, (long long)ks_log_durable_offset(log),
                         (long long)ks_log_end_offset(log));
            unsynced = 0;
        }
    }
    tu_log_close(log);
}

Test(log_basic, durability_interval_ms)
{
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.durability = KS_DURABILITY_INTERVAL;
    cfg.flush_ms = 100;
    cfg.clock_ms = clock_fn;
    test_clock = 5000;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_append_seq(log, 3, 0);
    test_clock = 5050;
    tu_append_seq(log, 3, 0);
    cr_assert_eq(ks_log_tick(log), 0);
    cr_assert_leq(ks_log_durable_offset(log), 6);
    test_clock = 5100;
    cr_assert_eq(ks_log_tick(log), 0);
    cr_assert_eq(ks_log_durable_offset(log), 6, "tick after flush_ms did not sync (durable %lld)",
                 (long long)ks_log_durable_offset(log));
    /* and on append: the first unsynced append at 5200, the next at 5300 syncs */
    test_clock = 5200;
    tu_append_seq(log, 3, 0);
    test_clock = 5300;
    tu_append_seq(log, 3, 0);
    cr_assert_eq(ks_log_durable_offset(log), 12, "append after flush_ms did not sync (durable %lld)",
                 (long long)ks_log_durable_offset(log));
    tu_log_close(log);
}

/* ---- concurrency ------------------------------------------------------------- */

#define NTHREADS 8
#define PER_THREAD 150

typedef struct wrec { int64_t base; uint64_t seq0; int n; } wrec;
typedef struct writer {
    ks_log *log;
    int id;
    unsigned flags;
    int per;
    wrec *done;
    int ndone;
    int err;           /* first append error */
    int not_durable;   /* appends acknowledged before durable (ALWAYS) */
    pthread_barrier_t *go;
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    tu_rng rng = { 1000 + (uint64_t)w->id };
    pthread_barrier_wait(w->go);
    for (int k = 0; k < w->per; k++) {
        int n = (int)tu_range(&rng, 1, 4);
        uint64_t seq0 = ((uint64_t)(w->id + 1) << 32) | (uint64_t)(k * 8);
        tu_batch b;
        if (tu_build_ex(&b, seq0, n, NULL, 0) != 0) {
            w->err = -EINVAL;
            break;
        }
        int64_t base = -1;
        int rc = tu_append1(w->log, &b, w->flags, &base);
        tu_batch_free(&b);
        if (rc != 0) {
            w->err = rc;
            break;
        }
        if (w->flags == 0 && ks_log_durable_offset(w->log) < base + n)
            w->not_durable++;
        w->done[w->ndone++] = (wrec){ base, seq0, n };
    }
    return NULL;
}

/* Run nthreads writers; then check offsets are unique and dense and every
 * batch is where its append said, with its content. */
static void run_writers(ks_log *log, int nthreads, int per, bool always)
{
    pthread_t th[NTHREADS];
    writer w[NTHREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)nthreads);
    for (int t = 0; t < nthreads; t++) {
        w[t] = (writer){ .log = log, .id = t, .per = per, .go = &go,
                         .done = calloc((size_t)per, sizeof(wrec)) };
        cr_assert_eq(pthread_create(&th[t], NULL, writer_main, &w[t]), 0);
    }
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&go);

    int64_t end = ks_log_end_offset(log);
    tu_content c;
    int rc = tu_read_all(log, &c);
    cr_assert_eq(rc, 0, "read back: %d at %lld", rc, (long long)c.err_at);
    cr_assert_eq((int64_t)c.n, end);
    int64_t total = 0;
    for (int t = 0; t < nthreads; t++) {
        cr_assert_eq(w[t].err, 0, "writer %d: %s", t, klog_strerror(w[t].err));
        cr_assert_eq(w[t].ndone, per);
        if (always)
            cr_assert_eq(w[t].not_durable, 0, "writer %d: %d appends acknowledged before durable", t,
                         w[t].not_durable);
        for (int k = 0; k < w[t].ndone; k++) {
            const wrec *d = &w[t].done[k];
            total += d->n;
            cr_assert(d->base >= 0 && d->base + d->n <= end);
            for (int i = 0; i < d->n; i++) {
                const tu_rec *r = &c.r[d->base + i];
                cr_assert(r->ok);
                cr_assert_eq(r->seq, d->seq0 + (uint64_t)i,
                             "offset %lld holds seq %llx, writer %d put %llx there",
                             (long long)r->offset, (unsigned long long)r->seq, t,
                             (unsigned long long)(d->seq0 + (uint64_t)i));
            }
        }
        free(w[t].done);
    }
    /* dense: the writers' records account for every offset exactly once */
    cr_assert_eq(total, end, "writers appended %lld records, log end is %lld", (long long)total,
                 (long long)end);
    tu_content_free(&c);
}

Test(log_basic, concurrent_always_group_commit)
{
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.durability = KS_DURABILITY_ALWAYS;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    run_writers(log, NTHREADS, PER_THREAD, true);
    cr_assert_eq(ks_log_error(log), 0);
    cr_assert_eq(ks_log_durable_offset(log), ks_log_end_offset(log));
    int64_t end = ks_log_end_offset(log);
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    cr_assert_eq(ks_log_end_offset(log), end);
    tu_log_close(log);
}

Test(log_basic, concurrent_always_with_rolls)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_ALWAYS);
    cfg.segment_bytes = 16384;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    run_writers(log, NTHREADS, PER_THREAD, true);
    cr_assert_gt(ks_log_segment_count(log), 3);
    cr_assert_eq(ks_log_error(log), 0);
    cr_assert_eq(ks_log_durable_offset(log), ks_log_end_offset(log));
    tu_log_close(log);
}

typedef struct reader {
    ks_log *log;
    _Atomic bool *writers_done;
    tu_content c;
    int err;
    int64_t err_at;
    long passes;
} reader;

static void *reader_main(void *arg)
{
    reader *r = arg;
    int64_t next = 0;
    memset(&r->c, 0, sizeof r->c);
    for (;;) {
        bool done = atomic_load(r->writers_done);
        int64_t end = ks_log_end_offset(r->log);
        while (next < end) {
            ks_view v;
            int rc = ks_log_read(r->log, next, 2000, &v);
            if (rc == 0 && v.len == 0)
                rc = TU_EGAP;
            if (rc == 0)
                rc = tu_decode_view(&v, &next, &r->c);
            ks_view_release(&v);
            if (rc != 0) {
                r->err = rc;
                r->err_at = next;
                return NULL;
            }
        }
        r->passes++;
        if (done && next == ks_log_end_offset(r->log))
            return NULL;
    }
}

Test(log_basic, reader_while_writers_append)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    _Atomic bool done = false;
    reader rd = { .log = log, .writers_done = &done };
    pthread_t rt;
    cr_assert_eq(pthread_create(&rt, NULL, reader_main, &rd), 0);
    run_writers(log, 3, 300, false);
    atomic_store(&done, true);
    pthread_join(rt, NULL);
    cr_assert_eq(rd.err, 0, "reader: error %d (%s) at offset %lld", rd.err,
                 rd.err > 0 ? "reader check" : klog_strerror(rd.err), (long long)rd.err_at);
    cr_assert_eq((int64_t)rd.c.n, ks_log_end_offset(log));
    for (size_t i = 0; i < rd.c.n; i++) {
        cr_assert_eq(rd.c.r[i].offset, (int64_t)i);
        cr_assert(rd.c.r[i].ok, "reader saw bad content at offset %zu", i);
    }
    cr_assert_gt(ks_log_segment_count(log), 3);
    tu_content_free(&rd.c);
    tu_log_close(log);
}

/*
 * Group commit racing a roll: a ks_log_sync leader snapshots the active
 * segment's handle, and before its fdatasync runs another thread's append
 * rolls the segment (which closes that handle).  The sync must still
 * succeed and the log must stay writable.  A wrap backend holds the sync
 * thread inside its datasync until the roll is done, making the
 * interleaving deterministic.
 */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t who;
    bool armed, arrived, open;
} gate;

static void gate_hook(void *ctx, void *st, unsigned op)
{
    (void)st;
    gate *g = ctx;
    if (!(op & KIO_OP_SYNC))
        return;
    pthread_mutex_lock(&g->mu);
    if (g->armed && pthread_equal(pthread_self(), g->who)) {
        g->armed = false;
        g->arrived = true;
        pthread_cond_broadcast(&g->cv);
        while (!g->open)
            pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
}

typedef struct syncer { ks_log *log; gate *g; int rc; } syncer;
static void *syncer_main(void *arg)
{
    syncer *s = arg;
    pthread_mutex_lock(&s->g->mu);
    s->g->who = pthread_self();
    s->g->armed = true;
    pthread_mutex_unlock(&s->g->mu);
    s->rc = ks_log_sync(s->log);
    return NULL;
}

Test(log_basic, sync_racing_roll_keeps_log_writable)
{
    gate g = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    tu_wrap_init wi = { .hook = gate_hook, .ctx = &g };
    wi.base = tu_base_methods(&wi.base_arg);
    kio *io = NULL;
    cr_assert_eq(kio_open_methods(&io, tu_wrap_methods(wi.base), &wi), 0);
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *log = tu_log_open(io, tu_dir, &cfg);
    tu_append_seq(log, 3, 0);

    syncer s = { .log = log, .g = &g };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, syncer_main, &s), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.arrived)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* the sync thread is inside its datasync; roll the segment under it */
    unsigned segs = ks_log_segment_count(log);
    while (ks_log_segment_count(log) == segs)
        tu_append_seq(log, 5, 0);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(th, NULL);

    cr_assert_eq(s.rc, 0, "ks_log_sync racing a roll failed: %s", klog_strerror(s.rc));
    cr_assert_eq(ks_log_error(log), 0, "the log turned read-only: %s", klog_strerror(ks_log_error(log)));
    tu_append_seq(log, 3, 0);
    cr_assert_eq(ks_log_sync(log), 0);
    cr_assert_eq(ks_log_durable_offset(log), ks_log_end_offset(log));
    tu_expect_identity(log, ks_log_end_offset(log));
    tu_log_close(log);
    kio_close(io);
}

/* ---- idempotent batches ------------------------------------------------------- */

typedef struct lrec { int calls; int64_t last; } lrec;
static void listener_fn(void *arg, int64_t end)
{
    lrec *l = arg;
    l->calls++;
    l->last = end;
}

/* The listener fires after every append that added data, also when the
 * first batch of the call was a duplicate that was skipped. */
Test(log_basic, listener_after_duplicate_then_new_batch)
{
    ks_log *log = tu_log_open(tu_io, tu_dir, NULL);
    lrec l = { 0 };
    ks_log_set_listener(log, listener_fn, &l);
    tu_batch p, retry, q;
    tu_build_pid(&p, 0, 3, 7, 0, 0);
    cr_assert_eq(tu_append1(log, &p, 0, NULL), 0);
    cr_assert_eq(l.calls, 1);
    cr_assert_eq(l.last, 3);
    tu_build_pid(&retry, 0, 3, 7, 0, 0);
    tu_build_pid(&q, 3, 3, 7, 0, 3);
    ks_batch kb[2] = { { .batch = retry.buf, .len = retry.len }, { .batch = q.buf, .len = q.len } };
    cr_assert_eq(ks_log_append(log, kb, 2, 0), 0);
    cr_assert_eq(kb[0].result, KLOG_EDUPLICATE);
    cr_assert_eq(kb[0].base_offset, 0);
    cr_assert_eq(kb[1].result, 0);
    cr_assert_eq(kb[1].base_offset, 3);
    cr_assert_eq(ks_log_end_offset(log), 6);
    cr_assert_eq(l.calls, 2, "the listener was not told about the batch appended after a duplicate");
    cr_assert_eq(l.last, 6);
    tu_expect_identity(log, 6);
    tu_batch_free(&p);
    tu_batch_free(&retry);
    tu_batch_free(&q);
    tu_log_close(log);
}

/*
 * ALWAYS: a batch appended after a skipped duplicate in the same call is
 * acknowledged only once durable, also when other appenders are about
 * (no linked sync).  Deterministic interleaving through a wrap backend:
 *   B appends [retry of P, Q]; its roll's datasync is held (B holds the
 *     append lock), so that
 *   E can enter ks_log_append and wait for the lock (E counts as in flight,
 *     so B will not link a sync to its write);
 *   then B goes on; E's own sync is held until B has returned, so only B's
 *   own work can make Q durable before B returns.
 */
typedef struct tgate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct { pthread_t who; bool set, armed, arrived, open; } s[2];
    bool b_done;
} tgate;

static void tgate_hook(void *ctx, void *st, unsigned op)
{
    (void)st;
    tgate *g = ctx;
    if (!(op & KIO_OP_SYNC))
        return;
    pthread_mutex_lock(&g->mu);
    for (int i = 0; i < 2; i++) {
        if (g->s[i].set && g->s[i].armed && pthread_equal(pthread_self(), g->s[i].who)) {
            g->s[i].armed = false;
            g->s[i].arrived = true;
            pthread_cond_broadcast(&g->cv);
            while (!g->s[i].open)
                pthread_cond_wait(&g->cv, &g->mu);
        }
    }
    pthread_mutex_unlock(&g->mu);
}

static void tgate_register(tgate *g, int i)
{
    pthread_mutex_lock(&g->mu);
    g->s[i].who = pthread_self();
    g->s[i].set = g->s[i].armed = true;
    pthread_mutex_unlock(&g->mu);
}

static void tgate_open(tgate *g, int i)
{
    pthread_mutex_lock(&g->mu);
    g->s[i].open = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

typedef struct dupnew {
    ks_log *log;
    tgate *g;
    tu_batch *retry, *q, *r;
    ks_batch kb[2];
    int rc, rrc;
    int64_t durable_after;
    _Atomic int tid;
} dupnew;

static void *dupnew_b(void *arg)
{
    dupnew *d = arg;
    tgate_register(d->g, 0);
    d->kb[0] = (ks_batch){ .batch = d->retry->buf, .len = d->retry->len };
    d->kb[1] = (ks_batch){ .batch = d->q->buf, .len = d->q->len };
    d->rc = ks_log_append(d->log, d->kb, 2, 0);
    d->durable_after = ks_log_durable_offset(d->log);
    pthread_mutex_lock(&d->g->mu);
    d->g->b_done = true;
    pthread_cond_broadcast(&d->g->cv);
    pthread_mutex_unlock(&d->g->mu);
    return NULL;
}

static void *dupnew_e(void *arg)
{
    dupnew *d = arg;
    tgate_register(d->g, 1);
    atomic_store(&d->tid, (int)syscall(SYS_gettid));
    d->rrc = tu_append1(d->log, d->r, 0, NULL);
    return NULL;
}

/* Wait until thread tid sleeps (blocked on the append lock). */
static void wait_blocked(int tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    for (int i = 0; i < 20000; i++) {
        char buf[512] = { 0 };
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            const char *rp = strrchr(buf, ')');
            if (rp && rp[1] == ' ' && rp[2] == 'S')
                return;
        }
        usleep(500);
    }
    cr_assert_fail("thread %d never blocked", tid);
}

Test(log_basic, always_new_batch_after_duplicate_is_durable)
{
    tgate g = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    tu_wrap_init wi = { .hook = tgate_hook, .ctx = &g };
    wi.base = tu_base_methods(&wi.base_arg);
    kio *io = NULL;
    cr_assert_eq(kio_open_methods(&io, tu_wrap_methods(wi.base), &wi), 0);
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_ALWAYS);
    ks_log *log = tu_log_open(io, tu_dir, &cfg);
    tu_batch p, retry, q, r;
    tu_build_pid(&p, 0, 3, 9, 0, 0);
    cr_assert_eq(tu_append1(log, &p, 0, NULL), 0);
    /* fill the segment so that B's call rolls (with the lock held) */
    for (;;) {
        tu_build_pid(&q, (uint64_t)ks_log_end_offset(log), 3, 9, 0, 3);
        size_t need = q.len > p.len ? q.len : p.len;
        tu_batch_free(&q);
        if (ks_log_size_bytes(log) + need > cfg.segment_bytes)
            break;
        tu_append_seq(log, 3, 0);
    }
    cr_assert_eq(ks_log_segment_count(log), 1);
    int64_t qbase = ks_log_end_offset(log);
    tu_build_pid(&retry, 0, 3, 9, 0, 0);
    tu_build_pid(&q, (uint64_t)qbase, 3, 9, 0, 3);
    tu_build(&r, (uint64_t)qbase + 3, 2);
    dupnew d = { .log = log, .g = &g, .retry = &retry, .q = &q, .r = &r };
    pthread_t tb, te;
    cr_assert_eq(pthread_create(&tb, NULL, dupnew_b, &d), 0);
    pthread_mutex_lock(&g.mu);
    while (!g.s[0].arrived)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    /* B is in its roll's datasync, holding the append lock */
    cr_assert_eq(pthread_create(&te, NULL, dupnew_e, &d), 0);
    while (atomic_load(&d.tid) == 0)
        usleep(100);
    wait_blocked(atomic_load(&d.tid));
    tgate_open(&g, 0);
    /* Let B finish before E may sync.  If E's sync is what B waits for
     * (B correctly waiting for durability behind E), open E after a while. */
    pthread_mutex_lock(&g.mu);
    while (!g.b_done && !g.s[1].arrived)
        pthread_cond_wait(&g.cv, &g.mu);
    if (!g.b_done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        while (!g.b_done && pthread_cond_timedwait(&g.cv, &g.mu, &ts) == 0)
            ;
    }
    pthread_mutex_unlock(&g.mu);
    tgate_open(&g, 1);
    pthread_join(tb, NULL);
    pthread_join(te, NULL);

    cr_assert_eq(d.rc, 0, "B: %s", klog_strerror(d.rc));
    cr_assert_eq(d.kb[0].result, KLOG_EDUPLICATE);
    cr_assert_eq(d.kb[1].result, 0);
    cr_assert_eq(d.kb[1].base_offset, qbase);
    cr_assert_eq(d.rrc, 0, "E: %s", klog_strerror(d.rrc));
    cr_assert_geq(d.durable_after, qbase + 3,
                  "ALWAYS: batch [%lld,%lld) acknowledged after a duplicate, but durable offset was %lld",
                  (long long)qbase, (long long)qbase + 3, (long long)d.durable_after);
    tu_expect_identity(log, qbase + 5);
    tu_batch_free(&p);
    tu_batch_free(&retry);
    tu_batch_free(&q);
    tu_batch_free(&r);
    tu_log_close(log);
    kio_close(io);
}

/* ---- views ------------------------------------------------------------------- */

/* A view stays valid and unchanged until released ("even if the segment is
 * deleted or the log closed meanwhile"), here across a truncation of the
 * bytes it covers and new appends over them. */
Test(log_basic, view_stays_valid_across_truncate)
{
    ks_log *log = tu_log_open(tu_io, tu_dir, NULL);
    tu_append_seq(log, 2, 0);
    while (ks_log_size_bytes(log) < 5 * 4096)
        tu_append_seq(log, 10, 0);
    ks_view v;
    cr_assert_eq(ks_log_read(log, 2, 1u << 20, &v), 0);
    cr_assert_gt(v.len, 4 * 4096);
    uint8_t *copy = malloc(v.len);
    memcpy(copy, v.data, v.len);
    cr_assert_eq(ks_log_truncate_to(log, 2, NULL), 0);
    for (int i = 0; i < 5; i++)
        append_gen2(log, 10);
    cr_assert(memcmp(v.data, copy, v.len) == 0, "the view's bytes changed under it");
    ks_view_release(&v);
    free(copy);
    tu_log_close(log);
}

/* Views held past ks_log_close stay readable, and releasing them after the
 * engine is gone touches nothing of it. */
Test(log_basic, view_outlives_log_and_engine)
{
    kio *io = tu_io_open();
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *log = tu_log_open(io, tu_dir, &cfg);
    for (int i = 0; i < 40; i++)
        tu_append_seq(log, 5, 0);
    ks_view first, last;
    cr_assert_eq(ks_log_read(log, 0, 1u << 20, &first), 0);          /* a sealed segment */
    cr_assert_eq(ks_log_read(log, ks_log_end_offset(log) - 1, 1u << 20, &last), 0); /* the active one */
    tu_log_close(log);
    kio_close(io);
    int64_t next = first.first_offset;
    tu_content c = { 0 };
    cr_assert_eq(tu_decode_view(&first, &next, &c), 0);
    next = last.first_offset;
    cr_assert_eq(tu_decode_view(&last, &next, &c), 0);
    for (size_t i = 0; i < c.n; i++)
        cr_assert(c.r[i].ok && c.r[i].seq == (uint64_t)c.r[i].offset);
    tu_content_free(&c);
    ks_view_release(&first);
    ks_view_release(&last);
}

/* ---- the zeroed tail ahead of durable appends ---------------------------------- */

/* Length of the segment file of base offset `base` in tu_dir. */
static uint64_t seg_file_len(int64_t base)
{
    char path[TU_PATH + 64];
    snprintf(path, sizeof path, "%s/%020lld.log", tu_dir, (long long)base);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

/* Segment `base`'s file holds its batches back to back and ends exactly
 * where the last one does (no zeroed tail left in a sealed segment). */
static void expect_only_batches(int64_t base)
{
    uint64_t len = seg_file_len(base), pos = 0;
    char path[TU_PATH + 64];
    snprintf(path, sizeof path, "%s/%020lld.log", tu_dir, (long long)base);
    uint8_t *buf = malloc(len + 1);
    FILE *f = fopen(path, "rb");
    cr_assert(f && fread(buf, 1, len, f) == len);
    fclose(f);
    while (pos < len) {
        kf_batch_info bi;
        ssize_t n = kf_batch_parse(buf + pos, len - pos, &bi);
        cr_assert_gt(n, 0, "no batch at %" PRIu64 " of %" PRIu64 ": a zeroed tail left in a sealed segment", pos, len);
        pos += (uint64_t)n;
    }
    free(buf);
}

/* Durable appends write a zeroed tail ahead of themselves (their fdatasync
 * then has no metadata to commit); non-durable ones do not.  The tail is
 * counted on disk while it exists, never read, cut by a roll (the sealed
 * segment is exactly its batches) and by a clean close, and recovery cuts
 * the one a crash leaves behind, keeping every batch. */
Test(log_basic, durable_appends_keep_a_zeroed_tail_ahead)
{
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.segment_bytes = 1 << 20; /* the tail stops at segment.bytes */
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_append_seq(log, 10, 0);
    uint64_t data = ks_log_size_bytes(log);
    cr_assert_eq(seg_file_len(0), data, "a non-durable append writes no tail");
    tu_append_seq(log, 10, KS_APPEND_SYNC);
    data = ks_log_size_bytes(log);
    cr_assert_eq(seg_file_len(0), 1 << 20, "durable: zeros up to segment.bytes (%" PRIu64 " data bytes)", data);
    cr_assert_eq(ks_log_disk_bytes(log), data, "the tail is not counted (at most 4 MiB a partition): %" PRIu64,
                 ks_log_disk_bytes(log));
    tu_expect_identity(log, 20);

    /* a crash now: the copy of the directory is what the disk holds */
    char copy[TU_PATH + 16], cmd[3 * TU_PATH];
    snprintf(copy, sizeof copy, "%s.crash", tu_dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", copy, tu_dir, copy);
    cr_assert_eq(system(cmd), 0);
    tu_append_seq(log, 10, KS_APPEND_SYNC);
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    cr_assert_eq(seg_file_len(0), ks_log_size_bytes(log), "a clean close cuts the tail");
    tu_expect_identity(log, 30);
    tu_log_close(log);

    ks_log *crashed = tu_log_open(tu_io, copy, &cfg);
    cr_assert_eq(ks_log_end_offset(crashed), 20, "every batch before the crash is there");
    tu_expect_identity(crashed, 20);
    char path[TU_PATH + 64];
    snprintf(path, sizeof path, "%s/%020lld.log", copy, 0ll);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, ks_log_size_bytes(crashed), "recovery cuts the zeros");
    tu_append_seq(crashed, 5, KS_APPEND_SYNC); /* and appends go on after them */
    tu_expect_identity(crashed, 25);
    tu_log_close(crashed);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", copy);
    cr_assert_eq(system(cmd), 0);

    /* a roll cuts the sealed segment to its batches */
    log = tu_log_open(tu_io, tu_dir, &cfg);
    int64_t end = ks_log_end_offset(log);
    while (ks_log_segment_count(log) < 2) {
        tu_append_seq(log, 200, KS_APPEND_SYNC);
        end += 200;
    }
    expect_only_batches(0);
    tu_expect_identity(log, end);
    tu_log_close(log);
}

/* ---- background prefill --------------------------------------------------------- */

static void count_asks(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
}

/* The bytes of segment `base`'s file from `from` to its end are all zero. */
static bool zeros_from(int64_t base, uint64_t from)
{
    char path[TU_PATH + 64];
    snprintf(path, sizeof path, "%s/%020lld.log", tu_dir, (long long)base);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    bool zero = fseek(f, (long)from, SEEK_SET) == 0;
    for (int c; zero && (c = fgetc(f)) != EOF;)
        zero = c == 0;
    fclose(f);
    return zero;
}

/* With a hook, the first durable append of a segment (no tail yet)
 * zero-fills a chunk inline; later ones never zero-fill themselves: when
 * less than half a chunk is left they ask (once, until served) and
 * ks_log_prefill writes the next chunk past the last, up to segment.bytes;
 * appends land inside; a crash copy with the tail recovers every batch; a
 * roll cuts it. */
Test(log_basic, background_prefill_is_asked_for_and_served_outside_the_append)
{
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.segment_bytes = 12 << 20;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    _Atomic int asks = 0;
    ks_log_set_prefill_hook(log, count_asks, &asks);
    tu_append_seq(log, 10, 0);
    cr_assert_eq(seg_file_len(0), ks_log_size_bytes(log), "a non-durable append writes no tail");
    tu_append_seq(log, 10, KS_APPEND_SYNC);
    uint64_t first = seg_file_len(0);
    cr_assert_eq(first, ks_log_size_bytes(log) + (4 << 20), "the segment's first chunk, inline: %" PRIu64, first);
    cr_assert(zeros_from(0, ks_log_size_bytes(log)));
    int64_t end = 20;
    while (atomic_load(&asks) == 0) {
        cr_assert_eq(seg_file_len(0), first, "appends land inside the tail, writing no zeros themselves");
        tu_append_seq(log, 200, KS_APPEND_SYNC);
        end += 200;
    }
    cr_assert_eq(seg_file_len(0), first);
    cr_assert_lt(first - ks_log_size_bytes(log), 2 << 20, "asked with less than half a chunk left");
    cr_assert_eq(ks_log_disk_bytes(log), ks_log_size_bytes(log), "the tail is not counted");
    tu_append_seq(log, 200, KS_APPEND_SYNC);
    end += 200;
    cr_assert_eq(atomic_load(&asks), 1, "asked once until served");

    cr_assert_eq(ks_log_prefill(log), 0);
    cr_assert_eq(seg_file_len(0), first + (4 << 20), "the next chunk, past the last: %" PRIu64, seg_file_len(0));
    cr_assert(zeros_from(0, ks_log_size_bytes(log)));
    cr_assert_eq(ks_log_prefill(log), 0, "nothing asked: nothing done");
    cr_assert_eq(seg_file_len(0), first + (4 << 20));
    while (atomic_load(&asks) == 1) {
        tu_append_seq(log, 200, KS_APPEND_SYNC);
        end += 200;
    }
    cr_assert_eq(ks_log_prefill(log), 0);
    cr_assert_eq(seg_file_len(0), 12 << 20, "a chunk stops at segment.bytes");
    cr_assert(zeros_from(0, ks_log_size_bytes(log)));
    tu_expect_identity(log, end);

    /* a crash now: the copy of the directory is what the disk holds */
    char copy[TU_PATH + 16], cmd[3 * TU_PATH];
    snprintf(copy, sizeof copy, "%s.crash", tu_dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", copy, tu_dir, copy);
    cr_assert_eq(system(cmd), 0);
    ks_log *crashed = tu_log_open(tu_io, copy, &cfg);
    tu_expect_identity(crashed, end);
    tu_log_close(crashed);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", copy);
    cr_assert_eq(system(cmd), 0);

    /* a roll cuts the sealed segment to its batches */
    while (ks_log_segment_count(log) < 2) {
        tu_append_seq(log, 400, KS_APPEND_SYNC);
        end += 400;
        (void)ks_log_prefill(log);
    }
    expect_only_batches(0);
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_expect_identity(log, end);
    tu_log_close(log);
}

typedef struct {
    ks_log *log;
    _Atomic int asked, stop, served, failed;
} pf_runner;

static void flag_ask(void *arg)
{
    atomic_store(&((pf_runner *)arg)->asked, 1);
}

static void *pf_thread(void *arg)
{
    pf_runner *r = arg;
    while (!atomic_load(&r->stop)) {
        if (atomic_exchange(&r->asked, 0)) {
            if (ks_log_prefill(r->log) < 0)
                atomic_store(&r->failed, 1);
            atomic_fetch_add(&r->served, 1);
        } else {
            sched_yield();
        }
    }
    return NULL;
}

/* A prefill thread serving every ask while durable appends of varying
 * sizes, rolls (small segments) and truncations into the active segment
 * run: no batch is ever overwritten by zeros, every sealed segment is
 * exactly its batches, and everything reads back after a reopen. */
Test(log_basic, background_prefill_races_appends_rolls_and_truncations)
{
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.segment_bytes = 3 << 20; /* a chunk and a half: prefills get cut at the limit */
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    pf_runner r = { .log = log };
    ks_log_set_prefill_hook(log, flag_ask, &r);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, pf_thread, &r), 0);
    int64_t end = 0;
    for (int i = 0; i < 6000; i++) {
        int n = 1 + (i * 37) % 400;
        tu_append_seq(log, n, (i % 5) ? KS_APPEND_SYNC : 0);
        end += n;
        if (i % 97 == 96) {
            int64_t to = end - 1 - (i % 3);
            int64_t got = -1;
            int rc = ks_log_truncate_to(log, to, &got);
            cr_assert_eq(rc, 0, "truncate: %s", klog_strerror(rc));
            end = got;
            cr_assert_eq(ks_log_end_offset(log), end);
        }
    }
    atomic_store(&r.stop, 1);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&r.failed), 0);
    cr_assert_gt(atomic_load(&r.served), 3, "prefills served: %d", atomic_load(&r.served));
    cr_assert_gt(ks_log_segment_count(log), 3);
    tu_expect_identity(log, end);
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_expect_identity(log, end);
    tu_log_close(log);
}

/* A prefill that fails (a full disk) costs nothing but speed: the file
 * keeps the steps written before the failure, appends go on, and nothing
 * more is asked for or zero-filled inline in that segment (on a full disk
 * every durable append would otherwise write zeros to no end) - until the
 * next roll. */
Test(log_basic, failed_background_prefill_stops_until_the_next_roll)
{
    char dir[TU_PATH];
    tu_sub(dir, "pf");
    kio *io = tu_fault_open();
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.segment_bytes = 12 << 20;
    ks_log *log = tu_log_open(io, dir, &cfg);
    _Atomic int asks = 0;
    ks_log_set_prefill_hook(log, count_asks, &asks);
    int64_t end = 0;
    while (atomic_load(&asks) == 0) {
        tu_append_seq(log, 200, KS_APPEND_SYNC);
        end += 200;
    }
    char path[TU_PATH + 64];
    snprintf(path, sizeof path, "%s/%020lld.log", dir, 0ll);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    uint64_t len = (uint64_t)st.st_size;
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 2, -ENOSPC, 0), 0); /* the second step's write */
    cr_assert_eq(ks_log_prefill(log), -ENOSPC);
    cr_assert_eq(kio_fault_clear(io), 0);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, len + (1 << 20), "the step written before the failure stays: %lld",
                 (long long)st.st_size);
    while (ks_log_size_bytes(log) < len + (2 << 20)) { /* past every zero */
        tu_append_seq(log, 400, KS_APPEND_SYNC);
        end += 400;
    }
    cr_assert_eq(atomic_load(&asks), 1, "no more asks in this segment");
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, ks_log_size_bytes(log), "and no inline chunk either");
    while (ks_log_segment_count(log) < 2) {
        tu_append_seq(log, 400, KS_APPEND_SYNC);
        end += 400;
    }
    tu_append_seq(log, 10, KS_APPEND_SYNC);
    end += 10;
    uint64_t file = 0; /* the new segment's file length */
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t l = strlen(de->d_name);
        if (l == 24 && !strcmp(de->d_name + 20, ".log") && strcmp(de->d_name, "00000000000000000000.log")) {
            char p2[TU_PATH + 64];
            snprintf(p2, sizeof p2, "%s/%s", dir, de->d_name);
            cr_assert_eq(stat(p2, &st), 0);
            file = (uint64_t)st.st_size;
        }
    }
    closedir(d);
    cr_assert_gt(file, 1 << 20, "the next segment has a zeroed tail again (%" PRIu64 " bytes)", file);
    tu_expect_identity(log, end);
    tu_log_close(log);
    log = tu_log_open(io, dir, &cfg);
    tu_expect_identity(log, end);
    tu_log_close(log);
    kio_close(io);
}

/* ---- the populated window ahead of tailing readers ------------------------------ */

/* Pages of [from, to) (page-aligned offsets into the mapping at map) that
 * have a page table entry in this process (/proc/self/pagemap, bit 63). */
static uint64_t pages_present(const uint8_t *map, uint64_t from, uint64_t to)
{
    long page = sysconf(_SC_PAGESIZE);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0, "/proc/self/pagemap: %s", strerror(errno));
    uint64_t n = 0;
    for (uint64_t at = from; at < to; at += (uint64_t)page) {
        uint64_t e = 0;
        off_t o = (off_t)(((uintptr_t)(map + at) / (uintptr_t)page) * sizeof e);
        cr_assert_eq(pread(fd, &e, sizeof e, o), (ssize_t)sizeof e);
        n += e >> 63;
    }
    close(fd);
    return n;
}

/* Where the log's active segment (base 0 here) is mapped: a view of its
 * first batch starts there. */
static const uint8_t *seg0_map(ks_log *log)
{
    ks_view v;
    cr_assert_eq(ks_log_read(log, 0, 1, &v), 0);
    cr_assert_gt(v.len, 0);
    const uint8_t *m = v.data;
    ks_view_release(&v);
    return m;
}

/* A read at the log's end: nothing there. */
static void read_at_end(ks_log *log)
{
    ks_view v;
    cr_assert_eq(ks_log_read(log, ks_log_end_offset(log), 1 << 20, &v), 0);
    cr_assert_eq(v.len, 0);
    ks_view_release(&v);
}

/* With a hook, while a reader is at the end (a read found nothing more),
 * appends ask for the mapping ahead of them to be populated when less than
 * half a window is left; ks_log_prefill extends the file (sparse: it reads
 * as zeros, and is not counted on disk) to the data plus a window and
 * fills the page tables over it, so that the reader's first touch of the
 * next batches takes no page fault.  Without a reader at the end nothing
 * is asked; a step clears the mark, so the window stays bounded.  A crash
 * copy recovers every batch, a clean close and a roll cut the extension. */
Test(log_basic, a_reader_at_the_end_gets_a_populated_window)
{
    long page = sysconf(_SC_PAGESIZE);
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.segment_bytes = 1 << 20;
    cfg.populate_bytes = 64 << 10;
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    _Atomic int asks = 0;
    ks_log_set_prefill_hook(log, count_asks, &asks);
    tu_append_seq(log, 10, 0);
    cr_assert_eq(atomic_load(&asks), 0, "no reader at the end: nothing asked");
    cr_assert_eq(ks_log_prefill(log), 0);
    cr_assert_eq(seg_file_len(0), ks_log_size_bytes(log), "nothing asked: the file is its data");
    const uint8_t *map = seg0_map(log);

    read_at_end(log);
    tu_append_seq(log, 10, 0);
    cr_assert_eq(atomic_load(&asks), 1, "a reader at the end: the next append asks");
    tu_append_seq(log, 10, 0);
    cr_assert_eq(atomic_load(&asks), 1, "asked once until served");
    uint64_t size = ks_log_size_bytes(log), ahead = ((size + page - 1) / page) * page;
    uint64_t want = ((size + (64 << 10) + page - 1) / page) * page;
    cr_assert_eq(pages_present(map, ahead, want), 0, "past the data the mapping is empty before the step");
    cr_assert_eq(ks_log_prefill(log), 0);
    cr_assert_eq(seg_file_len(0), want, "the file reaches a window past the data: %" PRIu64 " for %" PRIu64,
                 seg_file_len(0), size);
    cr_assert(zeros_from(0, size));
    cr_assert_eq(ks_log_disk_bytes(log), size, "the window is not counted on disk");
    cr_assert_eq(pages_present(map, ahead, want), (want - ahead) / (uint64_t)page,
                 "the page tables are filled over the window");
    tu_expect_identity(log, 30);

    /* appends go into the window; past half of it, the next step */
    read_at_end(log);
    int64_t end = 30;
    while (atomic_load(&asks) == 1 && end < 100000) {
        tu_append_seq(log, 20, 0);
        end += 20;
    }
    cr_assert_geq(ks_log_size_bytes(log) + (32 << 10), want, "asked with less than half a window left");
    cr_assert_eq(seg_file_len(0), want, "appends land inside the window");
    cr_assert_eq(ks_log_prefill(log), 0);
    size = ks_log_size_bytes(log);
    uint64_t want2 = ((size + (64 << 10) + page - 1) / page) * page;
    cr_assert_eq(seg_file_len(0), want2);
    cr_assert_eq(pages_present(map, want, want2), (want2 - want) / (uint64_t)page);

    /* no reader back at the end: the window is not refilled */
    while (ks_log_size_bytes(log) < want2 + (64 << 10)) {
        tu_append_seq(log, 20, 0);
        end += 20;
    }
    cr_assert_eq(atomic_load(&asks), 2, "nothing asked without a reader at the end");
    cr_assert_eq(ks_log_prefill(log), 0);
    cr_assert_eq(seg_file_len(0), ks_log_size_bytes(log), "the file is its data again");
    tu_expect_identity(log, end);
    read_at_end(log);
    tu_append_seq(log, 10, 0);
    end += 10;
    cr_assert_eq(atomic_load(&asks), 3, "a reader back at the end: asked again");
    cr_assert_eq(ks_log_prefill(log), 0);
    cr_assert_gt(seg_file_len(0), ks_log_size_bytes(log));

    /* a crash now: the copy of the directory is what the disk holds */
    char copy[TU_PATH + 16], cmd[3 * TU_PATH];
    snprintf(copy, sizeof copy, "%s.crash", tu_dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", copy, tu_dir, copy);
    cr_assert_eq(system(cmd), 0);
    ks_log *crashed = tu_log_open(tu_io, copy, &cfg);
    tu_expect_identity(crashed, end);
    tu_log_close(crashed);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", copy);
    cr_assert_eq(system(cmd), 0);

    /* a roll cuts the sealed segment to its batches; a clean close too */
    while (ks_log_segment_count(log) < 2 && end < 100000) {
        tu_append_seq(log, 200, 0);
        end += 200;
        read_at_end(log);
        (void)ks_log_prefill(log);
    }
    tu_append_seq(log, 10, 0); /* asks for the new segment's first window */
    end += 10;
    cr_assert_eq(ks_log_prefill(log), 0);
    expect_only_batches(0);
    tu_name names[8];
    cr_assert_eq(tu_list(tu_dir, ".log", names, 8), 2);
    int64_t base = strtoll(names[1], NULL, 10);
    cr_assert_gt(seg_file_len(base), ks_log_size_bytes(log) - seg_file_len(0), "the new segment has a window");
    tu_log_close(log);
    expect_only_batches(base);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_expect_identity(log, end);
    tu_log_close(log);
}
