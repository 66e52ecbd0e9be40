/*
 * test/storage/log_faults.c - the partition log under I/O failures and
 * simulated crashes, through the fault-injecting I/O backend.
 *
 * Step faults: ENOSPC and EIO on the nth write, sync, dirsync or any op of
 * an append, an ALWAYS append, a segment roll, a ks_log_sync and a close,
 * for n = 1, 2, ... until the operation completes without meeting the
 * fault.  In every case the call returns the error (or succeeds when the
 * fault hit nothing that matters), a failed data fsync turns the log
 * read-only while reads keep working, and after a reopen on a healthy
 * engine nothing acknowledged is lost and nothing unacknowledged shows up
 * with wrong content.
 *
 * Crashes: seeds x crash modes x (with, without KIO_CRASH_LOSE_DIRENTS),
 * starting from an empty directory or from a cleanly closed log,
 * crashing at a random operation (a wrap backend over the fault backend
 * counts ops and calls the crash control at the chosen one) or after the
 * last append.  Everything acknowledged as durable survives, everything
 * present verifies, offsets are dense, and the log takes appends again.
 * The same with several ALWAYS appenders racing (group commit).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "util.h"

TestSuite(log_faults, .init = tu_setup, .fini = tu_teardown, .timeout = 240);

/* ---- expectations after reopening ---------------------------------------- */

/* Reopen dir on a fresh engine; it must hold a dense run of records from 0
 * whose content matches their offset (seq == offset throughout this file),
 * covering at least [0, acked).  Then it must take an append. */
static void check_reopened_tail(kio *io, const char *dir, const ks_log_config *cfg, int64_t acked,
                                const char *what, enum ks_tail *tail)
{
    ks_log *log = NULL;
    int rc = ks_log_open(&log, io, dir, cfg);
    cr_assert_eq(rc, 0, "%s: reopen failed: %s", what, klog_strerror(rc));
    if (tail)
        *tail = ks_log_recovered_tail(log);
    int64_t end = ks_log_end_offset(log);
    cr_assert_eq(ks_log_start_offset(log), 0, "%s: start %lld", what, (long long)ks_log_start_offset(log));
    cr_assert_geq(end, acked, "%s: acknowledged records lost: end %lld, acknowledged up to %lld", what,
                  (long long)end, (long long)acked);
    tu_content c;
    rc = tu_read_all(log, &c);
    cr_assert_eq(rc, 0, "%s: reading back failed at %lld: %d (%s)", what, (long long)c.err_at, rc,
                 rc > 0 ? "reader check" : klog_strerror(rc));
    cr_assert_eq((int64_t)c.n, end, "%s: %zu records below end %lld", what, c.n, (long long)end);
    for (size_t i = 0; i < c.n; i++)
        cr_assert(c.r[i].ok && c.r[i].seq == (uint64_t)c.r[i].offset,
                  "%s: offset %lld holds wrong content (seq %llx)", what, (long long)c.r[i].offset,
                  (unsigned long long)c.r[i].seq);
    tu_content_free(&c);
    tu_append_seq(log, 2, 0);
    rc = ks_log_close(log);
    cr_assert_eq(rc, 0, "%s: close after reopen: %s", what, klog_strerror(rc));
}

static void check_reopened(kio *io, const char *dir, const ks_log_config *cfg, int64_t acked,
                           const char *what)
{
    check_reopened_tail(io, dir, cfg, acked, what, NULL);
}

/* ---- step faults ---------------------------------------------------------- */

enum scenario { SC_APPEND, SC_ALWAYS, SC_ALWAYS_GROUP, SC_ROLL, SC_ROLL_ALWAYS, SC_SYNC, SC_CLOSE, SC_N };
static const char *const sc_name[] = { "append", "ALWAYS append", "ALWAYS append of 3 batches",
                                       "roll", "ALWAYS roll", "ks_log_sync", "close" };

static ks_log_config sc_cfg(enum scenario sc)
{
    bool always = sc == SC_ALWAYS || sc == SC_ALWAYS_GROUP || sc == SC_ROLL_ALWAYS;
    ks_log_config c = tu_small_cfg(always ? KS_DURABILITY_ALWAYS : KS_DURABILITY_NONE);
    return c;
}

/* Three batches; for the roll scenarios, then fill the first segment so
 * that the next 3-record batch (built for the current end, as the
 * operation builds it) does not fit and rolls. */
