/*
 * test/storage/compaction.c - log compaction (lib/storage/storage.h,
 * "compaction"): ks_log_clean and what it leaves behind.
 *
 * Every test writes a stream of keyed records whose content is known by
 * offset (the test is the only writer, so offset == index in the stream):
 * keys "key-N" from a small key space, a few null keys, ~10% tombstones,
 * values holding the offset and a compressible fill, batches of 1..20
 * records with codec none, lz4 or zstd, timestamps from an injected clock.
 *
 * What is checked after a pass (check_model), with cp = ks_log_clean_point
 * after the pass and `now` the clock at the pass:
 *   (a) the whole log reads from the start: every batch verifies, offsets
 *       strictly increase (gaps allowed), every record is byte for byte
 *       the one appended at its offset (key, value or null, timestamp);
 *   (b) per key, the latest record present is the model's latest; the one
 *       exception: a latest that is a tombstone may be gone, only if it lies
 *       below cp and its timestamp is older than now - delete_retention_ms,
 *       and then no record of the key is left;
 *   (c) below cp: a key whose latest record lies below cp appears exactly
 *       once in the whole log (the guarantee the lead asked for); moreover
 *       no key has two records below cp and no null-key record is below cp
 *       (both follow from "offsets below cp were cleaned at least once" with
 *       a map holding every key of the cleaned dirty range);
 *   (d) the end offset (and the start) is unchanged by cleaning;
 *   (e) no *.cleaned or *.swap file is left; close + reopen gives the same
 *       records at the same offsets.
 * After a pass that advanced the clean point, a tombstone that is the latest
 * for its key, lies below the new cp and is older than now - retention must
 * be gone ("goes once ..." in the contract).
 *
 * Tests: the model over 40 seeds (with DeleteRecords and size retention
 * moving the start now and then, and time retention after cleaning);
 * min_dirty_ratio; min_compaction_lag_ms; a 64 KiB key map converging over
 * several passes; the throttle cancelling at each of its calls; a crash at
 * every I/O op of a pass; appends completing while the cleaner is held in
 * its throttle; a reader scanning during passes and DeleteRecords; a
 * corrupt batch refused; cleaning after DeleteRecords; and regressions:
 * reads in a gap before an uncleaned segment, truncation into a gap.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <dirent.h>

#include "util.h"

/* The scratch root goes on /dev/shm when there is one: the crash-at-every-
 * step test reruns a pass hundreds of times and every run syncs; on tmpfs a
 * sync costs nothing, and crashes are simulated by the fault backend
 * whatever the file system. */
static void cp_setup(void)
{
    struct stat st;
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0) {
        snprintf(tu_root, sizeof tu_root, "/dev/shm/klog-st-XXXXXX");
        if (mkdtemp(tu_root)) {
            snprintf(tu_dir, sizeof tu_dir, "%s/log", tu_root);
            tu_io = tu_io_open();
            return;
        }
    }
    tu_setup();
}

TestSuite(compaction, .init = cp_setup, .fini = tu_teardown, .timeout = 180);

/* ---- clock ------------------------------------------------------------------ */

#define T0 1700000000000ll
static _Atomic int64_t fake_now = T0;
static int64_t fake_clock(void *arg)
{
    (void)arg;
    return atomic_load(&fake_now);
}

/* ---- the stream ----------------------------------------------------------- */

typedef struct srec {
    int32_t key;    /* -1: null key */
    bool tomb;      /* null value */
    uint32_t vlen;  /* value length (8.., holds the offset) */
    int64_t ts;
} srec;

#define VMAX 1024   /* longest value */

typedef struct stream {
    srec *r;
    size_t n, cap;
    int nkeys;
    uint32_t vextra;  /* values are 8 + 0..vextra bytes (0: 80) */
    bool plain;       /* every batch uncompressed (else a random codec each) */
    /* pre-generated batch plan (concurrent tests): sizes and codecs */
    int *bsize;
    uint8_t *bcodec;
    size_t nb, bcap;
} stream;

static void stream_free(stream *s)
{
    free(s->r);
    free(s->bsize);
    free(s->bcodec);
    memset(s, 0, sizeof *s);
}

static void gen_records(stream *s, tu_rng *rng, int n, int64_t ts)
{
    if (s->n + (size_t)n > s->cap) {
        s->cap = (s->cap + (size_t)n) * 2;
        s->r = realloc(s->r, s->cap * sizeof *s->r);
        cr_assert_not_null(s->r);
    }
    for (int i = 0; i < n; i++) {
        srec *e = &s->r[s->n++];
        e->key = tu_range(rng, 0, 99) < 2 ? -1 : (int32_t)tu_range(rng, 0, (uint64_t)s->nkeys - 1);
        e->tomb = e->key >= 0 && tu_range(rng, 0, 99) < 10;
        e->vlen = 8 + (uint32_t)tu_range(rng, 0, s->vextra ? s->vextra : 80);
        e->ts = ts + (int64_t)tu_range(rng, 0, 3);
    }
}

static int key_str(char *k, int32_t key) { return snprintf(k, 16, "key-%d", key); }

static void value_fill(uint8_t *v, uint64_t off, uint32_t vlen)
{
    memcpy(v, &off, 8);
    memset(v + 8, 'a' + (int)(off % 26), vlen - 8);
}

static const enum kf_codec_id codec_ids[] = { KF_CODEC_NONE, KF_CODEC_LZ4, KF_CODEC_ZSTD };

/* Seal records [first, first + n) of the stream.  Owned result. */
static uint8_t *build_batch(const stream *s, size_t first, int n, enum kf_codec_id cid, kf_codec *c, size_t *len)
{
    kf_record recs[32];
    char keys[32][16];
    static _Thread_local uint8_t vals[32][VMAX];
    size_t cap = KF_HDR_SIZE;
    cr_assert_leq(n, 32);
    for (int i = 0; i < n; i++) {
        const srec *e = &s->r[first + (size_t)i];
        int kl = e->key >= 0 ? key_str(keys[i], e->key) : -1;
        value_fill(vals[i], first + (size_t)i, e->vlen);
        recs[i] = (kf_record){ .key = e->key >= 0 ? keys[i] : NULL, .key_len = kl,
                               .value = e->tomb ? NULL : vals[i], .value_len = e->tomb ? -1 : (int32_t)e->vlen,
                               .timestamp = e->ts };
        cap += kf_record_size_bound(&recs[i]);
    }
    uint8_t *buf = malloc(cap);
    kf_builder b;
    kf_builder_init(&b, buf, cap, KF_RECORD_MAX_DEFAULT);
    for (int i = 0; i < n; i++)
        cr_assert_eq(kf_builder_add(&b, &recs[i]), 0);
    kf_batch_meta m = { .producer_id = -1, .producer_epoch = -1, .base_sequence = -1, .codec = cid };
    const uint8_t *out;
    int rc = kf_builder_finish(&b, &m, c, &out, len);
    cr_assert_eq(rc, 0, "finish: %s", klog_strerror(rc));
    uint8_t *res = malloc(*len);
    memcpy(res, out, *len);
    free(buf);
    return res;
}

/* Append records [first, first + n) as one batch; no assertions (for
 * worker threads).  Returns 0, the append's error, or TU_EGAP when the
 * offset assigned is not `first`. */
static int append_recs(ks_log *log, const stream *s, size_t first, int n, enum kf_codec_id cid, kf_codec *c)
{
    size_t len;
    uint8_t *b = build_batch(s, first, n, cid, c, &len);
    ks_batch kb = { .batch = b, .len = len };
    int rc = ks_log_append(log, &kb, 1, 0);
    if (rc == 0 && kb.result != 0)
        rc = kb.result;
    if (rc == 0 && kb.base_offset != (int64_t)first)
        rc = TU_EGAP;
    free(b);
    return rc;
}

/* Generate and append nb batches of 1..20 records with random codecs,
 * advancing the clock 1..50 ms per batch. */
static void append_random(ks_log *log, stream *s, tu_rng *rng, int nb, kf_codec *c)
{
    for (int k = 0; k < nb; k++) {
        int n = (int)tu_range(rng, 1, 20);
        int64_t now = atomic_fetch_add(&fake_now, (int64_t)tu_range(rng, 1, 50));
        size_t first = s->n;
        cr_assert_eq(ks_log_end_offset(log), (int64_t)first);
        gen_records(s, rng, n, now);
        enum kf_codec_id cid = codec_ids[tu_range(rng, 0, 2)];
        int rc = append_recs(log, s, first, n, s->plain ? KF_CODEC_NONE : cid, c);
        cr_assert_eq(rc, 0, "append at %zu: %d (%s)", first, rc, klog_strerror(rc));
    }
}

/* ---- reading the log back --------------------------------------------------- */

#define E_ORDER 101   /* offsets not strictly increasing */
#define E_CONTENT 102 /* a record differs from what was appended there */
#define E_VIEW 103    /* view fields disagree with its batches */

typedef struct scan_out {
    int64_t *off;
    size_t n, cap;
    int err;
    int64_t err_at;
    const char *err_what; /* which step failed */
} scan_out;

static void scan_free(scan_out *o)
{
    free(o->off);
    memset(o, 0, sizeof *o);
}

