/*
 * lib/producer/conf_keys.h - configuration keys owned by the producer.
 * (compression.type is the log table's: a topic has it too.)
 */
#ifndef KLOG_PRODUCER_CONF_KEYS_H
#define KLOG_PRODUCER_CONF_KEYS_H

#include "common/conf.h"
#include "compose.h"

enum {
    KC_ACKS = KC_KEY_BASE(KC_TABLE_PRODUCER),
    KC_LINGER_MS,
    KC_BATCH_SIZE,
    KC_BATCH_NUM_MESSAGES,
    KC_COMPRESSION_LEVEL,
    KC_BUFFER_MEMORY,
    KC_MAX_BLOCK_MS,
    KC_ENABLE_IDEMPOTENCE,
    KC_PARTITIONER,
    KC_DELIVERY_REPORT_QUEUE,
    KC_COMPRESSION_THREADS,
    KC_PRODUCER__END
};
_Static_assert(KC_PRODUCER__END - KC_KEY_BASE(KC_TABLE_PRODUCER) <= KC_TABLE_KEYS, "producer key table full");

/* Enumerated values, as stored.  acks is stored as its number: 0, 1, or -1
 * for "all". */
enum { KC_PARTITIONER_DEFAULT, KC_PARTITIONER_HASH, KC_PARTITIONER_STICKY, KC_PARTITIONER_ROUND_ROBIN };

extern const kc_table klog__producer_conf_table;

#endif
