/*
 * bench/bench_tls.c - what TLS costs a `klog serve` client (issue 15,
 * "Measured"): one server with a plaintext and a TLS listener, one
 * librdkafka client at a time, plaintext and TLS runs alternating so that
 * both see the machine in the same state.  Ratios, not absolute figures,
 * are the result (the machine this runs on may be shared).
 *
 * Sections (--only NAME runs one):
 *   produce     N records of 100 bytes (no key) from one librdkafka
 *               producer, acks=1, linger.ms=5, batch.size=1000000: first
 *               produce call to flush() returning, over tcp:// and tls://.
 *   consume     one librdkafka consumer (assign, no group) reading them
 *               back from the start, in batches of up to 10,000 from its
 *               queue, touching one byte of each value.
 *   handshake   TLS connections set up per second: a fresh TLS 1.3
 *               handshake each time, and resuming the previous
 *               connection's session (its ticket), each connection
 *               sending one ApiVersions request and reading the answer.
 *
 * Throughput figures are the median of --reps runs (default 5) of each
 * leg.  Beside them, the CPU time per record the server (from /proc) and
 * the client (this process: librdkafka's threads) spent in the same legs:
 * on a shared machine the wall time per record can be many times their
 * sum, and then the throughput ratio measures the machine's scheduling
 * more than the transport; the CPU figures say what TLS costs each side.  --quick shrinks everything so that `meson test --suite bench`
 * checks only that it runs.  The target is printed beside the
 * ratio (TLS at least 0.7 of plaintext with AES-NI); nothing fails on it.
 * Certificates come from test/tls/mkcerts.sh; everything lives under
 * DIR/bench_tls.<pid>/, removed at the end.
 *
 *   bench_tls [--dir DIR] [--reps N] [--quick] [--only NAME]
 *   (KLOG_BIN in the environment overrides the klog tool it starts)
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench_util.h"

#define REPS_MAX 21

static struct {
    char dir[4096];
    int reps;
    bool quick;
    const char *only;
    long records;
    int conns;
} g = { .reps = 5, .records = 1000000, .conns = 300 };

static char g_tcp[256], g_tls[256], g_certs[4200];
static pid_t g_server = -1;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_tls: %s: %s\n", what, why);
    if (g_server > 0)
        kill(g_server, SIGKILL);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- klog serve with a tcp:// and a tls:// listener ------------------------------ */

static void server_start(void)
{
    const char *bin = getenv("KLOG_BIN");
    if (!bin || !*bin)
        bin = KLOG_CLI;
    char cmd[8600], dir[4200], cert[4300], key[4300];
    snprintf(cmd, sizeof cmd, "sh '%s' '%s' >/dev/null 2>&1", MKCERTS, g_certs);
    if (system(cmd) != 0)
        die("certificates", "test/tls/mkcerts.sh failed (the openssl command?)");
    snprintf(dir, sizeof dir, "%s/serve", g.dir);
    snprintf(cert, sizeof cert, "ssl.certificate.location=%s/server.pem", g_certs);
    snprintf(key, sizeof key, "ssl.key.location=%s/server.key", g_certs);
    char *argv[] = { (char *)bin, "-d", dir, "serve", "--listen", "tcp://127.0.0.1:0", "--listen",
                     "tls://127.0.0.1:0", "-X", cert, "-X", key, "-q", NULL };
    static const char *const schemes[] = { "tcp", "tls" };
    char addr[2][256];
    const char *why;
    g_server = bu_serve_start(argv, schemes, addr, 2, &why);
    if (g_server < 0)
        die("klog serve", why);
    snprintf(g_tcp, sizeof g_tcp, "%s", addr[0]);
    snprintf(g_tls, sizeof g_tls, "%s", addr[1]);
}

static void server_stop(void)
{
    if (g_server <= 0)
        return;
    int st = bu_child_stop(g_server);
    g_server = -1;
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("klog serve", "did not stop cleanly");
}

/* ---- librdkafka ------------------------------------------------------------------------ */

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK)
        die(k, err);
}

