/*
 * Consumer groups through the public API (include/klog/group.h): every
 * record once per group while the group is stable, at least once across
 * joins, leaves and a stalled member; rebalance callbacks (eager and
 * cooperative); fencing of stale generations; static membership; the admin
 * calls; pattern subscriptions; bad input.  Commits across kill -9 are in
 * group_kill.c.
 *
 * Consumers run as threads of this process ("threaded" members), or are
 * polled in turn by the test's main thread ("pumped" members) where the
 * order of events must be exact.  No assertion depends on speed: every wait
 * is for a condition, bounded only as a guard against a hang.
 *
 * Records carry key "k<i % NKEYS>" and value "<i>", i counting from 0 per
 * run, so that a consumer can tell which record it got and the default
 * partitioner keeps each key on one partition.
 */
#include "util.h"

#include <stdatomic.h>

TestSuite(group, .init = ut_mkdir, .fini = ut_rmdir, .timeout = 180);

#define NKEYS 48
#define MAXP 64          /* partitions a run tracks */
#define WAIT_MS 30000    /* guard against a hang, never a measure of speed */
#define EV_MAX 64

/* ---- what a group consumed ---------------------------------------------------------- */

/* One member's ownership of one partition: from its ASSIGNED callback to
 * its REVOKED or LOST callback.  Records within it must be consecutive
 * offsets from the assigned position. */
typedef struct stint {
    int member;
    int32_t partition;
    uint64_t stamp;     /* order of the ASSIGNED callbacks */
    int64_t start;      /* position at ASSIGNED */
    int64_t next;       /* next offset expected */
    bool open, lost;
} stint;

typedef struct run {
    klog *k;
    const char *topic;
    bool strict;                /* stable group: exactly once, per-key order */
    bool track;                 /* keep stints */
    bool commit_in_revoke;      /* members commit in their REVOKED callbacks */
    _Atomic int *seen;          /* deliveries per record */
    size_t cap;
    _Atomic size_t unique, total;
    _Atomic int nerr;
    char err[512];              /* the first error a thread met */
    pthread_mutex_t mu;         /* last, key_part, st */
    int64_t last[NKEYS];
    int key_part[NKEYS];
    stint *st;
    size_t nst, stcap;
    uint64_t stamp;
} run;

__attribute__((format(printf, 2, 3))) static void run_fail(run *r, const char *fmt, ...)
{
    if (atomic_fetch_add(&r->nerr, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, sizeof r->err, fmt, ap);
        va_end(ap);
    }
}

static void run_init(run *r, klog *k, const char *topic, size_t cap, bool strict, bool track)
{
    memset(r, 0, sizeof *r);
    r->k = k;
    r->topic = topic;
    r->cap = cap;
    r->strict = strict;
    r->track = track;
    if (cap) {
        /* 0: records are not tracked */
        r->seen = calloc(cap, sizeof *r->seen);
        cr_assert_not_null(r->seen);
    }
    pthread_mutex_init(&r->mu, NULL);
    for (int i = 0; i < NKEYS; i++) {
        r->last[i] = -1;
        r->key_part[i] = -1;
    }
}

static void run_fini(run *r)
{
    free(r->seen);
    free(r->st);
    pthread_mutex_destroy(&r->mu);
}

static void assert_no_errors(run *r)
{
    cr_assert_eq(atomic_load(&r->nerr), 0, "%d errors, the first: %s", atomic_load(&r->nerr), r->err);
}

/* ---- members -------------------------------------------------------------------------- */

typedef struct ev {
    int event;
    int n;
    char topic[EV_MAX][48];
    int32_t part[EV_MAX];
    int64_t off[EV_MAX];
    bool on_thread;     /* ran on the thread that polls (or closes) the consumer */
    int32_t gen;        /* the member's generation during the callback */
    int commit_rc;      /* commit of the revoked positions inside the callback */
} ev;

enum { CTL_RUN, CTL_STALL, CTL_STOP };

typedef struct member {
    run *r;
    int idx;
    klog_consumer *c;
    bool threaded;
    pthread_t th, self;
    _Atomic int ctl;
    _Atomic bool stalled;
    _Atomic int nassigned;      /* after the last poll */
    _Atomic uint64_t amask;     /* the partitions it holds (one topic), as bits */
    _Atomic int gen;
    _Atomic unsigned long polls;
    _Atomic int poll_err;       /* first negative poll result */
    klog_partition_list *stall_assign; /* the assignment when it stalled */
    int resume_commit_rc;       /* commit of stall_assign when it resumed */
    pthread_mutex_t mu;         /* evs, id */
    ev *evs;
    size_t nev, evcap;
    char id[256];
    int open_st[MAXP];          /* the open stint per partition, -1 */
} member;

static void ev_add(member *m, const ev *e)
{
    pthread_mutex_lock(&m->mu);
    if (m->nev == m->evcap) {
        m->evcap = m->evcap ? m->evcap * 2 : 8;
        m->evs = realloc(m->evs, m->evcap * sizeof *m->evs);
        if (!m->evs)
            abort();
    }
    m->evs[m->nev++] = *e;
    pthread_mutex_unlock(&m->mu);
}

static size_t ev_count(member *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->nev;
    pthread_mutex_unlock(&m->mu);
    return n;
}

/* A copy of event i (the array may move while the member runs). */
static ev ev_get(member *m, size_t i)
{
    pthread_mutex_lock(&m->mu);
    cr_assert_lt(i, m->nev);
    ev e = m->evs[i];
    pthread_mutex_unlock(&m->mu);
    return e;
}

static uint64_t ev_mask(const ev *e)
{
    uint64_t b = 0;
    for (int i = 0; i < e->n; i++)
        b |= 1ull << e->part[i];
    return b;
}

static const char *ev_name(int e)
{
    return e == KLOG_REBALANCE_ASSIGNED ? "ASSIGNED" : e == KLOG_REBALANCE_REVOKED ? "REVOKED"
                                                    : e == KLOG_REBALANCE_LOST     ? "LOST"
                                                                                   : "?";
}

static void rb_cb(klog_consumer *c, int event, klog_partition_list *parts, void *opaque)
{
    member *m = opaque;
    run *r = m->r;
    ev *e = calloc(1, sizeof *e);
    if (!e)
        abort();
    e->event = event;
    e->on_thread = pthread_equal(pthread_self(), m->self);
    if (c != m->c)
        run_fail(r, "member %d: callback for another consumer", m->idx);
    size_t n = klog_partition_list_count(parts);
    if (n > EV_MAX) {
        run_fail(r, "member %d: %zu partitions in one callback", m->idx, n);
        n = EV_MAX;
    }
    for (size_t i = 0; i < n; i++) {
        const char *topic;
        int32_t p;
        int64_t off;
        int err;
        if (klog_partition_list_get(parts, i, &topic, &p, &off, NULL, &err) != 0) {
            run_fail(r, "member %d: partition_list_get %zu", m->idx, i);
            continue;
        }
        snprintf(e->topic[i], sizeof e->topic[i], "%s", topic);
        e->part[i] = p;
        e->off[i] = off;
        if (event != KLOG_REBALANCE_LOST) {
            /* the partitions are assigned during the call: a new one at
             * its starting position, a revoked one at where it stopped */
            int64_t pos = -1;
            int rc = klog_consumer_position(c, topic, p, &pos);
            if (rc != 0 || pos != off)
                run_fail(r, "member %d: %s %s/%d at %" PRId64 ", position %s %" PRId64, m->idx, ev_name(event),
                         topic, p, off, klog_err_name(rc), pos);
        }
    }
    e->n = (int)n;
    klog_consumer_member_id(c, NULL, 0, &e->gen);
    if (event == KLOG_REBALANCE_REVOKED && r->commit_in_revoke) {
        /* the callback's own list, committed as it is (not const): each
         * entry's error field receives the result */
        e->commit_rc = klog_consumer_commit(c, parts, 0);
        for (size_t i = 0; i < klog_partition_list_count(parts); i++) {
            int err = 1;
            klog_partition_list_get(parts, i, NULL, NULL, NULL, NULL, &err);
            if (err != e->commit_rc)
                run_fail(r, "member %d: commit in REVOKED returned %s, entry %zu says %s", m->idx,
                         klog_err_name(e->commit_rc), i, klog_err_name(err));
        }
    }
    if (r->track) {
        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < e->n; i++) {
            int32_t p = e->part[i];
            if (p < 0 || p >= MAXP || strcmp(e->topic[i], r->topic) != 0) {
                run_fail(r, "member %d: %s of %s/%d", m->idx, ev_name(event), e->topic[i], p);
                continue;
            }
            if (event == KLOG_REBALANCE_ASSIGNED) {
                if (m->open_st[p] >= 0)
                    run_fail(r, "member %d: partition %d assigned twice", m->idx, p);
                if (r->nst == r->stcap) {
                    r->stcap = r->stcap ? r->stcap * 2 : 64;
                    r->st = realloc(r->st, r->stcap * sizeof *r->st);
                    if (!r->st)
                        abort();
                }
                r->st[r->nst] = (stint){ m->idx, p, r->stamp++, e->off[i], e->off[i], true, false };
                m->open_st[p] = (int)r->nst++;
            } else {
                if (m->open_st[p] < 0) {
                    run_fail(r, "member %d: %s of partition %d, not assigned", m->idx, ev_name(event), p);
                    continue;
                }
                stint *s = &r->st[m->open_st[p]];
                if (s->next != e->off[i])
                    run_fail(r, "member %d: %s partition %d at %" PRId64 ", after reading up to %" PRId64, m->idx,
                             ev_name(event), p, e->off[i], s->next);
                s->open = false;
                s->lost = event == KLOG_REBALANCE_LOST;
                m->open_st[p] = -1;
            }
        }
        pthread_mutex_unlock(&r->mu);
    }
    ev_add(m, e);
    free(e);
}

static void on_record(member *m, const klog_message *msg)
{
    run *r = m->r;
    if (!r->seen)
        return;
    char vb[32], kb[16];
    if (!msg->value || msg->value_len >= sizeof vb || !msg->key || msg->key_len >= sizeof kb) {
        run_fail(r, "member %d: unexpected record at %s/%d@%" PRId64, m->idx, msg->topic, msg->partition,
                 msg->offset);
        return;
    }
    memcpy(vb, msg->value, msg->value_len);
    vb[msg->value_len] = '\0';
    memcpy(kb, msg->key, msg->key_len);
    kb[msg->key_len] = '\0';
    long i = strtol(vb, NULL, 10), kk = strtol(kb + 1, NULL, 10);
    if (i < 0 || (size_t)i >= r->cap || kk < 0 || kk >= NKEYS || kk != i % NKEYS) {
        run_fail(r, "member %d: bad record %s=%s", m->idx, kb, vb);
        return;
    }
    int prev = atomic_fetch_add(&r->seen[i], 1);
    if (prev == 0)
        atomic_fetch_add(&r->unique, 1);
    atomic_fetch_add(&r->total, 1);
    if (r->strict && prev)
        run_fail(r, "member %d: record %ld (%d@%" PRId64 ") delivered again in a stable group", m->idx, i,
                 msg->partition, msg->offset);
    pthread_mutex_lock(&r->mu);
    if (r->key_part[kk] < 0)
        r->key_part[kk] = msg->partition;
    else if (r->key_part[kk] != msg->partition)
        run_fail(r, "key %s in partitions %d and %d", kb, r->key_part[kk], msg->partition);
    if (r->strict) {
        if (i <= r->last[kk])
            run_fail(r, "member %d: key %s: record %ld after %" PRId64, m->idx, kb, i, r->last[kk]);
        r->last[kk] = i;
    }
    if (r->track) {
        int s = msg->partition >= 0 && msg->partition < MAXP ? m->open_st[msg->partition] : -1;
        if (s < 0)
            run_fail(r, "member %d: record of partition %d, which it does not own", m->idx, msg->partition);
        else if (r->st[s].next != msg->offset)
            run_fail(r, "member %d: partition %d: offset %" PRId64 ", expected %" PRId64, m->idx, msg->partition,
                     msg->offset, r->st[s].next);
        else
            r->st[s].next++;
    }
    pthread_mutex_unlock(&r->mu);
}

