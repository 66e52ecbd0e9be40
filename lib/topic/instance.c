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
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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
bool klog__read_only(const struct klog *k) { return k->read_only; }
const char *klog__dir(struct klog *k) { return k->dir; }

/* The module bound in the place of mods[i], or NULL; *st its state. */
static const kt_module *bound_at(klog *k, unsigned i, void **st)
{
    const kt_module *b = atomic_load_explicit(&k->bound[i], memory_order_acquire);
    if (b)
        *st = k->bound_state[i];
    return b;
}

void *klog__module_state(klog *k, const kt_module *m)
{
    void *st = NULL;
    for (unsigned i = 0; k && i < k->ninit; i++) {
        if (k->mods[i] == m)
            return k->mod_state[i];
        if (bound_at(k, i, &st) == m)
            return st;
    }
    return NULL;
}

int klog__module_bind(klog *k, const kt_module *m, char *errbuf, size_t errsize)
{
    if (!k || !m || !m->name)
        return -EINVAL;
    unsigned i = 0;
    while (i < k->nstarted && strcmp(k->mods[i]->name, m->name))
        i++;
    if (i == k->nstarted || k->mods[i] == m || !k->mod_state[i])
        return 0; /* no such place, m itself there, or its placeholder says: not wanted here */
    pthread_mutex_lock(&k->bind_mu);
    void *st = NULL;
    int rc = 0;
    const kt_module *b = bound_at(k, i, &st);
    if (b && b != m)
        rc = klog__errf(errbuf, errsize, KLOG_ESTATE, "another module is bound in the place of %s", m->name);
    else if (b && !k->bound_started[i])
        rc = klog__errf(errbuf, errsize, KLOG_ESTATE, "%s failed to start on this instance", m->name);
    if (!b && rc == 0 && (!m->init || (rc = m->init(k, &st, errbuf, errsize)) == 0)) {
        k->bound_state[i] = st;
        atomic_store_explicit(&k->bound[i], m, memory_order_release); /* events and part_open from here */
        rc = m->start ? m->start(k, st, errbuf, errsize) : 0;
        k->bound_started[i] = rc == 0;
    }
    pthread_mutex_unlock(&k->bind_mu);
    return rc;
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
    lc->cache = k->cache;
    lc->dir_locked = true; /* the instance's lock covers every partition */
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
    lc->verify_all = klog__conf_int(k->conf, KC_RECOVERY_VERIFY_ALL) != 0;
    lc->read_only = k->read_only;
    lc->ckpt_interval_ms = klog__conf_int(k->conf, KC_CKPT_INTERVAL_MS);
    lc->ckpt_unchecked_max = (uint64_t)klog__conf_int(k->conf, KC_CKPT_UNCHECKED_MAX);
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
            for (unsigned i = 0; i < k->nstarted; i++) {
                void *st;
                const kt_module *b;
                if (k->mods[i]->event)
                    k->mods[i]->event(k, k->mod_state[i], &e->ev);
                if ((b = bound_at(k, i, &st)) != NULL && b->event)
                    b->event(k, st, &e->ev);
            }
            klog__topic_put(e->ev.topic);
            free(e);
        }
        pthread_mutex_unlock(&k->ev_mu);
    }
}

static void bg_prefill_hook(void *arg);
static void part_failed(void *arg, const char *dir, int err);

/* Open partitions [from, to) of t.  Partitions the instance has on record
 * (on_record: listed in topics.meta, or recovered from their directories)
 * must find their directory, and open damaged rather than fail: a damaged
 * partition is reported and read-only, the others stay usable.  New ones
 * are created. */
