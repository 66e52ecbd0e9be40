/*
 * test/storage/util.h - helpers shared by the storage tests.
 *
 * Everything here is static inline: each test file is its own executable.
 *
 *   - a scratch directory per test (mkdtemp under /tmp, removed in .fini),
 *     and small file helpers (read/write whole files, copy a directory the
 *     way `cp -a` would for the flat directories a log uses);
 *   - I/O engines: the default one (kio_open, AUTO: honours
 *     $KLOG_IO_BACKEND), and a pass-through "wrap" backend that lets a test
 *     run code before each operation of another backend (to crash the fault
 *     backend at an exact operation, or to hold a thread inside an op);
 *   - batches of records whose keys and values encode a 64-bit sequence
 *     number, so a reader can check every record's content on its own;
 *   - reading a whole log back (ks_log_read + kf_batch_verify +
 *     kf_batch_records + kf_iter_next) into an array of records.
 *
 * Assertions (cr_assert*) may only be used on the test's main thread; the
 * helpers that worker threads call return codes instead.
 */
#ifndef KLOG_TEST_STORAGE_UTIL_H
#define KLOG_TEST_STORAGE_UTIL_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <klog/error.h>

#include "format/format.h"
#include "io/io.h"
#include "testing/io_fault.h" /* the fault backend: lib/testing, linked beside the core */
#include "storage/storage.h"

#define TU_PATH 4096

/* Scratch paths are short (/tmp/klog-st-XXXXXX/...); GCC cannot know that
 * and warns about every snprintf into a TU_PATH buffer. */
#if defined(__GNUC__) && !defined(__clang__) /* clang has no such warning, and -Werror refuses unknown ones */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* Reader-detected inconsistencies (positive, so they never collide with a
 * klog or errno code). */
#define TU_EGAP 1      /* a view or batch does not start where the previous ended */
#define TU_EVIEW 2     /* view fields disagree with the batches inside it */

/* ---- pseudo-random numbers (deterministic, per seed) ---------------------- */

static inline uint64_t tu_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct tu_rng { uint64_t s; } tu_rng;
static inline uint64_t tu_rand(tu_rng *r) { return tu_mix(r->s++); }
/* Uniform-ish in [lo, hi]. */
static inline uint64_t tu_range(tu_rng *r, uint64_t lo, uint64_t hi)
{
    return lo + tu_rand(r) % (hi - lo + 1);
}

/* ---- scratch directory ---------------------------------------------------- */

static char tu_root[TU_PATH]; /* this test's scratch directory */
static char tu_dir[TU_PATH];  /* tu_root/log: where the test's log lives */

static inline int tu_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb; (void)flag; (void)f;
    return remove(p);
}

static inline void tu_rmrf(const char *path)
{
    if (path[0])
        nftw(path, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* mkdtemp a fresh root; tu_dir names a not-yet-created log directory in it. */
static inline void tu_mkroot(void)
{
    snprintf(tu_root, sizeof tu_root, "/tmp/klog-st-XXXXXX");
    cr_assert_not_null(mkdtemp(tu_root), "mkdtemp: %s", strerror(errno));
    snprintf(tu_dir, sizeof tu_dir, "%s/log", tu_root);
}

/* path = tu_root/name */
static inline void tu_sub(char *out, const char *name)
{
    snprintf(out, TU_PATH, "%s/%s", tu_root, name);
}

static inline void tu_path(char *out, const char *dir, const char *name)
{
    snprintf(out, TU_PATH, "%s/%s", dir, name);
}

static inline bool tu_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static inline off_t tu_fsize(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return st.st_size;
}

/* Read a whole file; *len receives its size.  Caller frees. */
static inline uint8_t *tu_slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    cr_assert_not_null(b);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
        cr_assert_gt(n, 0, "read %s", path);
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return b;
}

static inline void tu_spit(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const uint8_t *)data + done, len - done);
        cr_assert_gt(n, 0, "write %s", path);
        done += (size_t)n;
    }
    close(fd);
}

static inline void tu_truncate(const char *path, off_t len)
{
    cr_assert_eq(truncate(path, len), 0, "truncate %s: %s", path, strerror(errno));
}

