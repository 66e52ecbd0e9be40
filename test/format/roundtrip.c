/*
 * test/format/roundtrip.c - build a batch, seal it with every codec, decode
 * it and compare every field of every record; the builder's limits and
 * errors; header fields; the codec's scratch reuse.
 */
#include <stdio.h>

#include "helpers.h"

#define BUF_CAP (1u << 20)

typedef struct codec_case {
    const char *name;
    enum kf_codec_id codec;
    int level;
} codec_case;

static const codec_case codecs[] = {
    { "none", KF_CODEC_NONE, 0 },
    { "lz4", KF_CODEC_LZ4, 0 },
    { "zstd-default", KF_CODEC_ZSTD, 0 },
    { "zstd-1", KF_CODEC_ZSTD, 1 },
    { "zstd-19", KF_CODEC_ZSTD, 19 },
    { "zstd-fast", KF_CODEC_ZSTD, -5 },
    { "gzip-default", KF_CODEC_GZIP, 0 },
    { "gzip-1", KF_CODEC_GZIP, 1 },
    { "gzip-9", KF_CODEC_GZIP, 9 },
    { "snappy", KF_CODEC_SNAPPY, 0 },
};

static kf_batch_meta meta_for(const codec_case *cc)
{
    kf_batch_meta m = { -1, -1, -1, 0, cc->codec, cc->level };
    return m;
}

static void add_all(kf_builder *b, const kf_record *recs, int n)
{
    for (int i = 0; i < n; i++) {
        int rc = kf_builder_add(b, &recs[i]);
        cr_assert_eq(rc, 0, "add record %d: %d", i, rc);
    }
    cr_assert_eq(b->count, n);
}

static void expect_bytes(const uint8_t *got, int32_t got_len, const void *want, int32_t want_len,
                         const char *what, int i)
{
    cr_assert_eq(got_len, want_len, "record %d: %s length %d, want %d", i, what, got_len, want_len);
    if (want_len < 0) {
        cr_assert_null(got, "record %d: null %s must come back NULL", i, what);
        return;
    }
    cr_assert_not_null(got, "record %d: non-null %s came back NULL", i, what);
    if (want_len > 0)
        cr_assert(memcmp(got, want, (size_t)want_len) == 0, "record %d: %s bytes differ", i, what);
}

/*
 * Decode the finished batch out[0..len) and compare it with recs[0..n):
 * header fields, every record, every header.  base_offset is what the batch
 * is expected to carry.
 */