static void prefill(ks_log *log, enum scenario sc, int64_t *acked)
{
    for (int i = 0; i < 3; i++)
        tu_append_seq(log, 3, 0);
    if (sc == SC_ROLL || sc == SC_ROLL_ALWAYS) {
        for (;;) {
            tu_batch b;
            tu_build(&b, (uint64_t)ks_log_end_offset(log), 3);
            size_t next = b.len;
            tu_batch_free(&b);
            if (ks_log_size_bytes(log) + next > 4096)
                break;
            tu_append_seq(log, 3, 0);
        }
        cr_assert_eq(ks_log_segment_count(log), 1);
    }
    *acked = ks_log_end_offset(log);
}

typedef struct step_result {
    bool hit;
} step_result;

/* One run: fault `cls` at its nth op during the scenario's operation. */
static step_result step_run(enum scenario sc, unsigned cls, uint64_t nth, int err, unsigned fflags)
{
    char dir[TU_PATH], what[160];
    snprintf(what, sizeof what, "%s, %s on op %llu of class 0x%x%s", sc_name[sc], klog_err_name(err),
             (unsigned long long)nth, cls, (fflags & KIO_FAULT_SHORT) ? " (short)" : "");
    tu_sub(dir, "step");
    tu_rmrf(dir);
    ks_log_config cfg = sc_cfg(sc);
    kio *io = tu_fault_open();
    ks_log *log = tu_log_open(io, dir, &cfg);
    int64_t acked = 0; /* records [0, acked) were acknowledged */
    prefill(log, sc, &acked);
    unsigned segs = ks_log_segment_count(log);
    bool always = cfg.durability == KS_DURABILITY_ALWAYS;

    cr_assert_eq(kio_fault_arm(io, cls, nth, err, fflags), 0);
    uint64_t before = kio_fault_ops(io, cls);
    int rc = 0;
    tu_batch b[3];
    ks_batch kb[3];
    unsigned nb = sc == SC_ALWAYS_GROUP ? 3 : sc == SC_APPEND ? 2 : 1;
    int64_t end0 = ks_log_end_offset(log), seq = end0;
    bool closed = false;
    if (sc == SC_SYNC) {
        rc = ks_log_sync(log);
        if (rc == 0)
            cr_assert_eq(ks_log_durable_offset(log), end0, "%s: sync returned 0, durable %lld < %lld", what,
                         (long long)ks_log_durable_offset(log), (long long)end0);
    } else if (sc == SC_CLOSE) {
        rc = ks_log_close(log);
        closed = true;
    } else {
        for (unsigned i = 0; i < nb; i++) {
            tu_build(&b[i], (uint64_t)seq, 3);
            seq += 3;
            kb[i] = (ks_batch){ .batch = b[i].buf, .len = b[i].len };
        }
        rc = ks_log_append(log, kb, nb, 0);
        int64_t next = end0;
        bool prefix = true;
        for (unsigned i = 0; i < nb; i++) {
            if (kb[i].result == 0) {
                cr_assert(prefix, "%s: batch %u acknowledged after a failed one", what, i);
                cr_assert_eq(kb[i].base_offset, next, "%s: batch %u at %lld, expected %lld", what, i,
                             (long long)kb[i].base_offset, (long long)next);
                next += 3;
                acked = next;
                if (always)
                    cr_assert_geq(ks_log_durable_offset(log), next,
                                  "%s: ALWAYS batch acknowledged but durable offset is %lld", what,
                                  (long long)ks_log_durable_offset(log));
            } else {
                prefix = false;
            }
            tu_batch_free(&b[i]);
        }
        cr_assert((rc == 0) == prefix, "%s: append returned %d but batch results say %s", what, rc,
                  prefix ? "all appended" : "not all appended");
    }
    bool hit = kio_fault_ops(io, cls) - before >= nth;
    kio_fault_clear(io);

    if (!hit || (fflags & KIO_FAULT_SHORT))
        cr_assert_eq(rc, 0, "%s: failed (%s)%s", what, klog_strerror(rc),
                     hit ? " although short writes must be completed" : " although no fault was injected");
    else
        cr_assert(rc == 0 || rc == err, "%s: returned %d (%s)", what, rc, klog_strerror(rc));

    if (!closed) {
        int lerr = ks_log_error(log);
        if (hit && cls == KIO_OP_SYNC && !(fflags & KIO_FAULT_SHORT) &&
            (sc == SC_ALWAYS || sc == SC_ALWAYS_GROUP || sc == SC_SYNC)) {
            /* the only sync of these operations is the data fsync */
            cr_assert_neq(lerr, 0, "%s: a failed fsync left the log writable", what);
            cr_assert_neq(rc, 0, "%s: a failed fsync was acknowledged", what);
        }
        /* reads keep working, whatever happened */
        tu_content c;
        int rr = tu_read_all(log, &c);
        cr_assert_eq(rr, 0, "%s: read back failed at %lld: %d", what, (long long)c.err_at, rr);
        cr_assert_geq((int64_t)c.n, acked, "%s: acknowledged records not readable", what);
        for (size_t i = 0; i < c.n; i++)
            cr_assert(c.r[i].ok && c.r[i].seq == (uint64_t)c.r[i].offset, "%s: bad record at %zu", what, i);
        tu_content_free(&c);
        if (lerr != 0) {
            tu_batch x;
            tu_build(&x, (uint64_t)ks_log_end_offset(log), 1);
            cr_assert_eq(tu_append1(log, &x, 0, NULL), KLOG_EREADONLY,
                         "%s: append after a failed fsync was not refused", what);
            tu_batch_free(&x);
        } else {
            /* a failed write is not fatal: the next append goes through */
            int64_t end = ks_log_end_offset(log);
            tu_batch x;
            int64_t base = -1;
            tu_build(&x, (uint64_t)end, 3);
            int ar = tu_append1(log, &x, 0, &base);
            tu_batch_free(&x);
            cr_assert_eq(ar, 0, "%s: the log is writable but the next append failed: %s", what,
                         klog_strerror(ar));
            cr_assert_eq(base, end);
            acked = end + 3;
            if (sc == SC_ROLL || sc == SC_ROLL_ALWAYS)
                cr_assert_gt(ks_log_segment_count(log), segs, "%s: no roll", what);
        }
        rc = ks_log_close(log);
        if (lerr == 0)
            cr_assert_eq(rc, 0, "%s: close of a healthy log: %s", what, klog_strerror(rc));
    }
    kio_close(io);
    check_reopened(tu_io, dir, &cfg, acked, what);
    return (step_result){ hit };
}

