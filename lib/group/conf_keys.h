/*
 * lib/group/conf_keys.h - configuration keys owned by lib/group: a group
 * member's (consumer scope) and the coordinators' (instance scope).
 */
#ifndef KLOG_GROUP_CONF_KEYS_H
#define KLOG_GROUP_CONF_KEYS_H

#include "common/conf.h"
#include "compose.h"

enum {
    KC_GROUP_ID = KC_KEY_BASE(KC_TABLE_GROUP),
    KC_GROUP_INSTANCE_ID,
    KC_SESSION_TIMEOUT_MS,
    KC_HEARTBEAT_INTERVAL_MS,
    KC_MAX_POLL_INTERVAL_MS,
    KC_ASSIGNMENT_STRATEGY,
    KC_ENABLE_AUTO_COMMIT,
    KC_AUTO_COMMIT_INTERVAL_MS,
    KC_OFFSETS_PARTITIONS,
    KC_INITIAL_REBALANCE_DELAY_MS,
    KC_GROUP__END
};
_Static_assert(KC_GROUP__END - KC_KEY_BASE(KC_TABLE_GROUP) <= KC_TABLE_KEYS, "group key table full");

/* Enumerated values, as stored. */
enum { KC_ASSIGN_RANGE, KC_ASSIGN_ROUNDROBIN, KC_ASSIGN_COOPERATIVE_STICKY };

extern const kc_table klog__group_conf_table;

#endif
