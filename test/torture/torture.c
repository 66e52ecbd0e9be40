/*
 * klog_torture - kill -9 torture over the public API (issue 19).
 *
 *   klog_torture --mode M --cycles N --seed S --dir D [--reset-every K] [--kill-ms MS]
 *   klog_torture --recovery-bench --dir D [--gib G]
 *
 * The driver forks a writer, kills it with SIGKILL at a random (seeded)
 * moment up to MS milliseconds (default 150) after the fork - a quarter of
 * the kills land in the first 5 ms, inside klog_open's recovery - then opens
 * the directory itself and checks it against what the writer acknowledged.
 * The data directory starts afresh every K cycles (default 40), so that
 * the check, which reads everything, stays short.
 *
 * The writer: T threads send keyed, self-checking records to topic "t"
 * (3 partitions) with acks=all and idempotence on.  A value encodes the
 * writer's cycle, its thread, the thread's sequence number, the key id, a
 * padding derived from those and a checksum over all of it, so a record
 * read back proves itself.  Each delivery report that says ok is appended
 * to DIR/acks (one write(2) of a self-checking 40-byte entry, O_APPEND):
 * a record counts as acknowledged once its entry is in that file.  No
 * fsync: the fault is a process kill, not a power cut, and the page cache
 * survives a kill (the power-cut model is the fault backend's business).
 * An entry cut short by the kill is ignored (its checksum fails).
 *
 * What the checker demands after each kill:
 *   - klog_open succeeds (never KLOG_ECORRUPT, never a lost topic);
 *   - every record reads back and passes its checksum, keys match values;
 *   - offsets are dense from the start offset to the end offset (compact:
 *     increasing);
 *   - no (cycle, thread, seq) twice in the log (idempotence);
 *   - per partition, each writer thread's records in sequence order;
 *   - every acknowledged record at its offset with its value; below the
 *     start offset only in retention mode (retention may delete it), and
 *     in compact mode a record whose key has a later record in the log may
 *     be gone (the cleaner keeps the latest per key);
 *   - start and end offsets never go backwards between checks;
 *   - group mode: the committed offset of group "g" never goes backwards,
 *     is at least every commit the writer saw succeed, and at most the end.
 *
 * Modes: plain, roll (segment.bytes 4 KiB), retention (4 KiB segments,
 * retention.bytes 16 KiB, checked every 20 ms), compact (4 KiB segments,
 * 16 keys per thread, cleaner backoff 20 ms, dirty ratio 0.01), group (a
 * subscribed consumer commits synchronously what it read), all (cycles
 * each of those in turn), and server (built with librdkafka; not in all):
 * the process killed is `klog serve` on DIR/data, and the producer a
 * librdkafka idempotent acks=all client in a second child, one thread of
 * records, its delivery reports in DIR/acks; the topic is made in-process
 * before the first server starts.  Exit 0 when nothing was lost, 1 otherwise, 2 on
 * usage or set-up errors.  --selftest falsifies one acknowledgement (the
 * first) so that the checker must report a loss: the suite runs it and
 * expects failure, so that a checker that demands nothing fails the suite.
 *
 * --recovery-bench writes about G GiB (default 2) with acks=1 to one
 * partition (1 GiB segments), kills the writer with SIGKILL while it holds
 * the directory open, copies the directory, then times klog_open on the
 * same crashed state twice: cold (posix_fadvise(POSIX_FADV_DONTNEED) on
 * every file first; no root needed) and warm (the copy, in the page cache).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <klog/klog.h>
#ifdef TORTURE_RDKAFKA
#include <poll.h>
#include <sys/prctl.h>
#include <librdkafka/rdkafka.h>
#endif

#define TOPIC "t"
#define GROUP "g"
#define NPART 3
#define NTHREADS 3
#define PER_THREAD 1500 /* a writer that is not killed stops there */
#define COMPACT_KEYS 16
#define VAL_MAGIC 0x4b54525655u /* truncated to 32 bits below */
#define ACK_MAGIC 0x41434b31u

/* "all" runs the in-process modes, M_PLAIN..M_GROUP; M_SERVER only by name. */
enum mode { M_PLAIN, M_ROLL, M_RETENTION, M_COMPACT, M_GROUP, M_SERVER, M_NMODES };
static const char *const mode_names[] = {"plain", "roll", "retention", "compact", "group", "server"};

/* ---- deterministic record contents ---------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t fnv64(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

struct val_hdr {
    uint32_t magic, cycle, thread, seq, key, pad;
    uint64_t sum; /* fnv64 over the fields above and the padding */
};
#define MAX_PAD 200
#define MAX_VAL (sizeof(struct val_hdr) + MAX_PAD)

static uint32_t key_id(enum mode m, uint32_t seq)
{
    return m == M_COMPACT ? seq % COMPACT_KEYS : seq;
}

static int make_key(char *buf, size_t n, uint32_t thread, uint32_t kid)
{
    return snprintf(buf, n, "t%u-k%u", thread, kid);
}

/* Build the value of (cycle, thread, seq) into buf; returns its length. */
static size_t make_value(unsigned char *buf, enum mode m, uint32_t cycle, uint32_t thread,
                         uint32_t seq)
{
    struct val_hdr h = {(uint32_t)VAL_MAGIC, cycle, thread, seq, key_id(m, seq), 0, 0};
    uint64_t r = mix64(((uint64_t)cycle << 40) ^ ((uint64_t)thread << 32) ^ seq);
    h.pad = (uint32_t)(r % (MAX_PAD + 1));
    unsigned char *pad = buf + sizeof h;
    for (uint32_t i = 0; i < h.pad; i++)
        pad[i] = (unsigned char)(r >> ((i % 8) * 8)) ^ (unsigned char)i;
    h.sum = fnv64(&h, offsetof(struct val_hdr, sum), 0xcbf29ce484222325ULL);
    h.sum = fnv64(pad, h.pad, h.sum);
    memcpy(buf, &h, sizeof h);
    return sizeof h + h.pad;
}

