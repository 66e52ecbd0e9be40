/*
 * bench/compare/main.c - bench_compare: the same workloads on klog and on
 * the alternatives, side by side, in one run.  bench/compare/run.sh is the
 * one command (it starts redis-server and nats-server, runs this, draws the
 * charts); this program only measures and prints.
 *
 * Workloads (sizes of a full run; --quick shrinks them to a few thousand
 * records and one repetition, to check that everything runs):
 *   produce-100   1,000,000 records, 16-byte keys, 100-byte values, in
 *                 batches of 1000, acknowledged in the page cache
 *   produce-1k    250,000 records with 1 KiB values, the same way
 *   durable-N     acknowledged only once on disk, batches of 1, 100, 1000
 *                 records (1000, 300 and 100 batches)
 *   consume       1,000,000 100-byte records read from the start (written
 *                 beforehand, the store settled - RocksDB flushed, SQLite
 *                 checkpointed - read once untimed, then timed)
 *   consume-16p   the same, the records in 16 partitions read by one reader,
 *                 beside one partition in the same run (klog and raw)
 *   latency       one thread sends 100-byte records at 10,000/s (and at
 *                 each rate of --lat-rates: latency-100k ...), a reader
 *                 thread tails the store; per record, send timestamp to
 *                 receipt: p50, p99, p99.9, max over 5 segments of 0.4 s
 *                 (after 0.1 s of warm-up each) per back end and
 *                 repetition, and what the samples above p99 met (page
 *                 faults, preemption, a sleeping reader: see lat_reader)
 *   telemetry     200,000 JSON telemetry values (300-600 bytes, generated
 *                 deterministically), produced then consumed, with no
 *                 compression and, where the store has it, lz4 and zstd;
 *                 stored bytes / raw bytes; also the produce rate counting
 *                 the time until the store has settled (RocksDB flushed,
 *                 SQLite checkpointed), since RocksDB compresses only when
 *                 it flushes a memtable, mostly after its writes returned
 *
 * Every timed run gets a fresh store in a fresh directory (or a fresh
 * stream / key on the servers).  A repetition runs every back end in turn,
 * so that the drift of this machine hits them alike; each cell reports the
 * median of --reps repetitions and their spread (min..max).  Buffers are
 * prefaulted before timing, and before every timed write run a scratch
 * file as large as the run's data is written and deleted (bench_util.h
 * says why); runs that sync or measure latency start after a syncfs.
 *
 * --cold: the consume workloads are also read by a fresh process (see
 * consume_cold), as a user's first run reads, with the page cache warm
 * and dropped.
 *
 *   bench_compare [--reps N] [--quick] [--cold] [--dir DIR] [--out DIR]
 *                 [--redis HOST:PORT] [--nats URL] [--backends a,b,...]
 *                 [--workloads a,b,...] [--lat-rates 10000,100000]
 *
 * --out DIR receives results.tsv (every cell) and the .dat files that
 * bench/compare/charts.gp draws.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>

#include "../bench_util.h"
#include "backend.h"

#define KEY_LEN 16
#define NKEYS 100000
#define VAL_SPREAD 4096
#define MAX_REPS 15
#define MAX_BATCH 1000

/* ---- helpers the back ends share ---------------------------------------- */

uint64_t bc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void *bc_alloc_prefaulted(size_t len)
{
    void *p = malloc(len ? len : 1);
    if (!p) {
        fprintf(stderr, "bench_compare: out of memory (%zu bytes)\n", len);
        exit(1);
    }
    memset(p, 0, len);
    return p;
}

int bc_signal_new(void)
{
    int fd = eventfd(0, EFD_CLOEXEC);
    if (fd < 0)
        fprintf(stderr, "bench_compare: eventfd: %s\n", strerror(errno));
    return fd;
}

void bc_signal_post(int fd)
{
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof one) < 0)
        fprintf(stderr, "bench_compare: eventfd write: %s\n", strerror(errno));
}

int bc_signal_wait(int fd, int timeout_ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    int n = poll(&p, 1, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    if (n == 0)
        return 0;
    uint64_t v;
    return read(fd, &v, sizeof v) == (ssize_t)sizeof v ? 1 : -1;
}

/* ---- options and state -------------------------------------------------- */

static int g_reps = 3;
static bool g_quick;
static const char *g_base = "/tmp";
static const char *g_out;
static char g_dir[4096];
static bc_env g_env;
static unsigned g_seq;
static const char *g_only_be, *g_only_wl;
static bool g_cold; /* --cold: the consume workloads also read in a fresh process */

static const bc_backend *const k_all[] = { &bc_klog, &bc_raw, &bc_sqlite, &bc_lmdb, &bc_rocksdb, &bc_redis, &bc_nats };
enum { NALL = sizeof k_all / sizeof k_all[0] };
static const bc_backend *g_be[NALL];
static int g_nbe;

static char *g_keys, *g_vals;
static char *g_tel;            /* telemetry values back to back */
static uint32_t *g_tel_off;    /* g_tel_n + 1 offsets */
static uint64_t g_tel_n;

static void die(const char *what)
{
    fprintf(stderr, "bench_compare: %s failed; stopping\n", what);
    exit(1);
}

static bool in_list(const char *list, const char *name)
{
    if (!list)
        return true;
    size_t l = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += l)
        if ((p == list || p[-1] == ',') && (p[l] == ',' || p[l] == 0))
            return true;
    return false;
}

/* ---- workload data ------------------------------------------------------ */

/* The telemetry values (bench_util.h's bu_telemetry; bench_compress's too). */
static void telemetry_init(uint64_t n)
{
    uint64_t rng_state = BU_RNG_SEED;
    g_tel_n = n;
    g_tel = bc_alloc_prefaulted(n * BU_TEL_MAX);
    g_tel_off = bc_alloc_prefaulted((n + 1) * sizeof *g_tel_off);
    bu_telemetry(n, g_tel, g_tel_off, &rng_state);
}

static void data_init(void)
{
    g_keys = bc_alloc_prefaulted((size_t)NKEYS * KEY_LEN + 1);
    g_vals = bc_alloc_prefaulted(VAL_SPREAD + 1024 + 64);
    for (unsigned i = 0; i < NKEYS; i++)
        snprintf(g_keys + (size_t)i * KEY_LEN, KEY_LEN + 1, "key-%012u", i);
    for (size_t i = 0; i < VAL_SPREAD + 1024 + 64; i++)
        g_vals[i] = (char)('a' + (i * 7 + i / 26) % 26);
}

static void data_prefault(void)
{
    bu_prefault(g_keys, (size_t)NKEYS * KEY_LEN);
    bu_prefault(g_vals, VAL_SPREAD + 1024);
    if (g_tel)
        bu_prefault(g_tel, g_tel_off[g_tel_n]);
}

/* A workload's records: fixed-size values from the pool, or telemetry. */
typedef struct wl {
    const char *name;
    uint64_t records;
    size_t vlen;        /* 0: telemetry values */
    size_t batch;
    bool durable;
} wl;

static void fill(const wl *w, bc_rec *r, uint64_t first, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        uint64_t i = first + j;
        r[j].key = g_keys + (i % NKEYS) * KEY_LEN;
        r[j].key_len = KEY_LEN;
        if (w->vlen) {
            r[j].val = g_vals + (i * 61) % VAL_SPREAD;
            r[j].val_len = w->vlen;
        } else {
            uint64_t t = i % g_tel_n;
            r[j].val = g_tel + g_tel_off[t];
            r[j].val_len = g_tel_off[t + 1] - g_tel_off[t];
        }
    }
}

static uint64_t raw_bytes(const wl *w)
{
    if (w->vlen)
        return w->records * (KEY_LEN + w->vlen);
    uint64_t b = 0;
    for (uint64_t i = 0; i < w->records; i++)
        b += KEY_LEN + g_tel_off[i % g_tel_n + 1] - g_tel_off[i % g_tel_n];
    return b;
}

static size_t max_batch_bytes(const wl *w)
{
    return w->batch * (KEY_LEN + (w->vlen ? w->vlen : 620));
}

/* ---- results ------------------------------------------------------------ */

typedef struct cell {
    char wl[24], be[24], metric[16];
    double v[MAX_REPS];
    int n;
} cell;

static cell g_cells[1024];
static int g_ncells;