static void step_all(enum scenario sc, unsigned cls)
{
    static const int errs[] = { -ENOSPC, -EIO };
    for (size_t e = 0; e < 2; e++) {
        uint64_t n;
        for (n = 1; n <= 200; n++)
            if (!step_run(sc, cls, n, errs[e], 0).hit)
                break;
        cr_assert_leq(n, 200, "%s: the fault never stopped hitting", sc_name[sc]);
        cr_assert_gt(n, 1, "%s: class 0x%x never used", sc_name[sc], cls);
    }
}

#define STEP_TESTS(sc, tag)                                                  \
    Test(log_faults, tag##_write) { step_all(sc, KIO_OP_WRITE); }            \
    Test(log_faults, tag##_sync) { step_all(sc, KIO_OP_SYNC); }              \
    Test(log_faults, tag##_any_op) { step_all(sc, KIO_OP_ALL); }

/* A NONE append does no sync: write and any op only. */
Test(log_faults, append_write) { step_all(SC_APPEND, KIO_OP_WRITE); }
Test(log_faults, append_any_op) { step_all(SC_APPEND, KIO_OP_ALL); }
STEP_TESTS(SC_ALWAYS, always_append)
STEP_TESTS(SC_ALWAYS_GROUP, always_group_append)
STEP_TESTS(SC_ROLL, roll)
STEP_TESTS(SC_ROLL_ALWAYS, always_roll)
Test(log_faults, roll_dirsync) { step_all(SC_ROLL, KIO_OP_DIRSYNC); }
Test(log_faults, sync_sync) { step_all(SC_SYNC, KIO_OP_SYNC); }
Test(log_faults, close_any_op) { step_all(SC_CLOSE, KIO_OP_ALL); }

/* Short writes are completed by the engine: every append succeeds. */
static void short_all(enum scenario sc)
{
    uint64_t n;
    for (n = 1; n <= 50; n++)
        if (!step_run(sc, KIO_OP_WRITE, n, -EIO, KIO_FAULT_SHORT).hit)
            break;
    cr_assert_gt(n, 1);
}

Test(log_faults, short_writes_append) { short_all(SC_APPEND); }
Test(log_faults, short_writes_always) { short_all(SC_ALWAYS_GROUP); }
Test(log_faults, short_writes_roll) { short_all(SC_ROLL_ALWAYS); }

/* A short write under ALWAYS is still durable when acknowledged: crash
 * right after the append and look. */
Test(log_faults, short_write_always_is_durable)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_ALWAYS);
    for (uint64_t n = 1; n <= 3; n++) {
        char dir[TU_PATH];
        tu_sub(dir, "short");
        tu_rmrf(dir);
        kio *io = tu_fault_open();
        ks_log *log = tu_log_open(io, dir, &cfg);
        tu_append_seq(log, 3, 0);
        cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, n, -EIO, KIO_FAULT_SHORT), 0);
        tu_append_seq(log, 3, 0); /* asserts success */
        cr_assert_eq(ks_log_durable_offset(log), 6);
        cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, KIO_CRASH_LOSE_DIRENTS, n), 0);
        ks_log_close(log);
        kio_close(io);
        check_reopened(tu_io, dir, &cfg, 6, "short write, ALWAYS, crash");
    }
}

