/*
 * test/partition/partition.c - the partition object (lib/partition) on its
 * own: the high watermark (the log end while not replicated, held back and
 * advanced while replicated), reads cut at it, the leader epoch stamped at
 * append, listener fan-out and waiters, and the acknowledgement queue
 * (inline fast path, order, errors, failure, close).
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <klog/error.h>
#include "format/format.h"
#include "io/io.h"
#include "partition/partition.h"

static char dir[64];
static kio *io;
static kpart *P;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/klog-part-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(kio_open(&io, &(kio_options){ .backend = KIO_BACKEND_AUTO }), 0);
    int rc = kpart_open(&P, io, dir, NULL);
    cr_assert_eq(rc, 0, "kpart_open: %s", klog_strerror(rc));
}

static void teardown(void)
{
    cr_assert_eq(kpart_close(P), 0);
    kio_close(io);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(partition, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------------ */

#define TS0 1700000000000LL

typedef struct { uint8_t buf[8192]; size_t len; } batch;

/* n records; record i's timestamp is ts0 + i. */
static void build(batch *b, int n, int64_t ts0)
{
    kf_builder kb;
    kf_builder_init(&kb, b->buf, sizeof b->buf, KF_RECORD_MAX_DEFAULT);
    for (int i = 0; i < n; i++) {
        char v[32];
        int vl = snprintf(v, sizeof v, "value-%d", i);
        kf_record r = { NULL, -1, v, vl, ts0 + i, NULL, 0 };
        cr_assert_eq(kf_builder_add(&kb, &r), 0);
    }
    const uint8_t *out;
    cr_assert_eq(kf_builder_finish(&kb, NULL, NULL, &out, &b->len), 0);
    cr_assert_eq(out, b->buf);
}

/* Append one batch of n records (timestamps from ts0); returns its base. */
static int64_t append_ts(int n, int64_t ts0)
{
    batch b;
    build(&b, n, ts0);
    ks_batch kb = { b.buf, b.len, -1, 0 };
    int rc = kpart_append(P, &kb, 1, 0);
    cr_assert_eq(rc, 0, "append: %s", klog_strerror(rc));
    cr_assert_eq(kb.result, 0);
    return kb.base_offset;
}

static int64_t append(int n) { return append_ts(n, TS0 + kpart_end_offset(P)); }

/* Read at offset; returns the view's next_offset (view released). */
static int64_t read_next(int64_t offset, size_t *len)
{
    ks_view v;
    int rc = kpart_read(P, offset, 1u << 20, &v);
    cr_assert_eq(rc, 0, "read at %lld: %s", (long long)offset, klog_strerror(rc));
    if (len)
        *len = v.len;
    int64_t next = v.next_offset;
    ks_view_release(&v);
    return next;
}

/* ---- the high watermark ---------------------------------------------------------- */

Test(partition, hw_is_the_log_end_when_not_replicated)
{
    cr_assert_not(kpart_replicated(P));
    cr_assert_eq(kpart_high_watermark(P), 0);
    for (int i = 0; i < 3; i++) {
        append(10);
        cr_assert_eq(kpart_end_offset(P), 10 * (i + 1));
        cr_assert_eq(kpart_high_watermark(P), kpart_end_offset(P));
    }
    /* reads see everything, exactly as the log's own read */
    ks_view a, b;
    cr_assert_eq(kpart_read(P, 0, 1u << 20, &a), 0);
    cr_assert_eq(ks_log_read(kpart_log(P), 0, 1u << 20, &b), 0);
    cr_assert_eq(a.len, b.len);
    cr_assert_eq(a.next_offset, 30);
    cr_assert_eq(b.next_offset, 30);
    ks_view_release(&a);
    ks_view_release(&b);
    /* nobody may set it */
    cr_assert_eq(kpart_advance_hw(P, 5), KLOG_ESTATE);
    cr_assert_eq(kpart_high_watermark(P), 30);
}

