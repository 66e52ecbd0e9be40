/*
 * The consumer, through the public API only: zero-copy views and their
 * lifetime, seeks, positions and lag, assignment and reset policies,
 * several partitions, topics and consumers, blocking polls, wakeup and the
 * event fd, reopening an instance, bad input, headers.
 *
 * No assertion depends on speed: waits are bounded only as a guard against
 * a hang (a blocked poll that never returns fails the test instead).
 */
#include "util.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <pthread.h>

TestSuite(consumer, .init = ut_mkdir, .fini = ut_rmdir);

/* "value-<i>" padded with a pattern to `len` bytes (len >= 16). */
static void fill_value(char *buf, size_t len, int i)
{
    /* built without snprintf into buf: GCC 12 -O3 (release builds) takes
     * the pad loop after it for an overflow (-Wstringop-overflow) */
    char head[32];
    size_t n = (size_t)snprintf(head, sizeof head, "value-%06d:", i);
    for (size_t j = 0; j < len; j++)
        buf[j] = j < n ? head[j] : (char)('a' + (j + (size_t)i) % 26);
}

/* Produce `count` records to topic/part: key "k<i>", value fill_value(i,
 * vlen), timestamp ts0 + i * 1000 (0: at send).  `per_batch` records a
 * batch (0: all in one batch, sealed by the flush). */
static void produce(klog *k, const char *topic, int part, int first, int count, size_t vlen, int per_batch,
                    const char *compression, int64_t ts0)
{
    char batch[16];
    snprintf(batch, sizeof batch, "%d", per_batch > 0 ? per_batch : 1000000);
    klog_producer *p = ut_producer(k, "linger.ms", "900000", "batch.num.messages", batch, "compression.type",
                                   compression, NULL);
    char *v = malloc(vlen);
    for (int i = first; i < first + count; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        fill_value(v, vlen, i);
        klog_record r = KLOG_RECORD_INIT;
        r.partition = part;
        r.key = key;
        r.key_len = strlen(key);
        r.value = v;
        r.value_len = vlen;
        r.timestamp = ts0 ? ts0 + (int64_t)i * 1000 : 0;
        cr_assert_eq(klog_producer_send(p, topic, &r), 0);
    }
    free(v);
    cr_assert_eq(klog_producer_close(p), 0);
}

/* Does m hold record i as produce() wrote it? */
static bool is_record(const klog_message *m, int i, size_t vlen)
{
    char key[16], v[4096];
    snprintf(key, sizeof key, "k%d", i);
    if (vlen > sizeof v)
        return false;
    fill_value(v, vlen, i);
    return m->key && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0 && m->value &&
           m->value_len == vlen && memcmp(m->value, v, vlen) == 0;
}

/* A poll that tolerates one empty answer while records are known to be
 * there (no wait); returns the count. */
static int poll_some(klog_consumer *c, const klog_message *const **m)
{
    int n = 0;
    for (int tries = 0; tries < 1000 && n == 0; tries++) {
        n = klog_consumer_poll(c, 0, m);
        cr_assert_geq(n, 0, "poll: %s", klog_err_name(n));
        if (n == 0)
            ut_sleep_ms(1);
    }
    return n;
}

/* The next offset poll will return for topic/part. */
static int64_t position(klog_consumer *c, const char *topic, int part)
{
    int64_t o = -12345;
    int rc = klog_consumer_position(c, topic, part, &o);
    cr_assert_eq(rc, 0, "position %s/%d: %s", topic, part, klog_err_name(rc));
    return o;
}

static int64_t lag(klog_consumer *c, const char *topic, int part)
{
    int64_t l = -12345;
    int rc = klog_consumer_lag(c, topic, part, &l);
    cr_assert_eq(rc, 0, "lag %s/%d: %s", topic, part, klog_err_name(rc));
    return l;
}

/* ---- zero-copy views --------------------------------------------------------------- */

/* A poll hands out an array of pointers to records (klog/consumer.h), each
 * record carrying the library's sizeof: a field added to klog_message later
 * moves nothing a caller reads.  The array is the consumer's, set up when it
 * is created: every poll hands out the same one, so none is allocated per
 * poll, and with max.poll.records entries it holds every record a poll
 * returns, each pointing to a record of its own. */
Test(consumer, poll_hands_out_pointers_to_sized_records)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    produce(k, "t", 0, 0, 30, 40, 4, "lz4", 0);
    klog_consumer *c = ut_consumer(k, "max.poll.records", "8", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    const klog_message *const *first = NULL;
    int next = 0, polls = 0;
    while (next < 30) {
        const klog_message *const *m = NULL;
        int n = poll_some(c, &m);
        cr_assert(n > 0 && n <= 8, "poll returned %d", n);
        if (!first)
            first = m;
        cr_assert_eq(m, first, "poll %d handed out another array", polls);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(m[i]->struct_size, sizeof(klog_message), "record %d", next + i);
            cr_assert_eq(m[i]->offset, next + i);
            cr_assert_eq(m[i]->partition, 0);
            cr_assert_str_eq(m[i]->topic, "t");
            cr_assert(is_record(m[i], next + i, 40), "record %d", next + i);
            for (int j = 0; j < i; j++)
                cr_assert_neq(m[i], m[j], "records %d and %d share a struct", next + j, next + i);
        }
        next += n;
        polls++;
    }
    cr_assert_geq(polls, 4, "30 records in polls of at most 8");
    cr_assert_eq(klog_consumer_close(c), 0);
    klog_close(k);
}

static void views_valid_until_next_poll(const char *compression)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    produce(k, "t", 0, 0, 40, 300, 9, compression, 0); /* batches of 9: polls of 7 cut them */
    klog_consumer *c = ut_consumer(k, "max.poll.records", "7", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    int next = 0;
    while (next < 40) {
        const klog_message *const *m;
        int n = poll_some(c, &m);
        cr_assert(n > 0 && n <= 7, "poll returned %d", n);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(m[i]->offset, next + i);
            cr_assert(is_record(m[i], next + i, 300), "record %d", next + i);
        }
        /* calls other than poll leave the views alone: position, lag, a
         * seek to where we are, assigning another partition, new appends */
        int64_t pos = position(c, "t", 0);
        cr_assert_eq(pos, next + n);
        cr_assert_eq(lag(c, "t", 0), 40 - pos);
        cr_assert_eq(klog_consumer_seek(c, "t", 0, pos), 0);
        cr_assert_eq(klog_consumer_assign(c, "t", 1, KLOG_OFFSET_END), 0);
        cr_assert_eq(klog_consumer_unassign(c, "t", 1), 0);
        produce(k, "t", 1, next, 3, 300, 0, compression, 0);
        for (int i = 0; i < n; i++)
            cr_assert(is_record(m[i], next + i, 300), "record %d changed before the next poll", next + i);
        next += n;
    }
    const klog_message *const *m;
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    cr_assert_eq(klog_consumer_close(c), 0);
    klog_close(k);
}

Test(consumer, views_valid_until_next_poll)
{
    views_valid_until_next_poll("none");
}

Test(consumer, views_valid_until_next_poll_lz4)
{
    views_valid_until_next_poll("lz4");
}

Test(consumer, views_valid_until_next_poll_zstd)
{
    views_valid_until_next_poll("zstd");
}