/* Check a value read back; fills *h.  Returns 0 or -1 (malformed). */
static int check_value(const void *v, size_t n, struct val_hdr *h)
{
    if (!v || n < sizeof *h)
        return -1;
    memcpy(h, v, sizeof *h);
    if (h->magic != (uint32_t)VAL_MAGIC || h->pad > MAX_PAD || n != sizeof *h + h->pad)
        return -1;
    uint64_t s = fnv64(h, offsetof(struct val_hdr, sum), 0xcbf29ce484222325ULL);
    s = fnv64((const unsigned char *)v + sizeof *h, h->pad, s);
    return s == h->sum ? 0 : -1;
}

/* ---- the side file of acknowledgements ------------------------------ */

enum { ACK_RECORD = 1, ACK_COMMIT = 2 };
struct ack {
    uint32_t magic, kind;
    uint32_t cycle, thread, seq; /* ACK_RECORD */
    int32_t partition;
    int64_t offset;              /* the record's, or the committed offset */
    uint32_t topic;              /* index into the writer's topics: 0 = "t" */
    uint32_t sum;                /* over the fields above */
};

static uint32_t ack_sum(const struct ack *a)
{
    return (uint32_t)fnv64(a, offsetof(struct ack, sum), 0xcbf29ce484222325ULL);
}

static int ack_fd = -1;

static void ack_write(struct ack *a)
{
    a->magic = ACK_MAGIC;
    a->sum = ack_sum(a);
    /* One write of an O_APPEND fd: entries from several threads do not mix. */
    if (write(ack_fd, a, sizeof *a) != (ssize_t)sizeof *a)
        _exit(3);
}

/* ---- the writer (child process) ------------------------------------ */

struct wctx {
    klog_producer *p;
    klog *k;
    enum mode mode;
    uint32_t cycle, thread;
    atomic_int *stop;
};

static void on_delivery(void *arg, const klog_delivery *d)
{
    uint32_t cycle = (uint32_t)(uintptr_t)arg;
    if (d->err != 0)
        return; /* not acknowledged: nothing is demanded of it */
    uint64_t id = (uint64_t)(uintptr_t)d->opaque;
    struct ack a = {.kind = ACK_RECORD, .cycle = cycle, .thread = (uint32_t)(id >> 32),
                    .seq = (uint32_t)id, .partition = d->partition, .offset = d->offset};
    ack_write(&a);
}

static void *writer_thread(void *arg)
{
    struct wctx *w = arg;
    unsigned char val[MAX_VAL];
    char key[32];
    for (uint32_t seq = 0; seq < PER_THREAD && !atomic_load(w->stop); seq++) {
        klog_record r = KLOG_RECORD_INIT;
        int kl = make_key(key, sizeof key, w->thread, key_id(w->mode, seq));
        r.key = key;
        r.key_len = (size_t)kl;
        r.value = val;
        r.value_len = make_value(val, w->mode, w->cycle, w->thread, seq);
        r.opaque = (void *)(uintptr_t)(((uint64_t)w->thread << 32) | seq);
        int rc = klog_producer_send(w->p, TOPIC, &r);
        if (rc != 0) {
            fprintf(stderr, "writer: send: %s\n", klog_strerror(rc));
            _exit(4);
        }
        if (seq % 64 == 63)
            klog_producer_flush(w->p, -1); /* keep kills landing on acks too */
    }
    return NULL;
}

/* Group mode: a subscribed consumer that commits what it reads, sync. */
static void *group_thread(void *arg)
{
    struct wctx *w = arg;
    klog *k = w->k;
    klog_conf *c = NULL;
    klog_conf_new(&c);
    klog_conf_set(c, "group.id", GROUP, NULL, 0);
    klog_conf_set(c, "auto.offset.reset", "earliest", NULL, 0);
    klog_conf_set(c, "enable.auto.commit", "false", NULL, 0);
    klog_conf_set(c, "session.timeout.ms", "1000", NULL, 0);
    klog_conf_set(c, "max.poll.records", "50", NULL, 0);
    klog_consumer *cons = NULL;
    char err[256];
    int rc = klog_consumer_new(k, c, &cons, err, sizeof err);
    klog_conf_free(c);
    if (rc != 0) {
        fprintf(stderr, "writer: consumer_new: %s %s\n", klog_strerror(rc), err);
        _exit(5);
    }
    const char *topics[] = {TOPIC};
    if ((rc = klog_consumer_subscribe(cons, topics, 1)) != 0) {
        fprintf(stderr, "writer: subscribe: %s\n", klog_strerror(rc));
        _exit(5);
    }
    while (!atomic_load(w->stop)) {
        const klog_message *const *msgs;
        int n = klog_consumer_poll(cons, 20, &msgs);
        if (n < 0) {
            fprintf(stderr, "writer: poll: %s\n", klog_strerror(n));
            _exit(5);
        }
        if (n == 0)
            continue;
        klog_partition_list *as = NULL;
        if (klog_consumer_assignment(cons, &as) != 0)
            continue;
        int64_t pos[NPART];
        for (int p = 0; p < NPART; p++)
            pos[p] = -1;
        for (size_t i = 0; i < klog_partition_list_count(as); i++) {
            const char *t;
            int32_t part;
            int64_t off;
            if (klog_partition_list_get(as, i, &t, &part, &off, NULL, NULL) == 0 && part >= 0 &&
                part < NPART && klog_consumer_position(cons, TOPIC, part, &off) == 0)
                pos[part] = off;
        }
        klog_partition_list_free(as);
        rc = klog_consumer_commit(cons, NULL, 0);
        if (rc == KLOG_EREBALANCE || rc == KLOG_EFENCED || rc == KLOG_EUNKNOWN_MEMBER)
            continue;
        if (rc != 0) {
            fprintf(stderr, "writer: commit: %s\n", klog_strerror(rc));
            _exit(5);
        }
        for (int p = 0; p < NPART; p++) {
            if (pos[p] < 0)
                continue;
            struct ack a = {.kind = ACK_COMMIT, .partition = p, .offset = pos[p]};
            ack_write(&a);
        }
    }
    klog_consumer_close(cons);
    return NULL;
}

