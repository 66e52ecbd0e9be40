/*
 * bench/bench_util.h - what every benchmark here shares: medians, prefaulting,
 * the page-cache warm-up, removing a scratch tree.
 *
 * The warm-up exists because this kind of VM hands idle guest memory back to
 * its host, free page-cache pages included: whichever run writes first into
 * memory freed long ago pays host faults the other does not.  Before every
 * timed write run, write and delete a scratch file as large as the run's
 * data, so that klog and its baseline get pages equally warm.
 */
#ifndef KLOG_BENCH_UTIL_H
#define KLOG_BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile uint64_t bu_sink;

static inline int bu_cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). */
static inline double bu_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bu_cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Touch one byte per page so that no page fault lands in a timed run. */
static inline void bu_prefault(const void *p, size_t len)
{
    const volatile uint8_t *b = p;
    uint64_t s = 0;
    for (size_t i = 0; i < len; i += 4096)
        s += b[i];
    bu_sink += s;
}

/* Write and delete a scratch file of `bytes` in dir (see the file comment).
 * Returns 0 or -errno. */
static inline int bu_warm_page_cache(const char *dir, uint64_t bytes)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/warm.dat", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    static char chunk[1 << 20];
    memset(chunk, 1, sizeof chunk);
    int rc = 0;
    for (uint64_t off = 0; off < bytes && rc == 0; off += sizeof chunk)
        if (pwrite(fd, chunk, sizeof chunk, (off_t)off) < 0)
            rc = -errno;
    close(fd);
    unlink(path);
    return rc;
}

/* rm -rf path; complains (as prog) on failure. */
static inline void bu_rm_rf(const char *prog, const char *path)
{
    char cmd[4400];
    if (snprintf(cmd, sizeof cmd, "rm -rf '%s'", path) >= (int)sizeof cmd || system(cmd) != 0)
        fprintf(stderr, "%s: could not remove %s\n", prog, path);
}

#endif
