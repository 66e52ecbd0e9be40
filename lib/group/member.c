/*
 * lib/group/member.c - a native member's state machine: join, heartbeat,
 * take a new generation's assignment, revoke (eager, cooperative, lost),
 * rejoin, leave.  It reaches its coordinator only through
 * kg_coordinator_ops, and the consumer's partitions only through the host
 * functions (group.h); it runs on the consumer's thread, inside its polls.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/klog.h>

#include "group/group.h"

struct kg_membership {
    struct klog *k;
    kg_coordinator co;          /* ops NULL until first needed */
    kg_membership_host host;
    char group[256];
    char instance_id[KG_NAME_MAX + 1];  /* "" = dynamic */
    char client_id[KG_NAME_MAX + 1];
    enum kg_strategy strategy;
    int64_t session_ms, rebalance_ms;

    bool subscribed;            /* partitions come from the group */
    bool joined;                /* a join is outstanding or done for this member id */
    char **subs;
    size_t nsubs;
    char member_id[KG_ID_MAX];
    int32_t generation;
    int64_t last_beat_ms;
    bool beat_due;              /* joined since the last heartbeat */
    uint64_t seen;              /* `changes` at the last heartbeat */
    _Atomic uint64_t changes;   /* bumped by the coordinator's notify */

    pthread_mutex_t id_mu;      /* id_copy, for other threads */
    char id_copy[KG_ID_MAX];
};

/* The coordinator's notify: any thread, its lock held (group.h). */
static void on_notify(void *arg)
{
    kg_membership *m = arg;
    atomic_fetch_add_explicit(&m->changes, 1, memory_order_release);
    if (m->host.wake)
        m->host.wake(m->host.arg);
}

static int coordinator(kg_membership *m)
{
    if (m->co.ops)
        return 0;
    kg_coordinator c;
    int rc = kg_coordinator_local(m->k, &c);
    if (rc == 0)
        rc = kg_coordinator_check(c.ops);
    if (rc == 0)
        m->co = c;
    return rc;
}

int kg_membership_new(struct klog *k, const kg_membership_conf *conf, const kg_membership_host *host,
                      kg_membership **out)
{
    if (!k || !conf || !conf->group || !host || !host->held || !host->revoke || !host->assign || !out)
        return -EINVAL;
    kg_membership *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->k = k;
    m->host = *host;
    snprintf(m->group, sizeof m->group, "%s", conf->group);
    snprintf(m->instance_id, sizeof m->instance_id, "%s", conf->instance_id ? conf->instance_id : "");
    snprintf(m->client_id, sizeof m->client_id, "%s", conf->client_id ? conf->client_id : "");
    m->strategy = conf->strategy;
    m->session_ms = conf->session_ms;
    m->rebalance_ms = conf->rebalance_ms;
    m->generation = -1;
    pthread_mutex_init(&m->id_mu, NULL);
    *out = m;
    return 0;
}

static void subs_free(kg_membership *m)
{
    for (size_t i = 0; i < m->nsubs; i++)
        free(m->subs[i]);
    free(m->subs);
    m->subs = NULL;
    m->nsubs = 0;
}

static int do_join(kg_membership *m)
{
    unsigned nowned = 0;
    kg_tp *owned = m->strategy == KG_COOPERATIVE_STICKY ? m->host.held(m->host.arg, &nowned) : NULL;
    if (m->strategy == KG_COOPERATIVE_STICKY && !owned)
        return -ENOMEM;
    kg_join_req q = {
        .group = m->group,
        .member_id = m->member_id,
        .instance_id = m->instance_id[0] ? m->instance_id : NULL,
        .client_id = m->client_id,
        .session_ms = m->session_ms,
        .rebalance_ms = m->rebalance_ms,
        .notify = on_notify,
        .notify_arg = m,
        .subs = (const char *const *)m->subs,
        .nsubs = (unsigned)m->nsubs,
        .strategy = m->strategy,
        .owned = owned,
        .nowned = nowned,
        .generation = m->generation,
    };
    kg_join_resp resp;
    int rc = m->co.ops->join(m->co.self, &q, &resp);
    if (rc == KLOG_EUNKNOWN_MEMBER) {
        m->member_id[0] = '\0'; /* q.member_id: now a new member */
        m->generation = -1;
        rc = m->co.ops->join(m->co.self, &q, &resp);
    }
    free(owned);
    if (rc == 0) {
        snprintf(m->member_id, sizeof m->member_id, "%s", resp.member_id);
        m->joined = true;
        m->beat_due = true;
        pthread_mutex_lock(&m->id_mu);
        snprintf(m->id_copy, sizeof m->id_copy, "%s", m->member_id);
        pthread_mutex_unlock(&m->id_mu);
        kg_join_resp_free(&resp);
    }
    return rc;
}

static bool tp_in(const kg_tp *tp, unsigned n, const char *topic, int32_t partition)
{
    for (unsigned i = 0; i < n; i++)
        if (tp[i].partition == partition && !strcmp(tp[i].topic, topic))
            return true;
    return false;
}

