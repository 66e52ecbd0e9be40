/*
 * lib/group/coordinator.c - the group coordinators of one instance: members,
 * rebalances, generations, fencing, expiry, and the admin calls.
 * The protocol is described in group.h.
 */
#include <inttypes.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>

#include "common/common.h"
#include "common/conf.h"
#include "group/internal.h"

#define TIMER_MS 50

enum { GS_EMPTY, GS_PREPARING, GS_STABLE, GS_DEAD };
static const char *const state_name[] = { "Empty", "PreparingRebalance", "Stable", "Dead" };

typedef struct kg_member_s {
    char id[KG_ID_MAX];
    char *instance;           /* NULL: dynamic */
    char *client;
    char **subs;
    unsigned nsubs;
    regex_t *re;              /* compiled "^..." entries (NULL where plain) */
    kg_tp *owned;             /* as reported at its last join (topics interned) */
    unsigned nowned;
    int32_t owned_gen;
    kg_tp *assign;            /* for the current generation (topics interned) */
    unsigned nassign;
    bool rejoin_after;
    int64_t last_seen_ms;
    int64_t session_ms, rebalance_ms;
    uint64_t joined_round;    /* the rebalance round it last joined */
    bool departed;            /* a static member that left: kept for session_ms */
    int notify_fd;
} kg_member_s;

typedef struct kg_group_s {
    char name[256];
    int state;
    int32_t generation;
    uint64_t round;           /* current rebalance round (PREPARING) */
    int64_t round_started_ms;
    int64_t not_before_ms;    /* group.initial.rebalance.delay.ms */
    enum kg_strategy strategy;
    kg_member_s **m;
    unsigned n, cap;
    kg_topic *topics;         /* what the current generation was computed over */
    unsigned ntopics;
} kg_group_s;

static int64_t now_ms(void) { return klog__now_ns() / 1000000; }

int kg_name_check(const char *g)
{
    if (!g || !*g)
        return KLOG_EBADNAME;
    size_t n = strlen(g);
    if (n > 255)
        return KLOG_EBADNAME;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)g[i] < 0x20 || g[i] == 0x7f)
            return KLOG_EBADNAME;
    return 0;
}

const char *kg__intern(kg_registry *r, const char *s)
{
    for (kg_name *n = r->names; n; n = n->next)
        if (!strcmp(n->s, s))
            return n->s;
    size_t l = strlen(s);
    kg_name *n = malloc(sizeof *n + l + 1);
    if (!n)
        return NULL;
    memcpy(n->s, s, l + 1);
    n->next = r->names;
    r->names = n;
    return n->s;
}

static void notify(kg_member_s *m)
{
    if (m->notify_fd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(m->notify_fd, &one, sizeof one);
        (void)w;
    }
}

static void notify_all(kg_registry *r, kg_group_s *g)
{
    atomic_fetch_add(&r->seq, 1);
    for (unsigned i = 0; i < g->n; i++)
        notify(g->m[i]);
}

/* ---- members -------------------------------------------------------------------- */

static void subs_free(kg_member_s *m)
{
    for (unsigned i = 0; i < m->nsubs; i++) {
        free(m->subs[i]);
        if (m->re && m->subs && m->re[i].re_nsub != (size_t)-1)
            regfree(&m->re[i]);
    }
    free(m->subs);
    free(m->re);
    m->subs = NULL;
    m->re = NULL;
    m->nsubs = 0;
}

static void member_free(kg_member_s *m)
{
    if (!m)
        return;
    subs_free(m);
    free(m->instance);
    free(m->client);
    free(m->owned);
    free(m->assign);
    free(m);
}

/* Copy and compile a subscription.  Plain names mark re[i].re_nsub = -1. */
static int subs_set(kg_member_s *m, const char *const *subs, unsigned n)
{
    subs_free(m);
    if (n == 0)
        return 0;
    m->subs = calloc(n, sizeof *m->subs);
    m->re = calloc(n, sizeof *m->re);
    if (!m->subs || !m->re)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        m->re[i].re_nsub = (size_t)-1;
        if (!(m->subs[i] = strdup(subs[i]))) {
            m->nsubs = i + 1;
            return -ENOMEM;
        }
        m->nsubs = i + 1;
        if (subs[i][0] == '^') {
            if (regcomp(&m->re[i], subs[i], REG_EXTENDED | REG_NOSUB) != 0) {
                m->re[i].re_nsub = (size_t)-1;
                return KLOG_ECONF;
            }
        }
    }
    return 0;
}

