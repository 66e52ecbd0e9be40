/*
 * test/server/groups.c - the group APIs of klog_server in-process, with
 * klog's own encoder: the answers real clients seldom provoke (every error
 * code of the classic protocol), parked JoinGroup and SyncGroup calls
 * woken by the other members, members left when their connection or the
 * server goes, and offsets shared with the in-process API.  The clients'
 * own view (kafka-python, and a klog consumer beside it) is
 * test_groups_clients.py.
 */
#include "util.h"

#include <klog/group.h>

#include "group/group.h"

/* ---- requests ------------------------------------------------------------------- */

typedef struct member {
    klog_conn *c;
    char id[160];
    int32_t gen;
} member;

static int32_t corr_next(void)
{
    static _Atomic int32_t n = 1;
    return n++;
}

/* Send a JoinGroup (v version) with one protocol "p" of metadata meta. */
static int32_t join_send(klog_conn *c, int16_t version, const char *group, const char *member_id,
                         const char *instance, const char *ptype, const char *meta, int32_t session_ms)
{
    kk_join_group_req_protocol p = { KK_STR("p"), { (const uint8_t *)meta, (int32_t)strlen(meta) } };
    kk_join_group_req q = {
        .group_id = KK_STR(group),
        .session_timeout_ms = session_ms,
        .rebalance_timeout_ms = 30000,
        .member_id = KK_STR(member_id),
        .group_instance_id = instance ? KK_STR(instance) : KK_STR_NULL,
        .protocol_type = KK_STR(ptype),
    };
    q.protocols.v = &p;
    q.protocols.n = 1;
    int32_t id = corr_next();
    cr_assert_eq(su_send(c, KK_API_JOIN_GROUP, version, id, &q), 0);
    return id;
}

static kk_join_group_resp *join_recv(klog_conn *c, int16_t version, kk_arena *a, kk_response *r)
{
    cr_assert_eq(su_recv(c, KK_API_JOIN_GROUP, version, a, r, 20000), 0);
    return &r->body.join_group;
}

/* A new member of group through c: JoinGroup v5 without an id
 * (MEMBER_ID_REQUIRED), then with it; answered when the group completes
 * (at once for the first member).  Returns the error of the second join. */
static int16_t join_new(member *m, const char *group, const char *meta, kk_arena *a, kk_response *r)
{
    join_send(m->c, 5, group, "", NULL, "test", meta, 10000);
    kk_join_group_resp *j = join_recv(m->c, 5, a, r);
    cr_assert_eq(j->error_code, KK_ERR_MEMBER_ID_REQUIRED);
    cr_assert_gt(j->member_id.len, 0);
    snprintf(m->id, sizeof m->id, "%s", j->member_id.p);
    kk_arena_reset(a);
    join_send(m->c, 5, group, m->id, NULL, "test", meta, 10000);
    j = join_recv(m->c, 5, a, r);
    m->gen = j->generation_id;
    return j->error_code;
}

static int16_t sync_call(member *m, const char *group, int32_t gen, const kk_sync_group_req_assignment *as, int n,
                         kk_arena *a, kk_response *r)
{
    kk_sync_group_req q = { .group_id = KK_STR(group), .generation_id = gen, .member_id = KK_STR(m->id),
                            .group_instance_id = KK_STR_NULL };
    q.assignments.v = (kk_sync_group_req_assignment *)as;
    q.assignments.n = n;
    su_call(m->c, KK_API_SYNC_GROUP, 3, &q, a, r);
    return r->body.sync_group.error_code;
}

static int16_t heartbeat(klog_conn *c, const char *group, const char *id, int32_t gen, const char *instance)
{
    kk_heartbeat_req q = { KK_STR(group), gen, KK_STR(id), instance ? KK_STR(instance) : KK_STR_NULL };
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    su_call(c, KK_API_HEARTBEAT, 3, &q, &a, &r);
    int16_t err = r.body.heartbeat.error_code;
    kk_arena_reset(&a);
    return err;
}

static int16_t leave(klog_conn *c, const char *group, const char *id)
{
    kk_leave_group_req q = { KK_STR(group), KK_STR(id) };
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    su_call(c, KK_API_LEAVE_GROUP, 1, &q, &a, &r);
    int16_t err = r.body.leave_group.error_code;
    kk_arena_reset(&a);
    return err;
}

