/*
 * test/storage/layout.c - lib/storage/layout.h: the index, checkpoint,
 * leader-epoch-checkpoint and topics.meta layouts and segment names, as pure functions (good files
 * round-trip, every kind of damage is named) and against what the library
 * itself writes and reads (a log's index files and checkpoint, an
 * instance's topics.meta), so that the tools, which read these files only
 * through layout.h, see exactly what the library sees.
 */
#include <klog/klog.h>
#include <xxhash.h>

#include "common/common.h"
#include "storage/internal.h"
#include "storage/layout.h"
#include "util.h"

TestSuite(layout, .init = tu_setup, .fini = tu_teardown, .timeout = 60);

/* ---- index files ------------------------------------------------------------ */

static kl_ix_hdr sample_hdr(uint32_t magic, uint32_t count)
{
    return (kl_ix_hdr){ .magic = magic, .base = 1000, .seg_size = 123456, .next_offset = 1777,
                        .first_ts = 1700000000000, .max_ts = 1700000009999, .count = count };
}

Test(layout, index_round_trip)
{
    kl_oentry oe[3] = { { 0, 0 }, { 40, 4096 }, { 90, 9000 } };
    kl_tentry te[2] = { { 1700000000000, 0, 0 }, { 1700000005000, 50, 5000 } };
    uint8_t ob[KL_IX_HDR_SIZE + sizeof oe], tb[KL_IX_HDR_SIZE + sizeof te];
    kl_ix_hdr oh = sample_hdr(KL_IX_MAGIC_OFFSET, 3), th = sample_hdr(KL_IX_MAGIC_TIME, 2);
    oh.version = 77; /* ignored: the encoder writes the layout's own */
    cr_assert_eq(kl_ix_encode(ob, &oh, oe), sizeof ob);
    cr_assert_eq(kl_ix_encode(tb, &th, te), sizeof tb);
    cr_assert_eq(memcmp(ob, "KOIX", 4), 0);
    cr_assert_eq(memcmp(tb, "KTIX", 4), 0);

    kl_ix_hdr h;
    cr_assert_eq(kl_ix_decode(ob, sizeof ob, KL_IX_MAGIC_OFFSET, &h), KL_IX_OK);
    cr_assert_eq(h.version, KL_IX_VERSION);
    cr_assert_eq(h.esize, 8);
    cr_assert_eq(h.base, 1000);
    cr_assert_eq(h.seg_size, 123456);
    cr_assert_eq(h.next_offset, 1777);
    cr_assert_eq(h.first_ts, 1700000000000);
    cr_assert_eq(h.max_ts, 1700000009999);
    cr_assert_eq(h.count, 3);
    for (size_t i = 0; i < 3; i++) {
        kl_tentry e;
        kl_ix_entry(ob, KL_IX_MAGIC_OFFSET, i, &e);
        cr_assert(e.ts == 0 && e.rel == oe[i].rel && e.pos == oe[i].pos, "offset entry %zu", i);
    }
    kl_ix_hdr h2;
    cr_assert_eq(kl_ix_decode(tb, sizeof tb, KL_IX_MAGIC_TIME, &h2), KL_IX_OK);
    cr_assert_eq(h2.esize, 16);
    for (size_t i = 0; i < 2; i++) {
        kl_tentry e;
        kl_ix_entry(tb, KL_IX_MAGIC_TIME, i, &e);
        cr_assert(e.ts == te[i].ts && e.rel == te[i].rel && e.pos == te[i].pos, "time entry %zu", i);
    }
    cr_assert(kl_ix_same_state(&h, &h2));
    h2.max_ts++;
    cr_assert(!kl_ix_same_state(&h, &h2));

    /* an empty index (a segment with no batch yet) is whole too */
    uint8_t eb[KL_IX_HDR_SIZE];
    kl_ix_hdr e0 = sample_hdr(KL_IX_MAGIC_OFFSET, 0);
    cr_assert_eq(kl_ix_encode(eb, &e0, NULL), sizeof eb);
    cr_assert_eq(kl_ix_decode(eb, sizeof eb, KL_IX_MAGIC_OFFSET, &h), KL_IX_OK);
    cr_assert_eq(h.count, 0);
}

