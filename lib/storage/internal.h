/*
 * lib/storage/internal.h - what the storage files share among themselves.
 * Not a contract for anything outside lib/storage.
 */
#ifndef KLOG_STORAGE_INTERNAL_H
#define KLOG_STORAGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "common/common.h"
#include "storage/storage.h"

#define KS_CKPT_NAME "recovery.ckpt"
/* With periodic checkpoints on, one is also taken as soon as the active
 * segment grew this much since the last: recovery after a crash then
 * checks at most about this much, whatever the write rate. */
#define KS_CKPT_BYTES (64u << 20)

enum { KS_DIR_PARENT = 1, KS_DIR_SELF = 2 }; /* ks_log.dir_unsynced */

/* Offset index entry: the batch starting at `pos` has base offset
 * segment base + rel.  Time index entry: the largest batch max_timestamp seen
 * in the segment up to and including the batch with base offset base + rel. */
typedef struct ks_oentry { uint32_t rel; uint32_t pos; } ks_oentry;
typedef struct ks_tentry { int64_t ts; uint32_t rel; uint32_t pos; } ks_tentry;

/*
 * A segment's two indexes live in one of three places (ix_state):
 *   OUT     not in memory: its .index and .timeindex files (ix_files)
 *           hold them; the first lookup loads them;
 *   HEAP    heap arrays: the active segment's, which grow as it fills
 *           (doubling, up to ix_max entries), or a rebuild from the data;
 *   MAPPED  the index files mapped read-only: a sealed segment's, loaded
 *           on demand and dropped again under the instance's cap
 *           (ks_cache: log.index.cache.bytes), least recently used first.
 * ix_mu guards the state, the arrays' pointers and capacities, and the
 * mappings.  Lookups take it for their binary search only (the header scan
 * that follows runs without it).  Entries are appended by one writer (under
 * the log's append_mu, or recovery's): it writes entry `count` and then
 * publishes count (release) without ix_mu, and takes ix_mu only to move
 * the array when it grows, so readers never see the array move under
 * them.  Truncation lowers count (under the append lock) before the bytes
 * it covered are reused.
 */
typedef struct ks_index {
    void *e;              /* ks_oentry[] or ks_tentry[] (heap, or in the file's mapping) */
    _Atomic uint32_t count;
    uint32_t cap;         /* entries of room at e */
} ks_index;

enum { KS_IX_OUT = 0, KS_IX_HEAP, KS_IX_MAPPED };

/* The instance's caps on what its partition logs hold (storage.h:
 * ks_cache).  mu is a leaf below append_mu and ix_mu: it is taken inside
 * them, and under it the others are only ever try-locked. */
struct ks_cache {
    pthread_mutex_t mu;
    /* sealed segments' indexes in memory (MAPPED, or a HEAP rebuild) */
    uint64_t ix_limit;          /* bytes; 0 = no cap */
    uint64_t ix_bytes;
    unsigned ix_count;
    ks_segment *ix_head;        /* most recently loaded first */
    /* active segments' open file handles */
    unsigned fh_limit;          /* 0 = no cap */
    unsigned fh_open;
    ks_segment *fh_head;        /* most recently registered first */
    uint64_t fh_reopens, ix_loads; /* statistics */
};