Test(partition, reads_are_cut_at_the_hw_on_batch_boundaries)
{
    append(10);                       /* 0..9 */
    kpart_set_replicated(P, true);
    cr_assert(kpart_replicated(P));
    cr_assert_eq(kpart_high_watermark(P), 10, "starts at the log end");
    size_t len0;
    cr_assert_eq(read_next(0, &len0), 10);
    append(10);                       /* 10..19 */
    append(10);                       /* 20..29 */
    cr_assert_eq(kpart_end_offset(P), 30);
    cr_assert_eq(kpart_high_watermark(P), 10, "appends do not move a held HW");

    size_t len;
    cr_assert_eq(read_next(0, &len), 10, "only the batch below the HW");
    cr_assert_eq(len, len0);
    /* at or above the HW, up to the log end: nothing yet, not an error */
    ks_view v;
    cr_assert_eq(kpart_read(P, 10, 1u << 20, &v), 0);
    cr_assert_eq(v.len, 0);
    cr_assert_null(v.seg);
    cr_assert_eq(v.first_offset, 10);
    cr_assert_eq(v.next_offset, 10);
    cr_assert_eq(kpart_read(P, 30, 1u << 20, &v), 0);
    cr_assert_eq(v.len, 0);
    cr_assert_eq(kpart_read(P, 31, 1u << 20, &v), KLOG_EOFFSET);

    /* a HW inside a batch shows none of it */
    cr_assert_eq(kpart_advance_hw(P, 15), 15);
    cr_assert_eq(kpart_high_watermark(P), 15);
    cr_assert_eq(read_next(0, NULL), 10);
    cr_assert_eq(read_next(10, &len), 10);
    cr_assert_eq(len, 0);
    /* it never goes back, and never past the log end */
    cr_assert_eq(kpart_advance_hw(P, 12), 15);
    cr_assert_eq(kpart_advance_hw(P, 20), 20);
    cr_assert_eq(read_next(0, NULL), 20);
    cr_assert_eq(read_next(10, NULL), 20);
    cr_assert_eq(kpart_advance_hw(P, 1000), 30);
    cr_assert_eq(read_next(0, NULL), 30);

    /* back to one replica: the HW is the log end again */
    append(5);
    cr_assert_eq(kpart_high_watermark(P), 30);
    kpart_set_replicated(P, false);
    cr_assert_not(kpart_replicated(P));
    cr_assert_eq(kpart_high_watermark(P), 35);
    cr_assert_eq(read_next(30, NULL), 35);
}

Test(partition, time_lookup_and_delete_records_stop_at_the_hw)
{
    append_ts(10, TS0);               /* ts TS0+0..9 at offsets 0..9 */
    kpart_set_replicated(P, true);
    append_ts(10, TS0 + 10);          /* offsets 10..19 */
    int64_t off = -1;
    cr_assert_eq(kpart_offset_for_time(P, TS0 + 15, &off), 0);
    cr_assert_eq(off, 10, "capped at the HW, got %lld", (long long)off);
    cr_assert_eq(kpart_offset_for_time(P, TS0 + 5, &off), 0);
    cr_assert_eq(off, 5);

    int64_t start = -1;
    cr_assert_eq(kpart_delete_records(P, 15, &start), KLOG_EOFFSET, "above the HW");
    cr_assert_eq(kpart_start_offset(P), 0);
    cr_assert_eq(kpart_delete_records(P, -1, &start), 0);
    cr_assert_eq(start, 10, "-1 means the HW");

    kpart_set_replicated(P, false);
    cr_assert_eq(kpart_offset_for_time(P, TS0 + 15, &off), 0);
    cr_assert_eq(off, 15);
    cr_assert_eq(kpart_delete_records(P, -1, &start), 0);
    cr_assert_eq(start, 20, "-1 means the log end without replication");
}

