/*
 * test/io/fault.c - injected failures of the fault backend: the nth op of a
 * class fails with EIO or ENOSPC (write, linked sync, datasync, rename,
 * dirsync, ...), sticky rules, short writes completed by the core's retry,
 * op counters.  Each test runs over posix and over uring.
 */
#include "io_test.h"

TestSuite(fault, .init = t_setup, .fini = t_teardown, .timeout = 120);

static kio *open_fault(bool uring)
{
    return t_open(uring ? TB_FAULT_URING : TB_FAULT_POSIX);
}

static int new_file(kio *io, const char *name)
{
    int h = kio_file_open(io, t_path(g_dir, name), KIO_O_RDWR | KIO_O_CREAT, 0644);
    cr_assert_geq(h, 0, "open %s: %s", name, klog_strerror(h));
    return h;
}

static void nth_write(bool uring, int err)
{
    kio *io = open_fault(uring);
    int h = new_file(io, "w");
    uint8_t b[4][100];
    for (int i = 0; i < 4; i++)
        memset(b[i], 'a' + i, 100);
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 3, err, 0), 0);
    struct iovec v;
    for (int i = 0; i < 4; i++) {
        v = (struct iovec){ b[i], 100 };
        int rc = kio_pwritev(io, h, &v, 1, (uint64_t)i * 100);
        cr_assert_eq(rc, i == 2 ? err : 0, "write %d: %s", i, klog_strerror(rc));
    }
    uint8_t r[400];
    cr_assert_eq(kio_pread(io, h, r, 400, 0), 400);
    cr_assert_arr_eq(r, b[0], 100);
    cr_assert_arr_eq(r + 100, b[1], 100);
    for (int i = 200; i < 300; i++)
        cr_assert_eq(r[i], 0, "failed write landed at %d", i);
    cr_assert_arr_eq(r + 300, b[3], 100);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_WRITE), 4);
    kio_file_close(io, h);
    kio_close(io);
}

Test(fault, nth_write_eio_posix) { nth_write(false, -EIO); }
Test(fault, nth_write_enospc_posix) { nth_write(false, -ENOSPC); }
Test(fault, nth_write_eio_uring) { nth_write(true, -EIO); }
Test(fault, nth_write_enospc_uring) { nth_write(true, -ENOSPC); }

/* In a batch, each request is one op: the 3rd fails, done says 2, the sync
 * linked behind is not reported as its error. */
static void batch_write(bool uring)
{
    kio *io = open_fault(uring);
    int h = new_file(io, "b");
    uint8_t b[100] = { 7 };
    struct iovec v = { b, sizeof b };
    kio_wreq r[5];
    for (int i = 0; i < 5; i++)
        r[i] = (kio_wreq){ h, &v, 1, (uint64_t)i * 100 };
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 3, -ENOSPC, 0), 0);
    unsigned done = 0;
    cr_assert_eq(kio_pwritev_many(io, r, 5, KIO_W_DSYNC, &done), -ENOSPC);
    cr_assert_eq(done, 2);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_SYNC), 0, "the linked sync ran after a failed write");
    /* rule spent: the same batch goes through now */
    cr_assert_eq(kio_pwritev_many(io, r, 5, KIO_W_DSYNC, &done), 0);
    cr_assert_eq(done, 5);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_SYNC), 1);
    kio_file_close(io, h);
    kio_close(io);
}

Test(fault, batch_write_posix) { batch_write(false); }
Test(fault, batch_write_uring) { batch_write(true); }

static void sync_fail(bool uring, int err)
{
    kio *io = open_fault(uring);
    int h = new_file(io, "s");
    uint8_t b[100] = { 1 };
    t_put(io, h, b, sizeof b, 0);
    cr_assert_eq(kio_fault_arm(io, KIO_OP_SYNC, 2, err, 0), 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    cr_assert_eq(kio_datasync(io, h), err);
    cr_assert_eq(kio_datasync(io, h), 0);
    /* the linked sync of KIO_W_DSYNC is a sync op too: every write landed
     * (done == n), the sync's error comes back */
    cr_assert_eq(kio_fault_arm(io, KIO_OP_SYNC, 1, err, 0), 0);
    struct iovec v = { b, sizeof b };
    kio_wreq r[2] = { { h, &v, 1, 100 }, { h, &v, 1, 200 } };
    unsigned done = 0;
    cr_assert_eq(kio_pwritev_many(io, r, 2, KIO_W_DSYNC, &done), err);
    cr_assert_eq(done, 2);
    uint64_t sz;
    cr_assert_eq(kio_size(io, h, &sz), 0);
    cr_assert_eq(sz, 300);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_SYNC), 4);
    kio_file_close(io, h);
    kio_close(io);
}