Test(layout, index_damage_is_named)
{
    kl_oentry oe[4] = { { 0, 0 }, { 10, 100 }, { 20, 200 }, { 30, 300 } };
    uint8_t good[KL_IX_HDR_SIZE + sizeof oe], b[sizeof good + 8];
    kl_ix_hdr oh = sample_hdr(KL_IX_MAGIC_OFFSET, 4), h;
    kl_ix_encode(good, &oh, oe);

    cr_assert_eq(kl_ix_decode(good, KL_IX_HDR_SIZE - 1, KL_IX_MAGIC_OFFSET, &h), KL_IX_SHORT);
    cr_assert_eq(h.magic, 0, "a short file leaves the header zeroed");
    /* an offset index is not a time index, and no magic is neither */
    cr_assert_eq(kl_ix_decode(good, sizeof good, KL_IX_MAGIC_TIME, &h), KL_IX_BAD_MAGIC);
    cr_assert_eq(h.magic, KL_IX_MAGIC_OFFSET, "the stored magic is reported");
    cr_assert_eq(kl_ix_decode(good, sizeof good, 0x12345678u, &h), KL_IX_BAD_MAGIC);

    memcpy(b, good, sizeof good);
    klog__st16(b + 4, 2);
    cr_assert_eq(kl_ix_decode(b, sizeof good, KL_IX_MAGIC_OFFSET, &h), KL_IX_BAD_VERSION);
    cr_assert_eq(h.version, 2);

    memcpy(b, good, sizeof good);
    klog__st16(b + 6, 16);
    cr_assert_eq(kl_ix_decode(b, sizeof good, KL_IX_MAGIC_OFFSET, &h), KL_IX_BAD_ESIZE);

    /* a file cut inside its entries, or longer than its count says */
    cr_assert_eq(kl_ix_decode(good, sizeof good - 8, KL_IX_MAGIC_OFFSET, &h), KL_IX_BAD_LENGTH);
    cr_assert_eq(kl_ix_decode(good, sizeof good - 1, KL_IX_MAGIC_OFFSET, &h), KL_IX_BAD_LENGTH);
    memcpy(b, good, sizeof good);
    memset(b + sizeof good, 0, 8);
    cr_assert_eq(kl_ix_decode(b, sizeof good + 8, KL_IX_MAGIC_OFFSET, &h), KL_IX_BAD_LENGTH);
    /* a count so large that count * esize would not fit the file */
    memcpy(b, good, sizeof good);
    klog__st32(b + 48, UINT32_MAX);
    cr_assert_eq(kl_ix_decode(b, sizeof good, KL_IX_MAGIC_OFFSET, &h), KL_IX_BAD_LENGTH);

    /* every byte the checksum covers is covered: header and entries */
    for (size_t off = 8; off < sizeof good; off++) {
        if (off >= 48 && off < 52)
            continue; /* the count: a length problem first */
        memcpy(b, good, sizeof good);
        b[off] ^= 0x10;
        enum kl_ix_status st = kl_ix_decode(b, sizeof good, KL_IX_MAGIC_OFFSET, &h);
        cr_assert_eq(st, KL_IX_BAD_CHECKSUM, "byte %zu flipped: status %d", off, st);
    }
}

/* ---- checkpoints --------------------------------------------------------------- */

