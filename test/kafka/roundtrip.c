/*
 * test/kafka/roundtrip.c - every request and response of every API and
 * version klog implements, encoded from a sample and decoded back, gives
 * the same message (compared field by field through the canonical JSON),
 * with the decoded structure within KK_ARENA_RATIO times the frame and in
 * at most one allocation.  Golden frames as real clients send them are in
 * api.c; kafka-python's view of the same bytes is test_kafka_python.py.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

#define SEEDS 24

static int allocs;
static size_t alloc_size;
static void *count_alloc(void *ctx, size_t n)
{
    (void)ctx;
    allocs++;
    alloc_size = n;
    return malloc(n);
}
static void count_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static void arena_counted(kk_arena *a, void *buf, size_t cap)
{
    kk_arena_init(a, buf, cap);
    a->alloc = count_alloc;
    a->free = count_free;
}

Test(kafka_roundtrip, every_request)
{
    int checked = 0;
    for (int i = 0; i < kk_api_count(); i++) {
        const kk_api *api = kk_api_at(i);
        for (int v = api->min; v <= api->max; v++) {
            for (uint64_t seed = 0; seed < SEEDS; seed++) {
                kks_pool p = { 0 };
                kk_wbuf w;
                kk_wbuf_init(&w, 0);
                void *body;
                cr_assert_eq(kks_request(&w, &p, api, v, seed, &body), 0, "%s v%d", api->name, v);
                size_t len;
                uint8_t *frame = kks_flat(&w, &len);
                kk_arena a;
                arena_counted(&a, NULL, 0);
                allocs = 0;
                kk_request r;
                int rc = kk_request_decode(frame, len, NULL, &a, &r);
                cr_assert_eq(rc, 0, "%s v%d seed %d: %s at %u (%s)", api->name, v, (int)seed,
                             kk_reason_name(r.fail.reason), r.fail.offset,
                             r.fail.field ? r.fail.field : "-");
                cr_assert_eq(r.hdr.api_key, api->key);
                cr_assert_eq(r.hdr.api_version, v);
                cr_assert_eq(r.hdr.correlation_id, (int32_t)seed);
                cr_assert_str_eq(r.hdr.client_id.p, "kks");
                cr_assert_eq(r.api, api);
                char *want = kks_json(api->req, v, body);
                char *got = kks_json(api->req, v, &r.body);
                cr_assert_str_eq(got, want, "%s v%d seed %d", api->name, v, (int)seed);
                cr_assert_leq(allocs, 1);
                cr_assert_eq(allocs, a.used ? 1 : 0);
                if (allocs)
                    cr_assert_eq(alloc_size, a.used, "one allocation of exactly the size needed");
                cr_assert_leq(a.used, KK_ARENA_RATIO * len, "%s v%d: %zu bytes for a %zu-byte frame",
                              api->name, v, a.used, len);
                free(want);
                free(got);
                kk_arena_reset(&a);
                free(frame);
                kk_wbuf_free(&w);
                kks_pool_free(&p);
                checked++;
            }
        }
    }
    cr_assert_gt(checked, 80 * SEEDS);
}

Test(kafka_roundtrip, every_response)
{
    for (int i = 0; i < kk_api_count(); i++) {
        const kk_api *api = kk_api_at(i);
        for (int v = api->min; v <= api->max; v++) {
            for (uint64_t seed = 0; seed < SEEDS; seed++) {
                kks_pool p = { 0 };
                kk_wbuf w;
                kk_wbuf_init(&w, 0);
                void *body;
                cr_assert_eq(kks_response(&w, &p, api, v, seed, &body), 0, "%s v%d", api->name, v);
                size_t len;
                uint8_t *frame = kks_flat(&w, &len);
                kk_arena a;
                kk_arena_init(&a, NULL, 0);
                kk_response r;
                int rc = kk_response_decode(frame, len, api->key, (int16_t)v, NULL, &a, &r);
                cr_assert_eq(rc, 0, "%s v%d seed %d: %s at %u (%s)", api->name, v, (int)seed,
                             kk_reason_name(r.fail.reason), r.fail.offset,
                             r.fail.field ? r.fail.field : "-");
                cr_assert_eq(r.correlation_id, (int32_t)seed);
                char *want = kks_json(api->resp, v, body);
                char *got = kks_json(api->resp, v, &r.body);
                cr_assert_str_eq(got, want, "%s v%d seed %d", api->name, v, (int)seed);
                cr_assert_leq(a.used, KK_ARENA_RATIO * len);
                free(want);
                free(got);
                kk_arena_reset(&a);
                free(frame);
                kk_wbuf_free(&w);
                kks_pool_free(&p);
            }
        }
    }
}

/* A scratch buffer large enough means no allocation at all; too small
 * means exactly one. */
