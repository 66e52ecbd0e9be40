/*
 * lib/storage/log.c - the partition log proper: open and close, the segment
 * list, read, truncate, accessors.  Lock order: see struct ks_log in
 * internal.h.  Beside it: append.c (append, group commit, roll),
 * recover.c (recovery at open), pidstate.c (idempotent producers),
 * prefill.c (the zeroed tail ahead of durable appends).
 *
 * Visibility: a batch is visible to readers once segment->size covers it;
 * size is published with release ordering after the bytes are in the page
 * cache and the indexes updated, and end_offset right after it.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/common.h"
#include "storage/internal.h"

void ks_log_config_init(ks_log_config *c)
{
    memset(c, 0, sizeof *c);
    c->segment_bytes = 1ull << 30;
    c->index_interval_bytes = 4096;
    c->max_batch_bytes = KF_RECORD_MAX_DEFAULT + 64 * 1024;
    c->durability = KS_DURABILITY_NONE;
}


size_t ks__map_cap(const ks_log *log)
{
    return (size_t)log->cfg.segment_bytes + log->cfg.max_batch_bytes;
}

int ks__list_push(ks_log *log, ks_segment *s)
{
    ks__seg_attach(log, s);
    pthread_mutex_lock(&log->seg_mu);
    int rc = klog__vec_reserve(&log->segs, &log->segcap, (size_t)log->nsegs + 1, sizeof *log->segs);
    if (rc == 0) {
        log->segs[log->nsegs++] = s;
        log->active = s;
    }
    pthread_mutex_unlock(&log->seg_mu);
    return rc;
}

int ks__ckpt_write_locked(ks_log *log, int64_t recovery_point)
{
    pthread_mutex_lock(&log->ckpt_mu);
    int64_t start = atomic_load(&log->start);
    int rc = ks__ckpt_write(log->io, log->dir, recovery_point, start);
    if (rc == 0) {
        log->recovery_point = recovery_point;
        log->ckpt_start = start;
    }
    pthread_mutex_unlock(&log->ckpt_mu);
    if (rc == 0)
        ks__small_files_count(log);
    return rc;
}

/* The parent of dir, into out. */
static void parent_of(const char *dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s", dir);
    char *slash = strrchr(out, '/');
    if (slash == out)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(out, cap, ".");
}

int ks__dir_durable_slow(ks_log *log, int which)
{
    int f = atomic_load(&log->dir_unsynced) & which, rc = 0;
    if (f & KS_DIR_PARENT) {
        char parent[4096];
        parent_of(log->dir, parent, sizeof parent);
        rc = kio_dirsync(log->io, parent);
    }
    if (rc == 0 && (f & KS_DIR_SELF))
        rc = kio_dirsync(log->io, log->dir);
    if (rc == 0)
        atomic_fetch_and(&log->dir_unsynced, ~f);
    return rc;
}

/*
 * A log in a directory made just now (nothing in it, so nothing to
 * recover): its first segment at offset 0, and no sync.  A crash before
 * anything is synced leaves the directory empty or gone, which the next
 * open turns into the same empty log; so the directory entries (the log's
 * own, its segment's) are made durable only before the first sync that
 * vouches for data (dir_unsynced, ks__dir_durable), and no checkpoint is
 * written until there is something to record (none reads as offset 0).
 * Creating thousands of partitions then costs no sync per partition.
 */
static int create_fresh(ks_log *log)
{
    ks_segment *s;
    int rc = ks__seg_new(&s, log->io, log->dir, 0, ks__map_cap(log), log->cfg.index_interval_bytes, true);
    if (rc < 0)
        return rc;
    if ((rc = ks__list_push(log, s)) < 0) {
        ks__seg_unref(s);
        return rc;
    }
    atomic_fetch_or(&log->dir_unsynced, KS_DIR_SELF);
    log->recovery_point = 0;
    log->ckpt_start = 0;
    return 0;
}

uint64_t ks__seg_disk(ks_segment *s) { return atomic_load(&s->size) + s->ix_bytes; }

void ks_log_get_stats(ks_log *log, ks_log_stats *o)
{
    o->records = atomic_load_explicit(&log->st.records, memory_order_relaxed);
    o->bytes = atomic_load_explicit(&log->st.bytes, memory_order_relaxed);
    o->batches = atomic_load_explicit(&log->st.batches, memory_order_relaxed);
    o->syncs = atomic_load_explicit(&log->st.syncs, memory_order_relaxed);
    o->sync_ns = atomic_load_explicit(&log->st.sync_ns, memory_order_relaxed);
    o->sync_ns_max = atomic_load_explicit(&log->st.sync_ns_max, memory_order_relaxed);
    o->rolls = atomic_load_explicit(&log->st.rolls, memory_order_relaxed);
}

/* A failed fsync is never retried: record it, turn read-only, wake waiters. */
int ks__fail_sync(ks_log *log, int err)
{
    int zero = 0;
    bool first = atomic_compare_exchange_strong(&log->failed, &zero, err);
    pthread_mutex_lock(&log->sync_mu);
    pthread_cond_broadcast(&log->sync_cv);
    pthread_mutex_unlock(&log->sync_mu);
    if (first)
        ks__failed_now(log, err);
    return err;
}

void ks__failed_now(ks_log *log, int err)
{
    if (log->fail_hook)
        log->fail_hook(log->fail_arg, log->dir, err);
}