static void views_survive_unassign(const char *compression)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    produce(k, "t", 0, 0, 60, 100, 0, compression, 0); /* one batch */
    klog_consumer *c = ut_consumer(k, "max.poll.records", "10", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    const klog_message *const *m;
    int n = poll_some(c, &m);
    cr_assert_eq(n, 10);
    /* the header's rule: valid until the next poll or close - unassign is
     * neither */
    cr_assert_eq(klog_consumer_unassign(c, "t", 0), 0);
    /* reuse freed memory of about the batch's size, as any allocation
     * might, so that a view left dangling shows in a normal build too */
    void *junk[64];
    for (int i = 0; i < 64; i++) {
        size_t sz = 60 * 120 - 2048 + (size_t)i * 64;
        junk[i] = malloc(sz);
        memset(junk[i], '#', sz);
    }
    for (int i = 0; i < n; i++)
        cr_assert(is_record(m[i], i, 100), "record %d changed after unassign, before the next poll", i);
    for (int i = 0; i < 64; i++)
        free(junk[i]);
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    klog_consumer_close(c);
    klog_close(k);
}

Test(consumer, views_valid_until_next_poll_gzip)
{
    views_valid_until_next_poll("gzip");
}

Test(consumer, views_valid_until_next_poll_snappy)
{
    views_valid_until_next_poll("snappy");
}

Test(consumer, views_survive_unassign)
{
    views_survive_unassign("none");
}

Test(consumer, views_survive_unassign_lz4)
{
    /*
     * Regression: unassign frees the partition's decompression buffer at
     * once, while messages of the last poll still point into it.
     */
    views_survive_unassign("lz4");
}

Test(consumer, views_survive_unassign_of_deleted_topic)
{
    /*
     * Regression: a message's topic string lives in the topic object; when
     * the topic was deleted, unassigning its last partition drops the last
     * reference and frees it while the last poll's messages point at it.
     */
    klog *k = ut_open();
    ut_topic(k, "gone", 1, NULL);
    produce(k, "gone", 0, 0, 5, 40, 1, "none", 0);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "gone", 0, 0), 0);
    cr_assert_eq(klog_topic_delete(k, "gone"), 0);
    /* an assigned consumer still reads what was there */
    const klog_message *const *m;
    int n = poll_some(c, &m);
    cr_assert_eq(n, 5);
    cr_assert_eq(klog_consumer_unassign(c, "gone", 0), 0);
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(m[i]->topic, "gone", "message %d's topic changed after unassign, before the next poll", i);
        cr_assert(is_record(m[i], i, 40), "record %d", i);
    }
    /* a new assign finds no such topic */
    cr_assert_eq(klog_consumer_assign(c, "gone", 0, 0), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    klog_consumer_close(c);
    klog_close(k);
}

/* ---- polls across compressed batches ----------------------------------------------- */

Test(consumer, compressed_batches_at_poll_boundaries)
{
    /*
     * Regression: when a poll takes the last record of a compressed batch
     * (max.poll.records reached exactly there), the next poll finds the
     * batch's iterator at its end, yet still counts the decompression
     * buffer as "in use by this poll" and refuses to decompress the next
     * batch: a no-wait poll returns nothing although records are there.
     */
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    produce(k, "t", 0, 0, 15, 50, 5, "lz4", 0); /* three batches of 5 */
    klog_consumer *c = ut_consumer(k, "max.poll.records", "5", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    for (int round = 0; round < 3; round++) {
        const klog_message *const *m;
        int n = klog_consumer_poll(c, 0, &m);
        cr_assert_eq(n, 5, "poll %d: %d records, with %d available", round, n, 15 - 5 * round);
        for (int i = 0; i < n; i++)
            cr_assert(is_record(m[i], 5 * round + i, 50));
    }
    klog_consumer_close(c);
    klog_close(k);
}

typedef struct bpoll {
    klog_consumer *c;
    int timeout;
    int rounds;
    int rc[8];
    int64_t first_offset[8];
    char first_value[8][64];
} bpoll;

/* Poll `rounds` times with `timeout` (runs on its own thread: no asserts). */
static void *bpoll_run(void *arg)
{
    bpoll *b = arg;
    for (int r = 0; r < b->rounds; r++) {
        const klog_message *const *m;
        b->rc[r] = klog_consumer_poll(b->c, b->timeout, &m);
        if (b->rc[r] > 0) {
            b->first_offset[r] = m[0]->offset;
            size_t l = m[0]->value_len < 63 ? m[0]->value_len : 63;
            memcpy(b->first_value[r], m[0]->value, l);
            b->first_value[r][l] = '\0';
        }
    }
    return NULL;
}

Test(consumer, compressed_batches_at_poll_boundaries_blocking)
{
    /*
     * Regression, the same fault seen through a waiting poll: the poll
     * finds nothing it may return, sees records available, and loops
     * without ever reaching its deadline - it spins for ever.
     */
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    produce(k, "t", 0, 0, 15, 50, 5, "zstd", 0);
    klog_consumer *c = ut_consumer(k, "max.poll.records", "5", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    bpoll b = { .c = c, .timeout = 1000, .rounds = 3 };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, bpoll_run, &b), 0);
    cr_assert_eq(ut_join_within(th, 20), 0, "three polls of 1 s each, 15 records there: still polling after 20 s");
    for (int r = 0; r < 3; r++) {
        cr_assert_eq(b.rc[r], 5, "poll %d returned %d", r, b.rc[r]);
        cr_assert_eq(b.first_offset[r], 5 * r);
    }
    klog_consumer_close(c);
    klog_close(k);
}

/* ---- seeks ---------------------------------------------------------------------------- */

/* The offset of the first record the next poll returns (-1: none). */
static int64_t next_offset(klog_consumer *c)
{
    const klog_message *const *m;
    int n = klog_consumer_poll(c, 0, &m);
    cr_assert_geq(n, 0, "poll: %s", klog_err_name(n));
    if (n == 0)
        n = poll_some(c, &m); /* tolerate one empty no-wait poll */
    return n > 0 ? m[0]->offset : -1;
}