Test(fault, sync_eio_posix) { sync_fail(false, -EIO); }
Test(fault, sync_enospc_posix) { sync_fail(false, -ENOSPC); }
Test(fault, sync_eio_uring) { sync_fail(true, -EIO); }
Test(fault, sync_enospc_uring) { sync_fail(true, -ENOSPC); }

static void namespace_fail(bool uring, int err)
{
    kio *io = open_fault(uring);
    int h = new_file(io, "a");
    kio_file_close(io, h);
    cr_assert_eq(kio_fault_arm(io, KIO_OP_RENAME, 1, err, 0), 0);
    cr_assert_eq(kio_rename(io, t_path(g_dir, "a"), t_path(g_dir, "b")), err);
    cr_assert(t_exists(t_path(g_dir, "a")), "failed rename moved the file");
    cr_assert_eq(kio_rename(io, t_path(g_dir, "a"), t_path(g_dir, "b")), 0);

    cr_assert_eq(kio_fault_arm(io, KIO_OP_DIRSYNC, 2, err, 0), 0);
    cr_assert_eq(kio_dirsync(io, g_dir), 0);
    cr_assert_eq(kio_dirsync(io, g_dir), err);
    cr_assert_eq(kio_dirsync(io, g_dir), 0);

    cr_assert_eq(kio_fault_arm(io, KIO_OP_UNLINK | KIO_OP_MKDIR, 1, err, 0), 0);
    cr_assert_eq(kio_unlink(io, t_path(g_dir, "b")), err);
    cr_assert(t_exists(t_path(g_dir, "b")));
    cr_assert_eq(kio_mkdir(io, t_path(g_dir, "d"), 0755), 0, "rule is spent");
    cr_assert_eq(kio_fault_arm(io, KIO_OP_OPEN | KIO_OP_TRUNCATE | KIO_OP_READ, 2, err, 0), 0);
    h = kio_file_open(io, t_path(g_dir, "b"), KIO_O_RDWR, 0);
    cr_assert_geq(h, 0);
    cr_assert_eq(kio_truncate(io, h, 0), err);
    uint8_t x;
    cr_assert_eq(kio_pread(io, h, &x, 1, 0), 0);
    kio_file_close(io, h);

    cr_assert_eq(kio_fault_ops(io, KIO_OP_RENAME), 2);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_DIRSYNC), 3);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_UNLINK | KIO_OP_MKDIR), 2);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_OPEN), 2);
    kio_close(io);
}

Test(fault, namespace_eio_posix) { namespace_fail(false, -EIO); }
Test(fault, namespace_enospc_posix) { namespace_fail(false, -ENOSPC); }
Test(fault, namespace_eio_uring) { namespace_fail(true, -EIO); }
Test(fault, namespace_enospc_uring) { namespace_fail(true, -ENOSPC); }

static void sticky(bool uring)
{
    kio *io = open_fault(uring);
    int h = new_file(io, "s");
    uint8_t b[10] = { 0 };
    struct iovec v = { b, sizeof b };
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE | KIO_OP_SYNC, 2, -ENOSPC, KIO_FAULT_STICKY), 0);
    cr_assert_eq(kio_pwritev(io, h, &v, 1, 0), 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(kio_pwritev(io, h, &v, 1, 0), -ENOSPC);
        cr_assert_eq(kio_datasync(io, h), -ENOSPC);
    }
    cr_assert_eq(kio_fault_clear(io), 0);
    cr_assert_eq(kio_pwritev(io, h, &v, 1, 0), 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    kio_file_close(io, h);
    kio_close(io);
}

Test(fault, sticky_posix) { sticky(false); }
Test(fault, sticky_uring) { sticky(true); }

