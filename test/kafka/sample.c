/*
 * test/kafka/sample.c - deterministic sample messages (sample.h).
 */
#include <stdlib.h>
#include <string.h>

#include "sample.h"

void *kks_alloc(kks_pool *p, size_t n)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->blocks = realloc(p->blocks, p->cap * sizeof(void *));
        if (!p->blocks)
            abort();
    }
    void *b = calloc(1, n ? n : 1);
    if (!b)
        abort();
    p->blocks[p->n++] = b;
    return b;
}

void kks_pool_free(kks_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->blocks[i]);
    free(p->blocks);
    *p = (kks_pool){ 0 };
}

/* splitmix64 */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* An integer: mostly small (as real messages), sometimes extreme. */
static int64_t rint64(uint64_t *s)
{
    uint64_t r = rnd(s);
    switch (r % 4) {
    case 0: return (int64_t)(rnd(s) % 7) - 2; /* -2 .. 4 */
    case 1: return (int64_t)rnd(s);
    default: return (int64_t)(rnd(s) % 100000);
    }
}

static kk_str rstr(kks_pool *p, uint64_t *s, bool nullable)
{
    if (nullable && rnd(s) % 4 == 0)
        return KK_STR_NULL;
    static const char *const parts[] = { "a", "topic", "-", "_", ".", "\"", "\\", "\xc3\xa9", "\n", "0", "Z" };
    size_t k = rnd(s) % 6;
    char *c = kks_alloc(p, 64);
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        const char *x = parts[rnd(s) % (sizeof(parts) / sizeof(parts[0]))];
        memcpy(c + n, x, strlen(x));
        n += strlen(x);
    }
    return (kk_str){ c, (int32_t)n };
}

static void rbytes(kks_pool *p, uint64_t *s, bool nullable, const uint8_t **out, int32_t *len, size_t maxn)
{
    if (nullable && rnd(s) % 4 == 0) {
        *out = NULL;
        *len = -1;
        return;
    }
    size_t n = rnd(s) % (maxn + 1);
    uint8_t *b = kks_alloc(p, n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rnd(s);
    *out = b;
    *len = (int32_t)n;
}

static void fill(kks_pool *p, const kk_schema *sc, int v, uint64_t *s, uint8_t *dst)
{
    for (int i = 0; i < kk_schema_nfields(sc); i++) {
        const kk_field *f = kk_schema_field(sc, i);
        if (!kk_field_on(f, v))
            continue;
        bool nullable = kk_field_nullable(f, v);
        uint8_t *at = dst + f->off;
        switch (f->type) {
        case KK_T_BOOL: *(bool *)at = rnd(s) & 1; break;
        case KK_T_I8: *(int8_t *)at = (int8_t)rint64(s); break;
        case KK_T_I16: { int16_t x = (int16_t)rint64(s); memcpy(at, &x, 2); break; }
        case KK_T_I32: { int32_t x = (int32_t)rint64(s); memcpy(at, &x, 4); break; }
        case KK_T_I64: { int64_t x = rint64(s); memcpy(at, &x, 8); break; }
        case KK_T_STR: *(kk_str *)(void *)at = rstr(p, s, nullable); break;
        case KK_T_BYTES: {
            kk_bytes *x = (kk_bytes *)(void *)at;
            rbytes(p, s, nullable, &x->p, &x->len, 20);
            break;
        }
        case KK_T_RECORDS: {
            kk_records *x = (kk_records *)(void *)at;
            rbytes(p, s, nullable, &x->p, &x->len, 40);
            break;
        }
        default: {
            kk_array_any *a = (kk_array_any *)(void *)at;
            if (nullable && rnd(s) % 4 == 0) {
                *a = (kk_array_any){ NULL, -1 };
                break;
            }
            int32_t n = (int32_t)(rnd(s) % 4);
            size_t esz = f->type == KK_T_I32S ? 4 : f->type == KK_T_STRS ? sizeof(kk_str)
                       : kk_schema_size(f->sub);
            uint8_t *e = n ? kks_alloc(p, (size_t)n * esz) : NULL;
            for (int32_t j = 0; j < n; j++) {
                uint8_t *x = e + (size_t)j * esz;
                if (f->type == KK_T_I32S) {
                    int32_t y = (int32_t)rint64(s);
                    memcpy(x, &y, 4);
                } else if (f->type == KK_T_STRS) {
                    *(kk_str *)(void *)x = rstr(p, s, false);
                } else {
                    fill(p, f->sub, v, s, x);
                }
            }
            *a = (kk_array_any){ e, n };
            break;
        }
        }
    }
}

void *kks_fill(kks_pool *p, const kk_schema *s, int v, uint64_t seed)
{
    uint8_t *b = kks_alloc(p, kk_schema_size(s));
    uint64_t st = seed * 0x100000001b3ull + (uint64_t)v * 7919u + 1;
    fill(p, s, v, &st, b);
    return b;
}

int kks_request(kk_wbuf *w, kks_pool *p, const kk_api *api, int v, uint64_t seed, void **body)
{
    void *b = kks_fill(p, api->req, v, seed);
    if (body)
        *body = b;
    kk_req_header h = { .api_key = api->key, .api_version = (int16_t)v,
                        .correlation_id = (int32_t)seed, .client_id = KK_STR("kks") };
    return kk_request_encode(w, &h, b);
}

int kks_response(kk_wbuf *w, kks_pool *p, const kk_api *api, int v, uint64_t seed, void **body)
{
    void *b = kks_fill(p, api->resp, v, seed);
    if (body)
        *body = b;
    return kk_response_encode(w, api->key, (int16_t)v, (int32_t)seed, b);
}

uint8_t *kks_flat(const kk_wbuf *w, size_t *len)
{
    *len = kk_wbuf_len(w);
    uint8_t *b = malloc(*len ? *len : 1);
    if (!b)
        abort();
    kk_wbuf_copy_out(w, b);
    return b;
}

char *kks_json(const kk_schema *s, int v, const void *body)
{
    klog_sbuf b = { 0 };
    kk_json_body(&b, s, (int16_t)v, body, 0);
    if (b.err || !b.p)
        abort();
    return b.p;
}
