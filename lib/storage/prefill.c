/*
 * lib/storage/prefill.c - the zeroed tail ahead of durable appends.
 *
 * A durable append that extends its file makes fdatasync commit metadata too
 * (the new size, the allocated blocks: an ext4 journal commit); one that
 * lands on blocks already written, inside the file's size, needs only its
 * data written.  So durable appends keep a zeroed tail written ahead of them
 * in the active segment, as PostgreSQL zero-fills its WAL segments
 * (wal_init_zero).  On ext4, 126 KB write+fdatasync ran 1.6x faster into a
 * zeroed region than appended, 200 B 1.3x (bench/RESULTS.md, 2026-11-24, the
 * `pz` probe).  The tail is written in KS_PREFILL_CHUNK steps, without a
 * sync of its own: the next durable append's sync makes it and the new size
 * durable in one commit (the background mode below keeps up to 1.5 chunks
 * ahead).  Readers stop at `size` and never see it; a roll and a clean close
 * cut it before the segment's indexes are written; recovery cuts what a
 * crash left (zeros are no valid batch, and lie above every acknowledged
 * offset).  The tail (at most 1.5 x KS_PREFILL_CHUNK per partition written
 * durably) is not counted in the disk usage; so it is not written under a
 * disk budget, where every byte on disk has to be reserved first.
 *
 * Zero-filling costs far more than the disk's bandwidth suggests (4-8 ms per
 * 4 MiB chunk in bench/RESULTS.md, 2026-11-25: page allocation, then the
 * writeback, which the next durable append's fdatasync waits for).  So with
 * a prefill hook set (the instance's background thread), an append that
 * finds less than half a chunk ahead only asks; ks_log_prefill then writes
 * the next chunk in quarter-chunk steps outside the append lock, writes each
 * step back (a ranged writeback, not a sync: the first durable append after
 * it commits the new file size once per chunk) and publishes it by moving
 * file_end.  Appends go on meanwhile into what is published; one that would
 * pass file_end while a step is in flight stops the prefill after that step
 * and waits for it.  A roll, a truncation and close stop it the same way.
 * The first chunk of a segment (no tail at all yet: a new segment, or
 * appends that outran the background) is still written inline: paid once, up
 * front, it beats a background fill whose writeback meets the first appends'
 * syncs (bench/compare durable rows, fresh logs).
 *
 * The populated window.  Readers read the active segment through its
 * mapping, and every page an append starts is a page fault for the first
 * reader to touch it (fault-around maps only pages already in the page
 * cache, and those past the data are not yet): one fault every 4 KiB,
 * about 1 sample in 20 of 100-byte records, most of a tailing reader's
 * slow samples (bench/RESULTS.md, issue 21).  So, while a reader is at the
 * tail (a read found nothing past the end: `tailed`), appends keep a
 * window of the mapping ahead of the data populated: when less than half
 * of it (ks_log_config.populate_bytes, 512 KiB) is left, an append asks
 * (the same hook and call as the zeroed tail), and ks_log_prefill extends
 * the file to data + window where no zeroed tail reaches that far (a
 * sparse extension: no data written, no block allocated; like the zeroed
 * tail it is cut by a roll, a truncation and a clean close, and recovery
 * cuts what a crash left, zeros being no valid batch), then fills the page
 * tables over it (MADV_POPULATE_READ, Linux 5.14; reading a byte a page
 * before that), outside the append lock.  The appends that follow write
 * into page-cache pages that exist already (their allocation, too, is off
 * the appender's path) and mapped into the readers' view.  Memory: at
 * most a window of zero pages per partition that a reader tails, and none
 * for the others; the step clears `tailed`, so a window is refilled only
 * if a reader came back to the tail since the last step.  Durability is
 * unchanged: nothing past `size` is data.  Not under a disk budget (as the
 * zeroed tail) and not without a hook (never on the appender).
 */
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/common.h"
#include "storage/internal.h"

#define KS_PREFILL_CHUNK (4u << 20) /* default; ks_log_config.prefill_chunk */
#define KS_PREFILL_STEP (1u << 20)  /* most zeros per write call */
#define KS_ZERO_BUF (64u << 10)
#define KS_POPULATE_STEP (16u << 10) /* most of the window populated at a time */

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
void ks__prefill(ks_log *log, ks_segment *s, uint64_t data_end)
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

/* ks__prefill_ask past its lock-free early return (internal.h). */
void ks__prefill_ask_slow(ks_log *log, ks_segment *s, uint64_t data_end, bool more)
{
    pthread_mutex_lock(&log->pf_mu);
    if (log->pf_busy && data_end > s->file_end) {
        log->pf_abort = true; /* appends caught up: extend the file instead */
        while (log->pf_busy && data_end > s->file_end)
            pthread_cond_wait(&log->pf_cv, &log->pf_mu);
    }
    bool ask = more && !log->pf_busy && !log->pf_wanted && !atomic_load(&log->pf_off) &&
               s->file_end < data_end + prefill_chunk(log) / 2 &&
               data_end < prefill_limit(log, s);
    bool pop = !log->pf_busy && !log->pop_wanted && !atomic_load(&log->pf_off) && ks__pop_due(log, s, data_end) &&
               data_end < prefill_limit(log, s) && !(log->space && log->space->limit);
    pthread_mutex_unlock(&log->pf_mu);
    if (ask)
        log->pf_wanted = true;
    if (pop)
        log->pop_wanted = true;
    if (ask || pop)
        log->pf_hook(log->pf_arg);
}

/* Stop a background prefill and wait until it is out: before a roll, a
 * truncation, a cut after a failed write, or close. */
