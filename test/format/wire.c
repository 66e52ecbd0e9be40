/*
 * test/format/wire.c - Kafka's wire form of a batch (61-byte big-endian
 * header, CRC-32C) to klog's stored form and back: field by field against
 * a batch written by hand from Kafka's documentation; round trips of every
 * codec and header field, byte for byte; what the CRC catches; magic,
 * caps, truncation, buffers (in place, too small); batches klog 0.1 wrote
 * (v2: zstd served from after its length, lz4 re-framed).
 */
#include <stdio.h>

#include <lz4frame.h>

#include "legacy.h"

#include "format/internal.h"

static kf_codec *codec, *dcodec;

static void setup(void)
{
    cr_assert_eq(kf_codec_new(&codec), 0);
    cr_assert_eq(kf_codec_new(&dcodec), 0);
}

static void teardown(void)
{
    kf_codec_free(codec);
    kf_codec_free(dcodec);
}

TestSuite(wire, .init = setup, .fini = teardown);

/* CRC-32C bit by bit, independent of lib/format. */
static uint32_t crc_slow(const uint8_t *p, size_t n)
{
    uint32_t c = ~0u;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
    }
    return ~c;
}

static void be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void be32(uint8_t *p, uint32_t v) { be16(p, (uint16_t)(v >> 16)), be16(p + 2, (uint16_t)v); }
static void be64(uint8_t *p, uint64_t v) { be32(p, (uint32_t)(v >> 32)), be32(p + 4, (uint32_t)v); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* The two records of klog-format(5)'s EXAMPLE ("k1" = "hello" with header
 * src=a; a null key and value one millisecond earlier), as Kafka v2
 * records: the same bytes in either form. */
static const uint8_t example_records[] = {
    0x26, 0x00, 0x00, 0x00, 0x04, 'k', '1', 0x0a, 'h', 'e', 'l', 'l', 'o', 0x02, 0x06, 's', 'r', 'c', 0x02, 'a',
    0x0c, 0x00, 0x01, 0x02, 0x01, 0x01, 0x00,
};

/* That batch on Kafka's wire, written from Kafka's documentation (record
 * batch v2): base offset 42, leader epoch 7, producer 1000 epoch 3
 * sequence 11, transactional, create time. */
static size_t kafka_example(uint8_t *w)
{
    const size_t n = 61 + sizeof example_records;
    be64(w + 0, 42);
    be32(w + 8, (uint32_t)(n - 12));
    be32(w + 12, 7);
    w[16] = 2;
    be16(w + 21, 0x10);
    be32(w + 23, 1);
    be64(w + 27, 1700000000000);
    be64(w + 35, 1700000000000);
    be64(w + 43, 1000);
    be16(w + 51, 3);
    be32(w + 53, 11);
    be32(w + 57, 2);
    memcpy(w + 61, example_records, sizeof example_records);
    be32(w + 17, crc_slow(w + 21, n - 21));
    return n;
}