static cell *cell_get(const char *w, const char *be, const char *metric, bool create)
{
    for (int i = 0; i < g_ncells; i++)
        if (!strcmp(g_cells[i].wl, w) && !strcmp(g_cells[i].be, be) && !strcmp(g_cells[i].metric, metric))
            return &g_cells[i];
    if (!create || g_ncells == (int)(sizeof g_cells / sizeof g_cells[0]))
        return NULL;
    cell *c = &g_cells[g_ncells++];
    snprintf(c->wl, sizeof c->wl, "%s", w);
    snprintf(c->be, sizeof c->be, "%s", be);
    snprintf(c->metric, sizeof c->metric, "%s", metric);
    return c;
}

static void put(const char *w, const char *be, const char *metric, double v)
{
    cell *c = cell_get(w, be, metric, true);
    if (c && c->n < MAX_REPS)
        c->v[c->n++] = v;
}

/* median, min, max of a cell; false if there is none */
static bool stat3(const char *w, const char *be, const char *metric, double *med, double *lo, double *hi)
{
    cell *c = cell_get(w, be, metric, false);
    if (!c || c->n == 0)
        return false;
    double v[MAX_REPS];
    memcpy(v, c->v, sizeof(double) * (size_t)c->n);
    *med = bu_median(v, c->n);
    *lo = v[0];
    *hi = v[c->n - 1];
    return true;
}

static double med_of(const char *w, const char *be, const char *metric)
{
    double m, lo, hi;
    return stat3(w, be, metric, &m, &lo, &hi) ? m : NAN;
}

/* 3 significant digits with k/M suffix */
static void fmt_num(char *buf, size_t cap, double v)
{
    const char *suf = "";
    if (v >= 1e6) {
        v /= 1e6;
        suf = "M";
    } else if (v >= 1e4) {
        v /= 1e3;
        suf = "k";
    }
    int dec = v >= 100 ? 0 : v >= 10 ? 1 : 2;
    snprintf(buf, cap, "%.*f%s", dec, v, suf);
}

/* "median [min..max]" */
static void fmt_cell(char *buf, size_t cap, const char *w, const char *be, const char *metric)
{
    double m, lo, hi;
    if (!stat3(w, be, metric, &m, &lo, &hi)) {
        snprintf(buf, cap, "-");
        return;
    }
    char a[16], b[16], c[16];
    fmt_num(a, sizeof a, m);
    fmt_num(b, sizeof b, lo);
    fmt_num(c, sizeof c, hi);
    if (g_reps == 1)
        snprintf(buf, cap, "%s", a);
    else
        snprintf(buf, cap, "%s [%s..%s]", a, b, c);
}

static const char *note_of(const char *be)
{
    for (int i = 0; i < g_nbe; i++)
        if (!strncmp(be, g_be[i]->name, strlen(g_be[i]->name)))
            return g_be[i]->durable_note;
    return NULL;
}

/* The klog row an alternative is compared with: the same codec suffix. */
static void klog_peer(char *buf, size_t cap, const char *be)
{
    const char *plus = strchr(be, '+');
    snprintf(buf, cap, "klog%s", plus ? plus : "");
}

/*
 * One table: a row per back end (variant), a "median [min..max]" column per
 * metric, and the ratios of the first metric to klog's and to raw's.
 */
static void table(const char *w, const char *title, const char *const *metrics, const char *const *heads, int nm,
                  bool lower_better, bool durable)
{
    printf("\n%s\n", title);
    printf("  %-14s", "backend");
    for (int m = 0; m < nm; m++)
        printf(" %-26s", heads[m]);
    printf(" %7s %7s\n", "vs klog", "vs raw");
    char seen[64][24];
    int ns = 0;
    for (int i = 0; i < g_ncells; i++) {
        if (strcmp(g_cells[i].wl, w))
            continue;
        bool dup = false;
        for (int j = 0; j < ns; j++)
            dup |= !strcmp(seen[j], g_cells[i].be);
        if (!dup && ns < 64)
            snprintf(seen[ns++], 24, "%s", g_cells[i].be);
    }
    for (int j = 0; j < ns; j++) {
        const char *be = seen[j];
        printf("  %-14s", be);
        for (int m = 0; m < nm; m++) {
            char c[80];
            fmt_cell(c, sizeof c, w, be, metrics[m]);
            printf(" %-26s", c);
        }
        char peer[32];
        klog_peer(peer, sizeof peer, be);
        double me = med_of(w, be, metrics[0]), k = med_of(w, peer, metrics[0]), r = med_of(w, "raw", metrics[0]);
        if (isnan(k))
            k = med_of(w, "klog", metrics[0]);
        printf(" %7.2f %7.2f", me / k, me / r);
        const char *note = durable ? note_of(be) : NULL;
        printf("%s%s\n", note ? "  * " : "", note ? note : "");
    }
    printf("  (median [min..max] of %d run%s; vs klog / vs raw: this %s / klog's (same codec) or raw's; %s is better)\n",
           g_reps, g_reps > 1 ? "s" : "", metrics[0], lower_better ? "lower" : "higher");
    fflush(stdout);
}

/* ---- store lifecycle ---------------------------------------------------- */

static void store_dir(char *buf, size_t cap, const bc_backend *be, unsigned seq)
{
    snprintf(buf, cap, "%s/%s-%u", g_dir, be->name, seq);
    if (mkdir(buf, 0755) != 0) {
        fprintf(stderr, "bench_compare: mkdir %s: %s\n", buf, strerror(errno));
        exit(1);
    }
}

typedef struct open_store {
    const bc_backend *be;
    bc_store *s;
    char dir[4200];
} open_store;

static void store_open(open_store *os, const bc_backend *be, const wl *w, bool latency, bc_codec codec)
{
    os->be = be;
    unsigned seq = ++g_seq;
    store_dir(os->dir, sizeof os->dir, be, seq);
    bc_opts o = { .dir = os->dir, .env = &g_env, .seq = seq, .durable = w->durable, .latency = latency,
                  .codec = codec, .max_batch_bytes = max_batch_bytes(w) };
    if (be->open(&os->s, &o))
        die(be->name);
}

static void store_close(open_store *os)
{
    os->be->close(os->s);
    os->s = NULL;
    bu_rm_rf("bench_compare", os->dir);
}

