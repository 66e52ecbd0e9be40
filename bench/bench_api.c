/*
 * bench/bench_api.c - the public API (producer, consumer) against the raw
 * floor, in one run.  Links the shared library as a user does and uses
 * nothing but include/klog/; baselines are plain syscalls.
 *
 * Sections (--only NAME runs one):
 *   produce-100  1,000,000 records, 16-byte keys, 100-byte values, acks=1,
 *                linger.ms=5, batch.size=1000000, one thread: first send to
 *                flush() returning.  Baseline: the topic's size_bytes (the
 *                very bytes klog wrote) as 1 MB pwrites to a fresh file.
 *   produce-1k   the same with 1 KiB values, 500,000 records.
 *   durable      acks=all.  (a) one thread sends 1000 records then flushes,
 *                300 times, beside a raw pwrite(the same bytes per batch) +
 *                fdatasync loop; (b) 1, 4 and 16 threads each doing
 *                send + flush of single records (linger.ms=0), on one shared
 *                producer and on one producer per thread, to a 1-partition
 *                and a 4-partition topic (thread i writes partition i % 4):
 *                records/s and growth over 1 thread (group commit).  Each
 *                (b) run lasts a fixed time, as a sync costs milliseconds,
 *                and every rep runs every configuration in turn.
 *   consume      one consumer reads 1,000,000 100-byte records from the
 *                start (produced beforehand, untimed), polling until all are
 *                read, looking at one byte of each value, with the default
 *                max.poll.records (500) and with 10000.  Baseline: pread of
 *                the partition's .log files into a 1 MB buffer.
 *   latency      end to end in one process: a producer thread sends at
 *                10,000/s and 100,000/s (acks=1, linger.ms=0), the value
 *                carrying CLOCK_MONOTONIC at send; a consumer thread in a
 *                blocking poll records now - sent.  Baseline: the same
 *                pacing through a pipe(2) with a blocking read - the
 *                machine's own cross-thread wakeup latency.  A line is
 *                flagged "sender fell behind" when over 1% of sends went
 *                out more than one interval late (the rate was not held).
 *
 * Conventions of bench_store.c: throughput figures are the median of --reps
 * runs (default 5), klog and its baseline alternating so that drift hits
 * both; buffers are prefaulted before every timed run; and before every
 * timed write run a scratch file of the same size is written and deleted
 * (warm_page_cache: this VM hands idle memory back to its host, and the
 * first writer into long-freed memory pays host faults).  Runs with syncs
 * and latency runs start after a syncfs (settle), so that they do not queue
 * behind the writeback of earlier sections.  Latency sections
 * run once per rate: their percentiles already pool every sample.
 * Nothing is compared against a target here: the targets of the issue are
 * printed beside the figures for the reader.
 *
 * Everything is written under DIR/bench_api.<pid>/ (removed at the end), so
 * two runs never share a data directory.
 *
 *   bench_api [--dir DIR] [--reps N] [--quick] [--each] [--only NAME]
 *   (--each: every repetition's figures on stderr, not only the median)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>

#include "bench_util.h"

#define KEY_LEN 16
#define NKEYS 100000          /* distinct keys, as bench_store */
#define VAL_SPREAD 4096       /* values start at varying offsets of a pool */
#define RAW_CHUNK (1u << 20)  /* baseline write and read size */
#define MAX_REPS 31

/* the command line (bench_util.h): --dir, --reps, --quick, --each, --only */
static bu_args g_a = { .base = "/tmp/klog-bench-api" };
static klog *g_k;
static unsigned g_topic_seq;

static char *g_keys;          /* NKEYS * KEY_LEN */
static char *g_vals;          /* VAL_SPREAD + the largest value */
static uint8_t *g_chunk;      /* RAW_CHUNK bytes for the baselines */
static volatile uint64_t g_sink;

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_api: %s: %s (%s)\n", what, klog_strerror(rc), klog_err_name(rc));
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double secs_since(uint64_t t0)
{
    return (double)(now_ns() - t0) / 1e9;
}

/* See bench_util.h. */
static void warm_page_cache(uint64_t bytes)
{
    int rc = bu_warm_page_cache(g_a.dir, bytes);
    if (rc < 0)
        die("warm page cache", rc);
}

/*
 * Write back whatever earlier runs (and other processes) left dirty on the
 * file system, so that a timed run with syncs, or one measuring latency,
 * does not queue behind that writeback.  Untimed.
 */
