/*
 * lib/mirror/to_kafka.c - klog topics into a Kafka cluster.
 *
 * A klog consumer in group mirror.group.id (auto commit off, reset to the
 * earliest offset so that a position the budget deleted moves to the log's
 * start, where the jump is noticed and counted) hands every record to
 * librdkafka's idempotent producer.  Delivery reports acknowledge ring
 * entries (internal.h); commits go up to each partition's commit point.
 *
 * Holding records back.  A record that cannot be handed over now (the
 * producer's queue is full, the destination topic is not resolved yet
 * because the link is down) is not kept in memory: the partition is seeked
 * back to it and read again later, from the disk.  While held back, the
 * mirror reads again at most every second, which keeps its group
 * membership alive, and otherwise serves librdkafka.
 *
 * Rewinds.  A delivery that fails for a reason that is not the record's
 * own (a fatal idempotence error, a timeout the user configured, a purge)
 * leaves a hole that librdkafka will not fill.  The mirror then purges the
 * producer, destroys it, makes a new one (a new producer id), and seeks
 * every partition back to its commit point: what follows is sent again,
 * in order; duplicates are counted in "resent".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const to_defaults[] = {
    "client.id", "klog-mirror",
    "enable.idempotence", "true",
    "acks", "all",
    "message.timeout.ms", "0",          /* never time a record out: the link may be down for days */
    "partitioner", "murmur2_random",    /* the Java client's key hash */
    "queue.buffering.max.kbytes", "65536",
    "linger.ms", "5",
    NULL,
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque);

static int producer_new(klog_mirror *m, char *errbuf, size_t errsize)
{
    /* With mirror.create.topics the mirror creates missing topics with the
     * right partition count itself: metadata requests must not have the
     * cluster create them first with its defaults. */
    const char *defaults[sizeof to_defaults / sizeof to_defaults[0] + 2];
    size_t n = 0;
    for (; to_defaults[n]; n++)
        defaults[n] = to_defaults[n];
    if (m->create_topics) {
        defaults[n++] = "allow.auto.create.topics";
        defaults[n++] = "false";
    }
    defaults[n] = NULL;
    rd_kafka_conf_t *conf = mir_kafka_conf(m, defaults, errbuf, errsize);
    if (!conf)
        return KLOG_ECONF;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char kerr[512] = "";
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (!m->rk) {
        rd_kafka_conf_destroy(conf);
        if (errbuf && errsize)
            snprintf(errbuf, errsize, "librdkafka: %s", kerr);
        return KLOG_ECONF;
    }
    mir_kafka_started(m);
    return 0;
}

static void producer_free(klog_mirror *m)
{
    for (size_t i = 0; i < m->ntp; i++)
        if (m->tp[i]->rkt) {
            rd_kafka_topic_destroy(m->tp[i]->rkt);
            m->tp[i]->rkt = NULL;
        }
    if (m->rk) {
        rd_kafka_destroy(m->rk);
        m->rk = NULL;
    }
}

/* The partition count and start offset of a klog topic's partition. */
static int src_describe(klog_mirror *m, const char *topic, int32_t partition, int64_t *start)
{
    int n = klog_topic_describe(m->k, topic, NULL, 0, NULL, 0);
    if (n <= 0 || !start)
        return n;
    klog_partition_info *pi = calloc((size_t)n, sizeof *pi);
    if (!pi)
        return -ENOMEM;
    pi[0].struct_size = sizeof *pi;
    int got = klog_topic_describe(m->k, topic, pi, (size_t)n, NULL, 0);
    *start = got > partition && partition >= 0 ? pi[partition].start_offset : 0;
    free(pi);
    return got;
}

/* A jump from t->expected to offset: what lies below the log's start was
 * deleted before the mirror read it. */
static void note_jump(klog_mirror *m, mir_track *t, int64_t offset)
{
    int64_t start = 0;
    if (src_describe(m, t->topic, t->partition, &start) < 0)
        start = offset;
    mir_gap(m, t, offset, start, "retention or the disk budget");
    t->expected = offset;
}