static bool rec_ok(const stream *s, const kf_record_view *v)
{
    if (v->offset < 0 || (size_t)v->offset >= s->n)
        return false;
    const srec *e = &s->r[v->offset];
    if (v->timestamp != e->ts)
        return false;
    if (e->key < 0) {
        if (v->key_len != -1 || v->key)
            return false;
    } else {
        char k[16];
        int kl = key_str(k, e->key);
        if (v->key_len != kl || memcmp(v->key, k, (size_t)kl) != 0)
            return false;
    }
    if (e->tomb)
        return v->value_len == -1 && v->value == NULL;
    uint8_t want[VMAX];
    value_fill(want, (uint64_t)v->offset, e->vlen);
    return v->value_len == (int32_t)e->vlen && memcmp(v->value, want, e->vlen) == 0;
}

/*
 * Read the log from its start to the end it had when the scan began (gaps
 * allowed), verifying every batch and record.  No assertions (thread-safe):
 * returns 0 or an error, with o->err_at.  With want_offs, the offsets read
 * are collected in o->off.
 */
static int scan_log(ks_log *log, const stream *s, kf_codec *c, scan_out *o, bool want_offs)
{
    memset(o, 0, sizeof *o);
    int64_t start = ks_log_start_offset(log), end = ks_log_end_offset(log);
    int64_t x = start, last = start - 1;
    int rc = 0;
    while (x < end && rc == 0) {
        ks_view v;
        rc = ks_log_read(log, x, 16 * 1024, &v);
        if (rc != 0) {
            o->err_what = "ks_log_read";
            break;
        }
        if (v.len == 0) {
            ks_view_release(&v);
            break; /* nothing left: the tail was compacted away */
        }
        /* only the batch holding the start (after DeleteRecords inside a
         * batch) may begin below the offset asked for */
        if (v.first_offset < x && x != start) {
            rc = E_ORDER;
            o->err_what = "view starts below the offset asked for";
        }
        const uint8_t *p = v.data, *pe = v.data + v.len;
        int64_t batch_next = v.first_offset < x ? v.first_offset : x;
        while (rc == 0 && p < pe) {
            kf_batch_info bi;
            ssize_t bl = kf_batch_parse(p, (size_t)(pe - p), &bi);
            o->err_at = x;
            if (bl <= 0) {
                rc = bl < 0 ? (int)bl : E_VIEW;
                o->err_what = "kf_batch_parse";
                break;
            }
            o->err_at = bi.base_offset;
            if (bi.base_offset < batch_next || bi.record_count < 1) {
                rc = E_ORDER;
                o->err_what = "batch base offset";
                break;
            }
            if ((rc = kf_batch_verify(p, (size_t)bl)) != 0) {
                o->err_what = "kf_batch_verify";
                break;
            }
            const uint8_t *recs;
            size_t rl;
            if ((rc = kf_batch_records(p, (size_t)bl, c, &recs, &rl)) != 0) {
                o->err_what = "kf_batch_records";
                break;
            }
            kf_iter it;
            kf_record_view r;
            kf_iter_init(&it, &bi, recs, rl);
            int ir;
            while ((ir = kf_iter_next(&it, &r)) == 1) {
                o->err_at = r.offset;
                if (r.offset < start) { /* below a DeleteRecords start */
                    if (!rec_ok(s, &r)) {
                        rc = E_CONTENT;
                        o->err_what = "record content";
                        break;
                    }
                    continue;
                }
                if (r.offset <= last || r.offset > kf_batch_last_offset(&bi)) {
                    rc = E_ORDER;
                    o->err_what = "record offset";
                    break;
                }
                if (!rec_ok(s, &r)) {
                    rc = E_CONTENT;
                    o->err_what = "record content";
                    break;
                }
                last = r.offset;
                if (want_offs) {
                    if (o->n == o->cap) {
                        o->cap = o->cap ? o->cap * 2 : 1024;
                        o->off = realloc(o->off, o->cap * sizeof *o->off);
                    }
                    o->off[o->n++] = r.offset;
                }
            }
            if (rc == 0 && ir < 0) {
                rc = ir;
                o->err_what = "kf_iter_next";
            }
            batch_next = kf_batch_last_offset(&bi) + 1;
            p += bl;
        }
        if (rc == 0 && v.next_offset != batch_next) {
            rc = E_VIEW;
            o->err_what = "view next_offset";
        }
        if (rc == 0)
            x = v.next_offset;
        ks_view_release(&v);
    }
    if (rc != 0) {
        o->err = rc;
        if (o->err_what && strcmp(o->err_what, "ks_log_read") == 0)
            o->err_at = x;
    }
    return rc;
}

static const char *err_str(int rc)
{
    switch (rc) {
    case E_ORDER: return "offsets not strictly increasing";
    case E_CONTENT: return "a record differs from what was appended at its offset";
    case E_VIEW: return "view fields disagree with its batches";
    default: return klog_strerror(rc);
    }
}

/* No *.cleaned, *.swap (or their temporaries) in dir. */
static void expect_no_temp(const char *dir, const char *what)
{
    static tu_name names[1024];
    const char *sfx[] = { ".cleaned", ".swap" };
    for (int i = 0; i < 2; i++) {
        size_t n = tu_list(dir, sfx[i], names, 1024);
        cr_assert_eq(n, 0, "%s: %s left in the directory", what, names[0]);
    }
}

/* ---- the model check ------------------------------------------------------------ */

typedef struct ck {
    int64_t now;     /* clock at the last pass */
    int64_t D;       /* delete_retention_ms */
    bool advanced;   /* the last pass advanced the clean point */
    int64_t end;     /* end offset expected */
    int64_t start;
    unsigned tomb_gone; /* out: tombstones found removed */
} ck;

/* Check (a)-(d) on an open log; returns the offsets read (caller frees). */
static scan_out check_model(ks_log *log, const stream *s, kf_codec *c, ck *k, const char *what)
{
    cr_assert_eq(ks_log_end_offset(log), k->end, "%s: end %lld, expected %lld", what,
                 (long long)ks_log_end_offset(log), (long long)k->end);
    cr_assert_eq(ks_log_start_offset(log), k->start, "%s: start moved to %lld", what,
                 (long long)ks_log_start_offset(log));
    scan_out o;
    int rc = scan_log(log, s, c, &o, true);
    cr_assert_eq(rc, 0, "%s: reading the log failed at %lld: %s: %s", what, (long long)o.err_at, o.err_what,
                 err_str(rc));
    int64_t cp = ks_log_clean_point(log);
    cr_assert_leq(cp, k->end, "%s: clean point %lld past the end", what, (long long)cp);

    int nk = s->nkeys;
    int64_t *latest = malloc((size_t)nk * sizeof *latest), *present = malloc((size_t)nk * sizeof *present);
    unsigned *count = calloc((size_t)nk, sizeof *count), *below = calloc((size_t)nk, sizeof *below);
    for (int i = 0; i < nk; i++)
        latest[i] = present[i] = -1;
    for (int64_t off = k->start; off < k->end; off++)
        if (s->r[off].key >= 0)
            latest[s->r[off].key] = off;
    for (size_t i = 0; i < o.n; i++) {
        const srec *e = &s->r[o.off[i]];
        if (e->key < 0) {
            cr_assert_geq(o.off[i], cp, "%s: null-key record at %lld below the clean point %lld", what,
                          (long long)o.off[i], (long long)cp);
            continue;
        }
        count[e->key]++;
        present[e->key] = o.off[i];
        if (o.off[i] < cp)
            below[e->key]++;
    }
    for (int key = 0; key < nk; key++) {
        int64_t m = latest[key];
        if (m < 0) {
            cr_assert_eq(count[key], 0);
            continue;
        }
        const srec *e = &s->r[m];
        bool expired = e->tomb && m < cp && e->ts < k->now - k->D;
        if (present[key] != m) {
            cr_assert(e->tomb, "%s: key %d: latest present at %lld, expected the value at %lld", what, key,
                      (long long)present[key], (long long)m);
            cr_assert(expired, "%s: key %d: tombstone at %lld (ts %lld, clean point %lld, horizon %lld) gone too "
                      "early (latest present %lld)", what, key, (long long)m, (long long)e->ts, (long long)cp,
                      (long long)(k->now - k->D), (long long)present[key]);
            cr_assert_eq(count[key], 0, "%s: key %d: its tombstone at %lld went but %u older records stay", what,
                         key, (long long)m, count[key]);
            k->tomb_gone++;
        } else if (expired && k->advanced) {
            cr_assert_fail("%s: key %d: tombstone at %lld (ts %lld) below the clean point %lld and older than "
                           "%lld survived a pass", what, key, (long long)m, (long long)e->ts, (long long)cp,
                           (long long)(k->now - k->D));
        }
        if (m < cp)
            cr_assert_leq(count[key], 1, "%s: key %d (latest at %lld, below the clean point %lld) appears %u times",
                          what, key, (long long)m, (long long)cp, count[key]);
        cr_assert_leq(below[key], 1, "%s: key %d has %u records below the clean point %lld", what, key, below[key],
                      (long long)cp);
    }
    free(latest);
    free(present);
    free(count);
    free(below);
    return o;
}

