/*
 * lib/replication/replication.h - replication of partitions to peer
 * processes, Kafka's model (contract).
 *
 * Every replicated partition has a leader and followers among the nodes
 * of a cluster.  Followers pull: each sends its leader Kafka's Fetch with
 * its replica id and fetch offset = its log end offset (LEO), appends
 * what comes back with the leader's offsets and leader epochs
 * (kpart_append_replica), durably, and so reports through its next fetch
 * offset what it holds on disk (what it wrote unsynced while it led is
 * synced before a fetch reports it).  The leader keeps, per replica, that
 * offset and when the replica was last caught up; the in-sync replicas
 * (ISR) are those caught up within replica.lag.time.max.ms; the high
 * watermark (HW) is the lowest of the leader's durable offset and the
 * offsets of the ISR members, advanced with kpart_advance_hw_durable (the
 * leader's followers copy its appends while it syncs them, and the HW
 * follows the leader's sync when that ends last), so that
 * consumers read below it and acks=all producers are acknowledged once it
 * passes their records.  An acks=all write is refused with
 * NOT_ENOUGH_REPLICAS while the ISR is smaller than min.insync.replicas.
 *
 * Leader epochs (KIP-101/279).  Every leadership term has an epoch,
 * stamped in every batch the leader appends and recorded in each
 * replica's leader-epoch checkpoint (lib/partition).  A follower that
 * starts following a leader epoch first asks the leader, with
 * OffsetForLeaderEpoch, where its latest epoch ends in the leader's log,
 * truncates to min(that, its own end of that epoch), and repeats until
 * the answer agrees with its log; only then does it fetch.  So a
 * follower's log below its fetch offset is always a prefix of the
 * leader's.  Fetches carry current_leader_epoch: a leader answers
 * FENCED_LEADER_EPOCH to an older one and UNKNOWN_LEADER_EPOCH to a newer
 * one, and only fetches of its own epoch move its view of a replica.
 *
 * Controller.  Who leads, in which epoch, and the ISR are decided by a
 * controller (ctl.c, krep_ctl) and told to the replicas with LeaderAndIsr
 * (Kafka's request 4); only the controller changes the ISR: a leader
 * proposes a change with AlterPartition (request 56) carrying the
 * partition epoch it is based on, and the change takes effect when the
 * controller accepts it.  Until then the leader computes the HW over the
 * maximal ISR (the committed ISR plus the replicas it proposed to add), so
 * that every replica the controller holds in the ISR has every record
 * below the HW (KIP-497's rule).  A new leader is chosen only from the ISR
 * (or, asked explicitly, any replica: an unclean election).
 *
 * Incarnations.  A node that restarts must never lead again in an epoch it
 * led before: records of that epoch it lost in the crash (beyond its
 * durable offset) may be on followers, and a second life in the same
 * epoch would write other records at those offsets under the same epoch,
 * which no truncation could tell apart.  So every node run has an
 * incarnation (Kafka's broker epoch), registered with the controller
 * (AlterPartition with no partitions); the controller gives a
 * partition whose leader registers a new incarnation a new leader epoch,
 * and a node ignores a LeaderAndIsr addressed to another incarnation
 * (STALE_BROKER_EPOCH).
 *
 * Shape.  The engine is sans-IO: it never reads a clock, opens a
 * connection or starts a thread.  Every call takes "now" in
 * milliseconds; outgoing requests are asked for per destination channel
 * (krep_chan_next: one request in flight per destination, as Kafka's
 * fetcher has one per leader) and their responses or failures handed
 * back; requests from peers are handed in (krep_serve, or the server's
 * handlers calling the krep_handle_* functions).  A deterministic
 * simulation drives nodes and a controller in one thread over the
 * in-memory network; module.c drives them with threads over real
 * transports.
 *
 * Layering: above lib/partition and lib/topic (it reaches partitions
 * through topics), beside lib/server (which calls the handlers), on
 * lib/kafka's codec.
 *
 * Threading: a krep_node is thread-safe.  One mutex (n->mu) covers its
 * state and is held across a partition's own I/O (a follower's append and
 * its sync, a truncation, becoming leader), never across an
 * acknowledgement completion: HW advances and the completions they run
 * happen after it is released.  A krep_ctl has a mutex of its own; the
 * two are never held together.
 */
