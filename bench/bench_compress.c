/*
 * bench/bench_compress.c - what compression costs a producer (issue 21):
 * the telemetry records of bench_compare (JSON values of 300-600 bytes,
 * 16-byte keys) produced with compression.type none, lz4 and zstd, in the
 * same invocation, so that the ratio to uncompressed produce is measured
 * on one machine state.  Public API only.
 *
 *   bench_compress [--records N] [--reps N] [--dir DIR] [--codecs none,lz4,zstd]
 *                  [--threads LIST] [--senders N] [--partitions N] [--level L] [--quick]
 *   bench_compress --dump FILE [--records N]   (the values alone, for zstd -b)
 *
 * --quick: 3,000 records, 2 senders, 3 partitions, threads -,0,3, once
 * (options after it override).
 * --threads: values of the producer key compression.threads to try, each
 * a column ("-": leave the key unset, for a build that does not have it);
 * --senders: sending threads (each sends batches of 1,000 records, batch i
 * to partition i % partitions, as bench_compare's klog back end does);
 * the producer is the one bench_compare configures: acks=1, linger.ms=5,
 * batch.size=1000000.  Each cell opens a fresh instance on a fresh
 * directory and ends with klog_producer_flush.
 *
 * Printed per cell (medians of --reps): records/s by wall clock, the ratio
 * to uncompressed records/s of the same repetition (threads as in that
 * cell), CPU seconds of the whole process and of the sending threads alone
 * (CLOCK_THREAD_CPUTIME_ID: the caller's cost), CPU seconds of the busiest
 * thread (a sender, the producer's thread or a compression thread: with a
 * core each, the wall time's floor) and uncompressed's busiest over this
 * one's (the ratio a machine with cores to spare would show), and stored
 * bytes / raw.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <time.h>

#include <klog/klog.h>

#include "bench_util.h"

#define BATCH 1000
#define KEY_LEN 16
#define MAXCOL 8

static char *g_tel;
static uint32_t *g_off;
static uint64_t g_n;
static char (*g_keys)[KEY_LEN + 1];

/* bench/compare/main.c's telemetry values (bench_util.h), the same bytes. */
static void telemetry_init(uint64_t n)
{
    uint64_t rng = BU_RNG_SEED;
    g_n = n;
    g_tel = malloc(n * BU_TEL_MAX);
    g_off = malloc((n + 1) * sizeof *g_off);
    g_keys = malloc(n * sizeof *g_keys);
    if (!g_tel || !g_off || !g_keys) {
        fprintf(stderr, "bench_compress: out of memory\n");
        exit(1);
    }
    bu_telemetry(n, g_tel, g_off, &rng);
    for (uint64_t i = 0; i < n; i++)
        snprintf(g_keys[i], sizeof g_keys[i], "key-%012" PRIu64, i % 100000);
}

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

typedef struct sender {
    pthread_t th;
    klog_producer *p;
    int id, nsenders, parts;
    double cpu;   /* this thread's CPU seconds */
    int rc;
} sender;

static void *send_main(void *arg)
{
    sender *s = arg;
    double c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    klog_record r = KLOG_RECORD_INIT;
    uint64_t nb = (g_n + BATCH - 1) / BATCH;
    for (uint64_t b = (uint64_t)s->id; b < nb && !s->rc; b += (uint64_t)s->nsenders) {
        r.partition = (int32_t)(b % (uint64_t)s->parts);
        for (uint64_t i = b * BATCH; i < (b + 1) * BATCH && i < g_n; i++) {
            r.key = g_keys[i];
            r.key_len = KEY_LEN;
            r.value = g_tel + g_off[i];
            r.value_len = g_off[i + 1] - g_off[i];
            if ((s->rc = klog_producer_send(s->p, "t", &r)) != 0)
                break;
        }
    }
    s->cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    return NULL;
}

typedef struct result {
    double wall, cpu, send_cpu, stored;
    double busiest;    /* CPU seconds of the busiest thread (a sender or one of klog's) */
} result;

/* The CPU seconds of the busiest of this process's threads named klog-*
 * (from /proc/self/task/<tid>/schedstat, in ns): read before the producer
 * closes, as its threads end with it.  With a core for every thread, wall
 * time cannot be shorter than this thread's CPU time: the ratio of these
 * is the one a machine with more cores would see, if the pipeline keeps
 * its threads busy. */
