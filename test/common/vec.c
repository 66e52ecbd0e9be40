/*
 * test/common/vec.c - klog__vec_reserve: doubling growth, contents kept
 * across moves, no work when there is room, and failure (overflow) leaving
 * the array and its capacity as they were.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/common.h"

static bool pow2(size_t x) { return x && (x & (x - 1)) == 0; }

Test(vec, empty_array_gets_a_first_allocation_of_eight)
{
    int *a = NULL;
    size_t cap = 0;
    cr_assert_eq(klog__vec_reserve(&a, &cap, 1, sizeof *a), 0);
    cr_assert_not_null(a);
    cr_assert_eq(cap, 8);
    a[7] = 7; /* all eight are there */
    free(a);
}

Test(vec, capacity_doubles_until_it_holds_need)
{
    int *a = NULL;
    size_t cap = 0;
    cr_assert_eq(klog__vec_reserve(&a, &cap, 9, sizeof *a), 0);
    cr_assert_eq(cap, 16);
    cr_assert_eq(klog__vec_reserve(&a, &cap, 100, sizeof *a), 0);
    cr_assert_eq(cap, 128);
    cr_assert_eq(klog__vec_reserve(&a, &cap, 129, sizeof *a), 0);
    cr_assert_eq(cap, 256);
    free(a);
}

Test(vec, push_one_at_a_time_keeps_contents_and_grows_log_times)
{
    typedef struct { int64_t k; char pad[24]; } item;
    item *a = NULL;
    size_t n = 0, cap = 0;
    unsigned grows = 0;
    for (int64_t i = 0; i < 5000; i++) {
        size_t before = cap;
        if (n == cap)
            cr_assert_eq(klog__vec_reserve(&a, &cap, n + 1, sizeof *a), 0);
        grows += cap != before;
        cr_assert(cap > n && pow2(cap), "cap %zu for n %zu", cap, n);
        a[n++] = (item){ .k = i * 3 };
    }
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(a[i].k, (int64_t)i * 3, "element %zu lost in a move", i);
    cr_assert_eq(cap, 8192);
    cr_assert_eq(grows, 11, "8, 16, ..., 8192: %u growths", grows); /* doubling, not +1 */
    free(a);
}

Test(vec, room_enough_changes_nothing)
{
    int *a = NULL;
    size_t cap = 0;
    cr_assert_eq(klog__vec_reserve(&a, &cap, 20, sizeof *a), 0);
    int *was = a;
    size_t cap_was = cap;
    for (size_t need = 0; need <= cap_was; need++) {
        cr_assert_eq(klog__vec_reserve(&a, &cap, need, sizeof *a), 0);
        cr_assert_eq(a, was);
        cr_assert_eq(cap, cap_was);
    }
    free(a);
}

Test(vec, need_times_elem_overflowing_fails_and_leaves_the_array)
{
    uint64_t *a = NULL;
    size_t cap = 0;
    cr_assert_eq(klog__vec_reserve(&a, &cap, 4, sizeof *a), 0);
    for (int i = 0; i < 4; i++)
        a[i] = 0xabc0u + (uint64_t)i;
    uint64_t *was = a;
    size_t cap_was = cap;
    /* SIZE_MAX / 8 + 1 elements of 8 bytes wrap size_t; SIZE_MAX / 16 + 1
     * do not wrap but pass PTRDIFF_MAX, which no object may exceed */
    const size_t huge[] = { SIZE_MAX / sizeof *a + 1, SIZE_MAX / (2 * sizeof *a) + 1, SIZE_MAX };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        cr_assert_eq(klog__vec_reserve(&a, &cap, huge[i], sizeof *a), -ENOMEM, "need %zu", huge[i]);
        cr_assert_eq(a, was);
        cr_assert_eq(cap, cap_was);
    }
    for (int i = 0; i < 4; i++)
        cr_assert_eq(a[i], 0xabc0u + (uint64_t)i);
    free(a);
}

Test(vec, doubling_past_size_max_fails_without_wrapping)
{
    /* A capacity so large that doubling it would wrap to a small number:
     * a wrapping implementation would "succeed" with a tiny buffer.  The
     * array is never touched on this path, so a NULL one stands in. */
    char *a = NULL;
    size_t cap = SIZE_MAX / 2 + 1;
    cr_assert_eq(klog__vec_reserve(&a, &cap, cap + 1, 1), -ENOMEM);
    cr_assert_null(a);
    cr_assert_eq(cap, SIZE_MAX / 2 + 1);
}

Test(vec, zero_element_size_is_refused)
{
    int *a = NULL;
    size_t cap = 0;
    cr_assert_eq(klog__vec_reserve(&a, &cap, 1, 0), -EINVAL);
    cr_assert_null(a);
    cr_assert_eq(cap, 0);
}
