/*
 * lib/server/replica.c - the requests replicas send each other
 * (LeaderAndIsr from the controller, AlterPartition to it, ElectLeaders
 * from klog promote) and OffsetForLeaderEpoch (a follower finding where
 * its log parts from its leader's; clients ask it too, KIP-320), answered
 * by lib/replication.  On a node without replication the first three are
 * not advertised and are answered with an error; OffsetForLeaderEpoch is
 * answered from the partitions' leader-epoch caches.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "partition/partition.h"
#include "replication/module.h"
#include "server/acl.h"
#include "server/internal.h"

static void *alloc(void *ctx, size_t n) { return ksrv_alloc(ctx, n); }

static krep_mod *mod(ksrv_call *c) { return krep_mod_of(ksrv_klog(c->srv)); }

bool ksrv_replicated(const struct klog_server *s) { return krep_mod_of(ksrv_klog(s)) != NULL; }

int16_t ksrv_replica_fetch(ksrv_call *c, const char *topic, int32_t partition, int32_t replica_id,
                           int32_t current_leader_epoch, int64_t fetch_offset, struct kpart **p)
{
    krep_mod *m = mod(c);
    if (!m)
        return KK_ERR_NOT_LEADER_OR_FOLLOWER;
    return krep_mod_replica_fetch(m, topic, partition, replica_id, current_leader_epoch, fetch_offset, p);
}

int ksrv_leader_and_isr(ksrv_call *c)
{
    kk_leader_and_isr_resp r = { 0 };
    krep_mod *m = mod(c);
    if (!ksrv_allowed(c, KACL_OP_CLUSTER_ACTION, KACL_RES_CLUSTER, KACL_CLUSTER_NAME)) {
        r.error_code = KK_ERR_CLUSTER_AUTHORIZATION_FAILED; /* with authentication on: peers only */
        return ksrv_respond(c, &r);
    }
    if (!m) {
        r.error_code = KK_ERR_INVALID_REQUEST; /* not a replicated node */
        return ksrv_respond(c, &r);
    }
    int rc = krep_mod_leader_and_isr(m, &c->req.body.leader_and_isr, c->req.hdr.api_version, alloc, c, &r);
    return rc < 0 ? rc : ksrv_respond(c, &r);
}

int ksrv_alter_partition(ksrv_call *c)
{
    kk_alter_partition_resp r = { 0 };
    krep_mod *m = mod(c);
    if (!ksrv_allowed(c, KACL_OP_CLUSTER_ACTION, KACL_RES_CLUSTER, KACL_CLUSTER_NAME)) {
        r.error_code = KK_ERR_CLUSTER_AUTHORIZATION_FAILED;
        return ksrv_respond(c, &r);
    }
    if (!m) {
        r.error_code = KK_ERR_NOT_CONTROLLER;
        return ksrv_respond(c, &r);
    }
    int rc = krep_mod_alter_partition(m, &c->req.body.alter_partition, alloc, c, &r);
    return rc < 0 ? rc : ksrv_respond(c, &r);
}

int ksrv_offset_for_leader_epoch(ksrv_call *c)
{
    kk_offset_for_leader_epoch_resp r;
    krep_mod *m = mod(c);
    int rc = krep_handle_offset_for_leader_epoch(m ? krep_mod_node(m) : NULL, ksrv_klog(c->srv),
                                                 &c->req.body.offset_for_leader_epoch, alloc, c, &r);
    if (rc < 0)
        return rc;
    /* A peer needs ClusterAction, a client Describe on the topic (Kafka's
     * rule); nothing is told of a topic one may not describe. */
    bool peer = ksrv_allowed(c, KACL_OP_CLUSTER_ACTION, KACL_RES_CLUSTER, KACL_CLUSTER_NAME);
    for (int32_t i = 0; !peer && i < r.topics.n; i++) {
        kk_offset_for_leader_epoch_resp_topic *t = &r.topics.v[i];
        if (t->topic.p && ksrv_allowed(c, KACL_OP_DESCRIBE, KACL_RES_TOPIC, t->topic.p))
            continue;
        for (int32_t j = 0; j < t->partitions.n; j++) {
            t->partitions.v[j].error_code = KK_ERR_TOPIC_AUTHORIZATION_FAILED;
            t->partitions.v[j].leader_epoch = -1;
            t->partitions.v[j].end_offset = -1;
        }
    }
    return ksrv_respond(c, &r);
}

