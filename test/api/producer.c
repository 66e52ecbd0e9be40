/*
 * The producer, through the public API only: concurrency and exactly-once
 * delivery, delivery reports (callback and queue), partitioners, batching,
 * bounded memory, record shapes and sizes, bad input.
 *
 * Records are checked by reading them back with a consumer.  No assertion
 * depends on speed: waits are bounded only as a guard against a hang.
 */
#include "util.h"

#include <stdatomic.h>

TestSuite(producer, .init = ut_mkdir, .fini = ut_rmdir);

/* ---- many threads, one producer --------------------------------------------------- */

#define CT_THREADS 8
#define CT_PER_THREAD 20000
#define CT_KEYS 50
#define CT_PARTS 4
#define CT_TOTAL (CT_THREADS * CT_PER_THREAD)
#define CT_MAGIC 0x6b6c6f67u

/* What a value carries: who sent it and its place in that thread's order. */
typedef struct ct_value {
    uint32_t magic, thread, key, seq;
    char pad[32]; /* compressible filler */
} ct_value;

typedef struct ct_state {
    klog_producer *p;
    _Atomic uint32_t *seen;  /* reports per record id */
    int32_t *part;           /* reported partition per id */
    int64_t *off;            /* reported offset per id */
    _Atomic uint32_t errors;
    _Atomic uint32_t bad_opaque;
} ct_state;

typedef struct ct_thread {
    ct_state *s;
    uint32_t id;
    int rc;        /* first failed send, 0 if none */
    uint32_t sent;
} ct_thread;

static uint32_t ct_key_of(uint32_t thread, uint32_t seq)
{
    uint64_t x = (uint64_t)thread * 0x9e3779b97f4a7c15ull + seq * 0xbf58476d1ce4e5b9ull;
    x ^= x >> 31;
    return (uint32_t)(x % CT_KEYS);
}

static void ct_report(void *arg, const klog_delivery *d)
{
    ct_state *s = arg;
    uintptr_t id = (uintptr_t)d->opaque;
    if (id == 0 || id > CT_TOTAL) {
        atomic_fetch_add(&s->bad_opaque, 1);
        return;
    }
    id--;
    if (d->err)
        atomic_fetch_add(&s->errors, 1);
    s->part[id] = d->partition;
    s->off[id] = d->offset;
    atomic_fetch_add(&s->seen[id], 1);
}

static void *ct_run(void *arg)
{
    ct_thread *t = arg;
    for (uint32_t seq = 0; seq < CT_PER_THREAD; seq++) {
        uint32_t key = ct_key_of(t->id, seq);
        char kbuf[16];
        int kl = snprintf(kbuf, sizeof kbuf, "key-%02u", key);
        ct_value v = { CT_MAGIC, t->id, key, seq, "payload-payload-payload-payload" };
        klog_record r = KLOG_RECORD_INIT;
        r.key = kbuf;
        r.key_len = (size_t)kl;
        r.value = &v;
        r.value_len = sizeof v;
        r.opaque = (void *)(uintptr_t)(t->id * CT_PER_THREAD + seq + 1);
        int rc = klog_producer_send(t->s->p, "ct", &r);
        if (rc != 0) {
            t->rc = rc;
            break;
        }
        t->sent++;
    }
    return NULL;
}

static void concurrent_exactly_once(const char *compression, const char *acks)
{
    klog *k = ut_open();
    ut_topic(k, "ct", CT_PARTS, NULL);
    ct_state s = { 0 };
    s.seen = calloc(CT_TOTAL, sizeof *s.seen);
    s.part = calloc(CT_TOTAL, sizeof *s.part);
    s.off = calloc(CT_TOTAL, sizeof *s.off);
    cr_assert(s.seen && s.part && s.off);
    s.p = ut_producer(k, "compression.type", compression, "acks", acks, NULL);
    cr_assert_eq(klog_producer_set_delivery_cb(s.p, ct_report, &s), 0);

    pthread_t th[CT_THREADS];
    ct_thread ts[CT_THREADS];
    for (uint32_t i = 0; i < CT_THREADS; i++) {
        ts[i] = (ct_thread){ .s = &s, .id = i };
        cr_assert_eq(pthread_create(&th[i], NULL, ct_run, &ts[i]), 0);
    }
    for (int i = 0; i < CT_THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < CT_THREADS; i++) {
        cr_assert_eq(ts[i].rc, 0, "thread %d: send failed with %s", i, klog_err_name(ts[i].rc));
        cr_assert_eq(ts[i].sent, CT_PER_THREAD);
    }
    cr_assert_eq(klog_producer_flush(s.p, -1), 0);
    /* flush returns once every record has its report: none is outstanding */
    int64_t left = klog_producer_outstanding(s.p);
    cr_assert_eq(left, 0, "flush returned, yet %" PRId64 " records are outstanding", left);

    /* every record reported exactly once, without error */
    cr_assert_eq(atomic_load(&s.bad_opaque), 0, "reports with an opaque that was never sent");
    cr_assert_eq(atomic_load(&s.errors), 0, "failed deliveries");
    for (size_t id = 0; id < CT_TOTAL; id++)
        cr_assert_eq(atomic_load(&s.seen[id]), 1, "record %zu reported %u times", id, atomic_load(&s.seen[id]));

    /* offsets unique per partition and dense (this producer is the only writer) */
    int64_t end[CT_PARTS];
    size_t total = 0;
    for (int p = 0; p < CT_PARTS; p++) {
        end[p] = ut_end_offset(k, "ct", p);
        total += (size_t)end[p];
    }
    cr_assert_eq(total, CT_TOTAL, "the partitions hold %zu records, %d were sent", total, CT_TOTAL);
    uint8_t *used[CT_PARTS];
    for (int p = 0; p < CT_PARTS; p++)
        used[p] = calloc((size_t)end[p] + 1, 1);
    int32_t key_part[CT_KEYS];
    for (int i = 0; i < CT_KEYS; i++)
        key_part[i] = -1;
    for (uint32_t t = 0; t < CT_THREADS; t++)
        for (uint32_t seq = 0; seq < CT_PER_THREAD; seq++) {
            size_t id = (size_t)t * CT_PER_THREAD + seq;
            int32_t p = s.part[id];
            cr_assert(p >= 0 && p < CT_PARTS, "partition %d", p);
            cr_assert(s.off[id] >= 0 && s.off[id] < end[p], "offset %" PRId64 " of %d", s.off[id], p);
            cr_assert_eq(used[p][s.off[id]], 0, "offset %" PRId64 " of partition %d reported twice", s.off[id], p);
            used[p][s.off[id]] = 1;
            uint32_t key = ct_key_of(t, seq);
            if (key_part[key] < 0)
                key_part[key] = p;
            cr_assert_eq(key_part[key], p, "key %u went to partitions %d and %d", key, key_part[key], p);
        }
    for (int p = 0; p < CT_PARTS; p++)
        free(used[p]);
    cr_assert_eq(klog_producer_close(s.p), 0);

    /* read everything back: nothing lost, nothing twice, per-key order kept,
     * and each record where its report said */
    klog_consumer *c = ut_consumer(k, "max.poll.records", "10000", NULL);
    for (int p = 0; p < CT_PARTS; p++)
        cr_assert_eq(klog_consumer_assign(c, "ct", p, KLOG_OFFSET_BEGINNING), 0);
    uint32_t *read = calloc(CT_TOTAL, sizeof *read);
    int64_t *last_seq = malloc(CT_THREADS * CT_KEYS * sizeof *last_seq);
    for (int i = 0; i < CT_THREADS * CT_KEYS; i++)
        last_seq[i] = -1;
    int64_t next_off[CT_PARTS] = { 0 };
    size_t got = 0;
    int64_t give_up = ut_mono_ms() + 60000;
    while (got < CT_TOTAL && ut_mono_ms() < give_up) {
        const klog_message *const *m;
        /* no-wait polls: this test is about the producer, and must not
         * depend on the consumer's blocking path (tested in consumer.c) */
        int n = klog_consumer_poll(c, 0, &m);
        cr_assert_geq(n, 0, "poll: %s", klog_err_name(n));
        if (n == 0)
            ut_sleep_ms(1);
        for (int i = 0; i < n; i++, got++) {
            cr_assert_str_eq(m[i]->topic, "ct");
            int32_t p = m[i]->partition;
            cr_assert(p >= 0 && p < CT_PARTS);
            cr_assert_eq(m[i]->offset, next_off[p], "partition %d: offset %" PRId64 " after %" PRId64, p,
                         m[i]->offset, next_off[p] - 1);
            next_off[p]++;
            cr_assert_eq(m[i]->value_len, sizeof(ct_value));
            ct_value v;
            memcpy(&v, m[i]->value, sizeof v);
            cr_assert_eq(v.magic, CT_MAGIC);
            cr_assert(v.thread < CT_THREADS && v.seq < CT_PER_THREAD && v.key < CT_KEYS);
            cr_assert_eq(memcmp(v.pad, "payload-payload-payload-payload", 32), 0);
            char kbuf[16];
            int kl = snprintf(kbuf, sizeof kbuf, "key-%02u", v.key);
            cr_assert_eq(m[i]->key_len, (size_t)kl);
            cr_assert_eq(memcmp(m[i]->key, kbuf, (size_t)kl), 0);
            size_t id = (size_t)v.thread * CT_PER_THREAD + v.seq;
            cr_assert_eq(read[id], 0, "record %zu read twice", id);
            read[id] = 1;
            cr_assert_eq(m[i]->partition, s.part[id]);
            cr_assert_eq(m[i]->offset, s.off[id], "report said offset %" PRId64 ", read at %" PRId64, s.off[id],
                         m[i]->offset);
            int64_t *ls = &last_seq[v.thread * CT_KEYS + v.key];
            cr_assert_gt((int64_t)v.seq, *ls, "thread %u key %u: seq %u after %" PRId64, v.thread, v.key, v.seq, *ls);
            *ls = v.seq;
        }
    }
    cr_assert_eq(got, CT_TOTAL, "read %zu of %d records", got, CT_TOTAL);
    const klog_message *const *m;
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0, "records beyond those sent");
    for (int p = 0; p < CT_PARTS; p++)
        cr_assert_eq(next_off[p], end[p]);
    klog_consumer_close(c);
    free(read);
    free(last_seq);
    free((void *)s.seen);
    free(s.part);
    free(s.off);
    cr_assert_eq(klog_close(k), 0);
}

Test(producer, threads_deliver_exactly_once)
{
    concurrent_exactly_once("none", "1");
}

Test(producer, threads_deliver_exactly_once_lz4)
{
    concurrent_exactly_once("lz4", "1");
}

Test(producer, threads_deliver_exactly_once_zstd)
{
    concurrent_exactly_once("zstd", "1");
}

Test(producer, threads_deliver_exactly_once_gzip)
{
    concurrent_exactly_once("gzip", "1");
}

Test(producer, threads_deliver_exactly_once_snappy)
{
    concurrent_exactly_once("snappy", "1");
}

Test(producer, threads_deliver_exactly_once_acks_all)
{
    concurrent_exactly_once("none", "all");
}

/* ---- delivery reports ------------------------------------------------------------------ */

