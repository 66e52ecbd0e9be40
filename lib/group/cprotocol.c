/*
 * lib/group/cprotocol.c - Kafka's ConsumerProtocol Subscription and
 * Assignment (layout and rules in cprotocol.h).
 *
 * Decoding runs the same parser twice: the first pass checks everything and
 * measures the memory the result needs, the second fills one allocation of
 * that size (it cannot fail: the input was checked).  So a decoded value is
 * one block, freed at once, and no error path frees half a result.
 * Encoding does the same: a pass that checks and measures, then a pass that
 * writes.
 */
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <klog/klog.h>

#include "group/cprotocol.h"

/* ---- reading ------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t n;                  /* bytes left */
} rd;

/* The result's memory: measured when base is NULL, filled otherwise. */
typedef struct arena {
    uint8_t *base;
    size_t off;
} arena;

static void *take(arena *a, size_t size, size_t align)
{
    a->off = (a->off + align - 1) & ~(align - 1);
    void *p = a->base ? a->base + a->off : NULL;
    a->off += size;
    return p;
}

static int rd_i16(rd *r, int16_t *v)
{
    if (r->n < 2)
        return KLOG_ECORRUPT;
    *v = (int16_t)(uint16_t)((unsigned)r->p[0] << 8 | r->p[1]);
    r->p += 2;
    r->n -= 2;
    return 0;
}

static int rd_i32(rd *r, int32_t *v)
{
    if (r->n < 4)
        return KLOG_ECORRUPT;
    *v = (int32_t)((uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3]);
    r->p += 4;
    r->n -= 4;
    return 0;
}

/* An array count: non-negative, within the cap, and no more items than the
 * bytes left could hold at min_item bytes each. */
static int rd_count(rd *r, size_t min_item, uint32_t *n)
{
    int32_t c;
    int rc = rd_i32(r, &c);
    if (rc < 0)
        return rc;
    if (c < 0 || (uint32_t)c > KG_CP_ITEMS_MAX || (size_t)c * min_item > r->n)
        return KLOG_ECORRUPT;
    *n = (uint32_t)c;
    return 0;
}

/* A string into the arena, NUL-terminated.  nullable: length -1 gives NULL.
 * min: the shortest length allowed. */
static int rd_str(rd *r, arena *a, bool nullable, size_t min, size_t max, const char **out)
{
    int16_t l;
    int rc = rd_i16(r, &l);
    if (rc < 0)
        return rc;
    if (l == -1 && nullable) {
        *out = NULL;
        return 0;
    }
    if (l < 0 || (size_t)l < min || (size_t)l > max || (size_t)l > r->n || memchr(r->p, 0, (size_t)l))
        return KLOG_ECORRUPT;
    char *s = take(a, (size_t)l + 1, 1);
    if (s) {
        memcpy(s, r->p, (size_t)l);
        s[l] = '\0';
    }
    *out = s;
    r->p += l;
    r->n -= (size_t)l;
    return 0;
}

/* Nullable bytes into the arena. */
static int rd_bytes(rd *r, arena *a, const uint8_t **out, int32_t *len)
{
    int32_t l;
    int rc = rd_i32(r, &l);
    if (rc < 0)
        return rc;
    if (l == -1) {
        *out = NULL;
        *len = -1;
        return 0;
    }
    if (l < 0 || (uint32_t)l > KG_CP_USERDATA_MAX || (size_t)l > r->n)
        return KLOG_ECORRUPT;
    uint8_t *b = take(a, (size_t)l ? (size_t)l : 1, 1);
    if (b && l)
        memcpy(b, r->p, (size_t)l);
    *out = b;
    *len = l;
    r->p += l;
    r->n -= (size_t)l;
    return 0;
}

