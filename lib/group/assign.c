/*
 * lib/group/assign.c - range, roundrobin and cooperative-sticky assignment.
 *
 * Internal model: topics sorted by name get indices 0..nt-1; partition p of
 * topic t is the global partition index gp = base[t] + p, so ascending gp is
 * (topic name, partition) order.  Members are handled by rank (their
 * position in member order, see assign.h); rank -> caller index via
 * order[].  Every per-partition table is an array indexed by gp, every
 * per-member table an array indexed by rank; nothing is hashed, so results
 * do not depend on input order or on addresses.
 */
#include "group/assign.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

typedef struct topic_ent {
    const char *name;
    int32_t partitions;
} topic_ent;

typedef struct member_ent {
    const char *instance_id;
    const char *member_id;
    uint32_t idx;               /* position in the caller's members[] */
} member_ent;

typedef struct ctx {
    const kg_member *members;
    uint32_t nm;
    uint32_t *order;            /* [nm] rank -> caller index */

    uint32_t nt;
    topic_ent *topics;          /* [nt] sorted by name */
    size_t *base;               /* [nt + 1] first gp of each topic; base[nt] = np */
    size_t np;

    size_t *msub_off;           /* [nm + 1] rank -> range in msub */
    uint32_t *msub;             /* sorted distinct topic indices per member */
    size_t *tsub_off;           /* [nt + 1] topic -> range in tsub */
    uint32_t *tsub;             /* subscriber ranks per topic, ascending */

    uint32_t *assign;           /* [np] rank holding gp, or NONE */
} ctx;

/* ---- small helpers ------------------------------------------------------ */

static int cmp_topic_ent(const void *a, const void *b)
{
    return strcmp(((const topic_ent *)a)->name, ((const topic_ent *)b)->name);
}