/* After a poll: what the member holds now, for the main thread to watch. */
static void publish(member *m)
{
    klog_partition_list *l = NULL;
    if (klog_consumer_assignment(m->c, &l) == 0) {
        uint64_t b = 0;
        for (size_t i = 0; i < klog_partition_list_count(l); i++) {
            int32_t p = 0;
            klog_partition_list_get(l, i, NULL, &p, NULL, NULL, NULL);
            b |= p < 64 ? 1ull << p : 0;
        }
        atomic_store(&m->amask, b);
        atomic_store(&m->nassigned, (int)klog_partition_list_count(l));
        klog_partition_list_free(l);
    }
    char id[256];
    int32_t gen = -1;
    klog_consumer_member_id(m->c, id, sizeof id, &gen);
    pthread_mutex_lock(&m->mu);
    snprintf(m->id, sizeof m->id, "%s", id);
    pthread_mutex_unlock(&m->mu);
    atomic_store(&m->gen, gen);
}

static int member_poll(member *m, int timeout_ms)
{
    const klog_message *const *msgs;
    int n = klog_consumer_poll(m->c, timeout_ms, &msgs);
    if (n < 0) {
        int zero = 0;
        atomic_compare_exchange_strong(&m->poll_err, &zero, n);
        return n;
    }
    for (int i = 0; i < n; i++)
        on_record(m, msgs[i]);
    publish(m);
    atomic_fetch_add(&m->polls, 1);
    return n;
}

static void *member_main(void *arg)
{
    member *m = arg;
    m->self = pthread_self();
    for (;;) {
        int ctl = atomic_load(&m->ctl);
        if (ctl == CTL_STOP)
            break;
        if (ctl == CTL_STALL) {
            /* a member whose thread stopped polling: it neither polls nor
             * closes, as if the process were stopped */
            klog_partition_list_free(m->stall_assign);
            m->stall_assign = NULL;
            klog_consumer_assignment(m->c, &m->stall_assign);
            atomic_store(&m->stalled, true);
            while (atomic_load(&m->ctl) == CTL_STALL)
                ut_sleep_ms(1);
            atomic_store(&m->stalled, false);
            /* back: a commit before the next poll comes from a member
             * that is no longer in the group */
            m->resume_commit_rc = klog_consumer_commit(m->c, m->stall_assign, 0);
            continue;
        }
        member_poll(m, 20);
    }
    klog_consumer_close(m->c); /* REVOKED callbacks run here, on this thread */
    m->c = NULL;
    return NULL;
}

/* A consumer in `group` (strategy, auto.offset.reset=earliest), then
 * consumer keys as "key", "value" pairs, NULL. */
static klog_consumer *gconsumer(klog *k, const char *group, const char *strategy, ...)
{
    klog_conf *conf = NULL;
    cr_assert_eq(klog_conf_new(&conf), 0);
    char err[256] = "";
    cr_assert_eq(klog_conf_set(conf, "group.id", group, err, sizeof err), 0, "%s", err);
    cr_assert_eq(klog_conf_set(conf, "partition.assignment.strategy", strategy, err, sizeof err), 0, "%s", err);
    cr_assert_eq(klog_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err), 0, "%s", err);
    va_list ap;
    va_start(ap, strategy);
    for (const char *key; (key = va_arg(ap, const char *)) != NULL;) {
        const char *val = va_arg(ap, const char *);
        int rc = klog_conf_set(conf, key, val, err, sizeof err);
        cr_assert_eq(rc, 0, "conf %s=%s: %s (%s)", key, val, klog_err_name(rc), err);
    }
    va_end(ap);
    klog_consumer *c = NULL;
    int rc = klog_consumer_new(k, conf, &c, err, sizeof err);
    klog_conf_free(conf);
    cr_assert_eq(rc, 0, "klog_consumer_new: %s (%s)", klog_err_name(rc), err);
    return c;
}

static void subscribe1(klog_consumer *c, const char *topic)
{
    int rc = klog_consumer_subscribe(c, &topic, 1);
    cr_assert_eq(rc, 0, "subscribe %s: %s", topic, klog_err_name(rc));
}

/* Set m up around consumer c (subscribed by the caller) and, if threaded,
 * start its thread; otherwise the main thread polls it (pump). */
static void member_start(member *m, run *r, int idx, klog_consumer *c, bool threaded)
{
    memset(m, 0, sizeof *m);
    m->r = r;
    m->idx = idx;
    m->c = c;
    m->threaded = threaded;
    m->gen = -1;
    pthread_mutex_init(&m->mu, NULL);
    for (int i = 0; i < MAXP; i++)
        m->open_st[i] = -1;
    cr_assert_eq(klog_consumer_set_rebalance_cb(c, rb_cb, m), 0);
    if (threaded)
        cr_assert_eq(pthread_create(&m->th, NULL, member_main, m), 0);
    else
        m->self = pthread_self();
}

/* Stop (close) a member: on its thread, or here for a pumped one. */
static void member_stop(member *m)
{
    if (m->threaded) {
        atomic_store(&m->ctl, CTL_STOP);
        cr_assert_eq(ut_join_within(m->th, 60), 0, "member %d did not stop", m->idx);
    } else if (m->c) {
        klog_consumer_close(m->c);
        m->c = NULL;
    }
    cr_assert_eq(atomic_load(&m->poll_err), 0, "member %d: poll: %s", m->idx, klog_err_name(m->poll_err));
}

static void member_fini(member *m)
{
    pthread_mutex_destroy(&m->mu);
    free(m->evs);
    klog_partition_list_free(m->stall_assign);
}

/* Poll every pumped member once, without waiting. */
static void pump_once(member **ms, int n)
{
    for (int i = 0; i < n; i++)
        if (ms[i] && ms[i]->c)
            member_poll(ms[i], 0);
    ut_sleep_ms(1);
}

/* Wait for cond (threaded members poll by themselves). */
#define WAIT_FOR(cond)                                                                                             \
    ({                                                                                                             \
        int64_t dl_ = ut_mono_ms() + WAIT_MS;                                                                      \
        bool ok_;                                                                                                  \
        while (!(ok_ = (cond)) && ut_mono_ms() < dl_)                                                              \
            ut_sleep_ms(2);                                                                                        \
        ok_;                                                                                                       \
    })

/* Poll the pumped members in turn until cond. */
#define PUMP_FOR(ms, n, cond)                                                                                      \
    ({                                                                                                             \
        int64_t dl_ = ut_mono_ms() + WAIT_MS;                                                                      \
        bool ok_;                                                                                                  \
        while (!(ok_ = (cond)) && ut_mono_ms() < dl_)                                                              \
            pump_once((ms), (n));                                                                                  \
        ok_;                                                                                                       \
    })

/* All n members in one generation (>= 1) holding nparts partitions in all. */
static bool settled(member **ms, int n, int nparts)
{
    int g = atomic_load(&ms[0]->gen), sum = 0;
    if (g < 1)
        return false;
    for (int i = 0; i < n; i++) {
        if (atomic_load(&ms[i]->gen) != g)
            return false;
        sum += atomic_load(&ms[i]->nassigned);
    }
    return sum == nparts;
}

/* The partitions (of one topic) a consumer holds, as a bit mask. */
static uint64_t assigned_mask(klog_consumer *c)
{
    klog_partition_list *l = NULL;
    cr_assert_eq(klog_consumer_assignment(c, &l), 0);
    uint64_t b = 0;
    for (size_t i = 0; i < klog_partition_list_count(l); i++) {
        int32_t p;
        cr_assert_eq(klog_partition_list_get(l, i, NULL, &p, NULL, NULL, NULL), 0);
        b |= 1ull << p;
    }
    klog_partition_list_free(l);
    return b;
}

static bool has_assigned(klog_consumer *c, const char *topic, int32_t part)
{
    klog_partition_list *l = NULL;
    if (klog_consumer_assignment(c, &l) != 0)
        return false;
    bool found = false;
    for (size_t i = 0; i < klog_partition_list_count(l) && !found; i++) {
        const char *t;
        int32_t p;
        klog_partition_list_get(l, i, &t, &p, NULL, NULL, NULL);
        found = p == part && !strcmp(t, topic);
    }
    klog_partition_list_free(l);
    return found;
}

static int32_t generation_of(klog_consumer *c)
{
    int32_t g = -2;
    cr_assert_eq(klog_consumer_member_id(c, NULL, 0, &g), 0);
    return g;
}

static klog_partition_list *one_offset(const char *topic, int32_t p, int64_t off, const char *meta)
{
    klog_partition_list *l = NULL;
    cr_assert_eq(klog_partition_list_new(&l), 0);
    cr_assert_eq(klog_partition_list_add(l, topic, p, off, meta), 0);
    return l;
}

static int64_t committed_of(klog *k, const char *group, const char *topic, int32_t p)
{
    int64_t off = -5;
    int rc = klog_group_committed(k, group, topic, p, &off);
    cr_assert_eq(rc, 0, "committed %s %s/%d: %s", group, topic, p, klog_err_name(rc));
    return off;
}

