/*
 * lib/format/varint.c - zigzag varints (Kafka's varint/varlong encoding).
 *
 * The hot paths use the inline forms in internal.h; this file holds the slow
 * decoder they fall back to and the exported kf_varint_put/kf_varint_get.
 */
#include "format/internal.h"

const uint8_t *kf__uget_slow(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    uint64_t u = 0;
    for (unsigned shift = 0; shift < 7 * KF_VARINT_MAX; shift += 7) {
        if (p >= end)
            return NULL; /* truncated */
        uint8_t byte = *p++;
        /* The 10th byte holds bit 63 only: a larger value overflows 64 bits
         * and a continuation bit would make the varint 11+ bytes long. */
        if (shift == 63 && byte > 1)
            return NULL;
        u |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = u;
            return p;
        }
    }
    return NULL; /* not reached: the 10th byte either ends or is rejected */
}

size_t kf_varint_put(uint8_t *p, int64_t v)
{
    return (size_t)(kf__uput(p, kf__zz(v)) - p);
}

size_t kf_varint_get(const uint8_t *p, const uint8_t *end, int64_t *v)
{
    if (!p || !end || end < p)
        return 0;
    const uint8_t *q = kf__get64(p, end, v);
    return q ? (size_t)(q - p) : 0;
}
