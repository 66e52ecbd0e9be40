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
 * Group commit: make offsets below `target` durable.  One thread at a time
 * runs the fdatasync (the leader); threads arriving meanwhile wait, and the
 * next leader's sync covers all of them at once.
 */
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

        /* Snapshot what this sync will cover: the active segment and the
         * end offset, consistently (a roll syncs the segment it leaves). */
        pthread_mutex_lock(&log->append_mu);
        ks_segment *s = ks__active(log);
        ks__seg_ref(s);
        s->h_users++; /* keeps s->h open across a roll */
        int64_t covers = atomic_load(&log->end);
        int h = s->h;
        pthread_mutex_unlock(&log->append_mu);
        uint64_t t0 = klog__now_ns();
        int rc = h >= 0 ? kio_datasync(log->io, h) : 0;
        note_sync(log, klog__now_ns() - t0);
        pthread_mutex_lock(&log->append_mu);
        if (--s->h_users == 0 && s->sealed && s->h >= 0 && s != ks__active(log)) {
            kio_file_close(log->io, s->h);
            s->h = -1;
        }
        pthread_mutex_unlock(&log->append_mu);
        ks__seg_unref(s);

        pthread_mutex_lock(&log->sync_mu);
        log->sync_running = false;
        if (rc < 0) {
            int zero = 0;
            atomic_compare_exchange_strong(&log->failed, &zero, rc);
        } else {
            advance_durable(log, covers);
        }
        pthread_cond_broadcast(&log->sync_cv);
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

/* ---- append ---------------------------------------------------------------- */

/* Seal the active segment and start a new one at `base`.  append_mu held. */
int ks__roll(ks_log *log, int64_t base)
{
    ks_segment *old = ks__active(log);
    int rc;
    ks__prefill_quiesce(log);
    atomic_store(&log->pf_off, false); /* the next segment may try again */
    if ((rc = ks__cut_zero_tail(log, old)) < 0)
        return ks__fail_sync(log, rc);
    if (old->h >= 0) {
        uint64_t t0 = klog__now_ns();
        if ((rc = kio_datasync(log->io, old->h)) < 0)
            return ks__fail_sync(log, rc);
        note_sync(log, klog__now_ns() - t0);
    }
    atomic_fetch_add_explicit(&log->st.rolls, 1, memory_order_relaxed);
    advance_durable(log, atomic_load(&old->next_offset));
    pthread_mutex_lock(&log->sync_mu);
    pthread_cond_broadcast(&log->sync_cv);
    pthread_mutex_unlock(&log->sync_mu);
    if ((rc = ks__seg_write_indexes(old, log->dir)) < 0)
        return rc;
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
    if (old->h_users == 0 && old->h >= 0) {
        kio_file_close(log->io, old->h);
        old->h = -1;
    }
    pthread_mutex_lock(&log->ckpt_mu);
    rc = ks__ckpt_write(log->io, log->dir, base, atomic_load(&log->start));
    if (rc == 0)
        log->recovery_point = base;
    pthread_mutex_unlock(&log->ckpt_mu);
    return rc;
}

/* Would a batch of len bytes, after `pending` bytes not yet published in
 * s, overflow the segment (or is the segment too old)?  An empty segment
 * takes any one batch. */