static void seek_every_kind(int per_batch, const char *compression)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, "retention.ms", "-1", NULL);
    int64_t ts0 = 1600000000000; /* records at ts0, ts0 + 1000, ... */
    produce(k, "t", 0, 0, 10, 20, per_batch, compression, ts0);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);

    cr_assert_eq(klog_consumer_seek(c, "t", 0, 5), 0);
    cr_assert_eq(position(c, "t", 0), 5);
    cr_assert_eq(next_offset(c), 5);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    cr_assert_eq(position(c, "t", 0), 0);
    cr_assert_eq(next_offset(c), 0);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, 9), 0);
    cr_assert_eq(next_offset(c), 9);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, 3), 0, "backwards");
    cr_assert_eq(next_offset(c), 3);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, KLOG_OFFSET_END), 0);
    cr_assert_eq(position(c, "t", 0), 10);
    const klog_message *const *m;
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);

    /* by time: the first record at or after the timestamp */
    cr_assert_eq(klog_consumer_seek_time(c, "t", 0, ts0 + 3500), 0);
    cr_assert_eq(position(c, "t", 0), 4);
    cr_assert_eq(next_offset(c), 4);
    cr_assert_eq(klog_consumer_seek_time(c, "t", 0, ts0 + 6000), 0, "exactly a record's timestamp");
    cr_assert_eq(next_offset(c), 6);
    cr_assert_eq(klog_consumer_seek_time(c, "t", 0, ts0 + 1), 0);
    cr_assert_eq(next_offset(c), 1);
    cr_assert_eq(klog_consumer_seek_time(c, "t", 0, 0), 0, "before every record");
    cr_assert_eq(next_offset(c), 0);
    cr_assert_eq(klog_consumer_seek_time(c, "t", 0, ts0 + 9001), 0, "after every record: the end");
    cr_assert_eq(position(c, "t", 0), 10);
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);

    /* past the end: auto.offset.reset (latest by default) puts it at the end */
    cr_assert_eq(klog_consumer_seek(c, "t", 0, 3), 0);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, 11), 0);
    cr_assert_eq(position(c, "t", 0), 10);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, INT64_MAX), 0);
    cr_assert_eq(position(c, "t", 0), 10);
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    /* and what comes next is read from there */
    produce(k, "t", 0, 10, 1, 20, 1, "none", ts0);
    cr_assert_eq(next_offset(c), 10);

    /* bad seeks leave the position alone */
    cr_assert_eq(klog_consumer_seek(c, "t", 0, 2), 0);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, -7), -EINVAL);
    cr_assert_eq(klog_consumer_seek(c, "t", 1, 0), -ENOENT, "not assigned");
    cr_assert_eq(klog_consumer_seek(c, "u", 0, 0), -ENOENT);
    cr_assert_eq(klog_consumer_seek_time(c, "t", 1, 0), -ENOENT);
    cr_assert_eq(position(c, "t", 0), 2);
    klog_consumer_close(c);

    /* with "earliest", past the end resets to the beginning; with "none" it
     * is an error */
    c = ut_consumer(k, "auto.offset.reset", "earliest", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 7), 0);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, 50), 0);
    cr_assert_eq(position(c, "t", 0), 0);
    klog_consumer_close(c);
    c = ut_consumer(k, "auto.offset.reset", "none", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 7), 0);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, 50), KLOG_EOFFSET);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, 11), 0, "the end itself is in range");
    cr_assert_eq(klog_consumer_seek(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    cr_assert_eq(next_offset(c), 0);
    klog_consumer_close(c);
    klog_close(k);
}

Test(consumer, seek_every_kind_one_record_batches)
{
    seek_every_kind(1, "none");
}

Test(consumer, seek_every_kind_within_one_batch)
{
    seek_every_kind(0, "none");
}

Test(consumer, seek_every_kind_within_one_compressed_batch)
{
    seek_every_kind(0, "zstd");
}

/* ---- assignment and reset policy --------------------------------------------------------- */

Test(consumer, assign_default_offset_follows_auto_offset_reset)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    produce(k, "t", 0, 0, 5, 20, 1, "none", 0);
    const klog_message *const *m;

    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_DEFAULT), 0);
    cr_assert_eq(position(c, "t", 0), 0);
    size_t n;
    ut_msg *got = ut_consume(c, 5, &n);
    cr_assert_eq(n, 5);
    ut_msgs_free(got, n);
    klog_consumer_close(c);

    c = ut_consumer(k, "auto.offset.reset", "latest", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_DEFAULT), 0);
    cr_assert_eq(position(c, "t", 0), 5);
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    produce(k, "t", 0, 5, 1, 20, 1, "none", 0);
    cr_assert_eq(poll_some(c, &m), 1);
    cr_assert_eq(m[0]->offset, 5);
    klog_consumer_close(c);

    c = ut_consumer(k, NULL); /* latest is the default */
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_DEFAULT), 0);
    cr_assert_eq(position(c, "t", 0), 6);
    klog_consumer_close(c);

    c = ut_consumer(k, "auto.offset.reset", "none", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_DEFAULT), KLOG_EOFFSET);
    int64_t o;
    cr_assert_eq(klog_consumer_position(c, "t", 0, &o), -ENOENT, "a failed assign assigns nothing");
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 2), 0);
    cr_assert_eq(position(c, "t", 0), 2);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    cr_assert_eq(position(c, "t", 0), 0);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_END), 0);
    cr_assert_eq(position(c, "t", 0), 6);
    klog_consumer_close(c);
    klog_close(k);
}

Test(consumer, assign_explicit_offset_out_of_range)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    produce(k, "t", 0, 0, 5, 20, 1, "none", 0);
    struct {
        const char *reset;
        int rc;
        int64_t pos;
    } cases[] = { { "latest", 0, 5 }, { "earliest", 0, 0 }, { "none", KLOG_EOFFSET, -1 } };
    for (int i = 0; i < 3; i++) {
        klog_consumer *c = ut_consumer(k, "auto.offset.reset", cases[i].reset, NULL);
        cr_assert_eq(klog_consumer_assign(c, "t", 0, 50), cases[i].rc, "%s", cases[i].reset);
        if (cases[i].rc == 0)
            cr_assert_eq(position(c, "t", 0), cases[i].pos, "%s", cases[i].reset);
        /* the end offset itself is in range; a negative one is no offset */
        cr_assert_eq(klog_consumer_assign(c, "t", 0, 5), 0, "%s", cases[i].reset);
        cr_assert_eq(position(c, "t", 0), 5);
        cr_assert_eq(klog_consumer_assign(c, "t", 0, -5), -EINVAL);
        /* assigning again moves the position */
        cr_assert_eq(klog_consumer_assign(c, "t", 0, 1), 0);
        cr_assert_eq(next_offset(c), 1);
        /* an out-of-range reassign under "none" keeps the partition */
        if (cases[i].rc) {
            cr_assert_eq(klog_consumer_assign(c, "t", 0, 99), KLOG_EOFFSET);
            int64_t o;
            cr_assert_eq(klog_consumer_position(c, "t", 0, &o), 0);
        }
        klog_consumer_close(c);
    }
    klog_close(k);
}

Test(consumer, position_and_lag)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    produce(k, "t", 0, 0, 12, 20, 4, "none", 0);
    klog_consumer *c = ut_consumer(k, "max.poll.records", "5", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    cr_assert_eq(klog_consumer_assign(c, "t", 1, KLOG_OFFSET_BEGINNING), 0);
    cr_assert_eq(position(c, "t", 0), 0);
    cr_assert_eq(lag(c, "t", 0), 12);
    cr_assert_eq(position(c, "t", 1), 0);
    cr_assert_eq(lag(c, "t", 1), 0, "empty partition");
    const klog_message *const *m;
    cr_assert_eq(poll_some(c, &m), 5);
    cr_assert_eq(position(c, "t", 0), 5);
    cr_assert_eq(lag(c, "t", 0), 7);
    cr_assert_eq(poll_some(c, &m), 5);
    cr_assert_eq(position(c, "t", 0), 10);
    cr_assert_eq(lag(c, "t", 0), 2);
    produce(k, "t", 0, 12, 3, 20, 1, "none", 0);
    cr_assert_eq(lag(c, "t", 0), 5, "lag follows appends");
    cr_assert_eq(klog_consumer_seek(c, "t", 0, KLOG_OFFSET_END), 0);
    cr_assert_eq(lag(c, "t", 0), 0);
    cr_assert_eq(position(c, "t", 0), 15);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, 3), 0);
    cr_assert_eq(lag(c, "t", 0), 12);
    int64_t v;
    cr_assert_eq(klog_consumer_position(c, "t", 2, &v), -ENOENT);
    cr_assert_eq(klog_consumer_lag(c, "t", 2, &v), -ENOENT);
    cr_assert_eq(klog_consumer_position(c, "nosuch", 0, &v), -ENOENT);
    cr_assert_eq(klog_consumer_lag(c, "nosuch", 0, &v), -ENOENT);
    klog_consumer_close(c);
    klog_close(k);
}

