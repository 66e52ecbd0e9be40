/*
 * test/kafka/prim.c - Kafka's primitive types (lib/kafka/prim.c): exact
 * encodings, and every way a length, count, varint or tagged-field section
 * can be wrong giving a clear error with the reader stopped.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/kafka.h"

static kk_wbuf w;

static void setup(void) { kk_wbuf_init(&w, 0); }
static void teardown(void) { kk_wbuf_free(&w); }
TestSuite(kafka_prim, .init = setup, .fini = teardown);

#define EXPECT_BYTES(...)                                                        \
    do {                                                                         \
        static const uint8_t exp_[] = { __VA_ARGS__ };                           \
        cr_assert_eq(w.err, 0);                                                  \
        cr_assert_eq(w.n, sizeof(exp_), "wrote %zu bytes, want %zu", w.n, sizeof(exp_)); \
        cr_assert_arr_eq(w.b, exp_, sizeof(exp_));                               \
    } while (0)

Test(kafka_prim, fixed_width_big_endian)
{
    kk_w_i8(&w, -2);
    kk_w_i16(&w, 0x0102);
    kk_w_i32(&w, 0x01020304);
    kk_w_i64(&w, -2);
    EXPECT_BYTES(0xfe, 1, 2, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe);
    kk_rd r;
    kk_rd_init(&r, w.b, w.n);
    cr_assert_eq(kk_rd_i8(&r), -2);
    cr_assert_eq(kk_rd_i16(&r), 0x0102);
    cr_assert_eq(kk_rd_i32(&r), 0x01020304);
    cr_assert_eq(kk_rd_i64(&r), -2);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(kk_rd_left(&r), 0);
}

/* Encodings from Kafka's ByteUtils tests and the protobuf spec. */
Test(kafka_prim, varints)
{
    kk_w_uvarint(&w, 0);
    kk_w_uvarint(&w, 300);
    kk_w_uvarint(&w, UINT32_MAX);
    kk_w_varint(&w, -1);
    kk_w_varint(&w, 1);
    kk_w_varint(&w, INT32_MIN);
    kk_w_varlong(&w, INT64_MIN);
    EXPECT_BYTES(0x00, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02,
                 0xff, 0xff, 0xff, 0xff, 0x0f,
                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01);
    kk_rd r;
    kk_rd_init(&r, w.b, w.n);
    cr_assert_eq(kk_rd_uvarint(&r), 0);
    cr_assert_eq(kk_rd_uvarint(&r), 300);
    cr_assert_eq(kk_rd_uvarint(&r), UINT32_MAX);
    cr_assert_eq(kk_rd_varint(&r), -1);
    cr_assert_eq(kk_rd_varint(&r), 1);
    cr_assert_eq(kk_rd_varint(&r), INT32_MIN);
    cr_assert_eq(kk_rd_varlong(&r), INT64_MIN);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(kk_rd_left(&r), 0);
}

