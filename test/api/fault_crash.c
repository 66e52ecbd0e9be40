/*
 * Power cuts through the public API (klog/testing.h): a producer with
 * acks=all, and a consumer group's synchronous commit, with the power cut
 * at operation after operation of a run, in every crash mode.
 *
 * The method: run once on a fresh simulated disk and count its I/O
 * operations; then, for each operation index N, run again on a fresh disk
 * armed to lose power at operation N; close the instance (its errors are
 * expected), reboot the disk (the files as the crash mode leaves them), and
 * reopen the directory with plain klog_open.  Then:
 *
 *   producer: every record whose delivery report said success is at its
 *     reported offset with its value; offsets are dense from 0; no record
 *     is there twice, and none that was never sent; the partition takes a
 *     record again, at its end.  (Records not acknowledged may or may not
 *     be there: a power cut decides.)  A run that never met its power cut
 *     must have succeeded throughout.
 *   commit: the group's committed offset is the new one if the commit
 *     returned success, else the old one or the new one, nothing else (the
 *     first commit ever, which also creates the offsets log: none, or the
 *     new one); commits work again.
 *
 * Every operation of the producer run is a few hundred: by default each
 * mode cuts the power at PC_SAMPLE of them (the first and the last
 * included), drawn with a seed printed on stderr.  KLOG_TEST_CRASH_SEED=S
 * repeats a draw; KLOG_TEST_CRASH_EVERY_OP=1 cuts at every operation (a
 * few minutes).  A commit takes a handful of operations: all of them, always.
 * The op counts of two runs can differ by a few (the instance's background
 * threads); an index past the end of a run only means a run that ends
 * before its power cut, and is checked as such.
 */
#include "fault_util.h"

#include <inttypes.h>

TestSuite(fault_crash, .init = fu_setup, .fini = ut_rmdir, .timeout = 300);

#define PC_SAMPLE 40
#define PC_RECORDS 24
#define PC_BATCH 3 /* records per flush: one batch, one sync each */

static uint64_t pc_seed(void)
{
    const char *e = getenv("KLOG_TEST_CRASH_SEED");
    if (e && *e)
        return strtoull(e, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

static bool pc_every_op(void)
{
    const char *e = getenv("KLOG_TEST_CRASH_EVERY_OP");
    return e && strcmp(e, "1") == 0;
}

static uint64_t pc_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The op indexes to cut the power at, of 1..total, ascending: all of them,
 * or PC_SAMPLE with the first and the last.  Returns how many (*out freed
 * by the caller). */
static size_t pc_pick(uint64_t total, uint64_t seed, bool all, uint64_t **out)
{
    bool *take = calloc(total + 1, sizeof *take);
    cr_assert_not_null(take);
    size_t n = 0;
    if (all || total <= PC_SAMPLE) {
        for (uint64_t i = 1; i <= total; i++)
            take[i] = true;
        n = total;
    } else {
        take[1] = take[total] = true;
        n = 2;
        uint64_t s = seed;
        while (n < PC_SAMPLE) {
            uint64_t i = 2 + pc_rng(&s) % (total - 2);
            if (!take[i]) {
                take[i] = true;
                n++;
            }
        }
    }
    *out = calloc(n ? n : 1, sizeof **out);
    cr_assert_not_null(*out);
    size_t k = 0;
    for (uint64_t i = 1; i <= total; i++)
        if (take[i])
            (*out)[k++] = i;
    free(take);
    return n;
}

static const char *pc_mode_name(enum klog_testing_crash_mode m, unsigned flags)
{
    static const char *const names[] = { "?", "drop", "prefix", "garbage", "zero", "random", "holes" };
    static char buf[96];
    snprintf(buf, sizeof buf, "%s%s%s%s", names[m <= 6 ? m : 0],
             (flags & KLOG_TESTING_CRASH_LOSE_DIRENTS) ? "+lost-dirents" : "",
             (flags & KLOG_TESTING_CRASH_TORN) ? "+torn" : "", (flags & KLOG_TESTING_CRASH_INFLIGHT) ? "+inflight" : "");
    return buf;
}

/* ---- a producer with acks=all ------------------------------------------------------- */

typedef struct pc_run {
    ut_dr dr;
    int send_rc[PC_RECORDS];
    bool crashed; /* the run met its power cut */
} pc_run;

/* Record i's value: its index, padded so that segments roll in the run. */
static void pc_value(char *buf, size_t size, int i)
{
    snprintf(buf, size, "r%03d-%0*d", i, 90, 0);
}

/* A run that met no power cut must not have failed anywhere. */
#define PC_EXPECT(run, f, cond, ...)                                                                        \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            (run)->crashed = klog_testing_fault_crashed(f) == 1;                                           \
            cr_assert((run)->crashed, __VA_ARGS__);                                                        \
        }                                                                                                  \
    } while (0)

