/*
 * test/kafka/api.c - the API table (advertised = implemented = the design
 * note's table), headers and golden frames as real clients send them, the
 * ApiVersions fallback, Kafka's error codes and klog's mapping onto them,
 * the consumer protocol, the schemas' arena bound, and fetch responses
 * that reference records instead of copying them.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

static kk_arena arena;
static kk_wbuf w;
static void setup(void)
{
    kk_arena_init(&arena, NULL, 0);
    kk_wbuf_init(&w, 0);
}
static void teardown(void)
{
    kk_arena_reset(&arena);
    kk_wbuf_free(&w);
}
TestSuite(kafka_api, .init = setup, .fini = teardown);

/* replication-and-wire.md 3.2, the recommended advertised table, but for
 * Produce from v0 (librdkafka compresses with gzip/snappy/lz4 only then: api.c),
 * plus what replicas exchange: LeaderAndIsr (4), OffsetForLeaderEpoch (23),
 * AlterPartition (56), and ElectLeaders (43) for klog promote, and the ACL
 * APIs (29-31) at v0-1, what kafka-python's and librdkafka's admin clients
 * send (issue 15), and AlterConfigs (33) v0-1 and IncrementalAlterConfigs
 * (44) v0, the non-flexible versions. */
static const struct { int16_t key, min, max; } design_table[] = {
    { 0, 0, 7 }, { 1, 4, 11 }, { 2, 1, 5 }, { 3, 0, 5 }, { 4, 0, 2 }, { 8, 2, 7 }, { 9, 1, 5 },
    { 10, 0, 2 }, { 11, 0, 5 }, { 12, 0, 3 }, { 13, 0, 1 }, { 14, 0, 3 }, { 15, 0, 4 },
    { 16, 0, 2 }, { 17, 0, 1 }, { 18, 0, 3 }, { 19, 0, 4 }, { 20, 0, 3 }, { 21, 0, 1 },
    { 22, 0, 1 }, { 23, 0, 3 }, { 29, 0, 1 }, { 30, 0, 1 }, { 31, 0, 1 }, { 32, 0, 2 }, { 33, 0, 1 },
    { 36, 0, 1 }, { 37, 0, 1 }, { 42, 0, 1 }, { 43, 0, 1 }, { 44, 0, 0 }, { 56, 0, 0 },
};

Test(kafka_api, table_is_the_design_table)
{
    size_t n = sizeof(design_table) / sizeof(design_table[0]);
    cr_assert_eq(kk_api_count(), (int)n);
    kk_api_versions_resp_key list[64];
    cr_assert_eq(kk_api_versions_list(list, 64), (int)n);
    for (size_t i = 0; i < n; i++) {
        const kk_api *a = kk_api_find(design_table[i].key);
        cr_assert_not_null(a, "key %d", design_table[i].key);
        cr_assert_eq(a->min, design_table[i].min, "%s", a->name);
        cr_assert_eq(a->max, design_table[i].max, "%s", a->name);
        cr_assert_eq(list[i].api_key, design_table[i].key, "in key order");
        cr_assert_eq(list[i].min_version, a->min);
        cr_assert_eq(list[i].max_version, a->max);
        cr_assert_eq(kk_api_check(a->key, (int16_t)(a->min - 1)), KLOG_EFORMAT);
        cr_assert_eq(kk_api_check(a->key, (int16_t)(a->max + 1)), KLOG_EFORMAT);
        for (int v = a->min; v <= a->max; v++) {
            cr_assert_eq(kk_api_check(a->key, (int16_t)v), 0);
            /* Only ApiVersions v3 is flexible: librdkafka and kafka-python
             * stay on non-flexible versions everywhere else (AlterPartition
             * is flexible from v0, and only replicas send it). */
            cr_assert_eq(kk_api_flexible(a->key, (int16_t)v),
                         (a->key == KK_API_API_VERSIONS && v == 3) || a->key == KK_API_ALTER_PARTITION,
                         "%s v%d", a->name, v);
        }
    }
    /* kafka-python infers (2, 3, 0) from Fetch v11 and probes with Metadata v0. */
    cr_assert_eq(kk_api_check(KK_API_FETCH, 11), 0);
    cr_assert_eq(kk_api_check(KK_API_METADATA, 0), 0);
    cr_assert(kk_api_flexible(KK_API_API_VERSIONS, 4), "unknown versions of known keys too");
    cr_assert_not(kk_api_flexible(99, 9));
    cr_assert_null(kk_api_find(24));
    cr_assert_null(kk_api_at(-1));
    cr_assert_null(kk_api_at(kk_api_count()));
}

