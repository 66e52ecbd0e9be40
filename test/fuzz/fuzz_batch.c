/*
 * test/fuzz/fuzz_batch.c - libFuzzer target over lib/format: the stored
 * record-batch decoder (parse, verify, records section with every codec,
 * record iterator, header walk), the compaction filter and the conversion
 * to and from Kafka's wire form.
 *
 * Input: one control byte, then bytes read as a segment is, batch after
 * batch.  Control bit 0 reseals each batch's checksum before it is
 * verified (kf_batch_set_sequence writes the sum), so that the fuzzer gets
 * past the checksum into the records; bits 1-7 seed which records the
 * filter keeps.  Properties (abort() = a finding):
 *
 *   - kf_batch_parse returns 0, a size within the bytes given, or
 *     KLOG_ECORRUPT/KLOG_EFORMAT; kf_batch_verify 0 or KLOG_ECORRUPT;
 *   - a verified batch's records decode or fail with KLOG_ECORRUPT or
 *     KLOG_EFORMAT (or -ENOMEM); a walk that ends well returned exactly
 *     record_count records at offsets within the batch, and every record's
 *     headers walk to their count;
 *   - filtered, the kept records come out as a batch that parses, verifies
 *     and iterates to the same records (offsets, keys, values, headers);
 *   - as Kafka's wire form and back it is a batch that verifies and holds
 *     the same records.
 *
 * Build and run: see test/fuzz/README.  run_corpus.c replays the corpus in
 * the normal suite (test fuzz_batch_corpus).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/error.h>

#include "format/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_batch: %s:%d: %s\n", __FILE__, __LINE__, #c);    \
            abort();                                                               \
        }                                                                          \
    } while (0)

/* Fuzz inputs stay small (libFuzzer's -max_len); a batch the decoder takes
 * may still claim up to KF_BATCH_MAX decompressed. */
#define FB_MAX_KEEP (1u << 20)

typedef struct fb_rec {
    int64_t offset, timestamp;
    const uint8_t *key, *value;
    int32_t key_len, value_len;
    uint32_t header_count;
} fb_rec;

static int rec_same(const fb_rec *a, const kf_record_view *b)
{
    return a->offset == b->offset && a->timestamp == b->timestamp && a->key_len == b->key_len &&
           a->value_len == b->value_len && a->header_count == b->header_count &&
           (a->key_len <= 0 || memcmp(a->key, b->key, (size_t)a->key_len) == 0) &&
           (a->value_len <= 0 || memcmp(a->value, b->value, (size_t)a->value_len) == 0);
}

/* Walk the records of a verified batch.  Returns the records (malloc'ed,
 * *n of them; NULL and 0 when the walk failed: *rc says how) pointing into
 * the section, which lives in batch or c's scratch. */
static fb_rec *walk(const uint8_t *batch, size_t len, const kf_batch_info *bi, kf_codec *c, int *rc_out,
                    size_t *n)
{
    *n = 0;
    const uint8_t *recs;
    size_t rlen;
    int rc = kf_batch_records(batch, len, c, &recs, &rlen);
    if (rc < 0) {
        CHECK(rc == KLOG_ECORRUPT || rc == KLOG_EFORMAT || rc == -ENOMEM);
        *rc_out = rc;
        return NULL;
    }
    CHECK(rlen <= KF_BATCH_MAX);
    size_t cap = bi->record_count > 0 && (uint32_t)bi->record_count < FB_MAX_KEEP ? (size_t)bi->record_count : 1;
    fb_rec *out = calloc(cap, sizeof *out);
    CHECK(out);
    kf_iter it;
    kf_iter_init(&it, bi, recs, rlen);
    kf_record_view r;
    size_t i = 0;
    while ((rc = kf_iter_next(&it, &r)) == 1) {
        CHECK(i < (size_t)bi->record_count);
        CHECK(r.offset >= bi->base_offset && r.offset <= kf_batch_last_offset(bi));
        CHECK(r.key_len >= -1 && r.value_len >= -1);
        size_t pos = 0, nh = 0;
        kf_header h;
        int hr;
        while ((hr = kf_header_next(&r, &pos, &h)) == 1) {
            CHECK(h.key_len >= 0 && h.value_len >= -1);
            nh++;
        }
        CHECK(hr == 0 || hr == KLOG_ECORRUPT);
        if (hr == 0)
            CHECK(nh == r.header_count);
        if (i < cap)
            out[i] = (fb_rec){ r.offset, r.timestamp, r.key, r.value, r.key_len, r.value_len, r.header_count };
        i++;
    }
    if (rc < 0) {
        CHECK(rc == KLOG_ECORRUPT);
        free(out);
        *rc_out = rc;
        return NULL;
    }
    CHECK(i == (size_t)bi->record_count);
    *rc_out = 0;
    *n = i;
    return out;
}

