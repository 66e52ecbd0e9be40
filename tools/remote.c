/*
 * tools/remote.c - deciding between the data directory and a server
 * (remote.h): the listeners file klog serve writes, --bootstrap-server,
 * a TCP probe that fails fast where nothing listens, and the
 * --command-config properties file.  No librdkafka here: this part is
 * built with or without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "remote.h"

const char *cli_global_bootstrap;
const char *cli_global_command_config;

void cli_remote_option(int c, const char *arg)
{
    if (c == O_BOOTSTRAP)
        cli_global_bootstrap = arg;
    else if (c == O_CMDCONFIG)
        cli_global_command_config = arg;
}

void cli_remote_free(cli_remote *r)
{
    if (!r)
        return;
    free(r->bootstrap);
    free(r->origin);
    free(r);
}

static int listeners_path(char *buf, size_t size, const char *dir, const char *suffix)
{
    int n = snprintf(buf, size, "%s/%s%s", dir, CLI_LISTENERS_FILE, suffix);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int cli_listeners_write(const char *dir, const char *const *urls, int n)
{
    char path[4096], tmp[4096];
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".tmp.%ld", (long)getpid());
    if (listeners_path(path, sizeof path, dir, "") < 0 || listeners_path(tmp, sizeof tmp, dir, suffix) < 0)
        return -ENAMETOOLONG;
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f, "# klog serve (pid %ld) listens here while it holds this directory; removed when it stops\n",
            (long)getpid());
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\n", urls[i]);
    int rc = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

void cli_listeners_remove(const char *dir)
{
    char path[4096];
    if (listeners_path(path, sizeof path, dir, "") == 0)
        unlink(path);
}

/* ---- addresses ---------------------------------------------------------------------- */

/* Split "host:port" / "[v6]:port" into host (brackets removed) and port.
 * Returns false when it is not that shape. */
