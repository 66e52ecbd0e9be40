/*
 * lib/transport/conf_keys.h - configuration keys owned by the transports:
 * the TLS transport's (instance scope; librdkafka's and Kafka's names where
 * they have the key).  The TLS transport reads them from the klog_conf
 * given to klog_transport_register as its init argument; the server passes
 * its own configuration.
 */
#ifndef KLOG_TRANSPORT_CONF_KEYS_H
#define KLOG_TRANSPORT_CONF_KEYS_H

#include "common/conf.h"
#include "compose.h"

enum {
    KC_SSL_CERTIFICATE_LOCATION = KC_KEY_BASE(KC_TABLE_TRANSPORT),
    KC_SSL_KEY_LOCATION,
    KC_SSL_KEY_PASSWORD,
    KC_SSL_CA_LOCATION,
    KC_SSL_CLIENT_AUTH,
    KC_SSL_ENABLED_PROTOCOLS,
    KC_SSL_CIPHER_SUITES,
    KC_SSL_ENDPOINT_IDENTIFICATION,
    KC_SSL_PSK_IDENTITY,
    KC_SSL_PSK_KEY,
    KC_TRANSPORT__END
};
_Static_assert(KC_TRANSPORT__END - KC_KEY_BASE(KC_TABLE_TRANSPORT) <= KC_TABLE_KEYS, "transport key table full");

/* Enumerated values, as stored. */
enum { KC_CLIENT_AUTH_NONE, KC_CLIENT_AUTH_REQUESTED, KC_CLIENT_AUTH_REQUIRED };
enum { KC_TLS_12_13, KC_TLS_13, KC_TLS_12 };
enum { KC_ENDPOINT_HTTPS, KC_ENDPOINT_NONE };

extern const kc_table klog__transport_conf_table;

#endif
