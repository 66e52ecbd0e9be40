/*
 * lib/replication/module.h - replication as an instance's module (the
 * contract lib/server uses).  module.c says how the module runs.
 */
#ifndef KLOG_REPLICATION_MODULE_H
#define KLOG_REPLICATION_MODULE_H

#include <stdbool.h>

#include "replication/replication.h"
#include "topic/topic.h"

typedef struct krep_mod krep_mod;

/* The module, bound by klog_server_new and klog_replication_promote
 * (klog__module_bind) in the place lib/compose.c holds for it, after
 * "background", before "groups". */
extern const kt_module krep_module;

/* The instance's replication, or NULL when it has none (no
 * replication.peers: a single node) or none yet (not bound: no server
 * made). */
krep_mod *krep_mod_of(struct klog *k);
krep_node *krep_mod_node(krep_mod *m);
/* Every node of the cluster (this one included): *n entries. */
const krep_peer *krep_mod_peers(krep_mod *m, int *n);

/* The server's handlers: LeaderAndIsr (creates the topics it names that
 * this node lacks, applies, writes the state file), AlterPartition (the
 * controller this node hosts, else NOT_CONTROLLER), a replica's Fetch of
 * one partition (krep_replica_fetch at the module's clock). */
int krep_mod_leader_and_isr(krep_mod *m, const kk_leader_and_isr_req *q, int16_t version, krep_alloc_fn alloc,
                            void *actx, kk_leader_and_isr_resp *r);
int krep_mod_alter_partition(krep_mod *m, const kk_alter_partition_req *q, krep_alloc_fn alloc, void *actx,
                             kk_alter_partition_resp *r);
int16_t krep_mod_replica_fetch(krep_mod *m, const char *topic, int32_t partition, int32_t replica_id,
                               int32_t current_leader_epoch, int64_t fetch_offset, struct kpart **p);

/* Partition `partition` of `topic` as this node knows it: its node's
 * state (from LeaderAndIsr), or on a witness (no node) the quorum's
 * committed one, so that a client asking a witness is sent to the data
 * nodes.  Returns 0, KLOG_EUNKNOWN_PARTITION (not known yet),
 * KLOG_ESTATE (neither: not started, or stopped). */
int krep_mod_state(krep_mod *m, const char *topic, int32_t partition, krep_pstate *out);

/* The controller this node answers to and its epoch (-1, 0: none known);
 * on a witness, the raft leader it knows. */
void krep_mod_controller(krep_mod *m, int32_t *id, int32_t *epoch);

/* The nodes that hold data (the peers but the witnesses): *out gets
 * them (KREP_MAX_NODES room), returns the count. */
int krep_mod_data_nodes(krep_mod *m, int32_t *out);
/* Whether this node hosts the controller now (static: it leads; quorum:
 * it leads raft).  Topics are created there (CreateTopics elsewhere is
 * answered NOT_CONTROLLER, and Metadata names the controller). */
bool krep_mod_is_controller(krep_mod *m);
/* A client's Metadata asked for topic `name`, which does not exist, with
 * auto-creation allowed: create it with the defaults through the
 * controller, in the background (here if this node is the controller,
 * else by a CreateTopics sent to it).  0: on its way (the client is
 * answered LEADER_NOT_AVAILABLE and asks again); < 0: not (-EAGAIN, too
 * many at once). */
int krep_mod_auto_create(krep_mod *m, const char *name);
/* Every partition state this node knows (its replicas', the others', or
 * on a witness the quorum's): *out allocated (free() it; topic names
 * valid while the module runs), returns the count or -ENOMEM. */
int krep_mod_list(krep_mod *m, krep_ctl_entry **out);
/* The number of partitions of topic the states name (0: none). */
int krep_mod_topic_parts(krep_mod *m, const char *topic);
/*
 * CreateTopics on the controller: nparts (<= 0: num.partitions) with rf
 * replicas each (<= 0: krep_default_rf of the data nodes) placed by
 * krep_assign, or as assign says (nparts rows of rf node ids).  Static:
 * the topic is created here with conf, and this node leads every
 * partition (it must be a replica of each).  Quorum: a metadata record,
 * answered once committed (within timeout_ms).  The topic's record (its
 * configuration: conf's topic keys) goes first: the replicas create the
 * topic configured so when told.  A name deleted is created again once
 * every node took the deletion (-EEXIST until then).  Returns 0,
 * KLOG_ENOTLEADER (not the controller), -EEXIST, -EINVAL, -ETIMEDOUT,
 * -ENOMEM, a creation's error; errbuf says why.
 */
int krep_mod_create_topic(krep_mod *m, const char *name, int nparts, const klog_conf *conf, int rf,
                          const int32_t *assign, int timeout_ms, char *errbuf, size_t errsize);

/* The topic's record (replication.h) as the controller this node hosts,
 * or the quorum, holds it: KREP_TOPIC_NONE, _LIVE (its configuration
 * copied into config[0..cap)), _DELETED. */
int krep_mod_topic_config(krep_mod *m, const char *name, char *config, size_t cap);

