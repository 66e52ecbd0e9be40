/*
 * lib/replication/module.c - replication as a module of an instance
 * (klog_open with replication.peers set): the engine of node.c driven by
 * threads over real transports, the static controller, its state file,
 * and what the server and the public API call (klog_replication_*).
 *
 * Static controller.  The node that leads is also the controller of the
 * cluster (it hosts a krep_ctl): it tells the others who leads, decides
 * the ISR its own leader side proposes, and writes the states it decides
 * in DIR/replication.state before anyone hears of them.  A new cluster is
 * led by replication.leader (default: the lowest node id).  klog promote
 * (klog_replication_promote) makes another node the controller and the
 * leader, in a new controller epoch and new leader epochs, from what that
 * node last knew; its pushes fence the old controller and leader as soon
 * as they reach it (a LeaderAndIsr of a newer controller epoch), and
 * nodes refuse the pushes of an older one.  Every node writes what it was
 * last told into DIR/replication.state too, so that a restarted node knows
 * its controller, and a promoted one the state to start from.
 *
 * The file (text, written atomically: ks_write_atomic):
 *   klog-replication 1
 *   controller ID EPOCH
 *   partition TOPIC INDEX LEADER LEADER_EPOCH PARTITION_EPOCH R r1 .. rR I i1 .. iI
 *   end
 *
 * Threads (started with the module, joined at its stop):
 *   klog-repl-fetch  one per peer: the node's channel to that peer (Fetch,
 *                    OffsetForLeaderEpoch when it follows it);
 *   klog-repl-ctl    the node's channel to its controller (registration,
 *                    heartbeats, ISR proposals), served in-process when the
 *                    controller is this node;
 *   klog-repl-push   one per node, this one included, while this node is
 *                    the controller: LeaderAndIsr to that node;
 *   klog-repl-tick   krep_node_tick, new topics, the controller's handover.
 * Each channel has its own connection (a fetch long-polls; registration
 * and pushes must not wait behind it).  They hold no klog lock between
 * calls, as the threading model asks of network threads.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <klog/replication.h>
#include <klog/topic.h>
#include <klog/transport.h>

#include "common/common.h"
#include "common/conf.h"
#include "common/sbuf.h"
#include "partition/partition.h"
#include "replication/conf_keys.h"
#include "replication/internal.h"
#include "replication/module.h"
#include "server/conf_keys.h"
#include "storage/storage.h"
#include "topic/topic.h"

#define STATE_FILE "replication.state"
#define STATE_MAX (1u << 20)
#define MAX_RUNNERS (2 * KREP_MAX_NODES + 1)
#define CONNECT_MS 1000
#define IDLE_MS 50

enum { R_FETCH, R_CTL, R_PUSH };

typedef struct runner {
    struct krep_mod *m;
    int kind;
    int32_t peer;
    pthread_t th;
    bool started;
    pthread_mutex_t cmu;          /* c, for the stopper's shutdown */
    klog_conn *c;
    int32_t conn_to;
    kk_wbuf w, rw;
} runner;

struct krep_mod {
    struct klog *k;
    krep_config cfg;
    int32_t leader0;
    int64_t timeout_ms;
    krep_node *node;
    pthread_mutex_t mu;           /* ctl, retired, stopping; the sleeps */
    pthread_cond_t cv;
    bool stopping;
    krep_ctl *ctl;                /* hosted, or NULL */
    krep_ctl *retired[64];        /* replaced ones: threads may still hold them */
    int nretired;
    pthread_mutex_t pmu;          /* the state file */
    _Atomic bool rescan;
    klog_transport_registry *reg;
    runner runners[MAX_RUNNERS];
    int nrunners;
    pthread_t tick;
    bool tick_started;
    /* what the state file held at start: a promote before any push
     * arrived starts from it */
    krep_ctl_entry *known;
    char (*known_names)[KLOG_TOPIC_NAME_MAX + 1];
    int nknown;
};

static int64_t now_ms(void) { return (int64_t)(klog__now_ns() / 1000000); }

/* ---- configuration ----------------------------------------------------------------- */

/* "1@tcp://h:p,2@h:p,3@unix:///x" */
static int parse_peers(const char *s, krep_config *cfg, char *errbuf, size_t errsize)
{
    cfg->npeers = 0;
    while (*s) {
        char *end;
        long id = strtol(s, &end, 10);
        if (end == s || *end != '@' || id < 0 || id > INT32_MAX)
            return klog__errf(errbuf, errsize, KLOG_ECONF, "replication.peers: expected ID@URL at \"%s\"", s);
        s = end + 1;
        size_t len = strcspn(s, ",");
        if (len == 0 || len >= KREP_URL_MAX - 8)
            return klog__errf(errbuf, errsize, KLOG_ECONF, "replication.peers: a bad URL for node %ld", id);
        if (cfg->npeers == KREP_MAX_NODES)
            return klog__errf(errbuf, errsize, KLOG_ECONF, "replication.peers: at most %d nodes", KREP_MAX_NODES);
        krep_peer *p = &cfg->peers[cfg->npeers];
        for (int i = 0; i < cfg->npeers; i++)
            if (cfg->peers[i].id == (int32_t)id)
                return klog__errf(errbuf, errsize, KLOG_ECONF, "replication.peers: node %ld twice", id);
        p->id = (int32_t)id;
        bool scheme = memchr(s, ':', len) && (strstr(s, "://") && (size_t)(strstr(s, "://") - s) < len);
        snprintf(p->url, sizeof p->url, "%s%.*s", scheme ? "" : "tcp://", (int)len, s);
        cfg->npeers++;
        s += len;
        if (*s == ',')
            s++;
    }
    return 0;
}

