/* lib/common/sbuf.c - see sbuf.h; and klog_free, which takes back the
 * documents rendered here (klog/instance.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <klog/instance.h>

#include "common/common.h"
#include "common/sbuf.h"

KLOG_API void klog_free(void *p) { free(p); }

void klog__sbuf_printf(klog_sbuf *b, const char *fmt, ...)
{
    while (!b->err) {
        va_list ap;
        va_start(ap, fmt);
        int w = b->p ? vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap) : -1;
        va_end(ap);
        if (w >= 0 && (size_t)w < b->cap - b->n) {
            b->n += (size_t)w;
            return;
        }
        /* w < 0: no buffer yet (or an encoding error): grow anyway */
        size_t need = w >= 0 ? b->n + (size_t)w + 1 : b->cap + 1;
        int rc = klog__vec_reserve(&b->p, &b->cap, need > 4096 ? need : 4096, 1);
        if (rc < 0) {
            b->err = rc;
            return;
        }
    }
}

void klog__sbuf_quote(klog_sbuf *b, const char *s, bool json)
{
    if (!s) {
        klog__sbuf_printf(b, "null");
        return;
    }
    klog__sbuf_printf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            klog__sbuf_printf(b, "\\%c", c);
        else if (c == '\n')
            klog__sbuf_printf(b, "\\n");
        else if (c < 0x20 && json)
            klog__sbuf_printf(b, "\\u%04x", c);
        else if (c < 0x20)
            klog__sbuf_printf(b, " ");
        else
            klog__sbuf_printf(b, "%c", c);
    }
    klog__sbuf_printf(b, "\"");
}