/* A failed fsync at close: close reports it, and a reopen still has every
 * acknowledged record (NONE: acknowledged = in the page cache, and no
 * crash happened). */
Test(log_faults, read_only_after_failed_sync_still_reads)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    kio *io = tu_fault_open();
    ks_log *log = tu_log_open(io, tu_dir, &cfg);
    for (int i = 0; i < 30; i++)
        tu_append_seq(log, 4, 0);
    cr_assert_eq(kio_fault_arm(io, KIO_OP_SYNC, 1, -EIO, 0), 0);
    cr_assert_eq(ks_log_sync(log), -EIO);
    kio_fault_clear(io);
    cr_assert_eq(ks_log_error(log), -EIO);
    /* never retried: a later sync fails too, without trying */
    uint64_t syncs = kio_fault_ops(io, KIO_OP_SYNC);
    int sr = ks_log_sync(log);
    cr_assert(sr == KLOG_EREADONLY || sr == -EIO, "sync after a failed fsync: %s", klog_strerror(sr));
    cr_assert_eq(kio_fault_ops(io, KIO_OP_SYNC), syncs, "a failed fsync was retried");
    tu_batch x;
    tu_build(&x, 120, 1);
    cr_assert_eq(tu_append1(log, &x, 0, NULL), KLOG_EREADONLY);
    cr_assert_eq(tu_append1(log, &x, KS_APPEND_SYNC, NULL), KLOG_EREADONLY);
    cr_assert_eq(ks_log_truncate_to(log, 10, NULL), KLOG_EREADONLY);
    tu_batch_free(&x);
    tu_expect_identity(log, 120);
    int64_t t = -1;
    cr_assert_eq(ks_log_offset_for_time(log, tu_ts(50), &t), 0);
    cr_assert_eq(t, 50);
    cr_assert_neq(ks_log_close(log), 0, "close of a read-only log must report the error");
    kio_close(io);
    check_reopened(tu_io, tu_dir, &cfg, 120, "after a failed fsync");
}

/* ---- crashes ---------------------------------------------------------------- */

typedef struct crash_stats {
    unsigned runs, mid_op, at_end, open_failed, prefills;
    unsigned tails[KS_TAIL_N]; /* how recovery found the last segment's end */
} crash_stats;

static void flag_asked(void *arg)
{
    atomic_store((_Atomic bool *)arg, true);
}

/* One crash run.  With bg, the log has a prefill hook and 4 KiB prefill
 * chunks in 32 KiB segments, and the test thread serves each ask at once
 * (ks_log_prefill between appends, as the instance's background thread
 * would): the crash may then fall on a background zero-fill step too. */
