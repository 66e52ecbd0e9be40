/*
 * test/format/checksum.c - what the checksum and the framing catch: every
 * single-bit flip inside the checksummed range and in the length, every
 * truncation (reported as incomplete, never read past), zeroed tails; and
 * what they deliberately do not cover (base_offset, leader_epoch).
 */
#include "helpers.h"

#include "format/internal.h"

static kf_codec *codec;
static uint8_t bbuf[8192];

static void setup(void)
{
    cr_assert_eq(kf_codec_new(&codec), 0);
}

static void teardown(void)
{
    kf_codec_free(codec);
}

/* A small batch with keys, values, a null, headers; compressible enough for
 * lz4 and zstd to keep their output.  Returns a malloc'd copy. */
static uint8_t *small_batch(enum kf_codec_id id, size_t *len)
{
    static const kf_header h[2] = { { "trace", 5, "0123456789", 10 }, { "n", 1, NULL, -1 } };
    static const char v[] = "{\"temp\":21.5,\"status\":\"ok\",\"temp\":21.5,\"status\":\"ok\"}";
    kf_record recs[4] = {
        { "device-1", 8, v, (int32_t)sizeof v - 1, 1700000000000, h, 2 },
        { "device-1", 8, v, (int32_t)sizeof v - 1, 1700000000005, NULL, 0 },
        { NULL, -1, v, (int32_t)sizeof v - 1, 1699999999990, h, 1 },
        { "device-2", 8, NULL, -1, 1700000000001, NULL, 0 },
    };
    kf_builder b;
    kf_builder_init(&b, bbuf, sizeof bbuf, KF_RECORD_MAX_DEFAULT);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(kf_builder_add(&b, &recs[i]), 0);
    kf_batch_meta m = { 5, 1, 100, 0, id, 0 };
    const uint8_t *out;
    cr_assert_eq(kf_builder_finish(&b, &m, codec, &out, len), 0);
    cr_assert_eq(klog__ld16(out + KF_OFF_ATTRIBUTES) & KF_ATTR_CODEC_MASK, (unsigned)id,
                 "the test wants codec %d actually used", id);
    uint8_t *copy = malloc(*len);
    memcpy(copy, out, *len);
    cr_assert_eq(t_decode_all(copy, *len, codec), 4);
    return copy;
}

static bool outside_checksum(size_t byte)
{
    return byte < KF_OFF_LENGTH ||
           (byte >= KF_OFF_LEADER_EPOCH && byte < KF_OFF_LEADER_EPOCH + 4);
}

static void every_bit_flip(enum kf_codec_id id)
{
    size_t len;
    uint8_t *batch = small_batch(id, &len);
    uint8_t *copy = malloc(len);
    size_t flips = 0;
    for (size_t byte = KF_OFF_LENGTH; byte < len; byte++) {
        if (outside_checksum(byte))
            continue;
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, batch, len);
            copy[byte] ^= (uint8_t)(1u << bit);
            ssize_t n = kf_batch_parse(copy, len, NULL);
            if (n > 0) {
                cr_assert_eq(kf_batch_verify(copy, (size_t)n), KLOG_ECORRUPT,
                             "codec %d: flip of byte %zu bit %d passed verification", id, byte, bit);
            } else {
                cr_assert(n == 0 || n == KLOG_ECORRUPT || n == KLOG_EFORMAT, "parse gave %zd", n);
            }
            /* Whatever parse thinks, decoding the flipped batch never passes as valid. */
            long r = t_decode_all(copy, len, codec);
            cr_assert(r == T_INCOMPLETE || r == KLOG_ECORRUPT || r == KLOG_EFORMAT,
                      "byte %zu bit %d: decode gave %ld", byte, bit, r);
            flips++;
        }
    }
    cr_assert_eq(flips, (len - 12) * 8);
    free(copy);
    free(batch);
}

TestSuite(checksum, .init = setup, .fini = teardown);

Test(checksum, every_single_bit_flip_uncompressed) { every_bit_flip(KF_CODEC_NONE); }
Test(checksum, every_single_bit_flip_lz4) { every_bit_flip(KF_CODEC_LZ4); }
Test(checksum, every_single_bit_flip_zstd) { every_bit_flip(KF_CODEC_ZSTD); }
Test(checksum, every_single_bit_flip_gzip) { every_bit_flip(KF_CODEC_GZIP); }
Test(checksum, every_single_bit_flip_snappy) { every_bit_flip(KF_CODEC_SNAPPY); }

/* The magic lies before the checksummed bytes, and two magics are read (2:
 * klog 0.1's framing of a compressed section, 3: Kafka's).  The checksum's
 * seed carries the magic for v3, so a batch of one form never verifies as
 * the other, whatever bits changed: every value of the magic byte. */