/* [ {string topic, [i32] partitions} ] */
static int rd_topics(rd *r, arena *a, const kg_cp_topic **out, uint32_t *nout)
{
    uint32_t n;
    int rc = rd_count(r, 2 + 1 + 4, &n); /* a name of at least one byte and a count */
    if (rc < 0)
        return rc;
    kg_cp_topic *t = take(a, n * sizeof *t, alignof(kg_cp_topic));
    for (uint32_t i = 0; i < n; i++) {
        const char *name;
        uint32_t np;
        if ((rc = rd_str(r, a, false, 1, KG_CP_NAME_MAX, &name)) < 0 || (rc = rd_count(r, 4, &np)) < 0)
            return rc;
        int32_t *parts = take(a, np * sizeof *parts, alignof(int32_t));
        for (uint32_t j = 0; j < np; j++) {
            int32_t v;
            if ((rc = rd_i32(r, &v)) < 0)
                return rc;
            if (v < 0)
                return KLOG_ECORRUPT;
            if (parts)
                parts[j] = v;
        }
        if (t)
            t[i] = (kg_cp_topic){ name, np ? parts : NULL, np };
    }
    *out = n ? t : NULL;
    *nout = n;
    return 0;
}

static int parse_subscription(const uint8_t *p, size_t len, arena *a, kg_cp_subscription *s)
{
    rd r = { p, len };
    memset(s, 0, sizeof *s);
    s->generation = -1;
    int16_t v = 0;
    uint32_t n = 0;
    int rc = rd_i16(&r, &v);
    if (rc == 0 && v < 0)
        rc = KLOG_ECORRUPT;
    if (rc == 0)
        rc = rd_count(&r, 2 + 1, &n);
    if (rc < 0)
        return rc;
    s->version = v;
    const char **topics = take(a, n * sizeof *topics, alignof(const char *));
    for (uint32_t i = 0; i < n; i++) {
        const char *name;
        if ((rc = rd_str(&r, a, false, 1, KG_CP_NAME_MAX, &name)) < 0)
            return rc;
        if (topics)
            topics[i] = name;
    }
    s->topics = n ? topics : NULL;
    s->ntopics = n;
    if ((rc = rd_bytes(&r, a, &s->user_data, &s->user_data_len)) < 0)
        return rc;
    if (v >= 1 && (rc = rd_topics(&r, a, &s->owned, &s->nowned)) < 0)
        return rc;
    if (v >= 2 && (rc = rd_i32(&r, &s->generation)) < 0)
        return rc;
    if (v >= 3 && (rc = rd_str(&r, a, true, 0, KG_CP_RACK_MAX, &s->rack)) < 0)
        return rc;
    return 0; /* trailing bytes (a newer version's fields) are ignored */
}

static int parse_assignment(const uint8_t *p, size_t len, arena *a, kg_cp_assignment *s)
{
    rd r = { p, len };
    memset(s, 0, sizeof *s);
    int16_t v = 0;
    int rc = rd_i16(&r, &v);
    if (rc == 0 && v < 0)
        rc = KLOG_ECORRUPT;
    if (rc == 0)
        rc = rd_topics(&r, a, &s->topics, &s->ntopics);
    if (rc == 0)
        rc = rd_bytes(&r, a, &s->user_data, &s->user_data_len);
    s->version = v;
    return rc;
}

/* Decode in two passes: the first checks everything and sizes the arena,
 * the second fills it (and cannot fail), so one allocation holds all. */
typedef int (*parse_fn)(const uint8_t *p, size_t len, arena *a, void *out);

static int decode_twice(const uint8_t *p, size_t len, parse_fn parse, void *out, void *probe, size_t size,
                        void **mem)
{
    if (!out)
        return -EINVAL;
    memset(out, 0, size);
    if (!p && len)
        return -EINVAL;
    arena a = { 0 };
    int rc = parse(p, len, &a, probe);
    if (rc < 0)
        return rc;
    if (!(a.base = malloc(a.off ? a.off : 1)))
        return -ENOMEM;
    a.off = 0;
    (void)parse(p, len, &a, out); /* checked above: cannot fail */
    *mem = a.base;
    return 0;
}

