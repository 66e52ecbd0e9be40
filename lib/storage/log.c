/*
 * lib/storage/log.c - the partition log: recovery, append, group commit,
 * roll, read, truncate.  Lock order: see struct ks_log in internal.h.
 *
 * Visibility: a batch is visible to readers once segment->size covers it;
 * size is published with release ordering after the bytes are in the page
 * cache and the indexes updated, and end_offset right after it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/common.h"
#include "storage/internal.h"

/* ---- idempotent producers --------------------------------------------------- */

#define KS_PID_BATCHES 5   /* batches remembered per producer (Kafka keeps 5) */
#define KS_PID_MAX 1024    /* producers remembered per log; the least recently
                            * seen is forgotten (its retries are then accepted) */

typedef struct ks_pid_batch {
    int32_t first_seq, last_seq;
    int64_t base;
} ks_pid_batch;

typedef struct ks_pidstate {
    int64_t pid;
    int16_t epoch;
    uint8_t n, head;       /* ring of recent batches; head = newest */
    ks_pid_batch b[KS_PID_BATCHES];
    uint64_t tick;
} ks_pidstate;

/* What a pid_check changed, so that a failed write can undo it. */
typedef struct ks_pidundo {
    int slot;              /* -1: nothing changed */
    unsigned npids;
    ks_pidstate old;
} ks_pidundo;

static int32_t seq_last(const kf_batch_info *bi)
{
    return (int32_t)(((uint32_t)bi->base_sequence + (uint32_t)bi->last_offset_delta) & 0x7fffffffu);
}

static void pid_push(ks_pidstate *st, const kf_batch_info *bi, int64_t base)
{
    st->head = (uint8_t)((st->head + 1) % KS_PID_BATCHES);
    st->b[st->head] = (ks_pid_batch){ bi->base_sequence, seq_last(bi), base };
    if (st->n < KS_PID_BATCHES)
        st->n++;
}

/*
 * Check a batch of an idempotent producer against what the log holds, and
 * record it.  Returns 0 (new, in sequence), KLOG_EDUPLICATE (*dup_base =
 * where it already is, or -1 if older than what is remembered),
 * KLOG_ESEQUENCE (a gap), KLOG_EFENCED (an older epoch), -ENOMEM.
 */
static int pid_check(ks_log *log, const kf_batch_info *bi, int64_t base, int64_t *dup_base, ks_pidundo *u)
{
    u->slot = -1;
    u->npids = log->npids;
    if (bi->producer_id < 0 || bi->base_sequence < 0)
        return 0;
    ks_pidstate *st = NULL;
    for (unsigned i = 0; i < log->npids; i++)
        if (log->pids[i].pid == bi->producer_id) {
            st = &log->pids[i];
            break;
        }
    if (st) {
        if (bi->producer_epoch < st->epoch)
            return KLOG_EFENCED;
        if (bi->producer_epoch == st->epoch && st->n > 0) {
            for (unsigned j = 0; j < st->n; j++) {
                const ks_pid_batch *r = &st->b[(st->head + KS_PID_BATCHES - j) % KS_PID_BATCHES];
                if (r->first_seq == bi->base_sequence && r->last_seq == seq_last(bi)) {
                    *dup_base = r->base;
                    return KLOG_EDUPLICATE;
                }
            }
            int32_t expect = (int32_t)(((uint32_t)st->b[st->head].last_seq + 1) & 0x7fffffffu);
            if (bi->base_sequence != expect) {
                uint32_t behind = ((uint32_t)expect - (uint32_t)bi->base_sequence) & 0x7fffffffu;
                if (behind > 0 && behind < (1u << 30)) {
                    *dup_base = -1; /* older than the batches remembered */
                    return KLOG_EDUPLICATE;
                }
                return KLOG_ESEQUENCE;
            }
        }
    } else {
        if (log->npids == KS_PID_MAX) {
            unsigned lru = 0;
            for (unsigned i = 1; i < log->npids; i++)
                if (log->pids[i].tick < log->pids[lru].tick)
                    lru = i;
            st = &log->pids[lru];
        } else {
            if (!log->pids && !(log->pids = calloc(KS_PID_MAX, sizeof *log->pids)))
                return -ENOMEM;
            st = &log->pids[log->npids++];
        }
    }
    u->slot = (int)(st - log->pids);
    u->old = *st;
    if (st->pid != bi->producer_id || st->epoch != bi->producer_epoch || u->npids != log->npids) {
        memset(st, 0, sizeof *st);
        st->pid = bi->producer_id;
        st->epoch = bi->producer_epoch;
    }
    pid_push(st, bi, base);
    st->tick = ++log->pid_tick;
    return 0;
}

static void pid_undo(ks_log *log, const ks_pidundo *u)
{
    if (u->slot >= 0)
        log->pids[u->slot] = u->old;
    log->npids = u->npids;
}

int64_t ks__now(const ks_log *log)
{
    return log->cfg.clock_ms ? log->cfg.clock_ms(log->cfg.clock_arg) : klog__wall_ms();
}

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