#ifndef KLOG_REPLICATION_H
#define KLOG_REPLICATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/kafka.h"

struct klog;
struct kt_topic;
struct kpart;

#define KREP_MAX_NODES 16
/* The private API key of the quorum controller's raft frames on the peer
 * channel (quorum.h; outside Kafka's range: the server answers it only on
 * a quorum node, and closes other connections that send it). */
#define KREP_API_RAFT 32000
#define KREP_URL_MAX 256
/* The destination of a node's channel to its controller. */
#define KREP_DST_CTL (-1)

typedef struct krep_node krep_node;
typedef struct krep_ctl krep_ctl;

/* Zeroed memory that lives until the response it is for has been encoded
 * (the server's ksrv_alloc, or an arena); NULL when out of memory. */
typedef void *(*krep_alloc_fn)(void *ctx, size_t n);

typedef struct krep_peer {
    int32_t id;
    char url[KREP_URL_MAX];   /* where its listener serves peers */
} krep_peer;

typedef struct krep_config {
    int32_t node_id;              /* >= 0 */
    int64_t incarnation;          /* this run's: > 0, different every run */
    int npeers;                   /* every node, this one included */
    krep_peer peers[KREP_MAX_NODES];
    int64_t lag_max_ms;           /* replica.lag.time.max.ms [30000] */
    int32_t fetch_max_bytes;      /* replica.fetch.max.bytes [1 MiB] */
    int32_t fetch_wait_max_ms;    /* replica.fetch.wait.max.ms: the long poll asked [500] */
    int64_t fetch_backoff_ms;     /* after an error, or an empty answer without long poll [1000] */
    int32_t min_isr;              /* min.insync.replicas when a topic sets none; 0 = min(2, replicas) */
    int64_t heartbeat_ms;         /* replica.heartbeat.ms: registration again [2000] */
    int32_t controller_id;        /* the controller until a LeaderAndIsr names another [-1] */
    int32_t controller_epoch;     /* its epoch: LeaderAndIsr of older ones are refused [0] */
    /* A node that has not heard from its controller (registration or
     * LeaderAndIsr) for this long stops taking writes for the partitions
     * it leads (kpart_set_fenced) and Metadata names no leader for them
     * (krep_node_fenced): under the quorum controller, which by then has
     * taken it for dead and elected others, a leader cut off from it and
     * not from its clients sends them on instead of holding their writes
     * (or, acks=1, acknowledging records the new leader's term will
     * truncate).  Lifted once it hears from the controller again.
     * [0: never; the quorum sets replica.session.timeout.ms] */
    int64_t fence_after_ms;
} krep_config;

/* Defaults (the brackets above), no peers. */
void krep_config_init(krep_config *c);

/* ---- a node ------------------------------------------------------------------ */

/*
 * A node of the cluster over the open instance k.  Every partition of
 * every topic whose name does not start with "__" becomes a replica that
 * knows no leader yet: replicated (its HW starts at its log start: a
 * restarted replica exposes nothing it does not know to be committed), a
 * follower of nobody (producers refused with KLOG_ENOTLEADER) until a
 * LeaderAndIsr says otherwise.  Returns 0, -EINVAL, -ENOMEM.
 */
int krep_node_new(krep_node **out, struct klog *k, const krep_config *cfg);
/* Release the node (its topic references); the partitions stay as they
 * are.  NULL-safe. */
void krep_node_free(krep_node *n);

/* Start replicating a topic created after krep_node_new (a topic event). */
void krep_node_track(krep_node *n, struct kt_topic *t);
/* Forget every partition of topic (its replicas' and the others' states):
 * the controller deleted it.  Returns 0 or -ENOMEM (some kept: call
 * again). */
int krep_node_forget(krep_node *n, const char *topic);

int32_t krep_node_id(const krep_node *n);
struct klog *krep_node_klog(krep_node *n);
const krep_config *krep_node_config(const krep_node *n);
/* A counter that moves whenever the node applies a new state or hears of
 * a new controller (what to write down has changed). */
