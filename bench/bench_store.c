/*
 * bench/bench_store.c - the storage layer against the raw floor, in one run.
 *
 * Workloads (issue: foundation):
 *   A. 1,000,000 records, 16-byte keys, 100-byte values, 1000-record batches
 *   B.   500,000 records, 16-byte keys, 1 KiB values, 100-record batches
 *      each: raw sequential pwrite of the very same batch bytes to a fresh
 *      file on the same disk, then ks_log_append of those batches (durability
 *      NONE), then encode+append from records (what a producer pays).
 *   C. durable: ks_log_append with durability ALWAYS beside a raw
 *      pwrite+fdatasync loop, same batches, at 1000, 100 and 1 records per
 *      batch; then 1/4/16 threads appending 1-record batches durably
 *      (group commit).
 * Every figure is the median of --reps runs (default 5), alternating raw and
 * klog so that drift hits both.  Buffers are prefaulted (read through)
 * before every timed run: this VM hands idle memory back to its host.
 *
 *   bench_store [--dir DIR] [--reps N] [--quick]
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "format/format.h"
#include "io/io.h"
#include "storage/storage.h"

#include "bench_util.h"

static const char *g_dir = "/tmp/klog-bench";
static int g_reps = 5;
static bool g_quick = false;

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, klog_strerror(rc));
    exit(1);
}

typedef struct { uint8_t *buf; size_t len; } bbuf;
typedef struct { bbuf *b; size_t n; size_t bytes; uint64_t records; } batchset;

static volatile uint64_t g_sink;
static void prefault(const batchset *bs)
{
    uint64_t s = 0;
    for (size_t i = 0; i < bs->n; i++)
        for (size_t j = 0; j < bs->b[i].len; j += 4096)
            s += bs->b[i].buf[j];
    g_sink += s;
}

static void fill_record(char *key, char *val, size_t vlen, uint64_t seq)
{
    snprintf(key, 17, "key-%012" PRIu64, seq % 100000);
    for (size_t i = 0; i < vlen; i++)
        val[i] = (char)('a' + (seq + i * 7) % 26);
}

static batchset build(uint64_t records, size_t vlen, unsigned per_batch)
{
    batchset bs = { 0 };
    bs.n = (records + per_batch - 1) / per_batch;
    bs.b = calloc(bs.n, sizeof *bs.b);
    char key[17], *val = malloc(vlen);
    size_t cap = (size_t)per_batch * (vlen + 64) + KF_HDR_SIZE;
    uint64_t seq = 0;
    for (size_t i = 0; i < bs.n; i++) {
        uint8_t *buf = malloc(cap);
        kf_builder b;
        kf_builder_init(&b, buf, cap, KF_RECORD_MAX_DEFAULT);
        for (unsigned r = 0; r < per_batch && seq < records; r++, seq++) {
            fill_record(key, val, vlen, seq);
            kf_record rec = { key, 16, val, (int32_t)vlen, 1700000000000 + (int64_t)seq, NULL, 0 };
            int rc = kf_builder_add(&b, &rec);
            if (rc)
                die("encode", rc);
        }
        const uint8_t *out;
        size_t len;
        kf_batch_meta meta = { -1, -1, -1, 0, KF_CODEC_NONE, 0 };
        int rc = kf_builder_finish(&b, &meta, NULL, &out, &len);
        if (rc)
            die("finish", rc);
        bs.b[i] = (bbuf){ buf, len };
        bs.bytes += len;
    }
    bs.records = records;
    free(val);
    return bs;
}

static void free_set(batchset *bs)
{
    for (size_t i = 0; i < bs->n; i++)
        free(bs->b[i].buf);
    free(bs->b);
}

/* See bench_util.h. */
static void warm_page_cache(size_t bytes)
{
    int rc = bu_warm_page_cache(g_dir, bytes);
    if (rc < 0)
        die("warm page cache", rc);
}

/* raw: one pwrite per batch to a fresh file; sync_each: fdatasync after each */
static double run_raw(const batchset *bs, size_t nb, bool sync_each)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/raw.dat", g_dir);
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open raw", -errno);
    warm_page_cache(bs->bytes);
    prefault(bs);
    uint64_t t0 = klog__now_ns();
    off_t off = 0;
    for (size_t i = 0; i < nb; i++) {
        ssize_t w = pwrite(fd, bs->b[i].buf, bs->b[i].len, off);
        if (w != (ssize_t)bs->b[i].len)
            die("pwrite", -errno);
        off += w;
        if (sync_each && fdatasync(fd) != 0)
            die("fdatasync", -errno);
    }
    double s = (double)(klog__now_ns() - t0) / 1e9;
    close(fd);
    unlink(path);
    return s;
}

