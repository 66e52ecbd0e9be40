/*
 * test/format/legacy.h - klog 0.1's encoder of compressed batches, kept for
 * the tests of the upgrade path: magic 2, and a records section of a u32
 * uncompressed length then an lz4 block (LZ4_compress_default) or one zstd
 * frame (ZSTD_compressCCtx at the producer's level, 3 by default).  What
 * 0.1's kf_builder_finish wrote, byte for byte: test/format/legacy.c checks
 * it against batches that 0.1 itself wrote (test/format/data/).
 */
#ifndef KLOG_TEST_FORMAT_LEGACY_H
#define KLOG_TEST_FORMAT_LEGACY_H

#include <lz4.h>
#include <zstd.h>

#include "helpers.h"

/*
 * Seal builder b as klog 0.1 did, into out (cap bytes): compressed with
 * codec (lz4 or zstd, level for zstd, 0 = 3) when that shrinks the section
 * (4 + compressed < uncompressed), else uncompressed.  The header fields
 * are those kf_builder_finish writes with meta m.  Returns the length.
 */
static inline size_t t_legacy_finish(kf_builder *b, const kf_batch_meta *m, uint8_t *out, size_t cap)
{
    const uint8_t *fin;
    size_t flen;
    kf_batch_meta plain = *m;
    plain.codec = KF_CODEC_NONE;
    /* The header as 0.1 wrote it is the uncompressed one's, but for the
     * length, the codec bits and the checksum. */
    cr_assert_eq(kf_builder_finish(b, &plain, NULL, &fin, &flen), 0);
    const uint8_t *src = fin + KF_HDR_SIZE;
    const size_t slen = flen - KF_HDR_SIZE;
    cr_assert_geq(cap, flen);
    memcpy(out, fin, KF_HDR_SIZE);
    size_t n = 0;
    if (slen > 5) {
        const size_t room = slen - 4 - 1;
        uint8_t *tmp = malloc(room + 1);
        if (m->codec == KF_CODEC_LZ4) {
            int r = LZ4_compress_default((const char *)src, (char *)tmp, (int)slen, (int)room);
            n = r > 0 ? (size_t)r : 0;
        } else if (m->codec == KF_CODEC_ZSTD) {
            ZSTD_CCtx *z = ZSTD_createCCtx();
            size_t r = ZSTD_compressCCtx(z, tmp, room, src, slen, m->level ? m->level : 3);
            n = ZSTD_isError(r) ? 0 : r;
            ZSTD_freeCCtx(z);
        }
        if (n) {
            klog__st32(out + KF_HDR_SIZE, (uint32_t)slen);
            memcpy(out + KF_HDR_SIZE + 4, tmp, n);
        }
        free(tmp);
    }
    if (!n) {
        memcpy(out, fin, flen);
        return flen;
    }
    const size_t total = KF_HDR_SIZE + 4 + n;
    uint16_t a = klog__ld16(out + KF_OFF_ATTRIBUTES);
    klog__st16(out + KF_OFF_ATTRIBUTES, (uint16_t)((a & ~KF_ATTR_CODEC_MASK) | m->codec));
    out[KF_OFF_MAGIC] = KF_MAGIC;
    t_reseal(out, total);
    return total;
}

#endif /* KLOG_TEST_FORMAT_LEGACY_H */
