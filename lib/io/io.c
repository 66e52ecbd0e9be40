/*
 * lib/io/io.c - the engine core: backend selection, vtable validation,
 * dispatch, short-I/O retry and counters.
 *
 * The core owns the backend's state block (allocated zeroed, state_size
 * bytes) and the counters; it holds no lock of its own.  Every wrapper is a
 * straight call into the backend, which is what makes the engine as
 * thread-safe as its backend (all shipped ones are).  The only work the core
 * adds is on the slow path: completing short writes and reads, which a
 * backend is allowed to return at any time.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "klog_config.h"
#include "common/common.h"
#include "io/io_internal.h"

struct kio {
    const struct kio_methods *m;
    void *st;                   /* m->state_size bytes, owned by the engine */
    bool inited;                /* init() was called (fini() is due) */
    /* Counters: relaxed atomics; readers get each field consistent on its
     * own, not a snapshot across fields. */
    atomic_uint_fast64_t writes, bytes_written, reads, bytes_read;
    atomic_uint_fast64_t syncs, sync_ns_total, sync_ns_max;
};

/* ---- engine lifetime --------------------------------------------------- */

int kio_open_methods(kio **out, const struct kio_methods *m, const void *init_arg)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int rc = kio__check_methods(m);
    if (rc < 0)
        return rc;
    kio *io = calloc(1, sizeof *io);
    if (!io)
        return -ENOMEM;
    io->m = m;
    /* calloc(1, 0) may return NULL or a unique pointer; ask for one byte so
     * that NULL always means out of memory. */
    io->st = calloc(1, m->state_size ? m->state_size : 1);
    if (!io->st) {
        free(io);
        return -ENOMEM;
    }
    io->inited = true;
    if (m->init && (rc = m->init(io->st, init_arg)) < 0) {
        kio_close(io); /* init leaves the state so that fini is safe */
        return rc;
    }
    *out = io;
    return 0;
}

static const char *env_backend(void)
{
    const char *e = getenv("KLOG_IO_BACKEND");
    return e && e[0] ? e : NULL;
}

int kio_open(kio **out, const kio_options *opt)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    kio_options o = opt ? *opt : (kio_options){ 0 };
    /* Options are checked whatever the backend: a bad value must not be
     * hidden by AUTO falling back to posix. */
    if (o.ring_entries == 1 || o.ring_entries > 32768 || o.max_rings > 1024)
        return -EINVAL;
    enum kio_backend b = o.backend;
    bool fallback = false;
    if (b == KIO_BACKEND_AUTO) {
        const char *e = env_backend();
        if (!e) {
            b = KIO_BACKEND_URING;
            fallback = true;
        } else if (strcmp(e, "posix") == 0) {
            b = KIO_BACKEND_POSIX;
        } else if (strcmp(e, "uring") == 0) {
            /* asked for by name: a refusal is an error, as with URING */
            b = KIO_BACKEND_URING;
        } else {
            return -EINVAL; /* a typo must not silently pick a backend */
        }
    }
    switch (b) {
    case KIO_BACKEND_URING: {
        const struct kio_methods *um = kio_uring_methods();
        if (!um)
            return fallback ? kio_open_methods(out, kio_posix_methods(), NULL) : -ENOTSUP;
        /* uring init creates the first ring, so a kernel or seccomp policy
         * that refuses io_uring is found out here and not on the first
         * write. */
        int rc = kio_open_methods(out, um, &o);
        if (rc < 0 && fallback)
            rc = kio_open_methods(out, kio_posix_methods(), NULL);
        return rc;
    }
    case KIO_BACKEND_POSIX:
        return kio_open_methods(out, kio_posix_methods(), NULL);
    default:
        return -EINVAL;
    }
}

void kio_close(kio *io)
{
    if (!io)
        return;
    if (io->inited && io->m->fini)
        io->m->fini(io->st);
    free(io->st);
    free(io);
}

const char *kio_name(const kio *io)
{
    return io ? io->m->name : NULL;
}

/* ---- counters ---------------------------------------------------------- */

