/*
 * test/transport/mem.c - the in-memory transport's own promises: each
 * fault from a seed, determinism (same seed, same trace), cut, partition
 * and heal, and the virtual clock a single-threaded simulation drives.
 *
 * Three nodes, each a registry of its own on one net (as three klog
 * instances of a simulation would be): n1 connects to listeners on n2 and
 * n3.
 */
#include <poll.h>

#include "tr_test.h"

TestSuite(mem, .timeout = 60);

#define MS 1000000ll

struct sim {
    ktr_memnet *net;
    klog_transport_registry *n[3];
    klog_listener *l2, *l3;
    klog_conn *a2, *b2; /* n1 -> n2: a2 at n1, b2 at n2 */
    klog_conn *a3, *b3; /* n1 -> n3 */
};

static void sim_open(struct sim *s, uint64_t seed, unsigned flags)
{
    memset(s, 0, sizeof *s);
    cr_assert_eq(ktr_memnet_new(&s->net, seed, flags), 0);
    static const char *names[] = { "n1", "n2", "n3" };
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(klog_transport_registry_new(&s->n[i], KLOG_TRANSPORT_REGISTRY_EMPTY), 0);
        ktr_mem_init in = { s->net, names[i] };
        cr_assert_eq(klog_transport_register(s->n[i], ktr_mem_methods(), &in), 0);
    }
    cr_assert_eq(klog_transport_listen(s->n[1], "mem://n2", &s->l2), 0);
    cr_assert_eq(klog_transport_listen(s->n[2], "mem://n3", &s->l3), 0);
    cr_assert_eq(klog_transport_connect(s->n[0], "mem://n2", 0, &s->a2), 0);
    cr_assert_eq(klog_listener_accept(s->l2, 0, &s->b2), 0);
    cr_assert_eq(klog_transport_connect(s->n[0], "mem://n3", 0, &s->a3), 0);
    cr_assert_eq(klog_listener_accept(s->l3, 0, &s->b3), 0);
}

static void sim_close(struct sim *s)
{
    klog_conn *cs[] = { s->a2, s->b2, s->a3, s->b3 };
    for (size_t i = 0; i < KLOG_ARRAY_LEN(cs); i++)
        klog_conn_close(cs[i]);
    klog_listener_close(s->l2);
    klog_listener_close(s->l3);
    for (int i = 0; i < 3; i++)
        klog_transport_registry_free(s->n[i]);
    ktr_memnet_free(s->net);
}

static int send_u32(klog_conn *c, uint32_t v)
{
    struct iovec io = { &v, 4 };
    return klog_conn_send(c, &io, 1, 0);
}

/* Receive every frame ready now (timeout 0) into out[]; returns how many. */
static int drain(klog_conn *c, uint32_t *out, int max)
{
    int n = 0;
    const void *fr;
    int rc;
    while ((rc = klog_conn_recv(c, 0, &fr)) == 4) {
        cr_assert_lt(n, max);
        memcpy(&out[n++], fr, 4);
    }
    cr_assert_eq(rc, -ETIMEDOUT, "drain ended with %s", klog_err_name(rc));
    return n;
}

Test(mem, node_names_and_peers)
{
    struct sim s;
    sim_open(&s, 1, KTR_MEMNET_VIRTUAL_TIME);
    const char *u, *id;
    klog_conn_peer(s.a2, &u, &id);
    cr_assert_str_eq(u, "mem://n2");
    cr_assert_str_eq(id, "n2");
    klog_conn_peer(s.b2, &u, &id);
    cr_assert_str_eq(u, "mem://n1/1");
    cr_assert_str_eq(id, "n1");
    klog_listener *dup = NULL;
    cr_assert_eq(klog_transport_listen(s.n[0], "mem://n2", &dup), -EADDRINUSE);
    cr_assert_eq(klog_transport_listen(s.n[0], "mem://", &dup), -EINVAL);
    klog_conn *x = NULL;
    cr_assert_eq(klog_transport_connect(s.n[0], "mem://nobody", 0, &x), -ECONNREFUSED);
    /* A registry needs a net and a node name. */
    klog_transport_registry *r;
    cr_assert_eq(klog_transport_registry_new(&r, KLOG_TRANSPORT_REGISTRY_EMPTY), 0);
    cr_assert_eq(klog_transport_register(r, ktr_mem_methods(), NULL), -EINVAL);
    ktr_mem_init bad = { s.net, "" };
    cr_assert_eq(klog_transport_register(r, ktr_mem_methods(), &bad), -EINVAL);
    klog_transport_registry_free(r);
    sim_close(&s);
}

