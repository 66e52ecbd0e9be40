/*
 * bench/bench_retention.c - what keeping the disk bounded costs: the log
 * cleaner, appends while it runs, and the disk budget, each beside a
 * baseline measured in the same run.
 *
 * Sections:
 *   1. compaction  a 1 GiB log (--quick: 16 MiB) of 16-byte keys drawn
 *                  uniformly from a key space of 10% of the record count and
 *                  100-byte values, 1000-record batches, segment.bytes 64 MiB
 *                  (quick: 1 MiB), rolled so that every record is in a
 *                  sealed segment; then one ks_log_clean pass
 *                  (min_dirty_ratio 0, a key map sized for the distinct
 *                  keys).  Baseline: the same segment files read through a
 *                  fresh mapping and written with pwrite, 1 MiB at a time,
 *                  to one new file each (a plain copy, no sync).  The
 *                  cleaner reads the dirty log twice (key map, then
 *                  rewrite), writes what it keeps and fdatasyncs every group.
 *   2. appends     one thread appends 1 GiB (quick: 4 MiB) of 1000-record
 *                  batches of 100-byte values (64 MiB of them prebuilt and
 *                  appended over and over; durability NONE: synced on roll
 *                  only) to a log holding 512 MiB (quick:
 *                  8 MiB) of dirty sealed segments, alone, then with a
 *                  second thread running ks_log_clean passes in a loop on
 *                  the same log (stopped through the throttle callback when
 *                  the appends end; 1 ms pause after a pass that found
 *                  nothing).  Each run starts from a freshly built log.
 *   3. budget      through the public API: klog_open with disk.budget.bytes
 *                  256 MiB (quick: 8 MiB), policy delete-oldest; a topic of
 *                  4 partitions, segment.bytes 16 MiB (quick: 256 KiB); one
 *                  producer (defaults: acks=1, linger.ms=5) sends 4x the
 *                  budget in 100-byte values (16-byte keys, hash
 *                  partitioner), send to flush.  A sampler thread reads
 *                  klog_disk_usage every 10 ms and sums the data
 *                  directory's files (nftw: apparent size and allocated
 *                  blocks) every 50 ms and once at the end.  Baseline: the
 *                  identical run without a budget.
 *
 * Conventions of bench_store.c: every figure is the median of --reps runs
 * (default 3) with min..max, the baseline and klog alternating within each
 * rep; buffers are prefaulted before every timed run; before every timed
 * write run the page cache is warmed with a scratch file (bench_util.h) and
 * earlier writeback is flushed (syncfs), so that no run queues behind the
 * one before.  Sections 1 and 2 use the storage layer (klog_core); section 3
 * only include/klog/.  Everything is written under DIR, which is created
 * and removed.
 *
 *   bench_retention [--dir DIR] [--reps N] [--quick]
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>

#include "common/common.h"
#include "format/format.h"
#include "io/io.h"
#include "storage/storage.h"

#include "bench_util.h"

#define KEY_LEN 16
#define VAL_LEN 100
#define PER_BATCH 1000
#define VAL_SPREAD 4096
#define COPY_CHUNK (1u << 20)
#define MAX_REPS 31
#define MiB (1024.0 * 1024.0)

static const char *g_dir = "/tmp/klog-bench-retention";
static int g_reps = 3;
static bool g_quick;

static char *g_keys;     /* g_nkeys * KEY_LEN, "key-%012" */
static uint64_t g_nkeys;
static char g_vals[VAL_SPREAD + VAL_LEN];

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_retention: %s: %s (%s)\n", what, klog_strerror(rc), klog_err_name(rc));
    exit(1);
}

static double secs_since(uint64_t t0)
{
    return (double)(klog__now_ns() - t0) / 1e9;
}

static void warm_page_cache(uint64_t bytes)
{
    int rc = bu_warm_page_cache(g_dir, bytes);
    if (rc < 0)
        die("warm page cache", rc);
}

/* Write back what earlier runs left dirty, so that a timed run does not
 * queue behind it.  Untimed. */