struct ks_segment {
    int64_t base;                 /* base offset (the file name) */
    kio *io;
    int h;                        /* kio handle while writable and open, else -1
                                   * (ks__seg_h reopens an active segment's) */
    uint8_t *map;                 /* PROT_READ MAP_SHARED mapping of map_cap bytes */
    size_t map_cap;
    _Atomic uint64_t size;        /* bytes of whole, written batches (readers' limit) */
    _Atomic int64_t next_offset;  /* offset after the last batch in this segment */
    int64_t first_ts;             /* max_timestamp of the first batch, -1 if empty */
    int64_t max_ts;               /* largest batch max_timestamp, -1 if empty */
    int64_t active_since_ms;      /* the log's clock when the append path first saw
                                   * it active (0: not yet; under append_mu) */
    uint64_t since_oidx;          /* bytes appended since the last offset-index entry */
    uint64_t since_tidx;
    uint32_t interval;            /* index.interval.bytes when created (for rebuilds) */
    pthread_mutex_t ix_mu;        /* the indexes' state (above) */
    uint8_t ix_state;             /* KS_IX_* */
    bool ix_files;                /* the index files on disk describe this segment as it is */
    uint32_t ix_max;              /* entries an index can need at most */
    ks_index oidx, tidx;
    void *ix_map[2];              /* MAPPED: the .index and .timeindex files */
    size_t ix_map_len[2];
    _Atomic int refs;             /* the log's list holds one; each view one */
    int h_users;                  /* users of h outside append_mu (group-commit
                                   * leaders): it is not closed under them */
    _Atomic uint64_t file_end;    /* length of the file: past `size` when a zeroed
                                   * tail was written ahead of durable appends, or
                                   * the file extended for a populated window
                                   * (changed under append_mu, or by a background
                                   * prefill under pf_mu while pf_busy) */
    _Atomic uint64_t pop_end;     /* the mapping's page tables are filled below this
                                   * (prefill.c: the populated window ahead of
                                   * tailing readers); set by ks_log_prefill */
    bool sealed;                  /* no more appends; index files written */
    uint64_t ix_bytes;            /* bytes of its index files on disk (sealed) */
    _Atomic bool gaps;            /* compaction may have left offset gaps in it, or a
                                   * follower copied its leader's gaps into it (set by
                                   * the appender before it publishes the batch after
                                   * the gap); otherwise offsets must be dense (a base
                                   * offset, outside the checksum, that jumps is damage) */
    /* ks_cache membership (under cache->mu): the index list (a sealed
     * segment whose indexes are in memory) and the handle list (an active
     * segment whose file is open).  hot: used since the last eviction
     * sweep passed it (second chance). */
    ks_cache *cache;
    ks_segment *ixc_prev, *ixc_next;
    bool ixc_in;
    uint64_t ixc_bytes;
    _Atomic bool ixc_hot;
    ks_segment *fhc_prev, *fhc_next;
    bool fhc_in;
    _Atomic bool fhc_hot;
    struct ks_log *owner;         /* the log whose active segment this is (fh list) */
    uint64_t ino;                 /* the file's inode when opened (a follower tells a
                                   * compaction's replacement by it) */
    /* What this process has proven of the bytes (ks_view_verify): a batch
     * wholly inside [0, verified) had its checksum checked by a reader (the
     * prefix grows as readers check batches in order); a batch at or past
     * trusted_from was appended by this process (batches it built or checked
     * as they came in) or checked by a scan (recovery, a follower's catch-up).
     * Neither is ever raised past bytes this process has not seen whole; a
     * truncation lowers both to the cut. */
    _Atomic uint64_t verified;
    _Atomic uint64_t trusted_from;
    /* The proof another process left (the `proven` field of the index
     * files recovery trusted the segment by, wholly below the recovery
     * point: synced): [0, disk_proven) had its batches proven by the
     * writer of those files.  Trusted only by readers that ask for it
     * (check.crcs=false); lowered by a truncation to the cut and by a
     * batch that fails its checksum to that batch; carried into the index
     * files this process writes. */
    _Atomic uint64_t disk_proven;
    char path[];                  /* the .log file (shorter than 4096) */
};

/* Idempotent producers (pidstate.c): the last few batches of each producer
 * id that wrote to the log. */
#define KS_PID_BATCHES 5   /* batches remembered per producer (Kafka keeps 5) */

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

/* What a ks__pid_check changed, so that a failed write can undo it. */
typedef struct ks_pidundo {
    int slot;              /* -1: nothing changed */
    unsigned npids;
    ks_pidstate old;
} ks_pidundo;

