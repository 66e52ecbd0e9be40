/*
 * examples/uplink.c - the stand-in upstream server of examples/iot_gateway.c.
 *
 * It listens on 127.0.0.1, takes one gateway connection at a time (a new
 * one replaces the old: a gateway killed with -9 may leave a half-open
 * connection behind), appends what it receives to an output file and
 * acknowledges it.  Stop it (SIGTERM) and start it again on the same port
 * to take the link down and bring it back.  It does not use klog.
 *
 *   uplink --out FILE [--port N] [--port-file FILE]
 *
 * The protocol is line-based, one message per line:
 *   gateway -> uplink
 *     R <partition> <offset> <key> <json>   a reading; the JSON holds "seq"
 *     G <partition> <from> <to> <start>     offsets from..to-1 of the
 *                                           partition were deleted (by the
 *                                           disk budget) before they could be
 *                                           forwarded; the log started at
 *                                           <start> when the gateway noticed
 *     S <token>                             sync: acknowledge what came before
 *   uplink -> gateway
 *     A <token>                             written to the output file
 *
 * The output file gets, in arrival order:
 *     c <n>                                 connection n accepted
 *     r <sensor> <seq> <partition> <offset> a reading
 *     g <partition> <from> <to> <start>     a gap notice
 * Everything before an "A" has been written (fflush) to the file.  On start
 * the file is read back, so the counts on exit (received, distinct,
 * duplicates) cover every run that appended to it.
 *
 * --port 0 (the default) takes any free port; --port-file receives its
 * number once the socket listens, so a script can wait for it.
 */
#include <arpa/inet.h>
#include <errno.h>
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
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LINE 65536
#define MAX_SENSORS 4096
#define MAX_SEQ ((uint64_t)1 << 32) /* beyond this, a reading is counted but not deduplicated */

static const char *prog = "uplink";
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* ---- readings seen: per sensor, a bitmap over its sequence numbers ----------------- */

typedef struct sensor {
    char *name;
    uint8_t *seen;     /* bit per seq */
    uint64_t cap;      /* bits */
} sensor;

typedef struct tally {
    sensor s[MAX_SENSORS];
    int nsensors;
    uint64_t received, distinct, duplicates, gaps, connections, untracked;
} tally;

/* Count one reading; false when out of memory or too many sensors. */
static bool tally_add(tally *t, const char *name, size_t name_len, uint64_t seq)
{
    t->received++;
    sensor *s = NULL;
    for (int i = 0; i < t->nsensors && !s; i++)
        if (strlen(t->s[i].name) == name_len && !memcmp(t->s[i].name, name, name_len))
            s = &t->s[i];
    if (!s) {
        if (t->nsensors == MAX_SENSORS)
            return false;
        s = &t->s[t->nsensors];
        if (!(s->name = strndup(name, name_len)))
            return false;
        t->nsensors++;
    }
    if (seq >= MAX_SEQ) {
        t->untracked++;
        return true;
    }
    if (seq >= s->cap) {
        uint64_t cap = s->cap ? s->cap : 4096;
        while (cap <= seq)
            cap *= 2;
        uint8_t *b = realloc(s->seen, (size_t)(cap / 8));
        if (!b)
            return false;
        memset(b + s->cap / 8, 0, (size_t)((cap - s->cap) / 8));
        s->seen = b;
        s->cap = cap;
    }
    uint8_t m = (uint8_t)(1u << (seq & 7));
    if (s->seen[seq >> 3] & m) {
        t->duplicates++;
    } else {
        s->seen[seq >> 3] |= m;
        t->distinct++;
    }
    return true;
}

static void tally_free(tally *t)
{
    for (int i = 0; i < t->nsensors; i++) {
        free(t->s[i].name);
        free(t->s[i].seen);
    }
}

/* Read back an output file of an earlier run.  Unknown lines are skipped. */
static void tally_load(tally *t, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512], name[256];
    uint64_t seq, conn;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "r %255s %" SCNu64, name, &seq) == 2)
            tally_add(t, name, strlen(name), seq);
        else if (sscanf(line, "c %" SCNu64, &conn) == 1)
            t->connections = conn;
        else if (line[0] == 'g')
            t->gaps++;
    }
    fclose(f);
}

/* ---- one message ----------------------------------------------------------------------- */

/* The unsigned number after "\"seq\":" in s; false if absent. */
static bool json_seq(const char *s, uint64_t *out)
{
    const char *p = strstr(s, "\"seq\":");
    if (!p)
        return false;
    char *end;
    errno = 0;
    *out = strtoull(p + 6, &end, 10);
    return !errno && end != p + 6;
}

/*
 * Handle one line (NUL-terminated, without its newline).  Returns 1 when a
 * sync must be acknowledged (*token set), 0 otherwise, -1 on a protocol
 * error (the connection is dropped).
 */
