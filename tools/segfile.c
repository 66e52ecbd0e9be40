/*
 * tools/segfile.c - read-only readers of segment, index and checkpoint
 * files (see segfile.h for the layouts and the rules).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <klog/error.h>

#include "segfile.h"

static uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the klog file readers assume a little-endian host"
#endif

/* Read exactly n bytes at off unless the file ends first.  Returns bytes
 * read or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

bool segrd_zero_tail(segrd *r, uint64_t pos)
{
    uint8_t buf[65536];
    while (pos < r->size) {
        size_t want = (size_t)(r->size - pos < sizeof buf ? r->size - pos : sizeof buf);
        ssize_t n = pread(r->fd, buf, want, (off_t)pos);
        if (n <= 0)
            return false;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i])
                return false;
        pos += (uint64_t)n;
    }
    return true;
}

int segrd_open(segrd *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return -errno;
    struct stat st;
    if (fstat(r->fd, &st) < 0) {
        int e = -errno;
        close(r->fd);
        r->fd = -1;
        return e;
    }
    r->size = (uint64_t)st.st_size;
    r->cap = 1u << 20;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        close(r->fd);
        r->fd = -1;
        return -ENOMEM;
    }
    return 0;
}

void segrd_close(segrd *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
}

/* Make [pos, pos + n) resident in the buffer as far as the file (up to
 * r->size) has it.  Returns the bytes resident from pos, or -errno. */
static ssize_t ensure(segrd *r, uint64_t pos, size_t n)
{
    if (pos >= r->size)
        return 0;
    uint64_t left = r->size - pos;
    if (n > left)
        n = (size_t)left;
    if (pos >= r->bpos && pos + n <= r->bpos + r->have)
        return (ssize_t)(r->bpos + r->have - pos);
    if (n > r->cap) {
        uint8_t *nb = realloc(r->buf, n);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = n;
    }
    size_t want = r->cap < left ? r->cap : (size_t)left;
    ssize_t got = pread_full(r->fd, r->buf, want, pos);
    if (got < 0)
        return got;
    r->bpos = pos;
    r->have = (size_t)got;
    return got;
}

enum seg_status segrd_batch(segrd *r, uint64_t pos, const uint8_t **batch, size_t *len, kf_batch_info *bi,
                            int *err)
{
    *err = 0;
    if (pos >= r->size)
        return SEG_END;
    ssize_t got = ensure(r, pos, KF_LOG_OVERHEAD);
    if (got < 0) {
        *err = (int)got;
        return SEG_IOERR;
    }
    if ((size_t)got < KF_LOG_OVERHEAD)
        return SEG_INCOMPLETE;
    const uint8_t *p = r->buf + (pos - r->bpos);
    uint32_t blen = ld32(p + KF_OFF_LENGTH);
    size_t total = (size_t)blen + KF_LOG_OVERHEAD;
    if (blen >= KF_HDR_SIZE - KF_LOG_OVERHEAD && total <= KF_BATCH_MAX) {
        got = ensure(r, pos, total);
        if (got < 0) {
            *err = (int)got;
            return SEG_IOERR;
        }
        p = r->buf + (pos - r->bpos);
    }
    ssize_t n = kf_batch_parse(p, (size_t)got, bi);
    if (n == 0)
        return SEG_INCOMPLETE;
    if (n < 0) {
        *err = (int)n;
        return SEG_BADHDR;
    }
    *batch = p;
    *len = (size_t)n;
    return SEG_OK;
}

/* ---- index files ----------------------------------------------------------- */

