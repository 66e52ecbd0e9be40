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
 *   - the leader epoch and its history, the leader-epoch cache (below, "leader
 *     epochs"), and the role (leader; follower once replication lands);
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
 * condition already holds and nothing waits before it.  Three internal
 * locks:
 *   lmu  the waiter array and the listener list (notifications run under
 *        it: listeners must be short and must not call back into this
 *        partition's listener or waiter calls);
 *   amu  the acknowledgement queue and the HW mode;
 *   emu  the leader-epoch cache: taken by the epoch calls below, never by
 *        append or read.  It is held across the cache's file writes, and
 *        is taken before the log's locks (emu -> storage's append_mu).
 * lmu and amu are never held together, nor across I/O or a completion
 * callback; emu is never held with either.
 */
#ifndef KLOG_PARTITION_H
#define KLOG_PARTITION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/epoch.h"
#include "storage/storage.h"

typedef struct kpart kpart;

/* The first member of every kpart, for the accessors the hot paths call
 * inline (the rest of the object is private to partition.c). */
typedef struct kpart_head {
    ks_log *log;
} kpart_head;

enum kpart_role {
    KPART_LEADER = 0,   /* takes appends from producers (every partition
                         * that is not replicated) */
    KPART_FOLLOWER = 1, /* copies a leader: kpart_become_follower */
};

/* ---- lifetime ------------------------------------------------------------- */

/*
 * Open the partition whose log lives in dir (ks_log_open: io is borrowed
 * and must outlive it; cfg as there), then load its leader-epoch cache
 * (dir/leader-epoch-checkpoint, see "leader epochs" below).  The partition
 * registers itself as the log's one storage listener; do not call
 * ks_log_set_listener or ks_log_set_epoch on kpart_log(*out).  Returns 0,
 * -ENOMEM, ks_log_open's errors, or ks_epochs_open's (KLOG_ECORRUPT or
 * KLOG_EFORMAT for a damaged checkpoint: the partition does not open, as
 * Kafka takes such a log offline), or the error of the cache's repair
 * write.
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

/* The leader epoch stamped into every batch appended (see "leader
 * epochs"). */
int32_t kpart_leader_epoch(kpart *p);
enum kpart_role kpart_role(kpart *p);
/* Tests only: change the role word and nothing else (kpart_become_leader
 * and kpart_become_follower are the transitions). */
void kpart_set_role(kpart *p, enum kpart_role role);

/* ---- append and read ------------------------------------------------------ */

/* kpart_append's own flag (beside ks_log_append's KS_APPEND_*): the
 * batches are an acks=all write, refused with KLOG_ENOTENOUGH while the
 * partition is replicated and its in-sync replicas are fewer than
 * min.insync.replicas (kpart_set_isr), as a Kafka leader refuses them with
 * NOT_ENOUGH_REPLICAS. */
#define KPART_APPEND_ALL (1u << 16)

/*
 * Append n batches (ks_log_append: same batches, flags, prefix rule and
 * errors).  The log writes the partition's leader epoch into each batch's
 * header as it assigns the offsets (ks_log_set_epoch), under its own
 * append lock: this call adds nothing to ks_log_append but a load for
 * KPART_APPEND_ALL.  A follower refuses every batch with KLOG_ENOTLEADER
 * (decided under the log's append lock: no batch lands once
 * kpart_become_follower has returned).
 * Appending acknowledges nothing by itself: submit each batch's
 * acknowledgement with kpart_ack_submit once its result is known.
 * While replicated, KPART_EV_APPEND listeners (the followers' fetches)
 * hear of the batches once they are written, before the sync the append
 * waits for (KS_APPEND_EARLY), and the HW catches up after it
 * (kpart_advance_hw_durable).
 */
int kpart_append(kpart *p, ks_batch *batches, unsigned n, unsigned flags);

/*
 * A follower's append of batches copied from its leader, in order: each
 * keeps its base offset and leader epoch (KS_APPEND_REPLICA: the first
 * must start at or past the LEO; past it, the leader's log has a gap there
 * after compaction, and the follower's gets the same; in an empty log
 * (start == LEO) a first batch across the LEO starts the log again at its
 * base: the leader's log start fell inside it, kpart_truncate_fully), and
 * each new epoch met is recorded in the
 * leader-epoch cache at the base offset of its first batch, durably,
 * before that batch is written (Kafka's maybeAssignEpochStartOffset).
 * flags: KS_APPEND_SYNC (durable before returning: what a follower that
 * counts toward acks=all reports), KS_APPEND_VERIFY.
 * Returns 0, KLOG_ESTATE (not a follower), KLOG_ECORRUPT (not batches),
 * KLOG_EFENCED (a batch of an epoch older than the log's latest: the logs
 * diverged, truncate first), KLOG_EOFFSET (below the LEO), the cache
 * write's errors, or ks_log_append's; batches before the failing one are
 * appended.  Serialises with the epoch calls (emu).
 */
int kpart_append_replica(kpart *p, ks_batch *batches, unsigned n, unsigned flags);

/* Make everything appended durable (ks_log_sync); a replicated leader's
 * HW then follows (kpart_advance_hw_durable). */
int kpart_sync(kpart *p);

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
 * the HW is KLOG_EOFFSET (records not yet acknowledged stay).  The
 * leader-epoch cache follows the new start lazily (see "leader epochs"). */
int kpart_delete_records(kpart *p, int64_t offset, int64_t *new_start);

/* ---- leader epochs ---------------------------------------------------------
 *
 * A leader epoch numbers a leadership term (KIP-101).  Every batch a leader
 * appends carries its epoch in its header, and the partition keeps, in
 * dir/leader-epoch-checkpoint (lib/storage/epoch.h: Kafka's file and
 * format), each epoch with the first offset written in it.  Replication
 * uses it to find where a follower's log parts from the leader's
 * (OffsetsForLeaderEpoch), then truncates the follower there.
 *
 * Invariant, true whenever emu is free and after every open: every batch
 * at or above the log start carries the epoch kpart_epoch_for_offset gives
 * for its base offset, and each entry starts where its epoch's first batch
 * does (the first entry: at the log start).  How each change keeps it:
 *
 *   Epoch 0, lazily.  Kafka records (0, 0) when a partition first gets a
 *   leader.  Here a partition without the file (a new one, or one written
 *   by a release before this file existed, whose batches all carry epoch
 *   0) is in epoch 0 from its log start: it answers as if the file held the
 *   one entry (0, log start), and writes nothing.  The file is written at
 *   the first change that needs it, the first kpart_become_leader with an
 *   epoch above 0; so creating or opening a partition writes no file.
 *
 *   Becoming leader.  kpart_become_leader(E) records (E, LEO) durably
 *   before any batch of epoch E can be appended: the record is written
 *   under the log's append lock (ks_log_set_epoch), which then switches the
 *   stamp, so every batch before it carries the old epoch and every batch
 *   after it E.  Appends wait the two syncs of that write; an append that
 *   does not coincide with a change takes no lock for any of this.
 *
 *   Truncation (a follower cutting a diverged tail): the log first, then
 *   the cache (Kafka's order), under emu; no append may run meanwhile.  A crash in between leaves entries starting
 *   at or past the new log end; opening removes every entry that starts at
 *   or after the log end (Kafka's load rule), so the reopened cache is the
 *   truncated one.  The other order would leave, after a crash, batches of
 *   an epoch the cache no longer holds, which nothing could detect.
 *
 *   The log start moving (retention deleting segments, DeleteRecords,
 *   the disk budget): the cache is truncated from the start lazily, by the
 *   next cache write (kpart_become_leader, kpart_truncate_to) and by the
 *   next open, not by the retention pass: nothing is added to retention,
 *   append or read.  Meanwhile the queries answer as the truncated cache
 *   would, from the log start they read; the file may still hold entries
 *   below the start, which describe records already gone and which Kafka's
 *   load drops the same way.  Compaction does not move the start.
 *
 *   An epoch that holds no record when the partition is opened is
 *   forgotten (it cannot be told from the tail of a truncation a crash
 *   interrupted: Kafka's load drops it too).  So after kpart_open the
 *   partition's epoch is the epoch of its last batch (0 without a file, or
 *   when the log is empty), and it stamps that epoch; a leader that
 *   restarts is given its epoch again by kpart_become_leader, as a Kafka
 *   broker is by the controller.
 *
 *   Followers: a follower keeps the leader's epochs in the batches it
 *   copies, so kpart_become_follower switches the stamp off
 *   (ks_log_set_epoch(log, -1, ...)) and kpart_append_replica assigns each
 *   new epoch it meets, at the base offset of its first batch, before
 *   appending that batch (Kafka's maybeAssignEpochStartOffset).  A
 *   follower's kpart_leader_epoch is the epoch of the leader it follows,
 *   which its log holds only once that leader's first batch arrived.
 *
 * Thread safety: the calls below serialise on emu; the queries never block
 * on I/O and never allocate; kpart_become_leader and kpart_truncate_to
 * block on disk syncs.  A read-only log (cfg->read_only) loads the cache
 * without repairing it and refuses both changes with KLOG_EREADONLY.
 */

/*
 * Become leader at epoch `epoch` (>= 0): record (epoch, LEO) in the cache,
 * durably, then stamp `epoch` into every batch appended from now on, and
 * set the role to KPART_LEADER (a follower's log takes producers' appends
 * again).  Acknowledgements waiting on a replicated partition from an
 * earlier term fail with KLOG_ENOTLEADER (see kpart_ack_submit_epoch) at
 * the next kpart_ack_flush.  The same epoch again changes nothing on
 * disk (Kafka's assign: already implied).  Any pending truncation from the
 * start is written first (see above); an epoch above 0 in a partition
 * without a file first records (0, log start) for the records already
 * there (two writes, once in a partition's life).
 * Returns 0, or (nothing changed: the old epoch still stamped):
 *   -EINVAL        epoch < 0
 *   KLOG_EFENCED   epoch below the latest epoch the cache holds (Kafka's
 *                  FENCED_LEADER_EPOCH)
 *   KLOG_EREADONLY the log is read-only or failed;  KLOG_ECLOSED
 *   -errno, KLOG_ECRASHED  a write of the cache failed (the file and the
 *                  cache then hold the old list, possibly with the pending
 *                  start truncation or (0, start) written: each a
 *                  consistent state)
 */
int kpart_become_leader(kpart *p, int32_t epoch);

/*
 * Become a follower of the leader of epoch `epoch` (-1: a replica that
 * does not know its leader yet): producers' appends are refused from now
 * on (KLOG_ENOTLEADER), the log stops stamping (a follower keeps its
 * leader's epochs: kpart_append_replica), the partition turns replicated
 * (its HW is what the follower learns from its leader: kpart_advance_hw)
 * if it was not, and every acks=all acknowledgement waiting on it fails
 * with KLOG_ENOTLEADER at the next kpart_ack_flush (which the caller makes
 * once it holds no lock: the completions run user callbacks) or HW move.
 * kpart_leader_epoch answers `epoch` from now on.  An epoch entry that
 * starts at the LEO (an epoch this node led without writing a record) is
 * removed from the leader-epoch cache (a durable write; if it fails the
 * log turns read-only and that error is returned), as a reopen would drop
 * it: the leader's batches that come next may carry an older epoch.
 * Listeners of KPART_EV_ROLE (and of KPART_EV_HW: waiters re-check) hear
 * of it.  Returns 0, -EINVAL (epoch < -1), KLOG_ECLOSED, the cache
 * write's error.
 */
int kpart_become_follower(kpart *p, int32_t epoch);

/*
 * Follower truncation: remove every batch holding an offset >= offset
 * (ks_log_truncate_to: whole batches, so *new_end may be below offset;
 * new_end may be NULL), then every cache entry starting at or after the
 * new end (Kafka's truncateFromEnd).  If that removed the entry of the
 * epoch the partition stamps, the partition is then in the epoch of its
 * last batch, as after kpart_open (a leader that cut its own tail calls
 * kpart_become_leader again).  No append may run concurrently (a
 * follower's replicator is its only appender; a leader holds its
 * producers off first).
 * Returns 0, or ks_log_truncate_to's errors (KLOG_EOFFSET: offset outside
 * [start, LEO], nothing done; KLOG_EREADONLY, KLOG_ECLOSED, -errno; the
 * cache is fitted to whatever end the log has after a failure), or the
 * cache write's (-errno, KLOG_ECRASHED): the log is truncated but the cache
 * is not, so the log turns read-only (ks_log_fail; Kafka takes the
 * directory offline) and the next open repairs the cache.
 * A cut below the high watermark (only an unclean election asks for one:
 * those records were committed) lowers the HW to the new end, the one
 * case where it goes back.
 */
int kpart_truncate_to(kpart *p, int64_t offset, int64_t *new_end);

/*
 * Kafka's truncateFullyAndStartAt, for a follower whose log ends below its
 * leader's log start (the leader answered its fetch OFFSET_OUT_OF_RANGE
 * with a log start above it): every record goes and the log restarts,
 * empty, at `offset` (ks_log_truncate_fully: >= the LEO), then the
 * leader-epoch cache is fitted to the empty log (no entry: Kafka clears
 * it; the next batch copied records its epoch at its base offset, as
 * kpart_append_replica does), and the HW is `offset`.  A crash part way
 * leaves a log that opens, with a cache that fits it (kpart_open's
 * repair).  Returns 0, KLOG_ESTATE (not a follower), KLOG_EREADONLY, or
 * ks_log_truncate_fully's and the cache write's errors (the log then
 * turns read-only).  Serialises with the epoch calls (emu); no append may
 * run concurrently.
 */
int kpart_truncate_fully(kpart *p, int64_t offset);

/*
 * Repair a partition that opened damaged (kpart_open with open_damaged:
 * its log damaged, or its leader-epoch-checkpoint malformed): the log is
 * salvaged (ks_log_repair: cut at its first invalid or missing byte), and
 * the epoch cache rebuilt from the batches' epochs when its file was bad,
 * fitted to the log's new start and end otherwise.  What went, and what was
 * rebuilt, is written to report ("; "-separated; may be NULL).  The
 * partition is then writable.  Returns 0, KLOG_ESTATE (not damaged),
 * -errno.  Takes emu, then the log's locks; blocks on I/O.
 */
int kpart_repair(kpart *p, char *report, size_t size);

/*
 * OffsetsForLeaderEpoch: where epoch `epoch` ends in this log, as the
 * leader answers a follower (ks_epochs_end_offset_for, KIP-101/279, over
 * the cache as truncated from the current log start):
 *   epoch is the latest:                   (epoch, LEO)
 *   epoch is -1 or above every known one:  (-1, -1)
 *   otherwise, with S the start of the first epoch above `epoch`:
 *     S above the log start:               (E', S), E' the largest known
 *                                          epoch <= `epoch`, or `epoch`
 *                                          when it is below every known one
 *     S at or below the log start:         (epoch, log start)
 * Never fails; *out_epoch and *out_end are always set.
 */
void kpart_end_offset_for_epoch(kpart *p, int32_t epoch, int32_t *out_epoch, int64_t *out_end);

/* The epoch that wrote `offset` (Kafka's epochForOffset): -1 below the log
 * start; the latest epoch at or past the LEO. */
int32_t kpart_epoch_for_offset(kpart *p, int64_t offset);

/* The cache as the calls above see it (truncated from the log start, the
 * one entry (0, log start) when there is no file), oldest first: copies up
 * to cap entries into out (may be NULL when cap is 0) and returns how many
 * there are. */
size_t kpart_epoch_entries(kpart *p, ks_epoch_entry *out, size_t cap);

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
    _Atomic int pending; /* set before every write of efd (kpart_waiter_signal) */
} kpart_waiter;