/* Overwrite len bytes at off (the file must be long enough). */
static inline void tu_poke(const char *path, off_t off, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    cr_assert_eq(pwrite(fd, data, len, off), (ssize_t)len);
    close(fd);
}

static inline void tu_flip_bit(const char *path, off_t off, unsigned bit)
{
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= (uint8_t)(1u << (bit & 7));
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

/* Copy every regular file of the flat directory src into dst (created if
 * needed; files already in dst that src lacks are removed first), as
 * `rm -rf dst && cp -a src dst` would.  Works while a log is open in src:
 * it reads the files through the page cache like any other process. */
static inline void tu_copy_dir(const char *src, const char *dst)
{
    tu_rmrf(dst);
    cr_assert_eq(mkdir(dst, 0755), 0, "mkdir %s: %s", dst, strerror(errno));
    DIR *d = opendir(src);
    cr_assert_not_null(d, "opendir %s", src);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char sp[TU_PATH], dp[TU_PATH];
        tu_path(sp, src, de->d_name);
        struct stat st;
        if (lstat(sp, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        tu_path(dp, dst, de->d_name);
        size_t len;
        uint8_t *b = tu_slurp(sp, &len);
        tu_spit(dp, b, len);
        free(b);
    }
    closedir(d);
}

/* Names in dir ending with suffix (dot files skipped), sorted; returns the
 * count.  names holds at most max entries. */
typedef char tu_name[256];
static inline int tu_cmp_name(const void *a, const void *b)
{
    return strcmp(*(const tu_name *)a, *(const tu_name *)b);
}
static inline size_t tu_list(const char *dir, const char *suffix, tu_name *names, size_t max)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    size_t n = 0, sl = strlen(suffix);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < sl || strcmp(de->d_name + l - sl, suffix) != 0 || de->d_name[0] == '.')
            continue;
        cr_assert_lt(n, max, "too many %s files in %s", suffix, dir);
        snprintf(names[n++], sizeof(tu_name), "%s", de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(tu_name), tu_cmp_name);
    return n;
}

/* ---- I/O engines ----------------------------------------------------------- */

/* The default engine: AUTO, so $KLOG_IO_BACKEND=posix picks the fallback. */
static inline kio *tu_io_open(void)
{
    kio *io = NULL;
    kio_options o = { .backend = KIO_BACKEND_AUTO };
    int rc = kio_open(&io, &o);
    cr_assert_eq(rc, 0, "kio_open: %s", klog_strerror(rc));
    return io;
}

static inline kio *tu_io_open_posix(void)
{
    kio *io = NULL;
    kio_options o = { .backend = KIO_BACKEND_POSIX };
    int rc = kio_open(&io, &o);
    cr_assert_eq(rc, 0, "kio_open(posix): %s", klog_strerror(rc));
    return io;
}

/* The backend the fault engine should wrap in this run: the posix one when
 * $KLOG_IO_BACKEND=posix, otherwise io_uring when built and usable (so the
 * fault tests also exercise the uring code paths), else posix. */
static inline const struct kio_methods *tu_base_methods(const void **arg)
{
    static kio_options uring_opt = { .backend = KIO_BACKEND_URING };
    static int probed; /* 0 unknown, 1 posix, 2 uring */
    if (!probed) {
        probed = 1;
        const char *e = getenv("KLOG_IO_BACKEND");
        const struct kio_methods *u = kio_uring_methods();
        kio *probe = NULL;
        if (!(e && strcmp(e, "posix") == 0) && u && kio_open_methods(&probe, u, &uring_opt) == 0) {
            kio_close(probe);
            probed = 2;
        }
    }
    *arg = probed == 2 ? &uring_opt : NULL;
    return probed == 2 ? kio_uring_methods() : kio_posix_methods();
}

/* A fault engine over tu_base_methods(). */
static inline kio *tu_fault_open(void)
{
    kio_fault_init fi = { 0 };
    fi.base = tu_base_methods(&fi.base_arg);
    kio *io = NULL;
    int rc = kio_open_methods(&io, kio_fault_methods(), &fi);
    cr_assert_eq(rc, 0, "kio_open_methods(fault): %s", klog_strerror(rc));
    return io;
}

/*
 * The wrap backend: forwards every op to a base backend, calling
 * hook(ctx, st, op class) first (close and filesize are not hooked).  The hook runs on the calling thread and may
 * block; it may call base control ops through tu_wrap_base_control.  State
 * layout: struct tu_wrap_st, then the base's state (aligned).
 */