static void settle(void)
{
    int fd = open(g_a.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

/* ---- workload data ------------------------------------------------------ */

static void data_init(void)
{
    g_keys = malloc((size_t)NKEYS * KEY_LEN + 1);
    g_vals = malloc(VAL_SPREAD + 1024 + 64);
    g_chunk = malloc(RAW_CHUNK);
    if (!g_keys || !g_vals || !g_chunk)
        die("malloc", -ENOMEM);
    for (unsigned i = 0; i < NKEYS; i++)
        snprintf(g_keys + (size_t)i * KEY_LEN, KEY_LEN + 1, "key-%012u", i);
    for (size_t i = 0; i < VAL_SPREAD + 1024 + 64; i++)
        g_vals[i] = (char)('a' + (i * 7 + i / 26) % 26);
    memset(g_chunk, 'x', RAW_CHUNK);
}

static const void *key_at(uint64_t i)
{
    return g_keys + (i % NKEYS) * KEY_LEN;
}

static const void *val_at(uint64_t i)
{
    return g_vals + (i * 61) % VAL_SPREAD;
}

static void data_prefault(void)
{
    bu_prefault(g_keys, (size_t)NKEYS * KEY_LEN);
    bu_prefault(g_vals, VAL_SPREAD + 1024);
    bu_prefault(g_chunk, RAW_CHUNK);
}

/* ---- klog helpers ------------------------------------------------------- */

/* A conf from NULL-terminated key/value pairs. */
static klog_conf *conf_of(const char *const *kv)
{
    klog_conf *c;
    int rc = klog_conf_new(&c);
    if (rc)
        die("klog_conf_new", rc);
    for (; kv && kv[0]; kv += 2) {
        char err[256] = "";
        rc = klog_conf_set(c, kv[0], kv[1], err, sizeof err);
        if (rc) {
            fprintf(stderr, "bench_api: conf %s=%s: %s\n", kv[0], kv[1], err);
            exit(1);
        }
    }
    return c;
}

static klog_producer *producer_new(const char *const *kv)
{
    klog_conf *c = conf_of(kv);
    klog_producer *p;
    char err[256] = "";
    int rc = klog_producer_new(g_k, c, &p, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_api: producer: %s\n", err);
        die("klog_producer_new", rc);
    }
    klog_conf_free(c);
    return p;
}

static void producer_close(klog_producer *p)
{
    int rc = klog_producer_close(p);
    if (rc)
        die("klog_producer_close", rc);
}

/* A fresh topic; its name is written to name. */
static void topic_new(char *name, size_t cap, const char *prefix, int partitions)
{
    snprintf(name, cap, "%s-%u", prefix, ++g_topic_seq);
    char err[256] = "";
    int rc = klog_topic_create(g_k, name, partitions, NULL, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_api: topic %s: %s\n", name, err);
        die("klog_topic_create", rc);
    }
}

/* Bytes in the topic's segments and records in it (end - start offsets). */
static uint64_t topic_bytes(const char *name, uint64_t *records)
{
    klog_partition_info pi[16];
    for (size_t i = 0; i < 16; i++)
        pi[i].struct_size = sizeof pi[i];
    int n = klog_topic_describe(g_k, name, pi, 16, NULL, 0);
    if (n < 0)
        die("klog_topic_describe", n);
    uint64_t bytes = 0, recs = 0;
    for (int i = 0; i < n && i < 16; i++) {
        if (pi[i].error)
            die("partition error", pi[i].error);
        bytes += pi[i].size_bytes;
        recs += (uint64_t)(pi[i].end_offset - pi[i].start_offset);
    }
    if (records)
        *records = recs;
    return bytes;
}

static void topic_drop(const char *name)
{
    int rc = klog_topic_delete(g_k, name);
    if (rc)
        die("klog_topic_delete", rc);
}

/*
 * A record of this workload, set up once per loop: the loop itself only
 * moves the key and value pointers.  (Building a fresh klog_record per send
 * zeroes it with SSE stores, and on this machine those stall after the
 * library's AVX-512 code: perf put ~10% of a produce run on the one pxor.)
 */
static klog_record rec_of(int32_t part, size_t vlen)
{
    klog_record r = KLOG_RECORD_INIT;
    r.partition = part;
    r.key_len = KEY_LEN;
    r.value_len = vlen;
    return r;
}

static inline void send_rec(klog_producer *p, const char *topic, klog_record *r, uint64_t i)
{
    r->key = key_at(i);
    r->value = val_at(i);
    int rc = klog_producer_send(p, topic, r);
    if (rc)
        die("klog_producer_send", rc);
}

/* ---- raw baselines ------------------------------------------------------ */

/*
 * Write `total` bytes to a fresh file as `nwrites` pwrites of (nearly) equal
 * size, each at most RAW_CHUNK; fdatasync after each when sync_each.
 * Returns the seconds taken.
 */
static double raw_write(uint64_t total, uint64_t nwrites, bool sync_each)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/raw.dat", g_a.dir);
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open raw", -errno);
    warm_page_cache(total);
    if (sync_each)
        settle();
    bu_prefault(g_chunk, RAW_CHUNK);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < nwrites; i++) {
        uint64_t from = total * i / nwrites, to = total * (i + 1) / nwrites;
        ssize_t w = pwrite(fd, g_chunk, (size_t)(to - from), (off_t)from);
        if (w != (ssize_t)(to - from))
            die("pwrite raw", w < 0 ? -errno : -EIO);
        if (sync_each && fdatasync(fd) != 0)
            die("fdatasync raw", -errno);
    }
    double s = secs_since(t0);
    close(fd);
    unlink(path);
    return s;
}

