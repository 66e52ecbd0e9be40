/*
 * lib/server/groups.c - Kafka's classic group protocol over the instance's
 * coordinator: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
 * LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups,
 * DeleteGroups.
 *
 * Every request goes to kg_coordinator_local (lib/group/group.h), the same
 * coordinator the instance's own consumers use, so a Kafka client and a
 * klog consumer with the same group.id are members of one group and their
 * offsets live in one __consumer_offsets.  This node is the coordinator of
 * every group.
 *
 * Waiting.  The coordinator never blocks: a JoinGroup whose rebalance has
 * not completed, and a follower's SyncGroup before the leader's, are
 * answered KG_WAIT.  The handler then parks the call and asks again when
 * woken (asking again is not a new join: group.h).  The wake-up comes from
 * the member's notify function, which the coordinator keeps for as long as
 * the member is in the group - longer than the call, and longer than the
 * connection - so its argument is the call's worker (ksrv_worker_kick
 * wakes every parked call of that worker; each asks again and parks again
 * if its own answer is not there yet).  A parked call also runs at its
 * deadline (the member's rebalance timeout and a margin: by then the
 * coordinator has completed the rebalance or removed the laggards), and
 * is then answered with what there is: REBALANCE_IN_PROGRESS, which makes
 * a Kafka client send its JoinGroup or SyncGroup again.
 *
 * Members joined through this server (ksrv_groups): the workers their
 * notify functions point at are freed with the server, so the server
 * leaves every such member at klog_server_stop (a static member keeps its
 * place for its session timeout, as when its client closes).  The table is
 * bounded by the coordinator's own membership: an entry goes when its
 * member leaves, when the coordinator says it is not a member any more,
 * and, for members the coordinator removed silently (expiry), by a check
 * against the coordinator whenever the table has doubled since the last.
 * Lock order: ksrv_groups.mu, then the coordinator's locks (the join runs
 * with mu held so that a join and klog_server_stop cannot cross); notify
 * functions run with the coordinator's lock held and only kick.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <klog/klog.h>

#include "common/common.h"
#include "group/group.h"
#include "partition/partition.h"
#include "replication/module.h"
#include "server/acl.h"
#include "server/internal.h"
#include "topic/topic.h"

#define JOIN_MARGIN_MS 1000       /* past the rebalance timeout, a waiting join is answered */
#define SYNC_WAIT_MS 60000        /* a SyncGroup wait when the member's rebalance timeout is unknown */
#define SESSION_MAX_MS 3600000    /* session.timeout.ms's range in klog's member configuration */
#define TRACK_PRUNE_MIN 64

/* A member joined through this server. */
typedef struct ksrv_member {
    char *group;
    char id[KG_ID_MAX];
    bool is_static;
    int64_t rebalance_ms;
    char host[64];                /* the client's address as Kafka shows it ("/127.0.0.1") */
} ksrv_member;

struct ksrv_groups {
    struct klog_server *s;
    pthread_mutex_t mu;
    bool stopped;
    ksrv_member *m;
    size_t n, cap;
    size_t prune_at;              /* check the table against the coordinator at this size */
};

/* ---- small things ------------------------------------------------------------------ */

/* A Kafka string that is a whole C string (not null, no NUL inside). */
static bool str_ok(const kk_str *s)
{
    return s->p && s->len >= 0 && strlen(s->p) == (size_t)s->len;
}

/* A string's C form ("" for null). */
static const char *str_c(const kk_str *s)
{
    return s->p ? s->p : "";
}

/* A group name Kafka's and klog's rules accept, or NULL. */
static const char *group_name(const kk_str *s)
{
    return str_ok(s) && kg_name_check(s->p) == 0 ? s->p : NULL;
}

/*
 * Where a group lives.  Replicated (replication.peers), a group's
 * coordinator is the leader of its partition of __consumer_offsets, as in
 * Kafka: its commits and generations replicate with that partition, and a
 * node promoted to lead it reloads them (lib/group/offsets.c), so a group
 * resumes there from the offsets it committed.  Any other node answers
 * NOT_COORDINATOR (clients ask FindCoordinator again).  Before the topic
 * exists the controller creates it (COORDINATOR_NOT_AVAILABLE until it has
 * named the partition's leader); other nodes send clients to it.  *leader
 * gets the coordinator's node id (-1: unknown); with part, the partition,
 * referenced in *t, when this node leads it.  Not replicated: this node.
 */