Test(producer, delivery_callback_opaque_and_offsets)
{
    klog *k = ut_open();
    ut_topic(k, "dr", 3, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "20", NULL);
    int64_t ts0 = ut_wall_ms();
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    int slots[30];
    for (int i = 0; i < 30; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        klog_record r = KLOG_RECORD_INIT;
        r.partition = i % 3;
        r.value = v;
        r.value_len = strlen(v);
        r.timestamp = ts0 + i;
        r.opaque = &slots[i];
        cr_assert_eq(klog_producer_send(p, "dr", &r), 0);
    }
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(ut_dr_count(&dr), 30);
    cr_assert_eq(dr.errors, 0);
    int64_t off_of[30];
    for (int i = 0; i < 30; i++)
        off_of[i] = -1;
    for (size_t j = 0; j < dr.n; j++) {
        const klog_delivery *d = &dr.d[j];
        cr_assert_eq(d->err, 0);
        cr_assert_str_eq(d->topic, "dr");
        int i = (int)((int *)d->opaque - slots);
        cr_assert(i >= 0 && i < 30, "opaque %p is not one that was sent", d->opaque);
        cr_assert_eq(off_of[i], -1, "record %d reported twice", i);
        cr_assert_eq(d->partition, i % 3);
        cr_assert_eq(d->timestamp, ts0 + i);
        cr_assert_eq(d->offset, i / 3, "record %d: offset %" PRId64, i, d->offset);
        off_of[i] = d->offset;
    }
    /* the topic string stays valid until the producer is closed */
    const char *topic = dr.d[0].topic;
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_str_eq(topic, "dr");
    cr_assert_eq(klog_producer_close(p), 0);

    /* the offsets are where the consumer finds the records */
    klog_consumer *c = ut_consumer(k, NULL);
    for (int part = 0; part < 3; part++)
        cr_assert_eq(klog_consumer_assign(c, "dr", part, KLOG_OFFSET_BEGINNING), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 30, &n);
    cr_assert_eq(n, 30);
    for (size_t j = 0; j < n; j++) {
        int i = atoi(m[j].value + 1);
        cr_assert_eq(m[j].partition, i % 3);
        cr_assert_eq(m[j].offset, off_of[i]);
        cr_assert_eq(m[j].timestamp, ts0 + i);
    }
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    ut_dr_fini(&dr);
    klog_close(k);
}

Test(producer, delivery_queue_poll_and_timeouts)
{
    klog *k = ut_open();
    ut_topic(k, "q", 2, NULL);
    klog_producer *p = ut_producer(k, "delivery.report.queue", "true", "linger.ms", "10", NULL);
    klog_delivery out[16];
    ut_dr_array(out, 16);
    /* nothing sent: no wait, then a bounded wait, both time out empty */
    cr_assert_eq(klog_producer_poll_deliveries(p, out, 16, 0), 0);
    int64_t t0 = ut_mono_ms();
    cr_assert_eq(klog_producer_poll_deliveries(p, out, 16, 100), 0);
    cr_assert_geq(ut_mono_ms() - t0, 90, "a 100 ms poll returned empty before its timeout");

    for (int i = 0; i < 10; i++) {
        klog_record r = KLOG_RECORD_INIT;
        r.partition = 1;
        r.value = "x";
        r.value_len = 1;
        r.opaque = (void *)(uintptr_t)(100 + i);
        cr_assert_eq(klog_producer_send(p, "q", &r), 0);
    }
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(klog_producer_outstanding(p), 0);
    /* reports come out in order, in as many polls as it takes */
    cr_assert_eq(klog_producer_poll_deliveries(p, out, 4, 0), 4);
    cr_assert_eq(klog_producer_poll_deliveries(p, out + 4, 16, 1000), 6);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(out[i].err, 0);
        cr_assert_eq((uintptr_t)out[i].opaque, (uintptr_t)(100 + i));
        cr_assert_eq(out[i].partition, 1);
        cr_assert_eq(out[i].offset, i);
        cr_assert_str_eq(out[i].topic, "q");
    }
    cr_assert_eq(klog_producer_poll_deliveries(p, out, 16, 0), 0);
    cr_assert_eq(klog_producer_poll_deliveries(p, out, 16, 50), 0);
    cr_assert_eq(klog_producer_poll_deliveries(NULL, out, 16, 0), -EINVAL);
    cr_assert_eq(klog_producer_poll_deliveries(p, NULL, 16, 0), -EINVAL);
    cr_assert_eq(klog_producer_close(p), 0);

    /* the queue is off unless asked for */
    p = ut_producer(k, NULL);
    cr_assert_eq(klog_producer_poll_deliveries(p, out, 16, 0), KLOG_ESTATE);
    klog_producer_close(p);
    klog_close(k);
}

/* klog_delivery grows by struct_size (klog/producer.h).  The callback's
 * report carries the library's sizeof.  klog_producer_poll_deliveries walks
 * the caller's array with the caller's stride: a newer caller's longer
 * elements get what both know and zeroes in the rest, and nothing past the
 * elements it fills is written. */
typedef struct newer_delivery {
    klog_delivery d;
    uint64_t added; /* a field a later version might add */
} newer_delivery;

static void note_report_size(void *arg, const klog_delivery *d)
{
    atomic_store((_Atomic uint32_t *)arg, d->struct_size);
}

static bool all_bytes(const void *p, int byte, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)p)[i] != (unsigned char)byte)
            return false;
    return true;
}

Test(producer, delivery_reports_grow_by_struct_size)
{
    klog *k = ut_open();
    ut_topic(k, "q", 1, NULL);
    klog_producer *p = ut_producer(k, "delivery.report.queue", "true", "linger.ms", "0", NULL);
    _Atomic uint32_t cb_size = 0;
    cr_assert_eq(klog_producer_set_delivery_cb(p, note_report_size, &cb_size), 0);
    for (int i = 0; i < 6; i++) {
        klog_record r = KLOG_RECORD_INIT;
        r.value = "v";
        r.value_len = 1;
        r.opaque = (void *)(uintptr_t)(i + 1);
        cr_assert_eq(klog_producer_send(p, "q", &r), 0);
    }
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(atomic_load(&cb_size), sizeof(klog_delivery), "the callback's report is the library's size");

    /* a caller built against a longer klog_delivery */
    newer_delivery nd[5];
    memset(nd, 0xab, sizeof nd);
    nd[0].d.struct_size = sizeof nd[0];
    cr_assert_eq(klog_producer_poll_deliveries(p, &nd[0].d, 4, 0), 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(nd[i].d.struct_size, sizeof nd[0], "report %d keeps the caller's stride", i);
        cr_assert_eq(nd[i].d.err, 0);
        cr_assert_eq(nd[i].d.partition, 0);
        cr_assert_eq(nd[i].d.offset, i);
        cr_assert_str_eq(nd[i].d.topic, "q");
        cr_assert_eq((uintptr_t)nd[i].d.opaque, (uintptr_t)(i + 1));
        cr_assert_eq(nd[i].added, 0, "report %d: a field the library does not know is zeroed", i);
    }
    cr_assert(all_bytes(&nd[4], 0xab, sizeof nd[4]), "written past the reports");

    /* this version's size: the array passed again as it is */
    klog_delivery d[4];
    memset(d, 0xcd, sizeof d);
    d[0].struct_size = sizeof d[0];
    cr_assert_eq(klog_producer_poll_deliveries(p, d, 4, 0), 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(d[i].struct_size, sizeof d[0]);
        cr_assert_eq(d[i].offset, 4 + i);
        cr_assert_eq((uintptr_t)d[i].opaque, (uintptr_t)(5 + i));
    }
    cr_assert(all_bytes(&d[2], 0xcd, 2 * sizeof d[2]), "elements with no report were written");
    cr_assert_eq(klog_producer_poll_deliveries(p, d, 4, 0), 0, "the same array, again");

    /* strides the library cannot walk */
    uint32_t bad[] = { 0, 4, sizeof(klog_delivery) - 8, sizeof(klog_delivery) + 4 };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        d[0].struct_size = bad[i];
        cr_assert_eq(klog_producer_poll_deliveries(p, d, 4, 0), -EINVAL, "struct_size %u", bad[i]);
    }
    cr_assert_eq(klog_producer_poll_deliveries(p, d, 0, 0), 0, "max 0 reads no element");
    cr_assert_eq(klog_producer_close(p), 0);
    klog_close(k);
}

typedef struct dq_waiter {
    klog_producer *p;
    int timeout;
    int rc;
    klog_delivery d[4];
} dq_waiter;

static void *dq_wait(void *arg)
{
    dq_waiter *w = arg;
    w->rc = klog_producer_poll_deliveries(w->p, w->d, 4, w->timeout);
    return NULL;
}

Test(producer, delivery_queue_poll_wakes_on_report)
{
    klog *k = ut_open();
    ut_topic(k, "q", 1, NULL);
    klog_producer *p = ut_producer(k, "delivery.report.queue", "true", "linger.ms", "0", NULL);
    /* a poll waiting for ever, and one waiting 5 s, each get a report as
     * soon as there is one */
    int timeouts[2] = { -1, 5000 };
    for (int round = 0; round < 2; round++) {
        dq_waiter w = { .p = p, .timeout = timeouts[round], .rc = -1 };
        ut_dr_array(w.d, 4);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, dq_wait, &w), 0);
        ut_sleep_ms(50); /* let it block (it works either way) */
        cr_assert_eq(ut_send(p, "q", 0, NULL, "v"), 0);
        pthread_join(th, NULL);
        cr_assert_eq(w.rc, 1, "round %d: poll_deliveries returned %d", round, w.rc);
        cr_assert_eq(w.d[0].err, 0);
        cr_assert_eq(w.d[0].offset, round);
    }
    klog_producer_close(p);
    klog_close(k);
}

Test(producer, delivery_queue_wakes_poller_while_linger_thread_waits)
{
    /*
     * Regression: reports are announced with pthread_cond_signal on the
     * condition variable that the linger thread (and senders blocked on a
     * full queue) also wait on.  The one wakeup can go to the linger thread
     * instead of the poller, which then sleeps on with a report queued - for
     * ever with timeout -1.
     */
    klog *k = ut_open();
    ut_topic(k, "q", 1, NULL);
    /* linger.ms long: the linger thread sleeps in 100 ms steps; a batch of
     * one record is sealed and written by the send itself, so its report is
     * queued by the time the send returns */
    klog_producer *p = ut_producer(k, "delivery.report.queue", "true", "linger.ms", "60000",
                                   "batch.num.messages", "1", NULL);
    for (int round = 0; round < 10; round++) {
        dq_waiter w = { .p = p, .timeout = -1, .rc = -1 };
        ut_dr_array(w.d, 4);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, dq_wait, &w), 0);
        ut_sleep_ms(5 + 7 * round); /* let it block, at varying phases of the linger thread */
        cr_assert_eq(ut_send(p, "q", 0, NULL, "v"), 0);
        /* a guard against the hang, not a speed check: the poller has had
         * its report since the send returned */
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 10;
        int jr = pthread_timedjoin_np(th, NULL, &dl);
        cr_assert_eq(jr, 0, "round %d: a report is queued, yet poll_deliveries(-1) still sleeps 10 s later", round);
        cr_assert_eq(w.rc, 1);
        cr_assert_eq(w.d[0].offset, round);
    }
    klog_producer_close(p);
    klog_close(k);
}

