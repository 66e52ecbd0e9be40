/*
 * lib/mirror/from_kafka.c - Kafka topics into klog.
 *
 * A librdkafka consumer in the Kafka group mirror.group.id (auto commit
 * off) reads the Kafka topics; every record goes to klog through a klog
 * producer whose delivery reports are queued (delivery.report.queue) and
 * polled on the driving thread; Kafka offsets are committed up to each
 * partition's commit point (internal.h), so a crash re-reads what klog had
 * not acknowledged.  A jump in a partition's offsets that lands below the
 * partition's low watermark is Kafka's retention having deleted records the
 * mirror never read: counted as a gap.  Jumps above it are compaction or
 * transaction markers, not losses.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const from_defaults[] = {
    "client.id", "klog-mirror",
    "enable.auto.commit", "false",
    "enable.auto.offset.store", "false",
    "auto.offset.reset", "earliest",
    "enable.partition.eof", "false",
    NULL,
};

#define DELIVERY_BATCH 256

/* ---- acknowledgements from klog ------------------------------------------- */

static void drain_deliveries(klog_mirror *m, int timeout_ms)
{
    klog_delivery d[DELIVERY_BATCH];
    for (;;) {
        d[0].struct_size = sizeof d[0];
        int n = klog_producer_poll_deliveries(m->p, d, DELIVERY_BATCH, timeout_ms);
        if (n <= 0)
            return;
        timeout_ms = 0;
        for (int i = 0; i < n; i++) {
            uint64_t seq;
            mir_track *t = mir_track_of(m, (uint64_t)(uintptr_t)d[i].opaque, &seq);
            if (!t)
                continue;
            if (!d[i].err) {
                m->st.forwarded++;
                mir_track_ack(m, t, seq);
                continue;
            }
            mir_fail(m, d[i].err, "%s[%d] offset %" PRId64 " -> klog topic \"%s\": not written: %s", t->topic,
                     t->partition, t->off[seq & (t->cap - 1)], t->mt->dst, klog_strerror(d[i].err));
        }
        if (n < DELIVERY_BATCH)
            return;
    }
}

/* ---- commits to Kafka ----------------------------------------------------- */