static int count_str(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- producing ----------------------------------------------------------------------------- */

static int send_rec(klog_producer *p, const char *topic, size_t i)
{
    char key[16], val[24];
    snprintf(key, sizeof key, "k%03zu", i % NKEYS);
    snprintf(val, sizeof val, "%zu", i);
    return ut_send(p, topic, KLOG_PARTITION_ANY, key, val);
}

static void produce_keyed(klog *k, const char *topic, size_t first, size_t count)
{
    klog_producer *p = ut_producer(k, "linger.ms", "1", NULL);
    for (size_t i = first; i < first + count; i++)
        cr_assert_eq(send_rec(p, topic, i), 0);
    cr_assert_eq(klog_producer_flush(p, WAIT_MS), 0);
    cr_assert_eq(klog_producer_close(p), 0);
}

/* Produces keyed records on its own thread until told to stop. */
typedef struct prod {
    klog *k;
    run *r;
    pthread_t th;
    _Atomic bool stop;
    _Atomic size_t sent;
    int err;
} prod;

static void *prod_main(void *arg)
{
    prod *pr = arg;
    klog_producer *p = NULL;
    char err[256];
    klog_conf *conf = NULL;
    klog_conf_new(&conf);
    klog_conf_set(conf, "linger.ms", "1", err, sizeof err);
    pr->err = klog_producer_new(pr->k, conf, &p, err, sizeof err);
    klog_conf_free(conf);
    size_t i = 0;
    while (pr->err == 0 && !atomic_load(&pr->stop) && i + 20 < pr->r->cap) {
        for (int j = 0; j < 20 && pr->err == 0; j++, i++)
            pr->err = send_rec(p, pr->r->topic, i);
        if (pr->err == 0)
            pr->err = klog_producer_flush(p, WAIT_MS);
        atomic_store(&pr->sent, i);
        ut_sleep_ms(2);
    }
    int rc = klog_producer_close(p);
    if (pr->err == 0)
        pr->err = rc;
    return NULL;
}

static void prod_start(prod *pr, klog *k, run *r)
{
    memset(pr, 0, sizeof *pr);
    pr->k = k;
    pr->r = r;
    cr_assert_eq(pthread_create(&pr->th, NULL, prod_main, pr), 0);
}

static size_t prod_stop(prod *pr)
{
    atomic_store(&pr->stop, true);
    cr_assert_eq(ut_join_within(pr->th, 60), 0);
    cr_assert_eq(pr->err, 0, "producer: %s", klog_err_name(pr->err));
    return atomic_load(&pr->sent);
}

/* ---- checks over a run ------------------------------------------------------------------------- */

static int cmp_stint(const void *a, const void *b)
{
    const stint *x = a, *y = b;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->stamp < y->stamp ? -1 : x->stamp > y->stamp;
}

/*
 * At least once, from the ownership stints (all closed): per partition, the
 * first owner starts at 0, each later owner starts no later than what the
 * earlier ones had read up to (no gap), and the owners together read up to
 * the end.  Returns the records read twice (where a new owner started
 * below what was read before: only ever at a hand-over).
 */
static int64_t check_stints(run *r, int nparts)
{
    qsort(r->st, r->nst, sizeof *r->st, cmp_stint);
    int64_t dups = 0;
    size_t i = 0;
    for (int p = 0; p < nparts; p++) {
        int64_t covered = -1;
        for (; i < r->nst && r->st[i].partition == p; i++) {
            stint *s = &r->st[i];
            cr_assert(!s->open, "partition %d: member %d's stint still open", p, s->member);
            if (covered < 0)
                cr_assert_eq(s->start, 0, "partition %d: the first owner started at %" PRId64, p, s->start);
            else
                cr_assert_leq(s->start, covered, "partition %d: gap: member %d started at %" PRId64
                              " while %" PRId64 " was read", p, s->member, s->start, covered);
            if (covered >= 0 && s->start < covered)
                dups += (covered < s->next ? covered : s->next) - s->start;
            if (s->next > covered)
                covered = s->next;
        }
        int64_t end = ut_end_offset(r->k, r->topic, p);
        cr_assert_eq(covered < 0 ? 0 : covered, end, "partition %d: read up to %" PRId64 " of %" PRId64, p,
                     covered, end);
    }
    return dups;
}

static void check_all_seen(run *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_geq(atomic_load(&r->seen[i]), 1, "record %zu of %zu never delivered", i, n);
    cr_assert_eq(atomic_load(&r->unique), n);
}

/* ==== 1. steady state: exactly once per group ========================================================== */

#define STEADY_N 2000

static void steady(const char *strategy)
{
    klog *k = ut_open();
    static const int sizes[] = { 1, 3, 8 };
    for (int si = 0; si < 3; si++) {
        int G = sizes[si];
        char topic[32], g1[32], g2[32];
        snprintf(topic, sizeof topic, "t%d", G);
        snprintf(g1, sizeof g1, "main-%d", G);
        snprintf(g2, sizeof g2, "other-%d", G);
        ut_topic(k, topic, 16, NULL);
        run r1, r2;
        run_init(&r1, k, topic, STEADY_N, true, false);
        run_init(&r2, k, topic, STEADY_N, true, false);
        member *m = calloc((size_t)G + 2, sizeof *m);
        member *ms1[8], *ms2[2];
        for (int j = 0; j < G + 2; j++) {
            bool first = j < G;
            klog_consumer *c = gconsumer(k, first ? g1 : g2, first ? strategy : "range", NULL);
            subscribe1(c, topic);
            member_start(&m[j], first ? &r1 : &r2, j, c, true);
            if (first)
                ms1[j] = &m[j];
            else
                ms2[j - G] = &m[j];
        }
        /* stable first: the promise is about a stable group */
        cr_assert(WAIT_FOR(settled(ms1, G, 16) && settled(ms2, 2, 16)), "%s, %d members: never settled", strategy,
                  G);
        produce_keyed(k, topic, 0, STEADY_N);
        cr_assert(WAIT_FOR(atomic_load(&r1.unique) == STEADY_N && atomic_load(&r2.unique) == STEADY_N),
                  "%s, %d members: %zu and %zu of %d records", strategy, G, atomic_load(&r1.unique),
                  atomic_load(&r2.unique), STEADY_N);
        /* a few more polls each, to catch anything delivered twice */
        unsigned long p0[10];
        for (int j = 0; j < G + 2; j++)
            p0[j] = atomic_load(&m[j].polls);
        for (int j = 0; j < G + 2; j++)
            cr_assert(WAIT_FOR(atomic_load(&m[j].polls) >= p0[j] + 3));
        assert_no_errors(&r1);
        assert_no_errors(&r2);
        cr_assert_eq(atomic_load(&r1.total), STEADY_N, "%s, %d members: %zu deliveries", strategy, G,
                     atomic_load(&r1.total));
        cr_assert_eq(atomic_load(&r2.total), STEADY_N);
        /* leave one by one, each from a stable group: the close commits */
        for (int j = 0; j < G + 2; j++) {
            member_stop(&m[j]);
            member **rest = j < G ? &ms1[j + 1] : &ms2[j - G + 1];
            int nrest = j < G ? G - j - 1 : 2 - (j - G) - 1;
            if (nrest > 0)
                cr_assert(WAIT_FOR(settled(rest, nrest, 16)), "after member %d left", j);
        }
        assert_no_errors(&r1);
        assert_no_errors(&r2);
        cr_assert_eq(atomic_load(&r1.total), STEADY_N);
        for (int p = 0; p < 16; p++) {
            int64_t end = ut_end_offset(k, topic, p), c1 = -5, c2 = -5;
            cr_assert_eq(klog_group_committed(k, g1, topic, p, &c1), 0);
            cr_assert_eq(klog_group_committed(k, g2, topic, p, &c2), 0);
            cr_assert_eq(c1, end, "%s: committed %" PRId64 " of %" PRId64 " in partition %d", g1, c1, end, p);
            cr_assert_eq(c2, end, "%s: committed %" PRId64 " of %" PRId64 " in partition %d", g2, c2, end, p);
        }
        for (int j = 0; j < G + 2; j++)
            member_fini(&m[j]);
        free(m);
        run_fini(&r1);
        run_fini(&r2);
    }
    cr_assert_eq(klog_close(k), 0);
}

Test(group, steady_exactly_once_range)
{
    steady("range");
}

Test(group, steady_exactly_once_roundrobin)
{
    steady("roundrobin");
}

Test(group, steady_exactly_once_cooperative_sticky)
{
    steady("cooperative-sticky");
}

/* ==== 2. members join and leave while records keep coming ==================================================== */

typedef struct checker {
    klog *k;
    const char *group, *topic;
    pthread_t th;
    _Atomic bool stop;
    int64_t last[16];
    unsigned long samples;
    char err[256];
} checker;

/* Committed offsets only move forward. */
static void *checker_main(void *arg)
{
    checker *ck = arg;
    for (int p = 0; p < 16; p++)
        ck->last[p] = -1;
    while (!atomic_load(&ck->stop) && !ck->err[0]) {
        for (int p = 0; p < 16; p++) {
            int64_t off = -5;
            int rc = klog_group_committed(ck->k, ck->group, ck->topic, p, &off);
            if (rc != 0)
                snprintf(ck->err, sizeof ck->err, "committed: %s", klog_err_name(rc));
            else if (off < ck->last[p])
                snprintf(ck->err, sizeof ck->err, "partition %d: committed went from %" PRId64 " back to %" PRId64,
                         p, ck->last[p], off);
            else
                ck->last[p] = off;
        }
        ck->samples++;
        ut_sleep_ms(1);
    }
    return NULL;
}

static void joins_and_leaves(const char *strategy)
{
    klog *k = ut_open();
    ut_topic(k, "t", 16, NULL);
    run r;
    run_init(&r, k, "t", 400000, false, true);
    checker ck = { .k = k, .group = "g", .topic = "t" };
    cr_assert_eq(pthread_create(&ck.th, NULL, checker_main, &ck), 0);
    prod pr;
    prod_start(&pr, k, &r);
    member m[4];
    int live[4] = { 0 };
#define START(j)                                                                                                   \
    do {                                                                                                           \
        klog_consumer *c_ = gconsumer(k, "g", strategy, "auto.commit.interval.ms", "50", NULL);                    \
        subscribe1(c_, "t");                                                                                       \
        member_start(&m[j], &r, j, c_, true);                                                                      \
        live[j] = 1;                                                                                               \
    } while (0)
#define PROGRESS(n)                                                                                                \
    do {                                                                                                           \
        size_t u_ = atomic_load(&r.unique);                                                                        \
        cr_assert(WAIT_FOR(atomic_load(&r.unique) >= u_ + (n)), "stuck at %zu records", u_);                      \
    } while (0)
    START(0);
    PROGRESS(300);
    START(1);
    cr_assert(WAIT_FOR(atomic_load(&m[1].nassigned) > 0));
    PROGRESS(300);
    START(2);
    cr_assert(WAIT_FOR(atomic_load(&m[2].nassigned) > 0));
    PROGRESS(300);
    member_stop(&m[0]);
    live[0] = 0;
    PROGRESS(300);
    START(3);
    cr_assert(WAIT_FOR(atomic_load(&m[3].nassigned) > 0));
    PROGRESS(300);
    member_stop(&m[1]);
    live[1] = 0;
    PROGRESS(300);
    member_stop(&m[2]);
    live[2] = 0;
    PROGRESS(300);
    size_t sent = prod_stop(&pr);
    cr_assert(WAIT_FOR(atomic_load(&r.unique) == sent), "%zu of %zu records read", atomic_load(&r.unique), sent);
    member_stop(&m[3]);
    live[3] = 0;
    atomic_store(&ck.stop, true);
    cr_assert_eq(ut_join_within(ck.th, 30), 0);
    cr_assert_eq(ck.err[0], '\0', "%s", ck.err);
    cr_assert_gt(ck.samples, 0);
    assert_no_errors(&r);
    check_all_seen(&r, sent);
    int64_t dups = check_stints(&r, 16);
    cr_assert_eq(atomic_load(&r.total) - sent, (size_t)dups, "%zu deliveries of %zu records, %" PRId64
                 " at hand-overs", atomic_load(&r.total), sent, dups);
    cr_log_info("%s: %zu records, %" PRId64 " delivered twice at hand-overs, %zu stints", strategy, sent, dups,
                r.nst);
    /* the last member's close committed everything */
    for (int p = 0; p < 16; p++)
        cr_assert_eq(committed_of(k, "g", "t", p), ut_end_offset(k, "t", p), "partition %d", p);
    for (int j = 0; j < 4; j++) {
        cr_assert_eq(live[j], 0);
        member_fini(&m[j]);
    }
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
#undef START
#undef PROGRESS
}

Test(group, joins_and_leaves_range)
{
    joins_and_leaves("range");
}

Test(group, joins_and_leaves_cooperative_sticky)
{
    joins_and_leaves("cooperative-sticky");
}

/* ==== 3. a member that stops polling ===================================================================== */

static bool json_has_member(klog *k, const char *group, const char *id)
{
    char *json = NULL;
    if (klog_group_describe(k, group, &json) != 0)
        return false;
    char needle[300];
    snprintf(needle, sizeof needle, "\"member_id\":\"%s\"", id);
    bool has = strstr(json, needle) != NULL;
    klog_free(json);
    return has;
}

/* short_key: the member's setting that makes it expire when it stops
 * polling (session.timeout.ms or max.poll.interval.ms: the shorter counts). */
static void stalled_member(const char *strategy, const char *short_key)
{
    klog *k = ut_open();
    ut_topic(k, "t", 16, NULL);
    run r;
    run_init(&r, k, "t", 400000, false, true);
    prod pr;
    prod_start(&pr, k, &r);
    member m[3];
    member *all[3] = { &m[0], &m[1], &m[2] }, *others[2] = { &m[0], &m[1] };
    for (int j = 0; j < 3; j++) {
        /* only the member that will stall has a short limit (the pair
         * short_key=300 ends its list; the others' lists end before it):
         * the others must not expire on a loaded machine */
        klog_consumer *c = gconsumer(k, "g", strategy, "auto.commit.interval.ms", "50", "session.timeout.ms", "20000",
                                     j == 2 ? short_key : NULL, "300", NULL);
        subscribe1(c, "t");
        member_start(&m[j], &r, j, c, true);
    }
    member *s = &m[2];
    cr_assert(WAIT_FOR(settled(all, 3, 16) && atomic_load(&r.unique) >= 500));
    atomic_store(&s->ctl, CTL_STALL);
    cr_assert(WAIT_FOR(atomic_load(&s->stalled)));
    char old_id[256];
    pthread_mutex_lock(&s->mu);
    snprintf(old_id, sizeof old_id, "%s", s->id);
    size_t nev_at_stall = s->nev;
    pthread_mutex_unlock(&s->mu);
    int32_t old_gen = atomic_load(&s->gen);
    cr_assert_gt(klog_partition_list_count(s->stall_assign), 0);

    /* it is removed and its partitions go to the others, who read on */
    cr_assert(WAIT_FOR(!json_has_member(k, "g", old_id)), "%s never removed", old_id);
    cr_assert(WAIT_FOR(settled(others, 2, 16) && atomic_load(&m[0].gen) > old_gen));
    size_t target = atomic_load(&pr.sent);
    cr_assert(WAIT_FOR(atomic_load(&r.unique) >= target), "%zu of %zu records read without the stalled member",
              atomic_load(&r.unique), target);
    cr_assert_eq(ev_count(s), nev_at_stall, "the stalled member got callbacks while it did not poll");

    /* back: LOST on its own thread at its next poll, then a new member */
    atomic_store(&s->ctl, CTL_RUN);
    cr_assert(WAIT_FOR(ev_count(s) > nev_at_stall && atomic_load(&s->polls) > 0));
    cr_assert_eq(s->resume_commit_rc, KLOG_EUNKNOWN_MEMBER, "commit after removal: %s",
                 klog_err_name(s->resume_commit_rc));
    ev e = ev_get(s, nev_at_stall);
    cr_assert_eq(e.event, KLOG_REBALANCE_LOST, "first callback after the stall: %s", ev_name(e.event));
    cr_assert(e.on_thread);
    cr_assert_eq((size_t)e.n, klog_partition_list_count(s->stall_assign));
    for (int i = 0; i < e.n; i++) {
        int32_t p;
        cr_assert_eq(klog_partition_list_get(s->stall_assign, (size_t)i, NULL, &p, NULL, NULL, NULL), 0);
        cr_assert_eq(e.part[i], p, "LOST lists partition %d where %d was held", e.part[i], p);
    }
    cr_assert(WAIT_FOR(settled(all, 3, 16) && atomic_load(&s->nassigned) > 0), "the stalled member never rejoined");
    pthread_mutex_lock(&s->mu);
    cr_assert_str_neq(s->id, old_id, "rejoined under its old member id");
    cr_assert_neq(s->id[0], '\0');
    pthread_mutex_unlock(&s->mu);
    cr_assert(json_has_member(k, "g", s->id));

    size_t sent = prod_stop(&pr);
    cr_assert(WAIT_FOR(atomic_load(&r.unique) == sent), "%zu of %zu records read", atomic_load(&r.unique), sent);
    for (int j = 0; j < 3; j++)
        member_stop(&m[j]);
    assert_no_errors(&r);
    check_all_seen(&r, sent);
    int64_t dups = check_stints(&r, 16);
    cr_log_info("%s, short %s: %zu records, %zu deliveries, %" PRId64 " read twice at hand-overs", strategy,
                short_key, sent,
                atomic_load(&r.total), dups);
    for (int j = 0; j < 3; j++) {
        for (size_t i = 0; i < m[j].nev; i++)
            cr_assert(m[j].evs[i].on_thread, "member %d: callback %zu off its thread", j, i);
        member_fini(&m[j]);
    }
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
}

Test(group, stalled_member_range)
{
    stalled_member("range", "session.timeout.ms");
}

Test(group, stalled_member_cooperative_sticky)
{
    stalled_member("cooperative-sticky", "max.poll.interval.ms");
}

/* ==== 4. rebalance callbacks: eager and cooperative ========================================================= */

#define ALL16 0xffffull

/* Events from..nev of m: all of kind `event` (checked), their partitions ORed. */
static uint64_t ev_union(member *m, size_t from, int event)
{
    uint64_t b = 0;
    for (size_t i = from; i < ev_count(m); i++) {
        ev e = ev_get(m, i);
        cr_assert_eq(e.event, event, "member %d, callback %zu: %s where only %s were due", m->idx, i,
                     ev_name(e.event), ev_name(event));
        b |= ev_mask(&e);
    }
    return b;
}

static void check_event(member *m, size_t i, int event, uint64_t mask)
{
    ev e = ev_get(m, i);
    cr_assert_eq(e.event, event, "member %d, callback %zu: %s, expected %s", m->idx, i, ev_name(e.event),
                 ev_name(event));
    cr_assert_eq(ev_mask(&e), mask, "member %d, callback %zu (%s): partitions %#" PRIx64 ", expected %#" PRIx64,
                 m->idx, i, ev_name(event), ev_mask(&e), mask);
}

static void callbacks_all_ok(member *m)
{
    for (size_t i = 0; i < ev_count(m); i++) {
        ev e = ev_get(m, i);
        cr_assert(e.on_thread, "member %d: %s callback ran off the polling thread", m->idx, ev_name(e.event));
        for (int j = 0; j < e.n; j++)
            cr_assert_str_eq(e.topic[j], "t");
        if (e.event == KLOG_REBALANCE_REVOKED)
            cr_assert_eq(e.commit_rc, 0, "member %d: commit in REVOKED: %s", m->idx, klog_err_name(e.commit_rc));
    }
}

static klog_consumer *cb_consumer(klog *k, const char *strategy)
{
    /* no auto-commit: the commits in the REVOKED callbacks are the only ones */
    klog_consumer *c = gconsumer(k, "g", strategy, "enable.auto.commit", "false", NULL);
    subscribe1(c, "t");
    return c;
}

Test(group, callbacks_eager)
{
    klog *k = ut_open();
    ut_topic(k, "t", 16, NULL);
    produce_keyed(k, "t", 0, 320);
    run r;
    run_init(&r, k, "t", 320, false, true);
    r.commit_in_revoke = true;
    member m[2], *ab[2] = { &m[0], &m[1] };
    member *a = &m[0], *b = &m[1];
    member_start(a, &r, 0, cb_consumer(k, "range"), true);
    cr_assert(WAIT_FOR(atomic_load(&a->gen) >= 1 && atomic_load(&a->nassigned) == 16));
    cr_assert_eq(ev_count(a), 1);
    check_event(a, 0, KLOG_REBALANCE_ASSIGNED, ALL16);
    int32_t g1 = atomic_load(&a->gen);

    /* B joins: A gives everything back first, then gets its share */
    member_start(b, &r, 1, cb_consumer(k, "range"), true);
    cr_assert(WAIT_FOR(settled(ab, 2, 16) && atomic_load(&a->nassigned) == 8 && atomic_load(&b->nassigned) == 8));
    cr_assert_eq(ev_count(a), 3, "A: %zu callbacks", ev_count(a));
    cr_assert_eq(ev_count(b), 1, "B: %zu callbacks", ev_count(b));
    ev a1 = ev_get(a, 1), a2 = ev_get(a, 2), b0 = ev_get(b, 0);
    check_event(a, 1, KLOG_REBALANCE_REVOKED, ALL16);
    cr_assert_eq(a2.event, KLOG_REBALANCE_ASSIGNED);
    cr_assert_eq(b0.event, KLOG_REBALANCE_ASSIGNED);
    cr_assert_eq(ev_mask(&a2) | ev_mask(&b0), ALL16);
    cr_assert_eq(ev_mask(&a2) & ev_mask(&b0), 0);
    cr_assert_eq(a1.gen, g1, "REVOKED ran in generation %d, not the old one %d", a1.gen, g1);
    cr_assert_gt(a2.gen, g1);
    cr_assert_eq(a2.gen, b0.gen);
    cr_assert(WAIT_FOR(atomic_load(&r.unique) == 320));

    /* B leaves: REVOKED on its own thread inside close; A revokes its
     * share, then gets all 16 */
    int32_t g2 = atomic_load(&a->gen);
    member_stop(b);
    cr_assert_eq(ev_count(b), 2);
    check_event(b, 1, KLOG_REBALANCE_REVOKED, ev_mask(&b0));
    cr_assert(WAIT_FOR(atomic_load(&a->nassigned) == 16 && atomic_load(&a->gen) > g2));
    cr_assert_eq(ev_count(a), 5, "A: %zu callbacks", ev_count(a));
    check_event(a, 3, KLOG_REBALANCE_REVOKED, ev_mask(&a2));
    check_event(a, 4, KLOG_REBALANCE_ASSIGNED, ALL16);
    callbacks_all_ok(a);
    callbacks_all_ok(b);
    assert_no_errors(&r);
    /* no auto-commit: these came from the callbacks */
    for (int p = 0; p < 16; p++) {
        int64_t off = -5;
        cr_assert_eq(klog_group_committed(k, "g", "t", p, &off), 0);
        cr_assert_eq(off, ut_end_offset(k, "t", p), "partition %d: committed %" PRId64, p, off);
    }
    member_stop(a);
    member_fini(a);
    member_fini(b);
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
}

Test(group, callbacks_cooperative)
{
    klog *k = ut_open();
    ut_topic(k, "t", 16, NULL);
    produce_keyed(k, "t", 0, 320);
    run r;
    run_init(&r, k, "t", 320, false, true);
    r.commit_in_revoke = true;
    member m[3], *ab[2] = { &m[0], &m[1] }, *abc[3] = { &m[0], &m[1], &m[2] };
    member *a = &m[0], *b = &m[1], *c = &m[2];
    member_start(a, &r, 0, cb_consumer(k, "cooperative-sticky"), true);
    cr_assert(WAIT_FOR(atomic_load(&a->gen) >= 1 && atomic_load(&a->nassigned) == 16));
    cr_assert_eq(ev_count(a), 1);
    check_event(a, 0, KLOG_REBALANCE_ASSIGNED, ALL16);

    /* B joins: A revokes only what moves to B, and nothing is assigned to
     * A again */
    member_start(b, &r, 1, cb_consumer(k, "cooperative-sticky"), true);
    cr_assert(WAIT_FOR(settled(ab, 2, 16) && atomic_load(&a->nassigned) == 8 && atomic_load(&b->nassigned) == 8));
    uint64_t a_now = atomic_load(&a->amask), b_now = ALL16 & ~a_now;
    cr_assert_eq(ev_count(a), 2, "A: %zu callbacks", ev_count(a));
    check_event(a, 1, KLOG_REBALANCE_REVOKED, b_now);
    cr_assert_eq(ev_union(b, 0, KLOG_REBALANCE_ASSIGNED), b_now);

    /* C joins: A and B each revoke only what goes to C */
    size_t na = ev_count(a), nb = ev_count(b);
    member_start(c, &r, 2, cb_consumer(k, "cooperative-sticky"), true);
    cr_assert(WAIT_FOR(settled(abc, 3, 16) && atomic_load(&c->nassigned) >= 5 && atomic_load(&a->nassigned) >= 5 &&
                       atomic_load(&b->nassigned) >= 5));
    uint64_t a2 = atomic_load(&a->amask), b2 = atomic_load(&b->amask), c2 = atomic_load(&c->amask);
    cr_assert_eq(a2 & ~a_now, 0, "A gained partitions %#" PRIx64, a2 & ~a_now);
    cr_assert_eq(b2 & ~b_now, 0, "B gained partitions %#" PRIx64, b2 & ~b_now);
    cr_assert_eq(ev_union(a, na, KLOG_REBALANCE_REVOKED), a_now & ~a2);
    cr_assert_eq(ev_union(b, nb, KLOG_REBALANCE_REVOKED), b_now & ~b2);
    cr_assert_eq(ev_union(c, 0, KLOG_REBALANCE_ASSIGNED), c2);
    cr_assert_eq(c2, (a_now & ~a2) | (b_now & ~b2));
    cr_assert(WAIT_FOR(atomic_load(&r.unique) == 320));

    /* C leaves: A and B only gain, so they get no REVOKED at all */
    na = ev_count(a);
    nb = ev_count(b);
    size_t nc = ev_count(c);
    int32_t g3 = atomic_load(&a->gen);
    member_stop(c);
    cr_assert_eq(ev_count(c), nc + 1);
    check_event(c, nc, KLOG_REBALANCE_REVOKED, c2);
    cr_assert(WAIT_FOR(settled(ab, 2, 16) && atomic_load(&a->gen) > g3));
    uint64_t a3 = atomic_load(&a->amask), b3 = atomic_load(&b->amask);
    cr_assert_eq(a3 & a2, a2, "A lost partitions it kept");
    cr_assert_eq(b3 & b2, b2, "B lost partitions it kept");
    cr_assert_eq(ev_union(a, na, KLOG_REBALANCE_ASSIGNED), a3 & ~a2);
    cr_assert_eq(ev_union(b, nb, KLOG_REBALANCE_ASSIGNED), b3 & ~b2);
    callbacks_all_ok(a);
    callbacks_all_ok(b);
    callbacks_all_ok(c);
    assert_no_errors(&r);
    for (int p = 0; p < 16; p++) {
        int64_t off = -5;
        cr_assert_eq(klog_group_committed(k, "g", "t", p, &off), 0);
        if ((a_now & ~a2) >> p & 1 || (b_now & ~b2) >> p & 1 || c2 >> p & 1)
            cr_assert_eq(off, ut_end_offset(k, "t", p), "partition %d: committed %" PRId64, p, off);
    }
    member_stop(a);
    member_stop(b);
    for (int j = 0; j < 3; j++)
        member_fini(&m[j]);
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
}

Test(group, unsubscribe_leaves)
{
    klog *k = ut_open();
    ut_topic(k, "t", 16, NULL);
    run r;
    run_init(&r, k, "t", 0, false, false);
    member m[2], *ms[2] = { &m[0], &m[1] };
    member *a = &m[0], *b = &m[1];
    member_start(a, &r, 0, cb_consumer(k, "range"), false);
    member_start(b, &r, 1, cb_consumer(k, "range"), false);
    cr_assert(PUMP_FOR(ms, 2, settled(ms, 2, 16)));
    uint64_t amask = assigned_mask(a->c);
    size_t na = ev_count(a);
    int32_t g = generation_of(b->c);
    /* A leaves at once, revoking everything on the calling thread */
    cr_assert_eq(klog_consumer_unsubscribe(a->c), 0);
    cr_assert_eq(ev_count(a), na + 1);
    check_event(a, na, KLOG_REBALANCE_REVOKED, amask);
    cr_assert(ev_get(a, na).on_thread);
    cr_assert_eq(assigned_mask(a->c), 0);
    char id[256] = "junk";
    int32_t ag = 5;
    cr_assert_eq(klog_consumer_member_id(a->c, id, sizeof id, &ag), 0);
    cr_assert_str_eq(id, "");
    cr_assert_eq(ag, -1);
    cr_assert_eq(klog_consumer_unsubscribe(a->c), KLOG_ESTATE);
    member *only_b[1] = { b };
    cr_assert(PUMP_FOR(only_b, 1, atomic_load(&b->nassigned) == 16 && atomic_load(&b->gen) > g));
    char *json = NULL;
    cr_assert_eq(klog_group_describe(k, "g", &json), 0);
    cr_assert_eq(count_str(json, "\"member_id\":"), 1, "%s", json);
    klog_free(json);
    /* and comes back as a new member */
    subscribe1(a->c, "t");
    cr_assert(PUMP_FOR(ms, 2, settled(ms, 2, 16) && atomic_load(&a->nassigned) == 8));
    for (int j = 0; j < 2; j++) {
        member_stop(&m[j]);
        member_fini(&m[j]);
    }
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
}

/* ==== 5. fencing ================================================================================================ */

Test(group, stale_generation_fenced)
{
    klog *k = ut_open();
    ut_topic(k, "t", 4, NULL);
    run r;
    run_init(&r, k, "t", 0, false, false);
    member m[3], *ms[3] = { &m[0], NULL, NULL };
    member *a = &m[0], *b = &m[1], *c = &m[2];
    /* one thread polls all three, in an order that leaves A behind */
    member_start(a, &r, 0, cb_consumer(k, "range"), false);
    cr_assert(PUMP_FOR(ms, 1, atomic_load(&a->gen) >= 1 && atomic_load(&a->nassigned) == 4));
    member_start(b, &r, 1, cb_consumer(k, "range"), false);
    ms[1] = b;
    cr_assert(PUMP_FOR(ms, 2, settled(ms, 2, 4)));
    int32_t g = generation_of(a->c);

    member_start(c, &r, 2, cb_consumer(k, "range"), false);
    member_poll(c, 0); /* C joins: a rebalance starts */
    member_poll(a, 0); /* A revokes and rejoins, and waits for B */
    cr_assert_eq(generation_of(a->c), g);
    cr_assert_eq(atomic_load(&a->nassigned), 0, "eager: A holds nothing while it rejoins");
    klog_partition_list *l = one_offset("t", 0, 3, "x");
    int rc = klog_consumer_commit(a->c, l, 0);
    cr_assert_eq(rc, KLOG_EREBALANCE, "commit while the rebalance completes: %s", klog_err_name(rc));

    member_poll(b, 0); /* B rejoins last: the group moves to g + 1 without A */
    cr_assert_eq(generation_of(b->c), g + 1);
    cr_assert_eq(generation_of(a->c), g, "A has not polled since");
    rc = klog_consumer_commit(a->c, l, 0);
    cr_assert_eq(rc, KLOG_EFENCED, "commit from generation %d in %d: %s", g, g + 1, klog_err_name(rc));
    int err = 0;
    cr_assert_eq(klog_partition_list_get(l, 0, NULL, NULL, NULL, NULL, &err), 0);
    cr_assert_eq(err, KLOG_EFENCED, "entry error %s", klog_err_name(err));
    cr_assert_eq(klog_consumer_commit(a->c, l, 1), KLOG_EFENCED, "async commits are fenced too");
    cr_assert_eq(committed_of(k, "g", "t", 0), -1, "a fenced commit was stored");

    /* A catches up at its next poll; then its commits count */
    member_poll(a, 0);
    cr_assert_eq(generation_of(a->c), g + 1);
    cr_assert_eq(klog_consumer_commit(a->c, l, 0), 0);
    cr_assert_eq(committed_of(k, "g", "t", 0), 3);
    char meta[16] = "?";
    int64_t off = -5;
    cr_assert_eq(klog_consumer_committed(a->c, "t", 0, &off, meta, sizeof meta), 0);
    cr_assert_eq(off, 3);
    cr_assert_str_eq(meta, "x");

    /* a standalone consumer (group.id, explicit partitions) may not commit
     * into a group with members */
    klog_consumer *sa = gconsumer(k, "g", "range", "enable.auto.commit", "false", NULL);
    cr_assert_eq(klog_consumer_assign(sa, "t", 1, 0), 0);
    klog_partition_list *l1 = one_offset("t", 1, 2, NULL);
    cr_assert_eq(klog_consumer_commit(sa, l1, 0), KLOG_ESTATE);
    cr_assert_eq(klog_consumer_commit(sa, NULL, 0), KLOG_ESTATE);
    const char *t = "t";
    cr_assert_eq(klog_consumer_subscribe(sa, &t, 1), KLOG_ESTATE, "subscribe after an explicit assign");
    cr_assert_eq(committed_of(k, "g", "t", 1), -1);
    for (int j = 0; j < 3; j++)
        member_stop(&m[j]);
    /* the group is empty now: the standalone commit goes through */
    cr_assert_eq(klog_consumer_commit(sa, l1, 0), 0);
    cr_assert_eq(committed_of(k, "g", "t", 1), 2);
    klog_consumer_close(sa);
    klog_partition_list_free(l);
    klog_partition_list_free(l1);
    for (int j = 0; j < 3; j++)
        member_fini(&m[j]);
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
}

/* ==== 6. static membership ======================================================================================= */

static char *describe(klog *k, const char *group)
{
    char *json = NULL;
    int rc = klog_group_describe(k, group, &json);
    cr_assert_eq(rc, 0, "describe %s: %s", group, klog_err_name(rc));
    cr_assert_not_null(json);
    return json;
}

static klog_consumer *static_consumer(klog *k, const char *instance, const char *session_ms)
{
    klog_consumer *c = gconsumer(k, "g", "range", "group.instance.id", instance, "session.timeout.ms", session_ms,
                                 NULL);
    subscribe1(c, "t");
    return c;
}

Test(group, static_membership)
{
    klog *k = ut_open();
    ut_topic(k, "t", 12, NULL);
    run r;
    run_init(&r, k, "t", 0, false, false);
    member m[4];
    member *s1 = &m[0], *s2 = &m[1], *s3 = &m[2], *s2b = &m[3];
    /* s3 is the one that will not come back: a shorter session */
    member_start(s1, &r, 0, static_consumer(k, "i1", "60000"), false);
    member_start(s2, &r, 1, static_consumer(k, "i2", "60000"), false);
    member_start(s3, &r, 2, static_consumer(k, "i3", "2000"), false);
    member *ms[3] = { s1, s2, s3 };
    cr_assert(PUMP_FOR(ms, 3, settled(ms, 3, 12)));
    int32_t g = atomic_load(&s1->gen);
    uint64_t mask2 = assigned_mask(s2->c);
    char id2[256];
    snprintf(id2, sizeof id2, "%s", s2->id);
    size_t ev1 = ev_count(s1), ev3 = ev_count(s3);

    /* s2 restarts: a new consumer with the same instance id */
    member_stop(s2);
    member_start(s2b, &r, 3, static_consumer(k, "i2", "60000"), false);
    ms[1] = s2b;
    cr_assert(PUMP_FOR(ms, 3, atomic_load(&s2b->nassigned) > 0));
    cr_assert_eq(atomic_load(&s2b->gen), g, "the restarted member is in generation %d, not %d", s2b->gen, g);
    cr_assert_eq(assigned_mask(s2b->c), mask2, "partitions %#" PRIx64 " after the restart, %#" PRIx64 " before",
                 assigned_mask(s2b->c), mask2);
    cr_assert_str_neq(s2b->id, id2, "the old member id must be fenced");
    cr_assert_eq(ev_count(s2b), 1);
    check_event(s2b, 0, KLOG_REBALANCE_ASSIGNED, mask2);
    /* and the others saw nothing, even some polls later */
    for (int i = 0; i < 50; i++)
        pump_once(ms, 3);
    cr_assert_eq(generation_of(s1->c), g);
    cr_assert_eq(generation_of(s3->c), g);
    cr_assert_eq(generation_of(s2b->c), g);
    cr_assert_eq(ev_count(s1), ev1, "a member saw a rebalance when a static member restarted");
    cr_assert_eq(ev_count(s3), ev3, "a member saw a rebalance when a static member restarted");
    char *json = describe(k, "g");
    char want[64];
    snprintf(want, sizeof want, "\"generation\":%d,", g);
    cr_assert(strstr(json, want), "%s", json);
    cr_assert_eq(count_str(json, "\"member_id\":"), 3, "%s", json);
    cr_assert(strstr(json, "\"instance_id\":\"i2\""), "%s", json);
    klog_free(json);

    /* s3 leaves and does not come back: after its session, a rebalance */
    member_stop(s3);
    member *rest[2] = { s1, s2b };
    cr_assert(PUMP_FOR(rest, 2, settled(rest, 2, 12) && atomic_load(&s1->gen) > g));
    cr_assert_gt(ev_count(s1), ev1);
    json = describe(k, "g");
    cr_assert_eq(count_str(json, "\"member_id\":"), 2, "%s", json);
    cr_assert_null(strstr(json, "\"instance_id\":\"i3\""), "%s", json);
    klog_free(json);
    member_stop(s1);
    member_stop(s2b);
    for (int j = 0; j < 4; j++)
        member_fini(&m[j]);
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
}

/* ==== 8. administration ============================================================================================ */

static bool listed(klog *k, const char *group)
{
    char **names = NULL;
    size_t n = 0;
    int rc = klog_group_list(k, &names, &n);
    cr_assert_eq(rc, 0, "group list: %s", klog_err_name(rc));
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        found |= !strcmp(names[i], group);
        if (i)
            cr_assert_lt(strcmp(names[i - 1], names[i]), 0, "list not sorted");
    }
    klog_group_list_free(names, n);
    return found;
}