static uint64_t chunks_of(uint64_t bytes)
{
    return (bytes + RAW_CHUNK - 1) / RAW_CHUNK;
}

/* ---- 1, 2: produce ------------------------------------------------------ */

static const char *const k_produce_conf[] = { "acks", "1", "linger.ms", "5", "batch.size", "1000000", NULL };

/* One timed producer run; *bytes receives the topic's size_bytes. */
static double produce_run(uint64_t records, size_t vlen, uint64_t *bytes)
{
    char topic[64];
    topic_new(topic, sizeof topic, "produce", 1);
    klog_producer *p = producer_new(k_produce_conf);
    warm_page_cache(records * (KEY_LEN + vlen + 24)); /* about the encoded size */
    data_prefault();
    klog_record r = rec_of(KLOG_PARTITION_ANY, vlen);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < records; i++)
        send_rec(p, topic, &r, i);
    int rc = klog_producer_flush(p, -1);
    double s = secs_since(t0);
    if (rc)
        die("klog_producer_flush", rc);
    producer_close(p);
    uint64_t n;
    *bytes = topic_bytes(topic, &n);
    if (n != records)
        die("produce: records missing from the log", KLOG_ECORRUPT);
    topic_drop(topic);
    return s;
}

static void section_produce(const char *name, uint64_t records, size_t vlen, const char *targets)
{
    if (g_a.quick)
        records /= 20;
    double kl[MAX_REPS], raw[MAX_REPS];
    uint64_t bytes = 0;
    /* Untimed: the first producer of a process gets its batch buffers from
     * fresh mappings, which this VM makes several times slower to touch
     * than reused memory (the first repetition ran at 0.4-0.6 of the
     * others); a long-lived producer reuses its own. */
    (void)produce_run(records / 4, vlen, &bytes);
    for (int r = 0; r < g_a.reps; r++) {
        kl[r] = produce_run(records, vlen, &bytes);
        raw[r] = raw_write(bytes, chunks_of(bytes), false);
        if (g_a.each)
            fprintf(stderr, "  rep %d: klog %.2f M/s, raw %.2f M/s, ratio %.2f\n", r, records / kl[r] / 1e6,
                    records / raw[r] / 1e6, raw[r] / kl[r]);
    }
    double tk = bu_median(kl, g_a.reps), tr = bu_median(raw, g_a.reps);
    double mb = (double)bytes / 1e6;
    printf("%s: %" PRIu64 " records, %d-byte keys, %zu-byte values, acks=1 linger.ms=5 batch.size=1000000\n",
           name, records, KEY_LEN, vlen);
    printf("  raw pwrite, 1 MB writes (same %.1f MB)  %8.2f M rec/s %7.0f MB/s\n", mb, records / tr / 1e6, mb / tr);
    printf("  klog producer send .. flush           %8.2f M rec/s %7.0f MB/s   ratio to raw %.2f\n",
           records / tk / 1e6, mb / tk, tr / tk);
    printf("  (issue targets: %s)\n\n", targets);
}

/* ---- 3: durable --------------------------------------------------------- */

/*
 * Durable batches, paired: each round times one klog batch (send `per`
 * records, flush) and one raw pwrite+fdatasync of the same number of bytes
 * to a file on the same file system, in alternating order.  Both see the
 * same disk at the same moment, so the ratio does not depend on how busy
 * the (shared, virtual) disk was during one half of the run: measured
 * separately, the two halves drifted by up to 30% between runs.
 */
