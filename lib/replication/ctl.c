/*
 * lib/replication/ctl.c - the controller: the authority over partition
 * states (leader, leader epoch, ISR, partition epoch), the pushes that
 * tell replicas (LeaderAndIsr v2), the ISR proposals it accepts or refuses
 * (AlterPartition), the elections it is told to make (static: an
 * operator's promote).  replication.h has the rules.
 *
 * Pushes.  For every (node, partition) the controller remembers the
 * (leader epoch, partition epoch) the node acknowledged; a node's channel
 * carries every partition whose state is newer than that, again after a
 * lost request, until acknowledged.  Every node the controller knows
 * (krep_ctl_add_node, and every replica) hears of every partition, its
 * replicas or not: a node that holds no replica of a partition keeps its
 * state to answer Metadata with (Kafka's UpdateMetadata, carried here by
 * the same LeaderAndIsr), so that a client may ask any node.  A node that
 * registers a new incarnation has lost what it was told: its
 * acknowledgements are forgotten, and every partition it leads gets a new
 * leader epoch (the node must not lead again in an epoch it led before it
 * restarted).  Nothing that makes a node lead is pushed to it before it
 * registered: the push carries its incarnation.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include <klog/topic.h>

#include "replication/internal.h"

typedef struct ctl_part {
    char topic[KLOG_TOPIC_NAME_MAX + 1];
    int32_t index;
    krep_pstate st;
    int32_t acked_le[KREP_MAX_NODES], acked_pe[KREP_MAX_NODES]; /* per node (krep_ctl.nodes' index) */
} ctl_part;

/* A topic's record (replication.h): never freed before the controller
 * (a deletion stays as a tombstone), so that a push in flight may point
 * at it. */
typedef struct ctl_topic {
    char name[KLOG_TOPIC_NAME_MAX + 1];
    char *config;                 /* "key=value\n" lines ("" none) */
    bool deleted;
    int32_t version;              /* bumped by every change */
    int32_t acked[KREP_MAX_NODES]; /* per node (krep_ctl.nodes' index): the version it took, -1 */
} ctl_topic;

typedef struct ctl_node {
    int32_t id;
    int64_t inc;                  /* 0: not registered */
    int64_t sent_inc;             /* the incarnation the request in flight is for */
    bool busy;
    int32_t corr;
    int64_t backoff_until;
    int nsent;
    struct { ctl_part *p; int32_t le, pe; } *sent; /* p NULL: its topic was deleted since */
    size_t sentcap;
    bool topics_sent;             /* the request in flight is KREP_API_TOPICS */
    int ntsent;
    struct { ctl_topic *t; int32_t ver; } *tsent;
    size_t tsentcap;
} ctl_node;

struct krep_ctl {
    int32_t id;
    int32_t epoch;
    pthread_mutex_t mu;
    krep_ctl_persist_fn persist;
    void *persist_arg;
    ctl_part **parts;
    size_t nparts, cap;
    ctl_node nodes[KREP_MAX_NODES];
    int nnodes;
    ctl_topic **topics;
    size_t ntopics, tcap;
    kk_arena arena;
    krep_mem mem;
};

int krep_ctl_new(krep_ctl **out, int32_t controller_id, int32_t controller_epoch)
{
    krep_ctl *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->id = controller_id;
    c->epoch = controller_epoch;
    pthread_mutex_init(&c->mu, NULL);
    kk_arena_init(&c->arena, NULL, 0);
    *out = c;
    return 0;
}

void krep_ctl_free(krep_ctl *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nparts; i++)
        free(c->parts[i]);
    free(c->parts);
    for (int i = 0; i < c->nnodes; i++) {
        free(c->nodes[i].sent);
        free(c->nodes[i].tsent);
    }
    for (size_t i = 0; i < c->ntopics; i++) {
        free(c->topics[i]->config);
        free(c->topics[i]);
    }
    free(c->topics);
    kk_arena_reset(&c->arena);
    krep_mem_reset(&c->mem);
    free(c->mem.blocks);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void krep_ctl_set_persist(krep_ctl *c, krep_ctl_persist_fn fn, void *arg)
{
    pthread_mutex_lock(&c->mu);
    c->persist = fn;
    c->persist_arg = arg;
    pthread_mutex_unlock(&c->mu);
}

/* Hand every state to the persist callback (c->mu held).  On failure the
 * states are put back as saved (old[], one per partition). */
static int persist_locked(krep_ctl *c, const krep_pstate *old)
{
    if (!c->persist)
        return 0;
    krep_ctl_entry *e = calloc(c->nparts + 1, sizeof *e);
    int rc = -ENOMEM;
    if (e) {
        for (size_t i = 0; i < c->nparts; i++)
            e[i] = (krep_ctl_entry){ c->parts[i]->topic, c->parts[i]->index, c->parts[i]->st };
        rc = c->persist(c->persist_arg, c->id, c->epoch, e, (int)c->nparts);
        free(e);
    }
    if (rc < 0 && old)
        for (size_t i = 0; i < c->nparts; i++)
            c->parts[i]->st = old[i];
    return rc;
}