static void check_batch(const uint8_t *out, size_t len, const kf_record *recs, int n,
                        const kf_batch_meta *m, kf_codec *c, int64_t base_offset)
{
    kf_batch_info bi;
    cr_assert_eq(kf_batch_parse(out, len, &bi), (ssize_t)len);
    cr_assert_eq(kf_batch_verify(out, len), 0);
    cr_assert_eq(bi.base_offset, base_offset);
    cr_assert_eq(bi.batch_length, len - KF_LOG_OVERHEAD);
    t_expect_kafka_framing(out, len);
    cr_assert_eq(bi.record_count, n);
    cr_assert_eq(bi.last_offset_delta, n - 1);
    cr_assert_eq(bi.producer_id, m->producer_id);
    cr_assert_eq(bi.producer_epoch, m->producer_epoch);
    cr_assert_eq(bi.base_sequence, m->base_sequence);
    cr_assert_eq(bi.attributes & ~KF_ATTR_CODEC_MASK, m->attributes & ~KF_ATTR_CODEC_MASK);
    unsigned codec = bi.attributes & KF_ATTR_CODEC_MASK;
    cr_assert(codec == KF_CODEC_NONE || codec == (unsigned)m->codec, "codec bits %u", codec);
    int64_t maxts = recs[0].timestamp;
    for (int i = 1; i < n; i++)
        maxts = recs[i].timestamp > maxts ? recs[i].timestamp : maxts;
    cr_assert_eq(bi.base_timestamp, recs[0].timestamp);
    cr_assert_eq(bi.max_timestamp, maxts);

    const uint8_t *sec;
    size_t seclen;
    cr_assert_eq(kf_batch_records(out, len, c, &sec, &seclen), 0);
    if (codec == KF_CODEC_NONE) {
        cr_assert_eq(sec, out + KF_HDR_SIZE, "an uncompressed section is zero-copy");
        cr_assert_eq(seclen, len - KF_HDR_SIZE);
    } else {
        cr_assert_eq(bi.magic, KF_MAGIC_V3);
        cr_assert_gt(seclen, len - KF_HDR_SIZE, "compressed: the section decompresses to more");
    }
    kf_iter it;
    kf_record_view v;
    kf_iter_init(&it, &bi, sec, seclen);
    for (int i = 0; i < n; i++) {
        int rc = kf_iter_next(&it, &v);
        cr_assert_eq(rc, 1, "record %d: kf_iter_next %d", i, rc);
        cr_assert_eq(v.offset, base_offset + i);
        int64_t ts = (m->attributes & KF_ATTR_LOG_APPEND_TIME) ? maxts : recs[i].timestamp;
        cr_assert_eq(v.timestamp, ts, "record %d: timestamp %lld, want %lld", i,
                     (long long)v.timestamp, (long long)ts);
        expect_bytes(v.key, v.key_len, recs[i].key, recs[i].key_len, "key", i);
        expect_bytes(v.value, v.value_len, recs[i].value, recs[i].value_len, "value", i);
        cr_assert_eq(v.header_count, recs[i].header_count);
        size_t pos = 0;
        kf_header h;
        for (uint32_t j = 0; j < recs[i].header_count; j++) {
            cr_assert_eq(kf_header_next(&v, &pos, &h), 1, "record %d header %u", i, j);
            const kf_header *w = &recs[i].headers[j];
            expect_bytes(h.key, h.key_len, w->key, w->key_len, "header key", i);
            expect_bytes(h.value, h.value_len, w->value, w->value_len, "header value", i);
        }
        cr_assert_eq(kf_header_next(&v, &pos, &h), 0);
        cr_assert_eq(pos, v.headers_len);
    }
    cr_assert_eq(kf_iter_next(&it, &v), 0);
    cr_assert_eq(kf_iter_next(&it, &v), 0, "end is sticky");
}

/* Build recs into a fresh builder over buf, seal with cc, check. */
static void round_trip(uint8_t *buf, size_t cap, size_t max_record, const kf_record *recs, int n,
                       const codec_case *cc, kf_codec *c)
{
    kf_builder b;
    kf_builder_init(&b, buf, cap, max_record);
    add_all(&b, recs, n);
    kf_batch_meta m = meta_for(cc);
    const uint8_t *out;
    size_t len;
    cr_assert_eq(kf_builder_finish(&b, &m, c, &out, &len), 0, "finish %s", cc->name);
    check_batch(out, len, recs, n, &m, c, 0);
}

/* ---- a varied, compressible record set ------------------------------------ */

#define NREC_MIXED 500
static char arena[NREC_MIXED][200];
static char karena[NREC_MIXED][32];
static kf_header harena[NREC_MIXED][3];
static kf_record mixed[NREC_MIXED];

static void make_mixed(void)
{
    static const char *hk[] = { "trace-id", "content-type", "" };
    for (int i = 0; i < NREC_MIXED; i++) {
        int kl = snprintf(karena[i], sizeof karena[i], "device-%04d", i % 37);
        int vl = snprintf(arena[i], sizeof arena[i],
                          "{\"device\":%d,\"temp\":%d.%d,\"status\":\"ok\",\"seq\":%d}", i % 37,
                          20 + i % 9, i % 10, i);
        uint32_t nh = (uint32_t)(i % 4 == 3 ? 0 : i % 4);
        for (uint32_t j = 0; j < nh; j++) {
            harena[i][j].key = hk[j];
            harena[i][j].key_len = (int32_t)strlen(hk[j]);
            harena[i][j].value = j == 1 ? NULL : "abc";
            harena[i][j].value_len = j == 1 ? -1 : 3;
        }
        mixed[i] = (kf_record){ karena[i], kl, arena[i], vl, 1700000000000 + i * 3,
                                nh ? harena[i] : NULL, nh };
    }
}

