/*
 * tools/segfile.c - read-only readers of segment, index and checkpoint
 * files (see segfile.h for the rules, lib/storage/layout.h for the layouts).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <klog/error.h>

#include "segfile.h"

static uint32_t ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

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
    char *b;
    size_t fsize;
    int rc = file_load(path, &b, &fsize);
    if (rc < 0)
        return rc;
    uint32_t magic = time ? KL_IX_MAGIC_TIME : KL_IX_MAGIC_OFFSET;
    size_t esize = kl_ix_esize(magic);
    const uint8_t *u = (const uint8_t *)b;
    ix->status = kl_ix_decode(u, fsize, magic, &ix->h);
    const kl_ix_hdr *h = &ix->h;
    switch (ix->status) {
    case KL_IX_SHORT:
        snprintf(ix->problem, sizeof ix->problem, "%zu bytes: shorter than the %d-byte header", fsize,
                 KL_IX_HDR_SIZE);
        break;
    case KL_IX_BAD_MAGIC:
        snprintf(ix->problem, sizeof ix->problem, "bad magic 0x%08x (want 0x%08x)", h->magic, magic);
        break;
    case KL_IX_BAD_VERSION:
        snprintf(ix->problem, sizeof ix->problem, "unknown version %u", h->version);
        break;
    case KL_IX_BAD_ESIZE:
        snprintf(ix->problem, sizeof ix->problem, "entry size %u (want %zu)", h->esize, esize);
        break;
    case KL_IX_BAD_LENGTH:
        snprintf(ix->problem, sizeof ix->problem, "%zu bytes, but the header says %u entries (%zu bytes)", fsize,
                 h->count, KL_IX_HDR_SIZE + (size_t)h->count * esize);
        break;
    case KL_IX_BAD_CHECKSUM:
    case KL_IX_OK:
        ix->framing_ok = true;
        break;
    }
    ix->checksum_ok = ix->status == KL_IX_OK;
    /* Entries are worth showing whenever their size is known, even when
     * the header is damaged otherwise. */
    if (ix->status != KL_IX_SHORT && h->magic == magic && h->esize == esize) {
        size_t avail = (fsize - KL_IX_HDR_SIZE) / esize;
        ix->e = calloc(avail ? avail : 1, sizeof *ix->e);
        if (!ix->e) {
            free(b);
            return -ENOMEM;
        }
        for (size_t i = 0; i < avail; i++)
            kl_ix_entry(u, magic, i, &ix->e[i]);
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
    uint8_t b[KL_CKPT_SIZE + 1]; /* one more: a longer file is damaged */
    ssize_t n = pread_full(fd, b, sizeof b, 0);
    close(fd);
    if (n < 0)
        return (int)n;
    c->ok = kl_ckpt_decode(b, (size_t)n, magic, &c->v) == 0;
    return 0;
}

/* ---- whole small files ---------------------------------------------------------- */

int file_load(const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    for (;;) {
        if (!b) {
            close(fd);
            return -ENOMEM;
        }
        ssize_t got = pread_full(fd, b + n, cap - n, n);
        if (got < 0) {
            free(b);
            close(fd);
            return (int)got;
        }
        n += (size_t)got;
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(b, cap + 1);
        if (!nb)
            free(b);
        b = nb;
    }
    close(fd);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}