static bool subs_equal(const kg_member_s *m, const char *const *subs, unsigned n)
{
    if (m->nsubs != n)
        return false;
    for (unsigned i = 0; i < n; i++)
        if (strcmp(m->subs[i], subs[i]))
            return false;
    return true;
}

static bool member_wants(const kg_member_s *m, const char *topic)
{
    for (unsigned i = 0; i < m->nsubs; i++) {
        if (m->re[i].re_nsub == (size_t)-1) {
            if (!strcmp(m->subs[i], topic))
                return true;
        } else if (strncmp(topic, "__", 2) != 0 && regexec(&m->re[i], topic, 0, NULL, 0) == 0) {
            return true; /* patterns never match internal topics */
        }
    }
    return false;
}

static kg_group_s *group_find(kg_registry *r, const char *name)
{
    for (size_t i = 0; i < r->ngroups; i++)
        if (!strcmp(r->groups[i]->name, name))
            return r->groups[i];
    return NULL;
}

static kg_group_s *group_get(kg_registry *r, const char *name)
{
    kg_group_s *g = group_find(r, name);
    if (g)
        return g;
    if (r->ngroups == r->gcap) {
        size_t nc = r->gcap ? r->gcap * 2 : 8;
        kg_group_s **ng = realloc(r->groups, nc * sizeof *ng);
        if (!ng)
            return NULL;
        r->groups = ng;
        r->gcap = nc;
    }
    if (!(g = calloc(1, sizeof *g)))
        return NULL;
    snprintf(g->name, sizeof g->name, "%s", name);
    g->generation = 0;
    g->state = GS_EMPTY;
    r->groups[r->ngroups++] = g;
    return g;
}

static kg_member_s *member_find(kg_group_s *g, const char *id, unsigned *idx)
{
    for (unsigned i = 0; id && *id && i < g->n; i++)
        if (!strcmp(g->m[i]->id, id)) {
            if (idx)
                *idx = i;
            return g->m[i];
        }
    return NULL;
}

static void member_remove(kg_group_s *g, unsigned i)
{
    member_free(g->m[i]);
    memmove(&g->m[i], &g->m[i + 1], (g->n - i - 1) * sizeof *g->m);
    g->n--;
}

/* ---- rebalancing ------------------------------------------------------------------ */

static void topics_free(kg_group_s *g)
{
    free(g->topics);
    g->topics = NULL;
    g->ntopics = 0;
}

/* The topics the members subscribe to that exist, with partition counts
 * (names interned).  Returns the count or an error; *out allocated. */
static int resolve_topics(kg_registry *r, kg_group_s *g, kg_topic **out)
{
    char **names;
    size_t nn;
    int rc = klog_topic_list(r->k, &names, &nn);
    if (rc < 0)
        return rc;
    kg_topic *t = malloc((nn ? nn : 1) * sizeof *t);
    unsigned n = 0;
    for (size_t i = 0; t && i < nn; i++) {
        bool wanted = false;
        for (unsigned j = 0; j < g->n && !wanted; j++)
            wanted = member_wants(g->m[j], names[i]);
        if (!wanted)
            continue;
        kt_topic *kt = klog__topic_get(r->k, names[i]);
        if (!kt)
            continue;
        const char *in = kg__intern(r, names[i]);
        if (in)
            t[n++] = (kg_topic){ in, atomic_load_explicit(&kt->nparts, memory_order_acquire) };
        klog__topic_put(kt);
    }
    klog_topic_list_free(names, nn);
    if (!t)
        return -ENOMEM;
    *out = t;
    return (int)n;
}

static bool topics_same(const kg_topic *a, unsigned na, const kg_topic *b, unsigned nb)
{
    if (na != nb)
        return false;
    for (unsigned i = 0; i < na; i++)
        if (a[i].name != b[i].name || a[i].partitions != b[i].partitions)
            return false;
    return true;
}

static void start_rebalance(kg_registry *r, kg_group_s *g, int64_t now)
{
    if (g->n == 0) {
        g->state = GS_EMPTY;
        return;
    }
    if (g->state != GS_PREPARING) {
        g->state = GS_PREPARING;
        g->round++;
        g->round_started_ms = now;
    }
    notify_all(r, g);
}

