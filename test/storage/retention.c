/*
 * test/storage/retention.c - retention, DeleteRecords and the shared disk
 * budget (lib/storage/storage.h, "retention and DeleteRecords" and
 * struct ks_space).
 *
 *   - time retention with an injected clock: exactly the head segments
 *     whose largest timestamp is older than now - retention_ms go (the
 *     boundary is strict), an expired non-empty active segment is rolled
 *     and goes too, the start moves to the first remaining segment's base,
 *     the files are gone, and a reopen keeps the start;
 *   - size retention by Kafka's rule (the oldest goes while the log
 *     without it still holds at least retention_bytes), against sizes
 *     computed from the files;
 *   - ks_log_delete_records: exact (mid-batch) start, reads below it,
 *     reads at it, offsets past the end, -1, reopen; a crash (every crash
 *     mode) right after it returns; a crash injected at every I/O op of
 *     delete_records and of retain;
 *   - a view on a segment that retention deletes keeps reading valid bytes;
 *   - two logs sharing a ks_space: a delete-oldest make_room keeps `used`
 *     within the limit over a long run (one thread, then two) and `used`
 *     always equals what the logs report and what the files hold; a
 *     refusing make_room fails appends with KLOG_EDISKFULL until DeleteRecords
 *     frees space; one append call of more batches than the budget holds
 *     at once still goes in.
 *
 * Records carry seq == offset (tu_build with seq0 = the end offset), so any
 * record read back can be checked on its own.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "util.h"

/* The crash-at-every-op tests rerun an operation hundreds of times, each
 * run syncing; they work under /dev/shm when there is one (a sync costs
 * nothing on tmpfs; the crashes are simulated by the fault backend whatever
 * the file system).  Everything else runs in the usual scratch root. */
static char shm_root[TU_PATH];

static void fast_root(char *out)
{
    struct stat st;
    snprintf(shm_root, sizeof shm_root, "/dev/shm/klog-st-XXXXXX");
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && mkdtemp(shm_root)) {
        snprintf(out, TU_PATH, "%s", shm_root);
        return;
    }
    shm_root[0] = 0;
    snprintf(out, TU_PATH, "%s", tu_root);
}

static void ret_teardown(void)
{
    if (shm_root[0] && !getenv("KLOG_TEST_KEEP"))
        tu_rmrf(shm_root);
    tu_teardown();
}

TestSuite(retention, .init = tu_setup, .fini = ret_teardown, .timeout = 120);

/* ---- clock ------------------------------------------------------------------ */

static _Atomic int64_t fake_now;
static int64_t fake_clock(void *arg)
{
    (void)arg;
    return atomic_load(&fake_now);
}

static ks_log_config ret_cfg(void)
{
    ks_log_config c = tu_small_cfg(KS_DURABILITY_NONE);
    c.clock_ms = fake_clock;
    return c;
}

/* ---- helpers ------------------------------------------------------------------ */

#define MAXSEG 256

/* A log written by the test: segment bases and largest timestamps, as the
 * test saw them (a roll shows as a new segment count after an append). */
typedef struct built {
    int64_t base[MAXSEG];
    int64_t maxts[MAXSEG];
    int nseg;
    int64_t end;
} built;

/* Append one batch of n records (seq == offset) with timestamps ts[0..n)
 * (NULL: tu_ts), tracking segments in b. */
static void add_batch(ks_log *log, built *b, int n, const int64_t *ts)
{
    unsigned before = ks_log_segment_count(log);
    int64_t end = ks_log_end_offset(log), base = -1;
    tu_batch tb;
    tu_build_ts(&tb, (uint64_t)end, n, ts);
    int rc = tu_append1(log, &tb, 0, &base);
    cr_assert_eq(rc, 0, "append: %s", klog_strerror(rc));
    cr_assert_eq(base, end);
    tu_batch_free(&tb);
    if (b->nseg == 0 || ks_log_segment_count(log) != before) {
        cr_assert_lt(b->nseg, MAXSEG);
        b->base[b->nseg] = b->nseg == 0 ? ks_log_start_offset(log) : base;
        b->maxts[b->nseg] = INT64_MIN;
        b->nseg++;
    }
    for (int i = 0; i < n; i++) {
        int64_t t = ts ? ts[i] : tu_ts((uint64_t)(end + i));
        if (t > b->maxts[b->nseg - 1])
            b->maxts[b->nseg - 1] = t;
    }
    b->end = end + n;
}

/* Batches of 3 records, batch k stamped T0 + k * 1000 (+ i), until the log
 * has nseg segments with at least `active_batches` batches in the last. */
#define T0 1700000000000ll
static void fill_timed(ks_log *log, built *b, int nseg, int active_batches)
{
    int in_last = 0, k = (int)(b->end / 3);
    for (;;) {
        int before = b->nseg;
        int64_t ts[3] = { T0 + k * 1000ll, T0 + k * 1000ll + 2, T0 + k * 1000ll + 1 };
        add_batch(log, b, 3, ts);
        k++;
        in_last = b->nseg != before ? 1 : in_last + 1;
        if (b->nseg >= nseg && in_last >= active_batches)
            break;
    }
}

static void seg_file(char *out, const char *dir, int64_t base, const char *sfx)
{
    snprintf(out, TU_PATH, "%s/%020lld%s", dir, (long long)base, sfx);
}

/* Bases of the *.log files in dir, sorted. */
static int list_bases(const char *dir, int64_t *bases, int max)
{
    static tu_name names[MAXSEG + 8];
    size_t n = tu_list(dir, ".log", names, MAXSEG + 8);
    cr_assert_leq((int)n, max);
    for (size_t i = 0; i < n; i++)
        bases[i] = strtoll(names[i], NULL, 10);
    return (int)n;
}

/* The *.log files in dir are exactly the bases want[0..n). */
static void expect_files(const char *dir, const int64_t *want, int n, const char *what)
{
    int64_t got[MAXSEG + 8];
    int g = list_bases(dir, got, MAXSEG + 8);
    bool same = g == n;
    for (int i = 0; same && i < n; i++)
        same = got[i] == want[i];
    if (!same) {
        char gs[512] = "", ws[512] = "";
        for (int i = 0; i < g && strlen(gs) < 480; i++)
            snprintf(gs + strlen(gs), sizeof gs - strlen(gs), " %lld", (long long)got[i]);
        for (int i = 0; i < n && strlen(ws) < 480; i++)
            snprintf(ws + strlen(ws), sizeof ws - strlen(ws), " %lld", (long long)want[i]);
        cr_assert_fail("%s: segment files [%s ] expected [%s ]", what, gs, ws);
    }
    /* no index files of deleted segments left behind */
    static tu_name names[MAXSEG + 8];
    const char *sfx[] = { ".index", ".timeindex" };
    for (int s = 0; s < 2; s++) {
        size_t m = tu_list(dir, sfx[s], names, MAXSEG + 8);
        for (size_t i = 0; i < m; i++) {
            int64_t b = strtoll(names[i], NULL, 10);
            bool found = false;
            for (int j = 0; j < n && !found; j++)
                found = want[j] == b;
            cr_assert(found, "%s: %s left behind for a deleted segment", what, names[i]);
        }
    }
}

/* Sum of the sizes of the *.log, *.index and *.timeindex files in dir. */
/* The small files a log counts by the blocks they take (issue 18). */
static uint64_t small_bytes(const char *dir)
{
    static const char *const small[] = { "recovery.ckpt", "recovery.pos", "cleaner.ckpt", "leader-epoch-checkpoint",
                                         ".lock" };
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        char p[TU_PATH];
        struct stat st;
        tu_path(p, dir, small[i]);
        if (stat(p, &st) == 0)
            sum += (uint64_t)st.st_blocks * 512;
    }
    return sum;
}