static void expect_same_offsets(const scan_out *a, const scan_out *b, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: %zu records, before %zu", what, b->n, a->n);
    for (size_t i = 0; i < a->n; i++)
        cr_assert_eq(a->off[i], b->off[i], "%s: record %zu at offset %lld, before at %lld", what, i,
                     (long long)b->off[i], (long long)a->off[i]);
}

static ks_clean_config clean_cfg(int64_t D)
{
    ks_clean_config c;
    ks_clean_config_init(&c);
    c.delete_retention_ms = D;
    c.min_compaction_lag_ms = 0;
    c.min_dirty_ratio = 0;
    return c;
}

static ks_log_config log_cfg(uint64_t segment_bytes)
{
    ks_log_config c = tu_small_cfg(KS_DURABILITY_NONE);
    c.segment_bytes = segment_bytes;
    c.clock_ms = fake_clock;
    return c;
}

/* One pass; checks the stats against the log and returns them. */
static ks_clean_stats do_clean(ks_log *log, const ks_clean_config *cc, const char *what)
{
    ks_clean_stats st;
    memset(&st, 0xa5, sizeof st);
    int64_t end = ks_log_end_offset(log), cp0 = ks_log_clean_point(log);
    int rc = ks_log_clean(log, cc, &st);
    cr_assert_eq(rc, 0, "%s: ks_log_clean: %s", what, klog_strerror(rc));
    cr_assert_eq(ks_log_end_offset(log), end, "%s: cleaning moved the end", what);
    cr_assert_eq(st.clean_point, ks_log_clean_point(log), "%s: stats say clean point %lld, the log %lld", what,
                 (long long)st.clean_point, (long long)ks_log_clean_point(log));
    cr_assert_geq(ks_log_clean_point(log), cp0, "%s: the clean point went back", what);
    if (st.cleaned) {
        cr_assert_leq(st.records_kept, st.records_read);
    }
    return st;
}

/* ---- the model test --------------------------------------------------------------- */

static void model_seed(uint64_t seed, unsigned *tomb_gone, unsigned *passes)
{
    tu_rng rng = { seed * 1000003 };
    char dir[TU_PATH], what[96];
    snprintf(dir, sizeof dir, "%s/m%llu", tu_root, (unsigned long long)seed);
    atomic_store(&fake_now, T0);
    stream s = { .nkeys = (int)tu_range(&rng, 5, 200) };
    int64_t D = (int64_t)tu_range(&rng, 300, 3000);
    ks_log_config cfg = log_cfg(tu_range(&rng, 0, 1) ? 2048 : 4096);
    ks_clean_config cc = clean_cfg(D);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    ck k = { .D = D };
    int rounds = (int)tu_range(&rng, 6, 10);
    for (int round = 0; round < rounds; round++) {
        append_random(log, &s, &rng, (int)tu_range(&rng, 3, 40), c);
        bool rolled = tu_range(&rng, 0, 1);
        if (rolled)
            cr_assert_eq(ks_log_roll(log), 0);
        snprintf(what, sizeof what, "seed %llu round %d (%d keys)", (unsigned long long)seed, round, s.nkeys);
        int64_t cp0 = ks_log_clean_point(log);
        ks_clean_stats st = do_clean(log, &cc, what);
        (*passes)++;
        k.now = atomic_load(&fake_now);
        k.end = (int64_t)s.n;
        k.advanced = st.cleaned && ks_log_clean_point(log) > cp0;
        if (rolled)
            cr_assert_eq(ks_log_clean_point(log), k.end,
                         "%s: after a roll every segment is cleanable: clean point %lld, end %lld", what,
                         (long long)ks_log_clean_point(log), (long long)k.end);
        scan_out o = check_model(log, &s, c, &k, what);
        expect_no_temp(dir, what);
        /* now and then the start moves too: DeleteRecords anywhere, or
         * size retention (whole segments) */
        uint64_t dice = tu_range(&rng, 0, 11);
        if (dice < 3 || dice == 11) {
            int64_t st0 = ks_log_start_offset(log);
            if (dice < 3)
                cr_assert_eq(ks_log_delete_records(log, (int64_t)tu_range(&rng, (uint64_t)st0, (uint64_t)k.end), NULL), 0);
            else {
                ks_retention rr = { .retention_ms = -1, .retention_bytes = (int64_t)ks_log_size_bytes(log) / 2 };
                cr_assert_eq(ks_log_retain(log, &rr, NULL), 0);
            }
            k.start = ks_log_start_offset(log);
            char w1[128];
            snprintf(w1, sizeof w1, "%s, start moved %lld -> %lld", what, (long long)st0, (long long)k.start);
            scan_free(&o);
            o = check_model(log, &s, c, &k, w1);
        }
        if (round % 3 == 2 || round == rounds - 1) {
            int64_t cp = ks_log_clean_point(log);
            tu_log_close(log);
            expect_no_temp(dir, what);
            log = tu_log_open(tu_io, dir, &cfg);
            char w2[128];
            snprintf(w2, sizeof w2, "%s, reopened", what);
            scan_out o2 = check_model(log, &s, c, &k, w2);
            expect_same_offsets(&o, &o2, w2);
            scan_free(&o2);
            if (ks_log_clean_point(log) != cp)
                cr_log_warn("%s: clean point %lld before close, %lld after reopen", what, (long long)cp,
                            (long long)ks_log_clean_point(log));
        }
        scan_free(&o);
        atomic_fetch_add(&fake_now, (int64_t)tu_range(&rng, 0, 1500));
    }
    /* cleaned segments keep their largest timestamps (the batches keep
     * their max_timestamp), also as read back from disk: time retention
     * with the horizon at the oldest record present drops no record */
    {
        scan_out o0;
        cr_assert_eq(scan_log(log, &s, c, &o0, true), 0);
        int64_t oldest = INT64_MAX;
        for (size_t i = 0; i < o0.n; i++)
            oldest = s.r[o0.off[i]].ts < oldest ? s.r[o0.off[i]].ts : oldest;
        if (o0.n) {
            ks_retention rr = { .retention_ms = atomic_load(&fake_now) - oldest, .retention_bytes = -1 };
            cr_assert_eq(ks_log_retain(log, &rr, NULL), 0);
            k.start = ks_log_start_offset(log);
            snprintf(what, sizeof what, "seed %llu: time retention after cleaning", (unsigned long long)seed);
            scan_out o1 = check_model(log, &s, c, &k, what);
            expect_same_offsets(&o0, &o1, what);
            scan_free(&o1);
        }
        scan_free(&o0);
    }
    /* appending goes on after all this */
    append_random(log, &s, &rng, 3, c);
    k.end = (int64_t)s.n;
    scan_out o = check_model(log, &s, c, &k, "final appends");
    scan_free(&o);
    tu_log_close(log);
    *tomb_gone += k.tomb_gone;
    kf_codec_free(c);
    stream_free(&s);
    tu_rmrf(dir);
}

Test(compaction, model_many_seeds)
{
    unsigned gone = 0, passes = 0;
    for (uint64_t seed = 1; seed <= 40; seed++)
        model_seed(seed, &gone, &passes);
    cr_log_info("%u passes, %u tombstones seen removed", passes, gone);
    cr_assert_gt(gone, 0, "no tombstone was ever removed: delete_retention_ms untested");
}

/* ---- min_dirty_ratio ---------------------------------------------------------------- */

/* *.log files and their sizes, as one string, to compare directories. */
static void dir_sig(const char *dir, char *out, size_t cap)
{
    static tu_name names[1024];
    size_t n = tu_list(dir, ".log", names, 1024);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        char p[TU_PATH];
        tu_path(p, dir, names[i]);
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s:%lld ", names[i], (long long)tu_fsize(p));
    }
}