void ks_log_set_fail_hook(ks_log *log, void (*fn)(void *arg, const char *dir, int err), void *arg)
{
    if (!log)
        return;
    log->fail_hook = fn;
    log->fail_arg = arg;
}

int ks__damage(ks_log *log, const char *fmt, ...)
{
    if (!log->damage[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(log->damage, sizeof log->damage, fmt, ap);
        va_end(ap);
    }
    return KLOG_ECORRUPT;
}

int ks__unlink_in(ks_log *log, const char *name)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s/%s", log->dir, name) >= (int)sizeof p)
        return -ENAMETOOLONG;
    int rc = kio_unlink(log->io, p);
    return rc == -ENOENT ? 0 : rc;
}

int ks__unlink_segment_files(ks_log *log, int64_t base)
{
    static const char *const sfx[] = { ".log", ".index", ".timeindex" };
    int rc = 0;
    for (size_t i = 0; i < KLOG_ARRAY_LEN(sfx); i++) {
        char name[KS_NAME_MAX];
        ks_segment_name(name, sizeof name, base, sfx[i]);
        int r = ks__unlink_in(log, name);
        if (r < 0 && rc == 0)
            rc = r;
    }
    return rc;
}

/* A log object for dir, nothing opened yet (*out NULL on failure). */
KLOG_COLD static int log_new(ks_log **out, kio *io, const char *dir, const ks_log_config *cfg)
{
    *out = NULL;
    ks_log_config c;
    if (cfg)
        c = *cfg;
    else
        ks_log_config_init(&c);
    if (!io || !dir || c.segment_bytes < 1024 || c.segment_bytes > (1ull << 31) - 1 ||
        c.max_batch_bytes < KF_HDR_SIZE || c.max_batch_bytes > KF_BATCH_MAX ||
        c.index_interval_bytes == 0 || c.durability > KS_DURABILITY_ALWAYS ||
        c.segment_ms < 0 || c.flush_ms < 0)
        return KLOG_ECONF;
    size_t dl = strlen(dir);
    if (dl >= 4096)
        return -ENAMETOOLONG;
    ks_log *log = calloc(1, sizeof *log + dl + 1);
    if (!log)
        return -ENOMEM;
    memcpy(log->dir, dir, dl + 1);
    log->io = io;
    log->cfg = c;
    log->lock_fd = -1;
    log->unsynced_since_ms = -1;
    log->space = c.space;
    log->ckpt_at_ms = ks__now(log); /* the first periodic checkpoint one interval on */
    pthread_mutex_init(&log->maint_mu, NULL);
    pthread_mutex_init(&log->gap_mu, NULL);
    pthread_mutex_init(&log->ckpt_mu, NULL);
    pthread_mutex_init(&log->append_mu, NULL);
    pthread_mutex_init(&log->seg_mu, NULL);
    pthread_mutex_init(&log->sync_mu, NULL);
    pthread_cond_init(&log->sync_cv, NULL);
    pthread_mutex_init(&log->pf_mu, NULL);
    pthread_cond_init(&log->pf_cv, NULL);
    *out = log;
    return 0;
}

/* Make log's directory if it is not there (*made: it was not), and take
 * its lock into *lock_fd unless the caller's covers it (dir_locked).  The
 * new directory's own entry is made durable now, or, with defer, before
 * anything in it is (dir_unsynced, ks__dir_durable). */
static int dir_make_lock(ks_log *log, bool defer, int *lock_fd, bool *made)
{
    *made = false;
    int rc = kio_mkdir(log->io, log->dir, 0755);
    if (rc == 0) {
        *made = true;
        if (defer) {
            atomic_fetch_or(&log->dir_unsynced, KS_DIR_PARENT);
        } else {
            char parent[4096];
            parent_of(log->dir, parent, sizeof parent);
            if ((rc = kio_dirsync(log->io, parent)) < 0)
                return rc;
        }
    } else if (rc != -EEXIST) {
        return rc;
    }
    if (log->cfg.dir_locked)
        return 0;
    if ((rc = ks_dirlock_acquire(log->dir)) < 0)
        return rc;
    *lock_fd = rc;
    return 0;
}

int ks_log_open(ks_log **out, kio *io, const char *dir, const ks_log_config *cfg)
{
    *out = NULL;
    ks_log *log;
    int rc = log_new(&log, io, dir, cfg);
    if (rc < 0)
        return rc;
    const ks_log_config *c = &log->cfg;
    if (c->damage) {
        ks__damage(log, "%s", c->damage);
        log->cfg.damage = NULL; /* the caller's string: not kept */
    }
    struct stat st;
    if (c->must_exist && !c->read_only && stat(dir, &st) != 0 && errno == ENOENT) {
        /* A partition on record without its directory: its offsets must
         * not be handed out again from 0.  Nothing is created. */
        rc = ks__damage(log, "the partition directory is missing (its records and offsets are gone)");
        if (!c->open_damaged)
            goto fail;
        ks_segment *s;
        if ((rc = ks__seg_phantom(&s, io, 0)) < 0)
            goto fail;
        if ((rc = ks__list_push(log, s)) < 0) {
            ks__seg_unref(s);
            goto fail;
        }
        atomic_store(&log->damaged, true);
        atomic_store(&log->failed, KLOG_ECORRUPT);
        *out = log;
        return 0;
    }
    bool fresh = false;
    if (!c->read_only && (rc = dir_make_lock(log, true, &log->lock_fd, &fresh)) < 0)
        goto fail;
    if ((rc = fresh ? create_fresh(log) : ks__recover(log)) < 0)
        goto fail;
    /* The active segment's file stays open, under the cache's cap; a
     * damaged log writes nothing and needs none; a read-only one keeps it,
     * outside the cap, to follow a writer (ks_log_refresh). */
    ks_segment *a = ks__active(log);
    if (atomic_load(&log->damaged) && a->h >= 0) {
        kio_file_close(io, a->h);
        a->h = -1;
    } else if (!c->read_only && !atomic_load(&log->damaged)) {
        ks__seg_h_adopt(log, a);
    }
    if (!atomic_load(&log->damaged))
        ks__small_files_count(log);
    *out = log;
    return 0;
fail:
    log->closed = true; /* no sync, no checkpoint: nothing was validated */
    ks_log_close(log);
    return rc;
}

