/*
 * lib/storage/append.c - the write side of the partition log: append, group
 * commit, roll, the timed tick.  Lock order: see struct ks_log in internal.h.
 *
 * Visibility: a batch is visible to readers once segment->size covers it;
 * size is published with release ordering after the bytes are in the page
 * cache and the indexes updated, and end_offset right after it.
 */
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "common/common.h"
#include "storage/internal.h"

/* Add to a statistics counter only ever written under append_mu. */
#define ST_ADD(ctr, v) \
    atomic_store_explicit(&(ctr), atomic_load_explicit(&(ctr), memory_order_relaxed) + (v), memory_order_relaxed)

static void note_sync(ks_log *log, uint64_t ns)
{
    atomic_fetch_add_explicit(&log->st.syncs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&log->st.sync_ns, ns, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&log->st.sync_ns_max, memory_order_relaxed);
    while (ns > m && !atomic_compare_exchange_weak(&log->st.sync_ns_max, &m, ns))
        ;
}

/* Durable offset only moves forward. */
static void advance_durable(ks_log *log, int64_t to)
{
    int64_t cur = atomic_load(&log->durable);
    while (cur < to && !atomic_compare_exchange_weak(&log->durable, &cur, to))
        ;
}

/* ---- sync ------------------------------------------------------------------ */

/*
 * Group commit.  One thread at a time holds the sync slot (sync_running,
 * under sync_mu) and runs the fdatasync: a group_sync leader, or a lone
 * durable appender that links the sync to its write.  Threads arriving
 * meanwhile wait in group_sync, and the next leader's sync covers all of
 * them at once.
 */

/* Take the sync slot if it is free (never waits).  True: the caller runs
 * the sync and must sync_release. */
static bool sync_claim(ks_log *log)
{
    pthread_mutex_lock(&log->sync_mu);
    bool got = !log->sync_running;
    log->sync_running = true;
    pthread_mutex_unlock(&log->sync_mu);
    return got;
}

/*
 * The slot holder's sync is over: record what it did and free the slot.
 * rc < 0: the sync failed, and the log turns read-only (the first error
 * sticks).  Otherwise offsets below durable_to are durable (0: the sync
 * never ran).  Wakes every thread waiting in group_sync.  Takes sync_mu.
 */
static void sync_release(ks_log *log, int rc, int64_t durable_to)
{
    pthread_mutex_lock(&log->sync_mu);
    log->sync_running = false;
    bool first = false;
    if (rc < 0) {
        int zero = 0;
        first = atomic_compare_exchange_strong(&log->failed, &zero, rc);
    } else {
        advance_durable(log, durable_to);
    }
    pthread_cond_broadcast(&log->sync_cv);
    pthread_mutex_unlock(&log->sync_mu);
    if (first)
        ks__failed_now(log, rc);
}

/* The leader's sync (slot held, no lock): fdatasync the active segment.
 * Returns its result; *covers receives the end offset it makes durable.
 * *sticky: a failure of the sync itself (the log turns read-only), not of
 * what came before it (reopening the file, the directory's sync). */
static int leader_sync(ks_log *log, int64_t *covers, bool *sticky)
{
    *sticky = false;
    int rc = ks__dir_durable(log);
    if (rc < 0)
        return rc;
    /* Snapshot what this sync will cover: the active segment and the
     * end offset, consistently (a roll syncs the segment it leaves). */
    pthread_mutex_lock(&log->append_mu);
    ks_segment *s = ks__active(log);
    int h = ks__seg_h(log, s);
    if (h < 0) {
        pthread_mutex_unlock(&log->append_mu);
        return h;
    }
    ks__seg_ref(s);
    s->h_users++; /* keeps s->h open across a roll, and the cache off it */
    *covers = atomic_load(&log->end);
    pthread_mutex_unlock(&log->append_mu);
    uint64_t t0 = klog__now_ns();
    rc = kio_datasync(log->io, h);
    *sticky = true;
    note_sync(log, klog__now_ns() - t0);
    pthread_mutex_lock(&log->append_mu);
    if (--s->h_users == 0 && s->sealed && s->h >= 0 && s != ks__active(log)) {
        kio_file_close(log->io, s->h);
        s->h = -1;
    }
    pthread_mutex_unlock(&log->append_mu);
    ks__seg_unref(s);
    return rc;
}

