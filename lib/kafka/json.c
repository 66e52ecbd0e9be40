/*
 * lib/kafka/json.c - a canonical JSON rendering of decoded messages: the
 * fields on the wire in the message's version, in wire order, so that a
 * test can compare it positionally with another implementation's decode
 * (kafka-python's), and a server can log what it received.
 */
#include <inttypes.h>
#include <string.h>

#include "common/common.h"
#include "kafka/internal.h"

/* A JSON string of exactly n bytes (NULs included). */
static void quote(klog_sbuf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[256];
    size_t k = 0;
    tmp[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (k > sizeof(tmp) - 8) {
            klog__sbuf_printf(b, "%.*s", (int)k, tmp);
            k = 0;
        }
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            tmp[k++] = '\\';
            tmp[k++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(tmp + k, "\\u00", 4);
            k += 4;
            tmp[k++] = hex[c >> 4];
            tmp[k++] = hex[c & 15];
        } else {
            tmp[k++] = (char)c;
        }
    }
    tmp[k++] = '"';
    klog__sbuf_printf(b, "%.*s", (int)k, tmp);
}

static void str_json(klog_sbuf *b, const kk_str *s)
{
    if (!s->p)
        klog__sbuf_printf(b, "null");
    else
        quote(b, s->p, s->len < 0 ? strlen(s->p) : (size_t)s->len);
}

static void hex_json(klog_sbuf *b, const uint8_t *p, size_t n, size_t max_hex)
{
    static const char hex[] = "0123456789abcdef";
    size_t show = max_hex && n > max_hex ? max_hex : n;
    char tmp[257];
    klog__sbuf_printf(b, "{\"len\":%zu,\"hex\":\"", n);
    for (size_t i = 0; i < show;) {
        size_t k = 0;
        for (; i < show && k < sizeof(tmp) - 2; i++) {
            tmp[k++] = hex[p[i] >> 4];
            tmp[k++] = hex[p[i] & 15];
        }
        klog__sbuf_printf(b, "%.*s", (int)k, tmp);
    }
    klog__sbuf_printf(b, "%s\"}", show < n ? "..." : "");
}

static void struct_json(klog_sbuf *b, const kk_schema *s, int v, const uint8_t *src, size_t max_hex);

static void array_json(klog_sbuf *b, const kk_field *f, int v, const kk_array_any *a, size_t max_hex)
{
    if (a->n < 0) {
        klog__sbuf_printf(b, "null");
        return;
    }
    klog__sbuf_printf(b, "[");
    for (int32_t i = 0; i < a->n; i++) {
        if (i)
            klog__sbuf_printf(b, ",");
        switch (f->type) {
        case KK_T_I32S: klog__sbuf_printf(b, "%" PRId32, ((const int32_t *)a->v)[i]); break;
        case KK_T_STRS: str_json(b, &((const kk_str *)a->v)[i]); break;
        default:
            struct_json(b, f->sub, v, (const uint8_t *)a->v + (size_t)i * f->sub->size, max_hex);
            break;
        }
    }
    klog__sbuf_printf(b, "]");
}

static void struct_json(klog_sbuf *b, const kk_schema *s, int v, const uint8_t *src, size_t max_hex)
{
    klog__sbuf_printf(b, "{");
    bool first = true;
    for (int i = 0; i < s->nfields; i++) {
        const kk_field *f = &s->fields[i];
        if (!kk_field_on(f, v))
            continue;
        const uint8_t *at = src + f->off;
        klog__sbuf_printf(b, "%s\"%s\":", first ? "" : ",", f->name);
        first = false;
        switch (f->type) {
        case KK_T_BOOL: klog__sbuf_printf(b, "%s", *(const bool *)at ? "true" : "false"); break;
        case KK_T_I8: klog__sbuf_printf(b, "%d", *(const int8_t *)at); break;
        case KK_T_I16: { int16_t x; memcpy(&x, at, 2); klog__sbuf_printf(b, "%d", x); break; }
        case KK_T_I32: { int32_t x; memcpy(&x, at, 4); klog__sbuf_printf(b, "%" PRId32, x); break; }
        case KK_T_I64: { int64_t x; memcpy(&x, at, 8); klog__sbuf_printf(b, "%" PRId64, x); break; }
        case KK_T_STR: str_json(b, (const kk_str *)(const void *)at); break;
        case KK_T_BYTES: {
            const kk_bytes *x = (const kk_bytes *)(const void *)at;
            if (!x->p)
                klog__sbuf_printf(b, "null");
            else
                hex_json(b, x->p, (size_t)(x->len < 0 ? 0 : x->len), max_hex);
            break;
        }
        case KK_T_RECORDS: {
            const kk_records *x = (const kk_records *)(const void *)at;
            if (x->iovcnt > 0) {
                size_t n = 0;
                for (int k = 0; k < x->iovcnt; k++)
                    n += x->iov[k].iov_len;
                klog__sbuf_printf(b, "{\"len\":%zu,\"iovcnt\":%d}", n, x->iovcnt);
            } else if (!x->p) {
                klog__sbuf_printf(b, "null");
            } else {
                hex_json(b, x->p, (size_t)(x->len < 0 ? 0 : x->len), max_hex);
            }
            break;
        }
        default: array_json(b, f, v, (const kk_array_any *)(const void *)at, max_hex); break;
        }
    }
    klog__sbuf_printf(b, "}");
}

void kk_json_body(klog_sbuf *b, const kk_schema *s, int16_t version, const void *body, size_t max_hex)
{
    struct_json(b, s, version, body, max_hex);
}

void kk_json_request(klog_sbuf *b, const kk_request *r, size_t max_hex)
{
    klog__sbuf_printf(b, "{\"api_key\":%d,\"api_version\":%d,\"correlation_id\":%" PRId32
                      ",\"client_id\":", r->hdr.api_key, r->hdr.api_version, r->hdr.correlation_id);
    str_json(b, &r->hdr.client_id);
    klog__sbuf_printf(b, ",\"body\":");
    if (r->api && kk_api_check(r->hdr.api_key, r->hdr.api_version) == 0)
        struct_json(b, r->api->req, r->hdr.api_version, (const uint8_t *)&r->body, max_hex);
    else
        klog__sbuf_printf(b, "null");
    klog__sbuf_printf(b, "}");
}