Test(consumer, unassign_stops_reading)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    produce(k, "t", 0, 0, 5, 20, 1, "none", 0);
    produce(k, "t", 1, 100, 5, 20, 1, "none", 0);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    cr_assert_eq(klog_consumer_assign(c, "t", 1, 0), 0);
    cr_assert_eq(klog_consumer_unassign(c, "t", 0), 0);
    cr_assert_eq(klog_consumer_unassign(c, "t", 0), -ENOENT, "twice");
    cr_assert_eq(klog_consumer_unassign(c, "t", 7), -ENOENT);
    cr_assert_eq(klog_consumer_unassign(c, "nosuch", 0), -ENOENT);
    int64_t v;
    cr_assert_eq(klog_consumer_position(c, "t", 0, &v), -ENOENT);
    size_t n;
    ut_msg *m = ut_consume(c, 5, &n);
    cr_assert_eq(n, 5);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(m[i].partition, 1);
    ut_msgs_free(m, n);
    /* appends to an unassigned partition are not read */
    produce(k, "t", 0, 5, 2, 20, 1, "none", 0);
    const klog_message *const *mm;
    cr_assert_eq(klog_consumer_poll(c, 0, &mm), 0);
    cr_assert_eq(klog_consumer_poll(c, 50, &mm), 0);
    /* unassign everything: polls return nothing, and a new assign works */
    cr_assert_eq(klog_consumer_unassign(c, "t", 1), 0);
    cr_assert_eq(klog_consumer_poll(c, 0, &mm), 0);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 3), 0);
    m = ut_consume(c, 4, &n);
    cr_assert_eq(n, 4);
    cr_assert_eq(m[0].offset, 3);
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    klog_close(k);
}

Test(consumer, several_partitions_and_topics)
{
    klog *k = ut_open();
    ut_topic(k, "a", 3, NULL);
    ut_topic(k, "b", 2, NULL);
    ut_topic(k, "unread", 1, NULL);
    int counts[5] = { 7, 0, 30, 12, 4 };
    for (int i = 0; i < 5; i++)
        if (counts[i])
            produce(k, i < 3 ? "a" : "b", i < 3 ? i : i - 3, 1000 * i, counts[i], 24, 5, i % 2 ? "lz4" : "none",
                    0);
    produce(k, "unread", 0, 0, 3, 24, 1, "none", 0);
    klog_consumer *c = ut_consumer(k, "max.poll.records", "9", NULL);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(klog_consumer_assign(c, i < 3 ? "a" : "b", i < 3 ? i : i - 3, 0), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 53, &n);
    cr_assert_eq(n, 53);
    int64_t next[5] = { 0 };
    for (size_t j = 0; j < n; j++) {
        cr_assert(strcmp(m[j].topic, "a") == 0 || strcmp(m[j].topic, "b") == 0, "%s", m[j].topic);
        int i = (m[j].topic[0] == 'a' ? 0 : 3) + m[j].partition;
        cr_assert_eq(m[j].offset, next[i], "%s/%d", m[j].topic, m[j].partition);
        char want[16];
        snprintf(want, sizeof want, "value-%06d:", 1000 * i + (int)next[i]);
        cr_assert_eq(strncmp(m[j].value, want, strlen(want)), 0);
        next[i]++;
    }
    for (int i = 0; i < 5; i++)
        cr_assert_eq(next[i], counts[i]);
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    klog_close(k);
}

Test(consumer, partitions_take_turns_from_where_the_last_poll_stopped)
{
    /*
     * Regression (issue 21, 4,096 partitions): each poll started one
     * partition past where the previous one had started, so it walked
     * again every partition the polls before it had emptied, and it
     * cleared its per-poll flags on every assigned partition.  Now a poll
     * starts after the partition the last one stopped at and clears the
     * flags only where the last poll went: a flag left set would stop a
     * partition's compressed batches for good (lz4 here).  An unassign
     * and an assign between polls move the entries.
     */
    klog *k = ut_open();
    ut_topic(k, "t", 8, NULL);
    for (int q = 0; q < 8; q++)
        produce(k, "t", q, 100 * q, 12, 40, 3, q % 2 ? "lz4" : "none", 0);
    klog_consumer *c = ut_consumer(k, "max.poll.records", "5", NULL);
    for (int q = 0; q < 8; q++)
        cr_assert_eq(klog_consumer_assign(c, "t", q, 0), 0);
    int64_t next[8] = { 0 };
    int order[8] = { 0, 1, 2, 3, 4, 5, 6, 7 }; /* the consumer's table */
    int total = 0, last = -1;
    for (int round = 0; round < 200 && total < 96; round++) {
        const klog_message *const *m;
        int n = poll_some(c, &m);
        cr_assert_gt(n, 0, "round %d: nothing, %d of 96 read", round, total);
        /* a full poll that stopped at partition `last` is followed by one
         * that starts past it (the next partition with records left) */
        if (last >= 0) {
            int at = 0;
            while (order[at] != last)
                at++;
            int want = order[(at + 1) % 8];
            for (int j = 2; next[want] == 12 && j <= 8; j++)
                want = order[(at + j) % 8];
            cr_assert_eq(m[0]->partition, want, "round %d starts at %d after a poll that stopped at %d", round,
                         m[0]->partition, last);
        }
        for (int i = 0; i < n; i++) {
            int q = m[i]->partition;
            cr_assert_eq(m[i]->offset, next[q], "partition %d", q);
            cr_assert(is_record(m[i], 100 * q + (int)next[q], 40));
            next[q]++;
        }
        total += n;
        last = n == 5 ? m[n - 1]->partition : -1;
        if (round == 4) { /* partition 2 leaves and comes back at the end of the table */
            cr_assert_eq(klog_consumer_unassign(c, "t", 2), 0);
            cr_assert_eq(klog_consumer_assign(c, "t", 2, next[2]), 0);
            memmove(&order[2], &order[3], 5 * sizeof *order);
            order[7] = 2;
            last = -1; /* the table changed: the next start is not said */
        }
    }
    cr_assert_eq(total, 96);
    for (int q = 0; q < 8; q++)
        cr_assert_eq(next[q], 12, "partition %d", q);
    klog_consumer_close(c);
    klog_close(k);
}

Test(consumer, many_assignments_found_by_name_and_partition)
{
    /*
     * The consumer finds an assigned partition through an index (a scan
     * per assign made 4,096 assigns quadratic, issue 21): assigning again
     * finds the entry, unassigning from the middle and the end moves the
     * others, and every lookup after that still finds each one, or none.
     */
    klog *k = ut_open();
    ut_topic(k, "a", 70, NULL);
    ut_topic(k, "b", 70, NULL);
    klog_consumer *c = ut_consumer(k, NULL);
    for (int q = 0; q < 70; q++)
        for (int t = 0; t < 2; t++)
            cr_assert_eq(klog_consumer_assign(c, t ? "b" : "a", q, 0), 0);
    for (int q = 0; q < 70; q += 3) /* again: the same entries */
        cr_assert_eq(klog_consumer_assign(c, "b", q, 0), 0);
    klog_partition_list *l = NULL;
    cr_assert_eq(klog_consumer_assignment(c, &l), 0);
    cr_assert_eq(klog_partition_list_count(l), 140);
    klog_partition_list_free(l);
    for (int q = 0; q < 70; q += 2)
        cr_assert_eq(klog_consumer_unassign(c, "a", q), 0, "a/%d", q);
    cr_assert_eq(klog_consumer_unassign(c, "b", 69), 0);
    cr_assert_eq(klog_consumer_unassign(c, "a", 0), -ENOENT);
    for (int q = 0; q < 70; q++)
        for (int t = 0; t < 2; t++) {
            int64_t o = -1;
            bool held = t ? q != 69 : q % 2 == 1;
            int rc = klog_consumer_position(c, t ? "b" : "a", q, &o);
            cr_assert_eq(rc == 0, held, "%s/%d: %s", t ? "b" : "a", q, klog_err_name(rc));
        }
    cr_assert_eq(klog_consumer_assign(c, "a", 0, 0), 0); /* back, at the end of the table */
    cr_assert_eq(klog_consumer_assignment(c, &l), 0);
    cr_assert_eq(klog_partition_list_count(l), 35 + 69 + 1);
    klog_partition_list_free(l);
    klog_consumer_close(c);
    klog_close(k);
}