/* ---- the state file -------------------------------------------------------------------- */

static int write_state(void *arg, int32_t ctl_id, int32_t ctl_epoch, const krep_ctl_entry *e, int n)
{
    krep_mod *m = arg;
    klog_sbuf b = { 0 };
    klog__sbuf_printf(&b, "klog-replication 1\ncontroller %d %d\n", ctl_id, ctl_epoch);
    for (int i = 0; i < n; i++) {
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
        pthread_mutex_lock(&m->pmu);
        rc = ks_write_atomic(klog__io(m->k), klog__dir(m->k), STATE_FILE, b.p, b.n);
        pthread_mutex_unlock(&m->pmu);
    }
    free(b.p);
    return rc;
}

typedef struct loaded {
    int32_t ctl_id, ctl_epoch;
    int n;
    krep_ctl_entry *e;
    char (*names)[KLOG_TOPIC_NAME_MAX + 1];
} loaded;

static void loaded_free(loaded *l)
{
    free(l->e);
    free(l->names);
}

/* Read DIR/replication.state.  Returns 1 (loaded), 0 (no file), or
 * KLOG_ECORRUPT / -errno. */
static int read_state(krep_mod *m, loaded *l)
{
    memset(l, 0, sizeof *l);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", klog__dir(m->k), STATE_FILE);
    char *buf = malloc(STATE_MAX + 1);
    if (!buf)
        return -ENOMEM;
    ssize_t len = ks_read_small(klog__io(m->k), path, buf, STATE_MAX);
    if (len == -ENOENT) {
        free(buf);
        return 0;
    }
    if (len < 0) {
        free(buf);
        return (int)len;
    }
    buf[len] = 0;
    int rc = KLOG_ECORRUPT;
    size_t lines = 0;
    for (ssize_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    l->e = calloc(lines + 1, sizeof *l->e);
    l->names = calloc(lines + 1, sizeof *l->names);
    if (!l->e || !l->names) {
        free(buf);
        return -ENOMEM;
    }
    char *save = NULL, *line = strtok_r(buf, "\n", &save);
    if (!line || strcmp(line, "klog-replication 1") != 0)
        goto out;
    line = strtok_r(NULL, "\n", &save);
    if (!line || sscanf(line, "controller %d %d", &l->ctl_id, &l->ctl_epoch) != 2)
        goto out;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        if (strcmp(line, "end") == 0) {
            rc = 1;
            break;
        }
        krep_ctl_entry *e = &l->e[l->n];
        krep_pstate *st = &e->st;
        int off = 0;
        if (sscanf(line, "partition %249s %d %d %d %d %d%n", l->names[l->n], &e->partition, &st->leader,
                   &st->leader_epoch, &st->partition_epoch, &st->nreplicas, &off) != 6 ||
            st->nreplicas < 1 || st->nreplicas > KREP_MAX_NODES)
            goto out;
        char *p = line + off;
        for (int j = 0; j < st->nreplicas; j++) {
            char *end;
            st->replicas[j] = (int32_t)strtol(p, &end, 10);
            if (end == p)
                goto out;
            p = end;
        }
        char *end;
        st->nisr = (int)strtol(p, &end, 10);
        if (end == p || st->nisr < 0 || st->nisr > st->nreplicas)
            goto out;
        p = end;
        for (int j = 0; j < st->nisr; j++) {
            st->isr[j] = (int32_t)strtol(p, &end, 10);
            if (end == p)
                goto out;
            p = end;
        }
        e->topic = l->names[l->n];
        l->n++;
    }
out:
    free(buf);
    return rc;
}

/* What this node knows, written down (when it is not the controller:
 * the controller writes its own states, through its persist hook). */
static void persist_node(krep_mod *m)
{
    pthread_mutex_lock(&m->mu);
    bool hosting = m->ctl != NULL;
    pthread_mutex_unlock(&m->mu);
    if (hosting)
        return;
    int n = krep_node_list(m->node, NULL, 0);
    krep_ctl_entry *e = calloc((size_t)n + 1, sizeof *e);
    if (!e)
        return;
    n = krep_node_list(m->node, e, n);
    int32_t id, ep;
    krep_node_controller(m->node, &id, &ep);
    write_state(m, id, ep, e, n);
    free(e);
}

/* ---- the hosted controller -------------------------------------------------------------- */

/* Every non-internal topic's partitions the controller does not hold yet:
 * all nodes replicate them, this one leads (m->mu held). */
