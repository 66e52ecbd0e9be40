/*
 * lib/storage/storage.h - segments, indexes, the partition log and recovery
 * (contract).
 *
 * A partition log is a directory of segments named by base offset, as Kafka
 * names them:
 *
 *   00000000000000000000.log        record batches (lib/format), back to back
 *   00000000000000000000.index      sparse offset index (sealed segments)
 *   00000000000000000000.timeindex  time index (sealed segments)
 *   recovery.ckpt                   recovery point and log start offset
 *   .lock                           flock(2)-held while a writer has the log open
 *                                   (not made when the caller's lock covers the
 *                                   directory: ks_log_config.dir_locked)
 *
 * Data flows one way: the caller hands in sealed batches built by lib/format;
 * the log assigns offsets, writes them through lib/io, keeps the indexes and
 * makes them durable per the log's policy.  Nothing here knows about
 * producers, consumers or topics.
 *
 * Durability:
 *   NONE      acknowledged once in the page cache; synced on roll and close.
 *   INTERVAL  as NONE, plus a sync every flush_records records or flush_ms ms
 *             (checked on append and by ks_log_tick).
 *   ALWAYS    acknowledged only after fdatasync.  Concurrent appenders share
 *             one sync (group commit); a lone appender links its write to its
 *             fdatasync in one submission.
 * A failed fsync is never retried: the log turns read-only (KLOG_EREADONLY on
 * every later append) and keeps serving reads (the PostgreSQL fsync lesson).
 *
 * Recovery on open: below the checkpointed recovery point segments are
 * trusted (their indexes are loaded, or rebuilt when missing or corrupt);
 * from the segment holding the recovery point on, every batch is re-validated
 * (framing, checksum, offsets strictly increasing) and the log is truncated at
 * the first invalid byte; later segments are removed.  Structural damage below
 * the recovery point fails the open with KLOG_ECORRUPT rather than silently
 * dropping acknowledged data.
 *
 * Threading: a ks_log is thread-safe.  Appends are serialised internally;
 * syncs run outside the append lock so writes continue during an fsync.
 * Reads never block appends for longer than a segment-list lookup.  The
 * listener callback runs on the appending thread, after the append, with no
 * lock held; it must not call ks_log_append.
 */
#ifndef KLOG_STORAGE_H
#define KLOG_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/io.h"
#include "format/format.h"

typedef struct ks_log ks_log;
typedef struct ks_segment ks_segment;

enum ks_durability {
    KS_DURABILITY_NONE = 0,
    KS_DURABILITY_INTERVAL = 1,
    KS_DURABILITY_ALWAYS = 2,
};

