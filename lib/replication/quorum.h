/*
 * lib/replication/quorum.h - the quorum controller backend (contract):
 * three or more voters keep the cluster's metadata (partitions: replicas,
 * leader, leader epoch, partition epoch, ISR; nodes: their registered
 * incarnations) in a replicated log with canonical raft (libraft, built
 * only with -Draft=enabled|auto and the library found: KLOG_HAVE_RAFT).
 * Records never go through raft: they replicate by Fetch as before
 * (replication.h); raft only decides who leads and who is in sync.
 *
 * The metadata log.  Each command is a small binary record applied, in log
 * order, to the state machine (the FSM) of every voter:
 *   SET  topic partition expect_pe state   the partition's new state, if
 *        its partition epoch still is expect_pe (-1: only if unknown): a
 *        compare-and-set, so that a proposal based on a state since
 *        changed does nothing;
 *   REG  node incarnation controller_epoch  a node's new run: every
 *        partition it leads gets a new leader epoch (it must never lead
 *        again in an epoch it led before its restart, replication.h);
 *   TOPIC topic config                     the topic's configuration (its
 *        record: replication.h's topic records);
 *   DEL  topic                             the topic's partitions and
 *        configuration go; a tombstone of the name stays.
 * The apply is deterministic: equal logs make equal states.
 *
 * The controller.  The raft leader of term T hosts a krep_ctl of
 * controller epoch T, filled from the FSM, which pushes LeaderAndIsr to the
 * replicas as the static controller does; every change reaches it through
 * the FSM, i.e. only once committed.  A node's AlterPartition (its
 * registration and heartbeats, or an ISR proposal) is served by the
 * quorum: the leader proposes the command and answers REQUEST_TIMED_OUT
 * until it is applied (the node asks again; the repeat of a proposal
 * already applied is answered with the new state), a voter that does not
 * lead answers NOT_CONTROLLER.  The leader watches liveness: a node it has
 * not heard from (registration heartbeats) within session_timeout_ms is
 * taken for dead, and a partition it leads gets a new leader, a live
 * member of the ISR, in a new leader epoch, the old leader out of the ISR
 * (Kafka's controller on a broker's lost session).  No live ISR member: the
 * partition waits (no unclean election).  Leader epochs come from
 * krep_next_epoch(le, T): above any an older term gave out.
 *
 * I/O.  libraft's struct raft_io is implemented here, sans-IO as the rest
 * of lib/replication: time is the now_ms of the last call, randomness a
 * splitmix64 from the configured seed, messages are queued per
 * destination and carried by whoever drives the channels (krep_quorum_next
 * and krep_quorum_response: one request in flight per destination, a
 * frame with the private API key KREP_API_RAFT on the ordinary peer
 * connection, answered with an empty response), and persisted through
 * klog's I/O layer (kio) in the node's directory: raft.meta (term and
 * vote, written atomically and synced before raft goes on) and raft.log
 * (the entries, each a record [length][crc32c][term][type][data], synced
 * before an append completes; a torn tail is cut at load).  A voter whose write of
 * these files fails stops (fail-stop: it delivers nothing more to raft,
 * answers no raft message, hosts no controller) until it is closed and
 * opened again: libraft's paths for failed writes are never taken.  Append and send
 * completions are delivered at the next krep_quorum_tick, never inside the
 * call that started them.
 *
 * Snapshots.  Every snapshot_threshold applied entries raft takes a
 * snapshot of the state machine (its partitions, the nodes' registered
 * runs, the hash of what it applied), written atomically to raft.snap
 * ([magic][index][term][configuration index][configuration][state]
 * [crc32c]), and raft.log is rewritten atomically without the entries the
 * snapshot covers but its last snapshot_trailing ones: a first record of
 * type KREP_RAFT_START names the index of its first entry.  raft.snap is
 * written before raft.log is cut, so a crash between the two leaves a
 * snapshot and a longer log, which load takes as it is.  A follower that
 * needs entries its leader no longer holds gets the snapshot
 * (InstallSnapshot, one message) and replaces its log and state with it.
 * So the metadata log stays bounded by the threshold plus the trailing
 * entries (and LOG_MAX, 64 MiB, is never reached by a long-lived cluster).
 *
 * Threading: every function takes the quorum's mutex; raft and its
 * callbacks run under it.  The hosted krep_ctl has its own lock, taken
 * inside the quorum's, never the other way round.
 */
