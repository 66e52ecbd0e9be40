/*
 * Retention, DeleteRecords, the disk budget and compaction, through the
 * public API: retention.ms (by record timestamps and by a moved clock),
 * retention.bytes, consumers that fall off the head, views that outlive
 * their segment, klog_topic_delete_records, the disk budget's two policies,
 * compacted topics (cleaning, tombstones, keyless sends, immunity to
 * retention and the budget), compact,delete, and klog_close during a
 * throttled cleaning pass.
 *
 * One internal hook is used: klog__set_clock, to move the clock retention
 * and the cleaner read without waiting hours; it is why this test links the
 * static core library instead of the shared one.  Everything else is
 * klog/klog.h.
 *
 * Background work (retention checks, cleaner passes) is waited for with a
 * bounded poll of klog_topic_describe: the bound is a guard against a hang,
 * never a measure of speed.  What the data directory holds (segment names,
 * file sizes) is read with readdir and nftw.
 */
#include "util.h"

#include <dirent.h>
#include <stdatomic.h>
#include <sys/stat.h>

/* lib/topic/internal.h (not API): the clock retention and the cleaner use,
 * for every log opened after the call. */
void klog__set_clock(klog *k, int64_t (*clock_ms)(void *), void *arg);

TestSuite(retention, .init = ut_mkdir, .fini = ut_rmdir);

#define WAIT_MS 10000 /* bound of every wait for background work */
#define HOUR_MS 3600000LL
#define DAY_MS (24 * HOUR_MS)

/* ---- helpers --------------------------------------------------------------------------- */

static _Atomic int64_t fake_now;

static int64_t fake_clock(void *arg) { return atomic_load((_Atomic int64_t *)arg); }

/* Open ut_dir with instance keys (pairs, NULL). */
static klog *open_with(const char *first, ...)
{
    klog_conf *c = NULL;
    cr_assert_eq(klog_conf_new(&c), 0);
    va_list ap;
    va_start(ap, first);
    for (const char *key = first; key; key = va_arg(ap, const char *)) {
        const char *val = va_arg(ap, const char *);
        char err[256] = "";
        int rc = klog_conf_set(c, key, val, err, sizeof err);
        cr_assert_eq(rc, 0, "conf %s=%s: %s (%s)", key, val, klog_err_name(rc), err);
    }
    va_end(ap);
    klog *k = NULL;
    char err[256] = "";
    int rc = klog_open(&k, ut_dir, c, err, sizeof err);
    klog_conf_free(c);
    cr_assert_eq(rc, 0, "klog_open %s: %s (%s)", ut_dir, klog_err_name(rc), err);
    return k;
}

static klog_partition_info info(klog *k, const char *topic, int part)
{
    klog_partition_info pi[8];
    memset(pi, 0, sizeof pi);
    pi[0].struct_size = sizeof pi[0];
    int n = klog_topic_describe(k, topic, pi, 8, NULL, 0);
    cr_assert_gt(n, part, "describe %s: %s", topic, klog_err_name(n));
    return pi[part];
}

static size_t seg_bases(const char *topic, int part, int64_t *out, size_t cap);

/* Wait until topic/part's start offset is at least `want`; returns it. */
static int64_t wait_start(klog *k, const char *topic, int part, int64_t want)
{
    int64_t give_up = ut_mono_ms() + WAIT_MS;
    klog_partition_info pi = info(k, topic, part);
    while (pi.start_offset < want && ut_mono_ms() < give_up) {
        ut_sleep_ms(2);
        pi = info(k, topic, part);
    }
    if (pi.start_offset < want) {
        /* say what the partition looks like, for a failure seen only under load */
        int64_t bases[64];
        size_t nb = seg_bases(topic, part, bases, 64);
        char list[512] = "";
        for (size_t i = 0, o = 0; i < nb && i < 64 && o < sizeof list - 24; i++)
            o += (size_t)snprintf(list + o, sizeof list - o, " %" PRId64, bases[i]);
        cr_assert_geq(pi.start_offset, want,
                      "%s/%d: start offset %" PRId64 ", still below %" PRId64 " after %d ms (segments at:%s; "
                      "clean offset %" PRId64 ", end %" PRId64 ")",
                      topic, part, pi.start_offset, want, WAIT_MS, list, pi.clean_offset, pi.end_offset);
    }
    return pi.start_offset;
}

/* "value-<i>" padded with a pattern to `len` bytes (len >= 16). */
static void fill_value(char *buf, size_t len, int64_t i)
{
    /* built without snprintf into buf: GCC 12 -O3 (release builds) takes
     * the pad loop after it for an overflow (-Wstringop-overflow) */
    char head[32];
    size_t n = (size_t)snprintf(head, sizeof head, "value-%06" PRId64 ":", i);
    for (size_t j = 0; j < len; j++)
        buf[j] = j < n ? head[j] : (char)('a' + (j + (size_t)i) % 26);
}

/* A producer with its delivery reports. */
typedef struct sender {
    klog_producer *p;
    ut_dr dr;
} sender;

/* batch: records per batch ("1": one batch each); linger is long, so the
 * flush at the end of every produce() seals the last batch. */
static void sender_open(sender *s, klog *k, const char *batch, const char *compression)
{
    s->p = ut_producer(k, "linger.ms", "900000", "batch.num.messages", batch, "compression.type", compression,
                       NULL);
    ut_dr_init(&s->dr);
    cr_assert_eq(klog_producer_set_delivery_cb(s->p, ut_dr_cb, &s->dr), 0);
}

/* Close the producer; returns klog_producer_close's code. */
static int sender_close(sender *s)
{
    int rc = klog_producer_close(s->p);
    ut_dr_fini(&s->dr);
    return rc;
}

/* Send records [first, first + count) to topic/part - record i has key
 * "k<i>", value fill_value(i, vlen) and timestamp ts0 + i (ts0 0: the send
 * time) - flush, and assert that record i was written at offset i: the
 * tests number records by their offsets. */
static void produce(sender *s, const char *topic, int part, int64_t first, int count, size_t vlen, int64_t ts0)
{
    size_t n0 = ut_dr_count(&s->dr);
    char *v = malloc(vlen);
    cr_assert_not_null(v);
    for (int64_t i = first; i < first + count; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%" PRId64, i);
        fill_value(v, vlen, i);
        klog_record r = KLOG_RECORD_INIT;
        r.partition = part;
        r.key = key;
        r.key_len = strlen(key);
        r.value = v;
        r.value_len = vlen;
        r.timestamp = ts0 ? ts0 + i : 0;
        r.opaque = (void *)(intptr_t)i;
        int rc = klog_producer_send(s->p, topic, &r);
        cr_assert_eq(rc, 0, "send %s/%d #%" PRId64 ": %s", topic, part, i, klog_err_name(rc));
    }
    free(v);
    cr_assert_eq(klog_producer_flush(s->p, 60000), 0);
    pthread_mutex_lock(&s->dr.mu);
    size_t n = s->dr.n;
    bool ok = n == n0 + (size_t)count;
    for (size_t j = n0; ok && j < n; j++) {
        const klog_delivery *d = &s->dr.d[j];
        ok = d->err == 0 && d->partition == part && d->offset == (int64_t)(intptr_t)d->opaque;
        if (!ok)
            cr_log_error("report %zu: record %" PRId64 " partition %d offset %" PRId64 " err %s", j,
                         (int64_t)(intptr_t)d->opaque, d->partition, d->offset, klog_err_name(d->err));
    }
    pthread_mutex_unlock(&s->dr.mu);
    cr_assert(ok, "%s/%d: %zu reports for %d records, not all written where expected", topic, part, n - n0,
              count);
}

