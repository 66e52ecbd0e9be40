/*
 * lib/testing/testing.c - klog/testing.h: the fault backend behind the
 * public API, in libklog-testing.
 *
 * A klog_testing_fault is a kio_fault_disk (io_fault.h) over the posix
 * backend, plus the kio_fault_init that klog_open hands the fault backend's
 * init (through klog_conf_set_io_methods, the one hook libklog has for
 * this).  The public constants are the internal ones under other names; the
 * static assertions below keep them equal.
 */
#include <stdlib.h>

#include <klog/testing.h>

#include "common/common.h"
#include "testing/io_fault.h"

#define SAME(a, b) ((int)(a) == (int)(b))
_Static_assert(SAME(KLOG_TESTING_OP_OPEN, KIO_OP_OPEN) && SAME(KLOG_TESTING_OP_WRITE, KIO_OP_WRITE) &&
                   SAME(KLOG_TESTING_OP_READ, KIO_OP_READ) && SAME(KLOG_TESTING_OP_SYNC, KIO_OP_SYNC) &&
                   SAME(KLOG_TESTING_OP_TRUNCATE, KIO_OP_TRUNCATE) &&
                   SAME(KLOG_TESTING_OP_RENAME, KIO_OP_RENAME) && SAME(KLOG_TESTING_OP_UNLINK, KIO_OP_UNLINK) &&
                   SAME(KLOG_TESTING_OP_DIRSYNC, KIO_OP_DIRSYNC) && SAME(KLOG_TESTING_OP_MKDIR, KIO_OP_MKDIR) &&
                   SAME(KLOG_TESTING_OP_ALL, KIO_OP_ALL),
               "operation classes");
_Static_assert(SAME(KLOG_TESTING_FAIL_SHORT, KIO_FAULT_SHORT) && SAME(KLOG_TESTING_FAIL_STICKY, KIO_FAULT_STICKY),
               "failure flags");
_Static_assert(SAME(KLOG_TESTING_CRASH_DROP, KIO_CRASH_DROP) && SAME(KLOG_TESTING_CRASH_PREFIX, KIO_CRASH_PREFIX) &&
                   SAME(KLOG_TESTING_CRASH_GARBAGE, KIO_CRASH_GARBAGE) &&
                   SAME(KLOG_TESTING_CRASH_ZERO, KIO_CRASH_ZERO) && SAME(KLOG_TESTING_CRASH_RANDOM, KIO_CRASH_RANDOM) &&
                   SAME(KLOG_TESTING_CRASH_HOLES, KIO_CRASH_HOLES) &&
                   SAME(KLOG_TESTING_CRASH_LOSE_DIRENTS, KIO_CRASH_LOSE_DIRENTS) &&
                   SAME(KLOG_TESTING_CRASH_TORN, KIO_CRASH_TORN) &&
                   SAME(KLOG_TESTING_CRASH_INFLIGHT, KIO_CRASH_INFLIGHT),
               "crash modes");
_Static_assert(KLOG_TESTING_ECRASHED < KLOG_ERR_FIRST, "outside klog's public band");

struct klog_testing_fault {
    kio_fault_disk *disk;
    kio_fault_init init; /* what klog_open passes the fault backend's init */
};

KLOG_API int klog_testing_fault_new(klog_testing_fault **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    klog_testing_fault *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    int rc = kio_fault_disk_new(&f->disk, NULL, NULL);
    if (rc < 0) {
        free(f);
        return rc;
    }
    f->init.disk = f->disk;
    *out = f;
    return 0;
}

KLOG_API void klog_testing_fault_free(klog_testing_fault *f)
{
    if (!f)
        return;
    kio_fault_disk_unref(f->disk); /* an attached engine holds its own reference */
    free(f);
}

KLOG_API int klog_testing_conf_set_fault(klog_conf *conf, klog_testing_fault *f)
{
    if (!conf)
        return -EINVAL;
    return f ? klog_conf_set_io_methods(conf, kio_fault_methods(), &f->init)
             : klog_conf_set_io_methods(conf, NULL, NULL);
}

KLOG_API int klog_testing_fault_fail(klog_testing_fault *f, unsigned ops, uint64_t nth, int err,
                                     unsigned flags)
{
    if (!f)
        return -EINVAL;
    kio_fault_rule r = { ops, nth, err, flags };
    return kio_fault_disk_arm(f->disk, &r);
}

KLOG_API int klog_testing_fault_clear(klog_testing_fault *f)
{
    return f ? kio_fault_disk_clear(f->disk) : -EINVAL;
}

KLOG_API int klog_testing_fault_crash_at(klog_testing_fault *f, unsigned ops, uint64_t nth,
                                         enum klog_testing_crash_mode mode, unsigned flags, uint64_t seed)
{
    if (!f)
        return -EINVAL;
    kio_crash_rule r = { ops, nth, { (enum kio_crash_mode)mode, flags, seed } };
    return kio_fault_disk_crash_at(f->disk, &r);
}

KLOG_API int klog_testing_fault_crash(klog_testing_fault *f, enum klog_testing_crash_mode mode,
                                      unsigned flags, uint64_t seed)
{
    if (!f)
        return -EINVAL;
    kio_crash c = { (enum kio_crash_mode)mode, flags, seed };
    return kio_fault_disk_crash(f->disk, &c);
}

KLOG_API int klog_testing_fault_crashed(klog_testing_fault *f)
{
    return f ? kio_fault_disk_crashed(f->disk) : -EINVAL;
}

KLOG_API int klog_testing_fault_reboot(klog_testing_fault *f)
{
    return f ? kio_fault_disk_reboot(f->disk) : -EINVAL;
}

KLOG_API uint64_t klog_testing_fault_ops(klog_testing_fault *f, unsigned ops)
{
    return f ? kio_fault_disk_ops(f->disk, ops) : 0;
}