static void ctl_add_topics(krep_mod *m, krep_ctl *ctl)
{
    kt_topic **snap;
    ssize_t nt = klog__topics_snapshot(m->k, &snap);
    if (nt < 0)
        return;
    int32_t reps[KREP_MAX_NODES];
    for (int i = 0; i < m->cfg.npeers; i++)
        reps[i] = m->cfg.peers[i].id;
    for (ssize_t i = 0; i < nt; i++) {
        kt_topic *t = snap[i];
        if ((t->name[0] == '_' && t->name[1] == '_') || atomic_load(&t->deleted))
            continue;
        int np = atomic_load_explicit(&t->nparts, memory_order_acquire);
        for (int p = 0; p < np; p++) {
            krep_pstate st;
            if (krep_ctl_state(ctl, t->name, p, &st) == 0)
                continue;
            krep_ctl_add_partition(ctl, t->name, p, reps, m->cfg.npeers, m->cfg.node_id);
        }
    }
    klog__topics_release(snap, (size_t)nt);
}

/* Host a controller with these states (m->mu held).  A leader epoch is
 * raised past any the partition's log already knows: a state file that
 * missed the last change must not give an epoch out twice. */
static int host(krep_mod *m, int32_t epoch, const krep_ctl_entry *e, int n)
{
    krep_ctl *ctl;
    int rc = krep_ctl_new(&ctl, m->cfg.node_id, epoch);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        krep_pstate st = e[i].st;
        kt_topic *t = klog__topic_get(m->k, e[i].topic);
        if (t && e[i].partition < atomic_load_explicit(&t->nparts, memory_order_acquire)) {
            ks_epoch_entry last;
            kpart *p = t->parts[e[i].partition];
            size_t ne = kpart_epoch_entries(p, NULL, 0);
            ks_epoch_entry *all = calloc(ne + 1, sizeof *all);
            if (all) {
                ne = kpart_epoch_entries(p, all, ne);
                last = all[ne ? ne - 1 : 0];
                if (ne && last.epoch >= st.leader_epoch)
                    st.leader_epoch = last.epoch + 1;
                free(all);
            }
        }
        if (t)
            klog__topic_put(t);
        krep_ctl_add_state(ctl, e[i].topic, e[i].partition, &st);
    }
    ctl_add_topics(m, ctl);
    /* this run leads in the epochs just made: no registration bump */
    krep_ctl_set_incarnation(ctl, m->cfg.node_id, m->cfg.incarnation);
    krep_ctl_set_persist(ctl, write_state, m);
    int len = krep_ctl_list(ctl, NULL, 0);
    krep_ctl_entry *all = calloc((size_t)len + 1, sizeof *all);
    if (!all) {
        krep_ctl_free(ctl);
        return -ENOMEM;
    }
    len = krep_ctl_list(ctl, all, len);
    rc = write_state(m, m->cfg.node_id, epoch, all, len);
    free(all);
    if (rc < 0) {
        krep_ctl_free(ctl);
        return rc;
    }
    if (m->ctl && m->nretired < (int)KLOG_ARRAY_LEN(m->retired))
        m->retired[m->nretired++] = m->ctl;
    else
        krep_ctl_free(m->ctl); /* (64 promotes in one run: the oldest goes; no thread holds it any more) */
    m->ctl = ctl;
    return 0;
}

/* A newer controller took over: stop hosting (m->mu held). */
static void unhost(krep_mod *m)
{
    if (!m->ctl)
        return;
    if (m->nretired < (int)KLOG_ARRAY_LEN(m->retired))
        m->retired[m->nretired++] = m->ctl;
    m->ctl = NULL;
}

int krep_mod_promote(krep_mod *m, bool unclean, char *errbuf, size_t errsize)
{
    int n = krep_node_list(m->node, NULL, 0);
    krep_ctl_entry *e = calloc((size_t)(n + m->nknown) + 1, sizeof *e);
    if (!e)
        return -ENOMEM;
    n = krep_node_list(m->node, e, n);
    /* what the node was told in this run, else what it knew at start */
    for (int i = 0; i < m->nknown; i++) {
        bool have = false;
        for (int j = 0; j < n && !have; j++)
            have = e[j].partition == m->known[i].partition && strcmp(e[j].topic, m->known[i].topic) == 0;
        if (!have)
            e[n++] = m->known[i];
    }
    if (n <= 0) {
        free(e);
        return klog__errf(errbuf, errsize, KLOG_ESTATE, "this node has not been told any partition's state yet");
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        krep_pstate *st = &e[i].st;
        if (st->leader == m->cfg.node_id)
            continue;
        if (!krep_in(st->isr, st->nisr, m->cfg.node_id) && !unclean) {
            rc = klog__errf(errbuf, errsize, KLOG_ENOTENOUGH,
                            "%s-%d: node %d is not an in-sync replica (an unclean promote could lose acknowledged "
                            "records)", e[i].topic, e[i].partition, m->cfg.node_id);
            break;
        }
        int32_t old = st->leader;
        if (!krep_in(st->isr, st->nisr, m->cfg.node_id)) {
            st->nisr = 1;
            st->isr[0] = m->cfg.node_id;
        } else if (old >= 0) {
            int k = 0;
            for (int j = 0; j < st->nisr; j++)
                if (st->isr[j] != old)
                    st->isr[k++] = st->isr[j];
            st->nisr = k;
        }
        st->leader = m->cfg.node_id;
        st->leader_epoch++;
        st->partition_epoch++;
    }
    if (rc == 0) {
        int32_t id, ep;
        krep_node_controller(m->node, &id, &ep);
        pthread_mutex_lock(&m->mu);
        int32_t mine = m->ctl ? krep_ctl_epoch(m->ctl) : 0;
        rc = host(m, (ep > mine ? ep : mine) + 1, e, n);
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
        if (rc < 0)
            klog__errf(errbuf, errsize, rc, "writing %s: %s", STATE_FILE, klog_strerror(rc));
    }
    free(e);
    return rc;
}

