/*
 * lib/storage/cache.c - the instance's caps on what its logs hold
 * (storage.h: ks_cache): open files of active segments, and sealed
 * segments' indexes in memory.
 *
 * Both lists are kept most recently added first, under cache->mu, and
 * swept from the tail with a second chance: an entry used since the sweep
 * last passed it (hot) is moved to the head instead of dropped.  Using an
 * entry only sets its hot flag (no lock), so appends and lookups never
 * queue on cache->mu.
 *
 * Locks: mu ranks below a log's append_mu and a segment's ix_mu (it is
 * taken inside them).  A sweep, holding mu, only try-locks the victim's
 * append_mu (files) or ix_mu (indexes) and passes over a victim it cannot
 * lock at once, so no order is ever inverted.
 *
 * Files: a segment's handle (s->h) changes only under its log's
 * append_mu: the log opens it there (ks__seg_h), and a sweep closes it
 * holding that lock, and only when nobody uses it outside the lock (no
 * group-commit leader syncing it, h_users; no background prefill writing
 * to it, pf_busy).  A handle the log got under append_mu therefore stays
 * open until it lets go of the lock.  A segment is on the list only while
 * it is its log's active segment and the log is open: a roll, a
 * truncation that replaces it, and close take it off (ks__seg_h_drop), so
 * the sweep never meets a freed log.  A write-back error that happens
 * while the file is closed is still reported to the next fdatasync of the
 * reopened file (Linux reports an error no descriptor has seen to the
 * next one opened, since 4.16).
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "common/common.h"
#include "storage/internal.h"

int ks_cache_new(ks_cache **out, unsigned max_open_files, uint64_t index_bytes)
{
    if (!out)
        return -EINVAL;
    ks_cache *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    c->fh_limit = max_open_files;
    c->ix_limit = index_bytes;
    *out = c;
    return 0;
}

void ks_cache_free(ks_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void ks_cache_get_stats(ks_cache *c, ks_cache_stats *o)
{
    memset(o, 0, sizeof *o);
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    o->open_files = c->fh_open;
    o->index_bytes = c->ix_bytes;
    o->reopens = c->fh_reopens;
    o->index_loads = c->ix_loads;
    pthread_mutex_unlock(&c->mu);
}

/* ---- the lists (mu held) ------------------------------------------------- */

/* A doubly linked list through prev/next fields at the given offsets,
 * circular through head: head->prev is the tail. */
#define LIST_FNS(NAME, PREV, NEXT, IN, HEAD)                                        \
    static void NAME##_unlink(ks_cache *c, ks_segment *s)                            \
    {                                                                                \
        if (s->NEXT == s) {                                                          \
            c->HEAD = NULL;                                                          \
        } else {                                                                     \
            s->PREV->NEXT = s->NEXT;                                                 \
            s->NEXT->PREV = s->PREV;                                                 \
            if (c->HEAD == s)                                                        \
                c->HEAD = s->NEXT;                                                   \
        }                                                                            \
        s->PREV = s->NEXT = NULL;                                                    \
        s->IN = false;                                                               \
    }                                                                                \
    static void NAME##_push(ks_cache *c, ks_segment *s)                              \
    {                                                                                \
        if (!c->HEAD) {                                                              \
            s->PREV = s->NEXT = s;                                                   \
        } else {                                                                     \
            ks_segment *h = c->HEAD;                                                 \
            s->NEXT = h;                                                             \
            s->PREV = h->PREV;                                                       \
            h->PREV->NEXT = s;                                                       \
            h->PREV = s;                                                             \
        }                                                                            \
        c->HEAD = s;                                                                 \
        s->IN = true;                                                                \
    }

LIST_FNS(fhl, fhc_prev, fhc_next, fhc_in, fh_head)
LIST_FNS(ixl, ixc_prev, ixc_next, ixc_in, ix_head)

/* ---- open files ---------------------------------------------------------------- */

typedef struct fh_victim { kio *io; int h; } fh_victim;
#define FH_SWEEP_MAX 16 /* handles one sweep closes at most */

/* Close least recently used handles while more than the limit are open
 * (mu held); `keep` is never closed.  Returns how many were taken into v
 * (closed by the caller once mu is released). */
