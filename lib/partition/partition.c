/*
 * lib/partition/partition.c - the partition object: log, high watermark,
 * leader epochs and role, listeners and waiters, the acknowledgement queue.
 *
 * Leader epochs (partition.h, "leader epochs", says what and why): the
 * cache is a ks_epochs under emu.  The epoch stamped into batches lives in
 * the log (ks_log_set_epoch), which writes it where it assigns offsets;
 * `epoch` here is a copy for kpart_leader_epoch.  Every view of the cache
 * this file hands out is "the cache as truncated from the current log
 * start, or (0, start) when empty" (the lazy rules), computed on the fly.
 *
 * The acknowledgement queue is a FIFO of caller-owned kpart_ack nodes
 * (no allocation) under amu.  One thread at a time completes from it (the
 * runner, `running`): it pops the head while the head's condition holds
 * and calls its done with amu dropped, so completions keep the queue's
 * order even though several threads may move the HW.  Whoever makes a
 * condition hold (a HW advance, a failure, the switch back to a derived
 * HW) stores that first and then calls ack_run: either the runner, which
 * re-checks the head under amu after each completion, sees it, or the
 * runner is gone and this thread becomes the runner.  `pending` counts
 * nodes queued or being completed; it is decremented only after done
 * returns, so a submitter that reads 0 knows every earlier completion has
 * finished and may complete inline without breaking the order.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/common.h"
#include "partition/partition.h"
#include "storage/epoch.h"

struct kpart {
    /* read on every append and read; first, as kpart_head says */
    ks_log *log;
    _Atomic bool replicated;     /* HW set by kpart_advance_hw, not derived */
    _Atomic bool fenced;         /* kpart_set_fenced: appends refused (KLOG_ENOTLEADER) */
    _Atomic int32_t epoch;
    _Atomic int role;
    _Atomic int64_t hw;          /* the HW while replicated */
    _Atomic int isr_size, min_isr; /* KPART_APPEND_ALL's check (kpart_set_isr) */

    /* listeners and waiters (lmu) */
    _Atomic unsigned active;     /* listeners + armed waiters: the notify fast path */
    pthread_mutex_t lmu;
    kpart_waiter **w;
    size_t nw, wcap;
    kpart_listener *listeners;

    /* acknowledgements (amu) */
    _Atomic int64_t pending;     /* queued or being completed */
    pthread_mutex_t amu;
    pthread_cond_t acv;          /* the runner finished (close waits on it) */
    kpart_ack *head, *tail;
    bool running;                /* a thread is completing from the queue */
    bool closed;
    /* kpart_advance_hw_durable: the HW the replicas allow in leader epoch
     * want_epoch, reached once this log's durable offset passes it */
    int64_t hw_want;
    int32_t want_epoch;

    /* leader epochs (emu) */
    pthread_mutex_t emu;
    ks_epochs *epochs;
    bool read_only;
    bool epochs_bad;             /* leader-epoch-checkpoint malformed: the cache is empty, the
                                  * partition damaged until kpart_repair rebuilds the file */
    kio *io;                     /* for kpart_repair */
    char *dir;
};

_Static_assert(offsetof(struct kpart, log) == offsetof(kpart_head, log), "kpart_head mirrors struct kpart");

/* ---- notifications --------------------------------------------------------- */