static void settle(void)
{
    int fd = open(g_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

static void warm_page_cache(uint64_t bytes)
{
    if (bu_warm_page_cache(g_dir, bytes) < 0)
        fprintf(stderr, "bench_compare: page cache warm-up failed\n");
}

/* Produce the workload into an open store; returns seconds (timed). */
static double produce_into(open_store *os, const wl *w)
{
    static bc_rec recs[MAX_BATCH];
    warm_page_cache(raw_bytes(w) * 11 / 10);
    if (w->durable)
        settle();
    data_prefault();
    bu_prefault(recs, sizeof recs);
    uint64_t t0 = bc_now_ns();
    for (uint64_t i = 0; i < w->records; i += w->batch) {
        size_t n = w->records - i < w->batch ? (size_t)(w->records - i) : w->batch;
        fill(w, recs, i, n);
        if (os->be->produce(os->s, recs, n))
            die(os->be->name);
    }
    if (os->be->finish(os->s))
        die(os->be->name);
    return (double)(bc_now_ns() - t0) / 1e9;
}

typedef struct acc {
    uint64_t n, bytes, x;
} acc;

static void on_msg(void *arg, const void *key, size_t kl, const void *val, size_t vl)
{
    acc *a = arg;
    a->n++;
    a->bytes += kl + vl;
    a->x += vl ? ((const uint8_t *)val)[0] : 0;
}

/* CPU seconds (user + system, all threads) this process has used. */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds of the last consume_from: on a loaded machine a read of
 * 1M records (tens of ms) is shorter than the waits for a core, and the
 * CPU it took is the steadier figure (the cpu rec/s columns). */
static double g_consume_cpu;

/* Read everything back; checks count and bytes; returns seconds. */
static double consume_from(open_store *os, const wl *w)
{
    acc a = { 0, 0, 0 };
    double c0 = cpu_now();
    uint64_t t0 = bc_now_ns();
    int64_t n = os->be->consume_all(os->s, on_msg, &a);
    double s = (double)(bc_now_ns() - t0) / 1e9;
    g_consume_cpu = cpu_now() - c0;
    if (n < 0)
        die(os->be->name);
    if ((uint64_t)n != w->records || a.n != w->records || a.bytes != raw_bytes(w)) {
        fprintf(stderr, "bench_compare: %s read back %" PRIu64 " records, %" PRIu64 " bytes; wrote %" PRIu64 ", %" PRIu64 "\n",
                os->be->name, a.n, a.bytes, w->records, raw_bytes(w));
        exit(1);
    }
    bu_sink += a.x;
    return s;
}

/* ---- workloads ---------------------------------------------------------- */

static void consume_cold(const char *wname, open_store *os, int n, const char *const *labels, const wl *w,
                         unsigned parts);
static void cold_tables(const char *wname, const char *title);
static void cpu_ratios(const char *w);

static void w_produce(const char *name, uint64_t records, size_t vlen)
{
    wl w = { name, g_quick ? 2000 : records, vlen, MAX_BATCH, false };
    uint64_t raw = raw_bytes(&w);
    for (int r = 0; r < g_reps; r++)
        for (int b = 0; b < g_nbe; b++) {
            open_store os;
            store_open(&os, g_be[b], &w, false, BC_CODEC_NONE);
            double s = produce_into(&os, &w);
            int64_t st = g_be[b]->stored_bytes(os.s);
            if (st < 0)
                die(g_be[b]->name);
            store_close(&os);
            put(name, g_be[b]->name, "rec/s", (double)w.records / s);
            put(name, g_be[b]->name, "MB/s", (double)raw / s / 1e6);
            put(name, g_be[b]->name, "stored/raw", (double)st / (double)raw);
        }
    char title[256];
    snprintf(title, sizeof title,
             "%s: %" PRIu64 " records, %d-byte keys, %zu-byte values, batches of %d, acknowledged in the page cache",
             name, w.records, KEY_LEN, vlen, MAX_BATCH);
    static const char *const m[] = { "rec/s", "MB/s", "stored/raw" };
    static const char *const h[] = { "records/s", "MB/s (keys+values)", "stored bytes / raw" };
    table(name, title, m, h, 3, false, false);
}

static void w_durable(void)
{
    static const size_t batch[] = { 1, 100, 1000 };
    const uint64_t nb[] = { g_quick ? 5 : 1000, g_quick ? 3 : 300, g_quick ? 2 : 100 };
    char names[3][24];
    for (int i = 0; i < 3; i++)
        snprintf(names[i], sizeof names[i], "durable-%zu", batch[i]);
    for (int r = 0; r < g_reps; r++)
        for (int i = 0; i < 3; i++)
            for (int b = 0; b < g_nbe; b++) {
                wl w = { names[i], nb[i] * batch[i], 100, batch[i], true };
                open_store os;
                store_open(&os, g_be[b], &w, false, BC_CODEC_NONE);
                double s = produce_into(&os, &w);
                store_close(&os);
                put(names[i], g_be[b]->name, "rec/s", (double)w.records / s);
                put(names[i], g_be[b]->name, "us/batch", s / (double)nb[i] * 1e6);
            }
    for (int i = 0; i < 3; i++) {
        char title[256];
        snprintf(title, sizeof title,
                 "%s: %" PRIu64 " batches of %zu records (16-byte keys, 100-byte values), each acknowledged only once on disk",
                 names[i], nb[i], batch[i]);
        static const char *const m[] = { "rec/s", "us/batch" };
        static const char *const h[] = { "records/s", "us per batch" };
        table(names[i], title, m, h, 2, false, true);
    }
}

static void w_consume(void)
{
    wl w = { "consume", g_quick ? 2000 : 1000000, 100, MAX_BATCH, false };
    open_store os[NALL];
    for (int b = 0; b < g_nbe; b++) {
        store_open(&os[b], g_be[b], &w, false, BC_CODEC_NONE);
        produce_into(&os[b], &w);
        /* settled, as a log read from the start has been for a while:
         * RocksDB's memtable flushed to SSTs, SQLite's WAL checkpointed */
        if (g_be[b]->stored_bytes(os[b].s) < 0)
            die(g_be[b]->name);
        consume_from(&os[b], &w); /* untimed: the pages mapped once, as a tailing reader finds them */
    }
    for (int r = 0; r < g_reps; r++)
        for (int b = 0; b < g_nbe; b++) {
            double s = consume_from(&os[b], &w);
            put("consume", g_be[b]->name, "rec/s", (double)w.records / s);
            put("consume", g_be[b]->name, "MB/s", (double)raw_bytes(&w) / s / 1e6);
            put("consume", g_be[b]->name, "cpu rec/s", (double)w.records / g_consume_cpu);
        }
    if (g_cold)
        consume_cold("consume", os, g_nbe, NULL, &w, 1);
    for (int b = 0; b < g_nbe; b++)
        store_close(&os[b]);
    char title[256];
    snprintf(title, sizeof title, "consume: %" PRIu64 " records (16-byte keys, 100-byte values) read from the start",
             w.records);
    static const char *const m[] = { "rec/s", "MB/s", "cpu rec/s" };
    static const char *const h[] = { "records/s", "MB/s (keys+values)", "records per CPU second" };
    table("consume", title, m, h, 3, false, false);
    cpu_ratios("consume");
    if (g_cold)
        cold_tables("consume", title);
}

/* ---- cold reads: a fresh process opens what another one wrote ----------- */

/*
 * --cold: every timed read of a consume workload is done once more by a
 * fresh process (this program again: --child-consume), which opens the
 * store another process wrote and closed, as a user's first run does:
 *   -cold     the page cache as the last process left it (the files cached,
 *             nothing mapped, no checksum proof in memory - klog's index
 *             files keep the writer's -, allocator cold): the writer's in
 *             the first repetition, the previous -dropped read's after
 *   -dropped  the store's files dropped from the page cache first (syncfs,
 *             then posix_fadvise DONTNEED on each file: read from the
 *             disk; the other files of the machine are left alone)
 * Only back ends with .reopens take part (the servers keep their data in
 * their own process).
 */
static int drop_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)f;
    if (type == FTW_F) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            close(fd);
        }
    }
    return 0;
}

static double cold_read(const bc_backend *be, const char *dir, const wl *w, unsigned parts, bool drop, double *cpu)
{
    if (drop) {
        settle();
        nftw(dir, drop_one, 16, FTW_PHYS);
    }
    char self[4096], cmd[9000];
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    if (l <= 0)
        die("readlink /proc/self/exe");
    self[l] = 0;
    snprintf(cmd, sizeof cmd, "'%s' --child-consume %s '%s' %" PRIu64 " %u", self, be->name, dir, w->records, parts);
    FILE *f = popen(cmd, "r");
    double secs = -1;
    if (!f || fscanf(f, "%lf %lf", &secs, cpu) != 2 || pclose(f) != 0 || secs <= 0 || *cpu <= 0)
        die(cmd);
    return secs;
}

/* The stores os[0..n) (labels[i] or the back end's name) closed, each read
 * g_reps times by a fresh process, cache warm and dropped; then removed by
 * the caller's store_close (which closes nothing twice: s is NULL). */
static void consume_cold(const char *wname, open_store *os, int n, const char *const *labels, const wl *w,
                         unsigned parts)
{
    char wc[24], wd[24];
    snprintf(wc, sizeof wc, "%s-cold", wname);
    snprintf(wd, sizeof wd, "%s-dropped", wname);
    for (int b = 0; b < n; b++)
        if (os[b].be->reopens) {
            os[b].be->close(os[b].s);
            os[b].s = NULL;
        }
    for (int r = 0; r < g_reps; r++)
        for (int b = 0; b < n; b++) {
            if (!os[b].be->reopens)
                continue;
            const char *label = labels ? labels[b] : os[b].be->name;
            unsigned p = labels && strstr(labels[b], "-1p") ? 1 : parts;
            double cpu, s = cold_read(os[b].be, os[b].dir, w, p, false, &cpu);
            put(wc, label, "rec/s", (double)w->records / s);
            put(wc, label, "MB/s", (double)raw_bytes(w) / s / 1e6);
            put(wc, label, "cpu rec/s", (double)w->records / cpu);
            s = cold_read(os[b].be, os[b].dir, w, p, true, &cpu);
            put(wd, label, "rec/s", (double)w->records / s);
            put(wd, label, "MB/s", (double)raw_bytes(w) / s / 1e6);
            put(wd, label, "cpu rec/s", (double)w->records / cpu);
        }
}

/* The klog/raw and klog/lmdb ratios of the cpu rec/s column. */
static void cpu_ratios(const char *w)
{
    double k = med_of(w, "klog", "cpu rec/s"), r = med_of(w, "raw", "cpu rec/s"), l = med_of(w, "lmdb", "cpu rec/s");
    printf("  %s, records per CPU second: klog/raw %.2f, klog/lmdb %.2f\n", w, k / r, k / l);
}