static int parse_subscription_v(const uint8_t *p, size_t len, arena *a, void *out)
{
    return parse_subscription(p, len, a, out);
}

static int parse_assignment_v(const uint8_t *p, size_t len, arena *a, void *out)
{
    return parse_assignment(p, len, a, out);
}

int kg_cp_subscription_decode(const uint8_t *p, size_t len, kg_cp_subscription *out)
{
    kg_cp_subscription probe;
    return decode_twice(p, len, parse_subscription_v, out, &probe, sizeof *out, out ? &out->mem_ : NULL);
}

int kg_cp_assignment_decode(const uint8_t *p, size_t len, kg_cp_assignment *out)
{
    kg_cp_assignment probe;
    return decode_twice(p, len, parse_assignment_v, out, &probe, sizeof *out, out ? &out->mem_ : NULL);
}

void kg_cp_subscription_free(kg_cp_subscription *s)
{
    if (!s)
        return;
    free(s->mem_);
    memset(s, 0, sizeof *s);
}

void kg_cp_assignment_free(kg_cp_assignment *a)
{
    if (!a)
        return;
    free(a->mem_);
    memset(a, 0, sizeof *a);
}

/* ---- writing ------------------------------------------------------------------- */

/* Measures when p is NULL, writes otherwise. */
typedef struct wr {
    uint8_t *p;
    size_t off;
} wr;

static void w_i16(wr *w, int16_t v)
{
    if (w->p) {
        w->p[w->off] = (uint8_t)((uint16_t)v >> 8);
        w->p[w->off + 1] = (uint8_t)v;
    }
    w->off += 2;
}

static void w_i32(wr *w, int32_t v)
{
    uint32_t u = (uint32_t)v;
    if (w->p) {
        w->p[w->off] = (uint8_t)(u >> 24);
        w->p[w->off + 1] = (uint8_t)(u >> 16);
        w->p[w->off + 2] = (uint8_t)(u >> 8);
        w->p[w->off + 3] = (uint8_t)u;
    }
    w->off += 4;
}

static void w_raw(wr *w, const void *b, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->off, b, n);
    w->off += n;
}

static int w_str(wr *w, const char *s, bool nullable, size_t min, size_t max)
{
    if (!s) {
        if (!nullable)
            return -EINVAL;
        w_i16(w, -1);
        return 0;
    }
    size_t l = strlen(s);
    if (l < min || l > max)
        return -EINVAL;
    w_i16(w, (int16_t)l);
    w_raw(w, s, l);
    return 0;
}

static int w_bytes(wr *w, const uint8_t *b, int32_t len)
{
    if (len == -1) {
        w_i32(w, -1);
        return 0;
    }
    if (len < 0 || (uint32_t)len > KG_CP_USERDATA_MAX || (len > 0 && !b))
        return -EINVAL;
    w_i32(w, len);
    w_raw(w, b, (size_t)len);
    return 0;
}

static int w_topics(wr *w, const kg_cp_topic *t, uint32_t n)
{
    if (n > KG_CP_ITEMS_MAX || (n && !t))
        return -EINVAL;
    w_i32(w, (int32_t)n);
    for (uint32_t i = 0; i < n; i++) {
        int rc = w_str(w, t[i].topic, false, 1, KG_CP_NAME_MAX);
        if (rc < 0)
            return rc;
        if (t[i].npartitions > KG_CP_ITEMS_MAX || (t[i].npartitions && !t[i].partitions))
            return -EINVAL;
        w_i32(w, (int32_t)t[i].npartitions);
        for (uint32_t j = 0; j < t[i].npartitions; j++) {
            if (t[i].partitions[j] < 0)
                return -EINVAL;
            w_i32(w, t[i].partitions[j]);
        }
    }
    return 0;
}

