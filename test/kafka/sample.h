/*
 * test/kafka/sample.h - deterministic sample messages for lib/kafka's
 * tests, the compatibility tool (kk_tool) and the fuzz corpus: any
 * request or response body of any implemented version, every field on the
 * wire in that version filled from a seed (integers over their whole
 * range, strings with quotes, escapes and UTF-8, bytes, arrays of 0-3
 * elements, null where the version allows it).
 */
#ifndef KLOG_TEST_KAFKA_SAMPLE_H
#define KLOG_TEST_KAFKA_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "kafka/internal.h"

/* Memory for samples: everything is freed at once. */
typedef struct kks_pool {
    void **blocks;
    size_t n, cap;
} kks_pool;

void *kks_alloc(kks_pool *p, size_t n);
void kks_pool_free(kks_pool *p);

/* A body of schema s at version v (struct of kk_schema_size(s) bytes, in
 * the pool), filled from seed.  Fields not on the wire in v are zero. */
void *kks_fill(kks_pool *p, const kk_schema *s, int v, uint64_t seed);

/* Encode a sample request (header: correlation_id = seed, client_id
 * "kks") or response of api/version into w.  Returns what the encoder
 * returns; *body (if not NULL) gets the body encoded. */
int kks_request(kk_wbuf *w, kks_pool *p, const kk_api *api, int v, uint64_t seed, void **body);
int kks_response(kk_wbuf *w, kks_pool *p, const kk_api *api, int v, uint64_t seed, void **body);

/* w's frame as one malloc'd buffer of *len bytes (exactly sized, so that
 * ASan sees a read past its end). */
uint8_t *kks_flat(const kk_wbuf *w, size_t *len);

/* JSON of a body (kk_json_body with every byte shown); malloc'd string. */
char *kks_json(const kk_schema *s, int v, const void *body);

#endif
