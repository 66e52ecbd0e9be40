/*
 * bench/compare/be_nats.c - NATS JetStream through libnats, on the
 * nats-server run.sh starts (-js -sd DIR on 127.0.0.1).  One stream per
 * store, file storage, one subject, one replica, default limits.  A record
 * is one message whose payload is the envelope (key length, key, value):
 * JetStream messages have no key field, and a subject per key would cost
 * the server more.  Publishing is js_PublishAsync (at most MAX_PENDING
 * unacknowledged); a produce run ends when every publish is acknowledged
 * (js_PublishAsyncComplete); in durable mode every batch is flushed to the
 * socket (natsConnection_Flush: measured faster here than waiting for the
 * client's flusher or sending every publish at once) and waits for its
 * acknowledgements; for latency, publishes are sent at once (SendAsap).
 * nats-server 2.9 has no per-message sync option (sync_interval arrived in
 * 2.10): its acknowledgement means "written to the file store", which
 * syncs every two minutes - so its durable rows are not durable in klog's
 * sense, and the tables say so.  Reading: an ordered
 * push consumer (AckNone, flow control: what the NATS clients use to replay
 * a stream; measured 2x faster here than a pull consumer fetching 1000 or
 * 10000 at a time); the tail reader is an ephemeral push consumer, AckNone.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "backend.h"

#define MAX_PENDING 4096

struct bc_store {
    natsConnection *nc;
    jsCtx *js;
    char stream[32], subj[32];
    bool durable;
    uint8_t *buf;
    _Atomic int async_errors;
};

struct bc_reader {
    natsSubscription *sub;
};

static int fail(const char *what, natsStatus s, jsErrCode je)
{
    fprintf(stderr, "nats: %s: %s", what, natsStatus_GetText(s));
    if (je)
        fprintf(stderr, " (JetStream error %d)", (int)je);
    const char *last = nats_GetLastError(NULL);
    fprintf(stderr, "%s%s\n", last && *last ? ": " : "", last ? last : "");
    return -1;
}

static const char *n_check(const bc_env *env)
{
    return env->nats_url ? NULL : "no nats-server address (--nats URL)";
}

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    bc_store *s = closure;
    if (atomic_fetch_add(&s->async_errors, 1) == 0)
        fprintf(stderr, "nats: publish failed: %s (%s)\n", natsStatus_GetText(pae->Err),
                pae->ErrText ? pae->ErrText : "");
}

static void n_close(bc_store *s)
{
    if (!s)
        return;
    if (s->js) {
        js_DeleteStream(s->js, s->stream, NULL, NULL);
        jsCtx_Destroy(s->js);
    }
    natsConnection_Destroy(s->nc);
    free(s->buf);
    free(s);
}

static int n_open(bc_store **out, const bc_opts *o)
{
    bc_store *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    snprintf(s->stream, sizeof s->stream, "bc%u", o->seq);
    snprintf(s->subj, sizeof s->subj, "bc%u.log", o->seq);
    s->durable = o->durable;
    s->buf = bc_alloc_prefaulted(o->max_batch_bytes + 4096);
    /* Latency: send every publish at once rather than through the client's
     * buffering flusher thread (which holds data up to a millisecond), as
     * NATS advises for request/reply-like use. */
    natsOptions *no = NULL;
    natsStatus st = natsOptions_Create(&no);
    if (st == NATS_OK)
        st = natsOptions_SetURL(no, o->env->nats_url);
    if (st == NATS_OK)
        st = natsOptions_SetSendAsap(no, o->latency);
    if (st == NATS_OK)
        st = natsConnection_Connect(&s->nc, no);
    natsOptions_Destroy(no);
    if (st != NATS_OK) {
        n_close(s);
        return fail("connect", st, 0);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = MAX_PENDING;
    jo.PublishAsync.StallWait = 60000;
    jo.PublishAsync.ErrHandler = on_pub_error;
    jo.PublishAsync.ErrHandlerClosure = s;
    if ((st = natsConnection_JetStream(&s->js, s->nc, &jo)) != NATS_OK) {
        n_close(s);
        return fail("JetStream context", st, 0);
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[1] = { s->subj };
    cfg.Name = s->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = 1;
    jsErrCode je = 0;
    if ((st = js_AddStream(NULL, s->js, &cfg, NULL, &je)) != NATS_OK) {
        jsCtx_Destroy(s->js);
        s->js = NULL;
        n_close(s);
        return fail("js_AddStream", st, je);
    }
    *out = s;
    return 0;
}

static int n_finish(bc_store *s)
{
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 300000;
    natsStatus st = js_PublishAsyncComplete(s->js, &po);
    if (st != NATS_OK)
        return fail("js_PublishAsyncComplete", st, 0);
    return atomic_load(&s->async_errors) ? -1 : 0;
}

static int n_produce(bc_store *s, const bc_rec *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = bc_envelope(s->buf, &recs[i]);
        natsStatus st = js_PublishAsync(s->js, s->subj, s->buf, (int)len, NULL);
        if (st != NATS_OK)
            return fail("js_PublishAsync", st, 0);
    }
    if (s->durable) {
        natsStatus st = natsConnection_Flush(s->nc);
        if (st != NATS_OK)
            return fail("flush", st, 0);
    }
    return s->durable ? n_finish(s) : 0;
}

