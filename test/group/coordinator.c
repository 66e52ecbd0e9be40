/*
 * The group coordinator through kg_coordinator_ops (lib/group/group.h),
 * with simulated members on the test's thread: classic (Kafka
 * JoinGroup/SyncGroup) members - leader election, protocol selection,
 * the assignment relay, generation fencing, leave, session expiry, the
 * leader's SyncGroup timeout, MEMBER_ID_REQUIRED, static takeover - and
 * native members beside them (the coordinator computes when all are native,
 * relays a classic leader's ConsumerProtocol assignment otherwise), each
 * partition assigned exactly once.
 *
 * Time is the test's: kg__set_clock gives the coordinator a clock that
 * moves only when a test moves it, and kg__tick runs the timer's work at
 * once (the timer thread runs it too, on the same clock: the outcome is the
 * same whichever runs first).
 */
#include "../api/util.h"

#include <stdatomic.h>
#include <stddef.h>

#include "common/common.h"
#include "group/cprotocol.h"
#include "group/internal.h"
#include "partition/partition.h"

static klog *K;
static kg_coordinator CO;
static kg_registry *R;
static _Atomic int64_t CLK;

static int64_t tclock(void *arg) { return atomic_load((_Atomic int64_t *)arg); }
static void advance(int64_t ms) { atomic_fetch_add(&CLK, ms); }

static void setup(void)
{
    ut_mkdir();
    K = ut_open();
    ut_topic(K, "t1", 4, NULL);
    ut_topic(K, "t2", 3, NULL);
    cr_assert_eq(kg_coordinator_local(K, &CO), 0);
    cr_assert_eq(kg_coordinator_check(CO.ops), 0);
    R = CO.self;
    atomic_store(&CLK, 1000000);
    kg__set_clock(R, tclock, &CLK);
}

static void teardown(void)
{
    klog_close(K);
    ut_rmdir();
}

TestSuite(coord, .init = setup, .fini = teardown, .timeout = 60);

#define SESSION 10000
#define REBALANCE 30000

/* ---- simulated members ------------------------------------------------------------- */

static void on_notify(void *arg) { atomic_fetch_add((_Atomic int *)arg, 1); }

/* A Kafka client: protocols (names) sharing one Subscription of topics. */
typedef struct cm {
    const char *group;
    const char *ptype;          /* NULL: "consumer" */
    const char *protos[4];
    unsigned nprotos;
    const char *topics[4];
    unsigned ntopics;
    const char *instance;
    bool require_id;
    char id[KG_ID_MAX];
    int32_t gen;
    _Atomic int notified;
} cm;

static int cjoin(cm *m, kg_join_resp *out)
{
    kg_cp_subscription s = { .version = 0, .topics = m->topics, .ntopics = m->ntopics, .user_data_len = -1 };
    uint8_t *meta;
    size_t ml;
    cr_assert_eq(kg_cp_subscription_encode(&s, &meta, &ml), 0);
    kg_protocol p[4];
    for (unsigned i = 0; i < m->nprotos; i++)
        p[i] = (kg_protocol){ m->protos[i], meta, ml };
    kg_join_req q = { .group = m->group ? m->group : "g", .member_id = m->id, .instance_id = m->instance,
                      .client_id = "kafka", .session_ms = SESSION, .rebalance_ms = REBALANCE,
                      .notify = on_notify, .notify_arg = &m->notified,
                      .protocol_type = m->ptype ? m->ptype : "consumer", .protocols = p,
                      .nprotocols = m->nprotos, .require_member_id = m->require_id };
    int rc = CO.ops->join(CO.self, &q, out);
    free(meta);
    if (rc == 0 && out->member_id[0])
        snprintf(m->id, sizeof m->id, "%s", out->member_id);
    if (rc == 0 && out->status == KG_STABLE)
        m->gen = out->generation;
    return rc;
}

/* Join and expect the answer now: status st (and, when KG_STABLE, leader
 * and member count). */
static void cjoin_expect(cm *m, enum kg_status st, const cm *leader, unsigned nmembers)
{
    kg_join_resp r;
    int rc = cjoin(m, &r);
    cr_assert_eq(rc, 0, "join: %s", klog_err_name(rc));
    cr_assert_eq(r.status, st, "join status %d, expected %d", r.status, st);
    if (st == KG_STABLE) {
        cr_assert_str_eq(r.leader, leader->id);
        cr_assert_eq(r.nmembers, nmembers, "%u members, expected %u", r.nmembers, nmembers);
    }
    kg_join_resp_free(&r);
}

static int cbeat(cm *m)
{
    kg_beat b;
    return CO.ops->heartbeat(CO.self, m->group ? m->group : "g", m->id, m->gen, &b);
}

static int csync(cm *m, const kg_member_bytes *asg, unsigned n, kg_sync_resp *out)
{
    kg_sync_req q = { .group = m->group ? m->group : "g", .member_id = m->id, .generation = m->gen,
                      .assign = asg, .nassign = n };
    return CO.ops->sync(CO.self, &q, out);
}

/* A native member, driven through the ops as lib/group/member.c does. */
typedef struct nm {
    const char *group;
    const char *subs[4];
    unsigned nsubs;
    enum kg_strategy st;
    int64_t session, rebalance;
    char id[KG_ID_MAX];
    int32_t gen;
    kg_tp *held;
    unsigned nheld;
    bool rejoin_after;
    _Atomic int notified;
} nm;

static int njoin(nm *m)
{
    kg_join_req q = { .group = m->group ? m->group : "g", .member_id = m->id, .client_id = "native",
                      .session_ms = m->session ? m->session : SESSION,
                      .rebalance_ms = m->rebalance ? m->rebalance : REBALANCE, .notify = on_notify,
                      .notify_arg = &m->notified, .subs = m->subs, .nsubs = m->nsubs, .strategy = m->st,
                      .owned = m->held, .nowned = m->nheld, .generation = m->gen };
    kg_join_resp r;
    int rc = CO.ops->join(CO.self, &q, &r);
    if (rc == 0) {
        cr_assert_eq(r.status, KG_WAIT);
        snprintf(m->id, sizeof m->id, "%s", r.member_id);
        kg_join_resp_free(&r);
    }
    return rc;
}

/* Heartbeat; a new generation's assignment replaces what it holds. */
static int nbeat(nm *m, enum kg_status *st)
{
    kg_beat b;
    int rc = CO.ops->heartbeat(CO.self, m->group ? m->group : "g", m->id, m->gen, &b);
    if (rc < 0)
        return rc;
    if (st)
        *st = b.status;
    if (b.status == KG_STABLE && b.new_generation) {
        free(m->held);
        m->held = b.assign;
        m->nheld = b.nassign;
        m->gen = b.generation;
        m->rejoin_after = b.rejoin_after;
    }
    return 0;
}

static void nfree(nm *m)
{
    free(m->held);
    m->held = NULL;
    m->nheld = 0;
}

/* ---- assignments ------------------------------------------------------------------- */

/* Every partition of t1 (4) and t2 (3): owner count. */
typedef struct tally { int t1[4], t2[3]; } tally;

static void count(tally *t, const char *topic, int32_t p)
{
    if (!strcmp(topic, "t1") && p >= 0 && p < 4)
        t->t1[p]++;
    else if (!strcmp(topic, "t2") && p >= 0 && p < 3)
        t->t2[p]++;
    else
        cr_assert_fail("assigned %s-%d, which does not exist", topic, p);
}

static void count_bytes(tally *t, const uint8_t *b, size_t len)
{
    kg_cp_assignment a;
    cr_assert_eq(kg_cp_assignment_decode(b, len, &a), 0);
    for (uint32_t i = 0; i < a.ntopics; i++)
        for (uint32_t j = 0; j < a.topics[i].npartitions; j++)
            count(t, a.topics[i].topic, a.topics[i].partitions[j]);
    kg_cp_assignment_free(&a);
}

static void expect_once(const tally *t, bool with_t2)
{
    for (int p = 0; p < 4; p++)
        cr_assert_eq(t->t1[p], 1, "t1-%d assigned %d times", p, t->t1[p]);
    for (int p = 0; p < 3; p++)
        cr_assert_eq(t->t2[p], with_t2 ? 1 : 0, "t2-%d assigned %d times", p, t->t2[p]);
}

/* The leader's part, as a Kafka client does it: decode every member's
 * Subscription, assign with range over the topics that exist, send the
 * ConsumerProtocol Assignments.  Returns sync's code, *out its answer. */