typedef void (*tu_wrap_hook)(void *ctx, void *st, unsigned op);
typedef struct tu_wrap_init {
    const struct kio_methods *base;
    const void *base_arg;
    tu_wrap_hook hook;
    void *ctx;
} tu_wrap_init;

typedef struct tu_wrap_st {
    const struct kio_methods *base;
    tu_wrap_hook hook;
    void *ctx;
    bool base_ok;
    _Alignas(16) unsigned char bst[]; /* the core's calloc gives 16 */
} tu_wrap_st;

#define TU_W(st) ((tu_wrap_st *)(st))
#define TU_HOOK(st, op) do { if (TU_W(st)->hook) TU_W(st)->hook(TU_W(st)->ctx, (st), (op)); } while (0)

static inline int tu_w_init(void *st, const void *arg)
{
    const tu_wrap_init *wi = arg;
    tu_wrap_st *w = st;
    w->base = wi->base;
    w->hook = wi->hook;
    w->ctx = wi->ctx;
    int rc = w->base->init ? w->base->init(w->bst, wi->base_arg) : 0;
    w->base_ok = true; /* fini is safe after a failed init too */
    return rc;
}
static inline void tu_w_fini(void *st)
{
    tu_wrap_st *w = st;
    if (w->base_ok && w->base->fini)
        w->base->fini(w->bst);
}
static inline int tu_w_open(void *st, const char *path, unsigned flags, unsigned mode)
{
    TU_HOOK(st, KIO_OP_OPEN);
    return TU_W(st)->base->open(TU_W(st)->bst, path, flags, mode);
}
static inline int tu_w_close(void *st, int h)
{
    return TU_W(st)->base->close(TU_W(st)->bst, h);
}
static inline ssize_t tu_w_readv(void *st, int h, const struct iovec *iov, int iovcnt, uint64_t off)
{
    TU_HOOK(st, KIO_OP_READ);
    return TU_W(st)->base->readv(TU_W(st)->bst, h, iov, iovcnt, off);
}
static inline int tu_w_writev_many(void *st, const kio_wreq *reqs, unsigned n, ssize_t *res, unsigned flags)
{
    TU_HOOK(st, KIO_OP_WRITE | ((flags & KIO_W_DSYNC) ? KIO_OP_SYNC : 0));
    return TU_W(st)->base->writev_many(TU_W(st)->bst, reqs, n, res, flags);
}
static inline int tu_w_datasync(void *st, int h)
{
    TU_HOOK(st, KIO_OP_SYNC);
    return TU_W(st)->base->datasync(TU_W(st)->bst, h);
}
static inline int tu_w_truncate(void *st, int h, uint64_t len)
{
    TU_HOOK(st, KIO_OP_TRUNCATE);
    return TU_W(st)->base->truncate(TU_W(st)->bst, h, len);
}
static inline int tu_w_filesize(void *st, int h, uint64_t *len)
{
    return TU_W(st)->base->filesize(TU_W(st)->bst, h, len);
}
static inline int tu_w_rename(void *st, const char *from, const char *to)
{
    TU_HOOK(st, KIO_OP_RENAME);
    return TU_W(st)->base->rename(TU_W(st)->bst, from, to);
}
static inline int tu_w_unlink(void *st, const char *path)
{
    TU_HOOK(st, KIO_OP_UNLINK);
    return TU_W(st)->base->unlink(TU_W(st)->bst, path);
}
static inline int tu_w_dirsync(void *st, const char *dir)
{
    TU_HOOK(st, KIO_OP_DIRSYNC);
    return TU_W(st)->base->dirsync(TU_W(st)->bst, dir);
}
static inline int tu_w_mkdir(void *st, const char *path, unsigned mode)
{
    TU_HOOK(st, KIO_OP_MKDIR);
    return TU_W(st)->base->mkdir(TU_W(st)->bst, path, mode);
}
/* Call a control op of the wrapped backend from inside a hook (st is the
 * state the hook was given). */
static inline int tu_wrap_base_control(void *st, int op, void *arg)
{
    if (!TU_W(st)->base->control)
        return -ENOTSUP;
    return TU_W(st)->base->control(TU_W(st)->bst, op, arg);
}