#define SWAP(a, b)                                                                                         \
    do {                                                                                                   \
        __typeof__(a) t_ = (a);                                                                            \
        (a) = (b);                                                                                         \
        (b) = t_;                                                                                          \
    } while (0)

KLOG_COLD int ks_log_repair(ks_log *log, char *report, size_t report_size)
{
    if (!log)
        return -EINVAL;
    if (report && report_size)
        report[0] = '\0';
    if (log->closed)
        return KLOG_ECLOSED;
    if (log->cfg.read_only)
        return KLOG_EREADONLY;
    pthread_mutex_lock(&log->maint_mu);
    pthread_mutex_lock(&log->append_mu);
    ks_log *tmp = NULL;
    int rc = atomic_load(&log->damaged) ? 0 : KLOG_ESTATE;
    /* Recover a fresh object the salvage way, then take its state.  It
     * counts no disk space (the swap moves the count), and borrows the
     * directory lock this log holds, or takes it for a directory it makes
     * again. */
    ks_log_config c = log->cfg;
    c.must_exist = c.open_damaged = false;
    c.damage = NULL;
    c.space = NULL;
    if (rc == 0)
        rc = log_new(&tmp, log->io, log->dir, &c);
    size_t pre = 0;
    bool made = false;
    if (rc == 0 && (log->lock_fd < 0 || c.dir_locked)) {
        if ((rc = dir_make_lock(tmp, false, &tmp->lock_fd, &made)) == 0 && made && report && report_size) {
            snprintf(report, report_size, "the partition directory was missing: made again, empty (offsets "
                     "start again at 0)");
            pre = strlen(report);
        }
    }
    if (rc == 0) {
        /* after what is already there, "; "-separated */
        char *more = report;
        size_t more_size = report_size;
        if (pre) {
            more = pre + 3 < report_size ? report + pre + 2 : NULL;
            more_size = more ? report_size - pre - 2 : 0;
        }
        rc = ks__recover_salvage(tmp, more, more_size);
        if (rc == 0 && more && pre) {
            if (more[0])
                memcpy(report + pre, "; ", 2);
            else
                report[pre] = '\0';
        }
    }
    if (rc == 0) {
        pthread_mutex_lock(&log->seg_mu);
        SWAP(log->segs, tmp->segs);
        SWAP(log->nsegs, tmp->nsegs);
        SWAP(log->segcap, tmp->segcap);
        SWAP(log->active, tmp->active);
        pthread_mutex_unlock(&log->seg_mu);
        /* the damaged log's active segment held no file on the cache's
         * list (ks_log_open); the salvaged one's goes there now */
        ks__seg_h_adopt(log, log->active);
        SWAP(log->pids, tmp->pids);
        SWAP(log->npids, tmp->npids);
        if (tmp->lock_fd >= 0)
            SWAP(log->lock_fd, tmp->lock_fd);
        log->gap_limit = tmp->gap_limit;
        atomic_store(&log->clean_point, atomic_load(&tmp->clean_point));
        pthread_mutex_lock(&log->ckpt_mu);
        log->recovery_point = tmp->recovery_point;
        pthread_mutex_unlock(&log->ckpt_mu);
        atomic_store(&log->durable, atomic_load(&tmp->durable));
        atomic_store(&log->start, atomic_load(&tmp->start));
        atomic_store_explicit(&log->end, atomic_load(&tmp->end), memory_order_release);
        int64_t delta = (int64_t)atomic_load(&tmp->disk) - (int64_t)atomic_load(&log->disk);
        ks__disk_add(log, delta);
        atomic_store(&tmp->disk, 0);
        log->unsynced_records = 0;
        log->unsynced_since_ms = -1;
        atomic_store(&log->pf_off, false);
        atomic_store(&log->failed, 0);
        atomic_store(&log->damaged, false);
    }
    pthread_mutex_unlock(&log->append_mu);
    pthread_mutex_unlock(&log->maint_mu);
    if (tmp) {
        tmp->closed = true; /* no sync, no checkpoint: it holds the old segments now, or nothing */
        ks_log_close(tmp);
    }
    return rc;
}

/* ---- read ------------------------------------------------------------------ */