static void cold_tables(const char *wname, const char *title)
{
    static const char *const m[] = { "rec/s", "MB/s", "cpu rec/s" };
    static const char *const h[] = { "records/s", "MB/s (keys+values)", "records per CPU second" };
    char w[24], t[400];
    snprintf(w, sizeof w, "%s-cold", wname);
    snprintf(t, sizeof t, "%s -- cold: read by a fresh process, page cache as the writing process left it", title);
    table(w, t, m, h, 3, false, false);
    cpu_ratios(w);
    snprintf(w, sizeof w, "%s-dropped", wname);
    snprintf(t, sizeof t, "%s -- cold, dropped: a fresh process, the store's files dropped from the page cache", title);
    table(w, t, m, h, 3, false, false);
    cpu_ratios(w);
}

/* bench_compare --child-consume BACKEND DIR RECORDS PARTITIONS: open the
 * store in DIR (written by another process), read it all once, timed;
 * prints the seconds.  100-byte values, as the consume workloads write. */
static int child_consume(char **argv)
{
    const bc_backend *be = NULL;
    for (int i = 0; i < NALL; i++)
        if (!strcmp(k_all[i]->name, argv[0]))
            be = k_all[i];
    wl w = { "consume", strtoull(argv[2], NULL, 10), 100, MAX_BATCH, false };
    if (!be || !be->reopens || w.records == 0)
        return 2;
    bc_opts o = { .dir = argv[1], .env = &g_env, .reopen = true, .partitions = (unsigned)atoi(argv[3]),
                  .max_batch_bytes = max_batch_bytes(&w) };
    open_store os = { .be = be };
    if (be->open(&os.s, &o))
        die(be->name);
    double s = consume_from(&os, &w); /* from the first poll: the open is not timed */
    be->close(os.s);
    printf("%.9f %.9f\n", s, g_consume_cpu);
    return 0;
}

/*
 * consume-16p: one reader over 16 partitions (klog: one consumer assigned
 * all 16; raw: 16 files read 1 MiB from each in turn) against one
 * partition of the same records, in the same run (the -1p rows); back ends
 * with .partitioned only.  With --cold, also in a fresh process.
 */
static void w_consume16(void)
{
    enum { PARTS = 16 };
    wl w = { "consume-16p", g_quick ? 2000 : 1000000, 100, MAX_BATCH, false };
    open_store os[2 * NALL];
    const char *labels[2 * NALL];
    static char names[2 * NALL][24];
    int n = 0;
    for (int b = 0; b < g_nbe; b++) {
        if (!g_be[b]->partitioned)
            continue;
        for (int one = 0; one < 2; one++) {
            snprintf(names[n], sizeof names[n], "%s%s", g_be[b]->name, one ? "-1p" : "");
            labels[n] = names[n];
            os[n].be = g_be[b];
            unsigned seq = ++g_seq;
            store_dir(os[n].dir, sizeof os[n].dir, g_be[b], seq);
            bc_opts o = { .dir = os[n].dir, .env = &g_env, .seq = seq, .partitions = one ? 1 : PARTS,
                          .max_batch_bytes = max_batch_bytes(&w) };
            if (g_be[b]->open(&os[n].s, &o))
                die(g_be[b]->name);
            produce_into(&os[n], &w);
            if (g_be[b]->stored_bytes(os[n].s) < 0)
                die(g_be[b]->name);
            consume_from(&os[n], &w); /* untimed, as in consume */
            n++;
        }
    }
    if (n == 0)
        return;
    for (int r = 0; r < g_reps; r++)
        for (int i = 0; i < n; i++) {
            double s = consume_from(&os[i], &w);
            put("consume-16p", labels[i], "rec/s", (double)w.records / s);
            put("consume-16p", labels[i], "MB/s", (double)raw_bytes(&w) / s / 1e6);
            put("consume-16p", labels[i], "cpu rec/s", (double)w.records / g_consume_cpu);
        }
    if (g_cold)
        consume_cold("consume-16p", os, n, labels, &w, PARTS);
    for (int i = 0; i < n; i++)
        store_close(&os[i]);
    char title[256];
    snprintf(title, sizeof title,
             "consume-16p: %" PRIu64 " records (100-byte values) in %d partitions, one reader over all of them; "
             "-1p: the same records in one partition",
             w.records, PARTS);
    static const char *const m[] = { "rec/s", "MB/s", "cpu rec/s" };
    static const char *const h[] = { "records/s", "MB/s (keys+values)", "records per CPU second" };
    table("consume-16p", title, m, h, 3, false, false);
    if (g_cold)
        cold_tables("consume-16p", title);
    static const char *const sfx[] = { "", "-cold", "-dropped" };
    for (int i = 0; i < (g_cold ? 3 : 1); i++)
        for (int b = 0; b < g_nbe; b++) {
            if (!g_be[b]->partitioned)
                continue;
            char wn[24], one[32];
            snprintf(wn, sizeof wn, "consume-16p%s", sfx[i]);
            snprintf(one, sizeof one, "%s-1p", g_be[b]->name);
            printf("  %s%s: 16 partitions / 1 partition = %.2f, per CPU second %.2f (medians, same run)\n",
                   g_be[b]->name, sfx[i], med_of(wn, g_be[b]->name, "rec/s") / med_of(wn, one, "rec/s"),
                   med_of(wn, g_be[b]->name, "cpu rec/s") / med_of(wn, one, "cpu rec/s"));
        }
    fflush(stdout);
}

/* ---- latency ------------------------------------------------------------ */

/*
 * Why a sample was slow.  Per record, the sender notes what happened in
 * its produce call: its thread's page faults and preemptions
 * (getrusage(RUSAGE_THREAD) around the call) and how long the call took.
 * Per poll, the reader notes the same of its reader_wait call, whether it
 * slept in it (a voluntary context switch: the wakeup path), whether it
 * delivered a backlog (it came late), and, per record, whether the record
 * was sent before the call began (the reader was busy with earlier
 * records).  The getrusage calls come before a send's
 * timestamp and after a poll's deliveries: off the measured path.
 */
enum {
    LC_R_FAULT = 1,    /* the reader's poll took page faults */
    LC_R_PREEMPT = 2,  /* the reader was preempted during it */
    LC_R_SLEPT = 4,    /* it slept in it (waited for a wakeup) */
    LC_R_BUSY = 8,     /* sent before that poll began */
    LC_W_FAULT = 16,   /* the sender's produce call took page faults */
    LC_W_PREEMPT = 32, /* the sender was preempted during it */
    LC_R_BACKLOG = 64, /* that poll delivered LAT_BACKLOG records or more: the
                        * reader came late (a backlog crosses pages, so its
                        * faults are then a consequence, not the cause) */
};
#define LAT_BACKLOG 8

typedef struct latsample {
    uint64_t ns;   /* send to receipt */
    uint32_t wns;  /* send to the return of produce (capped); the record's index until the segment ends */
    uint8_t flags; /* LC_* */
} latsample;

typedef struct latrun {
    const bc_backend *be;
    bc_reader *r;
    latsample *s;
    size_t n, cap;
    uint64_t measure_from;   /* records sent before this time are warm-up */
    uint64_t got;
    uint64_t poll_start;     /* when the current reader_wait began */
    uint64_t rfaults;        /* the reader's page faults */
    _Atomic uint64_t total;  /* records sent; UINT64_MAX until the sender is done */
} latrun;

static void on_lat(void *arg, const void *key, size_t kl, const void *val, size_t vl)
{
    (void)key;
    (void)kl;
    latrun *L = arg;
    uint64_t now = bc_now_ns(), sent, rec;
    if (vl < sizeof sent + sizeof rec)
        return;
    memcpy(&sent, val, sizeof sent);
    memcpy(&rec, (const char *)val + sizeof sent, sizeof rec);
    if (sent >= L->measure_from && L->n < L->cap)
        L->s[L->n++] = (latsample){ now - sent, (uint32_t)rec, sent < L->poll_start ? LC_R_BUSY : 0 };
    L->got++;
}

static uint8_t rusage_flags(const struct rusage *a, const struct rusage *b, uint8_t fault, uint8_t preempt,
                            uint8_t slept)
{
    return (uint8_t)((b->ru_minflt + b->ru_majflt > a->ru_minflt + a->ru_majflt ? fault : 0) |
                     (b->ru_nivcsw > a->ru_nivcsw ? preempt : 0) | (b->ru_nvcsw > a->ru_nvcsw ? slept : 0));
}