/* Compare the records of batch b (len bytes) with want[0..n) (pointing into
 * memory that c's next call does not touch: the caller copied them). */
static void same_records(const uint8_t *b, size_t len, kf_codec *c, const fb_rec *want, size_t n)
{
    kf_batch_info bi;
    CHECK(kf_batch_parse(b, len, &bi) == (ssize_t)len);
    CHECK(kf_batch_verify(b, len) == 0);
    CHECK(bi.record_count >= 0 && (size_t)bi.record_count == n);
    const uint8_t *recs;
    size_t rlen;
    CHECK(kf_batch_records(b, len, c, &recs, &rlen) == 0);
    kf_iter it;
    kf_iter_init(&it, &bi, recs, rlen);
    kf_record_view r;
    for (size_t i = 0; i < n; i++) {
        CHECK(kf_iter_next(&it, &r) == 1);
        CHECK(rec_same(&want[i], &r));
    }
    CHECK(kf_iter_next(&it, &r) == 0);
}

/* Deep copies of records whose bytes live in a codec's scratch. */
static fb_rec *copy_recs(const fb_rec *r, size_t n, uint8_t **store)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (size_t)(r[i].key_len > 0 ? r[i].key_len : 0) + (size_t)(r[i].value_len > 0 ? r[i].value_len : 0);
    uint8_t *s = malloc(total ? total : 1);
    fb_rec *out = malloc((n ? n : 1) * sizeof *out);
    CHECK(s && out);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = r[i];
        if (r[i].key_len > 0) {
            memcpy(s + at, r[i].key, (size_t)r[i].key_len);
            out[i].key = s + at;
            at += (size_t)r[i].key_len;
        }
        if (r[i].value_len > 0) {
            memcpy(s + at, r[i].value, (size_t)r[i].value_len);
            out[i].value = s + at;
            at += (size_t)r[i].value_len;
        }
    }
    *store = s;
    return out;
}

