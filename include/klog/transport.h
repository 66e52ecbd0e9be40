/*
 * klog/transport.h - transports: how klog's bytes cross a process boundary.
 *
 * This header is for people who carry klog's frames over something of their
 * own (a serial link, a vsock, a shared-memory ring) and for code that opens
 * connections through a registry of transports.  Applications that only
 * store and read records never need it; klog/klog.h does not include it
 * (as SQLite keeps its VFS apart from its user API).  Only what is declared
 * in include/klog/ is API.
 *
 * The pieces:
 *
 *   klog_transport_methods  a vtable, one per kind of link, named by a URL
 *                           scheme ("tcp", "unix", "tls").  The shape is SQLite's
 *                           sqlite3_vfs and nng's transport ops: a version
 *                           word with a magic in its upper half, the size of
 *                           the struct, the state sizes the core allocates,
 *                           a control() escape hatch, and a contract per op.
 *   klog_transport_registry the transports one part of an application can
 *                           use.  There is no global registry: each owner
 *                           (an instance's server, a test's simulated node)
 *                           makes its own, so two never interfere.
 *   klog_listener, klog_conn a bound address and a connection, made by the
 *                           core from a URL ("tcp://127.0.0.1:9092",
 *                           "unix:///run/klog.sock", "unix://@abstract").
 *
 * Built in: "tcp" and "unix" (klog_transport_registry_new), and "tls"
 * (klog_transport_tls(), registered with its certificates).  klog's own
 * tests and replication simulations also use "mem", an in-memory network
 * with seeded fault injection and a virtual clock; it is internal
 * (lib/transport/mem.h), not API.  examples/transport_pipe.c is a complete
 * transport of one's own in about 200 lines.
 *
 * Frames.  Everything sent over a connection is a frame in Kafka's framing:
 * a 4-byte big-endian length, then that many bytes.  The core does the
 * framing, not the transport: it writes the length in front of each frame
 * it sends, and when receiving it reads the 4-byte length first and checks
 * it against the connection's cap (Kafka's socket.request.max.bytes,
 * 100 MiB by default) BEFORE it allocates anything.  A frame over the cap,
 * a length of 2^31 or more, or a connection that ends inside a frame fails
 * that connection (the registry's log callback gets the reason) and never
 * another one.  A transport moves bytes; it never parses or allocates for a
 * frame, so every transport gets the same checks.
 *
 * Memory.  An idle connection costs one small object in the core (about
 * 600 bytes) plus the transport's conn_size; the core keeps no receive
 * buffer for it.  A frame's buffer grows with the bytes that actually
 * arrived (at most twice them, at least 64 KiB), so a peer that announces a
 * large frame and then stalls does not make the core allocate the frame.
 *
 * Blocking, deadlines and event loops.  Every op is a blocking call with a
 * deadline (see "Why blocking" below).  A server holds many idle
 * connections with a bounded number of threads through readiness
 * descriptors: klog_conn_fd() and klog_listener_fd() return a descriptor
 * for poll(2)/epoll(7) that turns readable when a receive (or accept) with
 * timeout 0 makes progress; the server's one thread waits on all of them
 * and calls klog_conn_recv() with timeout 0 on the ready ones.  A frame that
 * has arrived only in part makes that call return -ETIMEDOUT and keep the
 * part; the next call continues it.
 *
 * Errors: 0 or a count on success, negative codes (klog/error.h) on
 * failure.  The codes a connection can fail with:
 *   -ETIMEDOUT       the deadline passed; the connection stays usable
 *                    (the only error that is not final)
 *   -ECANCELED       klog_conn_shutdown() was called
 *   -EPIPE           the peer closed the connection between two frames
 *   KLOG_ECORRUPT    the connection ended inside a frame (truncated)
 *   KLOG_ETOOBIG     a frame's length is over the connection's cap
 *   -ECONNRESET, -EHOSTUNREACH, ... passed through from the transport
 * After any error but -ETIMEDOUT every call on the connection returns the
 * same error; close it.
 *
 * Threading: a registry is thread-safe.  On a connection, any number of
 * threads may send (the core serialises them, so frames never interleave);
 * one thread at a time receives (a second concurrent receive returns
 * -EBUSY); send and receive may run at the same time; klog_conn_shutdown()
 * may be called from any thread at any time before klog_conn_close(), and
 * close only when no other call on the connection is in progress.  The
 * same holds for a listener's accept, shutdown and close.
 */
