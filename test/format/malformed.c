/*
 * test/format/malformed.c - hostile input.  Random garbage and corruptions
 * that keep the checksum valid (so that only the decoder's own checks stand
 * between the input and an out-of-bounds read): bad varints, lengths past
 * the end, count mismatches, trailing bytes, lying uncompressed lengths,
 * broken compressed data.  Each must give KLOG_ECORRUPT (or KLOG_EFORMAT),
 * never a crash; the suite also runs under ASan+UBSan, and every buffer
 * handed to a decoder is allocated at its exact size.
 */
#include <stdio.h>

#include <lz4.h>
#include <zstd.h>

#include "helpers.h"

static kf_codec *codec;

static void setup(void)
{
    cr_assert_eq(kf_codec_new(&codec), 0);
}

static void teardown(void)
{
    kf_codec_free(codec);
}

TestSuite(malformed, .init = setup, .fini = teardown);

/* ---- crafting batches by hand ---------------------------------------------- */

typedef struct sec {
    uint8_t b[4096];
    size_t n;
} sec;

static void s_byte(sec *s, uint8_t v) { s->b[s->n++] = v; }
static void s_var(sec *s, int64_t v) { s->n += kf_varint_put(s->b + s->n, v); }
static void s_raw(sec *s, const void *p, size_t n)
{
    if (n)
        memcpy(s->b + s->n, p, n);
    s->n += n;
}

/* A well-formed record: attr, ts delta 0, offset delta od, key "k", a value
 * of vlen bytes 'v', no headers. */
static void s_record_v(sec *s, int od, int vlen)
{
    sec t = { .n = 0 };
    s_byte(&t, 0);
    s_var(&t, 0);
    s_var(&t, od);
    s_var(&t, 1);
    s_byte(&t, 'k');
    s_var(&t, vlen);
    memset(t.b + t.n, 'v', (size_t)vlen);
    t.n += (size_t)vlen;
    s_var(&t, 0);
    s_var(s, (int64_t)t.n);
    s_raw(s, t.b, t.n);
}

/* The same with a one-byte value: 9 bytes while od < 64. */
static void s_record(sec *s, int od)
{
    s_record_v(s, od, 1);
}

/* Wrap a records section (stored as is: for a compressed codec, pass the
 * u32 length and the compressed bytes yourself) in a header claiming count
 * records and the given codec bits, with a valid checksum.  Exactly sized
 * malloc'd result. */
static uint8_t *craft(const void *section, size_t n, int32_t count, int32_t lod, unsigned attr,
                      size_t *len)
{
    *len = KF_HDR_SIZE + n;
    uint8_t *b = malloc(*len);
    memset(b, 0, KF_HDR_SIZE);
    b[KF_OFF_MAGIC] = KF_MAGIC;
    klog__st16(b + KF_OFF_ATTRIBUTES, (uint16_t)attr);
    klog__st32(b + KF_OFF_LAST_OFFSET_DELTA, (uint32_t)lod);
    klog__st64(b + KF_OFF_PRODUCER_ID, UINT64_MAX);
    klog__st32(b + KF_OFF_RECORD_COUNT, (uint32_t)count);
    memcpy(b + KF_HDR_SIZE, section, n);
    t_reseal(b, *len);
    return b;
}

/* Parse and verify must pass (the framing and checksum are fine); the
 * records call returns want_records; if that is 0, iteration must end in
 * want_iter.  Returns how many records came out before that. */
static int expect(const uint8_t *b, size_t len, int want_records, int want_iter)
{
    kf_batch_info bi;
    cr_assert_eq(kf_batch_parse(b, len, &bi), (ssize_t)len, "framing should be fine");
    cr_assert_eq(kf_batch_verify(b, len), 0, "checksum should be fine");
    const uint8_t *recs;
    size_t rlen;
    int rc = kf_batch_records(b, len, codec, &recs, &rlen);
    cr_assert_eq(rc, want_records, "kf_batch_records gave %d, want %d", rc, want_records);
    if (rc < 0)
        return 0;
    kf_iter it;
    kf_record_view v;
    kf_iter_init(&it, &bi, recs, rlen);
    int good = 0;
    while ((rc = kf_iter_next(&it, &v)) == 1)
        good++;
    cr_assert_eq(rc, want_iter, "kf_iter_next gave %d, want %d", rc, want_iter);
    /* The iterator stays put on an error. */
    if (rc < 0)
        cr_assert_eq(kf_iter_next(&it, &v), rc);
    return good;
}

