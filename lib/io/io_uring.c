/*
 * lib/io/io_uring.c - the io_uring backend (liburing).
 *
 * Writes, fdatasync, directory fsync and reads go through rings; open,
 * close, rename, unlink, mkdir, ftruncate and fstat are plain syscalls
 * (io_uring would only add a round trip to them).
 *
 * Ring pool.  An engine keeps up to max_rings rings, created lazily (the
 * first at init, so that a kernel or seccomp policy refusing io_uring shows
 * up at kio_open and AUTO can fall back).  An operation takes a free ring
 * for its whole duration: it submits its SQEs and reaps exactly its own
 * CQEs, so no completion ever has to be routed to another thread, and an
 * fdatasync waiting on one ring does not hold up a write on another.  When
 * every ring is taken and the pool is full, callers wait on the condvar.
 * Invariant: a ring handed back to the pool has no SQE queued and no
 * request in flight.  If that cannot be guaranteed (a submission failed for
 * good with SQEs still queued), the ring is destroyed instead and its slot
 * recreated on demand.
 */
#include "klog_config.h"

#include "io/io_internal.h"

#if KLOG_HAVE_URING

#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <stdatomic.h>
#include <unistd.h>

#include "common/common.h"

typedef struct ur_ring {
    struct io_uring ring;
    unsigned cq_cap;  /* CQ entries: bound on requests in flight */
    bool broken;      /* destroy instead of returning to the pool */
} ur_ring;

typedef enum { SLOT_EMPTY = 0, SLOT_CREATING, SLOT_FREE, SLOT_BUSY } slot_state;

#define UR_FD_BITS 65536

typedef struct ur_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool lock_ok;           /* mu and cv initialised (fini must know) */
    unsigned entries;       /* SQ entries per ring */
    unsigned max;           /* rings allowed alive: max_rings, lowered if the
                             * kernel refuses to create more */
    unsigned setup_flags;   /* io_uring_setup flags the kernel accepted; set
                             * by init, read-only after */
    ur_ring **rings;        /* [max_rings] */
    slot_state *slot;       /* [max_rings], under mu */
    unsigned nslots;        /* max_rings as configured */
    /* One bit per descriptor below UR_FD_BITS: set when the file's file
     * system completes buffered writes without blocking (xfs, btrfs), so
     * io_uring can do them inline.  Elsewhere (ext4, tmpfs, ...) io_uring
     * hands every buffered write to an io-wq worker thread: two context
     * switches per write, measured at 0.06-0.26x of pwrite on ext4.  Those
     * files get their plain (non-durable) writes as pwritev on the calling
     * thread; durable writes still go through the ring as a linked
     * write + fdatasync, where the sync is asynchronous anyway. */
    _Atomic uint8_t ring_writes[UR_FD_BITS / 8];
    enum kio_uring_writes write_mode; /* AUTO: the bits above decide */
} ur_state;

/* Set up one ring with the given setup flags. */
static int ring_create(ur_state *s, unsigned flags, ur_ring **out)
{
    ur_ring *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = flags;
    int rc = io_uring_queue_init_params(s->entries, &r->ring, &p);
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->cq_cap = p.cq_entries;
    *out = r;
    return 0;
}

static void ring_destroy(ur_ring *r)
{
    if (!r)
        return;
    io_uring_queue_exit(&r->ring);
    free(r);
}

/* Take a ring for the calling op; blocks while all are busy.  Returns NULL
 * only if no ring exists and none can be created (then *err is set). */
