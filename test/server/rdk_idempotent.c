/*
 * test/server/rdk_idempotent.c - librdkafka's idempotent producer against a
 * Kafka-protocol server (klog serve), then a consumer that checks what it
 * wrote.  Run by test_rdkafka_idempotent.py.
 *
 *   rdk_idempotent BOOTSTRAP TOPIC N [--cut-every K] [--max-cuts M]
 *
 * 1. A producer with enable.idempotence=true (acks=all) sends N keyed
 *    records ("key-<i % 16>", "value-<i>" padded to 64..191 bytes), in
 *    batches of at most 100, and flushes.  Every delivery report must be a
 *    success; in each partition the offsets must rise in send order; the
 *    producer's statistics must show it was given a producer id
 *    (InitProducerId: eos.idemp_state "Assigned", producer_id >= 0).
 * 2. With --cut-every K, every connection the producer makes goes through a
 *    proxy in this process (librdkafka's connect_cb) that, after passing the
 *    server every K-th Produce request, waits 50 ms (the server appends the
 *    batch) and cuts the connection before the response comes back, at most
 *    M times (default 8).  The producer retries those batches with the same
 *    producer id and sequence numbers; the server must not write them twice.
 * 3. A consumer assigned every partition from the beginning reads until it
 *    has seen every partition's end: every record is there once, where its
 *    delivery report put it, in each partition in send order, with no
 *    duplicate and nothing else.
 *
 * Exit 0 if all holds, 1 with the reason on stderr if not, 2 on usage.
 * Every wait is bounded (flush 120 s, consume 120 s).
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define NKEYS 16
#define MAX_PARTS 64

static const char *g_bootstrap, *g_topic;
static int g_n;
static int g_failures;

/* delivery reports, by record index */
static int32_t *g_dr_part;
static int64_t *g_dr_off;
static int *g_dr_err;
static int g_dr_count;

/* producer statistics (eos section), from stats_cb */
static char g_idemp_state[64];
static long long g_producer_id = -1, g_epoch_cnt = -1;

/* the cutting proxy */
static int g_cut_every, g_max_cuts = 8;
static struct sockaddr_storage g_proxy_addr, g_upstream_addr;
static socklen_t g_proxy_len, g_upstream_len;
static atomic_int g_produce_reqs, g_cuts;

/*
 * Record a failure of a kind ("duplicate", "missing", ...): the first few
 * of each kind are printed, all are counted, and the counts are printed at
 * the end (fail_summary), so one systematic fault does not hide the others.
 */
static struct {
    const char *kind;
    int count;
} g_kinds[32];