static void *lat_reader(void *arg)
{
    latrun *L = arg;
    while (L->got < atomic_load(&L->total)) {
        struct rusage a, b;
        getrusage(RUSAGE_THREAD, &a);
        size_t n0 = L->n;
        L->poll_start = bc_now_ns();
        if (L->be->reader_wait(L->r, 100, on_lat, L) < 0)
            die(L->be->name);
        getrusage(RUSAGE_THREAD, &b);
        uint8_t f = rusage_flags(&a, &b, LC_R_FAULT, LC_R_PREEMPT, LC_R_SLEPT);
        L->rfaults += (uint64_t)(b.ru_minflt + b.ru_majflt - a.ru_minflt - a.ru_majflt);
        if (L->n - n0 >= LAT_BACKLOG)
            f = (uint8_t)(f | LC_R_BACKLOG);
        for (size_t i = n0; i < L->n; i++)
            L->s[i].flags |= f;
    }
    return NULL;
}

static int cmp_sample(const void *a, const void *b)
{
    uint64_t x = ((const latsample *)a)->ns, y = ((const latsample *)b)->ns;
    return x < y ? -1 : x > y;
}

static double pct_us(const latsample *v, size_t n, double p)
{
    if (n == 0)
        return NAN;
    size_t i = (size_t)(p * (double)n + 0.999999);
    i = i == 0 ? 0 : i - 1;
    return (double)v[i < n ? i : n - 1].ns / 1e3;
}

/* The causes a slow sample is put down to, first match wins: the send
 * side when produce took at least half of the latency, else the reader. */
enum { LK_W_FAULT, LK_W_PREEMPT, LK_W_OTHER, LK_R_PREEMPT, LK_R_BUSY, LK_R_BACKLOG, LK_R_FAULT, LK_R_WAKE, LK_OTHER,
       LK_N };
static const char *const k_cause[LK_N] = { "send: faults", "send: preempted", "send: slow",  "reader preempted",
                                           "reader busy",  "woke late",       "reader faults", "wakeup",
                                           "other" };

static int cause_of(const latsample *s)
{
    if ((uint64_t)s->wns * 2 >= s->ns)
        return s->flags & LC_W_FAULT ? LK_W_FAULT : s->flags & LC_W_PREEMPT ? LK_W_PREEMPT : LK_W_OTHER;
    return s->flags & LC_R_PREEMPT   ? LK_R_PREEMPT
           : s->flags & LC_R_BUSY    ? LK_R_BUSY
           : s->flags & LC_R_BACKLOG ? LK_R_BACKLOG
           : s->flags & LC_R_FAULT   ? LK_R_FAULT
           : s->flags & LC_R_SLEPT   ? LK_R_WAKE
                                     : LK_OTHER;
}

/* Samples of one back end over a repetition (all its segments pooled), and
 * the causes of its slow samples over every repetition. */
typedef struct latpool {
    latsample *s;
    size_t n, cap;
    uint64_t late, sent, rfaults, wfaults;
    uint64_t slow, cause[LK_N];  /* samples above each repetition's p99 */
    uint64_t all, rfault_marked; /* every sample; those in a poll that faulted */
} latpool;

/* One segment: a fresh store, warm seconds of warm-up, secs measured, rate
 * records a second. */
static void lat_segment(const bc_backend *be, unsigned rate, double warm, double secs, latpool *P)
{
    wl w = { "latency", 0, 100, 1, false };
    open_store os;
    store_open(&os, be, &w, true, BC_CODEC_NONE);
    latrun L = { .be = be, .s = P->s + P->n, .cap = P->cap - P->n };
    uint64_t count = (uint64_t)((warm + secs) * rate), interval = 1000000000u / rate;
    uint32_t *wns = bc_alloc_prefaulted(count * sizeof *wns);
    uint8_t *wfl = bc_alloc_prefaulted(count);
    atomic_store(&L.total, UINT64_MAX);
    if (be->reader_open(os.s, &L.r))
        die(be->name);
    settle();
    data_prefault();
    static char val[128];
    memcpy(val, g_vals, sizeof val);
    bc_rec rec = { g_keys, KEY_LEN, val, 100 };
    uint64_t t0 = bc_now_ns() + 20000000u;   /* start after the reader is up */
    L.measure_from = t0 + (uint64_t)(warm * 1e9);
    pthread_t th;
    if (pthread_create(&th, NULL, lat_reader, &L) != 0)
        die("pthread_create");
    for (uint64_t i = 0; i < count; i++) {
        uint64_t due = t0 + i * interval;
        struct timespec ts = { (time_t)(due / 1000000000u), (long)(due % 1000000000u) };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        struct rusage a, b;
        getrusage(RUSAGE_THREAD, &a);
        uint64_t now = bc_now_ns();
        if (now > due + interval)
            P->late++;
        memcpy(val, &now, sizeof now);
        memcpy(val + sizeof now, &i, sizeof i);
        rec.key = g_keys + (i % NKEYS) * KEY_LEN;
        if (be->produce(os.s, &rec, 1))
            die(be->name);
        uint64_t d = bc_now_ns() - now;
        getrusage(RUSAGE_THREAD, &b);
        wns[i] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
        wfl[i] = rusage_flags(&a, &b, LC_W_FAULT, LC_W_PREEMPT, 0);
        P->wfaults += (uint64_t)(b.ru_minflt + b.ru_majflt - a.ru_minflt - a.ru_majflt);
    }
    P->sent += count;
    if (be->finish(os.s))
        die(be->name);
    atomic_store(&L.total, count);
    pthread_join(th, NULL);
    be->reader_close(L.r);
    store_close(&os);
    for (size_t i = 0; i < L.n; i++) {
        uint32_t r = L.s[i].wns;
        if (r < count) {
            L.s[i].wns = wns[r];
            L.s[i].flags |= wfl[r];
        }
    }
    free(wns);
    free(wfl);
    P->rfaults += L.rfaults;
    P->n += L.n;
}

/* Rates of the latency workload (--lat-rates), records a second. */
static unsigned g_rates[8] = { 10000, 100000 };
static int g_nrates = 2;

static void lat_name(char *buf, size_t cap, unsigned rate)
{
    if (rate == 10000)
        snprintf(buf, cap, "latency"); /* the name the charts and the verdict use */
    else if (rate % 1000 == 0)
        snprintf(buf, cap, "latency-%uk", rate / 1000);
    else
        snprintf(buf, cap, "latency-%u", rate);
}

/*
 * A repetition is SEGS segments per back end, the back ends taking turns
 * segment by segment, so that a burst of load from elsewhere on the machine
 * (it is shared) lands on all of them rather than on one back end's whole
 * repetition.  Percentiles pool the segments of a repetition.
 */