/* Are key and value those produce() wrote for record i? */
static bool is_record(const void *key, size_t key_len, const void *value, size_t value_len, int64_t i,
                      size_t vlen)
{
    char k[32], v[4096];
    snprintf(k, sizeof k, "k%" PRId64, i);
    if (vlen > sizeof v)
        return false;
    fill_value(v, vlen, i);
    return key && key_len == strlen(k) && memcmp(key, k, key_len) == 0 && value && value_len == vlen &&
           memcmp(value, v, vlen) == 0;
}

/* Read topic/part over [from, to) with a new consumer and check that every
 * offset holds its record, none missing, none extra. */
static void check_range(klog *k, const char *topic, int part, int64_t from, int64_t to, size_t vlen)
{
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "none", NULL);
    cr_assert_eq(klog_consumer_assign(c, topic, part, from), 0);
    size_t n;
    ut_msg *m = ut_consume(c, (size_t)(to - from), &n);
    cr_assert_eq(n, (size_t)(to - from), "%s/%d: read %zu records over [%" PRId64 ", %" PRId64 ")", topic, part,
                 n, from, to);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(m[i].offset, from + (int64_t)i, "%s/%d: offset %" PRId64 " in place of %" PRId64, topic,
                     part, m[i].offset, from + (int64_t)i);
        cr_assert(is_record(m[i].key, m[i].key_len, m[i].value, m[i].value_len, m[i].offset, vlen),
                  "%s/%d: offset %" PRId64 " does not hold its record", topic, part, m[i].offset);
    }
    ut_msgs_free(m, n);
    klog_consumer_close(c);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool ends_with(const char *s, const char *sfx)
{
    size_t a = strlen(s), b = strlen(sfx);
    return a >= b && strcmp(s + a - b, sfx) == 0;
}

/* Base offsets of topic/part's segments on disk ("<20 digits>.log"),
 * sorted; returns how many (at most max). */
static size_t seg_bases(const char *topic, int part, int64_t *out, size_t max)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s-%d", ut_dir, topic, part);
    DIR *d = opendir(path);
    cr_assert_not_null(d, "opendir %s: %s", path, strerror(errno));
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t len = strlen(de->d_name);
        if (len == 24 && strcmp(de->d_name + 20, ".log") == 0 && n < max)
            out[n++] = strtoll(de->d_name, NULL, 10);
    }
    closedir(d);
    qsort(out, n, sizeof *out, cmp_i64);
    return n;
}

/* A deletion publishes the new start before its segments leave the list
 * and their files go (lib/storage/retention.c): so a start seen to move says
 * the pass has begun, not that it has ended.  Wait (bounded) until no
 * segment file below `start` is left on disk - the pass that moved the start
 * has then taken its segments off the list too - and return the bases of
 * the files there are, as seg_bases. */
static size_t wait_unlinked(const char *topic, int part, int64_t start, int64_t *bases, size_t max)
{
    int64_t give_up = ut_mono_ms() + WAIT_MS;
    size_t n = seg_bases(topic, part, bases, max);
    while (n > 0 && bases[0] < start && ut_mono_ms() < give_up) {
        ut_sleep_ms(2);
        n = seg_bases(topic, part, bases, max);
    }
    cr_assert(n == 0 || bases[0] >= start,
              "%s/%d: segment %" PRId64 " below the start %" PRId64 " still on disk after %d ms", topic, part,
              bases[0], start, WAIT_MS);
    return n;
}

/* The start offset retention must reach when every record below `first_new`
 * has expired and none from it on: the base of the segment holding
 * first_new (the segments wholly below it go, that one stays). */
static int64_t start_after_expiry(const char *topic, int part, int64_t first_new)
{
    int64_t bases[4096];
    size_t n = seg_bases(topic, part, bases, 4096);
    int64_t want = -1;
    for (size_t i = 0; i < n; i++)
        if (bases[i] <= first_new)
            want = bases[i];
    cr_assert_geq(want, 0, "no segment at or below offset %" PRId64, first_new);
    return want;
}

/* Every segment file of topic/part holds at most max bytes: a segment rolls
 * when the next batch would pass segment.bytes (batches here are smaller). */
static void check_segment_sizes(const char *topic, int part, uint64_t max)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s-%d", ut_dir, topic, part);
    DIR *d = opendir(path);
    cr_assert_not_null(d, "opendir %s: %s", path, strerror(errno));
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (!ends_with(de->d_name, ".log"))
            continue;
        char f[1024];
        struct stat st;
        snprintf(f, sizeof f, "%s/%s", path, de->d_name);
        if (stat(f, &st) != 0)
            continue; /* deleted meanwhile */
        cr_assert_leq((uint64_t)st.st_size, max, "%s/%d: segment %s holds %lld bytes, segment.bytes is %" PRIu64,
                      topic, part, de->d_name, (long long)st.st_size, max);
    }
    closedir(d);
}

/* What nftw finds under ut_dir. */
static uint64_t walk_bytes;   /* sizes of *.log, *.index, *.timeindex; the small files' blocks */
static uint64_t walk_meta;    /* topics.meta's blocks (the instance's, in no partition's share) */
static unsigned walk_leftovers; /* *.cleaned and *.swap files */

static int walk_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    const char *name = path + ftw->base;
    if (flag == FTW_F) {
        if (ends_with(name, ".log") || ends_with(name, ".index") || ends_with(name, ".timeindex"))
            walk_bytes += (uint64_t)st->st_size;
        /* the small files count by their blocks (issue 18) */
        if (!strcmp(name, "recovery.ckpt") || !strcmp(name, "recovery.pos") || !strcmp(name, "cleaner.ckpt") ||
            !strcmp(name, "leader-epoch-checkpoint"))
            walk_bytes += (uint64_t)st->st_blocks * 512;
        if (!strcmp(name, "topics.meta")) {
            walk_bytes += (uint64_t)st->st_blocks * 512;
            walk_meta += (uint64_t)st->st_blocks * 512;
        }
        if (ends_with(name, ".cleaned") || ends_with(name, ".swap"))
            walk_leftovers++;
    }
    return 0;
}

static void walk_dir(void)
{
    walk_bytes = 0;
    walk_meta = 0;
    walk_leftovers = 0;
    cr_assert_eq(nftw(ut_dir, walk_one, 16, FTW_PHYS), 0, "nftw %s: %s", ut_dir, strerror(errno));
}

/* ---- retention.ms ---------------------------------------------------------------------- */