/* Commit one offset of t/partition; the partition's error. */
static int16_t commit(klog_conn *c, int16_t version, const char *group, const char *id, int32_t gen,
                      const char *topic, int32_t partition, int64_t offset, const char *meta)
{
    kk_offset_commit_req_partition p = { partition, offset, -1, meta ? KK_STR(meta) : KK_STR_NULL };
    kk_offset_commit_req_topic t = { .name = KK_STR(topic) };
    t.partitions.v = &p;
    t.partitions.n = 1;
    kk_offset_commit_req q = { .group_id = KK_STR(group), .generation_id = gen, .member_id = KK_STR(id),
                               .group_instance_id = KK_STR_NULL, .retention_time_ms = -1 };
    q.topics.v = &t;
    q.topics.n = 1;
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    su_call(c, KK_API_OFFSET_COMMIT, version, &q, &a, &r);
    cr_assert_eq(r.body.offset_commit.topics.n, 1);
    cr_assert_eq(r.body.offset_commit.topics.v[0].partitions.n, 1);
    int16_t err = r.body.offset_commit.topics.v[0].partitions.v[0].error_code;
    kk_arena_reset(&a);
    return err;
}

static int16_t describe(klog_conn *c, const char *group, kk_arena *a, kk_response *r,
                        kk_describe_groups_resp_group **out)
{
    kk_str g = KK_STR(group);
    kk_describe_groups_req q = { .include_authorized_operations = false };
    q.groups.v = &g;
    q.groups.n = 1;
    su_call(c, KK_API_DESCRIBE_GROUPS, 4, &q, a, r);
    cr_assert_eq(r->body.describe_groups.groups.n, 1);
    *out = &r->body.describe_groups.groups.v[0];
    return (*out)->error_code;
}

static int16_t delete_group(klog_conn *c, const char *group)
{
    kk_str g = KK_STR(group);
    kk_delete_groups_req q;
    q.groups_names.v = &g;
    q.groups_names.n = 1;
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    su_call(c, KK_API_DELETE_GROUPS, 1, &q, &a, &r);
    cr_assert_eq(r.body.delete_groups.results.n, 1);
    int16_t err = r.body.delete_groups.results.v[0].error_code;
    kk_arena_reset(&a);
    return err;
}

/* The instance's own view of the group's members (0 if it has none). */
static size_t members_in_process(klog *k, const char *group)
{
    klog_group_info *gi = NULL;
    int rc = klog_group_info_get(k, group, &gi);
    size_t n = rc == 0 ? gi->member_count : 0;
    klog_group_info_free(gi);
    return n;
}

/* ---- tests -------------------------------------------------------------------------- */

Test(server_groups, find_coordinator)
{
    su_env e;
    su_up(&e, NULL);
    klog_conn *c = su_dial(&e);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    kk_find_coordinator_req q = { KK_STR("g"), 0 };
    su_call(c, KK_API_FIND_COORDINATOR, 2, &q, &a, &r);
    const kk_find_coordinator_resp *f = &r.body.find_coordinator;
    cr_assert_eq(f->error_code, 0);
    cr_assert_eq(f->node_id, 0);
    cr_assert_str_eq(f->host.p, "127.0.0.1");
    char port[16];
    snprintf(port, sizeof port, ":%d", f->port);
    cr_assert(strstr(e.url, port), "%s vs %s", e.url, port);
    kk_arena_reset(&a);
    /* v0 (no key type) */
    su_call(c, KK_API_FIND_COORDINATOR, 0, &q, &a, &r);
    cr_assert_eq(r.body.find_coordinator.error_code, 0);
    kk_arena_reset(&a);
    /* transactions: not here */
    q.key_type = 1;
    su_call(c, KK_API_FIND_COORDINATOR, 2, &q, &a, &r);
    cr_assert_eq(r.body.find_coordinator.error_code, KK_ERR_COORDINATOR_NOT_AVAILABLE);
    kk_arena_reset(&a);
    q.key_type = 7;
    su_call(c, KK_API_FIND_COORDINATOR, 2, &q, &a, &r);
    cr_assert_eq(r.body.find_coordinator.error_code, KK_ERR_INVALID_REQUEST);
    kk_arena_reset(&a);
    /* no group name */
    q = (kk_find_coordinator_req){ KK_STR(""), 0 };
    su_call(c, KK_API_FIND_COORDINATOR, 2, &q, &a, &r);
    cr_assert_eq(r.body.find_coordinator.error_code, KK_ERR_INVALID_GROUP_ID);
    kk_arena_reset(&a);
    klog_conn_close(c);
    su_down(&e);
}

