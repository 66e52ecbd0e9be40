/*
 * tools/cmd_users.c - `klog users add|delete|list`: the SASL users file
 * klog serve reads (sasl.users.file, DIR/users by default), holding SCRAM
 * credentials, never passwords.  Works beside a running server (the file
 * is rewritten atomically under its own lock; the server reads it again on
 * SIGHUP).  Links lib/server/scram.c, which is self-contained.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "server/scram.h"

static const char users_help[] =
    "Usage: klog [-d DIR] users add NAME [--iterations N] [--file FILE]\n"
    "       klog [-d DIR] users delete NAME [--file FILE]\n"
    "       klog [-d DIR] users list [--file FILE]\n"
    "\n"
    "Manage the SASL users klog serve authenticates (sasl.enabled.mechanisms):\n"
    "add reads the password from the first line of standard input (without echo\n"
    "on a terminal) and stores SCRAM-SHA-256 and SCRAM-SHA-512 credentials\n"
    "(salted, PBKDF2 with N iterations, 4096 by default), which PLAIN is checked\n"
    "against too; the password itself is not kept.  A running server reads the\n"
    "file again on SIGHUP.\n"
    "\n"
    "  --file FILE            the users file (default DIR/users: sasl.users.file)\n"
    "  --iterations N         PBKDF2 iterations, 4096 to 100000\n"
    "  -d, --dir DIR          data directory (default: $KLOG_DIR)\n"
    "  -h, --help             this help\n";

static const struct option users_opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "help", no_argument, NULL, 'h' },
    { "file", required_argument, NULL, 'f' },
    { "iterations", required_argument, NULL, 'i' },
    { NULL, 0, NULL, 0 },
};

/* The first line of stdin, without its newline. */
static int read_password(char *buf, size_t n)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fprintf(stderr, "Password: ");
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(buf, (int)n, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!got)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int cmd_users(int argc, char **argv)
{
    const char *ctx = "users", *dir_opt = NULL, *file = NULL;
    int iterations = 0, c;
    while ((c = cli_getopt(argc, argv, "hd:f:i:", users_opts, ctx, users_help)) != -1) {
        switch (c) {
        case 'h': fputs(users_help, stdout); return CLI_OK;
        case 'd': dir_opt = optarg; break;
        case 'f': file = optarg; break;
        case 'i':
            if (!cli_int(optarg, KSEC_ITERATIONS, KSEC_ITERATIONS_MAX, &iterations))
                return cli_usage(ctx, "users", "--iterations: %d to %d", KSEC_ITERATIONS, KSEC_ITERATIONS_MAX);
            break;
        default: return CLI_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage(ctx, "users", "an action: add, delete or list");
    const char *action = argv[optind++];
    char path[4200];
    if (!file) {
        const char *dir = cli_dir(ctx, "users", dir_opt);
        if (!dir)
            return CLI_USAGE;
        snprintf(path, sizeof path, "%s/users", dir);
        file = path;
    }
    char eb[512] = "";
    if (!strcmp(action, "list")) {
        if (optind != argc)
            return cli_usage(ctx, "users", "list takes no argument");
        ksec_users u;
        int rc = ksec_users_load(file, &u, eb, sizeof eb);
        if (rc < 0)
            return cli_err(ctx, "%s", eb);
        for (size_t i = 0; i < u.n; i++)
            printf("%s %s iterations=%d\n", u.v[i].name, ksec_mech_name(u.v[i].mech), u.v[i].iterations);
        ksec_users_free(&u);
        return CLI_OK;
    }
    if (optind + 1 != argc)
        return cli_usage(ctx, "users", "%s takes one NAME", action);
    const char *name = argv[optind];
    if (!strcmp(action, "add")) {
        char pw[1024];
        if (read_password(pw, sizeof pw) < 0 || !pw[0])
            return cli_err(ctx, "no password on standard input");
        int rc = ksec_users_set(file, name, pw, iterations, eb, sizeof eb);
        memset(pw, 0, sizeof pw);
        if (rc < 0)
            return rc == -EINVAL ? cli_usage(ctx, "users", "%s", eb) : cli_err(ctx, "%s", eb);
        return CLI_OK;
    }
    if (!strcmp(action, "delete")) {
        int rc = ksec_users_delete(file, name, eb, sizeof eb);
        return rc < 0 ? cli_err(ctx, "%s", eb) : CLI_OK;
    }
    return cli_usage(ctx, "users", "unknown action '%s'", action);
}
