/*
 * lib/replication/quorum.c - the quorum controller backend: libraft with
 * a raft_io of klog's (its files through kio, its messages through the
 * replication channels, its time and randomness from the caller), the
 * metadata state machine, and the controller the raft leader hosts.
 * quorum.h has the rules.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include <klog/topic.h>

#include "common/common.h"
#include "format/format.h"
#include "replication/internal.h"
#include "replication/quorum.h"
#include "storage/storage.h"

#define LOG_MAX (64u << 20)          /* the metadata log read at start */
#define OUTBOX_MAX (4u << 20)        /* raft messages queued per destination */
#define FRAME_ENTRIES_MAX 65536u
#define REC_HDR 8u                   /* [len u32][crc u32] */
#define REC_FIXED 10u                /* [term u64][type u16] */

enum { CMD_SET = 1, CMD_REG = 2, CMD_TOPIC = 3, CMD_DEL = 4 };
enum { DONE_APPEND = 1, DONE_SEND, DONE_WORK, DONE_SNAP_PUT, DONE_SNAP_GET };
#define SNAP_MAGIC "klogsnp1"
#define SNAP_FIXED (8u + 8 + 8 + 8 + 4)  /* magic, index, term, conf index, conf length */

typedef struct qpart {
    char topic[KLOG_TOPIC_NAME_MAX + 1];
    int32_t index;
    krep_pstate st;
    /* the leader's proposal in flight for it */
    bool pend;
    int32_t pend_base;
    int64_t pend_ms;
    krep_pstate pend_st;
} qpart;

/* A topic's record (replication.h): its configuration, or a tombstone. */
typedef struct qtopic {
    char name[KLOG_TOPIC_NAME_MAX + 1];
    char *config;                 /* "key=value\n" lines, "" none */
    bool deleted;
} qtopic;

typedef struct qnode {
    int32_t id;
    int64_t inc;                  /* registered (committed) incarnation, 0 none */
    int64_t heard_ms;             /* leader-local: last AlterPartition from it */
    int64_t reg_inc, reg_ms;      /* leader-local: the registration proposed */
    bool refused;                 /* leader-local: its address refused a connection since */
} qnode;

typedef struct qdest {
    int32_t id;
    uint8_t *buf;                 /* encoded messages */
    size_t len, cap;
    uint32_t nmsg;
    bool busy;
    int32_t corr;
    int64_t backoff_until;
} qdest;

typedef struct qdone {
    int kind;
    void *req;
    int status;
    raft_id leader;               /* an append of a leader's entries: who, in which term, */
    raft_term term;
    raft_index cap;               /* and the last index they match the leader's log at (0: none) */
    struct raft_snapshot *snap;   /* DONE_SNAP_GET: what was read */
} qdone;

struct krep_quorum {
    pthread_mutex_t mu;
    krep_quorum_config cfg;
    kio *io;
    char dir[4096];
    krep_node *node;
    struct raft raft;
    struct raft_io rio;
    struct raft_fsm fsm;
    bool raft_inited, closed;
    bool failed;                  /* a write of raft's files failed: this voter stopped */
    /* What a follower may acknowledge to its leader.  libraft 0.15 answers
     * a heartbeat with its last stored index, entries past the point where
     * its log matches the leader's included (an old term's, not truncated
     * yet); a leader counting them committed an entry only it held (the
     * simulation's seed 230).  So a success answer is capped at the end of
     * what the leader sent that this node accepted: ack_matched for
     * ack_leader in ack_term; ae_* while an AppendEntries is handed to
     * raft. */
    raft_id ack_leader;
    raft_term ack_term;
    raft_index ack_matched;
    bool in_ae;
    raft_id ae_from;
    raft_term ae_term;
    raft_index ae_end;
    int64_t now;
    int64_t skew;                 /* raft's clock is now + skew (a lost leader: krep_quorum_refused) */
    int32_t lost_leader;          /* the raft leader whose address refused (0 none) */
    raft_time skewed_start;       /* the election timer start skew was last set for */
    uint64_t rng;
    /* raft_io state */
    unsigned tick_ms;
    int64_t next_tick;
    int64_t next_rebalance;      /* the controller's next leader rebalance (0: not set yet) */
    raft_io_tick_cb tick_cb;
    raft_io_recv_cb recv_cb;
    int logh;
    uint64_t logsize;
    uint64_t *offs;               /* file offset of entry start + i */
    raft_index start;             /* the index of raft.log's first entry (1, or after a snapshot) */
    raft_index snap_index;        /* raft.snap's last index and term (0: none) */
    raft_term snap_term;
    raft_id inst_from;            /* the InstallSnapshot handed to raft: from whom, */
    raft_term inst_term;          /* in which term, */
    raft_index inst_index;        /* up to which index (0: none) */
    size_t noffs, offcap;
    uint8_t *loadbuf;             /* the log as read at open, until load */
    raft_term term;
    raft_id vote;
    qdone *done;
    size_t ndone, donecap;
    qdest dests[KREP_MAX_NODES];
    int ndests;
    char addrs[KREP_MAX_NODES][24];
    /* the state machine */
    qpart **parts;
    size_t nparts, pcap;
    qnode nodes[KREP_MAX_NODES];
    int nnodes;
    qtopic **topics;
    size_t ntopics, tcap;
    uint64_t hash;
    /* the controller */
    krep_ctl *ctl;
    krep_ctl *retired[256];       /* replaced: other threads may still hold them (freed at close) */
    int nretired;
    raft_term ctl_term;
    raft_term ready_term;         /* a barrier of this term applied: the FSM is current */
    raft_term barrier_term;
    kk_arena arena;
    krep_mem mem;
};

/* ---- small helpers ------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

/* The bounded reader (internal.h). */
typedef krep_rd rd;
static uint8_t rd8(rd *r) { return (uint8_t)krep_rd_be(r, 1); }
static uint16_t rd16(rd *r) { return (uint16_t)krep_rd_be(r, 2); }
static uint32_t rd32(rd *r) { return (uint32_t)krep_rd_be(r, 4); }
static uint64_t rd64(rd *r) { return krep_rd_be(r, 8); }

/* A growable byte buffer (for commands: raft_malloc'd, raft frees them). */
typedef struct wr {
    uint8_t *p;
    size_t n, cap;
    bool bad;
} wr;
static uint8_t *wr_room(wr *w, size_t k)
{
    if (w->bad)
        return NULL;
    if (w->n + k > w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 128;
        while (nc < w->n + k)
            nc *= 2;
        uint8_t *np = raft_realloc(w->p, nc);
        if (!np) {
            w->bad = true;
            return NULL;
        }
        w->p = np;
        w->cap = nc;
    }
    uint8_t *at = w->p + w->n;
    w->n += k;
    return at;
}
static void wr8(wr *w, uint8_t v)
{
    uint8_t *p = wr_room(w, 1);
    if (p)
        *p = v;
}
static void wr16(wr *w, uint16_t v)
{
    uint8_t *p = wr_room(w, 2);
    if (p)
        put16(p, v);
}
static void wr32(wr *w, uint32_t v)
{
    uint8_t *p = wr_room(w, 4);
    if (p)
        put32(p, v);
}
static void wr64(wr *w, uint64_t v)
{
    uint8_t *p = wr_room(w, 8);
    if (p)
        put64(p, v);
}
static void wrraw(wr *w, const void *s, size_t k)
{
    uint8_t *p = wr_room(w, k);
    if (p && k)
        memcpy(p, s, k);
}

static qnode *qnode_of(krep_quorum *q, int32_t id, bool add)
{
    for (int i = 0; i < q->nnodes; i++)
        if (q->nodes[i].id == id)
            return &q->nodes[i];
    if (!add || q->nnodes == KREP_MAX_NODES)
        return NULL;
    q->nodes[q->nnodes] = (qnode){ .id = id, .heard_ms = q->now };
    return &q->nodes[q->nnodes++];
}

static qpart *qpart_find(krep_quorum *q, const char *topic, int32_t index)
{
    for (size_t i = 0; i < q->nparts; i++)
        if (q->parts[i]->index == index && strcmp(q->parts[i]->topic, topic) == 0)
            return q->parts[i];
    return NULL;
}

static qtopic *qtopic_find(krep_quorum *q, const char *name)
{
    for (size_t i = 0; i < q->ntopics; i++)
        if (strcmp(q->topics[i]->name, name) == 0)
            return q->topics[i];
    return NULL;
}

static void topics_free(qtopic **t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i]->config);
        free(t[i]);
    }
    free(t);
}

static bool is_leader(krep_quorum *q) { return raft_state(&q->raft) == RAFT_LEADER; }
/* Leads, and its state machine holds everything committed before its term. */
static bool ready(krep_quorum *q) { return is_leader(q) && q->ready_term == q->raft.current_term; }

static bool live(krep_quorum *q, int32_t id)
{
    qnode *n = qnode_of(q, id, false);
    return n && n->inc > 0 && !n->refused && q->now - n->heard_ms <= q->cfg.session_timeout_ms;
}

void krep_quorum_config_init(krep_quorum_config *c)
{
    memset(c, 0, sizeof *c);
    c->seed = 1;
    c->election_timeout_ms = 1000;
    c->heartbeat_timeout_ms = 100;
    c->session_timeout_ms = 6000;
    c->propose_retry_ms = 500;
    c->snapshot_threshold = 1024;
    c->snapshot_trailing = 128;
}

/* ---- the files ------------------------------------------------------------------------------- */

static int meta_write(krep_quorum *q, raft_term term, raft_id vote)
{
    char b[96];
    int n = snprintf(b, sizeof b, "klog-raft 1 %llu %llu\n", (unsigned long long)term, (unsigned long long)vote);
    int rc = ks_write_atomic(q->io, q->dir, KREP_RAFT_META, b, (size_t)n);
    if (rc < 0) {
        q->failed = true;
        return RAFT_IOERR;
    }
    q->term = term;
    q->vote = vote;
    return 0;
}

static int meta_read(krep_quorum *q)
{
    char path[4200], b[128];
    snprintf(path, sizeof path, "%s/%s", q->dir, KREP_RAFT_META);
    ssize_t n = ks_read_small(q->io, path, b, sizeof b - 1);
    if (n == -ENOENT)
        return 0;
    if (n < 0)
        return (int)n;
    b[n] = 0;
    unsigned long long t, v;
    if (sscanf(b, "klog-raft 1 %llu %llu", &t, &v) != 2)
        return KLOG_ECORRUPT;
    q->term = t;
    q->vote = v;
    return 0;
}

static int offs_push(krep_quorum *q, uint64_t off)
{
    if (klog__vec_reserve(&q->offs, &q->offcap, q->noffs + 1, sizeof *q->offs) < 0)
        return -ENOMEM;
    q->offs[q->noffs++] = off;
    return 0;
}