Test(retention, retention_ms_deletes_exactly_the_expired_segments)
{
    klog *k = open_with("log.retention.check.interval.ms", "10", NULL);
    ut_topic(k, "t", 1, "segment.bytes", "4096", "retention.ms", "3600000", NULL);
    sender s;
    sender_open(&s, k, "1", "none");
    produce(&s, "t", 0, 0, 100, 200, ut_wall_ms() - DAY_MS); /* a day old: expired */
    produce(&s, "t", 0, 100, 50, 200, 0);                    /* now */
    int64_t want = start_after_expiry("t", 0, 100);
    cr_assert_gt(want, 0, "the old records fill several segments");

    int64_t start = wait_start(k, "t", 0, want);
    cr_assert_eq(start, want, "start %" PRId64 ": only the segments wholly below offset 100 may go (%" PRId64 ")",
                 start, want);
    int64_t bases[256];
    wait_unlinked("t", 0, start, bases, 256); /* the pass that moved the start has ended */
    ut_sleep_ms(50); /* several more checks: nothing else has expired */
    klog_partition_info pi = info(k, "t", 0);
    cr_assert_eq(pi.start_offset, want);
    cr_assert_eq(pi.end_offset, 150);
    cr_assert_eq(seg_bases("t", 0, bases, 256), pi.segments, "describe and the directory agree on the segments");
    cr_assert_eq(bases[0], want, "the first segment on disk starts at the start offset");
    check_range(k, "t", 0, want, 150, 200);

    /* below the start is gone for readers */
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "none", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, want - 1), KLOG_EOFFSET);
    klog_consumer_close(c);
    cr_assert_eq(sender_close(&s), 0);
    cr_assert_eq(klog_close(k), 0);
}

Test(retention, retention_ms_follows_the_injected_clock)
{
    klog *k = open_with("log.retention.check.interval.ms", "10", NULL);
    int64_t t0 = ut_wall_ms();
    atomic_store(&fake_now, t0);
    klog__set_clock(k, fake_clock, &fake_now);
    ut_topic(k, "t", 1, "segment.bytes", "4096", "retention.ms", "3600000", NULL);
    sender s;
    sender_open(&s, k, "1", "none");
    produce(&s, "t", 0, 0, 100, 200, t0 - 1000);          /* written "now" */
    produce(&s, "t", 0, 100, 50, 200, t0 + 2 * HOUR_MS); /* two hours ahead */
    ut_sleep_ms(100); /* many checks, the clock stands still: nothing expires */
    cr_assert_eq(info(k, "t", 0).start_offset, 0);

    /* 2 h later the first records are past retention.ms, the others not */
    int64_t want = start_after_expiry("t", 0, 100);
    cr_assert_gt(want, 0);
    atomic_store(&fake_now, t0 + 2 * HOUR_MS + 1000);
    cr_assert_eq(wait_start(k, "t", 0, want), want);
    ut_sleep_ms(50);
    cr_assert_eq(info(k, "t", 0).start_offset, want);
    check_range(k, "t", 0, want, 150, 200);

    /* 4 h later everything expired: the active segment is rolled and goes */
    atomic_store(&fake_now, t0 + 4 * HOUR_MS);
    cr_assert_eq(wait_start(k, "t", 0, 150), 150);
    int64_t bases[256];
    wait_unlinked("t", 0, 150, bases, 256); /* the pass that moved the start has ended */
    klog_partition_info pi = info(k, "t", 0);
    cr_assert_eq(pi.end_offset, 150);
    cr_assert_eq(pi.segments, 1);
    cr_assert_eq(pi.size_bytes, 0);

    /* and the log goes on from its end */
    produce(&s, "t", 0, 150, 10, 200, t0 + 4 * HOUR_MS);
    check_range(k, "t", 0, 150, 160, 200);
    cr_assert_eq(sender_close(&s), 0);
    cr_assert_eq(klog_close(k), 0);
}

/* ---- retention.bytes ------------------------------------------------------------------- */

Test(retention, retention_bytes_bounds_the_partition)
{
    const uint64_t rb = 16384, sb = 4096;
    klog *k = open_with("log.retention.check.interval.ms", "10", NULL);
    ut_topic(k, "t", 1, "segment.bytes", "4096", "retention.bytes", "16384", NULL);
    sender s;
    sender_open(&s, k, "1", "none");
    int64_t next = 0;
    for (int round = 0; round < 5; round++) {
        produce(&s, "t", 0, next, 60, 300, 0); /* ~22 KiB a round */
        next += 60;
        check_segment_sizes("t", 0, sb);
        int64_t give_up = ut_mono_ms() + WAIT_MS;
        klog_partition_info pi = info(k, "t", 0);
        while (pi.size_bytes > rb + sb && ut_mono_ms() < give_up) {
            ut_sleep_ms(2);
            pi = info(k, "t", 0);
        }
        cr_assert_leq(pi.size_bytes, rb + sb, "round %d: %" PRIu64 " bytes, retention.bytes %" PRIu64, round,
                      pi.size_bytes, rb);
        cr_assert_geq(pi.size_bytes, rb, "round %d: %" PRIu64 " bytes: retention took more than it must", round,
                      pi.size_bytes);
        cr_assert_gt(pi.start_offset, 0);
        cr_assert_eq(pi.end_offset, next);
        check_range(k, "t", 0, pi.start_offset, next, 300);
    }
    cr_assert_eq(sender_close(&s), 0);
    cr_assert_eq(klog_close(k), 0);
}

/* ---- consumers and the moving head -------------------------------------------------------- */

/* An instance on the fake clock with topic "t": records 0..99 written at
 * t0, 100..149 two hours later (by their timestamps; 200-byte values,
 * 4 KiB segments, retention.ms 1 h). */
static klog *head_setup(void)
{
    klog *k = open_with("log.retention.check.interval.ms", "10", NULL);
    int64_t t0 = ut_wall_ms();
    atomic_store(&fake_now, t0);
    klog__set_clock(k, fake_clock, &fake_now);
    ut_topic(k, "t", 1, "segment.bytes", "4096", "retention.ms", "3600000", NULL);
    sender s;
    sender_open(&s, k, "1", "none");
    produce(&s, "t", 0, 0, 100, 200, t0);
    produce(&s, "t", 0, 100, 50, 200, t0 + 2 * HOUR_MS);
    cr_assert_eq(sender_close(&s), 0);
    return k;
}

/* Move the clock past the first records' retention; returns the new start. */
static int64_t expire_head(klog *k)
{
    int64_t want = start_after_expiry("t", 0, 100);
    cr_assert_gt(want, 0);
    atomic_fetch_add(&fake_now, 2 * HOUR_MS + 1000);
    cr_assert_eq(wait_start(k, "t", 0, want), want);
    return want;
}

Test(retention, fallen_off_the_head_with_reset_none)
{
    klog *k = head_setup();
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "none", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    int64_t start = expire_head(k);
    const klog_message *const *m;
    int rc = klog_consumer_poll(c, 0, &m);
    cr_assert_eq(rc, KLOG_EOFFSET, "poll: %s", klog_err_name(rc));
    const char *msg = klog_strerror(rc);
    cr_assert(msg && strstr(msg, "offset"), "klog_strerror(KLOG_EOFFSET) = \"%s\"", msg ? msg : "(null)");
    /* reported once; the partition then waits for a seek */
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0);
    cr_assert_eq(klog_consumer_seek(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    size_t n;
    ut_msg *got = ut_consume(c, (size_t)(150 - start), &n);
    cr_assert_eq(n, (size_t)(150 - start));
    cr_assert_eq(got[0].offset, start);
    cr_assert_eq(got[n - 1].offset, 149);
    ut_msgs_free(got, n);
    klog_consumer_close(c);
    cr_assert_eq(klog_close(k), 0);
}

Test(retention, fallen_off_the_head_with_reset_earliest)
{
    klog *k = head_setup();
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    int64_t start = expire_head(k);
    size_t n;
    ut_msg *got = ut_consume(c, (size_t)(150 - start), &n);
    cr_assert_eq(n, (size_t)(150 - start), "read %zu records from the new start %" PRId64, n, start);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(got[i].offset, start + (int64_t)i);
        cr_assert(is_record(got[i].key, got[i].key_len, got[i].value, got[i].value_len, got[i].offset, 200));
    }
    ut_msgs_free(got, n);
    klog_consumer_close(c);
    cr_assert_eq(klog_close(k), 0);
}

