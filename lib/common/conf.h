/*
 * lib/common/conf.h - internal view of klog_conf: typed reads by key id.
 * The key table in conf.c is the single source of truth for names, types,
 * defaults and ranges.
 */
#ifndef KLOG_COMMON_CONF_H
#define KLOG_COMMON_CONF_H

#include <stdint.h>
#include <klog/conf.h>

enum kc_key {
    KC_IO_BACKEND,
    KC_NUM_PARTITIONS,
    KC_SEGMENT_BYTES,
    KC_SEGMENT_MS,
    KC_INDEX_INTERVAL_BYTES,
    KC_MAX_MESSAGE_BYTES,
    KC_RETENTION_MS,
    KC_RETENTION_BYTES,
    KC_CLEANUP_POLICY,
    KC_FLUSH_MESSAGES,
    KC_FLUSH_MS,
    KC_ACKS,
    KC_LINGER_MS,
    KC_BATCH_SIZE,
    KC_BATCH_NUM_MESSAGES,
    KC_COMPRESSION_TYPE,
    KC_COMPRESSION_LEVEL,
    KC_BUFFER_MEMORY,
    KC_MAX_BLOCK_MS,
    KC_ENABLE_IDEMPOTENCE,
    KC_PARTITIONER,
    KC_DELIVERY_REPORT_QUEUE,
    KC_AUTO_OFFSET_RESET,
    KC_FETCH_MAX_BYTES,
    KC_MAX_POLL_RECORDS,
    KC_CHECK_CRCS,
    KC_POLL_SPIN_US,
    KC_GROUP_ID,
    KC_CLIENT_ID,
    KC_DELETE_RETENTION_MS,
    KC_MIN_CLEANABLE_DIRTY_RATIO,
    KC_MIN_COMPACTION_LAG_MS,
    KC_DISK_BUDGET_BYTES,
    KC_DISK_BUDGET_POLICY,
    KC_RETENTION_CHECK_MS,
    KC_CLEANER_ENABLE,
    KC_CLEANER_THREADS,
    KC_CLEANER_BACKOFF_MS,
    KC_CLEANER_DEDUPE_BYTES,
    KC_CLEANER_IO_RATE,
    KC_GROUP_INSTANCE_ID,
    KC_SESSION_TIMEOUT_MS,
    KC_HEARTBEAT_INTERVAL_MS,
    KC_MAX_POLL_INTERVAL_MS,
    KC_ASSIGNMENT_STRATEGY,
    KC_ENABLE_AUTO_COMMIT,
    KC_AUTO_COMMIT_INTERVAL_MS,
    KC_OFFSETS_PARTITIONS,
    KC_INITIAL_REBALANCE_DELAY_MS,
    KC_STATISTICS_INTERVAL_MS,
    KC__COUNT
};

/* Enumerated values, as stored (the index in the key's value list). */
enum { KC_BACKEND_AUTO, KC_BACKEND_URING, KC_BACKEND_POSIX };
enum { KC_CLEANUP_DELETE, KC_CLEANUP_COMPACT, KC_CLEANUP_COMPACT_DELETE };
/* PRODUCER: a topic's "keep the producer's codec" (Kafka's topic value). */
enum { KC_COMPRESSION_NONE, KC_COMPRESSION_LZ4, KC_COMPRESSION_ZSTD, KC_COMPRESSION_PRODUCER };
enum { KC_PARTITIONER_DEFAULT, KC_PARTITIONER_HASH, KC_PARTITIONER_STICKY, KC_PARTITIONER_ROUND_ROBIN };
enum { KC_RESET_LATEST, KC_RESET_EARLIEST, KC_RESET_NONE };
enum { KC_BUDGET_DELETE_OLDEST, KC_BUDGET_REFUSE };
enum { KC_ASSIGN_RANGE, KC_ASSIGN_ROUNDROBIN, KC_ASSIGN_COOPERATIVE_STICKY };
/* Ratio keys (min.cleanable.dirty.ratio) are stored in millionths. */
#define KC_RATIO_ONE 1000000
/* acks is stored as its number: 0, 1, or -1 for "all". */

/* Integer, boolean and enumerated keys; conf NULL gives the default. */
int64_t klog__conf_int(const klog_conf *conf, enum kc_key key);
/* String keys; never NULL ("" when unset). */
const char *klog__conf_str(const klog_conf *conf, enum kc_key key);
/* Was the key set explicitly? */
int klog__conf_isset(const klog_conf *conf, enum kc_key key);
/* Copy every explicitly set key of src into dst (topic overrides). */
int klog__conf_merge(klog_conf *dst, const klog_conf *src);
/* Serialise the explicitly set keys as "key=value\n" lines; returns length
 * or -ENOSPC.  Parsing is klog_conf_set line by line. */
int klog__conf_dump(const klog_conf *conf, unsigned scope_mask, char *buf, size_t cap);

/* Forget an explicitly set key (it reads as its default again).  Returns 0,
 * or KLOG_ECONF when the key is unknown or outside scope_mask. */
int klog__conf_unset(klog_conf *conf, const char *key, unsigned scope_mask, char *errbuf, size_t errsize);

/* KLOG_ECONF naming the first explicitly set key outside scope_mask. */
int klog__conf_check_scope(const klog_conf *conf, unsigned scope_mask, char *errbuf, size_t errsize);

/* Scopes, for dump. */
enum { KC_SCOPE_INSTANCE = 1, KC_SCOPE_TOPIC = 2, KC_SCOPE_PRODUCER = 4, KC_SCOPE_CONSUMER = 8 };

#endif
