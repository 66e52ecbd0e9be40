/*
 * lib/replication/static.c - the static controller's hosting: its state
 * file, a node taking the controller up (at start, or by a promote).
 * replication.h says what; module.c and the simulation both host through
 * these, so the simulation checks what klog serve runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <inttypes.h>

#include <klog/instance.h>
#include <klog/topic.h>

#include "common/common.h"
#include "common/sbuf.h"
#include "partition/partition.h"
#include "replication/internal.h"
#include "storage/storage.h"
#include "topic/topic.h"

#define STATE_MAX (1u << 20)

/* ---- the file ------------------------------------------------------------------------------ */

void krep_state_free(krep_state *s)
{
    free(s->e);
    free(s->names);
    memset(s, 0, sizeof *s);
}

int krep_state_read(struct klog *k, krep_state *l)
{
    memset(l, 0, sizeof *l);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", klog__dir(k), KREP_STATE_FILE);
    char *buf = malloc(STATE_MAX + 1);
    if (!buf)
        return -ENOMEM;
    ssize_t len = ks_read_small(klog__io(k), path, buf, STATE_MAX);
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
            st->nreplicas < 1 || st->nreplicas > KREP_MAX_NODES || e->partition < 0 || st->leader_epoch < 0 ||
            st->partition_epoch < 0)
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

/* The persist hook of a hosted controller: arg is the node. */
static int persist_ctl(void *arg, int32_t ctl_id, int32_t ctl_epoch, const krep_ctl_entry *e, int n)
{
    return krep_node_write_state(arg, ctl_id, ctl_epoch, e, n);
}

int krep_node_persist(krep_node *n)
{
    int ne = krep_node_list(n, NULL, 0);
    krep_ctl_entry *e = calloc((size_t)ne + 1, sizeof *e);
    if (!e)
        return -ENOMEM;
    ne = krep_node_list(n, e, ne);
    int32_t id, ep;
    krep_node_controller(n, &id, &ep);
    int rc = krep_node_write_state(n, id, ep, e, ne);
    free(e);
    return rc;
}

/* ---- hosting ---------------------------------------------------------------------------------- */

/* The latest epoch partition topic/index's log holds (-1: none known). */
static int32_t log_latest_epoch(struct klog *k, const char *topic, int32_t index)
{
    int32_t latest = -1;
    kt_topic *t = klog__topic_get(k, topic);
    if (t && index >= 0 && index < atomic_load_explicit(&t->nparts, memory_order_acquire)) {
        kpart *p = t->parts[index];
        size_t ne = kpart_epoch_entries(p, NULL, 0);
        ks_epoch_entry *all = calloc(ne + 1, sizeof *all);
        if (all && (ne = kpart_epoch_entries(p, all, ne)) > 0)
            latest = all[ne - 1].epoch;
        free(all);
    }
    if (t)
        klog__topic_put(t);
    return latest;
}

/* Partitions [0, np) of topic that ctl does not hold yet: rf replicas
 * each (0: the default), self first, leading (the static controller leads
 * what it hosts), or as assign[p * rf ..] says (self among them).
 * Returns how many were added, or -EINVAL / -ENOMEM. */
static int add_parts(krep_ctl *ctl, const krep_config *cfg, const char *topic, int32_t np, int rf,
                     const int32_t *assign)
{
    int32_t nodes[KREP_MAX_NODES];
    for (int i = 0; i < cfg->npeers; i++)
        nodes[i] = cfg->peers[i].id;
    krep_pstate first;
    if (rf <= 0 && !assign && krep_ctl_state(ctl, topic, 0, &first) == 0)
        rf = first.nreplicas; /* new partitions of a topic: its factor */
    if (rf <= 0)
        rf = krep_default_rf(cfg->npeers);
    int added = 0;
    for (int32_t p = 0; p < np; p++) {
        krep_pstate st;
        if (krep_ctl_state(ctl, topic, p, &st) == 0)
            continue;
        int32_t reps[KREP_MAX_NODES];
        int rc = assign ? rf : krep_assign(nodes, cfg->npeers, topic, p, rf, cfg->node_id, reps);
        if (assign)
            memcpy(reps, assign + (size_t)p * (size_t)rf, (size_t)rf * sizeof *reps);
        if (rc > 0)
            rc = krep_ctl_add_partition(ctl, topic, p, reps, rf, cfg->node_id);
        if (rc < 0 && rc != -EEXIST)
            return rc;
        added++;
    }
    return added;
}