static void produce_ts(klog *k, const char *topic, int part, int count, int64_t ts0)
{
    klog_producer *p = ut_producer(k, NULL);
    for (int i = 0; i < count; i++) {
        klog_record rec = KLOG_RECORD_INIT;
        rec.partition = part;
        rec.value = "v";
        rec.value_len = 1;
        rec.timestamp = ts0 + (int64_t)i * 1000;
        cr_assert_eq(klog_producer_send(p, topic, &rec), 0);
    }
    cr_assert_eq(klog_producer_close(p), 0);
}

#define TS0 INT64_C(1700000000000)

Test(group, admin)
{
    klog *k = ut_open();
    /* the records are stamped TS0 (2023): without retention.ms -1 the
     * retention pass (every second) may delete them all mid-test */
    ut_topic(k, "t", 2, "retention.ms", "-1", NULL);
    produce_ts(k, "t", 0, 10, TS0);
    produce_ts(k, "t", 1, 6, TS0);
    char *json = NULL;
    cr_assert_not(listed(k, "ga"));
    cr_assert_eq(klog_group_describe(k, "ga", &json), KLOG_EUNKNOWN_GROUP);
    cr_assert_eq(klog_group_delete(k, "ga"), KLOG_EUNKNOWN_GROUP);
    cr_assert_eq(committed_of(k, "ga", "t", 0), -1);

    /* bad names */
    char longname[300];
    memset(longname, 'a', 256);
    longname[256] = '\0';
    const char *bad[] = { "", longname, "a\001b", "tab\there" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t off;
        cr_assert_eq(klog_group_describe(k, bad[i], &json), KLOG_EBADNAME, "bad name %zu", i);
        cr_assert_eq(klog_group_committed(k, bad[i], "t", 0, &off), KLOG_EBADNAME, "bad name %zu", i);
        cr_assert_eq(klog_group_reset_offsets(k, bad[i], "t", -1, KLOG_RESET_EARLIEST, 0), KLOG_EBADNAME);
        cr_assert_eq(klog_group_delete(k, bad[i]), KLOG_EBADNAME, "bad name %zu", i);
        /* as group.id: "" is no group at all; the conf refuses a value
         * over 255 bytes itself */
        klog_conf *conf = ut_conf(NULL);
        if (klog_conf_set(conf, "group.id", bad[i], NULL, 0) == 0 && bad[i][0]) {
            klog_consumer *c = NULL;
            cr_assert_eq(klog_consumer_new(k, conf, &c, NULL, 0), KLOG_EBADNAME, "consumer group.id %zu", i);
            cr_assert_null(c);
        }
        klog_conf_free(conf);
    }
    longname[255] = '\0'; /* 255 bytes is allowed */
    cr_assert_eq(klog_group_describe(k, longname, &json), KLOG_EUNKNOWN_GROUP);

    /* an active group */
    klog_consumer *c = gconsumer(k, "ga", "range", "enable.auto.commit", "false", NULL);
    subscribe1(c, "t");
    run r;
    run_init(&r, k, "t", 0, false, false);
    member m0, *ms[1] = { &m0 };
    member_start(&m0, &r, 0, c, false);
    cr_assert(PUMP_FOR(ms, 1, atomic_load(&m0.nassigned) == 2));
    klog_partition_list *l = NULL;
    cr_assert_eq(klog_partition_list_new(&l), 0);
    cr_assert_eq(klog_partition_list_add(l, "t", 0, 7, "m0"), 0);
    cr_assert_eq(klog_partition_list_add(l, "t", 1, 6, NULL), 0);
    cr_assert_eq(klog_consumer_commit(c, l, 0), 0);
    klog_partition_list_free(l);
    cr_assert(listed(k, "ga"));
    json = describe(k, "ga");
    char frag[512];
    cr_assert(strstr(json, "\"group\":\"ga\""), "%s", json);
    cr_assert(strstr(json, "\"state\":\"Stable\""), "%s", json);
    cr_assert(strstr(json, "\"protocol\":\"range\""), "%s", json);
    snprintf(frag, sizeof frag, "\"member_id\":\"%s\"", m0.id);
    cr_assert(strstr(json, frag), "%s lacks %s", json, frag);
    cr_assert(strstr(json, "{\"topic\":\"t\",\"partition\":0}"), "%s", json);
    cr_assert(strstr(json, "{\"topic\":\"t\",\"partition\":1}"), "%s", json);
    cr_assert(strstr(json, "{\"topic\":\"t\",\"partition\":0,\"committed\":7,\"end\":10,\"lag\":3,"
                           "\"metadata\":\"m0\"}"), "%s", json);
    cr_assert(strstr(json, "{\"topic\":\"t\",\"partition\":1,\"committed\":6,\"end\":6,\"lag\":0,"
                           "\"metadata\":\"\"}"), "%s", json);
    klog_free(json);
    /* Kafka's rule: stop the consumers first */
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", -1, KLOG_RESET_EARLIEST, 0), KLOG_ESTATE);
    cr_assert_eq(klog_group_delete(k, "ga"), KLOG_ESTATE);
    cr_assert_eq(committed_of(k, "ga", "t", 0), 7);
    member_stop(&m0);
    member_fini(&m0);

    /* empty now: offsets stay, members go */
    json = describe(k, "ga");
    cr_assert(strstr(json, "\"state\":\"Empty\""), "%s", json);
    cr_assert(strstr(json, "\"members\":[]"), "%s", json);
    cr_assert(strstr(json, "\"committed\":7"), "%s", json);
    klog_free(json);
    cr_assert(listed(k, "ga"));

    /* resets */
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", -1, KLOG_RESET_EARLIEST, 0), 2);
    cr_assert_eq(committed_of(k, "ga", "t", 0), 0);
    cr_assert_eq(committed_of(k, "ga", "t", 1), 0);
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 0, KLOG_RESET_LATEST, 0), 1);
    cr_assert_eq(committed_of(k, "ga", "t", 0), 10);
    cr_assert_eq(committed_of(k, "ga", "t", 1), 0);
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 0, KLOG_RESET_TIMESTAMP, TS0 + 4500), 1);
    cr_assert_eq(committed_of(k, "ga", "t", 0), 5);
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 0, KLOG_RESET_TIMESTAMP, TS0 + 99000), 1);
    cr_assert_eq(committed_of(k, "ga", "t", 0), 10, "a time past the last record: the end");
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 1, KLOG_RESET_OFFSET, 3), 1);
    cr_assert_eq(committed_of(k, "ga", "t", 1), 3);
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 1, KLOG_RESET_OFFSET, 100), 1);
    cr_assert_eq(committed_of(k, "ga", "t", 1), 6, "clamped to the end");
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 0, KLOG_RESET_OFFSET, 4), 1);
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 0, KLOG_RESET_SHIFT, -1), 1);
    cr_assert_eq(committed_of(k, "ga", "t", 0), 3);
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 0, KLOG_RESET_SHIFT, -100), 1);
    cr_assert_eq(committed_of(k, "ga", "t", 0), 0, "clamped to the start");
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 0, KLOG_RESET_SHIFT, 3), 1);
    cr_assert_eq(committed_of(k, "ga", "t", 0), 3);
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "nope", -1, KLOG_RESET_EARLIEST, 0), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 2, KLOG_RESET_EARLIEST, 0), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 0, 99, 0), -EINVAL);
    cr_assert_eq(committed_of(k, "ga", "t", 0), 3);
    cr_assert_eq(klog_group_reset_offsets(k, "ga", "t", 1, KLOG_RESET_OFFSET, 3), 1, "back again");
    cr_assert_eq(committed_of(k, "ga", "t", 1), 3);

    /* a new member resumes where the reset put the group */
    c = gconsumer(k, "ga", "range", "enable.auto.commit", "false", NULL);
    subscribe1(c, "t");
    ut_msg *got = NULL;
    size_t n = 0;
    got = ut_consume(c, 7 + 3, &n); /* p0: 3..9, p1: 3..5 */
    cr_assert_eq(n, 10, "%zu records after the reset", n);
    int64_t first[2] = { -1, -1 };
    for (size_t i = 0; i < n; i++)
        if (first[got[i].partition] < 0)
            first[got[i].partition] = got[i].offset;
    cr_assert_eq(first[0], 3);
    cr_assert_eq(first[1], 3);
    ut_msgs_free(got, n);
    klog_consumer_close(c);

    /* delete */
    cr_assert_eq(klog_group_delete(k, "ga"), 0);
    cr_assert_eq(committed_of(k, "ga", "t", 0), -1);
    cr_assert_eq(committed_of(k, "ga", "t", 1), -1);
    cr_assert_not(listed(k, "ga"));
    cr_assert_eq(klog_group_describe(k, "ga", &json), KLOG_EUNKNOWN_GROUP);
    cr_assert_eq(klog_group_delete(k, "ga"), KLOG_EUNKNOWN_GROUP);
    /* and it stays deleted across a reopen */
    cr_assert_eq(klog_close(k), 0);
    k = ut_open();
    cr_assert_not(listed(k, "ga"));
    cr_assert_eq(committed_of(k, "ga", "t", 0), -1);
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
}