#ifndef KLOG_TRANSPORT_H
#define KLOG_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <klog/version.h>
#include <klog/error.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct klog_transport_registry klog_transport_registry;
typedef struct klog_listener klog_listener;
typedef struct klog_conn klog_conn;

/* Kafka's socket.request.max.bytes default: the largest frame a connection
 * accepts unless told otherwise (klog_transport_set_max_frame). */
#define KLOG_TRANSPORT_MAX_FRAME_DEFAULT 104857600u
/* No frame may be larger: Kafka's length field is a signed 32-bit int. */
#define KLOG_TRANSPORT_MAX_FRAME_LIMIT 2147483647u

/* ======================================================================
 * Part 1: writing a transport.
 * ====================================================================== */

/*
 * Deadlines.  Ops that may wait take an absolute deadline in nanoseconds
 * on CLOCK_MONOTONIC (clock_gettime(CLOCK_MONOTONIC)).  KLOG_TRANSPORT_FOREVER
 * means no deadline.  A deadline already past means "do what can be done
 * without waiting": return what is there, or -ETIMEDOUT.
 */
#define KLOG_TRANSPORT_FOREVER INT64_MAX

/*
 * The vtable.  Version 1.  New ops are only ever appended: the core reads
 * `size` and calls an op only if the struct a transport hands in reaches it,
 * so a transport built against an older header keeps working.
 *
 * State.  The transport says how many bytes it needs per registered
 * transport (state_size), per listener (listener_size) and per connection
 * (conn_size); the core allocates each zeroed, passes it to every op, and
 * frees it.  A transport keeps no global state: two registries holding the
 * same vtable are two independent transports.  Each "void *" argument below
 * is one of these blocks: tst the transport's, lst a listener's, cst a
 * connection's.
 *
 * Addresses.  The core strips "scheme://" (or "scheme:") from the URL and
 * hands the rest to listen/connect ("127.0.0.1:9092", "/run/k.sock", "n1");
 * what a transport writes back (bound address, peer address) is in the
 * same form and the core puts the scheme in front.
 *
 * Common contract of every op:
 *   - it must not call back into klog (no klog_* call of this header on any
 *     object of the same registry);
 *   - the core holds none of its locks while calling an op that may block,
 *     and no op is called on a connection after its close;
 *   - buffers are the caller's and are not kept after the op returns;
 *   - errors are negative errno values (or klog's band); -ETIMEDOUT means
 *     "the deadline passed before anything happened" and nothing else.
 *
 * Why blocking calls with deadlines (and not completion callbacks): klog
 * runs on threads and blocking vtables already (its I/O engine is one); a
 * transport over anything - a serial port, a pipe, an application's event
 * loop - is a page of straightforward code when it may block; completion
 * interfaces put the hard part (cancellation, "completed synchronously")
 * into every transport.  What an event loop needs from a transport is only
 * a readiness descriptor (KLOG_TRANSPORT_CTL_CONN_FD), and cancellation is
 * shutdown().
 */
#define KLOG_TRANSPORT_MAGIC 0x4b540000u /* "KT" in the upper half */
#define KLOG_TRANSPORT_VERSION (KLOG_TRANSPORT_MAGIC | 1u)