/* The whole classic protocol with two members on two connections: the
 * second join parks until the first rejoins, the follower's SyncGroup
 * parks until the leader's, and the errors of stale or unknown members. */
Test(server_groups, two_members_rebalance)
{
    su_env e;
    su_up(&e, NULL);
    cr_assert_eq(klog_topic_create(e.k, "t", 2, NULL, NULL, 0), 0);
    member A = { su_dial(&e), "", 0 }, B = { su_dial(&e), "", 0 };
    kk_arena a, b;
    kk_arena_init(&a, NULL, 0);
    kk_arena_init(&b, NULL, 0);
    kk_response r, rb;

    /* A alone: leader of generation 1 at once */
    cr_assert_eq(join_new(&A, "g", "metaA", &a, &r), 0);
    kk_join_group_resp *j = &r.body.join_group;
    cr_assert_eq(j->generation_id, 1);
    cr_assert_str_eq(j->leader.p, A.id);
    cr_assert_str_eq(j->protocol_name.p, "p");
    cr_assert_eq(j->members.n, 1);
    cr_assert_eq(j->members.v[0].metadata.len, 5);
    cr_assert_eq(memcmp(j->members.v[0].metadata.p, "metaA", 5), 0);
    kk_arena_reset(&a);
    kk_sync_group_req_assignment as1 = { KK_STR(A.id), { (const uint8_t *)"all", 3 } };
    cr_assert_eq(sync_call(&A, "g", 1, &as1, 1, &a, &r), 0);
    cr_assert_eq(r.body.sync_group.assignment.len, 3);
    kk_arena_reset(&a);
    cr_assert_eq(heartbeat(A.c, "g", A.id, 1, NULL), 0);

    /* B joins: its JoinGroup waits for A to rejoin */
    join_send(B.c, 5, "g", "", NULL, "test", "metaB", 10000);
    j = join_recv(B.c, 5, &b, &rb);
    cr_assert_eq(j->error_code, KK_ERR_MEMBER_ID_REQUIRED);
    snprintf(B.id, sizeof B.id, "%s", j->member_id.p);
    kk_arena_reset(&b);
    join_send(B.c, 5, "g", B.id, NULL, "test", "metaB", 10000);
    cr_assert_eq(su_recv(B.c, KK_API_JOIN_GROUP, 5, &b, &rb, 300), -ETIMEDOUT, "answered before A rejoined");
    cr_assert_eq(heartbeat(A.c, "g", A.id, 1, NULL), KK_ERR_REBALANCE_IN_PROGRESS);
    /* A may still commit what it consumed before it rejoins (Kafka's rule:
     * its generation is still the group's) */
    cr_assert_eq(commit(A.c, 7, "g", A.id, 1, "t", 0, 3, NULL), 0);
    join_send(A.c, 5, "g", A.id, NULL, "test", "metaA", 10000);
    j = join_recv(A.c, 5, &a, &r);
    cr_assert_eq(j->error_code, 0);
    cr_assert_eq(j->generation_id, 2);
    cr_assert_str_eq(j->leader.p, A.id);
    cr_assert_eq(j->members.n, 2);
    kk_join_group_resp *jb = join_recv(B.c, 5, &b, &rb);
    cr_assert_eq(jb->error_code, 0);
    cr_assert_eq(jb->generation_id, 2);
    cr_assert_str_eq(jb->leader.p, A.id);
    cr_assert_str_eq(jb->member_id.p, B.id);
    cr_assert_eq(jb->members.n, 0, "only the leader gets the members");
    kk_arena_reset(&a);
    kk_arena_reset(&b);

    /* B's SyncGroup waits for the leader's */
    kk_sync_group_req qb = { .group_id = KK_STR("g"), .generation_id = 2, .member_id = KK_STR(B.id),
                             .group_instance_id = KK_STR_NULL };
    cr_assert_eq(su_send(B.c, KK_API_SYNC_GROUP, 3, 77, &qb), 0);
    cr_assert_eq(su_recv(B.c, KK_API_SYNC_GROUP, 3, &b, &rb, 300), -ETIMEDOUT, "answered before the leader synced");
    kk_sync_group_req_assignment as2[2] = { { KK_STR(A.id), { (const uint8_t *)"p0", 2 } },
                                            { KK_STR(B.id), { (const uint8_t *)"p1!", 3 } } };
    cr_assert_eq(sync_call(&A, "g", 2, as2, 2, &a, &r), 0);
    cr_assert_eq(r.body.sync_group.assignment.len, 2);
    kk_arena_reset(&a);
    cr_assert_eq(su_recv(B.c, KK_API_SYNC_GROUP, 3, &b, &rb, 10000), 0);
    cr_assert_eq(rb.correlation_id, 77);
    cr_assert_eq(rb.body.sync_group.error_code, 0);
    cr_assert_eq(rb.body.sync_group.assignment.len, 3);
    cr_assert_eq(memcmp(rb.body.sync_group.assignment.p, "p1!", 3), 0);
    kk_arena_reset(&b);

    /* heartbeats: current, stale, unknown */
    cr_assert_eq(heartbeat(A.c, "g", A.id, 2, NULL), 0);
    cr_assert_eq(heartbeat(B.c, "g", B.id, 2, NULL), 0);
    cr_assert_eq(heartbeat(B.c, "g", B.id, 1, NULL), KK_ERR_ILLEGAL_GENERATION);
    cr_assert_eq(heartbeat(B.c, "g", "nobody", 2, NULL), KK_ERR_UNKNOWN_MEMBER_ID);
    cr_assert_eq(heartbeat(B.c, "nogroup", B.id, 2, NULL), KK_ERR_UNKNOWN_MEMBER_ID);
    cr_assert_eq(heartbeat(B.c, "", B.id, 2, NULL), KK_ERR_INVALID_GROUP_ID);
    /* a SyncGroup of a stale generation */
    cr_assert_eq(sync_call(&B, "g", 1, NULL, 0, &b, &rb), KK_ERR_ILLEGAL_GENERATION);
    kk_arena_reset(&b);

    /* DescribeGroups: Stable, both members with what they sent and got */
    kk_describe_groups_resp_group *d;
    cr_assert_eq(describe(A.c, "g", &a, &r, &d), 0);
    cr_assert_str_eq(d->group_state.p, "Stable");
    cr_assert_str_eq(d->protocol_type.p, "test");
    cr_assert_str_eq(d->protocol_data.p, "p");
    cr_assert_eq(d->members.n, 2);
    for (int i = 0; i < 2; i++) {
        kk_describe_groups_resp_member *m = &d->members.v[i];
        bool is_a = !strcmp(m->member_id.p, A.id);
        cr_assert(is_a || !strcmp(m->member_id.p, B.id));
        cr_assert_str_eq(m->client_id.p, "test");
        cr_assert_str_eq(m->client_host.p, "/127.0.0.1");
        cr_assert_eq(m->member_metadata.len, 5);
        cr_assert_eq(memcmp(m->member_metadata.p, is_a ? "metaA" : "metaB", 5), 0);
        cr_assert_eq(m->member_assignment.len, is_a ? 2 : 3);
    }
    kk_arena_reset(&a);
    cr_assert_eq(members_in_process(e.k, "g"), 2);

    /* commits: the members' go in, a stale or anonymous one does not */
    cr_assert_eq(commit(A.c, 7, "g", A.id, 2, "t", 0, 5, "m"), 0);
    cr_assert_eq(commit(B.c, 7, "g", B.id, 2, "t", 1, 6, NULL), 0);
    cr_assert_eq(commit(B.c, 7, "g", B.id, 1, "t", 1, 7, NULL), KK_ERR_ILLEGAL_GENERATION);
    cr_assert_eq(commit(B.c, 7, "g", "", -1, "t", 1, 7, NULL), KK_ERR_UNKNOWN_MEMBER_ID);
    cr_assert_eq(commit(B.c, 2, "g", "nobody", 2, "t", 1, 7, NULL), KK_ERR_UNKNOWN_MEMBER_ID);
    int64_t off = -5;
    cr_assert_eq(klog_group_committed(e.k, "g", "t", 0, &off), 0);
    cr_assert_eq(off, 5);
    cr_assert_eq(klog_group_committed(e.k, "g", "t", 1, &off), 0);
    cr_assert_eq(off, 6);

    /* a group with members is not deleted */
    cr_assert_eq(delete_group(A.c, "g"), KK_ERR_NON_EMPTY_GROUP);

    /* A leaves: B's heartbeat says rebalance, B rejoins alone and leads */
    cr_assert_eq(leave(A.c, "g", A.id), 0);
    cr_assert_eq(leave(A.c, "g", A.id), KK_ERR_UNKNOWN_MEMBER_ID);
    cr_assert_eq(heartbeat(B.c, "g", B.id, 2, NULL), KK_ERR_REBALANCE_IN_PROGRESS);
    join_send(B.c, 5, "g", B.id, NULL, "test", "metaB", 10000);
    j = join_recv(B.c, 5, &b, &rb);
    cr_assert_eq(j->error_code, 0);
    cr_assert_eq(j->generation_id, 3);
    cr_assert_str_eq(j->leader.p, B.id);
    kk_arena_reset(&b);
    cr_assert_eq(leave(B.c, "g", B.id), 0);

    /* Empty now, with offsets: Empty, and deletable once */
    cr_assert_eq(describe(A.c, "g", &a, &r, &d), 0);
    cr_assert_str_eq(d->group_state.p, "Empty");
    cr_assert_eq(d->members.n, 0);
    kk_arena_reset(&a);
    cr_assert_eq(delete_group(A.c, "g"), 0);
    cr_assert_eq(delete_group(A.c, "g"), KK_ERR_GROUP_ID_NOT_FOUND);
    cr_assert_eq(delete_group(A.c, ""), KK_ERR_INVALID_GROUP_ID);
    cr_assert_eq(describe(A.c, "g", &a, &r, &d), 0);
    cr_assert_str_eq(d->group_state.p, "Dead");
    kk_arena_reset(&a);
    klog_conn_close(A.c);
    klog_conn_close(B.c);
    su_down(&e);
}