Test(mem, virtual_time_never_blocks)
{
    struct sim s;
    sim_open(&s, 1, KTR_MEMNET_VIRTUAL_TIME);
    const void *fr;
    int64_t t0 = t_ms();
    cr_assert_eq(klog_conn_recv(s.b2, -1, &fr), -ETIMEDOUT, "for ever means: not in virtual time");
    klog_conn *x = NULL;
    cr_assert_eq(klog_listener_accept(s.l2, -1, &x), -ETIMEDOUT);
    cr_assert_lt(t_ms() - t0, 100);
    cr_assert_eq(ktr_memnet_now(s.net), 0);
    cr_assert_eq(ktr_memnet_next_due(s.net), -1);
    cr_assert_eq(ktr_memnet_set_time(s.net, 5 * MS), 0);
    cr_assert_eq(ktr_memnet_set_time(s.net, 4 * MS), -EINVAL, "never backwards");
    cr_assert_eq(ktr_memnet_now(s.net), 5 * MS);
    sim_close(&s);

    ktr_memnet *real;
    cr_assert_eq(ktr_memnet_new(&real, 1, 0), 0);
    cr_assert_eq(ktr_memnet_set_time(real, 1), -EINVAL, "real time is not set");
    ktr_memnet_free(real);
    cr_assert_eq(ktr_memnet_new(&real, 1, 1u << 5), -EINVAL);
}

Test(mem, fault_rates_validated)
{
    ktr_memnet *net;
    cr_assert_eq(ktr_memnet_new(&net, 1, 0), 0);
    ktr_mem_faults f = { .drop_ppm = 1000001 };
    cr_assert_eq(ktr_memnet_set_faults(net, &f), -EINVAL);
    f = (ktr_mem_faults){ .delay_min_ns = 5, .delay_max_ns = 4 };
    cr_assert_eq(ktr_memnet_set_faults(net, &f), -EINVAL);
    f = (ktr_mem_faults){ .reorder_ns = -1 };
    cr_assert_eq(ktr_memnet_set_faults(net, &f), -EINVAL);
    cr_assert_eq(ktr_memnet_set_faults(net, NULL), 0);
    cr_assert_eq(ktr_memnet_cut(net, "a", "a"), -EINVAL);
    cr_assert_eq(ktr_memnet_cut(net, "a", NULL), -EINVAL);
    ktr_memnet_free(net);
}

Test(mem, drop_all_and_dup_all)
{
    struct sim s;
    sim_open(&s, 7, KTR_MEMNET_VIRTUAL_TIME);
    ktr_mem_faults f = { .drop_ppm = 1000000 };
    cr_assert_eq(ktr_memnet_set_faults(s.net, &f), 0);
    for (uint32_t i = 0; i < 10; i++)
        cr_assert_eq(send_u32(s.a2, i), 0, "a dropped frame looks sent");
    uint32_t got[64];
    cr_assert_eq(drain(s.b2, got, 64), 0);
    f = (ktr_mem_faults){ .dup_ppm = 1000000 };
    cr_assert_eq(ktr_memnet_set_faults(s.net, &f), 0);
    for (uint32_t i = 0; i < 5; i++)
        cr_assert_eq(send_u32(s.a2, i), 0);
    cr_assert_eq(drain(s.b2, got, 64), 10);
    for (uint32_t i = 0; i < 10; i++)
        cr_assert_eq(got[i], i / 2, "frame %u then its copy", i / 2);
    sim_close(&s);
}

