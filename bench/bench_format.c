/*
 * bench/bench_format.c - the record batch format on one thread, no I/O.
 *
 *   1. encode: 1,000,000 records (16-byte key, 100-byte value) with
 *      kf_builder_add into 1 MiB batches, each sealed with kf_builder_finish
 *      (uncompressed: the checksum is included);
 *   2. decode: the same batches through kf_batch_parse + kf_batch_verify +
 *      kf_batch_records + kf_iter_next over every record (touching each
 *      value), and kf_iter_next alone;
 *   3. compression: JSON-like telemetry values in 1 MiB batches, sealed with
 *      lz4, zstd -1, zstd 1, zstd 3, gzip 1, gzip 6 and snappy (MB/s of uncompressed records section
 *      through kf_builder_finish, ratio) and decompressed with
 *      kf_batch_records (MB/s of output).
 * Every figure is the median of --reps runs (default 5).  Buffers are
 * written before the timed runs so that page faults are not measured.
 *
 *   bench_format [--reps N] [--records N] [--quick]
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "format/format.h"

#define BATCH_CAP (1u << 20)
#define KEY_LEN 16
#define VALUE_LEN 100

static int g_reps = 5;
static size_t g_records = 1000000;

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_format: %s: %s\n", what, klog_strerror(rc));
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A set of finished batches, back to back in one arena. */
typedef struct {
    uint8_t *arena;
    size_t cap, used;
    size_t *off, *len;
    size_t n, max;
} batchset;

static void bs_init(batchset *bs, size_t cap, size_t max)
{
    bs->arena = malloc(cap);
    bs->off = malloc(max * sizeof *bs->off);
    bs->len = malloc(max * sizeof *bs->len);
    if (!bs->arena || !bs->off || !bs->len)
        die("malloc", -ENOMEM);
    memset(bs->arena, 0, cap); /* prefault */
    bs->cap = cap;
    bs->max = max;
    bs->used = bs->n = 0;
}

static void bs_free(batchset *bs)
{
    free(bs->arena);
    free(bs->off);
    free(bs->len);
}

/* Record keys and values are prepared up front: the encode loop measures
 * the encoder, not snprintf. */
typedef struct {
    char (*keys)[KEY_LEN];
    char *values;     /* n values of vlen[i] bytes at voff[i] */
    uint32_t *voff;
    uint8_t *vlen;
    size_t n;
} recset;

static void rs_plain(recset *rs, size_t n)
{
    rs->keys = malloc(n * KEY_LEN);
    rs->values = malloc(n * VALUE_LEN);
    rs->voff = malloc(n * sizeof *rs->voff);
    rs->vlen = malloc(n);
    if (!rs->keys || !rs->values || !rs->voff || !rs->vlen)
        die("malloc", -ENOMEM);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        char k[KEY_LEN + 1];
        snprintf(k, sizeof k, "key-%012zu", i % 100000);
        memcpy(rs->keys[i], k, KEY_LEN);
        rs->voff[i] = (uint32_t)(i * VALUE_LEN);
        rs->vlen[i] = VALUE_LEN;
        for (size_t j = 0; j < VALUE_LEN; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            rs->values[i * VALUE_LEN + j] = (char)('a' + x % 26);
        }
    }
    rs->n = n;
}

/* Telemetry: what devices send, repetitive field names, varying numbers. */
static void rs_json(recset *rs, size_t n)
{
    rs->keys = malloc(n * KEY_LEN);
    rs->values = malloc(n * 160);
    rs->voff = malloc(n * sizeof *rs->voff);
    rs->vlen = malloc(n);
    if (!rs->keys || !rs->values || !rs->voff || !rs->vlen)
        die("malloc", -ENOMEM);
    static const char *status[] = { "ok", "ok", "ok", "degraded", "ok", "offline" };
    uint64_t x = 2463534242ull, off = 0;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned dev = (unsigned)(x % 5000);
        char k[KEY_LEN + 1];
        snprintf(k, sizeof k, "sensor-%09u", dev);
        memcpy(rs->keys[i], k, KEY_LEN);
        int len = snprintf(rs->values + off, 160,
                           "{\"device\":\"sensor-%04u\",\"ts\":%" PRIu64 ",\"temp\":%u.%u,"
                           "\"humidity\":%u.%u,\"status\":\"%s\",\"seq\":%zu}",
                           dev, (uint64_t)1700000000000ull + i * 7, 15 + (unsigned)(x >> 20) % 20,
                           (unsigned)(x >> 30) % 10, 30 + (unsigned)(x >> 40) % 50,
                           (unsigned)(x >> 50) % 10, status[(x >> 33) % 6], i);
        rs->voff[i] = (uint32_t)off;
        rs->vlen[i] = (uint8_t)len;
        off += (uint64_t)len;
    }
    rs->n = n;
}