static void durable_batches(void)
{
    const uint64_t per = 1000, nb = g_a.quick ? 10 : 300;
    const char *const kv[] = { "acks", "all", "linger.ms", "5", "batch.size", "1000000", NULL };
    double kl[MAX_REPS], raw[MAX_REPS];
    uint64_t bytes = 0;
    for (int r = 0; r < g_a.reps; r++) {
        char topic[64], path[4200];
        topic_new(topic, sizeof topic, "durable", 1);
        klog_producer *p = producer_new(kv);
        klog_record rec = rec_of(KLOG_PARTITION_ANY, 100);
        /* one untimed batch gives the size of a batch in the log */
        for (uint64_t i = 0; i < per; i++)
            send_rec(p, topic, &rec, i);
        if (klog_producer_flush(p, -1))
            die("klog_producer_flush", -EIO);
        size_t bsz = (size_t)topic_bytes(topic, NULL);
        snprintf(path, sizeof path, "%s/raw.dat", g_a.dir);
        unlink(path);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            die("open raw", -errno);
        warm_page_cache(2 * per * nb * (KEY_LEN + 100 + 24));
        settle();
        data_prefault();
        double tk = 0, tr = 0;
        for (uint64_t b = 0; b < nb; b++) {
            for (int half = 0; half < 2; half++) {
                uint64_t t0 = now_ns();
                if ((half ^ (int)(b & 1)) == 0) {
                    for (uint64_t i = 0; i < per; i++)
                        send_rec(p, topic, &rec, (b + 1) * per + i);
                    int rc = klog_producer_flush(p, -1);
                    if (rc)
                        die("klog_producer_flush", rc);
                    tk += secs_since(t0);
                } else {
                    ssize_t w = pwrite(fd, g_chunk, bsz, (off_t)(b * bsz));
                    if (w != (ssize_t)bsz)
                        die("pwrite raw", w < 0 ? -errno : -EIO);
                    if (fdatasync(fd) != 0)
                        die("fdatasync raw", -errno);
                    tr += secs_since(t0);
                }
            }
        }
        kl[r] = tk;
        raw[r] = tr;
        close(fd);
        unlink(path);
        producer_close(p);
        uint64_t n;
        bytes = topic_bytes(topic, &n) / (nb + 1);
        if (n != per * (nb + 1))
            die("durable: records missing from the log", KLOG_ECORRUPT);
        topic_drop(topic);
    }
    double tk = bu_median(kl, g_a.reps), tr = bu_median(raw, g_a.reps);
    printf("durable (a): acks=all, 1 thread, %" PRIu64 " x (send %" PRIu64 " records, flush), %.1f KB per batch,\n"
           "  each klog batch paired with a raw one of the same bytes, alternating order\n", nb, per,
           (double)bytes / 1e3);
    char label[64];
    snprintf(label, sizeof label, "klog send x%" PRIu64 " + flush", per);
    printf("  %-36s %7.0f batches/s %9.0f rec/s  %7.1f us/batch\n", "raw pwrite+fdatasync (same bytes)", nb / tr,
           (double)(nb * per) / tr, tr / (double)nb * 1e6);
    printf("  %-36s %7.0f batches/s %9.0f rec/s  %7.1f us/batch   ratio to raw %.2f\n", label, nb / tk,
           (double)(nb * per) / tk, tk / (double)nb * 1e6, tr / tk);
    if (g_a.each)
        for (int r = 0; r < g_a.reps; r++)
            fprintf(stderr, "  rep %d: ratio %.3f\n", r, raw[r] / kl[r]);
    printf("  (issue target: >= 0.9 of raw)\n\n");
}

typedef struct {
    klog_producer *p;
    const char *topic;
    int32_t part;
    uint64_t seed;
    uint64_t end_ns;
    uint64_t count;
} dthr;

static void *durable_thread(void *arg)
{
    dthr *a = arg;
    klog_record r = rec_of(a->part, 100);
    while (now_ns() < a->end_ns) {
        send_rec(a->p, a->topic, &r, a->seed + a->count);
        int rc = klog_producer_flush(a->p, -1);
        if (rc)
            die("klog_producer_flush", rc);
        a->count++;
    }
    return NULL;
}