static void fail(const char *kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(const char *kind, const char *fmt, ...)
{
    int k = 0;
    while (k < 31 && g_kinds[k].kind && strcmp(g_kinds[k].kind, kind))
        k++;
    g_kinds[k].kind = kind;
    g_failures++;
    if (++g_kinds[k].count > 5)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rdk_idempotent: FAIL (%s): ", kind);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void fail_summary(void)
{
    for (int k = 0; k < 32 && g_kinds[k].kind; k++)
        fprintf(stderr, "rdk_idempotent: %d failure(s) of kind %s\n", g_kinds[k].count, g_kinds[k].kind);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the cutting proxy ------------------------------------------------------ */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct {
    int cfd;  /* the client (librdkafka) */
} pconn;

/*
 * Relay one connection both ways.  Client-to-server bytes are parsed as
 * Kafka frames (a 4-byte length, then the request: api_key first), so that
 * the cut falls right after a whole Produce request has been passed on.
 */
static void *proxy_conn(void *arg)
{
    pconn *pc = arg;
    int cfd = pc->cfd;
    free(pc);
    int sfd = socket(g_upstream_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sfd < 0 || connect(sfd, (struct sockaddr *)&g_upstream_addr, g_upstream_len) != 0) {
        fprintf(stderr, "rdk_idempotent: proxy: connect upstream: %s\n", strerror(errno));
        close(cfd);
        if (sfd >= 0)
            close(sfd);
        return NULL;
    }
    int one = 1;
    setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t buf[65536];
    /* frame parser state, client to server */
    uint8_t hdr[6];
    size_t hdr_have = 0;   /* bytes of length + api_key seen of the current frame */
    uint64_t body_left = 0; /* bytes of the current frame still to pass (after hdr) */
    int16_t api_key = -1;
    for (;;) {
        struct pollfd fds[2] = { { cfd, POLLIN, 0 }, { sfd, POLLIN, 0 } };
        if (poll(fds, 2, 1000) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents) {
            ssize_t r = recv(sfd, buf, sizeof buf, 0);
            if (r <= 0 || write_all(cfd, buf, (size_t)r) != 0)
                break;
        }
        if (fds[0].revents) {
            ssize_t r = recv(cfd, buf, sizeof buf, 0);
            if (r <= 0)
                break;
            bool cut = false;
            size_t i = 0, n = (size_t)r;
            while (i < n && !cut) {
                if (hdr_have < 6) {
                    hdr[hdr_have++] = buf[i++];
                    if (hdr_have == 6) {
                        uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
                        api_key = (int16_t)(hdr[4] << 8 | hdr[5]);
                        body_left = len >= 2 ? len - 2 : 0;
                    }
                    if (hdr_have < 6 || body_left > 0)
                        continue;
                } else {
                    size_t take = n - i < body_left ? n - i : (size_t)body_left;
                    i += take;
                    body_left -= take;
                    if (body_left > 0)
                        continue;
                }
                /* a whole frame ends at i */
                if (api_key == 0 && g_cut_every > 0) {
                    int k = atomic_fetch_add(&g_produce_reqs, 1) + 1;
                    if (k % g_cut_every == 0 && atomic_load(&g_cuts) < g_max_cuts)
                        cut = true;
                }
                hdr_have = 0;
            }
            if (write_all(sfd, buf, i) != 0)
                break;
            if (cut) {
                /* the server gets the whole request and appends it; the
                 * client never sees the answer */
                atomic_fetch_add(&g_cuts, 1);
                usleep(50000);
                break;
            }
            if (i < n && write_all(sfd, buf + i, n - i) != 0)
                break;
        }
    }
    close(sfd);
    close(cfd);
    return NULL;
}

static void *proxy_accept(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        pconn *pc = malloc(sizeof *pc);
        pthread_t th;
        if (!pc) {
            close(cfd);
            continue;
        }
        pc->cfd = cfd;
        if (pthread_create(&th, NULL, proxy_conn, pc) != 0) {
            close(cfd);
            free(pc);
            continue;
        }
        pthread_detach(th);
    }
}

static int proxy_start(void)
{
    char host[256];
    const char *colon = strrchr(g_bootstrap, ':');
    if (!colon || (size_t)(colon - g_bootstrap) >= sizeof host)
        return -1;
    memcpy(host, g_bootstrap, (size_t)(colon - g_bootstrap));
    host[colon - g_bootstrap] = 0;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return -1;
    memcpy(&g_upstream_addr, ai->ai_addr, ai->ai_addrlen);
    g_upstream_len = ai->ai_addrlen;
    freeaddrinfo(ai);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 64) != 0)
        return -1;
    g_proxy_len = sizeof g_proxy_addr;
    if (getsockname(lfd, (struct sockaddr *)&g_proxy_addr, &g_proxy_len) != 0)
        return -1;
    pthread_t th;
    if (pthread_create(&th, NULL, proxy_accept, (void *)(intptr_t)lfd) != 0)
        return -1;
    pthread_detach(th);
    return 0;
}

/* librdkafka's connect_cb: every broker connection goes to the proxy. */
static int connect_via_proxy(int sockfd, const struct sockaddr *addr, int addrlen, const char *id, void *opaque)
{
    (void)addr, (void)addrlen, (void)id, (void)opaque;
    if (connect(sockfd, (struct sockaddr *)&g_proxy_addr, g_proxy_len) != 0 && errno != EINPROGRESS)
        return errno;
    return 0;
}