Test(mem, delay_keeps_order_and_follows_the_clock)
{
    struct sim s;
    sim_open(&s, 7, KTR_MEMNET_VIRTUAL_TIME);
    ktr_mem_faults f = { .delay_ppm = 1000000, .delay_min_ns = 10 * MS, .delay_max_ns = 10 * MS };
    cr_assert_eq(ktr_memnet_set_faults(s.net, &f), 0);
    cr_assert_eq(send_u32(s.a2, 1), 0);
    cr_assert_eq(ktr_memnet_set_faults(s.net, NULL), 0);
    cr_assert_eq(send_u32(s.a2, 2), 0); /* not delayed itself, but behind 1 */
    cr_assert_eq(send_u32(s.a3, 3), 0); /* another connection: not held up */
    uint32_t got[8];
    cr_assert_eq(drain(s.b2, got, 8), 0);
    cr_assert_eq(drain(s.b3, got, 8), 1);
    cr_assert_eq(ktr_memnet_next_due(s.net), 10 * MS);
    cr_assert_eq(ktr_memnet_set_time(s.net, 10 * MS - 1), 0);
    cr_assert_eq(drain(s.b2, got, 8), 0);
    cr_assert_eq(ktr_memnet_set_time(s.net, 10 * MS), 0);
    cr_assert_eq(drain(s.b2, got, 8), 2);
    cr_assert_eq(got[0], 1);
    cr_assert_eq(got[1], 2);
    cr_assert_eq(ktr_memnet_next_due(s.net), -1);
    sim_close(&s);
}

Test(mem, reorder_lets_later_frames_overtake)
{
    struct sim s;
    sim_open(&s, 7, KTR_MEMNET_VIRTUAL_TIME);
    ktr_mem_faults f = { .reorder_ppm = 1000000, .reorder_ns = 5 * MS };
    cr_assert_eq(ktr_memnet_set_faults(s.net, &f), 0);
    cr_assert_eq(send_u32(s.a2, 1), 0);
    cr_assert_eq(ktr_memnet_set_faults(s.net, NULL), 0);
    cr_assert_eq(send_u32(s.a2, 2), 0);
    cr_assert_eq(send_u32(s.a2, 3), 0);
    uint32_t got[8];
    cr_assert_eq(drain(s.b2, got, 8), 2);
    cr_assert_eq(got[0], 2);
    cr_assert_eq(got[1], 3);
    cr_assert_eq(ktr_memnet_set_time(s.net, 5 * MS), 0);
    cr_assert_eq(drain(s.b2, got, 8), 1);
    cr_assert_eq(got[0], 1);
    sim_close(&s);
}

Test(mem, delay_in_real_time_blocks_for_it)
{
    struct sim s;
    sim_open(&s, 7, 0);
    ktr_mem_faults f = { .delay_ppm = 1000000, .delay_min_ns = 80 * MS, .delay_max_ns = 80 * MS };
    cr_assert_eq(ktr_memnet_set_faults(s.net, &f), 0);
    int64_t t0 = t_ms();
    cr_assert_eq(send_u32(s.a2, 9), 0);
    uint32_t v = 9;
    t_expect(s.b2, &v, 4);
    int64_t ms = t_ms() - t0;
    cr_assert(ms >= 75 && ms < 2000, "a frame delayed 80 ms came after %lld ms", (long long)ms);
    sim_close(&s);
}

