/*
 * klog/server.h - serve an open instance to Kafka clients over the network.
 *
 * A klog_server speaks the Kafka wire protocol on one or more listeners
 * (tcp://HOST:PORT, unix:///PATH, or any transport registered in its
 * registry), so that kcat, librdkafka, kafka-python, confluent-kafka,
 * kafkajs and the klog CLI can produce, consume, manage topics and share
 * consumer groups with the application that opened the instance.  The
 * application keeps using the instance in-process at the same time: a C
 * consumer in group "g" and a Kafka client in group "g" are members of the
 * same group, and committed offsets live in the same __consumer_offsets.
 *
 * The server is in a library of its own beside libklog, libklog-server
 * (pkg-config klog-server; in meson dependency('klog-server'); in CMake
 * klog::server), with klog/transport.h and klog/replication.h: link
 * -lklog-server -lklog.
 *
 *     klog *k;            klog_open(&k, "data", NULL, NULL, 0);
 *     klog_server *s;     klog_server_new(&s, k, NULL, NULL, 0);
 *     klog_server_listen(s, "tcp://127.0.0.1:9092");
 *     klog_server_start(s);
 *     ...                 (serve until told to stop)
 *     klog_server_free(s);
 *     klog_close(k);
 *
 * Configuration (klog_conf keys of the instance scope, Kafka's broker names;
 * taken from the conf given to klog_server_new, else the instance's):
 *   socket.request.max.bytes   largest request frame [104857600]
 *   num.network.threads        threads serving connections [2]
 *   auto.create.topics.enable  Metadata requests create unknown topics
 *                              with the instance's topic defaults [true]
 *   connections.max.idle.ms    close connections idle this long [600000]
 *   node.id                    the broker id clients see in Metadata [0]
 *   advertised.host            host name put in Metadata ["": the address
 *                              the client connected to]
 *   max.connections            connections held at once; more are
 *                              accepted and closed at once [10000]
 *   max.connections.per.ip     the same per client address [no cap]
 *   quota.producer.default,    bytes per second a client (principal and
 *   quota.consumer.default     client id) may produce / fetch; over it,
 *                              throttle_time_ms in the answer and the
 *                              connection unread that long [0: none]
 *
 * Security (klog(7), SERVING KAFKA CLIENTS, Security):
 *   ssl.certificate.location, ssl.key.location, ssl.ca.location,
 *   ssl.client.auth, ...       tls://HOST:PORT listeners (the "tls"
 *                              transport is always registered; it listens
 *                              once it has a certificate or a pre-shared
 *                              key: klog_transport_tls(3))
 *   sasl.enabled.mechanisms    PLAIN, SCRAM-SHA-256, SCRAM-SHA-512: every
 *                              connection must authenticate [""]
 *   sasl.users.file            the users and their SCRAM credentials
 *                              [DIR/users; klog users add]
 *   sasl.server.max.receive.size  largest frame before authenticating [65536]
 *   connection.failed.authentication.delay.ms  [100, doubled per failure]
 *   acl.file                   the ACLs [DIR/acls; klog acls, CreateAcls]
 *   super.users                "User:a;User:b": ACLs do not apply to them
 *   allow.everyone.if.no.acl.found  [false]
 * With authentication on (SASL, or ssl.client.auth=required) a connection
 * may send ApiVersions and SASL requests only until it has authenticated,
 * and every request is then authorised against the ACLs.
 *
 * What is served: ApiVersions advertises exactly the API keys and versions
 * implemented (klog(7), SERVING KAFKA CLIENTS, lists them); an unknown
 * version of ApiVersions is answered with UNSUPPORTED_VERSION and the
 * list, as Kafka does; a request of another API at a version not
 * implemented, and a malformed or oversized frame, close that connection
 * with a logged reason and nothing else.
 *
 * Threading: the server runs num.network.threads threads of its own, each
 * holding a share of the connections with epoll, so a thousand idle
 * connections cost no thread each.  A connection's requests are answered
 * in order, one at a time (as a Kafka broker does); a request that waits
 * (a long-poll Fetch, a JoinGroup waiting for the other members) parks
 * without holding its thread, and a response the client does not read
 * waits in that connection alone.  Every function here may be called from
 * any thread, but not concurrently on the same server, and not from a
 * callback of the server's own threads.
 *
 * Errors: 0 or a negative code (klog/error.h); klog_strerror names it.
 */
#ifndef KLOG_SERVER_H
#define KLOG_SERVER_H

#include <stddef.h>

#include <klog/version.h>
#include <klog/error.h>
#include <klog/conf.h>
#include <klog/instance.h>
#include <klog/transport.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klog_server klog_server;

