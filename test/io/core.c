/*
 * test/io/core.c - the engine core, against a scripted backend ("mock"):
 * vtable validation, state allocation, init/fini pairing, short-write and
 * short-read retry, the broken-link rule of KIO_W_DSYNC, counters, and
 * kio_open's option checks.
 */
#include "io_test.h"

/* ---- the mock backend: real files underneath, scripted behaviour ---- */

typedef struct mock_cfg {
    size_t max_write;    /* cap on bytes per write request; 0 = none */
    size_t max_read;     /* cap on bytes per readv; 0 = none */
    bool stall;          /* writes make no progress at all */
    int fail_req;        /* request index (per call) to fail with -EIO; -1 none */
    int init_rc;         /* what init returns */
} mock_cfg;

typedef struct mock_st {
    uint8_t zero_check[200]; /* must be zero at init: the core callocs */
    mock_cfg cfg;
    int calls_write, calls_read, calls_sync, linked_syncs;
    char log[256];           /* op letters in order: w, s, l (linked sync) */
    size_t nlog;
} mock_st;

static int g_fini_calls;
static bool g_state_was_zero;

static void mlog(mock_st *m, char c)
{
    if (m->nlog + 1 < sizeof m->log)
        m->log[m->nlog++] = c;
}

static int m_init(void *st, const void *arg)
{
    mock_st *m = st;
    g_state_was_zero = true;
    for (size_t i = 0; i < sizeof *m; i++)
        if (((uint8_t *)st)[i])
            g_state_was_zero = false;
    m->cfg = arg ? *(const mock_cfg *)arg : (mock_cfg){ .fail_req = -1 };
    return m->cfg.init_rc;
}

static void m_fini(void *st) { g_fini_calls++; }

static int m_open(void *st, const char *path, unsigned flags, unsigned mode)
{
    int fd = open(path, O_RDWR | ((flags & KIO_O_CREAT) ? O_CREAT : 0), mode);
    return fd < 0 ? -errno : fd;
}

static int m_close(void *st, int h) { return close(h) < 0 ? -errno : 0; }

static ssize_t m_readv(void *st, int h, const struct iovec *iov, int iovcnt, uint64_t off)
{
    mock_st *m = st;
    m->calls_read++;
    struct iovec v = iov[0];
    if (m->cfg.max_read && v.iov_len > m->cfg.max_read)
        v.iov_len = m->cfg.max_read;
    ssize_t r = preadv(h, &v, 1, (off_t)off);
    return r < 0 ? -errno : r;
}

static int m_datasync(void *st, int h)
{
    mock_st *m = st;
    m->calls_sync++;
    mlog(m, 's');
    return fdatasync(h) < 0 ? -errno : 0;
}

static int m_writev_many(void *st, const kio_wreq *reqs, unsigned n, ssize_t *res, unsigned flags)
{
    mock_st *m = st;
    bool all_full = true;
    int err = 0;
    for (unsigned i = 0; i < n; i++) {
        m->calls_write++;
        mlog(m, 'w');
        if ((int)i == m->cfg.fail_req) {
            res[i] = -EIO;
            err = err ? err : -EIO;
            all_full = false;
            continue;
        }
        size_t len = 0;
        for (int k = 0; k < reqs[i].iovcnt; k++)
            len += reqs[i].iov[k].iov_len;
        size_t cap = m->cfg.stall ? 0 : m->cfg.max_write ? m->cfg.max_write : len;
        /* write at most cap bytes of the request, walking its iovecs */
        size_t put = 0;
        for (int k = 0; k < reqs[i].iovcnt && put < cap; k++) {
            size_t take = reqs[i].iov[k].iov_len;
            if (take > cap - put)
                take = cap - put;
            ssize_t r = pwrite(reqs[i].h, reqs[i].iov[k].iov_base, take, (off_t)(reqs[i].off + put));
            if (r < 0) {
                res[i] = -errno;
                goto next;
            }
            put += (size_t)r;
        }
        res[i] = (ssize_t)put;
        if (put != len)
            all_full = false;
    next:
        if (res[i] < 0) {
            err = err ? err : (int)res[i];
            all_full = false;
        }
    }
    if (err)
        return err;
    if ((flags & KIO_W_DSYNC) && all_full) {
        m->linked_syncs++;
        mlog(m, 'l');
        return fdatasync(reqs[n - 1].h) < 0 ? -errno : 0;
    }
    return 0;
}