/*
 * The partition log.  Locks, always taken in this order:
 *   maint_mu   serialises maintenance: retention, DeleteRecords, cleaning
 *              passes, truncation.  May be held across I/O; appends never
 *              take it.
 *   append_mu  serialises writers: offset assignment, file position, roll,
 *              truncation, index appends, the inline prefill.  Held across
 *              the write I/O and a roll's syncs.  The prefill hook is
 *              called with it held (the instance's takes its bg_mu).
 *   pf_mu      the background prefill's handshake: pf_busy, pf_abort,
 *              pf_cv, and the active segment's file_end while pf_busy.
 *              Taken inside append_mu (appends, roll, truncation), or alone
 *              (ks_log_prefill between its steps, close).  Never held
 *              across I/O.
 *   ckpt_mu    recovery.ckpt writes and recovery_point (taken inside
 *              append_mu or maint_mu, or alone).  Held across that write.
 *   seg_mu     guards the segment list (array, count).  Held only to look up
 *              or change the list, never across I/O.  The active segment
 *              (`active`) changes under append_mu and seg_mu both.
 *   sync_mu    guards the group-commit slot (sync_running) and sync_cv.
 *              Never held across I/O.  `durable` is atomic: it moves
 *              forward under sync_mu (the end of a sync) or append_mu (a
 *              roll), and back only in a truncation (append_mu).
 * pf_mu, ckpt_mu, seg_mu and sync_mu are leaves: none of them is held
 * while another of the four is taken.
 */
struct ks_log {
    kio *io;
    ks_log_config cfg;
    /* Read by every producer send (ks_log_error): kept among read-only
     * fields, away from the atomics each append writes (inflight, end),
     * which would otherwise pull its cache line over to the writer's core. */
    _Atomic int failed;        /* sticky sync error, or KLOG_ECORRUPT (damaged): read-only */
    /* Damaged (set at open, before the log is shared; cleared only by
     * ks_log_repair, with every lock of the log held): recovery found
     * damage it may not repair on its own, the log opened as a read-only
     * view of what precedes the damage (cfg.open_damaged), and nothing
     * in the directory was changed.  damage says what and where. */
    _Atomic bool damaged;
    char damage[512];
    int lock_fd;

    pthread_mutex_t maint_mu;  /* retention, DeleteRecords, cleaning, truncation */
    pthread_mutex_t append_mu;
    pthread_mutex_t seg_mu;
    ks_segment **segs;         /* sorted by base offset; last is active */
    unsigned nsegs;
    size_t segcap;
    /* The active segment, segs[nsegs - 1], kept apart: it changes only
     * under append_mu and seg_mu both (open, roll, truncation,
     * reconfigure, repair), so a holder of either reads it without the
     * other, while retention, the disk budget and cleaning move the rest
     * of the list under seg_mu alone. */
    ks_segment *active;

    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    bool sync_running;
    _Atomic int64_t durable;   /* offsets below are durable */
    _Atomic int inflight;      /* appenders inside ks_log_append */

    _Atomic int64_t end;       /* next offset */
    _Atomic int64_t start;     /* log start offset */
    pthread_mutex_t ckpt_mu;   /* recovery.ckpt writes and recovery_point */
    int64_t recovery_point;    /* last checkpointed */
    int64_t ckpt_start;        /* the log start recovery.ckpt holds (under ckpt_mu) */
    int64_t ckpt_at_ms;        /* the last periodic checkpoint (ks_log_tick's thread) */
    /* ... the base of the segment it was in and its position there:
     * written under ckpt_mu, read without it by appenders
     * (ckpt_unchecked_max) and the tick (ckpt_unchecked), for which a
     * stale or torn pair only moves a checkpoint by one append or tick */
    _Atomic int64_t ckpt_seg;
    _Atomic uint64_t ckpt_pos;
    _Atomic int dir_unsynced;  /* KS_DIR_*: entries no dirsync covers yet (ks__dir_durable) */
    uint64_t unsynced_records; /* INTERVAL policy (under append_mu) */
    int64_t unsynced_since_ms; /* wall time of the first unsynced append, -1 if none */

    /* Compaction state (cleaner.ckpt): offsets below gap_limit may have
     * gaps (recovery relaxes its density checks there); offsets below
     * clean_point have been cleaned at least once.  Both change only
     * through ks__cleaner_state_set, under gap_mu (a leaf: taken under
     * maint_mu by the cleaner and truncation, under append_mu by a
     * follower's append that copies a gap of its leader's). */
    pthread_mutex_t gap_mu;
    _Atomic int64_t gap_limit;
    _Atomic int64_t clean_point; /* read without maint_mu (describe) */
    enum ks_tail recovered_tail; /* how the last open's scan of the last segment ended */

