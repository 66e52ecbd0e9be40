/*
 * lib/server/data.c - the data path: Produce, Fetch, ListOffsets,
 * DeleteRecords, InitProducerId.
 *
 * Produce.  Each partition's records are Kafka record batches (magic 2).
 * Each is checked as a Kafka broker checks it: the CRC-32C
 * (kf_wire_to_batch), the header (a producer's batch: at least one record,
 * last_offset_delta = count - 1), then every record, decompressed if need
 * be (kf_batch_records + kf_iter), so what is stored is what Kafka's own
 * consumers can read.  The batch is stored as sent, its header rewritten
 * into klog's (format.h: a header rewrite, the records section moved over
 * unchanged); a lone batch is converted in place in the request's frame.
 * acks=0 sends no response (an error closes the connection, as Kafka
 * does); acks=1 answers once appended; acks=all once appended and durable
 * (KS_APPEND_SYNC), and on a replicated partition once below the high
 * watermark: the call parks on the partition's HW until then, or until
 * the request's timeout (REQUEST_TIMED_OUT).
 *
 * Fetch.  Whole stored batches below the high watermark, each sent as
 * Kafka's header (61 bytes, built here) followed by its records section
 * referenced in the segment's mapping, not copied (kk_wbuf refs: writev
 * from the mapping).  The views stay held in the call's state until the
 * response has gone out.  Fewer than min_bytes and time left: the call
 * parks, listening on the partitions' HW, until data arrives or max_wait.
 * Fetch sessions (KIP-227) are not kept: session_id 0 answers every fetch
 * in full, which is what a client that gets session 0 back expects.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/common.h"
#include "common/conf.h"
#include "format/format.h"
#include "partition/partition.h"
#include "server/acl.h"
#include "server/internal.h"
#include "storage/conf_keys.h"
#include "topic/topic.h"

#define FETCH_MAX_BYTES (64u << 20)      /* a response's records, whatever the client asks */
#define FETCH_MAX_BATCHES 100000u        /* batches in one response */

static int64_t now_ns(void)
{
    return (int64_t)klog__now_ns();
}

static kpart *part_of(kt_topic *t, int32_t i)
{
    if (!t || i < 0 || i >= atomic_load_explicit(&t->nparts, memory_order_acquire))
        return NULL;
    return t->parts[i];
}

/* The topic a request names (referenced; klog__topic_put), or NULL with
 * *err its Kafka error: a name with a NUL in it is invalid, and a
 * principal without op on the topic gets TOPIC_AUTHORIZATION_FAILED
 * whether it exists or not (as Kafka: nothing is learnt of topics one may
 * not see). */
static kt_topic *topic_for(ksrv_call *c, const kk_str *name, int op, int16_t *err)
{
    *err = KK_ERR_NONE;
    if (!name->p || (int32_t)strlen(name->p) != name->len) {
        *err = KK_ERR_INVALID_TOPIC_EXCEPTION;
        return NULL;
    }
    if (!ksrv_allowed(c, op, KACL_RES_TOPIC, name->p)) {
        *err = KK_ERR_TOPIC_AUTHORIZATION_FAILED;
        return NULL;
    }
    return ksrv_topic_get(c->srv, name->p, false, err);
}

/* ---- watching partitions (parked calls) ------------------------------------- */

typedef struct watch {
    kpart *p;
    kpart_listener l;
} watch;

static void on_hw(void *arg, unsigned events, int64_t offset)
{
    (void)events;
    (void)offset;
    ksrv_call_wake(arg);
}

/* A consumer's call waits for the HW; a replica's fetch for appends. */
static void watch_start_ev(watch *w, kpart *p, ksrv_call *c, unsigned events)
{
    if (w->p)
        return;
    w->p = p;
    w->l = (kpart_listener){ .fn = on_hw, .arg = c, .events = events };
    kpart_listen(p, &w->l);
}

static void watch_start(watch *w, kpart *p, ksrv_call *c) { watch_start_ev(w, p, c, KPART_EV_HW); }

static void watch_stop(watch *w)
{
    if (w->p)
        kpart_unlisten(w->p, &w->l);
    w->p = NULL;
}