/* Append a segment to the list (caller holds append_mu if the log is live). */
static int list_push(ks_log *log, ks_segment *s)
{
    pthread_mutex_lock(&log->seg_mu);
    if (log->nsegs == log->segcap) {
        unsigned ncap = log->segcap ? log->segcap * 2 : 8;
        ks_segment **n = realloc(log->segs, ncap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&log->seg_mu);
            return -ENOMEM;
        }
        log->segs = n;
        log->segcap = ncap;
    }
    log->segs[log->nsegs++] = s;
    pthread_mutex_unlock(&log->seg_mu);
    return 0;
}

int ks__ckpt_write_locked(ks_log *log, int64_t recovery_point)
{
    pthread_mutex_lock(&log->ckpt_mu);
    int rc = ks__ckpt_write(log->io, log->dir, recovery_point, atomic_load(&log->start));
    if (rc == 0)
        log->recovery_point = recovery_point;
    pthread_mutex_unlock(&log->ckpt_mu);
    return rc;
}

void ks__disk_add(ks_log *log, int64_t delta)
{
    atomic_fetch_add(&log->disk, (uint64_t)delta);
    if (log->space)
        atomic_fetch_add(&log->space->used, (uint64_t)delta);
}

uint64_t ks__seg_disk(ks_segment *s) { return atomic_load(&s->size) + s->ix_bytes; }

/* ---- zeroed tail ahead of durable appends ------------------------------------
 * A durable append that extends its file makes fdatasync commit metadata
 * too (the new size, the allocated blocks: an ext4 journal commit); one that
 * lands on blocks already written, inside the file's size, needs only its
 * data written.  So durable appends keep a zeroed tail written ahead of them
 * in the active segment, as PostgreSQL zero-fills its WAL segments
 * (wal_init_zero).  Measured here (ext4): 126 KB write+fdatasync 1.6x
 * faster into a zeroed region than appended, 200 B 1.3x.  The tail is
 * written in KS_PREFILL_CHUNK steps, without a sync of its own: the next
 * durable append's sync makes it and the new size durable in one commit
 * (the background mode below keeps up to 1.5 chunks ahead).
 * Readers stop at `size` and never see it; a roll and a clean close cut it
 * before the segment's indexes are written; recovery cuts what a crash left
 * (zeros are no valid batch, and lie above every acknowledged offset).  The
 * tail (at most 1.5 x KS_PREFILL_CHUNK per partition written durably) is not
 * counted in the disk usage; so it is not written under a disk budget,
 * where every byte on disk has to be reserved first. */
#define KS_PREFILL_CHUNK (4u << 20) /* default; ks_log_config.prefill_chunk */
#define KS_PREFILL_STEP (1u << 20)  /* most zeros per write call */
#define KS_ZERO_BUF (64u << 10)
/*
 * Zero-filling costs far more than the disk's bandwidth suggests (1-2 ms
 * per MiB here: page allocation, then the writeback, which the next
 * durable append's fdatasync waits for).  So with a prefill hook set (the
 * instance's background thread), an append that finds less than half a
 * chunk ahead only asks; ks_log_prefill then writes the next chunk in
 * quarter-chunk steps outside the append lock, writes each step back (a
 * ranged writeback, not a sync: the first durable append after it commits
 * the new file size once per chunk) and publishes it by moving file_end.
 * Appends go on meanwhile into what is published; one that would pass
 * file_end while a step is in flight stops the prefill after that step and
 * waits for it.  A roll, a truncation and close stop it the same way.
 * The first chunk of a segment (no tail at all yet: a new segment, or
 * appends that outran the background) is still written inline: paid once,
 * up front, it beats a background fill whose writeback meets the first
 * appends' syncs (bench/compare durable rows, fresh logs).
 */

static int zeros_ready(ks_log *log)
{
    if (!log->zeros && !(log->zeros = calloc(1, KS_ZERO_BUF)))
        return -ENOMEM;
    return 0;
}

/* Write zeros over [from, to) of s's file, in calls of up to a step. */
static int write_zeros(ks_log *log, ks_segment *s, uint64_t from, uint64_t to)
{
    struct iovec iov[KS_PREFILL_STEP / KS_ZERO_BUF];
    while (from < to) {
        uint64_t end = KLOG_MIN(from + KS_PREFILL_STEP, to);
        int n = 0;
        for (uint64_t at = from; at < end; at += KS_ZERO_BUF, n++)
            iov[n] = (struct iovec){ log->zeros, (size_t)KLOG_MIN((uint64_t)KS_ZERO_BUF, end - at) };
        int rc = kio_pwritev(log->io, s->h, iov, n, from); /* 0: all of it written */
        if (rc < 0)
            return rc;
        from = end;
    }
    return 0;
}

/* Where a prefill of s may go: up to the segment's size limit. */
static uint64_t prefill_limit(const ks_log *log, const ks_segment *s)
{
    return KLOG_MIN(log->cfg.segment_bytes, (uint64_t)s->map_cap);
}

/* The configured chunk (ks_log_config.prefill_chunk). */
static uint64_t prefill_chunk(const ks_log *log)
{
    return log->cfg.prefill_chunk ? KLOG_MAX((uint64_t)log->cfg.prefill_chunk, (uint64_t)4096) : KS_PREFILL_CHUNK;
}

