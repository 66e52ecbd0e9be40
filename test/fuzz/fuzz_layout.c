/*
 * test/fuzz/fuzz_layout.c - libFuzzer target over lib/storage/layout.c,
 * the decoders of the small files beside the segments: .index and
 * .timeindex, recovery.ckpt and cleaner.ckpt, leader-epoch-checkpoint,
 * topics.meta and segment file names (what klog_open, `klog dump` and
 * `klog verify` read from a data directory that may be damaged).
 *
 * Input: one control byte, then the file.  Control bits 0-2 pick the
 * decoder; bit 3 reseals the file's checksum first (through the library's
 * own encoder), so that the fuzzer gets past the checksum into what it
 * guards.  Properties (abort() = a finding):
 *
 *   - every decoder returns one of its documented results;
 *   - an index decoded KL_IX_OK has exactly count entries in the file, all
 *     readable; resealed with a count that fits, it decodes KL_IX_OK;
 *   - a checkpoint resealed with non-negative values decodes;
 *   - parsed epochs strictly increase in epoch and start offset, >= 0;
 *   - parsed topics.meta topics have a name without spaces and >= 1
 *     partition; every override has a non-empty key;
 *   - a parsed segment name prints back to itself.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/error.h>

#include "storage/layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_layout: %s:%d: %s\n", __FILE__, __LINE__, #c);   \
            abort();                                                               \
        }                                                                          \
    } while (0)

static void index_file(const uint8_t *f, size_t len, uint32_t magic, bool reseal)
{
    uint8_t *copy = NULL;
    kl_ix_hdr h;
    const size_t es = kl_ix_esize(magic);
    if (reseal && len >= KL_IX_HDR_SIZE) {
        /* The stored fields, with a count that fits the file and the right
         * version, entry size and sum: the entries are then what is read. */
        (void)kl_ix_decode(f, len, magic, &h);
        h.magic = magic;
        size_t count = (len - KL_IX_HDR_SIZE) / es;
        h.count = (uint32_t)count;
        copy = malloc(KL_IX_HDR_SIZE + count * es);
        CHECK(copy);
        size_t n = kl_ix_encode(copy, &h, f + KL_IX_HDR_SIZE);
        CHECK(n == KL_IX_HDR_SIZE + count * es);
        CHECK(kl_ix_decode(copy, n, magic, &h) == KL_IX_OK);
        f = copy;
        len = n;
    }
    enum kl_ix_status st = kl_ix_decode(f, len, magic, &h);
    CHECK(st >= KL_IX_OK && st <= KL_IX_BAD_CHECKSUM);
    if (st == KL_IX_OK) {
        CHECK(h.esize == es && KL_IX_HDR_SIZE + (size_t)h.count * es == len);
        int64_t sum = 0;
        for (size_t i = 0; i < h.count; i++) {
            kl_tentry e;
            kl_ix_entry(f, magic, i, &e);
            sum += e.rel + e.pos;
        }
        (void)sum;
        kl_ix_hdr other = h;
        CHECK(kl_ix_same_state(&h, &other));
    }
    free(copy);
}

static void ckpt_file(const uint8_t *f, size_t len, uint32_t magic, bool reseal)
{
    kl_ckpt c;
    int rc = kl_ckpt_decode(f, len, magic, &c);
    CHECK(rc == 0 || rc == KLOG_ECORRUPT);
    if (rc == 0)
        CHECK(c.a >= 0 && c.b >= 0 && c.magic == magic && len == KL_CKPT_SIZE);
    if (reseal) {
        uint8_t out[KL_CKPT_SIZE];
        kl_ckpt_encode(out, magic, c.a, c.b);
        kl_ckpt d;
        rc = kl_ckpt_decode(out, sizeof out, magic, &d);
        CHECK(rc == ((c.a >= 0 && c.b >= 0) ? 0 : KLOG_ECORRUPT));
        CHECK(d.a == c.a && d.b == c.b);
    }
}