static unsigned fh_sweep(ks_cache *c, ks_segment *keep, fh_victim *v)
{
    unsigned n = 0;
    /* each entry is looked at no more than twice: hot once, then cold */
    for (unsigned steps = 2 * c->fh_open + 2; c->fh_limit && c->fh_open > c->fh_limit && steps > 0 &&
                                              n < FH_SWEEP_MAX && c->fh_head; steps--) {
        ks_segment *t = c->fh_head->fhc_prev; /* the tail */
        fhl_unlink(c, t);
        if (t == keep || atomic_exchange_explicit(&t->fhc_hot, false, memory_order_relaxed)) {
            fhl_push(c, t); /* second chance */
            continue;
        }
        ks_log *log = t->owner;
        if (pthread_mutex_trylock(&log->append_mu) != 0) {
            fhl_push(c, t); /* in use: try another */
            continue;
        }
        if (t->h_users > 0 || atomic_load(&log->pf_busy) || t->h < 0) {
            pthread_mutex_unlock(&log->append_mu);
            fhl_push(c, t);
            continue;
        }
        v[n++] = (fh_victim){ t->io, t->h };
        t->h = -1;
        c->fh_open--;
        pthread_mutex_unlock(&log->append_mu);
    }
    return n;
}

void ks__seg_h_adopt(ks_log *log, ks_segment *s)
{
    ks_cache *c = log->cfg.cache;
    if (!c || s->h < 0 || s->fhc_in)
        return;
    fh_victim v[FH_SWEEP_MAX];
    pthread_mutex_lock(&c->mu);
    s->owner = log;
    s->cache = c;
    atomic_store_explicit(&s->fhc_hot, false, memory_order_relaxed);
    fhl_push(c, s);
    c->fh_open++;
    unsigned n = fh_sweep(c, s, v);
    pthread_mutex_unlock(&c->mu);
    for (unsigned i = 0; i < n; i++)
        kio_file_close(v[i].io, v[i].h);
}

int ks__seg_h_slow(ks_log *log, ks_segment *s)
{
    int h = kio_file_open(log->io, s->path, KIO_O_RDWR, 0);
    if (h < 0)
        return h;
    s->h = h;
    if (log->cfg.cache) {
        pthread_mutex_lock(&log->cfg.cache->mu);
        log->cfg.cache->fh_reopens++;
        pthread_mutex_unlock(&log->cfg.cache->mu);
    }
    ks__seg_h_adopt(log, s);
    return h;
}

void ks__seg_h_drop(ks_log *log, ks_segment *s)
{
    ks_cache *c = s->cache;
    if (s->fhc_in && c) {
        pthread_mutex_lock(&c->mu);
        if (s->fhc_in) {
            fhl_unlink(c, s);
            c->fh_open--;
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (s->h >= 0 && s->h_users == 0) {
        kio_file_close(log->io, s->h);
        s->h = -1;
    }
}

/* ---- index memory ---------------------------------------------------------------- */

/* Drop what the sweep chose (its ix_mu held, mu held). */
static void ix_evict(ks_cache *c, ks_segment *t)
{
    ixl_unlink(c, t);
    c->ix_count--;
    c->ix_bytes -= t->ixc_bytes;
    t->ixc_bytes = 0;
    ks__seg_ix_drop_locked(t);
}

void ks__ixc_add(ks_segment *s, uint64_t bytes)
{
    ks_cache *c = s->cache;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->ix_loads++;
    if (!s->ixc_in) {
        ixl_push(c, s);
        c->ix_count++;
        s->ixc_bytes = bytes;
        c->ix_bytes += bytes;
    }
    atomic_store_explicit(&s->ixc_hot, false, memory_order_relaxed);
    /* each entry is looked at no more than twice: hot once, then cold */
    for (unsigned steps = 2 * c->ix_count + 2; c->ix_limit && c->ix_bytes > c->ix_limit && steps > 0; steps--) {
        ks_segment *t = c->ix_head->ixc_prev; /* the tail */
        if (t == s && c->ix_count == 1)
            break; /* only the one just loaded is left: it stays, over the cap */
        if (t == s || atomic_exchange_explicit(&t->ixc_hot, false, memory_order_relaxed) ||
            pthread_mutex_trylock(&t->ix_mu) != 0) {
            ixl_unlink(c, t); /* second chance, or in use: try another */
            ixl_push(c, t);
            continue;
        }
        ix_evict(c, t);
        pthread_mutex_unlock(&t->ix_mu);
    }
    pthread_mutex_unlock(&c->mu);
}

void ks__ixc_del(ks_segment *s)
{
    ks_cache *c = s->cache;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    if (s->ixc_in) {
        ixl_unlink(c, s);
        c->ix_count--;
        c->ix_bytes -= s->ixc_bytes;
        s->ixc_bytes = 0;
    }
    pthread_mutex_unlock(&c->mu);
}
