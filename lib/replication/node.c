/*
 * lib/replication/node.c - a node of a replicated cluster: the leader's
 * view of its followers (their offsets, the ISR, the HW), the follower's
 * fetch and truncation, the controller's orders (LeaderAndIsr), the
 * channels that carry a node's requests.  replication.h says what and why;
 * this file says how.
 *
 * State per partition (krep_part), under n->mu:
 *   st            the state the controller last gave (leader, leader
 *                 epoch, partition epoch, replicas, ISR); `known` once one
 *                 arrived in this incarnation.
 *   leader side   `leading` once kpart_become_leader(st.leader_epoch)
 *                 succeeded in this incarnation; rs[i], the view of
 *                 replica st.replicas[i]: its LEO in this epoch (-1 until
 *                 its first fetch of this epoch), when it was last caught
 *                 up (Kafka's rule: its fetch reached the leader's LEO of
 *                 the time, or the LEO the leader had at its previous
 *                 fetch); an ISR proposal (prop, `proposing`), counted in
 *                 the maximal ISR from when it is made until a newer state
 *                 arrives from the controller: its answer, or a
 *                 LeaderAndIsr.  An error answer does not end it (the
 *                 controller may have applied an earlier copy; Kafka's
 *                 "abort only if we can tell it was not applied").
 *   follower side fstate: F_TRUNCATE (ask OffsetForLeaderEpoch, truncate,
 *                 repeat) then F_FETCH; retry_ms backs a partition off
 *                 after an error.
 *
 * Partitions of which this node holds no replica (a topic's replication
 * factor below the number of nodes): the controller tells every node of
 * every partition, and a node keeps the states of the others' in `meta`
 * (no log, no fetch: Metadata names their leader from it, as a Kafka
 * broker answers from its metadata cache).
 *
 * Post actions.  HW advances and acknowledgement flushes run user
 * callbacks (delivery reports), so they run after n->mu is released:
 * each locked section collects them in n->post and post_run executes
 * them.  kpart_advance_hw is monotonic, so a late or repeated advance is
 * harmless.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/instance.h>

#include "common/common.h"
#include "common/sbuf.h"
#include "format/format.h"
#include "partition/partition.h"
#include "replication/conf_keys.h"
#include "replication/internal.h"
#include "storage/storage.h"
#include "topic/topic.h"

enum { F_IDLE = 0, F_TRUNCATE, F_FETCH };

typedef struct krep_rstate {
    int64_t leo;                  /* -1: not fetched in this epoch yet */
    int64_t caught_up_ms;
    int64_t last_fetch_ms;
    int64_t last_fetch_leader_leo;
} krep_rstate;

typedef struct krep_part {
    kt_topic *t;                  /* referenced */
    int32_t index;
    kpart *p;
    bool known;
    bool failed;                  /* its log failed: it neither leads nor follows */
    krep_pstate st;
    int min_isr;
    /* leader */
    bool leading;
    int64_t epoch_start;          /* the LEO when it became leader of st.leader_epoch */
    krep_rstate rs[KREP_MAX_NODES];
    bool proposing, prop_sent, prop_blocked;
    int nprop;
    int32_t prop[KREP_MAX_NODES];
    int32_t prop_based;           /* the partition epoch it is based on */
    /* follower */
    int fstate;
    int64_t retry_ms;
    int64_t leader_hw;            /* the HW its leader last told it, unclipped; -1 none */
} krep_part;

/* One request in flight to a destination. */
typedef struct krep_chan {
    int32_t dst;
    bool busy;
    bool registering;
    int16_t key, version;
    int32_t corr;
    int64_t backoff_until;
    /* what was asked, per partition */
    int nparts;
    krep_part *parts[1024];
    int64_t asked[1024];          /* Fetch: the fetch offset (the LEO then) */
    int32_t cur_epoch[1024];      /* the leader epoch followed then */
    int32_t ask_epoch[1024];      /* OffsetForLeaderEpoch: the epoch asked */
} krep_chan;

#define KREP_CHAN_PARTS 1024

/* A partition this node holds no replica of: its state, for Metadata. */
typedef struct krep_meta {
    char topic[KLOG_TOPIC_NAME_MAX + 1];
    int32_t index;
    krep_pstate st;
} krep_meta;

typedef struct post_action {
    kpart *p;
    int64_t hw;                   /* >= 0: advance to it */
    int fail;                     /* < 0: fail the acknowledgements waiting with it */
    int64_t start;                /* > 0: a follower's log start follows its leader's
                                   * (to it, no further than the HW) */
} post_action;

struct krep_node {
    struct klog *k;
    krep_config cfg;
    pthread_mutex_t mu;
    krep_part **parts;
    size_t nparts, cap;
    krep_meta **meta;             /* others' partitions (allocated one by one: names stay put) */
    size_t nmeta, metacap;
    krep_chan *chans;             /* cfg.npeers of them, then the controller's */
    bool registered;              /* the controller acknowledged this incarnation */
    int64_t registered_ms;        /* when (heartbeats follow every cfg.heartbeat_ms) */
    int64_t contact_ms;           /* the controller last answered or ordered (0: not yet looked) */
    _Atomic bool fenced;          /* cfg.fence_after_ms without it: the leaderships fenced */
    int32_t ctl_id, ctl_epoch;    /* the controller, from the newest LeaderAndIsr */
    _Atomic uint64_t version;     /* bumped by every state or controller applied */
    pthread_mutex_t smu;          /* the state file (krep_node_write_state) */
    int32_t corr;
    kk_arena arena;               /* responses decoded (under mu) */
    krep_mem mem;                 /* requests built (under mu) */
    uint8_t *buf;                 /* wire batches converted for an append */
    size_t bufcap;
    post_action *post;
    size_t npost, postcap;
    /* forgotten (krep_node_forget): kept until no request in flight
     * names them, metas until the node goes (krep_node_list's names) */
    krep_part **gone;
    size_t ngone, gonecap;
    krep_meta **gone_meta;
    size_t ngone_meta, gone_metacap;
};

/* ---- helpers ------------------------------------------------------------------ */

void krep_config_init(krep_config *c)
{
    memset(c, 0, sizeof *c);
    c->incarnation = 1;
    c->lag_max_ms = 30000;
    c->fetch_max_bytes = 1 << 20;
    c->fetch_wait_max_ms = 500;
    c->fetch_backoff_ms = 1000;
    c->heartbeat_ms = 2000;
    c->controller_id = -1;
}

void krep_node_set_controller(krep_node *n, int32_t id, int32_t epoch)
{
    pthread_mutex_lock(&n->mu);
    if (epoch > n->ctl_epoch || (epoch == n->ctl_epoch && id == n->ctl_id)) {
        if (id != n->ctl_id)
            n->registered = false;
        n->ctl_id = id;
        n->ctl_epoch = epoch;
        atomic_fetch_add(&n->version, 1);
    }
    pthread_mutex_unlock(&n->mu);
}

void krep_node_controller(krep_node *n, int32_t *id, int32_t *epoch)
{
    pthread_mutex_lock(&n->mu);
    *id = n->ctl_id;
    *epoch = n->ctl_epoch;
    pthread_mutex_unlock(&n->mu);
}

int32_t krep_node_id(const krep_node *n) { return n->cfg.node_id; }

const char *krep_node_peer_url(const krep_node *n, int32_t id)
{
    for (int i = 0; i < n->cfg.npeers; i++)
        if (n->cfg.peers[i].id == id)
            return n->cfg.peers[i].url;
    return NULL;
}

static krep_chan *chan_of(krep_node *n, int32_t dst)
{
    if (dst == KREP_DST_CTL)
        return &n->chans[n->cfg.npeers];
    for (int i = 0; i < n->cfg.npeers; i++)
        if (n->cfg.peers[i].id == dst)
            return &n->chans[i];
    return NULL;
}

static void post_add(krep_node *n, kpart *p, int64_t hw)
{
    for (size_t i = 0; i < n->npost; i++)
        if (n->post[i].p == p) {
            if (hw > n->post[i].hw)
                n->post[i].hw = hw;
            return;
        }
    if (klog__vec_reserve(&n->post, &n->postcap, n->npost + 1, sizeof *n->post) < 0)
        return; /* the next advance catches up: the HW is recomputed each time */
    n->post[n->npost++] = (post_action){ p, hw, 0, -1 };
}

/* A follower heard its leader's log start (n->mu held): its own follows,
 * after the HW advance, as far as its HW (Kafka's follower deletes below
 * the leader's log start it learns from fetch responses). */
static void post_start(krep_node *n, kpart *p, int64_t start)
{
    post_add(n, p, -1);
    for (size_t i = 0; i < n->npost; i++)
        if (n->post[i].p == p && start > n->post[i].start)
            n->post[i].start = start;
}

/* The ISR of a partition this node leads is below min.insync.replicas:
 * the acks=all writes waiting fail (Kafka's
 * NOT_ENOUGH_REPLICAS_AFTER_APPEND), as its HW will not pass them until
 * enough replicas are back.  Their records stay in the log. */