/*
 * Open dir on f, create topic t (1 partition, small segments), send
 * PC_RECORDS records with acks=all in flushes of PC_BATCH, close.  Stops at
 * the first failure, which must come from the power cut.
 */
static void pc_produce(const char *dir, klog_testing_fault *f, pc_run *r, const char *what)
{
    memset(r->send_rc, 0xff, sizeof r->send_rc); /* -1: not sent */
    r->crashed = false;
    klog *k = NULL;
    char err[256] = "";
    int rc = fu_open(&k, dir, f, err, sizeof err, NULL);
    PC_EXPECT(r, f, rc == 0, "%s: open: %s (%s)", what, klog_err_name(rc), err);
    if (rc < 0)
        return;
    klog_conf *tc = ut_conf("segment.bytes", "1024", NULL);
    rc = klog_topic_create(k, "t", 1, tc, err, sizeof err);
    klog_conf_free(tc);
    PC_EXPECT(r, f, rc == 0, "%s: topic: %s (%s)", what, klog_err_name(rc), err);
    klog_producer *p = NULL;
    if (rc == 0) {
        klog_conf *pcf = ut_conf("acks", "all", "linger.ms", "0", NULL);
        rc = klog_producer_new(k, pcf, &p, err, sizeof err);
        klog_conf_free(pcf);
        PC_EXPECT(r, f, rc == 0, "%s: producer: %s (%s)", what, klog_err_name(rc), err);
    }
    if (p) {
        cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &r->dr), 0);
        for (int i = 0; i < PC_RECORDS; i++) {
            char v[128];
            pc_value(v, sizeof v, i);
            klog_record rec = KLOG_RECORD_INIT;
            rec.partition = 0;
            rec.value = v;
            rec.value_len = strlen(v);
            rec.opaque = (void *)(uintptr_t)(i + 1);
            rc = r->send_rc[i] = klog_producer_send(p, "t", &rec);
            PC_EXPECT(r, f, rc == 0, "%s: send %d: %s", what, i, klog_err_name(rc));
            if (rc < 0)
                break;
            if ((i + 1) % PC_BATCH == 0)
                cr_assert_eq(klog_producer_flush(p, 30000), 0, "%s: flush", what);
        }
        rc = klog_producer_close(p); /* the first report's error, if any */
        PC_EXPECT(r, f, rc == 0, "%s: producer close: %s", what, klog_err_name(rc));
    }
    rc = klog_close(k);
    PC_EXPECT(r, f, rc == 0, "%s: close: %s", what, klog_err_name(rc));
    r->crashed = klog_testing_fault_crashed(f) == 1;
}

