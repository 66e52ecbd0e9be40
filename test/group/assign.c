/*
 * Partition assignors (lib/group/assign.h): hand-computed Kafka results for
 * range, roundrobin and cooperative-sticky, argument checking, a seeded
 * property test over random groups, and a size test (1000 members x 10000
 * partitions).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "group/assign.h"

/* ---- helpers ------------------------------------------------------------ */

static int tp_cmp(const kg_tp *a, const kg_tp *b)
{
    int c = strcmp(a->topic, b->topic);
    if (c)
        return c;
    return (a->partition > b->partition) - (a->partition < b->partition);
}

static int tp_qcmp(const void *a, const void *b)
{
    return tp_cmp(a, b);
}

static void expect_tps(const kg_assignment *a, const kg_tp *want, unsigned n, const char *who)
{
    cr_assert_eq(a->n, n, "%s: %u partitions, expected %u", who, a->n, n);
    for (unsigned i = 0; i < n; i++)
        cr_assert(tp_cmp(&a->tp[i], &want[i]) == 0, "%s[%u]: got %s-%d, expected %s-%d", who, i,
                  a->tp[i].topic, a->tp[i].partition, want[i].topic, want[i].partition);
}

#define EXPECT(a, who, ...) \
    expect_tps((a), (const kg_tp[]){ __VA_ARGS__ }, \
               (unsigned)(sizeof((const kg_tp[]){ __VA_ARGS__ }) / sizeof(kg_tp)), (who))

static bool contains(const kg_assignment *a, const char *topic, int32_t p)
{
    kg_tp k = { topic, p };
    return a->n && bsearch(&k, a->tp, a->n, sizeof k, tp_qcmp) != NULL;
}

static const char *const T0[] = { "t0" };
static const char *const T01[] = { "t0", "t1" };
static const char *const T012[] = { "t0", "t1", "t2" };

/* ---- strategy names ----------------------------------------------------- */

Test(group, strategy_names)
{
    enum kg_strategy s;
    cr_assert_eq(kg_strategy_parse("range", &s), 0);
    cr_assert_eq(s, KG_RANGE);
    cr_assert_eq(kg_strategy_parse("roundrobin", &s), 0);
    cr_assert_eq(s, KG_ROUNDROBIN);
    cr_assert_eq(kg_strategy_parse("cooperative-sticky", &s), 0);
    cr_assert_eq(s, KG_COOPERATIVE_STICKY);
    for (int i = KG_RANGE; i <= KG_COOPERATIVE_STICKY; i++) {
        cr_assert_eq(kg_strategy_parse(kg_strategy_name((enum kg_strategy)i), &s), 0);
        cr_assert_eq((int)s, i);
    }
    cr_assert_eq(kg_strategy_parse("sticky", &s), -EINVAL);
    cr_assert_eq(kg_strategy_parse("Range", &s), -EINVAL);
    cr_assert_eq(kg_strategy_parse("", &s), -EINVAL);
    cr_assert_eq(kg_strategy_parse(NULL, &s), -EINVAL);
    cr_assert_eq(kg_strategy_parse("range", NULL), -EINVAL);
    cr_assert_null(kg_strategy_name((enum kg_strategy)7));
}

/* ---- range -------------------------------------------------------------- */

/* Kafka's RangeAssignor on 3 members and two topics of 7 partitions: 7 / 3
 * is 2 remainder 1, so the first member takes 3 of each topic.  Members are
 * given out of order. */
Test(group, range_three_members_seven_partitions)
{
    kg_topic topics[] = { { "t1", 7 }, { "t0", 7 } };
    kg_member m[] = {
        { .member_id = "c2", .topics = T01, .ntopics = 2, .generation = -1 },
        { .member_id = "c0", .topics = T01, .ntopics = 2, .generation = -1 },
        { .member_id = "c1", .topics = T01, .ntopics = 2, .generation = -1 },
    };
    kg_assignment out[3];
    cr_assert_eq(kg_assign(KG_RANGE, m, 3, topics, 2, out), 0);
    EXPECT(&out[1], "c0", { "t0", 0 }, { "t0", 1 }, { "t0", 2 }, { "t1", 0 }, { "t1", 1 }, { "t1", 2 });
    EXPECT(&out[2], "c1", { "t0", 3 }, { "t0", 4 }, { "t1", 3 }, { "t1", 4 });
    EXPECT(&out[0], "c2", { "t0", 5 }, { "t0", 6 }, { "t1", 5 }, { "t1", 6 });
    /* topic strings are borrowed from kg_topic.name */
    cr_assert_eq(out[1].tp[0].topic, topics[1].name);
    cr_assert_eq(out[1].tp[3].topic, topics[0].name);
    kg_assignment_free(out, 3);
}

/* Static members (group.instance.id) sort first, by instance id, whatever
 * their member ids; range is computed per topic over its subscribers only. */
Test(group, range_static_members_first_and_mixed_subscriptions)
{
    kg_topic topics[] = { { "t0", 5 }, { "t1", 3 } };
    kg_member m[] = {
        { .member_id = "a", .topics = T01, .ntopics = 2, .generation = -1 },
        { .member_id = "b", .topics = T0, .ntopics = 1, .generation = -1 },
        { .member_id = "z", .instance_id = "host-1", .topics = T01, .ntopics = 2, .generation = -1 },
    };
    kg_assignment out[3];
    cr_assert_eq(kg_assign(KG_RANGE, m, 3, topics, 2, out), 0);
    /* t0 over [z, a, b]: 2, 2, 1.  t1 over [z, a]: 2, 1. */
    EXPECT(&out[2], "z", { "t0", 0 }, { "t0", 1 }, { "t1", 0 }, { "t1", 1 });
    EXPECT(&out[0], "a", { "t0", 2 }, { "t0", 3 }, { "t1", 2 });
    EXPECT(&out[1], "b", { "t0", 4 });
    kg_assignment_free(out, 3);
}