Test(mem, readiness_follows_virtual_time)
{
    struct sim s;
    sim_open(&s, 7, KTR_MEMNET_VIRTUAL_TIME);
    int fd = klog_conn_fd(s.b2);
    cr_assert_geq(fd, 0);
    struct pollfd p = { .fd = fd, .events = POLLIN };
    ktr_mem_faults f = { .delay_ppm = 1000000, .delay_min_ns = 3 * MS, .delay_max_ns = 3 * MS };
    cr_assert_eq(ktr_memnet_set_faults(s.net, &f), 0);
    cr_assert_eq(send_u32(s.a2, 1), 0);
    cr_assert_eq(poll(&p, 1, 50), 0, "not yet: virtual time stands still");
    cr_assert_eq(ktr_memnet_set_time(s.net, 3 * MS), 0);
    cr_assert_eq(poll(&p, 1, 0), 1);
    uint32_t got[2];
    cr_assert_eq(drain(s.b2, got, 2), 1);
    cr_assert_eq(poll(&p, 1, 0), 0);
    int lfd = klog_listener_fd(s.l2);
    cr_assert_geq(lfd, 0);
    p.fd = lfd;
    cr_assert_eq(poll(&p, 1, 0), 0);
    sim_close(&s);
}

Test(mem, cut_resets_the_link_and_refuses_until_heal)
{
    struct sim s;
    sim_open(&s, 7, 0);
    cr_assert_eq(ktr_memnet_cut(s.net, "n2", "n1"), 0);
    const void *fr;
    cr_assert_eq(klog_conn_recv(s.b2, 1000, &fr), -ECONNRESET);
    cr_assert_eq(send_u32(s.a2, 1), -ECONNRESET);
    /* n1 -> n3 is another link. */
    cr_assert_eq(send_u32(s.a3, 5), 0);
    uint32_t v = 5;
    t_expect(s.b3, &v, 4);
    klog_conn *x = NULL;
    cr_assert_eq(klog_transport_connect(s.n[0], "mem://n2", 100, &x), -EHOSTUNREACH);
    cr_assert_eq(klog_transport_connect(s.n[1], "mem://n3", 100, &x), 0, "n2 -> n3 is up");
    klog_conn_close(x);
    ktr_memnet_heal(s.net);
    cr_assert_eq(klog_transport_connect(s.n[0], "mem://n2", 100, &x), 0);
    klog_conn_close(x);
    sim_close(&s);
}

/* The net's node and cut arrays grow past their first allocation (8) and
 * again: a cut made before the growths and one made after both hold, the
 * link between them stays up, and heal clears all. */
Test(mem, many_nodes_and_cuts_grow_the_net)
{
    struct sim s;
    sim_open(&s, 9, 0);
    cr_assert_eq(ktr_memnet_cut(s.net, "n1", "n2"), 0);
    for (int i = 0; i < 20; i++) {
        char other[8];
        snprintf(other, sizeof other, "x%02d", i);
        cr_assert_eq(ktr_memnet_cut(s.net, "n1", other), 0, "%s", other); /* a new node each */
    }
    cr_assert_eq(ktr_memnet_cut(s.net, "n2", "n3"), 0);
    klog_conn *x = NULL;
    cr_assert_eq(klog_transport_connect(s.n[0], "mem://n2", 100, &x), -EHOSTUNREACH, "the first cut");
    cr_assert_eq(klog_transport_connect(s.n[1], "mem://n3", 100, &x), -EHOSTUNREACH, "the last cut");
    cr_assert_eq(send_u32(s.a3, 7), 0, "n1 -> n3 was never cut");
    uint32_t v = 7;
    t_expect(s.b3, &v, 4);
    ktr_memnet_heal(s.net);
    cr_assert_eq(klog_transport_connect(s.n[0], "mem://n2", 100, &x), 0);
    klog_conn_close(x);
    cr_assert_eq(klog_transport_connect(s.n[1], "mem://n3", 100, &x), 0);
    klog_conn_close(x);
    sim_close(&s);
}