static void crash_run(enum kio_crash_mode mode, unsigned cflags, uint64_t seed, bool bg, crash_stats *st)
{
    char dir[TU_PATH], what[128];
    snprintf(what, sizeof what, "crash mode %d flags %u seed %llu%s", mode, cflags, (unsigned long long)seed,
             bg ? " (background prefill)" : "");
    tu_sub(dir, "crash");
    tu_rmrf(dir);
    tu_rng rng = { seed * 7919 + mode * 131 + cflags };
    tu_crash cc = { .crash = { .mode = mode, .flags = cflags, .seed = seed } };
    cc.at = tu_range(&rng, 1, bg ? 60 : 160); /* bg runs take fewer ops: land inside them */
    ks_log_config cfg = tu_small_cfg(tu_range(&rng, 0, 1) ? KS_DURABILITY_ALWAYS : KS_DURABILITY_NONE);
    cfg.segment_bytes = bg ? 32768 : 2048;
    cfg.prefill_chunk = bg ? 4096 : 0;
    bool always = cfg.durability == KS_DURABILITY_ALWAYS;
    int64_t durable = 0; /* acknowledged as durable: [0, durable) */
    if (seed % 2 == 0) {
        /* start from a cleanly closed log (index files of the active
         * segment on disk, checkpoint at the end) */
        ks_log *pre = tu_log_open(tu_io, dir, &cfg);
        int nb = (int)tu_range(&rng, 1, 12);
        for (int k = 0; k < nb; k++)
            tu_append_seq(pre, (int)tu_range(&rng, 1, 6), 0);
        durable = ks_log_end_offset(pre);
        tu_log_close(pre);
    }
    kio *io = tu_crash_io(&cc);

    ks_log *log = NULL;
    _Atomic bool asked = false;
    int rc = ks_log_open(&log, io, dir, &cfg);
    if (rc != 0) {
        cr_assert(cc.crashed, "%s: open failed without a crash: %s", what, klog_strerror(rc));
        st->open_failed++;
    } else {
        if (bg)
            ks_log_set_prefill_hook(log, flag_asked, &asked);
        int nb = (int)tu_range(&rng, 3, 40);
        for (int k = 0; k < nb; k++) {
            int n = (int)tu_range(&rng, 1, 6);
            int64_t end = ks_log_end_offset(log), base = -1;
            unsigned fl = !always && tu_range(&rng, 0, 9) < 3 ? KS_APPEND_SYNC : 0;
            tu_batch b;
            tu_build(&b, (uint64_t)end, n);
            rc = tu_append1(log, &b, fl, &base);
            tu_batch_free(&b);
            if (rc != 0) {
                cr_assert(cc.crashed, "%s: append failed without a crash: %s", what, klog_strerror(rc));
                break;
            }
            cr_assert_eq(base, end);
            if (always || fl)
                durable = end + n;
            if (atomic_exchange(&asked, false)) {
                st->prefills++;
                rc = ks_log_prefill(log);
                if (rc != 0) {
                    cr_assert(cc.crashed, "%s: prefill failed without a crash: %s", what, klog_strerror(rc));
                    break;
                }
            }
            if (!always && tu_range(&rng, 0, 9) < 2) {
                int64_t e = ks_log_end_offset(log);
                rc = ks_log_sync(log);
                if (rc != 0) {
                    cr_assert(cc.crashed, "%s: sync failed without a crash: %s", what, klog_strerror(rc));
                    break;
                }
                durable = e;
            }
        }
        if (atomic_load(&cc.crashed)) {
            st->mid_op++;
        } else {
            st->at_end++;
            cr_assert_eq(kio_fault_crash(io, mode, cflags, seed), 0);
        }
        ks_log_close(log); /* must not crash; errors expected */
    }
    st->runs++;
    kio_close(io);
    kio *px = tu_io_open_posix();
    enum ks_tail tail = KS_TAIL_TRUSTED;
    check_reopened_tail(px, dir, &cfg, durable, what, &tail);
    st->tails[tail]++;
    kio_close(px);
}

static void crash_mode_bg(enum kio_crash_mode mode, bool bg)
{
    crash_stats st = { 0 };
    for (unsigned f = 0; f < 2; f++)
        for (uint64_t seed = 1; seed <= 100; seed++)
            crash_run(mode, f ? KIO_CRASH_LOSE_DIRENTS : 0, seed, bg, &st);
    cr_log_info("mode %d%s: %u runs, %u crashed mid-operation, %u after the last append, %u during open, "
                "%u prefills",
                mode, bg ? " (background prefill)" : "", st.runs, st.mid_op, st.at_end, st.open_failed, st.prefills);
    cr_assert_eq(st.runs, 200);
    cr_assert_gt(st.mid_op, 0);
    cr_assert_gt(st.at_end, 0);
    if (bg)
        cr_assert_gt(st.prefills, 50, "background prefills: %u", st.prefills);
}

