/*
 * test/format/codecs.c - v3 records sections (Kafka's framing) as other
 * encoders make them, and as an attacker makes them.
 *
 * Accepted: every form a Kafka client sends - gzip with header fields and
 * several members; snappy raw (librdkafka) and in snappy-java's framing
 * with any block size (Java, kafka-python); LZ4 frames with or without
 * content size, with checksums, any block size, blocks stored raw; zstd
 * frames with and without content size, several frames, skippable frames,
 * checksums.  Refused (KLOG_ECORRUPT): what Kafka's own consumers could
 * not read (LZ4 linked blocks, a wrong LZ4 header checksum, zlib instead of
 * gzip), trailing bytes, truncation at every length, single-byte damage
 * (unless what comes out still decodes), lengths that lie, and sections
 * that decompress past KF_BATCH_MAX - KF_HDR_SIZE (bombs): refused without
 * the scratch growing past that cap.
 */
#include <stdio.h>

#include <lz4.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <xxhash.h>
#include <zlib.h>
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

TestSuite(codecs, .init = setup, .fini = teardown);

/* ---- material ----------------------------------------------------------------- */

typedef struct buf {
    uint8_t *p;
    size_t n;
} buf;

/* An uncompressed records section of n records (JSON-ish values, with a
 * null key now and then and some headers). */
static buf records(int n)
{
    size_t cap = (size_t)n * 200 + KF_HDR_SIZE;
    uint8_t *b = malloc(cap);
    kf_builder bld;
    kf_builder_init(&bld, b, cap, KF_RECORD_MAX_DEFAULT);
    static const kf_header h[1] = { { "src", 3, "test", 4 } };
    for (int i = 0; i < n; i++) {
        char k[16], v[128];
        int kl = snprintf(k, sizeof k, "key-%d", i % 13);
        int vl = snprintf(v, sizeof v, "{\"n\":%d,\"name\":\"sensor-%d\",\"ok\":true,\"pad\":\"xxxxxxxx\"}", i, i % 7);
        kf_record r = { i % 5 ? k : NULL, i % 5 ? kl : -1, v, vl, 1700000000000 + i, i % 3 ? NULL : h, i % 3 ? 0u : 1u };
        cr_assert_eq(kf_builder_add(&bld, &r), 0);
    }
    buf s = { malloc(bld.len - KF_HDR_SIZE), bld.len - KF_HDR_SIZE };
    memcpy(s.p, b + KF_HDR_SIZE, s.n);
    free(b);
    return s;
}

/* A v3 batch around a compressed section: count records, the codec bits,
 * magic 3, a valid checksum.  Exactly sized. */
static uint8_t *craft3(const void *section, size_t n, int32_t count, unsigned codec_id, size_t *len)
{
    *len = KF_HDR_SIZE + n;
    uint8_t *b = malloc(*len);
    memset(b, 0, KF_HDR_SIZE);
    b[KF_OFF_MAGIC] = KF_MAGIC_V3;
    klog__st16(b + KF_OFF_ATTRIBUTES, (uint16_t)codec_id);
    klog__st32(b + KF_OFF_LAST_OFFSET_DELTA, (uint32_t)(count - 1));
    klog__st64(b + KF_OFF_BASE_TIMESTAMP, 1700000000000);
    klog__st64(b + KF_OFF_PRODUCER_ID, UINT64_MAX);
    klog__st32(b + KF_OFF_RECORD_COUNT, (uint32_t)count);
    if (n)
        memcpy(b + KF_HDR_SIZE, section, n);
    t_reseal(b, *len);
    return b;
}

/* The section compressed as codec_id decodes to exactly recs, and the
 * batch iterates to count records. */
static void expect_ok(const buf *z, unsigned codec_id, const buf *recs, int count, const char *what)
{
    size_t len;
    uint8_t *b = craft3(z->p, z->n, count, codec_id, &len);
    const uint8_t *out;
    size_t olen;
    int rc = kf_batch_records(b, len, codec, &out, &olen);
    cr_assert_eq(rc, 0, "%s: %s", what, klog_strerror(rc));
    cr_assert_eq(olen, recs->n, "%s: %zu bytes, want %zu", what, olen, recs->n);
    cr_assert(memcmp(out, recs->p, olen) == 0, "%s: bytes differ", what);
    cr_assert_eq(t_decode_all(b, len, codec), count, "%s", what);
    free(b);
}

