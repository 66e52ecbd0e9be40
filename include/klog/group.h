/*
 * klog/group.h - consumer groups: partition lists, subscriptions, commits,
 * rebalance callbacks, and group administration.
 *
 * A consumer created with "group.id" joins that group when it subscribes.
 * The group's coordinator lives inside the instance: it tracks members,
 * runs rebalances (a generation per completed assignment), and stores
 * committed offsets durably in the internal compacted topic
 * "__consumer_offsets", so they survive kill -9 and reopen.  Every record of
 * a subscribed topic goes to exactly one member of the group while the
 * group is stable; across a member crash delivery is at least once (see
 * klog(7), "Consumer groups").
 *
 * Group names (group.id, and the group argument of the klog_group_*
 * functions): 1 to 255 bytes, any byte but the control characters (0x00 to
 * 0x1f and 0x7f): spaces, dots, slashes and UTF-8 are fine, and names are
 * compared byte for byte (case matters).  Kafka accepts the same names
 * (it refuses only the empty one).  Any other name is KLOG_EBADNAME; ""
 * as group.id means no group.  Topic names have stricter rules
 * (klog/topic.h).
 *
 * Membership: a member stays in the group while it polls.  Its heartbeat
 * rides on klog_consumer_poll: a member that does not poll for
 * session.timeout.ms (or max.poll.interval.ms, whichever is shorter) is
 * removed and its partitions go to the others.  klog_consumer_close leaves
 * the group at once (after an auto-commit), except for a static member
 * (group.instance.id), which keeps its partitions for session.timeout.ms so
 * that a restart within that time gets them back without a rebalance.
 *
 * Rebalance callbacks run on the consumer's own thread, inside
 * klog_consumer_poll (or klog_consumer_close): REVOKED before partitions are
 * taken away (commit there to avoid redelivery), ASSIGNED after new ones
 * are given, LOST when the member was removed (its partitions already
 * belong to others: do not commit).  With partition.assignment.strategy
 * range or roundrobin every rebalance revokes everything first (eager);
 * with cooperative-sticky only the partitions that move are revoked.
 *
 * Threading: the klog_partition_list functions are not thread-safe on one
 * list; the klog_group_* admin calls are thread-safe and may block on file
 * I/O.  Callbacks may call any klog_consumer_* function of their consumer
 * except klog_consumer_close and klog_consumer_poll.
 */
#ifndef KLOG_GROUP_H
#define KLOG_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include <klog/consumer.h>
#include <klog/topic.h>
#include <klog/version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- topic-partition lists --------------------------------------------------- */

/* An ordered list of (topic, partition, offset, metadata, error) entries:
 * what commits take and what assignments and callbacks give.  Opaque, so
 * that it can grow without breaking callers. */
typedef struct klog_partition_list klog_partition_list;

/* Returns 0, -EINVAL, -ENOMEM. */
KLOG_API int klog_partition_list_new(klog_partition_list **out);
/* NULL-safe. */
KLOG_API void klog_partition_list_free(klog_partition_list *l);
/* Append an entry (topic and metadata are copied; metadata may be NULL).
 * offset may be KLOG_OFFSET_NONE (-1): an entry without an offset.
 * Returns 0, -EINVAL, -ENOMEM. */
KLOG_API int klog_partition_list_add(klog_partition_list *l, const char *topic, int32_t partition,
                                     int64_t offset, const char *metadata);
/* Entries in the list (0 for NULL). */
KLOG_API size_t klog_partition_list_count(const klog_partition_list *l);
/* Read entry i; any out pointer may be NULL.  Strings stay valid while the
 * list lives.  *error is the entry's result after a commit (0 or a code).
 * Returns 0, -EINVAL, -ENOENT (i out of range). */
KLOG_API int klog_partition_list_get(const klog_partition_list *l, size_t i, const char **topic,
                                     int32_t *partition, int64_t *offset, const char **metadata,
                                     int *error);

/* ---- group membership (a consumer with group.id) ------------------------------- */

/*
 * Subscribe to topics: the group assigns their partitions among its
 * members.  An entry starting with '^' is a POSIX extended regular
 * expression matched against topic names (librdkafka's convention); topics
 * created later that match it join the subscription.  Replaces any earlier
 * subscription.  Needs group.id.  The first join happens in the next poll;
 * a consumer that has joined already rejoins at once with the new
 * subscription (a rebalance).
 * Returns 0, KLOG_ESTATE (no group.id, or partitions assigned explicitly
 * with klog_consumer_assign), KLOG_EBADNAME, KLOG_ECONF (a bad regex),
 * -EINVAL (also n == 0), -ENOMEM, and first-use errors of the group
 * registry (KLOG_ECORRUPT, -EAGAIN, -errno).
 */