Test(consumer, two_consumers_read_one_partition_independently)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    produce(k, "t", 0, 0, 20, 30, 3, "none", 0);
    klog_consumer *c1 = ut_consumer(k, "max.poll.records", "4", NULL);
    klog_consumer *c2 = ut_consumer(k, "max.poll.records", "100", NULL);
    cr_assert_eq(klog_consumer_assign(c1, "t", 0, 0), 0);
    cr_assert_eq(klog_consumer_assign(c2, "t", 0, 6), 0);
    const klog_message *const *m1, *const *m2;
    cr_assert_eq(poll_some(c1, &m1), 4);
    cr_assert_eq(poll_some(c2, &m2), 14);
    /* each poll invalidates only its own consumer's views */
    for (int i = 0; i < 4; i++)
        cr_assert(is_record(m1[i], i, 30));
    for (int i = 0; i < 14; i++)
        cr_assert(is_record(m2[i], 6 + i, 30));
    cr_assert_eq(position(c1, "t", 0), 4);
    cr_assert_eq(position(c2, "t", 0), 20);
    cr_assert_eq(klog_consumer_seek(c2, "t", 0, 0), 0);
    cr_assert_eq(position(c1, "t", 0), 4, "a seek of one moves only that one");
    cr_assert_eq(poll_some(c1, &m1), 4);
    cr_assert_eq(m1[0]->offset, 4);
    cr_assert_eq(poll_some(c2, &m2), 20);
    cr_assert_eq(m2[0]->offset, 0);
    klog_consumer_close(c2);
    cr_assert(is_record(m1[3], 7, 30), "closing one consumer leaves the other's views");
    klog_consumer_close(c1);
    klog_close(k);
}

Test(consumer, max_poll_records_is_respected)
{
    klog *k = ut_open();
    ut_topic(k, "t", 3, NULL);
    for (int p = 0; p < 3; p++)
        produce(k, "t", p, 0, 50, 16, 13, p == 1 ? "zstd" : "none", 0);
    const char *limits[] = { "1", "7", "500" };
    for (int l = 0; l < 3; l++) {
        int max = atoi(limits[l]);
        klog_consumer *c = ut_consumer(k, "max.poll.records", limits[l], NULL);
        for (int p = 0; p < 3; p++)
            cr_assert_eq(klog_consumer_assign(c, "t", p, 0), 0);
        int total = 0, polls = 0;
        while (total < 150 && polls < 10000) {
            const klog_message *const *m;
            int n = poll_some(c, &m);
            cr_assert(n >= 1 && n <= max, "max.poll.records=%d: poll returned %d", max, n);
            total += n;
            polls++;
        }
        cr_assert_eq(total, 150);
        if (max == 1)
            cr_assert_eq(polls, 150);
        const klog_message *const *m;
        cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
        klog_consumer_close(c);
    }
    klog_close(k);
}

/* ---- waiting --------------------------------------------------------------------------- */

Test(consumer, blocking_poll_returns_when_a_record_arrives)
{
    klog *k = ut_open();
    ut_topic(k, "t", 3, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "0", NULL);
    klog_consumer *c = ut_consumer(k, NULL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(klog_consumer_assign(c, "t", i, KLOG_OFFSET_END), 0);
    for (int round = 0; round < 3; round++) {
        bpoll b = { .c = c, .timeout = 5000, .rounds = 1 };
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, bpoll_run, &b), 0);
        ut_sleep_ms(20 * round); /* before or after it starts to wait: both must work */
        char v[16];
        snprintf(v, sizeof v, "wake-%d", round);
        cr_assert_eq(ut_send(p, "t", round, NULL, v), 0);
        cr_assert_eq(ut_join_within(th, 30), 0);
        /* returned with the record, not via its 5 s timeout */
        cr_assert_eq(b.rc[0], 1, "round %d: poll(5000) returned %d", round, b.rc[0]);
        cr_assert_str_eq(b.first_value[0], v);
    }
    klog_consumer_close(c);
    klog_producer_close(p);
    klog_close(k);
}

Test(consumer, poll_with_nothing_assigned_times_out)
{
    klog *k = ut_open();
    klog_consumer *c = ut_consumer(k, NULL);
    const klog_message *const *m = NULL;
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    int64_t t0 = ut_mono_ms();
    cr_assert_eq(klog_consumer_poll(c, 100, &m), 0);
    cr_assert_geq(ut_mono_ms() - t0, 90, "a 100 ms poll returned before its timeout with nothing to return");
    klog_consumer_close(c);
    klog_close(k);
}

Test(consumer, wakeup_ends_a_blocked_poll)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_END), 0);
    /* a poll blocked for ever */
    bpoll b = { .c = c, .timeout = -1, .rounds = 1, .rc = { -1 } };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, bpoll_run, &b), 0);
    ut_sleep_ms(50); /* let it block (it works either way) */
    cr_assert_eq(klog_consumer_wakeup(c), 0);
    cr_assert_eq(ut_join_within(th, 30), 0, "poll(-1) still blocked after a wakeup");
    cr_assert_eq(b.rc[0], 0);
    /* a wakeup before the poll makes the next one return at once */
    cr_assert_eq(klog_consumer_wakeup(c), 0);
    b = (bpoll){ .c = c, .timeout = -1, .rounds = 1, .rc = { -1 } };
    cr_assert_eq(pthread_create(&th, NULL, bpoll_run, &b), 0);
    cr_assert_eq(ut_join_within(th, 30), 0, "poll(-1) after a wakeup did not return");
    cr_assert_eq(b.rc[0], 0);
    /* and only that one: the next waits again (here, for a record) */
    b = (bpoll){ .c = c, .timeout = 5000, .rounds = 1, .rc = { -1 } };
    cr_assert_eq(pthread_create(&th, NULL, bpoll_run, &b), 0);
    produce(k, "t", 0, 0, 1, 20, 1, "none", 0);
    cr_assert_eq(ut_join_within(th, 30), 0);
    cr_assert_eq(b.rc[0], 1, "the poll after the woken one returned %d", b.rc[0]);
    klog_consumer_close(c);
    klog_close(k);
}

/* Is fd readable after waiting up to timeout_ms? */
static bool readable(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int r = poll(&pfd, 1, timeout_ms);
    cr_assert_geq(r, 0, "poll(2): %s", strerror(errno));
    return r == 1 && (pfd.revents & POLLIN);
}