static int put_subscription(wr *w, const kg_cp_subscription *s)
{
    if (s->version < 0 || s->version > 3 || s->ntopics > KG_CP_ITEMS_MAX || (s->ntopics && !s->topics))
        return -EINVAL;
    w_i16(w, s->version);
    w_i32(w, (int32_t)s->ntopics);
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < s->ntopics; i++)
        rc = w_str(w, s->topics[i], false, 1, KG_CP_NAME_MAX);
    if (rc == 0)
        rc = w_bytes(w, s->user_data, s->user_data_len);
    if (rc == 0 && s->version >= 1)
        rc = w_topics(w, s->owned, s->nowned);
    if (rc == 0 && s->version >= 2)
        w_i32(w, s->generation);
    if (rc == 0 && s->version >= 3)
        rc = w_str(w, s->rack, true, 0, KG_CP_RACK_MAX);
    return rc;
}

static int put_assignment(wr *w, const kg_cp_assignment *a)
{
    if (a->version < 0 || a->version > 3)
        return -EINVAL;
    w_i16(w, a->version);
    int rc = w_topics(w, a->topics, a->ntopics);
    return rc < 0 ? rc : w_bytes(w, a->user_data, a->user_data_len);
}

int kg_cp_subscription_encode(const kg_cp_subscription *s, uint8_t **out, size_t *len)
{
    if (!s || !out || !len)
        return -EINVAL;
    wr w = { 0 };
    int rc = put_subscription(&w, s);
    if (rc < 0)
        return rc;
    if (!(w.p = malloc(w.off)))
        return -ENOMEM;
    *len = w.off;
    w.off = 0;
    (void)put_subscription(&w, s);
    *out = w.p;
    return 0;
}

int kg_cp_assignment_encode(const kg_cp_assignment *a, uint8_t **out, size_t *len)
{
    if (!a || !out || !len)
        return -EINVAL;
    wr w = { 0 };
    int rc = put_assignment(&w, a);
    if (rc < 0)
        return rc;
    if (!(w.p = malloc(w.off)))
        return -ENOMEM;
    *len = w.off;
    w.off = 0;
    (void)put_assignment(&w, a);
    *out = w.p;
    return 0;
}

/* ---- partition lists ------------------------------------------------------------- */

int kg_cp_topics_from_tps(const kg_tp *tp, unsigned n, kg_cp_topic **out)
{
    if (!out || (n && !tp))
        return -EINVAL;
    *out = NULL;
    /* topic index of every entry, and the distinct topics */
    unsigned *ti = malloc((n ? n : 1) * sizeof *ti);
    unsigned *first = malloc((n ? n : 1) * sizeof *first); /* an entry of each topic */
    unsigned *cnt = calloc(n ? n : 1, sizeof *cnt);
    int rc = ti && first && cnt ? 0 : -ENOMEM;
    unsigned nt = 0;
    for (unsigned i = 0; rc == 0 && i < n; i++) {
        if (!tp[i].topic) {
            rc = -EINVAL;
            break;
        }
        unsigned k = 0;
        while (k < nt && strcmp(tp[first[k]].topic, tp[i].topic) != 0)
            k++;
        if (k == nt)
            first[nt++] = i;
        ti[i] = k;
        cnt[k]++;
    }
    kg_cp_topic *t = NULL;
    if (rc == 0) {
        size_t head = ((nt ? nt : 1) * sizeof *t + alignof(int32_t) - 1) & ~(alignof(int32_t) - 1);
        t = malloc(head + n * sizeof(int32_t));
        if (!t)
            rc = -ENOMEM;
        int32_t *parts = t ? (int32_t *)(void *)((uint8_t *)t + head) : NULL;
        for (unsigned k = 0; t && k < nt; k++) {
            t[k] = (kg_cp_topic){ tp[first[k]].topic, parts, 0 };
            parts += cnt[k];
        }
        for (unsigned i = 0; t && i < n; i++) {
            kg_cp_topic *e = &t[ti[i]];
            ((int32_t *)e->partitions)[e->npartitions++] = tp[i].partition;
        }
    }
    free(ti);
    free(first);
    free(cnt);
    if (rc < 0)
        return rc;
    *out = t;
    return (int)nt;
}