Test(wire, a_kafka_batch_written_by_hand)
{
    uint8_t w[128], k[128];
    size_t n = kafka_example(w), klen = 0;
    kf_batch_info wi;
    cr_assert_eq(kf_wire_parse(w, n, &wi), (ssize_t)n);
    cr_assert_eq(wi.checksum, rd32(w + 17));
    cr_assert_eq(kf_wire_to_batch(w, n, NULL, k, sizeof k, &klen), 0);
    cr_assert_eq(klen, n + 4);
    kf_batch_info bi;
    cr_assert_eq(kf_batch_parse(k, klen, &bi), (ssize_t)klen);
    cr_assert_eq(kf_batch_verify(k, klen), 0);
    cr_assert_eq(bi.base_offset, 42);
    cr_assert_eq(bi.batch_length, klen - 12);
    cr_assert_eq(bi.leader_epoch, 7);
    cr_assert_eq(bi.magic, KF_MAGIC, "uncompressed: magic 2");
    cr_assert_eq(bi.attributes, 0x10);
    cr_assert_eq(bi.last_offset_delta, 1);
    cr_assert_eq(bi.base_timestamp, 1700000000000);
    cr_assert_eq(bi.max_timestamp, 1700000000000);
    cr_assert_eq(bi.producer_id, 1000);
    cr_assert_eq(bi.producer_epoch, 3);
    cr_assert_eq(bi.base_sequence, 11);
    cr_assert_eq(bi.record_count, 2);
    cr_assert(memcmp(k + 65, example_records, sizeof example_records) == 0, "records moved unchanged");
    kf_iter it;
    kf_record_view r;
    kf_iter_init(&it, &bi, k + 65, klen - 65);
    cr_assert_eq(kf_iter_next(&it, &r), 1);
    cr_assert(r.offset == 42 && r.key_len == 2 && !memcmp(r.key, "k1", 2) && r.value_len == 5);
    cr_assert_eq(kf_iter_next(&it, &r), 1);
    cr_assert(r.offset == 43 && r.timestamp == 1699999999999 && r.key_len == -1 && r.value_len == -1);
    cr_assert_eq(kf_iter_next(&it, &r), 0);

    /* and back: the very bytes Kafka's documentation gives */
    uint8_t hdr[KF_WIRE_HDR_SIZE];
    const uint8_t *recs;
    size_t rlen;
    cr_assert_eq(kf_batch_to_wire(k, klen, KF_WIRE_VERIFY, NULL, hdr, &recs, &rlen), 0);
    cr_assert_eq(recs, k + 65, "zero-copy: the stored records");
    cr_assert_eq(rlen, sizeof example_records);
    cr_assert(memcmp(hdr, w, 61) == 0, "header differs from Kafka's");
}

/* ---- round trips ---------------------------------------------------------------- */

#define CAP (1u << 20)

static uint8_t *klog_batch(enum kf_codec_id id, uint16_t attrs, int n, size_t *len)
{
    uint8_t *b = malloc(CAP);
    kf_builder bld;
    kf_builder_init(&bld, b, CAP, KF_RECORD_MAX_DEFAULT);
    static const kf_header h[2] = { { "trace", 5, "abc", 3 }, { "z", 1, NULL, -1 } };
    for (int i = 0; i < n; i++) {
        char k[16], v[64];
        int kl = snprintf(k, sizeof k, "k%d", i % 9), vl = snprintf(v, sizeof v, "value %d, value %d", i, i);
        kf_record r = { i % 4 ? k : NULL, i % 4 ? kl : -1, i % 7 ? v : NULL, i % 7 ? vl : -1, 1700000000000 + i * 7 - (i % 3),
                        i % 2 ? h : NULL, i % 2 ? 2u : 0u };
        cr_assert_eq(kf_builder_add(&bld, &r), 0);
    }
    kf_batch_meta m = { 77, 2, 1000, attrs, id, 0 };
    const uint8_t *out;
    cr_assert_eq(kf_builder_finish(&bld, &m, codec, &out, len), 0);
    uint8_t *copy = malloc(*len);
    memcpy(copy, out, *len);
    free(b);
    kf_batch_set_base_offset(copy, 123456789012);
    kf_batch_set_leader_epoch(copy, 5);
    cr_assert_eq(klog__ld16(copy + KF_OFF_ATTRIBUTES) & 7, (unsigned)id);
    return copy;
}

/* klog -> wire (header + records, contiguous) */
static uint8_t *to_wire(const uint8_t *k, size_t klen, unsigned flags, size_t *wlen)
{
    uint8_t hdr[KF_WIRE_HDR_SIZE];
    const uint8_t *recs;
    size_t rlen;
    int rc = kf_batch_to_wire(k, klen, flags, codec, hdr, &recs, &rlen);
    cr_assert_eq(rc, 0, "kf_batch_to_wire: %s", klog_strerror(rc));
    *wlen = KF_WIRE_HDR_SIZE + rlen;
    uint8_t *w = malloc(*wlen);
    memcpy(w, hdr, KF_WIRE_HDR_SIZE);
    memcpy(w + KF_WIRE_HDR_SIZE, recs, rlen);
    return w;
}

static const enum kf_codec_id all_codecs[] = { KF_CODEC_NONE, KF_CODEC_GZIP, KF_CODEC_SNAPPY, KF_CODEC_LZ4,
                                               KF_CODEC_ZSTD };