Test(server_groups, join_errors)
{
    su_env e;
    su_up(&e, NULL);
    member A = { su_dial(&e), "", 0 };
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    /* bad group, session timeout, no protocol */
    join_send(A.c, 5, "", "", NULL, "test", "m", 10000);
    cr_assert_eq(join_recv(A.c, 5, &a, &r)->error_code, KK_ERR_INVALID_GROUP_ID);
    kk_arena_reset(&a);
    join_send(A.c, 5, "g", "", NULL, "test", "m", 0);
    cr_assert_eq(join_recv(A.c, 5, &a, &r)->error_code, KK_ERR_INVALID_SESSION_TIMEOUT);
    kk_arena_reset(&a);
    join_send(A.c, 5, "g", "", NULL, "", "m", 10000);
    cr_assert_eq(join_recv(A.c, 5, &a, &r)->error_code, KK_ERR_INCONSISTENT_GROUP_PROTOCOL);
    kk_arena_reset(&a);
    kk_join_group_req q = { .group_id = KK_STR("g"), .session_timeout_ms = 10000, .rebalance_timeout_ms = -1,
                            .member_id = KK_STR(""), .group_instance_id = KK_STR_NULL,
                            .protocol_type = KK_STR("test") };
    su_call(A.c, KK_API_JOIN_GROUP, 5, &q, &a, &r);
    cr_assert_eq(r.body.join_group.error_code, KK_ERR_INCONSISTENT_GROUP_PROTOCOL);
    kk_arena_reset(&a);
    /* a member id the group never gave */
    join_send(A.c, 5, "g", "made-up", NULL, "test", "m", 10000);
    cr_assert_eq(join_recv(A.c, 5, &a, &r)->error_code, KK_ERR_UNKNOWN_MEMBER_ID);
    kk_arena_reset(&a);

    /* JoinGroup v3 (before MEMBER_ID_REQUIRED): joined at once */
    join_send(A.c, 3, "g", "", NULL, "test", "m", 10000);
    kk_join_group_resp *j = join_recv(A.c, 3, &a, &r);
    cr_assert_eq(j->error_code, 0);
    cr_assert_eq(j->generation_id, 1);
    snprintf(A.id, sizeof A.id, "%s", j->member_id.p);
    kk_arena_reset(&a);
    /* another protocol type cannot join the group */
    member B = { su_dial(&e), "", 0 };
    join_send(B.c, 3, "g", "", NULL, "connect", "m", 10000);
    cr_assert_eq(join_recv(B.c, 3, &a, &r)->error_code, KK_ERR_INCONSISTENT_GROUP_PROTOCOL);
    kk_arena_reset(&a);
    /* a SyncGroup from a member the group does not have */
    snprintf(B.id, sizeof B.id, "nobody");
    cr_assert_eq(sync_call(&B, "g", 1, NULL, 0, &a, &r), KK_ERR_UNKNOWN_MEMBER_ID);
    kk_arena_reset(&a);
    klog_conn_close(A.c);
    klog_conn_close(B.c);
    su_down(&e);
}