/* Make offsets below target durable: wait for the slot holder's sync, or
 * become the leader.  Returns 0 or the log's sticky sync error. */
static int group_sync(ks_log *log, int64_t target)
{
    pthread_mutex_lock(&log->sync_mu);
    for (;;) {
        int f = atomic_load(&log->failed);
        if (atomic_load(&log->durable) >= target) {
            pthread_mutex_unlock(&log->sync_mu);
            return 0;
        }
        if (f) {
            pthread_mutex_unlock(&log->sync_mu);
            return f;
        }
        if (log->sync_running) {
            pthread_cond_wait(&log->sync_cv, &log->sync_mu);
            continue;
        }
        log->sync_running = true;
        pthread_mutex_unlock(&log->sync_mu);
        int64_t covers = 0;
        bool sticky;
        int rc = leader_sync(log, &covers, &sticky);
        if (rc < 0 && !sticky) {
            sync_release(log, 0, 0); /* nothing was synced, nothing failed for good */
            return rc;
        }
        sync_release(log, rc, covers);
        pthread_mutex_lock(&log->sync_mu);
    }
}

int ks_log_sync(ks_log *log)
{
    if (!log)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    return group_sync(log, atomic_load(&log->end));
}

/* ---- roll ------------------------------------------------------------------ */

/* Seal the active segment and start a new one at `base`.  append_mu held. */
KLOG_COLD int ks__roll(ks_log *log, int64_t base)
{
    ks_segment *old = ks__active(log);
    int rc;
    ks__prefill_quiesce(log);
    atomic_store(&log->pf_off, false); /* the next segment may try again */
    int h = ks__seg_h(log, old);
    if (h < 0)
        return h; /* could not reopen it: nothing changed */
    if ((rc = ks__cut_zero_tail(log, old)) < 0)
        return ks__fail_sync(log, rc);
    uint64_t t0 = klog__now_ns();
    if ((rc = kio_datasync(log->io, h)) < 0)
        return ks__fail_sync(log, rc);
    note_sync(log, klog__now_ns() - t0);
    if ((rc = ks__dir_durable(log)) < 0)
        return rc;
    atomic_fetch_add_explicit(&log->st.rolls, 1, memory_order_relaxed);
    advance_durable(log, atomic_load(&old->next_offset));
    pthread_mutex_lock(&log->sync_mu);
    pthread_cond_broadcast(&log->sync_cv);
    pthread_mutex_unlock(&log->sync_mu);
    bool counted = old->ix_files; /* still the files it was opened with: counted since */
    if ((rc = ks__seg_write_indexes(old, log->dir)) < 0)
        return rc;
    if (!counted)
        ks__disk_add(log, (int64_t)old->ix_bytes);
    ks_segment *s;
    rc = ks__seg_new(&s, log->io, log->dir, base, ks__map_cap(log), log->cfg.index_interval_bytes, true);
    if (rc == -EEXIST) {
        /* A leftover file at this base (an earlier failed roll): it holds no
         * acknowledged data, start it afresh. */
        char name[KS_NAME_MAX];
        ks_segment_name(name, sizeof name, base, ".log");
        if ((rc = ks__unlink_in(log, name)) == 0)
            rc = ks__seg_new(&s, log->io, log->dir, base, ks__map_cap(log),
                             log->cfg.index_interval_bytes, true);
    }
    if (rc < 0)
        return rc;
    s->active_since_ms = ks__now(log); /* segment.ms by the clock counts from here */
    /* The directory entry of the new segment is durable before any data
     * lands in it. */
    if ((rc = kio_dirsync(log->io, log->dir)) < 0 || (rc = ks__list_push(log, s)) < 0) {
        ks__unlink_in(log, strrchr(s->path, '/') + 1);
        ks__seg_unref(s);
        return rc;
    }
    /* A group-commit leader may be about to fdatasync the old handle: it
     * closes it itself when done (a closed fd could be reused by another
     * file, and the sync would then "succeed" on the wrong one). */
    old->sealed = true;
    ks__seg_h_drop(log, old);
    ks__seg_ix_sealed(old);
    ks__seg_h_adopt(log, s);
    pthread_mutex_lock(&log->ckpt_mu);
    int64_t start = atomic_load(&log->start);
    rc = ks__ckpt_write(log->io, log->dir, base, start);
    if (rc == 0) {
        log->recovery_point = base;
        log->ckpt_start = start;
    }
    pthread_mutex_unlock(&log->ckpt_mu);
    if (rc == 0 && atomic_load(&log->small) == 0)
        ks__small_files_count(log); /* the first checkpoint may have made the file */
    return rc;
}

