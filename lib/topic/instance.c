/*
 * lib/topic/instance.c - klog_open/klog_close, topic administration, the
 * topic metadata file and the instance's background thread.
 *
 * Locks: k->mu guards the topic table and the metadata file (every change
 * rewrites it under mu).  It is never held while a partition log appends;
 * producers and consumers hold topic references instead.  internal.h has
 * the whole order and the threads.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <klog/klog.h>

#include "common/common.h"
#include "storage/layout.h"
#include "topic/internal.h"

#define META_NAME KL_META_NAME
#define META_MAX (4u << 20)
#define TICK_MS 100

kio *klog__io(struct klog *k) { return k->io; }

void *klog__module_state(klog *k, const kt_module *m)
{
    for (unsigned i = 0; k && i < k->ninit; i++)
        if (k->mods[i] == m)
            return k->mod_state[i];
    return NULL;
}
const klog_conf *klog__conf(struct klog *k) { return k->conf; }

int klog__topic_name_check(const char *name)
{
    if (!name)
        return KLOG_EBADNAME;
    size_t n = strlen(name);
    if (n == 0 || n > KLOG_TOPIC_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return KLOG_EBADNAME;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return KLOG_EBADNAME;
    }
    return 0;
}

/* snprintf into a path buffer; -ENAMETOOLONG instead of a silent cut. */
__attribute__((format(printf, 3, 4))) static int pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int part_dir(char *out, size_t cap, const klog *k, const char *topic, int p, const char *tomb)
{
    return pathf(out, cap, "%s/%s-%d%s", k->dir, topic, p, tomb ? tomb : "");
}

/* Log configuration of a topic's partitions, from its merged conf. */
static void log_config(klog *k, const klog_conf *c, ks_log_config *lc)
{
    ks_log_config_init(lc);
    lc->space = &k->space;
    lc->clock_ms = k->clock_ms;
    lc->clock_arg = k->clock_arg;
    lc->segment_bytes = (uint64_t)klog__conf_int(c, KC_SEGMENT_BYTES);
    lc->segment_ms = klog__conf_int(c, KC_SEGMENT_MS);
    lc->index_interval_bytes = (uint32_t)klog__conf_int(c, KC_INDEX_INTERVAL_BYTES);
    /* max.message.bytes bounds a batch, as in Kafka; leave room for the
     * batch header and one record's framing. */
    lc->max_batch_bytes = (uint32_t)klog__conf_int(c, KC_MAX_MESSAGE_BYTES) + KF_HDR_SIZE + 1024;
    lc->flush_records = (uint64_t)klog__conf_int(c, KC_FLUSH_MESSAGES);
    lc->flush_ms = klog__conf_int(c, KC_FLUSH_MS);
    lc->durability = (lc->flush_records || lc->flush_ms) ? KS_DURABILITY_INTERVAL : KS_DURABILITY_NONE;
}

/* ---- topics ---------------------------------------------------------------- */

/* Remove a (flat) partition directory and its files. */
static void remove_part_dir(klog *k, const char *d)
{
    DIR *dd = opendir(d);
    if (dd) {
        struct dirent *de;
        while ((de = readdir(dd)) != NULL) {
            char f[4700];
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            if (pathf(f, sizeof f, "%s/%s", d, de->d_name) == 0)
                kio_unlink(k->io, f);
        }
        closedir(dd);
    }
    rmdir(d);
}

static void topic_free(kt_topic *t)
{
    int n = atomic_load(&t->nparts);
    for (int p = 0; p < n; p++) {
        if (!atomic_load(&t->deleted)) {
            kpart_close(t->parts[p]);
            continue;
        }
        /* Deleted: its directories were renamed aside; drop them unwritten. */
        kpart_abandon(t->parts[p]);
        char d[4400];
        if (part_dir(d, sizeof d, t->k, t->name, p, t->tomb) == 0)
            remove_part_dir(t->k, d);
    }
    free(t->parts);
    klog_conf_free(t->conf);
    klog_conf_free(t->overrides);
    free(t);
}

kt_topic *klog__topic_get(klog *k, const char *name)
{
    if (!k || !name)
        return NULL;
    kt_topic *t = NULL;
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < k->ntopics; i++)
        if (!strcmp(k->topics[i]->name, name)) {
            t = k->topics[i];
            atomic_fetch_add(&t->refs, 1);
            break;
        }
    pthread_mutex_unlock(&k->mu);
    return t;
}

void klog__topic_ref(kt_topic *t) { atomic_fetch_add(&t->refs, 1); }

void klog__topic_put(kt_topic *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1)
        topic_free(t);
}