/* Take a new generation's assignment: revoke what left, add what came. */
static int take_assignment(kg_membership *m, const kg_beat *b)
{
    unsigned nheld = 0;
    kg_tp *held = m->host.held(m->host.arg, &nheld);
    kg_tp *rev = malloc((nheld ? nheld : 1) * sizeof *rev);
    kg_tp *add = malloc((b->nassign ? b->nassign : 1) * sizeof *add);
    if (!held || !rev || !add) {
        free(held);
        free(rev);
        free(add);
        return -ENOMEM;
    }
    unsigned nrev = 0, nadd = 0;
    for (unsigned i = 0; i < nheld; i++)
        if (!tp_in(b->assign, b->nassign, held[i].topic, held[i].partition))
            rev[nrev++] = held[i];
    for (unsigned i = 0; i < b->nassign; i++)
        if (!tp_in(held, nheld, b->assign[i].topic, b->assign[i].partition))
            add[nadd++] = b->assign[i];
    /* The new generation first: the commit of what goes is made in it (the
     * coordinator fences commits from any other generation). */
    m->generation = b->generation;
    if (nrev)
        m->host.revoke(m->host.arg, rev, nrev, KLOG_REBALANCE_REVOKED);
    int rc = m->host.assign(m->host.arg, add, nadd);
    free(held);
    free(rev);
    free(add);
    return rc;
}

int kg_membership_step(kg_membership *m, int64_t now, bool force)
{
    if (!m->subscribed)
        return 0;
    if (!m->joined) {
        int rc = do_join(m);
        if (rc < 0)
            return rc;
    }
    if (!force && !kg_membership_changed(m) && now - m->last_beat_ms < KG_MEMBERSHIP_BEAT_MS)
        return 0;
    for (int round = 0; round < 4; round++) {
        m->seen = atomic_load_explicit(&m->changes, memory_order_acquire);
        m->beat_due = false;
        m->last_beat_ms = now;
        kg_beat b;
        int rc = m->co.ops->heartbeat(m->co.self, m->group, m->member_id, m->generation, &b);
        if (rc == KLOG_EUNKNOWN_MEMBER) {
            /* removed (session expired): the partitions are someone else's */
            m->host.revoke(m->host.arg, NULL, 0, KLOG_REBALANCE_LOST);
            m->member_id[0] = '\0';
            m->generation = -1;
            if ((rc = do_join(m)) < 0)
                return rc;
            continue;
        }
        if (rc < 0)
            return rc;
        if (b.status == KG_REJOIN) {
            /* eager: everything goes back before rejoining */
            if (m->strategy != KG_COOPERATIVE_STICKY)
                m->host.revoke(m->host.arg, NULL, 0, KLOG_REBALANCE_REVOKED);
            if ((rc = do_join(m)) < 0)
                return rc;
            continue; /* the join may have completed the rebalance */
        }
        if (b.status == KG_STABLE && b.new_generation) {
            rc = take_assignment(m, &b);
            free(b.assign);
            if (rc < 0)
                return rc;
            if (b.rejoin_after) {
                if ((rc = do_join(m)) < 0)
                    return rc;
                continue;
            }
        }
        break;
    }
    return 0;
}

bool kg_membership_changed(const kg_membership *m)
{
    return m->beat_due || atomic_load_explicit(&m->changes, memory_order_acquire) != m->seen;
}

/* Leave: revoke (the host commits first if it auto-commits), leave (a
 * static member keeps its place). */
static void leave(kg_membership *m)
{
    if (!m->subscribed || !m->joined)
        return;
    m->host.revoke(m->host.arg, NULL, 0, KLOG_REBALANCE_REVOKED);
    (void)m->co.ops->leave(m->co.self, m->group, m->member_id, m->instance_id[0] != '\0');
    m->joined = false;
    m->member_id[0] = '\0';
    m->generation = -1;
}

int kg_membership_subscribe(kg_membership *m, const char *const *topics, size_t n)
{
    int rc = coordinator(m);
    if (rc < 0)
        return rc;
    char **v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = strdup(topics[i]))) {
            for (size_t j = 0; j < i; j++)
                free(v[j]);
            free(v);
            return -ENOMEM;
        }
    subs_free(m);
    m->subs = v;
    m->nsubs = n;
    m->subscribed = true;
    if (m->joined)
        return do_join(m); /* a changed subscription rebalances */
    return 0;
}

void kg_membership_unsubscribe(kg_membership *m)
{
    if (!m || !m->subscribed)
        return;
    leave(m);
    subs_free(m);
    m->subscribed = false;
}

bool kg_membership_subscribed(const kg_membership *m) { return m && m->subscribed; }

void kg_membership_free(kg_membership *m)
{
    if (!m)
        return;
    kg_membership_unsubscribe(m);
    pthread_mutex_destroy(&m->id_mu);
    free(m);
}

int kg_membership_commit(kg_membership *m, kg_offset *o, unsigned n, bool sync)
{
    int rc = coordinator(m);
    if (rc < 0)
        return rc;
    return m->co.ops->commit(m->co.self, m->group, m->subscribed ? m->member_id : NULL,
                             m->subscribed ? m->generation : -1, o, n, sync);
}

int kg_membership_committed(kg_membership *m, const char *topic, int32_t partition, int64_t *offset, char *metadata,
                            size_t metadata_size)
{
    int rc = coordinator(m);
    if (rc < 0)
        return rc;
    return m->co.ops->committed(m->co.self, m->group, topic, partition, offset, metadata, metadata_size);
}

const char *kg_membership_id(const kg_membership *m) { return m->member_id; }

int32_t kg_membership_generation(const kg_membership *m) { return m->generation; }

void kg_membership_id_copy(kg_membership *m, char *buf, size_t size)
{
    pthread_mutex_lock(&m->id_mu);
    snprintf(buf, size, "%s", m->id_copy);
    pthread_mutex_unlock(&m->id_mu);
}