typedef struct ks_log_config {
    uint64_t segment_bytes;       /* roll when the next batch would pass this (default 1 GiB) */
    int64_t segment_ms;           /* roll when the first batch is older than this; 0 = never */
    uint32_t index_interval_bytes;/* bytes between index entries (default 4096) */
    uint32_t max_batch_bytes;     /* largest batch accepted (default 1 MiB + 64 KiB, <= KF_BATCH_MAX) */
    enum ks_durability durability;
    uint64_t flush_records;       /* INTERVAL: sync after this many records (0 = off) */
    int64_t flush_ms;             /* INTERVAL: sync when unsynced data is this old (0 = off) */
    bool read_only;               /* open for reading only: no lock, no recovery writes */
    /* The directory must exist already (a partition the instance has on
     * record): a missing one is damage, not a new partition to create, so
     * that its offsets are never handed out again. */
    bool must_exist;
    /* Damage does not fail the open: the log opens damaged (ks_log_damage),
     * a read-only view of what precedes the damage, and nothing in the
     * directory is changed. */
    bool open_damaged;
    /* Open damaged for this reason of the layer above (a partition's
     * malformed leader-epoch-checkpoint), as a view: nothing in the
     * directory changes.  Read during ks_log_open only; NULL = none. */
    const char *damage;
    /* Recovery checks every batch of every segment (framing, checksum,
     * offsets), not only those past the recovery point: bad bytes in a
     * sealed segment are then found at open, as damage. */
    bool verify_all;
    /* Clock for segment age (ms since the epoch); NULL = the wall clock.
     * Tests inject their own. */
    int64_t (*clock_ms)(void *arg);
    void *clock_arg;
    /* Disk accounting shared by every log of an instance; NULL = none. */
    struct ks_space *space;
    /* Zeroed tail ahead of durable appends (prefill.c): bytes per prefill
     * chunk, 0 = the default 4 MiB; at least 4 KiB.  Tests shrink it to
     * reach the background path within a few dozen appends. */
    uint32_t prefill_chunk;
    /* The populated window (prefill.c) ahead of readers at the tail, with
     * a prefill hook: bytes, 0 = the default 512 KiB; at least 4 KiB. */
    uint32_t populate_bytes;
    /* The instance's caps on open files and index memory, shared by every
     * log of the instance; NULL = no caps (every active segment keeps its
     * file open, loaded indexes stay). */
    struct ks_cache *cache;
    /* The caller holds a lock that covers dir (the instance's directory
     * lock): take none of the log's own, and keep no descriptor for it. */
    bool dir_locked;
    /* Checkpoint the recovery point this often (ks_log_tick), not only at
     * roll and close: the active segment is synced and recovery.ckpt moves
     * to its end, with recovery.pos saying where that is in the segment, so
     * that recovery after a crash checks only what was written since
     * (batch headers below it, every byte above).  Also as soon as the
     * active segment grew KS_CKPT_BYTES (64 MiB) since the last one, so
     * that what recovery checks is bounded whatever the write rate.
     * 0 = off (both). */
    int64_t ckpt_interval_ms;
    /* With checkpoints on: an append that leaves more than this many bytes
     * of the active segment past the last checkpoint syncs and checkpoints
     * before it returns (the appending thread waits for the disk), so that
     * a writer faster than the disk does not leave recovery an unbounded
     * amount to check.  0 = no bound. */
    uint64_t ckpt_unchecked_max;
} ks_log_config;

/*
 * What the partition logs of one instance may hold, bounded (Kafka keeps
 * every segment open and every index mapped; klog keeps a cap on both):
 *   - open files: an active segment's file stays open between appends
 *     until more than max_open_files are open; then the least recently
 *     used one is closed, and reopened by its next append, sync, roll or
 *     close.  Sealed segments hold no descriptor (they are read through
 *     their mappings).  A file in use at that moment (an append or a sync
 *     in progress) is not closed: the cap may be passed by as many files
 *     as there are appends in flight.
 *   - index memory: a sealed segment's indexes are loaded (mapped) by the
 *     first lookup that needs them and dropped, least recently used first,
 *     while those in memory pass index_bytes.  The active segments'
 *     indexes are not counted: each grows with its segment.
 * 0 = no cap.  Thread-safe.  Freed after every log that used it closed.
 */
typedef struct ks_cache ks_cache;
int ks_cache_new(ks_cache **out, unsigned max_open_files, uint64_t index_bytes);
void ks_cache_free(ks_cache *c); /* NULL-safe */
typedef struct ks_cache_stats {
    unsigned open_files;        /* active segments' files open now */
    uint64_t index_bytes;       /* sealed segments' indexes in memory now */
    uint64_t reopens;           /* files reopened after the cap closed them */
    uint64_t index_loads;       /* sealed indexes loaded on demand */
} ks_cache_stats;
void ks_cache_get_stats(ks_cache *c, ks_cache_stats *out);

/*
 * Disk space shared by several logs (the instance's disk budget).  `used`
 * counts the bytes of every segment file, the index files of sealed
 * segments, each log's small files (checkpoints, leader epochs, its lock:
 * by the blocks they take) and a cleaning pass's temporary file as it is
 * written (the layer above adds its own metadata).  An appender
 * reserves the bytes of its batches before writing them; when that would
 * take `used` past `limit` (0 = no limit) it calls make_room, with no lock
 * of any log held, and retries after it returns 0.  make_room frees space
 * (ks_log_drop_oldest on some log, possibly the caller's) or refuses with
 * an error that fails the batches (KLOG_EDISKFULL).  It may run on several
 * appending threads at once: it serialises itself.  `used` can pass `limit`
 * only through segment rolls' index files and small files (a few
 * KiB), and while a cleaning pass writes (it does not wait for room: the
 * appenders that follow make it, or are refused).
 * An append of many batches reserves a few at a time when they add up to
 * more than a quarter of the limit.
 */