/* A zero-fill of s failed (nothing or part of it written): give the file
 * the length it had before (no append went past file_end meanwhile; if
 * even that fails, the zeros past the data are harmless: cut at the roll,
 * the close or the next open), and stop prefilling this segment: on a full
 * disk every durable append would otherwise write zeros to no end. */
static void prefill_failed(ks_log *log, ks_segment *s)
{
    (void)kio_truncate(log->io, s->h, KLOG_MAX(s->file_end, atomic_load(&s->size)));
    atomic_store(&log->pf_off, true);
}

/* Make sure the file reaches past data_end + a chunk's headroom: zero-fill
 * from the current file end, inline (append_mu held).  Failures only cost
 * speed. */
static void prefill(ks_log *log, ks_segment *s, uint64_t data_end)
{
    if (s->file_end >= data_end + prefill_chunk(log) / 4 || atomic_load(&log->pf_off))
        return;
    uint64_t from = KLOG_MAX(s->file_end, data_end);
    uint64_t to = KLOG_MIN(from + prefill_chunk(log), prefill_limit(log, s));
    if (to <= from || zeros_ready(log) < 0)
        return;
    if (write_zeros(log, s, from, to) == 0)
        s->file_end = to;
    else
        prefill_failed(log, s);
}

/* Background mode (append_mu held), before any append writes s up to
 * data_end: wait out a prefill step in flight where the write goes; and
 * for a durable one (more), ask for the next chunk when less than half of
 * one is left ahead. */
static void prefill_ask(ks_log *log, ks_segment *s, uint64_t data_end, bool more)
{
    /* pf_busy is set only under append_mu, which we hold: a false here
     * stays false until we let go */
    if (!more && !atomic_load(&log->pf_busy))
        return;
    pthread_mutex_lock(&log->pf_mu);
    if (log->pf_busy && data_end > s->file_end) {
        log->pf_abort = true; /* appends caught up: extend the file instead */
        while (log->pf_busy && data_end > s->file_end)
            pthread_cond_wait(&log->pf_cv, &log->pf_mu);
    }
    bool ask = more && !log->pf_busy && !log->pf_wanted && !atomic_load(&log->pf_off) &&
               s->file_end < data_end + prefill_chunk(log) / 2 &&
               data_end < prefill_limit(log, s);
    pthread_mutex_unlock(&log->pf_mu);
    if (ask) {
        log->pf_wanted = true;
        log->pf_hook(log->pf_arg);
    }
}

/* Stop a background prefill and wait until it is out: before a roll, a
 * truncation, a cut after a failed write, or close. */
static void prefill_quiesce(ks_log *log)
{
    pthread_mutex_lock(&log->pf_mu);
    if (log->pf_busy)
        log->pf_abort = true;
    while (log->pf_busy)
        pthread_cond_wait(&log->pf_cv, &log->pf_mu);
    pthread_mutex_unlock(&log->pf_mu);
}

void ks_log_set_prefill_hook(ks_log *log, void (*fn)(void *arg), void *arg)
{
    if (!log)
        return;
    log->pf_hook = fn;
    log->pf_arg = arg;
}

int ks_log_prefill(ks_log *log)
{
    if (!log)
        return -EINVAL;
    /* The background thread calls this for every partition when any one
     * asked: the others must not cost their appenders a lock round. */
    if (!atomic_load(&log->pf_wanted))
        return 0;
    pthread_mutex_lock(&log->append_mu);
    bool wanted = log->pf_wanted;
    log->pf_wanted = false;
    ks_segment *s = log->nsegs ? ks__active(log) : NULL;
    if (!wanted || !s || log->closed || log->cfg.read_only || atomic_load(&log->failed) || s->h < 0 ||
        s->sealed || (log->space && log->space->limit) || zeros_ready(log) < 0) {
        pthread_mutex_unlock(&log->append_mu);
        return 0;
    }
    uint64_t from = KLOG_MAX(s->file_end, atomic_load(&s->size));
    uint64_t to = KLOG_MIN(from + prefill_chunk(log), prefill_limit(log, s));
    if (to <= from) {
        pthread_mutex_unlock(&log->append_mu);
        return 0;
    }
    pthread_mutex_lock(&log->pf_mu);
    log->pf_busy = true;
    log->pf_abort = false;
    pthread_mutex_unlock(&log->pf_mu);
    pthread_mutex_unlock(&log->append_mu);

    /* s stays the active segment and its handle open until pf_busy drops:
     * roll, truncation and close wait for that. */
    int rc = 0;
    for (uint64_t at = from; at < to;) {
        uint64_t step = KLOG_MIN(at + prefill_chunk(log) / 4, to); /* 1 MiB by default */
        rc = write_zeros(log, s, at, step);
        if (rc == 0)
            (void)kio_writeback(log->io, s->h, at, step - at); /* a hint: failure costs speed only */
        pthread_mutex_lock(&log->pf_mu);
        bool stop = log->pf_abort;
        if (rc == 0) {
            s->file_end = step;
            pthread_cond_broadcast(&log->pf_cv);
        }
        pthread_mutex_unlock(&log->pf_mu);
        if (rc < 0 || stop)
            break;
        at = step;
    }
    if (rc < 0)
        prefill_failed(log, s); /* before pf_busy drops: appends wait at file_end till then */
    pthread_mutex_lock(&log->pf_mu);
    log->pf_busy = false;
    pthread_cond_broadcast(&log->pf_cv);
    pthread_mutex_unlock(&log->pf_mu);
    return rc;
}

