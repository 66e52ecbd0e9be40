/*
 * lib/topic/internal.h - the instance object, shared by the files of
 * lib/topic only (instance.c: open/close, topic admin, the background
 * thread; maint.c: retention, the disk budget, the cleaner threads).
 * The layers above see topic.h.
 */
#ifndef KLOG_TOPIC_PRIVATE_H
#define KLOG_TOPIC_PRIVATE_H

#include "topic/topic.h"

#define KT_CLEANERS_MAX 16

/*
 * Locks, in the order they may be taken:
 *   budget_mu  serialises make_room (the disk budget), across appenders
 *   mu         the topic table and the metadata file (held briefly: never
 *              across a log's append or a cleaning pass)
 *   maint_mu   the cleaner threads' shared state, the rate limiter, and
 *              the stop flag's condvar
 *   bg_mu      the background thread's sleep
 * A log's own locks (lib/storage) are taken after any of these, and no
 * storage call is made with mu held except open/close of logs.  One
 * exception: a log's prefill hook takes bg_mu under the log's append lock
 * (only to set bg_prefill and signal); nothing takes a log lock with bg_mu
 * held.
 */
struct klog {
    char dir[4096];
    int lock_fd;
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

    bool maint_ready;     /* klog__maint_init done */
    /* disk budget (ks_space is shared by every partition log) */
    ks_space space;
    pthread_mutex_t budget_mu;

    /* cleaner threads */
    pthread_mutex_t maint_mu;
    pthread_cond_t maint_cv;
    bool maint_stop;                      /* under maint_mu */
    pthread_t cleaners[KT_CLEANERS_MAX];
    unsigned ncleaners;
    ks_log *cleaning[KT_CLEANERS_MAX];    /* logs being cleaned (under maint_mu) */
    double tokens;                        /* rate limiter: bytes allowed now */
    int64_t tokens_at_ns;
    _Atomic uint64_t cleaner_passes, cleaner_bytes_read, cleaner_bytes_written;

    /* subsystems above lib/topic (klog__ext) */
    pthread_mutex_t ext_mu;
    void *ext[KT_EXT__COUNT];
    void (*ext_free[KT_EXT__COUNT])(void *);

    /* statistics: registered producers and consumers (stats.c) */
    pthread_mutex_t stats_mu;
    kt_handle *handles;
    int64_t next_stats_ms;   /* bg thread: statistics.interval.ms */

    /* tests: a clock for retention (ms); NULL = wall clock */
    int64_t (*clock_ms)(void *arg);
    void *clock_arg;
};

/* maint.c */
int klog__maint_init(klog *k);          /* budget and locks; before topics open */
int klog__maint_start(klog *k);         /* cleaner threads; after topics open */
void klog__maint_stop(klog *k);         /* stop and join the cleaners (close) */
void klog__maint_fini(klog *k);
/* Retention over every partition, when the interval has passed (bg thread). */
void klog__maint_retention(klog *k, bool force);
/* Snapshot the topic table with a reference on each (caller frees with
 * klog__topics_release).  Returns the count, or -ENOMEM. */
ssize_t klog__topics_snapshot(klog *k, kt_topic ***out);
void klog__topics_release(kt_topic **snap, size_t n);

/* stats.c: write DIR/stats.json and DIR/stats.prom when
 * statistics.interval.ms has passed (bg thread). */
void klog__stats_tick(klog *k);

/* For tests (not API): set the clock retention uses for every log opened
 * afterwards and for the retention check itself. */
void klog__set_clock(klog *k, int64_t (*clock_ms)(void *), void *arg);

#endif
