/*
 * bench/bench_footprint.c - memory, descriptors and time with many partitions
 * (issue 18), measured as a user would: through the public API only, each
 * figure in a fresh process so that no heap another phase left behind hides
 * or adds to it.
 *
 *   bench_footprint [--dir DIR] [--quick] [--parts N] [--bytes B] [--scale N]
 *                   [--open-files N]
 *   bench_footprint [--dir DIR] --soak SECONDS [--batch-size B]
 *   bench_footprint [--dir DIR] --follow SECONDS
 *   bench_footprint [--dir DIR] --crash BYTES [--checkpoint-ms MS] [--unchecked-max BYTES]
 *
 * Phases (each one a child process running this program with --child):
 *   1. create an instance with one topic of --parts partitions (100) and ten
 *      100-byte records in each, close;
 *   2. reopen it and sit idle: RSS over the process's own baseline (taken in
 *      main, before klog_open), open descriptors;
 *   3. produce --bytes (1 GiB) across the partitions, then idle: the same;
 *   4. reopen that and sit idle: the same;
 *   5. --scale partitions (10,000) in a fresh instance: create and close
 *      times; reopen time and descriptors; one record written to and read
 *      back from every partition through the file-handle cache
 *      (log.max.open.files, --open-files), and the close after that;
 *      reopen and idle close times again.
 * --soak runs, instead, one instance under steady load for SECONDS: a
 * producer at a bounded rate (4 MB/s) into 8 partitions with small segments
 * and retention.bytes (so segments roll and are deleted all along), a
 * subscribed group consumer committing every second, RSS sampled every
 * second; it prints the series' start (after a 10 s warm-up), max and end
 * (the target: flat), and every minute where the anonymous memory is
 * (/proc/self/smaps by kind of mapping, malloc_info(3) by arena) beside
 * the producer's buffer.memory in use (klog_stats: its pooled batches),
 * and the least and most anonymous memory of the seconds since the last
 * such line (the least is what stays; the most includes the batches a
 * stall of the producer filled deeper, live until they are written).
 * --batch-size sets the soak producer's batch.size (default 1000000).
 * --follow: a writer process appends a record every 5 ms (acks=1) and a
 * read-only instance in this process tails it: the time from send to
 * poll (wall clocks of one machine).
 * --crash: a writer process produces BYTES into one partition of 1 GiB
 * segments with acks=1 and is killed (SIGKILL) at once; then the time a
 * reopen takes (the recovery), with --checkpoint-ms as
 * log.flush.offset.checkpoint.interval.ms and --unchecked-max as
 * log.recovery.unchecked.max.bytes (the writer's).
 * Each figure is printed beside the target.  --quick shrinks it all
 * (for `meson test --suite bench`): the figures then say nothing.
 * The machine this runs on may be loaded: times are for ratios.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>

#include "bench_util.h"

#define TOPIC "fp"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the child's side ---------------------------------------------------- */

typedef struct mem { long rss, anon, file; } mem; /* KiB, /proc/self/status */

static mem mem_now(void)
{
    mem m = { 0, 0, 0 };
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %ld", &m.rss);
        sscanf(line, "RssAnon: %ld", &m.anon);
        sscanf(line, "RssFile: %ld", &m.file);
    }
    if (f)
        fclose(f);
    return m;
}

static int fds_now(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n - 1; /* the one opendir holds */
}

static mem base_mem;
static int base_fds;
static const char *open_files; /* --open-files, or NULL: the default */
static const char *ckpt_ms;    /* --checkpoint-ms, or NULL: the default */
static const char *soak_batch; /* --batch-size for the soak's producer, or NULL: the default */
static const char *unchecked_max; /* --unchecked-max, or NULL: the default */

static void report_idle(const char *what)
{
    usleep(300 * 1000); /* let the background thread settle */
    mem m = mem_now();
    printf("%s_rss=%ld %s_anon=%ld %s_file=%ld %s_fds=%d\n", what, m.rss - base_mem.rss, what,
           m.anon - base_mem.anon, what, m.file - base_mem.file, what, fds_now() - base_fds);
}

static int die(const char *what, int rc, const char *err)
{
    fprintf(stderr, "bench_footprint: %s: %s%s%s\n", what, klog_strerror(rc), err && *err ? ": " : "",
            err ? err : "");
    return 1;
}

