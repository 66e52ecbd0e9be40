/*
 * bench/compare/be_klog.c - klog, through the public API only (as a user
 * links it).
 *
 * Configuration: one instance per store on its own directory, a topic of
 * one partition, one producer: acks=1 (acknowledged in the page cache) or
 * acks=all (durable: acknowledged after fdatasync); linger.ms=5 and
 * batch.size=1000000 for throughput, linger.ms=0 for latency;
 * compression.type none, lz4 or zstd.  A batch of the workload is sent
 * record by record (the producer batches by itself); in durable mode the
 * batch ends with klog_producer_flush, which returns once it is on disk.
 * The consumer uses the defaults (max.poll.records=500) and a blocking
 * klog_consumer_poll (poll.spin.us=0).  With partitions > 1 the topic has
 * that many and one consumer is assigned them all; a reopened store (the
 * cold runs) is a klog_open of the directory another process wrote.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/klog.h>

#include "backend.h"

struct bc_store {
    klog *k;
    klog_producer *p;
    bool durable;
    klog_record rec;
    int parts;          /* partitions of topic t */
    uint64_t batches;   /* produce calls so far: batch i to partition i % parts */
};

struct bc_reader {
    klog_consumer *c;
};

static int fail(const char *what, int rc, const char *err)
{
    fprintf(stderr, "klog: %s: %s%s%s\n", what, klog_strerror(rc), err && *err ? ": " : "", err ? err : "");
    return -1;
}

static const char *k_check(const bc_env *env)
{
    (void)env;
    return NULL;
}

static int conf_set(klog_conf *c, const char *key, const char *val)
{
    char err[256] = "";
    int rc = klog_conf_set(c, key, val, err, sizeof err);
    return rc ? fail(key, rc, err) : 0;
}

static void k_close(bc_store *s)
{
    if (!s)
        return;
    if (s->p) {
        int rc = klog_producer_close(s->p);
        if (rc)
            fail("klog_producer_close", rc, NULL);
    }
    klog_close(s->k);
    free(s);
}

static int k_open(bc_store **out, const bc_opts *o)
{
    bc_store *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    char err[256] = "";
    int rc = klog_open(&s->k, o->dir, NULL, err, sizeof err);
    if (rc) {
        free(s);
        return fail("klog_open", rc, err);
    }
    s->parts = o->partitions > 1 ? (int)o->partitions : 1;
    if (o->reopen) { /* written by another process: only read */
        *out = s;
        return 0;
    }
    if ((rc = klog_topic_create(s->k, "t", s->parts, NULL, err, sizeof err)) != 0) {
        k_close(s);
        return fail("klog_topic_create", rc, err);
    }
    static const char *const codec[] = { "none", "lz4", "zstd" };
    klog_conf *c;
    if ((rc = klog_conf_new(&c)) != 0) {
        k_close(s);
        return fail("klog_conf_new", rc, NULL);
    }
    if (conf_set(c, "acks", o->durable ? "all" : "1") || conf_set(c, "linger.ms", o->latency ? "0" : "5") ||
        conf_set(c, "batch.size", "1000000") || conf_set(c, "compression.type", codec[o->codec])) {
        klog_conf_free(c);
        k_close(s);
        return -1;
    }
    rc = klog_producer_new(s->k, c, &s->p, err, sizeof err);
    klog_conf_free(c);
    if (rc) {
        k_close(s);
        return fail("klog_producer_new", rc, err);
    }
    s->durable = o->durable;
    /* set up once; the loop only moves pointers (see bench_api.c rec_of) */
    s->rec = (klog_record)KLOG_RECORD_INIT;
    s->rec.partition = 0;
    *out = s;
    return 0;
}

static int k_produce(bc_store *s, const bc_rec *recs, size_t n)
{
    s->rec.partition = (int32_t)(s->batches++ % (uint64_t)s->parts);
    for (size_t i = 0; i < n; i++) {
        s->rec.key = recs[i].key;
        s->rec.key_len = recs[i].key_len;
        s->rec.value = recs[i].val;
        s->rec.value_len = recs[i].val_len;
        int rc = klog_producer_send(s->p, "t", &s->rec);
        if (rc)
            return fail("klog_producer_send", rc, NULL);
    }
    if (s->durable) {
        int rc = klog_producer_flush(s->p, -1);
        if (rc)
            return fail("klog_producer_flush", rc, NULL);
    }
    return 0;
}