/* The states now, to put back if persisting the change fails (NULL:
 * out of memory: the change is then refused). */
static krep_pstate *save(krep_ctl *c)
{
    krep_pstate *old = malloc((c->nparts + 1) * sizeof *old);
    for (size_t i = 0; old && i < c->nparts; i++)
        old[i] = c->parts[i]->st;
    return old;
}

static ctl_part *find(krep_ctl *c, const char *topic, int32_t index)
{
    for (size_t i = 0; i < c->nparts; i++)
        if (c->parts[i]->index == index && strcmp(c->parts[i]->topic, topic) == 0)
            return c->parts[i];
    return NULL;
}

static ctl_node *node_of(krep_ctl *c, int32_t id)
{
    for (int i = 0; i < c->nnodes; i++)
        if (c->nodes[i].id == id)
            return &c->nodes[i];
    return NULL;
}

/* The node's index in c->nodes (its acknowledgements' row), -1 if none. */
static int node_index(const krep_ctl *c, int32_t id)
{
    for (int i = 0; i < c->nnodes; i++)
        if (c->nodes[i].id == id)
            return i;
    return -1;
}

static int slot(const krep_pstate *st, int32_t id)
{
    for (int i = 0; i < st->nreplicas; i++)
        if (st->replicas[i] == id)
            return i;
    return -1;
}

int krep_ctl_add_partition(krep_ctl *c, const char *topic, int32_t partition, const int32_t *replicas, int n,
                           int32_t leader)
{
    if (n < 1 || n > KREP_MAX_NODES || !krep_in(replicas, n, leader))
        return -EINVAL;
    krep_pstate st = { .leader = leader, .nreplicas = n, .nisr = n };
    memcpy(st.replicas, replicas, (size_t)n * sizeof *replicas);
    memcpy(st.isr, replicas, (size_t)n * sizeof *replicas);
    return krep_ctl_add_state(c, topic, partition, &st);
}

int32_t krep_ctl_epoch(const krep_ctl *c) { return c->epoch; }

