/*
 * lib/format/codec.c - per-batch compression of the records section and the
 * kf_codec context that owns its state.
 *
 * What a compressed section holds (klog-format(5)):
 *   v3 (written): exactly what Kafka carries for the codec, so that a batch
 *     from a Kafka client is stored as sent and served back as stored -
 *     gzip: one gzip stream (zlib, RFC 1952); read: one or more members.
 *     snappy: snappy-java's framing, as Kafka's Java producer writes it (the
 *       16-byte header 82 'SNAPPY' 00, version 1, compatible 1, then
 *       blocks of 32 KiB of input, each a big-endian u32 length and raw
 *       snappy); read: that, or one raw snappy buffer (what librdkafka
 *       writes).  Kafka's Java consumers, librdkafka and kafka-python read
 *       both.
 *     lz4: an LZ4 frame with independent blocks of at most 64 KiB and the
 *       content size (KIP-57; Kafka's Java reader refuses linked blocks and,
 *       for magic 2, a wrong header checksum, and so does this one).
 *     zstd: one zstd frame with its content size; read: any zstd frames.
 *   v2 (klog 0.1, read only): a u32 uncompressed length, then an lz4 block
 *     or one zstd frame.
 *
 * A kf_codec holds, created on first use and then reused for every batch:
 * zstd's CCtx and DCtx, zlib's deflate and inflate streams, an LZ4F
 * decompression context, a compression scratch (where kf_builder_finish
 * assembles a compressed batch), a decompression scratch (where
 * kf_batch_records puts a decompressed records section) and a block scratch
 * for snappy.  Two main scratches, not one, so that a batch just finished on
 * c can be decoded with c.  Each grows on demand, geometrically, up to its
 * cap and never shrinks; once warm, no batch allocates.  LZ4 compression
 * needs no context (LZ4F_compressFrame keeps its state on the stack).  Not
 * thread-safe: one kf_codec per thread or per owner.
 *
 * Decompression never sizes its output from a length it was merely told:
 * the scratch grows with the bytes actually produced (a declared length is
 * only a first guess, and is checked against the codec's largest possible
 * expansion before it is used even as that), up to KF_BATCH_MAX - KF_HDR_SIZE.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <xxhash.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "format/internal.h"

#define KF_SCRATCH_MIN (64u * 1024)
/* The largest records section, decompressed. */
#define KF_SECTION_MAX ((size_t)KF_BATCH_MAX - KF_HDR_SIZE)
/* The compression scratch may briefly hold an LZ4 frame's worst case for a
 * whole section (LZ4F_compressFrame wants that much room): a 4-byte header
 * per 64 KiB block and the frame's own header and end mark over the input. */
#define KF_CSCRATCH_MAX ((size_t)KF_BATCH_MAX + 64u * 1024)

/* snappy-java's stream header and its block size (SnappyOutputStream). */
static const uint8_t xerial_magic[8] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0 };
#define KF_XERIAL_HDR 16
#define KF_XERIAL_BLOCK (32u * 1024)
/* Snappy's largest expansion is 64 bytes from a 3-byte copy (21.3:1); a
 * buffer that claims more than this is lying. */
#define KF_SNAPPY_MAX_RATIO 32u
/* zstd's largest window taken: a frame may not need more than a section. */
#define KF_ZSTD_WINDOWLOG_MAX 26
/* zstd's level when none is given: 1, not zstd's (and Kafka's) 3.  On the
 * telemetry JSON of bench_compare, in batches of 1 MB, level 1 compresses
 * as well as 3 (5.83:1 both) for 0.83 of the CPU time; on 64 KiB batches
 * 5.49:1 against 5.63:1 for 0.92 of it.  Negative levels buy 4-20% more
 * speed for 12-30% larger output (bench/RESULTS.md, issue 21). */
#define KF_ZSTD_LEVEL_DEFAULT 1