Test(retention, fallen_off_the_head_with_reset_latest)
{
    klog *k = head_setup();
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "latest", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    expire_head(k);
    const klog_message *const *m;
    cr_assert_eq(klog_consumer_poll(c, 0, &m), 0, "reset to the end: nothing to read");
    int64_t pos = -1;
    cr_assert_eq(klog_consumer_position(c, "t", 0, &pos), 0);
    cr_assert_eq(pos, 150);
    sender s;
    sender_open(&s, k, "1", "none");
    produce(&s, "t", 0, 150, 5, 200, atomic_load(&fake_now));
    cr_assert_eq(sender_close(&s), 0);
    size_t n;
    ut_msg *got = ut_consume(c, 5, &n);
    cr_assert_eq(n, 5);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i].offset, 150 + (int64_t)i);
    ut_msgs_free(got, n);
    klog_consumer_close(c);
    cr_assert_eq(klog_close(k), 0);
}

Test(retention, views_outlive_the_segment_retention_deletes)
{
    klog *k = head_setup();
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", "max.poll.records", "10", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    const klog_message *const *m = NULL;
    int n = 0;
    for (int tries = 0; tries < 1000 && n == 0; tries++) {
        n = klog_consumer_poll(c, 0, &m);
        cr_assert_geq(n, 0, "poll: %s", klog_err_name(n));
        if (n == 0)
            ut_sleep_ms(1);
    }
    cr_assert_eq(n, 10);
    for (int i = 0; i < n; i++)
        cr_assert(is_record(m[i]->key, m[i]->key_len, m[i]->value, m[i]->value_len, i, 200));

    int64_t start = expire_head(k);
    int64_t bases[256];
    cr_assert_geq(wait_unlinked("t", 0, start, bases, 256), 1);
    cr_assert_eq(bases[0], start, "the segment the views point into is deleted");
    for (int i = 0; i < n; i++) {
        cr_assert_eq(m[i]->offset, i);
        cr_assert(is_record(m[i]->key, m[i]->key_len, m[i]->value, m[i]->value_len, i, 200),
                  "view of record %d changed after its segment was deleted", i);
    }

    /* the next polls go on (a reader inside a deleted segment may finish
     * what it holds) and reach the end in order, every record intact */
    int64_t last = 9, give_up = ut_mono_ms() + WAIT_MS;
    while (last < 149 && ut_mono_ms() < give_up) {
        n = klog_consumer_poll(c, 0, &m);
        cr_assert_geq(n, 0, "poll: %s", klog_err_name(n));
        for (int i = 0; i < n; i++) {
            cr_assert_gt(m[i]->offset, last);
            cr_assert(is_record(m[i]->key, m[i]->key_len, m[i]->value, m[i]->value_len, m[i]->offset, 200));
            last = m[i]->offset;
        }
        if (n == 0)
            ut_sleep_ms(1);
    }
    cr_assert_eq(last, 149);
    klog_consumer_close(c);
    cr_assert_eq(klog_close(k), 0);
}

/* ---- klog_topic_delete_records ------------------------------------------------------------- */

Test(retention, delete_records)
{
    klog *k = ut_open();
    ut_topic(k, "t", 2, "segment.bytes", "4096", NULL);
    sender s;
    sender_open(&s, k, "7", "none"); /* batches of 7: starts fall inside batches */
    produce(&s, "t", 0, 0, 200, 100, 0);
    produce(&s, "t", 1, 0, 50, 100, 0);

    int64_t lw = -1;
    cr_assert_eq(klog_topic_delete_records(k, "t", 0, 37, &lw), 0);
    cr_assert_eq(lw, 37);
    klog_partition_info pi = info(k, "t", 0);
    cr_assert_eq(pi.start_offset, 37);
    cr_assert_eq(pi.end_offset, 200);
    int64_t bases[256];
    size_t nb = seg_bases("t", 0, bases, 256);
    cr_assert(nb >= 1 && bases[0] <= 37 && (nb == 1 || bases[1] > 37),
              "only the segments wholly below 37 go (first two bases %" PRId64 ", %" PRId64 ")", bases[0],
              nb > 1 ? bases[1] : -1);
    check_range(k, "t", 0, 37, 200, 100);
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "none", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    size_t n;
    ut_msg *got = ut_consume(c, 163, &n);
    cr_assert_eq(n, 163);
    cr_assert_eq(got[0].offset, 37, "the first readable record is 37, inside its batch");
    ut_msgs_free(got, n);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 36), KLOG_EOFFSET);
    klog_consumer_close(c);

    /* the start never moves back; NULL low watermark is fine */
    cr_assert_eq(klog_topic_delete_records(k, "t", 0, 37, &lw), 0);
    cr_assert_eq(lw, 37);
    cr_assert_eq(klog_topic_delete_records(k, "t", 0, 10, &lw), 0);
    cr_assert_eq(lw, 37);
    cr_assert_eq(klog_topic_delete_records(k, "t", 0, 150, NULL), 0);
    cr_assert_eq(info(k, "t", 0).start_offset, 150);
    check_range(k, "t", 0, 150, 200, 100);

    /* -1: the end; past the end: KLOG_EOFFSET, nothing moves */
    cr_assert_eq(klog_topic_delete_records(k, "t", 0, 201, &lw), KLOG_EOFFSET);
    cr_assert_eq(info(k, "t", 0).start_offset, 150);
    cr_assert_eq(klog_topic_delete_records(k, "t", 0, -1, &lw), 0);
    cr_assert_eq(lw, 200);
    pi = info(k, "t", 0);
    cr_assert_eq(pi.start_offset, 200);
    cr_assert_eq(pi.end_offset, 200);
    cr_assert_eq(klog_topic_delete_records(k, "t", 1, 20, &lw), 0);
    cr_assert_eq(lw, 20);

    /* bad input */
    cr_assert_eq(klog_topic_delete_records(k, "nope", 0, 1, &lw), KLOG_EUNKNOWN_TOPIC);
    cr_assert_eq(klog_topic_delete_records(k, "bad/name", 0, 1, &lw), KLOG_EBADNAME);
    cr_assert_eq(klog_topic_delete_records(k, "t", 2, 1, &lw), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(klog_topic_delete_records(k, "t", -1, 1, &lw), KLOG_EUNKNOWN_PARTITION);
    cr_assert_eq(klog_topic_delete_records(NULL, "t", 0, 1, &lw), -EINVAL);
    cr_assert_eq(sender_close(&s), 0);
    cr_assert_eq(klog_close(k), 0);

    /* durable: the same after a reopen, and the log goes on from its end */
    k = ut_open();
    pi = info(k, "t", 0);
    cr_assert_eq(pi.start_offset, 200);
    cr_assert_eq(pi.end_offset, 200);
    pi = info(k, "t", 1);
    cr_assert_eq(pi.start_offset, 20);
    cr_assert_eq(pi.end_offset, 50);
    check_range(k, "t", 1, 20, 50, 100);
    c = ut_consumer(k, "auto.offset.reset", "none", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 1, 19), KLOG_EOFFSET);
    klog_consumer_close(c);
    sender_open(&s, k, "7", "none");
    produce(&s, "t", 0, 200, 10, 100, 0);
    check_range(k, "t", 0, 200, 210, 100);
    cr_assert_eq(sender_close(&s), 0);
    cr_assert_eq(klog_close(k), 0);
}

