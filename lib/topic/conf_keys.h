/*
 * lib/topic/conf_keys.h - configuration keys owned by the instance
 * (lib/topic): the I/O engine, topic defaults, the disk budget, retention
 * checks, the log cleaner, statistics, the caps on open files and index
 * memory, and the client.id that producers and consumers register their
 * statistics under.
 */
#ifndef KLOG_TOPIC_CONF_KEYS_H
#define KLOG_TOPIC_CONF_KEYS_H

#include "common/conf.h"
#include "compose.h"

enum {
    KC_IO_BACKEND = KC_KEY_BASE(KC_TABLE_INSTANCE),
    KC_NUM_PARTITIONS,
    KC_DISK_BUDGET_BYTES,
    KC_DISK_BUDGET_POLICY,
    KC_RETENTION_CHECK_MS,
    KC_CLEANER_ENABLE,
    KC_CLEANER_THREADS,
    KC_CLEANER_BACKOFF_MS,
    KC_CLEANER_DEDUPE_BYTES,
    KC_CLEANER_IO_RATE,
    KC_STATISTICS_INTERVAL_MS,
    KC_CLIENT_ID,
    KC_RECOVERY_VERIFY_ALL,
    KC_MAX_OPEN_FILES,
    KC_INDEX_CACHE_BYTES,
    KC_READ_ONLY,
    KC_CKPT_INTERVAL_MS,
    KC_CKPT_UNCHECKED_MAX,
    KC_INSTANCE__END
};
_Static_assert(KC_INSTANCE__END - KC_KEY_BASE(KC_TABLE_INSTANCE) <= KC_TABLE_KEYS, "instance key table full");

/* Enumerated values, as stored. */
enum { KC_BACKEND_AUTO, KC_BACKEND_URING, KC_BACKEND_POSIX };
enum { KC_BUDGET_DELETE_OLDEST, KC_BUDGET_REFUSE };

extern const kc_table klog__instance_conf_table;

#endif