KLOG_API int klog_consumer_subscribe(klog_consumer *c, const char *const *topics, size_t n);

/* Leave the group (revoking everything, after an auto-commit).  Returns 0,
 * KLOG_ESTATE (not subscribed), -EINVAL. */
KLOG_API int klog_consumer_unsubscribe(klog_consumer *c);

enum klog_rebalance_event {
    KLOG_REBALANCE_ASSIGNED = 1,
    KLOG_REBALANCE_REVOKED = 2,
    KLOG_REBALANCE_LOST = 3,
};
/* parts (the partitions, with their positions as offsets) is valid during
 * the call only.  It is the callback's to use: not const, so that a
 * REVOKED callback can commit it as it is (klog_consumer_commit writes
 * each entry's result into it); the consumer does not look at it again. */
typedef void (*klog_rebalance_fn)(klog_consumer *c, int event, klog_partition_list *parts,
                                  void *opaque);

/* Install (or with NULL remove) the rebalance callback.  Returns 0, -EINVAL. */
KLOG_API int klog_consumer_set_rebalance_cb(klog_consumer *c, klog_rebalance_fn fn, void *opaque);

/* The partitions currently assigned (by the group or explicitly), with
 * their positions as offsets.  *out is freed with klog_partition_list_free.
 * Returns 0, -EINVAL, -ENOMEM. */
KLOG_API int klog_consumer_assignment(klog_consumer *c, klog_partition_list **out);

/*
 * Commit offsets for the group: the given list (offset = the next record to
 * read, as in Kafka; metadata optional), or with offsets NULL the current
 * position of every assigned partition.  Synchronous (async 0): returns
 * once the commit is on disk (fdatasync).  Asynchronous: returns once it is
 * in the offsets log (it survives the process dying, not a power cut until
 * the next sync).  A commit from a member whose generation is stale (the
 * group rebalanced and this member has not rejoined yet) is refused: its
 * partitions may already be someone else's.  The list is in and out: its
 * entries are what to commit, and each entry's error field receives that
 * entry's result (read with klog_partition_list_get; 0, the call's error,
 * or -ENOMEM when the commit is durable but the in-memory table could not
 * be updated).  Nothing else in the list changes.  A consumer that
 * is not subscribed (or has not joined yet) commits as a standalone
 * consumer, which the group accepts only while it has no members.
 * Returns 0, KLOG_EFENCED (stale generation), KLOG_EUNKNOWN_MEMBER (removed
 * from the group), KLOG_EREBALANCE (a rebalance is completing: commit again
 * after the next poll), KLOG_ESTATE (no group.id, or a standalone commit
 * while the group has members), KLOG_EUNKNOWN_TOPIC,
 * KLOG_EUNKNOWN_PARTITION, -EINVAL, -ENOMEM, -errno from the offsets log.
 */
KLOG_API int klog_consumer_commit(klog_consumer *c, klog_partition_list *offsets, int async);

/* The group's committed offset of a partition (KLOG_OFFSET_NONE if none)
 * and its metadata (may be NULL; truncated to metadata_size).  Returns 0,
 * KLOG_ESTATE (no group.id), -EINVAL. */
KLOG_API int klog_consumer_committed(klog_consumer *c, const char *topic, int32_t partition,
                                     int64_t *offset, char *metadata, size_t metadata_size);

/* This member's id ("" before the first join) and generation (-1). */
KLOG_API int klog_consumer_member_id(klog_consumer *c, char *buf, size_t size, int32_t *generation);

/* ---- administration ------------------------------------------------------------ */

/* Groups with members or committed offsets, sorted: *names receives an
 * array of *count strings, freed with klog_group_list_free.  Returns 0,
 * -EINVAL, -ENOMEM. */
KLOG_API int klog_group_list(klog *k, char ***names, size_t *count);
/* Free what klog_group_list returned.  NULL-safe. */
KLOG_API void klog_group_list_free(char **names, size_t count);

/*
 * Describe a group as a JSON document (*json, freed with klog_free), the
 * text form of klog_group_info_get (same fields, names and values):
 *   {"group":"g","state":"Stable","generation":3,"protocol":"range",
 *    "members":[{"member_id":"...","instance_id":null,"client_id":"...",
 *                "assignment":[{"topic":"t","partition":0}]}],
 *    "offsets":[{"topic":"t","partition":0,"committed":120,"end":150,
 *                "lag":30,"metadata":""}]}
 * state is Empty, PreparingRebalance or Stable; CompletingRebalance only
 * while a Kafka client (a classic JoinGroup member) leads the group and it
 * waits for that leader's assignment: with klog consumers alone the
 * coordinator computes the assignment itself and never waits there.
 * Like every klog_group_* call, it may also fail setting up the group
 * registry on first use (KLOG_ECORRUPT, -EAGAIN, -errno).
 * Returns 0, KLOG_EUNKNOWN_GROUP, KLOG_EBADNAME, -EINVAL, -ENOMEM.
 */