static void mode_conf(enum mode m, klog_conf *inst, klog_conf *topic)
{
    (void)inst;
    switch (m) {
    case M_ROLL:
        klog_conf_set(topic, "segment.bytes", "4096", NULL, 0);
        break;
    case M_RETENTION:
        klog_conf_set(inst, "log.retention.check.interval.ms", "20", NULL, 0);
        klog_conf_set(topic, "segment.bytes", "4096", NULL, 0);
        klog_conf_set(topic, "retention.bytes", "16384", NULL, 0);
        break;
    case M_COMPACT:
        klog_conf_set(inst, "log.cleaner.backoff.ms", "20", NULL, 0);
        klog_conf_set(inst, "log.cleaner.dedupe.buffer.size", "1048576", NULL, 0);
        klog_conf_set(topic, "cleanup.policy", "compact", NULL, 0);
        klog_conf_set(topic, "segment.bytes", "4096", NULL, 0);
        klog_conf_set(topic, "min.cleanable.dirty.ratio", "0.01", NULL, 0);
        break;
    default:
        break;
    }
}

/* Open dir with the mode's instance keys (topic keys go to topic_out). */
static int open_dir(klog **k, const char *dir, enum mode m, klog_conf **topic_out)
{
    klog_conf *inst = NULL, *topic = NULL;
    char err[256] = "";
    klog_conf_new(&inst);
    klog_conf_new(&topic);
    /* io.backend stays auto: $KLOG_IO_BACKEND=posix picks the fallback */
    mode_conf(m, inst, topic);
    int rc = klog_open(k, dir, inst, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "klog_open(%s): %s: %s\n", dir, klog_strerror(rc), err);
    klog_conf_free(inst);
    if (topic_out)
        *topic_out = topic;
    else
        klog_conf_free(topic);
    return rc;
}

static void __attribute__((noreturn)) writer_main(const char *dir, enum mode m, uint32_t cycle)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/acks", dir);
    ack_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (ack_fd < 0)
        _exit(2);
    snprintf(path, sizeof path, "%s/data", dir);
    klog *k = NULL;
    klog_conf *tconf = NULL;
    if (open_dir(&k, path, m, &tconf) != 0)
        _exit(6);
    char err[256] = "";
    int rc = klog_topic_create(k, TOPIC, NPART, tconf, err, sizeof err);
    klog_conf_free(tconf);
    if (rc != 0 && rc != -EEXIST) {
        fprintf(stderr, "writer: topic_create: %s %s\n", klog_strerror(rc), err);
        _exit(6);
    }
    klog_conf *pc = NULL;
    klog_conf_new(&pc);
    klog_conf_set(pc, "acks", "all", NULL, 0);
    klog_conf_set(pc, "enable.idempotence", "true", NULL, 0);
    klog_conf_set(pc, "linger.ms", "1", NULL, 0);
    klog_conf_set(pc, "batch.num.messages", "32", NULL, 0);
    klog_producer *p = NULL;
    rc = klog_producer_new(k, pc, &p, err, sizeof err);
    klog_conf_free(pc);
    if (rc != 0) {
        fprintf(stderr, "writer: producer_new: %s %s\n", klog_strerror(rc), err);
        _exit(6);
    }
    klog_producer_set_delivery_cb(p, on_delivery, (void *)(uintptr_t)cycle);
    atomic_int stop = 0;
    struct wctx w[NTHREADS + 1];
    pthread_t th[NTHREADS + 1];
    for (uint32_t i = 0; i < NTHREADS; i++) {
        w[i] = (struct wctx){p, k, m, cycle, i, &stop};
        pthread_create(&th[i], NULL, writer_thread, &w[i]);
    }
    if (m == M_GROUP) {
        w[NTHREADS] = (struct wctx){p, k, m, cycle, NTHREADS, &stop};
        pthread_create(&th[NTHREADS], NULL, group_thread, &w[NTHREADS]);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    klog_producer_flush(p, -1);
    if (m == M_GROUP) {
        usleep(100000); /* let the group catch up, then stop it */
        atomic_store(&stop, 1);
        pthread_join(th[NTHREADS], NULL);
    }
    rc = klog_producer_close(p);
    int rc2 = klog_close(k);
    _exit(rc == 0 && rc2 == 0 ? 0 : 7);
}

/* ---- the driver ----------------------------------------------------- */

static int selftest; /* --selftest: the checker must report a loss */
static long kill_ms = 150; /* --kill-ms: the latest a kill comes */
static long reset_every_g = 40; /* --reset-every */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state += 0x9e3779b97f4a7c15ULL;
    return mix64(rng_state);
}