Test(mem, partition_and_heal)
{
    struct sim s;
    sim_open(&s, 7, KTR_MEMNET_VIRTUAL_TIME);
    /* A frame in flight when the partition comes is lost with it. */
    ktr_mem_faults f = { .delay_ppm = 1000000, .delay_min_ns = 2 * MS, .delay_max_ns = 2 * MS };
    cr_assert_eq(ktr_memnet_set_faults(s.net, &f), 0);
    cr_assert_eq(send_u32(s.a2, 100), 0);
    cr_assert_eq(ktr_memnet_set_faults(s.net, NULL), 0);
    const char *alone[] = { "n1" };
    cr_assert_eq(ktr_memnet_partition(s.net, alone, 1), 0);
    cr_assert_eq(ktr_memnet_set_time(s.net, 2 * MS), 0);
    uint32_t got[8];
    cr_assert_eq(drain(s.b2, got, 8), 0);
    /* Across: lost both ways, silently; the connections stay open. */
    cr_assert_eq(send_u32(s.a2, 1), 0);
    cr_assert_eq(send_u32(s.b2, 2), 0);
    cr_assert_eq(drain(s.b2, got, 8), 0);
    cr_assert_eq(drain(s.a2, got, 8), 0);
    klog_conn *x = NULL;
    cr_assert_eq(klog_transport_connect(s.n[0], "mem://n3", 0, &x), -EHOSTUNREACH);
    /* Within the other side: fine. */
    cr_assert_eq(klog_transport_connect(s.n[1], "mem://n3", 0, &x), 0);
    klog_conn *y = NULL;
    cr_assert_eq(klog_listener_accept(s.l3, 0, &y), 0);
    cr_assert_eq(send_u32(x, 23), 0);
    cr_assert_eq(drain(y, got, 8), 1);
    cr_assert_eq(got[0], 23);
    /* Heal: the same connections carry frames again; the lost stay lost. */
    ktr_memnet_heal(s.net);
    cr_assert_eq(send_u32(s.a2, 3), 0);
    cr_assert_eq(send_u32(s.b2, 4), 0);
    cr_assert_eq(drain(s.b2, got, 8), 1);
    cr_assert_eq(got[0], 3);
    cr_assert_eq(drain(s.a2, got, 8), 1);
    cr_assert_eq(got[0], 4);
    /* Nested partitions: {n1} | {n2} | {n3}. */
    const char *two[] = { "n2" };
    cr_assert_eq(ktr_memnet_partition(s.net, alone, 1), 0);
    cr_assert_eq(ktr_memnet_partition(s.net, two, 1), 0);
    cr_assert_eq(send_u32(x, 24), 0);
    cr_assert_eq(drain(y, got, 8), 0);
    ktr_memnet_heal(s.net);
    klog_conn_close(x);
    klog_conn_close(y);
    sim_close(&s);
}

/* ---- seeds and determinism ------------------------------------------------------- */

struct trace {
    char buf[1 << 16];
    size_t n;
    int counts[KTR_MEM_RECV + 1];
};

static void trace_cb(void *opaque, const ktr_mem_event *ev)
{
    struct trace *t = opaque;
    t->counts[ev->action]++;
    int k = snprintf(t->buf + t->n, sizeof t->buf - t->n, "%llu %lld %d %s>%s c%llu f%llu %u @%lld\n",
                     (unsigned long long)ev->seq, (long long)ev->t, (int)ev->action, ev->src, ev->dst,
                     (unsigned long long)ev->conn, (unsigned long long)ev->frame, ev->len, (long long)ev->due);
    if (k > 0 && t->n + (size_t)k < sizeof t->buf)
        t->n += (size_t)k;
}

struct run {
    struct trace tr;
    uint64_t digest, events;
    uint32_t got[2000];
    int ngot;
};

/* A small simulation: 300 frames each way on two connections under every
 * fault at 10%, time moved by 1 ms steps; returns what arrived and the trace. */
