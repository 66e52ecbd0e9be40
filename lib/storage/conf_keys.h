/*
 * lib/storage/conf_keys.h - configuration keys of a topic's partition logs
 * (Kafka's LogConfig): segments, indexes, durability, retention and
 * compaction.  lib/storage takes them as ks_log_config, ks_retention and
 * ks_clean_config; lib/topic translates (it reads a topic's merged conf).
 * compression.type is here as the topic-level key; producers read their
 * own value of it too.
 */
#ifndef KLOG_STORAGE_CONF_KEYS_H
#define KLOG_STORAGE_CONF_KEYS_H

#include "common/conf.h"
#include "compose.h"

enum {
    KC_SEGMENT_BYTES = KC_KEY_BASE(KC_TABLE_LOG),
    KC_SEGMENT_MS,
    KC_INDEX_INTERVAL_BYTES,
    KC_MAX_MESSAGE_BYTES,
    KC_RETENTION_MS,
    KC_RETENTION_BYTES,
    KC_CLEANUP_POLICY,
    KC_FLUSH_MESSAGES,
    KC_FLUSH_MS,
    KC_COMPRESSION_TYPE,
    KC_DELETE_RETENTION_MS,
    KC_MIN_CLEANABLE_DIRTY_RATIO,
    KC_MIN_COMPACTION_LAG_MS,
    KC_LOG__END
};
_Static_assert(KC_LOG__END - KC_KEY_BASE(KC_TABLE_LOG) <= KC_TABLE_KEYS, "log key table full");

/* Enumerated values, as stored. */
enum { KC_CLEANUP_DELETE, KC_CLEANUP_COMPACT, KC_CLEANUP_COMPACT_DELETE };
/* PRODUCER: a topic's "keep the producer's codec" (Kafka's topic value). */
enum { KC_COMPRESSION_NONE, KC_COMPRESSION_LZ4, KC_COMPRESSION_ZSTD, KC_COMPRESSION_PRODUCER,
       KC_COMPRESSION_GZIP, KC_COMPRESSION_SNAPPY };

extern const kc_table klog__log_conf_table;
/* Kafka's other spellings of these keys (retention.hours, log.retention.ms, ...). */
extern const kc_alias klog__log_conf_aliases[];

#endif
