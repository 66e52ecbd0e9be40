/*
 * lib/topic/internal.h - the instance object, shared by the files of
 * lib/topic only (instance.c: open/close, topic admin, the topic table and
 * its snapshots, topic events, the background thread; maint.c: retention,
 * the disk budget, the cleaner threads; stats.c: klog_stats).  The layers
 * above see topic.h.  instance.c is the centre: maint.c and stats.c use
 * its table (klog__topics_snapshot), it drives them from the background
 * thread, and neither calls the other.
 */
#ifndef KLOG_TOPIC_PRIVATE_H
#define KLOG_TOPIC_PRIVATE_H

#include "topic/topic.h"

#define KT_CLEANERS_MAX 16

/*
 * THREADING MODEL (the whole library; checked against the code, keep it so)
 *
 * Threads.  klog runs these; none runs user code except where said.
 *   application  any thread calling the API.  Producers: send encodes into
 *                its partition's open batch and, when it fills one, seals it
 *                and may drain (below).  Consumers: one thread at a time per
 *                consumer; poll reads the logs lock-free and sleeps on an
 *                eventfd; a subscribed consumer's poll is its group member's
 *                heartbeat (no heartbeat thread).  Admin calls (klog_topic_*,
 *                klog_group_*) and klog_stats run on the caller.
 *   drainer      not a thread of its own: whichever thread finds a
 *                partition's sealed batches waiting (a sender, flush, close,
 *                or klog-producer) appends them, one drainer per partition
 *                at a time, and runs the delivery callbacks, with no lock
 *                of klog held.
 *   klog-producer  one per producer: seals batches that lingered linger.ms
 *                and drains them.
 *   klog-maint   the instance's background thread (the background module):
 *                interval syncs and rolls by age (ks_log_tick), prefills of
 *                zeroed tails and of the populated windows ahead of tailing
 *                readers (ks_log_prefill), retention, the stats files.
 *   klog-cleaner log.cleaner.threads per instance (the maint module):
 *                compaction passes.
 *   klog-groups  the groups' timer (started by the first group call):
 *                expires members, ends rebalances, notices topic changes.
 *   klog-repl-*  a replicated instance's (the replication module,
 *                lib/replication/module.c): a fetcher per peer, the channel
 *                to the controller, a pusher per node while this node is
 *                the controller, a tick.  Network threads in the sense
 *                below; a follower's append (and its sync) runs on its
 *                fetcher, HW advances and their acknowledgement
 *                completions on a fetcher or a server thread.
 *   io-wq        the kernel's io_uring workers, for requests a ring cannot
 *                complete inline.  They run no klog code and take no lock;
 *                each klog op waits on its own ring's completions.
 *
 * Locks, outermost first.  A thread may take a lock only if it holds none
 * listed after it; the leaves at the end are taken last and held briefly.
 *   group      r->mu (groups, members) -> r->omu (offsets store).  A commit
 *              holds both across its append (and its fdatasync), and a
 *              first commit creates __consumer_offsets under them (topic
 *              admin: mu).  r->tmu is only the timer's sleep.
 *   topic      budget_mu: make_room, called by an appender holding no log
 *              lock; under it, mu (a snapshot), then one log at a time
 *              (ks_log_drop_oldest: maint_mu -> append_mu).
 *   topic      mu: the topic table, topics.meta, overrides, the event
 *              queue.  Admin calls hold it across topics.meta writes and log
 *              open, reconfigure, abandon and renames; lookups and
 *              snapshots hold it for the copy only.  Never held across an
 *              append or a cleaning pass.
 *   partition  emu (lib/partition: the leader-epoch cache) -> that log's
 *              maint_mu, append_mu: held across the cache's file writes
 *              (kpart_become_leader writes under the log's append_mu,
 *              kpart_truncate_to after its truncation).  Appends and reads
 *              never take it.
 *   storage    per log: maint_mu -> append_mu -> {ckpt_mu, pf_mu, seg_mu,
 *              sync_mu} (storage/internal.h).  A thread holds the locks of
 *              one log at a time.
 *   leaves     topic maint_mu: cleaner state and rate limiter; taken alone,
 *                or inside a log's maint_mu (the throttle callback of a
 *                cleaning pass, which may sleep on maint_cv there).
 *              topic bg_mu: the background thread's sleep; taken alone, or
 *                inside a log's append_mu (the prefill hook).
 *              partition lmu (waiters, listeners) and amu (the ack queue,
 *                the HW mode) (lib/partition): never held together, never
 *                across I/O or a completion; the log's listener runs after
 *                its append_mu is released, and takes lmu.  Acknowledgement
 *                completions (delivery reports) run with neither held: on
 *                the appending thread while the HW is the LEO, on the
 *                thread that advances the HW once a partition is replicated.
 *              stats_mu -> a consumer's st_mu (its stats callback).
 *              producer acc->mu -> {mem_mu, q_mu}; codec_mu; p->mu.  Never
 *                held across a call into lib/topic or lib/partition: a
 *                drainer drops acc->mu before kpart_append, a lookup takes the
 *                topic reference before p->mu.
 *              io: the ring pool's mu (may wait for a free ring, which is
 *                handed back without any other lock); io_fault's mu.
 *   ev_mu      (topic events) is only ever try-locked, so it orders nothing:
 *              the deliverer holds it while handlers run and takes mu
 *              under it.
 * No klog lock is held while a user callback runs (delivery reports, the
 * partitioner, rebalance callbacks), except log_mu around the log callback
 * (klog_set_log_cb), which only klog_set_log_cb also takes.  Lines met
 * under a lock (a failed fsync under a log's append_mu, the budget's
 * deletions under budget_mu) are queued under logq_mu (a leaf) and
 * delivered by the background thread.  A
 * topic reference can be dropped anywhere; the last one of a deleted topic
 * closes its logs and removes its directories on that thread, under
 * whatever it holds (all of which ranks above storage).
 *
 * Lock-free readers: a topic's nparts and parts (acquire), its conf
 * (klog__conf_publish), the logs' offsets and segment sizes (acquire), the
 * registry's seq.
 *
 * Where a network thread joins (a Kafka front end, replication fetchers):
 * it is an application thread.  It calls the public API (producer,
 * consumer, the coordinator) and the partition layer, holding no klog lock
 * between calls; it never takes mu or a log lock itself, never keeps a
 * topic-table lock across I/O (look up with klog__topic_get, keep the
 * reference, release mu at once), and treats its own locks as ranking
 * above every klog lock: what klog calls back (delivery reports, topic
 * events, partition listeners) must not take a lock the network thread
 * holds while it calls into klog.  Calls that block (acks=all appends,
 * flush, poll with a timeout) belong on worker threads, not on an event
 * loop.  A replicator's follower appends as an appender does (storage
 * locks, then make_room's budget_mu -> mu) and its threads are a module's,
 * started after the partitions open and stopped after the groups.
 */