/* Open raft.log, index its records, cut a torn tail. */
static int log_open(krep_quorum *q, char *errbuf, size_t errsize)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", q->dir, KREP_RAFT_LOG);
    int h = kio_file_open(q->io, path, KIO_O_RDWR | KIO_O_CREAT, 0644);
    if (h < 0)
        return klog__errf(errbuf, errsize, h, "%s: %s", path, klog_strerror(h));
    q->logh = h;
    int rc = kio_dirsync(q->io, q->dir); /* a new file's entry is durable */
    uint64_t size = 0;
    if (rc == 0)
        rc = kio_size(q->io, h, &size);
    if (rc < 0)
        return klog__errf(errbuf, errsize, rc, "%s: %s", path, klog_strerror(rc));
    if (size > LOG_MAX)
        return klog__errf(errbuf, errsize, KLOG_ECORRUPT, "%s: larger than %u bytes", path, LOG_MAX);
    q->loadbuf = malloc(size + 1);
    if (!q->loadbuf)
        return -ENOMEM;
    for (uint64_t at = 0; at < size;) {
        ssize_t r = kio_pread(q->io, h, q->loadbuf + at, (size_t)(size - at), at);
        if (r <= 0)
            return klog__errf(errbuf, errsize, r < 0 ? (int)r : KLOG_ECORRUPT, "%s: read failed", path);
        at += (uint64_t)r;
    }
    uint64_t off = 0;
    while (size - off >= REC_HDR + REC_FIXED) {
        uint32_t len = get32(q->loadbuf + off), crc = get32(q->loadbuf + off + 4);
        if (len < REC_FIXED || len > size - off - REC_HDR || kf_crc32c(0, q->loadbuf + off + REC_HDR, len) != crc)
            break;
        if (off == 0 && get16(q->loadbuf + REC_HDR + 8) == KREP_RAFT_START) {
            /* the log starts after a snapshot */
            if (len != REC_FIXED + 8 || get64(q->loadbuf + REC_HDR + REC_FIXED) < 1)
                return klog__errf(errbuf, errsize, KLOG_ECORRUPT, "%s: a bad start record", path);
            q->start = get64(q->loadbuf + REC_HDR + REC_FIXED);
            off += REC_HDR + len;
            continue;
        }
        if (offs_push(q, off) < 0)
            return -ENOMEM;
        off += REC_HDR + len;
    }
    if (off != size) {
        /* a record cut by a crash (never acknowledged: appends complete
         * after their sync) */
        rc = kio_truncate(q->io, h, off);
        if (rc == 0)
            rc = kio_datasync(q->io, h);
        if (rc < 0)
            return klog__errf(errbuf, errsize, rc, "%s: cutting a torn tail: %s", path, klog_strerror(rc));
    }
    q->logsize = off;
    if (q->noffs == 0 && off == 0)
        q->start = 1;
    return 0;
}

static int log_append(krep_quorum *q, const struct raft_entry *e, unsigned n)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += REC_HDR + REC_FIXED + e[i].buf.len;
    uint8_t *b = malloc(total + 1);
    if (!b)
        return RAFT_NOMEM;
    size_t at = 0;
    size_t first = q->noffs;
    for (unsigned i = 0; i < n; i++) {
        uint8_t *r = b + at;
        uint32_t len = (uint32_t)(REC_FIXED + e[i].buf.len);
        put64(r + REC_HDR, e[i].term);
        put16(r + REC_HDR + 8, e[i].type);
        if (e[i].buf.len)
            memcpy(r + REC_HDR + REC_FIXED, e[i].buf.base, e[i].buf.len);
        put32(r, len);
        put32(r + 4, kf_crc32c(0, r + REC_HDR, len));
        if (offs_push(q, q->logsize + at) < 0) {
            q->noffs = first;
            free(b);
            return RAFT_NOMEM;
        }
        at += REC_HDR + len;
    }
    struct iovec iov = { b, total };
    int rc = kio_pwritev(q->io, q->logh, &iov, 1, q->logsize);
    if (rc == 0)
        rc = kio_datasync(q->io, q->logh);
    free(b);
    if (rc < 0) {
        q->noffs = first;
        q->failed = true;
        return RAFT_IOERR;
    }
    q->logsize += total;
    return 0;
}

/* ---- snapshots: raft.snap and cutting raft.log -------------------------------------------------- */

/* A configuration as [n u32] then per server [id u64][role u8][address
 * length u16][address] (libraft 0.15 exports no decoder of its own). */
static void wr_conf(wr *w, const struct raft_configuration *c)
{
    wr32(w, c->n);
    for (unsigned i = 0; i < c->n; i++) {
        const char *a = c->servers[i].address ? c->servers[i].address : "";
        size_t al = strlen(a);
        wr64(w, c->servers[i].id), wr8(w, (uint8_t)c->servers[i].role), wr16(w, (uint16_t)al);
        wrraw(w, a, al);
    }
}

static bool rd_conf(rd *r, struct raft_configuration *c)
{
    raft_configuration_init(c);
    uint32_t n = rd32(r);
    if (n > KREP_MAX_NODES)
        return false;
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        raft_id id = rd64(r);
        int role = rd8(r);
        uint16_t al = rd16(r);
        const uint8_t *a = krep_rd_take(r, al);
        char addr[256];
        if (!a || al >= sizeof addr)
            return false;
        memcpy(addr, a, al);
        addr[al] = 0;
        if (raft_configuration_add(c, id, addr, role) != 0)
            return false;
    }
    return !r->bad;
}

/* Read a whole file of dir (at most LOG_MAX bytes): 0, -ENOENT, -errno. */
static int read_whole(krep_quorum *q, const char *name, uint8_t **out, size_t *len)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", q->dir, name);
    *out = NULL;
    *len = 0;
    int h = kio_file_open(q->io, path, KIO_O_RDONLY, 0);
    if (h < 0)
        return h;
    uint64_t size = 0;
    int rc = kio_size(q->io, h, &size);
    if (rc == 0 && size > LOG_MAX)
        rc = KLOG_ECORRUPT;
    uint8_t *b = rc == 0 ? malloc(size + 1) : NULL;
    if (rc == 0 && !b)
        rc = -ENOMEM;
    for (uint64_t at = 0; rc == 0 && at < size;) {
        ssize_t n = kio_pread(q->io, h, b + at, (size_t)(size - at), at);
        if (n <= 0)
            rc = n < 0 ? (int)n : KLOG_ECORRUPT;
        else
            at += (uint64_t)n;
    }
    kio_file_close(q->io, h);
    if (rc < 0) {
        free(b);
        return rc;
    }
    *out = b;
    *len = (size_t)size;
    return 0;
}

/* raft.snap, read and checked: a snapshot raft owns after (raft_malloc'd,
 * its configuration built), or NULL with 0 when there is none. */
static int snap_read(krep_quorum *q, struct raft_snapshot **out)
{
    *out = NULL;
    uint8_t *b;
    size_t n;
    int rc = read_whole(q, KREP_RAFT_SNAP, &b, &n);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    rd r = { b, n, 0, false };
    const uint8_t *magic = krep_rd_take(&r, 8);
    struct raft_snapshot *sn = raft_calloc(1, sizeof *sn);
    if (!sn) {
        free(b);
        return -ENOMEM;
    }
    rc = KLOG_ECORRUPT;
    if (magic && memcmp(magic, SNAP_MAGIC, 8) == 0 && n >= SNAP_FIXED + 8 &&
        kf_crc32c(0, b, n - 4) == get32(b + n - 4)) {
        r.n = n - 4;
        sn->index = rd64(&r);
        sn->term = rd64(&r);
        sn->configuration_index = rd64(&r);
        uint32_t cl = rd32(&r);
        rd cr = { krep_rd_take(&r, cl), cl, 0, false };
        bool conf_ok = cr.p && rd_conf(&cr, &sn->configuration);
        uint32_t dl = rd32(&r);
        const uint8_t *d = krep_rd_take(&r, dl);
        sn->bufs = raft_malloc(sizeof *sn->bufs);
        uint8_t *data = raft_malloc(dl + 1);
        if (!sn->bufs || !data) {
            rc = -ENOMEM;
        } else if (conf_ok && d && r.at == r.n && sn->index > 0) {
            memcpy(data, d, dl);
            sn->bufs[0].base = data;
            sn->bufs[0].len = dl;
            sn->n_bufs = 1;
            data = NULL;
            rc = 0;
        }
        raft_free(data);
    }
    free(b);
    if (rc < 0) {
        raft_configuration_close(&sn->configuration);
        raft_free(sn->bufs);
        raft_free(sn);
        return rc;
    }
    *out = sn;
    return 0;
}

static void snap_free(struct raft_snapshot *sn)
{
    if (!sn)
        return;
    raft_configuration_close(&sn->configuration);
    for (unsigned i = 0; i < sn->n_bufs; i++)
        raft_free(sn->bufs[i].base);
    raft_free(sn->bufs);
    raft_free(sn);
}

static int snap_write(krep_quorum *q, const struct raft_snapshot *sn)
{
    wr w = { 0 };
    wrraw(&w, SNAP_MAGIC, 8);
    wr64(&w, sn->index), wr64(&w, sn->term), wr64(&w, sn->configuration_index);
    wr c = { 0 };
    wr_conf(&c, &sn->configuration);
    wr32(&w, (uint32_t)c.n);
    wrraw(&w, c.p, c.n);
    raft_free(c.p);
    size_t dl = 0;
    for (unsigned i = 0; i < sn->n_bufs; i++)
        dl += sn->bufs[i].len;
    wr32(&w, (uint32_t)dl);
    for (unsigned i = 0; i < sn->n_bufs; i++)
        wrraw(&w, sn->bufs[i].base, sn->bufs[i].len);
    int rc = c.bad || w.bad || dl > LOG_MAX ? -ENOMEM : 0;
    if (rc == 0) {
        wr32(&w, kf_crc32c(0, w.p, w.n));
        rc = w.bad ? -ENOMEM : ks_write_atomic(q->io, q->dir, KREP_RAFT_SNAP, w.p, w.n);
    }
    raft_free(w.p);
    if (rc == 0) {
        q->snap_index = sn->index;
        q->snap_term = sn->term;
    }
    return rc;
}

/* Rewrite raft.log to hold the entries from index `from` on (none when
 * from is past its end), after a start record naming from; atomically. */
static int log_cut(krep_quorum *q, raft_index from)
{
    raft_index end = q->start + q->noffs; /* one past the last entry */
    uint64_t pos = from < end ? q->offs[from - q->start] : q->logsize;
    size_t keep = (size_t)(q->logsize - pos);
    size_t head = REC_HDR + REC_FIXED + 8;
    uint8_t *b = malloc(head + keep + 1);
    if (!b)
        return -ENOMEM;
    put32(b, REC_FIXED + 8);
    put64(b + REC_HDR, 0);
    put16(b + REC_HDR + 8, KREP_RAFT_START);
    put64(b + REC_HDR + REC_FIXED, from);
    put32(b + 4, kf_crc32c(0, b + REC_HDR, REC_FIXED + 8));
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < keep;) {
        ssize_t n = kio_pread(q->io, q->logh, b + head + at, keep - at, pos + at);
        if (n <= 0)
            rc = n < 0 ? (int)n : KLOG_ECORRUPT;
        else
            at += (size_t)n;
    }
    if (rc == 0)
        rc = ks_write_atomic(q->io, q->dir, KREP_RAFT_LOG, b, head + keep);
    free(b);
    if (rc < 0)
        return rc;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", q->dir, KREP_RAFT_LOG);
    int h = kio_file_open(q->io, path, KIO_O_RDWR, 0644);
    if (h < 0)
        return h;
    kio_file_close(q->io, q->logh);
    q->logh = h;
    size_t k = from < end ? (size_t)(from - q->start) : q->noffs;
    for (size_t i = k; i < q->noffs; i++)
        q->offs[i - k] = q->offs[i] - pos + head;
    q->noffs -= k;
    q->start = from;
    q->logsize = head + keep;
    return 0;
}

/* ---- raft_io ------------------------------------------------------------------------------- */

static krep_quorum *Q(struct raft_io *io) { return io->impl; }

static int io_init(struct raft_io *io, raft_id id, const char *address)
{
    (void)io, (void)id, (void)address;
    return 0;
}

