/*
 * test/format/crc32c.c - CRC-32C (kf_crc32c): the known vectors of RFC 3720
 * (iSCSI) appendix B.4 and the classic check value; the slicing-by-8 tables
 * against the polynomial; the SSE4.2 path against the tables on every
 * length 0..4096 at every alignment, on lengths that use each of its block
 * sizes (the shift constants), and chained over every split point.
 */
#include "helpers.h"

#include "format/internal.h"

#include "format/crc32c_table.h"

/* Bit at a time, from the polynomial: the definition. */
static uint32_t slow_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
    }
    return ~crc;
}

static bool have_hw(void)
{
#if KF_HAVE_CRC32C_HW
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul");
#else
    return false;
#endif
}

/* Every implementation on (p, n) against want. */
static void expect_all(const uint8_t *p, size_t n, uint32_t want, const char *what)
{
    cr_assert_eq(kf_crc32c(0, p, n), want, "%s: kf_crc32c %08x, want %08x", what, kf_crc32c(0, p, n), want);
    cr_assert_eq(kf__crc32c_sw(0, p, n), want, "%s: tables", what);
#if KF_HAVE_CRC32C_HW
    if (have_hw())
        cr_assert_eq(kf__crc32c_hw(0, p, n), want, "%s: sse4.2", what);
#endif
}

Test(crc32c, rfc3720_vectors)
{
    uint8_t b[48];
    memset(b, 0, 32);
    expect_all(b, 32, 0x8a9136aau, "32 zero bytes");
    memset(b, 0xff, 32);
    expect_all(b, 32, 0x62a8ab43u, "32 bytes of ff");
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    expect_all(b, 32, 0x46dd794eu, "00..1f");
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    expect_all(b, 32, 0x113fdb5cu, "1f..00");
    /* an iSCSI read command PDU */
    static const uint8_t pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
        0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    expect_all(pdu, sizeof pdu, 0xd9963a56u, "iSCSI read PDU");
    expect_all((const uint8_t *)"123456789", 9, 0xe3069283u, "check value");
    expect_all(b, 0, 0, "empty");
    cr_assert_eq(slow_crc32c(0, (const uint8_t *)"123456789", 9), 0xe3069283u);
}

/* crc32c_table.h was generated once; here it is rebuilt from the
 * polynomial: row 0 the CRC of each byte, row k row k-1 advanced by one
 * zero byte. */
Test(crc32c, tables_from_the_polynomial)
{
    for (unsigned b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
        cr_assert_eq(kf__crc32c_table[0][b], c, "row 0 [%u]", b);
        for (int r = 1; r < 8; r++) {
            c = (c >> 8) ^ kf__crc32c_table[0][c & 0xff];
            cr_assert_eq(kf__crc32c_table[r][b], c, "row %d [%u]", r, b);
        }
    }
}

static uint8_t *random_buf(size_t n, uint64_t seed)
{
    uint8_t *b = malloc(n);
    cr_assert_not_null(b);
    t_fill_random(b, n, &seed);
    return b;
}

/* Every length 0..4096 at every alignment 0..7: the two paths agree, and
 * agree with the bit-at-a-time definition (spot-checked: it is slow). */
Test(crc32c, both_paths_every_length_and_alignment)
{
    uint8_t *buf = random_buf(4096 + 16, 1);
    cr_log_info("hardware path %s", have_hw() ? "tested" : "not available on this CPU");
    for (size_t len = 0; len <= 4096; len++)
        for (size_t align = 0; align < 8; align++) {
            const uint8_t *p = buf + align;
            uint32_t want = kf__crc32c_sw(0, p, len);
            if (len % 97 == 0 || len < 64)
                cr_assert_eq(want, slow_crc32c(0, p, len), "tables: len %zu align %zu", len, align);
#if KF_HAVE_CRC32C_HW
            if (have_hw())
                cr_assert_eq(kf__crc32c_hw(0, p, len), want, "sse4.2: len %zu align %zu", len, align);
#endif
            cr_assert_eq(kf_crc32c(0, p, len), want);
        }
    free(buf);
}

/* Lengths around the three-way loop's step (3 x 256) and its multiples,
 * and long inputs: a wrong shift constant shows here. */
Test(crc32c, long_inputs_and_block_edges)
{
    const size_t big = (3u << 20) + 77;
    uint8_t *buf = random_buf(big + 8, 2);
    static const size_t edges[] = { 767, 768, 769, 1535, 1536, 1537, 12287, 12288, 12289, 12288 + 768,
                                    12288 + 767, 24576 + 769, 65536, 1u << 20 };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(edges); i++)
        for (size_t align = 0; align < 8; align += 3) {
            uint32_t want = slow_crc32c(0, buf + align, edges[i]);
            expect_all(buf + align, edges[i], want, "edge");
        }
    uint32_t want = kf__crc32c_sw(0, buf + 5, big);
    expect_all(buf + 5, big, want, "3 MiB");
    free(buf);
}

/* kf_crc32c(kf_crc32c(0, a), b) is the CRC of a then b, at every split of
 * a buffer that crosses the block sizes: how a wire header and its records
 * are summed (format.h). */
Test(crc32c, chaining_at_every_split)
{
    const size_t n = 3 * 4096 + 3 * 256 + 13;
    uint8_t *buf = random_buf(n, 3);
    uint32_t whole = kf__crc32c_sw(0, buf, n);
    for (size_t cut = 0; cut <= n; cut += (cut < 300 ? 1 : 37)) {
        cr_assert_eq(kf_crc32c(kf_crc32c(0, buf, cut), buf + cut, n - cut), whole, "cut %zu", cut);
        cr_assert_eq(kf__crc32c_sw(kf__crc32c_sw(0, buf, cut), buf + cut, n - cut), whole, "tables, cut %zu", cut);
#if KF_HAVE_CRC32C_HW
        if (have_hw())
            cr_assert_eq(kf__crc32c_hw(kf__crc32c_hw(0, buf, cut), buf + cut, n - cut), whole, "sse4.2, cut %zu",
                         cut);
#endif
    }
    free(buf);
}