struct acked { /* one acknowledged record */
    uint32_t cycle, thread, seq;
    int64_t offset;
};

struct pstate {
    struct acked *acks;
    size_t nacks, capacks;
    int64_t prev_start, prev_end, prev_committed, max_commit_acked;
};

struct driver {
    enum mode mode;
    const char *dir;
    struct pstate part[NPART];
    off_t ack_pos;         /* how far DIR/acks has been read */
    uint64_t records_checked, losses, failures;
    uint64_t acked, commits, cleaned_parts, retained_away, compacted_away, kills_early, clean_exits;
};

static void fail(struct driver *d, uint32_t cycle, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct driver *d, uint32_t cycle, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "torture: %s cycle %u: ", mode_names[d->mode], cycle);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    d->failures++;
}

/* Read the entries the last writer appended to DIR/acks. */
static int read_acks(struct driver *d, uint32_t cycle)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/acks", d->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct ack a;
    off_t pos = d->ack_pos;
    for (;;) {
        ssize_t n = pread(fd, &a, sizeof a, pos);
        if (n != (ssize_t)sizeof a)
            break; /* end, or an entry cut by the kill */
        pos += n;
        if (a.magic != ACK_MAGIC || a.sum != ack_sum(&a) || a.partition < 0 ||
            a.partition >= NPART) {
            fail(d, cycle, "malformed ack entry at %lld", (long long)(pos - n));
            break;
        }
        struct pstate *ps = &d->part[a.partition];
        if (a.kind == ACK_COMMIT) {
            d->commits++;
            if (a.offset > ps->max_commit_acked)
                ps->max_commit_acked = a.offset;
            continue;
        }
        if (ps->nacks == ps->capacks) {
            ps->capacks = ps->capacks ? 2 * ps->capacks : 1024;
            ps->acks = realloc(ps->acks, ps->capacks * sizeof *ps->acks);
            if (!ps->acks)
                abort();
        }
        ps->acks[ps->nacks++] = (struct acked){a.cycle, a.thread, a.seq, a.offset};
        d->acked++;
        if (selftest && d->acked == 1)
            ps->acks[ps->nacks - 1].seq++; /* --selftest: a record that was never written */
    }
    /* A cut entry is left where it is: the next writer appends after it,
     * so skip to the end (the cut entry is dropped, as it should be). */
    struct stat st;
    if (fstat(fd, &st) == 0)
        pos = st.st_size;
    d->ack_pos = pos;
    close(fd);
    return 0;
}

/* A record read back, per offset. */
struct seen {
    uint32_t cycle, thread, seq, key;
    int present;
};

/* Hash set of (cycle, thread, seq) for the duplicate check. */
static int dup_insert(uint64_t *tab, size_t cap, uint64_t id)
{
    size_t i = (size_t)mix64(id) & (cap - 1);
    while (tab[i]) {
        if (tab[i] == id)
            return 1;
        i = (i + 1) & (cap - 1);
    }
    tab[i] = id;
    return 0;
}