Test(wire, round_trip_is_byte_for_byte)
{
    static const uint16_t attrs[] = { 0, KF_ATTR_TRANSACTIONAL, KF_ATTR_LOG_APPEND_TIME,
                                      KF_ATTR_TRANSACTIONAL | KF_ATTR_CONTROL };
    for (size_t c = 0; c < KLOG_ARRAY_LEN(all_codecs); c++)
        for (size_t a = 0; a < KLOG_ARRAY_LEN(attrs); a++) {
            size_t klen, wlen, back;
            uint8_t *k = klog_batch(all_codecs[c], attrs[a], 100, &klen);
            uint8_t *w = to_wire(k, klen, KF_WIRE_VERIFY, &wlen);
            cr_assert_eq(wlen + 4, klen);
            /* Kafka's fields, big-endian, and its CRC over 21..end */
            cr_assert_eq(w[16], 2);
            cr_assert_eq(rd32(w + 8), wlen - 12);
            cr_assert_eq(rd32(w + 17), crc_slow(w + 21, wlen - 21), "codec %d: CRC", all_codecs[c]);
            cr_assert(memcmp(w + 61, k + 65, klen - 65) == 0, "the records section is the stored one");
            kf_batch_info wi, ki;
            cr_assert_eq(kf_wire_parse(w, wlen, &wi), (ssize_t)wlen);
            cr_assert_eq(kf_batch_parse(k, klen, &ki), (ssize_t)klen);
            cr_assert(wi.base_offset == ki.base_offset && wi.leader_epoch == ki.leader_epoch &&
                      wi.attributes == ki.attributes && wi.last_offset_delta == ki.last_offset_delta &&
                      wi.base_timestamp == ki.base_timestamp && wi.max_timestamp == ki.max_timestamp &&
                      wi.producer_id == ki.producer_id && wi.producer_epoch == ki.producer_epoch &&
                      wi.base_sequence == ki.base_sequence && wi.record_count == ki.record_count);
            /* and back: the stored batch again, every byte */
            uint8_t *k2 = malloc(klen);
            cr_assert_eq(kf_wire_to_batch(w, wlen, NULL, k2, klen, &back), 0);
            cr_assert_eq(back, klen);
            cr_assert(memcmp(k2, k, klen) == 0, "codec %d attrs %x: not the same batch", all_codecs[c], attrs[a]);
            cr_assert_eq(t_decode_all(k2, back, dcodec), 100);
            free(k2);
            free(w);
            free(k);
        }
}

/* The conversion in place: the wire batch at buf + 4 becomes the stored
 * batch at buf, its records not moved. */
Test(wire, in_place_and_overlapping)
{
    for (size_t c = 0; c < KLOG_ARRAY_LEN(all_codecs); c++) {
        size_t klen, wlen, out;
        uint8_t *k = klog_batch(all_codecs[c], 0, 50, &klen);
        uint8_t *w = to_wire(k, klen, 0, &wlen);
        for (size_t shift = 0; shift <= 8; shift++) { /* wire at buf + shift, result at buf */
            uint8_t *buf = malloc(wlen + 16);
            memcpy(buf + shift, w, wlen);
            int rc = kf_wire_to_batch(buf + shift, wlen, NULL, buf, wlen + 16, &out);
            cr_assert_eq(rc, 0, "shift %zu: %s", shift, klog_strerror(rc));
            cr_assert(out == klen && memcmp(buf, k, klen) == 0, "codec %d shift %zu", all_codecs[c], shift);
            free(buf);
        }
        free(w);
        free(k);
    }
}

Test(wire, buffer_too_small_says_how_much)
{
    size_t klen, wlen, need = 0;
    uint8_t *k = klog_batch(KF_CODEC_NONE, 0, 10, &klen);
    uint8_t *w = to_wire(k, klen, 0, &wlen);
    uint8_t *buf = malloc(klen);
    cr_assert_eq(kf_wire_to_batch(w, wlen, NULL, buf, klen - 1, &need), -ENOBUFS);
    cr_assert_eq(need, klen);
    cr_assert_eq(kf_wire_to_batch(w, wlen, NULL, NULL, 0, &need), -ENOBUFS);
    cr_assert_eq(need, klen);
    cr_assert_eq(kf_wire_to_batch(w, wlen, NULL, NULL, 5, &need), -EINVAL);
    cr_assert_eq(kf_wire_to_batch(NULL, wlen, NULL, buf, klen, &need), -EINVAL);
    cr_assert_eq(kf_wire_to_batch(w, wlen, NULL, buf, klen, NULL), -EINVAL);
    cr_assert_eq(kf_wire_to_batch(w, wlen, NULL, buf, klen, &need), 0);
    free(buf);
    free(w);
    free(k);
}