/* ---- the disk budget ------------------------------------------------------------------------ */

/* used per klog_disk_usage, checked against the partitions' disk_bytes and
 * (quiescent) against the files on disk. */
static uint64_t check_usage(klog *k, const char *const *topics, size_t ntopics, int parts)
{
    uint64_t used = 0, budget = 0, sum = 0;
    cr_assert_eq(klog_disk_usage(k, &used, &budget), 0);
    for (size_t t = 0; t < ntopics; t++)
        for (int p = 0; p < parts; p++)
            sum += info(k, topics[t], p).disk_bytes;
    walk_dir();
    cr_assert_eq(sum + walk_meta, used, "partitions' disk_bytes %" PRIu64 " and topics.meta's %" PRIu64
                 ", klog_disk_usage %" PRIu64, sum, walk_meta, used);
    cr_assert_eq(walk_bytes, used, "files on disk %" PRIu64 " bytes, klog_disk_usage %" PRIu64, walk_bytes, used);
    return used;
}

Test(retention, disk_budget_deletes_the_oldest)
{
    const uint64_t budget = 2 << 20, slack = 64 << 10;
    klog *k = open_with("disk.budget.bytes", "2097152", "disk.budget.policy", "delete-oldest", NULL);
    uint64_t b = 0;
    cr_assert_eq(klog_disk_usage(k, NULL, &b), 0);
    cr_assert_eq(b, budget);
    cr_assert_eq(klog_disk_usage(NULL, NULL, NULL), -EINVAL);
    const char *const topics[] = { "a", "b" };
    for (int t = 0; t < 2; t++)
        ut_topic(k, topics[t], 2, "segment.bytes", "65536", NULL);
    sender s;
    sender_open(&s, k, "16", "none");
    int64_t next[2][2] = { { 0, 0 }, { 0, 0 } };
    int64_t ts0 = ut_wall_ms() - HOUR_MS;
    for (int round = 0; round < 20; round++) { /* 1 MiB a round */
        for (int t = 0; t < 2; t++)
            for (int p = 0; p < 2; p++) {
                produce(&s, topics[t], p, next[t][p], 256, 1000, ts0);
                next[t][p] += 256;
                uint64_t used = 0;
                cr_assert_eq(klog_disk_usage(k, &used, NULL), 0);
                cr_assert_leq(used, budget + slack, "round %d: %" PRIu64 " bytes used", round, used);
            }
        uint64_t used = check_usage(k, topics, 2, 2);
        cr_assert_leq(used, budget + slack, "round %d: %" PRIu64 " bytes used", round, used);
    }
    /* each partition lost its oldest records and kept the newest */
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < 2; p++) {
            klog_partition_info pi = info(k, topics[t], p);
            cr_assert_gt(pi.start_offset, 0, "%s/%d kept everything", topics[t], p);
            cr_assert_eq(pi.end_offset, next[t][p]);
            cr_assert_leq(pi.start_offset, next[t][p] - 256, "%s/%d lost part of the newest round", topics[t], p);
            check_range(k, topics[t], p, pi.start_offset, pi.end_offset, 1000);
        }
    cr_assert_eq(sender_close(&s), 0);
    cr_assert_eq(klog_close(k), 0);

    /* a reopen counts the same files */
    k = open_with("disk.budget.bytes", "2097152", NULL);
    check_usage(k, topics, 2, 2);
    cr_assert_eq(klog_close(k), 0);
}

/* Sorts reports by record number (opaque). */
static int cmp_report(const void *a, const void *b)
{
    intptr_t x = (intptr_t)((const klog_delivery *)a)->opaque, y = (intptr_t)((const klog_delivery *)b)->opaque;
    return (x > y) - (x < y);
}

Test(retention, disk_budget_refuses_when_full)
{
    const uint64_t budget = 256 << 10;
    klog *k = open_with("disk.budget.bytes", "262144", "disk.budget.policy", "refuse", NULL);
    ut_topic(k, "t", 1, "segment.bytes", "65536", NULL);
    sender s;
    sender_open(&s, k, "8", "none");
    char v[1000];
    int64_t sent = 0;
    for (;;) {
        pthread_mutex_lock(&s.dr.mu);
        bool refused = s.dr.errors > 0;
        pthread_mutex_unlock(&s.dr.mu);
        if (refused)
            break;
        cr_assert_lt(sent, 1024, "1 MiB sent under a 256 KiB budget and no report of KLOG_EDISKFULL");
        for (int i = 0; i < 32; i++, sent++) {
            char key[32];
            snprintf(key, sizeof key, "k%" PRId64, sent);
            fill_value(v, sizeof v, sent);
            klog_record r = KLOG_RECORD_INIT;
            r.partition = 0;
            r.key = key;
            r.key_len = strlen(key);
            r.value = v;
            r.value_len = sizeof v;
            r.opaque = (void *)(intptr_t)sent;
            cr_assert_eq(klog_producer_send(s.p, "t", &r), 0);
        }
        cr_assert_eq(klog_producer_flush(s.p, 60000), 0);
    }
    uint64_t used = 0;
    cr_assert_eq(klog_disk_usage(k, &used, NULL), 0);
    cr_assert_leq(used, budget, "refuse keeps under the budget: %" PRIu64 " bytes used", used);

    /* written records have consecutive offsets in send order; the others
     * carry KLOG_EDISKFULL */
    pthread_mutex_lock(&s.dr.mu);
    size_t nr = s.dr.n;
    klog_delivery *d = malloc(nr * sizeof *d);
    cr_assert_not_null(d);
    memcpy(d, s.dr.d, nr * sizeof *d);
    pthread_mutex_unlock(&s.dr.mu);
    cr_assert_eq(nr, (size_t)sent);
    qsort(d, nr, sizeof *d, cmp_report);
    int64_t *rec_at = malloc(nr * sizeof *rec_at); /* offset -> record number */
    int64_t ok = 0;
    for (size_t i = 0; i < nr; i++) {
        if (d[i].err == 0) {
            cr_assert_eq(d[i].offset, ok, "record %zu written at %" PRId64, i, d[i].offset);
            rec_at[ok++] = (int64_t)(intptr_t)d[i].opaque;
        } else {
            cr_assert_eq(d[i].err, KLOG_EDISKFULL, "record %zu: %s", i, klog_err_name(d[i].err));
            cr_assert_eq(d[i].offset, -1);
        }
    }
    cr_assert_gt(ok, 0);
    cr_assert_str_eq(klog_err_name(KLOG_EDISKFULL), "KLOG_EDISKFULL");
    const char *msg = klog_strerror(KLOG_EDISKFULL);
    cr_assert(strstr(msg, "disk") && strstr(msg, "budget"), "klog_strerror(KLOG_EDISKFULL) = \"%s\"", msg);

    /* what was acknowledged stays readable */
    cr_assert_eq(info(k, "t", 0).end_offset, ok);
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, 0), 0);
    size_t n;
    ut_msg *got = ut_consume(c, (size_t)ok, &n);
    cr_assert_eq(n, (size_t)ok);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(got[i].offset, (int64_t)i);
        cr_assert(is_record(got[i].key, got[i].key_len, got[i].value, got[i].value_len, rec_at[i], sizeof v));
    }
    ut_msgs_free(got, n);
    klog_consumer_close(c);
    free(rec_at);
    free(d);

    /* DeleteRecords frees the sealed segments; sends succeed again */
    int64_t lw = -1;
    cr_assert_eq(klog_topic_delete_records(k, "t", 0, -1, &lw), 0);
    cr_assert_eq(lw, ok);
    uint64_t after = 0;
    cr_assert_eq(klog_disk_usage(k, &after, NULL), 0);
    cr_assert_lt(after, used);
    size_t n0 = ut_dr_count(&s.dr);
    for (int i = 0; i < 16; i++) {
        fill_value(v, sizeof v, ok + i);
        char key[32];
        snprintf(key, sizeof key, "k%" PRId64, ok + i);
        klog_record r = KLOG_RECORD_INIT;
        r.partition = 0;
        r.key = key;
        r.key_len = strlen(key);
        r.value = v;
        r.value_len = sizeof v;
        r.opaque = (void *)(intptr_t)(ok + i);
        cr_assert_eq(klog_producer_send(s.p, "t", &r), 0);
    }
    cr_assert_eq(klog_producer_flush(s.p, 60000), 0);
    pthread_mutex_lock(&s.dr.mu);
    cr_assert_eq(s.dr.n, n0 + 16);
    for (size_t i = n0; i < s.dr.n; i++) {
        cr_assert_eq(s.dr.d[i].err, 0, "after DeleteRecords: %s", klog_err_name(s.dr.d[i].err));
        cr_assert_eq(s.dr.d[i].offset, (int64_t)(intptr_t)s.dr.d[i].opaque);
    }
    pthread_mutex_unlock(&s.dr.mu);
    check_range(k, "t", 0, ok, ok + 16, sizeof v);
    cr_assert_eq(sender_close(&s), KLOG_EDISKFULL, "close reports the first error a report carried");
    cr_assert_eq(klog_close(k), 0);
}

