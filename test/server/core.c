/*
 * test/server/core.c - klog_server in-process: lifecycle and bad arguments,
 * ApiVersions negotiation, produce and fetch round trips, a long-poll fetch
 * woken by an in-process producer, a client that never reads its responses
 * not holding up another one, malformed frames closing only their own
 * connection, and requests that are not served closing the connection.
 *
 * The client side here is klog's own encoder (lib/kafka); compatibility
 * with real Kafka clients is tested by the Python tests beside this file (kcat,
 * librdkafka, kafka-python, confluent-kafka and kafkajs).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>
#include <klog/server.h>

#include "format/format.h"
#include "kafka/kafka.h"
#include "transport/transport_internal.h"
#include "util.h"

/* A Kafka wire batch of n records "v0".."v{n-1}" into buf; returns its length. */
static size_t wire_batch(uint8_t *buf, size_t cap, int n, int64_t pid, int32_t seq)
{
    /* Timestamps of now (the records' age matters to retention). */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    uint8_t *tmp = malloc(cap);
    kf_builder b;
    kf_builder_init(&b, tmp, cap, cap);
    for (int i = 0; i < n; i++) {
        char v[32];
        int len = snprintf(v, sizeof v, "v%d", i);
        kf_record r = { .key = NULL, .key_len = -1, .value = v, .value_len = len, .timestamp = now_ms + i };
        cr_assert_eq(kf_builder_add(&b, &r), 0);
    }
    kf_batch_meta m = { .producer_id = pid, .producer_epoch = pid >= 0 ? 0 : -1, .base_sequence = seq,
                        .codec = KF_CODEC_NONE };
    const uint8_t *out;
    size_t olen;
    cr_assert_eq(kf_builder_finish(&b, &m, NULL, &out, &olen), 0);
    uint8_t hdr[KF_WIRE_HDR_SIZE];
    const uint8_t *recs;
    size_t rl;
    cr_assert_eq(kf_batch_to_wire(out, olen, 0, NULL, hdr, &recs, &rl), 0);
    cr_assert_leq(KF_WIRE_HDR_SIZE + rl, cap);
    memcpy(buf, hdr, KF_WIRE_HDR_SIZE);
    memcpy(buf + KF_WIRE_HDR_SIZE, recs, rl);
    free(tmp);
    return KF_WIRE_HDR_SIZE + rl;
}

static int16_t produce(klog_conn *c, const char *topic, int32_t part, const uint8_t *batch, size_t len,
                       int16_t acks, int64_t *base)
{
    kk_produce_req_partition pp = { .index = part, .records = { .p = batch, .len = (int32_t)len } };
    kk_produce_req_topic pt = { .name = KK_STR(topic) };
    pt.partitions.v = &pp;
    pt.partitions.n = 1;
    kk_produce_req q = { .transactional_id = KK_STR_NULL, .acks = acks, .timeout_ms = 5000 };
    q.topics.v = &pt;
    q.topics.n = 1;
    cr_assert_eq(su_send(c, KK_API_PRODUCE, 7, 11, &q), 0);
    if (acks == 0)
        return 0;
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    cr_assert_eq(su_recv(c, KK_API_PRODUCE, 7, &a, &r, 10000), 0);
    cr_assert_eq(r.correlation_id, 11);
    cr_assert_eq(r.body.produce.responses.n, 1);
    kk_produce_resp_partition *rp = &r.body.produce.responses.v[0].partitions.v[0];
    int16_t err = rp->error_code;
    if (base)
        *base = rp->base_offset;
    kk_arena_reset(&a);
    return err;
}

static void send_fetch(klog_conn *c, const char *topic, int64_t offset, int32_t wait_ms, int32_t max_bytes, int32_t corr)
{
    kk_fetch_req_partition fp = { .partition = 0, .current_leader_epoch = -1, .fetch_offset = offset,
                                  .log_start_offset = -1, .partition_max_bytes = max_bytes };
    kk_fetch_req_topic ft = { .topic = KK_STR(topic) };
    ft.partitions.v = &fp;
    ft.partitions.n = 1;
    kk_fetch_req q = { .replica_id = -1, .max_wait_ms = wait_ms, .min_bytes = 1, .max_bytes = max_bytes,
                       .session_id = 0, .session_epoch = -1, .rack_id = KK_STR("") };
    q.topics.v = &ft;
    q.topics.n = 1;
    cr_assert_eq(su_send(c, KK_API_FETCH, 11, corr, &q), 0);
}