    _Atomic uint64_t disk;     /* bytes on disk: what this log counts in space */
    _Atomic uint64_t small;    /* of which its small files (checkpoints, epochs, lock) */
    struct {
        _Atomic uint64_t records, bytes, batches, syncs, sync_ns, sync_ns_max, rolls;
    } st;                      /* ks_log_get_stats */
    ks_space *space;

    uint8_t *zeros;            /* KS_ZERO_BUF zero bytes, for prefills (lazily) */
    /* Background prefill (ks_log_prefill): wanted is set (with the hook's
     * call) and cleared under append_mu, and read without it by
     * ks_log_prefill to pass over logs that asked for nothing; busy, the
     * segment it fills and abort under pf_mu
     * (taken after append_mu).  While busy, nothing but the prefill writes
     * past that segment's file_end, truncates it or replaces it. */
    void (*pf_hook)(void *);
    void *pf_arg;
    /* ks_log_set_fail_hook: called once, when failed goes from 0 to an
     * error, on the thread that failed (maybe under the append or clean
     * lock; sync_mu is never held) */
    void (*fail_hook)(void *arg, const char *dir, int err);
    void *fail_arg;
    _Atomic bool pf_wanted;
    /* The populated window (prefill.c): a reader found nothing past the
     * end since the last window step (set by reads, cleared by the step),
     * and an append asked for the next step. */
    _Atomic bool tailed;
    _Atomic bool pop_wanted;
    pthread_mutex_t pf_mu;
    pthread_cond_t pf_cv;
    _Atomic bool pf_busy;      /* set under append_mu and pf_mu; cleared under pf_mu */
    bool pf_abort;
    _Atomic bool pf_off;       /* a prefill failed (a full disk?): none until the next roll */
    ks_listener_fn listener;
    void *listener_arg;
    bool stamp;                /* stamp_epoch into appended batches (append_mu) */
    int32_t stamp_epoch;       /* ks_log_set_epoch */
    bool follower;             /* only KS_APPEND_REPLICA appends (append_mu): ks_log_set_follower */
    bool closed;

    /* Idempotent producers (under append_mu): the last few batches of each
     * producer id, to refuse a batch the log already holds. */
    ks_pidstate *pids;
    unsigned npids;
    uint64_t pid_tick;
    char dir[]; /* shorter than 4096; as long as it is (thousands of logs) */
};

/* The active segment: append_mu or seg_mu held (or the log not shared yet).
 * Never log->segs[log->nsegs - 1] under append_mu alone: retention and the
 * disk budget (drop_head) move the list under seg_mu only. */
static inline ks_segment *ks__active(ks_log *log) { return log->active; }
/* Replace the active segment (append_mu held, or the log not shared). */
static inline void ks__set_active(ks_log *log, ks_segment *s)
{
    pthread_mutex_lock(&log->seg_mu);
    log->segs[log->nsegs - 1] = s;
    log->active = s;
    pthread_mutex_unlock(&log->seg_mu);
}

/* log.c, shared with the other storage files */
size_t ks__map_cap(const ks_log *log);
/* Append a segment to the list (caller holds append_mu if the log is live). */
int ks__list_push(ks_log *log, ks_segment *s);
int ks__unlink_in(ks_log *log, const char *name);
int ks__unlink_segment_files(ks_log *log, int64_t base);
int ks__fail_sync(ks_log *log, int err);
/* Record why the log is damaged (the first reason wins); returns
 * KLOG_ECORRUPT. */
__attribute__((format(printf, 2, 3))) int ks__damage(ks_log *log, const char *fmt, ...);
/* What a read-only or failed log refuses a change with: KLOG_ECORRUPT
 * when damaged, KLOG_EREADONLY otherwise. */
static inline int ks__refusal(const ks_log *log)
{
    return atomic_load(&log->damaged) ? KLOG_ECORRUPT : KLOG_EREADONLY;
}
/* The log's clock, ms (inline: every append reads it). */
static inline int64_t ks__now(const ks_log *log)
{
    return log->cfg.clock_ms ? log->cfg.clock_ms(log->cfg.clock_arg) : klog__wall_ms();
}
/* May maintenance change the log?  0, -EINVAL (NULL), KLOG_ECLOSED,
 * KLOG_EREADONLY (opened read-only, or a failed fsync). */