/* Kafka's LZ4 frame: LZ4F's magic, and the frame descriptor of a v2 block
 * wrapped as a frame: FLG version 01, independent blocks, no checksums, no
 * content size; BD: blocks of up to 4 MiB. */
#define KF_LZ4F_MAGIC 0x184D2204u
#define KF_LZ4F_FLG_WRAP 0x60
#define KF_LZ4F_BD_4MB 0x70
#define KF_LZ4F_BLOCK_4MB (4u << 20)

struct kf_codec {
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
    LZ4F_dctx *lz4d;
    z_stream *zdef; /* deflate (gzip), at level zdef_level */
    int zdef_level;
    z_stream *zinf; /* inflate (gzip) */
    uint8_t *cbuf;  /* compression scratch: a whole compressed batch */
    size_t ccap;
    uint8_t *dbuf;  /* decompression scratch: one records section */
    size_t dcap;
    uint8_t *sbuf;  /* one snappy block's worst case */
};

int kf_codec_new(kf_codec **out)
{
    kf_codec *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    *out = c;
    return 0;
}

void kf_codec_free(kf_codec *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->zc);
    ZSTD_freeDCtx(c->zd);
    LZ4F_freeDecompressionContext(c->lz4d);
    if (c->zdef) {
        deflateEnd(c->zdef);
        free(c->zdef);
    }
    if (c->zinf) {
        inflateEnd(c->zinf);
        free(c->zinf);
    }
    free(c->cbuf);
    free(c->dbuf);
    free(c->sbuf);
    free(c);
}

/* Make *buf hold at least need bytes (need <= max).  The old contents are
 * not kept: callers overwrite the scratch entirely.  On failure the buffer
 * is released and the capacity is 0. */
static int scratch_grow(uint8_t **buf, size_t *cap, size_t need, size_t max)
{
    if (KLOG_LIKELY(need <= *cap))
        return 0;
    if (need > max)
        return -ENOMEM;
    size_t n = KLOG_MAX(*cap * 2, (size_t)KF_SCRATCH_MIN);
    n = KLOG_MIN(KLOG_MAX(n, need), max);
    free(*buf);
    *cap = 0;
    if (!(*buf = malloc(n)) && !(*buf = malloc(n = need)))
        return -ENOMEM;
    *cap = n;
    return 0;
}

/* Room in the decompression scratch past its first used bytes, which are
 * kept: at least want more bytes (grown geometrically), or as many as
 * remain below KF_SECTION_MAX.  KLOG_ECORRUPT when used is already
 * KF_SECTION_MAX: the section decompresses to more than any batch holds. */
static int out_grow(kf_codec *c, size_t used, size_t want)
{
    if (c->dcap > used && c->dcap - used >= want)
        return 0;
    if (used >= KF_SECTION_MAX)
        return KLOG_ECORRUPT;
    size_t n = KLOG_MAX(c->dcap * 2, (size_t)KF_SCRATCH_MIN);
    n = KLOG_MIN(KLOG_MAX(n, used + KLOG_MIN(want, KF_SECTION_MAX)), KF_SECTION_MAX);
    if (n <= c->dcap)
        return 0;
    uint8_t *nb;
    if (used == 0) { /* nothing to keep: no copy */
        free(c->dbuf);
        c->dbuf = NULL;
        c->dcap = 0;
        nb = malloc(n);
    } else {
        nb = realloc(c->dbuf, n);
    }
    if (!nb)
        return -ENOMEM;
    c->dbuf = nb;
    c->dcap = n;
    return 0;
}

/* ---- compression ------------------------------------------------------------ */

static void lz4_prefs(LZ4F_preferences_t *p, size_t content)
{
    memset(p, 0, sizeof *p);
    p->frameInfo.blockSizeID = LZ4F_max64KB;
    p->frameInfo.blockMode = LZ4F_blockIndependent;
    p->frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
    p->frameInfo.frameType = LZ4F_frame;
    p->frameInfo.contentSize = content;
    p->compressionLevel = 0; /* lz4's fast mode, as LZ4_compress_default */
}