static bool split_hostport(const char *hp, char *host, size_t hsize, char *port, size_t psize)
{
    const char *colon;
    const char *h = hp;
    size_t hl;
    if (*hp == '[') {
        const char *close = strchr(hp, ']');
        if (!close || close[1] != ':')
            return false;
        h = hp + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(hp, ':');
        if (!colon)
            return false;
        hl = (size_t)(colon - hp);
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (hl >= hsize || pl == 0 || pl >= psize || strspn(p, "0123456789") != pl)
        return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return true;
}

/*
 * Try a TCP connection to host:port within ms milliseconds.  Returns 0 when
 * one is established, else -errno of the last attempt (-ETIMEDOUT when it
 * did not complete in time, -EHOSTUNREACH...), or a getaddrinfo failure
 * as -EADDRNOTAVAIL with why set.
 */
static int probe(const char *hostport, int ms, const char **why)
{
    char host[256], port[16];
    *why = NULL;
    if (!split_hostport(hostport, host, sizeof host, port, sizeof port)) {
        *why = "not HOST:PORT";
        return -EINVAL;
    }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC }, *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        *why = gai_strerror(g);
        return -EADDRNOTAVAIL;
    }
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            close(fd);
            rc = 0;
            break;
        }
        if (errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            continue;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        int n;
        do
            n = poll(&pfd, 1, ms);
        while (n < 0 && errno == EINTR && !cli_stop);
        if (n == 0) {
            rc = -ETIMEDOUT;
        } else if (n < 0) {
            rc = -errno;
        } else {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            rc = -err;
        }
        close(fd);
        if (rc == 0)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

/* Probe every address of a bootstrap list: CLI_OK when one answers; else
 * prints "<origin> does not answer: host:port: why" and returns status. */
static int probe_all(const char *ctx, const cli_remote *r, int status)
{
    char *list = strdup(r->bootstrap), *save = NULL;
    if (!list)
        return cli_err(ctx, "out of memory");
    char first[300] = "";
    const char *why = NULL;
    int rc = -ECONNREFUSED;
    for (char *hp = strtok_r(list, ",", &save); hp; hp = strtok_r(NULL, ",", &save)) {
        while (*hp == ' ')
            hp++;
        if ((rc = probe(hp, REMOTE_CONNECT_MS, &why)) == 0)
            break;
        if (!*first)
            snprintf(first, sizeof first, "%s: %s", hp, why ? why : strerror(-rc));
    }
    free(list);
    if (rc == 0)
        return CLI_OK;
    if (r->from_listeners)
        fprintf(stderr,
                "klog: %s: the data directory is locked by another process, and %s does not answer "
                "(%s): a file left by a server that was killed?\n", ctx, r->origin, first);
    else
        fprintf(stderr, "klog: %s: %s does not answer (%s)\n", ctx, r->origin, first);
    return status;
}

/* "tcp://0.0.0.0:9092" -> "127.0.0.1:9092"; false for a URL a Kafka client
 * cannot use (unix://). */
static bool url_to_hostport(const char *url, char *out, size_t size, bool *tls)
{
    const char *hp;
    *tls = false;
    if (!strncmp(url, "tcp://", 6)) {
        hp = url + 6;
    } else if (!strncmp(url, "tls://", 6) || !strncmp(url, "ssl://", 6)) {
        hp = url + 6;
        *tls = true;
    } else {
        return false;
    }
    char host[256], port[16];
    if (!split_hostport(hp, host, sizeof host, port, sizeof port))
        return false;
    /* a wildcard address listens on loopback too */
    const char *h = host;
    bool v6 = strchr(host, ':') != NULL;
    if (!*host || !strcmp(host, "0.0.0.0"))
        h = "127.0.0.1", v6 = false;
    else if (!strcmp(host, "::"))
        h = "::1";
    int n = snprintf(out, size, v6 ? "[%s]:%s" : "%s:%s", h, port);
    return n > 0 && (size_t)n < size;
}

/* Read DIR/serve.listeners into a cli_remote.  Returns CLI_OK (with *out
 * set, or NULL when there is no file), or an exit status after an error. */
static int read_listeners(const char *ctx, const char *dir, cli_remote **out)
{
    *out = NULL;
    char path[4096];
    if (listeners_path(path, sizeof path, dir, "") < 0)
        return CLI_OK;
    FILE *f = fopen(path, "re");
    if (!f)
        return CLI_OK; /* none (or unreadable): no server to talk to */
    cli_remote *r = calloc(1, sizeof *r);
    size_t cap = 0, len = 0;
    char *line = NULL, first_url[512] = "";
    int skipped = 0, lines = 0;
    if (!r) {
        fclose(f);
        return cli_err(ctx, "out of memory");
    }
    r->from_listeners = true;
    ssize_t n;
    /* a handful of URLs: cap what a damaged file can make us hold */
    while ((n = getline(&line, &cap, f)) >= 0 && lines++ < 64) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char hp[300];
        bool tls;
        if (!url_to_hostport(line, hp, sizeof hp, &tls)) {
            skipped++;
            continue;
        }
        if (!*first_url)
            snprintf(first_url, sizeof first_url, "%s", line);
        r->tls = r->tls || tls;
        char *nb = realloc(r->bootstrap, len + strlen(hp) + 2);
        if (!nb) {
            free(line);
            fclose(f);
            cli_remote_free(r);
            return cli_err(ctx, "out of memory");
        }
        r->bootstrap = nb;
        len += (size_t)sprintf(r->bootstrap + len, "%s%s", len ? "," : "", hp);
    }
    free(line);
    fclose(f);
    if (!r->bootstrap) {
        cli_remote_free(r);
        if (skipped)
            return cli_err(ctx, "%s: the klog serve that holds the directory listens on no tcp:// address "
                                "(a Kafka client cannot use unix:// sockets): give --bootstrap-server", path);
        return CLI_OK; /* an empty file: as if none */
    }
    size_t ol = strlen(first_url) + strlen(path) + 64;
    if (!(r->origin = malloc(ol))) {
        cli_remote_free(r);
        return cli_err(ctx, "out of memory");
    }
    snprintf(r->origin, ol, "klog serve at %s (from %s)", first_url, path);
    *out = r;
    return CLI_OK;
}

bool cli_target_read_only;