/* ==== 8b. klog_group_info_get: the struct beside the JSON ======================================================= */

static const klog_group_offset *info_offset(const klog_group_info *gi, const char *topic, int32_t p)
{
    for (size_t i = 0; i < gi->offset_count; i++)
        if (!strcmp(gi->offsets[i]->topic, topic) && gi->offsets[i]->partition == p)
            return gi->offsets[i];
    return NULL;
}

/* klog_group_describe's document holds exactly what gi holds, field for
 * field, in its order (the group does not change meanwhile). */
static void assert_json_matches(klog *k, const klog_group_info *gi)
{
    char *json = describe(k, gi->group);
    char want[4096];
    int n = snprintf(want, sizeof want, "{\"group\":\"%s\",\"state\":\"%s\",\"generation\":%d,\"protocol\":\"%s\","
                     "\"members\":[", gi->group, gi->state, (int)gi->generation, gi->protocol);
    for (size_t i = 0; i < gi->member_count; i++) {
        const klog_group_member *m = gi->members[i];
        n += snprintf(want + n, sizeof want - (size_t)n, "%s{\"member_id\":\"%s\",\"instance_id\":%s%s%s,"
                      "\"client_id\":\"%s\",\"assignment\":[", i ? "," : "", m->member_id,
                      m->instance_id ? "\"" : "", m->instance_id ? m->instance_id : "null",
                      m->instance_id ? "\"" : "", m->client_id);
        for (size_t j = 0; j < klog_partition_list_count(m->assignment); j++) {
            const char *t;
            int32_t p;
            cr_assert_eq(klog_partition_list_get(m->assignment, j, &t, &p, NULL, NULL, NULL), 0);
            n += snprintf(want + n, sizeof want - (size_t)n, "%s{\"topic\":\"%s\",\"partition\":%d}", j ? "," : "",
                          t, (int)p);
        }
        n += snprintf(want + n, sizeof want - (size_t)n, "]}");
    }
    n += snprintf(want + n, sizeof want - (size_t)n, "],\"offsets\":[");
    for (size_t i = 0; i < gi->offset_count; i++) {
        const klog_group_offset *o = gi->offsets[i];
        n += snprintf(want + n, sizeof want - (size_t)n,
                      "%s{\"topic\":\"%s\",\"partition\":%d,\"committed\":%" PRId64 ",\"end\":%" PRId64
                      ",\"lag\":%" PRId64 ",\"metadata\":\"%s\"}", i ? "," : "", o->topic, (int)o->partition,
                      o->committed, o->end, o->lag, o->metadata);
    }
    n += snprintf(want + n, sizeof want - (size_t)n, "]}");
    cr_assert_lt((size_t)n, sizeof want);
    cr_assert_str_eq(json, want);
    klog_free(json);
}

