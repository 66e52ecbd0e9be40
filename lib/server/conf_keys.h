/*
 * lib/server/conf_keys.h - configuration keys owned by the Kafka protocol
 * server (instance scope, Kafka's broker names; klog/server.h lists them).
 */
#ifndef KLOG_SERVER_CONF_KEYS_H
#define KLOG_SERVER_CONF_KEYS_H

#include "common/conf.h"
#include "compose.h"

enum {
    KC_SOCKET_REQUEST_MAX_BYTES = KC_KEY_BASE(KC_TABLE_SERVER),
    KC_NUM_NETWORK_THREADS,
    KC_AUTO_CREATE_TOPICS,
    KC_CONNECTIONS_MAX_IDLE_MS,
    KC_NODE_ID,
    KC_ADVERTISED_HOST,
    KC_MAX_CONNECTIONS,
    KC_MAX_CONNECTIONS_PER_IP,
    KC_SASL_ENABLED_MECHANISMS,
    KC_SASL_USERS_FILE,
    KC_SASL_SERVER_MAX_RECEIVE_SIZE,
    KC_AUTH_FAILED_DELAY_MS,
    KC_ACL_FILE,
    KC_SUPER_USERS,
    KC_ALLOW_EVERYONE_IF_NO_ACL,
    KC_QUOTA_PRODUCER_DEFAULT,
    KC_QUOTA_CONSUMER_DEFAULT,
    KC_SERVER__END
};
_Static_assert(KC_SERVER__END - KC_KEY_BASE(KC_TABLE_SERVER) <= KC_TABLE_KEYS, "server key table full");

extern const kc_table klog__server_conf_table;

#endif