static int handle_line(tally *t, FILE *out, char *line, uint64_t *token)
{
    int32_t part;
    int64_t off, from, to, start;
    int n = 0;
    if (line[0] == 'R' && sscanf(line, "R %" SCNd32 " %" SCNd64 " %n", &part, &off, &n) == 2 && n > 0) {
        char *key = line + n, *sp = strchr(key, ' ');
        uint64_t seq;
        if (!sp || sp == key || !json_seq(sp + 1, &seq))
            return -1;
        *sp = '\0';
        if (!tally_add(t, key, (size_t)(sp - key), seq))
            fprintf(stderr, "%s: too many sensors or out of memory: %s not counted\n", prog, key);
        fprintf(out, "r %s %" PRIu64 " %" PRId32 " %" PRId64 "\n", key, seq, part, off);
        return 0;
    }
    if (line[0] == 'G' &&
        sscanf(line, "G %" SCNd32 " %" SCNd64 " %" SCNd64 " %" SCNd64, &part, &from, &to, &start) == 4) {
        t->gaps++;
        fprintf(out, "g %" PRId32 " %" PRId64 " %" PRId64 " %" PRId64 "\n", part, from, to, start);
        return 0;
    }
    if (line[0] == 'S' && sscanf(line, "S %" SCNu64, token) == 1)
        return 1;
    return -1;
}

/* Write all of buf; false on error. */
static bool write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        buf += w;
        len -= (size_t)w;
    }
    return true;
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s --out FILE [--port N] [--port-file FILE]\n"
            "The stand-in upstream of iot_gateway: listens on 127.0.0.1:N (0 = any free\n"
            "port, written to --port-file), acknowledges readings and appends them to FILE.\n",
            prog);
}

int main(int argc, char **argv)
{
    const char *out_path = NULL, *port_file = NULL;
    long port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--out") && val) {
            out_path = val;
            i++;
        } else if (!strcmp(a, "--port-file") && val) {
            port_file = val;
            i++;
        } else if (!strcmp(a, "--port") && val) {
            char *end;
            port = strtol(val, &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, "%s: --port needs a number from 0 to 65535\n", prog);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "%s: unknown or incomplete option %s\n", prog, a);
            usage(stderr);
            return 2;
        }
    }
    if (!out_path) {
        usage(stderr);
        return 2;
    }

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static tally t; /* large: not on the stack */
    tally_load(&t, out_path);
    FILE *out = fopen(out_path, "a");
    if (!out) {
        fprintf(stderr, "%s: %s: %s\n", prog, out_path, strerror(errno));
        return 1;
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t slen = sizeof sin;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 8) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &slen) < 0) {
        fprintf(stderr, "%s: listen on 127.0.0.1:%ld: %s\n", prog, port, strerror(errno));
        return 1;
    }
    port = ntohs(sin.sin_port);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *pf = fopen(tmp, "w");
        if (!pf || fprintf(pf, "%ld\n", port) < 0 || fclose(pf) != 0 || rename(tmp, port_file) < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, port_file, strerror(errno));
            return 1;
        }
    }
    printf("%s: listening on 127.0.0.1:%ld, appending to %s (%" PRIu64 " readings from earlier runs)\n", prog,
           port, out_path, t.received);
    fflush(stdout);

    int cfd = -1;
    char *buf = malloc(MAX_LINE);
    size_t blen = 0;
    if (!buf)
        return 1;
    while (!stop) {
        struct pollfd pfd[2] = { { .fd = lfd, .events = POLLIN }, { .fd = cfd, .events = POLLIN } };
        int r = poll(pfd, cfd >= 0 ? 2 : 1, 500);
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "%s: poll: %s\n", prog, strerror(errno));
            break;
        }
        if (r <= 0)
            continue;
        if (pfd[0].revents & POLLIN) {
            int nfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (nfd >= 0) {
                if (cfd >= 0) /* the old one is dead or a leftover */
                    close(cfd);
                cfd = nfd;
                blen = 0;
                setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                fprintf(out, "c %" PRIu64 "\n", ++t.connections);
                fflush(out);
            }
            continue;
        }
        if (cfd < 0 || !(pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = recv(cfd, buf + blen, MAX_LINE - blen, 0);
        if (n < 0 && errno == EINTR)
            continue;
        bool drop = n <= 0;
        if (n > 0) {
            blen += (size_t)n;
            char *p = buf, *nl;
            while (!drop && (nl = memchr(p, '\n', blen - (size_t)(p - buf))) != NULL) {
                *nl = '\0';
                uint64_t token;
                int h = handle_line(&t, out, p, &token);
                if (h < 0) {
                    fprintf(stderr, "%s: protocol error, dropping the connection: %.80s\n", prog, p);
                    drop = true;
                } else if (h == 1) {
                    char ack[32];
                    int al = snprintf(ack, sizeof ack, "A %" PRIu64 "\n", token);
                    if (fflush(out) != 0) {
                        fprintf(stderr, "%s: %s: %s\n", prog, out_path, strerror(errno));
                        drop = true;
                    } else if (!write_all(cfd, ack, (size_t)al)) {
                        drop = true;
                    }
                }
                p = nl + 1;
            }
            blen -= (size_t)(p - buf);
            memmove(buf, p, blen);
            if (blen == MAX_LINE) {
                fprintf(stderr, "%s: line longer than %d bytes, dropping the connection\n", prog, MAX_LINE);
                drop = true;
            }
        }
        if (drop) {
            close(cfd);
            cfd = -1;
            blen = 0;
        }
    }
    if (cfd >= 0)
        close(cfd);
    close(lfd);
    int rc = fclose(out) == 0 ? 0 : 1;
    printf("%s: %" PRIu64 " readings received from %d sensors: %" PRIu64 " distinct, %" PRIu64
           " duplicates; %" PRIu64 " gap notices; %" PRIu64 " connections\n",
           prog, t.received, t.nsensors, t.distinct, t.duplicates, t.gaps, t.connections);
    free(buf);
    tally_free(&t);
    return rc;
}