static void expect_section(const sec *s, int32_t count, int want_iter)
{
    size_t len;
    uint8_t *b = craft(s->b, s->n, count, count > 0 ? count - 1 : 0, 0, &len);
    expect(b, len, 0, want_iter);
    free(b);
}

Test(malformed, crafted_valid_baseline)
{
    sec s = { .n = 0 };
    s_record(&s, 0);
    s_record(&s, 1);
    size_t len;
    uint8_t *b = craft(s.b, s.n, 2, 1, 0, &len);
    cr_assert_eq(expect(b, len, 0, 0), 2, "the crafting helpers must make valid batches");
    cr_assert_eq(t_decode_all(b, len, codec), 2);
    free(b);
}

Test(malformed, overlong_length_varint)
{
    sec s = { .n = 0 };
    for (int i = 0; i < 11; i++)
        s_byte(&s, 0xff);
    s_byte(&s, 0x00);
    expect_section(&s, 1, KLOG_ECORRUPT);
}

Test(malformed, length_out_of_int32)
{
    sec s = { .n = 0 };
    s_var(&s, (int64_t)INT32_MAX + 1);
    s_record(&s, 0);
    expect_section(&s, 1, KLOG_ECORRUPT);
}

Test(malformed, record_length_past_end)
{
    sec s = { .n = 0 };
    s_record(&s, 0);
    s.b[0] = 2 * 9; /* claims one byte more than there is */
    expect_section(&s, 1, KLOG_ECORRUPT);
    s.b[0] = 2 * 100;
    expect_section(&s, 1, KLOG_ECORRUPT);
}

Test(malformed, record_length_negative_or_tiny)
{
    int64_t lens[] = { -1, -8, 0, 1, 5 };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(lens); i++) {
        sec s = { .n = 0 };
        s_var(&s, lens[i]);
        for (int j = 0; j < 8; j++)
            s_byte(&s, 0);
        expect_section(&s, 1, KLOG_ECORRUPT);
    }
}

Test(malformed, fields_run_past_the_record)
{
    /* Timestamp varint that continues past the record's end. */
    sec s = { .n = 0 };
    s_var(&s, 6);
    s_byte(&s, 0);
    for (int i = 0; i < 5; i++)
        s_byte(&s, 0x80);
    s_byte(&s, 0x00); /* would end the varint, but is outside the record */
    s_var(&s, 0);
    expect_section(&s, 1, KLOG_ECORRUPT);

    /* Key length past the end of the record (but inside the section). */
    s.n = 0;
    s_var(&s, 8);
    s_byte(&s, 0);
    s_var(&s, 0);
    s_var(&s, 0);
    s_var(&s, 6); /* key of 6 bytes; the record has 4 left */
    s_raw(&s, "k\2v\0extra-bytes-after", 20);
    expect_section(&s, 1, KLOG_ECORRUPT);

    /* Value length past the end of the record. */
    s.n = 0;
    s_var(&s, 8);
    s_byte(&s, 0);
    s_var(&s, 0);
    s_var(&s, 0);
    s_var(&s, 1);
    s_byte(&s, 'k');
    s_var(&s, 2); /* value of 2 bytes; 2 left, leaving none for the header count */
    s_raw(&s, "v\0", 2);
    expect_section(&s, 1, KLOG_ECORRUPT);
}

static void bad_kv(int64_t kl, int64_t vl)
{
    sec s = { .n = 0 }, t = { .n = 0 };
    s_byte(&t, 0);
    s_var(&t, 0);
    s_var(&t, 0);
    s_var(&t, kl);
    s_raw(&t, "kkkk", 4);
    s_var(&t, vl);
    s_raw(&t, "vvvv", 4);
    s_var(&t, 0);
    s_var(&s, (int64_t)t.n);
    s_raw(&s, t.b, t.n);
    expect_section(&s, 1, KLOG_ECORRUPT);
}

