/*
 * lib/format/codec.c - per-batch compression of the records section (lz4
 * block, zstd frame) and the kf_codec context that owns its state.
 *
 * A kf_codec holds, created on first use and then reused for every batch:
 * a ZSTD_CCtx and a ZSTD_DCtx, a compression scratch (where kf_builder_finish
 * assembles a compressed batch) and a decompression scratch (where
 * kf_batch_records puts a decompressed records section).  Two scratches, not
 * one, so that a batch just finished on c can be decoded with c.  Each grows
 * on demand, geometrically, up to KF_BATCH_MAX and never shrinks; once warm,
 * no batch allocates.  LZ4 needs no context (its compressor state lives on
 * the stack).  Not thread-safe: one kf_codec per thread or per owner.
 */
#include <stdlib.h>

#include <lz4.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "format/internal.h"

#define KF_SCRATCH_MIN (64u * 1024)

struct kf_codec {
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
    uint8_t *cbuf; /* compression scratch: a whole compressed batch */
    size_t ccap;
    uint8_t *dbuf; /* decompression scratch: one records section */
    size_t dcap;
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
    free(c->cbuf);
    free(c->dbuf);
    free(c);
}

/* Make *buf hold at least need bytes (need <= KF_BATCH_MAX).  The old
 * contents are not kept: callers overwrite the scratch entirely.  On failure
 * the buffer is released and the capacity is 0. */
static int scratch_grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (KLOG_LIKELY(need <= *cap))
        return 0;
    if (need > KF_BATCH_MAX)
        return -ENOMEM;
    size_t n = KLOG_MAX(*cap * 2, (size_t)KF_SCRATCH_MIN);
    n = KLOG_MIN(KLOG_MAX(n, need), (size_t)KF_BATCH_MAX);
    free(*buf);
    *cap = 0;
    if (!(*buf = malloc(n)) && !(*buf = malloc(n = need)))
        return -ENOMEM;
    *cap = n;
    return 0;
}

int kf__codec_compress(kf_codec *c, enum kf_codec_id id, int level, const uint8_t *src,
                       size_t slen, uint8_t **batch, size_t *clen)
{
    *clen = 0;
    if (id == KF_CODEC_ZSTD) {
        if (level == 0)
            level = ZSTD_CLEVEL_DEFAULT;
        if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
            return -EINVAL;
    }
    /* Worth it only when u32 length + compressed bytes < slen: give the
     * compressor exactly that much room and let it fail otherwise. */
    if (slen <= 4 + 1)
        return 0;
    const size_t room = slen - 4 - 1;
    int rc = scratch_grow(&c->cbuf, &c->ccap, KF_HDR_SIZE + 4 + room);
    if (rc < 0)
        return rc;
    uint8_t *dst = c->cbuf + KF_HDR_SIZE + 4;
    size_t n;
    if (id == KF_CODEC_LZ4) {
        /* slen < KF_BATCH_MAX, well inside LZ4_MAX_INPUT_SIZE and int. */
        int r = LZ4_compress_default((const char *)src, (char *)dst, (int)slen, (int)room);
        if (r <= 0)
            return 0; /* does not fit in room: incompressible */
        n = (size_t)r;
    } else {
        if (!c->zc && !(c->zc = ZSTD_createCCtx()))
            return -ENOMEM;
        n = ZSTD_compressCCtx(c->zc, dst, room, src, slen, level);
        if (ZSTD_isError(n))
            return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? 0 : -ENOMEM;
    }
    *batch = c->cbuf;
    *clen = n;
    return 0;
}

/* LZ4 expands at most ~255:1 (a match length is extended 255 at a time by
 * one input byte); a declared size beyond that is a lie, refused before
 * anything is allocated for it. */
#define KF_LZ4_MAX_RATIO 255u
#define KF_LZ4_SLACK 64u

int kf_batch_records(const void *batch, size_t len, kf_codec *c, const uint8_t **recs,
                     size_t *recs_len)
{
    const uint8_t *p = batch;
    if (len < KF_HDR_SIZE || len > KF_BATCH_MAX ||
        (size_t)klog__ld32(p + KF_OFF_LENGTH) != len - KF_LOG_OVERHEAD)
        return KLOG_ECORRUPT;
    const unsigned id = klog__ld16(p + KF_OFF_ATTRIBUTES) & KF_ATTR_CODEC_MASK;
    if (id == KF_CODEC_NONE) {
        *recs = p + KF_HDR_SIZE; /* zero-copy */
        *recs_len = len - KF_HDR_SIZE;
        return 0;
    }
    if (id != KF_CODEC_LZ4 && id != KF_CODEC_ZSTD)
        return KLOG_EFORMAT;
    if (!c)
        return -EINVAL;
    if (len - KF_HDR_SIZE < 4)
        return KLOG_ECORRUPT;
    const size_t ulen = klog__ld32(p + KF_HDR_SIZE);
    const uint8_t *src = p + KF_HDR_SIZE + 4;
    const size_t slen = len - KF_HDR_SIZE - 4;
    /* The builder never makes a section that would not fit an uncompressed
     * batch, and never an empty one. */
    if (ulen == 0 || ulen > KF_BATCH_MAX - KF_HDR_SIZE || slen == 0)
        return KLOG_ECORRUPT;

    if (id == KF_CODEC_LZ4) {
        if (ulen > (uint64_t)slen * KF_LZ4_MAX_RATIO + KF_LZ4_SLACK)
            return KLOG_ECORRUPT;
        int rc = scratch_grow(&c->dbuf, &c->dcap, ulen);
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
        int rc = scratch_grow(&c->dbuf, &c->dcap, ulen);
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
    *recs = c->dbuf;
    *recs_len = ulen;
    return 0;
}