/* ---- compacted topics ---------------------------------------------------------------------- */

Test(retention, compacted_topics_are_spared_by_retention_and_the_budget)
{
    const uint64_t budget = 1 << 20, slack = 64 << 10;
    klog *k = open_with("disk.budget.bytes", "1048576", "log.retention.check.interval.ms", "10",
                        "log.cleaner.backoff.ms", "10", NULL);
    /* retention keys that would empty it, were it a delete topic */
    ut_topic(k, "c", 1, "cleanup.policy", "compact", "segment.bytes", "16384", "retention.ms", "1000",
             "retention.bytes", "4096", NULL);
    ut_topic(k, "cd", 1, "cleanup.policy", "compact,delete", NULL);
    ut_topic(k, "d", 1, "segment.bytes", "65536", NULL);
    sender s;
    sender_open(&s, k, "16", "none");
    produce(&s, "c", 0, 0, 200, 1000, ut_wall_ms() - DAY_MS); /* distinct keys, a day old */

    /* keyless records cannot be compacted: refused at send */
    klog_record r = KLOG_RECORD_INIT;
    r.partition = 0;
    r.value = "v";
    r.value_len = 1;
    cr_assert_eq(klog_producer_send(s.p, "c", &r), -EINVAL);
    cr_assert_eq(klog_producer_send(s.p, "cd", &r), -EINVAL);
    r.partition = KLOG_PARTITION_ANY;
    cr_assert_eq(klog_producer_send(s.p, "c", &r), -EINVAL);

    int64_t next = 0;
    for (int round = 0; round < 16; round++) { /* 4 MiB through a 1 MiB budget */
        produce(&s, "d", 0, next, 256, 1000, 0);
        next += 256;
        uint64_t used = 0;
        cr_assert_eq(klog_disk_usage(k, &used, NULL), 0);
        cr_assert_leq(used, budget + slack, "round %d: %" PRIu64 " bytes used", round, used);
    }
    ut_sleep_ms(100); /* retention checks and cleaner passes meanwhile */
    klog_partition_info pi = info(k, "c", 0);
    cr_assert_eq(pi.start_offset, 0, "the compacted topic lost its head");
    cr_assert_eq(pi.end_offset, 200);
    check_range(k, "c", 0, 0, 200, 1000);
    pi = info(k, "d", 0);
    cr_assert_gt(pi.start_offset, 0, "the budget took nothing from the delete topic");
    check_range(k, "d", 0, pi.start_offset, next, 1000);

    /* a delete topic takes keyless records */
    cr_assert_eq(klog_producer_send(s.p, "d", &r), 0);
    cr_assert_eq(klog_producer_flush(s.p, 60000), 0);
    cr_assert_eq(s.dr.errors, 0);
    cr_assert_eq(sender_close(&s), 0);
    cr_assert_eq(klog_close(k), 0);
}

/* Keyed updates for compaction: key "key-<key>", value "key-<key>=v<ver>"
 * padded to 64 bytes, or a tombstone; timestamp ts (0: at send). */
static void send_kv(sender *s, const char *topic, int key, int ver, bool tombstone, int64_t ts)
{
    char k[32], v[64];
    snprintf(k, sizeof k, "key-%d", key);
    memset(v, '.', sizeof v);
    int n = snprintf(v, sizeof v, "key-%d=v%d", key, ver);
    v[n] = '.';
    klog_record r = KLOG_RECORD_INIT;
    r.partition = 0;
    r.key = k;
    r.key_len = strlen(k);
    r.value = tombstone ? NULL : v;
    r.value_len = tombstone ? 0 : sizeof v;
    r.timestamp = ts;
    int rc = klog_producer_send(s->p, topic, &r);
    cr_assert_eq(rc, 0, "send %s: %s", k, klog_err_name(rc));
}

#define NKEYS 8

/* The log of topic/0 as read from its start: every record, copied, up to
 * the last offset (end - 1, which these tests never compact away). */
static ut_msg *read_all(klog *k, const char *topic, int64_t end, size_t *n)
{
    klog_consumer *c = ut_consumer(k, "auto.offset.reset", "earliest", NULL);
    cr_assert_eq(klog_consumer_assign(c, topic, 0, KLOG_OFFSET_BEGINNING), 0);
    size_t cap = 256, got = 0;
    ut_msg *out = calloc(cap, sizeof *out);
    cr_assert_not_null(out);
    int64_t last = -1, give_up = ut_mono_ms() + WAIT_MS;
    while (last < end - 1 && ut_mono_ms() < give_up) {
        const klog_message *const *m;
        int rc = klog_consumer_poll(c, 0, &m);
        cr_assert_geq(rc, 0, "poll: %s", klog_err_name(rc));
        for (int i = 0; i < rc; i++) {
            if (got == cap) {
                cap *= 2;
                out = realloc(out, cap * sizeof *out);
                cr_assert_not_null(out);
            }
            ut_msg_copy(&out[got++], m[i]);
            last = m[i]->offset;
        }
        if (rc == 0)
            ut_sleep_ms(1);
    }
    klog_consumer_close(c);
    cr_assert_eq(last, end - 1, "%s/0: read up to %" PRId64 " of end %" PRId64, topic, last, end);
    *n = got;
    return out;
}