/* ---- destination topics --------------------------------------------------- */

static void retry_later(mir_topic *mt, uint64_t now)
{
    mt->next_try_ms = now + mt->backoff_ms;
    mt->backoff_ms = mt->backoff_ms < 2500 ? mt->backoff_ms * 2 : 5000;
}

/* CreateTopics with the source's partition count.  Returns 1 done (created,
 * existed, or the cluster cannot: fall back to its auto-create), 0 retry
 * later, < 0 the mirror failed. */
static int create_topic(klog_mirror *m, mir_topic *mt, int nparts)
{
    char kerr[512] = "";
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(mt->dst, nparts, m->replication_factor, kerr, sizeof kerr);
    if (!nt)
        return mir_fail(m, KLOG_ECONF, "cannot create Kafka topic \"%s\": %s", mt->dst, kerr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(m->rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(m->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(opt, 5000, kerr, sizeof kerr);
    rd_kafka_AdminOptions_set_operation_timeout(opt, 5000, kerr, sizeof kerr);
    rd_kafka_CreateTopics(m->rk, &nt, 1, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 12000);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    const char *why = NULL;
    if (ev) {
        e = rd_kafka_event_error(ev);
        why = rd_kafka_event_error_string(ev);
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t cnt = 0;
        const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
        if (!e && cnt == 1) {
            e = rd_kafka_topic_result_error(tr[0]);
            why = rd_kafka_topic_result_error_string(tr[0]);
        }
    }
    snprintf(kerr, sizeof kerr, "%s", why && *why ? why : rd_kafka_err2str(e));
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        mir_log(m, "created Kafka topic \"%s\" with %d partition%s", mt->dst, nparts, nparts == 1 ? "" : "s");
        return 1;
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS:
        return 1;
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
        mir_log(m, "cannot create Kafka topic \"%s\" (%s): relying on the cluster's auto-create", mt->dst, kerr);
        return 1;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NOT_CONTROLLER:
        mir_log(m, "creating Kafka topic \"%s\": %s (%s); retrying", mt->dst, kerr, rd_kafka_err2name(e));
        return 0;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        return mir_fail(m, -EACCES, "not allowed to create Kafka topic \"%s\": %s", mt->dst, kerr);
    default:
        return mir_fail(m, -EREMOTEIO, "cannot create Kafka topic \"%s\" with %d partitions: %s", mt->dst, nparts,
                        kerr);
    }
}

/* Make mt ready: its partition count on Kafka, creating it if asked.
 * Returns true when records may go. */
static bool resolve(klog_mirror *m, mir_topic *mt)
{
    if (mt->ready)
        return true;
    if (m->state != MST_RUNNING || !mir_probe(m, 500))
        return false;
    uint64_t now = mir_now_ms();
    if (now < mt->next_try_ms)
        return false;
    int nparts = src_describe(m, mt->src, -1, NULL);
    if (nparts <= 0) {
        retry_later(mt, now);
        return false;
    }
    if (!mt->rkt && !(mt->rkt = rd_kafka_topic_new(m->rk, mt->dst, NULL))) {
        mir_fail(m, KLOG_EBADNAME, "Kafka topic \"%s\": %s", mt->dst, rd_kafka_err2str(rd_kafka_last_error()));
        return false;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(m->rk, 0, mt->rkt, &md, 5000);
    if (e || !md || md->topic_cnt != 1) {
        if (md)
            rd_kafka_metadata_destroy(md);
        retry_later(mt, now);
        return false;
    }
    const rd_kafka_metadata_topic_t *tm = &md->topics[0];
    rd_kafka_resp_err_t te = tm->err;
    int dst_parts = tm->partition_cnt;
    rd_kafka_metadata_destroy(md);
    mir_link_up(m);
    if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || (te == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE && !dst_parts) ||
        (!te && !dst_parts)) {
        /* Not there (yet: an auto-create or a create takes a moment to show). */
        if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && m->create_topics && !mt->create_tried) {
            int rc = create_topic(m, mt, nparts);
            if (rc > 0)
                mt->create_tried = true;
            mt->next_try_ms = mir_now_ms() + (rc > 0 ? 100 : mt->backoff_ms);
            return false;
        }
        if (te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && ++mt->unknown_tries >= (m->create_topics ? 20 : 3)) {
            mir_fail(m, KLOG_EUNKNOWN_TOPIC,
                     "Kafka topic \"%s\" (for klog topic \"%s\") does not exist and the cluster does not create "
                     "topics on first use: create it with %d partition%s, or let the mirror create it "
                     "(mirror.create.topics=true; klog mirror --create-topics)",
                     mt->dst, mt->src, nparts, nparts == 1 ? "" : "s");
            return false;
        }
        mt->next_try_ms = now + 200;
        return false;
    }
    if (te == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        mir_fail(m, -EACCES, "not allowed to write to Kafka topic \"%s\": %s", mt->dst, rd_kafka_err2str(te));
        return false;
    }
    if (te) {
        mir_log(m, "Kafka topic \"%s\": %s; retrying", mt->dst, rd_kafka_err2str(te));
        retry_later(mt, now);
        return false;
    }
    mt->dst_partitions = dst_parts;
    mt->src_partitions = nparts;
    mt->ready = true;
    mt->unknown_tries = 0;
    mt->backoff_ms = 100;
    if (m->part_hash)
        mir_log(m, "%s -> Kafka topic \"%s\" (%d partitions): partition by key hash (mirror.partitioning=hash)",
                mt->src, mt->dst, dst_parts);
    else if (dst_parts >= nparts)
        mir_log(m, "%s -> Kafka topic \"%s\" (%d partitions): same partition numbers", mt->src, mt->dst, dst_parts);
    else
        mir_log(m, "%s -> Kafka topic \"%s\": it has %d partition%s, the klog topic %d: partition by key hash "
                   "(per-key order kept, not per-partition order)",
                mt->src, mt->dst, dst_parts, dst_parts == 1 ? "" : "s", nparts);
    return true;
}

/* ---- sending -------------------------------------------------------------- */

enum { SENT = 0, HOLD = 1 };

static int send_one(klog_mirror *m, mir_track *t, const klog_message *msg)
{
    mir_topic *mt = t->mt;
    rd_kafka_headers_t *h = NULL;
    if (msg->header_count || m->source_header) {
        h = rd_kafka_headers_new(msg->header_count + 1);
        for (size_t i = 0; i < msg->header_count; i++) {
            const char *hk;
            size_t hklen, hvlen;
            const void *hv;
            if (klog_message_header(msg, i, &hk, &hklen, &hv, &hvlen) < 0)
                continue;
            rd_kafka_header_add(h, hk, (ssize_t)hklen, hv, hv ? (ssize_t)hvlen : 0);
        }
        if (m->source_header) {
            char src[KLOG_TOPIC_NAME_MAX + 48];
            int n = snprintf(src, sizeof src, "%s/%d/%" PRId64, t->topic, t->partition, msg->offset);
            rd_kafka_header_add(h, "klog.src", 8, src, n);
        }
    }
    int64_t sent_max = t->sent_max;
    uint64_t op = mir_track_push(m, t, msg->offset);
    if (!op) {
        if (h)
            rd_kafka_headers_destroy(h);
        m->backpressure = true;
        return HOLD;
    }
    int32_t part = !m->part_hash && mt->dst_partitions >= mt->src_partitions ? msg->partition : RD_KAFKA_PARTITION_UA;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        m->rk, RD_KAFKA_V_RKT(mt->rkt), RD_KAFKA_V_PARTITION(part), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE((void *)msg->value, msg->value_len), RD_KAFKA_V_KEY(msg->key, msg->key_len),
        RD_KAFKA_V_TIMESTAMP(msg->timestamp), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)op),
        RD_KAFKA_V_END);
    if (!e) {
        m->st.read++;
        return SENT;
    }
    /* Not queued: take the ring entry back. */
    t->tail--;
    t->sent_max = sent_max;
    m->st.in_flight--;
    if (h)
        rd_kafka_headers_destroy(h);
    switch (e) {
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        m->backpressure = true;
        return HOLD;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        mir_fail(m, KLOG_ETOOBIG,
                 "%s[%d] offset %" PRId64 ": the record (%zu bytes of key and value, %zu headers) is over the "
                 "Kafka producer's message.max.bytes: raise kafka.message.max.bytes (and the topic's "
                 "max.message.bytes on the cluster); the committed offset stays below it",
                 t->topic, t->partition, msg->offset, msg->key_len + msg->value_len, msg->header_count);
        return HOLD;
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        mt->ready = false; /* its metadata changed: look again */
        return HOLD;
    default:
        mir_fail(m, mir_kafka_err_code(e), "%s[%d] offset %" PRId64 ": librdkafka refused the record: %s", t->topic,
                 t->partition, msg->offset, rd_kafka_err2str(e));
        return HOLD;
    }
}