/* The segment's file is about to lose its zeroed tail (cut, truncated or
 * replaced). */
static void zero_tail_gone(ks_segment *s)
{
    uint64_t size = atomic_load(&s->size);
    if (s->file_end > size)
        s->file_end = size;
}

/* Cut the zeroed tail off the file (before its indexes are written, so that
 * a segment whose indexes exist never has one). */
static int cut_zero_tail(ks_log *log, ks_segment *s)
{
    if (s->h < 0 || s->file_end <= atomic_load(&s->size))
        return 0;
    int rc = kio_truncate(log->io, s->h, atomic_load(&s->size));
    zero_tail_gone(s);
    return rc;
}

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

/* Durable offset only moves forward. */
static void advance_durable(ks_log *log, int64_t to)
{
    int64_t cur = atomic_load(&log->durable);
    while (cur < to && !atomic_compare_exchange_weak(&log->durable, &cur, to))
        ;
}

/* A failed fsync is never retried: record it, turn read-only, wake waiters. */
int ks__fail_sync(ks_log *log, int err)
{
    int zero = 0;
    atomic_compare_exchange_strong(&log->failed, &zero, err);
    pthread_mutex_lock(&log->sync_mu);
    pthread_cond_broadcast(&log->sync_cv);
    pthread_mutex_unlock(&log->sync_mu);
    return err;
}

/* ---- recovery ------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Parse "%020lld.log" etc.  Returns true and *base when name is base+suffix. */
static bool parse_name(const char *name, const char *suffix, int64_t *base)
{
    size_t n = strlen(name), sl = strlen(suffix);
    if (n != 20 + sl || strcmp(name + 20, suffix) != 0)
        return false;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (name[i] - '0');
    }
    *base = v;
    return true;
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

/*
 * Scan and validate a segment from position 0 through kio reads, rebuilding
 * its indexes.  *valid_end receives the position after the last valid batch;
 * *first_bad_offset the offset the first invalid batch would have started
 * at.  Validation: framing, checksum, base offset == the expected next
 * offset (>= where compaction may have left gaps) and last offset < limit
 * (the next segment's base).
 */
static int scan_segment(ks_log *log, ks_segment *s, uint64_t fsize, int64_t limit, bool gaps,
                        uint64_t *valid_end, int64_t *expected_out)
{
    size_t bufcap = 1u << 20;
    uint8_t *buf = malloc(bufcap);
    if (!buf)
        return -ENOMEM;
    ks__seg_reset_indexes(s);
    uint64_t pos = 0;        /* file position of buf[0] */
    size_t have = 0, at = 0; /* bytes in buf, parse cursor */
    int64_t expected = s->base;
    int rc = 0;
    for (;;) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(buf + at, have - at, &bi);
        if (len == 0 && pos + have < fsize) {
            /* need more bytes: slide and refill (grow for a large batch) */
            memmove(buf, buf + at, have - at);
            pos += at;
            have -= at;
            at = 0;
            if (have >= KF_LOG_OVERHEAD) {
                size_t need = KF_LOG_OVERHEAD + (size_t)klog__ld32(buf + KF_OFF_LENGTH);
                if (need > bufcap && need <= (size_t)KF_BATCH_MAX) {
                    uint8_t *nb = realloc(buf, need);
                    if (!nb) {
                        rc = -ENOMEM;
                        break;
                    }
                    buf = nb;
                    bufcap = need;
                }
            }
            size_t want = KLOG_MIN(bufcap - have, (size_t)(fsize - pos - have));
            if (want == 0)
                break; /* batch claims more than the maximum: invalid */
            ssize_t n = kio_pread(log->io, s->h, buf + have, want, pos + have);
            if (n < 0) {
                rc = (int)n;
                break;
            }
            if (n == 0)
                break;
            have += (size_t)n;
            continue;
        }
        if (len <= 0)
            break; /* incomplete at end of file, or insane header */
        if (kf_batch_verify(buf + at, (size_t)len) != 0 || bi.base_offset < expected ||
            (!gaps && bi.base_offset != expected) || kf_batch_last_offset(&bi) >= limit)
            break;
        ks_pidundo u;
        int64_t dup;
        (void)pid_check(log, &bi, bi.base_offset, &dup, &u); /* rebuild producer state */
        atomic_store(&s->size, pos + at); /* note_batch needs positions only */
        ks__seg_note_batch(s, &bi, pos + at, (uint64_t)len, log->cfg.index_interval_bytes);
        expected = kf_batch_last_offset(&bi) + 1;
        at += (size_t)len;
    }
    free(buf);
    if (rc < 0)
        return rc;
    *valid_end = pos + at;
    *expected_out = expected;
    atomic_store(&s->size, pos + at);
    atomic_store(&s->next_offset, expected);
    return 0;
}

/* Growable array of base offsets. */
typedef struct base_list { int64_t *v; size_t n, cap; } base_list;

static int base_push(base_list *l, int64_t b)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        int64_t *nv = realloc(l->v, nc * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = b;
    return 0;
}

/* The offset after the last batch of a finished swap file (its base if it
 * is empty), checking every batch: the file was made durable before it was
 * renamed to .swap, so anything invalid in it is damage, not a torn write. */