void kpart_waiter_signal(kpart_waiter *w)
{
    atomic_store(&w->pending, 1);
    uint64_t one = 1;
    ssize_t r = write(w->efd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is already non-zero, it is readable */
}

void kpart_waiter_drain(kpart_waiter *w, bool force)
{
    if (force)
        atomic_store(&w->pending, 0);
    else if (!atomic_exchange(&w->pending, 0))
        return;
    uint64_t v;
    ssize_t r = read(w->efd, &v, sizeof v);
    (void)r; /* EAGAIN: it was empty */
}

/* Wake armed waiters (on a HW move) and call the listeners of ev. */
static void notify(kpart *p, unsigned ev, int64_t offset)
{
    /* seq_cst pairs with the waiter's arm-then-recheck: either it sees the
     * new data, or we see it counted in `active`. */
    if (atomic_load(&p->active) == 0)
        return;
    pthread_mutex_lock(&p->lmu);
    if (ev & KPART_EV_HW)
        for (size_t i = 0; i < p->nw; i++) {
            kpart_waiter *w = p->w[i];
            if (atomic_exchange(&w->armed, 0))
                kpart_waiter_signal(w);
        }
    for (kpart_listener *l = p->listeners; l; l = l->next)
        if (l->events & ev)
            l->fn(l->arg, l->events & ev, offset);
    pthread_mutex_unlock(&p->lmu);
}

/* The log's one storage listener: after every append, on the appending
 * thread, no storage lock held. */
static void on_append(void *arg, int64_t end)
{
    kpart *p = arg;
    if (atomic_load(&p->active) == 0)
        return;
    unsigned ev = KPART_EV_APPEND;
    if (!atomic_load_explicit(&p->replicated, memory_order_acquire))
        ev |= KPART_EV_HW; /* the HW is the LEO: it moved too */
    notify(p, ev, end);
}

int kpart_waiter_add(kpart *p, kpart_waiter *w)
{
    pthread_mutex_lock(&p->lmu);
    int rc = klog__vec_reserve(&p->w, &p->wcap, p->nw + 1, sizeof *p->w);
    if (rc == 0)
        p->w[p->nw++] = w;
    pthread_mutex_unlock(&p->lmu);
    return rc;
}

void kpart_waiter_remove(kpart *p, kpart_waiter *w)
{
    pthread_mutex_lock(&p->lmu);
    for (size_t i = 0; i < p->nw; i++)
        if (p->w[i] == w) {
            p->w[i] = p->w[--p->nw];
            break;
        }
    pthread_mutex_unlock(&p->lmu);
}

void kpart_waiter_arm(kpart *p, int delta)
{
    if (delta > 0)
        atomic_fetch_add(&p->active, 1);
    else
        atomic_fetch_sub(&p->active, 1);
}

void kpart_listen(kpart *p, kpart_listener *l)
{
    pthread_mutex_lock(&p->lmu);
    l->next = p->listeners;
    p->listeners = l;
    atomic_fetch_add(&p->active, 1);
    pthread_mutex_unlock(&p->lmu);
}

void kpart_unlisten(kpart *p, kpart_listener *l)
{
    pthread_mutex_lock(&p->lmu);
    for (kpart_listener **pp = &p->listeners; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            l->next = NULL;
            atomic_fetch_sub(&p->active, 1);
            break;
        }
    pthread_mutex_unlock(&p->lmu);
}

/* ---- lifetime ---------------------------------------------------------------- */

/* The latest epoch the partition is in: the cache's, 0 when it is empty
 * (the lazy epoch 0).  emu held. */
static int32_t latest_epoch(kpart *p)
{
    int32_t e = ks_epochs_latest(p->epochs);
    return e == KS_EPOCH_UNDEFINED ? 0 : e;
}

/* Repair what a crash or a moved log start left in the cache just loaded:
 * entries below the log start are folded into one at the start, then every
 * entry starting at or after the log end goes (Kafka's load does both; in
 * this order a second open finds nothing to change, even in an empty log).
 * Writes only when something changes. */
static int epochs_fit(kpart *p)
{
    if (p->read_only || ks_log_damage(p->log))
        return 0; /* a damaged log changes nothing on disk */
    int rc = ks_epochs_truncate_from_start(p->epochs, ks_log_start_offset(p->log));
    if (rc >= 0)
        rc = ks_epochs_truncate_from_end(p->epochs, ks_log_end_offset(p->log));
    return rc < 0 ? rc : 0;
}

KLOG_COLD int kpart_open(kpart **out, kio *io, const char *dir, const ks_log_config *cfg)
{
    *out = NULL;
    ks_log_config lc;
    if (cfg)
        lc = *cfg;
    else
        ks_log_config_init(&lc);
    kpart *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->read_only = lc.read_only;
    p->io = io;
    if (!(p->dir = strdup(dir))) {
        free(p);
        return -ENOMEM;
    }
    /* The epoch cache first: a malformed file makes the partition open
     * damaged (with open_damaged), its log a view that changes nothing,
     * the cache empty and the file as it is until kpart_repair rebuilds
     * it. */
    char why[256] = "", reason[300];
    int rc = ks_epochs_open_why(&p->epochs, io, dir, why, sizeof why);
    if ((rc == KLOG_ECORRUPT || rc == KLOG_EFORMAT) && lc.open_damaged) {
        snprintf(reason, sizeof reason, KS_EPOCH_FILE ": %s", why[0] ? why : klog_strerror(rc));
        lc.damage = reason;
        p->epochs_bad = true;
        rc = ks_epochs_new(&p->epochs, io, dir);
    }
    if (rc == 0)
        rc = ks_log_open(&p->log, io, dir, &lc);
    if (rc == 0 && (rc = epochs_fit(p)) < 0)
        ks_log_close(p->log);
    if (rc < 0) {
        ks_epochs_close(p->epochs);
        free(p->dir);
        free(p);
        return rc;
    }
    pthread_mutex_init(&p->lmu, NULL);
    pthread_mutex_init(&p->amu, NULL);
    pthread_cond_init(&p->acv, NULL);
    pthread_mutex_init(&p->emu, NULL);
    atomic_store(&p->role, KPART_LEADER);
    p->hw_want = -1;
    p->want_epoch = -1;
    int32_t e = latest_epoch(p);
    atomic_store(&p->epoch, e);
    ks_log_set_epoch(p->log, e, NULL, NULL); /* no callback: cannot fail */
    ks_log_set_listener(p->log, on_append, p);
    *out = p;
    return 0;
}

static void ack_run(kpart *p);
static void hw_catch_up(kpart *p);

/* Fail every waiting acknowledgement with KLOG_ECLOSED, wait until the
 * last completion has returned, and free everything but the log. */
static ks_log *part_free(kpart *p)
{
    pthread_mutex_lock(&p->amu);
    p->closed = true;
    for (kpart_ack *a = p->head; a; a = a->next)
        if (!a->err)
            a->err = KLOG_ECLOSED;
    pthread_mutex_unlock(&p->amu);
    ack_run(p);
    pthread_mutex_lock(&p->amu);
    while (p->running || p->head)
        pthread_cond_wait(&p->acv, &p->amu);
    pthread_mutex_unlock(&p->amu);
    ks_log *log = p->log;
    ks_epochs_close(p->epochs); /* no I/O: every change is on disk */
    pthread_mutex_destroy(&p->lmu);
    pthread_mutex_destroy(&p->amu);
    pthread_cond_destroy(&p->acv);
    pthread_mutex_destroy(&p->emu);
    free(p->w);
    free(p->dir);
    free(p);
    return log;
}

KLOG_COLD int kpart_close(kpart *p)
{
    return p ? ks_log_close(part_free(p)) : 0;
}

void kpart_abandon(kpart *p)
{
    if (p)
        ks_log_abandon(part_free(p));
}

/* ---- offsets and state ------------------------------------------------------- */

int64_t kpart_start_offset(kpart *p) { return ks_log_start_offset(p->log); }
int64_t kpart_end_offset(kpart *p) { return ks_log_end_offset(p->log); }
int64_t kpart_durable_offset(kpart *p) { return ks_log_durable_offset(p->log); }

int64_t kpart_high_watermark(kpart *p)
{
    if (KLOG_LIKELY(!atomic_load_explicit(&p->replicated, memory_order_acquire)))
        return ks_log_end_offset(p->log);
    return atomic_load_explicit(&p->hw, memory_order_acquire);
}

int32_t kpart_leader_epoch(kpart *p) { return atomic_load_explicit(&p->epoch, memory_order_relaxed); }
enum kpart_role kpart_role(kpart *p) { return (enum kpart_role)atomic_load(&p->role); }
void kpart_set_role(kpart *p, enum kpart_role role) { atomic_store(&p->role, (int)role); }

/* ---- append and read ----------------------------------------------------------- */

void kpart_set_fenced(kpart *p, bool on) { atomic_store(&p->fenced, on); }
bool kpart_fenced(kpart *p) { return atomic_load(&p->fenced); }

int kpart_append(kpart *p, ks_batch *batches, unsigned n, unsigned flags)
{
    if (KLOG_UNLIKELY(atomic_load_explicit(&p->fenced, memory_order_relaxed))) {
        for (unsigned i = 0; i < n; i++) {
            batches[i].result = KLOG_ENOTLEADER;
            batches[i].base_offset = -1;
        }
        return KLOG_ENOTLEADER;
    }
    if (KLOG_UNLIKELY(flags & KPART_APPEND_ALL) &&
        atomic_load_explicit(&p->isr_size, memory_order_relaxed) <
            atomic_load_explicit(&p->min_isr, memory_order_relaxed) &&
        atomic_load_explicit(&p->replicated, memory_order_acquire)) {
        for (unsigned i = 0; i < n; i++) {
            batches[i].result = KLOG_ENOTENOUGH;
            batches[i].base_offset = -1;
        }
        return KLOG_ENOTENOUGH;
    }
    /* A replicated leader's followers copy the batches while it syncs
     * them (KS_APPEND_EARLY); the HW they allow is reached once the sync
     * is done. */
    bool repl = atomic_load_explicit(&p->replicated, memory_order_acquire);
    if (repl)
        flags |= KS_APPEND_EARLY;
    /* the log stamps the epoch, and refuses the batches of a follower */
    int rc = ks_log_append(p->log, batches, n, flags & ~KPART_APPEND_ALL);
    if (repl)
        hw_catch_up(p);
    return rc;
}

/* Record that `epoch` starts at `base` in a follower's cache, as a leader's
 * record_epoch does for its own term (the pending start truncation first,
 * and (0, start) for records a partition without a file holds).  emu held,
 * no append running (the follower's appender is the caller). */
static int follower_assign(kpart *p, int32_t epoch, int64_t base)
{
    ks_epochs *ep = p->epochs;
    int64_t start = ks_log_start_offset(p->log);
    int rc = ks_epochs_truncate_from_start(ep, start);
    if (rc >= 0 && ks_epochs_count(ep) == 0) {
        if (epoch == 0)
            return 0; /* the lazy (0, start) already says it */
        if (ks_log_end_offset(p->log) > start) /* records of epoch 0 (not just a gap) */
            rc = ks_epochs_assign(ep, 0, start);
    }
    if (rc >= 0)
        rc = ks_epochs_assign(ep, epoch, base);
    return rc < 0 ? rc : 0;
}

int kpart_append_replica(kpart *p, ks_batch *batches, unsigned n, unsigned flags)
{
    for (unsigned i = 0; i < n; i++) {
        batches[i].result = KLOG_ESTATE; /* not attempted */
        batches[i].base_offset = -1;
    }
    pthread_mutex_lock(&p->emu);
    int rc = 0;
    if (atomic_load(&p->role) != KPART_FOLLOWER)
        rc = KLOG_ESTATE;
    unsigned i = 0;
    while (rc == 0 && i < n) {
        kf_batch_info bi;
        if (!batches[i].batch || kf_batch_parse(batches[i].batch, batches[i].len, &bi) != (ssize_t)batches[i].len) {
            rc = batches[i].result = KLOG_ECORRUPT;
            break;
        }
        int64_t end = ks_log_end_offset(p->log);
        if (i == 0 && bi.base_offset < end && kf_batch_last_offset(&bi) >= end &&
            ks_log_start_offset(p->log) == end) {
            /* An empty log (kpart_truncate_fully at its leader's log start)
             * and a first batch across its end: the leader's start falls
             * inside it.  The log starts again at the batch's base (Kafka's
             * follower does the same); the HW stays, the batch covers it. */
            if ((rc = ks_log_truncate_fully(p->log, bi.base_offset)) == 0)
                rc = ks_epochs_truncate_from_end(p->epochs, bi.base_offset);
            if (rc < 0) {
                batches[i].result = rc;
                break;
            }
            rc = 0;
        }
        int32_t e = bi.leader_epoch, latest = latest_epoch(p);
        if (e < latest || e < 0) {
            rc = batches[i].result = KLOG_EFENCED; /* diverged: truncate first */
            break;
        }
        if (e > latest) {
            if (bi.base_offset < ks_log_end_offset(p->log)) { /* past it: a gap of the leader's */
                rc = batches[i].result = KLOG_EOFFSET;
                break;
            }
            if ((rc = follower_assign(p, e, bi.base_offset)) < 0) {
                batches[i].result = rc;
                break;
            }
        }
        /* the run of batches of this epoch */
        unsigned j = i + 1;
        while (j < n) {
            kf_batch_info bj;
            if (!batches[j].batch || kf_batch_parse(batches[j].batch, batches[j].len, &bj) <= 0 ||
                bj.leader_epoch != e)
                break;
            j++;
        }
        rc = ks_log_append(p->log, batches + i, j - i, (flags & (KS_APPEND_SYNC | KS_APPEND_VERIFY)) | KS_APPEND_REPLICA);
        i = j;
    }
    int64_t end = ks_log_end_offset(p->log);
    if (atomic_load(&p->hw) > end) /* a start again whose batch did not land */
        atomic_store(&p->hw, end);
    pthread_mutex_unlock(&p->emu);
    return rc;
}

int kpart_sync(kpart *p)
{
    int rc = ks_log_sync(p->log);
    if (rc == 0 && atomic_load_explicit(&p->replicated, memory_order_acquire))
        hw_catch_up(p);
    return rc;
}

/* An empty view at offset (nothing visible there yet). */
static int empty_view(ks_view *v, int64_t offset)
{
    memset(v, 0, sizeof *v);
    v->first_offset = v->next_offset = offset;
    return 0;
}

/* Keep only the batches of v that end at or below hw (whole batches). */
static void cut_view(ks_view *v, int64_t offset, int64_t hw)
{
    size_t keep = 0;
    int64_t next = v->first_offset;
    while (keep < v->len) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(v->data + keep, v->len - keep, &bi);
        if (len <= 0 || kf_batch_last_offset(&bi) >= hw)
            break; /* bad framing is left to the reader, past the cut */
        next = kf_batch_last_offset(&bi) + 1;
        keep += (size_t)len;
    }
    if (keep == 0) {
        ks_view_release(v);
        empty_view(v, offset);
        return;
    }
    v->len = keep;
    v->next_offset = next;
}