/* Would a batch of len bytes, after `pending` bytes not yet published in
 * s, overflow the segment (or is the segment too old)?  An empty segment
 * takes any one batch. */
static bool need_roll(ks_log *log, ks_segment *s, uint64_t pending, size_t len, int64_t now, int64_t ts)
{
    uint64_t size = atomic_load_explicit(&s->size, memory_order_relaxed) + pending;
    if (size == 0)
        return false;
    /* the segment's mapping bounds it too (segment.bytes may have grown
     * since it was created: ks_log_reconfigure) */
    uint64_t limit = KLOG_MIN(log->cfg.segment_bytes, (uint64_t)s->map_cap - log->cfg.max_batch_bytes);
    if (size + len > limit)
        return true;
    if (log->cfg.segment_ms <= 0)
        return false;
    if (s->active_since_ms == 0)
        s->active_since_ms = now;
    /* Kafka's segment.ms: an append rolls when its batch's timestamp is
     * segment.ms past the segment's first, so that records stamped long
     * ago (a replay, a mirror, readings forwarded after days offline) do
     * not roll a segment per batch, as comparing them with the clock
     * would.  The tick (ts < 0), and a batch without timestamps, go by
     * the clock from the later of the first timestamp and the moment the
     * segment became active: old records roll at most every segment.ms. */
    int64_t waited = ts >= 0 && s->first_ts >= 0 ? ts - s->first_ts
                                                 : now - KLOG_MAX(s->active_since_ms, s->first_ts);
    return waited >= log->cfg.segment_ms;
}

/* ---- append: reserve / gather / write / publish / finish --------------------- */

#define KS_WRITE_MAX 64 /* batches queued in one submission */

/* A call to ks_log_append in progress. */
typedef struct ks_call {
    ks_batch *b;          /* the caller's batches */
    unsigned n;           /* how many */
    unsigned i;           /* the first not yet taken */
    unsigned flags;       /* KS_APPEND_* */
    bool durable;         /* acknowledged only once synced */
    bool synced;          /* a sync linked to the last write made them durable */
    int64_t now;          /* the log's clock, read under append_mu */
    uint64_t written;     /* bytes written */
} ks_call;

/* One submission: the batches gather takes, write_run writes and publish
 * makes visible, all under one hold of append_mu. */
typedef struct ks_run {
    ks_segment *s;        /* the active segment they go to */
    uint64_t pos0;        /* its published size when the run began */
    uint64_t pos;         /* where the next batch would go */
    unsigned k;           /* batches taken */
    kio_wreq req[KS_WRITE_MAX];
    struct iovec iov[KS_WRITE_MAX];
    kf_batch_info bi[KS_WRITE_MAX];
    ks_pidundo undo[KS_WRITE_MAX];
} ks_run;

/* Reserve need bytes of the shared space before writing them, making room
 * (make_room, no lock held) when the limit would be passed. */
static int space_reserve(ks_log *log, uint64_t need)
{
    ks_space *sp = log->space;
    for (int tries = 0;; tries++) {
        uint64_t cur = atomic_load(&sp->used);
        if (sp->limit == 0 || cur + need <= sp->limit) {
            if (!atomic_compare_exchange_weak(&sp->used, &cur, cur + need))
                continue;
            atomic_fetch_add(&log->disk, need);
            return 0;
        }
        if (!sp->make_room || tries >= 64)
            return KLOG_EDISKFULL;
        int rc = sp->make_room(sp->arg, log, need);
        if (rc < 0)
            return rc;
    }
}

