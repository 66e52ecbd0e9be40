/*
 * lib/group/group.h - consumer group coordinators, the interface members
 * reach them through, the member state machine, and the committed-offsets
 * store (contract for lib/consumer and the admin calls).
 *
 * One registry per instance holds every group's coordinator and the
 * committed offsets.  It is the state of the groups module (kg_groups_module,
 * topic.h: created at klog_open, its timer stopped before the partition
 * logs close, freed after); its first use reads the committed offsets and
 * starts the timer (kg_registry_get).  Members reach a coordinator only through
 * kg_coordinator_ops - join, sync, heartbeat, leave, commit, committed,
 * list, describe - requests and replies that carry only names, ids,
 * generations, partition lists and opaque bytes, so that a member in
 * another process (a Kafka client behind a network front end) can use the
 * same coordinator as the consumers of this process.  kg_coordinator_local
 * gives the instance's own.  No call blocks waiting for other members: a
 * request that cannot be answered yet says so (KG_WAIT), and the
 * coordinator calls the member's notify function when the group changes;
 * the member then asks again.
 *
 * Two kinds of member share one group:
 *   - native members (klog consumers of this process; kg_join_req with
 *     protocol_type NULL) join with their subscription, strategy and
 *     (cooperative) owned partitions, and learn their assignment through
 *     heartbeat;
 *   - classic members (Kafka's JoinGroup/SyncGroup; protocol_type set) join
 *     with a protocol type and a list of (protocol name, opaque metadata);
 *     a leader among them receives every member's metadata and sends every
 *     member's assignment as opaque bytes in its SyncGroup.
 * A native member counts as protocol type "consumer" with one protocol, its
 * strategy's name ("range", "roundrobin", "cooperative-sticky").
 *
 * The rebalance, for both kinds (Kafka's classic protocol):
 *   - a new member, a changed subscription (native) or protocol list
 *     (classic), a member leaving or expiring, a classic leader rejoining
 *     while Stable, or a change in a native member's subscribed topics (a
 *     topic created that matches a pattern, partitions added) starts a
 *     rebalance: every member must rejoin (PreparingRebalance);
 *   - when all have rejoined, or the rebalance timeout (the longest of the
 *     members') has passed (members that did not rejoin are removed), the
 *     join phase completes: the generation is bumped and the group picks a
 *     protocol every member supports (each member votes for the first of its
 *     protocols that all support; most votes wins, ties to the earliest
 *     member's preference);
 *   - then the assignment, computed in one of two ways (below), and Stable.
 * Heartbeats: a native member's ride on its polls and it is removed when
 * not heard from for min(session.timeout.ms, max.poll.interval.ms); a
 * classic member is removed after its session timeout, except while it
 * waits for its JoinGroup answer or for the leader's SyncGroup.  A static
 * member (group.instance.id) that leaves keeps its place and partitions for
 * its session timeout; a member joining with the same instance id takes
 * them over without a rebalance (the old member id is fenced).
 *
 * WHO ASSIGNS - the choice, and why.
 *   All members native: the coordinator computes the assignment itself
 *   (lib/group/assign.c, the group's strategy; as in KIP-848) and turns
 *   Stable at once; members learn it through heartbeat.  No leader, no
 *   SyncGroup round trip: today's behaviour, unchanged.
 *   Any classic member present: the coordinator relays.  A classic member
 *   is the leader (the previous leader if it is still there, else the first
 *   classic member to have joined); the group waits in CompletingRebalance
 *   for its SyncGroup.  Native members are shown to the leader as ordinary
 *   "consumer" members: their subscription encoded as a ConsumerProtocol
 *   Subscription v1 (patterns expanded to the matching existing topics;
 *   owned partitions for cooperative-sticky); the leader's ConsumerProtocol
 *   Assignment for a native member is decoded into its partition list (a
 *   leader whose assignment for a native member does not decode gets
 *   -EINVAL and may send again; topics that do not exist here are dropped).
 *   With cooperative-sticky a native member that lost partitions revokes
 *   them and rejoins, as a Kafka cooperative consumer does.
 *   Why relay rather than always compute (which the design notes of
 *   replication-and-wire.md s3.4 suggested): only relaying serves what the
 *   coordinator cannot know - protocol types other than "consumer"
 *   (Connect, Kafka Streams), custom assignors, and the user data assignors
 *   exchange (Streams' task assignment lives there); computing would serve
 *   only the three built-in assignor names and drop user data, so a relay
 *   path is needed in any case.  With it in place, letting the client leader
 *   assign whenever one is present keeps one assignor per group (never a
 *   Kafka assignor's cooperative plan mixed with klog's), and costs the
 *   native members nothing when no client is present.  The price: a mixed
 *   group's rebalance waits for the client leader's SyncGroup, bounded by
 *   the rebalance timeout (a leader that has not synced by then is removed,
 *   and the group rebalances without it).
 *
 * Errors as Kafka's (a wire front end maps them back):
 *   UNKNOWN_MEMBER_ID            KLOG_EUNKNOWN_MEMBER
 *   ILLEGAL_GENERATION           KLOG_EFENCED
 *   REBALANCE_IN_PROGRESS        KLOG_EREBALANCE
 *   INCONSISTENT_GROUP_PROTOCOL  KLOG_ECONF
 *   MEMBER_ID_REQUIRED           status KG_MEMBER_ID_REQUIRED (not an error)
 *   INVALID_GROUP_ID             KLOG_EBADNAME
 *
 * Commits are fenced: accepted from a member of the current generation (or,
 * with member id NULL and generation -1, from a standalone consumer or an
 * admin call while the group has no members; no member id with a
 * generation is KLOG_EUNKNOWN_MEMBER, as Kafka's); refused with KLOG_EREBALANCE
 * while the group waits for the leader's SyncGroup, and from a member that
 * has already rejoined a rebalance in progress.  Offsets are records in the
 * compacted topic __consumer_offsets (key: group, topic, partition; value:
 * offset, metadata, commit time), read back at the first use after open.
 * So is each group's generation, written whenever a join phase completes:
 * a group created again - after a restart, or after kg_delete - goes on
 * from its stored generation, so a group name's generations never repeat
 * and a member holding one from an earlier run cannot pass the fence
 * (record formats and the cost of a failed write: offsets.c).
 *
 * Threading: every coordinator op is thread-safe.  One mutex guards the
 * groups, another the offsets store (taken in that order); a commit holds
 * both across its append (and its fdatasync when synchronous).  Notify
 * functions run with the groups mutex held, on whatever thread changed the
 * group (a member's op or the timer): they must not block, allocate or call
 * into klog (write an eventfd, set a flag).  A timer thread expires members
 * and completes timed-out rebalances every 50 ms.  The member state machine
 * (kg_membership) is used by one thread at a time, its owner's.
 */
