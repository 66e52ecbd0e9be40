/*
 * bench/bench_wire.c - what serving klog's stored batches in Kafka's wire
 * form costs, against a plain copy of the same bytes, to decide whether
 * klog's on-disk batch header should become Kafka's own (issue 14; the
 * decision and the figures: bench/RESULTS.md, klog-format(5)).
 *
 * klog stores a batch under its own 65-byte little-endian header with an
 * XXH3 checksum; Kafka sends a 61-byte big-endian header with a CRC-32C
 * over the batch.  The records section is the same bytes in both (a
 * compressed one too), so a fetch sends a rebuilt header and then the stored
 * records, untouched: the only per-byte work is the CRC-32C pass.  Were the
 * header Kafka's own on disk, a fetch would send the file's bytes as they
 * are (sendfile) and compute nothing.
 *
 *   1. cpu: per batch, for batches of 1 KiB, 16 KiB and 1 MiB (64 MiB of
 *      them, more than the caches hold, as a fetch reads the page cache):
 *        memcpy            a plain copy of each batch (the baseline)
 *        to_wire           kf_batch_to_wire: header + CRC-32C, no copy
 *        to_wire+verify    the same after checking the stored XXH3
 *        to_wire+copy      to_wire, then header and records copied into a
 *                          send buffer (a server that copies once)
 *        crc32c (sse4.2)   kf_crc32c alone; and its table fallback
 *        from_wire         kf_wire_to_batch in place (a produce: CRC-32C
 *                          checked, XXH3 computed, records not moved)
 *   2. fetch: the same batches served over a loopback TCP socket in fetches
 *      of 1 MiB to a reader thread that drains them:
 *        native sendfile   the bytes already in Kafka's form in a file, one
 *                          sendfile per fetch (what a Kafka-format log does)
 *        klog hdr+sendfile per batch: header + CRC, write(header), sendfile
 *                          (records) from the klog file (zero-copy records)
 *        klog copied       per batch: header + CRC, header and records
 *                          copied into a 1 MiB buffer, one write per fetch
 *
 * Every figure is the median of --reps runs; the baseline in the same run.
 * Times are CPU time (the thread's, or for a fetch the serving thread's user
 * and system time), which a busy shared machine disturbs far less than wall
 * time; fetch throughput is also given, from the wall clock.
 *
 *   bench_wire [--dir DIR] [--reps N] [--quick] [--only cpu|fetch]
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "bench_util.h"
#include "common/common.h"
#include "format/format.h"
#include "format/internal.h"

static bu_args g_args = { .base = "/tmp/klog-bench" };
static size_t g_total = 64u << 20;

static const size_t sizes[] = { 1024, 16 * 1024, 1024 * 1024 };

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_wire: %s: %s\n", what, klog_strerror(rc));
    exit(1);
}

static double now_s(void)
{
    return (double)klog__now_ns() / 1e9;
}

/* CPU time of the calling thread, user and system, in seconds: what the
 * work cost, whatever else the machine was running (this 2-core VM is
 * shared; wall-clock figures move with its load, CPU time much less). */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Batches of about `size` bytes (100-byte JSON-ish values), back to back:
 * what a segment holds. */
typedef struct set {
    uint8_t *arena;
    size_t used;
    size_t *off, *len;
    size_t n;
} set;

static void make_set(set *s, size_t size, size_t total)
{
    size_t max = total / size + 2;
    s->arena = malloc(total + size + 4096);
    s->off = malloc(max * sizeof *s->off);
    s->len = malloc(max * sizeof *s->len);
    if (!s->arena || !s->off || !s->len)
        die("malloc", -ENOMEM);
    s->used = s->n = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int seq = 0;
    while (s->used + size <= total && s->n < max) {
        kf_builder b;
        kf_builder_init(&b, s->arena + s->used, size, KF_RECORD_MAX_DEFAULT);
        for (;;) {
            char v[100];
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            int vl = snprintf(v, sizeof v, "{\"device\":%d,\"temp\":%d.%d,\"seq\":%d,\"r\":\"%016llx\"}", seq % 97,
                              (int)(x % 40), (int)(x % 10), seq, (unsigned long long)x);
            kf_record r = { "device-key-0042", 15, v, vl, 1700000000000 + seq, NULL, 0 };
            if (kf_builder_add(&b, &r) != 0)
                break;
            seq++;
        }
        const uint8_t *out;
        size_t len;
        int rc = kf_builder_finish(&b, NULL, NULL, &out, &len);
        if (rc)
            die("kf_builder_finish", rc);
        kf_batch_set_base_offset(s->arena + s->used, seq);
        s->off[s->n] = s->used;
        s->len[s->n++] = len;
        s->used += len;
    }
}

