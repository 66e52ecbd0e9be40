/*
 * bench/compare/be_raw.c - the floor of any embedded log: length-prefixed
 * frames (4-byte key length, 4-byte value length, key, value) appended to
 * one file, one pwrite per batch (plus one fdatasync when durable).  No
 * index, no checksum, no recovery, no offsets: what an append costs when it
 * does nothing but append.  Reading is 1 MiB preads parsed frame by frame;
 * the tail reader waits on an eventfd posted after every write.  With
 * partitions > 1, one file per partition (batch i to file i % partitions),
 * read 1 MiB from each in turn, as one consumer over them reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

#define READ_CHUNK (1u << 20)
#define MAX_PARTS 64

struct bc_store {
    int fd;                       /* fds[0] */
    int fds[MAX_PARTS];
    uint64_t ends[MAX_PARTS];     /* bytes written per file (end: ends[0]) */
    unsigned parts;
    uint64_t batches;
    bool durable;
    uint64_t end;                 /* bytes written */
    _Atomic uint64_t published;   /* end, as readers may see it */
    int sig;                      /* eventfd of the reader, or -1 */
    uint8_t *buf;
    size_t cap;
};

struct bc_reader {
    bc_store *s;
    uint64_t pos;
    uint8_t *buf;
};

static int fail(const char *what)
{
    fprintf(stderr, "raw: %s: %s\n", what, strerror(errno));
    return -1;
}

static const char *r_check(const bc_env *env)
{
    (void)env;
    return NULL;
}

static void r_close(bc_store *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->parts; i++)
        if (s->fds[i] >= 0)
            close(s->fds[i]);
    if (s->sig >= 0)
        close(s->sig);
    free(s->buf);
    free(s);
}

static int r_open(bc_store **out, const bc_opts *o)
{
    bc_store *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->sig = -1;
    s->parts = o->partitions > 1 ? o->partitions : 1;
    if (s->parts > MAX_PARTS) {
        free(s);
        errno = EINVAL;
        return fail("partitions");
    }
    for (unsigned i = 0; i < s->parts; i++)
        s->fds[i] = -1;
    for (unsigned i = 0; i < s->parts; i++) {
        char path[4200];
        if (i == 0)
            snprintf(path, sizeof path, "%s/frames.log", o->dir);
        else
            snprintf(path, sizeof path, "%s/frames-%u.log", o->dir, i);
        s->fds[i] = open(path, o->reopen ? O_RDONLY | O_CLOEXEC : O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        off_t sz = s->fds[i] >= 0 && o->reopen ? lseek(s->fds[i], 0, SEEK_END) : 0;
        if (s->fds[i] < 0 || sz < 0) {
            r_close(s);
            return fail("open");
        }
        s->ends[i] = (uint64_t)sz;
    }
    if (o->reopen) /* how many partitions another process wrote: the files say */
        for (char path[4200]; s->parts < MAX_PARTS; s->parts++) {
            snprintf(path, sizeof path, "%s/frames-%u.log", o->dir, s->parts);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                break;
            s->fds[s->parts] = fd;
            s->ends[s->parts] = (uint64_t)lseek(fd, 0, SEEK_END);
        }
    s->fd = s->fds[0];
    s->end = s->ends[0];
    s->durable = o->durable;
    s->cap = o->max_batch_bytes + 8 * (o->max_batch_bytes / 16 + 1) + 4096;
    if (s->cap < READ_CHUNK)
        s->cap = READ_CHUNK;
    s->buf = bc_alloc_prefaulted(s->cap);
    *out = s;
    return 0;
}

static int r_produce(bc_store *s, const bc_rec *recs, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t kl = (uint32_t)recs[i].key_len, vl = (uint32_t)recs[i].val_len;
        if (len + 8 + kl + vl > s->cap) {
            errno = E2BIG;
            return fail("batch larger than max_batch_bytes");
        }
        memcpy(s->buf + len, &kl, 4);
        memcpy(s->buf + len + 4, &vl, 4);
        memcpy(s->buf + len + 8, recs[i].key, kl);
        memcpy(s->buf + len + 8 + kl, recs[i].val, vl);
        len += 8 + kl + vl;
    }
    unsigned f = (unsigned)(s->batches++ % s->parts);
    ssize_t w = pwrite(s->fds[f], s->buf, len, (off_t)s->ends[f]);
    if (w != (ssize_t)len)
        return fail("pwrite");
    if (s->durable && fdatasync(s->fds[f]) != 0)
        return fail("fdatasync");
    s->ends[f] += len;
    s->end = s->ends[0];
    atomic_store_explicit(&s->published, s->end, memory_order_release);
    bc_signal_post(s->sig);
    return 0;
}