#ifndef KLOG_GROUP_H_INTERNAL
#define KLOG_GROUP_H_INTERNAL

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <klog/group.h>
#include "group/assign.h"
#include "group/conf_keys.h"

struct klog;
typedef struct kg_registry kg_registry;

#define KG_ID_MAX 160                       /* member id, NUL included */
#define KG_OFFSETS_TOPIC "__consumer_offsets"
#define KG_META_MAX 4096                    /* commit metadata */
#define KG_NAME_MAX 255                     /* protocol type, protocol name, instance id, client id */
#define KG_PROTOCOLS_MAX 32                 /* protocols in one JoinGroup */
#define KG_PROTO_META_MAX (1u << 20)        /* one protocol's metadata bytes */
#define KG_ASSIGN_BYTES_MAX (4u << 20)      /* one member's assignment bytes */

/* The groups module (lib/compose.c lists it). */
struct kt_module;
extern const struct kt_module kg_groups_module;

/* The instance's registry.  create: make its first use if not made yet
 * (read __consumer_offsets back, start the timer thread), which may fail
 * with KLOG_ECORRUPT, -EAGAIN, -ENOMEM or -errno and is tried again by the
 * next call.  create=false: NULL (and 0) until the first use.  -ENOTSUP
 * when the instance does not run the groups module. */
int kg_registry_get(struct klog *k, bool create, kg_registry **out);

/* ---- requests and replies ------------------------------------------------------ */