static void ack_note(krep_quorum *q, raft_id leader, raft_term term, raft_index end)
{
    if (q->ack_leader != leader || q->ack_term != term) {
        q->ack_leader = leader;
        q->ack_term = term;
        q->ack_matched = 0;
    }
    if (end > q->ack_matched)
        q->ack_matched = end;
}

static void done_push(krep_quorum *q, int kind, void *req, int status)
{
    if (klog__vec_reserve(&q->done, &q->donecap, q->ndone + 1, sizeof *q->done) < 0) {
        /* cannot queue: complete it now (raft copes; it is out of memory) */
        if (kind == DONE_APPEND)
            ((struct raft_io_append *)req)->cb(req, RAFT_NOMEM);
        else if (kind == DONE_SEND)
            ((struct raft_io_send *)req)->cb(req, RAFT_NOMEM);
        else if (kind == DONE_SNAP_PUT)
            ((struct raft_io_snapshot_put *)req)->cb(req, RAFT_NOMEM);
        else if (kind == DONE_SNAP_GET)
            ((struct raft_io_snapshot_get *)req)->cb(req, NULL, RAFT_NOMEM);
        return;
    }
    q->done[q->ndone++] = (qdone){ kind, req, status, 0, 0, 0, NULL };
    if (kind == DONE_APPEND && q->in_ae) {
        /* accepted: the log matched up to the entries appended */
        q->done[q->ndone - 1].leader = q->ae_from;
        q->done[q->ndone - 1].term = q->ae_term;
        q->done[q->ndone - 1].cap = q->ae_end;
    }
}

/* Deliver the completions queued.  A voter whose files failed delivers
 * nothing more until its close, where everything is delivered as done
 * (raft, unavailable by then, only releases what it held): libraft 0.15
 * crashes on a leader's second failed append, so its failure paths are
 * never taken; a voter with a broken disk stops instead (fail-stop). */
static void done_run(krep_quorum *q, bool closing)
{
    if (q->failed && !closing)
        return;
    for (int round = 0; round < 8 && q->ndone > 0; round++) {
        size_t n = q->ndone;
        qdone *d = malloc(n * sizeof *d);
        if (!d)
            return;
        memcpy(d, q->done, n * sizeof *d);
        q->ndone = 0;
        for (size_t i = 0; i < n; i++) {
            int st = closing ? 0 : d[i].status;
            if (d[i].kind == DONE_APPEND) {
                struct raft_io_append *r = d[i].req;
                if (st == 0 && d[i].cap > 0)
                    ack_note(q, d[i].leader, d[i].term, d[i].cap); /* before raft answers in its callback */
                if (r->cb)
                    r->cb(r, st);
            } else if (d[i].kind == DONE_SEND) {
                struct raft_io_send *r = d[i].req;
                if (r->cb)
                    r->cb(r, st);
            } else if (d[i].kind == DONE_SNAP_PUT) {
                struct raft_io_snapshot_put *r = d[i].req;
                if (st == 0 && d[i].cap > 0)
                    ack_note(q, d[i].leader, d[i].term, d[i].cap); /* an installed snapshot matches */
                if (r->cb)
                    r->cb(r, st);
            } else if (d[i].kind == DONE_SNAP_GET) {
                struct raft_io_snapshot_get *r = d[i].req;
                if (st != 0 || closing) {
                    snap_free(d[i].snap);
                    d[i].snap = NULL;
                }
                if (r->cb)
                    r->cb(r, d[i].snap, d[i].snap ? 0 : (st ? st : RAFT_CANCELED));
                else
                    snap_free(d[i].snap);
            } else {
                struct raft_io_async_work *r = d[i].req;
                if (r->cb)
                    r->cb(r, st);
            }
        }
        free(d);
    }
}

static void io_close(struct raft_io *io, raft_io_close_cb cb)
{
    krep_quorum *q = Q(io);
    q->closed = true;
    done_run(q, true);
    if (cb)
        cb(io);
}

static int io_load(struct raft_io *io, raft_term *term, raft_id *voted_for, struct raft_snapshot **snapshot,
                   raft_index *start_index, struct raft_entry *entries[], size_t *n_entries)
{
    krep_quorum *q = Q(io);
    *term = q->term;
    *voted_for = q->vote;
    *snapshot = NULL;
    *start_index = q->start;
    *entries = NULL;
    *n_entries = 0;
    if (q->snap_index > 0) {
        int rc = snap_read(q, snapshot);
        if (rc < 0 || !*snapshot) {
            snprintf(io->errmsg, sizeof io->errmsg, "%s: %s", KREP_RAFT_SNAP, rc < 0 ? klog_strerror(rc) : "gone");
            return rc == -ENOMEM ? RAFT_NOMEM : RAFT_CORRUPT;
        }
    }
    size_t n = q->noffs;
    if (n == 0)
        return 0;
    /* bootstrap may have appended after the read at open: read it again */
    uint8_t *b = raft_malloc(q->logsize + 1);
    struct raft_entry *e = raft_calloc(n, sizeof *e);
    if (!b || !e) {
        raft_free(b);
        raft_free(e);
        snap_free(*snapshot);
        *snapshot = NULL;
        return RAFT_NOMEM;
    }
    for (uint64_t at = 0; at < q->logsize;) {
        ssize_t r = kio_pread(q->io, q->logh, b + at, (size_t)(q->logsize - at), at);
        if (r <= 0) {
            raft_free(b);
            raft_free(e);
            snap_free(*snapshot);
            *snapshot = NULL;
            return RAFT_IOERR;
        }
        at += (uint64_t)r;
    }
    /* every entry's data points into the one batch b, as libraft expects
     * of load (it frees the batch with the last entry) */
    for (size_t i = 0; i < n; i++) {
        uint8_t *r = b + q->offs[i];
        uint32_t len = get32(r);
        e[i].term = get64(r + REC_HDR);
        e[i].type = get16(r + REC_HDR + 8);
        e[i].buf.base = r + REC_HDR + REC_FIXED;
        e[i].buf.len = len - REC_FIXED;
        e[i].batch = b;
    }
    *entries = e;
    *n_entries = n;
    return 0;
}

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    krep_quorum *q = Q(io);
    q->tick_ms = msecs ? msecs : 1;
    q->tick_cb = tick;
    q->recv_cb = recv;
    q->next_tick = q->now + q->tick_ms;
    return 0;
}

static int io_bootstrap(struct raft_io *io, const struct raft_configuration *conf)
{
    krep_quorum *q = Q(io);
    /* The entry first, then the term: a crash between the two leaves an
     * entry and term 0, which the open takes for term 1; a log without
     * its first entry has never been past this point. */
    if (q->noffs != 0 || q->snap_index > 0 || q->start > 1)
        return RAFT_CANTBOOTSTRAP;
    struct raft_buffer buf;
    int rc = raft_configuration_encode(conf, &buf);
    if (rc != 0)
        return rc;
    struct raft_entry e = { .term = 1, .type = RAFT_CHANGE, .buf = buf };
    rc = log_append(q, &e, 1);
    raft_free(buf.base);
    if (rc == 0)
        rc = meta_write(q, q->term > 1 ? q->term : 1, q->vote);
    return rc;
}

static int io_recover(struct raft_io *io, const struct raft_configuration *conf)
{
    (void)conf;
    snprintf(io->errmsg, sizeof io->errmsg, "recovery is not supported");
    return RAFT_IOERR;
}

static int io_set_term(struct raft_io *io, raft_term term) { return meta_write(Q(io), term, 0); }
static int io_set_vote(struct raft_io *io, raft_id id) { return meta_write(Q(io), Q(io)->term, id); }

static qdest *dest_of(krep_quorum *q, int32_t id)
{
    for (int i = 0; i < q->ndests; i++)
        if (q->dests[i].id == id)
            return &q->dests[i];
    return NULL;
}

/* One message, appended to its destination's queue. */
static int encode_msg(wr *w, const struct raft_message *m)
{
    wr8(w, (uint8_t)m->type);
    switch (m->type) {
    case RAFT_IO_REQUEST_VOTE: {
        const struct raft_request_vote *v = &m->request_vote;
        wr64(w, v->term), wr64(w, v->candidate_id), wr64(w, v->last_log_index), wr64(w, v->last_log_term);
        wr8(w, v->disrupt_leader), wr8(w, v->pre_vote);
        break;
    }
    case RAFT_IO_REQUEST_VOTE_RESULT: {
        const struct raft_request_vote_result *v = &m->request_vote_result;
        wr64(w, v->term), wr8(w, v->vote_granted), wr8(w, (uint8_t)v->pre_vote);
        break;
    }
    case RAFT_IO_APPEND_ENTRIES: {
        const struct raft_append_entries *a = &m->append_entries;
        wr64(w, a->term), wr64(w, a->prev_log_index), wr64(w, a->prev_log_term), wr64(w, a->leader_commit);
        wr32(w, a->n_entries);
        for (unsigned i = 0; i < a->n_entries; i++) {
            wr64(w, a->entries[i].term), wr16(w, a->entries[i].type), wr32(w, (uint32_t)a->entries[i].buf.len);
            wrraw(w, a->entries[i].buf.base, a->entries[i].buf.len);
        }
        break;
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT: {
        const struct raft_append_entries_result *a = &m->append_entries_result;
        wr64(w, a->term), wr64(w, a->rejected), wr64(w, a->last_log_index);
        break;
    }
    case RAFT_IO_TIMEOUT_NOW: {
        const struct raft_timeout_now *t = &m->timeout_now;
        wr64(w, t->term), wr64(w, t->last_log_index), wr64(w, t->last_log_term);
        break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT: {
        const struct raft_install_snapshot *s = &m->install_snapshot;
        wr64(w, s->term), wr64(w, s->last_index), wr64(w, s->last_term), wr64(w, s->conf_index);
        wr_conf(w, &s->conf);
        wr32(w, (uint32_t)s->data.len);
        wrraw(w, s->data.base, s->data.len);
        break;
    }
    default:
        return RAFT_INVALID;
    }
    return w->bad ? RAFT_NOMEM : 0;
}

static int io_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m, raft_io_send_cb cb)
{
    krep_quorum *q = Q(io);
    req->cb = cb;
    qdest *d = dest_of(q, (int32_t)m->server_id);
    int status = RAFT_NOCONNECTION;
    struct raft_message capped;
    if (m->type == RAFT_IO_APPEND_ENTRIES_RESULT && m->append_entries_result.rejected == 0) {
        /* an AppendEntries accepted as it arrived (nothing to append):
         * its entries match */
        if (q->in_ae && q->ae_from == m->server_id)
            ack_note(q, q->ae_from, q->ae_term, q->ae_end);
        raft_index cap = q->ack_leader == m->server_id && q->ack_term == m->append_entries_result.term ? q->ack_matched : 0;
        if (m->append_entries_result.last_log_index > cap) {
            capped = *m;
            capped.append_entries_result.last_log_index = cap;
            m = &capped;
        }
    }
    if (d && d->len < OUTBOX_MAX) {
        wr w = { 0 };
        status = encode_msg(&w, m);
        if (status == 0) {
            if (klog__vec_reserve(&d->buf, &d->cap, d->len + w.n, 1) < 0) {
                status = RAFT_NOMEM;
            } else {
                memcpy(d->buf + d->len, w.p, w.n);
                d->len += w.n;
                d->nmsg++;
            }
        }
        raft_free(w.p);
    }
    /* raft tolerates lost messages: a full queue is a lost one */
    done_push(q, DONE_SEND, req, status);
    return 0;
}

static int io_append(struct raft_io *io, struct raft_io_append *req, const struct raft_entry entries[], unsigned n,
                     raft_io_append_cb cb)
{
    krep_quorum *q = Q(io);
    req->cb = cb;
    int status = log_append(q, entries, n);
    done_push(q, DONE_APPEND, req, status);
    return 0;
}

static int io_truncate(struct raft_io *io, raft_index index)
{
    krep_quorum *q = Q(io);
    if (index < q->start || index - q->start >= q->noffs)
        return 0;
    uint64_t size = q->offs[index - q->start];
    int rc = kio_truncate(q->io, q->logh, size);
    if (rc == 0)
        rc = kio_datasync(q->io, q->logh);
    if (rc < 0) {
        q->failed = true;
        return RAFT_IOERR;
    }
    q->noffs = (size_t)(index - q->start);
    q->logsize = size;
    return 0;
}

/* Store a snapshot: raft.snap first, then raft.log cut to the entries
 * after it but the last `trailing` (trailing 0: an installed snapshot
 * replaces the whole log).  Synchronous; completes at the next tick. */
static int io_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    krep_quorum *q = Q(io);
    req->cb = cb;
    int rc = snap_write(q, snapshot);
    if (rc == 0) {
        raft_index from = trailing == 0 ? snapshot->index + 1
                          : snapshot->index > trailing ? snapshot->index - trailing + 1 : 1;
        if (from > q->start)
            rc = log_cut(q, from);
    }
    if (rc < 0)
        q->failed = true; /* fail-stop, as for the log */
    done_push(q, DONE_SNAP_PUT, req, rc < 0 ? RAFT_IOERR : 0);
    if (trailing == 0 && rc == 0 && q->ndone > 0 && q->inst_index == snapshot->index) {
        q->done[q->ndone - 1].leader = q->inst_from;
        q->done[q->ndone - 1].term = q->inst_term;
        q->done[q->ndone - 1].cap = snapshot->index;
    }
    return 0;
}