static int r_finish(bc_store *s)
{
    (void)s;
    return 0;
}

static int64_t r_stored_bytes(bc_store *s)
{
    uint64_t b = 0;
    for (unsigned i = 0; i < s->parts; i++)
        b += s->ends[i];
    return (int64_t)b;
}

/* Parse whole frames of buf[0..len); returns the bytes consumed. */
static size_t parse(const uint8_t *b, size_t len, bc_msg_fn fn, void *arg, int64_t *count)
{
    size_t p = 0;
    while (len - p >= 8) {
        uint32_t kl, vl;
        memcpy(&kl, b + p, 4);
        memcpy(&vl, b + p + 4, 4);
        if (len - p - 8 < (size_t)kl + vl)
            break;
        fn(arg, b + p + 8, kl, b + p + 8 + kl, vl);
        p += 8 + (size_t)kl + vl;
        (*count)++;
    }
    return p;
}

/* Read [*pos, end) in chunks into buf, delivering whole frames. */
static int64_t read_range(int fd, uint8_t *buf, uint64_t *pos, uint64_t end, bc_msg_fn fn, void *arg)
{
    int64_t count = 0;
    while (*pos < end) {
        size_t want = end - *pos < READ_CHUNK ? (size_t)(end - *pos) : READ_CHUNK;
        ssize_t r = pread(fd, buf, want, (off_t)*pos);
        if (r <= 0)
            return fail("pread");
        size_t used = parse(buf, (size_t)r, fn, arg, &count);
        if (used == 0) {
            errno = EBADMSG;
            return fail("frame larger than the read chunk");
        }
        *pos += used;
    }
    return count;
}

static int64_t r_consume_all(bc_store *s, bc_msg_fn fn, void *arg)
{
    uint64_t pos[MAX_PARTS] = { 0 };
    int64_t n = 0;
    for (bool more = true; more;) { /* a chunk from each file in turn */
        more = false;
        for (unsigned i = 0; i < s->parts; i++) {
            if (pos[i] >= s->ends[i])
                continue;
            size_t want = s->ends[i] - pos[i] > READ_CHUNK ? READ_CHUNK : (size_t)(s->ends[i] - pos[i]);
            ssize_t r = pread(s->fds[i], s->buf, want, (off_t)pos[i]);
            if (r <= 0)
                return fail("pread");
            size_t used = parse(s->buf, (size_t)r, fn, arg, &n);
            if (used == 0) {
                errno = EBADMSG;
                return fail("frame larger than the read chunk");
            }
            pos[i] += used;
            more = true;
        }
    }
    return n;
}

static int r_reader_open(bc_store *s, bc_reader **out)
{
    bc_reader *r = calloc(1, sizeof *r);
    if (!r || (s->sig = bc_signal_new()) < 0) {
        free(r);
        return -1;
    }
    r->s = s;
    r->buf = bc_alloc_prefaulted(READ_CHUNK);
    *out = r;
    return 0;
}

static int r_reader_wait(bc_reader *r, int timeout_ms, bc_msg_fn fn, void *arg)
{
    uint64_t end = atomic_load_explicit(&r->s->published, memory_order_acquire);
    if (end == r->pos) {
        int w = bc_signal_wait(r->s->sig, timeout_ms);
        if (w <= 0)
            return w;
        end = atomic_load_explicit(&r->s->published, memory_order_acquire);
    }
    return (int)read_range(r->s->fd, r->buf, &r->pos, end, fn, arg);
}

static void r_reader_close(bc_reader *r)
{
    if (r) {
        free(r->buf);
        free(r);
    }
}

const bc_backend bc_raw = {
    .name = "raw",
    .partitioned = true,
    .reopens = true,
    .check = r_check,
    .open = r_open,
    .produce = r_produce,
    .finish = r_finish,
    .stored_bytes = r_stored_bytes,
    .consume_all = r_consume_all,
    .reader_open = r_reader_open,
    .reader_wait = r_reader_wait,
    .reader_close = r_reader_close,
    .close = r_close,
};
