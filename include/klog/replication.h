/*
 * klog/replication.h - replication to peer processes: a standby that takes
 * over without losing an acknowledged record (klog(7), REPLICATION).
 *
 * A replicated node is an instance opened with replication.peers (every
 * node of the cluster, ID@URL,...) and node.id (this one), served by a
 * klog_server listening at its URL in that list: the same listener serves
 * Kafka clients and the other nodes.  Every topic replicates to every
 * node; one node leads (replication.leader for a new cluster), the others
 * copy it, and an acks=all write is acknowledged once every in-sync
 * replica holds it on disk.  The leader is also the cluster's controller
 * (static): it changes only when an operator promotes another node.
 * Replication is libklog-server's: it starts when the instance's first
 * klog_server is made (or at klog_replication_promote); until then the
 * instance's partitions take no producer's write.
 *
 *     klog_conf_set(conf, "node.id", "2", ...);
 *     klog_conf_set(conf, "replication.peers",
 *                   "1@tcp://10.0.0.1:9092,2@tcp://10.0.0.2:9092", ...);
 *     klog_open(&k, "data", conf, ...);          (a follower of node 1)
 *     klog_server_new(&s, k, ...); klog_server_listen(s, "tcp://10.0.0.2:9092");
 *     klog_server_start(s);
 *     ...                                        (node 1 is gone)
 *     klog_replication_promote(k, 0, err, sizeof err);   (node 2 leads)
 *
 * Errors: 0 or a negative code (klog/error.h).
 */
#ifndef KLOG_REPLICATION_PUBLIC_H
#define KLOG_REPLICATION_PUBLIC_H

#include <stddef.h>

#include <klog/version.h>
#include <klog/error.h>
#include <klog/instance.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Flag of the promote calls: make the node lead even if it is not an
 * in-sync replica (it may lack records the old leader acknowledged, which
 * are then lost). */
#define KLOG_PROMOTE_UNCLEAN 1u

/*
 * Make this node (the replicated instance k) the controller and the leader
 * of every partition, in new epochs: the other nodes follow it as soon as
 * it reaches them, and an old leader that comes back becomes a follower
 * and truncates what it wrote that this node does not have.  Safe (no
 * acknowledged record lost) when this node is an in-sync replica of every
 * partition and the old leader is down or cut off from every other node;
 * KLOG_ENOTENOUGH otherwise, unless KLOG_PROMOTE_UNCLEAN.  Returns once the
 * new state is on disk (the takeover itself follows within a heartbeat).
 * Returns 0, -EINVAL, KLOG_ESTATE (not replicated, or no state known yet),
 * KLOG_ENOTENOUGH, -errno (writing the state file); errbuf says why.
 */
KLOG_API int klog_replication_promote(klog *k, unsigned flags, char *errbuf, size_t errsize);

/*
 * The same, asked of the node listening at url (tcp://HOST:PORT, HOST:PORT,
 * unix:///PATH) over the Kafka protocol (ElectLeaders): what klog promote
 * does.  Waits up to timeout_ms for the connection and for the answer.
 * Returns what the node's klog_replication_promote returned (KLOG_ESTATE,
 * KLOG_ENOTENOUGH, -EIO for another failure), or the transport's error;
 * errbuf says why.
 */
KLOG_API int klog_replication_promote_node(const char *url, unsigned flags, int timeout_ms, char *errbuf,
                                           size_t errsize);

/*
 * klog_replication_promote_node with client settings in conf (may be
 * NULL): tls:// urls dial with its ssl.* keys (ssl.ca.location the node's
 * certificate must chain to, ssl.certificate.location and
 * ssl.key.location the client certificate a server with
 * ssl.client.auth=required verifies, ssl.endpoint.identification.algorithm),
 * and replication.sasl.mechanism=PLAIN authenticates as
 * replication.sasl.username with replication.sasl.password, as a node
 * dials its peers.  The principal needs ClusterAction on the cluster.
 * Same returns, and KLOG_ECONF (PLAIN without a user), -EACCES (SASL
 * refused), the TLS transport's errors.  conf is only read.
 */
KLOG_API int klog_replication_promote_node_conf(const char *url, const klog_conf *conf, unsigned flags,
                                                int timeout_ms, char *errbuf, size_t errsize);

/*
 * What a promote did to one partition the promoted node now leads, told to
 * the callback of the _report calls once the promote succeeded, one call
 * per partition: end_offset is the node's log end (it leads from there);
 * old_leader the leader before (-1: none); old_hw the high watermark the
 * node last knew (its own if it led, else what its leader last told it;
 * -1 unknown); unclean is not 0 when the node was not an in-sync replica:
 * the records the old leader held from end_offset on are then lost, and
 * [end_offset, old_hw), when old_hw is above end_offset, were committed
 * (acks=all writes acknowledged among them).  Runs on the calling thread
 * before the call returns; topic is valid during the call only; it must
 * not call back into klog.
 */
typedef void (*klog_promote_cb)(void *opaque, const char *topic, int32_t partition, int32_t old_leader,
                                int64_t end_offset, int64_t old_hw, int unclean);

/* klog_replication_promote, and cb (may be NULL) told what it did to each
 * partition; cb never runs when the call fails.  Same returns, -ENOMEM. */
KLOG_API int klog_replication_promote_report(klog *k, unsigned flags, klog_promote_cb cb, void *opaque,
                                             char *errbuf, size_t errsize);

/* klog_replication_promote_node_conf, and cb (may be NULL) told what the
 * node did to each partition (what klog promote prints); cb never runs
 * when the call fails.  Same returns. */
KLOG_API int klog_replication_promote_node_report(const char *url, const klog_conf *conf, unsigned flags,
                                                  int timeout_ms, klog_promote_cb cb, void *opaque, char *errbuf,
                                                  size_t errsize);

#ifdef __cplusplus
}
#endif
#endif