/* Compaction's promises over records m[0..n): offsets strictly increasing;
 * below clean_offset at most one record per key; per key, the last record
 * read is its latest value (latest[key], -1 = deleted: no record at all). */
static void check_compacted(const ut_msg *m, size_t n, const int *latest, int64_t clean_offset)
{
    bool seen_clean[NKEYS] = { false };
    int last[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        last[i] = -2;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            cr_assert_gt(m[i].offset, m[i - 1].offset, "offsets must increase");
        int key = -1;
        cr_assert(m[i].key && sscanf(m[i].key, "key-%d", &key) == 1 && key >= 0 && key < NKEYS,
                  "offset %" PRId64 ": bad key", m[i].offset);
        cr_assert(latest[key] >= 0, "offset %" PRId64 ": key-%d was deleted, its records (tombstone included) must go",
                  m[i].offset, key);
        if (m[i].offset < clean_offset) {
            cr_assert(!seen_clean[key], "offset %" PRId64 ": key-%d twice below the clean offset %" PRId64,
                      m[i].offset, key, clean_offset);
            seen_clean[key] = true;
        }
        int ver = -1, key2 = -1;
        cr_assert(m[i].value && sscanf(m[i].value, "key-%d=v%d", &key2, &ver) == 2 && key2 == key);
        last[key] = ver;
    }
    for (int key = 0; key < NKEYS; key++)
        if (latest[key] >= 0)
            cr_assert_eq(last[key], latest[key], "key-%d: last value read v%d, latest written v%d", key, last[key],
                         latest[key]);
}

static void compaction(const char *compression)
{
    klog *k = open_with("log.cleaner.backoff.ms", "10", NULL);
    ut_topic(k, "c", 1, "cleanup.policy", "compact", "segment.bytes", "4096", "min.cleanable.dirty.ratio", "0.01",
             "delete.retention.ms", "0", NULL);
    sender s;
    sender_open(&s, k, "5", compression); /* batches of 5 lose some records, keep others */
    int latest[NKEYS];
    for (int ver = 0; ver < 50; ver++)
        for (int key = 0; key < NKEYS; key++) {
            send_kv(&s, "c", key, ver, false, 0);
            latest[key] = ver;
        }
    /* delete key-0 and key-1 (tombstones a second old: past delete.retention.ms) */
    int64_t old = ut_wall_ms() - 1000;
    send_kv(&s, "c", 0, 0, true, old);
    send_kv(&s, "c", 1, 0, true, old);
    latest[0] = latest[1] = -1;
    cr_assert_eq(klog_producer_flush(s.p, 60000), 0);
    int64_t tombs_end = info(k, "c", 0).end_offset;
    /* more updates of the others push the tombstones into sealed segments */
    for (int ver = 50; ver < 150; ver++)
        for (int key = 2; key < NKEYS; key++) {
            send_kv(&s, "c", key, ver, false, 0);
            latest[key] = ver;
        }
    cr_assert_eq(klog_producer_flush(s.p, 60000), 0);
    cr_assert_eq(s.dr.errors, 0);
    cr_assert_eq(sender_close(&s), 0);
    const int64_t end = 50 * NKEYS + 2 + 100 * (NKEYS - 2);
    const uint64_t full = (uint64_t)end * 64; /* values alone: the log holds more */

    /* the cleaner passes over everything up to the active segment (the
     * last one on disk), and then has nothing left to do */
    int64_t bases[1024];
    size_t nb = seg_bases("c", 0, bases, 1024);
    cr_assert_gt(nb, 1);
    const int64_t active = bases[nb - 1];
    cr_assert_gt(active, tombs_end, "the tombstones are in sealed segments");
    int64_t give_up = ut_mono_ms() + WAIT_MS;
    klog_partition_info pi = info(k, "c", 0);
    while ((pi.clean_offset < active || pi.size_bytes >= full) && ut_mono_ms() < give_up) {
        ut_sleep_ms(5);
        pi = info(k, "c", 0);
    }
    cr_assert_geq(pi.clean_offset, active, "clean offset %" PRId64 " after %d ms, the active segment starts at %" PRId64,
                  pi.clean_offset, WAIT_MS, active);
    cr_assert_lt(pi.size_bytes, full, "%" PRIu64 " bytes: nothing was compacted", pi.size_bytes);
    cr_assert_eq(pi.end_offset, end, "compaction keeps the end offset");
    cr_assert_eq(pi.start_offset, 0);

    size_t n;
    ut_msg *m = read_all(k, "c", end, &n);
    cr_assert_lt(n, (size_t)end);
    check_compacted(m, n, latest, pi.clean_offset);
    int64_t clean = pi.clean_offset;
    cr_assert_eq(klog_close(k), 0);

    /* the same after a reopen (cleaner off: nothing changes meanwhile) */
    k = open_with("log.cleaner.enable", "false", NULL);
    pi = info(k, "c", 0);
    cr_assert_eq(pi.end_offset, end);
    cr_assert_eq(pi.start_offset, 0);
    size_t n2;
    ut_msg *m2 = read_all(k, "c", end, &n2);
    cr_assert_eq(n2, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(m2[i].offset, m[i].offset);
        cr_assert_str_eq(m2[i].key, m[i].key);
        cr_assert_eq(m2[i].value_len, m[i].value_len);
        cr_assert(memcmp(m2[i].value, m[i].value, m[i].value_len) == 0);
    }
    check_compacted(m2, n2, latest, clean);
    ut_msgs_free(m, n);
    ut_msgs_free(m2, n2);
    cr_assert_eq(klog_close(k), 0);
}

Test(retention, compaction_keeps_the_latest_per_key) { compaction("none"); }
Test(retention, compaction_keeps_the_latest_per_key_lz4) { compaction("lz4"); }