/* One time-bounded run: records/s. */
static double durable_threads_run(int nt, int nparts, bool shared, double secs)
{
    static const char *const kv[] = { "acks", "all", "linger.ms", "0", NULL };
    char topic[64];
    topic_new(topic, sizeof topic, "group", nparts);
    klog_producer *p[16];
    for (int i = 0; i < nt; i++)
        p[i] = shared && i > 0 ? p[0] : producer_new(kv);
    settle();
    data_prefault();
    pthread_t th[16];
    dthr a[16];
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    for (int i = 0; i < nt; i++) {
        a[i] = (dthr){ p[i], topic, i % nparts, (uint64_t)i * 1000003u, end, 0 };
        if (pthread_create(&th[i], NULL, durable_thread, &a[i]) != 0)
            die("pthread_create", -EAGAIN);
    }
    uint64_t total = 0;
    for (int i = 0; i < nt; i++) {
        pthread_join(th[i], NULL);
        total += a[i].count;
    }
    double s = secs_since(t0);
    for (int i = 0; i < nt; i++)
        if (!shared || i == 0)
            producer_close(p[i]);
    uint64_t n;
    topic_bytes(topic, &n);
    if (n != total)
        die("durable: records missing from the log", KLOG_ECORRUPT);
    topic_drop(topic);
    return (double)total / s;
}

/* raw: pwrite(bytes) + fdatasync in a loop for secs: syncs/s */
static double raw_sync_loop(size_t bytes, double secs)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/raw.dat", g_a.dir);
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open raw", -errno);
    settle();
    bu_prefault(g_chunk, RAW_CHUNK);
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9), n = 0;
    off_t off = 0;
    while (now_ns() < end) {
        if (pwrite(fd, g_chunk, bytes, off) != (ssize_t)bytes)
            die("pwrite raw", -errno);
        off += (off_t)bytes;
        if (fdatasync(fd) != 0)
            die("fdatasync raw", -errno);
        n++;
    }
    double s = secs_since(t0);
    close(fd);
    unlink(path);
    return (double)n / s;
}

static void durable_threads(void)
{
    const double secs = g_a.quick ? 0.05 : 1.0;
    static const int threads[] = { 1, 4, 16 };
    enum { NT = sizeof threads / sizeof threads[0], NCONF = 1 + 2 * 2 * NT };
    printf("durable (b): acks=all, linger.ms=0, each thread: send 1 record + flush, in a loop for %.2f s\n", secs);
    /* Every rep runs every configuration once, in turn, so that the disk's
     * drift (syncs here range from 0.2 to 4 ms) hits all of them alike.
     * Configuration 0 is raw: pwrite + fdatasync of 180 bytes (about what a
     * 1-record batch of this workload takes on disk), one thread. */
    static double v[NCONF][MAX_REPS];
    for (int r = 0; r < g_a.reps; r++) {
        v[0][r] = raw_sync_loop(180, secs);
        for (int c = 1; c < NCONF; c++) {
            int k = c - 1, t = k % NT, shared = !((k / NT) % 2), nparts = k / (2 * NT) ? 4 : 1;
            v[c][r] = durable_threads_run(threads[t], nparts, shared, secs);
        }
    }
    printf("  raw pwrite(180 B)+fdatasync, 1 thread         %8.0f rec/s\n", bu_median(v[0], g_a.reps));
    double base = 0;
    for (int c = 1; c < NCONF; c++) {
        int k = c - 1, t = k % NT, shared = !((k / NT) % 2), nparts = k / (2 * NT) ? 4 : 1;
        double m = bu_median(v[c], g_a.reps);
        if (t == 0)
            base = m;
        printf("  %d partition%s, %-19s %2d thread%s %8.0f rec/s  %5.2fx of 1 thread\n", nparts,
               nparts > 1 ? "s" : " ", shared ? "shared producer," : "producer per thread,", threads[t],
               threads[t] > 1 ? "s" : " ", m, m / base);
    }
    printf("  (issue target: grows with threads - group commit)\n\n");
}

static void section_durable(void)
{
    durable_batches();
    durable_threads();
}

/* ---- 4: consume --------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Read the partition's .log files (at most `bytes` in all) with 1 MB
 * preads.  Returns the seconds taken. */