/* After the reboot: what the reports promised is on disk (see the top). */
static void pc_check(const char *dir, pc_run *r, const char *what)
{
    const klog_delivery *by[PC_RECORDS] = { NULL };
    size_t acked = 0;
    for (size_t j = 0; j < r->dr.n; j++) {
        uintptr_t id = (uintptr_t)r->dr.d[j].opaque;
        cr_assert(id >= 1 && id <= PC_RECORDS && !by[id - 1], "%s: bad or second report for %zu", what, (size_t)id);
        by[id - 1] = &r->dr.d[j];
        if (r->dr.d[j].err == 0)
            acked++;
        else
            cr_assert(r->crashed, "%s: report %s without a power cut", what, klog_err_name(r->dr.d[j].err));
    }
    for (int i = 0; i < PC_RECORDS; i++)
        cr_assert_eq(by[i] != NULL, r->send_rc[i] == 0, "%s: record %d: send %s, %s", what, i,
                     klog_err_name(r->send_rc[i]), by[i] ? "reported" : "no report");
    if (!r->crashed)
        cr_assert_eq(acked, PC_RECORDS, "%s: a clean run acknowledged %zu records", what, acked);

    klog *k = fu_open_ok(dir, NULL);
    size_t n;
    bool exists;
    ut_msg *m = fu_read_all(k, "t", 0, &n, &exists);
    if (!exists) {
        cr_assert_eq(acked, 0, "%s: topic lost with %zu records acknowledged", what, acked);
        cr_assert_eq(klog_close(k), 0);
        return;
    }
    bool seen[PC_RECORDS] = { false };
    for (size_t j = 0; j < n; j++) {
        cr_assert_eq(m[j].offset, (int64_t)j, "%s: offsets not dense from 0 at %zu (%lld)", what, j,
                     (long long)m[j].offset);
        int id = -1;
        char v[128];
        cr_assert(m[j].value && sscanf(m[j].value, "r%d-", &id) == 1 && id >= 0 && id < PC_RECORDS,
                  "%s: offset %zu holds a record never sent", what, j);
        pc_value(v, sizeof v, id);
        cr_assert_str_eq(m[j].value, v, "%s: offset %zu damaged", what, j);
        cr_assert(!seen[id], "%s: record %d twice", what, id);
        cr_assert_eq(r->send_rc[id], 0, "%s: record %d is there but its send failed", what, id);
        seen[id] = true;
    }
    for (int i = 0; i < PC_RECORDS; i++) {
        if (!by[i] || by[i]->err)
            continue;
        int64_t off = by[i]->offset;
        cr_assert(off >= 0 && (size_t)off < n, "%s: acknowledged record %d (offset %lld) lost; %zu left", what, i,
                  (long long)off, n);
        int id = -1;
        sscanf(m[off].value, "r%d-", &id);
        cr_assert_eq(id, i, "%s: offset %lld holds record %d, its report said record %d", what, (long long)off, id, i);
    }
    ut_msgs_free(m, n);
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "after"), 0);
    cr_assert_eq(klog_producer_close(p), 0, "%s: the partition refuses records after recovery", what);
    cr_assert_eq(ut_end_offset(k, "t", 0), (int64_t)n + 1);
    cr_assert_eq(klog_close(k), 0);
}

static void producer_power_cuts(enum klog_testing_crash_mode mode, unsigned flags)
{
    char dir[256], what[200];
    const char *mname = pc_mode_name(mode, flags);
    fu_sub(dir, sizeof dir, "clean");
    klog_testing_fault *f = fu_fault();
    pc_run r;
    ut_dr_init(&r.dr);
    snprintf(what, sizeof what, "%s: clean run", mname);
    pc_produce(dir, f, &r, what);
    cr_assert(!r.crashed);
    uint64_t total = klog_testing_fault_ops(f, KLOG_TESTING_OP_ALL);
    cr_assert_gt(total, 20, "%s: %" PRIu64 " ops in a clean run", what, total);
    cr_assert_eq(klog_testing_fault_reboot(f), 0);
    klog_testing_fault_free(f);
    pc_check(dir, &r, what);
    ut_dr_fini(&r.dr);

    uint64_t seed = pc_seed(), *at = NULL;
    size_t n = pc_pick(total, seed, pc_every_op(), &at);
    fprintf(stderr, "fault_crash: producer, %s: %" PRIu64 " ops in a clean run; power cut at %zu of them "
                    "(seed %" PRIu64 ": KLOG_TEST_CRASH_SEED=%" PRIu64 " repeats, KLOG_TEST_CRASH_EVERY_OP=1 "
                    "takes all)\n",
            mname, total, n, seed, seed);
    unsigned met = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(what, sizeof what, "%s, power cut at op %" PRIu64 " of %" PRIu64 " (seed %" PRIu64 ")", mname, at[i],
                 total, seed);
        fu_sub(dir, sizeof dir, "run");
        f = fu_fault();
        cr_assert_eq(klog_testing_fault_crash_at(f, KLOG_TESTING_OP_ALL, at[i], mode, flags, seed ^ at[i]), 0);
        ut_dr_init(&r.dr);
        pc_produce(dir, f, &r, what);
        met += r.crashed;
        cr_assert_eq(klog_testing_fault_reboot(f), 0, "%s: reboot", what);
        klog_testing_fault_free(f);
        pc_check(dir, &r, what);
        ut_dr_fini(&r.dr);
    }
    free(at);
    /* all but (at most) a few past the end of a shorter run met theirs */
    cr_assert_geq(met + 3, (unsigned)n, "%s: only %u of %zu runs met their power cut", mname, met, n);
}

