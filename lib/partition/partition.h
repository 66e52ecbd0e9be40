/*
 * lib/partition/partition.h - one topic-partition (contract for the layers
 * above: topic, group, producer, consumer; and, later, replication and a
 * network front end).
 *
 * A kpart owns its partition log (lib/storage) and holds what a partition
 * is beyond its bytes:
 *   - the log end offset (LEO: the next offset the log assigns);
 *   - the high watermark (HW): offsets below it are visible to consumers
 *     and acknowledged to acks=all producers.  While the partition is not
 *     replicated the HW is the LEO, derived on every call (no second copy,
 *     nothing to keep in step); a replicated leader sets it explicitly
 *     (kpart_set_replicated, kpart_advance_hw) to the offset every in-sync
 *     replica holds.  It never decreases;
 *   - the leader epoch (int32, 0 until leadership is assigned) and the role
 *     (leader; follower once replication lands);
 *   - listeners: consumers' waiters and any number of callbacks that hear
 *     of appends and HW moves;
 *   - the acknowledgement queue: a producer's report completes when the
 *     partition says its records are acknowledged, in submission order.
 *
 * Layers: io -> format -> storage -> partition -> topic -> group ->
 * producer/consumer.  This one knows logs, not topics, producers or
 * consumers: it hears of them only through the callbacks it is given.
 *
 * The layers above reach storage only through this header: no file of
 * lib/producer, lib/consumer or lib/group calls ks_log_*.  lib/topic opens
 * and closes partitions and runs the log maintenance (retention, cleaning,
 * prefill, ticks, statistics) on kpart_log().  Reads hand out lib/storage's
 * zero-copy ks_view (release it with ks_view_release).
 *
 * Threading: a kpart is thread-safe.  The hot paths take no lock of their
 * own: kpart_append adds one relaxed load to ks_log_append (and a lock only
 * when a listener or an armed waiter exists); kpart_read adds one load;
 * kpart_ack_submit completes inline, without touching the queue, when the
 * condition already holds and nothing waits before it.  Two internal locks,
 * never held together and never across I/O or a completion callback:
 *   lmu  the waiter array and the listener list (notifications run under
 *        it: listeners must be short and must not call back into this
 *        partition's listener or waiter calls);
 *   amu  the acknowledgement queue and the HW mode.
 */
#ifndef KLOG_PARTITION_H
#define KLOG_PARTITION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/storage.h"

typedef struct kpart kpart;

/* The first member of every kpart, for the accessors the hot paths call
 * inline (the rest of the object is private to partition.c). */
typedef struct kpart_head {
    ks_log *log;
} kpart_head;

enum kpart_role {
    KPART_LEADER = 0,   /* takes appends from producers; the only role today */
    KPART_FOLLOWER = 1, /* copies a leader (replication; not used yet) */
};

/* ---- lifetime ------------------------------------------------------------- */

/*
 * Open the partition whose log lives in dir (ks_log_open: io is borrowed
 * and must outlive it; cfg as there).  The partition registers itself as
 * the log's one storage listener; do not call ks_log_set_listener on
 * kpart_log(*out).  Returns 0, -ENOMEM, or ks_log_open's errors.
 */
int kpart_open(kpart **out, kio *io, const char *dir, const ks_log_config *cfg);

/*
 * Complete every waiting acknowledgement with KLOG_ECLOSED (waiting for a
 * completion that runs on another thread to return), then close the log
 * (ks_log_close) and free the partition.  No append, read or listener call
 * may run or follow.  Returns ks_log_close's result.  NULL-safe.
 */
int kpart_close(kpart *p);

/* As kpart_close, but the log is dropped unwritten (ks_log_abandon): for a
 * partition whose directory was deleted or renamed away.  NULL-safe. */
void kpart_abandon(kpart *p);

/* The partition's log, for lib/topic's maintenance (retention, cleaning,
 * prefill, tick, reconfigure, statistics).  The layers above lib/topic use
 * the calls below instead. */
static inline ks_log *kpart_log(kpart *p) { return ((kpart_head *)p)->log; }

/* ---- offsets and state (each a single atomic read, lock-free) ------------- */

