/*
 * examples/transport_pipe.c - a transport of your own, in a page: klog's
 * frames over pairs of pipes inside one process, as "pipe://NAME".
 *
 * A pipe is the simplest stand-in for a serial line: two one-way byte
 * channels and nothing else.  The core does everything frame-related
 * (length prefix, the size cap, timeouts that keep half a frame); a
 * transport only listens, connects, moves bytes before a deadline, and can
 * be woken up.  Blocked calls wait in poll(2) on the pipe and on an eventfd
 * that shutdown writes.  Run it: it registers the transport, sends a frame
 * through it and prints what came back.  klog's transport conformance
 * suite runs against it too (built with -DTRANSPORT_PIPE_NO_MAIN).
 *
 * Like any program that writes to pipes, it ignores SIGPIPE (a write to a
 * pipe whose reader is gone then fails with EPIPE instead of killing us).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <klog/transport.h>

struct pl { struct pl *next; char name[64]; int q[2], wake; };  /* a listener */
struct pt { pthread_mutex_t mu; struct pl *ls; int devnull; };   /* the transport */
struct pc { int rd, wr, wake; atomic_bool shut; };               /* a connection */

/* Wait until fd has `ev` or wake fires (-ECANCELED) or deadline passes. */
static int wait_for(int fd, short ev, int wake, int64_t deadline)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t left = deadline - ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    int ms = deadline == KLOG_TRANSPORT_FOREVER ? -1 : left <= 0 ? 0 : (int)((left + 999999) / 1000000);
    struct pollfd p[2] = { { .fd = fd, .events = ev }, { .fd = wake, .events = POLLIN } };
    int n = poll(p, 2, ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (p[1].revents)
        return -ECANCELED;
    return n == 0 ? -ETIMEDOUT : 0;
}

static int p_init(void *tst, const void *arg)
{
    struct pt *t = tst;
    pthread_mutex_init(&t->mu, NULL);
    t->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    return t->devnull < 0 ? -errno : 0;
}

static void p_fini(void *tst)
{
    struct pt *t = tst;
    if (t->devnull >= 0)
        close(t->devnull);
}