/* ---- what the CRC and the framing catch ------------------------------------------ */

/* Every single-bit flip from the CRC field on: refused.  Flips of the base
 * offset and the leader epoch are outside Kafka's CRC (a broker rewrites
 * them): they convert, carrying the new value. */
Test(wire, every_bit_flip)
{
    for (size_t c = 0; c < KLOG_ARRAY_LEN(all_codecs); c++) {
        size_t klen, wlen, out;
        uint8_t *k = klog_batch(all_codecs[c], 0, 8, &klen);
        uint8_t *w = to_wire(k, klen, 0, &wlen);
        uint8_t *buf = malloc(klen + 64);
        for (size_t byte = 0; byte < wlen; byte++)
            for (int bit = 0; bit < 8; bit++) {
                w[byte] ^= (uint8_t)(1u << bit);
                int rc = kf_wire_to_batch(w, wlen, NULL, buf, klen + 64, &out);
                if (byte < 8 || (byte >= 12 && byte < 16)) {
                    bool sign = byte == 0 && bit == 7;
                    cr_assert_eq(rc, sign ? KLOG_ECORRUPT : 0, "byte %zu bit %d: %d", byte, bit, rc);
                    if (!sign)
                        cr_assert_eq(kf_batch_verify(buf, out), 0);
                } else if (byte == 16) {
                    cr_assert_eq(rc, KLOG_EFORMAT, "magic flipped: %d", rc);
                } else {
                    cr_assert(rc == KLOG_ECORRUPT || rc == KLOG_ETOOBIG, "codec %d byte %zu bit %d: %d (%s)",
                              all_codecs[c], byte, bit, rc, klog_strerror(rc));
                }
                w[byte] ^= (uint8_t)(1u << bit);
            }
        cr_assert_eq(kf_wire_to_batch(w, wlen, NULL, buf, klen + 64, &out), 0);
        free(buf);
        free(w);
        free(k);
    }
}

/* Magic 0 and 1 (message sets of old clients) and anything but 2: the
 * magic is read first, from 17 bytes on. */
Test(wire, magic_other_than_2)
{
    uint8_t w[128], buf[256];
    size_t n = kafka_example(w), out;
    for (int m = 0; m < 256; m++) {
        if (m == 2)
            continue;
        w[16] = (uint8_t)m;
        cr_assert_eq(kf_wire_parse(w, n, NULL), KLOG_EFORMAT, "magic %d", m);
        cr_assert_eq(kf_wire_parse(w, 17, NULL), KLOG_EFORMAT, "magic %d, 17 bytes", m);
        cr_assert_eq(kf_wire_to_batch(w, n, NULL, buf, sizeof buf, &out), KLOG_EFORMAT, "magic %d", m);
    }
    cr_assert_eq(kf_wire_parse(w, 16, NULL), 0, "16 bytes: the magic is not there yet");
    /* a v1 message (offset, size, crc, magic 1, ...): its size is below a v2 header */
    uint8_t v1[34] = { 0 };
    be32(v1 + 8, 22);
    v1[16] = 1;
    cr_assert_eq(kf_wire_parse(v1, sizeof v1, NULL), KLOG_EFORMAT);
}

Test(wire, truncation_and_trailing_bytes)
{
    size_t klen, wlen, out;
    uint8_t *k = klog_batch(KF_CODEC_ZSTD, 0, 30, &klen);
    uint8_t *w = to_wire(k, klen, 0, &wlen);
    uint8_t *buf = malloc(klen + 64);
    for (size_t cut = 0; cut < wlen; cut++) {
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, w, cut);
        ssize_t p = kf_wire_parse(part, cut, NULL);
        cr_assert_eq(p, 0, "cut %zu: parse %zd, want incomplete", cut, p);
        cr_assert_eq(kf_wire_to_batch(part, cut, NULL, buf, klen + 64, &out), KLOG_ECORRUPT, "cut %zu", cut);
        free(part);
    }
    uint8_t *longer = malloc(wlen + 1);
    memcpy(longer, w, wlen);
    longer[wlen] = 0;
    cr_assert_eq(kf_wire_parse(longer, wlen + 1, NULL), (ssize_t)wlen, "a stream of batches: the first");
    cr_assert_eq(kf_wire_to_batch(longer, wlen + 1, NULL, buf, klen + 64, &out), KLOG_ECORRUPT,
                 "not exactly one batch");
    free(longer);
    free(buf);
    free(w);
    free(k);
}