static void w_latency_at(unsigned rate)
{
    enum { SEGS = 5 };
    double warm = g_quick ? 0.02 : 0.1, secs = g_quick ? 0.05 : 0.4;
    char name[24];
    lat_name(name, sizeof name, rate);
    char load[64] = "?";
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (!fgets(load, sizeof load, lf))
            snprintf(load, sizeof load, "?");
        load[strcspn(load, "\n")] = 0;
        fclose(lf);
    }
    /* the sender sleeps to each record's due time: the default 50 us of
     * timer slack would turn 100,000/s into bursts */
    int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    latpool P[NALL];
    memset(P, 0, sizeof P);
    for (int r = 0; r < g_reps; r++) {
        for (int b = 0; b < g_nbe; b++) {
            P[b].n = P[b].late = P[b].sent = P[b].rfaults = P[b].wfaults = 0;
            P[b].cap = (size_t)(SEGS * (warm + secs) * rate) + 16;
            P[b].s = bc_alloc_prefaulted(P[b].cap * sizeof *P[b].s);
        }
        for (int seg = 0; seg < SEGS; seg++)
            for (int b = 0; b < g_nbe; b++)
                lat_segment(g_be[b], rate, warm, secs, &P[b]);
        for (int b = 0; b < g_nbe; b++) {
            latpool *p = &P[b];
            qsort(p->s, p->n, sizeof *p->s, cmp_sample);
            const char *be = g_be[b]->name;
            double p99 = pct_us(p->s, p->n, 0.99);
            put(name, be, "p50", pct_us(p->s, p->n, 0.50));
            put(name, be, "p99", p99);
            put(name, be, "p99.9", pct_us(p->s, p->n, 0.999));
            put(name, be, "max", p->n ? (double)p->s[p->n - 1].ns / 1e3 : NAN);
            put(name, be, "late%", 100.0 * (double)p->late / (double)p->sent);
            put(name, be, "rfault/1k", 1000.0 * (double)p->rfaults / (double)p->sent);
            put(name, be, "wfault/1k", 1000.0 * (double)p->wfaults / (double)p->sent);
            for (size_t i = 0; i < p->n; i++) {
                p->all++;
                p->rfault_marked += (p->s[i].flags & LC_R_FAULT) != 0;
                if ((double)p->s[i].ns / 1e3 > p99) {
                    p->slow++;
                    p->cause[cause_of(&p->s[i])]++;
                }
            }
            free(p->s);
        }
    }
    prctl(PR_SET_TIMERSLACK, (unsigned long)(slack > 0 ? slack : 50000), 0, 0, 0);
    char title[400];
    snprintf(title, sizeof title,
             "%s: one thread sends 100-byte records at %u/s, a reader thread tails the store; microseconds from "
             "send to receipt; per run %d segments of %.2f s measured (after %.2f s warm-up) per back end, taking "
             "turns; load average at the start: %s",
             name, rate, SEGS, secs, warm, load);
    static const char *const m[] = { "p99", "p50", "p99.9", "max", "late%", "rfault/1k" };
    static const char *const h[] = { "p99 us", "p50 us", "p99.9 us", "max us", "sends >1 interval late, %",
                                     "reader faults/1k rec" };
    table(name, title, m, h, 6, true, false);
    printf("  causes of the samples above p99 (first match: send side when produce took >= half the latency,\n"
           "  with page faults / preempted / neither; else the reader's poll: preempted, the record sent while\n"
           "  the reader was busy, woke late (its poll delivered %d records or more), took page faults, slept\n"
           "  and woke (wakeup), other); %% of those samples, all runs:\n", LAT_BACKLOG);
    printf("  %-14s %7s", "backend", "samples");
    for (int k = 0; k < LK_N; k++)
        printf(" %16s", k_cause[k]);
    printf(" %16s\n", "all: rdr faulted");
    for (int b = 0; b < g_nbe; b++) {
        latpool *p = &P[b];
        printf("  %-14s %7" PRIu64, g_be[b]->name, p->slow);
        for (int k = 0; k < LK_N; k++)
            printf(" %15.1f%%", p->slow ? 100.0 * (double)p->cause[k] / (double)p->slow : 0.0);
        printf(" %15.1f%%\n", p->all ? 100.0 * (double)p->rfault_marked / (double)p->all : 0.0);
    }
    printf("  (all: rdr faulted: the share of every sample delivered by a poll that took a page fault)\n");
    fflush(stdout);
}

static void w_latency(void)
{
    for (int i = 0; i < g_nrates; i++)
        w_latency_at(g_rates[i]);
}

/* ---- telemetry, compressed ---------------------------------------------- */

static void w_telemetry(void)
{
    telemetry_init(g_quick ? 2000 : 200000);
    wl w = { "telemetry", g_tel_n, 0, MAX_BATCH, false };
    uint64_t raw = raw_bytes(&w);
    static const char *const cname[] = { "", "+lz4", "+zstd" };
    for (int r = 0; r < g_reps; r++)
        for (int b = 0; b < g_nbe; b++)
            for (int c = 0; c < (g_be[b]->compresses ? 3 : 1); c++) {
                char label[32];
                snprintf(label, sizeof label, "%s%s", g_be[b]->name, cname[c]);
                open_store os;
                store_open(&os, g_be[b], &w, false, (bc_codec)c);
                double sp = produce_into(&os, &w);
                /* settled: flushed / checkpointed, i.e. compressed on disk */
                uint64_t t0 = bc_now_ns();
                int64_t st = g_be[b]->stored_bytes(os.s);
                double ss = sp + (double)(bc_now_ns() - t0) / 1e9;
                if (st < 0)
                    die(g_be[b]->name);
                consume_from(&os, &w); /* untimed; settled first, as in the consume workload */
                double sc = consume_from(&os, &w);
                store_close(&os);
                put("telemetry", label, "produce/s", (double)w.records / sp);
                put("telemetry", label, "settled/s", (double)w.records / ss);
                put("telemetry", label, "consume/s", (double)w.records / sc);
                put("telemetry", label, "stored/raw", (double)st / (double)raw);
            }
    char title[256];
    snprintf(title, sizeof title,
             "telemetry: %" PRIu64 " JSON values (%.0f bytes on average, 16-byte keys), batches of %d, produced "
             "then read back; +lz4/+zstd: the store compresses, the others store raw",
             w.records, (double)raw / (double)w.records - KEY_LEN, MAX_BATCH);
    static const char *const m[] = { "produce/s", "settled/s", "consume/s", "stored/raw" };
    static const char *const h[] = { "produce records/s", "... incl. flush records/s", "consume records/s",
                                     "stored bytes / raw" };
    table("telemetry", title, m, h, 4, false, false);
    printf("  (incl. flush: until the store has everything in its final, compressed form on disk - RocksDB's\n"
           "   memtable flushed to SSTs, SQLite's WAL checkpointed; the others are there when produce returns)\n");
}

/* ---- scale: many partitions (issue 21) ---------------------------------- */

/*
 * The same 100-byte records spread evenly (record i to partition i % P)
 * over P partitions of one topic, P = 1, 16, 256, 4096: produce (acks=1, as
 * produce-100) and read everything back (one consumer assigned every
 * partition, a fresh one on the log just written).  klog through its public
 * API as be_klog.c configures it; raw as be_raw.c frames records, one file
 * per partition, each with a 16 KiB buffer (Kafka's batch.size) written by
 * one pwrite when full and at the end.  Kept apart from the back end table:
 * the other back ends have no partitions.
 */
#define SCALE_RAW_BUF (16u * 1024)

static int scale_conf(klog_conf *c, const char *key, const char *val)
{
    char err[256] = "";
    int rc = klog_conf_set(c, key, val, err, sizeof err);
    if (rc)
        fprintf(stderr, "bench_compare: scale: %s: %s %s\n", key, klog_strerror(rc), err);
    return rc;
}

static void scale_rec(uint64_t i, bc_rec *r)
{
    r->key = g_keys + (i % NKEYS) * KEY_LEN;
    r->key_len = KEY_LEN;
    r->val = g_vals + (i * 61) % VAL_SPREAD;
    r->val_len = 100;
}

/* klog: seconds to produce n records over P partitions, and to read them. */
static void scale_klog(const char *dir, unsigned P, uint64_t n, double *sp, double *sc)
{
    klog *k;
    klog_producer *pr;
    klog_consumer *c;
    klog_conf *pc, *cc;
    char err[256] = "";
    if (klog_open(&k, dir, NULL, err, sizeof err) || klog_topic_create(k, "t", (int)P, NULL, err, sizeof err)) {
        fprintf(stderr, "bench_compare: scale: klog: %s\n", err);
        die("klog");
    }
    if (klog_conf_new(&pc) || scale_conf(pc, "acks", "1") || scale_conf(pc, "linger.ms", "5") ||
        scale_conf(pc, "batch.size", "1000000") || klog_producer_new(k, pc, &pr, err, sizeof err))
        die("klog producer");
    klog_conf_free(pc);
    warm_page_cache(n * (KEY_LEN + 100) * 11 / 10);
    data_prefault();
    klog_record rec = KLOG_RECORD_INIT;
    uint64_t t0 = bc_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        bc_rec r;
        scale_rec(i, &r);
        rec.partition = (int32_t)(i % P);
        rec.key = r.key;
        rec.key_len = r.key_len;
        rec.value = r.val;
        rec.value_len = r.val_len;
        if (klog_producer_send(pr, "t", &rec))
            die("klog_producer_send");
    }
    if (klog_producer_flush(pr, -1))
        die("klog_producer_flush");
    *sp = (double)(bc_now_ns() - t0) / 1e9;
    if (klog_producer_close(pr))
        die("klog_producer_close");
    if (klog_conf_new(&cc) || scale_conf(cc, "auto.offset.reset", "earliest") ||
        klog_consumer_new(k, cc, &c, err, sizeof err))
        die("klog consumer");
    klog_conf_free(cc);
    acc a = { 0, 0, 0 };
    t0 = bc_now_ns();
    for (unsigned p = 0; p < P; p++)
        if (klog_consumer_assign(c, "t", (int32_t)p, KLOG_OFFSET_BEGINNING))
            die("klog_consumer_assign");
    while (a.n < n) {
        const klog_message *const *m;
        int got = klog_consumer_poll(c, 1000, &m);
        if (got <= 0)
            die("klog_consumer_poll");
        for (int i = 0; i < got; i++)
            on_msg(&a, m[i]->key, m[i]->key_len, m[i]->value, m[i]->value_len);
    }
    *sc = (double)(bc_now_ns() - t0) / 1e9;
    if (a.n != n || a.bytes != n * (KEY_LEN + 100))
        die("klog scale read-back");
    bu_sink += a.x;
    klog_consumer_close(c);
    klog_close(k);
}