Test(fault_crash, producer_acks_all_drop) { producer_power_cuts(KLOG_TESTING_CRASH_DROP, 0); }
Test(fault_crash, producer_acks_all_prefix) { producer_power_cuts(KLOG_TESTING_CRASH_PREFIX, 0); }
Test(fault_crash, producer_acks_all_garbage) { producer_power_cuts(KLOG_TESTING_CRASH_GARBAGE, 0); }
Test(fault_crash, producer_acks_all_zero) { producer_power_cuts(KLOG_TESTING_CRASH_ZERO, 0); }
Test(fault_crash, producer_acks_all_drop_lost_dirents)
{
    producer_power_cuts(KLOG_TESTING_CRASH_DROP, KLOG_TESTING_CRASH_LOSE_DIRENTS);
}
Test(fault_crash, producer_acks_all_random_lost_dirents)
{
    producer_power_cuts(KLOG_TESTING_CRASH_RANDOM, KLOG_TESTING_CRASH_LOSE_DIRENTS);
}

/* ---- a group's synchronous commit ------------------------------------------------------ */

#define GC_OLD 3
#define GC_NEW 7
#define GC_AFTER 3 /* ops after the commit's own to cut the power at */

/* Open dir on f; topic t with 10 records; a consumer of group g assigned
 * t-0; unless first, a durable commit of GC_OLD.  All on a healthy disk. */
static klog_consumer *gc_setup(const char *dir, klog_testing_fault *f, bool first, klog **kp)
{
    klog *k = *kp = fu_open_ok(dir, f);
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(ut_send(p, "t", 0, NULL, "v"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    klog_consumer *c = ut_consumer(k, "group.id", "g", "enable.auto.commit", "false", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, GC_OLD), 0);
    if (!first)
        cr_assert_eq(klog_consumer_commit(c, NULL, 0), 0);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, GC_NEW), 0);
    return c;
}