/* Offsets the batch uses; a batch's records are numbered densely. */
static int check_batch(ks_log *log, ks_batch *b, unsigned flags, kf_batch_info *bi)
{
    if (!b->batch || b->len < KF_HDR_SIZE)
        return KLOG_ECORRUPT;
    if (b->len > log->cfg.max_batch_bytes)
        return KLOG_ETOOBIG;
    ssize_t n = kf_batch_parse(b->batch, b->len, bi);
    if (n < 0)
        return (int)n;
    if ((size_t)n != b->len)
        return KLOG_ECORRUPT;
    if ((flags & KS_APPEND_VERIFY) && kf_batch_verify(b->batch, b->len) != 0)
        return KLOG_ECORRUPT;
    return 0;
}

/*
 * Gather phase: take the caller's batches from c->i on, as many as fit in
 * the active segment and one submission; check them and give them their
 * offsets.  Rolls first when the run's first batch does not fit.  An
 * idempotent producer's duplicate at the head of a run is answered (its
 * result KLOG_EDUPLICATE, its base offset where it already is) and passed
 * over; one later ends the run.  Returns 0, or the error of the batch that
 * ended the run (its result set; those before it are still written).
 * r->k == 0: nothing to write.
 */
/* The active segment ready to take batches (append_mu held): its indexes
 * its own, in growable memory (after a reopen they are still in their
 * files), and its file open (the cache may have closed it).  Returns the
 * handle or an error. */
static int active_ready(ks_log *log, ks_segment *s)
{
    if (KLOG_UNLIKELY(s->ix_files || s->ix_state != KS_IX_HEAP)) {
        int rc = ks__seg_ix_own(log, s);
        if (rc < 0)
            return rc;
    }
    return ks__seg_h(log, s);
}

/*
 * A follower's batch at `base`, above the log's end `next`: its leader's
 * log has a gap there (compaction removed those offsets), and the
 * leader's offsets stand, as a Kafka follower keeps them.  Before the
 * batch is written, cleaner.ckpt says that offsets below its end may have
 * gaps (recovery then accepts the jump, as after compaction), and the
 * segment is marked for its readers.  append_mu held.  Returns 0 or the
 * checkpoint write's error.
 */
static int replica_gap(ks_log *log, ks_segment *s, const kf_batch_info *bi)
{
    if (s->base >= atomic_load(&log->gap_limit)) {
        int rc = ks__cleaner_state_set(log, kf_batch_last_offset(bi) + 1, -1);
        if (rc < 0)
            return rc;
    }
    if (!atomic_load(&s->gaps))
        atomic_store(&s->gaps, true);
    return 0;
}

/* Offsets relative to a segment's base are 32-bit in its index (Kafka
 * rolls at the same bound): a follower's batch past a gap this large
 * starts a segment of its own. */
#define KS_REL_MAX INT32_MAX