Test(compaction, min_dirty_ratio)
{
    atomic_store(&fake_now, T0);
    tu_rng rng = { 77 };
    stream s = { .nkeys = 50 };
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log_config cfg = log_cfg(4096);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    ks_clean_config cc = clean_cfg(1000000000);
    cc.min_dirty_ratio = 0.5;
    ck k = { .D = cc.delete_retention_ms, .now = T0 };

    /* only an active segment: nothing cleanable */
    append_random(log, &s, &rng, 2, c);
    cr_assert_eq(ks_log_segment_count(log), 1);
    cr_assert(ks_log_dirty_ratio(log, &cc) == 0.0, "nothing cleanable: ratio %f", ks_log_dirty_ratio(log, &cc));
    ks_clean_stats st = do_clean(log, &cc, "only the active segment");
    cr_assert(!st.cleaned);

    /* all dirty */
    append_random(log, &s, &rng, 40, c);
    cr_assert_eq(ks_log_roll(log), 0);
    double r = ks_log_dirty_ratio(log, &cc);
    cr_assert(r > 0.99 && r <= 1.0, "never cleaned: dirty ratio %f", r);
    st = do_clean(log, &cc, "first pass");
    cr_assert(st.cleaned, "ratio 1 >= 0.5 but nothing cleaned");
    cr_assert_eq(ks_log_clean_point(log), (int64_t)s.n);
    r = ks_log_dirty_ratio(log, &cc);
    cr_assert(r == 0.0, "just cleaned: dirty ratio %f", r);
    k.end = (int64_t)s.n;
    scan_out o = check_model(log, &s, c, &k, "first pass");

    /* a little dirt: below the ratio, the pass does nothing */
    append_random(log, &s, &rng, 1, c);
    cr_assert_eq(ks_log_roll(log), 0);
    r = ks_log_dirty_ratio(log, &cc);
    cr_assert(r > 0 && r < 0.5, "after one small batch: dirty ratio %f", r);
    char sig0[8192], sig1[8192];
    dir_sig(tu_dir, sig0, sizeof sig0);
    int64_t cp = ks_log_clean_point(log);
    scan_out before;
    cr_assert_eq(scan_log(log, &s, c, &before, true), 0);
    st = do_clean(log, &cc, "below the ratio");
    cr_assert(!st.cleaned, "ratio %f < 0.5 but the pass cleaned", r);
    cr_assert_eq(ks_log_clean_point(log), cp);
    dir_sig(tu_dir, sig1, sizeof sig1);
    cr_assert_str_eq(sig0, sig1, "a pass below the ratio changed the segments");
    k.end = (int64_t)s.n;
    scan_out after = check_model(log, &s, c, &k, "below the ratio");
    expect_same_offsets(&before, &after, "below the ratio");
    scan_free(&before);
    scan_free(&after);

    /* enough dirt: above the ratio, it cleans */
    int guard = 0;
    while (ks_log_dirty_ratio(log, &cc) < 0.6 && guard++ < 100) {
        append_random(log, &s, &rng, 5, c);
        cr_assert_eq(ks_log_roll(log), 0);
    }
    r = ks_log_dirty_ratio(log, &cc);
    cr_assert_geq(r, 0.5);
    st = do_clean(log, &cc, "above the ratio");
    cr_assert(st.cleaned, "ratio %f >= 0.5 but nothing cleaned", r);
    cr_assert_eq(ks_log_clean_point(log), (int64_t)s.n);
    k.end = (int64_t)s.n;
    k.advanced = true;
    scan_out o2 = check_model(log, &s, c, &k, "above the ratio");
    scan_free(&o2);
    scan_free(&o);
    tu_log_close(log);
    kf_codec_free(c);
    stream_free(&s);
}

/* min_compaction_lag_ms: segments holding records younger than the lag
 * stay dirty and uncleaned. */
Test(compaction, min_compaction_lag)
{
    atomic_store(&fake_now, T0);
    tu_rng rng = { 78 };
    stream s = { .nkeys = 20 };
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log_config cfg = log_cfg(4096);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    ks_clean_config cc = clean_cfg(1000000000);
    cc.min_compaction_lag_ms = 60000;
    append_random(log, &s, &rng, 60, c); /* old */
    cr_assert_eq(ks_log_roll(log), 0);
    int64_t young_from = (int64_t)s.n;
    atomic_fetch_add(&fake_now, 100000);
    append_random(log, &s, &rng, 60, c); /* young */
    cr_assert_eq(ks_log_roll(log), 0);
    ks_clean_stats st = do_clean(log, &cc, "lag");
    cr_assert(st.cleaned);
    int64_t cp = ks_log_clean_point(log);
    cr_assert_leq(cp, young_from, "clean point %lld past the first young record %lld", (long long)cp,
                  (long long)young_from);
    cr_assert_gt(cp, 0);
    /* every young record is still there */
    scan_out o;
    cr_assert_eq(scan_log(log, &s, c, &o, true), 0);
    size_t young = 0;
    for (size_t i = 0; i < o.n; i++)
        young += o.off[i] >= young_from;
    cr_assert_eq(young, s.n - (size_t)young_from, "records younger than the lag were removed");
    ck k = { .D = cc.delete_retention_ms, .now = atomic_load(&fake_now), .end = (int64_t)s.n };
    scan_out o2 = check_model(log, &s, c, &k, "lag");
    scan_free(&o2);
    scan_free(&o);
    /* once old enough, they are cleaned */
    atomic_fetch_add(&fake_now, 100000);
    st = do_clean(log, &cc, "lag passed");
    cr_assert_eq(ks_log_clean_point(log), (int64_t)s.n);
    k.now = atomic_load(&fake_now);
    k.advanced = true;
    o2 = check_model(log, &s, c, &k, "lag passed");
    scan_free(&o2);
    tu_log_close(log);
    kf_codec_free(c);
    stream_free(&s);
}

/* A bound (a replicated partition's high watermark): segments holding a
 * record at or above it are not cleaned, as Kafka's cleaner stops at the
 * HW; once it moves past them, they are. */
Test(compaction, bounded_by_the_high_watermark)
{
    atomic_store(&fake_now, T0);
    tu_rng rng = { 81 };
    stream s = { .nkeys = 20 };
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log_config cfg = log_cfg(4096);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    ks_clean_config cc = clean_cfg(1000000000);
    append_random(log, &s, &rng, 60, c); /* committed */
    cr_assert_eq(ks_log_roll(log), 0);
    int64_t hw = (int64_t)s.n;
    append_random(log, &s, &rng, 60, c); /* above the HW */
    cr_assert_eq(ks_log_roll(log), 0);
    cc.bound = hw + 1; /* inside the first segment above it */
    ks_clean_stats st = do_clean(log, &cc, "bounded");
    cr_assert(st.cleaned);
    int64_t cp = ks_log_clean_point(log);
    cr_assert_leq(cp, hw, "clean point %lld past the bound's segment start %lld", (long long)cp, (long long)hw);
    cr_assert_gt(cp, 0);
    scan_out o;
    cr_assert_eq(scan_log(log, &s, c, &o, true), 0);
    size_t above = 0;
    for (size_t i = 0; i < o.n; i++)
        above += o.off[i] >= hw;
    cr_assert_eq(above, s.n - (size_t)hw, "records above the high watermark were compacted away");
    scan_free(&o);
    /* the HW passes them: cleaned */
    cc.bound = (int64_t)s.n;
    st = do_clean(log, &cc, "bound passed");
    cr_assert_eq(ks_log_clean_point(log), (int64_t)s.n);
    ck k = { .D = cc.delete_retention_ms, .now = atomic_load(&fake_now), .end = (int64_t)s.n, .advanced = true };
    scan_out o2 = check_model(log, &s, c, &k, "bound passed");
    scan_free(&o2);
    tu_log_close(log);
    kf_codec_free(c);
    stream_free(&s);
}

/* ---- a small key map --------------------------------------------------------------- */

Test(compaction, small_map_converges)
{
    atomic_store(&fake_now, T0);
    tu_rng rng = { 79 };
    stream s = { .nkeys = 6000 };
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log_config cfg = log_cfg(16384);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    ks_clean_config cc = clean_cfg(1000000000);
    cc.map_bytes = 64 * 1024;
    /* every key twice, in two shuffled sweeps, then a few random updates */
    for (int sweep = 0; sweep < 2; sweep++) {
        int32_t *perm = malloc((size_t)s.nkeys * sizeof *perm);
        for (int i = 0; i < s.nkeys; i++)
            perm[i] = i;
        for (int i = s.nkeys - 1; i > 0; i--) {
            int j = (int)tu_range(&rng, 0, (uint64_t)i);
            int32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int i = 0; i < s.nkeys;) {
            int n = (int)tu_range(&rng, 1, 20);
            if (n > s.nkeys - i)
                n = s.nkeys - i;
            size_t first = s.n;
            gen_records(&s, &rng, n, atomic_fetch_add(&fake_now, 1));
            for (int j = 0; j < n; j++) {
                s.r[first + (size_t)j].key = perm[i + j];
                s.r[first + (size_t)j].vlen = 8;
            }
            cr_assert_eq(append_recs(log, &s, first, n, codec_ids[tu_range(&rng, 0, 2)], c), 0);
            i += n;
        }
        free(perm);
    }
    append_random(log, &s, &rng, 50, c);
    cr_assert_eq(ks_log_roll(log), 0);
    ck k = { .D = cc.delete_retention_ms, .end = (int64_t)s.n };
    int passes = 0;
    int64_t cp = ks_log_clean_point(log);
    while (cp < (int64_t)s.n) {
        char what[64];
        snprintf(what, sizeof what, "small map, pass %d", passes);
        ks_clean_stats st = do_clean(log, &cc, what);
        passes++;
        int64_t ncp = ks_log_clean_point(log);
        cr_assert(st.cleaned, "%s: nothing cleaned with dirt left (clean point %lld of %lld)", what,
                  (long long)ncp, (long long)s.n);
        cr_assert_gt(ncp, cp, "%s: no progress (clean point %lld)", what, (long long)ncp);
        cp = ncp;
        k.now = atomic_load(&fake_now);
        k.advanced = true;
        scan_out o = check_model(log, &s, c, &k, what);
        scan_free(&o);
        cr_assert_lt(passes, 100);
    }
    cr_log_info("small map: %d passes for %zu records of %d keys", passes, s.n, s.nkeys);
    cr_assert_gt(passes, 1, "the 64 KiB map never filled: the limit is untested");
    /* converged: every key once */
    scan_out o;
    cr_assert_eq(scan_log(log, &s, c, &o, true), 0);
    size_t nulls = 0;
    for (size_t i = 0; i < o.n; i++)
        nulls += s.r[o.off[i]].key < 0;
    cr_assert_eq(o.n - nulls, (size_t)s.nkeys, "%zu keyed records for %d keys", o.n - nulls, s.nkeys);
    scan_free(&o);
    tu_log_close(log);
    kf_codec_free(c);
    stream_free(&s);
}