/* Copy a kg_assign/adjust result into a member (topics interned already). */
static int set_assign(kg_member_s *m, const kg_assignment *a)
{
    kg_tp *n = NULL;
    if (a->n && !(n = malloc(a->n * sizeof *n)))
        return -ENOMEM;
    if (a->n)
        memcpy(n, a->tp, a->n * sizeof *n);
    free(m->assign);
    m->assign = n;
    m->nassign = a->n;
    return 0;
}

/* Everyone has rejoined (or the timeout passed): assign, next generation. */
static int complete(kg_registry *r, kg_group_s *g, int64_t now)
{
    /* members that did not rejoin in time are out */
    for (unsigned i = g->n; i-- > 0;)
        if (g->m[i]->joined_round != g->round)
            member_remove(g, i);
    if (g->n == 0) {
        g->state = GS_EMPTY;
        topics_free(g);
        return 0;
    }
    kg_topic *topics;
    int nt = resolve_topics(r, g, &topics);
    if (nt < 0)
        return nt;
    unsigned n = g->n;
    kg_member *mem = calloc(n, sizeof *mem);
    kg_assignment *target = calloc(n, sizeof *target);
    kg_assignment *now_a = calloc(n, sizeof *now_a), *revoke = calloc(n, sizeof *revoke);
    int rc = (!mem || !target || !now_a || !revoke) ? -ENOMEM : 0;
    /* kg_assign reads plain topic names; expand patterns per member into a
     * flat list of the matching existing topics */
    const char ***subs = rc == 0 ? calloc(n, sizeof *subs) : NULL;
    if (rc == 0 && !subs)
        rc = -ENOMEM;
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        kg_member_s *m = g->m[i];
        subs[i] = malloc(((unsigned)nt + 1) * sizeof **subs);
        if (!subs[i]) {
            rc = -ENOMEM;
            break;
        }
        unsigned k = 0;
        for (int t = 0; t < nt; t++)
            if (member_wants(m, topics[t].name))
                subs[i][k++] = topics[t].name;
        mem[i] = (kg_member){ m->id, m->instance, subs[i], k, m->owned, m->nowned, m->owned_gen };
    }
    if (rc == 0)
        rc = kg_assign(g->strategy, mem, n, topics, (unsigned)nt, target);
    bool coop = g->strategy == KG_COOPERATIVE_STICKY;
    if (rc == 0 && coop)
        rc = kg_cooperative_adjust(mem, n, target, now_a, revoke);
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        /* topic strings of the results point at interned names already
         * (topics[] and the members' owned lists are interned) */
        rc = set_assign(g->m[i], coop ? &now_a[i] : &target[i]);
        g->m[i]->rejoin_after = coop && revoke[i].n > 0;
    }
    if (rc == 0) {
        g->generation++;
        g->state = GS_STABLE;
        free(g->topics);
        g->topics = topics;
        g->ntopics = (unsigned)nt;
        topics = NULL;
        for (unsigned i = 0; i < n; i++)
            g->m[i]->last_seen_ms = now; /* the wait for others is not their silence */
        notify_all(r, g);
    }
    free(topics);
    kg_assignment_free(target, target ? n : 0);
    kg_assignment_free(now_a, now_a ? n : 0);
    kg_assignment_free(revoke, revoke ? n : 0);
    for (unsigned i = 0; subs && i < n; i++)
        free(subs[i]);
    free(subs);
    free(mem);
    free(target);
    free(now_a);
    free(revoke);
    return rc;
}

static int64_t rebalance_timeout(const kg_group_s *g)
{
    int64_t t = 0;
    for (unsigned i = 0; i < g->n; i++)
        if (g->m[i]->rebalance_ms > t)
            t = g->m[i]->rebalance_ms;
    return t;
}

/* Complete the rebalance if everyone is in (or the time is up). */
static void try_complete(kg_registry *r, kg_group_s *g, int64_t now)
{
    if (g->state != GS_PREPARING || now < g->not_before_ms)
        return;
    bool all = true;
    for (unsigned i = 0; i < g->n && all; i++)
        all = g->m[i]->joined_round == g->round;
    if (all || now - g->round_started_ms >= rebalance_timeout(g))
        (void)complete(r, g, now); /* on -ENOMEM it stays PREPARING: the timer retries */
}

