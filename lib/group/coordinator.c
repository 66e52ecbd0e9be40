/*
 * lib/group/coordinator.c - the group coordinators of one instance: members
 * (native and classic), rebalances, generations, protocol selection, the
 * leader's assignment relay, fencing, expiry, the admin calls, and the
 * local kg_coordinator_ops.  The protocol is described in group.h.
 */
#include <inttypes.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#include <klog/klog.h>

#include "common/common.h"
#include "common/conf.h"
#include "group/cprotocol.h"
#include "group/internal.h"

#define TIMER_MS 50

enum { GS_EMPTY, GS_PREPARING, GS_STABLE, GS_DEAD, GS_COMPLETING };
static const char *const state_name[] = { "Empty", "PreparingRebalance", "Stable", "Dead", "CompletingRebalance" };

/* A classic member's protocol (copies). */
typedef struct kg_proto_s {
    char *name;
    uint8_t *meta;
    size_t len;
} kg_proto_s;

typedef struct kg_member_s {
    char id[KG_ID_MAX];
    char *instance;           /* NULL: dynamic */
    char *client;
    bool classic;             /* joined through JoinGroup (a protocol type) */
    /* native */
    enum kg_strategy strategy;
    char **subs;
    unsigned nsubs;
    regex_t *re;              /* compiled "^..." entries (NULL where plain) */
    kg_tp *owned;             /* as reported at its last join (topics interned) */
    unsigned nowned;
    int32_t owned_gen;
    uint8_t *meta;            /* its Subscription as the last relayed rebalance showed it */
    size_t meta_len;
    /* classic */
    kg_proto_s *protos;
    unsigned nprotos;
    bool join_pending;        /* a JoinGroup whose answer it has not taken */
    uint8_t *abytes;          /* its assignment from the leader's SyncGroup */
    size_t alen;
    /* both */
    kg_tp *assign;            /* for the current generation (topics interned); for a
                                 classic "consumer" member as decoded, for describe */
    unsigned nassign;
    bool rejoin_after;
    int64_t last_seen_ms;
    int64_t session_ms, rebalance_ms;
    uint64_t joined_round;    /* the rebalance round it last joined */
    bool departed;            /* a static member that left: kept for session_ms */
    void (*notify)(void *arg);
    void *notify_arg;
} kg_member_s;

/* A member id handed out with KG_MEMBER_ID_REQUIRED, not used yet. */
typedef struct kg_pending {
    char id[KG_ID_MAX];
    int64_t until_ms;
} kg_pending;

typedef struct kg_group_s {
    char name[256];
    int state;
    int32_t generation;
    uint64_t round;           /* current rebalance round (PREPARING) */
    int64_t round_started_ms;
    int64_t not_before_ms;    /* group.initial.rebalance.delay.ms */
    int64_t sync_started_ms;  /* COMPLETING since */
    char *ptype;              /* the members' protocol type; NULL while empty */
    char protocol[KG_NAME_MAX + 1];   /* chosen when the last join phase completed */
    char leader[KG_ID_MAX];   /* a classic leader; "" when the coordinator assigns */
    kg_member_s **m;
    unsigned n;
    size_t cap;
    kg_topic *topics;         /* native subscriptions resolved at the last completion */
    unsigned ntopics;
    kg_pending *pend;
    unsigned npend;
    size_t pcap;
} kg_group_s;

static int64_t now_ms(kg_registry *r)
{
    return r->clock_ms ? r->clock_ms(r->clock_arg) : (int64_t)(klog__now_ns() / 1000000);
}

void kg__set_clock(kg_registry *r, int64_t (*clock_ms)(void *), void *arg)
{
    pthread_mutex_lock(&r->mu);
    r->clock_ms = clock_ms;
    r->clock_arg = arg;
    pthread_mutex_unlock(&r->mu);
}

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