static int leader_sync(cm *leader, const kg_join_resp *jr, kg_sync_resp *out)
{
    unsigned n = jr->nmembers;
    kg_cp_subscription *subs = calloc(n, sizeof *subs);
    kg_member *mem = calloc(n, sizeof *mem);
    kg_assignment *asg = calloc(n, sizeof *asg);
    kg_member_bytes *mb = calloc(n, sizeof *mb);
    uint8_t **bytes = calloc(n, sizeof *bytes);
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(kg_cp_subscription_decode(jr->members[i].meta, jr->members[i].meta_len, &subs[i]), 0);
        mem[i] = (kg_member){ jr->members[i].member_id, jr->members[i].instance_id, subs[i].topics, subs[i].ntopics,
                              NULL, 0, -1 };
    }
    const kg_topic topics[] = { { "t1", 4 }, { "t2", 3 } };
    cr_assert_eq(kg_assign(KG_RANGE, mem, n, topics, 2, asg), 0);
    for (unsigned i = 0; i < n; i++) {
        kg_cp_topic *t;
        int nt = kg_cp_topics_from_tps(asg[i].tp, asg[i].n, &t);
        cr_assert_geq(nt, 0);
        kg_cp_assignment a = { .version = 1, .topics = t, .ntopics = (uint32_t)nt, .user_data_len = -1 };
        size_t len;
        cr_assert_eq(kg_cp_assignment_encode(&a, &bytes[i], &len), 0);
        mb[i] = (kg_member_bytes){ jr->members[i].member_id, bytes[i], len };
        free(t);
    }
    int rc = csync(leader, mb, n, out);
    for (unsigned i = 0; i < n; i++) {
        kg_cp_subscription_free(&subs[i]);
        free(bytes[i]);
    }
    kg_assignment_free(asg, n);
    free(subs);
    free(mem);
    free(asg);
    free(mb);
    free(bytes);
    return rc;
}

/* The member's answer to its join, asking until it is there. */
static void cjoin_answer(cm *m, kg_join_resp *r)
{
    cr_assert_eq(cjoin(m, r), 0);
    cr_assert_eq(r->status, KG_STABLE, "join status %d", r->status);
}

static kg_group_info describe(const char *group)
{
    kg_group_info gi;
    cr_assert_eq(CO.ops->describe(CO.self, group, &gi), 0);
    return gi;
}

/* ---- classic members --------------------------------------------------------------- */

Test(coord, classic_leader_sync_relay)
{
    cm a = { .protos = { "range", "roundrobin" }, .nprotos = 2, .topics = { "t1", "t2" }, .ntopics = 2 };
    cm b = { .protos = { "roundrobin", "range" }, .nprotos = 2, .topics = { "t1", "t2" }, .ntopics = 2 };
    /* alone: the join phase completes at once and a leads */
    kg_join_resp r;
    cjoin_answer(&a, &r);
    cr_assert_eq(r.generation, 1);
    cr_assert_str_eq(r.leader, a.id);
    cr_assert_str_eq(r.protocol, "range");
    cr_assert_str_eq(r.protocol_type, "consumer");
    cr_assert_eq(r.nmembers, 1);
    kg_join_resp_free(&r);

    /* b joins: a rebalance, b waits, a hears of it and rejoins */
    int an = atomic_load(&a.notified);
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    cr_assert(b.id[0]);
    cr_assert_gt(atomic_load(&a.notified), an);
    cr_assert_eq(cbeat(&a), KLOG_EREBALANCE);
    int bn = atomic_load(&b.notified);
    cjoin_answer(&a, &r); /* the last to rejoin: complete */
    cr_assert_eq(r.generation, 2);
    cr_assert_str_eq(r.leader, a.id);
    /* a votes range, b roundrobin: a tie, the earliest member's preference */
    cr_assert_str_eq(r.protocol, "range");
    cr_assert_eq(r.nmembers, 2);
    cr_assert_gt(atomic_load(&b.notified), bn, "the waiting member is told");

    /* b asks again for its answer: the same generation, no members list */
    cjoin_expect(&b, KG_STABLE, &a, 0);
    cr_assert_eq(b.gen, 2);
    kg_sync_resp s;
    cr_assert_eq(csync(&b, NULL, 0, &s), 0);
    cr_assert_eq(s.status, KG_WAIT, "no assignment before the leader's");
    cr_assert_eq(cbeat(&b), 0, "waiting for the leader is not a rebalance");

    bn = atomic_load(&b.notified);
    cr_assert_eq(leader_sync(&a, &r, &s), 0);
    kg_join_resp_free(&r);
    cr_assert_eq(s.status, KG_STABLE);
    tally t = { 0 };
    count_bytes(&t, s.data, s.len);
    kg_sync_resp_free(&s);
    cr_assert_gt(atomic_load(&b.notified), bn);
    cr_assert_eq(csync(&b, NULL, 0, &s), 0);
    cr_assert_eq(s.status, KG_STABLE);
    count_bytes(&t, s.data, s.len);
    kg_sync_resp_free(&s);
    expect_once(&t, true);
    cr_assert_eq(cbeat(&a), 0);
    cr_assert_eq(cbeat(&b), 0);

    /* a follower's unchanged JoinGroup while Stable: the current generation,
     * no rebalance; the leader's: a rebalance */
    cjoin_expect(&b, KG_STABLE, &a, 0);
    cr_assert_eq(b.gen, 2);
    cr_assert_eq(cbeat(&a), 0);
    cjoin_expect(&a, KG_WAIT, NULL, 0);
    cr_assert_eq(cbeat(&b), KLOG_EREBALANCE);
}

