/*
 * tools/cmd_serve.c - `klog serve`: hold a data directory and serve it to
 * Kafka clients (kcat, librdkafka, kafka-python, confluent-kafka, kafkajs)
 * over the Kafka wire protocol, until SIGINT or SIGTERM.  Public API only
 * (klog/server.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <klog/server.h>

#include "remote.h"

static const char serve_help[] =
    "Usage: klog [-d DIR] serve --listen URL [--listen URL ...] [-X KEY=VALUE ...]\n"
    "                         [--node-id N --peers ID@HOST:PORT,ID@HOST:PORT,...\n"
    "                          [--witnesses ID,...]]\n"
    "\n"
    "Hold DIR and serve it to Kafka clients over the Kafka wire protocol: point\n"
    "kcat -b, librdkafka's bootstrap.servers or kafka-python's bootstrap_servers\n"
    "at a --listen address.  Runs until SIGINT (Ctrl-C) or SIGTERM, then closes\n"
    "every connection and the directory cleanly.  The directory is created if\n"
    "it does not exist.  SIGHUP reads the TLS certificates, the SASL users and\n"
    "the ACLs again; connections stay up.\n"
    "\n"
    "Prints one line per listener once it listens, with any port 0 resolved:\n"
    "  klog serve: listening on tcp://127.0.0.1:9092\n"
    "and writes the same URLs into DIR/serve.listeners (removed when it stops), so\n"
    "that klog produce, consume, topics, groups and perf on DIR talk to it\n"
    "meanwhile.  It writes DIR/stats.json and DIR/stats.prom every 5 s\n"
    "(statistics.interval.ms; 0 turns them off), which 'klog stats' on DIR shows.\n"
    "\n"
    "  -l, --listen URL       tcp://HOST:PORT (HOST:PORT alone means tcp),\n"
    "                         tls://HOST:PORT (needs ssl.certificate.location and\n"
    "                         ssl.key.location), or unix:///PATH; repeatable\n"
    "                         (default tcp://127.0.0.1:9092)\n"
    "  --node-id N            this node's id (the server key node.id)\n"
    "  --peers LIST           replicate to peer processes: every node of the\n"
    "                         cluster as ID@HOST:PORT (or ID@URL), this one\n"
    "                         included, each at its first --listen address; the\n"
    "                         lowest id leads a new cluster (-X replication.leader=N\n"
    "                         names another), 'klog promote' moves leadership\n"
    "                         (the key replication.peers; see klog(7), REPLICATION);\n"
    "                         with 3 or more peers (and klog built with raft) a\n"
    "                         quorum controller elects leaders by itself instead\n"
    "                         (-X replication.controller=static|quorum chooses)\n"
    "  --witnesses LIST       quorum: the peers (ID,...) that vote but hold no\n"
    "                         data, the same list on every node: two data nodes\n"
    "                         and a witness fail over by themselves\n"
    "  -X, --set KEY=VALUE    configuration: server keys (socket.request.max.bytes,\n"
    "                         num.network.threads, auto.create.topics.enable,\n"
    "                         connections.max.idle.ms, node.id, advertised.host,\n"
    "                         max.connections, max.connections.per.ip), TLS keys\n"
    "                         (ssl.*), SASL and ACL keys (sasl.enabled.mechanisms,\n"
    "                         sasl.users.file, acl.file, super.users, ...),\n"
    "                         instance and topic defaults; see klog(7)\n"
    "  --metrics HOST:PORT    serve Prometheus metrics over HTTP at /metrics (the\n"
    "                         instance's, the server's, the groups' with\n"
    "                         kafka_exporter's names) and /healthz; prints\n"
    "                         'klog serve: metrics on http://HOST:PORT/metrics'\n"
    "  -q, --quiet            no log lines on stderr\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    "  -h, --help             this help\n";

enum { O_NODE_ID = 300, O_PEERS = 301, O_WITNESSES = 302 }; /* long only */

