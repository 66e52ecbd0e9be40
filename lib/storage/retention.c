/*
 * lib/storage/retention.c - segments leave from the head: retention by time
 * and size, DeleteRecords, and the disk budget's delete-oldest step.
 *
 * Order of a deletion (maint_mu held throughout):
 *   1. the new log start is checkpointed (recovery.ckpt) and published:
 *      readers asking for anything below it get KLOG_EOFFSET from now on;
 *   2. the segments leave the list (seg_mu), so no new view can take them;
 *   3. their files are unlinked.  Views taken before step 2 keep their
 *      mapping (and so the pages) until released.
 * A crash after 1 leaves files below the checkpointed start; the next open
 * removes them.  A crash before 1 changes nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "storage/internal.h"

/* Drop the n oldest segments (n < nsegs) and move the start to at least
 * new_start.  maint_mu held. */
static int drop_head(ks_log *log, unsigned n, int64_t new_start, uint64_t *freed)
{
    pthread_mutex_lock(&log->seg_mu);
    if (n >= log->nsegs)
        n = log->nsegs - 1; /* the active segment always stays */
    if (n > 0 && log->segs[n]->base > new_start)
        new_start = log->segs[n]->base;
    pthread_mutex_unlock(&log->seg_mu);

    int rc = 0;
    if (new_start > atomic_load(&log->start)) {
        pthread_mutex_lock(&log->ckpt_mu);
        rc = ks__ckpt_write(log->io, log->dir, log->recovery_point, new_start);
        if (rc == 0) {
            atomic_store(&log->start, new_start);
            log->ckpt_start = new_start;
        }
        pthread_mutex_unlock(&log->ckpt_mu);
        if (rc < 0)
            return rc;
    }
    if (n == 0)
        return 0;
    ks_segment **gone = malloc(n * sizeof *gone);
    if (!gone)
        return -ENOMEM; /* the start moved; the files go at the next open or pass */
    pthread_mutex_lock(&log->seg_mu);
    memcpy(gone, log->segs, n * sizeof *gone);
    memmove(log->segs, log->segs + n, (log->nsegs - n) * sizeof *log->segs);
    log->nsegs -= n;
    pthread_mutex_unlock(&log->seg_mu);
    for (unsigned i = 0; i < n; i++) {
        uint64_t bytes = ks__seg_disk(gone[i]);
        int r = ks__unlink_segment_files(log, gone[i]->base);
        if (r < 0 && rc == 0)
            rc = r;
        ks__disk_add(log, -(int64_t)bytes);
        if (freed)
            *freed += bytes;
        ks__seg_unref(gone[i]); /* the list's reference; views keep theirs */
    }
    free(gone);
    return rc;
}

int ks__writable(const ks_log *log)
{
    if (!log)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    if (log->cfg.read_only || atomic_load(&log->failed))
        return ks__refusal(log);
    return 0;
}

/* Roll the active segment if it holds anything.  append_mu held. */
static int roll_if_nonempty(ks_log *log)
{
    if (atomic_load(&ks__active(log)->size) == 0)
        return 0;
    return ks__roll(log, atomic_load(&log->end));
}

int ks_log_roll(ks_log *log)
{
    int rc = ks__writable(log);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&log->append_mu);
    rc = roll_if_nonempty(log);
    pthread_mutex_unlock(&log->append_mu);
    return rc;
}

int ks_log_delete_records(ks_log *log, int64_t offset, int64_t *new_start)
{
    int rc = ks__writable(log);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&log->maint_mu);
    int64_t end = atomic_load(&log->end);
    if (offset == -1)
        offset = end;
    if (offset < -1 || offset > end) {
        rc = KLOG_EOFFSET;
    } else if (offset > atomic_load(&log->start)) {
        /* segments wholly below offset: the next one starts at or below it */
        unsigned n = 0;
        pthread_mutex_lock(&log->seg_mu);
        while (n + 1 < log->nsegs && log->segs[n + 1]->base <= offset)
            n++;
        pthread_mutex_unlock(&log->seg_mu);
        rc = drop_head(log, n, offset, NULL);
    }
    if (new_start)
        *new_start = atomic_load(&log->start);
    pthread_mutex_unlock(&log->maint_mu);
    return rc;
}