static int commit(klog_mirror *m, const bool *only)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)(m->ntr ? m->ntr : 1));
    if (!l)
        return -ENOMEM;
    for (size_t i = 0; i < m->ntr; i++) {
        mir_track *t = m->tr[i];
        if (!t || !t->live || (only && !only[i]))
            continue;
        int64_t cp = mir_track_commit_point(t);
        if (cp >= 0 && cp > t->committed)
            rd_kafka_topic_partition_list_add(l, t->topic, t->partition)->offset = cp;
    }
    int rc = 0;
    if (l->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit(m->rk, l, 0);
        if (!e) {
            m->st.commits++;
            for (int i = 0; i < l->cnt; i++) {
                mir_track *t = mir_track_find(m, l->elems[i].topic, l->elems[i].partition);
                if (t && !l->elems[i].err)
                    t->committed = l->elems[i].offset;
            }
        } else {
            m->st.commit_errors++;
            rc = -EREMOTEIO;
            if (e != RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS && e != RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION &&
                e != RD_KAFKA_RESP_ERR__NO_OFFSET && m->link_up)
                mir_log(m, "committing Kafka offsets: %s (retried at the next commit)", rd_kafka_err2str(e));
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* ---- rebalances ----------------------------------------------------------- */

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    klog_mirror *m = opaque;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(parts);
        if (c && rd_kafka_committed(rk, c, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (int i = 0; i < c->cnt; i++)
                c->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
        }
        for (int i = 0; i < parts->cnt; i++) {
            mir_track *t = mir_track_add(m, parts->elems[i].topic, parts->elems[i].partition);
            if (!t) {
                mir_fail(m, -ENOMEM, "%s[%d]: no memory (or over %u partitions)", parts->elems[i].topic,
                         parts->elems[i].partition, MIR_MAX_SLOTS);
                continue;
            }
            int64_t off = c && i < c->cnt ? c->elems[i].offset : RD_KAFKA_OFFSET_INVALID;
            t->committed = t->expected = off >= 0 ? off : -1;
            if (off >= 0)
                mir_log(m, "Kafka %s[%d] -> klog %s: from offset %" PRId64 " (committed)", t->topic, t->partition,
                        t->mt->dst, off);
            else
                mir_log(m, "Kafka %s[%d] -> klog %s: from the earliest offset (nothing committed yet)", t->topic,
                        t->partition, t->mt->dst);
        }
        rd_kafka_topic_partition_list_destroy(c);
        if (coop)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        return;
    }
    bool *only = calloc(m->ntr ? m->ntr : 1, sizeof *only);
    for (int i = 0; only && i < parts->cnt; i++) {
        mir_track *t = mir_track_find(m, parts->elems[i].topic, parts->elems[i].partition);
        if (t)
            only[t->slot] = true;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && only) {
        klog_producer_flush(m->p, (int)m->close_timeout_ms);
        drain_deliveries(m, 0);
        commit(m, only);
    }
    for (size_t i = 0; only && i < m->ntr; i++)
        if (only[i] && m->tr[i]->live)
            mir_track_drop(m, m->tr[i]);
    free(only);
    if (coop)
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
    else
        rd_kafka_assign(rk, NULL);
}

/* ---- destination topics --------------------------------------------------- */

/* Make mt ready: the klog topic (created if asked) and the Kafka topic's
 * partition count.  Returns true when records may go. */
static bool resolve(klog_mirror *m, mir_topic *mt, rd_kafka_topic_t *rkt)
{
    if (mt->ready)
        return true;
    uint64_t now = mir_now_ms();
    if (now < mt->next_try_ms)
        return false;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(m->rk, 0, rkt, &md, 5000);
    if (e || !md || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0) {
        if (md)
            rd_kafka_metadata_destroy(md);
        mt->next_try_ms = now + mt->backoff_ms;
        mt->backoff_ms = mt->backoff_ms < 2500 ? mt->backoff_ms * 2 : 5000;
        return false;
    }
    int src_parts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    int dst_parts = klog_topic_describe(m->k, mt->dst, NULL, 0, NULL, 0);
    if (dst_parts == KLOG_EUNKNOWN_TOPIC && m->create_topics) {
        char err[256] = "";
        int rc = klog_topic_create(m->k, mt->dst, src_parts, NULL, err, sizeof err);
        if (rc < 0 && rc != -EEXIST) {
            mir_fail(m, rc, "creating klog topic \"%s\": %s", mt->dst, err[0] ? err : klog_strerror(rc));
            return false;
        }
        if (rc == 0)
            mir_log(m, "created klog topic \"%s\" with %d partition%s", mt->dst, src_parts, src_parts == 1 ? "" : "s");
        dst_parts = klog_topic_describe(m->k, mt->dst, NULL, 0, NULL, 0);
    }
    if (dst_parts == KLOG_EUNKNOWN_TOPIC) {
        mir_fail(m, KLOG_EUNKNOWN_TOPIC,
                 "klog topic \"%s\" (for Kafka topic \"%s\") does not exist: create it with %d partition%s, or let "
                 "the mirror create it (mirror.create.topics=true; klog mirror --create-topics)",
                 mt->dst, mt->src, src_parts, src_parts == 1 ? "" : "s");
        return false;
    }
    if (dst_parts < 0) {
        mir_fail(m, dst_parts, "klog topic \"%s\": %s", mt->dst, klog_strerror(dst_parts));
        return false;
    }
    mt->src_partitions = src_parts;
    mt->dst_partitions = dst_parts;
    mt->ready = true;
    if (!m->part_hash && dst_parts >= src_parts)
        mir_log(m, "Kafka topic \"%s\" -> klog %s (%d partitions): same partition numbers", mt->src, mt->dst,
                dst_parts);
    else
        mir_log(m, "Kafka topic \"%s\" (%d partitions) -> klog %s (%d): partition by key hash", mt->src, src_parts,
                mt->dst, dst_parts);
    return true;
}

/* ---- records -------------------------------------------------------------- */

static void note_jump(klog_mirror *m, mir_track *t, int64_t offset)
{
    int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID;
    if (rd_kafka_query_watermark_offsets(m->rk, t->topic, t->partition, &lo, &hi, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        lo = offset;
    mir_gap(m, t, offset, lo, "Kafka's retention");
    t->expected = offset;
}

/* Returns true when the message was handed to klog (or skipped for good). */
static bool handle(klog_mirror *m, rd_kafka_message_t *rkm, klog_header **hbuf, size_t *hcap)
{
    if (rkm->err) {
        rd_kafka_resp_err_t e = rkm->err;
        const char *topic = rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "?";
        if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
            mir_fail(m, KLOG_EUNKNOWN_TOPIC, "Kafka topic \"%s\" does not exist on the cluster at %s", topic,
                     m->bootstrap);
        else if (e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
            mir_fail(m, -EACCES, "Kafka topic \"%s\": %s", topic, rd_kafka_message_errstr(rkm));
        else if (e != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            char line[700];
            snprintf(line, sizeof line, "kafka: %s: %s", topic, rd_kafka_message_errstr(rkm));
            mir_log(m, "%s", line);
        }
        return true;
    }
    mir_link_up(m);
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    mir_track *t = mir_track_find(m, topic, rkm->partition);
    if (!t)
        return true; /* not (any more) ours */
    if (t->expected >= 0 && rkm->offset > t->expected)
        note_jump(m, t, rkm->offset);
    if (!t->mt->ready && !resolve(m, t->mt, rkm->rkt))
        return false;
    if (m->state != MST_RUNNING)
        return false;
    rd_kafka_headers_t *hdrs = NULL;
    size_t nh = 0;
    if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs)
        nh = rd_kafka_header_cnt(hdrs);
    if (nh + 1 > *hcap) {
        klog_header *h = realloc(*hbuf, (nh + 1) * sizeof *h);
        if (!h) {
            mir_fail(m, -ENOMEM, "out of memory for %zu headers", nh);
            return false;
        }
        *hbuf = h;
        *hcap = nh + 1;
    }
    size_t k = 0;
    for (size_t i = 0; i < nh; i++) {
        const char *name;
        const void *val;
        size_t size;
        if (rd_kafka_header_get_all(hdrs, i, &name, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        (*hbuf)[k++] = (klog_header){ .key = name, .key_len = strlen(name), .value = val, .value_len = size };
    }
    char src[KLOG_TOPIC_NAME_MAX + 48];
    if (m->source_header) {
        int n = snprintf(src, sizeof src, "%s/%d/%" PRId64, topic, rkm->partition, rkm->offset);
        (*hbuf)[k++] = (klog_header){ .key = "kafka.src", .key_len = 9, .value = src, .value_len = (size_t)n };
    }
    mir_topic *mt = t->mt;
    klog_record r = KLOG_RECORD_INIT;
    r.partition = !m->part_hash && mt->dst_partitions >= mt->src_partitions ? rkm->partition : KLOG_PARTITION_ANY;
    r.key = rkm->key;
    r.key_len = rkm->key_len;
    r.value = rkm->payload;
    r.value_len = rkm->len;
    rd_kafka_timestamp_type_t tst;
    int64_t ts = rd_kafka_message_timestamp(rkm, &tst);
    r.timestamp = ts > 0 ? ts : 0;
    r.headers = k ? *hbuf : NULL;
    r.header_count = k;
    uint64_t op = mir_track_push(m, t, rkm->offset);
    if (!op) {
        mir_fail(m, -ENOMEM, "%s[%d]: too many records in flight", topic, rkm->partition);
        return false;
    }
    r.opaque = (void *)(uintptr_t)op;
    int rc = klog_producer_send(m->p, mt->dst, &r);
    if (rc < 0) {
        t->tail--;
        m->st.in_flight--;
        if (rc == KLOG_EQUEUEFULL)
            return false;
        mir_fail(m, rc, "Kafka %s[%d] offset %" PRId64 " (%zu bytes) -> klog topic \"%s\": %s", topic, rkm->partition,
                 rkm->offset, rkm->key_len + rkm->len, mt->dst, klog_strerror(rc));
        return false;
    }
    m->st.read++;
    m->st.forwarded_bytes += rkm->key_len + rkm->len;
    t->expected = rkm->offset + 1;
    return true;
}

/* ---- the driver ----------------------------------------------------------- */

int mir_from_start(klog_mirror *m, char *errbuf, size_t errsize)
{
    rd_kafka_conf_t *conf = mir_kafka_conf(m, from_defaults, errbuf, errsize);
    if (!conf)
        return KLOG_ECONF;
    char kerr[512] = "";
    if (rd_kafka_conf_set(conf, "group.id", m->group, kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        snprintf(errbuf, errsize, "group.id: %s", kerr);
        return KLOG_ECONF;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    m->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof kerr);
    if (!m->rk) {
        rd_kafka_conf_destroy(conf);
        if (errbuf && errsize)
            snprintf(errbuf, errsize, "librdkafka: %s", kerr);
        return KLOG_ECONF;
    }
    mir_kafka_started(m);
    rd_kafka_poll_set_consumer(m->rk); /* logs and errors come out of rd_kafka_consumer_poll */

    klog_conf *pc = NULL;
    int rc = klog_conf_dup(m->lconf, &pc);
    if (rc < 0)
        goto fail;
    if ((rc = klog_conf_set(pc, "delivery.report.queue", "true", kerr, sizeof kerr)) < 0 ||
        (!m->lconf_set[5] && (rc = klog_conf_set(pc, "acks", "all", kerr, sizeof kerr)) < 0) ||
        (!m->lconf_set[7] && (rc = klog_conf_set(pc, "client.id", "klog-mirror", kerr, sizeof kerr)) < 0)) {
        if (errbuf && errsize)
            snprintf(errbuf, errsize, "klog producer: %s", kerr);
        goto fail;
    }
    if ((rc = klog_producer_new(m->k, pc, &m->p, kerr, sizeof kerr)) < 0) {
        if (errbuf && errsize)
            snprintf(errbuf, errsize, "klog producer: %s", kerr[0] ? kerr : klog_strerror(rc));
        goto fail;
    }
    klog_conf_free(pc);
    pc = NULL;
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new((int)m->nsubs);
    for (size_t i = 0; i < m->nsubs; i++)
        rd_kafka_topic_partition_list_add(sub, m->subs[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(m->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        if (errbuf && errsize)
            snprintf(errbuf, errsize, "subscribing to %s: %s", m->topics, rd_kafka_err2str(e));
        rc = KLOG_ECONF;
        goto fail;
    }
    mir_log(m, "forwarding Kafka topics %s from the cluster at %s into klog (Kafka group \"%s\")", m->topics,
            m->bootstrap, m->group);
    return 0;
fail:
    klog_conf_free(pc);
    klog_producer_close(m->p);
    m->p = NULL;
    rd_kafka_destroy(m->rk);
    m->rk = NULL;
    return rc;
}

static void update_lag(klog_mirror *m, uint64_t now)
{
    if (now < m->next_lag_ms)
        return;
    m->next_lag_ms = now + 100;
    int64_t lag = 0;
    for (size_t i = 0; i < m->ntr; i++) {
        mir_track *t = m->tr[i];
        int64_t lo, hi;
        if (!t || !t->live)
            continue;
        /* Known once a fetch answered for the partition; until then unknown. */
        if (rd_kafka_get_watermark_offsets(m->rk, t->topic, t->partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0 || lo < 0) {
            lag = -1;
            break;
        }
        int64_t cp = mir_track_commit_point(t);
        int64_t l = hi - (cp >= 0 ? cp : lo);
        lag += l > 0 ? l : 0;
    }
    m->st.lag = lag;
}

int mir_from_poll(klog_mirror *m, int timeout_ms)
{
    uint64_t deadline = mir_now_ms() + (uint64_t)timeout_ms;
    klog_header *hbuf = NULL;
    size_t hcap = 0;
    for (;;) {
        if (m->state != MST_RUNNING)
            break;
        uint64_t now = mir_now_ms();
        int64_t left = now < deadline ? (int64_t)(deadline - now) : 0;
        if (!m->link_up && !mir_probe(m, left < 500 ? (int)left : 500) && m->state != MST_RUNNING)
            break;
        drain_deliveries(m, 0);
        now = mir_now_ms();
        if (now >= m->next_commit_ms) {
            commit(m, NULL);
            m->next_commit_ms = now + (uint64_t)m->commit_interval_ms;
        }
        left = now < deadline ? (int64_t)(deadline - now) : 0;
        int wait = m->st.in_flight > 0 ? 5 : (left < 100 ? (int)left : 100);
        for (int i = 0; i < 10000 && m->state == MST_RUNNING; i++) {
            rd_kafka_message_t *rkm = rd_kafka_consumer_poll(m->rk, i == 0 ? wait : 0);
            if (!rkm)
                break;
            bool done = handle(m, rkm, &hbuf, &hcap);
            if (!done && !rkm->err && m->state == MST_RUNNING) {
                /* Read it again later: the destination is not ready yet, or
                 * the producer's memory is full. */
                rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(rkm->rkt), rkm->partition)->offset =
                    rkm->offset;
                rd_kafka_error_t *se = rd_kafka_seek_partitions(m->rk, l, 1000);
                if (se)
                    rd_kafka_error_destroy(se);
                rd_kafka_topic_partition_list_destroy(l);
                mir_track *t = mir_track_find(m, rd_kafka_topic_name(rkm->rkt), rkm->partition);
                if (t)
                    t->expected = rkm->offset;
                rd_kafka_message_destroy(rkm);
                drain_deliveries(m, 50);
                break;
            }
            rd_kafka_message_destroy(rkm);
        }
        if (m->state == MST_RUNNING && m->st.in_flight > 0)
            drain_deliveries(m, 0);
        update_lag(m, mir_now_ms());
        mir_publish(m);
        if (mir_now_ms() >= deadline || atomic_exchange(&m->wake, false))
            break;
    }
    free(hbuf);
    return 0;
}

int mir_from_stop(klog_mirror *m)
{
    int rc = 0;
    if (m->p) {
        klog_producer_flush(m->p, (int)m->close_timeout_ms);
        drain_deliveries(m, 0);
    }
    if (m->rk) {
        rc = commit(m, NULL);
        if (rc == -EREMOTEIO)
            rc = 0; /* a rebalance took the partitions: their next owner starts from the last commit */
        if (m->st.in_flight > 0)
            mir_log(m, "stopping with %" PRIu64 " record%s not acknowledged by klog: the next run reads them again",
                    m->st.in_flight, m->st.in_flight == 1 ? "" : "s");
        for (size_t i = 0; i < m->ntr; i++)
            if (m->tr[i] && m->tr[i]->live)
                mir_track_drop(m, m->tr[i]);
        rd_kafka_consumer_close(m->rk);
        rd_kafka_destroy(m->rk);
        m->rk = NULL;
    }
    if (m->p) {
        int prc = klog_producer_close(m->p);
        m->p = NULL;
        if (prc < 0 && !rc && m->state != MST_FAILED)
            rc = prc;
    }
    m->st.lag = 0;
    return rc;
}
