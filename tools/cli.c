/*
 * tools/cli.c - helpers shared by the subcommands of the klog tool: error
 * lines, option parsing, opening the data directory, JSON in and out.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

const char *cli_global_dir;
volatile sig_atomic_t cli_stop;

static void on_signal(int sig)
{
    (void)sig;
    cli_stop = 1;
}

void cli_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed pipe shows up as a write error */
}

int cli_usage(const char *ctx, const char *help, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "klog: %s: %s (see 'klog %s --help')\n", ctx, msg, help);
    return CLI_USAGE;
}

int cli_topic_operand(const char *ctx, int argc, char **argv, int optind_, const char **topic)
{
    if (optind_ < argc) {
        if (*topic || optind_ + 1 < argc)
            return cli_usage(ctx, ctx, "unexpected argument '%s'", argv[*topic ? optind_ : optind_ + 1]);
        *topic = argv[optind_];
    }
    if (!*topic)
        return cli_usage(ctx, ctx, "no topic given");
    return CLI_OK;
}

int cli_err(const char *ctx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "klog: %s: %s\n", ctx, msg);
    return CLI_FAIL;
}

int cli_status(int rc)
{
    return rc == KLOG_ELOCKED ? CLI_LOCKED : rc < 0 ? CLI_FAIL : CLI_OK;
}

int cli_fail(const char *ctx, const char *what, int rc, const char *errbuf)
{
    const char *why = errbuf && *errbuf ? errbuf : klog_strerror(rc);
    if (rc == KLOG_ELOCKED)
        why = "data directory is locked by another process (an application has it open; "
              "only 'klog dump' and 'klog verify' work beside it)";
    if (what && *what)
        fprintf(stderr, "klog: %s: %s: %s\n", ctx, what, why);
    else
        fprintf(stderr, "klog: %s: %s\n", ctx, why);
    return cli_status(rc);
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *lo,
               const char *ctx, const char *help)
{
    opterr = 0;
    int c = getopt_long(argc, argv, shortopts, lo, NULL);
    if (c != '?' && c != ':')
        return c;
    const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (strncmp(bad, "--", 2) == 0 && lo) {
        /* unknown long option, or a known one missing its value */
        const char *name = bad + 2;
        size_t n = strcspn(name, "=");
        bool known = false;
        for (const struct option *o = lo; o->name; o++)
            if (strlen(o->name) == n && strncmp(o->name, name, n) == 0)
                known = true;
        if (known)
            cli_usage(ctx, help, "option %s needs a value", bad);
        else
            cli_usage(ctx, help, "unknown option %s", bad);
    } else if (optopt > 0 && optopt < 128 && optopt != '?' && strchr(shortopts, optopt)) {
        cli_usage(ctx, help, "option -%c needs a value", optopt);
    } else if (optopt > 0 && optopt < 128) {
        cli_usage(ctx, help, "unknown option -%c", optopt);
    } else {
        cli_usage(ctx, help, "bad option %s", bad);
    }
    return '?';
}

bool cli_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s)
        return false;
    *out = v;
    return true;
}

