/*
 * tools/remote_consume.c - `klog consume` in remote mode: a librdkafka
 * consumer, printing with cmd_consume.c's printer so that the output is
 * the same whichever mode.
 *
 * Without --group it reads the partitions itself (no group.id, nothing
 * committed).  With --group it subscribes, and commits as the local
 * command does: the offset after the last record printed from each
 * partition, every 5 s (asynchronously), when a partition is revoked, and
 * at exit (synchronously) - Kafka's console consumer commits the same way.
 * A partition from which nothing was printed is not committed (the local
 * command commits its position).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "remote_rdk.h"

typedef struct cstate {
    const char *ctx, *topic;
    int64_t *next;      /* per partition: the offset to commit, -1: nothing printed */
    int32_t nnext;
    bool closing;       /* committed at exit already: revocations commit nothing */
} cstate;

/* How long the commit at exit may wait for the group coordinator (a
 * server that went away must not hold the command until the session
 * times out). */
#define EXIT_COMMIT_MS 10000

/* next[p], growing the array for partitions added while we run; NULL
 * when out of memory (that partition is then not committed). */
static int64_t *slot(cstate *s, int32_t p)
{
    if (p < 0)
        return NULL;
    if (p >= s->nnext) {
        int32_t n = p + 64;
        int64_t *nn = realloc(s->next, (size_t)n * sizeof *nn);
        if (!nn)
            return NULL;
        for (int32_t i = s->nnext; i < n; i++)
            nn[i] = -1;
        s->next = nn;
        s->nnext = n;
    }
    return &s->next[p];
}

/* Commit next[p] for every partition of the topic in parts (NULL: the
 * current assignment) that has one: asynchronously (async), or waiting
 * for the answer at most wait_ms.  Returns the error of the commit
 * (RD_KAFKA_RESP_ERR__TIMED_OUT: no answer in time). */
static rd_kafka_resp_err_t commit_printed(rd_kafka_t *rk, cstate *s, const rd_kafka_topic_partition_list_t *parts,
                                          bool async, int wait_ms)
{
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (!parts) {
        rd_kafka_resp_err_t err = rd_kafka_assignment(rk, &assigned);
        if (err)
            return err;
        parts = assigned;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts->cnt > 0 ? parts->cnt : 1);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int32_t p = tp->partition;
        if (strcmp(tp->topic, s->topic) || p < 0 || p >= s->nnext || s->next[p] < 0)
            continue;
        rd_kafka_topic_partition_list_add(l, s->topic, p)->offset = s->next[p];
    }
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (l->cnt && async) {
        err = rd_kafka_commit(rk, l, 1);
    } else if (l->cnt) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        err = rd_kafka_commit_queue(rk, l, q, NULL, NULL);
        if (!err) {
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, wait_ms);
            err = ev ? rd_kafka_event_error(ev) : RD_KAFKA_RESP_ERR__TIMED_OUT;
            if (ev)
                rd_kafka_event_destroy(ev);
        }
        rd_kafka_queue_destroy(q);
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (assigned)
        rd_kafka_topic_partition_list_destroy(assigned);
    return err;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    cstate *s = opaque;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, parts);
        }
        return;
    }
    /* revoked (or lost): commit what was printed from them, as Kafka's
     * consumers do before giving partitions up; then forget it, since the
     * next owner moves the group's offsets on */
    if (!s->closing && !rd_kafka_assignment_lost(rk)) {
        rd_kafka_resp_err_t ce = commit_printed(rk, s, parts, false, EXIT_COMMIT_MS);
        if (ce && ce != RD_KAFKA_RESP_ERR__NO_OFFSET)
            fprintf(stderr, "klog: %s: commit before a rebalance: %s\n", s->ctx, rd_kafka_err2str(ce));
    }
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        if (!strcmp(parts->elems[i].topic, s->topic) && p >= 0 && p < s->nnext)
            s->next[p] = -1;
    }
    if (coop) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e)
            rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                      void *opaque)
{
    (void)rk;
    (void)offsets;
    cstate *s = opaque;
    /* a commit refused in a rebalance is made again after it */
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET && err != RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS &&
        err != RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION && err != RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID &&
        err != RD_KAFKA_RESP_ERR__WAIT_COORD)
        fprintf(stderr, "klog: %s: commit: %s\n", s->ctx, rd_kafka_err2str(err));
}

static int header_at(const void *src, size_t i, const char **k, size_t *kl, const void **v, size_t *vl)
{
    const char *name;
    const void *val;
    size_t size;
    if (rd_kafka_header_get_all((const rd_kafka_headers_t *)src, i, &name, &val, &size))
        return -1;
    *k = name;
    *kl = strlen(name);
    *v = val;
    *vl = size;
    return 0;
}