/*
 * Create a server for the open instance k (which must outlive it).  conf:
 * the keys above (NULL: the instance's configuration); keys of other scopes
 * are refused.  Nothing listens until klog_server_listen.  On an instance
 * opened with replication.peers, the first server made starts its
 * replication (klog/replication.h), and a bad replication key is this
 * call's KLOG_ECONF.  Returns 0, -EINVAL (NULL k or out), KLOG_ECONF (a bad
 * key or value; errbuf says which), -ENOMEM.
 */
KLOG_API int klog_server_new(klog_server **out, klog *k, const klog_conf *conf, char *errbuf,
                             size_t errsize);

/*
 * The server's transport registry (tcp and unix built in), for registering
 * a transport of one's own before klog_server_listen uses its scheme.
 * Owned by the server.  NULL if s is NULL.
 */
KLOG_API klog_transport_registry *klog_server_transports(klog_server *s);

/*
 * Listen on url ("tcp://127.0.0.1:9092", "tcp://0.0.0.0:0" for a free port,
 * "unix:///run/klog.sock").  May be called before or after
 * klog_server_start, any number of times.  Returns 0, -EINVAL, -EADDRINUSE,
 * -EPROTONOSUPPORT and the other errors of klog_transport_listen, -ENOSPC
 * (64 listeners already), KLOG_ESTATE (after klog_server_stop), -ENOMEM.
 */
KLOG_API int klog_server_listen(klog_server *s, const char *url);

/* How many listeners s has, and the URL of listener i (bound: a port 0
 * resolved), or NULL if i is out of range.  The string is valid until
 * klog_server_stop. */
KLOG_API int klog_server_listener_count(const klog_server *s);
KLOG_API const char *klog_server_listener_url(const klog_server *s, int i);

/*
 * Where the server's log lines go: a malformed frame or an unsupported
 * request that closed a connection (with the peer and the reason), a
 * connection refused over max.connections, an accept that failed.  cb runs
 * on a server thread with no lock held and must not call back into the
 * server.  NULL (the default): lines go to stderr, prefixed "klog serve: ".
 * Set it before klog_server_start.  Returns 0 or -EINVAL.
 */
typedef void (*klog_server_log_cb)(void *opaque, const char *line);
KLOG_API int klog_server_set_log_cb(klog_server *s, klog_server_log_cb cb, void *opaque);

/*
 * Read the server's certificates (ssl.certificate.location, ssl.key.location,
 * ssl.ca.location), its SASL users (sasl.users.file) and its ACLs
 * (acl.file) again, as klog serve does on SIGHUP.  Connections that are up
 * stay up: they keep the certificate they were made with and who they
 * authenticated as; new connections and every later authorisation use
 * what was read.  Nothing changes unless every file reads well.  Any
 * thread, while the server runs.  Returns 0, -EINVAL, -ENOENT or another
 * -errno for a file, KLOG_ECONF (a file OpenSSL rejects, a key that does
 * not match its certificate), -EINVAL (a malformed line); errbuf says
 * which file and why.
 */
KLOG_API int klog_server_reload(klog_server *s, char *errbuf, size_t errsize);

/*
 * The server's statistics (*out, NUL-terminated, freed with klog_free),
 * counted since klog_server_new, as klog_stats does for the instance:
 * format KLOG_STATS_PROMETHEUS (text exposition 0.0.4) or KLOG_STATS_JSON.
 * Per listener the connections held, accepted and refused (over
 * max.connections or max.connections.per.ip); per API key the requests
 * answered and a histogram of the time from arrival to answer (a parked
 * Fetch counts its wait); bytes received and sent; connections closed for
 * a bad or unauthenticated request; SASL successes and failures; quota
 * throttles.  Any thread, while the server runs or after it stopped (its
 * listeners are then gone).  Returns 0, -EINVAL, -ENOMEM.
 */
KLOG_API int klog_server_stats(klog_server *s, int format, char **out);

/* Start the server's threads: from now on clients are served.  Returns 0,
 * KLOG_ESTATE (already started or stopped), -EAGAIN, -ENOMEM. */
KLOG_API int klog_server_start(klog_server *s);

/*
 * Stop serving: close the listeners, answer nothing more, close every
 * connection, leave the consumer groups for the members this server's
 * clients had joined, and join the threads.  Acknowledged records are in
 * the instance already; a request in progress completes first (its
 * response may not reach the client).  Idempotent.  Returns 0 or -EINVAL.
 */
KLOG_API int klog_server_stop(klog_server *s);

/* Stop (if running) and free s.  NULL-safe. */
KLOG_API void klog_server_free(klog_server *s);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_SERVER_H */