/* ---- roundrobin --------------------------------------------------------- */

/* The two examples of Kafka's RoundRobinAssignor documentation. */
Test(group, roundrobin_identical_subscriptions)
{
    kg_topic topics[] = { { "t0", 3 }, { "t1", 3 } };
    kg_member m[] = {
        { .member_id = "C1", .topics = T01, .ntopics = 2, .generation = -1 },
        { .member_id = "C0", .topics = T01, .ntopics = 2, .generation = -1 },
    };
    kg_assignment out[2];
    cr_assert_eq(kg_assign(KG_ROUNDROBIN, m, 2, topics, 2, out), 0);
    EXPECT(&out[1], "C0", { "t0", 0 }, { "t0", 2 }, { "t1", 1 });
    EXPECT(&out[0], "C1", { "t0", 1 }, { "t1", 0 }, { "t1", 2 });
    kg_assignment_free(out, 2);
}

Test(group, roundrobin_mixed_subscriptions)
{
    kg_topic topics[] = { { "t2", 3 }, { "t1", 2 }, { "t0", 1 } };
    kg_member m[] = {
        { .member_id = "C0", .topics = T0, .ntopics = 1, .generation = -1 },
        { .member_id = "C1", .topics = T01, .ntopics = 2, .generation = -1 },
        { .member_id = "C2", .topics = T012, .ntopics = 3, .generation = -1 },
    };
    kg_assignment out[3];
    cr_assert_eq(kg_assign(KG_ROUNDROBIN, m, 3, topics, 3, out), 0);
    EXPECT(&out[0], "C0", { "t0", 0 });
    EXPECT(&out[1], "C1", { "t1", 0 });
    EXPECT(&out[2], "C2", { "t1", 1 }, { "t2", 0 }, { "t2", 1 }, { "t2", 2 });
    kg_assignment_free(out, 3);
}

/* ---- cooperative-sticky ------------------------------------------------- */

/* A fresh group: as Kafka, the partitions are dealt round robin over the
 * members; the extra partition goes to the first member. */
Test(group, sticky_fresh_group)
{
    kg_topic topics[] = { { "t0", 7 } };
    kg_member m[] = {
        { .member_id = "c0", .topics = T0, .ntopics = 1, .generation = -1 },
        { .member_id = "c1", .topics = T0, .ntopics = 1, .generation = -1 },
        { .member_id = "c2", .topics = T0, .ntopics = 1, .generation = -1 },
    };
    kg_assignment out[3];
    cr_assert_eq(kg_assign(KG_COOPERATIVE_STICKY, m, 3, topics, 1, out), 0);
    EXPECT(&out[0], "c0", { "t0", 0 }, { "t0", 3 }, { "t0", 6 });
    EXPECT(&out[1], "c1", { "t0", 1 }, { "t0", 4 });
    EXPECT(&out[2], "c2", { "t0", 2 }, { "t0", 5 });
    kg_assignment_free(out, 3);
}

/* c1 leaves a group of three: c0 and c2 keep what they had and share c1's
 * partitions; 7 over 2 is 3 remainder 1, the extra slot going to the first
 * member since neither owns more than 3. */
Test(group, sticky_member_leaves)
{
    kg_topic topics[] = { { "t0", 7 } };
    kg_tp o0[] = { { "t0", 0 }, { "t0", 3 }, { "t0", 6 } };
    kg_tp o2[] = { { "t0", 2 }, { "t0", 5 } };
    kg_member m[] = {
        { .member_id = "c0", .topics = T0, .ntopics = 1, .owned = o0, .nowned = 3, .generation = 4 },
        { .member_id = "c2", .topics = T0, .ntopics = 1, .owned = o2, .nowned = 2, .generation = 4 },
    };
    kg_assignment out[2];
    cr_assert_eq(kg_assign(KG_COOPERATIVE_STICKY, m, 2, topics, 1, out), 0);
    EXPECT(&out[0], "c0", { "t0", 0 }, { "t0", 1 }, { "t0", 3 }, { "t0", 6 });
    EXPECT(&out[1], "c2", { "t0", 2 }, { "t0", 4 }, { "t0", 5 });
    kg_assignment_free(out, 2);
}

/* A new member joins a balanced group of two owning 3 + 3: each old member
 * gives up exactly one (its highest), nothing else moves. */