typedef struct ks_space {
    _Atomic uint64_t used;
    uint64_t limit;
    int (*make_room)(void *arg, ks_log *log, uint64_t need);
    void *arg;
} ks_space;

/* Fill defaults. */
void ks_log_config_init(ks_log_config *c);

/*
 * Open (creating if needed) the partition log in dir.  io is borrowed and
 * must outlive the log.  Takes the directory lock unless read_only
 * (KLOG_ELOCKED if another writer holds it), then recovers.
 * Returns 0, KLOG_ELOCKED, KLOG_ECORRUPT, KLOG_ECONF (bad config), -errno.
 *
 * Damage is what recovery may not repair on its own, because acknowledged
 * records would go or offsets be handed out again: invalid or missing
 * bytes below the recovery point (recovery.ckpt), a log that ends below
 * it, segments missing at its start or in its middle, no segment at all
 * while recovery.ckpt vouches for offsets, the directory itself missing
 * (must_exist), a finished cleaning pass's swap file that fails its
 * checksums.  It fails the open with KLOG_ECORRUPT, or, with open_damaged,
 * opens a damaged log: ks_log_error is KLOG_ECORRUPT, ks_log_damage says
 * why, reads serve [start, end) of what precedes the damage, and every
 * change (append, truncation, retention, cleaning, roll) is refused with
 * KLOG_ECORRUPT.  A torn tail above the recovery point is not damage: it
 * is cut.
 */
int ks_log_open(ks_log **out, kio *io, const char *dir, const ks_log_config *cfg);

/* Sync, write indexes and the recovery checkpoint, release everything.
 * Returns the first error met while doing so (the log is freed anyway).
 * NULL-safe.  Views still held keep their segments mapped until released. */
int ks_log_close(ks_log *log);

/*
 * Change a live log's segment_bytes, segment_ms, index_interval_bytes,
 * max_batch_bytes, durability and flush settings (the other fields are
 * ignored).  A larger segment_bytes applies from the next segment on (the
 * active one's mapping was sized for the old value); a larger
 * max_batch_bytes rolls a non-empty active segment (or maps an empty one
 * again) so that the mapping has room for such a batch.  Returns 0,
 * KLOG_ECONF (out of range), KLOG_ECLOSED, or the roll's error.
 */
int ks_log_reconfigure(ks_log *log, const ks_log_config *cfg);

/*
 * A read-only log (cfg.read_only) whose directory another process writes:
 * catch up with it (follow.c).  Validates what was appended to the active
 * segment since the last call (up to the first incomplete batch: one being
 * written is not there yet, a torn one never is), and when the writer
 * rolled (the next segment's file exists), or rescan_dir, lists the
 * directory again: new segments join, segments deleted by retention leave,
 * segments a cleaning pass replaced are opened anew.  The start moves with
 * recovery.ckpt (rescan only).  When the end moved, the listener runs (on
 * this thread, no lock held).  Nothing is written.  Calls are serialised
 * (the append lock); reads go on meanwhile.  Returns 0, KLOG_ESTATE (not
 * read-only), KLOG_ECLOSED, -ENOENT (the directory or its files are gone:
 * what was read stays readable), -errno.
 */
int ks_log_refresh(ks_log *log, bool rescan_dir);

/* Release the log without writing anything to disk (no sync, no index, no
 * checkpoint): for a log whose directory was deleted or renamed away.
 * NULL-safe. */
void ks_log_abandon(ks_log *log);

/* One batch handed to ks_log_append.  batch is caller-owned, built by
 * kf_builder_finish (base offset 0); the log writes the assigned base offset
 * into it.  On return, base_offset and result are filled. */
typedef struct ks_batch {
    void *batch;
    size_t len;
    int64_t base_offset;  /* out */
    int result;           /* out: 0 or the error for this batch */
} ks_batch;