/* A static member taken over by a new instance of itself: the old member
 * id is fenced (FENCED_INSTANCE_ID), as Kafka does. */
Test(server_groups, static_member_fenced)
{
    su_env e;
    su_up(&e, NULL);
    member A = { su_dial(&e), "", 0 }, A2 = { su_dial(&e), "", 0 };
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    join_send(A.c, 5, "g", "", "inst-1", "test", "m", 10000);
    kk_join_group_resp *j = join_recv(A.c, 5, &a, &r);
    cr_assert_eq(j->error_code, 0, "a static member needs no member id round");
    snprintf(A.id, sizeof A.id, "%s", j->member_id.p);
    int32_t gen = j->generation_id;
    kk_arena_reset(&a);
    kk_sync_group_req_assignment as = { KK_STR(A.id), { (const uint8_t *)"x", 1 } };
    cr_assert_eq(sync_call(&A, "g", gen, &as, 1, &a, &r), 0);
    kk_arena_reset(&a);

    join_send(A2.c, 5, "g", "", "inst-1", "test", "m", 10000);
    j = join_recv(A2.c, 5, &a, &r);
    cr_assert_eq(j->error_code, 0);
    cr_assert_str_neq(j->member_id.p, A.id);
    kk_arena_reset(&a);
    cr_assert_eq(heartbeat(A.c, "g", A.id, gen, "inst-1"), KK_ERR_FENCED_INSTANCE_ID);
    cr_assert_eq(heartbeat(A.c, "g", A.id, gen, NULL), KK_ERR_UNKNOWN_MEMBER_ID);
    klog_conn_close(A.c);
    klog_conn_close(A2.c);
    su_down(&e);
}