static const struct option serve_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "listen", required_argument, NULL, 'l' },
    { "set", required_argument, NULL, 'X' },
    { "quiet", no_argument, NULL, 'q' },
    { "node-id", required_argument, NULL, O_NODE_ID },
    { "peers", required_argument, NULL, O_PEERS },
    { "witnesses", required_argument, NULL, O_WITNESSES },
    { "metrics", required_argument, NULL, 'M' },
    { NULL, 0, NULL, 0 },
};

#define MAX_LISTEN 16

static volatile sig_atomic_t reload_wanted;

/* ---- --metrics: /metrics and /healthz over HTTP ---------------------------------
 *
 * One thread, one connection at a time (a scraper asks every few seconds):
 * the request line and headers (at most 8 KiB, 5 s), then the answer, then
 * close.  /metrics is klog_stats()'s Prometheus text, the server's
 * (klog_server_stats) and the groups' (with kafka_exporter's names too);
 * /healthz is "ok" while the server runs. */

struct metrics_http {
    int fd;
    klog *k;
    klog_server *s;
    pthread_t th;
    atomic_bool stop;
    char url[300];
};

static void http_send(int c, int status, const char *reason, const char *type, const char *body, size_t n,
                      bool head)
{
    char hdr[256];
    int hn = snprintf(hdr, sizeof hdr,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, reason, type, n);
    const char *parts[2] = { hdr, body };
    size_t lens[2] = { (size_t)hn, head ? 0 : n };
    for (int i = 0; i < 2; i++)
        for (size_t off = 0; off < lens[i];) {
            ssize_t w = send(c, parts[i] + off, lens[i] - off, MSG_NOSIGNAL);
            if (w <= 0)
                return;
            off += (size_t)w;
        }
}

static void metrics_serve(struct metrics_http *m, int c)
{
    struct timeval tv = { 5, 0 };
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char req[8192];
    size_t got = 0;
    req[0] = '\0';
    while (got < sizeof req - 1) {
        ssize_t r = recv(c, req + got, sizeof req - 1 - got, 0);
        if (r <= 0)
            return;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    char method[8] = "", path[256] = "";
    if (sscanf(req, "%7s %255s", method, path) != 2) {
        http_send(c, 400, "Bad Request", "text/plain", "bad request\n", 12, false);
        return;
    }
    bool head = !strcmp(method, "HEAD");
    if (strcmp(method, "GET") && !head) {
        http_send(c, 405, "Method Not Allowed", "text/plain", "GET only\n", 9, false);
        return;
    }
    char *q = strchr(path, '?');
    if (q)
        *q = '\0';
    if (!strcmp(path, "/healthz")) {
        http_send(c, 200, "OK", "text/plain", "ok\n", 3, head);
        return;
    }
    if (strcmp(path, "/metrics")) {
        http_send(c, 404, "Not Found", "text/plain", "try /metrics or /healthz\n", 25, false);
        return;
    }
    char *inst = NULL, *srv = NULL, *body = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&body, &n);
    if (!f) {
        http_send(c, 500, "Internal Server Error", "text/plain", "out of memory\n", 14, false);
        return;
    }
    if (klog_stats(m->k, KLOG_STATS_PROMETHEUS, &inst) == 0)
        fputs(inst, f);
    if (klog_server_stats(m->s, KLOG_STATS_PROMETHEUS, &srv) == 0)
        fputs(srv, f);
    cli_prom_groups(f, m->k, true);
    klog_free(inst);
    klog_free(srv);
    if (fclose(f) != 0 || !body) {
        free(body);
        http_send(c, 500, "Internal Server Error", "text/plain", "out of memory\n", 14, false);
        return;
    }
    http_send(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body, n, head);
    free(body);
}