/* A classic member's protocol: an assignor name and its opaque metadata
 * (a ConsumerProtocol Subscription for protocol type "consumer"). */
typedef struct kg_protocol {
    const char *name;
    const uint8_t *meta;
    size_t meta_len;
} kg_protocol;

typedef struct kg_join_req {
    const char *group;
    const char *member_id;      /* "" or NULL: a new member */
    const char *instance_id;    /* static membership, or NULL */
    const char *client_id;
    int64_t session_ms, rebalance_ms;   /* rebalance_ms <= 0: session_ms (JoinGroup v0) */
    /* Called when the group changes (rebalance started or completed, the
     * leader's assignment arrived, a member expired): ask again.  See the
     * threading note above.  NULL: none.  Stays registered until the member
     * leaves or is removed. */
    void (*notify)(void *arg);
    void *notify_arg;

    /* native members (protocol_type NULL) */
    const char *const *subs;    /* topic names or "^regex" */
    unsigned nsubs;
    enum kg_strategy strategy;
    const kg_tp *owned;         /* cooperative: what it still owns */
    unsigned nowned;
    int32_t generation;         /* of owned, -1 if none */

    /* classic members (Kafka JoinGroup) */
    const char *protocol_type;  /* "consumer", "connect", ...; NULL: native */
    const kg_protocol *protocols;   /* in preference order, 1..KG_PROTOCOLS_MAX */
    unsigned nprotocols;
    bool require_member_id;     /* JoinGroup v4+: a new member without
                                   instance id gets KG_MEMBER_ID_REQUIRED */
} kg_join_req;

enum kg_status {
    KG_STABLE = 1,  /* heartbeat: assignment for `generation` (new when it differs from the
                       member's); join/sync (classic): the answer is in the reply */
    KG_WAIT = 2,    /* joined this rebalance; waiting for the others (or the leader) */
    KG_REJOIN = 3,  /* a rebalance started: revoke (eager) and rejoin */
    KG_MEMBER_ID_REQUIRED = 4,  /* classic join: rejoin with member_id (Kafka's error 79) */
};

/* A member as the leader sees it. */
typedef struct kg_member_meta {
    char *member_id;
    char *instance_id;          /* NULL: dynamic */
    uint8_t *meta;              /* its metadata for the chosen protocol */
    size_t meta_len;
} kg_member_meta;

typedef struct kg_join_resp {
    enum kg_status status;      /* native: KG_WAIT (the assignment comes through heartbeat);
                                   classic: KG_WAIT (ask again after notify), KG_STABLE, or
                                   KG_MEMBER_ID_REQUIRED */
    char member_id[KG_ID_MAX];
    /* classic, KG_STABLE: */
    int32_t generation;
    char protocol_type[KG_NAME_MAX + 1];
    char protocol[KG_NAME_MAX + 1];
    char leader[KG_ID_MAX];
    kg_member_meta *members;    /* to the leader only (allocated; kg_join_resp_free) */
    unsigned nmembers;
} kg_join_resp;

void kg_join_resp_free(kg_join_resp *r);

/* One member's assignment in the leader's SyncGroup. */
typedef struct kg_member_bytes {
    const char *member_id;
    const uint8_t *data;
    size_t len;
} kg_member_bytes;

typedef struct kg_sync_req {
    const char *group;
    const char *member_id;
    int32_t generation;
    const char *protocol_type;  /* SyncGroup v5: checked when not NULL */
    const char *protocol;
    const kg_member_bytes *assign;  /* the leader's; members it leaves out get nothing */
    unsigned nassign;
} kg_sync_req;

typedef struct kg_sync_resp {
    enum kg_status status;      /* KG_STABLE (data is the member's) or KG_WAIT (the
                                   leader has not synced: ask again after notify) */
    uint8_t *data;              /* allocated (kg_sync_resp_free); NULL when len 0 */
    size_t len;
} kg_sync_resp;

void kg_sync_resp_free(kg_sync_resp *r);

typedef struct kg_beat {
    enum kg_status status;
    int32_t generation;
    kg_tp *assign;          /* native, KG_STABLE with a new generation: the member's
                               partitions (allocated; topic strings live as long as the
                               registry) */
    unsigned nassign;
    bool new_generation;
    bool rejoin_after;      /* cooperative: revoke what is not in assign, then rejoin */
} kg_beat;

