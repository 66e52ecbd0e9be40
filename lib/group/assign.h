/*
 * lib/group/assign.h - partition assignment strategies for consumer groups
 * (contract).
 *
 * Pure functions: no I/O, no locks, no global state; the only side effect is
 * heap allocation of the results.  The group coordinator (lib/group) calls
 * them on the group leader's behalf once every member has joined; nothing
 * here knows about generations other than as numbers handed in.  The module
 * depends on nothing else in klog and could be lifted out as is.
 *
 * Strategies, named as Kafka names them (partition.assignment.strategy):
 *
 *   "range"               Per topic, the partitions are split into contiguous
 *                         ranges over the members subscribed to that topic,
 *                         in member order; the first (partitions % members)
 *                         members get one extra.  Kafka's RangeAssignor.
 *   "roundrobin"          All (topic, partition) pairs of subscribed topics,
 *                         sorted by topic name then partition, dealt one at a
 *                         time to the members in order, a cursor carried
 *                         across topics and skipping members not subscribed
 *                         to the partition's topic.  Kafka's
 *                         RoundRobinAssignor.
 *   "cooperative-sticky"  Balanced and sticky; see below.  The target
 *                         assignment of Kafka's CooperativeStickyAssignor;
 *                         the two-phase hand-over is kg_cooperative_adjust.
 *
 * Member order (all strategies): members with an instance_id (static
 * membership, group.instance.id) first, ordered by instance_id, then the
 * others ordered by member_id; strcmp order (Kafka compares Java strings,
 * which agrees with strcmp for ASCII ids).  Results do not depend on the
 * order in which members, topics, subscriptions or owned partitions are
 * given.
 *
 * Cooperative-sticky in detail:
 *   Previous ownership.  members[i].owned is what member i says it owned in
 *   generation members[i].generation.  A claim is dropped when the topic is
 *   unknown, no longer subscribed by that member, or the partition is out of
 *   range.  A partition claimed by several members goes to the claimant
 *   with the highest generation; if two or more claimants share that highest
 *   generation, the claim is invalid and nobody owns it (Kafka does the
 *   same: it logs an error and invalidates the partition).  A member with
 *   generation -1 is compared like any other generation.
 *   Uniform subscriptions (every member subscribes to the same set of
 *   existing topics): with P partitions and M members, exactly P % M
 *   members get ceil(P/M) partitions and the others floor(P/M).  The extra
 *   slots go first to members that own more than floor(P/M) (in member
 *   order), so the number of partitions that change owner is the minimum
 *   any balanced assignment allows: a member owning no more than floor(P/M)
 *   keeps everything; a member owning more keeps floor(P/M), or ceil(P/M)
 *   if it got an extra slot, dropping its highest (topic, partition) pairs.
 *   Unowned partitions are dealt, in (topic, partition) order, round robin
 *   over the members still under quota, in member order.
 *   Differing subscriptions (a greedy heuristic; Kafka's general sticky
 *   algorithm is a different, costlier search):
 *     1. every member keeps all its valid owned partitions;
 *     2. topics are taken fewest-subscribers first (then by name) and each
 *        unowned partition goes to the subscribed member with the fewest
 *        partitions so far (ties: member order);
 *     3. balancing rounds: per topic, a partition moves from its holder to
 *        the topic's least-loaded subscriber while the holder has at least
 *        two more partitions in total; partitions the holder did not own
 *        before are moved first.  Rounds repeat until nothing moves, at most
 *        KG_BALANCE_ROUNDS times.
 *     At the fixed point no single move of a partition to another subscriber
 *     of its topic narrows the load gap; that is Kafka's stopping criterion
 *     too, but not a global optimum (with uniform subscriptions it is the
 *     max - min <= 1 balance, which the uniform path reaches directly).
 *
 * Cost: O((M + P + S) log(M + P + S)) for M members, P partitions and S
 * subscription entries (plus O(R * (S + P log M)) for R <= KG_BALANCE_ROUNDS
 * balancing rounds in the differing-subscriptions case).  Memory O(M + P + S
 * + owned entries).
 *
 * Threading: every function is reentrant and thread-safe on distinct
 * arguments; inputs are only read.
 */
#ifndef KLOG_GROUP_ASSIGN_H
#define KLOG_GROUP_ASSIGN_H

#include <stdint.h>

/* Upper bound on the balancing rounds of cooperative-sticky with differing
 * subscriptions (see above). */
#define KG_BALANCE_ROUNDS 64