Test(partition, leader_epoch_is_stamped_into_appended_batches)
{
    cr_assert_eq(kpart_leader_epoch(P), 0);
    cr_assert_eq(kpart_role(P), KPART_LEADER);
    append(3);
    cr_assert_eq(kpart_become_leader(P, 7), 0);
    cr_assert_eq(kpart_leader_epoch(P), 7);
    append(3);
    ks_view v;
    cr_assert_eq(kpart_read(P, 0, 1u << 20, &v), 0);
    kf_batch_info bi;
    ssize_t l1 = kf_batch_parse(v.data, v.len, &bi);
    cr_assert_gt(l1, 0);
    cr_assert_eq(bi.leader_epoch, 0);
    ssize_t l2 = kf_batch_parse(v.data + l1, v.len - (size_t)l1, &bi);
    cr_assert_gt(l2, 0);
    cr_assert_eq(bi.leader_epoch, 7);
    cr_assert_eq(kf_batch_verify(v.data + l1, (size_t)l2), 0, "the epoch is outside the checksum");
    ks_view_release(&v);
    kpart_set_role(P, KPART_FOLLOWER);
    cr_assert_eq(kpart_role(P), KPART_FOLLOWER);
}

/* ---- listeners and waiters ---------------------------------------------------------- */

typedef struct rec_listener {
    kpart_listener l;
    _Atomic int calls;
    _Atomic unsigned last_ev;
    _Atomic int64_t last_off;
    _Atomic int inside;      /* fn is running */
} rec_listener;

static void rec_fn(void *arg, unsigned ev, int64_t off)
{
    rec_listener *r = arg;
    atomic_fetch_add(&r->inside, 1);
    atomic_store(&r->last_ev, ev);
    atomic_store(&r->last_off, off);
    atomic_fetch_add(&r->calls, 1);
    atomic_fetch_sub(&r->inside, 1);
}

static void rec_init(rec_listener *r, unsigned events)
{
    memset(r, 0, sizeof *r);
    r->l = (kpart_listener){ .fn = rec_fn, .arg = r, .events = events };
}

Test(partition, every_listener_hears_its_events)
{
    rec_listener ap, hw, both;
    rec_init(&ap, KPART_EV_APPEND);
    rec_init(&hw, KPART_EV_HW);
    rec_init(&both, KPART_EV_APPEND | KPART_EV_HW);
    kpart_listen(P, &ap.l);
    kpart_listen(P, &hw.l);
    kpart_listen(P, &both.l);

    /* one replica: an append is a HW move too */
    append(5);
    cr_assert_eq(ap.calls, 1);
    cr_assert_eq(ap.last_ev, KPART_EV_APPEND);
    cr_assert_eq(ap.last_off, 5);
    cr_assert_eq(hw.calls, 1);
    cr_assert_eq(hw.last_ev, KPART_EV_HW);
    cr_assert_eq(hw.last_off, 5);
    cr_assert_eq(both.calls, 1);
    cr_assert_eq(both.last_ev, KPART_EV_APPEND | KPART_EV_HW);

    /* replicated: appends and HW moves are separate events */
    kpart_set_replicated(P, true);
    append(5);
    cr_assert_eq(ap.calls, 2);
    cr_assert_eq(ap.last_off, 10);
    cr_assert_eq(hw.calls, 1, "a held HW did not move");
    cr_assert_eq(both.calls, 2);
    cr_assert_eq(both.last_ev, KPART_EV_APPEND);
    kpart_advance_hw(P, 8);
    cr_assert_eq(ap.calls, 2);
    cr_assert_eq(hw.calls, 2);
    cr_assert_eq(hw.last_off, 8);
    cr_assert_eq(both.calls, 3);
    cr_assert_eq(both.last_ev, KPART_EV_HW);
    kpart_advance_hw(P, 8); /* no move, no event */
    cr_assert_eq(hw.calls, 2);
    kpart_set_replicated(P, false); /* the HW jumps to the log end */
    cr_assert_eq(hw.calls, 3);
    cr_assert_eq(hw.last_off, 10);

    kpart_unlisten(P, &both.l);
    kpart_unlisten(P, &both.l); /* not registered any more: no-op */
    append(1);
    cr_assert_eq(ap.calls, 3);
    cr_assert_eq(hw.calls, 4);
    cr_assert_eq(both.calls, 4, "removed: not called");
    kpart_unlisten(P, &ap.l);
    kpart_unlisten(P, &hw.l);
    append(1);
    cr_assert_eq(ap.calls, 3);
    cr_assert_eq(hw.calls, 4);
}