static int cmp_member_ent(const void *a, const void *b)
{
    const member_ent *x = a, *y = b;
    if (x->instance_id && y->instance_id) {
        int c = strcmp(x->instance_id, y->instance_id);
        if (c)
            return c;
    } else if (x->instance_id) {
        return -1;
    } else if (y->instance_id) {
        return 1;
    }
    /* Dynamic members, and static ones sharing an instance id (not valid in
     * a group, but the order must stay total): member id decides. */
    return strcmp(x->member_id, y->member_id);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_tp(const void *a, const void *b)
{
    const kg_tp *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return (x->partition > y->partition) - (x->partition < y->partition);
}

/* Topic index of name, or NONE. */
static uint32_t topic_find(const ctx *c, const char *name)
{
    size_t lo = 0, hi = c->nt;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(c->topics[mid].name, name);
        if (r == 0)
            return (uint32_t)mid;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NONE;
}

static bool member_subscribes(const ctx *c, uint32_t rank, uint32_t t)
{
    const uint32_t *s = c->msub + c->msub_off[rank];
    size_t lo = 0, hi = c->msub_off[rank + 1] - c->msub_off[rank];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s[mid] == t)
            return true;
        if (s[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static void ctx_free(ctx *c)
{
    free(c->order);
    free(c->topics);
    free(c->base);
    free(c->msub_off);
    free(c->msub);
    free(c->tsub_off);
    free(c->tsub);
    free(c->assign);
}

/* Validate the input and build the sorted topic table, member order and
 * both subscription indexes.  On failure the caller still calls ctx_free. */
static int ctx_init(ctx *c, const kg_member *members, uint32_t nm,
                    const kg_topic *topics, uint32_t nt)
{
    memset(c, 0, sizeof *c);
    c->members = members;
    c->nm = nm;
    c->nt = nt;

    /* Topics. */
    c->topics = malloc((nt ? nt : 1) * sizeof *c->topics);
    c->base = malloc(((size_t)nt + 1) * sizeof *c->base);
    if (!c->topics || !c->base)
        return -ENOMEM;
    for (uint32_t t = 0; t < nt; t++) {
        if (!topics[t].name || topics[t].partitions < 0)
            return -EINVAL;
        c->topics[t].name = topics[t].name;
        c->topics[t].partitions = topics[t].partitions;
    }
    qsort(c->topics, nt, sizeof *c->topics, cmp_topic_ent);
    size_t np = 0;
    for (uint32_t t = 0; t < nt; t++) {
        if (t > 0 && strcmp(c->topics[t - 1].name, c->topics[t].name) == 0)
            return -EINVAL;
        c->base[t] = np;
        np += (size_t)c->topics[t].partitions;
    }
    c->base[nt] = np;
    c->np = np;
    if (np >= NONE)  /* gp and counts are kept in 32 bits */
        return -ENOMEM;

    /* Member order. */
    member_ent *me = malloc((nm ? nm : 1) * sizeof *me);
    c->order = malloc((nm ? nm : 1) * sizeof *c->order);
    if (!me || !c->order) {
        free(me);
        return -ENOMEM;
    }
    size_t nsub = 0;
    for (uint32_t i = 0; i < nm; i++) {
        const kg_member *m = &members[i];
        if (!m->member_id || (m->ntopics && !m->topics) || (m->nowned && !m->owned)) {
            free(me);
            return -EINVAL;
        }
        for (unsigned k = 0; k < m->nowned; k++) {
            if (!m->owned[k].topic) {
                free(me);
                return -EINVAL;
            }
        }
        me[i] = (member_ent){ m->instance_id, m->member_id, i };
        nsub += m->ntopics;
    }
    qsort(me, nm, sizeof *me, cmp_member_ent);
    for (uint32_t r = 0; r < nm; r++)
        c->order[r] = me[r].idx;
    free(me);
    /* Duplicate member ids: sort the ids alone (in member order equal ids
     * need not be adjacent when instance ids differ). */
    const char **ids = malloc((nm ? nm : 1) * sizeof *ids);
    if (!ids)
        return -ENOMEM;
    for (uint32_t i = 0; i < nm; i++)
        ids[i] = members[i].member_id;
    qsort(ids, nm, sizeof *ids, cmp_str);
    for (uint32_t i = 1; i < nm; i++) {
        if (strcmp(ids[i - 1], ids[i]) == 0) {
            free(ids);
            return -EINVAL;
        }
    }
    free(ids);

    /* Member -> topics (sorted, distinct, existing only). */
    c->msub_off = malloc(((size_t)nm + 1) * sizeof *c->msub_off);
    c->msub = malloc((nsub ? nsub : 1) * sizeof *c->msub);
    c->tsub_off = calloc((size_t)nt + 1, sizeof *c->tsub_off);
    if (!c->msub_off || !c->msub || !c->tsub_off)
        return -ENOMEM;
    size_t w = 0;
    for (uint32_t r = 0; r < nm; r++) {
        const kg_member *m = &members[c->order[r]];
        size_t start = w;
        c->msub_off[r] = start;
        for (unsigned k = 0; k < m->ntopics; k++) {
            if (!m->topics[k])
                return -EINVAL;
            uint32_t t = topic_find(c, m->topics[k]);
            if (t != NONE)
                c->msub[w++] = t;
        }
        qsort(c->msub + start, w - start, sizeof *c->msub, cmp_u32);
        size_t u = start;
        for (size_t k = start; k < w; k++)
            if (k == start || c->msub[k] != c->msub[u - 1])
                c->msub[u++] = c->msub[k];
        w = u;
        for (size_t k = start; k < w; k++)
            c->tsub_off[c->msub[k] + 1]++;
    }
    c->msub_off[nm] = w;

    /* Topic -> subscribers, ranks ascending (filled in rank order). */
    for (uint32_t t = 0; t < nt; t++)
        c->tsub_off[t + 1] += c->tsub_off[t];
    c->tsub = malloc((w ? w : 1) * sizeof *c->tsub);
    size_t *fill = malloc(((size_t)nt + 1) * sizeof *fill);
    if (!c->tsub || !fill) {
        free(fill);
        return -ENOMEM;
    }
    memcpy(fill, c->tsub_off, ((size_t)nt + 1) * sizeof *fill);
    for (uint32_t r = 0; r < nm; r++)
        for (size_t k = c->msub_off[r]; k < c->msub_off[r + 1]; k++)
            c->tsub[fill[c->msub[k]]++] = r;
    free(fill);

    c->assign = malloc((np ? np : 1) * sizeof *c->assign);
    if (!c->assign)
        return -ENOMEM;
    for (size_t gp = 0; gp < np; gp++)
        c->assign[gp] = NONE;
    return 0;
}

/* ---- range and roundrobin ----------------------------------------------- */

static void assign_range(ctx *c)
{
    for (uint32_t t = 0; t < c->nt; t++) {
        const uint32_t *subs = c->tsub + c->tsub_off[t];
        size_t ns = c->tsub_off[t + 1] - c->tsub_off[t];
        if (ns == 0)
            continue;
        size_t n = (size_t)c->topics[t].partitions;
        size_t q = n / ns, extra = n % ns;
        for (size_t i = 0; i < ns; i++) {
            size_t start = q * i + (i < extra ? i : extra);
            size_t len = q + (i < extra ? 1 : 0);
            for (size_t p = start; p < start + len; p++)
                c->assign[c->base[t] + p] = subs[i];
        }
    }
}

static void assign_roundrobin(ctx *c)
{
    uint32_t cursor = 0;  /* the next member to consider, carried across topics */
    for (uint32_t t = 0; t < c->nt; t++) {
        const uint32_t *subs = c->tsub + c->tsub_off[t];
        size_t ns = c->tsub_off[t + 1] - c->tsub_off[t];
        if (ns == 0)
            continue;
        for (size_t gp = c->base[t]; gp < c->base[t + 1]; gp++) {
            /* The first subscriber at or after the cursor, wrapping round:
             * the members Kafka's circular iterator skips, found by bisection. */
            size_t lo = 0, hi = ns;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (subs[mid] < cursor)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            uint32_t r = subs[lo < ns ? lo : 0];
            c->assign[gp] = r;
            cursor = r + 1 == c->nm ? 0 : r + 1;
        }
    }
}

/* ---- cooperative-sticky ------------------------------------------------- */

/* Resolve previous ownership into owner[gp] (rank or NONE): the claimant
 * with the highest generation wins; a tie at the top invalidates the claim.
 * Claims on unknown topics, unsubscribed topics or missing partitions are
 * dropped.  Independent of the order claims are met in: a member has one
 * generation, so "tie" means two distinct members at the highest one. */
static int resolve_owners(const ctx *c, uint32_t *owner)
{
    int32_t *gen = malloc((c->np ? c->np : 1) * sizeof *gen);
    uint8_t *tie = calloc(c->np ? c->np : 1, 1);
    if (!gen || !tie) {
        free(gen);
        free(tie);
        return -ENOMEM;
    }
    for (size_t gp = 0; gp < c->np; gp++)
        owner[gp] = NONE;
    for (uint32_t r = 0; r < c->nm; r++) {
        const kg_member *m = &c->members[c->order[r]];
        for (unsigned k = 0; k < m->nowned; k++) {
            uint32_t t = topic_find(c, m->owned[k].topic);
            int32_t p = m->owned[k].partition;
            if (t == NONE || p < 0 || p >= c->topics[t].partitions || !member_subscribes(c, r, t))
                continue;
            size_t gp = c->base[t] + (size_t)p;
            if (owner[gp] == NONE && !tie[gp]) {
                owner[gp] = r;
                gen[gp] = m->generation;
            } else if (m->generation > gen[gp]) {
                owner[gp] = r;
                gen[gp] = m->generation;
                tie[gp] = 0;
            } else if (m->generation == gen[gp] && owner[gp] != r) {
                tie[gp] = 1;
            }
        }
    }
    for (size_t gp = 0; gp < c->np; gp++)
        if (tie[gp])
            owner[gp] = NONE;
    free(gen);
    free(tie);
    return 0;
}

/* Do all members subscribe to the same set of existing topics? */
static bool subscriptions_uniform(const ctx *c)
{
    size_t n0 = c->msub_off[1] - c->msub_off[0];
    for (uint32_t r = 1; r < c->nm; r++) {
        size_t n = c->msub_off[r + 1] - c->msub_off[r];
        if (n != n0 || memcmp(c->msub + c->msub_off[r], c->msub, n0 * sizeof *c->msub) != 0)
            return false;
    }
    return true;
}

/* Uniform subscriptions: exact quotas, then minimum movement (assign.h). */
static int sticky_uniform(ctx *c, const uint32_t *owner)
{
    const uint32_t *subs = c->msub;  /* everyone's topic list */
    size_t nsubs = c->msub_off[1];
    size_t P = 0;
    for (size_t k = 0; k < nsubs; k++)
        P += (size_t)c->topics[subs[k]].partitions;
    uint32_t M = c->nm;
    uint32_t minq = (uint32_t)(P / M);
    uint32_t extra = (uint32_t)(P % M);

    uint32_t *cnt = calloc(M, sizeof *cnt);
    uint32_t *quota = malloc(M * sizeof *quota);
    uint32_t *list = malloc(M * sizeof *list);
    if (!cnt || !quota || !list) {
        free(cnt);
        free(quota);
        free(list);
        return -ENOMEM;
    }
    /* cnt = partitions each member validly owns. */
    for (size_t k = 0; k < nsubs; k++) {
        uint32_t t = subs[k];
        for (size_t gp = c->base[t]; gp < c->base[t + 1]; gp++)
            if (owner[gp] != NONE)
                cnt[owner[gp]]++;
    }
    /* Extra slots: first to members that can fill them with partitions they
     * already own, then to the rest, in member order. */
    for (uint32_t r = 0; r < M; r++) {
        quota[r] = minq;
        if (extra && cnt[r] > minq) {
            quota[r]++;
            extra--;
        }
    }
    for (uint32_t r = 0; r < M && extra; r++) {
        if (quota[r] == minq) {
            quota[r]++;
            extra--;
        }
    }
    /* Keep owned partitions up to quota, lowest (topic, partition) first. */
    memset(cnt, 0, M * sizeof *cnt);
    for (size_t k = 0; k < nsubs; k++) {
        uint32_t t = subs[k];
        for (size_t gp = c->base[t]; gp < c->base[t + 1]; gp++) {
            uint32_t r = owner[gp];
            if (r != NONE && cnt[r] < quota[r]) {
                c->assign[gp] = r;
                cnt[r]++;
            }
        }
    }
    /* Deal the rest round robin over the members under quota.  The partitions
     * left equal the total deficit, so the list never runs dry; each pass
     * gives a listed member at most one, so nobody passes its quota. */
    uint32_t nl = 0;
    for (uint32_t r = 0; r < M; r++)
        if (cnt[r] < quota[r])
            list[nl++] = r;
    uint32_t at = 0;
    for (size_t k = 0; k < nsubs; k++) {
        uint32_t t = subs[k];
        for (size_t gp = c->base[t]; gp < c->base[t + 1]; gp++) {
            if (c->assign[gp] != NONE)
                continue;
            uint32_t r = list[at++];
            c->assign[gp] = r;
            cnt[r]++;
            if (at == nl) {
                uint32_t w = 0;
                for (uint32_t i = 0; i < nl; i++)
                    if (cnt[list[i]] < quota[list[i]])
                        list[w++] = list[i];
                nl = w;
                at = 0;
            }
        }
    }
    free(cnt);
    free(quota);
    free(list);
    return 0;
}

/* A binary min-heap of member ranks keyed by (cnt[rank], rank), with each
 * rank's slot in pos[] so a key can change in place. */
typedef struct heap {
    uint32_t *h;
    uint32_t n;
    uint32_t *pos;              /* [nm]; valid for ranks in the heap */
    const uint32_t *cnt;        /* [nm] */
} heap;

static bool heap_less(const heap *hp, uint32_t a, uint32_t b)
{
    return hp->cnt[a] < hp->cnt[b] || (hp->cnt[a] == hp->cnt[b] && a < b);
}

static void heap_swap(heap *hp, uint32_t i, uint32_t j)
{
    uint32_t a = hp->h[i], b = hp->h[j];
    hp->h[i] = b;
    hp->h[j] = a;
    hp->pos[b] = i;
    hp->pos[a] = j;
}

static void heap_up(heap *hp, uint32_t i)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!heap_less(hp, hp->h[i], hp->h[parent]))
            break;
        heap_swap(hp, i, parent);
        i = parent;
    }
}