uint64_t krep_node_version(krep_node *n);
/* Whether the node is fenced (krep_config.fence_after_ms). */
bool krep_node_fenced(krep_node *n);

/* The controller this node answers to, and its epoch (the latest seen;
 * -1 and 0 before any). */
void krep_node_controller(krep_node *n, int32_t *id, int32_t *epoch);
/* This node now answers to controller id of epoch `epoch` (the one it
 * hosts): from then on a controller of an older epoch is refused.  Only
 * moves forward. */
void krep_node_set_controller(krep_node *n, int32_t id, int32_t epoch);

/*
 * Periodic work at now_ms: ISR shrink proposals for replicas that lagged
 * past replica.lag.time.max.ms, the leader's own sync when followers hold
 * more than it has on disk (the HW never passes the leader's durable
 * offset), HW advances.  Returns the time by which it wants to run again.
 */
int64_t krep_node_tick(krep_node *n, int64_t now_ms);

/* ---- channels: the requests a node sends ----------------------------------------
 *
 * A channel per destination (a peer's node id, or KREP_DST_CTL) with at
 * most one request in flight.  Whoever carries the frames asks for the
 * next request whenever the channel is idle, sends it, and hands back the
 * response (krep_chan_response) or the loss of it (krep_chan_failed: the
 * connection failed, or no answer within its timeout).  A node sends its
 * leaders Fetch and OffsetForLeaderEpoch, and its controller AlterPartition
 * (registration and ISR proposals).
 */

/* Write the next request for dst (a whole frame, header and body) into w
 * (reset first) and return 1; or return 0 when there is nothing to send
 * now, with *wake_ms the time to ask again (a backoff's end, or INT64_MAX:
 * when something changes, i.e. after the next call into the node).
 * Negative: an encoding error (w's cap). */
int krep_chan_next(krep_node *n, int32_t dst, int64_t now_ms, kk_wbuf *w, int64_t *wake_ms);
/* The response frame (after the length) that arrived on dst's channel.
 * Returns 0 (it was the awaited one: the channel is idle again), 1 (not
 * the one awaited: a duplicate or a late answer; ignored, the channel
 * still waits), or KLOG_ECORRUPT (undecodable: treated as a failure, the
 * channel is idle). */
int krep_chan_response(krep_node *n, int32_t dst, const void *frame, size_t len, int64_t now_ms);
/* The request in flight on dst's channel is lost; the channel is idle. */
void krep_chan_failed(krep_node *n, int32_t dst, int64_t now_ms);
/* Whether the channel waits for a response. */
bool krep_chan_busy(krep_node *n, int32_t dst);
/* The destinations this node may send to now: its controller and the
 * leaders of the partitions it follows (each once).  Returns the count
 * (at most cap written). */
int krep_node_dests(krep_node *n, int32_t *out, int cap);
/* A peer's URL (NULL if unknown). */
const char *krep_node_peer_url(const krep_node *n, int32_t id);

/* ---- requests a node serves ---------------------------------------------------------
 *
 * The klog server calls these from its handlers (lib/server); krep_serve
 * does it all for a caller without a server (the simulation).
 */

/*
 * LeaderAndIsr: apply each partition state that is newer than the one the
 * node holds (by leader epoch, then partition epoch) and addressed to
 * this incarnation (v2's broker_epoch; a mismatch answers
 * STALE_BROKER_EPOCH for the whole request and changes nothing; -1, from
 * a controller that does not know this run yet, is taken for states that
 * do not make this node leader, the others answer STALE_BROKER_EPOCH).
 * A request from an older controller epoch than the latest seen answers
 * STALE_CONTROLLER_EPOCH; a newer one makes its sender this node's
 * controller (KREP_DST_CTL), which it registers with.  The node becomes
 * leader (kpart_become_leader: durable) or follower of the named leader;
 * a follower then truncates before it fetches.  Fills r (arrays from
 * alloc).  Returns 0, or -ENOMEM.
 */
int krep_handle_leader_and_isr(krep_node *n, const kk_leader_and_isr_req *q, int16_t version, int64_t now_ms,
                               krep_alloc_fn alloc, void *actx, kk_leader_and_isr_resp *r);