static ur_ring *ring_get(ur_state *s, unsigned *slot_out, int *err)
{
    pthread_mutex_lock(&s->mu);
    for (;;) {
        unsigned alive = 0, empty = s->nslots;
        for (unsigned i = 0; i < s->nslots; i++) {
            if (s->slot[i] == SLOT_FREE) {
                s->slot[i] = SLOT_BUSY;
                pthread_mutex_unlock(&s->mu);
                *slot_out = i;
                return s->rings[i];
            }
            if (s->slot[i] == SLOT_EMPTY) {
                if (empty == s->nslots)
                    empty = i;
            } else {
                alive++;
            }
        }
        if (alive < s->max && empty < s->nslots) {
            /* Create outside the lock: ring setup maps memory and may be
             * slow; the slot is reserved meanwhile. */
            s->slot[empty] = SLOT_CREATING;
            pthread_mutex_unlock(&s->mu);
            ur_ring *r = NULL;
            int rc = ring_create(s, s->setup_flags, &r);
            pthread_mutex_lock(&s->mu);
            if (rc == 0) {
                s->rings[empty] = r;
                s->slot[empty] = SLOT_BUSY;
                pthread_mutex_unlock(&s->mu);
                *slot_out = empty;
                return r;
            }
            s->slot[empty] = SLOT_EMPTY;
            if (alive == 0) {
                /* nothing to wait for: fail this op, try again next time */
                pthread_mutex_unlock(&s->mu);
                *err = rc;
                return NULL;
            }
            /* The kernel refuses more rings (memlock, ENOMEM): make do
             * with the ones there are. */
            s->max = alive;
        }
        pthread_cond_wait(&s->cv, &s->mu);
    }
}