/* A JoinGroup parked when its connection closes: the member goes (its
 * client gave up), and the member that was waiting for it is answered. */
Test(server_groups, parked_join_of_a_closed_connection_leaves)
{
    su_env e;
    su_up(&e, NULL);
    member A = { su_dial(&e), "", 0 }, B = { su_dial(&e), "", 0 };
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    cr_assert_eq(join_new(&A, "g", "m", &a, &r), 0);
    kk_arena_reset(&a);
    kk_sync_group_req_assignment as = { KK_STR(A.id), { (const uint8_t *)"x", 1 } };
    cr_assert_eq(sync_call(&A, "g", 1, &as, 1, &a, &r), 0);
    kk_arena_reset(&a);
    /* B parks waiting for A; B's client gives up */
    join_send(B.c, 5, "g", "", NULL, "test", "m", 10000);
    kk_join_group_resp *j = join_recv(B.c, 5, &a, &r);
    snprintf(B.id, sizeof B.id, "%s", j->member_id.p);
    kk_arena_reset(&a);
    join_send(B.c, 5, "g", B.id, NULL, "test", "m", 10000);
    cr_assert_eq(su_recv(B.c, KK_API_JOIN_GROUP, 5, &a, &r, 300), -ETIMEDOUT);
    cr_assert_eq(members_in_process(e.k, "g"), 2);
    klog_conn_close(B.c);
    /* A rejoins and finds itself alone (bounded wait for the server to
     * notice the close) */
    int n = 2;
    for (int i = 0; i < 500 && (n = (int)members_in_process(e.k, "g")) == 2; i++)
        usleep(10000);
    cr_assert_eq(n, 1);
    join_send(A.c, 5, "g", A.id, NULL, "test", "m", 10000);
    j = join_recv(A.c, 5, &a, &r);
    cr_assert_eq(j->error_code, 0);
    cr_assert_eq(j->members.n, 1);
    kk_arena_reset(&a);
    klog_conn_close(A.c);
    su_down(&e);
}