Test(roundtrip, every_codec, .init = make_mixed)
{
    uint8_t *buf = malloc(BUF_CAP);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    for (size_t k = 0; k < KLOG_ARRAY_LEN(codecs); k++) {
        kf_builder b;
        kf_builder_init(&b, buf, BUF_CAP, KF_RECORD_MAX_DEFAULT);
        add_all(&b, mixed, NREC_MIXED);
        size_t raw = b.len;
        kf_batch_meta m = meta_for(&codecs[k]);
        const uint8_t *out;
        size_t len;
        cr_assert_eq(kf_builder_finish(&b, &m, c, &out, &len), 0);
        if (codecs[k].codec == KF_CODEC_NONE) {
            cr_assert_eq(out, buf);
            cr_assert_eq(len, raw);
        } else {
            /* JSON-ish values compress: the codec bits must say so. */
            cr_assert_eq(klog__ld16(out + KF_OFF_ATTRIBUTES) & KF_ATTR_CODEC_MASK,
                         (unsigned)codecs[k].codec, "%s", codecs[k].name);
            cr_assert_lt(len, raw, "%s: %zu >= %zu", codecs[k].name, len, raw);
        }
        check_batch(out, len, mixed, NREC_MIXED, &m, c, 0);
    }
    kf_codec_free(c);
    free(buf);
}

Test(roundtrip, edge_records)
{
    static const kf_header hdrs[] = {
        { "", 0, "", 0 },           /* empty key, empty value */
        { "k", 1, NULL, -1 },       /* null value */
        { "key", 3, "value", 5 },
    };
    const kf_record recs[] = {
        { "", 0, "", 0, 1000, NULL, 0 },          /* empty key and value */
        { NULL, 0, NULL, 0, 1000, NULL, 0 },      /* length 0 with NULL pointers */
        { NULL, -1, "v", 1, 1001, NULL, 0 },      /* null key */
        { "k", 1, NULL, -1, 1002, NULL, 0 },      /* null value (tombstone) */
        { NULL, -1, NULL, -1, 1003, NULL, 0 },    /* both null */
        { NULL, -1, NULL, -1, 1004, hdrs, 3 },    /* headers only */
        { "k", 1, "v", 1, 1005, hdrs, 1 },
    };
    uint8_t *buf = malloc(BUF_CAP);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    for (size_t k = 0; k < KLOG_ARRAY_LEN(codecs); k++) {
        round_trip(buf, BUF_CAP, KF_RECORD_MAX_DEFAULT, recs, (int)KLOG_ARRAY_LEN(recs),
                   &codecs[k], c);
        /* and each alone, as a batch of one */
        for (size_t i = 0; i < KLOG_ARRAY_LEN(recs); i++)
            round_trip(buf, BUF_CAP, KF_RECORD_MAX_DEFAULT, &recs[i], 1, &codecs[k], c);
    }
    kf_codec_free(c);
    free(buf);
}

Test(roundtrip, thousand_headers)
{
    enum { NH = 1000 };
    kf_header *h = calloc(NH, sizeof *h);
    char (*names)[16] = calloc(NH, 16);
    for (int i = 0; i < NH; i++) {
        int n = snprintf(names[i], 16, "h%d", i);
        h[i] = (kf_header){ names[i], n, i % 5 == 0 ? NULL : names[i], i % 5 == 0 ? -1 : n };
    }
    kf_record recs[3] = {
        { "a", 1, "b", 1, 5, h, NH },
        { "c", 1, "d", 1, 6, NULL, 0 },
        { NULL, -1, NULL, -1, 7, h, NH },
    };
    uint8_t *buf = malloc(BUF_CAP);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    for (size_t k = 0; k < KLOG_ARRAY_LEN(codecs); k++)
        round_trip(buf, BUF_CAP, KF_RECORD_MAX_DEFAULT, recs, 3, &codecs[k], c);
    kf_codec_free(c);
    free(buf);
    free(names);
    free(h);
}

/* A record whose payload is exactly max_record, across key, value and a
 * header; then the same plus one byte. */
