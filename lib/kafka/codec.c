/*
 * lib/kafka/codec.c - the one interpreter of the schemas in msg.c: decode
 * (in two passes, the first only measuring), encode, and the arena.
 *
 * Decoding.  kk_body_decode runs dec_struct twice over the same bytes.  The
 * measure pass (d->mem == NULL) reads and checks everything and adds up,
 * with the alignment the fill pass will use, the bytes the decoded
 * structure takes; nothing is stored and nothing allocated.  Only when the
 * whole body is valid and that total is within max_arena does the fill
 * pass get memory (the caller's scratch, or one allocation of exactly that
 * size) and run again, storing.  Both passes take memory through dec_take
 * in the same sequence, so the fill pass cannot run out.
 *
 * Invariant (checked by the tests and the fuzzer): the total is at most
 * KK_ARENA_RATIO bytes per byte of frame.  An array of n elements is
 * accepted only if n times the element's smallest wire size is left in the
 * frame; no element's C size, plus 8 bytes for the alignment padding of
 * each array it holds, is more than KK_ARENA_RATIO times that smallest
 * size (test/kafka checks every schema; the padding of the body's own
 * arrays is paid for by their counts); a string copy takes its length plus
 * a NUL, at most KK_ARENA_RATIO times its (non-empty) content.
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "kafka/internal.h"

void kk_limits_default(kk_limits *l)
{
    *l = (kk_limits){
        .max_array = 1u << 20,
        .max_string = 32767,
        .max_bytes = KK_MAX_FRAME_DEFAULT,
        .max_arena = 32u << 20,
    };
}

const char *kk_reason_name(int reason)
{
    static const char *const names[] = {
        [KK_R_OK] = "ok",
        [KK_R_TRUNCATED] = "truncated",
        [KK_R_BAD_LENGTH] = "bad length",
        [KK_R_NULL] = "null not allowed",
        [KK_R_VARINT] = "varint too long",
        [KK_R_COUNT] = "array count larger than the frame",
        [KK_R_LIMIT] = "over a configured limit",
        [KK_R_ARENA] = "decoded size over max_arena",
        [KK_R_TAGS] = "bad tagged fields",
        [KK_R_TRAILING] = "bytes after the body",
        [KK_R_UNKNOWN_API] = "unknown API key",
        [KK_R_UNSUPPORTED_VERSION] = "unsupported version",
        [KK_R_NOMEM] = "out of memory",
    };
    if (reason < 0 || (size_t)reason >= KLOG_ARRAY_LEN(names) || !names[reason])
        return "unknown reason";
    return names[reason];
}

/* ---- arena -------------------------------------------------------------------- */

void kk_arena_init(kk_arena *a, void *buf, size_t cap)
{
    *a = (kk_arena){ .buf = buf, .cap = buf ? cap : 0 };
}

void kk_arena_reset(kk_arena *a)
{
    if (a->heap) {
        if (a->free)
            a->free(a->ctx, a->heap);
        else
            free(a->heap);
    }
    a->heap = NULL;
    a->used = 0;
}

/* ---- sizes -------------------------------------------------------------------- */

/* Smallest wire size of one field in version v. */
static size_t field_min(const kk_field *f, bool flex)
{
    switch (f->type) {
    case KK_T_BOOL:
    case KK_T_I8: return 1;
    case KK_T_I16: return 2;
    case KK_T_I32: return 4;
    case KK_T_I64: return 8;
    case KK_T_STR: return flex ? 1 : 2;
    default: return flex ? 1 : 4; /* bytes, records, arrays */
    }
}

/* Smallest wire size of one element of an array field (>= 1). */
size_t kk__elem_min(const kk_field *f, int v, bool flex)
{
    switch (f->type) {
    case KK_T_I32S: return 4;
    case KK_T_STRS: return flex ? 1 : 2;
    default: break;
    }
    const kk_schema *s = f->sub;
    size_t n = flex ? 1 : 0; /* the tagged-fields section */
    for (int i = 0; i < s->nfields; i++)
        if (kk_field_on(&s->fields[i], v))
            n += field_min(&s->fields[i], flex);
    return n ? n : 1;
}

