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
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "format/format.h"
#include "partition/partition.h"
#include "replication/internal.h"
#include "storage/storage.h"

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
            if (rp->error_code != KK_ERR_NONE)
                continue;
            rp->high_watermark = rp->last_stable_offset = kpart_high_watermark(p);
            rp->log_start_offset = kpart_start_offset(p);
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

int krep_serve(krep_node *n, krep_ctl *ctl, const void *frame, size_t len, int64_t now_ms, kk_wbuf *w)
{
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
