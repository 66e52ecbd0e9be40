/*
 * lib/transport/sock.h - what the stream-socket transports (tcp, unix)
 * share: non-blocking descriptors, waits bounded by a deadline, and
 * cancellation by shutdown.
 *
 * How a blocked call is cancelled.  Every descriptor is O_NONBLOCK; an op
 * that must wait poll(2)s until its deadline.  A connection's shutdown sets
 * a flag, then shutdown(2)s the socket: the kernel wakes every poll on it
 * (the socket turns readable and writable), the woken op sees the flag and
 * returns -ECANCELED.  A listener cannot rely on shutdown(2) for every
 * socket family, so it has an eventfd that its shutdown writes and accept
 * polls beside the socket.  The flag is checked before each attempt, and a
 * shutdown that comes between the check and the poll leaves the socket (or
 * the eventfd) readable, so no wakeup is lost.
 */
#ifndef KLOG_TRANSPORT_SOCK_H
#define KLOG_TRANSPORT_SOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ktr_sock_conn {
    int fd;
    atomic_bool shut;
};

struct ktr_sock_listener {
    int fd;
    int wake;          /* eventfd written by listener_shutdown */
    atomic_bool shut;
};

/* Wait until fd reports events (POLLIN or POLLOUT) or, if wake >= 0, wake
 * is readable, or the deadline passes.  0 (ready), -ETIMEDOUT or -errno. */
int ktr_sock_wait(int fd, short events, int wake, int64_t deadline);

/* Start listening on the bound socket fd (owned by l from here, also on
 * failure): listen(2) with a large backlog, and the wake eventfd. */
int ktr_sock_listener_start(struct ktr_sock_listener *l, int fd);
int ktr_sock_accept(struct ktr_sock_listener *l, struct ktr_sock_conn *c, int64_t deadline);
void ktr_sock_listener_shutdown(struct ktr_sock_listener *l);
void ktr_sock_listener_close(struct ktr_sock_listener *l);

/* Non-blocking connect of fd (already O_NONBLOCK) to sa by deadline.
 * 0, -ETIMEDOUT or -errno (SO_ERROR). */
int ktr_sock_connect(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline);

/* The ops of the vtable, for a ktr_sock_conn. */
ssize_t ktr_sock_send(struct ktr_sock_conn *c, const struct iovec *iov, int iovcnt, int64_t deadline);
ssize_t ktr_sock_recv(struct ktr_sock_conn *c, void *buf, size_t len, int64_t deadline);
void ktr_sock_shutdown(struct ktr_sock_conn *c);
void ktr_sock_close(struct ktr_sock_conn *c);
/* control(): the readiness descriptors (the sockets themselves). */
int ktr_sock_control(struct ktr_sock_listener *l, struct ktr_sock_conn *c, int op, void *arg);

#endif /* KLOG_TRANSPORT_SOCK_H */