/*
 * ks_log_truncate_fully below the end of a log that holds no record at or
 * above its start (a follower that started again at its leader's log
 * start, which falls inside a batch: Kafka starts such a log again at that
 * batch's base).  Each step leaves a log that opens: offsets up to past
 * the end may have gaps (cleaner.ckpt); recovery.ckpt says the log starts
 * at offset and vouches for nothing; the segment files go; the new one at
 * offset comes.  maint_mu and append_mu held.
 */
static int restart_empty(ks_log *log, int64_t offset)
{
    int64_t end = atomic_load(&log->end);
    int rc = ks__cleaner_state_set(log, end + 1, -1);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&log->ckpt_mu);
    rc = ks__ckpt_write(log->io, log->dir, 0, offset);
    if (rc == 0) {
        log->recovery_point = 0;
        log->ckpt_start = offset;
    }
    pthread_mutex_unlock(&log->ckpt_mu);
    if (rc < 0)
        return rc;
    /* From here on a failure leaves the disk ahead of the list: the log
     * turns read-only and the next open reads the disk. */
    ks__prefill_quiesce(log);
    pthread_mutex_lock(&log->seg_mu);
    unsigned n = log->nsegs;
    ks_segment **gone = malloc(n * sizeof *gone);
    if (gone)
        memcpy(gone, log->segs, n * sizeof *gone);
    pthread_mutex_unlock(&log->seg_mu);
    if (!gone)
        return ks__fail_sync(log, -ENOMEM);
    for (unsigned i = 0; i < n && rc == 0; i++)
        rc = ks__unlink_segment_files(log, gone[i]->base);
    ks_segment *s = NULL;
    if (rc == 0 && (rc = kio_dirsync(log->io, log->dir)) == 0)
        rc = ks__seg_new(&s, log->io, log->dir, offset, ks__map_cap(log), log->cfg.index_interval_bytes, true);
    if (rc == 0 && (rc = kio_dirsync(log->io, log->dir)) < 0) {
        ks__seg_unref(s);
        s = NULL;
    }
    if (rc < 0) {
        free(gone);
        return ks__fail_sync(log, rc);
    }
    ks__seg_attach(log, s);
    pthread_mutex_lock(&log->seg_mu);
    log->segs[0] = s;
    log->nsegs = 1;
    log->active = s;
    atomic_store(&log->start, offset);
    atomic_store(&log->durable, offset);
    atomic_store_explicit(&log->end, offset, memory_order_release);
    pthread_mutex_unlock(&log->seg_mu);
    ks__seg_h_adopt(log, s);
    for (unsigned i = 0; i < n; i++) {
        ks__seg_h_drop(log, gone[i]);
        ks__disk_add(log, -(int64_t)ks__seg_disk(gone[i]));
        ks__seg_unref(gone[i]); /* the list's reference; views keep theirs */
    }
    free(gone);
    log->npids = 0;
    return ks__ckpt_write_locked(log, offset);
}

int ks_log_truncate_fully(ks_log *log, int64_t offset)
{
    int rc = ks__writable(log);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&log->maint_mu);
    pthread_mutex_lock(&log->append_mu);
    int64_t end = atomic_load(&log->end);
    if (offset < 0 || (offset < end && atomic_load(&log->start) != end)) {
        rc = KLOG_EOFFSET;
    } else if (offset < end) {
        rc = restart_empty(log, offset);
    } else if (offset > end) {
        /* The gap [end, offset) first, so that a crash after the roll
         * leaves a log recovery accepts: the old records, then the jump. */
        if ((rc = ks__cleaner_state_set(log, offset + 1, -1)) == 0 && (rc = ks__roll(log, offset)) == 0) {
            atomic_store(&log->durable, offset); /* nothing lies between */
            atomic_store_explicit(&log->end, offset, memory_order_release);
            log->npids = 0; /* their batches go */
        }
    }
    pthread_mutex_unlock(&log->append_mu);
    if (rc == 0) {
        pthread_mutex_lock(&log->seg_mu);
        unsigned n = log->nsegs - 1; /* all but the active one, empty at offset */
        pthread_mutex_unlock(&log->seg_mu);
        rc = drop_head(log, n, offset, NULL);
    }
    pthread_mutex_unlock(&log->maint_mu);
    return rc;
}