struct klog {
    char dir[4096];
    int lock_fd;
    /* read.only: no lock, nothing written; the background thread follows
     * the writer of another process instead (follow.c) */
    bool read_only;
    int follow_efd;       /* wakes the follow thread to stop (-1: none) */
    kio *io;
    klog_conf *conf;

    pthread_mutex_t mu;
    kt_topic **topics;   /* sorted by name */
    size_t ntopics, cap;
    uint64_t tomb_seq;

    pthread_t bg;
    bool bg_running;
    bool stopping;        /* under bg_mu */
    bool bg_prefill;      /* a log asked for a background prefill (under bg_mu) */
    pthread_mutex_t bg_mu;
    pthread_cond_t bg_cv;
    int64_t next_retention_ms; /* bg thread only */

    /* disk budget (ks_space is shared by every partition log) */
    ks_space space;
    uint64_t meta_bytes;  /* topics.meta's blocks, counted in space (under mu) */
    /* caps on open files and index memory, shared likewise (maint.c makes
     * it before any log opens and frees it after they all closed) */
    ks_cache *cache;
    pthread_mutex_t budget_mu;

    /* cleaner threads */
    pthread_mutex_t maint_mu;
    pthread_cond_t maint_cv;
    bool maint_stop;                      /* under maint_mu */
    pthread_t cleaners[KT_CLEANERS_MAX];
    unsigned ncleaners;                   /* the opening/closing thread's only: no
                                           * cleaner reads it (being_cleaned) */
    ks_log *cleaning[KT_CLEANERS_MAX];    /* logs being cleaned (under maint_mu) */
    double tokens;                        /* rate limiter: bytes allowed now */
    int64_t tokens_at_ns;
    _Atomic uint64_t cleaner_passes, cleaner_bytes_read, cleaner_bytes_written;