Test(group, sticky_member_joins)
{
    kg_topic topics[] = { { "t0", 6 } };
    kg_tp oa[] = { { "t0", 0 }, { "t0", 2 }, { "t0", 4 } };
    kg_tp ob[] = { { "t0", 1 }, { "t0", 3 }, { "t0", 5 } };
    kg_member m[] = {
        { .member_id = "a", .topics = T0, .ntopics = 1, .owned = oa, .nowned = 3, .generation = 2 },
        { .member_id = "b", .topics = T0, .ntopics = 1, .owned = ob, .nowned = 3, .generation = 2 },
        { .member_id = "c", .topics = T0, .ntopics = 1, .generation = -1 },
    };
    kg_assignment out[3];
    cr_assert_eq(kg_assign(KG_COOPERATIVE_STICKY, m, 3, topics, 1, out), 0);
    EXPECT(&out[0], "a", { "t0", 0 }, { "t0", 2 });
    EXPECT(&out[1], "b", { "t0", 1 }, { "t0", 3 });
    EXPECT(&out[2], "c", { "t0", 4 }, { "t0", 5 });

    /* The hand-over: a and b revoke one each; c gets nothing yet, both its
     * partitions are still owned. */
    kg_assignment now[3], rev[3];
    cr_assert_eq(kg_cooperative_adjust(m, 3, out, now, rev), 0);
    EXPECT(&now[0], "a now", { "t0", 0 }, { "t0", 2 });
    EXPECT(&now[1], "b now", { "t0", 1 }, { "t0", 3 });
    cr_assert_eq(now[2].n, 0);
    cr_assert_null(now[2].tp);
    EXPECT(&rev[0], "a revoke", { "t0", 4 });
    EXPECT(&rev[1], "b revoke", { "t0", 5 });
    cr_assert_eq(rev[2].n, 0);

    /* Follow-up rebalance in the next generation, with what each member now
     * owns: the target is unchanged, nothing is revoked, c gets its two. */
    kg_member m2[3];
    memcpy(m2, m, sizeof m2);
    for (int i = 0; i < 3; i++) {
        m2[i].owned = now[i].tp;
        m2[i].nowned = now[i].n;
        m2[i].generation = 3;
    }
    kg_assignment out2[3], now2[3], rev2[3];
    cr_assert_eq(kg_assign(KG_COOPERATIVE_STICKY, m2, 3, topics, 1, out2), 0);
    for (int i = 0; i < 3; i++)
        expect_tps(&out2[i], out[i].tp, out[i].n, "round 2");
    cr_assert_eq(kg_cooperative_adjust(m2, 3, out2, now2, rev2), 0);
    for (int i = 0; i < 3; i++) {
        expect_tps(&now2[i], out[i].tp, out[i].n, "round 2 now");
        cr_assert_eq(rev2[i].n, 0);
    }
    kg_assignment_free(out2, 3);
    kg_assignment_free(now2, 3);
    kg_assignment_free(rev2, 3);
    kg_assignment_free(now, 3);
    kg_assignment_free(rev, 3);
    kg_assignment_free(out, 3);
}

/* Two members claim t0-0: the higher generation keeps it.  Both claim t0-1
 * in the same generation: nobody is sticky to it (Kafka invalidates it).
 * Claims on a deleted topic, an unsubscribed topic and a partition out of
 * range are dropped. */
Test(group, sticky_claims_resolved_by_generation)
{
    kg_topic topics[] = { { "t0", 4 }, { "t1", 2 } };
    kg_tp oa[] = { { "t0", 0 }, { "t0", 1 }, { "gone", 0 }, { "t0", 9 } };
    kg_tp ob[] = { { "t0", 0 }, { "t0", 1 }, { "t1", 0 } };
    kg_tp oc[] = { { "t0", 1 }, { "t1", 1 } };
    kg_member m[] = {
        { .member_id = "a", .topics = T0, .ntopics = 1, .owned = oa, .nowned = 4, .generation = 5 },
        { .member_id = "b", .topics = T0, .ntopics = 1, .owned = ob, .nowned = 3, .generation = 4 },
        { .member_id = "c", .topics = T01, .ntopics = 2, .owned = oc, .nowned = 2, .generation = 5 },
    };
    kg_assignment out[3];
    cr_assert_eq(kg_assign(KG_COOPERATIVE_STICKY, m, 3, topics, 2, out), 0);
    cr_assert(contains(&out[0], "t0", 0), "the newer generation keeps t0-0");
    cr_assert(contains(&out[2], "t1", 1), "c keeps t1-1");
    /* b does not subscribe to t1 any more: t1-0 cannot stay with it. */
    cr_assert(!contains(&out[1], "t1", 0));
    cr_assert_eq(out[0].n + out[1].n + out[2].n, 6);

    kg_assignment now[3], rev[3];
    cr_assert_eq(kg_cooperative_adjust(m, 3, out, now, rev), 0);
    cr_assert(contains(&rev[0], "gone", 0));
    cr_assert(contains(&rev[0], "t0", 9));
    cr_assert(contains(&rev[1], "t0", 0));
    cr_assert(contains(&rev[1], "t1", 0));
    /* a keeps t0-0 now although b still claims it: a owns it itself. */
    cr_assert(contains(&now[0], "t0", 0));
    kg_assignment_free(now, 3);
    kg_assignment_free(rev, 3);
    kg_assignment_free(out, 3);
}

/* Differing subscriptions: t_a (10) is shared by m1 and m2, t_b (10) is m2's
 * alone.  m2 used to own all of t_a; balance moves t_a to m1. */
Test(group, sticky_differing_subscriptions)
{
    static const char *const TA[] = { "t_a" };
    static const char *const TAB[] = { "t_a", "t_b" };
    kg_topic topics[] = { { "t_a", 10 }, { "t_b", 10 } };
    kg_tp owned[10];
    for (int i = 0; i < 10; i++)
        owned[i] = (kg_tp){ "t_a", i };
    kg_member m[] = {
        { .member_id = "m1", .topics = TA, .ntopics = 1, .generation = -1 },
        { .member_id = "m2", .topics = TAB, .ntopics = 2, .owned = owned, .nowned = 10, .generation = 1 },
    };
    kg_assignment out[2];
    cr_assert_eq(kg_assign(KG_COOPERATIVE_STICKY, m, 2, topics, 2, out), 0);
    cr_assert_eq(out[0].n, 10);
    cr_assert_eq(out[1].n, 10);
    for (int i = 0; i < 10; i++) {
        cr_assert(contains(&out[0], "t_a", i));
        cr_assert(contains(&out[1], "t_b", i));
    }
    kg_assignment_free(out, 2);
}