static int open_instance(klog **k, const char *dir, char *err, size_t errsize)
{
    klog_conf *c;
    int rc = klog_conf_new(&c);
    if (rc == 0 && open_files)
        rc = klog_conf_set(c, "log.max.open.files", open_files, err, errsize);
    if (rc == 0 && ckpt_ms)
        rc = klog_conf_set(c, "log.flush.offset.checkpoint.interval.ms", ckpt_ms, err, errsize);
    if (rc == 0 && unchecked_max)
        rc = klog_conf_set(c, "log.recovery.unchecked.max.bytes", unchecked_max, err, errsize);
    if (rc == 0)
        rc = klog_open(k, dir, c, err, errsize);
    klog_conf_free(c);
    return rc;
}

/* Send `per` records of `len` bytes to each of n partitions, round robin. */
static int produce(klog *k, int n, long per, size_t len)
{
    char err[256] = "";
    klog_conf *c;
    klog_producer *p;
    int rc = klog_conf_new(&c);
    if (rc == 0)
        rc = klog_conf_set(c, "linger.ms", "20", err, sizeof err);
    /* a batch per partition open at once: 100 of the default 1 MB would
     * not fit the default buffer.memory, and the producer would send one
     * record per batch */
    if (rc == 0)
        rc = klog_conf_set(c, "batch.size", "65536", err, sizeof err);
    if (rc == 0)
        rc = klog_producer_new(k, c, &p, err, sizeof err);
    klog_conf_free(c);
    if (rc < 0)
        return die("producer", rc, err);
    char *v = malloc(len);
    memset(v, 'v', len);
    for (long i = 0; i < per && rc >= 0; i++)
        for (int q = 0; q < n && rc >= 0; q++) {
            klog_record r = KLOG_RECORD_INIT;
            r.partition = q;
            r.value = v;
            r.value_len = len;
            rc = klog_producer_send(p, TOPIC, &r);
        }
    if (rc >= 0)
        rc = klog_producer_flush(p, 600000);
    int cr = klog_producer_close(p);
    free(v);
    if (rc >= 0)
        rc = cr;
    return rc < 0 ? die("produce", rc, NULL) : 0;
}

/* Read every partition from its start: `want` records each. */
static int read_all(klog *k, int n, long want)
{
    char err[256] = "";
    klog_consumer *c;
    int rc = klog_consumer_new(k, NULL, &c, err, sizeof err);
    if (rc < 0)
        return die("consumer", rc, err);
    long bad = 0;
    for (int q = 0; q < n && rc >= 0; q++) {
        if ((rc = klog_consumer_assign(c, TOPIC, q, KLOG_OFFSET_BEGINNING)) < 0)
            break;
        long got = 0;
        for (int tries = 0; got < want && tries < 1000; tries++) {
            const klog_message *const *m;
            int r = klog_consumer_poll(c, 100, &m);
            if (r < 0) {
                rc = r;
                break;
            }
            got += r;
        }
        bad += got != want;
        if (rc >= 0)
            rc = klog_consumer_unassign(c, TOPIC, q);
    }
    klog_consumer_close(c);
    if (rc < 0)
        return die("read", rc, NULL);
    printf("unreadable=%ld\n", bad);
    return 0;
}

/* --child MODE DIR N [BYTES] */
static int child(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *mode = argv[0], *dir = argv[1];
    int n = atoi(argv[2]);
    long long bytes = argc > 3 ? atoll(argv[3]) : 0;
    char err[256] = "";
    klog *k;
    base_mem = mem_now();
    base_fds = fds_now();
    double t0 = now_s();
    int rc = open_instance(&k, dir, err, sizeof err);
    if (rc < 0)
        return die("klog_open", rc, err);
    double t_open = now_s() - t0;
    if (!strcmp(mode, "create")) {
        /* a fresh instance: time the topic's creation, then ten 100-byte
         * records per partition (the measurement) */
        t0 = now_s();
        if ((rc = klog_topic_create(k, TOPIC, n, NULL, err, sizeof err)) < 0)
            return die("klog_topic_create", rc, err);
        printf("create_s=%.3f\n", now_s() - t0);
        if (bytes > 0 && produce(k, n, 10, 100) != 0)
            return 1;
        report_idle("created");
    } else if (!strcmp(mode, "reopen")) {
        printf("open_s=%.3f\n", t_open);
        report_idle("idle");
    } else if (!strcmp(mode, "produce")) {
        size_t len = 1000;
        long per = (long)(bytes / (long long)len / n);
        if (produce(k, n, per > 0 ? per : 1, len) != 0)
            return 1;
        malloc_trim(0); /* what the producer's buffers left in the heap is not the instance's */
        report_idle("produced");
    } else if (!strcmp(mode, "crash")) {
        /* a writer killed (SIGKILL) right after producing BYTES into one
         * partition of 1 GiB segments, acks=1 */
        klog_conf *tc;
        if ((rc = klog_conf_new(&tc)) == 0)
            rc = klog_topic_create(k, TOPIC, 1, tc, err, sizeof err);
        klog_conf_free(tc);
        if (rc < 0)
            return die("klog_topic_create", rc, err);
        long per = (long)(bytes / 1000);
        if (produce(k, 1, per > 0 ? per : 1, 1000) != 0)
            return 1;
        printf("produced\n");
        fflush(stdout);
        raise(SIGKILL);
    } else if (!strcmp(mode, "rw")) {
        /* every partition written and read back through the handle cache */
        printf("open_s=%.3f\n", t_open);
        report_idle("idle");
        if (produce(k, n, 1, 100) != 0 || read_all(k, n, 1 + (long)bytes) != 0)
            return 1;
        malloc_trim(0); /* the producer's and consumer's buffers are theirs */
        report_idle("used");
    } else {
        return 2;
    }
    t0 = now_s();
    rc = klog_close(k);
    printf("close_s=%.3f\n", now_s() - t0);
    return rc < 0 ? die("klog_close", rc, NULL) : 0;
}


