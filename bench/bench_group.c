/*
 * bench/bench_group.c - consumer groups through the public API: how long a
 * group takes to settle after a member joins, dies or leaves, and what a
 * group of consumers reads per second beside one consumer on the same data.
 * Links the shared library as a user does and uses nothing but
 * include/klog/.
 *
 * Sections (--only NAME runs one):
 *   settle      a group of 8 members over one topic of 64 partitions (empty:
 *               what is measured is the protocol, not reading).  Each member
 *               is a thread polling with a 1 ms timeout; after every poll it
 *               notes its generation (klog_consumer_member_id) and its
 *               assignment (klog_consumer_assignment, re-read when the
 *               generation moved or a rebalance callback fired) with the
 *               time the poll returned.  The group is "settled" when every
 *               live member reports the same generation, newer than the one
 *               before the event, and the union of their assignments covers
 *               the 64 partitions exactly once; the settle time runs from
 *               the event to the latest of those observations.
 *                 join   7 members settled; the 8th calls subscribe (its
 *                        clock starts just before the call).
 *                 close  8 settled; one member calls klog_consumer_close
 *                        (clock starts just before the call; it commits and
 *                        leaves); the other 7 settle.
 *                 dies   8 settled; one member stops polling and never
 *                        closes.  Clock starts when its last poll returned;
 *                        split into "expiry" (until klog_group_describe,
 *                        polled every 0.5 ms from shortly before the timeout,
 *                        no longer lists it: the session timeout) and
 *                        "rebalance" (from there until the other 7 settle).
 *               For each strategy (range, roundrobin, cooperative-sticky),
 *               with enable.auto.commit=true (the default: eager strategies
 *               commit synchronously on every revoke) and false;
 *               session.timeout.ms=1000 (--quick: 300).  After every settle
 *               the group is watched a little longer: a generation bump
 *               with no event is reported as an unsettled group.
 *   throughput  a topic of 16 partitions holding 4,000,000 records of a
 *               16-byte key and a 100-byte value (--quick: 100,000),
 *               produced beforehand (untimed).  One plain consumer
 *               (klog_consumer_assign of all 16 from the beginning) reads
 *               everything; then a group of 4 members (a thread each,
 *               auto.offset.reset=earliest, a fresh group.id per run) reads
 *               everything, once per strategy.  Timed from just before the
 *               assign (one consumer) or the subscribes (group: the join is
 *               included, and reported on its own) until the last record is
 *               in a member's hands.  Every record's value is touched.  A
 *               record handed out twice (redelivery across a rebalance)
 *               counts once in records/s and is reported as a duplicate.
 *
 * Conventions of bench_api.c: figures are the median of --reps runs
 * (default 5) with min..max, the baseline (one consumer) measured in the
 * same run, alternating with the groups so that drift hits both; the
 * segments are read once untimed before the timed runs, so that their
 * pages are mapped as for a consumer tailing the log.  Nothing is compared
 * against a target.
 *
 * Everything is written under DIR/bench_group.<pid>/ (removed at the end).
 *
 *   bench_group [--dir DIR] [--reps N] [--quick] [--only NAME]
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>

#include "bench_util.h"

#define MAX_REPS 31
#define MAX_SLOTS 8
#define SETTLE_MEMBERS 8
#define SETTLE_PARTS 64       /* one bit each in a uint64_t */
#define TP_MEMBERS 4
#define TP_PARTS 16
#define KEY_LEN 16
#define VAL_LEN 100
#define SETTLE_POLL_MS 1      /* members' poll timeout while settling */

/* the command line (bench_util.h): --dir, --reps, --quick, --only */
static bu_args g_a = { .base = "/tmp/klog-bench-group" };
static klog *g_k;
static unsigned g_seq;        /* topic and group names */
static int g_unsettled;       /* generation bumps after a settle, no event */
static volatile uint64_t g_sink;

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_group: %s: %s (%s)\n", what, klog_strerror(rc), klog_err_name(rc));
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = { (time_t)(us / 1000000u), (long)(us % 1000000u) * 1000L };
    nanosleep(&ts, NULL);
}

