/*
 * examples/klog_demo.c - the README's first command: a store-level demo.
 *
 * Until the public producer/consumer API exists this drives the partition
 * log directly: it appends a million telemetry records in batches, appends
 * durably (fdatasync per batch, group commit across threads), reads
 * everything back verifying every checksum and every record, and prints what
 * happened and how fast.  Run it twice: the second run finds the first run's
 * records still there, recovered from disk.
 *
 *   klog_demo [DIR]     (default ./klog-data)
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <klog/klog.h>
#include "common/common.h"
#include "format/format.h"
#include "io/io.h"
#include "storage/storage.h"

#define RECORDS 1000000
#define PER_BATCH 1000
#define DURABLE_THREADS 4
#define DURABLE_BATCHES 250 /* per thread, 10 records each */

static int die(const char *what, int rc)
{
    fprintf(stderr, "klog_demo: %s: %s (%s)\n", what, klog_strerror(rc), klog_err_name(rc));
    exit(1);
}

/* One record's value: a small JSON telemetry reading that names its sequence
 * number, so the reader can check every record it gets back. */
static int make_value(char *buf, size_t cap, uint64_t seq)
{
    return snprintf(buf, cap,
                    "{\"seq\":%012" PRIu64 ",\"sensor\":\"s-%04" PRIu64 "\",\"temp\":%5.1f,\"ok\":true}",
                    seq, seq % 1000, 15.0 + (double)(seq % 200) / 10.0);
}

typedef struct {
    ks_log *log;
    uint8_t *buf;
    size_t cap;
    uint64_t seq0;
    double *lat_us;
} durable_arg;