Test(retention, compact_delete_applies_retention_too)
{
    klog *k = open_with("log.retention.check.interval.ms", "10", "log.cleaner.backoff.ms", "10", NULL);
    int64_t t0 = ut_wall_ms();
    atomic_store(&fake_now, t0);
    klog__set_clock(k, fake_clock, &fake_now);
    /* records are cleanable an hour after their timestamp and expire after
     * three: the young ones stay out of every cleaning pass, so the pass
     * cannot merge expired segments with live ones */
    ut_topic(k, "cd", 1, "cleanup.policy", "compact,delete", "segment.bytes", "4096", "retention.ms", "10800000",
             "min.compaction.lag.ms", "3600000", "min.cleanable.dirty.ratio", "0.01", NULL);
    sender s;
    sender_open(&s, k, "1", "none");
    for (int i = 0; i < 200; i++) /* two hours old: cleanable, not expired */
        send_kv(&s, "cd", i % 4, i, false, t0 - 2 * HOUR_MS + i);
    cr_assert_eq(klog_producer_flush(s.p, 60000), 0);
    for (int i = 0; i < 50; i++) /* two hours ahead */
        send_kv(&s, "cd", 4 + i % 4, 200 + i, false, t0 + 2 * HOUR_MS + i);
    cr_assert_eq(klog_producer_flush(s.p, 60000), 0);
    cr_assert_eq(s.dr.errors, 0);
    cr_assert_eq(sender_close(&s), 0);
    cr_assert_eq(info(k, "cd", 0).end_offset, 250);

    /* compaction applies: below the clean offset one record per key */
    int64_t give_up = ut_mono_ms() + WAIT_MS;
    klog_partition_info pi = info(k, "cd", 0);
    while (pi.clean_offset == 0 && ut_mono_ms() < give_up) {
        ut_sleep_ms(5);
        pi = info(k, "cd", 0);
    }
    cr_assert_gt(pi.clean_offset, 0, "no cleaning pass after %d ms", WAIT_MS);
    /* (segments the pass emptied may go: they hold nothing) */
    size_t n;
    ut_msg *m = read_all(k, "cd", 250, &n);
    bool seen[4] = { false };
    int last[4] = { -1, -1, -1, -1 };
    for (size_t i = 0; i < n && m[i].offset < 200; i++) {
        int key = -1, key2 = -1, ver = -1;
        cr_assert(sscanf(m[i].key, "key-%d", &key) == 1 && key >= 0 && key < 4);
        cr_assert(m[i].value && sscanf(m[i].value, "key-%d=v%d", &key2, &ver) == 2 && key2 == key);
        if (m[i].offset < pi.clean_offset) {
            cr_assert(!seen[key], "offset %" PRId64 ": key-%d twice below the clean offset %" PRId64, m[i].offset,
                      key, pi.clean_offset);
            seen[key] = true;
        }
        last[key] = ver;
    }
    for (int key = 0; key < 4; key++)
        cr_assert_eq(last[key], 196 + key, "key-%d: latest value lost (last read v%d)", key, last[key]);
    ut_msgs_free(m, n);

    /* and so does retention: 1.5 h later the old records expire */
    int64_t want = start_after_expiry("cd", 0, 200);
    cr_assert_gt(want, 0);
    atomic_store(&fake_now, t0 + 3 * HOUR_MS / 2);
    cr_assert_eq(wait_start(k, "cd", 0, want), want);
    m = read_all(k, "cd", 250, &n);
    cr_assert_geq(n, 50);
    cr_assert_geq(m[0].offset, want);
    for (size_t i = 0; i < 50; i++) { /* the young records, untouched */
        const ut_msg *y = &m[n - 50 + i];
        char want_v[32];
        snprintf(want_v, sizeof want_v, "key-%d=v%d", (int)(4 + i % 4), (int)(200 + i));
        cr_assert_eq(y->offset, 200 + (int64_t)i);
        cr_assert(strncmp(y->value, want_v, strlen(want_v)) == 0);
    }
    ut_msgs_free(m, n);
    cr_assert_eq(klog_close(k), 0);
}

/* ---- a throttled cleaning pass ------------------------------------------------------------------ */

/* An instance whose compacted topic "c" is in the middle of a cleaning pass
 * throttled to 1 KiB/s, which sleeps about a thousand seconds after its
 * first chunk: 3 MiB of updates over 16 keys (latest[key]: the last
 * version written). */
static klog *throttled_setup(int latest[16])
{
    klog *k = open_with("log.cleaner.io.max.bytes.per.second", "1024", "log.cleaner.backoff.ms", "10", NULL);
    ut_topic(k, "c", 1, "cleanup.policy", "compact", "segment.bytes", "262144", "min.cleanable.dirty.ratio", "0.01",
             NULL);
    sender s;
    sender_open(&s, k, "16", "none");
    char v[1000];
    for (int i = 0; i < 3072; i++) {
        char key[16];
        snprintf(key, sizeof key, "key-%d", i % 16);
        memset(v, '.', sizeof v);
        int n = snprintf(v, sizeof v, "key-%d=v%d", i % 16, i);
        v[n] = '.';
        latest[i % 16] = i;
        klog_record r = KLOG_RECORD_INIT;
        r.partition = 0;
        r.key = key;
        r.key_len = strlen(key);
        r.value = v;
        r.value_len = sizeof v;
        cr_assert_eq(klog_producer_send(s.p, "c", &r), 0);
    }
    cr_assert_eq(klog_producer_flush(s.p, 60000), 0);
    cr_assert_eq(s.dr.errors, 0);
    cr_assert_eq(sender_close(&s), 0);
    ut_sleep_ms(300); /* the cleaner picks the partition (nothing depends on it) */
    return k;
}

static void *close_thread(void *arg)
{
    return (void *)(intptr_t)klog_close(arg);
}

Test(retention, close_interrupts_a_throttled_cleaning_pass)
{
    int latest[16];
    klog *k = throttled_setup(latest);
    /* appends do not wait for the cleaner */
    sender s;
    sender_open(&s, k, "16", "none");
    send_kv(&s, "c", 0, 3072, false, 0);
    cr_assert_eq(klog_producer_flush(s.p, 60000), 0);
    cr_assert_eq(s.dr.errors, 0);
    cr_assert_eq(sender_close(&s), 0);

    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, close_thread, k), 0);
    cr_assert_eq(ut_join_within(th, 120), 0, "klog_close hangs behind a throttled cleaning pass");

    k = open_with("log.cleaner.enable", "false", NULL);
    walk_dir();
    cr_assert_eq(walk_leftovers, 0, "%u *.cleaned / *.swap files after a reopen", walk_leftovers);
    klog_partition_info pi = info(k, "c", 0);
    cr_assert_eq(pi.end_offset, 3073);
    size_t n;
    ut_msg *m = read_all(k, "c", 3073, &n);
    int last[16];
    for (int i = 0; i < 16; i++)
        last[i] = -1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            cr_assert_gt(m[i].offset, m[i - 1].offset);
        int key, key2, ver;
        cr_assert(sscanf(m[i].key, "key-%d", &key) == 1 && key >= 0 && key < 16);
        cr_assert(sscanf(m[i].value, "key-%d=v%d", &key2, &ver) == 2 && key2 == key);
        last[key] = ver;
    }
    latest[0] = 3072;
    for (int i = 0; i < 16; i++)
        cr_assert_eq(last[i], latest[i], "key-%d", i);
    ut_msgs_free(m, n);
    cr_assert_eq(klog_close(k), 0);
}

typedef struct describe_arg {
    klog *k;
    klog_partition_info pi;
    int rc;
} describe_arg;

static void *describe_thread(void *arg)
{
    describe_arg *a = arg;
    memset(&a->pi, 0, sizeof a->pi);
    a->pi.struct_size = sizeof a->pi;
    a->rc = klog_topic_describe(a->k, "c", &a->pi, 1, NULL, 0);
    return NULL;
}

/* Describe must not wait for a cleaning pass.  (It did: it read the clean
 * offset under the log's maintenance lock, which a pass holds throughout,
 * its throttle sleeps included.) */
Test(retention, describe_does_not_wait_for_a_throttled_pass)
{
    int latest[16];
    klog *k = throttled_setup(latest);
    describe_arg a = { .k = k };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, describe_thread, &a), 0);
    /* on failure the test ends here, with the instance left open: closing
     * it would free the log under the blocked describe */
    cr_assert_eq(ut_join_within(th, WAIT_MS / 1000), 0,
                 "klog_topic_describe blocks while a throttled cleaning pass runs");
    cr_assert_eq(a.rc, 1);
    cr_assert_eq(a.pi.end_offset, 3072);
    cr_assert_eq(klog_close(k), 0);
}