static void commit_power_cuts(bool first, enum klog_testing_crash_mode mode, unsigned flags)
{
    char dir[256], what[200];
    const char *mname = pc_mode_name(mode, flags);
    const int64_t before = first ? -1 : GC_OLD;

    /* the clean run: how many ops the commit takes */
    fu_sub(dir, sizeof dir, "clean");
    klog_testing_fault *f = fu_fault();
    klog *k;
    klog_consumer *c = gc_setup(dir, f, first, &k);
    uint64_t ops0 = klog_testing_fault_ops(f, KLOG_TESTING_OP_ALL);
    cr_assert_eq(klog_consumer_commit(c, NULL, 0), 0);
    uint64_t nops = klog_testing_fault_ops(f, KLOG_TESTING_OP_ALL) - ops0;
    cr_assert_eq(klog_consumer_close(c), 0);
    cr_assert_eq(klog_close(k), 0);
    klog_testing_fault_free(f);
    cr_assert_geq(nops, 2, "a commit writes and syncs: %" PRIu64 " ops", nops);
    fprintf(stderr, "fault_crash: %s commit, %s: power cut at each of its %" PRIu64 " ops and the %d after\n",
            first ? "first" : "second", mname, nops, GC_AFTER);

    /* every op of the commit, and the next few (closing the consumer and
     * the instance): a commit that returned success must survive those */
    unsigned met = 0;
    for (uint64_t at = 1; at <= nops + GC_AFTER; at++) {
        snprintf(what, sizeof what, "%s commit, %s, power cut at op %" PRIu64 " of %" PRIu64 "%s",
                 first ? "first" : "second", mname, at, nops, at > nops ? " (after it returned)" : "");
        fu_sub(dir, sizeof dir, "run");
        f = fu_fault();
        c = gc_setup(dir, f, first, &k);
        cr_assert_eq(klog_testing_fault_crash_at(f, KLOG_TESTING_OP_ALL, at, mode, flags, at * 7919), 0);
        int rc = klog_consumer_commit(c, NULL, 0);
        bool crashed = klog_testing_fault_crashed(f) == 1;
        cr_assert(rc == 0 || crashed, "%s: commit failed without a power cut: %s", what, klog_err_name(rc));
        klog_consumer_close(c); /* errors expected after the power cut */
        klog_close(k);
        met += klog_testing_fault_crashed(f) == 1;
        cr_assert_eq(klog_testing_fault_reboot(f), 0, "%s: reboot", what);
        klog_testing_fault_free(f);

        k = fu_open_ok(dir, NULL);
        int64_t off = -2;
        cr_assert_eq(klog_group_committed(k, "g", "t", 0, &off), 0, "%s", what);
        if (rc == 0)
            cr_assert_eq(off, GC_NEW, "%s: an acknowledged commit lost: committed %lld", what, (long long)off);
        else
            cr_assert(off == before || off == GC_NEW, "%s: committed %lld, neither %lld nor %d", what,
                      (long long)off, (long long)before, GC_NEW);
        /* the group commits again */
        klog_consumer *c2 = ut_consumer(k, "group.id", "g", "enable.auto.commit", "false", NULL);
        cr_assert_eq(klog_consumer_assign(c2, "t", 0, 9), 0);
        rc = klog_consumer_commit(c2, NULL, 0);
        cr_assert_eq(rc, 0, "%s: commit after recovery: %s", what, klog_err_name(rc));
        cr_assert_eq(klog_consumer_close(c2), 0);
        cr_assert_eq(klog_group_committed(k, "g", "t", 0, &off), 0);
        cr_assert_eq(off, 9);
        cr_assert_eq(klog_close(k), 0);
    }
    cr_assert_geq(met + 1, (unsigned)(nops + GC_AFTER), "%s: only %u of %" PRIu64 " runs met their power cut", mname,
                  met, nops + GC_AFTER);
}

static void commit_all_modes(bool first)
{
    commit_power_cuts(first, KLOG_TESTING_CRASH_DROP, 0);
    commit_power_cuts(first, KLOG_TESTING_CRASH_PREFIX, 0);
    commit_power_cuts(first, KLOG_TESTING_CRASH_GARBAGE, 0);
    commit_power_cuts(first, KLOG_TESTING_CRASH_ZERO, 0);
    commit_power_cuts(first, KLOG_TESTING_CRASH_DROP, KLOG_TESTING_CRASH_LOSE_DIRENTS);
    commit_power_cuts(first, KLOG_TESTING_CRASH_RANDOM, KLOG_TESTING_CRASH_LOSE_DIRENTS);
}

Test(fault_crash, group_commit_every_op) { commit_all_modes(false); }
Test(fault_crash, first_group_commit_every_op) { commit_all_modes(true); }