static double busiest_klog_thread(void)
{
    DIR *d = opendir("/proc/self/task");
    double best = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool ours = fgets(comm, sizeof comm, f) && !strncmp(comm, "klog-", 5);
        fclose(f);
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        unsigned long long ns = 0;
        if (ours && (f = fopen(path, "r")) != NULL) {
            if (fscanf(f, "%llu", &ns) != 1)
                ns = 0;
            fclose(f);
        }
        if ((double)ns / 1e9 > best)
            best = (double)ns / 1e9;
    }
    closedir(d);
    return best;
}

static int conf_set(klog_conf *c, const char *k, const char *v)
{
    char err[256] = "";
    int rc = klog_conf_set(c, k, v, err, sizeof err);
    if (rc)
        fprintf(stderr, "bench_compress: %s=%s: %s %s\n", k, v, klog_strerror(rc), err);
    return rc;
}

static int run_one(const char *dir, const char *codec, const char *threads, const char *level, int senders, int parts,
                   result *res)
{
    bu_rm_rf("bench_compress", dir);
    klog *k;
    char err[256] = "";
    int rc = klog_open(&k, dir, NULL, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_compress: klog_open %s: %s %s\n", dir, klog_strerror(rc), err);
        return rc;
    }
    klog_conf *c = NULL;
    klog_producer *p = NULL;
    if ((rc = klog_topic_create(k, "t", parts, NULL, err, sizeof err)) != 0 || (rc = klog_conf_new(&c)) != 0)
        goto out;
    if ((rc = conf_set(c, "acks", "1")) || (rc = conf_set(c, "linger.ms", "5")) ||
        (rc = conf_set(c, "batch.size", "1000000")) || (rc = conf_set(c, "compression.type", codec)) ||
        (strcmp(threads, "-") && (rc = conf_set(c, "compression.threads", threads))) ||
        (level && strcmp(codec, "none") && strcmp(codec, "lz4") && (rc = conf_set(c, "compression.level", level))))
        goto out;
    if ((rc = klog_producer_new(k, c, &p, err, sizeof err)) != 0)
        goto out;
    sender s[64];
    double w0 = now_s(CLOCK_MONOTONIC), c0 = cpu_now();
    for (int i = 0; i < senders; i++) {
        s[i] = (sender){ .p = p, .id = i, .nsenders = senders, .parts = parts };
        pthread_create(&s[i].th, NULL, send_main, &s[i]);
    }
    res->send_cpu = 0;
    res->busiest = 0;
    for (int i = 0; i < senders; i++) {
        pthread_join(s[i].th, NULL);
        res->send_cpu += s[i].cpu;
        if (s[i].cpu > res->busiest)
            res->busiest = s[i].cpu;
        if (s[i].rc && !rc)
            rc = s[i].rc;
    }
    if (!rc)
        rc = klog_producer_flush(p, -1);
    res->wall = now_s(CLOCK_MONOTONIC) - w0;
    res->cpu = cpu_now() - c0;
    double b = busiest_klog_thread();
    if (b > res->busiest)
        res->busiest = b;
    klog_partition_info pi[256];
    for (int i = 0; i < 256; i++)
        pi[i] = (klog_partition_info){ .struct_size = sizeof pi[i] };
    int n = klog_topic_describe(k, "t", pi, 256, NULL, 0);
    double bytes = 0;
    for (int i = 0; i < n && i < 256; i++)
        bytes += (double)pi[i].size_bytes;
    res->stored = bytes / (double)(g_off[g_n] + g_n * KEY_LEN);
out:
    if (rc)
        fprintf(stderr, "bench_compress: %s: %s %s\n", codec, klog_strerror(rc), err);
    int crc = klog_producer_close(p);
    if (!rc)
        rc = crc;
    klog_conf_free(c);
    klog_close(k);
    bu_rm_rf("bench_compress", dir);
    return rc;
}

static int split(char *s, char **out, int max)
{
    int n = 0;
    for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ","))
        out[n++] = t;
    return n;
}