static void settle(void)
{
    int fd = open(g_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

static void path_in(char *out, size_t cap, const char *name)
{
    if (snprintf(out, cap, "%s/%s", g_dir, name) >= (int)cap)
        die("path too long", -ENAMETOOLONG);
}

/* ---- figures -------------------------------------------------------------- */

typedef struct mstat { double med, lo, hi; } mstat;

static mstat stat_of(const double *v, int n)
{
    double t[MAX_REPS];
    memcpy(t, v, (size_t)n * sizeof *t);
    mstat s;
    s.med = bu_median(t, n); /* sorts t */
    s.lo = t[0];
    s.hi = t[n - 1];
    return s;
}

/* "median (min..max)" into b (64 bytes); with one rep just the figure. */
static const char *fs(char *b, mstat s, int prec)
{
    if (g_reps == 1)
        snprintf(b, 64, "%.*f", prec, s.med);
    else
        snprintf(b, 64, "%.*f (%.*f..%.*f)", prec, s.med, prec, s.lo, prec, s.hi);
    return b;
}

/* ---- workload ----------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void keys_init(uint64_t n)
{
    free(g_keys);
    g_nkeys = n;
    g_keys = malloc(n * KEY_LEN + 1);
    if (!g_keys)
        die("malloc keys", -ENOMEM);
    for (uint64_t i = 0; i < n; i++)
        snprintf(g_keys + i * KEY_LEN, KEY_LEN + 1, "key-%012u", (unsigned)(i % 1000000000u));
    bu_prefault(g_keys, n * KEY_LEN);
}

static void vals_init(void)
{
    for (size_t i = 0; i < sizeof g_vals; i++)
        g_vals[i] = (char)('a' + (i * 7 + i / 26) % 26);
}

/* A batch encoder: keys uniform over g_keys (rng), values from the pool. */
typedef struct enc {
    uint8_t *buf;
    size_t cap;
    uint64_t rng, seq;
    uint8_t *seen;       /* bitmap of keys used, may be NULL */
    uint64_t distinct;
} enc;

static void enc_init(enc *e, uint64_t seed, bool track)
{
    memset(e, 0, sizeof *e);
    e->cap = (size_t)PER_BATCH * (KEY_LEN + VAL_LEN + 64) + KF_HDR_SIZE;
    e->buf = malloc(e->cap);
    e->rng = seed;
    if (track)
        e->seen = calloc(g_nkeys / 8 + 1, 1);
    if (!e->buf || (track && !e->seen))
        die("malloc encoder", -ENOMEM);
}

static void enc_free(enc *e)
{
    free(e->buf);
    free(e->seen);
}

/* Encode PER_BATCH records into e->buf; returns the batch and its length. */
static const uint8_t *enc_batch(enc *e, size_t *len)
{
    kf_builder b;
    kf_builder_init(&b, e->buf, e->cap, KF_RECORD_MAX_DEFAULT);
    for (unsigned r = 0; r < PER_BATCH; r++, e->seq++) {
        uint64_t k = splitmix64(&e->rng) % g_nkeys;
        if (e->seen && !(e->seen[k / 8] & (1u << (k % 8)))) {
            e->seen[k / 8] |= (uint8_t)(1u << (k % 8));
            e->distinct++;
        }
        kf_record rec = { g_keys + k * KEY_LEN, KEY_LEN, g_vals + (e->seq * 61) % VAL_SPREAD, VAL_LEN,
                          1700000000000 + (int64_t)e->seq, NULL, 0 };
        int rc = kf_builder_add(&b, &rec);
        if (rc)
            die("encode", rc);
    }
    const uint8_t *out;
    kf_batch_meta meta = { -1, -1, -1, 0, KF_CODEC_NONE, 0 };
    int rc = kf_builder_finish(&b, &meta, NULL, &out, len);
    if (rc)
        die("finish", rc);
    return out;
}

/* Bytes of one encoded batch (they vary by a few bytes at most). */
static size_t batch_bytes(void)
{
    enc e;
    enc_init(&e, 1, false);
    size_t len;
    enc_batch(&e, &len);
    enc_free(&e);
    return len;
}

/* Key map bytes for n distinct keys: clean.c's table holds 24-byte slots in
 * a power of two, filled to 3/4 (log.cleaner.dedupe.buffer.size). */
static size_t map_bytes_for(uint64_t n)
{
    uint64_t slots = 1;
    while (slots / 4 * 3 < n + 1)
        slots *= 2;
    return (size_t)KLOG_MAX(slots * 24, (uint64_t)64 * 1024);
}

/* ---- storage-level helpers ------------------------------------------------------ */

static ks_log *open_log(kio *io, const char *name, uint64_t segment_bytes)
{
    char path[4200];
    path_in(path, sizeof path, name);
    bu_rm_rf("bench_retention", path);
    ks_log_config cfg;
    ks_log_config_init(&cfg);
    cfg.durability = KS_DURABILITY_NONE;
    cfg.segment_bytes = segment_bytes;
    ks_log *log;
    int rc = ks_log_open(&log, io, path, &cfg);
    if (rc)
        die("ks_log_open", rc);
    return log;
}

/* A log of nbatches freshly encoded batches (same seed, same log), rolled
 * so that every record is in a sealed segment.  Untimed. */
static ks_log *build_log(kio *io, const char *name, uint64_t segment_bytes, uint64_t nbatches,
                         uint64_t *distinct)
{
    ks_log *log = open_log(io, name, segment_bytes);
    enc e;
    enc_init(&e, 42, distinct != NULL);
    for (uint64_t i = 0; i < nbatches; i++) {
        size_t len;
        const uint8_t *b = enc_batch(&e, &len);
        ks_batch kb = { (void *)b, len, 0, 0 };
        int rc = ks_log_append(log, &kb, 1, 0);
        if (rc)
            die("build: append", rc);
    }
    int rc = ks_log_roll(log);
    if (rc)
        die("build: roll", rc);
    if (distinct)
        *distinct = e.distinct;
    enc_free(&e);
    return log;
}

/* ---- 1. compaction ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The non-empty *.log files of dir, sorted. */
static size_t list_segments(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    if (!d)
        die("opendir", -errno);
    char **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".log"))
            continue;
        char p[4200 + 256 + 2]; /* dir (path_in's 4200) / name (<= 255) */
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &st) || st.st_size == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            v = realloc(v, cap * sizeof *v);
            if (!v)
                die("realloc", -ENOMEM);
        }
        v[n++] = strdup(p);
    }
    closedir(d);
    qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    return n;
}