static ks_log *open_log(kio *io, const char *name, enum ks_durability d)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    bu_rm_rf("bench_store", path);
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.durability = d;
    ks_log *log;
    int rc = ks_log_open(&log, io, path, &cfg);
    if (rc)
        die("open log", rc);
    return log;
}

static double run_klog(kio *io, const batchset *bs, size_t nb, enum ks_durability d)
{
    ks_log *log = open_log(io, "log", d);
    warm_page_cache(bs->bytes);
    prefault(bs);
    uint64_t t0 = klog__now_ns();
    for (size_t i = 0; i < nb; i++) {
        ks_batch kb = { bs->b[i].buf, bs->b[i].len, 0, 0 };
        int rc = ks_log_append(log, &kb, 1, 0);
        if (rc)
            die("append", rc);
    }
    double s = (double)(klog__now_ns() - t0) / 1e9;
    ks_log_close(log);
    return s;
}

/* encode + append from records, as a producer would */
static double run_encode_append(kio *io, uint64_t records, size_t vlen, unsigned per_batch)
{
    ks_log *log = open_log(io, "log", KS_DURABILITY_NONE);
    size_t cap = (size_t)per_batch * (vlen + 64) + KF_HDR_SIZE;
    uint8_t *buf = malloc(cap);
    memset(buf, 0, cap);
    char key[17], *val = malloc(vlen);
    fill_record(key, val, vlen, 0);
    warm_page_cache(records * (vlen + 30));
    uint64_t t0 = klog__now_ns();
    uint64_t seq = 0;
    kf_builder b;
    while (seq < records) {
        kf_builder_init(&b, buf, cap, KF_RECORD_MAX_DEFAULT);
        for (unsigned r = 0; r < per_batch && seq < records; r++, seq++) {
            val[0] = (char)('a' + seq % 26); /* values differ, no per-record formatting cost */
            kf_record rec = { key, 16, val, (int32_t)vlen, 1700000000000 + (int64_t)seq, NULL, 0 };
            if (kf_builder_add(&b, &rec))
                die("encode", -EINVAL);
        }
        const uint8_t *out;
        size_t len;
        kf_batch_meta meta = { -1, -1, -1, 0, KF_CODEC_NONE, 0 };
        if (kf_builder_finish(&b, &meta, NULL, &out, &len))
            die("finish", -EINVAL);
        ks_batch kb = { (void *)out, len, 0, 0 };
        int rc = ks_log_append(log, &kb, 1, 0);
        if (rc)
            die("append", rc);
    }
    double s = (double)(klog__now_ns() - t0) / 1e9;
    ks_log_close(log);
    free(buf);
    free(val);
    return s;
}

static void throughput(kio *io, const char *label, uint64_t records, size_t vlen, unsigned per_batch)
{
    batchset bs = build(records, vlen, per_batch);
    double raw[32], kl[32], enc[32];
    for (int r = 0; r < g_reps; r++) {
        raw[r] = run_raw(&bs, bs.n, false);
        kl[r] = run_klog(io, &bs, bs.n, KS_DURABILITY_NONE);
        enc[r] = run_encode_append(io, records, vlen, per_batch);
    }
    double tr = bu_median(raw, g_reps), tk = bu_median(kl, g_reps), te = bu_median(enc, g_reps);
    double mb = (double)bs.bytes / 1e6;
    printf("%s: %" PRIu64 " records, %.1f MB in %zu batches of %u\n", label, records, mb, bs.n, per_batch);
    printf("  raw pwrite (same bytes)      %8.2f M rec/s %7.0f MB/s\n", records / tr / 1e6, mb / tr);
    printf("  ks_log_append (none)         %8.2f M rec/s %7.0f MB/s   ratio to raw %.2f\n",
           records / tk / 1e6, mb / tk, tr / tk);
    printf("  encode + ks_log_append       %8.2f M rec/s %7.0f MB/s   ratio to raw %.2f\n",
           records / te / 1e6, mb / te, tr / te);
    free_set(&bs);
}