/* The segment that holds offset (last with base <= offset), referenced. */
static ks_segment *seg_for(ks_log *log, int64_t offset, unsigned *idx)
{
    pthread_mutex_lock(&log->seg_mu);
    unsigned lo = 0, hi = log->nsegs;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (log->segs[mid]->base <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    ks_segment *s = NULL;
    if (lo > 0) {
        s = log->segs[lo - 1];
        ks__seg_ref(s);
        *idx = lo - 1;
    }
    pthread_mutex_unlock(&log->seg_mu);
    return s;
}

static ks_segment *seg_at(ks_log *log, unsigned idx)
{
    ks_segment *s = NULL;
    pthread_mutex_lock(&log->seg_mu);
    if (idx < log->nsegs) {
        s = log->segs[idx];
        ks__seg_ref(s);
    }
    pthread_mutex_unlock(&log->seg_mu);
    return s;
}

int ks_log_read(ks_log *log, int64_t offset, size_t max_bytes, ks_view *v)
{
    memset(v, 0, sizeof *v);
    if (!log)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    int64_t end = atomic_load_explicit(&log->end, memory_order_acquire);
    if (offset < atomic_load(&log->start) || offset > end)
        return KLOG_EOFFSET;
    v->first_offset = v->next_offset = offset;
    if (offset == end) {
        ks_log_note_tail(log); /* a reader waits here: keep the mapping ahead of it populated */
        return 0;
    }
    unsigned idx = 0;
    ks_segment *s = seg_for(log, offset, &idx);
    uint64_t pos = 0;
    while (s) {
        int rc = ks__seg_find(s, offset, &pos);
        if (rc == 0)
            break;
        ks__seg_unref(s);
        if (rc != KLOG_EOFFSET)
            return rc;
        /* offset lies in a gap at the end of this segment: next one */
        s = seg_at(log, ++idx);
    }
    if (!s) /* raced with retention (below the new start) or a truncation */
        return offset < atomic_load(&log->start) ? KLOG_EOFFSET : 0;
    uint64_t size = atomic_load_explicit(&s->size, memory_order_acquire);
    uint64_t p = pos;
    int64_t first = -1, next = offset;
    while (p < size) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(s->map + p, size - p, &bi);
        if (p == pos) {
            /* a hole where none can be (offset below this segment's base
             * means the previous segment ended in a compaction gap) */
            if (len <= 0 || (!s->gaps && bi.base_offset > offset && offset >= s->base)) {
                ks__seg_unref(s); /* bad framing, or a hole where none can be */
                return KLOG_ECORRUPT;
            }
            /* offset may fall in a gap compaction left: the view then
             * starts at the first batch after it (unless that one is
             * not published yet: nothing to read) */
            if (bi.base_offset >= end) {
                first = offset; /* an empty view, as at the end */
                break;
            }
            first = bi.base_offset;
        } else if (len <= 0 || p - pos + (uint64_t)len > max_bytes || bi.base_offset < next ||
                   (!s->gaps && bi.base_offset != next) || bi.base_offset >= end) {
            /* whole batches within max_bytes; bad framing is the next
             * read's to report; and none at or past the end read above:
             * size is published before the end (and a read-only log's
             * catch-up publishes size batch by batch), so a reader that
             * took batches past the end would stand past it */
            break;
        }
        next = kf_batch_last_offset(&bi) + 1;
        p += (uint64_t)len;
    }
    v->seg = s;
    v->data = s->map + pos;
    v->len = (size_t)(p - pos);
    v->first_offset = first;
    v->next_offset = next;
    return 0;
}

void ks_view_release(ks_view *v)
{
    if (v && v->seg) {
        ks__seg_unref(v->seg);
        v->seg = NULL;
        v->data = NULL;
        v->len = 0;
    }
}