#define APPENDERS 2
#define APPENDS 3000        /* each appender's least */
#define APPENDS_MAX 300000  /* and most: the appends run until the listeners have had their turns */

static atomic_bool appends_stop;

static void *appender(void *arg)
{
    (void)arg;
    batch b;
    kf_builder kb;
    kf_builder_init(&kb, b.buf, sizeof b.buf, KF_RECORD_MAX_DEFAULT);
    kf_record r = { NULL, -1, "x", 1, TS0, NULL, 0 };
    if (kf_builder_add(&kb, &r) != 0)
        return (void *)-1;
    const uint8_t *out;
    if (kf_builder_finish(&kb, NULL, NULL, &out, &b.len) != 0)
        return (void *)-1;
    intptr_t i = 0;
    for (; i < APPENDS_MAX && (i < APPENDS || !atomic_load(&appends_stop)); i++) {
        ks_batch x = { b.buf, b.len, -1, 0 };
        if (kpart_append(P, &x, 1, 0) != 0 || x.result != 0)
            return (void *)-1;
    }
    return (void *)i;
}

Test(partition, listeners_come_and_go_while_appends_run)
{
    rec_listener all;
    rec_init(&all, KPART_EV_APPEND);
    kpart_listen(P, &all.l);
    atomic_store(&appends_stop, false);
    pthread_t th[APPENDERS];
    for (int i = 0; i < APPENDERS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, appender, NULL), 0);
    /* At least 50 listeners come and go, and the appends go on until one
     * of them has heard an append (on a loaded machine the appenders could
     * otherwise finish their least before the first listener is in). */
    int cycles = 0, heard = 0;
    while (cycles < 50 || (heard == 0 && cycles < 20000)) {
        rec_listener tmp;
        rec_init(&tmp, KPART_EV_APPEND | KPART_EV_HW);
        kpart_listen(P, &tmp.l);
        for (int spin = 0; spin < 2000 && tmp.calls == 0; spin++)
            sched_yield();
        kpart_unlisten(P, &tmp.l);
        /* once removed: not running, and never called again */
        cr_assert_eq(atomic_load(&tmp.inside), 0);
        int calls = atomic_load(&tmp.calls);
        heard += calls > 0;
        for (int spin = 0; spin < 50; spin++)
            sched_yield();
        cr_assert_eq(atomic_load(&tmp.calls), calls, "called after kpart_unlisten returned");
        cycles++;
    }
    atomic_store(&appends_stop, true);
    int64_t total = 0;
    for (int i = 0; i < APPENDERS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        cr_assert_neq((intptr_t)ret, -1, "an append failed");
        total += (intptr_t)ret;
    }
    cr_assert_geq(total, APPENDERS * APPENDS);
    cr_assert_eq(kpart_end_offset(P), total);
    cr_assert_eq(all.calls, total, "the standing listener heard every append");
    cr_assert_gt(heard, 0, "listeners added during the appends heard some");
    kpart_unlisten(P, &all.l);
}

static bool readable(int fd)
{
    struct pollfd pfd = { fd, POLLIN, 0 };
    return poll(&pfd, 1, 0) == 1;
}