/* ---- decode ------------------------------------------------------------------- */

typedef struct kk_dec {
    kk_rd r;
    int16_t v;
    bool flex;
    const kk_limits *lim;
    uint8_t *mem;   /* NULL: the measure pass */
    size_t used;    /* bytes taken so far (both passes) */
    size_t cap;     /* fill pass: bytes at mem */
} kk_dec;

/* n bytes aligned to align from the arena; NULL in the measure pass (and
 * on failure, which sets the reader's error). */
static void *dec_take(kk_dec *d, size_t n, size_t align)
{
    size_t at = (d->used + align - 1) & ~(align - 1);
    if (at + n > d->lim->max_arena || (d->mem && at + n > d->cap)) {
        kk_rd_fail(&d->r, KLOG_ETOOBIG, KK_R_ARENA);
        return NULL;
    }
    d->used = at + n;
    return d->mem ? d->mem + at : NULL;
}

static void dec_str(kk_dec *d, bool nullable, kk_str *out)
{
    const uint8_t *src;
    int32_t n = kk_rd_string(&d->r, d->flex, nullable, d->lim->max_string, &src);
    if (d->r.err || n < 0) {
        if (out)
            *out = KK_STR_NULL;
        return;
    }
    if (n == 0) {
        if (out)
            *out = (kk_str){ "", 0 };
        return;
    }
    char *c = dec_take(d, (size_t)n + 1, 1);
    if (c) {
        memcpy(c, src, (size_t)n);
        c[n] = '\0';
    }
    if (out)
        *out = (kk_str){ c, c ? n : -1 };
}

static void dec_struct(kk_dec *d, const kk_schema *s, uint8_t *dst);

/* An array field: count, then elements. */
static void dec_array(kk_dec *d, const kk_field *f, bool nullable, kk_array_any *out)
{
    size_t emin = kk__elem_min(f, d->v, d->flex);
    int32_t n = kk_rd_count(&d->r, d->flex, nullable, d->lim->max_array, emin);
    if (out)
        *out = (kk_array_any){ NULL, n < 0 ? -1 : 0 };
    if (d->r.err || n <= 0)
        return;
    size_t esz, align;
    switch (f->type) {
    case KK_T_I32S: esz = 4; align = 4; break;
    case KK_T_STRS: esz = sizeof(kk_str); align = 8; break;
    default: esz = f->sub->size; align = 8; break;
    }
    uint8_t *v = dec_take(d, (size_t)n * esz, align);
    if (d->r.err)
        return;
    if (v)
        memset(v, 0, (size_t)n * esz);
    for (int32_t i = 0; i < n && !d->r.err; i++) {
        uint8_t *e = v ? v + (size_t)i * esz : NULL;
        switch (f->type) {
        case KK_T_I32S: {
            int32_t x = kk_rd_i32(&d->r);
            if (e)
                memcpy(e, &x, 4);
            break;
        }
        case KK_T_STRS:
            dec_str(d, false, (kk_str *)(void *)e);
            break;
        default:
            dec_struct(d, f->sub, e);
            break;
        }
    }
    if (out && !d->r.err)
        *out = (kk_array_any){ v, n };
}

static void set_default(const kk_field *f, uint8_t *at)
{
    switch (f->type) {
    case KK_T_BOOL: *(bool *)at = f->dflt != 0; break;
    case KK_T_I8: *(int8_t *)at = (int8_t)f->dflt; break;
    case KK_T_I16: { int16_t x = (int16_t)f->dflt; memcpy(at, &x, 2); break; }
    case KK_T_I32: { int32_t x = (int32_t)f->dflt; memcpy(at, &x, 4); break; }
    case KK_T_I64: { int64_t x = f->dflt; memcpy(at, &x, 8); break; }
    case KK_T_STR: *(kk_str *)(void *)at = KK_STR_NULL; break;
    case KK_T_BYTES: *(kk_bytes *)(void *)at = (kk_bytes){ NULL, -1 }; break;
    case KK_T_RECORDS: *(kk_records *)(void *)at = (kk_records){ .p = NULL, .len = -1 }; break;
    default: *(kk_array_any *)(void *)at = (kk_array_any){ NULL, 0 }; break;
    }
}