static rd_kafka_conf_t *client_conf(bool tls)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", tls ? g_tls : g_tcp);
    if (tls) {
        char ca[4300];
        snprintf(ca, sizeof ca, "%s/ca.pem", g_certs);
        set(c, "security.protocol", "ssl");
        set(c, "ssl.ca.location", ca);
    }
    return c;
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err)
        die("delivery", rd_kafka_err2str(m->err));
}

/* CPU seconds (user + system) of the server process and of this one (the
 * client: librdkafka's threads are ours), for what a leg cost each side. */
static double server_cpu(void)
{
    /* every thread's time on a CPU, in nanoseconds (schedstat), not the
     * 10 ms ticks of /proc/PID/stat: a leg's server share is a few of them */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)g_server);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[128];
        snprintf(p, sizeof p, "/proc/%d/task/%.32s/schedstat", (int)g_server, e->d_name);
        FILE *f = fopen(p, "r");
        unsigned long long ns = 0;
        if (f) {
            if (fscanf(f, "%llu", &ns) == 1)
                sum += (double)ns / 1e9;
            fclose(f);
        }
    }
    closedir(d);
    return sum;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU microseconds per record of the last leg: server, client. */
static double g_cpu_srv, g_cpu_cli;

/* Produce g.records records to topic; records per second. */
static double produce(bool tls, const char *topic)
{
    double s0 = 0, c0 = 0;
    rd_kafka_conf_t *c = client_conf(tls);
    set(c, "acks", "1");
    set(c, "linger.ms", "5");
    set(c, "batch.size", "1000000");
    set(c, "batch.num.messages", "10000");
    set(c, "queue.buffering.max.messages", "2000000");
    set(c, "queue.buffering.max.kbytes", "2097151");
    rd_kafka_conf_set_dr_msg_cb(c, on_dr);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk)
        die("producer", err);
    /* the topic and the connection first, outside the clock */
    if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_VALUE("warm", 4),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) ||
        rd_kafka_flush(rk, 60000))
        die("produce", "warm-up failed");
    char v[100];
    memset(v, 'x', sizeof v);
    s0 = server_cpu(), c0 = self_cpu();
    uint64_t t0 = now_ns();
    for (long i = 0; i < g.records; i++) {
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                      RD_KAFKA_V_VALUE(v, sizeof v), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 1);
        if (e)
            die("produce", rd_kafka_err2str(e));
    }
    if (rd_kafka_flush(rk, 300000))
        die("produce", "flush timed out");
    double s = (double)(now_ns() - t0) / 1e9;
    g_cpu_srv = (server_cpu() - s0) * 1e6 / (double)g.records;
    g_cpu_cli = (self_cpu() - c0) * 1e6 / (double)g.records;
    rd_kafka_destroy(rk);
    return (double)g.records / s;
}

/* Read the records of topic back; records per second. */
static double consume(bool tls, const char *topic)
{
    double s0 = server_cpu(), c0 = self_cpu();
    rd_kafka_conf_t *c = client_conf(tls);
    set(c, "group.id", "bench-tls");
    set(c, "enable.auto.commit", "false");
    set(c, "fetch.max.bytes", "52428800");
    set(c, "max.partition.fetch.bytes", "10485760");
    set(c, "fetch.wait.max.ms", "100");
    set(c, "queued.min.messages", "1000000");
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk)
        die("consumer", err);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    /* offset 0, not OFFSET_BEGINNING: librdkafka's query for a logical
     * offset can wait out a 500 ms retry timer when it races the
     * partition's broker thread (bench_serve.c says the same), a third of
     * a run here, which made the first version of this bench measure
     * that timer more than the transport */
    rd_kafka_topic_partition_list_add(tp, topic, 0)->offset = 0;
    if (rd_kafka_assign(rk, tp))
        die("consumer", "assign failed");
    rd_kafka_topic_partition_list_destroy(tp);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    long want = g.records + 1, got = 0;
    uint64_t t0 = now_ns(), end = t0 + 300000000000ull;
    volatile unsigned sum = 0;
    static rd_kafka_message_t *msgs[10000];
    while (got < want && now_ns() < end) {
        /* never more than are left: consume_batch_queue waits out its
         * timeout for a batch it cannot fill, which was a second of every
         * run of the first version (a fixed wait that hid the transport) */
        size_t ask = want - got < 10000 ? (size_t)(want - got) : 10000;
        ssize_t n = rd_kafka_consume_batch_queue(q, 1000, msgs, ask);
        for (ssize_t i = 0; i < n; i++) {
            if (!msgs[i]->err) {
                got++;
                sum += ((const unsigned char *)msgs[i]->payload)[0];
            }
            rd_kafka_message_destroy(msgs[i]);
        }
    }
    (void)sum; /* read, so that clang sees it used: the sum only keeps the payload reads */
    rd_kafka_queue_destroy(q);
    double s = (double)(now_ns() - t0) / 1e9;
    g_cpu_srv = (server_cpu() - s0) * 1e6 / (double)(got ? got : 1);
    g_cpu_cli = (self_cpu() - c0) * 1e6 / (double)(got ? got : 1);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (got < want)
        die("consume", "not every record came back within 300 s");
    return (double)got / s;
}