static void heap_down(heap *hp, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < hp->n && heap_less(hp, hp->h[l], hp->h[m]))
            m = l;
        if (r < hp->n && heap_less(hp, hp->h[r], hp->h[m]))
            m = r;
        if (m == i)
            break;
        heap_swap(hp, i, m);
        i = m;
    }
}

/* Heap of topic t's subscribers. */
static void heap_build(heap *hp, const ctx *c, uint32_t t)
{
    hp->n = 0;
    for (size_t k = c->tsub_off[t]; k < c->tsub_off[t + 1]; k++) {
        uint32_t r = c->tsub[k];
        hp->h[hp->n] = r;
        hp->pos[r] = hp->n;
        hp->n++;
    }
    for (uint32_t i = hp->n / 2; i-- > 0;)
        heap_down(hp, i);
}

typedef struct topic_order {
    uint32_t nsubs;
    uint32_t t;
} topic_order;

static int cmp_topic_order(const void *a, const void *b)
{
    const topic_order *x = a, *y = b;
    if (x->nsubs != y->nsubs)
        return (x->nsubs > y->nsubs) - (x->nsubs < y->nsubs);
    return (x->t > y->t) - (x->t < y->t);
}

/* Move partitions of topic t, those with owner[gp] != assign[gp] (not kept
 * from before) when fresh, the others otherwise, from a holder to the
 * topic's least-loaded subscriber while that narrows a gap of 2 or more.
 * Returns whether anything moved. */