int kpart_read(kpart *p, int64_t offset, size_t max_bytes, ks_view *v)
{
    if (KLOG_LIKELY(!atomic_load_explicit(&p->replicated, memory_order_acquire)))
        return ks_log_read(p->log, offset, max_bytes, v);
    int64_t hw = atomic_load_explicit(&p->hw, memory_order_acquire);
    if (offset >= hw) {
        if (offset < ks_log_start_offset(p->log) || offset > ks_log_end_offset(p->log)) {
            memset(v, 0, sizeof *v);
            return KLOG_EOFFSET;
        }
        ks_log_note_tail(p->log); /* a reader waits at the HW, near the end */
        return empty_view(v, offset);
    }
    int rc = ks_log_read(p->log, offset, max_bytes, v);
    if (rc == 0 && v->len > 0 && v->next_offset > hw)
        cut_view(v, offset, hw);
    return rc;
}

int kpart_read_log(kpart *p, int64_t offset, size_t max_bytes, ks_view *v)
{
    return ks_log_read(p->log, offset, max_bytes, v);
}

int kpart_offset_for_time(kpart *p, int64_t ts, int64_t *offset)
{
    int rc = ks_log_offset_for_time(p->log, ts, offset);
    if (rc == 0 && atomic_load_explicit(&p->replicated, memory_order_acquire)) {
        int64_t hw = atomic_load_explicit(&p->hw, memory_order_acquire);
        if (*offset > hw)
            *offset = hw;
    }
    return rc;
}