Test(producer, callbacks_are_fixed_after_first_send)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    cr_assert_eq(klog_producer_set_delivery_cb(p, NULL, NULL), 0, "NULL removes it");
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0, "and it can be set again");
    cr_assert_eq(ut_send(p, "t", 0, "k", "v"), 0);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), KLOG_ESTATE);
    cr_assert_eq(klog_producer_set_delivery_cb(p, NULL, NULL), KLOG_ESTATE);
    cr_assert_eq(klog_producer_set_partitioner(p, NULL, NULL), KLOG_ESTATE);
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(ut_dr_count(&dr), 1, "the callback set before the send still gets the report");
    klog_producer_close(p);
    ut_dr_fini(&dr);
    klog_close(k);
}

typedef struct fl_block {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool entered, release;
} fl_block;

/* A delivery callback that holds its report until released. */
static void fl_hold(void *arg, const klog_delivery *d)
{
    (void)d;
    fl_block *b = arg;
    pthread_mutex_lock(&b->mu);
    b->entered = true;
    pthread_cond_broadcast(&b->cv);
    while (!b->release)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

typedef struct fl_sender {
    klog_producer *p;
    int rc;
} fl_sender;

static void *fl_send(void *arg)
{
    fl_sender *s = arg;
    s->rc = ut_send(s->p, "t", 0, NULL, "held");
    return NULL;
}

Test(producer, flush_times_out_while_a_report_is_pending)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "0", NULL);
    fl_block b = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
    cr_assert_eq(klog_producer_set_delivery_cb(p, fl_hold, &b), 0);
    /* linger.ms=0: the sending thread writes the batch and runs the callback */
    fl_sender s = { p, -1 };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fl_send, &s), 0);
    pthread_mutex_lock(&b.mu);
    while (!b.entered)
        pthread_cond_wait(&b.cv, &b.mu);
    pthread_mutex_unlock(&b.mu);
    /* the record has no report yet: flush gives up at its timeout */
    cr_assert_eq(klog_producer_outstanding(p), 1);
    cr_assert_eq(klog_producer_flush(p, 0), -ETIMEDOUT);
    cr_assert_eq(klog_producer_flush(p, 50), -ETIMEDOUT);
    pthread_mutex_lock(&b.mu);
    b.release = true;
    pthread_cond_broadcast(&b.cv);
    pthread_mutex_unlock(&b.mu);
    pthread_join(th, NULL);
    cr_assert_eq(s.rc, 0);
    cr_assert_eq(klog_producer_flush(p, 5000), 0);
    cr_assert_eq(klog_producer_outstanding(p), 0);
    klog_producer_close(p);
    klog_close(k);
}

/* ---- partitioners ------------------------------------------------------------------------ */

/* Read back a whole topic of `parts` partitions; *n receives the count. */
static ut_msg *read_topic(klog *k, const char *topic, int parts, size_t want, size_t *n)
{
    klog_consumer *c = ut_consumer(k, NULL);
    for (int i = 0; i < parts; i++)
        cr_assert_eq(klog_consumer_assign(c, topic, i, KLOG_OFFSET_BEGINNING), 0);
    ut_msg *m = ut_consume(c, want, n);
    klog_consumer_close(c);
    return m;
}

/* Where each value (a decimal sequence number < max) landed. */
static void partition_of_values(ut_msg *m, size_t n, int32_t *where, int max)
{
    for (int i = 0; i < max; i++)
        where[i] = -1;
    for (size_t j = 0; j < n; j++) {
        int v = atoi(m[j].value);
        cr_assert(v >= 0 && v < max);
        cr_assert_eq(where[v], -1, "value %d read twice", v);
        where[v] = m[j].partition;
    }
}

Test(producer, explicit_partition_overrides_partitioner)
{
    klog *k = ut_open();
    ut_topic(k, "t", 4, NULL);
    klog_producer *p = ut_producer(k, "partitioner", "round_robin", NULL);
    char v[16];
    for (int i = 0; i < 40; i++) {
        snprintf(v, sizeof v, "%d", i);
        cr_assert_eq(ut_send(p, "t", (i * 7) % 4, "samekey", v), 0);
    }
    cr_assert_eq(klog_producer_close(p), 0);
    size_t n;
    ut_msg *m = read_topic(k, "t", 4, 40, &n);
    cr_assert_eq(n, 40);
    int32_t where[40];
    partition_of_values(m, n, where, 40);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(where[i], (i * 7) % 4);
    ut_msgs_free(m, n);
    klog_close(k);
}

/* Send `count` records keyed "key-<i % keys>" (or null keys when keys is 0)
 * with values "<i>", through a producer made with the given partitioner,
 * linger.ms 60000 (only size, count or close seal a batch) and one more
 * producer key (extra_key NULL: none). */
static void send_keyed(klog *k, const char *topic, const char *partitioner, int count, int keys,
                       const char *extra_key, const char *extra_val)
{
    klog_producer *p = ut_producer(k, "partitioner", partitioner, "linger.ms", "60000",
                                   extra_key ? extra_key : "linger.ms", extra_key ? extra_val : "60000", NULL);
    for (int i = 0; i < count; i++) {
        char key[16], v[16];
        snprintf(key, sizeof key, "key-%d", keys ? i % keys : 0);
        snprintf(v, sizeof v, "%d", i);
        cr_assert_eq(ut_send(p, topic, KLOG_PARTITION_ANY, keys ? key : NULL, v), 0);
    }
    cr_assert_eq(klog_producer_close(p), 0);
}

Test(producer, default_partitioner_keys)
{
    klog *k = ut_open();
    ut_topic(k, "d", 5, NULL);
    ut_topic(k, "h", 5, NULL);
    send_keyed(k, "d", "default", 500, 40, NULL, NULL);
    send_keyed(k, "h", "hash", 500, 40, NULL, NULL);
    size_t nd, nh;
    ut_msg *md = read_topic(k, "d", 5, 500, &nd);
    ut_msg *mh = read_topic(k, "h", 5, 500, &nh);
    cr_assert_eq(nd, 500);
    cr_assert_eq(nh, 500);
    int32_t wd[500], wh[500];
    partition_of_values(md, nd, wd, 500);
    partition_of_values(mh, nh, wh, 500);
    int used[5] = { 0 };
    for (int i = 0; i < 500; i++) {
        /* the same key always lands on the same partition */
        cr_assert_eq(wd[i], wd[i % 40], "key-%d: partitions %d and %d", i % 40, wd[i % 40], wd[i]);
        /* default and hash hash keys alike */
        cr_assert_eq(wd[i], wh[i], "key-%d: default put it on %d, hash on %d", i % 40, wd[i], wh[i]);
        used[wd[i]]++;
    }
    int nonempty = 0;
    for (int i = 0; i < 5; i++)
        nonempty += used[i] > 0;
    cr_assert_geq(nonempty, 3, "40 keys hashed onto only %d of 5 partitions", nonempty);
    ut_msgs_free(md, nd);
    ut_msgs_free(mh, nh);
    klog_close(k);
}

Test(producer, default_partitioner_null_keys_stick_until_batch_sealed)
{
    klog *k = ut_open();
    ut_topic(k, "t", 4, NULL);
    /* batches of 10 records (linger.ms is long: only the count seals) */
    send_keyed(k, "t", "default", 400, 0, "batch.num.messages", "10");
    size_t n;
    ut_msg *m = read_topic(k, "t", 4, 400, &n);
    cr_assert_eq(n, 400);
    int32_t w[400];
    partition_of_values(m, n, w, 400);
    int per[4] = { 0 };
    for (int i = 0; i < 400; i++) {
        per[w[i]]++;
        if (i % 10)
            cr_assert_eq(w[i], w[i - 1], "record %d left partition %d before its batch was sealed", i, w[i - 1]);
        else if (i)
            cr_assert_neq(w[i], w[i - 1], "record %d: still on partition %d after a sealed batch", i, w[i]);
    }
    for (int i = 0; i < 4; i++)
        cr_assert_gt(per[i], 0, "null keys never reached partition %d over 40 batches", i);
    ut_msgs_free(m, n);
    klog_close(k);
}

Test(producer, hash_partitioner_null_key_goes_to_partition_0)
{
    klog *k = ut_open();
    ut_topic(k, "t", 3, NULL);
    send_keyed(k, "t", "hash", 60, 0, "batch.num.messages", "5");
    size_t n;
    ut_msg *m = read_topic(k, "t", 3, 60, &n);
    cr_assert_eq(n, 60);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(m[i].partition, 0);
    ut_msgs_free(m, n);
    klog_close(k);
}

Test(producer, round_robin_spreads_evenly)
{
    klog *k = ut_open();
    ut_topic(k, "t", 4, NULL);
    send_keyed(k, "t", "round_robin", 400, 3, NULL, NULL); /* keys are ignored */
    size_t n;
    ut_msg *m = read_topic(k, "t", 4, 400, &n);
    cr_assert_eq(n, 400);
    int32_t w[400];
    partition_of_values(m, n, w, 400);
    int per[4] = { 0 };
    for (int i = 0; i < 400; i++) {
        per[w[i]]++;
        if (i)
            cr_assert_eq(w[i], (w[i - 1] + 1) % 4, "record %d: partition %d after %d", i, w[i], w[i - 1]);
    }
    for (int i = 0; i < 4; i++)
        cr_assert_eq(per[i], 100, "partition %d got %d of 400", i, per[i]);
    ut_msgs_free(m, n);
    klog_close(k);
}

Test(producer, sticky_partitioner_sticks_with_keys_too)
{
    klog *k = ut_open();
    ut_topic(k, "t", 3, NULL);
    send_keyed(k, "t", "sticky", 90, 7, "batch.num.messages", "15");
    size_t n;
    ut_msg *m = read_topic(k, "t", 3, 90, &n);
    cr_assert_eq(n, 90);
    int32_t w[90];
    partition_of_values(m, n, w, 90);
    for (int i = 1; i < 90; i++)
        if (i % 15)
            cr_assert_eq(w[i], w[i - 1], "record %d (keyed) left the sticky partition", i);
    ut_msgs_free(m, n);
    klog_close(k);
}

typedef struct pt_arg {
    int calls;
    int bad_args;
    int32_t answer; /* < -100: the key's length modulo the count */
} pt_arg;

static int32_t pt_fn(void *arg, const char *topic, const void *key, size_t key_len, int32_t count)
{
    pt_arg *a = arg;
    a->calls++;
    if (strcmp(topic, "t") != 0 || count != 3 || (key == NULL && key_len != 0))
        a->bad_args++;
    if (a->answer < -100)
        return (int32_t)(key_len % (size_t)count);
    return a->answer;
}