static void drain(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

Test(partition, an_armed_waiter_wakes_when_the_hw_moves)
{
    kpart_waiter w = { .efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
    cr_assert_geq(w.efd, 0);
    cr_assert_eq(kpart_waiter_add(P, &w), 0);
    append(1);
    cr_assert_not(readable(w.efd), "not armed: not woken");

    atomic_store(&w.armed, 1);
    kpart_waiter_arm(P, 1);
    append(1);
    cr_assert(readable(w.efd), "armed: an append (a HW move) wakes it");
    cr_assert_eq(atomic_load(&w.armed), 0, "the writer disarms it");
    drain(w.efd);
    kpart_waiter_arm(P, -1);

    kpart_set_replicated(P, true);
    atomic_store(&w.armed, 1);
    kpart_waiter_arm(P, 1);
    append(1);
    cr_assert_not(readable(w.efd), "records above the HW are nothing to wake for");
    kpart_advance_hw(P, 3);
    cr_assert(readable(w.efd), "the HW moved");
    drain(w.efd);
    kpart_waiter_arm(P, -1);

    kpart_waiter_remove(P, &w);
    atomic_store(&w.armed, 1);
    append(1);
    kpart_advance_hw(P, 4);
    cr_assert_not(readable(w.efd), "removed");
    close(w.efd);
}

/* The waiter array grows past its first allocation (8) and twice more:
 * every waiter added before and after a growth is still woken, and one
 * removed from the middle is not. */
Test(partition, many_waiters_grow_and_all_wake)
{
    enum { NW = 40 };
    kpart_waiter w[NW];
    for (int i = 0; i < NW; i++) {
        w[i] = (kpart_waiter){ .efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
        cr_assert_geq(w[i].efd, 0);
        cr_assert_eq(kpart_waiter_add(P, &w[i]), 0);
        atomic_store(&w[i].armed, 1);
    }
    kpart_waiter_arm(P, 1); /* the fast path's count: anything above 0 */
    append(1);
    for (int i = 0; i < NW; i++) {
        cr_assert(readable(w[i].efd), "waiter %d woken", i);
        drain(w[i].efd);
    }
    kpart_waiter_arm(P, -1);

    kpart_waiter_remove(P, &w[0]);
    kpart_waiter_remove(P, &w[NW / 2]);
    for (int i = 0; i < NW; i++)
        atomic_store(&w[i].armed, 1);
    kpart_waiter_arm(P, 1);
    append(1);
    for (int i = 0; i < NW; i++) {
        bool removed = i == 0 || i == NW / 2;
        cr_assert_eq(readable(w[i].efd), !removed, "waiter %d %s", i, removed ? "removed" : "still there");
    }
    kpart_waiter_arm(P, -1);
    for (int i = 0; i < NW; i++) {
        if (i != 0 && i != NW / 2)
            kpart_waiter_remove(P, &w[i]);
        close(w[i].efd);
    }
}

/* ---- acknowledgements ---------------------------------------------------------------------- */

#define NREC 256

typedef struct rec_ack {
    kpart_ack a;
    int id;
    _Atomic int done;   /* times done ran */
    int err;
    pthread_t thread;
} rec_ack;

static _Atomic int order[NREC];
static _Atomic int norder;

static void ack_done(kpart_ack *a, int err)
{
    rec_ack *r = (rec_ack *)a;
    r->err = err;
    r->thread = pthread_self();
    atomic_fetch_add(&r->done, 1);
    int i = atomic_fetch_add(&norder, 1);
    if (i < NREC)
        atomic_store(&order[i], r->id);
}

static void ack_init(rec_ack *r, int id)
{
    memset(r, 0, sizeof *r);
    r->a.done = ack_done;
    r->id = id;
}

static void order_reset(void) { atomic_store(&norder, 0); }

Test(partition, acks_complete_inline_without_replication)
{
    order_reset();
    int64_t base = append(10);
    rec_ack r;
    ack_init(&r, 1);
    kpart_ack_submit(P, &r.a, base + 10, KPART_ACK_ALL, 0);
    cr_assert_eq(r.done, 1, "completed before submit returned");
    cr_assert_eq(r.err, 0);
    cr_assert(pthread_equal(r.thread, pthread_self()), "on the submitting thread");
    cr_assert_eq(kpart_ack_pending(P), 0, "the queue was not touched");
    /* an error completes inline too, with its code */
    ack_init(&r, 2);
    kpart_ack_submit(P, &r.a, 0, KPART_ACK_ALL, KLOG_ETOOBIG);
    cr_assert_eq(r.done, 1);
    cr_assert_eq(r.err, KLOG_ETOOBIG);
    /* replicated, a leader-level ack (acks=1) needs no HW either */
    kpart_set_replicated(P, true);
    append(5);
    ack_init(&r, 3);
    kpart_ack_submit(P, &r.a, 15, KPART_ACK_LEADER, 0);
    cr_assert_eq(r.done, 1);
    cr_assert_eq(kpart_ack_pending(P), 0);
    /* and so is an ack already below the HW */
    ack_init(&r, 4);
    kpart_ack_submit(P, &r.a, 10, KPART_ACK_ALL, 0);
    cr_assert_eq(r.done, 1);
}

Test(partition, acks_wait_for_the_hw_and_complete_in_order)
{
    order_reset();
    kpart_set_replicated(P, true);
    rec_ack r[4];
    int64_t b0 = append(10), b1 = append(10), b2 = append(10);
    ack_init(&r[0], 0);
    ack_init(&r[1], 1);
    ack_init(&r[2], 2);
    ack_init(&r[3], 3);
    kpart_ack_submit(P, &r[0].a, b0 + 10, KPART_ACK_ALL, 0);
    /* an acks=1 ack behind a waiting one keeps its place */
    kpart_ack_submit(P, &r[1].a, b1 + 10, KPART_ACK_LEADER, 0);
    /* so does a failed batch's report */
    kpart_ack_submit(P, &r[2].a, 0, KPART_ACK_ALL, KLOG_ESEQUENCE);
    kpart_ack_submit(P, &r[3].a, b2 + 10, KPART_ACK_ALL, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(r[i].done, 0, "ack %d completed before the HW passed its batch", i);
    cr_assert_eq(kpart_ack_pending(P), 4);

    kpart_advance_hw(P, 9);
    cr_assert_eq(r[0].done, 0, "HW 9 is inside the first batch");
    kpart_advance_hw(P, 10);
    cr_assert_eq(r[0].done, 1);
    cr_assert_eq(r[0].err, 0);
    cr_assert(pthread_equal(r[0].thread, pthread_self()), "on the thread that moved the HW");
    cr_assert_eq(r[1].done, 1, "the leader-level ack followed at once");
    cr_assert_eq(r[2].done, 1);
    cr_assert_eq(r[2].err, KLOG_ESEQUENCE);
    cr_assert_eq(r[3].done, 0);
    kpart_advance_hw(P, 29);
    cr_assert_eq(r[3].done, 0);
    kpart_advance_hw(P, 30);
    cr_assert_eq(r[3].done, 1);
    cr_assert_eq(kpart_ack_pending(P), 0);
    cr_assert_eq(norder, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(order[i], i, "completion %d was ack %d", i, order[i]);
}

Test(partition, a_ready_ack_queues_behind_waiting_ones)
{
    order_reset();
    kpart_set_replicated(P, true);
    int64_t b0 = append(10);
    rec_ack r0, r1;
    ack_init(&r0, 0);
    ack_init(&r1, 1);
    kpart_ack_submit(P, &r0.a, b0 + 10, KPART_ACK_ALL, 0);
    kpart_advance_hw(P, 5);
    /* r1's own condition holds (end 5 <= HW), but r0 waits before it */
    kpart_ack_submit(P, &r1.a, 5, KPART_ACK_ALL, 0);
    cr_assert_eq(r1.done, 0, "completed out of order");
    kpart_advance_hw(P, 10);
    cr_assert_eq(r0.done, 1);
    cr_assert_eq(r1.done, 1);
    cr_assert_eq(order[0], 0);
    cr_assert_eq(order[1], 1);
}

Test(partition, a_failure_completes_every_waiter_in_order)
{
    order_reset();
    kpart_set_replicated(P, true);
    append(30);
    rec_ack r[3], later;
    for (int i = 0; i < 3; i++) {
        ack_init(&r[i], i);
        kpart_ack_submit(P, &r[i].a, 10 * (i + 1), KPART_ACK_ALL, i == 1 ? KLOG_ETOOBIG : 0);
    }
    kpart_ack_fail(P, -EIO);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i].done, 1);
        cr_assert_eq(order[i], i);
    }
    cr_assert_eq(r[0].err, -EIO);
    cr_assert_eq(r[1].err, KLOG_ETOOBIG, "its own error stays");
    cr_assert_eq(r[2].err, -EIO);
    cr_assert_eq(kpart_ack_pending(P), 0);
    /* later submissions are not failed */
    ack_init(&later, 3);
    kpart_ack_submit(P, &later.a, 30, KPART_ACK_ALL, 0);
    cr_assert_eq(later.done, 0);
    kpart_set_replicated(P, false); /* one replica again: acknowledged */
    cr_assert_eq(later.done, 1);
    cr_assert_eq(later.err, 0);
}

Test(partition, close_completes_waiters_with_eclosed)
{
    order_reset();
    kpart_set_replicated(P, true);
    append(10);
    append(10);
    rec_ack r[2];
    ack_init(&r[0], 0);
    ack_init(&r[1], 1);
    kpart_ack_submit(P, &r[0].a, 10, KPART_ACK_ALL, 0);
    kpart_ack_submit(P, &r[1].a, 20, KPART_ACK_ALL, 0);
    cr_assert_eq(kpart_close(P), 0);
    P = NULL;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(r[i].done, 1);
        cr_assert_eq(r[i].err, KLOG_ECLOSED);
        cr_assert_eq(order[i], i);
    }
}

/* A completion that submits again (as a producer's report callback that
 * sends, with linger.ms=0, does). */
static rec_ack chain[3];
static void chain_done(kpart_ack *a, int err)
{
    ack_done(a, err);
    rec_ack *r = (rec_ack *)a;
    if (r->id == 0)
        kpart_ack_submit(P, &chain[2].a, 0, KPART_ACK_ALL, 0);
}

Test(partition, a_completion_may_submit_again)
{
    order_reset();
    kpart_set_replicated(P, true);
    append(10);
    for (int i = 0; i < 3; i++) {
        ack_init(&chain[i], i);
        chain[i].a.done = chain_done;
    }
    kpart_ack_submit(P, &chain[0].a, 10, KPART_ACK_ALL, 0);
    kpart_ack_submit(P, &chain[1].a, 10, KPART_ACK_ALL, 0);
    kpart_advance_hw(P, 10);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(chain[i].done, 1, "ack %d", i);
    cr_assert_eq(order[0], 0);
    cr_assert_eq(order[1], 1, "the earlier waiter first");
    cr_assert_eq(order[2], 2);
    cr_assert_eq(kpart_ack_pending(P), 0);
}

static void *advancer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (;;) {
        int64_t cur = kpart_high_watermark(P);
        if (cur >= NREC)
            return NULL;
        int64_t to = cur + 1 + (int64_t)(rand_r(&seed) % 7);
        kpart_advance_hw(P, to);
    }
}

