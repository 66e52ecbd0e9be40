/*
 * lib/storage/epoch.c - the leader epoch cache and leader-epoch-checkpoint
 * (contract in storage/epoch.h).
 *
 * The cache is a sorted array.  Every change is first described as a plan
 * (an optional new first entry, a kept range of the old array, an optional
 * new last entry), the plan is written to disk, and only then applied to
 * the array; so a failed write leaves memory as it was, and applying a plan
 * cannot fail (room for a new last entry is made before the write).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/error.h>

#include "common/common.h"
#include "storage/epoch.h"
#include "storage/storage.h"

#define EP_PATH 4096

/* Longest line we write: "-2147483648 -9223372036854775808\n" is 33. */
#define EP_LINE_MAX 34

struct ks_epochs {
    kio *io;
    ks_epoch_entry *v; /* sorted; epochs and start offsets strictly increase */
    size_t n, cap;
    char dir[]; /* as long as it is: thousands of partitions each have one */
};

/* The cache after a change: [head] v[lo..hi) [tail]. */
typedef struct plan {
    bool head, tail;
    ks_epoch_entry h, t;
    size_t lo, hi;
} plan;

/* ---- writing ------------------------------------------------------------ */

static size_t plan_count(const plan *pl)
{
    return (pl->head ? 1 : 0) + (pl->hi - pl->lo) + (pl->tail ? 1 : 0);
}

static const ks_epoch_entry *plan_at(const ks_epochs *c, const plan *pl, size_t i)
{
    if (pl->head) {
        if (i == 0)
            return &pl->h;
        i--;
    }
    if (i < pl->hi - pl->lo)
        return &c->v[pl->lo + i];
    return &pl->t;
}

/* Serialise the cache as it would be after pl, write it atomically, then
 * apply pl to memory. */
static int commit(ks_epochs *c, const plan *pl)
{
    size_t n = plan_count(pl);
    size_t cap = 2 * 16 + n * EP_LINE_MAX;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    size_t len = (size_t)snprintf(buf, cap, "%d\n%zu\n", KS_EPOCH_FILE_VERSION, n);
    for (size_t i = 0; i < n; i++) {
        const ks_epoch_entry *e = plan_at(c, pl, i);
        len += (size_t)snprintf(buf + len, cap - len, "%d %lld\n", (int)e->epoch, (long long)e->start_offset);
    }
    int rc = ks_write_atomic(c->io, c->dir, KS_EPOCH_FILE, buf, len);
    free(buf);
    if (rc < 0)
        return rc;

    /* Apply: the range first (head, when present, lands just before it). */
    size_t keep = pl->hi - pl->lo;
    size_t at = pl->head ? 1 : 0;
    if (keep > 0 && pl->lo != at)
        memmove(c->v + at, c->v + pl->lo, keep * sizeof *c->v);
    if (pl->head)
        c->v[0] = pl->h;
    if (pl->tail)
        c->v[at + keep] = pl->t; /* room made by the caller */
    c->n = n;
    return 1;
}

/* ---- the API -------------------------------------------------------------- */

/* A new, empty cache for dir; path receives its file's path. */
static int epochs_new(ks_epochs **out, kio *io, const char *dir, char path[EP_PATH])
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!io || !dir)
        return -EINVAL;
    size_t dl = strlen(dir);
    if (dl >= EP_PATH || snprintf(path, EP_PATH, "%s/%s", dir, KS_EPOCH_FILE) >= EP_PATH)
        return -ENAMETOOLONG;
    ks_epochs *c = calloc(1, sizeof *c + dl + 1);
    if (!c)
        return -ENOMEM;
    c->io = io;
    memcpy(c->dir, dir, dl + 1);
    *out = c;
    return 0;
}

int ks_epochs_new(ks_epochs **out, kio *io, const char *dir)
{
    char path[EP_PATH];
    return epochs_new(out, io, dir, path);
}

int ks_epochs_open(ks_epochs **out, kio *io, const char *dir)
{
    return ks_epochs_open_why(out, io, dir, NULL, 0);
}