/* ---- the protocol ---------------------------------------------------------------------- */

static int intern_tps(kg_registry *r, const kg_tp *in, unsigned n, kg_tp **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    kg_tp *t = malloc(n * sizeof *t);
    if (!t)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        t[i].topic = kg__intern(r, in[i].topic);
        t[i].partition = in[i].partition;
        if (!t[i].topic) {
            free(t);
            return -ENOMEM;
        }
    }
    *out = t;
    return 0;
}

int kg_join(kg_registry *r, const kg_join_req *q, char *id_out)
{
    if (!r || !q || !id_out)
        return -EINVAL;
    int rc = kg_name_check(q->group);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&r->mu);
    int64_t now = now_ms();
    kg_group_s *g = group_get(r, q->group);
    if (!g) {
        pthread_mutex_unlock(&r->mu);
        return -ENOMEM;
    }
    if (g->n > 0 && g->strategy != q->strategy) {
        pthread_mutex_unlock(&r->mu);
        return KLOG_ECONF; /* Kafka: INCONSISTENT_GROUP_PROTOCOL */
    }
    kg_member_s *m = NULL;
    bool is_new = false, changed = false;
    /* id_out may be the caller's buffer holding q->member_id: decide now */
    const bool by_id = q->member_id && *q->member_id;
    if (by_id) {
        if (!(m = member_find(g, q->member_id, NULL))) {
            pthread_mutex_unlock(&r->mu);
            return KLOG_EUNKNOWN_MEMBER;
        }
    } else if (q->instance_id && *q->instance_id) {
        /* static membership: a restart takes over the old member's place */
        for (unsigned i = 0; i < g->n && !m; i++)
            if (g->m[i]->instance && !strcmp(g->m[i]->instance, q->instance_id))
                m = g->m[i];
        if (m) {
            snprintf(m->id, sizeof m->id, "%s-%" PRIu64, q->instance_id, ++r->next_member);
            m->departed = false;
        }
    }
    if (!m) {
        if (g->n == g->cap) {
            unsigned nc = g->cap ? g->cap * 2 : 8;
            kg_member_s **nm = realloc(g->m, nc * sizeof *nm);
            if (!nm) {
                pthread_mutex_unlock(&r->mu);
                return -ENOMEM;
            }
            g->m = nm;
            g->cap = nc;
        }
        if (!(m = calloc(1, sizeof *m))) {
            pthread_mutex_unlock(&r->mu);
            return -ENOMEM;
        }
        snprintf(m->id, sizeof m->id, "%s-%" PRIu64, q->client_id && *q->client_id ? q->client_id : "consumer",
                 ++r->next_member);
        if (q->instance_id && *q->instance_id && !(m->instance = strdup(q->instance_id)))
            rc = -ENOMEM;
        m->notify_fd = -1;
        if (rc < 0) {
            member_free(m);
            pthread_mutex_unlock(&r->mu);
            return rc;
        }
        g->m[g->n++] = m;
        is_new = true;
        if (g->n == 1) {
            g->strategy = q->strategy;
            g->not_before_ms = now + klog__conf_int(klog__conf(r->k), KC_INITIAL_REBALANCE_DELAY_MS);
        }
    }
    if (!subs_equal(m, q->subs, q->nsubs)) {
        changed = true;
        if ((rc = subs_set(m, q->subs, q->nsubs)) < 0) {
            if (is_new)
                member_remove(g, g->n - 1);
            pthread_mutex_unlock(&r->mu);
            return rc;
        }
    }
    free(m->client);
    m->client = strdup(q->client_id ? q->client_id : "");
    kg_tp *owned;
    if ((rc = intern_tps(r, q->owned, q->nowned, &owned)) < 0) {
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    free(m->owned);
    m->owned = owned;
    m->nowned = q->nowned;
    m->owned_gen = q->generation;
    m->session_ms = q->session_ms;
    m->rebalance_ms = q->rebalance_ms;
    m->notify_fd = q->notify_fd;
    m->last_seen_ms = now;
    snprintf(id_out, KG_ID_MAX, "%s", m->id);
    /* A static member taking over a stable place with the same
     * subscription gets its partitions back without a rebalance. */
    bool static_takeover = !is_new && !by_id && !changed && g->state == GS_STABLE;
    if (!static_takeover) {
        if (is_new || changed || g->state != GS_PREPARING)
            start_rebalance(r, g, now);
        m->joined_round = g->round;
        try_complete(r, g, now);
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int kg_heartbeat(kg_registry *r, const char *group, const char *member_id, int32_t known, kg_beat *out)
{
    memset(out, 0, sizeof *out);
    if (!r || !group || !member_id)
        return -EINVAL;
    pthread_mutex_lock(&r->mu);
    int64_t now = now_ms();
    kg_group_s *g = group_find(r, group);
    kg_member_s *m = g ? member_find(g, member_id, NULL) : NULL;
    if (!m) {
        pthread_mutex_unlock(&r->mu);
        return KLOG_EUNKNOWN_MEMBER;
    }
    m->last_seen_ms = now;
    int rc = 0;
    try_complete(r, g, now);
    if (g->state == GS_PREPARING) {
        out->status = m->joined_round == g->round ? KG_WAIT : KG_REJOIN;
    } else if (g->state == GS_STABLE) {
        out->status = KG_STABLE;
        out->generation = g->generation;
        if (known != g->generation) {
            out->new_generation = true;
            out->rejoin_after = m->rejoin_after;
            m->rejoin_after = false;
            if (m->nassign && !(out->assign = malloc(m->nassign * sizeof *out->assign))) {
                rc = -ENOMEM;
            } else {
                if (m->nassign)
                    memcpy(out->assign, m->assign, m->nassign * sizeof *out->assign);
                out->nassign = m->nassign;
            }
        }
    } else {
        out->status = KG_REJOIN;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int kg_leave(kg_registry *r, const char *group, const char *member_id, bool keep)
{
    if (!r || !group || !member_id)
        return -EINVAL;
    pthread_mutex_lock(&r->mu);
    kg_group_s *g = group_find(r, group);
    unsigned i;
    kg_member_s *m = g ? member_find(g, member_id, &i) : NULL;
    int rc = 0;
    if (!m) {
        rc = KLOG_EUNKNOWN_MEMBER;
    } else if (keep && m->instance) {
        m->departed = true; /* expires after its session timeout */
        m->notify_fd = -1;
    } else {
        member_remove(g, i);
        start_rebalance(r, g, now_ms());
        try_complete(r, g, now_ms());
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- timer ------------------------------------------------------------------------------- */

static void tick(kg_registry *r)
{
    pthread_mutex_lock(&r->mu);
    int64_t now = now_ms();
    for (size_t gi = 0; gi < r->ngroups; gi++) {
        kg_group_s *g = r->groups[gi];
        bool lost = false;
        for (unsigned i = g->n; i-- > 0;) {
            kg_member_s *m = g->m[i];
            int64_t limit = m->departed ? m->session_ms : KLOG_MIN(m->session_ms, m->rebalance_ms);
            if (now - m->last_seen_ms > limit) {
                member_remove(g, i);
                lost = true;
            }
        }
        if (lost)
            start_rebalance(r, g, now);
        if (g->state == GS_STABLE) {
            /* subscribed topics created, deleted or grown: rebalance */
            kg_topic *t;
            int nt = resolve_topics(r, g, &t);
            if (nt >= 0) {
                if (!topics_same(t, (unsigned)nt, g->topics, g->ntopics))
                    start_rebalance(r, g, now);
                free(t);
            }
        }
        try_complete(r, g, now);
    }
    pthread_mutex_unlock(&r->mu);
}

static void *timer_main(void *arg)
{
    kg_registry *r = arg;
    pthread_setname_np(pthread_self(), "klog-groups");
    pthread_mutex_lock(&r->tmu);
    while (!r->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += TIMER_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->tcv, &r->tmu, &ts);
        if (r->stopping)
            break;
        pthread_mutex_unlock(&r->tmu);
        tick(r);
        pthread_mutex_lock(&r->tmu);
    }
    pthread_mutex_unlock(&r->tmu);
    return NULL;
}

/* ---- registry: the groups module ------------------------------------------------------- */

/*
 * The registry is the groups module's state: created at klog_open (init:
 * memory and locks only), freed at klog_close after the logs closed (fini).
 * Its first use (kg_registry_get with create) reads the committed offsets
 * back and starts the timer thread, as the API documents (the first group
 * call may fail with KLOG_ECORRUPT or -EAGAIN; a later call tries again):
 * an instance that never uses groups neither reads __consumer_offsets nor
 * runs the timer.  stop joins the timer before the logs close.
 */
static int groups_init(struct klog *k, void **state, char *errbuf, size_t errsize)
{
    (void)errbuf;
    (void)errsize;
    kg_registry *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->k = k;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->omu, NULL);
    pthread_mutex_init(&r->tmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->tcv, &ca);
    pthread_condattr_destroy(&ca);
    *state = r;
    return 0;
}

static void groups_stop(struct klog *k, void *state)
{
    (void)k;
    kg_registry *r = state;
    if (!r->timer_running)
        return;
    pthread_mutex_lock(&r->tmu);
    r->stopping = true;
    pthread_cond_broadcast(&r->tcv);
    pthread_mutex_unlock(&r->tmu);
    pthread_join(r->timer, NULL);
    r->timer_running = false;
}

static int groups_fini(struct klog *k, void *state)
{
    (void)k;
    kg_registry *r = state;
    for (size_t i = 0; i < r->ngroups; i++) {
        kg_group_s *g = r->groups[i];
        for (unsigned j = 0; j < g->n; j++)
            member_free(g->m[j]);
        free(g->m);
        free(g->topics);
        free(g);
    }
    free(r->groups);
    kg__store_close(&r->st);
    for (kg_name *n = r->names, *nx; n; n = nx) {
        nx = n->next;
        free(n);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->omu);
    pthread_mutex_destroy(&r->tmu);
    pthread_cond_destroy(&r->tcv);
    free(r);
    return 0;
}

const kt_module kg_groups_module = { .name = "groups", .init = groups_init, .stop = groups_stop, .fini = groups_fini };

uint64_t kg_seq(kg_registry *r) { return atomic_load_explicit(&r->seq, memory_order_acquire); }

int kg_registry_get(struct klog *k, bool create, kg_registry **out)
{
    *out = NULL;
    kg_registry *r = klog__module_state(k, &kg_groups_module);
    if (!r)
        return -ENOTSUP; /* an instance composed without groups (tests) */
    if (atomic_load_explicit(&r->active, memory_order_acquire)) {
        *out = r;
        return 0;
    }
    if (!create)
        return 0;
    pthread_mutex_lock(&r->omu);
    int rc = 0;
    if (!atomic_load_explicit(&r->active, memory_order_relaxed)) {
        /* committed offsets of an earlier run, if the topic exists */
        rc = kg__store_open(r, false);
        if (rc == 0 && !r->timer_running) {
            if (pthread_create(&r->timer, NULL, timer_main, r) != 0)
                rc = -EAGAIN;
            else
                r->timer_running = true;
        }
        if (rc < 0)
            kg__store_close(&r->st); /* the next call starts over */
        else
            atomic_store_explicit(&r->active, true, memory_order_release);
    }
    pthread_mutex_unlock(&r->omu);
    if (rc == 0)
        *out = r;
    return rc;
}

/* ---- commits ------------------------------------------------------------------------------- */

int kg_commit(kg_registry *r, const char *group, const char *member_id, int32_t generation, kg_offset *o,
              unsigned n, bool sync)
{
    if (!r || !o)
        return -EINVAL;
    int rc = kg_name_check(group);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&r->mu);
    kg_group_s *g = group_find(r, group);
    if (member_id && *member_id) {
        kg_member_s *m = g ? member_find(g, member_id, NULL) : NULL;
        if (!m)
            rc = KLOG_EUNKNOWN_MEMBER;
        else if (generation != g->generation)
            rc = KLOG_EFENCED; /* Kafka: ILLEGAL_GENERATION */
        else if (g->state == GS_PREPARING && m->joined_round == g->round)
            rc = KLOG_EREBALANCE; /* rejoined: its partitions are being reassigned */
    } else if (g && g->n > 0) {
        rc = KLOG_ESTATE; /* a standalone commit into an active group */
    }
    if (rc == 0) {
        pthread_mutex_lock(&r->omu);
        rc = kg__store_put(r, group, o, n, sync);
        pthread_mutex_unlock(&r->omu);
    }
    pthread_mutex_unlock(&r->mu);
    for (unsigned i = 0; rc < 0 && i < n; i++)
        o[i].err = rc;
    return rc;
}

int kg_committed(kg_registry *r, const char *group, const char *topic, int32_t partition, int64_t *offset,
                 char *meta, size_t msize)
{
    if (!r || !group || !topic || !offset)
        return -EINVAL;
    pthread_mutex_lock(&r->omu);
    kg_committed_t *c = kg__store_find(&r->st, group, topic, partition);
    *offset = c ? c->offset : -1;
    if (meta && msize)
        snprintf(meta, msize, "%s", c ? c->meta : "");
    pthread_mutex_unlock(&r->omu);
    return 0;
}

/* ---- admin ---------------------------------------------------------------------------------- */

typedef struct strset { char **v; size_t n, cap; int err; } strset;

static void strset_add(strset *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x))
            return;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        char **nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) {
            s->err = -ENOMEM;
            return;
        }
        s->v = nv;
        s->cap = nc;
    }
    if (!(s->v[s->n] = strdup(x)))
        s->err = -ENOMEM;
    else
        s->n++;
}