static uint64_t dir_bytes(const char *dir)
{
    static tu_name names[MAXSEG * 3 + 8];
    const char *sfx[] = { ".log", ".index", ".timeindex" };
    uint64_t sum = 0;
    for (int s = 0; s < 3; s++) {
        size_t m = tu_list(dir, sfx[s], names, MAXSEG * 3 + 8);
        for (size_t i = 0; i < m; i++) {
            char p[TU_PATH];
            tu_path(p, dir, names[i]);
            struct stat st;
            if (stat(p, &st) == 0) /* may vanish under a concurrent delete */
                sum += (uint64_t)st.st_size;
        }
    }
    return sum + small_bytes(dir);
}

/*
 * Read [from, end) where the first batch may begin below `from` (after
 * DeleteRecords the start can sit inside a batch): records below `from`
 * are dropped.  Offsets must be dense from there (no compaction here).
 * No assertions (thread-safe).
 */
static int read_from(ks_log *log, int64_t from, int64_t to, tu_content *c)
{
    memset(c, 0, sizeof *c);
    c->start = from;
    c->end = to;
    if (from >= to)
        return 0;
    ks_view v;
    int rc = ks_log_read(log, from, 64 * 1024, &v);
    if (rc == 0 && v.len == 0)
        rc = TU_EGAP;
    if (rc == 0 && (v.first_offset > from || v.next_offset <= from))
        rc = TU_EVIEW;
    int64_t off = rc == 0 ? v.first_offset : from;
    if (rc == 0)
        rc = tu_decode_view(&v, &off, c);
    ks_view_release(&v);
    if (rc == 0) {
        size_t drop = 0;
        while (drop < c->n && c->r[drop].offset < from)
            drop++;
        memmove(c->r, c->r + drop, (c->n - drop) * sizeof *c->r);
        c->n -= drop;
    }
    if (rc != 0) {
        c->err = rc;
        c->err_at = from;
        return rc;
    }
    tu_content rest;
    rc = tu_read_range(log, off, to, 64 * 1024, &rest);
    for (size_t i = 0; i < rest.n; i++) {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 1024;
            c->r = realloc(c->r, c->cap * sizeof *c->r);
        }
        c->r[c->n++] = rest.r[i];
    }
    c->batches += rest.batches;
    c->err = rest.err;
    c->err_at = rest.err_at;
    tu_content_free(&rest);
    return rc;
}

/* The log reads back [start, end) densely with seq == offset. */
static void expect_span(ks_log *log, int64_t start, int64_t end, const char *what)
{
    cr_assert_eq(ks_log_start_offset(log), start, "%s: start %lld, expected %lld", what,
                 (long long)ks_log_start_offset(log), (long long)start);
    cr_assert_eq(ks_log_end_offset(log), end, "%s: end %lld, expected %lld", what,
                 (long long)ks_log_end_offset(log), (long long)end);
    tu_content c;
    int rc = read_from(log, start, end, &c);
    cr_assert_eq(rc, 0, "%s: read back failed at %lld: %d (%s)", what, (long long)c.err_at, rc,
                 rc > 0 ? "reader check" : klog_strerror(rc));
    cr_assert_eq((int64_t)c.n, end - start, "%s: %zu records in [%lld, %lld)", what, c.n, (long long)start,
                 (long long)end);
    for (size_t i = 0; i < c.n; i++)
        cr_assert(c.r[i].offset == start + (int64_t)i && c.r[i].ok && c.r[i].seq == (uint64_t)c.r[i].offset,
                  "%s: bad record at offset %lld", what, (long long)c.r[i].offset);
    tu_content_free(&c);
}

static void expect_eoffset(ks_log *log, int64_t off, const char *what)
{
    ks_view v;
    int rc = ks_log_read(log, off, 4096, &v);
    if (rc == 0)
        ks_view_release(&v);
    cr_assert_eq(rc, KLOG_EOFFSET, "%s: read at %lld gave %d (%s), expected KLOG_EOFFSET", what, (long long)off,
                 rc, klog_strerror(rc));
}

static int retain(ks_log *log, int64_t ms, int64_t bytes, uint64_t *freed)
{
    ks_retention r = { .retention_ms = ms, .retention_bytes = bytes };
    return ks_log_retain(log, &r, freed);
}

/* ---- retention by time ------------------------------------------------------- */

Test(retention, by_time)
{
    atomic_store(&fake_now, T0);
    ks_log_config cfg = ret_cfg();
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    built b = { 0 };
    fill_timed(log, &b, 10, 3);
    cr_assert_eq((int)ks_log_segment_count(log), b.nseg);
    /* the largest timestamps must come back from disk */
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    int64_t ots;
    uint64_t obytes;
    cr_assert(ks_log_oldest(log, &ots, &obytes));
    cr_assert_eq(ots, b.maxts[0], "reopened: oldest segment's largest timestamp %lld, expected %lld",
                 (long long)ots, (long long)b.maxts[0]);
    const int64_t R = 10000;
    uint64_t freed = 0, disk0, disk1;

    /* nothing expired yet */
    atomic_store(&fake_now, b.maxts[0] + R);
    disk0 = ks_log_disk_bytes(log);
    cr_assert_eq(retain(log, R, -1, &freed), 0);
    cr_assert_eq(freed, 0);
    cr_assert_eq((int)ks_log_segment_count(log), b.nseg, "a segment whose max timestamp is exactly now - "
                                                         "retention_ms is not older than it");
    expect_files(tu_dir, b.base, b.nseg, "nothing expired");
    expect_span(log, 0, b.end, "nothing expired");

    /* segments 0..2 expired; segment 3 exactly at the boundary stays */
    atomic_store(&fake_now, b.maxts[3] + R);
    disk0 = ks_log_disk_bytes(log);
    cr_assert_eq(retain(log, R, -1, &freed), 0);
    disk1 = ks_log_disk_bytes(log);
    cr_assert_eq((int)ks_log_segment_count(log), b.nseg - 3, "segments %u, expected %d",
                 ks_log_segment_count(log), b.nseg - 3);
    expect_files(tu_dir, b.base + 3, b.nseg - 3, "three expired");
    cr_assert_eq(freed, disk0 - disk1, "freed %llu, disk bytes went from %llu to %llu",
                 (unsigned long long)freed, (unsigned long long)disk0, (unsigned long long)disk1);
    cr_assert_eq(disk1, dir_bytes(tu_dir));
    expect_span(log, b.base[3], b.end, "three expired");
    expect_eoffset(log, b.base[3] - 1, "below the start");
    expect_eoffset(log, 0, "offset 0 after retention");

    /* one millisecond later segment 3 goes too */
    atomic_store(&fake_now, b.maxts[3] + R + 1);
    cr_assert_eq(retain(log, R, -1, &freed), 0);
    cr_assert_gt(freed, 0);
    expect_files(tu_dir, b.base + 4, b.nseg - 4, "segment 3 expired");
    expect_span(log, b.base[4], b.end, "segment 3 expired");

    /* every sealed segment expired, the active one not: it stays */
    int last = b.nseg - 1;
    atomic_store(&fake_now, b.maxts[last - 1] + R + 1);
    cr_assert_lt(b.maxts[last - 1] + 1, b.maxts[last]);
    cr_assert_eq(retain(log, R, -1, &freed), 0);
    cr_assert_eq(ks_log_segment_count(log), 1);
    expect_files(tu_dir, b.base + last, 1, "all sealed expired");
    expect_span(log, b.base[last], b.end, "all sealed expired");

    /* reopen keeps the start */
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    expect_span(log, b.base[last], b.end, "reopened after retention");

    /* the active segment expired: rolled and deleted; the log is empty
     * from the end on */
    atomic_store(&fake_now, b.maxts[last] + R + 1);
    disk0 = ks_log_disk_bytes(log);
    cr_assert_eq(retain(log, R, -1, &freed), 0);
    cr_assert_geq(freed + (int64_t)small_bytes(tu_dir), disk0, "the expired active segment's bytes were not freed");
    cr_assert_eq(ks_log_start_offset(log), b.end);
    cr_assert_eq(ks_log_end_offset(log), b.end);
    cr_assert_eq(ks_log_segment_count(log), 1);
    int64_t endv[1] = { b.end };
    expect_files(tu_dir, endv, 1, "active expired");
    cr_assert_eq(ks_log_disk_bytes(log), dir_bytes(tu_dir));
    ks_view v;
    cr_assert_eq(ks_log_read(log, b.end, 4096, &v), 0);
    cr_assert_eq(v.len, 0);
    ks_view_release(&v);
    expect_eoffset(log, b.end - 1, "below the start after the active segment went");

    /* retention of an empty active segment does nothing */
    atomic_store(&fake_now, b.maxts[last] + 10 * R);
    cr_assert_eq(retain(log, R, -1, &freed), 0);
    cr_assert_eq(freed, 0);
    cr_assert_eq(ks_log_segment_count(log), 1);

    /* appends go on at the end, and survive a reopen with the start */
    tu_append_seq(log, 4, 0);
    tu_append_seq(log, 2, 0);
    expect_span(log, b.end, b.end + 6, "appends after the log emptied");
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    expect_span(log, b.end, b.end + 6, "reopened after the log emptied");
    tu_log_close(log);
}

