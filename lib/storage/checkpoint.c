/*
 * lib/storage/checkpoint.c - small files written atomically, and the
 * partition's recovery checkpoint.
 *
 * Atomic write (the ALICE-safe sequence): write dir/name.tmp, fdatasync it,
 * rename over dir/name, fsync dir.  A crash leaves either the old file or the
 * new one, never a mix; a leftover .tmp is removed at the next open.
 */
#include <stdio.h>
#include <xxhash.h>

#include "common/common.h"
#include "storage/storage.h"
#include "storage/internal.h"

int ks_write_atomic(kio *io, const char *dir, const char *name, const void *data, size_t len)
{
    char tmp[4096], dst[4096];
    if (snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name) >= (int)sizeof tmp ||
        snprintf(dst, sizeof dst, "%s/%s", dir, name) >= (int)sizeof dst)
        return -ENAMETOOLONG;
    int h = kio_file_open(io, tmp, KIO_O_RDWR | KIO_O_CREAT | KIO_O_TRUNC, 0644);
    if (h < 0)
        return h;
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    int rc = kio_pwritev(io, h, &iov, 1, 0);
    if (rc == 0)
        rc = kio_datasync(io, h);
    int crc = kio_file_close(io, h);
    if (rc == 0)
        rc = crc;
    if (rc == 0)
        rc = kio_rename(io, tmp, dst);
    if (rc == 0)
        rc = kio_dirsync(io, dir);
    if (rc < 0)
        (void)kio_unlink(io, tmp); /* best effort; a leftover is removed at open */
    return rc;
}

ssize_t ks_read_small(kio *io, const char *path, void *buf, size_t cap)
{
    int h = kio_file_open(io, path, KIO_O_RDONLY, 0);
    if (h < 0)
        return h;
    uint64_t sz = 0;
    ssize_t rc = kio_size(io, h, &sz);
    if (rc == 0 && sz > cap)
        rc = -EFBIG;
    if (rc == 0)
        rc = kio_pread(io, h, buf, (size_t)sz, 0);
    kio_file_close(io, h);
    return rc;
}

/* recovery.ckpt: magic, version, recovery point, log start, XXH3 of the 24
 * bytes before it. */
#define CKPT_MAGIC 0x504b434bu /* "KCKP" */
#define CKPT_VERSION 1u
#define CKPT_SIZE 32

int ks__ckpt_write(kio *io, const char *dir, int64_t recovery_point, int64_t log_start)
{
    uint8_t b[CKPT_SIZE];
    klog__st32(b, CKPT_MAGIC);
    klog__st32(b + 4, CKPT_VERSION);
    klog__st64(b + 8, (uint64_t)recovery_point);
    klog__st64(b + 16, (uint64_t)log_start);
    klog__st64(b + 24, XXH3_64bits(b, 24));
    return ks_write_atomic(io, dir, KS_CKPT_NAME, b, sizeof b);
}

int ks__ckpt_read(kio *io, const char *dir, int64_t *recovery_point, int64_t *log_start)
{
    char path[4096];
    uint8_t b[CKPT_SIZE];
    if (snprintf(path, sizeof path, "%s/%s", dir, KS_CKPT_NAME) >= (int)sizeof path)
        return -ENAMETOOLONG;
    ssize_t n = ks_read_small(io, path, b, sizeof b);
    if (n < 0)
        return n == -EFBIG ? KLOG_ECORRUPT : (int)n;
    if (n != CKPT_SIZE || klog__ld32(b) != CKPT_MAGIC || klog__ld32(b + 4) != CKPT_VERSION ||
        klog__ld64(b + 24) != XXH3_64bits(b, 24))
        return KLOG_ECORRUPT;
    *recovery_point = (int64_t)klog__ld64(b + 8);
    *log_start = (int64_t)klog__ld64(b + 16);
    if (*recovery_point < 0 || *log_start < 0)
        return KLOG_ECORRUPT;
    return 0;
}

/* cleaner.ckpt: magic, version, gap limit, clean point, XXH3 of the 24 bytes
 * before it. */
#define CCKPT_MAGIC 0x4c43434bu /* "KCCL" */
#define CCKPT_VERSION 1u

int ks__cleaner_ckpt_write(kio *io, const char *dir, int64_t gap_limit, int64_t clean_point)
{
    uint8_t b[CKPT_SIZE];
    klog__st32(b, CCKPT_MAGIC);
    klog__st32(b + 4, CCKPT_VERSION);
    klog__st64(b + 8, (uint64_t)gap_limit);
    klog__st64(b + 16, (uint64_t)clean_point);
    klog__st64(b + 24, XXH3_64bits(b, 24));
    return ks_write_atomic(io, dir, KS_CLEANER_CKPT_NAME, b, sizeof b);
}

int ks__cleaner_ckpt_read(kio *io, const char *dir, int64_t *gap_limit, int64_t *clean_point)
{
    char path[4096];
    uint8_t b[CKPT_SIZE];
    if (snprintf(path, sizeof path, "%s/%s", dir, KS_CLEANER_CKPT_NAME) >= (int)sizeof path)
        return -ENAMETOOLONG;
    ssize_t n = ks_read_small(io, path, b, sizeof b);
    if (n < 0)
        return n == -EFBIG ? KLOG_ECORRUPT : (int)n;
    if (n != CKPT_SIZE || klog__ld32(b) != CCKPT_MAGIC || klog__ld32(b + 4) != CCKPT_VERSION ||
        klog__ld64(b + 24) != XXH3_64bits(b, 24))
        return KLOG_ECORRUPT;
    *gap_limit = (int64_t)klog__ld64(b + 8);
    *clean_point = (int64_t)klog__ld64(b + 16);
    if (*gap_limit < 0 || *clean_point < 0)
        return KLOG_ECORRUPT;
    return 0;
}
