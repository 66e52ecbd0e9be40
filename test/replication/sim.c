/*
 * test/replication/sim.c - deterministic simulation of replication
 * (lib/replication): several nodes in one process, one thread, on the
 * in-memory network in virtual time (lib/transport/mem.h) and each on a
 * simulated disk (klog/testing.h), everything drawn from one seed.
 *
 *   test_repl_sim --seeds 1-300        run seeds 1..300 (the default suite)
 *   test_repl_sim --seed 4711 -v       replay one seed, tracing what happens
 *   test_repl_sim --twice --seeds 1-10   each seed twice: the same run, exactly
 *   test_repl_sim --unclean --expect-failure --seeds 1-40
 *                                      the checker's own test: elections that
 *                                      ignore the ISR must be caught losing data
 *   test_repl_sim --rf --seeds 1-40    replication factors below the number of
 *                                      nodes (3 or 4 nodes, 2 partitions of 2 or
 *                                      3 replicas, Kafka's placement); with
 *                                      --quorum too
 *   test_repl_sim --behind start --seeds 1-20
 *   test_repl_sim --behind compact --seeds 1-20
 *                                      scripted runs, no nemesis: a follower is
 *                                      stopped, the leader's log start moves past
 *                                      its end (DeleteRecords or retention), or the
 *                                      leader compacts what it has not copied
 *                                      (offset gaps); it comes back and must hold
 *                                      the leader's records at the leader's
 *                                      offsets (scenario_run)
 *
 * A run: N nodes (3, or 2 for the two-box pair) replicate topic "t" (1 or
 * 2 partitions) under a controller: either one of its own ("ctl", a node
 * of the network with no data; it stands for a healthy quorum: it never
 * crashes but can be partitioned off), or (static mode, two nodes) the
 * static controller as klog serve runs it (lib/replication/static.c): the
 * leader hosts it and writes its state file on the simulated disk, and
 * the operator's promotes move it, also while the old leader lives behind
 * a partition.  Clients write values "c<client>-<seq>" one at a time,
 * most with acks=all, some with acks=1, to the node the controller names
 * leader.  Meanwhile the nemesis, from the seed: crashes nodes (a power cut
 * now, or at their nth disk operation, with unsynced data dropped, cut to
 * a random prefix, zeroed or turned to garbage, directory entries lost or
 * not) and restarts them later; pauses nodes; partitions the network and
 * cuts links, and heals them; turns message loss, duplication, delay and
 * reordering on and off; moves leadership as an operator would (to an
 * in-sync replica, often because the leader is down).  Then everything
 * heals, every node restarts, and the cluster must converge.
 *
 * Checked during the run, at every step:
 *   - a node's high watermark never goes back (within one run of the node),
 *     nor passes what it holds on its own disk (its durable offset);
 *   - at most one value per offset below any high watermark, across all
 *     replicas and all time (what one replica exposed as committed, no
 *     replica ever holds otherwise);
 * and at the end:
 *   - (--rf) a node outside a partition's replicas holds none of its
 *     records, and knows its leader and leader epoch all the same (the
 *     controller tells every node of every partition, for Metadata);
 *   - every acks=all write that was acknowledged is in every replica's log,
 *     at the offset it was acknowledged at;
 *   - each client's acknowledged writes are at increasing offsets, in the
 *     order it wrote them;
 *   - every replica converged to the leader's log (same offsets, same
 *     leader epochs, same values), with the HW at the end;
 *   - the run committed something (a run that commits nothing proves
 *     nothing).
 * A failure prints the seed and what went wrong; --seed N replays it
 * exactly (the network's digest is printed with -v to show it).
 */

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <klog/klog.h>
#include <klog/testing.h>
#include <klog/transport.h>

#include "format/format.h"
#include "partition/partition.h"
#include "replication/replication.h"
#include "topic/topic.h"
#include "transport/mem.h"
#include "transport/transport_internal.h"
#include "klog_config.h"
#if KLOG_HAVE_RAFT
#include <raft.h>
#include "replication/quorum.h"
#endif

#define MAXN 4
#define MAXP 2
#define MAXCLIENTS 4
#define MAXW 20000
#define MS 1000000LL
#define TOPIC "t"

static int verbose;
static int unclean; /* --unclean: elections ignore the ISR (the checker must notice) */
static int quorum_flag; /* --quorum: the quorum controller (raft) of lib/replication/quorum.c */
static int rf_flag; /* --rf: fewer replicas per partition than nodes */
enum { BEHIND_START = 1, BEHIND_COMPACT = 2 };
static int behind; /* --behind start|compact: scenario_run */
static char failure[1024];

#define TRACE(...)                                    \
    do {                                              \
        if (verbose) {                                \
            printf("%8.3f ", (double)sim.now / 1000); \
            printf(__VA_ARGS__);                      \
            printf("\n");                             \
        }                                             \
    } while (0)

/* ---- random -------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t sim_rng;
static uint64_t rnd(uint64_t n) { return n ? splitmix(&sim_rng) % n : 0; }
static bool chance(unsigned pct) { return rnd(100) < pct; }

/* ---- the world ------------------------------------------------------------------------ */

typedef struct conn_in {
    klog_conn *c;
} conn_in;

typedef struct chan_out {
    int32_t dst;
    klog_conn *c;
    char url[64];               /* where c goes */
    int64_t sent;               /* ms the request in flight went out */
} chan_out;

/* A controller and its channels to every node: the central one, or the
 * one a node hosts (static mode); busy mirrors krep_ctl's per node. */
typedef struct host {
    krep_ctl *ctl;
    chan_out out[MAXN];
    bool busy[MAXN + 2];
} host;

typedef struct snode {
    int32_t id;
    char name[16];
    char dir[512];
    klog_testing_fault *disk;
    klog_transport_registry *reg;
    klog *k;                    /* NULL while down */
    krep_node *rn;
    klog_listener *lst;
    conn_in in[32];
    int nin;
    chan_out out[MAXN + 2];
    int nout;
    int64_t incarnation;
    int runs;
    int64_t down_until;         /* restart at */
    int64_t paused_until;
    int64_t next_tick;
    bool crash_armed;
    host h;                     /* static mode: the controller it hosts (h.ctl) */
    krep_state known;           /* static mode: its state file at start */
    uint64_t persisted;         /* static mode: the node version last written */
    int64_t last_hw[MAXP];      /* this run's HW, never to go back */
    int64_t verified[MAXP];     /* offsets below checked against the committed map */
    bool witness;               /* quorum mode: a voter with no data (no rn) */
#if KLOG_HAVE_RAFT
    krep_quorum *q;             /* quorum mode: this voter's raft */
    int32_t h_epoch;            /* the epoch of the controller h mirrors */
    chan_out rout[MAXN];        /* raft channels, per voter */
    uint64_t qseed;
#endif
} snode;

typedef struct write_rec {
    kpart_ack ack;              /* first: done's argument */
    int client;
    int seq;
    bool all;                   /* acks=all */
    int part;
    int node;
    int64_t offset;
    int state;                  /* 0 in flight, 1 acked, 2 failed */
    int err;
    uint8_t batch[256];
    size_t len;
} write_rec;

typedef struct client {
    int id;
    int seq;
    write_rec *cur;
    int64_t deadline;
    int64_t next;
} client;

static struct sim {
    uint64_t seed;
    int n;                      /* nodes */
    int nparts;
    int nclients;
    int64_t now;                /* ms */
    int64_t end;                /* nemesis and workload stop */
    int64_t write_end;          /* the workload stops, 3 s into the healing */
    ktr_memnet *net;
    snode nodes[MAXN];
    bool static_mode;           /* the leader hosts the controller, as klog serve runs */
    bool quorum;                /* the raft leader hosts the controller (quorum.c) */
    int nwit;                   /* quorum mode: witnesses, after the n data nodes */
    int32_t term_leader[4096];  /* quorum mode: who led each raft term */
    uint64_t *applied_hash;     /* quorum mode: metadata hash per applied index */
    bool *applied_seen;
    krep_pstate last_seen[MAXP];
    int rf;                     /* --rf: replicas per partition (0: every node) */
    int32_t reps[MAXP][MAXN];   /* --rf: partition p's replicas (krep_assign's) */
    bool have_seen[MAXP];
    host central;               /* otherwise: a controller of its own, node "ctl" */
    krep_ctl *ctl;              /* central.ctl */
    klog_transport_registry *ctl_reg;
    klog_listener *ctl_lst;
    conn_in ctl_in[32];
    int nctl_in;
    client clients[MAXCLIENTS];
    write_rec *w;
    int nw;
    /* committed values: offset -> value id (0 = unknown) */
    int64_t *committed[MAXP];
    int64_t ncommitted[MAXP];
    int64_t max_hw[MAXP];
    kk_wbuf wb;
    char root[256];
    /* nemesis state */
    int64_t heal_at, net_calm_at, ctl_heal_at;
    int crashes, restarts, pauses, partitions, elections, acked, failed_writes, crash_ats;
    int healthy_phase;
    char seg_bytes[16];
} sim;

/* Is node index i a replica of partition p? */
static bool replica(int p, int i)
{
    if (!sim.rf)
        return true;
    for (int j = 0; j < sim.rf; j++)
        if (sim.reps[p][j] == sim.nodes[i].id)
            return true;
    return false;
}

/* The first replica of p (the reference log at the end). */
static int first_replica(int p)
{
    for (int i = 0; i < sim.n; i++)
        if (replica(p, i))
            return i;
    return 0;
}

static void host_drop(host *h);
static void host_forget(host *h) __attribute__((unused)); /* (quorum mode: raft builds) */
static int nall(void) { return sim.n + sim.nwit; }
static void host_install(snode *nd, krep_ctl *ctl);
static void dump(void);