Test(kafka_prim, varint_too_long_or_too_large)
{
    static const uint8_t six[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
    static const uint8_t big5[] = { 0xff, 0xff, 0xff, 0xff, 0x1f }; /* 33 bits */
    static const uint8_t long11[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
    kk_rd r;
    kk_rd_init(&r, six, sizeof(six));
    cr_assert_eq(kk_rd_uvarint(&r), 0);
    cr_assert_eq(r.err, KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_VARINT);
    kk_rd_init(&r, big5, sizeof(big5));
    kk_rd_varint(&r);
    cr_assert_eq(r.fail.reason, KK_R_VARINT);
    cr_assert_eq(r.fail.offset, 4);
    kk_rd_init(&r, long11, sizeof(long11));
    kk_rd_varlong(&r);
    cr_assert_eq(r.fail.reason, KK_R_VARINT);
    kk_rd_init(&r, six, 3); /* cut inside the varint */
    kk_rd_uvarint(&r);
    cr_assert_eq(r.fail.reason, KK_R_TRUNCATED);
}

Test(kafka_prim, errors_are_sticky_and_stop_the_reader)
{
    static const uint8_t b[] = { 0, 1, 2 };
    kk_rd r;
    kk_rd_init(&r, b, sizeof(b));
    cr_assert_eq(kk_rd_i32(&r), 0);
    cr_assert_eq(r.err, KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_TRUNCATED);
    cr_assert_eq(r.fail.offset, 0);
    cr_assert_eq(kk_rd_left(&r), 0);
    cr_assert_eq(kk_rd_i8(&r), 0);  /* nothing more is read */
    kk_rd_fail(&r, KLOG_ETOOBIG, KK_R_LIMIT);
    cr_assert_eq(r.err, KLOG_ECORRUPT, "the first error sticks");
    cr_assert_eq(r.fail.reason, KK_R_TRUNCATED);
}

Test(kafka_prim, strings)
{
    kk_w_string(&w, false, true, NULL, 0);
    kk_w_string(&w, false, false, NULL, 0); /* null where not nullable: empty */
    kk_w_string(&w, false, false, "ab", -1);
    kk_w_string(&w, true, true, NULL, 0);
    kk_w_string(&w, true, false, "", 0);
    kk_w_string(&w, true, false, "xyz", 3);
    EXPECT_BYTES(0xff, 0xff, 0, 0, 0, 2, 'a', 'b', 0, 1, 4, 'x', 'y', 'z');
    kk_rd r;
    const uint8_t *p;
    kk_rd_init(&r, w.b, w.n);
    cr_assert_eq(kk_rd_string(&r, false, true, 100, &p), -1);
    cr_assert_null(p);
    cr_assert_eq(kk_rd_string(&r, false, false, 100, &p), 0);
    cr_assert_eq(kk_rd_string(&r, false, false, 100, &p), 2);
    cr_assert_eq(memcmp(p, "ab", 2), 0);
    cr_assert_eq(kk_rd_string(&r, true, true, 100, &p), -1);
    cr_assert_eq(kk_rd_string(&r, true, false, 100, &p), 0);
    cr_assert_eq(kk_rd_string(&r, true, false, 100, &p), 3);
    cr_assert_eq(memcmp(p, "xyz", 3), 0);
    cr_assert_eq(r.err, 0);

    /* null where the field is not nullable */
    kk_rd_init(&r, w.b, w.n);
    kk_rd_string(&r, false, false, 100, &p);
    cr_assert_eq(r.err, KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_NULL);
}

Test(kafka_prim, string_too_long_for_its_length_field)
{
    char *big = malloc(40000);
    memset(big, 'x', 40000);
    kk_w_string(&w, false, false, big, 40000);
    cr_assert_eq(w.err, -EINVAL);
    kk_wbuf_reset(&w);
    kk_w_string(&w, true, false, big, 40000); /* compact strings may be longer */
    cr_assert_eq(w.err, 0);
    cr_assert_eq(w.n, 3 + 40000);
    free(big);
}

Test(kafka_prim, lengths_checked_against_cap_and_frame)
{
    /* A string of 0x7fff bytes with 2 left; bytes of 2^31-1; length -2. */
    static const uint8_t s[] = { 0x7f, 0xff, 'a', 'b' };
    static const uint8_t b[] = { 0x7f, 0xff, 0xff, 0xff, 1, 2, 3 };
    static const uint8_t neg[] = { 0xff, 0xfe, 1, 2 };
    kk_rd r;
    const uint8_t *p;
    kk_rd_init(&r, s, sizeof(s));
    kk_rd_string(&r, false, false, 100, &p);
    cr_assert_eq(r.err, KLOG_ETOOBIG);
    cr_assert_eq(r.fail.reason, KK_R_LIMIT);
    kk_rd_init(&r, s, sizeof(s));
    kk_rd_string(&r, false, false, 32767, &p);
    cr_assert_eq(r.err, KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_TRUNCATED);
    cr_assert_eq(r.fail.offset, 0, "offsets point at the field's length");
    kk_rd_init(&r, b, sizeof(b));
    kk_rd_bytes(&r, false, true, UINT32_MAX, &p);
    cr_assert_eq(r.fail.reason, KK_R_TRUNCATED);
    kk_rd_init(&r, b, sizeof(b));
    kk_rd_bytes(&r, false, true, 1000, &p);
    cr_assert_eq(r.fail.reason, KK_R_LIMIT);
    kk_rd_init(&r, neg, sizeof(neg));
    kk_rd_string(&r, false, true, 100, &p);
    cr_assert_eq(r.fail.reason, KK_R_BAD_LENGTH);
    kk_rd_init(&r, neg, sizeof(neg));
    kk_rd_count(&r, false, true, 100, 1);
    cr_assert_eq(r.fail.reason, KK_R_BAD_LENGTH); /* 0xfffe0102 as an int32 count */
}

Test(kafka_prim, array_count_2e31_in_a_100_byte_frame)
{
    uint8_t f[100] = { 0x7f, 0xff, 0xff, 0xff };
    kk_rd r;
    kk_rd_init(&r, f, sizeof(f));
    cr_assert_eq(kk_rd_count(&r, false, false, 1u << 20, 4), -1);
    cr_assert_eq(r.err, KLOG_ETOOBIG);
    cr_assert_eq(r.fail.reason, KK_R_LIMIT);
    kk_rd_init(&r, f, sizeof(f));
    cr_assert_eq(kk_rd_count(&r, false, false, UINT32_MAX, 1), -1);
    cr_assert_eq(r.err, KLOG_ECORRUPT);
    cr_assert_eq(r.fail.reason, KK_R_COUNT);
    /* 24 elements of 4 bytes fit in the 96 bytes left; 25 do not. */
    f[0] = 0, f[1] = 0, f[2] = 0, f[3] = 24;
    kk_rd_init(&r, f, sizeof(f));
    cr_assert_eq(kk_rd_count(&r, false, false, UINT32_MAX, 4), 24);
    f[3] = 25;
    kk_rd_init(&r, f, sizeof(f));
    cr_assert_eq(kk_rd_count(&r, false, false, UINT32_MAX, 4), -1);
    cr_assert_eq(r.fail.reason, KK_R_COUNT);
    /* compact: uvarint n + 1, 0 = null */
    static const uint8_t c[] = { 0, 3, 7, 7 };
    kk_rd_init(&r, c, sizeof(c));
    cr_assert_eq(kk_rd_count(&r, true, true, 10, 1), -1);
    cr_assert_eq(kk_rd_count(&r, true, false, 10, 1), 2);
    cr_assert_eq(r.err, 0);
}

Test(kafka_prim, tagged_fields)
{
    /* two fields, tags 0 and 5, sizes 2 and 0; then a marker byte */
    static const uint8_t ok[] = { 2, 0, 2, 0xaa, 0xbb, 5, 0, 0x42 };
    static const uint8_t order[] = { 2, 5, 0, 5, 0 };
    static const uint8_t size[] = { 1, 0, 9, 1, 2 };
    kk_rd r;
    kk_rd_init(&r, ok, sizeof(ok));
    kk_rd_skip_tags(&r);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(kk_rd_i8(&r), 0x42);
    kk_rd_init(&r, order, sizeof(order));
    kk_rd_skip_tags(&r);
    cr_assert_eq(r.fail.reason, KK_R_TAGS);
    kk_rd_init(&r, size, sizeof(size));
    kk_rd_skip_tags(&r);
    cr_assert_eq(r.fail.reason, KK_R_TAGS);
}

Test(kafka_prim, wbuf_max_is_enforced)
{
    kk_wbuf s;
    kk_wbuf_init(&s, 10);
    kk_w_i64(&s, 1);
    cr_assert_eq(s.err, 0);
    kk_w_i32(&s, 1);
    cr_assert_eq(s.err, KLOG_ETOOBIG);
    cr_assert_leq(s.n, 10);
    kk_w_i8(&s, 1);
    cr_assert_eq(s.err, KLOG_ETOOBIG, "sticky");
    kk_wbuf_reset(&s);
    cr_assert_eq(s.err, 0);
    s.ref_min = 1;
    static const char big[20];
    kk_w_ref(&s, big, sizeof(big));
    cr_assert_eq(s.err, KLOG_ETOOBIG, "referenced bytes count too");
    kk_wbuf_free(&s);
}

/* Referenced bytes come out of kk_wbuf_iov in place, in order, uncopied. */
Test(kafka_prim, wbuf_references)
{
    static const char a[] = "AAAAAAAA", b[] = "BBBB", c[] = "c";
    w.ref_min = 4;
    kk_w_i8(&w, 1);
    kk_w_ref(&w, a, 8);
    kk_w_ref(&w, b, 4);
    kk_w_i8(&w, 2);
    kk_w_ref(&w, c, 1); /* below ref_min: copied */
    cr_assert_eq(w.err, 0);
    cr_assert_eq(kk_wbuf_len(&w), 1 + 8 + 4 + 1 + 1);
    struct iovec iov[8];
    int k = kk_wbuf_iov(&w, iov, 8);
    cr_assert_eq(k, 4);
    cr_assert_eq(iov[0].iov_len, 1);
    cr_assert_eq(iov[1].iov_base, (void *)a);
    cr_assert_eq(iov[2].iov_base, (void *)b);
    cr_assert_eq(iov[3].iov_len, 2);
    cr_assert_eq(kk_wbuf_iov(&w, iov, 1), 4, "the count needed, whatever max is");
    char flat[15];
    kk_wbuf_copy_out(&w, flat);
    cr_assert_eq(memcmp(flat, "\x01" "AAAAAAAABBBB" "\x02" "c", 15), 0);
}

/* The reference list grows past its first allocation (8) and more: 40
 * pieces, each behind a copied byte, all come out in place and in order. */
Test(kafka_prim, wbuf_many_references)
{
    enum { N = 40 };
    static char piece[N][4];
    uint8_t want[N * 5];
    w.ref_min = 4;
    for (int i = 0; i < N; i++) {
        memset(piece[i], 'A' + i % 26, sizeof piece[i]);
        kk_w_i8(&w, (int8_t)i);
        kk_w_ref(&w, piece[i], sizeof piece[i]);
        want[i * 5] = (uint8_t)i;
        memcpy(&want[i * 5 + 1], piece[i], 4);
    }
    cr_assert_eq(w.err, 0);
    cr_assert_eq(kk_wbuf_len(&w), sizeof want);
    struct iovec iov[2 * N];
    cr_assert_eq(kk_wbuf_iov(&w, iov, 2 * N), 2 * N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(iov[2 * i].iov_len, 1);
        cr_assert_eq(iov[2 * i + 1].iov_base, (void *)piece[i], "piece %d referenced, not copied", i);
    }
    uint8_t flat[sizeof want];
    kk_wbuf_copy_out(&w, flat);
    cr_assert_arr_eq(flat, want, sizeof want);
}

Test(kafka_prim, patch)
{
    kk_w_i32(&w, 0);
    kk_w_i8(&w, 9);
    kk_w_patch_i32(&w, 0, 0x11223344);
    kk_w_patch_i32(&w, 2, 0x55667788); /* would run past what was written: ignored */
    EXPECT_BYTES(0x11, 0x22, 0x33, 0x44, 9);
}
