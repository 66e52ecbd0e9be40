/*
 * tools/remote_rdk.h - what the librdkafka half of remote mode shares
 * (remote_client.c): making a client from a cli_remote, metadata, waiting
 * for an admin result.  Only the remote_*.c files built with librdkafka
 * include it.
 */
#ifndef KLOG_TOOLS_REMOTE_RDK_H
#define KLOG_TOOLS_REMOTE_RDK_H

#include <librdkafka/rdkafka.h>

#include "remote.h"

/*
 * A client configuration for r: bootstrap.servers, security.protocol=ssl
 * for a tls:// listener, then defaults ("key", "value" pairs, NULL-ended),
 * then the --command-config file, then -X props (later ones win).  A key
 * or value librdkafka refuses is a usage error, printed.  Returns CLI_OK
 * with *out set, or the exit status.
 */
int rk_conf(const char *ctx, const cli_remote *r, const char *const *defaults, const cli_props *props,
            rd_kafka_conf_t **out);

/* Create the client (rd_kafka_new takes conf, also on failure).  Its log
 * lines go to stderr as "klog: CTX: librdkafka: ...", warnings and worse
 * only.  Returns CLI_OK with *out set, or the exit status. */
int rk_create(const char *ctx, rd_kafka_type_t type, rd_kafka_conf_t *conf, rd_kafka_t **out);

/* Metadata of every topic (asking for all never creates one, whatever
 * auto.create.topics.enable says).  Returns CLI_OK with *md set (free with
 * rd_kafka_metadata_destroy), or the exit status after printing the error. */
int rk_metadata(const char *ctx, const cli_remote *r, rd_kafka_t *rk, const struct rd_kafka_metadata **md);

/* The topic in md, or NULL. */
const rd_kafka_metadata_topic_t *rk_find_topic(const struct rd_kafka_metadata *md, const char *topic);

/* As cli_open_topic: the topic must exist and have `partition` (ignored
 * when < 0).  Returns CLI_OK with *nparts set, or the exit status. */
int rk_check_topic(const char *ctx, const cli_remote *r, rd_kafka_t *rk, const char *topic, int32_t partition,
                   int *nparts);

/* Admin options for an admin call of type api (REMOTE_REQUEST_MS). */
rd_kafka_AdminOptions_t *rk_admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t api);

/* Wait on q for an admin result; NULL after printing the error (a
 * timeout, or the request's top-level error).  what names the request. */
rd_kafka_event_t *rk_admin_wait(const char *ctx, rd_kafka_queue_t *q, const char *what);

/* Exit status for a librdkafka error (1). */
/* True once the server refused this process's SASL credentials (from
 * librdkafka's error callback): every wait gives up then. */
bool rk_auth_failed(void);

int rk_fail(const char *ctx, const char *what, rd_kafka_resp_err_t err, const char *errstr);

#endif /* KLOG_TOOLS_REMOTE_RDK_H */