Test(producer, partitioner_callback)
{
    klog *k = ut_open();
    ut_topic(k, "t", 3, NULL);
    klog_producer *p = ut_producer(k, NULL);
    pt_arg a = { .answer = -1000 };
    cr_assert_eq(klog_producer_set_partitioner(p, pt_fn, &a), 0);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    const char *keys[] = { "a", "bb", "ccc", "dddd", NULL };
    for (int i = 0; i < 5; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        cr_assert_eq(ut_send(p, "t", KLOG_PARTITION_ANY, keys[i], v), 0);
    }
    cr_assert_eq(a.calls, 5);
    /* an explicit partition does not ask the callback */
    cr_assert_eq(ut_send(p, "t", 2, "a", "5"), 0);
    cr_assert_eq(a.calls, 5);
    cr_assert_eq(a.bad_args, 0, "the callback saw a wrong topic, count or key");
    /* a callback answer out of range fails the send, and no report comes */
    int32_t bad[] = { 3, -1, -2, 1000 };
    for (int i = 0; i < 4; i++) {
        a.answer = bad[i];
        cr_assert_eq(ut_send(p, "t", KLOG_PARTITION_ANY, "k", "x"), KLOG_EUNKNOWN_PARTITION, "answer %d", bad[i]);
    }
    a.answer = 1;
    cr_assert_eq(ut_send(p, "t", KLOG_PARTITION_ANY, "k", "6"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(dr.n, 7, "%zu reports for 7 good sends", dr.n);
    cr_assert_eq(dr.errors, 0);
    size_t n;
    ut_msg *m = read_topic(k, "t", 3, 7, &n);
    cr_assert_eq(n, 7);
    int32_t w[7];
    partition_of_values(m, n, w, 7);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(w[i], (int32_t)((keys[i] ? strlen(keys[i]) : 0) % 3), "record %d", i);
    cr_assert_eq(w[5], 2);
    cr_assert_eq(w[6], 1);
    ut_msgs_free(m, n);
    ut_dr_fini(&dr);
    klog_close(k);
}

/* ---- batching ------------------------------------------------------------------------------ */

Test(producer, linger_delivers_without_flush)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "50", "delivery.report.queue", "true", NULL);
    cr_assert_eq(ut_send(p, "t", 0, "a", "1"), 0);
    cr_assert_eq(ut_send(p, "t", 1, "b", "2"), 0);
    klog_delivery d[4];
    ut_dr_array(d, 4);
    int got = 0;
    int64_t give_up = ut_mono_ms() + 5000;
    while (got < 2 && ut_mono_ms() < give_up) {
        int rc = klog_producer_poll_deliveries(p, d + got, 4 - (size_t)got, 200);
        cr_assert_geq(rc, 0);
        got += rc;
    }
    cr_assert_eq(got, 2, "linger.ms=50: %d of 2 records reported without a flush", got);
    cr_assert_eq(d[0].err, 0);
    cr_assert_eq(d[1].err, 0);
    /* readable as soon as reported */
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    cr_assert_eq(klog_consumer_assign(c, "t", 1, 0), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 2, &n);
    cr_assert_eq(n, 2);
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    klog_producer_close(p);
    klog_close(k);
}

Test(producer, flush_waits_for_everything)
{
    klog *k = ut_open();
    ut_topic(k, "t", 3, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "900000", NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    for (int i = 0; i < 3000; i++)
        cr_assert_eq(ut_send(p, "t", KLOG_PARTITION_ANY, NULL, "value"), 0);
    /* linger is 15 minutes: nothing went out on its own */
    cr_assert_eq(klog_producer_outstanding(p), 3000);
    cr_assert_eq(ut_dr_count(&dr), 0);
    cr_assert_eq(ut_end_offset(k, "t", 0) + ut_end_offset(k, "t", 1) + ut_end_offset(k, "t", 2), 0);
    cr_assert_eq(klog_producer_flush(p, 10000), 0);
    int64_t left = klog_producer_outstanding(p);
    cr_assert_eq(left, 0, "flush returned, yet %" PRId64 " records are outstanding", left);
    cr_assert_eq(ut_dr_count(&dr), 3000);
    cr_assert_eq(dr.errors, 0);
    cr_assert_eq(ut_end_offset(k, "t", 0) + ut_end_offset(k, "t", 1) + ut_end_offset(k, "t", 2), 3000);
    /* flush with nothing outstanding returns at once, also with timeout 0 */
    cr_assert_eq(klog_producer_flush(p, 0), 0);
    /* and close flushes what is left */
    for (int i = 0; i < 10; i++)
        cr_assert_eq(ut_send(p, "t", 0, NULL, "late"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(dr.n, 3010);
    cr_assert_eq(ut_end_offset(k, "t", 0) + ut_end_offset(k, "t", 1) + ut_end_offset(k, "t", 2), 3010);
    ut_dr_fini(&dr);
    klog_close(k);
}

Test(producer, batch_num_messages_seals_batches)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "900000", "batch.num.messages", "10", NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    for (int i = 0; i < 25; i++)
        cr_assert_eq(ut_send(p, "t", 0, NULL, "v"), 0);
    /* two full batches went out during the sends (their reports may come
     * from another thread: wait for them), the third is still open */
    cr_assert_eq(ut_dr_wait(&dr, 20, 5000), 20);
    cr_assert_eq(ut_end_offset(k, "t", 0), 20);
    cr_assert_geq(klog_producer_outstanding(p), 5);
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(ut_dr_count(&dr), 25);
    cr_assert_eq(ut_end_offset(k, "t", 0), 25);
    klog_producer_close(p);
    ut_dr_fini(&dr);
    klog_close(k);
}

Test(producer, linger_tick_does_not_seal_new_batches)
{
    /*
     * Regression: the linger thread reads the clock once, then walks the
     * accumulators; a batch opened after that read has created > now, the
     * unsigned age (now - created) wraps to a huge value, and the young
     * batch is sealed at once, whatever linger.ms says.  Batches then go
     * out short, and the sticky partitioner moves early.
     *
     * Here linger.ms is 15 minutes and batches are sealed by count (2):
     * while records are sent for about 1 s (some 10 linger ticks), every
     * batch written must be a full one.
     */
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "900000", "batch.num.messages", "2", NULL);
    int64_t stop = ut_mono_ms() + 1000;
    long sent = 0;
    while (ut_mono_ms() < stop) {
        for (int i = 0; i < 1000; i++, sent++)
            cr_assert_eq(ut_send(p, "t", 0, NULL, "x"), 0);
        int64_t end = ut_end_offset(k, "t", 0);
        cr_assert_eq(end % 2, 0, "after %ld sends the log holds %" PRId64 " records: a batch went out short", sent,
                     end);
    }
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(ut_end_offset(k, "t", 0), sent);
    klog_close(k);
}

Test(producer, batch_size_seals_batches)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "900000", "batch.size", "1000", NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    char v[101];
    memset(v, 'v', 100);
    v[100] = '\0';
    /* one record is far from batch.size, and linger is 15 minutes: it
     * waits in its open batch */
    cr_assert_eq(ut_send(p, "t", 0, NULL, v), 0);
    cr_assert_eq(klog_producer_outstanding(p), 1);
    cr_assert_eq(ut_dr_count(&dr), 0);
    /* ~100 bytes a record, 1000-byte batches: full batches go out without
     * a flush, and at most one batch's worth (< 10 records) stays open */
    for (int i = 1; i < 100; i++)
        cr_assert_eq(ut_send(p, "t", 0, NULL, v), 0);
    size_t out = ut_dr_wait(&dr, 91, 5000);
    cr_assert_geq(out, 91, "only %zu of 100 records reported without a flush", out);
    cr_assert_lt(ut_end_offset(k, "t", 0), 100, "a 1000-byte batch cannot hold the last ten 100-byte records");
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(ut_dr_count(&dr), 100);
    klog_producer_close(p);
    ut_dr_fini(&dr);
    klog_close(k);
}

/* ---- bounded memory --------------------------------------------------------------------- */

/* Send 100-byte records until one fails; returns the failing code and the
 * number that succeeded in *ok (gives up after `limit` sends: returns 0). */
static int send_until_fail(klog_producer *p, const char *topic, int32_t part, int limit, int *ok)
{
    char v[101];
    memset(v, 'm', 100);
    v[100] = '\0';
    for (*ok = 0; *ok < limit; (*ok)++) {
        klog_record r = KLOG_RECORD_INIT;
        r.partition = part;
        r.value = v;
        r.value_len = 100;
        r.opaque = (void *)(uintptr_t)(*ok + 1);
        int rc = klog_producer_send(p, topic, &r);
        if (rc)
            return rc;
    }
    return 0;
}

Test(producer, unpolled_delivery_queue_fills_then_recovers)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "delivery.report.queue", "true", "buffer.memory", "65536", "batch.size",
                                   "16384", "linger.ms", "0", "max.block.ms", "0", NULL);
    int ok = 0;
    int rc = send_until_fail(p, "t", 0, 1000000, &ok);
    cr_assert_eq(rc, KLOG_EQUEUEFULL, "after %d sends: %s", ok, klog_err_name(rc));
    cr_assert_gt(ok, 0);
    /* every record that was accepted was written and is reported */
    cr_assert_eq(klog_producer_flush(p, 10000), 0);
    cr_assert_eq(ut_end_offset(k, "t", 0), ok);
    /* still full: nothing was polled */
    cr_assert_eq(ut_send(p, "t", 0, NULL, "x"), KLOG_EQUEUEFULL);
    klog_delivery *d = calloc((size_t)ok + 1, sizeof *d);
    d[0].struct_size = sizeof *d;
    int got = klog_producer_poll_deliveries(p, d, (size_t)ok + 1, 0);
    cr_assert_eq(got, ok, "%d reports for %d records", got, ok);
    for (int i = 0; i < ok; i++) {
        cr_assert_eq(d[i].err, 0);
        cr_assert_eq((uintptr_t)d[i].opaque, (uintptr_t)(i + 1));
        cr_assert_eq(d[i].offset, i);
    }
    /* room again */
    int ok2 = 0;
    rc = send_until_fail(p, "t", 0, 1000000, &ok2);
    cr_assert_eq(rc, KLOG_EQUEUEFULL);
    cr_assert_eq(ok2, ok, "the emptied queue took %d records, %d the first time", ok2, ok);
    cr_assert_eq(klog_producer_poll_deliveries(p, d, (size_t)ok + 1, 0), ok);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "x"), 0);
    free(d);
    klog_producer_close(p);
    klog_close(k);
}

Test(producer, full_queue_blocks_for_max_block_ms_then_fails)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "delivery.report.queue", "true", "buffer.memory", "65536", "batch.size",
                                   "16384", "linger.ms", "0", "max.block.ms", "200", NULL);
    int ok = 0;
    int64_t t0 = ut_mono_ms();
    int rc = send_until_fail(p, "t", 0, 1000000, &ok);
    int64_t waited = ut_mono_ms() - t0;
    cr_assert_eq(rc, KLOG_EQUEUEFULL, "after %d sends: %s", ok, klog_err_name(rc));
    /* a lower bound only: the failing send waited out max.block.ms */
    cr_assert_geq(waited, 190, "the full queue failed the send after %" PRId64 " ms, not 200", waited);
    klog_delivery *d = calloc((size_t)ok, sizeof *d);
    d[0].struct_size = sizeof *d;
    cr_assert_eq(klog_producer_poll_deliveries(p, d, (size_t)ok, 0), ok);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "x"), 0);
    free(d);
    klog_producer_close(p);
    klog_close(k);
}