static int swap_next_offset(ks_log *log, const char *path, int64_t base, int64_t *next)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *next = base;
    if (st.st_size == 0) {
        close(fd);
        return 0;
    }
    uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return -errno;
    int rc = 0;
    int64_t expected = base;
    for (uint64_t p = 0; p < (uint64_t)st.st_size;) {
        kf_batch_info bi;
        ssize_t len = kf_batch_parse(m + p, (size_t)st.st_size - p, &bi);
        if (len <= 0 || kf_batch_verify(m + p, (size_t)len) != 0 || bi.base_offset < expected) {
            rc = KLOG_ECORRUPT;
            break;
        }
        expected = kf_batch_last_offset(&bi) + 1;
        p += (uint64_t)len;
    }
    munmap(m, (size_t)st.st_size);
    (void)log;
    *next = expected;
    return rc;
}

/*
 * Finish a cleaning pass that committed (B.log.swap exists) but did not
 * complete: delete the group's other segments (bases in (B, swap end)) and
 * B's index files, then rename the swap over B.log.  bases is updated.
 */
static int finish_swap(ks_log *log, int64_t b, base_list *bases)
{
    char name[KS_NAME_MAX], from[4200], to[4200];
    ks_segment_name(name, sizeof name, b, ".log.swap");
    snprintf(from, sizeof from, "%s/%s", log->dir, name);
    ks_segment_name(name, sizeof name, b, ".log");
    snprintf(to, sizeof to, "%s/%s", log->dir, name);
    int64_t next = b;
    int rc = swap_next_offset(log, from, b, &next);
    if (rc < 0)
        return rc;
    size_t w = 0;
    bool have_b = false;
    for (size_t i = 0; i < bases->n; i++) {
        int64_t x = bases->v[i];
        if (x > b && x < next) {
            if ((rc = ks__unlink_segment_files(log, x)) < 0)
                return rc;
            continue;
        }
        have_b = have_b || x == b;
        bases->v[w++] = x;
    }
    bases->n = w;
    ks_segment_name(name, sizeof name, b, ".index");
    if ((rc = ks__unlink_in(log, name)) < 0)
        return rc;
    ks_segment_name(name, sizeof name, b, ".timeindex");
    if ((rc = ks__unlink_in(log, name)) < 0)
        return rc;
    if ((rc = kio_rename(log->io, from, to)) < 0 || (rc = kio_dirsync(log->io, log->dir)) < 0)
        return rc;
    if (!have_b && (rc = base_push(bases, b)) < 0)
        return rc;
    return 0;
}