static inline int tu_w_control(void *st, int op, void *arg)
{
    if (op == KIO_CTL_BACKEND_NAME) {
        *(const char **)arg = "wrap";
        return 0;
    }
    return tu_wrap_base_control(st, op, arg);
}

/* Methods for wrapping `base` (state size depends on the base). */
static inline const struct kio_methods *tu_wrap_methods(const struct kio_methods *base)
{
    static struct kio_methods m;
    m = (struct kio_methods){
        .version = KIO_METHODS_VERSION,
        .size = sizeof(struct kio_methods),
        .name = "wrap",
        .state_size = sizeof(tu_wrap_st) + base->state_size,
        .init = tu_w_init, .fini = tu_w_fini, .open = tu_w_open, .close = tu_w_close,
        .readv = tu_w_readv, .writev_many = tu_w_writev_many, .datasync = tu_w_datasync,
        .truncate = tu_w_truncate, .filesize = tu_w_filesize, .rename = tu_w_rename,
        .unlink = tu_w_unlink, .dirsync = tu_w_dirsync, .mkdir = tu_w_mkdir,
        .control = tu_w_control,
    };
    return &m;
}

/* ---- simulated crashes ---------------------------------------------------------
 * An engine that crashes the fault backend (mode and flags in `crash`) at
 * its `at`-th I/O op, 1-based (0: never), counting ops in `ops`: the wrap
 * backend's hook over the fault backend over the suite's base backend.  The
 * hook may run on several threads at once. */
typedef struct tu_crash {
    _Atomic uint64_t at;
    kio_crash crash;
    _Atomic uint64_t ops;
    _Atomic bool crashed;
} tu_crash;

static inline void tu_crash_hook(void *ctx, void *st, unsigned op)
{
    (void)op;
    tu_crash *c = ctx;
    if (atomic_fetch_add(&c->ops, 1) + 1 != atomic_load(&c->at))
        return;
    atomic_store(&c->crashed, true);
    tu_wrap_base_control(st, KIO_CTL_FAULT_CRASH, &c->crash);
}

static inline kio *tu_crash_io(tu_crash *c)
{
    kio_fault_init fi = { 0 };
    fi.base = tu_base_methods(&fi.base_arg);
    tu_wrap_init wi = { .base = kio_fault_methods(), .base_arg = &fi, .hook = tu_crash_hook, .ctx = c };
    kio *io = NULL;
    cr_assert_eq(kio_open_methods(&io, tu_wrap_methods(kio_fault_methods()), &wi), 0);
    return io;
}

/* ---- record content --------------------------------------------------------- */

/* Default record timestamp for sequence number seq. */
#define TU_TS0 1700000000000ll
static inline int64_t tu_ts(uint64_t seq) { return TU_TS0 + (int64_t)(seq % 1000000); }

static inline int32_t tu_value_len(uint64_t seq) { return 8 + (int32_t)(tu_mix(seq) % 56); }

static inline void tu_value_fill(uint8_t *v, uint64_t seq)
{
    int32_t len = tu_value_len(seq);
    memcpy(v, &seq, 8);
    uint64_t s = tu_mix(seq ^ 0x5eed);
    for (int32_t i = 8; i < len; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (uint8_t)(s >> 56);
    }
}

static inline bool tu_value_check(const uint8_t *v, int32_t len, uint64_t seq)
{
    uint8_t want[64];
    if (len != tu_value_len(seq))
        return false;
    tu_value_fill(want, seq);
    return memcmp(v, want, (size_t)len) == 0;
}

#define TU_KEY_LEN 17
static inline void tu_key(char k[TU_KEY_LEN + 1], uint64_t seq)
{
    snprintf(k, TU_KEY_LEN + 1, "k%016llx", (unsigned long long)seq);
}