static void dec_struct(kk_dec *d, const kk_schema *s, uint8_t *dst)
{
    for (int i = 0; i < s->nfields && !d->r.err; i++) {
        const kk_field *f = &s->fields[i];
        uint8_t *at = dst ? dst + f->off : NULL;
        if (!kk_field_on(f, d->v)) {
            if (at)
                set_default(f, at);
            continue;
        }
        bool nullable = kk_field_nullable(f, d->v);
        d->r.fail.field = f->name;
        switch (f->type) {
        case KK_T_BOOL: { int8_t x = kk_rd_i8(&d->r); if (at) *(bool *)at = x != 0; break; }
        case KK_T_I8: { int8_t x = kk_rd_i8(&d->r); if (at) *(int8_t *)at = x; break; }
        case KK_T_I16: { int16_t x = kk_rd_i16(&d->r); if (at) memcpy(at, &x, 2); break; }
        case KK_T_I32: { int32_t x = kk_rd_i32(&d->r); if (at) memcpy(at, &x, 4); break; }
        case KK_T_I64: { int64_t x = kk_rd_i64(&d->r); if (at) memcpy(at, &x, 8); break; }
        case KK_T_STR: dec_str(d, nullable, (kk_str *)(void *)at); break;
        case KK_T_BYTES:
        case KK_T_RECORDS: {
            const uint8_t *p;
            int32_t n = kk_rd_bytes(&d->r, d->flex, nullable, d->lim->max_bytes, &p);
            if (!at)
                break;
            if (f->type == KK_T_BYTES)
                *(kk_bytes *)(void *)at = (kk_bytes){ p, p ? n : -1 };
            else
                *(kk_records *)(void *)at = (kk_records){ .p = p, .len = p ? n : -1 };
            break;
        }
        default: dec_array(d, f, nullable, (kk_array_any *)(void *)at); break;
        }
    }
    if (d->flex && !d->r.err) {
        d->r.fail.field = "(tagged fields)";
        kk_rd_skip_tags(&d->r);
    }
}

/* The fill pass's memory: the scratch buffer, or one allocation. */
static int arena_get(kk_arena *a, size_t n, uint8_t **mem)
{
    kk_arena_reset(a);
    if (n == 0) {
        *mem = a->buf ? a->buf : (uint8_t *)a; /* never written: any non-NULL pointer */
        return 0;
    }
    if (n <= a->cap) {
        *mem = a->buf;
        return 0;
    }
    a->heap = a->alloc ? a->alloc(a->ctx, n) : malloc(n);
    if (!a->heap)
        return -ENOMEM;
    *mem = a->heap;
    return 0;
}

/* Decode the rest of what start reads (all of it) as schema s, in two
 * passes.  start->base is the frame's start, for offsets in kk_fail.  A
 * prefix callback, if any, reads what comes before the body (the request
 * header's client_id and tagged fields) in both passes, so that its string
 * copy is counted and taken like the body's; it gets parg in the fill
 * pass and NULL in the measure pass. */
typedef void (*kk_prefix_fn)(kk_dec *d, void *arg);

static int decode_two_pass(const kk_rd *start, const kk_schema *s, int16_t v, bool flex,
                           const kk_limits *lim, kk_arena *a, void *out, kk_fail *fail,
                           kk_prefix_fn prefix, void *parg)
{
    kk_limits defl;
    if (!lim) {
        kk_limits_default(&defl);
        lim = &defl;
    }
    kk_arena_reset(a);
    kk_dec d = { .r = *start, .v = v, .flex = flex, .lim = lim };
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            size_t need = d.used;
            uint8_t *mem;
            if (arena_get(a, need, &mem) < 0) {
                if (fail)
                    *fail = (kk_fail){ .reason = KK_R_NOMEM };
                return -ENOMEM;
            }
            d = (kk_dec){ .r = *start, .v = v, .flex = flex, .lim = lim, .mem = mem, .cap = need };
        }
        if (prefix)
            prefix(&d, pass ? parg : NULL);
        if (!d.r.err)
            dec_struct(&d, s, pass ? out : NULL);
        if (!d.r.err && kk_rd_left(&d.r)) {
            d.r.fail.field = NULL;
            kk_rd_fail(&d.r, KLOG_ECORRUPT, KK_R_TRAILING);
        }
        if (d.r.err) {
            if (fail)
                *fail = d.r.fail;
            kk_arena_reset(a);
            return d.r.err;
        }
    }
    a->used = d.used;
    if (fail)
        *fail = (kk_fail){ 0 };
    return 0;
}

