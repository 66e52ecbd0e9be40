/*
 * test/kafka/malformed.c - hostile frames.  Every valid request and
 * response cut at every byte offset must fail cleanly (KLOG_ECORRUPT, the
 * arena empty, and no allocation made: the measure pass rejects it before
 * the fill pass asks for memory); oversized counts and lengths fail against
 * the frame and the caps without allocating; unknown API keys and versions
 * give KLOG_EFORMAT with the header filled in; random garbage never
 * crashes.  The frames handed to the decoder are malloc'd at their exact
 * size, so the ASan build catches any read past the end.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

static int allocs;
static void *count_alloc(void *ctx, size_t n)
{
    (void)ctx;
    allocs++;
    return malloc(n);
}
static void count_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static kk_arena arena;
static void setup(void)
{
    kk_arena_init(&arena, NULL, 0);
    arena.alloc = count_alloc;
    arena.free = count_free;
    allocs = 0;
}
static void teardown(void) { kk_arena_reset(&arena); }
TestSuite(kafka_malformed, .init = setup, .fini = teardown);

static uint8_t *dup_exact(const void *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    memcpy(b, p, n);
    return b;
}

static void check_clean_failure(int rc, const kk_fail *f, const char *what, int v, size_t cut)
{
    cr_assert_eq(rc, KLOG_ECORRUPT, "%s v%d cut at %zu: rc %d", what, v, cut, rc);
    cr_assert(f->reason == KK_R_TRUNCATED || f->reason == KK_R_COUNT,
              "%s v%d cut at %zu: %s", what, v, cut, kk_reason_name(f->reason));
    cr_assert_leq(f->offset, cut);
    cr_assert_eq(allocs, 0, "%s v%d cut at %zu: allocated", what, v, cut);
    cr_assert_null(arena.heap);
    cr_assert_eq(arena.used, 0);
}

Test(kafka_malformed, every_request_truncated_at_every_offset)
{
    long cuts = 0;
    for (int i = 0; i < kk_api_count(); i++) {
        const kk_api *api = kk_api_at(i);
        for (int v = api->min; v <= api->max; v++) {
            for (uint64_t seed = 0; seed < 6; seed++) {
                kks_pool p = { 0 };
                kk_wbuf w;
                kk_wbuf_init(&w, 0);
                cr_assert_eq(kks_request(&w, &p, api, v, seed, NULL), 0);
                size_t len;
                uint8_t *frame = kks_flat(&w, &len);
                for (size_t cut = 0; cut < len; cut++) {
                    uint8_t *f = dup_exact(frame, cut);
                    kk_request r;
                    int rc = kk_request_decode(f, cut, NULL, &arena, &r);
                    check_clean_failure(rc, &r.fail, api->name, v, cut);
                    free(f);
                    cuts++;
                }
                free(frame);
                kk_wbuf_free(&w);
                kks_pool_free(&p);
            }
        }
    }
    cr_assert_gt(cuts, 10000);
}

Test(kafka_malformed, every_response_truncated_at_every_offset)
{
    for (int i = 0; i < kk_api_count(); i++) {
        const kk_api *api = kk_api_at(i);
        for (int v = api->min; v <= api->max; v++) {
            for (uint64_t seed = 0; seed < 4; seed++) {
                kks_pool p = { 0 };
                kk_wbuf w;
                kk_wbuf_init(&w, 0);
                cr_assert_eq(kks_response(&w, &p, api, v, seed, NULL), 0);
                size_t len;
                uint8_t *frame = kks_flat(&w, &len);
                for (size_t cut = 0; cut < len; cut++) {
                    uint8_t *f = dup_exact(frame, cut);
                    kk_response r;
                    int rc = kk_response_decode(f, cut, api->key, (int16_t)v, NULL, &arena, &r);
                    check_clean_failure(rc, &r.fail, api->name, v, cut);
                    free(f);
                }
                free(frame);
                kk_wbuf_free(&w);
                kks_pool_free(&p);
            }
        }
    }
}

/* A request header (v1) for key/version, client_id "c". */
static size_t header(uint8_t *b, int16_t key, int16_t v)
{
    uint8_t h[] = { (uint8_t)(key >> 8), (uint8_t)key, (uint8_t)(v >> 8), (uint8_t)v,
                    0, 0, 0, 9, 0, 1, 'c' };
    memcpy(b, h, sizeof(h));
    return sizeof(h);
}

/* Metadata v1 claiming 2^31 - 1 topics in a 100-byte frame. */
Test(kafka_malformed, huge_array_count_in_small_frame)
{
    uint8_t f[100] = { 0 };
    size_t n = header(f, KK_API_METADATA, 1);
    f[n] = 0x7f, f[n + 1] = 0xff, f[n + 2] = 0xff, f[n + 3] = 0xff;
    uint8_t *frame = dup_exact(f, sizeof(f));
    kk_request r;
    cr_assert_eq(kk_request_decode(frame, sizeof(f), NULL, &arena, &r), KLOG_ETOOBIG);
    cr_assert_eq(r.fail.reason, KK_R_LIMIT);
    cr_assert_str_eq(r.fail.field, "topics");
    cr_assert_eq(r.fail.offset, n);
    cr_assert_eq(allocs, 0);

    kk_limits lim;
    kk_limits_default(&lim);
    lim.max_array = UINT32_MAX;
    cr_assert_eq(kk_request_decode(frame, sizeof(f), &lim, &arena, &r), KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_COUNT);
    cr_assert_eq(allocs, 0);
    free(frame);
}