static int io_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req, raft_io_snapshot_get_cb cb)
{
    krep_quorum *q = Q(io);
    req->cb = cb;
    struct raft_snapshot *sn = NULL;
    int rc = snap_read(q, &sn);
    done_push(q, DONE_SNAP_GET, req, rc < 0 ? RAFT_IOERR : sn ? 0 : RAFT_NOTFOUND);
    if (q->ndone > 0 && q->done[q->ndone - 1].req == req)
        q->done[q->ndone - 1].snap = sn;
    else
        snap_free(sn);
    return 0;
}

static raft_time io_time(struct raft_io *io) { return (raft_time)(Q(io)->now + Q(io)->skew); }

static int io_random(struct raft_io *io, int min, int max)
{
    krep_quorum *q = Q(io);
    if (max <= min)
        return min;
    return min + (int)(splitmix(&q->rng) % (uint64_t)(max - min));
}

static int io_async_work(struct raft_io *io, struct raft_io_async_work *req, raft_io_async_work_cb cb)
{
    req->cb = cb;
    done_push(Q(io), DONE_WORK, req, req->work(req));
    return 0;
}

/* ---- the state machine --------------------------------------------------------------------------- */

static void wr_state(wr *w, const krep_pstate *st)
{
    wr32(w, (uint32_t)st->leader), wr32(w, (uint32_t)st->leader_epoch), wr32(w, (uint32_t)st->partition_epoch);
    wr8(w, (uint8_t)st->nreplicas);
    for (int i = 0; i < st->nreplicas; i++)
        wr32(w, (uint32_t)st->replicas[i]);
    wr8(w, (uint8_t)st->nisr);
    for (int i = 0; i < st->nisr; i++)
        wr32(w, (uint32_t)st->isr[i]);
}

static bool rd_state(rd *r, krep_pstate *st)
{
    memset(st, 0, sizeof *st);
    st->leader = (int32_t)rd32(r), st->leader_epoch = (int32_t)rd32(r), st->partition_epoch = (int32_t)rd32(r);
    st->nreplicas = rd8(r);
    if (st->nreplicas < 1 || st->nreplicas > KREP_MAX_NODES)
        return false;
    for (int i = 0; i < st->nreplicas; i++)
        st->replicas[i] = (int32_t)rd32(r);
    st->nisr = rd8(r);
    if (st->nisr > st->nreplicas)
        return false;
    for (int i = 0; i < st->nisr; i++)
        st->isr[i] = (int32_t)rd32(r);
    return !r->bad && st->leader_epoch >= 0 && st->partition_epoch >= 0;
}

static void mirror(krep_quorum *q, const qpart *p)
{
    if (!q->ctl)
        return;
    krep_ctl_put_state(q->ctl, p->topic, p->index, &p->st);
    /* replicas registered before the partition existed */
    for (int i = 0; i < p->st.nreplicas; i++) {
        qnode *n = qnode_of(q, p->st.replicas[i], false);
        if (n && n->inc > 0)
            krep_ctl_register_node(q->ctl, n->id, n->inc);
    }
}

/* A partition's state with its leader out of the ISR: an election on a
 * lost leader, and the preferred election, start from it. */
static krep_pstate state_without_leader(const krep_pstate *cur)
{
    krep_pstate st = *cur;
    int k = 0;
    for (int j = 0; j < st.nisr; j++)
        if (st.isr[j] != cur->leader)
            st.isr[k++] = st.isr[j];
    st.nisr = k;
    return st;
}

static void apply_set(krep_quorum *q, rd *r)
{
    uint16_t tl = rd16(r);
    const uint8_t *tp = krep_rd_take(r, tl);
    int32_t index = (int32_t)rd32(r), expect = (int32_t)rd32(r);
    krep_pstate st;
    if (!rd_state(r, &st) || !tp || tl == 0 || tl > KLOG_TOPIC_NAME_MAX || index < 0)
        return;
    char topic[KLOG_TOPIC_NAME_MAX + 1];
    memcpy(topic, tp, tl);
    topic[tl] = 0;
    qpart *p = qpart_find(q, topic, index);
    if (!p) {
        qtopic *t = qtopic_find(q, topic);
        if (expect != -1 || (t && t->deleted))
            return; /* (a deleted name is created again by its TOPIC first) */
        if (klog__vec_reserve(&q->parts, &q->pcap, q->nparts + 1, sizeof *q->parts) < 0 ||
            !(p = calloc(1, sizeof *p)))
            return; /* out of memory: this voter's state machine can no longer be trusted */
        memcpy(p->topic, topic, tl + 1);
        p->index = index;
        p->st = st;
        q->parts[q->nparts++] = p;
        for (int i = 0; i < st.nreplicas; i++)
            qnode_of(q, st.replicas[i], true);
    } else {
        if (expect != p->st.partition_epoch || st.nreplicas != p->st.nreplicas ||
            memcmp(st.replicas, p->st.replicas, (size_t)st.nreplicas * sizeof *st.replicas) != 0)
            return; /* based on a state since changed: nothing */
        p->st = st;
    }
    if (p->pend && p->st.partition_epoch > p->pend_base)
        p->pend = false;
    mirror(q, p);
}

static void apply_reg(krep_quorum *q, rd *r)
{
    int32_t id = (int32_t)rd32(r);
    int64_t inc = (int64_t)rd64(r);
    int32_t cepoch = (int32_t)rd32(r);
    if (r->bad || inc <= 0)
        return;
    qnode *n = qnode_of(q, id, true);
    if (!n || n->inc == inc)
        return;
    n->inc = inc;
    /* the new run must not lead in an epoch the old one led */
    for (size_t i = 0; i < q->nparts; i++) {
        qpart *p = q->parts[i];
        if (p->st.leader != id)
            continue;
        p->st.leader_epoch = krep_next_epoch(p->st.leader_epoch, cepoch);
        p->st.partition_epoch++;
        p->pend = false;
    }
    if (q->ctl)
        krep_ctl_register_node(q->ctl, id, inc);
    for (size_t i = 0; i < q->nparts; i++)
        if (q->parts[i]->st.leader == id)
            mirror(q, q->parts[i]);
}

/* TOPIC [name u16+bytes][config u32+bytes]: the topic's configuration
 * (a tombstone of the name goes); DEL [name]: the topic's partitions and
 * configuration go, a tombstone stays. */
static qtopic *topic_record(krep_quorum *q, rd *r, bool with_config, char **config)
{
    uint16_t tl = rd16(r);
    const uint8_t *tp = krep_rd_take(r, tl);
    *config = NULL;
    if (with_config) {
        uint32_t cl = rd32(r);
        const uint8_t *cp = cl <= KREP_TOPIC_CONFIG_MAX ? krep_rd_take(r, cl) : NULL;
        if (cp && (*config = malloc((size_t)cl + 1))) {
            memcpy(*config, cp, cl);
            (*config)[cl] = 0;
        }
        if (!*config || strlen(*config) != cl) {
            free(*config);
            *config = NULL;
            return NULL;
        }
    }
    char name[KLOG_TOPIC_NAME_MAX + 1];
    if (r->bad || !tp || tl == 0 || tl > KLOG_TOPIC_NAME_MAX || memchr(tp, 0, tl)) {
        free(*config);
        *config = NULL;
        return NULL;
    }
    memcpy(name, tp, tl);
    name[tl] = 0;
    qtopic *t = qtopic_find(q, name);
    if (!t && (klog__vec_reserve(&q->topics, &q->tcap, q->ntopics + 1, sizeof *q->topics) < 0 ||
               !(t = calloc(1, sizeof *t)) || !(t->config = strdup("")))) {
        if (t)
            free(t);
        free(*config);
        *config = NULL;
        return NULL; /* out of memory: this voter's state machine can no longer be trusted */
    }
    if (!t->name[0]) {
        memcpy(t->name, name, tl + 1);
        q->topics[q->ntopics++] = t;
    }
    return t;
}

static void apply_topic(krep_quorum *q, rd *r)
{
    char *config;
    qtopic *t = topic_record(q, r, true, &config);
    if (!t)
        return;
    free(t->config);
    t->config = config;
    t->deleted = false;
    if (q->ctl)
        krep_ctl_put_topic(q->ctl, t->name, t->config, false);
}

static void apply_del(krep_quorum *q, rd *r)
{
    char *none;
    qtopic *t = topic_record(q, r, false, &none);
    if (!t)
        return;
    size_t k = 0;
    for (size_t i = 0; i < q->nparts; i++) {
        if (strcmp(q->parts[i]->topic, t->name) == 0)
            free(q->parts[i]);
        else
            q->parts[k++] = q->parts[i];
    }
    q->nparts = k;
    t->config[0] = 0;
    t->deleted = true;
    if (q->ctl)
        krep_ctl_put_topic(q->ctl, t->name, NULL, true);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    krep_quorum *q = fsm->data;
    *result = NULL;
    const uint8_t *b = buf->base;
    for (size_t i = 0; i < buf->len; i++)
        q->hash = (q->hash ^ b[i]) * 0x100000001b3ull;
    q->hash = splitmix(&q->hash);
    rd r = { b, buf->len, 0, false };
    switch (rd8(&r)) {
    case CMD_SET: apply_set(q, &r); break;
    case CMD_REG: apply_reg(q, &r); break;
    case CMD_TOPIC: apply_topic(q, &r); break;
    case CMD_DEL: apply_del(q, &r); break;
    default: break; /* unknown: a newer version's; ignored alike everywhere */
    }
    return 0;
}