static int gather(ks_log *log, ks_call *c, ks_run *r)
{
    r->k = 0;
    r->s = ks__active(log);
    r->pos0 = r->pos = atomic_load_explicit(&r->s->size, memory_order_relaxed);
    int64_t next = atomic_load(&log->end);
    int h = active_ready(log, r->s);
    if (h < 0) {
        c->b[c->i].result = h;
        return h;
    }
    while (c->i + r->k < c->n && r->k < KS_WRITE_MAX) {
        unsigned k = r->k;
        ks_batch *b = &c->b[c->i + k];
        int cr = check_batch(log, b, c->flags, &r->bi[k]);
        if (cr == 0 && need_roll(log, r->s, r->pos - r->pos0, b->len, c->now, r->bi[k].max_timestamp)) {
            if (k > 0)
                break; /* write what we have, roll on the next round */
            if ((cr = ks__roll(log, next)) == 0) {
                r->s = ks__active(log);
                r->pos0 = r->pos = 0;
                if ((h = active_ready(log, r->s)) < 0)
                    cr = h;
            }
        }
        int64_t dup_base = -1;
        bool replica = c->flags & KS_APPEND_REPLICA;
        if (cr == 0 && replica && kf_batch_last_offset(&r->bi[k]) - r->s->base > KS_REL_MAX &&
            r->bi[k].base_offset > next) {
            if (k > 0)
                break; /* write what we have, roll on the next round */
            if ((cr = ks__roll(log, r->bi[k].base_offset)) == 0) {
                r->s = ks__active(log);
                r->pos0 = r->pos = 0;
                if ((h = active_ready(log, r->s)) < 0)
                    cr = h;
            }
        }
        if (cr == 0 && log->follower && !replica)
            cr = KLOG_ENOTLEADER; /* a follower's log takes its leader's batches only */
        if (cr == 0 && replica && r->bi[k].base_offset < next)
            cr = KLOG_EOFFSET; /* a follower's batch must start at or past where the log ends */
        if (cr == 0 && replica && r->bi[k].base_offset > next) {
            if ((cr = replica_gap(log, r->s, &r->bi[k])) == 0)
                next = r->bi[k].base_offset;
        }
        if (cr == 0)
            cr = ks__pid_check(log, &r->bi[k], next, replica, &dup_base, &r->undo[k]);
        if (cr == KLOG_EDUPLICATE) {
            if (k > 0)
                break; /* write the run first; the duplicate next round */
            /* Already in the log (a retried batch): not written again. */
            b->result = KLOG_EDUPLICATE;
            b->base_offset = dup_base;
            c->i++;
            continue;
        }
        if (cr < 0) {
            b->result = cr;
            return cr;
        }
        if (!replica) {
            kf_batch_set_base_offset(b->batch, next);
            if (log->stamp)
                kf_batch_set_leader_epoch(b->batch, log->stamp_epoch);
        }
        r->bi[k].base_offset = next;
        b->base_offset = next;
        next += r->bi[k].last_offset_delta + 1;
        r->iov[k] = (struct iovec){ b->batch, b->len };
        r->req[k] = (kio_wreq){ h, &r->iov[k], 1, r->pos };
        r->pos += b->len;
        r->k++;
    }
    return 0;
}

/* A write fell short after `done` batches: keep those, cut away the
 * partial one so that the next append starts on a clean boundary, and
 * forget the producer state of the batches not kept. */
static void cut_partial(ks_log *log, ks_call *c, ks_run *r, unsigned done, int err)
{
    uint64_t keep = r->req[done].off;
    for (unsigned j = r->k; j-- > done;)
        ks__pid_undo(log, &r->undo[j]);
    ks__prefill_quiesce(log);
    ks__zero_tail_gone(r->s);
    int tr = kio_truncate(log->io, r->s->h, keep);
    if (tr < 0)
        ks__fail_sync(log, tr);
    c->b[c->i + done].result = err;
    r->k = done;
}

/*
 * Write phase: keep the zeroed tail ahead, then write the run in one
 * submission, with the fdatasync linked to it if *link (the caller holds
 * the sync slot).  A short write leaves r->k at the batches kept
 * (cut_partial).  When the linked sync did not make them durable, the slot
 * is released here and *link cleared.  Returns 0 or the first error.
 */
static int write_run(ks_log *log, ks_call *c, ks_run *r, bool *link)
{
    bool tail = c->durable && !(log->space && log->space->limit);
    if (log->pf_hook) {
        if (tail && r->s->file_end <= r->pos0 && !atomic_load(&log->pf_busy))
            ks__prefill(log, r->s, r->pos); /* no tail at all: the first chunk inline */
        ks__prefill_ask(log, r->s, r->pos, tail); /* every append: none may write into a step in flight */
    } else if (tail) {
        ks__prefill(log, r->s, r->pos);
    }
    /* what this process writes needs no checking by its readers (a segment
     * reopened from disk becomes trusted from its first append here on) */
    if (KLOG_UNLIKELY(atomic_load_explicit(&r->s->trusted_from, memory_order_relaxed) > r->pos0))
        ks__seg_proven_from(r->s, r->pos0);
    unsigned done = 0;
    uint64_t t0 = *link ? klog__now_ns() : 0;
    int wr = kio_pwritev_many(log->io, r->req, r->k, *link ? KIO_W_DSYNC : 0, &done);
    if (KLOG_LIKELY(wr == 0)) {
        if (*link)
            note_sync(log, klog__now_ns() - t0); /* write and sync: counts as the sync's time */
        return 0;
    }
    bool all_written = done == r->k;
    if (!all_written)
        cut_partial(log, c, r, done, wr);
    if (*link) {
        /* Every write landed and the linked sync failed: read-only.  Or a
         * write fell short, and the sync never ran. */
        sync_release(log, all_written ? wr : 0, 0);
        *link = false;
    }
    return wr;
}

