/*
 * bench/bench_util.h - what every benchmark here shares: medians, prefaulting,
 * the page-cache warm-up, removing a scratch tree.
 *
 * The warm-up exists because this kind of VM hands idle guest memory back to
 * its host, free page-cache pages included: whichever run writes first into
 * memory freed long ago pays host faults the other does not.  Before every
 * timed write run, write and delete a scratch file as large as the run's
 * data, so that klog and its baseline get pages equally warm.
 */
#ifndef KLOG_BENCH_UTIL_H
#define KLOG_BENCH_UTIL_H

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile uint64_t bu_sink;

/* xorshift64*: the benchmarks' record generators, seeded alike so that
 * the same workload gives the same bytes in every program. */
#define BU_RNG_SEED 0x9e3779b97f4a7c15u
static inline uint64_t bu_rng(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1du;
}

static inline double bu_rng_unit(uint64_t *s)
{
    return (double)(bu_rng(s) >> 11) / 9007199254740992.0;
}

/*
 * Telemetry-like JSON values, 300-600 bytes each (bench_compare's telemetry
 * workload, bench_compress): a device id, a site, timestamps, a firmware
 * version, a few float readings that drift per device (a random walk, as
 * sensors do), a status string, alarms and a free-text note of words from
 * a small vocabulary to reach the target length.  Value i is tel[off[i]]
 * to tel[off[i + 1]]; tel holds n * BU_TEL_MAX bytes, off n + 1 entries.
 */
#define BU_TEL_MAX 620
static inline void bu_telemetry(uint64_t n, char *tel, uint32_t *off, uint64_t *rng)
{
    static const char *const sites[] = { "plant-berlin-03", "plant-lyon-01", "warehouse-oslo-2", "depot-madrid-07",
                                         "plant-austin-11", "lab-kyoto-1" };
    static const char *const status[] = { "ok", "ok", "ok", "ok", "degraded", "ok", "maintenance", "ok" };
    static const char *const words[] = { "sensor", "reading", "within", "tolerance", "recalibrated", "after",
                                         "firmware", "update", "door", "opened", "vibration", "nominal", "fan",
                                         "speed", "increased", "threshold", "exceeded", "briefly", "battery",
                                         "replaced", "link", "quality", "good", "retry", "scheduled", "shift" };
    enum { NDEV = 2000 };
    static double temp[NDEV], hum[NDEV], pres[NDEV], volt[NDEV];
    for (int d = 0; d < NDEV; d++) {
        temp[d] = 18 + 8 * bu_rng_unit(rng);
        hum[d] = 30 + 40 * bu_rng_unit(rng);
        pres[d] = 990 + 40 * bu_rng_unit(rng);
        volt[d] = 3.0 + 0.6 * bu_rng_unit(rng);
    }
    uint64_t ts = 1732406400000u, pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(bu_rng(rng) % NDEV);
        ts += 1 + bu_rng(rng) % 40;
        temp[d] += (bu_rng_unit(rng) - 0.5) * 0.2;
        hum[d] += (bu_rng_unit(rng) - 0.5) * 0.5;
        pres[d] += (bu_rng_unit(rng) - 0.5) * 0.3;
        volt[d] -= bu_rng_unit(rng) * 0.0005;
        unsigned target = 300 + (unsigned)(bu_rng(rng) % 301);
        char *p = tel + pos;
        uint64_t rts = ts + 20 + bu_rng(rng) % 300;
        int rssi = -40 - (int)(bu_rng(rng) % 60);
        const char *st = status[bu_rng(rng) % 8];
        const char *alarm = bu_rng(rng) % 10 ? "" : "\"temp_high\"";
        int len = snprintf(p, BU_TEL_MAX,
                           "{\"device_id\":\"dev-%06u\",\"site\":\"%s\",\"ts\":%" PRIu64 ",\"received_ts\":%" PRIu64
                           ",\"seq\":%" PRIu64 ",\"fw\":\"2.%u.%u\",\"readings\":{\"temp_c\":%.2f,\"humidity_pct\":%.1f,"
                           "\"pressure_hpa\":%.2f,\"battery_v\":%.3f,\"rssi_dbm\":%d},\"status\":\"%s\",\"alarms\":[%s],"
                           "\"note\":\"",
                           d, sites[d % 6], ts, rts, i, d % 4, d % 7, temp[d], hum[d], pres[d], volt[d], rssi, st,
                           alarm);
        while ((unsigned)len + 3 < target) {
            const char *w = words[bu_rng(rng) % (sizeof words / sizeof words[0])];
            len += snprintf(p + len, BU_TEL_MAX - (size_t)len, "%s%s", p[len - 1] == '"' ? "" : " ", w);
        }
        len += snprintf(p + len, BU_TEL_MAX - (size_t)len, "\"}");
        off[i] = (uint32_t)pos;
        pos += (uint64_t)len;
    }
    off[n] = (uint32_t)pos;
}