/* Copy every segment through a fresh read-only mapping into its own new
 * file with 1 MiB pwrites.  Returns seconds; *bytes receives the total. */
static double run_copy(char **segs, size_t nsegs, uint64_t *bytes)
{
    char odir[4200];
    path_in(odir, sizeof odir, "copy");
    bu_rm_rf("bench_retention", odir);
    if (mkdir(odir, 0755))
        die("mkdir copy", -errno);
    uint64_t total = 0;
    uint64_t t0 = klog__now_ns();
    for (size_t i = 0; i < nsegs; i++) {
        int fd = open(segs[i], O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st))
            die("open segment", -errno);
        size_t size = (size_t)st.st_size;
        const uint8_t *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
            die("mmap", -errno);
        close(fd);
        char op[4400];
        snprintf(op, sizeof op, "%s/%zu.copy", odir, i);
        int ofd = open(op, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (ofd < 0)
            die("open copy", -errno);
        for (size_t off = 0; off < size;) {
            size_t n = KLOG_MIN((size_t)COPY_CHUNK, size - off);
            ssize_t w = pwrite(ofd, m + off, n, (off_t)off);
            if (w <= 0)
                die("pwrite", -errno);
            off += (size_t)w;
        }
        close(ofd);
        munmap((void *)m, size);
        total += size;
    }
    double s = secs_since(t0);
    bu_rm_rf("bench_retention", odir);
    *bytes = total;
    return s;
}