/* ---- arguments ---------------------------------------------------------- */

Test(group, invalid_arguments)
{
    kg_topic topics[] = { { "t0", 3 } };
    kg_topic dup_topics[] = { { "t0", 3 }, { "t0", 2 } };
    kg_topic neg_topics[] = { { "t0", -1 } };
    kg_topic null_topics[] = { { NULL, 1 } };
    const char *null_sub[] = { NULL };
    kg_tp bad_owned[] = { { NULL, 0 } };
    kg_member ok[] = { { .member_id = "a", .topics = T0, .ntopics = 1, .generation = -1 },
                       { .member_id = "b", .instance_id = "x", .topics = T0, .ntopics = 1, .generation = -1 } };
    kg_member dup[] = { { .member_id = "a", .instance_id = "y", .topics = T0, .ntopics = 1, .generation = -1 },
                        { .member_id = "b", .topics = T0, .ntopics = 1, .generation = -1 },
                        { .member_id = "a", .instance_id = "x", .topics = T0, .ntopics = 1, .generation = -1 } };
    kg_member noid[] = { { .member_id = NULL, .topics = T0, .ntopics = 1, .generation = -1 } };
    kg_member nullsub[] = { { .member_id = "a", .topics = null_sub, .ntopics = 1, .generation = -1 } };
    kg_member badown[] = { { .member_id = "a", .topics = T0, .ntopics = 1, .owned = bad_owned, .nowned = 1 } };
    kg_assignment out[3] = { { (kg_tp *)1, 1 }, { (kg_tp *)1, 1 }, { (kg_tp *)1, 1 } };

    for (int s = KG_RANGE; s <= KG_COOPERATIVE_STICKY; s++) {
        enum kg_strategy st = (enum kg_strategy)s;
        cr_assert_eq(kg_assign(st, dup, 3, topics, 1, out), -EINVAL);
        for (int i = 0; i < 3; i++)  /* outputs reset on failure */
            cr_assert(out[i].tp == NULL && out[i].n == 0);
        cr_assert_eq(kg_assign(st, ok, 2, dup_topics, 2, out), -EINVAL);
        cr_assert_eq(kg_assign(st, ok, 2, neg_topics, 1, out), -EINVAL);
        cr_assert_eq(kg_assign(st, ok, 2, null_topics, 1, out), -EINVAL);
        cr_assert_eq(kg_assign(st, noid, 1, topics, 1, out), -EINVAL);
        cr_assert_eq(kg_assign(st, nullsub, 1, topics, 1, out), -EINVAL);
        cr_assert_eq(kg_assign(st, badown, 1, topics, 1, out), -EINVAL);
        cr_assert_eq(kg_assign(st, NULL, 2, topics, 1, out), -EINVAL);
        cr_assert_eq(kg_assign(st, ok, 2, NULL, 1, out), -EINVAL);
        cr_assert_eq(kg_assign(st, ok, 2, topics, 1, NULL), -EINVAL);
        /* nothing to do is fine */
        cr_assert_eq(kg_assign(st, NULL, 0, topics, 1, NULL), 0);
        cr_assert_eq(kg_assign(st, ok, 2, NULL, 0, out), 0);
        cr_assert(out[0].n == 0 && out[1].n == 0);
    }
    cr_assert_eq(kg_assign((enum kg_strategy)9, ok, 2, topics, 1, out), -EINVAL);

    kg_assignment target[1] = { { NULL, 0 } }, now[1], rev[1];
    cr_assert_eq(kg_cooperative_adjust(badown, 1, target, now, rev), -EINVAL);
    cr_assert_eq(kg_cooperative_adjust(ok, 1, NULL, now, rev), -EINVAL);
    cr_assert_eq(kg_cooperative_adjust(NULL, 0, NULL, NULL, NULL), 0);
    kg_assignment_free(NULL, 5);
}

/* Members that subscribe to nothing that exists get nothing; a topic nobody
 * subscribes to is not assigned. */
Test(group, unsubscribed_topics_and_idle_members)
{
    static const char *const GHOST[] = { "ghost" };
    kg_topic topics[] = { { "t0", 2 }, { "t1", 4 } };
    kg_member m[] = {
        { .member_id = "a", .topics = T0, .ntopics = 1, .generation = -1 },
        { .member_id = "b", .topics = GHOST, .ntopics = 1, .generation = -1 },
        { .member_id = "c", .generation = -1 },
    };
    for (int s = KG_RANGE; s <= KG_COOPERATIVE_STICKY; s++) {
        kg_assignment out[3];
        cr_assert_eq(kg_assign((enum kg_strategy)s, m, 3, topics, 2, out), 0);
        EXPECT(&out[0], "a", { "t0", 0 }, { "t0", 1 });
        cr_assert(out[1].n == 0 && out[1].tp == NULL);
        cr_assert(out[2].n == 0 && out[2].tp == NULL);
        kg_assignment_free(out, 3);
    }
}

/* ---- property test ------------------------------------------------------ */

#define MAXM 56        /* up to 50 members, +1 joining */
#define MAXT 10
#define MAXP 128       /* up to 64 partitions, +16 added, +2 out of range */
#define MAXS (MAXT + 4)
#define MAXO 1536
#define NCASES 500

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned rn(unsigned n) /* 0 .. n-1 */
{
    return (unsigned)(rnd() % n);
}