/* ---- Produce ------------------------------------------------------------------ */

typedef struct produce_part {
    kt_topic *t;
    kpart *p;
    int64_t end;          /* acks=all: wait for the HW to reach this */
    int32_t epoch;        /* the leader epoch the records were appended in */
    watch w;
} produce_part;

typedef struct produce_state {
    int n;
    produce_part *pp;     /* one per (topic, partition) of the request, in order */
    kk_produce_resp r;
} produce_state;

static void produce_free(ksrv_call *c)
{
    produce_state *st = c->state;
    for (int i = 0; i < st->n; i++) {
        watch_stop(&st->pp[i].w);
        if (st->pp[i].t)
            klog__topic_put(st->pp[i].t);
    }
}

/* Check every record of a stored batch: what a broker does when it
 * decompresses a produced batch to validate it. */
static int check_records(ksrv_call *c, const uint8_t *b, size_t len)
{
    kf_batch_info bi;
    if (kf_batch_parse(b, len, &bi) != (ssize_t)len)
        return KLOG_ECORRUPT;
    if (bi.attributes & (KF_ATTR_TRANSACTIONAL | KF_ATTR_CONTROL))
        return KLOG_EFORMAT; /* transactions are not supported */
    const uint8_t *recs;
    size_t rl;
    int rc = kf_batch_records(b, len, ksrv_codec(c), &recs, &rl);
    if (rc < 0)
        return rc;
    kf_iter it;
    kf_record_view rv;
    kf_iter_init(&it, &bi, recs, rl);
    while ((rc = kf_iter_next(&it, &rv)) == 1)
        ;
    return rc;
}

static int16_t produce_err(int rc)
{
    switch (rc) {
    case KLOG_ECORRUPT: return KK_ERR_CORRUPT_MESSAGE;
    case KLOG_ETOOBIG: return KK_ERR_MESSAGE_TOO_LARGE;
    case KLOG_EFORMAT: return KK_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
    case KLOG_ESEQUENCE: return KK_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    case KLOG_EFENCED: return KK_ERR_INVALID_PRODUCER_EPOCH;
    default: return kk_err_from_klog(rc, KK_CTX_PARTITION);
    }
}

/* Store one partition's records; fills rp and returns the end offset to
 * wait for (acks=all), or -1; *epoch gets the leader epoch they were
 * appended in. */
static int64_t produce_one(ksrv_call *c, kt_topic *t, kpart *p, const kk_records *rec, int acks,
                           kk_produce_resp_partition *rp, int32_t *epoch)
{
    rp->base_offset = -1;
    rp->log_append_time_ms = -1;
    rp->log_start_offset = -1;
    if (!rec->p || rec->len <= 0) {
        rp->error_code = KK_ERR_CORRUPT_MESSAGE;
        return -1;
    }
    /* Count and frame the batches first. */
    const uint8_t *w = rec->p;
    size_t len = (size_t)rec->len, off = 0;
    unsigned nb = 0;
    size_t max_batch = (size_t)klog__conf_int(t->conf, KC_MAX_MESSAGE_BYTES);
    while (off < len) {
        ssize_t sz = kf_wire_parse(w + off, len - off, NULL);
        if (sz <= 0) {
            rp->error_code = produce_err(sz == 0 ? KLOG_ECORRUPT : (int)sz);
            return -1;
        }
        off += (size_t)sz;
        nb++;
    }
    ks_batch *bs = ksrv_alloc(c, nb * sizeof *bs);
    uint8_t *scratch = nb > 1 ? ksrv_alloc(c, len + 4 * (size_t)nb) : NULL;
    if (!bs || (nb > 1 && !scratch)) {
        rp->error_code = KK_ERR_UNKNOWN_SERVER_ERROR;
        return -1;
    }
    kf_wire_caps caps = { .max_batch = max_batch, .producer = 1 };
    off = 0;
    size_t soff = 0;
    for (unsigned i = 0; i < nb; i++) {
        size_t sz = (size_t)kf_wire_parse(w + off, len - off, NULL), out;
        /* A lone batch is converted in place, over the 4 bytes in front of
         * it (the records field's length, already read). */
        uint8_t *dst = nb == 1 ? (uint8_t *)(uintptr_t)(w - 4) : scratch + soff;
        int rc = kf_wire_to_batch(w + off, sz, &caps, dst, sz + 4, &out);
        if (rc == 0)
            rc = check_records(c, dst, out);
        if (rc < 0) {
            rp->error_code = produce_err(rc);
            return -1;
        }
        bs[i] = (ks_batch){ .batch = dst, .len = out };
        off += sz;
        soff += out;
    }
    int rc = kpart_append(p, bs, nb, acks < 0 ? KS_APPEND_SYNC | KPART_APPEND_ALL : 0);
    if (rc < 0) {
        rp->error_code = produce_err(rc);
        return -1;
    }
    /* The first batch's offset (a duplicate's is where it already is). */
    rp->base_offset = bs[0].base_offset;
    rp->error_code = KK_ERR_NONE;
    rp->log_start_offset = kpart_start_offset(p);
    const ks_batch *last = &bs[nb - 1];
    kf_batch_info bi;
    int64_t end = -1;
    *epoch = kpart_batch_epoch(last);
    if (*epoch < 0)
        *epoch = kpart_leader_epoch(p); /* a duplicate: it lies where it was */
    if (last->base_offset >= 0 && kf_batch_parse(last->batch, last->len, &bi) > 0)
        end = last->base_offset + bi.last_offset_delta + 1;
    return end;
}