static void crash_mode(enum kio_crash_mode mode) { crash_mode_bg(mode, false); }

Test(log_faults, crash_drop) { crash_mode(KIO_CRASH_DROP); }
Test(log_faults, crash_prefix) { crash_mode(KIO_CRASH_PREFIX); }
Test(log_faults, crash_garbage) { crash_mode(KIO_CRASH_GARBAGE); }
Test(log_faults, crash_zero) { crash_mode(KIO_CRASH_ZERO); }
Test(log_faults, crash_random) { crash_mode(KIO_CRASH_RANDOM); }
Test(log_faults, crash_prefix_with_background_prefill) { crash_mode_bg(KIO_CRASH_PREFIX, true); }
Test(log_faults, crash_random_with_background_prefill) { crash_mode_bg(KIO_CRASH_RANDOM, true); }

/* Group commit under a crash: several ALWAYS appenders, a crash at a random
 * op (on whichever thread runs it).  Every append that returned 0 is on
 * disk after the crash; every record present is one an appender attempted,
 * at the offset its append was given. */
#define CW_THREADS 4
#define CW_PER 30

typedef struct cwriter {
    ks_log *log;
    int id;
    int64_t base[CW_PER];   /* offset assigned, -1 if none */
    int n[CW_PER];
    bool acked[CW_PER];
    int tried;
} cwriter;

static uint64_t cw_seq(int t, int k, int i) { return ((uint64_t)(t + 1) << 32) | ((uint64_t)k << 4) | (uint64_t)i; }

static void *cwriter_main(void *arg)
{
    cwriter *w = arg;
    tu_rng rng = { 77 + (uint64_t)w->id };
    for (int k = 0; k < CW_PER; k++) {
        int n = (int)tu_range(&rng, 1, 5);
        tu_batch b;
        if (tu_build_ex(&b, cw_seq(w->id, k, 0), n, NULL, 0) != 0)
            break;
        w->n[k] = n;
        w->tried = k + 1;
        int rc = tu_append1(w->log, &b, 0, &w->base[k]);
        tu_batch_free(&b);
        w->acked[k] = rc == 0;
        if (rc != 0)
            break;
    }
    return NULL;
}