int ks_view_verify(const ks_view *v, size_t off, size_t len, bool trust_disk)
{
    ks_segment *s = v->seg;
    uint64_t pos = (uint64_t)(v->data - s->map) + off, end = pos + len;
    uint64_t ver = atomic_load_explicit(&s->verified, memory_order_relaxed);
    if (KLOG_LIKELY(end <= ver || pos >= atomic_load_explicit(&s->trusted_from, memory_order_relaxed)))
        return 0;
    if (trust_disk && end <= atomic_load_explicit(&s->disk_proven, memory_order_relaxed))
        return 0;
    int rc = kf_batch_verify(v->data + off, len);
    if (rc != 0) { /* whatever the proof said, it holds no further */
        uint64_t dp = atomic_load_explicit(&s->disk_proven, memory_order_relaxed);
        while (pos < dp && !atomic_compare_exchange_weak_explicit(&s->disk_proven, &dp, pos, memory_order_relaxed,
                                                                   memory_order_relaxed))
            ;
    }
    /* a batch that continues the verified prefix extends it */
    while (rc == 0 && pos <= ver && ver < end &&
           !atomic_compare_exchange_weak_explicit(&s->verified, &ver, end, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    return rc;
}

KLOG_COLD int ks_log_offset_for_time(ks_log *log, int64_t ts, int64_t *offset)
{
    if (!log || !offset)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    *offset = atomic_load(&log->end);
    kf_codec *codec = NULL;
    int rc = 0;
    for (unsigned idx = 0;; idx++) {
        ks_segment *s = seg_at(log, idx);
        if (!s)
            break;
        if (s->sealed && s->max_ts < ts) {
            ks__seg_unref(s); /* no record in it qualifies: its index need not load */
            continue;
        }
        uint64_t pos, size = atomic_load_explicit(&s->size, memory_order_acquire);
        if ((rc = ks__seg_find_time(s, ts, &pos)) < 0 || pos >= size) {
            ks__seg_unref(s);
            if (rc < 0)
                break;
            continue;
        }
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(s->map + pos, size - pos, &bi);
        const uint8_t *recs;
        size_t rlen;
        rc = len <= 0 ? KLOG_ECORRUPT : kf_batch_verify(s->map + pos, (size_t)len);
        if (rc == 0 && (bi.attributes & KF_ATTR_CODEC_MASK) && !codec)
            rc = kf_codec_new(&codec);
        if (rc == 0)
            rc = kf_batch_records(s->map + pos, (size_t)len, codec, &recs, &rlen);
        if (rc == 0) {
            kf_iter it;
            kf_record_view r;
            kf_iter_init(&it, &bi, recs, rlen);
            int64_t found = kf_batch_last_offset(&bi) + 1;
            while ((rc = kf_iter_next(&it, &r)) == 1) {
                if (r.timestamp >= ts) {
                    found = r.offset;
                    break;
                }
            }
            if (rc >= 0) {
                rc = 0;
                *offset = found;
            }
        }
        ks__seg_unref(s);
        break;
    }
    kf_codec_free(codec);
    return rc;
}

/* ---- truncate ---------------------------------------------------------------- */

/*
 * Copy the first `cut` bytes of s into a new file that replaces s on disk
 * (tmp, datasync, rename, dirsync) and swap a new segment object for s in
 * the list (append_mu held).  The new segment gets s's index entries below
 * cut.  s itself is sealed and dropped from the list: views keep its
 * mapping; a syncing leader (h_users) closes its handle when done.
 */
/* Recompute a segment's timestamp bounds from its first `cut` bytes and make
 * the next append start a fresh index run. */
static void seg_rescan_bounds(ks_segment *s, uint64_t cut)
{
    int64_t first_ts = -1, max_ts = -1;
    for (uint64_t p = 0; p < cut;) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(s->map + p, cut - p, &bi);
        if (len <= 0)
            break;
        if (first_ts < 0)
            first_ts = bi.max_timestamp;
        if (bi.max_timestamp > max_ts)
            max_ts = bi.max_timestamp;
        p += (uint64_t)len;
    }
    s->first_ts = first_ts;
    s->max_ts = max_ts;
    s->since_oidx = s->since_tidx = UINT32_MAX;
}

KLOG_COLD static int replace_segment_prefix(ks_log *log, ks_segment *s, uint64_t cut, int64_t cut_offset,
                                  ks_segment **out)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", s->path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int h = kio_file_open(log->io, tmp, KIO_O_RDWR | KIO_O_CREAT | KIO_O_TRUNC, 0644);
    if (h < 0)
        return h;
    int rc = 0;
    for (uint64_t off = 0; off < cut && rc == 0;) {
        size_t n = (size_t)KLOG_MIN(cut - off, (uint64_t)(8u << 20));
        struct iovec iov = { (void *)(s->map + off), n };
        rc = kio_pwritev(log->io, h, &iov, 1, off);
        off += n;
    }
    if (rc == 0)
        rc = kio_datasync(log->io, h);
    kio_file_close(log->io, h);
    if (rc == 0)
        rc = kio_rename(log->io, tmp, s->path);
    if (rc == 0)
        rc = kio_dirsync(log->io, log->dir);
    if (rc < 0) {
        kio_unlink(log->io, tmp);
        return rc;
    }
    ks_segment *ns;
    rc = ks__seg_new(&ns, log->io, log->dir, s->base, ks__map_cap(log), log->cfg.index_interval_bytes, false);
    if (rc < 0)
        return ks__fail_sync(log, rc); /* the file on disk changed: stop writing */
    ks__seg_attach(log, ns);
    if ((rc = ks__seg_ix_copy(ns, s, cut)) < 0) {
        ks__seg_unref(ns);
        return ks__fail_sync(log, rc);
    }
    atomic_store(&ns->size, cut);
    atomic_store(&ns->next_offset, cut_offset);
    /* the same bytes up to the cut (copied from s), appends after it ours */
    atomic_store(&ns->verified, KLOG_MIN(atomic_load(&s->verified), cut));
    atomic_store(&ns->trusted_from, KLOG_MIN(atomic_load(&s->trusted_from), cut));
    atomic_store(&ns->disk_proven, KLOG_MIN(atomic_load(&s->disk_proven), cut));
    seg_rescan_bounds(ns, cut);
    ks__set_active(log, ns);
    s->sealed = true;
    ks__seg_h_drop(log, s);
    ks__seg_h_adopt(log, ns);
    ks__seg_unref(s); /* the list's reference */
    *out = ns;
    return 0;
}

static int truncate_locked(ks_log *log, int64_t offset, int64_t *new_end);

/* The offset after the last batch that starts below pos (s->base if none). */
static int64_t seg_end_before(ks_segment *s, uint64_t pos)
{
    int64_t end = s->base;
    for (uint64_t p = 0; p < pos;) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(s->map + p, pos - p, &bi);
        if (len <= 0)
            break;
        end = kf_batch_last_offset(&bi) + 1;
        p += (uint64_t)len;
    }
    return end;
}