int ks_log_retain(ks_log *log, const ks_retention *r, uint64_t *freed)
{
    if (freed)
        *freed = 0;
    int rc = ks__writable(log);
    if (rc < 0 || !r)
        return rc == KLOG_EREADONLY || rc == KLOG_ECORRUPT ? 0 : rc < 0 ? rc : -EINVAL;
    pthread_mutex_lock(&log->maint_mu);
    unsigned n = 0;
    /* (segment i ends where segment i + 1 starts) */
#define BELOW(i) (!r->bounded || log->segs[(i) + 1]->base <= r->bound)
    if (r->retention_ms >= 0) {
        int64_t horizon = ks__now(log) - r->retention_ms;
        pthread_mutex_lock(&log->seg_mu);
        while (n + 1 < log->nsegs && log->segs[n]->max_ts < horizon && BELOW(n))
            n++;
        bool all_sealed_expired = n + 1 == log->nsegs;
        pthread_mutex_unlock(&log->seg_mu);
        if (all_sealed_expired) {
            /* Kafka rolls an expired active segment so that it can go too. */
            pthread_mutex_lock(&log->append_mu);
            ks_segment *a = ks__active(log);
            if (atomic_load(&a->size) > 0 && a->max_ts < horizon && !atomic_load(&log->failed) &&
                (!r->bounded || atomic_load(&log->end) <= r->bound)) {
                rc = ks__roll(log, atomic_load(&log->end));
                if (rc == 0)
                    n++;
            }
            pthread_mutex_unlock(&log->append_mu);
        }
    }
    if (rc == 0 && r->retention_bytes >= 0) {
        /* Kafka's rule: the oldest segment goes while the log without it
         * still holds at least retention_bytes. */
        pthread_mutex_lock(&log->seg_mu);
        uint64_t total = 0;
        for (unsigned i = 0; i < log->nsegs; i++)
            total += atomic_load(&log->segs[i]->size);
        for (unsigned i = 0; i < n; i++)
            total -= atomic_load(&log->segs[i]->size);
        while (n + 1 < log->nsegs && BELOW(n)) {
            uint64_t sz = atomic_load(&log->segs[n]->size);
            if (total - sz < (uint64_t)r->retention_bytes)
                break;
            total -= sz;
            n++;
        }
        pthread_mutex_unlock(&log->seg_mu);
    }
#undef BELOW
    if (rc == 0 && n > 0)
        rc = drop_head(log, n, 0, freed);
    pthread_mutex_unlock(&log->maint_mu);
    return rc;
}

bool ks_log_oldest(ks_log *log, int64_t *max_ts, uint64_t *bytes)
{
    if (!log || log->closed)
        return false;
    bool ok = false;
    pthread_mutex_lock(&log->seg_mu);
    if (log->nsegs > 1) {
        ks_segment *s = log->segs[0];
        if (max_ts)
            *max_ts = s->max_ts;
        if (bytes)
            *bytes = ks__seg_disk(s);
        ok = true;
    }
    pthread_mutex_unlock(&log->seg_mu);
    return ok;
}

bool ks_log_active_age(ks_log *log, int64_t *max_ts)
{
    if (!log || log->closed)
        return false;
    bool ok = false;
    pthread_mutex_lock(&log->seg_mu);
    ks_segment *s = log->segs[log->nsegs - 1];
    if (log->nsegs == 1 && atomic_load(&s->size) > 0) {
        *max_ts = s->max_ts;
        ok = true;
    }
    pthread_mutex_unlock(&log->seg_mu);
    return ok;
}

int64_t ks_log_drop_oldest(ks_log *log, bool roll, bool nowait)
{
    int rc = ks__writable(log);
    if (rc < 0)
        return rc;
    if (nowait) {
        if (pthread_mutex_trylock(&log->maint_mu) != 0)
            return -EBUSY;
    } else {
        pthread_mutex_lock(&log->maint_mu);
    }
    if (roll && ks_log_segment_count(log) == 1) {
        pthread_mutex_lock(&log->append_mu);
        rc = roll_if_nonempty(log);
        pthread_mutex_unlock(&log->append_mu);
    }
    uint64_t freed = 0;
    if (rc == 0)
        rc = drop_head(log, 1, 0, &freed);
    pthread_mutex_unlock(&log->maint_mu);
    return rc < 0 ? rc : (int64_t)freed;
}