/*
 * OffsetForLeaderEpoch: for each partition, where the asked epoch ends in
 * this node's log (kpart_end_offset_for_epoch), after the current leader
 * epoch check.  A replica's request (replica_id >= 0) needs this node to
 * lead; a consumer's too (Kafka answers NOT_LEADER_OR_FOLLOWER from a
 * follower).  n may be NULL (a node that is not replicated: every
 * partition leads).  Returns 0 or -ENOMEM.
 */
int krep_handle_offset_for_leader_epoch(krep_node *n, struct klog *k, const kk_offset_for_leader_epoch_req *q,
                                        krep_alloc_fn alloc, void *actx, kk_offset_for_leader_epoch_resp *r);

/*
 * A replica's Fetch of one partition, before the server reads it: checks
 * that this node leads it in the epoch asked (-1: any), that the replica
 * is one of its replicas and the offset within [log start, LEO]; then
 * takes the fetch offset as what the replica holds (its LEO in this
 * epoch), updates when it was last caught up, may propose it back into
 * the ISR, and advances the HW.  Returns a Kafka error code (NONE: read
 * from fetch_offset with kpart_read_log and answer the HW); *p gets the
 * partition when NONE, and with OFFSET_OUT_OF_RANGE (its log start and HW
 * go in the answer: a follower below the start starts again there), NULL
 * otherwise (valid while the caller holds a reference on its topic, which
 * it has).
 */
int16_t krep_replica_fetch(krep_node *n, const char *topic, int32_t partition, int32_t replica_id,
                           int32_t current_leader_epoch, int64_t fetch_offset, int64_t now_ms, struct kpart **p);

/*
 * Serve one request frame from a peer (LeaderAndIsr, OffsetForLeaderEpoch,
 * a replica's Fetch, answered at once with what there is; AlterPartition
 * when ctl is not NULL: the controller this node hosts): the response
 * frame goes into w (reset first).  Returns 0 (w holds the response),
 * KLOG_EFORMAT (not a request served here: close the connection), or
 * KLOG_ECORRUPT / KLOG_ETOOBIG / -ENOMEM.
 */
int krep_serve(krep_node *n, krep_ctl *ctl, const void *frame, size_t len, int64_t now_ms, kk_wbuf *w);

/* ---- what a node holds (tests, Metadata, the CLI) ----------------------------------- */

typedef struct krep_pstate {
    int32_t leader;               /* node id, -1 none */
    int32_t leader_epoch;
    int32_t partition_epoch;      /* bumped on every change */
    int nreplicas;
    int32_t replicas[KREP_MAX_NODES];
    int nisr;
    int32_t isr[KREP_MAX_NODES];
} krep_pstate;

/* The state this node last applied for topic/partition (or, for a
 * partition it holds no replica of, the last it was told): 0, or
 * KLOG_EUNKNOWN_PARTITION (none known yet). */
int krep_node_state(krep_node *n, const char *topic, int32_t partition, krep_pstate *out);

/* The high watermark of topic/partition as this node last knew it: its
 * own while it leads, else what its leader last told it in a Fetch answer
 * (not clipped to its own log: above its end when it lags); -1 unknown. */
int64_t krep_node_leader_hw(krep_node *n, const char *topic, int32_t partition);

/* The states this node knows, its replicas' then the others' (as
 * krep_ctl_list; topic names valid while n lives): fills up to cap,
 * returns the count. */
struct krep_ctl_entry;
int krep_node_list(krep_node *n, struct krep_ctl_entry *out, int cap);

/* A line per partition on what the node does with it (logs, debugging):
 * writes at most cap bytes (NUL-terminated), returns the length wanted. */
int krep_node_describe(krep_node *n, char *buf, size_t cap);

/* ---- the static controller's state file (static.c) --------------------------------------
 *
 * DIR/replication.state, text, written atomically (ks_write_atomic):
 *   klog-replication 1
 *   controller ID EPOCH
 *   partition TOPIC INDEX LEADER LEADER_EPOCH PARTITION_EPOCH R r1 .. rR I i1 .. iI
 *   end
 * The controller a node hosts writes it (its persist hook) before anyone
 * hears of a change; a node that hosts none writes what it was last told.
 */
