/*
 * lib/storage/checkpoint.c - small files written atomically, and the
 * partition's recovery checkpoint.
 *
 * Atomic write (the ALICE-safe sequence): write dir/name.tmp, fdatasync it,
 * rename over dir/name, fsync dir.  A crash leaves either the old file or the
 * new one, never a mix; a leftover .tmp is removed at the next open.
 */
#include <stdio.h>

#include <sys/stat.h>

#include "common/common.h"
#include "storage/storage.h"
#include "storage/internal.h"
#include "storage/layout.h"

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

int ks_write_replace(kio *io, const char *dir, const char *name, const void *data, size_t len)
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
    int crc = kio_file_close(io, h);
    if (rc == 0)
        rc = crc;
    if (rc == 0)
        rc = kio_rename(io, tmp, dst);
    if (rc < 0)
        (void)kio_unlink(io, tmp);
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

/*
 * The checkpoint files (layout.h has the layout):
 *   recovery.ckpt  "KCKP": recovery point, log start
 *   cleaner.ckpt   "KCCL": gap limit, clean point
 */
static int pair_write(kio *io, const char *dir, const char *name, uint32_t magic, int64_t a, int64_t b)
{
    uint8_t buf[KL_CKPT_SIZE];
    kl_ckpt_encode(buf, magic, a, b);
    return ks_write_atomic(io, dir, name, buf, sizeof buf);
}

/* Returns 0, -ENOENT (no file), KLOG_ECORRUPT, -errno. */
static int pair_read(kio *io, const char *dir, const char *name, uint32_t magic, int64_t *a, int64_t *b)
{
    char path[4096];
    uint8_t buf[KL_CKPT_SIZE];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return -ENAMETOOLONG;
    ssize_t n = ks_read_small(io, path, buf, sizeof buf);
    if (n < 0)
        return n == -EFBIG ? KLOG_ECORRUPT : (int)n;
    kl_ckpt c;
    if (kl_ckpt_decode(buf, (size_t)n, magic, &c) < 0)
        return KLOG_ECORRUPT;
    *a = c.a;
    *b = c.b;
    return 0;
}

int ks__ckpt_write(kio *io, const char *dir, int64_t recovery_point, int64_t log_start)
{
    return pair_write(io, dir, KS_CKPT_NAME, KL_CKPT_MAGIC_RECOVERY, recovery_point, log_start);
}

int ks__ckpt_read(kio *io, const char *dir, int64_t *recovery_point, int64_t *log_start)
{
    return pair_read(io, dir, KS_CKPT_NAME, KL_CKPT_MAGIC_RECOVERY, recovery_point, log_start);
}

int ks__cleaner_ckpt_write(kio *io, const char *dir, int64_t gap_limit, int64_t clean_point)
{
    return pair_write(io, dir, KS_CLEANER_CKPT_NAME, KL_CKPT_MAGIC_CLEANER, gap_limit, clean_point);
}

int ks__cleaner_ckpt_read(kio *io, const char *dir, int64_t *gap_limit, int64_t *clean_point)
{
    return pair_read(io, dir, KS_CLEANER_CKPT_NAME, KL_CKPT_MAGIC_CLEANER, gap_limit, clean_point);
}

int ks__pos_write(kio *io, const char *dir, int64_t recovery_point, int64_t pos)
{
    /* no sync: it is used only beside a recovery.ckpt with the same point,
     * and checked against the segment's batch headers */
    uint8_t buf[KL_CKPT_SIZE];
    kl_ckpt_encode(buf, KL_CKPT_MAGIC_POSITION, recovery_point, pos);
    return ks_write_replace(io, dir, KL_CKPT_POSITION_NAME, buf, sizeof buf);
}

int ks__pos_read(kio *io, const char *dir, int64_t *recovery_point, int64_t *pos)
{
    return pair_read(io, dir, KL_CKPT_POSITION_NAME, KL_CKPT_MAGIC_POSITION, recovery_point, pos);
}

void ks__small_files_count(ks_log *log)
{
    static const char *const names[] = { KL_CKPT_RECOVERY_NAME, KL_CKPT_POSITION_NAME, KL_CKPT_CLEANER_NAME,
                                         KL_EPOCH_NAME, ".lock" };
    if (log->cfg.read_only)
        return;
    uint64_t bytes = 0;
    for (size_t i = 0; i < KLOG_ARRAY_LEN(names); i++) {
        char p[4200];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", log->dir, names[i]) < (int)sizeof p && stat(p, &st) == 0)
            bytes += (uint64_t)st.st_blocks * 512;
    }
    uint64_t old = atomic_exchange(&log->small, bytes);
    if (bytes != old)
        ks__disk_add(log, (int64_t)bytes - (int64_t)old);
}