static int recover(ks_log *log)
{
    kio *io = log->io;
    int rc;
    int64_t rp = 0, start = 0;
    rc = ks__ckpt_read(io, log->dir, &rp, &start);
    if (rc == -ENOENT || rc == KLOG_ECORRUPT) {
        /* No trustworthy checkpoint: re-validate everything (safe, slower). */
        rp = 0;
        start = 0;
    } else if (rc < 0) {
        return rc;
    }
    int64_t cpt = 0;
    rc = ks__cleaner_ckpt_read(io, log->dir, &log->gap_limit, &cpt);
    atomic_store(&log->clean_point, cpt);
    if (rc == -ENOENT) {
        log->gap_limit = 0;
        atomic_store(&log->clean_point, 0);
    } else if (rc == KLOG_ECORRUPT) {
        /* Compaction may have left gaps anywhere: accept them rather than
         * refuse a log that is fine; clean everything again. */
        log->gap_limit = INT64_MAX;
        atomic_store(&log->clean_point, 0);
    } else if (rc < 0) {
        return rc;
    }

    /* List segment files; remove leftovers of interrupted atomic writes and
     * of cleaning passes that did not commit; note committed swaps. */
    DIR *d = opendir(log->dir);
    if (!d)
        return -errno;
    base_list bases = { 0 }, swaps = { 0 };
    struct dirent *de;
    rc = 0;
    while ((de = readdir(d)) != NULL && rc == 0) {
        int64_t b;
        size_t l = strlen(de->d_name);
        if ((l > 4 && strcmp(de->d_name + l - 4, ".tmp") == 0) ||
            parse_name(de->d_name, ".log.cleaned", &b)) {
            if (!log->cfg.read_only)
                ks__unlink_in(log, de->d_name);
            continue;
        }
        if (parse_name(de->d_name, ".log.swap", &b)) {
            rc = base_push(&swaps, b);
            continue;
        }
        if (parse_name(de->d_name, ".log", &b))
            rc = base_push(&bases, b);
    }
    closedir(d);
    if (rc < 0)
        goto out;
    if (swaps.n > 0 && log->cfg.read_only) {
        rc = KLOG_ESTATE; /* an interrupted cleaning pass: a writer must finish it */
        goto out;
    }
    if (swaps.n > 1)
        qsort(swaps.v, swaps.n, sizeof *swaps.v, cmp_i64);
    for (size_t i = 0; i < swaps.n; i++)
        if ((rc = finish_swap(log, swaps.v[i], &bases)) < 0)
            goto out;
    if (bases.n > 1)
        qsort(bases.v, bases.n, sizeof *bases.v, cmp_i64);
    /* Segments wholly below the log start (retention or DeleteRecords
     * checkpointed the start, then stopped before unlinking them). */
    size_t skip = 0;
    while (skip + 1 < bases.n && bases.v[skip + 1] <= start) {
        if (!log->cfg.read_only && (rc = ks__unlink_segment_files(log, bases.v[skip])) < 0)
            goto out;
        skip++;
    }
    int64_t *bv = bases.v + skip;
    size_t nb = bases.n - skip;

    bool changed = false;  /* truncated or removed something: sync + checkpoint */
    bool scanned_tail = false;
    for (size_t i = 0; i < nb; i++) {
        ks_segment *s;
        rc = ks__seg_new(&s, io, log->dir, bv[i], ks__map_cap(log), log->cfg.index_interval_bytes, false);
        if (rc < 0)
            goto out;
        uint64_t fsize = 0;
        if ((rc = kio_size(io, s->h, &fsize)) < 0 || (rc = list_push(log, s)) < 0) {
            ks__seg_unref(s);
            goto out;
        }
        int64_t limit = i + 1 < nb ? bv[i + 1] : INT64_MAX;
        bool below_rp = limit <= rp; /* wholly below the recovery point */
        bool is_last = i + 1 == nb;
        bool gaps = bv[i] < log->gap_limit; /* compaction may have thinned it */
        s->gaps = gaps;
        /* Trusted segments (and a cleanly closed last one) load their
         * indexes; a missing or corrupt index is rebuilt by a scan. */
        if (below_rp || is_last) {
            int lr = ks__seg_load_indexes(s, log->dir, fsize);
            if (lr == 0 && (below_rp || atomic_load(&s->next_offset) <= rp)) {
                int64_t nx = atomic_load(&s->next_offset);
                if (!is_last && (nx > limit || (!gaps && nx != limit))) {
                    rc = KLOG_ECORRUPT;
                    goto out;
                }
                s->sealed = true; /* indexes on disk are good */
                if (is_last && !log->cfg.read_only) {
                    /* The active segment's indexes live in memory from now
                     * on; stale files must not outlive later appends. */
                    char name[KS_NAME_MAX];
                    ks_segment_name(name, sizeof name, s->base, ".index");
                    ks__unlink_in(log, name);
                    ks_segment_name(name, sizeof name, s->base, ".timeindex");
                    ks__unlink_in(log, name);
                    s->sealed = false;
                    s->ix_bytes = 0;
                }
                continue;
            }
        }
        uint64_t valid_end;
        int64_t expected;
        rc = scan_segment(log, s, fsize, limit, gaps, &valid_end, &expected);
        if (rc < 0)
            goto out;
        scanned_tail = true;
        bool short_of_next = !is_last && !gaps && expected != limit;
        if (valid_end == fsize && short_of_next && expected < rp) {
            rc = KLOG_ECORRUPT; /* whole batches missing at the end of a trusted segment */
            goto out;
        }
        if (valid_end < fsize || short_of_next) {
            /* Invalid bytes at valid_end.  Below the recovery point that is
             * acknowledged, synced data gone bad: refuse to drop it. */
            if (expected < rp) {
                rc = KLOG_ECORRUPT;
                goto out;
            }
            if (!log->cfg.read_only && (rc = kio_truncate(io, s->h, valid_end)) < 0)
                goto out;
            s->file_end = valid_end;
            changed = true;
            /* Everything after the first invalid byte goes. */
            for (size_t j = i + 1; j < nb; j++) {
                if (bv[j] < rp) {
                    rc = KLOG_ECORRUPT;
                    goto out;
                }
                if (!log->cfg.read_only && (rc = ks__unlink_segment_files(log, bv[j])) < 0)
                    goto out;
            }
            nb = i + 1;
            break;
        }
    }

    if (log->nsegs == 0) {
        if (log->cfg.read_only) {
            rc = -ENOENT;
            goto out;
        }
        ks_segment *s;
        int64_t base = start > rp ? start : rp;
        rc = ks__seg_new(&s, io, log->dir, base, ks__map_cap(log), log->cfg.index_interval_bytes, true);
        if (rc < 0)
            goto out;
        if ((rc = list_push(log, s)) < 0) {
            ks__seg_unref(s);
            goto out;
        }
        if ((rc = kio_dirsync(io, log->dir)) < 0)
            goto out;
        changed = true;
    }
    /* Indexes of sealed segments that were rebuilt are rewritten so the next
     * open does not scan them again. */
    for (unsigned i = 0; i + 1 < log->nsegs; i++) {
        ks_segment *s = log->segs[i];
        if (!s->sealed && !log->cfg.read_only && (rc = ks__seg_write_indexes(s, log->dir)) < 0)
            goto out;
        s->sealed = true;
        kio_file_close(io, s->h);
        s->h = -1;
    }
    int64_t end = atomic_load(&ks__active(log)->next_offset);
    if (start < log->segs[0]->base)
        start = log->segs[0]->base;
    if (start > end)
        start = end;
    atomic_store(&log->end, end);
    atomic_store(&log->start, start);
    if (!log->cfg.read_only && (changed || scanned_tail || rp != end || skip > 0)) {
        /* What survived may sit only in the page cache (a process crash):
         * make it durable before the checkpoint vouches for it. */
        if ((rc = kio_datasync(io, ks__active(log)->h)) < 0)
            goto out;
        if ((changed || skip > 0) && (rc = kio_dirsync(io, log->dir)) < 0)
            goto out;
        if ((rc = ks__ckpt_write(io, log->dir, end, start)) < 0)
            goto out;
    }
    log->recovery_point = end;
    atomic_store(&log->durable, end);
    uint64_t disk = 0;
    for (unsigned i = 0; i < log->nsegs; i++)
        disk += ks__seg_disk(log->segs[i]);
    ks__disk_add(log, (int64_t)disk);
    rc = 0;
out:
    free(bases.v);
    free(swaps.v);
    return rc;
}

