/*
 * test/fuzz/fuzz_seeds.c - write the seed corpora of the fuzz targets,
 * made by the library itself, so that they follow the formats as the code
 * writes them:
 *
 *     fuzz_seeds batch  DIR   record batches of every codec (fuzz_batch)
 *     fuzz_seeds layout DIR   index, checkpoint, epoch and topics.meta files
 *                             and segment names (fuzz_layout)
 *     fuzz_seeds conf   DIR   every configuration key with its default
 *                             value, and a few set values (fuzz_conf)
 *     fuzz_seeds open   DIR   data directories that klog_open and a producer,
 *                             a compacted topic and a group's commit made,
 *                             packed as fuzz_open reads them (fuzz_open)
 *
 * The corpora in test/fuzz/corpus/ were written so (see README); the seeds
 * are kept small (a few KB each).  Exits 0, or 1 with a message.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <klog/klog.h>

#include "common/conf.h"
#include "format/format.h"
#include "storage/layout.h"

static const char *out_dir;

static void die(const char *what, int rc)
{
    fprintf(stderr, "fuzz_seeds: %s: %d (%s)\n", what, rc, rc < 0 ? klog_strerror(rc) : "");
    exit(1);
}

static void put(const char *name, const void *a, size_t alen, const void *b, size_t blen)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (alen && fwrite(a, 1, alen, f) != alen) || (blen && fwrite(b, 1, blen, f) != blen) ||
        fclose(f) != 0)
        die(path, -errno);
}

/* ---- batch ---------------------------------------------------------------------- */

/* A finished batch of n records (keys, values, a header on odd ones, a null
 * value on the last) with codec into out; returns its length. */
static size_t make_batch(uint8_t *out, size_t cap, int n, enum kf_codec_id codec, int64_t base, kf_codec *c)
{
    static uint8_t buf[16384];
    kf_builder b;
    kf_builder_init(&b, buf, sizeof buf, KF_RECORD_MAX_DEFAULT);
    for (int i = 0; i < n; i++) {
        char key[16], val[64];
        snprintf(key, sizeof key, "k%d", i % 3);
        snprintf(val, sizeof val, "value %d value %d value %d", i, i, i);
        kf_header h = { "h", 1, "hv", 2 };
        kf_record r = { key, (int32_t)strlen(key), val, i == n - 1 ? -1 : (int32_t)strlen(val),
                        1700000000000 + i, (i & 1) ? &h : NULL, (i & 1) ? 1u : 0u };
        int rc = kf_builder_add(&b, &r);
        if (rc < 0)
            die("kf_builder_add", rc);
    }
    kf_batch_meta m = { -1, -1, -1, 0, codec, 0 };
    const uint8_t *p;
    size_t len;
    int rc = kf_builder_finish(&b, &m, c, &p, &len);
    if (rc < 0)
        die("kf_builder_finish", rc);
    if (len > cap)
        die("batch too large", -ENOBUFS);
    memcpy(out, p, len);
    kf_batch_set_base_offset(out, base);
    return len;
}

static void seeds_batch(void)
{
    kf_codec *c = NULL;
    int rc = kf_codec_new(&c);
    if (rc < 0)
        die("kf_codec_new", rc);
    static const char *const names[] = { "none", "gzip", "snappy", "lz4", "zstd" };
    uint8_t b[8192], ctl;
    for (int codec = 0; codec <= KF_CODEC_ZSTD; codec++) {
        size_t n = make_batch(b, sizeof b, 8, (enum kf_codec_id)codec, 0, c);
        char name[64];
        ctl = 0;
        snprintf(name, sizeof name, "batch-%s", names[codec]);
        put(name, &ctl, 1, b, n);
        ctl = 1 | (5 << 1); /* resealed, another keep pattern */
        snprintf(name, sizeof name, "batch-%s-reseal", names[codec]);
        put(name, &ctl, 1, b, n);
    }
    /* Three batches as a segment holds them. */
    size_t n = make_batch(b, sizeof b, 2, KF_CODEC_NONE, 0, c);
    n += make_batch(b + n, sizeof b - n, 3, KF_CODEC_ZSTD, 2, c);
    n += make_batch(b + n, sizeof b - n, 1, KF_CODEC_LZ4, 5, c);
    ctl = 0;
    put("segment-3-batches", &ctl, 1, b, n);
    /* One in Kafka's wire form (what a producer sends). */
    uint8_t hdr[KF_WIRE_HDR_SIZE];
    const uint8_t *recs;
    size_t rlen;
    n = make_batch(b, sizeof b, 4, KF_CODEC_NONE, 0, c);
    if ((rc = kf_batch_to_wire(b, n, 0, c, hdr, &recs, &rlen)) < 0)
        die("kf_batch_to_wire", rc);
    uint8_t w[8192];
    w[0] = 2; /* a producer's batch */
    memcpy(w + 1, hdr, sizeof hdr);
    memcpy(w + 1 + sizeof hdr, recs, rlen);
    put("wire-produce", w, 1 + sizeof hdr + rlen, NULL, 0);
    kf_codec_free(c);
}