/* ---- --soak: steady load, RSS sampled ---------------------------------------- */

#define SOAK_PARTS 8
#define SOAK_RATE (4 << 20) /* bytes per second produced */

typedef struct soak {
    klog *k;
    _Atomic bool stop;
    _Atomic long long produced, consumed;
    _Atomic int err;
} soak;

static void soak_fail(soak *s, int rc)
{
    int zero = 0;
    atomic_compare_exchange_strong(&s->err, &zero, rc);
    atomic_store(&s->stop, true);
}

static void *soak_producer(void *arg)
{
    soak *s = arg;
    char err[256] = "";
    klog_conf *c;
    klog_producer *p = NULL;
    int rc = klog_conf_new(&c);
    if (rc == 0)
        rc = klog_conf_set(c, "linger.ms", "5", err, sizeof err);
    if (rc == 0 && soak_batch)
        rc = klog_conf_set(c, "batch.size", soak_batch, err, sizeof err);
    if (rc == 0)
        rc = klog_producer_new(s->k, c, &p, err, sizeof err);
    klog_conf_free(c);
    if (rc < 0) {
        soak_fail(s, rc);
        return NULL;
    }
    char v[1000];
    memset(v, 'v', sizeof v);
    double t0 = now_s();
    long long sent = 0;
    while (!atomic_load(&s->stop)) {
        /* bounded rate: ahead of it, sleep */
        if ((double)sent * sizeof v > (now_s() - t0) * SOAK_RATE) {
            usleep(2000);
            continue;
        }
        klog_record r = KLOG_RECORD_INIT;
        r.partition = (int32_t)(sent % SOAK_PARTS);
        r.value = v;
        r.value_len = sizeof v;
        if ((rc = klog_producer_send(p, TOPIC, &r)) < 0) {
            soak_fail(s, rc);
            break;
        }
        sent++;
    }
    klog_producer_flush(p, 10000);
    klog_producer_close(p);
    atomic_store(&s->produced, sent);
    return NULL;
}

static void *soak_consumer(void *arg)
{
    soak *s = arg;
    char err[256] = "";
    klog_conf *c;
    klog_consumer *cons = NULL;
    int rc = klog_conf_new(&c);
    if (rc == 0)
        rc = klog_conf_set(c, "group.id", "soak", err, sizeof err);
    if (rc == 0)
        rc = klog_conf_set(c, "auto.commit.interval.ms", "1000", err, sizeof err);
    if (rc == 0)
        rc = klog_consumer_new(s->k, c, &cons, err, sizeof err);
    klog_conf_free(c);
    const char *topics[] = { TOPIC };
    if (rc == 0)
        rc = klog_consumer_subscribe(cons, topics, 1);
    while (rc >= 0 && !atomic_load(&s->stop)) {
        const klog_message *const *m;
        int r = klog_consumer_poll(cons, 100, &m);
        if (r < 0 && r != KLOG_EREBALANCE && r != KLOG_EOFFSET)
            rc = r;
        else if (r > 0)
            atomic_fetch_add(&s->consumed, r);
    }
    if (rc < 0)
        soak_fail(s, rc);
    klog_consumer_close(cons);
    return NULL;
}

/* Where the anonymous memory is, from /proc/self/smaps, KiB: the main
 * arena's brk heap, glibc's thread arenas (heaps aligned to their 64 MiB
 * reservation), thread stacks (a mapping after a small PROT_NONE guard),
 * anything else anonymous (malloc's mmapped chunks, klog's scratch maps),
 * and copied-on-write pages of file mappings. */