Test(producer, blocked_send_proceeds_when_deliveries_are_polled)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "delivery.report.queue", "true", "buffer.memory", "65536", "linger.ms", "0",
                                   "batch.size", "16384", "max.block.ms", "0", NULL);
    int ok = 0;
    cr_assert_eq(send_until_fail(p, "t", 0, 1000000, &ok), KLOG_EQUEUEFULL);
    klog_producer_close(p);
    /* same again with a long max.block.ms: the send that finds the queue
     * full waits, and a poll from another thread lets it through */
    p = ut_producer(k, "delivery.report.queue", "true", "buffer.memory", "65536", "linger.ms", "0", "batch.size",
                    "16384", "max.block.ms", "60000", NULL);
    int ok2;
    cr_assert_eq(send_until_fail(p, "t", 0, ok, &ok2), 0);
    fl_sender s = { p, -1 };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fl_send, &s), 0);
    ut_sleep_ms(50); /* let it block (it works either way) */
    klog_delivery d[8] = { [0].struct_size = sizeof d[0] };
    cr_assert_eq(klog_producer_poll_deliveries(p, d, 8, 0), 8);
    pthread_join(th, NULL);
    cr_assert_eq(s.rc, 0, "blocked send: %s", klog_err_name(s.rc));
    klog_producer_close(p);
    klog_close(k);
}

typedef struct ov_sender {
    klog_producer *p;
    uint32_t id;
    int rc;
} ov_sender;

#define OV_THREADS 16
#define OV_PER_THREAD 400

static void *ov_send(void *arg)
{
    ov_sender *s = arg;
    for (uint32_t i = 0; i < OV_PER_THREAD; i++) {
        klog_record r = KLOG_RECORD_INIT;
        r.partition = 0;
        r.value = "o";
        r.value_len = 1;
        r.opaque = (void *)(uintptr_t)(s->id * OV_PER_THREAD + i + 1);
        if ((s->rc = klog_producer_send(s->p, "t", &r)) != 0)
            break;
    }
    return NULL;
}

Test(producer, delivery_queue_never_overflows_under_blocked_senders)
{
    /*
     * Regression: a send reserves its delivery-queue slot by checking
     * outstanding + queued < capacity under the queue lock, but counts
     * itself outstanding only later, after dropping the lock.  Senders
     * blocked on a full queue all wake on one poll, all see the one free
     * slot, and all go ahead: the queue overflows and reports that were not
     * yet polled are overwritten.
     */
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "delivery.report.queue", "true", "buffer.memory", "65536", "linger.ms", "0",
                                   "batch.size", "16384", "max.block.ms", "60000", NULL);
    pthread_t th[OV_THREADS];
    ov_sender s[OV_THREADS];
    for (uint32_t i = 0; i < OV_THREADS; i++) {
        s[i] = (ov_sender){ p, i, 0 };
        cr_assert_eq(pthread_create(&th[i], NULL, ov_send, &s[i]), 0);
    }
    ut_sleep_ms(100); /* let the senders fill the queue and block */
    /* poll one report at a time: each frees exactly one slot */
    uint32_t seen[OV_THREADS * OV_PER_THREAD] = { 0 };
    size_t got = 0;
    int64_t give_up = ut_mono_ms() + 30000;
    while (got < OV_THREADS * OV_PER_THREAD && ut_mono_ms() < give_up) {
        klog_delivery d = { .struct_size = sizeof d };
        int rc = klog_producer_poll_deliveries(p, &d, 1, 1000);
        cr_assert_geq(rc, 0);
        if (rc == 0)
            continue;
        uintptr_t id = (uintptr_t)d.opaque;
        cr_assert(id >= 1 && id <= OV_THREADS * OV_PER_THREAD, "bad opaque %p", d.opaque);
        seen[id - 1]++;
        got++;
    }
    for (int i = 0; i < OV_THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(s[i].rc, 0, "sender %d: %s", i, klog_err_name(s[i].rc));
    }
    cr_assert_eq(got, OV_THREADS * OV_PER_THREAD);
    size_t dup = 0, lost = 0;
    for (int i = 0; i < OV_THREADS * OV_PER_THREAD; i++) {
        dup += seen[i] > 1;
        lost += seen[i] == 0;
    }
    cr_assert_eq(dup + lost, 0, "%zu reports delivered twice and %zu never (the queue overflowed)", dup, lost);
    klog_producer_close(p);
    klog_close(k);
}

Test(producer, open_batches_use_up_buffer_memory)
{
    klog *k = ut_open();
    ut_topic(k, "t", 8, NULL);
    /* each open batch holds a 12 kB record of a 64 kB budget (a batch's
     * buffer is as large as its records need, up to batch.size); linger
     * keeps them open */
    klog_producer *p = ut_producer(k, "buffer.memory", "65536", "batch.size", "16000", "linger.ms", "900000",
                                   "max.block.ms", "0", NULL);
    static char big[12001];
    memset(big, 'x', sizeof big - 1);
    int rc = 0, part;
    for (part = 0; part < 8; part++)
        if ((rc = ut_send(p, "t", part, NULL, big)) != 0)
            break;
    cr_assert_eq(rc, KLOG_EQUEUEFULL, "8 open batches of 12 kB fit in 64 kB?");
    cr_assert_gt(part, 0);
    cr_assert_eq(klog_producer_outstanding(p), part, "the failed send is not outstanding");
    /* a flush writes the open batches and frees their memory */
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    for (int i = part; i < 8; i++)
        cr_assert_eq(ut_send(p, "t", i, NULL, "x"), 0, "partition %d after the flush", i);
    cr_assert_eq(klog_producer_close(p), 0);
    int64_t total = 0;
    for (int i = 0; i < 8; i++)
        total += ut_end_offset(k, "t", i);
    cr_assert_eq(total, 8);
    klog_close(k);
}

/* Issue 21: open batches start small and grow as records come, so a
 * producer to many partitions, a few records each, does not need
 * batch.size per partition (it used to: the second partition's send here
 * found the budget used up). */
Test(producer, many_small_open_batches_fit_in_buffer_memory)
{
    klog *k = ut_open();
    ut_topic(k, "t", 64, NULL);
    klog_producer *p = ut_producer(k, "buffer.memory", "1048576", "batch.size", "600000", "linger.ms", "900000",
                                   "max.block.ms", "0", NULL);
    for (int part = 0; part < 64; part++)
        for (int i = 0; i < 3; i++)
            cr_assert_eq(ut_send(p, "t", part, NULL, "a small record"), 0, "partition %d", part);
    cr_assert_eq(klog_producer_outstanding(p), 64 * 3);
    /* and one partition's batch still grows to batch.size: 500 records of
     * 1 kB (500 kB) in one open batch, past any starting size */
    static char kb[1001];
    memset(kb, 'y', sizeof kb - 1);
    for (int i = 0; i < 500; i++)
        cr_assert_eq(ut_send(p, "t", 0, NULL, kb), 0, "record %d", i);
    cr_assert_eq(klog_producer_close(p), 0);
    int64_t total = 0;
    for (int i = 0; i < 64; i++)
        total += ut_end_offset(k, "t", i);
    cr_assert_eq(total, 64 * 3 + 500);
    klog_close(k);
}

Test(producer, large_record_fits_after_small_batches_were_freed)
{
    /*
     * Regression: buffers of finished batches stay charged to buffer.memory
     * in the producer's pool.  A record larger than batch.size needs a
     * buffer of its own; with the pool holding part of the budget it never
     * fits, although nothing at all is outstanding, and the send fails with
     * KLOG_EQUEUEFULL (after max.block.ms) - while the very same record
     * succeeds on a fresh producer.
     */
    klog *k = ut_open();
    ut_topic(k, "t", 2, "max.message.bytes", "60000", NULL);
    size_t big = 55000;
    char *v = malloc(big);
    memset(v, 'B', big);
    klog_record r = KLOG_RECORD_INIT;
    r.partition = 0;
    r.value = v;
    r.value_len = big;
    /* a fresh producer sends it */
    klog_producer *p = ut_producer(k, "buffer.memory", "65536", "batch.size", "16384", "linger.ms", "0",
                                   "max.block.ms", "100", NULL);
    cr_assert_eq(klog_producer_send(p, "t", &r), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    /* so does one that sent small records first and has nothing outstanding */
    p = ut_producer(k, "buffer.memory", "65536", "batch.size", "16384", "linger.ms", "0", "max.block.ms", "100",
                    NULL);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "small"), 0);
    cr_assert_eq(ut_send(p, "t", 1, NULL, "small"), 0);
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(klog_producer_outstanding(p), 0);
    int rc = klog_producer_send(p, "t", &r);
    cr_assert_eq(rc, 0, "a %zu-byte record (max.message.bytes 60000) with nothing outstanding: %s", big,
                 klog_err_name(rc));
    cr_assert_eq(klog_producer_close(p), 0);
    free(v);
    klog_close(k);
}


/* ---- the pool of batch buffers gives back what it does not need ------------------- */

/* buffer.memory in use (klog_stats' queue_bytes): the producer's batch
 * buffers, open, outstanding and pooled; -1 if not found. */
static long long pool_bytes(klog *k)
{
    char *doc = NULL;
    long long v = -1;
    cr_assert_eq(klog_stats(k, KLOG_STATS_JSON, &doc), 0);
    const char *q = strstr(doc, "\"queue_bytes\":");
    if (q)
        v = atoll(q + strlen("\"queue_bytes\":"));
    klog_free(doc);
    return v;
}

/* A burst of 1 kB records into 8 partitions: batches grown to hundreds of
 * kB each, all written by the flush. */
static void pool_burst(klog_producer *p)
{
    static char kb[1001];
    memset(kb, 'z', sizeof kb - 1);
    for (int i = 0; i < 8 * 300; i++)
        cr_assert_eq(ut_send(p, "t", i % 8, NULL, kb), 0, "record %d", i);
    cr_assert_eq(klog_producer_flush(p, -1), 0);
}

/* Issue 18's soak: the buffers of a burst (or of batches a stall let grow
 * deep) stayed in the producer's pool for ever, resident, after it was
 * idle again.  With the producer thread (linger.ms > 0), an idle
 * producer's pool empties within two seconds or so. */
Test(producer, idle_producer_gives_pooled_buffers_back)
{
    klog *k = ut_open();
    ut_topic(k, "t", 8, NULL);
    /* a long linger: the burst stays in open batches until the flush */
    klog_producer *p = ut_producer(k, "linger.ms", "1000", NULL);
    pool_burst(p);
    long long after = pool_bytes(k);
    cr_assert_gt(after, 0, "the burst's buffers are pooled");
    long long now = after;
    for (int i = 0; i < 500 && now > 0; i++) { /* a guard against a hang, not a time limit */
        usleep(20000);
        now = pool_bytes(k);
    }
    cr_assert_eq(now, 0, "pooled buffers of an idle producer: %lld bytes (%lld after the burst)", now, after);
    /* and the producer still works, from new buffers */
    pool_burst(p);
    cr_assert_eq(klog_producer_close(p), 0);
    int64_t total = 0;
    for (int i = 0; i < 8; i++)
        total += ut_end_offset(k, "t", i);
    cr_assert_eq(total, 2 * 8 * 300);
    klog_close(k);
}

/* Without a producer thread (linger.ms=0) a pooled buffer shrinks when it
 * is reused for less than half its size: one grown for a 300 kB record
 * (a mapping of its own) goes back to a few KiB for small records. */