/* ---- the cleaner and retention --------------------------------------------------------
 *
 * Background work under power cuts.  A topic is filled on a healthy disk
 * (records acknowledged with acks=all; no cleaner, no retention check),
 * then reopened with the cleaner (a compacted topic) or retention (a
 * delete topic with retention.bytes) running, until its first pass shows
 * (clean_offset or start_offset moves), and closed: a power cut falls on
 * one of that run's operations (open's recovery, the pass, the close).
 * Every record was acknowledged, so after the reboot:
 *
 *   compaction: the end offset is where it was; offsets increase and every
 *     record read is the one written at its offset; every key's latest
 *     value is there, at its offset (the cleaner drops only superseded
 *     records);
 *   retention: the end offset is where it was; the records from the start
 *     offset on are dense and each the one written there; the start is no
 *     later than a pass on a healthy disk leaves it;
 *   both: the next record sent takes the end offset (offsets never reused).
 *
 * The op counts of two runs differ (background threads, timing): the
 * points are drawn from the clean run's count as for the producer, and a
 * run that ends before its power cut is checked as a clean one.
 */
#define BG_KEYS 8
#define BG_VERS 12
#define BG_N (BG_KEYS * BG_VERS)
#define BG_WAIT_MS 5000

static size_t bg_nread; /* records bg_check read */

static void bg_value(char *buf, size_t size, int64_t off)
{
    snprintf(buf, size, "k%d=v%02d-%040d", (int)(off % BG_KEYS), (int)(off / BG_KEYS), 0);
}

/* Fill dir on f (healthy) with BG_N acknowledged records: offset o holds
 * key k<o % BG_KEYS>, version o / BG_KEYS. */
