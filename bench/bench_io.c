/*
 * bench/bench_io.c - the I/O engine against raw syscalls, in one run.
 *
 *   A. sequential writes of a 256 MiB file in 64 KiB and in 4 KiB pieces:
 *      raw pwrite, kio_pwritev on uring, kio_pwritev on posix, and
 *      kio_pwritev_many with 16 pieces per call on uring (what the storage
 *      layer does with a group of batches).  Buffered: this is the cost of
 *      getting bytes into the page cache, per call.
 *   B. durable 4 KiB appends, one at a time: latency p50/p99 of raw
 *      pwrite+fdatasync, kio_pwritev_many(KIO_W_DSYNC) on uring (write and
 *      linked fdatasync in one submission) and the same call on posix.
 *
 * Every throughput figure is the median of --reps runs (default 5); the
 * variants alternate within each rep so that drift hits all of them.  The
 * source buffers are prefaulted (read through) before every timed run: this
 * VM hands idle memory back to its host.  Each run writes a fresh file, and
 * the file system is synced before the run so that writeback of the
 * previous one does not land in it.
 *
 *   bench_io [--dir DIR] [--reps N] [--quick]
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "io/io.h"

static const char *g_dir = "/tmp/klog-bench-io";
static int g_reps = 5;
static bool g_quick = false;
static size_t g_file = 256u << 20;
static int g_lat_n = 2000;

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_io: %s: %s\n", what, klog_strerror(rc));
    exit(1);
}

/* Source data: 1 MiB of random bytes, cycled through. */
#define SRC_LEN (1u << 20)
static uint8_t *g_src;
static volatile uint64_t g_sink;

static void prefault(void)
{
    uint64_t s = 0;
    for (size_t i = 0; i < SRC_LEN; i += 64)
        s += g_src[i];
    g_sink += s;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", g_dir, name);
}

/* Quiet the disk: the previous run's file gone and written back. */
static void settle(const char *path)
{
    unlink(path);
    int fd = open(g_dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

/* ---- A. sequential throughput ------------------------------------------ */

enum variant { V_RAW, V_URING, V_POSIX, V_URING_BATCH, V_N };
static const char *vname[V_N] = {
    "raw pwrite", "kio uring", "kio posix", "kio uring, 16/call",
};

/* Seconds to write g_file bytes in `piece`-byte writes. */
static double seq_run(enum variant v, kio *uring, kio *posix, size_t piece)
{
    char path[4200];
    path_of(path, sizeof path, "seq.dat");
    settle(path);
    prefault();
    uint64_t t0, t1;
    if (v == V_RAW) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            die("open", -errno);
        t0 = klog__now_ns();
        for (size_t off = 0; off < g_file; off += piece) {
            if (pwrite(fd, g_src + off % SRC_LEN, piece, (off_t)off) != (ssize_t)piece)
                die("pwrite", -errno);
        }
        t1 = klog__now_ns();
        close(fd);
    } else {
        kio *io = v == V_POSIX ? posix : uring;
        int h = kio_file_open(io, path, KIO_O_RDWR | KIO_O_CREAT | KIO_O_TRUNC, 0644);
        if (h < 0)
            die("kio_file_open", h);
        t0 = klog__now_ns();
        if (v == V_URING_BATCH) {
            enum { B = 16 };
            struct iovec iov[B];
            kio_wreq req[B];
            for (size_t off = 0; off < g_file; off += B * piece) {
                for (unsigned k = 0; k < B; k++) {
                    size_t o = off + k * piece;
                    iov[k] = (struct iovec){ g_src + o % SRC_LEN, piece };
                    req[k] = (kio_wreq){ h, &iov[k], 1, o };
                }
                int rc = kio_pwritev_many(io, req, B, 0, NULL);
                if (rc < 0)
                    die("kio_pwritev_many", rc);
            }
        } else {
            for (size_t off = 0; off < g_file; off += piece) {
                struct iovec iov = { g_src + off % SRC_LEN, piece };
                int rc = kio_pwritev(io, h, &iov, 1, off);
                if (rc < 0)
                    die("kio_pwritev", rc);
            }
        }
        t1 = klog__now_ns();
        kio_file_close(io, h);
    }
    return (double)(t1 - t0) / 1e9;
}

static void seq(kio *uring, kio *posix, size_t piece)
{
    double t[V_N][64];
    for (int r = 0; r < g_reps; r++)
        for (int k = 0; k < V_N; k++) {
            enum variant v = (enum variant)((k + r) % V_N); /* rotate the order */
            t[v][r] = seq_run(v, uring, posix, piece);
        }
    double mb = (double)g_file / (1 << 20);
    size_t calls = g_file / piece;
    printf("sequential %zu KiB writes, %.0f MiB file (%zu writes), median of %d:\n",
           piece >> 10, mb, calls, g_reps);
    double raw = median(t[V_RAW], g_reps);
    for (int v = 0; v < V_N; v++) {
        double m = v == V_RAW ? raw : median(t[v], g_reps);
        printf("  %-22s %7.0f MiB/s %8.2f us/write   ratio to raw %.2f\n", vname[v], mb / m,
               m * 1e6 / (double)calls, raw / m);
    }
}

/* ---- B. durable append latency ----------------------------------------- */

enum lvariant { L_RAW, L_URING, L_POSIX, L_N };
static const char *lname[L_N] = {
    "raw pwrite+fdatasync", "kio uring KIO_W_DSYNC", "kio posix KIO_W_DSYNC",
};

static void lat_run(enum lvariant v, kio *uring, kio *posix, uint64_t *ns)
{
    char path[4200];
    path_of(path, sizeof path, "lat.dat");
    settle(path);
    prefault();
    const size_t piece = 4096;
    if (v == L_RAW) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            die("open", -errno);
        for (int i = 0; i < g_lat_n; i++) {
            uint64_t t0 = klog__now_ns();
            const uint8_t *src = g_src + ((size_t)i * piece) % SRC_LEN;
            if (pwrite(fd, src, piece, (off_t)i * (off_t)piece) != (ssize_t)piece)
                die("pwrite", -errno);
            if (fdatasync(fd) < 0)
                die("fdatasync", -errno);
            ns[i] = klog__now_ns() - t0;
        }
        close(fd);
        return;
    }
    kio *io = v == L_URING ? uring : posix;
    int h = kio_file_open(io, path, KIO_O_RDWR | KIO_O_CREAT | KIO_O_TRUNC, 0644);
    if (h < 0)
        die("kio_file_open", h);
    for (int i = 0; i < g_lat_n; i++) {
        struct iovec iov = { g_src + ((size_t)i * piece) % SRC_LEN, piece };
        kio_wreq req = { h, &iov, 1, (uint64_t)i * piece };
        uint64_t t0 = klog__now_ns();
        int rc = kio_pwritev_many(io, &req, 1, KIO_W_DSYNC, NULL);
        if (rc < 0)
            die("kio_pwritev_many(DSYNC)", rc);
        ns[i] = klog__now_ns() - t0;
    }
    kio_file_close(io, h);
}