/* Every node hears of every partition (Metadata on any node names its
 * leader), and every non-internal topic's partitions ctl does not hold
 * yet are added with the default replication factor. */
static void add_topics(struct klog *k, krep_ctl *ctl, const krep_config *cfg)
{
    for (int i = 0; i < cfg->npeers; i++)
        krep_ctl_add_node(ctl, cfg->peers[i].id);
    kt_topic **snap;
    ssize_t nt = klog__topics_snapshot(k, &snap);
    if (nt < 0)
        return;
    for (ssize_t i = 0; i < nt; i++) {
        kt_topic *t = snap[i];
        if (!krep_topic_replicated(t->name) || atomic_load(&t->deleted))
            continue;
        /* its record (the configuration it has here) before its
         * partitions: the replicas create it so configured */
        char lines[8192];
        if (krep_ctl_topic(ctl, t->name, NULL, 0, NULL) == KREP_TOPIC_NONE &&
            klog_topic_describe(k, t->name, NULL, 0, lines, sizeof lines) >= 0)
            krep_ctl_put_topic(ctl, t->name, lines, false);
        add_parts(ctl, cfg, t->name, atomic_load_explicit(&t->nparts, memory_order_acquire), 0, NULL);
    }
    klog__topics_release(snap, (size_t)nt);
}

/* The whole list, written down (the controller's own changes go through
 * its persist hook; additions do not). */
static int write_all(krep_node *n, krep_ctl *ctl)
{
    int len = krep_ctl_list(ctl, NULL, 0);
    krep_ctl_entry *all = calloc((size_t)len + 1, sizeof *all);
    if (!all)
        return -ENOMEM;
    len = krep_ctl_list(ctl, all, len);
    int rc = krep_node_write_state(n, krep_node_config(n)->node_id, krep_ctl_epoch(ctl), all, len);
    free(all);
    return rc;
}

int krep_static_host(krep_node *n, int32_t epoch, const krep_ctl_entry *e, int ne, krep_ctl **out)
{
    *out = NULL;
    struct klog *k = krep_node_klog(n);
    const krep_config *cfg = krep_node_config(n);
    /* A log that holds an epoch of a newer controller: this one was
     * replaced while it was away, and must not take the cluster back. */
    for (int i = 0; i < ne; i++) {
        int32_t latest = log_latest_epoch(k, e[i].topic, e[i].partition);
        if (latest >= 0 && (latest >> KREP_EPOCH_SHIFT) > epoch)
            return KLOG_EFENCED;
    }
    krep_ctl *ctl;
    int rc = krep_ctl_new(&ctl, cfg->node_id, epoch);
    if (rc < 0)
        return rc;
    for (int i = 0; i < ne && rc == 0; i++) {
        krep_pstate st = e[i].st;
        int32_t latest = log_latest_epoch(k, e[i].topic, e[i].partition);
        /* A new run leads in a new epoch: above any its log holds, and
         * above the one the state gave it, which it may have led in
         * before a crash took that epoch's records (and its entry) from
         * its log, while a follower that copied them before they were
         * synced (acks=1, or the leader's sync running beside its
         * followers' fetches) still holds them in that epoch: leading in
         * it again would put other records at those offsets under the
         * same epoch, which no truncation could tell apart. */
        if (st.leader == cfg->node_id)
            st.leader_epoch = krep_next_epoch(latest > st.leader_epoch ? latest : st.leader_epoch, epoch);
        rc = krep_ctl_add_state(ctl, e[i].topic, e[i].partition, &st);
        if (rc == -EEXIST)
            rc = 0;
    }
    if (rc == 0) {
        add_topics(k, ctl, cfg);
        /* this run leads in the epochs just made: no registration bump */
        krep_ctl_set_incarnation(ctl, cfg->node_id, cfg->incarnation);
        krep_ctl_set_persist(ctl, persist_ctl, n);
        rc = write_all(n, ctl);
    }
    if (rc < 0) {
        krep_ctl_free(ctl);
        return rc;
    }
    /* the node answers to it from now on: an older controller's pushes
     * are refused even before this one's first reaches the node */
    krep_node_set_controller(n, cfg->node_id, epoch);
    *out = ctl;
    return 0;
}