/* Segments leave from the head only: an old segment behind a young head
 * segment stays (Kafka's takeWhile). */
Test(retention, by_time_only_from_the_head)
{
    atomic_store(&fake_now, T0);
    ks_log_config cfg = ret_cfg();
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    built b = { 0 };
    /* first segment: one very young batch among old ones */
    int64_t young[3] = { T0 + 1000000, T0, T0 };
    add_batch(log, &b, 3, young);
    fill_timed(log, &b, 6, 2);
    atomic_store(&fake_now, T0 + 500000);
    uint64_t freed = 1;
    cr_assert_eq(retain(log, 1000, -1, &freed), 0);
    cr_assert_eq(freed, 0);
    cr_assert_eq((int)ks_log_segment_count(log), b.nseg, "a segment behind an unexpired head was deleted");
    expect_span(log, 0, b.end, "young head");
    tu_log_close(log);
}

/* A bound (a replicated partition's high watermark): only segments wholly
 * below it go, by time, by size and the expired active segment alike. */
Test(retention, bounded_by_the_high_watermark)
{
    atomic_store(&fake_now, T0);
    ks_log_config cfg = ret_cfg();
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    built b = { 0 };
    fill_timed(log, &b, 10, 3);
    cr_assert(b.nseg >= 5, "%d segments", b.nseg);
    uint64_t freed = 0;
    /* everything expired, the bound inside segment 2: segments 0 and 1 go */
    atomic_store(&fake_now, b.maxts[b.nseg - 1] + 100000);
    ks_retention r = { .retention_ms = 1000, .retention_bytes = -1, .bounded = true, .bound = b.base[2] + 1 };
    cr_assert_eq(ks_log_retain(log, &r, &freed), 0);
    cr_assert_eq(ks_log_start_offset(log), b.base[2], "start %lld, expected %lld (the bound's segment stays)",
                 (long long)ks_log_start_offset(log), (long long)b.base[2]);
    cr_assert(freed > 0);
    expect_span(log, b.base[2], b.end, "time, bounded");
    /* exactly at a segment's end: that segment goes too */
    r.bound = b.base[3];
    cr_assert_eq(ks_log_retain(log, &r, NULL), 0);
    cr_assert_eq(ks_log_start_offset(log), b.base[3]);
    /* by size: nothing above the bound, however small retention.bytes */
    ks_retention rs = { .retention_ms = -1, .retention_bytes = 1, .bounded = true, .bound = b.base[4] };
    cr_assert_eq(ks_log_retain(log, &rs, NULL), 0);
    cr_assert_eq(ks_log_start_offset(log), b.base[4]);
    /* the expired active segment is neither rolled nor deleted while the
     * bound is below the log's end */
    unsigned segs = ks_log_segment_count(log);
    r.bound = b.end - 1;
    cr_assert_eq(ks_log_retain(log, &r, NULL), 0);
    cr_assert_eq(ks_log_end_offset(log), b.end);
    cr_assert(ks_log_start_offset(log) < b.end && ks_log_segment_count(log) >= 1);
    expect_span(log, ks_log_start_offset(log), b.end, "bound below the end");
    /* at the end: all of it goes, as unbounded */
    r.bound = b.end;
    cr_assert_eq(ks_log_retain(log, &r, NULL), 0);
    cr_assert_eq(ks_log_start_offset(log), b.end, "start %lld, end %lld (%u segments before)",
                 (long long)ks_log_start_offset(log), (long long)b.end, segs);
    tu_log_close(log);
}

/* A log with nothing to delete, and negative limits: no-ops. */
Test(retention, noops)
{
    atomic_store(&fake_now, T0);
    ks_log_config cfg = ret_cfg();
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    uint64_t freed = 7;
    atomic_store(&fake_now, T0 + 100000000);
    cr_assert_eq(retain(log, 0, 0, &freed), 0);
    cr_assert_eq(freed, 0);
    cr_assert_eq(ks_log_segment_count(log), 1);
    built b = { 0 };
    fill_timed(log, &b, 5, 2);
    cr_assert_eq(retain(log, -1, -1, &freed), 0);
    cr_assert_eq(freed, 0);
    cr_assert_eq(retain(log, -1, -1, NULL), 0);
    expect_span(log, 0, b.end, "negative limits");
    int64_t ts;
    uint64_t bytes;
    cr_assert(ks_log_oldest(log, &ts, &bytes));
    cr_assert_eq(ts, b.maxts[0]);
    tu_log_close(log);
}

/* ---- retention by size ------------------------------------------------------- */

