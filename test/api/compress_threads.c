/*
 * The producer's compression threads (compression.threads, issue 21),
 * through the public API only: batches of several partitions compressed
 * side by side, finishing in any order, must still reach each partition in
 * the order they were sealed, with every record reported once at the
 * offset it is read back from; close with batches still being compressed
 * waits for them; the key starts that many threads and 0 starts none.
 *
 * Batches are small (batch.size 32768, about 200 records; the threads take
 * batches of 16 KiB and more) so that dozens are
 * in flight at once, and there are more compression threads than CPUs, so
 * that a later batch often finishes before an earlier one.  No assertion
 * depends on speed.
 */
#include "util.h"

#include <dirent.h>
#include <stdatomic.h>

TestSuite(compress_threads, .init = ut_mkdir, .fini = ut_rmdir);

#define PT_SENDERS 4
#define PT_PARTS 3
#define PT_PER_SENDER 6000
#define PT_TOTAL (PT_SENDERS * PT_PER_SENDER)

/* Threads of this process named `name` (/proc/self/task/<tid>/comm). */
static int threads_named(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the thread ended meanwhile */
        if (fgets(comm, sizeof comm, f)) {
            comm[strcspn(comm, "\n")] = 0;
            n += !strcmp(comm, name);
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Record `seq` of sender `s`: to partition seq % PT_PARTS, a value that
 * says who sent it and when, padded with compressible text. */
typedef struct pt_value {
    uint32_t sender, seq;
    char text[120];
} pt_value;

typedef struct pt_state {
    klog_producer *p;
    _Atomic uint32_t *seen;  /* reports per record id */
    int64_t *off;            /* reported offset per id */
    _Atomic uint32_t errors;
} pt_state;

typedef struct pt_sender {
    pt_state *s;
    uint32_t id;
    int rc;
} pt_sender;

static void pt_fill(pt_value *v, uint32_t sender, uint32_t seq)
{
    memset(v, 0, sizeof *v);
    v->sender = sender;
    v->seq = seq;
    snprintf(v->text, sizeof v->text, "{\"sender\":%u,\"seq\":%u,\"site\":\"plant-berlin-03\",\"status\":\"ok\"}",
             sender, seq);
}

static void pt_report(void *arg, const klog_delivery *d)
{
    pt_state *s = arg;
    uintptr_t id = (uintptr_t)d->opaque - 1;
    if (id >= PT_TOTAL || d->err) {
        atomic_fetch_add(&s->errors, 1);
        return;
    }
    s->off[id] = d->offset;
    atomic_fetch_add(&s->seen[id], 1);
}

static void *pt_send(void *arg)
{
    pt_sender *t = arg;
    for (uint32_t seq = 0; seq < PT_PER_SENDER && !t->rc; seq++) {
        pt_value v;
        pt_fill(&v, t->id, seq);
        char key[16];
        snprintf(key, sizeof key, "s%u", t->id);
        klog_record r = KLOG_RECORD_INIT;
        r.partition = (int32_t)(seq % PT_PARTS);
        r.key = key;
        r.key_len = strlen(key);
        r.value = &v;
        r.value_len = sizeof v;
        r.opaque = (void *)(uintptr_t)(t->id * PT_PER_SENDER + seq + 1);
        t->rc = klog_producer_send(t->s->p, "t", &r);
    }
    return NULL;
}

/*
 * PT_SENDERS threads send to PT_PARTS partitions through one producer with
 * `threads` compression threads, then close it (with `flush` first, or
 * not: close must wait for the batches still compressing).  Read back:
 * every record once, offsets dense, each sender's records in each
 * partition in the order it sent them, each at its reported offset.
 */
static void order_kept(const char *codec, const char *threads, const char *acks, bool flush)
{
    klog *k = ut_open();
    ut_topic(k, "t", PT_PARTS, NULL);
    pt_state s = { 0 };
    s.seen = calloc(PT_TOTAL, sizeof *s.seen);
    s.off = calloc(PT_TOTAL, sizeof *s.off);
    cr_assert(s.seen && s.off);
    s.p = ut_producer(k, "compression.type", codec, "compression.threads", threads, "batch.size", "32768",
                      "linger.ms", "5", "acks", acks, NULL);
    cr_assert_eq(klog_producer_set_delivery_cb(s.p, pt_report, &s), 0);
    pthread_t th[PT_SENDERS];
    pt_sender ts[PT_SENDERS];
    for (uint32_t i = 0; i < PT_SENDERS; i++) {
        ts[i] = (pt_sender){ .s = &s, .id = i };
        cr_assert_eq(pthread_create(&th[i], NULL, pt_send, &ts[i]), 0);
    }
    for (int i = 0; i < PT_SENDERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < PT_SENDERS; i++)
        cr_assert_eq(ts[i].rc, 0, "sender %d: %s", i, klog_err_name(ts[i].rc));
    /* the threads asked for are there (started at the first batch to
     * compress, which the senders have sealed by now) */
    int want = atoi(threads);
    cr_assert_eq(threads_named("klog-compress"), want, "%s: %d compression threads, %d asked for", codec,
                 threads_named("klog-compress"), want);
    if (flush)
        cr_assert_eq(klog_producer_flush(s.p, -1), 0);
    cr_assert_eq(klog_producer_close(s.p), 0);
    cr_assert_eq(threads_named("klog-compress"), 0, "close ends the compression threads");

    /* every record reported once, without error, before close returned */
    cr_assert_eq(atomic_load(&s.errors), 0, "%s: failed or stray reports", codec);
    for (size_t id = 0; id < PT_TOTAL; id++)
        cr_assert_eq(atomic_load(&s.seen[id]), 1, "%s: record %zu reported %u times", codec, id,
                     atomic_load(&s.seen[id]));

    /* compressed on disk: the values shrink */
    klog_partition_info pi[PT_PARTS];
    for (int i = 0; i < PT_PARTS; i++)
        pi[i] = (klog_partition_info){ .struct_size = sizeof pi[i] };
    cr_assert_eq(klog_topic_describe(k, "t", pi, PT_PARTS, NULL, 0), PT_PARTS);
    uint64_t stored = 0;
    for (int i = 0; i < PT_PARTS; i++)
        stored += pi[i].size_bytes;
    cr_assert_lt(stored, (uint64_t)PT_TOTAL * sizeof(pt_value) / 2, "%s: %" PRIu64 " bytes stored", codec, stored);

    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", "max.poll.records", "10000", NULL);
    for (int p = 0; p < PT_PARTS; p++)
        cr_assert_eq(klog_consumer_assign(c, "t", p, KLOG_OFFSET_BEGINNING), 0);
    size_t n;
    ut_msg *m = ut_consume(c, PT_TOTAL, &n);
    cr_assert_eq(n, PT_TOTAL, "%s: read %zu of %d", codec, n, PT_TOTAL);
    int64_t next_off[PT_PARTS] = { 0 };
    int64_t last[PT_PARTS][PT_SENDERS];
    for (int p = 0; p < PT_PARTS; p++)
        for (int i = 0; i < PT_SENDERS; i++)
            last[p][i] = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t p = m[i].partition;
        cr_assert(p >= 0 && p < PT_PARTS);
        cr_assert_eq(m[i].offset, next_off[p], "%s: partition %d: offset %" PRId64 " after %" PRId64, codec, p,
                     m[i].offset, next_off[p] - 1);
        next_off[p]++;
        cr_assert_eq(m[i].value_len, sizeof(pt_value));
        pt_value v, want_v;
        memcpy(&v, m[i].value, sizeof v);
        cr_assert(v.sender < PT_SENDERS && v.seq < PT_PER_SENDER);
        pt_fill(&want_v, v.sender, v.seq);
        cr_assert_eq(memcmp(&v, &want_v, sizeof v), 0, "%s: a value changed on its way", codec);
        cr_assert_eq((int32_t)(v.seq % PT_PARTS), p);
        cr_assert_gt((int64_t)v.seq, last[p][v.sender], "%s: partition %d: sender %u's record %u after its %" PRId64,
                     codec, p, v.sender, v.seq, last[p][v.sender]);
        last[p][v.sender] = v.seq;
        size_t id = (size_t)v.sender * PT_PER_SENDER + v.seq;
        cr_assert_eq(m[i].offset, s.off[id], "%s: reported at %" PRId64 ", read at %" PRId64, codec, s.off[id],
                     m[i].offset);
    }
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    free((void *)s.seen);
    free(s.off);
    cr_assert_eq(klog_close(k), 0);
}

Test(compress_threads, partition_order_kept_zstd) { order_kept("zstd", "4", "1", true); }
Test(compress_threads, partition_order_kept_lz4) { order_kept("lz4", "3", "1", true); }
Test(compress_threads, partition_order_kept_gzip) { order_kept("gzip", "2", "1", true); }
Test(compress_threads, partition_order_kept_snappy) { order_kept("snappy", "1", "1", true); }
Test(compress_threads, partition_order_kept_acks_all) { order_kept("zstd", "3", "all", true); }
Test(compress_threads, close_waits_for_batches_in_flight) { order_kept("zstd", "4", "1", false); }
/* 0: no compression threads; the sender and the writer compress, as before */
Test(compress_threads, none_with_zero) { order_kept("zstd", "0", "1", true); }

/* A producer that never compresses starts no compression thread, nor one
 * whose batches to compress are small (under 16 KiB: its writer compresses
 * them); a batch of 16 KiB or more to compress (here by the topic's
 * compression.type) does. */
Test(compress_threads, started_by_the_first_batch_to_compress)
{
    klog *k = ut_open();
    ut_topic(k, "plain", 1, NULL);
    ut_topic(k, "packed", 1, "compression.type", "zstd", NULL);
    klog_producer *p = ut_producer(k, "compression.threads", "2", "linger.ms", "1", NULL);
    static char big[20000];
    memset(big, 'x', sizeof big - 1);
    cr_assert_eq(ut_send(p, "plain", 0, "k", big), 0);
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(threads_named("klog-compress"), 0);
    cr_assert_eq(ut_send(p, "packed", 0, "k", "v"), 0);
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(threads_named("klog-compress"), 0, "a small batch is compressed by its writer");
    cr_assert_eq(ut_send(p, "packed", 0, "k", big), 0);
    cr_assert_eq(klog_producer_flush(p, -1), 0);
    cr_assert_eq(threads_named("klog-compress"), 2);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(threads_named("klog-compress"), 0);
    cr_assert_eq(klog_close(k), 0);
}

Test(compress_threads, bad_values)
{
    const char *bad[] = { "-2", "65", "two", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        klog_conf *c = NULL;
        cr_assert_eq(klog_conf_new(&c), 0);
        char err[256] = "";
        cr_assert_eq(klog_conf_set(c, "compression.threads", bad[i], err, sizeof err), KLOG_ECONF, "%s", bad[i]);
        klog_conf_free(c);
    }
}