/* ---- producer --------------------------------------------------------------- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    intptr_t i = (intptr_t)m->_private;
    if (i < 0 || i >= g_n) {
        fail("delivery", "delivery report for an unknown record %" PRIdPTR, i);
        return;
    }
    if (g_dr_err[i] != -1000) {
        fail("delivery", "two delivery reports for record %" PRIdPTR, i);
        return;
    }
    g_dr_err[i] = m->err;
    g_dr_part[i] = m->partition;
    g_dr_off[i] = m->offset;
    g_dr_count++;
}

/* The value of "key" after `from` in a statistics JSON text: a pointer to
 * its first character (a quote for a string), or NULL. */
static const char *json_val(const char *from, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *s = strstr(from, pat);
    if (!s)
        return NULL;
    s += strlen(pat);
    s += strspn(s, " \t\n");
    if (*s != ':')
        return NULL;
    s++;
    return s + strspn(s, " \t\n");
}

/* The "eos" object of the statistics JSON (only an idempotent producer
 * has one): idemp_state, producer_id, epoch_cnt. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk, (void)len, (void)opaque;
    const char *eos = json_val(json, "eos"), *s;
    if (!eos)
        return 0;
    if ((s = json_val(eos, "idemp_state")) && *s == '"') {
        size_t n = strcspn(++s, "\"");
        if (n >= sizeof g_idemp_state)
            n = sizeof g_idemp_state - 1;
        memcpy(g_idemp_state, s, n);
        g_idemp_state[n] = 0;
    }
    if ((s = json_val(eos, "producer_id")))
        g_producer_id = strtoll(s, NULL, 10);
    if ((s = json_val(eos, "epoch_cnt")))
        g_epoch_cnt = strtoll(s, NULL, 10);
    return 0;
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "rdk_idempotent: %s=%s: %s\n", k, v, err);
        exit(2);
    }
}

static size_t value_of(int i, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "value-%08d|", i);
    size_t len = 64 + (size_t)(i * 37 % 128);
    if (len >= cap)
        len = cap - 1;
    for (size_t j = (size_t)n; j < len; j++)
        buf[j] = (char)('a' + (i + (int)j) % 26);
    return len;
}

static void produce(void)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", g_bootstrap);
    set(c, "enable.idempotence", "true");
    set(c, "acks", "all");
    set(c, "linger.ms", "2");
    set(c, "batch.num.messages", "100");
    set(c, "message.timeout.ms", "120000");
    set(c, "retry.backoff.ms", "20");
    set(c, "statistics.interval.ms", "100");
    set(c, "socket.timeout.ms", "30000");
    set(c, "reconnect.backoff.ms", "10");
    set(c, "reconnect.backoff.max.ms", "200");
    rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
    rd_kafka_conf_set_stats_cb(c, stats_cb);
    if (g_cut_every > 0) {
        if (proxy_start() != 0) {
            fprintf(stderr, "rdk_idempotent: cannot start the proxy: %s\n", strerror(errno));
            exit(1);
        }
        rd_kafka_conf_set_connect_cb(c, connect_via_proxy);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "rdk_idempotent: producer: %s\n", err);
        exit(1);
    }
    char key[32], val[256];
    double t0 = now_s();
    for (int i = 0; i < g_n; i++) {
        int kl = snprintf(key, sizeof key, "key-%d", i % NKEYS);
        size_t vl = value_of(i, val, sizeof val);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(g_topic), RD_KAFKA_V_KEY(key, (size_t)kl),
                                                      RD_KAFKA_V_VALUE(val, vl), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                                      RD_KAFKA_V_OPAQUE((void *)(intptr_t)i), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                break;
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || now_s() - t0 > 120) {
                fprintf(stderr, "rdk_idempotent: produce %d: %s\n", i, rd_kafka_err2str(e));
                exit(1);
            }
            rd_kafka_poll(rk, 10);
        }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_resp_err_t fe = rd_kafka_flush(rk, 120000);
    if (fe)
        fail("flush", "flush: %s (%d records still queued)", rd_kafka_err2str(fe), rd_kafka_outq_len(rk));
    /* one more statistics round, so that the eos section is current */
    for (int w = 0; w < 5; w++)
        rd_kafka_poll(rk, 100);
    char fatal[512] = "";
    rd_kafka_resp_err_t fatal_err = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
    if (fatal_err)
        fail("fatal", "the producer hit a fatal error: %s: %s", rd_kafka_err2name(fatal_err), fatal);
    rd_kafka_destroy(rk);

    fprintf(stderr, "rdk_idempotent: produced %d records in %.2f s; eos idemp_state %s, producer_id %lld, epoch_cnt %lld"
                    "; %d connection(s) cut after %d Produce requests\n",
            g_n, now_s() - t0, g_idemp_state[0] ? g_idemp_state : "(none)", g_producer_id, g_epoch_cnt,
            atomic_load(&g_cuts), atomic_load(&g_produce_reqs));
    if (strcmp(g_idemp_state, "Assigned") != 0 || g_producer_id < 0)
        fail("producer-id", "the producer was not given a producer id (idemp_state \"%s\", producer_id %lld)", g_idemp_state,
             g_producer_id);
    if (g_cut_every > 0 && atomic_load(&g_cuts) == 0)
        fail("proxy", "--cut-every %d: no connection was cut (%d Produce requests)", g_cut_every, atomic_load(&g_produce_reqs));
    if (g_dr_count != g_n)
        fail("delivery", "%d delivery reports for %d records", g_dr_count, g_n);
    int64_t last[MAX_PARTS];
    for (int p = 0; p < MAX_PARTS; p++)
        last[p] = -1;
    for (int i = 0; i < g_n; i++) {
        if (g_dr_err[i] != 0) {
            fail("delivery-error", "record %d: delivery error %s", i,
                 g_dr_err[i] == -1000 ? "(no report)" : rd_kafka_err2name((rd_kafka_resp_err_t)g_dr_err[i]));
            continue;
        }
        int32_t p = g_dr_part[i];
        if (p < 0 || p >= MAX_PARTS) {
            fail("delivery", "record %d: delivered to partition %d", i, p);
            continue;
        }
        if (g_dr_off[i] <= last[p])
            fail("delivery-order", "record %d: partition %d offset %" PRId64 " not after the previous record's %" PRId64, i, p,
                 g_dr_off[i], last[p]);
        last[p] = g_dr_off[i];
    }
}