KLOG_COLD int ks_log_truncate_to(ks_log *log, int64_t offset, int64_t *new_end)
{
    if (!log)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    if (log->cfg.read_only || log->damaged)
        return ks__refusal(log);
    pthread_mutex_lock(&log->maint_mu);
    int rc = truncate_locked(log, offset, new_end);
    pthread_mutex_unlock(&log->maint_mu);
    return rc;
}

/* ks_log_truncate_to with maint_mu held. */
static int truncate_locked(ks_log *log, int64_t offset, int64_t *new_end)
{
    int rc = 0;
    pthread_mutex_lock(&log->append_mu);
    ks__prefill_quiesce(log);
    int64_t end = atomic_load(&log->end);
    if (offset < atomic_load(&log->start) || offset > end) {
        pthread_mutex_unlock(&log->append_mu);
        return KLOG_EOFFSET;
    }
    if (atomic_load(&log->failed)) {
        pthread_mutex_unlock(&log->append_mu);
        return ks__refusal(log);
    }
    if (offset < end) {
        /* The recovery point comes down first, to the base of the segment
         * the cut falls in (every offset below it stays), as retention
         * moves the start before it unlinks: after a crash in the middle
         * of the truncation, recovery.ckpt must not vouch for offsets
         * that are gone, which the next open would take for damage.  The
         * list is still: we hold maint_mu and append_mu. */
        int64_t floor = log->segs[0]->base;
        for (unsigned i = 0; i < log->nsegs && log->segs[i]->base < offset; i++)
            floor = log->segs[i]->base;
        if (log->recovery_point > floor && (rc = ks__ckpt_write_locked(log, floor)) < 0) {
            pthread_mutex_unlock(&log->append_mu);
            return rc;
        }
    }
    /* Drop whole segments that start at or above offset (keep at least one),
     * last first, each unlink durable before the next: a crash in the
     * middle leaves a prefix of the segments, never one that does not
     * follow the one before it (which recovery takes for damage: a sealed
     * segment short of the next).  So the kept segment, too, is cut only
     * after the unlinks are durable. */
    while (log->nsegs > 1 && ks__active(log)->base >= offset) {
        pthread_mutex_lock(&log->seg_mu);
        ks_segment *s = log->segs[--log->nsegs];
        log->active = log->segs[log->nsegs - 1];
        pthread_mutex_unlock(&log->seg_mu);
        atomic_store(&log->end, s->base);
        ks__disk_add(log, -(int64_t)ks__seg_disk(s));
        ks__seg_h_drop(log, s);
        int r = ks__unlink_segment_files(log, s->base);
        ks__seg_unref(s); /* readers holding views keep the mapping */
        if (r == 0)
            r = kio_dirsync(log->io, log->dir);
        if (r < 0 && rc == 0)
            rc = r;
    }
    ks_segment *s = ks__active(log);
    bool was_sealed = s->sealed;
    s->sealed = false; /* writable again, if it was sealed */
    int h = ks__seg_h(log, s);
    if (h < 0) {
        s->sealed = was_sealed;
        pthread_mutex_unlock(&log->append_mu);
        return h;
    }
    /* Its indexes in memory, its index files gone and no longer counted
     * (the in-memory ones are authoritative from here). */
    if ((rc = ks__seg_ix_own(log, s)) < 0) {
        pthread_mutex_unlock(&log->append_mu);
        return rc;
    }
    uint64_t cut = atomic_load(&s->size);
    int64_t cut_offset = atomic_load(&s->next_offset);
    if (offset < cut_offset) {
        uint64_t pos;
        int fr = offset <= s->base ? (pos = 0, 0) : ks__seg_find(s, offset, &pos);
        if (fr == 0) {
            cut = pos;
            if (pos == 0) {
                cut_offset = s->base;
            } else {
                kf_batch_info bi;
                cut_offset = offset;
                if (kf_batch_parse(s->map + pos, atomic_load(&s->size) - pos, &bi) > 0)
                    cut_offset = bi.base_offset;
                if (cut_offset > offset) /* offset in a compaction gap: end after the batch kept last */
                    cut_offset = seg_end_before(s, pos);
            }
        } else if (fr != KLOG_EOFFSET) {
            rc = fr;
        }
    }
    if (rc == 0 && cut < atomic_load(&s->size) && atomic_load(&s->refs) > 1) {
        /* Views (or a syncing leader) hold this segment: its bytes must not
         * change under them, and later appends would overwrite the cut
         * region in place.  Write the kept prefix to a new file, rename it
         * over the segment and swap in a new segment object; the old one
         * keeps its mapping of the old inode until its last view goes. */
        ks_segment *ns = NULL;
        uint64_t before = atomic_load(&s->size);
        ks__zero_tail_gone(s); /* the new file has none; the old one goes */
        rc = replace_segment_prefix(log, s, cut, cut_offset, &ns);
        if (rc == 0) {
            s = ns;
            ks__disk_add(log, (int64_t)cut - (int64_t)before);
        }
    }
    if (rc == 0 && cut < atomic_load(&s->size)) {
        /* No view holds the segment: cut it in place.  Readers stop at the
         * new size first, then the bytes go (the zeroed tail with them). */
        ks__disk_add(log, (int64_t)cut - (int64_t)atomic_load(&s->size));
        atomic_store_explicit(&s->size, cut, memory_order_release);
        ks__seg_proven_cut(s, cut);
        ks__zero_tail_gone(s);
        atomic_store(&s->next_offset, cut_offset);
        atomic_store(&log->end, cut_offset);
        ks__seg_truncate_indexes(s, cut);
        seg_rescan_bounds(s, cut);
        int tr = kio_truncate(log->io, s->h, cut); /* open: ks__seg_h above, append_mu since */
        if (tr == 0)
            tr = kio_datasync(log->io, s->h);
        if (tr < 0)
            rc = ks__fail_sync(log, tr);
    }
    atomic_store(&log->end, atomic_load(&s->next_offset));
    if (atomic_load(&log->durable) > atomic_load(&log->end))
        atomic_store(&log->durable, atomic_load(&log->end));
    if (rc == 0 && log->recovery_point > atomic_load(&log->end)) {
        rc = kio_dirsync(log->io, log->dir);
        if (rc == 0)
            rc = ks__ckpt_write_locked(log, atomic_load(&log->end));
    }
    if (rc == 0 && log->clean_point > atomic_load(&log->end)) /* offsets appended again above */
        rc = ks__cleaner_state_set(log, 0, atomic_load(&log->end)); /* the new end were never cleaned */
    log->npids = 0; /* remembered batches may be gone: forget them */
    if (new_end)
        *new_end = atomic_load(&log->end);
    pthread_mutex_unlock(&log->append_mu);
    return rc;
}