static void bg_fill(const char *dir, klog_testing_fault *f, bool compact)
{
    klog *k = NULL;
    char err[256] = "";
    int rc = fu_open(&k, dir, f, err, sizeof err, "log.cleaner.enable", "false", "log.retention.check.interval.ms",
                     "1000000000", NULL);
    cr_assert_eq(rc, 0, "open: %s (%s)", klog_err_name(rc), err);
    if (compact)
        ut_topic(k, "t", 1, "cleanup.policy", "compact", "segment.bytes", "1024", "min.cleanable.dirty.ratio",
                 "0.01", NULL);
    else
        ut_topic(k, "t", 1, "segment.bytes", "1024", "retention.bytes", "2048", NULL);
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    for (int64_t o = 0; o < BG_N; o++) {
        char key[16], v[96];
        snprintf(key, sizeof key, "k%d", (int)(o % BG_KEYS));
        bg_value(v, sizeof v, o);
        cr_assert_eq(ut_send(p, "t", 0, key, v), 0);
        if (o % 4 == 3) /* batches of 4: a few to a segment */
            cr_assert_eq(klog_producer_flush(p, 30000), 0);
    }
    cr_assert_eq(klog_producer_flush(p, 30000), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(ut_end_offset(k, "t", 0), BG_N);
    cr_assert_eq(klog_close(k), 0);
    cr_assert_eq(klog_testing_fault_reboot(f), 0);
}

/* Open dir on f with the background work on, wait for its first pass (or
 * the power cut), close.  Returns whether the pass was seen. */
static bool bg_run(const char *dir, klog_testing_fault *f, bool compact)
{
    klog *k = NULL;
    char err[256] = "";
    int rc = fu_open(&k, dir, f, err, sizeof err, "log.cleaner.backoff.ms", "1", "log.retention.check.interval.ms",
                     "1", NULL);
    if (rc < 0) {
        cr_assert(klog_testing_fault_crashed(f) == 1, "open failed without a power cut: %s (%s)", klog_err_name(rc),
                  err);
        return false;
    }
    bool seen = false;
    for (int64_t t0 = ut_mono_ms(); !seen && ut_mono_ms() - t0 < BG_WAIT_MS;) {
        if (klog_testing_fault_crashed(f) == 1)
            break;
        klog_partition_info pi = { .struct_size = sizeof pi };
        if (klog_topic_describe(k, "t", &pi, 1, NULL, 0) == 1)
            seen = compact ? pi.clean_offset > 0 : pi.start_offset > 0;
        if (!seen)
            ut_sleep_ms(2);
    }
    rc = klog_close(k);
    if (klog_testing_fault_crashed(f) != 1) {
        cr_assert_eq(rc, 0, "close without a power cut: %s", klog_err_name(rc));
        cr_assert(seen, "no %s pass within %d ms on a healthy disk", compact ? "cleaner" : "retention", BG_WAIT_MS);
    }
    return seen;
}

/* After the reboot (see the top of this part).  Returns the start offset. */
static int64_t bg_check(const char *dir, bool compact, int64_t max_start, const char *what)
{
    klog *k = NULL;
    char err[256] = "";
    int rc = fu_open(&k, dir, NULL, err, sizeof err, "log.cleaner.enable", "false", "log.retention.check.interval.ms",
                     "1000000000", NULL);
    cr_assert_eq(rc, 0, "%s: reopen: %s (%s)", what, klog_err_name(rc), err);
    klog_partition_info pi = { .struct_size = sizeof pi };
    cr_assert_eq(klog_topic_describe(k, "t", &pi, 1, NULL, 0), 1, "%s: topic lost", what);
    cr_assert_eq(pi.end_offset, BG_N, "%s: end offset %lld, %d records were acknowledged", what,
                 (long long)pi.end_offset, BG_N);
    /* Read from the start up to the last record (a compacted log has
     * gaps: read until the offset before the end, within a bound). */
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    size_t n = 0;
    int64_t offs[BG_N], last = -1;
    bool latest[BG_KEYS] = { false };
    for (int64_t t0 = ut_mono_ms(); last < BG_N - 1 && ut_mono_ms() - t0 < BG_WAIT_MS;) {
        const klog_message *const *msgs = NULL;
        int got = klog_consumer_poll(c, 100, &msgs);
        cr_assert_geq(got, 0, "%s: poll: %s", what, klog_err_name(got));
        for (int j = 0; j < got; j++) {
            const klog_message *m = msgs[j];
            char v[96];
            bg_value(v, sizeof v, m->offset);
            cr_assert(m->offset > last && m->offset < BG_N, "%s: offset %lld after %lld", what, (long long)m->offset,
                      (long long)last);
            cr_assert(m->value && m->value_len == strlen(v) && memcmp(m->value, v, m->value_len) == 0,
                      "%s: offset %lld does not hold what was written there", what, (long long)m->offset);
            if (!compact)
                cr_assert_eq(m->offset, pi.start_offset + (int64_t)n, "%s: offsets not dense from the start at %zu",
                             what, n);
            if (m->offset >= BG_N - BG_KEYS)
                latest[m->offset % BG_KEYS] = true;
            offs[n++] = last = m->offset;
        }
    }
    (void)offs;
    bg_nread = n;
    cr_assert_eq(klog_consumer_close(c), 0);
    cr_assert_eq(last, BG_N - 1, "%s: read up to %lld", what, (long long)last);
    if (compact) {
        cr_assert_eq(pi.start_offset, 0, "%s: compaction moved the start to %lld", what, (long long)pi.start_offset);
        for (int key = 0; key < BG_KEYS; key++)
            cr_assert(latest[key], "%s: the latest value of k%d is lost", what, key);
    } else {
        cr_assert_eq((int64_t)n, BG_N - pi.start_offset, "%s: %zu records from start %lld", what, n,
                     (long long)pi.start_offset);
        cr_assert(max_start < 0 || pi.start_offset <= max_start, "%s: start %lld past where retention stops (%lld)",
                  what, (long long)pi.start_offset, (long long)max_start);
    }
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    cr_assert_eq(ut_send(p, "t", 0, "k0", "after"), 0);
    cr_assert_eq(klog_producer_close(p), 0, "%s: the partition refuses records after recovery", what);
    cr_assert_eq(ut_end_offset(k, "t", 0), BG_N + 1, "%s: an offset reused", what);
    int64_t start = pi.start_offset;
    cr_assert_eq(klog_close(k), 0);
    return start;
}

static void bg_power_cuts(bool compact, enum klog_testing_crash_mode mode, unsigned flags)
{
    char dir[256], what[200];
    const char *mname = pc_mode_name(mode, flags);
    const char *job = compact ? "cleaner" : "retention";
    fu_sub(dir, sizeof dir, "clean");
    klog_testing_fault *f = fu_fault();
    bg_fill(dir, f, compact);
    uint64_t ops0 = klog_testing_fault_ops(f, KLOG_TESTING_OP_ALL);
    bg_run(dir, f, compact);
    uint64_t total = klog_testing_fault_ops(f, KLOG_TESTING_OP_ALL) - ops0;
    cr_assert_eq(klog_testing_fault_reboot(f), 0);
    klog_testing_fault_free(f);
    snprintf(what, sizeof what, "%s, %s: clean run", job, mname);
    int64_t max_start = bg_check(dir, compact, -1, what);
    if (!compact)
        cr_assert_gt(max_start, 0, "%s: retention took nothing", what);
    else
        cr_assert_lt(bg_nread, BG_N, "%s: the cleaner dropped nothing", what);

    uint64_t seed = pc_seed(), *at = NULL;
    size_t n = pc_pick(total + 3, seed, pc_every_op(), &at);
    fprintf(stderr, "fault_crash: %s, %s: %" PRIu64 " ops in a clean run; power cut at %zu of them (seed %" PRIu64
                    ")\n",
            job, mname, total, n, seed);
    unsigned met = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(what, sizeof what, "%s, %s, power cut at op %" PRIu64 " of %" PRIu64 " (seed %" PRIu64 ")", job,
                 mname, at[i], total, seed);
        fu_sub(dir, sizeof dir, "run");
        f = fu_fault();
        bg_fill(dir, f, compact);
        cr_assert_eq(klog_testing_fault_crash_at(f, KLOG_TESTING_OP_ALL, at[i], mode, flags, seed ^ at[i]), 0);
        bg_run(dir, f, compact);
        met += klog_testing_fault_crashed(f) == 1;
        cr_assert_eq(klog_testing_fault_reboot(f), 0, "%s: reboot", what);
        klog_testing_fault_free(f);
        bg_check(dir, compact, max_start, what);
    }
    free(at);
    cr_assert_geq(met + 6, (unsigned)n, "%s, %s: only %u of %zu runs met their power cut", job, mname, met, n);
}