static int64_t n_stored_bytes(bc_store *s)
{
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    natsStatus st = js_GetStreamInfo(&si, s->js, s->stream, NULL, &je);
    if (st != NATS_OK)
        return fail("js_GetStreamInfo", st, je);
    int64_t b = (int64_t)si->State.Bytes;
    jsStreamInfo_Destroy(si);
    return b;
}

static int64_t n_consume_all(bc_store *s, bc_msg_fn fn, void *arg)
{
    jsStreamInfo *si = NULL;
    jsErrCode je = 0;
    natsStatus st = js_GetStreamInfo(&si, s->js, s->stream, NULL, &je);
    if (st != NATS_OK)
        return fail("js_GetStreamInfo", st, je);
    int64_t want = (int64_t)si->State.Msgs, got = 0;
    jsStreamInfo_Destroy(si);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = s->stream;
    natsSubscription *sub = NULL;
    so.Ordered = true;
    if ((st = js_SubscribeSync(&sub, s->js, s->subj, NULL, &so, &je)) != NATS_OK)
        return fail("js_SubscribeSync (ordered)", st, je);
    while (got < want) {
        natsMsg *m = NULL;
        if ((st = natsSubscription_NextMsg(&m, sub, 5000)) != NATS_OK) {
            natsSubscription_Unsubscribe(sub);
            natsSubscription_Destroy(sub);
            return fail("natsSubscription_NextMsg", st, 0);
        }
        if (bc_unenvelope(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), fn, arg)) {
            natsMsg_Destroy(m);
            natsSubscription_Destroy(sub);
            fprintf(stderr, "nats: malformed record\n");
            return -1;
        }
        natsMsg_Destroy(m);
        got++;
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return got;
}

static int n_reader_open(bc_store *s, bc_reader **out)
{
    bc_reader *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = s->stream;
    so.Config.AckPolicy = js_AckNone;
    so.Config.DeliverPolicy = js_DeliverAll;
    jsErrCode je = 0;
    natsStatus st = js_SubscribeSync(&r->sub, s->js, s->subj, NULL, &so, &je);
    if (st != NATS_OK) {
        free(r);
        return fail("js_SubscribeSync", st, je);
    }
    *out = r;
    return 0;
}

static int n_reader_wait(bc_reader *r, int timeout_ms, bc_msg_fn fn, void *arg)
{
    natsMsg *m = NULL;
    natsStatus st = natsSubscription_NextMsg(&m, r->sub, timeout_ms);
    if (st == NATS_TIMEOUT)
        return 0;
    if (st != NATS_OK)
        return fail("natsSubscription_NextMsg", st, 0);
    int rc = bc_unenvelope(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), fn, arg);
    natsMsg_Destroy(m);
    return rc ? -1 : 1;
}

static void n_reader_close(bc_reader *r)
{
    if (r) {
        natsSubscription_Unsubscribe(r->sub);
        natsSubscription_Destroy(r->sub);
        free(r);
    }
}

const bc_backend bc_nats = {
    .name = "nats",
    .server = true,
    .check = n_check,
    .open = n_open,
    .produce = n_produce,
    .finish = n_finish,
    .stored_bytes = n_stored_bytes,
    .consume_all = n_consume_all,
    .reader_open = n_reader_open,
    .reader_wait = n_reader_wait,
    .reader_close = n_reader_close,
    .close = n_close,
    .durable_note = "acked when in the file store; nats-server 2.9 has no per-message fsync",
};