/* klog_server_stop leaves the groups for the members its clients joined:
 * the in-process API sees the group empty, and a klog consumer can take
 * every partition. */
Test(server_groups, stop_leaves_members)
{
    su_env e;
    su_up(&e, NULL);
    member A = { su_dial(&e), "", 0 }, B = { su_dial(&e), "", 0 };
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    cr_assert_eq(join_new(&A, "g", "m", &a, &r), 0);
    kk_arena_reset(&a);
    /* B parked in its join at stop time */
    join_send(B.c, 5, "g", "", NULL, "test", "m", 10000);
    kk_join_group_resp *j = join_recv(B.c, 5, &a, &r);
    snprintf(B.id, sizeof B.id, "%s", j->member_id.p);
    kk_arena_reset(&a);
    join_send(B.c, 5, "g", B.id, NULL, "test", "m", 10000);
    cr_assert_eq(su_recv(B.c, KK_API_JOIN_GROUP, 5, &a, &r, 300), -ETIMEDOUT);
    cr_assert_eq(members_in_process(e.k, "g"), 2);
    cr_assert_eq(klog_server_stop(e.s), 0);
    cr_assert_eq(members_in_process(e.k, "g"), 0);
    klog_conn_close(A.c);
    klog_conn_close(B.c);
    su_down(&e);
}