static int check(struct driver *d, uint32_t cycle)
{
    uint64_t fails0 = d->failures;
    if (read_acks(d, cycle) != 0) {
        fail(d, cycle, "cannot read the ack file");
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/data", d->dir);
    klog *k = NULL;
    int rc = open_dir(&k, path, d->mode, NULL);
    if (rc != 0) {
        fail(d, cycle, "klog_open failed: %s", klog_strerror(rc));
        return -1;
    }
    klog_partition_info pi[NPART];
    pi[0].struct_size = sizeof pi[0];
    rc = klog_topic_describe(k, TOPIC, pi, NPART, NULL, 0);
    if (rc == KLOG_EUNKNOWN_TOPIC) {
        /* Killed before the topic was created: nothing may be acknowledged. */
        for (int p = 0; p < NPART; p++)
            if (d->part[p].nacks)
                fail(d, cycle, "topic gone with %zu acknowledged records", d->part[p].nacks);
        klog_close(k);
        return d->failures == fails0 ? 0 : -1;
    }
    if (rc != NPART) {
        fail(d, cycle, "describe: %d", rc);
        klog_close(k);
        return -1;
    }
    klog_conf *cc = NULL;
    klog_conf_new(&cc);
    klog_conf_set(cc, "auto.offset.reset", "none", NULL, 0);
    klog_conf_set(cc, "max.poll.records", "2000", NULL, 0);
    klog_consumer *c = NULL;
    rc = klog_consumer_new(k, cc, &c, NULL, 0);
    klog_conf_free(cc);
    if (rc != 0) {
        fail(d, cycle, "consumer_new: %s", klog_strerror(rc));
        klog_close(k);
        return -1;
    }
    for (int p = 0; p < NPART; p++) {
        struct pstate *ps = &d->part[p];
        int64_t start = pi[p].start_offset, end = pi[p].end_offset;
        if (pi[p].error)
            fail(d, cycle, "partition %d read-only: %s", p, klog_strerror(pi[p].error));
        if (start < ps->prev_start)
            fail(d, cycle, "partition %d start went back %lld -> %lld", p,
                 (long long)ps->prev_start, (long long)start);
        if (end < ps->prev_end)
            fail(d, cycle, "partition %d end went back %lld -> %lld", p, (long long)ps->prev_end,
                 (long long)end);
        if (start > 0 && d->mode != M_RETENTION && d->mode != M_COMPACT)
            fail(d, cycle, "partition %d start %lld without retention", p, (long long)start);
        ps->prev_start = start;
        ps->prev_end = end;
        if (pi[p].clean_offset > 0)
            d->cleaned_parts++;
        size_t span = (size_t)(end - start);
        struct seen *s = calloc(span + 1, sizeof *s);
        size_t cap = 1024;
        while (cap < 2 * span + 2)
            cap *= 2;
        uint64_t *dups = calloc(cap, sizeof *dups);
        /* last seq seen per (cycle, thread): a small open table */
        if (!s || !dups)
            abort();
        if (span > 0 && (rc = klog_consumer_assign(c, TOPIC, p, start)) != 0) {
            fail(d, cycle, "assign %d at %lld: %s", p, (long long)start, klog_strerror(rc));
            span = 0;
        }
        int64_t next = start;
        int64_t prev_off = start - 1;
        int stalls = 0;
        while (next < end && stalls < 50) {
            const klog_message *const *msgs;
            int n = klog_consumer_poll(c, 100, &msgs);
            if (n < 0) {
                fail(d, cycle, "poll partition %d at %lld: %s", p, (long long)next,
                     klog_strerror(n));
                break;
            }
            stalls = n == 0 ? stalls + 1 : 0;
            for (int i = 0; i < n; i++) {
                const klog_message *m = msgs[i];
                struct val_hdr h;
                if (m->offset <= prev_off || m->offset >= end) {
                    fail(d, cycle, "partition %d offset %lld out of order (after %lld, end %lld)",
                         p, (long long)m->offset, (long long)prev_off, (long long)end);
                    continue;
                }
                if (d->mode != M_COMPACT && m->offset != prev_off + 1)
                    fail(d, cycle, "partition %d gap: %lld after %lld", p, (long long)m->offset,
                         (long long)prev_off);
                prev_off = m->offset;
                next = m->offset + 1;
                if (check_value(m->value, m->value_len, &h) != 0) {
                    fail(d, cycle, "partition %d offset %lld: value fails its checksum", p,
                         (long long)m->offset);
                    continue;
                }
                char key[32];
                int kl = make_key(key, sizeof key, h.thread, h.key);
                if (!m->key || m->key_len != (size_t)kl || memcmp(m->key, key, (size_t)kl) != 0)
                    fail(d, cycle, "partition %d offset %lld: key does not match value", p,
                         (long long)m->offset);
                uint64_t id = ((uint64_t)(h.cycle + 1) << 40) | ((uint64_t)h.thread << 32) | h.seq;
                if (dup_insert(dups, cap, id))
                    fail(d, cycle, "partition %d offset %lld: duplicate of cycle %u thread %u seq %u",
                         p, (long long)m->offset, h.cycle, h.thread, h.seq);
                s[m->offset - start] = (struct seen){h.cycle, h.thread, h.seq, h.key, 1};
            }
        }
        if (next < end && d->mode != M_COMPACT)
            fail(d, cycle, "partition %d: read stopped at %lld, end %lld", p, (long long)next,
                 (long long)end);
        /* Per-thread order: walk the offsets, remember the last seq of each
         * (cycle, thread) - the writers number threads 0..NTHREADS-1. */
        {
            uint32_t lastc[NTHREADS];
            int64_t lasts[NTHREADS];
            for (int t = 0; t < NTHREADS; t++)
                lastc[t] = UINT32_MAX, lasts[t] = -1;
            for (size_t i = 0; i < span; i++) {
                if (!s[i].present || s[i].thread >= NTHREADS)
                    continue;
                uint32_t t = s[i].thread;
                if (lastc[t] == s[i].cycle && (int64_t)s[i].seq <= lasts[t])
                    fail(d, cycle, "partition %d offset %lld: thread %u seq %u after seq %lld", p,
                         (long long)start + (long long)i, t, s[i].seq, (long long)lasts[t]);
                lastc[t] = s[i].cycle;
                lasts[t] = s[i].seq;
            }
        }
        /* Compact: the latest offset of each key in the log. */
        for (size_t a = 0; a < ps->nacks; a++) {
            struct acked *ak = &ps->acks[a];
            d->records_checked++;
            if (ak->offset < start) {
                if (d->mode == M_RETENTION || d->mode == M_COMPACT) {
                    d->retained_away++;
                    continue; /* deleted by retention (compact: the segment cleaned) */
                }
                d->losses++;
                fail(d, cycle, "LOSS partition %d offset %lld below start %lld", p,
                     (long long)ak->offset, (long long)start);
                continue;
            }
            if (ak->offset >= end) {
                d->losses++;
                fail(d, cycle, "LOSS partition %d offset %lld at or past end %lld", p,
                     (long long)ak->offset, (long long)end);
                continue;
            }
            struct seen *sv = &s[ak->offset - start];
            if (sv->present && sv->cycle == ak->cycle && sv->thread == ak->thread &&
                sv->seq == ak->seq)
                continue;
            if (!sv->present && d->mode == M_COMPACT) {
                /* cleaned away: fine only if its key has a later record */
                uint32_t kid = key_id(M_COMPACT, ak->seq);
                int later = 0;
                for (size_t i = (size_t)(ak->offset - start) + 1; i < span && !later; i++)
                    later = s[i].present && s[i].thread == ak->thread && s[i].key == kid;
                if (later) {
                    d->compacted_away++;
                    continue;
                }
            }
            d->losses++;
            if (sv->present)
                fail(d, cycle,
                     "LOSS partition %d offset %lld holds cycle %u thread %u seq %u, acked cycle %u thread %u seq %u",
                     p, (long long)ak->offset, sv->cycle, sv->thread, sv->seq, ak->cycle,
                     ak->thread, ak->seq);
            else
                fail(d, cycle, "LOSS partition %d offset %lld (cycle %u thread %u seq %u) missing",
                     p, (long long)ak->offset, ak->cycle, ak->thread, ak->seq);
        }
        free(s);
        free(dups);
        if (span > 0)
            klog_consumer_unassign(c, TOPIC, p);
        if (d->mode == M_GROUP) {
            int64_t co = KLOG_OFFSET_NONE;
            rc = klog_group_committed(k, GROUP, TOPIC, p, &co);
            if (rc != 0)
                fail(d, cycle, "group_committed %d: %s", p, klog_strerror(rc));
            int64_t have = co == KLOG_OFFSET_NONE ? 0 : co;
            if (have < ps->prev_committed)
                fail(d, cycle, "partition %d committed offset went back %lld -> %lld", p,
                     (long long)ps->prev_committed, (long long)have);
            if (have < ps->max_commit_acked) {
                d->losses++;
                fail(d, cycle, "LOSS partition %d committed %lld below acknowledged commit %lld",
                     p, (long long)have, (long long)ps->max_commit_acked);
            }
            if (have > end)
                fail(d, cycle, "partition %d committed %lld past end %lld", p, (long long)have,
                     (long long)end);
            ps->prev_committed = have;
        }
    }
    klog_consumer_close(c);
    rc = klog_close(k);
    if (rc != 0)
        fail(d, cycle, "klog_close: %s", klog_strerror(rc));
    return d->failures == fails0 ? 0 : -1;
}

static int rm_rf(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", path);
    return system(cmd);
}

static void reset_dir(struct driver *d)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data", d->dir);
    rm_rf(path);
    snprintf(path, sizeof path, "%s/acks", d->dir);
    unlink(path);
    for (int p = 0; p < NPART; p++) {
        free(d->part[p].acks);
        d->part[p] = (struct pstate){0};
    }
    d->ack_pos = 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One kill: fork the writer, kill it, reap it.  Returns 0, or -1 when the
 * writer died of something other than our SIGKILL or a clean finish. */
static int server_cycle(struct driver *d, uint32_t cycle);

static int one_cycle(struct driver *d, uint32_t cycle)
{
    if (d->mode == M_SERVER)
        return server_cycle(d, cycle);
    /* A quarter of the kills in the first 0-5 ms (klog_open's recovery), the
     * rest spread over 0..kill_ms of producing. */
    uint64_t r = rnd();
    useconds_t delay = (r & 3) == 0 ? (useconds_t)((r >> 8) % 5000)
                                    : (useconds_t)((r >> 8) % ((uint64_t)kill_ms * 1000 + 1));
    if ((r & 3) == 0)
        d->kills_early++;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0)
        writer_main(d->dir, d->mode, cycle);
    usleep(delay);
    kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        d->clean_exits++;
        return 0;
    }
    fail(d, cycle, "writer died: %s %d", WIFSIGNALED(st) ? "signal" : "exit",
         WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    return -1;
}