int kk_body_decode(const kk_schema *s, int16_t version, bool flexible, const void *p, size_t len,
                   const kk_limits *lim, kk_arena *a, void *out, kk_fail *fail)
{
    kk_rd r;
    kk_rd_init(&r, p, len);
    return decode_two_pass(&r, s, version, flexible, lim, a, out, fail, NULL, NULL);
}

/* ---- encode ------------------------------------------------------------------- */

static void enc_struct(kk_wbuf *w, const kk_schema *s, int v, bool flex, const uint8_t *src);

static void enc_records(kk_wbuf *w, bool flex, bool nullable, const kk_records *r)
{
    if (r->iovcnt <= 0) {
        kk_w_bytes(w, flex, nullable, r->p, r->len);
        return;
    }
    uint64_t total = 0;
    for (int i = 0; i < r->iovcnt; i++)
        total += r->iov[i].iov_len;
    if (total >= INT32_MAX) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    if (flex)
        kk_w_uvarint(w, (uint32_t)total + 1);
    else
        kk_w_i32(w, (int32_t)total);
    for (int i = 0; i < r->iovcnt; i++)
        if (r->iov[i].iov_len)
            kk_w_ref(w, r->iov[i].iov_base, r->iov[i].iov_len);
}

static void enc_array(kk_wbuf *w, const kk_field *f, int v, bool flex, bool nullable,
                      const kk_array_any *arr)
{
    int32_t n = arr->n;
    if (n > 0 && !arr->v) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    kk_w_count(w, flex, nullable, n);
    for (int32_t i = 0; i < n && !w->err; i++) {
        switch (f->type) {
        case KK_T_I32S: kk_w_i32(w, ((const int32_t *)arr->v)[i]); break;
        case KK_T_STRS: {
            const kk_str *x = &((const kk_str *)arr->v)[i];
            kk_w_string(w, flex, false, x->p, x->len);
            break;
        }
        default:
            enc_struct(w, f->sub, v, flex, (const uint8_t *)arr->v + (size_t)i * f->sub->size);
            break;
        }
    }
}

static void enc_struct(kk_wbuf *w, const kk_schema *s, int v, bool flex, const uint8_t *src)
{
    for (int i = 0; i < s->nfields && !w->err; i++) {
        const kk_field *f = &s->fields[i];
        if (!kk_field_on(f, v))
            continue;
        const uint8_t *at = src + f->off;
        bool nullable = kk_field_nullable(f, v);
        switch (f->type) {
        case KK_T_BOOL: kk_w_i8(w, *(const bool *)at ? 1 : 0); break;
        case KK_T_I8: kk_w_i8(w, *(const int8_t *)at); break;
        case KK_T_I16: { int16_t x; memcpy(&x, at, 2); kk_w_i16(w, x); break; }
        case KK_T_I32: { int32_t x; memcpy(&x, at, 4); kk_w_i32(w, x); break; }
        case KK_T_I64: { int64_t x; memcpy(&x, at, 8); kk_w_i64(w, x); break; }
        case KK_T_STR: {
            const kk_str *x = (const kk_str *)(const void *)at;
            kk_w_string(w, flex, nullable, x->p, x->len);
            break;
        }
        case KK_T_BYTES: {
            const kk_bytes *x = (const kk_bytes *)(const void *)at;
            kk_w_bytes(w, flex, nullable, x->p, x->len);
            break;
        }
        case KK_T_RECORDS: enc_records(w, flex, nullable, (const kk_records *)(const void *)at); break;
        default: enc_array(w, f, v, flex, nullable, (const kk_array_any *)(const void *)at); break;
        }
    }
    if (flex)
        kk_w_no_tags(w);
}

