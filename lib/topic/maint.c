/*
 * lib/topic/maint.c - what keeps the instance's disk bounded: retention
 * (on the background thread), the disk budget (on the appending thread,
 * through ks_space.make_room) and the log cleaner (its own threads).
 *
 * Policies (per topic, cleanup.policy):
 *   delete          retention.ms / retention.bytes apply; the budget may
 *                   delete its oldest segments.
 *   compact         the cleaner keeps the latest record per key; neither
 *                   retention nor the budget deletes anything.
 *   compact,delete  both.
 *
 * Disk budget (disk.budget.bytes, disk.budget.policy):
 *   delete-oldest   an append that would pass the budget first deletes the
 *                   oldest segment (largest timestamp smallest) among all
 *                   partitions of delete-policy topics; when none has a
 *                   sealed segment, the partition whose active segment is
 *                   oldest is rolled and that segment deleted.  Nothing left
 *                   to delete: KLOG_EDISKFULL.
 *   refuse          the append fails with KLOG_EDISKFULL until retention,
 *                   DeleteRecords or a topic deletion frees space.
 *
 * Cleaner threads (log.cleaner.threads) pick the dirtiest compacted
 * partition above its min.cleanable.dirty.ratio, run one pass, and sleep
 * log.cleaner.backoff.ms when there is none.  Their I/O shares one token
 * bucket (log.cleaner.io.max.bytes.per.second); klog_close wakes them from
 * it and a pass stops at its next chunk (about 1 MiB).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <klog/klog.h>

#include "common/common.h"
#include "topic/internal.h"

static int64_t now_ms(klog *k)
{
    return k->clock_ms ? k->clock_ms(k->clock_arg) : klog__wall_ms();
}

void klog__set_clock(klog *k, int64_t (*clock_ms)(void *), void *arg)
{
    k->clock_ms = clock_ms;
    k->clock_arg = arg;
}

static bool policy_deletes(const kt_topic *t)
{
    return klog__conf_int(t->conf, KC_CLEANUP_POLICY) != KC_CLEANUP_COMPACT;
}

static bool policy_compacts(const kt_topic *t)
{
    return klog__conf_int(t->conf, KC_CLEANUP_POLICY) != KC_CLEANUP_DELETE;
}

/* ---- retention ----------------------------------------------------------------- */

/* A replicated partition's retention and cleaning stop at its high
 * watermark, as Kafka's replicas' do: a record not committed yet is never
 * deleted or compacted away under the replicas still copying it (the
 * disk budget, an emergency, is not bound). */
static void hw_bound(kpart *p, ks_retention *r)
{
    r->bounded = kpart_replicated(p);
    r->bound = r->bounded ? kpart_high_watermark(p) : 0;
}

static void hw_bound_clean(kpart *p, ks_clean_config *cc)
{
    cc->bound = kpart_replicated(p) ? kpart_high_watermark(p) : INT64_MAX;
}

/* maint_mu held.  Every slot, not the first ncleaners: ncleaners belongs
 * to the thread that starts and stops the cleaners, and a cleaner may claim
 * its slot before the count covers it (unused slots hold NULL). */
static bool being_cleaned(klog *k, ks_log *l)
{
    for (unsigned i = 0; i < KT_CLEANERS_MAX; i++)
        if (k->cleaning[i] == l)
            return true;
    return false;
}