/* ---- server mode: `klog serve` killed under a librdkafka producer ----- */

#ifdef TORTURE_RDKAFKA
static void rk_set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "client: %s: %s\n", k, err);
        _exit(8);
    }
}

static void client_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    if (m->err)
        return; /* not acknowledged */
    struct ack a = {.kind = ACK_RECORD, .cycle = (uint32_t)(uintptr_t)opaque, .thread = 0,
                    .seq = (uint32_t)(uintptr_t)m->_private, .partition = m->partition,
                    .offset = m->offset};
    ack_write(&a);
}

/* The producer: librdkafka, idempotent, acks=all, one thread of records
 * (thread 0); its delivery reports go to DIR/acks as the writer's do. */
static void __attribute__((noreturn)) client_main(const char *dir, const char *bootstrap,
                                                  uint32_t cycle)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/acks", dir);
    ack_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (ack_fd < 0)
        _exit(2);
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rk_set(c, "bootstrap.servers", bootstrap);
    rk_set(c, "enable.idempotence", "true");
    rk_set(c, "acks", "all");
    rk_set(c, "linger.ms", "1");
    rk_set(c, "batch.num.messages", "32");
    rk_set(c, "log_level", "0"); /* the refused connections after the kill are expected */
    rd_kafka_conf_set_dr_msg_cb(c, client_dr);
    rd_kafka_conf_set_opaque(c, (void *)(uintptr_t)cycle);
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "client: rd_kafka_new: %s\n", err);
        _exit(8);
    }
    unsigned char val[MAX_VAL];
    char key[32];
    for (uint32_t seq = 0; seq < PER_THREAD * NTHREADS; seq++) {
        int kl = make_key(key, sizeof key, 0, seq);
        size_t vl = make_value(val, M_SERVER, cycle, 0, seq);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(key, (size_t)kl),
                RD_KAFKA_V_VALUE(val, vl), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_OPAQUE((void *)(uintptr_t)seq), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                break;
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "client: producev: %s\n", rd_kafka_err2str(e));
                _exit(8);
            }
            rd_kafka_poll(rk, 1);
        }
        rd_kafka_poll(rk, 0);
        if (seq % 16 == 15)
            rd_kafka_flush(rk, 1000); /* keep kills landing among acks */
    }
    rd_kafka_flush(rk, 30000);
    rd_kafka_destroy(rk);
    _exit(0);
}