/* One gzip member of src into dst (room bytes).  *n = 0 when it does not
 * fit.  level: 0 = zlib's default, else 1..9 (checked by the caller). */
static int gzip_compress(kf_codec *c, int level, const uint8_t *src, size_t slen, uint8_t *dst,
                         size_t room, size_t *n)
{
    const int zl = level == 0 ? Z_DEFAULT_COMPRESSION : level;
    if (c->zdef && c->zdef_level != zl) {
        deflateEnd(c->zdef);
        free(c->zdef);
        c->zdef = NULL;
    }
    if (!c->zdef) {
        z_stream *z = calloc(1, sizeof *z);
        if (!z)
            return -ENOMEM;
        /* windowBits 15 + 16: a gzip wrapper (header with mtime 0, so the
         * same input always gives the same bytes) */
        if (deflateInit2(z, zl, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(z);
            return -ENOMEM;
        }
        c->zdef = z;
        c->zdef_level = zl;
    } else if (deflateReset(c->zdef) != Z_OK) {
        return -ENOMEM;
    }
    z_stream *z = c->zdef;
    /* A section is below KF_BATCH_MAX: it fits zlib's uInt. */
    z->next_in = (Bytef *)(uintptr_t)src;
    z->avail_in = (uInt)slen;
    z->next_out = dst;
    z->avail_out = (uInt)room;
    int r = deflate(z, Z_FINISH);
    *n = r == Z_STREAM_END ? (size_t)z->total_out : 0;
    return r == Z_STREAM_END || r == Z_OK || r == Z_BUF_ERROR ? 0 : -ENOMEM;
}

/* snappy-java's framing of src into dst (room bytes); *n = 0 when it does
 * not fit.  A block is compressed in place when its worst case fits the
 * room left, else through the block scratch. */
static int snappy_compress_framed(kf_codec *c, const uint8_t *src, size_t slen, uint8_t *dst,
                                  size_t room, size_t *n)
{
    *n = 0;
    if (room < KF_XERIAL_HDR)
        return 0;
    memcpy(dst, xerial_magic, sizeof xerial_magic);
    kf__stbe32(dst + 8, 1);  /* version */
    kf__stbe32(dst + 12, 1); /* oldest compatible version */
    size_t o = KF_XERIAL_HDR;
    for (size_t i = 0; i < slen; i += KF_XERIAL_BLOCK) {
        const size_t in = KLOG_MIN((size_t)KF_XERIAL_BLOCK, slen - i);
        const size_t bound = snappy_max_compressed_length(in);
        if (room - o < 4)
            return 0;
        size_t cl = bound;
        if (room - o - 4 >= bound) {
            if (snappy_compress((const char *)src + i, in, (char *)dst + o + 4, &cl) != SNAPPY_OK)
                return -ENOMEM;
        } else {
            if (!c->sbuf && !(c->sbuf = malloc(snappy_max_compressed_length(KF_XERIAL_BLOCK))))
                return -ENOMEM;
            if (snappy_compress((const char *)src + i, in, (char *)c->sbuf, &cl) != SNAPPY_OK)
                return -ENOMEM;
            if (cl > room - o - 4)
                return 0;
            memcpy(dst + o + 4, c->sbuf, cl);
        }
        kf__stbe32(dst + o, (uint32_t)cl);
        o += 4 + cl;
    }
    *n = o;
    return 0;
}

int kf__codec_compress(kf_codec *c, enum kf_codec_id id, int level, const uint8_t *src,
                       size_t slen, uint8_t **batch, size_t *clen)
{
    *clen = 0;
    if (id == KF_CODEC_ZSTD) {
        if (level == 0)
            level = KF_ZSTD_LEVEL_DEFAULT;
        if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
            return -EINVAL;
    } else if (id == KF_CODEC_GZIP) {
        if (level < 0 || level > 9)
            return -EINVAL;
    } else if (id != KF_CODEC_LZ4 && id != KF_CODEC_SNAPPY) {
        return -EINVAL;
    }
    /* Worth it only when the compressed section is smaller than slen: give
     * the compressor that much room and let it fail otherwise (LZ4F wants
     * its worst case and is checked after). */
    if (slen <= 1)
        return 0;
    const size_t room = slen - 1;
    LZ4F_preferences_t prefs;
    size_t need = room;
    if (id == KF_CODEC_LZ4) {
        lz4_prefs(&prefs, slen);
        need = LZ4F_compressFrameBound(slen, &prefs);
    }
    int rc = scratch_grow(&c->cbuf, &c->ccap, KF_HDR_SIZE + need, KF_CSCRATCH_MAX);
    if (rc < 0)
        return rc;
    uint8_t *dst = c->cbuf + KF_HDR_SIZE;
    size_t n = 0;
    switch (id) {
    case KF_CODEC_LZ4:
        n = LZ4F_compressFrame(dst, need, src, slen, &prefs);
        if (LZ4F_isError(n))
            return -ENOMEM; /* the room is its bound: only allocation fails */
        if (n >= slen)
            n = 0;
        break;
    case KF_CODEC_ZSTD:
        if (!c->zc && !(c->zc = ZSTD_createCCtx()))
            return -ENOMEM;
        n = ZSTD_compressCCtx(c->zc, dst, room, src, slen, level);
        if (ZSTD_isError(n)) {
            if (ZSTD_getErrorCode(n) != ZSTD_error_dstSize_tooSmall)
                return -ENOMEM;
            n = 0;
        }
        break;
    case KF_CODEC_GZIP:
        rc = gzip_compress(c, level, src, slen, dst, room, &n);
        break;
    default: /* KF_CODEC_SNAPPY */
        rc = snappy_compress_framed(c, src, slen, dst, room, &n);
        break;
    }
    if (rc < 0)
        return rc;
    *batch = c->cbuf;
    *clen = n;
    return 0;
}

/* ---- decompression: v3 (Kafka's framing) ------------------------------------ */

/* Each decoder leaves the section in c->dbuf[0 .. *out). */

static int gzip_decode(kf_codec *c, const uint8_t *src, size_t slen, size_t *out)
{
    if (!c->zinf) {
        z_stream *z = calloc(1, sizeof *z);
        if (!z)
            return -ENOMEM;
        if (inflateInit2(z, 15 + 16) != Z_OK) { /* gzip only, as Kafka's GZIPInputStream */
            free(z);
            return -ENOMEM;
        }
        c->zinf = z;
    } else if (inflateReset(c->zinf) != Z_OK) {
        return -ENOMEM;
    }
    z_stream *z = c->zinf;
    /* First guess: the trailer's ISIZE (the length mod 2^32 of the last
     * member), believed only up to deflate's largest expansion (1032:1). */
    size_t hint = KF_SCRATCH_MIN;
    if (slen >= 18) {
        size_t isize = klog__ld32(src + slen - 4);
        if (isize <= (uint64_t)slen * 1032)
            hint = KLOG_MAX(isize, (size_t)1);
    }
    int rc = out_grow(c, 0, hint);
    if (rc < 0)
        return rc;
    size_t used = 0;
    z->next_in = (Bytef *)(uintptr_t)src;
    z->avail_in = (uInt)slen;
    for (;;) {
        if (used == c->dcap && (rc = out_grow(c, used, used)) < 0)
            return rc;
        z->next_out = c->dbuf + used;
        z->avail_out = (uInt)(c->dcap - used);
        int r = inflate(z, Z_NO_FLUSH);
        used = c->dcap - z->avail_out;
        if (r == Z_STREAM_END) {
            if (z->avail_in == 0)
                break;
            /* Another member must follow (GZIPInputStream reads them all);
             * anything else after the stream is refused. */
            if (z->avail_in < 2 || z->next_in[0] != 0x1f || z->next_in[1] != 0x8b ||
                inflateReset(z) != Z_OK)
                return KLOG_ECORRUPT;
            continue;
        }
        if (r == Z_OK)
            continue;
        if (r == Z_BUF_ERROR && z->avail_out == 0)
            continue; /* out of room: grow */
        if (r == Z_MEM_ERROR)
            return -ENOMEM;
        return KLOG_ECORRUPT; /* bad data, or cut short (Z_BUF_ERROR with room) */
    }
    *out = used;
    return 0;
}

/* One raw snappy buffer into dst (exactly ulen bytes, from
 * snappy_uncompressed_length). */
static int snappy_raw(const uint8_t *src, size_t slen, uint8_t *dst, size_t ulen)
{
    size_t got = ulen;
    if (snappy_uncompress((const char *)src, slen, (char *)dst, &got) != SNAPPY_OK || got != ulen)
        return KLOG_ECORRUPT;
    return 0;
}

/* The uncompressed length a raw snappy buffer declares, if believable. */
static int snappy_len(const uint8_t *src, size_t slen, size_t *ulen)
{
    if (slen == 0 || snappy_uncompressed_length((const char *)src, slen, ulen) != SNAPPY_OK ||
        *ulen > (uint64_t)slen * KF_SNAPPY_MAX_RATIO || *ulen > KF_SECTION_MAX)
        return KLOG_ECORRUPT;
    return 0;
}

static int snappy_decode(kf_codec *c, const uint8_t *src, size_t slen, size_t *out)
{
    size_t total = 0;
    int rc;
    if (slen > KF_XERIAL_HDR && memcmp(src, xerial_magic, sizeof xerial_magic) == 0) {
        /* snappy-java framing (whatever its version words say, as librdkafka
         * reads it): first the blocks' lengths, then the blocks. */
        for (size_t pos = KF_XERIAL_HDR; pos < slen;) {
            size_t ul;
            if (slen - pos < 4)
                return KLOG_ECORRUPT;
            const size_t cl = kf__ldbe32(src + pos);
            pos += 4;
            if (cl > slen - pos || (rc = snappy_len(src + pos, cl, &ul)) < 0)
                return KLOG_ECORRUPT;
            if (ul > KF_SECTION_MAX - total)
                return KLOG_ECORRUPT;
            total += ul;
            pos += cl;
        }
        if ((rc = scratch_grow(&c->dbuf, &c->dcap, KLOG_MAX(total, (size_t)1), KF_SECTION_MAX)) < 0)
            return rc;
        size_t o = 0;
        for (size_t pos = KF_XERIAL_HDR; pos < slen;) {
            const size_t cl = kf__ldbe32(src + pos);
            size_t ul;
            pos += 4;
            snappy_len(src + pos, cl, &ul); /* checked above */
            if ((rc = snappy_raw(src + pos, cl, c->dbuf + o, ul)) < 0)
                return rc;
            o += ul;
            pos += cl;
        }
    } else {
        if ((rc = snappy_len(src, slen, &total)) < 0)
            return rc;
        if ((rc = scratch_grow(&c->dbuf, &c->dcap, KLOG_MAX(total, (size_t)1), KF_SECTION_MAX)) < 0)
            return rc;
        if ((rc = snappy_raw(src, slen, c->dbuf, total)) < 0)
            return rc;
    }
    *out = total;
    return 0;
}

/* LZ4F's error codes are not in its stable API; their names are. */
static int lz4f_error(size_t r)
{
    return strcmp(LZ4F_getErrorName(r), "ERROR_allocation_failed") == 0 ? -ENOMEM : KLOG_ECORRUPT;
}

static int lz4_decode(kf_codec *c, const uint8_t *src, size_t slen, size_t *out)
{
    if (!c->lz4d) {
        if (LZ4F_isError(LZ4F_createDecompressionContext(&c->lz4d, LZ4F_VERSION))) {
            c->lz4d = NULL;
            return -ENOMEM;
        }
    } else {
        LZ4F_resetDecompressionContext(c->lz4d);
    }
    /* The frame descriptor (its header checksum checked by LZ4F): Kafka's
     * reader takes only independent blocks and no dictionary. */
    LZ4F_frameInfo_t fi;
    size_t pos = slen;
    size_t r = LZ4F_getFrameInfo(c->lz4d, &fi, src, &pos);
    if (LZ4F_isError(r))
        return lz4f_error(r);
    if (fi.frameType != LZ4F_frame || fi.blockMode != LZ4F_blockIndependent || fi.dictID != 0 ||
        fi.contentSize > KF_SECTION_MAX)
        return KLOG_ECORRUPT;
    /* LZ4 expands at most ~255:1 (a match length grows by 255 per input
     * byte): a declared size beyond that is not even a first guess. */
    size_t hint = KF_SCRATCH_MIN;
    if (fi.contentSize && fi.contentSize <= (uint64_t)slen * 255 + 64)
        hint = (size_t)fi.contentSize;
    int rc = out_grow(c, 0, hint);
    if (rc < 0)
        return rc;
    size_t used = 0;
    for (;;) {
        if (used == c->dcap && (rc = out_grow(c, used, used)) < 0)
            return rc;
        size_t dn = c->dcap - used, sn = slen - pos;
        r = LZ4F_decompress(c->lz4d, c->dbuf + used, &dn, src + pos, &sn, NULL);
        if (LZ4F_isError(r))
            return lz4f_error(r); /* also: a declared content size not met */
        used += dn;
        pos += sn;
        if (r == 0) /* the frame is complete: it must be all there is */
            return pos == slen ? (*out = used, 0) : KLOG_ECORRUPT;
        if (dn == 0 && sn == 0 && used < c->dcap)
            return KLOG_ECORRUPT; /* no progress with room to spare: cut short */
    }
}

static int zstd_decode(kf_codec *c, const uint8_t *src, size_t slen, size_t *out)
{
    if (!c->zd) {
        if (!(c->zd = ZSTD_createDCtx()))
            return -ENOMEM;
        /* A streamed frame needs a window buffer: no larger than a section. */
        if (ZSTD_isError(ZSTD_DCtx_setParameter(c->zd, ZSTD_d_windowLogMax, KF_ZSTD_WINDOWLOG_MAX)))
            return -ENOMEM;
    }
    int rc;
    /* One frame that declares its size (klog's own, librdkafka's): decoded
     * in one call straight into a scratch of that size. */
    const unsigned long long fcs = ZSTD_getFrameContentSize(src, slen);
    if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != ZSTD_CONTENTSIZE_ERROR &&
        ZSTD_findFrameCompressedSize(src, slen) == slen) {
        if (fcs > KF_SECTION_MAX)
            return KLOG_ECORRUPT;
        if ((rc = scratch_grow(&c->dbuf, &c->dcap, KLOG_MAX((size_t)fcs, (size_t)1), KF_SECTION_MAX)) < 0)
            return rc;
        size_t r = ZSTD_decompressDCtx(c->zd, c->dbuf, (size_t)fcs, src, slen);
        if (ZSTD_isError(r))
            return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : KLOG_ECORRUPT;
        if (r != fcs)
            return KLOG_ECORRUPT;
        *out = (size_t)fcs;
        return 0;
    }
    /* Otherwise (streamed frames without a size, several frames, skippable
     * frames): stream, growing the scratch with the output. */
    if (ZSTD_isError(ZSTD_DCtx_reset(c->zd, ZSTD_reset_session_only)))
        return KLOG_ECORRUPT;
    if ((rc = out_grow(c, 0, KLOG_MIN((uint64_t)slen * 4, (uint64_t)KF_SECTION_MAX))) < 0)
        return rc;
    ZSTD_inBuffer in = { src, slen, 0 };
    size_t used = 0;
    for (;;) {
        if (used == c->dcap && (rc = out_grow(c, used, used)) < 0)
            return rc;
        ZSTD_outBuffer o = { c->dbuf, c->dcap, used };
        size_t r = ZSTD_decompressStream(c->zd, &o, &in);
        if (ZSTD_isError(r))
            return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM : KLOG_ECORRUPT;
        const bool progress = o.pos != used;
        used = o.pos;
        if (r == 0 && in.pos == in.size)
            break; /* the last frame ended with the input */
        if (in.pos == in.size && o.pos < o.size && !progress)
            return KLOG_ECORRUPT; /* cut short */
    }
    *out = used;
    return 0;
}