Test(partition, concurrent_hw_advances_keep_the_order)
{
    order_reset();
    kpart_set_replicated(P, true);
    static rec_ack r[NREC];
    for (int i = 0; i < NREC; i++) {
        int64_t base = append(1);
        ack_init(&r[i], i);
        kpart_ack_submit(P, &r[i].a, base + 1, KPART_ACK_ALL, 0);
    }
    cr_assert_eq(kpart_ack_pending(P), NREC);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, advancer, (void *)(uintptr_t)(i + 1)), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(kpart_high_watermark(P), NREC);
    cr_assert_eq(kpart_ack_pending(P), 0);
    cr_assert_eq(norder, NREC);
    for (int i = 0; i < NREC; i++) {
        cr_assert_eq(r[i].done, 1, "ack %d completed %d times", i, r[i].done);
        cr_assert_eq(order[i], i, "completion %d was ack %d", i, order[i]);
    }
}

/* ---- a replicated leader's own sync (KS_APPEND_EARLY) ------------------------------------- */

typedef struct durable_seen {
    kpart_listener l;
    int calls;
    int64_t offset, durable; /* at the last call */
} durable_seen;

static void durable_fn(void *arg, unsigned ev, int64_t off)
{
    (void)ev;
    durable_seen *d = arg;
    d->calls++;
    d->offset = off;
    d->durable = kpart_durable_offset(P);
}

