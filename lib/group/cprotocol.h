/*
 * lib/group/cprotocol.h - Kafka's ConsumerProtocol: the Subscription and
 * Assignment that consumers of protocol type "consumer" put in the opaque
 * bytes of JoinGroup (member metadata) and SyncGroup (member assignment).
 *
 * Pure functions: no I/O, no locks, no global state; the only side effect is
 * heap allocation of the results.  Nothing here knows about groups; the
 * coordinator uses it to show native klog members to a Kafka client leader
 * and to read back that leader's assignment (group.h says when).
 *
 * Wire layout (big-endian; string = i16 length + bytes, length -1 = null;
 * bytes = i32 length + bytes, -1 = null; array = i32 count + items):
 *
 *   Subscription  i16 version
 *                 [string] topics
 *                 bytes    user_data             (nullable)
 *                 v1+: [ {string topic, [i32] partitions} ] owned_partitions
 *                 v2+: i32 generation_id
 *                 v3+: string rack_id            (nullable)
 *   Assignment    i16 version
 *                 [ {string topic, [i32] partitions} ] assigned_partitions
 *                 bytes    user_data             (nullable)
 *                 (versions 1-3 are identical to version 0)
 *
 * Versions: the decoders read versions 0..KG_CP_VERSION_MAX field by field.
 * A newer version is read as KG_CP_VERSION_MAX and what follows is ignored;
 * that is Kafka's own rule ("future versions will not remove or reorder
 * fields"), and trailing bytes are ignored at every version, as Kafka's and
 * librdkafka's readers do.  The encoders write any version 0..3.
 *
 * Untrusted input: every length and count is checked against the bytes
 * left and against the caps below before anything is allocated, so a
 * decode allocates O(input) at most.  Topic names are 1..KG_CP_NAME_MAX
 * bytes without NUL; partitions are >= 0.
 *
 * Threading: every function is reentrant; inputs are only read.
 */
#ifndef KLOG_GROUP_CPROTOCOL_H
#define KLOG_GROUP_CPROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "group/assign.h"

#define KG_CP_PROTOCOL_TYPE "consumer"
#define KG_CP_VERSION_MAX 3              /* newest version whose fields are read */
#define KG_CP_NAME_MAX 249               /* topic name bytes (Kafka's limit, and klog's) */
#define KG_CP_RACK_MAX 255               /* rack id bytes */
#define KG_CP_ITEMS_MAX 100000u          /* entries in any one array */
#define KG_CP_USERDATA_MAX (1u << 20)    /* user_data bytes */

/* A topic with some of its partitions. */
typedef struct kg_cp_topic {
    const char *topic;
    const int32_t *partitions;
    uint32_t npartitions;
} kg_cp_topic;

typedef struct kg_cp_subscription {
    int16_t version;               /* decoded: as sent (may exceed KG_CP_VERSION_MAX) */
    const char *const *topics;
    uint32_t ntopics;
    const uint8_t *user_data;      /* NULL with user_data_len -1: null */
    int32_t user_data_len;
    const kg_cp_topic *owned;      /* v1+ */
    uint32_t nowned;
    int32_t generation;            /* v2+, else -1 */
    const char *rack;              /* v3+, else NULL (null) */
    void *mem_;                    /* decoded: the one allocation behind every pointer */
} kg_cp_subscription;

typedef struct kg_cp_assignment {
    int16_t version;
    const kg_cp_topic *topics;
    uint32_t ntopics;
    const uint8_t *user_data;      /* NULL with user_data_len -1: null */
    int32_t user_data_len;
    void *mem_;
} kg_cp_assignment;

/* Decode p[0..len).  On success *out points into one allocation; release it
 * with kg_cp_*_free.  On failure *out is zeroed (free is still safe).
 * Returns 0, KLOG_ECORRUPT (truncated, a negative or oversized length or
 * count, a null where none is allowed, an empty or NUL-holding topic name, a
 * negative partition or version), -EINVAL (NULL arguments), -ENOMEM. */
int kg_cp_subscription_decode(const uint8_t *p, size_t len, kg_cp_subscription *out);
int kg_cp_assignment_decode(const uint8_t *p, size_t len, kg_cp_assignment *out);

/* Release what a decode allocated and zero *s.  NULL-safe. */
void kg_cp_subscription_free(kg_cp_subscription *s);
void kg_cp_assignment_free(kg_cp_assignment *a);

/* Encode at s->version (0..3): fields a version lacks are not written.
 * *out is allocated (free()), *len its size.  Returns 0, -EINVAL (a version
 * outside 0..3, NULL arrays with non-zero counts, anything over the caps or
 * invalid as above), -ENOMEM. */
int kg_cp_subscription_encode(const kg_cp_subscription *s, uint8_t **out, size_t *len);
int kg_cp_assignment_encode(const kg_cp_assignment *a, uint8_t **out, size_t *len);

/* Group a flat partition list by topic (topics in order of first
 * appearance, partitions in the order given, duplicates kept): one
 * allocation, *out (free()), with topic strings borrowed from tp.
 * Returns the topic count, or -ENOMEM / -EINVAL. */
int kg_cp_topics_from_tps(const kg_tp *tp, unsigned n, kg_cp_topic **out);

#endif /* KLOG_GROUP_CPROTOCOL_H */