/* ---- decompression: v2 (klog 0.1's framing) --------------------------------- */

/* LZ4 expands at most ~255:1 (a match length is extended 255 at a time by
 * one input byte); a declared size beyond that is a lie, refused before
 * anything is allocated for it. */
#define KF_LZ4_MAX_RATIO 255u
#define KF_LZ4_SLACK 64u

static int v2_decode(kf_codec *c, unsigned id, const uint8_t *p, size_t len, size_t *out)
{
    if (len - KF_HDR_SIZE < 4)
        return KLOG_ECORRUPT;
    const size_t ulen = klog__ld32(p + KF_HDR_SIZE);
    const uint8_t *src = p + KF_HDR_SIZE + 4;
    const size_t slen = len - KF_HDR_SIZE - 4;
    /* The builder never made a section that would not fit an uncompressed
     * batch, and never an empty one. */
    if (ulen == 0 || ulen > KF_SECTION_MAX || slen == 0)
        return KLOG_ECORRUPT;

    if (id == KF_CODEC_LZ4) {
        if (ulen > (uint64_t)slen * KF_LZ4_MAX_RATIO + KF_LZ4_SLACK)
            return KLOG_ECORRUPT;
        int rc = scratch_grow(&c->dbuf, &c->dcap, ulen, KF_SECTION_MAX);
        if (rc < 0)
            return rc;
        /* Writes at most ulen bytes, reads at most slen: safe on any input. */
        int r = LZ4_decompress_safe((const char *)src, (char *)c->dbuf, (int)slen, (int)ulen);
        if (r < 0 || (size_t)r != ulen)
            return KLOG_ECORRUPT;
    } else {
        /* One frame, exactly slen bytes, declaring exactly ulen bytes: all
         * read from the frame header before anything is allocated. */
        if (ZSTD_getFrameContentSize(src, slen) != (unsigned long long)ulen ||
            ZSTD_findFrameCompressedSize(src, slen) != slen)
            return KLOG_ECORRUPT;
        if (!c->zd && !(c->zd = ZSTD_createDCtx()))
            return -ENOMEM;
        int rc = scratch_grow(&c->dbuf, &c->dcap, ulen, KF_SECTION_MAX);
        if (rc < 0)
            return rc;
        size_t r = ZSTD_decompressDCtx(c->zd, c->dbuf, ulen, src, slen);
        if (ZSTD_isError(r)) {
            return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? -ENOMEM
                                                                        : KLOG_ECORRUPT;
        }
        if (r != ulen)
            return KLOG_ECORRUPT;
    }
    *out = ulen;
    return 0;
}