typedef struct kg_offset {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *metadata;   /* NULL = "" */
    int err;                /* out: per-entry result */
} kg_offset;

/* A group as DescribeGroups shows it. */
typedef struct kg_member_info {
    char *member_id, *instance_id, *client_id;  /* instance_id NULL: dynamic */
    bool classic;
    uint8_t *meta;          /* subscription for the group's protocol (native members: a
                               ConsumerProtocol Subscription v1) */
    size_t meta_len;
    uint8_t *assign;        /* assignment (native members: ConsumerProtocol Assignment v1) */
    size_t assign_len;
} kg_member_info;

typedef struct kg_group_info {
    const char *state;      /* "Empty", "PreparingRebalance", "CompletingRebalance",
                               "Stable" (static strings) */
    char protocol_type[KG_NAME_MAX + 1];
    char protocol[KG_NAME_MAX + 1];
    int32_t generation;
    char leader[KG_ID_MAX]; /* "" while the coordinator assigns */
    kg_member_info *members;
    unsigned nmembers;
} kg_group_info;

void kg_group_info_free(kg_group_info *g);

/* ---- the coordinator interface ------------------------------------------------- */

#define KG_COORDINATOR_MAGIC 0x4b430000u            /* "KC" in the upper half */
#define KG_COORDINATOR_V1 (KG_COORDINATOR_MAGIC | 1u)

/*
 * A coordinator.  Every op is thread-safe, answers at once (it never waits
 * for other members) and may block on file I/O (commit).  Ops never call
 * back into the caller except through a join's notify.  Buffers passed in
 * are only read during the call; what a reply holds is the caller's to free
 * with the matching _free.  New ops are only ever appended; callers check
 * kg_coordinator_check before the first call.
 */
typedef struct kg_coordinator_ops {
    uint32_t version;           /* KG_COORDINATOR_V1 */
    uint32_t size;              /* sizeof the implementation's table */

    /* Join or rejoin (Kafka JoinGroup, or a native member's join).  A
     * classic member's pending join is answered once: KG_WAIT until its
     * rebalance has completed, then KG_STABLE with the generation, protocol
     * and leader (and, to the leader, the members); asking again while it
     * waits is not a new join.  Returns 0 with *out (kg_join_resp_free),
     * KLOG_EUNKNOWN_MEMBER (member_id given but not in the group: rejoin as
     * new), KLOG_ECONF (no protocol in common with the group, or another
     * protocol type), KLOG_EBADNAME, -EINVAL (a request over the caps above,
     * or a native strategy that does not exist), -ENOMEM. */
    int (*join)(void *self, const kg_join_req *q, kg_join_resp *out);

    /* SyncGroup (classic members).  The leader's stores every member's
     * assignment and completes the rebalance; a follower's answers KG_WAIT
     * until then.  Returns 0 with *out (kg_sync_resp_free),
     * KLOG_EUNKNOWN_MEMBER, KLOG_EFENCED (generation), KLOG_EREBALANCE (a
     * rebalance is in progress: rejoin), KLOG_ECONF (protocol type or name
     * differ), -EINVAL (a native member; assignment bytes over the cap; the
     * leader's assignment of a native member does not decode), -ENOMEM. */
    int (*sync)(void *self, const kg_sync_req *q, kg_sync_resp *out);

    /* The member is alive.  generation: the one whose assignment it holds.
     * Native members: 0 with *out (status, and the assignment when the
     * generation is new; free out->assign with free()).  Classic members
     * (Kafka Heartbeat): 0 (status KG_STABLE or KG_WAIT), KLOG_EREBALANCE,
     * KLOG_EFENCED.  Both: KLOG_EUNKNOWN_MEMBER (removed: its partitions
     * are lost), -ENOMEM. */
    int (*heartbeat)(void *self, const char *group, const char *member_id, int32_t generation,
                     kg_beat *out);

    /* Leave (close, unsubscribe, LeaveGroup).  keep: a static member keeps
     * its place for its session timeout.  Returns 0 or KLOG_EUNKNOWN_MEMBER. */
    int (*leave)(void *self, const char *group, const char *member_id, bool keep);

    /* Commit offsets (fencing above).  sync: fdatasync before returning.
     * Returns 0, KLOG_EFENCED, KLOG_EUNKNOWN_MEMBER, KLOG_EREBALANCE,
     * KLOG_ESTATE (an anonymous commit while members are active), -errno;
     * o[i].err gets each entry's result. */
    int (*commit)(void *self, const char *group, const char *member_id, int32_t generation,
                  kg_offset *o, unsigned n, bool sync);

    /* The committed offset (-1 if none) and metadata (may be NULL). */
    int (*committed)(void *self, const char *group, const char *topic, int32_t partition,
                     int64_t *offset, char *metadata, size_t metadata_size);

    /* Groups with members or committed offsets (klog_group_list's rules;
     * free with klog_group_list_free). */
    int (*list)(void *self, char ***names, size_t *count);

    /* A group's members with their metadata and assignments (DescribeGroups).
     * Returns 0 with *out (kg_group_info_free), KLOG_EUNKNOWN_GROUP (no
     * members), KLOG_EBADNAME, -ENOMEM. */
    int (*describe)(void *self, const char *group, kg_group_info *out);
} kg_coordinator_ops;