Test(layout, checkpoint_round_trip_and_damage)
{
    uint8_t b[KL_CKPT_SIZE + 1];
    kl_ckpt c;
    kl_ckpt_encode(b, KL_CKPT_MAGIC_RECOVERY, 4242, 17);
    cr_assert_eq(memcmp(b, "KCKP", 4), 0);
    cr_assert_eq(kl_ckpt_decode(b, KL_CKPT_SIZE, KL_CKPT_MAGIC_RECOVERY, &c), 0);
    cr_assert(c.magic == KL_CKPT_MAGIC_RECOVERY && c.version == KL_CKPT_VERSION && c.a == 4242 && c.b == 17);

    /* the other kind, a wrong length, a flipped byte: damage, fields kept */
    cr_assert_eq(kl_ckpt_decode(b, KL_CKPT_SIZE, KL_CKPT_MAGIC_CLEANER, &c), KLOG_ECORRUPT);
    cr_assert_eq(c.a, 4242, "fields are decoded for a tool to print");
    cr_assert_eq(kl_ckpt_decode(b, KL_CKPT_SIZE - 1, KL_CKPT_MAGIC_RECOVERY, &c), KLOG_ECORRUPT);
    b[KL_CKPT_SIZE] = 0;
    cr_assert_eq(kl_ckpt_decode(b, KL_CKPT_SIZE + 1, KL_CKPT_MAGIC_RECOVERY, &c), KLOG_ECORRUPT);
    cr_assert_eq(kl_ckpt_decode(b, 23, KL_CKPT_MAGIC_RECOVERY, &c), KLOG_ECORRUPT);
    cr_assert(c.magic == 0 && c.a == 0 && c.b == 0, "too short to show anything");
    for (size_t off = 0; off < KL_CKPT_SIZE; off++) {
        uint8_t d[KL_CKPT_SIZE];
        memcpy(d, b, sizeof d);
        d[off] ^= 0x01;
        cr_assert_eq(kl_ckpt_decode(d, sizeof d, KL_CKPT_MAGIC_RECOVERY, &c), KLOG_ECORRUPT, "byte %zu", off);
    }
    /* a version from the future, with a right checksum */
    uint8_t v[KL_CKPT_SIZE];
    kl_ckpt_encode(v, KL_CKPT_MAGIC_CLEANER, 1, 2);
    klog__st32(v + 4, 2);
    klog__st64(v + 24, XXH3_64bits(v, 24));
    cr_assert_eq(kl_ckpt_decode(v, sizeof v, KL_CKPT_MAGIC_CLEANER, &c), KLOG_ECORRUPT);
    /* values must not be negative, even with a right checksum */
    kl_ckpt_encode(v, KL_CKPT_MAGIC_CLEANER, -1, 2);
    cr_assert_eq(kl_ckpt_decode(v, sizeof v, KL_CKPT_MAGIC_CLEANER, &c), KLOG_ECORRUPT);
    kl_ckpt_encode(v, KL_CKPT_MAGIC_CLEANER, 1, INT64_MIN);
    cr_assert_eq(kl_ckpt_decode(v, sizeof v, KL_CKPT_MAGIC_CLEANER, &c), KLOG_ECORRUPT);
    kl_ckpt_encode(v, KL_CKPT_MAGIC_CLEANER, 0, INT64_MAX);
    cr_assert_eq(kl_ckpt_decode(v, sizeof v, KL_CKPT_MAGIC_CLEANER, &c), 0);
}

/* ---- topics.meta ---------------------------------------------------------------- */

/* Seal body (which starts with the head line) into out; returns the length. */
static size_t seal(char *out, size_t cap, const char *body)
{
    size_t len = strlen(body);
    cr_assert_lt(len, cap);
    memcpy(out, body, len);
    size_t n = kl_meta_seal(out, len, cap);
    cr_assert_lt(n, cap);
    return n;
}

Test(layout, meta_parse_good)
{
    char buf[4096];
    size_t n = seal(buf, sizeof buf,
                    KL_META_HEAD "topic events 3\n  retention.ms=86400000\n  cleanup.policy=compact\n"
                                 "\n"
                                 "topic a.b_c-d 1\n"
                                 "topic last 10000\n  segment.bytes=1048576\n  x.y=with=equals and spaces\n");
    /* bytes after the end line are not the file's */
    memcpy(buf + n, "garbage", 7);
    kl_meta m;
    char err[256] = "";
    cr_assert_eq(kl_meta_parse(buf, n + 7, &m, err, sizeof err), 0, "%s", err);
    cr_assert_eq(m.ntopics, 3);
    cr_assert_str_eq(m.topics[0].name, "events");
    cr_assert_eq(m.topics[0].partitions, 3);
    cr_assert_eq(m.topics[0].nkv, 2);
    cr_assert_str_eq(m.topics[0].kv[0].key, "retention.ms");
    cr_assert_str_eq(m.topics[0].kv[0].value, "86400000");
    cr_assert_str_eq(m.topics[0].kv[1].key, "cleanup.policy");
    cr_assert_str_eq(m.topics[0].kv[1].value, "compact");
    cr_assert_str_eq(m.topics[1].name, "a.b_c-d");
    cr_assert_eq(m.topics[1].partitions, 1);
    cr_assert_eq(m.topics[1].nkv, 0);
    cr_assert_null(m.topics[1].kv);
    cr_assert_eq(m.topics[2].partitions, 10000);
    cr_assert_eq(m.topics[2].nkv, 2);
    cr_assert_str_eq(m.topics[2].kv[1].key, "x.y");
    cr_assert_str_eq(m.topics[2].kv[1].value, "with=equals and spaces");
    kl_meta_free(&m);
    kl_meta_free(&m); /* twice: a freed kl_meta is empty */
    kl_meta_free(NULL);

    /* no topics at all */
    n = seal(buf, sizeof buf, KL_META_HEAD);
    cr_assert_eq(kl_meta_parse(buf, n, &m, err, sizeof err), 0, "%s", err);
    cr_assert_eq(m.ntopics, 0);
    kl_meta_free(&m);
}