static int open_parts(klog *k, kt_topic *t, int from, int to, bool on_record)
{
    ks_log_config lc;
    log_config(k, t->conf, &lc);
    lc.must_exist = lc.open_damaged = on_record;
    for (int p = from; p < to; p++) {
        char d[4400];
        int rc = part_dir(d, sizeof d, k, t->name, p, NULL);
        if (rc == 0)
            rc = kpart_open(&t->parts[p], k->io, d, &lc);
        if (rc == 0) {
            ks_log_set_prefill_hook(kpart_log(t->parts[p]), bg_prefill_hook, k);
            ks_log_set_fail_hook(kpart_log(t->parts[p]), part_failed, k);
            for (unsigned i = 0; i < k->ninit; i++) {
                void *st;
                const kt_module *b;
                if (k->mods[i]->part_open)
                    k->mods[i]->part_open(k, k->mod_state[i], t->name, p, t->parts[p]);
                if ((b = bound_at(k, i, &st)) != NULL && b->part_open)
                    b->part_open(k, st, t->name, p, t->parts[p]);
            }
        }
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

/* Count topics.meta in the disk budget, by the blocks it takes (after it
 * was written, and at open). */
static void meta_count(klog *k)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", k->dir, META_NAME);
    uint64_t bytes = stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
    uint64_t old = k->meta_bytes; /* under mu, or at open */
    k->meta_bytes = bytes;
    atomic_fetch_add(&k->space.used, bytes - old);
}

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
    if (rc == 0)
        meta_count(k);
    return rc;
}

/* ---- opening the table: topics.meta and the partition directories -------------------- */

/* Read and parse topics.meta.  Returns 1 (*m filled), 0 (no such file) or
 * an error (message in errbuf). */
static int meta_read(klog *k, kl_meta *m, char *errbuf, size_t errsize)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", k->dir, META_NAME);
    memset(m, 0, sizeof *m);
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
    char why[300];
    int rc = kl_meta_parse(buf, (size_t)n, m, why, sizeof why);
    free(buf);
    if (rc == KLOG_ECORRUPT)
        return klog__errf(errbuf, errsize, rc, "%s: %s", path, why);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < m->ntopics; i++) {
        const kl_meta_topic *mt = &m->topics[i];
        if (klog__topic_name_check(mt->name) < 0 || mt->partitions > KT_MAX_PARTITIONS) {
            rc = klog__errf(errbuf, errsize, KLOG_ECORRUPT, "%s: bad topic \"%s\" with %d partitions", path,
                            mt->name, mt->partitions);
            kl_meta_free(m);
            return rc;
        }
    }
    return 1;
}

/* Create topic `name` with these overrides and open its partitions
 * [0, nparts) into the table (at open: no events, no other thread). */
static int topic_load(klog *k, const char *name, int nparts, klog_conf *ov, char *errbuf, size_t errsize)
{
    kt_topic *t = NULL;
    int rc = topic_new(k, name, ov, &t);
    if (rc == 0 && (rc = open_parts(k, t, 0, nparts, true)) < 0)
        klog__errf(errbuf, errsize, rc, "topic %s: %s", t->name, klog_strerror(rc));
    if (rc == 0 && (rc = table_insert(k, t)) == 0)
        t = NULL;
    if (t)
        topic_free(t);
    return rc;
}

/* The table's topic called name, or NULL (at open). */
static kt_topic *table_find(klog *k, const char *name)
{
    for (size_t i = 0; i < k->ntopics; i++)
        if (!strcmp(k->topics[i]->name, name))
            return k->topics[i];
    return NULL;
}

/*
 * A subdirectory of DIR named like a partition log, "<topic>-<N>" (as
 * Kafka's log directories are), or like one a topic deletion renamed
 * aside, "<topic>-<N>.deleted-<M>" (a tomb).
 */
enum pd_state {
    PD_FOREIGN, /* nothing of a partition log in it (no segment, checkpoint or lock): left alone */
    PD_EMPTY,   /* a partition log never written: no record, its offsets at 0 */
    PD_DATA,    /* records, offsets above 0, or files open cannot account for */
};

typedef struct pdir {
    char name[256];                      /* its name in DIR */
    char topic[KLOG_TOPIC_NAME_MAX + 1];
    int part;
    int64_t tomb;                        /* M of ".deleted-M"; -1: a live directory */
    enum pd_state state;
} pdir;

