/*
 * lib/server/metadata.c - Metadata, and looking topics up for requests
 * (creating them when auto.create.topics.enable says so, as a Kafka
 * broker does for Metadata requests).
 *
 * One node: every partition's leader, replica and in-sync replica is this
 * server's node.id, reached at the address the client connected to (or
 * advertised.host).  A replicated node (lib/replication) lists every node
 * of the cluster as a broker, at the host and port of its URL in
 * replication.peers (this one as above), and each partition's leader,
 * replicas and ISR as this node last heard them from the controller
 * (leader -1 and LEADER_NOT_AVAILABLE while it knows none), so that
 * clients send their writes to the leader.  The controller tells every
 * node of every partition, so a topic this node holds no replica of (a
 * replication factor below the number of nodes) is listed too; a Produce
 * or Fetch of it here is NOT_LEADER_OR_FOLLOWER, and the client asks
 * Metadata again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "replication/module.h"
#include "server/acl.h"
#include "server/internal.h"
#include "topic/topic.h"

struct kt_topic *ksrv_topic_get(struct klog_server *s, const char *name, bool create, int16_t *err)
{
    struct klog *k = ksrv_klog(s);
    if (klog__topic_name_check(name) < 0) {
        *err = KK_ERR_INVALID_TOPIC_EXCEPTION;
        return NULL;
    }
    kt_topic *t = klog__topic_get(k, name);
    krep_mod *m = t ? NULL : krep_mod_of(k);
    if (m && krep_mod_topic_parts(m, name) > 0) {
        /* another node's: not created here, the client goes there */
        *err = KK_ERR_NOT_LEADER_OR_FOLLOWER;
        return NULL;
    }
    char told[8];
    if (m && krep_topic_replicated(name) && krep_mod_told_config(m, name, told, sizeof told) == 0) {
        /* the controller told of it, its partitions come next: not made
         * here meanwhile (the client asks again) */
        *err = KK_ERR_LEADER_NOT_AVAILABLE;
        return NULL;
    }
    if (t || !create || !ksrv_config(s)->auto_create) {
        *err = t ? KK_ERR_NONE : KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return t;
    }
    if (m && krep_topic_replicated(name)) {
        /* Not made here: a replicated topic is created through the
         * controller with its replicas, as Kafka's brokers forward it
         * (KIP-590).  A copy made on the node asked, the controller's own
         * included (its node learns the partitions it just committed a
         * moment later), would be a topic of that name outside the
         * metadata, racing the controller's create: a node outside the
         * replicas held a directory of it.  The client is answered as
         * Kafka answers for a topic being created, and asks again. */
        *err = krep_mod_auto_create(m, name) == 0 ? KK_ERR_LEADER_NOT_AVAILABLE : KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    char eb[256];
    int rc = klog_topic_create(k, name, 0, NULL, eb, sizeof eb);
    if (rc < 0 && rc != -EEXIST) {
        ksrv_log(s, "auto-creating topic %s: %s", name, eb[0] ? eb : klog_strerror(rc));
        *err = kk_err_from_klog(rc, KK_CTX_TOPIC_ADMIN);
        return NULL;
    }
    t = klog__topic_get(k, name);
    /* Kafka answers the request that created a topic with
     * LEADER_NOT_AVAILABLE and the client asks again; klog's topic is
     * ready at once, so it is answered in full. */
    *err = t ? KK_ERR_NONE : KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    return t;
}

/* A replicated node's partition i of t, as this node knows it (a
 * witness: as the quorum committed it; its own copy of the topic is no
 * replica, and naming itself leader would send producers to it). */
static int fill_replicated(ksrv_call *c, kk_metadata_resp_partition *ps, const char *name, int i, krep_mod *m)
{
    krep_pstate st;
    ps->partition_index = i;
    ps->offline_replicas.v = NULL;
    ps->offline_replicas.n = 0;
    if (!krep_topic_replicated(name))
        return 1; /* internal topics stay this node's own (but __consumer_offsets) */
    int rc = krep_mod_state(m, name, i, &st);
    if (rc == KLOG_ESTATE)
        return 1; /* no replication running here: this node's own */
    if (rc < 0) {
        ps->error_code = KK_ERR_LEADER_NOT_AVAILABLE;
        ps->leader_id = -1;
        ps->replica_nodes.n = ps->isr_nodes.n = 0;
        return 0;
    }
    int32_t *r = ksrv_alloc(c, (size_t)(st.nreplicas + st.nisr + 1) * sizeof *r);
    if (!r)
        return -ENOMEM;
    memcpy(r, st.replicas, (size_t)st.nreplicas * sizeof *r);
    memcpy(r + st.nreplicas, st.isr, (size_t)st.nisr * sizeof *r);
    /* a node fenced (cut off from its controller long enough for others
     * to lead) names no leader where it was one: the client asks another */
    krep_node *nd = krep_mod_node(m);
    if (st.leader >= 0 && nd && st.leader == krep_node_id(nd) && krep_node_fenced(nd))
        st.leader = -1;
    ps->error_code = st.leader >= 0 ? KK_ERR_NONE : KK_ERR_LEADER_NOT_AVAILABLE;
    ps->leader_id = st.leader;
    ps->replica_nodes.v = r;
    ps->replica_nodes.n = st.nreplicas;
    ps->isr_nodes.v = r + st.nreplicas;
    ps->isr_nodes.n = st.nisr;
    return 0;
}