typedef struct kg_coordinator {
    const kg_coordinator_ops *ops;
    void *self;
} kg_coordinator;

/* 0 if ops can be used: the magic and a version this code knows, a size
 * that holds every op of that version, and every op set; else -EINVAL. */
int kg_coordinator_check(const kg_coordinator_ops *ops);

/* The instance's own coordinator (its registry, created on first use).
 * Returns 0 or the registry's creation error. */
int kg_coordinator_local(struct klog *k, kg_coordinator *out);

/* The partition of __consumer_offsets that holds a group's commits and
 * generations (created first with create), as a referenced topic (put it
 * with klog__topic_put) and an index.  Replicated, its leader is the
 * group's coordinator (Kafka's rule): lib/server sends clients there and
 * holds an OffsetCommit's answer until that partition's high watermark
 * passes the commit.  Returns 0, KLOG_EUNKNOWN_TOPIC (not created yet),
 * -ENOMEM, an I/O error of the first read. */
struct kt_topic;
int kg_offsets_partition(struct klog *k, const char *group, bool create, struct kt_topic **topic, int32_t *index);

/* ---- the member state machine (lib/group/member.c) ------------------------------ */

/*
 * A native member of one group as a consumer drives it: join, heartbeat,
 * take assignments, revoke, leave.  The consumer owns the partitions; the
 * state machine tells it what to give up and what to take through the host
 * functions, all called on the consumer's thread from within the calls
 * below.  Commits and committed offsets go through it too (it knows the
 * member id and generation that fence them).
 */
typedef struct kg_membership kg_membership;

typedef struct kg_membership_host {
    void *arg;
    /* The coordinator has news: wake the consumer's thread.  Runs on any
     * thread with the coordinator's lock held (see Threading above). */
    void (*wake)(void *arg);
    /* The partitions held now, allocated (free()); topic strings borrowed
     * until the next host call.  NULL on -ENOMEM. */
    kg_tp *(*held)(void *arg, unsigned *n);
    /* Give up partitions (tp NULL: all it holds): event
     * KLOG_REBALANCE_REVOKED (commit them first if the consumer auto-commits
     * and has a generation) or KLOG_REBALANCE_LOST (do not commit).  tp's
     * strings may point into what is given up. */
    void (*revoke)(void *arg, const kg_tp *tp, unsigned n, int event);
    /* Take partitions of the new generation (positions from the committed
     * offsets) and report them (KLOG_REBALANCE_ASSIGNED).  Returns 0 or an
     * error. */
    int (*assign)(void *arg, const kg_tp *tp, unsigned n);
} kg_membership_host;

typedef struct kg_membership_conf {
    const char *group;          /* a valid group name (kg_name_check) */
    const char *instance_id;    /* "" or NULL: dynamic */
    const char *client_id;
    enum kg_strategy strategy;
    int64_t session_ms, rebalance_ms;
} kg_membership_conf;

/* Returns 0 with *out, -ENOMEM.  The coordinator is fetched at the first
 * call that needs it. */