static int m_truncate(void *st, int h, uint64_t len) { return ftruncate(h, (off_t)len) < 0 ? -errno : 0; }
static int m_filesize(void *st, int h, uint64_t *len)
{
    struct stat sb;
    if (fstat(h, &sb) < 0)
        return -errno;
    *len = (uint64_t)sb.st_size;
    return 0;
}
static int m_rename(void *st, const char *a, const char *b) { return rename(a, b) < 0 ? -errno : 0; }
static int m_unlink(void *st, const char *p) { return unlink(p) < 0 ? -errno : 0; }
static int m_dirsync(void *st, const char *d) { return 0; }
static int m_mkdir(void *st, const char *p, unsigned mode) { return mkdir(p, mode) < 0 ? -errno : 0; }

static const struct kio_methods mock_methods = {
    .version = KIO_METHODS_VERSION,
    .size = sizeof(struct kio_methods),
    .name = "mock",
    .state_size = sizeof(mock_st),
    .init = m_init,
    .fini = m_fini,
    .open = m_open,
    .close = m_close,
    .readv = m_readv,
    .writev_many = m_writev_many,
    .datasync = m_datasync,
    .truncate = m_truncate,
    .filesize = m_filesize,
    .rename = m_rename,
    .unlink = m_unlink,
    .dirsync = m_dirsync,
    .mkdir = m_mkdir,
};

/* The engine's state is opaque; the mock records into it, and the test
 * reaches it through this pointer, captured at init. */
static mock_st *g_mock;
static int m_init_capture(void *st, const void *arg)
{
    g_mock = st;
    return m_init(st, arg);
}

static void setup(void)
{
    t_setup();
    g_fini_calls = 0;
    g_mock = NULL;
}
TestSuite(core, .init = setup, .fini = t_teardown, .timeout = 60);

static kio *open_mock(const mock_cfg *cfg)
{
    static struct kio_methods m;
    m = mock_methods;
    m.init = m_init_capture;
    kio *io = NULL;
    cr_assert_eq(kio_open_methods(&io, &m, cfg), 0);
    cr_assert_not_null(g_mock);
    return io;
}

/* ---- vtable validation ------------------------------------------------ */

static void expect_rejected(const struct kio_methods *m, const char *why)
{
    kio *io = (kio *)0x1;
    cr_assert_eq(kio_open_methods(&io, m, NULL), -EINVAL, "%s accepted", why);
    cr_assert_null(io, "%s: *out not cleared", why);
    kio_close(io);
}

Test(core, bad_vtables_rejected)
{
    struct kio_methods m;
    expect_rejected(NULL, "NULL");
    m = mock_methods; m.version = 1;                         expect_rejected(&m, "no magic");
    m = mock_methods; m.version = 0x12340001u;               expect_rejected(&m, "wrong magic");
    m = mock_methods; m.version = KIO_METHODS_MAGIC;         expect_rejected(&m, "version 0");
    m = mock_methods; m.size = sizeof m - sizeof(void *);    expect_rejected(&m, "short size");
    m = mock_methods; m.name = NULL;                         expect_rejected(&m, "no name");
    m = mock_methods; m.writev_many = NULL;                  expect_rejected(&m, "no writev_many");
    m = mock_methods; m.readv = NULL;                        expect_rejected(&m, "no readv");
    m = mock_methods; m.mkdir = NULL;                        expect_rejected(&m, "no mkdir");
    m = mock_methods; m.datasync = NULL;                     expect_rejected(&m, "no datasync");
    cr_assert_eq(g_fini_calls, 0, "fini of a backend never initialised");
    cr_assert_eq(kio_open_methods(NULL, &mock_methods, NULL), -EINVAL);

    /* a newer minor version with a larger struct is accepted */
    m = mock_methods; m.version = KIO_METHODS_MAGIC | 2u;
    kio *io = NULL;
    cr_assert_eq(kio_open_methods(&io, &m, NULL), 0);
    kio_close(io);
    cr_assert_eq(g_fini_calls, 1);
}

Test(core, state_is_zeroed_and_fini_runs_after_failed_init)
{
    kio *io = NULL;
    mock_cfg cfg = { .fail_req = -1, .init_rc = -ENOMEM };
    g_state_was_zero = false;
    cr_assert_eq(kio_open_methods(&io, &mock_methods, &cfg), -ENOMEM);
    cr_assert(g_state_was_zero);
    cr_assert_null(io);
    cr_assert_eq(g_fini_calls, 1, "fini must run after a failed init");
    kio_close(NULL); /* NULL-safe */
    cr_assert_null(kio_name(NULL));
}

/* ---- retry ------------------------------------------------------------ */