static void section_compaction(kio *io)
{
    const uint64_t target = g_quick ? 16u << 20 : 1u << 30;
    const uint64_t seg = g_quick ? 1u << 20 : 64u << 20;
    const size_t blen = batch_bytes();
    const uint64_t nbatches = (target + blen - 1) / blen;
    const uint64_t records = nbatches * PER_BATCH;
    keys_init(records / 10);
    const size_t map_bytes = map_bytes_for(g_nkeys);

    double t_copy[MAX_REPS], t_clean[MAX_REPS];
    ks_clean_stats st = { 0 };
    uint64_t log_bytes = 0, distinct = 0, after_bytes = 0;
    unsigned nsegs_in = 0;
    bool complete = true;
    for (int r = 0; r < g_reps; r++) {
        ks_log *log = build_log(io, "clean", seg, nbatches, &distinct);
        int64_t end = ks_log_end_offset(log);
        log_bytes = ks_log_size_bytes(log);
        nsegs_in = ks_log_segment_count(log) - 1;
        char dir[4200], **segs;
        path_in(dir, sizeof dir, "clean");
        size_t nsegs = list_segments(dir, &segs);

        uint64_t copied;
        settle();
        warm_page_cache(log_bytes);
        t_copy[r] = run_copy(segs, nsegs, &copied);
        if (copied != log_bytes)
            fprintf(stderr, "bench_retention: copied %" PRIu64 " bytes of a %" PRIu64 "-byte log\n", copied,
                    log_bytes);
        for (size_t i = 0; i < nsegs; i++)
            free(segs[i]);
        free(segs);

        ks_clean_config cc;
        ks_clean_config_init(&cc);
        cc.min_dirty_ratio = 0;
        cc.map_bytes = map_bytes;
        settle();
        warm_page_cache(log_bytes);
        uint64_t t0 = klog__now_ns();
        int rc = ks_log_clean(log, &cc, &st);
        t_clean[r] = secs_since(t0);
        if (rc)
            die("ks_log_clean", rc);
        if (!st.cleaned || st.clean_point != end || st.records_kept != distinct)
            complete = false;
        after_bytes = ks_log_size_bytes(log);
        rc = ks_log_close(log);
        if (rc)
            die("ks_log_close", rc);
        bu_rm_rf("bench_retention", dir);
    }
    double lmb = (double)log_bytes / 1e6;
    double v_copy[MAX_REPS], v_clean[MAX_REPS], v_read[MAX_REPS], v_wr[MAX_REPS];
    for (int r = 0; r < g_reps; r++) {
        v_copy[r] = lmb / t_copy[r];
        v_clean[r] = lmb / t_clean[r];
        v_read[r] = (double)st.bytes_read / 1e6 / t_clean[r];
        v_wr[r] = (double)st.bytes_written / 1e6 / t_clean[r];
    }
    mstat tc = stat_of(t_copy, g_reps), tk = stat_of(t_clean, g_reps);
    char b1[64], b2[64], b3[64];
    printf("1. compaction: %.1f MB log in %u sealed segments of %.0f MiB; %" PRIu64 " records of %d-byte keys"
           " and %d-byte values, %" PRIu64 " keys (%" PRIu64 " distinct used); key map %.0f MiB\n",
           lmb, nsegs_in, (double)seg / MiB, records, KEY_LEN, VAL_LEN, g_nkeys, distinct, (double)map_bytes / MiB);
    printf("  %-40s %-26s %-26s %s\n", "", "seconds", "MB/s of log", "MB/s read / written");
    printf("  %-40s %-26s %-26s %.0f / %.0f\n", "copy: mmap read + 1 MiB pwrite, no sync", fs(b1, tc, 3),
           fs(b2, stat_of(v_copy, g_reps), 0), lmb / tc.med, lmb / tc.med);
    printf("  %-40s %-26s %-26s %s / %.0f\n", "ks_log_clean (min_dirty_ratio 0)", fs(b1, tk, 3),
           fs(b2, stat_of(v_clean, g_reps), 0), fs(b3, stat_of(v_read, g_reps), 0),
           stat_of(v_wr, g_reps).med);
    printf("  ratio cleaner/copy (log MB/s, medians) %.2f\n", tc.med / tk.med);
    printf("  records in %" PRIu64 " -> out %" PRIu64 "; bytes in %.1f MB -> out %.1f MB (%.1f%%); "
           "cleaner read %.1f MB (key map + rewrite), wrote %.1f MB; segments %" PRIu64 " -> %" PRIu64 "\n",
           st.records_read, st.records_kept, lmb, (double)after_bytes / 1e6,
           100.0 * (double)after_bytes / (double)log_bytes, (double)st.bytes_read / 1e6,
           (double)st.bytes_written / 1e6, st.segments_in, st.segments_out);
    if (!complete)
        printf("  WARNING: a pass did not cover the whole log or kept a record count other than the"
               " distinct keys\n");
    printf("\n");
}

/* ---- 2. appends while the cleaner runs ---------------------------------------------- */

typedef struct cleaner_ctl {
    ks_log *log;
    ks_clean_config cc;
    atomic_bool stop;
    _Atomic uint64_t io_bytes;  /* read + written, from the throttle callback */
    unsigned passes, idle;
    uint64_t t0_ns;             /* the window: set before the thread starts */
    _Atomic uint64_t t1_ns;     /* ... and when the appends end, before stop */
    uint64_t busy_ns;           /* inside passes that did work, clipped to the window */
    int err;
} cleaner_ctl;