/* A record the cluster refused for good.  Kafka refuses whole batches, so
 * the records of one come one after the other: the message names the
 * partition's refused range and its largest record, which is the culprit
 * when the reason is the size. */
static void refused(klog_mirror *m, mir_track *t, int64_t off, const rd_kafka_message_t *rkm)
{
    size_t size = rkm->key_len + rkm->len;
    mir_refused *r = &m->refused;
    if (r->count && (r->t != t || r->err != rkm->err))
        return; /* the first refusal is the story; the mirror stops anyway */
    if (!r->count) {
        r->t = t;
        r->err = rkm->err;
        r->first = off;
        r->dst_partition = rkm->partition;
        snprintf(r->dst, sizeof r->dst, "%s", rd_kafka_topic_name(rkm->rkt));
    }
    r->count++;
    r->last = off > r->last ? off : r->last;
    if (r->count == 1 || size > r->max_size) {
        r->max_size = size;
        r->max_off = off;
    }
    int code = mir_kafka_err_code(rkm->err);
    if (m->state == MST_RUNNING)
        mir_fail(m, code, "-");
    if (m->err != code)
        return;
    if (r->count == 1)
        snprintf(m->errmsg, sizeof m->errmsg,
                 "%s[%d] offset %" PRId64 " (%zu bytes) -> Kafka topic \"%s\" partition %d: the cluster refused the "
                 "record: %s; the committed offset stays below it",
                 t->topic, t->partition, off, size, r->dst, r->dst_partition, rd_kafka_err2str(r->err));
    else
        snprintf(m->errmsg, sizeof m->errmsg,
                 "%s[%d] offsets %" PRId64 "..%" PRId64 " (%" PRIu64 " records) -> Kafka topic \"%s\" partition %d: "
                 "the cluster refused them: %s; the largest is offset %" PRId64 " (%zu bytes); the committed offset "
                 "stays below them",
                 t->topic, t->partition, r->first, r->last, r->count, r->dst, r->dst_partition,
                 rd_kafka_err2str(r->err), r->max_off, r->max_size);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    klog_mirror *m = opaque;
    uint64_t seq;
    mir_track *t = mir_track_of(m, (uint64_t)(uintptr_t)rkm->_private, &seq);
    if (!t)
        return; /* an older generation: revoked or rewound since */
    if (!rkm->err) {
        m->st.forwarded++;
        m->st.forwarded_bytes += rkm->key_len + rkm->len;
        mir_track_ack(m, t, seq);
        if (!m->link_up)
            mir_link_up(m);
        return;
    }
    int64_t off = t->off[seq & (t->cap - 1)];
    if (rkm->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || rkm->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        return; /* ours; the generation moves right after */
    if (mir_kafka_err_permanent(rkm->err)) {
        refused(m, t, off, rkm);
        return;
    }
    if (!m->need_rewind) {
        m->need_rewind = true;
        snprintf(m->rewind_reason, sizeof m->rewind_reason, "%s[%d] offset %" PRId64 ": delivery failed: %s", t->topic,
                 t->partition, off, rd_kafka_err2str(rkm->err));
    }
}

/* ---- commits -------------------------------------------------------------- */

/* Commit the commit point of every live track (only == NULL) or of the
 * tracks whose slot flag in only[] is set. */
static int commit(klog_mirror *m, const bool *only)
{
    klog_partition_list *l = NULL;
    int rc = klog_partition_list_new(&l);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < m->ntr; i++) {
        mir_track *t = m->tr[i];
        if (!t || !t->live || (only && !only[i]))
            continue;
        /* Only forward: a partition with nothing committed starts with
         * `committed` at its first position, so that a mirror that
         * forwarded nothing leaves the group's offsets as they were. */
        int64_t cp = mir_track_commit_point(t);
        if (cp > t->committed && (rc = klog_partition_list_add(l, t->topic, t->partition, cp, NULL)) < 0)
            break;
    }
    size_t n = klog_partition_list_count(l);
    if (rc == 0 && n > 0) {
        rc = klog_consumer_commit(m->c, l, 0);
        if (rc == 0) {
            m->st.commits++;
            for (size_t i = 0; i < n; i++) {
                const char *topic;
                int32_t p;
                int64_t off;
                klog_partition_list_get(l, i, &topic, &p, &off, NULL, NULL);
                mir_track *t = mir_track_find(m, topic, p);
                if (t)
                    t->committed = off;
            }
        } else {
            m->st.commit_errors++;
            if (rc != KLOG_EREBALANCE && rc != KLOG_EFENCED && rc != KLOG_EUNKNOWN_MEMBER)
                mir_log(m, "committing offsets: %s (retried at the next commit)", klog_strerror(rc));
        }
    }
    klog_partition_list_free(l);
    return rc;
}