/* ---- a template log for the step tests ------------------------------------------------ */

typedef struct tmpl {
    char dir[TU_PATH];
    stream s;
    ks_log_config cfg;
    int64_t end;
} tmpl;

/* A log of several segments, rolled (all cleanable), with some of it
 * cleaned already (so a pass has a clean and a dirty section), closed. */
static void make_tmpl(tmpl *t, uint64_t seed, int batches1, int batches2, uint64_t seg_bytes, int nkeys,
                      uint32_t vextra)
{
    atomic_store(&fake_now, T0);
    tu_sub(t->dir, "tmpl");
    tu_rng rng = { seed };
    memset(&t->s, 0, sizeof t->s);
    t->s.nkeys = nkeys;
    t->s.vextra = vextra;
    t->s.plain = vextra > 200; /* big values: keep the bytes big */
    t->cfg = log_cfg(seg_bytes);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log *log = tu_log_open(tu_io, t->dir, &t->cfg);
    append_random(log, &t->s, &rng, batches1, c);
    cr_assert_eq(ks_log_roll(log), 0);
    ks_clean_config cc = clean_cfg(1000000000000ll);
    if (batches1 > 0)
        do_clean(log, &cc, "template");
    append_random(log, &t->s, &rng, batches2, c);
    cr_assert_eq(ks_log_roll(log), 0);
    t->end = (int64_t)t->s.n;
    tu_log_close(log);
    kf_codec_free(c);
}

/* ---- throttle: cancel mid-pass ----------------------------------------------------------- */

typedef struct thr {
    _Atomic unsigned calls;
    unsigned cancel_at;   /* 0: never */
    _Atomic uint64_t bytes;
} thr;

static int thr_cb(void *arg, uint64_t bytes)
{
    thr *t = arg;
    atomic_fetch_add(&t->bytes, bytes);
    unsigned n = atomic_fetch_add(&t->calls, 1) + 1;
    return t->cancel_at && n >= t->cancel_at ? 1 : 0;
}

/* Issue 18: the cleaner's temporary file counts in the disk budget while
 * it is written, and stops counting once it is the segment: at every
 * throttle call of a pass, what the space counts is what the directory
 * holds (segments, index files and the temporary file by length, small
 * files by blocks). */
typedef struct thr_space {
    ks_space *space;
    const char *dir;
    unsigned calls, with_tmp, mismatches;
    uint64_t last_used, last_disk;
} thr_space;

static uint64_t disk_now(const char *dir, bool *tmp)
{
    DIR *d = opendir(dir);
    uint64_t sum = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        const char *f = de->d_name;
        char p[TU_PATH];
        struct stat st;
        size_t l = strlen(f);
        if (!strcmp(f, ".") || !strcmp(f, ".."))
            continue;
        tu_path(p, dir, f);
        if (stat(p, &st) != 0)
            continue;
        bool cleaned = l > 12 && !strcmp(f + l - 12, ".log.cleaned");
        bool bylen = cleaned || (l > 4 && !strcmp(f + l - 4, ".log")) || (l > 6 && !strcmp(f + l - 6, ".index")) ||
                     (l > 10 && !strcmp(f + l - 10, ".timeindex"));
        *tmp = *tmp || (cleaned && st.st_size > 0);
        sum += bylen ? (uint64_t)st.st_size : (uint64_t)st.st_blocks * 512;
    }
    if (d)
        closedir(d);
    return sum;
}

static int thr_space_cb(void *arg, uint64_t bytes)
{
    (void)bytes;
    thr_space *t = arg;
    bool tmp = false;
    uint64_t disk = disk_now(t->dir, &tmp), used = atomic_load(&t->space->used);
    t->calls++;
    t->with_tmp += tmp;
    if (disk != used) {
        t->mismatches++;
        t->last_used = used;
        t->last_disk = disk;
    }
    return 0;
}

Test(compaction, temporary_file_counts_in_the_disk_budget)
{
    tmpl t;
    make_tmpl(&t, 91, 0, 800, 256 * 1024, 3000, 1000);
    char dir[TU_PATH];
    tu_sub(dir, "run");
    tu_copy_dir(t.dir, dir);
    ks_space space = { .used = 0 };
    ks_log_config cfg = t.cfg;
    cfg.space = &space;
    ks_log *log = tu_log_open(tu_io, dir, &cfg);
    bool tmp = false;
    uint64_t before = atomic_load(&space.used);
    cr_assert_eq(before, disk_now(dir, &tmp));
    ks_clean_config cc = clean_cfg(1000000000000ll);
    thr_space th = { .space = &space, .dir = dir };
    cc.throttle = thr_space_cb;
    cc.throttle_arg = &th;
    ks_clean_stats st = do_clean(log, &cc, "counting the temporary file");
    cr_assert(st.cleaned);
    cr_assert_gt(th.with_tmp, 0, "no throttle call of %u saw the temporary file", th.calls);
    cr_assert_eq(th.mismatches, 0, "%u of %u throttle calls: %llu counted, %llu on disk", th.mismatches, th.calls,
                 (unsigned long long)th.last_used, (unsigned long long)th.last_disk);
    uint64_t after = atomic_load(&space.used);
    cr_assert_lt(after, before);
    cr_assert_eq(after, disk_now(dir, &tmp));
    tu_log_close(log);
    cr_assert_eq(atomic_load(&space.used), 0, "a closed log leaves nothing counted");
    stream_free(&t.s);
}

Test(compaction, throttle_cancels)
{
    /* a pass long enough for several throttle calls (one per MiB of I/O):
     * ~4 MiB to read into the map, over 1 MiB to write */
    tmpl t;
    make_tmpl(&t, 91, 0, 800, 256 * 1024, 3000, 1000);
    char dir[TU_PATH];
    tu_sub(dir, "run");
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_clean_config cc = clean_cfg(1000000000000ll);
    thr th = { .cancel_at = 0 };
    cc.throttle = thr_cb;
    cc.throttle_arg = &th;
    /* how many throttle calls does a full pass make? */
    tu_copy_dir(t.dir, dir);
    ks_log *log = tu_log_open(tu_io, dir, &t.cfg);
    ks_clean_stats st = do_clean(log, &cc, "counting throttle calls");
    cr_assert(st.cleaned);
    unsigned calls = atomic_load(&th.calls);
    cr_assert_geq(calls, 3, "the throttle was called %u times in a pass of %llu bytes read, %llu written", calls,
                  (unsigned long long)st.bytes_read, (unsigned long long)st.bytes_written);
    cr_assert_gt(atomic_load(&th.bytes), 0);
    tu_log_close(log);

    unsigned unchanged = 0, partial = 0;
    ck k = { .D = cc.delete_retention_ms, .now = T0, .end = t.end };
    for (unsigned n = 1; n <= calls; n++) {
        char what[64];
        snprintf(what, sizeof what, "cancelled at throttle call %u of %u", n, calls);
        tu_copy_dir(t.dir, dir);
        log = tu_log_open(tu_io, dir, &t.cfg);
        scan_out before;
        cr_assert_eq(scan_log(log, &t.s, c, &before, true), 0);
        int64_t cp0 = ks_log_clean_point(log);
        th = (thr){ .cancel_at = n };
        int rc = ks_log_clean(log, &cc, &st);
        cr_assert_eq(rc, -ECANCELED, "%s: %s", what, klog_strerror(rc));
        expect_no_temp(dir, what);
        k.advanced = false;
        scan_out after = check_model(log, &t.s, c, &k, what);
        /* per the contract "nothing half-done is left": either nothing
         * changed, or whole groups were committed (a valid cleaning state,
         * which check_model has just verified) */
        bool same = before.n == after.n && memcmp(before.off, after.off, before.n * sizeof *before.off) == 0;
        if (same) {
            unchanged++;
            cr_assert_eq(ks_log_clean_point(log), cp0, "%s: nothing changed but the clean point moved", what);
        } else {
            partial++;
        }
        /* a cancelled pass leaves a log that reopens the same */
        tu_log_close(log);
        expect_no_temp(dir, what);
        log = tu_log_open(tu_io, dir, &t.cfg);
        scan_out again = check_model(log, &t.s, c, &k, what);
        expect_same_offsets(&after, &again, what);
        /* and a pass without cancelling finishes the job */
        th = (thr){ .cancel_at = 0 };
        st = do_clean(log, &cc, what);
        cr_assert_eq(ks_log_clean_point(log), t.end);
        scan_out done = check_model(log, &t.s, c, &k, what);
        scan_free(&done);
        scan_free(&again);
        scan_free(&before);
        scan_free(&after);
        tu_log_close(log);
    }
    cr_log_info("cancel at each of %u throttle calls: %u left the log unchanged, %u after committing whole groups",
                calls, unchanged, partial);
    cr_assert_gt(unchanged, 0);
    kf_codec_free(c);
    stream_free(&t.s);
}

/* ---- crash at every step ----------------------------------------------------------------- */