/* The state machine as one buffer: [version u8 = 2][hash u64]
 * [partitions u32] then each [topic length u16][topic][index u32][state],
 * [nodes u8] then each [id u32][incarnation u64], [topics u32] then each
 * [name length u16][name][deleted u8][config length u32][config]
 * (version 1, before topic records, ends after the nodes).  What a leader-local
 * field holds (proposals in flight, heard_ms) is not state: a restored
 * voter starts them afresh, as host() does. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    krep_quorum *q = fsm->data;
    wr w = { 0 };
    wr8(&w, 2);
    wr64(&w, q->hash);
    wr32(&w, (uint32_t)q->nparts);
    for (size_t i = 0; i < q->nparts; i++) {
        const qpart *p = q->parts[i];
        size_t tl = strlen(p->topic);
        wr16(&w, (uint16_t)tl);
        wrraw(&w, p->topic, tl);
        wr32(&w, (uint32_t)p->index);
        wr_state(&w, &p->st);
    }
    wr8(&w, (uint8_t)q->nnodes);
    for (int i = 0; i < q->nnodes; i++)
        wr32(&w, (uint32_t)q->nodes[i].id), wr64(&w, (uint64_t)q->nodes[i].inc);
    wr32(&w, (uint32_t)q->ntopics);
    for (size_t i = 0; i < q->ntopics; i++) {
        const qtopic *t = q->topics[i];
        size_t tl = strlen(t->name), cl = strlen(t->config);
        wr16(&w, (uint16_t)tl);
        wrraw(&w, t->name, tl);
        wr8(&w, t->deleted ? 1 : 0);
        wr32(&w, (uint32_t)cl);
        wrraw(&w, t->config, cl);
    }
    struct raft_buffer *b = raft_malloc(sizeof *b);
    if (w.bad || !b) {
        raft_free(w.p);
        raft_free(b);
        return RAFT_NOMEM;
    }
    b->base = w.p;
    b->len = w.n;
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

/* Replace the state machine with a snapshot's (at open, or installed from
 * the leader).  Takes buf->base on success, as libraft expects. */
static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    krep_quorum *q = fsm->data;
    rd r = { buf->base, buf->len, 0, false };
    uint8_t version = rd8(&r);
    if (version != 1 && version != 2)
        return RAFT_MALFORMED;
    uint64_t hash = rd64(&r);
    uint32_t np = rd32(&r);
    if (r.bad || np > buf->len / 20)
        return RAFT_MALFORMED;
    qpart **parts = calloc((size_t)np + 1, sizeof *parts);
    if (!parts)
        return RAFT_NOMEM;
    int rc = 0;
    for (uint32_t i = 0; i < np && rc == 0; i++) {
        uint16_t tl = rd16(&r);
        const uint8_t *tp = krep_rd_take(&r, tl);
        qpart *p = calloc(1, sizeof *p);
        if (!p) {
            rc = RAFT_NOMEM;
            break;
        }
        parts[i] = p;
        p->index = (int32_t)rd32(&r);
        if (!tp || tl == 0 || tl > KLOG_TOPIC_NAME_MAX || !rd_state(&r, &p->st) || p->index < 0) {
            rc = RAFT_MALFORMED;
            break;
        }
        memcpy(p->topic, tp, tl);
        p->topic[tl] = 0;
    }
    qnode nodes[KREP_MAX_NODES];
    int nn = rc == 0 ? rd8(&r) : 0;
    if (rc == 0 && nn > KREP_MAX_NODES)
        rc = RAFT_MALFORMED;
    for (int i = 0; rc == 0 && i < nn; i++) {
        nodes[i] = (qnode){ .heard_ms = q->now };
        nodes[i].id = (int32_t)rd32(&r);
        nodes[i].inc = (int64_t)rd64(&r);
    }
    uint32_t ntop = rc == 0 && version >= 2 ? rd32(&r) : 0;
    if (ntop > buf->len / 7)
        rc = RAFT_MALFORMED;
    qtopic **topics = calloc((size_t)ntop + 1, sizeof *topics);
    if (rc == 0 && !topics)
        rc = RAFT_NOMEM;
    for (uint32_t i = 0; rc == 0 && i < ntop; i++) {
        uint16_t tl = rd16(&r);
        const uint8_t *tp = krep_rd_take(&r, tl);
        uint8_t del = rd8(&r);
        uint32_t cl = rd32(&r);
        const uint8_t *cp = cl <= KREP_TOPIC_CONFIG_MAX ? krep_rd_take(&r, cl) : NULL;
        qtopic *t = calloc(1, sizeof *t);
        if (!t || !(t->config = malloc((size_t)cl + 1))) {
            free(t);
            rc = RAFT_NOMEM;
            break;
        }
        topics[i] = t;
        if (!tp || !cp || tl == 0 || tl > KLOG_TOPIC_NAME_MAX) {
            rc = RAFT_MALFORMED;
            break;
        }
        memcpy(t->name, tp, tl);
        t->name[tl] = 0;
        memcpy(t->config, cp, cl);
        t->config[cl] = 0;
        t->deleted = del != 0;
    }
    if (rc == 0 && (r.bad || r.at != r.n))
        rc = RAFT_MALFORMED;
    if (rc != 0) {
        for (uint32_t i = 0; i < np; i++)
            free(parts[i]);
        free(parts);
        size_t nt = 0;
        while (topics && nt < ntop && topics[nt])
            nt++;
        topics_free(topics, nt);
        return rc;
    }
    topics_free(q->topics, q->ntopics);
    q->topics = topics;
    q->ntopics = q->tcap = ntop;
    for (size_t i = 0; i < q->nparts; i++)
        free(q->parts[i]);
    free(q->parts);
    q->parts = parts;
    q->nparts = q->pcap = np;
    memcpy(q->nodes, nodes, (size_t)nn * sizeof *nodes);
    q->nnodes = nn;
    q->hash = hash;
    if (q->ctl) {
        /* (a leader is never sent a snapshot; kept right regardless) */
        for (size_t i = 0; i < q->ntopics; i++)
            krep_ctl_put_topic(q->ctl, q->topics[i]->name, q->topics[i]->config, q->topics[i]->deleted);
        for (size_t i = 0; i < q->nparts; i++)
            mirror(q, q->parts[i]);
    }
    raft_free(buf->base);
    return 0;
}

/* ---- proposals ---------------------------------------------------------------------------------- */

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    (void)status, (void)result;
    free(req);
}

/* Hand a command to raft (it owns w->p after). */
static int propose(krep_quorum *q, wr *w)
{
    if (w->bad || q->failed) {
        raft_free(w->p);
        return -ENOMEM;
    }
    struct raft_apply *req = calloc(1, sizeof *req);
    if (!req) {
        raft_free(w->p);
        return -ENOMEM;
    }
    struct raft_buffer b = { w->p, w->n };
    int rc = raft_apply(&q->raft, req, &b, 1, apply_cb);
    if (rc != 0) {
        raft_free(w->p);
        free(req);
        return rc == RAFT_NOTLEADER || rc == RAFT_LEADERSHIPLOST ? KLOG_ENOTLEADER : -ENOMEM;
    }
    return 0;
}

static int propose_set(krep_quorum *q, qpart *p, const char *topic, int32_t index, int32_t expect,
                       const krep_pstate *st)
{
    wr w = { 0 };
    size_t tl = strlen(topic);
    wr8(&w, CMD_SET);
    wr16(&w, (uint16_t)tl);
    wrraw(&w, topic, tl);
    wr32(&w, (uint32_t)index), wr32(&w, (uint32_t)expect);
    wr_state(&w, st);
    int rc = propose(q, &w);
    if (rc == 0 && p) {
        p->pend = true;
        p->pend_base = expect;
        p->pend_ms = q->now;
        p->pend_st = *st;
    }
    return rc;
}

static int propose_reg(krep_quorum *q, qnode *n, int64_t inc)
{
    wr w = { 0 };
    wr8(&w, CMD_REG);
    wr32(&w, (uint32_t)n->id), wr64(&w, (uint64_t)inc), wr32(&w, (uint32_t)q->raft.current_term);
    int rc = propose(q, &w);
    if (rc == 0) {
        n->reg_inc = inc;
        n->reg_ms = q->now;
    }
    return rc;
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    krep_quorum *q = req->data;
    if (status == 0 && !q->closed && is_leader(q) && q->barrier_term == q->raft.current_term)
        q->ready_term = q->barrier_term;
    free(req);
}

/* ---- the controller -------------------------------------------------------------------------------- */

static void unhost(krep_quorum *q)
{
    if (q->ctl && q->nretired < (int)KLOG_ARRAY_LEN(q->retired))
        q->retired[q->nretired++] = q->ctl;
    else
        krep_ctl_free(q->ctl); /* (256 terms led in one run: the oldest goes) */
    q->ctl = NULL;
    q->ctl_term = 0;
}

static void host(krep_quorum *q)
{
    unhost(q);
    raft_term term = q->raft.current_term;
    int32_t epoch = term > (raft_term)(INT32_MAX >> KREP_EPOCH_SHIFT) ? INT32_MAX >> KREP_EPOCH_SHIFT : (int32_t)term;
    krep_ctl *c;
    if (krep_ctl_new(&c, q->cfg.node_id, epoch) < 0)
        return;
    for (int i = 0; i < q->cfg.ndata; i++)
        krep_ctl_add_node(c, q->cfg.data[i]); /* every data node hears of every partition */
    for (size_t i = 0; i < q->ntopics; i++)
        krep_ctl_put_topic(c, q->topics[i]->name, q->topics[i]->config, q->topics[i]->deleted);
    for (size_t i = 0; i < q->nparts; i++)
        krep_ctl_add_state(c, q->parts[i]->topic, q->parts[i]->index, &q->parts[i]->st);
    for (int i = 0; i < q->nnodes; i++) {
        q->nodes[i].heard_ms = q->now; /* a grace of one session for everyone */
        q->nodes[i].refused = false;
        q->nodes[i].reg_inc = 0;
        if (q->nodes[i].inc > 0)
            krep_ctl_set_incarnation(c, q->nodes[i].id, q->nodes[i].inc);
    }
    for (size_t i = 0; i < q->nparts; i++)
        q->parts[i]->pend = false;
    q->ctl = c;
    q->ctl_term = term;
}

/* Propose partition p's preferred (first) replica as its leader (q->mu
 * held; the caller checked it is live and in sync): as an election on a
 * lost leader, the old one leaves the ISR and rejoins it once caught up
 * (krep_ctl_elect's rule). */
static int propose_preferred(krep_quorum *q, qpart *p)
{
    krep_pstate st = state_without_leader(&p->st);
    st.leader = p->st.replicas[0];
    st.leader_epoch = krep_next_epoch(st.leader_epoch, krep_ctl_epoch(q->ctl));
    st.partition_epoch++;
    return propose_set(q, p, p->topic, p->index, p->st.partition_epoch, &st);
}

/* auto.leader.rebalance.enable (Kafka's rule): a node whose share of
 * partitions it is the preferred replica of but does not lead is above
 * rebalance_pct gets back those of them it can lead (it is live and in
 * sync), in one pass every rebalance_interval_ms. */
static void rebalance(krep_quorum *q)
{
    if (q->cfg.rebalance_interval_ms <= 0)
        return;
    if (q->next_rebalance == 0)
        q->next_rebalance = q->now + q->cfg.rebalance_interval_ms;
    if (q->now < q->next_rebalance)
        return;
    q->next_rebalance = q->now + q->cfg.rebalance_interval_ms;
    for (int v = 0; v < q->cfg.ndata; v++) {
        int32_t id = q->cfg.data[v];
        size_t preferred = 0, elsewhere = 0;
        for (size_t i = 0; i < q->nparts; i++) {
            const qpart *p = q->parts[i];
            if (p->st.nreplicas > 0 && p->st.replicas[0] == id) {
                preferred++;
                elsewhere += p->st.leader != id;
            }
        }
        if (elsewhere == 0 || elsewhere * 100 <= preferred * (size_t)q->cfg.rebalance_pct || !live(q, id))
            continue;
        for (size_t i = 0; i < q->nparts; i++) {
            qpart *p = q->parts[i];
            if (p->st.nreplicas > 0 && p->st.replicas[0] == id && p->st.leader != id &&
                krep_in(p->st.isr, p->st.nisr, id) && (!p->pend || q->now - p->pend_ms >= q->cfg.propose_retry_ms))
                propose_preferred(q, p);
        }
    }
}