Test(producer, pooled_buffer_shrinks_when_reused_for_small_records)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "0", NULL);
    static char big[300001];
    memset(big, 'b', sizeof big - 1);
    cr_assert_eq(ut_send(p, "t", 0, NULL, big), 0);
    long long after = pool_bytes(k);
    cr_assert_geq(after, 300000, "the big batch's buffer is pooled: %lld bytes", after);
    long long now = after;
    int sent = 0;
    for (; sent < 100 && now > 16384; sent++) {
        cr_assert_eq(ut_send(p, "t", sent % 2, NULL, "small"), 0);
        now = pool_bytes(k);
    }
    cr_assert_leq(now, 16384, "pooled buffers of a producer of small records: %lld bytes (%lld after the big one)",
                  now, after);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(ut_end_offset(k, "t", 0) + ut_end_offset(k, "t", 1), 1 + sent);
    klog_close(k);
}

/* ---- records ----------------------------------------------------------------------------- */

Test(producer, record_shapes_round_trip)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);

    klog_header one[1] = { { "h", 1, "hv", 2 } };
    klog_header nulls[3] = { { "a", 1, NULL, 0 }, { "b", 1, "", 0 }, { "", 0, "empty-key", 9 } };
    klog_header many[40];
    char hk[40][8], hv[40][8];
    for (int i = 0; i < 40; i++) {
        snprintf(hk[i], sizeof hk[i], "k%d", i);
        snprintf(hv[i], sizeof hv[i], "v%d", i);
        many[i] = (klog_header){ hk[i], strlen(hk[i]), i % 5 == 4 ? NULL : hv[i], i % 5 == 4 ? 0 : strlen(hv[i]) };
    }
    many[7] = many[3]; /* duplicate keys are kept, in order */
    struct {
        const char *key;
        size_t key_len;
        const char *value;
        size_t value_len;
        const klog_header *h;
        size_t hc;
    } shapes[] = {
        { "key", 3, "value", 5, NULL, 0 },
        { NULL, 99, "null key (key_len ignored)", 26, NULL, 0 },
        { "tomb", 4, NULL, 99, NULL, 0 },          /* tombstone */
        { NULL, 0, NULL, 0, NULL, 0 },             /* nothing at all */
        { "", 0, "", 0, NULL, 0 },                 /* empty, not null */
        { "bin\0key", 7, "bin\0\xff\x00value", 11, NULL, 0 },
        { "k1", 2, "one header", 10, one, 1 },
        { "kn", 2, "null header values", 18, nulls, 3 },
        { "km", 2, "many headers", 12, many, 40 },
        { NULL, 0, NULL, 0, one, 1 },               /* headers only */
    };
    size_t ns = sizeof shapes / sizeof shapes[0];
    for (size_t i = 0; i < ns; i++) {
        klog_record r = KLOG_RECORD_INIT;
        r.partition = 0;
        r.key = shapes[i].key;
        r.key_len = shapes[i].key_len;
        r.value = shapes[i].value;
        r.value_len = shapes[i].value_len;
        r.headers = shapes[i].h;
        r.header_count = shapes[i].hc;
        r.opaque = (void *)(uintptr_t)(i + 1);
        cr_assert_eq(klog_producer_send(p, "t", &r), 0, "shape %zu", i);
    }
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(dr.n, ns);
    cr_assert_eq(dr.errors, 0);

    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_DEFAULT), 0);
    size_t n;
    ut_msg *m = ut_consume(c, ns, &n);
    cr_assert_eq(n, ns);
    for (size_t i = 0; i < ns; i++) {
        cr_assert_eq(m[i].offset, (int64_t)i);
        if (!shapes[i].key) {
            cr_assert_null(m[i].key, "shape %zu: null key read back as non-null", i);
            cr_assert_eq(m[i].key_len, 0);
        } else {
            cr_assert_not_null(m[i].key, "shape %zu: empty key read back as null", i);
            cr_assert_eq(m[i].key_len, shapes[i].key_len);
            cr_assert_eq(memcmp(m[i].key, shapes[i].key, shapes[i].key_len), 0);
        }
        if (!shapes[i].value) {
            cr_assert_null(m[i].value, "shape %zu: null value read back as non-null", i);
            cr_assert_eq(m[i].value_len, 0);
        } else {
            cr_assert_not_null(m[i].value, "shape %zu: empty value read back as null", i);
            cr_assert_eq(m[i].value_len, shapes[i].value_len);
            cr_assert_eq(memcmp(m[i].value, shapes[i].value, shapes[i].value_len), 0);
        }
        cr_assert_eq(m[i].header_count, shapes[i].hc, "shape %zu", i);
        for (size_t h = 0; h < shapes[i].hc; h++) {
            const klog_header *want = &shapes[i].h[h];
            ut_hdr *got = &m[i].headers[h];
            cr_assert_eq(got->key_len, want->key_len, "shape %zu header %zu", i, h);
            cr_assert_eq(memcmp(got->key, want->key, want->key_len), 0);
            if (!want->value) {
                cr_assert_null(got->value, "shape %zu header %zu: null value read back as non-null", i, h);
            } else {
                cr_assert_not_null(got->value, "shape %zu header %zu", i, h);
                cr_assert_eq(got->value_len, want->value_len);
                cr_assert_eq(memcmp(got->value, want->value, want->value_len), 0);
            }
        }
    }
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    ut_dr_fini(&dr);
    klog_close(k);
}

Test(producer, timestamps_explicit_and_at_send)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, "retention.ms", "-1", NULL); /* old timestamps below */
    klog_producer *p = ut_producer(k, "delivery.report.queue", "true", NULL);
    int64_t explicit_ts[] = { 1700000000123, 1, 1700000000000, 4102444800000 /* 2100 */ };
    for (int i = 0; i < 4; i++) {
        klog_record r = KLOG_RECORD_INIT;
        r.partition = 0;
        r.value = "e";
        r.value_len = 1;
        r.timestamp = explicit_ts[i];
        cr_assert_eq(klog_producer_send(p, "t", &r), 0);
    }
    int64_t before = ut_wall_ms();
    cr_assert_eq(ut_send(p, "t", 0, NULL, "now"), 0);
    int64_t after = ut_wall_ms();
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    klog_delivery d[5] = { [0].struct_size = sizeof d[0] };
    cr_assert_eq(klog_producer_poll_deliveries(p, d, 5, 0), 5);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(d[i].timestamp, explicit_ts[i]);
    /* the header allows the kernel's coarse clock, which lags by a tick or
     * two (up to 8 ms seen on a 250 Hz VM): a loose lower bound, enough to
     * tell the wall clock in ms from any other clock or unit */
    cr_assert(d[4].timestamp >= before - 1000 && d[4].timestamp <= after,
              "send-time timestamp %" PRId64 " not in [%" PRId64 " - 1000, %" PRId64 "]", d[4].timestamp, before,
              after);
    klog_producer_close(p);

    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 5, &n);
    cr_assert_eq(n, 5);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(m[i].timestamp, explicit_ts[i], "record %d", i);
    cr_assert_eq(m[4].timestamp, d[4].timestamp);
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    klog_close(k);
}

Test(producer, record_size_limit)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, "max.message.bytes", "1000", NULL);
    klog_producer *p = ut_producer(k, NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    char buf[2000];
    memset(buf, 'z', sizeof buf);
    klog_record r = KLOG_RECORD_INIT;
    r.partition = 0;
    /* value alone over the limit */
    r.value = buf;
    r.value_len = 1001;
    cr_assert_eq(klog_producer_send(p, "t", &r), KLOG_ETOOBIG);
    /* key + value over by one */
    r.key = buf;
    r.key_len = 10;
    r.value_len = 991;
    cr_assert_eq(klog_producer_send(p, "t", &r), KLOG_ETOOBIG);
    /* headers count too */
    klog_header h = { "hk", 2, buf, 9 };
    r.value_len = 980;
    r.headers = &h;
    r.header_count = 1;
    cr_assert_eq(klog_producer_send(p, "t", &r), KLOG_ETOOBIG); /* 10 + 980 + 2 + 9 = 1001 */
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(ut_dr_count(&dr), 0, "a refused record got a delivery report");
    cr_assert_eq(klog_producer_outstanding(p), 0);
    /* exactly the limit is fine, with and without headers */
    h.value_len = 8; /* 10 + 980 + 2 + 8 = 1000 */
    cr_assert_eq(klog_producer_send(p, "t", &r), 0);
    r.headers = NULL;
    r.header_count = 0;
    r.key = NULL;
    r.value_len = 1000;
    cr_assert_eq(klog_producer_send(p, "t", &r), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(dr.n, 2);
    cr_assert_eq(dr.errors, 0);

    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 2, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(m[0].key_len, 10);
    cr_assert_eq(m[0].value_len, 980);
    cr_assert_eq(m[0].header_count, 1);
    cr_assert_eq(m[0].headers[0].value_len, 8);
    cr_assert_null(m[1].key);
    cr_assert_eq(m[1].value_len, 1000);
    cr_assert_eq(memcmp(m[1].value, buf, 1000), 0);
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    ut_dr_fini(&dr);
    klog_close(k);
}

Test(producer, batches_stay_under_topic_max_message_bytes)
{
    /* batch.size (1 MB) is far above the topic's limit: batches are sealed
     * before they would pass it, and every one is accepted */
    klog *k = ut_open();
    ut_topic(k, "t", 1, "max.message.bytes", "2000", NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "900000", "compression.type", "none", NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    char v[301];
    memset(v, 'q', 300);
    v[300] = '\0';
    for (int i = 0; i < 100; i++)
        cr_assert_eq(ut_send(p, "t", 0, NULL, v), 0);
    /* full batches went out during the sends, without linger or flush */
    size_t early = ut_dr_wait(&dr, 90, 5000);
    cr_assert_geq(early, 90, "%zu of 100 reported before the flush", early);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(dr.n, 100);
    cr_assert_eq(dr.errors, 0, "a batch over max.message.bytes was refused");
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 100, &n);
    cr_assert_eq(n, 100);
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    ut_dr_fini(&dr);
    klog_close(k);
}

Test(producer, record_larger_than_batch_size)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "batch.size", "1024", "compression.type", "zstd", NULL);
    size_t big = 500000;
    char *v = malloc(big);
    for (size_t i = 0; i < big; i++)
        v[i] = (char)('a' + (i * 7 + i / 13) % 26);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "before"), 0);
    klog_record r = KLOG_RECORD_INIT;
    r.partition = 0;
    r.value = v;
    r.value_len = big;
    cr_assert_eq(klog_producer_send(p, "t", &r), 0);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "after"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 3, &n);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(m[0].value, "before");
    cr_assert_eq(m[1].value_len, big);
    cr_assert_eq(memcmp(m[1].value, v, big), 0);
    cr_assert_str_eq(m[2].value, "after");
    ut_msgs_free(m, n);
    free(v);
    klog_consumer_close(c);
    klog_close(k);
}