int64_t kpart_start_offset(kpart *p);    /* first readable offset */
int64_t kpart_end_offset(kpart *p);      /* LEO: next offset to be assigned */
int64_t kpart_durable_offset(kpart *p);  /* offsets below are on disk */
/* The high watermark: the LEO while not replicated, else the value the
 * replicator last set.  start <= HW <= LEO. */
int64_t kpart_high_watermark(kpart *p);
/* 0, or the error that made the log read-only (checked on every send) */
static inline int kpart_error(kpart *p) { return ks_log_error(kpart_log(p)); }

int32_t kpart_leader_epoch(kpart *p);
/* Set the epoch stamped into every batch appended from now on (0 = leave
 * the batch's own, which is 0 from lib/format).  Replication sets it on
 * becoming leader; the leader-epoch checkpoint is kept beside the log by
 * lib/storage, not here. */
void kpart_set_leader_epoch(kpart *p, int32_t epoch);
enum kpart_role kpart_role(kpart *p);
void kpart_set_role(kpart *p, enum kpart_role role);

/* ---- append and read ------------------------------------------------------ */

/*
 * Append n batches (ks_log_append: same batches, flags, prefix rule and
 * errors), stamping the leader epoch into each first when it is not 0.
 * Appending acknowledges nothing by itself: submit each batch's
 * acknowledgement with kpart_ack_submit once its result is known.
 */
int kpart_append(kpart *p, ks_batch *batches, unsigned n, unsigned flags);

/*
 * Read whole batches from offset, as ks_log_read, but only batches wholly
 * below the high watermark: the view is cut at the last batch boundary at
 * or below it (so while not replicated this is ks_log_read exactly).  An
 * offset in [HW, LEO] gives an empty view (v->len == 0, nothing to
 * release); above the LEO or below the start, KLOG_EOFFSET.
 */
int kpart_read(kpart *p, int64_t offset, size_t max_bytes, ks_view *v);

/* Read up to the log end, ignoring the high watermark: for the partition's
 * own bookkeeping (the group offsets store rebuilding its table, as Kafka's
 * coordinator loads its partitions to the log end) and for followers'
 * fetches.  Never for consumers. */
int kpart_read_log(kpart *p, int64_t offset, size_t max_bytes, ks_view *v);

/* First offset whose timestamp is >= ts (ks_log_offset_for_time), capped
 * at the high watermark.  Returns 0 or an error. */
int kpart_offset_for_time(kpart *p, int64_t ts, int64_t *offset);

/* Kafka's DeleteRecords (ks_log_delete_records) bounded by the high
 * watermark, as Kafka bounds it: offset -1 means the HW, an offset above
 * the HW is KLOG_EOFFSET (records not yet acknowledged stay). */
int kpart_delete_records(kpart *p, int64_t offset, int64_t *new_start);

/* ---- waiters: consumers sleeping on an eventfd --------------------------- */

/*
 * A consumer owns one kpart_waiter (an eventfd and an "armed" flag) and
 * registers it with every partition it reads.  Before sleeping it sets
 * w->armed, counts itself in with kpart_waiter_arm(p, 1) on each, and
 * re-checks for data; when the high watermark of any of them moves, the
 * eventfd is written once (armed is cleared by the writer).  With no armed
 * waiter and no listener an append pays one atomic load for all this.
 */
typedef struct kpart_waiter {
    int efd;
    _Atomic int armed;
} kpart_waiter;

/* Register / unregister (returns 0 or -ENOMEM).  A waiter may be in many
 * partitions; it must be removed before it is freed. */
int kpart_waiter_add(kpart *p, kpart_waiter *w);
void kpart_waiter_remove(kpart *p, kpart_waiter *w);
/* Count an armed waiter in (delta 1) or out (-1) of this partition. */
void kpart_waiter_arm(kpart *p, int delta);

/* ---- listeners ------------------------------------------------------------- */

enum {
    KPART_EV_APPEND = 1u << 0, /* records were appended; offset = the new LEO */
    KPART_EV_HW = 1u << 1,     /* the HW moved; offset = the new HW */
};