typedef struct anon_split {
    long heap, arenas, stacks, other, filepriv;
    int n_arenas, n_stacks, n_other;
} anon_split;

static anon_split anon_now(void)
{
    anon_split a = { 0 };
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    unsigned long lo = 0, hi = 0, prev_lo = 0, prev_hi = 0;
    char perms[8] = "", prev_perms[8] = "";
    int kind = 0; /* 0 file, 1 heap, 2 arena, 3 stack, 4 other, 5 stack of the main thread */
    while (f && fgets(line, sizeof line, f)) {
        unsigned long x, y;
        char pm[8], path[256] = "";
        long kb;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &x, &y, pm, path) >= 3 && strchr(line, '-') < strchr(line, ' ')) {
            prev_lo = lo, prev_hi = hi;
            memcpy(prev_perms, perms, sizeof perms);
            lo = x, hi = y;
            memcpy(perms, pm, sizeof perms);
            if (!strcmp(path, "[heap]"))
                kind = 1;
            else if (!strcmp(path, "[stack]"))
                kind = 5;
            else if (path[0] == '/' || path[0] == '[' || path[0] == 'a') /* files, [vdso], anon_inode: */
                kind = 0;
            else if (lo % (64ul << 20) == 0)
                kind = 2;
            else if (prev_hi == lo && !strcmp(prev_perms, "---p") && prev_hi - prev_lo <= (64ul << 10))
                kind = 3;
            else
                kind = 4;
            if (perms[0] == 'r' && kind >= 2 && kind <= 4)
                (*(kind == 2 ? &a.n_arenas : kind == 3 ? &a.n_stacks : &a.n_other))++;
        } else if (sscanf(line, "Anonymous: %ld", &kb) == 1) {
            long *slot[] = { &a.filepriv, &a.heap, &a.arenas, &a.stacks, &a.other, &a.stacks };
            *slot[kind] += kb;
        }
    }
    if (f)
        fclose(f);
    return a;
}

/* malloc_info(3): the number of arenas, and the bytes they hold from the
 * system and keep free (KiB, summed over the arenas; the main arena's, heap
 * nr 0, apart too).  A thread arena's resident pages can never exceed what
 * it holds from the system. */
typedef struct arenas { int n; long system, free, main_system; long each[16]; } arenas;

static arenas arenas_now(void)
{
    arenas r = { 0 };
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return r;
    malloc_info(0, f);
    fclose(f);
    bool in_heap = false;
    for (char *l = buf; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = '\0';
        long long v;
        if (strstr(l, "<heap nr="))
            in_heap = true, r.n++;
        else if (strstr(l, "</heap>"))
            in_heap = false;
        else if (in_heap && sscanf(l, " <system type=\"current\" size=\"%lld\"", &v) == 1)
        {
            r.system += (long)(v >> 10), r.main_system += r.n == 1 ? (long)(v >> 10) : 0;
            if (r.n <= 16)
                r.each[r.n - 1] = (long)(v >> 10);
        }
        else if (in_heap && sscanf(l, " <total type=\"rest\" count=\"%*d\" size=\"%lld\"", &v) == 1)
            r.free += (long)(v >> 10);
        else if (in_heap && sscanf(l, " <total type=\"fast\" count=\"%*d\" size=\"%lld\"", &v) == 1)
            r.free += (long)(v >> 10);
        l = nl ? nl + 1 : NULL;
    }
    free(buf);
    return r;
}

/* The soak producer's buffer.memory in use (its batches, pooled ones
 * included), KiB, from klog_stats; -1 if not found. */
static long producer_pool_kib(klog *k)
{
    char *js = NULL;
    long v = -1;
    if (klog_stats(k, KLOG_STATS_JSON, &js) == 0 && js) {
        const char *q = strstr(js, "\"queue_bytes\":");
        if (q)
            v = atol(q + strlen("\"queue_bytes\":")) / 1024;
    }
    klog_free(js);
    return v;
}