Test(consumer, fd_turns_readable_when_records_arrive)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "0", NULL);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_END), 0);
    int fd = klog_consumer_fd(c);
    cr_assert_geq(fd, 0);
    cr_assert_eq(klog_consumer_fd(c), fd, "the same fd every time");
    const klog_message *const *m;
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
        cr_assert(!readable(fd, 0), "round %d: readable after a poll that returned nothing", round);
        char v[16];
        snprintf(v, sizeof v, "fd-%d", round);
        cr_assert_eq(ut_send(p, "t", 0, NULL, v), 0);
        cr_assert(readable(fd, 5000), "round %d: a record arrived, the fd did not turn readable", round);
        cr_assert_eq(klog_consumer_poll(c, 0, &m), 1);
        cr_assert_eq(m[0]->value_len, strlen(v));
        cr_assert_eq(memcmp(m[0]->value, v, strlen(v)), 0);
    }
    /* a partition assigned after the empty poll is watched too */
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    cr_assert(!readable(fd, 0));
    cr_assert_eq(klog_consumer_assign(c, "t", 1, KLOG_OFFSET_END), 0);
    cr_assert_eq(ut_send(p, "t", 1, NULL, "late"), 0);
    cr_assert(readable(fd, 5000), "a record on the newly assigned partition did not make the fd readable");
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 1);
    cr_assert_eq(m[0]->partition, 1);
    /* a wakeup makes it readable */
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    cr_assert_eq(klog_consumer_wakeup(c), 0);
    cr_assert(readable(fd, 5000));
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    klog_consumer_close(c);
    klog_producer_close(p);
    klog_close(k);
}

Test(consumer, fd_cleared_by_polls_that_take_the_records)
{
    /* Regression: the fd stayed readable after polls that took the records
     * it announced, so an event loop woke for ever on empty polls. */
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_consumer *c = ut_consumer(k, "max.poll.records", "2", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    int fd = klog_consumer_fd(c);
    const klog_message *const *m;
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    produce(k, "t", 0, 0, 3, 20, 0, "none", 0);
    cr_assert(readable(fd, 5000));
    /* two polls to take the three records, then an empty one */
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 2);
    /* the poll that takes the records clears what announced them: an
     * event loop that waits again after it is not woken for nothing */
    cr_assert(!readable(fd, 0), "readable after the poll that took the records it announced");
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 1);
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    cr_assert(!readable(fd, 0), "nothing left, yet the fd is readable");
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    cr_assert(!readable(fd, 0));
    klog_consumer_close(c);
    klog_close(k);
}

/* An event loop on the fd while another thread appends: every record is
 * delivered (a wakeup lost between a poll's drain and the append would
 * leave the loop asleep with records waiting) and the fd does not stay
 * readable with nothing to take (the loop would spin on empty polls). */
typedef struct fd_feed {
    klog_producer *p;
    int n;
} fd_feed;

static void *fd_feed_run(void *arg)
{
    fd_feed *f = arg;
    for (int i = 0; i < f->n; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        if (ut_send(f->p, "t", i % 2, NULL, v) != 0)
            return (void *)1;
        if (i % 7 == 0)
            usleep(50 + (unsigned)(i % 5) * 40);
    }
    return NULL;
}

Test(consumer, fd_event_loop_takes_every_record_while_appends_run)
{
    enum { N = 3000 };
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    klog_producer *p = ut_producer(k, "linger.ms", "0", NULL);
    klog_consumer *c = ut_consumer(k, "max.poll.records", "7", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    cr_assert_eq(klog_consumer_assign(c, "t", 1, 0), 0);
    int fd = klog_consumer_fd(c);
    fd_feed f = { p, N };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fd_feed_run, &f), 0);
    int got = 0, empty_wakeups = 0, sleeps = 0;
    const klog_message *const *m;
    while (got < N && sleeps < 20000) {
        int n;
        while ((n = klog_consumer_poll(c, 0, &m)) > 0)
            got += n;
        cr_assert_eq(n, 0);
        if (got >= N)
            break;
        sleeps++;
        if (!readable(fd, 2000)) {
            /* asleep for 2 s: nothing may have been waiting */
            n = klog_consumer_poll(c, 0, &m);
            cr_assert_eq(n, 0, "the fd slept through %d records (%d of %d taken)", n, got, N);
            continue;
        }
        if ((n = klog_consumer_poll(c, 0, &m)) > 0)
            got += n;
        else
            empty_wakeups++;
    }
    void *ret;
    pthread_join(th, &ret);
    cr_assert_null(ret, "a send failed");
    cr_assert_eq(got, N, "%d of %d records taken after %d sleeps", got, N, sleeps);
    /* a wakeup that raced a drain costs an empty poll, no more: far fewer
     * than the wakeups (a fd left readable would make one per turn) */
    cr_assert_lt(empty_wakeups, sleeps / 2 + 10, "%d empty wakeups in %d sleeps", empty_wakeups, sleeps);
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    cr_assert(!readable(fd, 0), "readable with nothing left");
    klog_consumer_close(c);
    klog_producer_close(p);
    klog_close(k);
}

/* ---- reopen ----------------------------------------------------------------------------- */

Test(consumer, reopen_keeps_everything_in_order)
{
    klog *k = ut_open();
    ut_topic(k, "t", 3, NULL);
    klog_producer *p = ut_producer(k, "compression.type", "lz4", NULL);
    int per[3] = { 0 };
    for (int i = 0; i < 900; i++) {
        char key[16], v[32];
        snprintf(key, sizeof key, "key-%d", i % 17);
        snprintf(v, sizeof v, "%d", i);
        cr_assert_eq(ut_send(p, "t", KLOG_PARTITION_ANY, key, v), 0);
    }
    cr_assert_eq(klog_producer_close(p), 0);
    for (int i = 0; i < 3; i++)
        per[i] = (int)ut_end_offset(k, "t", i);
    cr_assert_eq(per[0] + per[1] + per[2], 900);
    cr_assert_eq(klog_close(k), 0);

    k = ut_open();
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ut_end_offset(k, "t", i), per[i]);
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", NULL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(klog_consumer_assign(c, "t", i, KLOG_OFFSET_DEFAULT), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 900, &n);
    cr_assert_eq(n, 900);
    int64_t next[3] = { 0 };
    int last[17];
    int key_part[17];
    for (int i = 0; i < 17; i++)
        last[i] = key_part[i] = -1;
    bool seen[900] = { false };
    for (size_t j = 0; j < n; j++) {
        int part = m[j].partition;
        cr_assert_eq(m[j].offset, next[part]++);
        int v = atoi(m[j].value);
        cr_assert(v >= 0 && v < 900 && !seen[v]);
        seen[v] = true;
        int key = atoi(m[j].key + 4);
        cr_assert_eq(key, v % 17);
        if (key_part[key] < 0)
            key_part[key] = part;
        cr_assert_eq(key_part[key], part);
        cr_assert_gt(v, last[key], "key %d: %d read after %d", key, v, last[key]);
        last[key] = v;
    }
    ut_msgs_free(m, n);
    klog_consumer_close(c);

    /* produce more: offsets continue where they were */
    p = ut_producer(k, NULL);
    ut_dr dr;
    ut_dr_init(&dr);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ut_send(p, "t", i, NULL, "after-reopen"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    cr_assert_eq(dr.n, 3);
    for (size_t j = 0; j < dr.n; j++)
        cr_assert_eq(dr.d[j].offset, per[dr.d[j].partition], "partition %d", dr.d[j].partition);
    ut_dr_fini(&dr);
    c = ut_consumer(k, NULL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(klog_consumer_assign(c, "t", i, per[i]), 0);
    m = ut_consume(c, 3, &n);
    cr_assert_eq(n, 3);
    for (size_t j = 0; j < n; j++) {
        cr_assert_str_eq(m[j].value, "after-reopen");
        cr_assert_eq(m[j].offset, per[m[j].partition]);
    }
    ut_msgs_free(m, n);
    klog_consumer_close(c);
    cr_assert_eq(klog_close(k), 0);
}

/* ---- headers ----------------------------------------------------------------------------- */

Test(consumer, message_headers)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_producer *p = ut_producer(k, NULL);
    klog_header h[3] = { { "trace", 5, "abc123", 6 }, { "null", 4, NULL, 0 }, { "trace", 5, "", 0 } };
    klog_record r = KLOG_RECORD_INIT;
    r.partition = 0;
    r.value = "with headers";
    r.value_len = 12;
    r.headers = h;
    r.header_count = 3;
    cr_assert_eq(klog_producer_send(p, "t", &r), 0);
    cr_assert_eq(ut_send(p, "t", 0, "k", "no headers"), 0);
    cr_assert_eq(klog_producer_close(p), 0);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    const klog_message *const *m;
    cr_assert_eq(poll_some(c, &m), 2);
    cr_assert_eq(m[0]->header_count, 3);
    for (size_t i = 0; i < 3; i++) {
        const char *key = NULL;
        const void *value = (void *)1;
        size_t kl = 99, vl = 99;
        cr_assert_eq(klog_message_header(m[0], i, &key, &kl, &value, &vl), 0);
        cr_assert_eq(kl, h[i].key_len);
        cr_assert_eq(memcmp(key, h[i].key, kl), 0);
        if (h[i].value) {
            cr_assert_not_null(value, "header %zu: empty value read back as null", i);
            cr_assert_eq(vl, h[i].value_len);
            cr_assert_eq(memcmp(value, h[i].value, vl), 0);
        } else {
            cr_assert_null(value, "header %zu: null value read back as non-null", i);
            cr_assert_eq(vl, 0);
        }
    }
    const char *key;
    const void *value;
    size_t kl, vl;
    cr_assert_eq(klog_message_header(m[0], 3, &key, &kl, &value, &vl), -ENOENT);
    cr_assert_eq(klog_message_header(m[0], 1000000, &key, &kl, &value, &vl), -ENOENT);
    cr_assert_eq(klog_message_header(m[0], SIZE_MAX, &key, &kl, &value, &vl), -ENOENT);
    cr_assert_eq(klog_message_header(NULL, 0, &key, &kl, &value, &vl), -EINVAL);
    cr_assert_eq(klog_message_header(m[0], 0, NULL, &kl, &value, &vl), -EINVAL);
    cr_assert_eq(klog_message_header(m[0], 0, &key, NULL, &value, &vl), -EINVAL);
    cr_assert_eq(klog_message_header(m[0], 0, &key, &kl, NULL, &vl), -EINVAL);
    cr_assert_eq(klog_message_header(m[0], 0, &key, &kl, &value, NULL), -EINVAL);
    cr_assert_eq(m[1]->header_count, 0);
    cr_assert_eq(klog_message_header(m[1], 0, &key, &kl, &value, &vl), -ENOENT);
    klog_consumer_close(c);
    klog_close(k);
}

