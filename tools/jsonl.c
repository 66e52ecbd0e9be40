/*
 * tools/jsonl.c - `klog produce --json`: one record per line of JSON, read
 * whole and checked whole before the first is sent (a bad line sends
 * nothing).  Shared by the local and the remote produce (remote.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

int cli_read_all(FILE *f, size_t cap, char **out, size_t *len)
{
    size_t size = 65536, n = 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (n == size) {
            if (size >= cap) {
                free(buf);
                return -EFBIG;
            }
            size = size * 2 > cap ? cap : size * 2;
            char *nb = realloc(buf, size + 1);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, size - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                free(buf);
                return -EIO;
            }
            break;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int b64val(char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
         : c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode base64 s into a new buffer; false when s is not base64. */
static bool unbase64(const char *s, char **out, size_t *len)
{
    size_t n = strlen(s);
    if (n % 4)
        return false;
    char *o = malloc(n / 4 * 3 + 1);
    if (!o)
        return false;
    size_t w = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
            } else if ((v[j] = b64val(s[i + j])) < 0 || pad) {
                free(o);
                return false;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        o[w++] = (char)(x >> 16);
        if (pad < 2)
            o[w++] = (char)(x >> 8);
        if (pad < 1)
            o[w++] = (char)x;
    }
    *out = o;
    *len = w;
    return true;
}

static bool flag(const cj *obj, const char *name)
{
    const cj *v = cj_get(obj, name);
    return v && v->type == CJ_BOOL && v->num != 0;
}

/* A key or value: a string (base64 when b64), or null.  *p owned. */
static bool bytes(const cj *v, bool b64, char **p, size_t *n)
{
    *p = NULL;
    *n = 0;
    if (!v || v->type == CJ_NULL)
        return true;
    if (v->type != CJ_STR)
        return false;
    if (b64)
        return unbase64(v->str, p, n);
    *n = strlen(v->str); /* \u0000 is not taken: cj strings end at NUL */
    return (*p = strdup(v->str)) != NULL;
}

/* An integer member in [lo, hi]: 1 present, 0 absent, -1 bad. */
static int integer(const cj *obj, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    const cj *v = cj_get(obj, name);
    if (!v || v->type == CJ_NULL)
        return 0;
    if (v->type != CJ_NUM || !(v->num >= (double)lo && v->num <= (double)hi) || (double)(int64_t)v->num != v->num)
        return -1;
    *out = (int64_t)v->num;
    return 1;
}

void cli_jrec_free(cli_jrec *r)
{
    free(r->key);
    free(r->value);
    for (size_t i = 0; i < r->nheaders; i++) {
        free((void *)r->headers[i].key);
        free((void *)r->headers[i].value);
    }
    free(r->headers);
    memset(r, 0, sizeof *r);
}

#define BAD(...) (snprintf(why, whysize, __VA_ARGS__), cj_free(root), cli_jrec_free(r), false)