KLOG_API int klog_group_describe(klog *k, const char *group, char **json);

/* A member of a group, in klog_group_info. */
typedef struct klog_group_member {
    uint32_t struct_size;
    const char *member_id;
    const char *instance_id;    /* group.instance.id; NULL for a dynamic member */
    const char *client_id;      /* its client.id */
    /* The partitions of the current generation (read with
     * klog_partition_list_get; offsets KLOG_OFFSET_NONE). */
    const klog_partition_list *assignment;
} klog_group_member;

/* A committed offset of a group, in klog_group_info. */
typedef struct klog_group_offset {
    uint32_t struct_size;
    int32_t partition;
    const char *topic;
    int64_t committed;          /* the next record the group reads */
    int64_t end;                /* the partition's end offset; KLOG_OFFSET_NONE
                                   when the topic or partition is gone */
    int64_t lag;                /* end - committed, at least 0; KLOG_OFFSET_NONE
                                   when end is */
    const char *metadata;       /* the commit's metadata, "" if none */
} klog_group_offset;

/* A group as klog_group_info_get describes it.  Everything it points to
 * belongs to it and goes with klog_group_info_free.  Its lists are
 * arrays of pointers (members[i]->member_id), so that the structs can gain
 * fields at their end (klog/klog.h); every struct_size is the library's
 * sizeof. */
typedef struct klog_group_info {
    uint32_t struct_size;
    int32_t generation;         /* bumped by every completed rebalance, and
                                   never repeated for a group name: it goes on
                                   across restarts and klog_group_delete; 0 if
                                   the group never completed one */
    const char *group;
    const char *state;          /* "Empty", "PreparingRebalance" or "Stable"
                                   ("CompletingRebalance": klog_group_describe) */
    const char *protocol;       /* the members' assignment strategy ("range",
                                   "roundrobin", "cooperative-sticky"); "" when Empty */
    size_t member_count;
    const klog_group_member *const *members;
    size_t offset_count;        /* one per partition the group committed for */
    const klog_group_offset *const *offsets;
} klog_group_info;

/*
 * Describe a group (its state, members, assignments, committed offsets and
 * lag) as a struct: *out receives a klog_group_info, freed with
 * klog_group_info_free.  A snapshot: it does not change as the group does.
 * Members and offsets come in the order of klog_group_describe's
 * document (members as the coordinator holds them, offsets unsorted).
 * Like every klog_group_* call, it may also fail setting up the group
 * registry on first use (KLOG_ECORRUPT, -EAGAIN, -errno).
 * Returns 0, KLOG_EUNKNOWN_GROUP (no members and no committed offsets),
 * KLOG_EBADNAME, -EINVAL, -ENOMEM.
 */
KLOG_API int klog_group_info_get(klog *k, const char *group, klog_group_info **out);

/* Free a klog_group_info and everything it points to.  NULL-safe. */
KLOG_API void klog_group_info_free(klog_group_info *info);

/* The committed offset of a group's partition (KLOG_OFFSET_NONE if none).
 * Returns 0, KLOG_EBADNAME, -EINVAL. */
KLOG_API int klog_group_committed(klog *k, const char *group, const char *topic, int32_t partition,
                                  int64_t *offset);

enum klog_offset_reset {
    KLOG_RESET_EARLIEST = 1,  /* the partition's start */
    KLOG_RESET_LATEST = 2,    /* the partition's end */
    KLOG_RESET_TIMESTAMP = 3, /* value: ms; the first record at or after it */
    KLOG_RESET_OFFSET = 4,    /* value: an offset (clamped to start..end) */
    KLOG_RESET_SHIFT = 5,     /* value: added to the committed offset (clamped) */
};

/*
 * Reset a group's committed offsets for one partition of a topic, or every
 * partition (partition -1).  The group must have no active member (Kafka's
 * rule: stop the consumers first).  Returns the number of partitions reset,
 * KLOG_ESTATE (members active), KLOG_EUNKNOWN_TOPIC, KLOG_EUNKNOWN_PARTITION,
 * KLOG_EBADNAME, -EINVAL, -errno.
 */
KLOG_API int klog_group_reset_offsets(klog *k, const char *group, const char *topic, int32_t partition,
                                      int kind, int64_t value);

/* Delete a group's committed offsets (tombstones in __consumer_offsets).
 * The group must have no active member.  Returns 0, KLOG_EUNKNOWN_GROUP,
 * KLOG_ESTATE, KLOG_EBADNAME, -EINVAL, -errno. */
KLOG_API int klog_group_delete(klog *k, const char *group);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_GROUP_H */