/* raw: one file per partition, a 16 KiB buffer each. */
static void scale_raw(const char *dir, unsigned P, uint64_t n, double *sp, double *sc)
{
    int *fd = calloc(P, sizeof *fd);
    uint64_t *end = calloc(P, sizeof *end);
    size_t *used = calloc(P, sizeof *used);
    uint8_t *buf = bc_alloc_prefaulted((size_t)P * SCALE_RAW_BUF);
    if (!fd || !end || !used)
        die("scale: out of memory");
    for (unsigned p = 0; p < P; p++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/%u.log", dir, p);
        if ((fd[p] = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
            die("scale: raw open");
    }
    warm_page_cache(n * (KEY_LEN + 100) * 11 / 10);
    data_prefault();
    uint64_t t0 = bc_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        bc_rec r;
        scale_rec(i, &r);
        unsigned p = (unsigned)(i % P);
        uint32_t kl = (uint32_t)r.key_len, vl = (uint32_t)r.val_len;
        if (used[p] + 8 + kl + vl > SCALE_RAW_BUF) {
            if (pwrite(fd[p], buf + (size_t)p * SCALE_RAW_BUF, used[p], (off_t)end[p]) != (ssize_t)used[p])
                die("scale: raw pwrite");
            end[p] += used[p];
            used[p] = 0;
        }
        uint8_t *o = buf + (size_t)p * SCALE_RAW_BUF + used[p];
        memcpy(o, &kl, 4);
        memcpy(o + 4, &vl, 4);
        memcpy(o + 8, r.key, kl);
        memcpy(o + 8 + kl, r.val, vl);
        used[p] += 8 + kl + vl;
    }
    for (unsigned p = 0; p < P; p++)
        if (used[p]) {
            if (pwrite(fd[p], buf + (size_t)p * SCALE_RAW_BUF, used[p], (off_t)end[p]) != (ssize_t)used[p])
                die("scale: raw pwrite");
            end[p] += used[p];
        }
    *sp = (double)(bc_now_ns() - t0) / 1e9;
    acc a = { 0, 0, 0 };
    uint8_t *rb = bc_alloc_prefaulted(1u << 20);
    t0 = bc_now_ns();
    for (unsigned p = 0; p < P; p++)
        for (uint64_t pos = 0; pos < end[p];) {
            size_t want = end[p] - pos < (1u << 20) ? (size_t)(end[p] - pos) : (1u << 20);
            ssize_t got = pread(fd[p], rb, want, (off_t)pos);
            if (got <= 0)
                die("scale: raw pread");
            size_t q = 0;
            while ((size_t)got - q >= 8) {
                uint32_t kl, vl;
                memcpy(&kl, rb + q, 4);
                memcpy(&vl, rb + q + 4, 4);
                if ((size_t)got - q - 8 < (size_t)kl + vl)
                    break;
                on_msg(&a, rb + q + 8, kl, rb + q + 8 + kl, vl);
                q += 8 + (size_t)kl + vl;
            }
            if (q == 0)
                die("scale: raw frame");
            pos += q;
        }
    *sc = (double)(bc_now_ns() - t0) / 1e9;
    if (a.n != n || a.bytes != n * (KEY_LEN + 100))
        die("raw scale read-back");
    bu_sink += a.x;
    for (unsigned p = 0; p < P; p++)
        close(fd[p]);
    free(rb);
    free(buf);
    free(used);
    free(end);
    free(fd);
}

static void w_scale(void)
{
    static const unsigned parts[] = { 1, 16, 256, 4096 };
    const int np = g_quick ? 3 : 4;
    const uint64_t n = g_quick ? 4096 : 1000000;
    static const char *const names[] = { "scale-1", "scale-16", "scale-256", "scale-4096" };
    for (int r = 0; r < g_reps; r++)
        for (int i = 0; i < np; i++)
            for (int b = 0; b < g_nbe; b++) {
                bool is_klog = g_be[b] == &bc_klog;
                if (!is_klog && g_be[b] != &bc_raw)
                    continue;
                char dir[4200];
                store_dir(dir, sizeof dir, g_be[b], ++g_seq);
                double sp, sc;
                if (is_klog)
                    scale_klog(dir, parts[i], n, &sp, &sc);
                else
                    scale_raw(dir, parts[i], n, &sp, &sc);
                if (is_klog && g_cold) {
                    /* a fresh process reads the closed store, as after a
                     * restart (the target's ratio is klog's own) */
                    wl w = { names[i], n, 100, MAX_BATCH, false };
                    double cpu, s = cold_read(&bc_klog, dir, &w, parts[i], false, &cpu);
                    put(names[i], "klog-cold", "consume/s", (double)n / s);
                    put(names[i], "klog-cold", "cpu consume/s", (double)n / cpu);
                }
                bu_rm_rf("bench_compare", dir);
                put(names[i], g_be[b]->name, "produce/s", (double)n / sp);
                put(names[i], g_be[b]->name, "consume/s", (double)n / sc);
            }
    for (int i = 0; i < np; i++) {
        char title[256];
        snprintf(title, sizeof title,
                 "%s: %" PRIu64 " records (16-byte keys, 100-byte values) over %u partition%s, record i to "
                 "partition i %% %u; produced (acks=1), then read by one consumer of every partition",
                 names[i], n, parts[i], parts[i] > 1 ? "s" : "", parts[i]);
        static const char *const m[] = { "produce/s", "consume/s" };
        static const char *const h[] = { "produce records/s", "consume records/s" };
        table(names[i], title, m, h, 2, false, false);
    }
    printf("  scale, klog's aggregate at %u partitions / at 16:", parts[np - 1]);
    for (int m = 0; m < 2; m++) {
        const char *met = m ? "consume/s" : "produce/s";
        printf(" %s %.2f", met, med_of(names[np - 1], "klog", met) / med_of(names[1], "klog", met));
    }
    printf("\n");
    if (g_cold)
        printf("  scale, a fresh process reading the closed store (klog-cold), at %u / at 16: consume/s %.2f, "
               "per CPU second %.2f\n",
               parts[np - 1], med_of(names[np - 1], "klog-cold", "consume/s") / med_of(names[1], "klog-cold", "consume/s"),
               med_of(names[np - 1], "klog-cold", "cpu consume/s") / med_of(names[1], "klog-cold", "cpu consume/s"));
}

/* ---- verdict, files for the charts -------------------------------------- */

static void verdict(void)
{
    static const char *const wls[] = { "produce-100", "produce-1k", "durable-1", "durable-100", "durable-1000",
                                       "consume", "latency", "telemetry", "telemetry" };
    static const char *const mets[] = { "rec/s", "rec/s", "rec/s", "rec/s", "rec/s", "rec/s", "p99", "produce/s",
                                        "consume/s" };
    printf("\nverdict (medians; klog against every alternative but raw; rows marked * are not durable in klog's sense "
           "and are left out):\n");
    for (size_t i = 0; i < sizeof wls / sizeof wls[0]; i++) {
        bool lower = !strcmp(mets[i], "p99"), any = false;
        char behind[512] = "";
        for (int c = 0; c < g_ncells; c++) {
            cell *ce = &g_cells[c];
            if (strcmp(ce->wl, wls[i]) || strcmp(ce->metric, mets[i]) || !strncmp(ce->be, "klog", 4) ||
                !strcmp(ce->be, "raw") || (!strncmp(wls[i], "durable", 7) && note_of(ce->be)))
                continue;
            char peer[32];
            klog_peer(peer, sizeof peer, ce->be);
            double k = med_of(wls[i], peer, mets[i]), o = med_of(wls[i], ce->be, mets[i]);
            if (isnan(k))
                continue;
            any = true;
            double adv = lower ? o / k : k / o;   /* > 1: klog ahead */
            if (adv < 1) {
                size_t l = strlen(behind);
                snprintf(behind + l, sizeof behind - l, "%s%s (klog at %.2fx)", l ? ", " : "", ce->be, adv);
            }
        }
        double kr = med_of(wls[i], "klog", mets[i]), rr = med_of(wls[i], "raw", mets[i]);
        printf("  %-13s %-10s %s%s", wls[i], mets[i], !any ? "no alternative measured" : *behind ? "klog behind " : "klog ahead of all",
               behind);
        if (!isnan(kr) && !isnan(rr))
            printf("; klog/raw %.2f", lower ? rr / kr : kr / rr);
        printf("\n");
    }
}

static FILE *out_file(const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", g_out, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_compare: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return f;
}

/*
 * A matrix for gnuplot's clustered histograms: one row per (workload,
 * metric) labelled heads[r], one column per back end (variant) in cols that
 * has any value, "?" where a cell is missing; values divided by div.  No
 * file when the workload did not run.
 */
static void dat(const char *file, const char *const *wls, const char *const *mets, const char *const *heads, int nrows,
                const char *const *cols, int ncols, double div)
{
    bool used[16] = { false }, any = false;
    for (int c = 0; c < ncols && c < 16; c++)
        for (int r = 0; r < nrows; r++)
            any |= used[c] |= !isnan(med_of(wls[r], cols[c], mets[r]));
    if (!any) {   /* workload not run: no chart */
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", g_out, file);
        unlink(path);
        return;
    }
    FILE *f = out_file(file);
    fprintf(f, "workload");
    for (int c = 0; c < ncols && c < 16; c++)
        if (used[c])
            fprintf(f, "\t%s", cols[c]);
    fprintf(f, "\n");
    for (int r = 0; r < nrows; r++) {
        fprintf(f, "%s", heads[r]);
        for (int c = 0; c < ncols && c < 16; c++) {
            if (!used[c])
                continue;
            double v = med_of(wls[r], cols[c], mets[r]);
            if (isnan(v))
                fprintf(f, "\t?");
            else
                fprintf(f, "\t%.6g", v / div);
        }
        fprintf(f, "\n");
    }
    fclose(f);
}

static void write_out(void)
{
    if (!g_out)
        return;
    FILE *f = out_file("results.tsv");
    fprintf(f, "workload\tbackend\tmetric\tmedian\tmin\tmax\truns\n");
    for (int i = 0; i < g_ncells; i++) {
        double m, lo, hi;
        stat3(g_cells[i].wl, g_cells[i].be, g_cells[i].metric, &m, &lo, &hi);
        fprintf(f, "%s\t%s\t%s\t%.6g\t%.6g\t%.6g\t%d\n", g_cells[i].wl, g_cells[i].be, g_cells[i].metric, m, lo, hi,
                g_cells[i].n);
    }
    fclose(f);
    static const char *const be[] = { "klog", "raw", "sqlite", "lmdb", "rocksdb", "redis", "nats" };
    {
        static const char *const w[] = { "produce-100", "produce-1k", "consume", "telemetry", "telemetry" };
        static const char *const m[] = { "rec/s", "rec/s", "rec/s", "produce/s", "consume/s" };
        static const char *const h[] = { "produce 100 B", "produce 1 KiB", "consume 100 B", "produce JSON",
                                         "consume JSON" };
        dat("throughput.dat", w, m, h, 5, be, 7, 1e6);
    }
    {
        static const char *const w[] = { "durable-1", "durable-100", "durable-1000" };
        static const char *const m[] = { "rec/s", "rec/s", "rec/s" };
        static const char *const h[] = { "batch 1", "batch 100", "batch 1000" };
        dat("durable.dat", w, m, h, 3, be, 7, 1);
    }
    {
        static const char *const w[] = { "latency", "latency", "latency" };
        static const char *const m[] = { "p50", "p99", "p99.9" };
        static const char *const h[] = { "p50", "p99", "p99.9" };
        dat("latency.dat", w, m, h, 3, be, 7, 1);
    }
    {
        static const char *const w[] = { "telemetry" };
        static const char *const m[] = { "stored/raw" };
        static const char *const h[] = { "stored / raw bytes" };
        static const char *const cols[] = { "klog", "klog+lz4", "klog+zstd", "raw", "sqlite", "lmdb", "rocksdb",
                                            "rocksdb+lz4", "rocksdb+zstd", "redis", "nats" };
        dat("compression.dat", w, m, h, 1, cols, 11, 1);
    }
}

/* ---- main --------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: bench_compare [--reps N] [--quick] [--dir DIR] [--out DIR] [--redis HOST:PORT]\n"
                    "                     [--nats URL] [--backends a,b,...] [--workloads a,b,...]\n"
                    "                     [--cold] [--lat-rates R1,R2,... (records/s; default 10000,100000)]\n"
                    "workloads: produce-100 produce-1k durable consume consume-16p latency telemetry scale\n"
                    "--cold: the consume workloads also read by a fresh process, page cache warm and dropped\n");
    return 2;
}

int main(int argc, char **argv)
{
    static char redis_host[256];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--child-consume") && i + 4 < argc) {
            data_init();
            return child_consume(argv + i + 1);
        } else if (!strcmp(a, "--cold"))
            g_cold = true;
        else if (!strcmp(a, "--quick"))
            g_quick = true;
        else if (!strcmp(a, "--reps") && v)
            g_reps = atoi(argv[++i]);
        else if (!strcmp(a, "--dir") && v)
            g_base = argv[++i];
        else if (!strcmp(a, "--out") && v)
            g_out = argv[++i];
        else if (!strcmp(a, "--nats") && v)
            g_env.nats_url = argv[++i];
        else if (!strcmp(a, "--backends") && v)
            g_only_be = argv[++i];
        else if (!strcmp(a, "--workloads") && v)
            g_only_wl = argv[++i];
        else if (!strcmp(a, "--lat-rates") && v) {
            g_nrates = 0;
            for (char *t = argv[++i], *e; *t && g_nrates < 8; t = *e ? e + 1 : e) {
                unsigned long r = strtoul(t, &e, 10);
                if (e == t || (*e && *e != ',') || r < 10 || r > 1000000)
                    return usage();
                g_rates[g_nrates++] = (unsigned)r;
            }
            if (g_nrates == 0)
                return usage();
        }
        else if (!strcmp(a, "--redis") && v) {
            const char *colon = strrchr(argv[++i], ':');
            if (!colon || colon == argv[i] || (size_t)(colon - argv[i]) >= sizeof redis_host)
                return usage();
            memcpy(redis_host, argv[i], (size_t)(colon - argv[i]));
            g_env.redis_host = redis_host;
            g_env.redis_port = atoi(colon + 1);
        } else
            return usage();
    }
    if (g_reps < 1 || g_reps > MAX_REPS)
        return usage();
    if (g_quick)
        g_reps = 1;
    for (int i = 0; i < NALL; i++) {
        if (!in_list(g_only_be, k_all[i]->name))
            continue;
        const char *why = k_all[i]->check(&g_env);
        if (why) {
            printf("bench_compare: skipping %s: %s\n", k_all[i]->name, why);
            continue;
        }
        g_be[g_nbe++] = k_all[i];
    }
    if (snprintf(g_dir, sizeof g_dir, "%s/bench_compare.%d", g_base, (int)getpid()) >= (int)sizeof g_dir)
        return usage();
    if (mkdir(g_dir, 0755) != 0) {
        fprintf(stderr, "bench_compare: mkdir %s: %s\n", g_dir, strerror(errno));
        return 1;
    }
    data_init();
    const char *ver;
    klog_version(&ver);
    printf("bench_compare: klog %s; back ends:", ver);
    for (int i = 0; i < g_nbe; i++)
        printf(" %s", g_be[i]->name);
    printf("; data in %s; median of %d run(s)%s\n", g_base, g_reps,
           g_quick ? " (--quick: tiny sizes, checks only that everything runs)" : "");
    fflush(stdout);
    if (in_list(g_only_wl, "produce-100"))
        w_produce("produce-100", 1000000, 100);
    if (in_list(g_only_wl, "produce-1k"))
        w_produce("produce-1k", 250000, 1024);
    if (in_list(g_only_wl, "durable"))
        w_durable();
    if (in_list(g_only_wl, "consume"))
        w_consume();
    if (in_list(g_only_wl, "consume-16p"))
        w_consume16();
    if (in_list(g_only_wl, "latency"))
        w_latency();
    if (in_list(g_only_wl, "telemetry"))
        w_telemetry();
    if (in_list(g_only_wl, "scale"))
        w_scale();
    verdict();
    write_out();
    bu_rm_rf("bench_compare", g_dir);
    return 0;
}