Test(producer, caller_buffers_may_be_reused_after_send)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "900000", NULL);
    char key[8], val[8], hkey[8], hval[8];
    klog_header h = { hkey, 2, hval, 2 };
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "v%d", i);
        snprintf(hkey, sizeof hkey, "h%d", i);
        snprintf(hval, sizeof hval, "x%d", i);
        klog_record r = KLOG_RECORD_INIT;
        r.partition = 0;
        r.key = key;
        r.key_len = 2;
        r.value = val;
        r.value_len = 2;
        r.headers = &h;
        r.header_count = 1;
        cr_assert_eq(klog_producer_send(p, "t", &r), 0);
        memset(key, '#', sizeof key); /* overwritten while the batch is still open */
        memset(val, '#', sizeof val);
        memset(hkey, '#', sizeof hkey);
        memset(hval, '#', sizeof hval);
    }
    cr_assert_eq(klog_producer_close(p), 0);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 5, &n);
    cr_assert_eq(n, 5);
    for (int i = 0; i < 5; i++) {
        char want[8];
        snprintf(want, sizeof want, "k%d", i);
        cr_assert_str_eq(m[i].key, want);
        snprintf(want, sizeof want, "v%d", i);
        cr_assert_str_eq(m[i].value, want);
        snprintf(want, sizeof want, "h%d", i);
        cr_assert_str_eq(m[i].headers[0].key, want);
        snprintf(want, sizeof want, "x%d", i);
        cr_assert_str_eq(m[i].headers[0].value, want);
    }
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    klog_close(k);
}

Test(producer, topic_deleted_under_open_batches)
{
    klog *k = ut_open();
    ut_topic(k, "gone", 2, NULL);
    ut_topic(k, "kept", 1, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "900000", NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(ut_send(p, "gone", i % 2, NULL, "doomed"), 0);
    cr_assert_eq(ut_send(p, "kept", 0, NULL, "fine"), 0);
    cr_assert_eq(klog_topic_delete(k, "gone"), 0);
    cr_assert_eq(ut_send(p, "gone", 0, NULL, "late"), KLOG_EUNKNOWN_TOPIC);
    /* the open batches fail; their records are reported with the error,
     * and close returns it, so a caller ignoring reports still learns */
    cr_assert_eq(klog_producer_close(p), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(dr.n, 7);
    size_t failed = 0;
    for (size_t i = 0; i < dr.n; i++) {
        if (strcmp(dr.topic[i], "gone") == 0) {
            cr_assert_eq(dr.d[i].err, KLOG_EUNKNOWN_TOPIC, "gone: %s", klog_err_name(dr.d[i].err));
            cr_assert_eq(dr.d[i].offset, -1);
            failed++;
        } else {
            cr_assert_str_eq(dr.topic[i], "kept");
            cr_assert_eq(dr.d[i].err, 0, "kept: %s", klog_err_name(dr.d[i].err));
            cr_assert_eq(dr.d[i].offset, 0);
        }
    }
    cr_assert_eq(failed, 6);
    ut_dr_fini(&dr);
    klog_close(k);
}

Test(producer, topic_recreated_under_the_same_name)
{
    /*
     * Regression: the producer caches the topics it sent to by name; once
     * one is deleted and a new topic created under the same name, sends
     * still found the deleted one and failed with KLOG_EUNKNOWN_TOPIC for
     * good.
     */
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "0", NULL);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "old"), 0);
    cr_assert_eq(klog_topic_delete(k, "t"), 0);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "none"), KLOG_EUNKNOWN_TOPIC);
    ut_topic(k, "t", 2, NULL);
    int rc = ut_send(p, "t", 1, NULL, "new");
    cr_assert_eq(rc, 0, "send to the re-created topic: %s", klog_err_name(rc));
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(ut_end_offset(k, "t", 0), 0);
    cr_assert_eq(ut_end_offset(k, "t", 1), 1);
    klog_close(k);
}

/* ---- bad input --------------------------------------------------------------------------- */

Test(producer, null_arguments)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    klog_producer *p = (klog_producer *)1;
    char err[256] = "";
    cr_assert_eq(klog_producer_new(NULL, NULL, &p, err, sizeof err), -EINVAL);
    cr_assert_null(p, "*out is NULL after a failed new");
    cr_assert_eq(klog_producer_new(NULL, NULL, &p, NULL, 0), -EINVAL);
    cr_assert_eq(klog_producer_new(k, NULL, NULL, NULL, 0), -EINVAL);
    cr_assert_eq(klog_producer_set_delivery_cb(NULL, ut_dr_cb, NULL), -EINVAL);
    cr_assert_eq(klog_producer_set_partitioner(NULL, NULL, NULL), -EINVAL);
    klog_record r = KLOG_RECORD_INIT;
    cr_assert_eq(klog_producer_send(NULL, "t", &r), -EINVAL);
    cr_assert_eq(klog_producer_flush(NULL, 0), -EINVAL);
    cr_assert_eq(klog_producer_poll_deliveries(NULL, NULL, 0, 0), -EINVAL);
    cr_assert_eq(klog_producer_outstanding(NULL), 0);
    cr_assert_eq(klog_producer_close(NULL), 0);

    cr_assert_eq(klog_producer_new(k, NULL, &p, NULL, 0), 0, "conf NULL means defaults");
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    cr_assert_eq(klog_producer_send(p, NULL, &r), -EINVAL);
    cr_assert_eq(klog_producer_send(p, "t", NULL), -EINVAL);
    /* struct_size too small: an older, shorter record than the library knows */
    klog_record small = KLOG_RECORD_INIT;
    small.struct_size = sizeof(klog_record) - 1;
    cr_assert_eq(klog_producer_send(p, "t", &small), -EINVAL);
    small.struct_size = 0;
    cr_assert_eq(klog_producer_send(p, "t", &small), -EINVAL);
    /* headers promised but missing; a header key pointer missing */
    r.header_count = 2;
    cr_assert_eq(klog_producer_send(p, "t", &r), -EINVAL);
    klog_header h = { NULL, 3, "v", 1 };
    r.headers = &h;
    r.header_count = 1;
    cr_assert_eq(klog_producer_send(p, "t", &r), -EINVAL);
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(dr.n, 0, "a failed send got a report");
    cr_assert_eq(klog_producer_close(p), 0);
    ut_dr_fini(&dr);
    klog_close(k);
}

