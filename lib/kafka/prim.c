/*
 * lib/kafka/prim.c - Kafka's primitive types: the bounded reader (kk_rd)
 * and the growable writer (kk_wbuf).  Big-endian fixed-width integers,
 * Kafka's varints (protobuf base-128; signed ones zigzag), length-prefixed
 * strings and bytes, array counts, and the tagged-fields section of
 * flexible versions.
 *
 * The reader never reads outside [p, end): every read first checks what is
 * left, and the first error stops it (p = end) so that a decoder may run
 * on to its end without checking after every field.
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "kafka/kafka.h"

/* ---- reader ------------------------------------------------------------------ */

void kk_rd_init(kk_rd *r, const void *p, size_t n)
{
    r->p = r->base = p;
    r->end = r->p + n;
    r->err = 0;
    r->fail = (kk_fail){ 0 };
}

void kk_rd_fail(kk_rd *r, int err, int reason)
{
    if (r->err)
        return;
    r->err = err;
    r->fail.reason = reason;
    r->fail.offset = (uint32_t)(r->p - r->base);
    r->p = r->end;
}

/* n bytes, or NULL (and the reader failed) if fewer are left. */
static inline const uint8_t *take(kk_rd *r, size_t n)
{
    if (KLOG_UNLIKELY((size_t)(r->end - r->p) < n)) {
        kk_rd_fail(r, KLOG_ECORRUPT, KK_R_TRUNCATED);
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

int8_t kk_rd_i8(kk_rd *r)
{
    const uint8_t *q = take(r, 1);
    return q ? (int8_t)q[0] : 0;
}

int16_t kk_rd_i16(kk_rd *r)
{
    const uint8_t *q = take(r, 2);
    return q ? (int16_t)__builtin_bswap16(klog__ld16(q)) : 0;
}

int32_t kk_rd_i32(kk_rd *r)
{
    const uint8_t *q = take(r, 4);
    return q ? (int32_t)__builtin_bswap32(klog__ld32(q)) : 0;
}

int64_t kk_rd_i64(kk_rd *r)
{
    const uint8_t *q = take(r, 8);
    return q ? (int64_t)__builtin_bswap64(klog__ld64(q)) : 0;
}

/* Base-128 varint of at most maxb bytes whose value fits in bits bits. */
static uint64_t rd_var(kk_rd *r, int maxb, int bits)
{
    uint64_t v = 0;
    for (int i = 0; i < maxb; i++) {
        const uint8_t *q = take(r, 1);
        if (!q)
            return 0;
        uint64_t b = q[0] & 0x7f;
        int shift = 7 * i;
        /* The last byte may only carry the bits that remain. */
        if (shift + 7 > bits && (b >> (bits - shift)) != 0) {
            r->p--;
            kk_rd_fail(r, KLOG_ECORRUPT, KK_R_VARINT);
            return 0;
        }
        v |= b << shift;
        if (!(q[0] & 0x80))
            return v;
    }
    r->p--;
    kk_rd_fail(r, KLOG_ECORRUPT, KK_R_VARINT);
    return 0;
}

uint32_t kk_rd_uvarint(kk_rd *r) { return (uint32_t)rd_var(r, 5, 32); }

int32_t kk_rd_varint(kk_rd *r)
{
    uint32_t u = (uint32_t)rd_var(r, 5, 32);
    return (int32_t)((u >> 1) ^ -(u & 1));
}

int64_t kk_rd_varlong(kk_rd *r)
{
    uint64_t u = rd_var(r, 10, 64);
    return (int64_t)((u >> 1) ^ -(u & 1));
}

/* Fail at the start of the field (its length prefix), where a reader of
 * the error looks first. */
static void fail_at(kk_rd *r, const uint8_t *start, int err, int reason)
{
    r->p = start;
    kk_rd_fail(r, err, reason);
}

/* A length already read from start (n: -1 null, >= 0 a length; below -1
 * bad) checked against nullability, the cap and what is left, then taken. */
static int32_t rd_sized(kk_rd *r, const uint8_t *start, int64_t n, bool nullable, uint32_t max,
                        const uint8_t **out)
{
    *out = NULL;
    if (r->err)
        return -1;
    if (n < -1) {
        fail_at(r, start, KLOG_ECORRUPT, KK_R_BAD_LENGTH);
        return -1;
    }
    if (n == -1) {
        if (!nullable)
            fail_at(r, start, KLOG_ECORRUPT, KK_R_NULL);
        return -1;
    }
    if ((uint64_t)n > max) {
        fail_at(r, start, KLOG_ETOOBIG, KK_R_LIMIT);
        return -1;
    }
    if ((size_t)n > kk_rd_left(r)) {
        fail_at(r, start, KLOG_ECORRUPT, KK_R_TRUNCATED);
        return -1;
    }
    const uint8_t *q = take(r, (size_t)n);
    *out = q;
    return (int32_t)n;
}

int32_t kk_rd_string(kk_rd *r, bool compact, bool nullable, uint32_t max, const uint8_t **out)
{
    const uint8_t *start = r->p;
    int64_t n = compact ? (int64_t)kk_rd_uvarint(r) - 1 : (int64_t)kk_rd_i16(r);
    return rd_sized(r, start, n, nullable, max, out);
}

int32_t kk_rd_bytes(kk_rd *r, bool compact, bool nullable, uint32_t max, const uint8_t **out)
{
    const uint8_t *start = r->p;
    int64_t n = compact ? (int64_t)kk_rd_uvarint(r) - 1 : (int64_t)kk_rd_i32(r);
    return rd_sized(r, start, n, nullable, max, out);
}

int32_t kk_rd_count(kk_rd *r, bool compact, bool nullable, uint32_t max, size_t min_elem)
{
    const uint8_t *start = r->p;
    int64_t n = compact ? (int64_t)kk_rd_uvarint(r) - 1 : (int64_t)kk_rd_i32(r);
    if (r->err)
        return -1;
    if (n < -1) {
        fail_at(r, start, KLOG_ECORRUPT, KK_R_BAD_LENGTH);
        return -1;
    }
    if (n == -1) {
        if (!nullable)
            fail_at(r, start, KLOG_ECORRUPT, KK_R_NULL);
        return -1;
    }
    if ((uint64_t)n > max) {
        fail_at(r, start, KLOG_ETOOBIG, KK_R_LIMIT);
        return -1;
    }
    if ((uint64_t)n * (min_elem ? min_elem : 1) > kk_rd_left(r)) {
        fail_at(r, start, KLOG_ECORRUPT, KK_R_COUNT);
        return -1;
    }
    return (int32_t)n;
}

void kk_rd_skip_tags(kk_rd *r)
{
    uint32_t n = kk_rd_uvarint(r);
    int64_t last = -1;
    for (uint32_t i = 0; i < n && !r->err; i++) {
        const uint8_t *start = r->p;
        uint32_t tag = kk_rd_uvarint(r);
        uint32_t size = kk_rd_uvarint(r);
        if (r->err)
            return;
        if ((int64_t)tag <= last || size > kk_rd_left(r)) {
            fail_at(r, start, KLOG_ECORRUPT, KK_R_TAGS);
            return;
        }
        last = tag;
        r->p += size;
    }
}

/* ---- writer ------------------------------------------------------------------ */

void kk_wbuf_init(kk_wbuf *w, size_t max)
{
    *w = (kk_wbuf){ .max = max ? max : KK_MAX_FRAME_DEFAULT };
}

void kk_wbuf_reset(kk_wbuf *w)
{
    w->n = 0;
    w->nrefs = 0;
    w->ref_bytes = 0;
    w->err = 0;
}

void kk_wbuf_free(kk_wbuf *w)
{
    free(w->b);
    free(w->refs);
    size_t max = w->max;
    kk_wbuf_init(w, max);
}

/* Room for k more bytes in b; false (and err set) if not. */
static bool grow(kk_wbuf *w, size_t k)
{
    if (w->err)
        return false;
    if (k > w->max || w->n + w->ref_bytes > w->max - k) {
        w->err = KLOG_ETOOBIG;
        return false;
    }
    if (w->n + k <= w->cap)
        return true; /* every write: no call when there is room */
    int rc = klog__vec_reserve(&w->b, &w->cap, KLOG_MAX(w->n + k, (size_t)256), 1);
    if (rc < 0) {
        w->err = rc;
        return false;
    }
    return true;
}

void kk_w_raw(kk_wbuf *w, const void *p, size_t n)
{
    if (n && grow(w, n)) {
        memcpy(w->b + w->n, p, n);
        w->n += n;
    }
}

void kk_w_ref(kk_wbuf *w, const void *p, size_t n)
{
    if (!w->ref_min || n < w->ref_min) {
        kk_w_raw(w, p, n);
        return;
    }
    if (w->err)
        return;
    if (n > w->max || w->n + w->ref_bytes > w->max - n) {
        w->err = KLOG_ETOOBIG;
        return;
    }
    int rc;
    if ((size_t)w->nrefs == w->refcap &&
        (rc = klog__vec_reserve(&w->refs, &w->refcap, (size_t)w->nrefs + 1, sizeof *w->refs)) < 0) {
        w->err = rc;
        return;
    }
    w->refs[w->nrefs++] = (kk_wref){ .at = w->n, .p = p, .n = n };
    w->ref_bytes += n;
}

void kk_w_i8(kk_wbuf *w, int8_t v) { kk_w_raw(w, &v, 1); }

void kk_w_i16(kk_wbuf *w, int16_t v)
{
    uint16_t be = __builtin_bswap16((uint16_t)v);
    kk_w_raw(w, &be, 2);
}

void kk_w_i32(kk_wbuf *w, int32_t v)
{
    uint32_t be = __builtin_bswap32((uint32_t)v);
    kk_w_raw(w, &be, 4);
}

void kk_w_i64(kk_wbuf *w, int64_t v)
{
    uint64_t be = __builtin_bswap64((uint64_t)v);
    kk_w_raw(w, &be, 8);
}

static void w_var(kk_wbuf *w, uint64_t u)
{
    uint8_t b[10];
    int n = 0;
    while (u >= 0x80) {
        b[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    b[n++] = (uint8_t)u;
    kk_w_raw(w, b, (size_t)n);
}

void kk_w_uvarint(kk_wbuf *w, uint32_t v) { w_var(w, v); }
void kk_w_varint(kk_wbuf *w, int32_t v) { w_var(w, (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31))); }
void kk_w_varlong(kk_wbuf *w, int64_t v) { w_var(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }

void kk_w_string(kk_wbuf *w, bool compact, bool nullable, const char *p, int32_t len)
{
    if (!p) {
        if (nullable) {
            if (compact)
                kk_w_uvarint(w, 0);
            else
                kk_w_i16(w, -1);
            return;
        }
        p = "";
        len = 0;
    }
    size_t n = len < 0 ? strlen(p) : (size_t)len;
    if ((!compact && n > INT16_MAX) || n >= INT32_MAX) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    if (compact)
        kk_w_uvarint(w, (uint32_t)n + 1);
    else
        kk_w_i16(w, (int16_t)n);
    kk_w_raw(w, p, n);
}

void kk_w_bytes(kk_wbuf *w, bool compact, bool nullable, const void *p, int32_t len)
{
    if (!p && nullable) {
        if (compact)
            kk_w_uvarint(w, 0);
        else
            kk_w_i32(w, -1);
        return;
    }
    if (!p || len < 0)
        len = 0;
    if (compact)
        kk_w_uvarint(w, (uint32_t)len + 1);
    else
        kk_w_i32(w, len);
    kk_w_raw(w, p, (size_t)len);
}

void kk_w_count(kk_wbuf *w, bool compact, bool nullable, int32_t n)
{
    if (n < 0 && !nullable)
        n = 0;
    if (compact)
        kk_w_uvarint(w, n < 0 ? 0 : (uint32_t)n + 1);
    else
        kk_w_i32(w, n < 0 ? -1 : n);
}

void kk_w_patch_i32(kk_wbuf *w, size_t pos, int32_t v)
{
    if (pos + 4 <= w->n)
        klog__st32(w->b + pos, __builtin_bswap32((uint32_t)v));
}

int kk_wbuf_iov(const kk_wbuf *w, struct iovec *iov, int max)
{
    int k = 0;
    size_t pos = 0;
#define KK_PUT_(base, len)                                                            \
    do {                                                                              \
        if (k < max)                                                                  \
            iov[k] = (struct iovec){ .iov_base = (void *)(base), .iov_len = (len) };  \
        k++;                                                                          \
    } while (0)
    for (int i = 0; i < w->nrefs; i++) {
        const kk_wref *r = &w->refs[i];
        if (r->at > pos)
            KK_PUT_(w->b + pos, r->at - pos);
        KK_PUT_(r->p, r->n);
        pos = r->at;
    }
    if (w->n > pos)
        KK_PUT_(w->b + pos, w->n - pos);
#undef KK_PUT_
    return k;
}

void kk_wbuf_copy_out(const kk_wbuf *w, void *dst)
{
    uint8_t *o = dst;
    size_t pos = 0;
    for (int i = 0; i < w->nrefs; i++) {
        const kk_wref *r = &w->refs[i];
        if (r->at > pos)
            memcpy(o, w->b + pos, r->at - pos);
        o += r->at - pos;
        memcpy(o, r->p, r->n);
        o += r->n;
        pos = r->at;
    }
    if (w->n > pos)
        memcpy(o, w->b + pos, w->n - pos);
}