static void latency(kio *uring, kio *posix)
{
    uint64_t *ns[L_N];
    for (int v = 0; v < L_N; v++)
        ns[v] = calloc((size_t)g_lat_n * (size_t)g_reps, sizeof **ns);
    /* every rep runs each variant once, order rotated; percentiles over
     * all samples of all reps */
    for (int r = 0; r < g_reps; r++)
        for (int k = 0; k < L_N; k++) {
            enum lvariant v = (enum lvariant)((k + r) % L_N);
            lat_run(v, uring, posix, ns[v] + (size_t)r * (size_t)g_lat_n);
        }
    size_t n = (size_t)g_lat_n * (size_t)g_reps;
    printf("durable 4 KiB appends, %d per run x %d runs:\n", g_lat_n, g_reps);
    for (int v = 0; v < L_N; v++) {
        qsort(ns[v], n, sizeof *ns[v], cmp_u64);
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += (double)ns[v][i];
        printf("  %-24s p50 %7.1f us  p99 %7.1f us  mean %7.1f us  %7.0f ops/s\n", lname[v],
               ns[v][n / 2] / 1e3, ns[v][(n * 99) / 100] / 1e3, sum / (double)n / 1e3,
               1e9 / (sum / (double)n));
        free(ns[v]);
    }
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
            fprintf(stderr, "usage: bench_io [--dir DIR] [--reps N] [--quick]\n");
            return 2;
        }
    }
    if (g_quick) {
        /* only checks that every path runs: figures are meaningless */
        g_reps = 1;
        g_file = 4u << 20;
        g_lat_n = 20;
    }
    if (g_reps < 1 || g_reps > 64) {
        fprintf(stderr, "bench_io: --reps must be 1..64\n");
        return 2;
    }
    if (mkdir(g_dir, 0755) < 0 && errno != EEXIST)
        die("mkdir", -errno);
    g_src = malloc(SRC_LEN);
    if (!g_src)
        die("malloc", -ENOMEM);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < SRC_LEN; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        g_src[i] = (uint8_t)x;
    }

    kio *uring = NULL, *posix = NULL;
    int rc = kio_open(&uring, &(kio_options){ .backend = KIO_BACKEND_URING });
    if (rc < 0)
        die("kio_open(uring)", rc);
    if ((rc = kio_open(&posix, &(kio_options){ .backend = KIO_BACKEND_POSIX })) < 0)
        die("kio_open(posix)", rc);

    seq(uring, posix, 64u << 10);
    seq(uring, posix, 4u << 10);
    latency(uring, posix);

    char path[4200];
    path_of(path, sizeof path, "seq.dat");
    unlink(path);
    path_of(path, sizeof path, "lat.dat");
    unlink(path);
    rmdir(g_dir); /* only if we made it and it is empty */
    kio_close(uring);
    kio_close(posix);
    free(g_src);
    return 0;
}
