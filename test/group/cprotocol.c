/*
 * Kafka's ConsumerProtocol (lib/group/cprotocol.h): byte-exact encodings
 * checked against the layout Kafka documents, round trips of Subscription
 * v0-v3 and Assignment v0-v1, newer versions read as the newest known,
 * every truncation and every kind of malformed length refused, the
 * encoders' argument checks, and seeded random corruption (which must
 * decode or be refused, never crash or over-read).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/klog.h>

#include "group/cprotocol.h"

/* ---- a tiny big-endian builder for hand-made inputs ------------------------------ */

typedef struct buf {
    uint8_t b[4096];
    size_t n;
} buf;

static void put16(buf *w, int v)
{
    w->b[w->n++] = (uint8_t)((unsigned)v >> 8);
    w->b[w->n++] = (uint8_t)v;
}

static void put32(buf *w, int64_t v)
{
    uint32_t u = (uint32_t)v;
    for (int s = 24; s >= 0; s -= 8)
        w->b[w->n++] = (uint8_t)(u >> s);
}

static void putstr(buf *w, const char *s)
{
    put16(w, (int)strlen(s));
    memcpy(w->b + w->n, s, strlen(s));
    w->n += strlen(s);
}

static int dec_sub(const buf *w)
{
    kg_cp_subscription s;
    int rc = kg_cp_subscription_decode(w->b, w->n, &s);
    kg_cp_subscription_free(&s);
    return rc;
}

static int dec_asg(const buf *w)
{
    kg_cp_assignment a;
    int rc = kg_cp_assignment_decode(w->b, w->n, &a);
    kg_cp_assignment_free(&a);
    return rc;
}

/* ---- byte-exact ------------------------------------------------------------------ */

Test(cprotocol, subscription_v0_bytes)
{
    const char *topics[] = { "foo", "ba" };
    kg_cp_subscription s = { .version = 0, .topics = topics, .ntopics = 2, .user_data_len = -1 };
    uint8_t *out;
    size_t len;
    cr_assert_eq(kg_cp_subscription_encode(&s, &out, &len), 0);
    static const uint8_t want[] = { 0, 0,                       /* version 0 */
                                    0, 0, 0, 2,                 /* 2 topics */
                                    0, 3, 'f', 'o', 'o', 0, 2, 'b', 'a',
                                    0xff, 0xff, 0xff, 0xff };   /* user_data null */
    cr_assert_eq(len, sizeof want);
    cr_assert_arr_eq(out, want, sizeof want);
    free(out);
}

Test(cprotocol, assignment_v1_bytes)
{
    const int32_t p[] = { 0, 2 };
    const kg_cp_topic t[] = { { "t", p, 2 } };
    const uint8_t ud[] = { 0xab };
    kg_cp_assignment a = { .version = 1, .topics = t, .ntopics = 1, .user_data = ud, .user_data_len = 1 };
    uint8_t *out;
    size_t len;
    cr_assert_eq(kg_cp_assignment_encode(&a, &out, &len), 0);
    static const uint8_t want[] = { 0, 1,  0, 0, 0, 1,  0, 1, 't',  0, 0, 0, 2,  0, 0, 0, 0,  0, 0, 0, 2,
                                    0, 0, 0, 1,  0xab };
    cr_assert_eq(len, sizeof want);
    cr_assert_arr_eq(out, want, sizeof want);
    free(out);
}

/* ---- round trips ----------------------------------------------------------------- */