/* A short write returns half; the core writes the rest: the data is whole. */
static void short_write(bool uring)
{
    kio *io = open_fault(uring);
    int h = new_file(io, "s");
    uint8_t w[10000];
    t_fill(w, sizeof w, 11, 0);
    struct iovec v[3] = { { w, 1234 }, { w + 1234, 5000 }, { w + 6234, 3766 } };
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 1, 0, KIO_FAULT_SHORT), 0);
    cr_assert_eq(kio_pwritev(io, h, v, 3, 0), 0);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_WRITE), 2, "one short write, one retry");
    size_t n;
    uint8_t *f = t_slurp(t_path(g_dir, "s"), &n);
    cr_assert_eq(n, sizeof w);
    cr_assert_arr_eq(f, w, n);
    free(f);

    /* in a linked batch: the second request is cut short, the link is
     * broken, the core completes it and syncs after */
    t_fill(w, sizeof w, 12, 0);
    kio_wreq r[2] = { { h, &v[0], 1, 0 }, { h, &v[1], 2, 1234 } };
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 2, 0, KIO_FAULT_SHORT), 0);
    uint64_t syncs0 = kio_fault_ops(io, KIO_OP_SYNC);
    unsigned done = 0;
    cr_assert_eq(kio_pwritev_many(io, r, 2, KIO_W_DSYNC, &done), 0);
    cr_assert_eq(done, 2);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_SYNC), syncs0 + 1);
    f = t_slurp(t_path(g_dir, "s"), &n);
    cr_assert_arr_eq(f, w, sizeof w);
    free(f);

    /* sticky short: halves forever until nothing moves -> EIO */
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 1, 0, KIO_FAULT_SHORT | KIO_FAULT_STICKY), 0);
    cr_assert_eq(kio_pwritev(io, h, v, 1, 0), -EIO);
    cr_assert_eq(kio_fault_clear(io), 0);

    /* short reads: kio_pread still returns everything */
    cr_assert_eq(kio_fault_arm(io, KIO_OP_READ, 1, 0, KIO_FAULT_SHORT | KIO_FAULT_STICKY), 0);
    uint8_t rb[10000];
    cr_assert_eq(kio_pread(io, h, rb, sizeof rb, 0), (ssize_t)sizeof rb);
    cr_assert_arr_eq(rb, w, sizeof w);
    kio_file_close(io, h);
    kio_close(io);
}

Test(fault, short_write_posix) { short_write(false); }
Test(fault, short_write_uring) { short_write(true); }

Test(fault, rule_validation_and_counts)
{
    kio *io = open_fault(false);
    cr_assert_eq(kio_fault_arm(io, 0, 1, -EIO, 0), -EINVAL);
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 0, -EIO, 0), -EINVAL);
    cr_assert_eq(kio_fault_arm(io, 1u << 20, 1, -EIO, 0), -EINVAL);
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 1, EIO, 0), -EINVAL);
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 1, -EIO, 1u << 9), -EINVAL);
    cr_assert_eq(kio_control(io, KIO_CTL_FAULT_COUNT, NULL), -EINVAL);
    int h = new_file(io, "c");
    uint8_t b[4] = { 0 };
    for (int i = 0; i < 3; i++)
        t_put(io, h, b, sizeof b, 0);
    cr_assert_eq(kio_datasync(io, h), 0);
    cr_assert_eq(kio_pread(io, h, b, sizeof b, 0), 4);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_OPEN), 1);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_WRITE), 3);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_SYNC), 1);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_READ), 1);
    cr_assert_eq(kio_fault_ops(io, KIO_OP_ALL), 6);
    /* two rules at once, each counting from its own arming */
    cr_assert_eq(kio_fault_arm(io, KIO_OP_WRITE, 2, -EIO, 0), 0);
    cr_assert_eq(kio_fault_arm(io, KIO_OP_SYNC, 1, -ENOSPC, 0), 0);
    struct iovec v = { b, sizeof b };
    cr_assert_eq(kio_pwritev(io, h, &v, 1, 0), 0);
    cr_assert_eq(kio_datasync(io, h), -ENOSPC);
    cr_assert_eq(kio_pwritev(io, h, &v, 1, 0), -EIO);
    cr_assert_eq(kio_pwritev(io, h, &v, 1, 0), 0);
    const char *name = NULL;
    cr_assert_eq(kio_control(io, KIO_CTL_BACKEND_NAME, &name), 0);
    cr_assert_str_eq(name, "posix");
    cr_assert_str_eq(kio_name(io), "fault");
    kio_file_close(io, h);
    kio_close(io);
}