ssize_t klog__topics_snapshot(klog *k, kt_topic ***out)
{
    pthread_mutex_lock(&k->mu);
    size_t n = k->ntopics;
    kt_topic **snap = malloc((n ? n : 1) * sizeof *snap);
    for (size_t i = 0; snap && i < n; i++) {
        snap[i] = k->topics[i];
        atomic_fetch_add(&snap[i]->refs, 1);
    }
    pthread_mutex_unlock(&k->mu);
    if (!snap)
        return -ENOMEM;
    *out = snap;
    return (ssize_t)n;
}

void klog__topics_release(kt_topic **snap, size_t n)
{
    for (size_t i = 0; i < n; i++)
        klog__topic_put(snap[i]);
    free(snap);
}

/* ---- topic events (topic.h: modules) ---------------------------------------- */

typedef struct kt_evnode {
    struct kt_evnode *next;
    kt_event ev;
} kt_evnode;

/* Queue an event (mu held; node allocated beforehand, so that a change
 * never fails for want of its event). */
static void event_queue(klog *k, kt_evnode *e, enum kt_event_kind kind, kt_topic *t, int from, int to)
{
    e->next = NULL;
    e->ev = (kt_event){ .kind = kind, .topic = t, .from = from, .to = to };
    klog__topic_ref(t);
    if (k->evq_tail)
        k->evq_tail->next = e;
    else
        k->evq_head = e;
    k->evq_tail = e;
}

static kt_evnode *event_pop(klog *k)
{
    pthread_mutex_lock(&k->mu);
    kt_evnode *e = k->evq_head;
    if (e && !(k->evq_head = e->next))
        k->evq_tail = NULL;
    pthread_mutex_unlock(&k->mu);
    return e;
}

/*
 * Deliver queued events, in order, to the started modules.  One thread at
 * a time delivers (ev_mu); a thread that finds another one at it returns
 * at once, and that one sees the new event: it looks at the queue again
 * after letting ev_mu go.  So no caller ever waits for ev_mu, and a
 * handler that makes a change itself (a commit creating
 * __consumer_offsets) only queues the event.
 */
static void events_deliver(klog *k)
{
    for (;;) {
        pthread_mutex_lock(&k->mu);
        bool empty = k->evq_head == NULL;
        pthread_mutex_unlock(&k->mu);
        if (empty || pthread_mutex_trylock(&k->ev_mu) != 0)
            return;
        kt_evnode *e;
        while ((e = event_pop(k)) != NULL) {
            for (unsigned i = 0; i < k->nstarted; i++)
                if (k->mods[i]->event)
                    k->mods[i]->event(k, k->mod_state[i], &e->ev);
            klog__topic_put(e->ev.topic);
            free(e);
        }
        pthread_mutex_unlock(&k->ev_mu);
    }
}

static void bg_prefill_hook(void *arg);

/* Open partitions [from, to) of t. */
static int open_parts(klog *k, kt_topic *t, int from, int to)
{
    ks_log_config lc;
    log_config(k, t->conf, &lc);
    for (int p = from; p < to; p++) {
        char d[4400];
        int rc = part_dir(d, sizeof d, k, t->name, p, NULL);
        if (rc == 0)
            rc = kpart_open(&t->parts[p], k->io, d, &lc);
        if (rc == 0)
            ks_log_set_prefill_hook(kpart_log(t->parts[p]), bg_prefill_hook, k);
        if (rc < 0) {
            for (int q = from; q < p; q++) {
                kpart_close(t->parts[q]);
                t->parts[q] = NULL;
            }
            return rc;
        }
    }
    atomic_store_explicit(&t->nparts, to, memory_order_release);
    return 0;
}

static int topic_new(klog *k, const char *name, const klog_conf *overrides, kt_topic **out)
{
    kt_topic *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->k = k;
    atomic_store(&t->refs, 1); /* the table's */
    int rc = -ENOMEM;
    if (!(t->parts = calloc(KT_MAX_PARTITIONS, sizeof *t->parts)) || klog_conf_dup(k->conf, &t->conf) < 0 ||
        klog_conf_new(&t->overrides) < 0 || klog__conf_merge(t->overrides, overrides) < 0 ||
        klog__conf_merge(t->conf, overrides) < 0)
        goto fail;
    *out = t;
    return 0;
fail:
    topic_free(t);
    return rc;
}

/* Insert into the sorted table (mu held). */
static int table_insert(klog *k, kt_topic *t)
{
    int rc = klog__vec_reserve(&k->topics, &k->cap, k->ntopics + 1, sizeof *k->topics);
    if (rc < 0)
        return rc;
    size_t i = k->ntopics;
    while (i > 0 && strcmp(k->topics[i - 1]->name, t->name) > 0) {
        k->topics[i] = k->topics[i - 1];
        i--;
    }
    k->topics[i] = t;
    k->ntopics++;
    return 0;
}