Test(coord, protocol_vote_and_inconsistent_protocol)
{
    cm a = { .ptype = "custom", .protos = { "x", "y" }, .nprotos = 2, .topics = { "t1" }, .ntopics = 1 };
    cm b = { .ptype = "custom", .protos = { "y", "x" }, .nprotos = 2, .topics = { "t1" }, .ntopics = 1 };
    cm c = { .ptype = "custom", .protos = { "y" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    cm d = { .ptype = "custom", .protos = { "z" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    cm e = { .ptype = "other", .protos = { "x" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    kg_join_resp r;
    cjoin_answer(&a, &r);
    cr_assert_str_eq(r.protocol, "x");
    cr_assert_str_eq(r.protocol_type, "custom");
    kg_join_resp_free(&r);
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    cjoin_expect(&c, KG_WAIT, NULL, 0);
    cr_assert_eq(cjoin(&d, &r), KLOG_ECONF, "no protocol in common");
    cr_assert_eq(cjoin(&e, &r), KLOG_ECONF, "another protocol type");
    cjoin_answer(&a, &r);
    /* only y is supported by all three: a votes y, b y, c y */
    cr_assert_str_eq(r.protocol, "y");
    cr_assert_eq(r.nmembers, 3);
    kg_join_resp_free(&r);
    /* c leaves: x and y again; a votes x, b votes y: the tie goes to a's x */
    cr_assert_eq(CO.ops->leave(CO.self, "g", c.id, false), 0);
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    cjoin_answer(&a, &r);
    cr_assert_str_eq(r.protocol, "x");
    kg_join_resp_free(&r);
    /* two votes for y against one for x: y */
    cm f = { .ptype = "custom", .protos = { "y", "x" }, .nprotos = 2, .topics = { "t1" }, .ntopics = 1 };
    cjoin_expect(&f, KG_WAIT, NULL, 0);
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    cjoin_answer(&a, &r);
    cr_assert_str_eq(r.protocol, "y");
    kg_join_resp_free(&r);
}

Test(coord, native_and_classic_protocols_must_meet)
{
    cm a = { .group = "g1", .protos = { "range", "roundrobin" }, .nprotos = 2, .topics = { "t1" }, .ntopics = 1 };
    kg_join_resp r;
    cjoin_answer(&a, &r);
    kg_join_resp_free(&r);
    nm n1 = { .group = "g1", .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE };
    cr_assert_eq(njoin(&n1), 0);
    nm n2 = { .group = "g1", .subs = { "t1" }, .nsubs = 1, .st = KG_COOPERATIVE_STICKY };
    cr_assert_eq(njoin(&n2), KLOG_ECONF);
    /* natives first: a client must support their strategy and type */
    nm n3 = { .group = "g2", .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE };
    cr_assert_eq(njoin(&n3), 0);
    cm b = { .group = "g2", .protos = { "roundrobin" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    cr_assert_eq(cjoin(&b, &r), KLOG_ECONF);
    cm c = { .group = "g2", .ptype = "connect", .protos = { "range" }, .nprotos = 1 };
    cr_assert_eq(cjoin(&c, &r), KLOG_ECONF);
    cm d = { .group = "g2", .protos = { "roundrobin", "range" }, .nprotos = 2, .topics = { "t1" }, .ntopics = 1 };
    cr_assert_eq(cjoin(&d, &r), 0);
    nfree(&n1);
    nfree(&n3);
}

Test(coord, generation_fencing)
{
    cm a = { .protos = { "range" }, .nprotos = 1, .topics = { "t1", "t2" }, .ntopics = 2 };
    kg_join_resp r;
    kg_sync_resp s;
    cjoin_answer(&a, &r);
    cr_assert_eq(leader_sync(&a, &r, &s), 0);
    kg_join_resp_free(&r);
    kg_sync_resp_free(&s);
    int32_t g1 = a.gen;
    kg_offset o = { "t1", 0, 5, NULL, 0 };
    cr_assert_eq(CO.ops->commit(CO.self, "g", a.id, g1, &o, 1, false), 0);
    cr_assert_eq(CO.ops->commit(CO.self, "g", a.id, g1 - 1, &o, 1, false), KLOG_EFENCED);
    cr_assert_eq(o.err, KLOG_EFENCED);
    cr_assert_eq(CO.ops->commit(CO.self, "g", "nobody", g1, &o, 1, false), KLOG_EUNKNOWN_MEMBER);
    cr_assert_eq(CO.ops->commit(CO.self, "g", NULL, -1, &o, 1, false), KLOG_ESTATE);
    a.gen = g1 - 1;
    cr_assert_eq(cbeat(&a), KLOG_EFENCED);
    cr_assert_eq(csync(&a, NULL, 0, &s), KLOG_EFENCED);
    a.gen = g1;

    /* a rebalance starts: the current generation may still commit */
    cm b = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    o.offset = 6;
    cr_assert_eq(CO.ops->commit(CO.self, "g", a.id, g1, &o, 1, false), 0);
    cr_assert_eq(cbeat(&a), KLOG_EREBALANCE);
    cr_assert_eq(csync(&a, NULL, 0, &s), KLOG_EREBALANCE);
    /* joined: the next generation, but no commits until the leader's sync */
    cjoin_answer(&a, &r);
    cr_assert_eq(a.gen, g1 + 1);
    cr_assert_eq(CO.ops->commit(CO.self, "g", a.id, a.gen, &o, 1, false), KLOG_EREBALANCE);
    cr_assert_eq(leader_sync(&a, &r, &s), 0);
    kg_join_resp_free(&r);
    kg_sync_resp_free(&s);
    cr_assert_eq(CO.ops->commit(CO.self, "g", a.id, a.gen, &o, 1, false), 0);
    cr_assert_eq(CO.ops->commit(CO.self, "g", a.id, g1, &o, 1, false), KLOG_EFENCED);
    int64_t off = -1;
    cr_assert_eq(CO.ops->committed(CO.self, "g", "t1", 0, &off, NULL, 0), 0);
    cr_assert_eq(off, 6);
}

Test(coord, leave_elects_a_new_leader)
{
    cm a = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    cm b = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    kg_join_resp r;
    kg_sync_resp s;
    cjoin_answer(&a, &r);
    kg_join_resp_free(&r);
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    cjoin_answer(&a, &r);
    cr_assert_eq(leader_sync(&a, &r, &s), 0);
    kg_join_resp_free(&r);
    kg_sync_resp_free(&s);
    cjoin_expect(&b, KG_STABLE, &a, 0);
    int bn = atomic_load(&b.notified);
    cr_assert_eq(CO.ops->leave(CO.self, "g", a.id, false), 0);
    cr_assert_eq(CO.ops->leave(CO.self, "g", a.id, false), KLOG_EUNKNOWN_MEMBER);
    cr_assert_gt(atomic_load(&b.notified), bn);
    cr_assert_eq(cbeat(&a), KLOG_EUNKNOWN_MEMBER);
    cr_assert_eq(cbeat(&b), KLOG_EREBALANCE);
    cjoin_answer(&b, &r);
    cr_assert_str_eq(r.leader, b.id);
    cr_assert_eq(r.nmembers, 1);
    cr_assert_eq(r.generation, 3);
    kg_join_resp_free(&r);
}

Test(coord, session_expiry)
{
    cm a = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    cm b = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    kg_join_resp r;
    kg_sync_resp s;
    cjoin_answer(&a, &r);
    kg_join_resp_free(&r);
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    cjoin_answer(&a, &r);
    cr_assert_eq(leader_sync(&a, &r, &s), 0);
    kg_join_resp_free(&r);
    kg_sync_resp_free(&s);
    cjoin_expect(&b, KG_STABLE, &a, 0);

    advance(SESSION / 2);
    cr_assert_eq(cbeat(&b), 0);
    kg__tick(R);
    cr_assert_eq(cbeat(&a), 0, "within its session");
    advance(SESSION / 2 + 1);
    cr_assert_eq(cbeat(&b), 0);
    advance(SESSION / 2);
    kg__tick(R); /* a silent for SESSION + 1: out; b for SESSION/2 + 1 */
    cr_assert_eq(cbeat(&a), KLOG_EUNKNOWN_MEMBER);
    cr_assert_eq(cbeat(&b), KLOG_EREBALANCE);

    /* c joins and waits for b; b stays silent: b expires, c's wait does not */
    cm c = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    cjoin_expect(&c, KG_WAIT, NULL, 0);
    advance(SESSION + 1);
    kg__tick(R);
    cr_assert_eq(cbeat(&b), KLOG_EUNKNOWN_MEMBER);
    cjoin_answer(&c, &r);
    cr_assert_str_eq(r.leader, c.id);
    cr_assert_eq(r.nmembers, 1);
    kg_join_resp_free(&r);

    /* a native member is removed after min(session, max.poll.interval) */
    nm n = { .group = "gn", .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE, .session = SESSION, .rebalance = 3000 };
    cr_assert_eq(njoin(&n), 0);
    cr_assert_eq(nbeat(&n, NULL), 0);
    cr_assert_eq(n.nheld, 4);
    advance(2999);
    kg__tick(R);
    cr_assert_eq(nbeat(&n, NULL), 0);
    advance(3001);
    kg__tick(R);
    cr_assert_eq(nbeat(&n, NULL), KLOG_EUNKNOWN_MEMBER);
    nfree(&n);
}

Test(coord, leader_that_never_syncs_is_removed)
{
    cm a = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    cm b = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    kg_join_resp r;
    kg_sync_resp s;
    cjoin_answer(&a, &r);
    kg_join_resp_free(&r);
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    cjoin_answer(&a, &r);
    kg_join_resp_free(&r);
    cjoin_expect(&b, KG_STABLE, &a, 0);
    cr_assert_eq(csync(&b, NULL, 0, &s), 0);
    cr_assert_eq(s.status, KG_WAIT);
    /* b waits for the leader longer than its session: still a member */
    advance(REBALANCE - 1);
    kg__tick(R);
    cr_assert_eq(csync(&b, NULL, 0, &s), 0);
    cr_assert_eq(s.status, KG_WAIT);
    advance(1);
    kg__tick(R);
    cr_assert_eq(cbeat(&a), KLOG_EUNKNOWN_MEMBER, "the leader that never synced is out");
    cr_assert_eq(csync(&b, NULL, 0, &s), KLOG_EREBALANCE);
    cjoin_answer(&b, &r);
    cr_assert_str_eq(r.leader, b.id);
    kg_join_resp_free(&r);
}

/* A member whose client died while its JoinGroup waited never takes the
 * answer: once the group is stable again it expires with its session, as
 * any silent member (regression: it used to stay for ever). */
Test(coord, member_that_never_takes_its_join_answer_expires)
{
    cm a = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    cm b = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    kg_join_resp r;
    kg_sync_resp s;
    cjoin_answer(&a, &r);
    kg_join_resp_free(&r);
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    cjoin_answer(&a, &r);
    cr_assert_eq(r.nmembers, 2);
    cr_assert_eq(leader_sync(&a, &r, &s), 0);
    kg_join_resp_free(&r);
    kg_sync_resp_free(&s);
    cr_assert_eq(cbeat(&a), 0);
    /* b never asks for its answer */
    advance(SESSION / 2);
    cr_assert_eq(cbeat(&a), 0);
    kg__tick(R);
    kg_group_info gi = describe("g");
    cr_assert_eq(gi.nmembers, 2, "within its session");
    kg_group_info_free(&gi);
    advance(SESSION / 2 + 1);
    cr_assert_eq(cbeat(&a), 0);
    kg__tick(R);
    cr_assert_eq(cbeat(&a), KLOG_EREBALANCE, "b is out: a rejoins");
    cjoin_answer(&a, &r);
    cr_assert_eq(r.nmembers, 1);
    kg_join_resp_free(&r);
}

Test(coord, member_id_required)
{
    cm a = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1, .require_id = true };
    kg_join_resp r;
    cr_assert_eq(cjoin(&a, &r), 0);
    cr_assert_eq(r.status, KG_MEMBER_ID_REQUIRED);
    cr_assert(a.id[0]);
    kg_group_info gi;
    cr_assert_eq(CO.ops->describe(CO.self, "g", &gi), KLOG_EUNKNOWN_GROUP, "not a member yet");
    cm x = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    snprintf(x.id, sizeof x.id, "made-up");
    cr_assert_eq(cjoin(&x, &r), KLOG_EUNKNOWN_MEMBER);
    cjoin_answer(&a, &r); /* with the id it was given */
    cr_assert_str_eq(r.leader, a.id);
    kg_join_resp_free(&r);
    /* an id handed out but not used within the session timeout lapses */
    cm b = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1, .require_id = true };
    cr_assert_eq(cjoin(&b, &r), 0);
    cr_assert_eq(r.status, KG_MEMBER_ID_REQUIRED);
    advance(SESSION + 1);
    kg__tick(R);
    cr_assert_eq(cjoin(&b, &r), KLOG_EUNKNOWN_MEMBER);
}

Test(coord, static_member_takes_over_without_rebalance)
{
    cm a = { .protos = { "range" }, .nprotos = 1, .topics = { "t1", "t2" }, .ntopics = 2, .instance = "i1" };
    cm b = { .protos = { "range" }, .nprotos = 1, .topics = { "t1", "t2" }, .ntopics = 2 };
    kg_join_resp r;
    kg_sync_resp s;
    cjoin_answer(&a, &r);
    kg_join_resp_free(&r);
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    cjoin_answer(&a, &r);
    cr_assert_eq(leader_sync(&a, &r, &s), 0);
    kg_join_resp_free(&r);
    uint8_t before[256];
    size_t blen = s.len;
    memcpy(before, s.data, s.len);
    kg_sync_resp_free(&s);
    cjoin_expect(&b, KG_STABLE, &a, 0);
    /* a restarts: same instance id, no member id */
    cm a2 = a;
    a2.id[0] = '\0';
    atomic_store(&a2.notified, 0);
    kg_join_resp r2;
    cr_assert_eq(cjoin(&a2, &r2), 0);
    cr_assert_eq(r2.status, KG_STABLE);
    cr_assert_str_neq(a2.id, a.id);
    cr_assert_eq(a2.gen, a.gen, "no new generation");
    cr_assert_str_eq(r2.leader, a2.id, "it leads in the old member's place");
    kg_join_resp_free(&r2);
    cr_assert_eq(cbeat(&b), 0, "no rebalance");
    cr_assert_eq(cbeat(&a), KLOG_EUNKNOWN_MEMBER, "the old id is fenced");
    cr_assert_eq(csync(&a2, NULL, 0, &s), 0);
    cr_assert_eq(s.status, KG_STABLE);
    cr_assert_eq(s.len, blen);
    cr_assert_arr_eq(s.data, before, blen, "its partitions back");
    kg_sync_resp_free(&s);
}

/* ---- many members, groups and offsets -------------------------------------------- */

/* The coordinator's arrays grow past their first allocation (8) and more:
 * 20 MEMBER_ID_REQUIRED ids pending at once, 20 members in one group
 * (each seen, in both descriptions), 20 groups (all listed), and one group's
 * 20 committed offsets (described, then deleted). */
Test(coord, many_members_groups_and_offsets)
{
    enum { N = 20 };
    static cm m[N];
    kg_join_resp r;
    for (int i = 0; i < N; i++) {
        m[i] = (cm){ .protos = { "range" }, .nprotos = 1, .topics = { "t1", "t2" }, .ntopics = 2,
                     .require_id = true };
        cr_assert_eq(cjoin(&m[i], &r), 0);
        cr_assert_eq(r.status, KG_MEMBER_ID_REQUIRED, "member %d", i);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(m[i].id, m[j].id);
    }
    cjoin_answer(&m[0], &r); /* the first in an empty group leads at once */
    kg_join_resp_free(&r);
    for (int i = 1; i < N; i++)
        cjoin_expect(&m[i], KG_WAIT, NULL, 0); /* every pending id is still known */
    cjoin_answer(&m[0], &r);
    cr_assert_eq(r.nmembers, N);
    for (int i = 0; i < N; i++) {
        bool seen = false;
        for (unsigned j = 0; j < r.nmembers; j++)
            seen |= !strcmp(r.members[j].member_id, m[i].id);
        cr_assert(seen, "member %d is in the leader's list", i);
    }
    kg_sync_resp s;
    cr_assert_eq(leader_sync(&m[0], &r, &s), 0);
    kg_sync_resp_free(&s);
    kg_join_resp_free(&r);
    for (int i = 1; i < N; i++)
        cjoin_expect(&m[i], KG_STABLE, &m[0], 0);
    kg_group_info gi = describe("g");
    cr_assert_eq(gi.nmembers, N);
    kg_group_info_free(&gi);
    klog_group_info *info;
    cr_assert_eq(klog_group_info_get(K, "g", &info), 0);
    cr_assert_eq(info->member_count, N);
    for (int i = 0; i < N; i++) {
        bool seen = false;
        for (size_t j = 0; j < info->member_count; j++)
            seen |= !strcmp(info->members[j]->member_id, m[i].id);
        cr_assert(seen, "member %d is in klog_group_info", i);
    }
    klog_group_info_free(info);

    /* N groups of one member each, beside "g" */
    static cm one[N];
    char names[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "h%02d", i);
        one[i] = (cm){ .group = names[i], .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
        cjoin_answer(&one[i], &r);
        kg_join_resp_free(&r);
    }
    char **list;
    size_t n;
    cr_assert_eq(kg_list(R, &list, &n), 0);
    cr_assert_eq(n, N + 1);
    cr_assert_str_eq(list[0], "g");
    for (int i = 0; i < N; i++)
        cr_assert_str_eq(list[i + 1], names[i]);
    klog_group_list_free(list, n);

    /* N committed offsets of a group with no members */
    ut_topic(K, "wide", N, NULL);
    cr_assert_eq(klog_group_reset_offsets(K, "off", "wide", -1, KLOG_RESET_EARLIEST, 0), N);
    cr_assert_eq(klog_group_info_get(K, "off", &info), 0);
    cr_assert_eq(info->offset_count, N);
    bool seen[N] = { false };
    for (size_t j = 0; j < info->offset_count; j++) {
        cr_assert_str_eq(info->offsets[j]->topic, "wide");
        cr_assert_eq(info->offsets[j]->committed, 0);
        seen[info->offsets[j]->partition] = true;
    }
    for (int p = 0; p < N; p++)
        cr_assert(seen[p], "partition %d described", p);
    klog_group_info_free(info);
    cr_assert_eq(klog_group_delete(K, "off"), 0);
    for (int p = 0; p < N; p++) {
        int64_t off = 0;
        cr_assert_eq(klog_group_committed(K, "off", "wide", p, &off), 0);
        cr_assert_eq(off, KLOG_OFFSET_NONE, "partition %d deleted", p);
    }
    cr_assert_eq(klog_group_info_get(K, "off", &info), KLOG_EUNKNOWN_GROUP);
}

Test(coord, request_caps)
{
    cm a = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    kg_join_resp r;
    kg_protocol p = { "range", (const uint8_t *)"x", KG_PROTO_META_MAX + 1 };
    kg_join_req q = { .group = "g", .session_ms = SESSION, .protocol_type = "consumer", .protocols = &p,
                      .nprotocols = 1 };
    cr_assert_eq(CO.ops->join(CO.self, &q, &r), -EINVAL, "metadata over the cap");
    p.meta_len = 1;
    q.nprotocols = 0;
    cr_assert_eq(CO.ops->join(CO.self, &q, &r), -EINVAL, "no protocol");
    q.nprotocols = KG_PROTOCOLS_MAX + 1;
    cr_assert_eq(CO.ops->join(CO.self, &q, &r), -EINVAL);
    q.nprotocols = 1;
    char longname[KG_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    p.name = longname;
    cr_assert_eq(CO.ops->join(CO.self, &q, &r), -EINVAL, "protocol name over the cap");
    p.name = "";
    cr_assert_eq(CO.ops->join(CO.self, &q, &r), -EINVAL);
    p.name = "range";
    q.protocol_type = "";
    cr_assert_eq(CO.ops->join(CO.self, &q, &r), -EINVAL);
    q.protocol_type = "consumer";
    q.group = "";
    cr_assert_eq(CO.ops->join(CO.self, &q, &r), KLOG_EBADNAME);
    kg_join_req nq = { .group = "g", .strategy = (enum kg_strategy)7 };
    cr_assert_eq(CO.ops->join(CO.self, &nq, &r), -EINVAL, "no such strategy");

    cjoin_answer(&a, &r);
    kg_join_resp_free(&r);
    kg_member_bytes big = { a.id, (const uint8_t *)"x", KG_ASSIGN_BYTES_MAX + 1 };
    kg_sync_resp s;
    cr_assert_eq(csync(&a, &big, 1, &s), -EINVAL);
    kg_member_bytes noid = { NULL, (const uint8_t *)"x", 1 };
    cr_assert_eq(csync(&a, &noid, 1, &s), -EINVAL);
    kg_sync_req sq = { .group = "g", .member_id = a.id, .generation = a.gen, .protocol = "roundrobin" };
    cr_assert_eq(CO.ops->sync(CO.self, &sq, &s), KLOG_ECONF, "SyncGroup v5 protocol check");
    sq.protocol = "range";
    sq.protocol_type = "consumer";
    cr_assert_eq(CO.ops->sync(CO.self, &sq, &s), 0);
    cr_assert_eq(s.status, KG_STABLE);
    kg_sync_resp_free(&s);
}

/* ---- native and classic members in one group ------------------------------------------- */

Test(coord, all_native_group_is_assigned_by_the_coordinator)
{
    nm n1 = { .subs = { "t1", "t2" }, .nsubs = 2, .st = KG_ROUNDROBIN };
    nm n2 = { .subs = { "^t.*" }, .nsubs = 1, .st = KG_ROUNDROBIN };
    cr_assert_eq(njoin(&n1), 0);
    cr_assert_eq(njoin(&n2), 0);
    enum kg_status st;
    cr_assert_eq(nbeat(&n1, &st), 0);
    cr_assert_eq(st, KG_REJOIN);
    cr_assert_eq(njoin(&n1), 0);
    cr_assert_eq(nbeat(&n1, &st), 0);
    cr_assert_eq(st, KG_STABLE, "no leader, no SyncGroup: stable at once");
    cr_assert_eq(nbeat(&n2, &st), 0);
    cr_assert_eq(st, KG_STABLE);
    tally t = { 0 };
    for (unsigned i = 0; i < n1.nheld; i++)
        count(&t, n1.held[i].topic, n1.held[i].partition);
    for (unsigned i = 0; i < n2.nheld; i++)
        count(&t, n2.held[i].topic, n2.held[i].partition);
    expect_once(&t, true);
    kg_group_info gi = describe("g");
    cr_assert_str_eq(gi.state, "Stable");
    cr_assert_str_eq(gi.leader, "");
    cr_assert_str_eq(gi.protocol, "roundrobin");
    cr_assert_str_eq(gi.protocol_type, "consumer");
    cr_assert_eq(gi.nmembers, 2);
    /* a native member's assignment, shown as a ConsumerProtocol Assignment */
    tally t2 = { 0 };
    for (unsigned i = 0; i < gi.nmembers; i++) {
        cr_assert(!gi.members[i].classic);
        count_bytes(&t2, gi.members[i].assign, gi.members[i].assign_len);
    }
    expect_once(&t2, true);
    kg_group_info_free(&gi);
    kg_sync_resp s;
    kg_sync_req sq = { .group = "g", .member_id = n1.id, .generation = n1.gen };
    cr_assert_eq(CO.ops->sync(CO.self, &sq, &s), -EINVAL, "native members do not sync");
    nfree(&n1);
    nfree(&n2);
}

static bool has_topic(const kg_cp_subscription *s, const char *t)
{
    for (uint32_t i = 0; i < s->ntopics; i++)
        if (!strcmp(s->topics[i], t))
            return true;
    return false;
}

/* The join answer of the member with this id, decoded. */
static void meta_of(const kg_join_resp *r, const char *id, kg_cp_subscription *out)
{
    for (unsigned i = 0; i < r->nmembers; i++)
        if (!strcmp(r->members[i].member_id, id)) {
            cr_assert_eq(kg_cp_subscription_decode(r->members[i].meta, r->members[i].meta_len, out), 0);
            return;
        }
    cr_assert_fail("%s is not in the leader's member list", id);
}

Test(coord, mixed_group_relays_the_client_leaders_assignment)
{
    nm n1 = { .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE };
    nm n2 = { .subs = { "^t.*" }, .nsubs = 1, .st = KG_RANGE };
    cm c = { .protos = { "roundrobin", "range" }, .nprotos = 2, .topics = { "t1", "t2" }, .ntopics = 2 };
    cr_assert_eq(njoin(&n1), 0);
    cr_assert_eq(njoin(&n2), 0);
    cr_assert_eq(njoin(&n1), 0); /* n2's join started a rebalance */
    cr_assert_eq(nbeat(&n1, NULL), 0);
    cr_assert_eq(nbeat(&n2, NULL), 0);
    cr_assert_eq(n1.gen, n2.gen);

    kg_join_resp r;
    cjoin_expect(&c, KG_WAIT, NULL, 0);
    enum kg_status st;
    cr_assert_eq(nbeat(&n1, &st), 0);
    cr_assert_eq(st, KG_REJOIN);
    free(n1.held), n1.held = NULL, n1.nheld = 0; /* eager: revoked before rejoining */
    cr_assert_eq(njoin(&n1), 0);
    cr_assert_eq(nbeat(&n2, &st), 0);
    cr_assert_eq(st, KG_REJOIN);
    nfree(&n2);
    int cn = atomic_load(&c.notified);
    cr_assert_eq(njoin(&n2), 0); /* everyone in: the client leads */
    cr_assert_gt(atomic_load(&c.notified), cn);
    cr_assert_eq(nbeat(&n1, &st), 0);
    cr_assert_eq(st, KG_WAIT, "natives wait for the leader's SyncGroup");

    cjoin_answer(&c, &r);
    cr_assert_str_eq(r.leader, c.id);
    cr_assert_str_eq(r.protocol, "range", "the natives' strategy is the only common one");
    cr_assert_eq(r.nmembers, 3);
    kg_cp_subscription s1, s2;
    meta_of(&r, n1.id, &s1);
    meta_of(&r, n2.id, &s2);
    cr_assert_eq(s1.version, 1);
    cr_assert_eq(s1.ntopics, 1);
    cr_assert(has_topic(&s1, "t1"));
    cr_assert_eq(s2.ntopics, 2, "the pattern, expanded to the topics it matches");
    cr_assert(has_topic(&s2, "t1") && has_topic(&s2, "t2"));
    cr_assert(!has_topic(&s2, "__consumer_offsets"));
    kg_cp_subscription_free(&s1);
    kg_cp_subscription_free(&s2);
    kg_group_info gi = describe("g");
    cr_assert_str_eq(gi.state, "CompletingRebalance");
    kg_group_info_free(&gi);

    kg_sync_resp s;
    cr_assert_eq(leader_sync(&c, &r, &s), 0);
    kg_join_resp_free(&r);
    cr_assert_eq(s.status, KG_STABLE);
    tally t = { 0 };
    count_bytes(&t, s.data, s.len);
    kg_sync_resp_free(&s);
    cr_assert_eq(nbeat(&n1, &st), 0);
    cr_assert_eq(st, KG_STABLE);
    cr_assert_eq(n1.gen, c.gen);
    cr_assert_eq(nbeat(&n2, &st), 0);
    for (unsigned i = 0; i < n1.nheld; i++) {
        cr_assert_str_eq(n1.held[i].topic, "t1", "n1 subscribes to t1 only");
        count(&t, n1.held[i].topic, n1.held[i].partition);
    }
    cr_assert_gt(n1.nheld, 0);
    for (unsigned i = 0; i < n2.nheld; i++)
        count(&t, n2.held[i].topic, n2.held[i].partition);
    expect_once(&t, true);

    gi = describe("g");
    cr_assert_str_eq(gi.state, "Stable");
    cr_assert_str_eq(gi.leader, c.id);
    cr_assert_str_eq(gi.protocol, "range");
    cr_assert_eq(gi.nmembers, 3);
    tally t2 = { 0 };
    for (unsigned i = 0; i < gi.nmembers; i++)
        count_bytes(&t2, gi.members[i].assign, gi.members[i].assign_len);
    expect_once(&t2, true);
    kg_group_info_free(&gi);

    /* the client leaves: the natives are assigned by the coordinator again */
    cr_assert_eq(CO.ops->leave(CO.self, "g", c.id, false), 0);
    cr_assert_eq(nbeat(&n1, &st), 0);
    cr_assert_eq(st, KG_REJOIN);
    cr_assert_eq(njoin(&n1), 0);
    cr_assert_eq(nbeat(&n2, &st), 0);
    cr_assert_eq(njoin(&n2), 0);
    cr_assert_eq(nbeat(&n1, &st), 0);
    cr_assert_eq(st, KG_STABLE);
    cr_assert_eq(nbeat(&n2, &st), 0);
    tally t3 = { 0 };
    for (unsigned i = 0; i < n1.nheld; i++)
        count(&t3, n1.held[i].topic, n1.held[i].partition);
    for (unsigned i = 0; i < n2.nheld; i++)
        count(&t3, n2.held[i].topic, n2.held[i].partition);
    expect_once(&t3, true);
    gi = describe("g");
    cr_assert_str_eq(gi.leader, "");
    kg_group_info_free(&gi);
    nfree(&n1);
    nfree(&n2);
}

/* The native member's part of a leader's assignment must decode: a leader
 * that sends garbage changes nothing and may send again; entries of topics
 * or partitions that do not exist here are dropped. */
Test(coord, leaders_assignment_for_a_native_member_is_checked)
{
    nm n = { .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE };
    cm c = { .protos = { "range" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    cr_assert_eq(njoin(&n), 0);
    kg_join_resp r;
    cjoin_expect(&c, KG_WAIT, NULL, 0);
    cr_assert_eq(njoin(&n), 0);
    cjoin_answer(&c, &r);
    kg_join_resp_free(&r);
    const uint8_t junk[] = { 0, 0, 0x7f, 0xff, 0xff, 0xff };
    kg_member_bytes mb[2] = { { n.id, junk, sizeof junk }, { c.id, NULL, 0 } };
    kg_sync_resp s;
    cr_assert_eq(csync(&c, mb, 2, &s), -EINVAL);
    kg_group_info gi = describe("g");
    cr_assert_str_eq(gi.state, "CompletingRebalance");
    kg_group_info_free(&gi);
    enum kg_status st;
    cr_assert_eq(nbeat(&n, &st), 0);
    cr_assert_eq(st, KG_WAIT);

    const int32_t p1[] = { 0, 2, 99 }, p2[] = { 0 };
    const kg_cp_topic t[] = { { "t1", p1, 3 }, { "nope", p2, 1 } };
    kg_cp_assignment a = { .version = 0, .topics = t, .ntopics = 2, .user_data_len = -1 };
    uint8_t *enc;
    size_t len;
    cr_assert_eq(kg_cp_assignment_encode(&a, &enc, &len), 0);
    mb[0] = (kg_member_bytes){ n.id, enc, len };
    cr_assert_eq(csync(&c, mb, 2, &s), 0);
    free(enc);
    cr_assert_eq(s.status, KG_STABLE);
    cr_assert_eq(s.len, 0, "the leader gave itself nothing");
    kg_sync_resp_free(&s);
    cr_assert_eq(nbeat(&n, &st), 0);
    cr_assert_eq(st, KG_STABLE);
    cr_assert_eq(n.nheld, 2);
    cr_assert_str_eq(n.held[0].topic, "t1");
    cr_assert_eq(n.held[0].partition, 0);
    cr_assert_eq(n.held[1].partition, 2);
    nfree(&n);
}

/* cooperative-sticky under a client leader: the native member tells what it
 * owns (Subscription v1), and when the leader takes some away it revokes
 * and rejoins, as a Kafka cooperative consumer does. */
Test(coord, cooperative_native_member_under_a_client_leader)
{
    nm n = { .subs = { "t1" }, .nsubs = 1, .st = KG_COOPERATIVE_STICKY };
    cr_assert_eq(njoin(&n), 0);
    cr_assert_eq(nbeat(&n, NULL), 0);
    cr_assert_eq(n.nheld, 4);
    cm c = { .protos = { "cooperative-sticky" }, .nprotos = 1, .topics = { "t1" }, .ntopics = 1 };
    kg_join_resp r;
    cjoin_expect(&c, KG_WAIT, NULL, 0);
    enum kg_status st;
    cr_assert_eq(nbeat(&n, &st), 0);
    cr_assert_eq(st, KG_REJOIN);
    cr_assert_eq(njoin(&n), 0); /* keeps consuming, says what it owns */
    cjoin_answer(&c, &r);
    kg_cp_subscription sub;
    meta_of(&r, n.id, &sub);
    cr_assert_eq(sub.nowned, 1);
    cr_assert_str_eq(sub.owned[0].topic, "t1");
    cr_assert_eq(sub.owned[0].npartitions, 4);
    kg_cp_subscription_free(&sub);
    kg_join_resp_free(&r);
    const int32_t keep[] = { 0, 1 };
    const kg_cp_topic t[] = { { "t1", keep, 2 } };
    kg_cp_assignment a = { .version = 1, .topics = t, .ntopics = 1, .user_data_len = -1 };
    uint8_t *enc;
    size_t len;
    cr_assert_eq(kg_cp_assignment_encode(&a, &enc, &len), 0);
    kg_member_bytes mb[1] = { { n.id, enc, len } };
    kg_sync_resp s;
    cr_assert_eq(csync(&c, mb, 1, &s), 0);
    free(enc);
    kg_sync_resp_free(&s);
    cr_assert_eq(nbeat(&n, &st), 0);
    cr_assert_eq(st, KG_STABLE);
    cr_assert_eq(n.nheld, 2);
    cr_assert(n.rejoin_after, "lost partitions: revoke, then rejoin");
    nfree(&n);
}

/* A heartbeat that completes a timed-out rebalance which removes the very
 * member beating must say so (it used to read the freed member). */
Test(coord, heartbeat_of_a_member_removed_by_its_own_beat)
{
    nm n1 = { .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE };
    nm n2 = { .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE };
    cr_assert_eq(njoin(&n1), 0);
    cr_assert_eq(njoin(&n2), 0);
    cr_assert_eq(njoin(&n1), 0);
    cr_assert_eq(nbeat(&n1, NULL), 0);
    cr_assert_eq(nbeat(&n2, NULL), 0);
    nm n3 = { .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE, .session = 3 * REBALANCE };
    n1.session = n2.session = 3 * REBALANCE;
    cr_assert_eq(njoin(&n3), 0); /* n1 and n2 do not rejoin */
    cr_assert_eq(njoin(&n1), 0);
    advance(REBALANCE);
    cr_assert_eq(nbeat(&n2, NULL), KLOG_EUNKNOWN_MEMBER);
    enum kg_status st;
    cr_assert_eq(nbeat(&n1, &st), 0);
    cr_assert_eq(st, KG_STABLE);
    nfree(&n1);
    nfree(&n2);
    nfree(&n3);
}

/* ---- the interface ---------------------------------------------------------------------- */

static int no_list(void *self, char ***names, size_t *count) { return -ENOSYS; }

Test(coord, ops_check)
{
    kg_coordinator_ops o = *CO.ops;
    cr_assert_eq(kg_coordinator_check(&o), 0);
    o.version = 1; /* no magic */
    cr_assert_eq(kg_coordinator_check(&o), -EINVAL);
    o.version = KG_COORDINATOR_MAGIC; /* version 0 */
    cr_assert_eq(kg_coordinator_check(&o), -EINVAL);
    o = *CO.ops;
    o.size = offsetof(kg_coordinator_ops, describe);
    cr_assert_eq(kg_coordinator_check(&o), -EINVAL, "too small for version 1's ops");
    o = *CO.ops;
    o.sync = NULL;
    cr_assert_eq(kg_coordinator_check(&o), -EINVAL);
    o = *CO.ops;
    o.list = no_list;
    cr_assert_eq(kg_coordinator_check(&o), 0);
    cr_assert_eq(kg_coordinator_check(NULL), -EINVAL);
    char **names;
    size_t n;
    cr_assert_eq(CO.ops->list(CO.self, &names, &n), 0);
    klog_group_list_free(names, n);
}

/* A rejoin whose subscription cannot be taken (a pattern that does not
 * compile) is refused and leaves the member's subscription as it was. */
Test(coord, refused_subscription_leaves_the_old_one)
{
    nm n = { .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE };
    cr_assert_eq(njoin(&n), 0);
    cr_assert_eq(nbeat(&n, NULL), 0);
    int32_t gen = n.gen;
    n.subs[0] = "^(";
    cr_assert_eq(njoin(&n), KLOG_ECONF);
    enum kg_status st;
    cr_assert_eq(nbeat(&n, &st), 0);
    cr_assert_eq(st, KG_STABLE, "no rebalance");
    cr_assert_eq(n.gen, gen);
    kg_group_info gi = describe("g");
    cr_assert_eq(gi.nmembers, 1);
    kg_cp_subscription s;
    cr_assert_eq(kg_cp_subscription_decode(gi.members[0].meta, gi.members[0].meta_len, &s), 0);
    cr_assert_eq(s.ntopics, 1);
    cr_assert_str_eq(s.topics[0], "t1");
    kg_cp_subscription_free(&s);
    kg_group_info_free(&gi);
    nm bad = { .subs = { "^(" }, .nsubs = 1, .st = KG_RANGE };
    cr_assert_eq(njoin(&bad), KLOG_ECONF);
    gi = describe("g");
    cr_assert_eq(gi.nmembers, 1, "the new member that could not join is not kept");
    kg_group_info_free(&gi);
    nfree(&n);
}

/* ---- generations across restarts ---------------------------------------------------- */

/* Close the instance and open it again with conf c (NULL: defaults; freed),
 * as a restarted process does: its coordinator starts over from what
 * __consumer_offsets holds. */
static void reopen(klog_conf *c)
{
    cr_assert_eq(klog_close(K), 0);
    K = NULL;
    char err[256] = "";
    int rc = klog_open(&K, ut_dir, c, err, sizeof err);
    klog_conf_free(c);
    cr_assert_eq(rc, 0, "klog_open: %s (%s)", klog_err_name(rc), err);
    cr_assert_eq(kg_coordinator_local(K, &CO), 0);
    R = CO.self;
    kg__set_clock(R, tclock, &CLK);
}

/* The generation klog_group_info_get shows (the group has offsets). */
static int32_t info_generation(const char *group)
{
    klog_group_info *gi = NULL;
    int rc = klog_group_info_get(K, group, &gi);
    cr_assert_eq(rc, 0, "info %s: %s", group, klog_err_name(rc));
    int32_t g = gi->generation;
    klog_group_info_free(gi);
    return g;
}

/* A classic member alone in its group: joined, leading, synced. */
static void classic_alone(cm *a)
{
    kg_join_resp r;
    kg_sync_resp s;
    cjoin_answer(a, &r);
    cr_assert_eq(leader_sync(a, &r, &s), 0);
    kg_join_resp_free(&r);
    kg_sync_resp_free(&s);
}

/* A native member alone in its group: joined, in a generation, committed
 * offset off of t1-0, gone again (a fresh member next time). */
static int32_t native_round(const char *group, int64_t off)
{
    nm n = { .group = group, .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE, .gen = -1 };
    cr_assert_eq(njoin(&n), 0);
    enum kg_status st;
    cr_assert_eq(nbeat(&n, &st), 0);
    cr_assert_eq(st, KG_STABLE);
    kg_offset o = { "t1", 0, off, NULL, 0 };
    cr_assert_eq(CO.ops->commit(CO.self, group, n.id, n.gen, &o, 1, false), 0);
    cr_assert_eq(CO.ops->leave(CO.self, group, n.id, false), 0);
    nfree(&n);
    return n.gen;
}

/* Regression (test_confluent_group ride_through_restart): a restarted
 * coordinator counted every group's generations from 1 again, so a Kafka
 * client that still held generation N from before the restart, and had
 * joined again under a new member id, committed with N into the new run's
 * generation N although its partitions were another member's.  The
 * generations go on from the stored ones now, so its commit is fenced. */
Test(coord, generations_continue_across_restart)
{
    /* before: "g" reaches generation 2 with two clients, "n" (native
     * members only) generation 2, "d" generation 1 and is deleted */
    cm a = { .protos = { "range" }, .nprotos = 1, .topics = { "t1", "t2" }, .ntopics = 2 };
    cm b = { .protos = { "range" }, .nprotos = 1, .topics = { "t1", "t2" }, .ntopics = 2 };
    kg_join_resp r;
    kg_sync_resp s;
    classic_alone(&a);
    cr_assert_eq(a.gen, 1, "a fresh instance counts from 1");
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    cjoin_answer(&a, &r);
    cr_assert_eq(leader_sync(&a, &r, &s), 0);
    kg_join_resp_free(&r);
    kg_sync_resp_free(&s);
    cjoin_expect(&b, KG_STABLE, &a, 0);
    cr_assert_eq(b.gen, 2);
    kg_offset o = { "t1", 0, 7, NULL, 0 };
    cr_assert_eq(CO.ops->commit(CO.self, "g", b.id, b.gen, &o, 1, false), 0);
    cr_assert_eq(native_round("n", 1), 1);
    cr_assert_eq(native_round("n", 2), 2);
    cr_assert_eq(native_round("d", 1), 1);
    cr_assert_eq(klog_group_delete(K, "d"), 0);
    cr_assert_eq(native_round("d", 2), 2, "a deleted group goes on from its generation");
    cr_assert_eq(klog_group_delete(K, "d"), 0);

    reopen(NULL);
    cr_assert_eq(info_generation("g"), 2, "the stored generation, before anyone joins");
    cr_assert_eq(CO.ops->commit(CO.self, "g", a.id, a.gen, &o, 1, false), KLOG_EUNKNOWN_MEMBER,
                 "the old run's member ids are not members");
    cr_assert_eq(CO.ops->commit(CO.self, "g", NULL, a.gen, &o, 1, false), KLOG_EUNKNOWN_MEMBER,
                 "no member id and an old generation: not a standalone commit (Kafka's rule)");
    cr_assert_eq(CO.ops->commit(CO.self, "g", "", a.gen, &o, 1, false), KLOG_EUNKNOWN_MEMBER);
    /* c joins first: the generation goes on above the old run's */
    cm c = { .protos = { "range" }, .nprotos = 1, .topics = { "t1", "t2" }, .ntopics = 2 };
    classic_alone(&c);
    cr_assert_eq(c.gen, 3);
    /* b comes back under a new member id, still holding generation 2 */
    int32_t stale = b.gen;
    b.id[0] = '\0';
    cjoin_expect(&b, KG_WAIT, NULL, 0);
    o.offset = 8;
    cr_assert_eq(CO.ops->commit(CO.self, "g", b.id, stale, &o, 1, false), KLOG_EFENCED,
                 "generation %d of the old run, in the rebalance of the new run's %d", stale, c.gen);
    cjoin_answer(&c, &r);
    cr_assert_eq(r.generation, 4);
    cr_assert_eq(leader_sync(&c, &r, &s), 0);
    kg_join_resp_free(&r);
    kg_sync_resp_free(&s);
    int32_t held = b.gen;
    b.gen = stale;
    cr_assert_eq(CO.ops->commit(CO.self, "g", b.id, stale, &o, 1, false), KLOG_EFENCED);
    cr_assert_eq(o.err, KLOG_EFENCED);
    cr_assert_eq(cbeat(&b), KLOG_EFENCED);
    cr_assert_eq(csync(&b, NULL, 0, &s), KLOG_EFENCED);
    b.gen = held;
    int64_t off = -1;
    cr_assert_eq(CO.ops->committed(CO.self, "g", "t1", 0, &off, NULL, 0), 0);
    cr_assert_eq(off, 7, "only the old run's commit");
    cjoin_expect(&b, KG_STABLE, &c, 0);
    cr_assert_eq(b.gen, 4);
    cr_assert_eq(CO.ops->commit(CO.self, "g", b.id, b.gen, &o, 1, false), 0);
    cr_assert_eq(native_round("n", 3), 3, "native members' generations go on too");
    cr_assert_eq(native_round("d", 3), 3, "and a deleted group's");
    cr_assert_eq(native_round("fresh", 1), 1, "a new group starts from 1");

    /* and again: the generations of the second run are the stored ones */
    reopen(NULL);
    cr_assert_eq(info_generation("g"), 4);
    cr_assert_eq(native_round("n", 4), 4);
    cr_assert_eq(native_round("g", 9), 5);
}

/* Walk __consumer_offsets partition 0: how many generation records (key
 * version 2) it holds for group, the last one's generation (-1 if none),
 * and the records in all. */
static void gen_records(const char *group, int *ngen, int32_t *last, int *nrec)
{
    kt_topic *t = klog__topic_get(K, KG_OFFSETS_TOPIC);
    cr_assert_not_null(t);
    kpart *part = t->parts[0];
    kf_codec *codec;
    cr_assert_eq(kf_codec_new(&codec), 0);
    *ngen = *nrec = 0;
    *last = -1;
    size_t gl = strlen(group);
    for (int64_t off = kpart_start_offset(part);;) {
        ks_view v;
        cr_assert_eq(kpart_read_log(part, off, 1u << 20, &v), 0);
        if (v.len == 0) {
            ks_view_release(&v);
            break;
        }
        for (size_t p = 0; p < v.len;) {
            kf_batch_info bi;
            ssize_t len = kf_batch_parse(v.data + p, v.len - p, &bi);
            const uint8_t *recs;
            size_t rlen;
            cr_assert_gt(len, 0);
            cr_assert_eq(kf_batch_records(v.data + p, (size_t)len, codec, &recs, &rlen), 0);
            kf_iter it;
            kf_record_view rv;
            kf_iter_init(&it, &bi, recs, rlen);
            int rc;
            while ((rc = kf_iter_next(&it, &rv)) == 1) {
                if (rv.offset < off)
                    continue;
                ++*nrec;
                if (rv.key_len == (int32_t)(3 + gl) && rv.key[0] == 2 && !memcmp(rv.key + 3, group, gl)) {
                    ++*ngen;
                    cr_assert_eq(rv.value_len, 13);
                    *last = (int32_t)klog__ld32(rv.value + 1);
                }
            }
            cr_assert_eq(rc, 0);
            p += (size_t)len;
        }
        off = v.next_offset;
        ks_view_release(&v);
    }
    kf_codec_free(codec);
    klog__topic_put(t);
}

/* __consumer_offsets is compacted: the cleaner keeps the latest generation
 * record of each group (its key is the group's alone), beside the latest
 * offsets, and a restart after cleaning goes on from it. */
Test(coord, generation_records_survive_compaction)
{
    reopen(ut_conf("log.cleaner.backoff.ms", "10", NULL));
    ut_topic(K, KG_OFFSETS_TOPIC, 1, "cleanup.policy", "compact", "segment.bytes", "4096",
             "min.cleanable.dirty.ratio", "0.01", NULL);
    cr_assert_eq(native_round("once", 1), 1); /* its only record, in the first segment */
    const int rounds = 150;
    for (int i = 1; i <= rounds; i++)
        cr_assert_eq(native_round("g", i), i);
    klog_partition_info pi = { .struct_size = sizeof pi };
    cr_assert_eq(klog_topic_describe(K, KG_OFFSETS_TOPIC, &pi, 1, NULL, 0), 1);
    cr_assert_eq(pi.end_offset, 2 * rounds + 2, "a generation record and a commit per round");

    /* the cleaner (every 10 ms) passes over all but the active segment
     * (some 20 rounds): wait until most generation records of g are gone */
    int ngen, nrec;
    int32_t last;
    int64_t give_up = ut_mono_ms() + 60000;
    for (;;) {
        gen_records("g", &ngen, &last, &nrec);
        if (ngen <= rounds / 4 || ut_mono_ms() > give_up)
            break;
        ut_sleep_ms(10);
    }
    cr_assert_leq(ngen, rounds / 4, "%d generation records of %d kept after 60 s: not compacted", ngen, rounds);
    cr_assert_eq(last, rounds, "the latest is kept");
    gen_records("once", &ngen, &last, &nrec);
    cr_assert_eq(ngen, 1, "a group's only generation record stays");
    cr_assert_eq(last, 1);

    reopen(ut_conf("log.cleaner.enable", "false", NULL));
    cr_assert_eq(info_generation("g"), rounds);
    int64_t off = -1;
    cr_assert_eq(CO.ops->committed(CO.self, "g", "t1", 0, &off, NULL, 0), 0);
    cr_assert_eq(off, rounds);
    cr_assert_eq(native_round("g", 0), rounds + 1);
    cr_assert_eq(native_round("once", 0), 2);
}

static int64_t offsets_end(void)
{
    klog_partition_info pi = { .struct_size = sizeof pi };
    cr_assert_eq(klog_topic_describe(K, KG_OFFSETS_TOPIC, &pi, 1, NULL, 0), 1);
    return pi.end_offset;
}

/* A generation record that cannot be written (the disk budget refuses the
 * append) does not stop the rebalance: the group goes on, and the
 * group's commits, which go to the same partition, are refused as well. */
Test(coord, rebalance_goes_on_when_its_generation_cannot_be_stored)
{
    reopen(ut_conf("disk.budget.bytes", "65536", "disk.budget.policy", "refuse", NULL));
    cr_assert_eq(native_round("g", 1), 1);
    /* fill the budget: large commits, then small ones, then generation
     * records of one-letter groups (the size of g's) until one is refused */
    static char meta[KG_META_MAX + 1];
    memset(meta, 'm', KG_META_MAX);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        kg_offset o = { "t1", 0, i, meta, 0 };
        rc = CO.ops->commit(CO.self, "f", NULL, -1, &o, 1, false);
    }
    cr_assert_eq(rc, KLOG_EDISKFULL, "400 KiB of commits under a 64 KiB budget: %s", klog_err_name(rc));
    rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        kg_offset o = { "t1", 0, i, NULL, 0 };
        rc = CO.ops->commit(CO.self, "f", NULL, -1, &o, 1, false);
    }
    cr_assert_eq(rc, KLOG_EDISKFULL);
    int64_t end = offsets_end();
    bool refused = false;
    for (char c = 'a'; c <= 'z' && !refused; c++) {
        nm x = { .group = (char[]){ c, '\0' }, .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE, .gen = -1 };
        cr_assert_eq(njoin(&x), 0);
        cr_assert_eq(nbeat(&x, NULL), 0);
        cr_assert_eq(x.gen, 1, "group %s: the rebalance completes", x.group);
        cr_assert_eq(CO.ops->leave(CO.self, x.group, x.id, false), 0);
        nfree(&x);
        int64_t e = offsets_end();
        refused = e == end;
        end = e;
    }
    cr_assert(refused, "26 generation records fit in what a commit did not");

    nm a = { .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE, .gen = -1 };
    nm b = { .subs = { "t1" }, .nsubs = 1, .st = KG_RANGE, .gen = -1 };
    enum kg_status st;
    cr_assert_eq(njoin(&a), 0);
    cr_assert_eq(nbeat(&a, &st), 0);
    cr_assert_eq(st, KG_STABLE);
    cr_assert_eq(a.gen, 2);
    cr_assert_eq(offsets_end(), end, "generation 2 was not stored");
    kg_offset o = { "t1", 0, 5, NULL, 0 };
    cr_assert_eq(CO.ops->commit(CO.self, "g", a.id, a.gen, &o, 1, false), KLOG_EDISKFULL);
    cr_assert_eq(njoin(&b), 0);
    cr_assert_eq(nbeat(&a, &st), 0);
    cr_assert_eq(st, KG_REJOIN);
    cr_assert_eq(njoin(&a), 0);
    cr_assert_eq(nbeat(&a, &st), 0);
    cr_assert_eq(nbeat(&b, NULL), 0);
    cr_assert_eq(st, KG_STABLE);
    cr_assert_eq(a.gen, 3);
    cr_assert_eq(b.gen, 3);
    cr_assert_eq(a.nheld + b.nheld, 4, "t1's partitions are shared out");
    nfree(&a);
    nfree(&b);
}