static double ms_between(uint64_t from, uint64_t to)
{
    return ((double)to - (double)from) / 1e6;
}

/* A conf from NULL-terminated key/value pairs. */
static klog_conf *conf_of(const char *const *kv)
{
    klog_conf *c;
    int rc = klog_conf_new(&c);
    if (rc)
        die("klog_conf_new", rc);
    for (; kv && kv[0]; kv += 2) {
        char err[256] = "";
        rc = klog_conf_set(c, kv[0], kv[1], err, sizeof err);
        if (rc) {
            fprintf(stderr, "bench_group: conf %s=%s: %s\n", kv[0], kv[1], err);
            exit(1);
        }
    }
    return c;
}

static klog_consumer *consumer_new(const char *const *kv)
{
    klog_conf *conf = conf_of(kv);
    klog_consumer *c;
    char err[256] = "";
    int rc = klog_consumer_new(g_k, conf, &c, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_group: consumer: %s\n", err);
        die("klog_consumer_new", rc);
    }
    klog_conf_free(conf);
    return c;
}

static void topic_new(char *name, size_t cap, const char *prefix, int partitions)
{
    snprintf(name, cap, "%s-%u", prefix, ++g_seq);
    char err[256] = "";
    int rc = klog_topic_create(g_k, name, partitions, NULL, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_group: topic %s: %s\n", name, err);
        die("klog_topic_create", rc);
    }
}

/* ---- members: one thread per consumer ------------------------------------ */

enum { CMD_RUN, CMD_CLOSE, CMD_DIE, CMD_STOP };

/* What a throughput run shares between its members. */
typedef struct tput {
    int64_t end[TP_PARTS];             /* each partition's end offset */
    _Atomic int64_t next[TP_PARTS];    /* highest offset handed out + 1 */
    _Atomic uint64_t delivered;        /* records handed out, duplicates included */
    _Atomic bool done;
    _Atomic uint64_t t_done;
    struct slot *slots;
    int nslots;
} tput;

typedef struct slot {
    klog_consumer *c;                  /* owned by the thread while it runs */
    const char *topic;
    tput *tp;                          /* NULL: a settle member */
    pthread_t th;
    bool started;
    _Atomic int cmd;
    _Atomic uint64_t t_sub;            /* just before subscribe */
    _Atomic uint64_t t_event;          /* close: before the call; die: its last poll's return */
    char id[256];                      /* a dying member's id, written before t_event */
    /* the member's own bookkeeping (its thread only) */
    int32_t seen_gen;
    bool dirty;                        /* a rebalance callback fired */
    uint64_t t_last;                   /* the last poll's return */
    uint64_t sum;
    /* what it reports, under g_mu */
    bool member;                       /* counts in the group (not closed, not dead) */
    int32_t gen;
    uint64_t bits;
    uint64_t t_changed;                /* when (gen, bits) last changed */
} slot;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_rebalance(klog_consumer *c, int event, klog_partition_list *parts, void *opaque)
{
    (void)c;
    (void)event;
    (void)parts;
    ((slot *)opaque)->dirty = true;
}

/* Note the member's generation and assignment as of time t. */
static void observe(slot *s, uint64_t t)
{
    int32_t gen = -1;
    klog_consumer_member_id(s->c, NULL, 0, &gen);
    if (gen == s->seen_gen && !s->dirty)
        return;
    s->seen_gen = gen;
    s->dirty = false;
    klog_partition_list *l;
    int rc = klog_consumer_assignment(s->c, &l);
    if (rc)
        die("klog_consumer_assignment", rc);
    uint64_t bits = 0;
    for (size_t i = 0; i < klog_partition_list_count(l); i++) {
        int32_t p = -1;
        klog_partition_list_get(l, i, NULL, &p, NULL, NULL, NULL);
        if (p >= 0 && p < 64)
            bits |= 1ull << p;
    }
    klog_partition_list_free(l);
    pthread_mutex_lock(&g_mu);
    if (gen != s->gen || bits != s->bits) {
        s->gen = gen;
        s->bits = bits;
        s->t_changed = t;
    }
    pthread_mutex_unlock(&g_mu);
}

