/*
 * lib/replication/serve.c - a node's answers to its peers without a klog
 * server: krep_serve decodes a request frame and answers it at once
 * (LeaderAndIsr, OffsetForLeaderEpoch, a replica's Fetch with what there
 * is now, no long poll; AlterPartition for the controller a node hosts).
 * The simulation carries these frames over the in-memory network.  The
 * klog server answers the same requests with its own handlers (long polls
 * included), calling the krep_handle_* functions.
 *
 * Also the scratch memory lib/replication builds messages in (krep_mem).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/instance.h>
#include <klog/topic.h>

#include "common/common.h"
#include "common/conf.h"
#include "format/format.h"
#include "partition/partition.h"
#include "replication/internal.h"
#include "storage/storage.h"
#include "topic/topic.h"

/* ---- krep_mem ------------------------------------------------------------------------ */

void *krep_mem_alloc(void *mem, size_t n)
{
    krep_mem *m = mem;
    if (klog__vec_reserve(&m->blocks, &m->cap, m->n + 1, sizeof *m->blocks) < 0)
        return NULL;
    void *p = calloc(1, n ? n : 1);
    if (p)
        m->blocks[m->n++] = p;
    return p;
}

void krep_mem_reset(krep_mem *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->blocks[i]);
    m->n = 0;
}

/* ---- a replica's Fetch, answered now ---------------------------------------------------------- */

typedef struct fetch_ctx {
    krep_mem mem;
    ks_view views[64];
    int nviews;
    kf_codec *codec;
} fetch_ctx;

/* The view's batches as Kafka wire batches, copied into scratch memory. */
static int wire_records(fetch_ctx *fc, const ks_view *v, kk_records *out)
{
    out->p = (const uint8_t *)"";
    out->len = 0;
    if (v->len == 0)
        return 0;
    size_t total = 0, off = 0;
    while (off < v->len) {
        ssize_t sz = kf_batch_parse(v->data + off, v->len - off, NULL);
        if (sz <= 0)
            return KLOG_ECORRUPT;
        total += (size_t)sz; /* a wire batch is 4 bytes shorter; an LZ4 re-frame can grow */
        off += (size_t)sz;
    }
    uint8_t *buf = krep_mem_alloc(&fc->mem, total + 64);
    if (!buf)
        return -ENOMEM;
    size_t cap = total + 64, used = 0;
    off = 0;
    while (off < v->len) {
        const uint8_t *b = v->data + off;
        size_t sz = (size_t)kf_batch_parse(b, v->len - off, NULL);
        uint8_t hdr[KF_WIRE_HDR_SIZE];
        const uint8_t *recs;
        size_t rl;
        int rc = kf_batch_to_wire(b, sz, KF_WIRE_VERIFY, fc->codec, hdr, &recs, &rl);
        if (rc < 0)
            return rc;
        if (used + KF_WIRE_HDR_SIZE + rl > cap) {
            uint8_t *nb = krep_mem_alloc(&fc->mem, (used + KF_WIRE_HDR_SIZE + rl) * 2);
            if (!nb)
                return -ENOMEM;
            memcpy(nb, buf, used);
            buf = nb;
            cap = (used + KF_WIRE_HDR_SIZE + rl) * 2;
        }
        memcpy(buf + used, hdr, KF_WIRE_HDR_SIZE);
        memcpy(buf + used + KF_WIRE_HDR_SIZE, recs, rl);
        used += KF_WIRE_HDR_SIZE + rl;
        off += sz;
    }
    out->p = buf;
    out->len = (int32_t)used;
    return 0;
}

