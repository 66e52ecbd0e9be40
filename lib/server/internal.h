/*
 * lib/server/internal.h - the Kafka protocol server's parts (contract).
 *
 * server.c     klog_server_*: listeners, network threads (workers), the
 *              connections each holds with epoll, framing, non-blocking
 *              sends, parked calls and their wake-ups.
 * dispatch.c   the handler table (one entry per API key of kk_api's table),
 *              ApiVersions, and what a request nobody handles gets.
 * data.c       Produce, Fetch, ListOffsets, DeleteRecords, InitProducerId.
 * metadata.c   Metadata, and topic look-up with auto-creation.
 * admin.c      CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs.
 * replica.c    LeaderAndIsr, OffsetForLeaderEpoch, AlterPartition,
 *              ElectLeaders: replication between nodes (lib/replication).
 * security.c   SaslHandshake, SaslAuthenticate (PLAIN, SCRAM over
 *              scram.c), who each connection is, ACLs (acl.c) and
 *              CreateAcls, DescribeAcls, DeleteAcls, ksrv_allowed.
 * groups.c     FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
 *              LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups,
 *              ListGroups, DeleteGroups: Kafka's classic group protocol
 *              over the instance's coordinator (lib/group kg_coordinator).
 *
 * Layering: lib/server sits on lib/kafka (codec), lib/transport, lib/format
 * (batch conversion), lib/topic and lib/partition (data), lib/group.
 *
 * A call is one request being served.  Its worker decodes the frame into
 * call->req (pointing into the connection's frame buffer and arena, both
 * kept until the call ends: the connection reads nothing more meanwhile)
 * and runs the API's handler:
 *
 *     int handler(ksrv_call *c);
 *
 * which either answers (ksrv_respond: encodes the response body into the
 * connection's out buffer; returns KSRV_DONE) or parks (returns KSRV_PARK
 * after setting c->deadline).  A parked call runs its handler again, on
 * its worker, when it is woken (ksrv_call_wake, ksrv_worker_kick) or its
 * deadline passes (c->expired is then true: answer now with what there
 * is).  c->runs counts the runs (0 on the first).  A handler keeps what
 * it needs between runs in c->state, freed by c->state_free when the call
 * ends (answered and sent, or the connection closed), on the worker's
 * thread; state_free must undo any registration that could wake the call
 * (kpart_unlisten), so nothing touches the call after.
 *
 * A handler that returns KSRV_NORESPONSE (Produce with acks=0) sends
 * nothing.  A negative return closes the connection (with a logged
 * reason): only for what Kafka also answers by closing.
 *
 * Threading: a call belongs to its worker's thread; ksrv_call_wake and
 * ksrv_worker_kick are the only functions here safe from other threads
 * (partition listeners, group notify functions): they set a flag and
 * write the worker's eventfd, and never block or allocate.
 */
#ifndef KLOG_SERVER_INTERNAL_H
#define KLOG_SERVER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <klog/server.h>
#include <klog/conf.h>
#include "kafka/kafka.h"

struct klog;
typedef struct ksrv_worker ksrv_worker;
typedef struct ksrv_conn ksrv_conn;

enum { KSRV_DONE = 0, KSRV_PARK = 1, KSRV_NORESPONSE = 2 };

typedef struct ksrv_call {
    struct klog_server *srv;
    ksrv_worker *w;
    ksrv_conn *conn;
    kk_request req;           /* decoded request: req.hdr, req.body.<api> */
    int64_t deadline;         /* parked: monotonic ns when it runs anyway */
    int64_t started;          /* monotonic ns the request was decoded */
    int runs;                 /* handler runs before this one */
    bool expired;             /* this run is because the deadline passed */
    _Atomic bool woken;       /* private to server.c */
    void *state;              /* the handler's, between runs */
    void (*state_free)(struct ksrv_call *c);
    void *mem;                /* private to server.c: ksrv_alloc's blocks */
    bool close_after;         /* close the connection once the response is out */
} ksrv_call;

typedef int (*ksrv_handler)(ksrv_call *c);

/* ---- who a connection is (security.c) ------------------------------------------ */

#define KSRV_PRINCIPAL_MAX 320

/* A connection's authentication, kept by server.c in the connection and
 * changed by security.c on its worker. */
typedef struct ksrv_auth {
    char principal[KSRV_PRINCIPAL_MAX]; /* "User:alice", "User:CN=alice,O=x", "User:ANONYMOUS" */
    char host[64];             /* the peer's address, for ACLs ("" for a Unix socket) */
    bool authed;               /* may send more than ApiVersions and SASL */
    bool identified;           /* the transport was asked who the peer is */
    int mech;                  /* chosen by SaslHandshake (scram.h KSEC_*), 0 before */
    bool raw;                  /* SaslHandshake v0: tokens come as bare frames */
    bool sasl_done;            /* a SASL exchange succeeded (no second one) */
    struct ksec_scram *scram;  /* a SCRAM exchange in progress */
    int64_t fail_at;           /* a failed attempt: answer at this time, then close */
} ksrv_auth;