typedef struct klog_transport_methods {
    uint32_t version;      /* KLOG_TRANSPORT_VERSION */
    uint32_t size;         /* sizeof(klog_transport_methods) */
    /* The URL scheme: [a-z][a-z0-9+.-]*, at most 31 characters, unique in
     * a registry.  Must stay valid while any registry holds the vtable. */
    const char *scheme;
    size_t state_size;     /* bytes per registered transport */
    size_t listener_size;  /* bytes per listener */
    size_t conn_size;      /* bytes per connection */

    /* Optional.  Set up the transport; arg is the init_arg given to
     * klog_transport_register (transport-specific: certificates for TLS, a
     * simulated network for an in-memory transport).  Must leave tst so that
     * fini is safe even when it fails.  May block and allocate. */
    int (*init)(void *tst, const void *arg);
    /* Optional.  Release what init and later ops set up in tst.  Called
     * once, after every listener and connection of the transport is closed
     * (which may be on the thread that closed the last one). */
    void (*fini)(void *tst);

    /* ---- listening: listen, accept, listener_shutdown and listener_close
     * are all set or all NULL (a transport that can only connect). */

    /* Bind addr and start accepting.  Write the bound address, with any
     * wildcard resolved ("127.0.0.1:0" -> "127.0.0.1:40123"), into bound
     * (boundsz >= 256 bytes, NUL-terminated).  0 or -errno (-EADDRINUSE,
     * -EINVAL for an address it cannot parse).  On failure lst holds
     * nothing: listener_close is not called.  May block briefly. */
    int (*listen)(void *tst, void *lst, const char *addr, char *bound, size_t boundsz);
    /* Wait until deadline for a connection and set up cst for it.  0,
     * -ETIMEDOUT, -ECANCELED (after listener_shutdown), or -errno.  On
     * failure cst holds nothing (close is not called for it); the listener
     * stays usable after any failure but -ECANCELED. */
    int (*accept)(void *tst, void *lst, void *cst, int64_t deadline);
    /* Make a blocked accept (and every later one) return -ECANCELED, now.
     * Thread-safe, idempotent, does not block.  Called by the core at most
     * once per listener, possibly while another thread is inside accept. */
    void (*listener_shutdown)(void *tst, void *lst);
    /* Release the listener.  No accept is in progress. */
    void (*listener_close)(void *tst, void *lst);

    /* ---- connections */

    /* Connect to addr by deadline and set up cst.  0, -ETIMEDOUT,
     * -ECONNREFUSED, -EHOSTUNREACH, -EINVAL (address), or -errno.  On
     * failure cst holds nothing.  Required. */
    int (*connect)(void *tst, void *cst, const char *addr, int64_t deadline);
    /* Take bytes of one frame: a prefix of iov (total > 0).  Returns the
     * number of bytes taken (> 0, may be fewer than offered: the core calls
     * again with the rest), -ETIMEDOUT if the deadline passed before any
     * byte was taken, -ECANCELED after shutdown, or -errno (-EPIPE,
     * -ECONNRESET).  The first call for a frame starts with its 4-byte
     * length; the rest of a frame always comes before any byte of the next.
     * A transport that carries whole messages (and can lose, delay or
     * reorder them) takes the whole iov or nothing: the core then calls it
     * exactly once per frame.  Called by one thread at a time (the core
     * serialises senders).  Required. */
    ssize_t (*send)(void *tst, void *cst, const struct iovec *iov, int iovcnt, int64_t deadline);
    /* Give up to len (> 0) bytes that arrived, in order, into buf.  Returns
     * the count (> 0; whatever is there, not necessarily len), 0 when the
     * peer closed its side and every byte has been read, -ETIMEDOUT,
     * -ECANCELED after shutdown, or -errno.  Called by one thread at a time,
     * possibly concurrently with send.  Required. */
    ssize_t (*recv)(void *tst, void *cst, void *buf, size_t len, int64_t deadline);
    /* Make blocked send/recv (and every later one) return -ECANCELED now,
     * and tell the peer the connection is over (it reads end of stream; a
     * medium with no such signal may leave that to close).  Thread-safe,
     * idempotent, does not block; called by the core at most once per
     * connection, possibly while other threads are inside send or recv.
     * Required. */
    void (*shutdown)(void *tst, void *cst);
    /* Release cst (close descriptors, free buffers).  No other op on cst is
     * in progress or will follow.  Required. */
    void (*close)(void *tst, void *cst);
    /* Optional.  Describe the peer, once, right after connect/accept:
     * its address into addr (addrsz >= 128) in the transport's address form,
     * and into ident (identsz >= 256) what the transport vouches for about
     * who the peer is - kernel credentials on a Unix socket, a certificate
     * subject for TLS, a node name in a simulation - or "" if it vouches for
     * nothing (plain TCP).  0 or -errno (then both are taken as ""). */
    int (*peer)(void *tst, void *cst, char *addr, size_t addrsz, char *ident, size_t identsz);
    /* Optional (NULL = every op -ENOTSUP).  Escape hatch, as SQLite's
     * xFileControl: op on the connection cst, on the listener lst, or (both
     * NULL) on the transport.  Opcodes below; -ENOTSUP for unknown ones.
     * Must not block unless the opcode says so. */
    int (*control)(void *tst, void *lst, void *cst, int op, void *arg);
} klog_transport_methods;