Test(roundtrip, max_record_size_exact_and_one_over)
{
    const size_t cap = 2 * KF_RECORD_MAX_DEFAULT;
    uint8_t *buf = malloc(cap);
    uint8_t *data = malloc(KF_RECORD_MAX_DEFAULT + 1);
    uint64_t seed = 7;
    t_fill_random(data, KF_RECORD_MAX_DEFAULT + 1, &seed);
    kf_header h = { "hk", 2, "hv", 2 };
    int32_t vlen = (int32_t)(KF_RECORD_MAX_DEFAULT - 16 - 4);
    kf_record r = { data, 16, data + 16, vlen, 99, &h, 1 };
    cr_assert_eq(kf_record_payload(&r), KF_RECORD_MAX_DEFAULT);

    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    for (size_t k = 0; k < KLOG_ARRAY_LEN(codecs); k++)
        round_trip(buf, cap, KF_RECORD_MAX_DEFAULT, &r, 1, &codecs[k], c);

    kf_builder b;
    kf_builder_init(&b, buf, cap, KF_RECORD_MAX_DEFAULT);
    kf_record over = r;
    over.value_len++;
    cr_assert_eq(kf_record_payload(&over), KF_RECORD_MAX_DEFAULT + 1);
    cr_assert_eq(kf_builder_add(&b, &over), KLOG_ETOOBIG);
    over = r;
    h.value_len = 3; /* one more byte in the header value */
    cr_assert_eq(kf_builder_add(&b, &over), KLOG_ETOOBIG);
    h.value_len = 2;
    /* A null key plus a full-size value is exactly at the limit too. */
    kf_record nullkey = { NULL, -1, data, (int32_t)KF_RECORD_MAX_DEFAULT, 1, NULL, 0 };
    cr_assert_eq(kf_builder_add(&b, &nullkey), 0);
    nullkey.value_len++;
    cr_assert_eq(kf_builder_add(&b, &nullkey), KLOG_ETOOBIG);
    cr_assert_eq(b.count, 1);
    kf_codec_free(c);
    free(data);
    free(buf);
}

/* A record that could never fit KF_BATCH_MAX is ETOOBIG even when the
 * builder's max_record would allow it. */
Test(roundtrip, record_beyond_batch_max)
{
    uint8_t *data = malloc(KF_BATCH_MAX);
    memset(data, 'x', KF_BATCH_MAX);
    uint8_t buf[4096];
    kf_builder b;
    kf_builder_init(&b, buf, sizeof buf, (size_t)KF_BATCH_MAX * 2);
    kf_record r = { NULL, -1, data, (int32_t)(KF_BATCH_MAX - KF_HDR_SIZE), 1, NULL, 0 };
    cr_assert_eq(kf_builder_add(&b, &r), KLOG_ETOOBIG);
    r.value_len = 100000;
    cr_assert_eq(kf_builder_add(&b, &r), -ENOBUFS, "fits the format, not this buffer");
    cr_assert_eq(b.count, 0);
    free(data);
}

Test(roundtrip, ten_thousand_records)
{
    enum { N = 10000 };
    kf_record *recs = calloc(N, sizeof *recs);
    char (*vals)[48] = calloc(N, 48);
    for (int i = 0; i < N; i++) {
        int n = snprintf(vals[i], 48, "{\"n\":%d,\"v\":\"%08x\"}", i, (unsigned)(i * 2654435761u));
        recs[i] = (kf_record){ vals[i], 4, vals[i], n, 1600000000000 + i / 10, NULL, 0 };
    }
    uint8_t *buf = malloc(BUF_CAP);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    for (size_t k = 0; k < KLOG_ARRAY_LEN(codecs); k++)
        round_trip(buf, BUF_CAP, KF_RECORD_MAX_DEFAULT, recs, N, &codecs[k], c);
    kf_codec_free(c);
    free(buf);
    free(vals);
    free(recs);
}

Test(roundtrip, negative_and_extreme_timestamp_deltas)
{
    const int64_t ts[] = {
        1000000, 999000, 1000001, 0, -5, -1000000000000, INT64_MAX, INT64_MIN,
        INT64_MIN + 1, INT64_MAX - 1, 1000000, 1,
    };
    kf_record recs[KLOG_ARRAY_LEN(ts)];
    for (size_t i = 0; i < KLOG_ARRAY_LEN(ts); i++)
        recs[i] = (kf_record){ "k", 1, "v", 1, ts[i], NULL, 0 };
    uint8_t *buf = malloc(BUF_CAP);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    for (size_t k = 0; k < KLOG_ARRAY_LEN(codecs); k++) {
        round_trip(buf, BUF_CAP, KF_RECORD_MAX_DEFAULT, recs, (int)KLOG_ARRAY_LEN(ts), &codecs[k], c);
        /* Starting from the minimum, from the maximum. */
        round_trip(buf, BUF_CAP, KF_RECORD_MAX_DEFAULT, recs + 7, 5, &codecs[k], c);
        round_trip(buf, BUF_CAP, KF_RECORD_MAX_DEFAULT, recs + 6, 6, &codecs[k], c);
    }
    kf_codec_free(c);
    free(buf);
}