Test(malformed, bad_key_and_value_lengths)
{
    bad_kv(-2, 4);
    bad_kv(INT32_MIN, 4);
    bad_kv((int64_t)INT32_MAX + 1, 4);
    bad_kv(4, -2);
    bad_kv(4, INT64_MIN);
    bad_kv(4, 3);  /* one byte of the value left over: trailing inside the record */
    bad_kv(3, 4);  /* key too short: everything after is misread */
}

Test(malformed, offset_delta_out_of_range)
{
    int64_t ods[] = { -1, 1, 1000, INT32_MAX, (int64_t)INT32_MAX + 1 };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(ods); i++) {
        sec s = { .n = 0 };
        s_var(&s, 8);
        s_byte(&s, 0);
        s_var(&s, 0);
        s_var(&s, ods[i]);
        s_var(&s, 1);
        s_byte(&s, 'k');
        s_var(&s, 1);
        s_byte(&s, 'v');
        s_var(&s, 0);
        s.b[0] = (uint8_t)(2 * (s.n - 1)); /* fix the length for wide varints */
        expect_section(&s, 1, KLOG_ECORRUPT);
    }
}

/* A record whose headers are described by hc and the bytes in hb. */
static void bad_headers(int64_t hc, const uint8_t *hb, size_t hn)
{
    sec t = { .n = 0 }, s = { .n = 0 };
    s_byte(&t, 0);
    s_var(&t, 0);
    s_var(&t, 0);
    s_var(&t, -1);
    s_var(&t, -1);
    s_var(&t, hc);
    s_raw(&t, hb, hn);
    s_var(&s, (int64_t)t.n);
    s_raw(&s, t.b, t.n);
    expect_section(&s, 1, KLOG_ECORRUPT);
}

Test(malformed, bad_headers)
{
    /* zigzag bytes: 0x00 = 0, 0x01 = -1, 0x02 = 1, 0x04 = 2, 0x03 = -2 */
    const uint8_t one_ok[] = { 0x02, 'k', 0x02, 'v' };
    bad_headers(-1, NULL, 0);
    bad_headers(1000, one_ok, sizeof one_ok);          /* count far beyond the bytes */
    bad_headers(2, one_ok, sizeof one_ok);             /* one header short */
    bad_headers(0, one_ok, sizeof one_ok);             /* trailing header bytes */
    const uint8_t neg_key[] = { 0x01, 0x02, 'v' };
    bad_headers(1, neg_key, sizeof neg_key);           /* header keys are never null */
    const uint8_t bad_val[] = { 0x02, 'k', 0x03 };
    bad_headers(1, bad_val, sizeof bad_val);           /* value length -2 */
    const uint8_t val_past[] = { 0x02, 'k', 0x10, 'v' };
    bad_headers(1, val_past, sizeof val_past);         /* value past the end */
    const uint8_t key_past[] = { 0x7e, 'k' };
    bad_headers(1, key_past, sizeof key_past);
    const uint8_t trunc_var[] = { 0x02, 'k', 0x80 };
    bad_headers(1, trunc_var, sizeof trunc_var);
    const uint8_t extra[] = { 0x02, 'k', 0x02, 'v', 0x00 };
    bad_headers(1, extra, sizeof extra);               /* a byte after the last header */
}

Test(malformed, header_next_is_defensive_on_its_own)
{
    const uint8_t hb[] = { 0x02, 'k', 0x7e };
    kf_record_view v = { .headers = hb, .headers_len = sizeof hb, .header_count = 1 };
    size_t pos = 0;
    kf_header h;
    cr_assert_eq(kf_header_next(&v, &pos, &h), KLOG_ECORRUPT);
    pos = sizeof hb + 1;
    cr_assert_eq(kf_header_next(&v, &pos, &h), KLOG_ECORRUPT, "position past the end");
    pos = sizeof hb;
    cr_assert_eq(kf_header_next(&v, &pos, &h), 0);
}