int ksrv_produce(ksrv_call *c)
{
    const kk_produce_req *q = &c->req.body.produce;
    produce_state *st = c->state;
    if (!st) {
        if (q->acks != 0 && q->acks != 1 && q->acks != -1) {
            kk_produce_resp r = { 0 };
            kk_produce_resp_topic *ts = ksrv_alloc(c, ((size_t)q->topics.n + 1) * sizeof *ts);
            if (!ts)
                return -ENOMEM;
            for (int i = 0; i < q->topics.n; i++) {
                int np = q->topics.v[i].partitions.n;
                kk_produce_resp_partition *ps = ksrv_alloc(c, ((size_t)np + 1) * sizeof *ps);
                if (!ps)
                    return -ENOMEM;
                for (int j = 0; j < np; j++)
                    ps[j] = (kk_produce_resp_partition){ q->topics.v[i].partitions.v[j].index,
                                                         KK_ERR_INVALID_REQUIRED_ACKS, -1, -1, -1 };
                ts[i] = (kk_produce_resp_topic){ q->topics.v[i].name, { ps, np } };
            }
            r.responses.v = ts;
            r.responses.n = q->topics.n;
            return ksrv_respond(c, &r);
        }
        if (q->transactional_id.p) {
            ksrv_log(c->srv, "%s: a transactional Produce (transactions are not supported)", ksrv_conn_peer(c->conn));
            /* answered per partition below with the batches refused */
        }
        size_t total = 0;
        for (int i = 0; i < q->topics.n; i++)
            total += (size_t)q->topics.v[i].partitions.n;
        if (!(st = ksrv_alloc(c, sizeof *st)) || !(st->pp = ksrv_alloc(c, (total + 1) * sizeof *st->pp)))
            return -ENOMEM;
        c->state = st;
        c->state_free = produce_free;
        kk_produce_resp_topic *ts = ksrv_alloc(c, ((size_t)q->topics.n + 1) * sizeof *ts);
        if (!ts)
            return -ENOMEM;
        bool failed = false;
        for (int i = 0; i < q->topics.n; i++) {
            const kk_produce_req_topic *qt = &q->topics.v[i];
            int np = qt->partitions.n;
            kk_produce_resp_partition *ps = ksrv_alloc(c, ((size_t)np + 1) * sizeof *ps);
            if (!ps)
                return -ENOMEM;
            int16_t terr;
            kt_topic *t = topic_for(c, &qt->name, KACL_OP_WRITE, &terr);
            for (int j = 0; j < np; j++) {
                const kk_produce_req_partition *qp = &qt->partitions.v[j];
                kk_produce_resp_partition *rp = &ps[j];
                produce_part *pp = &st->pp[st->n++];
                rp->index = qp->index;
                rp->base_offset = rp->log_append_time_ms = rp->log_start_offset = -1;
                pp->end = -1;
                kpart *p = part_of(t, qp->index);
                if (!t || !p) {
                    rp->error_code = t ? KK_ERR_UNKNOWN_TOPIC_OR_PARTITION : terr;
                } else if (q->transactional_id.p) {
                    rp->error_code = KK_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
                } else if (t->name[0] == '_' && t->name[1] == '_') {
                    /* As Kafka: "Cannot append to internal topic" (the
                     * group coordinator's offsets are written by it alone). */
                    rp->error_code = KK_ERR_INVALID_TOPIC_EXCEPTION;
                } else {
                    klog__topic_ref(t);
                    pp->t = t;
                    pp->p = p;
                    pp->end = produce_one(c, t, p, &qp->records, q->acks, rp, &pp->epoch);
                }
                if (rp->error_code != KK_ERR_NONE)
                    failed = true;
            }
            if (t)
                klog__topic_put(t);
            ts[i] = (kk_produce_resp_topic){ qt->name, { ps, np } };
        }
        st->r.responses.v = ts;
        st->r.responses.n = q->topics.n;
        if (q->acks == 0) {
            if (failed) {
                ksrv_log(c->srv, "%s: acks=0 Produce failed: closing the connection, as Kafka does",
                         ksrv_conn_peer(c->conn));
                return KLOG_ECORRUPT;
            }
            return KSRV_NORESPONSE;
        }
        c->deadline = c->started + (int64_t)(q->timeout_ms > 0 ? q->timeout_ms : 0) * 1000000;
    }
    /* acks=all on a replicated partition: wait for the high watermark. */
    bool waiting = false;
    int k = 0;
    for (int i = 0; i < st->r.responses.n; i++) {
        kk_produce_resp_topic *rt = &st->r.responses.v[i];
        for (int j = 0; j < rt->partitions.n; j++, k++) {
            produce_part *pp = &st->pp[k];
            if (q->acks != -1 || pp->end < 0 || !pp->p)
                continue;
            if (kpart_replicated(pp->p) &&
                (kpart_role(pp->p) != KPART_LEADER || kpart_leader_epoch(pp->p) != pp->epoch)) {
                /* Leadership moved since the append: the records below the
                 * HW may be others now (Kafka fails such a wait the same). */
                rt->partitions.v[j].error_code = KK_ERR_NOT_LEADER_OR_FOLLOWER;
                pp->end = -1;
                watch_stop(&pp->w);
                continue;
            }
            if (kpart_high_watermark(pp->p) >= pp->end) {
                pp->end = -1;
                watch_stop(&pp->w);
                continue;
            }
            if (c->expired) {
                rt->partitions.v[j].error_code = KK_ERR_REQUEST_TIMED_OUT;
                pp->end = -1;
                continue;
            }
            watch_start(&pp->w, pp->p, c);
            if (kpart_high_watermark(pp->p) >= pp->end) {
                pp->end = -1;
                continue;
            }
            waiting = true;
        }
    }
    if (waiting)
        return KSRV_PARK;
    return ksrv_respond(c, &st->r);
}

