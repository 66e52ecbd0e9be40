/*
 * lib/transport/mem.h - "mem": an in-memory network with fault injection,
 * for klog's tests and the replication simulation.
 *
 * A ktr_memnet is a simulated network that a test creates (nothing is
 * global).  Each registry that registers ktr_mem_methods() with a
 * ktr_mem_init joins the net as one node (a name); its listeners are named
 * endpoints anywhere on the net ("mem://broker-1"), its connections carry
 * frames to other nodes' listeners.  Frames move as whole messages: the
 * core hands the transport one frame per send, and the net decides that
 * frame's fate from a seeded random stream:
 *
 *   drop       the frame is lost (the sender saw success);
 *   duplicate  it arrives twice;
 *   delay      it arrives later, order kept (later frames wait behind it,
 *              as on one TCP connection);
 *   reorder    it is held back so that later frames overtake it;
 *   cut        ktr_memnet_cut(a, b): every connection between nodes a and b
 *              is reset (both ends fail with -ECONNRESET) and new ones are
 *              refused with -EHOSTUNREACH until heal;
 *   partition  ktr_memnet_partition(set): the nodes of set and the others
 *              cannot reach each other: frames across are lost silently,
 *              also those already in flight that were not yet being read,
 *              connections stay open (as TCP does while a network is
 *              down), new connections across are refused with
 *              -EHOSTUNREACH.  Partitions nest: each call splits the
 *              named nodes off into a new group;
 *   heal       ktr_memnet_heal: every cut and partition is gone (frames
 *              lost meanwhile stay lost).
 *
 * Determinism.  Every frame sent draws the same number of values from the
 * net's stream (a splitmix64 generator seeded by ktr_memnet_new), whatever
 * is decided, so the same seed and the same sequence of calls give the
 * same decisions, the same event trace and the same digest.  With real
 * time that holds for a single thread; with several threads the order of
 * their calls is the scheduler's.
 *
 * Time.  By default the net runs on CLOCK_MONOTONIC: delays are real and
 * blocking calls block (up to their deadlines).  With
 * KTR_MEMNET_VIRTUAL_TIME, time is what the caller says it is
 * (ktr_memnet_set_time, starting at 0) and no call ever waits: a call that
 * would have to wait returns -ETIMEDOUT at once, whatever its deadline.
 * That is the mode for a single-threaded simulation:
 *
 *     loop:  step every node (each sends, then receives with timeout 0
 *            until -ETIMEDOUT); then
 *            t = ktr_memnet_next_due(net) (or the next timer of a node);
 *            ktr_memnet_set_time(net, t);
 *
 * Readiness descriptors (KLOG_TRANSPORT_CTL_CONN_FD) work in both modes
 * (timerfds, made on first request); in virtual mode they change only on
 * calls into the net, including set_time.
 *
 * Threading: every call is thread-safe (one mutex per net).  The trace
 * callback runs under that mutex and must not call into the net.
 */
#ifndef KLOG_TRANSPORT_MEM_H
#define KLOG_TRANSPORT_MEM_H

#include <stddef.h>
#include <stdint.h>

#include <klog/transport.h>

typedef struct ktr_memnet ktr_memnet;

enum { KTR_MEMNET_VIRTUAL_TIME = 1u << 0 };

/* A new net.  Returns 0, -EINVAL (bad flags, out NULL), -ENOMEM. */
int ktr_memnet_new(ktr_memnet **out, uint64_t seed, unsigned flags);
/* Drop the creator's hold; the net goes when the last registry that
 * joined it is freed too.  NULL-safe. */
void ktr_memnet_free(ktr_memnet *net);

/* init_arg of ktr_mem_methods(): which net, and this registry's node name
 * (1..63 bytes; several registries may share a node). */
typedef struct ktr_mem_init {
    ktr_memnet *net;
    const char *node;
} ktr_mem_init;

/* Fault rates, applied to every frame on every link, in parts per million
 * (0 = never, 1000000 = always).  A frame is first dropped or not; a kept
 * frame is reordered, or else delayed, or neither; then duplicated or not. */
typedef struct ktr_mem_faults {
    uint32_t drop_ppm;
    uint32_t dup_ppm;
    uint32_t delay_ppm;
    uint32_t reorder_ppm;
    int64_t delay_min_ns, delay_max_ns; /* a delay is uniform in [min, max] */
    int64_t reorder_ns;                 /* how long a reordered frame is held */
} ktr_mem_faults;

/* Set the rates (NULL: no faults).  Returns 0 or -EINVAL (ppm over 10^6,
 * negative or inverted times). */
int ktr_memnet_set_faults(ktr_memnet *net, const ktr_mem_faults *f);
/* Cut the link between nodes a and b (names; unknown ones are added).
 * Returns 0, -EINVAL, -ENOMEM. */
int ktr_memnet_cut(ktr_memnet *net, const char *a, const char *b);
/* Split nodes[0..n) off into a group of their own.  Returns 0, -EINVAL,
 * -ENOMEM. */
int ktr_memnet_partition(ktr_memnet *net, const char *const *nodes, size_t n);
/* Remove every cut and partition. */
void ktr_memnet_heal(ktr_memnet *net);

/* Virtual time only: move the clock to now_ns (never backwards).  Frames
 * whose time came become receivable.  Returns 0 or -EINVAL. */
int ktr_memnet_set_time(ktr_memnet *net, int64_t now_ns);
/* The net's clock: virtual time, or CLOCK_MONOTONIC ns. */
int64_t ktr_memnet_now(ktr_memnet *net);
/* The earliest time at which a queued frame is (or was) receivable, or -1
 * if no frame is queued anywhere. */
int64_t ktr_memnet_next_due(ktr_memnet *net);

/* What happened to a frame or a connection, as the trace reports it. */
enum ktr_mem_action {
    KTR_MEM_CONNECT = 1,   /* a connection was made */
    KTR_MEM_SEND,          /* a frame queued for delivery at `due` */
    KTR_MEM_DROP,          /* lost by the drop fault */
    KTR_MEM_DUP,           /* a second copy queued */
    KTR_MEM_DELAY,         /* queued late (due = when) */
    KTR_MEM_REORDER,       /* held back (due = when) */
    KTR_MEM_LOST,          /* lost to a partition (at send or before read) */
    KTR_MEM_RESET,         /* the connection was reset by a cut */
    KTR_MEM_RECV,          /* a frame started being read */
};

typedef struct ktr_mem_event {
    uint64_t seq;          /* 1, 2, ... in the order things happened */
    int64_t t;             /* the net's clock: virtual, or ns since ktr_memnet_new */
    enum ktr_mem_action action;
    const char *src, *dst; /* node names (valid while the net lives) */
    uint64_t conn;         /* connection id, 1, 2, ... */
    uint64_t frame;        /* frame number on the connection, per direction, 1, 2, ... */
    uint32_t len;          /* bytes of the frame (with its 4-byte length) */
    int64_t due;           /* when it becomes receivable (clock as t) */
} ktr_mem_event;

typedef void (*ktr_mem_trace_cb)(void *opaque, const ktr_mem_event *ev);
/* Report every event to cb (NULL: stop).  Runs under the net's mutex. */
void ktr_memnet_set_trace(ktr_memnet *net, ktr_mem_trace_cb cb, void *opaque);
/* A hash over every event so far (in real-time mode without the times),
 * for "same seed, same run" checks; and the number of events. */
uint64_t ktr_memnet_digest(ktr_memnet *net, uint64_t *events);

#endif /* KLOG_TRANSPORT_MEM_H */