/* Encode the response body (a kk_<api>_resp) for c's API key and version
 * into the connection's out buffer.  Returns KSRV_DONE, or a negative
 * code when it cannot be encoded (the connection is then closed). */
int ksrv_respond(ksrv_call *c, const void *body);

/* Zeroed memory that lives until the call ends (response arrays and
 * strings); NULL when out of memory (answer with an error or close). */
void *ksrv_alloc(ksrv_call *c, size_t n);

/* The worker's codec context (decompression for validation, v2 LZ4
 * re-framing for Fetch); NULL when it cannot be made.  One per worker:
 * valid during the run. */
struct kf_codec;
struct kf_codec *ksrv_codec(ksrv_call *c);

/* The out buffer itself, for handlers that reference memory in their
 * response (Fetch: records in mapped segments, kept alive by c->state
 * until the response has been sent). */
kk_wbuf *ksrv_out(ksrv_call *c);

/* Wake a parked call (any thread; a no-op for a call not parked). */
void ksrv_call_wake(ksrv_call *c);
/* Wake every parked call of the worker (any thread): what a group's notify
 * function calls, with the worker as its argument. */
void ksrv_worker_kick(ksrv_worker *w);

/* ---- what handlers read of the server --------------------------------------- */

/* The connection's authentication state. */
ksrv_auth *ksrv_conn_auth(ksrv_conn *c);
/* Change the connection's frame cap (a small one until authenticated). */
void ksrv_conn_set_max_frame(ksrv_conn *c, uint32_t max);

struct klog *ksrv_klog(const struct klog_server *s);
/* Configuration, read once at klog_server_new. */
typedef struct ksrv_conf {
    uint32_t max_frame;       /* socket.request.max.bytes */
    int threads;              /* num.network.threads */
    bool auto_create;         /* auto.create.topics.enable */
    int64_t idle_ms;          /* connections.max.idle.ms */
    int32_t node_id;          /* node.id */
    char advertised_host[256];/* advertised.host ("" = the connection's local address) */
    int max_conns;            /* max.connections */
    int max_conns_per_ip;     /* max.connections.per.ip */
    int64_t quota_produce;    /* quota.producer.default, bytes/s (0: none) */
    int64_t quota_fetch;      /* quota.consumer.default */
} ksrv_conf;
const ksrv_conf *ksrv_config(const struct klog_server *s);

/* The connection's client: "tcp://127.0.0.1:40312", and the host and
 * port the client reached this server at (Metadata's broker entry). */
const char *ksrv_conn_peer(const ksrv_conn *c);
void ksrv_conn_local(const ksrv_conn *c, const char **host, int32_t *port);

/* Log a line (to the server's log: stderr with a "klog serve:" prefix
 * unless the application set a log callback). */