Test(kafka_roundtrip, caller_arena)
{
    const kk_api *api = kk_api_find(KK_API_METADATA);
    kks_pool p = { 0 };
    kk_wbuf w;
    kk_wbuf_init(&w, 0);
    kk_metadata_req m = { .allow_auto_topic_creation = true };
    kk_metadata_req_topic t[3] = { { KK_STR("a") }, { KK_STR("bb") }, { KK_STR("ccc") } };
    m.topics.v = t;
    m.topics.n = 3;
    kk_req_header h = { KK_API_METADATA, 4, 7, KK_STR("c") };
    cr_assert_eq(kk_request_encode(&w, &h, &m), 0);
    size_t len;
    uint8_t *frame = kks_flat(&w, &len);

    _Alignas(8) uint8_t scratch[256];
    kk_arena a;
    arena_counted(&a, scratch, sizeof(scratch));
    allocs = 0;
    kk_request r;
    cr_assert_eq(kk_request_decode(frame, len, NULL, &a, &r), 0);
    cr_assert_eq(allocs, 0);
    cr_assert_null(a.heap);
    cr_assert((uint8_t *)r.body.metadata.topics.v >= scratch &&
              (uint8_t *)r.body.metadata.topics.v < scratch + sizeof(scratch), "in the scratch buffer");
    cr_assert_eq(r.body.metadata.topics.n, 3);
    cr_assert_str_eq(r.body.metadata.topics.v[2].name.p, "ccc");
    cr_assert(r.body.metadata.allow_auto_topic_creation);

    arena_counted(&a, scratch, 8);
    cr_assert_eq(kk_request_decode(frame, len, NULL, &a, &r), 0);
    cr_assert_eq(allocs, 1);
    cr_assert_eq(alloc_size, a.used);
    cr_assert_str_eq(r.body.metadata.topics.v[1].name.p, "bb");
    cr_assert_str_eq(r.hdr.client_id.p, "c");
    kk_arena_reset(&a);
    cr_assert_null(a.heap);
    free(frame);
    kk_wbuf_free(&w);
    kks_pool_free(&p);
    (void)api;
}

/* Fields not on the wire in a version decode to their defaults. */
Test(kafka_roundtrip, defaults_of_absent_fields)
{
    kk_fetch_req f = { .replica_id = -1, .max_wait_ms = 500, .min_bytes = 1, .max_bytes = 5,
                       .isolation_level = 1, .session_id = 9, .session_epoch = 9 };
    kk_fetch_req_partition fp = { .partition = 3, .current_leader_epoch = 8, .fetch_offset = 42,
                                  .log_start_offset = 7, .partition_max_bytes = 1000 };
    kk_fetch_req_topic ft = { .topic = KK_STR("t") };
    ft.partitions.v = &fp;
    ft.partitions.n = 1;
    f.topics.v = &ft;
    f.topics.n = 1;
    kk_wbuf w;
    kk_wbuf_init(&w, 0);
    kk_req_header h = { KK_API_FETCH, 4, 1, KK_STR_NULL };
    cr_assert_eq(kk_request_encode(&w, &h, &f), 0);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_request r;
    cr_assert_eq(kk_request_decode(w.b, w.n, NULL, &a, &r), 0);
    cr_assert_null(r.hdr.client_id.p, "a null client_id stays null");
    const kk_fetch_req *d = &r.body.fetch;
    cr_assert_eq(d->max_bytes, 5);
    cr_assert_eq(d->isolation_level, 1);
    cr_assert_eq(d->session_id, 0);      /* v7+ */
    cr_assert_eq(d->session_epoch, -1);  /* v7+ */
    cr_assert_eq(d->forgotten_topics_data.n, 0);
    cr_assert_null(d->rack_id.p);        /* v11+ */
    cr_assert_eq(d->topics.v[0].partitions.v[0].current_leader_epoch, -1); /* v9+ */
    cr_assert_eq(d->topics.v[0].partitions.v[0].log_start_offset, -1);     /* v5+ */
    cr_assert_eq(d->topics.v[0].partitions.v[0].fetch_offset, 42);

    /* Metadata v0..3: allow_auto_topic_creation is true. */
    kk_metadata_req m = { 0 };
    kk_wbuf_reset(&w);
    h = (kk_req_header){ KK_API_METADATA, 3, 2, KK_STR("x") };
    cr_assert_eq(kk_request_encode(&w, &h, &m), 0);
    cr_assert_eq(kk_request_decode(w.b, w.n, NULL, &a, &r), 0);
    cr_assert(r.body.metadata.allow_auto_topic_creation);
    kk_arena_reset(&a);
    kk_wbuf_free(&w);
}