Test(compaction, crash_at_every_step)
{
    tmpl t;
    make_tmpl(&t, 92, 12, 20, 2048, 40, 80);
    char dir[TU_PATH];
    tu_sub(dir, "run");
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_clean_config cc = clean_cfg(1000000000000ll);
    ck k = { .D = cc.delete_retention_ms, .now = T0, .end = t.end };

    /* count the ops of a pass */
    tu_crash cnt = { .at = 0 };
    tu_copy_dir(t.dir, dir);
    kio *io = tu_crash_io(&cnt);
    ks_log *log = tu_log_open(io, dir, &t.cfg);
    uint64_t before = atomic_load(&cnt.ops);
    ks_clean_stats st = do_clean(log, &cc, "counting ops");
    cr_assert(st.cleaned);
    uint64_t nops = atomic_load(&cnt.ops) - before;
    cr_assert_gt(st.segments_in, 1);
    tu_log_close(log);
    kio_close(io);
    cr_log_info("a pass: %llu ops, %llu segments in, %llu out", (unsigned long long)nops,
                (unsigned long long)st.segments_in, (unsigned long long)st.segments_out);

    static const struct { enum kio_crash_mode mode; unsigned flags; } modes[] = {
        { KIO_CRASH_DROP, KIO_CRASH_LOSE_DIRENTS }, { KIO_CRASH_DROP, 0 },
        { KIO_CRASH_PREFIX, KIO_CRASH_LOSE_DIRENTS }, { KIO_CRASH_GARBAGE, 0 },
        { KIO_CRASH_ZERO, KIO_CRASH_LOSE_DIRENTS }, { KIO_CRASH_RANDOM, KIO_CRASH_LOSE_DIRENTS },
    };
    /* every op with DROP + lost directory entries, and with one of the
     * other modes in turn */
    const size_t nmodes = sizeof modes / sizeof modes[0];
    unsigned mid = 0, runs = 0;
    for (uint64_t n = 1; n <= nops + 1; n++)
        for (size_t m = 0; m < nmodes; m = m == 0 ? 1 + (size_t)(n % (nmodes - 1)) : nmodes) {
            char what[128];
            snprintf(what, sizeof what, "crash at op %llu of %llu, mode %d flags %u", (unsigned long long)n,
                     (unsigned long long)nops, modes[m].mode, modes[m].flags);
            tu_copy_dir(t.dir, dir);
            tu_crash cx = { .at = 0, .crash = { modes[m].mode, modes[m].flags, n * 7 + m } };
            io = tu_crash_io(&cx);
            log = tu_log_open(io, dir, &t.cfg);
            atomic_store(&cx.at, atomic_load(&cx.ops) + n);
            int rc = ks_log_clean(log, &cc, NULL);
            if (atomic_load(&cx.crashed)) {
                mid++;
            } else {
                cr_assert_eq(rc, 0, "%s: clean failed without a crash: %s", what, klog_strerror(rc));
                cr_assert_eq(kio_fault_crash(io, modes[m].mode, modes[m].flags, n), 0);
            }
            ks_log_close(log);
            kio_close(io);
            runs++;
            kio *px = tu_io_open_posix();
            ks_log *l2 = NULL;
            rc = ks_log_open(&l2, px, dir, &t.cfg);
            cr_assert_eq(rc, 0, "%s: reopen failed: %s", what, klog_strerror(rc));
            expect_no_temp(dir, what);
            k.advanced = false;
            scan_out o = check_model(l2, &t.s, c, &k, what);
            scan_free(&o);
            /* the recovered log cleans to completion and takes appends */
            if (m == 0) {
                do_clean(l2, &cc, what);
                cr_assert_eq(ks_log_clean_point(l2), t.end, "%s: a pass after recovery stopped at %lld", what,
                             (long long)ks_log_clean_point(l2));
                o = check_model(l2, &t.s, c, &k, what);
                scan_free(&o);
            }
            cr_assert_eq(ks_log_close(l2), 0);
            kio_close(px);
        }
    cr_log_info("%u runs, %u crashed inside the pass", runs, mid);
    cr_assert_gt(mid, 0);
    kf_codec_free(c);
    stream_free(&t.s);
}

/* ---- concurrency -------------------------------------------------------------------------- */

/* Pre-generate a stream of nb batches (so that worker threads only read
 * it). */
static void plan_stream(stream *s, tu_rng *rng, size_t nb)
{
    s->nb = nb;
    s->bsize = malloc(nb * sizeof *s->bsize);
    s->bcodec = malloc(nb);
    int64_t ts = T0;
    for (size_t i = 0; i < nb; i++) {
        s->bsize[i] = (int)tu_range(rng, 1, 20);
        s->bcodec[i] = (uint8_t)codec_ids[tu_range(rng, 0, 2)];
        if (s->plain)
            s->bcodec[i] = KF_CODEC_NONE;
        gen_records(s, rng, s->bsize[i], ts);
        ts += (int64_t)tu_range(rng, 1, 50);
    }
}

typedef struct plan_pos {
    size_t batch, rec;
} plan_pos;

/* Append the next planned batch (no assertions). */
static int plan_append(ks_log *log, const stream *s, plan_pos *p, kf_codec *c)
{
    if (p->batch >= s->nb)
        return -ERANGE;
    const srec *e = &s->r[p->rec];
    int64_t now = atomic_load(&fake_now);
    if (e->ts > now)
        atomic_store(&fake_now, e->ts);
    int rc = append_recs(log, s, p->rec, s->bsize[p->batch], (enum kf_codec_id)s->bcodec[p->batch], c);
    if (rc == 0) {
        p->rec += (size_t)s->bsize[p->batch];
        p->batch++;
    }
    return rc;
}

/* The cleaner thread, held inside its throttle callback until released. */
typedef struct hold {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    unsigned holds;     /* throttle calls so far */
    unsigned released;  /* the cleaner may pass call number <= released */
    ks_log *log;
    ks_clean_config cc;
    int rc;
} hold;