/* A header that parses badly with a right CRC (written by a client that
 * meant it): lengths, counts, offsets; codec bits 5-7. */
Test(wire, insane_headers_with_a_good_crc)
{
    uint8_t w[128], buf[256];
    size_t n = kafka_example(w), out;
    struct { size_t off; int size; int64_t v; int want; } cases[] = {
        { 57, 4, -1, KLOG_ECORRUPT },       /* record_count negative */
        { 23, 4, -1, KLOG_ECORRUPT },       /* last_offset_delta negative */
        { 23, 4, 0, KLOG_ECORRUPT },        /* below record_count - 1 */
        { 57, 4, 100, KLOG_ECORRUPT },      /* more records than 27 bytes hold */
        { 0, 8, -5, KLOG_ECORRUPT },        /* base offset negative */
        { 0, 8, INT64_MAX, KLOG_ECORRUPT }, /* last offset overflows */
        { 21, 2, 5, KLOG_EFORMAT },         /* codec 5 */
        { 21, 2, 7, KLOG_EFORMAT },
    };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(cases); i++) {
        uint8_t d[128];
        memcpy(d, w, n);
        if (cases[i].size == 8)
            be64(d + cases[i].off, (uint64_t)cases[i].v);
        else if (cases[i].size == 4)
            be32(d + cases[i].off, (uint32_t)cases[i].v);
        else
            be16(d + cases[i].off, (uint16_t)cases[i].v);
        be32(d + 17, crc_slow(d + 21, n - 21));
        cr_assert_eq(kf_wire_to_batch(d, n, NULL, buf, sizeof buf, &out), cases[i].want, "case %zu", i);
    }
    /* lengths: below a header, past the end, past what klog can store */
    uint8_t d[128];
    memcpy(d, w, n);
    be32(d + 8, 48);
    cr_assert_eq(kf_wire_parse(d, n, NULL), KLOG_ECORRUPT);
    be32(d + 8, 0x80000000u);
    cr_assert_eq(kf_wire_parse(d, n, NULL), KLOG_ECORRUPT, "negative length");
    be32(d + 8, KF_BATCH_MAX - 12 - 4 + 1);
    cr_assert_eq(kf_wire_parse(d, n, NULL), KLOG_ETOOBIG);
    be32(d + 8, KF_BATCH_MAX - 12 - 4);
    cr_assert_eq(kf_wire_parse(d, n, NULL), 0, "the largest storable: incomplete here");
}

/* caps: the size limit (KLOG_ETOOBIG, before the CRC is computed), and a
 * producer's batch (Produce): at least one record, offsets dense. */
Test(wire, caps)
{
    uint8_t w[128], buf[256];
    size_t n = kafka_example(w), out;
    kf_wire_caps caps = { .max_batch = n - 1 };
    cr_assert_eq(kf_wire_to_batch(w, n, &caps, buf, sizeof buf, &out), KLOG_ETOOBIG);
    caps.max_batch = n;
    cr_assert_eq(kf_wire_to_batch(w, n, &caps, buf, sizeof buf, &out), 0);
    caps.producer = 1;
    cr_assert_eq(kf_wire_to_batch(w, n, &caps, buf, sizeof buf, &out), 0);
    /* a compacted batch (gaps: last_offset_delta 5 for 2 records) is a
     * batch, but not a producer's */
    uint8_t d[128];
    memcpy(d, w, n);
    be32(d + 23, 5);
    be32(d + 17, crc_slow(d + 21, n - 21));
    cr_assert_eq(kf_wire_to_batch(d, n, &caps, buf, sizeof buf, &out), KLOG_ECORRUPT);
    caps.producer = 0;
    cr_assert_eq(kf_wire_to_batch(d, n, &caps, buf, sizeof buf, &out), 0);
    /* no records at all */
    uint8_t e[61];
    memcpy(e, w, 61);
    be32(e + 8, 49);
    be32(e + 23, 0);
    be32(e + 57, 0);
    be32(e + 17, crc_slow(e + 21, 40));
    cr_assert_eq(kf_wire_to_batch(e, 61, NULL, buf, sizeof buf, &out), 0, "an empty batch is a batch");
    caps.producer = 1;
    cr_assert_eq(kf_wire_to_batch(e, 61, &caps, buf, sizeof buf, &out), KLOG_ECORRUPT, "but not a producer's");
}

