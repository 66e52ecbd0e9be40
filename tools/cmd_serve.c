/*
 * tools/cmd_serve.c - `klog serve`: hold a data directory and serve it to
 * Kafka clients (kcat, librdkafka, kafka-python, confluent-kafka, kafkajs)
 * over the Kafka wire protocol, until SIGINT or SIGTERM.  Public API only
 * (klog/server.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <klog/server.h>

#include "remote.h"

static const char serve_help[] =
    "Usage: klog [-d DIR] serve --listen URL [--listen URL ...] [-X KEY=VALUE ...]\n"
    "                         [--node-id N --peers ID@HOST:PORT,ID@HOST:PORT,...]\n"
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
    "that klog produce, consume, topics and groups on DIR talk to it meanwhile.\n"
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
    "                         (the key replication.peers; see klog(7), REPLICATION)\n"
    "  -X, --set KEY=VALUE    configuration: server keys (socket.request.max.bytes,\n"
    "                         num.network.threads, auto.create.topics.enable,\n"
    "                         connections.max.idle.ms, node.id, advertised.host,\n"
    "                         max.connections, max.connections.per.ip), TLS keys\n"
    "                         (ssl.*), SASL and ACL keys (sasl.enabled.mechanisms,\n"
    "                         sasl.users.file, acl.file, super.users, ...),\n"
    "                         instance and topic defaults; see klog(7)\n"
    "  -q, --quiet            no log lines on stderr\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    "  -h, --help             this help\n";

enum { O_NODE_ID = 300, O_PEERS = 301 }; /* long only */

static const struct option serve_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "listen", required_argument, NULL, 'l' },
    { "set", required_argument, NULL, 'X' },
    { "quiet", no_argument, NULL, 'q' },
    { "node-id", required_argument, NULL, O_NODE_ID },
    { "peers", required_argument, NULL, O_PEERS },
    { NULL, 0, NULL, 0 },
};

#define MAX_LISTEN 16

static volatile sig_atomic_t reload_wanted;

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

int cmd_serve(int argc, char **argv)
{
    const char *ctx = "serve", *dir_opt = NULL;
    const char *urls[MAX_LISTEN];
    char *owned[MAX_LISTEN] = { 0 };
    int nurls = 0, st = CLI_OK, c;
    bool quiet = false;
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
            break;
        case O_NODE_ID:
        case O_PEERS: {
            char kv[600];
            snprintf(kv, sizeof kv, "%s=%s", c == O_NODE_ID ? "node.id" : "replication.peers", optarg);
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
    for (int i = 0; i < nl; i++)
        printf("klog serve: listening on %s\n", lurls[i]);
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
    klog_server_free(s);
    if ((rc = klog_close(k)) < 0)
        st = cli_fail(ctx, "closing the data directory", rc, NULL);
out:
    for (int i = 0; i < MAX_LISTEN; i++)
        free(owned[i]);
    klog_conf_free(conf);
    return st;
}