int ks_log_open(ks_log **out, kio *io, const char *dir, const ks_log_config *cfg)
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
    ks_log *log = calloc(1, sizeof *log);
    if (!log)
        return -ENOMEM;
    log->io = io;
    log->cfg = c;
    log->lock_fd = -1;
    log->unsynced_since_ms = -1;
    log->space = c.space;
    pthread_mutex_init(&log->maint_mu, NULL);
    pthread_mutex_init(&log->ckpt_mu, NULL);
    pthread_mutex_init(&log->append_mu, NULL);
    pthread_mutex_init(&log->seg_mu, NULL);
    pthread_mutex_init(&log->sync_mu, NULL);
    pthread_cond_init(&log->sync_cv, NULL);
    pthread_mutex_init(&log->pf_mu, NULL);
    pthread_cond_init(&log->pf_cv, NULL);
    int rc;
    if (snprintf(log->dir, sizeof log->dir, "%s", dir) >= (int)sizeof log->dir) {
        rc = -ENAMETOOLONG;
        goto fail;
    }
    if (!c.read_only) {
        rc = kio_mkdir(io, dir, 0755);
        if (rc == 0) {
            /* make the new directory's own entry durable */
            char parent[4096];
            snprintf(parent, sizeof parent, "%s", dir);
            char *slash = strrchr(parent, '/');
            if (slash == parent)
                slash[1] = '\0';
            else if (slash)
                *slash = '\0';
            else
                strcpy(parent, ".");
            if ((rc = kio_dirsync(io, parent)) < 0)
                goto fail;
        } else if (rc != -EEXIST) {
            goto fail;
        }
        rc = ks_dirlock_acquire(dir);
        if (rc < 0)
            goto fail;
        log->lock_fd = rc;
    }
    if ((rc = recover(log)) < 0)
        goto fail;
    *out = log;
    return 0;