Test(group, info_struct_matches_json)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    ut_topic(k, "gone", 1, NULL);
    produce_ts(k, "t", 0, 10, TS0);
    produce_ts(k, "t", 1, 6, TS0);
    produce_ts(k, "gone", 0, 4, TS0);
    klog_group_info *gi = NULL;
    cr_assert_eq(klog_group_info_get(k, "gi", &gi), KLOG_EUNKNOWN_GROUP);
    cr_assert_null(gi, "*out changed by a failed call");
    cr_assert_eq(klog_group_info_get(k, "", &gi), KLOG_EBADNAME);
    cr_assert_eq(klog_group_info_get(k, NULL, &gi), KLOG_EBADNAME);
    cr_assert_eq(klog_group_info_get(NULL, "gi", &gi), -EINVAL);
    cr_assert_eq(klog_group_info_get(k, "gi", NULL), -EINVAL);
    klog_group_info_free(NULL);
    klog_group_list_free(NULL, 0);

    /* one member holding both partitions of t; offsets committed for t and
     * for a topic deleted afterwards */
    klog_consumer *c = gconsumer(k, "gi", "range", "enable.auto.commit", "false", "client.id", "billing-1", NULL);
    subscribe1(c, "t");
    run r;
    run_init(&r, k, "t", 0, false, false);
    member m0, *ms[1] = { &m0 };
    member_start(&m0, &r, 0, c, false);
    cr_assert(PUMP_FOR(ms, 1, atomic_load(&m0.nassigned) == 2));
    klog_partition_list *l = NULL;
    cr_assert_eq(klog_partition_list_new(&l), 0);
    cr_assert_eq(klog_partition_list_add(l, "t", 0, 7, "m0"), 0);
    cr_assert_eq(klog_partition_list_add(l, "t", 1, 6, NULL), 0);
    cr_assert_eq(klog_partition_list_add(l, "gone", 0, 2, "g"), 0);
    cr_assert_eq(klog_consumer_commit(c, l, 0), 0);
    klog_partition_list_free(l);
    cr_assert_eq(klog_topic_delete(k, "gone"), 0);

    cr_assert_eq(klog_group_info_get(k, "gi", &gi), 0);
    cr_assert_not_null(gi);
    cr_assert_eq(gi->struct_size, sizeof(klog_group_info));
    cr_assert_str_eq(gi->group, "gi");
    cr_assert_str_eq(gi->state, "Stable");
    cr_assert_str_eq(gi->protocol, "range");
    cr_assert_eq(gi->generation, generation_of(c));
    cr_assert_geq(gi->generation, 1);
    cr_assert_eq(gi->member_count, 1);
    const klog_group_member *mb = gi->members[0];
    cr_assert_eq(mb->struct_size, sizeof(klog_group_member));
    cr_assert_str_eq(mb->member_id, m0.id);
    cr_assert_null(mb->instance_id, "a dynamic member has no instance id");
    cr_assert_str_eq(mb->client_id, "billing-1");
    cr_assert_eq(klog_partition_list_count(mb->assignment), 2);
    unsigned seen = 0;
    for (size_t j = 0; j < 2; j++) {
        const char *t = NULL, *meta = "?";
        int32_t p = -1;
        int64_t off = 0;
        int err = 1;
        cr_assert_eq(klog_partition_list_get(mb->assignment, j, &t, &p, &off, &meta, &err), 0);
        cr_assert_str_eq(t, "t");
        cr_assert_eq(off, KLOG_OFFSET_NONE);
        cr_assert_null(meta);
        cr_assert_eq(err, 0);
        seen |= 1u << p;
    }
    cr_assert_eq(seen, 3u, "the assignment is t/0 and t/1");
    cr_assert_eq(gi->offset_count, 3);
    const klog_group_offset *o = info_offset(gi, "t", 0);
    cr_assert_not_null(o);
    cr_assert_eq(o->struct_size, sizeof(klog_group_offset));
    cr_assert_eq(o->committed, 7);
    cr_assert_eq(o->end, 10);
    cr_assert_eq(o->lag, 3);
    cr_assert_str_eq(o->metadata, "m0");
    cr_assert_not_null(o = info_offset(gi, "t", 1));
    cr_assert_eq(o->committed, 6);
    cr_assert_eq(o->end, 6);
    cr_assert_eq(o->lag, 0);
    cr_assert_str_eq(o->metadata, "", "no metadata reads as the empty string");
    cr_assert_not_null(o = info_offset(gi, "gone", 0));
    cr_assert_eq(o->committed, 2);
    cr_assert_eq(o->end, KLOG_OFFSET_NONE, "the topic is gone: no end");
    cr_assert_eq(o->lag, KLOG_OFFSET_NONE);
    cr_assert_str_eq(o->metadata, "g");
    assert_json_matches(k, gi);

    /* a snapshot: the member leaves, the description does not change */
    char id[sizeof m0.id];
    snprintf(id, sizeof id, "%s", m0.id);
    member_stop(&m0);
    member_fini(&m0);
    cr_assert_eq(gi->member_count, 1);
    cr_assert_str_eq(gi->members[0]->member_id, id);
    cr_assert_str_eq(gi->state, "Stable");
    klog_group_info *now = NULL;
    cr_assert_eq(klog_group_info_get(k, "gi", &now), 0);
    cr_assert_str_eq(now->state, "Empty");
    cr_assert_str_eq(now->protocol, "");
    cr_assert_eq(now->member_count, 0);
    cr_assert_eq(now->offset_count, 3);
    assert_json_matches(k, now);
    klog_group_info_free(now);
    klog_group_info_free(gi);
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
}