static void sub_roundtrip(int16_t version, bool with_ud)
{
    const char *topics[] = { "orders", "payments", "x" };
    const int32_t p1[] = { 3, 1 }, p2[] = { 0 };
    const kg_cp_topic owned[] = { { "orders", p1, 2 }, { "x", p2, 1 } };
    const uint8_t ud[] = { 1, 2, 3, 0, 5 };
    kg_cp_subscription s = { .version = version, .topics = topics, .ntopics = 3,
                             .user_data = with_ud ? ud : NULL, .user_data_len = with_ud ? 5 : -1,
                             .owned = owned, .nowned = 2, .generation = 42, .rack = "rack-a" };
    uint8_t *enc;
    size_t len;
    cr_assert_eq(kg_cp_subscription_encode(&s, &enc, &len), 0, "v%d", version);
    kg_cp_subscription d;
    cr_assert_eq(kg_cp_subscription_decode(enc, len, &d), 0, "v%d", version);
    cr_assert_eq(d.version, version);
    cr_assert_eq(d.ntopics, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(d.topics[i], topics[i]);
    if (with_ud) {
        cr_assert_eq(d.user_data_len, 5);
        cr_assert_arr_eq(d.user_data, ud, 5);
    } else {
        cr_assert_eq(d.user_data_len, -1);
        cr_assert_null(d.user_data);
    }
    if (version >= 1) {
        cr_assert_eq(d.nowned, 2);
        cr_assert_str_eq(d.owned[0].topic, "orders");
        cr_assert_eq(d.owned[0].npartitions, 2);
        cr_assert_eq(d.owned[0].partitions[0], 3);
        cr_assert_eq(d.owned[0].partitions[1], 1);
        cr_assert_str_eq(d.owned[1].topic, "x");
        cr_assert_eq(d.owned[1].partitions[0], 0);
    } else {
        cr_assert_eq(d.nowned, 0); /* v0 carries no owned partitions */
    }
    cr_assert_eq(d.generation, version >= 2 ? 42 : -1);
    if (version >= 3)
        cr_assert_str_eq(d.rack, "rack-a");
    else
        cr_assert_null(d.rack);
    /* and re-encoding the decoded value gives the same bytes */
    uint8_t *enc2;
    size_t len2;
    cr_assert_eq(kg_cp_subscription_encode(&d, &enc2, &len2), 0);
    cr_assert_eq(len2, len);
    cr_assert_arr_eq(enc2, enc, len);
    free(enc2);
    kg_cp_subscription_free(&d);
    cr_assert_null(d.mem_);
    free(enc);
}

Test(cprotocol, subscription_roundtrip)
{
    for (int16_t v = 0; v <= 3; v++) {
        sub_roundtrip(v, true);
        sub_roundtrip(v, false);
    }
}

Test(cprotocol, subscription_empty)
{
    kg_cp_subscription s = { .version = 1, .user_data_len = 0 };
    uint8_t *enc;
    size_t len;
    cr_assert_eq(kg_cp_subscription_encode(&s, &enc, &len), 0);
    cr_assert_eq(len, 2 + 4 + 4 + 4);
    kg_cp_subscription d;
    cr_assert_eq(kg_cp_subscription_decode(enc, len, &d), 0);
    cr_assert_eq(d.ntopics, 0);
    cr_assert_null(d.topics);
    cr_assert_eq(d.user_data_len, 0); /* empty, not null */
    cr_assert_not_null(d.user_data);
    kg_cp_subscription_free(&d);
    free(enc);
}

Test(cprotocol, assignment_roundtrip)
{
    for (int16_t v = 0; v <= 1; v++) {
        const int32_t pa[] = { 0, 1, 7 }, pb[] = { 2 };
        const kg_cp_topic t[] = { { "a", pa, 3 }, { "b", pb, 1 }, { "c", NULL, 0 } };
        kg_cp_assignment a = { .version = v, .topics = t, .ntopics = 3, .user_data_len = -1 };
        uint8_t *enc;
        size_t len;
        cr_assert_eq(kg_cp_assignment_encode(&a, &enc, &len), 0);
        kg_cp_assignment d;
        cr_assert_eq(kg_cp_assignment_decode(enc, len, &d), 0);
        cr_assert_eq(d.version, v);
        cr_assert_eq(d.ntopics, 3);
        cr_assert_str_eq(d.topics[0].topic, "a");
        cr_assert_eq(d.topics[0].npartitions, 3);
        cr_assert_eq(d.topics[0].partitions[2], 7);
        cr_assert_str_eq(d.topics[1].topic, "b");
        cr_assert_eq(d.topics[1].partitions[0], 2);
        cr_assert_eq(d.topics[2].npartitions, 0);
        cr_assert_eq(d.user_data_len, -1);
        kg_cp_assignment_free(&d);
        free(enc);
    }
}

/* A version newer than any known is read as the newest known, and what
 * follows (its new fields) is ignored: Kafka's forward-compatibility rule. */
Test(cprotocol, newer_version_read_as_known)
{
    buf w = { .n = 0 };
    put16(&w, 9);            /* version 9 */
    put32(&w, 1);
    putstr(&w, "t");
    put32(&w, -1);           /* user_data null */
    put32(&w, 0);            /* v1: no owned */
    put32(&w, 5);            /* v2: generation */
    put16(&w, -1);           /* v3: rack null */
    put32(&w, 12345);        /* a field of some later version */
    kg_cp_subscription s;
    cr_assert_eq(kg_cp_subscription_decode(w.b, w.n, &s), 0);
    cr_assert_eq(s.version, 9);
    cr_assert_eq(s.ntopics, 1);
    cr_assert_eq(s.generation, 5);
    kg_cp_subscription_free(&s);

    buf a = { .n = 0 };
    put16(&a, 4);
    put32(&a, 0);
    put32(&a, -1);
    put16(&a, 77);           /* trailing */
    cr_assert_eq(dec_asg(&a), 0);
}

/* ---- malformed input ------------------------------------------------------------- */

Test(cprotocol, every_truncation_refused)
{
    const char *topics[] = { "orders", "x" };
    const int32_t p[] = { 1, 2 };
    const kg_cp_topic owned[] = { { "orders", p, 2 } };
    const uint8_t ud[] = { 9, 9 };
    for (int16_t v = 0; v <= 3; v++) {
        kg_cp_subscription s = { .version = v, .topics = topics, .ntopics = 2, .user_data = ud, .user_data_len = 2,
                                 .owned = owned, .nowned = 1, .generation = 3, .rack = NULL };
        uint8_t *enc;
        size_t len;
        cr_assert_eq(kg_cp_subscription_encode(&s, &enc, &len), 0);
        for (size_t cut = 0; cut < len; cut++) {
            kg_cp_subscription d;
            cr_assert_eq(kg_cp_subscription_decode(enc, cut, &d), KLOG_ECORRUPT, "v%d cut at %zu of %zu", v, cut,
                         len);
            cr_assert_null(d.mem_);
        }
        free(enc);
    }
    const kg_cp_topic t[] = { { "orders", p, 2 } };
    kg_cp_assignment a = { .version = 1, .topics = t, .ntopics = 1, .user_data = ud, .user_data_len = 2 };
    uint8_t *enc;
    size_t len;
    cr_assert_eq(kg_cp_assignment_encode(&a, &enc, &len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        kg_cp_assignment d;
        cr_assert_eq(kg_cp_assignment_decode(enc, cut, &d), KLOG_ECORRUPT, "cut at %zu", cut);
    }
    free(enc);
}

/* A subscription v0: a topic count, then one topic name of the given
 * length (its bytes from topic), then null user data. */
static buf sub_with(int32_t count, const char *topic, int16_t topic_len)
{
    buf w = { .n = 0 };
    put16(&w, 0);
    put32(&w, count);
    put16(&w, topic_len);
    if (topic_len > 0 && topic_len <= KG_CP_NAME_MAX + 1) { /* longer: claimed, not present */
        memcpy(w.b + w.n, topic, (size_t)topic_len);
        w.n += (size_t)topic_len;
    }
    put32(&w, -1);
    return w;
}

Test(cprotocol, malformed_lengths_refused)
{
    buf ok = sub_with(1, "abc", 3);
    cr_assert_eq(dec_sub(&ok), 0);
    buf w;
    w = sub_with(-1, "abc", 3);             /* null array */
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);
    w = sub_with(-7, "abc", 3);             /* negative count */
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);
    w = sub_with(1000, "abc", 3);           /* more items than bytes could hold */
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);
    w = sub_with((int32_t)KG_CP_ITEMS_MAX + 1, "abc", 3);
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);
    w = sub_with(1, "abc", -1);             /* null topic name */
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);
    w = sub_with(1, "abc", -2);
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);
    w = sub_with(1, "", 0);                 /* empty topic name */
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);
    w = sub_with(1, "a\0c", 3);             /* a NUL inside */
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);
    char longname[KG_CP_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname);
    w = sub_with(1, longname, KG_CP_NAME_MAX);
    cr_assert_eq(dec_sub(&w), 0);
    w = sub_with(1, longname, KG_CP_NAME_MAX + 1);
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);
    w = sub_with(1, "abc", 30000);          /* longer than the input */
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);

    /* negative version */
    w = (buf){ .n = 0 };
    put16(&w, -1);
    put32(&w, 0);
    put32(&w, -1);
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);

    /* user data: length below -1, over the cap, longer than the input */
    int64_t uds[] = { -2, (int64_t)KG_CP_USERDATA_MAX + 1, 10 };
    for (int i = 0; i < 3; i++) {
        w = (buf){ .n = 0 };
        put16(&w, 0);
        put32(&w, 0);
        put32(&w, uds[i]);
        cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT, "user_data length %lld", (long long)uds[i]);
    }

    /* assignment: a negative partition, a partition count too large */
    w = (buf){ .n = 0 };
    put16(&w, 0);
    put32(&w, 1);
    putstr(&w, "t");
    put32(&w, 1);
    put32(&w, -3);
    put32(&w, -1);
    cr_assert_eq(dec_asg(&w), KLOG_ECORRUPT);
    w = (buf){ .n = 0 };
    put16(&w, 0);
    put32(&w, 1);
    putstr(&w, "t");
    put32(&w, 2);            /* two partitions, one present */
    put32(&w, 0);
    cr_assert_eq(dec_asg(&w), KLOG_ECORRUPT);

    /* v3 rack: over its cap */
    w = (buf){ .n = 0 };
    put16(&w, 3);
    put32(&w, 0);
    put32(&w, -1);
    put32(&w, 0);
    put32(&w, 1);
    put16(&w, KG_CP_RACK_MAX + 1);
    memset(w.b + w.n, 'r', KG_CP_RACK_MAX + 1);
    w.n += KG_CP_RACK_MAX + 1;
    cr_assert_eq(dec_sub(&w), KLOG_ECORRUPT);

    kg_cp_subscription s;
    cr_assert_eq(kg_cp_subscription_decode(NULL, 5, &s), -EINVAL);
    cr_assert_eq(kg_cp_subscription_decode(ok.b, ok.n, NULL), -EINVAL);
}