/* Throughput: account for one poll's records; true once everything is read. */
static bool consume(slot *s, const klog_message *const *m, int n)
{
    tput *tp = s->tp;
    int64_t hi[TP_PARTS];
    for (int p = 0; p < TP_PARTS; p++)
        hi[p] = -1;
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        sum += m[i]->value_len + ((const uint8_t *)m[i]->value)[0];
        int32_t p = m[i]->partition;
        if (p >= 0 && p < TP_PARTS && m[i]->offset + 1 > hi[p])
            hi[p] = m[i]->offset + 1;
    }
    s->sum += sum;
    atomic_fetch_add(&tp->delivered, (uint64_t)n);
    bool all = true;
    for (int p = 0; p < TP_PARTS; p++) {
        int64_t cur = atomic_load(&tp->next[p]);
        while (hi[p] > cur && !atomic_compare_exchange_weak(&tp->next[p], &cur, hi[p]))
            ;
        if (atomic_load(&tp->next[p]) < tp->end[p])
            all = false;
    }
    return all;
}

static void *member_main(void *arg)
{
    slot *s = arg;
    atomic_store(&s->t_sub, now_ns());
    int rc = klog_consumer_subscribe(s->c, &s->topic, 1);
    if (rc)
        die("klog_consumer_subscribe", rc);
    int timeout = s->tp ? 100 : SETTLE_POLL_MS;
    for (;;) {
        int cmd = atomic_load(&s->cmd);
        if (cmd == CMD_STOP || (s->tp && atomic_load(&s->tp->done)))
            break;
        if (cmd == CMD_CLOSE) {
            pthread_mutex_lock(&g_mu);
            s->member = false;
            pthread_mutex_unlock(&g_mu);
            atomic_store(&s->t_event, now_ns());
            klog_consumer_close(s->c);
            s->c = NULL;
            break;
        }
        if (cmd == CMD_DIE) {
            klog_consumer_member_id(s->c, s->id, sizeof s->id, NULL);
            pthread_mutex_lock(&g_mu);
            s->member = false;
            pthread_mutex_unlock(&g_mu);
            atomic_store(&s->t_event, s->t_last);
            while (atomic_load(&s->cmd) != CMD_STOP)
                sleep_us(2000); /* silent: no poll, no close */
            break;
        }
        const klog_message *const *m;
        int n = klog_consumer_poll(s->c, timeout, &m);
        uint64_t t = now_ns();
        s->t_last = t;
        if (n < 0)
            die("klog_consumer_poll", n);
        if (s->tp && n > 0 && consume(s, m, n) && !atomic_exchange(&s->tp->done, true)) {
            atomic_store(&s->tp->t_done, t);
            for (int i = 0; i < s->tp->nslots; i++)
                if (&s->tp->slots[i] != s)
                    klog_consumer_wakeup(s->tp->slots[i].c); /* closed only after every thread is joined */
        }
        observe(s, t);
    }
    return NULL; /* s->sum is read after the join */
}

/* Start a member on a new consumer (created here, untimed). */
static void slot_start(slot *s, const char *topic, const char *const *kv, tput *tp)
{
    s->c = consumer_new(kv);
    int rc = klog_consumer_set_rebalance_cb(s->c, on_rebalance, s);
    if (rc)
        die("klog_consumer_set_rebalance_cb", rc);
    s->topic = topic;
    s->tp = tp;
    atomic_store(&s->cmd, CMD_RUN);
    atomic_store(&s->t_sub, 0);
    atomic_store(&s->t_event, 0);
    s->id[0] = '\0';
    s->seen_gen = -2;
    s->dirty = false;
    s->t_last = now_ns();
    s->sum = 0;
    pthread_mutex_lock(&g_mu);
    s->member = true;
    s->gen = -1;
    s->bits = 0;
    s->t_changed = 0;
    pthread_mutex_unlock(&g_mu);
    if (pthread_create(&s->th, NULL, member_main, s) != 0)
        die("pthread_create", -EAGAIN);
    s->started = true;
}