static void count_sync(kio *io, uint64_t t0)
{
    uint64_t dt = klog__now_ns() - t0;
    atomic_fetch_add_explicit(&io->syncs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&io->sync_ns_total, dt, memory_order_relaxed);
    uint_fast64_t cur = atomic_load_explicit(&io->sync_ns_max, memory_order_relaxed);
    while (dt > cur &&
           !atomic_compare_exchange_weak_explicit(&io->sync_ns_max, &cur, dt,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static void count_write(kio *io, uint64_t nreq, uint64_t bytes)
{
    atomic_fetch_add_explicit(&io->writes, nreq, memory_order_relaxed);
    atomic_fetch_add_explicit(&io->bytes_written, bytes, memory_order_relaxed);
}

void kio_get_stats(const kio *io, kio_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!io)
        return;
    /* The atomics are only read; the cast drops const for C11's
     * atomic_load, which takes a non-const pointer in older libcs. */
    kio *w = (kio *)io;
    out->writes = atomic_load_explicit(&w->writes, memory_order_relaxed);
    out->bytes_written = atomic_load_explicit(&w->bytes_written, memory_order_relaxed);
    out->reads = atomic_load_explicit(&w->reads, memory_order_relaxed);
    out->bytes_read = atomic_load_explicit(&w->bytes_read, memory_order_relaxed);
    out->syncs = atomic_load_explicit(&w->syncs, memory_order_relaxed);
    out->sync_ns_total = atomic_load_explicit(&w->sync_ns_total, memory_order_relaxed);
    out->sync_ns_max = atomic_load_explicit(&w->sync_ns_max, memory_order_relaxed);
}

/* ---- file operations --------------------------------------------------- */

int kio_file_open(kio *io, const char *path, unsigned flags, unsigned mode)
{
    if (!io || !path)
        return -EINVAL;
    return io->m->open(io->st, path, flags, mode);
}

int kio_file_close(kio *io, int h)
{
    if (!io)
        return -EINVAL;
    return io->m->close(io->st, h);
}

ssize_t kio_pread(kio *io, int h, void *buf, size_t len, uint64_t off)
{
    if (!io || (!buf && len))
        return -EINVAL;
    if (len > SSIZE_MAX)
        return -EINVAL;
    size_t got = 0;
    while (got < len) {
        struct iovec iov = { (char *)buf + got, len - got };
        ssize_t r = io->m->readv(io->st, h, &iov, 1, off + got);
        if (r < 0)
            return r;
        if (r == 0)
            break; /* EOF */
        if ((size_t)r > len - got)
            return -EIO; /* a backend that claims more than asked is broken */
        got += (size_t)r;
    }
    atomic_fetch_add_explicit(&io->reads, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&io->bytes_read, got, memory_order_relaxed);
    return (ssize_t)got;
}

/*
 * Finish request r, of which `have` bytes (of total `len`) are written, one
 * backend call per remaining piece.  Slow path: only after a short write.
 * Returns 0 or -errno; a call that writes nothing is -EIO (a backend that
 * keeps returning 0 would otherwise spin forever).
 */
static int finish_write(kio *io, const kio_wreq *r, size_t have, size_t len)
{
    struct iovec stackv[8];
    struct iovec *v = stackv;
    if (r->iovcnt > (int)KLOG_ARRAY_LEN(stackv)) {
        v = malloc(sizeof *v * (size_t)r->iovcnt);
        if (!v)
            return -ENOMEM;
    }
    int rc = 0;
    while (have < len) {
        int cnt = kio__iov_slice(v, r->iov, r->iovcnt, have, len - have);
        kio_wreq rest = { r->h, v, cnt, r->off + have };
        ssize_t res = 0;
        int brc = io->m->writev_many(io->st, &rest, 1, &res, 0);
        if (res < 0 || (brc < 0 && res == 0)) {
            rc = res < 0 ? (int)res : brc;
            break;
        }
        if (res == 0 || (size_t)res > len - have) {
            rc = -EIO;
            break;
        }
        have += (size_t)res;
        count_write(io, 0, (uint64_t)res);
    }
    if (v != stackv)
        free(v);
    return rc;
}

int kio_pwritev_many(kio *io, const kio_wreq *reqs, unsigned n, unsigned flags, unsigned *done)
{
    if (done)
        *done = 0;
    if (!io || (!reqs && n) || (flags & ~(unsigned)KIO_W_DSYNC))
        return -EINVAL;
    if (n == 0)
        return 0;
    ssize_t stackres[64]; /* the storage layer's largest group: no malloc */
    ssize_t *res = stackres;
    if (n > KLOG_ARRAY_LEN(stackres)) {
        res = malloc(sizeof *res * n);
        if (!res)
            return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++)
        res[i] = -EIO; /* a backend that forgets one must not look like success */
    bool dsync = flags & KIO_W_DSYNC;
    uint64_t t0 = dsync ? klog__now_ns() : 0; /* only syncs are timed */
    int brc = io->m->writev_many(io->st, reqs, n, res, flags);

    /* Walk the results in order: complete short requests, stop at the first
     * failure.  Requests after a failure may have landed too (they were in
     * flight together); the caller only learns how many leading ones are
     * whole, which is all it can use. */
    int rc = 0;
    bool all_full_first_try = true;
    unsigned i = 0;
    uint64_t bytes = 0;
    for (; i < n; i++) {
        size_t len = kio__iov_len(reqs[i].iov, reqs[i].iovcnt);
        if (res[i] >= 0 && (size_t)res[i] == len) {
            bytes += (uint64_t)res[i];
            continue;
        }
        all_full_first_try = false;
        if (res[i] < 0) {
            rc = (int)res[i];
            break;
        }
        if ((size_t)res[i] > len) {
            rc = -EIO;
            break;
        }
        bytes += (uint64_t)res[i];
        if ((rc = finish_write(io, &reqs[i], (size_t)res[i], len)) < 0)
            break;
    }
    count_write(io, i, bytes);
    if (done)
        *done = i;
    if (rc == 0 && dsync) {
        if (all_full_first_try) {
            /* the backend ran the linked sync: brc is its result; the
             * latency counted is the whole call's, which is what the
             * caller waited for durability */
            rc = brc;
        } else {
            /* the link was broken by a short write; sync now, after all
             * the data is in */
            rc = io->m->datasync(io->st, reqs[n - 1].h);
        }
        count_sync(io, t0);
    }
    if (res != stackres)
        free(res);
    return rc;
}

int kio_pwritev(kio *io, int h, const struct iovec *iov, int iovcnt, uint64_t off)
{
    if (!io || (!iov && iovcnt) || iovcnt < 0)
        return -EINVAL;
    kio_wreq r = { h, iov, iovcnt, off };
    return kio_pwritev_many(io, &r, 1, 0, NULL);
}

int kio_datasync(kio *io, int h)
{
    if (!io)
        return -EINVAL;
    uint64_t t0 = klog__now_ns();
    int rc = io->m->datasync(io->st, h);
    count_sync(io, t0);
    return rc;
}

int kio_truncate(kio *io, int h, uint64_t len)
{
    if (!io)
        return -EINVAL;
    if (len > (uint64_t)INT64_MAX)
        return -EINVAL;
    return io->m->truncate(io->st, h, len);
}

int kio_size(kio *io, int h, uint64_t *len)
{
    if (!io || !len)
        return -EINVAL;
    return io->m->filesize(io->st, h, len);
}

int kio_rename(kio *io, const char *from, const char *to)
{
    if (!io || !from || !to)
        return -EINVAL;
    return io->m->rename(io->st, from, to);
}

int kio_unlink(kio *io, const char *path)
{
    if (!io || !path)
        return -EINVAL;
    return io->m->unlink(io->st, path);
}

int kio_dirsync(kio *io, const char *dir)
{
    if (!io || !dir)
        return -EINVAL;
    return io->m->dirsync(io->st, dir);
}

int kio_mkdir(kio *io, const char *path, unsigned mode)
{
    if (!io || !path)
        return -EINVAL;
    return io->m->mkdir(io->st, path, mode);
}

int kio_control(kio *io, int op, void *arg)
{
    if (!io)
        return -EINVAL;
    int rc = io->m->control ? io->m->control(io->st, op, arg) : -ENOTSUP;
    /* The core answers the name query for backends that do not. */
    if (rc == -ENOTSUP && op == KIO_CTL_BACKEND_NAME && arg) {
        *(const char **)arg = io->m->name;
        rc = 0;
    }
    return rc;
}

int kio_writeback(kio *io, int h, uint64_t off, uint64_t len)
{
    kio_range r = { h, off, len };
    return kio_control(io, KIO_CTL_WRITEBACK, &r);
}