static void add_group_cb(void *arg, kg_committed_t *c) { strset_add(arg, c->group); }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int kg_list(kg_registry *r, char ***names, size_t *count)
{
    strset s = { 0 };
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->ngroups; i++)
        if (r->groups[i]->n > 0)
            strset_add(&s, r->groups[i]->name);
    pthread_mutex_lock(&r->omu);
    kg__store_each(&r->st, NULL, add_group_cb, &s);
    pthread_mutex_unlock(&r->omu);
    pthread_mutex_unlock(&r->mu);
    if (s.err) {
        klog_topic_list_free(s.v, s.n);
        return s.err;
    }
    if (s.n > 1)
        qsort(s.v, s.n, sizeof *s.v, cmp_str);
    if (!s.v && !(s.v = calloc(1, sizeof *s.v)))
        return -ENOMEM;
    *names = s.v;
    *count = s.n;
    return 0;
}

typedef struct desc_ctx { kg_info *gi; kg_registry *r; } desc_ctx;

static void desc_offset_cb(void *arg, kg_committed_t *c)
{
    desc_ctx *d = arg;
    int64_t end = KLOG_OFFSET_NONE;
    kt_topic *t = klog__topic_get(d->r->k, c->topic);
    if (t) {
        if (c->partition >= 0 && c->partition < atomic_load(&t->nparts))
            end = kpart_high_watermark(t->parts[c->partition]);
        klog__topic_put(t);
    }
    kg__info_offset(d->gi, c->topic, c->partition, c->offset, end, c->meta);
}