int kf_batch_records(const void *batch, size_t len, kf_codec *c, const uint8_t **recs,
                     size_t *recs_len)
{
    const uint8_t *p = batch;
    if (len < KF_HDR_SIZE || len > KF_BATCH_MAX ||
        (size_t)klog__ld32(p + KF_OFF_LENGTH) != len - KF_LOG_OVERHEAD)
        return KLOG_ECORRUPT;
    const unsigned id = klog__ld16(p + KF_OFF_ATTRIBUTES) & KF_ATTR_CODEC_MASK;
    const uint8_t magic = p[KF_OFF_MAGIC];
    if (id == KF_CODEC_NONE) {
        *recs = p + KF_HDR_SIZE; /* zero-copy */
        *recs_len = len - KF_HDR_SIZE;
        return 0;
    }
    if (id > KF_CODEC_ZSTD || (magic == KF_MAGIC && id != KF_CODEC_LZ4 && id != KF_CODEC_ZSTD) ||
        (magic != KF_MAGIC && magic != KF_MAGIC_V3))
        return KLOG_EFORMAT;
    if (!c)
        return -EINVAL;
    size_t n = 0;
    int rc;
    if (magic == KF_MAGIC) {
        rc = v2_decode(c, id, p, len, &n);
    } else {
        const uint8_t *src = p + KF_HDR_SIZE;
        const size_t slen = len - KF_HDR_SIZE;
        switch (id) {
        case KF_CODEC_GZIP: rc = gzip_decode(c, src, slen, &n); break;
        case KF_CODEC_SNAPPY: rc = snappy_decode(c, src, slen, &n); break;
        case KF_CODEC_LZ4: rc = lz4_decode(c, src, slen, &n); break;
        default: rc = zstd_decode(c, src, slen, &n); break;
        }
    }
    if (rc < 0)
        return rc;
    *recs = c->dbuf;
    *recs_len = n;
    return 0;
}