/* The section decodes to exactly want (which need not be records). */
static void expect_ok_raw(const buf *z, unsigned codec_id, const buf *want)
{
    size_t len;
    uint8_t *b = craft3(z->p, z->n, 1, codec_id, &len);
    const uint8_t *out;
    size_t olen;
    cr_assert_eq(kf_batch_records(b, len, codec, &out, &olen), 0);
    cr_assert(olen == want->n && memcmp(out, want->p, olen) == 0, "%zu bytes, want %zu", olen, want->n);
    free(b);
}

static void expect_corrupt(const void *z, size_t n, unsigned codec_id, const char *what)
{
    size_t len;
    uint8_t *b = craft3(z, n, 1, codec_id, &len);
    const uint8_t *out;
    size_t olen;
    int rc = kf_batch_records(b, len, codec, &out, &olen);
    cr_assert_eq(rc, KLOG_ECORRUPT, "%s: %d (%s), want KLOG_ECORRUPT", what, rc, klog_strerror(rc));
    free(b);
}

static buf cat(const buf *a, const void *p, size_t n)
{
    buf r = { malloc(a->n + n + 1), a->n + n };
    memcpy(r.p, a->p, a->n);
    memcpy(r.p + a->n, p, n);
    return r;
}

/* ---- encoders ------------------------------------------------------------------ */

static buf gzip_of(const uint8_t *p, size_t n, int level, gz_header *hdr)
{
    z_stream z = { 0 };
    cr_assert_eq(deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    if (hdr)
        cr_assert_eq(deflateSetHeader(&z, hdr), Z_OK);
    buf r = { malloc(deflateBound(&z, n) + 64), 0 };
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = r.p;
    z.avail_out = (uInt)(deflateBound(&z, n) + 64);
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    r.n = z.total_out;
    deflateEnd(&z);
    return r;
}

static buf zlib_of(const uint8_t *p, size_t n)
{
    uLongf cl = compressBound(n);
    buf r = { malloc(cl), 0 };
    cr_assert_eq(compress(r.p, &cl, p, n), Z_OK);
    r.n = cl;
    return r;
}

static buf snappy_raw_of(const uint8_t *p, size_t n)
{
    size_t cl = snappy_max_compressed_length(n);
    buf r = { malloc(cl), 0 };
    cr_assert_eq(snappy_compress((const char *)p, n, (char *)r.p, &cl), SNAPPY_OK);
    r.n = cl;
    return r;
}

/* snappy-java's framing with the given block size and version words. */
static buf snappy_java_of(const uint8_t *p, size_t n, size_t block, uint32_t version, uint32_t compat)
{
    buf r = { malloc(16 + n / block * 8 + snappy_max_compressed_length(n) * 2 + 64), 16 };
    memcpy(r.p, "\x82SNAPPY\0", 8);
    klog__st32(r.p + 8, __builtin_bswap32(version));
    klog__st32(r.p + 12, __builtin_bswap32(compat));
    for (size_t i = 0; i < n; i += block) {
        size_t in = n - i < block ? n - i : block, cl = snappy_max_compressed_length(in);
        cr_assert_eq(snappy_compress((const char *)p + i, in, (char *)r.p + r.n + 4, &cl), SNAPPY_OK);
        klog__st32(r.p + r.n, __builtin_bswap32((uint32_t)cl));
        r.n += 4 + cl;
    }
    return r;
}

static buf lz4f_of(const uint8_t *p, size_t n, LZ4F_blockSizeID_t bs, LZ4F_blockMode_t mode, int content_size,
                   int content_sum, int block_sum)
{
    LZ4F_preferences_t prefs;
    memset(&prefs, 0, sizeof prefs);
    prefs.frameInfo.blockSizeID = bs;
    prefs.frameInfo.blockMode = mode;
    prefs.frameInfo.contentSize = content_size ? n : 0;
    prefs.frameInfo.contentChecksumFlag = content_sum ? LZ4F_contentChecksumEnabled : LZ4F_noContentChecksum;
    prefs.frameInfo.blockChecksumFlag = block_sum ? LZ4F_blockChecksumEnabled : LZ4F_noBlockChecksum;
    size_t cap = LZ4F_compressFrameBound(n, &prefs);
    buf r = { malloc(cap), 0 };
    r.n = LZ4F_compressFrame(r.p, cap, p, n, &prefs);
    cr_assert(!LZ4F_isError(r.n), "%s", LZ4F_getErrorName(r.n));
    return r;
}

/* zstd: with or without its content size; checksum; a forced window. */
static buf zstd_of(const uint8_t *p, size_t n, int content_size, int checksum, int window_log)
{
    ZSTD_CCtx *z = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(z, ZSTD_c_contentSizeFlag, content_size);
    ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, checksum);
    size_t cap = ZSTD_compressBound(n) + 64;
    buf r = { malloc(cap), 0 };
    if (window_log) {
        /* streamed with no size known up front: the frame keeps the window */
        ZSTD_CCtx_setParameter(z, ZSTD_c_windowLog, window_log);
        ZSTD_inBuffer in = { p, n, 0 };
        ZSTD_outBuffer out = { r.p, cap, 0 };
        size_t rem = ZSTD_compressStream2(z, &out, &in, ZSTD_e_continue);
        cr_assert(!ZSTD_isError(rem));
        do {
            rem = ZSTD_compressStream2(z, &out, &in, ZSTD_e_end);
            cr_assert(!ZSTD_isError(rem));
        } while (rem);
        r.n = out.pos;
    } else {
        r.n = ZSTD_compress2(z, r.p, cap, p, n);
        cr_assert(!ZSTD_isError(r.n));
    }
    ZSTD_freeCCtx(z);
    return r;
}