static void append_flags(int n, unsigned flags)
{
    batch b;
    build(&b, n, TS0);
    ks_batch kb = { b.buf, b.len, -1, 0 };
    cr_assert_eq(kpart_append(P, &kb, 1, flags), 0);
}

Test(partition, a_replicated_leader_tells_its_followers_before_its_own_sync)
{
    durable_seen d = { .l = { .fn = durable_fn, .events = KPART_EV_APPEND } };
    d.l.arg = &d;
    kpart_listen(P, &d.l);
    /* one replica: a durable append is heard once it is durable */
    append_flags(5, KS_APPEND_SYNC);
    cr_assert_eq(d.calls, 1);
    cr_assert_eq(d.offset, 5);
    cr_assert_eq(d.durable, 5, "heard before its sync without replication");
    /* replicated: heard once written, before the sync the append waits for */
    kpart_set_replicated(P, true);
    append_flags(5, KS_APPEND_SYNC);
    cr_assert_eq(d.calls, 2, "heard once, not again after the sync");
    cr_assert_eq(d.offset, 10);
    cr_assert_eq(d.durable, 5, "the followers' fetch waited for the leader's sync");
    cr_assert_eq(kpart_durable_offset(P), 10, "the append returned before its sync");
    kpart_unlisten(P, &d.l);
}