Test(retention, by_size)
{
    atomic_store(&fake_now, T0);
    ks_log_config cfg = ret_cfg();
    char tmpl[TU_PATH], run[TU_PATH];
    tu_sub(tmpl, "tmpl");
    tu_sub(run, "run");
    ks_log *log = tu_log_open(tu_io, tmpl, &cfg);
    built b = { 0 };
    tu_rng rng = { 5 };
    while (b.nseg < 12)
        add_batch(log, &b, (int)tu_range(&rng, 1, 9), NULL);
    tu_log_close(log);
    /* segment sizes from the files */
    uint64_t size[MAXSEG], total = 0;
    for (int i = 0; i < b.nseg; i++) {
        char p[TU_PATH];
        seg_file(p, tmpl, b.base[i], ".log");
        size[i] = (uint64_t)tu_fsize(p);
        total += size[i];
    }
    int64_t limits[] = { -1, (int64_t)total * 2, (int64_t)total, (int64_t)(total - size[0]),
                         (int64_t)(total - size[0]) + 1, (int64_t)(total - size[0] - size[1]),
                         (int64_t)total / 2, (int64_t)total / 3, 5000, 4096, 100, 1, 0 };
    for (size_t k = 0; k < sizeof limits / sizeof limits[0]; k++) {
        int64_t R = limits[k];
        char what[64];
        snprintf(what, sizeof what, "retention_bytes %lld of %llu", (long long)R, (unsigned long long)total);
        /* Kafka's rule, by hand */
        uint64_t sz = total;
        int gone = 0;
        while (R >= 0 && gone < b.nseg - 1 && sz - size[gone] >= (uint64_t)R)
            sz -= size[gone++];
        tu_copy_dir(tmpl, run);
        log = tu_log_open(tu_io, run, &cfg);
        cr_assert_eq(ks_log_size_bytes(log), total);
        uint64_t disk0 = ks_log_disk_bytes(log), freed = 0;
        cr_assert_eq(disk0, dir_bytes(run), "%s: disk bytes %llu, files hold %llu", what,
                     (unsigned long long)disk0, (unsigned long long)dir_bytes(run));
        cr_assert_eq(retain(log, -1, R, &freed), 0);
        expect_files(run, b.base + gone, b.nseg - gone, what);
        cr_assert_eq(ks_log_size_bytes(log), sz, "%s: size %llu, expected %llu", what,
                     (unsigned long long)ks_log_size_bytes(log), (unsigned long long)sz);
        cr_assert_eq(freed, disk0 - ks_log_disk_bytes(log), "%s: freed %llu", what, (unsigned long long)freed);
        if (R >= 0 && total >= (uint64_t)R) {
            cr_assert_geq(sz, (uint64_t)R, "%s: the log went below retention_bytes", what);
            cr_assert_lt(sz, (uint64_t)R + cfg.segment_bytes, "%s: more than one segment over the limit", what);
        }
        expect_span(log, b.base[gone], b.end, what);
        tu_log_close(log);
        log = tu_log_open(tu_io, run, &cfg);
        expect_span(log, b.base[gone], b.end, what);
        tu_log_close(log);
    }
}

/* Time and size together: the union of what either would delete. */
Test(retention, time_and_size_together)
{
    atomic_store(&fake_now, T0);
    ks_log_config cfg = ret_cfg();
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    built b = { 0 };
    fill_timed(log, &b, 10, 2);
    /* time would take 2 segments, size would take more */
    atomic_store(&fake_now, b.maxts[1] + 1000 + 1);
    uint64_t total = ks_log_size_bytes(log);
    cr_assert_eq(retain(log, 1000, (int64_t)(total / 2), NULL), 0);
    cr_assert_gt(ks_log_start_offset(log), b.base[2]);
    cr_assert_geq(ks_log_size_bytes(log), total / 2);
    int64_t s = ks_log_start_offset(log);
    expect_span(log, s, b.end, "time and size");
    /* size would take nothing more, time takes more */
    atomic_store(&fake_now, b.maxts[b.nseg - 3] + 1000 + 1);
    cr_assert_eq(retain(log, 1000, 0x7fffffff, NULL), 0);
    expect_span(log, b.base[b.nseg - 2], b.end, "time after size");
    tu_log_close(log);
}

/* ---- DeleteRecords -------------------------------------------------------------- */

/* A log of about n segments of batches of 1..7 records (seq == offset). */
static built make_log(ks_log *log, int nseg, uint64_t seed)
{
    built b = { 0 };
    tu_rng rng = { seed };
    while (b.nseg < nseg)
        add_batch(log, &b, (int)tu_range(&rng, 1, 7), NULL);
    add_batch(log, &b, 3, NULL);
    return b;
}

/* The batch holding `off` starts at v.first_offset <= off < v.next_offset. */
static void expect_read_at(ks_log *log, int64_t off, const char *what)
{
    ks_view v;
    int rc = ks_log_read(log, off, 1, &v);
    cr_assert_eq(rc, 0, "%s: read at %lld: %s", what, (long long)off, klog_strerror(rc));
    cr_assert_gt(v.len, 0, "%s: read at %lld returned nothing", what, (long long)off);
    cr_assert(v.first_offset <= off && off < v.next_offset, "%s: read at %lld returned [%lld, %lld)", what,
              (long long)off, (long long)v.first_offset, (long long)v.next_offset);
    tu_content c = { 0 };
    int64_t next = v.first_offset;
    cr_assert_eq(tu_decode_view(&v, &next, &c), 0);
    tu_content_free(&c);
    ks_view_release(&v);
}

Test(retention, delete_records)
{
    ks_log_config cfg = ret_cfg();
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    built b = make_log(log, 10, 21);
    int64_t end = b.end, ns = -1;

    /* mid-batch, mid-segment: somewhere inside segment 3, not at a batch start */
    int64_t x = b.base[3] + (b.base[4] - b.base[3]) / 2;
    ks_view probe;
    cr_assert_eq(ks_log_read(log, x, 1, &probe), 0);
    if (probe.first_offset == x && probe.next_offset - x > 1)
        x++; /* inside the batch */
    else if (probe.first_offset == x)
        x = x + 2;
    ks_view_release(&probe);
    cr_assert_eq(ks_log_delete_records(log, x, &ns), 0);
    cr_assert_eq(ns, x);
    cr_assert_eq(ks_log_start_offset(log), x);
    expect_files(tu_dir, b.base + 3, b.nseg - 3, "delete_records inside segment 3");
    expect_eoffset(log, x - 1, "just below the start");
    expect_eoffset(log, 0, "offset 0");
    expect_eoffset(log, b.base[3], "the segment's base, below the start");
    expect_read_at(log, x, "at the start");
    expect_span(log, x, end, "after delete_records");
    cr_assert_eq(ks_log_disk_bytes(log), dir_bytes(tu_dir));

    /* at or below the start: no-op, reports the start */
    ns = -1;
    cr_assert_eq(ks_log_delete_records(log, x - 1, &ns), 0);
    cr_assert_eq(ns, x);
    cr_assert_eq(ks_log_delete_records(log, 0, NULL), 0);
    cr_assert_eq(ks_log_delete_records(log, x, &ns), 0);
    cr_assert_eq(ns, x);
    cr_assert_eq(ks_log_start_offset(log), x);

    /* past the end, or below -1 */
    cr_assert_eq(ks_log_delete_records(log, end + 1, &ns), KLOG_EOFFSET);
    cr_assert_eq(ks_log_delete_records(log, -2, NULL), KLOG_EOFFSET);
    cr_assert_eq(ks_log_delete_records(log, INT64_MIN, NULL), KLOG_EOFFSET);
    cr_assert_eq(ks_log_delete_records(log, INT64_MAX, NULL), KLOG_EOFFSET);
    cr_assert_eq(ks_log_start_offset(log), x);

    /* exactly a segment base: that segment stays, the ones before go */
    int64_t y = b.base[6];
    cr_assert_eq(ks_log_delete_records(log, y, &ns), 0);
    cr_assert_eq(ns, y);
    expect_files(tu_dir, b.base + 6, b.nseg - 6, "delete_records at a segment base");
    expect_span(log, y, end, "at a segment base");
    expect_read_at(log, y, "at a segment base");

    /* one below a segment base: the segment before it stays */
    int64_t z = b.base[8] - 1;
    cr_assert_eq(ks_log_delete_records(log, z, &ns), 0);
    expect_files(tu_dir, b.base + 7, b.nseg - 7, "delete_records one below a base");
    expect_span(log, z, end, "one below a base");

    /* reopen keeps it */
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    expect_span(log, z, end, "reopened");
    expect_eoffset(log, z - 1, "reopened, below the start");
    expect_read_at(log, z, "reopened, at the start");

    /* -1 means the end: nothing readable; the active segment stays */
    cr_assert_eq(ks_log_delete_records(log, -1, &ns), 0);
    cr_assert_eq(ns, end);
    cr_assert_eq(ks_log_start_offset(log), end);
    cr_assert_eq(ks_log_end_offset(log), end);
    cr_assert_geq(ks_log_segment_count(log), 1);
    int64_t lastb[1] = { b.base[b.nseg - 1] };
    expect_files(tu_dir, lastb, 1, "delete_records(-1)");
    ks_view v;
    cr_assert_eq(ks_log_read(log, end, 4096, &v), 0);
    cr_assert_eq(v.len, 0);
    ks_view_release(&v);
    expect_eoffset(log, end - 1, "everything deleted");
    /* and end + 1 is still past the end */
    cr_assert_eq(ks_log_delete_records(log, end + 1, NULL), KLOG_EOFFSET);

    /* appends continue; the start holds across a reopen */
    tu_append_seq(log, 5, 0);
    expect_span(log, end, end + 5, "append after delete_records(-1)");
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    expect_span(log, end, end + 5, "reopen after delete_records(-1)");
    /* DeleteRecords inside the active segment */
    cr_assert_eq(ks_log_delete_records(log, end + 2, &ns), 0);
    expect_span(log, end + 2, end + 5, "inside the active segment");
    expect_read_at(log, end + 2, "inside the active segment");
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    expect_span(log, end + 2, end + 5, "inside the active segment, reopened");
    tu_log_close(log);
}