static double raw_read(const char *pdir, uint64_t bytes)
{
    DIR *d = opendir(pdir);
    if (!d)
        die("opendir partition", -errno);
    char names[64][64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 4 && l < sizeof names[0] && !strcmp(de->d_name + l - 4, ".log"))
            memcpy(names[n++], de->d_name, l + 1); /* l checked: no snprintf to warn about a cut */
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    int fds[64];
    for (int i = 0; i < n; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", pdir, names[i]);
        if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            die("open segment", -errno);
    }
    bu_prefault(g_chunk, RAW_CHUNK);
    uint64_t left = bytes, s = 0;
    uint64_t t0 = now_ns();
    for (int i = 0; i < n && left > 0; i++)
        for (off_t off = 0; left > 0; off += RAW_CHUNK) {
            ssize_t r = pread(fds[i], g_chunk, (size_t)(left < RAW_CHUNK ? left : RAW_CHUNK), off);
            if (r < 0)
                die("pread", -errno);
            if (r == 0)
                break;
            left -= (uint64_t)r;
            s += g_chunk[0];
        }
    double secs = secs_since(t0);
    g_sink += s;
    for (int i = 0; i < n; i++)
        close(fds[i]);
    if (left)
        die("raw read: segments shorter than size_bytes", -EIO);
    return secs;
}

static double consume_run(const char *topic, uint64_t records, const char *const *kv)
{
    klog_conf *conf = conf_of(kv);
    klog_consumer *c;
    char err[256] = "";
    int rc = klog_consumer_new(g_k, conf, &c, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_api: consumer: %s\n", err);
        die("klog_consumer_new", rc);
    }
    klog_conf_free(conf);
    if ((rc = klog_consumer_assign(c, topic, 0, KLOG_OFFSET_BEGINNING)) != 0)
        die("klog_consumer_assign", rc);
    uint64_t got = 0, s = 0;
    uint64_t t0 = now_ns();
    while (got < records) {
        const klog_message *const *m;
        int n = klog_consumer_poll(c, 1000, &m);
        if (n < 0)
            die("klog_consumer_poll", n);
        if (n == 0)
            die("consume: poll timed out before the end", -ETIMEDOUT);
        for (int i = 0; i < n; i++)
            s += m[i]->value_len + ((const uint8_t *)m[i]->value)[0];
        got += (uint64_t)n;
    }
    double secs = secs_since(t0);
    g_sink += s;
    klog_consumer_close(c);
    if (got != records)
        die("consume: record count", KLOG_ECORRUPT);
    return secs;
}

static void section_consume(void)
{
    const uint64_t records = g_a.quick ? 50000 : 1000000;
    char topic[64];
    topic_new(topic, sizeof topic, "consume", 1);
    klog_producer *p = producer_new(k_produce_conf);
    klog_record rec = rec_of(KLOG_PARTITION_ANY, 100);
    for (uint64_t i = 0; i < records; i++)
        send_rec(p, topic, &rec, i);
    producer_close(p);
    uint64_t n, bytes = topic_bytes(topic, &n);
    if (n != records)
        die("consume: records missing from the log", KLOG_ECORRUPT);
    char pdir[4200];
    snprintf(pdir, sizeof pdir, "%s/klog/%s-0", g_a.dir, topic);

    static const char *const deflt[] = { NULL };
    static const char *const big[] = { "max.poll.records", "10000", "fetch.max.bytes", "4194304", NULL };
    /* one untimed pass of each: the segment's pages get mapped once, as a
     * consumer tailing a log finds them */
    consume_run(topic, records, deflt);
    raw_read(pdir, bytes);
    double kd[MAX_REPS], kb[MAX_REPS], raw[MAX_REPS];
    for (int r = 0; r < g_a.reps; r++) {
        raw[r] = raw_read(pdir, bytes);
        kd[r] = consume_run(topic, records, deflt);
        kb[r] = consume_run(topic, records, big);
    }
    double tr = bu_median(raw, g_a.reps), td = bu_median(kd, g_a.reps), tb = bu_median(kb, g_a.reps);
    double mb = (double)bytes / 1e6;
    printf("consume: %" PRIu64 " records, %d-byte keys, 100-byte values, %.1f MB, from the start\n", records, KEY_LEN,
           mb);
    printf("  raw pread, 1 MB reads (same bytes)    %8.2f M rec/s %7.0f MB/s\n", records / tr / 1e6, mb / tr);
    printf("  klog poll, defaults (500/poll)        %8.2f M rec/s %7.0f MB/s   ratio to raw %.2f\n",
           records / td / 1e6, mb / td, tr / td);
    printf("  klog poll, max.poll.records=10000     %8.2f M rec/s %7.0f MB/s   ratio to raw %.2f\n",
           records / tb / 1e6, mb / tb, tr / tb);
    printf("  (issue target: >= 30 M records/s)\n\n");
    topic_drop(topic);
}