static void bfree(buf *b)
{
    free(b->p);
    b->p = NULL;
}

/* ---- what clients send ------------------------------------------------------------ */

Test(codecs, gzip_forms)
{
    buf recs = records(300);
    for (int level = 1; level <= 9; level += 4) {
        buf z = gzip_of(recs.p, recs.n, level, NULL);
        expect_ok(&z, KF_CODEC_GZIP, &recs, 300, "gzip");
        bfree(&z);
    }
    /* header fields: a name, a comment, a time, extra bytes, a header CRC */
    gz_header h = { 0 };
    h.time = 1700000000;
    h.name = (Bytef *)"records.bin";
    h.comment = (Bytef *)"made by a test";
    h.extra = (Bytef *)"\x01\x02\x03";
    h.extra_len = 3;
    h.hcrc = 1;
    buf z = gzip_of(recs.p, recs.n, 6, &h);
    expect_ok(&z, KF_CODEC_GZIP, &recs, 300, "gzip with header fields");
    bfree(&z);
    /* two members (GZIPInputStream reads on): the halves concatenated */
    size_t half = recs.n / 2;
    buf a = gzip_of(recs.p, half, 6, NULL), b = gzip_of(recs.p + half, recs.n - half, 6, NULL);
    buf two = cat(&a, b.p, b.n);
    expect_ok(&two, KF_CODEC_GZIP, &recs, 300, "two gzip members");
    /* ... but anything else after the stream is refused */
    buf trail = cat(&two, "\0", 1);
    expect_corrupt(trail.p, trail.n, KF_CODEC_GZIP, "a byte after the gzip stream");
    buf trail2 = cat(&a, "\x1f", 1);
    expect_corrupt(trail2.p, trail2.n, KF_CODEC_GZIP, "a lone 1f after the gzip stream");
    /* zlib's own format is not gzip (Kafka's reader takes gzip only) */
    buf zl = zlib_of(recs.p, recs.n);
    expect_corrupt(zl.p, zl.n, KF_CODEC_GZIP, "zlib instead of gzip");
    bfree(&a), bfree(&b), bfree(&two), bfree(&trail), bfree(&trail2), bfree(&zl), bfree(&recs);
}

