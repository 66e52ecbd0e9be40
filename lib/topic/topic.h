/*
 * lib/topic/topic.h - the instance and its topics (contract for the layers
 * above: producer, consumer, groups).
 *
 * The instance owns the data directory lock, the I/O engine, the topic
 * table and a background thread for periodic work (interval syncs, segment
 * roll by age).  Topics are reference counted: a producer or consumer that
 * looked one up keeps it usable even if it is deleted meanwhile; the
 * deleted topic's partition directories were renamed aside at deletion and
 * are removed when the last reference goes.
 *
 * Topic metadata lives in DIR/topics.meta, rewritten atomically on every
 * change:
 *     klog-topics 1
 *     topic <name> <partitions>
 *       <key>=<value>            (the topic's explicitly set keys)
 *     ...
 *     end <xxh3-64 of everything above, hex>
 */
#ifndef KLOG_TOPIC_INTERNAL_H
#define KLOG_TOPIC_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <klog/topic.h>
#include "common/conf.h"
#include "io/io.h"
#include "partition/partition.h"

#define KT_MAX_PARTITIONS 10000

typedef struct kt_topic {
    char name[KLOG_TOPIC_NAME_MAX + 1];
    /* parts has room for KT_MAX_PARTITIONS pointers and never moves, so
     * readers may load nparts (acquire) and index below it without a lock.
     * Each partition object (lib/partition) owns its log, waiters and
     * listeners; the layers above reach storage only through it. */
    kpart **parts;
    _Atomic int nparts;
    klog_conf *conf;          /* instance defaults merged with overrides */
    klog_conf *overrides;     /* what was set for this topic explicitly */
    /* Confs replaced by klog_topic_alter_config: readers load t->conf
     * without a lock, so the old ones live until the topic is freed. */
    klog_conf **retired;
    unsigned nretired;
    _Atomic int refs;
    _Atomic bool deleted;
    char tomb[64];            /* suffix of the renamed-aside dirs once deleted */
    struct klog *k;
} kt_topic;

/* Look a topic up by name and take a reference.  NULL if unknown. */
kt_topic *klog__topic_get(struct klog *k, const char *name);
void klog__topic_put(kt_topic *t);
/* Kafka's naming rule; 0 or KLOG_EBADNAME. */
int klog__topic_name_check(const char *name);

/*
 * Per-instance state of the subsystems above this one (consumer groups),
 * which lib/topic must not know: created on first use by `create` (which
 * may call klog_topic_* but must not call klog__ext for the same slot),
 * freed by klog_close before any topic closes.  With create NULL, returns
 * what exists (or NULL).  *err receives create's error.
 */
enum { KT_EXT_GROUPS = 0, KT_EXT__COUNT };
void *klog__ext(struct klog *k, int slot, void *(*create)(struct klog *k, int *err), void (*destroy)(void *),
                int *err);

/*
 * Statistics of the handles above this layer: a producer or consumer
 * registers a kt_handle for as long as it lives; klog_stats calls fn under
 * the instance's stats lock, so fn must only read atomics (it runs on
 * another thread than the handle's user) and must not call klog.
 */
enum { KT_HANDLE_PRODUCER = 1, KT_HANDLE_CONSUMER = 2 };
typedef struct kt_handle_stats {
    char client_id[256];
    char group[256];          /* consumers: group.id or "" */
    char member_id[160];
    uint64_t records, bytes;  /* sent / returned by poll (key + value bytes) */
    uint64_t batches;         /* producers: batches sealed */
    uint64_t raw_bytes, out_bytes; /* producers: batch bytes before and after compression */
    uint64_t errors;          /* producers: records whose delivery failed */
    uint64_t queue_records;   /* producers: records sent, not yet reported */
    uint64_t queue_bytes;     /* producers: buffer.memory in use */
    uint64_t polls;           /* consumers */
    uint64_t assigned;        /* consumers: partitions */
    uint64_t lag;             /* consumers: records behind the ends, at the last poll */
} kt_handle_stats;
typedef struct kt_handle {
    struct kt_handle *next;
    int kind;
    void *h;
    void (*fn)(void *h, kt_handle_stats *out);
} kt_handle;
void klog__handle_add(struct klog *k, kt_handle *e);
void klog__handle_remove(struct klog *k, kt_handle *e);

/* The instance's I/O engine and defaults. */
kio *klog__io(struct klog *k);
const klog_conf *klog__conf(struct klog *k);

#endif