/* DeleteRecords on an empty log, and at 0. */
Test(retention, delete_records_empty_log)
{
    ks_log_config cfg = ret_cfg();
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    int64_t ns = 5;
    cr_assert_eq(ks_log_delete_records(log, -1, &ns), 0);
    cr_assert_eq(ns, 0);
    cr_assert_eq(ks_log_delete_records(log, 0, &ns), 0);
    cr_assert_eq(ks_log_delete_records(log, 1, &ns), KLOG_EOFFSET);
    tu_append_seq(log, 3, 0);
    cr_assert_eq(ks_log_delete_records(log, 3, &ns), 0);
    cr_assert_eq(ns, 3);
    tu_log_close(log);
}

/* A read-only log refuses. */
Test(retention, delete_records_read_only)
{
    ks_log_config cfg = ret_cfg();
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    built b = make_log(log, 3, 4);
    tu_log_close(log);
    cfg.read_only = true;
    log = tu_log_open(tu_io, tu_dir, &cfg);
    int rc = ks_log_delete_records(log, 5, NULL);
    cr_assert_eq(rc, KLOG_EREADONLY, "delete_records on a read-only log: %s", klog_strerror(rc));
    expect_span(log, 0, b.end, "read-only");
    ks_log_close(log);
}

/* ---- crashes ------------------------------------------------------------------- */

static const enum kio_crash_mode modes[] = { KIO_CRASH_DROP, KIO_CRASH_PREFIX, KIO_CRASH_GARBAGE,
                                             KIO_CRASH_ZERO, KIO_CRASH_RANDOM };

/* Crash right after delete_records (or retain) returned: the new start
 * holds, nothing at or after it is lost (the data was synced first). */
static void crash_after(bool use_retain)
{
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        for (unsigned f = 0; f < 2; f++) {
            char dir[TU_PATH], what[96];
            unsigned cflags = f ? KIO_CRASH_LOSE_DIRENTS : 0;
            snprintf(what, sizeof what, "%s, crash mode %d flags %u", use_retain ? "retain" : "delete_records",
                     modes[m], cflags);
            tu_sub(dir, "crash");
            tu_rmrf(dir);
            atomic_store(&fake_now, T0);
            ks_log_config cfg = ret_cfg();
            kio *io = tu_fault_open();
            ks_log *log = tu_log_open(io, dir, &cfg);
            built b = { 0 };
            fill_timed(log, &b, 8, 2);
            cr_assert_eq(ks_log_sync(log), 0);
            int64_t want;
            if (use_retain) {
                atomic_store(&fake_now, b.maxts[4] + 1000 + 1);
                cr_assert_eq(retain(log, 1000, -1, NULL), 0);
                want = b.base[5];
            } else {
                want = b.base[4] + 1;
                cr_assert_eq(ks_log_delete_records(log, want, NULL), 0);
            }
            cr_assert_eq(ks_log_start_offset(log), want);
            cr_assert_eq(kio_fault_crash(io, modes[m], cflags, m * 2 + f + 1), 0);
            ks_log_close(log);
            kio_close(io);
            log = tu_log_open(tu_io, dir, &cfg);
            expect_span(log, want, b.end, what);
            tu_append_seq(log, 2, 0);
            tu_log_close(log);
        }
}

Test(retention, crash_after_delete_records) { crash_after(false); }
Test(retention, crash_after_retain) { crash_after(true); }

enum crash_op { OP_DELETE_RECORDS, OP_RETAIN_TIME, OP_RETAIN_ACTIVE, OP_RETAIN_SIZE };

/* Run the operation on an open log of the template (b); returns its result
 * and the start it aimed for. */
static int run_op(enum crash_op op, ks_log *log, const built *b, int64_t *target)
{
    switch (op) {
    case OP_DELETE_RECORDS:
        *target = b->base[4] + 2;
        return ks_log_delete_records(log, *target, NULL);
    case OP_RETAIN_TIME:
        atomic_store(&fake_now, b->maxts[3] + 1000 + 1);
        *target = b->base[4];
        return retain(log, 1000, -1, NULL);
    case OP_RETAIN_ACTIVE: /* everything expired: rolls the active segment */
        atomic_store(&fake_now, b->maxts[b->nseg - 1] + 1000 + 1);
        *target = b->end;
        return retain(log, 1000, -1, NULL);
    case OP_RETAIN_SIZE:
        *target = -1; /* whatever Kafka's rule gives; checked as "a segment base" */
        return retain(log, -1, 4096 * 3, NULL);
    }
    return -EINVAL;
}

/* Crash at every op of the operation, every mode, with and without losing
 * un-dirsynced directory entries.  After the reopen: the start is the old
 * one or the new one, nothing at or after it is lost, the log takes
 * appends. */
static void crash_every_op(enum crash_op op)
{
    char root[TU_PATH], tmpl[TU_PATH], dir[TU_PATH];
    fast_root(root);
    tu_path(tmpl, root, "tmpl");
    tu_path(dir, root, "run");
    atomic_store(&fake_now, T0);
    ks_log_config cfg = ret_cfg();
    ks_log *log = tu_log_open(tu_io, tmpl, &cfg);
    built b = { 0 };
    fill_timed(log, &b, 7, 3);
    tu_log_close(log);

    /* count the ops */
    tu_crash cc = { .at = 0 };
    tu_copy_dir(tmpl, dir);
    kio *io = tu_crash_io(&cc);
    log = tu_log_open(io, dir, &cfg);
    uint64_t before = atomic_load(&cc.ops);
    int64_t target;
    cr_assert_eq(run_op(op, log, &b, &target), 0);
    uint64_t nops = atomic_load(&cc.ops) - before;
    int64_t new_start = ks_log_start_offset(log);
    if (target >= 0)
        cr_assert_eq(new_start, target);
    ks_log_close(log);
    kio_close(io);
    cr_assert_gt(nops, 0);

    unsigned runs = 0, mid = 0;
    for (uint64_t n = 1; n <= nops + 1; n++)
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
            for (unsigned f = 0; f < 2; f++) {
                unsigned cflags = f ? KIO_CRASH_LOSE_DIRENTS : 0;
                char what[128];
                snprintf(what, sizeof what, "op %d: crash at op %llu of %llu, mode %d flags %u", op,
                         (unsigned long long)n, (unsigned long long)nops, modes[m], cflags);
                tu_copy_dir(tmpl, dir);
                atomic_store(&fake_now, T0);
                tu_crash c2 = { .at = 0, .crash = { modes[m], cflags, n * 10 + m } };
                io = tu_crash_io(&c2);
                log = tu_log_open(io, dir, &cfg);
                atomic_store(&c2.at, atomic_load(&c2.ops) + n);
                int rc = run_op(op, log, &b, &target);
                if (!atomic_load(&c2.crashed)) {
                    cr_assert_eq(rc, 0, "%s: failed without a crash: %s", what, klog_strerror(rc));
                    cr_assert_eq(kio_fault_crash(io, modes[m], cflags, n), 0);
                } else {
                    mid++;
                }
                ks_log_close(log);
                kio_close(io);
                runs++;
                ks_log *l2 = NULL;
                rc = ks_log_open(&l2, tu_io, dir, &cfg);
                cr_assert_eq(rc, 0, "%s: reopen: %s", what, klog_strerror(rc));
                int64_t s = ks_log_start_offset(l2);
                /* DeleteRecords: the old start or the new one.  Retention
                 * may also stop at a segment base in between (a segment at
                 * a time, each checkpointed before its unlink). */
                bool ok = s == 0 || s == new_start;
                for (int i = 0; !ok && op != OP_DELETE_RECORDS && i < b.nseg; i++)
                    ok = s == b.base[i] && s < new_start;
                cr_assert(ok, "%s: start %lld is neither 0 nor %lld", what, (long long)s, (long long)new_start);
                expect_span(l2, s, b.end, what);
                tu_append_seq(l2, 2, 0);
                cr_assert_eq(ks_log_close(l2), 0);
            }
    cr_log_info("op %d: %llu ops, %u runs, %u crashed inside the operation", op, (unsigned long long)nops, runs,
                mid);
    cr_assert_gt(mid, 0);
}