Test(malformed, record_count_mismatch)
{
    sec s = { .n = 0 };
    s_record_v(&s, 0, 20);
    s_record_v(&s, 1, 20);
    /* Header says 3 (last_offset_delta 2): the third is missing. */
    size_t len;
    uint8_t *b = craft(s.b, s.n, 3, 2, 0, &len);
    cr_assert_eq(expect(b, len, 0, KLOG_ECORRUPT), 2);
    free(b);
    /* Header says 1: the second record is trailing bytes. */
    b = craft(s.b, s.n, 1, 1, 0, &len);
    cr_assert_eq(expect(b, len, 0, KLOG_ECORRUPT), 1);
    free(b);
    /* Header says 0 (an empty batch), yet there are bytes. */
    b = craft(s.b, s.n, 0, 1, 0, &len);
    cr_assert_eq(expect(b, len, 0, KLOG_ECORRUPT), 0);
    free(b);
    /* More records than the section could hold at all: parse refuses. */
    b = craft(s.b, s.n, 10, 9, 0, &len);
    cr_assert_eq(kf_batch_parse(b, len, NULL), KLOG_ECORRUPT);
    free(b);
}

Test(malformed, trailing_bytes_after_last_record)
{
    const uint8_t tails[][3] = { { 0 }, { 0x10, 0, 0 }, { 0xff, 0xff, 0xff } };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(tails); i++) {
        for (size_t n = 1; n <= 3; n++) {
            sec s = { .n = 0 };
            s_record(&s, 0);
            s_raw(&s, tails[i], n);
            expect_section(&s, 1, KLOG_ECORRUPT);
        }
    }
}

Test(malformed, insane_headers)
{
    sec s = { .n = 0 };
    s_record(&s, 0);
    size_t len;
    uint8_t *b;
    /* negative count */
    b = craft(s.b, s.n, -1, 0, 0, &len);
    cr_assert_eq(kf_batch_parse(b, len, NULL), KLOG_ECORRUPT);
    free(b);
    /* last_offset_delta below count - 1, and negative */
    b = craft(s.b, s.n, 3, 1, 0, &len);
    cr_assert_eq(kf_batch_parse(b, len, NULL), KLOG_ECORRUPT);
    free(b);
    b = craft(s.b, s.n, 1, -1, 0, &len);
    cr_assert_eq(kf_batch_parse(b, len, NULL), KLOG_ECORRUPT);
    free(b);
    /* more records than an uncompressed section could hold */
    b = craft(s.b, s.n, 1000, 999, 0, &len);
    cr_assert_eq(kf_batch_parse(b, len, NULL), KLOG_ECORRUPT);
    free(b);
    /* unknown magic */
    b = craft(s.b, s.n, 1, 0, 0, &len);
    b[KF_OFF_MAGIC] = 1;
    cr_assert_eq(kf_batch_parse(b, len, NULL), KLOG_EFORMAT);
    /* base offset negative, or so large that the last offset overflows */
    b[KF_OFF_MAGIC] = KF_MAGIC;
    kf_batch_set_base_offset(b, -1);
    cr_assert_eq(kf_batch_parse(b, len, NULL), KLOG_ECORRUPT);
    klog__st32(b + KF_OFF_LAST_OFFSET_DELTA, 5);
    t_reseal(b, len);
    kf_batch_set_base_offset(b, INT64_MAX - 4);
    cr_assert_eq(kf_batch_parse(b, len, NULL), KLOG_ECORRUPT);
    kf_batch_set_base_offset(b, INT64_MAX - 5);
    cr_assert_eq(kf_batch_parse(b, len, NULL), (ssize_t)len);
    free(b);

    /* length field below a header or above KF_BATCH_MAX: corrupt even when
     * only the first 12 bytes are there (not "wait for more"). */
    uint8_t h[KF_LOG_OVERHEAD] = { 0 };
    uint32_t bad_lengths[] = { 0, 1, KF_HDR_SIZE - KF_LOG_OVERHEAD - 1,
                               KF_BATCH_MAX - KF_LOG_OVERHEAD + 1, UINT32_MAX };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(bad_lengths); i++) {
        klog__st32(h + KF_OFF_LENGTH, bad_lengths[i]);
        cr_assert_eq(kf_batch_parse(h, sizeof h, NULL), KLOG_ECORRUPT, "length %u", bad_lengths[i]);
    }
    klog__st32(h + KF_OFF_LENGTH, KF_BATCH_MAX - KF_LOG_OVERHEAD);
    cr_assert_eq(kf_batch_parse(h, sizeof h, NULL), 0, "largest legal length: incomplete");
    cr_assert_eq(kf_batch_parse(h, KF_LOG_OVERHEAD - 1, NULL), 0);

    /* verify and records refuse lengths that cannot be a batch */
    uint8_t small[KF_HDR_SIZE] = { 0 };
    const uint8_t *recs;
    size_t rlen;
    cr_assert_eq(kf_batch_verify(small, KF_HDR_SIZE - 1), KLOG_ECORRUPT);
    cr_assert_eq(kf_batch_records(small, KF_HDR_SIZE - 1, codec, &recs, &rlen), KLOG_ECORRUPT);
    cr_assert_eq(kf_batch_records(small, KF_HDR_SIZE, codec, &recs, &rlen), KLOG_ECORRUPT,
                 "length field 0 disagrees with 65 bytes");
}