/* Make the waiter's eventfd readable, from any thread. */
void kpart_waiter_signal(kpart_waiter *w);
/* Empty the eventfd.  Unless forced, only when a signal came since the
 * last drain: a consumer's poll that finds records drains first, and the
 * read(2) it saves was 3% of a poll loop's time (issue 21).  A signal
 * whose write lands just after a drain that cleared its flag leaves the
 * fd readable with the flag clear: the forced drains (before a sleep, and
 * when a poll returns empty) end that, at the cost of one spurious wakeup. */
void kpart_waiter_drain(kpart_waiter *w, bool force);

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
    KPART_EV_ROLE = 1u << 2,   /* leader or follower, or a new leader epoch;
                                * offset = the HW.  Sent with KPART_EV_HW so
                                * that whoever waits on the HW re-checks */
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
    int32_t epoch;
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

/*
 * As kpart_ack_submit, for records appended under leader epoch `epoch`
 * (what the append stamped: kpart_batch_epoch; -1 = the current one).  On
 * a replicated partition an acks=all acknowledgement completes only while
 * this node still leads in that epoch: once it is a follower, or leads a
 * later epoch, the records below the HW may be other ones (its log was
 * truncated and refilled meanwhile), so the acknowledgement fails with
 * KLOG_ENOTLEADER instead.  kpart_ack_submit takes the epoch current at
 * the call.
 */