Test(server_groups, offsets)
{
    su_env e;
    su_up(&e, NULL);
    cr_assert_eq(klog_topic_create(e.k, "t", 3, NULL, NULL, 0), 0);
    cr_assert_eq(klog_topic_create(e.k, "u", 1, NULL, NULL, 0), 0);
    klog_conn *c = su_dial(&e);
    /* simple commits (no member, generation -1) into a group without members */
    cr_assert_eq(commit(c, 7, "g", "", -1, "t", 0, 10, "meta"), 0);
    cr_assert_eq(commit(c, 2, "g", "", -1, "t", 2, 12, NULL), 0);
    cr_assert_eq(commit(c, 7, "g", "", -1, "u", 0, 1, NULL), 0);
    cr_assert_eq(commit(c, 7, "g", "", -1, "t", 3, 1, NULL), KK_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(commit(c, 7, "g", "", -1, "nosuch", 0, 1, NULL), KK_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(commit(c, 7, "", "", -1, "t", 0, 1, NULL), KK_ERR_INVALID_GROUP_ID);
    char *big = malloc(5000);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    cr_assert_eq(commit(c, 7, "g", "", -1, "t", 1, 1, big), KK_ERR_OFFSET_METADATA_TOO_LARGE);
    free(big);
    /* the in-process API sees them */
    int64_t off;
    cr_assert_eq(klog_group_committed(e.k, "g", "t", 0, &off), 0);
    cr_assert_eq(off, 10);

    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    /* OffsetFetch of named partitions (v1 and v5) */
    int32_t parts[3] = { 0, 1, 2 };
    kk_offset_fetch_req_topic ft = { KK_STR("t"), { parts, 3 } };
    kk_offset_fetch_req q = { .group_id = KK_STR("g") };
    q.topics.v = &ft;
    q.topics.n = 1;
    for (int16_t v = 1; v <= 5; v += 4) {
        su_call(c, KK_API_OFFSET_FETCH, v, &q, &a, &r);
        const kk_offset_fetch_resp *f = &r.body.offset_fetch;
        cr_assert_eq(f->error_code, 0);
        cr_assert_eq(f->topics.n, 1);
        cr_assert_eq(f->topics.v[0].partitions.n, 3);
        kk_offset_fetch_resp_partition *p = f->topics.v[0].partitions.v;
        cr_assert_eq(p[0].committed_offset, 10);
        cr_assert_str_eq(p[0].metadata.p, "meta");
        cr_assert_eq(p[1].committed_offset, -1);
        cr_assert_eq(p[1].error_code, 0);
        cr_assert_eq(p[2].committed_offset, 12);
        kk_arena_reset(&a);
    }
    /* every partition with an offset (topics null, v2+): t/0, t/2, u/0 */
    q.topics.v = NULL;
    q.topics.n = -1;
    su_call(c, KK_API_OFFSET_FETCH, 5, &q, &a, &r);
    const kk_offset_fetch_resp *f = &r.body.offset_fetch;
    cr_assert_eq(f->error_code, 0);
    cr_assert_eq(f->topics.n, 2);
    cr_assert_str_eq(f->topics.v[0].name.p, "t");
    cr_assert_eq(f->topics.v[0].partitions.n, 2);
    cr_assert_eq(f->topics.v[0].partitions.v[0].partition_index, 0);
    cr_assert_eq(f->topics.v[0].partitions.v[1].partition_index, 2);
    cr_assert_eq(f->topics.v[0].partitions.v[1].committed_offset, 12);
    cr_assert_str_eq(f->topics.v[1].name.p, "u");
    cr_assert_eq(f->topics.v[1].partitions.v[0].committed_offset, 1);
    kk_arena_reset(&a);
    /* a group that never committed: nothing; a bad name: INVALID_GROUP_ID */
    q.group_id = KK_STR("other");
    su_call(c, KK_API_OFFSET_FETCH, 5, &q, &a, &r);
    cr_assert_eq(r.body.offset_fetch.error_code, 0);
    cr_assert_eq(r.body.offset_fetch.topics.n, 0);
    kk_arena_reset(&a);
    q.group_id = KK_STR("");
    su_call(c, KK_API_OFFSET_FETCH, 5, &q, &a, &r);
    cr_assert_eq(r.body.offset_fetch.error_code, KK_ERR_INVALID_GROUP_ID);
    kk_arena_reset(&a);

    /* ListGroups has it; DescribeGroups says Empty */
    kk_list_groups_req lq = { 0 };
    su_call(c, KK_API_LIST_GROUPS, 2, &lq, &a, &r);
    cr_assert_eq(r.body.list_groups.error_code, 0);
    cr_assert_eq(r.body.list_groups.groups.n, 1);
    cr_assert_str_eq(r.body.list_groups.groups.v[0].group_id.p, "g");
    kk_arena_reset(&a);
    kk_describe_groups_resp_group *d;
    cr_assert_eq(describe(c, "g", &a, &r, &d), 0);
    cr_assert_str_eq(d->group_state.p, "Empty");
    kk_arena_reset(&a);
    klog_conn_close(c);
    su_down(&e);
}

/* Many members through one server, most of them removed behind its back
 * (here: left through the coordinator directly): the server's table of
 * its members is pruned against the coordinator as it grows, and stop
 * still leaves every member that is left. */
Test(server_groups, member_table_pruned_and_left_at_stop)
{
    su_env e;
    su_up(&e, NULL);
    klog_conn *c = su_dial(&e);
    kg_coordinator co;
    cr_assert_eq(kg_coordinator_local(e.k, &co), 0);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    enum { N = 150 };
    char ids[N][160];
    for (int i = 0; i < N; i++) {
        char group[16];
        snprintf(group, sizeof group, "g%d", i);
        join_send(c, 3, group, "", NULL, "test", "m", 10000);
        kk_join_group_resp *j = join_recv(c, 3, &a, &r);
        cr_assert_eq(j->error_code, 0);
        snprintf(ids[i], sizeof ids[i], "%s", j->member_id.p);
        kk_arena_reset(&a);
        /* every member but one in ten leaves without the server knowing */
        if (i % 10)
            cr_assert_eq(co.ops->leave(co.self, group, ids[i], false), 0);
    }
    for (int i = 0; i < N; i += 10) {
        char group[16];
        snprintf(group, sizeof group, "g%d", i);
        cr_assert_eq(members_in_process(e.k, group), 1);
    }
    cr_assert_eq(klog_server_stop(e.s), 0);
    for (int i = 0; i < N; i += 10) {
        char group[16];
        snprintf(group, sizeof group, "g%d", i);
        cr_assert_eq(members_in_process(e.k, group), 0, "%s", group);
    }
    klog_conn_close(c);
    su_down(&e);
}