/* Topic `name` (t: this node's copy, or NULL: one it holds no replica
 * of), its partitions as many as this node has or the states name. */
static int fill_topic(ksrv_call *c, kk_metadata_resp_topic *o, kt_topic *t, const char *name, int32_t node)
{
    krep_mod *m = krep_mod_of(ksrv_klog(c->srv));
    int n = t ? atomic_load_explicit(&t->nparts, memory_order_acquire) : 0;
    bool internal = name[0] == '_' && name[1] == '_';
    krep_pstate st;
    while (m && krep_topic_replicated(name) && n < KT_MAX_PARTITIONS && krep_mod_state(m, name, n, &st) == 0)
        n++; /* partitions this node was told of beyond its own */
    o->error_code = KK_ERR_NONE;
    char *nm = ksrv_alloc(c, strlen(name) + 1);
    if (!nm)
        return -ENOMEM;
    strcpy(nm, name); /* (a state's name lives as long as the module; the answer's, as the call) */
    o->name = KK_STR(nm);
    o->is_internal = internal;
    kk_metadata_resp_partition *ps = ksrv_alloc(c, (size_t)n * sizeof *ps + 1);
    int32_t *one = ksrv_alloc(c, sizeof *one);
    if (!ps || !one)
        return -ENOMEM;
    *one = node;
    for (int i = 0; i < n; i++) {
        if (m) {
            int rc = fill_replicated(c, &ps[i], name, i, m);
            if (rc < 0)
                return rc;
            if (rc == 0)
                continue;
        }
        ps[i].error_code = KK_ERR_NONE;
        ps[i].partition_index = i;
        ps[i].leader_id = node;
        ps[i].replica_nodes.v = one;
        ps[i].replica_nodes.n = 1;
        ps[i].isr_nodes.v = one;
        ps[i].isr_nodes.n = 1;
        ps[i].offline_replicas.v = NULL;
        ps[i].offline_replicas.n = 0;
    }
    o->partitions.v = ps;
    o->partitions.n = n;
    return 0;
}

/* The topics the replication states name that this node does not hold
 * (the others' replicas), appended to r's topics. */
static int add_others(ksrv_call *c, kk_metadata_resp *r, kt_topic **snap, size_t nsnap)
{
    krep_ctl_entry *e;
    int n = krep_mod_list(krep_mod_of(ksrv_klog(c->srv)), &e);
    if (n < 0)
        return n;
    kk_metadata_resp_topic *ts = ksrv_alloc(c, ((size_t)r->topics.n + (size_t)n + 1) * sizeof *ts);
    int rc = ts ? 0 : -ENOMEM;
    if (ts && r->topics.n > 0)
        memcpy(ts, r->topics.v, (size_t)r->topics.n * sizeof *ts);
    int k = r->topics.n;
    for (int i = 0; i < n && rc == 0; i++) {
        bool seen = !krep_topic_replicated(e[i].topic);
        for (size_t j = 0; j < nsnap && !seen; j++)
            seen = strcmp(snap[j]->name, e[i].topic) == 0;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(e[j].topic, e[i].topic) == 0;
        if (seen || !ksrv_allowed(c, KACL_OP_DESCRIBE, KACL_RES_TOPIC, e[i].topic))
            continue;
        if ((rc = fill_topic(c, &ts[k], NULL, e[i].topic, ksrv_config(c->srv)->node_id)) == 0)
            k++;
    }
    if (rc == 0) {
        r->topics.v = ts;
        r->topics.n = k;
    }
    free(e);
    return rc;
}