int kpart_delete_records(kpart *p, int64_t offset, int64_t *new_start)
{
    if (atomic_load_explicit(&p->replicated, memory_order_acquire)) {
        int64_t hw = atomic_load_explicit(&p->hw, memory_order_acquire);
        if (offset == -1)
            offset = hw;
        else if (offset > hw)
            return KLOG_EOFFSET;
    }
    return ks_log_delete_records(p->log, offset, new_start);
}

/* ---- acknowledgements -------------------------------------------------------------- */

/* May a complete now?  (amu held, or the fast path's own node.)  An
 * acks=all acknowledgement of a replicated partition whose term is over
 * (no longer leader, or leader of a later epoch) completes now, with
 * KLOG_ENOTLEADER: its records below the HW may have been replaced. */
static bool ack_ready(kpart *p, kpart_ack *a)
{
    if (a->err || a->level == KPART_ACK_LEADER)
        return true;
    if (!atomic_load_explicit(&p->replicated, memory_order_acquire))
        return true;
    if (atomic_load(&p->role) != KPART_LEADER || atomic_load(&p->epoch) != a->epoch) {
        a->err = KLOG_ENOTLEADER;
        return true;
    }
    return atomic_load_explicit(&p->hw, memory_order_acquire) >= a->end;
}

/* Complete from the head while its condition holds, unless another thread
 * is doing so (it re-checks the head after each completion, under amu, so
 * it sees whatever made ours hold). */