Test(cprotocol, encoder_checks)
{
    uint8_t *out = NULL;
    size_t len;
    const char *bad_topics[][1] = { { NULL }, { "" } };
    for (int i = 0; i < 2; i++) {
        kg_cp_subscription s = { .version = 0, .topics = bad_topics[i], .ntopics = 1, .user_data_len = -1 };
        cr_assert_eq(kg_cp_subscription_encode(&s, &out, &len), -EINVAL);
    }
    kg_cp_subscription s = { .version = 4, .user_data_len = -1 };
    cr_assert_eq(kg_cp_subscription_encode(&s, &out, &len), -EINVAL);
    s = (kg_cp_subscription){ .version = 0, .user_data_len = -2 };
    cr_assert_eq(kg_cp_subscription_encode(&s, &out, &len), -EINVAL);
    s = (kg_cp_subscription){ .version = 0, .user_data_len = 3 }; /* no bytes */
    cr_assert_eq(kg_cp_subscription_encode(&s, &out, &len), -EINVAL);
    s = (kg_cp_subscription){ .version = 0, .ntopics = 2, .user_data_len = -1 }; /* NULL array */
    cr_assert_eq(kg_cp_subscription_encode(&s, &out, &len), -EINVAL);
    char longname[KG_CP_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    const int32_t neg[] = { -1 };
    const kg_cp_topic bad[][1] = { { { "t", neg, 1 } }, { { longname, NULL, 0 } }, { { "t", NULL, 2 } } };
    for (int i = 0; i < 3; i++) {
        kg_cp_assignment a = { .version = 0, .topics = bad[i], .ntopics = 1, .user_data_len = -1 };
        cr_assert_eq(kg_cp_assignment_encode(&a, &out, &len), -EINVAL, "case %d", i);
    }
    kg_cp_assignment a = { .version = 0, .ntopics = KG_CP_ITEMS_MAX + 1, .topics = bad[0], .user_data_len = -1 };
    cr_assert_eq(kg_cp_assignment_encode(&a, &out, &len), -EINVAL);
    cr_assert_null(out);
    cr_assert_eq(kg_cp_assignment_encode(NULL, &out, &len), -EINVAL);
}

Test(cprotocol, topics_from_tps)
{
    const kg_tp tp[] = { { "b", 1 }, { "a", 0 }, { "b", 0 }, { "c", 5 }, { "a", 3 } };
    kg_cp_topic *t;
    int n = kg_cp_topics_from_tps(tp, 5, &t);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(t[0].topic, "b");
    cr_assert_eq(t[0].npartitions, 2);
    cr_assert_eq(t[0].partitions[0], 1);
    cr_assert_eq(t[0].partitions[1], 0);
    cr_assert_str_eq(t[1].topic, "a");
    cr_assert_eq(t[1].npartitions, 2);
    cr_assert_eq(t[1].partitions[1], 3);
    cr_assert_str_eq(t[2].topic, "c");
    cr_assert_eq(t[2].npartitions, 1);
    free(t);
    cr_assert_eq(kg_cp_topics_from_tps(NULL, 0, &t), 0);
    free(t);
    const kg_tp bad[] = { { NULL, 0 } };
    cr_assert_eq(kg_cp_topics_from_tps(bad, 1, &t), -EINVAL);
}

/* Random corruption of valid encodings: each mutated input either decodes
 * (and then re-encodes) or is refused with KLOG_ECORRUPT; ASan runs of this
 * test catch any over-read.  Seeded: the same inputs every run. */
Test(cprotocol, random_corruption)
{
    const char *topics[] = { "orders", "payments" };
    const int32_t p[] = { 0, 4, 9 };
    const kg_cp_topic owned[] = { { "orders", p, 3 }, { "payments", p, 1 } };
    const uint8_t ud[] = { 1, 2, 3 };
    kg_cp_subscription s = { .version = 3, .topics = topics, .ntopics = 2, .user_data = ud, .user_data_len = 3,
                             .owned = owned, .nowned = 2, .generation = 7, .rack = "r1" };
    uint8_t *enc;
    size_t len;
    cr_assert_eq(kg_cp_subscription_encode(&s, &enc, &len), 0);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    unsigned ok = 0, bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t m[256];
        memcpy(m, enc, len);
        int flips = 1 + iter % 3;
        for (int f = 0; f < flips; f++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            m[x % len] = (uint8_t)(x >> 32);
        }
        size_t mlen = len - (iter % 5 == 0 ? (size_t)(x >> 40) % len : 0);
        /* a heap copy of exactly mlen bytes, so that ASan sees an over-read */
        uint8_t *h = malloc(mlen ? mlen : 1);
        memcpy(h, m, mlen);
        kg_cp_subscription d;
        int rc = kg_cp_subscription_decode(h, mlen, &d);
        cr_assert(rc == 0 || rc == KLOG_ECORRUPT, "iteration %d: %d", iter, rc);
        if (rc == 0) {
            ok++;
            uint8_t *re;
            size_t rlen;
            d.version = d.version > 3 ? 3 : d.version;
            cr_assert_eq(kg_cp_subscription_encode(&d, &re, &rlen), 0, "iteration %d", iter);
            free(re);
        } else {
            bad++;
        }
        kg_cp_subscription_free(&d);
        kg_cp_assignment a;
        rc = kg_cp_assignment_decode(h, mlen, &a);
        cr_assert(rc == 0 || rc == KLOG_ECORRUPT);
        kg_cp_assignment_free(&a);
        free(h);
    }
    cr_assert(ok > 0 && bad > 0, "ok %u bad %u", ok, bad);
    free(enc);
}
