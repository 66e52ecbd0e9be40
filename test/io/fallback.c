/*
 * test/io/fallback.c - backend selection by kio_open: $KLOG_IO_BACKEND, and
 * AUTO falling back to posix when io_uring setup is really refused.  The
 * refusal is made real with a seccomp filter in a forked child that makes
 * io_uring_setup fail with EPERM (as container runtimes do) or ENOSYS (as an
 * old kernel would); the child reports through its exit status.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "io_test.h"

TestSuite(fallback, .init = t_setup, .fini = t_teardown, .timeout = 60);

/* Do some I/O on an engine; 0 if it all worked. */
static int exercise(kio *io, const char *dir)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/x", dir);
    int h = kio_file_open(io, p, KIO_O_RDWR | KIO_O_CREAT, 0644);
    if (h < 0)
        return 1;
    uint8_t w[4096], r[4096];
    t_fill(w, sizeof w, 61, 0);
    struct iovec v = { w, sizeof w };
    kio_wreq q = { h, &v, 1, 0 };
    if (kio_pwritev_many(io, &q, 1, KIO_W_DSYNC, NULL) != 0)
        return 2;
    if (kio_pread(io, h, r, sizeof r, 0) != (ssize_t)sizeof r || memcmp(r, w, sizeof w))
        return 3;
    if (kio_datasync(io, h) != 0 || kio_dirsync(io, dir) != 0)
        return 4;
    if (kio_file_close(io, h) != 0 || kio_unlink(io, p) != 0)
        return 5;
    return 0;
}

Test(fallback, env_posix_picks_posix)
{
    cr_assert_eq(setenv("KLOG_IO_BACKEND", "posix", 1), 0);
    kio *io = NULL;
    cr_assert_eq(kio_open(&io, NULL), 0);
    cr_assert_str_eq(kio_name(io), "posix");
    cr_assert_eq(exercise(io, g_dir), 0);
    kio_close(io);
    /* the env only steers AUTO: an explicit choice wins */
    if (t_uring_usable()) {
        cr_assert_eq(kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_URING }), 0);
        cr_assert_str_eq(kio_name(io), "uring");
        kio_close(io);
    }
}

Test(fallback, env_uring_picks_uring)
{
    if (!t_uring_usable())
        t_skip("io_uring not available here");
    cr_assert_eq(setenv("KLOG_IO_BACKEND", "uring", 1), 0);
    kio *io = NULL;
    cr_assert_eq(kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_AUTO }), 0);
    cr_assert_str_eq(kio_name(io), "uring");
    cr_assert_eq(exercise(io, g_dir), 0);
    kio_close(io);
    cr_assert_eq(kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_POSIX }), 0);
    cr_assert_str_eq(kio_name(io), "posix");
    kio_close(io);
}

Test(fallback, env_unknown_is_an_error)
{
    cr_assert_eq(setenv("KLOG_IO_BACKEND", "uringg", 1), 0);
    kio *io = (kio *)0x1;
    cr_assert_eq(kio_open(&io, NULL), -EINVAL);
    cr_assert_null(io);
    cr_assert_eq(setenv("KLOG_IO_BACKEND", "", 1), 0); /* empty = unset */
    cr_assert_eq(kio_open(&io, NULL), 0);
    kio_close(io);
}

Test(fallback, auto_prefers_uring)
{
    if (!t_uring_usable())
        t_skip("io_uring not available here");
    cr_assert_eq(unsetenv("KLOG_IO_BACKEND"), 0);
    kio *io = NULL;
    cr_assert_eq(kio_open(&io, NULL), 0);
    cr_assert_str_eq(kio_name(io), "uring");
    kio_close(io);
}

#if defined(__x86_64__)
#define T_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define T_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef T_AUDIT_ARCH
/* io_uring_setup fails with err; everything else is allowed. */
static int deny_uring_setup(int err)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, T_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { (unsigned short)(sizeof f / sizeof f[0]), f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        return -errno;
    return 0;
}

/* In the child: exit 0 if all is as expected, else the number of the
 * failed check; 77 if the filter could not be installed. */