/* Start `klog -d DIR/data serve` on a port the kernel picks. */
static pid_t serve_start(struct driver *d, int *out_fd)
{
    char data[4096];
    snprintf(data, sizeof data, "%s/data", d->dir);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -1;
    const char *bin = getenv("KLOG_BIN") ? getenv("KLOG_BIN") : KLOG_CLI;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the driver */
        dup2(pfd[1], 1);
        execl(bin, bin, "-d", data, "serve", "--listen", "tcp://127.0.0.1:0", "-q", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    *out_fd = pfd[0];
    return pid;
}

/* The listening address from klog serve's first line, within 30 s. */
static int serve_address(int fd, char *addr, size_t size)
{
    char line[512];
    size_t n = 0;
    double end = now_s() + 30;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((end - now_s()) * 1000);
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return -1;
        ssize_t r = read(fd, line + n, sizeof line - 1 - n);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        line[n] = 0;
        const char *at = strstr(line, "listening on tcp://");
        if (at && strchr(at, '\n')) {
            at += strlen("listening on tcp://");
            size_t l = strcspn(at, " \r\n");
            if (l >= size)
                return -1;
            memcpy(addr, at, l);
            addr[l] = 0;
            return 0;
        }
        if (n >= sizeof line - 1)
            return -1;
    }
}

static void reap(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* One kill of the server: start it, start the client once it listens, kill
 * the server at a random moment (a quarter of the time within 5 ms of its
 * start, inside klog_open), then the client. */
static int server_cycle(struct driver *d, uint32_t cycle)
{
    if (cycle % reset_every_g == 0) {
        /* the topic exists before the server starts: made in-process */
        char data[4096];
        snprintf(data, sizeof data, "%s/data", d->dir);
        klog *k = NULL;
        klog_conf *tc = NULL;
        int rc = open_dir(&k, data, M_SERVER, &tc);
        if (rc == 0)
            rc = klog_topic_create(k, TOPIC, NPART, tc, NULL, 0);
        klog_conf_free(tc);
        klog_close(k);
        if (rc != 0 && rc != -EEXIST) {
            fail(d, cycle, "creating the topic: %s", klog_strerror(rc));
            return -1;
        }
    }
    uint64_t r = rnd();
    long window = kill_ms == 150 ? 800 : kill_ms;
    useconds_t delay = (r & 3) == 0 ? (useconds_t)((r >> 8) % 5000)
                                    : (useconds_t)((r >> 8) % ((uint64_t)window * 1000 + 1));
    fflush(NULL);
    int fd = -1;
    pid_t srv = serve_start(d, &fd);
    if (srv < 0) {
        fail(d, cycle, "cannot start klog serve");
        return -1;
    }
    pid_t cli = -1;
    if ((r & 3) == 0) {
        d->kills_early++;
        usleep(delay);
    } else {
        char addr[256];
        if (serve_address(fd, addr, sizeof addr) != 0) {
            close(fd);
            reap(srv);
            fail(d, cycle, "klog serve did not listen within 30 s");
            return -1;
        }
        fflush(NULL);
        cli = fork();
        if (cli == 0)
            client_main(d->dir, addr, cycle);
        usleep(delay);
    }
    close(fd);
    kill(srv, SIGKILL);
    int st = 0;
    while (waitpid(srv, &st, 0) < 0 && errno == EINTR)
        ;
    /* the client outlives the server a moment: what it was told stays told */
    usleep(20000);
    reap(cli);
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        return 0;
    fail(d, cycle, "klog serve died: %s %d", WIFSIGNALED(st) ? "signal" : "exit",
         WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    return -1;
}
#else
static int server_cycle(struct driver *d, uint32_t cycle)
{
    fail(d, cycle, "server mode needs librdkafka (built without it)");
    return -1;
}
#endif

/* ---- recovery time after kill -9 on a large log --------------------- */

static void fadvise_tree(const char *dir)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            fadvise_tree(p);
        } else if (S_ISREG(st.st_mode)) {
            int fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                fdatasync(fd);
                posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
                close(fd);
            }
        }
    }
    closedir(dh);
}

