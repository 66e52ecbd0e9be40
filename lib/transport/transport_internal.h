/*
 * lib/transport/transport_internal.h - what the parts of lib/transport share
 * with each other and with klog's own tests, and nothing else does.
 *
 * The core (transport.c) owns registries, listeners and connections, the
 * framing and the frame cap.  The built-in transports are vtables in the
 * shape include/klog/transport.h describes:
 *
 *   tcp.c, unix.c  stream sockets, over the helpers of sock.c;
 *   mem.c          an in-memory network with seeded fault injection and an
 *                  optional virtual clock (mem.h), for simulation tests.
 *
 * lib/transport depends on lib/common and the public headers only.
 */
#ifndef KLOG_TRANSPORT_INTERNAL_H
#define KLOG_TRANSPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <klog/transport.h>

/* Smallest size of a version-1 vtable: up to and including control. */
#define KTR_METHODS_V1_SIZE (offsetof(klog_transport_methods, control) + sizeof(void *))

/* Buffer sizes the core hands to listen (bound) and peer (addr, ident). */
#define KTR_ADDR_MAX 256
#define KTR_PEER_ADDR_MAX 128
#define KTR_IDENT_MAX 256

/* A frame buffer at most this large is kept for the next frame; a larger
 * one is freed when the next receive starts. */
#define KTR_RX_KEEP (64u * 1024u)

/* The built-in vtables. */
const klog_transport_methods *ktr_tcp_methods(void);
const klog_transport_methods *ktr_unix_methods(void);
const klog_transport_methods *ktr_mem_methods(void);

/* 0 if m is a usable vtable, else -EINVAL or KLOG_EFORMAT (see
 * klog_transport_register). */
int ktr__check_methods(const klog_transport_methods *m);

/* Deadline helpers: now on CLOCK_MONOTONIC; timeout_ms (< 0 = for ever) to
 * an absolute deadline; the poll(2) timeout (ms, rounded up, -1 = for ever)
 * left until deadline. */
int64_t ktr__now(void);
int64_t ktr__deadline(int timeout_ms);
int ktr__poll_ms(int64_t deadline);

/* ---- the TLS transport (tls.c) ------------------------------------------ */

struct klog_conf;
/* Build the TLS contexts conf describes and throw them away: what
 * registering klog_transport_tls() with conf would return, with the reason
 * in errbuf ("ssl.key.location: /x.pem: No such file or directory"). */
int ktr__tls_check(const struct klog_conf *conf, char *errbuf, size_t errsize);
/* Does conf give this end a certificate or a pre-shared key (can it
 * listen)? */
bool ktr__tls_configured(const struct klog_conf *conf);

/* ---- for event loops (the server) --------------------------------------- */

/* Offer bytes of a stream the caller frames itself (iov starts with the
 * 4-byte big-endian length the caller wrote) without waiting: returns the
 * number of bytes the transport took (0 when it would have to wait; try
 * again when KLOG_TRANSPORT_CTL_CONN_WRITE_FD turns writable), or a final
 * error (the connection then fails as klog_conn_send would make it fail).
 * The caller must not mix it with klog_conn_send on c, and keeps the rest
 * of a frame for the next call before starting another. */
ssize_t ktr__conn_send_nowait(klog_conn *c, const struct iovec *iov, int iovcnt);

/* ---- test hooks (klog's tests link the core archive) ----------------- */

/* Send len raw bytes through c's transport, bypassing the framer (no length
 * prefix is added): for tests that feed a peer malformed frames.  0 or the
 * transport's error. */
int ktr__conn_send_raw(klog_conn *c, const void *buf, size_t len, int timeout_ms);
/* Bytes of frame buffer c holds right now (0 for an idle connection). */
size_t ktr__conn_rx_capacity(const klog_conn *c);
/* Bytes the core holds for reg's listeners and connections (objects,
 * transport state and frame buffers), and the number of connections. */
size_t ktr__registry_bytes(const klog_transport_registry *reg);
size_t ktr__registry_conns(const klog_transport_registry *reg);

#endif /* KLOG_TRANSPORT_INTERNAL_H */