static int child(int err, const char *dir)
{
    if (deny_uring_setup(err) < 0)
        return 77;
    unsetenv("KLOG_IO_BACKEND");
    kio *io = NULL;
    if (kio_open(&io, NULL) != 0)
        return 10;
    if (strcmp(kio_name(io), "posix") != 0)
        return 11;
    int rc = exercise(io, dir);
    kio_close(io);
    if (rc)
        return 20 + rc;
    io = (kio *)0x1;
    if (kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_URING }) != -err)
        return 30;
    if (io != NULL)
        return 31;
    if (setenv("KLOG_IO_BACKEND", "uring", 1) != 0 || kio_open(&io, NULL) != -err)
        return 32;
    /* the fault backend over uring cannot come up either */
    kio_fault_init fi = { .base = kio_uring_methods() };
    if (kio_open_methods(&io, kio_fault_methods(), &fi) != -err)
        return 33;
    return 0;
}

static void refused(int err)
{
    if (!kio_uring_methods())
        t_skip("built without liburing");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(child(err, g_dir));
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "child died: status %d", st);
    if (WEXITSTATUS(st) == 77)
        t_skip("cannot install a seccomp filter here");
    cr_assert_eq(WEXITSTATUS(st), 0, "check %d failed in the child (err %d)", WEXITSTATUS(st), err);
}

Test(fallback, seccomp_eperm_falls_back) { refused(EPERM); }
Test(fallback, seccomp_enosys_falls_back) { refused(ENOSYS); }

/* The first ring exists, more are refused: the pool must make do with the
 * one it has, and concurrent ops take turns on it. */
typedef struct { kio *io; const char *dir; int id; int rc; } turn_arg;

static void *turn(void *p)
{
    turn_arg *a = p;
    char path[4200];
    snprintf(path, sizeof path, "%s/t%d", a->dir, a->id);
    int h = kio_file_open(a->io, path, KIO_O_RDWR | KIO_O_CREAT, 0644);
    if (h < 0) {
        a->rc = h;
        return NULL;
    }
    uint8_t w[4096], r[4096];
    for (int i = 0; i < 50 && a->rc == 0; i++) {
        t_fill(w, sizeof w, (uint64_t)a->id, (uint64_t)i * sizeof w);
        struct iovec v = { w, sizeof w };
        kio_wreq q = { h, &v, 1, (uint64_t)i * sizeof w };
        if ((a->rc = kio_pwritev_many(a->io, &q, 1, (i & 1) ? KIO_W_DSYNC : 0, NULL)) == 0 &&
            kio_pread(a->io, h, r, sizeof r, (uint64_t)i * sizeof w) != (ssize_t)sizeof r)
            a->rc = -EIO;
        if (a->rc == 0 && memcmp(r, w, sizeof w))
            a->rc = -EILSEQ;
    }
    kio_file_close(a->io, h);
    return NULL;
}

static int count_uring_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        char p[64], l[128];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        ssize_t k = readlink(p, l, sizeof l - 1);
        if (k > 0) {
            l[k] = '\0';
            n += strstr(l, "io_uring") != NULL;
        }
    }
    return n;
}

static int degrade_child(const char *dir)
{
    kio *io = NULL;
    if (kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_URING, .max_rings = 4 }) != 0)
        return 10;
    if (deny_uring_setup(ENOMEM) < 0)
        return 77;
    enum { T = 4 };
    pthread_t th[T];
    turn_arg a[T];
    for (int i = 0; i < T; i++) {
        a[i] = (turn_arg){ io, dir, i, 0 };
        if (pthread_create(&th[i], NULL, turn, &a[i]) != 0)
            return 11;
    }
    int bad = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        if (a[i].rc != 0)
            bad = 20 + i;
    }
    if (bad)
        return bad;
    if (count_uring_fds() != 1)
        return 30;
    kio_close(io);
    return 0;
}

Test(fallback, pool_makes_do_when_more_rings_refused)
{
    if (!t_uring_usable())
        t_skip("io_uring not available here");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        _exit(degrade_child(g_dir));
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "child died: status %d", st);
    if (WEXITSTATUS(st) == 77)
        t_skip("cannot install a seccomp filter here");
    cr_assert_eq(WEXITSTATUS(st), 0, "check %d failed in the child", WEXITSTATUS(st));
}
#endif