Test(core, short_writes_are_completed)
{
    mock_cfg cfg = { .max_write = 7, .fail_req = -1 };
    kio *io = open_mock(&cfg);
    int h = kio_file_open(io, t_path(g_dir, "f"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h, 0);
    uint8_t w[1000];
    t_fill(w, sizeof w, 7, 0);
    struct iovec v[4] = { { w, 3 }, { w + 3, 500 }, { w + 503, 0 }, { w + 503, 497 } };
    cr_assert_eq(kio_pwritev(io, h, v, 4, 10), 0);
    cr_assert_geq(g_mock->calls_write, 1000 / 7);
    size_t n;
    uint8_t *f = t_slurp(t_path(g_dir, "f"), &n);
    cr_assert_eq(n, 1010);
    cr_assert_arr_eq(f + 10, w, 1000);
    free(f);
    kio_stats st;
    kio_get_stats(io, &st);
    cr_assert_eq(st.writes, 1);
    cr_assert_eq(st.bytes_written, 1000);
    kio_file_close(io, h);
    kio_close(io);
}

Test(core, no_progress_is_EIO)
{
    mock_cfg cfg = { .stall = true, .fail_req = -1 };
    kio *io = open_mock(&cfg);
    int h = kio_file_open(io, t_path(g_dir, "f"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    uint8_t w[10] = { 1 };
    struct iovec v = { w, sizeof w };
    cr_assert_eq(kio_pwritev(io, h, &v, 1, 0), -EIO);
    unsigned done = 9;
    kio_wreq r[2] = { { h, &v, 1, 0 }, { h, &v, 1, 10 } };
    cr_assert_eq(kio_pwritev_many(io, r, 2, KIO_W_DSYNC, &done), -EIO);
    cr_assert_eq(done, 0);
    cr_assert_eq(g_mock->calls_sync + g_mock->linked_syncs, 0, "sync after failed writes");
    kio_file_close(io, h);
    kio_close(io);
}

/* A short write breaks the link: the core must complete the writes and only
 * then sync, once. */
Test(core, dsync_after_short_write_syncs_after_completion)
{
    mock_cfg cfg = { .max_write = 600, .fail_req = -1 };
    kio *io = open_mock(&cfg);
    int h = kio_file_open(io, t_path(g_dir, "f"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    uint8_t w[2000];
    t_fill(w, sizeof w, 8, 0);
    struct iovec v[2] = { { w, 1000 }, { w + 1000, 1000 } };
    kio_wreq r[2] = { { h, &v[0], 1, 0 }, { h, &v[1], 1, 1000 } };
    unsigned done = 0;
    cr_assert_eq(kio_pwritev_many(io, r, 2, KIO_W_DSYNC, &done), 0);
    cr_assert_eq(done, 2);
    cr_assert_eq(g_mock->linked_syncs, 0);
    cr_assert_eq(g_mock->calls_sync, 1);
    cr_assert_eq(g_mock->log[g_mock->nlog - 1], 's', "sync is not last: %.*s",
                 (int)g_mock->nlog, g_mock->log);
    size_t n;
    uint8_t *f = t_slurp(t_path(g_dir, "f"), &n);
    cr_assert_eq(n, 2000);
    cr_assert_arr_eq(f, w, 2000);
    free(f);
    kio_stats st;
    kio_get_stats(io, &st);
    cr_assert_eq(st.syncs, 1);
    cr_assert_eq(st.writes, 2);
    kio_file_close(io, h);
    kio_close(io);
}

Test(core, linked_sync_used_when_writes_are_whole)
{
    kio *io = open_mock(NULL);
    int h = kio_file_open(io, t_path(g_dir, "f"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    uint8_t w[100] = { 0 };
    struct iovec v = { w, sizeof w };
    kio_wreq r[3] = { { h, &v, 1, 0 }, { h, &v, 1, 100 }, { h, &v, 1, 200 } };
    cr_assert_eq(kio_pwritev_many(io, r, 3, KIO_W_DSYNC, NULL), 0);
    cr_assert_eq(g_mock->linked_syncs, 1);
    cr_assert_eq(g_mock->calls_sync, 0);
    cr_assert_str_eq(g_mock->log, "wwwl");
    kio_stats st;
    kio_get_stats(io, &st);
    cr_assert_eq(st.syncs, 1);
    kio_file_close(io, h);
    kio_close(io);
}

Test(core, failed_request_sets_done)
{
    mock_cfg cfg = { .fail_req = 2 };
    kio *io = open_mock(&cfg);
    int h = kio_file_open(io, t_path(g_dir, "f"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    uint8_t w[10] = { 0 };
    struct iovec v = { w, sizeof w };
    kio_wreq r[4] = { { h, &v, 1, 0 }, { h, &v, 1, 10 }, { h, &v, 1, 20 }, { h, &v, 1, 30 } };
    unsigned done = 0;
    cr_assert_eq(kio_pwritev_many(io, r, 4, KIO_W_DSYNC, &done), -EIO);
    cr_assert_eq(done, 2);
    cr_assert_eq(g_mock->linked_syncs + g_mock->calls_sync, 0);
    kio_stats st;
    kio_get_stats(io, &st);
    cr_assert_eq(st.writes, 2);
    cr_assert_eq(st.syncs, 0);
    kio_file_close(io, h);
    kio_close(io);
}

Test(core, pread_loops_until_len_or_eof)
{
    mock_cfg cfg = { .max_read = 3, .fail_req = -1 };
    kio *io = open_mock(&cfg);
    uint8_t w[100];
    t_fill(w, sizeof w, 9, 0);
    t_write_file(t_path(g_dir, "f"), w, sizeof w);
    int h = kio_file_open(io, t_path(g_dir, "f"), KIO_O_RDWR, 0);
    uint8_t r[200];
    cr_assert_eq(kio_pread(io, h, r, 50, 0), 50);
    cr_assert_arr_eq(r, w, 50);
    cr_assert_geq(g_mock->calls_read, 17);
    cr_assert_eq(kio_pread(io, h, r, 200, 20), 80);
    cr_assert_arr_eq(r, w + 20, 80);
    kio_stats st;
    kio_get_stats(io, &st);
    cr_assert_eq(st.reads, 2);
    cr_assert_eq(st.bytes_read, 130);
    kio_file_close(io, h);
    kio_close(io);
}

Test(core, control_and_stats)
{
    kio *io = open_mock(NULL);
    cr_assert_str_eq(kio_name(io), "mock");
    const char *name = NULL;
    cr_assert_eq(kio_control(io, KIO_CTL_BACKEND_NAME, &name), 0);
    cr_assert_str_eq(name, "mock");
    cr_assert_eq(kio_control(io, 4242, NULL), -ENOTSUP);
    /* the fault helpers on an engine that is not a fault engine */
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 1, -EIO, 0), -ENOTSUP);
    cr_assert_eq(kio_fault_crash(io, KIO_CRASH_DROP, 0, 1), -ENOTSUP);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_ALL), 0);
    int h = kio_file_open(io, t_path(g_dir, "f"), KIO_O_RDWR | KIO_O_CREAT, 0644);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(kio_datasync(io, h), 0);
    kio_stats st;
    kio_get_stats(io, &st);
    cr_assert_eq(st.syncs, 3);
    cr_assert_gt(st.sync_ns_max, 0);
    cr_assert_geq(st.sync_ns_total, st.sync_ns_max);
    kio_get_stats(NULL, &st);
    cr_assert_eq(st.syncs, 0);
    kio_file_close(io, h);
    kio_close(io);
}

/* ---- kio_open --------------------------------------------------------- */

Test(core, open_rejects_bad_options)
{
    kio *io = NULL;
    cr_assert_eq(kio_open(&io, &(kio_options){ .backend = 7 }), -EINVAL);
    cr_assert_null(io);
    /* bad ring options are errors even under AUTO, not a silent fallback */
    cr_assert_eq(kio_open(&io, &(kio_options){ .ring_entries = 1 }), -EINVAL);
    cr_assert_eq(kio_open(&io, &(kio_options){ .max_rings = 5000 }), -EINVAL);
    cr_assert_eq(kio_open(NULL, NULL), -EINVAL);
    /* defaults work */
    cr_assert_eq(kio_open(&io, NULL), 0);
    cr_assert_not_null(io);
    kio_close(io);
    cr_assert_not_null(kio_posix_methods());
    cr_assert_not_null(kio_fault_methods());
#if KLOG_HAVE_URING
    cr_assert_not_null(kio_uring_methods());
#else
    cr_assert_null(kio_uring_methods());
#endif
}

Test(core, fault_rejects_bad_base)
{
    struct kio_methods bad = mock_methods;
    bad.version = 0;
    kio_fault_init fi = { .base = &bad };
    kio *io = NULL;
    cr_assert_eq(kio_open_methods(&io, kio_fault_methods(), &fi), -EINVAL);
    cr_assert_null(io);
    /* and a good one passes the base's init argument through */
    mock_cfg cfg = { .init_rc = -EPERM, .fail_req = -1 };
    kio_fault_init fi2 = { .base = &mock_methods, .base_arg = &cfg };
    cr_assert_eq(kio_open_methods(&io, kio_fault_methods(), &fi2), -EPERM);
    cr_assert_eq(g_fini_calls, 1);
}
