/*
 * lib/replication/module.c - replication as a module of an instance
 * (klog_open with replication.peers set): the engine of node.c driven by
 * threads over real transports, the static controller, its state file,
 * and what the server and the public API call (klog_replication_*).
 *
 * Static controller.  The node that leads is also the controller of the
 * cluster (it hosts a krep_ctl; it is a replica of every partition it
 * creates, krep_static_add_topic): it tells the others who leads, decides
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
 * The file's format and the hosting itself are static.c's (shared with the
 * simulation, which hosts the same way).
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
#include "topic/conf_keys.h"
#include "topic/topic.h"
#include "klog_config.h"
#if KLOG_HAVE_RAFT
#include "replication/quorum.h"
#endif

#define MAX_RUNNERS (3 * KREP_MAX_NODES + 1)
#define CONNECT_MS 1000
#define AUTO_MAX 16          /* auto-creations queued at once */
#define AUTO_AGAIN_MS 1000   /* a name asked again within this is being created */
#define IDLE_MS 50

enum { R_FETCH, R_CTL, R_PUSH, R_RAFT };

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
    _Atomic uint64_t q_seen;          /* the quorum's applied index the runners were woken for */
    krep_config cfg;
    int32_t leader0;
    int64_t timeout_ms;
    krep_node *node;
    pthread_mutex_t mu;           /* ctl, retired, stopping; the sleeps */
    pthread_mutex_t create_mu;    /* quorum: a CreateTopics's proposal and its wait */
    pthread_cond_t cv;
    bool stopping;
    krep_ctl *ctl;                /* hosted, or NULL */
    krep_ctl *retired[64];        /* replaced ones: threads may still hold them */
    int nretired;
    _Atomic bool rescan;
    klog_transport_registry *reg;
    int sasl_mech;                /* 0 none, 1 PLAIN (replication.sasl.*) */
    char sasl_user[KC_STR_MAX], sasl_pass[KC_STR_MAX];
    runner runners[MAX_RUNNERS];
    int nrunners;
    pthread_t tick;
    bool tick_started;
    /* what the state file held at start: a promote before any push
     * arrived starts from it */
    krep_state known;
    /* the quorum controller (replication.controller): raft among the
     * peers hosts it, instead of the static one */
    bool quorum;
    bool witness;                 /* a voter with no data: no node */
    int nwitnesses;
    int32_t witnesses[KREP_MAX_NODES];
    int64_t session_ms, election_ms;
#if KLOG_HAVE_RAFT
    krep_quorum *q;
#endif
    /* the topics' configurations the controller told (its topic
     * records): a copy this node creates later takes them */
    pthread_mutex_t tmu;
    struct mtopic { char name[KLOG_TOPIC_NAME_MAX + 1]; char *config; } *told;
    size_t ntold, toldcap;
    /* topics a client's Metadata would auto-create, on their way to the
     * controller (krep_mod_auto_create; under mu): the creator thread,
     * started on the first, creates them there or sends CreateTopics to
     * the controller (Kafka's forwarding, KIP-590) */
    struct acreq { char name[KLOG_TOPIC_NAME_MAX + 1]; int64_t at_ms; } aq[AUTO_MAX], adone[AUTO_MAX];
    int naq, nadone;
    /* topic configuration changes on their way to the controller
     * (krep_mod_forward_start; under mu), sent by the same thread */
    krep_fwd *fq[AUTO_MAX];
    int nfq;
    pthread_t creator;
    bool creator_started;
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

/* ---- the hosted controller (static.c does the work) ------------------------------------- */

/* Install ctl as the hosted controller (m->mu held): the one it replaces
 * is kept until stop (threads may still hold it). */