/* control() opcodes.  0..999 are reserved for klog (100..199 for the TLS
 * transport); a transport's own opcodes start at KLOG_TRANSPORT_CTL_USER. */
enum {
    /* cst: arg is int *: a descriptor that poll(2) reports readable
     * (POLLIN; POLLHUP or POLLERR also count) whenever recv with a past
     * deadline would return something other than -ETIMEDOUT (bytes, end of
     * stream, an error), level-triggered.  Owned by the transport, valid
     * until close. */
    KLOG_TRANSPORT_CTL_CONN_FD = 1,
    /* lst: arg is int *: the same for accept. */
    KLOG_TRANSPORT_CTL_LISTENER_FD = 2,
    /* cst: arg is int *: a descriptor that poll(2) reports writable
     * (POLLOUT; POLLHUP or POLLERR also count) whenever send with a past
     * deadline would take bytes or fail, level-triggered.  Optional: an
     * event loop (the klog server) uses it to finish sending a response
     * to a client that reads slowly without waiting for it; without it,
     * the loop sends with a deadline instead.  Owned by the transport. */
    KLOG_TRANSPORT_CTL_CONN_WRITE_FD = 3,
    /* cst: arg is int *: what the readiness descriptor cannot show, as
     * flags.  KLOG_TRANSPORT_PENDING_READ: bytes already taken off the
     * descriptor wait inside the transport (decrypted TLS records), so a
     * recv would return them although the descriptor is not readable; an
     * event loop must call recv again without waiting for it.
     * KLOG_TRANSPORT_PENDING_WRITE: recv cannot progress until the
     * descriptor turns writable (a TLS handshake whose next flight did not
     * fit in the socket); wait for POLLOUT too.  Optional: a transport
     * without it (-ENOTSUP) has neither. */
    KLOG_TRANSPORT_CTL_CONN_PENDING = 4,
    /* TLS (klog_transport_tls()).  (transport) arg is char[256] or NULL:
     * read the certificate, key and CA files again and use them for
     * connections made from now on (those already up keep theirs: nothing
     * is dropped); on failure the old ones stay and arg gets the reason. */
    KLOG_TRANSPORT_CTL_TLS_RELOAD = 100,
    /* TLS, cst: arg is char[256]: who the peer proved to be, once the
     * handshake is over: "CN=alice,O=Example" (its certificate's subject,
     * RFC 2253, when the certificate was verified against ssl.ca.location),
     * "psk:NAME" (it knew the pre-shared key NAME), or "" (nothing: no
     * certificate asked for or given).  -EAGAIN while the handshake is
     * still going on. */
    KLOG_TRANSPORT_CTL_TLS_PEER = 101,
    /* TLS, cst: arg is char[128]: the protocol version and cipher agreed,
     * "TLSv1.3 TLS_AES_256_GCM_SHA384"; -EAGAIN during the handshake. */
    KLOG_TRANSPORT_CTL_TLS_INFO = 102,
    KLOG_TRANSPORT_CTL_USER = 1000,
};