Test(roundtrip, log_append_time_uses_max_timestamp)
{
    kf_record recs[3] = {
        { "a", 1, "1", 1, 50, NULL, 0 },
        { "b", 1, "2", 1, 70, NULL, 0 },
        { "c", 1, "3", 1, 60, NULL, 0 },
    };
    uint8_t buf[4096];
    kf_builder b;
    kf_builder_init(&b, buf, sizeof buf, KF_RECORD_MAX_DEFAULT);
    add_all(&b, recs, 3);
    kf_batch_meta m = { 1, 2, 3, KF_ATTR_LOG_APPEND_TIME, KF_CODEC_NONE, 0 };
    const uint8_t *out;
    size_t len;
    cr_assert_eq(kf_builder_finish(&b, &m, NULL, &out, &len), 0);
    check_batch(out, len, recs, 3, &m, NULL, 0); /* expects max_timestamp 70 for all */
}

Test(roundtrip, incompressible_is_stored_uncompressed)
{
    enum { N = 4, VL = 16000 };
    uint8_t *data = malloc(N * VL);
    uint64_t seed = 1234;
    t_fill_random(data, N * VL, &seed);
    kf_record recs[N];
    for (int i = 0; i < N; i++)
        recs[i] = (kf_record){ data + i * VL, 8, data + i * VL + 8, VL - 8, seed % 1000 + (uint64_t)i, NULL, 0 };
    uint8_t *buf = malloc(BUF_CAP);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    for (size_t k = 1; k < KLOG_ARRAY_LEN(codecs); k++) {
        kf_builder b;
        kf_builder_init(&b, buf, BUF_CAP, KF_RECORD_MAX_DEFAULT);
        add_all(&b, recs, N);
        size_t raw = b.len;
        kf_batch_meta m = meta_for(&codecs[k]);
        const uint8_t *out;
        size_t len;
        cr_assert_eq(kf_builder_finish(&b, &m, c, &out, &len), 0);
        cr_assert_eq(out, buf, "%s: incompressible must stay in the builder", codecs[k].name);
        cr_assert_eq(len, raw);
        cr_assert_eq(klog__ld16(out + KF_OFF_ATTRIBUTES) & KF_ATTR_CODEC_MASK, 0u);
        check_batch(out, len, recs, N, &m, c, 0);
    }
    /* A single tiny record cannot shrink either. */
    kf_record tiny = { "a", 1, "b", 1, 0, NULL, 0 };
    kf_builder b;
    kf_builder_init(&b, buf, BUF_CAP, KF_RECORD_MAX_DEFAULT);
    add_all(&b, &tiny, 1);
    kf_batch_meta m = { -1, -1, -1, 0, KF_CODEC_ZSTD, 0 };
    const uint8_t *out;
    size_t len;
    cr_assert_eq(kf_builder_finish(&b, &m, c, &out, &len), 0);
    cr_assert_eq(out, buf);
    cr_assert_eq(klog__ld16(out + KF_OFF_ATTRIBUTES) & KF_ATTR_CODEC_MASK, 0u);
    kf_codec_free(c);
    free(buf);
    free(data);
}