static inline int bu_cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). */
static inline double bu_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bu_cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Touch one byte per page so that no page fault lands in a timed run. */
static inline void bu_prefault(const void *p, size_t len)
{
    const volatile uint8_t *b = p;
    uint64_t s = 0;
    for (size_t i = 0; i < len; i += 4096)
        s += b[i];
    bu_sink += s;
}

/* Write and delete a scratch file of `bytes` in dir (see the file comment).
 * Returns 0 or -errno. */
static inline int bu_warm_page_cache(const char *dir, uint64_t bytes)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/warm.dat", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    static char chunk[1 << 20];
    memset(chunk, 1, sizeof chunk);
    int rc = 0;
    for (uint64_t off = 0; off < bytes && rc == 0; off += sizeof chunk)
        if (pwrite(fd, chunk, sizeof chunk, (off_t)off) < 0)
            rc = -errno;
    close(fd);
    unlink(path);
    return rc;
}

/* rm -rf path; complains (as prog) on failure. */
/* Stop a child process (a klog serve a benchmark started) by its PID:
 * SIGTERM, up to 30 s for it to exit, then SIGKILL.  Returns its wait
 * status, or -1 when it had to be killed. */
static inline int bu_child_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    int st = 0;
    pid_t r = 0;
    for (int i = 0; i < 3000 && (r = waitpid(pid, &st, WNOHANG)) == 0; i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (r == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return -1;
    }
    return st;
}

/* Start `klog serve` (argv, argv[0] the program) as a child that dies with
 * this process, and wait up to 30 s for its "listening on SCHEME://ADDR"
 * line for each of the n schemes; addrs[i] gets scheme i's host:port.
 * Returns the child's PID, or -1 with *why set (the child stopped). */
static inline pid_t bu_serve_start(char *const argv[], const char *const schemes[], char (*addrs)[256], int n,
                                   const char **why)
{
    int pfd[2];
    *why = NULL;
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        *why = "pipe failed";
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        *why = "fork failed";
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the bench */
        dup2(pfd[1], 1);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    for (int i = 0; i < n; i++)
        addrs[i][0] = 0;
    char buf[1024];
    size_t len = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int found = 0; found < n && !*why;) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        int left = 30000 - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        struct pollfd p = { pfd[0], POLLIN, 0 };
        ssize_t r;
        if (left <= 0 || poll(&p, 1, left) <= 0)
            *why = "no listening line within 30 s";
        else if ((r = read(pfd[0], buf + len, sizeof buf - 1 - len)) <= 0)
            *why = "exited before listening (is `klog serve` built? KLOG_BIN?)";
        else {
            len += (size_t)r;
            buf[len] = 0;
            found = 0;
            for (int i = 0; i < n; i++) {
                char key[64];
                snprintf(key, sizeof key, "listening on %s://", schemes[i]);
                const char *at = strstr(buf, key);
                if (at && strchr(at, '\n')) {
                    at += strlen(key);
                    size_t l = strcspn(at, " \r\n");
                    if (l < 256) {
                        memcpy(addrs[i], at, l);
                        addrs[i][l] = 0;
                        found++;
                    }
                }
            }
            if (found < n && len >= sizeof buf - 1)
                *why = "unexpected output";
        }
    }
    close(pfd[0]);
    if (*why) {
        bu_child_stop(pid);
        return -1;
    }
    return pid;
}