static int hold_cb(void *arg, uint64_t bytes)
{
    (void)bytes;
    hold *h = arg;
    pthread_mutex_lock(&h->mu);
    unsigned me = ++h->holds;
    pthread_cond_broadcast(&h->cv);
    while (h->released < me)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static void *cleaner_main(void *arg)
{
    hold *h = arg;
    int rc = ks_log_clean(h->log, &h->cc, NULL);
    pthread_mutex_lock(&h->mu);
    h->rc = rc;
    h->done = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

typedef struct appender {
    ks_log *log;
    const stream *s;
    plan_pos *pos;
    int n;
    _Atomic int state; /* 0 running, 1 done */
    int rc;
} appender;

static void *appender_main(void *arg)
{
    appender *a = arg;
    kf_codec *c = NULL;
    int rc = kf_codec_new(&c);
    for (int i = 0; i < a->n && rc == 0; i++)
        rc = plan_append(a->log, a->s, a->pos, c);
    kf_codec_free(c);
    a->rc = rc;
    atomic_store(&a->state, 1);
    return NULL;
}

static void deadline_in(struct timespec *ts, int sec)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += sec;
}

/* While the cleaner sits inside its throttle (mid-pass: the log is big
 * enough for several calls, one per MiB of I/O), appends complete,
 * including ones that roll segments. */
Test(compaction, appends_continue_during_a_pass)
{
    atomic_store(&fake_now, T0);
    tu_rng rng = { 93 };
    stream s = { .nkeys = 3000, .vextra = 1000, .plain = true };
    plan_stream(&s, &rng, 600);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log_config cfg = log_cfg(64 * 1024);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    plan_pos pos = { 0 };
    for (int i = 0; i < 450; i++)
        cr_assert_eq(plan_append(log, &s, &pos, c), 0);
    cr_assert_eq(ks_log_roll(log), 0);
    int64_t cleanable_end = ks_log_end_offset(log);

    hold h = { .log = log, .cc = clean_cfg(1000000000000ll) };
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    h.cc.throttle = hold_cb;
    h.cc.throttle_arg = &h;
    pthread_t cth;
    cr_assert_eq(pthread_create(&cth, NULL, cleaner_main, &h), 0);
    unsigned appended_while_held = 0, seen = 0;
    const char *fail = NULL;
    for (;;) {
        pthread_mutex_lock(&h.mu);
        struct timespec dl;
        deadline_in(&dl, 20);
        while (h.holds == seen && !h.done)
            if (pthread_cond_timedwait(&h.cv, &h.mu, &dl) != 0)
                break;
        bool held = h.holds > seen, done = h.done;
        seen = h.holds;
        pthread_mutex_unlock(&h.mu);
        if (done)
            break;
        if (!held) {
            fail = "the cleaner neither finished nor reached its throttle in 20 s";
            break;
        }
        /* the cleaner is held mid-pass: append a few batches on another thread */
        appender a = { .log = log, .s = &s, .pos = &pos, .n = 3 };
        pthread_t ath;
        cr_assert_eq(pthread_create(&ath, NULL, appender_main, &a), 0);
        for (int ms = 0; ms < 10000 && !atomic_load(&a.state); ms++)
            usleep(1000);
        bool ok = atomic_load(&a.state) == 1;
        pthread_mutex_lock(&h.mu);
        h.released = seen;
        pthread_cond_broadcast(&h.cv);
        pthread_mutex_unlock(&h.mu);
        pthread_join(ath, NULL);
        if (!ok) {
            fail = "an append waited for the cleaner held in its throttle for 10 s";
            break;
        }
        if (a.rc != 0 && a.rc != -ERANGE) {
            fail = "an append failed while the cleaner was held";
            break;
        }
        appended_while_held++;
    }
    if (fail) {
        /* let the cleaner go before failing */
        pthread_mutex_lock(&h.mu);
        h.released = ~0u;
        pthread_cond_broadcast(&h.cv);
        pthread_mutex_unlock(&h.mu);
    }
    pthread_join(cth, NULL);
    cr_assert_null(fail, "%s", fail);
    cr_assert_eq(h.rc, 0, "the pass: %s", klog_strerror(h.rc));
    cr_assert_geq(appended_while_held, 3, "only %u holds: the pass is too short to hold it mid-way",
                  appended_while_held);
    cr_log_info("%u holds, appended while held %u times; end %lld (cleanable end %lld)", h.holds,
                appended_while_held, (long long)ks_log_end_offset(log), (long long)cleanable_end);
    cr_assert_eq(ks_log_end_offset(log), (int64_t)pos.rec);
    ck k = { .D = h.cc.delete_retention_ms, .now = atomic_load(&fake_now), .end = (int64_t)pos.rec };
    size_t full = s.n;
    s.n = pos.rec; /* the model covers what was appended */
    scan_out o = check_model(log, &s, c, &k, "after a pass with concurrent appends");
    scan_free(&o);
    s.n = full;
    /* appending goes on; another pass cleans what was appended meanwhile */
    for (int i = 0; i < 20; i++)
        cr_assert_eq(plan_append(log, &s, &pos, c), 0);
    cr_assert_eq(ks_log_roll(log), 0);
    h.cc.throttle = NULL;
    do_clean(log, &h.cc, "second pass");
    cr_assert_eq(ks_log_clean_point(log), (int64_t)pos.rec);
    k.end = (int64_t)pos.rec;
    s.n = pos.rec;
    o = check_model(log, &s, c, &k, "second pass");
    scan_free(&o);
    s.n = full;
    tu_log_close(log);
    pthread_mutex_destroy(&h.mu);
    pthread_cond_destroy(&h.cv);
    kf_codec_free(c);
    stream_free(&s);
}

/* A reader scanning the log over and over while the main thread appends,
 * rolls and cleans: never a checksum failure, never an offset going back,
 * never a record that differs from the one appended at its offset. */
typedef struct reader {
    ks_log *log;
    const stream *s;
    _Atomic bool stop;
    unsigned scans;
    _Atomic int err;
    int64_t err_at;
    const char *err_what;
} reader;

static void *reader_main(void *arg)
{
    reader *r = arg;
    kf_codec *c = NULL;
    if (kf_codec_new(&c) != 0) {
        r->err = -ENOMEM;
        return NULL;
    }
    while (!atomic_load(&r->stop)) {
        scan_out o;
        int rc = scan_log(r->log, r->s, c, &o, false);
        if (rc == KLOG_EOFFSET && o.err_what && strcmp(o.err_what, "ks_log_read") == 0 &&
            o.err_at < ks_log_start_offset(r->log)) {
            scan_free(&o); /* the start moved past the scan: start over */
            continue;
        }
        if (rc != 0) {
            r->err_at = o.err_at;
            r->err_what = o.err_what;
            atomic_store(&r->err, rc);
            scan_free(&o);
            break;
        }
        r->scans++;
        scan_free(&o);
    }
    kf_codec_free(c);
    return NULL;
}

Test(compaction, concurrent_reader)
{
    atomic_store(&fake_now, T0);
    tu_rng rng = { 94 };
    stream s = { .nkeys = 60 };
    plan_stream(&s, &rng, 1500);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log_config cfg = log_cfg(2048);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    ks_clean_config cc = clean_cfg(500);
    plan_pos pos = { 0 };
    for (int i = 0; i < 50; i++)
        cr_assert_eq(plan_append(log, &s, &pos, c), 0);
    reader rd = { .log = log, .s = &s };
    pthread_t rth;
    cr_assert_eq(pthread_create(&rth, NULL, reader_main, &rd), 0);
    unsigned passes = 0;
    while (pos.batch < s.nb && !atomic_load(&rd.err)) {
        int nb = (int)tu_range(&rng, 5, 40);
        for (int i = 0; i < nb && pos.batch < s.nb; i++)
            cr_assert_eq(plan_append(log, &s, &pos, c), 0);
        if (tu_range(&rng, 0, 1))
            cr_assert_eq(ks_log_roll(log), 0);
        cr_assert_eq(ks_log_clean(log, &cc, NULL), 0);
        passes++;
        if (tu_range(&rng, 0, 9) == 0) { /* the start moves under the reader */
            int64_t st0 = ks_log_start_offset(log), e = ks_log_end_offset(log);
            cr_assert_eq(ks_log_delete_records(log, st0 + (e - st0) / 4, NULL), 0);
        }
    }
    atomic_store(&rd.stop, true);
    pthread_join(rth, NULL);
    int rerr = atomic_load(&rd.err);
    cr_assert_eq(rerr, 0, "the reader met %s at offset %lld in %s (after %u clean scans)", err_str(rerr),
                 (long long)rd.err_at, rd.err_what, rd.scans);
    cr_log_info("%u passes, %u reader scans", passes, rd.scans);
    cr_assert_gt(rd.scans, 0);
    ck k = { .D = cc.delete_retention_ms, .now = atomic_load(&fake_now), .end = (int64_t)pos.rec,
             .start = ks_log_start_offset(log) };
    scan_out o = check_model(log, &s, c, &k, "after the concurrent run");
    scan_free(&o);
    tu_log_close(log);
    kf_codec_free(c);
    stream_free(&s);
}

/* A corrupted batch in a cleanable segment: the pass refuses with
 * KLOG_ECORRUPT and changes nothing. */
Test(compaction, corrupt_batch_refused)
{
    tmpl t;
    make_tmpl(&t, 95, 20, 30, 4096, 40, 80);
    char dir[TU_PATH];
    tu_sub(dir, "run");
    tu_copy_dir(t.dir, dir);
    /* flip a bit in the middle of the last sealed segment's first batch's
     * records (past the header) */
    static tu_name names[256];
    size_t n = tu_list(dir, ".log", names, 256);
    cr_assert_geq(n, 2);
    char p[TU_PATH];
    tu_path(p, dir, names[n - 2]);
    size_t len;
    uint8_t *b = tu_slurp(p, &len);
    kf_batch_info bi;
    cr_assert_gt(kf_batch_parse(b, len, &bi), 0);
    tu_flip_bit(p, KF_HDR_SIZE + 3, 2);
    free(b);
    ks_log *log = tu_log_open(tu_io, dir, &t.cfg);
    char sig0[8192], sig1[8192];
    dir_sig(dir, sig0, sizeof sig0);
    ks_clean_config cc = clean_cfg(1000000000000ll);
    ks_clean_stats st;
    int rc = ks_log_clean(log, &cc, &st);
    cr_assert_eq(rc, KLOG_ECORRUPT, "cleaning over a corrupt batch: %s", klog_strerror(rc));
    dir_sig(dir, sig1, sizeof sig1);
    cr_assert_str_eq(sig0, sig1, "a refused pass changed the segments");
    expect_no_temp(dir, "corrupt batch");
    tu_log_close(log);
    stream_free(&t.s);
}

/* Regression (found by concurrent_reader): a read at an offset in a gap at
 * the end of a cleaned segment, or anywhere in a segment that cleaning
 * emptied, must return the first batch after it ("where compaction left a
 * gap, the first one after it"), also when that batch lies in a segment
 * that was never cleaned (the active one here). */
Test(compaction, read_in_a_gap_before_an_uncleaned_segment)
{
    atomic_store(&fake_now, T0);
    stream s = { .nkeys = 3 };
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log_config cfg = log_cfg(4096);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    tu_rng rng = { 1 };
    /* case 1: [A=v @0][B=tombstone @1] | active [C=v @2] */
    gen_records(&s, &rng, 3, T0);
    s.r[0] = (srec){ .key = 0, .tomb = false, .vlen = 8, .ts = T0 };
    s.r[1] = (srec){ .key = 1, .tomb = true, .vlen = 8, .ts = T0 };
    s.r[2] = (srec){ .key = 2, .tomb = false, .vlen = 8, .ts = T0 };
    cr_assert_eq(append_recs(log, &s, 0, 1, KF_CODEC_NONE, c), 0);
    cr_assert_eq(append_recs(log, &s, 1, 1, KF_CODEC_NONE, c), 0);
    cr_assert_eq(ks_log_roll(log), 0);
    cr_assert_eq(append_recs(log, &s, 2, 1, KF_CODEC_NONE, c), 0);
    atomic_store(&fake_now, T0 + 10000);
    ks_clean_config cc = clean_cfg(1000);
    ks_clean_stats st = do_clean(log, &cc, "tombstone at the end of a segment");
    cr_assert(st.cleaned);
    ks_view v;
    int rc = ks_log_read(log, 0, 4096, &v);
    cr_assert_eq(rc, 0);
    cr_assert_eq(v.first_offset, 0);
    cr_assert_eq(v.next_offset, 1, "the tombstone at 1 should be gone");
    ks_view_release(&v);
    rc = ks_log_read(log, 1, 4096, &v);
    cr_assert_eq(rc, 0, "read at 1, in the gap the tombstone left at the end of segment 0, before the "
                        "uncleaned active segment at 2: %s", klog_strerror(rc));
    cr_assert_eq(v.first_offset, 2);
    ks_view_release(&v);
    tu_log_close(log);

    /* case 2: [B=tombstone @0] | active [C=v @1]: cleaning empties segment 0;
     * reading from the log start must give the batch at 1 */
    char dir2[TU_PATH];
    tu_sub(dir2, "log2");
    log = tu_log_open(tu_io, dir2, &cfg);
    atomic_store(&fake_now, T0);
    s.r[0] = (srec){ .key = 1, .tomb = true, .vlen = 8, .ts = T0 };
    s.r[1] = (srec){ .key = 2, .tomb = false, .vlen = 8, .ts = T0 };
    cr_assert_eq(append_recs(log, &s, 0, 1, KF_CODEC_NONE, c), 0);
    cr_assert_eq(ks_log_roll(log), 0);
    cr_assert_eq(append_recs(log, &s, 1, 1, KF_CODEC_NONE, c), 0);
    atomic_store(&fake_now, T0 + 10000);
    st = do_clean(log, &cc, "a segment emptied");
    cr_assert(st.cleaned);
    rc = ks_log_read(log, ks_log_start_offset(log), 4096, &v);
    cr_assert_eq(rc, 0, "read at the log start (%lld), segment 0 emptied by cleaning, the active segment "
                        "uncleaned: %s", (long long)ks_log_start_offset(log), klog_strerror(rc));
    cr_assert_eq(v.first_offset, 1);
    ks_view_release(&v);
    tu_log_close(log);
    /* and after a reopen */
    log = tu_log_open(tu_io, dir2, &cfg);
    rc = ks_log_read(log, ks_log_start_offset(log), 4096, &v);
    cr_assert_eq(rc, 0, "after a reopen: %s", klog_strerror(rc));
    cr_assert_eq(v.first_offset, 1);
    ks_view_release(&v);
    tu_log_close(log);
    kf_codec_free(c);
    stream_free(&s);
}

/* Cleaning after DeleteRecords moved the start inside a batch: records
 * below the start may go, the start stays, reading from the start works
 * and the model (from the start) holds, also after a reopen. */
Test(compaction, clean_after_delete_records)
{
    atomic_store(&fake_now, T0);
    tu_rng rng = { 96 };
    stream s = { .nkeys = 25 };
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log_config cfg = log_cfg(2048);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    append_random(log, &s, &rng, 60, c);
    /* somewhere inside a batch, not at its base */
    int64_t x = (int64_t)s.n / 3;
    ks_view v;
    cr_assert_eq(ks_log_read(log, x, 1, &v), 0);
    if (v.first_offset == x)
        x = v.next_offset - 1 > x ? x + 1 : v.next_offset + 1;
    ks_view_release(&v);
    int64_t ns;
    cr_assert_eq(ks_log_delete_records(log, x, &ns), 0);
    cr_assert_eq(ns, x);
    append_random(log, &s, &rng, 20, c);
    cr_assert_eq(ks_log_roll(log), 0);
    ks_clean_config cc = clean_cfg(1000000000000ll);
    ck k = { .D = cc.delete_retention_ms, .now = atomic_load(&fake_now), .start = x, .end = (int64_t)s.n };
    for (int pass = 0; pass < 3; pass++) {
        do_clean(log, &cc, "after delete_records");
        k.advanced = true;
        cr_assert_eq(ks_log_start_offset(log), x, "cleaning moved the start");
        scan_out o = check_model(log, &s, c, &k, "clean after delete_records");
        scan_free(&o);
        cr_assert_eq(ks_log_read(log, x - 1, 1, &v), KLOG_EOFFSET);
        append_random(log, &s, &rng, 10, c);
        cr_assert_eq(ks_log_roll(log), 0);
        k.end = (int64_t)s.n;
    }
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    scan_out o = check_model(log, &s, c, &k, "clean after delete_records, reopened");
    scan_free(&o);
    tu_log_close(log);
    kf_codec_free(c);
    stream_free(&s);
}

/* Truncation (replication) into a cleaned segment: the new end is at or
 * below the offset asked for (whole batches go; a gap is not a batch),
 * what stays below it is untouched, and the clean point comes down with
 * the end: offsets appended again above it were never cleaned, so after
 * the next pass no key may have two records below the clean point.
 * `between`: the offset lies in a gap between two batches (else in a gap
 * inside a batch that lost records). */
static void truncate_case(bool between)
{
    atomic_store(&fake_now, T0);
    tu_rng rng = { 97 };
    stream s = { .nkeys = 10 };
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    ks_log_config cfg = log_cfg(4096);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    append_random(log, &s, &rng, 80, c);
    cr_assert_eq(ks_log_roll(log), 0);
    ks_clean_config cc = clean_cfg(1000000000000ll);
    do_clean(log, &cc, "before truncation");
    int64_t cp = ks_log_clean_point(log);
    cr_assert_eq(cp, (int64_t)s.n);
    scan_out before;
    cr_assert_eq(scan_log(log, &s, c, &before, true), 0);
    /* batch bounds, to aim inside or between batches */
    int64_t bb[4096], bl[4096];
    int nbat = 0;
    for (int64_t x = 0; x < (int64_t)s.n && nbat < 4096;) {
        ks_view v;
        cr_assert_eq(ks_log_read(log, x, 1 << 20, &v), 0);
        if (v.len == 0) {
            ks_view_release(&v);
            break;
        }
        for (size_t p = 0; p < v.len && nbat < 4096;) {
            kf_batch_info bi;
            ssize_t l = kf_batch_parse(v.data + p, v.len - p, &bi);
            cr_assert_gt(l, 0);
            bb[nbat] = bi.base_offset;
            bl[nbat++] = kf_batch_last_offset(&bi);
            p += (size_t)l;
        }
        x = v.next_offset;
        ks_view_release(&v);
    }
    /* the last such gap below the end */
    int64_t g = -1;
    if (between) {
        for (int j = 0; j + 1 < nbat; j++)
            if (bb[j + 1] > bl[j] + 1)
                g = bl[j] + 1;
    } else {
        for (size_t i = 0; i + 1 < before.n; i++) {
            if (before.off[i + 1] - before.off[i] < 2)
                continue;
            int64_t cand = before.off[i] + 1;
            bool inside = false;
            for (int j = 0; j < nbat && !inside; j++)
                inside = bb[j] <= cand && cand <= bl[j];
            if (inside)
                g = cand;
        }
    }
    cr_assert_geq(g, 0, "no gap %s batches to truncate into", between ? "between" : "inside");
    int64_t ne = -1;
    int rc = ks_log_truncate_to(log, g, &ne);
    cr_assert_eq(rc, 0, "truncate_to(%lld): %s", (long long)g, klog_strerror(rc));
    cr_assert_leq(ne, g, "truncate_to(%lld) in a gap left the end at %lld, above the offset asked for", (long long)g,
                  (long long)ne);
    cr_assert_eq(ks_log_end_offset(log), ne);
    scan_out after;
    cr_assert_eq(scan_log(log, &s, c, &after, true), 0);
    size_t keep = 0;
    while (keep < before.n && before.off[keep] < ne)
        keep++;
    cr_assert_eq(after.n, keep, "%zu records below the new end %lld, %zu before", after.n, (long long)ne, keep);
    for (size_t i = 0; i < keep; i++)
        cr_assert_eq(after.off[i], before.off[i]);
    cr_assert_leq(ks_log_clean_point(log), ne, "clean point %lld above the new end %lld after truncation",
                  (long long)ks_log_clean_point(log), (long long)ne);
    scan_free(&before);
    scan_free(&after);
    /* write every key again from the new end on (the stream follows the
     * offsets), roll, clean: the model holds */
    s.n = (size_t)ne;
    for (int round = 0; round < 2; round++) {
        for (int key = 0; key < s.nkeys; key += 5) {
            size_t first = s.n;
            gen_records(&s, &rng, 5, atomic_fetch_add(&fake_now, 10));
            for (int j = 0; j < 5; j++) {
                s.r[first + (size_t)j].key = key + j;
                s.r[first + (size_t)j].tomb = false;
            }
            cr_assert_eq(append_recs(log, &s, first, 5, KF_CODEC_NONE, c), 0);
        }
    }
    cr_assert_eq(ks_log_roll(log), 0);
    do_clean(log, &cc, "after truncation");
    ck k = { .D = cc.delete_retention_ms, .now = atomic_load(&fake_now), .end = (int64_t)s.n, .advanced = true };
    scan_out o = check_model(log, &s, c, &k, "clean after truncation");
    scan_free(&o);
    tu_log_close(log);
    log = tu_log_open(tu_io, tu_dir, &cfg);
    o = check_model(log, &s, c, &k, "clean after truncation, reopened");
    scan_free(&o);
    tu_log_close(log);
    kf_codec_free(c);
    stream_free(&s);
}

Test(compaction, truncate_into_a_gap_inside_a_batch) { truncate_case(false); }
Test(compaction, truncate_into_a_gap_between_batches) { truncate_case(true); }