static void ring_put(ur_state *s, ur_ring *r, unsigned slot)
{
    bool broken = r->broken;
    if (broken)
        ring_destroy(r);
    pthread_mutex_lock(&s->mu);
    if (broken) {
        s->rings[slot] = NULL;
        s->slot[slot] = SLOT_EMPTY;
    } else {
        s->slot[slot] = SLOT_FREE;
    }
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/*
 * Submit everything queued on the ring and wait until at least `wait_nr`
 * CQEs are ready.  Loops over short submissions (each call consumes SQEs up
 * to one that fails at submission time; that one still gets a CQE) and
 * EINTR.  Returns 0, or -errno if queued SQEs could not be submitted: the
 * ring is then marked broken and *unsubmitted tells how many were left.
 */
static int submit_wait(ur_ring *r, unsigned wait_nr, unsigned *unsubmitted)
{
    struct io_uring *ring = &r->ring;
    int stuck = 0;
    *unsubmitted = 0;
    while (io_uring_sq_ready(ring) > 0 || io_uring_cq_ready(ring) < wait_nr) {
        int rc = io_uring_submit_and_wait(ring, wait_nr);
        if (rc >= 0 || rc == -EINTR)
            continue;
        if ((rc == -EAGAIN || rc == -EBUSY) && ++stuck < 1000) {
            /* out of kernel memory for requests: let something complete
             * and try again */
            if (io_uring_cq_ready(ring) == 0)
                usleep(100);
            continue;
        }
        *unsubmitted = io_uring_sq_ready(ring);
        r->broken = true;
        return rc;
    }
    return 0;
}

/* Wait for and consume `n` CQEs, passing each to the visitor. */
typedef void (*cqe_fn)(void *ctx, uint64_t user_data, int res);

static int reap(ur_ring *r, unsigned n, cqe_fn fn, void *ctx)
{
    struct io_uring *ring = &r->ring;
    while (n > 0) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(ring, &cqe);
        if (rc == -EINTR)
            continue;
        if (rc < 0) {
            /* Cannot happen with requests in flight short of a kernel
             * bug; do not reuse this ring. */
            r->broken = true;
            return rc;
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(ring, head, cqe) {
            fn(ctx, cqe->user_data, cqe->res);
            seen++;
            if (seen == n)
                break;
        }
        io_uring_cq_advance(ring, seen);
        n -= seen;
    }
    return 0;
}

/* ---- ops ------------------------------------------------------------- */

static void one_res(void *ctx, uint64_t ud, int res)
{
    *(int *)ctx = res;
}

/* Run one request prepared by `prep` on a pooled ring; returns its CQE's
 * result. */
typedef void (*prep_fn)(struct io_uring_sqe *sqe, const void *arg);

static int run_one(ur_state *s, prep_fn prep, const void *arg)
{
    unsigned slot;
    int err = 0;
    ur_ring *r = ring_get(s, &slot, &err);
    if (!r)
        return err;
    /* The ring is idle (pool invariant), so an SQE is always available. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    prep(sqe, arg);
    sqe->user_data = 0;
    int res = 0;
    unsigned left;
    int rc = submit_wait(r, 1, &left);
    if (rc == 0 || left == 0)
        rc = reap(r, 1, one_res, &res) < 0 ? -EIO : res;
    ring_put(s, r, slot);
    return rc;
}

typedef struct { int h; const struct iovec *iov; int iovcnt; uint64_t off; } rw_arg;

static void prep_readv(struct io_uring_sqe *sqe, const void *a)
{
    const rw_arg *x = a;
    io_uring_prep_readv(sqe, x->h, x->iov, (unsigned)x->iovcnt, x->off);
}

static void prep_fdatasync(struct io_uring_sqe *sqe, const void *a)
{
    io_uring_prep_fsync(sqe, *(const int *)a, IORING_FSYNC_DATASYNC);
}

static void prep_fsync(struct io_uring_sqe *sqe, const void *a)
{
    io_uring_prep_fsync(sqe, *(const int *)a, 0);
}

static ssize_t ur_readv(void *st, int h, const struct iovec *iov, int iovcnt, uint64_t off)
{
    if (iovcnt < 0)
        return -EINVAL;
    rw_arg a = { h, iov, iovcnt, off };
    return run_one(st, prep_readv, &a);
}

/*
 * fdatasync on the calling thread.  io_uring never runs an fsync inline: it
 * always hands it to an io-wq worker, and the caller here waits for it
 * anyway, so the ring would only add a handoff and a wakeup (10-30 us per
 * sync on this VM, measured: bench_io).  Where the file's writes go
 * through the ring (ring_writes), the sync stays there, linked behind
 * them.
 */
static bool ring_writes(ur_state *s, int fd);

static int direct_datasync(int h)
{
    int rc;
    do
        rc = fdatasync(h);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int ur_datasync(void *st, int h)
{
    if (!ring_writes(st, h))
        return direct_datasync(h);
    return run_one(st, prep_fdatasync, &h);
}

static int ur_dirsync(void *st, const char *dir)
{
    int fd;
    do
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    int rc = run_one(st, prep_fsync, &fd);
    close(fd);
    return rc;
}

typedef struct {
    ssize_t *res;
    unsigned n;       /* user_data n is the linked sync */
    int sync_res;
} batch;

static void batch_res(void *ctx, uint64_t ud, int res)
{
    batch *b = ctx;
    if (ud == b->n)
        b->sync_res = res;
    else if (ud < b->n)
        b->res[ud] = res;
}

/*
 * All n writes go into the SQ without waiting between them; one
 * io_uring_submit_and_wait covers the lot.  If they do not fit in the SQ,
 * what is queued is submitted (without waiting) and filling goes on; only
 * past cq_cap requests in flight does the call wait for completions before
 * queueing more, so the CQ can never overflow.
 *
 * KIO_W_DSYNC: an IORING_OP_FSYNC(DATASYNC) of the last request's file,
 * linked (IOSQE_IO_LINK) to the last write and, when earlier writes are
 * still in flight, marked IOSQE_IO_DRAIN.  The link alone orders the sync
 * after the last write only; writes are not ordered among themselves (one
 * punted to io-wq can still be running), so the drain makes the sync, and
 * through the link the last write, wait for every earlier request on this
 * ring, which are exactly this call's writes (the ring is ours alone).
 * A short or failed last write cancels the sync (-ECANCELED); a failed
 * earlier write does not, but then the sync result is moot: the return
 * value is the first write error.
 *
 * Cost note: file systems without async buffered writes (ext4 as of 6.x)
 * make io_uring punt every buffered write to an io-wq worker, a thread
 * hand-off per request; see bench/bench_io.c for what that costs beside a
 * plain pwrite.
 */
/* File systems whose buffered writes io_uring completes without a worker
 * thread (they support non-blocking buffered writes). */
static bool fs_async_buffered(int fd)
{
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return false;
    switch ((unsigned long)sf.f_type) {
    case 0x58465342UL: /* XFS_SUPER_MAGIC */
    case 0x9123683EUL: /* BTRFS_SUPER_MAGIC */
        return true;
    default:
        return false;
    }
}

static void set_ring_writes(ur_state *s, int fd, bool on)
{
    if (fd < 0 || fd >= UR_FD_BITS)
        return;
    uint8_t bit = (uint8_t)(1u << (fd & 7));
    if (on)
        atomic_fetch_or(&s->ring_writes[fd >> 3], bit);
    else
        atomic_fetch_and(&s->ring_writes[fd >> 3], (uint8_t)~bit);
}

static bool ring_writes(ur_state *s, int fd)
{
    if (s->write_mode != KIO_URING_WRITES_AUTO)
        return s->write_mode == KIO_URING_WRITES_RING;
    return fd >= 0 && fd < UR_FD_BITS && (atomic_load_explicit(&s->ring_writes[fd >> 3], memory_order_relaxed) >> (fd & 7)) & 1;
}

/* Buffered writes on a file system where io_uring would only punt them to
 * a worker: pwritev here and now (see ring_writes above).  With KIO_W_DSYNC
 * the writes are then complete in the page cache before the fdatasync is
 * submitted, so the sync cannot run ahead of the data: the ordering the
 * IOSQE_IO_LINK gives on the ring, for one worker handoff instead of two. */
static bool writes_inline(ur_state *s, const kio_wreq *reqs, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (ring_writes(s, reqs[i].h))
            return false;
    return true;
}

static int ur_writev_many(void *st, const kio_wreq *reqs, unsigned n, ssize_t *res, unsigned flags)
{
    ur_state *s = st;
    if (n == 0)
        return 0;
    for (unsigned i = 0; i < n; i++) {
        if (reqs[i].iovcnt < 0)
            return -EINVAL;
        res[i] = -ECANCELED; /* overwritten by every request's CQE */
    }
    if (writes_inline(s, reqs, n)) {
        int rc = 0;
        for (unsigned i = 0; i < n; i++) {
            ssize_t w;
            do
                w = pwritev(reqs[i].h, reqs[i].iov, reqs[i].iovcnt, (off_t)reqs[i].off);
            while (w < 0 && errno == EINTR);
            res[i] = w < 0 ? -errno : w;
            if (w < 0) {
                rc = -errno;
                for (unsigned j = i + 1; j < n; j++)
                    res[j] = rc; /* not attempted after a failure */
                break;
            }
        }
        /* as the ring does: a short or failed write means no sync (the core
         * completes the write and syncs once itself) */
        if (rc == 0 && (flags & KIO_W_DSYNC)) {
            bool whole = true;
            for (unsigned i = 0; i < n && whole; i++) {
                size_t want = 0;
                for (int v = 0; v < reqs[i].iovcnt; v++)
                    want += reqs[i].iov[v].iov_len;
                whole = res[i] == (ssize_t)want;
            }
            if (whole)
                rc = direct_datasync(reqs[n - 1].h);
        }
        return rc;
    }
    unsigned slot;
    int err = 0;
    ur_ring *r = ring_get(s, &slot, &err);
    if (!r)
        return err;
    struct io_uring *ring = &r->ring;
    bool dsync = flags & KIO_W_DSYNC;
    batch b = { res, n, -ECANCELED };
    unsigned queued = 0;   /* requests whose SQEs are queued or submitted */
    unsigned inflight = 0; /* SQEs queued or submitted, CQE not yet reaped */
    int rc = 0;
    while (queued < n || inflight > 0) {
        int src = 0;
        unsigned left = 0;
        while (queued < n) {
            /* the last write and its sync must go in the same submission:
             * a link cannot span two */
            unsigned need = (dsync && queued == n - 1) ? 2 : 1;
            if (inflight + need > r->cq_cap)
                break; /* reap first: the CQ must never overflow */
            if (io_uring_sq_space_left(ring) < need) {
                /* hand what is queued to the kernel, without waiting:
                 * submission consumes the SQEs and frees the SQ at once */
                if ((src = submit_wait(r, 0, &left)) < 0)
                    break;
                continue;
            }
            const kio_wreq *q = &reqs[queued];
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            io_uring_prep_writev(sqe, q->h, q->iov, (unsigned)q->iovcnt, q->off);
            sqe->user_data = queued;
            if (need == 2) {
                io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
                struct io_uring_sqe *fs = io_uring_get_sqe(ring);
                io_uring_prep_fsync(fs, q->h, IORING_FSYNC_DATASYNC);
                /* drain only if earlier writes may still be running: it
                 * costs a deferral in the kernel, and a lone write is
                 * already ordered by the link */
                if (inflight > 0)
                    io_uring_sqe_set_flags(fs, IOSQE_IO_DRAIN);
                fs->user_data = n;
            }
            queued++;
            inflight += need;
        }
        /* everything queued: wait for all of it; else for room in the CQ */
        if (src == 0)
            src = submit_wait(r, queued == n ? inflight : 1, &left);
        if (src < 0) {
            /* The last `left` SQEs never reached the kernel: fail their
             * requests and those not queued yet.  What is in flight still
             * points into the caller's buffers, so reap it before going;
             * the ring is broken and will be dropped. */
            rc = src;
            unsigned sync_left = (dsync && queued == n && left > 0) ? 1 : 0;
            for (unsigned i = queued - (left - sync_left); i < n; i++)
                res[i] = src;
            inflight -= left;
            (void)reap(r, inflight, batch_res, &b);
            break;
        }
        unsigned ready = io_uring_cq_ready(ring);
        if (ready > inflight)
            ready = inflight;
        if (reap(r, ready, batch_res, &b) < 0) {
            rc = -EIO;
            break;
        }
        inflight -= ready;
    }
    ring_put(s, r, slot);

    int first_err = 0;
    bool all_full = true;
    for (unsigned i = 0; i < n; i++) {
        if (res[i] < 0) {
            if (!first_err)
                first_err = (int)res[i];
            all_full = false;
        } else if ((size_t)res[i] != kio__iov_len(reqs[i].iov, reqs[i].iovcnt)) {
            all_full = false;
        }
    }
    if (first_err)
        return first_err;
    if (rc < 0)
        return rc;
    if (dsync && all_full)
        return b.sync_res;
    return 0; /* short writes only: the core completes them and syncs */
}

/* ---- plain syscalls -------------------------------------------------- */

static int ur_open(void *st, const char *path, unsigned flags, unsigned mode)
{
    int f = kio__open_flags(flags);
    if (f < 0)
        return f;
    int fd;
    do
        fd = open(path, f, (mode_t)mode);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    set_ring_writes(st, fd, fs_async_buffered(fd));
    return fd;
}

static int ur_close(void *st, int h)
{
    set_ring_writes(st, h, false);
    /* Linux frees the descriptor even if close() says EINTR; never retry */
    if (close(h) < 0 && errno != EINTR)
        return -errno;
    return 0;
}

static int ur_truncate(void *st, int h, uint64_t len)
{
    int rc;
    do
        rc = ftruncate(h, (off_t)len);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int ur_filesize(void *st, int h, uint64_t *len)
{
    struct stat sb;
    if (fstat(h, &sb) < 0)
        return -errno;
    *len = (uint64_t)sb.st_size;
    return 0;
}

static int ur_rename(void *st, const char *from, const char *to)
{
    return rename(from, to) < 0 ? -errno : 0;
}

static int ur_unlink(void *st, const char *path)
{
    return unlink(path) < 0 ? -errno : 0;
}

static int ur_mkdir(void *st, const char *path, unsigned mode)
{
    return mkdir(path, (mode_t)mode) < 0 ? -errno : 0;
}

/* ---- lifetime -------------------------------------------------------- */

KLOG_COLD static int ur_init(void *st, const void *arg)
{
    ur_state *s = st;
    const kio_options *o = arg;
    s->entries = o && o->ring_entries ? o->ring_entries : KIO_DEFAULT_RING_ENTRIES;
    s->nslots = o && o->max_rings ? o->max_rings : KIO_DEFAULT_MAX_RINGS;
    if (s->entries < 2 || s->nslots > 1024)
        return -EINVAL; /* a linked write+sync needs two SQEs */
    s->write_mode = o ? o->uring_writes : KIO_URING_WRITES_AUTO;
    const char *wm = getenv("KLOG_IO_URING_WRITES");
    if (s->write_mode == KIO_URING_WRITES_AUTO && wm && *wm) {
        if (!strcmp(wm, "ring"))
            s->write_mode = KIO_URING_WRITES_RING;
        else if (!strcmp(wm, "inline"))
            s->write_mode = KIO_URING_WRITES_INLINE;
        else if (strcmp(wm, "auto") != 0)
            return -EINVAL;
    }
    if (s->write_mode > KIO_URING_WRITES_INLINE)
        return -EINVAL;
    s->max = s->nslots;
    s->rings = calloc(s->nslots, sizeof *s->rings);
    s->slot = calloc(s->nslots, sizeof *s->slot);
    if (!s->rings || !s->slot)
        return -ENOMEM;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        return -ENOMEM;
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        return -ENOMEM;
    }
    s->lock_ok = true;
    /* The first ring now: if io_uring is refused, say so at open time.
     * The optional flags are tried first: SUBMIT_ALL keeps the kernel from
     * stopping at an SQE that fails at submission (which would leave the
     * rest queued), COOP_TASKRUN spares an interrupt per completion (each
     * op reaps its own CQEs on the thread that submitted them, so it never
     * misses task work).  Kernels before 5.19 reject them with -EINVAL.
     * setup_flags is written here only, before the engine is shared. */
    s->setup_flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
    int rc = ring_create(s, s->setup_flags, &s->rings[0]);
    if (rc == -EINVAL) {
        s->setup_flags = 0;
        rc = ring_create(s, s->setup_flags, &s->rings[0]);
    }
    if (rc < 0)
        return rc;
    s->slot[0] = SLOT_FREE;
    return 0;
}

/* Safe after a failed init: every field is either zero or valid. */
static void ur_fini(void *st)
{
    ur_state *s = st;
    if (s->rings) {
        for (unsigned i = 0; i < s->nslots; i++)
            ring_destroy(s->rings[i]);
    }
    free(s->rings);
    free(s->slot);
    if (s->lock_ok) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
    }
}

static int ur_control(void *st, int op, void *arg)
{
    (void)st;
    return kio__fd_control(op, arg); /* a blocking hint: no ring needed */
}

static const struct kio_methods uring_methods = {
    .version = KIO_METHODS_VERSION,
    .size = sizeof(struct kio_methods),
    .name = "uring",
    .state_size = sizeof(ur_state),
    .init = ur_init,
    .fini = ur_fini,
    .open = ur_open,
    .close = ur_close,
    .readv = ur_readv,
    .writev_many = ur_writev_many,
    .datasync = ur_datasync,
    .truncate = ur_truncate,
    .filesize = ur_filesize,
    .rename = ur_rename,
    .unlink = ur_unlink,
    .dirsync = ur_dirsync,
    .mkdir = ur_mkdir,
    .control = ur_control,
};

const struct kio_methods *kio_uring_methods(void)
{
    return &uring_methods;
}

#else /* !KLOG_HAVE_URING */

const struct kio_methods *kio_uring_methods(void)
{
    return NULL;
}

#endif