static int k_finish(bc_store *s)
{
    int rc = klog_producer_flush(s->p, -1);
    return rc ? fail("klog_producer_flush", rc, NULL) : 0;
}

/* Records (or bytes) in all partitions of t. */
static int64_t k_sum(bc_store *s, bool bytes)
{
    /* as many as the topic has (the scale rows' cold reads: 4,096) */
    int cap = s->parts > 64 ? s->parts : 64;
    klog_partition_info *pi = calloc((size_t)cap, sizeof *pi);
    if (!pi)
        return fail("calloc", -ENOMEM, NULL);
    for (int i = 0; i < cap; i++)
        pi[i] = (klog_partition_info){ .struct_size = sizeof pi[i] };
    int n = klog_topic_describe(s->k, "t", pi, (size_t)cap, NULL, 0);
    if (n < 1 || n > cap) {
        free(pi);
        return fail("klog_topic_describe", n < 1 ? n : -EOVERFLOW, NULL);
    }
    int64_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += bytes ? (int64_t)pi[i].size_bytes : pi[i].end_offset - pi[i].start_offset;
    free(pi);
    return sum;
}

static int64_t k_stored_bytes(bc_store *s)
{
    return k_sum(s, true);
}

static int consumer_new(bc_store *s, int parts, klog_consumer **out)
{
    klog_conf *c;
    int rc = klog_conf_new(&c);
    if (rc)
        return fail("klog_conf_new", rc, NULL);
    char err[256] = "";
    if (conf_set(c, "auto.offset.reset", "earliest")) {
        klog_conf_free(c);
        return -1;
    }
    rc = klog_consumer_new(s->k, c, out, err, sizeof err);
    klog_conf_free(c);
    if (rc)
        return fail("klog_consumer_new", rc, err);
    for (int i = 0; i < parts; i++)
        if ((rc = klog_consumer_assign(*out, "t", i, KLOG_OFFSET_BEGINNING)) != 0) {
            klog_consumer_close(*out);
            return fail("klog_consumer_assign", rc, NULL);
        }
    return 0;
}

static int64_t k_consume_all(bc_store *s, bc_msg_fn fn, void *arg)
{
    int64_t want = k_sum(s, false), got = 0;
    if (want < 0)
        return -1;
    if (s->parts <= 1) { /* a reopened store: its topic says */
        klog_partition_info pi = { .struct_size = sizeof pi };
        int np = klog_topic_describe(s->k, "t", &pi, 1, NULL, 0);
        if (np < 1)
            return fail("klog_topic_describe", np, NULL);
        s->parts = np;
    }
    klog_consumer *c;
    if (consumer_new(s, s->parts, &c))
        return -1;
    while (got < want) {
        const klog_message *const *m;
        int n = klog_consumer_poll(c, 1000, &m);
        if (n <= 0) {
            klog_consumer_close(c);
            return fail("klog_consumer_poll", n ? n : -ETIMEDOUT, NULL);
        }
        for (int i = 0; i < n; i++)
            fn(arg, m[i]->key, m[i]->key_len, m[i]->value, m[i]->value_len);
        got += n;
    }
    klog_consumer_close(c);
    return got;
}

static int k_reader_open(bc_store *s, bc_reader **out)
{
    bc_reader *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    if (consumer_new(s, 1, &r->c)) {
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

static int k_reader_wait(bc_reader *r, int timeout_ms, bc_msg_fn fn, void *arg)
{
    const klog_message *const *m;
    int n = klog_consumer_poll(r->c, timeout_ms, &m);
    if (n < 0)
        return fail("klog_consumer_poll", n, NULL);
    for (int i = 0; i < n; i++)
        fn(arg, m[i]->key, m[i]->key_len, m[i]->value, m[i]->value_len);
    return n;
}

static void k_reader_close(bc_reader *r)
{
    if (r) {
        klog_consumer_close(r->c);
        free(r);
    }
}

const bc_backend bc_klog = {
    .name = "klog",
    .compresses = true,
    .partitioned = true,
    .reopens = true,
    .check = k_check,
    .open = k_open,
    .produce = k_produce,
    .finish = k_finish,
    .stored_bytes = k_stored_bytes,
    .consume_all = k_consume_all,
    .reader_open = k_reader_open,
    .reader_wait = k_reader_wait,
    .reader_close = k_reader_close,
    .close = k_close,
};