/* A valid frame whose decoded form would pass max_arena: refused before
 * any allocation. */
Test(kafka_malformed, arena_cap)
{
    kk_wbuf w;
    kk_wbuf_init(&w, 0);
    kk_metadata_req_topic t[200];
    for (int i = 0; i < 200; i++)
        t[i].name = KK_STR("topic");
    kk_metadata_req m = { .allow_auto_topic_creation = true };
    m.topics.v = t;
    m.topics.n = 200;
    kk_req_header h = { KK_API_METADATA, 5, 1, KK_STR("c") };
    cr_assert_eq(kk_request_encode(&w, &h, &m), 0);
    kk_request r;
    cr_assert_eq(kk_request_decode(w.b, w.n, NULL, &arena, &r), 0);
    size_t need = arena.used;
    cr_assert_geq(need, 200 * sizeof(kk_metadata_req_topic));
    kk_limits lim;
    kk_limits_default(&lim);
    lim.max_arena = need - 1;
    allocs = 0;
    cr_assert_eq(kk_request_decode(w.b, w.n, &lim, &arena, &r), KLOG_ETOOBIG);
    cr_assert_eq(r.fail.reason, KK_R_ARENA);
    cr_assert_eq(allocs, 0);
    cr_assert_null(arena.heap);
    lim.max_arena = need;
    cr_assert_eq(kk_request_decode(w.b, w.n, &lim, &arena, &r), 0);
    cr_assert_eq(allocs, 1);
    kk_wbuf_free(&w);
}

/* Strings and bytes over their caps; a records field of 2^31 - 1 bytes. */
Test(kafka_malformed, length_caps)
{
    kk_wbuf w;
    kk_wbuf_init(&w, 0);
    kk_sasl_handshake_req s = { .mechanism = KK_STR("PLAIN-LONG-NAME") };
    kk_req_header h = { KK_API_SASL_HANDSHAKE, 1, 1, KK_STR("c") };
    cr_assert_eq(kk_request_encode(&w, &h, &s), 0);
    kk_limits lim;
    kk_limits_default(&lim);
    lim.max_string = 8;
    kk_request r;
    cr_assert_eq(kk_request_decode(w.b, w.n, &lim, &arena, &r), KLOG_ETOOBIG);
    cr_assert_eq(r.fail.reason, KK_R_LIMIT);
    cr_assert_str_eq(r.fail.field, "mechanism");

    /* Produce v3 with one partition whose records claim 2^31 - 1 bytes. */
    uint8_t f[64] = { 0 };
    size_t n = header(f, KK_API_PRODUCE, 3);
    static const uint8_t body[] = {
        0xff, 0xff,             /* transactional_id null */
        0, 1, 0, 0, 0x03, 0xe8, /* acks 1, timeout 1000 */
        0, 0, 0, 1, 0, 1, 't',  /* one topic "t" */
        0, 0, 0, 1, 0, 0, 0, 0, /* one partition, index 0 */
        0x7f, 0xff, 0xff, 0xff, /* records length */
        1, 2, 3,
    };
    memcpy(f + n, body, sizeof(body));
    uint8_t *frame = dup_exact(f, n + sizeof(body));
    cr_assert_eq(kk_request_decode(frame, n + sizeof(body), NULL, &arena, &r), KLOG_ETOOBIG);
    cr_assert_eq(r.fail.reason, KK_R_LIMIT);
    cr_assert_str_eq(r.fail.field, "records");
    lim.max_string = 32767;
    lim.max_bytes = UINT32_MAX;
    cr_assert_eq(kk_request_decode(frame, n + sizeof(body), &lim, &arena, &r), KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_TRUNCATED);
    cr_assert_eq(allocs, 0);
    free(frame);
    kk_wbuf_free(&w);
}

Test(kafka_malformed, null_where_not_allowed_and_negative_lengths)
{
    uint8_t f[64] = { 0 };
    size_t n = header(f, KK_API_PRODUCE, 3);
    static const uint8_t body[] = {
        0xff, 0xff, 0, 1, 0, 0, 0x03, 0xe8,
        0, 0, 0, 1, 0xff, 0xff, /* topic name null */
        0, 0, 0, 0,
    };
    memcpy(f + n, body, sizeof(body));
    kk_request r;
    cr_assert_eq(kk_request_decode(f, n + sizeof(body), NULL, &arena, &r), KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_NULL);
    cr_assert_str_eq(r.fail.field, "name");
    f[n + 12] = 0xff, f[n + 13] = 0xfe; /* length -2 */
    cr_assert_eq(kk_request_decode(f, n + sizeof(body), NULL, &arena, &r), KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_BAD_LENGTH);
    f[n + 12] = 0, f[n + 13] = 0;
    cr_assert_eq(kk_request_decode(f, n + sizeof(body), NULL, &arena, &r), 0);
    f[n + 8] = 0xff, f[n + 9] = 0xff, f[n + 10] = 0xff, f[n + 11] = 0xfe; /* count -2 */
    cr_assert_eq(kk_request_decode(f, n + sizeof(body), NULL, &arena, &r), KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_BAD_LENGTH);
    f[n + 11] = 0xff; /* count -1: topics is not nullable */
    cr_assert_eq(kk_request_decode(f, n + sizeof(body), NULL, &arena, &r), KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_NULL);
    cr_assert_str_eq(r.fail.field, "topics");
}