#define KREP_STATE_FILE "replication.state"

typedef struct krep_state {
    int32_t ctl_id, ctl_epoch;
    int n;
    struct krep_ctl_entry *e;     /* topic names point into names */
    char (*names)[250];
} krep_state;

/* Read the file of k's directory: 1 (read), 0 (none), KLOG_ECORRUPT (not
 * one), -errno.  krep_state_free after, whatever the result. */
int krep_state_read(struct klog *k, krep_state *s);
void krep_state_free(krep_state *s);
/* Write it (serialised per node). */
int krep_node_write_state(krep_node *n, int32_t ctl_id, int32_t ctl_epoch, const struct krep_ctl_entry *e, int ne);
/* Write what the node was last told. */
int krep_node_persist(krep_node *n);

/*
 * Host the static controller of epoch `epoch` on node n, from states e (a
 * state file's, or a promote's): the partitions n leads get new leader
 * epochs, past any their logs hold (a state file that missed a change
 * must not give an epoch out twice) and past the one e gives them (an
 * epoch n led in before a crash took its records, which followers may
 * hold, from n's log), every topic not in e is added (the default
 * replication factor, n its leader), every peer is told of every
 * partition, n's incarnation is taken as registered, the
 * result written to the state file, and every later change too (its
 * persist hook).  Refuses with KLOG_EFENCED when a log holds an epoch of a
 * newer controller (this one was replaced: it must not lead).  *out: the
 * controller.  Returns 0, KLOG_EFENCED, -ENOMEM, the write's error.
 */
int krep_static_host(krep_node *n, int32_t epoch, const struct krep_ctl_entry *e, int ne, krep_ctl **out);

/* Topics created since: added to the hosted controller (the default
 * replication factor, krep_default_rf; n first among their replicas and
 * their leader) and written down.  Returns 1 (added), 0, or the write's
 * error. */
int krep_static_track(krep_node *n, krep_ctl *ctl);

/* A topic created through the controller (CreateTopics): partitions [0,
 * nparts) with rf replicas each (<= 0: the default), placed by
 * krep_assign with n first, or by assign (nparts rows of rf node ids,
 * each naming n: the static controller leads every partition it
 * creates); n leads them.  Written down.  Returns the number of
 * partitions added, -EINVAL, -ENOMEM, the write's error. */
int krep_static_add_topic(krep_node *n, krep_ctl *ctl, const char *topic, int32_t nparts, int rf,
                          const int32_t *assign);

/* DeleteTopics through the static controller: topic's record becomes a
 * deletion (its partitions leave ctl), written down.  Returns 0, -ENOMEM,
 * the write's error. */
int krep_static_delete_topic(krep_node *n, krep_ctl *ctl, const char *topic);

/*
 * klog promote on node n: the states n knows (else those of `known`, what
 * its state file held), each led by n in a new leader epoch of a new
 * controller epoch: the next multiple of KREP_MAX_NODES above max(what n
 * heard, floor), plus n's place in the peers (so that two nodes promoted
 * from the same knowledge, on either side of a partition, never share
 * one: at most 2047 promotes), the old leader out of the ISR; a
 * partition n holds no replica of goes to another in-sync replica (or,
 * unclean, any other replica; else to none); then
 * krep_static_host.  Refuses a partition whose ISR lacks n unless unclean
 * (KLOG_ENOTENOUGH), and a node that knows nothing (KLOG_ESTATE); errbuf
 * says why.  On success, *rep (may be NULL: not wanted) is a malloc'd
 * array of *nrep krep_promoted, one per partition n now leads, for the
 * caller to free (topic names valid while n lives).
 */
typedef struct krep_promoted {
    const char *topic;
    int32_t partition;
    int32_t old_leader;           /* -1 none */
    int64_t end;                  /* n's end offset: it leads from there */
    int64_t old_hw;               /* the HW n last knew (krep_node_leader_hw), -1 unknown */
    bool unclean;                 /* n was not in the ISR: [end, old_hw) was committed, now lost */
} krep_promoted;
int krep_static_promote(krep_node *n, const krep_state *known, int32_t floor, bool unclean, krep_ctl **out,
                        krep_promoted **rep, int *nrep, char *errbuf, size_t errsize);

