/* lib/group/conf_keys.c - lib/group's configuration keys (conf_keys.h). */
#include <stdint.h>

#include "group/conf_keys.h"

#define B(k) [(k) - KC_KEY_BASE(KC_TABLE_GROUP)]
enum { SI = KC_SCOPE_INSTANCE, SC = KC_SCOPE_CONSUMER };

static const char *const v_assign[] = { "range", "roundrobin", "cooperative-sticky", NULL };

static const kc_def defs[] = {
    B(KC_GROUP_ID) = KC_STR("group.id", SC, "the consumer group to join or commit in; \"\" = none"),
    B(KC_GROUP_INSTANCE_ID) = KC_STR("group.instance.id", SC, "static membership: a member's stable id"),
    B(KC_SESSION_TIMEOUT_MS) = KC_INT("session.timeout.ms", SC, 45000, 1, 3600000,
                                      "a member not heard from this long is removed"),
    B(KC_HEARTBEAT_INTERVAL_MS) = KC_INT("heartbeat.interval.ms", SC, 3000, 1, 3600000,
                                         "accepted, unused: heartbeats ride on polls"),
    B(KC_MAX_POLL_INTERVAL_MS) = KC_INT("max.poll.interval.ms", SC, 300000, 1, INT32_MAX,
                                        "a member that does not poll this long leaves; the rebalance timeout"),
    B(KC_ASSIGNMENT_STRATEGY) = KC_ENUM("partition.assignment.strategy", SC, KC_ASSIGN_RANGE, v_assign,
                                        "how the coordinator spreads partitions over members"),
    B(KC_ENABLE_AUTO_COMMIT) = KC_BOOL("enable.auto.commit", SC, 1, "commit the consumed positions periodically"),
    B(KC_AUTO_COMMIT_INTERVAL_MS) = KC_INT("auto.commit.interval.ms", SC, 5000, 0, INT32_MAX,
                                           "auto-commit period; 0 = every poll"),
    B(KC_OFFSETS_PARTITIONS) = KC_INT("offsets.topic.num.partitions", SI, 1, 1, 100,
                                      "partitions of __consumer_offsets, when it is created"),
    B(KC_INITIAL_REBALANCE_DELAY_MS) = KC_INT("group.initial.rebalance.delay.ms", SI, 0, 0, 600000,
                                              "how long a new group waits for more members before assigning"),
};

/* An entry for every key of the enum (a hole is caught by klog__conf_tables_check). */
_Static_assert(sizeof defs / sizeof defs[0] == KC_GROUP__END - KC_KEY_BASE(KC_TABLE_GROUP),
               "a key without an entry");

const kc_table klog__group_conf_table = { "group", KC_TABLE_GROUP, defs, sizeof defs / sizeof defs[0] };