int ks_epochs_open_why(ks_epochs **out, kio *io, const char *dir, char *why, size_t whysize)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    char path[EP_PATH];
    ks_epochs *c;
    int rc = epochs_new(&c, io, dir, path);
    if (rc < 0)
        return rc;
    char *buf = NULL;
    int h = kio_file_open(io, path, KIO_O_RDONLY, 0);
    if (h == -ENOENT) {
        *out = c; /* no file yet: empty */
        return 0;
    }
    if (h < 0) {
        rc = h;
        goto fail;
    }
    uint64_t size = 0;
    rc = kio_size(io, h, &size);
    if (rc == 0 && size > KL_EPOCH_FILE_MAX) {
        rc = KLOG_ECORRUPT;
        if (why && whysize)
            snprintf(why, whysize, "%llu bytes: too large", (unsigned long long)size);
    }
    if (rc == 0 && !(buf = malloc(size ? (size_t)size : 1)))
        rc = -ENOMEM;
    ssize_t got = 0;
    if (rc == 0 && (got = kio_pread(io, h, buf, (size_t)size, 0)) < 0)
        rc = (int)got;
    kio_file_close(io, h);
    if (rc == 0 && (rc = kl_epochs_parse(buf, (size_t)got, &c->v, &c->n, why, whysize)) == 0)
        c->cap = c->n;
    free(buf);
    if (rc < 0)
        goto fail;
    *out = c;
    return 0;
fail:
    ks_epochs_close(c);
    return rc;
}

void ks_epochs_close(ks_epochs *c)
{
    if (!c)
        return;
    free(c->v);
    free(c);
}

int ks_epochs_assign(ks_epochs *c, int32_t epoch, int64_t start_offset)
{
    if (!c || epoch < 0 || start_offset < 0)
        return -EINVAL;
    if (c->n > 0) {
        const ks_epoch_entry *last = &c->v[c->n - 1];
        if (last->epoch == epoch && start_offset >= last->start_offset)
            return 0; /* already implied */
    }
    /* Keep the prefix that conflicts with neither the epoch nor the offset
     * (both increase along the array, so the conflicting entries are a
     * suffix). */
    size_t k = c->n;
    while (k > 0 && (c->v[k - 1].epoch >= epoch || c->v[k - 1].start_offset >= start_offset))
        k--;
    int rc = klog__vec_reserve(&c->v, &c->cap, k + 1, sizeof *c->v);
    if (rc < 0)
        return rc;
    plan pl = { .lo = 0, .hi = k, .tail = true, .t = { epoch, start_offset } };
    return commit(c, &pl);
}

int ks_epochs_truncate_from_end(ks_epochs *c, int64_t end_offset)
{
    if (!c)
        return -EINVAL;
    if (end_offset < 0)
        return 0;
    size_t k = c->n;
    while (k > 0 && c->v[k - 1].start_offset >= end_offset)
        k--;
    if (k == c->n)
        return 0;
    plan pl = { .lo = 0, .hi = k };
    return commit(c, &pl);
}

int ks_epochs_truncate_from_start(ks_epochs *c, int64_t start_offset)
{
    if (!c)
        return -EINVAL;
    /* j = entries starting at or below start_offset. */
    size_t j = 0;
    while (j < c->n && c->v[j].start_offset <= start_offset)
        j++;
    if (j == 0 || (j == 1 && c->v[0].start_offset == start_offset))
        return 0;
    plan pl = { .head = true, .h = { c->v[j - 1].epoch, start_offset }, .lo = j, .hi = c->n };
    return commit(c, &pl);
}

int32_t ks_epochs_latest(const ks_epochs *c)
{
    return c && c->n > 0 ? c->v[c->n - 1].epoch : KS_EPOCH_UNDEFINED;
}

void ks_epochs_end_offset_for(const ks_epochs *c, int32_t epoch, int64_t log_end, int32_t *out_epoch,
                              int64_t *out_end)
{
    *out_epoch = KS_EPOCH_UNDEFINED;
    *out_end = KS_EPOCH_OFFSET_UNDEFINED;
    if (!c || c->n == 0 || epoch == KS_EPOCH_UNDEFINED)
        return;
    if (c->v[c->n - 1].epoch == epoch) {
        *out_epoch = epoch;
        *out_end = log_end;
        return;
    }
    /* First entry with an epoch above the one asked for. */
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->v[mid].epoch > epoch)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == c->n)
        return; /* above every known epoch */
    *out_end = c->v[lo].start_offset;
    *out_epoch = lo > 0 ? c->v[lo - 1].epoch : epoch;
}

int32_t ks_epochs_epoch_for_offset(const ks_epochs *c, int64_t offset)
{
    if (!c)
        return KS_EPOCH_UNDEFINED;
    /* First entry starting above offset; the one before it wrote offset. */
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->v[mid].start_offset > offset)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo > 0 ? c->v[lo - 1].epoch : KS_EPOCH_UNDEFINED;
}

size_t ks_epochs_count(const ks_epochs *c)
{
    return c ? c->n : 0;
}

int ks_epochs_entry(const ks_epochs *c, size_t i, ks_epoch_entry *out)
{
    if (!c || i >= c->n)
        return -ERANGE;
    *out = c->v[i];
    return 0;
}
