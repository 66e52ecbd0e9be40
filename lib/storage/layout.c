/*
 * lib/storage/layout.c - encoders, decoders and checks for the index,
 * checkpoint, leader-epoch-checkpoint and topics.meta files and the segment file names (see
 * layout.h for the layouts).  Pure: no I/O, no state.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "common/common.h"
#include "storage/layout.h"

/* ---- index files ---------------------------------------------------------- */

size_t kl_ix_esize(uint32_t magic)
{
    return magic == KL_IX_MAGIC_OFFSET ? sizeof(kl_oentry) : magic == KL_IX_MAGIC_TIME ? sizeof(kl_tentry) : 0;
}

/* XXH3-64 of the header without its checksum field, then the entries. */
static uint64_t ix_sum(const uint8_t *file, size_t entries_len)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, file, KL_IX_SUM_OFF);
    XXH3_64bits_update(&st, file + KL_IX_HDR_SIZE, entries_len);
    return XXH3_64bits_digest(&st);
}

size_t kl_ix_encode(uint8_t *out, const kl_ix_hdr *h, const void *entries)
{
    size_t esize = kl_ix_esize(h->magic), elen = (size_t)h->count * esize;
    klog__st32(out, h->magic);
    klog__st16(out + 4, KL_IX_VERSION);
    klog__st16(out + 6, (uint16_t)esize);
    klog__st64(out + 8, (uint64_t)h->base);
    klog__st64(out + 16, h->seg_size);
    klog__st64(out + 24, (uint64_t)h->next_offset);
    klog__st64(out + 32, (uint64_t)h->first_ts);
    klog__st64(out + 40, (uint64_t)h->max_ts);
    klog__st32(out + 48, h->count);
    klog__st32(out + 52, h->proven);
    if (elen)
        memcpy(out + KL_IX_HDR_SIZE, entries, elen);
    klog__st64(out + KL_IX_SUM_OFF, ix_sum(out, elen));
    return KL_IX_HDR_SIZE + elen;
}

enum kl_ix_status kl_ix_decode(const uint8_t *file, size_t len, uint32_t magic, kl_ix_hdr *h)
{
    memset(h, 0, sizeof *h);
    if (len < KL_IX_HDR_SIZE)
        return KL_IX_SHORT;
    h->magic = klog__ld32(file);
    h->version = klog__ld16(file + 4);
    h->esize = klog__ld16(file + 6);
    h->base = (int64_t)klog__ld64(file + 8);
    h->seg_size = klog__ld64(file + 16);
    h->next_offset = (int64_t)klog__ld64(file + 24);
    h->first_ts = (int64_t)klog__ld64(file + 32);
    h->max_ts = (int64_t)klog__ld64(file + 40);
    h->count = klog__ld32(file + 48);
    h->proven = klog__ld32(file + 52);
    h->checksum = klog__ld64(file + KL_IX_SUM_OFF);
    size_t esize = kl_ix_esize(magic);
    if (h->magic != magic || esize == 0)
        return KL_IX_BAD_MAGIC;
    if (h->version != KL_IX_VERSION)
        return KL_IX_BAD_VERSION;
    if (h->esize != esize)
        return KL_IX_BAD_ESIZE;
    /* count is a u32 and esize at most 16: the product cannot overflow a
     * 64-bit size_t. */
    if (len - KL_IX_HDR_SIZE != (size_t)h->count * esize)
        return KL_IX_BAD_LENGTH;
    if (ix_sum(file, len - KL_IX_HDR_SIZE) != h->checksum)
        return KL_IX_BAD_CHECKSUM;
    return KL_IX_OK;
}

bool kl_ix_same_state(const kl_ix_hdr *a, const kl_ix_hdr *b)
{
    return a->base == b->base && a->seg_size == b->seg_size && a->next_offset == b->next_offset &&
           a->first_ts == b->first_ts && a->max_ts == b->max_ts;
}

void kl_ix_entry(const uint8_t *file, uint32_t magic, size_t i, kl_tentry *e)
{
    const uint8_t *p = file + KL_IX_HDR_SIZE + i * kl_ix_esize(magic);
    if (magic == KL_IX_MAGIC_TIME) {
        e->ts = (int64_t)klog__ld64(p + offsetof(kl_tentry, ts));
        e->rel = klog__ld32(p + offsetof(kl_tentry, rel));
        e->pos = klog__ld32(p + offsetof(kl_tentry, pos));
    } else {
        e->ts = 0;
        e->rel = klog__ld32(p + offsetof(kl_oentry, rel));
        e->pos = klog__ld32(p + offsetof(kl_oentry, pos));
    }
}