/* ==== 9. pattern subscriptions and growing topics ==================================================================== */

static int count_assigned(klog_consumer *c, const char *prefix)
{
    klog_partition_list *l = NULL;
    cr_assert_eq(klog_consumer_assignment(c, &l), 0);
    int n = 0;
    for (size_t i = 0; i < klog_partition_list_count(l); i++) {
        const char *t;
        klog_partition_list_get(l, i, &t, NULL, NULL, NULL, NULL);
        n += !strncmp(t, prefix, strlen(prefix));
    }
    klog_partition_list_free(l);
    return n;
}

/* Poll c until records with each of the n values arrived (values name
 * topic-partition-...: checked against where they came from). */
static bool read_values(klog_consumer *c, const char *const *values, int n)
{
    bool got[8] = { false };
    int left = n;
    int64_t dl = ut_mono_ms() + WAIT_MS;
    while (left > 0 && ut_mono_ms() < dl) {
        const klog_message *const *msg;
        int cnt = klog_consumer_poll(c, 20, &msg);
        cr_assert_geq(cnt, 0, "poll: %s", klog_err_name(cnt));
        for (int i = 0; i < cnt; i++)
            for (int j = 0; j < n; j++) {
                char want[64];
                snprintf(want, sizeof want, "%s-%d", msg[i]->topic, msg[i]->partition);
                if (!got[j] && msg[i]->value && msg[i]->value_len == strlen(values[j]) &&
                    !memcmp(msg[i]->value, values[j], msg[i]->value_len)) {
                    cr_assert_str_eq(values[j], want, "value %s came from %s", values[j], want);
                    got[j] = true;
                    left--;
                }
            }
    }
    return left == 0;
}