void kpart_ack_submit_epoch(kpart *p, kpart_ack *a, int64_t end, int level, int err, int32_t epoch);

/* The leader epoch kpart_append wrote into b (b->result 0), or -1 (not
 * appended, a duplicate, unreadable). */
int32_t kpart_batch_epoch(const ks_batch *b);

/* Complete every acknowledgement waiting now with err (<0): the partition
 * cannot acknowledge them (its log failed, it lost leadership, its topic
 * was deleted).  Later submissions are not affected. */
void kpart_ack_fail(kpart *p, int err);

/* Complete, on this thread, every acknowledgement whose condition holds
 * now: those of a term that ended (kpart_become_follower, a new
 * kpart_become_leader) fail.  No lock may be held (done callbacks run). */
void kpart_ack_flush(kpart *p);

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

/* Fenced: kpart_append refuses every batch (KLOG_ENOTLEADER) whatever the
 * role, until unfenced.  Replication fences the partitions of a leader
 * that lost its controller long enough for another leader to have been
 * elected (krep_config.fence_after_ms); it stays the leader it was told
 * it is, and takes writes again once it hears from the controller. */
void kpart_set_fenced(kpart *p, bool on);
bool kpart_fenced(kpart *p);

/* As kpart_set_replicated(p, true), with the HW starting at hw (clamped
 * to [log start, LEO]) instead of the LEO: a replica opened after a
 * restart exposes nothing it does not know to be committed.  A no-op when
 * already replicated. */
