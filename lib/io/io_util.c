/*
 * lib/io/io_util.c - helpers the engine core and the backends share: vtable
 * validation, iovec arithmetic, open flags, the fd control ops.
 *
 * Kept apart from io.c (which picks a backend and dispatches to it) so that
 * a backend built outside libklog (the fault backend of libklog-testing)
 * links these and a backend without the engine core: the backends depend on
 * this file, the core on the backends, and nothing points back up.  Pure
 * functions: no state, no allocation, no lock.
 */
#include <fcntl.h>
#include <stdbool.h>

#include "common/common.h"
#include "io/io_internal.h"

int kio__check_methods(const struct kio_methods *m)
{
    if (!m)
        return -EINVAL;
    /* The magic catches a pointer to something that is not a vtable at all;
     * version 0 was never issued. */
    if ((m->version & 0xffff0000u) != KIO_METHODS_MAGIC || (m->version & 0xffffu) == 0)
        return -EINVAL;
    /* The core calls every op of version 1, so it needs all of them. */
    if (m->size < sizeof(struct kio_methods))
        return -EINVAL;
    if (!m->name || !m->name[0])
        return -EINVAL;
    if (!m->open || !m->close || !m->readv || !m->writev_many || !m->datasync ||
        !m->truncate || !m->filesize || !m->rename || !m->unlink || !m->dirsync ||
        !m->mkdir)
        return -EINVAL;
    /* init, fini and control are optional. */
    return 0;
}

size_t kio__iov_len(const struct iovec *iov, int iovcnt)
{
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    return n;
}

int kio__iov_slice(struct iovec *out, const struct iovec *iov, int iovcnt,
                   size_t skip, size_t limit)
{
    int k = 0;
    for (int i = 0; i < iovcnt && limit > 0; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        size_t take = KLOG_MIN(len - skip, limit);
        out[k].iov_base = (char *)iov[i].iov_base + skip;
        out[k].iov_len = take;
        k++;
        limit -= take;
        skip = 0;
    }
    return k;
}

int kio__open_flags(unsigned flags)
{
    const unsigned known = KIO_O_RDWR | KIO_O_CREAT | KIO_O_EXCL | KIO_O_TRUNC | KIO_O_DIRECTORY;
    if (flags & ~known)
        return -EINVAL;
    if (flags & KIO_O_DIRECTORY) {
        /* a directory is opened read-only, for dirsync; nothing else mixes */
        if (flags != KIO_O_DIRECTORY)
            return -EINVAL;
        return O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    }
    int f = O_CLOEXEC | ((flags & KIO_O_RDWR) ? O_RDWR : O_RDONLY);
    if (flags & KIO_O_CREAT)
        f |= O_CREAT;
    if (flags & KIO_O_EXCL)
        f |= O_EXCL;
    if (flags & KIO_O_TRUNC)
        f |= O_TRUNC;
    return f;
}

int kio__fd_control(int op, void *arg)
{
    if (op != KIO_CTL_WRITEBACK || !arg)
        return -ENOTSUP;
    const kio_range *r = arg;
    int rc;
    do
        rc = sync_file_range(r->h, (off64_t)r->off, (off64_t)r->len,
                             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}