static void ack_run(kpart *p)
{
    pthread_mutex_lock(&p->amu);
    if (p->running) {
        pthread_mutex_unlock(&p->amu);
        return;
    }
    p->running = true;
    kpart_ack *a;
    while ((a = p->head) != NULL && ack_ready(p, a)) {
        p->head = a->next;
        if (!p->head)
            p->tail = NULL;
        int err = a->err;
        pthread_mutex_unlock(&p->amu);
        a->done(a, err); /* a may be gone after this */
        pthread_mutex_lock(&p->amu);
        atomic_fetch_sub(&p->pending, 1);
    }
    p->running = false;
    pthread_cond_broadcast(&p->acv);
    pthread_mutex_unlock(&p->amu);
}

void kpart_ack_submit(kpart *p, kpart_ack *a, int64_t end, int level, int err)
{
    kpart_ack_submit_epoch(p, a, end, level, err, -1);
}

int32_t kpart_batch_epoch(const ks_batch *b)
{
    kf_batch_info bi;
    if (b->result != 0 || !b->batch || kf_batch_parse(b->batch, b->len, &bi) <= 0)
        return -1;
    return bi.leader_epoch;
}

void kpart_ack_submit_epoch(kpart *p, kpart_ack *a, int64_t end, int level, int err, int32_t epoch)
{
    a->end = end;
    a->level = level;
    a->err = err;
    a->epoch = epoch >= 0 ? epoch : atomic_load_explicit(&p->epoch, memory_order_relaxed);
    a->next = NULL;
    if (KLOG_LIKELY(atomic_load(&p->pending) == 0) && ack_ready(p, a)) {
        a->done(a, a->err); /* the identity with one replica: no queue */
        return;
    }
    pthread_mutex_lock(&p->amu);
    if (p->closed && !a->err)
        a->err = KLOG_ECLOSED;
    atomic_fetch_add(&p->pending, 1);
    if (p->tail)
        p->tail->next = a;
    else
        p->head = a;
    p->tail = a;
    pthread_mutex_unlock(&p->amu);
    ack_run(p); /* it may hold already (or be first behind a finished run) */
}

void kpart_ack_fail(kpart *p, int err)
{
    if (atomic_load(&p->pending) == 0)
        return;
    pthread_mutex_lock(&p->amu);
    for (kpart_ack *a = p->head; a; a = a->next)
        if (!a->err)
            a->err = err;
    pthread_mutex_unlock(&p->amu);
    ack_run(p);
}

int64_t kpart_ack_pending(kpart *p) { return atomic_load_explicit(&p->pending, memory_order_relaxed); }

/* ---- the high watermark of a replicated leader ------------------------------------------ */

/* Raise p->hw to at least v; true if it moved. */
static bool hw_raise(kpart *p, int64_t v)
{
    int64_t cur = atomic_load(&p->hw);
    while (cur < v)
        if (atomic_compare_exchange_weak(&p->hw, &cur, v))
            return true;
    return false;
}

void kpart_set_replicated_at(kpart *p, int64_t hw)
{
    pthread_mutex_lock(&p->amu);
    if (!atomic_load(&p->replicated)) {
        int64_t start = ks_log_start_offset(p->log), end = ks_log_end_offset(p->log);
        atomic_store(&p->hw, hw < start ? start : hw > end ? end : hw);
        atomic_store(&p->replicated, true);
    }
    pthread_mutex_unlock(&p->amu);
}

void kpart_set_isr(kpart *p, int isr_size, int min_isr)
{
    atomic_store(&p->isr_size, isr_size);
    atomic_store(&p->min_isr, min_isr);
}

void kpart_set_replicated(kpart *p, bool on)
{
    pthread_mutex_lock(&p->amu); /* serialises mode changes */
    bool was = atomic_load(&p->replicated);
    if (on && !was) {
        /* Start where the derived HW is; records appended while the flag
         * flips are taken in by the second raise. */
        hw_raise(p, ks_log_end_offset(p->log));
        atomic_store(&p->replicated, true);
        hw_raise(p, ks_log_end_offset(p->log));
    } else if (!on && was) {
        atomic_store(&p->replicated, false);
    }
    pthread_mutex_unlock(&p->amu);
    if (!on && was) {
        notify(p, KPART_EV_HW, ks_log_end_offset(p->log));
        ack_run(p);
    }
}

bool kpart_replicated(kpart *p) { return atomic_load(&p->replicated); }

/* The HW moved to hw: waiters wake, listeners run, acknowledgements
 * complete (no lock held). */
static void hw_moved(kpart *p, int64_t hw)
{
    notify(p, KPART_EV_HW, hw);
    if (atomic_load(&p->pending) > 0)
        ack_run(p);
}

/* The durable offset may have passed what the replicas allowed
 * (kpart_advance_hw_durable): raise the HW that far, in the epoch the
 * allowance was given in, while this node leads it. */