int cli_target(const char *ctx, const char *help, const char *opt_dir, bool create, const klog_conf *conf,
               klog **k, cli_remote **remote)
{
    *k = NULL;
    *remote = NULL;
    if (cli_global_bootstrap) {
        /* HOST:PORT[,HOST:PORT...], each well formed */
        const char *b = cli_global_bootstrap;
        size_t bl = strlen(b);
        bool well_formed = bl > 0 && b[bl - 1] != ',';
        while (well_formed && *b) {
            size_t n = strcspn(b, ",");
            char hp[300], host[256], port[16];
            well_formed = n > 0 && n < sizeof hp;
            if (well_formed) {
                memcpy(hp, b, n);
                hp[n] = '\0';
                well_formed = split_hostport(hp, host, sizeof host, port, sizeof port) && *host;
            }
            b += n + (b[n] == ',');
        }
        if (!well_formed)
            return cli_usage(ctx, help, "--bootstrap-server '%s': expected HOST:PORT[,HOST:PORT...]",
                             cli_global_bootstrap);
        cli_remote *r = calloc(1, sizeof *r);
        if (!r || !(r->bootstrap = strdup(cli_global_bootstrap)) ||
            !(r->origin = malloc(strlen(cli_global_bootstrap) + 32))) {
            cli_remote_free(r);
            return cli_err(ctx, "out of memory");
        }
        sprintf(r->origin, "--bootstrap-server %s", cli_global_bootstrap);
        r->command_config = cli_global_command_config;
        int st = probe_all(ctx, r, CLI_FAIL);
        if (st != CLI_OK) {
            cli_remote_free(r);
            return st;
        }
        *remote = r;
        return CLI_OK;
    }
    const char *dir = cli_dir(ctx, help, opt_dir);
    if (!dir)
        return CLI_USAGE;
    struct stat st;
    if (!create) {
        if (stat(dir, &st) != 0)
            return cli_err(ctx, "%s: %s", dir, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return cli_err(ctx, "%s: not a directory", dir);
    }
    char err[512] = "";
    int rc = klog_open(k, dir, conf, err, sizeof err);
    if (rc == 0) {
        /* We hold the directory: a listeners file is a killed server's. */
        cli_listeners_remove(dir);
        return CLI_OK;
    }
    *k = NULL;
    if (rc != KLOG_ELOCKED)
        return cli_fail(ctx, dir, rc, err);
    cli_remote *r = NULL;
    int s = read_listeners(ctx, dir, &r);
    if (s != CLI_OK)
        return s;
    if (!r && cli_target_read_only) {
        /* held by an application, not by a server: read beside it */
        klog_conf *ro = NULL;
        int e = conf ? klog_conf_dup(conf, &ro) : klog_conf_new(&ro);
        if (e == 0)
            e = klog_conf_set(ro, "read.only", "true", err, sizeof err);
        if (e == 0)
            e = klog_open(k, dir, ro, err, sizeof err);
        klog_conf_free(ro);
        if (e < 0) {
            *k = NULL;
            return cli_fail(ctx, dir, e, err);
        }
        fprintf(stderr, "klog: %s: %s is held by another process: reading it read-only\n", ctx, dir);
        return CLI_OK;
    }
    if (!r)
        return cli_fail(ctx, dir, rc, NULL);
    r->command_config = cli_global_command_config;
    if ((s = probe_all(ctx, r, CLI_LOCKED)) != CLI_OK) {
        cli_remote_free(r);
        return s;
    }
    *remote = r;
    return CLI_OK;
}

/* ---- properties ----------------------------------------------------------------------- */

int cli_props_add(const char *ctx, cli_props *p, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        fprintf(stderr, "klog: %s: '%s': expected key=value\n", ctx, kv);
        return CLI_USAGE;
    }
    if (p->n == (int)(sizeof p->kv / sizeof p->kv[0])) {
        fprintf(stderr, "klog: %s: too many -X options\n", ctx);
        return CLI_USAGE;
    }
    p->kv[p->n++] = kv;
    return CLI_OK;
}

/* The value of name="..." (or name=word) in a JAAS line, into out. */
static bool jaas_value(const char *jaas, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    for (const char *p = jaas; (p = strstr(p, name)) != NULL; p += nl) {
        if (p > jaas && p[-1] != ' ' && p[-1] != '\t')
            continue;
        const char *q = p + nl;
        while (*q == ' ')
            q++;
        if (*q++ != '=')
            continue;
        while (*q == ' ')
            q++;
        size_t n;
        if (*q == '"') {
            q++;
            const char *end = strchr(q, '"');
            if (!end)
                return false;
            n = (size_t)(end - q);
        } else {
            n = strcspn(q, " ;\t");
        }
        if (n >= size)
            return false;
        memcpy(out, q, n);
        out[n] = '\0';
        return true;
    }
    return false;
}

#define PROPS_FILE_MAX (1 << 20)

int cli_props_file(const char *ctx, const char *path,
                   int (*fn)(void *arg, const char *key, const char *value), void *arg)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return cli_err(ctx, "--command-config %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size > PROPS_FILE_MAX) {
        fclose(f);
        return cli_err(ctx, "--command-config %s: larger than %d bytes: not a properties file", path,
                       PROPS_FILE_MAX);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = CLI_OK;
    while (rc == CLI_OK && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        char *k = line;
        while (*k == ' ' || *k == '\t' || *k == '\f')
            k++;
        if (!*k || *k == '#' || *k == '!')
            continue;
        size_t kl = strcspn(k, "=: \t");
        char *v = k + kl;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v == '=' || *v == ':')
            v++;
        while (*v == ' ' || *v == '\t')
            v++;
        k[kl] = '\0';
        if (!strcmp(k, "sasl.jaas.config")) {
            /* Kafka's Java form: ...LoginModule required username="u" password="p"; */
            char user[512], pass[512];
            if (!jaas_value(v, "username", user, sizeof user) || !jaas_value(v, "password", pass, sizeof pass)) {
                rc = cli_err(ctx, "--command-config %s:%d: sasl.jaas.config: no username=\"...\" "
                                  "password=\"...\" (give sasl.username and sasl.password instead)", path, lineno);
                break;
            }
            if ((rc = fn(arg, "sasl.username", user)) == CLI_OK)
                rc = fn(arg, "sasl.password", pass);
            explicit_bzero(pass, sizeof pass);
            continue;
        }
        rc = fn(arg, k, v);
    }
    if (line)
        explicit_bzero(line, cap);
    free(line);
    if (rc == CLI_OK && ferror(f))
        rc = cli_err(ctx, "--command-config %s: read error", path);
    fclose(f);
    return rc;
}
