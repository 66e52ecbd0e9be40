/*
 * lib/io/io.h - the I/O engine (contract).
 *
 * Everything klog writes to or reads from disk through the storage layer goes
 * through a `kio` engine.  An engine is a backend (a `struct kio_methods`
 * vtable, in the shape of SQLite's sqlite3_vfs) plus the state the core
 * allocated for it.  Backends shipped:
 *
 *   uring  - io_uring through liburing: writes, linked write+fdatasync,
 *            fdatasync, directory fsync and reads go through rings.
 *   posix  - pwritev / preadv / fdatasync / fsync; used where io_uring cannot
 *            be set up (ENOSYS, EPERM from seccomp, ...) or is switched off.
 *
 * A backend from outside libklog comes in through kio_open_methods: the
 * fault-injecting backend of libklog-testing (lib/testing/io_fault.h), which
 * klog_open takes from klog_conf_set_io_methods, and tests' own wrappers.
 *
 * Threading: every kio_* call is thread-safe and blocking; an engine can be
 * shared by any number of threads.  Calls never call back into klog.
 *
 * Files are named by small integer handles (>= 0) that the backend hands out
 * from open(); for uring and posix they are file descriptors.
 *
 * Buffers: the caller owns every buffer; a call does not keep a pointer to
 * any buffer after it returns.
 *
 * Errors: negative errno values from the system and from io_uring
 * completions are passed through unchanged; a backend from outside may add
 * its own (the fault backend: KLOG_TESTING_ECRASHED after a simulated
 * power cut).
 */
#ifndef KLOG_IO_H
#define KLOG_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct kio kio;

/* open() flags */
enum {
    KIO_O_RDONLY = 0,
    KIO_O_RDWR = 1 << 0,
    KIO_O_CREAT = 1 << 1,
    KIO_O_EXCL = 1 << 2,
    KIO_O_TRUNC = 1 << 3,
    KIO_O_DIRECTORY = 1 << 4, /* open a directory (read-only), for dirsync */
};

/* One write of a vectored batch (see kio_writev_many). */
typedef struct kio_wreq {
    int h;                    /* file handle */
    const struct iovec *iov;  /* caller-owned; not kept after the call */
    int iovcnt;
    uint64_t off;             /* file offset */
} kio_wreq;

/* Flags for kio_writev_many */
enum {
    /* Link an fdatasync of the handle of the LAST request after the writes
     * (IOSQE_IO_LINK on io_uring): the sync never runs ahead of the data and
     * the call returns only when the data is durable. */
    KIO_W_DSYNC = 1 << 0,
};

/* Which backend kio_open picks. */
enum kio_backend {
    KIO_BACKEND_AUTO = 0, /* uring unless refused, switched off by env, or not built */
    KIO_BACKEND_URING = 1,
    KIO_BACKEND_POSIX = 2,
};

/* How the uring backend issues buffered writes. */
enum kio_uring_writes {
    KIO_URING_WRITES_AUTO = 0,   /* ring where the file system completes buffered
                                  * writes without blocking (xfs, btrfs), else
                                  * pwritev inline + ring fdatasync; honours
                                  * $KLOG_IO_URING_WRITES=ring|inline|auto */
    KIO_URING_WRITES_RING = 1,   /* always through the ring (linked write+sync) */
    KIO_URING_WRITES_INLINE = 2, /* always pwritev on the calling thread */
};

typedef struct kio_options {
    enum kio_backend backend; /* KIO_BACKEND_AUTO honours $KLOG_IO_BACKEND=posix|uring */
    unsigned ring_entries;    /* uring: SQ entries per ring; 0 = default (64) */
    unsigned max_rings;       /* uring: rings in the pool; 0 = default (4) */
    enum kio_uring_writes uring_writes;
} kio_options;

/*
 * The backend vtable.  A backend reports how much per-engine state it needs
 * (state_size); the core allocates it zeroed and passes it to every op.
 * init() must leave the state so that fini() is safe even if init failed.
 * New ops are only ever appended; the core checks `size` before calling
 * one that a backend built against an older header may lack.
 *
 * Each op may block; none keeps a buffer pointer past its return; none may
 * call back into klog.  The core retries short writes and short reads: a
 * backend may return fewer bytes than asked.
 */
#define KIO_METHODS_MAGIC 0x4b490000u /* "KI" in the upper half */
#define KIO_METHODS_VERSION (KIO_METHODS_MAGIC | 1u)

struct kio_methods {
    uint32_t version;   /* KIO_METHODS_VERSION */
    uint32_t size;      /* sizeof(struct kio_methods) */
    const char *name;   /* "uring", "posix", "fault", ... */
    size_t state_size;  /* bytes of per-engine state the core allocates */