static void simulate(uint64_t seed, struct run *r)
{
    memset(r, 0, sizeof *r);
    struct sim s;
    sim_open(&s, seed, KTR_MEMNET_VIRTUAL_TIME);
    ktr_memnet_set_trace(s.net, trace_cb, &r->tr);
    ktr_mem_faults f = { .drop_ppm = 100000, .dup_ppm = 100000, .delay_ppm = 100000, .reorder_ppm = 100000,
                         .delay_min_ns = 1 * MS, .delay_max_ns = 20 * MS, .reorder_ns = 7 * MS };
    cr_assert_eq(ktr_memnet_set_faults(s.net, &f), 0);
    int64_t now = 0;
    for (uint32_t i = 0; i < 300; i++) {
        cr_assert_eq(send_u32(s.a2, i), 0);
        cr_assert_eq(send_u32(s.b3, 10000 + i), 0);
        now += MS;
        cr_assert_eq(ktr_memnet_set_time(s.net, now), 0);
        r->ngot += drain(s.b2, r->got + r->ngot, 2000 - r->ngot);
        r->ngot += drain(s.a3, r->got + r->ngot, 2000 - r->ngot);
    }
    /* Let everything in flight land, moving time straight to each due. */
    int rounds = 0;
    for (int64_t due; (due = ktr_memnet_next_due(s.net)) >= 0; rounds++) {
        cr_assert_lt(rounds, 2000, "frames that never land");
        cr_assert_eq(ktr_memnet_set_time(s.net, due > now ? (now = due) : now), 0);
        r->ngot += drain(s.b2, r->got + r->ngot, 2000 - r->ngot);
        r->ngot += drain(s.a3, r->got + r->ngot, 2000 - r->ngot);
    }
    r->digest = ktr_memnet_digest(s.net, &r->events);
    ktr_memnet_set_trace(s.net, NULL, NULL);
    sim_close(&s);
}

Test(mem, same_seed_same_run)
{
    static struct run a, b, c;
    simulate(12345, &a);
    simulate(12345, &b);
    simulate(54321, &c);
    /* Each fault happened, at about its rate (600 frames, 10% each). */
    for (int act = KTR_MEM_DROP; act <= KTR_MEM_REORDER; act++)
        cr_assert(a.tr.counts[act] >= 25 && a.tr.counts[act] <= 110, "action %d happened %d times", act,
                  a.tr.counts[act]);
    int sent = 600, dropped = a.tr.counts[KTR_MEM_DROP], dups = a.tr.counts[KTR_MEM_DUP];
    cr_assert_eq(a.ngot, sent - dropped + dups, "every kept frame and copy arrives once");
    cr_assert_eq(a.tr.counts[KTR_MEM_RECV], a.ngot);
    /* Reordered frames do arrive out of order. */
    int inversions = 0;
    for (int i = 1; i < a.ngot; i++)
        inversions += a.got[i] < 10000 && a.got[i - 1] < 10000 && a.got[i] < a.got[i - 1];
    cr_assert_gt(inversions, 0);
    /* Same seed: the same trace, event for event, and the same frames. */
    cr_assert_eq(a.events, b.events);
    cr_assert_eq(a.digest, b.digest);
    cr_assert_eq(a.tr.n, b.tr.n);
    cr_assert(memcmp(a.tr.buf, b.tr.buf, a.tr.n) == 0, "traces differ");
    cr_assert_eq(a.ngot, b.ngot);
    cr_assert(memcmp(a.got, b.got, sizeof a.got) == 0);
    /* Another seed: another run. */
    cr_assert_neq(a.digest, c.digest);
    cr_assert(a.tr.n != c.tr.n || memcmp(a.tr.buf, c.tr.buf, a.tr.n) != 0);
}

Test(mem, flow_control_bounds_a_queue)
{
    struct sim s;
    sim_open(&s, 7, KTR_MEMNET_VIRTUAL_TIME);
    /* Nobody reads at n2: sends stop being taken at about 4 MiB queued. */
    uint8_t *chunk = calloc(1, 1 << 20);
    struct iovec v = { chunk, 1 << 20 };
    int sent = 0, rc;
    while ((rc = klog_conn_send(s.a2, &v, 1, 0)) == 0 && sent < 100)
        sent++;
    cr_assert_eq(rc, -ETIMEDOUT, "a full queue times out the send (nothing of it sent)");
    cr_assert(sent >= 4 && sent <= 5, "%d MiB queued", sent);
    const void *fr;
    cr_assert_eq(klog_conn_recv(s.b2, 0, &fr), 1 << 20);
    cr_assert_eq(klog_conn_send(s.a2, &v, 1, 0), 0, "room again");
    free(chunk);
    sim_close(&s);
}