/* ---- compressed sections ---------------------------------------------------- */

/* A valid compressed section for s: u32 length + lz4 block or zstd frame. */
static size_t compress_section(enum kf_codec_id id, const sec *s, uint8_t *out, size_t cap)
{
    size_t n;
    if (id == KF_CODEC_LZ4) {
        int r = LZ4_compress_default((const char *)s->b, (char *)out + 4, (int)s->n, (int)cap - 4);
        cr_assert_gt(r, 0);
        n = (size_t)r;
    } else {
        n = ZSTD_compress(out + 4, cap - 4, s->b, s->n, 3);
        cr_assert(!ZSTD_isError(n));
    }
    klog__st32(out, (uint32_t)s->n);
    return 4 + n;
}

static sec *many_records(int n)
{
    sec *s = calloc(1, sizeof *s);
    for (int i = 0; i < n; i++)
        s_record(s, i);
    return s;
}

static void lying_lengths(enum kf_codec_id id)
{
    sec *s = many_records(100);
    uint8_t cs[8192];
    size_t cn = compress_section(id, s, cs, sizeof cs);
    size_t len;
    uint8_t *b = craft(cs, cn, 100, 99, id, &len);
    cr_assert_eq(expect(b, len, 0, 0), 100, "baseline compressed batch must decode");
    free(b);

    uint32_t lies[] = { 0, 1, (uint32_t)s->n - 1, (uint32_t)s->n + 1, 50u << 20,
                        KF_BATCH_MAX - KF_HDR_SIZE, KF_BATCH_MAX - KF_HDR_SIZE + 1, KF_BATCH_MAX,
                        UINT32_MAX };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(lies); i++) {
        klog__st32(cs, lies[i]);
        b = craft(cs, cn, 100, 99, id, &len);
        expect(b, len, KLOG_ECORRUPT, 0);
        free(b);
    }
    klog__st32(cs, (uint32_t)s->n);

    /* Compressed data cut short, and with a byte appended. */
    for (size_t cut = 0; cut < cn; cut += (cut < 8 ? 1 : 7)) {
        b = craft(cs, cut, 100, 99, id, &len);
        expect(b, len, KLOG_ECORRUPT, 0);
        free(b);
    }
    cs[cn] = 0;
    b = craft(cs, cn + 1, 100, 99, id, &len);
    int rc = kf_batch_records(b, len, codec, &(const uint8_t *){ NULL }, &(size_t){ 0 });
    cr_assert_eq(rc, KLOG_ECORRUPT, "trailing byte after the compressed data");
    free(b);
    free(s);
}

Test(malformed, lying_uncompressed_length_lz4) { lying_lengths(KF_CODEC_LZ4); }
Test(malformed, lying_uncompressed_length_zstd) { lying_lengths(KF_CODEC_ZSTD); }