static bool balance_topic(ctx *c, heap *hp, uint32_t *cnt, const uint32_t *owner,
                          uint32_t t, bool fresh)
{
    bool moved = false;
    for (size_t gp = c->base[t]; gp < c->base[t + 1]; gp++) {
        uint32_t h = c->assign[gp];
        if ((owner[gp] != h) != fresh)
            continue;
        uint32_t m = hp->h[0];
        if (cnt[h] <= cnt[m] + 1)
            continue;
        c->assign[gp] = m;
        cnt[m]++;
        heap_down(hp, hp->pos[m]);
        cnt[h]--;
        heap_up(hp, hp->pos[h]);
        moved = true;
    }
    return moved;
}

/* Differing subscriptions: keep, greedy fill, balancing rounds (assign.h). */
static int sticky_general(ctx *c, const uint32_t *owner)
{
    uint32_t M = c->nm;
    uint32_t *cnt = calloc(M, sizeof *cnt);
    uint32_t *h = malloc(M * sizeof *h);
    uint32_t *pos = malloc(M * sizeof *pos);
    topic_order *to = malloc((c->nt ? c->nt : 1) * sizeof *to);
    if (!cnt || !h || !pos || !to) {
        free(cnt);
        free(h);
        free(pos);
        free(to);
        return -ENOMEM;
    }
    heap hp = { h, 0, pos, cnt };

    /* 1. Keep every valid owned partition (resolve_owners checked that the
     *    owner still subscribes to the topic). */
    for (size_t gp = 0; gp < c->np; gp++) {
        if (owner[gp] != NONE) {
            c->assign[gp] = owner[gp];
            cnt[owner[gp]]++;
        }
    }
    /* 2. Most constrained topics first; each unowned partition to the
     *    least-loaded subscriber. */
    uint32_t nto = 0;
    for (uint32_t t = 0; t < c->nt; t++) {
        uint32_t ns = (uint32_t)(c->tsub_off[t + 1] - c->tsub_off[t]);
        if (ns)
            to[nto++] = (topic_order){ ns, t };
    }
    qsort(to, nto, sizeof *to, cmp_topic_order);
    for (uint32_t i = 0; i < nto; i++) {
        uint32_t t = to[i].t;
        heap_build(&hp, c, t);
        for (size_t gp = c->base[t]; gp < c->base[t + 1]; gp++) {
            if (c->assign[gp] != NONE)
                continue;
            uint32_t m = hp.h[0];
            c->assign[gp] = m;
            cnt[m]++;
            heap_down(&hp, 0);
        }
    }
    /* 3. Balancing rounds.  Every move lowers the sum of squared loads, so
     *    this terminates anyway; the bound keeps the work bounded. */
    for (unsigned round = 0; round < KG_BALANCE_ROUNDS; round++) {
        bool moved = false;
        for (uint32_t i = 0; i < nto; i++) {
            if (to[i].nsubs < 2)
                continue;
            heap_build(&hp, c, to[i].t);
            moved |= balance_topic(c, &hp, cnt, owner, to[i].t, true);
            moved |= balance_topic(c, &hp, cnt, owner, to[i].t, false);
        }
        if (!moved)
            break;
    }
    free(cnt);
    free(h);
    free(pos);
    free(to);
    return 0;
}