/* Kafka's preferred leader election on a quorum node (the controller's):
 * each partition asked (null: every one) led by its first replica, if it
 * is alive and in sync.  One result per partition. */
static int elect_preferred(ksrv_call *c, krep_mod *m)
{
    const kk_elect_leaders_req *q = &c->req.body.elect_leaders;
    kk_elect_leaders_resp r = { 0 };
    if (!krep_mod_is_controller(m)) {
        r.error_code = KK_ERR_NOT_CONTROLLER; /* the client asks the one Metadata names */
        return ksrv_respond(c, &r);
    }
    krep_ctl_entry *all = NULL;
    int nall = 0;
    int nt = q->topic_partitions.n;
    if (nt < 0) {
        /* every partition: a topic per entry of the list, as answered */
        if ((nall = krep_mod_list(m, &all)) < 0)
            return nall;
        nt = nall;
    }
    kk_elect_leaders_resp_topic *ts = ksrv_alloc(c, ((size_t)nt + 1) * sizeof *ts);
    if (!ts) {
        free(all);
        return -ENOMEM;
    }
    for (int i = 0; i < nt; i++) {
        const kk_elect_leaders_req_topic *qt = all ? NULL : &q->topic_partitions.v[i];
        int np = all ? 1 : qt->partitions.n > 0 ? qt->partitions.n : 0;
        kk_elect_leaders_resp_partition *ps = ksrv_alloc(c, ((size_t)np + 1) * sizeof *ps);
        const char *topic = all ? all[i].topic : qt->topic.p;
        char *tn = topic ? ksrv_alloc(c, strlen(topic) + 1) : NULL;
        if (!ps || (topic && !tn)) {
            free(all);
            return -ENOMEM;
        }
        if (tn)
            strcpy(tn, topic);
        for (int j = 0; j < np; j++) {
            int32_t part = all ? all[i].partition : qt->partitions.v[j];
            int16_t e;
            if (!topic || !ksrv_allowed(c, KACL_OP_ALTER, KACL_RES_CLUSTER, KACL_CLUSTER_NAME)) {
                e = topic ? KK_ERR_CLUSTER_AUTHORIZATION_FAILED : KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            } else {
                int rc = krep_mod_elect_preferred(m, topic, part, q->timeout_ms);
                e = rc == 0                         ? KK_ERR_NONE
                    : rc == 1                       ? KK_ERR_ELECTION_NOT_NEEDED
                    : rc == KLOG_EUNKNOWN_PARTITION ? KK_ERR_UNKNOWN_TOPIC_OR_PARTITION
                    : rc == KLOG_ENOTENOUGH         ? KK_ERR_PREFERRED_LEADER_NOT_AVAILABLE
                    : rc == KLOG_ENOTLEADER         ? KK_ERR_NOT_CONTROLLER
                    : rc == -ETIMEDOUT              ? KK_ERR_REQUEST_TIMED_OUT
                                                    : KK_ERR_UNKNOWN_SERVER_ERROR;
            }
            ps[j] = (kk_elect_leaders_resp_partition){ part, e, KK_STR_NULL };
        }
        ts[i].topic = tn ? KK_STR(tn) : KK_STR_NULL;
        ts[i].partition_result.v = ps;
        ts[i].partition_result.n = np;
    }
    free(all);
    r.replica_election_results.v = ts;
    r.replica_election_results.n = nt;
    return ksrv_respond(c, &r);
}

/* klog promote: this node takes over (the request's partitions are not
 * looked at: a static controller moves every partition at once).  A
 * refusal is one result for every partition (topic "*", partition -1);
 * a success one per partition this node now leads, its message what the
 * promote did there ("end=E old_leader=L old_hw=H unclean=U", which
 * klog_replication_promote_node_report reads back).  On a quorum node,
 * the preferred type is Kafka's preferred leader election
 * (elect_preferred). */