static void hw_catch_up(kpart *p)
{
    pthread_mutex_lock(&p->amu);
    int64_t want = p->hw_want, hw = atomic_load(&p->hw);
    bool same = p->want_epoch == atomic_load(&p->epoch) && atomic_load(&p->role) == KPART_LEADER;
    pthread_mutex_unlock(&p->amu);
    if (!same || want <= hw)
        return;
    int64_t d = ks_log_durable_offset(p->log), end = ks_log_end_offset(p->log);
    int64_t to = want < d ? want : d;
    if (to > end)
        to = end;
    if (to > hw && hw_raise(p, to))
        hw_moved(p, to);
}

int64_t kpart_advance_hw_durable(kpart *p, int64_t hw)
{
    if (!atomic_load(&p->replicated))
        return KLOG_ESTATE;
    pthread_mutex_lock(&p->amu);
    int32_t e = atomic_load(&p->epoch);
    if (atomic_load(&p->role) == KPART_LEADER) {
        if (p->want_epoch != e || hw > p->hw_want)
            p->hw_want = hw;
        p->want_epoch = e;
    }
    pthread_mutex_unlock(&p->amu);
    /* after recording it: a sync finishing meanwhile catches up to it */
    int64_t d = ks_log_durable_offset(p->log);
    return kpart_advance_hw(p, hw < d ? hw : d);
}

int64_t kpart_advance_hw(kpart *p, int64_t hw)
{
    if (!atomic_load(&p->replicated))
        return KLOG_ESTATE;
    int64_t end = ks_log_end_offset(p->log);
    if (hw > end)
        hw = end;
    if (hw_raise(p, hw))
        hw_moved(p, hw);
    return atomic_load(&p->hw);
}

/* ---- leader epochs -------------------------------------------------------------------- */

/* The role or the epoch changed: whoever waits on the HW re-checks.  The
 * acknowledgements of the old term fail at the next kpart_ack_flush (the
 * caller's, with no lock held) or HW move (ack_ready). */
static void role_changed(kpart *p)
{
    notify(p, KPART_EV_ROLE | KPART_EV_HW, kpart_high_watermark(p));
}

void kpart_ack_flush(kpart *p)
{
    if (atomic_load(&p->pending) > 0)
        ack_run(p);
}

typedef struct epoch_change {
    kpart *p;
    int32_t epoch;
} epoch_change;

/*
 * ks_log_set_epoch's callback: the log's append lock is held (nothing is
 * appended meanwhile) and `end` is the first offset the new epoch writes.
 * Write the pending start truncation, epoch 0 for the records a partition
 * without a file holds, then (epoch, end).  emu held.
 */
static int record_epoch(void *arg, int64_t end)
{
    epoch_change *c = arg;
    ks_epochs *ep = c->p->epochs;
    int64_t start = ks_log_start_offset(c->p->log);
    int rc = ks_epochs_truncate_from_start(ep, start);
    if (rc >= 0 && ks_epochs_count(ep) == 0) {
        if (c->epoch == 0)
            return 0; /* the lazy (0, start) already says it */
        if (end > start)
            rc = ks_epochs_assign(ep, 0, start);
    }
    if (rc >= 0)
        rc = ks_epochs_assign(ep, c->epoch, end);
    return rc < 0 ? rc : 0;
}

int kpart_become_leader(kpart *p, int32_t epoch)
{
    if (epoch < 0)
        return -EINVAL;
    pthread_mutex_lock(&p->emu);
    int rc = KLOG_EFENCED;
    if (epoch >= latest_epoch(p)) {
        epoch_change c = { p, epoch };
        rc = ks_log_set_epoch(p->log, epoch, record_epoch, &c);
    }
    bool changed = false;
    if (rc == 0) {
        changed = atomic_exchange(&p->epoch, epoch) != epoch;
        changed |= atomic_exchange(&p->role, KPART_LEADER) != KPART_LEADER;
        /* stamped from here on: producers may append again */
        ks_log_set_follower(p->log, false);
    }
    pthread_mutex_unlock(&p->emu);
    if (changed)
        role_changed(p);
    return rc;
}

int kpart_become_follower(kpart *p, int32_t epoch)
{
    if (epoch < -1)
        return -EINVAL;
    pthread_mutex_lock(&p->emu);
    /* No producer's batch lands from here on, then the stamp goes. */
    int rc = ks_log_set_follower(p->log, true);
    if (rc == 0)
        rc = ks_log_set_epoch(p->log, -1, NULL, NULL);
    /* An epoch this node led without writing a record (its entry starts at
     * the LEO) goes, as a reopen would drop it: the leader's batches that
     * come next may be of an older epoch than it, and the follower's
     * truncation asks about the epochs its records carry. */
    if (rc == 0 && !p->read_only) {
        int r = ks_epochs_truncate_from_end(p->epochs, ks_log_end_offset(p->log));
        if (r < 0)
            rc = ks_log_fail(p->log, r);
    }
    if (rc == 0) {
        atomic_store(&p->epoch, epoch);
        atomic_store(&p->role, KPART_FOLLOWER);
    }
    pthread_mutex_unlock(&p->emu);
    if (rc == 0) {
        kpart_set_replicated_at(p, kpart_high_watermark(p));
        role_changed(p);
    }
    return rc;
}

