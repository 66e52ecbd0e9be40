/*
 * lib/replication/internal.h - what the files of lib/replication share
 * (node.c: the node's state machine; ctl.c: the controller; serve.c:
 * serving peers' requests without a server; mem.c: scratch memory).
 */
#ifndef KLOG_REPLICATION_INTERNAL_H
#define KLOG_REPLICATION_INTERNAL_H

#include "replication/replication.h"

/* Scratch memory for building one request or response: zeroed blocks,
 * freed together (krep_mem_reset).  Not thread-safe. */
typedef struct krep_mem {
    void **blocks;
    size_t n, cap;
} krep_mem;

void *krep_mem_alloc(void *mem, size_t n); /* a krep_alloc_fn over a krep_mem */
void krep_mem_reset(krep_mem *m);

/* The client id replicas and controllers put in their request headers. */
#define KREP_CLIENT_ID "klog-replica"

/* Encode one request frame of key/version with body into w (reset first). */
int krep_encode_request(kk_wbuf *w, int16_t key, int16_t version, int32_t corr, const void *body);

/* Is id one of ids[0..n)? */
static inline bool krep_in(const int32_t *ids, int n, int32_t id)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* A bounded reader over a frame: a read past its end marks it bad and
 * yields NULL (krep_rd_take) or 0 (krep_rd_be). */
typedef struct krep_rd {
    const uint8_t *p;
    size_t n, at;
    bool bad;
} krep_rd;

static inline const uint8_t *krep_rd_take(krep_rd *r, size_t k)
{
    if (r->bad || r->n - r->at < k) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p + r->at;
    r->at += k;
    return q;
}

/* The next k bytes (at most 8) as a big-endian unsigned number. */
static inline uint64_t krep_rd_be(krep_rd *r, size_t k)
{
    const uint8_t *q = krep_rd_take(r, k);
    uint64_t v = 0;
    for (size_t i = 0; q && i < k; i++)
        v = v << 8 | q[i];
    return v;
}

#endif /* KLOG_REPLICATION_INTERNAL_H */