fail:
    log->closed = true; /* no sync, no checkpoint: nothing was validated */
    ks_log_close(log);
    return rc;
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
    prefill_quiesce(log);
    atomic_store(&log->pf_off, false); /* the next segment may try again */
    if ((rc = cut_zero_tail(log, old)) < 0)
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
    if ((rc = kio_dirsync(log->io, log->dir)) < 0 || (rc = list_push(log, s)) < 0) {
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
            cr = pid_check(log, &bi[k], next, &dup_base, &undo[k]);
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
                prefill(log, s, pos); /* no tail at all: the first chunk inline */
            prefill_ask(log, s, pos, tail); /* every append: none may write into a step in flight */
        } else if (tail) {
            prefill(log, s, pos);
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
                pid_undo(log, &undo[j]);
            prefill_quiesce(log);
            zero_tail_gone(s);
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
    if (offset == end)
        return 0;
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
             * starts at the first batch after it */
            first = bi.base_offset;
        } else if (len <= 0 || p - pos + (uint64_t)len > max_bytes || bi.base_offset < next ||
                   (!s->gaps && bi.base_offset != next)) {
            break; /* whole batches within max_bytes; bad framing is the next read's to report */
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

int ks_log_offset_for_time(ks_log *log, int64_t ts, int64_t *offset)
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

static int replace_segment_prefix(ks_log *log, ks_segment *s, uint64_t cut, int64_t cut_offset,
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
    uint32_t no = atomic_load(&s->oidx.count), nt = atomic_load(&s->tidx.count);
    const ks_oentry *oe = s->oidx.e;
    const ks_tentry *te = s->tidx.e;
    while (no > 0 && oe[no - 1].pos >= cut)
        no--;
    while (nt > 0 && te[nt - 1].pos >= cut)
        nt--;
    memcpy(ns->oidx.e, oe, (size_t)no * sizeof *oe);
    memcpy(ns->tidx.e, te, (size_t)nt * sizeof *te);
    atomic_store(&ns->oidx.count, no);
    atomic_store(&ns->tidx.count, nt);
    atomic_store(&ns->size, cut);
    atomic_store(&ns->next_offset, cut_offset);
    seg_rescan_bounds(ns, cut);
    pthread_mutex_lock(&log->seg_mu);
    log->segs[log->nsegs - 1] = ns;
    pthread_mutex_unlock(&log->seg_mu);
    s->sealed = true;
    if (s->h_users == 0 && s->h >= 0) {
        kio_file_close(log->io, s->h);
        s->h = -1;
    }
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

int ks_log_truncate_to(ks_log *log, int64_t offset, int64_t *new_end)
{
    if (!log)
        return -EINVAL;
    if (log->closed)
        return KLOG_ECLOSED;
    if (log->cfg.read_only)
        return KLOG_EREADONLY;
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
    prefill_quiesce(log);
    int64_t end = atomic_load(&log->end);
    if (offset < atomic_load(&log->start) || offset > end) {
        pthread_mutex_unlock(&log->append_mu);
        return KLOG_EOFFSET;
    }
    if (atomic_load(&log->failed)) {
        pthread_mutex_unlock(&log->append_mu);
        return KLOG_EREADONLY;
    }
    /* Drop whole segments that start at or above offset (keep at least one). */
    while (log->nsegs > 1 && ks__active(log)->base >= offset) {
        pthread_mutex_lock(&log->seg_mu);
        ks_segment *s = log->segs[--log->nsegs];
        pthread_mutex_unlock(&log->seg_mu);
        atomic_store(&log->end, s->base);
        ks__disk_add(log, -(int64_t)ks__seg_disk(s));
        int r = ks__unlink_segment_files(log, s->base);
        ks__seg_unref(s); /* readers holding views keep the mapping */
        if (r < 0 && rc == 0)
            rc = r;
    }
    ks_segment *s = ks__active(log);
    if (s->sealed) {
        /* The segment becomes writable again: reopen it, drop its index
         * files (the in-memory ones stay authoritative). */
        int h = s->h >= 0 ? s->h : kio_file_open(log->io, s->path, KIO_O_RDWR, 0);
        if (h < 0) {
            pthread_mutex_unlock(&log->append_mu);
            return h;
        }
        s->h = h;
        s->sealed = false;
        ks__disk_add(log, -(int64_t)s->ix_bytes);
        s->ix_bytes = 0;
        char name[KS_NAME_MAX];
        ks_segment_name(name, sizeof name, s->base, ".index");
        ks__unlink_in(log, name);
        ks_segment_name(name, sizeof name, s->base, ".timeindex");
        ks__unlink_in(log, name);
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
        zero_tail_gone(s); /* the new file has none; the old one goes */
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
        zero_tail_gone(s);
        atomic_store(&s->next_offset, cut_offset);
        atomic_store(&log->end, cut_offset);
        ks__seg_truncate_indexes(s, cut);
        seg_rescan_bounds(s, cut);
        int tr = kio_truncate(log->io, s->h, cut);
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
    if (rc == 0 && log->clean_point > atomic_load(&log->end)) {
        /* offsets appended again above the new end were never cleaned */
        int64_t cp = atomic_load(&log->end);
        rc = ks__cleaner_ckpt_write(log->io, log->dir, log->gap_limit, cp);
        if (rc == 0)
            atomic_store(&log->clean_point, cp);
    }
    log->npids = 0; /* remembered batches may be gone: forget them */
    if (new_end)
        *new_end = atomic_load(&log->end);
    pthread_mutex_unlock(&log->append_mu);
    return rc;
}

/* ---- accessors and close ---------------------------------------------------- */

int64_t ks_log_start_offset(ks_log *log) { return atomic_load(&log->start); }
int64_t ks_log_end_offset(ks_log *log) { return atomic_load_explicit(&log->end, memory_order_acquire); }
int64_t ks_log_durable_offset(ks_log *log) { return atomic_load(&log->durable); }
int ks_log_error(ks_log *log) { return atomic_load(&log->failed); }

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

int ks_log_reconfigure(ks_log *log, const ks_log_config *c)
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
    if (c->max_batch_bytes > log->cfg.max_batch_bytes && !log->cfg.read_only) {
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
                pthread_mutex_lock(&log->seg_mu);
                log->segs[log->nsegs - 1] = ns;
                pthread_mutex_unlock(&log->seg_mu);
                ks__seg_unref(a); /* closes its handle once no view holds it */
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

int ks_log_close(ks_log *log)
{
    if (!log)
        return 0;
    int rc = 0;
    if (!log->closed && !log->cfg.read_only && log->nsegs > 0) {
        /* Clean shutdown: sync, write the active segment's indexes and a
         * checkpoint at the end, so the next open need not scan. */
        ks_segment *s = ks__active(log);
        prefill_quiesce(log);
        if (atomic_load(&log->failed)) {
            rc = atomic_load(&log->failed);
        } else {
            rc = cut_zero_tail(log, s);
            if (rc == 0)
                rc = s->h >= 0 ? kio_datasync(log->io, s->h) : 0;
            if (rc == 0)
                rc = ks__seg_write_indexes(s, log->dir);
            if (rc == 0)
                rc = ks__ckpt_write(log->io, log->dir, atomic_load(&log->end), atomic_load(&log->start));
        }
    }
    log->closed = true;
    ks__disk_add(log, -(int64_t)atomic_load(&log->disk)); /* leaves the shared space */
    for (unsigned i = 0; i < log->nsegs; i++) {
        ks_segment *s = log->segs[i];
        if (s->h >= 0) {
            kio_file_close(log->io, s->h); /* views keep the mapping, not the handle */
            s->h = -1;
        }
        ks__seg_unref(s);
    }
    free(log->segs);
    free(log->pids);
    free(log->zeros);
    ks_dirlock_release(log->lock_fd);
    pthread_mutex_destroy(&log->maint_mu);
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