/* ---- what the server calls ----------------------------------------------------------------- */

extern const kt_module krep_module;

krep_mod *krep_mod_of(struct klog *k) { return k ? klog__module_state(k, &krep_module) : NULL; }
krep_node *krep_mod_node(krep_mod *m) { return m->node; }

const krep_peer *krep_mod_peers(krep_mod *m, int *n)
{
    *n = m->cfg.npeers;
    return m->cfg.peers;
}

/* Topics a LeaderAndIsr names that this node lacks: created with the
 * instance's defaults (a new topic on the leader reaches its followers so),
 * or given the partitions it names. */
static void create_missing(krep_mod *m, const kk_leader_and_isr_req *q, int16_t version)
{
    if (version < 2)
        return;
    for (int i = 0; i < q->topic_states.n; i++) {
        const kk_leader_and_isr_topic *t = &q->topic_states.v[i];
        if (!t->topic_name.p || (int32_t)strlen(t->topic_name.p) != t->topic_name.len ||
            klog__topic_name_check(t->topic_name.p) < 0 || (t->topic_name.p[0] == '_' && t->topic_name.p[1] == '_'))
            continue;
        int32_t want = 0;
        for (int j = 0; j < t->partition_states.n; j++)
            if (t->partition_states.v[j].partition_index >= want)
                want = t->partition_states.v[j].partition_index + 1;
        if (want <= 0 || want > 10000)
            continue;
        kt_topic *kt = klog__topic_get(m->k, t->topic_name.p);
        int have = kt ? atomic_load_explicit(&kt->nparts, memory_order_acquire) : 0;
        if (kt)
            klog__topic_put(kt);
        if (!kt)
            klog_topic_create(m->k, t->topic_name.p, want, NULL, NULL, 0);
        else if (have < want)
            klog_topic_add_partitions(m->k, t->topic_name.p, want);
        atomic_store(&m->rescan, true);
    }
}

int krep_mod_leader_and_isr(krep_mod *m, const kk_leader_and_isr_req *q, int16_t version, krep_alloc_fn alloc,
                            void *actx, kk_leader_and_isr_resp *r)
{
    create_missing(m, q, version);
    /* the new topics' partitions, before the states name them */
    kt_topic **snap;
    ssize_t nt = klog__topics_snapshot(m->k, &snap);
    if (nt >= 0) {
        for (ssize_t i = 0; i < nt; i++)
            krep_node_track(m->node, snap[i]);
        klog__topics_release(snap, (size_t)nt);
    }
    int rc = krep_handle_leader_and_isr(m->node, q, version, now_ms(), alloc, actx, r);
    /* a newer controller epoch than the one hosted here: it took over */
    int32_t id, ep;
    krep_node_controller(m->node, &id, &ep);
    pthread_mutex_lock(&m->mu);
    if (m->ctl && (id != m->cfg.node_id || ep > krep_ctl_epoch(m->ctl)))
        unhost(m);
    pthread_mutex_unlock(&m->mu);
    persist_node(m);
    return rc;
}

int krep_mod_alter_partition(krep_mod *m, const kk_alter_partition_req *q, krep_alloc_fn alloc, void *actx,
                             kk_alter_partition_resp *r)
{
    pthread_mutex_lock(&m->mu);
    krep_ctl *ctl = m->ctl;
    pthread_mutex_unlock(&m->mu);
    if (!ctl) {
        memset(r, 0, sizeof *r);
        r->error_code = KK_ERR_NOT_CONTROLLER;
        return 0;
    }
    return krep_ctl_handle_alter_partition(ctl, q, alloc, actx, r); /* a retired one answers stale epochs */
}

int16_t krep_mod_replica_fetch(krep_mod *m, const char *topic, int32_t partition, int32_t replica_id,
                               int32_t current_leader_epoch, int64_t fetch_offset, struct kpart **p)
{
    return krep_replica_fetch(m->node, topic, partition, replica_id, current_leader_epoch, fetch_offset, now_ms(), p);
}

/* ---- the threads ----------------------------------------------------------------------------- */

static bool stopping(krep_mod *m)
{
    pthread_mutex_lock(&m->mu);
    bool s = m->stopping;
    pthread_mutex_unlock(&m->mu);
    return s;
}