Test(malformed, compressed_garbage)
{
    uint64_t seed = 99;
    enum kf_codec_id ids[] = { KF_CODEC_LZ4, KF_CODEC_ZSTD };
    for (int round = 0; round < 2000; round++) {
        uint8_t cs[600];
        size_t cn = 4 + t_rand(&seed) % (sizeof cs - 4);
        t_fill_random(cs, cn, &seed);
        klog__st32(cs, (uint32_t)(1 + t_rand(&seed) % 100000));
        if (round & 2) /* a real zstd magic number, to get past the frame check */
            klog__st32(cs + 4, 0xFD2FB528u);
        size_t len;
        uint8_t *b = craft(cs, cn, 1, 0, ids[round & 1], &len);
        long r = t_decode_all(b, len, codec);
        cr_assert(r == KLOG_ECORRUPT || r >= 0, "round %d: %ld", round, r);
        free(b);
    }
}

Test(malformed, compressed_section_too_short)
{
    const uint8_t cs[4] = { 10, 0, 0, 0 };
    for (size_t n = 0; n <= 4; n++) {
        size_t len;
        uint8_t *b = craft(cs, n, 1, 0, KF_CODEC_LZ4, &len);
        expect(b, len, KLOG_ECORRUPT, 0);
        free(b);
    }
}

Test(malformed, unsupported_codecs)
{
    sec s = { .n = 0 };
    s_record(&s, 0);
    unsigned ids[] = { KF_CODEC_GZIP, KF_CODEC_SNAPPY, 5, 6, 7 };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(ids); i++) {
        size_t len;
        uint8_t *b = craft(s.b, s.n, 1, 0, ids[i], &len);
        expect(b, len, KLOG_EFORMAT, 0);
        free(b);
    }
    /* A compressed batch without a codec context. */
    uint8_t cs[256];
    size_t cn = compress_section(KF_CODEC_LZ4, &s, cs, sizeof cs), len;
    uint8_t *b = craft(cs, cn, 1, 0, KF_CODEC_LZ4, &len);
    const uint8_t *recs;
    size_t rlen;
    cr_assert_eq(kf_batch_records(b, len, NULL, &recs, &rlen), -EINVAL);
    free(b);
}

/* Decompression succeeds, but what comes out is malformed: the iterator
 * still catches it. */
Test(malformed, bad_records_inside_compressed_section)
{
    enum kf_codec_id ids[] = { KF_CODEC_LZ4, KF_CODEC_ZSTD };
    for (size_t k = 0; k < 2; k++) {
        sec *s = many_records(50);
        s->b[9 * 20] = 0x7e; /* record 20's length: 63, past its end and beyond */
        uint8_t cs[8192];
        size_t cn = compress_section(ids[k], s, cs, sizeof cs), len;
        uint8_t *b = craft(cs, cn, 50, 49, ids[k], &len);
        cr_assert_eq(expect(b, len, 0, KLOG_ECORRUPT), 20);
        free(b);
        free(s);
    }
}

/* ---- fuzzing ------------------------------------------------------------------ */

static void check_outcome(long r, const char *what, uint64_t seed)
{
    cr_assert(r >= 0 || r == T_INCOMPLETE || r == KLOG_ECORRUPT || r == KLOG_EFORMAT,
              "%s seed %llu: %ld", what, (unsigned long long)seed, r);
}