Test(codecs, snappy_forms)
{
    buf recs = records(1000); /* more than one 32 KiB block */
    cr_assert_gt(recs.n, 32u * 1024);
    buf raw = snappy_raw_of(recs.p, recs.n);
    expect_ok(&raw, KF_CODEC_SNAPPY, &recs, 1000, "raw snappy (librdkafka)");
    static const size_t blocks[] = { 1, 100, 4096, 32 * 1024, 1 << 20 };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(blocks); i++) {
        buf j = snappy_java_of(recs.p, recs.n, blocks[i], 1, 1);
        expect_ok(&j, KF_CODEC_SNAPPY, &recs, 1000, "snappy-java framing");
        bfree(&j);
    }
    /* other version words are read as librdkafka reads them: ignored */
    buf j = snappy_java_of(recs.p, recs.n, 32 * 1024, 2, 1);
    expect_ok(&j, KF_CODEC_SNAPPY, &recs, 1000, "snappy-java version 2");
    bfree(&j);
    /* damaged framing */
    j = snappy_java_of(recs.p, recs.n, 32 * 1024, 1, 1);
    uint8_t *d = malloc(j.n);
    memcpy(d, j.p, j.n);
    klog__st32(d + 16, __builtin_bswap32(0x7fffffff));
    expect_corrupt(d, j.n, KF_CODEC_SNAPPY, "block length past the end");
    klog__st32(d + 16, __builtin_bswap32(0x80000000u));
    expect_corrupt(d, j.n, KF_CODEC_SNAPPY, "negative block length");
    klog__st32(d + 16, 0);
    expect_corrupt(d, j.n, KF_CODEC_SNAPPY, "empty block");
    expect_corrupt(j.p, 18, KF_CODEC_SNAPPY, "half a block length");
    expect_corrupt(j.p, j.n - 1, KF_CODEC_SNAPPY, "last block cut");
    buf trail = cat(&j, "\x01", 1);
    expect_corrupt(trail.p, trail.n, KF_CODEC_SNAPPY, "a stray byte after the last block");
    /* a raw buffer that claims more than snappy can expand to */
    uint8_t lie[8] = { 0xff, 0xff, 0xff, 0x1f, 0x00, 0x00, 0x00, 0x00 }; /* 64 MiB from 8 bytes */
    expect_corrupt(lie, sizeof lie, KF_CODEC_SNAPPY, "raw snappy claiming 64 MiB");
    free(d);
    bfree(&trail), bfree(&j), bfree(&raw), bfree(&recs);
}

Test(codecs, lz4_forms)
{
    buf recs = records(1000); /* several 64 KiB blocks */
    static const LZ4F_blockSizeID_t sizes[] = { LZ4F_max64KB, LZ4F_max256KB, LZ4F_max1MB, LZ4F_max4MB };
    for (size_t s = 0; s < KLOG_ARRAY_LEN(sizes); s++)
        for (int flags = 0; flags < 8; flags++) {
            buf z = lz4f_of(recs.p, recs.n, sizes[s], LZ4F_blockIndependent, flags & 1, flags & 2, flags & 4);
            expect_ok(&z, KF_CODEC_LZ4, &recs, 1000, "lz4 frame");
            bfree(&z);
        }
    /* incompressible blocks are stored raw inside the frame */
    uint64_t seed = 5;
    buf noise = { malloc(200000), 200000 };
    t_fill_random(noise.p, noise.n, &seed);
    buf rawz = lz4f_of(noise.p, noise.n, LZ4F_max64KB, LZ4F_blockIndependent, 0, 0, 0);
    size_t len;
    uint8_t *b = craft3(rawz.p, rawz.n, 1, KF_CODEC_LZ4, &len);
    const uint8_t *out;
    size_t olen;
    cr_assert_eq(kf_batch_records(b, len, codec, &out, &olen), 0);
    cr_assert(olen == noise.n && memcmp(out, noise.p, olen) == 0);
    free(b);

    /* what Kafka's reader refuses: linked blocks, a wrong header checksum */
    buf linked = lz4f_of(recs.p, recs.n, LZ4F_max64KB, LZ4F_blockLinked, 1, 0, 0);
    expect_corrupt(linked.p, linked.n, KF_CODEC_LZ4, "linked blocks");
    buf z = lz4f_of(recs.p, recs.n, LZ4F_max64KB, LZ4F_blockIndependent, 0, 0, 0);
    uint8_t *d = malloc(z.n);
    memcpy(d, z.p, z.n);
    d[6] ^= 0x01; /* HC, the descriptor's checksum (the broken one old Kafka wrote) */
    expect_corrupt(d, z.n, KF_CODEC_LZ4, "wrong header checksum");
    /* the content size must be met */
    buf sized = lz4f_of(recs.p, recs.n, LZ4F_max64KB, LZ4F_blockIndependent, 1, 0, 0);
    uint8_t *e = malloc(sized.n);
    memcpy(e, sized.p, sized.n);
    klog__st64(e + 6, recs.n + 1);
    e[14] = (uint8_t)(XXH32(e + 4, 10, 0) >> 8); /* its descriptor checksum redone */
    expect_corrupt(e, sized.n, KF_CODEC_LZ4, "content size one more than the data");
    /* trailing bytes, a missing end mark */
    buf trail = cat(&z, "\0", 1);
    expect_corrupt(trail.p, trail.n, KF_CODEC_LZ4, "a byte after the frame");
    expect_corrupt(z.p, z.n - 4, KF_CODEC_LZ4, "no end mark");
    free(d);
    free(e);
    bfree(&trail), bfree(&sized), bfree(&z), bfree(&linked), bfree(&rawz), bfree(&noise), bfree(&recs);
}