static void soak_sample(klog *k, int t, long rss, long anon, long amin, long amax, long long consumed,
                        const anon_split *a0, bool last)
{
    struct mallinfo2 mi = mallinfo2();
    anon_split a = anon_now();
    arenas ar = arenas_now();
    printf("  t=%5d s rss=%ld anon=%ld (since the last line: %ld..%ld) | anon by mapping (over start): heap=%+ld arenas(%d)=%+ld "
           "stacks(%d)=%+ld other(%d)=%+ld filepriv=%+ld | malloc: arenas=%d system=%ld (threads' %ld) free=%ld "
           "in_use=%zu mmapped=%zu | producer buffer.memory in use=%ld | consumed=%lld\n",
           t, rss, anon, amin, amax, a.heap - a0->heap, a.n_arenas, a.arenas - a0->arenas, a.n_stacks, a.stacks - a0->stacks,
           a.n_other, a.other - a0->other, a.filepriv - a0->filepriv, ar.n, ar.system, ar.system - ar.main_system, ar.free,
           mi.uordblks / 1024, mi.hblkhd / 1024, producer_pool_kib(k), consumed);
    if (last) {
        printf("  each arena's bytes from the system, KiB (nr 0 the main one):");
        for (int i = 0; i < ar.n && i < 16; i++)
            printf(" %ld", ar.each[i]);
        printf("\n");
    }
}

static int soak_run(const char *dir, int seconds)
{
    char err[256] = "";
    soak s = { 0 };
    mem base = mem_now();
    anon_split a0 = anon_now();
    klog_conf *c, *tc;
    int rc = klog_conf_new(&c);
    if (rc == 0)
        rc = klog_open(&s.k, dir, c, err, sizeof err);
    klog_conf_free(c);
    if (rc < 0)
        return die("klog_open", rc, err);
    /* small segments and a retention size: rolls and deletions all along */
    if ((rc = klog_conf_new(&tc)) == 0 && (rc = klog_conf_set(tc, "segment.bytes", "4194304", err, sizeof err)) == 0)
        rc = klog_conf_set(tc, "retention.bytes", "16777216", err, sizeof err);
    if (rc == 0)
        rc = klog_topic_create(s.k, TOPIC, SOAK_PARTS, tc, err, sizeof err);
    klog_conf_free(tc);
    if (rc < 0)
        return die("klog_topic_create", rc, err);
    pthread_t pt, ct;
    pthread_create(&pt, NULL, soak_producer, &s);
    pthread_create(&ct, NULL, soak_consumer, &s);
    long start = -1, max = 0, end = 0, min = -1, anon_start = -1, anon_max = 0, anon_end = 0;
    long amin = -1, amax = 0; /* anonymous, since the last sample printed: a floor under transients */
    double t0 = now_s();
    printf("soak: %d s, %d partitions, %d MB/s; RSS over baseline, KiB\n", seconds, SOAK_PARTS, SOAK_RATE >> 20);
    for (int i = 1; i <= seconds && !atomic_load(&s.stop); i++) {
        double wake = t0 + i;
        while (now_s() < wake)
            usleep(20000);
        mem m = mem_now();
        long rss = m.rss - base.rss;
        if (i == 10 || (start < 0 && i == seconds))
            start = rss;
        if (i >= 10) {
            max = rss > max ? rss : max;
            min = min < 0 || rss < min ? rss : min;
        }
        end = rss;
        long anon = m.anon - base.anon;
        anon_end = anon;
        if (i >= 10) {
            anon_start = anon_start < 0 ? anon : anon_start;
            anon_max = anon > anon_max ? anon : anon_max;
        }
        amin = amin < 0 || anon < amin ? anon : amin;
        amax = anon > amax ? anon : amax;
        if (i % 60 == 0 || i == 10 || i == seconds) {
            soak_sample(s.k, i, rss, anon, amin, amax, (long long)atomic_load(&s.consumed), &a0, i == seconds);
            amin = -1, amax = 0;
        }
        fflush(stdout);
    }
    atomic_store(&s.stop, true);
    pthread_join(pt, NULL);
    pthread_join(ct, NULL);
    uint64_t used = 0;
    klog_disk_usage(s.k, &used, NULL);
    printf("soak_rss_start=%ld soak_rss_min=%ld soak_rss_max=%ld soak_rss_end=%ld (KiB over baseline, "
           "from t=10 s)\n", start, min, max, end);
    printf("soak_anon_start=%ld soak_anon_max=%ld soak_anon_end=%ld (KiB; the rest is file-backed: the "
           "segments' mappings, bounded by retention.bytes)\n", anon_start, anon_max, anon_end);
    printf("produced=%lld consumed=%lld disk_used=%" PRIu64 " bytes\n", (long long)atomic_load(&s.produced),
           (long long)atomic_load(&s.consumed), used);
    rc = klog_close(s.k);
    if (atomic_load(&s.err) < 0)
        return die("soak", atomic_load(&s.err), NULL);
    return rc < 0 ? die("klog_close", rc, NULL) : 0;
}


/* ---- --follow: a reader process beside a writer process ----------------------- */

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The writer (a child process): one record every 5 ms, acks=1, its value
 * the wall time of its send in microseconds; the last one "end". */
