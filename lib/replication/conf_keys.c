/* lib/replication/conf_keys.c - replication's configuration keys (conf_keys.h). */
#include <stdint.h>

#include "replication/conf_keys.h"

#define B(k) [(k) - KC_KEY_BASE(KC_TABLE_REPLICATION)]
enum { SI = KC_SCOPE_INSTANCE, ST = KC_SCOPE_TOPIC };

static const char *const v_controller[] = { "auto", "static", "quorum", NULL };
static const char *const v_peer_mech[] = { "none", "PLAIN", NULL };

static const kc_def defs[] = {
    B(KC_REPLICATION_PEERS) = KC_STR("replication.peers", SI,
                                     "the cluster's nodes, ID@URL,...: each node's first listener "
                                     "(tcp://HOST:PORT, tls://HOST:PORT, unix:///PATH; HOST:PORT means tcp); "
                                     "empty: a single node"),
    B(KC_REPLICATION_LEADER) = KC_INT("replication.leader", SI, -1, -1, 2147483647,
                                      "the node that leads a new cluster (-1: the lowest id); klog promote moves it"),
    B(KC_REPLICA_LAG_TIME_MAX_MS) = KC_INT("replica.lag.time.max.ms", SI, 30000, 1, INT64_C(1) << 40,
                                           "a follower not caught up for this long leaves the in-sync replicas"),
    B(KC_REPLICA_FETCH_WAIT_MAX_MS) = KC_INT("replica.fetch.wait.max.ms", SI, 500, 0, 60000,
                                             "how long a leader holds a follower's fetch that finds nothing new"),
    B(KC_REPLICA_FETCH_MAX_BYTES) = KC_INT("replica.fetch.max.bytes", SI, 1048576, 1024, 64 * 1024 * 1024,
                                           "bytes a follower asks for per partition and fetch"),
    B(KC_REPLICA_FETCH_BACKOFF_MS) = KC_INT("replica.fetch.backoff.ms", SI, 1000, 0, 600000,
                                            "a follower's pause after a failed fetch"),
    B(KC_REPLICA_SOCKET_TIMEOUT_MS) = KC_INT("replica.socket.timeout.ms", SI, 30000, 100, 3600000,
                                             "a peer request without an answer this long is given up"),
    B(KC_REPLICA_HEARTBEAT_MS) = KC_INT("replica.heartbeat.ms", SI, 2000, 10, 600000,
                                        "how often a node tells its controller it is alive (and which run it is)"),
    B(KC_MIN_INSYNC_REPLICAS) = KC_INT("min.insync.replicas", ST, 0, 0, 16,
                                       "acks=all writes need this many in-sync replicas "
                                       "(0: min(2, replicas)); fewer: NOT_ENOUGH_REPLICAS"),
    B(KC_REPLICATION_CONTROLLER) = KC_ENUM("replication.controller", SI, KC_CONTROLLER_AUTO, v_controller,
                                           "who decides leaders: static (the operator: klog promote), quorum (raft "
                                           "among the peers, needs 3 or more and klog built with raft), auto (quorum "
                                           "with 3 or more peers when built with raft, else static)"),
    B(KC_REPLICATION_WITNESSES) = KC_STR("replication.witnesses", SI,
                                         "quorum: the peers (ID,...) that vote but hold no data; the same list on "
                                         "every node"),
    B(KC_REPLICA_SESSION_TIMEOUT_MS) = KC_INT("replica.session.timeout.ms", SI, 6000, 10, INT64_C(1) << 40,
                                              "quorum: a node not heard from this long is taken for dead and "
                                              "loses its leaderships to in-sync replicas"),
    B(KC_QUORUM_ELECTION_TIMEOUT_MS) = KC_INT("controller.quorum.election.timeout.ms", SI, 1000, 10, 600000,
                                              "quorum: raft's election timeout (the controller's heartbeat is a "
                                              "tenth of it)"),
    B(KC_REPLICATION_SASL_MECHANISM) = KC_ENUM("replication.sasl.mechanism", SI, 0, v_peer_mech,
                                               "how a node authenticates to its peers when their servers "
                                               "require SASL (Kafka's sasl.mechanism.inter.broker.protocol): "
                                               "none or PLAIN (over tls:// peers)"),
    B(KC_REPLICATION_SASL_USERNAME) = KC_STR("replication.sasl.username", SI,
                                             "the user a node authenticates as to its peers (PLAIN)"),
    B(KC_REPLICATION_SASL_PASSWORD) = KC_STR("replication.sasl.password", SI,
                                             "replication.sasl.username's password"),
    B(KC_AUTO_LEADER_REBALANCE_ENABLE) = KC_BOOL("auto.leader.rebalance.enable", SI, 1,
                                                 "quorum: the controller moves leadership back to each "
                                                 "partition's preferred (first) replica once it is back in sync"),
    B(KC_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS) = KC_INT("leader.imbalance.check.interval.seconds", SI, 300, 1,
                                                           86400 * 365,
                                                           "quorum: how often the controller looks for "
                                                           "partitions not led by their preferred replica"),
    B(KC_LEADER_IMBALANCE_PER_BROKER_PERCENTAGE) = KC_INT("leader.imbalance.per.broker.percentage", SI, 10, 0, 100,
                                                          "quorum: a node's partitions go back to it once more "
                                                          "than this share of those it prefers are led elsewhere"),
};

_Static_assert(sizeof defs / sizeof defs[0] == KC_REPLICATION__END - KC_KEY_BASE(KC_TABLE_REPLICATION),
               "a key without an entry");

const kc_table klog__replication_conf_table = { "replication", KC_TABLE_REPLICATION, defs,
                                                sizeof defs / sizeof defs[0] };