static inline void bu_rm_rf(const char *prog, const char *path)
{
    char cmd[4400];
    if (snprintf(cmd, sizeof cmd, "rm -rf '%s'", path) >= (int)sizeof cmd || system(cmd) != 0)
        fprintf(stderr, "%s: could not remove %s\n", prog, path);
}

/* ---- a benchmark of named sections ------------------------------------------
 * The command line the section benchmarks share:
 *   PROG [--dir DIR] [--reps N] [--quick] [--each] [--only NAME]
 * (--each only where each_ok).  Their work directory is DIR/PROG.<pid>,
 * removed at the end with DIR if the run created DIR. */
typedef struct bu_section {
    const char *name;
    void (*fn)(void);
} bu_section;

typedef struct bu_args {
    const char *base;   /* --dir */
    int reps;           /* --reps, default_reps when absent or out of 1..max; 1 with --quick */
    bool quick, each;
    const char *only;   /* --only, or NULL */
    char dir[4096];     /* base/PROG.<pid>, made by bu_parse */
    bool made_base;
} bu_args;

static inline int bu_usage(const char *prog, const bu_section *sec, size_t n, bool each_ok)
{
    fprintf(stderr, "usage: %s [--dir DIR] [--reps N] [--quick]%s [--only NAME]\n  NAME:", prog,
            each_ok ? " [--each]" : "");
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %s", sec[i].name);
    fprintf(stderr, "\n");
    return 2;
}

/* Parse the command line into a (base preset by the caller) and make the
 * work directory.  Returns 0, 2 after a usage message, or 1 after saying
 * why the directory could not be made. */
static inline int bu_parse(int argc, char **argv, const char *prog, const bu_section *sec, size_t n, bool each_ok,
                           int default_reps, int max_reps, bu_args *a)
{
    a->reps = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            a->base = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            a->reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            a->quick = true;
        else if (each_ok && !strcmp(argv[i], "--each"))
            a->each = true;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            a->only = argv[++i];
        else
            return bu_usage(prog, sec, n, each_ok);
    }
    if (a->only) {
        size_t i = 0;
        while (i < n && strcmp(a->only, sec[i].name))
            i++;
        if (i == n)
            return bu_usage(prog, sec, n, each_ok);
    }
    if (a->reps < 1 || a->reps > max_reps)
        a->reps = default_reps;
    if (a->quick)
        a->reps = 1;
    a->made_base = mkdir(a->base, 0755) == 0;
    if (!a->made_base && errno != EEXIST) {
        fprintf(stderr, "%s: %s: %s\n", prog, a->base, strerror(errno));
        return 1;
    }
    if (snprintf(a->dir, sizeof a->dir, "%s/%s.%d", a->base, prog, (int)getpid()) >= (int)sizeof a->dir ||
        mkdir(a->dir, 0755) != 0) {
        fprintf(stderr, "%s: cannot make %s/%s.%d\n", prog, a->base, prog, (int)getpid());
        return 1;
    }
    return 0;
}

/* Run the chosen sections, numbered. */
static inline void bu_run(const bu_section *sec, size_t n, const bu_args *a)
{
    for (size_t i = 0; i < n; i++)
        if (!a->only || !strcmp(a->only, sec[i].name)) {
            printf("%zu. ", i + 1);
            sec[i].fn();
            fflush(stdout);
        }
}

/* Remove the work directory (and the base if this run made it). */
static inline void bu_cleanup(const char *prog, const bu_args *a)
{
    bu_rm_rf(prog, a->dir);
    if (a->made_base)
        rmdir(a->base);
}

#endif