/* Partitions whose leader is gone get a live in-sync one. */
static void elect_lost(krep_quorum *q)
{
    int32_t epoch = krep_ctl_epoch(q->ctl);
    for (size_t i = 0; i < q->nparts; i++) {
        qpart *p = q->parts[i];
        if (p->pend && q->now - p->pend_ms < q->cfg.propose_retry_ms)
            continue;
        if (p->st.leader >= 0 && live(q, p->st.leader))
            continue;
        int32_t cand = -1;
        const int32_t *from = q->cfg.unclean ? p->st.replicas : p->st.isr;
        int nfrom = q->cfg.unclean ? p->st.nreplicas : p->st.nisr;
        for (int pass = q->cfg.unclean ? 0 : 1; pass < 2 && cand < 0; pass++)
            for (int j = 0; j < nfrom && cand < 0; j++)
                if (from[j] != p->st.leader && live(q, from[j]) &&
                    (pass == 1 || !krep_in(p->st.isr, p->st.nisr, from[j])))
                    cand = from[j]; /* (unclean: an out-of-sync one first) */
        if (cand < 0)
            continue; /* no live in-sync replica: wait (no unclean election) */
        krep_pstate st = state_without_leader(&p->st);
        if (!krep_in(st.isr, st.nisr, cand)) {
            st.nisr = 1;
            st.isr[0] = cand;
        }
        st.leader = cand;
        st.leader_epoch = krep_next_epoch(st.leader_epoch, epoch);
        st.partition_epoch++;
        propose_set(q, p, p->topic, p->index, p->st.partition_epoch, &st);
    }
}

int64_t krep_quorum_tick(krep_quorum *q, int64_t now_ms)
{
    pthread_mutex_lock(&q->mu);
    if (now_ms > q->now)
        q->now = now_ms;
    if (q->failed) {
        unhost(q);
        pthread_mutex_unlock(&q->mu);
        return now_ms + 1000;
    }
    done_run(q, false);
    for (int k = 0; k < 4 && q->tick_cb && q->now >= q->next_tick; k++) {
        q->next_tick += q->tick_ms;
        if (q->next_tick <= q->now)
            q->next_tick = q->now + q->tick_ms;
        q->tick_cb(&q->rio);
        done_run(q, false);
    }
    raft_term term = q->raft.current_term;
    if (is_leader(q)) {
        if (q->ready_term != term && q->barrier_term != term) {
            struct raft_barrier *b = calloc(1, sizeof *b);
            if (b) {
                b->data = q;
                q->barrier_term = term;
                if (raft_barrier(&q->raft, b, barrier_cb) != 0) {
                    free(b);
                    q->barrier_term = 0;
                }
            }
        }
        if (ready(q) && (!q->ctl || q->ctl_term != term))
            host(q);
        if (q->ctl) {
            elect_lost(q);
            rebalance(q);
        }
    } else if (q->ctl) {
        unhost(q);
    }
    /* this node answers to the controller raft knows */
    if (q->node) {
        raft_id lid = 0;
        const char *addr = NULL;
        raft_leader(&q->raft, &lid, &addr);
        if (lid > 0 && (lid != (raft_id)q->cfg.node_id || q->ctl))
            krep_node_set_controller(q->node, (int32_t)lid, (int32_t)term);
    }
    done_run(q, false);
    int64_t wake = q->tick_cb ? q->next_tick : q->now + 100;
    if (q->ndone > 0)
        wake = q->now;
    pthread_mutex_unlock(&q->mu);
    return wake;
}

int krep_quorum_add_topic(krep_quorum *q, const char *topic, int32_t nparts, int rf, const int32_t *assign,
                          int64_t now_ms)
{
    pthread_mutex_lock(&q->mu);
    if (now_ms > q->now)
        q->now = now_ms;
    int rc = 0, added = 0;
    qpart *p0 = rf <= 0 && !assign && topic ? qpart_find(q, topic, 0) : NULL;
    if (p0)
        rf = p0->st.nreplicas; /* new partitions of a topic: its factor */
    if (rf <= 0 && !assign)
        rf = krep_default_rf(q->cfg.ndata);
    if (!ready(q) || !q->ctl)
        rc = KLOG_ENOTLEADER;
    else if (!topic || strlen(topic) > KLOG_TOPIC_NAME_MAX || q->cfg.ndata < 1 || rf < 1 || rf > q->cfg.ndata)
        rc = -EINVAL;
    for (int32_t i = 0; rc == 0 && i < nparts; i++) {
        if (qpart_find(q, topic, i))
            continue;
        krep_pstate st = { .leader = -1, .nreplicas = rf, .nisr = rf };
        if (assign) {
            memcpy(st.replicas, assign + (size_t)i * (size_t)rf, (size_t)rf * sizeof *st.replicas);
            for (int j = 0; j < rf && rc == 0; j++)
                if (!krep_in(q->cfg.data, q->cfg.ndata, st.replicas[j]) || krep_in(st.replicas, j, st.replicas[j]))
                    rc = -EINVAL;
            if (rc < 0)
                break;
        } else {
            krep_assign(q->cfg.data, q->cfg.ndata, topic, i, rf, -1, st.replicas);
        }
        memcpy(st.isr, st.replicas, (size_t)rf * sizeof *st.isr);
        /* the first live replica leads (Kafka's preferred leader, spread
         * over the nodes by the placement); else the elections of
         * krep_quorum_tick pick one once someone registers */
        for (int j = 0; j < rf && st.leader < 0; j++)
            if (live(q, st.replicas[j]))
                st.leader = st.replicas[j];
        st.leader_epoch = krep_next_epoch(-1, krep_ctl_epoch(q->ctl));
        rc = propose_set(q, NULL, topic, i, -1, &st);
        added += rc == 0;
    }
    pthread_mutex_unlock(&q->mu);
    return rc < 0 ? rc : added;
}