enum {
    KS_APPEND_SYNC = 1 << 0,   /* wait until durable whatever the policy */
    KS_APPEND_VERIFY = 1 << 1, /* verify checksums (untrusted input) */
    /* A follower copying its leader's batches: each batch keeps the base
     * offset and leader epoch it carries (the log stamps neither), and its
     * base offset must be at or past the log's end offset when its turn
     * comes (KLOG_EOFFSET below it: the follower's log is not where it
     * thinks).  Past it, the leader's log has a gap there (compaction):
     * the gap is copied, as a Kafka follower does, cleaner.ckpt first
     * recording that offsets below the batch may have gaps (one write per
     * segment that gets any); client appends stay dense.
     * An idempotent producer's batch is recorded in the producer state
     * without being checked (the leader checked it): a follower that later
     * leads refuses that producer's retries as the old leader would. */
    KS_APPEND_REPLICA = 1 << 2,
    /* A replicated leader's append: when the batches wait for a sync
     * (KS_APPEND_SYNC, durability=always), the listener runs as soon as
     * they are published, before that sync, instead of after it, and the
     * write is not linked to the sync.  So its followers copy the batches
     * while this node syncs them: the two syncs run side by side.  The
     * call still returns once they are durable (or with the sync's
     * error). */
    KS_APPEND_EARLY = 1 << 3,
};

/*
 * Append n batches in order.  Consecutive batches go to the I/O engine in one
 * queued submission.  Batches are appended as a prefix: on an error, the
 * batches before the failing one are appended (and acknowledged per the
 * policy), it and the ones after are not.  Returns 0 when all are appended,
 * otherwise the first error: KLOG_ETOOBIG (batch over max_batch_bytes),
 * KLOG_ESEQUENCE (an idempotent producer's batch out of sequence),
 * KLOG_EFENCED (from an older producer epoch),
 * KLOG_ECORRUPT (not a well-formed batch), KLOG_EREADONLY, KLOG_ECLOSED,
 * -ENOSPC, -EIO, ...
 * Idempotence: a batch with a producer id (>= 0) and base sequence that the
 * log already holds (one of the last 5 batches of that producer, or older)
 * is not written again: its result is KLOG_EDUPLICATE and base_offset says
 * where it is (-1 if too old to know); that does not stop the batches after
 * it and is not returned as an error.
 */
int ks_log_append(ks_log *log, ks_batch *batches, unsigned n, unsigned flags);

/* Make everything appended so far durable (group commit with appenders).
 * Returns 0, KLOG_EREADONLY (an earlier sync failed), or the sync error. */
int ks_log_sync(ks_log *log);

/* Periodic work: INTERVAL syncs by age, segment roll by age, the periodic
 * checkpoint (ckpt_interval_ms: a sync of the active segment and two small
 * file writes when records came since the last one).  now_ms from the
 * log's clock.  Returns 0 or an error. */
int ks_log_tick(ks_log *log);

int64_t ks_log_start_offset(ks_log *log);   /* first offset readable */

/* How recovery at the last ks_log_open found the end of the last segment
 * (for the crash tests, which count that every kind of torn tail occurs). */
enum ks_tail {
    KS_TAIL_TRUSTED = 0, /* not scanned: its indexes were trusted, or it was empty */
    KS_TAIL_END,         /* every byte a valid batch, up to the end of the file */
    KS_TAIL_ZEROS,       /* valid batches, then zeros: the zeroed tail ahead of appends */
    KS_TAIL_SHORT,       /* a batch cut short by the end of the file */
    KS_TAIL_HEADER,      /* a batch header that is neither zeros nor sane */
    KS_TAIL_CHECKSUM,    /* a whole batch whose checksum fails (a torn write) */
    KS_TAIL_OFFSET,      /* a valid batch at an offset that does not follow */
    KS_TAIL_N
};
enum ks_tail ks_log_recovered_tail(ks_log *log);
int64_t ks_log_end_offset(ks_log *log);     /* next offset to be assigned */
int64_t ks_log_durable_offset(ks_log *log); /* offsets below this are on disk */
int ks_log_error(ks_log *log);              /* 0, or the error that made it read-only */
/* Why the log opened damaged (ks_log_open), or NULL when it is not. */
const char *ks_log_damage(ks_log *log);
/*
 * Salvage a damaged log, in place and while it is shared (readers go on; a
 * reader between the old and the new state may see KLOG_EOFFSET once): the
 * directory is recovered again with the recovery point disregarded, so
 * that everything from the first invalid or missing byte goes (Kafka's
 * truncation to the last good batch), a start or end with segments missing
 * is accepted as it is, a damaged swap file removed, a missing directory
 * made again, empty (its offsets then start again at 0).  What went is
 * written to report ("; "-separated, NUL-terminated, cut to report_size;
 * may be NULL); "" when nothing did.  The log is then whole and writable.
 * Returns 0, KLOG_ESTATE (not damaged), KLOG_ECLOSED, -errno (the log stays
 * damaged; what the salvage had already changed on disk stays changed).
 * Takes maint_mu and append_mu; blocks on I/O.
 */