static void post_fail_if_short(krep_node *n, krep_part *rp)
{
    if (!rp->leading || rp->st.nisr >= rp->min_isr)
        return;
    post_add(n, rp->p, -1);
    for (size_t i = 0; i < n->npost; i++)
        if (n->post[i].p == rp->p)
            n->post[i].fail = KLOG_ENOTENOUGH;
}

/* Unlock, then advance HWs and flush acknowledgements. */
static void unlock_post(krep_node *n)
{
    post_action local[16], *pa = local;
    size_t np = n->npost;
    if (np > 16 && !(pa = malloc(np * sizeof *pa))) {
        pa = local;
        np = 16;
    }
    if (np)
        memcpy(pa, n->post, np * sizeof *pa);
    n->npost = 0;
    pthread_mutex_unlock(&n->mu);
    for (size_t i = 0; i < np; i++) {
        if (pa[i].hw >= 0 && kpart_replicated(pa[i].p))
            kpart_advance_hw_durable(pa[i].p, pa[i].hw); /* no further than this node's disk */
        if (pa[i].fail < 0)
            kpart_ack_fail(pa[i].p, pa[i].fail);
        kpart_ack_flush(pa[i].p);
        if (pa[i].start > kpart_start_offset(pa[i].p) && kpart_role(pa[i].p) == KPART_FOLLOWER) {
            int64_t hw = kpart_high_watermark(pa[i].p);
            kpart_delete_records(pa[i].p, pa[i].start < hw ? pa[i].start : hw, NULL); /* else the next fetch's */
        }
    }
    if (pa != local)
        free(pa);
}

static int idx_of(const krep_pstate *st, int32_t id)
{
    for (int i = 0; i < st->nreplicas; i++)
        if (st->replicas[i] == id)
            return i;
    return -1;
}

static bool internal_topic(const char *name) { return !krep_topic_replicated(name); }

/* ---- partitions ------------------------------------------------------------------- */

static krep_part *part_find(krep_node *n, const char *topic, int32_t index)
{
    for (size_t i = 0; i < n->nparts; i++)
        if (n->parts[i]->index == index && strcmp(n->parts[i]->t->name, topic) == 0)
            return n->parts[i];
    return NULL;
}

/* Track partition `index` of t (referenced here): a replica that knows no
 * leader yet.  n->mu held. */
static krep_part *part_add(krep_node *n, kt_topic *t, int32_t index)
{
    if (index < 0 || index >= atomic_load_explicit(&t->nparts, memory_order_acquire))
        return NULL;
    if (klog__vec_reserve(&n->parts, &n->cap, n->nparts + 1, sizeof *n->parts) < 0)
        return NULL;
    krep_part *rp = calloc(1, sizeof *rp);
    if (!rp)
        return NULL;
    klog__topic_ref(t);
    rp->t = t;
    rp->index = index;
    rp->p = t->parts[index];
    rp->st.leader = -1;
    rp->st.leader_epoch = -1;
    rp->st.partition_epoch = -1;
    rp->leader_hw = -1;
    /* Fenced until told: nothing shown that is not known committed, no
     * producer's append taken. */
    kpart_set_replicated_at(rp->p, kpart_start_offset(rp->p));
    kpart_become_follower(rp->p, -1);
    kpart_set_isr(rp->p, 0, 0);
    post_add(n, rp->p, -1);
    n->parts[n->nparts++] = rp;
    return rp;
}

/* The partition, tracked now if its topic exists.  n->mu held. */
static krep_part *part_get(krep_node *n, const char *topic, int32_t index)
{
    krep_part *rp = part_find(n, topic, index);
    if (rp || internal_topic(topic))
        return rp;
    kt_topic *t = klog__topic_get(n->k, topic);
    if (!t)
        return NULL;
    rp = part_add(n, t, index);
    klog__topic_put(t);
    return rp;
}

void krep_node_track(krep_node *n, kt_topic *t)
{
    if (internal_topic(t->name))
        return;
    pthread_mutex_lock(&n->mu);
    int np = atomic_load_explicit(&t->nparts, memory_order_acquire);
    for (int i = 0; i < np; i++)
        if (!part_find(n, t->name, i))
            part_add(n, t, i);
    unlock_post(n);
}

int krep_node_new(krep_node **out, struct klog *k, const krep_config *cfg)
{
    *out = NULL;
    if (!k || !cfg || cfg->npeers < 1 || cfg->npeers > KREP_MAX_NODES || cfg->node_id < 0 || cfg->incarnation <= 0)
        return -EINVAL;
    krep_node *n = calloc(1, sizeof *n);
    if (!n)
        return -ENOMEM;
    n->chans = calloc((size_t)cfg->npeers + 1, sizeof *n->chans);
    if (!n->chans) {
        free(n);
        return -ENOMEM;
    }
    n->k = k;
    n->cfg = *cfg;
    if (n->cfg.fetch_max_bytes <= 0)
        n->cfg.fetch_max_bytes = 1 << 20;
    if (n->cfg.lag_max_ms <= 0)
        n->cfg.lag_max_ms = 30000;
    if (n->cfg.heartbeat_ms <= 0)
        n->cfg.heartbeat_ms = 2000;
    n->ctl_id = cfg->controller_id;
    n->ctl_epoch = cfg->controller_epoch;
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->smu, NULL);
    for (int i = 0; i < cfg->npeers; i++)
        n->chans[i].dst = cfg->peers[i].id;
    n->chans[cfg->npeers].dst = KREP_DST_CTL;
    kk_arena_init(&n->arena, NULL, 0);
    kt_topic **snap;
    ssize_t nt = klog__topics_snapshot(k, &snap);
    if (nt < 0) {
        krep_node_free(n);
        return (int)nt;
    }
    for (ssize_t i = 0; i < nt; i++)
        krep_node_track(n, snap[i]);
    klog__topics_release(snap, (size_t)nt);
    *out = n;
    return 0;
}

void krep_node_free(krep_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nparts; i++) {
        klog__topic_put(n->parts[i]->t);
        free(n->parts[i]);
    }
    free(n->parts);
    for (size_t i = 0; i < n->nmeta; i++)
        free(n->meta[i]);
    free(n->meta);
    for (size_t i = 0; i < n->ngone; i++) {
        klog__topic_put(n->gone[i]->t);
        free(n->gone[i]);
    }
    free(n->gone);
    for (size_t i = 0; i < n->ngone_meta; i++)
        free(n->gone_meta[i]);
    free(n->gone_meta);
    free(n->chans);
    kk_arena_reset(&n->arena);
    krep_mem_reset(&n->mem);
    free(n->mem.blocks);
    free(n->buf);
    free(n->post);
    pthread_mutex_destroy(&n->mu);
    pthread_mutex_destroy(&n->smu);
    free(n);
}

int krep_node_write_state(krep_node *n, int32_t ctl_id, int32_t ctl_epoch, const krep_ctl_entry *e, int ne)
{
    klog_sbuf b = { 0 };
    klog__sbuf_printf(&b, "klog-replication 1\ncontroller %d %d\n", ctl_id, ctl_epoch);
    for (int i = 0; i < ne; i++) {
        const krep_pstate *st = &e[i].st;
        klog__sbuf_printf(&b, "partition %s %d %d %d %d %d", e[i].topic, e[i].partition, st->leader, st->leader_epoch,
                          st->partition_epoch, st->nreplicas);
        for (int j = 0; j < st->nreplicas; j++)
            klog__sbuf_printf(&b, " %d", st->replicas[j]);
        klog__sbuf_printf(&b, " %d", st->nisr);
        for (int j = 0; j < st->nisr; j++)
            klog__sbuf_printf(&b, " %d", st->isr[j]);
        klog__sbuf_printf(&b, "\n");
    }
    klog__sbuf_printf(&b, "end\n");
    int rc = b.err;
    if (rc == 0) {
        pthread_mutex_lock(&n->smu);
        rc = ks_write_atomic(klog__io(n->k), klog__dir(n->k), KREP_STATE_FILE, b.p, b.n);
        pthread_mutex_unlock(&n->smu);
    }
    free(b.p);
    return rc;
}

struct klog *krep_node_klog(krep_node *n) { return n->k; }
const krep_config *krep_node_config(const krep_node *n) { return &n->cfg; }
uint64_t krep_node_version(krep_node *n) { return atomic_load(&n->version); }

static krep_meta *meta_find(krep_node *n, const char *topic, int32_t index)
{
    for (size_t i = 0; i < n->nmeta; i++)
        if (n->meta[i]->index == index && strcmp(n->meta[i]->topic, topic) == 0)
            return n->meta[i];
    return NULL;
}

/* The state of a partition this node holds no replica of (n->mu held):
 * kept when newer than the one known.  Returns a Kafka error code. */