/* Publish phase: index and count the run's batches, then make them
 * visible: the segment's size (release), then the log's end. */
static void publish(ks_log *log, ks_call *c, ks_run *r)
{
    uint64_t recs = 0, bytes = 0;
    for (unsigned j = 0; j < r->k; j++) {
        recs += (uint64_t)r->bi[j].record_count;
        bytes += r->iov[j].iov_len;
        ks__seg_note_batch(r->s, &r->bi[j], r->req[j].off, r->iov[j].iov_len, log->cfg.index_interval_bytes);
        c->b[c->i + j].result = 0;
    }
    c->written += bytes;
    log->unsynced_records += recs;
    /* statistics: append_mu is held, so plain adds (read with relaxed
     * loads by ks_log_get_stats) */
    ST_ADD(log->st.batches, r->k);
    ST_ADD(log->st.records, recs);
    ST_ADD(log->st.bytes, bytes);
    if (r->k == 0)
        return;
    const kf_batch_info *last = &r->bi[r->k - 1];
    int64_t new_end = last->base_offset + last->last_offset_delta + 1;
    atomic_store_explicit(&r->s->next_offset, new_end, memory_order_relaxed);
    atomic_store_explicit(&r->s->size, r->req[r->k - 1].off + r->iov[r->k - 1].iov_len, memory_order_release);
    atomic_store_explicit(&log->end, new_end, memory_order_release);
    if (log->unsynced_since_ms < 0)
        log->unsynced_since_ms = c->now;
}

/* Gather, write and publish run after run until every batch is taken or
 * one fails (append_mu held).  Returns 0 or the first error. */
static int append_runs(ks_log *log, ks_call *c)
{
    int rc = 0;
    while (c->i < c->n && rc == 0) {
        if (atomic_load(&log->failed))
            return KLOG_EREADONLY;
        ks_run r;
        rc = gather(log, c, &r);
        if (r.k == 0)
            break;
        /* A lone durable appender links its fdatasync to the write: one
         * submission, and the sync cannot run ahead of the data.  With
         * company, the write goes alone and the group shares one sync. */
        bool link = c->durable && !(c->flags & KS_APPEND_EARLY) && c->i + r.k == c->n &&
                    atomic_load(&log->inflight) == 1 &&
                    ks__dir_durable(log) == 0 && sync_claim(log);
        int wr = write_run(log, c, &r, &link);
        if (wr < 0)
            rc = wr;
        publish(log, c, &r);
        if (link) {
            sync_release(log, 0, atomic_load(&log->end));
            c->synced = true;
        }
        c->i += r.k;
    }
    return rc;
}

/* INTERVAL durability (append_mu held): is the log's flush due?  If so the
 * count starts again, and the caller syncs. */
static bool interval_flush_due(ks_log *log, int64_t now)
{
    if (log->cfg.durability != KS_DURABILITY_INTERVAL)
        return false;
    bool due = (log->cfg.flush_records && log->unsynced_records >= log->cfg.flush_records) ||
               (log->cfg.flush_ms && log->unsynced_since_ms >= 0 && now - log->unsynced_since_ms >= log->cfg.flush_ms);
    if (due) {
        log->unsynced_records = 0;
        log->unsynced_since_ms = -1;
    }
    return due;
}