void kpart_set_replicated_at(kpart *p, int64_t hw);

/* What KPART_APPEND_ALL compares: the size of the in-sync replica set and
 * min.insync.replicas (replication sets both as the ISR changes; 0 and 0,
 * the default, refuse nothing). */
void kpart_set_isr(kpart *p, int isr_size, int min_isr);

/*
 * Move the HW of a replicated partition up to hw (clamped to the LEO; a
 * lower value than the current one is ignored: it never decreases).  If it
 * moved: waiters wake, KPART_EV_HW listeners run, and acknowledgements now
 * below it complete, in order, on this thread.  Returns the HW after the
 * call, or KLOG_ESTATE when the partition is not replicated.
 */
int64_t kpart_advance_hw(kpart *p, int64_t hw);

/*
 * A leader's HW: hw is what its in-sync replicas hold (durably, each on
 * its own disk); the HW moves to the lowest of hw and this log's durable
 * offset, as kpart_advance_hw, and hw is remembered for this leader epoch,
 * so that when a later sync (the append that waits for it, kpart_sync)
 * moves the durable offset the HW follows it there on that thread.  So the
 * leader's own sync and its followers' copies run side by side
 * (KS_APPEND_EARLY), and the HW never passes what this node has on disk.
 * Same returns as kpart_advance_hw.
 */
int64_t kpart_advance_hw_durable(kpart *p, int64_t hw);

#endif /* KLOG_PARTITION_H */