void klog__maint_retention(klog *k, bool force)
{
    int64_t now = now_ms(k);
    if (!force && now < k->next_retention_ms)
        return;
    k->next_retention_ms = now + klog__conf_int(k->conf, KC_RETENTION_CHECK_MS);
    kt_topic **snap;
    ssize_t n = klog__topics_snapshot(k, &snap);
    if (n < 0)
        return;
    bool skipped = false;
    int fail = 0;
    for (ssize_t i = 0; i < n; i++) {
        kt_topic *t = snap[i];
        if (!policy_deletes(t) || atomic_load(&t->deleted))
            continue;
        ks_retention r = {
            .retention_ms = klog__conf_int(t->conf, KC_RETENTION_MS),
            .retention_bytes = klog__conf_int(t->conf, KC_RETENTION_BYTES),
        };
        int np = atomic_load_explicit(&t->nparts, memory_order_acquire);
        for (int p = 0; p < np; p++) {
            /* not behind a cleaning pass: this thread also runs the
             * interval syncs (a pass that starts meanwhile only delays
             * them by its length) */
            pthread_mutex_lock(&k->maint_mu);
            bool busy = being_cleaned(k, kpart_log(t->parts[p]));
            pthread_mutex_unlock(&k->maint_mu);
            ks_log *l = kpart_log(t->parts[p]);
            hw_bound(t->parts[p], &r);
            int rc = busy ? 0 : ks_log_retain(l, &r, NULL);
            /* a read-only log told its failure when it failed (part_failed) */
            if (rc < 0 && !ks_log_error(l) && !fail) {
                fail = rc;
                if (rc != atomic_exchange(&k->retention_err, rc))
                    klog__log(k, KLOG_LOG_ERR, rc, "retention", "%s-%d: retention pass failed: %s", t->name, p,
                              klog_strerror(rc));
            }
            skipped |= busy;
        }
    }
    if (!fail)
        atomic_store(&k->retention_err, 0);
    klog__topics_release(snap, (size_t)n);
    /* A partition passed over because a cleaning pass had it is looked at
     * again on the next tick, not a whole interval later (and not never,
     * when the clock does not move: a test's injected one). */
    if (skipped)
        k->next_retention_ms = now;
}

/* ---- disk budget ------------------------------------------------------------------ */

/* Delete the oldest deletable segment of the instance.  Returns bytes freed
 * (> 0), 0 when nothing could go, or -EBUSY when every candidate was being
 * cleaned. */
static int64_t drop_oldest_anywhere(klog *k)
{
    kt_topic **snap;
    ssize_t n = klog__topics_snapshot(k, &snap);
    if (n < 0)
        return n;
    /* Candidates: each partition's oldest sealed segment, tried from the
     * oldest; a partition busy with a cleaning pass is skipped. */
    typedef struct cand { ks_log *log; int64_t ts; const char *topic; int part; } cand;
    size_t nc = 0, cc = 0;
    cand *c = NULL;
    ks_log *oldest_active = NULL;
    const char *oldest_active_topic = NULL;
    int oldest_active_part = 0;
    int64_t oldest_active_ts = INT64_MAX;
    for (ssize_t i = 0; i < n; i++) {
        kt_topic *t = snap[i];
        if (!policy_deletes(t) || atomic_load(&t->deleted))
            continue;
        int np = atomic_load_explicit(&t->nparts, memory_order_acquire);
        for (int p = 0; p < np; p++) {
            int64_t ts;
            uint64_t bytes;
            ks_log *l = kpart_log(t->parts[p]);
            if (ks_log_oldest(l, &ts, &bytes)) {
                /* out of memory: this topic's other partitions are skipped */
                if (klog__vec_reserve(&c, &cc, KLOG_MAX(nc + 1, (size_t)64), sizeof *c) < 0)
                    break;
                c[nc++] = (cand){ l, ts, t->name, p };
            } else if (ks_log_active_age(l, &ts) && (ts < oldest_active_ts || !oldest_active)) {
                /* only a (non-empty) active segment */
                oldest_active_ts = ts;
                oldest_active = l;
                oldest_active_topic = t->name;
                oldest_active_part = p;
            }
        }
    }
    int64_t freed = 0;
    bool busy = false;
    while (nc > 0 && freed == 0) {
        size_t best = 0;
        for (size_t i = 1; i < nc; i++)
            if (c[i].ts < c[best].ts)
                best = i;
        int64_t r = ks_log_drop_oldest(c[best].log, false, true);
        if (r > 0) {
            freed = r;
            /* under budget_mu: queued */
            klog__log_defer(k, KLOG_LOG_NOTICE, 0, "budget",
                            "%s-%d: disk.budget.bytes: deleted the oldest segment (%lld bytes)", c[best].topic,
                            c[best].part, (long long)r);
        }
        else if (r == -EBUSY)
            busy = true;
        c[best] = c[--nc];
    }
    if (freed == 0 && !busy && oldest_active) {
        int64_t r = ks_log_drop_oldest(oldest_active, true, true);
        if (r > 0) {
            freed = r;
            klog__log_defer(k, KLOG_LOG_NOTICE, 0, "budget",
                            "%s-%d: disk.budget.bytes: deleted the active segment, the only one left (%lld bytes)",
                            oldest_active_topic, oldest_active_part, (long long)r);
        }
        else if (r == -EBUSY)
            busy = true;
    }
    free(c);
    klog__topics_release(snap, (size_t)n);
    return freed > 0 ? freed : busy ? -EBUSY : 0;
}

