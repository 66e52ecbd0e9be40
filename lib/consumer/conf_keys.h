/*
 * lib/consumer/conf_keys.h - configuration keys owned by the consumer.
 * (A group member's keys are lib/group's.)
 */
#ifndef KLOG_CONSUMER_CONF_KEYS_H
#define KLOG_CONSUMER_CONF_KEYS_H

#include "common/conf.h"
#include "compose.h"

enum {
    KC_AUTO_OFFSET_RESET = KC_KEY_BASE(KC_TABLE_CONSUMER),
    KC_FETCH_MAX_BYTES,
    KC_MAX_POLL_RECORDS,
    KC_CHECK_CRCS,
    KC_POLL_SPIN_US,
    KC_CONSUMER__END
};
_Static_assert(KC_CONSUMER__END - KC_KEY_BASE(KC_TABLE_CONSUMER) <= KC_TABLE_KEYS, "consumer key table full");

/* Enumerated values, as stored. */
enum { KC_RESET_LATEST, KC_RESET_EARLIEST, KC_RESET_NONE };

extern const kc_table klog__consumer_conf_table;

#endif