static int assign_sticky(ctx *c)
{
    uint32_t *owner = malloc((c->np ? c->np : 1) * sizeof *owner);
    if (!owner)
        return -ENOMEM;
    int rc = resolve_owners(c, owner);
    if (rc == 0)
        rc = subscriptions_uniform(c) ? sticky_uniform(c, owner) : sticky_general(c, owner);
    free(owner);
    return rc;
}

/* ---- results ------------------------------------------------------------ */

/* c->assign -> out[caller index], each sorted by (topic, partition) because
 * gp ascends in that order. */
static int build_output(const ctx *c, kg_assignment *out)
{
    uint32_t *cnt = calloc(c->nm, sizeof *cnt);
    if (!cnt)
        return -ENOMEM;
    for (size_t gp = 0; gp < c->np; gp++)
        if (c->assign[gp] != NONE)
            cnt[c->assign[gp]]++;
    for (uint32_t r = 0; r < c->nm; r++) {
        kg_assignment *a = &out[c->order[r]];
        if (cnt[r] == 0)
            continue;
        a->tp = malloc(cnt[r] * sizeof *a->tp);
        if (!a->tp) {
            free(cnt);
            return -ENOMEM;
        }
    }
    free(cnt);
    for (uint32_t t = 0; t < c->nt; t++) {
        for (int32_t p = 0; p < c->topics[t].partitions; p++) {
            uint32_t r = c->assign[c->base[t] + (size_t)p];
            if (r == NONE)
                continue;
            kg_assignment *a = &out[c->order[r]];
            a->tp[a->n++] = (kg_tp){ c->topics[t].name, p };
        }
    }
    return 0;
}