static void *durable_worker(void *p)
{
    durable_arg *a = p;
    kf_builder b;
    for (int i = 0; i < DURABLE_BATCHES; i++) {
        kf_builder_init(&b, a->buf, a->cap, KF_RECORD_MAX_DEFAULT);
        for (int r = 0; r < 10; r++) {
            char key[32], val[160];
            uint64_t seq = a->seq0 + (uint64_t)i * 10 + (uint64_t)r;
            int kl = snprintf(key, sizeof key, "dev-%04" PRIu64, seq % 1000);
            int vl = make_value(val, sizeof val, seq);
            kf_record rec = { key, kl, val, vl, klog__wall_ms(), NULL, 0 };
            if (kf_builder_add(&b, &rec) != 0)
                die("encode", -EINVAL);
        }
        const uint8_t *out;
        size_t len;
        kf_batch_meta meta = { -1, -1, -1, 0, KF_CODEC_NONE, 0 };
        int rc = kf_builder_finish(&b, &meta, NULL, &out, &len);
        if (rc < 0)
            die("seal batch", rc);
        ks_batch kb = { (void *)out, len, 0, 0 };
        uint64_t t0 = klog__now_ns();
        if ((rc = ks_log_append(a->log, &kb, 1, KS_APPEND_SYNC)) < 0)
            die("durable append", rc);
        a->lat_us[i] = (double)(klog__now_ns() - t0) / 1e3;
    }
    return NULL;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "./klog-data";
    char part[4096];
    mkdir(dir, 0755);
    snprintf(part, sizeof part, "%s/telemetry-0", dir);

    kio *io;
    int rc = kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_AUTO });
    if (rc < 0)
        die("I/O engine", rc);
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.segment_bytes = 64u << 20;
    ks_log *log;
    uint64_t t0 = klog__now_ns();
    if ((rc = ks_log_open(&log, io, part, &cfg)) < 0)
        die(part, rc);
    double open_ms = (double)(klog__now_ns() - t0) / 1e6;
    int64_t prior = ks_log_end_offset(log);
    const char *ver;
    klog_version(&ver);
    printf("klog %s demo: partition log in %s (I/O backend: %s)\n", ver, part, kio_name(io));
    printf("  opened in %.1f ms: %" PRId64 " records from earlier runs, %u segment(s)\n", open_ms, prior,
           ks_log_segment_count(log));

    /* 1. Append a million records in 1000-record batches (page cache). */
    size_t cap = 256 * 1024;
    uint8_t *buf = malloc(cap);
    kf_builder b;
    char val[160], key[32];
    t0 = klog__now_ns();
    uint64_t bytes = 0;
    for (uint64_t seq = 0; seq < RECORDS;) {
        kf_builder_init(&b, buf, cap, KF_RECORD_MAX_DEFAULT);
        for (int r = 0; r < PER_BATCH; r++, seq++) {
            int kl = snprintf(key, sizeof key, "sensor-%04" PRIu64, seq % 1000);
            int vl = make_value(val, sizeof val, (uint64_t)prior + seq);
            kf_record rec = { key, kl, val, vl, klog__wall_ms(), NULL, 0 };
            if ((rc = kf_builder_add(&b, &rec)) != 0)
                die("encode", rc);
        }
        const uint8_t *out;
        size_t len;
        kf_batch_meta meta = { -1, -1, -1, 0, KF_CODEC_NONE, 0 };
        if ((rc = kf_builder_finish(&b, &meta, NULL, &out, &len)) < 0)
            die("seal batch", rc);
        ks_batch kb = { (void *)out, len, 0, 0 };
        if ((rc = ks_log_append(log, &kb, 1, 0)) < 0)
            die("append", rc);
        bytes += len;
    }
    double secs = (double)(klog__now_ns() - t0) / 1e9;
    printf("  appended %d records (%.1f MB) in %.3f s: %.2f M records/s, %.0f MB/s\n", RECORDS,
           (double)bytes / 1e6, secs, RECORDS / secs / 1e6, (double)bytes / 1e6 / secs);

    /* 2. Durable appends from several threads: acknowledged after fdatasync,
     *    threads share syncs (group commit). */
    pthread_t th[DURABLE_THREADS];
    durable_arg da[DURABLE_THREADS];
    double *lat = calloc(DURABLE_THREADS * DURABLE_BATCHES, sizeof *lat);
    kio_stats st0, st1;
    kio_get_stats(io, &st0);
    t0 = klog__now_ns();
    for (int i = 0; i < DURABLE_THREADS; i++) {
        da[i] = (durable_arg){ log, malloc(cap), cap, (uint64_t)prior + RECORDS + (uint64_t)i * 100000,
                               lat + i * DURABLE_BATCHES };
        pthread_create(&th[i], NULL, durable_worker, &da[i]);
    }
    for (int i = 0; i < DURABLE_THREADS; i++) {
        pthread_join(th[i], NULL);
        free(da[i].buf);
    }
    secs = (double)(klog__now_ns() - t0) / 1e9;
    kio_get_stats(io, &st1);
    int nlat = DURABLE_THREADS * DURABLE_BATCHES;
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_double);
    printf("  durable: %d threads x %d batches of 10 records, acknowledged after fdatasync: "
           "%.0f batches/s, %" PRIu64 " fsyncs for %d batches (group commit), latency p50 %.0f us p99 %.0f us\n",
           DURABLE_THREADS, DURABLE_BATCHES, nlat / secs, st1.syncs - st0.syncs, nlat, lat[nlat / 2],
           lat[nlat * 99 / 100]);
    printf("  end offset %" PRId64 ", durable offset %" PRId64 "\n", ks_log_end_offset(log),
           ks_log_durable_offset(log));

    /* 3. Read everything back from the start, verifying every batch checksum
     *    and every record. */
    kf_codec *codec;
    kf_codec_new(&codec);
    int64_t off = ks_log_start_offset(log), end = ks_log_end_offset(log), count = 0;
    t0 = klog__now_ns();
    while (off < end) {
        ks_view v;
        if ((rc = ks_log_read(log, off, 1u << 20, &v)) < 0)
            die("read", rc);
        const uint8_t *p = v.data;
        while (p < v.data + v.len) {
            kf_batch_info bi;
            ssize_t len = kf_batch_parse(p, (size_t)(v.data + v.len - p), &bi);
            if (len <= 0 || kf_batch_verify(p, (size_t)len) != 0)
                die("verify", KLOG_ECORRUPT);
            const uint8_t *recs;
            size_t rlen;
            if ((rc = kf_batch_records(p, (size_t)len, codec, &recs, &rlen)) < 0)
                die("records", rc);
            kf_iter it;
            kf_record_view r;
            kf_iter_init(&it, &bi, recs, rlen);
            while ((rc = kf_iter_next(&it, &r)) == 1) {
                if (r.offset != ks_log_start_offset(log) + count || r.value_len < 20 ||
                    memcmp(r.value, "{\"seq\":", 7) != 0)
                    die("record content", KLOG_ECORRUPT);
                count++;
            }
            if (rc < 0)
                die("decode", rc);
            p += len;
        }
        off = v.next_offset;
        ks_view_release(&v);
    }
    secs = (double)(klog__now_ns() - t0) / 1e9;
    printf("  read back %" PRId64 " records, all checksums and records verified, in %.3f s: %.1f M records/s\n",
           count, secs, (double)count / secs / 1e6);
    if (count != end - ks_log_start_offset(log))
        die("record count", KLOG_ECORRUPT);

    kf_codec_free(codec);
    free(buf);
    free(lat);
    if ((rc = ks_log_close(log)) < 0)
        die("close", rc);
    kio_close(io);
    printf("  closed cleanly; run again to see the records recovered from %s\n", part);
    return 0;
}