Test(producer, unknown_topic_partition_and_bad_names)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    klog_producer *p = ut_producer(k, NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    cr_assert_eq(ut_send(p, "nosuch", KLOG_PARTITION_ANY, "k", "v"), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(ut_send(p, "nosuch", 0, "k", "v"), KLOG_EUNKNOWN_TOPIC);
    const char *bad[] = { "", ".", "..", "a/b", "sp ace", "star*" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(ut_send(p, bad[i], 0, "k", "v"), KLOG_EBADNAME, "\"%s\"", bad[i]);
    cr_assert_eq(ut_send(p, "t", 2, "k", "v"), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(ut_send(p, "t", 1000, "k", "v"), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(ut_send(p, "t", -2, "k", "v"), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(ut_send(p, "t", INT32_MIN, "k", "v"), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(ut_send(p, "t", 1, "k", "v"), 0);
    /* a topic created after the producer is usable; a deleted one is not */
    ut_topic(k, "later", 1, NULL);
    cr_assert_eq(ut_send(p, "later", 0, "k", "v"), 0);
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(klog_topic_delete(k, "later"), 0);
    cr_assert_eq(ut_send(p, "later", 0, "k", "v"), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(dr.n, 2, "%zu reports for 2 good sends", dr.n);
    cr_assert_eq(dr.errors, 0);
    ut_dr_fini(&dr);
    klog_close(k);
}

Test(producer, bad_configuration)
{
    klog_conf *c = NULL;
    cr_assert_eq(klog_conf_new(&c), 0);
    struct {
        const char *key, *value;
    } bad[] = {
        { "acks", "2" },
        { "acks", "most" },
        { "linger.ms", "-1" },
        { "linger.ms", "5ms" },
        { "batch.size", "0" },
        { "batch.num.messages", "0" },
        { "compression.type", "lzo" },
        { "compression.type", "LZ4" },
        { "compression.level", "23" },
        { "buffer.memory", "1000" },
        { "max.block.ms", "-5" },
        { "enable.idempotence", "maybe" },
        { "partitioner", "random" },
        { "delivery.report.queue", "yes please" },
        { "no.such.key", "1" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        cr_assert_eq(klog_conf_set(c, bad[i].key, bad[i].value, err, sizeof err), KLOG_ECONF, "%s=%s",
                     bad[i].key, bad[i].value);
        cr_assert(strstr(err, bad[i].key) != NULL, "message \"%s\" does not name %s", err, bad[i].key);
    }
    klog_conf_free(c);

    /* values that parse but that a producer cannot use */
    klog *k = ut_open();
    klog_producer *p = (klog_producer *)1;
    char err[256] = "";
    c = ut_conf("compression.type", "lz4", "compression.level", "3", NULL);
    cr_assert_eq(klog_producer_new(k, c, &p, err, sizeof err), KLOG_ECONF);
    cr_assert_null(p);
    cr_assert(strstr(err, "compression.level") != NULL, "%s", err);
    klog_conf_free(c);
    err[0] = '\0';
    c = ut_conf("batch.size", "100000", "buffer.memory", "65536", NULL);
    cr_assert_eq(klog_producer_new(k, c, &p, err, sizeof err), KLOG_ECONF);
    cr_assert_null(p);
    cr_assert(strstr(err, "batch.size") != NULL, "%s", err);
    klog_conf_free(c);
    /* snappy takes no level either; gzip takes 1 to 9 */
    c = ut_conf("compression.type", "snappy", "compression.level", "1", NULL);
    cr_assert_eq(klog_producer_new(k, c, &p, err, sizeof err), KLOG_ECONF);
    cr_assert(strstr(err, "compression.level") != NULL, "%s", err);
    klog_conf_free(c);
    c = ut_conf("compression.type", "gzip", "compression.level", "10", NULL);
    cr_assert_eq(klog_producer_new(k, c, &p, err, sizeof err), KLOG_ECONF);
    cr_assert(strstr(err, "compression.level") != NULL, "%s", err);
    klog_conf_free(c);
    c = ut_conf("compression.type", "gzip", "compression.level", "9", NULL);
    cr_assert_eq(klog_producer_new(k, c, &p, err, sizeof err), 0, "%s", err);
    klog_conf_free(c);
    klog_producer_close(p);
    /* a topic key in a producer conf is refused (issue 20: it used to be
     * ignored); zstd takes a level */
    c = ut_conf("retention.ms", "1000", "compression.type", "zstd", "compression.level", "19", NULL);
    cr_assert_eq(klog_producer_new(k, c, &p, err, sizeof err), KLOG_ECONF);
    cr_assert(strstr(err, "retention.ms: a topic key") != NULL, "%s", err);
    klog_conf_free(c);
    c = ut_conf("compression.type", "zstd", "compression.level", "19", NULL);
    cr_assert_eq(klog_producer_new(k, c, &p, err, sizeof err), 0, "%s", err);
    klog_conf_free(c);
    klog_producer_close(p);
    klog_close(k);
}

/* A producer's compression.level belongs to its own codec: a topic that
 * names another codec (gzip, whose levels stop at 9) gets its batches at
 * that codec's default, not at the producer's zstd level 19 (which gzip
 * would refuse, failing every batch). */
Test(producer, level_stays_with_the_producers_codec)
{
    klog *k = ut_open();
    ut_topic(k, "g", 1, "compression.type", "gzip", NULL);
    klog_producer *p = ut_producer(k, "compression.type", "zstd", "compression.level", "19", NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(ut_send(p, "g", 0, NULL, "a compressible value, a compressible value"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(dr.n, 200);
    cr_assert_eq(dr.errors, 0, "batches to a gzip topic failed");
    cr_assert_eq(ut_end_offset(k, "g", 0), 200);
    ut_dr_fini(&dr);
    cr_assert_eq(klog_close(k), 0);
}

Test(producer, reports_on_every_producer_config)
{
    /* enable.idempotence off, acks 0, lz4 with linger: still exactly once */
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    const char *confs[][6] = {
        { "enable.idempotence", "false", "acks", "0", "linger.ms", "1" },
        { "enable.idempotence", "true", "acks", "all", "compression.type", "lz4" },
        { "enable.idempotence", "false", "acks", "1", "compression.type", "zstd" },
    };
    int64_t base = 0;
    for (int ci = 0; ci < 3; ci++) {
        klog_producer *p = ut_producer(k, confs[ci][0], confs[ci][1], confs[ci][2], confs[ci][3], confs[ci][4],
                                       confs[ci][5], NULL);
        ut_dr dr;
        ut_dr_init(&dr);
        cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
        for (int i = 0; i < 500; i++) {
            char v[16];
            snprintf(v, sizeof v, "%d", i);
            cr_assert_eq(ut_send(p, "t", i % 2, NULL, v), 0);
        }
        cr_assert_eq(klog_producer_close(p), 0);
        cr_assert_eq(dr.n, 500, "conf %d", ci);
        cr_assert_eq(dr.errors, 0);
        bool seen[2][250] = { { false } };
        for (size_t j = 0; j < dr.n; j++) {
            int64_t o = dr.d[j].offset - base;
            cr_assert(o >= 0 && o < 250);
            cr_assert(!seen[dr.d[j].partition][o]);
            seen[dr.d[j].partition][o] = true;
        }
        ut_dr_fini(&dr);
        base += 250;
        cr_assert_eq(ut_end_offset(k, "t", 0), base);
        cr_assert_eq(ut_end_offset(k, "t", 1), base);
    }
    klog_close(k);
}

/* ---- batches finished by their sender, and a failure ahead of them ------------------------ */

/*
 * While the producer thread is busy writing (here every batch waits for an
 * fdatasync), the sender that seals a full batch finishes it itself
 * (header, compression, checksum), stamping the sequence number the log
 * will expect if every batch before it is written.  When one before it is
 * refused (the disk budget, policy refuse) and space comes back while it
 * is still queued, it must be restamped: the log takes it (no
 * KLOG_ESEQUENCE, a sequence gap), the written records keep consecutive
 * offsets in send order, and no record is written twice or lost silently.
 * A second thread frees space with DeleteRecords each time a new refusal
 * has been reported, so refusals and successes alternate while the sender
 * never stops, however fast or slow the machine (or the sanitizers) are.
 */
typedef struct {
    klog *k;
    ut_dr *dr;
    _Atomic bool stop;
} freer_arg;

static void *freer_main(void *arg)
{
    freer_arg *f = arg;
    size_t seen = 0;
    while (!atomic_load(&f->stop)) {
        ut_sleep_ms(2);
        pthread_mutex_lock(&f->dr->mu);
        size_t errors = f->dr->errors;
        pthread_mutex_unlock(&f->dr->mu);
        if (errors == seen)
            continue;
        seen = errors;
        int64_t lw;
        int rc = klog_topic_delete_records(f->k, "t", 0, -1, &lw);
        if (rc != 0)
            return (void *)(intptr_t)rc;
    }
    return NULL;
}

static int cmp_by_opaque(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const klog_delivery *)a)->opaque, y = (uintptr_t)((const klog_delivery *)b)->opaque;
    return x < y ? -1 : x > y;
}

/* Record number `no` to partition 0 of "t": key "k<no>", opaque no. */
static void send_numbered(klog_producer *p, uintptr_t no, const char *v, size_t vlen)
{
    char key[32];
    snprintf(key, sizeof key, "k%zu", (size_t)no);
    klog_record r = KLOG_RECORD_INIT;
    r.partition = 0;
    r.key = key;
    r.key_len = strlen(key);
    r.value = v;
    r.value_len = vlen;
    r.opaque = (void *)no;
    cr_assert_eq(klog_producer_send(p, "t", &r), 0);
}

static void refused_then_written(const char *codec, const char *batch_size)
{
    klog_conf *ic = ut_conf("disk.budget.bytes", "262144", "disk.budget.policy", "refuse", NULL);
    klog *k = NULL;
    char err[256] = "";
    cr_assert_eq(klog_open(&k, ut_dir, ic, err, sizeof err), 0, "%s", err);
    klog_conf_free(ic);
    ut_topic(k, "t", 1, "segment.bytes", "65536", NULL);
    klog_producer *p = ut_producer(k, "acks", "all", "linger.ms", "1000", "batch.size", batch_size,
                                   "compression.type", codec, NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    freer_arg f = { .k = k, .dr = &dr };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, freer_main, &f), 0);

    /* values that do not compress (xorshift), so lz4 fills the budget too */
    char v[600];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uintptr_t sent = 0;
    bool recovered = false; /* a record written after one was refused */
    while (!recovered && sent < 200000) {
        for (int i = 0; i < 500; i++) {
            for (size_t j = 0; j < sizeof v; j++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                v[j] = (char)('a' + x % 26);
            }
            send_numbered(p, ++sent, v, sizeof v);
        }
        /* look at what is reported so far, in send order */
        pthread_mutex_lock(&dr.mu);
        bool refused = false;
        size_t n = dr.n;
        klog_delivery *d = malloc(n * sizeof *d + 1);
        cr_assert_not_null(d);
        if (n)
            memcpy(d, dr.d, n * sizeof *d);
        pthread_mutex_unlock(&dr.mu);
        qsort(d, n, sizeof *d, cmp_by_opaque);
        for (size_t i = 0; i < n && !recovered; i++) {
            refused |= d[i].err != 0;
            recovered = refused && d[i].err == 0;
        }
        free(d);
    }
    atomic_store(&f.stop, true);
    void *frc;
    pthread_join(th, &frc);
    cr_assert_null(frc, "delete_records: %s", klog_err_name((int)(intptr_t)frc));
    cr_assert_eq(klog_producer_flush(p, 60000), 0);
    /* make room once more, and send a last 20: all written, after the rest */
    int64_t lw;
    cr_assert_eq(klog_topic_delete_records(k, "t", 0, -1, &lw), 0);
    const uintptr_t tail = 20;
    for (uintptr_t i = 0; i < tail; i++)
        send_numbered(p, ++sent, v, sizeof v);
    cr_assert_eq(klog_producer_flush(p, 60000), 0);

    cr_assert_eq(ut_dr_count(&dr), (size_t)sent, "one report per record");
    qsort(dr.d, dr.n, sizeof *dr.d, cmp_by_opaque);
    int64_t next = -1;
    size_t ok = 0, refused = 0, written_after_refusal = 0;
    for (size_t i = 0; i < dr.n; i++) {
        const klog_delivery *d = &dr.d[i];
        cr_assert_eq((uintptr_t)d->opaque, i + 1);
        if (d->err) {
            cr_assert_eq(d->err, KLOG_EDISKFULL, "record %zu: %s (a restamping bug shows as KLOG_ESEQUENCE)",
                         i + 1, klog_err_name(d->err));
            cr_assert_lt(i, dr.n - tail, "the last records were sent with room to spare");
            refused++;
            continue;
        }
        if (next >= 0)
            cr_assert_eq(d->offset, next, "record %zu at %" PRId64 ", expected %" PRId64, i + 1, d->offset, next);
        next = d->offset + 1;
        ok++;
        written_after_refusal += refused > 0;
    }
    cr_assert(recovered && refused > 0 && written_after_refusal > 0,
              "%s: %zu sent, %zu refused, %zu written after a refusal", codec, (size_t)sent, refused,
              written_after_refusal);
    cr_assert_eq(ut_end_offset(k, "t", 0), next, "nothing written but what was acknowledged");
    cr_assert_eq(dr.d[dr.n - tail].offset, lw, "the last 20 follow what was there");

    /* the log holds the last 20 exactly, in order */
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    size_t n;
    ut_msg *got = ut_consume(c, tail, &n);
    cr_assert_eq(n, tail);
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%zu", (size_t)(sent - tail + 1 + i));
        cr_assert_eq(got[i].offset, lw + (int64_t)i);
        cr_assert(got[i].key_len == strlen(key) && !memcmp(got[i].key, key, got[i].key_len));
    }
    ut_msgs_free(got, n);
    klog_consumer_close(c);
    cr_assert_eq(klog_producer_close(p), KLOG_EDISKFULL, "close reports the first failure");
    ut_dr_fini(&dr);
    cr_assert_eq(klog_close(k), 0);
}

Test(producer, sender_finished_batches_restamped_after_a_refused_one) { refused_then_written("none", "4096"); }
Test(producer, sender_finished_batches_restamped_after_a_refused_one_lz4) { refused_then_written("lz4", "4096"); }
Test(producer, sender_finished_batches_restamped_after_a_refused_one_zstd) { refused_then_written("zstd", "4096"); }
/* batches of 16 KiB and more: finished by the compression threads
 * (compression.threads), restamped the same way (a restamp is needed in
 * some runs only: the sender-finished variants above are the sure ones) */
Test(producer, pool_finished_batches_restamped_after_a_refused_one_zstd) { refused_then_written("zstd", "32768"); }

/* Issue 20: `produce -X retention.ms=1000` used to be accepted and ignored.
 * A producer or consumer conf holding a topic or instance key is refused
 * with the scope the key belongs to; producer and consumer keys may share
 * one client conf (as librdkafka's); Kafka's spellings are topic keys too. */
Test(producer, keys_of_another_scope_are_refused_naming_it)
{
    klog *k = ut_open();
    static const char *const bad[][3] = {
        { "retention.ms", "1000", "retention.ms: a topic key, not a producer or consumer key" },
        { "retention.hours", "1", "retention.ms: a topic key, not a producer or consumer key" },
        { "io.backend", "posix", "io.backend: an instance key, not a producer or consumer key" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        klog_conf *c = ut_conf(bad[i][0], bad[i][1], NULL);
        klog_producer *p = NULL;
        klog_consumer *cons = NULL;
        char e[256] = "";
        cr_assert_eq(klog_producer_new(k, c, &p, e, sizeof e), KLOG_ECONF, "%s", bad[i][0]);
        cr_assert_null(p);
        cr_assert_str_eq(e, bad[i][2]);
        e[0] = '\0';
        cr_assert_eq(klog_consumer_new(k, c, &cons, e, sizeof e), KLOG_ECONF, "%s", bad[i][0]);
        cr_assert_null(cons);
        cr_assert_str_eq(e, bad[i][2]);
        klog_conf_free(c);
    }
    /* a shared client conf still works for both */
    klog_conf *c = ut_conf("acks", "all", "auto.offset.reset", "earliest", "client.id", "me", NULL);
    klog_producer *p = NULL;
    klog_consumer *cons = NULL;
    char e[256] = "";
    cr_assert_eq(klog_producer_new(k, c, &p, e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog_consumer_new(k, c, &cons, e, sizeof e), 0, "%s", e);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(klog_consumer_close(cons), 0);
    klog_conf_free(c);
    cr_assert_eq(klog_close(k), 0);
}