/* ---- bad input ---------------------------------------------------------------------------- */

Test(consumer, null_arguments)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    klog_consumer *c = (klog_consumer *)1;
    char err[256] = "";
    cr_assert_eq(klog_consumer_new(NULL, NULL, &c, err, sizeof err), -EINVAL);
    cr_assert_null(c);
    cr_assert_eq(klog_consumer_new(k, NULL, NULL, NULL, 0), -EINVAL);
    cr_assert_eq(klog_consumer_new(k, NULL, &c, NULL, 0), 0, "conf NULL means defaults");
    const klog_message *const *m;
    int64_t v;
    cr_assert_eq(klog_consumer_assign(NULL, "t", 0, 0), -EINVAL);
    cr_assert_eq(klog_consumer_assign(c, NULL, 0, 0), -EINVAL);
    cr_assert_eq(klog_consumer_unassign(NULL, "t", 0), -EINVAL);
    cr_assert_eq(klog_consumer_unassign(c, NULL, 0), -EINVAL);
    cr_assert_eq(klog_consumer_poll(NULL, 0, &m), -EINVAL);
    cr_assert_eq(klog_consumer_poll(c, 0, NULL), -EINVAL);
    cr_assert_eq(klog_consumer_seek(NULL, "t", 0, 0), -EINVAL);
    cr_assert_eq(klog_consumer_seek(c, NULL, 0, 0), -EINVAL);
    cr_assert_eq(klog_consumer_seek_time(NULL, "t", 0, 0), -EINVAL);
    cr_assert_eq(klog_consumer_seek_time(c, NULL, 0, 0), -EINVAL);
    cr_assert_eq(klog_consumer_position(NULL, "t", 0, &v), -EINVAL);
    cr_assert_eq(klog_consumer_position(c, NULL, 0, &v), -EINVAL);
    cr_assert_eq(klog_consumer_lag(NULL, "t", 0, &v), -EINVAL);
    cr_assert_eq(klog_consumer_lag(c, NULL, 0, &v), -EINVAL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    cr_assert_eq(klog_consumer_position(c, "t", 0, NULL), -EINVAL);
    cr_assert_eq(klog_consumer_lag(c, "t", 0, NULL), -EINVAL);
    cr_assert_eq(klog_consumer_wakeup(NULL), -EINVAL);
    cr_assert_eq(klog_consumer_fd(NULL), -EINVAL);
    cr_assert_eq(klog_consumer_close(NULL), 0);
    cr_assert_eq(klog_consumer_close(c), 0);
    klog_close(k);
}