static int16_t meta_put(krep_node *n, const char *topic, int32_t index, const krep_pstate *st)
{
    if (strlen(topic) > KLOG_TOPIC_NAME_MAX || index < 0 || st->nisr > st->nreplicas || st->leader_epoch < 0)
        return KK_ERR_INVALID_REQUEST;
    krep_meta *m = meta_find(n, topic, index);
    if (!m) {
        if (klog__vec_reserve(&n->meta, &n->metacap, n->nmeta + 1, sizeof *n->meta) < 0 ||
            !(m = calloc(1, sizeof *m)))
            return KK_ERR_UNKNOWN_SERVER_ERROR;
        strcpy(m->topic, topic);
        m->index = index;
        m->st = *st;
        n->meta[n->nmeta++] = m;
        atomic_fetch_add(&n->version, 1);
        return KK_ERR_NONE;
    }
    if (st->leader_epoch > m->st.leader_epoch ||
        (st->leader_epoch == m->st.leader_epoch && st->partition_epoch > m->st.partition_epoch)) {
        m->st = *st;
        atomic_fetch_add(&n->version, 1);
    }
    return KK_ERR_NONE;
}

int krep_node_state(krep_node *n, const char *topic, int32_t partition, krep_pstate *out)
{
    pthread_mutex_lock(&n->mu);
    krep_part *rp = part_find(n, topic, partition);
    krep_meta *m = rp && rp->known ? NULL : meta_find(n, topic, partition);
    int rc = (rp && rp->known) || m ? 0 : KLOG_EUNKNOWN_PARTITION;
    if (rc == 0)
        *out = m ? m->st : rp->st;
    pthread_mutex_unlock(&n->mu);
    return rc;
}

int64_t krep_node_leader_hw(krep_node *n, const char *topic, int32_t partition)
{
    pthread_mutex_lock(&n->mu);
    krep_part *rp = part_find(n, topic, partition);
    int64_t hw = !rp ? -1 : rp->leading ? kpart_high_watermark(rp->p) : rp->leader_hw;
    pthread_mutex_unlock(&n->mu);
    return hw;
}

int krep_node_list(krep_node *n, krep_ctl_entry *out, int cap)
{
    pthread_mutex_lock(&n->mu);
    int k = 0;
    for (size_t j = 0; j < n->nparts; j++)
        if (n->parts[j]->known) {
            if (k < cap)
                out[k] = (krep_ctl_entry){ n->parts[j]->t->name, n->parts[j]->index, n->parts[j]->st };
            k++;
        }
    for (size_t j = 0; j < n->nmeta; j++) {
        if (k < cap)
            out[k] = (krep_ctl_entry){ n->meta[j]->topic, n->meta[j]->index, n->meta[j]->st };
        k++;
    }
    pthread_mutex_unlock(&n->mu);
    return k;
}

int krep_node_describe(krep_node *n, char *buf, size_t cap)
{
    static const char *const fs[] = { "idle", "truncating", "fetching" };
    pthread_mutex_lock(&n->mu);
    size_t len = 0;
    if (cap)
        buf[0] = 0;
    int w = snprintf(buf, cap, "node %d incarnation %" PRId64 "%s\n", n->cfg.node_id, n->cfg.incarnation,
                     n->registered ? "" : " (not registered)");
    len += w > 0 ? (size_t)w : 0;
    for (size_t j = 0; j < n->nparts; j++) {
        krep_part *rp = n->parts[j];
        char isr[128] = "";
        size_t il = 0;
        for (int i = 0; i < rp->st.nisr && il < sizeof isr - 12; i++)
            il += (size_t)snprintf(isr + il, sizeof isr - il, "%s%d", i ? "," : "", rp->st.isr[i]);
        w = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0,
                     "  %s-%d: leader %d epoch %d pe %d isr [%s]%s%s %s%s leo %" PRId64 " hw %" PRId64
                     " durable %" PRId64 " retry %" PRId64 "\n",
                     rp->t->name, rp->index, rp->st.leader, rp->st.leader_epoch, rp->st.partition_epoch, isr,
                     rp->known ? "" : " unknown", rp->failed ? " FAILED" : "",
                     rp->leading ? "leading" : fs[rp->fstate], rp->proposing ? " proposing" : "",
                     kpart_end_offset(rp->p), kpart_high_watermark(rp->p), kpart_durable_offset(rp->p), rp->retry_ms);
        len += w > 0 ? (size_t)w : 0;
    }
    pthread_mutex_unlock(&n->mu);
    return (int)len;
}

/* ---- the leader: HW, ISR ------------------------------------------------------------ */

/* Is replica i in the maximal ISR (committed, or proposed)? */
static bool in_max_isr(const krep_part *rp, int32_t id)
{
    return krep_in(rp->st.isr, rp->st.nisr, id) || (rp->proposing && krep_in(rp->prop, rp->nprop, id));
}

/* The HW the leader may advance to: no further than any replica of the
 * maximal ISR holds, nor than its own durable offset (which
 * kpart_advance_hw_durable applies, and catches up with when the leader's
 * own sync ends after its followers' reports); -1 while one of them
 * has not fetched in this epoch, or while the maximal ISR has fewer than
 * min.insync.replicas members: a record is committed (shown, counted as
 * acknowledged) only once that many replicas hold it.  Kafka lets a lone
 * leader advance its HW; here a leader cut off from its followers, and one
 * an operator promoted meanwhile, cannot both commit (the simulation's
 * static mode found the split brain). */
static int64_t hw_target(krep_node *n, krep_part *rp)
{
    if (!rp->leading || rp->failed)
        return -1;
    int64_t hw = kpart_end_offset(rp->p);
    int members = 1; /* this one */
    for (int i = 0; i < rp->st.nreplicas; i++) {
        int32_t id = rp->st.replicas[i];
        if (id == n->cfg.node_id || !in_max_isr(rp, id))
            continue;
        if (rp->rs[i].leo < 0)
            return -1;
        if (rp->rs[i].leo < hw)
            hw = rp->rs[i].leo;
        members++;
    }
    return members < rp->min_isr ? -1 : hw;
}

static void propose(krep_part *rp, const int32_t *isr, int n)
{
    rp->proposing = true;
    rp->prop_sent = false;
    rp->prop_blocked = false;
    rp->nprop = n;
    memcpy(rp->prop, isr, (size_t)n * sizeof *isr);
    rp->prop_based = rp->st.partition_epoch;
}

/* A replica fetched at offset off (n->mu held): Kafka's
 * updateFollowerFetchState and maybeExpandIsr. */
static void follower_fetched(krep_node *n, krep_part *rp, int i, int64_t off, int64_t now_ms)
{
    krep_rstate *r = &rp->rs[i];
    int64_t leo = kpart_end_offset(rp->p);
    if (off >= leo)
        r->caught_up_ms = now_ms > r->caught_up_ms ? now_ms : r->caught_up_ms;
    else if (r->last_fetch_leader_leo >= 0 && off >= r->last_fetch_leader_leo)
        r->caught_up_ms = r->last_fetch_ms > r->caught_up_ms ? r->last_fetch_ms : r->caught_up_ms;
    r->leo = off;
    r->last_fetch_leader_leo = leo;
    r->last_fetch_ms = now_ms;
    int32_t id = rp->st.replicas[i];
    if (!rp->proposing && !krep_in(rp->st.isr, rp->st.nisr, id) && off >= kpart_high_watermark(rp->p) &&
        off >= rp->epoch_start) {
        int32_t isr[KREP_MAX_NODES];
        int k = rp->st.nisr;
        memcpy(isr, rp->st.isr, (size_t)k * sizeof *isr);
        isr[k++] = id;
        propose(rp, isr, k);
    }
    post_add(n, rp->p, hw_target(n, rp));
}

static void gone_sweep(krep_node *n);

/* cfg.fence_after_ms without a word from the controller: the partitions
 * this node leads take no writes (their pending acks=all writes wait, as
 * any that cannot commit) and Metadata names no leader for them, until it
 * hears from it again (n->mu held).  Returns when to look again. */
static int64_t fence_check(krep_node *n, int64_t now_ms)
{
    if (n->cfg.fence_after_ms <= 0)
        return INT64_MAX;
    if (n->contact_ms == 0)
        n->contact_ms = now_ms;
    bool fence = now_ms - n->contact_ms > n->cfg.fence_after_ms;
    if (fence != atomic_load(&n->fenced)) {
        atomic_store(&n->fenced, fence);
        size_t led = 0;
        for (size_t j = 0; j < n->nparts; j++) {
            kpart_set_fenced(n->parts[j]->p, fence && n->parts[j]->leading);
            led += n->parts[j]->leading;
        }
        if (fence)
            klog__log_defer(n->k, KLOG_LOG_WARNING, KLOG_ENOTLEADER, "replication",
                            "no word from the controller (node %d) for %lld ms: the %zu partition(s) this node "
                            "leads take no writes until it is heard from again (another leader may have been "
                            "elected)",
                            (int)n->ctl_id, (long long)(now_ms - n->contact_ms), led);
        else
            klog__log_defer(n->k, KLOG_LOG_NOTICE, 0, "replication",
                            "the controller (node %d) is heard from again: writes taken", (int)n->ctl_id);
        atomic_fetch_add(&n->version, 1);
    }
    return fence ? now_ms + 10 : n->contact_ms + n->cfg.fence_after_ms + 1;
}