int ks_log_repair(ks_log *log, char *report, size_t report_size);
uint64_t ks_log_size_bytes(ks_log *log);    /* sum of segment sizes */
unsigned ks_log_segment_count(ks_log *log);

/* A zero-copy view of whole batches inside one segment's mapping.  Valid
 * (the bytes stay mapped and unchanged) until ks_view_release, even if the
 * segment is deleted or the log closed meanwhile. */
typedef struct ks_view {
    ks_segment *seg;        /* reference held */
    const uint8_t *data;
    size_t len;             /* whole batches only */
    int64_t first_offset;   /* base offset of the first batch in data */
    int64_t next_offset;    /* offset after the last batch in data */
} ks_view;

/*
 * Read whole batches starting with the one that holds offset (or, where
 * compaction left a gap, the first one after it: v->first_offset is then
 * above offset), up to
 * max_bytes (at least one batch even when it is larger).  At the end of the
 * log returns 0 with v->len == 0.  Returns 0, KLOG_EOFFSET (offset below the
 * start or above the end), -errno.  Does not verify checksums (the reader
 * does, with kf_batch_verify).
 */
int ks_log_read(ks_log *log, int64_t offset, size_t max_bytes, ks_view *v);
void ks_view_release(ks_view *v); /* NULL-safe, idempotent */
/*
 * Verify the checksum of the batch of len bytes at v->data + off (whole, as
 * ks_log_read framed it), unless this process already holds the proof:
 * it wrote the batch (or checked it as it came in: a replica's, a Kafka
 * producer's), a scan checked it (recovery, a follower's catch-up), or a
 * reader verified it before (a prefix of the segment, grown in order).  A
 * batch another process wrote and nobody here has checked is verified
 * every time until the prefix reaches it.  With trust_disk, also not when
 * the process that wrote the segment's index files had proven it (their
 * `proven` field, layout.h: read only for a segment recovery trusted
 * unscanned, wholly below the recovery point, so synced): corruption on
 * disk after that is then not seen, as a Kafka consumer without check.crcs
 * does not see it.  Returns 0 or KLOG_ECORRUPT (and the persisted proof
 * then ends before the batch).
 */
int ks_view_verify(const ks_view *v, size_t off, size_t len, bool trust_disk);

/* First offset whose record timestamp is >= ts, or the end offset if none.
 * Returns 0 with *offset filled, or an error. */
int ks_log_offset_for_time(ks_log *log, int64_t ts, int64_t *offset);

/* Remove every batch holding an offset >= offset (Kafka truncates whole
 * batches: the new end may be below offset).  For replication.  Returns 0
 * with *new_end filled (may be NULL), KLOG_EOFFSET, or an error. */
int ks_log_truncate_to(ks_log *log, int64_t offset, int64_t *new_end);

/*
 * The leader epoch written into the header (partitionLeaderEpoch) of every
 * batch appended from now on; epoch < 0 stops it (batches keep their own:
 * the default).  Stamped under the append lock, where offsets are
 * assigned, so no batch appended after this returns carries the old value
 * and none appended before it the new one.  When fn is not NULL it runs
 * first, under that lock (appends wait, nothing lands meanwhile), with
 * `end` the log end offset: the first offset the new epoch will write.  The
 * partition layer records the epoch's start there, durably, before any
 * batch of it is written.  fn may do I/O; it must not call into this log.
 * If fn returns < 0 nothing changes and that is returned.  Returns 0, fn's
 * error, -EINVAL, KLOG_ECLOSED, or KLOG_EREADONLY (fn given, and the log
 * read-only or failed).
 */
int ks_log_set_epoch(ks_log *log, int32_t epoch, int (*fn)(void *arg, int64_t end), void *arg);

/*
 * Follower mode: while on, every append without KS_APPEND_REPLICA fails
 * with KLOG_ENOTLEADER.  Switched under the append lock, so no append that
 * is not a follower's lands after this returns (on) and none is refused
 * after it returns (off).  Returns 0, -EINVAL, KLOG_ECLOSED.
 */