static void nap(krep_mod *m, int64_t until_ms)
{
    int64_t now = now_ms();
    if (until_ms <= now)
        return;
    if (until_ms - now > IDLE_MS)
        until_ms = now + IDLE_MS;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (until_ms - now) * 1000000;
    ts.tv_sec = ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&m->mu);
    if (!m->stopping)
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    pthread_mutex_unlock(&m->mu);
}

static const char *url_of(krep_mod *m, int32_t id)
{
    for (int i = 0; i < m->cfg.npeers; i++)
        if (m->cfg.peers[i].id == id)
            return m->cfg.peers[i].url;
    return NULL;
}

static void drop_conn(runner *r)
{
    pthread_mutex_lock(&r->cmu);
    klog_conn *c = r->c;
    r->c = NULL;
    pthread_mutex_unlock(&r->cmu);
    klog_conn_close(c);
}

/* Send r->w to `to` and wait for its answer, handing every frame to
 * resp (which returns 1 for a frame that is not the answer).  Returns 0
 * (answered) or < 0 (lost: the caller reports the failure). */
static int exchange(runner *r, int32_t to, int (*resp)(runner *r, const void *f, size_t len))
{
    krep_mod *m = r->m;
    if (r->c && r->conn_to != to)
        drop_conn(r);
    if (!r->c) {
        const char *url = url_of(m, to);
        klog_conn *c = NULL;
        if (!url)
            return -EINVAL;
        int rc = klog_transport_connect(m->reg, url, CONNECT_MS, &c);
        if (rc < 0)
            return rc;
        pthread_mutex_lock(&r->cmu);
        r->c = c;
        r->conn_to = to;
        bool stop = m->stopping;
        pthread_mutex_unlock(&r->cmu);
        if (stop)
            klog_conn_shutdown(c);
    }
    struct iovec iov[64];
    int niov = kk_wbuf_iov(&r->w, iov, 64);
    int rc = klog_conn_send(r->c, iov, niov, (int)m->timeout_ms);
    if (rc < 0) {
        drop_conn(r);
        return rc;
    }
    int64_t deadline = now_ms() + m->timeout_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            drop_conn(r);
            return -ETIMEDOUT;
        }
        const void *f;
        int len = klog_conn_recv(r->c, (int)left, &f);
        if (len < 0) {
            drop_conn(r);
            return len;
        }
        if (resp(r, f, (size_t)len) != 1)
            return 0;
    }
}

static int resp_node(runner *r, const void *f, size_t len)
{
    return krep_chan_response(r->m->node, r->kind == R_CTL ? KREP_DST_CTL : r->peer, f, len, now_ms());
}

static krep_ctl *hosted(krep_mod *m)
{
    pthread_mutex_lock(&m->mu);
    krep_ctl *c = m->ctl;
    pthread_mutex_unlock(&m->mu);
    return c;
}

static int resp_push(runner *r, const void *f, size_t len)
{
    krep_ctl *c = hosted(r->m);
    return c ? krep_ctl_response(c, r->peer, f, len, now_ms()) : 0;
}

/* A node's request served here (it is its own controller, or the
 * controller pushing to itself). */
static int local(runner *r, krep_ctl *ctl)
{
    krep_mod *m = r->m;
    size_t len = kk_wbuf_len(&r->w);
    uint8_t *frame = malloc(len ? len : 1);
    if (!frame)
        return -ENOMEM;
    kk_wbuf_copy_out(&r->w, frame);
    int rc;
    if (r->kind == R_CTL) {
        rc = ctl ? krep_ctl_serve(ctl, frame, len, now_ms(), &r->rw) : KLOG_ESTATE;
    } else {
        kk_arena a;
        kk_arena_init(&a, NULL, 0);
        kk_request q;
        krep_mem mem = { 0 };
        rc = kk_request_decode(frame, len, NULL, &a, &q);
        if (rc == 0) {
            kk_leader_and_isr_resp resp;
            rc = krep_mod_leader_and_isr(m, &q.body.leader_and_isr, q.hdr.api_version, krep_mem_alloc, &mem, &resp);
            if (rc == 0) {
                kk_wbuf_reset(&r->rw);
                rc = kk_response_encode(&r->rw, q.hdr.api_key, q.hdr.api_version, q.hdr.correlation_id, &resp);
            }
        }
        krep_mem_reset(&mem);
        free(mem.blocks);
        kk_arena_reset(&a);
    }
    free(frame);
    if (rc < 0)
        return rc;
    size_t rl = kk_wbuf_len(&r->rw);
    uint8_t *resp = malloc(rl ? rl : 1);
    if (!resp)
        return -ENOMEM;
    kk_wbuf_copy_out(&r->rw, resp);
    if (r->kind == R_CTL)
        krep_chan_response(m->node, KREP_DST_CTL, resp, rl, now_ms());
    else if (ctl)
        krep_ctl_response(ctl, r->peer, resp, rl, now_ms());
    free(resp);
    return 0;
}