int ks__writable(const ks_log *log);
/* Write recovery.ckpt with this recovery point and the current start
 * (takes ckpt_mu). */
int ks__ckpt_write_locked(ks_log *log, int64_t recovery_point);
/* A log created in a directory made just now holds entries no directory
 * sync covers yet (its own in the parent, its first segment's): make them
 * durable before any sync vouches for data (leaders, linked writes, roll,
 * close).  Returns 0 or the dirsync's error. */
int ks__dir_durable_slow(ks_log *log, int which);
static inline int ks__dir_durable(ks_log *log)
{
    return atomic_load_explicit(&log->dir_unsynced, memory_order_acquire)
               ? ks__dir_durable_slow(log, KS_DIR_PARENT | KS_DIR_SELF)
               : 0;
}
/* Account delta bytes (may be negative) to the log and its space (inline:
 * every append counts what it wrote). */
static inline void ks__disk_add(ks_log *log, int64_t delta)
{
    atomic_fetch_add(&log->disk, (uint64_t)delta);
    if (log->space)
        atomic_fetch_add(&log->space->used, (uint64_t)delta);
}
/* Bytes a segment holds on disk (log file + index files). */
uint64_t ks__seg_disk(ks_segment *s);
/* Rebuild a sealed segment's in-memory indexes from its mapping (headers
 * only; the bytes were verified when written).  Returns 0 or KLOG_ECORRUPT. */
int ks__seg_index_map(ks_segment *s, uint64_t size, uint32_t interval);

/* append.c: seal the active segment and start a new one at base (append_mu
 * held). */
int ks__roll(ks_log *log, int64_t base);

/* recover.c: validate what is on disk, cut a torn tail, build the segment
 * list and the offsets (at open, before anyone else sees the log).  On
 * damage: KLOG_ECORRUPT with the reason in log->damage, or, with
 * cfg.open_damaged, 0 and the log a damaged view. */
int ks__recover(ks_log *log);
/* recover.c, for ks_log_repair: recover a fresh log object the salvage way
 * (recover.c's comment), writing what went into report. */
int ks__recover_salvage(ks_log *log, char *report, size_t report_size);
/* recover.c: validate s's batches from position from (0, or where an
 * earlier scan stopped: its size and next_offset) up to fsize through
 * kio reads on s->h, noting each in the indexes; s->size and next_offset
 * end after the last valid one (published as it goes, for a follower's
 * readers).  Stops at the first incomplete or invalid batch; *tail (may
 * be NULL) says how. */
int ks__scan_segment(ks_log *log, ks_segment *s, uint64_t from, uint64_t fsize, int64_t limit, bool gaps,
                     uint64_t *valid_end, int64_t *expected_out, enum ks_tail *tail);

/* pidstate.c, under append_mu (contracts there). */
int ks__pid_check(ks_log *log, const kf_batch_info *bi, int64_t base, bool record_only, int64_t *dup_base,
                  ks_pidundo *u);
void ks__pid_undo(ks_log *log, const ks_pidundo *u);

/* prefill.c: the zeroed tail ahead of durable appends (see the comment at
 * its top).  All of these run with append_mu held. */
void ks__prefill(ks_log *log, ks_segment *s, uint64_t data_end);
void ks__prefill_ask_slow(ks_log *log, ks_segment *s, uint64_t data_end, bool more);
#define KS_POPULATE_WINDOW (512u << 10) /* default; ks_log_config.populate_bytes */
static inline uint64_t ks__pop_window(const ks_log *log)
{
    return log->cfg.populate_bytes ? KLOG_MAX((uint64_t)log->cfg.populate_bytes, (uint64_t)4096)
                                   : KS_POPULATE_WINDOW;
}
/* Is the populated window ahead of a tailing reader less than half full? */
static inline bool ks__pop_due(ks_log *log, ks_segment *s, uint64_t data_end)
{
    return atomic_load_explicit(&log->tailed, memory_order_relaxed) &&
           atomic_load_explicit(&s->pop_end, memory_order_relaxed) < data_end + ks__pop_window(log) / 2;
}
/* Background mode, before any append writes s up to data_end: wait out a
 * prefill step in flight where the write goes; for a durable one (more),
 * ask for the next chunk when less than half of one is left ahead; with a
 * reader at the tail, ask for the next populated window when less than
 * half of one is left.  Inline: every append with a prefill hook passes
 * here. */