int ks_log_set_follower(ks_log *log, bool on);

/* Turn the log read-only with err (< 0), as a failed fsync does: a file
 * the log's records depend on (the partition's leader-epoch checkpoint)
 * could not be written.  Appends fail with KLOG_EREADONLY from now on,
 * ks_log_error returns err (the first error set stays); reads go on.
 * Returns err. */
int ks_log_fail(ks_log *log, int err);

/* Called after every successful append with the new end offset, on the
 * appending thread, no lock held: once the batches are durable when the
 * append waits for a sync, else once they are published (KS_APPEND_EARLY:
 * published, before the sync).  One listener; NULL removes it. */
typedef void (*ks_listener_fn)(void *arg, int64_t end_offset);
void ks_log_set_listener(ks_log *log, ks_listener_fn fn, void *arg);

/*
 * Background zero-fill of the tail ahead of durable appends (see prefill.c).
 * With a hook set, an append that finds less than a chunk of zeroed tail
 * ahead of it calls fn(arg) (under the log's append lock: it must only
 * signal) and goes on; the signalled thread then calls ks_log_prefill,
 * which writes and writes back the next chunk outside the append lock.
 * Without a hook the append zero-fills inline, as before.  The same hook
 * and call keep the populated window ahead of readers at the tail (only
 * with a hook: populating is never done inline).  Set the hook before the
 * first append.
 */
void ks_log_set_prefill_hook(ks_log *log, void (*fn)(void *arg), void *arg);

/*
 * Told when the log turns read-only after a failed sync (or ks_log_fail):
 * fn(arg, the log's directory, err) once, the first time, on the thread
 * whose sync failed (an appender, the background tick, a cleaner), maybe
 * under the log's append or clean lock: it must only report, return soon
 * and not call back into the log (or anything that takes its locks).  Set it before
 * the first append.  A log opened damaged (KLOG_ECORRUPT) does not call it.
 */
void ks_log_set_fail_hook(ks_log *log, void (*fn)(void *arg, const char *dir, int err), void *arg);
/* Run a prefill the log asked for (no-op otherwise): the zeroed tail's
 * next chunk, the populated window's next step, or both.  Returns 0 or the
 * I/O error (which only costs speed: the log stays as it was). */
int ks_log_prefill(ks_log *log);
/* A reader is at the log's end (it found nothing more to read): the next
 * appends keep the segment's mapping populated ahead of it (prefill.c).
 * ks_log_read notes it itself; this is for a reader stopped short of the
 * end by a high watermark. */
void ks_log_note_tail(ks_log *log);

/* Counters since open (relaxed reads: each is exact, the set is not a
 * snapshot). */
typedef struct ks_log_stats {
    uint64_t records, bytes, batches; /* appended */
    uint64_t syncs;                   /* fdatasyncs of segment data */
    uint64_t sync_ns, sync_ns_max;    /* their total and longest time */
    uint64_t rolls;
} ks_log_stats;
void ks_log_get_stats(ks_log *log, ks_log_stats *out);

/* ---- retention and DeleteRecords (retention.c) ---------------------------
 *
 * Whole segments leave from the head, never the active one (except that
 * ks_log_retain rolls an expired active segment first, as Kafka does).  The
 * new log start offset is checkpointed before any file is unlinked, and
 * recovery removes segments wholly below the checkpointed start, so a crash
 * in between leaves no readable data below the start.  Views keep their
 * segment mapped: a reader inside a deleted segment reads on safely; its
 * next read below the start gets KLOG_EOFFSET.
 *
 * These calls, ks_log_clean and ks_log_truncate_to serialise on the log's
 * maintenance lock; none holds the append lock across I/O other than the
 * checkpoint write.
 */