/* ---- to the wire ------------------------------------------------------------------ */

Test(wire, to_wire_verifies_only_when_asked)
{
    size_t klen;
    uint8_t *k = klog_batch(KF_CODEC_LZ4, 0, 40, &klen);
    uint8_t hdr[KF_WIRE_HDR_SIZE];
    const uint8_t *recs;
    size_t rlen;
    k[klen - 3] ^= 0x40; /* damage on disk after it was written */
    cr_assert_eq(kf_batch_to_wire(k, klen, KF_WIRE_VERIFY, codec, hdr, &recs, &rlen), KLOG_ECORRUPT);
    cr_assert_eq(kf_batch_to_wire(k, klen, 0, codec, hdr, &recs, &rlen), 0, "not asked: a CRC over what is there");
    cr_assert_eq(rd32(hdr + 17), kf_crc32c(kf_crc32c(0, hdr + 21, 40), recs, rlen));
    cr_assert_eq(kf_batch_to_wire(k, klen, 0x2, codec, hdr, &recs, &rlen), -EINVAL, "unknown flag");
    cr_assert_eq(kf_batch_to_wire(k, klen - 1, 0, codec, hdr, &recs, &rlen), KLOG_ECORRUPT, "not one batch");
    k[KF_OFF_ATTRIBUTES] = (uint8_t)((k[KF_OFF_ATTRIBUTES] & ~7) | 6);
    t_reseal(k, klen);
    cr_assert_eq(kf_batch_to_wire(k, klen, 0, codec, hdr, &recs, &rlen), KLOG_EFORMAT);
    free(k);
}

/* Batches that klog 0.1 wrote (magic 2): a zstd frame is served from
 * after its u32 length, without a copy; an lz4 block is wrapped as an LZ4
 * frame (up to 4 MiB) or compressed again (above).  Either way the wire
 * batch reads back as Kafka's (v3) with the same records. */
