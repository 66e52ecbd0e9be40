/*
 * lib/partition/partition.c - the partition object: log, high watermark,
 * epoch and role, listeners and waiters, the acknowledgement queue.
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
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/common.h"
#include "partition/partition.h"

struct kpart {
    /* read on every append and read; first, as kpart_head says */
    ks_log *log;
    _Atomic bool replicated;     /* HW set by kpart_advance_hw, not derived */
    _Atomic int32_t epoch;
    _Atomic int role;
    _Atomic int64_t hw;          /* the HW while replicated */

    /* listeners and waiters (lmu) */
    _Atomic unsigned active;     /* listeners + armed waiters: the notify fast path */
    pthread_mutex_t lmu;
    kpart_waiter **w;
    unsigned nw, wcap;
    kpart_listener *listeners;

    /* acknowledgements (amu) */
    _Atomic int64_t pending;     /* queued or being completed */
    pthread_mutex_t amu;
    pthread_cond_t acv;          /* the runner finished (close waits on it) */
    kpart_ack *head, *tail;
    bool running;                /* a thread is completing from the queue */
    bool closed;
};

_Static_assert(offsetof(struct kpart, log) == offsetof(kpart_head, log), "kpart_head mirrors struct kpart");

/* ---- notifications --------------------------------------------------------- */

/* Wake armed waiters (on a HW move) and call the listeners of ev. */
static void notify(kpart *p, unsigned ev, int64_t offset)
{
    /* seq_cst pairs with the waiter's arm-then-recheck: either it sees the
     * new data, or we see it counted in `active`. */
    if (atomic_load(&p->active) == 0)
        return;
    pthread_mutex_lock(&p->lmu);
    if (ev & KPART_EV_HW)
        for (unsigned i = 0; i < p->nw; i++) {
            kpart_waiter *w = p->w[i];
            if (atomic_exchange(&w->armed, 0)) {
                uint64_t one = 1;
                ssize_t r = write(w->efd, &one, sizeof one);
                (void)r; /* EAGAIN: the counter is already non-zero, it is readable */
            }
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
    if (p->nw == p->wcap) {
        unsigned nc = p->wcap ? p->wcap * 2 : 4;
        kpart_waiter **n = realloc(p->w, nc * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&p->lmu);
            return -ENOMEM;
        }
        p->w = n;
        p->wcap = nc;
    }
    p->w[p->nw++] = w;
    pthread_mutex_unlock(&p->lmu);
    return 0;
}

void kpart_waiter_remove(kpart *p, kpart_waiter *w)
{
    pthread_mutex_lock(&p->lmu);
    for (unsigned i = 0; i < p->nw; i++)
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

int kpart_open(kpart **out, kio *io, const char *dir, const ks_log_config *cfg)
{
    *out = NULL;
    kpart *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    int rc = ks_log_open(&p->log, io, dir, cfg);
    if (rc < 0) {
        free(p);
        return rc;
    }
    pthread_mutex_init(&p->lmu, NULL);
    pthread_mutex_init(&p->amu, NULL);
    pthread_cond_init(&p->acv, NULL);
    atomic_store(&p->role, KPART_LEADER);
    ks_log_set_listener(p->log, on_append, p);
    *out = p;
    return 0;
}

static void ack_run(kpart *p);

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
    pthread_mutex_destroy(&p->lmu);
    pthread_mutex_destroy(&p->amu);
    pthread_cond_destroy(&p->acv);
    free(p->w);
    free(p);
    return log;
}

int kpart_close(kpart *p)
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
void kpart_set_leader_epoch(kpart *p, int32_t epoch) { atomic_store(&p->epoch, epoch); }
enum kpart_role kpart_role(kpart *p) { return (enum kpart_role)atomic_load(&p->role); }
void kpart_set_role(kpart *p, enum kpart_role role) { atomic_store(&p->role, (int)role); }

/* ---- append and read ----------------------------------------------------------- */

int kpart_append(kpart *p, ks_batch *batches, unsigned n, unsigned flags)
{
    int32_t e = atomic_load_explicit(&p->epoch, memory_order_relaxed);
    if (KLOG_UNLIKELY(e != 0))
        for (unsigned i = 0; i < n; i++)
            if (batches[i].len >= KF_HDR_SIZE) /* a shorter one fails in the log */
                kf_batch_set_leader_epoch(batches[i].batch, e);
    return ks_log_append(p->log, batches, n, flags);
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

/* May a completes now?  (amu held, or the fast path's own node.) */
static bool ack_ready(kpart *p, const kpart_ack *a)
{
    if (a->err || a->level == KPART_ACK_LEADER)
        return true;
    if (!atomic_load_explicit(&p->replicated, memory_order_acquire))
        return true;
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
    a->end = end;
    a->level = level;
    a->err = err;
    a->next = NULL;
    if (KLOG_LIKELY(atomic_load(&p->pending) == 0) && ack_ready(p, a)) {
        a->done(a, err); /* the identity with one replica: no queue */
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

int64_t kpart_advance_hw(kpart *p, int64_t hw)
{
    if (!atomic_load(&p->replicated))
        return KLOG_ESTATE;
    int64_t end = ks_log_end_offset(p->log);
    if (hw > end)
        hw = end;
    if (hw_raise(p, hw)) {
        notify(p, KPART_EV_HW, hw);
        if (atomic_load(&p->pending) > 0)
            ack_run(p);
    }
    return atomic_load(&p->hw);
}