/* The structs are the file layout: no padding anywhere. */
_Static_assert(sizeof(kl_oentry) == 8 && offsetof(kl_oentry, pos) == 4, "offset index entry layout");
_Static_assert(sizeof(kl_tentry) == 16 && offsetof(kl_tentry, rel) == 8 && offsetof(kl_tentry, pos) == 12,
               "time index entry layout");

/* ---- checkpoints ------------------------------------------------------------- */

void kl_ckpt_encode(uint8_t out[KL_CKPT_SIZE], uint32_t magic, int64_t a, int64_t b)
{
    klog__st32(out, magic);
    klog__st32(out + 4, KL_CKPT_VERSION);
    klog__st64(out + 8, (uint64_t)a);
    klog__st64(out + 16, (uint64_t)b);
    klog__st64(out + 24, XXH3_64bits(out, 24));
}

int kl_ckpt_decode(const void *buf, size_t len, uint32_t magic, kl_ckpt *c)
{
    const uint8_t *p = buf;
    memset(c, 0, sizeof *c);
    if (len < 24)
        return KLOG_ECORRUPT;
    c->magic = klog__ld32(p);
    c->version = klog__ld32(p + 4);
    c->a = (int64_t)klog__ld64(p + 8);
    c->b = (int64_t)klog__ld64(p + 16);
    if (len != KL_CKPT_SIZE || c->magic != magic || c->version != KL_CKPT_VERSION ||
        klog__ld64(p + 24) != XXH3_64bits(p, 24) || c->a < 0 || c->b < 0)
        return KLOG_ECORRUPT;
    return 0;
}

/* ---- topics.meta ------------------------------------------------------------- */

#define META_HEAD_LEN (sizeof KL_META_HEAD - 1)

/* The first "\nend " in buf[0..len), or NULL. */
static const char *find_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 5 <= len; i++)
        if (buf[i] == '\n' && !memcmp(buf + i + 1, "end ", 4))
            return buf + i;
    return NULL;
}

int kl_meta_check(const char *buf, size_t len, size_t *body_len)
{
    if (len < META_HEAD_LEN || memcmp(buf, KL_META_HEAD, META_HEAD_LEN) != 0)
        return KLOG_ECORRUPT;
    const char *nl = find_end(buf, len);
    if (!nl)
        return KLOG_ECORRUPT;
    size_t body = (size_t)(nl + 1 - buf);
    /* exactly 16 hex digits, then the end of the line */
    const char *h = buf + body + 4;
    size_t left = len - (body + 4);
    uint64_t want = 0;
    size_t i = 0;
    for (; i < 16 && i < left; i++) {
        char ch = h[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            d = (unsigned)(ch - 'A' + 10);
        else
            return KLOG_ECORRUPT;
        want = want << 4 | d;
    }
    if (i != 16 || left < 17 || h[16] != '\n' || XXH3_64bits(buf, body) != want)
        return KLOG_ECORRUPT;
    *body_len = body;
    return 0;
}

__attribute__((format(printf, 3, 4))) static int meta_err(char *errbuf, size_t errsize, const char *fmt, ...)
{
    if (errbuf && errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errsize, fmt, ap);
        va_end(ap);
    }
    return KLOG_ECORRUPT;
}

/* "N" with N a decimal in [1, INT_MAX], nothing else. */
static bool parse_parts(const char *s, int *out)
{
    int64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
        if (v > INT32_MAX)
            return false;
    }
    if (v < 1)
        return false;
    *out = (int)v;
    return true;
}

/* Grow *v (of *cap elements of size elem) to hold need, doubling from 16.
 * klog__vec_reserve's rules (common.h), in a copy of its own: this file is
 * linked into the klog tool, which carries no klog__ symbols.  -ENOMEM when
 * the allocation fails or need elements would pass PTRDIFF_MAX bytes (the
 * largest object); *v and *cap are then untouched. */
static int grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    const size_t max = (size_t)PTRDIFF_MAX / elem; /* elem > 0: a sizeof */
    if (need > max)
        return -ENOMEM;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc = nc > max / 2 ? need : nc * 2;
    if (nc > max)
        nc = need; /* only a first 16 can pass max, and need does not */
    void *n = realloc(*v, nc * elem);
    if (!n)
        return -ENOMEM;
    *v = n;
    *cap = nc;
    return 0;
}