#ifndef KLOG_REPLICATION_QUORUM_H
#define KLOG_REPLICATION_QUORUM_H

#include <stdbool.h>
#include <stdint.h>

#include "io/io.h"
#include "replication/replication.h"

/* The files in the node's directory. */
#define KREP_RAFT_META "raft.meta"
#define KREP_RAFT_LOG "raft.log"
#define KREP_RAFT_SNAP "raft.snap"
#define KREP_RAFT_START 0xffff      /* raft.log: the record naming its first index */

typedef struct krep_quorum krep_quorum;

typedef struct krep_quorum_config {
    int32_t node_id;                /* this voter (> 0) */
    int nvoters;                    /* the raft voters, this one included (>= 1) */
    int32_t voters[KREP_MAX_NODES];
    char voter_urls[KREP_MAX_NODES][KREP_URL_MAX]; /* raft's addresses (informative) */
    int ndata;                      /* the data nodes: the replicas of new partitions */
    int32_t data[KREP_MAX_NODES];
    uint64_t seed;                  /* raft's randomness (election timeouts) */
    unsigned election_timeout_ms;   /* [1000] */
    unsigned heartbeat_timeout_ms;  /* raft's [100] */
    int64_t session_timeout_ms;     /* a node not heard from this long is dead [6000] */
    int64_t propose_retry_ms;       /* a proposal not applied this long is made again [500] */
    unsigned snapshot_threshold;    /* entries applied between snapshots [1024] */
    unsigned snapshot_trailing;     /* entries a snapshot leaves in the log [128] */
    /* auto.leader.rebalance.enable: every rebalance_interval_ms the
     * controller gives back to each node the partitions it is the
     * preferred (first) replica of, live and in sync, once more than
     * rebalance_pct % of them are led elsewhere (Kafka's rule) [0: off] */
    int64_t rebalance_interval_ms;
    int rebalance_pct;
    bool unclean;                   /* tests: elections take a live out-of-sync replica first,
                                     * the ISR reset to it: loses acknowledged records (the
                                     * simulation's checker must catch it) */
} krep_quorum_config;

void krep_quorum_config_init(krep_quorum_config *c);

/*
 * Open the voter: raft's state from dir (through io), bootstrapped with
 * the voters on a first start.  node: this process's replication node, or
 * NULL for a witness (a voter with no data); the quorum tells it which
 * controller to answer to.  Returns 0, -EINVAL (config), -ENOMEM,
 * KLOG_ECORRUPT, -errno; errbuf says why.
 */
int krep_quorum_open(krep_quorum **out, kio *io, const char *dir, krep_node *node, const krep_quorum_config *cfg,
                     int64_t now_ms, char *errbuf, size_t errsize);
/* Close (pending raft work is cancelled).  NULL-safe. */
void krep_quorum_close(krep_quorum *q);

/* Timers, completions, hosting and unhosting the controller, elections of
 * partition leaders.  Returns when it wants to run again. */
int64_t krep_quorum_tick(krep_quorum *q, int64_t now_ms);

/* Propose the partitions [0, nparts) of topic that the metadata does not
 * hold yet: on the leader only.  Each has rf replicas among the data
 * nodes (<= 0: krep_default_rf), placed by krep_assign (Kafka's
 * round-robin: leaders spread over the nodes), or as assign says (nparts
 * rows of rf distinct data nodes); the first live one leads.  Returns the
 * number proposed, 0, KLOG_ENOTLEADER, -EINVAL, -ENOMEM. */
int krep_quorum_add_topic(krep_quorum *q, const char *topic, int32_t nparts, int rf, const int32_t *assign,
                          int64_t now_ms);