static int make_room(void *arg, ks_log *log, uint64_t need)
{
    (void)log;
    klog *k = arg;
    if (need > k->space.limit)
        return KLOG_EDISKFULL; /* could never fit */
    if (klog__conf_int(k->conf, KC_DISK_BUDGET_POLICY) == KC_BUDGET_REFUSE)
        return KLOG_EDISKFULL;
    pthread_mutex_lock(&k->budget_mu);
    int rc = 0;
    for (int spins = 0; atomic_load(&k->space.used) + need > k->space.limit; spins++) {
        int64_t r = drop_oldest_anywhere(k);
        if (r > 0)
            continue;
        if (r == -EBUSY && spins < 1000) {
            /* every candidate is in a cleaning pass: it ends soon */
            struct timespec ts = { 0, 2 * 1000 * 1000 };
            nanosleep(&ts, NULL);
            continue;
        }
        rc = r < 0 && r != -EBUSY ? (int)r : KLOG_EDISKFULL;
        break;
    }
    pthread_mutex_unlock(&k->budget_mu);
    if (rc < 0 && rc != atomic_exchange(&k->budget_err, rc))
        klog__log(k, KLOG_LOG_WARNING, rc, "budget",
                  "disk.budget.bytes: no segment left to delete for %llu more bytes: appends fail (%s)",
                  (unsigned long long)need, klog_strerror(rc));
    else if (rc == 0)
        atomic_store(&k->budget_err, 0);
    return rc;
}

/* ---- cleaner -------------------------------------------------------------------- */

/* Token bucket shared by the cleaner threads.  Sleeps while the bucket is
 * in debt; returns non-zero when the instance is closing. */
static int throttle(void *arg, uint64_t bytes)
{
    klog *k = arg;
    int64_t rate = klog__conf_int(k->conf, KC_CLEANER_IO_RATE);
    pthread_mutex_lock(&k->maint_mu);
    int stop = k->maint_stop;
    if (rate > 0 && !stop) {
        int64_t now = klog__now_ns();
        k->tokens += (double)(now - k->tokens_at_ns) * (double)rate / 1e9;
        if (k->tokens > (double)rate)
            k->tokens = (double)rate; /* at most one second of burst */
        k->tokens_at_ns = now;
        k->tokens -= (double)bytes;
        while (k->tokens < 0 && !k->maint_stop) {
            int64_t wait_ns = (int64_t)(-k->tokens * 1e9 / (double)rate);
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + wait_ns;
            ts.tv_sec = until / 1000000000;
            ts.tv_nsec = until % 1000000000;
            pthread_cond_timedwait(&k->maint_cv, &k->maint_mu, &ts);
            now = klog__now_ns();
            k->tokens += (double)(now - k->tokens_at_ns) * (double)rate / 1e9;
            k->tokens_at_ns = now;
        }
        stop = k->maint_stop;
    }
    pthread_mutex_unlock(&k->maint_mu);
    return stop;
}