/* Flags of KLOG_TRANSPORT_CTL_CONN_PENDING. */
enum { KLOG_TRANSPORT_PENDING_READ = 1, KLOG_TRANSPORT_PENDING_WRITE = 2 };

/* ======================================================================
 * Part 2: registries.
 * ====================================================================== */

/* Flags of klog_transport_registry_new. */
enum {
    /* Start empty: without the built-in "tcp" and "unix" transports. */
    KLOG_TRANSPORT_REGISTRY_EMPTY = 1u << 0,
};

/*
 * Create a registry holding the built-in transports:
 *   tcp   tcp://HOST:PORT, HOST an IPv4 address, [IPv6] or a name
 *         (resolved with getaddrinfo, before the deadline starts); PORT 0
 *         to listen on a free port.  TCP_NODELAY and SO_KEEPALIVE on every
 *         connection, SO_REUSEADDR on listeners.  Peer identity: "".
 *   unix  unix:///PATH or unix://RELATIVE (a path socket; a stale socket
 *         file nobody listens on is replaced, and the listener removes its
 *         file when closed), unix://@NAME (a Linux abstract name),
 *         unix:// to listen on an abstract name the kernel picks.  Peer
 *         identity: "uid=U gid=G pid=P" from SO_PEERCRED.
 * Returns 0, -EINVAL (bad flags or out NULL), -ENOMEM.
 */
KLOG_API int klog_transport_registry_new(klog_transport_registry **out, unsigned flags);

/*
 * Drop the caller's hold on reg.  Its transports are finished (fini) once
 * this was called and its last listener and connection are closed, so
 * listeners and connections stay usable after it.  NULL-safe.
 */
KLOG_API void klog_transport_registry_free(klog_transport_registry *reg);

/*
 * Add a transport under m->scheme.  The core checks the vtable, allocates
 * m->state_size zeroed bytes and calls m->init(state, init_arg); m must stay
 * valid while reg exists.  Returns 0, -EINVAL (NULL argument, wrong magic,
 * a required op missing, listen ops only partly set, a bad scheme),
 * KLOG_EFORMAT (version 0 or a size smaller than version 1 of the struct:
 * built against a header this core does not know), -EEXIST (the scheme is
 * taken), -ENOMEM, or what init returned (fini is then called).
 */
KLOG_API int klog_transport_register(klog_transport_registry *reg, const klog_transport_methods *m,
                                     const void *init_arg);

/*
 * The transport for a URL ("tcp://h:p") or a bare scheme ("tcp"), or NULL
 * if reg has none (or an argument is NULL).  The pointer is the vtable
 * that was registered; a wrapping transport (one that injects faults, or
 * TLS over TCP) can drive it.
 */
KLOG_API const klog_transport_methods *klog_transport_find(const klog_transport_registry *reg,
                                                           const char *url);

/*
 * The TLS transport, "tls": tls://HOST:PORT, TLS 1.2 and 1.3 over TCP
 * through OpenSSL, HOST as for tcp.  Not in a registry by default:
 *
 *     klog_transport_register(reg, klog_transport_tls(), conf);
 *
 * where conf (a const klog_conf *, or NULL) holds the ssl.* keys (klog(7),
 * TLS): ssl.certificate.location and ssl.key.location (PEM; this end's
 * certificate, needed to listen unless a pre-shared key is set),
 * ssl.key.password, ssl.ca.location (the CAs peers' certificates must
 * chain to; connecting without it uses the system's), ssl.client.auth
 * (none, requested, required: whether a listener asks clients for a
 * certificate), ssl.enabled.protocols, ssl.cipher.suites,
 * ssl.endpoint.identification.algorithm (https: a connection checks the
 * server's certificate names the host it dialled), ssl.psk.identity and
 * ssl.psk.key (a pre-shared key instead of certificates, both ends).  The
 * files are read by register (its errors: -ENOENT, KLOG_ECONF for a file
 * OpenSSL rejects or a key that does not match its certificate) and again
 * on KLOG_TRANSPORT_CTL_TLS_RELOAD.  A listen without a certificate or a
 * pre-shared key fails with -ENOKEY.
 *
 * Accept does not wait for the handshake: it runs inside later recv and
 * send calls, so a server's event loop is never held by a slow or hostile
 * client.  Use KLOG_TRANSPORT_CTL_CONN_PENDING in such a loop (decrypted
 * bytes are invisible to the descriptor), and KLOG_TRANSPORT_CTL_TLS_PEER
 * for the peer's identity (on the accepting side klog_conn_peer's identity
 * is "": the handshake has not happened yet at accept).  Connect completes
 * the handshake before it returns.  A failed handshake fails the
 * connection with -EPROTO (not TLS, or no common protocol),
 * -EKEYREJECTED (a certificate that does not verify) or -EACCES (a
 * certificate or key that was required and not given).  Send and recv on
 * one connection may run on two threads, as for every transport.
 */