/*
 * Kafka's truncateFullyAndStartAt, for a follower whose log ends below its
 * leader's log start: every record goes and the log restarts, empty, at
 * `offset` (>= the end: start = end = offset).  Crash-safe in steps, each
 * leaving a log that opens: cleaner.ckpt records that offsets below
 * `offset` may have gaps; the active segment rolls to a new one at
 * `offset` (the end jumps there: a gap); the start moves to `offset` and
 * the old segments go, as DeleteRecords does.  A log that holds no record
 * (start == end) may also start again below its end (the leader's log start fell inside
 * a batch: the follower restarts at that batch's base, as Kafka does):
 * recovery.ckpt first says it starts there, then the segment files go and
 * an empty one at `offset` comes.  Returns 0, KLOG_EOFFSET (offset below
 * the end of a log holding records, or < 0), KLOG_EREADONLY, KLOG_ECLOSED,
 * -errno (after the first change on disk, the log turns read-only: the
 * next open finds one of the steps' states).  Takes
 * maint_mu, then append_mu; blocks on I/O.  No append may run
 * concurrently (a follower's replicator is its only appender).
 */
int ks_log_truncate_fully(ks_log *log, int64_t offset);

/* Move the log start offset up to `offset` (Kafka's DeleteRecords):
 * offsets below it become unreadable at once and segments wholly below it
 * are deleted.  offset <= start is a no-op; offset == -1 means the end.
 * Returns 0 with *new_start (may be NULL), KLOG_EOFFSET (offset > end or
 * below -1),
 * KLOG_EREADONLY, KLOG_ECLOSED, -errno. */
int ks_log_delete_records(ks_log *log, int64_t offset, int64_t *new_start);

typedef struct ks_retention {
    int64_t retention_ms;     /* < 0: no time limit */
    int64_t retention_bytes;  /* < 0: no size limit */
    /* Bounded: only segments whose every offset is below `bound` go (a
     * replicated partition's high watermark: as Kafka's replicas, none
     * deletes a record that is not committed yet).  Zeroed: no bound. */
    bool bounded;
    int64_t bound;
} ks_retention;

/* Apply retention now (the log's clock gives "now").
 * Time: a segment goes when its largest record timestamp is older than
 * now - retention_ms; an expired, non-empty active segment is rolled first
 * so that it can go too.  Size (Kafka's rule): the oldest segment goes
 * while the log without it still holds at least retention_bytes, so a log
 * stays below retention_bytes + one segment.  *freed (may be NULL)
 * receives the bytes released.  Returns 0 or an error. */
int ks_log_retain(ks_log *log, const ks_retention *r, uint64_t *freed);

/* The oldest deletable segment (sealed, not the active one): its largest
 * timestamp and its bytes on disk.  Returns false when there is none. */
bool ks_log_oldest(ks_log *log, int64_t *max_ts, uint64_t *bytes);
/* When the active segment is the only one and holds records: true, with
 * its largest timestamp. */
bool ks_log_active_age(ks_log *log, int64_t *max_ts);
/* Delete the oldest segment if it is not the active one; with `roll`, a
 * non-empty active segment that is the only one is rolled first so that
 * it can go.  Returns the bytes freed (0 if nothing could go) or an error.
 * Does not block on a running cleaner when `nowait`: returns -EBUSY. */
int64_t ks_log_drop_oldest(ks_log *log, bool roll, bool nowait);
/* Seal the active segment and start a new one, if it holds anything. */
int ks_log_roll(ks_log *log);
/* Bytes this log holds on disk (what it counts in its ks_space). */
uint64_t ks_log_disk_bytes(ks_log *log);

/* ---- compaction (clean.c) ---------------------------------------------------
 *
 * A cleaning pass keeps the latest record of every key in the part of the
 * log from its start up to the first uncleanable offset (the active
 * segment's base, or the first segment holding records younger than
 * min_compaction_lag_ms).  It reads the dirty section (from the clean point
 * on) into a bounded key map (XXH3-128 of the key -> latest offset; when
 * the map fills, the pass covers the dirty section only up to there), then
 * rewrites the cleanable segments in groups no larger than segment_bytes:
 *   - a record goes when the map holds a later offset for its key; a record
 *     with a null key goes (it cannot be compacted; producers refuse them
 *     for compacted topics);
 *   - a tombstone (null value) that is the latest for its key goes once it
 *     lies below the new clean point and its timestamp is older than
 *     now - delete_retention_ms;
 *   - a batch whose records all stay is copied byte for byte; one that
 *     loses some is rebuilt with kf_batch_filter (same base offset, same
 *     last offset delta, same codec): offsets are kept, gaps appear.
 * Crash safety, per group (base B = the group's first segment):
 *   1. write B.log.cleaned, fdatasync;
 *   2. cleaner.ckpt records that offsets below the pass's end may have gaps;
 *   3. rename B.log.cleaned -> B.log.swap, dirsync (the commit point);
 *   4. unlink the group's other segments and B's index files;
 *   5. rename B.log.swap -> B.log, dirsync; map it, write B's indexes;
 *   6. swap the segment objects in the list (readers switch atomically;
 *      until then they read the old segments' mappings, whose pages stay
 *      while mapped even though the files are gone).
 * A failure after the commit point turns the log read-only (as a failed
 * fsync does): the next open finishes the swap.
 * Open removes every *.cleaned (the pass did not commit) and finishes a
 * *.swap: segments with a base in (B, the swap's next offset) are deleted
 * and the swap renamed to B.log.  A segment left over from the group past
 * the swap's last offset held only superseded records: keeping it changes
 * no key's latest value.
 * Appends never wait for the cleaner: it works on sealed segments and takes
 * only the segment-list lock to swap.
 */