Test(malformed, random_garbage)
{
    for (uint64_t seed = 1; seed <= 20000; seed++) {
        uint64_t st = seed;
        size_t n = t_rand(&st) % 1500;
        uint8_t *b = malloc(n ? n : 1);
        int mode = (int)(seed % 4);
        if (mode == 3) {
            /* mostly small bytes: varints that parse, lengths that are plausible */
            for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(t_rand(&st) % 24);
        } else {
            t_fill_random(b, n, &st);
        }
        if (mode >= 1 && n >= KF_HDR_SIZE) {
            /* a plausible header, so that the decoder gets past the framing */
            b[KF_OFF_MAGIC] = KF_MAGIC;
            static const uint16_t attrs[] = { 0, 0, 0, KF_CODEC_LZ4, KF_CODEC_ZSTD, 7, 0x08 };
            klog__st16(b + KF_OFF_ATTRIBUTES, attrs[t_rand(&st) % KLOG_ARRAY_LEN(attrs)]);
            int32_t count = (int32_t)(t_rand(&st) % 20);
            klog__st32(b + KF_OFF_RECORD_COUNT, (uint32_t)count);
            klog__st32(b + KF_OFF_LAST_OFFSET_DELTA, (uint32_t)(count + (int32_t)(t_rand(&st) % 3)));
            kf_batch_set_base_offset(b, (int64_t)(t_rand(&st) >> 20));
            t_reseal(b, n);
            if (mode == 2 && n >= KF_HDR_SIZE + 4)
                klog__st32(b + KF_HDR_SIZE, (uint32_t)(t_rand(&st) % 5000));
            t_reseal(b, n);
        }
        long r = t_decode_all(b, n, codec);
        check_outcome(r, "garbage", seed);
        /* Parse a stream of them too: every prefix length. */
        if (seed % 64 == 0)
            for (size_t cut = 0; cut < n; cut++)
                cr_assert_leq(kf_batch_parse(b, cut, NULL), (ssize_t)cut);
        free(b);
    }
}

/* Valid batches with a few bytes of the records section changed and the
 * checksum recomputed: the decoder either accepts (if the change happened
 * to keep the encoding well formed) or says ECORRUPT. */
Test(malformed, mutated_valid_batches)
{
    static uint8_t buf[1 << 16];
    static const kf_header hs[2] = { { "trace-id", 8, "abcdef", 6 }, { "x", 1, NULL, -1 } };
    kf_builder bld;
    enum kf_codec_id ids[] = { KF_CODEC_NONE, KF_CODEC_LZ4, KF_CODEC_ZSTD };
    long accepted = 0, refused = 0;
    for (size_t k = 0; k < KLOG_ARRAY_LEN(ids); k++) {
        kf_builder_init(&bld, buf, sizeof buf, KF_RECORD_MAX_DEFAULT);
        for (int i = 0; i < 60; i++) {
            char v[64];
            int vl = snprintf(v, sizeof v, "{\"i\":%d,\"name\":\"sensor\",\"ok\":true}", i);
            kf_record r = { i % 7 ? "key" : NULL, i % 7 ? 3 : -1, v, vl, 1000 - i * 10,
                            i % 3 ? NULL : hs, i % 3 ? 0u : 2u };
            cr_assert_eq(kf_builder_add(&bld, &r), 0);
        }
        kf_batch_meta m = { -1, -1, -1, 0, ids[k], 0 };
        const uint8_t *out;
        size_t len;
        cr_assert_eq(kf_builder_finish(&bld, &m, codec, &out, &len), 0);
        uint8_t *orig = malloc(len);
        memcpy(orig, out, len);
        cr_assert_eq(t_decode_all(orig, len, codec), 60);
        uint8_t *b = malloc(len);
        for (uint64_t seed = 1; seed <= 4000; seed++) {
            uint64_t st = seed * 7919 + k;
            memcpy(b, orig, len);
            int nmut = 1 + (int)(t_rand(&st) % 4);
            for (int j = 0; j < nmut; j++) {
                size_t at = KF_HDR_SIZE + t_rand(&st) % (len - KF_HDR_SIZE);
                if (t_rand(&st) & 1)
                    b[at] ^= (uint8_t)(1u << (t_rand(&st) % 8));
                else
                    b[at] = (uint8_t)t_rand(&st);
            }
            t_reseal(b, len);
            long r = t_decode_all(b, len, codec);
            check_outcome(r, "mutation", seed);
            cr_assert_neq(r, T_INCOMPLETE);
            r >= 0 ? accepted++ : refused++;
        }
        free(b);
        free(orig);
    }
    /* Both outcomes occur: the test exercises real decoding, not only the
     * first check. */
    cr_assert_gt(refused, 1000);
    cr_assert_gt(accepted, 10);
}

/* ---- the record decoder's fast path (format/iter.h) ------------------------ */