bool krep_node_fenced(krep_node *n) { return n && atomic_load(&n->fenced); }

/* The controller answered or ordered (n->mu held): a fence lifts at once. */
static void heard_from_controller(krep_node *n, int64_t now_ms)
{
    n->contact_ms = now_ms;
    (void)fence_check(n, now_ms);
}

int64_t krep_node_tick(krep_node *n, int64_t now_ms)
{
    pthread_mutex_lock(&n->mu);
    if (n->ngone)
        gone_sweep(n);
    int64_t wake = now_ms + (n->cfg.lag_max_ms / 4 > 1 ? n->cfg.lag_max_ms / 4 : 1);
    int64_t fw = fence_check(n, now_ms);
    if (fw < wake)
        wake = fw;
    for (size_t j = 0; j < n->nparts; j++) {
        krep_part *rp = n->parts[j];
        if (!rp->leading || rp->failed)
            continue;
        /* The leader's own part of the HW is its durable offset: records
         * appended without a sync (acks=0/1) count once synced. */
        if (kpart_durable_offset(rp->p) < kpart_end_offset(rp->p) && kpart_error(rp->p) == 0)
            kpart_sync(rp->p);
        if (!rp->proposing) {
            int32_t isr[KREP_MAX_NODES];
            int k = 0;
            bool shrink = false;
            for (int i = 0; i < rp->st.nisr; i++) {
                int32_t id = rp->st.isr[i];
                int ri = idx_of(&rp->st, id);
                if (id != n->cfg.node_id && ri >= 0 && now_ms - rp->rs[ri].caught_up_ms > n->cfg.lag_max_ms)
                    shrink = true;
                else
                    isr[k++] = id;
            }
            if (shrink)
                propose(rp, isr, k);
        }
        post_add(n, rp->p, hw_target(n, rp));
    }
    unlock_post(n);
    return wake;
}

/* ---- the controller's orders ------------------------------------------------------------ */

/* Apply one partition state (n->mu held); `addressed`: the push named
 * this incarnation (not -1).  Returns a Kafka error code. */
static int16_t apply_state(krep_node *n, krep_part *rp, const krep_pstate *ps, bool addressed, int64_t now_ms)
{
    if (ps->leader == n->cfg.node_id && !addressed)
        return KK_ERR_STALE_BROKER_EPOCH; /* leading needs a controller that knows this run */
    if (rp->known) {
        if (ps->leader_epoch < rp->st.leader_epoch ||
            (ps->leader_epoch == rp->st.leader_epoch && ps->partition_epoch < rp->st.partition_epoch))
            return KK_ERR_FENCED_LEADER_EPOCH; /* stale */
        if (ps->leader_epoch == rp->st.leader_epoch && ps->partition_epoch == rp->st.partition_epoch)
            return KK_ERR_NONE; /* already applied */
    }
    if (ps->nreplicas < 1 || ps->nreplicas > KREP_MAX_NODES || ps->nisr > KREP_MAX_NODES ||
        idx_of(ps, n->cfg.node_id) < 0 || ps->leader_epoch < 0)
        return KK_ERR_INVALID_REQUEST;
    if (rp->failed)
        return KK_ERR_KAFKA_STORAGE_ERROR;
    krep_pstate old = rp->st;
    bool was_known = rp->known;
    rp->st = *ps;
    rp->known = true;
    int64_t mi = klog__conf_int(rp->t->conf, KC_MIN_INSYNC_REPLICAS);
    if (mi <= 0)
        mi = n->cfg.min_isr;
    rp->min_isr = mi > 0 ? (int)mi : (ps->nreplicas < 2 ? ps->nreplicas : 2);
    if (rp->proposing && ps->partition_epoch > rp->prop_based)
        rp->proposing = false; /* the controller decided: a newer state */
    if (ps->leader == n->cfg.node_id) {
        if (!rp->leading || old.leader_epoch != ps->leader_epoch) {
            int rc = kpart_become_leader(rp->p, ps->leader_epoch);
            if (rc < 0) {
                rp->leading = false;
                rp->known = was_known;
                rp->st = old;
                if (rc != KLOG_EFENCED)
                    rp->failed = kpart_error(rp->p) != 0;
                post_add(n, rp->p, -1);
                return rc == KLOG_EFENCED ? KK_ERR_FENCED_LEADER_EPOCH : KK_ERR_KAFKA_STORAGE_ERROR;
            }
            rp->leading = true;
            rp->proposing = false;
            rp->epoch_start = kpart_end_offset(rp->p);
            for (int i = 0; i < KREP_MAX_NODES; i++)
                rp->rs[i] = (krep_rstate){ .leo = -1, .caught_up_ms = now_ms, .last_fetch_ms = now_ms,
                                           .last_fetch_leader_leo = -1 };
        } else {
            /* Same term, new ISR or replicas: the replicas' rows follow
             * their ids. */
            krep_rstate rs[KREP_MAX_NODES];
            for (int i = 0; i < ps->nreplicas; i++) {
                int oi = idx_of(&old, ps->replicas[i]);
                rs[i] = oi >= 0 ? rp->rs[oi]
                                : (krep_rstate){ .leo = -1, .caught_up_ms = now_ms, .last_fetch_ms = now_ms,
                                                 .last_fetch_leader_leo = -1 };
            }
            memcpy(rp->rs, rs, sizeof rs);
        }
        rp->fstate = F_IDLE;
        kpart_set_isr(rp->p, rp->st.nisr, rp->min_isr);
        post_add(n, rp->p, hw_target(n, rp));
        post_fail_if_short(n, rp);
    } else {
        if (rp->leading || !was_known || old.leader != ps->leader || old.leader_epoch != ps->leader_epoch) {
            int rc = kpart_become_follower(rp->p, ps->leader_epoch);
            if (rc < 0) {
                rp->failed = true;
                return KK_ERR_KAFKA_STORAGE_ERROR;
            }
            rp->leading = false;
            rp->proposing = false;
            rp->fstate = ps->leader >= 0 ? F_TRUNCATE : F_IDLE;
            rp->retry_ms = 0;
        }
        kpart_set_isr(rp->p, 0, 0);
        post_add(n, rp->p, -1);
    }
    return KK_ERR_NONE;
}

static void to_pstate(const kk_leader_and_isr_partition *q, krep_pstate *ps)
{
    memset(ps, 0, sizeof *ps);
    ps->leader = q->leader;
    ps->leader_epoch = q->leader_epoch;
    ps->partition_epoch = q->partition_epoch;
    ps->nreplicas = q->replicas.n > KREP_MAX_NODES ? KREP_MAX_NODES + 1 : q->replicas.n;
    for (int i = 0; i < q->replicas.n && i < KREP_MAX_NODES; i++)
        ps->replicas[i] = q->replicas.v[i];
    ps->nisr = q->isr.n > KREP_MAX_NODES ? KREP_MAX_NODES + 1 : q->isr.n;
    for (int i = 0; i < q->isr.n && i < KREP_MAX_NODES; i++)
        ps->isr[i] = q->isr.v[i];
}