static inline void ks__prefill_ask(ks_log *log, ks_segment *s, uint64_t data_end, bool more)
{
    /* pf_busy is set only under append_mu, which we hold: a false here
     * stays false until we let go */
    if (!more && !atomic_load(&log->pf_busy) && !ks__pop_due(log, s, data_end))
        return;
    ks__prefill_ask_slow(log, s, data_end, more);
}
void ks__prefill_quiesce(ks_log *log);
/* The segment's file is about to lose its zeroed tail (cut, truncated or
 * replaced). */
static inline void ks__zero_tail_gone(ks_segment *s)
{
    uint64_t size = atomic_load(&s->size);
    if (s->file_end > size)
        s->file_end = size;
    if (atomic_load(&s->pop_end) > size) /* the kernel unmaps what a cut takes */
        atomic_store(&s->pop_end, size);
}
int ks__cut_zero_tail(ks_log *log, ks_segment *s);

/* checkpoint.c: cleaner.ckpt holds gap_limit and clean_point. */
#define KS_CLEANER_CKPT_NAME "cleaner.ckpt"
/* log.c: the failed word went from 0 to err: tell the fail hook. */
void ks__failed_now(ks_log *log, int err);

int ks__cleaner_ckpt_write(kio *io, const char *dir, int64_t gap_limit, int64_t clean_point);
/* log.c: raise gap_limit to at least gap_limit, and set clean_point to
 * clean_point (< 0: keep it), writing cleaner.ckpt first when either
 * changes (takes gap_mu).  Returns 0 or the write's error (nothing
 * changed). */
int ks__cleaner_state_set(ks_log *log, int64_t gap_limit, int64_t clean_point);
int ks__cleaner_ckpt_read(kio *io, const char *dir, int64_t *gap_limit, int64_t *clean_point);

/* checkpoint.c */
int ks__ckpt_write(kio *io, const char *dir, int64_t recovery_point, int64_t log_start);
/* recovery.pos (layout.h): where a periodic checkpoint's recovery point is
 * in its segment. */
int ks__pos_write(kio *io, const char *dir, int64_t recovery_point, int64_t pos);
int ks__pos_read(kio *io, const char *dir, int64_t *recovery_point, int64_t *pos);
/* Count the log's small files (recovery.ckpt, recovery.pos, cleaner.ckpt,
 * leader-epoch-checkpoint, .lock) in its disk usage, by the blocks each
 * takes: after any of them may have been made.  Nothing for a read-only
 * log. */
void ks__small_files_count(ks_log *log);
int ks__ckpt_read(kio *io, const char *dir, int64_t *recovery_point, int64_t *log_start);

/* segment.c */
int ks__seg_new(ks_segment **out, kio *io, const char *dir, int64_t base,
                size_t map_cap, uint32_t interval, bool create);
/* An empty segment at base with no file behind it: the active segment of a
 * damaged log that has none (nothing maps, reads or writes it). */
int ks__seg_phantom(ks_segment **out, kio *io, int64_t base);
/* A segment that goes into log's list: it uses the log's cache. */
void ks__seg_attach(ks_log *log, ks_segment *s);
/* Before the active segment takes its first append, or is truncated: its
 * indexes in growable memory (loaded if they were OUT), its index files
 * gone (later appends would make them stale).  append_mu held.  Returns 0
 * or -ENOMEM. */
int ks__seg_ix_own(ks_log *log, ks_segment *s);
/* After a segment was sealed and its index files written: free its
 * in-memory indexes (the next lookup loads the files, under the cache). */
void ks__seg_ix_sealed(ks_segment *s);
/* Give dst (new, unshared) src's index entries below cut (src the
 * writer's: append_mu held).  Returns 0 or -ENOMEM. */
int ks__seg_ix_copy(ks_segment *dst, ks_segment *src, uint64_t cut);
/* ix_mu held: drop the in-memory indexes (the cache's sweep). */
void ks__seg_ix_drop_locked(ks_segment *s);