Test(log_faults, crash_concurrent_always)
{
    unsigned mid = 0;
    for (uint64_t seed = 1; seed <= 30; seed++) {
        char dir[TU_PATH], what[96];
        tu_sub(dir, "ccrash");
        tu_rmrf(dir);
        tu_rng rng = { seed * 31 };
        enum kio_crash_mode mode = (enum kio_crash_mode)tu_range(&rng, KIO_CRASH_DROP, KIO_CRASH_RANDOM);
        unsigned cflags = seed % 2 ? KIO_CRASH_LOSE_DIRENTS : 0;
        snprintf(what, sizeof what, "concurrent crash mode %d flags %u seed %llu", mode, cflags,
                 (unsigned long long)seed);
        tu_crash cc = { .at = tu_range(&rng, 20, 200), .crash = { mode, cflags, seed } };
        atomic_init(&cc.ops, 0);
        atomic_init(&cc.crashed, false);
        kio *io = tu_crash_io(&cc);
        ks_log_config cfg = tu_small_cfg(KS_DURABILITY_ALWAYS);
        cfg.segment_bytes = 2048;
        ks_log *log = NULL;
        cwriter w[CW_THREADS];
        memset(w, 0, sizeof w);
        if (ks_log_open(&log, io, dir, &cfg) == 0) {
            pthread_t th[CW_THREADS];
            for (int t = 0; t < CW_THREADS; t++) {
                w[t].log = log;
                w[t].id = t;
                for (int k = 0; k < CW_PER; k++)
                    w[t].base[k] = -1;
                cr_assert_eq(pthread_create(&th[t], NULL, cwriter_main, &w[t]), 0);
            }
            for (int t = 0; t < CW_THREADS; t++)
                pthread_join(th[t], NULL);
            /* the hook runs on the writers' threads; read cc after join */
            if (atomic_load(&cc.crashed))
                mid++;
            else
                cr_assert_eq(kio_fault_crash(io, mode, cflags, seed), 0);
            ks_log_close(log);
        }
        kio_close(io);

        kio *px = tu_io_open_posix();
        log = tu_log_open(px, dir, &cfg);
        int64_t end = ks_log_end_offset(log);
        tu_content c;
        int rc = tu_read_all(log, &c);
        cr_assert_eq(rc, 0, "%s: read back failed at %lld: %d", what, (long long)c.err_at, rc);
        cr_assert_eq((int64_t)c.n, end);
        for (size_t i = 0; i < c.n; i++) {
            const tu_rec *r = &c.r[i];
            int t = (int)(r->seq >> 32) - 1, k = (int)((r->seq >> 4) & 0xfffffff), j = (int)(r->seq & 15);
            cr_assert(r->ok && t >= 0 && t < CW_THREADS && k < w[t].tried && j < w[t].n[k] &&
                      w[t].base[k] + j == r->offset,
                      "%s: offset %lld holds seq %llx, which no append put there", what,
                      (long long)r->offset, (unsigned long long)r->seq);
        }
        for (int t = 0; t < CW_THREADS; t++)
            for (int k = 0; k < w[t].tried; k++)
                if (w[t].acked[k]) {
                    cr_assert_leq(w[t].base[k] + w[t].n[k], end,
                                  "%s: acknowledged batch at %lld lost (end %lld)", what,
                                  (long long)w[t].base[k], (long long)end);
                    cr_assert_eq(c.r[w[t].base[k]].seq, cw_seq(t, k, 0), "%s: acknowledged batch at %lld replaced",
                                 what, (long long)w[t].base[k]);
                }
        tu_content_free(&c);
        tu_log_close(log);
        kio_close(px);
    }
    cr_log_info("%u of 30 concurrent runs crashed mid-operation", mid);
    cr_assert_gt(mid, 0);
}

/* Torn batches (issue 19).  With the zeroed tail ahead of appends (always
 * on), every append overwrites durable zeros; a crash model that puts
 * overwritten durable bytes back whole only ever shows recovery a clean
 * end (the batch there whole, or zeros).  KIO_CRASH_TORN tears them per
 * sector: recovery then meets batches whose checksum fails, and must cut
 * them without losing anything acknowledged (check_reopened).  The counts
 * of each kind of tail found are printed; the torn runs must show torn
 * batches, cut. */
static void crash_torn_counts(enum kio_crash_mode mode, unsigned flags, uint64_t seeds, crash_stats *st)
{
    for (uint64_t seed = 1; seed <= seeds; seed++)
        crash_run(mode, flags, seed, false, st);
    cr_log_info("mode %d flags %#x: %u runs; tails: trusted %u, end %u, zeros %u, short %u, header %u, "
                "checksum %u, offset %u",
                mode, flags, st->runs, st->tails[KS_TAIL_TRUSTED], st->tails[KS_TAIL_END], st->tails[KS_TAIL_ZEROS],
                st->tails[KS_TAIL_SHORT], st->tails[KS_TAIL_HEADER], st->tails[KS_TAIL_CHECKSUM],
                st->tails[KS_TAIL_OFFSET]);
}

Test(log_faults, crash_torn_batches)
{
    crash_stats whole = { 0 }, torn = { 0 };
    crash_torn_counts(KIO_CRASH_DROP, 0, 50, &whole);
    crash_torn_counts(KIO_CRASH_DROP, KIO_CRASH_TORN, 100, &torn);
    crash_torn_counts(KIO_CRASH_RANDOM, KIO_CRASH_TORN | KIO_CRASH_LOSE_DIRENTS, 50, &torn);
    cr_assert_eq(whole.tails[KS_TAIL_CHECKSUM] + whole.tails[KS_TAIL_HEADER], 0,
                 "overwrites undone whole leave no torn batch (the issue's point)");
    /* Most crashes fall where nothing is torn (between a sync and the next
     * append, or on a batch within one sector): a few in 200 tear one. */
    cr_assert_gt(torn.tails[KS_TAIL_CHECKSUM] + torn.tails[KS_TAIL_HEADER], 2, "torn batches met by recovery: %u + %u",
                 torn.tails[KS_TAIL_CHECKSUM], torn.tails[KS_TAIL_HEADER]);
}