/* Join the member's thread and close its consumer if it still has one. */
static void slot_stop(slot *s)
{
    if (!s->started)
        return;
    atomic_store(&s->cmd, CMD_STOP);
    pthread_join(s->th, NULL);
    s->started = false;
    g_sink += s->sum;
    klog_consumer_close(s->c);
    s->c = NULL;
    pthread_mutex_lock(&g_mu);
    s->member = false;
    pthread_mutex_unlock(&g_mu);
}

/*
 * Is the group settled: exactly `members` live members, all on one
 * generation newer than `after`, their assignments covering partitions
 * 0..nparts-1 exactly once?  *gen and *t (the latest observation) on true.
 */
static bool settled(slot *sl, int n, int nparts, int members, int32_t after, int32_t *gen, uint64_t *t)
{
    int cnt = 0, pop = 0;
    int32_t g = INT32_MIN;
    bool same = true;
    uint64_t uni = 0, latest = 0;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < n; i++) {
        if (!sl[i].member)
            continue;
        cnt++;
        if (g == INT32_MIN)
            g = sl[i].gen;
        else if (sl[i].gen != g)
            same = false;
        uni |= sl[i].bits;
        pop += __builtin_popcountll(sl[i].bits);
        if (sl[i].t_changed > latest)
            latest = sl[i].t_changed;
    }
    pthread_mutex_unlock(&g_mu);
    uint64_t all = nparts >= 64 ? ~0ull : (1ull << nparts) - 1;
    if (cnt != members || !same || g <= after || uni != all || pop != nparts)
        return false;
    *gen = g;
    *t = latest;
    return true;
}

/* The group could not settle: say what each member reports, and the
 * coordinator's view, then stop. */
static void unsettled_dump(slot *sl, int n, const char *group, const char *what)
{
    fprintf(stderr, "bench_group: group %s did not settle after %s\n", group, what);
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "  member %d: %s generation %d, %d partitions (%016" PRIx64 ")\n", i,
                sl[i].member ? "live" : "gone", sl[i].gen, __builtin_popcountll(sl[i].bits), sl[i].bits);
    pthread_mutex_unlock(&g_mu);
    char *json = NULL;
    int rc = klog_group_describe(g_k, group, &json);
    fprintf(stderr, "  klog_group_describe: %s\n", rc ? klog_strerror(rc) : json);
    klog_free(json);
    exit(1);
}

static void wait_settled(slot *sl, int n, int nparts, int members, int32_t after, int timeout_ms,
                         const char *group, const char *what, int32_t *gen, uint64_t *t)
{
    uint64_t limit = now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (!settled(sl, n, nparts, members, after, gen, t)) {
        if (now_ns() > limit)
            unsettled_dump(sl, n, group, what);
        sleep_us(500);
    }
}

/* After a settle: watch the group a little longer; a new generation with
 * no event is counted (and said) as a group that had not really settled. */
static void check_still(slot *sl, int n, int nparts, int members, int32_t gen, const char *group, const char *what)
{
    sleep_us(g_a.quick ? 20000 : 50000);
    int32_t g2;
    uint64_t t2;
    if (!settled(sl, n, nparts, members, gen - 1, &g2, &t2) || g2 != gen) {
        fprintf(stderr, "bench_group: group %s moved on after settling (%s, generation %d)\n", group, what, gen);
        g_unsettled++;
        wait_settled(sl, n, nparts, members, gen - 1, 10000, group, what, &g2, &t2);
    }
}

/* Forget a finished group's committed offsets (unknown: it committed none). */
static void group_drop(const char *group)
{
    int rc = klog_group_delete(g_k, group);
    if (rc && rc != KLOG_EUNKNOWN_GROUP)
        die("klog_group_delete", rc);
}

/* ---- 1: settle ----------------------------------------------------------- */

static const char *const k_strategies[] = { "range", "roundrobin", "cooperative-sticky" };
#define NSTRAT 3

typedef struct settle_res {
    double join, close, die, expiry, rebalance;
} settle_res;