int kg_describe(kg_registry *r, const char *group, klog_group_info **out)
{
    int rc = kg_name_check(group);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&r->mu);
    pthread_mutex_lock(&r->omu);
    kg_group_s *g = group_find(r, group);
    bool has_offsets = false;
    for (size_t i = 0; r->st.tab && i <= r->st.mask && !has_offsets; i++)
        for (kg_committed_t *c = r->st.tab[i]; c && !has_offsets; c = c->next)
            has_offsets = !strcmp(c->group, group);
    if ((!g || g->n == 0) && !has_offsets) {
        rc = KLOG_EUNKNOWN_GROUP;
    } else {
        kg_info *gi = kg__info_new(group, g && g->n ? state_name[g->state] : "Empty", g ? g->generation : 0,
                                   g && g->n ? kg_strategy_name(g->strategy) : "");
        for (unsigned i = 0; g && i < g->n; i++)
            kg__info_member(gi, g->m[i]->id, g->m[i]->instance, g->m[i]->client, g->m[i]->assign, g->m[i]->nassign);
        desc_ctx d = { gi, r };
        kg__store_each(&r->st, group, desc_offset_cb, &d);
        rc = kg__info_end(gi, out);
    }
    pthread_mutex_unlock(&r->omu);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static bool group_active(kg_registry *r, const char *group)
{
    kg_group_s *g = group_find(r, group);
    return g && g->n > 0;
}