static void clean_config(klog *k, const kt_topic *t, ks_clean_config *cc)
{
    ks_clean_config_init(cc);
    cc->delete_retention_ms = klog__conf_int(t->conf, KC_DELETE_RETENTION_MS);
    cc->min_compaction_lag_ms = klog__conf_int(t->conf, KC_MIN_COMPACTION_LAG_MS);
    cc->min_dirty_ratio = (double)klog__conf_int(t->conf, KC_MIN_CLEANABLE_DIRTY_RATIO) / KC_RATIO_ONE;
    cc->map_bytes = (size_t)klog__conf_int(k->conf, KC_CLEANER_DEDUPE_BYTES);
    cc->throttle = throttle;
    cc->throttle_arg = k;
}

/* Pick the dirtiest partition above its threshold and clean it once.
 * Returns true when a pass ran. */
static bool clean_one(klog *k, unsigned self)
{
    kt_topic **snap;
    ssize_t n = klog__topics_snapshot(k, &snap);
    if (n < 0)
        return false;
    ks_log *best = NULL;
    kt_topic *best_t = NULL;
    int best_p = 0;
    double best_ratio = -1;
    for (ssize_t i = 0; i < n; i++) {
        kt_topic *t = snap[i];
        if (!policy_compacts(t) || atomic_load(&t->deleted))
            continue;
        ks_clean_config cc;
        clean_config(k, t, &cc);
        int np = atomic_load_explicit(&t->nparts, memory_order_acquire);
        for (int p = 0; p < np; p++) {
            ks_log *l = kpart_log(t->parts[p]);
            pthread_mutex_lock(&k->maint_mu);
            bool busy = being_cleaned(k, l);
            pthread_mutex_unlock(&k->maint_mu);
            if (busy)
                continue;
            hw_bound_clean(t->parts[p], &cc);
            double r = ks_log_dirty_ratio(l, &cc);
            if (r > 0 && r >= cc.min_dirty_ratio && r > best_ratio) {
                best_ratio = r;
                best = l;
                best_t = t;
                best_p = p;
            }
        }
    }
    bool ran = false;
    if (best) {
        pthread_mutex_lock(&k->maint_mu);
        bool claimed = !being_cleaned(k, best) && !k->maint_stop;
        if (claimed)
            k->cleaning[self] = best;
        pthread_mutex_unlock(&k->maint_mu);
        if (claimed) {
            if (policy_deletes(best_t)) {
                /* compact,delete: retention first (the background thread
                 * skips a partition while it is being cleaned, so a busy
                 * partition gets its retention here) */
                ks_retention rr = {
                    .retention_ms = klog__conf_int(best_t->conf, KC_RETENTION_MS),
                    .retention_bytes = klog__conf_int(best_t->conf, KC_RETENTION_BYTES),
                };
                hw_bound(best_t->parts[best_p], &rr);
                (void)ks_log_retain(best, &rr, NULL);
            }
            ks_clean_config cc;
            clean_config(k, best_t, &cc);
            hw_bound_clean(best_t->parts[best_p], &cc);
            ks_clean_stats st;
            int rc = ks_log_clean(best, &cc, &st);
            ran = rc == 0 && st.cleaned;
            /* told once while the failure repeats; a read-only log told its own */
            if (rc < 0 && rc != -ECANCELED && !ks_log_error(best)) {
                if (rc != atomic_exchange(&k->cleaner_err, rc))
                    klog__log(k, KLOG_LOG_ERR, rc, "cleaner", "%s-%d: compaction pass failed: %s", best_t->name,
                              best_p, klog_strerror(rc));
            } else if (rc == 0) {
                atomic_store(&k->cleaner_err, 0);
            }
            if (ran) {
                atomic_fetch_add(&k->cleaner_passes, 1);
                atomic_fetch_add(&k->cleaner_bytes_read, st.bytes_read);
                atomic_fetch_add(&k->cleaner_bytes_written, st.bytes_written);
            }
            pthread_mutex_lock(&k->maint_mu);
            k->cleaning[self] = NULL;
            pthread_mutex_unlock(&k->maint_mu);
        }
    }
    klog__topics_release(snap, (size_t)n);
    return ran;
}

typedef struct cleaner_arg { klog *k; unsigned self; } cleaner_arg;