/* ---- the controller ------------------------------------------------------------------ */

/*
 * Leader epochs are unique across controllers: a controller of epoch C
 * gives out leader epochs from C << 16 on, above any an older controller
 * gave (at most 65536 per controller epoch).  So two controllers that both
 * think they lead the cluster (a static controller restarted after another
 * was promoted) never make two leaders of one epoch, which truncation
 * could not tell apart; the older one's are the lower.
 */
/* Whether a topic replicates: every topic but the internal ones (__*),
 * and of those __consumer_offsets, so that a promoted node serves the
 * groups' committed offsets (Kafka's way: the leader of a group's offsets
 * partition is its coordinator; lib/server and lib/group/offsets.c). */
static inline bool krep_topic_replicated(const char *name)
{
    static const char offsets[] = "__consumer_offsets";
    if (name[0] != '_' || name[1] != '_')
        return true;
    for (size_t i = 0; i < sizeof offsets; i++)
        if (name[i] != offsets[i])
            return false;
    return true;
}

#define KREP_EPOCH_SHIFT 16
static inline int32_t krep_next_epoch(int32_t prev, int32_t controller_epoch)
{
    int64_t floor = (int64_t)controller_epoch << KREP_EPOCH_SHIFT;
    int64_t e = (int64_t)prev + 1 > floor ? (int64_t)prev + 1 : floor;
    return e > INT32_MAX ? INT32_MAX : (int32_t)e;
}

/*
 * A controller: the authority over its partitions' states.  Static: it
 * changes leaders only when told (krep_ctl_elect: an operator's
 * promote), and the ISR when a leader's proposal is based on the current
 * state.  It pushes every change (LeaderAndIsr) to the partition's
 * replicas through its channels, one per node, again until each
 * acknowledges it.  Returns 0, -ENOMEM.
 */
int krep_ctl_new(krep_ctl **out, int32_t controller_id, int32_t controller_epoch);
void krep_ctl_free(krep_ctl *c);

/* A node to push every partition's state to, a replica of it or not (a
 * replica is added with its partition).  Returns 0, -EINVAL (16 known). */
int krep_ctl_add_node(krep_ctl *c, int32_t node);

/* The replicas of partition `partition` of topic (rf of nodes[0..n)),
 * Kafka's round-robin placement, from a start drawn from the topic's name
 * (the same wherever computed); lead >= 0: that node first (the static
 * controller leads every partition).  The first is the preferred leader.
 * Returns rf into out, or -EINVAL. */
int krep_assign(const int32_t *nodes, int n, const char *topic, int32_t partition, int rf, int32_t lead,
                int32_t *out);
/* The replication factor of -1 (CreateTopics' default) and of topics
 * made by other means (in-process, auto-created): min(3, data nodes). */
static inline int krep_default_rf(int nodes) { return nodes < 3 ? nodes : 3; }

/* Add a partition: replicas[0..n) (node ids), led by `leader` (one of
 * them), all in sync, leader epoch 0.  Returns 0, -EEXIST, -EINVAL,
 * -ENOMEM. */
int krep_ctl_add_partition(krep_ctl *c, const char *topic, int32_t partition, const int32_t *replicas, int n,
                           int32_t leader);
/* Add a partition in a given state (a controller taking over from what a
 * node last knew).  Same returns. */
int krep_ctl_add_state(krep_ctl *c, const char *topic, int32_t partition, const krep_pstate *st);
/* Every partition the controller holds, in the order added: fills up to
 * cap (topic names valid while c lives), returns the count. */
struct krep_ctl_entry {
    const char *topic;
    int32_t partition;
    krep_pstate st;
};
typedef struct krep_ctl_entry krep_ctl_entry;
int krep_ctl_list(krep_ctl *c, krep_ctl_entry *out, int cap);
int32_t krep_ctl_epoch(const krep_ctl *c);

/* Take `inc` as node's incarnation without the leader epochs a
 * registration would give its partitions: for the node hosting the
 * controller, whose states were just made for this run.  Returns 0 or
 * -ENOENT (not a replica of any partition). */