/* cache.c (the contract at the top of cache.c) */
/* Put s (h open) on the cache's list of open files, closing others past
 * the cap.  append_mu held, or the log not yet shared. */
void ks__seg_h_adopt(ks_log *log, ks_segment *s);
int ks__seg_h_slow(ks_log *log, ks_segment *s);
/* The active segment's handle, reopened if the cache closed it
 * (append_mu held; valid until it is released).  Returns it or -errno. */
static inline int ks__seg_h(ks_log *log, ks_segment *s)
{
    if (KLOG_LIKELY(s->h >= 0)) {
        if (!atomic_load_explicit(&s->fhc_hot, memory_order_relaxed))
            atomic_store_explicit(&s->fhc_hot, true, memory_order_relaxed);
        return s->h;
    }
    return ks__seg_h_slow(log, s);
}
/* s stops being the active segment, or the log closes (append_mu held):
 * off the list, and its handle closed unless a user outside append_mu
 * holds it (h_users: that one closes it). */
void ks__seg_h_drop(ks_log *log, ks_segment *s);
/* Sealed segments' in-memory indexes (ix_mu held). */
void ks__ixc_add(ks_segment *s, uint64_t bytes);
void ks__ixc_del(ks_segment *s);
void ks__seg_ref(ks_segment *s);
void ks__seg_unref(ks_segment *s);
/* Record a batch of len bytes just written at position pos (appending side). */
void ks__seg_note_batch(ks_segment *s, const kf_batch_info *bi, uint64_t pos,
                        uint64_t len, uint32_t interval);
/* Position of the batch holding offset: index lookup then header scan over
 * the mapping.  Returns 0 with *pos, or KLOG_EOFFSET when offset is past the
 * segment's last batch, KLOG_ECORRUPT on bad framing. */
int ks__seg_find(ks_segment *s, int64_t offset, uint64_t *pos);
/* First batch position whose max_timestamp >= ts; *pos = size if none. */
int ks__seg_find_time(ks_segment *s, int64_t ts, uint64_t *pos);
/* Write .index and .timeindex for the segment (atomic), datasync them.
 * Nothing when the files on disk describe it already (ix_files). */
int ks__seg_write_indexes(ks_segment *s, const char *dir);
/* The same without syncs (close: the checkpoint's directory sync that
 * follows makes the names durable; a torn file is rebuilt at open). */
int ks__seg_write_indexes_nosync(ks_segment *s, const char *dir);
/* Load both index files, checking them against the segment (size, base,
 * monotonic, in range, checksum).  Returns 0, or KLOG_ECORRUPT / -ENOENT when
 * they must be rebuilt.  *proven (when not NULL) receives the proof the
 * files carry (layout.h: at most seg_size; 0 on failure); the caller
 * decides whether it may be trusted (ks__seg_proven_disk). */
int ks__seg_load_indexes(ks_segment *s, const char *dir, uint64_t seg_size, uint64_t *proven);
/* Reset indexes and counters to an empty segment. */
void ks__seg_reset_indexes(ks_segment *s);
/* Truncate the in-memory indexes to entries below pos. */
void ks__seg_truncate_indexes(ks_segment *s, uint64_t pos);
/* The proof of the bytes (verified, trusted_from): a scan checked [from,
 * valid_end) and stopped at the end of the data (what follows is appended
 * here or scanned again); a cut at pos drops what lay past it. */
void ks__seg_proven_scan(ks_segment *s, uint64_t from, uint64_t valid_end);
void ks__seg_proven_cut(ks_segment *s, uint64_t pos);
void ks__seg_proven_from(ks_segment *s, uint64_t pos); /* this process writes from pos on */
/* Recovery trusts the segment unscanned: the proof its index files carry
 * becomes its disk_proven. */
void ks__seg_proven_disk(ks_segment *s, uint64_t proven);
/* The prefix of the segment's first size bytes whose batches this process
 * can vouch for (its own proof, or the one it was left), for the index
 * files it writes. */
uint64_t ks__seg_proven_prefix(ks_segment *s, uint64_t size);

#endif /* KLOG_STORAGE_INTERNAL_H */
