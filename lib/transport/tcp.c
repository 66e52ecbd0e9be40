/*
 * lib/transport/tcp.c - the "tcp" transport: tcp://HOST:PORT.
 *
 * HOST is an IPv4 address, an IPv6 address in brackets, a name, or empty
 * (listen on every address).  Names are resolved with getaddrinfo(3),
 * which blocks and is not bounded by the deadline; the addresses it gives
 * are tried in order, each within what is left of the deadline.
 * Connections get TCP_NODELAY (klog sends whole frames; Nagle would only
 * add latency) and SO_KEEPALIVE; listeners SO_REUSEADDR, so a restarted
 * server can bind while old connections sit in TIME_WAIT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <klog/transport.h>

#include "transport/sock.h"
#include "transport/transport_internal.h"

/* Split "host:port" / "[v6]:port" into host (may be "") and port. */
static int split_hostport(const char *addr, char *host, size_t hostsz, char *port, size_t portsz)
{
    const char *p;
    size_t hn;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        hn = (size_t)(end - addr - 1);
        if (hn >= hostsz)
            return -EINVAL;
        memcpy(host, addr + 1, hn);
        p = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
            return -EINVAL; /* no port, or an IPv6 address without brackets */
        hn = (size_t)(colon - addr);
        if (hn >= hostsz)
            return -EINVAL;
        memcpy(host, addr, hn);
        p = colon + 1;
    }
    host[hn] = '\0';
    size_t pn = strlen(p);
    if (pn == 0 || pn >= portsz || strspn(p, "0123456789") != pn || atoi(p) > 65535)
        return -EINVAL;
    memcpy(port, p, pn + 1);
    return 0;
}

static int resolve(const char *addr, bool passive, struct addrinfo **res)
{
    char host[256], port[8];
    if (split_hostport(addr, host, sizeof host, port, sizeof port) < 0)
        return -EINVAL;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
    if (rc == 0)
        return 0;
    /* A name that does not resolve, now or for good, is a host we cannot
     * reach. */
    return rc == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
}

static void format_sa(const struct sockaddr_storage *ss, char *out, size_t outsz)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(out, outsz, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(out, outsz, "%s:%u", ip, ntohs(s4->sin_port));
    }
}

static void conn_opts(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

static int tcp_listen(void *tst, void *lst, const char *addr, char *bound, size_t boundsz)
{
    struct ktr_sock_listener *l = lst;
    struct addrinfo *res;
    int rc = resolve(addr, true, &res);
    if (rc < 0)
        return rc;
    int fd = -1;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        rc = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return rc;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    format_sa(&ss, bound, boundsz);
    return ktr_sock_listener_start(l, fd);
}

static int tcp_accept(void *tst, void *lst, void *cst, int64_t deadline)
{
    int rc = ktr_sock_accept(lst, cst, deadline);
    if (rc == 0)
        conn_opts(((struct ktr_sock_conn *)cst)->fd);
    return rc;
}

static void tcp_listener_shutdown(void *tst, void *lst)
{
    ktr_sock_listener_shutdown(lst);
}

static void tcp_listener_close(void *tst, void *lst)
{
    ktr_sock_listener_close(lst);
}

static int tcp_connect(void *tst, void *cst, const char *addr, int64_t deadline)
{
    struct ktr_sock_conn *c = cst;
    struct addrinfo *res;
    int rc = resolve(addr, false, &res);
    if (rc < 0)
        return rc;
    rc = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        rc = ktr_sock_connect(fd, ai->ai_addr, ai->ai_addrlen, deadline);
        if (rc == 0) {
            conn_opts(fd);
            c->fd = fd;
            atomic_init(&c->shut, false);
            break;
        }
        close(fd);
        if (rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

static ssize_t tcp_send(void *tst, void *cst, const struct iovec *iov, int iovcnt, int64_t deadline)
{
    return ktr_sock_send(cst, iov, iovcnt, deadline);
}

static ssize_t tcp_recv(void *tst, void *cst, void *buf, size_t len, int64_t deadline)
{
    return ktr_sock_recv(cst, buf, len, deadline);
}

static void tcp_shutdown(void *tst, void *cst)
{
    ktr_sock_shutdown(cst);
}

static void tcp_close(void *tst, void *cst)
{
    ktr_sock_close(cst);
}

static int tcp_peer(void *tst, void *cst, char *addr, size_t addrsz, char *ident, size_t identsz)
{
    struct ktr_sock_conn *c = cst;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    format_sa(&ss, addr, addrsz);
    ident[0] = '\0'; /* plain TCP vouches for nobody */
    return 0;
}

static int tcp_control(void *tst, void *lst, void *cst, int op, void *arg)
{
    return ktr_sock_control(lst, cst, op, arg);
}

static const klog_transport_methods tcp_methods = {
    .version = KLOG_TRANSPORT_VERSION,
    .size = sizeof(klog_transport_methods),
    .scheme = "tcp",
    .state_size = 0,
    .listener_size = sizeof(struct ktr_sock_listener),
    .conn_size = sizeof(struct ktr_sock_conn),
    .listen = tcp_listen,
    .accept = tcp_accept,
    .listener_shutdown = tcp_listener_shutdown,
    .listener_close = tcp_listener_close,
    .connect = tcp_connect,
    .send = tcp_send,
    .recv = tcp_recv,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
    .peer = tcp_peer,
    .control = tcp_control,
};

const klog_transport_methods *ktr_tcp_methods(void)
{
    return &tcp_methods;
}