typedef struct world {
    unsigned nm, nt;
    char ids[MAXM][32];
    char inst[MAXM][32];
    char tnames[MAXT][16];
    kg_topic topics[MAXT];
    const char *subs[MAXM][MAXS];
    kg_tp own[MAXM][MAXO];
    kg_member m[MAXM];
} world;

static world W;

/* Index of topic name in tops[], or -1. */
static int tindex(const kg_topic *tops, unsigned nt, const char *name)
{
    for (unsigned t = 0; t < nt; t++)
        if (strcmp(tops[t].name, name) == 0)
            return (int)t;
    return -1;
}

static bool subscribes(const kg_member *m, const char *topic)
{
    for (unsigned k = 0; k < m->ntopics; k++)
        if (strcmp(m->topics[k], topic) == 0)
            return true;
    return false;
}

/* Bit mask of existing topics a member subscribes to. */
static unsigned submask(const kg_member *m, const kg_topic *tops, unsigned nt)
{
    unsigned mask = 0;
    for (unsigned t = 0; t < nt; t++)
        if (subscribes(m, tops[t].name))
            mask |= 1u << t;
    return mask;
}

/* Every partition of every subscribed topic exactly once, to a subscriber;
 * lists sorted without duplicates; topic strings borrowed from tops. */
static void check_valid(const kg_member *m, unsigned nm, const kg_topic *tops, unsigned nt,
                        const kg_assignment *out)
{
    static unsigned char seen[MAXT][MAXP];
    memset(seen, 0, sizeof seen);
    unsigned anyone = 0;
    for (unsigned i = 0; i < nm; i++) {
        anyone |= submask(&m[i], tops, nt);
        for (unsigned k = 0; k < out[i].n; k++) {
            const kg_tp *x = &out[i].tp[k];
            int t = tindex(tops, nt, x->topic);
            cr_assert(t >= 0, "assigned an unknown topic %s", x->topic);
            cr_assert_eq(x->topic, tops[t].name, "topic string not borrowed from kg_topic");
            cr_assert(x->partition >= 0 && x->partition < tops[t].partitions);
            cr_assert(subscribes(&m[i], x->topic), "%s got %s-%d without subscribing",
                      m[i].member_id, x->topic, x->partition);
            seen[t][x->partition]++;
            if (k)
                cr_assert(tp_cmp(&out[i].tp[k - 1], x) < 0, "unsorted or duplicate");
        }
    }
    for (unsigned t = 0; t < nt; t++)
        for (int32_t p = 0; p < tops[t].partitions; p++)
            cr_assert_eq(seen[t][p], (anyone >> t) & 1u, "%s-%d assigned %u times",
                         tops[t].name, p, seen[t][p]);
}

static void expect_same(const kg_assignment *a, const kg_assignment *b, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: sizes differ", what);
    for (unsigned k = 0; k < a->n; k++)
        cr_assert(tp_cmp(&a->tp[k], &b->tp[k]) == 0, "%s: entry %u differs", what, k);
}

/* Same input, shuffled (members, topics, each subscription and owned list):
 * same result member by member. */
static void check_deterministic(enum kg_strategy s, const kg_member *m, unsigned nm,
                                const kg_topic *tops, unsigned nt, const kg_assignment *ref)
{
    static kg_member sm[MAXM];
    static const char *ss[MAXM][MAXS];
    static kg_tp so[MAXM][MAXO];
    kg_topic st[MAXT];
    unsigned perm[MAXM];
    for (unsigned i = 0; i < nm; i++)
        perm[i] = i;
    for (unsigned i = nm; i > 1; i--) {
        unsigned j = rn(i), x = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = x;
    }
    for (unsigned j = 0; j < nm; j++) {
        const kg_member *o = &m[perm[j]];
        sm[j] = *o;
        memcpy(ss[j], o->topics, o->ntopics * sizeof *o->topics);
        for (unsigned k = o->ntopics; k > 1; k--) {
            unsigned r = rn(k);
            const char *x = ss[j][k - 1];
            ss[j][k - 1] = ss[j][r];
            ss[j][r] = x;
        }
        sm[j].topics = ss[j];
        if (o->nowned)
            memcpy(so[j], o->owned, o->nowned * sizeof *o->owned);
        for (unsigned k = o->nowned; k > 1; k--) {
            unsigned r = rn(k);
            kg_tp x = so[j][k - 1];
            so[j][k - 1] = so[j][r];
            so[j][r] = x;
        }
        sm[j].owned = o->nowned ? so[j] : NULL;
    }
    memcpy(st, tops, nt * sizeof *tops);
    for (unsigned k = nt; k > 1; k--) {
        unsigned r = rn(k);
        kg_topic x = st[k - 1];
        st[k - 1] = st[r];
        st[r] = x;
    }
    kg_assignment out[MAXM];
    cr_assert_eq(kg_assign(s, sm, nm, st, nt, out), 0);
    for (unsigned j = 0; j < nm; j++)
        expect_same(&out[j], &ref[perm[j]], "shuffled input");
    kg_assignment_free(out, nm);
}

/* Effective previous owner of each partition, computed independently of
 * the library: the claimant (still subscribed) with the highest generation;
 * -1 if none or if two share it. */