/* A TOPIC or DEL command: on the leader only. */
static int propose_topic(krep_quorum *q, const char *topic, const char *config, bool del, int64_t now_ms)
{
    pthread_mutex_lock(&q->mu);
    if (now_ms > q->now)
        q->now = now_ms;
    int rc = 0;
    size_t tl = topic ? strlen(topic) : 0, cl = config ? strlen(config) : 0;
    if (!ready(q) || !q->ctl)
        rc = KLOG_ENOTLEADER;
    else if (tl == 0 || tl > KLOG_TOPIC_NAME_MAX || cl > KREP_TOPIC_CONFIG_MAX)
        rc = -EINVAL;
    if (rc == 0) {
        wr w = { 0 };
        wr8(&w, del ? CMD_DEL : CMD_TOPIC);
        wr16(&w, (uint16_t)tl);
        wrraw(&w, topic, tl);
        if (!del) {
            wr32(&w, (uint32_t)cl);
            wrraw(&w, config ? config : "", cl);
        }
        rc = propose(q, &w);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int krep_quorum_put_topic(krep_quorum *q, const char *topic, const char *config, int64_t now_ms)
{
    return propose_topic(q, topic, config, false, now_ms);
}

int krep_quorum_delete_topic(krep_quorum *q, const char *topic, int64_t now_ms)
{
    return propose_topic(q, topic, NULL, true, now_ms);
}

int krep_quorum_topic(krep_quorum *q, const char *topic, char *config, size_t cap)
{
    pthread_mutex_lock(&q->mu);
    qtopic *t = qtopic_find(q, topic);
    int rc = !t ? KREP_TOPIC_NONE : t->deleted ? KREP_TOPIC_DELETED : KREP_TOPIC_LIVE;
    if (t && config && cap)
        snprintf(config, cap, "%s", t->config);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int krep_quorum_elect_preferred(krep_quorum *q, const char *topic, int32_t partition, int64_t now_ms)
{
    pthread_mutex_lock(&q->mu);
    if (now_ms > q->now)
        q->now = now_ms;
    qpart *p = topic ? qpart_find(q, topic, partition) : NULL;
    int rc = 0;
    if (!ready(q) || !q->ctl)
        rc = KLOG_ENOTLEADER;
    else if (!p)
        rc = KLOG_EUNKNOWN_PARTITION;
    else if (p->st.leader == p->st.replicas[0])
        rc = 1; /* it leads already */
    else if (!live(q, p->st.replicas[0]) || !krep_in(p->st.isr, p->st.nisr, p->st.replicas[0]))
        rc = KLOG_ENOTENOUGH;
    else if (!p->pend || q->now - p->pend_ms >= q->cfg.propose_retry_ms)
        rc = propose_preferred(q, p);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

krep_ctl *krep_quorum_ctl(krep_quorum *q)
{
    pthread_mutex_lock(&q->mu);
    krep_ctl *c = q->ctl;
    pthread_mutex_unlock(&q->mu);
    return c;
}

void krep_quorum_raft(krep_quorum *q, int *state, uint64_t *term, int32_t *leader)
{
    pthread_mutex_lock(&q->mu);
    raft_id lid = 0;
    const char *addr;
    raft_leader(&q->raft, &lid, &addr);
    if (state)
        *state = raft_state(&q->raft);
    if (term)
        *term = q->raft.current_term;
    if (leader)
        *leader = (int32_t)lid;
    pthread_mutex_unlock(&q->mu);
}

void krep_quorum_applied(krep_quorum *q, uint64_t *index, uint64_t *hash)
{
    pthread_mutex_lock(&q->mu);
    *index = raft_last_applied(&q->raft);
    *hash = q->hash;
    pthread_mutex_unlock(&q->mu);
}

void krep_quorum_log_span(krep_quorum *q, uint64_t *first, uint64_t *n, uint64_t *snapshot)
{
    pthread_mutex_lock(&q->mu);
    *first = q->start;
    *n = q->noffs;
    *snapshot = q->snap_index;
    pthread_mutex_unlock(&q->mu);
}

int krep_quorum_list(krep_quorum *q, krep_ctl_entry *out, int cap)
{
    pthread_mutex_lock(&q->mu);
    int n = (int)q->nparts;
    for (int i = 0; i < n && i < cap; i++)
        out[i] = (krep_ctl_entry){ q->parts[i]->topic, q->parts[i]->index, q->parts[i]->st };
    pthread_mutex_unlock(&q->mu);
    return n;
}

int krep_quorum_state(krep_quorum *q, const char *topic, int32_t partition, krep_pstate *out)
{
    pthread_mutex_lock(&q->mu);
    qpart *p = qpart_find(q, topic, partition);
    if (p)
        *out = p->st;
    pthread_mutex_unlock(&q->mu);
    return p ? 0 : KLOG_EUNKNOWN_PARTITION;
}

/* ---- AlterPartition ----------------------------------------------------------------------------------- */

static int16_t alter_one(krep_quorum *q, qnode *nd, int64_t broker_epoch, qpart *p,
                         const kk_alter_partition_req_partition *a)
{
    krep_pstate *st = &p->st;
    if (!nd || nd->inc == 0 || broker_epoch != nd->inc)
        return KK_ERR_STALE_BROKER_EPOCH;
    if (st->leader != nd->id)
        return KK_ERR_NOT_LEADER_OR_FOLLOWER;
    if (a->leader_epoch != st->leader_epoch)
        return a->leader_epoch < st->leader_epoch ? KK_ERR_FENCED_LEADER_EPOCH : KK_ERR_UNKNOWN_LEADER_EPOCH;
    if (a->new_isr.n < 1 || a->new_isr.n > st->nreplicas || !krep_in(a->new_isr.v, a->new_isr.n, st->leader))
        return KK_ERR_INVALID_REQUEST;
    for (int i = 0; i < a->new_isr.n; i++) {
        if (!krep_in(st->replicas, st->nreplicas, a->new_isr.v[i]))
            return KK_ERR_INVALID_REQUEST;
        for (int j = 0; j < i; j++)
            if (a->new_isr.v[j] == a->new_isr.v[i])
                return KK_ERR_INVALID_REQUEST;
    }
    bool same = a->new_isr.n == st->nisr && memcmp(a->new_isr.v, st->isr, (size_t)st->nisr * sizeof *st->isr) == 0;
    if (a->partition_epoch + 1 == st->partition_epoch && same)
        return KK_ERR_NONE; /* a repeat of the one applied */
    if (a->partition_epoch != st->partition_epoch)
        return KK_ERR_INVALID_UPDATE_VERSION;
    if (p->pend && p->pend_base == a->partition_epoch && q->now - p->pend_ms < q->cfg.propose_retry_ms &&
        p->pend_st.nisr == a->new_isr.n &&
        memcmp(p->pend_st.isr, a->new_isr.v, (size_t)a->new_isr.n * sizeof *a->new_isr.v) == 0)
        return KK_ERR_REQUEST_TIMED_OUT; /* proposed: not applied yet */
    krep_pstate ns = *st;
    ns.nisr = a->new_isr.n;
    memcpy(ns.isr, a->new_isr.v, (size_t)a->new_isr.n * sizeof *ns.isr);
    ns.partition_epoch++;
    return propose_set(q, p, p->topic, p->index, st->partition_epoch, &ns) == 0 ? KK_ERR_REQUEST_TIMED_OUT
                                                                               : KK_ERR_NOT_CONTROLLER;
}

struct q_alter {
    krep_quorum *q;
    qnode *nd;
    int64_t broker_epoch;
};

static const krep_pstate *q_alter_apply(void *arg, const char *topic, const kk_alter_partition_req_partition *qp,
                                        int16_t *err)
{
    struct q_alter *x = arg;
    qpart *p = qpart_find(x->q, topic, qp->partition_index);
    if (!p)
        return NULL;
    *err = alter_one(x->q, x->nd, x->broker_epoch, p, qp);
    return &p->st;
}

static int alter(krep_quorum *q, const kk_alter_partition_req *a, krep_alloc_fn alloc, void *actx,
                 kk_alter_partition_resp *r)
{
    memset(r, 0, sizeof *r);
    if (!ready(q) || !q->ctl) {
        r->error_code = KK_ERR_NOT_CONTROLLER;
        return 0;
    }
    qnode *nd = qnode_of(q, a->broker_id, true);
    if (nd && a->broker_epoch > 0) {
        nd->heard_ms = q->now;
        nd->refused = false;
    }
    if (a->topics.n <= 0) {
        if (!nd || a->broker_epoch <= 0)
            r->error_code = KK_ERR_BROKER_ID_NOT_REGISTERED;
        else if (nd->inc == a->broker_epoch)
            r->error_code = KK_ERR_NONE;
        else {
            if (nd->reg_inc != a->broker_epoch || q->now - nd->reg_ms >= q->cfg.propose_retry_ms)
                propose_reg(q, nd, a->broker_epoch);
            r->error_code = KK_ERR_REQUEST_TIMED_OUT; /* registered once applied: ask again */
        }
        return 0;
    }
    struct q_alter x = { q, nd, a->broker_epoch };
    return krep_alter_answer(a, q_alter_apply, &x, alloc, actx, r);
}

int krep_quorum_alter_partition(krep_quorum *q, const kk_alter_partition_req *a, int64_t now_ms, krep_alloc_fn alloc,
                                void *actx, kk_alter_partition_resp *r)
{
    pthread_mutex_lock(&q->mu);
    if (now_ms > q->now)
        q->now = now_ms;
    int rc = alter(q, a, alloc, actx, r);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* ---- frames ------------------------------------------------------------------------------------------ */

static const char *addr_of(krep_quorum *q, int32_t id)
{
    for (int i = 0; i < q->cfg.nvoters; i++)
        if (q->cfg.voters[i] == id)
            return q->addrs[i];
    return NULL;
}

/* Decode one message and hand it to raft (which owns its entries then). */
static int recv_one(krep_quorum *q, rd *r, int32_t from)
{
    struct raft_message m;
    memset(&m, 0, sizeof m);
    m.type = rd8(r);
    m.server_id = (raft_id)from;
    m.server_address = addr_of(q, from);
    switch (m.type) {
    case RAFT_IO_REQUEST_VOTE: {
        struct raft_request_vote *v = &m.request_vote;
        v->term = rd64(r), v->candidate_id = rd64(r), v->last_log_index = rd64(r), v->last_log_term = rd64(r);
        v->disrupt_leader = rd8(r) != 0, v->pre_vote = rd8(r) != 0;
        break;
    }
    case RAFT_IO_REQUEST_VOTE_RESULT: {
        struct raft_request_vote_result *v = &m.request_vote_result;
        v->term = rd64(r), v->vote_granted = rd8(r) != 0;
        uint8_t pv = rd8(r);
        v->pre_vote = pv == raft_tribool_true ? raft_tribool_true
                      : pv == raft_tribool_false ? raft_tribool_false : raft_tribool_unknown;
        break;
    }
    case RAFT_IO_APPEND_ENTRIES: {
        struct raft_append_entries *a = &m.append_entries;
        a->term = rd64(r), a->prev_log_index = rd64(r), a->prev_log_term = rd64(r), a->leader_commit = rd64(r);
        uint32_t n = rd32(r);
        if (r->bad || n > FRAME_ENTRIES_MAX || (size_t)n * 14 > r->n - r->at)
            return KLOG_ECORRUPT;
        if (n > 0) {
            /* the data's total, checked before anything is allocated */
            size_t at0 = r->at, total = 0;
            for (uint32_t i = 0; i < n; i++) {
                krep_rd_take(r, 10);
                uint32_t len = rd32(r);
                if (!krep_rd_take(r, len))
                    return KLOG_ECORRUPT;
                total += len;
            }
            r->at = at0;
            struct raft_entry *e = raft_calloc(n, sizeof *e);
            uint8_t *batch = raft_malloc(total + 1);
            if (!e || !batch) {
                raft_free(e);
                raft_free(batch);
                return -ENOMEM;
            }
            size_t off = 0;
            for (uint32_t i = 0; i < n; i++) {
                e[i].term = rd64(r);
                e[i].type = rd16(r);
                uint32_t len = rd32(r);
                const uint8_t *d = krep_rd_take(r, len);
                if (len)
                    memcpy(batch + off, d, len);
                e[i].buf.base = batch + off;
                e[i].buf.len = len;
                e[i].batch = batch;
                off += len;
            }
            a->entries = e;
            a->n_entries = n;
        }
        break;
    }
    case RAFT_IO_APPEND_ENTRIES_RESULT: {
        struct raft_append_entries_result *a = &m.append_entries_result;
        a->term = rd64(r), a->rejected = rd64(r), a->last_log_index = rd64(r);
        break;
    }
    case RAFT_IO_TIMEOUT_NOW: {
        struct raft_timeout_now *t = &m.timeout_now;
        t->term = rd64(r), t->last_log_index = rd64(r), t->last_log_term = rd64(r);
        break;
    }
    case RAFT_IO_INSTALL_SNAPSHOT: {
        struct raft_install_snapshot *s = &m.install_snapshot;
        s->term = rd64(r), s->last_index = rd64(r), s->last_term = rd64(r), s->conf_index = rd64(r);
        bool ok = rd_conf(r, &s->conf);
        uint32_t dl = rd32(r);
        const uint8_t *d = krep_rd_take(r, dl);
        s->data.base = ok && d ? raft_malloc(dl + 1) : NULL;
        if (!s->data.base) {
            raft_configuration_close(&s->conf);
            return ok && d ? -ENOMEM : KLOG_ECORRUPT;
        }
        memcpy(s->data.base, d, dl);
        s->data.len = dl;
        break;
    }
    default:
        return KLOG_ECORRUPT;
    }
    if (r->bad || !m.server_address || !q->recv_cb || q->closed || q->failed) {
        if (m.type == RAFT_IO_APPEND_ENTRIES && m.append_entries.entries) {
            raft_free(m.append_entries.entries[0].batch);
            raft_free(m.append_entries.entries);
        }
        if (m.type == RAFT_IO_INSTALL_SNAPSHOT) {
            raft_free(m.install_snapshot.data.base);
            raft_configuration_close(&m.install_snapshot.conf);
        }
        return r->bad ? KLOG_ECORRUPT : 0;
    }
    if (m.type == RAFT_IO_INSTALL_SNAPSHOT) {
        /* raft stores it (io_snapshot_put, trailing 0) and then answers
         * with its index: that much of the leader's log is matched */
        q->inst_from = m.server_id;
        q->inst_term = m.install_snapshot.term;
        q->inst_index = m.install_snapshot.last_index;
    }
    if (m.type == RAFT_IO_APPEND_ENTRIES) {
        q->in_ae = true;
        q->ae_from = m.server_id;
        q->ae_term = m.append_entries.term;
        q->ae_end = m.append_entries.prev_log_index + m.append_entries.n_entries;
    }
    q->recv_cb(&q->rio, &m);
    q->in_ae = false;
    return 0;
}

int krep_quorum_serve(krep_quorum *q, const void *frame, size_t len, int64_t now_ms, kk_wbuf *w)
{
    const uint8_t *f = frame;
    if (len < 10)
        return KLOG_EFORMAT;
    int16_t key = (int16_t)get16(f);
    if (key != KREP_API_RAFT && key != KK_API_ALTER_PARTITION)
        return KLOG_EFORMAT;
    pthread_mutex_lock(&q->mu);
    if (now_ms > q->now)
        q->now = now_ms;
    int rc = 0;
    if (key == KREP_API_RAFT) {
        int32_t corr = (int32_t)get32(f + 4);
        rd r = { f, len, 8, false };
        uint16_t cl = rd16(&r);
        if (cl != 0xffff)
            krep_rd_take(&r, cl);
        int32_t from = (int32_t)rd32(&r);
        uint32_t n = rd32(&r);
        if (r.bad)
            rc = KLOG_ECORRUPT;
        for (uint32_t i = 0; i < n && rc == 0; i++)
            rc = recv_one(q, &r, from);
        if (rc == 0) {
            kk_wbuf_reset(w);
            kk_w_i32(w, corr);
            rc = w->err;
        }
        done_run(q, false);
    } else {
        kk_request rq;
        rc = kk_request_decode(frame, len, NULL, &q->arena, &rq);
        if (rc == 0) {
            kk_alter_partition_resp resp;
            rc = alter(q, &rq.body.alter_partition, krep_mem_alloc, &q->mem, &resp);
            if (rc == 0) {
                kk_wbuf_reset(w);
                rc = kk_response_encode(w, rq.hdr.api_key, rq.hdr.api_version, rq.hdr.correlation_id, &resp);
            }
        }
        krep_mem_reset(&q->mem);
        kk_arena_reset(&q->arena);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int krep_quorum_next(krep_quorum *q, int32_t dst, int64_t now_ms, kk_wbuf *w, int64_t *wake_ms)
{
    *wake_ms = INT64_MAX;
    pthread_mutex_lock(&q->mu);
    if (now_ms > q->now)
        q->now = now_ms;
    qdest *d = dest_of(q, dst);
    int rc = 0;
    if (!d || d->busy || d->nmsg == 0) {
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    if (q->now < d->backoff_until) {
        *wake_ms = d->backoff_until;
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    kk_wbuf_reset(w);
    kk_w_i16(w, KREP_API_RAFT);
    kk_w_i16(w, 0);
    kk_w_i32(w, ++d->corr);
    kk_w_string(w, false, true, KREP_CLIENT_ID, -1);
    kk_w_i32(w, q->cfg.node_id);
    kk_w_i32(w, (int32_t)d->nmsg);
    kk_w_raw(w, d->buf, d->len);
    rc = w->err;
    if (rc == 0) {
        d->busy = true;
        rc = 1;
    }
    d->len = 0;
    d->nmsg = 0;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int krep_quorum_response(krep_quorum *q, int32_t dst, const void *frame, size_t len, int64_t now_ms)
{
    pthread_mutex_lock(&q->mu);
    if (now_ms > q->now)
        q->now = now_ms;
    qdest *d = dest_of(q, dst);
    int rc = 1;
    if (d && d->busy && len >= 4 && (int32_t)get32(frame) == d->corr) {
        d->busy = false;
        rc = 0;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void krep_quorum_failed(krep_quorum *q, int32_t dst, int64_t now_ms)
{
    pthread_mutex_lock(&q->mu);
    if (now_ms > q->now)
        q->now = now_ms;
    qdest *d = dest_of(q, dst);
    if (d && d->busy) {
        d->busy = false;
        d->backoff_until = q->now + 20;
    }
    pthread_mutex_unlock(&q->mu);
}

/* A node whose address refused a connection (its host answered and
 * nothing listens there: the process is gone, or not yet back) is dead
 * now rather than a session later, until it is heard from again.  On the
 * controller its partitions get new leaders at once.  On a raft follower
 * whose leader it is (the controller is gone) the election timer runs out
 * within half the election timeout instead of after the whole of
 * it, at a random point so that the survivors do not all stand at once (a
 * split vote costs a timeout), and so does every round of the election
 * while the lost leader's address keeps refusing (each round's vote
 * requests reach it); the clock raft sees jumps ahead, never back.  A
 * node that does not answer at all (a dead host, a cut link) still has
 * its session timeout, and a lost leader its election timeout. */
void krep_quorum_refused(krep_quorum *q, int32_t id, int64_t now_ms)
{
    pthread_mutex_lock(&q->mu);
    if (now_ms > q->now)
        q->now = now_ms;
    qnode *n = q->ctl && id != q->cfg.node_id ? qnode_of(q, id, false) : NULL;
    if (n && n->inc > 0 && !n->refused) {
        n->refused = true;
        elect_lost(q);
    } else if (!q->ctl && q->raft_inited) {
        int st = raft_state(&q->raft);
        unsigned rto = 0;
        if (st == RAFT_FOLLOWER && q->raft.follower_state.current_leader.id == (raft_id)id) {
            q->lost_leader = id;
            rto = q->raft.follower_state.randomized_election_timeout;
        } else if (st == RAFT_CANDIDATE && q->lost_leader == id) {
            /* still no leader: the next round too comes early (a survivor
             * whose log was behind the other's was refused its vote) */
            rto = q->raft.candidate_state.randomized_election_timeout;
        }
        if (rto && q->raft.election_timer_start != q->skewed_start) {
            int64_t d = (int64_t)(splitmix(&q->rng) % (q->cfg.election_timeout_ms / 2 + 1));
            int64_t due = (int64_t)q->raft.election_timer_start + rto;
            int64_t skew = due - q->now - d;
            if (skew > q->skew)
                q->skew = skew;
            q->skewed_start = q->raft.election_timer_start;
            if (q->next_tick > q->now + d)
                q->next_tick = q->now + d;
        }
    }
    pthread_mutex_unlock(&q->mu);
}

bool krep_quorum_busy(krep_quorum *q, int32_t dst)
{
    pthread_mutex_lock(&q->mu);
    qdest *d = dest_of(q, dst);
    bool b = d && d->busy;
    pthread_mutex_unlock(&q->mu);
    return b;
}

/* ---- open and close ------------------------------------------------------------------------------------ */

static void raft_closed(struct raft *r) { (void)r; }

static void free_all(krep_quorum *q)
{
    unhost(q);
    for (int i = 0; i < q->nretired; i++)
        krep_ctl_free(q->retired[i]);
    if (q->logh >= 0)
        kio_file_close(q->io, q->logh);
    free(q->offs);
    free(q->loadbuf);
    free(q->done);
    for (int i = 0; i < q->ndests; i++)
        free(q->dests[i].buf);
    for (size_t i = 0; i < q->nparts; i++)
        free(q->parts[i]);
    free(q->parts);
    topics_free(q->topics, q->ntopics);
    kk_arena_reset(&q->arena);
    krep_mem_reset(&q->mem);
    free(q->mem.blocks);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

int krep_quorum_open(krep_quorum **out, kio *io, const char *dir, krep_node *node, const krep_quorum_config *cfg,
                     int64_t now_ms, char *errbuf, size_t errsize)
{
    *out = NULL;
    if (cfg->node_id <= 0 || cfg->nvoters < 1 || cfg->nvoters > KREP_MAX_NODES || cfg->ndata < 0 ||
        cfg->ndata > KREP_MAX_NODES || !krep_in(cfg->voters, cfg->nvoters, cfg->node_id) ||
        strlen(dir) >= sizeof ((krep_quorum *)0)->dir)
        return klog__errf(errbuf, errsize, -EINVAL, "quorum: this node must be one of 1..%d voters", KREP_MAX_NODES);
    krep_quorum *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    pthread_mutex_init(&q->mu, NULL);
    q->cfg = *cfg;
    if (!q->cfg.election_timeout_ms)
        q->cfg.election_timeout_ms = 1000;
    if (!q->cfg.heartbeat_timeout_ms)
        q->cfg.heartbeat_timeout_ms = 100;
    if (q->cfg.session_timeout_ms <= 0)
        q->cfg.session_timeout_ms = 6000;
    if (q->cfg.propose_retry_ms <= 0)
        q->cfg.propose_retry_ms = 500;
    if (!q->cfg.snapshot_threshold)
        q->cfg.snapshot_threshold = 1024;
    if (!q->cfg.snapshot_trailing)
        q->cfg.snapshot_trailing = 128;
    q->io = io;
    q->start = 1;
    snprintf(q->dir, sizeof q->dir, "%s", dir);
    q->node = node;
    q->now = now_ms;
    q->rng = cfg->seed ^ ((uint64_t)cfg->node_id * 0x9e3779b97f4a7c15ull);
    q->logh = -1;
    kk_arena_init(&q->arena, NULL, 0);
    for (int i = 0; i < cfg->nvoters; i++) {
        snprintf(q->addrs[i], sizeof q->addrs[i], "%d", cfg->voters[i]);
        if (cfg->voters[i] != cfg->node_id)
            q->dests[q->ndests++] = (qdest){ .id = cfg->voters[i] };
    }
    int rc = meta_read(q);
    if (rc < 0) {
        klog__errf(errbuf, errsize, rc, "%s/%s: %s", dir, KREP_RAFT_META, klog_strerror(rc));
        free_all(q);
        return rc;
    }
    if ((rc = log_open(q, errbuf, errsize)) < 0) {
        free_all(q);
        return rc;
    }
    struct raft_snapshot *sn = NULL;
    if ((rc = snap_read(q, &sn)) < 0) {
        klog__errf(errbuf, errsize, rc, "%s/%s: %s", dir, KREP_RAFT_SNAP, klog_strerror(rc));
        free_all(q);
        return rc;
    }
    if (sn) {
        q->snap_index = sn->index;
        q->snap_term = sn->term;
        if (q->noffs == 0 && q->start <= sn->index)
            q->start = sn->index + 1; /* (a log emptied by an install) */
        snap_free(sn);
    }
    if (q->term == 0 && q->noffs > 0)
        q->term = 1; /* bootstrapped, cut before its term was written */
    q->rio.version = 2;
    q->rio.impl = q;
    q->rio.init = io_init;
    q->rio.close = io_close;
    q->rio.load = io_load;
    q->rio.start = io_start;
    q->rio.bootstrap = io_bootstrap;
    q->rio.recover = io_recover;
    q->rio.set_term = io_set_term;
    q->rio.set_vote = io_set_vote;
    q->rio.send = io_send;
    q->rio.append = io_append;
    q->rio.truncate = io_truncate;
    q->rio.snapshot_put = io_snapshot_put;
    q->rio.snapshot_get = io_snapshot_get;
    q->rio.time = io_time;
    q->rio.random = io_random;
    q->rio.async_work = io_async_work;
    q->fsm.version = 1;
    q->fsm.data = q;
    q->fsm.apply = fsm_apply;
    q->fsm.snapshot = fsm_snapshot;
    q->fsm.restore = fsm_restore;
    const char *self = addr_of(q, cfg->node_id);
    rc = raft_init(&q->raft, &q->rio, &q->fsm, (raft_id)cfg->node_id, self);
    if (rc != 0) {
        klog__errf(errbuf, errsize, -ENOMEM, "raft_init: %s", raft_strerror(rc));
        free_all(q);
        return -ENOMEM;
    }
    q->raft_inited = true;
    raft_set_election_timeout(&q->raft, q->cfg.election_timeout_ms);
    raft_set_heartbeat_timeout(&q->raft, q->cfg.heartbeat_timeout_ms);
    raft_set_snapshot_threshold(&q->raft, q->cfg.snapshot_threshold);
    raft_set_snapshot_trailing(&q->raft, q->cfg.snapshot_trailing);
    raft_set_pre_vote(&q->raft, true);
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    /* in id order: every voter bootstraps the same first entry, whatever
     * order its peers list gives */
    int32_t last = 0;
    for (int n = 0; n < cfg->nvoters && rc == 0; n++) {
        int best = -1;
        for (int i = 0; i < cfg->nvoters; i++)
            if (cfg->voters[i] > last && (best < 0 || cfg->voters[i] < cfg->voters[best]))
                best = i;
        if (best < 0)
            break;
        last = cfg->voters[best];
        rc = raft_configuration_add(&conf, (raft_id)cfg->voters[best], q->addrs[best], RAFT_VOTER);
    }
    if (rc == 0) {
        rc = raft_bootstrap(&q->raft, &conf);
        if (rc == RAFT_CANTBOOTSTRAP)
            rc = 0; /* not a first start */
    }
    raft_configuration_close(&conf);
    if (rc == 0)
        rc = raft_start(&q->raft);
    free(q->loadbuf);
    q->loadbuf = NULL;
    if (rc != 0) {
        klog__errf(errbuf, errsize, rc == RAFT_NOMEM ? -ENOMEM : -EIO, "raft: %s (%s)", raft_strerror(rc),
                   raft_errmsg(&q->raft));
        krep_quorum_close(q);
        return rc == RAFT_NOMEM ? -ENOMEM : -EIO;
    }
    *out = q;
    return 0;
}

void krep_quorum_close(krep_quorum *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    unhost(q);
    /* Completions delivered while raft is whole: libraft's callbacks run
     * after raft_close has torn down the leader's state do not expect
     * to (one crashed when a send completed after it). */
    for (int i = 0; i < 16 && q->ndone > 0; i++)
        done_run(q, false);
    if (q->raft_inited)
        raft_close(&q->raft, raft_closed);
    done_run(q, true);
    pthread_mutex_unlock(&q->mu);
    free_all(q);
}