Test(roundtrip, header_fields_and_meta)
{
    kf_record recs[2] = { { "a", 1, "x", 1, 10, NULL, 0 }, { "b", 1, "y", 1, 5, NULL, 0 } };
    uint8_t buf[4096];
    kf_builder b;
    kf_builder_init(&b, buf, sizeof buf, KF_RECORD_MAX_DEFAULT);
    add_all(&b, recs, 2);
    cr_assert_eq(b.base_timestamp, 10);
    cr_assert_eq(b.max_timestamp, 10);
    /* Codec bits in meta->attributes are ignored: meta->codec decides. */
    kf_batch_meta m = { 0x1122334455667788ll, 0x3344, 0x55667788,
                        KF_ATTR_TRANSACTIONAL | KF_ATTR_CONTROL | 0x07, KF_CODEC_NONE, 0 };
    const uint8_t *out;
    size_t len;
    cr_assert_eq(kf_builder_finish(&b, &m, NULL, &out, &len), 0);
    cr_assert_eq(klog__ld16(out + KF_OFF_ATTRIBUTES), KF_ATTR_TRANSACTIONAL | KF_ATTR_CONTROL);
    cr_assert_eq(klog__ld64(out + KF_OFF_BASE_OFFSET), 0u);
    cr_assert_eq(klog__ld32(out + KF_OFF_LEADER_EPOCH), 0u);
    cr_assert_eq(out[KF_OFF_MAGIC], KF_MAGIC);
    cr_assert_eq(klog__ld32(out + KF_OFF_LENGTH), len - 12);
    cr_assert_eq(klog__ld64(out + KF_OFF_CHECKSUM),
                 XXH3_64bits_withSeed(out + 25, len - 25, len - 12), "checksum rule");
    check_batch(out, len, recs, 2, &m, NULL, 0);

    /* Assign an offset and epoch at append: still verifies, offsets follow. */
    kf_batch_set_base_offset((void *)out, 1000000007);
    kf_batch_set_leader_epoch((void *)out, 42);
    kf_batch_info bi;
    cr_assert_eq(kf_batch_parse(out, len, &bi), (ssize_t)len);
    cr_assert_eq(bi.leader_epoch, 42);
    cr_assert_eq(kf_batch_last_offset(&bi), 1000000008);
    check_batch(out, len, recs, 2, &m, NULL, 1000000007);

    /* NULL meta means: no producer id, no codec. */
    cr_assert_eq(kf_builder_finish(&b, NULL, NULL, &out, &len), 0);
    cr_assert_eq(kf_batch_parse(out, len, &bi), (ssize_t)len);
    cr_assert_eq(bi.producer_id, -1);
    cr_assert_eq(bi.producer_epoch, -1);
    cr_assert_eq(bi.base_sequence, -1);
    cr_assert_eq(kf_batch_verify(out, len), 0);
}

Test(roundtrip, enobufs_leaves_builder_unchanged)
{
    uint8_t buf[300], copy[300];
    kf_builder b;
    kf_builder_init(&b, buf, sizeof buf, KF_RECORD_MAX_DEFAULT);
    kf_record r = { "key", 3, "0123456789012345678901234567890123456789", 40, 7, NULL, 0 };
    int added = 0, rc;
    while ((rc = kf_builder_add(&b, &r)) == 0) {
        added++;
        r.timestamp += 3;
    }
    cr_assert_eq(rc, -ENOBUFS);
    cr_assert_gt(added, 1);
    kf_builder before = b;
    memcpy(copy, buf, sizeof buf);
    cr_assert_eq(kf_builder_add(&b, &r), -ENOBUFS);
    cr_assert(before.len == b.len && before.count == b.count && before.cap == b.cap &&
                  before.base_timestamp == b.base_timestamp &&
                  before.max_timestamp == b.max_timestamp,
              "builder fields changed");
    cr_assert(memcmp(copy, buf, b.len) == 0, "encoded records changed");
    /* A smaller record may still fit. */
    kf_record small = { NULL, -1, NULL, -1, 1, NULL, 0 };
    while (kf_builder_add(&b, &small) == 0)
        added++;
    cr_assert_leq(b.len, sizeof buf);
    const uint8_t *out;
    size_t len;
    cr_assert_eq(kf_builder_finish(&b, NULL, NULL, &out, &len), 0);
    cr_assert_eq(t_decode_all(out, len, NULL), added);

    /* A buffer smaller than a header never accepts anything. */
    uint8_t tiny[KF_HDR_SIZE - 1];
    kf_builder_init(&b, tiny, sizeof tiny, KF_RECORD_MAX_DEFAULT);
    cr_assert_eq(kf_builder_add(&b, &small), -ENOBUFS);
    /* Exactly a header plus one minimal record. */
    uint8_t exact[KF_HDR_SIZE + 7];
    kf_builder_init(&b, exact, sizeof exact, KF_RECORD_MAX_DEFAULT);
    cr_assert_eq(kf_builder_add(&b, &small), 0);
    cr_assert_eq(b.len, sizeof exact);
    cr_assert_eq(kf_builder_add(&b, &small), -ENOBUFS);
}