/* ---- layout ---------------------------------------------------------------------- */

static void seeds_layout(void)
{
    uint8_t f[1024], ctl;
    kl_oentry oe[3] = { { 0, 0 }, { 4, 400 }, { 9, 900 } };
    kl_tentry te[3] = { { 1700000000000, 0, 0 }, { 1700000000004, 4, 400 }, { 1700000000009, 9, 900 } };
    kl_ix_hdr h = { .magic = KL_IX_MAGIC_OFFSET, .base = 100, .seg_size = 1200, .next_offset = 112,
                    .first_ts = 1700000000000, .max_ts = 1700000000011, .count = 3 };
    size_t n = kl_ix_encode(f, &h, oe);
    ctl = 0;
    put("index", &ctl, 1, f, n);
    ctl = 8;
    put("index-reseal", &ctl, 1, f, n);
    h.magic = KL_IX_MAGIC_TIME;
    n = kl_ix_encode(f, &h, te);
    ctl = 1;
    put("timeindex", &ctl, 1, f, n);
    kl_ckpt_encode(f, KL_CKPT_MAGIC_RECOVERY, 112, 100);
    ctl = 2;
    put("recovery-ckpt", &ctl, 1, f, KL_CKPT_SIZE);
    kl_ckpt_encode(f, KL_CKPT_MAGIC_CLEANER, 50, 40);
    ctl = 3 | 8;
    put("cleaner-ckpt", &ctl, 1, f, KL_CKPT_SIZE);
    static const char epochs[] = "0\n3\n0 0\n2 50\n5 120\n";
    ctl = 4;
    put("epochs", &ctl, 1, epochs, sizeof epochs - 1);
    char m[512];
    size_t ml = (size_t)snprintf(m, sizeof m, "%stopic t 3\n  cleanup.policy=compact\n  segment.bytes=1024\n"
                                              "topic other 1\n", KL_META_HEAD);
    ml = kl_meta_seal(m, ml, sizeof m);
    ctl = 5;
    put("topics-meta", &ctl, 1, m, ml);
    static const char body[] = "topic t 1\n  retention.ms=1000\n";
    ctl = 5 | 8;
    put("topics-meta-body", &ctl, 1, body, sizeof body - 1);
    char name[KL_NAME_MAX];
    kl_segment_name(name, sizeof name, 1234, ".log.cleaned");
    ctl = 6;
    put("segment-name", &ctl, 1, name, strlen(name));
}

/* ---- conf ------------------------------------------------------------------------ */

static void seeds_conf(void)
{
    klog_conf *c = NULL;
    if (klog_conf_new(&c) < 0)
        die("klog_conf_new", -ENOMEM);
    /* Every key with its default, a file per table. */
    for (unsigned t = 0; t < klog__conf_ntables; t++) {
        char text[8192];
        size_t len = 0;
        for (unsigned i = 0; i < klog__conf_tables[t]->n; i++) {
            const char *key = klog__conf_tables[t]->defs[i].name;
            char v[1024];
            if (!key || klog_conf_get(c, key, v, sizeof v) < 0)
                continue;
            int w = snprintf(text + len, sizeof text - len, "%s=%s\n", key, v);
            if (w < 0 || (size_t)w >= sizeof text - len)
                break;
            len += (size_t)w;
        }
        char name[64];
        snprintf(name, sizeof name, "defaults-%s", klog__conf_tables[t]->owner);
        put(name, text, len, NULL, 0);
    }
    static const char set[] = "linger.ms=5\nsegment.bytes=1MiB\nretention.ms=7d\ncompression.type=zstd\n"
                              "acks=all\nenable.idempotence=true\nio.backend=posix\nunknown.key=1\n"
                              "segment.bytes=-1\nretention.bytes=99999999999999999999\n";
    put("set-values", set, sizeof set - 1, NULL, 0);
    klog_conf_free(c);
}

/* ---- open ------------------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Pack the files of dir (and of its directories, one level) into out,
 * flags on each; only those whose path passes `want` (NULL: all). */