/* Records in a fetch response's partition (walks the wire batches). */
static int count_records(const kk_fetch_resp_partition *p, int64_t *first)
{
    int n = 0;
    size_t off = 0;
    while (off < (size_t)p->records.len) {
        kf_batch_info bi;
        ssize_t sz = kf_wire_parse(p->records.p + off, (size_t)p->records.len - off, &bi);
        cr_assert_gt(sz, 0);
        if (n == 0 && first)
            *first = bi.base_offset;
        n += bi.record_count;
        off += (size_t)sz;
    }
    return n;
}

Test(server, bad_arguments)
{
    klog_server *s = (klog_server *)1;
    cr_assert_eq(klog_server_new(NULL, NULL, NULL, NULL, 0), -EINVAL);
    cr_assert_eq(klog_server_new(&s, NULL, NULL, NULL, 0), -EINVAL);
    cr_assert_eq(klog_server_listen(NULL, "tcp://127.0.0.1:0"), -EINVAL);
    cr_assert_eq(klog_server_start(NULL), -EINVAL);
    cr_assert_eq(klog_server_stop(NULL), -EINVAL);
    cr_assert_null(klog_server_listener_url(NULL, 0));
    cr_assert_eq(klog_server_listener_count(NULL), 0);
    cr_assert_null(klog_server_transports(NULL));
    cr_assert_eq(klog_server_reload(NULL, NULL, 0), -EINVAL);
    klog_server_free(NULL);

    su_env e;
    su_up(&e, NULL);
    cr_assert_eq(klog_server_listen(e.s, "nosuch://x"), -EPROTONOSUPPORT);
    cr_assert_eq(klog_server_listen(e.s, "tcp://not an address"), -EINVAL);
    cr_assert_null(klog_server_listener_url(e.s, 1));
    cr_assert_eq(klog_server_start(e.s), KLOG_ESTATE);
    /* A second listener after start serves too. */
    cr_assert_eq(klog_server_listen(e.s, "unix://"), 0);
    cr_assert_eq(klog_server_listener_count(e.s), 2);
    klog_conn *c;
    cr_assert_eq(klog_transport_connect(e.reg, klog_server_listener_url(e.s, 1), 5000, &c), 0);
    kk_api_versions_req av = { .client_software_name = KK_STR("t"), .client_software_version = KK_STR("1") };
    cr_assert_eq(su_send(c, KK_API_API_VERSIONS, 3, 1, &av), 0);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    cr_assert_eq(su_recv(c, KK_API_API_VERSIONS, 3, &a, &r, 5000), 0);
    cr_assert_eq(r.body.api_versions.error_code, 0);
    kk_arena_reset(&a);
    klog_conn_close(c);
    cr_assert_eq(klog_server_stop(e.s), 0);
    cr_assert_eq(klog_server_stop(e.s), 0);
    cr_assert_eq(klog_server_start(e.s), KLOG_ESTATE);
    cr_assert_eq(klog_server_listen(e.s, "tcp://127.0.0.1:0"), KLOG_ESTATE);

    /* A key of another scope is refused. */
    klog_conf *conf;
    cr_assert_eq(klog_conf_new(&conf), 0);
    cr_assert_eq(klog_conf_set(conf, "acks", "all", NULL, 0), 0);
    klog_server *s2 = NULL;
    char eb[256] = "";
    cr_assert_eq(klog_server_new(&s2, e.k, conf, eb, sizeof eb), KLOG_ECONF);
    cr_assert_null(s2);
    cr_assert(strstr(eb, "acks"), "%s", eb);
    klog_conf_free(conf);
    su_down(&e);
}

