/* lib/server/conf_keys.c - the server's configuration keys (conf_keys.h). */
#include <stdint.h>

#include "server/conf_keys.h"

#define B(k) [(k) - KC_KEY_BASE(KC_TABLE_SERVER)]
enum { SC = KC_SCOPE_INSTANCE };

static const kc_def defs[] = {
    B(KC_SOCKET_REQUEST_MAX_BYTES) = KC_INT("socket.request.max.bytes", SC, 104857600, 1024, 2147483647,
                                            "largest request frame the server accepts"),
    B(KC_NUM_NETWORK_THREADS) = KC_INT("num.network.threads", SC, 2, 1, 64,
                                       "threads serving the server's connections"),
    B(KC_AUTO_CREATE_TOPICS) = KC_BOOL("auto.create.topics.enable", SC, 1,
                                       "Metadata requests create unknown topics"),
    B(KC_CONNECTIONS_MAX_IDLE_MS) = KC_INT("connections.max.idle.ms", SC, 600000, 1000, INT64_C(1) << 40,
                                           "close client connections idle this long (or not reading a response)"),
    B(KC_NODE_ID) = KC_INT("node.id", SC, 0, 0, 2147483647, "the broker id clients see in Metadata"),
    B(KC_ADVERTISED_HOST) = KC_STR("advertised.host", SC,
                                   "host name in Metadata (empty: the address the client connected to)"),
    B(KC_MAX_CONNECTIONS) = KC_INT("max.connections", SC, 10000, 1, 1000000,
                                   "client connections held at once; more are closed on accept"),
    B(KC_MAX_CONNECTIONS_PER_IP) = KC_INT("max.connections.per.ip", SC, 2147483647, 1, 2147483647,
                                          "client connections from one address held at once"),
    B(KC_SASL_ENABLED_MECHANISMS) = KC_STR("sasl.enabled.mechanisms", SC,
                                           "SASL mechanisms clients must authenticate with (PLAIN, SCRAM-SHA-256, "
                                           "SCRAM-SHA-512, comma-separated; empty: no SASL)"),
    B(KC_SASL_USERS_FILE) = KC_STR("sasl.users.file", SC,
                                   "SASL users and their SCRAM credentials (empty: DIR/users; klog users add)"),
    B(KC_SASL_SERVER_MAX_RECEIVE_SIZE) = KC_INT("sasl.server.max.receive.size", SC, 65536, 512, 2147483647,
                                                "largest frame a connection may send before it has authenticated"),
    B(KC_AUTH_FAILED_DELAY_MS) = KC_INT("connection.failed.authentication.delay.ms", SC, 100, 0, 10000,
                                        "wait before answering a failed authentication (doubling per failure "
                                        "from one address, at most 10 s)"),
    B(KC_ACL_FILE) = KC_STR("acl.file", SC, "where ACLs are kept (empty: DIR/acls; klog acls, CreateAcls)"),
    B(KC_SUPER_USERS) = KC_STR("super.users", SC,
                               "principals ACLs do not apply to, separated by ';' (User:admin;User:ops)"),
    B(KC_ALLOW_EVERYONE_IF_NO_ACL) = KC_BOOL("allow.everyone.if.no.acl.found", SC, 0,
                                             "with authentication on, allow what no ACL mentions"),
    B(KC_QUOTA_PRODUCER_DEFAULT) = KC_INT("quota.producer.default", SC, 0, 0, INT64_C(1) << 50,
                                          "bytes per second a client (principal and client id) may produce "
                                          "before it is throttled (0: no quota)"),
    B(KC_QUOTA_CONSUMER_DEFAULT) = KC_INT("quota.consumer.default", SC, 0, 0, INT64_C(1) << 50,
                                          "bytes per second a client (principal and client id) may fetch "
                                          "before it is throttled (0: no quota)"),
};

_Static_assert(sizeof defs / sizeof defs[0] == KC_SERVER__END - KC_KEY_BASE(KC_TABLE_SERVER),
               "a key without an entry");

const kc_table klog__server_conf_table = { "server", KC_TABLE_SERVER, defs, sizeof defs / sizeof defs[0] };