static void settle_run(const char *topic, const char *strategy, bool autocommit, int session_ms, settle_res *r)
{
    char group[96], sess[16];
    snprintf(group, sizeof group, "settle-%s-%s-%u", strategy, autocommit ? "ac" : "noac", ++g_seq);
    snprintf(sess, sizeof sess, "%d", session_ms);
    const char *const kv[] = { "group.id", group, "partition.assignment.strategy", strategy,
                               "session.timeout.ms", sess, "enable.auto.commit", autocommit ? "true" : "false",
                               NULL };
    slot sl[MAX_SLOTS];
    memset(sl, 0, sizeof sl);
    const int N = SETTLE_MEMBERS, P = SETTLE_PARTS;
    int32_t gen;
    uint64_t t;

    for (int i = 0; i < N - 1; i++)
        slot_start(&sl[i], topic, kv, NULL);
    wait_settled(sl, N, P, N - 1, -1, 10000, group, "7 members joined", &gen, &t);
    check_still(sl, N, P, N - 1, gen, group, "7 members joined");

    /* join: the 8th subscribes */
    slot_start(&sl[N - 1], topic, kv, NULL);
    wait_settled(sl, N, P, N, gen, 10000, group, "the 8th member joined", &gen, &t);
    r->join = ms_between(atomic_load(&sl[N - 1].t_sub), t);
    check_still(sl, N, P, N, gen, group, "the 8th member joined");

    /* close: member 0 leaves */
    atomic_store(&sl[0].cmd, CMD_CLOSE);
    wait_settled(sl, N, P, N - 1, gen, 10000, group, "a member closed", &gen, &t);
    r->close = ms_between(atomic_load(&sl[0].t_event), t);
    check_still(sl, N, P, N - 1, gen, group, "a member closed");
    slot_stop(&sl[0]);
    slot_start(&sl[0], topic, kv, NULL); /* back to 8, untimed */
    wait_settled(sl, N, P, N, gen, 10000, group, "a member rejoined", &gen, &t);
    check_still(sl, N, P, N, gen, group, "a member rejoined");

    /* dies: member 1 stops polling */
    atomic_store(&sl[1].cmd, CMD_DIE);
    uint64_t t_last;
    while ((t_last = atomic_load(&sl[1].t_event)) == 0)
        sleep_us(200);
    char needle[300];
    snprintf(needle, sizeof needle, "\"%s\"", sl[1].id);
    uint64_t watch_from = t_last + (uint64_t)(session_ms > 200 ? session_ms - 200 : 0) * 1000000u;
    uint64_t limit = t_last + (uint64_t)(session_ms + 10000) * 1000000u, t_listed = 0, t_removed = 0;
    /* the coordinator's view first (the group cannot settle before the
     * member is gone); removal is placed half-way between the last describe
     * that listed it and the first that did not */
    while (!t_removed) {
        uint64_t now = now_ns();
        if (now > limit)
            unsettled_dump(sl, N, group, "a member died (it is still listed)");
        if (now < watch_from) {
            sleep_us(20000);
            continue;
        }
        char *json = NULL;
        int rc = klog_group_describe(g_k, group, &json);
        if (rc)
            die("klog_group_describe", rc);
        if (strstr(json, needle))
            t_listed = now;
        else
            t_removed = t_listed ? t_listed + (now - t_listed) / 2 : now;
        klog_free(json);
        if (!t_removed)
            sleep_us(500);
    }
    wait_settled(sl, N, P, N - 1, gen, 10000, group, "a member died", &gen, &t);
    r->die = ms_between(t_last, t);
    r->expiry = ms_between(t_last, t_removed);
    r->rebalance = r->die - r->expiry;
    check_still(sl, N, P, N - 1, gen, group, "a member died");

    for (int i = 0; i < N; i++)
        slot_stop(&sl[i]);
    group_drop(group);
}

static void stat_of(double *v, int n, double *med, double *lo, double *hi)
{
    *med = bu_median(v, n); /* sorts */
    *lo = v[0];
    *hi = v[n - 1];
}

static void print_cell(double *v, int n, const char *fmt)
{
    double med, lo, hi;
    char buf[64];
    stat_of(v, n, &med, &lo, &hi);
    snprintf(buf, sizeof buf, fmt, med, lo, hi);
    printf(" %-22s", buf);
}

