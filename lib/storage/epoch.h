/*
 * lib/storage/epoch.h - the leader epoch cache of a partition and its
 * checkpoint file (contract).
 *
 * A leader epoch is the 32-bit number of a leadership term (KIP-101).  The
 * cache maps each epoch to the first offset written in it, and lives in the
 * partition directory as Kafka keeps it, in a text file of the same name and
 * the same format, so that either side can read the other's:
 *
 *   leader-epoch-checkpoint
 *     0                 version (only 0 exists)
 *     2                 number of entries
 *     0 0               "epoch start_offset", one entry a line, epochs and
 *     3 120             start offsets both strictly increasing
 *
 * Lines end with "\n".  man/klog-format.5 ("LEADER EPOCH CHECKPOINT") is the
 * byte-level description; keep the two in step.
 *
 * Invariant, kept by every call: entries are sorted, epochs strictly
 * increase, start offsets strictly increase, all are >= 0.  The rules that
 * keep it are Kafka's LeaderEpochFileCache (assign, truncateFromEnd,
 * truncateFromStart, endOffsetFor); each function says which.
 *
 * Durability: every call that changes the cache rewrites the whole file
 * atomically (ks_write_atomic: name.tmp, fdatasync, rename, fsync of the
 * directory, through the kio engine) before it returns, and changes the
 * cache in memory only once the file is written.  A crash at any point
 * leaves either the file as it was or the file as it became, never a mix.
 * Kafka flushes truncations in the background; here every change is
 * synchronous (they are rare: one per leader change or truncation; the
 * partition folds log start moves in lazily, with the next of those or at
 * open: lib/partition/partition.h, "leader epochs").  A
 * leftover leader-epoch-checkpoint.tmp is removed by the next ks_log_open of
 * the same directory (it removes every *.tmp), and overwritten by the next
 * write otherwise.
 *
 * Errors: 0 or a count on success; KLOG_ECORRUPT / KLOG_EFORMAT for a bad
 * file; -errno (and KLOG_TESTING_ECRASHED, lib/testing) passed through from
 * kio.  When a change fails, the cache in memory is unchanged and the file
 * holds either the old or the new list (the next successful change rewrites
 * it whole); the caller decides whether the partition can go on (Kafka takes
 * the log directory offline).
 *
 * Threading: a ks_epochs has no lock of its own.  The calls that change it
 * (assign, truncate_from_end, truncate_from_start, close) need exclusive
 * access; the read-only calls (latest, end_offset_for, epoch_for_offset,
 * count, entry) may run concurrently with each other but not with a
 * change.  The partition object calls everything under its lock emu.  Calls
 * that change the cache block on disk I/O (two syncs); the read-only ones
 * never block and never allocate.  Nothing calls back.
 */
#ifndef KLOG_STORAGE_EPOCH_H
#define KLOG_STORAGE_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#include "io/io.h"
#include "storage/layout.h"

typedef struct ks_epochs ks_epochs;

/* The checkpoint file's name in the partition directory (Kafka's), and the
 * only version of the format (Kafka's CURRENT_VERSION).  The format is
 * parsed by lib/storage/layout.h's kl_epochs_parse, which the tools share. */
#define KS_EPOCH_FILE KL_EPOCH_NAME
#define KS_EPOCH_FILE_VERSION KL_EPOCH_VERSION
/* No epoch / no offset: what end_offset_for answers when it knows nothing
 * (Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET). */
#define KS_EPOCH_UNDEFINED (-1)
#define KS_EPOCH_OFFSET_UNDEFINED (-1)
/* Most entries a file may hold (a file claiming more is corrupt; no memory
 * is set aside for a count before it is checked against this and against
 * the file's size).  One entry per leader change that wrote data. */
#define KS_EPOCH_MAX_ENTRIES KL_EPOCH_MAX_ENTRIES

/* { int32_t epoch; int64_t start_offset; }: the first offset written in
 * the epoch (layout.h's definition). */
typedef kl_epoch_entry ks_epoch_entry;

/*
 * Load dir/leader-epoch-checkpoint into a new cache that keeps io and a copy
 * of dir for its later writes.  Writes nothing: a read-only log can load one.
 * A missing file (or directory), or a zero-length file (Kafka creates it
 * empty before its first write), gives an empty cache.
 *
 * The file is checked whole before anything is kept (kl_epochs_parse, the
 * parser `klog verify` uses too): version line, count
 * line, exactly count entry lines of two integers separated by blanks
 * (space, tab, vertical tab, form feed: Java's \s; trailing blanks are
 * allowed, leading ones are not), each line ending in "\n" (or "\r\n", as
 * Java's readLine accepts), nothing after the last.  Epochs must
 * strictly increase and start offsets must not decrease; two entries with
 * the same start offset (older Kafka versions could write them for an epoch
 * that wrote no data) keep only the later epoch, as Kafka's load does.  This is stricter
 * than Kafka's reader, which also accepts a file cut after its version
 * line, a last line without "\n", and any order (it re-assigns entries one
 * by one); Kafka's writer never produces such files.
 *
 * Returns 0 with *out set, or (*out NULL):
 *   KLOG_ECORRUPT  malformed: bad number, too few or too many lines, a
 *                  count above KS_EPOCH_MAX_ENTRIES or above what the file
 *                  could hold, negative values, epochs not increasing,
 *                  start offsets decreasing, a file too large to be one
 *   KLOG_EFORMAT   a well-formed version other than 0
 *   -EINVAL        NULL argument;  -ENAMETOOLONG  dir too long
 *   -ENOMEM;  -errno from kio (reading)
 */