static void effective_owners(const kg_member *m, unsigned nm, const kg_topic *tops, unsigned nt,
                             int owner[MAXT][MAXP])
{
    for (unsigned t = 0; t < nt; t++) {
        for (int32_t p = 0; p < tops[t].partitions; p++) {
            int best = -1, nbest = 0;
            int32_t bgen = 0;
            for (unsigned i = 0; i < nm; i++) {
                if (!subscribes(&m[i], tops[t].name))
                    continue;
                bool claims = false;
                for (unsigned k = 0; k < m[i].nowned && !claims; k++)
                    claims = m[i].owned[k].partition == p && strcmp(m[i].owned[k].topic, tops[t].name) == 0;
                if (!claims)
                    continue;
                if (best < 0 || m[i].generation > bgen) {
                    best = (int)i;
                    bgen = m[i].generation;
                    nbest = 1;
                } else if (m[i].generation == bgen) {
                    nbest++;
                }
            }
            owner[t][p] = nbest == 1 ? best : -1;
        }
    }
}

/* Cooperative-sticky with uniform subscriptions: balance (max - min <= 1)
 * and stickiness (the fewest moves a balanced result allows). */
static void check_sticky_uniform(const kg_member *m, unsigned nm, const kg_topic *tops, unsigned nt,
                                 const kg_assignment *out)
{
    static int owner[MAXT][MAXP];
    effective_owners(m, nm, tops, nt, owner);
    unsigned mask = submask(&m[0], tops, nt);
    unsigned P = 0;
    for (unsigned t = 0; t < nt; t++)
        if (mask >> t & 1u)
            P += (unsigned)tops[t].partitions;
    unsigned minq = P / nm, extra = P % nm;
    unsigned lo = UINT32_MAX, hi = 0, over = 0, kept_total = 0, want_total = 0;
    for (unsigned i = 0; i < nm; i++) {
        unsigned o = 0, kept = 0;
        for (unsigned t = 0; t < nt; t++)
            for (int32_t p = 0; p < tops[t].partitions; p++)
                o += owner[t][p] == (int)i;
        for (unsigned k = 0; k < out[i].n; k++) {
            int t = tindex(tops, nt, out[i].tp[k].topic);
            kept += owner[t][out[i].tp[k].partition] == (int)i;
        }
        if (out[i].n < lo)
            lo = out[i].n;
        if (out[i].n > hi)
            hi = out[i].n;
        if (o <= minq)
            cr_assert_eq(kept, o, "%s owned %u <= fair share %u but kept %u", m[i].member_id, o, minq, kept);
        else
            cr_assert_geq(kept, minq, "%s kept %u of %u, less than %u", m[i].member_id, kept, o, minq);
        over += o > minq;
        kept_total += kept;
        want_total += o < minq ? o : minq;
    }
    want_total += over < extra ? over : extra;
    cr_assert_leq(hi - lo, 1, "unbalanced: %u..%u", lo, hi);
    cr_assert_eq(kept_total, want_total, "kept %u, the best balanced result keeps %u", kept_total,
                 want_total);
}

/* Cooperative-sticky with differing subscriptions: the documented fixed
 * point -- no partition's holder has 2 more than another subscriber of its
 * topic. */
static void check_sticky_local_balance(const kg_member *m, unsigned nm, const kg_topic *tops,
                                       unsigned nt, const kg_assignment *out)
{
    for (unsigned h = 0; h < nm; h++)
        for (unsigned k = 0; k < out[h].n; k++)
            for (unsigned j = 0; j < nm; j++)
                if (subscribes(&m[j], out[h].tp[k].topic))
                    cr_assert_leq(out[h].n, out[j].n + 1, "%s holds %u, %s only %u and could take %s-%d",
                                  m[h].member_id, out[h].n, m[j].member_id, out[j].n,
                                  out[h].tp[k].topic, out[h].tp[k].partition);
    (void)tops;
    (void)nt;
}

/* kg_cooperative_adjust: revoke == owned - target exactly; assign_now ==
 * target minus what another member claims, exactly. */
static void check_adjust(const kg_member *m, unsigned nm, const kg_topic *tops, unsigned nt,
                         const kg_assignment *target)
{
    static uint64_t claim[MAXT][MAXP];
    memset(claim, 0, sizeof claim);
    for (unsigned i = 0; i < nm; i++) {
        for (unsigned k = 0; k < m[i].nowned; k++) {
            int t = tindex(tops, nt, m[i].owned[k].topic);
            int32_t p = m[i].owned[k].partition;
            if (t >= 0 && p >= 0 && p < MAXP)
                claim[t][p] |= 1ull << i;
        }
    }
    kg_assignment now[MAXM], rev[MAXM];
    cr_assert_eq(kg_cooperative_adjust(m, nm, target, now, rev), 0);
    static kg_tp want[MAXO], srt[MAXO];
    for (unsigned i = 0; i < nm; i++) {
        unsigned n = 0;
        for (unsigned k = 0; k < target[i].n; k++) {
            const kg_tp *x = &target[i].tp[k];
            uint64_t c = claim[tindex(tops, nt, x->topic)][x->partition];
            if ((c >> i & 1u) || (c & ~(1ull << i)) == 0)
                want[n++] = *x;
        }
        expect_tps(&now[i], want, n, "assign_now");
        /* owned, sorted and deduplicated, minus the target */
        unsigned no = m[i].nowned;
        if (no)
            memcpy(srt, m[i].owned, no * sizeof *srt);
        qsort(srt, no, sizeof *srt, tp_qcmp);
        n = 0;
        for (unsigned k = 0; k < no; k++) {
            if (k && tp_cmp(&srt[k - 1], &srt[k]) == 0)
                continue;
            if (!contains(&target[i], srt[k].topic, srt[k].partition))
                want[n++] = srt[k];
        }
        expect_tps(&rev[i], want, n, "revoke");
    }
    kg_assignment_free(now, nm);
    kg_assignment_free(rev, nm);
}