/* Enough topics and overrides that every array grows (and moves) while it
 * is parsed: each topic's kv must still point at its own overrides. */
Test(layout, meta_parse_many)
{
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    len += (size_t)snprintf(buf + len, cap - len, KL_META_HEAD);
    for (int t = 0; t < 100; t++) {
        len += (size_t)snprintf(buf + len, cap - len, "topic t%d %d\n", t, t + 1);
        for (int k = 0; k < t % 7; k++)
            len += (size_t)snprintf(buf + len, cap - len, "  k%d.%d=v%d\n", t, k, t * 100 + k);
    }
    len = kl_meta_seal(buf, len, cap);
    cr_assert_lt(len, cap);
    kl_meta m;
    char err[256] = "";
    cr_assert_eq(kl_meta_parse(buf, len, &m, err, sizeof err), 0, "%s", err);
    cr_assert_eq(m.ntopics, 100);
    for (int t = 0; t < 100; t++) {
        char want[64];
        snprintf(want, sizeof want, "t%d", t);
        cr_assert_str_eq(m.topics[t].name, want);
        cr_assert_eq(m.topics[t].partitions, t + 1);
        cr_assert_eq(m.topics[t].nkv, (size_t)(t % 7));
        for (int k = 0; k < t % 7; k++) {
            snprintf(want, sizeof want, "k%d.%d", t, k);
            cr_assert_str_eq(m.topics[t].kv[k].key, want);
            snprintf(want, sizeof want, "v%d", t * 100 + k);
            cr_assert_str_eq(m.topics[t].kv[k].value, want);
        }
    }
    kl_meta_free(&m);
    free(buf);
}

Test(layout, meta_bad_lines_are_refused)
{
    static const char *const bad[] = {
        "topic events\n",             /* no partition count */
        "topic events 0\n",           /* no partitions */
        "topic events -1\n",
        "topic events 3abc\n",
        "topic events 3 4\n",
        "topic events 2147483648\n",  /* past int */
        "topic  3\n",                 /* empty name */
        "topic events  3\n",          /* two spaces: the count is not a number */
        "  retention.ms=1\n",         /* an override before any topic */
        "topic events 1\n  retention.ms\n",  /* no '=' */
        "topic events 1\n  =1\n",            /* empty key */
        "topic events 1\n retention.ms=1\n", /* one space */
        "topic events 1\nhello\n",
        "klog-topics 1\n",            /* the head line twice */
    };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(bad); i++) {
        char body[512], buf[1024], err[256] = "";
        snprintf(body, sizeof body, "%s%s", KL_META_HEAD, bad[i]);
        size_t n = seal(buf, sizeof buf, body);
        size_t blen;
        cr_assert_eq(kl_meta_check(buf, n, &blen), 0, "case %zu: sealed, so the checksum is right", i);
        kl_meta m;
        cr_assert_eq(kl_meta_parse(buf, n, &m, err, sizeof err), KLOG_ECORRUPT, "case %zu: %s", i, bad[i]);
        cr_assert(strstr(err, "bad line \"") != NULL, "case %zu: %s", i, err);
        cr_assert_eq(m.ntopics, 0);
        cr_assert_null(m.topics);
        kl_meta_free(&m);
    }
}