/*
 * Finish phase (no lock held): settle the disk count against what was
 * reserved, wait for the sync the batches need (durable: before they are
 * acknowledged; an interval flush: the log's), tell the listener.
 */
static int finish(ks_log *log, ks_call *c, int rc, uint64_t reserved, int64_t end, bool flush)
{
    if (c->written != reserved)
        ks__disk_add(log, (int64_t)c->written - (int64_t)reserved);
    /* anything written (a duplicate may come first)?  Every batch is at
     * least a header long, so bytes written means a batch appended. */
    bool appended = c->written > 0;
    bool early = false;
    if (appended && (c->durable || flush) && !c->synced) {
        /* A replicated leader: its followers fetch while it syncs. */
        if ((c->flags & KS_APPEND_EARLY) && log->listener) {
            log->listener(log->listener_arg, end);
            early = true;
        }
        int sr = group_sync(log, end);
        if (sr < 0 && c->durable) {
            /* Not durable: these batches are not acknowledged. */
            for (unsigned j = 0; j < c->n; j++)
                if (c->b[j].result == 0)
                    c->b[j].result = sr;
            rc = sr;
        }
    }
    if (appended && log->listener && !early)
        log->listener(log->listener_arg, end);
    return rc;
}

static int ckpt_periodic(ks_log *log);

/* ks_log_append once its bytes are reserved (reserved: 0 without a disk
 * budget, where they are counted once written).  Past ckpt_unchecked_max
 * unchecked bytes, the appender checkpoints (waits for the sync). */
/* Bytes of the active segment (base, size bytes long) past the last
 * periodic checkpoint: all of them when that was in an earlier segment.
 * Without ckpt_mu: a pair read while a checkpoint moves it may be stale
 * (a checkpoint one append or tick late) or torn (a position past size:
 * none, until the next look). */
static uint64_t ckpt_unchecked(ks_log *log, int64_t base, uint64_t size)
{
    uint64_t pos = base == atomic_load(&log->ckpt_seg) ? atomic_load(&log->ckpt_pos) : 0;
    return size > pos ? size - pos : 0;
}

static int append_reserved(ks_log *log, ks_batch *batches, unsigned n, unsigned flags, uint64_t reserved)
{
    ks_call c = { .b = batches, .n = n, .flags = flags,
                  .durable = log->cfg.durability == KS_DURABILITY_ALWAYS || (flags & KS_APPEND_SYNC) };
    atomic_fetch_add(&log->inflight, 1);
    pthread_mutex_lock(&log->append_mu);
    c.now = ks__now(log);
    int rc = append_runs(log, &c);
    int64_t end = atomic_load(&log->end);
    bool flush = interval_flush_due(log, c.now);
    ks_segment *s = ks__active(log);
    uint64_t size = atomic_load(&s->size);
    int64_t base = s->base;
    pthread_mutex_unlock(&log->append_mu);
    atomic_fetch_sub(&log->inflight, 1);
    rc = finish(log, &c, rc, reserved, end, flush);
    uint64_t max = log->cfg.ckpt_unchecked_max;
    if (max && c.written && log->cfg.ckpt_interval_ms > 0 && size > max &&
        ckpt_unchecked(log, base, size) > max &&
        !atomic_load(&log->failed))
        (void)ckpt_periodic(log); /* a failed sync fails the log: the next append says so */
    return rc;
}

/*
 * Reserve phase, under a disk budget: the bytes are reserved before they
 * are written.  (Without one they are only counted once written: one
 * shared atomic add per call, no reservation round trip.)  Under a tight
 * budget, room is made (old segments deleted) for a few batches at a time,
 * not for the whole call.
 */
static int append_budgeted(ks_log *log, ks_batch *batches, unsigned n, unsigned flags)
{
    uint64_t need = 0;
    for (unsigned j = 0; j < n; j++)
        need += batches[j].batch ? batches[j].len : 0;
    if (n > 1 && need > log->space->limit / 4) {
        unsigned h = n / 2;
        int rc = ks_log_append(log, batches, h, flags);
        for (unsigned j = 0; j < h; j++)
            if (batches[j].result != 0 && batches[j].result != KLOG_EDUPLICATE)
                return rc;
        return ks_log_append(log, batches + h, n - h, flags);
    }
    int sr = space_reserve(log, need);
    if (sr < 0) {
        for (unsigned j = 0; j < n; j++)
            batches[j].result = sr;
        return sr;
    }
    return append_reserved(log, batches, n, flags, need);
}