/* Sequence number encoded in a key, or false if it is not one of ours. */
static inline bool tu_key_seq(const uint8_t *k, int32_t len, uint64_t *seq)
{
    if (len != TU_KEY_LEN || k[0] != 'k')
        return false;
    uint64_t v = 0;
    for (int i = 1; i < TU_KEY_LEN; i++) {
        int c = k[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *seq = v;
    return true;
}

/* ---- batches ---------------------------------------------------------------- */

/* An owned, sealed batch of n records with sequence numbers seq0..seq0+n-1. */
typedef struct tu_batch {
    uint8_t *buf;
    size_t len;
    uint64_t seq0;
    int n;
} tu_batch;

/* Build n records; record i has timestamp ts[i] (ts NULL: tu_ts(seq)).
 * extra > 0 gives record 0 one header with an `extra`-byte value (to make
 * big batches).  m: batch metadata (NULL: no producer id, uncompressed).
 * Returns 0 or the builder's error (the batch is then empty). */
static inline int tu_build_meta(tu_batch *b, uint64_t seq0, int n, const int64_t *ts, size_t extra,
                                const kf_batch_meta *m)
{
    memset(b, 0, sizeof *b);
    kf_record *r = calloc((size_t)n, sizeof *r);
    uint8_t (*vals)[64] = calloc((size_t)n, 64);
    char (*keys)[TU_KEY_LEN + 1] = calloc((size_t)n, TU_KEY_LEN + 1);
    uint8_t *pad = extra ? calloc(1, extra) : NULL;
    kf_header h = { "pad", 3, pad, (int32_t)extra };
    cr_assert(r && vals && keys && (pad || !extra));
    size_t cap = KF_HDR_SIZE;
    for (int i = 0; i < n; i++) {
        uint64_t seq = seq0 + (uint64_t)i;
        tu_key(keys[i], seq);
        tu_value_fill(vals[i], seq);
        r[i] = (kf_record){ .key = keys[i], .key_len = TU_KEY_LEN, .value = vals[i],
                            .value_len = tu_value_len(seq),
                            .timestamp = ts ? ts[i] : tu_ts(seq) };
        if (i == 0 && extra) {
            r[i].headers = &h;
            r[i].header_count = 1;
        }
        cap += kf_record_size_bound(&r[i]);
    }
    b->buf = malloc(cap);
    cr_assert_not_null(b->buf);
    kf_builder kb;
    kf_builder_init(&kb, b->buf, cap, KF_BATCH_MAX);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = kf_builder_add(&kb, &r[i]);
    const uint8_t *out = NULL;
    size_t out_len = 0;
    if (rc == 0) {
        kf_batch_meta meta = { .producer_id = -1, .producer_epoch = -1, .base_sequence = -1,
                               .codec = KF_CODEC_NONE };
        rc = kf_builder_finish(&kb, m ? m : &meta, NULL, &out, &out_len);
    }
    if (rc == 0) {
        if (out != b->buf)
            memmove(b->buf, out, out_len);
        b->len = out_len;
        b->seq0 = seq0;
        b->n = n;
    }
    free(r);
    free(vals);
    free(keys);
    free(pad);
    return rc;
}

static inline int tu_build_ex(tu_batch *b, uint64_t seq0, int n, const int64_t *ts, size_t extra)
{
    return tu_build_meta(b, seq0, n, ts, extra, NULL);
}

/* A batch of an idempotent producer: pid/epoch, sequences from base_seq. */
static inline void tu_build_pid(tu_batch *b, uint64_t seq0, int n, int64_t pid, int16_t epoch, int32_t base_seq)
{
    kf_batch_meta m = { .producer_id = pid, .producer_epoch = epoch, .base_sequence = base_seq,
                        .codec = KF_CODEC_NONE };
    int rc = tu_build_meta(b, seq0, n, NULL, 0, &m);
    cr_assert_eq(rc, 0, "build batch: %s", klog_strerror(rc));
}

static inline void tu_build(tu_batch *b, uint64_t seq0, int n)
{
    int rc = tu_build_ex(b, seq0, n, NULL, 0);
    cr_assert_eq(rc, 0, "build batch: %s", klog_strerror(rc));
}

static inline void tu_build_ts(tu_batch *b, uint64_t seq0, int n, const int64_t *ts)
{
    int rc = tu_build_ex(b, seq0, n, ts, 0);
    cr_assert_eq(rc, 0, "build batch: %s", klog_strerror(rc));
}

static inline void tu_batch_free(tu_batch *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

/* Append one batch; returns the append's result; *base gets its offset. */
static inline int tu_append1(ks_log *log, tu_batch *b, unsigned flags, int64_t *base)
{
    ks_batch kb = { .batch = b->buf, .len = b->len };
    int rc = ks_log_append(log, &kb, 1, flags);
    if (base)
        *base = kb.base_offset;
    if (rc == 0 && kb.result != 0)
        return kb.result;
    return rc;
}

/* Build a batch whose sequence numbers are the offsets it will get (seq0 =
 * the log's end offset), append it, and check the assigned offset. */
static inline void tu_append_seq(ks_log *log, int n, unsigned flags)
{
    tu_batch b;
    int64_t end = ks_log_end_offset(log), base = -1;
    tu_build(&b, (uint64_t)end, n);
    int rc = tu_append1(log, &b, flags, &base);
    cr_assert_eq(rc, 0, "append: %s", klog_strerror(rc));
    cr_assert_eq(base, end, "base offset %lld, end was %lld", (long long)base, (long long)end);
    cr_assert_eq(ks_log_end_offset(log), end + n);
    tu_batch_free(&b);
}

/* ---- reading the log back ---------------------------------------------------- */

typedef struct tu_rec {
    int64_t offset;
    int64_t ts;
    uint64_t seq;   /* from the key */
    bool ok;        /* key parsed and value matches seq */
} tu_rec;

typedef struct tu_content {
    tu_rec *r;
    size_t n, cap;
    size_t batches;
    int64_t start, end;   /* the log's, when the read began */
    int err;              /* 0, a klog/errno code, TU_EGAP or TU_EVIEW */
    int64_t err_at;       /* offset being read when err happened */
} tu_content;

static inline void tu_content_free(tu_content *c)
{
    free(c->r);
    memset(c, 0, sizeof *c);
}

/* Decode the batches of one view (no assertions: thread-safe).  *next is the
 * offset the first batch must start at; it advances past each batch. */
static inline int tu_decode_view(const ks_view *v, int64_t *next, tu_content *c)
{
    const uint8_t *p = v->data, *end = v->data + v->len;
    if (v->first_offset != *next)
        return TU_EGAP;
    while (p < end) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(p, (size_t)(end - p), &bi);
        if (len <= 0)
            return len < 0 ? (int)len : TU_EVIEW;
        if (bi.base_offset != *next)
            return TU_EGAP;
        int rc = kf_batch_verify(p, (size_t)len);
        if (rc != 0)
            return rc;
        const uint8_t *recs;
        size_t rlen;
        if ((rc = kf_batch_records(p, (size_t)len, NULL, &recs, &rlen)) != 0)
            return rc;
        kf_iter it;
        kf_record_view r;
        kf_iter_init(&it, &bi, recs, rlen);
        int64_t want = bi.base_offset;
        while ((rc = kf_iter_next(&it, &r)) == 1) {
            if (r.offset != want)
                return TU_EGAP;
            if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 1024;
                tu_rec *nr = realloc(c->r, c->cap * sizeof *nr);
                if (!nr)
                    return -ENOMEM;
                c->r = nr;
            }
            tu_rec *o = &c->r[c->n++];
            o->offset = r.offset;
            o->ts = r.timestamp;
            o->seq = UINT64_MAX;
            o->ok = tu_key_seq(r.key, r.key_len, &o->seq) && r.value &&
                    tu_value_check(r.value, r.value_len, o->seq);
            want++;
        }
        if (rc < 0)
            return rc;
        if (want != kf_batch_last_offset(&bi) + 1)
            return TU_EGAP; /* fewer records than the batch's offsets */
        *next = want;
        c->batches++;
        p += len;
    }
    if (v->next_offset != *next)
        return TU_EVIEW;
    return 0;
}

/* Read [start, end) through views of at most max_bytes (no assertions). */
static inline int tu_read_range(ks_log *log, int64_t from, int64_t to, size_t max_bytes, tu_content *c)
{
    memset(c, 0, sizeof *c);
    c->start = from;
    c->end = to;
    int64_t off = from;
    while (off < to) {
        ks_view v;
        int rc = ks_log_read(log, off, max_bytes, &v);
        if (rc == 0 && v.len == 0)
            rc = TU_EGAP; /* nothing at an offset below the end */
        if (rc == 0)
            rc = tu_decode_view(&v, &off, c);
        ks_view_release(&v);
        if (rc != 0) {
            c->err = rc;
            c->err_at = off;
            return rc;
        }
    }
    return 0;
}

static inline int tu_read_all(ks_log *log, tu_content *c)
{
    return tu_read_range(log, ks_log_start_offset(log), ks_log_end_offset(log), 64 * 1024, c);
}

/* Assert the log reads back cleanly and holds exactly n records with
 * sequence numbers seq[0..n) at offsets start, start+1, ... */
static inline void tu_expect(ks_log *log, const uint64_t *seq, size_t n)
{
    tu_content c;
    int rc = tu_read_all(log, &c);
    cr_assert_eq(rc, 0, "read back failed at offset %lld: %d %s", (long long)c.err_at, rc,
                 rc > 0 ? "(reader check)" : klog_strerror(rc));
    cr_assert_eq(c.n, n, "log holds %zu records, expected %zu", c.n, n);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(c.r[i].offset, c.start + (int64_t)i);
        cr_assert(c.r[i].ok, "record at offset %lld has bad content", (long long)c.r[i].offset);
        cr_assert_eq(c.r[i].seq, seq[i], "offset %lld: seq %llu, expected %llu",
                     (long long)c.r[i].offset, (unsigned long long)c.r[i].seq,
                     (unsigned long long)seq[i]);
    }
    tu_content_free(&c);
}