int kpart_truncate_to(kpart *p, int64_t offset, int64_t *new_end)
{
    pthread_mutex_lock(&p->emu);
    int64_t ne = -1, end0 = ks_log_end_offset(p->log);
    int rc = ks_log_truncate_to(p->log, offset, &ne);
    if (new_end)
        *new_end = ne;
    if (p->read_only || ks_log_end_offset(p->log) >= end0) {
        /* Nothing was removed (offset at the end, out of range, or a
         * failure before the cut): an epoch that starts at the end and has
         * not written yet stays, as in Kafka. */
        pthread_mutex_unlock(&p->emu);
        return rc;
    }
    /* Even after a failure part of the log may be gone: fit the cache to
     * the end the log has now.  If that cannot be written, entries past the
     * end would describe the next appends wrongly: the log turns read-only
     * (as Kafka takes the directory offline); the next open repairs the
     * file. */
    int r = ks_epochs_truncate_from_end(p->epochs, ks_log_end_offset(p->log));
    if (r < 0) {
        ks_log_fail(p->log, r);
        if (rc == 0)
            rc = r;
    }
    /* If the stamped epoch lost its entry, the partition is now in the
     * epoch of its last batch, as after an open.  (A follower stamps
     * nothing: its epoch is its leader's.) */
    int32_t l = latest_epoch(p);
    if (atomic_load(&p->role) == KPART_LEADER && atomic_load(&p->epoch) > l) {
        ks_log_set_epoch(p->log, l, NULL, NULL);
        atomic_store(&p->epoch, l);
    }
    /* Records below the HW went: only an unclean election asks for that. */
    int64_t e = ks_log_end_offset(p->log);
    if (atomic_load(&p->replicated) && atomic_load(&p->hw) > e)
        atomic_store(&p->hw, e);
    pthread_mutex_lock(&p->amu);
    p->hw_want = -1; /* what the replicas allowed was of the records cut */
    pthread_mutex_unlock(&p->amu);
    pthread_mutex_unlock(&p->emu);
    return rc;
}

KLOG_COLD int kpart_truncate_fully(kpart *p, int64_t offset)
{
    pthread_mutex_lock(&p->emu);
    int rc = atomic_load(&p->role) == KPART_FOLLOWER ? 0 : KLOG_ESTATE;
    if (rc == 0 && p->read_only)
        rc = KLOG_EREADONLY;
    int64_t start0 = ks_log_start_offset(p->log), end0 = ks_log_end_offset(p->log);
    if (rc == 0)
        rc = ks_log_truncate_fully(p->log, offset);
    if (!p->read_only && (ks_log_start_offset(p->log) != start0 || ks_log_end_offset(p->log) != end0)) {
        /* Fit the cache to the log as it is now (even after a failure part
         * of it may be done): nothing below the start, nothing at or past
         * the end; with the log empty, no entry (Kafka clears the cache),
         * and the next copied batch records its epoch. */
        int r = ks_epochs_truncate_from_start(p->epochs, ks_log_start_offset(p->log));
        if (r >= 0)
            r = ks_epochs_truncate_from_end(p->epochs, ks_log_end_offset(p->log));
        if (r < 0) {
            ks_log_fail(p->log, r); /* the next open fits it */
            if (rc == 0)
                rc = r;
        }
    }
    int64_t end = ks_log_end_offset(p->log);
    bool moved = false;
    if (rc == 0 && atomic_load(&p->replicated)) /* start <= HW <= LEO, all of it the leader's */
        moved = atomic_exchange(&p->hw, end) != end;
    pthread_mutex_unlock(&p->emu);
    if (moved)
        hw_moved(p, end);
    return rc;
}

/* ---- repair -------------------------------------------------------------------- */

/* Append to a "; "-separated report. */
__attribute__((format(printf, 3, 4))) static void report_add(char *report, size_t size, const char *fmt, ...)
{
    if (!report || !size)
        return;
    size_t len = strlen(report);
    if (len && len + 2 < size) {
        memcpy(report + len, "; ", 3);
        len += 2;
    }
    if (len + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(report + len, size - len, fmt, ap);
    va_end(ap);
}

/* Rebuild the leader-epoch-checkpoint from the epochs the log's batches
 * carry, each from its first batch's base offset (Kafka rebuilds the cache
 * the same way when it recovers segments).  A log all in epoch 0 needs no
 * file (the lazy epoch 0): it is removed.  emu held. */
KLOG_COLD static int epochs_rebuild(kpart *p, char *report, size_t size)
{
    ks_epochs *c = NULL;
    int rc = ks_epochs_new(&c, p->io, p->dir);
    kl_epoch_entry *v = NULL;
    size_t n = 0, cap = 0;
    int64_t at = ks_log_start_offset(p->log), end = ks_log_end_offset(p->log);
    while (rc == 0 && at < end) {
        ks_view view;
        if ((rc = ks_log_read(p->log, at, 1u << 20, &view)) < 0)
            break;
        for (size_t off = 0; off < view.len;) {
            kf_batch_info bi;
            ssize_t len = kf_batch_parse(view.data + off, view.len - off, &bi);
            if (len <= 0)
                break;
            if (bi.leader_epoch >= 0 && (n == 0 || bi.leader_epoch > v[n - 1].epoch)) {
                if ((rc = klog__vec_reserve(&v, &cap, n + 1, sizeof *v)) < 0)
                    break;
                v[n++] = (kl_epoch_entry){ bi.leader_epoch, bi.base_offset };
            }
            off += (size_t)len;
        }
        bool progress = view.next_offset > at;
        at = view.next_offset;
        ks_view_release(&view);
        if (!progress)
            break;
    }
    if (rc == 0 && (n == 0 || (n == 1 && v[0].epoch == 0))) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", p->dir, KS_EPOCH_FILE);
        if ((rc = kio_unlink(p->io, path)) == -ENOENT)
            rc = 0;
        if (rc == 0)
            report_add(report, size, KS_EPOCH_FILE " removed: every batch is in epoch 0");
    } else {
        for (size_t i = 0; rc >= 0 && i < n; i++)
            rc = ks_epochs_assign(c, v[i].epoch, v[i].start_offset);
        if (rc >= 0)
            rc = ks_epochs_truncate_from_start(c, ks_log_start_offset(p->log));
        if (rc >= 0) {
            rc = 0;
            report_add(report, size, KS_EPOCH_FILE " rebuilt from the log's batches: %zu epoch%s, the latest %d "
                       "from offset %lld", n, n == 1 ? "" : "s", (int)v[n - 1].epoch, (long long)v[n - 1].start_offset);
        }
    }
    free(v);
    if (rc == 0) {
        ks_epochs *old = p->epochs;
        p->epochs = c;
        c = old;
    }
    ks_epochs_close(c);
    return rc;
}