Test(retention, crash_every_op_delete_records) { crash_every_op(OP_DELETE_RECORDS); }
Test(retention, crash_every_op_retain_time) { crash_every_op(OP_RETAIN_TIME); }
Test(retention, crash_every_op_retain_active) { crash_every_op(OP_RETAIN_ACTIVE); }
Test(retention, crash_every_op_retain_size) { crash_every_op(OP_RETAIN_SIZE); }

/* ---- views on deleted segments ------------------------------------------------- */

/* Verify every batch of the view and its content (seq == offset). */
static void check_view(const ks_view *v, int64_t first, const char *what)
{
    tu_content c = { 0 };
    int64_t next = first;
    int rc = tu_decode_view(v, &next, &c);
    cr_assert_eq(rc, 0, "%s: the held view no longer decodes: %d", what, rc);
    cr_assert_gt(c.n, 0);
    for (size_t i = 0; i < c.n; i++)
        cr_assert(c.r[i].ok && c.r[i].seq == (uint64_t)c.r[i].offset, "%s: bad record at %lld", what,
                  (long long)c.r[i].offset);
    tu_content_free(&c);
}

static void view_survives(bool use_retain, bool close_log)
{
    atomic_store(&fake_now, T0);
    ks_log_config cfg = ret_cfg();
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    built b = { 0 };
    fill_timed(log, &b, 6, 2);
    /* views on the first two segments, whole */
    ks_view v0, v1;
    cr_assert_eq(ks_log_read(log, 0, 1 << 20, &v0), 0);
    cr_assert_eq(ks_log_read(log, b.base[1] + 1, 1 << 20, &v1), 0);
    cr_assert_eq(v0.next_offset, b.base[1], "a view of the whole first segment");
    uint8_t *copy0 = malloc(v0.len);
    memcpy(copy0, v0.data, v0.len);
    check_view(&v0, 0, "before");
    if (use_retain) {
        atomic_store(&fake_now, b.maxts[2] + 1000 + 1);
        cr_assert_eq(retain(log, 1000, -1, NULL), 0);
    } else {
        cr_assert_eq(ks_log_delete_records(log, b.base[3], NULL), 0);
    }
    char p[TU_PATH];
    seg_file(p, tu_dir, 0, ".log");
    cr_assert(!tu_exists(p), "segment 0 still on disk");
    check_view(&v0, 0, "after the delete");
    check_view(&v1, v1.first_offset, "after the delete");
    expect_eoffset(log, v0.next_offset - 1, "a reader's next read below the start");
    /* more appends, more segments deleted: the freed blocks get reused */
    for (int round = 0; round < 4; round++) {
        fill_timed(log, &b, b.nseg + 4, 1);
        if (round == 2 && close_log) {
            tu_log_close(log);
            log = NULL;
            break;
        }
        cr_assert_eq(ks_log_delete_records(log, b.base[b.nseg - 2], NULL), 0);
        check_view(&v0, 0, "after more appends");
        check_view(&v1, v1.first_offset, "after more appends");
    }
    check_view(&v0, 0, "at the end");
    cr_assert(memcmp(copy0, v0.data, v0.len) == 0, "the held view's bytes changed");
    ks_view_release(&v0);
    ks_view_release(&v1);
    ks_view_release(&v1); /* idempotent */
    free(copy0);
    if (log)
        tu_log_close(log);
}

Test(retention, view_survives_delete_records) { view_survives(false, false); }
Test(retention, view_survives_retain) { view_survives(true, false); }
Test(retention, view_survives_delete_and_close) { view_survives(false, true); }

/* ---- ks_space ------------------------------------------------------------------ */

#define NLOGS 2

typedef struct room {
    pthread_mutex_t mu;
    ks_log *logs[NLOGS];
    ks_space *space;
    _Atomic bool refuse;
    _Atomic unsigned calls, drops, refusals;
    _Atomic int err; /* first unexpected error seen inside make_room */
} room;

/* Delete-oldest across the logs: while the reservation does not fit, drop
 * the segment with the oldest largest-timestamp; with none deletable
 * anywhere, roll and drop the caller's own active segment. */
