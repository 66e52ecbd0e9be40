/*
 * lib/transport/unix.c - the "unix" transport: Unix domain stream sockets.
 *
 *   unix:///abs/path, unix://rel/path  a socket file.  Listening replaces a
 *                     stale file (a socket nobody accepts on: connecting to
 *                     it is refused) and the listener removes its own file
 *                     when it closes, unless another socket took the name.
 *   unix://@name      a Linux abstract name (no file; gone with the socket).
 *   unix://           listen only: an abstract name the kernel picks.
 *
 * The peer's identity is what the kernel vouches for: SO_PEERCRED's uid,
 * gid and pid at connect time.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <klog/transport.h>

#include "transport/sock.h"
#include "transport/transport_internal.h"

struct unix_listener {
    struct ktr_sock_listener s;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* "" when abstract */
    dev_t dev;
    ino_t ino;
};

/* addr -> sockaddr.  "" gives the autobind form (family only). */
static int make_sa(const char *addr, struct sockaddr_un *sa, socklen_t *len)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = strlen(addr);
    if (n == 0) {
        *len = sizeof(sa_family_t);
        return 0;
    }
    if (n >= sizeof sa->sun_path)
        return -EINVAL;
    memcpy(sa->sun_path, addr, n);
    if (addr[0] == '@') {
        sa->sun_path[0] = '\0'; /* abstract: no terminating NUL, length counts */
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

static void format_sa(const struct sockaddr_un *sa, socklen_t len, char *out, size_t outsz)
{
    size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    if (n == 0) {
        snprintf(out, outsz, "%s", ""); /* unnamed */
    } else if (sa->sun_path[0] == '\0') {
        /* Abstract: show the name after an '@', bytes that do not print as '?'. */
        size_t k = 0;
        if (outsz > 1)
            out[k++] = '@';
        for (size_t i = 1; i < n && k + 1 < outsz; i++)
            out[k++] = (sa->sun_path[i] >= 0x20 && sa->sun_path[i] < 0x7f) ? sa->sun_path[i] : '?';
        out[k] = '\0';
    } else {
        snprintf(out, outsz, "%.*s", (int)strnlen(sa->sun_path, n), sa->sun_path);
    }
}

/* Is there a socket file at path that nobody listens on? */
static bool stale_socket(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return false;
    struct sockaddr_un sa;
    socklen_t len;
    if (make_sa(path, &sa, &len) < 0)
        return false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool stale = connect(fd, (struct sockaddr *)&sa, len) < 0 && errno == ECONNREFUSED;
    close(fd);
    return stale;
}

static int unix_listen(void *tst, void *lst, const char *addr, char *bound, size_t boundsz)
{
    struct unix_listener *l = lst;
    struct sockaddr_un sa;
    socklen_t len;
    int rc = make_sa(addr, &sa, &len);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    bool path = addr[0] && addr[0] != '@';
    rc = bind(fd, (struct sockaddr *)&sa, len);
    if (rc < 0 && errno == EADDRINUSE && path && stale_socket(addr)) {
        unlink(addr);
        rc = bind(fd, (struct sockaddr *)&sa, len);
    }
    if (rc < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    struct stat st;
    if (path && stat(addr, &st) == 0) {
        snprintf(l->path, sizeof l->path, "%s", addr);
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    }
    struct sockaddr_un got;
    socklen_t gl = sizeof got;
    if (getsockname(fd, (struct sockaddr *)&got, &gl) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    format_sa(&got, gl, bound, boundsz);
    rc = ktr_sock_listener_start(&l->s, fd);
    if (rc < 0 && l->path[0])
        unlink(l->path);
    return rc;
}

static int unix_accept(void *tst, void *lst, void *cst, int64_t deadline)
{
    return ktr_sock_accept(&((struct unix_listener *)lst)->s, cst, deadline);
}

static void unix_listener_shutdown(void *tst, void *lst)
{
    ktr_sock_listener_shutdown(&((struct unix_listener *)lst)->s);
}

static void unix_listener_close(void *tst, void *lst)
{
    struct unix_listener *l = lst;
    ktr_sock_listener_close(&l->s);
    struct stat st;
    /* Remove our file only: another listener may have replaced it. */
    if (l->path[0] && lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
        unlink(l->path);
}

/* Unix connects never return EINPROGRESS: a full backlog is EAGAIN, and
 * only a blocking connect waits for room.  So connect blocking, bounded by
 * SO_SNDTIMEO, which the kernel applies to it; with no time left, once
 * without waiting. */
static int unix_connect(void *tst, void *cst, const char *addr, int64_t deadline)
{
    struct ktr_sock_conn *c = cst;
    if (!addr[0])
        return -EINVAL;
    struct sockaddr_un sa;
    socklen_t len;
    int rc = make_sa(addr, &sa, &len);
    if (rc < 0)
        return rc;
    int ms = ktr__poll_ms(deadline);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (ms == 0 ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -errno;
    if (ms > 0) {
        struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    while ((rc = connect(fd, (struct sockaddr *)&sa, len)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        rc = (errno == EAGAIN || errno == EINPROGRESS) ? -ETIMEDOUT : -errno;
        close(fd);
        return rc;
    }
    if (ms != 0) {
        struct timeval zero = { 0, 0 };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &zero, sizeof zero);
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            rc = -errno;
            close(fd);
            return rc;
        }
    }
    c->fd = fd;
    atomic_init(&c->shut, false);
    return 0;
}

static ssize_t unix_send(void *tst, void *cst, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    return ktr_sock_send(cst, iov, iovcnt, deadline);
}

static ssize_t unix_recv(void *tst, void *cst, void *buf, size_t len, int64_t deadline)
{
    return ktr_sock_recv(cst, buf, len, deadline);
}

static void unix_shutdown(void *tst, void *cst)
{
    ktr_sock_shutdown(cst);
}

static void unix_close(void *tst, void *cst)
{
    ktr_sock_close(cst);
}

static int unix_peer(void *tst, void *cst, char *addr, size_t addrsz, char *ident, size_t identsz)
{
    struct ktr_sock_conn *c = cst;
    struct sockaddr_un sa;
    socklen_t len = sizeof sa;
    if (getpeername(c->fd, (struct sockaddr *)&sa, &len) < 0)
        return -errno;
    format_sa(&sa, len, addr, addrsz);
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
        snprintf(ident, identsz, "uid=%u gid=%u pid=%d", (unsigned)cr.uid, (unsigned)cr.gid, (int)cr.pid);
    else
        ident[0] = '\0';
    return 0;
}

static int unix_control(void *tst, void *lst, void *cst, int op, void *arg)
{
    return ktr_sock_control(lst ? &((struct unix_listener *)lst)->s : NULL, cst, op, arg);
}

static const klog_transport_methods unix_methods = {
    .version = KLOG_TRANSPORT_VERSION,
    .size = sizeof(klog_transport_methods),
    .scheme = "unix",
    .state_size = 0,
    .listener_size = sizeof(struct unix_listener),
    .conn_size = sizeof(struct ktr_sock_conn),
    .listen = unix_listen,
    .accept = unix_accept,
    .listener_shutdown = unix_listener_shutdown,
    .listener_close = unix_listener_close,
    .connect = unix_connect,
    .send = unix_send,
    .recv = unix_recv,
    .shutdown = unix_shutdown,
    .close = unix_close,
    .peer = unix_peer,
    .control = unix_control,
};

const klog_transport_methods *ktr_unix_methods(void)
{
    return &unix_methods;
}
