/* lib/storage/conf_keys.c - the partition logs' configuration keys (conf_keys.h). */
#include <stdint.h>

#include "storage/conf_keys.h"

#define B(k) [(k) - KC_KEY_BASE(KC_TABLE_LOG)]
enum { ST = KC_SCOPE_TOPIC, SP = KC_SCOPE_PRODUCER };

static const char *const v_cleanup[] = { "delete", "compact", "compact,delete", NULL };
/* Kafka takes either order */
static const kc_sym s_cleanup[] = { { "delete,compact", KC_CLEANUP_COMPACT_DELETE }, { NULL, 0 } };
static const char *const v_compress[] = { "none", "lz4", "zstd", "producer", "gzip", "snappy", NULL };
/* Kafka's topic-level name for none */
static const kc_sym s_compress[] = { { "uncompressed", KC_COMPRESSION_NONE }, { NULL, 0 } };

static const kc_def defs[] = {
    B(KC_SEGMENT_BYTES) = KC_INT("segment.bytes", ST, 1073741824, 1024, 2147483647, "roll a segment at this size"),
    B(KC_SEGMENT_MS) = KC_INT("segment.ms", ST, 604800000, 1, INT64_MAX / 2,
                              "roll a segment when its first batch is this old"),
    B(KC_INDEX_INTERVAL_BYTES) = KC_INT("index.interval.bytes", ST, 4096, 1, 2147483647,
                                        "bytes between two offset-index entries"),
    B(KC_MAX_MESSAGE_BYTES) = KC_INT("max.message.bytes", ST, 1048576, 1, 64 * 1024 * 1024 - 65536,
                                     "largest record batch a partition takes"),
    B(KC_RETENTION_MS) = KC_INT("retention.ms", ST, 604800000, -1, INT64_MAX / 2,
                                "delete segments older than this; -1 = forever"),
    B(KC_RETENTION_BYTES) = KC_INT("retention.bytes", ST, -1, -1, INT64_MAX / 2,
                                   "delete the oldest segments past this size per partition; -1 = no limit"),
    B(KC_CLEANUP_POLICY) = { .name = "cleanup.policy", .type = KC_TYPE_ENUM, .scope = ST, .def = KC_CLEANUP_DELETE,
                             .values = v_cleanup, .syms = s_cleanup,
                             .doc = "delete (retention), compact (latest record per key), or both" },
    B(KC_FLUSH_MESSAGES) = KC_INT("flush.messages", ST, 0, 0, INT64_MAX / 2,
                                  "fdatasync after this many records; 0 = off"),
    B(KC_FLUSH_MS) = KC_INT("flush.ms", ST, 0, 0, INT64_MAX / 2,
                            "fdatasync when unsynced data is this old; 0 = off"),
    B(KC_COMPRESSION_TYPE) = { .name = "compression.type", .type = KC_TYPE_ENUM, .scope = SP | ST,
                               .def = KC_COMPRESSION_NONE, .values = v_compress, .syms = s_compress,
                               .doc = "batch codec: a producer's, or a topic's (producer = keep the producer's)" },
    B(KC_DELETE_RETENTION_MS) = KC_INT("delete.retention.ms", ST, 86400000, 0, INT64_MAX / 2,
                                       "how long a compacted topic keeps tombstones"),
    B(KC_MIN_CLEANABLE_DIRTY_RATIO) = { .name = "min.cleanable.dirty.ratio", .type = KC_TYPE_RATIO, .scope = ST,
                                        .def = KC_RATIO_ONE / 2, .min = 0, .max = KC_RATIO_ONE,
                                        .doc = "clean a partition once this share of it is dirty" },
    B(KC_MIN_COMPACTION_LAG_MS) = KC_INT("min.compaction.lag.ms", ST, 0, 0, INT64_MAX / 2,
                                         "records younger than this are not compacted"),
};

/*
 * Kafka's other spellings (kc_alias): the topic-level retention in hours or
 * minutes, and the broker-level names under which Kafka takes the same keys
 * as every topic's default (what klog_open's conf is: its topic keys are the
 * defaults of every topic).  Each sets the topic key it names.
 */
#define HOUR_MS 3600000
#define MINUTE_MS 60000
const kc_alias klog__log_conf_aliases[] = {
    { "retention.hours", KC_RETENTION_MS, HOUR_MS },
    { "retention.minutes", KC_RETENTION_MS, MINUTE_MS },
    { "log.retention.hours", KC_RETENTION_MS, HOUR_MS },
    { "log.retention.minutes", KC_RETENTION_MS, MINUTE_MS },
    { "log.retention.ms", KC_RETENTION_MS, 1 },
    { "log.retention.bytes", KC_RETENTION_BYTES, 1 },
    { "log.segment.bytes", KC_SEGMENT_BYTES, 1 },
    { "log.roll.ms", KC_SEGMENT_MS, 1 },
    { "log.roll.hours", KC_SEGMENT_MS, HOUR_MS },
    { "log.index.interval.bytes", KC_INDEX_INTERVAL_BYTES, 1 },
    { "message.max.bytes", KC_MAX_MESSAGE_BYTES, 1 },
    { "log.cleanup.policy", KC_CLEANUP_POLICY, 1 },
    { "log.flush.interval.messages", KC_FLUSH_MESSAGES, 1 },
    { "log.flush.interval.ms", KC_FLUSH_MS, 1 },
    { "log.cleaner.delete.retention.ms", KC_DELETE_RETENTION_MS, 1 },
    { "log.cleaner.min.cleanable.ratio", KC_MIN_CLEANABLE_DIRTY_RATIO, 1 },
    { "log.cleaner.min.compaction.lag.ms", KC_MIN_COMPACTION_LAG_MS, 1 },
    { NULL, 0, 0 },
};

/* An entry for every key of the enum (a hole is caught by klog__conf_tables_check). */
_Static_assert(sizeof defs / sizeof defs[0] == KC_LOG__END - KC_KEY_BASE(KC_TABLE_LOG),
               "a key without an entry");

const kc_table klog__log_conf_table = { "log", KC_TABLE_LOG, defs, sizeof defs / sizeof defs[0] };