int ix_load(const char *path, bool time, ixfile *ix)
{
    memset(ix, 0, sizeof *ix);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    size_t fsize = (size_t)st.st_size;
    uint8_t *b = malloc(fsize ? fsize : 1);
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    ssize_t got = pread_full(fd, b, fsize, 0);
    close(fd);
    if (got < 0) {
        free(b);
        return (int)got;
    }
    fsize = (size_t)got;
    size_t esize = time ? 16 : 8;
    if (fsize < IX_HDR) {
        snprintf(ix->problem, sizeof ix->problem, "%zu bytes: shorter than the %d-byte header", fsize, IX_HDR);
        free(b);
        return 0;
    }
    memcpy(ix->raw_hdr, b, IX_HDR);
    ix->magic = ld32(b);
    ix->version = ld16(b + 4);
    ix->esize = ld16(b + 6);
    ix->base = (int64_t)ld64(b + 8);
    ix->seg_size = ld64(b + 16);
    ix->next_offset = (int64_t)ld64(b + 24);
    ix->first_ts = (int64_t)ld64(b + 32);
    ix->max_ts = (int64_t)ld64(b + 40);
    ix->count = ld32(b + 48);
    ix->interval = ld32(b + 52);
    ix->checksum = ld64(b + 56);
    uint32_t want_magic = time ? IX_MAGIC_T : IX_MAGIC_O;
    if (ix->magic != want_magic)
        snprintf(ix->problem, sizeof ix->problem, "bad magic 0x%08x (want 0x%08x)", ix->magic, want_magic);
    else if (ix->version != 1)
        snprintf(ix->problem, sizeof ix->problem, "unknown version %u", ix->version);
    else if (ix->esize != esize)
        snprintf(ix->problem, sizeof ix->problem, "entry size %u (want %zu)", ix->esize, esize);
    else if (fsize != IX_HDR + (size_t)ix->count * esize)
        snprintf(ix->problem, sizeof ix->problem, "%zu bytes, but the header says %u entries (%zu bytes)", fsize,
                 ix->count, IX_HDR + (size_t)ix->count * esize);
    else
        ix->framing_ok = true;
    size_t avail = (fsize - IX_HDR) / esize;
    XXH3_state_t st3;
    XXH3_64bits_reset(&st3);
    XXH3_64bits_update(&st3, b, 56);
    XXH3_64bits_update(&st3, b + IX_HDR, fsize - IX_HDR);
    ix->checksum_ok = ix->framing_ok && XXH3_64bits_digest(&st3) == ix->checksum;
    if (ix->magic == want_magic && ix->esize == esize) {
        ix->e = calloc(avail ? avail : 1, sizeof *ix->e);
        if (!ix->e) {
            free(b);
            return -ENOMEM;
        }
        for (size_t i = 0; i < avail; i++) {
            const uint8_t *p = b + IX_HDR + i * esize;
            if (time) {
                ix->e[i].ts = (int64_t)ld64(p);
                ix->e[i].rel = ld32(p + 8);
                ix->e[i].pos = ld32(p + 12);
            } else {
                ix->e[i].ts = 0;
                ix->e[i].rel = ld32(p);
                ix->e[i].pos = ld32(p + 4);
            }
        }
        ix->n = avail;
    }
    free(b);
    return 0;
}

void ix_free(ixfile *ix)
{
    free(ix->e);
    ix->e = NULL;
    ix->n = 0;
}

/* ---- checkpoints ------------------------------------------------------------- */

int ckpt_load(const char *path, uint32_t magic, ckpt *c)
{
    memset(c, 0, sizeof *c);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t b[33];
    ssize_t n = pread_full(fd, b, sizeof b, 0);
    close(fd);
    if (n < 0)
        return (int)n;
    if (n >= 24) {
        c->magic = ld32(b);
        c->version = ld32(b + 4);
        c->a = (int64_t)ld64(b + 8);
        c->b = (int64_t)ld64(b + 16);
    }
    c->ok = n == 32 && c->magic == magic && c->version == 1 && ld64(b + 24) == XXH3_64bits(b, 24) && c->a >= 0 &&
            c->b >= 0;
    return 0;
}

bool seg_name(const char *name, const char *suffix, int64_t *base)
{
    size_t n = strlen(name), sl = strlen(suffix);
    if (n != 20 + sl || strcmp(name + 20, suffix) != 0)
        return false;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (name[i] - '0');
    }
    *base = v;
    return true;
}