Test(consumer, unknown_topic_partition_and_bad_names)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, NULL);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "nosuch", 0, 0), KLOG_EUNKNOWN_TOPIC);
    const char *bad[] = { "", ".", "..", "a/b", "sp ace", "star*" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(klog_consumer_assign(c, bad[i], 0, 0), KLOG_EBADNAME, "\"%s\"", bad[i]);
    cr_assert_eq(klog_consumer_assign(c, "t", 2, 0), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(klog_consumer_assign(c, "t", -1, 0), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(klog_consumer_assign(c, "t", INT32_MAX, 0), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, -3), -EINVAL);
    /* none of the failed assigns assigned anything */
    const klog_message *const *m;
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    int64_t v;
    cr_assert_eq(klog_consumer_position(c, "t", 0, &v), -ENOENT);
    cr_assert_eq(klog_consumer_position(c, "t", 2, &v), -ENOENT);
    /* a partition added later can be assigned */
    cr_assert_eq(klog_topic_add_partitions(k, "t", 3), 0);
    cr_assert_eq(klog_consumer_assign(c, "t", 2, 0), 0);
    klog_consumer_close(c);
    klog_close(k);
}

Test(consumer, bad_configuration)
{
    klog_conf *conf = NULL;
    cr_assert_eq(klog_conf_new(&conf), 0);
    struct {
        const char *key, *value;
    } bad[] = {
        { "auto.offset.reset", "smallest" },
        { "auto.offset.reset", "" },
        { "fetch.max.bytes", "0" },
        { "max.poll.records", "0" },
        { "max.poll.records", "-1" },
        { "max.poll.records", "many" },
        { "check.crcs", "2" },
        { "session.timeout.ms", "0" },
        { "partition.assignment.strategy", "sticky" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        cr_assert_eq(klog_conf_set(conf, bad[i].key, bad[i].value, err, sizeof err), KLOG_ECONF, "%s=%s",
                     bad[i].key, bad[i].value);
        cr_assert(strstr(err, bad[i].key) != NULL, "message \"%s\" does not name %s", err, bad[i].key);
    }
    /* a group.id that is not a valid group name is refused by name */
    char bad_group[300];
    memset(bad_group, 'g', sizeof bad_group - 1);
    bad_group[sizeof bad_group - 1] = '\0';
    cr_assert_eq(klog_conf_set(conf, "group.id", bad_group, NULL, 0), KLOG_ECONF, "longer than a string key holds");
    cr_assert_eq(klog_conf_set(conf, "group.id", "bad\tname", NULL, 0), 0);
    klog *k = ut_open();
    klog_consumer *c = (klog_consumer *)1;
    char err[256] = "";
    cr_assert_eq(klog_consumer_new(k, conf, &c, err, sizeof err), KLOG_EBADNAME);
    cr_assert_null(c);
    cr_assert(strstr(err, "group.id") != NULL, "message: \"%s\"", err);
    cr_assert_eq(klog_consumer_new(k, conf, &c, NULL, 0), KLOG_EBADNAME, "no errbuf: still the code");
    /* a group consumer is refused explicit assignment once subscribed, and
     * subscription once assigned explicitly */
    cr_assert_eq(klog_conf_set(conf, "group.id", "billing", NULL, 0), 0);
    cr_assert_eq(klog_consumer_new(k, conf, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(klog_topic_create(k, "bc", 1, NULL, NULL, 0), 0);
    const char *subs[] = { "bc" };
    cr_assert_eq(klog_consumer_subscribe(c, subs, 1), 0);
    cr_assert_eq(klog_consumer_assign(c, "bc", 0, 0), KLOG_ESTATE);
    cr_assert_eq(klog_consumer_unsubscribe(c), 0);
    cr_assert_eq(klog_consumer_assign(c, "bc", 0, 0), 0);
    cr_assert_eq(klog_consumer_subscribe(c, subs, 1), KLOG_ESTATE);
    klog_consumer_close(c);
    /* an empty group.id is no group */
    cr_assert_eq(klog_conf_set(conf, "group.id", "", NULL, 0), 0);
    cr_assert_eq(klog_consumer_new(k, conf, &c, err, sizeof err), 0, "%s", err);
    klog_consumer_close(c);
    klog_conf_free(conf);
    klog_close(k);
}

/* ---- check.crcs: verified once per process --------------------------------------- */

#define CRC_PAD "-the-rest-of-the-value-padding-padding-padding"

/* 30 records "crc-NNN..." in three batches of ten, acks=all. */
static void crc_fill(klog *k)
{
    klog_producer *p = ut_producer(k, "acks", "all", NULL);
    char v[128];
    for (int i = 0; i < 30; i++) {
        snprintf(v, sizeof v, "crc-%03d" CRC_PAD, i);
        cr_assert_eq(ut_send(p, "t", 0, NULL, v), 0);
        if (i % 10 == 9)
            cr_assert_eq(klog_producer_flush(p, 30000), 0);
    }
    cr_assert_eq(klog_producer_close(p), 0);
}

/* Flip one bit of the first "needle" in the partition's first segment,
 * through write(2): the page cache, which the readers' mapping shows. */
static void crc_corrupt(const char *needle)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/t-0/00000000000000000000.log", ut_dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    static char buf[1 << 16];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    cr_assert_gt(n, 0);
    char *at = memmem(buf, (size_t)n, needle, strlen(needle));
    cr_assert_not_null(at, "%s not in %s", needle, path);
    char x = (char)(at[5] ^ 0x01); /* "crc-015" -> "crc-005" */
    cr_assert_eq(pwrite(fd, &x, 1, at + 5 - buf), 1);
    close(fd);
}

/* Read partition t-0 from its start with a new consumer (check.crcs as
 * given, NULL: the default) until an error or 30 records; the records in
 * *got, the value of offset 15 in v15.  Returns 0 or the error. */
static int crc_read(klog *k, const char *check, int *got, char *v15, size_t v15size)
{
    klog_consumer *c = check ? ut_consumer(k, "check.crcs", check, NULL) : ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    int rc = 0;
    *got = 0;
    for (int tries = 0; tries < 1000 && *got < 30; tries++) {
        const klog_message *const *m;
        rc = klog_consumer_poll(c, 100, &m);
        if (rc < 0)
            break;
        for (int i = 0; i < rc; i++)
            if (m[i]->offset == 15 && v15)
                snprintf(v15, v15size, "%.*s", (int)m[i]->value_len, (const char *)m[i]->value);
        *got += rc;
        rc = 0;
    }
    cr_assert_eq(klog_consumer_close(c), 0);
    return rc;
}

/* check.crcs=true is not weakened by any proof: a batch corrupted on disk
 * after the instance that wrote it closed is caught by the next
 * instance's first read, every time, and never marked verified.  The
 * default (false) trusts the proof the writer left in the segment's index
 * files (synced, proven by it): it hands out the damaged value, as a Kafka
 * consumer without check.crcs would - until a checking read has failed on
 * the batch, after which nobody trusts the proof past it. */
Test(consumer, check_crcs_catches_a_batch_corrupted_after_close)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    crc_fill(k);
    int got;
    cr_assert_eq(crc_read(k, "true", &got, NULL, 0), 0);
    cr_assert_eq(got, 30); /* the writer reads its own batches (without checking them again) */
    klog_close(k);

    crc_corrupt("crc-015"); /* the second batch */
    k = ut_open();
    char v[128] = "";
    cr_assert_eq(crc_read(k, NULL, &got, v, sizeof v), 0);
    cr_assert_eq(got, 30);
    cr_assert_str_eq(v, "crc-005" CRC_PAD, "the default trusts the writer's proof");
    for (int i = 0; i < 2; i++) {
        int rc = crc_read(k, "true", &got, NULL, 0);
        cr_assert_eq(rc, KLOG_ECORRUPT, "read %d: %s after %d records", i, klog_err_name(rc), got);
        cr_assert_eq(got, 10, "read %d: the first batch, then the error", i);
    }
    int rc = crc_read(k, NULL, &got, NULL, 0);
    cr_assert_eq(rc, KLOG_ECORRUPT, "after a failed check the proof no longer covers the batch: %s",
                 klog_err_name(rc));
    cr_assert_eq(got, 10);
    klog_close(k);

    k = ut_open(); /* the next instance: check.crcs=true checks again */
    rc = crc_read(k, "true", &got, NULL, 0);
    cr_assert_eq(rc, KLOG_ECORRUPT, "%s", klog_err_name(rc));
    cr_assert_eq(got, 10);
    klog_close(k);
}

/* The proof is kept: a batch an instance verified (check.crcs=true) is
 * not verified again by its later readers (bytes changed under a running
 * instance go unseen: the price of reading at memory speed,
 * klog_consumer_new(3)); the next instance starts without proof and
 * checks again. */
Test(consumer, a_batch_verified_once_is_not_verified_again)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    crc_fill(k);
    klog_close(k);

    k = ut_open(); /* another instance: nothing proven in it (check.crcs=true takes no proof from disk) */
    int got;
    cr_assert_eq(crc_read(k, "true", &got, NULL, 0), 0);
    cr_assert_eq(got, 30);
    crc_corrupt("crc-025"); /* under the running instance */
    char v[128] = "";
    cr_assert_eq(crc_read(k, "true", &got, v, sizeof v), 0, "verified batches are not verified again");
    cr_assert_eq(got, 30);
    klog_close(k);

    k = ut_open();
    int rc = crc_read(k, "true", &got, NULL, 0);
    cr_assert_eq(rc, KLOG_ECORRUPT, "%s", klog_err_name(rc));
    cr_assert_eq(got, 20);
    klog_close(k);
}