/* The log holds offsets 0..n-1 and each record's seq is its offset. */
static inline void tu_expect_identity(ks_log *log, int64_t n)
{
    cr_assert_eq(ks_log_start_offset(log), 0);
    cr_assert_eq(ks_log_end_offset(log), n);
    uint64_t *seq = malloc(((size_t)n + 1) * sizeof *seq);
    for (int64_t i = 0; i < n; i++)
        seq[i] = (uint64_t)i;
    tu_expect(log, seq, (size_t)n);
    free(seq);
}

/* ---- opening logs ------------------------------------------------------------ */

static inline ks_log *tu_log_open(kio *io, const char *dir, const ks_log_config *cfg)
{
    ks_log *log = NULL;
    int rc = ks_log_open(&log, io, dir, cfg);
    cr_assert_eq(rc, 0, "ks_log_open %s: %s", dir, klog_strerror(rc));
    cr_assert_not_null(log);
    return log;
}

static inline void tu_log_close(ks_log *log)
{
    int rc = ks_log_close(log);
    cr_assert_eq(rc, 0, "ks_log_close: %s", klog_strerror(rc));
}

/* A config with small segments, so a few dozen batches span several. */
static inline ks_log_config tu_small_cfg(enum ks_durability d)
{
    ks_log_config c;
    ks_log_config_init(&c);
    c.segment_bytes = 4096;
    c.index_interval_bytes = 256;
    c.durability = d;
    return c;
}