Test(server, api_versions)
{
    su_env e;
    su_up(&e, NULL);
    klog_conn *c = su_dial(&e);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    kk_api_versions_req av = { .client_software_name = KK_STR("t"), .client_software_version = KK_STR("1") };
    cr_assert_eq(su_send(c, KK_API_API_VERSIONS, 3, 5, &av), 0);
    cr_assert_eq(su_recv(c, KK_API_API_VERSIONS, 3, &a, &r, 5000), 0);
    cr_assert_eq(r.correlation_id, 5);
    const kk_api_versions_resp *v = &r.body.api_versions;
    cr_assert_eq(v->error_code, 0);
    bool produce = false, sasl = false;
    for (int i = 0; i < v->api_keys.n; i++) {
        const kk_api *api = kk_api_find(v->api_keys.v[i].api_key);
        cr_assert_not_null(api, "advertised key %d is not in the codec", v->api_keys.v[i].api_key);
        cr_assert_eq(v->api_keys.v[i].max_version, api->max);
        produce |= api->key == KK_API_PRODUCE;
        sasl |= api->key == KK_API_SASL_HANDSHAKE;
    }
    cr_assert(produce);
    cr_assert(!sasl, "SASL is advertised without authentication configured");
    kk_arena_reset(&a);

    /* A version the server does not know: version 0, UNSUPPORTED_VERSION
     * and the list, on a connection that stays open. */
    kk_wbuf w;
    kk_wbuf_init(&w, 0);
    kk_req_header h = { KK_API_API_VERSIONS, 9, 6, KK_STR("t") };
    /* Header v2 by hand: key, version, correlation id, client id, no tags, then an empty body. */
    kk_w_i16(&w, h.api_key);
    kk_w_i16(&w, h.api_version);
    kk_w_i32(&w, h.correlation_id);
    kk_w_string(&w, false, true, "t", 1);
    kk_w_no_tags(&w);
    kk_w_no_tags(&w);
    struct iovec iov[2];
    cr_assert_eq(klog_conn_send(c, iov, kk_wbuf_iov(&w, iov, 2), 5000), 0);
    kk_wbuf_free(&w);
    cr_assert_eq(su_recv(c, KK_API_API_VERSIONS, 0, &a, &r, 5000), 0);
    cr_assert_eq(r.correlation_id, 6);
    cr_assert_eq(r.body.api_versions.error_code, KK_ERR_UNSUPPORTED_VERSION);
    cr_assert_gt(r.body.api_versions.api_keys.n, 10);
    kk_arena_reset(&a);
    cr_assert_eq(su_send(c, KK_API_API_VERSIONS, 3, 7, &av), 0);
    cr_assert_eq(su_recv(c, KK_API_API_VERSIONS, 3, &a, &r, 5000), 0);
    kk_arena_reset(&a);

    /* A Produce at a version not served closes the connection, with a line. */
    kk_wbuf_init(&w, 0);
    kk_w_i16(&w, KK_API_PRODUCE);
    kk_w_i16(&w, 8);
    kk_w_i32(&w, 8);
    kk_w_string(&w, false, true, "t", 1);
    cr_assert_eq(klog_conn_send(c, iov, kk_wbuf_iov(&w, iov, 2), 5000), 0);
    kk_wbuf_free(&w);
    const void *f;
    int n = klog_conn_recv(c, 5000, &f);
    cr_assert(n == -EPIPE || n == -ECONNRESET, "got %d", n);
    klog_conn_close(c);
    pthread_mutex_lock(&e.mu);
    cr_assert(strstr(e.lines, "unsupported version"), "%s", e.lines);
    pthread_mutex_unlock(&e.mu);
    su_down(&e);
}

