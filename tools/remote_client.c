/*
 * tools/remote_client.c - the librdkafka client that remote mode is built
 * on (remote_rdk.h): its configuration from --bootstrap-server or the
 * listeners file, --command-config and -X; its log lines; metadata; and
 * waiting for the result of an admin request, every wait bounded.
 */
#include <stdlib.h>
#include <string.h>

#include "remote_rdk.h"

/* The command's name for log lines (one command per process), and
 * whether -X debug=... asked for librdkafka's debug lines. */
static const char *log_ctx = "klog";
static bool log_debug;
/* Set when librdkafka reports that the server refused our credentials:
 * it would retry until each request timed out (30 s);
 * a command-line client stops at once instead, as Kafka's tools do. */
static volatile bool auth_failed;

const char *remote_client_version(void)
{
    static char v[64];
    snprintf(v, sizeof v, "librdkafka %s", rd_kafka_version_str());
    return v;
}

typedef struct set_arg {
    const char *ctx;
    rd_kafka_conf_t *conf;
    const char *where; /* "-X", "--command-config FILE", or NULL */
} set_arg;

static int set_one(void *arg, const char *key, const char *value)
{
    set_arg *a = arg;
    char err[512] = "";
    if (rd_kafka_conf_set(a->conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
        if (a->where)
            fprintf(stderr, "klog: %s: %s: %s (remote mode takes librdkafka's client properties)\n", a->ctx,
                    a->where, err);
        else
            fprintf(stderr, "klog: %s: %s=%s: %s\n", a->ctx, key, value, err);
        return CLI_USAGE;
    }
    if (!strcmp(key, "debug"))
        log_debug = true;
    return CLI_OK;
}

int rk_conf(const char *ctx, const cli_remote *r, const char *const *defaults, const cli_props *props,
            rd_kafka_conf_t **out)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set_arg a = { ctx, conf, NULL };
    int rc = set_one(&a, "bootstrap.servers", r->bootstrap);
    if (rc == CLI_OK && r->tls)
        rc = set_one(&a, "security.protocol", "ssl");
    for (int i = 0; rc == CLI_OK && defaults && defaults[i]; i += 2)
        rc = set_one(&a, defaults[i], defaults[i + 1]);
    if (rc == CLI_OK && r->command_config) {
        char where[4200];
        snprintf(where, sizeof where, "--command-config %s", r->command_config);
        a.where = where;
        rc = cli_props_file(ctx, r->command_config, set_one, &a);
        a.where = NULL;
    }
    for (int i = 0; rc == CLI_OK && props && i < props->n; i++) {
        const char *kv = props->kv[i], *eq = strchr(kv, '=');
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
        a.where = "-X";
        rc = set_one(&a, key, eq + 1);
    }
    if (rc != CLI_OK) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    *out = conf;
    return CLI_OK;
}


static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 4 || log_debug)
        fprintf(stderr, "klog: %s: librdkafka: %s: %s\n", log_ctx, fac, buf);
}

/* Errors librdkafka reports beside its log lines: a connection that
 * failed is logged already (FAIL), the rest once here. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    /* Only the server's refusal of the credentials: a TLS handshake cut
     * short (__SSL) also comes on a connection that a retry gets through. */
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
        auth_failed = true;
    if (err != RD_KAFKA_RESP_ERR__TRANSPORT)
        fprintf(stderr, "klog: %s: librdkafka: %s\n", log_ctx, reason);
}

bool rk_auth_failed(void)
{
    return auth_failed;
}

int rk_create(const char *ctx, rd_kafka_type_t type, rd_kafka_conf_t *conf, rd_kafka_t **out)
{
    char err[512] = "";
    log_ctx = ctx;
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "klog: %s: creating the Kafka client: %s\n", ctx, err);
        return CLI_USAGE; /* what fails here is the configuration */
    }
    *out = rk;
    return CLI_OK;
}

int rk_fail(const char *ctx, const char *what, rd_kafka_resp_err_t err, const char *errstr)
{
    const char *why = errstr && *errstr ? errstr : rd_kafka_err2str(err);
    if (what && *what)
        fprintf(stderr, "klog: %s: %s: %s\n", ctx, what, why);
    else
        fprintf(stderr, "klog: %s: %s\n", ctx, why);
    return CLI_FAIL;
}

int rk_metadata(const char *ctx, const cli_remote *r, rd_kafka_t *rk, const struct rd_kafka_metadata **md)
{
    /* In slices, so that a refused login ends the wait at once. */
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    uint64_t until = cli_now_ns() + (uint64_t)REMOTE_REQUEST_MS * 1000000u;
    do {
        err = rd_kafka_metadata(rk, 1, NULL, md, 250);
        if (err == RD_KAFKA_RESP_ERR__TRANSPORT)
            rd_kafka_poll(rk, 50); /* not a busy loop while nothing answers */
        else if (err != RD_KAFKA_RESP_ERR__TIMED_OUT)
            break;
    } while (!auth_failed && !cli_stop && cli_now_ns() < until);
    if (auth_failed && err)
        err = RD_KAFKA_RESP_ERR__AUTHENTICATION;
    if (err) {
        char what[600];
        snprintf(what, sizeof what, "metadata from %s", r->origin);
        return rk_fail(ctx, what, err, NULL);
    }
    return CLI_OK;
}

const rd_kafka_metadata_topic_t *rk_find_topic(const struct rd_kafka_metadata *md, const char *topic)
{
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, topic))
            return &md->topics[i];
    return NULL;
}

int rk_check_topic(const char *ctx, const cli_remote *r, rd_kafka_t *rk, const char *topic, int32_t partition,
                   int *nparts)
{
    const struct rd_kafka_metadata *md = NULL;
    int rc = rk_metadata(ctx, r, rk, &md);
    if (rc != CLI_OK)
        return rc;
    const rd_kafka_metadata_topic_t *t = rk_find_topic(md, topic);
    if (!t || t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        rc = cli_err(ctx, "%s: no such topic", topic);
    else if (t->err)
        rc = rk_fail(ctx, topic, t->err, NULL);
    else if (partition >= t->partition_cnt)
        rc = cli_err(ctx, "%s: no partition %d (the topic has %d)", topic, (int)partition, t->partition_cnt);
    else
        *nparts = t->partition_cnt;
    rd_kafka_metadata_destroy(md);
    return rc;
}

rd_kafka_AdminOptions_t *rk_admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t api)
{
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, api);
    char err[256];
    if (o)
        rd_kafka_AdminOptions_set_request_timeout(o, REMOTE_REQUEST_MS, err, sizeof err);
    return o;
}

rd_kafka_event_t *rk_admin_wait(const char *ctx, rd_kafka_queue_t *q, const char *what)
{
    /* the request times out after REMOTE_REQUEST_MS; a little more here */
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, REMOTE_REQUEST_MS + 5000);
    if (!ev) {
        cli_err(ctx, "%s: no answer within %d s", what, (REMOTE_REQUEST_MS + 5000) / 1000);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        rk_fail(ctx, what, rd_kafka_event_error(ev), rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}