static void v2_to_wire(enum kf_codec_id id, int n, size_t vsize, bool wrapped)
{
    size_t cap = KF_BATCH_MAX;
    uint8_t *b = malloc(cap), *v2 = malloc(cap);
    kf_builder bld;
    kf_builder_init(&bld, b, cap, KF_RECORD_MAX_DEFAULT);
    char *v = malloc(vsize);
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < vsize; j++)
            v[j] = "abcdefgh"[(j + (size_t)i) % 8] ^ (char)(j % 251 == 0);
        kf_record r = { "key", 3, v, (int32_t)vsize, 1700000000000 + i, NULL, 0 };
        cr_assert_eq(kf_builder_add(&bld, &r), 0);
    }
    const size_t raw = bld.len - KF_HDR_SIZE;
    kf_batch_meta m = { 9, 1, 0, 0, id, 0 };
    size_t vlen = t_legacy_finish(&bld, &m, v2, cap);
    cr_assert_eq(klog__ld16(v2 + KF_OFF_ATTRIBUTES) & 7, (unsigned)id, "the v2 batch must be compressed");
    kf_batch_set_base_offset(v2, 1000);
    cr_assert_eq(t_decode_all(v2, vlen, dcodec), n, "read as it was written");

    uint8_t hdr[KF_WIRE_HDR_SIZE];
    const uint8_t *recs;
    size_t rlen;
    cr_assert_eq(kf_batch_to_wire(v2, vlen, KF_WIRE_VERIFY, codec, hdr, &recs, &rlen), 0);
    if (id == KF_CODEC_ZSTD) {
        cr_assert_eq(recs, v2 + KF_HDR_SIZE + 4, "zstd: the stored frame, no copy");
        cr_assert_eq(rlen, vlen - KF_HDR_SIZE - 4);
    } else {
        cr_assert(recs < v2 || recs >= v2 + vlen, "lz4: re-framed elsewhere");
        cr_assert_eq(klog__ld32(recs), 0x184D2204u, "an LZ4 frame");
        cr_assert_eq(recs[5], wrapped ? 0x70 : 0x40, "block size: 4 MiB wrapped, 64 KiB recompressed");
        if (wrapped)
            cr_assert_eq(rlen, 7 + 4 + (vlen - KF_HDR_SIZE - 4) + 4, "the stored block as it is");
    }
    /* A standard LZ4F / zstd decoder reads the section to the records. */
    if (id == KF_CODEC_LZ4) {
        LZ4F_dctx *d;
        cr_assert(!LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)));
        uint8_t *plain = malloc(raw);
        size_t dn = raw, sn = rlen;
        size_t r = LZ4F_decompress(d, plain, &dn, recs, &sn, NULL);
        cr_assert(r == 0 && dn == raw && sn == rlen, "LZ4F: %zu %zu/%zu %zu/%zu", r, dn, raw, sn, rlen);
        cr_assert(memcmp(plain, b + KF_HDR_SIZE, raw) == 0);
        LZ4F_freeDecompressionContext(d);
        free(plain);
    }
    /* The wire batch, stored again, is a v3 batch with the same records. */
    size_t wlen = KF_WIRE_HDR_SIZE + rlen, back;
    uint8_t *w = malloc(wlen);
    memcpy(w, hdr, KF_WIRE_HDR_SIZE);
    memcpy(w + KF_WIRE_HDR_SIZE, recs, rlen);
    cr_assert_eq(rd32(w + 17), crc_slow(w + 21, wlen - 21));
    uint8_t *k3 = malloc(wlen + 4);
    cr_assert_eq(kf_wire_to_batch(w, wlen, NULL, k3, wlen + 4, &back), 0);
    cr_assert_eq(k3[KF_OFF_MAGIC], KF_MAGIC_V3);
    cr_assert_eq(t_decode_all(k3, back, dcodec), n);
    const uint8_t *r2;
    size_t r2len;
    cr_assert_eq(kf_batch_records(k3, back, dcodec, &r2, &r2len), 0);
    cr_assert(r2len == raw && memcmp(r2, b + KF_HDR_SIZE, raw) == 0, "records differ");
    free(k3);
    free(w);
    free(v);
    free(b);
    free(v2);
}

Test(wire, v2_zstd_served_from_the_stored_frame) { v2_to_wire(KF_CODEC_ZSTD, 200, 100, false); }
Test(wire, v2_lz4_wrapped_as_a_frame) { v2_to_wire(KF_CODEC_LZ4, 200, 100, true); }
Test(wire, v2_lz4_over_4mib_compressed_again) { v2_to_wire(KF_CODEC_LZ4, 6, 900000, false); }

/* A v2 lz4 batch needs a codec for that, and says so. */
Test(wire, v2_lz4_needs_a_codec)
{
    uint8_t *b = malloc(CAP), *v2 = malloc(CAP);
    kf_builder bld;
    kf_builder_init(&bld, b, CAP, KF_RECORD_MAX_DEFAULT);
    for (int i = 0; i < 50; i++) {
        kf_record r = { "key", 3, "value value value", 17, 1700000000000, NULL, 0 };
        cr_assert_eq(kf_builder_add(&bld, &r), 0);
    }
    kf_batch_meta m = { -1, -1, -1, 0, KF_CODEC_LZ4, 0 };
    size_t vlen = t_legacy_finish(&bld, &m, v2, CAP);
    uint8_t hdr[KF_WIRE_HDR_SIZE];
    const uint8_t *recs;
    size_t rlen;
    cr_assert_eq(kf_batch_to_wire(v2, vlen, 0, NULL, hdr, &recs, &rlen), -EINVAL);
    cr_assert_eq(kf_batch_to_wire(v2, vlen, 0, codec, hdr, &recs, &rlen), 0);
    free(b);
    free(v2);
}