/* ---- Fetch -------------------------------------------------------------------- */

typedef struct fetch_part {
    kt_topic *t;
    kpart *p;
    int16_t err;
    ks_view v;
    watch w;
} fetch_part;

typedef struct fetch_state {
    int n;
    fetch_part *fp;
    bool watching;        /* listeners registered on every partition */
} fetch_state;

static void fetch_release(fetch_state *st)
{
    for (int i = 0; i < st->n; i++)
        ks_view_release(&st->fp[i].v);
}

static void fetch_free(ksrv_call *c)
{
    fetch_state *st = c->state;
    for (int i = 0; i < st->n; i++) {
        watch_stop(&st->fp[i].w);
        ks_view_release(&st->fp[i].v);
        if (st->fp[i].t)
            klog__topic_put(st->fp[i].t);
    }
}

static int16_t fetch_epoch_check(kpart *p, int32_t current)
{
    if (current < 0)
        return KK_ERR_NONE;
    int32_t e = kpart_leader_epoch(p);
    if (current > e)
        return KK_ERR_UNKNOWN_LEADER_EPOCH;
    if (current < e)
        return KK_ERR_FENCED_LEADER_EPOCH;
    return KK_ERR_NONE;
}

/* The records of one partition's view as Kafka batches: iov pairs of
 * (header built here, records section in the mapping). */