int kg_reset(kg_registry *r, const char *group, const char *topic, int32_t partition, int kind, int64_t value)
{
    int rc = kg_name_check(group);
    if (rc < 0)
        return rc;
    if (kind < KLOG_RESET_EARLIEST || kind > KLOG_RESET_SHIFT || !topic)
        return -EINVAL;
    kt_topic *t = klog__topic_get(r->k, topic);
    if (!t)
        return klog__topic_name_check(topic) < 0 ? KLOG_EBADNAME : KLOG_EUNKNOWN_TOPIC;
    int np = atomic_load_explicit(&t->nparts, memory_order_acquire);
    if (partition < -1 || partition >= np) {
        klog__topic_put(t);
        return KLOG_EUNKNOWN_PARTITION;
    }
    int from = partition < 0 ? 0 : partition, to = partition < 0 ? np : partition + 1;
    kg_offset *o = calloc((size_t)(to - from), sizeof *o);
    if (!o) {
        klog__topic_put(t);
        return -ENOMEM;
    }
    pthread_mutex_lock(&r->mu);
    pthread_mutex_lock(&r->omu);
    if (group_active(r, group))
        rc = KLOG_ESTATE;
    for (int p = from; rc == 0 && p < to; p++) {
        kpart *part = t->parts[p];
        int64_t start = kpart_start_offset(part), end = kpart_high_watermark(part), off = start;
        kg_committed_t *c = kg__store_find(&r->st, group, topic, p);
        switch (kind) {
        case KLOG_RESET_EARLIEST: off = start; break;
        case KLOG_RESET_LATEST: off = end; break;
        case KLOG_RESET_TIMESTAMP: rc = kpart_offset_for_time(part, value, &off); break;
        case KLOG_RESET_OFFSET: off = value; break;
        case KLOG_RESET_SHIFT: off = (c ? c->offset : start) + value; break;
        }
        off = KLOG_MAX(start, KLOG_MIN(off, end));
        o[p - from] = (kg_offset){ t->name, p, off, c ? c->meta : NULL, 0 };
    }
    if (rc == 0)
        rc = kg__store_put(r, group, o, (unsigned)(to - from), true);
    pthread_mutex_unlock(&r->omu);
    pthread_mutex_unlock(&r->mu);
    free(o);
    klog__topic_put(t);
    return rc < 0 ? rc : to - from;
}