KLOG_API const klog_transport_methods *klog_transport_tls(void);

/*
 * A transport-wide control() (both lst and cst NULL) on the transport
 * registered under scheme: KLOG_TRANSPORT_CTL_TLS_RELOAD.  Returns what
 * the transport returns, -EPROTONOSUPPORT (no such scheme), -ENOTSUP,
 * -EINVAL.
 */
KLOG_API int klog_transport_control(klog_transport_registry *reg, const char *scheme, int op, void *arg);

/*
 * The largest frame that connections made from reg afterwards accept
 * (Kafka's socket.request.max.bytes), 1..KLOG_TRANSPORT_MAX_FRAME_LIMIT.
 * Default KLOG_TRANSPORT_MAX_FRAME_DEFAULT.  Returns 0 or -EINVAL.
 */
KLOG_API int klog_transport_set_max_frame(klog_transport_registry *reg, uint32_t max_bytes);

/*
 * Called when a connection fails for a reason worth a line in a log: an
 * oversized or truncated frame, a transport error.  Not for timeouts,
 * shutdown or a peer closing cleanly.  peer is the peer's URL, err the code
 * the call returns, msg a one-line reason.  Runs on the thread whose call
 * found the fault, with no lock held; it must not call back into that
 * connection.
 */
typedef void (*klog_transport_log_cb)(void *opaque, const char *peer, int err, const char *msg);

/* Set (or with cb NULL clear) reg's log callback.  Affects connections made
 * afterwards.  Returns 0 or -EINVAL. */
KLOG_API int klog_transport_set_log_cb(klog_transport_registry *reg, klog_transport_log_cb cb,
                                       void *opaque);

/* ======================================================================
 * Part 3: listeners and connections.  Timeouts are in milliseconds:
 * 0 = do not wait, < 0 = wait for ever.
 * ====================================================================== */

/*
 * Listen on url.  Returns 0, -EPROTONOSUPPORT (no transport for the
 * scheme), -EOPNOTSUPP (the transport cannot listen), -EINVAL (bad URL),
 * -ENOMEM, or the transport's error (-EADDRINUSE, ...).
 */
KLOG_API int klog_transport_listen(klog_transport_registry *reg, const char *url, klog_listener **out);

/* The URL the listener is bound to, wildcards resolved
 * ("tcp://127.0.0.1:40123").  Valid until close. */
KLOG_API const char *klog_listener_url(const klog_listener *l);

/*
 * Accept a connection, waiting up to timeout_ms.  Returns 0, -ETIMEDOUT
 * (the listener stays usable), -ECANCELED (after klog_listener_shutdown),
 * -ENOMEM, -EINVAL, or the transport's error (-EMFILE: the listener stays
 * usable).
 */
KLOG_API int klog_listener_accept(klog_listener *l, int timeout_ms, klog_conn **out);

/* A descriptor for poll(2)/epoll(7), readable when an accept with timeout
 * 0 would not time out.  Owned by the listener.  Returns it (>= 0),
 * -ENOTSUP (the transport has none) or -EINVAL. */
KLOG_API int klog_listener_fd(klog_listener *l);

/* Make a blocked accept, and every later one, return -ECANCELED.  Any
 * thread, any time before close.  Returns 0 or -EINVAL. */