int krep_ctl_set_incarnation(krep_ctl *c, int32_t node, int64_t inc);

/* The quorum backend (quorum.c): states change only through its
 * committed log, and its controller mirrors them.  put_state sets
 * topic/partition's state (adds it if unknown): the pushes follow.
 * register_node takes `inc` as node's incarnation; a new one forgets what
 * the node acknowledged (it lost it).  Returns 0, -EINVAL, -ENOMEM; -ENOENT
 * (register: not a replica of any partition). */
int krep_ctl_put_state(krep_ctl *c, const char *topic, int32_t partition, const krep_pstate *st);
int krep_ctl_register_node(krep_ctl *c, int32_t node, int64_t inc);

/* Called, with the controller's lock held, after every change of a state
 * and before anyone hears of it (an election, an ISR change, the new
 * epochs of a registration): the whole list, to write down.  A negative
 * return undoes the change (the proposal or registration is answered
 * KAFKA_STORAGE_ERROR, krep_ctl_elect returns it).  It must not call the
 * controller. */
typedef int (*krep_ctl_persist_fn)(void *arg, int32_t controller_id, int32_t controller_epoch,
                                   const krep_ctl_entry *e, int n);
void krep_ctl_set_persist(krep_ctl *c, krep_ctl_persist_fn fn, void *arg);

enum { KREP_ELECT_UNCLEAN = 1u << 0 };
/*
 * Make `leader` lead topic/partition in a new epoch.  It must be in the
 * ISR unless KREP_ELECT_UNCLEAN (then any replica: records the others
 * acknowledged may be lost).  The old leader leaves the ISR (it rejoins
 * once caught up, as any follower); the new one is in it.  Returns 0,
 * KLOG_EUNKNOWN_PARTITION, -EINVAL (not a replica), KLOG_ENOTENOUGH (not
 * in the ISR, and not unclean).
 */
int krep_ctl_elect(krep_ctl *c, const char *topic, int32_t partition, int32_t leader, unsigned flags);

/* The controller's state of topic/partition: 0 or KLOG_EUNKNOWN_PARTITION. */
int krep_ctl_state(krep_ctl *c, const char *topic, int32_t partition, krep_pstate *out);

/* A line per node and per partition on what the controller knows and
 * still has to tell (logs, debugging); as krep_node_describe. */
int krep_ctl_describe(krep_ctl *c, char *buf, size_t cap);

/* The controller's channels to nodes (LeaderAndIsr), as a node's.  A
 * node that has not registered yet is told only the states in which it
 * does not lead (broker_epoch -1); registering brings the rest. */
int krep_ctl_next(krep_ctl *c, int32_t node, int64_t now_ms, kk_wbuf *w, int64_t *wake_ms);
int krep_ctl_response(krep_ctl *c, int32_t node, const void *frame, size_t len, int64_t now_ms);
void krep_ctl_failed(krep_ctl *c, int32_t node, int64_t now_ms);

/* ---- topic records: configurations and deletions ------------------------------------
 *
 * Topics are part of the cluster's metadata as their partitions are
 * (KRaft's TopicRecord, ConfigRecord and RemoveTopicRecord): the
 * controller holds a record per topic, its configuration (the topic's own
 * keys as "key=value\n" lines, what klog_topic_describe gives) or its
 * deletion, and pushes every record a node has not acknowledged in its
 * version to that node before the partition states (so that a replica
 * creates a topic with its configuration), in a frame of a private API
 * key on the same channel:
 *   request  [i16 KREP_API_TOPICS][i16 0][i32 corr][string client id]
 *            [i32 controller id][i32 controller epoch][i32 n] then n of
 *            [string name][i8 deleted][i32 length][config bytes]
 *   response [i32 corr][i16 error]
 * A node answers STALE_CONTROLLER_EPOCH to an older controller; else it
 * deletes a deleted topic and forgets its partitions' states, or applies
 * the configuration to its copy of the topic (and keeps it for a copy it
 * creates later).  A deleted topic's partitions leave the controller with
 * its record; the record stays (a tombstone) so that a node that was away
 * deletes its copy when it is back.  A name is created again only once
 * every node acknowledged its deletion (Kafka before topic ids: a topic
 * "marked for deletion" until every replica deleted it).
 */