static int clean_throttle(void *arg, uint64_t bytes)
{
    cleaner_ctl *c = arg;
    atomic_fetch_add(&c->io_bytes, bytes);
    return atomic_load(&c->stop) ? 1 : 0;
}

static void *cleaner_main(void *arg)
{
    cleaner_ctl *c = arg;
    while (!atomic_load(&c->stop)) {
        ks_clean_stats st;
        uint64_t t0 = klog__now_ns();
        int rc = ks_log_clean(c->log, &c->cc, &st);
        uint64_t t1 = klog__now_ns();
        if (atomic_load(&c->stop))
            t1 = KLOG_MIN(t1, atomic_load(&c->t1_ns));
        if ((rc == -ECANCELED || (rc == 0 && st.cleaned)) && t1 > t0)
            c->busy_ns += t1 - t0;
        if (rc == -ECANCELED)
            break;
        if (rc) {
            c->err = rc;
            break;
        }
        if (st.cleaned) {
            c->passes++;
        } else {
            c->idle++;
            struct timespec ts = { 0, 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* Prebuilt batches, appended `rounds` times over (the log rewrites each
 * batch's base offset in place; nothing else changes). */
typedef struct bset { uint8_t **b; size_t *len; size_t n; uint64_t bytes; unsigned rounds; } bset;

static void prefault_set(const bset *s)
{
    for (size_t i = 0; i < s->n; i++)
        bu_prefault(s->b[i], s->len[i]);
}

static double run_appends(ks_log *log, const bset *s)
{
    uint64_t t0 = klog__now_ns();
    for (unsigned round = 0; round < s->rounds; round++)
        for (size_t i = 0; i < s->n; i++) {
            ks_batch kb = { s->b[i], s->len[i], 0, 0 };
            int rc = ks_log_append(log, &kb, 1, 0);
            if (rc)
                die("append", rc);
        }
    return secs_since(t0);
}

static void section_appends(kio *io)
{
    const uint64_t dirty = g_quick ? 8u << 20 : 512u << 20;
    const uint64_t amount = g_quick ? 4u << 20 : 1u << 30;
    const uint64_t set_bytes = g_quick ? 4u << 20 : 64u << 20;
    const uint64_t seg = g_quick ? 1u << 20 : 64u << 20;
    const size_t blen = batch_bytes();
    const uint64_t nb_dirty = (dirty + blen - 1) / blen;
    keys_init(nb_dirty * PER_BATCH / 10);

    bset s = { 0 };
    s.n = (set_bytes + blen - 1) / blen;
    s.rounds = (unsigned)((amount + set_bytes - 1) / set_bytes);
    s.b = calloc(s.n, sizeof *s.b);
    s.len = calloc(s.n, sizeof *s.len);
    if (!s.b || !s.len)
        die("calloc", -ENOMEM);
    enc e;
    enc_init(&e, 7, false);
    for (size_t i = 0; i < s.n; i++) {
        const uint8_t *b = enc_batch(&e, &s.len[i]);
        if (!(s.b[i] = malloc(s.len[i])))
            die("malloc", -ENOMEM);
        memcpy(s.b[i], b, s.len[i]);
        s.bytes += s.len[i];
    }
    enc_free(&e);
    const uint64_t records = s.n * PER_BATCH * s.rounds;
    const uint64_t total = s.bytes * s.rounds;

    double t_alone[MAX_REPS], t_with[MAX_REPS], v_alone[MAX_REPS], v_with[MAX_REPS], v_cio[MAX_REPS];
    double v_passes[MAX_REPS], v_busy[MAX_REPS];
    double mb = (double)total / 1e6;
    uint64_t dirty_bytes = 0;
    for (int r = 0; r < g_reps; r++) {
        ks_log *log = build_log(io, "append", seg, nb_dirty, NULL);
        dirty_bytes = ks_log_size_bytes(log);
        settle();
        warm_page_cache(total);
        prefault_set(&s);
        t_alone[r] = run_appends(log, &s);
        int rc = ks_log_close(log);
        if (rc)
            die("ks_log_close", rc);

        log = build_log(io, "append", seg, nb_dirty, NULL);
        cleaner_ctl c = { .log = log };
        ks_clean_config_init(&c.cc);
        c.cc.min_dirty_ratio = 0;
        c.cc.map_bytes = map_bytes_for(g_nkeys);
        c.cc.throttle = clean_throttle;
        c.cc.throttle_arg = &c;
        settle();
        warm_page_cache(total);
        prefault_set(&s);
        pthread_t th;
        c.t0_ns = klog__now_ns();
        if (pthread_create(&th, NULL, cleaner_main, &c))
            die("pthread_create", -EAGAIN);
        t_with[r] = run_appends(log, &s);
        atomic_store(&c.t1_ns, klog__now_ns());
        atomic_store(&c.stop, true);
        pthread_join(th, NULL);
        if (c.err)
            die("ks_log_clean (concurrent)", c.err);
        v_cio[r] = (double)atomic_load(&c.io_bytes) / 1e6;
        v_passes[r] = c.passes;
        v_busy[r] = 100.0 * (double)c.busy_ns / (double)(atomic_load(&c.t1_ns) - c.t0_ns);
        if ((rc = ks_log_close(log)))
            die("ks_log_close", rc);
        v_alone[r] = mb / t_alone[r];
        v_with[r] = mb / t_with[r];
    }
    char dir[4200];
    path_in(dir, sizeof dir, "append");
    bu_rm_rf("bench_retention", dir);
    for (size_t i = 0; i < s.n; i++)
        free(s.b[i]);
    free(s.b);
    free(s.len);

    mstat a = stat_of(v_alone, g_reps), w = stat_of(v_with, g_reps);
    char b1[64], b2[64];
    printf("2. appends during compaction: %.1f MB (%" PRIu64 " records; %u x %zu prebuilt batches of %d),"
           " durability none, onto a log with %.1f MB dirty and sealed; segment.bytes %.0f MiB\n",
           mb, records, s.rounds, s.n, PER_BATCH, (double)dirty_bytes / 1e6, (double)seg / MiB);
    printf("  %-40s %-26s %s\n", "", "MB/s", "M records/s");
    printf("  %-40s %-26s %.2f\n", "appends alone", fs(b1, a, 0), (double)records / 1e6 / stat_of(t_alone, g_reps).med);
    printf("  %-40s %-26s %.2f\n", "appends + ks_log_clean loop", fs(b1, w, 0),
           (double)records / 1e6 / stat_of(t_with, g_reps).med);
    printf("  ratio with/without cleaner (medians)   %.2f\n", w.med / a.med);
    char b3[64];
    printf("  cleaner while the appends ran: %s MB read+written, %s passes completed, in a pass %s%% of the time\n",
           fs(b1, stat_of(v_cio, g_reps), 0), fs(b2, stat_of(v_passes, g_reps), 0),
           fs(b3, stat_of(v_busy, g_reps), 0));
    printf("\n");
}

/* ---- 3. disk budget (public API) ------------------------------------------------------ */

static uint64_t g_walk_size, g_walk_alloc;

static int walk_fn(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)p;
    (void)f;
    if (flag == FTW_F) {
        g_walk_size += (uint64_t)st->st_size;
        g_walk_alloc += (uint64_t)st->st_blocks * 512;
    }
    return 0;
}

typedef struct sampler {
    klog *k;
    const char *dir;
    atomic_bool stop;
    uint64_t max_used, max_size, max_alloc;
    unsigned n_usage, n_walk;
} sampler;

static void sample_walk(sampler *s)
{
    g_walk_size = g_walk_alloc = 0;
    nftw(s->dir, walk_fn, 16, FTW_PHYS);
    s->max_size = KLOG_MAX(s->max_size, g_walk_size);
    s->max_alloc = KLOG_MAX(s->max_alloc, g_walk_alloc);
    s->n_walk++;
}

static void sample_usage(sampler *s)
{
    uint64_t used;
    if (klog_disk_usage(s->k, &used, NULL) == 0)
        s->max_used = KLOG_MAX(s->max_used, used);
    s->n_usage++;
}

static void *sampler_main(void *arg)
{
    sampler *s = arg;
    for (unsigned tick = 0; !atomic_load(&s->stop); tick++) {
        sample_usage(s);
        if (tick % 5 == 0)
            sample_walk(s);
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static klog_conf *conf_of(const char *const *kv)
{
    klog_conf *c;
    int rc = klog_conf_new(&c);
    if (rc)
        die("klog_conf_new", rc);
    for (; kv[0]; kv += 2) {
        char err[256] = "";
        if ((rc = klog_conf_set(c, kv[0], kv[1], err, sizeof err))) {
            fprintf(stderr, "bench_retention: %s\n", err);
            die("klog_conf_set", rc);
        }
    }
    return c;
}

typedef struct dstats { _Atomic uint64_t errors; _Atomic int first_err; } dstats;

static void on_delivery(void *arg, const klog_delivery *d)
{
    dstats *ds = arg;
    if (d->err) {
        int zero = 0;
        atomic_compare_exchange_strong(&ds->first_err, &zero, d->err);
        atomic_fetch_add(&ds->errors, 1);
    }
}

typedef struct brun {
    double secs;
    uint64_t max_used, max_size, max_alloc, final_used, errors;
    unsigned n_usage, n_walk;
    int first_err;
} brun;

static brun run_budget(uint64_t budget, uint64_t seg, uint64_t records, int run)
{
    char dir[4200], name[64];
    snprintf(name, sizeof name, "api-%d", run);
    path_in(dir, sizeof dir, name);
    bu_rm_rf("bench_retention", dir);
    char bbuf[32], sbuf[32], errbuf[256] = "";
    snprintf(bbuf, sizeof bbuf, "%" PRIu64, budget);
    snprintf(sbuf, sizeof sbuf, "%" PRIu64, seg);
    const char *ikv[] = { "disk.budget.bytes", bbuf, "disk.budget.policy", "delete-oldest", NULL };
    const char *tkv[] = { "segment.bytes", sbuf, NULL };
    klog_conf *ic = conf_of(ikv), *tc = conf_of(tkv);
    klog *k;
    int rc = klog_open(&k, dir, ic, errbuf, sizeof errbuf);
    if (rc) {
        fprintf(stderr, "bench_retention: %s\n", errbuf);
        die("klog_open", rc);
    }
    if ((rc = klog_topic_create(k, "t", 4, tc, errbuf, sizeof errbuf))) {
        fprintf(stderr, "bench_retention: %s\n", errbuf);
        die("klog_topic_create", rc);
    }
    klog_conf_free(ic);
    klog_conf_free(tc);
    klog_producer *p;
    if ((rc = klog_producer_new(k, NULL, &p, errbuf, sizeof errbuf)))
        die("klog_producer_new", rc);
    dstats ds = { 0 };
    if ((rc = klog_producer_set_delivery_cb(p, on_delivery, &ds)))
        die("klog_producer_set_delivery_cb", rc);

    settle();
    warm_page_cache(records * (KEY_LEN + VAL_LEN + 10));
    bu_prefault(g_keys, g_nkeys * KEY_LEN);
    bu_prefault(g_vals, sizeof g_vals);
    sampler s = { .k = k, .dir = dir };
    pthread_t th;
    if (pthread_create(&th, NULL, sampler_main, &s))
        die("pthread_create", -EAGAIN);
    uint64_t rng = 99;
    uint64_t t0 = klog__now_ns();
    for (uint64_t i = 0; i < records; i++) {
        klog_record rec = KLOG_RECORD_INIT;
        rec.key = g_keys + (splitmix64(&rng) % g_nkeys) * KEY_LEN;
        rec.key_len = KEY_LEN;
        rec.value = g_vals + (i * 61) % VAL_SPREAD;
        rec.value_len = VAL_LEN;
        if ((rc = klog_producer_send(p, "t", &rec)))
            die("klog_producer_send", rc);
    }
    if ((rc = klog_producer_flush(p, -1)))
        die("klog_producer_flush", rc);
    brun b = { .secs = secs_since(t0) };
    atomic_store(&s.stop, true);
    pthread_join(th, NULL);
    sample_usage(&s);
    sample_walk(&s);
    klog_disk_usage(k, &b.final_used, NULL);
    b.max_used = s.max_used;
    b.max_size = s.max_size;
    b.max_alloc = s.max_alloc;
    b.n_usage = s.n_usage;
    b.n_walk = s.n_walk;
    b.errors = atomic_load(&ds.errors);
    b.first_err = atomic_load(&ds.first_err);
    klog_producer_close(p);
    if ((rc = klog_close(k)))
        die("klog_close", rc);
    bu_rm_rf("bench_retention", dir);
    return b;
}

static void section_budget(void)
{
    const uint64_t budget = g_quick ? 8u << 20 : 256u << 20;
    const uint64_t seg = g_quick ? 256u << 10 : 16u << 20;
    const uint64_t records = 4 * budget / VAL_LEN;
    keys_init(100000);

    double v_rate[2][MAX_REPS], v_used[2][MAX_REPS], v_size[2][MAX_REPS], v_alloc[2][MAX_REPS];
    double v_fail[2][MAX_REPS];
    brun last[2] = { { 0 } };
    for (int r = 0; r < g_reps; r++) {
        for (int w = 0; w < 2; w++) {
            brun b = run_budget(w ? budget : 0, seg, records, 2 * r + w);
            if (b.errors)
                fprintf(stderr, "bench_retention: %" PRIu64 " records failed (%s) with budget %" PRIu64 "\n",
                        b.errors, klog_err_name(b.first_err), w ? budget : 0);
            v_rate[w][r] = (double)records / 1e6 / b.secs;
            v_used[w][r] = (double)b.max_used / MiB;
            v_size[w][r] = (double)b.max_size / MiB;
            v_alloc[w][r] = (double)b.max_alloc / MiB;
            v_fail[w][r] = (double)b.errors;
            last[w] = b;
        }
    }
    char b1[64], b2[64], b3[64], b4[64];
    printf("3. disk budget (public API): %" PRIu64 " records x (%d-byte key, %d-byte value) = %.1f MiB of values"
           " (4x the budget), topic of 4 partitions, segment.bytes %.2f MiB, acks=1, policy delete-oldest\n",
           records, KEY_LEN, VAL_LEN, (double)records * VAL_LEN / MiB, (double)seg / MiB);
    printf("  %-18s %-22s %-26s %-26s %-26s %s\n", "", "M records/s", "max used MiB (disk_usage)",
           "max files MiB (st_size)", "max files MiB (allocated)", "records failed");
    const char *label[2] = { "no budget", "" };
    char lb[64];
    snprintf(lb, sizeof lb, "budget %.2f MiB", (double)budget / MiB);
    label[1] = lb;
    mstat rate[2];
    for (int w = 0; w < 2; w++) {
        rate[w] = stat_of(v_rate[w], g_reps);
        printf("  %-18s %-22s %-26s %-26s %-26s %.0f\n", label[w], fs(b1, rate[w], 2),
               fs(b2, stat_of(v_used[w], g_reps), 2), fs(b3, stat_of(v_size[w], g_reps), 2),
               fs(b4, stat_of(v_alloc[w], g_reps), 2), stat_of(v_fail[w], g_reps).hi);
    }
    mstat used = stat_of(v_used[1], g_reps), alloc = stat_of(v_alloc[1], g_reps);
    printf("  ratio budget/no budget (M records/s, medians) %.2f\n", rate[1].med / rate[0].med);
    printf("  with the budget: max used - budget %+.2f MiB, max allocated - budget %+.2f MiB (medians);"
           " last run: %u usage samples, %u directory walks, final used %.2f MiB\n",
           used.med - (double)budget / MiB, alloc.med - (double)budget / MiB, last[1].n_usage, last[1].n_walk,
           (double)last[1].final_used / MiB);
    printf("\n");
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
            fprintf(stderr, "usage: bench_retention [--dir DIR] [--reps N] [--quick]\n");
            return 2;
        }
    }
    if (g_reps < 1 || g_reps > MAX_REPS)
        g_reps = 3;
    if (g_quick)
        g_reps = 1;
    if (mkdir(g_dir, 0755) && errno != EEXIST)
        die("mkdir", -errno);
    vals_init();
    bu_prefault(g_vals, sizeof g_vals);
    keys_init(1000); /* for batch_bytes(); each section sizes its own key space */
    kio *io;
    int rc = kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_AUTO });
    if (rc)
        die("kio_open", rc);
    printf("bench_retention: dir %s, I/O backend %s, median of %d run(s)%s\n\n", g_dir, kio_name(io), g_reps,
           g_reps > 1 ? " (min..max)" : "");
    fflush(stdout);
    section_compaction(io);
    fflush(stdout);
    section_appends(io);
    fflush(stdout);
    kio_close(io);
    section_budget();
    free(g_keys);
    bu_rm_rf("bench_retention", g_dir);
    return 0;
}