int kl_meta_parse(const char *buf, size_t len, kl_meta *m, char *errbuf, size_t errsize)
{
    memset(m, 0, sizeof *m);
    size_t body;
    if (kl_meta_check(buf, len, &body) < 0)
        return meta_err(errbuf, errsize, "damaged topic metadata (head line or checksum wrong)");
    /* The lines are walked as C strings: a NUL inside (with a checksum that
     * matches: a file made so) would end one before its newline. */
    if (memchr(buf, '\0', body))
        return meta_err(errbuf, errsize, "bad topic metadata (a NUL byte in it)");
    if (!(m->text = malloc(body + 1)))
        return -ENOMEM;
    memcpy(m->text, buf, body);
    m->text[body] = '\0';
    size_t tcap = 0, kcap = 0, nkvs = 0;
    size_t *first_kv = NULL; /* per topic: index of its first override in kvs */
    size_t fcap = 0;
    int rc = 0;
    for (char *line = m->text + META_HEAD_LEN, *nl; rc == 0 && *line; line = nl + 1) {
        nl = strchr(line, '\n');    /* body ends with '\n': never NULL */
        *nl = '\0';
        if (!*line)
            continue;
        if (!strncmp(line, "topic ", 6)) {
            char *name = line + 6, *sp = strchr(name, ' ');
            int parts;
            if (!sp || sp == name || !parse_parts(sp + 1, &parts)) {
                rc = meta_err(errbuf, errsize, "bad line \"%s\"", line);
                break;
            }
            *sp = '\0';
            if ((rc = grow((void **)&m->topics, &tcap, m->ntopics + 1, sizeof *m->topics)) < 0 ||
                (rc = grow((void **)&first_kv, &fcap, m->ntopics + 1, sizeof *first_kv)) < 0)
                break;
            m->topics[m->ntopics] = (kl_meta_topic){ .name = name, .partitions = parts };
            first_kv[m->ntopics++] = nkvs;
        } else if (!strncmp(line, "  ", 2) && m->ntopics > 0) {
            char *key = line + 2, *eq = strchr(key, '=');
            if (!eq || eq == key) {
                rc = meta_err(errbuf, errsize, "bad line \"%s\"", line);
                break;
            }
            *eq = '\0';
            if ((rc = grow((void **)&m->kvs, &kcap, nkvs + 1, sizeof *m->kvs)) < 0)
                break;
            m->kvs[nkvs++] = (kl_meta_kv){ key, eq + 1 };
            m->topics[m->ntopics - 1].nkv++;
        } else {
            rc = meta_err(errbuf, errsize, "bad line \"%s\"", line);
        }
    }
    /* kvs may have moved while it grew: point the topics at it now. */
    for (size_t i = 0; rc == 0 && i < m->ntopics; i++)
        m->topics[i].kv = m->topics[i].nkv ? m->kvs + first_kv[i] : NULL;
    free(first_kv);
    if (rc < 0)
        kl_meta_free(m);
    return rc;
}

void kl_meta_free(kl_meta *m)
{
    if (!m)
        return;
    free(m->topics);
    free(m->kvs);
    free(m->text);
    memset(m, 0, sizeof *m);
}

size_t kl_meta_seal(char *buf, size_t len, size_t cap)
{
    if (len >= cap)
        return len + 21; /* "end " + 16 digits + "\n" */
    int n = snprintf(buf + len, cap - len, "end %016" PRIx64 "\n", (uint64_t)XXH3_64bits(buf, len));
    return len + (size_t)n;
}

/* ---- leader-epoch-checkpoint ------------------------------------------------- */

/* Shortest entry line: "0 0\n". */
#define EP_ENTRY_MIN 4

typedef struct ep_cursor {
    const char *p, *end;
    size_t line; /* 1-based, for messages */
} ep_cursor;

/* Blanks inside a line: Java's \s minus the line terminators ("\r" only
 * ever ends a line, as readLine takes it). */
static bool ep_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\v' || ch == '\f';
}

/* A decimal integer with an optional sign (Java's parseInt / parseLong
 * accept "+" and "-"), within [lo, hi].  Advances the cursor past it. */
static bool ep_int(ep_cursor *c, int64_t lo, int64_t hi, int64_t *out)
{
    const char *p = c->p;
    bool neg = false;
    if (p < c->end && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    if (p == c->end || *p < '0' || *p > '9')
        return false;
    /* Accumulate as a negative number, whose range is the larger one. */
    int64_t v = 0;
    while (p < c->end && *p >= '0' && *p <= '9') {
        int d = *p++ - '0';
        if (v < (INT64_MIN + d) / 10)
            return false;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN)
            return false;
        v = -v;
    }
    if (v < lo || v > hi)
        return false;
    c->p = p;
    *out = v;
    return true;
}