static void *runner_main(void *arg)
{
    runner *r = arg;
    krep_mod *m = r->m;
    int32_t self = m->cfg.node_id;
    while (!stopping(m)) {
        int64_t now = now_ms(), wake = now + IDLE_MS;
        int32_t to = r->peer;
        krep_ctl *ctl = NULL;
        int rc;
        if (r->kind == R_FETCH) {
            rc = krep_chan_next(m->node, r->peer, now, &r->w, &wake);
        } else if (r->kind == R_CTL) {
            int32_t ep;
            krep_node_controller(m->node, &to, &ep);
            ctl = hosted(m);
            rc = to < 0 ? 0 : krep_chan_next(m->node, KREP_DST_CTL, now, &r->w, &wake);
        } else {
            ctl = hosted(m);
            rc = ctl ? krep_ctl_next(ctl, r->peer, now, &r->w, &wake) : 0;
        }
        if (rc <= 0) {
            nap(m, wake);
            continue;
        }
        if (to == self) {
            if (local(r, ctl) < 0) {
                if (r->kind == R_CTL)
                    krep_chan_failed(m->node, KREP_DST_CTL, now_ms());
                else if (ctl)
                    krep_ctl_failed(ctl, r->peer, now_ms());
            }
            continue;
        }
        rc = exchange(r, to, r->kind == R_PUSH ? resp_push : resp_node);
        if (rc < 0) {
            if (r->kind == R_PUSH) {
                if (ctl)
                    krep_ctl_failed(ctl, r->peer, now_ms());
            } else {
                krep_chan_failed(m->node, r->kind == R_CTL ? KREP_DST_CTL : r->peer, now_ms());
            }
            nap(m, now_ms() + 100);
        }
    }
    return NULL;
}

static void *tick_main(void *arg)
{
    krep_mod *m = arg;
    while (!stopping(m)) {
        int64_t wake = krep_node_tick(m->node, now_ms());
        if (atomic_exchange(&m->rescan, false)) {
            kt_topic **snap;
            ssize_t nt = klog__topics_snapshot(m->k, &snap);
            if (nt >= 0) {
                for (ssize_t i = 0; i < nt; i++)
                    krep_node_track(m->node, snap[i]);
                klog__topics_release(snap, (size_t)nt);
            }
            pthread_mutex_lock(&m->mu);
            if (m->ctl) {
                int before = krep_ctl_list(m->ctl, NULL, 0);
                ctl_add_topics(m, m->ctl);
                if (krep_ctl_list(m->ctl, NULL, 0) != before) {
                    int n = krep_ctl_list(m->ctl, NULL, 0);
                    krep_ctl_entry *e = calloc((size_t)n + 1, sizeof *e);
                    if (e) {
                        n = krep_ctl_list(m->ctl, e, n);
                        write_state(m, m->cfg.node_id, krep_ctl_epoch(m->ctl), e, n);
                        free(e);
                    }
                }
            }
            pthread_mutex_unlock(&m->mu);
        }
        int64_t until = now_ms() + 20;
        nap(m, wake < until ? wake : until);
    }
    return NULL;
}

/* ---- the module -------------------------------------------------------------------------------- */

static int mod_init(struct klog *k, void **state, char *errbuf, size_t errsize)
{
    const klog_conf *c = klog__conf(k);
    const char *peers = klog__conf_str(c, KC_REPLICATION_PEERS);
    if (!peers || !*peers)
        return 0; /* a single node, exactly as without replication */
    krep_mod *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->k = k;
    krep_config_init(&m->cfg);
    int rc = parse_peers(peers, &m->cfg, errbuf, errsize);
    if (rc < 0) {
        free(m);
        return rc;
    }
    m->cfg.node_id = (int32_t)klog__conf_int(c, KC_NODE_ID);
    bool me = false;
    int32_t lowest = INT32_MAX;
    for (int i = 0; i < m->cfg.npeers; i++) {
        me |= m->cfg.peers[i].id == m->cfg.node_id;
        if (m->cfg.peers[i].id < lowest)
            lowest = m->cfg.peers[i].id;
    }
    if (!me) {
        free(m);
        return klog__errf(errbuf, errsize, KLOG_ECONF, "node.id %d is not one of replication.peers",
                          (int)klog__conf_int(c, KC_NODE_ID));
    }
    m->leader0 = (int32_t)klog__conf_int(c, KC_REPLICATION_LEADER);
    if (m->leader0 < 0)
        m->leader0 = lowest;
    else if (!url_of(m, m->leader0)) {
        int32_t bad = m->leader0;
        free(m);
        return klog__errf(errbuf, errsize, KLOG_ECONF, "replication.leader %d is not one of replication.peers",
                          (int)bad);
    }
    m->cfg.lag_max_ms = klog__conf_int(c, KC_REPLICA_LAG_TIME_MAX_MS);
    m->cfg.fetch_wait_max_ms = (int32_t)klog__conf_int(c, KC_REPLICA_FETCH_WAIT_MAX_MS);
    m->cfg.fetch_max_bytes = (int32_t)klog__conf_int(c, KC_REPLICA_FETCH_MAX_BYTES);
    m->cfg.fetch_backoff_ms = klog__conf_int(c, KC_REPLICA_FETCH_BACKOFF_MS);
    m->cfg.heartbeat_ms = klog__conf_int(c, KC_REPLICA_HEARTBEAT_MS);
    m->timeout_ms = klog__conf_int(c, KC_REPLICA_SOCKET_TIMEOUT_MS);
    if (m->timeout_ms < m->cfg.fetch_wait_max_ms + 1000)
        m->timeout_ms = m->cfg.fetch_wait_max_ms + 1000;
    /* a run's incarnation: the wall clock in microseconds, as Kafka's
     * broker epoch grows with each registration */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->cfg.incarnation = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->pmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    *state = m;
    return 0;
}