/* Test fixtures: scratch root in init, removed in fini.  Each test runs in
 * its own process, so the globals are per test. */
static kio *tu_io;
static inline void tu_setup(void)
{
    tu_mkroot();
    tu_io = tu_io_open();
}
static inline void tu_teardown(void)
{
    kio_close(tu_io);
    tu_io = NULL;
    if (!getenv("KLOG_TEST_KEEP"))
        tu_rmrf(tu_root);
}

/* A scratch root under /dev/shm when there is one (tests that copy and
 * reopen a directory hundreds of times; the crashes are the fault
 * backend's whatever the file system), else tu_root.  shm receives the
 * /dev/shm directory made ("" if none: tu_teardown removes tu_root), to
 * pass to tu_fast_root_free in fini.  Call after tu_setup. */
static inline void tu_fast_root(char shm[TU_PATH], char root[TU_PATH], const char *tag)
{
    struct stat st;
    snprintf(shm, TU_PATH, "/dev/shm/klog-%s-XXXXXX", tag);
    if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && mkdtemp(shm)) {
        snprintf(root, TU_PATH, "%s", shm);
    } else {
        shm[0] = 0;
        snprintf(root, TU_PATH, "%s", tu_root);
    }
}
static inline void tu_fast_root_free(const char *shm)
{
    if (shm[0] && !getenv("KLOG_TEST_KEEP"))
        tu_rmrf(shm);
}

#endif /* KLOG_TEST_STORAGE_UTIL_H */