static int serve_fetch(krep_node *n, const kk_fetch_req *q, int64_t now_ms, fetch_ctx *fc, kk_fetch_resp *r)
{
    memset(r, 0, sizeof *r);
    kk_fetch_resp_topic *ts = krep_mem_alloc(&fc->mem, ((size_t)q->topics.n + 1) * sizeof *ts);
    if (!ts)
        return -ENOMEM;
    size_t budget = q->max_bytes > 0 ? (size_t)q->max_bytes : 1;
    for (int i = 0; i < q->topics.n; i++) {
        const kk_fetch_req_topic *qt = &q->topics.v[i];
        int np = qt->partitions.n;
        kk_fetch_resp_partition *ps = krep_mem_alloc(&fc->mem, ((size_t)np + 1) * sizeof *ps);
        if (!ps)
            return -ENOMEM;
        ts[i].topic = qt->topic;
        ts[i].partitions.v = ps;
        ts[i].partitions.n = np;
        for (int j = 0; j < np; j++) {
            const kk_fetch_req_partition *qp = &qt->partitions.v[j];
            kk_fetch_resp_partition *rp = &ps[j];
            rp->partition_index = qp->partition;
            rp->high_watermark = rp->last_stable_offset = rp->log_start_offset = -1;
            rp->aborted_transactions.n = -1;
            rp->preferred_read_replica = -1;
            rp->records.p = (const uint8_t *)"";
            kpart *p = NULL;
            if (!qt->topic.p || (int32_t)strlen(qt->topic.p) != qt->topic.len) {
                rp->error_code = KK_ERR_INVALID_TOPIC_EXCEPTION;
                continue;
            }
            if (q->replica_id < 0) {
                rp->error_code = KK_ERR_NOT_LEADER_OR_FOLLOWER; /* peers only here */
                continue;
            }
            rp->error_code = krep_replica_fetch(n, qt->topic.p, qp->partition, q->replica_id, qp->current_leader_epoch,
                                                qp->fetch_offset, now_ms, &p);
            if (p) { /* also with OFFSET_OUT_OF_RANGE: the follower needs the log start */
                rp->high_watermark = rp->last_stable_offset = kpart_high_watermark(p);
                rp->log_start_offset = kpart_start_offset(p);
            }
            if (rp->error_code != KK_ERR_NONE)
                continue;
            if (fc->nviews == (int)KLOG_ARRAY_LEN(fc->views) || budget == 0)
                continue;
            size_t pmax = qp->partition_max_bytes > 0 ? (size_t)qp->partition_max_bytes : 1;
            if (pmax > budget)
                pmax = budget;
            ks_view *v = &fc->views[fc->nviews];
            int rc = kpart_read_log(p, qp->fetch_offset, pmax, v);
            if (rc < 0) {
                rp->error_code = rc == KLOG_EOFFSET ? KK_ERR_OFFSET_OUT_OF_RANGE : KK_ERR_KAFKA_STORAGE_ERROR;
                continue;
            }
            fc->nviews++;
            rc = wire_records(fc, v, &rp->records);
            if (rc < 0) {
                rp->error_code = rc == KLOG_ECORRUPT ? KK_ERR_CORRUPT_MESSAGE : KK_ERR_KAFKA_STORAGE_ERROR;
                rp->records.p = (const uint8_t *)"";
                rp->records.len = 0;
                continue;
            }
            budget = (size_t)rp->records.len < budget ? budget - (size_t)rp->records.len : 0;
        }
    }
    r->responses.v = ts;
    r->responses.n = q->topics.n;
    return 0;
}

/* ---- topic records (replication.h) ------------------------------------------------------ */

int krep_conf_set_lines(klog_conf *c, const char *lines, bool keep_going, char *errbuf, size_t errsize)
{
    int rc = 0;
    for (const char *p = lines; *p && (rc == 0 || keep_going);) {
        const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (eq && (size_t)(eq - p) < len && len < 2 * KC_STR_MAX) {
            char key[KC_STR_MAX], val[KC_STR_MAX];
            snprintf(key, sizeof key, "%.*s", (int)(eq - p), p);
            snprintf(val, sizeof val, "%.*s", (int)(len - (size_t)(eq - p) - 1), eq + 1);
            int r = klog_conf_set(c, key, val, errbuf, errsize);
            if (rc == 0)
                rc = r;
        }
        p += len + (nl ? 1 : 0);
    }
    return rc;
}

klog_conf *krep_conf_of_lines(const char *lines)
{
    klog_conf *c = NULL;
    if (!lines || !*lines || klog_conf_new(&c) < 0)
        return NULL;
    (void)krep_conf_set_lines(c, lines, true, NULL, 0);
    return c;
}

/* Whether "key=..." is among the lines. */
static bool lines_have(const char *lines, const char *key, size_t kl)
{
    for (const char *p = lines; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > kl && p[kl] == '=' && !memcmp(p, key, kl))
            return true;
        p += len + (nl ? 1 : 0);
    }
    return false;
}

/* Make this node's copy of topic carry exactly the configuration `lines`
 * (its own keys that lines lack go back to the instance's).  Returns 0,
 * or klog_topic_alter_config's error. */
int krep_apply_topic_config(struct klog *k, const char *topic, const char *lines)
{
    char own[8192];
    int rc = klog_topic_describe(k, topic, NULL, 0, own, sizeof own);
    if (rc < 0)
        return rc == KLOG_EUNKNOWN_TOPIC ? 0 : rc;
    const char *unset[64];
    char keys[64][KC_STR_MAX];
    size_t nunset = 0;
    for (const char *p = own; *p && nunset < 64;) {
        const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (eq && (size_t)(eq - p) < len && (size_t)(eq - p) < KC_STR_MAX &&
            !lines_have(lines, p, (size_t)(eq - p))) {
            snprintf(keys[nunset], KC_STR_MAX, "%.*s", (int)(eq - p), p);
            unset[nunset] = keys[nunset];
            nunset++;
        }
        p += len + (nl ? 1 : 0);
    }
    klog_conf *set = krep_conf_of_lines(lines);
    if (!set && !nunset)
        return 0;
    char err[256];
    rc = klog_topic_alter_config(k, topic, set, unset, nunset, err, sizeof err);
    if (rc < 0)
        klog__log_defer(k, KLOG_LOG_WARNING, rc, "replication", "%s: the controller's configuration: %s", topic,
                        err);
    klog_conf_free(set);
    return rc;
}