int krep_ctl_add_node(krep_ctl *c, int32_t node)
{
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (!node_of(c, node)) {
        if (c->nnodes == KREP_MAX_NODES || node < 0)
            rc = -EINVAL;
        else
            c->nodes[c->nnodes++] = (ctl_node){ .id = node };
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/*
 * Kafka's placement (AdminUtils.assignReplicasToBrokers, without racks):
 * the first replica of partition p is nodes[(start + p) % n], the others
 * follow it at a shift that grows each time the partitions wrap around
 * the nodes, so that leaders and followers both spread.  Kafka draws start
 * and shift at random; here they come from the topic's name, so that a
 * placement is the same wherever it is computed.  With lead >= 0 (the
 * static controller, which leads every partition) lead is the first
 * replica and the others go round the remaining nodes.
 */
int krep_assign(const int32_t *nodes, int n, const char *topic, int32_t partition, int rf, int32_t lead,
                int32_t *out)
{
    if (n < 1 || n > KREP_MAX_NODES || rf < 1 || rf > n || partition < 0)
        return -EINVAL;
    uint32_t h = 2166136261u;
    for (const char *s = topic; s && *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    if (lead >= 0) {
        int32_t others[KREP_MAX_NODES];
        int m = 0;
        for (int i = 0; i < n; i++)
            if (nodes[i] != lead)
                others[m++] = nodes[i];
        if (m == n)
            return -EINVAL; /* lead is not one of the nodes */
        out[0] = lead;
        for (int j = 1; j < rf; j++)
            out[j] = others[((uint32_t)partition + h + (uint32_t)j - 1) % (uint32_t)m];
        return rf;
    }
    uint32_t first = (h + (uint32_t)partition) % (uint32_t)n;
    out[0] = nodes[first];
    if (n > 1) {
        uint32_t shift = ((h >> 16) + (uint32_t)partition / (uint32_t)n) % (uint32_t)(n - 1);
        for (int j = 1; j < rf; j++)
            out[j] = nodes[(first + 1 + (shift + (uint32_t)j - 1) % (uint32_t)(n - 1)) % (uint32_t)n];
    }
    return rf;
}

int krep_ctl_set_incarnation(krep_ctl *c, int32_t node, int64_t inc)
{
    pthread_mutex_lock(&c->mu);
    ctl_node *nd = node_of(c, node);
    if (nd)
        nd->inc = inc;
    pthread_mutex_unlock(&c->mu);
    return nd ? 0 : -ENOENT;
}

int krep_ctl_list(krep_ctl *c, krep_ctl_entry *out, int cap)
{
    pthread_mutex_lock(&c->mu);
    int n = (int)c->nparts;
    for (int i = 0; i < n && i < cap; i++)
        out[i] = (krep_ctl_entry){ c->parts[i]->topic, c->parts[i]->index, c->parts[i]->st };
    pthread_mutex_unlock(&c->mu);
    return n;
}

int krep_ctl_add_state(krep_ctl *c, const char *topic, int32_t partition, const krep_pstate *st)
{
    int n = st->nreplicas;
    const int32_t *replicas = st->replicas;
    if (!topic || strlen(topic) > KLOG_TOPIC_NAME_MAX || n < 1 || n > KREP_MAX_NODES || partition < 0 ||
        st->nisr < 0 || st->nisr > n || st->leader_epoch < 0 || st->partition_epoch < 0)
        return -EINVAL;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (find(c, topic, partition))
        rc = -EEXIST;
    for (int i = 0; i < n && rc == 0; i++)
        if (!node_of(c, replicas[i])) {
            if (c->nnodes == KREP_MAX_NODES)
                rc = -EINVAL;
            else
                c->nodes[c->nnodes++] = (ctl_node){ .id = replicas[i] };
        }
    ctl_part *p = NULL;
    if (rc == 0 && (klog__vec_reserve(&c->parts, &c->cap, c->nparts + 1, sizeof *c->parts) < 0 ||
                    !(p = calloc(1, sizeof *p))))
        rc = -ENOMEM;
    if (rc == 0) {
        strcpy(p->topic, topic);
        p->index = partition;
        p->st = *st;
        for (int i = 0; i < KREP_MAX_NODES; i++)
            p->acked_le[i] = p->acked_pe[i] = -1;
        c->parts[c->nparts++] = p;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int krep_ctl_put_state(krep_ctl *c, const char *topic, int32_t partition, const krep_pstate *st)
{
    pthread_mutex_lock(&c->mu);
    ctl_part *p = find(c, topic, partition);
    int rc = 0;
    if (p) {
        if (st->nreplicas != p->st.nreplicas ||
            memcmp(st->replicas, p->st.replicas, (size_t)st->nreplicas * sizeof *st->replicas) != 0)
            rc = -EINVAL; /* no reassignment: a node neither gains nor drops a replica */
        else
            p->st = *st;
    }
    pthread_mutex_unlock(&c->mu);
    return p ? rc : krep_ctl_add_state(c, topic, partition, st);
}

int krep_ctl_register_node(krep_ctl *c, int32_t node, int64_t inc)
{
    pthread_mutex_lock(&c->mu);
    ctl_node *nd = node_of(c, node);
    if (nd && nd->inc != inc) {
        nd->inc = inc;
        int s = node_index(c, node);
        for (size_t i = 0; i < c->nparts; i++)
            c->parts[i]->acked_le[s] = c->parts[i]->acked_pe[s] = -1;
        for (size_t i = 0; i < c->ntopics; i++)
            c->topics[i]->acked[s] = -1;
    }
    pthread_mutex_unlock(&c->mu);
    return nd ? 0 : -ENOENT;
}

int krep_ctl_state(krep_ctl *c, const char *topic, int32_t partition, krep_pstate *out)
{
    pthread_mutex_lock(&c->mu);
    ctl_part *p = find(c, topic, partition);
    if (p)
        *out = p->st;
    pthread_mutex_unlock(&c->mu);
    return p ? 0 : KLOG_EUNKNOWN_PARTITION;
}

int krep_ctl_elect(krep_ctl *c, const char *topic, int32_t partition, int32_t leader, unsigned flags)
{
    pthread_mutex_lock(&c->mu);
    ctl_part *p = find(c, topic, partition);
    int rc = 0;
    if (!p)
        rc = KLOG_EUNKNOWN_PARTITION;
    else if (slot(&p->st, leader) < 0)
        rc = -EINVAL;
    else if (!krep_in(p->st.isr, p->st.nisr, leader) && !(flags & KREP_ELECT_UNCLEAN))
        rc = KLOG_ENOTENOUGH;
    krep_pstate *saved = rc == 0 ? save(c) : NULL;
    if (rc == 0 && !saved)
        rc = -ENOMEM;
    if (rc == 0) {
        krep_pstate *st = &p->st;
        int32_t old = st->leader;
        if (flags & KREP_ELECT_UNCLEAN && !krep_in(st->isr, st->nisr, leader)) {
            st->nisr = 1;
            st->isr[0] = leader;
        } else if (old != leader) {
            int k = 0;
            for (int i = 0; i < st->nisr; i++)
                if (st->isr[i] != old)
                    st->isr[k++] = st->isr[i];
            st->nisr = k;
        }
        st->leader = leader;
        st->leader_epoch = krep_next_epoch(st->leader_epoch, c->epoch);
        st->partition_epoch++;
        rc = persist_locked(c, saved);
    }
    free(saved);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int krep_ctl_describe(krep_ctl *c, char *buf, size_t cap)
{
    pthread_mutex_lock(&c->mu);
    size_t len = 0;
    if (cap)
        buf[0] = 0;
    for (int i = 0; i < c->nnodes; i++) {
        ctl_node *nd = &c->nodes[i];
        int w = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0,
                         "controller: node %d incarnation %" PRId64 "%s backoff until %" PRId64 "\n", nd->id, nd->inc,
                         nd->busy ? " busy" : "", nd->backoff_until);
        len += w > 0 ? (size_t)w : 0;
    }
    for (size_t j = 0; j < c->nparts; j++) {
        ctl_part *p = c->parts[j];
        int w = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0,
                         "controller: %s-%d leader %d epoch %d pe %d, acked", p->topic, p->index, p->st.leader,
                         p->st.leader_epoch, p->st.partition_epoch);
        len += w > 0 ? (size_t)w : 0;
        for (int i = 0; i < c->nnodes; i++) {
            w = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, " %d%s:%d/%d", c->nodes[i].id,
                         slot(&p->st, c->nodes[i].id) >= 0 ? "" : "(m)", p->acked_le[i], p->acked_pe[i]);
            len += w > 0 ? (size_t)w : 0;
        }
        w = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, "\n");
        len += w > 0 ? (size_t)w : 0;
    }
    pthread_mutex_unlock(&c->mu);
    return (int)len;
}

/* ---- AlterPartition: registration and ISR proposals ---------------------------------------------- */

static int fill_state(kk_alter_partition_resp_partition *r, const krep_pstate *st, krep_alloc_fn alloc, void *actx)
{
    r->leader_id = st->leader;
    r->leader_epoch = st->leader_epoch;
    r->partition_epoch = st->partition_epoch;
    if (!(r->isr.v = alloc(actx, (size_t)st->nisr * sizeof *st->isr + 1)))
        return -ENOMEM;
    memcpy(r->isr.v, st->isr, (size_t)st->nisr * sizeof *st->isr);
    r->isr.n = st->nisr;
    return 0;
}

static int16_t alter_one(krep_ctl *c, ctl_node *nd, int64_t broker_epoch, ctl_part *p,
                         const kk_alter_partition_req_partition *q)
{
    krep_pstate *st = &p->st;
    if (!nd || nd->inc == 0 || broker_epoch != nd->inc)
        return KK_ERR_STALE_BROKER_EPOCH;
    if (st->leader != nd->id)
        return KK_ERR_NOT_LEADER_OR_FOLLOWER;
    if (q->leader_epoch != st->leader_epoch)
        return q->leader_epoch < st->leader_epoch ? KK_ERR_FENCED_LEADER_EPOCH : KK_ERR_UNKNOWN_LEADER_EPOCH;
    if (q->partition_epoch != st->partition_epoch)
        return KK_ERR_INVALID_UPDATE_VERSION;
    if (q->new_isr.n < 1 || q->new_isr.n > st->nreplicas || !krep_in(q->new_isr.v, q->new_isr.n, st->leader))
        return KK_ERR_INVALID_REQUEST;
    for (int i = 0; i < q->new_isr.n; i++) {
        if (slot(st, q->new_isr.v[i]) < 0)
            return KK_ERR_INVALID_REQUEST;
        for (int j = 0; j < i; j++)
            if (q->new_isr.v[j] == q->new_isr.v[i])
                return KK_ERR_INVALID_REQUEST;
    }
    krep_pstate *saved = save(c);
    if (!saved)
        return KK_ERR_KAFKA_STORAGE_ERROR;
    st->nisr = q->new_isr.n;
    memcpy(st->isr, q->new_isr.v, (size_t)q->new_isr.n * sizeof *st->isr);
    st->partition_epoch++;
    /* durable before the leader hears of it: a shrunk ISR must never come
     * back after a restart of the controller */
    int rc = persist_locked(c, saved);
    free(saved);
    return rc < 0 ? KK_ERR_KAFKA_STORAGE_ERROR : KK_ERR_NONE;
}

/* c->mu held. */
int krep_alter_answer(const kk_alter_partition_req *a, krep_alter_apply_fn apply, void *arg, krep_alloc_fn alloc,
                      void *actx, kk_alter_partition_resp *r)
{
    kk_alter_partition_resp_topic *ts = alloc(actx, ((size_t)a->topics.n + 1) * sizeof *ts);
    if (!ts)
        return -ENOMEM;
    for (int i = 0; i < a->topics.n; i++) {
        const kk_alter_partition_req_topic *qt = &a->topics.v[i];
        kk_alter_partition_resp_partition *ps = alloc(actx, ((size_t)qt->partitions.n + 1) * sizeof *ps);
        if (!ps)
            return -ENOMEM;
        ts[i].name = qt->name;
        ts[i].partitions.v = ps;
        ts[i].partitions.n = qt->partitions.n;
        for (int j = 0; j < qt->partitions.n; j++) {
            const kk_alter_partition_req_partition *qp = &qt->partitions.v[j];
            ps[j].partition_index = qp->partition_index;
            ps[j].leader_id = -1;
            ps[j].leader_epoch = -1;
            ps[j].partition_epoch = -1;
            int16_t err = KK_ERR_UNKNOWN_TOPIC_OR_PARTITION;
            const krep_pstate *st = qt->name.p ? apply(arg, qt->name.p, qp, &err) : NULL;
            ps[j].error_code = err;
            if (st && fill_state(&ps[j], st, alloc, actx) < 0)
                return -ENOMEM;
        }
    }
    r->topics.v = ts;
    r->topics.n = a->topics.n;
    return 0;
}

struct ctl_alter {
    krep_ctl *c;
    ctl_node *nd;
    int64_t broker_epoch;
};

static const krep_pstate *ctl_alter_apply(void *arg, const char *topic, const kk_alter_partition_req_partition *qp,
                                          int16_t *err)
{
    struct ctl_alter *x = arg;
    ctl_part *p = find(x->c, topic, qp->partition_index);
    if (!p)
        return NULL;
    *err = alter_one(x->c, x->nd, x->broker_epoch, p, qp);
    return &p->st;
}

static int alter_locked(krep_ctl *c, const kk_alter_partition_req *q, krep_alloc_fn alloc, void *actx,
                        kk_alter_partition_resp *r)
{
    memset(r, 0, sizeof *r);
    ctl_node *nd = node_of(c, q->broker_id);
    if (q->topics.n <= 0) {
        /* Registration: a new incarnation lost everything it was told,
         * and must not lead again in an epoch it led. */
        if (!nd || q->broker_epoch <= 0) {
            r->error_code = KK_ERR_BROKER_ID_NOT_REGISTERED;
            return 0;
        }
        if (nd->inc != q->broker_epoch) {
            krep_pstate *saved = save(c);
            if (!saved) {
                r->error_code = KK_ERR_KAFKA_STORAGE_ERROR;
                return 0;
            }
            bool bumped = false;
            for (size_t i = 0; i < c->nparts; i++) {
                ctl_part *p = c->parts[i];
                if (slot(&p->st, nd->id) < 0)
                    continue;
                if (p->st.leader == nd->id) {
                    p->st.leader_epoch = krep_next_epoch(p->st.leader_epoch, c->epoch);
                    p->st.partition_epoch++;
                    bumped = true;
                }
            }
            /* the new epochs are durable before anyone leads in them */
            if (bumped && persist_locked(c, saved) < 0) {
                free(saved);
                r->error_code = KK_ERR_KAFKA_STORAGE_ERROR;
                return 0;
            }
            free(saved);
            nd->inc = q->broker_epoch;
            int s = node_index(c, nd->id);
            for (size_t i = 0; i < c->nparts; i++)
                c->parts[i]->acked_le[s] = c->parts[i]->acked_pe[s] = -1;
            for (size_t i = 0; i < c->ntopics; i++)
                c->topics[i]->acked[s] = -1; /* (the configurations it kept for copies to come) */
        }
        return 0;
    }
    struct ctl_alter x = { c, nd, q->broker_epoch };
    return krep_alter_answer(q, ctl_alter_apply, &x, alloc, actx, r);
}

int krep_ctl_handle_alter_partition(krep_ctl *c, const kk_alter_partition_req *q, krep_alloc_fn alloc, void *actx,
                                    kk_alter_partition_resp *r)
{
    pthread_mutex_lock(&c->mu);
    int rc = alter_locked(c, q, alloc, actx, r);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int krep_ctl_serve(krep_ctl *c, const void *frame, size_t len, int64_t now_ms, kk_wbuf *w)
{
    (void)now_ms;
    pthread_mutex_lock(&c->mu);
    kk_request q;
    int rc = kk_request_decode(frame, len, NULL, &c->arena, &q);
    if (rc == 0 && q.hdr.api_key != KK_API_ALTER_PARTITION)
        rc = KLOG_EFORMAT;
    if (rc == 0) {
        kk_alter_partition_resp r;
        rc = alter_locked(c, &q.body.alter_partition, krep_mem_alloc, &c->mem, &r);
        if (rc == 0) {
            kk_wbuf_reset(w);
            rc = kk_response_encode(w, q.hdr.api_key, q.hdr.api_version, q.hdr.correlation_id, &r);
        }
    }
    krep_mem_reset(&c->mem);
    kk_arena_reset(&c->arena);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- topic records ----------------------------------------------------------------------------------- */

static ctl_topic *topic_find(krep_ctl *c, const char *name)
{
    for (size_t i = 0; i < c->ntopics; i++)
        if (strcmp(c->topics[i]->name, name) == 0)
            return c->topics[i];
    return NULL;
}

int krep_ctl_put_topic(krep_ctl *c, const char *topic, const char *config, bool deleted)
{
    if (!topic || !*topic || strlen(topic) > KLOG_TOPIC_NAME_MAX ||
        (config && strlen(config) > KREP_TOPIC_CONFIG_MAX))
        return -EINVAL;
    if (!config || deleted)
        config = "";
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    ctl_topic *t = topic_find(c, topic);
    if (t && t->deleted == deleted && strcmp(t->config, config) == 0)
        goto out; /* unchanged */
    char *cp = strdup(config);
    if (!cp) {
        rc = -ENOMEM;
        goto out;
    }
    if (!t) {
        if (klog__vec_reserve(&c->topics, &c->tcap, c->ntopics + 1, sizeof *c->topics) < 0 ||
            !(t = calloc(1, sizeof *t))) {
            free(cp);
            rc = -ENOMEM;
            goto out;
        }
        strcpy(t->name, topic);
        c->topics[c->ntopics++] = t;
    }
    free(t->config);
    t->config = cp;
    t->deleted = deleted;
    t->version++;
    for (int i = 0; i < KREP_MAX_NODES; i++)
        t->acked[i] = -1;
    if (deleted) {
        /* its partitions go (a push in flight forgets them: sent[].p) */
        size_t k = 0;
        for (size_t i = 0; i < c->nparts; i++) {
            ctl_part *p = c->parts[i];
            if (strcmp(p->topic, topic) != 0) {
                c->parts[k++] = p;
                continue;
            }
            for (int j = 0; j < c->nnodes; j++)
                for (int s = 0; s < c->nodes[j].nsent; s++)
                    if (c->nodes[j].sent[s].p == p)
                        c->nodes[j].sent[s].p = NULL;
            free(p);
        }
        c->nparts = k;
    }
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int krep_ctl_topic(krep_ctl *c, const char *topic, char *config, size_t cap, bool *settled)
{
    pthread_mutex_lock(&c->mu);
    ctl_topic *t = topic_find(c, topic);
    int rc = !t ? KREP_TOPIC_NONE : t->deleted ? KREP_TOPIC_DELETED : KREP_TOPIC_LIVE;
    if (t && config && cap)
        snprintf(config, cap, "%s", t->config);
    if (settled) {
        *settled = true;
        for (int i = 0; t && i < c->nnodes; i++)
            *settled &= t->acked[i] == t->version;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* The topic records nd has not taken yet, in one KREP_API_TOPICS request
 * (c->mu held).  Returns 1 (w holds it), 0 (none), < 0. */
static int topics_next(krep_ctl *c, ctl_node *nd, kk_wbuf *w)
{
    int s = node_index(c, nd->id);
    int n = 0;
    for (size_t i = 0; i < c->ntopics; i++)
        n += c->topics[i]->acked[s] != c->topics[i]->version;
    if (n == 0)
        return 0;
    if (klog__vec_reserve(&nd->tsent, &nd->tsentcap, (size_t)n, sizeof *nd->tsent) < 0)
        return -ENOMEM;
    kk_wbuf_reset(w);
    kk_w_i16(w, KREP_API_TOPICS);
    kk_w_i16(w, 0);
    kk_w_i32(w, ++nd->corr);
    kk_w_string(w, false, true, KREP_CLIENT_ID, -1);
    kk_w_i32(w, c->id);
    kk_w_i32(w, c->epoch);
    kk_w_i32(w, n);
    nd->ntsent = 0;
    for (size_t i = 0; i < c->ntopics; i++) {
        ctl_topic *t = c->topics[i];
        if (t->acked[s] == t->version)
            continue;
        kk_w_string(w, false, false, t->name, -1);
        kk_w_i8(w, t->deleted ? 1 : 0);
        kk_w_bytes(w, false, false, t->config, (int32_t)strlen(t->config));
        nd->tsent[nd->ntsent].t = t;
        nd->tsent[nd->ntsent].ver = t->version;
        nd->ntsent++;
    }
    if (w->err)
        return w->err;
    nd->busy = true;
    nd->topics_sent = true;
    nd->sent_inc = nd->inc;
    return 1;
}

/* (c->mu held) */
static void topics_response(krep_ctl *c, ctl_node *nd, const void *frame, size_t len, int64_t now_ms)
{
    const uint8_t *f = frame;
    int16_t err = len >= 6 ? (int16_t)(f[4] << 8 | f[5]) : KK_ERR_UNKNOWN_SERVER_ERROR;
    int s = node_index(c, nd->id);
    if (err == KK_ERR_NONE && nd->sent_inc == nd->inc) {
        for (int k = 0; k < nd->ntsent; k++)
            nd->tsent[k].t->acked[s] = nd->tsent[k].ver;
    } else {
        nd->backoff_until = now_ms + 100;
    }
    nd->ntsent = 0;
    nd->topics_sent = false;
}

/* The next k (1, 2 or 4) bytes as a signed big-endian number (internal.h's
 * reader; the requests' strings are copied out of the frame). */
static int32_t trd_i(krep_rd *r, size_t k)
{
    uint32_t v = (uint32_t)krep_rd_be(r, k);
    return k == 2 ? (int16_t)v : k == 1 ? (int8_t)v : (int32_t)v;
}

/* A copy of len bytes (len < 0: null), NUL-terminated; NULL when bad. */
static char *trd_str(krep_rd *r, int32_t len, size_t max, bool *oom)
{
    if (len < 0 || (size_t)len > max) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = krep_rd_take(r, (size_t)len);
    if (!q)
        return NULL;
    char *s = malloc((size_t)len + 1);
    if (!s) {
        *oom = true;
        return NULL;
    }
    memcpy(s, q, (size_t)len);
    s[len] = 0;
    if (strlen(s) != (size_t)len)
        r->bad = true; /* a NUL inside */
    return s;
}

void krep_topics_req_free(krep_topics_req *r)
{
    for (int i = 0; r->v && i < r->n; i++) {
        free(r->v[i].name);
        free(r->v[i].config);
    }
    free(r->v);
    memset(r, 0, sizeof *r);
}

int krep_topics_decode(const void *frame, size_t len, krep_topics_req *out)
{
    memset(out, 0, sizeof *out);
    krep_rd r = { frame, len, 0, false };
    bool oom = false;
    if (trd_i(&r, 2) != KREP_API_TOPICS)
        return KLOG_ECORRUPT;
    trd_i(&r, 2); /* version 0 */
    out->corr = trd_i(&r, 4);
    int32_t cl = trd_i(&r, 2);
    if (cl > 0)
        krep_rd_take(&r, (size_t)cl);
    out->controller_id = trd_i(&r, 4);
    out->controller_epoch = trd_i(&r, 4);
    int32_t n = trd_i(&r, 4);
    /* each record takes 7 bytes at least: the count is capped by the frame */
    if (r.bad || n < 0 || (size_t)n > (len - r.at) / 7)
        return KLOG_ECORRUPT;
    if (!(out->v = calloc((size_t)n + 1, sizeof *out->v)))
        return -ENOMEM;
    for (int32_t i = 0; i < n && !r.bad && !oom; i++) {
        krep_topic_rec *t = &out->v[out->n++];
        t->name = trd_str(&r, trd_i(&r, 2), KLOG_TOPIC_NAME_MAX, &oom);
        t->deleted = trd_i(&r, 1) != 0;
        t->config = trd_str(&r, trd_i(&r, 4), KREP_TOPIC_CONFIG_MAX, &oom);
        if (t->name && !*t->name)
            r.bad = true;
    }
    return oom ? -ENOMEM : r.bad || r.at != len ? KLOG_ECORRUPT : 0;
}

int krep_topics_answer(kk_wbuf *w, int32_t corr, int16_t err)
{
    kk_wbuf_reset(w);
    kk_w_i32(w, corr);
    kk_w_i16(w, err);
    return w->err;
}

/* ---- pushes ---------------------------------------------------------------------------------------- */

int krep_ctl_next(krep_ctl *c, int32_t node, int64_t now_ms, kk_wbuf *w, int64_t *wake_ms)
{
    *wake_ms = INT64_MAX;
    pthread_mutex_lock(&c->mu);
    ctl_node *nd = node_of(c, node);
    int rc = 0;
    if (!nd || nd->busy)
        goto out;
    if (now_ms < nd->backoff_until) {
        *wake_ms = nd->backoff_until;
        goto out;
    }
    krep_mem_reset(&c->mem);
    nd->nsent = 0;
    nd->ntsent = 0;
    if ((rc = topics_next(c, nd, w)) != 0)
        goto out;
    kk_leader_and_isr_topic *ts = NULL;
    int nt = 0;
    int s = node_index(c, node);
    for (size_t i = 0; i < c->nparts; i++) {
        ctl_part *p = c->parts[i];
        if (p->acked_le[s] == p->st.leader_epoch && p->acked_pe[s] == p->st.partition_epoch)
            continue;
        if (nd->inc == 0 && p->st.leader == node)
            continue; /* leading needs this run's incarnation: after it registers */
        if (!ts && !(ts = krep_mem_alloc(&c->mem, c->nparts * sizeof *ts))) {
            rc = -ENOMEM;
            goto out;
        }
        if (klog__vec_reserve(&nd->sent, &nd->sentcap, (size_t)nd->nsent + 1, sizeof *nd->sent) < 0) {
            rc = -ENOMEM;
            goto out;
        }
        kk_leader_and_isr_partition *ps = krep_mem_alloc(&c->mem, sizeof *ps);
        if (!ps) {
            rc = -ENOMEM;
            goto out;
        }
        ps->partition_index = p->index;
        ps->controller_epoch = c->epoch;
        ps->leader = p->st.leader;
        ps->leader_epoch = p->st.leader_epoch;
        ps->isr.v = p->st.isr;
        ps->isr.n = p->st.nisr;
        ps->partition_epoch = p->st.partition_epoch;
        ps->replicas.v = p->st.replicas;
        ps->replicas.n = p->st.nreplicas;
        ts[nt].topic_name = KK_STR(p->topic);
        ts[nt].partition_states.v = ps;
        ts[nt].partition_states.n = 1;
        nt++;
        nd->sent[nd->nsent].p = p;
        nd->sent[nd->nsent].le = p->st.leader_epoch;
        nd->sent[nd->nsent].pe = p->st.partition_epoch;
        nd->nsent++;
    }
    if (nt == 0)
        goto out;
    kk_leader_and_isr_req q = { .controller_id = c->id, .controller_epoch = c->epoch,
                                .broker_epoch = nd->inc ? nd->inc : -1 };
    q.topic_states.v = ts;
    q.topic_states.n = nt;
    nd->corr++;
    rc = krep_encode_request(w, KK_API_LEADER_AND_ISR, 2, nd->corr, &q);
    if (rc == 0) {
        nd->busy = true;
        nd->topics_sent = false;
        nd->sent_inc = nd->inc;
        rc = 1;
    }
out:
    krep_mem_reset(&c->mem);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int krep_ctl_response(krep_ctl *c, int32_t node, const void *frame, size_t len, int64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    ctl_node *nd = node_of(c, node);
    if (!nd || !nd->busy || len < 4) {
        pthread_mutex_unlock(&c->mu);
        return 1;
    }
    const uint8_t *f = frame;
    int32_t corr = (int32_t)((uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 | f[3]);
    if (corr != nd->corr) {
        pthread_mutex_unlock(&c->mu);
        return 1;
    }
    nd->busy = false;
    if (nd->topics_sent) {
        topics_response(c, nd, frame, len, now_ms);
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    kk_response resp;
    int rc = kk_response_decode(frame, len, KK_API_LEADER_AND_ISR, 2, NULL, &c->arena, &resp);
    if (rc < 0) {
        nd->backoff_until = now_ms + 100;
        kk_arena_reset(&c->arena);
        pthread_mutex_unlock(&c->mu);
        return KLOG_ECORRUPT;
    }
    const kk_leader_and_isr_resp *r = &resp.body.leader_and_isr;
    /* An answer from a run of the node that has since restarted (it was on
     * its way when the node re-registered) says nothing of this one. */
    if (r->error_code == KK_ERR_NONE && nd->sent_inc == nd->inc) {
        for (int k = 0; k < nd->nsent; k++) {
            ctl_part *p = nd->sent[k].p;
            if (!p)
                continue; /* its topic was deleted meanwhile */
            int16_t e = KK_ERR_UNKNOWN_SERVER_ERROR;
            for (int i = 0; i < r->partition_errors.n; i++) {
                const kk_leader_and_isr_resp_partition *pe = &r->partition_errors.v[i];
                if (pe->partition_index == p->index && pe->topic_name.p && strcmp(pe->topic_name.p, p->topic) == 0) {
                    e = pe->error_code;
                    break;
                }
            }
            int s = node_index(c, node);
            /* Taken (or the node holds newer: it cannot, but then there
             * is nothing to tell it). */
            if (e == KK_ERR_NONE || e == KK_ERR_FENCED_LEADER_EPOCH) {
                p->acked_le[s] = nd->sent[k].le;
                p->acked_pe[s] = nd->sent[k].pe;
            } else {
                nd->backoff_until = now_ms + 100;
            }
        }
    } else {
        nd->backoff_until = now_ms + 100; /* STALE_BROKER_EPOCH: it registers again */
    }
    nd->nsent = 0;
    kk_arena_reset(&c->arena);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void krep_ctl_failed(krep_ctl *c, int32_t node, int64_t now_ms)
{
    pthread_mutex_lock(&c->mu);
    ctl_node *nd = node_of(c, node);
    if (nd && nd->busy) {
        nd->busy = false;
        nd->nsent = 0;
        nd->ntsent = 0;
        nd->backoff_until = now_ms + 10;
    }
    pthread_mutex_unlock(&c->mu);
}