static int fetch_records(ksrv_call *c, const ks_view *v, kk_records *out, size_t *batches)
{
    out->p = NULL;
    out->len = 0;
    out->iovcnt = 0;
    out->iov = NULL;
    if (v->len == 0)
        return 0;
    size_t nb = 0, off = 0;
    while (off < v->len) {
        ssize_t sz = kf_batch_parse(v->data + off, v->len - off, NULL);
        if (sz <= 0)
            return KLOG_ECORRUPT;
        off += (size_t)sz;
        nb++;
    }
    struct iovec *iov = ksrv_alloc(c, 2 * nb * sizeof *iov);
    uint8_t *hdrs = ksrv_alloc(c, nb * KF_WIRE_HDR_SIZE);
    if (!iov || !hdrs)
        return -ENOMEM;
    off = 0;
    for (size_t i = 0; i < nb; i++) {
        const uint8_t *b = v->data + off;
        size_t sz = (size_t)kf_batch_parse(b, v->len - off, NULL);
        const uint8_t *recs;
        size_t rl;
        int rc = kf_batch_to_wire(b, sz, KF_WIRE_VERIFY, ksrv_codec(c), hdrs + i * KF_WIRE_HDR_SIZE, &recs, &rl);
        if (rc < 0)
            return rc;
        if (rl && (recs < b || recs + rl > b + sz)) {
            /* Re-framed in the codec's scratch (a v2 LZ4 batch): keep a copy. */
            uint8_t *cp = ksrv_alloc(c, rl);
            if (!cp)
                return -ENOMEM;
            memcpy(cp, recs, rl);
            recs = cp;
        }
        iov[2 * i] = (struct iovec){ hdrs + i * KF_WIRE_HDR_SIZE, KF_WIRE_HDR_SIZE };
        iov[2 * i + 1] = (struct iovec){ (void *)(uintptr_t)recs, rl };
        off += sz;
    }
    out->iov = iov;
    out->iovcnt = (int)(2 * nb);
    out->len = 0;
    for (size_t i = 0; i < 2 * nb; i++)
        out->len += (int32_t)iov[i].iov_len;
    out->p = (const uint8_t *)"";
    *batches += nb;
    return 0;
}