/* ---- 5: latency --------------------------------------------------------- */

typedef struct {
    uint64_t *lat;           /* samples, ns */
    size_t n, cap;
    uint64_t record_from;    /* samples sent before this are warm-up */
    _Atomic uint64_t total;  /* records the sender sent; UINT64_MAX until done */
    uint64_t got;
    klog_consumer *c;        /* klog reader */
    int rfd;                 /* pipe reader */
} latrun;

static void lat_note(latrun *L, uint64_t sent, uint64_t now)
{
    if (sent >= L->record_from && L->n < L->cap)
        L->lat[L->n++] = now - sent;
    L->got++;
}

static void *lat_klog_reader(void *arg)
{
    latrun *L = arg;
    while (L->got < atomic_load(&L->total)) {
        const klog_message *const *m;
        int n = klog_consumer_poll(L->c, 1000, &m);
        if (n < 0)
            die("klog_consumer_poll", n);
        uint64_t now = now_ns();
        for (int i = 0; i < n; i++) {
            uint64_t sent;
            memcpy(&sent, m[i]->value, sizeof sent);
            lat_note(L, sent, now);
        }
    }
    return NULL;
}

static void *lat_pipe_reader(void *arg)
{
    latrun *L = arg;
    uint64_t sent;
    for (;;) {
        ssize_t r = read(L->rfd, &sent, sizeof sent);
        if (r == 0)
            break;
        if (r != (ssize_t)sizeof sent) {
            if (r < 0 && errno == EINTR)
                continue;
            die("pipe read", r < 0 ? -errno : -EIO);
        }
        lat_note(L, sent, now_ns());
    }
    return NULL;
}

static void pace_until(uint64_t t, bool spin)
{
    if (spin) {
        while (now_ns() < t)
            __asm__ __volatile__("" ::: "memory");
        return;
    }
    struct timespec ts = { (time_t)(t / 1000000000u), (long)(t % 1000000000u) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)n + 0.999999);
    i = i == 0 ? 0 : i - 1;
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1e3;
}

/* Send at `rate`/s for warm + secs seconds through klog (use_klog) or a
 * pipe; prints one line. */
static void latency_run(const char *label, unsigned rate, double warm, double secs, bool use_klog,
                        const char *spin_us)
{
    latrun L = { 0 };
    uint64_t interval = 1000000000u / rate;
    uint64_t count = (uint64_t)((warm + secs) * rate);
    L.cap = (size_t)count;
    L.lat = calloc(L.cap, sizeof *L.lat); /* not malloc: bu_prefault reads it (minsize builds warn) */
    if (!L.lat)
        die("malloc", -ENOMEM);
    bu_prefault(L.lat, L.cap * sizeof *L.lat);
    atomic_store(&L.total, UINT64_MAX);
    char topic[64];
    klog_producer *p = NULL;
    int pfd[2] = { -1, -1 };
    if (use_klog) {
        static const char *const kv[] = { "acks", "1", "linger.ms", "0", NULL };
        topic_new(topic, sizeof topic, "latency", 1);
        p = producer_new(kv);
        char err[256] = "";
        klog_conf *cc = NULL;
        int rc = klog_conf_new(&cc);
        if (rc == 0 && spin_us)
            rc = klog_conf_set(cc, "poll.spin.us", spin_us, err, sizeof err);
        if (rc == 0)
            rc = klog_consumer_new(g_k, cc, &L.c, err, sizeof err);
        klog_conf_free(cc);
        if (rc)
            die("klog_consumer_new", rc);
        if ((rc = klog_consumer_assign(L.c, topic, 0, KLOG_OFFSET_BEGINNING)) != 0)
            die("klog_consumer_assign", rc);
    } else {
        if (pipe2(pfd, O_CLOEXEC) != 0)
            die("pipe", -errno);
        L.rfd = pfd[0];
    }
    settle();
    uint64_t t0 = now_ns() + 1000000; /* let the reader reach its wait */
    L.record_from = t0 + (uint64_t)(warm * 1e9);
    pthread_t th;
    if (pthread_create(&th, NULL, use_klog ? lat_klog_reader : lat_pipe_reader, &L) != 0)
        die("pthread_create", -EAGAIN);
    bool spin = rate > 20000;
    uint8_t val[100];
    memcpy(val, g_vals, sizeof val);
    klog_record r = KLOG_RECORD_INIT;
    r.partition = 0;
    r.key_len = KEY_LEN;
    r.value = val;
    r.value_len = sizeof val;
    uint64_t late = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t due = t0 + i * interval;
        pace_until(due, spin);
        uint64_t sent = now_ns();
        if (sent > due + interval)
            late++;
        if (use_klog) {
            memcpy(val, &sent, sizeof sent);
            r.key = key_at(i);
            int rc = klog_producer_send(p, topic, &r);
            if (rc)
                die("klog_producer_send", rc);
        } else if (write(pfd[1], &sent, sizeof sent) != (ssize_t)sizeof sent) {
            die("pipe write", -errno);
        }
    }
    double took = secs_since(t0);
    atomic_store(&L.total, count);
    if (use_klog) {
        klog_consumer_wakeup(L.c);
    } else {
        close(pfd[1]);
    }
    pthread_join(th, NULL);
    if (use_klog) {
        klog_consumer_close(L.c);
        producer_close(p);
        topic_drop(topic);
    } else {
        close(pfd[0]);
    }
    qsort(L.lat, L.n, sizeof *L.lat, cmp_u64);
    printf("  %-27s %7.0f/s sent %7zu samples  p50 %7.1f  p99 %7.1f  p99.9 %8.1f  max %8.1f us%s\n", label,
           (double)count / took, L.n, pct_us(L.lat, L.n, 0.50), pct_us(L.lat, L.n, 0.99), pct_us(L.lat, L.n, 0.999),
           L.n ? (double)L.lat[L.n - 1] / 1e3 : 0.0, late > count / 100 ? "  (sender fell behind)" : "");
    free(L.lat);
}