/* Digits only, below lim; -1 otherwise (and for a leading zero, which
 * part_dir never writes, unless the number is 0). */
static int64_t parse_count(const char *s, int64_t lim)
{
    int64_t v = 0;
    if (!*s || (s[0] == '0' && s[1]))
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || (v = v * 10 + (*s - '0')) >= lim)
            return -1;
    }
    return v;
}

static bool pdir_parse(const char *nm, pdir *d)
{
    char base[256];
    if (snprintf(base, sizeof base, "%s", nm) >= (int)sizeof base)
        return false;
    d->tomb = -1;
    char *t = strstr(base, ".deleted-");
    if (t) {
        if ((d->tomb = parse_count(t + 9, INT64_MAX / 16)) < 0)
            return false;
        *t = '\0';
    }
    char *dash = strrchr(base, '-');
    if (!dash || dash == base)
        return false;
    int64_t p = parse_count(dash + 1, KT_MAX_PARTITIONS);
    *dash = '\0';
    if (p < 0 || klog__topic_name_check(base) < 0)
        return false;
    snprintf(d->name, sizeof d->name, "%s", nm);
    memcpy(d->topic, base, strlen(base) + 1); /* checked: at most KLOG_TOPIC_NAME_MAX */
    d->part = (int)p;
    return true;
}

/* What a partition directory holds.  Only a directory with a segment,
 * recovery.ckpt or .lock is a partition log's; it is empty when it has no
 * record (every segment file empty, at base 0) and recovery.ckpt says 0
 * for both offsets; any file klog does not leave in an empty log (a swap,
 * cleaner.ckpt, a file of someone else's) counts as data. */
static enum pd_state pdir_state(klog *k, const char *path)
{
    DIR *dd = opendir(path);
    if (!dd)
        return PD_FOREIGN;
    bool ours = false, data = false;
    struct dirent *de;
    while ((de = readdir(dd)) != NULL) {
        const char *f = de->d_name;
        size_t l = strlen(f);
        int64_t b;
        char fp[4700];
        if (!strcmp(f, ".") || !strcmp(f, ".."))
            continue;
        if (kl_segment_name_parse(f, ".log", &b)) {
            struct stat st;
            ours = true;
            if (b != 0 || fstatat(dirfd(dd), f, &st, 0) != 0 || st.st_size != 0)
                data = true;
        } else if (!strcmp(f, KL_CKPT_RECOVERY_NAME)) {
            uint8_t buf[KL_CKPT_SIZE];
            kl_ckpt c;
            ssize_t n = pathf(fp, sizeof fp, "%s/%s", path, f) < 0 ? -1 : ks_read_small(k->io, fp, buf, sizeof buf);
            ours = true;
            if (n < 0 || kl_ckpt_decode(buf, (size_t)n, KL_CKPT_MAGIC_RECOVERY, &c) < 0 || c.a != 0 || c.b != 0)
                data = true;
        } else if (!strcmp(f, ".lock")) {
            ours = true;
        } else if (!kl_segment_name_parse(f, ".index", &b) && !kl_segment_name_parse(f, ".timeindex", &b) &&
                   !(l > 4 && !strcmp(f + l - 4, ".tmp")) && strcmp(f, KL_EPOCH_NAME) != 0) {
            data = true;
        }
    }
    closedir(dd);
    return !ours ? PD_FOREIGN : data ? PD_DATA : PD_EMPTY;
}

static int pdir_cmp(const void *a, const void *b)
{
    const pdir *x = a, *y = b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : x->part != y->part ? (x->part < y->part ? -1 : 1) : (x->tomb > y->tomb) - (x->tomb < y->tomb);
}

/* The partition and tomb directories of DIR, sorted by topic, partition,
 * tomb.  Returns the count (*out malloc'ed) or -errno. */