int16_t krep_handle_topics(krep_node *n, const krep_topics_req *q)
{
    if (!n)
        return KK_ERR_INVALID_REQUEST;
    int32_t id, ep;
    krep_node_controller(n, &id, &ep);
    if (q->controller_epoch < ep)
        return KK_ERR_STALE_CONTROLLER_EPOCH;
    struct klog *k = krep_node_klog(n);
    for (int i = 0; i < q->n; i++) {
        const krep_topic_rec *t = &q->v[i];
        if (!t->name || klog__topic_name_check(t->name) < 0 || !krep_topic_replicated(t->name))
            continue; /* nothing this node does with it */
        if (t->deleted) {
            int rc = t->name[0] == '_' ? 0 : klog_topic_delete(k, t->name);
            if ((rc < 0 && rc != KLOG_EUNKNOWN_TOPIC) || krep_node_forget(n, t->name) < 0)
                return KK_ERR_KAFKA_STORAGE_ERROR; /* told again */
            continue;
        }
        /* a configuration klog refuses stays refused when told again: logged */
        int rc = krep_apply_topic_config(k, t->name, t->config ? t->config : "");
        if (rc < 0 && rc != KLOG_ECONF)
            return KK_ERR_KAFKA_STORAGE_ERROR;
    }
    return KK_ERR_NONE;
}

int krep_serve(krep_node *n, krep_ctl *ctl, const void *frame, size_t len, int64_t now_ms, kk_wbuf *w)
{
    const uint8_t *fb = frame;
    if (len >= 2 && (int16_t)(fb[0] << 8 | fb[1]) == KREP_API_TOPICS) {
        krep_topics_req tq;
        int trc = krep_topics_decode(frame, len, &tq);
        if (trc == 0)
            trc = krep_topics_answer(w, tq.corr, krep_handle_topics(n, &tq));
        krep_topics_req_free(&tq);
        return trc;
    }
    kk_arena arena;
    kk_arena_init(&arena, NULL, 0);
    kk_request q;
    int rc = kk_request_decode(frame, len, NULL, &arena, &q);
    if (rc < 0) {
        kk_arena_reset(&arena);
        return rc;
    }
    if (q.hdr.api_key == KK_API_ALTER_PARTITION) {
        if (ctl) {
            kk_arena_reset(&arena);
            return krep_ctl_serve(ctl, frame, len, now_ms, w);
        }
        /* not the controller (any more): the node asks again where its
         * next LeaderAndIsr says */
        kk_alter_partition_resp r = { .error_code = KK_ERR_NOT_CONTROLLER };
        kk_wbuf_reset(w);
        rc = kk_response_encode(w, q.hdr.api_key, q.hdr.api_version, q.hdr.correlation_id, &r);
        kk_arena_reset(&arena);
        return rc;
    }
    fetch_ctx fc = { 0 };
    union {
        kk_leader_and_isr_resp lai;
        kk_offset_for_leader_epoch_resp ofle;
        kk_fetch_resp fetch;
    } r;
    switch (q.hdr.api_key) {
    case KK_API_LEADER_AND_ISR:
        rc = krep_handle_leader_and_isr(n, &q.body.leader_and_isr, q.hdr.api_version, now_ms, krep_mem_alloc, &fc.mem,
                                        &r.lai);
        break;
    case KK_API_OFFSET_FOR_LEADER_EPOCH:
        rc = krep_handle_offset_for_leader_epoch(n, NULL, &q.body.offset_for_leader_epoch, krep_mem_alloc, &fc.mem,
                                                 &r.ofle);
        break;
    case KK_API_FETCH:
        rc = kf_codec_new(&fc.codec);
        if (rc == 0)
            rc = serve_fetch(n, &q.body.fetch, now_ms, &fc, &r.fetch);
        break;
    default:
        rc = KLOG_EFORMAT;
    }
    if (rc == 0) {
        kk_wbuf_reset(w);
        rc = kk_response_encode(w, q.hdr.api_key, q.hdr.api_version, q.hdr.correlation_id, &r);
    }
    for (int i = 0; i < fc.nviews; i++)
        ks_view_release(&fc.views[i]);
    kf_codec_free(fc.codec);
    krep_mem_reset(&fc.mem);
    free(fc.mem.blocks);
    kk_arena_reset(&arena);
    return rc;
}