void ksrv_log(const struct klog_server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- handlers (dispatch.c's table) ------------------------------------------ */

/* NULL when nobody implements key (then the connection is closed). */
ksrv_handler ksrv_handler_for(int16_t key);
/* Whether the server advertises key in ApiVersions (implemented and
 * enabled: SASL keys only with authentication configured). */
bool ksrv_advertised(const struct klog_server *s, int16_t key);

int ksrv_api_versions(ksrv_call *c);
int ksrv_produce(ksrv_call *c);
int ksrv_fetch(ksrv_call *c);
int ksrv_list_offsets(ksrv_call *c);
int ksrv_delete_records(ksrv_call *c);
int ksrv_init_producer_id(ksrv_call *c);
int ksrv_metadata(ksrv_call *c);
int ksrv_create_topics(ksrv_call *c);
int ksrv_delete_topics(ksrv_call *c);
int ksrv_create_partitions(ksrv_call *c);
int ksrv_describe_configs(ksrv_call *c);
int ksrv_alter_configs(ksrv_call *c);
int ksrv_incremental_alter_configs(ksrv_call *c);
int ksrv_find_coordinator(ksrv_call *c);
int ksrv_join_group(ksrv_call *c);
int ksrv_sync_group(ksrv_call *c);
int ksrv_heartbeat(ksrv_call *c);
int ksrv_leave_group(ksrv_call *c);
int ksrv_offset_commit(ksrv_call *c);
int ksrv_offset_fetch(ksrv_call *c);
int ksrv_describe_groups(ksrv_call *c);
int ksrv_list_groups(ksrv_call *c);
int ksrv_delete_groups(ksrv_call *c);
/* replica.c: what replicas ask of each other (lib/replication), and
 * OffsetForLeaderEpoch, which clients ask too. */
int ksrv_leader_and_isr(ksrv_call *c);
int ksrv_offset_for_leader_epoch(ksrv_call *c);
int ksrv_alter_partition(ksrv_call *c);
int ksrv_elect_leaders(ksrv_call *c);
/* Whether the server's instance is a replicated node. */
bool ksrv_replicated(const struct klog_server *s);
/* A replica's fetch of topic/partition on a replicated node
 * (krep_replica_fetch): a Kafka error code; *p on NONE and
 * OFFSET_OUT_OF_RANGE. */
struct kpart;
int16_t ksrv_replica_fetch(ksrv_call *c, const char *topic, int32_t partition, int32_t replica_id,
                           int32_t current_leader_epoch, int64_t fetch_offset, struct kpart **p);

/* groups.c: per-server group state (members joined through this server,
 * left at stop; the worker each member's notify kicks).  init at
 * klog_server_new, stop at klog_server_stop before the workers go. */
typedef struct ksrv_groups ksrv_groups;
int ksrv_groups_new(struct klog_server *s, ksrv_groups **out);
void ksrv_groups_stop(ksrv_groups *g);
void ksrv_groups_free(ksrv_groups *g);
ksrv_groups *ksrv_groups_of(const struct klog_server *s);

/* ---- security (security.c) ------------------------------------------------------ */

/* Authentication and authorisation of a server: keys read at
 * klog_server_new, the users file and the ACLs (guarded by a lock of its
 * own: workers read them, CreateAcls/DeleteAcls and reloads change them),
 * and the failed-attempt table that slows down password guessing. */
typedef struct ksrv_sec ksrv_sec;
int ksrv_sec_new(struct klog_server *s, const klog_conf *conf, ksrv_sec **out, char *errbuf, size_t errsize);
void ksrv_sec_free(ksrv_sec *sec);
ksrv_sec *ksrv_sec_of(const struct klog_server *s);
/* Read the users and ACL files again.  0 or an error (errbuf). */
int ksrv_sec_reload(ksrv_sec *sec, char *errbuf, size_t errsize);
/* Must a connection authenticate before anything but ApiVersions and SASL
 * (SASL on, or client certificates required)?  Are SASL's keys served? */
bool ksrv_sec_required(const ksrv_sec *sec);
bool ksrv_sec_sasl(const ksrv_sec *sec);
/* With SASL on and nobody in the users file: the file's path (for a
 * warning: no one can authenticate); else NULL. */
const char *ksrv_sec_no_users(ksrv_sec *sec);
/* sasl.server.max.receive.size */
uint32_t ksrv_sec_preauth_max(const ksrv_sec *sec);
/* A new connection: its principal (ANONYMOUS) and host; authed unless
 * authentication is required. */
void ksrv_auth_init(ksrv_sec *sec, ksrv_auth *a, const char *peer_url);
/* The transport vouched for the peer (TLS: a verified certificate's
 * subject, or a pre-shared key's name): that is its principal, and it is
 * authenticated. */
void ksrv_auth_identity(ksrv_sec *sec, ksrv_auth *a, const char *ident);
void ksrv_auth_clear(ksrv_auth *a);
/* A frame on a connection in SaslHandshake v0's raw mode: make the call a
 * SaslAuthenticate of version -1 carrying the frame (ksrv_sasl_authenticate
 * answers it raw). */
void ksrv_sasl_raw_call(ksrv_call *c, const void *frame, size_t len);

/* Count a SASL authentication that succeeded or failed (klog_server_stats). */
void ksrv_metric_auth(struct klog_server *s, bool ok);

/* May the connection's principal do op (acl.h KACL_OP_*) on the resource
 * (KACL_RES_*, name)?  Always, with authentication off. */
bool ksrv_allowed(ksrv_call *c, int op, int res_type, const char *name);
/* Does it have WRITE on some topic or IDEMPOTENT_WRITE on the cluster
 * (InitProducerId)? */
bool ksrv_allowed_idempotent(ksrv_call *c);

int ksrv_sasl_handshake(ksrv_call *c);
int ksrv_sasl_authenticate(ksrv_call *c);
int ksrv_describe_acls(ksrv_call *c);
int ksrv_create_acls(ksrv_call *c);
int ksrv_delete_acls(ksrv_call *c);

/* Topic auto-creation (metadata.c): get topic `name` for a Metadata or
 * Produce request, creating it with the instance's defaults when
 * auto.create.topics.enable is on and create is true.  Returns the
 * topic (referenced: klog__topic_put) or NULL with *err a Kafka error
 * code (UNKNOWN_TOPIC_OR_PARTITION, INVALID_TOPIC_EXCEPTION). */
struct kt_topic;
struct kt_topic *ksrv_topic_get(struct klog_server *s, const char *name, bool create, int16_t *err);

#endif /* KLOG_SERVER_INTERNAL_H */