/* ---- metadata file -------------------------------------------------------------- */

/* Serialise the table (mu held) and write it atomically. */
static int meta_write(klog *k)
{
    size_t cap = 4096 + k->ntopics * 1024;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    size_t len = (size_t)snprintf(buf, cap, "%s", KL_META_HEAD);
    for (size_t i = 0; i < k->ntopics; i++) {
        kt_topic *t = k->topics[i];
        len += (size_t)snprintf(buf + len, cap - len, "topic %s %d\n", t->name, atomic_load(&t->nparts));
        char kv[2048];
        int n = klog__conf_dump(t->overrides, KC_SCOPE_TOPIC, kv, sizeof kv);
        for (char *line = n > 0 ? kv : NULL, *nl; line && *line; line = nl + 1) {
            nl = strchr(line, '\n');
            *nl = '\0';
            len += (size_t)snprintf(buf + len, cap - len, "  %s\n", line);
        }
    }
    len = kl_meta_seal(buf, len, cap);
    int rc = len < cap ? ks_write_atomic(k->io, k->dir, META_NAME, buf, len) : -ENOSPC;
    free(buf);
    return rc;
}

/* Load the table from topics.meta and open every partition. */
static int meta_load(klog *k, char *errbuf, size_t errsize)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", k->dir, META_NAME);
    char *buf = malloc(META_MAX + 1);
    if (!buf)
        return -ENOMEM;
    ssize_t n = ks_read_small(k->io, path, buf, META_MAX);
    if (n == -ENOENT) {
        free(buf);
        return 0;
    }
    if (n < 0) {
        free(buf);
        return klog__errf(errbuf, errsize, (int)n, "%s: %s", path, klog_strerror((int)n));
    }
    kl_meta m;
    char why[300];
    int rc = kl_meta_parse(buf, (size_t)n, &m, why, sizeof why);
    free(buf);
    if (rc == KLOG_ECORRUPT)
        return klog__errf(errbuf, errsize, rc, "%s: %s", path, why);
    for (size_t i = 0; rc == 0 && i < m.ntopics; i++) {
        const kl_meta_topic *mt = &m.topics[i];
        if (klog__topic_name_check(mt->name) < 0 || mt->partitions > KT_MAX_PARTITIONS) {
            rc = klog__errf(errbuf, errsize, KLOG_ECORRUPT, "%s: bad topic \"%s\" with %d partitions", path,
                            mt->name, mt->partitions);
            break;
        }
        klog_conf *ov = NULL;
        if (klog_conf_new(&ov) < 0) {
            rc = -ENOMEM;
            break;
        }
        for (size_t j = 0; rc == 0 && j < mt->nkv; j++)
            rc = klog_conf_set(ov, mt->kv[j].key, mt->kv[j].value, errbuf, errsize);
        kt_topic *t = NULL;
        if (rc == 0)
            rc = topic_new(k, mt->name, ov, &t);
        if (rc == 0 && (rc = open_parts(k, t, 0, mt->partitions)) < 0)
            klog__errf(errbuf, errsize, rc, "topic %s: %s", t->name, klog_strerror(rc));
        if (rc == 0 && (rc = table_insert(k, t)) == 0)
            t = NULL;
        if (t)
            topic_free(t);
        klog_conf_free(ov);
    }
    kl_meta_free(&m);
    return rc;
}

/* Remove partition directories that belong to no topic: left by a delete
 * that crashed before it finished, or renamed aside (".deleted-N"). */
static void sweep_orphans(klog *k)
{
    DIR *d = opendir(k->dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (nm[0] == '.' || de->d_type != DT_DIR)
            continue;
        bool owned = false;
        for (size_t i = 0; i < k->ntopics && !owned; i++) {
            kt_topic *t = k->topics[i];
            size_t tl = strlen(t->name);
            if (strncmp(nm, t->name, tl) || nm[tl] != '-')
                continue;
            char *e;
            long p = strtol(nm + tl + 1, &e, 10);
            owned = *e == '\0' && e != nm + tl + 1 && p >= 0 && p < atomic_load(&t->nparts);
        }
        bool looks_ours = strstr(nm, ".deleted-") != NULL;
        const char *dash = strrchr(nm, '-');
        if (!looks_ours && dash && dash[1]) {
            char *e;
            strtol(dash + 1, &e, 10);
            looks_ours = *e == '\0';
        }
        if (owned || !looks_ours)
            continue;
        char sub[4400], f[4700];
        /* Only a directory that looks like a partition log is removed. */
        struct stat stt;
        char f2[4700];
        if (pathf(sub, sizeof sub, "%s/%s", k->dir, nm) < 0 || pathf(f, sizeof f, "%s/recovery.ckpt", sub) < 0 ||
            pathf(f2, sizeof f2, "%s/.lock", sub) < 0)
            continue;
        if (stat(f, &stt) != 0 && stat(f2, &stt) != 0 && !strstr(nm, ".deleted-"))
            continue;
        DIR *dd = opendir(sub);
        if (!dd)
            continue;
        struct dirent *fe;
        while ((fe = readdir(dd)) != NULL) {
            if (!strcmp(fe->d_name, ".") || !strcmp(fe->d_name, ".."))
                continue;
            if (pathf(f, sizeof f, "%s/%s", sub, fe->d_name) == 0)
                kio_unlink(k->io, f);
        }
        closedir(dd);
        rmdir(sub);
    }
    closedir(d);
}