static int16_t group_home(ksrv_call *c, const char *group, int32_t *leader, kpart **part, kt_topic **t)
{
    struct klog *k = ksrv_klog(c->srv);
    int32_t self = ksrv_config(c->srv)->node_id;
    krep_mod *m = krep_mod_of(k);
    *leader = self;
    if (part)
        *part = NULL, *t = NULL;
    if (!m)
        return KK_ERR_NONE;
    int32_t cid, cepoch;
    krep_mod_controller(m, &cid, &cepoch);
    kt_topic *ot;
    int32_t idx;
    int rc = kg_offsets_partition(k, group, cid == self, &ot, &idx);
    if (rc == KLOG_EUNKNOWN_TOPIC) {
        *leader = cid;
        return cid >= 0 && cid != self ? KK_ERR_NOT_COORDINATOR : KK_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (rc < 0)
        return KK_ERR_COORDINATOR_NOT_AVAILABLE;
    krep_pstate st;
    rc = krep_mod_state(m, KG_OFFSETS_TOPIC, idx, &st);
    kpart *p = ot->parts[idx];
    if (rc == KLOG_ESTATE) {
        klog__topic_put(ot); /* no replication running: this node's own */
        return KK_ERR_NONE;
    }
    *leader = rc == 0 ? st.leader : -1;
    bool mine = rc == 0 && st.leader == self && kpart_role(p) == KPART_LEADER;
    if (mine && part) {
        *part = p;
        *t = ot;
    } else {
        klog__topic_put(ot);
    }
    if (mine)
        return KK_ERR_NONE;
    return *leader >= 0 && *leader != self ? KK_ERR_NOT_COORDINATOR : KK_ERR_COORDINATOR_NOT_AVAILABLE;
}

/* The coordinator, for a group's call (group NULL: any group's, for the
 * admin calls).  Its first use reads __consumer_offsets back, which may
 * fail (and is tried again by the next call): COORDINATOR_NOT_AVAILABLE,
 * which clients retry.  Replicated: NOT_COORDINATOR unless this node is
 * the group's (group_home). */
static int16_t coordinator(ksrv_call *c, const char *group, kg_coordinator *co)
{
    int rc = kg_coordinator_local(ksrv_klog(c->srv), co);
    if (rc < 0) {
        ksrv_log(c->srv, "group coordinator: %s", klog_strerror(rc));
        return KK_ERR_COORDINATOR_NOT_AVAILABLE;
    }
    int32_t leader;
    return group ? group_home(c, group, &leader, NULL, NULL) : KK_ERR_NONE;
}

/* A peer's host and port, from its URL in replication.peers (tcp only: a
 * unix:// one has none a Kafka client could use).  false: none. */
static bool peer_addr(ksrv_call *c, int32_t id, char *host, size_t hsize, int32_t *port)
{
    krep_mod *m = krep_mod_of(ksrv_klog(c->srv));
    int np;
    const krep_peer *peers = m ? krep_mod_peers(m, &np) : NULL;
    for (int i = 0; peers && i < np; i++) {
        if (peers[i].id != id || strncmp(peers[i].url, "tcp://", 6) != 0)
            continue;
        const char *u = peers[i].url + 6, *colon = strrchr(u, ':');
        if (!colon)
            return false;
        size_t hl = (size_t)(colon - u);
        if (hl >= 2 && u[0] == '[' && u[hl - 1] == ']')
            u++, hl -= 2; /* [IPv6] */
        if (hl >= hsize)
            return false;
        memcpy(host, u, hl);
        host[hl] = '\0';
        *port = (int32_t)atoi(colon + 1);
        return true;
    }
    return false;
}

/* A coordinator error as Kafka's group APIs say it. */
static int16_t group_err(int rc)
{
    switch (rc) {
    case -EINVAL: return KK_ERR_INVALID_REQUEST;
    case -EAGAIN:
    case -ENOTSUP:
    case KLOG_ENOTENOUGH: return KK_ERR_COORDINATOR_NOT_AVAILABLE;
    case KLOG_ENOTLEADER: return KK_ERR_NOT_COORDINATOR; /* its offsets partition moved (Kafka's mapping) */
    default: return kk_err_from_klog(rc, KK_CTX_GROUP);
    }
}

/* Kafka's answer to a member id the group does not know, from a client
 * naming a static instance: FENCED_INSTANCE_ID when the group holds that
 * instance under another member id (it was taken over), else
 * UNKNOWN_MEMBER_ID. */
static int16_t unknown_member_err(const kg_coordinator *co, const char *group, const kk_str *instance)
{
    if (!str_ok(instance) || !instance->len)
        return KK_ERR_UNKNOWN_MEMBER_ID;
    kg_group_info gi;
    int16_t err = KK_ERR_UNKNOWN_MEMBER_ID;
    if (co->ops->describe(co->self, group, &gi) == 0) {
        for (unsigned i = 0; i < gi.nmembers; i++)
            if (gi.members[i].instance_id && !strcmp(gi.members[i].instance_id, instance->p))
                err = KK_ERR_FENCED_INSTANCE_ID;
        kg_group_info_free(&gi);
    }
    return err;
}

/* "tcp://127.0.0.1:40312" -> "/127.0.0.1", "tcp://[::1]:5" -> "/::1" (Kafka's
 * client_host); other transports' peer names as they are. */
static void peer_host(const char *peer, char *out, size_t size)
{
    const char *p = strstr(peer, "://");
    if (!p || strncmp(peer, "tcp", 3) != 0) {
        snprintf(out, size, "%s", peer);
        return;
    }
    p += 3;
    const char *end;
    if (*p == '[' && (end = strchr(p, ']'))) {
        p++;
    } else if (!(end = strrchr(p, ':'))) {
        end = p + strlen(p);
    }
    snprintf(out, size, "/%.*s", (int)(end - p), p);
}

/* ---- members joined through this server ---------------------------------------------- */

int ksrv_groups_new(struct klog_server *s, ksrv_groups **out)
{
    ksrv_groups *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    g->s = s;
    g->prune_at = TRACK_PRUNE_MIN;
    pthread_mutex_init(&g->mu, NULL);
    *out = g;
    return 0;
}

static ssize_t track_find(const ksrv_groups *g, const char *group, const char *id)
{
    for (size_t i = 0; i < g->n; i++)
        if (!strcmp(g->m[i].id, id) && !strcmp(g->m[i].group, group))
            return (ssize_t)i;
    return -1;
}

static void track_remove_at(ksrv_groups *g, size_t i)
{
    free(g->m[i].group);
    g->m[i] = g->m[--g->n];
}

/* Drop the entry (mu held). */
static void track_drop(ksrv_groups *g, const char *group, const char *id)
{
    ssize_t i = track_find(g, group, id);
    if (i >= 0)
        track_remove_at(g, (size_t)i);
}

/* Keep only the entries whose member the coordinator still has (mu held):
 * one describe per group. */
static void track_prune(ksrv_groups *g, const kg_coordinator *co)
{
    bool *done = calloc(g->n ? g->n : 1, sizeof *done);
    if (!done)
        return; /* next time */
    for (size_t i = 0; i < g->n; i++) {
        if (done[i])
            continue;
        kg_group_info gi;
        int rc = co->ops->describe(co->self, g->m[i].group, &gi);
        for (size_t j = i; j < g->n; j++) {
            if (done[j] || strcmp(g->m[j].group, g->m[i].group))
                continue;
            done[j] = true;
            if (rc < 0 && rc != KLOG_EUNKNOWN_GROUP)
                continue; /* cannot tell: keep it */
            bool there = false;
            for (unsigned k = 0; rc == 0 && k < gi.nmembers && !there; k++)
                there = !strcmp(gi.members[k].member_id, g->m[j].id);
            if (!there)
                g->m[j].id[0] = '\0'; /* removed below */
        }
        if (rc == 0)
            kg_group_info_free(&gi);
    }
    free(done);
    for (size_t i = g->n; i-- > 0;)
        if (!g->m[i].id[0])
            track_remove_at(g, i);
}

/* Make room for one more entry before a join (mu held): a member the
 * coordinator takes must never go untracked.  0 or -ENOMEM. */
static int track_reserve(ksrv_groups *g, const kg_coordinator *co)
{
    if (g->n >= g->prune_at) {
        track_prune(g, co);
        g->prune_at = KLOG_MAX((size_t)TRACK_PRUNE_MIN, 2 * g->n);
    }
    return klog__vec_reserve(&g->m, &g->cap, g->n + 1, sizeof *g->m);
}

/* Record (or refresh) a member after a join took it (mu held, room
 * reserved).  -ENOMEM copying the group name. */
static int track_put(ksrv_groups *g, const char *group, const char *id, bool is_static, int64_t rebalance_ms,
                     const char *peer)
{
    ssize_t i = track_find(g, group, id);
    ksrv_member *e;
    if (i >= 0) {
        e = &g->m[i];
    } else {
        char *gc = strdup(group);
        if (!gc)
            return -ENOMEM;
        e = &g->m[g->n++];
        memset(e, 0, sizeof *e);
        e->group = gc;
        snprintf(e->id, sizeof e->id, "%s", id);
    }
    e->is_static = is_static;
    e->rebalance_ms = rebalance_ms;
    peer_host(peer, e->host, sizeof e->host);
    return 0;
}

static void untrack(ksrv_call *c, const char *group, const char *id)
{
    ksrv_groups *g = ksrv_groups_of(c->srv);
    pthread_mutex_lock(&g->mu);
    track_drop(g, group, id);
    pthread_mutex_unlock(&g->mu);
}

void ksrv_groups_stop(ksrv_groups *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopped = true;
    ksrv_member *m = g->m;
    size_t n = g->n;
    g->m = NULL;
    g->n = g->cap = 0;
    pthread_mutex_unlock(&g->mu);
    kg_coordinator co;
    int rc = n ? kg_coordinator_local(ksrv_klog(g->s), &co) : 0;
    for (size_t i = 0; i < n; i++) {
        /* not a member any more (KLOG_EUNKNOWN_MEMBER) is fine: it is gone */
        if (rc == 0)
            (void)co.ops->leave(co.self, m[i].group, m[i].id, m[i].is_static);
        free(m[i].group);
    }
    free(m);
}

void ksrv_groups_free(ksrv_groups *g)
{
    if (!g)
        return;
    ksrv_groups_stop(g);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* GROUP_AUTHORIZATION_FAILED unless the principal may do op on group. */
static int16_t group_acl(ksrv_call *c, const char *group, int op)
{
    return ksrv_allowed(c, op, KACL_RES_GROUP, group) ? KK_ERR_NONE : KK_ERR_GROUP_AUTHORIZATION_FAILED;
}

/* ---- FindCoordinator ------------------------------------------------------------------- */

int ksrv_find_coordinator(ksrv_call *c)
{
    const kk_find_coordinator_req *q = &c->req.body.find_coordinator;
    kk_find_coordinator_resp r = { .error_code = KK_ERR_NONE, .node_id = -1, .host = KK_STR(""), .port = -1 };
    kg_coordinator co;
    if (q->key_type == 1) {
        r.error_code = KK_ERR_COORDINATOR_NOT_AVAILABLE;
        r.error_message = KK_STR("transactions are not supported");
    } else if (q->key_type != 0) {
        r.error_code = KK_ERR_INVALID_REQUEST;
        r.error_message = KK_STR("unknown key type");
    } else if (!group_name(&q->key)) {
        r.error_code = KK_ERR_INVALID_GROUP_ID;
    } else if ((r.error_code = group_acl(c, q->key.p, KACL_OP_DESCRIBE))) {
        ;
    } else if ((r.error_code = coordinator(c, NULL, &co)) == KK_ERR_NONE) {
        int32_t lid;
        int16_t home = group_home(c, q->key.p, &lid, NULL, NULL);
        char *h = ksrv_alloc(c, 256);
        if (home == KK_ERR_NONE) {
            const char *host;
            ksrv_conn_local(c->conn, &host, &r.port);
            r.host = KK_STR(host);
            r.node_id = ksrv_config(c->srv)->node_id;
        } else if (home == KK_ERR_NOT_COORDINATOR && h && peer_addr(c, lid, h, 256, &r.port)) {
            r.host = KK_STR(h); /* the node that leads the group's offsets partition */
            r.node_id = lid;
        } else {
            r.error_code = KK_ERR_COORDINATOR_NOT_AVAILABLE;
        }
    }
    if (r.error_code && !r.error_message.p)
        r.error_message = KK_STR(kk_err_name(r.error_code));
    return ksrv_respond(c, &r);
}

/* ---- JoinGroup --------------------------------------------------------------------------- */

/* A parked JoinGroup between runs. */
typedef struct join_state {
    char group[256];
    char member_id[KG_ID_MAX];    /* the coordinator's id for it */
    bool is_static;
    bool answered;
} join_state;

static void kick(void *w)
{
    ksrv_worker_kick(w);
}

/* A JoinGroup that ends unanswered (its connection closed while it
 * waited): its client gave up on it.  The coordinator keeps a member that
 * waits for its join's answer, so leave for it; a client that is still
 * there rejoins (its member id is then unknown: it joins as new). */
static void join_state_free(ksrv_call *c)
{
    join_state *st = c->state;
    if (st && !st->answered) {
        kg_coordinator co;
        if (kg_coordinator_local(ksrv_klog(c->srv), &co) == 0)
            (void)co.ops->leave(co.self, st->group, st->member_id, st->is_static);
        untrack(c, st->group, st->member_id);
    }
    free(st);
    c->state = NULL;
}

static int join_answer(ksrv_call *c, const kg_join_resp *out, int16_t err)
{
    kk_join_group_resp r = {
        .error_code = err,
        .generation_id = -1,
        .protocol_name = KK_STR(""),
        .leader = KK_STR(""),
        .member_id = KK_STR(out->member_id),
    };
    kk_join_group_resp_member *mem = NULL;
    if (err == KK_ERR_NONE) {
        r.generation_id = out->generation;
        r.protocol_name = KK_STR(out->protocol);
        r.leader = KK_STR(out->leader);
        if (out->nmembers && !(mem = calloc(out->nmembers, sizeof *mem)))
            return -ENOMEM;
        for (unsigned i = 0; i < out->nmembers; i++) {
            const kg_member_meta *m = &out->members[i];
            mem[i] = (kk_join_group_resp_member){
                .member_id = KK_STR(m->member_id),
                .group_instance_id = m->instance_id ? KK_STR(m->instance_id) : KK_STR_NULL,
                .metadata = { m->meta, (int32_t)m->meta_len },
            };
        }
        r.members.v = mem;
        r.members.n = (int32_t)out->nmembers;
    }
    if (c->state)
        ((join_state *)c->state)->answered = true;
    int rc = ksrv_respond(c, &r);
    free(mem);
    return rc;
}

static int join_error(ksrv_call *c, const char *member_id, int16_t err)
{
    kg_join_resp out = { .status = 0 };
    snprintf(out.member_id, sizeof out.member_id, "%s", member_id);
    return join_answer(c, &out, err);
}

int ksrv_join_group(ksrv_call *c)
{
    const kk_join_group_req *q = &c->req.body.join_group;
    join_state *st = c->state;
    const char *member = st ? st->member_id : str_c(&q->member_id);
    const char *group = group_name(&q->group_id);
    if (!group)
        return join_error(c, member, KK_ERR_INVALID_GROUP_ID);
    if (group_acl(c, group, KACL_OP_READ))
        return join_error(c, member, KK_ERR_GROUP_AUTHORIZATION_FAILED);
    if (q->session_timeout_ms < 1 || q->session_timeout_ms > SESSION_MAX_MS)
        return join_error(c, member, KK_ERR_INVALID_SESSION_TIMEOUT);
    if (!str_ok(&q->protocol_type) || !q->protocol_type.len || q->protocols.n <= 0)
        return join_error(c, member, KK_ERR_INCONSISTENT_GROUP_PROTOCOL);
    if (q->protocols.n > KG_PROTOCOLS_MAX || (q->member_id.p && !str_ok(&q->member_id)) ||
        (q->group_instance_id.p && !str_ok(&q->group_instance_id)))
        return join_error(c, member, KK_ERR_INVALID_REQUEST);
    kg_protocol protos[KG_PROTOCOLS_MAX];
    for (int32_t i = 0; i < q->protocols.n; i++) {
        const kk_join_group_req_protocol *p = &q->protocols.v[i];
        if (!str_ok(&p->name))
            return join_error(c, member, KK_ERR_INVALID_REQUEST);
        protos[i] = (kg_protocol){ p->name.p, p->metadata.p, p->metadata.len > 0 ? (size_t)p->metadata.len : 0 };
    }
    kg_coordinator co;
    int16_t err = coordinator(c, group, &co);
    if (err)
        return join_error(c, member, err);

    /* Kafka allows client ids of any length; the coordinator keeps 255 bytes */
    char client[KG_NAME_MAX + 1];
    snprintf(client, sizeof client, "%s", str_c(&c->req.hdr.client_id));
    const char *instance = q->group_instance_id.len > 0 ? q->group_instance_id.p : NULL;
    int64_t rebalance_ms = q->rebalance_timeout_ms > 0 ? q->rebalance_timeout_ms : q->session_timeout_ms;
    kg_join_req jq = {
        .group = group,
        .member_id = member,
        .instance_id = instance,
        .client_id = client,
        .session_ms = q->session_timeout_ms,
        .rebalance_ms = rebalance_ms,
        .notify = kick,
        .notify_arg = c->w,
        .protocol_type = q->protocol_type.p,
        .protocols = protos,
        .nprotocols = (unsigned)q->protocols.n,
        .require_member_id = c->req.hdr.api_version >= 4,
    };
    kg_join_resp out;
    ksrv_groups *g = ksrv_groups_of(c->srv);
    pthread_mutex_lock(&g->mu);
    int rc = g->stopped ? KLOG_ECLOSED : track_reserve(g, &co);
    if (rc == 0)
        rc = co.ops->join(co.self, &jq, &out);
    if (rc == 0 && out.status != KG_MEMBER_ID_REQUIRED &&
        track_put(g, group, out.member_id, instance != NULL, rebalance_ms, ksrv_conn_peer(c->conn)) < 0) {
        /* cannot leave it untracked (its notify points at a worker) */
        (void)co.ops->leave(co.self, group, out.member_id, false);
        kg_join_resp_free(&out);
        rc = -ENOMEM;
    }
    if (rc == KLOG_EUNKNOWN_MEMBER)
        track_drop(g, group, member);
    pthread_mutex_unlock(&g->mu);

    if (rc < 0) {
        err = rc == KLOG_EUNKNOWN_MEMBER ? unknown_member_err(&co, group, &q->group_instance_id) : group_err(rc);
        if (st)
            st->answered = true; /* the coordinator has nothing of it left to wait for */
        return join_error(c, member, err);
    }
    if (out.status == KG_MEMBER_ID_REQUIRED) {
        rc = join_answer(c, &out, KK_ERR_MEMBER_ID_REQUIRED);
    } else if (out.status == KG_STABLE) {
        rc = join_answer(c, &out, KK_ERR_NONE);
    } else if (c->expired) {
        /* Not complete within its rebalance timeout (another member's is
         * longer): the client sends its JoinGroup again. */
        rc = join_answer(c, &out, KK_ERR_REBALANCE_IN_PROGRESS);
    } else {
        if (!st) {
            if (!(st = calloc(1, sizeof *st))) {
                kg_join_resp_free(&out);
                return join_error(c, member, KK_ERR_REBALANCE_IN_PROGRESS);
            }
            snprintf(st->group, sizeof st->group, "%s", group);
            st->is_static = instance != NULL;
            c->state = st;
            c->state_free = join_state_free;
        }
        snprintf(st->member_id, sizeof st->member_id, "%s", out.member_id);
        c->deadline = c->started + (rebalance_ms + JOIN_MARGIN_MS) * 1000000;
        rc = KSRV_PARK;
    }
    kg_join_resp_free(&out);
    return rc;
}

/* ---- SyncGroup ------------------------------------------------------------------------------ */

static int sync_answer(ksrv_call *c, int16_t err, const uint8_t *data, size_t len)
{
    kk_sync_group_resp r = { .error_code = err, .assignment = { data ? data : (const uint8_t *)"", (int32_t)len } };
    return ksrv_respond(c, &r);
}

int ksrv_sync_group(ksrv_call *c)
{
    const kk_sync_group_req *q = &c->req.body.sync_group;
    const char *group = group_name(&q->group_id);
    if (!group)
        return sync_answer(c, KK_ERR_INVALID_GROUP_ID, NULL, 0);
    if (group_acl(c, group, KACL_OP_READ))
        return sync_answer(c, KK_ERR_GROUP_AUTHORIZATION_FAILED, NULL, 0);
    if (!str_ok(&q->member_id) || !q->member_id.len)
        return sync_answer(c, KK_ERR_UNKNOWN_MEMBER_ID, NULL, 0);
    kg_coordinator co;
    int16_t err = coordinator(c, group, &co);
    if (err)
        return sync_answer(c, err, NULL, 0);
    kg_member_bytes *as = NULL;
    if (q->assignments.n > 0 && !(as = calloc((size_t)q->assignments.n, sizeof *as)))
        return sync_answer(c, KK_ERR_COORDINATOR_NOT_AVAILABLE, NULL, 0);
    for (int32_t i = 0; i < q->assignments.n; i++) {
        const kk_sync_group_req_assignment *a = &q->assignments.v[i];
        as[i] = (kg_member_bytes){ str_c(&a->member_id), a->assignment.p,
                                   a->assignment.len > 0 ? (size_t)a->assignment.len : 0 };
    }
    kg_sync_req sq = {
        .group = group,
        .member_id = q->member_id.p,
        .generation = q->generation_id,
        .assign = as,
        .nassign = q->assignments.n > 0 ? (unsigned)q->assignments.n : 0,
    };
    kg_sync_resp out;
    int rc = co.ops->sync(co.self, &sq, &out);
    free(as);
    if (rc < 0) {
        if (rc == KLOG_EUNKNOWN_MEMBER) {
            untrack(c, group, q->member_id.p);
            return sync_answer(c, unknown_member_err(&co, group, &q->group_instance_id), NULL, 0);
        }
        return sync_answer(c, group_err(rc), NULL, 0);
    }
    if (out.status == KG_STABLE) {
        rc = sync_answer(c, KK_ERR_NONE, out.data, out.len);
    } else if (c->expired) {
        /* the leader has not synced: the client rejoins */
        rc = sync_answer(c, KK_ERR_REBALANCE_IN_PROGRESS, NULL, 0);
    } else {
        /* the leader's SyncGroup (or the rebalance timeout, after which the
         * coordinator drops the leader and rebalances) wakes it */
        int64_t wait_ms = SYNC_WAIT_MS;
        ksrv_groups *g = ksrv_groups_of(c->srv);
        pthread_mutex_lock(&g->mu);
        ssize_t i = track_find(g, group, q->member_id.p);
        if (i >= 0)
            wait_ms = g->m[i].rebalance_ms;
        pthread_mutex_unlock(&g->mu);
        c->deadline = c->started + (wait_ms + JOIN_MARGIN_MS) * 1000000;
        rc = KSRV_PARK;
    }
    kg_sync_resp_free(&out);
    return rc;
}

/* ---- Heartbeat, LeaveGroup ---------------------------------------------------------------- */

int ksrv_heartbeat(ksrv_call *c)
{
    const kk_heartbeat_req *q = &c->req.body.heartbeat;
    kk_heartbeat_resp r = { .error_code = KK_ERR_NONE };
    const char *group = group_name(&q->group_id);
    kg_coordinator co;
    if (!group) {
        r.error_code = KK_ERR_INVALID_GROUP_ID;
    } else if ((r.error_code = group_acl(c, group, KACL_OP_READ))) {
        ;
    } else if (!str_ok(&q->member_id) || !q->member_id.len) {
        r.error_code = KK_ERR_UNKNOWN_MEMBER_ID;
    } else if ((r.error_code = coordinator(c, group, &co)) == KK_ERR_NONE) {
        kg_beat b;
        int rc = co.ops->heartbeat(co.self, group, q->member_id.p, q->generation_id, &b);
        free(b.assign); /* a native member's (a client using a klog consumer's id) */
        if (rc == KLOG_EUNKNOWN_MEMBER) {
            untrack(c, group, q->member_id.p);
            r.error_code = unknown_member_err(&co, group, &q->group_instance_id);
        } else if (rc < 0) {
            r.error_code = group_err(rc);
        } else if (b.status == KG_REJOIN) {
            r.error_code = KK_ERR_REBALANCE_IN_PROGRESS;
        }
    }
    return ksrv_respond(c, &r);
}

int ksrv_leave_group(ksrv_call *c)
{
    const kk_leave_group_req *q = &c->req.body.leave_group;
    kk_leave_group_resp r = { .error_code = KK_ERR_NONE };
    const char *group = group_name(&q->group_id);
    kg_coordinator co;
    if (!group) {
        r.error_code = KK_ERR_INVALID_GROUP_ID;
    } else if ((r.error_code = group_acl(c, group, KACL_OP_READ))) {
        ;
    } else if (!str_ok(&q->member_id) || !q->member_id.len) {
        r.error_code = KK_ERR_UNKNOWN_MEMBER_ID;
    } else if ((r.error_code = coordinator(c, group, &co)) == KK_ERR_NONE) {
        int rc = co.ops->leave(co.self, group, q->member_id.p, false);
        untrack(c, group, q->member_id.p);
        r.error_code = group_err(rc);
    }
    return ksrv_respond(c, &r);
}

/* ---- OffsetCommit -------------------------------------------------------------------------- */

/* A commit on a replicated offsets partition, waiting for its high
 * watermark: Kafka's offsets.commit.required.acks=-1, so that an
 * acknowledged commit is on every in-sync replica and survives its
 * leader's kill -9. */
#define COMMIT_TIMEOUT_MS 5000       /* Kafka's offsets.commit.timeout.ms */

typedef struct commit_state {
    kk_offset_commit_resp r;
    kt_topic *t;
    kpart *p;
    int64_t end;                  /* the HW to wait for */
    int32_t epoch;                /* the leader epoch the commit was appended in */
    kpart_listener l;
    bool listening;
} commit_state;

static void commit_wake(void *arg, unsigned events, int64_t offset)
{
    (void)events, (void)offset;
    ksrv_call_wake(arg);
}

static void commit_free(ksrv_call *c)
{
    commit_state *st = c->state;
    if (st->listening)
        kpart_unlisten(st->p, &st->l);
    st->listening = false;
    klog__topic_put(st->t);
}

/* Answer once the HW passes the commit; fail every entry that succeeded
 * with NOT_COORDINATOR when leadership moved meanwhile, and with
 * COORDINATOR_NOT_AVAILABLE at the timeout (Kafka's mappings of
 * NOT_LEADER_OR_FOLLOWER and REQUEST_TIMED_OUT for commits). */
static int commit_wait(ksrv_call *c, commit_state *st)
{
    int16_t err = KK_ERR_NONE;
    bool done = false;
    for (int pass = 0; pass < 2 && !done; pass++) {
        if (kpart_role(st->p) != KPART_LEADER || kpart_leader_epoch(st->p) != st->epoch) {
            err = KK_ERR_NOT_COORDINATOR;
            done = true;
        } else if (kpart_high_watermark(st->p) >= st->end) {
            done = true;
        } else if (c->expired) {
            err = KK_ERR_COORDINATOR_NOT_AVAILABLE;
            done = true;
        } else if (!st->listening) {
            st->l = (kpart_listener){ .fn = commit_wake, .arg = c, .events = KPART_EV_HW };
            kpart_listen(st->p, &st->l);
            st->listening = true; /* and look again: it may have moved before */
        } else {
            break;
        }
    }
    if (!done)
        return KSRV_PARK;
    for (int32_t t = 0; err && t < st->r.topics.n; t++)
        for (int32_t p = 0; p < st->r.topics.v[t].partitions.n; p++)
            if (st->r.topics.v[t].partitions.v[p].error_code == KK_ERR_NONE)
                st->r.topics.v[t].partitions.v[p].error_code = err;
    return ksrv_respond(c, &st->r);
}

int ksrv_offset_commit(ksrv_call *c)
{
    const kk_offset_commit_req *q = &c->req.body.offset_commit;
    if (c->state)
        return commit_wait(c, c->state);
    struct klog *k = ksrv_klog(c->srv);
    const char *group = group_name(&q->group_id);
    kg_coordinator co;
    int16_t err = !group ? KK_ERR_INVALID_GROUP_ID : group_acl(c, group, KACL_OP_READ);
    if (!err)
        err = coordinator(c, group, &co);
    kpart *hp = NULL;
    kt_topic *ht = NULL;
    int32_t hlead, hepoch = -1;
    if (!err && (err = group_home(c, group, &hlead, &hp, &ht)) == KK_ERR_NONE && hp)
        hepoch = kpart_leader_epoch(hp);

    size_t total = 0;
    for (int32_t t = 0; t < q->topics.n; t++)
        total += q->topics.v[t].partitions.n > 0 ? (size_t)q->topics.v[t].partitions.n : 0;
    kk_offset_commit_resp r = { .throttle_time_ms = 0 };
    kk_offset_commit_resp_topic *rt = q->topics.n > 0 ? calloc((size_t)q->topics.n, sizeof *rt) : NULL;
    kk_offset_commit_resp_partition *rp = total ? calloc(total, sizeof *rp) : NULL;
    kg_offset *o = total ? calloc(total, sizeof *o) : NULL;
    size_t *at = total ? calloc(total, sizeof *at) : NULL; /* o[i]'s entry in rp */
    if ((q->topics.n > 0 && !rt) || (total && (!rp || !o || !at))) {
        free(rt);
        free(rp);
        free(o);
        free(at);
        return -ENOMEM;
    }

    /* what can be committed, and the entries that cannot */
    size_t ri = 0;
    unsigned no = 0;
    for (int32_t t = 0; t < q->topics.n; t++) {
        const kk_offset_commit_req_topic *qt = &q->topics.v[t];
        kt_topic *kt = !err && str_ok(&qt->name) ? klog__topic_get(k, qt->name.p) : NULL;
        int32_t np = kt ? atomic_load_explicit(&kt->nparts, memory_order_acquire) : 0;
        rt[t].name = qt->name;
        rt[t].partitions.v = rp + ri;
        rt[t].partitions.n = qt->partitions.n > 0 ? qt->partitions.n : 0;
        for (int32_t p = 0; p < qt->partitions.n; p++, ri++) {
            const kk_offset_commit_req_partition *qp = &qt->partitions.v[p];
            rp[ri].partition_index = qp->partition_index;
            const char *meta = qp->committed_metadata.p;
            if (err)
                rp[ri].error_code = err;
            else if (!str_ok(&qt->name) || !ksrv_allowed(c, KACL_OP_READ, KACL_RES_TOPIC, qt->name.p))
                rp[ri].error_code = KK_ERR_TOPIC_AUTHORIZATION_FAILED;
            else if (!kt || qp->partition_index < 0 || qp->partition_index >= np)
                rp[ri].error_code = KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            else if (meta && strlen(meta) > KG_META_MAX)
                rp[ri].error_code = KK_ERR_OFFSET_METADATA_TOO_LARGE;
            else {
                o[no] = (kg_offset){ qt->name.p, qp->partition_index, qp->committed_offset, meta, 0 };
                at[no++] = ri;
            }
        }
        if (kt)
            klog__topic_put(kt);
    }

    if (no) {
        /* generation -1 and no member id: a standalone (simple) commit */
        const char *member = q->member_id.len > 0 && str_ok(&q->member_id) ? q->member_id.p : NULL;
        int rc = co.ops->commit(co.self, group, member, q->generation_id, o, no, false);
        int16_t all = KK_ERR_NONE;
        if (rc == KLOG_EUNKNOWN_MEMBER) {
            if (member)
                untrack(c, group, member);
            all = unknown_member_err(&co, group, &q->group_instance_id);
        } else if (rc == KLOG_ESTATE) {
            /* Kafka: a commit without a member into a group that has
             * members is from an unknown member */
            all = KK_ERR_UNKNOWN_MEMBER_ID;
        } else if (rc < 0) {
            all = group_err(rc);
        }
        for (unsigned i = 0; i < no; i++)
            rp[at[i]].error_code = all ? all : group_err(o[i].err);
    }
    r.topics.v = rt;
    r.topics.n = q->topics.n > 0 ? q->topics.n : 0;
    int rc;
    commit_state *st = NULL;
    if (hp && no && (st = ksrv_alloc(c, sizeof *st)) != NULL) {
        /* the answer waits in the call's memory for the HW */
        memset(st, 0, sizeof *st);
        kk_offset_commit_resp_topic *crt = ksrv_alloc(c, ((size_t)r.topics.n + 1) * sizeof *crt);
        kk_offset_commit_resp_partition *crp = ksrv_alloc(c, (total + 1) * sizeof *crp);
        if (!crt || !crp) {
            st = NULL;
        } else {
            if (total)
                memcpy(crp, rp, total * sizeof *crp);
            for (int32_t t = 0; t < r.topics.n; t++) {
                crt[t] = rt[t];
                crt[t].partitions.v = crp + (rt[t].partitions.v - rp);
            }
            st->r = r;
            st->r.topics.v = crt;
            st->t = ht;
            st->p = hp;
            st->epoch = hepoch;
            st->end = kpart_end_offset(hp); /* everything appended so far: this commit included */
            ht = NULL;
            c->state = st;
            c->state_free = commit_free;
            c->deadline = c->started + (int64_t)COMMIT_TIMEOUT_MS * 1000000;
        }
    }
    if (st)
        rc = commit_wait(c, st);
    else if (hp && no)
        rc = -ENOMEM;
    else
        rc = ksrv_respond(c, &r);
    if (ht)
        klog__topic_put(ht);
    free(rt);
    free(rp);
    free(o);
    free(at);
    return rc;
}

/* ---- OffsetFetch ----------------------------------------------------------------------------- */

static int cmp_offset(const void *a, const void *b)
{
    const klog_group_offset *x = *(const klog_group_offset *const *)a, *y = *(const klog_group_offset *const *)b;
    int d = strcmp(x->topic, y->topic);
    return d ? d : (x->partition > y->partition) - (x->partition < y->partition);
}

/* Every partition the group has an offset for (OffsetFetch with topics
 * null), grouped by topic. */
static int fetch_all(ksrv_call *c, const char *group)
{
    kk_offset_fetch_resp r = { .error_code = KK_ERR_NONE };
    klog_group_info *gi = NULL;
    int rc = klog_group_info_get(ksrv_klog(c->srv), group, &gi);
    if (rc < 0 && rc != KLOG_EUNKNOWN_GROUP) {
        r.error_code = rc == -ENOMEM ? KK_ERR_UNKNOWN_SERVER_ERROR : KK_ERR_COORDINATOR_NOT_AVAILABLE;
        return ksrv_respond(c, &r);
    }
    size_t n = gi ? gi->offset_count : 0;
    const klog_group_offset **off = n ? malloc(n * sizeof *off) : NULL;
    kk_offset_fetch_resp_topic *rt = n ? calloc(n, sizeof *rt) : NULL;
    kk_offset_fetch_resp_partition *rp = n ? calloc(n, sizeof *rp) : NULL;
    if (n && (!off || !rt || !rp)) {
        free(off);
        free(rt);
        free(rp);
        klog_group_info_free(gi);
        return -ENOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (ksrv_allowed(c, KACL_OP_DESCRIBE, KACL_RES_TOPIC, gi->offsets[i]->topic))
            off[m++] = gi->offsets[i];
    n = m; /* the topics it may see */
    if (n > 1)
        qsort(off, n, sizeof *off, cmp_offset);
    int32_t nt = 0;
    for (size_t i = 0; i < n; i++) {
        if (!nt || strcmp(rt[nt - 1].name.p, off[i]->topic)) {
            rt[nt].name = KK_STR(off[i]->topic);
            rt[nt].partitions.v = rp + i;
            nt++;
        }
        rt[nt - 1].partitions.n++;
        rp[i] = (kk_offset_fetch_resp_partition){ off[i]->partition, off[i]->committed, -1,
                                                  KK_STR(off[i]->metadata ? off[i]->metadata : ""),
                                                  KK_ERR_NONE };
    }
    r.topics.v = rt;
    r.topics.n = nt;
    rc = ksrv_respond(c, &r);
    free(off);
    free(rt);
    free(rp);
    klog_group_info_free(gi);
    return rc;
}

int ksrv_offset_fetch(ksrv_call *c)
{
    const kk_offset_fetch_req *q = &c->req.body.offset_fetch;
    const char *group = group_name(&q->group_id);
    kg_coordinator co;
    int16_t err = !group ? KK_ERR_INVALID_GROUP_ID : group_acl(c, group, KACL_OP_DESCRIBE);
    if (!err)
        err = coordinator(c, group, &co);
    if (!err && q->topics.n < 0)
        return fetch_all(c, group);

    size_t total = 0;
    for (int32_t t = 0; t < q->topics.n; t++)
        total += q->topics.v[t].partition_indexes.n > 0 ? (size_t)q->topics.v[t].partition_indexes.n : 0;
    kk_offset_fetch_resp r = { .error_code = err };
    kk_offset_fetch_resp_topic *rt = q->topics.n > 0 ? calloc((size_t)q->topics.n, sizeof *rt) : NULL;
    kk_offset_fetch_resp_partition *rp = total ? calloc(total, sizeof *rp) : NULL;
    char **metas = total ? calloc(total, sizeof *metas) : NULL;
    char *meta = malloc(KG_META_MAX + 1);
    int rc = (q->topics.n > 0 && !rt) || (total && (!rp || !metas)) || !meta ? -ENOMEM : 0;
    size_t ri = 0;
    for (int32_t t = 0; rc == 0 && t < q->topics.n; t++) {
        const kk_offset_fetch_req_topic *qt = &q->topics.v[t];
        rt[t].name = qt->name;
        rt[t].partitions.v = rp + ri;
        rt[t].partitions.n = qt->partition_indexes.n > 0 ? qt->partition_indexes.n : 0;
        for (int32_t p = 0; p < qt->partition_indexes.n; p++, ri++) {
            kk_offset_fetch_resp_partition *e = &rp[ri];
            *e = (kk_offset_fetch_resp_partition){ qt->partition_indexes.v[p], -1, -1, KK_STR(""), err };
            int64_t off = -1;
            /* a topic or partition without an offset (or unknown): -1, as Kafka */
            if (!err && str_ok(&qt->name) && !ksrv_allowed(c, KACL_OP_DESCRIBE, KACL_RES_TOPIC, qt->name.p)) {
                e->error_code = KK_ERR_TOPIC_AUTHORIZATION_FAILED;
                continue;
            }
            if (err || !str_ok(&qt->name) ||
                co.ops->committed(co.self, group, qt->name.p, e->partition_index, &off, meta, KG_META_MAX + 1) < 0)
                continue;
            e->committed_offset = off;
            if (off >= 0 && *meta) {
                if (!(metas[ri] = strdup(meta)))
                    rc = -ENOMEM;
                else
                    e->metadata = KK_STR(metas[ri]);
            }
        }
    }
    if (rc == 0) {
        r.topics.v = rt;
        r.topics.n = q->topics.n > 0 ? q->topics.n : 0;
        rc = ksrv_respond(c, &r);
    }
    for (size_t i = 0; metas && i < total; i++)
        free(metas[i]);
    free(metas);
    free(meta);
    free(rt);
    free(rp);
    return rc;
}

/* ---- DescribeGroups, ListGroups, DeleteGroups ------------------------------------------------- */

/* Kafka's operation bits for a group: READ, DELETE, DESCRIBE. */
#define GROUP_OPERATIONS ((1 << 3) | (1 << 6) | (1 << 8))

int ksrv_describe_groups(ksrv_call *c)
{
    const kk_describe_groups_req *q = &c->req.body.describe_groups;
    int32_t n = q->groups.n > 0 ? q->groups.n : 0;
    kk_describe_groups_resp r = { .throttle_time_ms = 0 };
    kk_describe_groups_resp_group *rg = n ? calloc((size_t)n, sizeof *rg) : NULL;
    kg_group_info *gi = n ? calloc((size_t)n, sizeof *gi) : NULL;
    kk_describe_groups_resp_member **mem = n ? calloc((size_t)n, sizeof *mem) : NULL;
    char (**hosts)[64] = n ? calloc((size_t)n, sizeof *hosts) : NULL;
    if (n && (!rg || !gi || !mem || !hosts)) {
        free(rg);
        free(gi);
        free(mem);
        free(hosts);
        return -ENOMEM;
    }
    kg_coordinator co;
    int16_t cerr = coordinator(c, NULL, &co);
    ksrv_groups *g = ksrv_groups_of(c->srv);
    int rc = 0;
    for (int32_t i = 0; rc == 0 && i < n; i++) {
        const char *group = group_name(&q->groups.v[i]);
        kk_describe_groups_resp_group *e = &rg[i];
        *e = (kk_describe_groups_resp_group){
            .error_code = KK_ERR_NONE, .group_id = q->groups.v[i], .group_state = KK_STR("Dead"),
            .protocol_type = KK_STR(""), .protocol_data = KK_STR(""),
            .authorized_operations = q->include_authorized_operations ? GROUP_OPERATIONS : INT32_MIN,
        };
        if (!group) {
            e->error_code = KK_ERR_INVALID_GROUP_ID;
            e->group_state = KK_STR("");
            continue;
        }
        if ((e->error_code = group_acl(c, group, KACL_OP_DESCRIBE))) {
            e->group_state = KK_STR("");
            continue;
        }
        if (cerr) {
            e->error_code = cerr;
            e->group_state = KK_STR("");
            continue;
        }
        int drc = co.ops->describe(co.self, group, &gi[i]);
        if (drc == KLOG_EUNKNOWN_GROUP) {
            /* no members: Empty if it has committed offsets, else Dead (Kafka's
             * answer for a group it does not know, with no error) */
            klog_group_info *info = NULL;
            if (klog_group_info_get(ksrv_klog(c->srv), group, &info) == 0)
                e->group_state = KK_STR("Empty");
            klog_group_info_free(info);
            continue;
        }
        if (drc < 0) {
            e->error_code = group_err(drc);
            e->group_state = KK_STR("");
            continue;
        }
        const kg_group_info *d = &gi[i];
        /* As Kafka: the protocol and the members' metadata and assignments
         * only while Stable (they are being replaced otherwise). */
        bool stable = !strcmp(d->state, "Stable");
        e->group_state = KK_STR(d->state);
        e->protocol_type = KK_STR(d->protocol_type);
        e->protocol_data = KK_STR(stable ? d->protocol : "");
        if (d->nmembers && (!(mem[i] = calloc(d->nmembers, sizeof **mem)) ||
                            !(hosts[i] = calloc(d->nmembers, sizeof **hosts)))) {
            rc = -ENOMEM;
            break;
        }
        pthread_mutex_lock(&g->mu);
        for (unsigned j = 0; j < d->nmembers; j++) {
            const kg_member_info *m = &d->members[j];
            ssize_t t = track_find(g, group, m->member_id);
            snprintf(hosts[i][j], sizeof hosts[i][j], "%s", t >= 0 ? g->m[t].host : "");
            mem[i][j] = (kk_describe_groups_resp_member){
                .member_id = KK_STR(m->member_id),
                .group_instance_id = m->instance_id ? KK_STR(m->instance_id) : KK_STR_NULL,
                .client_id = KK_STR(m->client_id),
                .client_host = KK_STR(hosts[i][j]),
                .member_metadata = { stable && m->meta ? m->meta : (const uint8_t *)"",
                                     stable ? (int32_t)m->meta_len : 0 },
                .member_assignment = { stable && m->assign ? m->assign : (const uint8_t *)"",
                                       stable ? (int32_t)m->assign_len : 0 },
            };
        }
        pthread_mutex_unlock(&g->mu);
        e->members.v = mem[i];
        e->members.n = (int32_t)d->nmembers;
    }
    if (rc == 0) {
        r.groups.v = rg;
        r.groups.n = n;
        rc = ksrv_respond(c, &r);
    }
    for (int32_t i = 0; i < n; i++) {
        kg_group_info_free(&gi[i]);
        free(mem[i]);
        free(hosts[i]);
    }
    free(rg);
    free(gi);
    free(mem);
    free(hosts);
    return rc;
}

int ksrv_list_groups(ksrv_call *c)
{
    kk_list_groups_resp r = { .error_code = KK_ERR_NONE };
    kg_coordinator co;
    char **names = NULL;
    size_t n = 0;
    if ((r.error_code = coordinator(c, NULL, &co)) == KK_ERR_NONE) {
        int rc = co.ops->list(co.self, &names, &n);
        if (rc < 0) {
            r.error_code = group_err(rc);
            n = 0;
        }
    }
    kk_list_groups_resp_group *rg = n ? calloc(n, sizeof *rg) : NULL;
    char (*ptype)[KG_NAME_MAX + 1] = n ? calloc(n, sizeof *ptype) : NULL;
    int rc = n && (!rg || !ptype) ? -ENOMEM : 0;
    /* The groups the principal may describe (all, with DESCRIBE on the cluster). */
    bool all = ksrv_allowed(c, KACL_OP_DESCRIBE, KACL_RES_CLUSTER, KACL_CLUSTER_NAME);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (all || ksrv_allowed(c, KACL_OP_DESCRIBE, KACL_RES_GROUP, names[i]))
            names[m++] = names[i];
        else
            free(names[i]);
    }
    n = m;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* the members' protocol type; "" for a group with offsets only */
        kg_group_info gi;
        if (co.ops->describe(co.self, names[i], &gi) == 0) {
            snprintf(ptype[i], sizeof ptype[i], "%s", gi.protocol_type);
            kg_group_info_free(&gi);
        }
        rg[i] = (kk_list_groups_resp_group){ KK_STR(names[i]), KK_STR(ptype[i]) };
    }
    if (rc == 0) {
        r.groups.v = rg;
        r.groups.n = (int32_t)n;
        rc = ksrv_respond(c, &r);
    }
    free(rg);
    free(ptype);
    klog_group_list_free(names, n);
    return rc;
}

int ksrv_delete_groups(ksrv_call *c)
{
    const kk_delete_groups_req *q = &c->req.body.delete_groups;
    int32_t n = q->groups_names.n > 0 ? q->groups_names.n : 0;
    kk_delete_groups_resp r = { .throttle_time_ms = 0 };
    kk_delete_groups_resp_result *rr = n ? calloc((size_t)n, sizeof *rr) : NULL;
    if (n && !rr)
        return -ENOMEM;
    kg_coordinator co;
    int16_t cerr = coordinator(c, NULL, &co);
    for (int32_t i = 0; i < n; i++) {
        const char *group = group_name(&q->groups_names.v[i]);
        rr[i].group_id = q->groups_names.v[i];
        if (!group)
            rr[i].error_code = KK_ERR_INVALID_GROUP_ID;
        else if ((rr[i].error_code = group_acl(c, group, KACL_OP_DELETE)))
            ;
        else if (cerr)
            rr[i].error_code = cerr;
        else
            /* KLOG_ESTATE: members (NON_EMPTY_GROUP); KLOG_EUNKNOWN_GROUP:
             * nothing committed (GROUP_ID_NOT_FOUND) */
            rr[i].error_code = group_err(klog_group_delete(ksrv_klog(c->srv), group));
    }
    r.results.v = rr;
    r.results.n = n;
    int rc = ksrv_respond(c, &r);
    free(rr);
    return rc;
}