KLOG_API int klog_listener_shutdown(klog_listener *l);

/* Stop listening and free l.  No accept may be in progress (shut it down
 * first).  Connections accepted from l are not affected.  NULL-safe;
 * returns 0. */
KLOG_API int klog_listener_close(klog_listener *l);

/* Transport-specific operation on the listener (control() above).  Returns
 * what the transport returns, -ENOTSUP, -EINVAL. */
KLOG_API int klog_listener_control(klog_listener *l, int op, void *arg);

/*
 * Connect to url, waiting up to timeout_ms.  Returns 0, -EPROTONOSUPPORT,
 * -EINVAL (bad URL), -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH, -ENOMEM, or
 * the transport's error.
 */
KLOG_API int klog_transport_connect(klog_transport_registry *reg, const char *url, int timeout_ms,
                                   klog_conn **out);

/*
 * Send one frame whose payload is the concatenation of iov[0..iovcnt)
 * (iovcnt 0..1023; an empty frame is allowed).  The core writes the 4-byte
 * length in front.  Waits up to timeout_ms for the transport to take the
 * bytes.  Returns 0, -ETIMEDOUT (nothing of the frame was sent; the
 * connection stays usable), KLOG_ETOOBIG (payload of 2^31 bytes or more;
 * nothing sent), -EINVAL, or a final error (see the top of this header;
 * a timeout after part of a frame went out is final too: the stream can
 * no longer be framed).  The buffers are not kept after the call.
 */
KLOG_API int klog_conn_send(klog_conn *c, const struct iovec *iov, int iovcnt, int timeout_ms);

/*
 * Receive one frame, waiting up to timeout_ms.  On success *frame points to
 * the payload, owned by the connection and valid until the next
 * klog_conn_recv or klog_conn_close on c, and the return value is its
 * length (0 for an empty frame).  -ETIMEDOUT: no whole frame yet; what
 * arrived of one is kept and the next call continues it.  -EBUSY: another
 * thread is receiving on c.  Else a final error (the top of this header):
 * KLOG_ETOOBIG is returned as soon as the length is read, before any
 * allocation.
 */
KLOG_API int klog_conn_recv(klog_conn *c, int timeout_ms, const void **frame);

/* A descriptor for poll(2)/epoll(7), readable (level-triggered) when a
 * klog_conn_recv with timeout 0 would not time out, or may complete part of
 * a frame.  Owned by the connection.  Returns it (>= 0), -ENOTSUP, -EINVAL. */
KLOG_API int klog_conn_fd(klog_conn *c);

/*
 * The peer, as the transport saw it at connect/accept: *url its address
 * ("tcp://127.0.0.1:40312", "unix://" for an unnamed Unix socket) and
 * *identity what the transport vouches for ("" if nothing; see
 * klog_transport_registry_new).  Either may be NULL.  The strings are
 * valid until close.  Returns 0 or -EINVAL.
 */
KLOG_API int klog_conn_peer(const klog_conn *c, const char **url, const char **identity);

/* Change c's frame cap (1..KLOG_TRANSPORT_MAX_FRAME_LIMIT), e.g. a small
 * one before a peer authenticates.  Applies from the next frame whose
 * length is read.  Any thread.  Returns 0 or -EINVAL. */
KLOG_API int klog_conn_set_max_frame(klog_conn *c, uint32_t max_bytes);

/* Make blocked and later calls on c return -ECANCELED and tell the peer the
 * connection is over.  Any thread, any time before close; idempotent.
 * Returns 0 or -EINVAL. */
KLOG_API int klog_conn_shutdown(klog_conn *c);

/* Close c and free it.  No other call on c may be in progress (shut it down
 * and join the threads first).  NULL-safe; returns 0. */
KLOG_API int klog_conn_close(klog_conn *c);

/* Transport-specific operation on the connection (control() above).
 * Returns what the transport returns, -ENOTSUP, -EINVAL. */
KLOG_API int klog_conn_control(klog_conn *c, int op, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* KLOG_TRANSPORT_H */