static void section_settle(void)
{
    const int session_ms = g_a.quick ? 300 : 1000;
    char topic[64];
    topic_new(topic, sizeof topic, "settle", SETTLE_PARTS);
    static double v[NSTRAT][2][5][MAX_REPS];
    for (int rep = 0; rep < g_a.reps; rep++)
        for (int s = 0; s < NSTRAT; s++)
            for (int ac = 0; ac < 2; ac++) {
                settle_res r;
                settle_run(topic, k_strategies[s], ac == 0, session_ms, &r);
                v[s][ac][0][rep] = r.join;
                v[s][ac][1][rep] = r.close;
                v[s][ac][2][rep] = r.die;
                v[s][ac][3][rep] = r.expiry;
                v[s][ac][4][rep] = r.rebalance;
            }
    printf("settle: %d members, one topic of %d partitions, session.timeout.ms=%d, members poll with a %d ms timeout;\n"
           "  ms from the event until every live member reports the new generation and the assignments cover every\n"
           "  partition exactly once; median (min..max) of %d\n",
           SETTLE_MEMBERS, SETTLE_PARTS, session_ms, SETTLE_POLL_MS, g_a.reps);
    printf("  %-26s %-22s %-22s %-22s %-22s %-22s\n", "strategy, auto-commit", "join 7+1", "close 8-1",
           "dies 8-1: total", " = expiry", " + rebalance");
    for (int s = 0; s < NSTRAT; s++)
        for (int ac = 0; ac < 2; ac++) {
            char label[64];
            snprintf(label, sizeof label, "%s, %s", k_strategies[s], ac == 0 ? "on" : "off");
            printf("  %-26s", label);
            print_cell(v[s][ac][0], g_a.reps, "%.2f (%.2f..%.2f)");
            print_cell(v[s][ac][1], g_a.reps, "%.2f (%.2f..%.2f)");
            print_cell(v[s][ac][2], g_a.reps, "%.0f (%.0f..%.0f)");
            print_cell(v[s][ac][3], g_a.reps, "%.0f (%.0f..%.0f)");
            print_cell(v[s][ac][4], g_a.reps, "%.2f (%.2f..%.2f)");
            printf("\n");
        }
    printf("  (dies: from the member's last poll; expiry: until klog_group_describe, polled every 0.5 ms,\n"
           "   no longer lists it; rebalance: from there until the other 7 settle.  A member's heartbeat\n"
           "   rides on its polls, so its last one may precede its last poll)\n");
    if (g_unsettled)
        printf("  WARNING: %d time(s) a group moved to a new generation after settling, with no event\n", g_unsettled);
    printf("\n");
    int rc = klog_topic_delete(g_k, topic);
    if (rc)
        die("klog_topic_delete", rc);
}

/* ---- 2: throughput ------------------------------------------------------- */