bool cli_jrec_parse(const char *line, int32_t nparts, cli_jrec *r, char *why, size_t whysize)
{
    memset(r, 0, sizeof *r);
    r->partition = KLOG_PARTITION_ANY;
    /* cj strings end at their first NUL: a \u0000 escape would cut a key
     * or value short without a word, so it is refused */
    for (const char *u = strstr(line, "\\u0000"); u; u = strstr(u + 1, "\\u0000")) {
        size_t bs = 0;
        while (u - bs > line && u[-(ptrdiff_t)bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0) {
            cj *root = NULL;
            return BAD("\\u0000 in a string: send such bytes in base64 (\"key_base64\"/\"value_base64\":true)");
        }
    }
    cj *root = cj_parse(line);
    if (!root)
        return BAD("not JSON (one object per line)");
    if (root->type != CJ_OBJ)
        return BAD("not a JSON object");
    for (const cj *m = root->child; m; m = m->next) {
        static const char *const known[] = { "key", "value", "headers", "partition", "timestamp", "key_base64",
                                              "value_base64", "topic", "offset", NULL };
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++)
            ok = !strcmp(m->key, known[i]);
        if (!ok)
            return BAD("unknown member \"%s\" (known: key, value, headers, partition, timestamp)", m->key);
    }
    if (!bytes(cj_get(root, "key"), flag(root, "key_base64"), &r->key, &r->key_len))
        return BAD("\"key\" is not a string or null%s", flag(root, "key_base64") ? " in base64" : "");
    r->has_key = r->key != NULL;
    if (!bytes(cj_get(root, "value"), flag(root, "value_base64"), &r->value, &r->value_len))
        return BAD("\"value\" is not a string or null%s", flag(root, "value_base64") ? " in base64" : "");
    int64_t v;
    int got = integer(root, "partition", 0, INT32_MAX, &v);
    if (got < 0)
        return BAD("\"partition\" is not a partition number");
    if (got) {
        if (v >= nparts)
            return BAD("partition %" PRId64 ": the topic has %d", v, (int)nparts);
        r->partition = (int32_t)v;
    }
    if ((got = integer(root, "timestamp", 0, INT64_C(1) << 52, &v)) < 0)
        return BAD("\"timestamp\" is not a time in ms since the epoch");
    if (got)
        r->timestamp = v;
    /* headers: {"k":"v",...} or consume --format json's [{"key":..,"value":..},...] */
    const cj *h = cj_get(root, "headers");
    if (h && h->type != CJ_NULL) {
        if (h->type != CJ_OBJ && h->type != CJ_ARR)
            return BAD("\"headers\" is not an object or an array");
        size_t n = 0;
        for (const cj *e = h->child; e; e = e->next)
            n++;
        if (n > 1024)
            return BAD("more than 1024 headers");
        if (n && !(r->headers = calloc(n, sizeof *r->headers)))
            return BAD("out of memory");
        for (const cj *e = h->child; e; e = e->next) {
            klog_header *kh = &r->headers[r->nheaders];
            char *hk = NULL, *hv = NULL;
            size_t hkl = 0, hvl = 0;
            bool ok;
            if (h->type == CJ_OBJ) {
                ok = (hk = strdup(e->key)) != NULL && bytes(e, false, &hv, &hvl);
                hkl = hk ? strlen(hk) : 0;
            } else {
                ok = e->type == CJ_OBJ && bytes(cj_get(e, "key"), flag(e, "key_base64"), &hk, &hkl) && hk &&
                     bytes(cj_get(e, "value"), flag(e, "value_base64"), &hv, &hvl);
            }
            *kh = (klog_header){ hk, hkl, hv, hvl };
            r->nheaders++;
            if (!ok)
                return BAD("header %zu: not a string key with a string or null value", r->nheaders);
        }
    }
    cj_free(root);
    return true;
}

/* Blank lines (spaces only) are skipped; the end of the line at *p. */
static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

int cli_jsonl_each(const char *ctx, char *buf, size_t len, int32_t nparts,
                   int (*fn)(void *arg, int64_t line, const cli_jrec *r), void *arg)
{
    /* pass 0 checks every line, pass 1 sends: a bad line sends nothing */
    for (int pass = 0; pass < 2; pass++) {
        int64_t lineno = 0;
        for (size_t at = 0; at < len;) {
            char *nl = memchr(buf + at, '\n', len - at);
            size_t end = nl ? (size_t)(nl - buf) : len;
            lineno++;
            char save = buf[end];
            buf[end] = '\0';
            int rc = CLI_OK;
            if (!blank(buf + at, end - at)) {
                if (strlen(buf + at) != end - at) {
                    rc = cli_err(ctx, "line %" PRId64 ": a NUL byte in the line (nothing sent)", lineno);
                } else {
                    cli_jrec r;
                    char why[256];
                    if (!cli_jrec_parse(buf + at, nparts, &r, why, sizeof why))
                        rc = cli_err(ctx, "line %" PRId64 ": %s (nothing sent)", lineno, why);
                    else if (pass == 1)
                        rc = fn(arg, lineno, &r);
                    cli_jrec_free(&r);
                }
            }
            buf[end] = save;
            if (rc != CLI_OK)
                return rc;
            at = end + 1;
        }
    }
    return CLI_OK;
}