static void free_set(set *s)
{
    free(s->arena);
    free(s->off);
    free(s->len);
}

/* ---- 1. cpu ---------------------------------------------------------------------- */

enum { M_MEMCPY, M_TO_WIRE, M_TO_WIRE_VERIFY, M_TO_WIRE_COPY, M_CRC_HW, M_CRC_SW, M_FROM_WIRE, M__N };
static const char *const m_names[M__N] = {
    "memcpy (baseline)", "to_wire", "to_wire+verify", "to_wire+copy", "crc32c sse4.2", "crc32c tables",
    "from_wire in place",
};

/* One pass of method m over the set; seconds. */
static double pass(int m, set *s, uint8_t *dst, set *w)
{
    uint8_t hdr[KF_WIRE_HDR_SIZE];
    const uint8_t *recs;
    size_t rlen;
    uint64_t sink = 0;
    double t0 = thread_cpu_s();
    for (size_t i = 0; i < s->n; i++) {
        const uint8_t *b = s->arena + s->off[i];
        const size_t len = s->len[i];
        switch (m) {
        case M_MEMCPY:
            memcpy(dst, b, len);
            sink += dst[len - 1];
            break;
        case M_TO_WIRE:
        case M_TO_WIRE_VERIFY:
        case M_TO_WIRE_COPY: {
            int rc = kf_batch_to_wire(b, len, m == M_TO_WIRE_VERIFY ? KF_WIRE_VERIFY : 0, NULL, hdr, &recs, &rlen);
            if (rc)
                die("kf_batch_to_wire", rc);
            if (m == M_TO_WIRE_COPY) {
                memcpy(dst, hdr, sizeof hdr);
                memcpy(dst + sizeof hdr, recs, rlen);
                sink += dst[sizeof hdr + rlen - 1];
            }
            sink += hdr[20];
            break;
        }
        case M_CRC_HW:
#if KF_HAVE_CRC32C_HW
            sink += kf__crc32c_hw(0, b + 21, len - 21);
#endif
            break;
        case M_CRC_SW:
            sink += kf__crc32c_sw(0, b + 21, len - 21);
            break;
        case M_FROM_WIRE: {
            /* w holds the wire form 4 bytes into each slot: converted in place */
            uint8_t *slot = w->arena + w->off[i];
            size_t out;
            int rc = kf_wire_to_batch(slot + 4, w->len[i], NULL, slot, w->len[i] + 4, &out);
            if (rc)
                die("kf_wire_to_batch", rc);
            break; /* put back in wire form by rewire(), outside the timing */
        }
        }
    }
    double t = thread_cpu_s() - t0;
    bu_sink += sink;
    return t;
}

/* The wire form of every batch of s, each in a slot with 4 bytes in front. */
static void make_wire(set *s, set *w)
{
    w->arena = malloc(s->used + 8 * s->n + 4096);
    w->off = malloc(s->n * sizeof *w->off);
    w->len = malloc(s->n * sizeof *w->len);
    if (!w->arena || !w->off || !w->len)
        die("malloc", -ENOMEM);
    w->n = s->n;
    w->used = 0;
    for (size_t i = 0; i < s->n; i++) {
        uint8_t hdr[KF_WIRE_HDR_SIZE];
        const uint8_t *recs;
        size_t rlen;
        int rc = kf_batch_to_wire(s->arena + s->off[i], s->len[i], 0, NULL, hdr, &recs, &rlen);
        if (rc)
            die("kf_batch_to_wire", rc);
        w->off[i] = w->used;
        w->len[i] = sizeof hdr + rlen;
        memcpy(w->arena + w->used + 4, hdr, sizeof hdr);
        memcpy(w->arena + w->used + 4 + sizeof hdr, recs, rlen);
        w->used += 4 + w->len[i];
    }
}

/* Put each slot back in wire form (after from_wire converted it). */
static void rewire(set *w)
{
    for (size_t i = 0; i < w->n; i++) {
        uint8_t *slot = w->arena + w->off[i];
        uint8_t hdr[KF_WIRE_HDR_SIZE];
        const uint8_t *recs;
        size_t rlen;
        if (kf_batch_to_wire(slot, w->len[i] + 4, 0, NULL, hdr, &recs, &rlen))
            die("rewire", KLOG_ECORRUPT);
        memcpy(slot + 4, hdr, sizeof hdr); /* records are already in place */
    }
}