/* One consumer, all partitions assigned.  Returns the seconds taken. */
static double single_run(const char *topic, uint64_t records)
{
    klog_consumer *c = consumer_new(NULL);
    uint64_t got = 0, s = 0;
    uint64_t t0 = now_ns();
    for (int p = 0; p < TP_PARTS; p++) {
        int rc = klog_consumer_assign(c, topic, p, KLOG_OFFSET_BEGINNING);
        if (rc)
            die("klog_consumer_assign", rc);
    }
    while (got < records) {
        const klog_message *const *m;
        int n = klog_consumer_poll(c, 1000, &m);
        if (n < 0)
            die("klog_consumer_poll", n);
        if (n == 0)
            die("one consumer: poll timed out before the end", -ETIMEDOUT);
        for (int i = 0; i < n; i++)
            s += m[i]->value_len + ((const uint8_t *)m[i]->value)[0];
        got += (uint64_t)n;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    g_sink += s;
    klog_consumer_close(c);
    if (got != records)
        die("one consumer: record count", KLOG_ECORRUPT);
    return secs;
}

/* A group of TP_MEMBERS reads everything.  Returns the seconds taken;
 * *join_ms: until the group first settled; *dups: records handed out twice. */
static double group_run(const char *topic, const int64_t *end, uint64_t records, const char *strategy,
                        double *join_ms, uint64_t *dups)
{
    char group[96];
    snprintf(group, sizeof group, "tput-%s-%u", strategy, ++g_seq);
    const char *const kv[] = { "group.id", group, "partition.assignment.strategy", strategy,
                               "auto.offset.reset", "earliest", NULL };
    static tput tp;
    memset(&tp, 0, sizeof tp);
    memcpy(tp.end, end, sizeof tp.end);
    slot sl[TP_MEMBERS];
    memset(sl, 0, sizeof sl);
    tp.slots = sl;
    tp.nslots = TP_MEMBERS;
    /* consumers first (untimed), then the threads, which subscribe at once */
    for (int i = 0; i < TP_MEMBERS; i++) {
        sl[i].c = consumer_new(kv);
        int rc = klog_consumer_set_rebalance_cb(sl[i].c, on_rebalance, &sl[i]);
        if (rc)
            die("klog_consumer_set_rebalance_cb", rc);
        sl[i].topic = topic;
        sl[i].tp = &tp;
        sl[i].seen_gen = -2;
        sl[i].member = true;
        sl[i].gen = -1;
    }
    uint64_t t0 = now_ns();
    for (int i = 0; i < TP_MEMBERS; i++) {
        if (pthread_create(&sl[i].th, NULL, member_main, &sl[i]) != 0)
            die("pthread_create", -EAGAIN);
        sl[i].started = true;
    }
    int32_t gen;
    uint64_t t_join = 0, limit = t0 + 120ull * 1000000000u;
    while (!atomic_load(&tp.done)) {
        if (!t_join)
            (void)settled(sl, TP_MEMBERS, TP_PARTS, TP_MEMBERS, -1, &gen, &t_join);
        if (now_ns() > limit)
            unsettled_dump(sl, TP_MEMBERS, group, "two minutes of reading");
        sleep_us(500);
    }
    if (!t_join && !settled(sl, TP_MEMBERS, TP_PARTS, TP_MEMBERS, -1, &gen, &t_join))
        t_join = 0; /* everything was read before all four had partitions */
    for (int i = 0; i < TP_MEMBERS; i++) {
        pthread_join(sl[i].th, NULL);
        sl[i].started = false;
        g_sink += sl[i].sum;
    }
    double secs = (double)(atomic_load(&tp.t_done) - t0) / 1e9;
    *join_ms = t_join ? ms_between(t0, t_join) : -1;
    uint64_t delivered = atomic_load(&tp.delivered);
    *dups = delivered > records ? delivered - records : 0;
    for (int i = 0; i < TP_MEMBERS; i++)
        klog_consumer_close(sl[i].c);
    group_drop(group);
    return secs;
}

static void section_throughput(void)
{
    const uint64_t records = g_a.quick ? 100000 : 4000000;
    char topic[64];
    topic_new(topic, sizeof topic, "tput", TP_PARTS);

    /* prefill, untimed: partition i % 16 */
    static const char *const pkv[] = { "acks", "1", "linger.ms", "5", "batch.size", "1000000", NULL };
    klog_conf *pc = conf_of(pkv);
    klog_producer *p;
    char err[256] = "";
    int rc = klog_producer_new(g_k, pc, &p, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_group: producer: %s\n", err);
        die("klog_producer_new", rc);
    }
    klog_conf_free(pc);
    char key[KEY_LEN + 1], val[VAL_LEN];
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (char)('a' + i % 26);
    klog_record r = KLOG_RECORD_INIT;
    r.key = key;
    r.key_len = KEY_LEN;
    r.value = val;
    r.value_len = VAL_LEN;
    for (uint64_t i = 0; i < records; i++) {
        snprintf(key, sizeof key, "key-%012" PRIu64, i % 100000);
        r.partition = (int32_t)(i % TP_PARTS);
        if ((rc = klog_producer_send(p, topic, &r)) != 0)
            die("klog_producer_send", rc);
    }
    if ((rc = klog_producer_close(p)) != 0)
        die("klog_producer_close", rc);
    klog_partition_info pi[TP_PARTS];
    for (int i = 0; i < TP_PARTS; i++)
        pi[i].struct_size = sizeof pi[i];
    int n = klog_topic_describe(g_k, topic, pi, TP_PARTS, NULL, 0);
    if (n != TP_PARTS)
        die("klog_topic_describe", n < 0 ? n : -EIO);
    int64_t end[TP_PARTS];
    uint64_t total = 0, bytes = 0;
    for (int i = 0; i < TP_PARTS; i++) {
        end[i] = pi[i].end_offset;
        total += (uint64_t)(pi[i].end_offset - pi[i].start_offset);
        bytes += pi[i].size_bytes;
    }
    if (total != records)
        die("throughput: records missing from the log", KLOG_ECORRUPT);

    single_run(topic, records); /* untimed: the segments' pages get mapped once */
    double one[MAX_REPS], grp[NSTRAT][MAX_REPS], join[NSTRAT][MAX_REPS];
    uint64_t dups[NSTRAT] = { 0 };
    for (int rep = 0; rep < g_a.reps; rep++) {
        one[rep] = (double)records / single_run(topic, records) / 1e6;
        for (int s = 0; s < NSTRAT; s++) {
            uint64_t d;
            grp[s][rep] = (double)records / group_run(topic, end, records, k_strategies[s], &join[s][rep], &d) / 1e6;
            dups[s] += d;
        }
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("throughput: %" PRIu64 " records (%d-byte keys, %d-byte values, %.1f MB) over %d partitions, read from the\n"
           "  start; M records/s, median (min..max) of %d; this machine has %ld CPU(s) online, so %d member threads\n"
           "  share %ld core(s)\n",
           records, KEY_LEN, VAL_LEN, (double)bytes / 1e6, TP_PARTS, g_a.reps, cpus, TP_MEMBERS, cpus);
    double m1, lo, hi;
    stat_of(one, g_a.reps, &m1, &lo, &hi);
    printf("  %-36s %7.2f (%.2f..%.2f)\n", "one consumer, assign all 16", m1, lo, hi);
    for (int s = 0; s < NSTRAT; s++) {
        char label[64];
        double mg, jm, jl, jh;
        snprintf(label, sizeof label, "group of %d, %s", TP_MEMBERS, k_strategies[s]);
        stat_of(grp[s], g_a.reps, &mg, &lo, &hi);
        stat_of(join[s], g_a.reps, &jm, &jl, &jh);
        printf("  %-36s %7.2f (%.2f..%.2f)   ratio to one %.2f   join %.1f ms (%.1f..%.1f)   duplicates %" PRIu64 "\n",
               label, mg, lo, hi, mg / m1, jm, jl, jh, dups[s]);
    }
    printf("  (group: from the subscribes, join included, to the last record; join: until all %d members\n"
           "   hold the same generation and the assignments cover all %d partitions; -1: read before that)\n\n",
           TP_MEMBERS, TP_PARTS);
    rc = klog_topic_delete(g_k, topic);
    if (rc)
        die("klog_topic_delete", rc);
}

/* ---- main ---------------------------------------------------------------- */

static const bu_section k_sections[] = {
    { "settle", section_settle },
    { "throughput", section_throughput },
};
#define NSECTIONS (sizeof k_sections / sizeof k_sections[0])

int main(int argc, char **argv)
{
    int prc = bu_parse(argc, argv, "bench_group", k_sections, NSECTIONS, false, 5, MAX_REPS, &g_a);
    if (prc)
        return prc;
    char kdir[4200], err[256] = "";
    snprintf(kdir, sizeof kdir, "%s/klog", g_a.dir);
    int rc = klog_open(&g_k, kdir, NULL, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_group: klog_open %s: %s\n", kdir, err);
        die("klog_open", rc);
    }
    const char *ver;
    klog_version(&ver);
    printf("bench_group: klog %s, I/O backend %s, dir %s, median of %d run(s)%s\n\n", ver, klog_io_backend(g_k),
           g_a.base, g_a.reps, g_a.quick ? " (--quick: tiny sizes, checks only that it runs)" : "");
    fflush(stdout);
    bu_run(k_sections, NSECTIONS, &g_a);
    rc = klog_close(g_k);
    if (rc)
        die("klog_close", rc);
    bu_cleanup("bench_group", &g_a);
    return g_unsettled ? 1 : 0;
}