int kk_body_encode(kk_wbuf *w, const kk_schema *s, int16_t version, bool flexible, const void *body)
{
    enc_struct(w, s, version, flexible, body);
    return w->err;
}

const char *kk_schema_name(const kk_schema *s) { return s->name; }
size_t kk_schema_size(const kk_schema *s) { return s->size; }

/* ---- requests and responses ----------------------------------------------------- */

/* The request header's client_id (a nullable non-compact string in every
 * header version) and, for header v2, its tagged fields: read in both
 * passes through dec_take so that the arena accounts for the copy. */
struct hdr_arg {
    kk_request *out;
};

static void req_prefix(kk_dec *d, void *arg)
{
    struct hdr_arg *h = arg;
    /* The reader starts at client_id (key, version, id were read first). */
    d->r.fail.field = "client_id";
    bool flex = d->flex;
    d->flex = false; /* client_id is never compact */
    dec_str(d, true, h ? &h->out->hdr.client_id : NULL);
    d->flex = flex;
    if (flex && !d->r.err) {
        d->r.fail.field = "(header tagged fields)";
        kk_rd_skip_tags(&d->r);
    }
}

int kk_request_decode(const void *frame, size_t len, const kk_limits *lim, kk_arena *a,
                      kk_request *out)
{
    memset(out, 0, sizeof(*out));
    out->hdr.client_id = KK_STR_NULL;
    kk_arena_reset(a);
    kk_rd r;
    kk_rd_init(&r, frame, len);
    r.fail.field = "api_key";
    out->hdr.api_key = kk_rd_i16(&r);
    r.fail.field = "api_version";
    out->hdr.api_version = kk_rd_i16(&r);
    r.fail.field = "correlation_id";
    out->hdr.correlation_id = kk_rd_i32(&r);
    if (r.err) {
        out->fail = r.fail;
        return r.err;
    }
    out->api = kk_api_find(out->hdr.api_key);
    out->flexible = kk_api_flexible(out->hdr.api_key, out->hdr.api_version);
    if (!out->api || out->hdr.api_version < out->api->min || out->hdr.api_version > out->api->max) {
        out->fail = (kk_fail){
            .reason = out->api ? KK_R_UNSUPPORTED_VERSION : KK_R_UNKNOWN_API,
            .offset = out->api ? 2 : 0,
            .field = out->api ? "api_version" : "api_key",
        };
        return KLOG_EFORMAT;
    }
    struct hdr_arg h = { out };
    return decode_two_pass(&r, out->api->req, out->hdr.api_version, out->flexible, lim, a,
                           &out->body, &out->fail, req_prefix, &h);
}

int kk_request_encode(kk_wbuf *w, const kk_req_header *h, const void *body)
{
    const kk_api *api = kk_api_find(h->api_key);
    if (kk_api_check(h->api_key, h->api_version) < 0)
        return KLOG_EFORMAT;
    bool flex = kk_api_flexible(h->api_key, h->api_version);
    kk_w_i16(w, h->api_key);
    kk_w_i16(w, h->api_version);
    kk_w_i32(w, h->correlation_id);
    kk_w_string(w, false, true, h->client_id.p, h->client_id.len);
    if (flex)
        kk_w_no_tags(w);
    return kk_body_encode(w, api->req, h->api_version, flex, body);
}

/* ApiVersions answers with a v0 response header even when flexible
 * (KIP-511: a client that does not yet know the broker's versions must be
 * able to read it). */
static bool resp_header_flex(int16_t key, int16_t version)
{
    return key != KK_API_API_VERSIONS && kk_api_flexible(key, version);
}

int kk_response_encode(kk_wbuf *w, int16_t api_key, int16_t version, int32_t correlation_id,
                       const void *body)
{
    const kk_api *api = kk_api_find(api_key);
    if (kk_api_check(api_key, version) < 0)
        return KLOG_EFORMAT;
    kk_w_i32(w, correlation_id);
    if (resp_header_flex(api_key, version))
        kk_w_no_tags(w);
    return kk_body_encode(w, api->resp, version, kk_api_flexible(api_key, version), body);
}