/* ---- TLS handshakes ------------------------------------------------------------------------ */

static int tcp_connect(const char *hostport)
{
    char host[128];
    const char *colon = strrchr(hostport, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)) };
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("connect", strerror(errno));
    return fd;
}

/* ApiVersions v0 and its answer, over ssl (which also reads the session
 * tickets the server sent after its handshake). */
static void api_versions(SSL *ssl)
{
    static const unsigned char req[] = { 0, 0, 0, 14, 0, 18, 0, 0, 0, 0, 0, 1, 0, 4, 'b', 'e', 'n', 'c' };
    if (SSL_write(ssl, req, sizeof req) != (int)sizeof req)
        die("handshake", "write failed");
    unsigned char len[4];
    if (SSL_read(ssl, len, 4) != 4)
        die("handshake", "no answer");
    uint32_t n = (uint32_t)len[0] << 24 | (uint32_t)len[1] << 16 | (uint32_t)len[2] << 8 | len[3];
    unsigned char buf[4096];
    while (n > 0) {
        int r = SSL_read(ssl, buf, (int)(n < sizeof buf ? n : sizeof buf));
        if (r <= 0)
            die("handshake", "short answer");
        n -= (uint32_t)r;
    }
}

/* Connections per second; resumed counts the handshakes that resumed. */
static double handshakes(SSL_CTX *ctx, bool resume, int *resumed)
{
    SSL_SESSION *sess = NULL;
    *resumed = 0;
    uint64_t t0 = now_ns();
    for (int i = 0; i < g.conns; i++) {
        int fd = tcp_connect(g_tls);
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set_tlsext_host_name(ssl, "localhost");
        if (resume && sess)
            SSL_set_session(ssl, sess);
        if (SSL_connect(ssl) != 1)
            die("handshake", ERR_error_string(ERR_get_error(), NULL));
        api_versions(ssl);
        if (SSL_session_reused(ssl))
            (*resumed)++;
        if (resume) {
            SSL_SESSION_free(sess);
            sess = SSL_get1_session(ssl);
        }
        SSL_shutdown(ssl);
        SSL_free(ssl);
        close(fd);
    }
    double s = (double)(now_ns() - t0) / 1e9;
    SSL_SESSION_free(sess);
    return g.conns / s;
}

/* ---- main -------------------------------------------------------------------------------- */

static bool wanted(const char *name)
{
    return !g.only || !strcmp(g.only, name);
}