/* ---- background work ---------------------------------------------------------------- */

/* A partition log asks for its tail to be zero-filled ahead of durable
 * appends (ks_log_set_prefill_hook): wake the background thread for it. */
static void bg_prefill_hook(void *arg)
{
    klog *k = arg;
    pthread_mutex_lock(&k->bg_mu);
    k->bg_prefill = true;
    pthread_cond_signal(&k->bg_cv);
    pthread_mutex_unlock(&k->bg_mu);
}

/* The background thread: every TICK_MS, interval syncs, rolls by age,
 * retention and statistics; in between, as soon as a log asks, the
 * prefills of zeroed tails (each a few milliseconds of writes that would
 * otherwise fall on an appender). */
static void *bg_main(void *arg)
{
    klog *k = arg;
    pthread_setname_np(pthread_self(), "klog-maint");
    pthread_mutex_lock(&k->bg_mu);
    uint64_t next_tick = klog__now_ns() + TICK_MS * 1000000ull;
    while (!k->stopping) {
        if (!k->bg_prefill) {
            struct timespec ts = { (time_t)(next_tick / 1000000000ull), (long)(next_tick % 1000000000ull) };
            pthread_cond_timedwait(&k->bg_cv, &k->bg_mu, &ts); /* bg_cv is on CLOCK_MONOTONIC */
        }
        if (k->stopping)
            break;
        bool prefill = k->bg_prefill;
        k->bg_prefill = false;
        uint64_t now = klog__now_ns();
        bool tick = now >= next_tick;
        if (tick)
            next_tick = now + TICK_MS * 1000000ull;
        pthread_mutex_unlock(&k->bg_mu);
        kt_topic **snap;
        ssize_t n = klog__topics_snapshot(k, &snap);
        for (ssize_t i = 0; i < n; i++) {
            int np = atomic_load_explicit(&snap[i]->nparts, memory_order_acquire);
            for (int p = 0; p < np; p++) {
                if (prefill)
                    (void)ks_log_prefill(kpart_log(snap[i]->parts[p])); /* failures cost speed only */
                if (tick)
                    (void)ks_log_tick(kpart_log(snap[i]->parts[p])); /* errors stick in the log */
            }
        }
        if (n >= 0)
            klog__topics_release(snap, (size_t)n);
        if (tick) {
            klog__maint_retention(k, false);
            klog__stats_tick(k);
        }
        pthread_mutex_lock(&k->bg_mu);
    }
    pthread_mutex_unlock(&k->bg_mu);
    return NULL;
}

/* The background module: the thread above, started once the topics are
 * open and joined before they close. */
static int bg_start(klog *k, void *state, char *errbuf, size_t errsize)
{
    (void)state;
    if (pthread_create(&k->bg, NULL, bg_main, k) != 0)
        return klog__errf(errbuf, errsize, -EAGAIN, "background thread: %s", klog_strerror(-EAGAIN));
    k->bg_running = true;
    return 0;
}

static void bg_stop(klog *k, void *state)
{
    (void)state;
    if (!k->bg_running)
        return;
    pthread_mutex_lock(&k->bg_mu);
    k->stopping = true;
    pthread_cond_broadcast(&k->bg_cv);
    pthread_mutex_unlock(&k->bg_mu);
    pthread_join(k->bg, NULL);
    k->bg_running = false;
}

const kt_module klog__background_module = { .name = "background", .start = bg_start, .stop = bg_stop };

/* ---- public: instance ------------------------------------------------------------------- */