static void mod_stop(struct klog *k, void *state);

static int mod_start(struct klog *k, void *state, char *errbuf, size_t errsize)
{
    krep_mod *m = state;
    if (!m)
        return 0;
    loaded l;
    int rc = read_state(m, &l);
    if (rc < 0) {
        loaded_free(&l);
        return klog__errf(errbuf, errsize, rc, "%s/%s: %s", klog__dir(k), STATE_FILE,
                          rc == KLOG_ECORRUPT ? "not a replication state file" : klog_strerror(rc));
    }
    m->cfg.controller_id = rc == 1 ? l.ctl_id : m->leader0;
    m->cfg.controller_epoch = rc == 1 ? l.ctl_epoch : 0;
    if ((rc = krep_node_new(&m->node, k, &m->cfg)) < 0) {
        loaded_free(&l);
        return klog__errf(errbuf, errsize, rc, "replication: %s", klog_strerror(rc));
    }
    if (m->cfg.controller_id == m->cfg.node_id) {
        pthread_mutex_lock(&m->mu);
        rc = host(m, m->cfg.controller_epoch > 0 ? m->cfg.controller_epoch : 1, l.e, l.n);
        pthread_mutex_unlock(&m->mu);
        if (rc < 0) {
            loaded_free(&l);
            krep_node_free(m->node);
            m->node = NULL;
            return klog__errf(errbuf, errsize, rc, "writing %s/%s: %s", klog__dir(k), STATE_FILE, klog_strerror(rc));
        }
    }
    m->known = l.e;
    m->known_names = l.names;
    m->nknown = l.n;
    if ((rc = klog_transport_registry_new(&m->reg, 0)) < 0) {
        mod_stop(k, m);
        return rc;
    }
    for (int i = 0; i < m->cfg.npeers; i++) {
        int32_t id = m->cfg.peers[i].id;
        if (id != m->cfg.node_id)
            m->runners[m->nrunners++] = (runner){ .m = m, .kind = R_FETCH, .peer = id };
        m->runners[m->nrunners++] = (runner){ .m = m, .kind = R_PUSH, .peer = id };
    }
    m->runners[m->nrunners++] = (runner){ .m = m, .kind = R_CTL, .peer = -1 };
    for (int i = 0; i < m->nrunners && rc == 0; i++) {
        runner *r = &m->runners[i];
        pthread_mutex_init(&r->cmu, NULL);
        kk_wbuf_init(&r->w, 0);
        kk_wbuf_init(&r->rw, 0);
        if (pthread_create(&r->th, NULL, runner_main, r) != 0)
            rc = -EAGAIN;
        else
            r->started = true;
    }
    if (rc == 0) {
        if (pthread_create(&m->tick, NULL, tick_main, m) != 0)
            rc = -EAGAIN;
        else
            m->tick_started = true;
    }
    if (rc < 0) {
        mod_stop(k, m);
        return klog__errf(errbuf, errsize, rc, "replication threads: %s", klog_strerror(rc));
    }
    return 0;
}

static void mod_stop(struct klog *k, void *state)
{
    (void)k;
    krep_mod *m = state;
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    for (int i = 0; i < m->nrunners; i++) {
        runner *r = &m->runners[i];
        pthread_mutex_lock(&r->cmu);
        if (r->c)
            klog_conn_shutdown(r->c);
        pthread_mutex_unlock(&r->cmu);
    }
    for (int i = 0; i < m->nrunners; i++) {
        runner *r = &m->runners[i];
        if (r->started)
            pthread_join(r->th, NULL);
        r->started = false;
        klog_conn_close(r->c);
        r->c = NULL;
        kk_wbuf_free(&r->w);
        kk_wbuf_free(&r->rw);
        pthread_mutex_destroy(&r->cmu);
    }
    m->nrunners = 0;
    if (m->tick_started)
        pthread_join(m->tick, NULL);
    m->tick_started = false;
    klog_transport_registry_free(m->reg);
    m->reg = NULL;
    krep_ctl_free(m->ctl);
    m->ctl = NULL;
    for (int i = 0; i < m->nretired; i++)
        krep_ctl_free(m->retired[i]);
    m->nretired = 0;
    krep_node_free(m->node);
    m->node = NULL;
    free(m->known);
    free(m->known_names);
    m->known = NULL;
    m->known_names = NULL;
    m->nknown = 0;
}