/* End of the current line: an optional "\r", then the "\n". */
static bool ep_eol(ep_cursor *c)
{
    if (c->p < c->end && *c->p == '\r')
        c->p++;
    if (c->p == c->end || *c->p != '\n')
        return false;
    c->p++;
    c->line++;
    return true;
}

/* "epoch<blanks>start[blanks]\n" */
static bool ep_entry_line(ep_cursor *c, int64_t *epoch, int64_t *start)
{
    if (!ep_int(c, INT32_MIN, INT32_MAX, epoch))
        return false;
    const char *b = c->p;
    while (c->p < c->end && ep_blank(*c->p))
        c->p++;
    if (c->p == b || !ep_int(c, INT64_MIN, INT64_MAX, start))
        return false;
    /* Trailing blanks (Java's split drops them), then the end of the line. */
    while (c->p < c->end && ep_blank(*c->p))
        c->p++;
    return ep_eol(c);
}

int kl_epochs_parse(const char *buf, size_t len, kl_epoch_entry **out, size_t *n, char *errbuf, size_t errsize)
{
    *out = NULL;
    *n = 0;
    if (errbuf && errsize)
        errbuf[0] = 0;
    if (len == 0)
        return 0; /* Kafka creates the file empty before its first write */
    if (len > KL_EPOCH_FILE_MAX)
        return meta_err(errbuf, errsize, "%zu bytes: too large for %u entries", len, KL_EPOCH_MAX_ENTRIES);
    ep_cursor cur = { buf, buf + len, 1 };
    int64_t version, count;
    if (!ep_int(&cur, INT32_MIN, INT32_MAX, &version) || !ep_eol(&cur))
        return meta_err(errbuf, errsize, "line 1: not a version number");
    if (version != KL_EPOCH_VERSION) {
        meta_err(errbuf, errsize, "line 1: version %" PRId64 " (only %d is known)", version, KL_EPOCH_VERSION);
        return KLOG_EFORMAT;
    }
    if (!ep_int(&cur, 0, KL_EPOCH_MAX_ENTRIES, &count) || !ep_eol(&cur))
        return meta_err(errbuf, errsize, "line 2: not an entry count from 0 to %u", KL_EPOCH_MAX_ENTRIES);
    /* Before any allocation: the lines claimed must fit in what is left. */
    if ((size_t)count > (size_t)(cur.end - cur.p) / EP_ENTRY_MIN)
        return meta_err(errbuf, errsize, "line 2: %" PRId64 " entries claimed, %zu bytes left", count,
                        (size_t)(cur.end - cur.p));
    kl_epoch_entry *v = NULL;
    if (count > 0 && !(v = malloc((size_t)count * sizeof *v)))
        return -ENOMEM;
    size_t k = 0;
    int rc = 0;
    for (int64_t i = 0; i < count && rc == 0; i++) {
        int64_t epoch, start;
        size_t line = cur.line;
        if (!ep_entry_line(&cur, &epoch, &start)) {
            rc = meta_err(errbuf, errsize, "line %zu: not \"epoch start_offset\"", line);
        } else if (epoch < 0 || start < 0) {
            rc = meta_err(errbuf, errsize, "line %zu: negative epoch or start offset", line);
        } else if (k > 0 && (epoch <= v[k - 1].epoch || start < v[k - 1].start_offset)) {
            rc = meta_err(errbuf, errsize,
                          "line %zu: epoch %" PRId64 " at %" PRId64 " after epoch %d at %" PRId64
                          " (epochs must increase, start offsets must not decrease)",
                          line, epoch, start, (int)v[k - 1].epoch, v[k - 1].start_offset);
        } else if (k > 0 && start == v[k - 1].start_offset) {
            v[k - 1].epoch = (int32_t)epoch; /* the earlier epoch wrote nothing: Kafka's assign drops it */
        } else {
            v[k++] = (kl_epoch_entry){ (int32_t)epoch, start };
        }
    }
    if (rc == 0 && cur.p != cur.end)
        rc = meta_err(errbuf, errsize, "line %zu: more lines than the count (%" PRId64 ")", cur.line, count);
    if (rc < 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

/* ---- segment file names --------------------------------------------------- */

void kl_segment_name(char *out, size_t cap, int64_t base, const char *suffix)
{
    snprintf(out, cap, "%020lld%s", (long long)base, suffix);
}

bool kl_segment_name_parse(const char *name, const char *suffix, int64_t *base)
{
    size_t n = strlen(name), sl = strlen(suffix);
    if (n != 20 + sl || strcmp(name + 20, suffix) != 0)
        return false;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        int d = name[i] - '0';
        if (d < 0 || d > 9 || v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *base = v;
    return true;
}