static void rs_free(recset *rs)
{
    free(rs->keys);
    free(rs->values);
    free(rs->voff);
    free(rs->vlen);
}

/* Encode rs into bs with kf_builder_add; seal each batch with codec (c may
 * be NULL for none).  When compressed, the batch is copied into the arena.
 * Returns the seconds spent in kf_builder_finish into *finish_s and the
 * total into the result. */
static double encode(const recset *rs, batchset *bs, enum kf_codec_id codec, int level,
                     kf_codec *c, uint8_t *scratch, double *finish_s, size_t *raw_bytes)
{
    kf_batch_meta meta = { -1, -1, -1, 0, codec, level };
    int64_t ts = 1700000000000;
    double fin = 0;
    size_t raw = 0;
    bs->used = bs->n = 0;
    uint64_t t0 = klog__now_ns();
    size_t i = 0;
    while (i < rs->n) {
        /* Uncompressed batches are built in place in the arena; compressed
         * ones in a scratch buffer, since the result lands in c. */
        uint8_t *buf = codec == KF_CODEC_NONE ? bs->arena + bs->used : scratch;
        kf_builder b;
        kf_builder_init(&b, buf, BATCH_CAP, KF_RECORD_MAX_DEFAULT);
        for (; i < rs->n; i++) {
            kf_record r = { rs->keys[i], KEY_LEN, rs->values + rs->voff[i], rs->vlen[i],
                            ts + (int64_t)(i >> 6), NULL, 0 };
            int rc = kf_builder_add(&b, &r);
            if (KLOG_UNLIKELY(rc != 0)) {
                if (rc == -ENOBUFS && b.count > 0)
                    break;
                die("kf_builder_add", rc);
            }
        }
        const uint8_t *out;
        size_t len;
        uint64_t f0 = klog__now_ns();
        int rc = kf_builder_finish(&b, &meta, c, &out, &len);
        if (rc < 0)
            die("kf_builder_finish", rc);
        fin += (double)(klog__now_ns() - f0);
        raw += b.len - KF_HDR_SIZE;
        if (out != bs->arena + bs->used) {
            uint64_t m0 = klog__now_ns(); /* the copy is not the codec's cost */
            memcpy(bs->arena + bs->used, out, len);
            t0 += klog__now_ns() - m0;
        }
        bs->off[bs->n] = bs->used;
        bs->len[bs->n++] = len;
        bs->used += len;
        if (bs->n == bs->max || bs->used + BATCH_CAP > bs->cap)
            die("arena too small", -ENOBUFS);
    }
    double total = (double)(klog__now_ns() - t0) / 1e9;
    *finish_s = fin / 1e9;
    *raw_bytes = raw;
    return total;
}

static volatile uint64_t g_sink;

/* Decode every batch in bs.  full: parse + verify + records + iterate;
 * otherwise only the iteration (batches known good, uncompressed).  Returns
 * seconds; *decompress_s receives the time inside kf_batch_records. */
