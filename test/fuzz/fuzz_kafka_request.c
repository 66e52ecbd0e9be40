/*
 * test/fuzz/fuzz_kafka_request.c - libFuzzer target over lib/kafka's
 * request decoding (what a klog server does with every frame a client
 * sends), with properties checked on every input:
 *
 *   - a failure is KLOG_ECORRUPT, KLOG_ETOOBIG or KLOG_EFORMAT and leaves
 *     the arena empty;
 *   - a success takes at most KK_ARENA_RATIO bytes of arena per frame byte;
 *     its JSON renders; re-encoding it succeeds, and decoding that gives
 *     the same message (same JSON);
 *   - the same bytes as a response to the header's API and version (after
 *     4 bytes) decode or fail cleanly, and a decoded response re-encodes
 *     to the same message;
 *   - as a consumer-protocol Subscription and Assignment, they decode or
 *     fail cleanly.
 *
 * A property that does not hold calls abort(), which libFuzzer reports as
 * a crash and saves the input.
 *
 * Build and run (clang; see test/fuzz/README):
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Dtests=true
 *   ninja -C build-fuzz test/fuzz/fuzz_kafka_request
 *   build-fuzz/test/fuzz/fuzz_kafka_request -max_total_time=300 \
 *       /tmp/kk-corpus test/fuzz/corpus/kafka_request
 * The same file, built without -fsanitize=fuzzer and linked with
 * run_corpus.c, runs every corpus file in the normal gcc suite.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/kafka.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_kafka_request: %s:%d: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                               \
        }                                                                          \
    } while (0)

static char *json_req(const kk_request *r)
{
    klog_sbuf b = { 0 };
    kk_json_request(&b, r, 0);
    CHECK(b.err == 0 && b.p);
    return b.p;
}

static void check_failure(int rc, const kk_arena *a)
{
    CHECK(rc == KLOG_ECORRUPT || rc == KLOG_ETOOBIG || rc == KLOG_EFORMAT);
    CHECK(a->heap == NULL && a->used == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A small scratch arena, as a server keeps per connection: most inputs
     * decode into it, larger ones take the one allocation. */
    _Alignas(8) static uint8_t scratch[512];
    kk_arena a;
    kk_arena_init(&a, scratch, sizeof(scratch));
    kk_limits lim;
    kk_limits_default(&lim);
    lim.max_arena = 1u << 20; /* keep the fuzzer's memory small */

    kk_request r;
    int rc = kk_request_decode(data, size, &lim, &a, &r);
    if (rc < 0) {
        check_failure(rc, &a);
    } else {
        CHECK(a.used <= (size_t)KK_ARENA_RATIO * size);
        char *j1 = json_req(&r);
        kk_wbuf w;
        kk_wbuf_init(&w, 0);
        CHECK(kk_request_encode(&w, &r.hdr, &r.body) == 0);
        kk_arena a2;
        kk_arena_init(&a2, NULL, 0);
        kk_request r2;
        int rc2 = kk_request_decode(w.b, w.n, &lim, &a2, &r2);
        if (rc2 != 0) {
            fprintf(stderr, "re-decode: %d %s at %u (%s)\n", rc2, kk_reason_name(r2.fail.reason),
                    r2.fail.offset, r2.fail.field ? r2.fail.field : "-");
            abort();
        }
        char *j2 = json_req(&r2);
        if (strcmp(j1, j2) != 0) {
            fprintf(stderr, "round trip differs:\n%s\n%s\n", j1, j2);
            abort();
        }
        free(j1);
        free(j2);
        kk_arena_reset(&a2);
        kk_wbuf_free(&w);
    }
    kk_arena_reset(&a);

    /* The client side: the bytes after a 4-byte prefix as a response. */
    if (size >= 4) {
        int16_t key = (int16_t)((data[0] << 8) | data[1]);
        int16_t ver = (int16_t)((data[2] << 8) | data[3]);
        kk_response resp;
        rc = kk_response_decode(data + 4, size - 4, key, ver, &lim, &a, &resp);
        if (rc < 0) {
            check_failure(rc, &a);
        } else {
            CHECK(a.used <= (size_t)KK_ARENA_RATIO * (size - 4));
            /* Re-encoded, it decodes to the same message. */
            const kk_api *api = kk_api_find(key);
            klog_sbuf b1 = { 0 }, b2 = { 0 };
            kk_json_body(&b1, api->resp, ver, &resp.body, 0);
            kk_wbuf w;
            kk_wbuf_init(&w, 0);
            CHECK(kk_response_encode(&w, key, ver, resp.correlation_id, &resp.body) == 0);
            kk_arena a2;
            kk_arena_init(&a2, NULL, 0);
            kk_response resp2;
            CHECK(kk_response_decode(w.b, w.n, key, ver, &lim, &a2, &resp2) == 0);
            CHECK(resp2.correlation_id == resp.correlation_id);
            kk_json_body(&b2, api->resp, ver, &resp2.body, 0);
            CHECK(b1.p && b2.p && strcmp(b1.p, b2.p) == 0);
            free(b1.p);
            free(b2.p);
            kk_arena_reset(&a2);
            kk_wbuf_free(&w);
        }
        kk_arena_reset(&a);
    }

    /* The consumer protocol inside JoinGroup and SyncGroup. */
    int16_t v;
    kk_consumer_subscription s;
    kk_fail f;
    rc = kk_consumer_subscription_decode(data, size, &lim, &a, &v, &s, &f);
    if (rc < 0)
        check_failure(rc, &a);
    kk_arena_reset(&a);
    kk_consumer_assignment as;
    rc = kk_consumer_assignment_decode(data, size, &lim, &a, &v, &as, &f);
    if (rc < 0)
        check_failure(rc, &a);
    kk_arena_reset(&a);
    return 0;
}