int main(int argc, char **argv)
{
    uint64_t records = 200000;
    int reps = 3, senders = 1, parts = 1;
    const char *dir = "/tmp/bench_compress", *level = NULL, *dump = NULL;
    char codecs_s[256] = "none,lz4,zstd", threads_s[256] = "-";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) { /* checks that it works: several of everything, briefly */
            records = 3000;
            reps = 1;
            senders = 2;
            parts = 3;
            snprintf(threads_s, sizeof threads_s, "-,0,3");
            continue;
        }
        if (!v) {
            fprintf(stderr, "usage: bench_compress [--records N] [--reps N] [--dir DIR] [--codecs LIST] "
                            "[--threads LIST] [--senders N] [--partitions N] [--level L] [--quick]\n");
            return 2;
        }
        i++;
        if (!strcmp(a, "--records"))
            records = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--reps"))
            reps = atoi(v);
        else if (!strcmp(a, "--dir"))
            dir = v;
        else if (!strcmp(a, "--codecs"))
            snprintf(codecs_s, sizeof codecs_s, "%s", v);
        else if (!strcmp(a, "--threads"))
            snprintf(threads_s, sizeof threads_s, "%s", v);
        else if (!strcmp(a, "--senders"))
            senders = atoi(v);
        else if (!strcmp(a, "--partitions"))
            parts = atoi(v);
        else if (!strcmp(a, "--level"))
            level = v;
        else if (!strcmp(a, "--dump"))
            dump = v;
        else {
            fprintf(stderr, "bench_compress: unknown option %s\n", a);
            return 2;
        }
    }
    if (reps < 1 || reps > 64 || senders < 1 || senders > 64 || parts < 1 || parts > 256 || records < 1) {
        fprintf(stderr, "bench_compress: --reps 1..64, --senders 1..64, --partitions 1..256, --records >= 1\n");
        return 2;
    }
    char *codecs[MAXCOL], *threads[MAXCOL];
    int nc = split(codecs_s, codecs, MAXCOL), nt = split(threads_s, threads, MAXCOL);
    if (nc < 1 || nt < 1)
        return 2;
    telemetry_init(records);
    if (dump) { /* the values back to back, for zstd -b and the like */
        FILE *f = fopen(dump, "w");
        if (!f || fwrite(g_tel, 1, g_off[g_n], f) != g_off[g_n] || fclose(f) != 0) {
            fprintf(stderr, "bench_compress: cannot write %s\n", dump);
            return 1;
        }
        return 0;
    }
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/c", dir);
    static result r[64][MAXCOL][MAXCOL];
    for (int rep = 0; rep < reps; rep++)
        for (int t = 0; t < nt; t++)
            for (int c = 0; c < nc; c++) {
                bu_prefault(g_tel, g_off[g_n]);
                if (bu_warm_page_cache(dir, (uint64_t)g_off[g_n] * 11 / 10) < 0) {
                    if (mkdir(dir, 0755) != 0 || bu_warm_page_cache(dir, (uint64_t)g_off[g_n] * 11 / 10) < 0) {
                        fprintf(stderr, "bench_compress: cannot write in %s\n", dir);
                        return 1;
                    }
                }
                if (run_one(sub, codecs[c], threads[t], level, senders, parts, &r[rep][t][c]))
                    return 1;
            }
    printf("bench_compress: %" PRIu64 " telemetry records (%.0f bytes on average), %d sender(s), %d partition(s), "
           "median of %d\n",
           g_n, (double)g_off[g_n] / (double)g_n, senders, parts, reps);
    printf("%-8s %-8s %12s %8s %9s %10s %10s %10s %10s\n", "codec", "threads", "records/s", "/none", "cpu s",
           "sender s", "busiest s", "/none", "stored");
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < nc; c++) {
            double rs[64], ratio[64], cpu[64], scpu[64], busy[64], bratio[64];
            for (int rep = 0; rep < reps; rep++) {
                result *x = &r[rep][t][c];
                rs[rep] = (double)g_n / x->wall;
                /* against the uncompressed cell of the same repetition, if any */
                ratio[rep] = bratio[rep] = 0;
                for (int o = 0; o < nc; o++)
                    if (!strcmp(codecs[o], "none")) {
                        ratio[rep] = r[rep][t][o].wall / x->wall;
                        bratio[rep] = r[rep][t][o].busiest / x->busiest;
                    }
                busy[rep] = x->busiest;
                cpu[rep] = x->cpu;
                scpu[rep] = x->send_cpu;
            }
            printf("%-8s %-8s %12.0f %8.2f %9.3f %10.3f %10.3f %10.2f %10.2f\n", codecs[c], threads[t],
                   bu_median(rs, reps), bu_median(ratio, reps), bu_median(cpu, reps), bu_median(scpu, reps),
                   bu_median(busy, reps), bu_median(bratio, reps), r[0][t][c].stored);
        }
    return 0;
}
