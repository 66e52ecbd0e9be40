/*
 * lib/transport/sock.c - stream-socket plumbing shared by tcp and unix
 * (see sock.h for how cancellation works).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <klog/transport.h>

#include "transport/sock.h"
#include "transport/transport_internal.h"

int ktr_sock_wait(int fd, short events, int wake, int64_t deadline)
{
    struct pollfd p[2] = { { .fd = fd, .events = events }, { .fd = wake, .events = POLLIN } };
    for (;;) {
        int ms = ktr__poll_ms(deadline);
        int n = poll(p, wake >= 0 ? 2 : 1, ms);
        if (n > 0)
            return 0;
        if (n == 0) {
            if (ms == 0 || ktr__poll_ms(deadline) == 0)
                return -ETIMEDOUT;
            continue; /* poll's timeout is capped at INT_MAX ms */
        }
        if (errno != EINTR)
            return -errno;
    }
}

int ktr_sock_listener_start(struct ktr_sock_listener *l, int fd)
{
    l->fd = fd;
    l->wake = -1;
    atomic_init(&l->shut, false);
    /* The kernel caps the backlog at net.core.somaxconn. */
    if (listen(fd, 65535) < 0 || (l->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        int rc = -errno;
        close(fd);
        l->fd = -1;
        return rc;
    }
    return 0;
}

int ktr_sock_accept(struct ktr_sock_listener *l, struct ktr_sock_conn *c, int64_t deadline)
{
    for (;;) {
        if (atomic_load(&l->shut))
            return -ECANCELED;
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            c->fd = fd;
            atomic_init(&c->shut, false);
            return 0;
        }
        /* A connection that died in the queue is not the listener's fault. */
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = ktr_sock_wait(l->fd, POLLIN, l->wake, deadline);
        if (rc < 0)
            return rc;
    }
}

void ktr_sock_listener_shutdown(struct ktr_sock_listener *l)
{
    atomic_store(&l->shut, true);
    uint64_t one = 1;
    ssize_t w = write(l->wake, &one, sizeof one);
    (void)w; /* the counter cannot overflow from one write per listener */
}

void ktr_sock_listener_close(struct ktr_sock_listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->wake >= 0)
        close(l->wake);
    l->fd = l->wake = -1;
}

int ktr_sock_connect(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -errno;
    int rc = ktr_sock_wait(fd, POLLOUT, -1, deadline);
    if (rc < 0)
        return rc;
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return -errno;
    return err ? -err : 0;
}

ssize_t ktr_sock_send(struct ktr_sock_conn *c, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    for (;;) {
        if (atomic_load(&c->shut))
            return -ECANCELED;
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            return n;
        if (n == 0)
            return -EIO;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = ktr_sock_wait(c->fd, POLLOUT, -1, deadline);
        if (rc < 0)
            return rc;
    }
}

ssize_t ktr_sock_recv(struct ktr_sock_conn *c, void *buf, size_t len, int64_t deadline)
{
    for (;;) {
        if (atomic_load(&c->shut))
            return -ECANCELED;
        ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);
        if (n > 0)
            return n;
        if (n == 0)
            return atomic_load(&c->shut) ? -ECANCELED : 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = ktr_sock_wait(c->fd, POLLIN, -1, deadline);
        if (rc < 0)
            return rc;
    }
}

void ktr_sock_shutdown(struct ktr_sock_conn *c)
{
    atomic_store(&c->shut, true);
    shutdown(c->fd, SHUT_RDWR);
}

void ktr_sock_close(struct ktr_sock_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

int ktr_sock_control(struct ktr_sock_listener *l, struct ktr_sock_conn *c, int op, void *arg)
{
    if ((op == KLOG_TRANSPORT_CTL_CONN_FD || op == KLOG_TRANSPORT_CTL_CONN_WRITE_FD) && c && arg) {
        *(int *)arg = c->fd;
        return 0;
    }
    if (op == KLOG_TRANSPORT_CTL_LISTENER_FD && l && arg) {
        *(int *)arg = l->fd;
        return 0;
    }
    return -ENOTSUP;
}