static ssize_t pdirs_scan(klog *k, pdir **out)
{
    DIR *d = opendir(k->dir);
    if (!d)
        return -errno;
    pdir *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        pdir pd;
        char path[4400];
        struct stat st;
        if (de->d_name[0] == '.' || !pdir_parse(de->d_name, &pd) ||
            pathf(path, sizeof path, "%s/%s", k->dir, de->d_name) < 0 || stat(path, &st) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        pd.state = pd.tomb < 0 ? pdir_state(k, path) : PD_DATA;
        if ((rc = klog__vec_reserve(&v, &cap, n + 1, sizeof *v)) < 0)
            break;
        v[n++] = pd;
    }
    closedir(d);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, pdir_cmp);
    *out = v;
    return (ssize_t)n;
}

static bool pdir_live(const pdir *v, size_t n, const char *topic, int part)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].tomb < 0 && v[i].part == part && !strcmp(v[i].topic, topic))
            return true;
    return false;
}

/* A deletion renames a topic's partition directories aside before it
 * records itself in topics.meta.  A tomb whose live directory topics.meta
 * still lists, and which is missing, is what a deletion that crashed
 * left: the topic was never deleted, and gets its directory back (the
 * latest tomb, should there be several). */
static void tombs_restore(klog *k, const kl_meta *m, pdir *v, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        pdir *d = &v[i];
        if (d->tomb < 0 || pdir_live(v, n, d->topic, d->part))
            continue;
        bool listed = false;
        for (size_t j = 0; j < m->ntopics && !listed; j++)
            listed = !strcmp(m->topics[j].name, d->topic) && d->part < m->topics[j].partitions;
        char from[4400], to[4400];
        if (!listed || pathf(from, sizeof from, "%s/%s", k->dir, d->name) < 0 ||
            part_dir(to, sizeof to, k, d->topic, d->part, NULL) < 0 || kio_rename(k->io, from, to) < 0)
            continue;
        kio_dirsync(k->io, k->dir);
        d->tomb = -1;
        d->state = PD_DATA;
        snprintf(d->name, sizeof d->name, "%s-%d", d->topic, d->part);
    }
}

/* The overrides a topic recovered from its directories gets: nothing is
 * deleted by age until someone sets retention.ms again, and the groups'
 * offsets topic is compacted, as the groups create it. */
static int recovered_overrides(const char *topic, klog_conf **out)
{
    int rc = klog_conf_new(out);
    if (rc == 0)
        rc = !strcmp(topic, "__consumer_offsets") ? klog_conf_set(*out, "cleanup.policy", "compact", NULL, 0)
                                                   : klog_conf_set(*out, "retention.ms", "-1", NULL, 0);
    return rc;
}

/*
 * Partition directories topics.meta does not account for: with meta
 * missing, every topic that has partition directories is recovered from
 * them (its partition count: its highest directory's number + 1); with
 * meta present, a directory holding data that meta does not list is
 * adopted likewise (a topic, or partitions past a topic's count).  Sets
 * *changed when the table grew.
 */
static int adopt_dirs(klog *k, bool meta_found, const pdir *v, size_t n, bool *changed, char *errbuf,
                      size_t errsize)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i;
        int want = 0; /* partitions the directories ask for */
        for (; j < n && !strcmp(v[j].topic, v[i].topic); j++)
            if (v[j].tomb < 0 && (v[j].state == PD_DATA || (!meta_found && v[j].state == PD_EMPTY)))
                want = v[j].part + 1;
        kt_topic *t = table_find(k, v[i].topic);
        int have = t ? atomic_load(&t->nparts) : 0;
        if (want > have) {
            if (t) {
                if ((rc = open_parts(k, t, have, want, true)) < 0)
                    klog__errf(errbuf, errsize, rc, "topic %s: %s", t->name, klog_strerror(rc));
            } else {
                klog_conf *ov = NULL;
                if ((rc = recovered_overrides(v[i].topic, &ov)) == 0)
                    rc = topic_load(k, v[i].topic, want, ov, errbuf, errsize);
                klog_conf_free(ov);
            }
            *changed = *changed || rc == 0;
        }
        i = j;
    }
    return rc;
}