static int make_room(void *arg, ks_log *caller, uint64_t need)
{
    room *r = arg;
    atomic_fetch_add(&r->calls, 1);
    if (atomic_load(&r->refuse)) {
        atomic_fetch_add(&r->refusals, 1);
        return KLOG_EDISKFULL;
    }
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    while (r->space->limit && atomic_load(&r->space->used) + need > r->space->limit) {
        ks_log *best = NULL;
        int64_t best_ts = INT64_MAX;
        for (int i = 0; i < NLOGS; i++) {
            int64_t ts;
            uint64_t bytes;
            if (r->logs[i] && ks_log_oldest(r->logs[i], &ts, &bytes) && ts < best_ts) {
                best_ts = ts;
                best = r->logs[i];
            }
        }
        int64_t freed = ks_log_drop_oldest(best ? best : caller, best == NULL, false);
        if (freed < 0) {
            int e = 0;
            atomic_compare_exchange_strong(&r->err, &e, (int)freed);
            rc = (int)freed;
            break;
        }
        if (freed == 0) {
            rc = KLOG_EDISKFULL;
            break;
        }
        atomic_fetch_add(&r->drops, 1);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static ks_log_config space_cfg(ks_space *sp)
{
    ks_log_config c = ret_cfg();
    c.space = sp;
    return c;
}

/* used == the logs' own counts == the files on disk. */
static void expect_accounting(ks_space *sp, ks_log **logs, char dirs[][TU_PATH], int n, const char *what)
{
    uint64_t sum = 0, files = 0;
    for (int i = 0; i < n; i++) {
        uint64_t d = ks_log_disk_bytes(logs[i]), f = dir_bytes(dirs[i]);
        cr_assert_eq(d, f, "%s: log %d counts %llu bytes, its files hold %llu", what, i, (unsigned long long)d,
                     (unsigned long long)f);
        sum += d;
        files += f;
    }
    cr_assert_eq(atomic_load(&sp->used), sum, "%s: space used %llu, logs hold %llu", what,
                 (unsigned long long)atomic_load(&sp->used), (unsigned long long)sum);
    (void)files;
}

#define SPACE_LIMIT (48 * 1024)
#define SPACE_SLACK (16 * 1024) /* index files of rolls */

/* Append one batch with timestamp = the fake clock, advancing it. */
static int space_append(ks_log *log, int n)
{
    int64_t end = ks_log_end_offset(log), base = -1;
    int64_t ts[16];
    for (int i = 0; i < n; i++)
        ts[i] = atomic_fetch_add(&fake_now, 1);
    tu_batch tb;
    tu_build_ts(&tb, (uint64_t)end, n, ts);
    int rc = tu_append1(log, &tb, 0, &base);
    tu_batch_free(&tb);
    return rc;
}

Test(retention, space_delete_oldest)
{
    atomic_store(&fake_now, T0);
    ks_space sp = { .limit = SPACE_LIMIT };
    atomic_init(&sp.used, 0);
    room r = { .space = &sp };
    pthread_mutex_init(&r.mu, NULL);
    sp.make_room = make_room;
    sp.arg = &r;
    ks_log_config cfg = space_cfg(&sp);
    char dirs[NLOGS][TU_PATH];
    ks_log *logs[NLOGS];
    for (int i = 0; i < NLOGS; i++) {
        snprintf(dirs[i], TU_PATH, "%s/log%d", tu_root, i);
        logs[i] = tu_log_open(tu_io, dirs[i], &cfg);
        r.logs[i] = logs[i];
    }
    expect_accounting(&sp, logs, dirs, NLOGS, "fresh");
    tu_rng rng = { 3 };
    uint64_t max_used = 0;
    for (int k = 0; k < 3000; k++) {
        /* log 0 gets three times the traffic of log 1 */
        int li = tu_range(&rng, 0, 3) == 0 ? 1 : 0;
        int rc = space_append(logs[li], (int)tu_range(&rng, 1, 8));
        cr_assert_eq(rc, 0, "append %d to log %d: %s", k, li, klog_strerror(rc));
        uint64_t u = atomic_load(&sp.used);
        max_used = u > max_used ? u : max_used;
        cr_assert_leq(u, SPACE_LIMIT + SPACE_SLACK, "append %d: used %llu over the limit %u", k,
                      (unsigned long long)u, SPACE_LIMIT);
        if (k % 97 == 0) {
            char what[48];
            snprintf(what, sizeof what, "after append %d", k);
            expect_accounting(&sp, logs, dirs, NLOGS, what);
        }
    }
    cr_assert_eq(atomic_load(&r.err), 0, "make_room met %s", klog_strerror(atomic_load(&r.err)));
    cr_assert_gt(atomic_load(&r.drops), 10);
    expect_accounting(&sp, logs, dirs, NLOGS, "at the end");
    /* both logs read back from their start; the oldest data went first, so
     * the logs' first timestamps are close to each other */
    for (int i = 0; i < NLOGS; i++) {
        int64_t s = ks_log_start_offset(logs[i]);
        cr_assert_gt(s, 0, "log %d lost nothing: delete-oldest never picked it", i);
        expect_span(logs[i], s, ks_log_end_offset(logs[i]), "space");
    }
    cr_log_info("make_room: %u calls, %u drops; max used %llu of %u", atomic_load(&r.calls),
                atomic_load(&r.drops), (unsigned long long)max_used, SPACE_LIMIT);
    /* reopen one: it counts itself again */
    uint64_t before = atomic_load(&sp.used), d1 = ks_log_disk_bytes(logs[1]);
    tu_log_close(logs[1]);
    r.logs[1] = NULL;
    uint64_t closed = atomic_load(&sp.used);
    cr_assert_eq(closed, before - d1, "closing a log changed used from %llu to %llu (its bytes: %llu)",
                 (unsigned long long)before, (unsigned long long)closed, (unsigned long long)d1);
    logs[1] = tu_log_open(tu_io, dirs[1], &cfg);
    r.logs[1] = logs[1];
    expect_accounting(&sp, logs, dirs, NLOGS, "reopened");
    for (int i = 0; i < NLOGS; i++)
        tu_log_close(logs[i]);
    pthread_mutex_destroy(&r.mu);
}

typedef struct sp_writer {
    ks_log *log;
    ks_space *sp;
    int n;
    int err;
    uint64_t max_used;
    uint64_t seed;
} sp_writer;

static void *sp_writer_main(void *arg)
{
    sp_writer *w = arg;
    tu_rng rng = { w->seed };
    for (int k = 0; k < w->n; k++) {
        int rc = space_append(w->log, (int)tu_range(&rng, 1, 8));
        if (rc != 0) {
            w->err = rc;
            break;
        }
        uint64_t u = atomic_load(&w->sp->used);
        w->max_used = u > w->max_used ? u : w->max_used;
    }
    return NULL;
}

/* The same with a thread per log: make_room runs on both at once. */
Test(retention, space_delete_oldest_two_threads)
{
    atomic_store(&fake_now, T0);
    ks_space sp = { .limit = SPACE_LIMIT };
    atomic_init(&sp.used, 0);
    room r = { .space = &sp };
    pthread_mutex_init(&r.mu, NULL);
    sp.make_room = make_room;
    sp.arg = &r;
    ks_log_config cfg = space_cfg(&sp);
    char dirs[NLOGS][TU_PATH];
    ks_log *logs[NLOGS];
    sp_writer w[NLOGS];
    pthread_t th[NLOGS];
    for (int i = 0; i < NLOGS; i++) {
        snprintf(dirs[i], TU_PATH, "%s/log%d", tu_root, i);
        logs[i] = tu_log_open(tu_io, dirs[i], &cfg);
        r.logs[i] = logs[i];
    }
    for (int i = 0; i < NLOGS; i++) {
        w[i] = (sp_writer){ .log = logs[i], .sp = &sp, .n = 1500, .seed = 100 + (uint64_t)i };
        cr_assert_eq(pthread_create(&th[i], NULL, sp_writer_main, &w[i]), 0);
    }
    for (int i = 0; i < NLOGS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NLOGS; i++) {
        cr_assert_eq(w[i].err, 0, "writer %d: %s", i, klog_strerror(w[i].err));
        cr_assert_leq(w[i].max_used, SPACE_LIMIT + 2 * SPACE_SLACK, "writer %d saw used %llu", i,
                      (unsigned long long)w[i].max_used);
    }
    cr_assert_eq(atomic_load(&r.err), 0, "make_room met %s", klog_strerror(atomic_load(&r.err)));
    expect_accounting(&sp, logs, dirs, NLOGS, "after two writers");
    cr_assert_leq(atomic_load(&sp.used), SPACE_LIMIT + SPACE_SLACK);
    for (int i = 0; i < NLOGS; i++) {
        expect_span(logs[i], ks_log_start_offset(logs[i]), ks_log_end_offset(logs[i]), "two writers");
        tu_log_close(logs[i]);
    }
    pthread_mutex_destroy(&r.mu);
}

/* A refusing make_room: appends fail with KLOG_EDISKFULL, nothing else
 * changes, and DeleteRecords makes room again. */
Test(retention, space_refused)
{
    atomic_store(&fake_now, T0);
    ks_space sp = { .limit = SPACE_LIMIT };
    atomic_init(&sp.used, 0);
    room r = { .space = &sp };
    pthread_mutex_init(&r.mu, NULL);
    atomic_store(&r.refuse, true);
    sp.make_room = make_room;
    sp.arg = &r;
    ks_log_config cfg = space_cfg(&sp);
    char dirs[NLOGS][TU_PATH];
    ks_log *logs[NLOGS];
    for (int i = 0; i < NLOGS; i++) {
        snprintf(dirs[i], TU_PATH, "%s/log%d", tu_root, i);
        logs[i] = tu_log_open(tu_io, dirs[i], &cfg);
        r.logs[i] = logs[i];
    }
    for (int k = 0; k < 20; k++)
        cr_assert_eq(space_append(logs[1], 3), 0);
    int rc = 0, k = 0;
    for (; k < 100000 && rc == 0; k++)
        rc = space_append(logs[0], 5);
    cr_assert_eq(rc, KLOG_EDISKFULL, "append %d: %s", k, klog_strerror(rc));
    cr_assert_gt(atomic_load(&r.refusals), 0);
    cr_assert_eq(ks_log_error(logs[0]), 0, "a refused reservation must not make the log read-only");
    uint64_t used = atomic_load(&sp.used);
    cr_assert_leq(used, SPACE_LIMIT + SPACE_SLACK);
    int64_t end0 = ks_log_end_offset(logs[0]);
    expect_accounting(&sp, logs, dirs, NLOGS, "full");
    /* more attempts fail the same way and change nothing */
    for (int j = 0; j < 5; j++)
        cr_assert_eq(space_append(logs[0], 5), KLOG_EDISKFULL);
    cr_assert_eq(space_append(logs[1], 5), KLOG_EDISKFULL);
    cr_assert_eq(ks_log_end_offset(logs[0]), end0);
    cr_assert_eq(atomic_load(&sp.used), used, "failed appends changed used");
    /* earlier data is readable */
    expect_span(logs[0], 0, end0, "full");
    expect_span(logs[1], 0, 60, "full, other log");
    /* DeleteRecords frees log 0's sealed segments */
    int64_t ns;
    cr_assert_eq(ks_log_delete_records(logs[0], -1, &ns), 0);
    cr_assert_lt(atomic_load(&sp.used), used);
    expect_accounting(&sp, logs, dirs, NLOGS, "after delete_records");
    for (int j = 0; j < 20; j++) {
        rc = space_append(logs[0], 5);
        cr_assert_eq(rc, 0, "append %d after delete_records: %s", j, klog_strerror(rc));
    }
    rc = space_append(logs[1], 5);
    cr_assert_eq(rc, 0, "log 1 after delete_records of log 0: %s", klog_strerror(rc));
    expect_span(logs[0], end0, end0 + 100, "after delete_records");
    expect_accounting(&sp, logs, dirs, NLOGS, "appending again");
    for (int i = 0; i < NLOGS; i++)
        tu_log_close(logs[i]);
    pthread_mutex_destroy(&r.mu);
}

/* Retention frees space in the ks_space too. */
Test(retention, space_follows_retention)
{
    atomic_store(&fake_now, T0);
    ks_space sp = { .limit = 0 };
    atomic_init(&sp.used, 0);
    ks_log_config cfg = space_cfg(&sp);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    built b = { 0 };
    fill_timed(log, &b, 8, 2);
    char dirs[1][TU_PATH];
    snprintf(dirs[0], TU_PATH, "%s", tu_dir);
    expect_accounting(&sp, &log, dirs, 1, "filled");
    uint64_t u0 = atomic_load(&sp.used), freed = 0;
    atomic_store(&fake_now, b.maxts[3] + 1000 + 1);
    cr_assert_eq(retain(log, 1000, -1, &freed), 0);
    cr_assert_eq(atomic_load(&sp.used), u0 - freed);
    expect_accounting(&sp, &log, dirs, 1, "after retention");
    cr_assert_gt(ks_log_drop_oldest(log, false, false), 0);
    expect_accounting(&sp, &log, dirs, 1, "after drop_oldest");
    /* drop_oldest never takes the active segment unless asked to roll */
    while (ks_log_segment_count(log) > 1)
        cr_assert_gt(ks_log_drop_oldest(log, false, false), 0);
    cr_assert_eq(ks_log_drop_oldest(log, false, false), 0);
    int64_t ts;
    uint64_t bytes;
    cr_assert(!ks_log_oldest(log, &ts, &bytes), "the active segment is not deletable");
    cr_assert_gt(ks_log_drop_oldest(log, true, false), 0, "roll: the active segment goes");
    cr_assert_eq(ks_log_start_offset(log), b.end);
    expect_accounting(&sp, &log, dirs, 1, "after drop_oldest with roll");
    cr_assert_eq(ks_log_drop_oldest(log, true, false), 0, "an empty active segment: nothing to drop");
    /* ks_log_roll on an empty active segment does nothing */
    unsigned segs = ks_log_segment_count(log);
    cr_assert_eq(ks_log_roll(log), 0);
    cr_assert_eq(ks_log_segment_count(log), segs);
    tu_append_seq(log, 3, 0);
    cr_assert_eq(ks_log_roll(log), 0);
    cr_assert_eq(ks_log_segment_count(log), segs + 1);
    expect_accounting(&sp, &log, dirs, 1, "after a roll");
    tu_log_close(log);
}

/* One append call of many batches adding up to more than the budget allows
 * at once: room is made a few batches at a time, every batch goes in,
 * `used` stays within the limit, and everything reads back. */
Test(retention, space_multi_batch_append)
{
    atomic_store(&fake_now, T0);
    ks_space sp = { .limit = SPACE_LIMIT };
    atomic_init(&sp.used, 0);
    room r = { .space = &sp };
    pthread_mutex_init(&r.mu, NULL);
    sp.make_room = make_room;
    sp.arg = &r;
    ks_log_config cfg = space_cfg(&sp);
    char dirs[1][TU_PATH];
    snprintf(dirs[0], TU_PATH, "%s", tu_dir);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    r.logs[0] = log;
    const unsigned counts[] = { 4, 10, 25, 40, 10, 40 };
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        unsigned n = counts[k];
        tu_batch b[40];
        ks_batch kb[40];
        int64_t end = ks_log_end_offset(log), seq = end;
        size_t total = 0;
        for (unsigned i = 0; i < n; i++) {
            cr_assert_eq(tu_build_ex(&b[i], (uint64_t)seq, 2, NULL, 1400), 0);
            seq += 2;
            kb[i] = (ks_batch){ .batch = b[i].buf, .len = b[i].len };
            total += b[i].len;
        }
        int rc = ks_log_append(log, kb, n, 0);
        cr_assert_eq(rc, 0, "append of %u batches (%zu bytes, limit %u): %s", n, total, SPACE_LIMIT,
                     klog_strerror(rc));
        for (unsigned i = 0; i < n; i++) {
            cr_assert_eq(kb[i].result, 0, "batch %u of %u: %s", i, n, klog_strerror(kb[i].result));
            cr_assert_eq(kb[i].base_offset, end + 2 * (int64_t)i);
            tu_batch_free(&b[i]);
        }
        cr_assert_leq(atomic_load(&sp.used), SPACE_LIMIT + SPACE_SLACK, "%u batches of %zu bytes: used %llu", n,
                      total, (unsigned long long)atomic_load(&sp.used));
        expect_accounting(&sp, &log, dirs, 1, "multi-batch append");
        expect_span(log, ks_log_start_offset(log), seq, "multi-batch append");
        /* a call that fits in the budget with room to spare keeps all its
         * batches (only older segments go); a bigger one must drop its own
         * first batches to take its last ones */
        if (total + 2 * cfg.segment_bytes < SPACE_LIMIT)
            cr_assert_leq(ks_log_start_offset(log), end, "%u batches of %zu bytes: some of them were dropped", n,
                          total);
    }
    cr_assert_eq(atomic_load(&r.err), 0, "make_room met %s", klog_strerror(atomic_load(&r.err)));
    tu_log_close(log);
    pthread_mutex_destroy(&r.mu);
}