int ksrv_fetch(ksrv_call *c)
{
    const kk_fetch_req *q = &c->req.body.fetch;
    fetch_state *st = c->state;
    if (!st) {
        size_t total = 0;
        for (int i = 0; i < q->topics.n; i++)
            total += (size_t)q->topics.v[i].partitions.n;
        if (!(st = ksrv_alloc(c, sizeof *st)) || !(st->fp = ksrv_alloc(c, (total + 1) * sizeof *st->fp)))
            return -ENOMEM;
        c->state = st;
        c->state_free = fetch_free;
        for (int i = 0; i < q->topics.n; i++) {
            const kk_fetch_req_topic *qt = &q->topics.v[i];
            int16_t terr;
            kt_topic *t = topic_for(c, &qt->topic, KACL_OP_READ, &terr);
            for (int j = 0; j < qt->partitions.n; j++) {
                fetch_part *fp = &st->fp[st->n++];
                kpart *p = part_of(t, qt->partitions.v[j].partition);
                if (!p) {
                    fp->err = t ? KK_ERR_UNKNOWN_TOPIC_OR_PARTITION : terr;
                    continue;
                }
                klog__topic_ref(t);
                fp->t = t;
                fp->p = p;
            }
            if (t)
                klog__topic_put(t);
        }
        int64_t wait = q->max_wait_ms > 0 ? q->max_wait_ms : 0;
        c->deadline = c->started + wait * 1000000;
    }
    kk_fetch_resp r = { 0 };
    if (q->session_id != 0) {
        r.error_code = KK_ERR_FETCH_SESSION_ID_NOT_FOUND;
        return ksrv_respond(c, &r);
    }
    /* Read what is there now; with less than min_bytes and time left,
     * listen on the partitions' high watermarks and read once more (what
     * arrived between the read and the listening), then park. */
    size_t budget = q->max_bytes > 0 && (uint32_t)q->max_bytes < FETCH_MAX_BYTES ? (size_t)q->max_bytes
                                                                                : FETCH_MAX_BYTES;
    size_t minb = q->min_bytes > 0 ? (size_t)q->min_bytes : 0;
    for (int pass = 0;; pass++) {
        fetch_release(st);
        size_t got = 0;
        bool any = false, error = false;
        int k = 0;
        for (int i = 0; i < q->topics.n; i++) {
            const kk_fetch_req_topic *qt = &q->topics.v[i];
            for (int j = 0; j < qt->partitions.n; j++, k++) {
                fetch_part *fp = &st->fp[k];
                const kk_fetch_req_partition *qp = &qt->partitions.v[j];
                if (!fp->p) {
                    error = true;
                    continue;
                }
                /* A replica's fetch, on a replicated node: the leader checks
                 * its epoch and takes its offset as what it holds. */
                kpart *lp;
                fp->err = q->replica_id >= 0 && ksrv_replicated(c->srv)
                              ? ksrv_replica_fetch(c, fp->t->name, qp->partition, q->replica_id,
                                                   qp->current_leader_epoch, qp->fetch_offset, &lp)
                              : fetch_epoch_check(fp->p, qp->current_leader_epoch);
                if (fp->err) {
                    error = true;
                    continue;
                }
                size_t left = got < budget ? budget - got : 0;
                if (any && left == 0)
                    continue;
                size_t pmax = qp->partition_max_bytes > 0 ? (size_t)qp->partition_max_bytes : 1;
                if (any && pmax > left)
                    pmax = left;
                int rc = q->replica_id >= 0 ? kpart_read_log(fp->p, qp->fetch_offset, pmax, &fp->v)
                                            : kpart_read(fp->p, qp->fetch_offset, pmax, &fp->v);
                if (rc < 0) {
                    fp->err = rc == KLOG_EOFFSET ? KK_ERR_OFFSET_OUT_OF_RANGE
                                                 : kk_err_from_klog(rc, KK_CTX_PARTITION);
                    error = true;
                    continue;
                }
                if (fp->v.len == 0)
                    continue;
                if (any && fp->v.len > left) {
                    /* Only the first partition with data may go over the
                     * limits (KIP-74); this one waits for the next fetch. */
                    ks_view_release(&fp->v);
                    continue;
                }
                any = true;
                got += fp->v.len;
            }
        }
        if (error || got >= minb || c->expired || c->deadline <= now_ns())
            break;
        if (!st->watching) {
            for (int i = 0; i < st->n; i++)
                if (st->fp[i].p)
                    watch_start_ev(&st->fp[i].w, st->fp[i].p, c,
                                   q->replica_id >= 0 ? KPART_EV_APPEND | KPART_EV_HW : KPART_EV_HW);
            st->watching = true;
            continue;
        }
        fetch_release(st);
        return KSRV_PARK;
    }
    /* Answer with what there is. */
    kk_fetch_resp_topic *ts = ksrv_alloc(c, ((size_t)q->topics.n + 1) * sizeof *ts);
    if (!ts)
        return -ENOMEM;
    size_t batches = 0;
    int k = 0;
    for (int i = 0; i < q->topics.n; i++) {
        const kk_fetch_req_topic *qt = &q->topics.v[i];
        int np = qt->partitions.n;
        kk_fetch_resp_partition *ps = ksrv_alloc(c, ((size_t)np + 1) * sizeof *ps);
        if (!ps)
            return -ENOMEM;
        for (int j = 0; j < np; j++, k++) {
            fetch_part *fp = &st->fp[k];
            kk_fetch_resp_partition *rp = &ps[j];
            rp->partition_index = qt->partitions.v[j].partition;
            rp->error_code = fp->err;
            rp->high_watermark = fp->p ? kpart_high_watermark(fp->p) : -1;
            rp->last_stable_offset = rp->high_watermark;
            rp->log_start_offset = fp->p ? kpart_start_offset(fp->p) : -1;
            rp->aborted_transactions.v = NULL;
            rp->aborted_transactions.n = -1;
            rp->preferred_read_replica = -1;
            rp->records.p = (const uint8_t *)"";
            rp->records.len = 0;
            if (fp->err == KK_ERR_NONE && fp->v.len > 0 && batches < FETCH_MAX_BATCHES) {
                int rc = fetch_records(c, &fp->v, &rp->records, &batches);
                if (rc < 0) {
                    ksrv_log(c->srv, "%s-%d: serving offset %lld: %s", qt->topic.p, rp->partition_index,
                             (long long)qt->partitions.v[j].fetch_offset, klog_strerror(rc));
                    rp->error_code = rc == KLOG_ECORRUPT ? KK_ERR_CORRUPT_MESSAGE : KK_ERR_KAFKA_STORAGE_ERROR;
                    rp->records.p = (const uint8_t *)"";
                    rp->records.len = 0;
                    rp->records.iovcnt = 0;
                }
            }
        }
        ts[i] = (kk_fetch_resp_topic){ qt->topic, { ps, np } };
    }
    r.responses.v = ts;
    r.responses.n = q->topics.n;
    for (int i = 0; i < st->n; i++)
        watch_stop(&st->fp[i].w);
    return ksrv_respond(c, &r);
}