/* ---- accessors and close ---------------------------------------------------- */

int64_t ks_log_start_offset(ks_log *log) { return atomic_load(&log->start); }
enum ks_tail ks_log_recovered_tail(ks_log *log) { return log->recovered_tail; }
int64_t ks_log_end_offset(ks_log *log) { return atomic_load_explicit(&log->end, memory_order_acquire); }
int64_t ks_log_durable_offset(ks_log *log) { return atomic_load(&log->durable); }
int ks_log_error(ks_log *log) { return atomic_load(&log->failed); }
const char *ks_log_damage(ks_log *log) { return log && log->damaged ? log->damage : NULL; }

uint64_t ks_log_size_bytes(ks_log *log)
{
    uint64_t total = 0;
    pthread_mutex_lock(&log->seg_mu);
    for (unsigned i = 0; i < log->nsegs; i++)
        total += atomic_load(&log->segs[i]->size);
    pthread_mutex_unlock(&log->seg_mu);
    return total;
}

uint64_t ks_log_disk_bytes(ks_log *log) { return atomic_load(&log->disk); }

unsigned ks_log_segment_count(ks_log *log)
{
    pthread_mutex_lock(&log->seg_mu);
    unsigned n = log->nsegs;
    pthread_mutex_unlock(&log->seg_mu);
    return n;
}

void ks_log_set_listener(ks_log *log, ks_listener_fn fn, void *arg)
{
    pthread_mutex_lock(&log->append_mu);
    log->listener = fn;
    log->listener_arg = arg;
    pthread_mutex_unlock(&log->append_mu);
}

int ks_log_set_epoch(ks_log *log, int32_t epoch, int (*fn)(void *arg, int64_t end), void *arg)
{
    if (!log)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    int rc = 0;
    pthread_mutex_lock(&log->append_mu);
    if (fn) {
        if (log->cfg.read_only || atomic_load(&log->failed))
            rc = ks__refusal(log);
        else
            rc = fn(arg, atomic_load(&log->end)); /* appends wait: nothing lands meanwhile */
    }
    if (rc >= 0) {
        log->stamp = epoch >= 0;
        log->stamp_epoch = epoch;
        rc = 0;
    }
    pthread_mutex_unlock(&log->append_mu);
    return rc;
}

int ks_log_set_follower(ks_log *log, bool on)
{
    if (!log)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    pthread_mutex_lock(&log->append_mu);
    log->follower = on;
    pthread_mutex_unlock(&log->append_mu);
    return 0;
}

int ks_log_fail(ks_log *log, int err)
{
    return ks__fail_sync(log, err);
}

KLOG_COLD int ks_log_reconfigure(ks_log *log, const ks_log_config *c)
{
    if (!log || !c)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    if (c->segment_bytes < 1024 || c->segment_bytes > (1ull << 31) - 1 || c->index_interval_bytes == 0 ||
        c->durability > KS_DURABILITY_ALWAYS || c->segment_ms < 0 || c->flush_ms < 0 ||
        c->max_batch_bytes < KF_HDR_SIZE || c->max_batch_bytes > KF_BATCH_MAX)
        return KLOG_ECONF;
    pthread_mutex_lock(&log->append_mu);
    int rc = 0;
    if (c->max_batch_bytes > log->cfg.max_batch_bytes && !log->cfg.read_only && !log->damaged) {
        /* The active segment's mapping has room for one batch of the old
         * maximum past segment_bytes: a larger batch needs a segment mapped
         * for it.  A non-empty one is rolled; an empty one is mapped again. */
        log->cfg.max_batch_bytes = c->max_batch_bytes;
        ks_segment *a = ks__active(log);
        if (atomic_load(&a->size) > 0) {
            if (!atomic_load(&log->failed))
                rc = ks__roll(log, atomic_load(&log->end));
        } else if (a->h_users == 0) {
            ks_segment *ns;
            rc = ks__seg_new(&ns, log->io, log->dir, a->base, ks__map_cap(log), log->cfg.index_interval_bytes, false);
            if (rc == 0) {
                ks__seg_attach(log, ns);
                ks__set_active(log, ns);
                ks__seg_h_drop(log, a);
                ks__seg_h_adopt(log, ns);
                ks__seg_unref(a);
            }
        }
    } else {
        log->cfg.max_batch_bytes = c->max_batch_bytes;
    }
    log->cfg.segment_bytes = c->segment_bytes;
    log->cfg.segment_ms = c->segment_ms;
    log->cfg.index_interval_bytes = c->index_interval_bytes;
    log->cfg.durability = c->durability;
    log->cfg.flush_records = c->flush_records;
    log->cfg.flush_ms = c->flush_ms;
    pthread_mutex_unlock(&log->append_mu);
    return rc;
}