/* What promoting node `self` does to partition e, which it will lead: its
 * end offset, the HW it last knew, and, unclean, what may be lost, told
 * to the log's callback too (the followers that truncate when they rejoin
 * say what they dropped). */
static krep_promoted promoted(krep_node *n, const krep_ctl_entry *e, int32_t self, bool unclean)
{
    struct klog *k = krep_node_klog(n);
    krep_promoted r = { e->topic, e->partition, e->st.leader, -1,
                        krep_node_leader_hw(n, e->topic, e->partition), unclean };
    kt_topic *t = klog__topic_get(k, e->topic);
    if (t && e->partition >= 0 && e->partition < atomic_load_explicit(&t->nparts, memory_order_acquire))
        r.end = kpart_end_offset(t->parts[e->partition]);
    if (t)
        klog__topic_put(t);
    if (unclean)
        klog__log_defer(k, KLOG_LOG_WARNING, KLOG_ENOTENOUGH, "replication",
                        "%s-%d: unclean promote: node %d, not in the ISR, leads from its end offset %" PRId64
                        " (the HW it last knew %" PRId64 "); the records leader %d held from offset %" PRId64
                        " on are lost, and each replica logs what it truncates when it follows",
                        e->topic, e->partition, self, r.end, r.old_hw, e->st.leader, r.end);
    return r;
}