static int p_listen(void *tst, void *lst, const char *addr, char *bound, size_t boundsz)
{
    struct pt *t = tst;
    struct pl *l = lst, *o;
    int rc = 0;
    if (!addr[0] || strlen(addr) >= sizeof l->name)
        return -EINVAL;
    pthread_mutex_lock(&t->mu);
    for (o = t->ls; o && strcmp(o->name, addr); o = o->next)
        ;
    if (o)
        rc = -EADDRINUSE;
    else if (pipe2(l->q, O_CLOEXEC | O_NONBLOCK) < 0)   /* the backlog: pairs of fds */
        rc = -errno;
    else if ((l->wake = eventfd(0, EFD_CLOEXEC)) < 0)
        rc = -errno, close(l->q[0]), close(l->q[1]);
    if (rc == 0) {
        snprintf(l->name, sizeof l->name, "%s", addr);
        snprintf(bound, boundsz, "%s", addr);
        l->next = t->ls, t->ls = l;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int p_accept(void *tst, void *lst, void *cst, int64_t deadline)
{
    struct pl *l = lst;
    struct pc *c = cst;
    int fds[2], rc;
    while (read(l->q[0], fds, sizeof fds) != sizeof fds)
        if ((rc = wait_for(l->q[0], POLLIN, l->wake, deadline)) < 0)
            return rc;
    if ((c->wake = eventfd(0, EFD_CLOEXEC)) < 0)
        return rc = -errno, close(fds[0]), close(fds[1]), rc;
    c->rd = fds[0], c->wr = fds[1];
    return 0;
}

static void p_listener_shutdown(void *tst, void *lst)
{
    uint64_t one = 1;
    if (write(((struct pl *)lst)->wake, &one, sizeof one) < 0)
        perror("eventfd");
}

static void p_listener_close(void *tst, void *lst)
{
    struct pt *t = tst;
    struct pl *l = lst, **pp;
    int fds[2];
    pthread_mutex_lock(&t->mu);
    for (pp = &t->ls; *pp != l; pp = &(*pp)->next)
        ;
    *pp = l->next;
    pthread_mutex_unlock(&t->mu);
    while (read(l->q[0], fds, sizeof fds) == sizeof fds)   /* never accepted */
        close(fds[0]), close(fds[1]);
    close(l->q[0]), close(l->q[1]), close(l->wake);
}

static int p_connect(void *tst, void *cst, const char *addr, int64_t deadline)
{
    struct pt *t = tst;
    struct pc *c = cst;
    struct pl *l;
    int up[2], down[2], rc = 0;
    pthread_mutex_lock(&t->mu);
    for (l = t->ls; l && strcmp(l->name, addr); l = l->next)
        ;
    if (!l)
        rc = -ECONNREFUSED;
    else if (pipe2(up, O_CLOEXEC | O_NONBLOCK) < 0)
        rc = -errno;
    else if (pipe2(down, O_CLOEXEC | O_NONBLOCK) < 0)
        rc = -errno, close(up[0]), close(up[1]);
    if (rc == 0) {
        int theirs[2] = { up[0], down[1] };   /* the acceptor reads up, writes down */
        if ((c->wake = eventfd(0, EFD_CLOEXEC)) < 0 || write(l->q[1], theirs, sizeof theirs) != sizeof theirs) {
            rc = errno == EAGAIN ? -ECONNREFUSED : -errno;   /* a full backlog refuses */
            close(up[0]), close(up[1]), close(down[0]), close(down[1]);
            if (c->wake >= 0)
                close(c->wake);
        } else {
            c->rd = down[0], c->wr = up[1];
        }
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static ssize_t p_send(void *tst, void *cst, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    struct pc *c = cst;
    for (;;) {
        if (atomic_load(&c->shut))
            return -ECANCELED;
        ssize_t n = writev(c->wr, iov, iovcnt);
        if (n >= 0 || errno != EAGAIN)
            return n >= 0 ? n : -errno;
        int rc = wait_for(c->wr, POLLOUT, c->wake, deadline);
        if (rc < 0)
            return rc;
    }
}

static ssize_t p_recv(void *tst, void *cst, void *buf, size_t len, int64_t deadline)
{
    struct pc *c = cst;
    for (;;) {
        if (atomic_load(&c->shut))
            return -ECANCELED;
        ssize_t n = read(c->rd, buf, len);
        if (n >= 0 || errno != EAGAIN)
            return n >= 0 ? n : -errno;   /* 0: the writer closed, end of stream */
        int rc = wait_for(c->rd, POLLIN, c->wake, deadline);
        if (rc < 0)
            return rc;
    }
}

static void p_shutdown(void *tst, void *cst)
{
    struct pc *c = cst;
    uint64_t one = 1;
    atomic_store(&c->shut, true);
    if (write(c->wake, &one, sizeof one) < 0)
        perror("eventfd");
    /* Swap our pipe end for /dev/null in one step: the peer reads end of
     * stream, and a sender racing with us writes into the void instead of
     * into a descriptor number that close() could have handed to someone. */
    dup2(((struct pt *)tst)->devnull, c->wr);
}

static void p_close(void *tst, void *cst)
{
    struct pc *c = cst;
    close(c->rd), close(c->wr), close(c->wake);
}

static int p_peer(void *tst, void *cst, char *addr, size_t addrsz, char *ident, size_t identsz)
{
    snprintf(addr, addrsz, "pipe-%d", ((struct pc *)cst)->rd);
    snprintf(ident, identsz, "pid=%d", (int)getpid());   /* the same process, surely */
    return 0;
}

static int p_control(void *tst, void *lst, void *cst, int op, void *arg)
{
    if (op == KLOG_TRANSPORT_CTL_CONN_FD && cst)
        return *(int *)arg = ((struct pc *)cst)->rd, 0;
    if (op == KLOG_TRANSPORT_CTL_LISTENER_FD && lst)
        return *(int *)arg = ((struct pl *)lst)->q[0], 0;
    return -ENOTSUP;
}

const klog_transport_methods *pipe_transport_methods(void);
const klog_transport_methods *pipe_transport_methods(void)
{
    static const klog_transport_methods m = {
        .version = KLOG_TRANSPORT_VERSION, .size = sizeof m, .scheme = "pipe",
        .state_size = sizeof(struct pt), .listener_size = sizeof(struct pl), .conn_size = sizeof(struct pc),
        .init = p_init, .fini = p_fini, .listen = p_listen, .accept = p_accept,
        .listener_shutdown = p_listener_shutdown, .listener_close = p_listener_close,
        .connect = p_connect, .send = p_send, .recv = p_recv, .shutdown = p_shutdown,
        .close = p_close, .peer = p_peer, .control = p_control,
    };
    return &m;
}

#ifndef TRANSPORT_PIPE_NO_MAIN
int main(void)
{
    klog_transport_registry *reg = NULL;
    klog_listener *l = NULL;
    klog_conn *client = NULL, *server = NULL;
    const void *frame;
    const char *who;
    int rc, n;

    signal(SIGPIPE, SIG_IGN);
    if ((rc = klog_transport_registry_new(&reg, 0)) < 0 ||
        (rc = klog_transport_register(reg, pipe_transport_methods(), NULL)) < 0 ||
        (rc = klog_transport_listen(reg, "pipe://demo", &l)) < 0 ||
        (rc = klog_transport_connect(reg, "pipe://demo", 1000, &client)) < 0 ||
        (rc = klog_listener_accept(l, 1000, &server)) < 0)
        goto out;
    struct iovec v[2] = { { "hello, ", 7 }, { "pipe", 4 } };
    if ((rc = klog_conn_send(client, v, 2, 1000)) < 0 || (n = rc = klog_conn_recv(server, 1000, &frame)) < 0)
        goto out;
    klog_conn_peer(server, NULL, &who);
    printf("%s got %d bytes: %.*s (from %s)\n", klog_listener_url(l), n, n, (const char *)frame, who);
    /* And back, through the other pipe. */
    struct iovec r = { (void *)frame, (size_t)n };
    if ((rc = klog_conn_send(server, &r, 1, 1000)) < 0 || (rc = klog_conn_recv(client, 1000, &frame)) < 0)
        goto out;
    rc = (rc == n && memcmp(frame, "hello, pipe", 11) == 0) ? 0 : -EPROTO;
    printf("echoed: %s\n", rc == 0 ? "ok" : "MISMATCH");
out:
    if (rc < 0)
        fprintf(stderr, "transport_pipe: %s\n", klog_strerror(rc));
    klog_conn_close(client);
    klog_conn_close(server);
    klog_listener_close(l);
    klog_transport_registry_free(reg);
    return rc < 0;
}
#endif