Test(layout, meta_checksum_and_framing)
{
    char buf[1024], err[256];
    const char *body = KL_META_HEAD "topic events 2\n  retention.ms=5\n";
    size_t n = seal(buf, sizeof buf, body), blen = 0;
    cr_assert_eq(kl_meta_check(buf, n, &blen), 0);
    cr_assert_eq(blen, strlen(body), "the checksum covers everything before \"end\"");
    cr_assert_eq(buf[n - 1], '\n');
    /* upper-case digits are the same number */
    char up[1024];
    memcpy(up, buf, n);
    for (size_t i = blen + 4; i < n; i++)
        if (up[i] >= 'a' && up[i] <= 'f')
            up[i] = (char)(up[i] - 'a' + 'A');
    cr_assert_eq(kl_meta_check(up, n, &blen), 0);

    kl_meta m;
    /* any byte changed before the end line */
    for (size_t i = 0; i < strlen(body); i++) {
        char d[1024];
        memcpy(d, buf, n);
        d[i] ^= 0x01;
        cr_assert_eq(kl_meta_check(d, n, &blen), KLOG_ECORRUPT, "byte %zu", i);
        cr_assert_eq(kl_meta_parse(d, n, &m, err, sizeof err), KLOG_ECORRUPT);
        cr_assert(strstr(err, "damaged topic metadata") != NULL, "%s", err);
    }
    /* the end line cut, missing its newline, or with too few digits */
    cr_assert_eq(kl_meta_check(buf, n - 1, &blen), KLOG_ECORRUPT);
    cr_assert_eq(kl_meta_check(buf, n - 2, &blen), KLOG_ECORRUPT);
    cr_assert_eq(kl_meta_check(buf, strlen(body), &blen), KLOG_ECORRUPT);
    char d[1024];
    memcpy(d, buf, n);
    d[n - 2] = 'g';
    cr_assert_eq(kl_meta_check(d, n, &blen), KLOG_ECORRUPT);
    /* no head line */
    size_t m2 = seal(d, sizeof d, "klog-topics 2\ntopic events 2\n");
    cr_assert_eq(kl_meta_check(d, m2, &blen), KLOG_ECORRUPT);
    cr_assert_eq(kl_meta_check("", 0, &blen), KLOG_ECORRUPT);

    /* sealing into a buffer too small says so, without writing past it */
    char small[40];
    memset(small, 'x', sizeof small);
    memcpy(small, KL_META_HEAD, strlen(KL_META_HEAD));
    size_t need = kl_meta_seal(small, strlen(KL_META_HEAD), 30);
    cr_assert_geq(need, 30);
    cr_assert_eq(small[35], 'x');
    cr_assert_geq(kl_meta_seal(small, 30, 30), 30);
}

/* ---- segment names ---------------------------------------------------------------- */

/* ---- leader-epoch-checkpoint ------------------------------------------------ */