static void sec_cpu(void)
{
    printf("cpu: header conversion and CRC-32C per batch, %zu MiB of batches per size, median of %d\n",
           g_total >> 20, g_args.reps);
#if KF_HAVE_CRC32C_HW
    bool hw = __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
#else
    bool hw = false;
#endif
    for (size_t k = 0; k < KLOG_ARRAY_LEN(sizes); k++) {
        set s, w;
        make_set(&s, sizes[k], g_total);
        make_wire(&s, &w);
        uint8_t *dst = malloc(sizes[k] + 4096);
        memset(dst, 0, sizes[k] + 4096);
        bu_prefault(s.arena, s.used);
        double *t = calloc((size_t)g_args.reps * M__N, sizeof *t);
        for (int r = 0; r < g_args.reps; r++)
            for (int m = 0; m < M__N; m++) { /* interleaved: drift hits every method alike */
                if (m == M_CRC_HW && !hw)
                    continue;
                t[m * g_args.reps + r] = pass(m, &s, dst, &w);
                if (m == M_FROM_WIRE)
                    rewire(&w);
            }
        double base = bu_median(t + M_MEMCPY * g_args.reps, g_args.reps);
        printf("  batches of %4zu KiB (%zu batches, %.1f MiB):\n", sizes[k] >> 10, s.n, (double)s.used / (1 << 20));
        for (int m = 0; m < M__N; m++) {
            if (m == M_CRC_HW && !hw) {
                printf("    %-20s (no SSE4.2 + PCLMUL on this CPU)\n", m_names[m]);
                continue;
            }
            double med = bu_median(t + m * g_args.reps, g_args.reps);
            printf("    %-20s %8.0f ns/batch %8.2f GB/s   CPU time %5.2fx memcpy\n", m_names[m], med * 1e9 / (double)s.n,
                   (double)s.used / med / 1e9, med / base);
        }
        free(t);
        free(dst);
        free_set(&w);
        free_set(&s);
    }
}

/* ---- 2. fetch over loopback ------------------------------------------------------- */

#define FETCH (1u << 20)

typedef struct reader {
    int fd;
    uint64_t want, got;
} reader;

static void *reader_main(void *arg)
{
    reader *r = arg;
    static char buf[1 << 18];
    while (r->got < r->want) {
        ssize_t n = read(r->fd, buf, sizeof buf);
        if (n <= 0)
            break;
        r->got += (uint64_t)n;
    }
    return NULL;
}

static void socket_pair(int *srv, int *cli)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al))
        die("listen", -errno);
    *cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*cli < 0 || connect(*cli, (struct sockaddr *)&a, sizeof a))
        die("connect", -errno);
    *srv = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (*srv < 0)
        die("accept", -errno);
    close(l);
    int one = 1;
    setsockopt(*srv, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(path, -errno);
    for (size_t o = 0; o < n;) {
        ssize_t w = pwrite(fd, p + o, n - o, (off_t)o);
        if (w <= 0)
            die("pwrite", -errno);
        o += (size_t)w;
    }
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    for (size_t o = 0; o < n;) {
        ssize_t w = write(fd, (const uint8_t *)p + o, n - o);
        if (w <= 0)
            die("write", -errno);
        o += (size_t)w;
    }
}

static void sendfile_all(int sock, int fd, off_t off, size_t n)
{
    while (n) {
        ssize_t w = sendfile(sock, fd, &off, n);
        if (w <= 0)
            die("sendfile", -errno);
        n -= (size_t)w;
    }
}

enum { F_NATIVE, F_HDR_SENDFILE, F_COPIED, F__N };
static const char *const f_names[F__N] = { "native sendfile", "klog hdr+sendfile", "klog copied" };

/* Serve the whole set once with method m: the seconds until the reader has
 * it all in *wall, the serving thread's CPU seconds (user + system) in *cpu. */
