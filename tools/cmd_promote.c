/*
 * tools/cmd_promote.c - `klog promote`: make a replicated node (klog serve
 * --peers) the leader of its cluster, in new epochs that fence the old
 * leader.  Public API only (klog/replication.h).
 */
#include <stdlib.h>
#include <string.h>

#include <klog/replication.h>

#include "cli.h"

static const char promote_help[] =
    "Usage: klog promote --bootstrap-server HOST:PORT [--unclean] [--timeout-ms MS]\n"
    "\n"
    "Make the replicated node at HOST:PORT (klog serve --node-id N --peers ...)\n"
    "the leader of every partition and the cluster's controller, in new epochs:\n"
    "the other nodes follow it as soon as it reaches them, and an old leader that\n"
    "comes back becomes a follower and gives up what only it had written.\n"
    "\n"
    "No acknowledged (acks=all) record is lost when the node is an in-sync\n"
    "replica of every partition and the old leader is down, or cut off from every\n"
    "other node; the node refuses otherwise (exit 1), unless --unclean.\n"
    "\n"
    "  --bootstrap-server HOST:PORT   the node to promote (tcp://HOST:PORT,\n"
    "                                 unix:///PATH)\n"
    "  --unclean              promote even a node that is not in sync: records\n"
    "                         only the others held are lost\n"
    "  --timeout-ms MS        for the connection and the answer (default 10000)\n"
    "  -h, --help             this help\n";

enum { O_BOOT = 300, O_UNCLEAN, O_TIMEOUT };

static const struct option promote_opts[] = {
    { "help", no_argument, NULL, 'h' },
    { "bootstrap-server", required_argument, NULL, O_BOOT },
    { "unclean", no_argument, NULL, O_UNCLEAN },
    { "timeout-ms", required_argument, NULL, O_TIMEOUT },
    { NULL, 0, NULL, 0 },
};

extern const char *cli_global_bootstrap;

int cmd_promote(int argc, char **argv)
{
    const char *ctx = "promote", *url = cli_global_bootstrap;
    unsigned flags = 0;
    int64_t timeout = 10000;
    int c;
    while ((c = cli_getopt(argc, argv, "h", promote_opts, ctx, promote_help)) != -1) {
        switch (c) {
        case 'h': fputs(promote_help, stdout); return CLI_OK;
        case O_BOOT: url = optarg; break;
        case O_UNCLEAN: flags |= KLOG_PROMOTE_UNCLEAN; break;
        case O_TIMEOUT:
            if (!cli_i64(optarg, &timeout) || timeout < 1 || timeout > 3600000)
                return cli_usage(ctx, "promote", "--timeout-ms: a number of milliseconds, 1 to 3600000");
            break;
        default: return CLI_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage(ctx, "promote", "unexpected argument '%s'", argv[optind]);
    if (!url)
        return cli_usage(ctx, "promote", "--bootstrap-server HOST:PORT names the node to promote");
    if (strchr(url, ','))
        return cli_usage(ctx, "promote", "one node only: --bootstrap-server HOST:PORT");
    char eb[512] = "";
    int rc = klog_replication_promote_node(url, flags, (int)timeout, eb, sizeof eb);
    if (rc < 0)
        return cli_fail(ctx, "promoting", rc, eb);
    printf("klog promote: %s leads\n", url);
    return CLI_OK;
}