Test(roundtrip, invalid_records)
{
    uint8_t buf[1024];
    kf_builder b;
    kf_builder_init(&b, buf, sizeof buf, KF_RECORD_MAX_DEFAULT);
    kf_header good = { "k", 1, "v", 1 };
    kf_header nokey = { "k", -1, "v", 1 };
    kf_header badval = { "k", 1, "v", -2 };
    kf_header nullkeyptr = { NULL, 2, "v", 1 };
    kf_header nullvalptr = { "k", 1, NULL, 3 };
    const kf_record bad[] = {
        { "k", -2, "v", 1, 0, NULL, 0 },
        { "k", 1, "v", -7, 0, NULL, 0 },
        { NULL, 1, "v", 1, 0, NULL, 0 },
        { "k", 1, NULL, 1, 0, NULL, 0 },
        { "k", 1, "v", 1, 0, NULL, 1 },
        { "k", 1, "v", 1, 0, &nokey, 1 },
        { "k", 1, "v", 1, 0, &badval, 1 },
        { "k", 1, "v", 1, 0, &nullkeyptr, 1 },
        { "k", 1, "v", 1, 0, &nullvalptr, 1 },
        { "k", INT32_MIN, "v", 1, 0, NULL, 0 },
    };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(bad); i++)
        cr_assert_eq(kf_builder_add(&b, &bad[i]), -EINVAL, "case %zu", i);
    cr_assert_eq(b.count, 0);
    cr_assert_eq(b.len, (size_t)KF_HDR_SIZE);
    kf_record ok = { "k", 1, "v", 1, 0, &good, 1 };
    cr_assert_eq(kf_builder_add(&b, &ok), 0);
}

Test(roundtrip, finish_errors)
{
    uint8_t buf[1024];
    kf_builder b;
    kf_builder_init(&b, buf, sizeof buf, KF_RECORD_MAX_DEFAULT);
    const uint8_t *out;
    size_t len;
    cr_assert_eq(kf_builder_finish(&b, NULL, NULL, &out, &len), -EINVAL, "empty builder");
    kf_record r = { "k", 1, "v", 1, 0, NULL, 0 };
    cr_assert_eq(kf_builder_add(&b, &r), 0);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    kf_batch_meta five = { -1, -1, -1, 0, (enum kf_codec_id)5, 0 };
    kf_batch_meta seven = { -1, -1, -1, 0, (enum kf_codec_id)7, 0 };
    kf_batch_meta lz4 = { -1, -1, -1, 0, KF_CODEC_LZ4, 0 };
    kf_batch_meta zbad = { -1, -1, -1, 0, KF_CODEC_ZSTD, 1000 };
    kf_batch_meta gbad = { -1, -1, -1, 0, KF_CODEC_GZIP, 10 };
    kf_batch_meta gneg = { -1, -1, -1, 0, KF_CODEC_GZIP, -1 };
    kf_batch_meta snappy = { -1, -1, -1, 0, KF_CODEC_SNAPPY, 0 };
    cr_assert_eq(kf_builder_finish(&b, &five, c, &out, &len), KLOG_EFORMAT);
    cr_assert_eq(kf_builder_finish(&b, &seven, c, &out, &len), KLOG_EFORMAT);
    cr_assert_eq(kf_builder_finish(&b, &lz4, NULL, &out, &len), -EINVAL, "compression needs a codec");
    cr_assert_eq(kf_builder_finish(&b, &snappy, NULL, &out, &len), -EINVAL, "compression needs a codec");
    cr_assert_eq(kf_builder_finish(&b, &zbad, c, &out, &len), -EINVAL, "zstd level out of range");
    cr_assert_eq(kf_builder_finish(&b, &gbad, c, &out, &len), -EINVAL, "gzip level above 9");
    cr_assert_eq(kf_builder_finish(&b, &gneg, c, &out, &len), -EINVAL, "gzip level below 0");
    /* After all that the builder still seals fine. */
    cr_assert_eq(kf_builder_finish(&b, &lz4, c, &out, &len), 0);
    cr_assert_eq(t_decode_all(out, len, c), 1);
    kf_codec_free(c);
    kf_codec_free(NULL);
}