int ksrv_metadata(ksrv_call *c)
{
    const kk_metadata_req *q = &c->req.body.metadata;
    const ksrv_conf *cf = ksrv_config(c->srv);
    kk_metadata_resp r = { .controller_id = cf->node_id, .cluster_id = KK_STR("klog") };
    kk_metadata_resp_broker b = { .node_id = cf->node_id, .rack = KK_STR_NULL };
    const char *host;
    ksrv_conn_local(c->conn, &host, &b.port);
    b.host = KK_STR(host);
    r.brokers.v = &b;
    r.brokers.n = 1;
    krep_mod *rm = krep_mod_of(ksrv_klog(c->srv));
    /* Fenced (cut off from the controller long enough for others to lead
     * its partitions): answered, then the connection closes, so that the
     * client asks another node next.  librdkafka asks for metadata the
     * node it last sent to, which a client retrying here is: it would
     * hear "no leader" from this node alone for as long as the cut. */
    if (rm && krep_node_fenced(krep_mod_node(rm)))
        c->close_after = true;
    if (rm) {
        /* every node, at its URL's host and port (a unix:// one has none
         * a Kafka client could use: left out) */
        int np;
        const krep_peer *peers = krep_mod_peers(rm, &np);
        kk_metadata_resp_broker *bs = ksrv_alloc(c, ((size_t)np + 1) * sizeof *bs);
        if (!bs)
            return -ENOMEM;
        int k = 0;
        for (int i = 0; i < np; i++) {
            if (peers[i].id == cf->node_id) {
                bs[k++] = b;
                continue;
            }
            const char *u = peers[i].url;
            if (strncmp(u, "tcp://", 6) != 0)
                continue;
            u += 6;
            const char *colon = strrchr(u, ':');
            if (!colon)
                continue;
            size_t hl = (size_t)(colon - u);
            if (hl >= 2 && u[0] == '[' && u[hl - 1] == ']')
                u++, hl -= 2; /* [IPv6] */
            char *h = ksrv_alloc(c, hl + 1);
            if (!h)
                return -ENOMEM;
            memcpy(h, u, hl);
            bs[k++] = (kk_metadata_resp_broker){ .node_id = peers[i].id, .host = KK_STR(h),
                                                 .port = (int32_t)atoi(colon + 1), .rack = KK_STR_NULL };
        }
        r.brokers.v = bs;
        r.brokers.n = k;
        /* admin requests go to the controller (topics are created where
         * the leader can name them in its pushes), if clients can reach
         * it; else here */
        int32_t cid, cep;
        krep_mod_controller(rm, &cid, &cep);
        for (int i = 0; i < k; i++)
            if (bs[i].node_id == cid)
                r.controller_id = cid;
    }

    bool all = q->topics.n < 0 || (q->topics.n == 0 && c->req.hdr.api_version == 0);
    kt_topic **snap = NULL;
    size_t nsnap = 0;
    int rc = 0;
    if (all) {
        ssize_t n = klog__topics_snapshot(ksrv_klog(c->srv), &snap);
        if (n < 0)
            return ksrv_respond(c, &r); /* no topics: an answer still */
        nsnap = (size_t)n;
        kk_metadata_resp_topic *ts = ksrv_alloc(c, (nsnap ? nsnap : 1) * sizeof *ts);
        if (!ts) {
            rc = -ENOMEM;
            goto out;
        }
        int m = 0;
        for (size_t i = 0; i < nsnap; i++) {
            if (atomic_load(&snap[i]->deleted))
                continue;
            /* A principal sees the topics it may describe, and no other. */
            if (!ksrv_allowed(c, KACL_OP_DESCRIBE, KACL_RES_TOPIC, snap[i]->name))
                continue;
            if ((rc = fill_topic(c, &ts[m], snap[i], snap[i]->name, cf->node_id)) < 0)
                goto out;
            m++;
        }
        r.topics.v = ts;
        r.topics.n = m;
        if (rm && (rc = add_others(c, &r, snap, nsnap)) < 0)
            goto out;
        rc = ksrv_respond(c, &r);
        goto out;
    }

    int n = q->topics.n;
    kk_metadata_resp_topic *ts = ksrv_alloc(c, ((size_t)n + 1) * sizeof *ts);
    kt_topic **held = ksrv_alloc(c, ((size_t)n + 1) * sizeof *held);
    if (!ts || !held)
        return -ENOMEM;
    bool create = c->req.hdr.api_version < 4 || q->allow_auto_topic_creation;
    for (int i = 0; i < n; i++) {
        const char *name = q->topics.v[i].name.p ? q->topics.v[i].name.p : "";
        int16_t err;
        bool bad = q->topics.v[i].name.p && (int32_t)strlen(name) != q->topics.v[i].name.len;
        /* Auto-creation needs CREATE on the topic or the cluster, as
         * Kafka's; without it an unknown topic stays unknown. */
        bool may_create = create && (ksrv_allowed(c, KACL_OP_CREATE, KACL_RES_CLUSTER, KACL_CLUSTER_NAME) ||
                                     ksrv_allowed(c, KACL_OP_CREATE, KACL_RES_TOPIC, name));
        bool may_see = bad || ksrv_allowed(c, KACL_OP_DESCRIBE, KACL_RES_TOPIC, name);
        held[i] = bad || !may_see ? NULL : ksrv_topic_get(c->srv, name, may_create, &err);
        if (bad)
            err = KK_ERR_INVALID_TOPIC_EXCEPTION;
        else if (!may_see)
            err = KK_ERR_TOPIC_AUTHORIZATION_FAILED;
        if (held[i] || err == KK_ERR_NOT_LEADER_OR_FOLLOWER) {
            /* (NOT_LEADER_OR_FOLLOWER: a topic of other nodes) */
            if ((rc = fill_topic(c, &ts[i], held[i], name, cf->node_id)) < 0)
                break;
        } else {
            ts[i].error_code = err;
            ts[i].name = q->topics.v[i].name;
            ts[i].partitions.n = 0;
        }
    }
    r.topics.v = ts;
    r.topics.n = n;
    if (rc == 0)
        rc = ksrv_respond(c, &r);
    for (int i = 0; i < n; i++)
        if (held[i])
            klog__topic_put(held[i]);
    return rc;
out:
    if (snap)
        klog__topics_release(snap, nsnap);
    return rc;
}