static void fail(const char *fmt, ...)
{
    if (failure[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, sizeof failure, fmt, ap);
    va_end(ap);
    TRACE("VIOLATION: %s", failure);
    if (verbose)
        dump();
}

/* value ids: client c seq s -> (c + 1) << 32 | s, acks=1 with bit 62 */
static int64_t value_id(int c, int s, bool all) { return ((int64_t)(c + 1) << 32 | s) | (all ? 0 : (1LL << 62)); }

static int64_t parse_value(const uint8_t *v, int32_t len)
{
    char b[32];
    if (len <= 0 || len >= (int)sizeof b)
        return -1;
    memcpy(b, v, (size_t)len);
    b[len] = 0;
    int c, s;
    char kind;
    if (sscanf(b, "%c%d-%d", &kind, &c, &s) != 3)
        return -1;
    return value_id(c, s, kind == 'c');
}

/* ---- nodes ---------------------------------------------------------------------------- */

static kpart *part_of(snode *nd, int p)
{
    kt_topic *t = klog__topic_get(nd->k, TOPIC);
    if (!t)
        return NULL;
    kpart *kp = p < atomic_load(&t->nparts) ? t->parts[p] : NULL;
    klog__topic_put(t);
    return kp;
}

static void node_config(snode *nd, krep_config *cfg)
{
    krep_config_init(cfg);
    cfg->node_id = nd->id;
    cfg->incarnation = nd->incarnation;
    cfg->npeers = sim.n;
    for (int i = 0; i < sim.n; i++) {
        cfg->peers[i].id = sim.nodes[i].id;
        snprintf(cfg->peers[i].url, sizeof cfg->peers[i].url, "mem://%s", sim.nodes[i].name);
    }
    cfg->lag_max_ms = 400;
    cfg->fetch_wait_max_ms = 0;
    cfg->fetch_backoff_ms = 5;
    cfg->fetch_max_bytes = 4096;
    cfg->heartbeat_ms = 200;
    /* the quorum's fence: the session timeout (700 below) and a heartbeat */
    cfg->fence_after_ms = sim.quorum ? 900 : 0;
    cfg->controller_id = sim.quorum ? -1 : 0;
    if (sim.static_mode) {
        /* node 1 leads a new cluster; after that, the state file says */
        cfg->controller_id = nd->known.ctl_id > 0 ? nd->known.ctl_id : 1;
        cfg->controller_epoch = nd->known.ctl_epoch;
    }
}

static int node_start(snode *nd)
{
    klog_conf *c;
    if (klog_conf_new(&c) < 0)
        return -ENOMEM;
    klog_testing_conf_set_fault(c, nd->disk);
    if (behind)
        klog_conf_set(c, "log.cleaner.enable", "false", NULL, 0); /* the scenario compacts, at its moment */
    char err[256] = "";
    int rc = klog__open(&nd->k, nd->dir, c, NULL, 0, err, sizeof err);
    klog_conf_free(c);
    if (rc < 0) {
        fail("node %d: open after restart: %s (%s)", nd->id, klog_strerror(rc), err);
        return rc;
    }
    if (nd->runs == 0 && !nd->witness) {
        /* small segments: rolls happen, and the simulated disk copies little */
        klog_conf *tc;
        klog_conf_new(&tc);
        klog_conf_set(tc, "segment.bytes", sim.seg_bytes, NULL, 0);
        if (behind == BEHIND_COMPACT)
            klog_conf_set(tc, "cleanup.policy", "compact", NULL, 0);
        rc = klog_topic_create(nd->k, TOPIC, sim.nparts, tc, err, sizeof err);
        klog_conf_free(tc);
        if (rc < 0) {
            fail("topic: %s", err);
            return rc;
        }
    }
    nd->runs++;
    nd->incarnation = (int64_t)nd->runs * 1000 + nd->id;
    if (sim.static_mode) {
        krep_state_free(&nd->known);
        rc = krep_state_read(nd->k, &nd->known);
        if (rc < 0) {
            fail("node %d: reading its state file: %s", nd->id, klog_strerror(rc));
            return rc;
        }
    }
    krep_config cfg;
    node_config(nd, &cfg);
    if (!nd->witness) {
        rc = krep_node_new(&nd->rn, nd->k, &cfg);
        if (rc < 0) {
            fail("krep_node_new: %s", klog_strerror(rc));
            return rc;
        }
        nd->persisted = krep_node_version(nd->rn);
    }
#if KLOG_HAVE_RAFT
    if (sim.quorum) {
        krep_quorum_config qc;
        krep_quorum_config_init(&qc);
        qc.node_id = nd->id;
        qc.nvoters = nall();
        for (int i = 0; i < nall(); i++)
            qc.voters[i] = sim.nodes[i].id;
        qc.ndata = sim.n;
        for (int i = 0; i < sim.n; i++)
            qc.data[i] = sim.nodes[i].id;
        qc.seed = nd->qseed + (uint64_t)nd->runs;
        qc.election_timeout_ms = 300;
        qc.heartbeat_timeout_ms = 50;
        qc.session_timeout_ms = 700;
        qc.propose_retry_ms = 200;
        /* auto.leader.rebalance.enable, often and at any imbalance: the
         * preferred elections it makes run under the faults too */
        qc.rebalance_interval_ms = 1000;
        qc.rebalance_pct = 0;
        qc.unclean = unclean != 0;
        /* snapshots every few entries, few kept after: voters restart from
         * snapshots and a voter that was away is sent one */
        qc.snapshot_threshold = 8;
        qc.snapshot_trailing = 2;
        char eb[256] = "";
        rc = krep_quorum_open(&nd->q, klog__io(nd->k), nd->dir, nd->rn, &qc, sim.now, eb, sizeof eb);
        if (rc < 0) {
            if (!klog_testing_fault_crashed(nd->disk))
                fail("node %d: opening its quorum: %s (%s)", nd->id, klog_strerror(rc), eb);
            return rc;
        }
        nd->h_epoch = -1;
    }
#endif
    if (sim.static_mode && cfg.controller_id == nd->id) {
        /* module.c's start: the controller of the state file, again */
        krep_ctl *ctl = NULL;
        rc = krep_static_host(nd->rn, cfg.controller_epoch > 0 ? cfg.controller_epoch : 1, nd->known.e, nd->known.n,
                              &ctl);
        if (rc == 0)
            host_install(nd, ctl);
        else if (rc != KLOG_EFENCED && !klog_testing_fault_crashed(nd->disk))
            fail("node %d: hosting the controller: %s", nd->id, klog_strerror(rc));
        TRACE("node %d hosts the controller (epoch %d): %s", nd->id, cfg.controller_epoch,
              rc ? klog_err_name(rc) : "yes");
    }
    char url[64];
    snprintf(url, sizeof url, "mem://%s", nd->name);
    rc = klog_transport_listen(nd->reg, url, &nd->lst);
    if (rc < 0) {
        fail("listen %s: %s", url, klog_strerror(rc));
        return rc;
    }
    for (int p = 0; p < MAXP; p++)
        nd->last_hw[p] = -1, nd->verified[p] = 0;
    nd->next_tick = sim.now;
    nd->crash_armed = false;
    TRACE("node %d up (incarnation %" PRId64 ")", nd->id, nd->incarnation);
    return 0;
}

/* The node's connections and listener, gone (a crash or a stop). */
static void net_down(snode *nd)
{
    for (int i = 0; i < nd->nin; i++)
        klog_conn_close(nd->in[i].c);
    nd->nin = 0;
    for (int i = 0; i < nd->nout; i++)
        klog_conn_close(nd->out[i].c);
    nd->nout = 0;
    klog_listener_close(nd->lst);
    nd->lst = NULL;
}

/* Power cut (already happened, or now) and close. */
static void node_crash(snode *nd, bool now)
{
    if (!nd->k)
        return;
    if (now) {
        int modes[] = { KLOG_TESTING_CRASH_DROP, KLOG_TESTING_CRASH_PREFIX, KLOG_TESTING_CRASH_GARBAGE,
                        KLOG_TESTING_CRASH_ZERO, KLOG_TESTING_CRASH_RANDOM };
        int mode = modes[rnd(5)];
        unsigned flags = chance(30) ? KLOG_TESTING_CRASH_LOSE_DIRENTS : 0;
        klog_testing_fault_crash(nd->disk, mode, flags, splitmix(&sim_rng));
        TRACE("node %d: power cut (mode %d%s)", nd->id, mode, flags ? ", dirents" : "");
    } else {
        TRACE("node %d: power cut at its disk operation", nd->id);
    }
    net_down(nd);
#if KLOG_HAVE_RAFT
    if (nd->q) {
        host_forget(&nd->h);
        for (int i = 0; i < MAXN; i++) {
            klog_conn_close(nd->rout[i].c);
            nd->rout[i] = (chan_out){ 0 };
        }
        krep_quorum_close(nd->q);
        nd->q = NULL;
    }
#endif
    host_drop(&nd->h);
    krep_node_free(nd->rn);
    nd->rn = NULL;
    klog_close(nd->k); /* its errors are the crash's */
    nd->k = NULL;
    int rc = klog_testing_fault_reboot(nd->disk);
    if (rc < 0)
        fail("node %d: reboot: %s", nd->id, klog_strerror(rc));
    /* often back at once: before anyone moved its leadership */
    nd->down_until = sim.now + (chance(30) ? 1 + (int64_t)rnd(30) : 50 + (int64_t)rnd(1500));
    sim.crashes++;
}

/* ---- carrying frames ---------------------------------------------------------------------- */

#define REQ_TIMEOUT_MS 300

static chan_out *out_of(chan_out *outs, int *nout, int32_t dst)
{
    for (int i = 0; i < *nout; i++)
        if (outs[i].dst == dst)
            return &outs[i];
    outs[*nout] = (chan_out){ .dst = dst };
    return &outs[(*nout)++];
}

/* Serve whatever arrived on inbound connections. */
static void serve_in(conn_in *in, int *nin, klog_listener *lst, krep_node *rn, krep_ctl *ctl, void *quorum)
{
    klog_conn *c;
    while (*nin < 32 && klog_listener_accept(lst, 0, &c) == 0)
        in[(*nin)++].c = c;
    for (int i = 0; i < *nin; i++) {
        for (int k = 0; k < 64; k++) {
            const void *f;
            int len = klog_conn_recv(in[i].c, 0, &f);
            if (len == -ETIMEDOUT)
                break;
            if (len < 0) {
                klog_conn_close(in[i].c);
                in[i] = in[--*nin];
                i--;
                break;
            }
            int rc = KLOG_EFORMAT;
#if KLOG_HAVE_RAFT
            if (quorum)
                rc = krep_quorum_serve(quorum, f, (size_t)len, sim.now, &sim.wb);
#else
            (void)quorum;
#endif
            if (rc == KLOG_EFORMAT && (rn || !quorum))
                rc = rn ? krep_serve(rn, ctl, f, (size_t)len, sim.now, &sim.wb)
                        : krep_ctl_serve(ctl, f, (size_t)len, sim.now, &sim.wb);
            if (rc < 0) {
                fail("serving a peer's request: %s", klog_strerror(rc));
                continue;
            }
            struct iovec iov[64];
            int n = kk_wbuf_iov(&sim.wb, iov, 64);
            klog_conn_send(in[i].c, iov, n, 0);
        }
    }
}

typedef int (*next_fn)(void *o, int32_t dst, int64_t now, kk_wbuf *w, int64_t *wake);
typedef int (*resp_fn)(void *o, int32_t dst, const void *f, size_t len, int64_t now);
typedef void (*failed_fn)(void *o, int32_t dst, int rc, int64_t now);
typedef bool (*busy_fn)(void *o, int32_t dst);

static bool ctl_busy(void *o, int32_t dst);

/* One channel's turn: answers, timeouts, the next request. */
static int q_next(void *o, int32_t d, int64_t now, kk_wbuf *w, int64_t *wake);
static void drive_chan(klog_transport_registry *reg, chan_out *ch, const char *url, void *o, next_fn next,
                       resp_fn resp, failed_fn failed, busy_fn busy)
{
    if (ch->c && strcmp(ch->url, url) != 0) {
        /* the destination moved (a new controller): its answer is moot */
        klog_conn_close(ch->c);
        ch->c = NULL;
    }
    if (ch->c && busy(o, ch->dst)) {
        for (int k = 0; k < 16; k++) {
            const void *f;
            int len = klog_conn_recv(ch->c, 0, &f);
            if (len == -ETIMEDOUT)
                break;
            if (len < 0) {
                klog_conn_close(ch->c);
                ch->c = NULL;
                failed(o, ch->dst, len, sim.now);
                return;
            }
            resp(o, ch->dst, f, (size_t)len, sim.now);
            if (!busy(o, ch->dst))
                break;
        }
        if (busy(o, ch->dst) && sim.now - ch->sent > REQ_TIMEOUT_MS) {
            klog_conn_close(ch->c);
            ch->c = NULL;
            failed(o, ch->dst, -ETIMEDOUT, sim.now);
        }
        return;
    }
    if (busy(o, ch->dst)) { /* its connection went away */
        failed(o, ch->dst, -ETIMEDOUT, sim.now);
        return;
    }
    if (ch->c) {
        /* drain late answers */
        const void *f;
        int len;
        while ((len = klog_conn_recv(ch->c, 0, &f)) >= 0)
            ;
        if (len != -ETIMEDOUT) {
            klog_conn_close(ch->c);
            ch->c = NULL;
            if (next == q_next) { /* module.c's probe_idle: is the raft peer gone? */
                int cr = klog_transport_connect(reg, url, 0, &ch->c);
                if (cr < 0) {
                    ch->c = NULL;
                    failed(o, ch->dst, cr, sim.now);
                } else {
                    snprintf(ch->url, sizeof ch->url, "%s", url);
                }
            }
        }
    }
    int64_t wake;
    int rc = next(o, ch->dst, sim.now, &sim.wb, &wake);
    if (rc < 0) {
        fail("building a request: %s", klog_strerror(rc));
        return;
    }
    if (rc == 0)
        return;
    if (!ch->c) {
        int cr = klog_transport_connect(reg, url, 0, &ch->c);
        if (cr < 0) {
            ch->c = NULL;
            failed(o, ch->dst, cr, sim.now);
            return;
        }
        snprintf(ch->url, sizeof ch->url, "%s", url);
    }
    struct iovec iov[64];
    int n = kk_wbuf_iov(&sim.wb, iov, 64);
    int sr = klog_conn_send(ch->c, iov, n, 0);
    ch->sent = sim.now;
    if (sr < 0) {
        klog_conn_close(ch->c);
        ch->c = NULL;
        failed(o, ch->dst, sr, sim.now);
    }
}

static int node_next(void *o, int32_t d, int64_t now, kk_wbuf *w, int64_t *wake) { return krep_chan_next(o, d, now, w, wake); }
static int node_resp(void *o, int32_t d, const void *f, size_t l, int64_t now) { return krep_chan_response(o, d, f, l, now); }
static void node_failed(void *o, int32_t d, int rc, int64_t now) { (void)rc; krep_chan_failed(o, d, now); }
static bool node_busy(void *o, int32_t d) { return krep_chan_busy(o, d); }
static int ctl_next(void *o, int32_t d, int64_t now, kk_wbuf *w, int64_t *wake) { return krep_ctl_next(o, d, now, w, wake); }
static int ctl_resp(void *o, int32_t d, const void *f, size_t l, int64_t now) { return krep_ctl_response(o, d, f, l, now); }
static void ctl_failed(void *o, int32_t d, int rc, int64_t now) { (void)rc; krep_ctl_failed(o, d, now); }

/* A host's channels: o is the host. */
static int ctl_next_w(void *o, int32_t d, int64_t now, kk_wbuf *w, int64_t *wake)
{
    host *h = o;
    int rc = ctl_next(h->ctl, d, now, w, wake);
    if (rc == 1)
        h->busy[d] = true;
    return rc;
}
static int ctl_resp_w(void *o, int32_t d, const void *f, size_t l, int64_t now)
{
    host *h = o;
    int rc = ctl_resp(h->ctl, d, f, l, now);
    if (rc != 1)
        h->busy[d] = false;
    return rc;
}
static void ctl_failed_w(void *o, int32_t d, int rc, int64_t now)
{
    host *h = o;
    ctl_failed(h->ctl, d, rc, now);
    h->busy[d] = false;
}
static bool ctl_busy(void *o, int32_t d)
{
    host *h = o;
    return h->busy[d];
}

/* A host's pushes to every node. */
static void host_step(host *h, klog_transport_registry *reg)
{
    for (int i = 0; i < sim.n; i++) {
        snode *nd = &sim.nodes[i];
        chan_out *ch = &h->out[i];
        ch->dst = nd->id;
        char url[64];
        snprintf(url, sizeof url, "mem://%s", nd->name);
        drive_chan(reg, ch, url, h, ctl_next_w, ctl_resp_w, ctl_failed_w, ctl_busy);
    }
}

static void host_drop(host *h)
{
    for (int i = 0; i < MAXN; i++) {
        klog_conn_close(h->out[i].c);
        h->out[i].c = NULL;
        h->out[i].url[0] = 0;
    }
    memset(h->busy, 0, sizeof h->busy);
    krep_ctl_free(h->ctl);
    h->ctl = NULL;
}

/* A controller the host does not own (the quorum's): its channels closed,
 * the controller left alone. */
static void host_forget(host *h)
{
    for (int i = 0; i < MAXN; i++) {
        klog_conn_close(h->out[i].c);
        h->out[i].c = NULL;
        h->out[i].url[0] = 0;
    }
    memset(h->busy, 0, sizeof h->busy);
    h->ctl = NULL;
}

#if KLOG_HAVE_RAFT
static int q_next(void *o, int32_t d, int64_t now, kk_wbuf *w, int64_t *wake) { return krep_quorum_next(o, d, now, w, wake); }
static int q_resp(void *o, int32_t d, const void *f, size_t l, int64_t now) { return krep_quorum_response(o, d, f, l, now); }
/* (a crashed node's address refuses connections, as a dead process's port
 * does: the controller takes it for dead at once) */
static void q_failed(void *o, int32_t d, int rc, int64_t now)
{
    krep_quorum_failed(o, d, now);
    if (rc == -ECONNREFUSED)
        krep_quorum_refused(o, d, now);
}
static bool q_busy(void *o, int32_t d) { return krep_quorum_busy(o, d); }

/* Quorum mode: raft's timers and channels, the controller it hosts. */
static void quorum_step(snode *nd)
{
    if (!nd->q)
        return;
    krep_quorum_tick(nd->q, sim.now);
    for (int i = 0; i < nall(); i++) {
        snode *o = &sim.nodes[i];
        if (o == nd)
            continue;
        char url[64];
        snprintf(url, sizeof url, "mem://%s", o->name);
        nd->rout[i].dst = o->id;
        drive_chan(nd->reg, &nd->rout[i], url, nd->q, q_next, q_resp, q_failed, q_busy);
    }
    krep_ctl *c = krep_quorum_ctl(nd->q);
    int32_t ep = c ? krep_ctl_epoch(c) : -1;
    if (c != nd->h.ctl || ep != nd->h_epoch) {
        host_forget(&nd->h);
        nd->h.ctl = c;
        nd->h_epoch = ep;
        if (c)
            TRACE("node %d hosts the quorum controller (epoch %d)", nd->id, ep);
    }
    if (nd->h.ctl) {
        host_step(&nd->h, nd->reg);
        if (sim.now % 20 == 0)
            krep_quorum_add_topic(nd->q, TOPIC, sim.nparts, sim.rf ? sim.rf : sim.n, NULL, sim.now);
    }
    if (klog_testing_fault_crashed(nd->disk) == 1)
        node_crash(nd, false);
}
#endif

/* Static mode: node nd hosts ctl from now on (a promote, or at start). */
static void host_install(snode *nd, krep_ctl *ctl)
{
    host_drop(&nd->h);
    nd->h.ctl = ctl;
}

static void node_step(snode *nd)
{
    if (!nd->k || sim.now < nd->paused_until)
        return;
#if KLOG_HAVE_RAFT
    serve_in(nd->in, &nd->nin, nd->lst, nd->rn, nd->h.ctl, nd->q);
    if (sim.quorum)
        quorum_step(nd);
    if (!nd->rn || !nd->k) {
        if (nd->k && klog_testing_fault_crashed(nd->disk) == 1)
            node_crash(nd, false);
        return;
    }
#else
    serve_in(nd->in, &nd->nin, nd->lst, nd->rn, nd->h.ctl, NULL);
#endif
    if (sim.static_mode) {
        /* a newer controller took over: stop hosting (module.c's unhost) */
        int32_t cid, cep;
        krep_node_controller(nd->rn, &cid, &cep);
        if (nd->h.ctl && (cid != nd->id || cep > krep_ctl_epoch(nd->h.ctl))) {
            TRACE("node %d: controller %d epoch %d took over: no longer hosting", nd->id, cid, cep);
            host_drop(&nd->h);
        }
        /* what it was told, written down (module.c's persist_node) */
        if (!nd->h.ctl && krep_node_version(nd->rn) != nd->persisted) {
            nd->persisted = krep_node_version(nd->rn);
            krep_node_persist(nd->rn);
        }
        if (nd->h.ctl)
            host_step(&nd->h, nd->reg);
    }
    int32_t dests[MAXN + 2];
    int nd_ = krep_node_dests(nd->rn, dests, MAXN + 2);
    for (int i = 0; i < nd_ && i < MAXN + 2; i++) {
        chan_out *ch = out_of(nd->out, &nd->nout, dests[i]);
        char url[64];
        if (dests[i] == KREP_DST_CTL) {
            int32_t cid, cep;
            krep_node_controller(nd->rn, &cid, &cep);
            if ((sim.static_mode || sim.quorum) && cid <= 0)
                continue; /* knows no controller yet: its pushes will say */
            if (sim.static_mode || sim.quorum)
                snprintf(url, sizeof url, "mem://n%d", cid);
            else
                snprintf(url, sizeof url, "mem://ctl");
        } else {
            snprintf(url, sizeof url, "%s", krep_node_peer_url(nd->rn, dests[i]));
        }
        drive_chan(nd->reg, ch, url, nd->rn, node_next, node_resp, node_failed, node_busy);
    }
    /* channels to leaders it no longer follows: an answer in flight is moot */
    for (int i = 0; i < nd->nout; i++) {
        bool listed = false;
        for (int j = 0; j < nd_ && !listed; j++)
            listed = dests[j] == nd->out[i].dst;
        if (!listed && krep_chan_busy(nd->rn, nd->out[i].dst))
            drive_chan(nd->reg, &nd->out[i], nd->out[i].url, nd->rn, node_next, node_resp, node_failed, node_busy);
    }
    if (sim.now >= nd->next_tick)
        nd->next_tick = krep_node_tick(nd->rn, sim.now);
    if (klog_testing_fault_crashed(nd->disk) == 1)
        node_crash(nd, false);
}

static void ctl_step(void)
{
    if (sim.static_mode || sim.quorum)
        return;
    serve_in(sim.ctl_in, &sim.nctl_in, sim.ctl_lst, NULL, sim.ctl, NULL);
    host_step(&sim.central, sim.ctl_reg);
}

/* ---- who decides ------------------------------------------------------------------------------ */

/* The controller that decides now: the central one, or (static mode) the
 * hosted one of the newest controller epoch among the running nodes. */
static krep_ctl *authority(void)
{
    if (!sim.static_mode)
        return sim.ctl;
    krep_ctl *best = NULL;
    for (int i = 0; i < sim.n; i++) {
        krep_ctl *c = sim.nodes[i].k ? sim.nodes[i].h.ctl : NULL;
        if (c && (!best || krep_ctl_epoch(c) > krep_ctl_epoch(best)))
            best = c;
    }
    return best;
}

static bool current_state(int p, krep_pstate *st)
{
#if KLOG_HAVE_RAFT
    if (sim.quorum) {
        /* the committed state, as the most advanced running voter applied it */
        krep_quorum *best = NULL;
        uint64_t bi = 0, idx, h;
        for (int i = 0; i < nall(); i++) {
            snode *nd = &sim.nodes[i];
            if (!nd->q)
                continue;
            krep_quorum_applied(nd->q, &idx, &h);
            if (!best || idx > bi)
                best = nd->q, bi = idx;
        }
        return best && krep_quorum_state(best, TOPIC, p, st) == 0;
    }
#endif
    krep_ctl *c = authority();
    return c && krep_ctl_state(c, TOPIC, p, st) == 0;
}

static snode *node_by_id(int32_t id)
{
    for (int i = 0; i < sim.n; i++)
        if (sim.nodes[i].id == id)
            return &sim.nodes[i];
    return NULL;
}

static bool answers(const snode *nd) { return nd && nd->k && sim.now >= nd->paused_until; }

/* ---- the workload ----------------------------------------------------------------------------- */

static void write_done(kpart_ack *a, int err)
{
    write_rec *w = (write_rec *)a;
    if (err == 0) {
        w->state = 1;
        if (w->all)
            sim.acked++;
        TRACE("write c%d-%d acked at %d/%" PRId64 " by node %d", w->client, w->seq, w->part, w->offset,
              sim.nodes[w->node].id);
    } else {
        w->state = 2;
        w->err = err;
        sim.failed_writes++;
    }
}

static void client_step(client *cl)
{
    if (cl->cur) {
        if (cl->cur->state != 0 || sim.now >= cl->deadline)
            cl->cur = NULL; /* done, or given up (it may still complete) */
        else
            return;
    }
    if (sim.now < cl->next || sim.now >= sim.write_end || sim.nw >= MAXW)
        return;
    cl->next = sim.now + (int64_t)rnd(20);
    int p = (int)rnd((uint64_t)sim.nparts);
    snode *nd = NULL;
    if (sim.static_mode || sim.quorum) {
        /* whoever thinks it leads (there may be two: an old leader cut
         * off, and the one promoted meanwhile) */
        snode *cand[MAXN];
        int nc = 0;
        for (int i = 0; i < sim.n; i++) {
            kpart *q = answers(&sim.nodes[i]) ? part_of(&sim.nodes[i], p) : NULL;
            if (q && kpart_role(q) == KPART_LEADER)
                cand[nc++] = &sim.nodes[i];
        }
        if (nc > 0)
            nd = cand[rnd((uint64_t)nc)];
    } else {
        krep_pstate st;
        if (krep_ctl_state(sim.ctl, TOPIC, p, &st) < 0)
            return;
        nd = node_by_id(st.leader);
    }
    if (!answers(nd))
        return; /* the leader does not answer: try again later */
    kpart *kp = part_of(nd, p);
    if (!kp)
        return;
    write_rec *w = &sim.w[sim.nw++];
    memset(w, 0, sizeof *w);
    w->client = cl->id;
    w->seq = cl->seq++;
    w->all = !chance(15);
    w->part = p;
    w->node = (int)(nd - sim.nodes);
    w->offset = -1;
    char val[32];
    int vl = snprintf(val, sizeof val, "%c%d-%d", w->all ? 'c' : 'a', w->client, w->seq);
    kf_builder b;
    uint8_t buf[256];
    kf_builder_init(&b, buf, sizeof buf, 64);
    kf_record r = { .key = NULL, .key_len = -1, .value = val, .value_len = vl, .timestamp = sim.now };
    const uint8_t *out;
    size_t olen;
    kf_batch_meta meta = { .producer_id = -1, .producer_epoch = -1, .base_sequence = -1 };
    if (kf_builder_add(&b, &r) < 0 || kf_builder_finish(&b, &meta, NULL, &out, &olen) < 0) {
        fail("building a batch");
        return;
    }
    memcpy(w->batch, out, olen);
    w->len = olen;
    ks_batch kb = { w->batch, w->len, -1, 0 };
    /* Half the acks=all writes leave their sync to the leader's tick: the
     * followers copy and report them before the leader has them on disk,
     * as when the leader's own sync runs beside its followers' copies
     * (KS_APPEND_EARLY), only for longer.  Its HW must wait for that sync
     * (kpart_advance_hw_durable), and a power cut meanwhile must lose no
     * acknowledged write. */
    bool late_sync = w->all && chance(50);
    int rc = kpart_append(kp, &kb, 1, w->all ? (late_sync ? 0 : KS_APPEND_SYNC) | KPART_APPEND_ALL : 0);
    w->ack.done = write_done;
    if (rc == 0)
        w->offset = kb.base_offset;
    TRACE("write c%d-%d (acks=%s%s) to node %d partition %d: %s%s", w->client, w->seq, w->all ? "all" : "1",
          late_sync ? ", synced later" : "", nd->id, p, rc ? klog_err_name(rc) : "appended at ", "");
    cl->cur = w;
    cl->deadline = sim.now + 1500;
    kpart_ack_submit_epoch(kp, &w->ack, rc == 0 ? kb.base_offset + 1 : 0, w->all ? KPART_ACK_ALL : KPART_ACK_LEADER,
                           rc, kpart_batch_epoch(&kb));
    if (klog_testing_fault_crashed(nd->disk) == 1)
        node_crash(nd, false);
}

/* ---- checks ----------------------------------------------------------------------------------------- */

/* Record values of p's log in [from, to) into out[offset - 0]; returns the
 * offset reached. */
static int64_t read_values(kpart *p, int64_t from, int64_t to, int64_t *out, int64_t *epochs)
{
    int64_t off = from;
    while (off < to) {
        ks_view v;
        if (kpart_read_log(p, off, 1 << 16, &v) < 0 || v.len == 0)
            break;
        size_t at = 0;
        while (at < v.len) {
            kf_batch_info bi;
            ssize_t sz = kf_batch_parse(v.data + at, v.len - at, &bi);
            if (sz <= 0)
                break;
            const uint8_t *recs;
            size_t rl;
            if (kf_batch_records(v.data + at, (size_t)sz, NULL, &recs, &rl) == 0) {
                kf_iter it;
                kf_record_view rv;
                kf_iter_init(&it, &bi, recs, rl);
                while (kf_iter_next(&it, &rv) == 1)
                    if (rv.offset >= from && rv.offset < to) {
                        out[rv.offset] = parse_value(rv.value, rv.value_len);
                        if (epochs)
                            epochs[rv.offset] = bi.leader_epoch;
                    }
            }
            at += (size_t)sz;
        }
        off = v.next_offset;
        ks_view_release(&v);
    }
    return off;
}

static int64_t scratch[MAXW + 16];

__attribute__((unused)) static bool krep_in_isr(const krep_pstate *st, int32_t id)
{
    for (int i = 0; i < st->nisr; i++)
        if (st->isr[i] == id)
            return true;
    return false;
}

static void check_quorum(void)
{
#if KLOG_HAVE_RAFT
    if (!sim.quorum)
        return;
    for (int i = 0; i < nall(); i++) {
        snode *nd = &sim.nodes[i];
        if (!nd->q)
            continue;
        int rs;
        uint64_t term, idx, h;
        krep_quorum_raft(nd->q, &rs, &term, NULL);
        /* at most one controller per term */
        if (rs == RAFT_LEADER && term < 4096) {
            if (sim.term_leader[term] == 0)
                sim.term_leader[term] = nd->id;
            else if (sim.term_leader[term] != nd->id)
                fail("two raft leaders in term %" PRIu64 ": nodes %d and %d", term, sim.term_leader[term], nd->id);
        }
        /* the metadata logs agree: equal applied prefixes, equal hashes */
        krep_quorum_applied(nd->q, &idx, &h);
        if (idx < (1 << 16)) {
            if (!sim.applied_seen[idx])
                sim.applied_seen[idx] = true, sim.applied_hash[idx] = h;
            else if (sim.applied_hash[idx] != h)
                fail("node %d applied a different metadata log up to index %" PRIu64, nd->id, idx);
        }
    }
    /* a new leader comes from the ISR of the state it replaces */
    for (int p = 0; p < sim.nparts; p++) {
        krep_pstate st;
        if (!current_state(p, &st))
            continue;
        krep_pstate *o = &sim.last_seen[p];
        if (sim.have_seen[p] && st.partition_epoch == o->partition_epoch + 1 && st.leader != o->leader &&
            st.leader >= 0 && !krep_in_isr(o, st.leader))
            fail("partition %d: node %d elected leader (epoch %d) outside the ISR it replaced", p, st.leader,
                 st.leader_epoch);
        if (!sim.have_seen[p] || st.partition_epoch > o->partition_epoch) {
            *o = st;
            sim.have_seen[p] = true;
        }
    }
#endif
}

static void check_step(void)
{
    check_quorum();
    for (int i = 0; i < sim.n; i++) {
        snode *nd = &sim.nodes[i];
        if (!nd->k)
            continue;
        for (int p = 0; p < sim.nparts; p++) {
            kpart *kp = part_of(nd, p);
            if (!kp)
                continue;
            int64_t hw = kpart_high_watermark(kp);
            if (hw < nd->last_hw[p])
                fail("node %d partition %d: HW went back from %" PRId64 " to %" PRId64, nd->id, p, nd->last_hw[p], hw);
            nd->last_hw[p] = hw;
            /* a replica shows nothing it does not hold on its own disk
             * (a leader's HW waits for its own sync: KS_APPEND_EARLY) */
            if (hw > kpart_durable_offset(kp) && hw > kpart_start_offset(kp))
                fail("node %d partition %d: HW %" PRId64 " above its durable offset %" PRId64, nd->id, p, hw,
                     kpart_durable_offset(kp));
            if (hw > MAXW) {
                fail("HW %" PRId64 " beyond the writes made", hw);
                continue;
            }
            if (hw > nd->verified[p]) {
                int64_t from = nd->verified[p];
                for (int64_t o = from; o < hw; o++)
                    scratch[o] = 0;
                read_values(kp, from, hw, scratch, NULL);
                for (int64_t o = from; o < hw; o++) {
                    int64_t *c = &sim.committed[p][o];
                    if (scratch[o] == 0)
                        continue; /* below the log start: nothing to compare */
                    if (*c == 0)
                        *c = scratch[o];
                    else if (*c != scratch[o])
                        fail("partition %d offset %" PRId64 ": node %d holds %" PRIx64 " below its HW %" PRId64
                             ", another replica committed %" PRIx64,
                             p, o, nd->id, scratch[o], hw, *c);
                }
                nd->verified[p] = hw;
            }
            if (hw > sim.max_hw[p])
                sim.max_hw[p] = hw;
        }
    }
}

/* ---- the nemesis ------------------------------------------------------------------------------------- */

/* Static mode: an operator promotes a running node (klog promote); it
 * refuses when it is not in sync, unless unclean. */
static void promote(void)
{
    snode *cand[MAXN];
    int nc = 0;
    for (int i = 0; i < sim.n; i++)
        if (answers(&sim.nodes[i]))
            cand[nc++] = &sim.nodes[i];
    if (nc == 0)
        return;
    snode *nd = cand[rnd((uint64_t)nc)];
    krep_ctl *ctl = NULL;
    char eb[256] = "";
    int32_t floor = nd->h.ctl ? krep_ctl_epoch(nd->h.ctl) : 0;
    int rc = krep_static_promote(nd->rn, &nd->known, floor, unclean, &ctl, NULL, NULL, eb, sizeof eb);
    TRACE("promote node %d: %s%s%s", nd->id, rc ? klog_err_name(rc) : "leads", rc ? " " : "", rc ? eb : "");
    if (rc == 0) {
        host_install(nd, ctl);
        sim.elections++;
    } else if (rc != KLOG_ENOTENOUGH && rc != KLOG_ESTATE && !klog_testing_fault_crashed(nd->disk)) {
        fail("node %d: promote: %s (%s)", nd->id, klog_strerror(rc), eb);
    }
    if (klog_testing_fault_crashed(nd->disk) == 1)
        node_crash(nd, false);
}

static void elect(int p, bool need_up)
{
    if (sim.quorum)
        return; /* the quorum's controller elects */
    if (sim.static_mode) {
        promote();
        return;
    }
    krep_pstate st;
    if (krep_ctl_state(sim.ctl, TOPIC, p, &st) < 0)
        return;
    int32_t cand[MAXN];
    int nc = 0;
    const int32_t *from = unclean ? st.replicas : st.isr;
    for (int i = 0; i < (unclean ? st.nreplicas : st.nisr); i++) {
        snode *nd = NULL;
        for (int j = 0; j < sim.n; j++)
            if (sim.nodes[j].id == from[i])
                nd = &sim.nodes[j];
        if (nd && (!need_up || (nd->k && sim.now >= nd->paused_until)))
            cand[nc++] = from[i];
    }
    if (nc == 0)
        return;
    int32_t to = cand[rnd((uint64_t)nc)];
    if (krep_ctl_elect(sim.ctl, TOPIC, p, to, unclean ? KREP_ELECT_UNCLEAN : 0) == 0) {
        sim.elections++;
        TRACE("elect node %d for partition %d (epoch %d)", to, p, st.leader_epoch + 1);
    }
}

static bool leader_unreachable(int p)
{
    krep_pstate st;
    if (!current_state(p, &st))
        return true; /* no controller runs (static mode): someone must take over */
    return !answers(node_by_id(st.leader));
}

static void nemesis(void)
{
    /* restarts */
    for (int i = 0; i < nall(); i++) {
        snode *nd = &sim.nodes[i];
        if (!nd->k && sim.now >= nd->down_until) {
            if (node_start(nd) == 0)
                sim.restarts++;
        }
    }
    if (sim.now >= sim.end)
        return;
    if (sim.heal_at && sim.now >= sim.heal_at) {
        ktr_memnet_heal(sim.net);
        sim.heal_at = 0;
        TRACE("network healed");
    }
    if (sim.net_calm_at && sim.now >= sim.net_calm_at) {
        ktr_memnet_set_faults(sim.net, NULL);
        sim.net_calm_at = 0;
        TRACE("message faults off");
    }
    /* an operator moves leadership away from a leader that does not answer */
    for (int p = 0; p < sim.nparts; p++)
        if (leader_unreachable(p) && rnd(1000) < 3)
            elect(p, true);
    if (!chance(1)) /* about one event every 100 ms */
        return;
    snode *nd = &sim.nodes[rnd((uint64_t)nall())];
    switch (rnd(10)) {
    case 0:
    case 1:
        if (nd->k)
            node_crash(nd, true);
        break;
    case 2:
        if (nd->k && !nd->crash_armed) {
            uint64_t nth = 1 + rnd(40);
            unsigned ops = chance(50) ? KLOG_TESTING_OP_ALL : (KLOG_TESTING_OP_WRITE | KLOG_TESTING_OP_SYNC);
            int modes[] = { KLOG_TESTING_CRASH_DROP, KLOG_TESTING_CRASH_PREFIX, KLOG_TESTING_CRASH_GARBAGE,
                            KLOG_TESTING_CRASH_ZERO };
            klog_testing_fault_crash_at(nd->disk, ops, nth, modes[rnd(4)],
                                        chance(30) ? KLOG_TESTING_CRASH_LOSE_DIRENTS : 0, splitmix(&sim_rng));
            nd->crash_armed = true;
            sim.crash_ats++;
            TRACE("node %d: power cut armed at its disk operation %" PRIu64 " from now", nd->id, nth);
        }
        break;
    case 3:
        if (nd->k && sim.now >= nd->paused_until) {
            nd->paused_until = sim.now + 50 + (int64_t)rnd(1500);
            sim.pauses++;
            TRACE("node %d paused until %.3f", nd->id, (double)nd->paused_until / 1000);
        }
        break;
    case 4: {
        const char *set[MAXN + 1];
        int k = 0;
        for (int i = 0; i < nall(); i++)
            if (chance(50))
                set[k++] = sim.nodes[i].name;
        if (!sim.quorum && chance(30))
            set[k++] = "ctl";
        if (k > 0 && k < nall() + (sim.quorum ? 0 : 1)) {
            ktr_memnet_partition(sim.net, set, (size_t)k);
            sim.heal_at = sim.now + 100 + (int64_t)rnd(2000);
            sim.partitions++;
            TRACE("partition: %d nodes split off (first %s) until %.3f", k, set[0], (double)sim.heal_at / 1000);
        }
        break;
    }
    case 5: {
        snode *o = &sim.nodes[rnd((uint64_t)nall())];
        if (o != nd) {
            ktr_memnet_cut(sim.net, nd->name, o->name);
            sim.heal_at = sim.now + 100 + (int64_t)rnd(1000);
            TRACE("link %s-%s cut", nd->name, o->name);
        }
        break;
    }
    case 6: {
        ktr_mem_faults f = { 0 };
        f.drop_ppm = chance(50) ? (uint32_t)rnd(100000) : 0;
        f.dup_ppm = chance(50) ? (uint32_t)rnd(100000) : 0;
        f.delay_ppm = chance(50) ? (uint32_t)rnd(300000) : 0;
        f.reorder_ppm = chance(50) ? (uint32_t)rnd(100000) : 0;
        f.delay_min_ns = 1 * MS;
        f.delay_max_ns = (1 + (int64_t)rnd(200)) * MS;
        f.reorder_ns = (1 + (int64_t)rnd(50)) * MS;
        ktr_memnet_set_faults(sim.net, &f);
        sim.net_calm_at = sim.now + 200 + (int64_t)rnd(3000);
        TRACE("message faults: drop %u dup %u delay %u reorder %u ppm", f.drop_ppm, f.dup_ppm, f.delay_ppm,
              f.reorder_ppm);
        break;
    }
    case 7:
    case 8:
        elect((int)rnd((uint64_t)sim.nparts), !chance(20));
        break;
    default:
        break;
    }
}

/* ---- a run -------------------------------------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

static void setup(uint64_t seed)
{
    memset(&sim, 0, sizeof sim);
    failure[0] = 0;
    sim.seed = seed;
    sim_rng = seed * 0x2545f4914f6cdd1dull + 1;
    /* static mode: the two-box pair as klog serve runs it (the leader hosts
     * the controller, promotes move it); else a controller of its own, as
     * a quorum would be */
    sim.static_mode = chance(40);
    sim.n = sim.static_mode || chance(25) ? 2 : 3;
    if (quorum_flag) {
        /* Three voters: three data nodes, or two and a witness (the
         * two-box pair that fails over by itself) */
        sim.quorum = true;
        sim.static_mode = false;
        sim.nwit = chance(35) ? 1 : 0;
        sim.n = 3 - sim.nwit;
        sim.applied_hash = calloc(1 << 16, sizeof *sim.applied_hash);
        sim.applied_seen = calloc(1 << 16, sizeof *sim.applied_seen);
    }
    sim.nparts = chance(30) ? 2 : 1;
    if (rf_flag) {
        /* fewer replicas than nodes: 3 or 4 data nodes (3 voters under
         * the quorum), two partitions of 2 or 3 replicas each.  Not the
         * static controller: it needs 3 or more nodes for that, where it
         * cannot tell an old leader still reaching a follower from a
         * dead one (klog(7); tried: the checker finds it) */
        sim.static_mode = false;
        sim.nwit = 0;
        sim.n = sim.quorum ? 3 : 3 + (int)rnd(2);
        sim.nparts = 2;
        sim.rf = 2 + (int)rnd((uint64_t)(sim.n - 2));
        int32_t ids[MAXN];
        for (int i = 0; i < sim.n; i++)
            ids[i] = i + 1;
        for (int p = 0; p < sim.nparts; p++)
            krep_assign(ids, sim.n, TOPIC, p, sim.rf, -1, sim.reps[p]);
    }
    sim.nclients = 1 + (int)rnd(MAXCLIENTS);
    sim.end = 4000 + (int64_t)rnd(6000);
    /* writes go on after the faults: a cluster that heals must take
     * acks=all writes again (the quorum electing by itself), and a run
     * whose faults left no moment to commit still commits something */
    sim.write_end = sim.end + 3000;
    snprintf(sim.seg_bytes, sizeof sim.seg_bytes, "%d", chance(50) ? 4096 : 65536);
    if (behind) {
        /* scripted: three nodes, one partition, the central controller,
         * no clients, no nemesis (scenario_run writes and stops) */
        sim.static_mode = false;
        sim.n = 3;
        sim.nparts = 1;
        sim.nclients = 0;
        sim.end = sim.write_end = 0;
        snprintf(sim.seg_bytes, sizeof sim.seg_bytes, "%d", 4096);
    }
    sim.w = calloc(MAXW, sizeof *sim.w);
    for (int p = 0; p < MAXP; p++)
        sim.committed[p] = calloc(MAXW + 16, sizeof **sim.committed);
    kk_wbuf_init(&sim.wb, 0);
    struct stat sb;
    bool shm = stat("/dev/shm", &sb) == 0 && access("/dev/shm", W_OK) == 0;
    snprintf(sim.root, sizeof sim.root, "%s/klog-sim-%d-%" PRIu64 "-XXXXXX", shm ? "/dev/shm" : "/tmp", (int)getpid(),
             seed);
    if (!mkdtemp(sim.root)) {
        perror("mkdtemp");
        exit(2);
    }
    ktr_memnet_new(&sim.net, splitmix(&sim_rng), KTR_MEMNET_VIRTUAL_TIME);
    for (int i = 0; i < nall(); i++) {
        snode *nd = &sim.nodes[i];
        nd->witness = i >= sim.n;
#if KLOG_HAVE_RAFT
        if (sim.quorum) /* (other modes replay as before) */
            nd->qseed = splitmix(&sim_rng);
#endif
        nd->id = i + 1;
        snprintf(nd->name, sizeof nd->name, "n%d", nd->id);
        char d[sizeof nd->dir]; /* (not straight into sim: -Wrestrict sees one object) */
        snprintf(d, sizeof d, "%s/n%d", sim.root, nd->id);
        memcpy(nd->dir, d, sizeof d);
        klog_testing_fault_new(&nd->disk);
        klog_transport_registry_new(&nd->reg, KLOG_TRANSPORT_REGISTRY_EMPTY);
        ktr_mem_init in = { sim.net, nd->name };
        klog_transport_register(nd->reg, ktr_mem_methods(), &in);
    }
    if (!sim.static_mode && !sim.quorum) {
        krep_ctl_new(&sim.ctl, 0, 1);
        sim.central.ctl = sim.ctl;
        klog_transport_registry_new(&sim.ctl_reg, KLOG_TRANSPORT_REGISTRY_EMPTY);
        ktr_mem_init in = { sim.net, "ctl" };
        klog_transport_register(sim.ctl_reg, ktr_mem_methods(), &in);
        klog_transport_listen(sim.ctl_reg, "mem://ctl", &sim.ctl_lst);
        int32_t reps[MAXN];
        for (int i = 0; i < sim.n; i++)
            reps[i] = sim.nodes[i].id;
        for (int i = 0; i < sim.n; i++)
            krep_ctl_add_node(sim.ctl, sim.nodes[i].id); /* every node hears of every partition */
        for (int p = 0; p < sim.nparts; p++) {
            const int32_t *r = sim.rf ? sim.reps[p] : reps;
            int nr = sim.rf ? sim.rf : sim.n;
            krep_ctl_add_partition(sim.ctl, TOPIC, p, r, nr, r[rnd((uint64_t)nr)]);
        }
    }
    for (int i = 0; i < nall(); i++)
        node_start(&sim.nodes[i]);
    for (int c = 0; c < sim.nclients; c++)
        sim.clients[c] = (client){ .id = c };
}