Test(checksum, magic_is_covered_by_the_seed)
{
    enum kf_codec_id ids[] = { KF_CODEC_NONE, KF_CODEC_LZ4, KF_CODEC_ZSTD, KF_CODEC_GZIP, KF_CODEC_SNAPPY };
    for (size_t k = 0; k < KLOG_ARRAY_LEN(ids); k++) {
        size_t len;
        uint8_t *batch = small_batch(ids[k], &len);
        const uint8_t orig = batch[KF_OFF_MAGIC];
        cr_assert_eq(orig, ids[k] == KF_CODEC_NONE ? KF_MAGIC : KF_MAGIC_V3);
        cr_assert_eq(klog__ld64(batch + KF_OFF_CHECKSUM),
                     XXH3_64bits_withSeed(batch + 25, len - 25, (len - 12) | (ids[k] ? 3ull << 32 : 0)));
        for (int v = 0; v < 256; v++) {
            if (v == orig)
                continue;
            batch[KF_OFF_MAGIC] = (uint8_t)v;
            ssize_t n = kf_batch_parse(batch, len, NULL);
            if (v == KF_MAGIC || v == KF_MAGIC_V3) {
                cr_assert_eq(n, (ssize_t)len);
                cr_assert_eq(kf_batch_verify(batch, len), KLOG_ECORRUPT, "codec %d: magic %u -> %d verified", ids[k],
                             orig, v);
            } else {
                cr_assert_eq(n, KLOG_EFORMAT, "magic %d", v);
            }
        }
        batch[KF_OFF_MAGIC] = orig;
        cr_assert_eq(kf_batch_verify(batch, len), 0);
        free(batch);
    }
}

/* base_offset and leader_epoch are assigned at append, after the checksum
 * was computed: by design, flipping them does not fail verification.  The
 * storage layer checks offset continuity instead.  A negative base offset is
 * still refused by parse (offsets are never negative). */
Test(checksum, base_offset_and_leader_epoch_are_outside)
{
    size_t len;
    uint8_t *batch = small_batch(KF_CODEC_NONE, &len);
    for (size_t byte = 0; byte < KF_OFF_MAGIC; byte++) {
        if (!outside_checksum(byte))
            continue;
        for (int bit = 0; bit < 8; bit++) {
            batch[byte] ^= (uint8_t)(1u << bit);
            cr_assert_eq(kf_batch_verify(batch, len), 0, "byte %zu bit %d", byte, bit);
            bool sign = byte == KF_OFF_BASE_OFFSET + 7 && bit == 7;
            cr_assert_eq(kf_batch_parse(batch, len, NULL), sign ? KLOG_ECORRUPT : (ssize_t)len,
                         "byte %zu bit %d", byte, bit);
            batch[byte] ^= (uint8_t)(1u << bit);
        }
    }
    free(batch);
}

/* Every prefix of a batch is "incomplete" (0), and is read through an
 * exactly sized allocation so that ASan would see any read past it. */
static void every_truncation(enum kf_codec_id id)
{
    size_t len;
    uint8_t *batch = small_batch(id, &len);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, batch, cut);
        kf_batch_info bi;
        cr_assert_eq(kf_batch_parse(part, cut, &bi), 0, "cut at %zu of %zu", cut, len);
        /* A caller that ignores parse and verifies anyway is told no. */
        if (cut >= KF_HDR_SIZE)
            cr_assert_eq(kf_batch_verify(part, cut), KLOG_ECORRUPT);
        free(part);
    }
    cr_assert_eq(kf_batch_parse(batch, len, NULL), (ssize_t)len);
    free(batch);
}

Test(checksum, every_truncation_uncompressed) { every_truncation(KF_CODEC_NONE); }
Test(checksum, every_truncation_lz4) { every_truncation(KF_CODEC_LZ4); }
Test(checksum, every_truncation_zstd) { every_truncation(KF_CODEC_ZSTD); }
Test(checksum, every_truncation_gzip) { every_truncation(KF_CODEC_GZIP); }
Test(checksum, every_truncation_snappy) { every_truncation(KF_CODEC_SNAPPY); }

/* Two batches back to back, the second torn at every length: the first
 * parses, the second is incomplete. */
Test(checksum, torn_second_batch_in_a_stream)
{
    size_t l1, l2;
    uint8_t *b1 = small_batch(KF_CODEC_NONE, &l1);
    uint8_t *b2 = small_batch(KF_CODEC_LZ4, &l2);
    for (size_t cut = 0; cut < l2; cut++) {
        uint8_t *s = malloc(l1 + cut);
        memcpy(s, b1, l1);
        memcpy(s + l1, b2, cut);
        ssize_t n = kf_batch_parse(s, l1 + cut, NULL);
        cr_assert_eq(n, (ssize_t)l1);
        cr_assert_eq(kf_batch_verify(s, (size_t)n), 0);
        cr_assert_eq(kf_batch_parse(s + n, cut, NULL), 0, "cut %zu", cut);
        free(s);
    }
    free(b1);
    free(b2);
}

