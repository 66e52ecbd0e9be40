/* lib/common/vec.c - see klog__vec_reserve in common.h. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

#define KLOG_VEC_MIN 8 /* elements of a first allocation */

int klog__vec_reserve(void *arrp, size_t *cap, size_t need, size_t elem)
{
    if (elem == 0)
        return -EINVAL;
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : KLOG_VEC_MIN;
    while (nc < need)
        nc = nc > SIZE_MAX / 2 ? need : nc * 2;
    /* No object may be larger than PTRDIFF_MAX bytes (pointer differences
     * within it must fit); refusing here also keeps such a size away from
     * realloc. */
    if (nc > (size_t)PTRDIFF_MAX / elem) {
        if (need > (size_t)PTRDIFF_MAX / elem)
            return -ENOMEM;
        nc = need; /* doubling would pass the limit; need itself does not */
    }
    void *old;
    memcpy(&old, arrp, sizeof old); /* arrp points at a T *, whatever T is */
    void *n = realloc(old, nc * elem);
    if (!n)
        return -ENOMEM;
    memcpy(arrp, &n, sizeof n);
    *cap = nc;
    return 0;
}