/* ---- ListOffsets ------------------------------------------------------------- */

/* The timestamp of the record at offset (for ListOffsets by time). */
static int64_t timestamp_at(ksrv_call *c, kpart *p, int64_t offset)
{
    ks_view v;
    if (kpart_read(p, offset, 1, &v) < 0 || v.len == 0)
        return -1;
    int64_t ts = -1;
    kf_batch_info bi;
    ssize_t sz = kf_batch_parse(v.data, v.len, &bi);
    const uint8_t *recs;
    size_t rl;
    if (sz > 0 && kf_batch_records(v.data, (size_t)sz, ksrv_codec(c), &recs, &rl) == 0) {
        kf_iter it;
        kf_record_view rv;
        kf_iter_init(&it, &bi, recs, rl);
        while (kf_iter_next(&it, &rv) == 1)
            if (rv.offset >= offset) {
                ts = rv.timestamp;
                break;
            }
    }
    ks_view_release(&v);
    return ts;
}

int ksrv_list_offsets(ksrv_call *c)
{
    const kk_list_offsets_req *q = &c->req.body.list_offsets;
    kk_list_offsets_resp r = { 0 };
    kk_list_offsets_resp_topic *ts = ksrv_alloc(c, ((size_t)q->topics.n + 1) * sizeof *ts);
    if (!ts)
        return -ENOMEM;
    for (int i = 0; i < q->topics.n; i++) {
        const kk_list_offsets_req_topic *qt = &q->topics.v[i];
        int np = qt->partitions.n;
        kk_list_offsets_resp_partition *ps = ksrv_alloc(c, ((size_t)np + 1) * sizeof *ps);
        if (!ps)
            return -ENOMEM;
        int16_t terr;
        kt_topic *t = topic_for(c, &qt->name, KACL_OP_DESCRIBE, &terr);
        for (int j = 0; j < np; j++) {
            const kk_list_offsets_req_partition *qp = &qt->partitions.v[j];
            kk_list_offsets_resp_partition *rp = &ps[j];
            rp->partition_index = qp->partition_index;
            rp->timestamp = -1;
            rp->offset = -1;
            rp->leader_epoch = -1;
            kpart *p = part_of(t, qp->partition_index);
            if (!p) {
                rp->error_code = t ? KK_ERR_UNKNOWN_TOPIC_OR_PARTITION : terr;
                continue;
            }
            if ((rp->error_code = fetch_epoch_check(p, qp->current_leader_epoch)) != KK_ERR_NONE)
                continue;
            int64_t hw = kpart_high_watermark(p);
            if (qp->timestamp == -1) {
                rp->offset = hw;
            } else if (qp->timestamp == -2) {
                rp->offset = kpart_start_offset(p);
            } else if (qp->timestamp < 0) {
                rp->error_code = KK_ERR_INVALID_REQUEST;
                continue;
            } else {
                int64_t off;
                int rc = kpart_offset_for_time(p, qp->timestamp, &off);
                if (rc < 0) {
                    rp->error_code = kk_err_from_klog(rc, KK_CTX_PARTITION);
                    continue;
                }
                if (off < hw) {
                    rp->offset = off;
                    rp->timestamp = timestamp_at(c, p, off);
                }
            }
            if (rp->offset >= 0) {
                int32_t e = kpart_epoch_for_offset(p, rp->offset > 0 ? rp->offset - 1 : 0);
                rp->leader_epoch = e >= 0 ? e : kpart_leader_epoch(p);
            }
        }
        if (t)
            klog__topic_put(t);
        ts[i] = (kk_list_offsets_resp_topic){ qt->name, { ps, np } };
    }
    r.topics.v = ts;
    r.topics.n = q->topics.n;
    return ksrv_respond(c, &r);
}