/* What librdkafka 2.0.2 sends first: ApiVersions v3, header v2 (client_id
 * a plain nullable string, then tagged fields), compact strings. */
Test(kafka_api, golden_librdkafka_api_versions_v3)
{
    static const uint8_t f[] = {
        0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x07, 'r', 'd', 'k', 'a', 'f', 'k', 'a',
        0x01, 0x00, 0x02, 0xab, 0xcd, /* header tags: one unknown field (tag 0, 2 bytes) */
        0x0b, 'l', 'i', 'b', 'r', 'd', 'k', 'a', 'f', 'k', 'a',
        0x06, '2', '.', '0', '.', '2',
        0x00,
    };
    kk_request r;
    cr_assert_eq(kk_request_decode(f, sizeof(f), NULL, &arena, &r), 0,
                 "%s at %u", kk_reason_name(r.fail.reason), r.fail.offset);
    cr_assert(r.flexible);
    cr_assert_eq(r.hdr.correlation_id, 1);
    cr_assert_str_eq(r.hdr.client_id.p, "rdkafka");
    cr_assert_str_eq(r.body.api_versions.client_software_name.p, "librdkafka");
    cr_assert_str_eq(r.body.api_versions.client_software_version.p, "2.0.2");
    cr_assert_eq(r.body.api_versions.client_software_version.len, 5);
}

/* kafka-python's version probe: ApiVersions v0 and Metadata v0 with an
 * empty topic list (= all topics); its clients ask v1+ with null. */