static void print_rk(const rd_kafka_message_t *m, const remote_consume_opts *o)
{
    rd_kafka_headers_t *h = NULL;
    cli_record r = {
        .topic = o->topic,
        .partition = m->partition,
        .offset = m->offset,
        .timestamp = rd_kafka_message_timestamp(m, NULL),
        .key = m->key,
        .key_len = m->key_len,
        .value = m->payload,
        .value_len = m->len,
        .header = header_at,
    };
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
        r.header_count = rd_kafka_header_cnt(h);
        r.src = h;
    }
    cli_print_record(stdout, &r, o->out);
}

/* Errors a consumer cannot get past: the topic or partition is gone. */
static bool fatal(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
           err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
           err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED || err == RD_KAFKA_RESP_ERR__FATAL;
}

/*
 * Without a group: start reading each partition at the offset the local
 * command would (librdkafka's per-partition consumer, onto one queue: a
 * KafkaConsumer cannot assign without a group.id in librdkafka 2.0).
 */
static int start_partitions(const char *ctx, rd_kafka_t *rk, rd_kafka_topic_t *rkt, rd_kafka_queue_t *q,
                            const remote_consume_opts *o, int np)
{
    int32_t lo = o->partition >= 0 ? o->partition : 0, hi = o->partition >= 0 ? o->partition + 1 : np;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(hi - lo);
    for (int32_t p = lo; p < hi; p++) {
        int64_t at = RD_KAFKA_OFFSET_END;
        if (o->from_beginning)
            at = RD_KAFKA_OFFSET_BEGINNING;
        else if (o->have_ts)
            at = o->ts;
        else if (o->have_offset)
            at = o->offset == KLOG_OFFSET_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING
                 : o->offset == KLOG_OFFSET_END     ? RD_KAFKA_OFFSET_END
                                                    : o->offset;
        rd_kafka_topic_partition_list_add(l, o->topic, p)->offset = at;
    }
    int rc = CLI_OK;
    if (o->have_ts) {
        /* the first offset at or after the time; none (-1): the end */
        rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, l, REMOTE_REQUEST_MS);
        if (err) {
            rc = rk_fail(ctx, "looking up --timestamp", err, NULL);
        } else {
            for (int i = 0; i < l->cnt; i++) {
                if (l->elems[i].err) {
                    char what[300];
                    snprintf(what, sizeof what, "%s/%d", o->topic, (int)l->elems[i].partition);
                    rc = rk_fail(ctx, what, l->elems[i].err, NULL);
                    break;
                }
                if (l->elems[i].offset < 0)
                    l->elems[i].offset = RD_KAFKA_OFFSET_END;
            }
        }
    }
    for (int i = 0; rc == CLI_OK && i < l->cnt; i++) {
        if (rd_kafka_consume_start_queue(rkt, l->elems[i].partition, l->elems[i].offset, q) < 0) {
            char what[300];
            snprintf(what, sizeof what, "%s/%d", o->topic, (int)l->elems[i].partition);
            rc = rk_fail(ctx, what, rd_kafka_last_error(), NULL);
            for (int j = 0; j < i; j++)
                rd_kafka_consume_stop(rkt, l->elems[j].partition);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* --exit-at-end: every partition read (without a group: those started;
 * with one: those assigned, at least one) has reported its end since its
 * last record. */
static bool all_at_end(rd_kafka_t *rk, const remote_consume_opts *o, const bool *eof, int np)
{
    if (!o->group) {
        for (int32_t p = o->partition >= 0 ? o->partition : 0; p < (o->partition >= 0 ? o->partition + 1 : np); p++)
            if (!eof[p])
                return false;
        return true;
    }
    rd_kafka_topic_partition_list_t *as = NULL;
    if (rd_kafka_assignment(rk, &as))
        return false;
    bool end = as->cnt > 0;
    for (int i = 0; end && i < as->cnt; i++)
        end = !strcmp(as->elems[i].topic, o->topic) && as->elems[i].partition >= 0 &&
              as->elems[i].partition < np && eof[as->elems[i].partition];
    rd_kafka_topic_partition_list_destroy(as);
    return end;
}

int remote_consume(const cli_remote *r, const remote_consume_opts *o)
{
    const char *ctx = "consume";
    cstate s = { .ctx = ctx, .topic = o->topic };
    const char *defaults[16] = { "client.id", "klog-consume", "enable.auto.commit", "false",
                                 "enable.auto.offset.store", "false", "auto.offset.reset",
                                 o->from_beginning ? "earliest" : "latest", NULL, NULL, NULL };
    int nd = 8;
    if (o->group) {
        defaults[nd++] = "group.id";
        defaults[nd++] = o->group;
    }
    if (o->exit_at_end) {
        /* kcat -e: an end-of-partition event tells where each partition ends */
        defaults[nd++] = "enable.partition.eof";
        defaults[nd++] = "true";
    }
    bool *eof = NULL; /* per partition (--exit-at-end): at its end since its last record */
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt = NULL;  /* without a group */
    rd_kafka_queue_t *q = NULL;
    bool started = false, coordinator_gone = false;
    int np = 0;
    int rc = rk_conf(ctx, r, defaults, o->props, &conf);
    if (rc != CLI_OK)
        return rc;
    if (o->group) {
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
        rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    }
    rd_kafka_conf_set_opaque(conf, &s);
    cli_signals();
    if ((rc = rk_create(ctx, RD_KAFKA_CONSUMER, conf, &rk)) != CLI_OK)
        return rc;
    if (o->group)
        rd_kafka_poll_set_consumer(rk);
    if ((rc = rk_check_topic(ctx, r, rk, o->topic, o->partition, &np)) != CLI_OK)
        goto out;
    if (!slot(&s, np) || !(eof = calloc((size_t)np + 1, sizeof *eof))) {
        rc = cli_err(ctx, "out of memory");
        goto out;
    }
    if (o->group) {
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, o->topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (err) {
            rc = rk_fail(ctx, o->group, err, NULL);
            goto out;
        }
    } else {
        q = rd_kafka_queue_new(rk);
        if (!(rkt = rd_kafka_topic_new(rk, o->topic, NULL))) {
            rc = rk_fail(ctx, o->topic, rd_kafka_last_error(), NULL);
            goto out;
        }
        if ((rc = start_partitions(ctx, rk, rkt, q, o, np)) != CLI_OK)
            goto out;
        started = true;
    }

    int64_t count = 0;
    uint64_t last = cli_now_ns(), last_commit = last;
    bool done = false;
    while (!done && !cli_stop) {
        if (rk_auth_failed()) {
            rc = CLI_FAIL;
            break;
        }
        int wait = 200;
        if (o->timeout_ms >= 0) {
            int64_t left = o->timeout_ms - (int64_t)((cli_now_ns() - last) / 1000000);
            if (left <= 0)
                break;
            if (left < wait)
                wait = (int)left;
        }
        /* what is there at once, up to 1000 records, then one flush */
        int got = 0;
        rd_kafka_message_t *m;
        while (!done && got < 1000 &&
               (m = o->group ? rd_kafka_consumer_poll(rk, got ? 0 : wait) : rd_kafka_consume_queue(q, got ? 0 : wait))) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && o->exit_at_end && m->partition >= 0 &&
                m->partition < np) {
                eof[m->partition] = true;
                if (all_at_end(rk, o, eof, np))
                    done = true;
            }
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                    char what[300];
                    if (m->rkt)
                        snprintf(what, sizeof what, "%s/%d", rd_kafka_topic_name(m->rkt), (int)m->partition);
                    else
                        snprintf(what, sizeof what, "%s", o->topic);
                    rk_fail(ctx, what, m->err, rd_kafka_message_errstr(m));
                    if (fatal(m->err)) {
                        rc = CLI_FAIL;
                        done = true;
                    }
                }
                rd_kafka_message_destroy(m);
                continue;
            }
            got++;
            if (m->partition >= 0 && m->partition < np)
                eof[m->partition] = false;
            print_rk(m, o);
            int64_t *n = slot(&s, m->partition);
            if (n)
                *n = m->offset + 1;
            rd_kafka_message_destroy(m);
            if (++count == o->max_messages)
                done = true;
        }
        if (!o->group)
            rd_kafka_poll(rk, 0); /* log lines and errors */
        if (got > 0) {
            last = cli_now_ns();
            if (fflush(stdout) != 0) {
                if (errno != EPIPE)
                    cli_err(ctx, "writing standard output: %s", strerror(errno));
                rc = CLI_FAIL;
                break;
            }
        }
        if (o->group && cli_now_ns() - last_commit > 5000000000ull) {
            last_commit = cli_now_ns();
            commit_printed(rk, &s, NULL, true, 0); /* errors: on_commit */
        }
    }
    fflush(stdout);
    if (o->group) {
        rd_kafka_resp_err_t err = commit_printed(rk, &s, NULL, false, EXIT_COMMIT_MS);
        if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__WAIT_COORD) {
            coordinator_gone = true;
            rc = cli_err(ctx, "commit: no answer from the group coordinator within %d s: the offsets after "
                              "the records printed are not committed", EXIT_COMMIT_MS / 1000);
        } else if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            rc = rk_fail(ctx, "commit", err, NULL);
        }
        s.closing = true;
    }
    if (!o->quiet)
        fprintf(stderr, "Processed a total of %" PRId64 " messages\n", count);
out:
    if (started)
        for (int32_t p = o->partition >= 0 ? o->partition : 0; p < (o->partition >= 0 ? o->partition + 1 : np); p++)
            rd_kafka_consume_stop(rkt, p);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (q)
        rd_kafka_queue_destroy(q);
    if (coordinator_gone) {
        /* Nobody to leave the group with, and rd_kafka_destroy would wait
         * for the commits it holds back for a coordinator to time out (a
         * minute): the process exits now, and its end frees the client. */
        free(s.next);
        free(eof);
        return rc;
    }
    if (o->group)
        rd_kafka_consumer_close(rk); /* leaves the group */
    rd_kafka_destroy(rk);
    free(s.next);
    free(eof);
    return rc;
}