bool cli_int(const char *s, int min, int max, int *out)
{
    int64_t v;
    if (!cli_i64(s, &v) || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

const char *cli_dir(const char *ctx, const char *help, const char *opt_dir)
{
    const char *d = opt_dir ? opt_dir : cli_global_dir;
    if (!d || !*d)
        d = getenv("KLOG_DIR");
    if (!d || !*d) {
        cli_usage(ctx, help, "no data directory: give -d DIR or set KLOG_DIR");
        return NULL;
    }
    return d;
}

int cli_open(const char *ctx, const char *dir, bool create, const klog_conf *conf, klog **k)
{
    *k = NULL;
    struct stat st;
    if (!create) {
        if (stat(dir, &st) != 0)
            return cli_err(ctx, "%s: %s", dir, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return cli_err(ctx, "%s: not a directory", dir);
    }
    char err[512] = "";
    int rc = klog_open(k, dir, conf, err, sizeof err);
    if (rc < 0)
        return cli_fail(ctx, dir, rc, rc == KLOG_ELOCKED ? NULL : err);
    return CLI_OK;
}

int cli_check_topic(const char *ctx, klog *k, const char *topic, int32_t partition, int *nparts)
{
    int np = klog_topic_describe(k, topic, NULL, 0, NULL, 0);
    if (np < 0)
        return cli_fail(ctx, topic, np, np == KLOG_EUNKNOWN_TOPIC ? "no such topic" : NULL);
    if (partition >= np)
        return cli_err(ctx, "%s: no partition %d (the topic has %d)", topic, (int)partition, np);
    *nparts = np;
    return CLI_OK;
}

int cli_conf_set(const char *ctx, klog_conf *conf, const char *key, const char *value)
{
    char err[512] = "";
    int rc = klog_conf_set(conf, key, value, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "klog: %s: %s\n", ctx, *err ? err : klog_strerror(rc));
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_conf_kv(const char *ctx, klog_conf *conf, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        fprintf(stderr, "klog: %s: '%s': expected key=value\n", ctx, kv);
        return CLI_USAGE;
    }
    char key[256];
    size_t n = (size_t)(eq - kv);
    if (n >= sizeof key) {
        fprintf(stderr, "klog: %s: '%s': key too long\n", ctx, kv);
        return CLI_USAGE;
    }
    memcpy(key, kv, n);
    key[n] = '\0';
    return cli_conf_set(ctx, conf, key, eq + 1);
}

/* Exactly n digits at *p, moved past. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

bool cli_datetime_ms(const char *s, int64_t *ms)
{
    int Y, M, D, h, m, sec, frac = 0;
    const char *p = s;
    if (!s || !digits(&p, 4, &Y) || *p++ != '-' || !digits(&p, 2, &M) || *p++ != '-' || !digits(&p, 2, &D) ||
        *p++ != 'T' || !digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &m) || *p++ != ':' ||
        !digits(&p, 2, &sec))
        return false;
    if (*p == '.') {
        p++;
        int n = 0, scale = 100;
        while (*p >= '0' && *p <= '9' && n < 9) {
            frac += (*p - '0') * scale;
            scale /= 10;
            p++, n++;
        }
        if (n == 0)
            return false;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return false;
    struct tm tm = { .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m,
                     .tm_sec = sec, .tm_isdst = -1 };
    time_t t;
    if (*p == '\0') {
        t = mktime(&tm); /* local time */
        if (t == (time_t)-1 && !(Y == 1969 && M == 12 && D == 31))
            return false;
    } else {
        int zone = 0;
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, zh, zm;
            if (!digits(&p, 2, &zh))
                return false;
            if (*p == ':')
                p++;
            if (!digits(&p, 2, &zm) || zh > 23 || zm > 59)
                return false;
            zone = sign * (zh * 3600 + zm * 60);
        } else {
            return false;
        }
        if (*p)
            return false;
        t = timegm(&tm) - zone;
    }
    if (tm.tm_mday != D || tm.tm_mon != M - 1)
        return false; /* 2026-02-31 normalised into March */
    *ms = (int64_t)t * 1000 + frac;
    return true;
}

int64_t cli_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t cli_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- JSON and byte output ------------------------------------------------- */

bool cli_utf8_valid(const void *p, size_t n)
{
    const uint8_t *s = p, *e = s + n;
    while (s < e) {
        uint8_t c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if ((size_t)(e - s) < len)
            return false;
        for (size_t i = 1; i < len; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false; /* overlong, out of range, or a surrogate */
        s += len;
    }
    return true;
}

static void json_raw(FILE *f, const uint8_t *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

void cli_json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    size_t n = strlen(s);
    if (cli_utf8_valid(s, n))
        json_raw(f, (const uint8_t *)s, n);
    else
        cli_escaped(f, s, n); /* never happens for names klog accepts */
}

void cli_base64(FILE *f, const void *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *s = p;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        fputc(tab[v >> 18], f);
        fputc(tab[(v >> 12) & 63], f);
        fputc(tab[(v >> 6) & 63], f);
        fputc(tab[v & 63], f);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        fputc(tab[v >> 18], f);
        fputc(tab[(v >> 12) & 63], f);
        fputs("==", f);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        fputc(tab[v >> 18], f);
        fputc(tab[(v >> 12) & 63], f);
        fputc(tab[(v >> 6) & 63], f);
        fputc('=', f);
    }
}

bool cli_json_bytes(FILE *f, const void *p, size_t n)
{
    if (!p) {
        fputs("null", f);
        return false;
    }
    if (cli_utf8_valid(p, n)) {
        json_raw(f, p, n);
        return false;
    }
    fputc('"', f);
    cli_base64(f, p, n);
    fputc('"', f);
    return true;
}

void cli_escaped(FILE *f, const void *p, size_t n)
{
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '\\')
            fputs("\\\\", f);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

/* ---- a tiny JSON reader --------------------------------------------------- */

typedef struct cj_in {
    const char *p;
    int depth;
} cj_in;