static void *metrics_main(void *arg)
{
    struct metrics_http *m = arg;
    while (!atomic_load(&m->stop)) {
        struct pollfd p = { .fd = m->fd, .events = POLLIN };
        if (poll(&p, 1, 200) <= 0)
            continue;
        int c = accept4(m->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        metrics_serve(m, c);
        close(c);
    }
    return NULL;
}

/* Listen on HOST:PORT ([v6]:PORT; port 0: a free one) for --metrics. */
static int metrics_listen(struct metrics_http *m, const char *addr, char *err, size_t errsize)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host) {
        snprintf(err, errsize, "--metrics %s: not HOST:PORT", addr);
        return -EINVAL;
    }
    const char *h = addr;
    size_t hn = (size_t)(colon - addr);
    if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']')
        h++, hn -= 2;
    memcpy(host, h, hn);
    host[hn] = '\0';
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errsize, "--metrics %s: %s", addr, gai_strerror(rc));
        return -EINVAL;
    }
    m->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (m->fd >= 0)
        setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (m->fd < 0 || bind(m->fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(m->fd, 64) != 0) {
        rc = -errno;
        snprintf(err, errsize, "--metrics %s", addr);
        freeaddrinfo(ai);
        if (m->fd >= 0)
            close(m->fd);
        m->fd = -1;
        return rc;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getsockname(m->fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(m->url, sizeof m->url, ss.ss_family == AF_INET6 ? "http://[%s]:%d/metrics" : "http://%s:%d/metrics",
             ip, port);
    return 0;
}


static void on_hup(int sig)
{
    (void)sig;
    reload_wanted = 1;
}

static void quiet_log(void *opaque, const char *line)
{
    (void)opaque;
    (void)line;
}

/* The instance's own log (klog_set_log_cb): retention, the cleaner,
 * replication's truncations and unclean promotes; --quiet keeps the
 * warnings and errors. */
static void instance_log(void *opaque, int level, int err, const char *facility, const char *msg)
{
    (void)err;
    if (opaque && level > KLOG_LOG_WARNING)
        return;
    fprintf(stderr, "klog serve: %s: %s\n", facility, msg);
}

int cmd_serve(int argc, char **argv)
{
    const char *ctx = "serve", *dir_opt = NULL;
    const char *urls[MAX_LISTEN];
    char *owned[MAX_LISTEN] = { 0 };
    int nurls = 0, st = CLI_OK, c;
    const char *metrics_addr = NULL;
    struct metrics_http mh = { .fd = -1 };
    bool mh_started = false;
    bool quiet = false, stats_set = false;
    klog_conf *conf = NULL;
    if (klog_conf_new(&conf) < 0)
        return cli_err(ctx, "out of memory");
    while ((c = cli_getopt(argc, argv, "hd:l:X:q", serve_opts, ctx, serve_help)) != -1) {
        switch (c) {
        case 'h':
            fputs(serve_help, stdout);
            klog_conf_free(conf);
            return CLI_OK;
        case 'd': dir_opt = optarg; break;
        case 'q': quiet = true; break;
        case 'M': metrics_addr = optarg; break;
        case 'l':
            if (nurls == MAX_LISTEN) {
                st = cli_usage(ctx, "serve", "at most %d --listen addresses", MAX_LISTEN);
                goto out;
            }
            if (!strstr(optarg, "://") && strncmp(optarg, "unix:", 5) != 0) {
                size_t n = strlen(optarg) + 7;
                if (!(owned[nurls] = malloc(n))) {
                    st = cli_err(ctx, "out of memory");
                    goto out;
                }
                snprintf(owned[nurls], n, "tcp://%s", optarg);
                urls[nurls] = owned[nurls];
                nurls++;
            } else {
                urls[nurls++] = optarg;
            }
            break;
        case 'X':
            if ((st = cli_conf_kv(ctx, conf, optarg)) != CLI_OK)
                goto out;
            stats_set |= !strncmp(optarg, "statistics.interval.ms=", 23);
            break;
        case O_NODE_ID:
        case O_PEERS:
        case O_WITNESSES: {
            char kv[600];
            snprintf(kv, sizeof kv, "%s=%s",
                     c == O_NODE_ID ? "node.id" : c == O_PEERS ? "replication.peers" : "replication.witnesses", optarg);
            if ((st = cli_conf_kv(ctx, conf, kv)) != CLI_OK)
                goto out;
            break;
        }
        default:
            st = CLI_USAGE;
            goto out;
        }
    }
    if (optind < argc) {
        st = cli_usage(ctx, "serve", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (nurls == 0)
        urls[nurls++] = "tcp://127.0.0.1:9092";
    const char *dir = cli_dir(ctx, "serve", dir_opt);
    if (!dir) {
        st = CLI_USAGE;
        goto out;
    }
    /* DIR/stats.json and stats.prom every 5 s unless told otherwise:
     * `klog stats` on DIR shows them while the server holds it */
    if (!stats_set && (st = cli_conf_kv(ctx, conf, "statistics.interval.ms=5000")) != CLI_OK)
        goto out;
    klog *k = NULL;
    if ((st = cli_open(ctx, dir, true, conf, &k)) != CLI_OK)
        goto out;
    klog_server *s = NULL;
    char eb[256] = "";
    int rc = klog_server_new(&s, k, NULL, eb, sizeof eb); /* the keys given to klog_open */
    if (rc < 0) {
        st = cli_fail(ctx, "starting the server", rc, eb);
        klog_close(k);
        goto out;
    }
    if (quiet)
        klog_server_set_log_cb(s, quiet_log, NULL);
    klog_set_log_cb(k, instance_log, quiet ? (void *)1 : NULL);
    for (int i = 0; i < nurls; i++) {
        if ((rc = klog_server_listen(s, urls[i])) < 0) {
            char what[512];
            snprintf(what, sizeof what, "listening on %s", urls[i]);
            st = cli_fail(ctx, what, rc, NULL);
            klog_server_free(s);
            klog_close(k);
            goto out;
        }
    }
    if (metrics_addr) {
        char merr[512];
        mh.k = k;
        mh.s = s;
        if ((rc = metrics_listen(&mh, metrics_addr, merr, sizeof merr)) < 0) {
            st = cli_fail(ctx, merr, rc, NULL);
            klog_server_free(s);
            klog_close(k);
            goto out;
        }
    }
    cli_signals();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    if ((rc = klog_server_start(s)) < 0) {
        st = cli_fail(ctx, "starting the server", rc, NULL);
        klog_server_free(s);
        klog_close(k);
        goto out;
    }
    /* DIR/serve.listeners, before the lines a script waits for: the
     * klog commands run on DIR meanwhile find the server there */
    const char *lurls[64];
    int nl = 0;
    for (int i = 0; i < klog_server_listener_count(s) && nl < 64; i++)
        lurls[nl++] = klog_server_listener_url(s, i);
    if ((rc = cli_listeners_write(dir, lurls, nl)) < 0)
        fprintf(stderr, "klog serve: warning: writing %s/%s: %s (klog commands on the directory will not "
                "find this server)\n", dir, CLI_LISTENERS_FILE, strerror(-rc));
    if (mh.fd >= 0) {
        if (pthread_create(&mh.th, NULL, metrics_main, &mh) == 0)
            mh_started = true;
        else
            fprintf(stderr, "klog serve: --metrics: no thread for it\n");
    }
    for (int i = 0; i < nl; i++)
        printf("klog serve: listening on %s\n", lurls[i]);
    if (mh_started)
        printf("klog serve: metrics on %s\n", mh.url);
    fflush(stdout);
    while (!cli_stop) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        if (reload_wanted) {
            reload_wanted = 0;
            if ((rc = klog_server_reload(s, eb, sizeof eb)) < 0)
                fprintf(stderr, "klog serve: SIGHUP: reload failed, keeping what was loaded: %s\n",
                        eb[0] ? eb : klog_strerror(rc));
            else if (!quiet)
                fprintf(stderr, "klog serve: SIGHUP: reloaded certificates, users and ACLs\n");
        }
    }
    if (!quiet)
        fprintf(stderr, "klog serve: stopping\n");
    cli_listeners_remove(dir); /* still holding DIR: nobody else wrote it */
    if (mh_started) {
        atomic_store(&mh.stop, true);
        pthread_join(mh.th, NULL);
    }
    if (mh.fd >= 0)
        close(mh.fd);
    klog_server_free(s);
    if ((rc = klog_close(k)) < 0)
        st = cli_fail(ctx, "closing the data directory", rc, NULL);
out:
    for (int i = 0; i < MAX_LISTEN; i++)
        free(owned[i]);
    klog_conf_free(conf);
    return st;
}