static void *cleaner_main(void *arg)
{
    klog *k = ((cleaner_arg *)arg)->k;
    unsigned self = ((cleaner_arg *)arg)->self;
    pthread_setname_np(pthread_self(), "klog-cleaner");
    free(arg);
    int64_t backoff = klog__conf_int(k->conf, KC_CLEANER_BACKOFF_MS);
    for (;;) {
        pthread_mutex_lock(&k->maint_mu);
        bool stop = k->maint_stop;
        pthread_mutex_unlock(&k->maint_mu);
        if (stop)
            break;
        if (clean_one(k, self))
            continue;
        pthread_mutex_lock(&k->maint_mu);
        if (!k->maint_stop) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t until = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + backoff * 1000000;
            ts.tv_sec = until / 1000000000;
            ts.tv_nsec = until % 1000000000;
            pthread_cond_timedwait(&k->maint_cv, &k->maint_mu, &ts);
        }
        pthread_mutex_unlock(&k->maint_mu);
    }
    return NULL;
}

/* ---- the module ------------------------------------------------------------------ */

/* Before any log opens: the logs take &k->space and k->cache. */
static int maint_init(klog *k, void **state, char *errbuf, size_t errsize)
{
    (void)state;
    int rc = ks_cache_new(&k->cache, (unsigned)klog__conf_int(k->conf, KC_MAX_OPEN_FILES),
                          (uint64_t)klog__conf_int(k->conf, KC_INDEX_CACHE_BYTES));
    if (rc < 0)
        return klog__errf(errbuf, errsize, rc, "%s", klog_strerror(rc));
    pthread_mutex_init(&k->budget_mu, NULL);
    pthread_mutex_init(&k->maint_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->maint_cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_store(&k->space.used, 0);
    k->space.limit = (uint64_t)klog__conf_int(k->conf, KC_DISK_BUDGET_BYTES);
    k->space.make_room = make_room;
    k->space.arg = k;
    k->tokens_at_ns = klog__now_ns();
    return 0;
}

static void maint_stop(klog *k, void *state);

/* Cleaner threads start once the topics are open. */
static int maint_start(klog *k, void *state, char *errbuf, size_t errsize)
{
    (void)state;
    if (!klog__conf_int(k->conf, KC_CLEANER_ENABLE) || k->read_only) /* a reader cleans nothing */
        return 0;
    unsigned n = (unsigned)klog__conf_int(k->conf, KC_CLEANER_THREADS);
    int rc = 0;
    for (unsigned i = 0; i < n && i < KT_CLEANERS_MAX && rc == 0; i++) {
        cleaner_arg *a = malloc(sizeof *a);
        if (!a) {
            rc = -ENOMEM;
            break;
        }
        *a = (cleaner_arg){ k, i };
        if (pthread_create(&k->cleaners[i], NULL, cleaner_main, a) != 0) {
            free(a);
            rc = -EAGAIN;
            break;
        }
        k->ncleaners++;
    }
    if (rc < 0) {
        /* klog__open stops only the modules whose start succeeded */
        maint_stop(k, state);
        return klog__errf(errbuf, errsize, rc, "cleaner threads: %s", klog_strerror(rc));
    }
    return 0;
}

/* A pass in progress stops at its next chunk. */
static void maint_stop(klog *k, void *state)
{
    (void)state;
    pthread_mutex_lock(&k->maint_mu);
    k->maint_stop = true;
    pthread_cond_broadcast(&k->maint_cv);
    pthread_mutex_unlock(&k->maint_mu);
    for (unsigned i = 0; i < k->ncleaners; i++)
        pthread_join(k->cleaners[i], NULL);
    k->ncleaners = 0;
}

/* After the logs closed: they used the budget until then. */
static int maint_fini(klog *k, void *state)
{
    (void)state;
    pthread_mutex_destroy(&k->budget_mu);
    pthread_mutex_destroy(&k->maint_mu);
    pthread_cond_destroy(&k->maint_cv);
    ks_cache_free(k->cache);
    k->cache = NULL;
    return 0;
}

const kt_module klog__maint_module = {
    .name = "maint", .init = maint_init, .start = maint_start, .stop = maint_stop, .fini = maint_fini,
};