static bool need_roll(ks_log *log, ks_segment *s, uint64_t pending, size_t len, int64_t now)
{
    uint64_t size = atomic_load_explicit(&s->size, memory_order_relaxed) + pending;
    if (size == 0)
        return false;
    /* the segment's mapping bounds it too (segment.bytes may have grown
     * since it was created: ks_log_reconfigure) */
    uint64_t limit = KLOG_MIN(log->cfg.segment_bytes, (uint64_t)s->map_cap - log->cfg.max_batch_bytes);
    if (size + len > limit)
        return true;
    return log->cfg.segment_ms > 0 && s->first_ts >= 0 && now - s->first_ts >= log->cfg.segment_ms;
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

#define KS_WRITE_MAX 64 /* batches queued in one submission */

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
    if (log->cfg.read_only)
        return KLOG_EREADONLY;
    bool durable = log->cfg.durability == KS_DURABILITY_ALWAYS || (flags & KS_APPEND_SYNC);
    uint64_t reserved = 0, written = 0;
    if (log->space && log->space->limit) {
        /* Under a budget the bytes are reserved before they are written;
         * without one they are only counted once written (below): one
         * shared atomic add per call, no reservation round trip. */
        for (unsigned j = 0; j < n; j++)
            reserved += batches[j].batch ? batches[j].len : 0;
        if (n > 1 && reserved > log->space->limit / 4) {
            /* Under a tight budget, room is made (old segments deleted)
             * for a few batches at a time, not for the whole call. */
            unsigned h = n / 2;
            int rc = ks_log_append(log, batches, h, flags);
            for (unsigned j = 0; j < h; j++)
                if (batches[j].result != 0 && batches[j].result != KLOG_EDUPLICATE)
                    return rc;
            return ks_log_append(log, batches + h, n - h, flags);
        }
        int sr = space_reserve(log, reserved);
        if (sr < 0) {
            for (unsigned j = 0; j < n; j++)
                batches[j].result = sr;
            return sr;
        }
    }
    atomic_fetch_add(&log->inflight, 1);
    pthread_mutex_lock(&log->append_mu);
    int rc = 0;
    bool linked_done = false;
    unsigned i = 0;
    int64_t now = ks__now(log);
    while (i < n && rc == 0) {
        if ((rc = atomic_load(&log->failed)) != 0) {
            rc = KLOG_EREADONLY;
            break;
        }
        /* Group consecutive batches that fit in the active segment. */
        kio_wreq req[KS_WRITE_MAX];
        struct iovec iov[KS_WRITE_MAX];
        kf_batch_info bi[KS_WRITE_MAX];
        ks_pidundo undo[KS_WRITE_MAX];
        unsigned k = 0;
        ks_segment *s = ks__active(log);
        uint64_t pos0 = atomic_load_explicit(&s->size, memory_order_relaxed);
        uint64_t pos = pos0;
        int64_t next = atomic_load(&log->end);
        while (i + k < n && k < KS_WRITE_MAX) {
            ks_batch *b = &batches[i + k];
            int cr = check_batch(log, b, flags, &bi[k]);
            if (cr < 0) {
                b->result = cr;
                rc = cr;
                break;
            }
            if (need_roll(log, s, pos - pos0, b->len, now)) {
                if (k > 0)
                    break; /* write what we have, roll on the next round */
                if ((cr = ks__roll(log, next)) < 0) {
                    b->result = cr;
                    rc = cr;
                    break;
                }
                s = ks__active(log);
                pos0 = pos = 0;
            }
            int64_t dup_base = -1;
            cr = ks__pid_check(log, &bi[k], next, &dup_base, &undo[k]);
            if (cr == KLOG_EDUPLICATE) {
                if (k > 0)
                    break; /* write the group first; the duplicate next round */
                /* Already in the log (a retried batch): not written again. */
                b->result = KLOG_EDUPLICATE;
                b->base_offset = dup_base;
                i++;
                continue;
            }
            if (cr < 0) {
                b->result = cr;
                rc = cr;
                break;
            }
            kf_batch_set_base_offset(b->batch, next);
            bi[k].base_offset = next;
            b->base_offset = next;
            next += bi[k].last_offset_delta + 1;
            iov[k] = (struct iovec){ b->batch, b->len };
            req[k] = (kio_wreq){ s->h, &iov[k], 1, pos };
            pos += b->len;
            k++;
        }
        if (k == 0)
            break;
        /* A lone durable appender links its fdatasync to the write: one
         * submission, and the sync cannot run ahead of the data.  With
         * company, the write goes alone and the group shares one sync. */
        bool link = false;
        if (durable && i + k == n && atomic_load(&log->inflight) == 1) {
            pthread_mutex_lock(&log->sync_mu);
            if (!log->sync_running) {
                log->sync_running = true;
                link = true;
            }
            pthread_mutex_unlock(&log->sync_mu);
        }
        bool tail = durable && !(log->space && log->space->limit);
        if (log->pf_hook) {
            if (tail && s->file_end <= pos0 && !atomic_load(&log->pf_busy))
                ks__prefill(log, s, pos); /* no tail at all: the first chunk inline */
            ks__prefill_ask(log, s, pos, tail); /* every append: none may write into a step in flight */
        } else if (tail) {
            ks__prefill(log, s, pos);
        }
        unsigned done = 0;
        uint64_t t0 = link ? klog__now_ns() : 0;
        int wr = kio_pwritev_many(log->io, req, k, link ? KIO_W_DSYNC : 0, &done);
        if (link && wr == 0)
            note_sync(log, klog__now_ns() - t0); /* write and sync: counts as the sync's time */
        if (link && wr < 0 && done == k) {
            /* every write landed; the linked sync failed: read-only */
            pthread_mutex_lock(&log->sync_mu);
            log->sync_running = false;
            pthread_mutex_unlock(&log->sync_mu);
            ks__fail_sync(log, wr);
            link = false;
        }
        if (wr < 0 && done < k) {
            /* Keep the batches written in full; cut away the partial one so
             * the next append starts on a clean boundary. */
            uint64_t keep = req[done].off;
            for (unsigned j = k; j-- > done;)
                ks__pid_undo(log, &undo[j]);
            ks__prefill_quiesce(log);
            ks__zero_tail_gone(s);
            int tr = kio_truncate(log->io, s->h, keep);
            if (tr < 0)
                ks__fail_sync(log, tr);
            batches[i + done].result = wr;
            rc = wr;
            k = done;
            if (link) {
                pthread_mutex_lock(&log->sync_mu);
                log->sync_running = false;
                pthread_cond_broadcast(&log->sync_cv);
                pthread_mutex_unlock(&log->sync_mu);
                link = false;
            }
        } else if (wr < 0) {
            rc = wr;
        }
        uint64_t recs = 0, written_before = written;
        for (unsigned j = 0; j < k; j++) {
            recs += (uint64_t)bi[j].record_count;
            written += iov[j].iov_len;
            ks__seg_note_batch(s, &bi[j], req[j].off, iov[j].iov_len, log->cfg.index_interval_bytes);
            batches[i + j].result = 0;
            log->unsynced_records += (uint64_t)bi[j].record_count;
        }
        /* statistics: append_mu is held, so plain adds (read with relaxed
         * loads by ks_log_get_stats) */
        ST_ADD(log->st.batches, k);
        ST_ADD(log->st.records, recs);
        ST_ADD(log->st.bytes, written - written_before);
        if (k > 0) {
            int64_t new_end = bi[k - 1].base_offset + bi[k - 1].last_offset_delta + 1;
            atomic_store_explicit(&s->next_offset, new_end, memory_order_relaxed);
            atomic_store_explicit(&s->size, req[k - 1].off + iov[k - 1].iov_len, memory_order_release);
            atomic_store_explicit(&log->end, new_end, memory_order_release);
            if (log->unsynced_since_ms < 0)
                log->unsynced_since_ms = now;
        }
        if (link) {
            pthread_mutex_lock(&log->sync_mu);
            log->sync_running = false;
            if (wr == 0)
                advance_durable(log, atomic_load(&log->end));
            pthread_cond_broadcast(&log->sync_cv);
            pthread_mutex_unlock(&log->sync_mu);
            linked_done = wr == 0;
        }
        i += k;
    }
    int64_t my_end = atomic_load(&log->end);
    bool interval_due = false;
    if (log->cfg.durability == KS_DURABILITY_INTERVAL) {
        interval_due = (log->cfg.flush_records && log->unsynced_records >= log->cfg.flush_records) ||
                       (log->cfg.flush_ms && log->unsynced_since_ms >= 0 &&
                        now - log->unsynced_since_ms >= log->cfg.flush_ms);
        if (interval_due) {
            log->unsynced_records = 0;
            log->unsynced_since_ms = -1;
        }
    }
    pthread_mutex_unlock(&log->append_mu);
    atomic_fetch_sub(&log->inflight, 1);
    if (written != reserved)
        ks__disk_add(log, (int64_t)written - (int64_t)reserved);

    bool appended = false; /* anything written (a duplicate may come first) */
    for (unsigned j = 0; j < n; j++)
        appended = appended || batches[j].result == 0;
    if (appended && (durable || interval_due) && !linked_done) {
        int sr = group_sync(log, my_end);
        if (sr < 0 && durable) {
            /* Not durable: these batches are not acknowledged. */
            for (unsigned j = 0; j < n; j++)
                if (batches[j].result == 0)
                    batches[j].result = sr;
            rc = sr;
        }
    }
    if (appended && log->listener)
        log->listener(log->listener_arg, my_end);
    return rc;
}

int ks_log_tick(ks_log *log)
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
    if (!atomic_load(&log->failed) && log->cfg.segment_ms > 0 && need_roll(log, s, 0, 0, now))
        rc = ks__roll(log, atomic_load(&log->end));
    int64_t end = atomic_load(&log->end);
    pthread_mutex_unlock(&log->append_mu);
    if (due) {
        int sr = group_sync(log, end);
        if (rc == 0)
            rc = sr;
    }
    return rc;
}
