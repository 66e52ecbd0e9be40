/*
 * tools/remote_produce.c - `klog produce` in remote mode: the lines of
 * stdin through a librdkafka producer, with the options and the summary of
 * the local command (cmd_produce.c).
 *
 * Keys are partitioned as the library does (XXH3-64 of the key modulo the
 * partition count; null keys sticky), so that a key goes to the same
 * partition whether klog serve holds the directory or not, unless -X
 * partitioner=... names one of librdkafka's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "remote_rdk.h"

typedef struct tally {
    int64_t delivered, failed;   /* on the main thread: dr_msg_cb runs in rd_kafka_poll */
    rd_kafka_resp_err_t first_err;
} tally;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    tally *t = opaque;
    if (!m->err) {
        t->delivered++;
    } else {
        t->failed++;
        if (!t->first_err)
            t->first_err = m->err;
    }
}

static int32_t xxh3_partitioner(const rd_kafka_topic_t *rkt, const void *key, size_t keylen, int32_t n,
                                void *rkt_opaque, void *msg_opaque)
{
    (void)rkt_opaque;
    (void)msg_opaque;
    if (n <= 1)
        return 0;
    if (key)
        return (int32_t)(XXH3_64bits(key, keylen) % (uint64_t)n);
    /* null keys: librdkafka's sticky partitioning, and only here when it
     * is off (sticky.partitioning.linger.ms=0) */
    return rd_kafka_msg_partitioner_random(rkt, key, keylen, n, NULL, NULL);
}

static bool props_has(const cli_props *p, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; p && i < p->n; i++)
        if (!strncmp(p->kv[i], key, kl) && p->kv[i][kl] == '=')
            return true;
    return false;
}

/* produce --json: each record of cli_jsonl_each, through librdkafka. */
typedef struct json_send {
    const char *ctx, *topic;
    rd_kafka_t *rk;
    int32_t partition;    /* --partition, or RD_KAFKA_PARTITION_UA */
    int64_t lines, refused;
} json_send;

static int json_one(void *arg, int64_t lineno, const cli_jrec *j)
{
    json_send *s = arg;
    s->lines++;
    for (;;) {
        rd_kafka_headers_t *h = NULL;
        if (j->nheaders) {
            h = rd_kafka_headers_new(j->nheaders);
            for (size_t i = 0; i < j->nheaders; i++)
                rd_kafka_header_add(h, j->headers[i].key, (ssize_t)j->headers[i].key_len, j->headers[i].value,
                                    j->headers[i].value ? (ssize_t)j->headers[i].value_len : 0);
        }
        rd_kafka_resp_err_t err = rd_kafka_producev(
            s->rk, RD_KAFKA_V_TOPIC(s->topic),
            RD_KAFKA_V_PARTITION(j->partition != KLOG_PARTITION_ANY ? j->partition : s->partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(j->key, j->key_len),
            RD_KAFKA_V_VALUE(j->value, j->value_len), RD_KAFKA_V_TIMESTAMP(j->timestamp), RD_KAFKA_V_HEADERS(h),
            RD_KAFKA_V_END);
        if (!err)
            break;
        if (h)
            rd_kafka_headers_destroy(h);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !cli_stop && !rk_auth_failed()) {
            rd_kafka_poll(s->rk, 100);
            continue;
        }
        if (s->refused++ == 0) {
            char what[64];
            snprintf(what, sizeof what, "line %" PRId64, lineno);
            rk_fail(s->ctx, what, err, NULL);
        }
        if (err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
            err == RD_KAFKA_RESP_ERR__FATAL)
            return CLI_FAIL;
        break;
    }
    rd_kafka_poll(s->rk, 0);
    return cli_stop ? CLI_FAIL : CLI_OK;
}