Test(layout, epochs_parse_good_and_damaged)
{
    kl_epoch_entry *e = NULL;
    size_t n = 99;
    char why[256];
    /* Kafka's text, CRLF, blanks, a duplicated start (the later epoch stays) */
    const char *good = "0\r\n4\n0 0\n2\t\t10  \n3 10\n7 25\n";
    cr_assert_eq(kl_epochs_parse(good, strlen(good), &e, &n, why, sizeof why), 0, "%s", why);
    cr_assert_eq(n, 3);
    cr_assert(e[0].epoch == 0 && e[0].start_offset == 0);
    cr_assert(e[1].epoch == 3 && e[1].start_offset == 10);
    cr_assert(e[2].epoch == 7 && e[2].start_offset == 25);
    free(e);
    cr_assert_eq(kl_epochs_parse("", 0, &e, &n, why, sizeof why), 0, "an empty file is no entries");
    cr_assert_eq(n, 0);
    cr_assert_null(e);
    cr_assert_eq(kl_epochs_parse("0\n0\n", 4, &e, &n, NULL, 0), 0);
    cr_assert_eq(n, 0);

    static const struct { const char *text; int rc; const char *why; } bad[] = {
        { "x\n", KLOG_ECORRUPT, "line 1: not a version number" },
        { "1\n0\n", KLOG_EFORMAT, "line 1: version 1 (only 0 is known)" },
        { "0\n-1\n", KLOG_ECORRUPT, "line 2: not an entry count" },
        { "0\n9\n0 0\n", KLOG_ECORRUPT, "line 2: 9 entries claimed" },
        { "0\n2\n0 0\n", KLOG_ECORRUPT, "line 2: 2 entries claimed" },
        { "0\n2\n0 0\n10 5", KLOG_ECORRUPT, "line 4: not \"epoch start_offset\"" },
        { "0\n2\n0 0\n 1 5\n", KLOG_ECORRUPT, "line 4: not" },
        { "0\n1\n-1 0\n", KLOG_ECORRUPT, "line 3: negative" },
        { "0\n2\n3 0\n1 1\n", KLOG_ECORRUPT, "line 4: epoch 1 at 1 after epoch 3 at 0" },
        { "0\n2\n1 8\n3 7\n", KLOG_ECORRUPT, "line 4: epoch 3 at 7 after epoch 1 at 8" },
        { "0\n1\n0 0\n1 1\n", KLOG_ECORRUPT, "line 4: more lines than the count (1)" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e = (kl_epoch_entry *)1;
        n = 99;
        int rc = kl_epochs_parse(bad[i].text, strlen(bad[i].text), &e, &n, why, sizeof why);
        cr_assert_eq(rc, bad[i].rc, "case %zu: %d", i, rc);
        cr_assert_null(e, "case %zu", i);
        cr_assert_eq(n, 0, "case %zu", i);
        cr_assert(strncmp(why, bad[i].why, strlen(bad[i].why)) == 0, "case %zu: \"%s\", expected \"%s...\"", i,
                  why, bad[i].why);
    }
}

Test(layout, segment_names)
{
    char name[KL_NAME_MAX];
    int64_t base = -1;
    kl_segment_name(name, sizeof name, 1234, ".timeindex");
    cr_assert_str_eq(name, "00000000000000001234.timeindex");
    cr_assert(kl_segment_name_parse(name, ".timeindex", &base));
    cr_assert_eq(base, 1234);
    cr_assert(!kl_segment_name_parse(name, ".index", &base));
    kl_segment_name(name, sizeof name, INT64_MAX, ".log");
    cr_assert(kl_segment_name_parse(name, ".log", &base));
    cr_assert_eq(base, INT64_MAX);
    cr_assert(!kl_segment_name_parse("09223372036854775808.log", ".log", &base), "INT64_MAX + 1");
    cr_assert(!kl_segment_name_parse("0000000000000001234.log", ".log", &base), "19 digits");
    cr_assert(!kl_segment_name_parse("000000000000000001234.log", ".log", &base), "21 digits");
    cr_assert(!kl_segment_name_parse("0000000000000000123x.log", ".log", &base));
    cr_assert(!kl_segment_name_parse("99999999999999999999.log", ".log", &base), "past int64");
    cr_assert(!kl_segment_name_parse("00000000000000000000.log.swap", ".log", &base));
    cr_assert(kl_segment_name_parse("00000000000000000007.log.swap", ".log.swap", &base));
    cr_assert_eq(base, 7);
    /* the library's names are these */
    char ks[KS_NAME_MAX];
    ks_segment_name(ks, sizeof ks, 99, ".index");
    kl_segment_name(name, sizeof name, 99, ".index");
    cr_assert_str_eq(ks, name);
    cr_assert_eq(KS_NAME_MAX, KL_NAME_MAX);
    cr_assert_str_eq(KS_CKPT_NAME, KL_CKPT_RECOVERY_NAME);
    cr_assert_str_eq(KS_CLEANER_CKPT_NAME, KL_CKPT_CLEANER_NAME);
}

/* ---- what the library writes ------------------------------------------------------ */

/* A log of several sealed segments, closed: every file it left decodes
 * with layout.h and agrees with the segments; re-encoding gives the same
 * bytes. */
Test(layout, library_files_decode)
{
    ks_log_config cfg = tu_small_cfg(KS_DURABILITY_NONE);
    ks_log *log = tu_log_open(tu_io, tu_dir, &cfg);
    while (ks_log_segment_count(log) < 4)
        tu_append_seq(log, 5, 0);
    int64_t end = ks_log_end_offset(log);
    tu_log_close(log);

    tu_name logs[64];
    size_t nlogs = tu_list(tu_dir, ".log", logs, 64);
    cr_assert_geq(nlogs, 4);
    size_t checked = 0;
    for (size_t i = 0; i < nlogs; i++) {
        int64_t base;
        cr_assert(kl_segment_name_parse(logs[i], ".log", &base), "%s", logs[i]);
        char lp[TU_PATH], op[TU_PATH], tp[TU_PATH], name[KL_NAME_MAX];
        tu_path(lp, tu_dir, logs[i]);
        kl_segment_name(name, sizeof name, base, ".index");
        tu_path(op, tu_dir, name);
        kl_segment_name(name, sizeof name, base, ".timeindex");
        tu_path(tp, tu_dir, name);
        if (!tu_exists(op))
            continue; /* the active segment, at most */
        size_t llen, olen, tlen;
        uint8_t *lb = tu_slurp(lp, &llen), *ob = tu_slurp(op, &olen), *tb = tu_slurp(tp, &tlen);
        kl_ix_hdr oh, th;
        cr_assert_eq(kl_ix_decode(ob, olen, KL_IX_MAGIC_OFFSET, &oh), KL_IX_OK, "%s", op);
        cr_assert_eq(kl_ix_decode(tb, tlen, KL_IX_MAGIC_TIME, &th), KL_IX_OK, "%s", tp);
        cr_assert(kl_ix_same_state(&oh, &th));
        cr_assert_eq(oh.base, base);
        if (i + 1 < nlogs)
            cr_assert_geq(oh.count, 2, "%s: 256-byte interval, 4 KB segments: several entries", op);
        /* the segment's batches, as the header and entries describe them */
        size_t ei = 0;
        int64_t next = base, max_ts = -1, first_ts = -1;
        uint64_t pos = 0;
        while (pos < oh.seg_size) {
            kf_batch_info bi;
            ssize_t bl = kf_batch_parse(lb + pos, llen - pos, &bi);
            cr_assert_gt(bl, 0);
            kl_tentry e;
            if (ei < oh.count) {
                kl_ix_entry(ob, KL_IX_MAGIC_OFFSET, ei, &e);
                if (e.pos == pos) {
                    cr_assert_eq(base + e.rel, bi.base_offset, "%s entry %zu", op, ei);
                    ei++;
                }
            }
            if (first_ts < 0)
                first_ts = bi.max_timestamp;
            if (bi.max_timestamp > max_ts)
                max_ts = bi.max_timestamp;
            next = kf_batch_last_offset(&bi) + 1;
            pos += (uint64_t)bl;
        }
        cr_assert_eq(ei, oh.count, "%s: every entry names a batch start", op);
        cr_assert_eq(pos, oh.seg_size);
        cr_assert_leq(oh.seg_size, llen);
        cr_assert_eq(oh.next_offset, next);
        cr_assert_eq(oh.first_ts, first_ts);
        cr_assert_eq(oh.max_ts, max_ts);
        for (uint32_t k = 0; k < th.count; k++) {
            kl_tentry e;
            kl_ix_entry(tb, KL_IX_MAGIC_TIME, k, &e);
            cr_assert_lt(e.pos, oh.seg_size);
            cr_assert_leq(e.ts, max_ts);
        }
        /* the encoder writes what the library wrote */
        uint8_t *re = malloc(olen);
        cr_assert_not_null(re);
        cr_assert_eq(kl_ix_encode(re, &oh, ob + KL_IX_HDR_SIZE), olen);
        cr_assert_eq(memcmp(re, ob, olen), 0);
        free(re);
        free(lb);
        free(ob);
        free(tb);
        checked++;
    }
    cr_assert_geq(checked, 3);

    char cp[TU_PATH];
    tu_path(cp, tu_dir, KL_CKPT_RECOVERY_NAME);
    size_t clen;
    uint8_t *cb = tu_slurp(cp, &clen);
    kl_ckpt c;
    cr_assert_eq(kl_ckpt_decode(cb, clen, KL_CKPT_MAGIC_RECOVERY, &c), 0);
    cr_assert(c.a > 0 && c.a <= end, "recovery point %lld, end %lld", (long long)c.a, (long long)end);
    cr_assert_eq(c.b, 0, "log start");
    uint8_t re[KL_CKPT_SIZE];
    kl_ckpt_encode(re, KL_CKPT_MAGIC_RECOVERY, c.a, c.b);
    cr_assert_eq(memcmp(re, cb, KL_CKPT_SIZE), 0);
    free(cb);
}

/* What layout.h writes, the library reads: checkpoints of both kinds. */
Test(layout, library_reads_encoded_checkpoints)
{
    cr_assert_eq(mkdir(tu_dir, 0755), 0);
    uint8_t b[KL_CKPT_SIZE];
    char p[TU_PATH];
    kl_ckpt_encode(b, KL_CKPT_MAGIC_RECOVERY, 77, 5);
    tu_path(p, tu_dir, KL_CKPT_RECOVERY_NAME);
    tu_spit(p, b, sizeof b);
    kl_ckpt_encode(b, KL_CKPT_MAGIC_CLEANER, 40, 30);
    tu_path(p, tu_dir, KL_CKPT_CLEANER_NAME);
    tu_spit(p, b, sizeof b);
    int64_t x = -1, y = -1;
    cr_assert_eq(ks__ckpt_read(tu_io, tu_dir, &x, &y), 0);
    cr_assert(x == 77 && y == 5);
    cr_assert_eq(ks__cleaner_ckpt_read(tu_io, tu_dir, &x, &y), 0);
    cr_assert(x == 40 && y == 30);
    /* and refuses what layout.h refuses */
    kl_ckpt_encode(b, KL_CKPT_MAGIC_CLEANER, 1, 2); /* the wrong kind */
    tu_path(p, tu_dir, KL_CKPT_RECOVERY_NAME);
    tu_spit(p, b, sizeof b);
    cr_assert_eq(ks__ckpt_read(tu_io, tu_dir, &x, &y), KLOG_ECORRUPT);
    tu_spit(p, b, sizeof b - 1);
    cr_assert_eq(ks__ckpt_read(tu_io, tu_dir, &x, &y), KLOG_ECORRUPT);
}

/* ---- topics.meta, written and read by an instance ----------------------------------- */

static void write_meta(const char *dir, const char *body)
{
    char buf[4096], p[TU_PATH];
    size_t n = seal(buf, sizeof buf, body);
    tu_path(p, dir, KL_META_NAME);
    tu_spit(p, buf, n);
}

Test(layout, instance_meta_round_trip)
{
    klog *k = NULL;
    char err[256] = "";
    cr_assert_eq(klog_open(&k, tu_dir, NULL, err, sizeof err), 0, "%s", err);
    klog_conf *tc;
    cr_assert_eq(klog_conf_new(&tc), 0);
    cr_assert_eq(klog_conf_set(tc, "retention.ms", "3600000", NULL, 0), 0);
    cr_assert_eq(klog_conf_set(tc, "cleanup.policy", "compact", NULL, 0), 0);
    cr_assert_eq(klog_topic_create(k, "orders", 3, tc, err, sizeof err), 0, "%s", err);
    cr_assert_eq(klog_topic_create(k, "audit", 1, NULL, err, sizeof err), 0, "%s", err);
    klog_conf_free(tc);
    cr_assert_eq(klog_close(k), 0);

    /* what the instance wrote parses */
    char p[TU_PATH];
    tu_path(p, tu_dir, KL_META_NAME);
    size_t len;
    uint8_t *b = tu_slurp(p, &len);
    kl_meta m;
    cr_assert_eq(kl_meta_parse((const char *)b, len, &m, err, sizeof err), 0, "%s", err);
    free(b);
    cr_assert_eq(m.ntopics, 2);
    cr_assert_str_eq(m.topics[0].name, "audit");
    cr_assert_eq(m.topics[0].partitions, 1);
    cr_assert_eq(m.topics[0].nkv, 0);
    cr_assert_str_eq(m.topics[1].name, "orders");
    cr_assert_eq(m.topics[1].partitions, 3);
    bool ret = false, pol = false;
    for (size_t i = 0; i < m.topics[1].nkv; i++) {
        ret |= !strcmp(m.topics[1].kv[i].key, "retention.ms") && !strcmp(m.topics[1].kv[i].value, "3600000");
        pol |= !strcmp(m.topics[1].kv[i].key, "cleanup.policy") && !strcmp(m.topics[1].kv[i].value, "compact");
    }
    cr_assert(ret && pol, "orders' overrides are recorded");
    kl_meta_free(&m);

    /* what layout.h seals, the instance opens */
    write_meta(tu_dir, KL_META_HEAD "topic orders 3\n  retention.ms=7200000\n\ntopic audit 1\n");
    cr_assert_eq(klog_open(&k, tu_dir, NULL, err, sizeof err), 0, "%s", err);
    char conf[512] = "";
    cr_assert_eq(klog_topic_describe(k, "orders", NULL, 0, conf, sizeof conf), 3);
    cr_assert(strstr(conf, "retention.ms=7200000") != NULL, "%s", conf);
    cr_assert(strstr(conf, "cleanup.policy") == NULL, "%s", conf);
    cr_assert_eq(klog_topic_describe(k, "audit", NULL, 0, NULL, 0), 1);
    cr_assert_eq(klog_close(k), 0);
}

/* The instance refuses a sealed topics.meta whose lines are wrong: the
 * parser's rules, then the topic layer's own (names, partition bound, keys). */
Test(layout, instance_refuses_bad_meta)
{
    static const struct {
        const char *body, *why;
    } cases[] = {
        { KL_META_HEAD "topic orders\n", "bad line" },
        { KL_META_HEAD "  retention.ms=1\n", "bad line" },
        { KL_META_HEAD "topic bad/name 1\n", "bad topic" },
        { KL_META_HEAD "topic .. 1\n", "bad topic" },
        { KL_META_HEAD "topic orders 10001\n", "bad topic" },
        { KL_META_HEAD "topic orders 1\n  no.such.key=1\n", "no.such.key" },
    };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(cases); i++) {
        char dir[TU_PATH];
        snprintf(dir, sizeof dir, "%s/c%zu", tu_root, i);
        cr_assert_eq(mkdir(dir, 0755), 0);
        write_meta(dir, cases[i].body);
        klog *k = NULL;
        char err[256] = "";
        int rc = klog_open(&k, dir, NULL, err, sizeof err);
        cr_assert_lt(rc, 0, "case %zu opened", i);
        cr_assert_null(k);
        cr_assert(strstr(err, cases[i].why) != NULL, "case %zu: %s", i, err);
    }
}