    int (*init)(void *st, const void *arg);   /* arg: backend-specific */
    void (*fini)(void *st);

    int (*open)(void *st, const char *path, unsigned flags, unsigned mode); /* -> handle */
    int (*close)(void *st, int h);
    /* Returns bytes read (may be short; 0 at EOF) or -errno. */
    ssize_t (*readv)(void *st, int h, const struct iovec *iov, int iovcnt, uint64_t off);
    /* Submit all n writes without waiting between them.  res[i] receives the
     * bytes written by request i (may be short) or -errno.  With KIO_W_DSYNC,
     * an fdatasync of reqs[n-1].h is linked after the writes and the return
     * value is its result.  Returns 0 or -errno (first failure). */
    int (*writev_many)(void *st, const kio_wreq *reqs, unsigned n, ssize_t *res, unsigned flags);
    int (*datasync)(void *st, int h);
    int (*truncate)(void *st, int h, uint64_t len);
    int (*filesize)(void *st, int h, uint64_t *len);
    int (*rename)(void *st, const char *from, const char *to);
    int (*unlink)(void *st, const char *path);
    int (*dirsync)(void *st, const char *dir);  /* open dir, fsync it, close */
    int (*mkdir)(void *st, const char *path, unsigned mode); /* -EEXIST passed through */
    /* Escape hatch; opcodes below.  Returns -ENOTSUP for unknown ones. */
    int (*control)(void *st, int op, void *arg);
};

/* control() opcodes.  0..999 reserved for the core. */
enum {
    KIO_CTL_BACKEND_NAME = 1, /* arg: const char ** */
    KIO_CTL_WRITEBACK = 2,    /* arg: const kio_range *: write the range's dirty
                               * pages back and wait (no sync: no durability) */
    /* 100..199: the fault backend's (lib/testing/io_fault.h) */
};

/* ---- engine lifetime -------------------------------------------------- */

/* Open an engine with a shipped backend.  AUTO tries uring and falls back to
 * posix where io_uring cannot be set up (ENOSYS, EPERM, ENOMEM, ...) or
 * where $KLOG_IO_BACKEND=posix.  URING fails rather than falling back. */
int kio_open(kio **out, const kio_options *opt);
/* Open an engine on any backend (fault backend, a test's own). */
int kio_open_methods(kio **out, const struct kio_methods *m, const void *init_arg);
void kio_close(kio *io);          /* NULL-safe */
const char *kio_name(const kio *io);

const struct kio_methods *kio_uring_methods(void); /* NULL if built without liburing */
const struct kio_methods *kio_posix_methods(void);

/* ---- file operations (thin wrappers: dispatch, retry short I/O, count) -- */

int kio_file_open(kio *io, const char *path, unsigned flags, unsigned mode);
int kio_file_close(kio *io, int h);
/* Read exactly len bytes unless EOF comes first: returns bytes read or -errno. */
ssize_t kio_pread(kio *io, int h, void *buf, size_t len, uint64_t off);
/* Write all of iov at off (short writes retried; no progress -> -EIO). */
int kio_pwritev(kio *io, int h, const struct iovec *iov, int iovcnt, uint64_t off);
/* Write all n requests, queued together; then with KIO_W_DSYNC a linked
 * fdatasync of the last request's handle.  Returns 0 or the first error.
 * On error, *done (if not NULL) receives how many leading requests were
 * written in full. */
int kio_pwritev_many(kio *io, const kio_wreq *reqs, unsigned n, unsigned flags, unsigned *done);
int kio_datasync(kio *io, int h);
int kio_truncate(kio *io, int h, uint64_t len);
int kio_size(kio *io, int h, uint64_t *len);
int kio_rename(kio *io, const char *from, const char *to);
int kio_unlink(kio *io, const char *path);
int kio_dirsync(kio *io, const char *dir);
int kio_mkdir(kio *io, const char *path, unsigned mode);
int kio_control(kio *io, int op, void *arg);

typedef struct kio_range {
    int h;
    uint64_t off, len;
} kio_range;
/* Write back the dirty page-cache pages of [off, off+len) of h and wait
 * (sync_file_range): a scheduling hint, not a durability point.  0, or
 * -ENOTSUP where the backend has no such thing (the fault backend: it
 * models only what a sync makes durable). */
int kio_writeback(kio *io, int h, uint64_t off, uint64_t len);

/* Counters kept by the core for every engine (monotonic, thread-safe reads). */
typedef struct kio_stats {
    uint64_t writes, bytes_written, reads, bytes_read;
    uint64_t syncs, sync_ns_total, sync_ns_max; /* datasync + linked syncs */
} kio_stats;
void kio_get_stats(const kio *io, kio_stats *out);

#endif /* KLOG_IO_H */