Test(kafka_api, golden_kafka_python_probe)
{
    static const uint8_t av[] = { 0, 18, 0, 0, 0, 0, 0, 1, 0, 12,
                                  'k', 'a', 'f', 'k', 'a', '-', 'p', 'y', 't', 'h', 'o', 'n' };
    static const uint8_t md0[] = { 0, 3, 0, 0, 0, 0, 0, 2, 0, 12,
                                   'k', 'a', 'f', 'k', 'a', '-', 'p', 'y', 't', 'h', 'o', 'n',
                                   0, 0, 0, 0 };
    static const uint8_t md1[] = { 0, 3, 0, 1, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    kk_request r;
    cr_assert_eq(kk_request_decode(av, sizeof(av), NULL, &arena, &r), 0);
    cr_assert_not(r.flexible);
    cr_assert_str_eq(r.hdr.client_id.p, "kafka-python");
    cr_assert_eq(kk_request_decode(md0, sizeof(md0), NULL, &arena, &r), 0);
    cr_assert_eq(r.body.metadata.topics.n, 0, "v0: empty, not null");
    cr_assert(r.body.metadata.allow_auto_topic_creation);
    cr_assert_eq(kk_request_decode(md1, sizeof(md1), NULL, &arena, &r), 0);
    cr_assert_null(r.hdr.client_id.p);
    cr_assert_eq(r.body.metadata.topics.n, -1, "v1: null = all topics");
    /* v0 has no null array: -1 is malformed there. */
    uint8_t md0null[sizeof(md0)];
    memcpy(md0null, md0, sizeof(md0));
    memset(md0null + sizeof(md0) - 4, 0xff, 4);
    cr_assert_eq(kk_request_decode(md0null, sizeof(md0null), NULL, &arena, &r), KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_NULL);
}

/* An ApiVersions v3 response: header v0 (no tagged fields after the
 * correlation id, KIP-511), then a flexible body. */
Test(kafka_api, api_versions_v3_response_bytes)
{
    kk_api_versions_resp_key k = { 18, 0, 3 };
    kk_api_versions_resp resp = { .error_code = 0, .throttle_time_ms = 0 };
    resp.api_keys.v = &k;
    resp.api_keys.n = 1;
    cr_assert_eq(kk_response_encode(&w, KK_API_API_VERSIONS, 3, 7, &resp), 0);
    static const uint8_t want[] = { 0, 0, 0, 7, 0, 0, 2, 0, 18, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0 };
    cr_assert_eq(w.n, sizeof(want));
    cr_assert_arr_eq(w.b, want, sizeof(want));
    /* A flexible response of another API would carry header tags: none of
     * the implemented versions is flexible, so v0 headers everywhere. */
    kk_wbuf_reset(&w);
    kk_heartbeat_resp hb = { .error_code = KK_ERR_REBALANCE_IN_PROGRESS };
    cr_assert_eq(kk_response_encode(&w, KK_API_HEARTBEAT, 0, 5, &hb), 0);
    static const uint8_t want_hb[] = { 0, 0, 0, 5, 0, 27 };
    cr_assert_eq(w.n, sizeof(want_hb));
    cr_assert_arr_eq(w.b, want_hb, sizeof(want_hb));
}

/* A newer client's ApiVersions v4: KLOG_EFORMAT with the header, answered
 * as Kafka does: v0 body, UNSUPPORTED_VERSION and the whole list. */
Test(kafka_api, api_versions_unknown_version_fallback)
{
    static const uint8_t f[] = { 0, 18, 0, 4, 0, 0, 0, 42, 0, 1, 'x', 0, 2, 'n', 2, 'v', 0 };
    kk_request r;
    cr_assert_eq(kk_request_decode(f, sizeof(f), NULL, &arena, &r), KLOG_EFORMAT);
    cr_assert_eq(r.fail.reason, KK_R_UNSUPPORTED_VERSION);
    cr_assert_eq(r.hdr.api_key, KK_API_API_VERSIONS);
    cr_assert_eq(r.hdr.correlation_id, 42);
    cr_assert_not_null(r.api);

    cr_assert_eq(kk_api_versions_answer(&w, &r.hdr, 0), 0);

    kk_response out;
    cr_assert_eq(kk_response_decode(w.b, w.n, KK_API_API_VERSIONS, 0, NULL, &arena, &out), 0);
    cr_assert_eq(out.correlation_id, 42);
    cr_assert_eq(out.body.api_versions.error_code, 35);
    cr_assert_eq(out.body.api_versions.api_keys.n, kk_api_count());
    const kk_api_versions_resp_key *av = NULL;
    for (int i = 0; i < out.body.api_versions.api_keys.n; i++)
        if (out.body.api_versions.api_keys.v[i].api_key == KK_API_API_VERSIONS)
            av = &out.body.api_versions.api_keys.v[i];
    cr_assert_not_null(av);
    cr_assert_eq(av->max_version, 3, "the client retries with min(its max - 1, 3)");
}

/* Every implemented ApiVersions version is answered in that version. */
Test(kafka_api, api_versions_answer)
{
    for (int16_t v = 0; v <= 3; v++) {
        kk_wbuf_reset(&w);
        kk_req_header h = { KK_API_API_VERSIONS, v, 100 + v, KK_STR("c") };
        cr_assert_eq(kk_api_versions_answer(&w, &h, 5), 0);
        kk_response out;
        cr_assert_eq(kk_response_decode(w.b, w.n, KK_API_API_VERSIONS, v, NULL, &arena, &out), 0);
        cr_assert_eq(out.correlation_id, 100 + v);
        cr_assert_eq(out.body.api_versions.error_code, 0);
        cr_assert_eq(out.body.api_versions.api_keys.n, kk_api_count());
        cr_assert_eq(out.body.api_versions.throttle_time_ms, v >= 1 ? 5 : 0);
    }
    kk_req_header h = { KK_API_METADATA, 0, 1, KK_STR("c") };
    cr_assert_eq(kk_api_versions_answer(&w, &h, 0), -EINVAL);
}

Test(kafka_api, encoders_refuse_unimplemented_versions)
{
    kk_heartbeat_resp hb = { 0 };
    cr_assert_eq(kk_response_encode(&w, KK_API_HEARTBEAT, 4, 1, &hb), KLOG_EFORMAT);
    cr_assert_eq(kk_response_encode(&w, 24, 0, 1, &hb), KLOG_EFORMAT);
    kk_req_header h = { KK_API_PRODUCE, 8, 1, KK_STR("c") };
    kk_produce_req p = { 0 };
    cr_assert_eq(kk_request_encode(&w, &h, &p), KLOG_EFORMAT);
    kk_response out;
    cr_assert_eq(kk_response_decode(w.b, w.n, KK_API_FETCH, 12, NULL, &arena, &out), KLOG_EFORMAT);
    cr_assert_eq(out.fail.reason, KK_R_UNSUPPORTED_VERSION);
}

/* An array with elements claimed but none given is a caller bug. */
Test(kafka_api, encoder_rejects_missing_elements)
{
    kk_list_groups_resp lg = { 0 };
    lg.groups.n = 2;
    cr_assert_eq(kk_response_encode(&w, KK_API_LIST_GROUPS, 1, 1, &lg), -EINVAL);
}

/* Zero-initialised response structs encode: null in a non-nullable string,
 * bytes or array goes out empty. */
Test(kafka_api, zero_structs_encode_as_empty)
{
    kk_join_group_resp jg = { .error_code = KK_ERR_UNKNOWN_MEMBER_ID };
    cr_assert_eq(kk_response_encode(&w, KK_API_JOIN_GROUP, 2, 1, &jg), 0);
    kk_response out;
    cr_assert_eq(kk_response_decode(w.b, w.n, KK_API_JOIN_GROUP, 2, NULL, &arena, &out), 0);
    cr_assert_eq(out.body.join_group.error_code, 25);
    cr_assert_str_eq(out.body.join_group.leader.p, "");
    cr_assert_eq(out.body.join_group.members.n, 0);
}

/* A fetch response whose records are referenced (zero-copy): the iovec
 * list hands the caller's memory to the transport, and the bytes are
 * those of the copying encoder. */
Test(kafka_api, fetch_response_references_records)
{
    static uint8_t seg[8192];
    for (size_t i = 0; i < sizeof(seg); i++)
        seg[i] = (uint8_t)(i * 7);
    struct iovec pieces[2] = { { seg, 61 }, { seg + 100, 4000 } };
    kk_fetch_resp_partition part = { .partition_index = 0, .high_watermark = 10,
                                     .last_stable_offset = 10, .log_start_offset = 0,
                                     .preferred_read_replica = -1 };
    part.records = (kk_records){ .iovcnt = 2, .iov = pieces };
    kk_fetch_resp_topic t = { .topic = KK_STR("t") };
    t.partitions.v = &part;
    t.partitions.n = 1;
    kk_fetch_resp fr = { 0 };
    fr.responses.v = &t;
    fr.responses.n = 1;

    w.ref_min = 1024;
    cr_assert_eq(kk_response_encode(&w, KK_API_FETCH, 11, 3, &fr), 0);
    struct iovec iov[8];
    int k = kk_wbuf_iov(&w, iov, 8);
    cr_assert_eq(k, 2, "everything up to and with the 61 bytes copied, then the 4000 referenced");
    cr_assert_eq(iov[1].iov_base, (void *)(seg + 100));
    cr_assert_eq(iov[1].iov_len, 4000);
    size_t len;
    uint8_t *zc = kks_flat(&w, &len);

    kk_wbuf c;
    kk_wbuf_init(&c, 0);
    uint8_t flat[4061];
    memcpy(flat, seg, 61);
    memcpy(flat + 61, seg + 100, 4000);
    part.records = (kk_records){ .p = flat, .len = sizeof(flat) };
    cr_assert_eq(kk_response_encode(&c, KK_API_FETCH, 11, 3, &fr), 0);
    cr_assert_eq(c.n, len);
    cr_assert_arr_eq(c.b, zc, len);

    kk_response out;
    cr_assert_eq(kk_response_decode(zc, len, KK_API_FETCH, 11, NULL, &arena, &out), 0);
    const kk_records *rec = &out.body.fetch.responses.v[0].partitions.v[0].records;
    cr_assert_eq(rec->len, 4061);
    cr_assert_arr_eq(rec->p, flat, 4061);
    cr_assert(rec->p >= zc && rec->p < zc + len, "records point into the frame");
    free(zc);
    kk_wbuf_free(&c);
}

Test(kafka_api, error_names)
{
    static const struct { int code; const char *name; } names[] = {
        { -1, "UNKNOWN_SERVER_ERROR" }, { 0, "NONE" }, { 1, "OFFSET_OUT_OF_RANGE" },
        { 2, "CORRUPT_MESSAGE" }, { 3, "UNKNOWN_TOPIC_OR_PARTITION" },
        { 6, "NOT_LEADER_OR_FOLLOWER" }, { 10, "MESSAGE_TOO_LARGE" }, { 16, "NOT_COORDINATOR" },
        { 19, "NOT_ENOUGH_REPLICAS" }, { 20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND" },
        { 22, "ILLEGAL_GENERATION" }, { 25, "UNKNOWN_MEMBER_ID" }, { 27, "REBALANCE_IN_PROGRESS" },
        { 35, "UNSUPPORTED_VERSION" }, { 36, "TOPIC_ALREADY_EXISTS" },
        { 45, "OUT_OF_ORDER_SEQUENCE_NUMBER" }, { 46, "DUPLICATE_SEQUENCE_NUMBER" },
        { 47, "INVALID_PRODUCER_EPOCH" }, { 58, "SASL_AUTHENTICATION_FAILED" },
        { 74, "FENCED_LEADER_EPOCH" }, { 75, "UNKNOWN_LEADER_EPOCH" },
        { 76, "UNSUPPORTED_COMPRESSION_TYPE" }, { 79, "MEMBER_ID_REQUIRED" },
        { 82, "FENCED_INSTANCE_ID" }, { 99, "POSITION_OUT_OF_RANGE" },
        { 120, "TRANSACTION_ABORTABLE" },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        cr_assert_str_eq(kk_err_name(names[i].code), names[i].name);
    cr_assert_str_eq(kk_err_name(1000), "UNKNOWN_ERROR_CODE");
    cr_assert_str_eq(kk_err_name(-2), "UNKNOWN_ERROR_CODE");
    cr_assert_eq(KK_ERR_UNSUPPORTED_VERSION, 35);
}

Test(kafka_api, klog_errors_to_kafka)
{
    static const struct { int rc; kk_errctx ctx; int16_t want; } m[] = {
        { 0, KK_CTX_PARTITION, 0 },
        { 5, KK_CTX_PARTITION, 0 },
        { KLOG_EOFFSET, KK_CTX_PARTITION, 1 },
        { KLOG_ECORRUPT, KK_CTX_PARTITION, 2 },
        { KLOG_EUNKNOWN_TOPIC, KK_CTX_PARTITION, 3 },
        { KLOG_EUNKNOWN_PARTITION, KK_CTX_PARTITION, 3 },
        { KLOG_ECLOSED, KK_CTX_PARTITION, 6 },
        { KLOG_ETOOBIG, KK_CTX_PARTITION, 10 },
        { KLOG_ECLOSED, KK_CTX_GROUP, 16 },
        { KLOG_EFENCED, KK_CTX_GROUP, 22 },
        { KLOG_EUNKNOWN_MEMBER, KK_CTX_GROUP, 25 },
        { KLOG_EREBALANCE, KK_CTX_GROUP, 27 },
        { KLOG_EFORMAT, KK_CTX_TOPIC_ADMIN, 35 },
        { -EEXIST, KK_CTX_TOPIC_ADMIN, 36 },
        { KLOG_ECONF, KK_CTX_TOPIC_ADMIN, 40 },
        { KLOG_ECONF, KK_CTX_GROUP, 23 },
        { KLOG_ESTATE, KK_CTX_GROUP, 68 },
        { KLOG_ESEQUENCE, KK_CTX_PARTITION, 45 },
        { KLOG_EDUPLICATE, KK_CTX_PARTITION, 46 },
        { KLOG_EFENCED, KK_CTX_PARTITION, 47 },
        { KLOG_EREADONLY, KK_CTX_PARTITION, 56 },
        { KLOG_EDISKFULL, KK_CTX_PARTITION, 56 },
        { KLOG_EUNKNOWN_GROUP, KK_CTX_GROUP, 69 },
        { KLOG_EFORMAT, KK_CTX_PARTITION, 76 },
        { KLOG_EBADNAME, KK_CTX_TOPIC_ADMIN, 17 },
        { KLOG_EBADNAME, KK_CTX_GROUP, 24 },
        { -ETIMEDOUT, KK_CTX_PARTITION, 7 },
        { KLOG_ELOCKED, KK_CTX_PARTITION, -1 },
        { -ENOMEM, KK_CTX_GROUP, -1 },
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        cr_assert_eq(kk_err_from_klog(m[i].rc, m[i].ctx), m[i].want, "%s in ctx %d: %d",
                     klog_err_name(m[i].rc), m[i].ctx, kk_err_from_klog(m[i].rc, m[i].ctx));
}

Test(kafka_api, consumer_protocol)
{
    kk_str topics[2] = { KK_STR("a"), KK_STR("b") };
    int32_t parts[2] = { 0, 3 };
    kk_consumer_topic_partitions owned = { .topic = KK_STR("a") };
    owned.partitions.v = parts;
    owned.partitions.n = 2;
    kk_consumer_subscription s = { .generation_id = 5, .rack_id = KK_STR("r1") };
    s.topics.v = topics;
    s.topics.n = 2;
    s.user_data = (kk_bytes){ NULL, -1 };
    s.owned_partitions.v = &owned;
    s.owned_partitions.n = 1;
    for (int16_t v = 0; v <= 3; v++) {
        kk_wbuf_reset(&w);
        cr_assert_eq(kk_consumer_subscription_encode(&w, v, &s), 0);
        kk_consumer_subscription d;
        int16_t got;
        kk_fail f;
        cr_assert_eq(kk_consumer_subscription_decode(w.b, w.n, NULL, &arena, &got, &d, &f), 0);
        cr_assert_eq(got, v);
        cr_assert_eq(d.topics.n, 2);
        cr_assert_str_eq(d.topics.v[1].p, "b");
        cr_assert_null(d.user_data.p);
        cr_assert_eq(d.owned_partitions.n, v >= 1 ? 1 : 0);
        cr_assert_eq(d.generation_id, v >= 2 ? 5 : -1);
        if (v >= 3)
            cr_assert_str_eq(d.rack_id.p, "r1");
        else
            cr_assert_null(d.rack_id.p);
    }
    /* A version 4 from a newer client: read as 3, its new fields ignored. */
    kk_wbuf_reset(&w);
    cr_assert_eq(kk_consumer_subscription_encode(&w, 3, &s), 0);
    kk_w_i32(&w, 0x12345678);
    w.b[1] = 4;
    kk_consumer_subscription d;
    int16_t got;
    kk_fail f;
    cr_assert_eq(kk_consumer_subscription_decode(w.b, w.n, NULL, &arena, &got, &d, &f), 0);
    cr_assert_eq(got, 4);
    cr_assert_str_eq(d.rack_id.p, "r1");
    cr_assert_eq(d.generation_id, 5);
    /* A negative version, and a truncated one. */
    w.b[0] = 0xff;
    cr_assert_eq(kk_consumer_subscription_decode(w.b, w.n, NULL, &arena, &got, &d, &f), KLOG_ECORRUPT);
    cr_assert_eq(f.reason, KK_R_UNSUPPORTED_VERSION);
    w.b[0] = 0;
    cr_assert_eq(kk_consumer_subscription_decode(w.b, 10, NULL, &arena, &got, &d, &f), KLOG_ECORRUPT);
    cr_assert_eq(f.reason, KK_R_TRUNCATED);

    kk_consumer_assignment as = { 0 };
    as.assigned_partitions.v = &owned;
    as.assigned_partitions.n = 1;
    as.user_data = (kk_bytes){ (const uint8_t *)"ud", 2 };
    kk_wbuf_reset(&w);
    cr_assert_eq(kk_consumer_assignment_encode(&w, 1, &as), 0);
    kk_consumer_assignment da;
    cr_assert_eq(kk_consumer_assignment_decode(w.b, w.n, NULL, &arena, &got, &da, NULL), 0);
    cr_assert_eq(got, 1);
    cr_assert_eq(da.assigned_partitions.v[0].partitions.v[1], 3);
    cr_assert_eq(da.user_data.len, 2);
    cr_assert_eq(kk_consumer_assignment_encode(&w, 4, &as), -EINVAL);
}

static size_t type_size(int t)
{
    switch (t) {
    case KK_T_BOOL: return sizeof(bool);
    case KK_T_I8: return 1;
    case KK_T_I16: return 2;
    case KK_T_I32: return 4;
    case KK_T_I64: return 8;
    case KK_T_STR: return sizeof(kk_str);
    case KK_T_BYTES: return sizeof(kk_bytes);
    case KK_T_RECORDS: return sizeof(kk_records);
    default: return sizeof(kk_array_any);
    }
}

/* Every field lies inside its struct, and every array element (with 8
 * bytes of padding per array it holds) is at most KK_ARENA_RATIO times its
 * smallest wire size, in every version, flexible or not: the bound
 * codec.c's invariant rests on. */
static void check_schema(const kk_schema *s, int lo, int hi)
{
    for (int i = 0; i < kk_schema_nfields(s); i++) {
        const kk_field *f = kk_schema_field(s, i);
        cr_assert_leq(f->off + type_size(f->type), kk_schema_size(s), "%s.%s", kk_schema_name(s), f->name);
        if (f->type < KK_T_STRUCTS)
            continue;
        for (int v = lo; v <= hi; v++) {
            if (!kk_field_on(f, v))
                continue;
            for (int flex = 0; flex < 2; flex++) {
                size_t c;
                if (f->type == KK_T_STRUCTS) {
                    c = kk_schema_size(f->sub);
                    for (int j = 0; j < kk_schema_nfields(f->sub); j++)
                        if (kk_schema_field(f->sub, j)->type >= KK_T_STRUCTS)
                            c += 8;
                } else {
                    c = f->type == KK_T_I32S ? 4 : sizeof(kk_str);
                }
                cr_assert_leq(c, KK_ARENA_RATIO * kk__elem_min(f, v, flex), "%s.%s v%d flex %d",
                              kk_schema_name(s), f->name, v, flex);
            }
        }
        if (f->type == KK_T_STRUCTS)
            check_schema(f->sub, lo, hi);
    }
}

Test(kafka_api, schemas_respect_the_arena_ratio)
{
    for (int i = 0; i < kk_api_count(); i++) {
        const kk_api *a = kk_api_at(i);
        check_schema(a->req, a->min, a->max);
        check_schema(a->resp, a->min, a->max);
    }
    check_schema(&kk_consumer_subscription_schema, 0, 3);
    check_schema(&kk_consumer_assignment_schema, 0, 3);
}

Test(kafka_api, json_rendering)
{
    kk_sasl_authenticate_resp r = { .error_code = 58, .error_message = KK_STR("bad \"pw\"\n"),
                                    .auth_bytes = { (const uint8_t *)"\x01\xff", 2 },
                                    .session_lifetime_ms = -5 };
    klog_sbuf b = { 0 };
    kk_json_body(&b, kk_api_find(KK_API_SASL_AUTHENTICATE)->resp, 1, &r, 0);
    cr_assert_str_eq(b.p, "{\"error_code\":58,\"error_message\":\"bad \\\"pw\\\"\\u000a\","
                          "\"auth_bytes\":{\"len\":2,\"hex\":\"01ff\"},\"session_lifetime_ms\":-5}");
    free(b.p);
    b = (klog_sbuf){ 0 };
    kk_json_body(&b, kk_api_find(KK_API_SASL_AUTHENTICATE)->resp, 0, &r, 1);
    cr_assert_str_eq(b.p, "{\"error_code\":58,\"error_message\":\"bad \\\"pw\\\"\\u000a\","
                          "\"auth_bytes\":{\"len\":2,\"hex\":\"01...\"}}");
    free(b.p);
}