int ks_log_append(ks_log *log, ks_batch *batches, unsigned n, unsigned flags)
{
    if (!log || (!batches && n))
        return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        batches[i].result = KLOG_ESTATE; /* not attempted */
        batches[i].base_offset = -1;
    }
    if (log->closed)
        return KLOG_ECLOSED;
    if (log->cfg.read_only || log->damaged)
        return ks__refusal(log);
    if (log->space && log->space->limit)
        return append_budgeted(log, batches, n, flags);
    return append_reserved(log, batches, n, flags, 0);
}

/*
 * The periodic checkpoint (cfg.ckpt_interval_ms): sync what the active
 * segment holds, then record where it ends, recovery.pos first (no sync:
 * used only beside a recovery.ckpt that agrees) and recovery.ckpt after
 * it.  A roll in between checkpoints past it: this one then writes
 * nothing.  Appends go on meanwhile (the sync is the group commit's).
 */
static int ckpt_periodic(ks_log *log)
{
    pthread_mutex_lock(&log->append_mu);
    ks_segment *s = ks__active(log);
    uint64_t pos = atomic_load(&s->size);
    int64_t rp = atomic_load(&s->next_offset), base = s->base;
    pthread_mutex_unlock(&log->append_mu);
    pthread_mutex_lock(&log->ckpt_mu);
    bool behind = rp > log->recovery_point;
    pthread_mutex_unlock(&log->ckpt_mu);
    if (!behind || rp <= base)
        return 0;
    int rc = group_sync(log, rp);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&log->ckpt_mu);
    if (rp > log->recovery_point && atomic_load(&log->durable) >= rp &&
        (rc = ks__pos_write(log->io, log->dir, rp, (int64_t)pos)) == 0) {
        int64_t start = atomic_load(&log->start);
        if ((rc = ks__ckpt_write(log->io, log->dir, rp, start)) == 0) {
            log->recovery_point = rp;
            log->ckpt_start = start;
            atomic_store(&log->ckpt_pos, pos);
            atomic_store(&log->ckpt_seg, base);
        }
    }
    pthread_mutex_unlock(&log->ckpt_mu);
    if (rc == 0 && atomic_load(&log->small) == 0)
        ks__small_files_count(log);
    return rc;
}

KLOG_COLD int ks_log_tick(ks_log *log)
{
    if (!log)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    if (log->cfg.read_only)
        return 0;
    int64_t now = ks__now(log);
    bool due = false;
    int rc = 0;
    pthread_mutex_lock(&log->append_mu);
    if (log->cfg.durability == KS_DURABILITY_INTERVAL && log->cfg.flush_ms &&
        log->unsynced_since_ms >= 0 && now - log->unsynced_since_ms >= log->cfg.flush_ms) {
        due = true;
        log->unsynced_records = 0;
        log->unsynced_since_ms = -1;
    }
    ks_segment *s = ks__active(log);
    if (!atomic_load(&log->failed) && log->cfg.segment_ms > 0 && need_roll(log, s, 0, 0, now, -1))
        rc = ks__roll(log, atomic_load(&log->end));
    int64_t end = atomic_load(&log->end);
    s = ks__active(log);
    uint64_t grown = ckpt_unchecked(log, s->base, atomic_load(&s->size));
    pthread_mutex_unlock(&log->append_mu);
    if (due) {
        int sr = group_sync(log, end);
        if (rc == 0)
            rc = sr;
    }
    if (rc == 0 && log->cfg.ckpt_interval_ms > 0 && !atomic_load(&log->failed) &&
        (now - log->ckpt_at_ms >= log->cfg.ckpt_interval_ms || grown >= KS_CKPT_BYTES)) {
        log->ckpt_at_ms = now;
        rc = ckpt_periodic(log);
    }
    return rc;
}