/*
 * A listener hears the events of its mask.  While not replicated an append
 * is also a HW move: one call with both bits and offset = LEO = HW.
 * fn runs on the appending (or HW-advancing) thread, with the partition's
 * listener lock held: it must be short, must not block, and must not call
 * kpart_listen, kpart_unlisten or the waiter calls of this partition
 * (appending to it is allowed, but other appenders wait on the lock).
 * Concurrent appenders may report offsets out of order: read
 * kpart_end_offset / kpart_high_watermark for the current value.
 * The struct is caller-owned and must stay put while registered.
 */
typedef void (*kpart_listener_fn)(void *arg, unsigned events, int64_t offset);
typedef struct kpart_listener {
    kpart_listener_fn fn;
    void *arg;
    unsigned events;                /* KPART_EV_* mask */
    struct kpart_listener *next;    /* private */
} kpart_listener;

/* Add a listener; fn may run as soon as this returns.  Never fails. */
void kpart_listen(kpart *p, kpart_listener *l);
/* Remove it; once this returns, fn is not running and will not run.
 * Removing one that is not registered is a no-op. */
void kpart_unlisten(kpart *p, kpart_listener *l);

/* ---- acknowledgements -------------------------------------------------------- */

enum kpart_ack_level {
    KPART_ACK_LEADER = 0, /* acks=0/1: in this partition's log */
    KPART_ACK_ALL = 1,    /* acks=all: below the high watermark (with one
                           * replica: appended with KS_APPEND_SYNC, which
                           * the appender asks for) */
};

/*
 * One pending acknowledgement: caller-owned (embed it in what it reports,
 * e.g. a producer batch), untouched by the partition once done has run.
 * done(a, err) runs exactly once: err 0 (acknowledged), the err given to
 * kpart_ack_submit, or the error that failed every waiter (kpart_ack_fail,
 * KLOG_ECLOSED from kpart_close).
 */
typedef struct kpart_ack {
    void (*done)(struct kpart_ack *a, int err);
    /* private: set by kpart_ack_submit */
    int64_t end;
    int err;
    int level;
    struct kpart_ack *next;
} kpart_ack;

/*
 * Acknowledge records appended below `end` (exclusive) at `level`, or
 * report `err` (a failed append) in its turn.  Acknowledgements of one
 * partition complete in submission order, an error in its place among
 * them.  When nothing waits before it and the condition already holds (a
 * partition that is not replicated, or KPART_ACK_LEADER, or an error) done
 * runs here, inline, without touching the queue; otherwise it runs on
 * the thread that later makes it hold (kpart_advance_hw, kpart_ack_fail,
 * kpart_set_replicated, kpart_close), with no partition lock held.  So
 * done may append or submit again; it must not free the partition.
 * Completions of one submitter run in its submission order; those of
 * different submitters may run concurrently.
 */
void kpart_ack_submit(kpart *p, kpart_ack *a, int64_t end, int level, int err);

/* Complete every acknowledgement waiting now with err (<0): the partition
 * cannot acknowledge them (its log failed, it lost leadership, its topic
 * was deleted).  Later submissions are not affected. */
void kpart_ack_fail(kpart *p, int err);

/* Acknowledgements submitted and not yet completed (a hint). */
int64_t kpart_ack_pending(kpart *p);

/* ---- the high watermark of a replicated leader ------------------------------ */

/*
 * on: from now on the HW is what kpart_advance_hw sets, starting at the
 * current LEO: appends no longer make records visible or acks=all
 * acknowledgements complete.  off: the HW is the LEO again; waiting
 * acknowledgements complete and waiters wake.  Replication calls this on
 * becoming leader of a replicated partition; tests use it to hold the HW
 * back.  Switch on before the partition takes traffic (at leadership
 * change): records appended during the switch may show above the HW a
 * moment and then below it.  Idempotent.
 */
void kpart_set_replicated(kpart *p, bool on);
bool kpart_replicated(kpart *p);

/*
 * Move the HW of a replicated partition up to hw (clamped to the LEO; a
 * lower value than the current one is ignored: it never decreases).  If it
 * moved: waiters wake, KPART_EV_HW listeners run, and acknowledgements now
 * below it complete, in order, on this thread.  Returns the HW after the
 * call, or KLOG_ESTATE when the partition is not replicated.
 */
int64_t kpart_advance_hw(kpart *p, int64_t hw);

#endif /* KLOG_PARTITION_H */