static void serve(int m, set *s, int kfd, const uint8_t *kmap, int nfd, size_t nbytes, uint8_t *sendbuf,
                  double *wall, double *cpu)
{
    int srv, cli;
    socket_pair(&srv, &cli);
    reader r = { .fd = cli, .want = nbytes };
    pthread_t th;
    double t0 = now_s(), c0 = cpu_s();
    pthread_create(&th, NULL, reader_main, &r);
    if (m == F_NATIVE) {
        for (size_t o = 0; o < nbytes; o += FETCH) /* a fetch: one range of the file */
            sendfile_all(srv, nfd, (off_t)o, KLOG_MIN((size_t)FETCH, nbytes - o));
    } else {
        size_t in_buf = 0;
        for (size_t i = 0; i < s->n; i++) {
            uint8_t hdr[KF_WIRE_HDR_SIZE];
            const uint8_t *recs;
            size_t rlen;
            int rc = kf_batch_to_wire(kmap + s->off[i], s->len[i], 0, NULL, hdr, &recs, &rlen);
            if (rc)
                die("kf_batch_to_wire", rc);
            if (m == F_HDR_SENDFILE) {
                send_all(srv, hdr, sizeof hdr);
                sendfile_all(srv, kfd, (off_t)(recs - kmap), rlen);
            } else {
                if (in_buf + sizeof hdr + rlen > FETCH) {
                    send_all(srv, sendbuf, in_buf);
                    in_buf = 0;
                }
                memcpy(sendbuf + in_buf, hdr, sizeof hdr);
                memcpy(sendbuf + in_buf + sizeof hdr, recs, rlen);
                in_buf += sizeof hdr + rlen;
            }
        }
        if (in_buf)
            send_all(srv, sendbuf, in_buf);
    }
    *cpu = cpu_s() - c0;
    pthread_join(th, NULL);
    *wall = now_s() - t0;
    if (r.got != nbytes)
        die("reader short", -EIO);
    close(srv);
    close(cli);
}

static void sec_fetch(void)
{
    printf("fetch: the batches served over loopback TCP in 1 MiB fetches, median of %d\n", g_args.reps);
    for (size_t k = 0; k < KLOG_ARRAY_LEN(sizes); k++) {
        set s, w;
        make_set(&s, sizes[k], g_total);
        make_wire(&s, &w);
        char kpath[4200], npath[4200];
        snprintf(kpath, sizeof kpath, "%s/klog.log", g_args.dir);
        snprintf(npath, sizeof npath, "%s/kafka.log", g_args.dir);
        int kfd = write_file(kpath, s.arena, s.used);
        /* the Kafka-format file: the wire batches back to back */
        uint8_t *native = malloc(w.used);
        size_t nbytes = 0;
        for (size_t i = 0; i < w.n; i++) {
            memcpy(native + nbytes, w.arena + w.off[i] + 4, w.len[i]);
            nbytes += w.len[i];
        }
        int nfd = write_file(npath, native, nbytes);
        uint8_t *kmap = mmap(NULL, s.used, PROT_READ, MAP_SHARED, kfd, 0);
        if (kmap == MAP_FAILED)
            die("mmap", -errno);
        bu_prefault(kmap, s.used);
        uint8_t *sendbuf = malloc(FETCH);
        memset(sendbuf, 0, FETCH);
        double *t = calloc((size_t)g_args.reps * F__N, sizeof *t), *c = calloc((size_t)g_args.reps * F__N, sizeof *c);
        for (int r = 0; r < g_args.reps; r++)
            for (int m = 0; m < F__N; m++)
                serve(m, &s, kfd, kmap, nfd, nbytes, sendbuf, &t[m * g_args.reps + r], &c[m * g_args.reps + r]);
        double base = bu_median(t, g_args.reps), cbase = bu_median(c, g_args.reps);
        printf("  batches of %4zu KiB (%zu batches, %.1f MiB on the wire):\n", sizes[k] >> 10, s.n,
               (double)nbytes / (1 << 20));
        for (int m = 0; m < F__N; m++) {
            double med = bu_median(t + m * g_args.reps, g_args.reps), cmed = bu_median(c + m * g_args.reps, g_args.reps);
            printf("    %-20s %6.0f MB/s (%5.2fx native)   server CPU %6.1f ms/GiB (%5.2fx native)\n", f_names[m],
                   (double)nbytes / med / 1e6, base / med, cmed * 1e3 * (double)(1u << 30) / (double)nbytes,
                   cmed / cbase);
        }
        free(t);
        free(c);
        free(sendbuf);
        munmap(kmap, s.used);
        close(kfd);
        close(nfd);
        unlink(kpath);
        unlink(npath);
        free(native);
        free_set(&w);
        free_set(&s);
    }
}

int main(int argc, char **argv)
{
    static const bu_section secs[] = { { "cpu", sec_cpu }, { "fetch", sec_fetch } };
    int rc = bu_parse(argc, argv, "bench_wire", secs, KLOG_ARRAY_LEN(secs), false, 5, 1000, &g_args);
    if (rc)
        return rc;
    if (g_args.quick)
        g_total = 4u << 20;
    bu_run(secs, KLOG_ARRAY_LEN(secs), &g_args);
    bu_cleanup("bench_wire", &g_args);
    return 0;
}