int krep_static_promote(krep_node *n, const krep_state *known, int32_t floor, bool unclean, krep_ctl **out,
                        krep_promoted **rep, int *nrep, char *errbuf, size_t errsize)
{
    *out = NULL;
    if (rep) {
        *rep = NULL;
        *nrep = 0;
    }
    const krep_config *cfg = krep_node_config(n);
    int nk = known ? known->n : 0;
    int ne = krep_node_list(n, NULL, 0);
    krep_ctl_entry *e = calloc((size_t)(ne + nk) + 1, sizeof *e);
    if (!e)
        return -ENOMEM;
    ne = krep_node_list(n, e, ne);
    /* what the node was told in this run, else what it knew at start */
    for (int i = 0; i < nk; i++) {
        bool have = false;
        for (int j = 0; j < ne && !have; j++)
            have = e[j].partition == known->e[i].partition && strcmp(e[j].topic, known->e[i].topic) == 0;
        if (!have)
            e[ne++] = known->e[i];
    }
    if (ne <= 0) {
        free(e);
        return klog__errf(errbuf, errsize, KLOG_ESTATE, "this node has not been told any partition's state yet");
    }
    /* A controller epoch of this node's own: two nodes promoted from the
     * same knowledge (an operator on each side of a partition) must not
     * both get one number, or their leader epochs would collide.  The low
     * bits are the node's place in replication.peers. */
    int32_t id, ep;
    krep_node_controller(n, &id, &ep);
    int32_t base = ep > floor ? ep : floor, slot = 0;
    for (int i = 0; i < cfg->npeers; i++)
        if (cfg->peers[i].id == cfg->node_id)
            slot = i;
    if (base >= (INT32_MAX >> KREP_EPOCH_SHIFT) - KREP_MAX_NODES) {
        free(e);
        return klog__errf(errbuf, errsize, KLOG_ESTATE, "controller epochs exhausted");
    }
    int32_t epoch = ((base / KREP_MAX_NODES) + 1) * KREP_MAX_NODES + slot;
    krep_promoted *pr = rep ? calloc((size_t)ne + 1, sizeof *pr) : NULL;
    int npr = 0;
    if (rep && !pr) {
        free(e);
        return -ENOMEM;
    }
    int rc = 0;
    for (int i = 0; i < ne && rc == 0; i++) {
        krep_pstate *st = &e[i].st;
        if (!krep_in(st->replicas, st->nreplicas, cfg->node_id)) {
            /* Not a replica here: led by another in-sync replica than
             * the old leader (unclean: any other replica), else by none
             * until one is back and promoted. */
            int32_t old = st->leader, lead = -1;
            for (int j = 0; j < st->nisr && lead < 0; j++)
                if (st->isr[j] != old)
                    lead = st->isr[j];
            for (int j = 0; unclean && j < st->nreplicas && lead < 0; j++)
                if (st->replicas[j] != old)
                    lead = st->replicas[j];
            if (lead >= 0 && !krep_in(st->isr, st->nisr, lead)) {
                st->nisr = 1;
                st->isr[0] = lead;
            } else if (lead >= 0 && old >= 0) {
                int k = 0;
                for (int j = 0; j < st->nisr; j++)
                    if (st->isr[j] != old)
                        st->isr[k++] = st->isr[j];
                st->nisr = k;
            }
            st->leader = lead;
            st->leader_epoch = krep_next_epoch(st->leader_epoch, epoch);
            st->partition_epoch++;
            continue;
        }
        if (!krep_in(st->isr, st->nisr, cfg->node_id) && !unclean) {
            rc = klog__errf(errbuf, errsize, KLOG_ENOTENOUGH,
                            "%s-%d: node %d is not an in-sync replica (an unclean promote could lose acknowledged "
                            "records)", e[i].topic, e[i].partition, cfg->node_id);
            break;
        }
        int32_t old = st->leader;
        bool in_isr = krep_in(st->isr, st->nisr, cfg->node_id);
        krep_promoted r = promoted(n, &e[i], cfg->node_id, !in_isr);
        if (pr)
            pr[npr++] = r;
        if (!in_isr) {
            st->nisr = 1;
            st->isr[0] = cfg->node_id;
        } else if (old >= 0 && old != cfg->node_id) {
            int k = 0;
            for (int j = 0; j < st->nisr; j++)
                if (st->isr[j] != old)
                    st->isr[k++] = st->isr[j];
            st->nisr = k;
        }
        st->leader = cfg->node_id;
        st->leader_epoch = krep_next_epoch(st->leader_epoch, epoch);
        st->partition_epoch++;
    }
    if (rc == 0) {
        rc = krep_static_host(n, epoch, e, ne, out);
        if (rc < 0)
            klog__errf(errbuf, errsize, rc, "%s",
                       rc == KLOG_EFENCED ? "a newer controller has led this node's partitions"
                                          : klog_strerror(rc));
    }
    free(e);
    if (rc == 0 && rep) {
        *rep = pr;
        *nrep = npr;
    } else {
        free(pr);
    }
    return rc;
}

int krep_static_track(krep_node *n, krep_ctl *ctl)
{
    int before = krep_ctl_list(ctl, NULL, 0);
    add_topics(krep_node_klog(n), ctl, krep_node_config(n));
    if (krep_ctl_list(ctl, NULL, 0) == before)
        return 0;
    int rc = write_all(n, ctl);
    return rc < 0 ? rc : 1;
}

int krep_static_add_topic(krep_node *n, krep_ctl *ctl, const char *topic, int32_t nparts, int rf,
                          const int32_t *assign)
{
    const krep_config *cfg = krep_node_config(n);
    if (assign) {
        for (int32_t p = 0; p < nparts; p++)
            if (!krep_in(assign + (size_t)p * (size_t)rf, rf, cfg->node_id))
                return -EINVAL;
    }
    int rc = add_parts(ctl, cfg, topic, nparts, rf, assign);
    if (rc > 0) {
        int wrc = write_all(n, ctl);
        rc = wrc < 0 ? wrc : rc;
    }
    return rc;
}

int krep_static_delete_topic(krep_node *n, krep_ctl *ctl, const char *topic)
{
    int rc = krep_ctl_put_topic(ctl, topic, NULL, true);
    return rc < 0 ? rc : write_all(n, ctl);
}