int kpart_repair(kpart *p, char *report, size_t size)
{
    if (report && size)
        report[0] = '\0';
    pthread_mutex_lock(&p->emu);
    int rc = ks_log_repair(p->log, report, size);
    if (rc == 0 && p->epochs_bad) {
        if ((rc = epochs_rebuild(p, report, size)) == 0)
            p->epochs_bad = false;
    } else if (rc == 0) {
        /* the log may have lost its start or its end: fit the cache */
        int r = ks_epochs_truncate_from_start(p->epochs, ks_log_start_offset(p->log));
        if (r >= 0)
            r = ks_epochs_truncate_from_end(p->epochs, ks_log_end_offset(p->log));
        rc = r < 0 ? r : 0;
    }
    if (rc < 0 && !ks_log_damage(p->log) && rc != KLOG_ESTATE)
        ks_log_fail(p->log, rc); /* the log repaired, the cache not written: read-only */
    if (rc == 0) {
        int32_t e = latest_epoch(p);
        atomic_store(&p->epoch, e);
        ks_log_set_epoch(p->log, e, NULL, NULL);
    }
    pthread_mutex_unlock(&p->emu);
    return rc;
}

/* The cache as the partition sees it (the module comment): how many
 * entries, and in *skip how many of the cache's lie wholly below the log
 * start (those followed by one starting at or below it).  emu held. */
static size_t view_count(kpart *p, int64_t start, size_t *skip)
{
    size_t n = ks_epochs_count(p->epochs);
    size_t k = 0;
    ks_epoch_entry e;
    while (k + 1 < n && ks_epochs_entry(p->epochs, k + 1, &e) == 0 && e.start_offset <= start)
        k++;
    *skip = k;
    return n == 0 ? 1 : n - k;
}

/* Entry i of that view (i < view_count's answer).  emu held. */
static ks_epoch_entry view_at(kpart *p, int64_t start, size_t skip, size_t i)
{
    ks_epoch_entry e = { 0, start };
    if (ks_epochs_count(p->epochs) == 0)
        return e;
    ks_epochs_entry(p->epochs, skip + i, &e);
    if (i == 0 && e.start_offset < start)
        e.start_offset = start;
    return e;
}

size_t kpart_epoch_entries(kpart *p, ks_epoch_entry *out, size_t cap)
{
    pthread_mutex_lock(&p->emu);
    int64_t start = ks_log_start_offset(p->log);
    size_t skip, n = view_count(p, start, &skip);
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = view_at(p, start, skip, i);
    pthread_mutex_unlock(&p->emu);
    return n;
}

void kpart_end_offset_for_epoch(kpart *p, int32_t epoch, int32_t *out_epoch, int64_t *out_end)
{
    pthread_mutex_lock(&p->emu);
    int64_t start = ks_log_start_offset(p->log), end = ks_log_end_offset(p->log);
    int32_t latest = latest_epoch(p);
    if (ks_epochs_count(p->epochs) == 0) {
        /* the one entry (0, start) */
        *out_epoch = KS_EPOCH_UNDEFINED;
        *out_end = KS_EPOCH_OFFSET_UNDEFINED;
        if (epoch == 0)
            *out_epoch = 0, *out_end = end;
        else if (epoch < 0 && epoch != KS_EPOCH_UNDEFINED)
            *out_epoch = epoch, *out_end = start;
    } else {
        ks_epochs_end_offset_for(p->epochs, epoch, end, out_epoch, out_end);
        /* The first epoch above the one asked for starts at or below the
         * log start: truncated from the start, the cache would hold it as
         * its first entry, at the start, and nothing below it. */
        if (epoch != latest && *out_end != KS_EPOCH_OFFSET_UNDEFINED && *out_end <= start) {
            *out_epoch = epoch;
            *out_end = start;
        }
    }
    pthread_mutex_unlock(&p->emu);
}

int32_t kpart_epoch_for_offset(kpart *p, int64_t offset)
{
    pthread_mutex_lock(&p->emu);
    int32_t e = KS_EPOCH_UNDEFINED;
    if (offset >= ks_log_start_offset(p->log))
        e = ks_epochs_count(p->epochs) == 0 ? 0 : ks_epochs_epoch_for_offset(p->epochs, offset);
    pthread_mutex_unlock(&p->emu);
    return e;
}