int krep_handle_leader_and_isr(krep_node *n, const kk_leader_and_isr_req *q, int16_t version, int64_t now_ms,
                               krep_alloc_fn alloc, void *actx, kk_leader_and_isr_resp *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_lock(&n->mu);
    if (q->controller_epoch < n->ctl_epoch) {
        r->error_code = KK_ERR_STALE_CONTROLLER_EPOCH; /* a controller since replaced */
        unlock_post(n);
        return 0;
    }
    /* A new controller (a promote): it learns this run by registering.
     * Learnt before the broker epoch is looked at: a push meant for an
     * earlier run of this node still says who controls now, and this run
     * must register there, not with the controller it knew (perhaps
     * itself, from a state file older than the promote), or neither side
     * ever learns of the other. */
    if (q->controller_epoch > n->ctl_epoch || q->controller_id != n->ctl_id) {
        if (q->controller_id != n->ctl_id)
            n->registered = false;
        n->ctl_epoch = q->controller_epoch;
        n->ctl_id = q->controller_id;
        atomic_fetch_add(&n->version, 1);
    }
    if (version >= 2 && q->broker_epoch != n->cfg.incarnation && q->broker_epoch != -1) {
        /* Meant for another run of this node: this one registers. */
        n->registered = false;
        r->error_code = KK_ERR_STALE_BROKER_EPOCH;
        unlock_post(n);
        return 0;
    }
    bool addressed = version >= 2 && q->broker_epoch == n->cfg.incarnation;
    heard_from_controller(n, now_ms);
    size_t total = (size_t)(q->ungrouped_partition_states.n > 0 ? q->ungrouped_partition_states.n : 0);
    for (int i = 0; i < q->topic_states.n; i++)
        total += (size_t)q->topic_states.v[i].partition_states.n;
    kk_leader_and_isr_resp_partition *pe = alloc(actx, (total + 1) * sizeof *pe);
    if (!pe) {
        unlock_post(n);
        return -ENOMEM;
    }
    int k = 0;
    for (int t = -1; t < q->topic_states.n; t++) {
        const kk_leader_and_isr_partition *ps = t < 0 ? q->ungrouped_partition_states.v : q->topic_states.v[t].partition_states.v;
        int np = t < 0 ? (q->ungrouped_partition_states.n > 0 ? q->ungrouped_partition_states.n : 0)
                       : q->topic_states.v[t].partition_states.n;
        for (int j = 0; j < np; j++) {
            kk_str name = t < 0 ? ps[j].topic_name : q->topic_states.v[t].topic_name;
            kk_leader_and_isr_resp_partition *e = &pe[k++];
            e->topic_name = name;
            e->partition_index = ps[j].partition_index;
            if (name.p && (int32_t)strlen(name.p) == name.len && ps[j].replicas.n >= 1 &&
                ps[j].replicas.n <= KREP_MAX_NODES) {
                krep_pstate ms;
                to_pstate(&ps[j], &ms);
                if (idx_of(&ms, n->cfg.node_id) < 0) {
                    /* not a replica here: what Metadata says of it */
                    e->error_code = meta_put(n, name.p, ps[j].partition_index, &ms);
                    continue;
                }
            }
            krep_part *rp = name.p && (int32_t)strlen(name.p) == name.len ? part_get(n, name.p, ps[j].partition_index) : NULL;
            if (!rp) {
                e->error_code = KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            krep_pstate st;
            to_pstate(&ps[j], &st);
            krep_pstate before = rp->st;
            bool known = rp->known;
            e->error_code = apply_state(n, rp, &st, addressed, now_ms);
            if (!known || memcmp(&before, &rp->st, sizeof before) != 0)
                atomic_fetch_add(&n->version, 1);
        }
    }
    r->partition_errors.v = pe;
    r->partition_errors.n = k;
    unlock_post(n);
    return 0;
}

/* ---- the leader: a replica's fetch ---------------------------------------------------------- */

static int16_t epoch_check(int32_t asked, int32_t have)
{
    if (asked < 0 || asked == have)
        return KK_ERR_NONE;
    return asked < have ? KK_ERR_FENCED_LEADER_EPOCH : KK_ERR_UNKNOWN_LEADER_EPOCH;
}

int16_t krep_replica_fetch(krep_node *n, const char *topic, int32_t partition, int32_t replica_id,
                           int32_t current_leader_epoch, int64_t fetch_offset, int64_t now_ms, kpart **p)
{
    *p = NULL;
    pthread_mutex_lock(&n->mu);
    int16_t err = KK_ERR_NONE;
    krep_part *rp = part_find(n, topic, partition);
    int i = rp ? idx_of(&rp->st, replica_id) : -1;
    if (!rp || !rp->known)
        err = rp ? KK_ERR_NOT_LEADER_OR_FOLLOWER : KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
    else if (!rp->leading || rp->failed)
        err = KK_ERR_NOT_LEADER_OR_FOLLOWER;
    else if ((err = epoch_check(current_leader_epoch, rp->st.leader_epoch)) != KK_ERR_NONE)
        ;
    else if (i < 0 || replica_id == n->cfg.node_id)
        err = KK_ERR_NOT_LEADER_OR_FOLLOWER; /* Kafka: "not a replica" */
    else if (fetch_offset < kpart_start_offset(rp->p) || fetch_offset > kpart_end_offset(rp->p))
        err = KK_ERR_OFFSET_OUT_OF_RANGE;
    if (err == KK_ERR_OFFSET_OUT_OF_RANGE)
        *p = rp->p; /* the answer carries its log start and HW: the follower acts on them */
    if (err == KK_ERR_NONE) {
        /* Only a fetch of this epoch says what the replica holds: it
         * truncated to where it parts from this log before asking. */
        if (current_leader_epoch == rp->st.leader_epoch)
            follower_fetched(n, rp, i, fetch_offset, now_ms);
        *p = rp->p;
    }
    unlock_post(n);
    return err;
}

/* ---- OffsetForLeaderEpoch (any node; a leader for replicas) ---------------------------------- */

int krep_handle_offset_for_leader_epoch(krep_node *n, struct klog *k, const kk_offset_for_leader_epoch_req *q,
                                        krep_alloc_fn alloc, void *actx, kk_offset_for_leader_epoch_resp *r)
{
    memset(r, 0, sizeof *r);
    if (!k && n)
        k = n->k;
    kk_offset_for_leader_epoch_resp_topic *ts = alloc(actx, ((size_t)q->topics.n + 1) * sizeof *ts);
    if (!ts)
        return -ENOMEM;
    for (int i = 0; i < q->topics.n; i++) {
        const kk_offset_for_leader_epoch_req_topic *qt = &q->topics.v[i];
        int np = qt->partitions.n;
        kk_offset_for_leader_epoch_resp_partition *ps = alloc(actx, ((size_t)np + 1) * sizeof *ps);
        if (!ps)
            return -ENOMEM;
        ts[i].topic = qt->topic;
        ts[i].partitions.v = ps;
        ts[i].partitions.n = np;
        bool name_ok = qt->topic.p && (int32_t)strlen(qt->topic.p) == qt->topic.len;
        kt_topic *t = name_ok ? klog__topic_get(k, qt->topic.p) : NULL;
        for (int j = 0; j < np; j++) {
            const kk_offset_for_leader_epoch_req_partition *qp = &qt->partitions.v[j];
            kk_offset_for_leader_epoch_resp_partition *rp = &ps[j];
            rp->partition = qp->partition;
            rp->leader_epoch = -1;
            rp->end_offset = -1;
            if (!t || qp->partition < 0 || qp->partition >= atomic_load_explicit(&t->nparts, memory_order_acquire)) {
                rp->error_code = name_ok ? KK_ERR_UNKNOWN_TOPIC_OR_PARTITION : KK_ERR_INVALID_TOPIC_EXCEPTION;
                continue;
            }
            kpart *p = t->parts[qp->partition];
            int32_t have = kpart_leader_epoch(p);
            bool leads = kpart_role(p) == KPART_LEADER;
            if (n) {
                pthread_mutex_lock(&n->mu);
                krep_part *x = part_find(n, t->name, qp->partition);
                if (x) {
                    leads = x->leading && !x->failed;
                    have = x->st.leader_epoch;
                }
                pthread_mutex_unlock(&n->mu);
            }
            if (!leads) {
                rp->error_code = KK_ERR_NOT_LEADER_OR_FOLLOWER;
                continue;
            }
            if ((rp->error_code = epoch_check(qp->current_leader_epoch, have)) != KK_ERR_NONE)
                continue;
            kpart_end_offset_for_epoch(p, qp->leader_epoch, &rp->leader_epoch, &rp->end_offset);
        }
        if (t)
            klog__topic_put(t);
    }
    r->topics.v = ts;
    r->topics.n = q->topics.n;
    return 0;
}

/* ---- channels: building requests ---------------------------------------------------------------- */

int krep_node_dests(krep_node *n, int32_t *out, int cap)
{
    pthread_mutex_lock(&n->mu);
    int k = 0;
    if (k < cap)
        out[k] = KREP_DST_CTL;
    k++;
    for (int i = 0; i < n->cfg.npeers; i++) {
        int32_t id = n->cfg.peers[i].id;
        if (id == n->cfg.node_id)
            continue;
        bool follows = false;
        for (size_t j = 0; j < n->nparts && !follows; j++) {
            krep_part *rp = n->parts[j];
            follows = rp->known && !rp->leading && rp->st.leader == id;
        }
        if (follows) {
            if (k < cap)
                out[k] = id;
            k++;
        }
    }
    pthread_mutex_unlock(&n->mu);
    return k;
}

bool krep_chan_busy(krep_node *n, int32_t dst)
{
    pthread_mutex_lock(&n->mu);
    krep_chan *ch = chan_of(n, dst);
    bool b = ch && ch->busy;
    pthread_mutex_unlock(&n->mu);
    return b;
}

int krep_encode_request(kk_wbuf *w, int16_t key, int16_t version, int32_t corr, const void *body)
{
    kk_wbuf_reset(w);
    kk_req_header h = { key, version, corr, KK_STR(KREP_CLIENT_ID) };
    return kk_request_encode(w, &h, body);
}

/* Registration (and heartbeats: again every heartbeat_ms), or the ISR
 * proposals not yet sent (n->mu held). */
static int ctl_request(krep_node *n, krep_chan *ch, kk_wbuf *w, int64_t now_ms, int64_t *wake)
{
    kk_alter_partition_req q = { .broker_id = n->cfg.node_id, .broker_epoch = n->cfg.incarnation };
    ch->nparts = 0;
    ch->registering = !n->registered || now_ms - n->registered_ms >= n->cfg.heartbeat_ms;
    if (!ch->registering) {
        /* one topic entry per proposal: the controller takes repeats */
        kk_alter_partition_req_topic *ts = NULL;
        int nt = 0;
        for (size_t j = 0; j < n->nparts && ch->nparts < KREP_CHAN_PARTS; j++) {
            krep_part *rp = n->parts[j];
            if (!rp->leading || !rp->proposing || rp->prop_sent || rp->prop_blocked)
                continue;
            if (!ts && !(ts = krep_mem_alloc(&n->mem, n->nparts * sizeof *ts)))
                return -ENOMEM;
            kk_alter_partition_req_partition *pp = krep_mem_alloc(&n->mem, sizeof *pp);
            if (!pp)
                return -ENOMEM;
            pp->partition_index = rp->index;
            pp->leader_epoch = rp->st.leader_epoch;
            pp->new_isr.v = rp->prop;
            pp->new_isr.n = rp->nprop;
            pp->partition_epoch = rp->prop_based;
            ts[nt].name = KK_STR(rp->t->name);
            ts[nt].partitions.v = pp;
            ts[nt].partitions.n = 1;
            nt++;
            rp->prop_sent = true;
            ch->parts[ch->nparts++] = rp;
        }
        if (nt == 0) {
            *wake = n->registered_ms + n->cfg.heartbeat_ms;
            return 0;
        }
        q.topics.v = ts;
        q.topics.n = nt;
    }
    ch->key = KK_API_ALTER_PARTITION;
    ch->version = 0;
    ch->corr = ++n->corr;
    int rc = krep_encode_request(w, ch->key, ch->version, ch->corr, &q);
    return rc < 0 ? rc : 1;
}

/* The epoch of the last record a follower holds, what it asks its leader
 * about (the cache's latest may be an epoch whose first batch never
 * landed: asking about it would not move). */
static int32_t last_epoch(kpart *p)
{
    int64_t end = kpart_end_offset(p), start = kpart_start_offset(p);
    return end > start ? kpart_epoch_for_offset(p, end - 1) : -1;
}

/* OffsetForLeaderEpoch for the partitions truncating, else a Fetch for
 * those fetching, from leader dst (n->mu held). */
static int leader_request(krep_node *n, krep_chan *ch, kk_wbuf *w, int64_t now_ms, int64_t *wake)
{
    ch->nparts = 0;
    bool trunc = false;
    for (size_t j = 0; j < n->nparts; j++) {
        krep_part *rp = n->parts[j];
        if (!rp->known || rp->leading || rp->failed || rp->st.leader != ch->dst || rp->fstate != F_TRUNCATE)
            continue;
        if (rp->retry_ms > now_ms) {
            if (rp->retry_ms < *wake)
                *wake = rp->retry_ms;
            continue;
        }
        if (last_epoch(rp->p) < 0) {
            rp->fstate = F_FETCH; /* an empty log cannot part from the leader's */
            continue;
        }
        trunc = true;
    }
    kk_str *names = krep_mem_alloc(&n->mem, (n->nparts + 1) * sizeof *names);
    if (!names)
        return -ENOMEM;
    if (trunc) {
        kk_offset_for_leader_epoch_req q = { .replica_id = n->cfg.node_id };
        kk_offset_for_leader_epoch_req_topic *ts = krep_mem_alloc(&n->mem, n->nparts * sizeof *ts);
        if (!ts)
            return -ENOMEM;
        int nt = 0;
        for (size_t j = 0; j < n->nparts && ch->nparts < KREP_CHAN_PARTS; j++) {
            krep_part *rp = n->parts[j];
            if (!rp->known || rp->leading || rp->failed || rp->st.leader != ch->dst || rp->fstate != F_TRUNCATE ||
                rp->retry_ms > now_ms)
                continue;
            kk_offset_for_leader_epoch_req_partition *pp = krep_mem_alloc(&n->mem, sizeof *pp);
            if (!pp)
                return -ENOMEM;
            pp->partition = rp->index;
            pp->current_leader_epoch = rp->st.leader_epoch;
            pp->leader_epoch = last_epoch(rp->p);
            ts[nt] = (kk_offset_for_leader_epoch_req_topic){ KK_STR(rp->t->name), { pp, 1 } };
            nt++;
            int k = ch->nparts++;
            ch->parts[k] = rp;
            ch->asked[k] = kpart_end_offset(rp->p);
            ch->cur_epoch[k] = rp->st.leader_epoch;
            ch->ask_epoch[k] = pp->leader_epoch;
        }
        q.topics.v = ts;
        q.topics.n = nt;
        ch->key = KK_API_OFFSET_FOR_LEADER_EPOCH;
        ch->version = 3;
        ch->corr = ++n->corr;
        int rc = krep_encode_request(w, ch->key, ch->version, ch->corr, &q);
        return rc < 0 ? rc : 1;
    }
    kk_fetch_req q = { .replica_id = n->cfg.node_id, .max_wait_ms = n->cfg.fetch_wait_max_ms, .min_bytes = 1,
                       .max_bytes = n->cfg.fetch_max_bytes, .session_epoch = -1, .rack_id = KK_STR("") };
    kk_fetch_req_topic *ts = krep_mem_alloc(&n->mem, (n->nparts + 1) * sizeof *ts);
    if (!ts)
        return -ENOMEM;
    int nt = 0;
    for (size_t j = 0; j < n->nparts && ch->nparts < KREP_CHAN_PARTS; j++) {
        krep_part *rp = n->parts[j];
        if (!rp->known || rp->leading || rp->failed || rp->st.leader != ch->dst || rp->fstate != F_FETCH)
            continue;
        if (rp->retry_ms > now_ms) {
            if (rp->retry_ms < *wake)
                *wake = rp->retry_ms;
            continue;
        }
        if (kpart_error(rp->p)) {
            rp->failed = true; /* its log turned read-only: it can copy nothing */
            continue;
        }
        /* The fetch offset says what this replica holds on disk: records
         * it wrote unsynced while it led (acks=1, or an append whose sync
         * its leadership ended during) are synced first, or a crash could
         * lose records the leader counted it for. */
        if (kpart_durable_offset(rp->p) < kpart_end_offset(rp->p) && kpart_sync(rp->p) < 0) {
            rp->failed = kpart_error(rp->p) != 0;
            rp->retry_ms = now_ms + n->cfg.fetch_backoff_ms;
            continue;
        }
        kk_fetch_req_partition *pp = krep_mem_alloc(&n->mem, sizeof *pp);
        if (!pp)
            return -ENOMEM;
        pp->partition = rp->index;
        pp->current_leader_epoch = rp->st.leader_epoch;
        pp->fetch_offset = kpart_end_offset(rp->p);
        pp->log_start_offset = kpart_start_offset(rp->p);
        pp->partition_max_bytes = n->cfg.fetch_max_bytes;
        ts[nt] = (kk_fetch_req_topic){ KK_STR(rp->t->name), { pp, 1 } };
        nt++;
        int k = ch->nparts++;
        ch->parts[k] = rp;
        ch->asked[k] = pp->fetch_offset;
        ch->cur_epoch[k] = rp->st.leader_epoch;
    }
    if (nt == 0)
        return 0;
    q.topics.v = ts;
    q.topics.n = nt;
    ch->key = KK_API_FETCH;
    ch->version = 11;
    ch->corr = ++n->corr;
    int rc = krep_encode_request(w, ch->key, ch->version, ch->corr, &q);
    return rc < 0 ? rc : 1;
}

int krep_chan_next(krep_node *n, int32_t dst, int64_t now_ms, kk_wbuf *w, int64_t *wake_ms)
{
    *wake_ms = INT64_MAX;
    pthread_mutex_lock(&n->mu);
    krep_chan *ch = chan_of(n, dst);
    int rc = 0;
    if (!ch || ch->busy || (dst != KREP_DST_CTL && dst == n->cfg.node_id)) {
        pthread_mutex_unlock(&n->mu);
        return 0;
    }
    if (now_ms < ch->backoff_until) {
        *wake_ms = ch->backoff_until;
        pthread_mutex_unlock(&n->mu);
        return 0;
    }
    krep_mem_reset(&n->mem);
    rc = dst == KREP_DST_CTL ? ctl_request(n, ch, w, now_ms, wake_ms) : leader_request(n, ch, w, now_ms, wake_ms);
    if (rc == 1)
        ch->busy = true;
    else if (rc < 0)
        ch->nparts = 0;
    krep_mem_reset(&n->mem);
    pthread_mutex_unlock(&n->mu);
    return rc;
}

/* ---- channels: responses ----------------------------------------------------------------------- */

static void backoff(krep_node *n, krep_part *rp, int64_t now_ms)
{
    rp->retry_ms = now_ms + n->cfg.fetch_backoff_ms;
}

/* Has the partition moved on since it was asked about (n->mu held)? */
static bool stale(const krep_chan *ch, int k, int fstate)
{
    const krep_part *rp = ch->parts[k];
    return !rp->known || rp->leading || rp->failed || rp->st.leader != ch->dst || rp->st.leader_epoch != ch->cur_epoch[k] ||
           rp->fstate != fstate || kpart_end_offset(rp->p) != ch->asked[k];
}

/* Append the wire batches of a fetch answer to rp's log (n->mu held).
 * Returns 0, or the error that sends it back to truncation (> 0 never). */
static int follower_append(krep_node *n, krep_part *rp, const kk_records *rec, int64_t asked)
{
    if (!rec->p || rec->len <= 0)
        return 0;
    const uint8_t *w = rec->p;
    size_t len = (size_t)rec->len, off = 0, need = 0;
    unsigned nb = 0;
    while (off < len) {
        kf_batch_info bi;
        ssize_t sz = kf_wire_parse(w + off, len - off, &bi);
        if (sz == 0)
            break; /* a partial batch at the end: the next fetch brings it */
        if (sz < 0)
            return KLOG_ECORRUPT;
        if (kf_batch_last_offset(&bi) >= asked) {
            nb++;
            need += (size_t)sz + 4;
        }
        off += (size_t)sz;
    }
    if (nb == 0)
        return 0;
    if (need > n->bufcap) {
        uint8_t *nbuf = realloc(n->buf, need);
        if (!nbuf)
            return -ENOMEM;
        n->buf = nbuf;
        n->bufcap = need;
    }
    ks_batch bs[256];
    unsigned k = 0;
    size_t boff = 0;
    bool first = true;
    off = 0;
    int rc = 0;
    while (off < len && rc == 0) {
        kf_batch_info bi;
        ssize_t sz = kf_wire_parse(w + off, len - off, &bi);
        if (sz <= 0)
            break;
        if (kf_batch_last_offset(&bi) >= asked) {
            /* The answer starts where this log ends, or past it: the
             * leader's log has a gap there (compaction), copied as it is.
             * A batch across the end: the logs parted, unless this log is
             * empty (it started again at its leader's log start, which
             * falls inside that batch). */
            if (first && bi.base_offset < asked &&
                !(kpart_start_offset(rp->p) == asked && kpart_end_offset(rp->p) == asked))
                return KLOG_EOFFSET; /* (an empty log starts again at the batch: kpart_append_replica) */
            first = false;
            size_t out;
            rc = kf_wire_to_batch(w + off, (size_t)sz, NULL, n->buf + boff, (size_t)sz + 4, &out);
            if (rc < 0)
                return rc;
            bs[k++] = (ks_batch){ n->buf + boff, out, -1, 0 };
            boff += out;
            if (k == 256) {
                rc = kpart_append_replica(rp->p, bs, k, KS_APPEND_SYNC);
                k = 0;
                boff = 0;
            }
        }
        off += (size_t)sz;
    }
    if (rc == 0 && k > 0)
        rc = kpart_append_replica(rp->p, bs, k, KS_APPEND_SYNC);
    return rc;
}

/* Kafka's truncateFullyAndStartAt (n->mu held): this log ends at or below
 * its leader's log start, so everything it holds goes and it starts
 * again, empty, at `start` (>= its end); the next fetch asks from there. */
static void start_at_leader(krep_node *n, krep_part *rp, int64_t start, int64_t now_ms)
{
    int64_t from = kpart_start_offset(rp->p), to = kpart_end_offset(rp->p);
    int rc = kpart_truncate_fully(rp->p, start);
    if (rc < 0) {
        rp->failed = kpart_error(rp->p) != 0;
        backoff(n, rp, now_ms);
        return;
    }
    if (from < to)
        klog__log_defer(n->k, KLOG_LOG_NOTICE, 0, "replication",
                        "%s-%d: offsets %" PRId64 "-%" PRId64 " lie below the log start %" PRId64 " of leader %d "
                        "(epoch %d): removed, the log starts again at %" PRId64,
                        rp->t->name, rp->index, from, to - 1, start, rp->st.leader, rp->st.leader_epoch, start);
    post_add(n, rp->p, start);
}

static void fetch_response(krep_node *n, krep_chan *ch, const kk_fetch_resp *r, int64_t now_ms)
{
    bool got = false;
    for (int k = 0; k < ch->nparts; k++) {
        krep_part *rp = ch->parts[k];
        const kk_fetch_resp_partition *pr = NULL;
        for (int i = 0; i < r->responses.n && !pr; i++) {
            const kk_fetch_resp_topic *t = &r->responses.v[i];
            if (!t->topic.p || strcmp(t->topic.p, rp->t->name) != 0)
                continue;
            for (int j = 0; j < t->partitions.n; j++)
                if (t->partitions.v[j].partition_index == rp->index) {
                    pr = &t->partitions.v[j];
                    break;
                }
        }
        if (!pr || stale(ch, k, F_FETCH))
            continue;
        int16_t e = r->error_code ? r->error_code : pr->error_code;
        if (e == KK_ERR_OFFSET_OUT_OF_RANGE && pr->log_start_offset > ch->asked[k]) {
            /* Below the leader's log start (its retention or DeleteRecords
             * removed what this log still needs): start again there. */
            start_at_leader(n, rp, pr->log_start_offset, now_ms);
            continue;
        }
        if (e == KK_ERR_OFFSET_OUT_OF_RANGE) {
            rp->fstate = F_TRUNCATE; /* past the leader's end: where do the logs part? */
            continue;
        }
        if (e != KK_ERR_NONE) {
            backoff(n, rp, now_ms);
            continue;
        }
        if (pr->log_start_offset >= ch->asked[k] && kpart_start_offset(rp->p) < ch->asked[k]) {
            /* Everything this log holds lies below its leader's log start
             * (a power cut part way through starting again there left the
             * old records, or the leader deleted up to its end): it goes
             * now, HW or not, so that a first batch across the leader's
             * start can start the log again at its base. */
            start_at_leader(n, rp, ch->asked[k], now_ms);
            if (kpart_start_offset(rp->p) < ch->asked[k])
                continue;
        }
        int rc = follower_append(n, rp, &pr->records, ch->asked[k]);
        if (rc == KLOG_EFENCED || rc == KLOG_EOFFSET || rc == KLOG_ECORRUPT) {
            rp->fstate = F_TRUNCATE;
            continue;
        }
        if (rc < 0) {
            rp->failed = kpart_error(rp->p) != 0;
            backoff(n, rp, now_ms);
            continue;
        }
        int64_t leo = kpart_end_offset(rp->p);
        if (leo > ch->asked[k])
            got = true;
        /* A follower's HW: what its leader says is committed, as far as
         * it holds it. */
        int64_t hw = pr->high_watermark < leo ? pr->high_watermark : leo;
        if (pr->high_watermark >= 0)
            rp->leader_hw = pr->high_watermark;
        if (hw >= 0)
            post_add(n, rp->p, hw);
        if (pr->log_start_offset > kpart_start_offset(rp->p))
            post_start(n, rp->p, pr->log_start_offset);
    }
    if (!got && n->cfg.fetch_wait_max_ms <= 0)
        ch->backoff_until = now_ms + n->cfg.fetch_backoff_ms;
}

/* Say what a follower's truncation dropped, [from, to): offsets and
 * count (the log's callback, deferred: n->mu is held).  Records below the
 * HW it had were committed: only an unclean election takes those. */
static void truncated_log(krep_node *n, krep_part *rp, int64_t from, int64_t to, int64_t hw)
{
    if (from >= to)
        return;
    bool committed = from < hw;
    klog__log_defer(n->k, committed ? KLOG_LOG_WARNING : KLOG_LOG_NOTICE, 0, "replication",
                    "%s-%d: truncated offsets %" PRId64 "-%" PRId64 " (%" PRId64 " offset%s) to follow leader %d in "
                    "epoch %d (its HW %" PRId64 "%s)",
                    rp->t->name, rp->index, from, to - 1, to - from, to - from == 1 ? "" : "s", rp->st.leader,
                    rp->st.leader_epoch, hw,
                    committed ? ": records below it were committed, lost by an unclean election" : "");
}

static void ofle_response(krep_node *n, krep_chan *ch, const kk_offset_for_leader_epoch_resp *r, int64_t now_ms)
{
    for (int k = 0; k < ch->nparts; k++) {
        krep_part *rp = ch->parts[k];
        const kk_offset_for_leader_epoch_resp_partition *pr = NULL;
        for (int i = 0; i < r->topics.n && !pr; i++) {
            const kk_offset_for_leader_epoch_resp_topic *t = &r->topics.v[i];
            if (!t->topic.p || strcmp(t->topic.p, rp->t->name) != 0)
                continue;
            for (int j = 0; j < t->partitions.n; j++)
                if (t->partitions.v[j].partition == rp->index) {
                    pr = &t->partitions.v[j];
                    break;
                }
        }
        if (!pr || stale(ch, k, F_TRUNCATE) || last_epoch(rp->p) != ch->ask_epoch[k])
            continue;
        if (pr->error_code != KK_ERR_NONE) {
            backoff(n, rp, now_ms);
            continue;
        }
        int64_t leo = kpart_end_offset(rp->p), target;
        bool done = true;
        if (pr->end_offset < 0 || pr->leader_epoch < 0) {
            /* The leader knows no epoch at or below ours (Kafka's
             * fallback): keep only what is known committed. */
            target = kpart_high_watermark(rp->p);
        } else {
            int32_t fe;
            int64_t fend;
            kpart_end_offset_for_epoch(rp->p, pr->leader_epoch, &fe, &fend);
            if (fe < 0 || fend < 0) {
                target = pr->end_offset; /* nothing here at or below its epoch */
            } else if (fe != pr->leader_epoch) {
                /* This log lacks the leader's epoch: cut back to the end of
                 * the largest one below it that it has, and ask again. */
                target = fend;
                done = false;
            } else {
                target = pr->end_offset < fend ? pr->end_offset : fend;
            }
        }
        if (target > leo)
            target = leo;
        if (target < kpart_start_offset(rp->p))
            target = kpart_start_offset(rp->p);
        if (target < leo) {
            int64_t hw = kpart_high_watermark(rp->p), ne = -1;
            int rc = kpart_truncate_to(rp->p, target, &ne);
            if (rc < 0) {
                rp->failed = kpart_error(rp->p) != 0;
                backoff(n, rp, now_ms);
                continue;
            }
            truncated_log(n, rp, ne >= 0 ? ne : kpart_end_offset(rp->p), leo, hw);
        }
        if (done || kpart_end_offset(rp->p) >= leo)
            rp->fstate = F_FETCH;
    }
}

static void alter_response(krep_node *n, krep_chan *ch, const kk_alter_partition_resp *r, int64_t now_ms)
{
    if (ch->registering) {
        if (r->error_code == KK_ERR_NONE) {
            n->registered = true;
            n->registered_ms = now_ms;
            heard_from_controller(n, now_ms);
        } else {
            n->registered = false;
            ch->backoff_until = now_ms + n->cfg.fetch_backoff_ms;
        }
        return;
    }
    if (r->error_code == KK_ERR_STALE_BROKER_EPOCH)
        n->registered = false;
    for (int k = 0; k < ch->nparts; k++) {
        krep_part *rp = ch->parts[k];
        const kk_alter_partition_resp_partition *pr = NULL;
        for (int i = 0; i < r->topics.n && !pr; i++) {
            const kk_alter_partition_resp_topic *t = &r->topics.v[i];
            if (!t->name.p || strcmp(t->name.p, rp->t->name) != 0)
                continue;
            for (int j = 0; j < t->partitions.n; j++)
                if (t->partitions.v[j].partition_index == rp->index) {
                    pr = &t->partitions.v[j];
                    break;
                }
        }
        if (!rp->proposing || !rp->prop_sent)
            continue;
        int16_t e = r->error_code != KK_ERR_NONE ? r->error_code : pr ? pr->error_code : KK_ERR_NONE;
        if (e == KK_ERR_REQUEST_TIMED_OUT || e == KK_ERR_NOT_CONTROLLER) {
            /* The quorum controller: proposed, not applied yet (or not the
             * controller any more): ask again, the answer or a newer state
             * ends it. */
            rp->prop_sent = false;
            ch->backoff_until = now_ms + n->cfg.fetch_backoff_ms;
            continue;
        }
        if (!pr || r->error_code != KK_ERR_NONE || pr->error_code != KK_ERR_NONE) {
            /* Not applied, or applied by an earlier copy: the controller's
             * newer state (its LeaderAndIsr) ends the proposal either way;
             * until then it keeps counting in the maximal ISR. */
            if (pr && pr->error_code == KK_ERR_STALE_BROKER_EPOCH)
                n->registered = false;
            rp->prop_blocked = true;
            continue;
        }
        if (pr->leader_epoch != rp->st.leader_epoch || pr->partition_epoch <= rp->st.partition_epoch ||
            pr->isr.n < 1 || pr->isr.n > KREP_MAX_NODES)
            continue;
        rp->st.nisr = pr->isr.n;
        memcpy(rp->st.isr, pr->isr.v, (size_t)pr->isr.n * sizeof *pr->isr.v);
        rp->st.partition_epoch = pr->partition_epoch;
        rp->proposing = false;
        atomic_fetch_add(&n->version, 1);
        kpart_set_isr(rp->p, rp->st.nisr, rp->min_isr);
        post_add(n, rp->p, hw_target(n, rp));
        post_fail_if_short(n, rp);
    }
}

int krep_chan_response(krep_node *n, int32_t dst, const void *frame, size_t len, int64_t now_ms)
{
    pthread_mutex_lock(&n->mu);
    krep_chan *ch = chan_of(n, dst);
    if (!ch || !ch->busy || len < 4) {
        pthread_mutex_unlock(&n->mu);
        return 1;
    }
    const uint8_t *f = frame;
    int32_t corr = (int32_t)((uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 | f[3]);
    if (corr != ch->corr) {
        pthread_mutex_unlock(&n->mu);
        return 1;
    }
    kk_response resp;
    int rc = kk_response_decode(frame, len, ch->key, ch->version, NULL, &n->arena, &resp);
    ch->busy = false;
    if (rc < 0) {
        ch->backoff_until = now_ms + n->cfg.fetch_backoff_ms;
        for (int k = 0; k < ch->nparts; k++)
            if (ch->key == KK_API_ALTER_PARTITION)
                ch->parts[k]->prop_sent = false;
        ch->nparts = 0;
        pthread_mutex_unlock(&n->mu);
        return KLOG_ECORRUPT;
    }
    switch (ch->key) {
    case KK_API_FETCH: fetch_response(n, ch, &resp.body.fetch, now_ms); break;
    case KK_API_OFFSET_FOR_LEADER_EPOCH: ofle_response(n, ch, &resp.body.offset_for_leader_epoch, now_ms); break;
    case KK_API_ALTER_PARTITION: alter_response(n, ch, &resp.body.alter_partition, now_ms); break;
    default: break;
    }
    ch->nparts = 0;
    kk_arena_reset(&n->arena);
    unlock_post(n);
    return 0;
}

void krep_chan_failed(krep_node *n, int32_t dst, int64_t now_ms)
{
    pthread_mutex_lock(&n->mu);
    krep_chan *ch = chan_of(n, dst);
    if (ch && ch->busy) {
        ch->busy = false;
        if (ch->key == KK_API_ALTER_PARTITION)
            for (int k = 0; k < ch->nparts; k++)
                ch->parts[k]->prop_sent = false; /* send it again: the controller takes repeats */
        ch->nparts = 0;
        ch->backoff_until = now_ms + n->cfg.fetch_backoff_ms / 10;
    }
    pthread_mutex_unlock(&n->mu);
}

/* ---- topics deleted through the controller ------------------------------------------------ */

/* Free the forgotten partitions no request in flight names (n->mu held). */
static void gone_sweep(krep_node *n)
{
    size_t k = 0;
    for (size_t i = 0; i < n->ngone; i++) {
        krep_part *rp = n->gone[i];
        bool named = false;
        for (int c = 0; c <= n->cfg.npeers && !named; c++)
            for (int j = 0; n->chans[c].busy && j < n->chans[c].nparts && !named; j++)
                named = n->chans[c].parts[j] == rp;
        if (named) {
            n->gone[k++] = rp;
        } else {
            klog__topic_put(rp->t);
            free(rp);
        }
    }
    n->ngone = k;
}

int krep_node_forget(krep_node *n, const char *topic)
{
    pthread_mutex_lock(&n->mu);
    int rc = 0;
    size_t k = 0;
    for (size_t i = 0; i < n->nparts; i++) {
        krep_part *rp = n->parts[i];
        if (strcmp(rp->t->name, topic) != 0) {
            n->parts[k++] = rp;
            continue;
        }
        if (klog__vec_reserve(&n->gone, &n->gonecap, n->ngone + 1, sizeof *n->gone) < 0) {
            n->parts[k++] = rp; /* kept: forgotten at the next try */
            rc = -ENOMEM;
            continue;
        }
        /* a request in flight that names it finds it stale (not known,
         * failed) and leaves it */
        rp->known = false;
        rp->failed = true;
        rp->leading = false;
        n->gone[n->ngone++] = rp;
    }
    n->nparts = k;
    k = 0;
    for (size_t i = 0; i < n->nmeta; i++) {
        krep_meta *m = n->meta[i];
        if (strcmp(m->topic, topic) != 0 ||
            klog__vec_reserve(&n->gone_meta, &n->gone_metacap, n->ngone_meta + 1, sizeof *n->gone_meta) < 0)
            n->meta[k++] = m;
        else
            n->gone_meta[n->ngone_meta++] = m;
    }
    n->nmeta = k;
    gone_sweep(n);
    atomic_fetch_add(&n->version, 1);
    pthread_mutex_unlock(&n->mu);
    return rc;
}