#define KREP_API_TOPICS 32001
#define KREP_TOPIC_CONFIG_MAX 65536

typedef struct krep_topic_rec {
    char *name;
    char *config;                 /* "" when none; NULL in a deletion */
    bool deleted;
} krep_topic_rec;

typedef struct krep_topics_req {
    int32_t corr, controller_id, controller_epoch;
    int n;
    krep_topic_rec *v;
} krep_topics_req;

/* Decode a KREP_API_TOPICS request frame (copies: krep_topics_req_free
 * after, whatever the result).  Returns 0, KLOG_ECORRUPT, -ENOMEM. */
int krep_topics_decode(const void *frame, size_t len, krep_topics_req *out);
void krep_topics_req_free(krep_topics_req *r);
/* Its response into w (reset first).  Returns 0 or w's error. */
int krep_topics_answer(kk_wbuf *w, int32_t corr, int16_t err);

/* Apply the records of q on node n (the configurations to its copies of
 * the topics, the deletions: its copy deleted, the partitions forgotten),
 * after the controller epoch check.  Returns a Kafka error code. */
int16_t krep_handle_topics(krep_node *n, const krep_topics_req *q);
/* Make k's copy of topic carry exactly the configuration `lines` (its own
 * keys that lines lack go back to the instance's).  Returns 0 (also: no
 * such topic here), or klog_topic_alter_config's error. */
int krep_apply_topic_config(struct klog *k, const char *topic, const char *lines);
/* A klog_conf of "key=value\n" lines (keys or values klog refuses are
 * left out); NULL when lines is empty, or out of memory. */
struct klog_conf;
struct klog_conf *krep_conf_of_lines(const char *lines);
/* Set each "key=value" line of lines on c (a line too long for a key and
 * a value is skipped): the first error, after all of them if keep_going. */
int krep_conf_set_lines(struct klog_conf *c, const char *lines, bool keep_going, char *errbuf, size_t errsize);

/* Set topic's record: its configuration (config: "key=value\n" lines, NULL
 * as "") or its deletion, which also drops its partitions from the
 * controller.  Unchanged records are left as they are; a changed one is
 * pushed to every node again.  Returns 0, -EINVAL, -ENOMEM. */
int krep_ctl_put_topic(krep_ctl *c, const char *topic, const char *config, bool deleted);
enum { KREP_TOPIC_NONE = 0, KREP_TOPIC_LIVE = 1, KREP_TOPIC_DELETED = 2 };
/* The record of topic: KREP_TOPIC_NONE, _LIVE (config copied into
 * config[0..cap) when not NULL) or _DELETED; *settled (may be NULL):
 * whether every node acknowledged it. */
int krep_ctl_topic(krep_ctl *c, const char *topic, char *config, size_t cap, bool *settled);

/* AlterPartition's answer to the partitions of a request, the same for
 * both controllers: apply(arg, topic, qp, &err) finds the partition (NULL:
 * UNKNOWN_TOPIC_OR_PARTITION), applies the proposal and sets err, and
 * returns the state the answer carries.  Returns 0 or -ENOMEM. */
typedef const krep_pstate *(*krep_alter_apply_fn)(void *arg, const char *topic,
                                                  const kk_alter_partition_req_partition *qp, int16_t *err);
int krep_alter_answer(const kk_alter_partition_req *a, krep_alter_apply_fn apply, void *arg, krep_alloc_fn alloc,
                      void *actx, kk_alter_partition_resp *r);

/* AlterPartition from a node: registration (no partitions: the node's
 * incarnation in broker_epoch), or ISR proposals.  Returns 0 or -ENOMEM. */
int krep_ctl_handle_alter_partition(krep_ctl *c, const kk_alter_partition_req *q, krep_alloc_fn alloc, void *actx,
                                    kk_alter_partition_resp *r);

/* Serve a request frame to the controller (AlterPartition).  As krep_serve. */
int krep_ctl_serve(krep_ctl *c, const void *frame, size_t len, int64_t now_ms, kk_wbuf *w);

#endif /* KLOG_REPLICATION_H */