static void one_batch(uint8_t *b, size_t len, const kf_batch_info *bi, unsigned keep_seed, kf_codec *c)
{
    int rc = kf_batch_verify(b, len);
    CHECK(rc == 0 || rc == KLOG_ECORRUPT);
    if (rc != 0)
        return;
    size_t n;
    fb_rec *recs = walk(b, len, bi, c, &rc, &n);
    if (!recs)
        return;
    uint8_t *store;
    fb_rec *orig = copy_recs(recs, n, &store);
    free(recs);

    /* The filter, keeping the records the seed picks (at least one). */
    if (n > 0) {
        uint8_t *keep = calloc(n, 1);
        fb_rec *kept = malloc(n * sizeof *kept);
        CHECK(keep && kept);
        size_t nk = 0;
        uint32_t s = keep_seed * 2654435761u + 1;
        for (size_t i = 0; i < n; i++) {
            s = s * 1103515245u + 12345u;
            keep[i] = (s >> 16) & 1;
            if (i == n - 1 && nk == 0)
                keep[i] = 1;
            if (keep[i])
                kept[nk++] = orig[i];
        }
        size_t cap = KF_HDR_SIZE + len + 64;
        uint8_t *buf = malloc(cap);
        CHECK(buf);
        const uint8_t *out;
        size_t out_len = 0;
        rc = kf_batch_filter(b, len, keep, c, buf, cap, &out, &out_len);
        if (rc == -ENOBUFS) { /* a compressed section grows when decompressed */
            free(buf);
            cap = out_len;
            buf = malloc(cap);
            CHECK(buf);
            rc = kf_batch_filter(b, len, keep, c, buf, cap, &out, &out_len);
        }
        CHECK(rc == 0 || rc == -ENOMEM);
        if (rc == 0) {
            uint8_t *copy = malloc(out_len);
            CHECK(copy);
            memcpy(copy, out, out_len);
            same_records(copy, out_len, c, kept, nk);
            free(copy);
        }
        free(buf);
        free(keep);
        free(kept);
    }

    /* To Kafka's wire form and back. */
    uint8_t hdr[KF_WIRE_HDR_SIZE];
    const uint8_t *wrecs;
    size_t wlen;
    rc = kf_batch_to_wire(b, len, KF_WIRE_VERIFY, c, hdr, &wrecs, &wlen);
    CHECK(rc == 0 || rc == KLOG_ECORRUPT || rc == KLOG_EFORMAT || rc == -ENOMEM);
    if (rc == 0) {
        size_t wtotal = KF_WIRE_HDR_SIZE + wlen;
        uint8_t *wire = malloc(wtotal + 4);
        CHECK(wire);
        memcpy(wire + 4, hdr, KF_WIRE_HDR_SIZE);
        memcpy(wire + 4 + KF_WIRE_HDR_SIZE, wrecs, wlen);
        kf_batch_info wi;
        CHECK(kf_wire_parse(wire + 4, wtotal, &wi) == (ssize_t)wtotal);
        size_t back_len = 0;
        rc = kf_wire_to_batch(wire + 4, wtotal, NULL, wire, wtotal + 4, &back_len); /* in place */
        CHECK(rc == 0 || rc == KLOG_ETOOBIG);
        if (rc == 0)
            same_records(wire, back_len, c, orig, n);
        free(wire);
    }
    free(orig);
    free(store);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const unsigned ctl = data[0];
    /* A private, writable copy (the checksum is resealed in place). */
    size_t len = size - 1;
    uint8_t *buf = malloc(len ? len : 1);
    CHECK(buf);
    memcpy(buf, data + 1, len);
    kf_codec *c = NULL;
    CHECK(kf_codec_new(&c) == 0);
    size_t at = 0;
    for (int nb = 0; nb < 64 && at < len; nb++) {
        kf_batch_info bi;
        ssize_t n = kf_batch_parse(buf + at, len - at, &bi);
        CHECK(n == 0 || n == KLOG_ECORRUPT || n == KLOG_EFORMAT || (n > 0 && (size_t)n <= len - at));
        if (n <= 0)
            break;
        CHECK((size_t)n == kf_batch_size(&bi) && (size_t)n >= KF_HDR_SIZE);
        if (ctl & 1)
            kf_batch_set_sequence(buf + at, (size_t)n, bi.base_sequence);
        one_batch(buf + at, (size_t)n, &bi, ctl >> 1, c);
        at += (size_t)n;
    }
    /* The same bytes as one Kafka wire batch, as a produce request brings. */
    kf_batch_info wi;
    ssize_t wn = kf_wire_parse(data + 1, len, &wi);
    CHECK(wn == 0 || wn == KLOG_ECORRUPT || wn == KLOG_EFORMAT || wn == KLOG_ETOOBIG ||
          (wn > 0 && (size_t)wn <= len));
    if (wn > 0) {
        kf_wire_caps caps = { 0, (int)(ctl & 2) };
        uint8_t *out = malloc((size_t)wn + 4);
        CHECK(out);
        size_t out_len = 0;
        int rc = kf_wire_to_batch(data + 1, (size_t)wn, &caps, out, (size_t)wn + 4, &out_len);
        CHECK(rc == 0 || rc == KLOG_ECORRUPT || rc == KLOG_EFORMAT || rc == KLOG_ETOOBIG);
        if (rc == 0) {
            kf_batch_info bi;
            CHECK(kf_batch_parse(out, out_len, &bi) == (ssize_t)out_len);
            CHECK(kf_batch_verify(out, out_len) == 0);
            size_t n;
            fb_rec *r = walk(out, out_len, &bi, c, &rc, &n);
            free(r);
        }
        free(out);
    }
    kf_codec_free(c);
    free(buf);
    return 0;
}