static void teardown(void)
{
    for (int i = 0; i < nall(); i++) {
        snode *nd = &sim.nodes[i];
#if KLOG_HAVE_RAFT
        if (nd->q) {
            host_forget(&nd->h);
            for (int j = 0; j < MAXN; j++)
                klog_conn_close(nd->rout[j].c);
            krep_quorum_close(nd->q);
            nd->q = NULL;
        }
#endif
        for (int j = 0; j < nd->nin; j++)
            klog_conn_close(nd->in[j].c);
        for (int j = 0; j < nd->nout; j++)
            klog_conn_close(nd->out[j].c);
        klog_listener_close(nd->lst);
        host_drop(&nd->h);
        krep_state_free(&nd->known);
        krep_node_free(nd->rn);
        if (nd->k)
            klog_close(nd->k);
        klog_testing_fault_free(nd->disk);
        klog_transport_registry_free(nd->reg);
    }
    for (int j = 0; j < sim.nctl_in; j++)
        klog_conn_close(sim.ctl_in[j].c);
    host_drop(&sim.central); /* frees sim.ctl */
    klog_listener_close(sim.ctl_lst);
    klog_transport_registry_free(sim.ctl_reg);
    ktr_memnet_free(sim.net);
    kk_wbuf_free(&sim.wb);
    free(sim.w);
    free(sim.applied_hash);
    free(sim.applied_seen);
    for (int p = 0; p < MAXP; p++)
        free(sim.committed[p]);
    nftw(sim.root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void step(void)
{
    if (verbose > 1 && sim.now % 100 == 0)
        dump();
    nemesis();
    for (int i = 0; i < nall(); i++)
        node_step(&sim.nodes[(i + sim.now) % nall()]);
    ctl_step();
    for (int c = 0; c < sim.nclients; c++)
        client_step(&sim.clients[c]);
    check_step();
    sim.now++;
    ktr_memnet_set_time(sim.net, sim.now * MS);
}

/* Every replica holds the leader's log, with the HW at its end. */
static bool converged(void)
{
    for (int p = 0; p < sim.nparts; p++) {
        krep_pstate st;
        if (!current_state(p, &st) || st.nisr != (sim.rf ? sim.rf : sim.n))
            return false;
        int64_t leo = -1;
        for (int i = 0; i < sim.n; i++) {
            snode *nd = &sim.nodes[i];
            if (!nd->k)
                return false;
            krep_pstate ms;
            if (!replica(p, i)) {
                /* no replica here: told of the partition all the same */
                if (krep_node_state(nd->rn, TOPIC, p, &ms) < 0 || ms.leader != st.leader ||
                    ms.leader_epoch != st.leader_epoch)
                    return false;
                continue;
            }
            kpart *kp = part_of(nd, p);
            if (!kp || kpart_high_watermark(kp) != kpart_end_offset(kp))
                return false;
            krep_pstate ns;
            if (sim.quorum && (krep_node_state(nd->rn, TOPIC, p, &ns) < 0 || ns.leader != st.leader ||
                               ns.leader_epoch != st.leader_epoch))
                return false;
            if (leo >= 0 && kpart_end_offset(kp) != leo)
                return false;
            leo = kpart_end_offset(kp);
        }
    }
    return true;
}

static void final_checks(void)
{
    static int64_t vals[MAXN][MAXW + 16], eps[MAXN][MAXW + 16];
    for (int p = 0; p < sim.nparts; p++) {
        int r0 = first_replica(p);
        int64_t leo = kpart_end_offset(part_of(&sim.nodes[r0], p));
        if (leo > MAXW) {
            fail("log end %" PRId64 " beyond the writes made", leo);
            return;
        }
        for (int i = 0; i < sim.n; i++) {
            kpart *kp = part_of(&sim.nodes[i], p);
            if (!replica(p, i)) {
                if (kpart_end_offset(kp) != 0)
                    fail("partition %d: node %d, no replica of it, holds records up to %" PRId64, p,
                         sim.nodes[i].id, kpart_end_offset(kp));
                continue;
            }
            for (int64_t o = 0; o < leo; o++)
                vals[i][o] = eps[i][o] = 0;
            read_values(kp, kpart_start_offset(kp), leo, vals[i], eps[i]);
            if (i > r0)
                for (int64_t o = 0; o < leo; o++)
                    if (vals[i][o] != vals[r0][o] || eps[i][o] != eps[r0][o]) {
                        fail("partition %d offset %" PRId64 ": node %d holds %" PRIx64 " (epoch %" PRId64
                             "), node %d %" PRIx64 " (epoch %" PRId64 ")",
                             p, o, sim.nodes[i].id, vals[i][o], eps[i][o], sim.nodes[r0].id, vals[r0][o], eps[r0][o]);
                        return;
                    }
        }
        if (leo < sim.max_hw[p])
            fail("partition %d: the log ends at %" PRId64 ", below a HW of %" PRId64 " exposed", p, leo, sim.max_hw[p]);
        for (int64_t o = 0; o < sim.max_hw[p] && o < leo; o++)
            if (sim.committed[p][o] && sim.committed[p][o] != vals[r0][o])
                fail("partition %d offset %" PRId64 ": committed %" PRIx64 ", the log holds %" PRIx64, p, o,
                     sim.committed[p][o], vals[r0][o]);
    }
    /* acknowledged writes, and each client's order */
    int64_t last[MAXCLIENTS][MAXP];
    for (int c = 0; c < MAXCLIENTS; c++)
        for (int p = 0; p < MAXP; p++)
            last[c][p] = -1;
    for (int i = 0; i < sim.nw; i++) {
        write_rec *w = &sim.w[i];
        if (w->state != 1 || !w->all)
            continue;
        int r0 = first_replica(w->part);
        int64_t leo = kpart_end_offset(part_of(&sim.nodes[r0], w->part));
        if (w->offset < 0 || w->offset >= leo || vals[r0][w->offset] != value_id(w->client, w->seq, true)) {
            /* vals[] holds the last partition read: read this one */
            int64_t v = 0;
            if (w->offset >= 0 && w->offset < leo) {
                static int64_t one[MAXW + 16];
                read_values(part_of(&sim.nodes[r0], w->part), w->offset, w->offset + 1, one, NULL);
                v = one[w->offset];
            }
            if (v != value_id(w->client, w->seq, true)) {
                fail("acknowledged write c%d-%d at partition %d offset %" PRId64 " lost (the log holds %" PRIx64 ")",
                     w->client, w->seq, w->part, w->offset, v);
                return;
            }
        }
        if (w->offset <= last[w->client][w->part])
            fail("client %d: acknowledged writes out of order at offset %" PRId64, w->client, w->offset);
        last[w->client][w->part] = w->offset;
    }
}

static void dump(void)
{
    char buf[4096];
    if (sim.ctl) {
        krep_ctl_describe(sim.ctl, buf, sizeof buf);
        printf("%s", buf);
    }
    for (int i = 0; i < nall(); i++) {
        snode *nd = &sim.nodes[i];
#if KLOG_HAVE_RAFT
        if (nd->q) {
            int rs;
            uint64_t term, idx, h;
            int32_t lid;
            krep_quorum_raft(nd->q, &rs, &term, &lid);
            krep_quorum_applied(nd->q, &idx, &h);
            printf("node %d: raft state %d term %" PRIu64 " leader %d applied %" PRIu64 "\n", nd->id, rs, term, lid, idx);
        }
#endif
        if (!nd->rn) {
            printf("node %d %s\n", nd->id, nd->k ? "(witness)" : "down");
            continue;
        }
        if (nd->h.ctl) {
            krep_ctl_describe(nd->h.ctl, buf, sizeof buf);
            printf("node %d hosts the controller (epoch %d):\n%s", nd->id, krep_ctl_epoch(nd->h.ctl), buf);
        }
        krep_node_describe(nd->rn, buf, sizeof buf);
        printf("%s", buf);
        /* each partition's leader epochs, and its last records with theirs */
        for (int p = 0; p < sim.nparts; p++) {
            kpart *kp = part_of(nd, p);
            if (!kp)
                continue;
            ks_epoch_entry ee[16];
            size_t ne = kpart_epoch_entries(kp, ee, 16);
            printf("  p%d epochs:", p);
            for (size_t j = 0; j < ne && j < 16; j++)
                printf(" %d@%" PRId64, ee[j].epoch, ee[j].start_offset);
            int64_t end = kpart_end_offset(kp), from = end > 24 ? end - 24 : 0;
            static int64_t vals[MAXW + 16], eps[MAXW + 16];
            for (int64_t o = from; o < end; o++)
                vals[o] = eps[o] = -1;
            read_values(kp, from, end, vals, eps);
            printf("\n  p%d records from %" PRId64 ":", p, from);
            for (int64_t o = from; o < end; o++)
                printf(" %c%d-%d/e%" PRId64, vals[o] >> 62 ? 'a' : 'c', (int)((vals[o] >> 32) & 0xffff) - 1,
                       (int)(vals[o] & 0xffffffff), eps[o]);
            printf("\n");
        }
    }
}

static uint64_t last_digest;  /* of the last run: --twice compares two */
static char last_failure[1024];

static int run(uint64_t seed)
{
    setup(seed);
    TRACE("seed %" PRIu64 ": %d nodes, %d partitions of %d replicas, %d clients, %.1f s of faults, %s controller",
          seed, sim.n, sim.nparts, sim.rf ? sim.rf : sim.n, sim.nclients, (double)sim.end / 1000, sim.quorum ? "quorum" : sim.static_mode ? "static" : "central");
    while (sim.now < sim.end && !failure[0])
        step();
    /* Heal everything, restart everyone, and let it converge. */
    sim.healthy_phase = 1;
    ktr_memnet_heal(sim.net);
    ktr_memnet_set_faults(sim.net, NULL);
    for (int i = 0; i < nall(); i++) {
        snode *nd = &sim.nodes[i];
        nd->paused_until = 0;
        if (nd->k)
            klog_testing_fault_clear(nd->disk);
        nd->down_until = sim.now;
    }
    TRACE("healing: all up, no faults");
    int64_t deadline = sim.now + 20000;
    while (!failure[0] && sim.now < deadline) {
        step();
        for (int p = 0; p < sim.nparts; p++)
            if (leader_unreachable(p) && sim.now % 200 == 0)
                elect(p, true);
        if (sim.now % 50 == 0 && sim.now >= sim.write_end && converged())
            break;
        /* writes still in flight settle (the clients have stopped) */
    }
    if (!failure[0] && !converged()) {
        fail("no convergence 20 s after healing");
        dump();
    }
    if (!failure[0])
        final_checks();
#if KLOG_HAVE_RAFT
    /* snapshots every 8 applied entries, 2 kept: a voter that applied many
     * more took or was sent a snapshot (its log is cut after it, unless a
     * power cut came between the snapshot and the cut: seeds 213, 514) */
    for (int i = 0; sim.quorum && !failure[0] && i < nall(); i++) {
        snode *nd = &sim.nodes[i];
        uint64_t idx, h, first, n, snap;
        if (!nd->q)
            continue;
        krep_quorum_applied(nd->q, &idx, &h);
        krep_quorum_log_span(nd->q, &first, &n, &snap);
        if (idx >= 16 && snap == 0)
            fail("node %d applied %" PRIu64 " metadata entries and took no snapshot", nd->id, idx);
        else if (idx >= snap + 16 && first == 1)
            fail("node %d applied %" PRIu64 " metadata entries and its raft.log was never compacted", nd->id, idx);
    }
#endif
    bool committed_any = false;
    for (int p = 0; p < sim.nparts; p++)
        committed_any |= sim.max_hw[p] > 0;
    if (!failure[0] && !committed_any)
        fail("nothing was committed");
    uint64_t events = 0, digest = ktr_memnet_digest(sim.net, &events);
    if (verbose || failure[0])
        printf("seed %" PRIu64 ": %s, %d nodes %d partitions, %d writes (%d acks=all acknowledged, %d failed), HW %" PRId64
               ", %d crashes (%d armed), %d restarts, %d pauses, %d partitions, %d elections, %.1f s virtual, "
               "digest %016" PRIx64 " (%" PRIu64 " events)%s%s\n",
               seed, sim.quorum ? (sim.nwit ? "quorum+witness" : "quorum") : sim.static_mode ? "static" : "central", sim.n, sim.nparts, sim.nw, sim.acked, sim.failed_writes, sim.max_hw[0], sim.crashes, sim.crash_ats,
               sim.restarts, sim.pauses, sim.partitions, sim.elections, (double)sim.now / 1000, digest, events,
               failure[0] ? ": FAILED: " : "", failure);
    int bad = failure[0] != 0;
    last_digest = digest;
    snprintf(last_failure, sizeof last_failure, "%s", failure);
    teardown();
    return bad;
}

/* ---- scripted: a follower behind its leader's log start, or its compaction ------------------------ */

/* A clean stop (no power cut): the node stays down until restarted. */
static void node_stop(snode *nd)
{
    net_down(nd);
    host_drop(&nd->h);
    krep_node_free(nd->rn);
    nd->rn = NULL;
    int rc = klog_close(nd->k);
    if (rc < 0)
        fail("node %d: close: %s", nd->id, klog_strerror(rc));
    nd->k = NULL;
    nd->down_until = INT64_MAX;
    TRACE("node %d stopped", nd->id);
}

static int scen_leader(void)
{
    krep_pstate st;
    if (krep_ctl_state(sim.ctl, TOPIC, 0, &st) < 0)
        return -1;
    for (int i = 0; i < sim.n; i++)
        if (sim.nodes[i].id == st.leader)
            return i;
    return -1;
}

static int scen_seq;

/* One batch of 1..3 records, keys among nkeys, to the leader. */
static void scen_write(int nkeys)
{
    int li = scen_leader();
    kpart *kp = li >= 0 && sim.nodes[li].k ? part_of(&sim.nodes[li], 0) : NULL;
    if (!kp)
        return;
    kf_builder b;
    uint8_t buf[512];
    kf_builder_init(&b, buf, sizeof buf, 64);
    int nrec = 1 + (int)rnd(3);
    char keys[3][16], vals[3][32];
    for (int r = 0; r < nrec; r++) {
        int kl = snprintf(keys[r], sizeof keys[r], "k%d", (int)rnd((uint64_t)nkeys));
        int vl = snprintf(vals[r], sizeof vals[r], "c0-%d", scen_seq++);
        kf_record rec = { .key = keys[r], .key_len = kl, .value = vals[r], .value_len = vl, .timestamp = sim.now };
        if (kf_builder_add(&b, &rec) < 0) {
            fail("building a batch");
            return;
        }
    }
    const uint8_t *out;
    size_t olen;
    kf_batch_meta meta = { .producer_id = -1, .producer_epoch = -1, .base_sequence = -1 };
    if (kf_builder_finish(&b, &meta, NULL, &out, &olen) < 0) {
        fail("building a batch");
        return;
    }
    uint8_t copy[512];
    memcpy(copy, out, olen);
    ks_batch kb = { copy, olen, -1, 0 };
    int rc = kpart_append(kp, &kb, 1, KS_APPEND_SYNC);
    TRACE("scenario write of %d records to node %d: %s", nrec, sim.nodes[li].id, rc ? klog_err_name(rc) : "ok");
}

/* Step until cond holds (true) or ms pass (false). */
static bool run_until(bool (*cond)(void), int64_t ms)
{
    int64_t until = sim.now + ms;
    while (sim.now < until && !failure[0]) {
        step();
        if (cond && cond())
            return true;
    }
    return cond == NULL;
}

/* The leader's HW is at its end (everything written is committed). */
static bool leader_committed(void)
{
    int li = scen_leader();
    kpart *kp = li >= 0 && sim.nodes[li].k ? part_of(&sim.nodes[li], 0) : NULL;
    return kp && kpart_high_watermark(kp) == kpart_end_offset(kp);
}

static int64_t lvals[MAXW + 16], leps[MAXW + 16], fvals[MAXW + 16], feps[MAXW + 16];

/* After convergence: every replica's log starts where the leader's does
 * (BEHIND_START) and holds the leader's records at the leader's offsets:
 * all of them from the leader's start on, and the follower that was
 * stopped nothing else from `exact_from` on (below it, and on a replica
 * that copied before the leader compacted, records the leader no longer
 * has stay).  Also after a
 * restart of every node: the copied gaps survive recovery. */
static void scen_check(int stopped, int64_t exact_from, const char *when)
{
    int li = scen_leader();
    kpart *lp = part_of(&sim.nodes[li], 0);
    int64_t ls = kpart_start_offset(lp), le = kpart_end_offset(lp);
    if (le > MAXW) {
        fail("log end %" PRId64 " beyond the writes made", le);
        return;
    }
    for (int64_t o = 0; o < le; o++)
        lvals[o] = leps[o] = 0;
    read_values(lp, ls, le, lvals, leps);
    ks_epoch_entry le_e[64], fe_e[64];
    size_t nle = kpart_epoch_entries(lp, le_e, 64);
    for (int i = 0; i < sim.n; i++) {
        if (i == li)
            continue;
        kpart *fp = part_of(&sim.nodes[i], 0);
        int64_t fs = kpart_start_offset(fp), fe = kpart_end_offset(fp);
        if (fe != le) {
            fail("%s: node %d ends at %" PRId64 ", the leader at %" PRId64, when, sim.nodes[i].id, fe, le);
            return;
        }
        if (behind == BEHIND_START && fs != ls) {
            fail("%s: node %d starts at %" PRId64 ", the leader at %" PRId64, when, sim.nodes[i].id, fs, ls);
            return;
        }
        for (int64_t o = 0; o < le; o++)
            fvals[o] = feps[o] = 0;
        read_values(fp, fs < ls ? ls : fs, le, fvals, feps);
        for (int64_t o = ls; o < le; o++) {
            bool must = lvals[o] != 0 || (i == stopped && o >= exact_from);
            if (must && (fvals[o] != lvals[o] || feps[o] != leps[o])) {
                fail("%s: offset %" PRId64 ": node %d holds %" PRIx64 " (epoch %" PRId64 "), leader %d %" PRIx64
                     " (epoch %" PRId64 ")%s",
                     when, o, sim.nodes[i].id, fvals[o], feps[o], sim.nodes[li].id, lvals[o], leps[o],
                     i == stopped ? " (the follower that was behind)" : "");
                return;
            }
        }
        if (behind == BEHIND_START) {
            /* the same epochs from the same offsets (but an epoch the
             * leader began without writing yet: a follower learns it from
             * its first batch) */
            size_t nfe = kpart_epoch_entries(fp, fe_e, 64), nl = nle;
            while (nl > 0 && le_e[nl - 1].start_offset >= le)
                nl--;
            bool same = nfe == nl;
            for (size_t j = 0; same && j < nl && j < 64; j++)
                same = fe_e[j].epoch == le_e[j].epoch && fe_e[j].start_offset == le_e[j].start_offset;
            if (!same) {
                fail("%s: node %d's leader epochs differ from the leader's (%zu and %zu entries, first %d@%" PRId64
                     " and %d@%" PRId64 ")",
                     when, sim.nodes[i].id, nfe, nle, nfe ? fe_e[0].epoch : -1, nfe ? fe_e[0].start_offset : -1,
                     nle ? le_e[0].epoch : -1, nle ? le_e[0].start_offset : -1);
                return;
            }
        }
    }
}

static int scenario_run(uint64_t seed)
{
    setup(seed);
    int nkeys = 3 + (int)rnd(20);
    TRACE("seed %" PRIu64 ": behind %s, %d keys", seed, behind == BEHIND_START ? "the log start" : "compaction", nkeys);
    /* 1. all three in sync */
    int w1 = 20 + (int)rnd(100);
    for (int i = 0; i < w1 && !failure[0]; i++) {
        scen_write(nkeys);
        run_until(NULL, 1 + (int64_t)rnd(3));
    }
    if (!run_until(converged, 5000))
        fail("no convergence before the scenario");
    /* 2. a follower stops; maybe the other one takes over (a new epoch) */
    int li = scen_leader(), fi = -1;
    for (int i = 0; i < sim.n && fi < 0; i++)
        if (i != li && chance(50))
            fi = i;
    if (fi < 0)
        fi = (li + 1) % sim.n;
    int64_t f_end = kpart_end_offset(part_of(&sim.nodes[fi], 0));
    node_stop(&sim.nodes[fi]);
    if (chance(50)) {
        int oi = 3 - li - fi;
        run_until(NULL, 100);
        if (krep_ctl_elect(sim.ctl, TOPIC, 0, sim.nodes[oi].id, 0) == 0)
            sim.elections++;
        TRACE("elect node %d", sim.nodes[oi].id);
        run_until(NULL, 200);
    }
    int w2 = 150 + (int)rnd(300);
    for (int i = 0; i < w2 && !failure[0]; i++) {
        scen_write(nkeys);
        run_until(NULL, 1 + (int64_t)rnd(2));
    }
    if (!run_until(leader_committed, 5000))
        fail("the two left did not commit");
    /* 3. the leader's log start moves past the stopped follower's end, or
     * it compacts what that follower has not copied */
    li = scen_leader();
    kpart *lp = part_of(&sim.nodes[li], 0);
    if (behind == BEHIND_START) {
        int64_t ns = -1;
        int rc;
        if (chance(50)) {
            int64_t to = kpart_high_watermark(lp) - (int64_t)rnd(5); /* often inside a batch */
            rc = kpart_delete_records(lp, to, &ns);
            TRACE("leader %d: DeleteRecords to %" PRId64 ": %s, start %" PRId64, sim.nodes[li].id, to, klog_err_name(rc), ns);
        } else {
            ks_retention r = { .retention_ms = -1, .retention_bytes = 8192, .bounded = true,
                               .bound = kpart_high_watermark(lp) }; /* (as the instance bounds it) */
            rc = ks_log_retain(kpart_log(lp), &r, NULL);
            ns = kpart_start_offset(lp);
            TRACE("leader %d: retention to 8 KiB: %s, start %" PRId64, sim.nodes[li].id, klog_err_name(rc), ns);
        }
        if (rc < 0 || ns <= f_end)
            fail("scenario: the leader's start %" PRId64 " is not past the follower's end %" PRId64 " (%s)", ns, f_end,
                 klog_err_name(rc));
    } else {
        ks_clean_config cc;
        ks_clean_config_init(&cc);
        cc.min_dirty_ratio = 0;
        ks_clean_stats cs = { 0 };
        int rc = ks_log_roll(kpart_log(lp));
        if (rc == 0)
            rc = ks_log_clean(kpart_log(lp), &cc, &cs);
        TRACE("leader %d: compacted: %s, %" PRIu64 " of %" PRIu64 " records kept", sim.nodes[li].id,
              klog_err_name(rc), cs.records_kept, cs.records_read);
        if (rc < 0 || !cs.cleaned || cs.records_kept >= cs.records_read)
            fail("scenario: the leader's compaction: %s (cleaned %d)", klog_err_name(rc), cs.cleaned);
    }
    int w3 = (int)rnd(50);
    for (int i = 0; i < w3 && !failure[0]; i++) {
        scen_write(nkeys);
        run_until(NULL, 1 + (int64_t)rnd(2));
    }
    /* 4. it comes back and must converge, also when a power cut falls
     * among the disk operations of its catching up (starting its log
     * again, copying gaps) */
    sim.nodes[fi].down_until = sim.now;
    run_until(NULL, 1);
    if (sim.nodes[fi].k && chance(50)) {
        uint64_t nth = 1 + rnd(60);
        int modes[] = { KLOG_TESTING_CRASH_DROP, KLOG_TESTING_CRASH_PREFIX, KLOG_TESTING_CRASH_GARBAGE,
                        KLOG_TESTING_CRASH_ZERO };
        klog_testing_fault_crash_at(sim.nodes[fi].disk, KLOG_TESTING_OP_ALL, nth, modes[rnd(4)],
                                    chance(30) ? KLOG_TESTING_CRASH_LOSE_DIRENTS : 0, splitmix(&sim_rng));
        TRACE("node %d: power cut armed at its disk operation %" PRIu64 " from now", sim.nodes[fi].id, nth);
    }
    if (!failure[0] && !run_until(converged, 20000)) {
        fail("no convergence 20 s after the follower came back");
        dump();
    }
    int64_t exact_from = behind == BEHIND_START ? 0 : f_end;
    if (sim.nodes[fi].k)
        klog_testing_fault_clear(sim.nodes[fi].disk); /* a power cut not reached yet: off */
    if (!failure[0])
        scen_check(fi, exact_from, "converged");
    /* 5. every node restarts, cleanly or after a power cut (recovery reads
     * the copied gaps), and they agree again */
    if (!failure[0]) {
        for (int i = 0; i < sim.n; i++) {
            if (chance(50))
                node_crash(&sim.nodes[i], true);
            else
                node_stop(&sim.nodes[i]);
        }
        for (int i = 0; i < sim.n; i++)
            sim.nodes[i].down_until = sim.now;
        if (!run_until(converged, 20000))
            fail("no convergence after restarting every node");
        else
            scen_check(fi, exact_from, "after a restart");
    }
    if (verbose || failure[0])
        printf("seed %" PRIu64 ": behind %s: follower %d stopped at %" PRId64 ", %d writes, %d elections%s%s\n", seed,
               behind == BEHIND_START ? "start" : "compact", sim.nodes[fi].id, f_end, scen_seq, sim.elections,
               failure[0] ? ": FAILED: " : "", failure);
    int bad = failure[0] != 0;
    scen_seq = 0;
    teardown();
    return bad;
}

int main(int argc, char **argv)
{
    int expect_failure = 0, twice = 0;
    uint64_t a = 1, b = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else if (!strcmp(argv[i], "-vv"))
            verbose = 2;
        else if (!strcmp(argv[i], "--unclean"))
            unclean = 1;
        else if (!strcmp(argv[i], "--quorum")) {
#if KLOG_HAVE_RAFT
            quorum_flag = 1;
#else
            printf("built without raft: no quorum controller to test\n");
            return 77;
#endif
        }
        else if (!strcmp(argv[i], "--rf"))
            rf_flag = 1;
        else if (!strcmp(argv[i], "--behind") && i + 1 < argc) {
            i++;
            behind = !strcmp(argv[i], "start") ? BEHIND_START : !strcmp(argv[i], "compact") ? BEHIND_COMPACT : -1;
            if (behind < 0) {
                fprintf(stderr, "--behind start|compact\n");
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--expect-failure"))
            expect_failure = 1;
        else if (!strcmp(argv[i], "--twice"))
            twice = 1;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            a = b = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
            char *e;
            a = strtoull(argv[++i], &e, 10);
            b = *e == '-' ? strtoull(e + 1, NULL, 10) : a;
        } else {
            fprintf(stderr, "usage: %s [--seed N | --seeds A-B] [-v] [--unclean [--expect-failure]] [--twice]\n",
                    argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int failed = 0;
    uint64_t ran = 0;
    for (uint64_t s = a; s <= b; s++) {
        /* the checker's own test needs one caught seed: the rest would
         * only add time */
        if (expect_failure && failed)
            break;
        ran++;
        if (twice) {
            /* a seed replays exactly: the same network events in the same
             * order (the digest covers each frame's fate and time), the
             * same verdict */
            int r1 = run(s);
            uint64_t d1 = last_digest;
            char f1[1024];
            snprintf(f1, sizeof f1, "%s", last_failure);
            int r2 = run(s);
            if (r1 != r2 || d1 != last_digest || strcmp(f1, last_failure) != 0) {
                printf("seed %" PRIu64 ": NOT REPRODUCIBLE: digests %016" PRIx64 " and %016" PRIx64 "\n", s, d1,
                       last_digest);
                failed++;
            }
            continue;
        }
        if (getenv("SIM_PROGRESS"))
            fprintf(stderr, "seed %" PRIu64 "\n", s);
        if (behind ? scenario_run(s) : run(s)) {
            failed++;
            printf("FAILED: replay with: %s%s%s%s%s --seed %" PRIu64 " -v\n", argv[0], unclean ? " --unclean" : "",
                   quorum_flag ? " --quorum" : "", rf_flag ? " --rf" : "",
                   behind == BEHIND_START ? " --behind start" : behind == BEHIND_COMPACT ? " --behind compact" : "", s);
        }
    }
    printf("%" PRIu64 " seeds, %d failed\n", ran, failed);
    if (expect_failure) {
        /* the checker's own test: with unclean elections some seed must
         * lose acknowledged data, and the checker must say so */
        printf("%s\n", failed ? "the checker caught it, as it must" : "NO SEED FAILED: the checker missed it");
        return failed ? 0 : 1;
    }
    return failed ? 1 : 0;
}