typedef struct del_ctx { kg_offset *o; unsigned n, cap; int err; } del_ctx;

static void del_cb(void *arg, kg_committed_t *c)
{
    del_ctx *d = arg;
    if (d->n == d->cap) {
        unsigned nc = d->cap ? d->cap * 2 : 16;
        kg_offset *no = realloc(d->o, nc * sizeof *no);
        if (!no) {
            d->err = -ENOMEM;
            return;
        }
        d->o = no;
        d->cap = nc;
    }
    d->o[d->n++] = (kg_offset){ c->topic, c->partition, -1, NULL, 0 };
}

int kg_delete(kg_registry *r, const char *group)
{
    int rc = kg_name_check(group);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&r->mu);
    pthread_mutex_lock(&r->omu);
    del_ctx d = { 0 };
    if (group_active(r, group)) {
        rc = KLOG_ESTATE;
    } else {
        kg__store_each(&r->st, group, del_cb, &d);
        if (d.err)
            rc = d.err;
        else if (d.n == 0)
            rc = KLOG_EUNKNOWN_GROUP;
        else {
            /* the entries' strings belong to the table entries the put
             * removes: copy the topic names first */
            char **names = calloc(d.n, sizeof *names);
            for (unsigned i = 0; names && i < d.n; i++)
                if ((names[i] = strdup(d.o[i].topic)))
                    d.o[i].topic = names[i];
            rc = names ? kg__store_put(r, group, d.o, d.n, true) : -ENOMEM;
            for (unsigned i = 0; names && i < d.n; i++)
                free(names[i]);
            free(names);
        }
    }
    kg_group_s *g = group_find(r, group);
    if (rc == 0 && g) {
        for (size_t i = 0; i < r->ngroups; i++)
            if (r->groups[i] == g) {
                free(g->m);
                free(g->topics);
                free(g);
                memmove(&r->groups[i], &r->groups[i + 1], (r->ngroups - i - 1) * sizeof *r->groups);
                r->ngroups--;
                break;
            }
    }
    pthread_mutex_unlock(&r->omu);
    pthread_mutex_unlock(&r->mu);
    free(d.o);
    return rc;
}