typedef struct ks_clean_config {
    int64_t delete_retention_ms;   /* tombstone lifetime (Kafka default 1 day) */
    int64_t min_compaction_lag_ms; /* records younger than this stay uncleaned */
    double min_dirty_ratio;        /* clean only when dirty/cleanable bytes >= this */
    size_t map_bytes;              /* key map memory (>= 64 KiB) */
    /* Called after every chunk of I/O (bytes read + written since the last
     * call); a non-zero return aborts the pass (the rate limiter sleeps in
     * it; close makes it return non-zero).  May be NULL. */
    int (*throttle)(void *arg, uint64_t bytes);
    void *throttle_arg;
    /* Only segments whose every offset is below it are cleanable (a
     * replicated partition's high watermark, as Kafka's cleaner stops at
     * it); INT64_MAX (ks_clean_config_init): every sealed one. */
    int64_t bound;
} ks_clean_config;

void ks_clean_config_init(ks_clean_config *c);

typedef struct ks_clean_stats {
    uint64_t bytes_read, bytes_written;
    uint64_t records_read, records_kept;
    uint64_t segments_in, segments_out;
    int64_t clean_point;           /* after the pass */
    bool cleaned;                  /* false: below min_dirty_ratio, nothing done */
} ks_clean_stats;

/* Dirty bytes / cleanable bytes (0 when nothing is cleanable). */
double ks_log_dirty_ratio(ks_log *log, const ks_clean_config *cfg);
/* Offsets below this have been cleaned at least once. */
int64_t ks_log_clean_point(ks_log *log);

/* One cleaning pass.  Returns 0 (st->cleaned says whether anything was
 * done), -ECANCELED (throttle asked to stop: nothing half-done is left),
 * KLOG_ECORRUPT (a batch failed its checksum: nothing changed),
 * KLOG_ECLOSED, KLOG_EREADONLY, -errno.  st may be NULL. */
int ks_log_clean(ks_log *log, const ks_clean_config *cfg, ks_clean_stats *st);

/* ---- helpers shared with the layers above ------------------------------ */

/* Write a small file atomically: dir/name.tmp, datasync, rename over
 * dir/name, dirsync dir. */
int ks_write_atomic(kio *io, const char *dir, const char *name, const void *data, size_t len);
/* The same without the syncs: readers see the old file or the new one,
 * never a mix, but after a crash it may be either, or empty, or torn.  For
 * files that are checked when read and rebuilt when bad (indexes). */
int ks_write_replace(kio *io, const char *dir, const char *name, const void *data, size_t len);
/* Read a small file whole (at most cap bytes).  Returns bytes read or -errno
 * (-EFBIG when larger than cap). */
ssize_t ks_read_small(kio *io, const char *path, void *buf, size_t cap);

/* Exclusive advisory lock on dir/.lock (flock, non-blocking).  Returns an fd
 * >= 0 to pass to ks_dirlock_release, or KLOG_ELOCKED / -errno. */
int ks_dirlock_acquire(const char *dir);
void ks_dirlock_release(int fd);

/* The segment file name for a base offset: "%020lld" + suffix. */
#define KS_NAME_MAX 64
void ks_segment_name(char *out, size_t cap, int64_t base, const char *suffix);

#endif /* KLOG_STORAGE_H */