Test(server, produce_fetch_round_trip)
{
    su_env e;
    su_up(&e, NULL);
    cr_assert_eq(klog_topic_create(e.k, "t", 1, NULL, NULL, 0), 0);
    klog_conn *c = su_dial(&e);
    uint8_t batch[4096];
    int64_t base = -2;
    for (int i = 0; i < 3; i++) {
        size_t len = wire_batch(batch, sizeof batch, 10, -1, -1);
        cr_assert_eq(produce(c, "t", 0, batch, len, i == 2 ? -1 : 1, &base), 0);
        cr_assert_eq(base, 10 * i);
    }
    /* acks=0: no answer; the next request's answer comes next. */
    size_t len = wire_batch(batch, sizeof batch, 10, -1, -1);
    cr_assert_eq(produce(c, "t", 0, batch, len, 0, NULL), 0);
    /* Unknown topic and partition, bad acks, a corrupted CRC. */
    cr_assert_eq(produce(c, "nosuch", 0, batch, len, 1, NULL), KK_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(produce(c, "t", 5, batch, len, 1, NULL), KK_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    cr_assert_eq(produce(c, "t", 0, batch, len, 2, NULL), KK_ERR_INVALID_REQUIRED_ACKS);
    batch[len - 1] ^= 1;
    cr_assert_eq(produce(c, "t", 0, batch, len, 1, NULL), KK_ERR_CORRUPT_MESSAGE);
    cr_assert_eq(produce(c, "t", 0, batch, len / 2, 1, NULL), KK_ERR_CORRUPT_MESSAGE);

    /* Fetch it all back. */
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    send_fetch(c, "t", 0, 0, 1 << 20, 21);
    cr_assert_eq(su_recv(c, KK_API_FETCH, 11, &a, &r, 5000), 0);
    cr_assert_eq(r.correlation_id, 21);
    kk_fetch_resp_partition *fp = &r.body.fetch.responses.v[0].partitions.v[0];
    cr_assert_eq(fp->error_code, 0);
    cr_assert_eq(fp->high_watermark, 40);
    int64_t first = -1;
    int nrec = count_records(fp, &first);
    cr_assert_eq(nrec, 40, "%d records, %d bytes", nrec, fp->records.len);
    cr_assert_eq(first, 0);
    kk_arena_reset(&a);
    /* From the middle of a batch: the batch that holds it. */
    send_fetch(c, "t", 15, 0, 1 << 20, 22);
    cr_assert_eq(su_recv(c, KK_API_FETCH, 11, &a, &r, 5000), 0);
    fp = &r.body.fetch.responses.v[0].partitions.v[0];
    cr_assert_eq(count_records(fp, &first), 30);
    cr_assert_eq(first, 10);
    kk_arena_reset(&a);
    /* Out of range. */
    send_fetch(c, "t", 41, 0, 1 << 20, 23);
    cr_assert_eq(su_recv(c, KK_API_FETCH, 11, &a, &r, 5000), 0);
    cr_assert_eq(r.body.fetch.responses.v[0].partitions.v[0].error_code, KK_ERR_OFFSET_OUT_OF_RANGE);
    kk_arena_reset(&a);
    klog_conn_close(c);
    su_down(&e);
}

Test(server, idempotent_produce)
{
    su_env e;
    su_up(&e, NULL);
    cr_assert_eq(klog_topic_create(e.k, "t", 1, NULL, NULL, 0), 0);
    klog_conn *c = su_dial(&e);
    kk_init_producer_id_req ip = { .transactional_id = KK_STR_NULL, .transaction_timeout_ms = -1 };
    cr_assert_eq(su_send(c, KK_API_INIT_PRODUCER_ID, 1, 3, &ip), 0);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    cr_assert_eq(su_recv(c, KK_API_INIT_PRODUCER_ID, 1, &a, &r, 5000), 0);
    cr_assert_eq(r.body.init_producer_id.error_code, 0);
    int64_t pid = r.body.init_producer_id.producer_id;
    cr_assert_geq(pid, 0);
    kk_arena_reset(&a);
    uint8_t b0[4096], b1[4096], b3[4096];
    size_t l0 = wire_batch(b0, sizeof b0, 5, pid, 0), l1 = wire_batch(b1, sizeof b1, 5, pid, 5);
    size_t l3 = wire_batch(b3, sizeof b3, 5, pid, 15);
    int64_t base;
    cr_assert_eq(produce(c, "t", 0, b0, l0, -1, &base), 0);
    cr_assert_eq(base, 0);
    cr_assert_eq(produce(c, "t", 0, b1, l1, -1, &base), 0);
    cr_assert_eq(base, 5);
    /* A retry of the second batch is not written again. */
    l1 = wire_batch(b1, sizeof b1, 5, pid, 5);
    cr_assert_eq(produce(c, "t", 0, b1, l1, -1, &base), 0);
    cr_assert_eq(base, 5);
    /* A gap in the sequence. */
    cr_assert_eq(produce(c, "t", 0, b3, l3, -1, NULL), KK_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    send_fetch(c, "t", 0, 0, 1 << 20, 9);
    cr_assert_eq(su_recv(c, KK_API_FETCH, 11, &a, &r, 5000), 0);
    cr_assert_eq(count_records(&r.body.fetch.responses.v[0].partitions.v[0], NULL), 10);
    kk_arena_reset(&a);
    klog_conn_close(c);
    su_down(&e);
}

typedef struct late {
    klog *k;
    int delay_ms;
} late;

static void *produce_later(void *arg)
{
    late *l = arg;
    usleep((useconds_t)l->delay_ms * 1000);
    klog_producer *p;
    cr_assert_eq(klog_producer_new(l->k, NULL, &p, NULL, 0), 0);
    klog_record rec = KLOG_RECORD_INIT;
    rec.partition = 0;
    rec.value = "late";
    rec.value_len = 4;
    cr_assert_eq(klog_producer_send(p, "t", &rec), 0);
    cr_assert_eq(klog_producer_flush(p, 5000), 0);
    klog_producer_close(p);
    return NULL;
}

Test(server, long_poll_woken_by_an_in_process_producer)
{
    su_env e;
    su_up(&e, NULL);
    cr_assert_eq(klog_topic_create(e.k, "t", 1, NULL, NULL, 0), 0);
    klog_conn *c = su_dial(&e);
    late l = { e.k, 300 };
    pthread_t th;
    pthread_create(&th, NULL, produce_later, &l);
    /* Waits up to 30 s: answered when the record arrives, with it. */
    send_fetch(c, "t", 0, 30000, 1 << 20, 31);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    cr_assert_eq(su_recv(c, KK_API_FETCH, 11, &a, &r, 30000), 0);
    cr_assert_eq(count_records(&r.body.fetch.responses.v[0].partitions.v[0], NULL), 1);
    kk_arena_reset(&a);
    pthread_join(th, NULL);
    /* With nothing arriving, max_wait answers empty. */
    send_fetch(c, "t", 1, 200, 1 << 20, 32);
    cr_assert_eq(su_recv(c, KK_API_FETCH, 11, &a, &r, 30000), 0);
    cr_assert_eq(r.body.fetch.responses.v[0].partitions.v[0].records.len, 0);
    cr_assert_eq(r.body.fetch.responses.v[0].partitions.v[0].error_code, 0);
    kk_arena_reset(&a);
    klog_conn_close(c);
    su_down(&e);
}

Test(server, a_client_that_does_not_read_holds_up_nobody)
{
    su_env e;
    su_up(&e, NULL);
    klog_conf *tc;
    cr_assert_eq(klog_conf_new(&tc), 0);
    cr_assert_eq(klog_topic_create(e.k, "big", 1, NULL, NULL, 0), 0);
    klog_conf_free(tc);
    /* 32 MiB in the partition. */
    klog_producer *p;
    cr_assert_eq(klog_producer_new(e.k, NULL, &p, NULL, 0), 0);
    static char val[65536];
    memset(val, 'x', sizeof val);
    for (int i = 0; i < 512; i++) {
        klog_record rec = KLOG_RECORD_INIT;
        rec.partition = 0;
        rec.value = val;
        rec.value_len = sizeof val - 1024;
        cr_assert_eq(klog_producer_send(p, "big", &rec), 0);
    }
    cr_assert_eq(klog_producer_flush(p, 30000), 0);
    klog_producer_close(p);
    /* Several clients ask for all of it and never read. */
    klog_conn *stuck[4];
    for (int i = 0; i < 4; i++) {
        stuck[i] = su_dial(&e);
        send_fetch(stuck[i], "big", 0, 0, 64 << 20, 40 + i);
    }
    /* Another client is served, again and again. */
    klog_conn *c = su_dial(&e);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    for (int i = 0; i < 50; i++) {
        kk_metadata_req mq = { .allow_auto_topic_creation = false };
        mq.topics.n = -1;
        cr_assert_eq(su_send(c, KK_API_METADATA, 5, 100 + i, &mq), 0);
        cr_assert_eq(su_recv(c, KK_API_METADATA, 5, &a, &r, 10000), 0, "request %d not answered", i);
        cr_assert_eq(r.correlation_id, 100 + i);
        kk_arena_reset(&a);
    }
    klog_conn_close(c);
    /* The stuck ones get their data when they read at last. */
    const void *f;
    int n = klog_conn_recv(stuck[0], 30000, &f);
    cr_assert_gt(n, 16 << 20);
    for (int i = 0; i < 4; i++)
        klog_conn_close(stuck[i]);
    su_down(&e);
}

Test(server, malformed_frames_close_only_their_connection)
{
    su_env e;
    su_up(&e, NULL);
    klog_conn *good = su_dial(&e);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    kk_api_versions_req av = { .client_software_name = KK_STR("t"), .client_software_version = KK_STR("1") };
    static const uint8_t garbage[][16] = {
        { 0, 0, 0, 3, 1, 2, 3 },                             /* a frame too short for a header */
        { 0, 0, 0, 8, 0, 3, 0, 1, 0, 0, 0, 1 },             /* Metadata v1 cut inside its header */
        { 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0 },             /* 2 GiB announced: over the cap */
        { 0, 0, 0, 10, 0x12, 0x34, 0, 1, 0, 0, 0, 1, 0, 0 }, /* an unknown API key */
        { 0, 0, 0, 12, 0, 3, 0, 5, 0, 0, 0, 1, 0, 0, 0x7f, 0xff }, /* Metadata v5, topic count 2^31 */
    };
    static const size_t glen[] = { 7, 12, 8, 14, 16 };
    for (size_t i = 0; i < sizeof glen / sizeof glen[0]; i++) {
        klog_conn *bad = su_dial(&e);
        cr_assert_eq(ktr__conn_send_raw(bad, garbage[i], glen[i], 5000), 0);
        const void *f;
        int n = klog_conn_recv(bad, 10000, &f);
        cr_assert(n == -EPIPE || n == -ECONNRESET, "case %zu: got %d", i, n);
        klog_conn_close(bad);
        cr_assert_eq(su_send(good, KK_API_API_VERSIONS, 3, (int32_t)i, &av), 0);
        cr_assert_eq(su_recv(good, KK_API_API_VERSIONS, 3, &a, &r, 5000), 0);
        cr_assert_eq(r.correlation_id, (int32_t)i);
        kk_arena_reset(&a);
    }
    klog_conn_close(good);
    pthread_mutex_lock(&e.mu);
    cr_assert(strstr(e.lines, "malformed request"), "%s", e.lines);
    cr_assert(strstr(e.lines, "unknown API"), "%s", e.lines);
    pthread_mutex_unlock(&e.mu);
    su_down(&e);
}

Test(server, metadata_creates_topics_when_asked)
{
    klog_conf *conf;
    cr_assert_eq(klog_conf_new(&conf), 0);
    cr_assert_eq(klog_conf_set(conf, "num.partitions", "3", NULL, 0), 0);
    su_env e;
    su_up(&e, conf);
    klog_conf_free(conf);
    klog_conn *c = su_dial(&e);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    kk_metadata_req_topic mt[2] = { { KK_STR("auto") }, { KK_STR("bad/name") } };
    kk_metadata_req mq = { .allow_auto_topic_creation = true };
    mq.topics.v = mt;
    mq.topics.n = 2;
    cr_assert_eq(su_send(c, KK_API_METADATA, 5, 1, &mq), 0);
    cr_assert_eq(su_recv(c, KK_API_METADATA, 5, &a, &r, 5000), 0);
    const kk_metadata_resp *m = &r.body.metadata;
    cr_assert_eq(m->brokers.n, 1);
    cr_assert_eq(m->brokers.v[0].host.len, 9);
    cr_assert_eq(m->topics.n, 2);
    cr_assert_eq(m->topics.v[0].error_code, 0);
    cr_assert_eq(m->topics.v[0].partitions.n, 3);
    cr_assert_eq(m->topics.v[1].error_code, KK_ERR_INVALID_TOPIC_EXCEPTION);
    kk_arena_reset(&a);
    /* Not allowed: unknown. */
    mt[0] = (kk_metadata_req_topic){ KK_STR("other") };
    mq.topics.n = 1;
    mq.allow_auto_topic_creation = false;
    cr_assert_eq(su_send(c, KK_API_METADATA, 5, 2, &mq), 0);
    cr_assert_eq(su_recv(c, KK_API_METADATA, 5, &a, &r, 5000), 0);
    cr_assert_eq(r.body.metadata.topics.v[0].error_code, KK_ERR_UNKNOWN_TOPIC_OR_PARTITION);
    kk_arena_reset(&a);
    klog_conn_close(c);
    su_down(&e);
}

/* Threads of this process (/proc/self/task entries). */
static int thread_count(void)
{
    int n = 0;
    FILE *f = popen("ls /proc/self/task 2>/dev/null | wc -l", "r");
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

Test(server, a_thousand_idle_connections)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max < 2200)
        cr_skip_test("RLIMIT_NOFILE hard limit %lu < 2200", (unsigned long)rl.rlim_max);
    if (rl.rlim_cur < 2200) {
        rl.rlim_cur = 2200;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    su_env e;
    su_up(&e, NULL);
    /* Warm up: one request served, so the workers' lazily made state exists. */
    klog_conn *c = su_dial(&e);
    kk_api_versions_req av = { .client_software_name = KK_STR("t"), .client_software_version = KK_STR("1") };
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response r;
    cr_assert_eq(su_send(c, KK_API_API_VERSIONS, 3, 1, &av), 0);
    cr_assert_eq(su_recv(c, KK_API_API_VERSIONS, 3, &a, &r, 5000), 0);
    kk_arena_reset(&a);
    int threads = thread_count();
    long rss0 = rss_kib();
    enum { N = 1000 };
    klog_conn **idle = calloc(N, sizeof *idle);
    for (int i = 0; i < N; i++)
        cr_assert_eq(klog_transport_connect(e.reg, e.url, 5000, &idle[i]), 0, "connection %d", i);
    /* Every one of them is served when it asks (spot checks), and so is
     * the first client, with no thread added. */
    for (int i = 0; i < N; i += 97) {
        cr_assert_eq(su_send(idle[i], KK_API_API_VERSIONS, 3, i, &av), 0);
        cr_assert_eq(su_recv(idle[i], KK_API_API_VERSIONS, 3, &a, &r, 10000), 0, "connection %d", i);
        cr_assert_eq(r.correlation_id, i);
        kk_arena_reset(&a);
    }
    cr_assert_eq(su_send(c, KK_API_API_VERSIONS, 3, 2, &av), 0);
    cr_assert_eq(su_recv(c, KK_API_API_VERSIONS, 3, &a, &r, 10000), 0);
    kk_arena_reset(&a);
    cr_assert_eq(thread_count(), threads, "threads grew with idle connections");
    /* Memory: both ends of 1,000 connections live in this process; the
     * server's share is small (a klog_conn and a ksrv_conn each, no
     * buffers while idle).  A generous bound, not a measurement. */
    long grown = rss_kib() - rss0;
    cr_assert_lt(grown, 16 * 1024, "RSS grew by %ld KiB for 1,000 idle connections", grown);
    for (int i = 0; i < N; i++)
        klog_conn_close(idle[i]);
    free(idle);
    klog_conn_close(c);
    su_down(&e);
}
