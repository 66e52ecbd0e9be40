/*
 * lib/group/group.h - consumer group coordinators and the committed-offsets
 * store (contract for lib/consumer and the admin calls).
 *
 * One registry per instance holds every group's coordinator and the
 * committed offsets.  It is the state of the groups module (kg_groups_module,
 * topic.h: created at klog_open, its timer stopped before the partition
 * logs close, freed after); its first use reads the committed offsets and
 * starts the timer (kg_registry_get).  The coordinator speaks in requests and replies -
 * join, heartbeat, leave, commit, fetch - that carry only names, ids,
 * generations and partition lists, so that a member in another process can
 * later reach it through a transport; members in this process call it
 * directly and pass an eventfd it writes when the group changes.
 *
 * The protocol is Kafka's classic one with the assignment computed by the
 * coordinator (as in KIP-848) instead of a leader member:
 *   - a member joins with its subscription, strategy and (cooperative)
 *     owned partitions; a new member, a subscription change, a member
 *     leaving or expiring, or a change in the subscribed topics (a topic
 *     created that matches a pattern, partitions added) starts a rebalance:
 *     every member must rejoin (PreparingRebalance);
 *   - when all have rejoined, or the rebalance timeout (the longest
 *     max.poll.interval.ms of the members) has passed (members that did not
 *     rejoin are removed), the coordinator assigns, bumps the generation and
 *     turns Stable;
 *   - members learn their assignment through heartbeat; with the eager
 *     strategies (range, roundrobin) they revoked everything before
 *     rejoining; with cooperative-sticky they keep consuming what they own,
 *     the coordinator withholds partitions another member still owns
 *     (kg_cooperative_adjust) and asks the members that must give some up
 *     to rejoin at once after revoking, which completes the hand-over in a
 *     second rebalance.
 * Heartbeats ride on the member's polls: a member not heard from for
 * min(session.timeout.ms, max.poll.interval.ms) is removed.  A static
 * member (group.instance.id) that leaves keeps its place and partitions
 * for session.timeout.ms; a member joining with the same instance id takes
 * them over without a rebalance (the old member id is fenced).
 *
 * Commits are fenced: accepted from a member of the current generation (or,
 * with member id NULL and generation -1, from a standalone consumer or an
 * admin call while the group has no members).  Offsets are records in the
 * compacted topic __consumer_offsets (key: group, topic, partition; value:
 * offset, metadata, commit time), read back at the first use after open.
 *
 * Threading: every function is thread-safe.  One mutex guards the groups,
 * another the offsets store (taken in that order); a commit holds both
 * across its append (and its fdatasync when synchronous).  A timer thread
 * expires members and completes timed-out rebalances every 50 ms.
 */
#ifndef KLOG_GROUP_H_INTERNAL
#define KLOG_GROUP_H_INTERNAL

#include <stdbool.h>
#include <stdint.h>

#include <klog/group.h>
#include "group/assign.h"
#include "group/conf_keys.h"

struct klog;
typedef struct kg_registry kg_registry;

#define KG_ID_MAX 160                       /* member id, NUL included */
#define KG_OFFSETS_TOPIC "__consumer_offsets"
#define KG_META_MAX 4096                    /* commit metadata */

/* The groups module (lib/compose.c lists it). */
struct kt_module;
extern const struct kt_module kg_groups_module;

/* The instance's registry.  create: make its first use if not made yet
 * (read __consumer_offsets back, start the timer thread), which may fail
 * with KLOG_ECORRUPT, -EAGAIN, -ENOMEM or -errno and is tried again by the
 * next call.  create=false: NULL (and 0) until the first use.  -ENOTSUP
 * when the instance does not run the groups module. */
int kg_registry_get(struct klog *k, bool create, kg_registry **out);

/* A counter bumped on every change of any group (join, rebalance start or
 * end, expiry): a member may skip its heartbeat while it is unchanged
 * (lock-free read), as long as it still beats often enough to stay alive. */
uint64_t kg_seq(kg_registry *r);

typedef struct kg_join_req {
    const char *group;
    const char *member_id;      /* "" or NULL: a new member */
    const char *instance_id;    /* static membership, or NULL */
    const char *client_id;
    const char *const *subs;    /* topic names or "^regex" */
    unsigned nsubs;
    enum kg_strategy strategy;
    const kg_tp *owned;         /* cooperative: what it still owns */
    unsigned nowned;
    int32_t generation;         /* of owned, -1 if none */
    int64_t session_ms, rebalance_ms;
    int notify_fd;              /* written (8 bytes) when the group changes; -1 none */
} kg_join_req;

/* Join or rejoin.  member_id_out (KG_ID_MAX) receives the member's id.
 * Returns 0, KLOG_EUNKNOWN_MEMBER (member_id given but not in the group:
 * rejoin as new), KLOG_ECONF (strategy differs from the group's), KLOG_EBADNAME,
 * -ENOMEM. */
int kg_join(kg_registry *r, const kg_join_req *req, char *member_id_out);

enum kg_status {
    KG_STABLE = 1,  /* assignment for `generation` (new when it differs from the member's) */
    KG_WAIT = 2,    /* joined this rebalance; waiting for the others */
    KG_REJOIN = 3,  /* a rebalance started: revoke (eager) and rejoin */
};

typedef struct kg_beat {
    enum kg_status status;
    int32_t generation;
    kg_tp *assign;          /* KG_STABLE with a new generation: the member's partitions
                               (allocated; topic strings live as long as the registry) */
    unsigned nassign;
    bool new_generation;
    bool rejoin_after;      /* cooperative: revoke what is not in assign, then rejoin */
} kg_beat;

/* Heartbeat: the member is alive (its poll).  known_generation is the one
 * whose assignment it holds.  Returns 0 with *out, KLOG_EUNKNOWN_MEMBER
 * (removed: its partitions are lost), -ENOMEM.  Free out->assign with free(). */
int kg_heartbeat(kg_registry *r, const char *group, const char *member_id, int32_t known_generation,
                 kg_beat *out);

/* Leave the group (close, unsubscribe).  keep: a static member keeps its
 * place for its session timeout.  Returns 0 or KLOG_EUNKNOWN_MEMBER. */
int kg_leave(kg_registry *r, const char *group, const char *member_id, bool keep);

typedef struct kg_offset {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *metadata;   /* NULL = "" */
    int err;                /* out: per-entry result */
} kg_offset;

/* Commit offsets.  member_id NULL and generation -1: only while the group
 * has no members.  sync: fdatasync before returning.  Returns 0,
 * KLOG_EFENCED, KLOG_EUNKNOWN_MEMBER, KLOG_EREBALANCE, KLOG_ESTATE (an
 * anonymous commit while members are active), -errno. */
int kg_commit(kg_registry *r, const char *group, const char *member_id, int32_t generation, kg_offset *o,
              unsigned n, bool sync);

/* The committed offset (-1 if none) and metadata (may be NULL). */
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