static double decode(const batchset *bs, kf_codec *c, bool full, size_t expect,
                     double *decompress_s)
{
    uint64_t sum = 0, n = 0, dns = 0;
    uint64_t t0 = klog__now_ns();
    for (size_t k = 0; k < bs->n; k++) {
        const uint8_t *p = bs->arena + bs->off[k];
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(p, bs->len[k], &bi);
        if (len <= 0)
            die("kf_batch_parse", len ? (int)len : KLOG_ECORRUPT);
        const uint8_t *recs = p + KF_HDR_SIZE;
        size_t rlen = (size_t)len - KF_HDR_SIZE;
        if (full) {
            int rc = kf_batch_verify(p, (size_t)len);
            if (rc < 0)
                die("kf_batch_verify", rc);
            uint64_t d0 = klog__now_ns();
            if ((rc = kf_batch_records(p, (size_t)len, c, &recs, &rlen)) < 0)
                die("kf_batch_records", rc);
            dns += klog__now_ns() - d0;
        }
        kf_iter it;
        kf_record_view r;
        int rc;
        kf_iter_init(&it, &bi, recs, rlen);
        while ((rc = kf_iter_next(&it, &r)) == 1) {
            sum += (uint64_t)r.value_len + r.value[0] + (uint64_t)r.offset;
            n++;
        }
        if (rc < 0)
            die("kf_iter_next", rc);
    }
    double s = (double)(klog__now_ns() - t0) / 1e9;
    g_sink += sum;
    if (n != expect)
        die("record count", KLOG_ECORRUPT);
    *decompress_s = (double)dns / 1e9;
    return s;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            g_reps = 1;
            g_records = 100000;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            g_reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--records") && i + 1 < argc) {
            g_records = (size_t)strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: bench_format [--reps N] [--records N] [--quick]\n");
            return 2;
        }
    }
    if (g_reps < 1 || g_records < 1)
        return 2;

    double *a = calloc((size_t)g_reps, sizeof *a), *b = calloc((size_t)g_reps, sizeof *b);
    double *d = calloc((size_t)g_reps, sizeof *d);
    uint8_t *scratch = malloc(BATCH_CAP);
    kf_codec *c;
    int rc = kf_codec_new(&c);
    if (rc < 0 || !a || !b || !d || !scratch)
        die("setup", rc < 0 ? rc : -ENOMEM);
    memset(scratch, 0, BATCH_CAP);

    /* ---- 1 and 2: plain records, uncompressed ---- */
    recset rs;
    rs_plain(&rs, g_records);
    batchset bs;
    size_t arena = g_records * (KEY_LEN + VALUE_LEN + 16) + 2 * (size_t)BATCH_CAP;
    bs_init(&bs, arena, g_records / 1000 + 16);
    size_t raw = 0;
    for (int r = 0; r < g_reps; r++) {
        double fin;
        a[r] = encode(&rs, &bs, KF_CODEC_NONE, 0, NULL, scratch, &fin, &raw);
        b[r] = fin;
    }
    double enc = median(a, g_reps), fin = median(b, g_reps);
    printf("records: %zu x (%d-byte key, %d-byte value), %zu batches of <= 1 MiB, %zu bytes\n",
           g_records, KEY_LEN, VALUE_LEN, bs.n, bs.used);
    printf("encode  kf_builder_add+finish : %6.1f ns/record  %7.2f M records/s  %7.0f MB/s"
           "  (finish+checksum %.1f%%)\n",
           enc * 1e9 / (double)g_records, (double)g_records / enc / 1e6,
           (double)bs.used / enc / 1e6, 100 * fin / enc);
    for (int r = 0; r < g_reps; r++) {
        double ds;
        a[r] = decode(&bs, c, true, g_records, &ds);
        b[r] = decode(&bs, c, false, g_records, &ds);
    }
    double full = median(a, g_reps), iter = median(b, g_reps);
    printf("decode  parse+verify+iterate  : %6.1f ns/record  %7.2f M records/s  %7.0f MB/s\n",
           full * 1e9 / (double)g_records, (double)g_records / full / 1e6,
           (double)bs.used / full / 1e6);
    printf("decode  kf_iter_next only     : %6.1f ns/record  %7.2f M records/s  %7.0f MB/s\n",
           iter * 1e9 / (double)g_records, (double)g_records / iter / 1e6,
           (double)bs.used / iter / 1e6);
    rs_free(&rs);

    /* ---- 3: telemetry JSON, compressed ---- */
    rs_json(&rs, g_records);
    static const struct { const char *name; enum kf_codec_id id; int level; } cc[] = {
        { "lz4    ", KF_CODEC_LZ4, 0 },
        { "zstd -1", KF_CODEC_ZSTD, -1 },
        { "zstd 1 ", KF_CODEC_ZSTD, 1 },
        { "zstd 3 ", KF_CODEC_ZSTD, 3 },
        { "gzip 1 ", KF_CODEC_GZIP, 1 },
        { "gzip 6 ", KF_CODEC_GZIP, 6 },
        { "snappy ", KF_CODEC_SNAPPY, 0 },
    };
    printf("telemetry JSON values, %zu records, avg value %.0f bytes\n", g_records,
           (double)(rs.voff[g_records - 1] + rs.vlen[g_records - 1]) / (double)g_records);
    for (size_t k = 0; k < KLOG_ARRAY_LEN(cc); k++) {
        for (int r = 0; r < g_reps; r++) {
            double f;
            encode(&rs, &bs, cc[k].id, cc[k].level, c, scratch, &f, &raw);
            a[r] = f;
            decode(&bs, c, true, g_records, &d[r]);
        }
        unsigned used = klog__ld16(bs.arena + KF_OFF_ATTRIBUTES) & KF_ATTR_CODEC_MASK;
        double cs = median(a, g_reps), ds = median(d, g_reps);
        printf("%s compress %7.0f MB/s  decompress %7.0f MB/s  ratio %.2f  (%zu -> %zu bytes%s)\n",
               cc[k].name, (double)raw / cs / 1e6, (double)raw / ds / 1e6,
               (double)raw / (double)(bs.used - bs.n * KF_HDR_SIZE), raw, bs.used,
               used == (unsigned)cc[k].id ? "" : ", stored uncompressed");
    }
    rs_free(&rs);
    bs_free(&bs);
    kf_codec_free(c);
    free(scratch);
    free(a);
    free(b);
    free(d);
    return 0;
}