static void section_latency(void)
{
    const double warm = g_a.quick ? 0.02 : 0.2, secs = g_a.quick ? 0.1 : 2.0;
    static const unsigned rates[] = { 10000, 100000 };
    printf("latency: end to end in one process, 16-byte keys, 100-byte values, acks=1 linger.ms=0, blocking poll;\n"
           "  %.2f s warm-up then %.2f s measured per rate, paced on absolute deadlines (spin above 20,000/s)\n",
           warm, secs);
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "pipe(2) baseline, %u/s", rates[i]);
        latency_run(label, rates[i], warm, secs, false, NULL);
        snprintf(label, sizeof label, "klog, %u/s", rates[i]);
        latency_run(label, rates[i], warm, secs, true, NULL);
        snprintf(label, sizeof label, "klog, spin 200us, %u/s", rates[i]);
        latency_run(label, rates[i], warm, secs, true, "200");
    }
    printf("  (issue target: klog p99 <= 15 us)\n\n");
}

/* ---- main --------------------------------------------------------------- */

static void section_produce_100(void)
{
    section_produce("produce-100", 1000000, 100, ">= 13 M records/s and >= 0.5 of raw");
}

static void section_produce_1k(void)
{
    section_produce("produce-1k", 500000, 1024, ">= 0.8 of raw");
}

static const bu_section k_sections[] = {
    { "produce-100", section_produce_100 },
    { "produce-1k", section_produce_1k },
    { "durable", section_durable },
    { "consume", section_consume },
    { "latency", section_latency },
};
#define NSECTIONS (sizeof k_sections / sizeof k_sections[0])

int main(int argc, char **argv)
{
    int prc = bu_parse(argc, argv, "bench_api", k_sections, NSECTIONS, true, 5, MAX_REPS, &g_a);
    if (prc)
        return prc;
    char kdir[4200], err[256] = "";
    snprintf(kdir, sizeof kdir, "%s/klog", g_a.dir);
    int rc = klog_open(&g_k, kdir, NULL, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_api: klog_open %s: %s\n", kdir, err);
        die("klog_open", rc);
    }
    data_init();
    const char *ver;
    klog_version(&ver);
    printf("bench_api: klog %s, I/O backend %s, dir %s, median of %d run(s)%s\n\n", ver, klog_io_backend(g_k), g_a.base,
           g_a.reps, g_a.quick ? " (--quick: tiny sizes, checks only that it runs)" : "");
    fflush(stdout);
    bu_run(k_sections, NSECTIONS, &g_a);
    rc = klog_close(g_k);
    if (rc)
        die("klog_close", rc);
    bu_cleanup("bench_api", &g_a);
    free(g_keys);
    free(g_vals);
    free(g_chunk);
    return 0;
}