Test(roundtrip, payload_and_size_bound)
{
    kf_header h[2] = { { "ab", 2, NULL, -1 }, { "", 0, "xyz", 3 } };
    static uint8_t big[70000];
    const kf_record recs[] = {
        { NULL, -1, NULL, -1, 0, NULL, 0 },
        { "", 0, "", 0, 0, NULL, 0 },
        { "kk", 2, "vvv", 3, 0, NULL, 0 },
        { "kk", 2, "vvv", 3, 0, h, 2 },
        { big, 200, big, 70000, -1, h, 2 },
    };
    const size_t payload[] = { 0, 0, 5, 10, 70205 };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(recs); i++) {
        cr_assert_eq(kf_record_payload(&recs[i]), payload[i], "case %zu", i);
        /* The bound holds for the record as the second of a batch whose base
         * timestamp is as far away as it can be. */
        static uint8_t buf[1 << 18];
        kf_builder b;
        kf_builder_init(&b, buf, sizeof buf, KF_RECORD_MAX_DEFAULT);
        kf_record first = { NULL, -1, NULL, -1, INT64_MAX, NULL, 0 };
        cr_assert_eq(kf_builder_add(&b, &first), 0);
        size_t before = b.len;
        cr_assert_eq(kf_builder_add(&b, &recs[i]), 0);
        cr_assert_leq(b.len - before, kf_record_size_bound(&recs[i]), "case %zu", i);
    }
}

Test(roundtrip, codec_reuse_and_decode_own_output, .init = make_mixed)
{
    uint8_t *buf = malloc(BUF_CAP);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    for (int round = 0; round < 60; round++) {
        const codec_case *cc = &codecs[1 + round % (KLOG_ARRAY_LEN(codecs) - 1)];
        int n = 1 + (round * 37) % NREC_MIXED;
        /* Finish and decode with the same codec: the decompression scratch
         * must not be the one the finished batch lives in. */
        round_trip(buf, BUF_CAP, KF_RECORD_MAX_DEFAULT, mixed, n, cc, c);
    }
    kf_codec_free(c);
    free(buf);
}

Test(roundtrip, uncompressed_needs_no_codec)
{
    kf_record r = { "k", 1, "v", 1, 3, NULL, 0 };
    uint8_t buf[256];
    kf_builder b;
    kf_builder_init(&b, buf, sizeof buf, KF_RECORD_MAX_DEFAULT);
    cr_assert_eq(kf_builder_add(&b, &r), 0);
    const uint8_t *out;
    size_t len;
    kf_batch_meta m = { -1, -1, -1, 0, KF_CODEC_NONE, 0 };
    cr_assert_eq(kf_builder_finish(&b, &m, NULL, &out, &len), 0);
    const uint8_t *recs;
    size_t rlen;
    cr_assert_eq(kf_batch_records(out, len, NULL, &recs, &rlen), 0);
    cr_assert_eq(recs, out + KF_HDR_SIZE);
    /* reset empties the builder */
    kf_builder_reset(&b);
    cr_assert_eq(b.count, 0);
    cr_assert_eq(b.len, (size_t)KF_HDR_SIZE);
    cr_assert_eq(kf_builder_finish(&b, &m, NULL, &out, &len), -EINVAL);
}

/* A batch finished with one base_sequence and restamped with another is
 * byte for byte the batch finished with the other (the producer restamps
 * batches it sealed ahead of a failed one), for every codec. */
Test(roundtrip, restamped_sequence_equals_fresh_finish, .init = make_mixed)
{
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    static uint8_t buf[64 * 1024];
    for (size_t ci = 0; ci < sizeof codecs / sizeof codecs[0]; ci++) {
        kf_batch_meta m = meta_for(&codecs[ci]);
        kf_builder b;
        kf_builder_init(&b, buf, sizeof buf, KF_RECORD_MAX_DEFAULT);
        add_all(&b, mixed, NREC_MIXED);
        const uint8_t *out;
        size_t len;
        m.base_sequence = 100;
        cr_assert_eq(kf_builder_finish(&b, &m, c, &out, &len), 0);
        uint8_t *stamped = malloc(len);
        memcpy(stamped, out, len);
        kf_batch_set_sequence(stamped, len, 0x7ffffff0);
        m.base_sequence = 0x7ffffff0;
        cr_assert_eq(kf_builder_finish(&b, &m, c, &out, &len), 0);
        cr_assert_eq(memcmp(stamped, out, len), 0, "codec %s", codecs[ci].name);
        cr_assert_eq(kf_batch_verify(stamped, len), 0);
        kf_batch_info bi;
        cr_assert_eq(kf_batch_parse(stamped, len, &bi), (ssize_t)len);
        cr_assert_eq(bi.base_sequence, 0x7ffffff0);
        free(stamped);
    }
    kf_codec_free(c);
}