/* Random group: nm members, nt topics of 1..64 partitions; uniform or random
 * subscriptions (with the odd unknown topic and duplicate); a quarter of the
 * members static. */
static void make_world(bool uniform)
{
    W.nm = 1 + rn(50);
    W.nt = 1 + rn(10);
    for (unsigned t = 0; t < W.nt; t++) {
        snprintf(W.tnames[t], sizeof W.tnames[t], "t%u", t);
        W.topics[t] = (kg_topic){ W.tnames[t], (int32_t)(1 + rn(64)) };
    }
    unsigned common = 1 + rn((1u << W.nt) - 1);  /* non-empty topic set */
    for (unsigned i = 0; i < W.nm; i++) {
        kg_member *m = &W.m[i];
        snprintf(W.ids[i], sizeof W.ids[i], "%c%c-%u", 'a' + rn(26), 'a' + rn(26), i);
        memset(m, 0, sizeof *m);
        m->member_id = W.ids[i];
        if (rn(4) == 0) {
            snprintf(W.inst[i], sizeof W.inst[i], "%c-%u", 'a' + rn(26), i);
            m->instance_id = W.inst[i];
        }
        unsigned set = uniform ? common : rn(1u << W.nt), n = 0;
        for (unsigned t = 0; t < W.nt; t++)
            if (set >> t & 1u)
                W.subs[i][n++] = W.tnames[t];
        if (rn(5) == 0)
            W.subs[i][n++] = "zz-unknown";
        if (n && rn(5) == 0)
            W.subs[i][n] = W.subs[i][rn(n)], n++;
        m->topics = W.subs[i];
        m->ntopics = n;
        m->generation = -1;
    }
}

/* Each member claims random partitions (some out of range, some of an
 * unknown topic, many contested) in a random generation. */
static void random_claims(void)
{
    unsigned P = 0;
    for (unsigned t = 0; t < W.nt; t++)
        P += (unsigned)W.topics[t].partitions;
    for (unsigned i = 0; i < W.nm; i++) {
        unsigned n = rn(2 * P / W.nm + 4);
        for (unsigned k = 0; k < n; k++) {
            unsigned t = rn(W.nt);
            W.own[i][k] = (kg_tp){ rn(20) ? W.tnames[t] : "zz-gone",
                                   (int32_t)rn((unsigned)W.topics[t].partitions + 2) };
        }
        W.m[i].owned = n ? W.own[i] : NULL;
        W.m[i].nowned = n;
        W.m[i].generation = (int32_t)rn(4) - 1;  /* -1 (unknown) .. 2 */
    }
}

/* Every member owns what it was assigned, in generation gen. */
static void own_from(const kg_assignment *a, int32_t gen)
{
    for (unsigned i = 0; i < W.nm; i++) {
        cr_assert_leq(a[i].n, MAXO);
        if (a[i].n)
            memcpy(W.own[i], a[i].tp, a[i].n * sizeof *a[i].tp);
        W.m[i].owned = a[i].n ? W.own[i] : NULL;
        W.m[i].nowned = a[i].n;
        W.m[i].generation = gen;
    }
}

/* Run one strategy on W and check everything that applies. */
static void run_checks(enum kg_strategy s, bool uniform_expected, kg_assignment *out)
{
    cr_assert_eq(kg_assign(s, W.m, W.nm, W.topics, W.nt, out), 0);
    check_valid(W.m, W.nm, W.topics, W.nt, out);
    check_deterministic(s, W.m, W.nm, W.topics, W.nt, out);
    bool uniform = true;
    for (unsigned i = 1; i < W.nm; i++)
        uniform &= submask(&W.m[i], W.topics, W.nt) == submask(&W.m[0], W.topics, W.nt);
    cr_assert(!uniform_expected || uniform);
    if (s == KG_ROUNDROBIN && uniform) {
        unsigned lo = UINT32_MAX, hi = 0;
        for (unsigned i = 0; i < W.nm; i++) {
            lo = out[i].n < lo ? out[i].n : lo;
            hi = out[i].n > hi ? out[i].n : hi;
        }
        cr_assert_leq(hi - lo, 1);
    }
    if (s == KG_COOPERATIVE_STICKY) {
        if (uniform)
            check_sticky_uniform(W.m, W.nm, W.topics, W.nt, out);
        else
            check_sticky_local_balance(W.m, W.nm, W.topics, W.nt, out);
        check_adjust(W.m, W.nm, W.topics, W.nt, out);
    }
}