/* The configuration the controller last told this node for topic (its
 * record, whether this node holds a replica or not): 0, or
 * KLOG_EUNKNOWN_TOPIC (none told). */
int krep_mod_told_config(krep_mod *m, const char *name, char *config, size_t cap);

/*
 * DeleteTopics on the controller: the topic's record becomes a deletion
 * (static: written down, after this node deleted its copy; quorum: a
 * metadata record, answered once committed, within timeout_ms), which
 * every node takes when told: it deletes its copy and forgets the
 * partitions.  Waits (at most timeout_ms, 5 s) for every node to have
 * taken it, so that the name can be created again at once.  Returns 0,
 * KLOG_ENOTLEADER, KLOG_EUNKNOWN_TOPIC, -EPERM (an internal topic),
 * -ETIMEDOUT, a deletion's error; errbuf says why.
 */
int krep_mod_delete_topic(krep_mod *m, const char *name, int timeout_ms, char *errbuf, size_t errsize);

/* AlterConfigs (incremental false) or IncrementalAlterConfigs of
 * replicated topic `name`, checked on a node that is not the controller,
 * forwarded to the controller as Kafka's brokers forward them (KIP-590;
 * kafka-python's admin client sends AlterConfigs to any node).  Start
 * copies the change (the keys of set SET, unset[] DELETE, or null values
 * in AlterConfigs) into a job that the module's background thread sends
 * to the controller on a fresh peer connection with the replication's
 * SASL, again where the metadata then says the controller is while it
 * answers NOT_CONTROLLER or cannot be reached (up to 10 s): a server
 * worker never waits on the network for it.  0 and *out, or -EAGAIN (16
 * in flight), -ENOMEM, KLOG_ECLOSED, -EINVAL (too long).
 *
 * Done polls it: 0 while under way; 1 once the controller answered and,
 * after a success, this node's own copy shows the change (up to 5 s more),
 * with *rc (0, or KLOG_ENOTLEADER: no controller known, or the
 * connection's error) and the controller's answer in *kerr, msg saying
 * why.  Release lets go of it, done or not (any thread).
 */
typedef struct krep_fwd krep_fwd;
int krep_mod_forward_start(krep_mod *m, const char *name, bool incremental, const klog_conf *set,
                           const char *const *unset, size_t nunset, bool validate_only, krep_fwd **out);
int krep_mod_forward_done(krep_fwd *f, int *rc, int16_t *kerr, char *msg, size_t msize);
void krep_mod_forward_release(krep_fwd *f);

/*
 * AlterConfigs on the controller: the topic's configuration in its record
 * becomes the record's with the keys of set set and the keys unset[]
 * removed (static: made on this node's copy first, which checks it;
 * quorum: a metadata record, answered once committed), and every replica
 * applies it when told.  Returns 0, KLOG_ENOTLEADER, KLOG_EUNKNOWN_TOPIC,
 * KLOG_ECONF, -ETIMEDOUT, -ENOMEM; errbuf says why.
 */
int krep_mod_alter_topic(krep_mod *m, const char *name, const klog_conf *set, const char *const *unset, size_t nunset,
                         int timeout_ms, char *errbuf, size_t errsize);

/* CreatePartitions on the controller: the topic grows to total
 * partitions, placed with its replication factor (static: this node
 * leads them; quorum: answered once committed; the replicas create
 * theirs when told, whether this node is one or not).  Returns 0,
 * KLOG_ENOTLEADER, KLOG_EUNKNOWN_TOPIC, -EINVAL, -ETIMEDOUT. */
int krep_mod_add_partitions(krep_mod *m, const char *name, int total, int timeout_ms, char *errbuf, size_t errsize);

/* Whether the quorum controller runs here (not the static one). */
bool krep_mod_is_quorum(krep_mod *m);
/* ElectLeaders of the preferred type on the quorum's controller:
 * krep_quorum_elect_preferred, answered once committed (within
 * timeout_ms).  Returns 0 (the first replica leads now), 1 (it led
 * already), KLOG_ESTATE (no quorum), KLOG_ENOTLEADER,
 * KLOG_EUNKNOWN_PARTITION, KLOG_ENOTENOUGH, -ETIMEDOUT. */
int krep_mod_elect_preferred(krep_mod *m, const char *topic, int32_t partition, int timeout_ms);

/* A raft frame (quorum.h's KREP_API_RAFT) or a topic-records frame
 * (replication.h's KREP_API_TOPICS) from a peer: the response into
 * w.  Returns 0, KLOG_EFORMAT (no quorum here), KLOG_ECORRUPT, -ENOMEM. */
int krep_mod_raft_frame(krep_mod *m, const void *frame, size_t len, kk_wbuf *w);

/* klog promote: this node becomes the controller and the leader of every
 * partition it knows, in new epochs (klog_replication_promote); *rep
 * (rep may be NULL) what it leads each from, as krep_static_promote. */
int krep_mod_promote(krep_mod *m, bool unclean, krep_promoted **rep, int *nrep, char *errbuf, size_t errsize);

#endif