/* ---- consumer --------------------------------------------------------------- */

static void consume(void)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", g_bootstrap);
    set(c, "group.id", "rdk-idempotent-check");
    set(c, "enable.auto.commit", "false");
    set(c, "enable.auto.offset.store", "false");
    set(c, "enable.partition.eof", "true");
    set(c, "socket.timeout.ms", "30000");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "rdk_idempotent: consumer: %s\n", err);
        exit(1);
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, g_topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 30000);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "rdk_idempotent: metadata of %s: %s\n", g_topic,
                rd_kafka_err2str(e ? e : md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        exit(1);
    }
    int nparts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (nparts < 1 || nparts > MAX_PARTS) {
        fprintf(stderr, "rdk_idempotent: %s has %d partitions\n", g_topic, nparts);
        exit(1);
    }
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(tl, g_topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if ((e = rd_kafka_assign(rk, tl))) {
        fprintf(stderr, "rdk_idempotent: assign: %s\n", rd_kafka_err2str(e));
        exit(1);
    }
    rd_kafka_topic_partition_list_destroy(tl);

    char *seen = calloc((size_t)g_n, 1);
    int64_t last_off[MAX_PARTS];
    int last_idx[MAX_PARTS];
    bool at_eof[MAX_PARTS] = { 0 };
    for (int p = 0; p < MAX_PARTS; p++)
        last_off[p] = -1, last_idx[p] = -1;
    int got = 0, eofs = 0;
    double t0 = now_s();
    while ((got < g_n || eofs < nparts) && now_s() - t0 < 120) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        int32_t p = m->partition;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (p >= 0 && p < nparts && !at_eof[p] && m->offset >= 0) {
                /* EOF counts once the partition's records are all in */
                int64_t want = -1;
                for (int i = 0; i < g_n; i++)
                    if (g_dr_part[i] == p && g_dr_off[i] > want)
                        want = g_dr_off[i];
                if (last_off[p] >= want)
                    at_eof[p] = true, eofs++;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err) {
            fail("consume-error", "consume: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        int i = -1;
        if (m->len >= 15 && !memcmp(m->payload, "value-", 6))
            i = atoi((const char *)m->payload + 6);
        char want[256];
        if (i < 0 || i >= g_n) {
            fail("foreign", "partition %d offset %" PRId64 ": a record this run did not send (%zu bytes)", p, m->offset, m->len);
        } else if (seen[i]) {
            fail("duplicate", "record %d consumed twice (again at partition %d offset %" PRId64 "; delivered at %d/%" PRId64 ")", i, p,
                 m->offset, g_dr_part[i], g_dr_off[i]);
        } else {
            seen[i] = 1;
            got++;
            size_t wl = value_of(i, want, sizeof want);
            char key[32];
            int kl = snprintf(key, sizeof key, "key-%d", i % NKEYS);
            if (m->len != wl || memcmp(m->payload, want, wl) != 0)
                fail("content", "record %d: value differs", i);
            if (m->key_len != (size_t)kl || memcmp(m->key, key, (size_t)kl) != 0)
                fail("content", "record %d: key differs", i);
            if (p != g_dr_part[i] || m->offset != g_dr_off[i])
                fail("misplaced", "record %d at partition %d offset %" PRId64 ", its delivery report said %d/%" PRId64, i, p,
                     m->offset, g_dr_part[i], g_dr_off[i]);
            if (p >= 0 && p < MAX_PARTS) {
                if (m->offset <= last_off[p] || i <= last_idx[p])
                    fail("order", "partition %d: record %d at offset %" PRId64 " after record %d at %" PRId64, p, i, m->offset,
                         last_idx[p], last_off[p]);
                last_off[p] = m->offset;
                last_idx[p] = i;
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (got < g_n) {
        int shown = 0;
        for (int i = 0; i < g_n && shown < 5; i++)
            if (!seen[i] && ++shown)
                fail("missing", "record %d (delivered at partition %d offset %" PRId64 ") never consumed", i, g_dr_part[i],
                     g_dr_off[i]);
        fail("missing", "%d of %d records consumed in 120 s", got, g_n);
    }
    fprintf(stderr, "rdk_idempotent: consumed %d records from %d partition(s) in %.2f s\n", got, nparts, now_s() - t0);
    free(seen);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
    usage:
        fprintf(stderr, "usage: rdk_idempotent BOOTSTRAP TOPIC N [--cut-every K] [--max-cuts M]\n");
        return 2;
    }
    g_bootstrap = argv[1];
    g_topic = argv[2];
    g_n = atoi(argv[3]);
    if (g_n < 1 || g_n > 10000000)
        goto usage;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--cut-every") && i + 1 < argc)
            g_cut_every = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-cuts") && i + 1 < argc)
            g_max_cuts = atoi(argv[++i]);
        else
            goto usage;
    }
    g_dr_part = calloc((size_t)g_n, sizeof *g_dr_part);
    g_dr_off = calloc((size_t)g_n, sizeof *g_dr_off);
    g_dr_err = malloc((size_t)g_n * sizeof *g_dr_err);
    if (!g_dr_part || !g_dr_off || !g_dr_err)
        return 1;
    for (int i = 0; i < g_n; i++)
        g_dr_err[i] = -1000, g_dr_part[i] = -1, g_dr_off[i] = -1;
    produce();
    consume();
    free(g_dr_part);
    free(g_dr_off);
    free(g_dr_err);
    if (g_failures) {
        fail_summary();
        return 1;
    }
    fprintf(stderr, "rdk_idempotent: ok\n");
    return 0;
}
