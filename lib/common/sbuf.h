/*
 * lib/common/sbuf.h - a growable string for rendering text documents
 * (klog_stats, klog_group_describe).  Appends never fail loudly: the first
 * allocation failure is kept in err and later appends do nothing, so a
 * renderer checks err once at the end.  The caller owns p (free()).
 */
#ifndef KLOG_COMMON_SBUF_H
#define KLOG_COMMON_SBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct klog_sbuf {
    char *p;        /* NUL-terminated once anything was appended; NULL before */
    size_t n, cap;
    int err;        /* 0 or -ENOMEM */
} klog_sbuf;

__attribute__((format(printf, 2, 3))) void klog__sbuf_printf(klog_sbuf *b, const char *fmt, ...);
/* A quoted string: JSON escapes when json, else Prometheus label-value
 * escapes (\\, \", \n; other control characters as spaces).  NULL is
 * written as null (JSON). */
void klog__sbuf_quote(klog_sbuf *b, const char *s, bool json);

#endif