/* A write that reached the header but not the data (a preallocated or
 * reused file reads back zeroes): every zeroed tail fails verification. */
Test(checksum, zeroed_tail_fails)
{
    enum kf_codec_id ids[] = { KF_CODEC_NONE, KF_CODEC_LZ4, KF_CODEC_ZSTD, KF_CODEC_GZIP, KF_CODEC_SNAPPY };
    for (size_t k = 0; k < KLOG_ARRAY_LEN(ids); k++) {
        size_t len;
        uint8_t *batch = small_batch(ids[k], &len);
        uint8_t *copy = malloc(len);
        size_t tested = 0;
        for (size_t from = KF_CHECKSUM_START; from < len; from++) {
            memcpy(copy, batch, len);
            memset(copy + from, 0, len - from);
            if (memcmp(copy, batch, len) == 0)
                continue; /* the tail was zero already: nothing was lost */
            tested++;
            cr_assert_eq(kf_batch_parse(copy, len, NULL) > 0 ? kf_batch_verify(copy, len)
                                                             : KLOG_ECORRUPT,
                         KLOG_ECORRUPT, "codec %d zeroed from %zu", ids[k], from);
        }
        cr_assert_gt(tested, len / 2);
        /* All zero: the length is insane, which is corruption, not "wait". */
        memset(copy, 0, len);
        cr_assert_eq(kf_batch_parse(copy, len, NULL), KLOG_ECORRUPT);
        free(copy);
        free(batch);
    }
}

/* The seed is batch_length (and for magic 3, the magic): the same bytes
 * under another length are not valid, so extending or shortening a batch
 * cannot keep its checksum. */
Test(checksum, seeded_with_length)
{
    size_t len;
    uint8_t *batch = small_batch(KF_CODEC_NONE, &len);
    uint64_t stored = klog__ld64(batch + KF_OFF_CHECKSUM);
    cr_assert_eq(stored, XXH3_64bits_withSeed(batch + 25, len - 25, len - 12));
    cr_assert_neq(stored, XXH3_64bits(batch + 25, len - 25));
    uint8_t *longer = calloc(1, len + 16);
    memcpy(longer, batch, len);
    klog__st32(longer + KF_OFF_LENGTH, (uint32_t)(len + 16 - 12));
    cr_assert_eq(kf_batch_verify(longer, len + 16), KLOG_ECORRUPT);
    cr_assert_eq(kf_batch_verify(batch, len - 1), KLOG_ECORRUPT, "length field disagrees");
    cr_assert_eq(kf_batch_verify(batch, KF_HDR_SIZE - 1), KLOG_ECORRUPT);
    free(longer);
    free(batch);
}

/* The batch checksum is libxxhash's XXH3_64bits_withSeed whichever code
 * path computes it (lib/format/checksum.c picks an AVX2 build of the same
 * function when the CPU has AVX2): every length up to 4 KiB (XXH3 has a
 * separate path for each size class), at every alignment, long inputs past
 * its block size, and random seeds.  A format written by one machine must
 * verify on any other. */
Test(checksum, same_function_on_every_code_path)
{
    const size_t big = (1u << 20) + 4099;
    uint8_t *buf = malloc(big + 64);
    cr_assert_not_null(buf);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < big + 64; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    for (size_t len = 0; len <= 4096; len++)
        for (size_t align = 0; align < 8; align += (len < 300 ? 1 : 7)) {
            uint64_t seed = len * 0x100000001b3ull + align;
            uint64_t want = XXH3_64bits_withSeed(buf + align, len, seed);
            cr_assert_eq(kf__checksum(buf + align, len, seed), want, "len %zu align %zu", len, align);
#if KF_HAVE_XXH3_AVX2
            if (__builtin_cpu_supports("avx2"))
                cr_assert_eq(kf__checksum_avx2(buf + align, len, seed), want, "avx2: len %zu align %zu", len,
                             align);
#endif
        }
    for (size_t len = 4097; len <= big; len = len * 3 + 1)
        cr_assert_eq(kf__checksum(buf + 3, len, len), XXH3_64bits_withSeed(buf + 3, len, len), "len %zu", len);
    cr_assert_eq(kf__checksum(buf, big, 0), XXH3_64bits_withSeed(buf, big, 0));
    free(buf);
}