static void follow_writer(const char *dir, int seconds, int ready_fd)
{
    char err[256] = "";
    klog *k;
    klog_conf *c;
    klog_producer *p;
    if (klog_open(&k, dir, NULL, err, sizeof err) < 0 || klog_topic_create(k, TOPIC, 1, NULL, err, sizeof err) < 0)
        _exit(10);
    if (write(ready_fd, "r", 1) != 1)
        _exit(11);
    if (klog_conf_new(&c) < 0 || klog_conf_set(c, "linger.ms", "0", err, sizeof err) < 0 ||
        klog_producer_new(k, c, &p, err, sizeof err) < 0)
        _exit(12);
    klog_conf_free(c);
    usleep(300 * 1000); /* the reader opens */
    double end = now_s() + seconds;
    for (bool last = false; !last;) {
        last = now_s() >= end;
        char v[32];
        snprintf(v, sizeof v, last ? "end" : "%lld", (long long)wall_us());
        klog_record r = KLOG_RECORD_INIT;
        r.value = v;
        r.value_len = strlen(v);
        if (klog_producer_send(p, TOPIC, &r) < 0 || klog_producer_flush(p, 10000) < 0)
            _exit(13);
        usleep(5000);
    }
    klog_producer_close(p);
    _exit(klog_close(k) < 0 ? 14 : 0);
}