int ks_epochs_open(ks_epochs **out, kio *io, const char *dir);
/* The same, and for a bad file (KLOG_ECORRUPT, KLOG_EFORMAT) the problem in
 * why (`line N: ...`; may be NULL). */
int ks_epochs_open_why(ks_epochs **out, kio *io, const char *dir, char *why, size_t whysize);
/* A new, empty cache for dir that has not read its file: its first change
 * writes the file whole, over whatever is there (a damaged file being
 * rebuilt).  Returns 0, -EINVAL, -ENAMETOOLONG, -ENOMEM. */
int ks_epochs_new(ks_epochs **out, kio *io, const char *dir);

/* Free the cache (no I/O: every change is already on disk).  NULL-safe. */
void ks_epochs_close(ks_epochs *c);

/*
 * Record that epoch `epoch` starts at `start_offset` (a new leader's log end
 * offset when it takes over, or the base offset of the first batch of a new
 * epoch a follower appends).  Kafka's assign:
 *   - already implied (epoch equal to the latest, start offset not below
 *     the latest's): nothing changes, nothing is written, returns 0;
 *   - otherwise every entry whose epoch is >= epoch or whose start offset is
 *     >= start_offset is removed (a lower epoch, or a start below the
 *     latest, overrides the tail it conflicts with), the entry is appended,
 *     the file rewritten; returns 1.
 * Returns 1 (changed), 0 (nothing to do), -EINVAL (epoch or start_offset
 * negative, or c NULL), -ENOMEM, or the write's error (cache unchanged).
 */
int ks_epochs_assign(ks_epochs *c, int32_t epoch, int64_t start_offset);

/*
 * After the log was truncated to end_offset (a follower cutting a diverged
 * tail): remove every entry whose start offset is >= end_offset (Kafka's
 * truncateFromEnd).  A negative end_offset does nothing.
 * Returns 1 (changed and written), 0 (nothing to remove), -EINVAL, or the
 * write's error (cache unchanged).
 */
int ks_epochs_truncate_from_end(ks_epochs *c, int64_t end_offset);

/*
 * After the log start moved up to start_offset (retention, DeleteRecords):
 * the entries whose start offset is <= start_offset are replaced by one,
 * the latest of them, with its start offset raised to start_offset; later
 * entries stay (Kafka's truncateFromStart).  So (0,0) (1,5) (2,9) truncated
 * from 6 becomes (1,6) (2,9), and an entry starting exactly at start_offset
 * is kept as it is.
 * Returns 1 (changed and written), 0 (nothing to change), -EINVAL, or the
 * write's error (cache unchanged).
 */
int ks_epochs_truncate_from_start(ks_epochs *c, int64_t start_offset);

/* The latest epoch, KS_EPOCH_UNDEFINED when the cache is empty. */
int32_t ks_epochs_latest(const ks_epochs *c);

/*
 * Where epoch `epoch` ends, as the leader answers OffsetsForLeaderEpoch and
 * computes a Fetch's DivergingEpoch (Kafka's endOffsetFor, KIP-101/279):
 *   - epoch is KS_EPOCH_UNDEFINED, or above every known epoch, or the cache
 *     is empty:                         (UNDEFINED, OFFSET_UNDEFINED)
 *   - epoch is the latest:              (epoch, log_end)
 *   - otherwise, with E' the largest known epoch <= epoch and S the start
 *     offset of the first known epoch > epoch:
 *       E' exists:                      (E', S)
 *       epoch is below every known one: (epoch, S)  - the requested epoch
 *         with the first start offset still held: its data is gone from this
 *         log (retention), the follower replicates from there.  (KIP-101's
 *         first version answered UNDEFINED here; Kafka has answered this way
 *         since 2.1, and a follower needs an offset, not a fallback to its
 *         high watermark.)
 * A follower then truncates to min(S, its own end offset for E') and asks
 * again (KIP-279) until the answers agree.  *out_epoch and *out_end are
 * always set.  Never fails.
 */
void ks_epochs_end_offset_for(const ks_epochs *c, int32_t epoch, int64_t log_end, int32_t *out_epoch,
                              int64_t *out_end);

/*
 * The epoch that wrote `offset`: that of the last entry starting at or
 * below it (Kafka's epochForOffset), KS_EPOCH_UNDEFINED when offset is below
 * the first entry or the cache is empty.  The cache does not know the log
 * end: an offset past it gets the latest epoch.  For ListOffsets v4+ and a
 * follower's last fetched epoch.
 */
int32_t ks_epochs_epoch_for_offset(const ks_epochs *c, int64_t offset);

/* Number of entries, and entry i (0 = oldest) into *out: 0, or -ERANGE when
 * i >= count (*out untouched). */
size_t ks_epochs_count(const ks_epochs *c);
int ks_epochs_entry(const ks_epochs *c, size_t i, ks_epoch_entry *out);

#endif /* KLOG_STORAGE_EPOCH_H */