int kg_membership_new(struct klog *k, const kg_membership_conf *conf, const kg_membership_host *host,
                      kg_membership **out);
/* Leave if joined (revoking through the host), then free.  NULL-safe. */
void kg_membership_free(kg_membership *m);

/* Subscribe (copies topics; a joined member rejoins).  Returns 0, the
 * coordinator's creation error, -ENOMEM, or a join's error. */
int kg_membership_subscribe(kg_membership *m, const char *const *topics, size_t n);
/* Leave the group (revoking everything through the host) and drop the
 * subscription.  No-op when not subscribed. */
void kg_membership_unsubscribe(kg_membership *m);
bool kg_membership_subscribed(const kg_membership *m);

/* One step of the state machine (inside a poll): join if needed, heartbeat
 * when the group changed or KG_MEMBERSHIP_BEAT_MS passed since the last
 * one, act on the answer.  now: the monotonic clock in ms (the caller's
 * reading, so that a poll reads the clock once).  Returns 0 or an error of
 * join/heartbeat. */
#define KG_MEMBERSHIP_BEAT_MS 100
int kg_membership_step(kg_membership *m, int64_t now, bool force);
/* The coordinator notified since the last step (lock-free). */
bool kg_membership_changed(const kg_membership *m);

/* Commit as this member (anonymously when not subscribed), and read
 * committed offsets: the coordinator ops, fenced with the member's id and
 * generation.  Errors as the ops', or the coordinator's creation error. */
int kg_membership_commit(kg_membership *m, kg_offset *o, unsigned n, bool sync);
int kg_membership_committed(kg_membership *m, const char *topic, int32_t partition, int64_t *offset,
                            char *metadata, size_t metadata_size);

/* The member id ("" until joined) and generation (-1 until assigned): the
 * owner's thread only. */
const char *kg_membership_id(const kg_membership *m);
int32_t kg_membership_generation(const kg_membership *m);
/* A copy of the member id, from any thread (statistics). */
void kg_membership_id_copy(kg_membership *m, char *buf, size_t size);

/* ---- the local coordinator's own calls (coordinator.c) --------------------------- */

int kg_commit(kg_registry *r, const char *group, const char *member_id, int32_t generation, kg_offset *o,
              unsigned n, bool sync);
int kg_committed(kg_registry *r, const char *group, const char *topic, int32_t partition, int64_t *offset,
                 char *metadata, size_t metadata_size);

/* Admin (klog_group_*). */
int kg_list(kg_registry *r, char ***names, size_t *count);
/* A snapshot of a group (klog_group_info_get; klog_group_describe renders
 * it as JSON).  Returns 0 with *out, KLOG_EUNKNOWN_GROUP, KLOG_EBADNAME,
 * -ENOMEM. */
int kg_describe(kg_registry *r, const char *group, klog_group_info **out);
int kg_reset(kg_registry *r, const char *group, const char *topic, int32_t partition, int kind, int64_t value);
int kg_delete(kg_registry *r, const char *group);

/* api.c: set entry i's error field of a public partition list (commit
 * results, written into the caller's list). */
void klog__partition_list_set_error(klog_partition_list *l, size_t i, int err);

/* api.c: building the klog_group_info of kg_describe.  kg__info_new
 * returns NULL when out of memory; the other calls accept that NULL, and
 * the first failure sticks (later calls do nothing).  kg__info_end hands
 * the info to *out, or frees it and returns the failure (-ENOMEM).  The
 * strings are copied. */
typedef struct kg_info kg_info;
kg_info *kg__info_new(const char *group, const char *state, int32_t generation, const char *protocol);
void kg__info_member(kg_info *gi, const char *id, const char *instance, const char *client, const kg_tp *assign,
                     unsigned nassign);
void kg__info_offset(kg_info *gi, const char *topic, int32_t partition, int64_t committed, int64_t end,
                     const char *metadata);
int kg__info_end(kg_info *gi, klog_group_info **out);

/* Group name rule (as Kafka's: non-empty, at most 255 bytes, printable). */
int kg_name_check(const char *group);

#endif /* KLOG_GROUP_H_INTERNAL */