static int follow_run(const char *dir, int seconds)
{
    int fds[2];
    if (pipe(fds) < 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        follow_writer(dir, seconds, fds[1]);
    }
    close(fds[1]);
    char ready;
    if (read(fds[0], &ready, 1) != 1)
        return die("the writer", -EIO, "did not start");
    close(fds[0]);
    char err[256] = "";
    klog *k;
    klog_conf *c;
    klog_consumer *cons;
    int rc = klog_conf_new(&c);
    if (rc == 0)
        rc = klog_conf_set(c, "read.only", "true", err, sizeof err);
    if (rc == 0)
        rc = klog_open(&k, dir, c, err, sizeof err);
    klog_conf_free(c);
    if (rc < 0)
        return die("read-only klog_open", rc, err);
    if ((rc = klog_consumer_new(k, NULL, &cons, err, sizeof err)) < 0 ||
        (rc = klog_consumer_assign(cons, TOPIC, 0, KLOG_OFFSET_BEGINNING)) < 0)
        return die("consumer", rc, err);
    size_t cap = (size_t)seconds * 400 + 1000, n = 0;
    int64_t *lat = malloc(cap * sizeof *lat);
    bool done = false;
    double deadline = now_s() + seconds + 60;
    while (!done && now_s() < deadline) {
        const klog_message *const *m;
        int r = klog_consumer_poll(cons, 100, &m);
        int64_t now = wall_us();
        for (int i = 0; i < r; i++) {
            char v[32];
            size_t l = m[i]->value_len < sizeof v - 1 ? m[i]->value_len : sizeof v - 1;
            memcpy(v, m[i]->value, l);
            v[l] = '\0';
            if (!strcmp(v, "end"))
                done = true;
            else if (n < cap)
                lat[n++] = now - atoll(v);
        }
    }
    klog_consumer_close(cons);
    klog_close(k);
    int st;
    waitpid(pid, &st, 0);
    if (!done || n == 0)
        return die("follow", -EIO, "the reader did not see the writer's last record");
    qsort(lat, n, sizeof *lat, cmp_i64);
    printf("follow: %zu records, one every 5 ms from a writer process (acks=1) to a read-only reader\n", n);
    printf("  append to poll, microseconds: p50 %lld  p90 %lld  p99 %lld  max %lld\n", (long long)lat[n / 2],
           (long long)lat[n * 9 / 10], (long long)lat[n * 99 / 100], (long long)lat[n - 1]);
    free(lat);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

/* ---- the parent's side ----------------------------------------------------- */

typedef struct kv { char text[4096]; } kv;

/* Run this program with --child ARGS; its output in out.  0 or -1. */
static int run(kv *out, const char *mode, const char *dir, int n, long long bytes)
{
    char ns[32], bs[32];
    snprintf(ns, sizeof ns, "%d", n);
    snprintf(bs, sizeof bs, "%lld", bytes);
    int fd[2];
    if (pipe(fd) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        const char *av[16];
        int a = 0;
        av[a++] = "bench_footprint";
        if (open_files) {
            av[a++] = "--open-files";
            av[a++] = open_files;
        }
        if (ckpt_ms) {
            av[a++] = "--checkpoint-ms";
            av[a++] = ckpt_ms;
        }
        if (unchecked_max) {
            av[a++] = "--unchecked-max";
            av[a++] = unchecked_max;
        }
        av[a++] = "--child";
        av[a++] = mode;
        av[a++] = dir;
        av[a++] = ns;
        av[a++] = bs;
        av[a] = NULL;
        execv("/proc/self/exe", (char *const *)av);
        _exit(127);
    }
    close(fd[1]);
    size_t have = 0;
    ssize_t r;
    while ((r = read(fd[0], out->text + have, sizeof out->text - 1 - have)) > 0)
        have += (size_t)r;
    out->text[have] = '\0';
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static double get(const kv *o, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "%s=", key);
    for (const char *p = o->text; (p = strstr(p, pat)) != NULL; p++)
        if (p == o->text || p[-1] == ' ' || p[-1] == '\n')
            return atof(p + strlen(pat));
    return -1;
}

static int fails;

static void line(const char *what, double v, const char *unit, const char *target, bool ok)
{
    printf("  %-46s %10.3f %-4s target %-10s %s\n", what, v, unit, target, ok ? "ok" : "MISSED");
    fails += !ok;
}

int main(int argc, char **argv)
{
    const char *base = "/tmp/klog-bench";
    bool quick = false;
    int parts = 100, scale = 10000;
    long long bytes = 1ll << 30;
    int soak_s = 0;
    long long crash_bytes = 0;
    int follow_s = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--child"))
            return child(argc - i - 1, argv + i + 1);
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            base = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--parts") && i + 1 < argc)
            parts = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
            bytes = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--open-files") && i + 1 < argc)
            open_files = argv[++i];
        else if (!strcmp(argv[i], "--soak") && i + 1 < argc)
            soak_s = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--follow") && i + 1 < argc)
            follow_s = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--crash") && i + 1 < argc)
            crash_bytes = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--unchecked-max") && i + 1 < argc)
            unchecked_max = argv[++i];
        else if (!strcmp(argv[i], "--batch-size") && i + 1 < argc)
            soak_batch = argv[++i];
        else if (!strcmp(argv[i], "--checkpoint-ms") && i + 1 < argc)
            ckpt_ms = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--dir DIR] [--quick] [--parts N] [--bytes B] [--scale N] "
                            "[--open-files N] [--soak SECONDS [--batch-size B]] [--follow SECONDS] "
                            "[--crash BYTES [--checkpoint-ms MS] [--unchecked-max BYTES]]\n", argv[0]);
            return 2;
        }
    }
    if (quick) {
        parts = 20;
        scale = 200;
        bytes = 8 << 20;
        if (!open_files)
            open_files = "16";
    }
    if (parts < 1 || scale < 1 || parts > 10000 || scale > 10000 || bytes < 0)
        return 2;
    bool made = mkdir(base, 0755) == 0;
    char dir[4096], a[4200], b[4200];
    snprintf(dir, sizeof dir, "%s/bench_footprint.%d", base, (int)getpid());
    if (mkdir(dir, 0755) != 0) {
        fprintf(stderr, "bench_footprint: cannot make %s\n", dir);
        return 1;
    }
    kv o;
    if (crash_bytes > 0) {
        /* recovery after kill -9 of a writer: reopen time */
        snprintf(a, sizeof a, "%s/crash", dir);
        printf("recovery: %.2f GiB in 1 GiB segments, acks=1, writer killed; "
               "log.flush.offset.checkpoint.interval.ms %s, log.recovery.unchecked.max.bytes %s\n",
               (double)crash_bytes / (1 << 30), ckpt_ms ? ckpt_ms : "(default)",
               unchecked_max ? unchecked_max : "(default)");
        double t0 = now_s();
        run(&o, "crash", a, 1, crash_bytes); /* killed: its status says so */
        bool produced = strstr(o.text, "produced") != NULL;
        printf("  written in %.1f s%s\n", now_s() - t0, produced ? "" : " (the writer FAILED)");
        int rr = run(&o, "reopen", a, 1, 0);
        line("reopen after kill -9", get(&o, "open_s"), "s", "< 0.5", get(&o, "open_s") < 0.5);
        bu_rm_rf("bench_footprint", a);
        rmdir(dir);
        if (made)
            rmdir(base);
        return produced && rr == 0 ? 0 : 1;
    }
    if (follow_s > 0) {
        snprintf(a, sizeof a, "%s/follow", dir);
        int rc = follow_run(a, follow_s);
        bu_rm_rf("bench_footprint", a);
        rmdir(dir);
        if (made)
            rmdir(base);
        return rc;
    }
    if (soak_s > 0) {
        snprintf(a, sizeof a, "%s/soak", dir);
        int rc = soak_run(a, soak_s);
        bu_rm_rf("bench_footprint", a);
        rmdir(dir);
        if (made)
            rmdir(base);
        return rc;
    }
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    int bad = 0;
    printf("bench_footprint: %d partitions, %.0f MiB produced; %d partitions for scale%s\n", parts,
           (double)bytes / (1 << 20), scale, quick ? " (quick: figures mean nothing)" : "");

    printf("1. %d partitions, ten 100-byte records each\n", parts);
    bad |= run(&o, "create", a, parts, 1);
    line("create", get(&o, "create_s"), "s", "-", true);
    printf("2. reopened, idle\n");
    bad |= run(&o, "reopen", a, parts, 0);
    line("RSS over baseline (MiB)", get(&o, "idle_rss") / 1024, "MiB", "<= 4", get(&o, "idle_rss") <= 4096);
    printf("  %-46s %10.3f MiB (file-backed %.3f MiB)\n", "  of which anonymous", get(&o, "idle_anon") / 1024,
           get(&o, "idle_file") / 1024);
    line("open descriptors", get(&o, "idle_fds"), "", "-", true);
    line("reopen", get(&o, "open_s"), "s", "-", true);
    printf("3. %.0f MiB produced across them (1000-byte records), producer closed, idle\n",
           (double)bytes / (1 << 20));
    bad |= run(&o, "produce", a, parts, bytes);
    line("RSS over baseline (MiB)", get(&o, "produced_rss") / 1024, "MiB", "-", true);
    printf("  %-46s %10.3f MiB (file-backed %.3f MiB)\n", "  of which anonymous",
           get(&o, "produced_anon") / 1024, get(&o, "produced_file") / 1024);
    line("close", get(&o, "close_s"), "s", "-", true);
    printf("4. reopened after that, idle\n");
    bad |= run(&o, "reopen", a, parts, 0);
    line("RSS over baseline (MiB)", get(&o, "idle_rss") / 1024, "MiB", "<= 4", get(&o, "idle_rss") <= 4096);
    printf("  %-46s %10.3f MiB (file-backed %.3f MiB)\n", "  of which anonymous", get(&o, "idle_anon") / 1024,
           get(&o, "idle_file") / 1024);
    line("open descriptors", get(&o, "idle_fds"), "", "-", true);
    line("reopen", get(&o, "open_s"), "s", "-", true);
    line("close", get(&o, "close_s"), "s", "-", true);
    bu_rm_rf("bench_footprint", a);

    int cap = open_files ? atoi(open_files) : 1024;
    char capt[32];
    snprintf(capt, sizeof capt, "<= %d+2", cap); /* the cap, the directory lock, a ring */
    printf("5. %d partitions in one topic (log.max.open.files %d)\n", scale, cap);
    bad |= run(&o, "create", b, scale, 0);
    line("create", get(&o, "create_s"), "s", "< 2", get(&o, "create_s") < 2);
    line("close (idle)", get(&o, "close_s"), "s", "< 1", get(&o, "close_s") < 1);
    bad |= run(&o, "rw", b, scale, 0); /* each partition: the one record rw writes */
    line("reopen", get(&o, "open_s"), "s", "< 1", get(&o, "open_s") < 1);
    line("open descriptors, idle", get(&o, "idle_fds"), "", capt, get(&o, "idle_fds") <= cap + 2);
    line("  after writing and reading every partition", get(&o, "used_fds"), "", capt,
         get(&o, "used_fds") <= cap + 2);
    line("partitions not read back whole", get(&o, "unreadable"), "", "0", get(&o, "unreadable") == 0);
    line("RSS over baseline then (MiB, malloc arenas incl.)", get(&o, "used_rss") / 1024, "MiB", "-", true);
    line("close after writing every partition", get(&o, "close_s"), "s", "-", true);
    bad |= run(&o, "reopen", b, scale, 0);
    line("reopen (each partition holding a record)", get(&o, "open_s"), "s", "< 1", get(&o, "open_s") < 1);
    line("RSS over baseline, idle (MiB)", get(&o, "idle_rss") / 1024, "MiB", "-", true);
    line("open descriptors, idle", get(&o, "idle_fds"), "", capt, get(&o, "idle_fds") <= cap + 2);
    line("close (idle)", get(&o, "close_s"), "s", "< 1", get(&o, "close_s") < 1);
    bu_rm_rf("bench_footprint", b);
    rmdir(dir);
    if (made)
        rmdir(base);
    if (bad) {
        fprintf(stderr, "bench_footprint: a phase failed\n");
        return 1;
    }
    printf("%d figure(s) missed their target\n", fails);
    return 0; /* a missed target is a finding, not a failure */
}