static void property_case(uint64_t seed)
{
    rng_state = seed;
    bool uniform = rn(2) == 0;
    make_world(uniform);
    kg_assignment out[MAXM], out2[MAXM];

    for (int s = KG_RANGE; s <= KG_COOPERATIVE_STICKY; s++) {
        run_checks((enum kg_strategy)s, uniform, out);
        kg_assignment_free(out, W.nm);
    }

    /* Generation 1 from scratch, then one change, then generation 2. */
    run_checks(KG_COOPERATIVE_STICKY, uniform, out);
    unsigned nm1 = W.nm;
    own_from(out, 1);
    switch (rn(4)) {
    case 0:  /* a member leaves */
        if (W.nm > 1) {
            unsigned k = rn(W.nm);
            for (unsigned i = k; i + 1 < W.nm; i++) {
                W.m[i] = W.m[i + 1];
                memcpy(W.own[i], W.own[i + 1], W.m[i].nowned * sizeof(kg_tp));
                W.m[i].owned = W.m[i].nowned ? W.own[i] : NULL;
            }
            W.nm--;
        }
        break;
    case 1:  /* a member joins, subscribed like member 0 */
        snprintf(W.ids[W.nm], sizeof W.ids[W.nm], "new-%u", W.nm);
        W.m[W.nm] = (kg_member){ .member_id = W.ids[W.nm], .topics = W.m[0].topics,
                                 .ntopics = W.m[0].ntopics, .generation = -1 };
        W.nm++;
        break;
    case 2:  /* a topic grows */
        W.topics[rn(W.nt)].partitions += (int32_t)(1 + rn(16));
        break;
    case 3:  /* a topic is deleted (its owned partitions must be dropped) */
        if (W.nt > 1) {
            unsigned k = rn(W.nt);
            W.topics[k] = W.topics[W.nt - 1];
            W.nt--;
        }
        break;
    }
    run_checks(KG_COOPERATIVE_STICKY, false, out2);
    kg_assignment_free(out2, W.nm);
    kg_assignment_free(out, nm1);

    /* Arbitrary, contested claims. */
    random_claims();
    run_checks(KG_COOPERATIVE_STICKY, false, out);
    kg_assignment_free(out, W.nm);
}

Test(group, property_random_groups, .timeout = 120)
{
    for (uint64_t seed = 1; seed <= NCASES; seed++)
        property_case(seed * 0x5851f42d4c957f2dull);
}

/* ---- size ----------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1000 members, 100 topics x 100 partitions: each call well within a
 * second (10 s allowed under the sanitizers). */
Test(group, thousand_members_ten_thousand_partitions, .timeout = 120)
{
    enum { NM = 1000, NT = 100, NP = 100 };
    double limit = SLOW_BUILD ? 10.0 : 1.0;
    static char ids[NM][32], tn[NT][16];
    static const char *all[NT], *half[NM][NT];
    static kg_member m[NM];
    static kg_topic topics[NT];
    static kg_assignment out[NM], out2[NM];
    for (int t = 0; t < NT; t++) {
        snprintf(tn[t], sizeof tn[t], "t%03d", t);
        topics[t] = (kg_topic){ tn[t], NP };
        all[t] = tn[t];
    }
    for (int i = 0; i < NM; i++) {
        snprintf(ids[i], sizeof ids[i], "member-%04d", (i * 7919) % NM);
        m[i] = (kg_member){ .member_id = ids[i], .topics = all, .ntopics = NT, .generation = -1 };
    }
    for (int s = KG_RANGE; s <= KG_COOPERATIVE_STICKY; s++) {
        double t0 = now_s();
        cr_assert_eq(kg_assign((enum kg_strategy)s, m, NM, topics, NT, out), 0);
        double dt = now_s() - t0;
        cr_assert_lt(dt, limit, "%s took %.3f s", kg_strategy_name((enum kg_strategy)s), dt);
        if (s != KG_COOPERATIVE_STICKY)
            kg_assignment_free(out, NM);
    }
    /* A member leaves: the sticky rebalance with 10000 owned partitions. */
    for (int i = 0; i < NM; i++) {
        m[i].owned = out[i].tp;
        m[i].nowned = out[i].n;
        m[i].generation = 1;
    }
    double t0 = now_s();
    cr_assert_eq(kg_assign(KG_COOPERATIVE_STICKY, m + 1, NM - 1, topics, NT, out2), 0);
    kg_assignment now[NM], rev[NM];
    cr_assert_eq(kg_cooperative_adjust(m + 1, NM - 1, out2, now, rev), 0);
    double dt = now_s() - t0;
    cr_assert_lt(dt, limit, "sticky rebalance took %.3f s", dt);
    unsigned moved = 0;
    for (int i = 0; i < NM - 1; i++)
        moved += rev[i].n;
    cr_assert_eq(moved, 0, "only the leaver's partitions move");
    kg_assignment_free(out2, NM - 1);
    kg_assignment_free(now, NM - 1);
    kg_assignment_free(rev, NM - 1);

    /* Differing subscriptions (each member half the topics), with the
     * previous ownership: the greedy path and its balancing rounds. */
    rng_state = 42;
    for (int i = 0; i < NM; i++) {
        unsigned n = 0;
        for (int t = 0; t < NT; t++)
            if (rn(2))
                half[i][n++] = tn[t];
        m[i].topics = half[i];
        m[i].ntopics = n;
    }
    t0 = now_s();
    cr_assert_eq(kg_assign(KG_COOPERATIVE_STICKY, m, NM, topics, NT, out2), 0);
    dt = now_s() - t0;
    cr_assert_lt(dt, limit, "general sticky took %.3f s", dt);
    static unsigned char seen[NT][NP];
    for (int i = 0; i < NM; i++) {
        for (unsigned k = 0; k < out2[i].n; k++) {
            const kg_tp *x = &out2[i].tp[k];
            int t = atoi(x->topic + 1);
            cr_assert(subscribes(&m[i], x->topic));
            seen[t][x->partition]++;
        }
    }
    for (int t = 0; t < NT; t++)
        for (int p = 0; p < NP; p++)
            cr_assert_eq(seen[t][p], 1);
    kg_assignment_free(out2, NM);
    kg_assignment_free(out, NM);
}