Test(codecs, zstd_forms)
{
    buf recs = records(1000);
    for (int flags = 0; flags < 4; flags++) {
        buf z = zstd_of(recs.p, recs.n, flags & 1, flags & 2, 0);
        expect_ok(&z, KF_CODEC_ZSTD, &recs, 1000, "zstd frame");
        bfree(&z);
    }
    /* two frames (a streaming writer that flushed a frame), and a
     * skippable frame in front */
    size_t half = recs.n / 3;
    buf a = zstd_of(recs.p, half, 1, 0, 0), b = zstd_of(recs.p + half, recs.n - half, 0, 1, 0);
    buf two = cat(&a, b.p, b.n);
    expect_ok(&two, KF_CODEC_ZSTD, &recs, 1000, "two zstd frames");
    uint8_t skip[8 + 5] = { 0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o' };
    buf sk = { skip, sizeof skip };
    buf with_skip = cat(&sk, two.p, two.n);
    expect_ok(&with_skip, KF_CODEC_ZSTD, &recs, 1000, "skippable frame, then two frames");
    /* a window larger than a section is refused (the decoder would need it) */
    buf wide = zstd_of(recs.p, recs.n, 0, 0, 27);
    expect_corrupt(wide.p, wide.n, KF_CODEC_ZSTD, "window of 128 MiB");
    buf w26 = zstd_of(recs.p, recs.n, 0, 0, 26);
    expect_ok(&w26, KF_CODEC_ZSTD, &recs, 1000, "window of 64 MiB");
    /* trailing garbage, truncation */
    buf trail = cat(&two, "\x01\x02\x03", 3);
    expect_corrupt(trail.p, trail.n, KF_CODEC_ZSTD, "bytes after the frames");
    buf unsized = zstd_of(recs.p, recs.n, 0, 0, 0);
    expect_corrupt(unsized.p, unsized.n - 1, KF_CODEC_ZSTD, "a streamed frame cut short");
    buf sized = zstd_of(recs.p, recs.n, 1, 0, 0);
    expect_corrupt(sized.p, sized.n - 1, KF_CODEC_ZSTD, "a sized frame cut short");
    bfree(&a), bfree(&b), bfree(&two), bfree(&with_skip), bfree(&wide), bfree(&w26), bfree(&trail);
    bfree(&unsized), bfree(&sized), bfree(&recs);
}

/* ---- damage -------------------------------------------------------------------- */

/* The section of a batch klog writes for the codec. */
static buf klog_section(unsigned id, const buf *recs)
{
    size_t cap = recs->n + KF_HDR_SIZE;
    uint8_t *b = malloc(cap);
    memcpy(b + KF_HDR_SIZE, recs->p, recs->n);
    kf_builder bld = { .buf = b, .cap = cap, .len = cap, .max_record = KF_RECORD_MAX_DEFAULT };
    /* a builder over records already in place: count and timestamps are
     * not what the section is about here */
    bld.count = 1;
    kf_batch_meta m = { -1, -1, -1, 0, (enum kf_codec_id)id, 0 };
    const uint8_t *out;
    size_t len;
    cr_assert_eq(kf_builder_finish(&bld, &m, codec, &out, &len), 0);
    cr_assert_eq(klog__ld16(out + KF_OFF_ATTRIBUTES) & 7, id, "the section must compress");
    buf s = { malloc(len - KF_HDR_SIZE), len - KF_HDR_SIZE };
    memcpy(s.p, out + KF_HDR_SIZE, s.n);
    free(b);
    return s;
}

static const unsigned v3_codecs[] = { KF_CODEC_GZIP, KF_CODEC_SNAPPY, KF_CODEC_LZ4, KF_CODEC_ZSTD };
static const char *const names[] = { "none", "gzip", "snappy", "lz4", "zstd" };

/* Every cut of a section: refused, or (a snappy-java stream cut between
 * blocks is a shorter valid stream) the records do not add up. */
Test(codecs, every_truncation)
{
    buf recs = records(40);
    for (size_t k = 0; k < KLOG_ARRAY_LEN(v3_codecs); k++) {
        buf s = klog_section(v3_codecs[k], &recs);
        for (size_t cut = 0; cut < s.n; cut++) {
            size_t len;
            uint8_t *b = craft3(s.p, cut, 40, v3_codecs[k], &len);
            long r = t_decode_all(b, len, codec);
            cr_assert_eq(r, KLOG_ECORRUPT, "%s cut at %zu of %zu: %ld", names[v3_codecs[k]], cut, s.n, r);
            free(b);
        }
        bfree(&s);
    }
    bfree(&recs);
}

/* Every byte of a section set to other values, the checksum redone: the
 * decoder refuses, or what it accepts still decodes as a sane batch. */
Test(codecs, every_byte_changed)
{
    buf recs = records(20);
    static const uint8_t vals[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
    for (size_t k = 0; k < KLOG_ARRAY_LEN(v3_codecs); k++) {
        buf s = klog_section(v3_codecs[k], &recs);
        unsigned refused = 0, accepted = 0;
        for (size_t pos = 0; pos < s.n; pos++)
            for (size_t v = 0; v < sizeof vals; v++) {
                if (s.p[pos] == vals[v])
                    continue;
                uint8_t save = s.p[pos];
                s.p[pos] = vals[v];
                size_t len;
                uint8_t *b = craft3(s.p, s.n, 20, v3_codecs[k], &len);
                long r = t_decode_all(b, len, codec);
                cr_assert(r == 20 || r == KLOG_ECORRUPT, "%s byte %zu = %02x: %ld", names[v3_codecs[k]], pos, vals[v],
                          r);
                r == KLOG_ECORRUPT ? refused++ : accepted++;
                free(b);
                s.p[pos] = save;
            }
        cr_log_info("%s: %u refused, %u accepted", names[v3_codecs[k]], refused, accepted);
        cr_assert_gt(refused, 0, "%s", names[v3_codecs[k]]);
        bfree(&s);
    }
    bfree(&recs);
}

/* Random bytes as a section, and random bytes behind each codec's own
 * magic number: never a crash, never success with records. */
Test(codecs, random_sections)
{
    static const uint8_t gz[] = { 0x1f, 0x8b, 8, 0 }, sn[] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1 },
                         l4[] = { 0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82 }, zs[] = { 0x28, 0xb5, 0x2f, 0xfd };
    static const struct { const uint8_t *m; size_t n; } magic[] = {
        { NULL, 0 }, { gz, sizeof gz }, { sn, sizeof sn }, { l4, sizeof l4 }, { zs, sizeof zs },
    };
    uint64_t seed = 77;
    uint8_t s[700];
    for (int round = 0; round < 8000; round++) {
        unsigned id = v3_codecs[round % 4];
        size_t n = t_rand(&seed) % sizeof s;
        t_fill_random(s, n, &seed);
        if (round & 4 && n >= magic[id].n)
            memcpy(s, magic[id].m, magic[id].n);
        size_t len;
        uint8_t *b = craft3(s, n, 1 + (int32_t)(t_rand(&seed) % 3), id, &len);
        long r = t_decode_all(b, len, codec);
        cr_assert(r == KLOG_ECORRUPT || r > 0, "round %d (%s): %ld", round, names[id], r);
        free(b);
    }
}

/* ---- bombs ------------------------------------------------------------------------ */

/* A section that decompresses to more than any batch may hold is refused,
 * and the scratch is never grown past the cap for it.  At the cap exactly
 * it is accepted (gzip). */
#define SECTION_MAX ((size_t)KF_BATCH_MAX - KF_HDR_SIZE)

/* Bombs built small: n zero bytes compressed without an n-sized buffer. */
static buf gzip_zeros(const uint8_t *zeros, size_t n)
{
    z_stream z = { 0 };
    cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    buf r = { malloc(1u << 20), 0 };
    z.next_in = (Bytef *)(uintptr_t)zeros;
    z.avail_in = (uInt)n;
    z.next_out = r.p;
    z.avail_out = 1u << 20;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    r.n = z.total_out;
    deflateEnd(&z);
    return r;
}

static buf zstd_zeros(const uint8_t *zeros, size_t n, int content_size)
{
    ZSTD_CCtx *z = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(z, ZSTD_c_contentSizeFlag, content_size);
    buf r = { malloc(1u << 20), 0 };
    r.n = ZSTD_compress2(z, r.p, 1u << 20, zeros, n);
    cr_assert(!ZSTD_isError(r.n));
    ZSTD_freeCCtx(z);
    return r;
}

/* An LZ4 frame of n zeros (n a multiple of 4 MiB, plus one byte): one 4
 * MiB block of zeros, compressed once, repeated (blocks are independent). */
static buf lz4_zeros(const uint8_t *zeros, size_t n, int content_size)
{
    const size_t blk = 4u << 20;
    int cap = LZ4_compressBound((int)blk);
    uint8_t *one = malloc((size_t)cap);
    int cl = LZ4_compress_default((const char *)zeros, (char *)one, (int)blk, cap);
    cr_assert_gt(cl, 0);
    size_t nb = n / blk;
    buf r = { malloc(15 + nb * ((size_t)cl + 4) + (n - nb * blk) + 4 + 16), 0 };
    uint8_t *o = r.p;
    klog__st32(o, 0x184D2204u);
    o[4] = (uint8_t)(0x60 | (content_size ? 0x08 : 0));
    o[5] = 0x70;
    size_t h = 6;
    if (content_size) {
        klog__st64(o + 6, n);
        h = 14;
    }
    o[h] = (uint8_t)(XXH32(o + 4, h - 4, 0) >> 8);
    r.n = h + 1;
    for (size_t i = 0; i < nb; i++) {
        klog__st32(o + r.n, (uint32_t)cl);
        memcpy(o + r.n + 4, one, (size_t)cl);
        r.n += 4 + (size_t)cl;
    }
    for (size_t rest = n - nb * blk; rest; rest = 0) { /* the odd bytes, stored raw */
        klog__st32(o + r.n, (uint32_t)rest | 0x80000000u);
        memset(o + r.n + 4, 0, rest);
        r.n += 4 + rest;
    }
    klog__st32(o + r.n, 0);
    r.n += 4;
    free(one);
    return r;
}

/* snappy-java framing of n zeros: one 32 KiB block, compressed once, repeated. */
static buf snappy_java_zeros(const uint8_t *zeros, size_t n)
{
    const size_t blk = 32u * 1024;
    size_t cl = snappy_max_compressed_length(blk);
    uint8_t *one = malloc(cl);
    cr_assert_eq(snappy_compress((const char *)zeros, blk, (char *)one, &cl), SNAPPY_OK);
    size_t nb = (n + blk - 1) / blk;
    buf r = { malloc(16 + nb * (cl + 4) + 64), 16 };
    memcpy(r.p, "\x82SNAPPY\0\0\0\0\1\0\0\0\1", 16);
    for (size_t i = 0; i < nb; i++) {
        size_t in = i + 1 < nb ? blk : n - i * blk, c = cl;
        uint8_t *last = NULL;
        if (in != blk) {
            c = snappy_max_compressed_length(in);
            last = malloc(c);
            cr_assert_eq(snappy_compress((const char *)zeros, in, (char *)last, &c), SNAPPY_OK);
        }
        klog__st32(r.p + r.n, __builtin_bswap32((uint32_t)c));
        memcpy(r.p + r.n + 4, last ? last : one, c);
        r.n += 4 + c;
        free(last);
    }
    free(one);
    return r;
}

/* Raw snappy of n zeros: a one-byte literal, then copies of 64 bytes from
 * one byte back (3 bytes each), then a shorter last copy. */
static buf snappy_raw_zeros(size_t n)
{
    buf r = { malloc(16 + (n / 64 + 2) * 3), 0 };
    for (size_t v = n; ; v >>= 7) { /* the length, a varint */
        r.p[r.n++] = (uint8_t)(v > 0x7f ? (v & 0x7f) | 0x80 : v);
        if (v <= 0x7f)
            break;
    }
    r.p[r.n++] = 0x00; /* literal of 1 byte */
    r.p[r.n++] = 0x00;
    for (size_t left = n - 1; left; ) {
        size_t c = left < 64 ? left : 64;
        r.p[r.n++] = (uint8_t)(((c - 1) << 2) | 2); /* copy, 2-byte offset */
        r.p[r.n++] = 1;
        r.p[r.n++] = 0;
        left -= c;
    }
    return r;
}

Test(codecs, bombs_stop_at_the_cap, .timeout = 120)
{
    uint8_t *zeros = calloc(1, SECTION_MAX + 4096);
    cr_assert_not_null(zeros);
    const size_t over = SECTION_MAX + 1;
    /* the bomb makers are right: at a small size, they decode to zeros */
    buf recs = { zeros, 70000 };
    buf t;
    t = lz4_zeros(zeros, 70000, 1);
    expect_ok_raw(&t, KF_CODEC_LZ4, &recs), bfree(&t);
    t = snappy_java_zeros(zeros, 70000);
    expect_ok_raw(&t, KF_CODEC_SNAPPY, &recs), bfree(&t);
    t = snappy_raw_zeros(70000);
    expect_ok_raw(&t, KF_CODEC_SNAPPY, &recs), bfree(&t);

    buf g = gzip_zeros(zeros, over);
    expect_corrupt(g.p, g.n, KF_CODEC_GZIP, "gzip bomb");
    buf l = lz4_zeros(zeros, over, 0);
    expect_corrupt(l.p, l.n, KF_CODEC_LZ4, "lz4 bomb");
    buf ls = lz4_zeros(zeros, over, 1);
    expect_corrupt(ls.p, ls.n, KF_CODEC_LZ4, "lz4 bomb declaring its size");
    buf z = zstd_zeros(zeros, over, 0);
    expect_corrupt(z.p, z.n, KF_CODEC_ZSTD, "zstd bomb");
    buf zs = zstd_zeros(zeros, over, 1);
    expect_corrupt(zs.p, zs.n, KF_CODEC_ZSTD, "zstd bomb declaring its size");
    buf s = snappy_java_zeros(zeros, over);
    expect_corrupt(s.p, s.n, KF_CODEC_SNAPPY, "snappy bomb");
    buf sr = snappy_raw_zeros(over);
    expect_corrupt(sr.p, sr.n, KF_CODEC_SNAPPY, "raw snappy bomb");
    /* exactly at the cap: taken (the records are zeros: the batch does not
     * iterate, but its section decompresses) */
    buf at = gzip_zeros(zeros, SECTION_MAX);
    size_t len;
    uint8_t *b = craft3(at.p, at.n, 1, KF_CODEC_GZIP, &len);
    const uint8_t *out;
    size_t olen;
    cr_assert_eq(kf_batch_records(b, len, codec, &out, &olen), 0);
    cr_assert_eq(olen, SECTION_MAX);
    free(b);
    bfree(&g), bfree(&l), bfree(&ls), bfree(&z), bfree(&zs), bfree(&s), bfree(&sr), bfree(&at);
    free(zeros);
}

/* ---- klog's own output -------------------------------------------------------------- */

/* What klog writes for snappy is snappy-java's framing with 32 KiB blocks
 * (what Kafka's Java producer writes), for lz4 a frame of 64 KiB
 * independent blocks with its content size, for zstd one frame with its
 * content size, for gzip one member. */
Test(codecs, what_klog_writes)
{
    buf recs = records(1000);
    buf s = klog_section(KF_CODEC_SNAPPY, &recs);
    cr_assert(memcmp(s.p, "\x82SNAPPY\0\0\0\0\1\0\0\0\1", 16) == 0);
    size_t blocks = 0, total = 0;
    for (size_t pos = 16; pos < s.n; blocks++) {
        size_t cl = __builtin_bswap32(klog__ld32(s.p + pos)), ul;
        cr_assert_eq(snappy_uncompressed_length((const char *)s.p + pos + 4, cl, &ul), SNAPPY_OK);
        cr_assert(ul == 32 * 1024 || pos + 4 + cl == s.n, "block %zu: %zu bytes", blocks, ul);
        total += ul;
        pos += 4 + cl;
    }
    cr_assert_eq(total, recs.n);
    cr_assert_eq(blocks, (recs.n + 32 * 1024 - 1) / (32 * 1024));
    bfree(&s);

    s = klog_section(KF_CODEC_LZ4, &recs);
    LZ4F_dctx *d;
    cr_assert(!LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)));
    LZ4F_frameInfo_t fi;
    size_t n = s.n;
    cr_assert(!LZ4F_isError(LZ4F_getFrameInfo(d, &fi, s.p, &n)));
    cr_assert_eq(fi.blockMode, LZ4F_blockIndependent);
    cr_assert_eq(fi.blockSizeID, LZ4F_max64KB);
    cr_assert_eq(fi.contentSize, recs.n);
    cr_assert_eq(fi.contentChecksumFlag, LZ4F_noContentChecksum);
    LZ4F_freeDecompressionContext(d);
    bfree(&s);

    s = klog_section(KF_CODEC_ZSTD, &recs);
    cr_assert_eq(ZSTD_getFrameContentSize(s.p, s.n), recs.n);
    cr_assert_eq(ZSTD_findFrameCompressedSize(s.p, s.n), s.n);
    bfree(&s);

    s = klog_section(KF_CODEC_GZIP, &recs);
    cr_assert(s.p[0] == 0x1f && s.p[1] == 0x8b && s.p[2] == 8);
    cr_assert_eq(klog__ld32(s.p + s.n - 4), recs.n, "ISIZE");
    bfree(&s);
    bfree(&recs);
}
