/*
 * lib/io/io_internal.h - what the parts of lib/io share with each other and
 * nothing else does.
 *
 * Backend contract, beyond what io.h says about struct kio_methods, as the
 * shipped backends implement it and the core (io.c) relies on it:
 *
 *   writev_many with KIO_W_DSYNC runs the sync only if every write was
 *   written in full, as io_uring does with a link (a short write breaks the
 *   chain).  If a write failed, the return value is the first write error,
 *   never the -ECANCELED of the sync.  If writes were only short, the return
 *   value is 0 and the core, seeing the short counts in res[], completes the
 *   writes and then syncs on its own.  So: all res[i] complete => the return
 *   value is the sync's result.
 *
 *   init arguments: uring takes a `const kio_options *` (NULL = defaults),
 *   posix takes nothing; the fault backend of lib/testing a `const
 *   kio_fault_init *` (NULL = over posix).
 *
 * lib/testing (libklog-testing) includes this header too: its fault
 * backend links io_util.c and io_posix.c, not the engine core.
 */
#ifndef KLOG_IO_INTERNAL_H
#define KLOG_IO_INTERNAL_H

#include "io/io.h"

/* Defaults of kio_options. */
#define KIO_DEFAULT_RING_ENTRIES 64u
#define KIO_DEFAULT_MAX_RINGS 4u

/* 0 if m is a usable vtable (magic, size, required ops), else -EINVAL.
 * Shared by the core and by the fault backend, which drives its base
 * backend's vtable directly.  (io_util.c, as the helpers below.) */
int kio__check_methods(const struct kio_methods *m);

/* Total bytes of an iovec array (no overflow check: the kernel rejects
 * totals past SSIZE_MAX with -EINVAL anyway). */
size_t kio__iov_len(const struct iovec *iov, int iovcnt);

/*
 * Write into out[] the part of iov[0..iovcnt) that starts `skip` bytes in and
 * is at most `limit` bytes long; returns the number of entries (0 if nothing
 * is left).  The result never has more than iovcnt entries, so `out` sized
 * to iovcnt always suffices.  out points into the caller's buffers.
 */
int kio__iov_slice(struct iovec *out, const struct iovec *iov, int iovcnt,
                   size_t skip, size_t limit);

/* Map KIO_O_* to open(2) flags; -EINVAL for unknown bits. */
int kio__open_flags(unsigned flags);
/* control() for backends whose handles are file descriptors: answers
 * KIO_CTL_WRITEBACK (sync_file_range), -ENOTSUP for the rest. */
int kio__fd_control(int op, void *arg);

#endif /* KLOG_IO_INTERNAL_H */