/* Remove what belongs to no topic and holds nothing: tombs (a deletion
 * that was recorded, then interrupted), and partition logs never written
 * (a creation or partition addition that crashed before it was recorded).
 * A directory with data is never removed: adopt_dirs took it. */
static void sweep_orphans(klog *k, const pdir *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const pdir *d = &v[i];
        kt_topic *t = table_find(k, d->topic);
        bool owned = d->tomb < 0 && t && d->part < atomic_load(&t->nparts);
        char sub[4400];
        if (owned || (d->tomb < 0 && d->state != PD_EMPTY) || pathf(sub, sizeof sub, "%s/%s", k->dir, d->name) < 0)
            continue;
        remove_part_dir(k, sub);
    }
}

/*
 * Load the topic table and open every partition (klog_open).  topics.meta
 * records the topics; the directories hold the data.  They are reconciled
 * so that no directory holding records or offsets is ever removed
 * (tombs_restore, adopt_dirs, sweep_orphans), and topics.meta is
 * rewritten when the table had to grow.
 */
static int open_table(klog *k, char *errbuf, size_t errsize)
{
    kl_meta m;
    int rc = meta_read(k, &m, errbuf, errsize);
    if (rc < 0)
        return rc;
    bool meta_found = rc == 1, changed = false;
    pdir *v = NULL;
    ssize_t n = pdirs_scan(k, &v);
    if (n < 0) {
        kl_meta_free(&m);
        return klog__errf(errbuf, errsize, (int)n, "%s: %s", k->dir, klog_strerror((int)n));
    }
    if (!k->read_only)
        tombs_restore(k, &m, v, (size_t)n);
    /* A new directory gets its (empty) topics.meta at once: "meta missing"
     * then only ever means damage, and a first klog_topic_create killed
     * between its partition directories and the metadata leaves empty
     * directories that sweep_orphans removes, not a topic recovered with
     * some of its partitions and none of its configuration (issue 19's
     * torture harness, kill -9 inside klog_topic_create).  A read-only
     * open writes nothing. */
    changed = !meta_found && n == 0 && !k->read_only;
    rc = 0;
    for (size_t i = 0; rc == 0 && i < m.ntopics; i++) {
        const kl_meta_topic *mt = &m.topics[i];
        klog_conf *ov = NULL;
        if (klog_conf_new(&ov) < 0) {
            rc = -ENOMEM;
            break;
        }
        for (size_t j = 0; rc == 0 && j < mt->nkv; j++)
            rc = klog_conf_set(ov, mt->kv[j].key, mt->kv[j].value, errbuf, errsize);
        if (rc == 0)
            rc = topic_load(k, mt->name, mt->partitions, ov, errbuf, errsize);
        klog_conf_free(ov);
    }
    kl_meta_free(&m);
    if (rc == 0)
        rc = adopt_dirs(k, meta_found, v, (size_t)n, &changed, errbuf, errsize);
    if (rc == 0 && !k->read_only)
        sweep_orphans(k, v, (size_t)n);
    free(v);
    if (rc == 0 && !k->read_only)
        meta_count(k);
    if (rc == 0 && changed && !k->read_only) {
        pthread_mutex_lock(&k->mu);
        rc = meta_write(k);
        pthread_mutex_unlock(&k->mu);
        if (rc < 0)
            klog__errf(errbuf, errsize, rc, "%s/%s: writing the recovered topics: %s", k->dir, META_NAME,
                       klog_strerror(rc));
    }
    return rc;
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
        if (!k->bg_prefill && !k->bg_report) {
            struct timespec ts = { (time_t)(next_tick / 1000000000ull), (long)(next_tick % 1000000000ull) };
            pthread_cond_timedwait(&k->bg_cv, &k->bg_mu, &ts); /* bg_cv is on CLOCK_MONOTONIC */
        }
        if (k->stopping)
            break;
        bool prefill = k->bg_prefill;
        k->bg_prefill = false;
        k->bg_report = false;
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
        klog__log_flush(k); /* lines queued under locks (this pass's too) */
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
    if (pthread_create(&k->bg, NULL, k->read_only ? klog__follow_main : bg_main, k) != 0)
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
    if (k->follow_efd >= 0)
        (void)eventfd_write(k->follow_efd, 1); /* failing, the follow thread notices within its tick */
    pthread_join(k->bg, NULL);
    k->bg_running = false;
    /* no one rewrites the statistics files from now on: a file left
     * behind would look live to its readers */
    klog__stats_remove(k);
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
    k->follow_efd = -1;
    k->mods = mods;
    k->nmods = nmods;
    pthread_mutex_init(&k->mu, NULL);
    pthread_mutex_init(&k->ev_mu, NULL);
    pthread_mutex_init(&k->bind_mu, NULL);
    pthread_mutex_init(&k->stats_mu, NULL);
    pthread_mutex_init(&k->log_mu, NULL);
    pthread_mutex_init(&k->logq_mu, NULL);
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
    k->read_only = klog__conf_int(k->conf, KC_READ_ONLY) != 0;
    struct stat st;
    int se = stat(dir, &st) != 0 ? -errno : S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    if (k->read_only && se < 0) { /* nothing to read, and nothing may be made */
        rc = klog__errf(errbuf, errsize, se, "%s: %s", dir, klog_strerror(se));
        goto fail;
    }
    if (k->read_only) {
        /* no directory lock: the writer of another process has it */
        k->follow_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    } else if (mkdir(dir, 0755) == 0) {
        char parent[4200];
        snprintf(parent, sizeof parent, "%s/..", dir);
        kio_dirsync(k->io, parent);
    } else if (errno != EEXIST) {
        rc = klog__errf(errbuf, errsize, -errno, "%s: %s", dir, strerror(errno));
        goto fail;
    }
    if (!k->read_only && (rc = ks_dirlock_acquire(dir)) < 0) {
        klog__errf(errbuf, errsize, rc, "%s: %s", dir,
             rc == KLOG_ELOCKED ? "locked by another writer (another process or instance has it open)"
                                : klog_strerror(rc));
        goto fail;
    }
    k->lock_fd = k->read_only ? -1 : rc;
    /* Statistics files found now were left by a writer that died holding
     * the directory (a clean close removes its own): stale, whatever they
     * say.  A read-only open leaves the writer's alone. */
    if (!k->read_only) {
        k->stats_written = true;
        klog__stats_remove(k);
    }
    for (; k->ninit < nmods; k->ninit++) {
        const kt_module *m = mods[k->ninit];
        if (m->init && (rc = m->init(k, &k->mod_state[k->ninit], errbuf, errsize)) < 0)
            goto fail;
    }
    if ((rc = open_table(k, errbuf, errsize)) < 0)
        goto fail;
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

/* Partitions closed by close_parts' threads, taken in turn. */
typedef struct close_job {
    kpart **parts;
    size_t n;
    _Atomic size_t next;
    _Atomic int err;
} close_job;

static void *close_worker(void *arg)
{
    close_job *j = arg;
    for (size_t i; (i = atomic_fetch_add(&j->next, 1)) < j->n;) {
        int r = kpart_close(j->parts[i]);
        int zero = 0;
        if (r < 0)
            atomic_compare_exchange_strong(&j->err, &zero, r);
    }
    return NULL;
}

#define CLOSE_THREADS 8    /* most threads closing partitions at once */
#define CLOSE_PER_THREAD 64 /* partitions that make another thread worth it */

/*
 * Close every partition of every topic.  A partition that took appends
 * syncs its segment and its checkpoint at close: with thousands of them,
 * one after the other, the disk would wait for each sync in turn, while
 * syncs of different files overlap (the file system commits them
 * together).  So they close on a few threads at once.  Returns the first
 * error.
 */
static int close_parts(klog *k)
{
    size_t n = 0;
    for (size_t i = 0; i < k->ntopics; i++)
        n += (size_t)atomic_load(&k->topics[i]->nparts);
    kpart **parts = n ? malloc(n * sizeof *parts) : NULL;
    close_job j = { .parts = parts, .n = 0 };
    for (size_t i = 0; i < k->ntopics; i++) {
        kt_topic *t = k->topics[i];
        int np = atomic_load(&t->nparts);
        for (int p = 0; p < np; p++) {
            if (parts) {
                parts[j.n++] = t->parts[p];
            } else { /* no memory for the list: one at a time, here */
                int r = kpart_close(t->parts[p]), zero = 0;
                if (r < 0)
                    atomic_compare_exchange_strong(&j.err, &zero, r);
            }
            t->parts[p] = NULL;
        }
    }
    pthread_t th[CLOSE_THREADS];
    unsigned nth = 0;
    while (nth + 1 < CLOSE_THREADS && (nth + 1) * CLOSE_PER_THREAD < j.n &&
           pthread_create(&th[nth], NULL, close_worker, &j) == 0)
        nth++;
    close_worker(&j); /* this thread too, and alone when no thread started */
    for (unsigned i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    free(parts);
    return atomic_load(&j.err);
}

KLOG_API int klog_close(klog *k)
{
    if (!k)
        return 0;
    /* Modules stop last first; a stopped module hears no more events. */
    while (k->nstarted > 0) {
        const kt_module *m = k->mods[--k->nstarted], *b;
        void *st;
        if ((b = bound_at(k, k->nstarted, &st)) != NULL && k->bound_started[k->nstarted] && b->stop)
            b->stop(k, st);
        if (m->stop)
            m->stop(k, k->mod_state[k->nstarted]);
    }
    for (kt_evnode *e = k->evq_head, *nx; e; e = nx) {
        nx = e->next;
        klog__topic_put(e->ev.topic);
        free(e);
    }
    k->evq_head = k->evq_tail = NULL;
    /* close the logs now (the table's reference), reporting errors */
    int rc = close_parts(k);
    for (size_t i = 0; i < k->ntopics; i++) {
        atomic_store(&k->topics[i]->nparts, 0);
        klog__topic_put(k->topics[i]);
    }
    free(k->topics);
    while (k->ninit > 0) {
        const kt_module *m = k->mods[--k->ninit], *b;
        void *st;
        int r = (b = bound_at(k, k->ninit, &st)) != NULL && b->fini ? b->fini(k, st) : 0;
        if (r < 0 && rc == 0)
            rc = r;
        r = m->fini ? m->fini(k, k->mod_state[k->ninit]) : 0;
        if (r < 0 && rc == 0)
            rc = r;
        k->mod_state[k->ninit] = NULL;
    }
    ks_dirlock_release(k->lock_fd);
    if (k->follow_efd >= 0)
        close(k->follow_efd);
    kio_close(k->io);
    klog_conf_free(k->conf);
    pthread_mutex_destroy(&k->mu);
    pthread_mutex_destroy(&k->bg_mu);
    pthread_mutex_destroy(&k->ev_mu);
    pthread_mutex_destroy(&k->bind_mu);
    pthread_mutex_destroy(&k->stats_mu);
    klog__log_flush(k); /* lines the last syncs queued */
    pthread_mutex_destroy(&k->log_mu);
    pthread_mutex_destroy(&k->logq_mu);
    pthread_cond_destroy(&k->bg_cv);
    free(k);
    return rc;
}

KLOG_API const char *klog_io_backend(const klog *k)
{
    return k ? kio_name(k->io) : "none";
}

/* ---- public: the log ---------------------------------------------------------------------- */

KLOG_API int klog_set_log_cb(klog *k, klog_log_cb cb, void *opaque)
{
    if (!k)
        return -EINVAL;
    pthread_mutex_lock(&k->log_mu);
    k->log_cb = cb;
    k->log_opaque = opaque;
    pthread_mutex_unlock(&k->log_mu);
    return 0;
}

void klog__log(klog *k, int level, int err, const char *facility, const char *fmt, ...)
{
    pthread_mutex_lock(&k->log_mu);
    if (k->log_cb) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        k->log_cb(k->log_opaque, level, err, facility, msg);
    }
    pthread_mutex_unlock(&k->log_mu);
}

typedef struct kt_logline {
    struct kt_logline *next;
    int level, err;
    const char *facility; /* a string literal */
    char msg[];
} kt_logline;

void klog__log_defer(klog *k, int level, int err, const char *facility, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(msg) + 1;
    kt_logline *l = malloc(sizeof *l + n);
    if (!l)
        return; /* out of memory: the line is lost, the failure itself is not (klog_stats) */
    l->next = NULL;
    l->level = level;
    l->err = err;
    l->facility = facility;
    memcpy(l->msg, msg, n);
    pthread_mutex_lock(&k->logq_mu);
    if (k->logq_tail)
        k->logq_tail->next = l;
    else
        k->logq_head = l;
    k->logq_tail = l;
    pthread_mutex_unlock(&k->logq_mu);
    pthread_mutex_lock(&k->bg_mu);
    k->bg_report = true;
    pthread_cond_signal(&k->bg_cv);
    pthread_mutex_unlock(&k->bg_mu);
}

void klog__log_flush(klog *k)
{
    pthread_mutex_lock(&k->logq_mu);
    kt_logline *l = k->logq_head;
    k->logq_head = k->logq_tail = NULL;
    pthread_mutex_unlock(&k->logq_mu);
    for (kt_logline *nx; l; l = nx) {
        nx = l->next;
        klog__log(k, l->level, l->err, l->facility, "%s", l->msg);
        free(l);
    }
}

/* A partition log turned read-only (ks_log_set_fail_hook), on the thread
 * whose fsync failed, maybe under the log's locks: queued. */
static void part_failed(void *arg, const char *dir, int err)
{
    klog *k = arg;
    const char *base = strrchr(dir, '/');
    klog__log_defer(k, KLOG_LOG_ERR, err, "fsync", "%s: %s: the partition is read-only from now on (%s)",
                    base ? base + 1 : dir, klog_strerror(err), klog_err_name(err));
}

/* ---- public: topics ---------------------------------------------------------------------- */

KLOG_API int klog_topic_create(klog *k, const char *name, int partitions, const klog_conf *topic_conf,
                               char *errbuf, size_t errsize)
{
    if (!k)
        return -EINVAL;
    if (k->read_only)
        return klog__errf(errbuf, errsize, KLOG_EREADONLY, "%s: the instance is read-only", k->dir);
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
    if ((rc = open_parts(k, t, 0, partitions, false)) < 0) {
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
    if (k->read_only)
        return KLOG_EREADONLY;
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
        if (rc == 0 && (rc = kio_rename(k->io, from, to)) == -ENOENT && ks_log_damage(kpart_log(t->parts[p])))
            rc = 0; /* a damaged partition whose directory is gone: nothing to rename */
        if (rc == 0)
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
    if (k->read_only)
        return KLOG_EREADONLY;
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
        else if ((rc = open_parts(k, t, cur, total, false)) == 0 && (rc = meta_write(k)) < 0) {
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

KLOG_API int klog_topic_repair(klog *k, const char *name, int32_t partition, char *report, size_t report_size)
{
    if (report && report_size)
        report[0] = '\0';
    if (!k)
        return -EINVAL;
    kt_topic *t = klog__topic_get(k, name);
    if (!t)
        return klog__topic_name_check(name) < 0 ? KLOG_EBADNAME : KLOG_EUNKNOWN_TOPIC;
    int rc;
    if (partition < 0 || partition >= atomic_load_explicit(&t->nparts, memory_order_acquire))
        rc = KLOG_EUNKNOWN_PARTITION;
    else
        rc = kpart_repair(t->parts[partition], report, report_size);
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
    if (k->read_only)
        return klog__errf(errbuf, errsize, KLOG_EREADONLY, "%s: the instance is read-only", k->dir);
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