int remote_produce(const cli_remote *r, const remote_produce_opts *o)
{
    const char *ctx = "produce";
    /* acks=1 and no compression by default, as the local command; a
     * delivery that cannot be made fails after a minute, not five */
    const char *defaults[16] = { "client.id", "klog-produce", "acks", o->acks ? o->acks : "1",
                                 "compression.type", o->compression ? o->compression : "none",
                                 "message.timeout.ms", "60000", NULL };
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_headers_t *hdrs = NULL;
    char *line = NULL;
    tally t = { 0 };
    int rc = rk_conf(ctx, r, defaults, o->props, &conf);
    if (rc != CLI_OK)
        return rc;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &t);
    if (!props_has(o->props, "partitioner")) {
        rd_kafka_topic_conf_t *tc = rd_kafka_conf_get_default_topic_conf(conf);
        if (!tc) {
            tc = rd_kafka_topic_conf_new();
            rd_kafka_conf_set_default_topic_conf(conf, tc);
        }
        rd_kafka_topic_conf_set_partitioner_cb(tc, xxh3_partitioner);
    }
    cli_signals();
    if ((rc = rk_create(ctx, RD_KAFKA_PRODUCER, conf, &rk)) != CLI_OK)
        return rc;
    int np = 0;
    if ((rc = rk_check_topic(ctx, r, rk, o->topic, o->partition, &np)) != CLI_OK)
        goto out;
    if (o->nheaders) {
        hdrs = rd_kafka_headers_new(o->nheaders);
        for (size_t i = 0; i < o->nheaders; i++)
            rd_kafka_header_add(hdrs, o->headers[i].key, (ssize_t)o->headers[i].key_len, o->headers[i].value,
                                (ssize_t)o->headers[i].value_len);
    }

    int32_t partition = o->partition == KLOG_PARTITION_ANY ? RD_KAFKA_PARTITION_UA : o->partition;
    size_t cap = 0, seplen = o->keysep ? strlen(o->keysep) : 0;
    ssize_t len;
    int64_t lines = 0, refused = 0;
    bool stop_sending = false;
    if (o->json) {
        size_t n = 0;
        int e = cli_read_all(stdin, CLI_JSON_INPUT_MAX, &line, &n);
        if (e < 0) {
            rc = e == -EFBIG ? cli_err(ctx, "--json: standard input is over %zu bytes", CLI_JSON_INPUT_MAX)
                             : cli_err(ctx, "reading standard input: %s", strerror(-e));
            goto out;
        }
        json_send js = { .ctx = ctx, .topic = o->topic, .rk = rk, .partition = partition };
        rc = cli_jsonl_each(ctx, line, n, np, json_one, &js);
        lines = js.lines;
        refused = js.refused;
        if (rc != CLI_OK && lines == 0)
            goto out; /* nothing sent */
        stop_sending = true;
    }
    while (!cli_stop && !stop_sending && (len = getline(&line, &cap, stdin)) >= 0) {
        lines++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        const char *key = NULL, *value = line;
        size_t key_len = 0, value_len = (size_t)len;
        if (o->keysep) {
            char *sep = memmem(line, (size_t)len, o->keysep, seplen);
            if (!sep) {
                if (refused++ == 0)
                    fprintf(stderr, "klog: produce: line %" PRId64 ": no key separator '%s' (line not sent)\n",
                            lines, o->keysep);
                continue;
            }
            key = line;
            key_len = (size_t)(sep - line);
            value = sep + seplen;
            value_len = (size_t)(line + len - (sep + seplen));
        }
        for (;;) {
            rd_kafka_headers_t *h = hdrs ? rd_kafka_headers_copy(hdrs) : NULL;
            rd_kafka_resp_err_t err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(partition),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
            if (!err)
                break; /* the headers now belong to the message */
            if (h)
                rd_kafka_headers_destroy(h);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !cli_stop && !rk_auth_failed()) {
                rd_kafka_poll(rk, 100); /* deliveries make room */
                continue;
            }
            if (refused++ == 0) {
                char what[64];
                snprintf(what, sizeof what, "line %" PRId64, lines);
                rk_fail(ctx, what, err, NULL);
            }
            if (err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                err == RD_KAFKA_RESP_ERR__FATAL)
                stop_sending = true; /* every later line would fail the same way */
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    if (ferror(stdin)) {
        cli_err(ctx, "reading standard input failed");
        rc = CLI_FAIL;
    }
    /* Wait for every delivery (bounded by message.timeout.ms); an
     * interrupt gives up on what is still queued, which counts as failed. */
    while (rd_kafka_outq_len(rk) > 0 && !cli_stop && !rk_auth_failed())
        rd_kafka_flush(rk, 200);
    if (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(rk, 1000);
        rd_kafka_poll(rk, 0);
    }
    int64_t failed = t.failed + refused;
    if (!o->quiet || failed)
        fprintf(stderr, "klog produce: %s: %" PRId64 " lines read, %" PRId64 " records delivered, %" PRId64
                " failed%s%s%s\n", o->topic, lines, t.delivered, failed, t.first_err ? " (first delivery error: " : "",
                t.first_err ? rd_kafka_err2str(t.first_err) : "", t.first_err ? ")" : "");
    if (failed)
        rc = CLI_FAIL;
out:
    free(line);
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    rd_kafka_destroy(rk);
    return rc;
}