int klog__open(klog **out, const char *dir, const klog_conf *conf, const kt_module *const *mods, unsigned nmods,
               char *errbuf, size_t errsize)
{
    if (!out || nmods > KT_MODULES_MAX || (nmods && !mods))
        return -EINVAL;
    *out = NULL;
    if (!dir || !*dir)
        return klog__errf(errbuf, errsize, -EINVAL, "no data directory given");
    klog *k = calloc(1, sizeof *k);
    if (!k)
        return -ENOMEM;
    k->lock_fd = -1;
    k->mods = mods;
    k->nmods = nmods;
    pthread_mutex_init(&k->mu, NULL);
    pthread_mutex_init(&k->ev_mu, NULL);
    pthread_mutex_init(&k->stats_mu, NULL);
    pthread_mutex_init(&k->bg_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->bg_cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc;
    if (snprintf(k->dir, sizeof k->dir, "%s", dir) >= (int)sizeof k->dir) {
        rc = klog__errf(errbuf, errsize, -ENAMETOOLONG, "%s: path too long", dir);
        goto fail;
    }
    if ((rc = conf ? klog_conf_dup(conf, &k->conf) : klog_conf_new(&k->conf)) < 0)
        goto fail;
    static const enum kio_backend backends[] = { KIO_BACKEND_AUTO, KIO_BACKEND_URING, KIO_BACKEND_POSIX };
    kio_options opt = { .backend = backends[klog__conf_int(k->conf, KC_IO_BACKEND)] };
    const void *io_arg, *io_methods = klog__conf_io_methods(k->conf, &io_arg); /* testing */
    if ((rc = io_methods ? kio_open_methods(&k->io, io_methods, io_arg) : kio_open(&k->io, &opt)) < 0) {
        klog__errf(errbuf, errsize, rc, "I/O engine: %s", klog_strerror(rc));
        goto fail;
    }
    if (mkdir(dir, 0755) == 0) {
        char parent[4200];
        snprintf(parent, sizeof parent, "%s/..", dir);
        kio_dirsync(k->io, parent);
    } else if (errno != EEXIST) {
        rc = klog__errf(errbuf, errsize, -errno, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    if ((rc = ks_dirlock_acquire(dir)) < 0) {
        klog__errf(errbuf, errsize, rc, "%s: %s", dir,
             rc == KLOG_ELOCKED ? "locked by another writer (another process or instance has it open)"
                                : klog_strerror(rc));
        goto fail;
    }
    k->lock_fd = rc;
    for (; k->ninit < nmods; k->ninit++) {
        const kt_module *m = mods[k->ninit];
        if (m->init && (rc = m->init(k, &k->mod_state[k->ninit], errbuf, errsize)) < 0)
            goto fail;
    }
    if ((rc = meta_load(k, errbuf, errsize)) < 0)
        goto fail;
    sweep_orphans(k);
    for (; k->nstarted < nmods; k->nstarted++) {
        const kt_module *m = mods[k->nstarted];
        if (m->start && (rc = m->start(k, k->mod_state[k->nstarted], errbuf, errsize)) < 0)
            goto fail;
    }
    *out = k;
    return 0;
fail:
    klog_close(k);
    return rc;
}

KLOG_API int klog_close(klog *k)
{
    if (!k)
        return 0;
    /* Modules stop last first; a stopped module hears no more events. */
    while (k->nstarted > 0) {
        const kt_module *m = k->mods[--k->nstarted];
        if (m->stop)
            m->stop(k, k->mod_state[k->nstarted]);
    }
    for (kt_evnode *e = k->evq_head, *nx; e; e = nx) {
        nx = e->next;
        klog__topic_put(e->ev.topic);
        free(e);
    }
    k->evq_head = k->evq_tail = NULL;
    int rc = 0;
    for (size_t i = 0; i < k->ntopics; i++) {
        kt_topic *t = k->topics[i];
        /* close the logs now (the table's reference), reporting errors */
        int np = atomic_load(&t->nparts);
        for (int p = 0; p < np; p++) {
            int r = kpart_close(t->parts[p]);
            t->parts[p] = NULL;
            if (r < 0 && rc == 0)
                rc = r;
        }
        atomic_store(&t->nparts, 0);
        klog__topic_put(t);
    }
    free(k->topics);
    while (k->ninit > 0) {
        const kt_module *m = k->mods[--k->ninit];
        int r = m->fini ? m->fini(k, k->mod_state[k->ninit]) : 0;
        if (r < 0 && rc == 0)
            rc = r;
        k->mod_state[k->ninit] = NULL;
    }
    ks_dirlock_release(k->lock_fd);
    kio_close(k->io);
    klog_conf_free(k->conf);
    pthread_mutex_destroy(&k->mu);
    pthread_mutex_destroy(&k->bg_mu);
    pthread_mutex_destroy(&k->ev_mu);
    pthread_mutex_destroy(&k->stats_mu);
    pthread_cond_destroy(&k->bg_cv);
    free(k);
    return rc;
}

KLOG_API const char *klog_io_backend(const klog *k)
{
    return k ? kio_name(k->io) : "none";
}

/* ---- public: topics ---------------------------------------------------------------------- */

KLOG_API int klog_topic_create(klog *k, const char *name, int partitions, const klog_conf *topic_conf,
                               char *errbuf, size_t errsize)
{
    if (!k)
        return -EINVAL;
    if (klog__topic_name_check(name) < 0)
        return klog__errf(errbuf, errsize, KLOG_EBADNAME,
                    "invalid topic name \"%s\": 1 to 249 characters of a-z A-Z 0-9 . _ -", name ? name : "(null)");
    if (partitions < 0 || partitions > KT_MAX_PARTITIONS)
        return klog__errf(errbuf, errsize, -EINVAL, "%s: partitions must be 1 to %d", name, KT_MAX_PARTITIONS);
    kt_topic *t;
    int rc = klog__conf_check_scope(topic_conf, KC_SCOPE_TOPIC, errbuf, errsize);
    if (rc < 0)
        return rc;
    rc = topic_new(k, name, topic_conf, &t);
    if (rc < 0)
        return rc;
    kt_evnode *ev = malloc(sizeof *ev);
    if (!ev) {
        topic_free(t);
        return -ENOMEM;
    }
    if (partitions == 0)
        partitions = (int)klog__conf_int(t->conf, KC_NUM_PARTITIONS);
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < k->ntopics; i++)
        if (!strcmp(k->topics[i]->name, name)) {
            pthread_mutex_unlock(&k->mu);
            topic_free(t);
            free(ev);
            return klog__errf(errbuf, errsize, -EEXIST, "topic %s already exists", name);
        }
    if ((rc = open_parts(k, t, 0, partitions)) < 0) {
        klog__errf(errbuf, errsize, rc, "topic %s: %s", name, klog_strerror(rc));
    } else if ((rc = table_insert(k, t)) == 0) {
        if ((rc = meta_write(k)) < 0) {
            /* not recorded: undo */
            for (size_t i = 0; i < k->ntopics; i++)
                if (k->topics[i] == t) {
                    memmove(&k->topics[i], &k->topics[i + 1], (k->ntopics - i - 1) * sizeof *k->topics);
                    k->ntopics--;
                    break;
                }
            klog__errf(errbuf, errsize, rc, "topic metadata: %s", klog_strerror(rc));
        }
    }
    if (rc == 0) {
        event_queue(k, ev, KT_EV_TOPIC_CREATED, t, 0, partitions);
        ev = NULL;
    }
    pthread_mutex_unlock(&k->mu);
    free(ev);
    if (rc < 0)
        topic_free(t); /* its empty partition dirs are swept at the next open */
    else
        events_deliver(k);
    return rc;
}

KLOG_API int klog_topic_delete(klog *k, const char *name)
{
    if (!k)
        return -EINVAL;
    if (klog__topic_name_check(name) < 0)
        return KLOG_EBADNAME;
    if (!strcmp(name, "__consumer_offsets"))
        return -EPERM; /* the consumer groups' committed offsets live there */
    kt_evnode *ev = malloc(sizeof *ev);
    if (!ev)
        return -ENOMEM;
    pthread_mutex_lock(&k->mu);
    size_t i;
    for (i = 0; i < k->ntopics; i++)
        if (!strcmp(k->topics[i]->name, name))
            break;
    if (i == k->ntopics) {
        pthread_mutex_unlock(&k->mu);
        free(ev);
        return KLOG_EUNKNOWN_TOPIC;
    }
    kt_topic *t = k->topics[i];
    /* Rename the partition directories aside first, so that the name is
     * free for reuse the moment the deletion is recorded; their files go
     * when the last user lets go (or at the next open, after a crash). */
    snprintf(t->tomb, sizeof t->tomb, ".deleted-%" PRIu64, ++k->tomb_seq);
    int np = atomic_load(&t->nparts), rc = 0, renamed = 0;
    for (int p = 0; p < np && rc == 0; p++) {
        char from[4400], to[4400];
        rc = part_dir(from, sizeof from, k, name, p, NULL);
        if (rc == 0)
            rc = part_dir(to, sizeof to, k, name, p, t->tomb);
        if (rc == 0 && (rc = kio_rename(k->io, from, to)) == 0)
            renamed++;
    }
    if (rc == 0) {
        memmove(&k->topics[i], &k->topics[i + 1], (k->ntopics - i - 1) * sizeof *k->topics);
        k->ntopics--;
        if ((rc = meta_write(k)) < 0)
            table_insert(k, t); /* still recorded on disk: keep serving it */
        else
            kio_dirsync(k->io, k->dir);
    }
    if (rc < 0) {
        /* Put back what was renamed aside. */
        for (int q = 0; q < renamed; q++) {
            char from[4400], to[4400];
            if (part_dir(from, sizeof from, k, name, q, NULL) == 0 &&
                part_dir(to, sizeof to, k, name, q, t->tomb) == 0)
                kio_rename(k->io, to, from);
        }
        t->tomb[0] = '\0';
        pthread_mutex_unlock(&k->mu);
        free(ev);
        return rc;
    }
    atomic_store(&t->deleted, true);
    event_queue(k, ev, KT_EV_TOPIC_DELETED, t, 0, np);
    pthread_mutex_unlock(&k->mu);
    /* Acknowledgements waiting for the high watermark will not get it:
     * report them now (a producer's flush would wait for ever).  Outside
     * mu: the completions run delivery callbacks. */
    for (int p = 0; p < np; p++)
        kpart_ack_fail(t->parts[p], KLOG_EUNKNOWN_TOPIC);
    klog__topic_put(t);
    events_deliver(k);
    return 0;
}

KLOG_API int klog_topic_add_partitions(klog *k, const char *name, int total)
{
    if (!k)
        return -EINVAL;
    if (klog__topic_name_check(name) < 0)
        return KLOG_EBADNAME;
    kt_evnode *ev = malloc(sizeof *ev);
    if (!ev)
        return -ENOMEM;
    /* Look up under mu, so that a concurrent delete cannot slip between
     * the lookup and the new partition directories. */
    pthread_mutex_lock(&k->mu);
    kt_topic *t = NULL;
    for (size_t i = 0; i < k->ntopics; i++)
        if (!strcmp(k->topics[i]->name, name))
            t = k->topics[i];
    int rc;
    if (!t) {
        rc = KLOG_EUNKNOWN_TOPIC;
    } else {
        int cur = atomic_load(&t->nparts);
        if (total <= cur || total > KT_MAX_PARTITIONS)
            rc = -EINVAL;
        else if ((rc = open_parts(k, t, cur, total)) == 0 && (rc = meta_write(k)) < 0) {
            /* Not recorded: the next open would not know these partitions,
             * so they must not take records now.  Undo them. */
            atomic_store_explicit(&t->nparts, cur, memory_order_release);
            for (int p = cur; p < total; p++) {
                kpart_abandon(t->parts[p]);
                t->parts[p] = NULL;
                char d[4400];
                if (part_dir(d, sizeof d, k, t->name, p, NULL) == 0)
                    remove_part_dir(k, d);
            }
        }
        if (rc == 0) {
            event_queue(k, ev, KT_EV_PARTITIONS_ADDED, t, cur, total);
            ev = NULL;
        }
    }
    pthread_mutex_unlock(&k->mu);
    free(ev);
    if (rc == 0)
        events_deliver(k);
    return rc;
}

KLOG_API int klog_topic_list(klog *k, char ***names, size_t *count)
{
    if (!k || !names || !count)
        return -EINVAL;
    pthread_mutex_lock(&k->mu);
    size_t n = k->ntopics;
    char **v = calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        if (!(v[i] = strdup(k->topics[i]->name))) {
            klog_topic_list_free(v, i);
            v = NULL;
        }
    pthread_mutex_unlock(&k->mu);
    if (!v)
        return -ENOMEM;
    *names = v;
    *count = n;
    return 0;
}

KLOG_API void klog_topic_list_free(char **names, size_t count)
{
    if (!names)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

KLOG_API int klog_topic_describe(klog *k, const char *name, klog_partition_info *parts, size_t max,
                                 char *config, size_t config_size)
{
    if (!k || (max && !parts))
        return -EINVAL;
    /* The caller's struct may be older (smaller) or newer (larger) than
     * ours: step through its array by its size and fill what both know. */
    size_t stride = max ? parts[0].struct_size : 0;
    if (max && stride < offsetof(klog_partition_info, error) + sizeof(int32_t))
        return -EINVAL;
    kt_topic *t = klog__topic_get(k, name);
    if (!t)
        return klog__topic_name_check(name) < 0 ? KLOG_EBADNAME : KLOG_EUNKNOWN_TOPIC;
    int np = atomic_load_explicit(&t->nparts, memory_order_acquire);
    for (int p = 0; p < np && (size_t)p < max; p++) {
        ks_log *l = kpart_log(t->parts[p]);
        klog_partition_info pi = {
            .struct_size = (uint32_t)KLOG_MIN(stride, sizeof(klog_partition_info)),
            .partition = p,
            .start_offset = ks_log_start_offset(l),
            .end_offset = ks_log_end_offset(l),
            .durable_offset = ks_log_durable_offset(l),
            .size_bytes = ks_log_size_bytes(l),
            .segments = ks_log_segment_count(l),
            .error = ks_log_error(l),
            .disk_bytes = ks_log_disk_bytes(l),
            .clean_offset = ks_log_clean_point(l),
        };
        uint8_t *dst = (uint8_t *)parts + (size_t)p * stride;
        memcpy(dst, &pi, KLOG_MIN(stride, sizeof pi));
        if (stride > sizeof pi)
            memset(dst + sizeof pi, 0, stride - sizeof pi);
        ((klog_partition_info *)dst)->struct_size = (uint32_t)stride;
    }
    if (config && config_size) {
        char tmp[4096];
        pthread_mutex_lock(&k->mu); /* overrides is replaced under mu */
        int n = klog__conf_dump(t->overrides, KC_SCOPE_TOPIC, tmp, sizeof tmp);
        pthread_mutex_unlock(&k->mu);
        snprintf(config, config_size, "%s", n > 0 ? tmp : "");
    }
    klog__topic_put(t);
    return np;
}

KLOG_API int klog_topic_delete_records(klog *k, const char *name, int32_t partition, int64_t before_offset,
                                       int64_t *low_watermark)
{
    if (!k)
        return -EINVAL;
    kt_topic *t = klog__topic_get(k, name);
    if (!t)
        return klog__topic_name_check(name) < 0 ? KLOG_EBADNAME : KLOG_EUNKNOWN_TOPIC;
    int rc;
    if (partition < 0 || partition >= atomic_load_explicit(&t->nparts, memory_order_acquire))
        rc = KLOG_EUNKNOWN_PARTITION;
    else
        rc = kpart_delete_records(t->parts[partition], before_offset, low_watermark);
    klog__topic_put(t);
    return rc;
}

KLOG_API int klog_disk_usage(klog *k, uint64_t *used, uint64_t *budget)
{
    if (!k)
        return -EINVAL;
    if (used)
        *used = atomic_load(&k->space.used);
    if (budget)
        *budget = k->space.limit;
    return 0;
}

KLOG_API int klog_topic_alter_config(klog *k, const char *name, const klog_conf *set, const char *const *unset,
                                     size_t nunset, char *errbuf, size_t errsize)
{
    if (!k || (nunset && !unset))
        return -EINVAL;
    if (klog__topic_name_check(name) < 0)
        return klog__errf(errbuf, errsize, KLOG_EBADNAME, "invalid topic name \"%s\"", name ? name : "(null)");
    int rc = klog__conf_check_scope(set, KC_SCOPE_TOPIC, errbuf, errsize);
    if (rc < 0)
        return rc;
    klog_conf *ov = NULL, *merged = NULL;
    pthread_mutex_lock(&k->mu);
    kt_topic *t = NULL;
    for (size_t i = 0; i < k->ntopics; i++)
        if (!strcmp(k->topics[i]->name, name))
            t = k->topics[i];
    if (!t) {
        rc = klog__errf(errbuf, errsize, KLOG_EUNKNOWN_TOPIC, "unknown topic %s", name);
        goto out;
    }
    if ((rc = klog_conf_dup(t->overrides, &ov)) < 0 || (rc = klog__conf_merge(ov, set)) < 0)
        goto out;
    for (size_t i = 0; i < nunset && rc == 0; i++)
        rc = klog__conf_unset(ov, unset[i], KC_SCOPE_TOPIC, errbuf, errsize);
    if (rc < 0 || (rc = klog_conf_dup(k->conf, &merged)) < 0 || (rc = klog__conf_merge(merged, ov)) < 0)
        goto out;
    /* record it first: what is not in topics.meta must not take effect */
    klog_conf *old_ov = t->overrides;
    t->overrides = ov;
    if ((rc = meta_write(k)) < 0) {
        t->overrides = old_ov;
        klog__errf(errbuf, errsize, rc, "topic metadata: %s", klog_strerror(rc));
        goto out;
    }
    /* Readers load t->conf without a lock: change it in place, key by key
     * (each reads old or new, never freed memory).  The old overrides are
     * read only under mu, so they can go now. */
    klog__conf_publish(t->conf, merged);
    ov = old_ov;
    klog_conf_free(merged);
    merged = NULL;
    ks_log_config lc;
    log_config(k, t->conf, &lc);
    int np = atomic_load(&t->nparts);
    for (int p = 0; p < np; p++) {
        int r = ks_log_reconfigure(kpart_log(t->parts[p]), &lc);
        if (r < 0 && rc == 0)
            rc = r;
    }
out:
    pthread_mutex_unlock(&k->mu);
    klog_conf_free(ov);
    klog_conf_free(merged);
    return rc;
}