int main(int argc, char **argv)
{
    snprintf(g.dir, sizeof g.dir, "%s", "/tmp");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            snprintf(g.dir, sizeof g.dir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            g.reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            g.only = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            g.quick = true;
        else {
            fprintf(stderr, "usage: bench_tls [--dir DIR] [--reps N] [--quick] [--only produce|consume|handshake]\n");
            return 2;
        }
    }
    if (g.reps < 1 || g.reps > REPS_MAX)
        g.reps = 5;
    if (g.quick) {
        g.reps = 1;
        g.records = 20000;
        g.conns = 20;
    }
    signal(SIGPIPE, SIG_IGN);
    char base[4096];
    if (snprintf(base, sizeof base, "%.4000s/bench_tls.%d", g.dir, (int)getpid()) >= (int)sizeof base)
        die(g.dir, "path too long");
    memcpy(g.dir, base, sizeof base);
    char cmd[8500];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", g.dir);
    if (system(cmd) != 0)
        die(g.dir, "cannot create it");
    snprintf(g_certs, sizeof g_certs, "%s/certs", g.dir);
    server_start();
    printf("bench_tls: klog serve on tcp://%s and tls://%s; %ld records of 100 bytes, %d runs of each\n", g_tcp,
           g_tls, g.records, g.reps);
    double tp[2][REPS_MAX], tc[2][REPS_MAX], cs[2][REPS_MAX], cc[2][REPS_MAX], ps[2][REPS_MAX],
        pc[2][REPS_MAX];
    char topic[2][REPS_MAX][64];
    for (int r = 0; r < g.reps; r++)
        for (int k = 0; k < 2; k++) {
            /* alternate which goes first */
            int leg = (r % 2) ? 1 - k : k;
            snprintf(topic[leg][r], sizeof topic[leg][r], "bench-%s-%d", leg ? "tls" : "tcp", r);
            if (wanted("produce") || wanted("consume"))
                tp[leg][r] = produce(leg == 1, topic[leg][r]);
            ps[leg][r] = g_cpu_srv;
            pc[leg][r] = g_cpu_cli;
        }
    if (wanted("produce")) {
        double a = median(tp[0], g.reps), b = median(tp[1], g.reps);
        printf("produce    plaintext %10.0f rec/s %7.1f MB/s   TLS %10.0f rec/s %7.1f MB/s   TLS/plaintext %.2f "
               "(target >= 0.7)\n", a, a * 100 / 1e6, b, b * 100 / 1e6, b / a);
        printf("produce    CPU us/record: server plaintext %.3f TLS %.3f, client plaintext %.3f TLS %.3f; "
               "wall us/record plaintext %.3f TLS %.3f\n", median(ps[0], g.reps), median(ps[1], g.reps),
               median(pc[0], g.reps), median(pc[1], g.reps), 1e6 / a, 1e6 / b);
    }
    if (wanted("consume")) {
        for (int r = 0; r < g.reps; r++)
            for (int k = 0; k < 2; k++) {
                int leg = (r % 2) ? 1 - k : k;
                tc[leg][r] = consume(leg == 1, topic[leg][r]);
                cs[leg][r] = g_cpu_srv;
                cc[leg][r] = g_cpu_cli;
            }
        double a = median(tc[0], g.reps), b = median(tc[1], g.reps);
        printf("consume    plaintext %10.0f rec/s %7.1f MB/s   TLS %10.0f rec/s %7.1f MB/s   TLS/plaintext %.2f "
               "(target >= 0.7)\n", a, a * 100 / 1e6, b, b * 100 / 1e6, b / a);
        printf("consume    CPU us/record: server plaintext %.3f TLS %.3f, client plaintext %.3f TLS %.3f; "
               "wall us/record plaintext %.3f TLS %.3f\n", median(cs[0], g.reps), median(cs[1], g.reps),
               median(cc[0], g.reps), median(cc[1], g.reps), 1e6 / a, 1e6 / b);
    }
    if (wanted("handshake")) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        char ca[4300];
        snprintf(ca, sizeof ca, "%s/ca.pem", g_certs);
        if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
            die("TLS context", "cannot load the CA");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
        double full[REPS_MAX], res[REPS_MAX];
        int nres = 0;
        for (int r = 0; r < g.reps; r++) {
            int x;
            full[r] = handshakes(ctx, false, &x);
            res[r] = handshakes(ctx, true, &x);
            nres += x;
        }
        double a = median(full, g.reps), b = median(res, g.reps);
        printf("handshake  TLS 1.3 full %8.0f conn/s   resumed %8.0f conn/s (%d of %d resumed)   resumed/full %.2f\n",
               a, b, nres, g.reps * g.conns, b / a);
        SSL_CTX_free(ctx);
        if (nres < g.reps * (g.conns - 1))
            die("handshake", "sessions were not resumed");
    }
    server_stop();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_tls: could not remove %s\n", g.dir);
    return 0;
}