static int mod_fini(struct klog *k, void *state)
{
    (void)k;
    krep_mod *m = state;
    if (!m)
        return 0;
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->pmu);
    pthread_cond_destroy(&m->cv);
    free(m);
    return 0;
}

static void mod_event(struct klog *k, void *state, const kt_event *ev)
{
    (void)k;
    (void)ev;
    krep_mod *m = state;
    if (m)
        atomic_store(&m->rescan, true); /* the tick thread tracks it: no lock taken here */
}

/* Fenced from the moment it opens: a replica that knows no leader yet
 * takes no producer's write and shows nothing it does not know committed
 * (the node tracks it, and the controller names its leader, after). */
static void mod_part_open(struct klog *k, void *state, const char *topic, int index, kpart *p)
{
    (void)k;
    (void)index;
    krep_mod *m = state;
    if (!m || (topic[0] == '_' && topic[1] == '_'))
        return;
    kpart_set_replicated_at(p, kpart_start_offset(p));
    kpart_become_follower(p, -1);
    atomic_store(&m->rescan, true);
}

const kt_module krep_module = {
    .name = "replication", .init = mod_init, .start = mod_start, .stop = mod_stop, .fini = mod_fini,
    .event = mod_event, .part_open = mod_part_open,
};

/* ---- the public API ------------------------------------------------------------------------------ */

KLOG_API int klog_replication_promote(klog *k, unsigned flags, char *errbuf, size_t errsize)
{
    if (!k || (flags & ~KLOG_PROMOTE_UNCLEAN))
        return -EINVAL;
    krep_mod *m = krep_mod_of(k);
    if (!m)
        return klog__errf(errbuf, errsize, KLOG_ESTATE, "this instance is not replicated (no replication.peers)");
    return krep_mod_promote(m, flags & KLOG_PROMOTE_UNCLEAN, errbuf, errsize);
}

KLOG_API int klog_replication_promote_node(const char *url, unsigned flags, int timeout_ms, char *errbuf,
                                           size_t errsize)
{
    if (!url || (flags & ~KLOG_PROMOTE_UNCLEAN) || timeout_ms <= 0)
        return -EINVAL;
    char u[KREP_URL_MAX];
    snprintf(u, sizeof u, "%s%s", strstr(url, "://") || !strncmp(url, "unix:", 5) ? "" : "tcp://", url);
    klog_transport_registry *reg = NULL;
    klog_conn *c = NULL;
    kk_wbuf w;
    kk_wbuf_init(&w, 0);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    int rc = klog_transport_registry_new(&reg, 0);
    if (rc == 0 && (rc = klog_transport_connect(reg, u, timeout_ms, &c)) < 0)
        klog__errf(errbuf, errsize, rc, "connecting to %s: %s", u, klog_strerror(rc));
    kk_elect_leaders_req q = { .election_type = (flags & KLOG_PROMOTE_UNCLEAN) ? 1 : 0, .timeout_ms = timeout_ms };
    q.topic_partitions.n = -1; /* every partition */
    if (rc == 0 && (rc = krep_encode_request(&w, KK_API_ELECT_LEADERS, 1, 1, &q)) == 0) {
        struct iovec iov[8];
        int n = kk_wbuf_iov(&w, iov, 8);
        if ((rc = klog_conn_send(c, iov, n, timeout_ms)) < 0)
            klog__errf(errbuf, errsize, rc, "sending to %s: %s", u, klog_strerror(rc));
    }
    if (rc == 0) {
        const void *f;
        int len = klog_conn_recv(c, timeout_ms, &f);
        kk_response resp;
        if (len < 0) {
            rc = klog__errf(errbuf, errsize, len, "no answer from %s: %s", u, klog_strerror(len));
        } else if ((rc = kk_response_decode(f, (size_t)len, KK_API_ELECT_LEADERS, 1, NULL, &a, &resp)) < 0) {
            klog__errf(errbuf, errsize, rc, "%s answered something else than ElectLeaders", u);
        } else {
            const kk_elect_leaders_resp *r = &resp.body.elect_leaders;
            int16_t e = r->error_code;
            const char *msg = NULL;
            for (int i = 0; i < r->replica_election_results.n && !e; i++)
                for (int j = 0; j < r->replica_election_results.v[i].partition_result.n && !e; j++) {
                    e = r->replica_election_results.v[i].partition_result.v[j].error_code;
                    msg = r->replica_election_results.v[i].partition_result.v[j].error_message.p;
                }
            if (e == KK_ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE)
                rc = KLOG_ENOTENOUGH;
            else if (e == KK_ERR_CLUSTER_AUTHORIZATION_FAILED || e == KK_ERR_INVALID_REQUEST)
                rc = KLOG_ESTATE;
            else if (e != KK_ERR_NONE)
                rc = -EIO;
            if (rc < 0)
                klog__errf(errbuf, errsize, rc, "%s: %s%s%s", u, kk_err_name(e), msg ? ": " : "", msg ? msg : "");
        }
    }
    kk_arena_reset(&a);
    kk_wbuf_free(&w);
    klog_conn_close(c);
    klog_transport_registry_free(reg);
    return rc;
}