Test(kafka_malformed, trailing_bytes)
{
    uint8_t f[32];
    size_t n = header(f, KK_API_LIST_GROUPS, 0);
    kk_request r;
    cr_assert_eq(kk_request_decode(f, n, NULL, &arena, &r), 0);
    f[n] = 0;
    cr_assert_eq(kk_request_decode(f, n + 1, NULL, &arena, &r), KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_TRAILING);
    cr_assert_eq(r.fail.offset, n);
}

Test(kafka_malformed, unknown_api_key_and_version)
{
    struct { int16_t key, v; int reason; } cases[] = {
        { 24, 0, KK_R_UNKNOWN_API },    /* AddPartitionsToTxn: not implemented */
        { 99, 0, KK_R_UNKNOWN_API },
        { -1, 0, KK_R_UNKNOWN_API },
        { KK_API_PRODUCE, 8, KK_R_UNSUPPORTED_VERSION },
        { KK_API_FETCH, 3, KK_R_UNSUPPORTED_VERSION },
        { KK_API_FETCH, 12, KK_R_UNSUPPORTED_VERSION },
        { KK_API_API_VERSIONS, 4, KK_R_UNSUPPORTED_VERSION },
        { KK_API_METADATA, -1, KK_R_UNSUPPORTED_VERSION },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t f[32];
        size_t n = header(f, cases[i].key, cases[i].v);
        kk_request r;
        cr_assert_eq(kk_request_decode(f, n, NULL, &arena, &r), KLOG_EFORMAT);
        cr_assert_eq(r.fail.reason, cases[i].reason);
        cr_assert_eq(r.hdr.api_key, cases[i].key);
        cr_assert_eq(r.hdr.api_version, cases[i].v);
        cr_assert_eq(r.hdr.correlation_id, 9);
        cr_assert_eq(r.api != NULL, cases[i].reason == KK_R_UNSUPPORTED_VERSION);
        cr_assert_null(r.hdr.client_id.p);
    }
    /* Fewer than 8 bytes: not even a header. */
    uint8_t f[8] = { 0, 18, 0, 4, 0, 0, 0 };
    kk_request r;
    cr_assert_eq(kk_request_decode(f, 7, NULL, &arena, &r), KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_TRUNCATED);
    cr_assert_eq(allocs, 0);
}

static uint32_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

/* Random frames: a valid header for a random API and version, then random
 * bytes, or a valid frame with random bytes flipped.  Nothing may crash,
 * every failure is one of the documented codes, every success stays
 * within the arena bound. */
Test(kafka_malformed, garbage)
{
    uint64_t s = 12345;
#define RND() lcg(&s)
    int ok = 0, failed = 0;
    for (int iter = 0; iter < 40000; iter++) {
        const kk_api *api = kk_api_at((int)(RND() % (uint32_t)kk_api_count()));
        int v = api->min + (int)(RND() % (uint32_t)(api->max - api->min + 1));
        uint8_t *frame;
        size_t len;
        kks_pool p = { 0 };
        kk_wbuf w;
        kk_wbuf_init(&w, 0);
        if (iter & 1) {
            kks_request(&w, &p, api, v, RND(), NULL);
            frame = kks_flat(&w, &len);
            int flips = 1 + (int)(RND() % 4);
            for (int k = 0; k < flips && len > 8; k++)
            {
                size_t at = 8 + RND() % (len - 8);
                frame[at] ^= (uint8_t)(1u << (RND() % 8));
            }
        } else {
            len = 8 + RND() % 64;
            frame = malloc(len);
            for (size_t k = 0; k < len; k++)
                frame[k] = (uint8_t)RND();
            frame[0] = (uint8_t)(api->key >> 8), frame[1] = (uint8_t)api->key;
            frame[2] = 0, frame[3] = (uint8_t)v;
        }
        kk_request r;
        int rc = kk_request_decode(frame, len, NULL, &arena, &r);
        if (rc == 0) {
            ok++;
            cr_assert_leq(arena.used, KK_ARENA_RATIO * len);
        } else {
            failed++;
            cr_assert(rc == KLOG_ECORRUPT || rc == KLOG_ETOOBIG || rc == KLOG_EFORMAT, "rc %d", rc);
            cr_assert_null(arena.heap);
        }
        free(frame);
        kk_wbuf_free(&w);
        kks_pool_free(&p);
    }
    cr_assert_gt(ok, 100);
    cr_assert_gt(failed, 100);
}
