/*
 * lib/replication/conf_keys.h - configuration keys owned by replication
 * (Kafka's broker and topic names where Kafka has the key; klog(7),
 * REPLICATION, lists them).  node.id is the server's key (the broker id
 * clients see), which names a node of the cluster too.
 */
#ifndef KLOG_REPLICATION_CONF_KEYS_H
#define KLOG_REPLICATION_CONF_KEYS_H

#include "common/conf.h"
#include "compose.h"

enum {
    KC_REPLICATION_PEERS = KC_KEY_BASE(KC_TABLE_REPLICATION),
    KC_REPLICATION_LEADER,
    KC_REPLICA_LAG_TIME_MAX_MS,
    KC_REPLICA_FETCH_WAIT_MAX_MS,
    KC_REPLICA_FETCH_MAX_BYTES,
    KC_REPLICA_FETCH_BACKOFF_MS,
    KC_REPLICA_SOCKET_TIMEOUT_MS,
    KC_REPLICA_HEARTBEAT_MS,
    KC_MIN_INSYNC_REPLICAS,
    KC_REPLICATION_CONTROLLER,
    KC_REPLICATION_WITNESSES,
    KC_REPLICA_SESSION_TIMEOUT_MS,
    KC_QUORUM_ELECTION_TIMEOUT_MS,
    KC_REPLICATION_SASL_MECHANISM,
    KC_REPLICATION_SASL_USERNAME,
    KC_REPLICATION_SASL_PASSWORD,
    KC_AUTO_LEADER_REBALANCE_ENABLE,
    KC_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS,
    KC_LEADER_IMBALANCE_PER_BROKER_PERCENTAGE,
    KC_REPLICATION__END
};
_Static_assert(KC_REPLICATION__END - KC_KEY_BASE(KC_TABLE_REPLICATION) <= KC_TABLE_KEYS, "replication key table full");

/* replication.controller */
enum { KC_CONTROLLER_AUTO, KC_CONTROLLER_STATIC, KC_CONTROLLER_QUORUM };

extern const kc_table klog__replication_conf_table;

#endif