/* ---- DeleteRecords --------------------------------------------------------- */

int ksrv_delete_records(ksrv_call *c)
{
    const kk_delete_records_req *q = &c->req.body.delete_records;
    kk_delete_records_resp r = { 0 };
    kk_delete_records_resp_topic *ts = ksrv_alloc(c, ((size_t)q->topics.n + 1) * sizeof *ts);
    if (!ts)
        return -ENOMEM;
    for (int i = 0; i < q->topics.n; i++) {
        const kk_delete_records_req_topic *qt = &q->topics.v[i];
        int np = qt->partitions.n;
        kk_delete_records_resp_partition *ps = ksrv_alloc(c, ((size_t)np + 1) * sizeof *ps);
        if (!ps)
            return -ENOMEM;
        int16_t terr;
        kt_topic *t = topic_for(c, &qt->name, KACL_OP_DELETE, &terr);
        for (int j = 0; j < np; j++) {
            const kk_delete_records_req_partition *qp = &qt->partitions.v[j];
            kk_delete_records_resp_partition *rp = &ps[j];
            rp->partition_index = qp->partition_index;
            rp->low_watermark = -1;
            kpart *p = part_of(t, qp->partition_index);
            if (!p) {
                rp->error_code = t ? KK_ERR_UNKNOWN_TOPIC_OR_PARTITION : terr;
                continue;
            }
            int64_t start;
            int rc = kpart_delete_records(p, qp->offset, &start);
            if (rc < 0) {
                rp->error_code = rc == KLOG_EOFFSET ? KK_ERR_OFFSET_OUT_OF_RANGE
                                                    : kk_err_from_klog(rc, KK_CTX_PARTITION);
                continue;
            }
            rp->low_watermark = start;
        }
        if (t)
            klog__topic_put(t);
        ts[i] = (kk_delete_records_resp_topic){ qt->name, { ps, np } };
    }
    r.topics.v = ts;
    r.topics.n = q->topics.n;
    return ksrv_respond(c, &r);
}

/* ---- InitProducerId -------------------------------------------------------- */

int ksrv_init_producer_id(ksrv_call *c)
{
    const kk_init_producer_id_req *q = &c->req.body.init_producer_id;
    kk_init_producer_id_resp r = { .producer_id = -1, .producer_epoch = -1 };
    if (q->transactional_id.p) {
        ksrv_log(c->srv, "%s: InitProducerId for transactional id '%s': transactions are not supported",
                 ksrv_conn_peer(c->conn), q->transactional_id.p);
        r.error_code = KK_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
        return ksrv_respond(c, &r);
    }
    if (!ksrv_allowed_idempotent(c)) {
        r.error_code = KK_ERR_CLUSTER_AUTHORIZATION_FAILED;
        return ksrv_respond(c, &r);
    }
    /* An idempotent producer's id: random 63 bits, as klog's own producers
     * take theirs, so no allocation state has to survive a restart (a
     * collision needs about 3e9 producers for a one-in-a-billion chance). */
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, 0) != sizeof id)
        id = klog__now_ns() ^ (uint64_t)(uintptr_t)c;
    r.producer_id = (int64_t)(id & 0x7fffffffffffffffull);
    r.producer_epoch = 0;
    return ksrv_respond(c, &r);
}