static int recovery_bench(const char *dir, double gib)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data", dir);
    rm_rf(path);
    uint64_t target = (uint64_t)(gib * 1024 * 1024 * 1024);
    int pfd[2];
    if (pipe(pfd) != 0)
        return 2;
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        klog *k = NULL;
        klog_conf *tc = NULL;
        klog_conf_new(&tc);
        if (klog_open(&k, path, NULL, NULL, 0) != 0 ||
            klog_topic_create(k, TOPIC, 1, tc, NULL, 0) != 0)
            _exit(2);
        klog_conf *pc = NULL;
        klog_conf_new(&pc);
        klog_conf_set(pc, "acks", "1", NULL, 0);
        klog_conf_set(pc, "linger.ms", "5", NULL, 0);
        klog_producer *p = NULL;
        if (klog_producer_new(k, pc, &p, NULL, 0) != 0)
            _exit(2);
        static unsigned char val[1000];
        for (size_t i = 0; i < sizeof val; i++)
            val[i] = (unsigned char)mix64(i);
        uint64_t bytes = 0;
        char key[32];
        for (uint64_t i = 0; bytes < target; i++) {
            klog_record r = KLOG_RECORD_INIT;
            r.partition = 0;
            r.key = key;
            r.key_len = (size_t)snprintf(key, sizeof key, "k%" PRIu64, i);
            r.value = val;
            r.value_len = sizeof val;
            if (klog_producer_send(p, TOPIC, &r) != 0)
                _exit(2);
            bytes += sizeof val + r.key_len + 20;
        }
        klog_producer_flush(p, -1);
        /* tell the parent, then wait for the kill with the instance open */
        if (write(pfd[1], "x", 1) != 1)
            _exit(2);
        for (;;)
            pause();
    }
    close(pfd[1]);
    char b;
    if (read(pfd[0], &b, 1) != 1) {
        fprintf(stderr, "recovery-bench: the writer failed\n");
        return 2;
    }
    close(pfd[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    /* The same crashed state twice: DIR/data for the cold open, a copy
     * (in the page cache, as cp just wrote it) for the warm one. */
    char warm[4200], cmd[8600];
    snprintf(warm, sizeof warm, "%s/data.warm", dir);
    rm_rf(warm);
    snprintf(cmd, sizeof cmd, "cp -a -- '%s' '%s'", path, warm);
    if (system(cmd) != 0) {
        fprintf(stderr, "recovery-bench: %s failed\n", cmd);
        return 2;
    }
    double t[2];
    int64_t end[2] = {0, 0};
    uint64_t disk = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *d = pass == 0 ? path : warm;
        if (pass == 0)
            fadvise_tree(d); /* cold: nothing of it in the page cache */
        klog *k = NULL;
        double t0 = now_s();
        int rc = klog_open(&k, d, NULL, NULL, 0);
        t[pass] = now_s() - t0;
        if (rc != 0) {
            fprintf(stderr, "recovery-bench: open %s: %s\n", d, klog_strerror(rc));
            return 1;
        }
        klog_partition_info pi[1];
        pi[0].struct_size = sizeof pi[0];
        klog_topic_describe(k, TOPIC, pi, 1, NULL, 0);
        end[pass] = pi[0].end_offset;
        klog_disk_usage(k, &disk, NULL);
        klog_close(k);
    }
    printf("recovery-bench: %.2f GiB on disk, %lld records (%lld in the copy), klog_open after "
           "kill -9: cold %.3f s, warm %.3f s\n",
           (double)disk / (1 << 30), (long long)end[0], (long long)end[1], t[0], t[1]);
    rm_rf(path);
    rm_rf(warm);
    return end[0] == end[1] ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: klog_torture --mode plain|roll|retention|compact|group|all --cycles N\n"
            "                    --seed S --dir D [--reset-every K] [--kill-ms MS]\n"
            "       klog_torture --recovery-bench --dir D [--gib G]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *mode = "plain", *dir = NULL;
    long cycles = 100, reset_every = 40;
    uint64_t seed = 1;
    int bench = 0;
    double gib = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--selftest")) {
            selftest = 1;
            continue;
        }
        if (!strcmp(a, "--recovery-bench")) {
            bench = 1;
            continue;
        }
        if (!v)
            usage();
        if (!strcmp(a, "--mode"))
            mode = v;
        else if (!strcmp(a, "--cycles"))
            cycles = strtol(v, NULL, 10);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--dir"))
            dir = v;
        else if (!strcmp(a, "--reset-every"))
            reset_every = strtol(v, NULL, 10);
        else if (!strcmp(a, "--kill-ms"))
            kill_ms = strtol(v, NULL, 10);
        else if (!strcmp(a, "--gib"))
            gib = strtod(v, NULL);
        else
            usage();
        i++;
    }
    reset_every_g = reset_every;
    if (!dir || cycles < 0 || reset_every < 1 || gib <= 0 || kill_ms < 1 || kill_ms > 600000)
        usage();
    mkdir(dir, 0755);
    if (bench)
        return recovery_bench(dir, gib);
    int first, last;
    if (!strcmp(mode, "all")) {
        first = 0;
        last = M_GROUP;
    } else {
        for (first = 0; first < M_NMODES && strcmp(mode_names[first], mode); first++)
            ;
        if (first == M_NMODES)
            usage();
        last = first;
    }
    rng_state = seed;
    double t0 = now_s();
    uint64_t total_checked = 0, total_losses = 0, total_fail = 0;
    long done = 0;
    int nmodes = last - first + 1;
    for (int m = first; m <= last; m++) {
        struct driver d = {.mode = (enum mode)m, .dir = dir};
        long n = cycles / nmodes + (m - first < cycles % nmodes ? 1 : 0);
        reset_dir(&d);
        long c;
        for (c = 0; c < n; c++) {
            if (c > 0 && c % reset_every == 0)
                reset_dir(&d);
            if (one_cycle(&d, (uint32_t)c) != 0 || check(&d, (uint32_t)c) != 0)
                break;
        }
        done += c;
        printf("torture: mode %-9s cycles %ld acked %" PRIu64 " records checked %" PRIu64
               " losses %" PRIu64 " failures %" PRIu64 " (early kills %" PRIu64
               ", writer finished %" PRIu64 ", commits %" PRIu64 ", below start %" PRIu64
               ", compacted %" PRIu64 ", partitions seen cleaned %" PRIu64 ")\n",
               mode_names[m], c, d.acked, d.records_checked, d.losses, d.failures, d.kills_early,
               d.clean_exits, d.commits, d.retained_away, d.compacted_away, d.cleaned_parts);
        total_checked += d.records_checked;
        total_losses += d.losses;
        total_fail += d.failures;
        if (d.failures) {
            printf("torture: the directory is left as it failed: %s\n", dir);
            break;
        }
        reset_dir(&d);
    }
    printf("torture: seed %" PRIu64 " cycles %ld records checked %" PRIu64 " losses %" PRIu64
           " failures %" PRIu64 " time %.1f s\n",
           seed, done, total_checked, total_losses, total_fail, now_s() - t0);
    return total_losses || total_fail ? 1 : 0;
}