int kg_assign(enum kg_strategy s, const kg_member *members, unsigned nmembers,
              const kg_topic *topics, unsigned ntopics, kg_assignment *out)
{
    if (nmembers && (!members || !out))
        return -EINVAL;
    if (ntopics && !topics)
        return -EINVAL;
    if (s != KG_RANGE && s != KG_ROUNDROBIN && s != KG_COOPERATIVE_STICKY)
        return -EINVAL;
    for (unsigned i = 0; i < nmembers; i++)
        out[i] = (kg_assignment){ NULL, 0 };
    if (nmembers == 0)
        return 0;

    ctx c;
    int rc = ctx_init(&c, members, nmembers, topics, ntopics);
    if (rc == 0) {
        switch (s) {
        case KG_RANGE:
            assign_range(&c);
            break;
        case KG_ROUNDROBIN:
            assign_roundrobin(&c);
            break;
        case KG_COOPERATIVE_STICKY:
            rc = assign_sticky(&c);
            break;
        }
    }
    if (rc == 0)
        rc = build_output(&c, out);
    ctx_free(&c);
    if (rc)
        kg_assignment_free(out, nmembers);
    return rc;
}

void kg_assignment_free(kg_assignment *a, unsigned n)
{
    if (!a)
        return;
    for (unsigned i = 0; i < n; i++) {
        free(a[i].tp);
        a[i] = (kg_assignment){ NULL, 0 };
    }
}

static const char *const strategy_names[] = {
    [KG_RANGE] = "range",
    [KG_ROUNDROBIN] = "roundrobin",
    [KG_COOPERATIVE_STICKY] = "cooperative-sticky",
};