void ks_log_abandon(ks_log *log)
{
    if (log) {
        log->closed = true;
        ks_log_close(log);
    }
}

KLOG_COLD int ks_log_close(ks_log *log)
{
    if (!log)
        return 0;
    int rc = 0;
    if (!log->closed && !log->cfg.read_only && !log->damaged && log->nsegs > 0) {
        /* Clean shutdown: sync, write the active segment's indexes and a
         * checkpoint at the end, so the next open need not scan.  What is
         * already so is not done again: a log that took no append since
         * it opened writes nothing. */
        ks_segment *s = ks__active(log);
        ks__prefill_quiesce(log);
        pthread_mutex_lock(&log->append_mu); /* the cache's sweep takes it to close the file */
        int64_t end = atomic_load(&log->end), start = atomic_load(&log->start);
        if (atomic_load(&log->failed)) {
            rc = atomic_load(&log->failed);
        } else {
            rc = ks__cut_zero_tail(log, s);
            if (rc == 0 && atomic_load(&log->durable) < end) {
                int h = ks__seg_h(log, s);
                rc = h < 0 ? h : kio_datasync(log->io, h);
            }
            /* An empty segment needs no index files: recovery takes it as
             * it is.  Those written here need no sync of their own: a torn
             * one is rebuilt at open, and the checkpoint's directory sync
             * below makes their names durable with its own. */
            if (rc == 0 && atomic_load(&s->size) > 0)
                rc = ks__seg_write_indexes_nosync(s, log->dir);
            if (rc == 0 && (log->recovery_point != end || log->ckpt_start != start)) {
                /* the log's own directory entry first (a log made just
                 * now); the checkpoint's sync covers its segment's */
                rc = ks__dir_durable_slow(log, KS_DIR_PARENT);
                if (rc == 0)
                    rc = ks__ckpt_write(log->io, log->dir, end, start);
                if (rc == 0)
                    atomic_fetch_and(&log->dir_unsynced, ~KS_DIR_SELF);
            }
        }
        ks__seg_h_drop(log, s);
        pthread_mutex_unlock(&log->append_mu);
    } else if (log->nsegs > 0) {
        pthread_mutex_lock(&log->append_mu);
        ks__seg_h_drop(log, ks__active(log));
        pthread_mutex_unlock(&log->append_mu);
    }
    log->closed = true;
    ks__disk_add(log, -(int64_t)atomic_load(&log->disk)); /* leaves the shared space */
    /* Every handle out of the instance's shared file-handle list first,
     * under append_mu as the cache's sweep closes them: a segment freed
     * while still on the list was touched by another log's next open
     * (heap-use-after-free, ASan, test/storage/cache.c). */
    pthread_mutex_lock(&log->append_mu);
    for (unsigned i = 0; i < log->nsegs; i++) {
        ks_segment *s = log->segs[i];
        ks__seg_h_drop(log, s);
        if (s->h >= 0) {
            kio_file_close(log->io, s->h); /* views keep the mapping, not the handle */
            s->h = -1;
        }
    }
    pthread_mutex_unlock(&log->append_mu);
    for (unsigned i = 0; i < log->nsegs; i++)
        ks__seg_unref(log->segs[i]);
    free(log->segs);
    free(log->pids);
    free(log->zeros);
    ks_dirlock_release(log->lock_fd);
    pthread_mutex_destroy(&log->maint_mu);
    pthread_mutex_destroy(&log->gap_mu);
    pthread_mutex_destroy(&log->ckpt_mu);
    pthread_mutex_destroy(&log->append_mu);
    pthread_mutex_destroy(&log->seg_mu);
    pthread_mutex_destroy(&log->sync_mu);
    pthread_cond_destroy(&log->sync_cv);
    pthread_mutex_destroy(&log->pf_mu);
    pthread_cond_destroy(&log->pf_cv);
    free(log);
    return rc;
}

int ks__cleaner_state_set(ks_log *log, int64_t gap_limit, int64_t clean_point)
{
    pthread_mutex_lock(&log->gap_mu);
    int64_t gl = KLOG_MAX(atomic_load(&log->gap_limit), gap_limit);
    int64_t cp = clean_point < 0 ? atomic_load(&log->clean_point) : clean_point;
    int rc = 0;
    if (gl != atomic_load(&log->gap_limit) || cp != atomic_load(&log->clean_point)) {
        if ((rc = ks__cleaner_ckpt_write(log->io, log->dir, gl, cp)) == 0) {
            atomic_store(&log->gap_limit, gl);
            atomic_store(&log->clean_point, cp);
            ks__small_files_count(log); /* cleaner.ckpt may be new */
        }
    }
    pthread_mutex_unlock(&log->gap_mu);
    return rc;
}
