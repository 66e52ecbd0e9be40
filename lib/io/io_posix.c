/*
 * lib/io/io_posix.c - the posix backend: plain syscalls, one at a time.
 *
 * Used where io_uring cannot be set up (old kernel, seccomp, memlock limits)
 * or is switched off with $KLOG_IO_BACKEND=posix.  Stateless: handles are
 * file descriptors and every op is a syscall on the calling thread, so the
 * backend is thread-safe without a lock.  Semantics match the uring backend,
 * including the link rule of writev_many (see io_internal.h).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "io/io_internal.h"

/* Retry a syscall interrupted by a signal; any other failure is -errno. */
#define RETRY_EINTR(expr)                                                      \
    ({                                                                         \
        __typeof__(expr) r_;                                                   \
        do {                                                                   \
            r_ = (expr);                                                       \
        } while (r_ < 0 && errno == EINTR);                                    \
        r_ < 0 ? (__typeof__(expr))-errno : r_;                                \
    })

static int px_open(void *st, const char *path, unsigned flags, unsigned mode)
{
    int f = kio__open_flags(flags);
    if (f < 0)
        return f;
    return RETRY_EINTR(open(path, f, (mode_t)mode));
}

static int px_close(void *st, int h)
{
    /* Linux closes the descriptor even when close() reports EINTR; retrying
     * could close someone else's freshly opened descriptor. */
    if (close(h) < 0 && errno != EINTR)
        return -errno;
    return 0;
}

static ssize_t px_readv(void *st, int h, const struct iovec *iov, int iovcnt, uint64_t off)
{
    return RETRY_EINTR(preadv(h, iov, iovcnt, (off_t)off));
}

static int px_datasync(void *st, int h)
{
    return RETRY_EINTR(fdatasync(h));
}

static int px_writev_many(void *st, const kio_wreq *reqs, unsigned n, ssize_t *res, unsigned flags)
{
    int first_err = 0;
    bool all_full = true;
    for (unsigned i = 0; i < n; i++) {
        const kio_wreq *r = &reqs[i];
        res[i] = RETRY_EINTR(pwritev(r->h, r->iov, r->iovcnt, (off_t)r->off));
        if (res[i] < 0) {
            if (!first_err)
                first_err = (int)res[i];
            all_full = false;
        } else if ((size_t)res[i] != kio__iov_len(r->iov, r->iovcnt)) {
            all_full = false;
        }
    }
    if (first_err)
        return first_err;
    /* As on io_uring, a short write breaks the link: no sync; the core
     * completes the writes and syncs after. */
    if ((flags & KIO_W_DSYNC) && n > 0 && all_full)
        return px_datasync(st, reqs[n - 1].h);
    return 0;
}

static int px_truncate(void *st, int h, uint64_t len)
{
    return RETRY_EINTR(ftruncate(h, (off_t)len));
}

static int px_filesize(void *st, int h, uint64_t *len)
{
    struct stat sb;
    if (fstat(h, &sb) < 0)
        return -errno;
    *len = (uint64_t)sb.st_size;
    return 0;
}

static int px_rename(void *st, const char *from, const char *to)
{
    return rename(from, to) < 0 ? -errno : 0;
}

static int px_unlink(void *st, const char *path)
{
    return unlink(path) < 0 ? -errno : 0;
}

static int px_dirsync(void *st, const char *dir)
{
    int fd = RETRY_EINTR(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd < 0)
        return fd;
    int rc = RETRY_EINTR(fsync(fd));
    close(fd);
    return rc;
}

static int px_mkdir(void *st, const char *path, unsigned mode)
{
    return mkdir(path, (mode_t)mode) < 0 ? -errno : 0;
}

static int px_control(void *st, int op, void *arg)
{
    (void)st;
    return kio__fd_control(op, arg);
}

static const struct kio_methods posix_methods = {
    .version = KIO_METHODS_VERSION,
    .size = sizeof(struct kio_methods),
    .name = "posix",
    .state_size = 0,
    .open = px_open,
    .close = px_close,
    .readv = px_readv,
    .writev_many = px_writev_many,
    .datasync = px_datasync,
    .truncate = px_truncate,
    .filesize = px_filesize,
    .rename = px_rename,
    .unlink = px_unlink,
    .dirsync = px_dirsync,
    .mkdir = px_mkdir,
    .control = px_control,
};

const struct kio_methods *kio_posix_methods(void)
{
    return &posix_methods;
}