int kg_strategy_parse(const char *name, enum kg_strategy *out)
{
    if (!name || !out)
        return -EINVAL;
    for (unsigned i = 0; i < sizeof strategy_names / sizeof strategy_names[0]; i++) {
        if (strcmp(name, strategy_names[i]) == 0) {
            *out = (enum kg_strategy)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *kg_strategy_name(enum kg_strategy s)
{
    if ((unsigned)s >= sizeof strategy_names / sizeof strategy_names[0])
        return NULL;
    return strategy_names[s];
}

/* ---- cooperative hand-over ---------------------------------------------- */

typedef struct claim {
    kg_tp tp;
    uint32_t member;
} claim;

static int cmp_claim(const void *a, const void *b)
{
    const claim *x = a, *y = b;
    int r = cmp_tp(&x->tp, &y->tp);
    if (r)
        return r;
    return (x->member > y->member) - (x->member < y->member);
}

/* Sorted, deduplicated copy of n entries (NULL when n == 0 or on ENOMEM;
 * *m receives the count). */
static int sorted_copy(const kg_tp *tp, unsigned n, kg_tp **outp, unsigned *m)
{
    *outp = NULL;
    *m = 0;
    if (n == 0)
        return 0;
    kg_tp *v = malloc(n * sizeof *v);
    if (!v)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        if (!tp[i].topic) {
            free(v);
            return -EINVAL;
        }
        v[i] = tp[i];
    }
    qsort(v, n, sizeof *v, cmp_tp);
    unsigned w = 0;
    for (unsigned i = 0; i < n; i++)
        if (w == 0 || cmp_tp(&v[w - 1], &v[i]) != 0)
            v[w++] = v[i];
    *outp = v;
    *m = w;
    return 0;
}

/* Shrink a result array to its count (freeing it when empty). */
static void settle(kg_assignment *a, kg_tp *v, unsigned n)
{
    if (n == 0) {
        free(v);
        *a = (kg_assignment){ NULL, 0 };
        return;
    }
    kg_tp *s = realloc(v, n * sizeof *v);
    *a = (kg_assignment){ s ? s : v, n };
}

int kg_cooperative_adjust(const kg_member *members, unsigned nmembers,
                          const kg_assignment *target, kg_assignment *assign_now,
                          kg_assignment *revoke)
{
    if (nmembers && (!members || !target || !assign_now || !revoke))
        return -EINVAL;
    for (unsigned i = 0; i < nmembers; i++) {
        assign_now[i] = (kg_assignment){ NULL, 0 };
        revoke[i] = (kg_assignment){ NULL, 0 };
    }
    size_t nclaims = 0;
    for (unsigned i = 0; i < nmembers; i++) {
        if ((members[i].nowned && !members[i].owned) || (target[i].n && !target[i].tp))
            return -EINVAL;
        nclaims += members[i].nowned;
    }

    /* Every claim, sorted by (topic, partition, member). */
    int rc = 0;
    claim *cl = malloc((nclaims ? nclaims : 1) * sizeof *cl);
    if (!cl)
        return -ENOMEM;
    size_t w = 0;
    for (unsigned i = 0; i < nmembers; i++) {
        for (unsigned k = 0; k < members[i].nowned; k++) {
            if (!members[i].owned[k].topic) {
                free(cl);
                return -EINVAL;
            }
            cl[w++] = (claim){ members[i].owned[k], i };
        }
    }
    qsort(cl, nclaims, sizeof *cl, cmp_claim);

    for (unsigned i = 0; i < nmembers && rc == 0; i++) {
        kg_tp *tgt, *own;
        unsigned nt, no;
        rc = sorted_copy(target[i].tp, target[i].n, &tgt, &nt);
        if (rc)
            break;
        rc = sorted_copy(members[i].owned, members[i].nowned, &own, &no);
        if (rc) {
            free(tgt);
            break;
        }
        /* revoke: owned entries not in the target (a merge of the two
         * sorted sets), filtered in place. */
        unsigned rn = 0;
        for (unsigned k = 0, j = 0; k < no; k++) {
            while (j < nt && cmp_tp(&tgt[j], &own[k]) < 0)
                j++;
            if (j == nt || cmp_tp(&tgt[j], &own[k]) != 0)
                own[rn++] = own[k];
        }
        /* assign_now: target entries nobody else claims, or this member
         * claims itself, filtered in place. */
        unsigned an = 0;
        for (unsigned k = 0; k < nt; k++) {
            size_t lo = 0, hi = nclaims;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (cmp_tp(&cl[mid].tp, &tgt[k]) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            bool self = false, other = false;
            for (size_t j = lo; j < nclaims && cmp_tp(&cl[j].tp, &tgt[k]) == 0; j++) {
                if (cl[j].member == i)
                    self = true;
                else
                    other = true;
            }
            if (self || !other)
                tgt[an++] = tgt[k];
        }
        settle(&assign_now[i], tgt, an);
        settle(&revoke[i], own, rn);
    }
    free(cl);
    if (rc) {
        kg_assignment_free(assign_now, nmembers);
        kg_assignment_free(revoke, nmembers);
    }
    return rc;
}