static void resp_prefix(kk_dec *d, void *arg)
{
    (void)arg;
    /* The reader starts after correlation_id: only tagged fields remain. */
    d->r.fail.field = "(header tagged fields)";
    kk_rd_skip_tags(&d->r);
}

int kk_response_decode(const void *frame, size_t len, int16_t api_key, int16_t version,
                       const kk_limits *lim, kk_arena *a, kk_response *out)
{
    memset(out, 0, sizeof(*out));
    kk_arena_reset(a);
    const kk_api *api = kk_api_find(api_key);
    if (kk_api_check(api_key, version) < 0) {
        out->fail = (kk_fail){ .reason = api ? KK_R_UNSUPPORTED_VERSION : KK_R_UNKNOWN_API };
        return KLOG_EFORMAT;
    }
    kk_rd r;
    kk_rd_init(&r, frame, len);
    r.fail.field = "correlation_id";
    out->correlation_id = kk_rd_i32(&r);
    if (r.err) {
        out->fail = r.fail;
        return r.err;
    }
    return decode_two_pass(&r, api->resp, version, kk_api_flexible(api_key, version), lim, a,
                           &out->body, &out->fail,
                           resp_header_flex(api_key, version) ? resp_prefix : NULL, NULL);
}

/* ---- the consumer protocol ------------------------------------------------------ */

static int consumer_decode(const kk_schema *s, const void *p, size_t len, const kk_limits *lim,
                           kk_arena *a, int16_t *version, void *out, kk_fail *fail)
{
    kk_arena_reset(a);
    kk_rd r;
    kk_rd_init(&r, p, len);
    r.fail.field = "version";
    int16_t v = kk_rd_i16(&r);
    if (!r.err && v < 0) {
        r.p -= 2;
        kk_rd_fail(&r, KLOG_ECORRUPT, KK_R_UNSUPPORTED_VERSION);
    }
    if (r.err) {
        if (fail)
            *fail = r.fail;
        return r.err;
    }
    if (version)
        *version = v;
    if (v > 3)
        v = 3;
    /* Bytes after the known fields are allowed (a newer version's fields):
     * decode the body from a reader cut at its own end is not possible
     * without knowing it, so decode and ignore KK_R_TRAILING. */
    int rc = decode_two_pass(&r, s, v, false, lim, a, out, fail, NULL, NULL);
    if (rc == KLOG_ECORRUPT && fail && fail->reason == KK_R_TRAILING) {
        /* Re-run up to where the body ended. */
        kk_rd cut = r;
        cut.end = (const uint8_t *)p + fail->offset;
        rc = decode_two_pass(&cut, s, v, false, lim, a, out, fail, NULL, NULL);
    }
    return rc;
}

int kk_consumer_subscription_decode(const void *p, size_t len, const kk_limits *lim,
                                    kk_arena *a, int16_t *version, kk_consumer_subscription *out,
                                    kk_fail *fail)
{
    kk_fail f;
    return consumer_decode(&kk_consumer_subscription_schema, p, len, lim, a, version, out,
                           fail ? fail : &f);
}

int kk_consumer_assignment_decode(const void *p, size_t len, const kk_limits *lim, kk_arena *a,
                                  int16_t *version, kk_consumer_assignment *out, kk_fail *fail)
{
    kk_fail f;
    return consumer_decode(&kk_consumer_assignment_schema, p, len, lim, a, version, out,
                           fail ? fail : &f);
}

int kk_consumer_subscription_encode(kk_wbuf *w, int16_t version, const kk_consumer_subscription *s)
{
    if (version < 0 || version > 3)
        return -EINVAL;
    kk_w_i16(w, version);
    return kk_body_encode(w, &kk_consumer_subscription_schema, version, false, s);
}

int kk_consumer_assignment_encode(kk_wbuf *w, int16_t version, const kk_consumer_assignment *s)
{
    if (version < 0 || version > 3)
        return -EINVAL;
    kk_w_i16(w, version);
    return kk_body_encode(w, &kk_consumer_assignment_schema, version, false, s);
}