static void install(krep_mod *m, krep_ctl *ctl)
{
    if (m->ctl) {
        if (m->nretired < (int)KLOG_ARRAY_LEN(m->retired))
            m->retired[m->nretired++] = m->ctl;
        else
            krep_ctl_free(m->ctl); /* (64 promotes in one run: the oldest goes) */
    }
    m->ctl = ctl;
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

/* What this node knows, written down (when it is not the controller:
 * the controller writes its own states, through its persist hook). */
static void persist_node(krep_mod *m)
{
    pthread_mutex_lock(&m->mu);
    bool hosting = m->ctl != NULL;
    pthread_mutex_unlock(&m->mu);
    if (!hosting)
        krep_node_persist(m->node);
}

int krep_mod_promote(krep_mod *m, bool unclean, krep_promoted **rep, int *nrep, char *errbuf, size_t errsize)
{
    if (m->quorum)
        return klog__errf(errbuf, errsize, KLOG_ESTATE,
                          "this cluster's quorum controller elects leaders by itself (no promote)");
    pthread_mutex_lock(&m->mu);
    krep_ctl *ctl = NULL;
    int32_t floor = m->ctl ? krep_ctl_epoch(m->ctl) : 0;
    int rc = krep_static_promote(m->node, &m->known, floor, unclean, &ctl, rep, nrep, errbuf, errsize);
    if (rc == 0)
        install(m, ctl);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
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

/* ---- topic records (replication.h): the node's side ------------------------------------------ */

/* The configuration the controller told for topic, as a klog_conf (NULL:
 * none told, or empty). */
static klog_conf *told_conf(krep_mod *m, const char *topic)
{
    klog_conf *c = NULL;
    pthread_mutex_lock(&m->tmu);
    for (size_t i = 0; i < m->ntold; i++)
        if (strcmp(m->told[i].name, topic) == 0)
            c = krep_conf_of_lines(m->told[i].config);
    pthread_mutex_unlock(&m->tmu);
    return c;
}

/* Whether the controller's last word on topic was its deletion. */
static bool told_deleted(krep_mod *m, const char *topic)
{
    bool d = false;
    pthread_mutex_lock(&m->tmu);
    for (size_t i = 0; i < m->ntold; i++)
        if (strcmp(m->told[i].name, topic) == 0)
            d = m->told[i].config == NULL;
    pthread_mutex_unlock(&m->tmu);
    return d;
}

int krep_mod_told_config(krep_mod *m, const char *topic, char *config, size_t cap)
{
    int rc = KLOG_EUNKNOWN_TOPIC;
    pthread_mutex_lock(&m->tmu);
    for (size_t i = 0; i < m->ntold && rc < 0; i++)
        if (strcmp(m->told[i].name, topic) == 0 && m->told[i].config) {
            snprintf(config, cap, "%s", m->told[i].config);
            rc = 0;
        }
    pthread_mutex_unlock(&m->tmu);
    return rc;
}

/* Keep topic's told configuration, or (config NULL) its deletion. */
static int told_put(krep_mod *m, const char *topic, const char *config)
{
    char *cp = config ? strdup(config) : NULL;
    if (config && !cp)
        return -ENOMEM;
    pthread_mutex_lock(&m->tmu);
    int rc = 0;
    size_t i = 0;
    while (i < m->ntold && strcmp(m->told[i].name, topic) != 0)
        i++;
    if (i == m->ntold && klog__vec_reserve(&m->told, &m->toldcap, m->ntold + 1, sizeof *m->told) < 0) {
        free(cp);
        rc = -ENOMEM;
    } else {
        if (i == m->ntold) {
            snprintf(m->told[i].name, sizeof m->told[i].name, "%s", topic);
            m->told[i].config = NULL;
            m->ntold++;
        }
        free(m->told[i].config);
        m->told[i].config = cp;
    }
    pthread_mutex_unlock(&m->tmu);
    return rc;
}

/* A KREP_API_TOPICS request from the controller: the response into w.
 * The configurations are kept for copies made later (create_missing),
 * the node applies the records (krep_handle_topics). */
static int topics_frame(krep_mod *m, const void *frame, size_t len, kk_wbuf *w)
{
    krep_topics_req q;
    int rc = krep_topics_decode(frame, len, &q);
    if (rc < 0) {
        krep_topics_req_free(&q);
        return rc;
    }
    int16_t err = KK_ERR_INVALID_REQUEST; /* a witness holds no topic */
    bool deleted = false;
    if (m->node) {
        int32_t id, ep;
        krep_node_controller(m->node, &id, &ep);
        err = q.controller_epoch < ep ? KK_ERR_STALE_CONTROLLER_EPOCH : KK_ERR_NONE;
    }
    for (int i = 0; i < q.n && err == KK_ERR_NONE; i++) {
        if (q.v[i].name && told_put(m, q.v[i].name, q.v[i].deleted ? NULL : q.v[i].config) < 0)
            err = KK_ERR_KAFKA_STORAGE_ERROR;
        deleted |= q.v[i].deleted;
    }
    if (err == KK_ERR_NONE)
        err = krep_handle_topics(m->node, &q);
    if (deleted && !m->quorum)
        persist_node(m);
    rc = krep_topics_answer(w, q.corr, err);
    krep_topics_req_free(&q);
    return rc;
}

/* Topics a LeaderAndIsr names that this node lacks and holds a replica
 * of: created with the configuration the controller told (its topic
 * record, which comes first), or given the partitions it names.  A topic
 * of which this node holds no replica is not created here: its states
 * are only kept for Metadata. */
static void create_missing(krep_mod *m, const kk_leader_and_isr_req *q, int16_t version)
{
    if (version < 2)
        return;
    /* the topics come one partition each (krep_ctl_next): the count is
     * the highest index named for the name, across entries */
    for (int i = 0; i < q->topic_states.n; i++) {
        const kk_leader_and_isr_topic *t = &q->topic_states.v[i];
        if (!t->topic_name.p || (int32_t)strlen(t->topic_name.p) != t->topic_name.len ||
            klog__topic_name_check(t->topic_name.p) < 0 || !krep_topic_replicated(t->topic_name.p))
            continue;
        int32_t want = 0;
        bool replica = false;
        for (int u = 0; u < q->topic_states.n; u++) {
            const kk_leader_and_isr_topic *o = &q->topic_states.v[u];
            if (!o->topic_name.p || strcmp(o->topic_name.p, t->topic_name.p) != 0)
                continue;
            for (int j = 0; j < o->partition_states.n; j++) {
                const kk_leader_and_isr_partition *ps = &o->partition_states.v[j];
                if (ps->partition_index >= want)
                    want = ps->partition_index + 1;
                replica |= krep_in(ps->replicas.v, ps->replicas.n, m->cfg.node_id);
            }
        }
        if (want <= 0 || want > 10000 || !replica || told_deleted(m, t->topic_name.p))
            continue; /* (a push of its states that the deletion overtook) */
        kt_topic *kt = klog__topic_get(m->k, t->topic_name.p);
        int have = kt ? atomic_load_explicit(&kt->nparts, memory_order_acquire) : 0;
        if (kt)
            klog__topic_put(kt);
        if (!kt && t->topic_name.p[0] == '_') {
            /* __consumer_offsets: compacted, as lib/group creates it */
            klog_conf *c;
            if (klog_conf_new(&c) == 0) {
                klog_conf_set(c, "cleanup.policy", "compact", NULL, 0);
                klog_conf_set_int(c, "segment.bytes", 16 << 20, NULL, 0);
                klog_topic_create(m->k, t->topic_name.p, want, c, NULL, 0);
                klog_conf_free(c);
            }
        } else if (!kt) {
            klog_conf *c = told_conf(m, t->topic_name.p);
            klog_topic_create(m->k, t->topic_name.p, want, c, NULL, 0);
            klog_conf_free(c);
        }
        else if (have < want)
            klog_topic_add_partitions(m->k, t->topic_name.p, want);
        atomic_store(&m->rescan, true);
    }
}

int krep_mod_leader_and_isr(krep_mod *m, const kk_leader_and_isr_req *q, int16_t version, krep_alloc_fn alloc,
                            void *actx, kk_leader_and_isr_resp *r)
{
    if (!m->node) {
        memset(r, 0, sizeof *r);
        r->error_code = KK_ERR_INVALID_REQUEST; /* a witness holds no replica */
        return 0;
    }
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
    pthread_cond_broadcast(&m->cv); /* the fetchers go to a new leader now, not after a nap */
    pthread_mutex_unlock(&m->mu);
    if (!m->quorum)
        persist_node(m);
    return rc;
}

int krep_mod_alter_partition(krep_mod *m, const kk_alter_partition_req *q, krep_alloc_fn alloc, void *actx,
                             kk_alter_partition_resp *r)
{
#if KLOG_HAVE_RAFT
    if (m->q)
        return krep_quorum_alter_partition(m->q, q, now_ms(), alloc, actx, r);
#endif
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
    if (!m->node)
        return KK_ERR_NOT_LEADER_OR_FOLLOWER; /* a witness */
    return krep_replica_fetch(m->node, topic, partition, replica_id, current_leader_epoch, fetch_offset, now_ms(), p);
}

int krep_mod_state(krep_mod *m, const char *topic, int32_t partition, krep_pstate *out)
{
    if (m->node)
        return krep_node_state(m->node, topic, partition, out);
#if KLOG_HAVE_RAFT
    if (m->q)
        return krep_quorum_state(m->q, topic, partition, out);
#endif
    return KLOG_ESTATE;
}

void krep_mod_controller(krep_mod *m, int32_t *id, int32_t *epoch)
{
    *id = -1;
    *epoch = 0;
    if (m->node) {
        krep_node_controller(m->node, id, epoch);
        return;
    }
#if KLOG_HAVE_RAFT
    if (m->q) {
        uint64_t term;
        int32_t lid;
        krep_quorum_raft(m->q, NULL, &term, &lid);
        if (lid > 0) {
            *id = lid;
            *epoch = (int32_t)term;
        }
    }
#endif
}

static bool stopping(krep_mod *m);
static void nap(krep_mod *m, int64_t until_ms);
#if KLOG_HAVE_RAFT
static void quorum_kick(krep_mod *m);
#endif

#if KLOG_HAVE_RAFT
/* After a proposal (rc > 0; rc <= 0 is returned as it is): wait until the
 * quorum's committed metadata holds partition `last` of the topic, this
 * node stops being the controller (KLOG_ENOTLEADER: what was proposed may
 * still commit), or timeout_ms (30 s if <= 0) passes (-ETIMEDOUT). */
static int await_committed(krep_mod *m, const char *name, int32_t last, int timeout_ms, int rc)
{
    int64_t until = now_ms() + (timeout_ms > 0 ? timeout_ms : 30000);
    krep_pstate st;
    while (rc > 0 && krep_quorum_state(m->q, name, last, &st) < 0) {
        if (!krep_quorum_ctl(m->q))
            return KLOG_ENOTLEADER;
        if (now_ms() >= until || stopping(m))
            return -ETIMEDOUT;
        nap(m, now_ms() + 5);
    }
    return rc;
}
#endif

int krep_mod_data_nodes(krep_mod *m, int32_t *out)
{
    int n = 0;
    for (int i = 0; i < m->cfg.npeers; i++)
        if (!krep_in(m->witnesses, m->nwitnesses, m->cfg.peers[i].id))
            out[n++] = m->cfg.peers[i].id;
    return n;
}

bool krep_mod_is_controller(krep_mod *m)
{
#if KLOG_HAVE_RAFT
    if (m->q)
        return krep_quorum_ctl(m->q) != NULL;
#endif
    pthread_mutex_lock(&m->mu);
    bool c = m->ctl != NULL;
    pthread_mutex_unlock(&m->mu);
    return c;
}

int krep_mod_list(krep_mod *m, krep_ctl_entry **out)
{
    *out = NULL;
    for (int tries = 0; tries < 4; tries++) {
        int n = 0;
        if (m->node)
            n = krep_node_list(m->node, NULL, 0);
#if KLOG_HAVE_RAFT
        else if (m->q)
            n = krep_quorum_list(m->q, NULL, 0);
#endif
        krep_ctl_entry *e = calloc((size_t)n + 8, sizeof *e);
        if (!e)
            return -ENOMEM;
        int got = 0;
        if (m->node)
            got = krep_node_list(m->node, e, n + 8);
#if KLOG_HAVE_RAFT
        else if (m->q)
            got = krep_quorum_list(m->q, e, n + 8);
#endif
        if (got <= n + 8) {
            *out = e;
            return got;
        }
        free(e); /* grew meanwhile */
    }
    return -EAGAIN;
}

int krep_mod_topic_parts(krep_mod *m, const char *topic)
{
    krep_ctl_entry *e;
    int n = krep_mod_list(m, &e);
    int parts = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(e[i].topic, topic) == 0 && e[i].partition >= parts)
            parts = e[i].partition + 1;
    free(e);
    return parts;
}

static krep_ctl *hosted(krep_mod *m);

/* A topic's configuration as "key=value\n" lines: its topic keys set in
 * conf, in table order (klog_topic_describe's form).  Returns 0 or
 * -EINVAL (longer than cap). */
static int conf_lines(const klog_conf *conf, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (unsigned t = 0; conf && t < klog__conf_ntables; t++) {
        const kc_table *tab = klog__conf_tables[t];
        for (unsigned i = 0; tab && i < tab->n; i++) {
            const kc_def *d = &tab->defs[i];
            char v[KC_STR_MAX];
            if (!d->name || !(d->scope & KC_SCOPE_TOPIC) || !strcmp(d->name, "num.partitions") ||
                !klog__conf_isset(conf, KC_KEY_BASE(tab->id) + i) || klog_conf_get(conf, d->name, v, sizeof v) < 0)
                continue;
            int w = snprintf(buf + len, cap - len, "%s=%s\n", d->name, v);
            if (w < 0 || (size_t)w >= cap - len)
                return -EINVAL;
            len += (size_t)w;
        }
    }
    return 0;
}

/* A name deleted whose deletion some node has not taken yet: created
 * again once every node has (replication.h). */
static bool being_deleted(krep_mod *m, const char *name)
{
    krep_ctl *c = hosted(m);
    bool settled = true;
    return c && krep_ctl_topic(c, name, NULL, 0, &settled) == KREP_TOPIC_DELETED && !settled;
}

/* Wait (at most ms) until every node took topic's record. */
static void wait_settled(krep_mod *m, const char *name, int ms)
{
    int64_t until = now_ms() + ms;
    for (;;) {
        krep_ctl *c = hosted(m);
        bool settled = false;
        if (!c || krep_ctl_topic(c, name, NULL, 0, &settled) == KREP_TOPIC_NONE || settled || now_ms() >= until ||
            stopping(m))
            return;
        nap(m, now_ms() + 5);
    }
}

#if KLOG_HAVE_RAFT
/* Wait (within timeout_ms) until the committed record of topic is `want`
 * (and, live, its lines equal config).  Returns 0 or -ETIMEDOUT. */
static int wait_record(krep_mod *m, const char *name, int want, const char *config, int timeout_ms)
{
    int64_t until = now_ms() + (timeout_ms > 0 ? timeout_ms : 30000);
    char have[KREP_TOPIC_CONFIG_MAX + 1];
    for (;;) {
        int r = krep_quorum_topic(m->q, name, have, sizeof have);
        if (r == want && (want != KREP_TOPIC_LIVE || !config || strcmp(have, config) == 0))
            return 0;
        if (!krep_quorum_ctl(m->q))
            return KLOG_ENOTLEADER; /* (what was proposed may still commit) */
        if (now_ms() >= until || stopping(m))
            return -ETIMEDOUT;
        nap(m, now_ms() + 5);
    }
}
#endif

int krep_mod_create_topic(krep_mod *m, const char *name, int nparts, const klog_conf *conf, int rf,
                          const int32_t *assign, int timeout_ms, char *errbuf, size_t errsize)
{
    int32_t data[KREP_MAX_NODES];
    int nd = krep_mod_data_nodes(m, data);
    if (nparts <= 0)
        nparts = (int)klog__conf_int(klog__conf(m->k), KC_NUM_PARTITIONS);
    if (rf <= 0 && !assign)
        rf = krep_default_rf(nd);
    if (rf < 1 || rf > nd || nparts < 1 || nparts > 10000)
        return klog__errf(errbuf, errsize, -EINVAL, "replication factor %d of %d nodes, %d partitions", rf, nd,
                          nparts);
    char *lines = malloc(KREP_TOPIC_CONFIG_MAX + 1);
    if (!lines)
        return -ENOMEM;
    if (conf_lines(conf, lines, KREP_TOPIC_CONFIG_MAX + 1) < 0) {
        free(lines);
        return klog__errf(errbuf, errsize, -EINVAL, "the topic's configuration is too long");
    }
    if (being_deleted(m, name)) {
        free(lines);
        return klog__errf(errbuf, errsize, -EEXIST, "topic '%s' is still being deleted on some node", name);
    }
#if KLOG_HAVE_RAFT
    if (m->q) {
        int32_t *a = malloc((size_t)nparts * (size_t)rf * sizeof *a + 1);
        if (!a) {
            free(lines);
            return -ENOMEM;
        }
        for (int p = 0; p < nparts; p++)
            if (assign)
                memcpy(a + (size_t)p * (size_t)rf, assign + (size_t)p * (size_t)rf, (size_t)rf * sizeof *a);
            else
                krep_assign(data, nd, name, p, rf, -1, a + (size_t)p * (size_t)rf);
        pthread_mutex_lock(&m->create_mu);
        krep_pstate st;
        /* the record first: the replicas create the topic with its
         * configuration (raft applies the commands in order) */
        int rc = krep_quorum_state(m->q, name, 0, &st) == 0 ? -EEXIST : krep_quorum_put_topic(m->q, name, lines, now_ms());
        if (rc == 0)
            rc = krep_quorum_add_topic(m->q, name, nparts, rf, a, now_ms());
        free(a);
        if (rc == 0)
            rc = -EEXIST;
        /* answered once committed: a raft majority holds the topic */
        rc = await_committed(m, name, nparts - 1, timeout_ms, rc);
        pthread_mutex_unlock(&m->create_mu);
        free(lines);
        if (rc == -EEXIST)
            return klog__errf(errbuf, errsize, rc, "topic '%s' already exists", name);
        if (rc == KLOG_ENOTLEADER)
            return klog__errf(errbuf, errsize, rc, "this node is no longer the controller");
        if (rc < 0)
            return klog__errf(errbuf, errsize, rc, "the controller: %s", klog_strerror(rc));
        return 0;
    }
#endif
    pthread_mutex_lock(&m->mu);
    int rc;
    if (!m->ctl)
        rc = klog__errf(errbuf, errsize, KLOG_ENOTLEADER, "this node is not the controller");
    else if (assign && !krep_in(assign, nparts * rf, m->cfg.node_id))
        rc = klog__errf(errbuf, errsize, -EINVAL, "the static controller (node %d) leads every partition: it must "
                        "be a replica of each", m->cfg.node_id);
    else if ((rc = klog_topic_create(m->k, name, nparts, conf, errbuf, errsize)) == 0) {
        /* under m->mu: the tick thread's krep_static_track does not give
         * it the default placement first; the record before the
         * partitions, so that the followers create it configured */
        rc = krep_ctl_put_topic(m->ctl, name, lines, false);
        if (rc == 0)
            rc = krep_static_add_topic(m->node, m->ctl, name, nparts, rf, assign);
        if (rc < 0) {
            klog_topic_delete(m->k, name);
            krep_ctl_put_topic(m->ctl, name, NULL, true);
            klog__errf(errbuf, errsize, rc, "%s", rc == -EINVAL ? "the static controller (this node) leads every "
                       "partition: it must be a replica of each" : klog_strerror(rc));
        }
    }
    pthread_mutex_unlock(&m->mu);
    free(lines);
    return rc < 0 ? rc : 0;
}

int krep_mod_topic_config(krep_mod *m, const char *name, char *config, size_t cap)
{
#if KLOG_HAVE_RAFT
    if (m->q)
        return krep_quorum_topic(m->q, name, config, cap);
#endif
    krep_ctl *c = hosted(m);
    return c ? krep_ctl_topic(c, name, config, cap, NULL) : KREP_TOPIC_NONE;
}

int krep_mod_delete_topic(krep_mod *m, const char *name, int timeout_ms, char *errbuf, size_t errsize)
{
    if (!krep_topic_replicated(name) || name[0] == '_')
        return klog__errf(errbuf, errsize, -EPERM, "%s is deleted with its groups (DeleteGroups)", name);
    int rc;
#if KLOG_HAVE_RAFT
    if (m->q) {
        pthread_mutex_lock(&m->create_mu);
        krep_pstate st;
        bool exists = krep_quorum_topic(m->q, name, NULL, 0) == KREP_TOPIC_LIVE ||
                      krep_quorum_state(m->q, name, 0, &st) == 0;
        rc = !exists ? KLOG_EUNKNOWN_TOPIC : krep_quorum_delete_topic(m->q, name, now_ms());
        if (rc == 0)
            rc = wait_record(m, name, KREP_TOPIC_DELETED, NULL, timeout_ms);
        pthread_mutex_unlock(&m->create_mu);
        if (rc == KLOG_ENOTLEADER)
            return klog__errf(errbuf, errsize, rc, "this node is no longer the controller");
        if (rc < 0)
            return klog__errf(errbuf, errsize, rc, "topic '%s': %s", name, klog_strerror(rc));
        wait_settled(m, name, timeout_ms > 0 && timeout_ms < 5000 ? timeout_ms : 5000);
        return 0;
    }
#endif
    pthread_mutex_lock(&m->mu);
    if (!m->ctl) {
        rc = klog__errf(errbuf, errsize, KLOG_ENOTLEADER, "this node is not the controller");
    } else {
        krep_pstate st;
        kt_topic *t = klog__topic_get(m->k, name);
        bool exists = t || krep_ctl_topic(m->ctl, name, NULL, 0, NULL) == KREP_TOPIC_LIVE ||
                      krep_ctl_state(m->ctl, name, 0, &st) == 0;
        klog__topic_put(t);
        /* the deletion first: a push of its states under way does not
         * make the copy again (create_missing) once it is gone */
        rc = !exists ? KLOG_EUNKNOWN_TOPIC : krep_static_delete_topic(m->node, m->ctl, name);
        if (rc == 0)
            told_put(m, name, NULL);
        if (rc == 0 && (rc = klog_topic_delete(m->k, name)) == KLOG_EUNKNOWN_TOPIC)
            rc = 0;
        if (rc < 0)
            klog__errf(errbuf, errsize, rc, "topic '%s': %s", name, klog_strerror(rc));
    }
    pthread_mutex_unlock(&m->mu);
    if (rc == 0)
        wait_settled(m, name, timeout_ms > 0 && timeout_ms < 5000 ? timeout_ms : 5000);
    return rc;
}

/* The configuration topic `name` has after an alter: the record's (cur,
 * its lines read here), the keys of set set, less the keys unset[], as
 * lines in next (both KREP_TOPIC_CONFIG_MAX + 1 bytes).  0, or
 * KLOG_EUNKNOWN_TOPIC, KLOG_ECONF, -EINVAL (too long), -ENOMEM. */
static int altered_config(krep_mod *m, const char *name, const klog_conf *set, const char *const *unset,
                          size_t nunset, char *cur, char *next, char *errbuf, size_t errsize)
{
    if (krep_mod_topic_config(m, name, cur, KREP_TOPIC_CONFIG_MAX + 1) != KREP_TOPIC_LIVE)
        return klog__errf(errbuf, errsize, KLOG_EUNKNOWN_TOPIC, "topic '%s' does not exist", name);
    klog_conf *c = NULL;
    if (!(c = krep_conf_of_lines(cur)) && klog_conf_new(&c) < 0)
        return -ENOMEM;
    int rc = conf_lines(set, next, KREP_TOPIC_CONFIG_MAX + 1);
    if (rc == 0)
        rc = krep_conf_set_lines(c, next, false, errbuf, errsize);
    for (size_t i = 0; rc == 0 && i < nunset; i++)
        rc = klog__conf_unset(c, unset[i], KC_SCOPE_TOPIC, errbuf, errsize);
    if (rc == 0 && conf_lines(c, next, KREP_TOPIC_CONFIG_MAX + 1) < 0)
        rc = klog__errf(errbuf, errsize, -EINVAL, "the topic's configuration is too long");
    klog_conf_free(c);
    return rc;
}

int krep_mod_alter_topic(krep_mod *m, const char *name, const klog_conf *set, const char *const *unset, size_t nunset,
                         int timeout_ms, char *errbuf, size_t errsize)
{
    char *cur = malloc(2 * (KREP_TOPIC_CONFIG_MAX + 1));
    if (!cur)
        return -ENOMEM;
    char *next = cur + KREP_TOPIC_CONFIG_MAX + 1;
    int rc = altered_config(m, name, set, unset, nunset, cur, next, errbuf, errsize);
    if (rc < 0) {
        free(cur);
        return rc;
    }
#if KLOG_HAVE_RAFT
    if (m->q) {
        /* every replica applies it when told (this node too, if it is one) */
        pthread_mutex_lock(&m->create_mu);
        rc = krep_quorum_put_topic(m->q, name, next, now_ms());
        if (rc == 0)
            rc = wait_record(m, name, KREP_TOPIC_LIVE, next, timeout_ms);
        pthread_mutex_unlock(&m->create_mu);
        if (rc < 0 && !*errbuf)
            klog__errf(errbuf, errsize, rc, "the controller: %s", klog_strerror(rc));
        free(cur);
        return rc;
    }
#else
    (void)timeout_ms;
#endif
    /* static: this node (the controller) holds the topic, and checks the
     * change by making it first */
    pthread_mutex_lock(&m->mu);
    if (!m->ctl)
        rc = klog__errf(errbuf, errsize, KLOG_ENOTLEADER, "this node is not the controller");
    else if ((rc = klog_topic_alter_config(m->k, name, set, unset, nunset, errbuf, errsize)) == 0)
        rc = krep_ctl_put_topic(m->ctl, name, next, false);
    pthread_mutex_unlock(&m->mu);
    free(cur);
    return rc;
}

int krep_mod_add_partitions(krep_mod *m, const char *name, int total, int timeout_ms, char *errbuf, size_t errsize)
{
    int rc;
#if KLOG_HAVE_RAFT
    if (m->q) {
        pthread_mutex_lock(&m->create_mu);
        rc = await_committed(m, name, total - 1, timeout_ms,
                             krep_quorum_add_topic(m->q, name, total, 0, NULL, now_ms()));
        pthread_mutex_unlock(&m->create_mu);
        if (rc < 0)
            return klog__errf(errbuf, errsize, rc, "%s", rc == KLOG_ENOTLEADER ? "this node is no longer the controller"
                                                                                : klog_strerror(rc));
        return 0;
    }
#else
    (void)timeout_ms;
#endif
    pthread_mutex_lock(&m->mu);
    if (!m->ctl)
        rc = klog__errf(errbuf, errsize, KLOG_ENOTLEADER, "this node is not the controller");
    else if ((rc = klog_topic_add_partitions(m->k, name, total)) == 0)
        rc = krep_static_add_topic(m->node, m->ctl, name, total, 0, NULL); /* the topic's factor */
    if (rc < 0 && !*errbuf)
        klog__errf(errbuf, errsize, rc, "%s", klog_strerror(rc));
    pthread_mutex_unlock(&m->mu);
    return rc < 0 ? rc : 0;
}

bool krep_mod_is_quorum(krep_mod *m) { return m->quorum; }

int krep_mod_elect_preferred(krep_mod *m, const char *topic, int32_t partition, int timeout_ms)
{
#if KLOG_HAVE_RAFT
    if (!m->q)
        return KLOG_ESTATE;
    int64_t until = now_ms() + (timeout_ms > 0 ? timeout_ms : 30000);
    for (bool proposed = false;; proposed = true) {
        int rc = krep_quorum_elect_preferred(m->q, topic, partition, now_ms());
        if (rc == 1)
            return proposed ? 0 : 1; /* it leads now (committed), or did already */
        if (rc < 0)
            return rc;
        if (now_ms() >= until || stopping(m))
            return -ETIMEDOUT;
        nap(m, now_ms() + 5);
    }
#else
    (void)m, (void)topic, (void)partition, (void)timeout_ms;
    return KLOG_ESTATE;
#endif
}

int krep_mod_raft_frame(krep_mod *m, const void *frame, size_t len, kk_wbuf *w)
{
    const uint8_t *f = frame;
    if (m && len >= 2 && (int16_t)(f[0] << 8 | f[1]) == KREP_API_TOPICS)
        return topics_frame(m, frame, len, w);
#if KLOG_HAVE_RAFT
    if (m && m->q) {
        int rc = krep_quorum_serve(m->q, frame, len, now_ms(), w);
        quorum_kick(m);
        return rc;
    }
#else
    (void)m, (void)frame, (void)len, (void)w;
#endif
    return KLOG_EFORMAT;
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

/* One request on a fresh connection and its answer, decoded into *resp
 * (arena a), each way within timeout_ms.  Returns 0 or < 0. */
static int peer_call(klog_conn *c, int timeout_ms, kk_wbuf *w, int16_t key, int16_t v, const void *body, kk_arena *a,
                     kk_response *resp)
{
    kk_wbuf_reset(w);
    int rc = krep_encode_request(w, key, v, 1, body);
    if (rc < 0)
        return rc;
    struct iovec iov[8];
    int n = kk_wbuf_iov(w, iov, 8);
    if ((rc = klog_conn_send(c, iov, n, timeout_ms)) < 0)
        return rc;
    const void *f;
    int len = klog_conn_recv(c, timeout_ms, &f);
    if (len < 0)
        return len;
    return kk_response_decode(f, (size_t)len, key, v, NULL, a, resp);
}

/* SASL PLAIN as user u with password pw on a fresh connection to a
 * server that requires authentication: SaslHandshake v1 then
 * SaslAuthenticate v1.  Returns 0, -EACCES (refused) or the connection's
 * error. */
static int sasl_plain(klog_conn *c, int timeout_ms, const char *u, const char *pw)
{
    kk_wbuf wb, *w = &wb;
    kk_wbuf_init(w, 0);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    kk_response resp;
    kk_sasl_handshake_req hq = { .mechanism = KK_STR("PLAIN") };
    int rc = peer_call(c, timeout_ms, w, KK_API_SASL_HANDSHAKE, 1, &hq, &a, &resp);
    if (rc == 0 && resp.body.sasl_handshake.error_code != KK_ERR_NONE)
        rc = -EACCES;
    size_t ul = strlen(u), pl = strlen(pw);
    if (rc == 0 && (ul >= KC_STR_MAX || pl >= KC_STR_MAX))
        rc = -EINVAL;
    if (rc == 0) {
        /* authzid NUL authcid NUL password */
        uint8_t buf[2 + 2 * KC_STR_MAX];
        buf[0] = 0;
        memcpy(buf + 1, u, ul);
        buf[1 + ul] = 0;
        memcpy(buf + 2 + ul, pw, pl);
        kk_sasl_authenticate_req aq = { .auth_bytes = { buf, (int32_t)(2 + ul + pl) } };
        rc = peer_call(c, timeout_ms, w, KK_API_SASL_AUTHENTICATE, 1, &aq, &a, &resp);
        explicit_bzero(buf, sizeof buf);
        if (rc == 0 && resp.body.sasl_authenticate.error_code != KK_ERR_NONE)
            rc = -EACCES;
    }
    kk_wbuf_free(w);
    kk_arena_reset(&a);
    return rc;
}

/* SASL PLAIN to a peer whose server requires authentication
 * (replication.sasl.*: Kafka's inter-broker SASL).  -EACCES: the runner
 * backs off and retries as for any lost connection. */
static int peer_sasl(krep_mod *m, klog_conn *c)
{
    return sasl_plain(c, (int)m->timeout_ms, m->sasl_user, m->sasl_pass);
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
        if (rc == 0 && m->sasl_mech)
            rc = peer_sasl(m, c);
        if (rc < 0) {
            klog_conn_close(c);
            return rc;
        }
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
#if KLOG_HAVE_RAFT
    if (m->q)
        return krep_quorum_ctl(m->q);
#endif
    pthread_mutex_lock(&m->mu);
    krep_ctl *c = m->ctl;
    pthread_mutex_unlock(&m->mu);
    return c;
}

#if KLOG_HAVE_RAFT
static int resp_raft(runner *r, const void *f, size_t len)
{
    return krep_quorum_response(r->m->q, r->peer, f, len, now_ms());
}
#endif

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
#if KLOG_HAVE_RAFT
        if (m->q)
            rc = krep_quorum_serve(m->q, frame, len, now_ms(), &r->rw);
        else
#endif
            rc = ctl ? krep_ctl_serve(ctl, frame, len, now_ms(), &r->rw) : KLOG_ESTATE;
    } else if (len >= 2 && (int16_t)(frame[0] << 8 | frame[1]) == KREP_API_TOPICS) {
        rc = topics_frame(m, frame, len, &r->rw);
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

#if KLOG_HAVE_RAFT
/* A raft peer's idle connection that its other end closed: when the
 * peer's address then refuses a connection, the peer is gone
 * (krep_quorum_refused).  A follower holds such a connection to the raft
 * leader (its answers go on it) and so learns within milliseconds that
 * the controller died, not after an election timeout. */
static void probe_idle(runner *r)
{
    const void *f;
    if (!r->c || klog_conn_recv(r->c, 0, &f) == -ETIMEDOUT)
        return;
    drop_conn(r);
    const char *url = url_of(r->m, r->peer);
    klog_conn *c = NULL;
    int rc = url ? klog_transport_connect(r->m->reg, url, CONNECT_MS, &c) : -EINVAL;
    if (c)
        klog_conn_close(c);
    if (rc == -ECONNREFUSED)
        krep_quorum_refused(r->m->q, r->peer, now_ms());
}
#endif

/* ---- auto-creation through the controller ---------------------------------------------------------- */

/* A request to the controller on a fresh connection with the
 * replication's SASL, as auto-creation and forwarded configuration changes
 * send it: cid is the controller asked (-1: none known, or only this node
 * when others_only), resp its answer (its strings in the connection's
 * buffer and the arena: valid until ctl_call_end). */
typedef struct ctl_call {
    int32_t cid;
    kk_wbuf w;
    kk_arena a;
    kk_response resp;
    klog_conn *c;
} ctl_call;

/* 0 (cc->resp holds the answer), KLOG_ENOTLEADER, or the connection's
 * error; ctl_call_end in every case. */
static int controller_call(krep_mod *m, ctl_call *cc, bool others_only, int timeout_ms, int16_t key, int16_t v,
                           const void *body)
{
    int32_t cep;
    memset(cc, 0, sizeof *cc);
    kk_wbuf_init(&cc->w, 0);
    kk_arena_init(&cc->a, NULL, 0);
    krep_mod_controller(m, &cc->cid, &cep);
    const char *url =
        cc->cid >= 0 && !(others_only && cc->cid == m->cfg.node_id) ? url_of(m, cc->cid) : NULL;
    if (!url)
        return KLOG_ENOTLEADER;
    int rc = klog_transport_connect(m->reg, url, CONNECT_MS, &cc->c);
    if (rc == 0 && m->sasl_mech)
        rc = peer_sasl(m, cc->c);
    if (rc == 0)
        rc = peer_call(cc->c, timeout_ms, &cc->w, key, v, body, &cc->a, &cc->resp);
    return rc;
}

static void ctl_call_end(ctl_call *cc)
{
    klog_conn_close(cc->c);
    cc->c = NULL;
    kk_wbuf_free(&cc->w);
    kk_arena_reset(&cc->a);
}

/* One auto-created topic, as a CreateTopics with the defaults: made here
 * when this node is the controller, else sent to the controller (a fresh
 * connection, as klog promote's).  The outcome is logged: the client that
 * asked learns it from its next Metadata. */
static void auto_create_one(krep_mod *m, const char *name)
{
    char eb[256] = "";
    int rc;
    if (krep_mod_is_controller(m)) {
        rc = krep_mod_create_topic(m, name, 0, NULL, 0, NULL, (int)m->timeout_ms, eb, sizeof eb);
    } else {
        ctl_call cc;
        kk_create_topics_req_topic t = { .name = KK_STR(name), .num_partitions = -1, .replication_factor = -1 };
        kk_create_topics_req q = { .topics = { &t, 1 }, .timeout_ms = (int32_t)m->timeout_ms };
        rc = controller_call(m, &cc, false, (int)m->timeout_ms, KK_API_CREATE_TOPICS, 4, &q);
        if (rc == 0 && cc.resp.body.create_topics.topics.n == 1) {
            int16_t e = cc.resp.body.create_topics.topics.v[0].error_code;
            if (e != KK_ERR_NONE && e != KK_ERR_TOPIC_ALREADY_EXISTS) {
                snprintf(eb, sizeof eb, "the controller (node %d) answered error %d", (int)cc.cid, (int)e);
                rc = -EIO;
            }
        } else if (rc == 0) {
            rc = -EPROTO;
        }
        ctl_call_end(&cc);
    }
    if (rc < 0 && rc != -EEXIST)
        klog__log_defer(m->k, KLOG_LOG_WARNING, rc, "replication", "auto-creating topic %s: %s", name,
                        eb[0] ? eb : klog_strerror(rc));
}

/* ---- topic configuration changes forwarded to the controller --------------------------------------- */

static void *creator_main(void *arg);

/* A forwarded change (module.h): shared by the caller, who polls it, and
 * the creator thread, which sends it; freed by the last to let go. */
struct krep_fwd {
    krep_mod *m;
    _Atomic int refs;
    _Atomic bool done;            /* rc, kerr, msg final (release-stored) */
    int rc;
    int16_t kerr;
    char msg[256];
    int64_t applied_by;           /* done: until when this node's copy is awaited */
    bool incremental, validate_only;
    char name[KLOG_TOPIC_NAME_MAX + 1];
    char *lines;                  /* the keys set, "key=value\n" each */
    char **unset;
    size_t nunset;
};

static void fwd_release(krep_fwd *f)
{
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    for (size_t i = 0; f->unset && i < f->nunset; i++)
        free(f->unset[i]);
    free(f->unset);
    free(f->lines);
    free(f);
}

void krep_mod_forward_release(krep_fwd *f) { fwd_release(f); }

/* Whether this node's view of topic `name` (DescribeConfigs': its copy,
 * else what it was told) has the keys of `lines` with their values and
 * none of unset[]; also true when it has no view of it (gone meanwhile). */
static bool config_applied(krep_mod *m, const char *name, const char *lines, char *const *unset, size_t nunset)
{
    char have[8192];
    int rc = klog_topic_describe(m->k, name, NULL, 0, have, sizeof have);
    if (rc == KLOG_EUNKNOWN_TOPIC)
        rc = krep_mod_told_config(m, name, have, sizeof have);
    if (rc < 0)
        return true;
    for (const char *p = lines; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = (size_t)(nl - p); /* "key=value" */
        bool found = false;
        for (const char *h = have; *h && !found; h = strchr(h, '\n') ? strchr(h, '\n') + 1 : h + strlen(h))
            found = !strncmp(h, p, len) && (h[len] == '\n' || h[len] == 0);
        if (!found)
            return false;
        p = nl + 1;
    }
    for (size_t i = 0; i < nunset; i++) {
        size_t kl = strlen(unset[i]);
        for (const char *h = have; *h; h = strchr(h, '\n') ? strchr(h, '\n') + 1 : h + strlen(h))
            if (!strncmp(h, unset[i], kl) && h[kl] == '=')
                return false;
    }
    return true;
}

int krep_mod_forward_start(krep_mod *m, const char *name, bool incremental, const klog_conf *set,
                           const char *const *unset, size_t nunset, bool validate_only, krep_fwd **out)
{
    *out = NULL;
    if (!m || !name || strlen(name) > KLOG_TOPIC_NAME_MAX || nunset > 1024)
        return -EINVAL;
    krep_fwd *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->m = m;
    atomic_init(&f->refs, 2);
    f->incremental = incremental;
    f->validate_only = validate_only;
    snprintf(f->name, sizeof f->name, "%s", name);
    int rc = (f->lines = malloc(KREP_TOPIC_CONFIG_MAX + 1)) ? 0 : -ENOMEM;
    if (rc == 0 && (rc = conf_lines(set, f->lines, KREP_TOPIC_CONFIG_MAX + 1)) < 0)
        rc = -EINVAL; /* (longer than a topic record can be) */
    if (rc == 0 && nunset && !(f->unset = calloc(nunset, sizeof *f->unset)))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < nunset; i++, f->nunset++)
        if (!(f->unset[i] = strdup(unset[i])))
            rc = -ENOMEM;
    pthread_mutex_lock(&m->mu);
    if (rc == 0 && m->stopping)
        rc = KLOG_ECLOSED;
    else if (rc == 0 && m->nfq == AUTO_MAX)
        rc = -EAGAIN;
    else if (rc == 0 && !m->creator_started && pthread_create(&m->creator, NULL, creator_main, m) != 0)
        rc = -EAGAIN;
    if (rc == 0) {
        m->creator_started = true;
        m->fq[m->nfq++] = f;
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
    if (rc < 0) {
        atomic_store(&f->refs, 1);
        fwd_release(f);
        return rc;
    }
    *out = f;
    return 0;
}

int krep_mod_forward_done(krep_fwd *f, int *rc, int16_t *kerr, char *msg, size_t msize)
{
    if (!atomic_load_explicit(&f->done, memory_order_acquire))
        return 0;
    /* committed: this node's copy next, so that the client reads its
     * change back here (bounded: it is made whether or not this node
     * hears of it in time) */
    if (f->rc == 0 && f->kerr == KK_ERR_NONE && !f->validate_only && now_ms() < f->applied_by &&
        !config_applied(f->m, f->name, f->lines, f->unset, f->nunset))
        return 0;
    *rc = f->rc;
    *kerr = f->kerr;
    snprintf(msg, msize, "%s", f->msg);
    return 1;
}

/* Send f to the controller (the creator thread): f->rc, kerr, msg.  As
 * Kafka's broker-to-controller channel, a controller that moved
 * (NOT_CONTROLLER, or its connection failed) is asked again where the
 * metadata now says it is, for up to 10 s. */
static void forward_one(krep_mod *m, krep_fwd *f)
{
    char *errbuf = f->msg;
    size_t errsize = sizeof f->msg;
    int timeout_ms = (int)KLOG_MIN(m->timeout_ms, 30000);
    /* a SET per key set, a DELETE per key unset (AlterConfigs: a null
     * value; the controller drops the keys the request leaves out) */
    size_t nset = 0;
    for (const char *p = f->lines; *p; p = strchr(p, '\n') + 1)
        nset++;
    char *copy = strdup(f->lines);
    kk_alter_configs_req_config *cs = calloc(nset + f->nunset + 1, sizeof *cs);
    int rc = copy && cs ? 0 : -ENOMEM;
    size_t n = 0;
    for (char *p = copy; rc == 0 && *p;) {
        char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
        *nl = 0;
        *eq = 0;
        cs[n++] = (kk_alter_configs_req_config){ .name = KK_STR(p), .config_operation = 0, .value = KK_STR(eq + 1) };
        p = nl + 1;
    }
    for (size_t i = 0; rc == 0 && i < f->nunset; i++)
        cs[n++] = (kk_alter_configs_req_config){ .name = KK_STR(f->unset[i]), .config_operation = 1,
                                                 .value = KK_STR_NULL };
    int32_t cid = -1;
    int64_t until = now_ms() + 10000;
    for (int tries = 0; rc == 0 || tries > 0; tries++) {
        if (tries > 0)
            nap(m, now_ms() + 50);
        f->kerr = KK_ERR_NONE;
        errbuf[0] = 0;
        ctl_call cc;
        kk_alter_configs_req_resource res = { .resource_type = 2, .resource_name = KK_STR(f->name),
                                              .configs = { cs, (int32_t)n } };
        kk_alter_configs_req q = { .resources = { &res, 1 }, .validate_only = f->validate_only };
        int16_t api = f->incremental ? KK_API_INCREMENTAL_ALTER_CONFIGS : KK_API_ALTER_CONFIGS;
        rc = controller_call(m, &cc, true, timeout_ms, api, 0, &q);
        cid = cc.cid;
        /* (the two responses are one type) */
        const kk_alter_configs_resp *r = &cc.resp.body.alter_configs;
        if (rc == KLOG_ENOTLEADER) {
            klog__errf(errbuf, errsize, rc, "no other node is known to be the controller");
        } else if (rc == 0 && r->responses.n == 1) {
            f->kerr = r->responses.v[0].error_code;
            const kk_str *em = &r->responses.v[0].error_message;
            if (f->kerr != KK_ERR_NONE)
                snprintf(errbuf, errsize, "the controller (node %d): %.*s", (int)cid, em->p ? (int)em->len : 0,
                         em->p ? em->p : "");
        } else if (rc == 0) {
            rc = -EPROTO;
        }
        ctl_call_end(&cc);
        if (rc < 0 && !*errbuf)
            klog__errf(errbuf, errsize, rc, "forwarding to the controller (node %d): %s", (int)cid,
                       klog_strerror(rc));
        /* (this node became the controller: the client asks again and is
         * answered here) */
        bool moved = (rc == KLOG_ENOTLEADER && cid != m->cfg.node_id) ||
                     (rc == 0 && f->kerr == KK_ERR_NOT_CONTROLLER) || rc == -ECONNREFUSED || rc == -ECONNRESET ||
                     rc == -EPIPE || rc == -ETIMEDOUT;
        if (!moved || now_ms() >= until || stopping(m))
            break;
    }
    free(cs);
    free(copy);
    f->rc = rc;
    f->applied_by = now_ms() + 5000;
}

static void *creator_main(void *arg)
{
    krep_mod *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        if (m->nfq > 0) {
            krep_fwd *f = m->fq[0];
            memmove(m->fq, m->fq + 1, (size_t)--m->nfq * sizeof *m->fq);
            pthread_mutex_unlock(&m->mu);
            forward_one(m, f);
            atomic_store_explicit(&f->done, true, memory_order_release);
            fwd_release(f);
            pthread_mutex_lock(&m->mu);
            continue;
        }
        if (m->naq == 0) {
            pthread_cond_wait(&m->cv, &m->mu);
            continue;
        }
        struct acreq r = m->aq[0];
        memmove(m->aq, m->aq + 1, (size_t)--m->naq * sizeof *m->aq);
        pthread_mutex_unlock(&m->mu);
        auto_create_one(m, r.name);
        pthread_mutex_lock(&m->mu);
        if (m->nadone == AUTO_MAX)
            memmove(m->adone, m->adone + 1, (size_t)--m->nadone * sizeof *m->adone);
        r.at_ms = now_ms();
        m->adone[m->nadone++] = r;
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int krep_mod_auto_create(krep_mod *m, const char *name)
{
    if (!m || strlen(name) > KLOG_TOPIC_NAME_MAX)
        return -EINVAL;
    int rc = 0;
    int64_t now = now_ms();
    pthread_mutex_lock(&m->mu);
    bool seen = false;
    for (int i = 0; i < m->naq && !seen; i++)
        seen = !strcmp(m->aq[i].name, name);
    for (int i = 0; i < m->nadone && !seen; i++)
        seen = !strcmp(m->adone[i].name, name) && now - m->adone[i].at_ms < AUTO_AGAIN_MS;
    if (m->stopping)
        rc = KLOG_ECLOSED;
    else if (seen)
        rc = 0;
    else if (m->naq == AUTO_MAX)
        rc = -EAGAIN;
    else if (!m->creator_started && pthread_create(&m->creator, NULL, creator_main, m) != 0)
        rc = -EAGAIN;
    else {
        m->creator_started = true;
        snprintf(m->aq[m->naq].name, sizeof m->aq[0].name, "%s", name);
        m->aq[m->naq++].at_ms = now;
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

#if KLOG_HAVE_RAFT
/* Metadata the quorum applied since the runners last looked (a new
 * leader elected, a node registered): they wake now, not after a nap, so
 * that the controller's pushes go out at once. */
static void quorum_kick(krep_mod *m)
{
    uint64_t idx, h;
    krep_quorum_applied(m->q, &idx, &h);
    if (atomic_exchange(&m->q_seen, idx) != idx) {
        pthread_mutex_lock(&m->mu);
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
    }
}
#endif

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
        if (r->kind == R_RAFT) {
#if KLOG_HAVE_RAFT
            rc = krep_quorum_next(m->q, r->peer, now, &r->w, &wake);
            int xrc = rc > 0 ? exchange(r, r->peer, resp_raft) : 0;
            if (rc > 0)
                quorum_kick(m);
            if (xrc < 0) {
                krep_quorum_failed(m->q, r->peer, now_ms());
                if (xrc == -ECONNREFUSED)
                    krep_quorum_refused(m->q, r->peer, now_ms());
                nap(m, now_ms() + 20);
            } else if (rc <= 0) {
                probe_idle(r);
                nap(m, wake < now + 5 ? wake : now + 5); /* raft's messages wait on no wake-up: poll */
            }
#endif
            continue;
        } else if (r->kind == R_FETCH) {
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
#if KLOG_HAVE_RAFT
                if (rc == -ECONNREFUSED && m->q)
                    krep_quorum_refused(m->q, r->peer, now_ms());
#endif
            } else {
                krep_chan_failed(m->node, r->kind == R_CTL ? KREP_DST_CTL : r->peer, now_ms());
            }
            nap(m, now_ms() + 100);
        }
    }
    return NULL;
}

/* Quorum: every topic this node holds, proposed to the metadata when this
 * node leads raft (a topic created elsewhere reaches it by LeaderAndIsr),
 * with the default replication factor; CreateTopics proposes its own
 * (krep_mod_create_topic, under create_mu: its topic is not proposed
 * twice). */
#if KLOG_HAVE_RAFT
static void quorum_topics(krep_mod *m)
{
    if (!m->q || !krep_quorum_ctl(m->q))
        return; /* (a witness too: a topic a client created on it) */
    if (pthread_mutex_trylock(&m->create_mu) != 0)
        return; /* a CreateTopics is under way: next time */
    kt_topic **snap;
    ssize_t nt = klog__topics_snapshot(m->k, &snap);
    if (nt < 0)
        return;
    for (ssize_t i = 0; i < nt; i++) {
        kt_topic *t = snap[i];
        if (!krep_topic_replicated(t->name) || atomic_load(&t->deleted))
            continue;
        int rec = krep_quorum_topic(m->q, t->name, NULL, 0);
        if (rec == KREP_TOPIC_DELETED)
            continue; /* a copy the deletion has not reached yet */
        if (rec == KREP_TOPIC_NONE) {
            /* its record first, with the configuration it has here */
            char lines[8192];
            if (klog_topic_describe(m->k, t->name, NULL, 0, lines, sizeof lines) < 0 ||
                krep_quorum_put_topic(m->q, t->name, lines, now_ms()) < 0)
                continue;
        }
        krep_quorum_add_topic(m->q, t->name, atomic_load_explicit(&t->nparts, memory_order_acquire), 0, NULL,
                              now_ms());
    }
    klog__topics_release(snap, (size_t)nt);
    pthread_mutex_unlock(&m->create_mu);
}
#endif

static void *tick_main(void *arg)
{
    krep_mod *m = arg;
    int64_t topics_at = 0;
    while (!stopping(m)) {
        int64_t wake = m->node ? krep_node_tick(m->node, now_ms()) : now_ms() + 20;
#if KLOG_HAVE_RAFT
        if (m->q) {
            int64_t qw = krep_quorum_tick(m->q, now_ms());
            quorum_kick(m);
            if (qw < wake)
                wake = qw;
            if (now_ms() >= topics_at) {
                quorum_topics(m);
                topics_at = now_ms() + 200;
            }
        }
#endif
        (void)topics_at;
        if (m->node && atomic_exchange(&m->rescan, false)) {
            kt_topic **snap;
            ssize_t nt = klog__topics_snapshot(m->k, &snap);
            if (nt >= 0) {
                for (ssize_t i = 0; i < nt; i++)
                    krep_node_track(m->node, snap[i]);
                klog__topics_release(snap, (size_t)nt);
            }
            pthread_mutex_lock(&m->mu);
            if (m->ctl)
                krep_static_track(m->node, m->ctl);
            pthread_mutex_unlock(&m->mu);
        }
        int64_t until = now_ms() + (m->quorum ? 5 : 20);
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
    int64_t mode = klog__conf_int(c, KC_REPLICATION_CONTROLLER);
    m->quorum = mode == KC_CONTROLLER_QUORUM || (mode == KC_CONTROLLER_AUTO && KLOG_HAVE_RAFT && m->cfg.npeers >= 3);
    if (m->quorum && !KLOG_HAVE_RAFT) {
        free(m);
        return klog__errf(errbuf, errsize, KLOG_ECONF, "replication.controller=quorum: klog was built without raft");
    }
    if (m->quorum && m->cfg.npeers < 3) {
        free(m);
        return klog__errf(errbuf, errsize, KLOG_ECONF,
                          "replication.controller=quorum needs 3 or more peers (a witness makes the third)");
    }
    for (int i = 0; m->quorum && i < m->cfg.npeers; i++)
        if (m->cfg.peers[i].id <= 0) {
            free(m);
            return klog__errf(errbuf, errsize, KLOG_ECONF, "replication.controller=quorum: node ids start at 1");
        }
    const char *wit = klog__conf_str(c, KC_REPLICATION_WITNESSES);
    while (wit && *wit) {
        char *end;
        long id = strtol(wit, &end, 10);
        if (end == wit || (*end && *end != ',') || !url_of(m, (int32_t)id) || m->nwitnesses == KREP_MAX_NODES) {
            free(m);
            return klog__errf(errbuf, errsize, KLOG_ECONF, "replication.witnesses: expected IDs of peers at \"%s\"",
                              wit);
        }
        m->witnesses[m->nwitnesses++] = (int32_t)id;
        m->witness |= (int32_t)id == m->cfg.node_id;
        wit = *end ? end + 1 : end;
    }
    if (m->nwitnesses > 0 && !m->quorum) {
        free(m);
        return klog__errf(errbuf, errsize, KLOG_ECONF, "replication.witnesses: only a quorum controller has witnesses");
    }
    if (m->nwitnesses >= m->cfg.npeers) {
        free(m);
        return klog__errf(errbuf, errsize, KLOG_ECONF, "replication.witnesses: no node would hold data");
    }
    m->session_ms = klog__conf_int(c, KC_REPLICA_SESSION_TIMEOUT_MS);
    m->election_ms = klog__conf_int(c, KC_QUORUM_ELECTION_TIMEOUT_MS);
    m->cfg.lag_max_ms = klog__conf_int(c, KC_REPLICA_LAG_TIME_MAX_MS);
    m->cfg.fetch_wait_max_ms = (int32_t)klog__conf_int(c, KC_REPLICA_FETCH_WAIT_MAX_MS);
    m->cfg.fetch_max_bytes = (int32_t)klog__conf_int(c, KC_REPLICA_FETCH_MAX_BYTES);
    m->cfg.fetch_backoff_ms = klog__conf_int(c, KC_REPLICA_FETCH_BACKOFF_MS);
    m->cfg.heartbeat_ms = klog__conf_int(c, KC_REPLICA_HEARTBEAT_MS);
    m->timeout_ms = klog__conf_int(c, KC_REPLICA_SOCKET_TIMEOUT_MS);
    m->sasl_mech = (int)klog__conf_int(c, KC_REPLICATION_SASL_MECHANISM);
    if (m->sasl_mech) {
        const char *u = klog__conf_str(c, KC_REPLICATION_SASL_USERNAME), *pw = klog__conf_str(c, KC_REPLICATION_SASL_PASSWORD);
        if (!u || !*u || !pw) {
            free(m);
            return klog__errf(errbuf, errsize, KLOG_ECONF,
                              "replication.sasl.mechanism=PLAIN needs replication.sasl.username and .password");
        }
        snprintf(m->sasl_user, sizeof m->sasl_user, "%s", u);
        snprintf(m->sasl_pass, sizeof m->sasl_pass, "%s", pw);
    }
    if (m->timeout_ms < m->cfg.fetch_wait_max_ms + 1000)
        m->timeout_ms = m->cfg.fetch_wait_max_ms + 1000;
    /* a run's incarnation: the wall clock in microseconds, as Kafka's
     * broker epoch grows with each registration */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->cfg.incarnation = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->create_mu, NULL);
    pthread_mutex_init(&m->tmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    *state = m;
    return 0;
}

static void mod_stop(struct klog *k, void *state);

#if KLOG_HAVE_RAFT
static bool is_witness(const krep_mod *m, int32_t id) { return krep_in(m->witnesses, m->nwitnesses, id); }

/* The quorum's start: the node (unless a witness), raft's voter, and the
 * threads: fetchers to the data peers, the channel to the controller,
 * pushes to the data nodes (while raft makes this node the controller),
 * raft's channels to the other voters. */
static int quorum_start(struct klog *k, krep_mod *m, char *errbuf, size_t errsize)
{
    m->cfg.controller_id = -1; /* raft says who */
    /* a leader cut off from the controller as long as the controller
     * takes to give its partitions to others (and a heartbeat more) takes
     * no more writes for them */
    m->cfg.fence_after_ms = m->session_ms + m->cfg.heartbeat_ms;
    int rc;
    if (!m->witness && (rc = krep_node_new(&m->node, k, &m->cfg)) < 0)
        return klog__errf(errbuf, errsize, rc, "replication: %s", klog_strerror(rc));
    krep_quorum_config qc;
    krep_quorum_config_init(&qc);
    qc.node_id = m->cfg.node_id;
    for (int i = 0; i < m->cfg.npeers; i++) {
        int32_t id = m->cfg.peers[i].id;
        qc.voters[qc.nvoters] = id;
        snprintf(qc.voter_urls[qc.nvoters], sizeof qc.voter_urls[0], "%s", m->cfg.peers[i].url);
        qc.nvoters++;
        if (!is_witness(m, id))
            qc.data[qc.ndata++] = id;
    }
    qc.seed = (uint64_t)m->cfg.incarnation;
    qc.election_timeout_ms = (unsigned)m->election_ms;
    qc.heartbeat_timeout_ms = (unsigned)(m->election_ms / 10 > 0 ? m->election_ms / 10 : 1);
    qc.session_timeout_ms = m->session_ms;
    qc.propose_retry_ms = m->election_ms;
    if (klog__conf_int(klog__conf(k), KC_AUTO_LEADER_REBALANCE_ENABLE))
        qc.rebalance_interval_ms = klog__conf_int(klog__conf(k), KC_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS) * 1000;
    qc.rebalance_pct = (int)klog__conf_int(klog__conf(k), KC_LEADER_IMBALANCE_PER_BROKER_PERCENTAGE);
    rc = krep_quorum_open(&m->q, klog__io(k), klog__dir(k), m->node, &qc, now_ms(), errbuf, errsize);
    if (rc < 0)
        return rc;
    if ((rc = klog_transport_registry_new(&m->reg, 0)) < 0)
        return rc;
    for (int i = 0; i < m->cfg.npeers; i++) {
        int32_t id = m->cfg.peers[i].id;
        if (id != m->cfg.node_id) {
            if (m->node && !is_witness(m, id))
                m->runners[m->nrunners++] = (runner){ .m = m, .kind = R_FETCH, .peer = id };
            m->runners[m->nrunners++] = (runner){ .m = m, .kind = R_RAFT, .peer = id };
        }
        if (!is_witness(m, id))
            m->runners[m->nrunners++] = (runner){ .m = m, .kind = R_PUSH, .peer = id };
    }
    if (m->node)
        m->runners[m->nrunners++] = (runner){ .m = m, .kind = R_CTL, .peer = -1 };
    return 0;
}
#endif

static int mod_start(struct klog *k, void *state, char *errbuf, size_t errsize)
{
    krep_mod *m = state;
    if (!m)
        return 0;
    int rc;
    if (m->quorum) {
#if KLOG_HAVE_RAFT
        if ((rc = quorum_start(k, m, errbuf, errsize)) < 0) {
            mod_stop(k, m);
            return rc;
        }
        goto threads;
#endif
    }
    rc = krep_state_read(k, &m->known);
    if (rc < 0)
        return klog__errf(errbuf, errsize, rc, "%s/%s: %s", klog__dir(k), KREP_STATE_FILE,
                          rc == KLOG_ECORRUPT ? "not a replication state file" : klog_strerror(rc));
    bool file = rc == 1;
    m->cfg.controller_id = file ? m->known.ctl_id : m->leader0;
    m->cfg.controller_epoch = file ? m->known.ctl_epoch : 0;
    if ((rc = krep_node_new(&m->node, k, &m->cfg)) < 0)
        return klog__errf(errbuf, errsize, rc, "replication: %s", klog_strerror(rc));
    if (m->cfg.controller_id == m->cfg.node_id) {
        krep_ctl *ctl = NULL;
        rc = krep_static_host(m->node, m->cfg.controller_epoch > 0 ? m->cfg.controller_epoch : 1, m->known.e,
                              m->known.n, &ctl);
        if (rc == KLOG_EFENCED) {
            /* a newer controller led while this node was away: it waits
             * to be told (that controller's pushes reach it) */
            rc = 0;
        } else if (rc < 0) {
            krep_node_free(m->node);
            m->node = NULL;
            return klog__errf(errbuf, errsize, rc, "writing %s/%s: %s", klog__dir(k), KREP_STATE_FILE,
                              klog_strerror(rc));
        } else {
            pthread_mutex_lock(&m->mu);
            install(m, ctl);
            pthread_mutex_unlock(&m->mu);
        }
    }
    /* peers over tls:// dial with this node's own ssl.* keys: its
     * certificate is the client certificate a peer's server verifies
     * (ssl.client.auth), ssl.ca.location what the peer's must chain to */
    if ((rc = klog_transport_registry_new(&m->reg, 0)) < 0 ||
        (rc = klog_transport_register(m->reg, klog_transport_tls(), klog__conf(k))) < 0) {
        mod_stop(k, m);
        return klog__errf(errbuf, errsize, rc, "replication transports: %s", klog_strerror(rc));
    }
    for (int i = 0; i < m->cfg.npeers; i++) {
        int32_t id = m->cfg.peers[i].id;
        if (id != m->cfg.node_id)
            m->runners[m->nrunners++] = (runner){ .m = m, .kind = R_FETCH, .peer = id };
        m->runners[m->nrunners++] = (runner){ .m = m, .kind = R_PUSH, .peer = id };
    }
    m->runners[m->nrunners++] = (runner){ .m = m, .kind = R_CTL, .peer = -1 };
#if KLOG_HAVE_RAFT
threads:
#endif
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
    if (m->creator_started)
        pthread_join(m->creator, NULL); /* (it finishes the creation it is in: bounded by timeout_ms) */
    m->creator_started = false;
    for (int i = 0; i < m->nfq; i++) { /* never sent: their callers see them fail */
        krep_fwd *f = m->fq[i];
        f->rc = KLOG_ECLOSED;
        snprintf(f->msg, sizeof f->msg, "the node is stopping");
        atomic_store_explicit(&f->done, true, memory_order_release);
        fwd_release(f);
    }
    m->nfq = 0;
    m->naq = m->nadone = 0;
#if KLOG_HAVE_RAFT
    krep_quorum_close(m->q); /* before the node it tells */
    m->q = NULL;
#endif
    klog_transport_registry_free(m->reg);
    m->reg = NULL;
    krep_ctl_free(m->ctl);
    m->ctl = NULL;
    for (int i = 0; i < m->nretired; i++)
        krep_ctl_free(m->retired[i]);
    m->nretired = 0;
    krep_node_free(m->node);
    m->node = NULL;
    krep_state_free(&m->known);
}

static int mod_fini(struct klog *k, void *state)
{
    (void)k;
    krep_mod *m = state;
    if (!m)
        return 0;
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->create_mu);
    pthread_mutex_destroy(&m->tmu);
    for (size_t i = 0; i < m->ntold; i++)
        free(m->told[i].config);
    free(m->told);
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
    if (!m || !krep_topic_replicated(topic))
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

KLOG_API int klog_replication_promote_report(klog *k, unsigned flags, klog_promote_cb cb, void *opaque,
                                             char *errbuf, size_t errsize)
{
    if (!k || (flags & ~KLOG_PROMOTE_UNCLEAN))
        return -EINVAL;
    int rc = klog__module_bind(k, &krep_module, errbuf, errsize); /* without a server yet */
    if (rc < 0)
        return rc;
    krep_mod *m = krep_mod_of(k);
    if (!m)
        return klog__errf(errbuf, errsize, KLOG_ESTATE, "this instance is not replicated (no replication.peers)");
    krep_promoted *rep = NULL;
    int nrep = 0;
    rc = krep_mod_promote(m, flags & KLOG_PROMOTE_UNCLEAN, cb ? &rep : NULL, &nrep, errbuf, errsize);
    for (int i = 0; rc == 0 && cb && i < nrep; i++)
        cb(opaque, rep[i].topic, rep[i].partition, rep[i].old_leader, rep[i].end, rep[i].old_hw, rep[i].unclean);
    free(rep);
    return rc;
}

KLOG_API int klog_replication_promote(klog *k, unsigned flags, char *errbuf, size_t errsize)
{
    return klog_replication_promote_report(k, flags, NULL, NULL, errbuf, errsize);
}

KLOG_API int klog_replication_promote_node(const char *url, unsigned flags, int timeout_ms, char *errbuf,
                                           size_t errsize)
{
    return klog_replication_promote_node_conf(url, NULL, flags, timeout_ms, errbuf, errsize);
}

KLOG_API int klog_replication_promote_node_conf(const char *url, const klog_conf *conf, unsigned flags,
                                                int timeout_ms, char *errbuf, size_t errsize)
{
    return klog_replication_promote_node_report(url, conf, flags, timeout_ms, NULL, NULL, errbuf, errsize);
}

/* One partition's result of a successful promote, as the node's
 * ElectLeaders answer carries it (ksrv_elect_leaders): error 0 and the
 * message "end=E old_leader=L old_hw=H unclean=U".  False when it is not
 * one (an older node's single result for every partition). */
static bool promoted_parse(const kk_elect_leaders_resp_partition *p, int64_t *end, int32_t *old, int64_t *hw,
                           int *unclean)
{
    long long e, h;
    int o, u, n = 0;
    if (p->error_code != KK_ERR_NONE || !p->error_message.p || p->partition_id < 0)
        return false;
    if (sscanf(p->error_message.p, "end=%lld old_leader=%d old_hw=%lld unclean=%d%n", &e, &o, &h, &u, &n) != 4 ||
        p->error_message.p[n] != '\0')
        return false;
    *end = e;
    *old = o;
    *hw = h;
    *unclean = u != 0;
    return true;
}

KLOG_API int klog_replication_promote_node_report(const char *url, const klog_conf *conf, unsigned flags,
                                                  int timeout_ms, klog_promote_cb cb, void *opaque, char *errbuf,
                                                  size_t errsize)
{
    if (!url || (flags & ~KLOG_PROMOTE_UNCLEAN) || timeout_ms <= 0)
        return -EINVAL;
    char u[KREP_URL_MAX];
    snprintf(u, sizeof u, "%s%s", strstr(url, "://") || !strncmp(url, "unix:", 5) ? "" : "tcp://", url);
    const char *su = NULL, *sp = NULL;
    if (conf && klog__conf_int(conf, KC_REPLICATION_SASL_MECHANISM)) {
        su = klog__conf_str(conf, KC_REPLICATION_SASL_USERNAME);
        sp = klog__conf_str(conf, KC_REPLICATION_SASL_PASSWORD);
        if (!su || !*su || !sp)
            return klog__errf(errbuf, errsize, KLOG_ECONF,
                              "replication.sasl.mechanism=PLAIN needs replication.sasl.username and .password");
    }
    klog_transport_registry *reg = NULL;
    klog_conn *c = NULL;
    kk_wbuf w;
    kk_wbuf_init(&w, 0);
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    int rc = klog_transport_registry_new(&reg, 0);
    /* tls:// with the caller's ssl.* keys (its certificate, the CA the
     * node's must chain to), as a node dials its peers */
    if (rc == 0 && conf && (rc = klog_transport_register(reg, klog_transport_tls(), conf)) < 0)
        klog__errf(errbuf, errsize, rc, "TLS: %s", klog_strerror(rc));
    if (rc == 0 && (rc = klog_transport_connect(reg, u, timeout_ms, &c)) < 0)
        klog__errf(errbuf, errsize, rc, "connecting to %s: %s", u, klog_strerror(rc));
    if (rc == 0 && su && (rc = sasl_plain(c, timeout_ms, su, sp)) < 0)
        klog__errf(errbuf, errsize, rc, "%s: SASL PLAIN as %s: %s", u, su,
                   rc == -EACCES ? "refused" : klog_strerror(rc));
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
            /* promoted: what it did to each partition (the strings live
             * in the arena until the reset below) */
            for (int i = 0; rc == 0 && cb && i < r->replica_election_results.n; i++) {
                const kk_elect_leaders_resp_topic *t = &r->replica_election_results.v[i];
                for (int j = 0; t->topic.p && j < t->partition_result.n; j++) {
                    int64_t end, hw;
                    int32_t old;
                    int unclean;
                    if (promoted_parse(&t->partition_result.v[j], &end, &old, &hw, &unclean))
                        cb(opaque, t->topic.p, t->partition_result.v[j].partition_id, old, end, hw, unclean);
                }
            }
        }
    }
    kk_arena_reset(&a);
    kk_wbuf_free(&w);
    klog_conn_close(c);
    klog_transport_registry_free(reg);
    return rc;
}