/* One partition.  topic is borrowed: in results of kg_assign it points at
 * the matching kg_topic.name; in kg_cooperative_adjust results at the string
 * of the input entry it was taken from.  Valid while those strings are. */
typedef struct kg_tp {
    const char *topic;
    int32_t partition;
} kg_tp;

/* A topic that exists, with its partition count (>= 0). */
typedef struct kg_topic {
    const char *name;
    int32_t partitions;
} kg_topic;

typedef struct kg_member {
    const char *member_id;      /* unique in the group, not NULL */
    const char *instance_id;    /* group.instance.id (static membership) or NULL */
    const char *const *topics;  /* subscribed topic names; unknown names are
                                   ignored, duplicates count once */
    unsigned ntopics;
    const kg_tp *owned;         /* what it owned in generation `generation`
                                   (cooperative-sticky), may be NULL */
    unsigned nowned;
    int32_t generation;         /* -1 if unknown */
} kg_member;

/* A member's partitions, sorted by (topic name, partition), no duplicates.
 * tp[] is owned by the assignment (free with kg_assignment_free); tp is NULL
 * when n == 0. */
typedef struct kg_assignment {
    kg_tp *tp;
    unsigned n;
} kg_assignment;

enum kg_strategy {
    KG_RANGE = 0,
    KG_ROUNDROBIN = 1,
    KG_COOPERATIVE_STICKY = 2,
};

/*
 * Compute the assignment of strategy s: out[i] receives members[i]'s
 * partitions (out must have room for nmembers entries).  Every partition of
 * every topic someone subscribes to goes to exactly one member subscribed to
 * that topic; topics nobody subscribes to are not assigned.  Deterministic:
 * the same input in any order gives the same result.  members[].owned and
 * generation are read by KG_COOPERATIVE_STICKY only.
 *
 * nmembers == 0 is valid (nothing to do).  On failure every out[i] is
 * {NULL, 0}, so kg_assignment_free(out, nmembers) is always safe.
 *
 * Returns 0, or
 *   -EINVAL  unknown strategy; NULL members/topics/out, or a member's NULL
 *            topics/owned array, with a non-zero count; a NULL member_id,
 *            topic name, subscribed name or owned topic; two members
 *            with the same member_id; two topics with the same name; a
 *            negative partition count;
 *   -ENOMEM  allocation failed.
 */
int kg_assign(enum kg_strategy s, const kg_member *members, unsigned nmembers,
              const kg_topic *topics, unsigned ntopics, kg_assignment *out);

/* Free the tp arrays of a[0..n-1] and reset each to {NULL, 0}.  NULL-safe. */
void kg_assignment_free(kg_assignment *a, unsigned n);

/* "range", "roundrobin", "cooperative-sticky" (Kafka's names, exact case)
 * -> *out.  Returns 0 or -EINVAL (unknown name, NULL argument). */
int kg_strategy_parse(const char *name, enum kg_strategy *out);

/* The Kafka name of s, or NULL for a value outside the enum. */
const char *kg_strategy_name(enum kg_strategy s);

/*
 * The cooperative (incremental) protocol's hand-over, for a target computed
 * by kg_assign (target[i] is members[i]'s):
 *
 *   revoke[i]      members[i].owned minus target[i]: what member i must give
 *                  up now (including partitions of topics that are gone).
 *   assign_now[i]  target[i] minus the partitions some OTHER member still
 *                  lists in its owned set.  A partition member i owns itself
 *                  stays in assign_now[i] even if another member claims it
 *                  too (a stale claim; the other member finds it in its
 *                  revoke list).  The withheld partitions are assigned in
 *                  the follow-up rebalance, once their owners have revoked
 *                  them and no longer report them as owned.
 *
 * Every owned claim counts, whatever its generation: a stale member may
 * still be consuming, so its partition is not handed out before it says it
 * stopped.  Both outputs are sorted by (topic, partition), duplicates
 * removed; topic strings are borrowed from target (assign_now) and from
 * members[].owned (revoke).  On failure every assign_now[i] and revoke[i]
 * is {NULL, 0}.
 *
 * Returns 0, or -EINVAL (NULL arrays with nmembers > 0, a NULL topic in an
 * owned or target entry), -ENOMEM.
 */
int kg_cooperative_adjust(const kg_member *members, unsigned nmembers,
                          const kg_assignment *target, kg_assignment *assign_now,
                          kg_assignment *revoke);

#endif /* KLOG_GROUP_ASSIGN_H */
