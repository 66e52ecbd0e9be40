/*
 * test/io/conformance.c - one suite, every backend: uring, posix, the fault
 * backend over each (with no rule armed it must be invisible), and AUTO
 * (which is posix when run as conformance_posix with KLOG_IO_BACKEND=posix).
 */
#include "io_test.h"



/* open, write, read back, size, datasync, close, reopen read-only */
static void t_basic(enum t_backend b)
{
    kio *io = t_open(b);
    const char *p = t_path(g_dir, "a");
    int h = kio_file_open(io, p, KIO_O_RDWR | KIO_O_CREAT | KIO_O_EXCL, 0644);
    cr_assert_geq(h, 0, "open: %s", klog_strerror(h));
    uint8_t w[10000], r[10000];
    t_fill(w, sizeof w, 1, 0);
    t_put(io, h, w, 6000, 0);
    t_put(io, h, w + 6000, 4000, 6000);
    uint64_t sz = 0;
    cr_assert_eq(kio_size(io, h, &sz), 0);
    cr_assert_eq(sz, 10000);
    cr_assert_eq(kio_pread(io, h, r, sizeof r, 0), (ssize_t)sizeof r);
    cr_assert_arr_eq(r, w, sizeof w);
    cr_assert_eq(kio_datasync(io, h), 0);
    cr_assert_eq(kio_file_close(io, h), 0);

    h = kio_file_open(io, p, KIO_O_RDONLY, 0);
    cr_assert_geq(h, 0);
    memset(r, 0, sizeof r);
    cr_assert_eq(kio_pread(io, h, r, 3000, 7000), 3000);
    cr_assert_arr_eq(r, w + 7000, 3000);
    cr_assert_eq(kio_file_close(io, h), 0);

    /* and the bytes are on the file system, as plain read sees them */
    size_t n;
    uint8_t *f = t_slurp(p, &n);
    cr_assert_eq(n, sizeof w);
    cr_assert_arr_eq(f, w, n);
    free(f);
    kio_close(io);
}

