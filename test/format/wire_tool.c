/*
 * test/format/wire_tool.c - lib/format's wire conversion as a filter, for
 * test_kafka_python.py (batches built and read by kafka-python).
 *
 *   wire_tool to-klog < wire-batch > records
 *       A Kafka wire batch (one, exactly) -> kf_wire_to_batch (a
 *       producer's batch) -> the stored batch decoded: one line
 *         batch magic=M codec=C count=N base_offset=O producer_id=P
 *               producer_epoch=E base_sequence=S attributes=A stored=BYTES
 *       then one line per record: OFFSET TIMESTAMP KEY VALUE [HKEY HVALUE]...
 *   wire_tool to-wire [--v2] CODEC BASE_OFFSET < records > wire-batch
 *       Records (lines: TIMESTAMP KEY VALUE [HKEY HVALUE]...) -> a klog
 *       batch (kf_builder, CODEC none|gzip|snappy|lz4|zstd; with --v2 in
 *       klog 0.1's framing, lz4 or zstd) at BASE_OFFSET, producer id 4242
 *       epoch 3 sequence 17 -> kf_batch_to_wire -> header then records.
 *
 * Bytes are written in hex, "-" for null and "=" for empty.  On an error
 * the tool prints klog's error name on stderr and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <zstd.h>

#include <klog/error.h>

#include "common/common.h"
#include "format/format.h"

#define MAXB (8u << 20)

static int fail(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, klog_err_name(rc));
    return 1;
}

static void put_hex(const uint8_t *p, int32_t n)
{
    if (n < 0) {
        fputs(" -", stdout);
        return;
    }
    if (n == 0) {
        fputs(" =", stdout);
        return;
    }
    putchar(' ');
    for (int32_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

/* Decode a token ("-", "=", hex) into out; returns the length, -1 for null. */
static int32_t get_hex(const char *t, uint8_t *out)
{
    if (!strcmp(t, "-"))
        return -1;
    if (!strcmp(t, "="))
        return 0;
    int32_t n = 0;
    for (const char *p = t; p[0] && p[1]; p += 2) {
        unsigned v;
        sscanf(p, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

static int to_klog(void)
{
    uint8_t *w = malloc(MAXB), *k = malloc(MAXB + 4);
    size_t n = fread(w, 1, MAXB, stdin), klen;
    kf_wire_caps caps = { .max_batch = 0, .producer = 1 };
    int rc = kf_wire_to_batch(w, n, &caps, k, MAXB + 4, &klen);
    if (rc)
        return fail("kf_wire_to_batch", rc);
    kf_batch_info bi;
    if (kf_batch_parse(k, klen, &bi) != (ssize_t)klen || kf_batch_verify(k, klen))
        return fail("the stored batch", KLOG_ECORRUPT);
    kf_codec *c;
    kf_codec_new(&c);
    const uint8_t *recs;
    size_t rlen;
    if ((rc = kf_batch_records(k, klen, c, &recs, &rlen)))
        return fail("kf_batch_records", rc);
    printf("batch magic=%u codec=%u count=%d base_offset=%lld producer_id=%lld producer_epoch=%d "
           "base_sequence=%d attributes=%u stored=",
           bi.magic, bi.attributes & KF_ATTR_CODEC_MASK, bi.record_count, (long long)bi.base_offset,
           (long long)bi.producer_id, bi.producer_epoch, bi.base_sequence, bi.attributes);
    /* the stored section: it must be the section Kafka sent */
    for (size_t i = KF_HDR_SIZE; i < klen; i++)
        printf("%02x", k[i]);
    putchar('\n');
    kf_iter it;
    kf_record_view r;
    kf_iter_init(&it, &bi, recs, rlen);
    while ((rc = kf_iter_next(&it, &r)) == 1) {
        printf("%lld %lld", (long long)r.offset, (long long)r.timestamp);
        put_hex(r.key, r.key_len);
        put_hex(r.value, r.value_len);
        size_t pos = 0;
        kf_header h;
        while (kf_header_next(&r, &pos, &h) == 1) {
            put_hex(h.key, h.key_len);
            put_hex(h.value, h.value_len);
        }
        putchar('\n');
    }
    if (rc < 0)
        return fail("kf_iter_next", rc);
    kf_codec_free(c);
    free(w);
    free(k);
    return 0;
}

/* klog 0.1's framing of the builder's section, sealed in place at out. */
static size_t seal_v2(kf_builder *b, const kf_batch_meta *m, uint8_t *out)
{
    kf_batch_meta plain = *m;
    plain.codec = KF_CODEC_NONE;
    const uint8_t *fin;
    size_t flen;
    kf_builder_finish(b, &plain, NULL, &fin, &flen);
    const size_t slen = flen - KF_HDR_SIZE;
    memcpy(out, fin, KF_HDR_SIZE);
    size_t n;
    if (m->codec == KF_CODEC_LZ4) {
        int r = LZ4_compress_default((const char *)fin + KF_HDR_SIZE, (char *)out + KF_HDR_SIZE + 4, (int)slen,
                                     LZ4_compressBound((int)slen));
        n = r > 0 ? (size_t)r : 0;
    } else {
        n = ZSTD_compress(out + KF_HDR_SIZE + 4, ZSTD_compressBound(slen), fin + KF_HDR_SIZE, slen, 3);
        if (ZSTD_isError(n))
            n = 0;
    }
    klog__st32(out + KF_HDR_SIZE, (uint32_t)slen);
    const size_t total = KF_HDR_SIZE + 4 + n;
    klog__st32(out + KF_OFF_LENGTH, (uint32_t)(total - KF_LOG_OVERHEAD));
    klog__st16(out + KF_OFF_ATTRIBUTES, (uint16_t)(klog__ld16(out + KF_OFF_ATTRIBUTES) | m->codec));
    /* v2's checksum: XXH3 seeded with the length (kf_batch_set_sequence
     * seals a header in place with it) */
    kf_batch_set_sequence(out, total, m->base_sequence);
    return total;
}

static int to_wire(int argc, char **argv)
{
    int v2 = argc > 2 && !strcmp(argv[2], "--v2");
    if (argc < 4 + v2)
        return fail("usage", -EINVAL);
    static const char *const names[] = { "none", "gzip", "snappy", "lz4", "zstd" };
    int id = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(argv[2 + v2], names[i]))
            id = i;
    if (id < 0 || (v2 && id != KF_CODEC_LZ4 && id != KF_CODEC_ZSTD))
        return fail("codec", -EINVAL);
    long long base = atoll(argv[3 + v2]);
    uint8_t *buf = malloc(MAXB), *scratch = malloc(MAXB), *out = malloc(MAXB);
    kf_builder b;
    kf_builder_init(&b, buf, MAXB, KF_RECORD_MAX_DEFAULT);
    char *line = NULL;
    size_t cap = 0;
    uint8_t *pool = scratch;
    while (getline(&line, &cap, stdin) > 0) {
        kf_header hs[16];
        const void *field[2 + 32];
        int32_t flen[2 + 32];
        int nf = 0;
        char *save, *tok = strtok_r(line, " \n", &save);
        long long ts = atoll(tok);
        while ((tok = strtok_r(NULL, " \n", &save)) && nf < 34) {
            flen[nf] = get_hex(tok, pool);
            field[nf] = flen[nf] > 0 ? pool : NULL;
            pool += flen[nf] > 0 ? flen[nf] : 0;
            nf++;
        }
        uint32_t nh = 0;
        for (int i = 2; i + 1 < nf; i += 2, nh++)
            hs[nh] = (kf_header){ field[i], flen[i], field[i + 1], flen[i + 1] };
        kf_record r = { field[0], flen[0], field[1], flen[1], ts, nh ? hs : NULL, nh };
        int rc = kf_builder_add(&b, &r);
        if (rc)
            return fail("kf_builder_add", rc);
    }
    free(line);
    kf_batch_meta m = { 4242, 3, 17, 0, (enum kf_codec_id)id, 0 };
    kf_codec *c;
    kf_codec_new(&c);
    const uint8_t *k;
    size_t klen;
    if (v2) {
        klen = seal_v2(&b, &m, out);
        k = out;
    } else {
        int rc = kf_builder_finish(&b, &m, c, &k, &klen);
        if (rc)
            return fail("kf_builder_finish", rc);
    }
    if ((unsigned)(klog__ld16(k + KF_OFF_ATTRIBUTES) & KF_ATTR_CODEC_MASK) != (unsigned)id)
        return fail("the records do not compress", KLOG_EFORMAT);
    kf_batch_set_base_offset((void *)(uintptr_t)k, base);
    kf_batch_set_leader_epoch((void *)(uintptr_t)k, 9);
    uint8_t hdr[KF_WIRE_HDR_SIZE];
    const uint8_t *recs;
    size_t rlen;
    kf_codec *wc;
    kf_codec_new(&wc);
    int rc = kf_batch_to_wire(k, klen, KF_WIRE_VERIFY, wc, hdr, &recs, &rlen);
    if (rc)
        return fail("kf_batch_to_wire", rc);
    fwrite(hdr, 1, sizeof hdr, stdout);
    fwrite(recs, 1, rlen, stdout);
    kf_codec_free(c);
    kf_codec_free(wc);
    free(buf);
    free(scratch);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "to-klog"))
        return to_klog();
    if (argc >= 2 && !strcmp(argv[1], "to-wire"))
        return to_wire(argc, argv);
    fprintf(stderr, "usage: wire_tool to-klog | to-wire [--v2] CODEC BASE_OFFSET\n");
    return 2;
}