/* Topic records (replication.h): propose topic's configuration
 * ("key=value\n" lines; its record, before its partitions when it is
 * new) or its deletion (its partitions and configuration leave the
 * metadata; a tombstone stays): on the leader only.  Returns 0,
 * KLOG_ENOTLEADER, -EINVAL, -ENOMEM.  krep_quorum_topic: the committed
 * record, as krep_ctl_topic (without *settled). */
int krep_quorum_put_topic(krep_quorum *q, const char *topic, const char *config, int64_t now_ms);
int krep_quorum_delete_topic(krep_quorum *q, const char *topic, int64_t now_ms);
int krep_quorum_topic(krep_quorum *q, const char *topic, char *config, size_t cap);

/* Kafka's preferred leader election (ElectLeaders, type 0) of
 * topic/partition: its first replica leads, in a new leader epoch, the
 * old leader out of the ISR (it rejoins once caught up), if it is alive
 * and in sync: on the leader only.  Returns 0 (proposed, or a proposal
 * under way), 1 (it leads already), KLOG_ENOTLEADER,
 * KLOG_EUNKNOWN_PARTITION, KLOG_ENOTENOUGH (not alive or not in sync),
 * -ENOMEM. */
int krep_quorum_elect_preferred(krep_quorum *q, const char *topic, int32_t partition, int64_t now_ms);

/* The controller hosted now (the raft leader's), or NULL.  One replaced
 * stays allocated until krep_quorum_close (threads may still hold it; it
 * answers with a stale epoch). */
krep_ctl *krep_quorum_ctl(krep_quorum *q);
/* Raft's view: state (RAFT_LEADER ...), term, the leader it knows (0 none). */
void krep_quorum_raft(krep_quorum *q, int *state, uint64_t *term, int32_t *leader);
/* The last applied index and a hash chained over every command applied
 * (equal on voters that applied equal logs up to that index). */
void krep_quorum_applied(krep_quorum *q, uint64_t *index, uint64_t *hash);
/* The index of raft.log's first entry, the entries it holds and the last
 * snapshot's index (tests: the log is compacted). */
void krep_quorum_log_span(krep_quorum *q, uint64_t *first, uint64_t *n, uint64_t *snapshot);
/* Every committed partition state (topic names valid while q lives):
 * fills up to cap, returns the count. */
int krep_quorum_list(krep_quorum *q, krep_ctl_entry *out, int cap);
/* The committed state of topic/partition: 0, KLOG_EUNKNOWN_PARTITION. */
int krep_quorum_state(krep_quorum *q, const char *topic, int32_t partition, krep_pstate *out);

/* ---- the raft channel to each other voter (as krep_chan_*) ------------------------ */
int krep_quorum_next(krep_quorum *q, int32_t dst, int64_t now_ms, kk_wbuf *w, int64_t *wake_ms);
int krep_quorum_response(krep_quorum *q, int32_t dst, const void *frame, size_t len, int64_t now_ms);
void krep_quorum_failed(krep_quorum *q, int32_t dst, int64_t now_ms);
/* dst's address refused a connection: on the controller, dst is dead until
 * heard from again (its partitions get new leaders now). */
void krep_quorum_refused(krep_quorum *q, int32_t dst, int64_t now_ms);
bool krep_quorum_busy(krep_quorum *q, int32_t dst);

/* Serve a frame from a peer: raft's (KREP_API_RAFT) and AlterPartition
 * (the controller's); the response goes into w.  Returns 0, KLOG_EFORMAT
 * (not one of these: the caller serves it otherwise), KLOG_ECORRUPT,
 * -ENOMEM. */
int krep_quorum_serve(krep_quorum *q, const void *frame, size_t len, int64_t now_ms, kk_wbuf *w);

/* The server's AlterPartition handler on a quorum node (as krep_quorum_serve
 * does it for a frame).  Returns 0 or -ENOMEM. */
int krep_quorum_alter_partition(krep_quorum *q, const kk_alter_partition_req *a, int64_t now_ms, krep_alloc_fn alloc,
                                void *actx, kk_alter_partition_resp *r);

#endif