int ksrv_elect_leaders(ksrv_call *c)
{
    const kk_elect_leaders_req *q = &c->req.body.elect_leaders;
    kk_elect_leaders_resp r = { 0 };
    krep_mod *m = mod(c);
    if (m && krep_mod_is_quorum(m) && q->election_type == 0 &&
        ksrv_allowed(c, KACL_OP_ALTER, KACL_RES_CLUSTER, KACL_CLUSTER_NAME))
        return elect_preferred(c, m);
    char eb[256] = "";
    int16_t e = KK_ERR_NONE;
    krep_promoted *rep = NULL;
    int nrep = 0;
    if (!ksrv_allowed(c, KACL_OP_ALTER, KACL_RES_CLUSTER, KACL_CLUSTER_NAME)) {
        e = KK_ERR_CLUSTER_AUTHORIZATION_FAILED;
        snprintf(eb, sizeof eb, "not authorized to elect leaders (Alter on the cluster)");
    } else if (!m) {
        e = KK_ERR_INVALID_REQUEST;
        snprintf(eb, sizeof eb, "this node is not replicated");
    } else if (q->election_type != 0 && q->election_type != 1) {
        e = KK_ERR_INVALID_REQUEST;
        snprintf(eb, sizeof eb, "election type %d", q->election_type);
    } else {
        int rc = krep_mod_promote(m, q->election_type == 1, &rep, &nrep, eb, sizeof eb);
        if (rc == KLOG_ENOTENOUGH)
            e = KK_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE;
        else if (rc == KLOG_ESTATE)
            e = KK_ERR_INVALID_REQUEST;
        else if (rc < 0)
            e = KK_ERR_KAFKA_STORAGE_ERROR;
        if (rc < 0)
            ksrv_log(c->srv, "%s: promote: %s", ksrv_conn_peer(c->conn), eb);
    }
    r.error_code = e;
    if (e == KK_ERR_NONE && nrep > 0) {
        /* consecutive partitions of one topic share its entry */
        kk_elect_leaders_resp_topic *t = ksrv_alloc(c, (size_t)nrep * sizeof *t);
        kk_elect_leaders_resp_partition *p = ksrv_alloc(c, (size_t)nrep * sizeof *p);
        char *txt = ksrv_alloc(c, (size_t)nrep * 96);
        if (!t || !p || !txt) {
            free(rep);
            return -ENOMEM;
        }
        int nt = -1;
        for (int i = 0; i < nrep; i++) {
            char *msg = txt + (size_t)i * 96;
            snprintf(msg, 96, "end=%" PRId64 " old_leader=%" PRId32 " old_hw=%" PRId64 " unclean=%d", rep[i].end,
                     rep[i].old_leader, rep[i].old_hw, rep[i].unclean ? 1 : 0);
            if (nt < 0 || strcmp(t[nt].topic.p, rep[i].topic) != 0) {
                size_t len = strlen(rep[i].topic);
                char *name = ksrv_alloc(c, len + 1);
                if (!name) {
                    free(rep);
                    return -ENOMEM;
                }
                memcpy(name, rep[i].topic, len + 1);
                nt++;
                t[nt].topic = KK_STR(name);
                t[nt].partition_result.v = p + i;
                t[nt].partition_result.n = 0;
            }
            p[i] = (kk_elect_leaders_resp_partition){ rep[i].partition, KK_ERR_NONE, KK_STR(msg) };
            t[nt].partition_result.n++;
        }
        free(rep);
        r.replica_election_results.v = t;
        r.replica_election_results.n = nt + 1;
        return ksrv_respond(c, &r);
    }
    free(rep);
    char *msg = eb[0] ? ksrv_alloc(c, strlen(eb) + 1) : NULL;
    if (msg)
        strcpy(msg, eb);
    kk_elect_leaders_resp_topic *t = ksrv_alloc(c, sizeof *t);
    kk_elect_leaders_resp_partition *p = ksrv_alloc(c, sizeof *p);
    if (!t || !p)
        return -ENOMEM;
    /* one result, for the cluster's every partition */
    *p = (kk_elect_leaders_resp_partition){ -1, e, msg ? KK_STR(msg) : KK_STR_NULL };
    t->topic = KK_STR("*");
    t->partition_result.v = p;
    t->partition_result.n = 1;
    r.replica_election_results.v = t;
    r.replica_election_results.n = 1;
    return ksrv_respond(c, &r);
}
