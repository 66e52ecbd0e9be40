/*
 * test/format/varint.c - zigzag varints: round trips at the boundaries, the
 * exact encodings Kafka produces, truncated and overlong input.
 */
#include "helpers.h"

static const int64_t boundaries[] = {
    0, 1, -1, 2, -2, 63, -64, 64, -65, 127, 128, -128, 8191, 8192, -8193,
    INT16_MIN, INT16_MAX, INT32_MIN, INT32_MAX, (int64_t)INT32_MIN - 1, (int64_t)INT32_MAX + 1,
    INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1, (int64_t)1 << 62, -((int64_t)1 << 62),
};

/* Bytes a zigzag varint of v must take. */
static size_t expected_size(int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 1;
    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

Test(varint, boundaries_round_trip)
{
    for (size_t i = 0; i < KLOG_ARRAY_LEN(boundaries); i++) {
        int64_t v = boundaries[i], back = 12345;
        uint8_t buf[16];
        memset(buf, 0xAA, sizeof buf);
        size_t n = kf_varint_put(buf, v);
        cr_assert_eq(n, expected_size(v), "size of %lld", (long long)v);
        cr_assert_leq(n, 10);
        cr_assert_eq(buf[n], 0xAA, "wrote past the varint");
        cr_assert_eq(kf_varint_get(buf, buf + n, &back), n);
        cr_assert_eq(back, v, "%lld came back as %lld", (long long)v, (long long)back);
        /* Extra bytes after it are not consumed. */
        cr_assert_eq(kf_varint_get(buf, buf + sizeof buf, &back), n);
        cr_assert_eq(back, v);
    }
}

Test(varint, kafka_encodings)
{
    /* Known zigzag encodings (Kafka ByteUtils.writeVarint/writeVarlong). */
    struct { int64_t v; uint8_t bytes[10]; size_t n; } cases[] = {
        { 0, { 0x00 }, 1 },
        { -1, { 0x01 }, 1 },
        { 1, { 0x02 }, 1 },
        { 63, { 0x7e }, 1 },
        { -64, { 0x7f }, 1 },
        { 64, { 0x80, 0x01 }, 2 },
        { 100, { 0xc8, 0x01 }, 2 },
        { INT32_MAX, { 0xfe, 0xff, 0xff, 0xff, 0x0f }, 5 },
        { INT32_MIN, { 0xff, 0xff, 0xff, 0xff, 0x0f }, 5 },
        { INT64_MAX, { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 }, 10 },
        { INT64_MIN, { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 }, 10 },
    };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(cases); i++) {
        uint8_t buf[16];
        size_t n = kf_varint_put(buf, cases[i].v);
        cr_assert_eq(n, cases[i].n, "case %zu", i);
        cr_assert_arr_eq(buf, cases[i].bytes, n, "case %zu", i);
        int64_t back;
        cr_assert_eq(kf_varint_get(cases[i].bytes, cases[i].bytes + cases[i].n, &back), n);
        cr_assert_eq(back, cases[i].v);
    }
}

Test(varint, every_power_of_two_and_neighbours)
{
    for (int s = 0; s < 63; s++) {
        int64_t base = (int64_t)1 << s;
        int64_t vals[] = { base - 1, base, base + 1, -base, -base - 1, -base + 1 };
        for (size_t i = 0; i < KLOG_ARRAY_LEN(vals); i++) {
            uint8_t buf[10];
            int64_t back;
            size_t n = kf_varint_put(buf, vals[i]);
            cr_assert_eq(n, expected_size(vals[i]));
            cr_assert_eq(kf_varint_get(buf, buf + n, &back), n);
            cr_assert_eq(back, vals[i]);
        }
    }
}

Test(varint, truncated_is_malformed)
{
    for (size_t i = 0; i < KLOG_ARRAY_LEN(boundaries); i++) {
        uint8_t buf[10];
        int64_t back;
        size_t n = kf_varint_put(buf, boundaries[i]);
        for (size_t cut = 0; cut < n; cut++)
            cr_assert_eq(kf_varint_get(buf, buf + cut, &back), 0,
                         "%lld cut to %zu bytes", (long long)boundaries[i], cut);
    }
}

Test(varint, overlong_is_malformed)
{
    int64_t back;
    /* Eleven bytes, all with the continuation bit. */
    uint8_t eleven[11];
    memset(eleven, 0x80, sizeof eleven);
    eleven[10] = 0x00;
    cr_assert_eq(kf_varint_get(eleven, eleven + sizeof eleven, &back), 0);
    /* Ten bytes whose last one still says "more". */
    uint8_t ten_more[12];
    memset(ten_more, 0xff, sizeof ten_more);
    cr_assert_eq(kf_varint_get(ten_more, ten_more + sizeof ten_more, &back), 0);
    /* Ten bytes whose last carries bits beyond 63 (overflow). */
    uint8_t overflow[10] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02 };
    cr_assert_eq(kf_varint_get(overflow, overflow + 10, &back), 0);
    uint8_t overflow7f[10] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f };
    cr_assert_eq(kf_varint_get(overflow7f, overflow7f + 10, &back), 0);
    /* A non-minimal but in-range encoding is accepted, as Kafka does. */
    uint8_t padded[3] = { 0x82, 0x80, 0x00 };
    cr_assert_eq(kf_varint_get(padded, padded + 3, &back), 3);
    cr_assert_eq(back, 1);
}

Test(varint, empty_and_reversed_ranges)
{
    uint8_t b[1] = { 0 };
    int64_t back;
    cr_assert_eq(kf_varint_get(b, b, &back), 0);
    cr_assert_eq(kf_varint_get(b + 1, b, &back), 0);
}

Test(varint, random_round_trip)
{
    uint64_t seed = 42;
    for (int i = 0; i < 200000; i++) {
        /* Spread over every magnitude, not just huge values. */
        int64_t v = (int64_t)(t_rand(&seed) >> (t_rand(&seed) % 64));
        if (t_rand(&seed) & 1)
            v = -v;
        uint8_t buf[10];
        int64_t back;
        size_t n = kf_varint_put(buf, v);
        cr_assert_eq(kf_varint_get(buf, buf + n, &back), n);
        cr_assert_eq(back, v);
    }
}