static void bg_all_modes(bool compact)
{
    bg_power_cuts(compact, KLOG_TESTING_CRASH_DROP, 0);
    bg_power_cuts(compact, KLOG_TESTING_CRASH_RANDOM, KLOG_TESTING_CRASH_LOSE_DIRENTS);
    bg_power_cuts(compact, KLOG_TESTING_CRASH_HOLES, KLOG_TESTING_CRASH_TORN);
    bg_power_cuts(compact, KLOG_TESTING_CRASH_RANDOM,
                  KLOG_TESTING_CRASH_TORN | KLOG_TESTING_CRASH_INFLIGHT | KLOG_TESTING_CRASH_LOSE_DIRENTS);
}

Test(fault_crash, cleaner_power_cuts) { bg_all_modes(true); }
Test(fault_crash, retention_power_cuts) { bg_all_modes(false); }

/* The finer crash model under the producer and the commit: torn
 * overwrites (the zeroed tail makes every append one), pages out of order
 * and writes in flight together. */
Test(fault_crash, producer_acks_all_holes_torn)
{
    producer_power_cuts(KLOG_TESTING_CRASH_HOLES, KLOG_TESTING_CRASH_TORN);
}
Test(fault_crash, producer_acks_all_random_torn_inflight)
{
    producer_power_cuts(KLOG_TESTING_CRASH_RANDOM, KLOG_TESTING_CRASH_TORN | KLOG_TESTING_CRASH_INFLIGHT |
                                                       KLOG_TESTING_CRASH_LOSE_DIRENTS);
}
Test(fault_crash, group_commit_torn_holes_inflight)
{
    commit_power_cuts(false, KLOG_TESTING_CRASH_HOLES, KLOG_TESTING_CRASH_TORN | KLOG_TESTING_CRASH_INFLIGHT);
    commit_power_cuts(true, KLOG_TESTING_CRASH_RANDOM,
                      KLOG_TESTING_CRASH_TORN | KLOG_TESTING_CRASH_INFLIGHT | KLOG_TESTING_CRASH_LOSE_DIRENTS);
}
