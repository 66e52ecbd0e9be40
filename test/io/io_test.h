/*
 * test/io/io_test.h - helpers shared by the lib/io tests: temp dirs, file
 * checks with plain syscalls (independent of the engine under test), and
 * opening an engine on each backend the conformance suite covers.
 */
#ifndef KLOG_TEST_IO_H
#define KLOG_TEST_IO_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "klog_config.h"
#include "io/io.h"
#include "testing/io_fault.h" /* the fault backend: lib/testing, linked beside the core */
#include <klog/error.h>

/* ---- temp dirs -------------------------------------------------------- */

/* Every suite's .init makes a fresh temp dir here, its .fini removes it. */
static char *g_dir;

static inline char *t_mkdtemp(void)
{
    char *d = strdup("/tmp/klog-io-test-XXXXXX");
    cr_assert_not_null(d);
    cr_assert_not_null(mkdtemp(d), "mkdtemp: %s", strerror(errno));
    return d;
}

static inline int t_rm_one(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb; (void)type; (void)ftw;
    remove(p);
    return 0;
}

static inline void t_rm_rf(char *dir)
{
    if (!dir)
        return;
    nftw(dir, t_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static inline void t_setup(void) { g_dir = t_mkdtemp(); }
static inline void t_teardown(void) { t_rm_rf(g_dir); g_dir = NULL; }

/* Criterion runs no .fini after a skip: clean up first. */
#define t_skip(...)                                                            \
    do {                                                                       \
        t_teardown();                                                          \
        cr_skip_test(__VA_ARGS__);                                             \
    } while (0)

/* Path under dir; returns a static-per-slot buffer (8 slots, round robin),
 * enough for a few paths alive in one expression. */
static inline const char *t_path(const char *dir, const char *name)
{
    static char buf[8][4096];
    static unsigned k;
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", dir, name);
    return b;
}

/* ---- plain-syscall file checks ---------------------------------------- */

static inline bool t_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Whole file into a malloc'd buffer; *len its size.  NULL if missing. */
static inline uint8_t *t_slurp(const char *p, size_t *len)
{
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat sb;
    cr_assert_eq(fstat(fd, &sb), 0);
    size_t n = (size_t)sb.st_size;
    uint8_t *b = malloc(n ? n : 1);
    cr_assert_not_null(b);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, b + got, n - got, (off_t)got);
        cr_assert_gt(r, 0);
        got += (size_t)r;
    }
    close(fd);
    *len = n;
    return b;
}

static inline void t_write_file(const char *p, const void *buf, size_t len)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "open %s: %s", p, strerror(errno));
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    cr_assert_eq(fsync(fd), 0);
    close(fd);
}

/* Deterministic bytes: pattern depends on seed and absolute position. */
static inline void t_fill(uint8_t *b, size_t len, uint64_t seed, uint64_t pos)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (pos + i) * 0x9e3779b97f4a7c15ull ^ seed * 0xbf58476d1ce4e5b9ull;
        b[i] = (uint8_t)(x >> 56 ^ x >> 17);
    }
}

static inline bool t_check(const uint8_t *b, size_t len, uint64_t seed, uint64_t pos)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (pos + i) * 0x9e3779b97f4a7c15ull ^ seed * 0xbf58476d1ce4e5b9ull;
        if (b[i] != (uint8_t)(x >> 56 ^ x >> 17))
            return false;
    }
    return true;
}

/* Number of entries in a directory, "." and ".." not counted. */
static inline int t_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* ---- backends ---------------------------------------------------------- */

enum t_backend { TB_URING, TB_POSIX, TB_FAULT_POSIX, TB_FAULT_URING, TB_AUTO };

static inline bool t_uring_usable(void)
{
    if (!kio_uring_methods())
        return false;
    kio *io = NULL;
    kio_options o = { .backend = KIO_BACKEND_URING };
    int rc = kio_open(&io, &o);
    kio_close(io);
    return rc == 0;
}

/* Open an engine on backend b; skips the test if b needs io_uring and the
 * kernel (or a seccomp policy) refuses it. */
static inline kio *t_open(enum t_backend b)
{
    kio *io = NULL;
    int rc;
    if ((b == TB_URING || b == TB_FAULT_URING) && !t_uring_usable())
        t_skip("io_uring not available here");
    switch (b) {
    case TB_URING:
        rc = kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_URING });
        break;
    case TB_POSIX:
        rc = kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_POSIX });
        break;
    case TB_FAULT_POSIX:
        rc = kio_open_methods(&io, kio_fault_methods(), NULL);
        break;
    case TB_FAULT_URING: {
        static const kio_options uo = { .backend = KIO_BACKEND_URING };
        kio_fault_init fi = { .base = kio_uring_methods(), .base_arg = &uo };
        rc = kio_open_methods(&io, kio_fault_methods(), &fi);
        break;
    }
    default:
        rc = kio_open(&io, NULL);
        break;
    }
    cr_assert_eq(rc, 0, "kio_open backend %d: %s", (int)b, klog_strerror(rc));
    cr_assert_not_null(io);
    return io;
}

/* Write buf to h at off through kio and assert it worked. */
static inline void t_put(kio *io, int h, const void *buf, size_t len, uint64_t off)
{
    struct iovec v = { (void *)buf, len };
    int rc = kio_pwritev(io, h, &v, 1, off);
    cr_assert_eq(rc, 0, "kio_pwritev: %s", klog_strerror(rc));
}

#endif /* KLOG_TEST_IO_H */