Test(partition, a_leaders_hw_waits_for_its_own_sync_then_catches_up)
{
    order_reset();
    kpart_set_replicated(P, true);
    append_flags(10, KS_APPEND_SYNC);
    append_flags(10, 0); /* durability none: not on disk yet */
    cr_assert_eq(kpart_durable_offset(P), 10);
    rec_ack r;
    ack_init(&r, 0);
    kpart_ack_submit(P, &r.a, 20, KPART_ACK_ALL, 0);
    /* the followers hold all 20: the HW stops at what this node holds */
    cr_assert_eq(kpart_advance_hw_durable(P, 20), 10);
    cr_assert_eq(kpart_high_watermark(P), 10);
    cr_assert_eq(r.done, 0, "acknowledged above the leader's durable offset");
    /* the leader's sync ends: the HW follows, on that thread */
    cr_assert_eq(kpart_sync(P), 0);
    cr_assert_eq(kpart_high_watermark(P), 20);
    cr_assert_eq(r.done, 1);
    cr_assert_eq(r.err, 0);
    cr_assert(pthread_equal(r.thread, pthread_self()));
    /* an append that syncs catches up to what the replicas allowed */
    append_flags(10, 0);
    cr_assert_eq(kpart_advance_hw_durable(P, 30), 20);
    append_flags(1, KS_APPEND_SYNC);
    cr_assert_eq(kpart_high_watermark(P), 30, "the append's own sync moved the HW");
    /* no further than the replicas allowed */
    cr_assert_eq(kpart_sync(P), 0);
    cr_assert_eq(kpart_high_watermark(P), 30);
}

Test(partition, what_the_replicas_allowed_in_one_epoch_is_not_taken_in_the_next)
{
    kpart_set_replicated(P, true);
    cr_assert_eq(kpart_become_leader(P, 1), 0);
    append_flags(10, KS_APPEND_SYNC);
    append_flags(10, 0);
    cr_assert_eq(kpart_advance_hw_durable(P, 20), 10);
    /* a new term before the sync: that allowance was for the old one */
    cr_assert_eq(kpart_become_follower(P, 2), 0);
    cr_assert_eq(kpart_become_leader(P, 3), 0);
    cr_assert_eq(kpart_sync(P), 0);
    cr_assert_eq(kpart_high_watermark(P), 10, "a stale allowance moved the HW");
    /* a follower's HW is no further than its disk either */
    cr_assert_eq(kpart_become_follower(P, 4), 0);
    cr_assert_eq(kpart_advance_hw_durable(P, 15), 15);
    cr_assert_eq(kpart_sync(P), 0);
    cr_assert_eq(kpart_high_watermark(P), 15, "a follower's HW is what its leader says");
}