void ks__prefill_quiesce(ks_log *log)
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

/* The zeroed tail's next chunk, as asked (ks_log_prefill). */
static int zero_fill(ks_log *log)
{
    pthread_mutex_lock(&log->append_mu);
    bool wanted = log->pf_wanted;
    log->pf_wanted = false;
    ks_segment *s = ks__active(log);
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

/* Fill the page tables of map[from, to) (page-aligned, inside the file). */
static int populate_range(uint8_t *map, uint64_t from, uint64_t to)
{
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif
    static _Atomic bool no_madvise;
    if (!atomic_load_explicit(&no_madvise, memory_order_relaxed)) {
        if (madvise(map + from, (size_t)(to - from), MADV_POPULATE_READ) == 0)
            return 0;
        if (errno != EINVAL)
            return -errno;
        atomic_store_explicit(&no_madvise, true, memory_order_relaxed); /* an older kernel */
    }
    const volatile uint8_t *p = map;
    uint8_t sum = 0;
    for (uint64_t at = from; at < to; at += 4096)
        sum ^= p[at];
    __asm__ volatile("" : : "r"(sum));
    return 0;
}

/* The populated window's next step, as asked (ks_log_prefill): extend the
 * file to data + window where it ends short of that, then fill the page
 * tables from where the last step ended.  pf_busy keeps the segment active
 * and its file uncut meanwhile (roll, truncation and close wait for it). */
static int populate(ks_log *log)
{
    static _Atomic uint64_t page_size; /* instances' threads may race to set it: same value */
    uint64_t page = atomic_load_explicit(&page_size, memory_order_relaxed);
    if (!page) {
        long ps = sysconf(_SC_PAGESIZE);
        page = ps > 0 ? (uint64_t)ps : 4096;
        atomic_store_explicit(&page_size, page, memory_order_relaxed);
    }
    pthread_mutex_lock(&log->append_mu);
    bool wanted = log->pop_wanted;
    log->pop_wanted = false;
    atomic_store(&log->tailed, false); /* the next step only if a reader is back at the tail */
    ks_segment *s = ks__active(log);
    if (!wanted || !s || log->closed || log->cfg.read_only || atomic_load(&log->failed) || s->h < 0 ||
        s->sealed || s->map == MAP_FAILED || log->pf_busy || atomic_load(&log->pf_off) ||
        (log->space && log->space->limit)) {
        pthread_mutex_unlock(&log->append_mu);
        return 0;
    }
    uint64_t size = atomic_load(&s->size);
    uint64_t from = KLOG_MAX(atomic_load(&s->pop_end), size & ~(page - 1));
    uint64_t to = KLOG_MIN((size + ks__pop_window(log) + page - 1) & ~(page - 1), prefill_limit(log, s) & ~(page - 1));
    uint64_t flen = KLOG_MAX((uint64_t)s->file_end, size);
    int rc = 0;
    /* (durable appends' zeroed tail reaches further: 2 MiB or more) */
    if (to > flen && (rc = kio_truncate(log->io, s->h, to)) == 0)
        s->file_end = to; /* sparse: reads as zeros, like the zeroed tail */
    if (rc < 0 || to <= from) {
        if (rc < 0)
            prefill_failed(log, s);
        pthread_mutex_unlock(&log->append_mu);
        return rc;
    }
    pthread_mutex_lock(&log->pf_mu);
    log->pf_busy = true;
    log->pf_abort = false;
    pthread_mutex_unlock(&log->pf_mu);
    pthread_mutex_unlock(&log->append_mu);

    /* In small steps, letting others run between them: on a machine whose
     * CPUs are busy (a fast sender, its reader) a burst of page
     * allocations would hold up the very records it is meant to speed. */
    for (uint64_t at = from; at < to;) {
        uint64_t step = KLOG_MIN(at + KS_POPULATE_STEP, to);
        if ((rc = populate_range(s->map, at, step)) < 0)
            break; /* costs speed only */
        atomic_store(&s->pop_end, step);
        pthread_mutex_lock(&log->pf_mu);
        bool stop = log->pf_abort;
        pthread_mutex_unlock(&log->pf_mu);
        if (stop)
            break;
        at = step;
        if (at < to)
            sched_yield();
    }
    pthread_mutex_lock(&log->pf_mu);
    log->pf_busy = false;
    pthread_cond_broadcast(&log->pf_cv);
    pthread_mutex_unlock(&log->pf_mu);
    return rc;
}

int ks_log_prefill(ks_log *log)
{
    if (!log)
        return -EINVAL;
    /* The background thread calls this for every partition when any one
     * asked: the others must not cost their appenders a lock round. */
    int rc = 0;
    if (atomic_load(&log->pf_wanted))
        rc = zero_fill(log);
    if (atomic_load(&log->pop_wanted)) {
        int pr = populate(log);
        if (rc == 0)
            rc = pr;
    }
    return rc;
}

void ks_log_note_tail(ks_log *log)
{
    /* read by every append: written only when it changes */
    if (log && !atomic_load_explicit(&log->tailed, memory_order_relaxed))
        atomic_store_explicit(&log->tailed, true, memory_order_relaxed);
}

/* Cut the zeroed tail off the file (before its indexes are written, so that
 * a segment whose indexes exist never has one). */
int ks__cut_zero_tail(ks_log *log, ks_segment *s)
{
    if (s->file_end <= atomic_load(&s->size))
        return 0;
    int h = ks__seg_h(log, s);
    if (h < 0)
        return h;
    int rc = kio_truncate(log->io, h, atomic_load(&s->size));
    ks__zero_tail_gone(s);
    return rc;
}