static void epochs_file(const uint8_t *f, size_t len)
{
    kl_epoch_entry *e = NULL;
    size_t n = 99;
    char err[128];
    int rc = kl_epochs_parse((const char *)f, len, &e, &n, err, sizeof err);
    CHECK(rc == 0 || rc == KLOG_ECORRUPT || rc == KLOG_EFORMAT || rc == -ENOMEM);
    if (rc < 0) {
        CHECK(e == NULL && n == 0);
        return;
    }
    CHECK((n == 0) == (e == NULL));
    for (size_t i = 0; i < n; i++) {
        CHECK(e[i].epoch >= 0 && e[i].start_offset >= 0);
        if (i > 0)
            CHECK(e[i].epoch > e[i - 1].epoch && e[i].start_offset > e[i - 1].start_offset);
    }
    free(e);
}

static void meta_file(const uint8_t *f, size_t len, bool reseal)
{
    char *copy = NULL;
    if (reseal) {
        /* The input as the body under the head line, sealed. */
        const size_t hl = sizeof KL_META_HEAD - 1;
        size_t cap = hl + len + 1 + 32;
        copy = malloc(cap);
        CHECK(copy);
        memcpy(copy, KL_META_HEAD, hl);
        memcpy(copy + hl, f, len);
        size_t body = hl + len;
        if (body > 0 && copy[body - 1] != '\n')
            copy[body++] = '\n';
        size_t n = kl_meta_seal(copy, body, cap);
        CHECK(n < cap);
        f = (const uint8_t *)copy;
        len = n;
    }
    size_t body;
    int rc = kl_meta_check((const char *)f, len, &body);
    CHECK(rc == 0 || rc == KLOG_ECORRUPT);
    if (rc == 0)
        CHECK(body <= len);
    kl_meta m;
    char err[128];
    rc = kl_meta_parse((const char *)f, len, &m, err, sizeof err);
    CHECK(rc == 0 || rc == KLOG_ECORRUPT || rc == -ENOMEM);
    if (rc == 0) {
        for (size_t i = 0; i < m.ntopics; i++) {
            const kl_meta_topic *t = &m.topics[i];
            CHECK(t->name && t->name[0] && !strchr(t->name, ' ') && t->partitions >= 1);
            for (size_t k = 0; k < t->nkv; k++)
                CHECK(t->kv[k].key && t->kv[k].key[0] && t->kv[k].value);
        }
    } else {
        CHECK(m.ntopics == 0 && m.topics == NULL && m.text == NULL);
    }
    kl_meta_free(&m);
    free(copy);
}

static void name(const uint8_t *f, size_t len)
{
    static const char *const sfx[] = { ".log", ".index", ".timeindex", ".log.swap", ".log.cleaned" };
    char s[KL_NAME_MAX + 8];
    size_t n = len < KL_NAME_MAX ? len : KL_NAME_MAX;
    memcpy(s, f, n);
    s[n] = '\0';
    for (size_t i = 0; i < sizeof sfx / sizeof *sfx; i++) {
        int64_t base = -1;
        if (kl_segment_name_parse(s, sfx[i], &base)) {
            CHECK(base >= 0);
            char back[KL_NAME_MAX];
            kl_segment_name(back, sizeof back, base, sfx[i]);
            CHECK(strcmp(back, s) == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const unsigned ctl = data[0];
    const bool reseal = ctl & 8;
    /* A copy of exactly the file's size, so that ASan sees any read past it. */
    size_t len = size - 1;
    uint8_t *f = malloc(len ? len : 1);
    CHECK(f);
    memcpy(f, data + 1, len);
    switch (ctl & 7) {
    case 0: index_file(f, len, KL_IX_MAGIC_OFFSET, reseal); break;
    case 1: index_file(f, len, KL_IX_MAGIC_TIME, reseal); break;
    case 2: ckpt_file(f, len, KL_CKPT_MAGIC_RECOVERY, reseal); break;
    case 3: ckpt_file(f, len, KL_CKPT_MAGIC_CLEANER, reseal); break;
    case 4: epochs_file(f, len); break;
    case 5: meta_file(f, len, reseal); break;
    default: name(f, len); break;
    }
    free(f);
    return 0;
}