static void ws(cj_in *in)
{
    while (*in->p == ' ' || *in->p == '\n' || *in->p == '\t' || *in->p == '\r')
        in->p++;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A string at in->p (which is at '"'): a malloc'ed, NUL-terminated copy. */
static char *cj_string(cj_in *in)
{
    in->p++;
    size_t cap = 32, n = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    for (;;) {
        char c = *in->p++;
        if (c == '\0') {
            free(s);
            return NULL;
        }
        if (c == '"')
            break;
        uint32_t cp = (uint8_t)c;
        bool raw = true;
        if (c == '\\') {
            char e = *in->p++;
            raw = false;
            switch (e) {
            case 'n': cp = '\n'; break;
            case 't': cp = '\t'; break;
            case 'r': cp = '\r'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case '/': case '\\': case '"': cp = (uint8_t)e; break;
            case 'u': {
                cp = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hexval(*in->p++);
                    if (h < 0) {
                        free(s);
                        return NULL;
                    }
                    cp = cp << 4 | (uint32_t)h;
                }
                /* a surrogate pair (what Python's json.dumps writes for
                 * characters past U+FFFF) is one character; a lone
                 * surrogate is malformed */
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    free(s);
                    return NULL;
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    uint32_t lo = 0;
                    if (in->p[0] != '\\' || in->p[1] != 'u') {
                        free(s);
                        return NULL;
                    }
                    in->p += 2;
                    for (int i = 0; i < 4; i++) {
                        int h = hexval(*in->p++);
                        if (h < 0) {
                            free(s);
                            return NULL;
                        }
                        lo = lo << 4 | (uint32_t)h;
                    }
                    if (lo < 0xdc00 || lo > 0xdfff) {
                        free(s);
                        return NULL;
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                break;
            }
            default:
                free(s);
                return NULL;
            }
        }
        if (n + 5 > cap) {
            char *ns = realloc(s, cap *= 2);
            if (!ns) {
                free(s);
                return NULL;
            }
            s = ns;
        }
        if (raw || cp < 0x80) {
            s[n++] = (char)cp;
        } else if (cp < 0x800) {
            s[n++] = (char)(0xc0 | cp >> 6);
            s[n++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            s[n++] = (char)(0xe0 | cp >> 12);
            s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            s[n++] = (char)(0x80 | (cp & 0x3f));
        } else {
            s[n++] = (char)(0xf0 | cp >> 18);
            s[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            s[n++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    s[n] = '\0';
    return s;
}

static cj *cj_value(cj_in *in)
{
    ws(in);
    if (++in->depth > 64)
        return NULL;
    cj *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    char c = *in->p;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        v->type = c == '{' ? CJ_OBJ : CJ_ARR;
        in->p++;
        ws(in);
        cj **tail = &v->child;
        if (*in->p == close) {
            in->p++;
        } else {
            for (;;) {
                char *key = NULL;
                if (v->type == CJ_OBJ) {
                    ws(in);
                    if (*in->p != '"' || !(key = cj_string(in)))
                        goto bad;
                    ws(in);
                    if (*in->p++ != ':') {
                        free(key);
                        goto bad;
                    }
                }
                cj *e = cj_value(in);
                if (!e) {
                    free(key);
                    goto bad;
                }
                e->key = key;
                *tail = e;
                tail = &e->next;
                ws(in);
                if (*in->p == ',') {
                    in->p++;
                    continue;
                }
                if (*in->p++ != close)
                    goto bad;
                break;
            }
        }
    } else if (c == '"') {
        v->type = CJ_STR;
        if (!(v->str = cj_string(in)))
            goto bad;
    } else if (!strncmp(in->p, "null", 4)) {
        v->type = CJ_NULL;
        in->p += 4;
    } else if (!strncmp(in->p, "true", 4)) {
        v->type = CJ_BOOL;
        v->num = 1;
        in->p += 4;
    } else if (!strncmp(in->p, "false", 5)) {
        v->type = CJ_BOOL;
        in->p += 5;
    } else {
        char *end;
        v->type = CJ_NUM;
        v->num = strtod(in->p, &end);
        if (end == in->p)
            goto bad;
        in->p = end;
    }
    in->depth--;
    return v;
bad:
    cj_free(v);
    return NULL;
}

cj *cj_parse(const char *text)
{
    cj_in in = { text, 0 };
    cj *v = cj_value(&in);
    if (!v)
        return NULL;
    ws(&in);
    if (*in.p) {
        cj_free(v);
        return NULL;
    }
    return v;
}

void cj_free(cj *v)
{
    while (v) {
        cj *next = v->next;
        cj_free(v->child);
        free(v->str);
        free(v->key);
        free(v);
        v = next;
    }
}

const cj *cj_get(const cj *obj, const char *key)
{
    if (!obj || obj->type != CJ_OBJ)
        return NULL;
    for (const cj *e = obj->child; e; e = e->next)
        if (e->key && !strcmp(e->key, key))
            return e;
    return NULL;
}

const char *cj_str(const cj *obj, const char *key)
{
    const cj *v = cj_get(obj, key);
    return v && v->type == CJ_STR ? v->str : NULL;
}

int64_t cj_int(const cj *obj, const char *key, int64_t dflt)
{
    const cj *v = cj_get(obj, key);
    return v && v->type == CJ_NUM ? (int64_t)v->num : dflt;
}