/* ---- v2 lz4 -> Kafka's LZ4 frame ---------------------------------------------- */

int kf__codec_v2_lz4_to_frame(kf_codec *c, const uint8_t *batch, size_t len, const uint8_t **out,
                              size_t *out_len)
{
    if (len < KF_HDR_SIZE + 4 + 1)
        return KLOG_ECORRUPT;
    const size_t ulen = klog__ld32(batch + KF_HDR_SIZE);
    const uint8_t *blk = batch + KF_HDR_SIZE + 4;
    const size_t blen = len - KF_HDR_SIZE - 4;
    if (ulen == 0 || ulen > KF_SECTION_MAX)
        return KLOG_ECORRUPT;
    int rc;
    if (ulen <= KF_LZ4F_BLOCK_4MB && blen <= KF_LZ4F_BLOCK_4MB) {
        /* One block of up to 4 MiB is a frame's block as it is: magic,
         * descriptor, the block with its length, the end mark. */
        const size_t n = 7 + 4 + blen + 4;
        if ((rc = scratch_grow(&c->cbuf, &c->ccap, n, KF_CSCRATCH_MAX)) < 0)
            return rc;
        uint8_t *o = c->cbuf;
        klog__st32(o, KF_LZ4F_MAGIC);
        o[4] = KF_LZ4F_FLG_WRAP;
        o[5] = KF_LZ4F_BD_4MB;
        o[6] = (uint8_t)(XXH32(o + 4, 2, 0) >> 8);
        klog__st32(o + 7, (uint32_t)blen); /* high bit clear: compressed */
        memcpy(o + 11, blk, blen);
        klog__st32(o + 11 + blen, 0);
        *out = c->cbuf;
        *out_len = n;
        return 0;
    }
    /* Larger: decompress, then one frame of 64 KiB blocks. */
    const uint8_t *recs;
    size_t rlen;
    if ((rc = kf_batch_records(batch, len, c, &recs, &rlen)) < 0)
        return rc;
    LZ4F_preferences_t prefs;
    lz4_prefs(&prefs, rlen);
    const size_t need = LZ4F_compressFrameBound(rlen, &prefs);
    if ((rc = scratch_grow(&c->cbuf, &c->ccap, need, KF_CSCRATCH_MAX)) < 0)
        return rc;
    size_t n = LZ4F_compressFrame(c->cbuf, need, recs, rlen, &prefs);
    if (LZ4F_isError(n))
        return -ENOMEM;
    *out = c->cbuf;
    *out_len = n;
    return 0;
}
