/*
 * tools/remote_perf.c - `klog perf produce|consume` in remote mode: the
 * records go through a librdkafka producer or consumer to the server, as
 * kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh send them to
 * a broker.  cmd_perf.c keeps the statistics and prints the reports (the
 * local command's lines), through the callbacks of remote_perf_opts.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "remote_rdk.h"

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    const remote_perf_opts *o = opaque;
    o->delivered(o->arg, (uint64_t)(uintptr_t)m->_private, m->err ? (int)m->err : 0,
                 m->err ? rd_kafka_err2str(m->err) : NULL);
}

static void nap_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
    nanosleep(&ts, NULL);
}

int remote_perf_produce(const cli_remote *r, const remote_perf_opts *o, int64_t *sent_out)
{
    const char *ctx = o->ctx;
    *sent_out = 0;
    /* kafka-producer-perf-test.sh's client defaults are the producer's; a
     * delivery that cannot be made fails after a minute */
    const char *defaults[] = { "client.id", "klog-perf", "acks", o->acks ? o->acks : "1", "compression.type",
                               o->compression ? o->compression : "none", "message.timeout.ms", "60000", NULL };
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    int rc = rk_conf(ctx, r, defaults, o->props, &conf);
    if (rc != CLI_OK)
        return rc;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, (void *)o);
    cli_signals();
    if ((rc = rk_create(ctx, RD_KAFKA_PRODUCER, conf, &rk)) != CLI_OK)
        return rc;
    int np = 0;
    if ((rc = rk_check_topic(ctx, r, rk, o->topic, o->partition, &np)) != CLI_OK)
        goto out;
    int32_t partition = o->partition < 0 ? RD_KAFKA_PARTITION_UA : o->partition;
    o->begin(o->arg);
    uint64_t start = cli_now_ns();
    int64_t sent = 0;
    for (; sent < o->records && !cli_stop; sent++) {
        if (o->throughput > 0) {
            uint64_t due = start + (uint64_t)((double)sent * 1e9 / (double)o->throughput), now = cli_now_ns();
            if (due > now)
                nap_ns(due - now);
        }
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(partition),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_VALUE((void *)o->payload, (size_t)o->record_size),
                                        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)cli_now_ns()), RD_KAFKA_V_END)) ==
                   RD_KAFKA_RESP_ERR__QUEUE_FULL &&
               !cli_stop)
            rd_kafka_poll(rk, 10); /* deliveries make room */
        if (err) {
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rc = rk_fail(ctx, o->topic, err, NULL);
            break;
        }
        rd_kafka_poll(rk, 0);
        if ((sent & 1023) == 0 || o->throughput > 0)
            o->tick(o->arg);
    }
    /* the last deliveries (bounded by message.timeout.ms), still reporting;
     * an interrupt gives up on the rest, which count as failed */
    while (rd_kafka_outq_len(rk) > 0 && !cli_stop) {
        rd_kafka_flush(rk, 200);
        o->tick(o->arg);
    }
    if (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(rk, 1000);
        rd_kafka_poll(rk, 0);
    }
    *sent_out = sent;
out:
    rd_kafka_destroy(rk);
    return rc;
}

int remote_perf_consume(const cli_remote *r, const remote_perf_opts *o, int64_t *want_out)
{
    const char *ctx = o->ctx;
    *want_out = 0;
    /* assign, no group: group.id only because librdkafka's consumer wants one */
    const char *defaults[] = { "client.id", "klog-perf", "group.id", "klog-perf", "enable.auto.commit", "false",
                               "enable.auto.offset.store", "false", "fetch.wait.max.ms", "100",
                               "queued.min.messages", "1000000", NULL };
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_topic_partition_list_t *tl = NULL;
    rd_kafka_message_t **msgs = NULL;
    int rc = rk_conf(ctx, r, defaults, o->props, &conf);
    if (rc != CLI_OK)
        return rc;
    cli_signals();
    if ((rc = rk_create(ctx, RD_KAFKA_CONSUMER, conf, &rk)) != CLI_OK)
        return rc;
    int np = 0;
    if ((rc = rk_check_topic(ctx, r, rk, o->topic, -1, &np)) != CLI_OK)
        goto out;
    /* from each partition's first offset (a number: librdkafka resolves
     * OFFSET_BEGINNING with a query that can wait out a retry timer) */
    tl = rd_kafka_topic_partition_list_new(np);
    int64_t avail = 0;
    for (int i = 0; i < np; i++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, o->topic, i, &lo, &hi, REMOTE_REQUEST_MS);
        if (err) {
            char what[300];
            snprintf(what, sizeof what, "%s: partition %d: its offsets", o->topic, i);
            rc = rk_fail(ctx, what, err, NULL);
            goto out;
        }
        avail += hi - lo;
        rd_kafka_topic_partition_list_add(tl, o->topic, i)->offset = lo;
    }
    int64_t want = o->records > 0 ? o->records : avail;
    *want_out = want;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, tl);
    if (err) {
        rc = rk_fail(ctx, o->topic, err, NULL);
        goto out;
    }
    q = rd_kafka_queue_get_consumer(rk);
    enum { BATCH = 1000 };
    if (!(msgs = calloc(BATCH, sizeof *msgs))) {
        rc = cli_err(ctx, "out of memory");
        goto out;
    }
    o->begin(o->arg);
    int64_t n = 0;
    uint64_t last = cli_now_ns();
    while (n < want && !cli_stop) {
        /* never more than are left: a batch it cannot fill waits out the timeout */
        size_t ask = want - n < BATCH ? (size_t)(want - n) : BATCH;
        ssize_t got = rd_kafka_consume_batch_queue(q, 100, msgs, ask);
        uint64_t now = cli_now_ns();
        for (ssize_t i = 0; i < got; i++) {
            const rd_kafka_message_t *m = msgs[i];
            if (!m->err && n < want) {
                o->consumed(o->arg, (uint64_t)m->key_len + m->len, now);
                n++;
                last = now;
            } else if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && rc == CLI_OK) {
                rc = rk_fail(ctx, o->topic, m->err, NULL);
            }
            rd_kafka_message_destroy(msgs[i]);
        }
        if (rc != CLI_OK)
            break;
        if (got <= 0 && (int64_t)((now - last) / 1000000) >= o->timeout_ms)
            break;
        o->tick(o->arg);
    }
out:
    free(msgs);
    if (q)
        rd_kafka_queue_destroy(q);
    if (tl)
        rd_kafka_topic_partition_list_destroy(tl);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}