Test(group, pattern_subscription)
{
    klog *k = ut_open();
    ut_topic(k, "metrics.cpu", 2, NULL);
    ut_topic(k, "other", 2, NULL);
    ut_topic(k, "metricsXcpu", 1, NULL); /* the '.' is escaped: no match */
    run r;
    run_init(&r, k, "metrics.cpu", 0, false, false);
    member m[3];
    klog_consumer *cp = gconsumer(k, "gp", "range", NULL);
    const char *pat[] = { "^metrics\\..*" };
    cr_assert_eq(klog_consumer_subscribe(cp, pat, 1), 0);
    klog_consumer *cq = gconsumer(k, "gq", "range", NULL);
    subscribe1(cq, "other");
    member_start(&m[0], &r, 0, cp, false);
    member_start(&m[1], &r, 1, cq, false);
    member *ms[2] = { &m[0], &m[1] };
    cr_assert(PUMP_FOR(ms, 2, atomic_load(&m[0].nassigned) == 2 && atomic_load(&m[1].nassigned) == 2));
    cr_assert_eq(count_assigned(cp, "metrics.cpu"), 2);

    /* a topic created later that matches joins the assignment */
    ut_topic(k, "metrics.mem", 3, NULL);
    cr_assert(PUMP_FOR(ms, 2, count_assigned(cp, "metrics.mem") == 3), "metrics.mem never assigned");
    cr_assert_eq(count_assigned(cp, ""), 5);
    /* partitions added to a subscribed topic (pattern or name) too */
    cr_assert_eq(klog_topic_add_partitions(k, "metrics.cpu", 4), 0);
    cr_assert_eq(klog_topic_add_partitions(k, "other", 3), 0);
    cr_assert(PUMP_FOR(ms, 2, has_assigned(cp, "metrics.cpu", 3) && has_assigned(cq, "other", 2)));
    cr_assert_eq(count_assigned(cp, ""), 7);
    cr_assert_eq(count_assigned(cp, "metrics."), 7);
    cr_assert_eq(count_assigned(cq, ""), 3);
    /* and their records are read */
    klog_producer *p = ut_producer(k, NULL);
    cr_assert_eq(ut_send(p, "metrics.mem", 2, NULL, "metrics.mem-2"), 0);
    cr_assert_eq(ut_send(p, "metrics.cpu", 3, NULL, "metrics.cpu-3"), 0);
    cr_assert_eq(ut_send(p, "other", 2, NULL, "other-2"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    static const char *const pvals[] = { "metrics.mem-2", "metrics.cpu-3" }, *const qvals[] = { "other-2" };
    cr_assert(read_values(cp, pvals, 2));
    cr_assert(read_values(cq, qvals, 1));

    /* a pattern never matches the internal offsets topic */
    klog_partition_list *l = one_offset("other", 0, 0, NULL);
    cr_assert_eq(klog_consumer_commit(cq, l, 0), 0); /* __consumer_offsets exists now */
    klog_partition_list_free(l);
    klog_consumer *call = gconsumer(k, "gall", "range", NULL);
    const char *everything[] = { "^.*" };
    cr_assert_eq(klog_consumer_subscribe(call, everything, 1), 0);
    member_start(&m[2], &r, 2, call, false);
    member *ms3[3] = { &m[0], &m[1], &m[2] };
    cr_assert(PUMP_FOR(ms3, 3, atomic_load(&m[2].nassigned) == 4 + 3 + 3 + 1));
    cr_assert_eq(count_assigned(call, "__"), 0);
    for (int j = 0; j < 3; j++) {
        member_stop(&m[j]);
        member_fini(&m[j]);
    }
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
}

/* ==== 10. bad input ===================================================================================================== */

Test(group, bad_input)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    const char *t = "t";

    /* no group.id */
    klog_consumer *plain = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_subscribe(plain, &t, 1), KLOG_ESTATE);
    cr_assert_eq(klog_consumer_unsubscribe(plain), KLOG_ESTATE);
    cr_assert_eq(klog_consumer_commit(plain, NULL, 0), KLOG_ESTATE);
    int64_t off;
    cr_assert_eq(klog_consumer_committed(plain, "t", 0, &off, NULL, 0), KLOG_ESTATE);
    char id[64] = "junk";
    int32_t gen = 7;
    cr_assert_eq(klog_consumer_member_id(plain, id, sizeof id, &gen), 0);
    cr_assert_str_eq(id, "");
    cr_assert_eq(gen, -1);
    klog_consumer_close(plain);

    klog_consumer *c = gconsumer(k, "g", "range", NULL);
    /* bad subscriptions */
    const char *badre[] = { "^(" };
    cr_assert_eq(klog_consumer_subscribe(c, badre, 1), KLOG_ECONF);
    const char *badname[] = { "no/slash" };
    cr_assert_eq(klog_consumer_subscribe(c, badname, 1), KLOG_EBADNAME);
    const char *withnull[] = { "t", NULL };
    cr_assert_eq(klog_consumer_subscribe(c, withnull, 2), -EINVAL);
    cr_assert_eq(klog_consumer_subscribe(c, NULL, 1), -EINVAL);
    cr_assert_eq(klog_consumer_unsubscribe(c), KLOG_ESTATE, "not subscribed");
    /* a failed subscribe left it unsubscribed: explicit assign still works */
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    cr_assert_eq(klog_consumer_unassign(c, "t", 0), 0);
    klog_consumer_close(c);

    /* NULL handles */
    cr_assert_eq(klog_consumer_subscribe(NULL, &t, 1), -EINVAL);
    cr_assert_eq(klog_consumer_unsubscribe(NULL), -EINVAL);
    cr_assert_eq(klog_consumer_set_rebalance_cb(NULL, rb_cb, NULL), -EINVAL);
    klog_partition_list *l = NULL;
    cr_assert_eq(klog_consumer_assignment(NULL, &l), -EINVAL);
    cr_assert_eq(klog_consumer_commit(NULL, NULL, 0), -EINVAL);
    cr_assert_eq(klog_consumer_committed(NULL, "t", 0, &off, NULL, 0), -EINVAL);
    cr_assert_eq(klog_consumer_member_id(NULL, id, sizeof id, &gen), -EINVAL);
    char **names;
    size_t n;
    cr_assert_eq(klog_group_list(NULL, &names, &n), -EINVAL);
    cr_assert_eq(klog_group_list(k, NULL, &n), -EINVAL);
    char *json;
    cr_assert_eq(klog_group_describe(NULL, "g", &json), -EINVAL);
    cr_assert_eq(klog_group_describe(k, "g", NULL), -EINVAL);
    cr_assert_eq(klog_group_committed(NULL, "g", "t", 0, &off), -EINVAL);
    cr_assert_eq(klog_group_committed(k, "g", "t", 0, NULL), -EINVAL);
    cr_assert_eq(klog_group_reset_offsets(NULL, "g", "t", 0, KLOG_RESET_EARLIEST, 0), -EINVAL);
    cr_assert_eq(klog_group_delete(NULL, "g"), -EINVAL);
    klog_free(NULL);
    cr_assert_eq(klog_partition_list_new(NULL), -EINVAL);
    klog_partition_list_free(NULL);
    cr_assert_eq(klog_partition_list_add(NULL, "t", 0, 0, NULL), -EINVAL);
    cr_assert_eq(klog_partition_list_count(NULL), 0);
    cr_assert_eq(klog_partition_list_get(NULL, 0, NULL, NULL, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(klog_partition_list_new(&l), 0);
    cr_assert_eq(klog_partition_list_add(l, NULL, 0, 0, NULL), -EINVAL);
    cr_assert_eq(klog_partition_list_add(l, "t", -1, 0, NULL), -EINVAL);
    cr_assert_eq(klog_partition_list_add(l, "t", 0, -2, NULL), -EINVAL);
    cr_assert_eq(klog_partition_list_get(l, 0, NULL, NULL, NULL, NULL, NULL), -ENOENT);

    /* commits of things that are not there */
    klog_consumer *sa = gconsumer(k, "gs", "range", NULL);
    klog_partition_list *lt = one_offset("nope", 0, 1, NULL);
    cr_assert_eq(klog_consumer_commit(sa, lt, 0), KLOG_EUNKNOWN_TOPIC);
    klog_partition_list_free(lt);
    cr_assert_eq(klog_partition_list_add(l, "t", 0, -1, NULL), 0); /* -1: "none" */
    cr_assert_eq(klog_consumer_commit(sa, l, 0), -EINVAL, "committing offset -1");
    klog_partition_list_free(l);
    klog_consumer_close(sa);

    /* the second member asks for another strategy than the group's */
    klog_consumer *a = gconsumer(k, "gm", "range", NULL);
    subscribe1(a, "t");
    run r;
    run_init(&r, k, "t", 0, false, false);
    member ma, *ms[1] = { &ma };
    member_start(&ma, &r, 0, a, false);
    cr_assert(PUMP_FOR(ms, 1, atomic_load(&ma.gen) >= 1));
    static const char *const others[] = { "cooperative-sticky", "roundrobin" };
    for (int i = 0; i < 2; i++) {
        klog_consumer *b = gconsumer(k, "gm", others[i], NULL);
        subscribe1(b, "t");
        const klog_message *const *msgs;
        int rc = klog_consumer_poll(b, 0, &msgs);
        cr_assert_eq(rc, KLOG_ECONF, "%s into a range group: %s", others[i], klog_err_name(rc));
        klog_consumer_close(b);
    }
    /* and the group did not notice */
    int32_t g = atomic_load(&ma.gen);
    pump_once(ms, 1);
    cr_assert_eq(generation_of(a), g);
    cr_assert_eq(atomic_load(&ma.nassigned), 2);
    member_stop(&ma);
    member_fini(&ma);
    run_fini(&r);
    cr_assert_eq(klog_close(k), 0);
}