static void *memdup(const void *p, size_t n)
{
    void *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static void notify_all(kg_group_s *g)
{
    for (unsigned i = 0; i < g->n; i++)
        if (g->m[i]->notify)
            g->m[i]->notify(g->m[i]->notify_arg);
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

static void protos_free(kg_member_s *m)
{
    for (unsigned i = 0; i < m->nprotos; i++) {
        free(m->protos[i].name);
        free(m->protos[i].meta);
    }
    free(m->protos);
    m->protos = NULL;
    m->nprotos = 0;
}

static void member_free(kg_member_s *m)
{
    if (!m)
        return;
    subs_free(m);
    protos_free(m);
    free(m->instance);
    free(m->client);
    free(m->owned);
    free(m->assign);
    free(m->meta);
    free(m->abytes);
    free(m);
}

/* Copy and compile a subscription: all or nothing (on failure the member
 * keeps what it had).  Plain names mark re[i].re_nsub = -1. */
static int subs_set(kg_member_s *m, const char *const *subs, unsigned n)
{
    kg_member_s t = { .nsubs = 0 };
    int rc = 0;
    if (n && (!(t.subs = calloc(n, sizeof *t.subs)) || !(t.re = calloc(n, sizeof *t.re))))
        rc = -ENOMEM;
    for (unsigned i = 0; rc == 0 && i < n; i++, t.nsubs++) {
        t.re[i].re_nsub = (size_t)-1;
        if (!(t.subs[i] = strdup(subs[i])))
            rc = -ENOMEM;
        else if (subs[i][0] == '^' && regcomp(&t.re[i], subs[i], REG_EXTENDED | REG_NOSUB) != 0) {
            t.re[i].re_nsub = (size_t)-1;
            rc = KLOG_ECONF;
        }
    }
    if (rc < 0) {
        subs_free(&t); /* counts the entry that failed too */
        return rc;
    }
    subs_free(m);
    m->subs = t.subs;
    m->re = t.re;
    m->nsubs = t.nsubs;
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

/* Copy a classic member's protocols: all or nothing. */
static int protos_set(kg_member_s *m, const kg_protocol *p, unsigned n)
{
    kg_member_s t = { .nprotos = 0 };
    int rc = (t.protos = calloc(n ? n : 1, sizeof *t.protos)) ? 0 : -ENOMEM;
    for (unsigned i = 0; rc == 0 && i < n; i++, t.nprotos++) {
        t.protos[i].name = strdup(p[i].name);
        t.protos[i].meta = memdup(p[i].meta, p[i].meta_len);
        t.protos[i].len = p[i].meta_len;
        if (!t.protos[i].name || !t.protos[i].meta)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        protos_free(&t);
        return rc;
    }
    protos_free(m);
    m->protos = t.protos;
    m->nprotos = t.nprotos;
    return 0;
}

static bool protos_equal(const kg_member_s *m, const kg_protocol *p, unsigned n)
{
    if (m->nprotos != n)
        return false;
    for (unsigned i = 0; i < n; i++)
        if (strcmp(m->protos[i].name, p[i].name) || m->protos[i].len != p[i].meta_len ||
            (p[i].meta_len && memcmp(m->protos[i].meta, p[i].meta, p[i].meta_len)))
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

/* A member's protocols: a classic member's list, a native member's strategy. */
static unsigned member_nprotos(const kg_member_s *m) { return m->classic ? m->nprotos : 1; }

static const char *member_proto(const kg_member_s *m, unsigned i)
{
    return m->classic ? m->protos[i].name : kg_strategy_name(m->strategy);
}

static bool member_supports(const kg_member_s *m, const char *name)
{
    for (unsigned i = 0; i < member_nprotos(m); i++)
        if (!strcmp(member_proto(m, i), name))
            return true;
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
    if (klog__vec_reserve(&r->groups, &r->gcap, r->ngroups + 1, sizeof *r->groups) < 0)
        return NULL;
    if (!(g = calloc(1, sizeof *g)))
        return NULL;
    snprintf(g->name, sizeof g->name, "%s", name);
    /* on from the last stored generation (of an earlier run, or of the
     * group before klog_group_delete): generations never repeat */
    pthread_mutex_lock(&r->omu);
    g->generation = kg__store_generation(&r->st, name);
    pthread_mutex_unlock(&r->omu);
    g->state = GS_EMPTY;
    r->groups[r->ngroups++] = g;
    return g;
}

static void group_free(kg_group_s *g)
{
    for (unsigned j = 0; j < g->n; j++)
        member_free(g->m[j]);
    free(g->m);
    free(g->topics);
    free(g->ptype);
    free(g->pend);
    free(g);
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
    if (g->n == 0) {
        free(g->ptype);
        g->ptype = NULL;
        g->leader[0] = '\0';
    }
}

static bool is_leader(const kg_group_s *g, const kg_member_s *m) { return g->leader[0] && !strcmp(g->leader, m->id); }

/* ---- member ids handed out with KG_MEMBER_ID_REQUIRED ------------------------------ */

static int pending_find(const kg_group_s *g, const char *id)
{
    for (unsigned i = 0; i < g->npend; i++)
        if (!strcmp(g->pend[i].id, id))
            return (int)i;
    return -1;
}

static void pending_remove(kg_group_s *g, unsigned i)
{
    g->pend[i] = g->pend[--g->npend];
}

/* ---- rebalancing ------------------------------------------------------------------ */

/* The join phase completed: the next generation, stored before any member
 * learns it (offsets.c says why, and what a failed append costs: the
 * rebalance goes on either way). */
static void generation_next(kg_registry *r, kg_group_s *g)
{
    pthread_mutex_lock(&r->omu);
    int32_t stored = kg__store_generation(&r->st, g->name);
    if (stored > g->generation)
        g->generation = stored; /* reloaded from a replica since (kg__store_refresh) */
    g->generation++;
    (void)kg__store_put_generation(r, g->name, g->generation);
    pthread_mutex_unlock(&r->omu);
}

static void topics_free(kg_group_s *g)
{
    free(g->topics);
    g->topics = NULL;
    g->ntopics = 0;
}

/* The topics the native members subscribe to that exist, with partition
 * counts (names interned).  Returns the count or an error; *out allocated. */
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

static void start_rebalance(kg_group_s *g, int64_t now)
{
    if (g->n == 0) {
        g->state = GS_EMPTY;
        return;
    }
    if (g->state != GS_PREPARING) {
        g->state = GS_PREPARING;
        g->round++;
        g->round_started_ms = now;
        /* a JoinGroup still waiting for its answer is a join of the new round */
        for (unsigned i = 0; i < g->n; i++)
            if (g->m[i]->join_pending)
                g->m[i]->joined_round = g->round;
    }
    notify_all(g);
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

static bool any_classic(const kg_group_s *g)
{
    for (unsigned i = 0; i < g->n; i++)
        if (g->m[i]->classic)
            return true;
    return false;
}

/* All members native: the coordinator assigns with their strategy. */
static int complete_compute(kg_registry *r, kg_group_s *g, int64_t now)
{
    kg_topic *topics;
    int nt = resolve_topics(r, g, &topics);
    if (nt < 0)
        return nt;
    unsigned n = g->n;
    enum kg_strategy strategy = g->m[0]->strategy; /* every member's (join checks it) */
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
        rc = kg_assign(strategy, mem, n, topics, (unsigned)nt, target);
    bool coop = strategy == KG_COOPERATIVE_STICKY;
    if (rc == 0 && coop)
        rc = kg_cooperative_adjust(mem, n, target, now_a, revoke);
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        /* topic strings of the results point at interned names already
         * (topics[] and the members' owned lists are interned) */
        rc = set_assign(g->m[i], coop ? &now_a[i] : &target[i]);
        g->m[i]->rejoin_after = coop && revoke[i].n > 0;
    }
    if (rc == 0) {
        generation_next(r, g);
        g->state = GS_STABLE;
        snprintf(g->protocol, sizeof g->protocol, "%s", kg_strategy_name(strategy));
        g->leader[0] = '\0';
        free(g->topics);
        g->topics = topics;
        g->ntopics = (unsigned)nt;
        topics = NULL;
        for (unsigned i = 0; i < n; i++)
            g->m[i]->last_seen_ms = now; /* the wait for others is not their silence */
        notify_all(g);
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

/* Supported by every member but skip (NULL: none)? */
static bool all_support(const kg_group_s *g, const char *name, const kg_member_s *skip)
{
    for (unsigned i = 0; i < g->n; i++)
        if (g->m[i] != skip && !member_supports(g->m[i], name))
            return false;
    return true;
}

/* The member's first protocol that every member supports. */
static const char *first_common(const kg_group_s *g, const kg_member_s *m)
{
    for (unsigned i = 0; i < member_nprotos(m); i++)
        if (all_support(g, member_proto(m, i), NULL))
            return member_proto(m, i);
    return NULL;
}

/* Kafka's selectProtocol: each member votes for its first protocol that all
 * support; most votes wins, ties go to the earliest member's preference.
 * NULL if the members share none (join keeps that from happening). */
static const char *select_protocol(const kg_group_s *g)
{
    const kg_member_s *m0 = g->m[0];
    const char *best = NULL;
    unsigned best_votes = 0;
    for (unsigned i = 0; i < member_nprotos(m0); i++) {
        const char *p = member_proto(m0, i);
        if (!all_support(g, p, NULL))
            continue;
        unsigned votes = 0;
        for (unsigned j = 0; j < g->n; j++) {
            const char *f = first_common(g, g->m[j]);
            votes += f && !strcmp(f, p);
        }
        if (!best || votes > best_votes) {
            best = p;
            best_votes = votes;
        }
    }
    return best;
}

/* A native member's subscription as a ConsumerProtocol Subscription v1:
 * its plain topic names, then the existing topics its patterns match, and
 * what it owns. */
static int native_subscription(const kg_member_s *m, const kg_topic *topics, unsigned nt, uint8_t **out,
                               size_t *len)
{
    const char **names = malloc((m->nsubs + nt + 1) * sizeof *names);
    kg_cp_topic *owned = NULL;
    int no = kg_cp_topics_from_tps(m->owned, m->nowned, &owned);
    if (!names || no < 0) {
        free(names);
        free(owned);
        return no < 0 ? no : -ENOMEM;
    }
    uint32_t n = 0;
    for (unsigned i = 0; i < m->nsubs; i++)
        if (m->subs[i][0] != '^')
            names[n++] = m->subs[i];
    for (unsigned t = 0; t < nt; t++) {
        bool listed = false;
        for (uint32_t k = 0; k < n && !listed; k++)
            listed = !strcmp(names[k], topics[t].name);
        if (!listed && member_wants(m, topics[t].name))
            names[n++] = topics[t].name;
    }
    kg_cp_subscription s = { .version = 1, .topics = names, .ntopics = n, .user_data = NULL,
                             .user_data_len = -1, .owned = owned, .nowned = (uint32_t)no, .generation = -1 };
    int rc = kg_cp_subscription_encode(&s, out, len);
    free(names);
    free(owned);
    return rc;
}

/* A member's assignment as a ConsumerProtocol Assignment v1. */
static int encode_assignment(const kg_tp *tp, unsigned n, uint8_t **out, size_t *len)
{
    kg_cp_topic *t = NULL;
    int nt = kg_cp_topics_from_tps(tp, n, &t);
    if (nt < 0)
        return nt;
    kg_cp_assignment a = { .version = 1, .topics = t, .ntopics = (uint32_t)nt, .user_data_len = -1 };
    int rc = kg_cp_assignment_encode(&a, out, len);
    free(t);
    return rc;
}

/* A classic member is present: pick the protocol and the leader, show the
 * native members to it, and wait for its SyncGroup (CompletingRebalance). */
static int complete_relay(kg_registry *r, kg_group_s *g, int64_t now)
{
    const char *proto = select_protocol(g);
    if (!proto)
        return KLOG_ECONF;
    kg_topic *topics;
    int nt = resolve_topics(r, g, &topics);
    if (nt < 0)
        return nt;
    unsigned n = g->n;
    uint8_t **meta = calloc(n, sizeof *meta);
    size_t *mlen = calloc(n, sizeof *mlen);
    int rc = meta && mlen ? 0 : -ENOMEM;
    for (unsigned i = 0; rc == 0 && i < n; i++)
        if (!g->m[i]->classic)
            rc = native_subscription(g->m[i], topics, (unsigned)nt, &meta[i], &mlen[i]);
    if (rc == 0) {
        /* the leader stays while it is there; else the earliest classic member */
        kg_member_s *leader = member_find(g, g->leader, NULL);
        for (unsigned i = 0; i < n && !(leader && leader->classic); i++)
            leader = g->m[i]->classic ? g->m[i] : NULL;
        snprintf(g->leader, sizeof g->leader, "%s", leader->id);
        snprintf(g->protocol, sizeof g->protocol, "%s", proto);
        for (unsigned i = 0; i < n; i++) {
            kg_member_s *m = g->m[i];
            if (!m->classic) {
                free(m->meta);
                m->meta = meta[i];
                m->meta_len = mlen[i];
                meta[i] = NULL;
            }
            /* the last generation's assignment is over */
            free(m->assign);
            free(m->abytes);
            m->assign = NULL;
            m->abytes = NULL;
            m->nassign = 0;
            m->alen = 0;
            m->rejoin_after = false;
        }
        generation_next(r, g);
        g->state = GS_COMPLETING;
        g->sync_started_ms = now;
        free(g->topics);
        g->topics = topics;
        g->ntopics = (unsigned)nt;
        topics = NULL;
        notify_all(g);
    }
    for (unsigned i = 0; meta && i < n; i++)
        free(meta[i]);
    free(meta);
    free(mlen);
    free(topics);
    return rc;
}

/* Everyone has rejoined (or the timeout passed): next generation. */
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
    return any_classic(g) ? complete_relay(r, g, now) : complete_compute(r, g, now);
}

static int64_t rebalance_timeout(const kg_group_s *g)
{
    int64_t t = 0;
    for (unsigned i = 0; i < g->n; i++)
        if (g->m[i]->rebalance_ms > t)
            t = g->m[i]->rebalance_ms;
    return t;
}

/* Complete the rebalance if everyone is in (or the time is up).  May remove
 * members: callers find theirs again afterwards. */
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

static int name_check(const char *s, size_t min)
{
    return s && strlen(s) >= min && strlen(s) <= KG_NAME_MAX ? 0 : -EINVAL;
}

static int join_check(const kg_join_req *q)
{
    int rc = kg_name_check(q->group);
    if (rc < 0)
        return rc;
    if ((q->instance_id && name_check(q->instance_id, 0) < 0) || (q->client_id && name_check(q->client_id, 0) < 0))
        return -EINVAL;
    if (!q->protocol_type)
        return kg_strategy_name(q->strategy) && (q->subs || q->nsubs == 0) && (q->owned || q->nowned == 0)
                   ? 0 : -EINVAL;
    if (name_check(q->protocol_type, 1) < 0 || q->nprotocols == 0 || q->nprotocols > KG_PROTOCOLS_MAX ||
        !q->protocols)
        return -EINVAL;
    for (unsigned i = 0; i < q->nprotocols; i++)
        if (name_check(q->protocols[i].name, 1) < 0 || q->protocols[i].meta_len > KG_PROTO_META_MAX ||
            (q->protocols[i].meta_len && !q->protocols[i].meta))
            return -EINVAL;
    return 0;
}

/* Can a member with these protocols be in the group beside the others
 * (Kafka's INCONSISTENT_GROUP_PROTOCOL rule)?  self: the member rejoining. */
static bool join_compatible(const kg_group_s *g, const kg_member_s *self, const char *ptype, const kg_join_req *q)
{
    if (g->n == 0 || (g->n == 1 && g->m[0] == self))
        return true;
    if (!g->ptype || strcmp(g->ptype, ptype) != 0)
        return false;
    if (!q->protocol_type)
        return all_support(g, kg_strategy_name(q->strategy), self);
    for (unsigned i = 0; i < q->nprotocols; i++)
        if (all_support(g, q->protocols[i].name, self))
            return true;
    return false;
}

/* The answer to a classic member's join: the completed join phase. */
static int join_answer(kg_group_s *g, kg_member_s *m, bool with_members, kg_join_resp *out)
{
    out->status = KG_STABLE;
    out->generation = g->generation;
    snprintf(out->protocol_type, sizeof out->protocol_type, "%s", g->ptype ? g->ptype : "");
    snprintf(out->protocol, sizeof out->protocol, "%s", g->protocol);
    snprintf(out->leader, sizeof out->leader, "%s", g->leader);
    if (!with_members || !is_leader(g, m))
        return 0;
    if (!(out->members = calloc(g->n, sizeof *out->members)))
        return -ENOMEM;
    for (unsigned i = 0; i < g->n; i++) {
        kg_member_s *x = g->m[i];
        kg_member_meta *e = &out->members[out->nmembers++];
        const uint8_t *meta = x->meta;
        size_t len = x->meta_len;
        for (unsigned k = 0; x->classic && k < x->nprotos; k++)
            if (!strcmp(x->protos[k].name, g->protocol)) {
                meta = x->protos[k].meta;
                len = x->protos[k].len;
            }
        e->member_id = strdup(x->id);
        e->instance_id = x->instance ? strdup(x->instance) : NULL;
        e->meta = memdup(meta, len);
        e->meta_len = len;
        if (!e->member_id || (x->instance && !e->instance_id) || !e->meta)
            return -ENOMEM;
    }
    return 0;
}

/* Set the member's fields from the request (the kind, the subscription or
 * protocols, owned partitions, client id, timeouts, notify).  *changed: the
 * subscription or protocols differ from what it had. */
static int member_update(kg_registry *r, kg_member_s *m, const kg_join_req *q, bool is_new, bool *changed,
                         int64_t now)
{
    const bool classic = q->protocol_type != NULL;
    int rc = 0;
    if (!is_new && m->classic != classic)
        *changed = true;
    if (classic) {
        if (is_new || !protos_equal(m, q->protocols, q->nprotocols)) {
            *changed = true;
            rc = protos_set(m, q->protocols, q->nprotocols);
        }
        subs_free(m);
        free(m->owned);
        m->owned = NULL;
        m->nowned = 0;
    } else {
        if (!subs_equal(m, q->subs, q->nsubs)) {
            *changed = true;
            rc = subs_set(m, q->subs, q->nsubs);
        }
        protos_free(m);
        m->strategy = q->strategy;
        kg_tp *owned;
        if (rc == 0 && (rc = intern_tps(r, q->owned, q->nowned, &owned)) == 0) {
            free(m->owned);
            m->owned = owned;
            m->nowned = q->nowned;
            m->owned_gen = q->generation;
        }
    }
    if (rc < 0)
        return rc;
    m->classic = classic;
    char *client = strdup(q->client_id ? q->client_id : "");
    if (!client)
        return -ENOMEM;
    free(m->client);
    m->client = client;
    m->session_ms = q->session_ms;
    m->rebalance_ms = q->rebalance_ms > 0 ? q->rebalance_ms : q->session_ms;
    m->notify = q->notify;
    m->notify_arg = q->notify_arg;
    m->last_seen_ms = now;
    return 0;
}

/* A new member id: the client's (or instance's) name, then a number that
 * does not repeat across restarts of the coordinator, as Kafka's
 * "<client.id>-<UUID>": a random 64-bit base drawn at start, plus a
 * counter.  (A counter from 0 gave a restarted server's new members the
 * ids that still-running clients held from before, and all librdkafka
 * consumers share the client.id "rdkafka".) */
static void member_id_make(kg_registry *r, const char *prefix, char *buf, size_t size)
{
    snprintf(buf, size, "%s-%016" PRIx64, prefix, r->id_base + ++r->next_member);
}

/* A new member in g (id given, or made from the client id).  NULL: -ENOMEM. */
static kg_member_s *member_add(kg_registry *r, kg_group_s *g, const kg_join_req *q, const char *id)
{
    if (klog__vec_reserve(&g->m, &g->cap, (size_t)g->n + 1, sizeof *g->m) < 0)
        return NULL;
    kg_member_s *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (id)
        snprintf(m->id, sizeof m->id, "%s", id);
    else
        member_id_make(r, q->client_id && *q->client_id ? q->client_id : "consumer", m->id, sizeof m->id);
    if (q->instance_id && *q->instance_id && !(m->instance = strdup(q->instance_id))) {
        free(m);
        return NULL;
    }
    g->m[g->n++] = m;
    return m;
}

/* kg_join with the registry's mutex held: the one place a join is decided. */
static int join_locked(kg_registry *r, kg_group_s *g, const kg_join_req *q, kg_join_resp *out, int64_t now)
{
    const bool classic = q->protocol_type != NULL;
    const char *ptype = classic ? q->protocol_type : KG_CP_PROTOCOL_TYPE;
    const bool by_id = q->member_id && *q->member_id;
    const bool has_instance = q->instance_id && *q->instance_id;
    kg_member_s *m = NULL;
    int pend = -1;
    if (by_id) {
        if (!(m = member_find(g, q->member_id, NULL)) && (pend = pending_find(g, q->member_id)) < 0)
            return KLOG_EUNKNOWN_MEMBER;
    } else if (has_instance) {
        /* static membership: a restart takes over the old member's place */
        for (unsigned i = 0; i < g->n && !m; i++)
            if (g->m[i]->instance && !strcmp(g->m[i]->instance, q->instance_id))
                m = g->m[i];
    }
    if (!join_compatible(g, m, ptype, q))
        return KLOG_ECONF; /* Kafka: INCONSISTENT_GROUP_PROTOCOL */
    if (!m && pend < 0 && classic && q->require_member_id && !has_instance) {
        /* Kafka's JoinGroup v4+ handshake: the id first, the join with it */
        if (klog__vec_reserve(&g->pend, &g->pcap, (size_t)g->npend + 1, sizeof *g->pend) < 0)
            return -ENOMEM;
        kg_pending *p = &g->pend[g->npend++];
        member_id_make(r, q->client_id && *q->client_id ? q->client_id : "consumer", p->id, sizeof p->id);
        p->until_ms = now + q->session_ms;
        out->status = KG_MEMBER_ID_REQUIRED;
        snprintf(out->member_id, sizeof out->member_id, "%s", p->id);
        return 0;
    }
    bool is_new = false, changed = false, takeover = false;
    if (m && !by_id) {
        takeover = true;
        bool was_leader = is_leader(g, m);
        member_id_make(r, q->instance_id, m->id, sizeof m->id);
        if (was_leader)
            snprintf(g->leader, sizeof g->leader, "%s", m->id);
        m->departed = false;
    }
    if (!m) {
        if (!(m = member_add(r, g, q, pend >= 0 ? q->member_id : NULL)))
            return -ENOMEM;
        if (pend >= 0)
            pending_remove(g, (unsigned)pend);
        is_new = true;
        if (g->n == 1)
            g->not_before_ms = now + klog__conf_int(klog__conf(r->k), KC_INITIAL_REBALANCE_DELAY_MS);
    }
    int rc = member_update(r, m, q, is_new, &changed, now);
    if (rc == 0 && g->n == 1 && (!g->ptype || strcmp(g->ptype, ptype))) {
        char *t = strdup(ptype);
        if (!t)
            rc = -ENOMEM;
        else {
            free(g->ptype);
            g->ptype = t;
        }
    }
    if (rc < 0) {
        if (is_new)
            member_remove(g, g->n - 1);
        return rc;
    }
    snprintf(out->member_id, sizeof out->member_id, "%s", m->id);
    out->status = KG_WAIT;
    if (classic && !is_new && !changed && m->join_pending) {
        try_complete(r, g, now); /* asking again for the answer to its join */
    } else if (takeover && !changed && g->state == GS_STABLE) {
        /* A static member taking over a stable place with the same
         * subscription gets its partitions back without a rebalance. */
        return classic ? join_answer(g, m, false, out) : 0;
    } else if (classic && !is_new && !changed && by_id &&
               (g->state == GS_COMPLETING || (g->state == GS_STABLE && !is_leader(g, m)))) {
        /* Kafka: a known member's unchanged JoinGroup outside a rebalance
         * gets the current generation (the leader its members while they
         * wait for its SyncGroup); only a leader's starts a rebalance */
        return join_answer(g, m, g->state == GS_COMPLETING, out);
    } else {
        if (is_new || changed || g->state != GS_PREPARING)
            start_rebalance(g, now);
        m->joined_round = g->round;
        m->join_pending = classic;
        try_complete(r, g, now); /* m joined this round: it stays */
    }
    if (!m->join_pending || g->state == GS_PREPARING || m->joined_round != g->round)
        return 0; /* native (heartbeat tells), or not done yet: KG_WAIT */
    if ((rc = join_answer(g, m, true, out)) == 0)
        m->join_pending = false; /* answered once */
    return rc;
}

static int local_join(void *self, const kg_join_req *q, kg_join_resp *out)
{
    kg_registry *r = self;
    if (!r || !q || !out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    int rc = join_check(q);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&r->mu);
    kg_group_s *g = group_get(r, q->group);
    rc = g ? join_locked(r, g, q, out, now_ms(r)) : -ENOMEM;
    pthread_mutex_unlock(&r->mu);
    if (rc < 0)
        kg_join_resp_free(out);
    return rc;
}

void kg_join_resp_free(kg_join_resp *r)
{
    if (!r)
        return;
    for (unsigned i = 0; i < r->nmembers; i++) {
        free(r->members[i].member_id);
        free(r->members[i].instance_id);
        free(r->members[i].meta);
    }
    free(r->members);
    r->members = NULL;
    r->nmembers = 0;
}

void kg_sync_resp_free(kg_sync_resp *r)
{
    if (!r)
        return;
    free(r->data);
    r->data = NULL;
    r->len = 0;
}

/* A native member's assignment from the leader: decoded, topics interned,
 * entries of topics or partitions that do not exist here dropped. */
static int decode_tps(kg_registry *r, const uint8_t *p, size_t len, kg_tp **out, unsigned *nout)
{
    *out = NULL;
    *nout = 0;
    kg_cp_assignment a;
    int rc = kg_cp_assignment_decode(p, len, &a);
    if (rc < 0)
        return rc;
    size_t total = 0;
    for (uint32_t i = 0; i < a.ntopics; i++)
        total += a.topics[i].npartitions;
    kg_tp *t = malloc((total ? total : 1) * sizeof *t);
    unsigned n = 0;
    for (uint32_t i = 0; t && rc == 0 && i < a.ntopics; i++) {
        kt_topic *kt = klog__topic_get(r->k, a.topics[i].topic);
        if (!kt)
            continue;
        int32_t np = atomic_load_explicit(&kt->nparts, memory_order_acquire);
        klog__topic_put(kt);
        const char *name = kg__intern(r, a.topics[i].topic);
        if (!name)
            rc = -ENOMEM;
        for (uint32_t j = 0; name && j < a.topics[i].npartitions; j++)
            if (a.topics[i].partitions[j] < np)
                t[n++] = (kg_tp){ name, a.topics[i].partitions[j] };
    }
    kg_cp_assignment_free(&a);
    if (!t || rc < 0) {
        free(t);
        return rc < 0 ? rc : -ENOMEM;
    }
    *out = t;
    *nout = n;
    return 0;
}

static bool tp_in(const kg_tp *tp, unsigned n, const kg_tp *x)
{
    for (unsigned i = 0; i < n; i++)
        if (tp[i].partition == x->partition && !strcmp(tp[i].topic, x->topic))
            return true;
    return false;
}

/* The leader's SyncGroup: every member's assignment, then Stable.  All or
 * nothing: a native member's assignment that does not decode changes
 * nothing (-EINVAL). */
static int apply_sync(kg_registry *r, kg_group_s *g, const kg_sync_req *q, int64_t now)
{
    for (unsigned i = 0; i < q->nassign; i++)
        if (!q->assign[i].member_id || q->assign[i].len > KG_ASSIGN_BYTES_MAX ||
            (q->assign[i].len && !q->assign[i].data))
            return -EINVAL;
    unsigned n = g->n;
    kg_tp **tps = calloc(n, sizeof *tps);
    unsigned *ntps = calloc(n, sizeof *ntps);
    uint8_t **bytes = calloc(n, sizeof *bytes);
    size_t *blen = calloc(n, sizeof *blen);
    int rc = tps && ntps && bytes && blen ? 0 : -ENOMEM;
    const bool consumer = g->ptype && !strcmp(g->ptype, KG_CP_PROTOCOL_TYPE);
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        kg_member_s *m = g->m[i];
        const kg_member_bytes *b = NULL; /* the last entry for it wins */
        for (unsigned k = 0; k < q->nassign; k++)
            if (!strcmp(q->assign[k].member_id, m->id))
                b = &q->assign[k];
        const uint8_t *data = b ? b->data : NULL;
        size_t len = b ? b->len : 0;
        if (!m->classic) {
            /* nothing for it: no partitions; else it must decode */
            rc = len ? decode_tps(r, data, len, &tps[i], &ntps[i]) : 0;
            if (rc == KLOG_ECORRUPT)
                rc = -EINVAL;
            continue;
        }
        if (len && !(bytes[i] = memdup(data, len)))
            rc = -ENOMEM;
        blen[i] = len;
        /* a classic consumer's is shown decoded (describe) when it decodes;
         * it is relayed as it is in any case */
        if (rc == 0 && consumer && len && decode_tps(r, data, len, &tps[i], &ntps[i]) == -ENOMEM)
            rc = -ENOMEM;
    }
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        kg_member_s *m = g->m[i];
        free(m->assign);
        m->assign = tps[i];
        m->nassign = ntps[i];
        tps[i] = NULL;
        free(m->abytes);
        m->abytes = bytes[i];
        m->alen = blen[i];
        bytes[i] = NULL;
        /* cooperative: what it owned and lost it revokes, then rejoins */
        m->rejoin_after = false;
        for (unsigned k = 0; !m->classic && m->strategy == KG_COOPERATIVE_STICKY && k < m->nowned; k++)
            if (!tp_in(m->assign, m->nassign, &m->owned[k]))
                m->rejoin_after = true;
        m->last_seen_ms = now; /* the wait for the leader is not their silence */
    }
    if (rc == 0) {
        g->state = GS_STABLE;
        notify_all(g);
    }
    for (unsigned i = 0; i < n; i++) {
        if (tps)
            free(tps[i]);
        if (bytes)
            free(bytes[i]);
    }
    free(tps);
    free(ntps);
    free(bytes);
    free(blen);
    return rc;
}

static int sync_locked(kg_registry *r, kg_group_s *g, kg_member_s *m, const kg_sync_req *q, kg_sync_resp *out,
                       int64_t now)
{
    if (!m->classic)
        return -EINVAL; /* native members learn theirs through heartbeat */
    if (q->generation != g->generation)
        return KLOG_EFENCED; /* Kafka: ILLEGAL_GENERATION */
    if ((q->protocol_type && (!g->ptype || strcmp(q->protocol_type, g->ptype))) ||
        (q->protocol && strcmp(q->protocol, g->protocol)))
        return KLOG_ECONF; /* Kafka: INCONSISTENT_GROUP_PROTOCOL */
    m->last_seen_ms = now;
    if (g->state == GS_PREPARING)
        return KLOG_EREBALANCE;
    if (g->state == GS_COMPLETING) {
        if (!is_leader(g, m)) {
            out->status = KG_WAIT;
            return 0;
        }
        int rc = apply_sync(r, g, q, now);
        if (rc < 0)
            return rc;
    }
    out->status = KG_STABLE;
    if (m->alen && !(out->data = memdup(m->abytes, m->alen)))
        return -ENOMEM;
    out->len = m->alen;
    return 0;
}

static int local_sync(void *self, const kg_sync_req *q, kg_sync_resp *out)
{
    kg_registry *r = self;
    if (!r || !q || !out || !q->member_id)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    int rc = kg_name_check(q->group);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&r->mu);
    kg_group_s *g = group_find(r, q->group);
    kg_member_s *m = g ? member_find(g, q->member_id, NULL) : NULL;
    rc = m ? sync_locked(r, g, m, q, out, now_ms(r)) : KLOG_EUNKNOWN_MEMBER;
    pthread_mutex_unlock(&r->mu);
    if (rc < 0)
        kg_sync_resp_free(out);
    return rc;
}

static int heartbeat_locked(kg_registry *r, kg_group_s *g, const char *member_id, int32_t known, kg_beat *out,
                            int64_t now)
{
    kg_member_s *m = member_find(g, member_id, NULL);
    if (!m)
        return KLOG_EUNKNOWN_MEMBER;
    m->last_seen_ms = now;
    try_complete(r, g, now);
    if (!(m = member_find(g, member_id, NULL)))
        return KLOG_EUNKNOWN_MEMBER; /* it had not rejoined the rebalance that just timed out */
    out->generation = g->generation;
    if (m->classic) {
        if (known != g->generation)
            return KLOG_EFENCED; /* Kafka: ILLEGAL_GENERATION */
        if (g->state == GS_PREPARING)
            return KLOG_EREBALANCE;
        out->status = g->state == GS_STABLE ? KG_STABLE : KG_WAIT;
        return 0;
    }
    if (g->state == GS_PREPARING || g->state == GS_COMPLETING) {
        out->status = m->joined_round == g->round ? KG_WAIT : KG_REJOIN;
    } else if (g->state == GS_STABLE) {
        out->status = KG_STABLE;
        if (known != g->generation) {
            out->new_generation = true;
            out->rejoin_after = m->rejoin_after;
            m->rejoin_after = false;
            if (m->nassign && !(out->assign = malloc(m->nassign * sizeof *out->assign)))
                return -ENOMEM;
            if (m->nassign)
                memcpy(out->assign, m->assign, m->nassign * sizeof *out->assign);
            out->nassign = m->nassign;
        }
    } else {
        out->status = KG_REJOIN;
    }
    return 0;
}

static int local_heartbeat(void *self, const char *group, const char *member_id, int32_t known, kg_beat *out)
{
    kg_registry *r = self;
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    if (!r || !group || !member_id)
        return -EINVAL;
    pthread_mutex_lock(&r->mu);
    kg_group_s *g = group_find(r, group);
    int rc = g ? heartbeat_locked(r, g, member_id, known, out, now_ms(r)) : KLOG_EUNKNOWN_MEMBER;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static int local_leave(void *self, const char *group, const char *member_id, bool keep)
{
    kg_registry *r = self;
    if (!r || !group || !member_id)
        return -EINVAL;
    pthread_mutex_lock(&r->mu);
    int64_t now = now_ms(r);
    kg_group_s *g = group_find(r, group);
    unsigned i;
    kg_member_s *m = g ? member_find(g, member_id, &i) : NULL;
    int rc = 0;
    if (!m) {
        rc = KLOG_EUNKNOWN_MEMBER;
    } else if (keep && m->instance) {
        m->departed = true; /* expires after its session timeout */
        m->notify = NULL;
    } else {
        member_remove(g, i);
        start_rebalance(g, now);
        try_complete(r, g, now);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* ---- timer ------------------------------------------------------------------------------- */

void kg__tick(kg_registry *r)
{
    pthread_mutex_lock(&r->mu);
    int64_t now = now_ms(r);
    for (size_t gi = 0; gi < r->ngroups; gi++) {
        kg_group_s *g = r->groups[gi];
        bool lost = false;
        for (unsigned i = g->n; i-- > 0;) {
            kg_member_s *m = g->m[i];
            /* a classic member waiting for its join's answer or for the
             * leader's SyncGroup is not silent (Kafka keeps it too); once
             * the rebalance is over, one that does not come for its answer
             * within its session is gone (its client died waiting) */
            if (m->classic && !m->departed &&
                ((m->join_pending && g->state == GS_PREPARING) || g->state == GS_COMPLETING))
                continue;
            int64_t limit = m->departed || m->classic ? m->session_ms : KLOG_MIN(m->session_ms, m->rebalance_ms);
            if (now - m->last_seen_ms > limit) {
                member_remove(g, i);
                lost = true;
            }
        }
        if (g->state == GS_COMPLETING && now - g->sync_started_ms >= rebalance_timeout(g)) {
            /* the leader did not send its SyncGroup in time: out */
            unsigned li;
            if (member_find(g, g->leader, &li))
                member_remove(g, li);
            g->leader[0] = '\0';
            lost = true;
        }
        for (unsigned i = g->npend; i-- > 0;)
            if (now > g->pend[i].until_ms)
                pending_remove(g, i);
        if (lost)
            start_rebalance(g, now);
        if (g->state == GS_STABLE) {
            /* subscribed topics created, deleted or grown: rebalance */
            kg_topic *t;
            int nt = resolve_topics(r, g, &t);
            if (nt >= 0) {
                if (!topics_same(t, (unsigned)nt, g->topics, g->ntopics))
                    start_rebalance(g, now);
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
        kg__tick(r);
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
    if (getrandom(&r->id_base, sizeof r->id_base, 0) != sizeof r->id_base)
        r->id_base = klog__now_ns() ^ (uint64_t)(uintptr_t)r;
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
    for (size_t i = 0; i < r->ngroups; i++)
        group_free(r->groups[i]);
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

int kg_registry_get(struct klog *k, bool create, kg_registry **out)
{
    *out = NULL;
    kg_registry *r = klog__module_state(k, &kg_groups_module);
    if (!r)
        return -ENOTSUP; /* an instance composed without groups (tests) */
    if (atomic_load_explicit(&r->active, memory_order_acquire)) {
        int rc = 0;
        if (kg__store_stale(&r->st)) {
            /* this node leads a partition of __consumer_offsets in a new
             * epoch (promoted): its tables are what it replicated */
            pthread_mutex_lock(&r->omu);
            rc = kg__store_refresh(r);
            pthread_mutex_unlock(&r->omu);
        }
        *out = rc < 0 ? NULL : r;
        return rc;
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
        else if (g->state == GS_COMPLETING)
            rc = KLOG_EREBALANCE; /* Kafka: the assignment is not out yet */
        else if (generation != g->generation)
            rc = KLOG_EFENCED; /* Kafka: ILLEGAL_GENERATION */
        else if (g->state == GS_PREPARING && m->joined_round == g->round)
            rc = KLOG_EREBALANCE; /* rejoined: its partitions are being reassigned */
    } else if (generation >= 0) {
        /* Kafka takes a commit without member id only with generation -1:
         * a client whose member id the coordinator forgot (a restart) and
         * that commits with its old generation is not a standalone one */
        rc = KLOG_EUNKNOWN_MEMBER;
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
    int rc = klog__vec_reserve(&s->v, &s->cap, s->n + 1, sizeof *s->v);
    if (rc < 0) {
        s->err = rc;
        return;
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

/* The group's protocol: the one chosen last, else (before the first
 * generation) its native members' strategy. */
static const char *group_protocol(const kg_group_s *g)
{
    if (g->protocol[0])
        return g->protocol;
    for (unsigned i = 0; i < g->n; i++)
        if (!g->m[i]->classic)
            return kg_strategy_name(g->m[i]->strategy);
    return "";
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
        kg_info *gi = kg__info_new(group, g && g->n ? state_name[g->state] : "Empty",
                                   g ? g->generation : kg__store_generation(&r->st, group),
                                   g && g->n ? group_protocol(g) : "");
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

typedef struct del_ctx { kg_offset *o; unsigned n; size_t cap; int err; } del_ctx;

static void del_cb(void *arg, kg_committed_t *c)
{
    del_ctx *d = arg;
    int rc = klog__vec_reserve(&d->o, &d->cap, (size_t)d->n + 1, sizeof *d->o);
    if (rc < 0) {
        d->err = rc;
        return;
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
    /* The group's generation record stays (offsets.c): one created again
     * under this name goes on from its generation, so that a member of the
     * deleted group that still holds one cannot commit into the new. */
    kg_group_s *g = group_find(r, group);
    if (rc == 0 && g) {
        for (size_t i = 0; i < r->ngroups; i++)
            if (r->groups[i] == g) {
                group_free(g);
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

/* ---- describe (DescribeGroups) --------------------------------------------------------------- */

void kg_group_info_free(kg_group_info *gi)
{
    if (!gi)
        return;
    for (unsigned i = 0; i < gi->nmembers; i++) {
        kg_member_info *m = &gi->members[i];
        free(m->member_id);
        free(m->instance_id);
        free(m->client_id);
        free(m->meta);
        free(m->assign);
    }
    free(gi->members);
    gi->members = NULL;
    gi->nmembers = 0;
}

static int member_info(kg_registry *r, const kg_group_s *g, const kg_member_s *m, kg_member_info *e)
{
    e->classic = m->classic;
    e->member_id = strdup(m->id);
    e->client_id = strdup(m->client ? m->client : "");
    if (!e->member_id || !e->client_id || (m->instance && !(e->instance_id = strdup(m->instance))))
        return -ENOMEM;
    if (!m->classic) {
        kg_topic *t;
        int nt = resolve_topics(r, (kg_group_s *)g, &t);
        if (nt < 0)
            return nt;
        int rc = native_subscription(m, t, (unsigned)nt, &e->meta, &e->meta_len);
        free(t);
        return rc < 0 ? rc : encode_assignment(m->assign, m->nassign, &e->assign, &e->assign_len);
    }
    const char *proto = g->protocol[0] ? g->protocol : m->protos[0].name;
    for (unsigned k = 0; k < m->nprotos; k++)
        if (!strcmp(m->protos[k].name, proto)) {
            e->meta_len = m->protos[k].len;
            if (!(e->meta = memdup(m->protos[k].meta, e->meta_len)))
                return -ENOMEM;
        }
    e->assign_len = m->alen;
    return m->alen && !(e->assign = memdup(m->abytes, m->alen)) ? -ENOMEM : 0;
}

static int local_describe(void *self, const char *group, kg_group_info *out)
{
    kg_registry *r = self;
    if (!r || !out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    int rc = kg_name_check(group);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&r->mu);
    kg_group_s *g = group_find(r, group);
    if (!g || g->n == 0) {
        rc = KLOG_EUNKNOWN_GROUP;
    } else {
        out->state = state_name[g->state];
        snprintf(out->protocol_type, sizeof out->protocol_type, "%s", g->ptype ? g->ptype : "");
        snprintf(out->protocol, sizeof out->protocol, "%s", group_protocol(g));
        out->generation = g->generation;
        snprintf(out->leader, sizeof out->leader, "%s", g->leader);
        if (!(out->members = calloc(g->n, sizeof *out->members)))
            rc = -ENOMEM;
        /* counted before it is filled: one that fails half-way is freed too */
        for (unsigned i = 0; rc == 0 && i < g->n; i++)
            rc = member_info(r, g, g->m[i], &out->members[out->nmembers++]);
    }
    pthread_mutex_unlock(&r->mu);
    if (rc < 0)
        kg_group_info_free(out);
    return rc;
}

/* ---- the local coordinator -------------------------------------------------------------------- */

static int local_commit(void *self, const char *group, const char *member_id, int32_t generation, kg_offset *o,
                        unsigned n, bool sync)
{
    return kg_commit(self, group, member_id, generation, o, n, sync);
}

static int local_committed(void *self, const char *group, const char *topic, int32_t partition, int64_t *offset,
                           char *meta, size_t msize)
{
    return kg_committed(self, group, topic, partition, offset, meta, msize);
}

static int local_list(void *self, char ***names, size_t *count) { return kg_list(self, names, count); }

static const kg_coordinator_ops local_ops = {
    .version = KG_COORDINATOR_V1,
    .size = sizeof(kg_coordinator_ops),
    .join = local_join,
    .sync = local_sync,
    .heartbeat = local_heartbeat,
    .leave = local_leave,
    .commit = local_commit,
    .committed = local_committed,
    .list = local_list,
    .describe = local_describe,
};

int kg_offsets_partition(struct klog *k, const char *group, bool create, struct kt_topic **topic, int32_t *index)
{
    *topic = NULL;
    *index = -1;
    kg_registry *r;
    int rc = kg_registry_get(k, true, &r);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&r->omu);
    rc = kg__store_open(r, create);
    if (rc == 0)
        rc = kg__store_refresh(r);
    if (rc == 0 && !r->st.t)
        rc = KLOG_EUNKNOWN_TOPIC;
    if (rc == 0) {
        klog__topic_ref(r->st.t);
        *topic = r->st.t;
        *index = kg__store_partition(&r->st, group);
    }
    pthread_mutex_unlock(&r->omu);
    return rc;
}

int kg_coordinator_local(struct klog *k, kg_coordinator *out)
{
    if (!k || !out)
        return -EINVAL;
    kg_registry *r;
    int rc = kg_registry_get(k, true, &r);
    if (rc < 0)
        return rc;
    *out = (kg_coordinator){ &local_ops, r };
    return 0;
}

int kg_coordinator_check(const kg_coordinator_ops *o)
{
    if (!o || (o->version & 0xffff0000u) != KG_COORDINATOR_MAGIC || (o->version & 0xffffu) < 1 ||
        o->size < sizeof(kg_coordinator_ops))
        return -EINVAL;
    return o->join && o->sync && o->heartbeat && o->leave && o->commit && o->committed && o->list && o->describe
               ? 0 : -EINVAL;
}