    /* modules (topic.h), fixed at open; nstarted and ninit move only on
     * the opening and closing thread */
    const kt_module *const *mods;
    unsigned nmods, ninit, nstarted;
    void *mod_state[KT_MODULES_MAX];
    /* modules bound after open in the place of mods[i] (klog__module_bind):
     * bound[i] is published (release) once its state is set, and never
     * changes after; bind_mu serialises the binders */
    const kt_module *_Atomic bound[KT_MODULES_MAX];
    void *bound_state[KT_MODULES_MAX];
    bool bound_started[KT_MODULES_MAX];
    pthread_mutex_t bind_mu;
    /* topic events: queued under mu, delivered under ev_mu (only ever
     * try-locked, so it never blocks anyone; see events_deliver) */
    struct kt_evnode *evq_head, *evq_tail;
    pthread_mutex_t ev_mu;

    /* statistics: registered producers and consumers (stats.c) */
    pthread_mutex_t stats_mu;
    kt_handle *handles;
    int64_t next_stats_ms;   /* bg thread: statistics.interval.ms */

    /* klog_set_log_cb: called under log_mu (klog__log) */
    pthread_mutex_t log_mu;
    klog_log_cb log_cb;
    void *log_opaque;
    /* lines told under a lock (klog__log_defer), for the background thread
     * (or klog_close) to deliver with none held; under logq_mu, a leaf */
    pthread_mutex_t logq_mu;
    struct kt_logline *logq_head, *logq_tail;
    bool bg_report;       /* under bg_mu: the queue has lines */
    /* the last failure each background job told (0 after a success), so
     * that a failure repeating at every tick is told once */
    _Atomic int retention_err, cleaner_err, budget_err, stats_err;
    bool stats_written;   /* bg thread: klog_close removes the files */

    /* tests: a clock for retention (ms); NULL = wall clock */
    int64_t (*clock_ms)(void *arg);
    void *clock_arg;
};

/* follow.c: the background thread of a read-only instance: the logs
 * follow their writer (inotify on the partition directories, and a
 * periodic look). */
void *klog__follow_main(void *arg);

/* maint.c (klog__maint_module: init sets up the disk budget and the
 * cleaners' locks, before any log opens; start starts the cleaner threads;
 * stop joins them; fini destroys the locks, after the logs closed). */
/* Retention over every partition, when the interval has passed (bg thread). */
void klog__maint_retention(klog *k, bool force);

/* stats.c: write DIR/stats.json and DIR/stats.prom when
 * statistics.interval.ms has passed (bg thread), stamped with the writer's
 * pid, the time and the interval; klog__stats_remove deletes them (at close,
 * after the bg thread stopped). */
void klog__stats_tick(klog *k);
void klog__stats_remove(klog *k);

/* instance.c: tell klog_set_log_cb's callback (if any) one line, printf
 * style, now, on this thread: only where no klog lock is held (the
 * callback runs under log_mu alone).  Under a lock, klog__log_defer queues
 * the line (logq_mu, then bg_mu: leaves) and wakes the background thread,
 * which delivers it with klog__log_flush (so does klog_close, last). */
void klog__log(klog *k, int level, int err, const char *facility, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void klog__log_defer(klog *k, int level, int err, const char *facility, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void klog__log_flush(klog *k);

/* For tests (not API): set the clock retention uses for every log opened
 * afterwards and for the retention check itself. */
void klog__set_clock(klog *k, int64_t (*clock_ms)(void *), void *arg);

#endif
