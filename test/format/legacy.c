/*
 * test/format/legacy.c - the upgrade path from klog 0.1 (klog-format(5),
 * FORMAT VERSIONS): a data directory that klog 0.1 wrote (test/format/data/
 * klog-0.1, see its README) opens and reads with this release, takes new
 * batches of every codec beside its old ones, and reads the mix back after
 * a reopen; its batches decode at the format level; and the test helper
 * that stands in for 0.1's encoder (legacy.h) writes those very bytes.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "legacy.h"

#include "../api/util.h"

#define FIXTURE T_DATA_DIR "/klog-0.1"
#define SEGMENT FIXTURE "/legacy-0/00000000000000000000.log"

/* What 0.1's CLI was given: 50 lines to lz4, 50 with header src=zstd to
 * zstd, 10 uncompressed, each "k<i>:<value>". */
static void expected(int i, char *key, size_t ks, char *value, size_t vs, const char **hdr)
{
    snprintf(key, ks, "k%d", i);
    *hdr = NULL;
    if (i <= 50) {
        snprintf(value, vs, "lz4 value number %d with some repeated text text text", i);
    } else if (i <= 100) {
        snprintf(value, vs, "zstd value number %d with some repeated text text text", i);
        *hdr = "zstd";
    } else {
        snprintf(value, vs, "plain %d", i);
    }
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    struct stat st;
    cr_assert_eq(fstat(fileno(f), &st), 0);
    uint8_t *b = malloc((size_t)st.st_size);
    cr_assert_eq(fread(b, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    fclose(f);
    *len = (size_t)st.st_size;
    return b;
}

/* The segment, batch by batch: magic 2 throughout, codecs lz4, zstd, none,
 * and every record as it was written. */
Test(legacy, segment_of_klog_0_1_decodes)
{
    size_t len;
    uint8_t *seg = read_file(SEGMENT, &len);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    static const unsigned want_codec[] = { KF_CODEC_LZ4, KF_CODEC_ZSTD, KF_CODEC_NONE };
    size_t pos = 0;
    int batches = 0, i = 1;
    while (pos < len) {
        kf_batch_info bi;
        ssize_t n = kf_batch_parse(seg + pos, len - pos, &bi);
        cr_assert_gt(n, 0, "batch %d at %zu: %zd", batches, pos, n);
        cr_assert_eq(kf_batch_verify(seg + pos, (size_t)n), 0);
        cr_assert_eq(bi.magic, KF_MAGIC);
        cr_assert_lt(batches, 3);
        cr_assert_eq(bi.attributes & KF_ATTR_CODEC_MASK, want_codec[batches]);
        const uint8_t *recs;
        size_t rlen;
        cr_assert_eq(kf_batch_records(seg + pos, (size_t)n, c, &recs, &rlen), 0);
        kf_iter it;
        kf_record_view r;
        kf_iter_init(&it, &bi, recs, rlen);
        while (kf_iter_next(&it, &r) == 1) {
            char k[16], v[96];
            const char *h;
            expected(i, k, sizeof k, v, sizeof v, &h);
            cr_assert_eq(r.offset, i - 1);
            cr_assert(r.key_len == (int32_t)strlen(k) && !memcmp(r.key, k, strlen(k)), "record %d key", i);
            cr_assert(r.value_len == (int32_t)strlen(v) && !memcmp(r.value, v, strlen(v)), "record %d value", i);
            cr_assert_eq(r.header_count, h ? 1u : 0u);
            i++;
        }
        pos += (size_t)n;
        batches++;
    }
    cr_assert_eq(batches, 3);
    cr_assert_eq(i, 111);
    kf_codec_free(c);
    free(seg);
}

/* legacy.h's encoder, given the records and header fields of each
 * compressed batch in the segment, writes that batch byte for byte: it is
 * klog 0.1's encoder, and the tests that use it test 0.1's batches. */
Test(legacy, helper_writes_what_klog_0_1_wrote)
{
    size_t len;
    uint8_t *seg = read_file(SEGMENT, &len);
    kf_codec *c;
    cr_assert_eq(kf_codec_new(&c), 0);
    size_t pos = 0;
    int checked = 0;
    while (pos < len) {
        kf_batch_info bi;
        ssize_t n = kf_batch_parse(seg + pos, len - pos, &bi);
        cr_assert_gt(n, 0);
        const unsigned id = bi.attributes & KF_ATTR_CODEC_MASK;
        const uint8_t *recs;
        size_t rlen;
        cr_assert_eq(kf_batch_records(seg + pos, (size_t)n, c, &recs, &rlen), 0);
        /* rebuild the records from their views */
        uint8_t *buf = malloc(1 << 16), *out = malloc(1 << 16);
        kf_builder b;
        kf_builder_init(&b, buf, 1 << 16, KF_RECORD_MAX_DEFAULT);
        kf_iter it;
        kf_record_view r;
        kf_iter_init(&it, &bi, recs, rlen);
        while (kf_iter_next(&it, &r) == 1) {
            kf_header hs[4];
            size_t hp = 0;
            uint32_t nh = 0;
            while (nh < 4 && kf_header_next(&r, &hp, &hs[nh]) == 1)
                nh++;
            kf_record rec = { r.key, r.key_len, r.value, r.value_len, r.timestamp, nh ? hs : NULL, nh };
            cr_assert_eq(kf_builder_add(&b, &rec), 0);
        }
        kf_batch_meta m = { bi.producer_id, bi.producer_epoch, bi.base_sequence,
                            (uint16_t)(bi.attributes & ~KF_ATTR_CODEC_MASK), (enum kf_codec_id)id, 0 };
        size_t olen = t_legacy_finish(&b, &m, out, 1 << 16);
        kf_batch_set_base_offset(out, bi.base_offset);
        kf_batch_set_leader_epoch(out, bi.leader_epoch);
        cr_assert_eq(olen, (size_t)n, "codec %u: %zu bytes, 0.1 wrote %zd", id, olen, n);
        cr_assert(memcmp(out, seg + pos, olen) == 0, "codec %u: not the bytes 0.1 wrote", id);
        checked += id != KF_CODEC_NONE;
        free(buf);
        free(out);
        pos += (size_t)n;
    }
    cr_assert_eq(checked, 2);
    kf_codec_free(c);
    free(seg);
}

/* ---- the directory, through the public API ------------------------------------------- */

TestSuite(legacy, .init = ut_mkdir, .fini = ut_rmdir);

static void copy_fixture(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp -R '%s/.' '%s/'", FIXTURE, ut_dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* Read partition 0 of "legacy" from the beginning to its end; check the
 * 110 records of 0.1 and then `more` records "new <i>". */
static void read_all(klog *k, int more)
{
    klog_consumer *cs = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(cs, "legacy", 0, KLOG_OFFSET_BEGINNING), 0);
    int got = 0;
    for (int idle = 0; got < 110 + more && idle < 50;) {
        const klog_message *const *m;
        int n = klog_consumer_poll(cs, 100, &m);
        cr_assert_geq(n, 0, "poll: %s", klog_err_name(n));
        idle = n ? 0 : idle + 1;
        for (int j = 0; j < n; j++, got++) {
            char key[16], v[96];
            const char *h = NULL;
            if (got < 110)
                expected(got + 1, key, sizeof key, v, sizeof v, &h);
            else
                snprintf(key, sizeof key, "n%d", got - 110), snprintf(v, sizeof v, "new %d, new %d", got - 110, got);
            cr_assert_eq(m[j]->offset, got);
            cr_assert(m[j]->key_len == strlen(key) && !memcmp(m[j]->key, key, strlen(key)), "offset %d: key", got);
            cr_assert(m[j]->value_len == strlen(v) && !memcmp(m[j]->value, v, strlen(v)), "offset %d: value", got);
            cr_assert_eq(m[j]->header_count, h ? 1u : 0u);
        }
    }
    cr_assert_eq(got, 110 + more);
    cr_assert_eq(klog_consumer_close(cs), 0);
}

Test(legacy, directory_of_klog_0_1_opens_reads_and_takes_new_batches)
{
    copy_fixture();
    klog *k = ut_open();
    cr_assert_eq(ut_end_offset(k, "legacy", 0), 110);
    read_all(k, 0);

    /* new batches of every codec, in the same (active) segment */
    static const char *const codecs[] = { "gzip", "snappy", "lz4", "zstd", "none" };
    int sent = 0;
    for (size_t c = 0; c < KLOG_ARRAY_LEN(codecs); c++) {
        klog_producer *p = ut_producer(k, "compression.type", codecs[c], "linger.ms", "1000", NULL);
        for (int i = 0; i < 40; i++, sent++) {
            char key[16], v[64];
            snprintf(key, sizeof key, "n%d", sent);
            snprintf(v, sizeof v, "new %d, new %d", sent, 110 + sent);
            cr_assert_eq(ut_send(p, "legacy", 0, key, v), 0);
        }
        cr_assert_eq(klog_producer_close(p), 0);
    }
    read_all(k, sent);
    cr_assert_eq(klog_close(k), 0);

    /* after a reopen (the log recovered from what is on disk: old and new
     * batches side by side), the same */
    k = ut_open();
    cr_assert_eq(ut_end_offset(k, "legacy", 0), 110 + sent);
    read_all(k, sent);
    cr_assert_eq(klog_close(k), 0);

    /* on disk: 0.1's three batches as they were (magic 2), then new ones:
     * magic 3 when compressed, 2 when not */
    char path[256];
    snprintf(path, sizeof path, "%s/legacy-0/00000000000000000000.log", ut_dir);
    size_t len, olen;
    uint8_t *seg = read_file(path, &len), *old = read_file(SEGMENT, &olen);
    cr_assert_geq(len, olen);
    cr_assert(memcmp(seg, old, olen) == 0, "0.1's batches were rewritten");
    int v3 = 0, plain = 0;
    for (size_t pos = olen; pos < len;) {
        kf_batch_info bi;
        ssize_t n = kf_batch_parse(seg + pos, len - pos, &bi);
        if (n <= 0)
            break; /* zeros kept ahead of the last batch (klog-format(5)) */
        unsigned id = bi.attributes & KF_ATTR_CODEC_MASK;
        cr_assert_eq(bi.magic, id ? KF_MAGIC_V3 : KF_MAGIC);
        id ? v3++ : plain++;
        pos += (size_t)n;
    }
    cr_assert_geq(v3, 4, "one batch at least per compressing codec");
    cr_assert_geq(plain, 1);
    free(seg);
    free(old);
}