/* vectored writes, several iovecs per request, and a zero-length write */
static void t_iovecs(enum t_backend b)
{
    kio *io = t_open(b);
    int h = kio_file_open(io, t_path(g_dir, "v"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h, 0);
    uint8_t w[4096];
    t_fill(w, sizeof w, 2, 0);
    struct iovec v[5] = { { w, 1 }, { w + 1, 1000 }, { w + 1001, 0 }, { w + 1001, 3000 }, { w + 4001, 95 } };
    cr_assert_eq(kio_pwritev(io, h, v, 5, 0), 0);
    cr_assert_eq(kio_pwritev(io, h, v, 0, 4096), 0); /* nothing, no error */
    uint8_t r[4096];
    cr_assert_eq(kio_pread(io, h, r, sizeof r, 0), 4096);
    cr_assert_arr_eq(r, w, sizeof w);
    uint64_t sz;
    cr_assert_eq(kio_size(io, h, &sz), 0);
    cr_assert_eq(sz, 4096);
    kio_file_close(io, h);
    kio_close(io);
}

static void t_truncate(enum t_backend b)
{
    kio *io = t_open(b);
    int h = kio_file_open(io, t_path(g_dir, "t"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h, 0);
    uint8_t w[8192];
    t_fill(w, sizeof w, 3, 0);
    t_put(io, h, w, sizeof w, 0);
    cr_assert_eq(kio_truncate(io, h, 100), 0);
    uint64_t sz;
    cr_assert_eq(kio_size(io, h, &sz), 0);
    cr_assert_eq(sz, 100);
    cr_assert_eq(kio_truncate(io, h, 5000), 0); /* grows with zeros */
    cr_assert_eq(kio_size(io, h, &sz), 0);
    cr_assert_eq(sz, 5000);
    uint8_t r[5000];
    cr_assert_eq(kio_pread(io, h, r, sizeof r, 0), 5000);
    cr_assert_arr_eq(r, w, 100);
    for (int i = 100; i < 5000; i++)
        cr_assert_eq(r[i], 0, "byte %d", i);
    cr_assert_eq(kio_datasync(io, h), 0);
    kio_file_close(io, h);

    /* KIO_O_TRUNC on open */
    h = kio_file_open(io, t_path(g_dir, "t"), KIO_O_RDWR | KIO_O_TRUNC, 0);
    cr_assert_geq(h, 0);
    cr_assert_eq(kio_size(io, h, &sz), 0);
    cr_assert_eq(sz, 0);
    kio_file_close(io, h);
    kio_close(io);
}

/* mkdir, create inside, dirsync, rename (fresh and over an existing file),
 * unlink */
static void t_namespace(enum t_backend b)
{
    kio *io = t_open(b);
    const char *sub = t_path(g_dir, "sub");
    cr_assert_eq(kio_mkdir(io, sub, 0755), 0);
    cr_assert_eq(kio_mkdir(io, sub, 0755), -EEXIST);
    cr_assert_eq(kio_dirsync(io, g_dir), 0);
    char a[4200], bb[4200], c[4200];
    snprintf(a, sizeof a, "%s/a", sub);
    snprintf(bb, sizeof bb, "%s/b", sub);
    snprintf(c, sizeof c, "%s/c", sub);
    int h = kio_file_open(io, a, KIO_O_RDWR | KIO_O_CREAT | KIO_O_EXCL, 0644);
    cr_assert_geq(h, 0);
    t_put(io, h, "hello", 5, 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    cr_assert_eq(kio_file_close(io, h), 0);
    cr_assert_eq(kio_dirsync(io, sub), 0);

    cr_assert_eq(kio_rename(io, a, bb), 0);
    cr_assert(!t_exists(a));
    cr_assert(t_exists(bb));
    t_write_file(c, "old", 3);
    cr_assert_eq(kio_rename(io, bb, c), 0); /* replaces c */
    cr_assert(!t_exists(bb));
    size_t n;
    uint8_t *f = t_slurp(c, &n);
    cr_assert_eq(n, 5);
    cr_assert_arr_eq(f, "hello", 5);
    free(f);
    cr_assert_eq(kio_dirsync(io, sub), 0);

    cr_assert_eq(kio_unlink(io, c), 0);
    cr_assert(!t_exists(c));
    cr_assert_eq(kio_dirsync(io, sub), 0);
    cr_assert_eq(t_count_entries(sub), 0);

    /* a directory handle, as dirsync callers may keep one */
    h = kio_file_open(io, sub, KIO_O_DIRECTORY, 0);
    cr_assert_geq(h, 0);
    cr_assert_eq(kio_file_close(io, h), 0);
    kio_close(io);
}

/* Many requests to one file in one call, more than a ring holds. */
static void many_same(enum t_backend b, unsigned flags, unsigned n)
{
    kio *io = t_open(b);
    int h = kio_file_open(io, t_path(g_dir, "m"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h, 0);
    const size_t chunk = 1000;
    uint8_t *w = malloc(chunk * n);
    t_fill(w, chunk * n, 4 + flags, 0);
    kio_wreq *req = calloc(n, sizeof *req);
    struct iovec *v = calloc(2 * n, sizeof *v);
    for (unsigned i = 0; i < n; i++) {
        /* two iovecs each, and submitted in reverse offset order */
        unsigned k = n - 1 - i;
        v[2 * i] = (struct iovec){ w + k * chunk, 300 };
        v[2 * i + 1] = (struct iovec){ w + k * chunk + 300, chunk - 300 };
        req[i] = (kio_wreq){ h, &v[2 * i], 2, (uint64_t)k * chunk };
    }
    unsigned done = 12345;
    int rc = kio_pwritev_many(io, req, n, flags, &done);
    cr_assert_eq(rc, 0, "writev_many: %s", klog_strerror(rc));
    cr_assert_eq(done, n);
    uint8_t *r = malloc(chunk * n);
    cr_assert_eq(kio_pread(io, h, r, chunk * n, 0), (ssize_t)(chunk * n));
    cr_assert_arr_eq(r, w, chunk * n);
    kio_stats st;
    kio_get_stats(io, &st);
    cr_assert_eq(st.writes, n);
    cr_assert_eq(st.bytes_written, chunk * n);
    cr_assert_eq(st.syncs, (flags & KIO_W_DSYNC) ? 1u : 0u);
    kio_file_close(io, h);
    kio_close(io);
    free(w);
    free(r);
    free(req);
    free(v);
}

/* Requests spread over several files, interleaved; the sync is of the last
 * request's file. */
static void many_files(enum t_backend b, unsigned flags)
{
    kio *io = t_open(b);
    enum { F = 6, PER = 25, SZ = 512 };
    int h[F];
    for (int i = 0; i < F; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%d", i);
        h[i] = kio_file_open(io, t_path(g_dir, name), KIO_O_RDWR | KIO_O_CREAT, 0644);
        cr_assert_geq(h[i], 0);
    }
    static uint8_t w[F][PER * SZ];
    kio_wreq req[F * PER];
    struct iovec v[F * PER];
    unsigned n = 0;
    for (int j = 0; j < PER; j++) {
        for (int i = 0; i < F; i++) {
            t_fill(w[i] + j * SZ, SZ, 100 + i, (uint64_t)j * SZ);
            v[n] = (struct iovec){ w[i] + j * SZ, SZ };
            req[n] = (kio_wreq){ h[i], &v[n], 1, (uint64_t)j * SZ };
            n++;
        }
    }
    unsigned done = 0;
    cr_assert_eq(kio_pwritev_many(io, req, n, flags, &done), 0);
    cr_assert_eq(done, n);
    for (int i = 0; i < F; i++) {
        uint8_t r[PER * SZ];
        cr_assert_eq(kio_pread(io, h[i], r, sizeof r, 0), (ssize_t)sizeof r);
        cr_assert_arr_eq(r, w[i], sizeof r, "file %d", i);
        kio_file_close(io, h[i]);
    }
    kio_close(io);
}

static void t_many(enum t_backend b)
{
    many_same(b, 0, 10);
    t_teardown(); t_setup();
    many_same(b, KIO_W_DSYNC, 10);
    t_teardown(); t_setup();
    many_same(b, 0, 300);          /* > 64 SQ entries: the ring refills */
    t_teardown(); t_setup();
    many_same(b, KIO_W_DSYNC, 300);
    t_teardown(); t_setup();
    many_same(b, KIO_W_DSYNC, 1);
    t_teardown(); t_setup();
    many_files(b, 0);
    t_teardown(); t_setup();
    many_files(b, KIO_W_DSYNC);
}

static void t_short_read(enum t_backend b)
{
    kio *io = t_open(b);
    int h = kio_file_open(io, t_path(g_dir, "s"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h, 0);
    uint8_t w[100], r[200];
    t_fill(w, sizeof w, 5, 0);
    t_put(io, h, w, sizeof w, 0);
    cr_assert_eq(kio_pread(io, h, r, 200, 50), 50);
    cr_assert_arr_eq(r, w + 50, 50);
    cr_assert_eq(kio_pread(io, h, r, 200, 100), 0);
    cr_assert_eq(kio_pread(io, h, r, 200, 1u << 30), 0);
    cr_assert_eq(kio_pread(io, h, r, 0, 0), 0);
    kio_stats st;
    kio_get_stats(io, &st);
    cr_assert_eq(st.bytes_read, 50);
    kio_file_close(io, h);
    kio_close(io);
}

static void t_errors(enum t_backend b)
{
    kio *io = t_open(b);
    uint8_t buf[16] = { 0 };
    struct iovec v = { buf, sizeof buf };
    cr_assert_eq(kio_file_open(io, t_path(g_dir, "nope"), KIO_O_RDWR, 0), -ENOENT);
    cr_assert_eq(kio_file_open(io, t_path(g_dir, "no/such/dir"), KIO_O_RDWR | KIO_O_CREAT, 0644), -ENOENT);
    cr_assert_eq(kio_rename(io, t_path(g_dir, "nope"), t_path(g_dir, "x")), -ENOENT);
    cr_assert_eq(kio_unlink(io, t_path(g_dir, "nope")), -ENOENT);
    cr_assert_eq(kio_dirsync(io, t_path(g_dir, "nope")), -ENOENT);
    cr_assert_eq(kio_mkdir(io, t_path(g_dir, "no/such"), 0755), -ENOENT);
    cr_assert_eq(kio_file_open(io, g_dir, KIO_O_RDWR, 0), -EISDIR);
    cr_assert_eq(kio_file_open(io, g_dir, 1u << 20, 0), -EINVAL);

    int h = kio_file_open(io, t_path(g_dir, "e"), KIO_O_RDWR | KIO_O_CREAT | KIO_O_EXCL, 0644);
    cr_assert_geq(h, 0);
    cr_assert_eq(kio_file_open(io, t_path(g_dir, "e"), KIO_O_RDWR | KIO_O_CREAT | KIO_O_EXCL, 0644), -EEXIST);
    t_put(io, h, buf, sizeof buf, 0);
    cr_assert_eq(kio_file_close(io, h), 0);

    /* a read-only handle refuses writes */
    h = kio_file_open(io, t_path(g_dir, "e"), KIO_O_RDONLY, 0);
    cr_assert_geq(h, 0);
    cr_assert_eq(kio_pwritev(io, h, &v, 1, 0), -EBADF);
    cr_assert_eq(kio_file_close(io, h), 0);

    /* a handle that is not open: everything says EBADF */
    int bad = 1 << 20; /* far above any descriptor this process has */
    uint64_t sz;
    cr_assert_eq(kio_pread(io, bad, buf, sizeof buf, 0), -EBADF);
    cr_assert_eq(kio_pwritev(io, bad, &v, 1, 0), -EBADF);
    cr_assert_eq(kio_datasync(io, bad), -EBADF);
    cr_assert_eq(kio_truncate(io, bad, 0), -EBADF);
    cr_assert_eq(kio_size(io, bad, &sz), -EBADF);

    /* in a batch: the failing request is reported, the ones before count */
    h = kio_file_open(io, t_path(g_dir, "e"), KIO_O_RDWR, 0);
    cr_assert_geq(h, 0);
    kio_wreq req[4] = { { h, &v, 1, 0 }, { h, &v, 1, 16 }, { bad, &v, 1, 0 }, { h, &v, 1, 32 } };
    unsigned done = 99;
    cr_assert_eq(kio_pwritev_many(io, req, 4, 0, &done), -EBADF);
    cr_assert_eq(done, 2);
    done = 99;
    cr_assert_eq(kio_pwritev_many(io, req, 4, KIO_W_DSYNC, &done), -EBADF);
    cr_assert_eq(done, 2);
    /* the bad one last, linked to the sync: the write's error, not
     * -ECANCELED of the sync */
    kio_wreq req2[2] = { { h, &v, 1, 0 }, { bad, &v, 1, 0 } };
    cr_assert_eq(kio_pwritev_many(io, req2, 2, KIO_W_DSYNC, &done), -EBADF);
    cr_assert_eq(done, 1);
    cr_assert_eq(kio_file_close(io, h), 0);

    /* A sync that really fails: /dev/null takes writes at any offset but
     * has no fsync (-EINVAL).  The linked sync's error is the result, and
     * every write is reported done. */
    h = kio_file_open(io, "/dev/null", KIO_O_RDWR, 0);
    cr_assert_geq(h, 0);
    kio_wreq dn[3] = { { h, &v, 1, 0 }, { h, &v, 1, 16 }, { h, &v, 1, 32 } };
    done = 0;
    cr_assert_eq(kio_pwritev_many(io, dn, 3, KIO_W_DSYNC, &done), -EINVAL);
    cr_assert_eq(done, 3);
    cr_assert_eq(kio_pwritev_many(io, dn, 3, 0, &done), 0);
    cr_assert_eq(kio_datasync(io, h), -EINVAL);
    cr_assert_eq(kio_file_close(io, h), 0);
    cr_assert_eq(kio_dirsync(io, "/dev/null"), -ENOTDIR);

    /* the core's own argument checks */
    cr_assert_eq(kio_pwritev_many(io, req, 1, 1u << 7, NULL), -EINVAL);
    cr_assert_eq(kio_size(io, 0, NULL), -EINVAL);
    cr_assert_eq(kio_control(io, 999, NULL), -ENOTSUP);
    const char *name = NULL;
    cr_assert_eq(kio_control(io, KIO_CTL_BACKEND_NAME, &name), 0);
    cr_assert_not_null(name);
    kio_close(io);
}

/* A single large write (many pages, several iovecs) and its stats. */
static void t_large(enum t_backend b)
{
    kio *io = t_open(b);
    int h = kio_file_open(io, t_path(g_dir, "L"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h, 0);
    size_t n = 4u << 20;
    uint8_t *w = malloc(n), *r = malloc(n);
    t_fill(w, n, 6, 0);
    struct iovec v[4];
    for (int i = 0; i < 4; i++)
        v[i] = (struct iovec){ w + (size_t)i * (n / 4), n / 4 };
    kio_wreq req = { h, v, 4, 0 };
    cr_assert_eq(kio_pwritev_many(io, &req, 1, KIO_W_DSYNC, NULL), 0);
    cr_assert_eq(kio_pread(io, h, r, n, 0), (ssize_t)n);
    cr_assert(memcmp(r, w, n) == 0);
    kio_stats st;
    kio_get_stats(io, &st);
    cr_assert_eq(st.writes, 1);
    cr_assert_eq(st.bytes_written, n);
    cr_assert_eq(st.reads, 1);
    cr_assert_eq(st.bytes_read, n);
    cr_assert_eq(st.syncs, 1);
    cr_assert_gt(st.sync_ns_total, 0);
    cr_assert_leq(st.sync_ns_max, st.sync_ns_total);
    kio_file_close(io, h);
    kio_close(io);
    free(w);
    free(r);
}

static void t_name(enum t_backend b)
{
    kio *io = t_open(b);
    const char *want[] = { "uring", "posix", "fault", "fault", NULL };
    if (want[b])
        cr_assert_str_eq(kio_name(io), want[b]);
    else
        cr_assert(strcmp(kio_name(io), "uring") == 0 || strcmp(kio_name(io), "posix") == 0);
    kio_close(io);
}

#define CONFORMANCE(S, B)                                                      \
    TestSuite(S, .init = t_setup, .fini = t_teardown, .timeout = 120);         \
    Test(S, basic) { t_basic(B); }                                             \
    Test(S, iovecs) { t_iovecs(B); }                                           \
    Test(S, truncate) { t_truncate(B); }                                       \
    Test(S, namespace) { t_namespace(B); }                                     \
    Test(S, writev_many) { t_many(B); }                                        \
    Test(S, short_read_at_eof) { t_short_read(B); }                            \
    Test(S, errors_passed_through) { t_errors(B); }                            \
    Test(S, large_write) { t_large(B); }                                       \
    Test(S, name) { t_name(B); }

CONFORMANCE(uring, TB_URING)
CONFORMANCE(posix, TB_POSIX)
CONFORMANCE(fault_posix, TB_FAULT_POSIX)
CONFORMANCE(fault_uring, TB_FAULT_URING)
CONFORMANCE(auto, TB_AUTO)