static size_t pack(const char *dir, uint8_t *out, size_t cap, unsigned flags, const char *want)
{
    size_t at = 0;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd '%s' && find . -mindepth 1 -maxdepth 2 -type f | sort", dir);
    FILE *ls = popen(cmd, "r");
    if (!ls)
        die("popen", -errno);
    char line[512];
    while (fgets(line, sizeof line, ls)) {
        line[strcspn(line, "\n")] = '\0';
        const char *name = line + 2; /* past "./" */
        if (want && !strstr(name, want) && strcmp(name, KL_META_NAME) != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        uint8_t d[65536];
        size_t n = fread(d, 1, sizeof d, f);
        fclose(f);
        size_t nl = strlen(name);
        if (nl > 255 || at + 4 + nl + n > cap)
            die("pack: too large", -ENOBUFS);
        out[at++] = (uint8_t)flags;
        out[at++] = (uint8_t)nl;
        memcpy(out + at, name, nl);
        at += nl;
        out[at++] = (uint8_t)(n & 0xff);
        out[at++] = (uint8_t)(n >> 8);
        memcpy(out + at, d, n);
        at += n;
    }
    pclose(ls);
    return at;
}

static void must(int rc, const char *what, const char *err)
{
    if (rc < 0) {
        fprintf(stderr, "fuzz_seeds: %s: %s (%s)\n", what, klog_err_name(rc), err ? err : "");
        exit(1);
    }
}

static void produce(klog *k, const char *topic, int n, int keys)
{
    char err[256] = "";
    klog_conf *pc = NULL;
    must(klog_conf_new(&pc), "conf", NULL);
    must(klog_conf_set(pc, "acks", "all", err, sizeof err), "acks", err);
    klog_producer *p = NULL;
    must(klog_producer_new(k, pc, &p, err, sizeof err), "producer", err);
    klog_conf_free(pc);
    for (int i = 0; i < n; i++) {
        char key[16], val[64];
        snprintf(key, sizeof key, "k%d", i % keys);
        snprintf(val, sizeof val, "v%d-%040d", i, i);
        klog_header h = { "h", 1, "x", 1 };
        klog_record r = KLOG_RECORD_INIT;
        r.partition = 0;
        r.key = key;
        r.key_len = strlen(key);
        r.value = val;
        r.value_len = strlen(val);
        r.headers = (i % 4 == 0) ? &h : NULL;
        r.header_count = (i % 4 == 0) ? 1 : 0;
        must(klog_producer_send(p, topic, &r), "send", NULL);
        if (i % 3 == 2)
            must(klog_producer_flush(p, 10000), "flush", NULL);
    }
    must(klog_producer_flush(p, 10000), "flush", NULL);
    must(klog_producer_close(p), "producer close", NULL);
}

static void seeds_open(void)
{
    char dir[] = "/tmp/klog-fuzz-seeds-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", -errno);
    klog_conf *conf = NULL;
    char err[256] = "";
    must(klog_conf_new(&conf), "conf", NULL);
    must(klog_conf_set(conf, "io.backend", "posix", err, sizeof err), "io.backend", err);
    klog *k = NULL;
    must(klog_open(&k, dir, conf, err, sizeof err), "klog_open", err);
    klog_conf *tc = NULL;
    must(klog_conf_new(&tc), "conf", NULL);
    must(klog_conf_set(tc, "segment.bytes", "1024", err, sizeof err), "segment.bytes", err);
    must(klog_topic_create(k, "t", 1, tc, err, sizeof err), "topic t", err);
    must(klog_conf_set(tc, "cleanup.policy", "compact", err, sizeof err), "cleanup.policy", err);
    must(klog_topic_create(k, "c", 1, tc, err, sizeof err), "topic c", err);
    klog_conf_free(tc);
    produce(k, "t", 30, 30); /* three segments */
    produce(k, "c", 9, 3);
    int rc = klog_group_reset_offsets(k, "g", "t", 0, KLOG_RESET_OFFSET, 5);
    must(rc, "group reset", NULL);
    must(klog_close(k), "klog_close", NULL);
    /* A leader-epoch-checkpoint as Kafka writes it (klog writes one when a
     * replica leads; a single instance has none). */
    char path[512];
    snprintf(path, sizeof path, "%s/t-0/%s", dir, KL_EPOCH_NAME);
    FILE *ef = fopen(path, "w");
    if (!ef || fputs("0\n2\n0 0\n1 10\n", ef) < 0 || fclose(ef) != 0)
        die(path, -errno);
    /* And once more, so that the open path's checkpoints are written too. */
    must(klog_open(&k, dir, conf, err, sizeof err), "klog_open again", err);
    must(klog_close(k), "klog_close", NULL);
    klog_conf_free(conf);

    static uint8_t buf[1 << 16];
    size_t n = pack(dir, buf, sizeof buf, 0, "t-0/");
    put("open-topic-t", buf, n, NULL, 0);
    n = pack(dir, buf, sizeof buf, 1, "t-0/");
    put("open-topic-t-reseal", buf, n, NULL, 0);
    n = pack(dir, buf, sizeof buf, 0, "c-0/");
    put("open-compacted", buf, n, NULL, 0);
    n = pack(dir, buf, sizeof buf, 0, "__consumer_offsets");
    put("open-group", buf, n, NULL, 0);
    n = pack(dir, buf, sizeof buf, 0, NULL);
    if (n > 16384)
        fprintf(stderr, "fuzz_seeds: open-all is %zu bytes\n", n);
    put("open-all", buf, n, NULL, 0);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_seeds batch|layout|conf|open DIR\n");
        return 2;
    }
    out_dir = argv[2];
    mkdir(out_dir, 0755);
    if (!strcmp(argv[1], "batch"))
        seeds_batch();
    else if (!strcmp(argv[1], "layout"))
        seeds_layout();
    else if (!strcmp(argv[1], "conf"))
        seeds_conf();
    else if (!strcmp(argv[1], "open"))
        seeds_open();
    else
        return fprintf(stderr, "fuzz_seeds: unknown kind %s\n", argv[1]), 2;
    return 0;
}