/* ---- rewinds -------------------------------------------------------------- */

/* Purge and recreate the producer; every partition goes back to its
 * commit point.  Returns 0 or the failure. */
static int rewind_all(klog_mirror *m, const char *why)
{
    m->st.rewinds++;
    uint64_t resend = 0;
    for (size_t i = 0; i < m->ntr; i++) {
        mir_track *t = m->tr[i];
        if (!t || !t->live)
            continue;
        int64_t cp = mir_track_commit_point(t);
        if (cp >= 0 && t->sent_max > cp)
            resend += (uint64_t)(t->sent_max - cp);
    }
    mir_log(m, "rewinding: %s; a new producer sends again the %" PRIu64 " record%s from the first unacknowledged one",
            why, resend, resend == 1 ? "" : "s");
    /* Bump every generation first: the purge's reports are then ignored. */
    int64_t *cps = calloc(m->ntr ? m->ntr : 1, sizeof *cps);
    if (!cps)
        return mir_fail(m, -ENOMEM, "out of memory rewinding");
    for (size_t i = 0; i < m->ntr; i++) {
        mir_track *t = m->tr[i];
        if (!t || !t->live)
            continue;
        cps[i] = mir_track_commit_point(t);
        mir_track_reset(m, t);
    }
    rd_kafka_purge(m->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
    rd_kafka_poll(m->rk, 0);
    producer_free(m);
    for (size_t i = 0; i < m->ntp; i++)
        m->tp[i]->ready = false, m->tp[i]->create_tried = true;
    char err[512] = "";
    int rc = producer_new(m, err, sizeof err);
    if (rc < 0) {
        free(cps);
        return mir_fail(m, rc, "recreating the producer: %s", err);
    }
    m->link_up = false; /* the new client proves it */
    m->next_probe_ms = 0;
    for (size_t i = 0; i < m->ntr; i++) {
        mir_track *t = m->tr[i];
        if (!t || !t->live)
            continue;
        if (cps[i] >= 0) {
            t->expected = cps[i];
            t->sent_max = -1;
            klog_consumer_seek(m->c, t->topic, t->partition, cps[i]);
        }
    }
    free(cps);
    m->st.resent += resend;
    m->backpressure = false;
    m->need_rewind = false;
    return 0;
}

/* ---- rebalances ----------------------------------------------------------- */

static void on_rebalance(klog_consumer *c, int event, klog_partition_list *parts, void *opaque)
{
    klog_mirror *m = opaque;
    size_t n = klog_partition_list_count(parts);
    if (event == KLOG_REBALANCE_ASSIGNED) {
        for (size_t i = 0; i < n; i++) {
            const char *topic;
            int32_t p;
            int64_t pos;
            if (klog_partition_list_get(parts, i, &topic, &p, &pos, NULL, NULL) < 0)
                continue;
            mir_track *t = mir_track_add(m, topic, p);
            if (!t) {
                mir_fail(m, -ENOMEM, "%s[%d]: no memory (or over %u partitions)", topic, p, MIR_MAX_SLOTS);
                continue;
            }
            int64_t committed = -1;
            klog_consumer_committed(c, topic, p, &committed, NULL, 0);
            if (klog_consumer_position(c, topic, p, &pos) < 0)
                pos = -1;
            t->committed = committed >= 0 ? committed : pos;
            if (committed >= 0) {
                t->expected = committed;
                if (pos > committed)
                    note_jump(m, t, pos);
                mir_log(m, "%s[%d] -> %s: from offset %" PRId64 " (committed)", topic, p, t->mt->dst,
                        pos >= 0 ? pos : committed);
            } else {
                mir_log(m, "%s[%d] -> %s: from offset %" PRId64 ", the start of the log (nothing committed yet)", topic,
                        p, t->mt->dst, pos);
            }
            t->expected = pos;
        }
        return;
    }
    bool *only = calloc(m->ntr ? m->ntr : 1, sizeof *only);
    bool inflight = false;
    for (size_t i = 0; i < n; i++) {
        const char *topic;
        int32_t p;
        if (klog_partition_list_get(parts, i, &topic, &p, NULL, NULL, NULL) < 0)
            continue;
        mir_track *t = mir_track_find(m, topic, p);
        if (!t)
            continue;
        if (only)
            only[t->slot] = true;
        inflight |= mir_track_inflight(t) > 0;
    }
    if (event == KLOG_REBALANCE_REVOKED && only) {
        /* Let what is in flight land, so that the next owner starts after it;
         * what does not land in time is purged and sent again. */
        if (inflight) {
            rd_kafka_flush(m->rk, (int)m->close_timeout_ms);
            bool left = false;
            for (size_t i = 0; i < m->ntr; i++)
                left |= only[i] && m->tr[i]->live && mir_track_inflight(m->tr[i]) > 0;
            if (left && m->state == MST_RUNNING)
                rewind_all(m, "partitions revoked while records were in flight");
        }
        commit(m, only);
    }
    for (size_t i = 0; i < m->ntr; i++)
        if (only && only[i] && m->tr[i]->live) {
            if (event == KLOG_REBALANCE_LOST)
                mir_log(m, "%s[%d]: lost to another member of the group", m->tr[i]->topic, m->tr[i]->partition);
            mir_track_drop(m, m->tr[i]);
        }
    free(only);
}

/* ---- the driver ----------------------------------------------------------- */

int mir_to_start(klog_mirror *m, char *errbuf, size_t errsize)
{
    int rc = producer_new(m, errbuf, errsize);
    if (rc < 0)
        return rc;
    klog_conf *cc = NULL;
    if ((rc = klog_conf_dup(m->lconf, &cc)) < 0)
        goto fail;
    char kerr[256] = "";
    /* The mirror's correctness rests on these three. */
    if ((rc = klog_conf_set(cc, "group.id", m->group, kerr, sizeof kerr)) < 0 ||
        (rc = klog_conf_set(cc, "enable.auto.commit", "false", kerr, sizeof kerr)) < 0 ||
        (rc = klog_conf_set(cc, "auto.offset.reset", "earliest", kerr, sizeof kerr)) < 0)
        goto fail_conf;
    /* Throughput defaults, unless klog.* said otherwise (lconf_set: the
     * order of klog_mirror_set's `own` list). */
    if ((!m->lconf_set[3] && (rc = klog_conf_set(cc, "max.poll.records", "10000", kerr, sizeof kerr)) < 0) ||
        (!m->lconf_set[4] && (rc = klog_conf_set(cc, "fetch.max.bytes", "4194304", kerr, sizeof kerr)) < 0) ||
        (!m->lconf_set[7] && (rc = klog_conf_set(cc, "client.id", "klog-mirror", kerr, sizeof kerr)) < 0))
        goto fail_conf;
    klog_consumer *c = NULL;
    if ((rc = klog_consumer_new(m->k, cc, &c, kerr, sizeof kerr)) < 0) {
        if (errbuf && errsize)
            snprintf(errbuf, errsize, "klog consumer: %s", kerr[0] ? kerr : klog_strerror(rc));
        goto fail;
    }
    klog_conf_free(cc);
    cc = NULL;
    pthread_mutex_lock(&m->mu); /* klog_mirror_wakeup reads m->c under it */
    m->c = c;
    pthread_mutex_unlock(&m->mu);
    klog_consumer_set_rebalance_cb(m->c, on_rebalance, m);
    if ((rc = klog_consumer_subscribe(m->c, (const char *const *)m->subs, m->nsubs)) < 0) {
        if (errbuf && errsize)
            snprintf(errbuf, errsize, "subscribing to %s: %s", m->topics, klog_strerror(rc));
        goto fail;
    }
    mir_log(m, "forwarding klog topics %s to the Kafka cluster at %s (klog group \"%s\")", m->topics, m->bootstrap,
            m->group);
    return 0;
fail_conf:
    if (errbuf && errsize)
        snprintf(errbuf, errsize, "klog consumer: %s", kerr);
fail:
    klog_conf_free(cc);
    pthread_mutex_lock(&m->mu);
    c = m->c;
    m->c = NULL;
    pthread_mutex_unlock(&m->mu);
    klog_consumer_close(c);
    producer_free(m);
    return rc;
}

/* Hand the polled records over; hold back partitions that cannot go. */
static void process(klog_mirror *m, const klog_message *const *msgs, int n)
{
    int sent = 0;
    for (int i = 0; i < n; i++) {
        const klog_message *msg = msgs[i];
        mir_track *t = mir_track_find(m, msg->topic, msg->partition);
        if (!t || t->hold >= 0)
            continue;
        if (t->expected >= 0 && msg->offset > t->expected)
            note_jump(m, t, msg->offset);
        if (m->state != MST_RUNNING || m->need_rewind || (!t->mt->ready && !resolve(m, t->mt)) ||
            send_one(m, t, msg) == HOLD) {
            t->hold = msg->offset;
            continue;
        }
        t->expected = msg->offset + 1;
        sent++;
    }
    for (size_t i = 0; i < m->ntr; i++) {
        mir_track *t = m->tr[i];
        if (!t || !t->live || t->hold < 0)
            continue;
        klog_consumer_seek(m->c, t->topic, t->partition, t->hold);
        t->expected = t->hold;
        t->hold = -1;
    }
    if (m->backpressure) {
        m->bp_inflight = m->st.in_flight;
        m->read_after_ms = mir_now_ms() + 1000; /* sooner once the queue drains (mir_to_poll) */
    } else if (n > 0 && sent == 0) {
        m->read_after_ms = mir_now_ms() + 200;
    }
}

static void update_lag(klog_mirror *m, uint64_t now)
{
    if (now < m->next_lag_ms)
        return;
    m->next_lag_ms = now + 100;
    int64_t lag = 0;
    for (size_t i = 0; i < m->ntr; i++) {
        mir_track *t = m->tr[i];
        int64_t l, pos;
        if (!t || !t->live)
            continue;
        /* A position past what was read: the consumer fell off the log's
         * head and moved to its start with nothing to return yet. */
        if (t->expected >= 0 && klog_consumer_position(m->c, t->topic, t->partition, &pos) == 0 &&
            pos > t->expected)
            note_jump(m, t, pos);
        if (klog_consumer_lag(m->c, t->topic, t->partition, &l) == 0)
            lag += l + (int64_t)(t->tail - t->head);
    }
    m->st.lag = lag;
}

int mir_to_poll(klog_mirror *m, int timeout_ms)
{
    uint64_t deadline = mir_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        rd_kafka_poll(m->rk, 0);
        if (m->state != MST_RUNNING)
            break;
        char fe[400];
        rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(m->rk, fe, sizeof fe);
        if (fatal && !m->need_rewind) {
            m->need_rewind = true;
            snprintf(m->rewind_reason, sizeof m->rewind_reason, "fatal producer error: %s", fe);
        }
        if (m->need_rewind && rewind_all(m, m->rewind_reason) < 0)
            break;
        uint64_t now = mir_now_ms();
        int64_t left = (int64_t)(deadline - now);
        if (now >= deadline)
            left = 0;
        if (!m->link_up)
            mir_probe(m, left < 500 ? (int)left : 500);
        if (m->state != MST_RUNNING)
            break;
        now = mir_now_ms();
        if (now >= m->next_commit_ms) {
            commit(m, NULL);
            m->next_commit_ms = now + (uint64_t)m->commit_interval_ms;
        }
        if (m->backpressure && m->st.in_flight <= m->bp_inflight - m->bp_inflight / 4) {
            m->backpressure = false; /* a quarter of the queue drained: read again */
            m->read_after_ms = 0;
        }
        int got = 0;
        bool can_read = now >= m->read_after_ms;
        if (can_read) {
            int wait = 0;
            if (m->st.in_flight == 0 && !m->backpressure)
                wait = left < 200 ? (int)left : 200;
            const klog_message *const *msgs;
            got = klog_consumer_poll(m->c, wait, &msgs);
            if (got < 0) {
                mir_fail(m, got, "reading the klog topics: %s", klog_strerror(got));
                break;
            }
            if (m->state != MST_RUNNING)
                break;
            process(m, msgs, got);
        }
        update_lag(m, mir_now_ms());
        now = mir_now_ms();
        if (now >= deadline || atomic_exchange(&m->wake, false))
            break;
        if (!can_read || got == 0) {
            left = (int64_t)(deadline - now);
            int w = m->st.in_flight > 0 || !can_read ? 20 : 0;
            if (w > left)
                w = (int)left;
            if (w > 0)
                rd_kafka_poll(m->rk, w);
        }
        mir_publish(m);
    }
    return 0;
}

int mir_to_stop(klog_mirror *m)
{
    int rc = 0;
    if (m->rk && m->st.in_flight > 0)
        rd_kafka_flush(m->rk, (int)m->close_timeout_ms);
    if (m->c) {
        rc = commit(m, NULL);
        if (rc == KLOG_EREBALANCE || rc == KLOG_EFENCED || rc == KLOG_EUNKNOWN_MEMBER)
            rc = 0; /* the partitions belong to others now: they start from the last commit */
        if (m->st.in_flight > 0)
            mir_log(m, "stopping with %" PRIu64 " record%s not acknowledged by Kafka: the next run sends them again",
                    m->st.in_flight, m->st.in_flight == 1 ? "" : "s");
        /* Leaving the group revokes: nothing is in flight for it to wait on. */
        for (size_t i = 0; i < m->ntr; i++)
            if (m->tr[i] && m->tr[i]->live)
                mir_track_drop(m, m->tr[i]);
        pthread_mutex_lock(&m->mu); /* klog_mirror_wakeup reads m->c under it */
        klog_consumer *c = m->c;
        m->c = NULL;
        pthread_mutex_unlock(&m->mu);
        klog_consumer_close(c);
    }
    producer_free(m);
    m->st.lag = 0;
    return rc;
}