#include "format/iter.h"

/* Walk [recs, recs + len) with kf_iter_next (the inline fast path first)
 * and with kf__iter_step_slow alone: the same result at every step, the
 * same record views, the same stopping point. */
static void same_walk(const kf_batch_info *bi, const uint8_t *recs, size_t len)
{
    kf_iter a, b;
    kf_iter_init(&a, bi, recs, len);
    kf_iter_init(&b, bi, recs, len);
    for (int step = 0; step < 100000; step++) {
        kf_record_view x, y;
        memset(&x, 0, sizeof x);
        memset(&y, 0, sizeof y);
        int ra = kf_iter_next(&a, &x), rb = kf__iter_step_slow(&b, &y);
        cr_assert_eq(ra, rb, "step %d: fast %d, slow %d", step, ra, rb);
        cr_assert(a.p == b.p && a.left == b.left, "step %d: the iterators parted", step);
        if (ra != 1)
            return;
        cr_assert(x.offset == y.offset && x.timestamp == y.timestamp && x.key == y.key && x.key_len == y.key_len &&
                      x.value == y.value && x.value_len == y.value_len && x.header_count == y.header_count &&
                      x.headers == y.headers && x.headers_len == y.headers_len,
                  "step %d: the views differ", step);
    }
}

/* Records of every shape (null and empty keys and values, lengths across
 * the one/two/three-byte varint bounds, headers, timestamp deltas past two
 * bytes, records under 16 bytes at a section's end), as built and then
 * with random bytes of the records section changed: the fast path accepts
 * exactly what the checked decoder accepts, and decodes it the same. */
Test(malformed, fast_and_checked_record_decoders_agree)
{
    static uint8_t buf[1 << 20], mut[1 << 20], val[20000];
    uint64_t seed = 0x5eed21;
    memset(val, 'v', sizeof val);
    static const int32_t lens[] = { -1, 0, 1, 5, 63, 64, 100, 8191, 8192, 9000 };
    for (int round = 0; round < 300; round++) {
        kf_builder bld;
        kf_builder_init(&bld, buf, sizeof buf, sizeof buf);
        int n = 1 + (int)(t_rand(&seed) % 40);
        int64_t ts = (int64_t)(t_rand(&seed) % 1000000);
        for (int i = 0; i < n; i++) {
            kf_header h[2] = { { "h", 1, "v", 1 }, { "k2", 2, NULL, -1 } };
            kf_record r = { 0 };
            r.key_len = lens[t_rand(&seed) % 10];
            r.value_len = lens[t_rand(&seed) % 10];
            if (r.key_len > 300)
                r.key_len = 300;
            r.key = r.key_len > 0 ? val : NULL;
            r.value = r.value_len > 0 ? val : NULL;
            r.timestamp = ts + (int64_t)(t_rand(&seed) % 4 == 0 ? t_rand(&seed) % 100000 : t_rand(&seed) % 50);
            if (t_rand(&seed) % 8 == 0) {
                r.headers = h;
                r.header_count = 1 + (uint32_t)(t_rand(&seed) % 2);
            }
            if (kf_builder_add(&bld, &r) != 0)
                break;
        }
        const uint8_t *out;
        size_t olen;
        cr_assert_eq(kf_builder_finish(&bld, NULL, NULL, &out, &olen), 0);
        kf_batch_info bi;
        cr_assert_eq(kf_batch_parse(out, olen, &bi), (ssize_t)olen);
        const uint8_t *recs = out + KF_HDR_SIZE;
        size_t rlen = olen - KF_HDR_SIZE;
        same_walk(&bi, recs, rlen);
        for (int m = 0; m < 20; m++) {
            memcpy(mut, recs, rlen);
            int flips = 1 + (int)(t_rand(&seed) % 3);
            for (int f = 0; f < flips; f++)
                mut[t_rand(&seed) % rlen] = (uint8_t)t_rand(&seed);
            same_walk(&bi, mut, rlen);
            same_walk(&bi, mut, rlen - t_rand(&seed) % KLOG_MIN(rlen, (size_t)20)); /* cut short */
        }
    }
}