static void durable_single(kio *io, unsigned per_batch, size_t nbatches)
{
    batchset bs = build((uint64_t)per_batch * nbatches, 100, per_batch);
    double raw[32], kl[32];
    for (int r = 0; r < g_reps; r++) {
        raw[r] = run_raw(&bs, bs.n, true);
        kl[r] = run_klog(io, &bs, bs.n, KS_DURABILITY_ALWAYS);
    }
    double tr = bu_median(raw, g_reps), tk = bu_median(kl, g_reps);
    printf("durable, 1 thread, %4u records/batch, %zu batches:\n", per_batch, nbatches);
    printf("  raw pwrite+fdatasync         %8.0f batches/s %9.0f rec/s  %6.1f us/batch\n", nbatches / tr,
           (double)bs.records / tr, tr / (double)nbatches * 1e6);
    printf("  ks_log_append (always)       %8.0f batches/s %9.0f rec/s  %6.1f us/batch   ratio to raw %.2f\n",
           nbatches / tk, (double)bs.records / tk, tk / (double)nbatches * 1e6, tr / tk);
    free_set(&bs);
}

typedef struct { ks_log *log; const batchset *bs; size_t from, to; } thr_arg;
static void *thr_append(void *p)
{
    thr_arg *a = p;
    for (size_t i = a->from; i < a->to; i++) {
        /* each thread appends its own copy of the batch (offsets are
         * rewritten in place) */
        ks_batch kb = { a->bs->b[i].buf, a->bs->b[i].len, 0, 0 };
        int rc = ks_log_append(a->log, &kb, 1, 0);
        if (rc)
            die("append", rc);
    }
    return NULL;
}

static void durable_threads(kio *io, size_t total)
{
    batchset bs = build(total, 100, 1);
    printf("durable, 1-record batches, group commit (%zu batches in all):\n", total);
    double base = 0;
    int threads[] = { 1, 4, 16 };
    for (size_t t = 0; t < KLOG_ARRAY_LEN(threads); t++) {
        int nt = threads[t];
        double v[32];
        uint64_t syncs = 0;
        for (int r = 0; r < g_reps; r++) {
            ks_log *log = open_log(io, "log", KS_DURABILITY_ALWAYS);
            pthread_t th[16];
            thr_arg a[16];
            prefault(&bs);
            kio_stats s0, s1;
            kio_get_stats(io, &s0);
            uint64_t t0 = klog__now_ns();
            for (int i = 0; i < nt; i++) {
                a[i] = (thr_arg){ log, &bs, total * (size_t)i / (size_t)nt, total * (size_t)(i + 1) / (size_t)nt };
                pthread_create(&th[i], NULL, thr_append, &a[i]);
            }
            for (int i = 0; i < nt; i++)
                pthread_join(th[i], NULL);
            v[r] = (double)(klog__now_ns() - t0) / 1e9;
            kio_get_stats(io, &s1);
            syncs = s1.syncs - s0.syncs;
            ks_log_close(log);
        }
        double tm = bu_median(v, g_reps);
        if (t == 0)
            base = tm;
        printf("  %2d thread(s)                 %8.0f batches/s  %5.2fx of 1 thread  (%" PRIu64
               " fsyncs for %zu batches)\n",
               nt, total / tm, base / tm, syncs, total);
    }
    free_set(&bs);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            g_dir = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            g_quick = true;
        else {
            fprintf(stderr, "usage: bench_store [--dir DIR] [--reps N] [--quick]\n");
            return 2;
        }
    }
    if (g_reps < 1 || g_reps > 31)
        g_reps = 5;
    if (g_quick)
        g_reps = 1;
    mkdir(g_dir, 0755);
    kio *io;
    int rc = kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_AUTO });
    if (rc)
        die("kio_open", rc);
    printf("bench_store: dir %s, I/O backend %s, median of %d run(s)\n\n", g_dir, kio_name(io), g_reps);
    uint64_t scale = g_quick ? 20 : 1;
    throughput(io, "A. 100-byte values", 1000000 / scale, 100, 1000);
    throughput(io, "B. 1 KiB values", 500000 / scale, 1024, 100);
    durable_single(io, 1000, g_quick ? 20 : 300);
    durable_single(io, 100, g_quick ? 20 : 1000);
    durable_single(io, 1, g_quick ? 20 : 2000);
    durable_threads(io, g_quick ? 64 : 4000);
    kio_close(io);
    bu_rm_rf("bench_store", g_dir);
    return 0;
}
