/*
 * tools/cmd_acls.c - `klog acls add|list|remove`: the ACLs klog serve
 * enforces (acl.file, DIR/acls by default), with kafka-acls.sh's options.
 * Works beside a running server (the file is rewritten atomically under
 * its lock, which the server's CreateAcls/DeleteAcls take too; the server
 * reads it again on SIGHUP).  Links lib/server/acl.c, which is
 * self-contained.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "server/acl.h"
#include "server/secfile.h"

static const char acls_help[] =
    "Usage: klog [-d DIR] acls add|list|remove [OPTIONS]\n"
    "\n"
    "Manage the ACLs klog serve enforces once clients must authenticate\n"
    "(sasl.enabled.mechanisms, or ssl.client.auth=required); what no ACL allows\n"
    "is denied (allow.everyone.if.no.acl.found=false).  Kafka's model: a\n"
    "principal (User:NAME; User:* for everyone) from a host is allowed or denied\n"
    "an operation on topics, groups, the cluster or transactional ids, named\n"
    "literally (* is every name) or by prefix.  A running server reads the file\n"
    "again on SIGHUP; Kafka admin clients change the same ACLs with CreateAcls\n"
    "and DeleteAcls.\n"
    "\n"
    "  add      --allow-principal P | --deny-principal P, one --operation or more,\n"
    "           and one resource\n"
    "  list     the ACLs matching the options given (all without any)\n"
    "  remove   the ACLs matching the options given (at least one)\n"
    "\n"
    "  --allow-principal P    User:alice (add: allow; list/remove: match allow)\n"
    "  --deny-principal P     User:mallory (deny)\n"
    "  --principal P          list/remove: either permission\n"
    "  --operation OP         Read, Write, Create, Delete, Alter, Describe,\n"
    "                         ClusterAction, DescribeConfigs, AlterConfigs,\n"
    "                         IdempotentWrite, All; repeatable\n"
    "  --topic T | --group G | --cluster | --transactional-id ID\n"
    "  --resource-pattern-type literal|prefixed   (default literal; list/remove:\n"
    "                         any when not given; match: what applies to the name)\n"
    "  --host H               the client address (default *: every host)\n"
    "  --file FILE            the ACL file (default DIR/acls: acl.file)\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    "  -h, --help             this help\n";

static const struct option acls_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "file", required_argument, NULL, 'f' },
    { "allow-principal", required_argument, NULL, 'a' },
    { "deny-principal", required_argument, NULL, 'D' },
    { "principal", required_argument, NULL, 'p' },
    { "operation", required_argument, NULL, 'o' },
    { "topic", required_argument, NULL, 't' },
    { "group", required_argument, NULL, 'g' },
    { "cluster", no_argument, NULL, 'c' },
    { "transactional-id", required_argument, NULL, 'x' },
    { "resource-pattern-type", required_argument, NULL, 'P' },
    { "host", required_argument, NULL, 'H' },
    { NULL, 0, NULL, 0 },
};

#define MAX_OPS 16

int cmd_acls(int argc, char **argv)
{
    const char *ctx = "acls", *dir_opt = NULL, *file = NULL, *principal = NULL, *name = NULL, *host = NULL;
    int perm = KACL_PERM_ANY, res = KACL_RES_ANY, pattern = 0, ops[MAX_OPS], nops = 0, nres = 0, c;
    while ((c = cli_getopt(argc, argv, "hd:", acls_opts, ctx, acls_help)) != -1) {
        switch (c) {
        case 'h': fputs(acls_help, stdout); return CLI_OK;
        case 'd': dir_opt = optarg; break;
        case 'f': file = optarg; break;
        case 'a':
        case 'D':
        case 'p':
            if (principal)
                return cli_usage(ctx, "acls", "one principal at a time");
            principal = optarg;
            perm = c == 'a' ? KACL_ALLOW : c == 'D' ? KACL_DENY : KACL_PERM_ANY;
            break;
        case 'o':
            if (nops == MAX_OPS)
                return cli_usage(ctx, "acls", "at most %d operations", MAX_OPS);
            if (!(ops[nops] = kacl_op_of(optarg)) || ops[nops] == KACL_OP_ANY)
                return cli_usage(ctx, "acls", "--operation: unknown operation '%s'", optarg);
            nops++;
            break;
        case 't': res = KACL_RES_TOPIC, name = optarg, nres++; break;
        case 'g': res = KACL_RES_GROUP, name = optarg, nres++; break;
        case 'x': res = KACL_RES_TXN, name = optarg, nres++; break;
        case 'c': res = KACL_RES_CLUSTER, name = KACL_CLUSTER_NAME, nres++; break;
        case 'P':
            if (!(pattern = kacl_pat_of(optarg)))
                return cli_usage(ctx, "acls", "--resource-pattern-type: literal, prefixed, any or match");
            break;
        case 'H': host = optarg; break;
        default: return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage(ctx, "acls", "an action: add, list or remove");
    const char *action = argv[optind++];
    if (optind != argc)
        return cli_usage(ctx, "acls", "unexpected argument '%s'", argv[optind]);
    if (nres > 1)
        return cli_usage(ctx, "acls", "one resource at a time");
    char path[4200];
    if (!file) {
        const char *dir = cli_dir(ctx, "acls", dir_opt);
        if (!dir)
            return CLI_USAGE;
        snprintf(path, sizeof path, "%s/acls", dir);
        file = path;
    }
    char eb[512] = "", line[4 * KACL_FIELD_MAX];
    bool add = !strcmp(action, "add"), list = !strcmp(action, "list"), remove = !strcmp(action, "remove");
    if (!add && !list && !remove)
        return cli_usage(ctx, "acls", "unknown action '%s'", action);
    if (add) {
        if (!principal || perm == KACL_PERM_ANY)
            return cli_usage(ctx, "acls", "add needs --allow-principal or --deny-principal");
        if (!nops || !nres)
            return cli_usage(ctx, "acls", "add needs an --operation and a resource (--topic, --group, --cluster)");
        if (pattern == KACL_PAT_ANY || pattern == KACL_PAT_MATCH)
            return cli_usage(ctx, "acls", "add: --resource-pattern-type literal or prefixed");
    }
    if (remove && !principal && !nops && !nres && !host && !pattern)
        return cli_usage(ctx, "acls", "remove needs at least one option (all ACLs would go)");
    int lk = -1;
    if (!list && (lk = ksec_file_lock(file)) < 0)
        return cli_err(ctx, "%s.lock: %s", file, strerror(-lk));
    kacl_list l;
    int rc = kacl_load(file, &l, eb, sizeof eb);
    if (rc < 0) {
        if (lk >= 0)
            close(lk);
        return cli_err(ctx, "%s", eb);
    }
    int st = CLI_OK;
    if (add) {
        for (int i = 0; i < nops; i++) {
            kacl a = { .res_type = (int8_t)res, .pattern = (int8_t)(pattern ? pattern : KACL_PAT_LITERAL),
                       .op = (int8_t)ops[i], .perm = (int8_t)perm };
            snprintf(a.name, sizeof a.name, "%s", name);
            snprintf(a.principal, sizeof a.principal, "%s", principal);
            snprintf(a.host, sizeof a.host, "%s", host ? host : "*");
            const char *why = kacl_invalid(&a);
            if (why) {
                st = cli_usage(ctx, "acls", "%s", why);
                break;
            }
            if (kacl_list_add(&l, &a) < 0) {
                st = cli_err(ctx, "out of memory");
                break;
            }
        }
        if (st == CLI_OK && (rc = kacl_save(file, &l, eb, sizeof eb)) < 0)
            st = cli_err(ctx, "%s", eb);
    } else {
        kacl_filter f = { .res_type = (int8_t)res, .pattern = (int8_t)(pattern ? pattern : KACL_PAT_ANY),
                          .op = KACL_OP_ANY, .perm = (int8_t)perm, .name = name, .principal = principal,
                          .host = host };
        int nf = nops ? nops : 1;
        kacl_list gone = { 0 };
        for (int i = 0; i < nf; i++) {
            f.op = (int8_t)(nops ? ops[i] : KACL_OP_ANY);
            if (list) {
                for (size_t k = 0; k < l.n; k++)
                    if (kacl_matches(&l.v[k], &f))
                        kacl_list_add(&gone, &l.v[k]);
            } else {
                kacl_list_remove(&l, &f, &gone);
            }
        }
        for (size_t k = 0; k < gone.n; k++) {
            kacl_format(&gone.v[k], line, sizeof line);
            printf("%s\n", line);
        }
        if (remove && gone.n && (rc = kacl_save(file, &l, eb, sizeof eb)) < 0)
            st = cli_err(ctx, "%s", eb);
        kacl_list_free(&gone);
    }
    kacl_list_free(&l);
    if (lk >= 0)
        close(lk);
    return st;
}
