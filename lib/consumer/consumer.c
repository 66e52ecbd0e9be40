/*
 * lib/consumer/consumer.c - assigned partitions, zero-copy polls, seeks,
 * blocking waits with wakeup and an eventfd.
 *
 * Per partition the consumer keeps a view into the segment mapping
 * (ks_view, read through lib/partition, below the high watermark) and,
 * while a batch is half consumed, an iterator into it.
 * Messages returned by a poll point into those views (uncompressed
 * batches) or into the partition's decompression buffer (compressed
 * batches).  Lifetime rule: everything a poll returned stays valid until
 * the next poll; so a poll first releases the views the previous poll left
 * in `held`, and a partition decompresses at most one batch per poll into
 * its buffer (a second compressed batch waits for the next poll).
 *
 * Threading: one thread at a time (no lock on the hot path).  wakeup and fd
 * touch only the eventfd and an atomic flag.
 */
#include <errno.h>
#include <poll.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <klog/klog.h>

#include "common/common.h"
#include "consumer/consumer.h"
#include "format/iter.h"
#include "group/group.h"
#include "topic/topic.h"

typedef struct kc_part {
    kt_topic *t;
    int32_t partition;
    kpart *part;
    int64_t pos;             /* next offset to return */
    int err;                 /* sticky KLOG_EOFFSET until a seek */
    bool err_reported;       /* err returned by a poll already */
    ks_view view;            /* current view (reference held) */
    size_t off;              /* next batch within view */
    bool used_view;          /* a message of this poll points into view */
    bool in_batch;           /* it is mid-batch */
    kf_batch_info bi;
    size_t batch_len;
    kf_iter it;
    uint8_t *dbuf;           /* decompressed records of the current batch */
    size_t dcap;
    bool dbuf_used;          /* a message of this poll points into dbuf */
    bool registered;         /* waiter registered with the partition */
} kc_part;

struct klog_consumer {
    klog *k;
    int reset;               /* KC_RESET_* */
    size_t fetch_max;
    size_t max_poll;
    uint64_t poll_bytes; /* keys and values of this poll's messages (take_batch counts) */
    bool check_crcs;
    uint64_t spin_ns;        /* poll.spin.us */

    kc_part *parts;
    size_t nparts, pcap;
    size_t rr;               /* where the next poll starts taking records */
    /* The partitions the last poll visited (parts[(seen_from + i) %
     * nparts], i < seen_n): only they can have used_view or dbuf_used
     * set, so the next poll clears those flags there and not on every
     * partition (4,096 partitions x 2,000 polls of 500 records).  An
     * assign or unassign moves or adds entries: all are cleared then. */
    size_t seen_from, seen_n;
    bool seen_all;
    /* find_part's index into parts: open addressing, index + 1 (0: free),
     * pidx_cap a power of two at least twice nparts; stale after an
     * unassign moves entries (rebuilt by the next lookup that needs it).
     * Assigning 4,096 partitions one by one scanned the table each time. */
    uint32_t *pidx;
    size_t pidx_cap;
    bool pidx_stale;
    bool err_maybe;          /* a partition may hold an unreported err */

    klog_message *msgs;
    const klog_message **msgp; /* msgp[i] = &msgs[i], what a poll hands out */
    ks_view *held;
    size_t nheld, hcap;
    kf_codec *codec;

    /* What an unassign took away but the last poll's messages may still
     * point into (a decompression buffer, the topic and its name): freed
     * at the next poll or at close. */
    struct kc_retired { uint8_t *dbuf; kt_topic *t; } *retired;
    size_t nretired, rcap;

    kpart_waiter waiter;
    _Atomic bool wakeup;
    bool fd_armed;           /* armed at the end of an empty poll, for the fd */

    /* Group membership (group.id): see include/klog/group.h; the state
     * machine is lib/group/member.c, this file is its host (the partitions). */
    char group[256];         /* "" = no group */
    char client_id[256];
    kg_membership *mb;       /* NULL without group.id */
    bool auto_commit;
    int64_t auto_commit_ms, last_commit_ms;
    bool subscribed;         /* partitions come from the group */
    bool manual;             /* partitions were assigned explicitly */
    klog_rebalance_fn rb_fn;
    void *rb_opaque;

    /* statistics (klog_stats reads these from another thread) */
    kt_handle sh;
    _Atomic uint64_t st_records, st_bytes, st_polls, st_assigned, st_lag;
};

static void consumer_stats(void *h, kt_handle_stats *o)
{
    klog_consumer *c = h;
    snprintf(o->client_id, sizeof o->client_id, "%s", c->client_id);
    snprintf(o->group, sizeof o->group, "%s", c->group);
    if (c->mb)
        kg_membership_id_copy(c->mb, o->member_id, sizeof o->member_id);
    else
        o->member_id[0] = '\0';
    o->records = atomic_load_explicit(&c->st_records, memory_order_relaxed);
    o->bytes = atomic_load_explicit(&c->st_bytes, memory_order_relaxed);
    o->polls = atomic_load_explicit(&c->st_polls, memory_order_relaxed);
    o->assigned = atomic_load_explicit(&c->st_assigned, memory_order_relaxed);
    o->lag = atomic_load_explicit(&c->st_lag, memory_order_relaxed);
}

static int membership_new(klog_consumer *c, const klog_conf *conf);

KLOG_API KLOG_COLD int klog_consumer_new(klog *k, const klog_conf *conf, klog_consumer **out, char *errbuf, size_t errsize)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!k)
        return klog__errf(errbuf, errsize, -EINVAL, "no klog instance");
    /* A client conf may be shared by producers and consumers (as
     * librdkafka's is), but an instance or topic key in it would be
     * silently ignored here: refused, naming the scope it belongs to. */
    int src = klog__conf_check_scope(conf, KC_SCOPE_PRODUCER | KC_SCOPE_CONSUMER, errbuf, errsize);
    if (src < 0)
        return src;
    const char *gid = klog__conf_str(conf, KC_GROUP_ID);
    if (gid[0] && kg_name_check(gid) < 0)
        return klog__errf(errbuf, errsize, KLOG_EBADNAME, "group.id: \"%s\" is not a valid group name", gid);
    klog_consumer *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->k = k;
    snprintf(c->group, sizeof c->group, "%s", gid);
    snprintf(c->client_id, sizeof c->client_id, "%s", klog__conf_str(conf, KC_CLIENT_ID));
    c->auto_commit = klog__conf_int(conf, KC_ENABLE_AUTO_COMMIT) != 0;
    c->auto_commit_ms = klog__conf_int(conf, KC_AUTO_COMMIT_INTERVAL_MS);
    int rc = gid[0] ? membership_new(c, conf) : 0;
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->sh = (kt_handle){ .kind = KT_HANDLE_CONSUMER, .h = c, .fn = consumer_stats };
    klog__handle_add(k, &c->sh);
    c->reset = (int)klog__conf_int(conf, KC_AUTO_OFFSET_RESET);
    c->fetch_max = (size_t)klog__conf_int(conf, KC_FETCH_MAX_BYTES);
    c->max_poll = (size_t)klog__conf_int(conf, KC_MAX_POLL_RECORDS);
    c->check_crcs = klog__conf_int(conf, KC_CHECK_CRCS) != 0;
    c->spin_ns = (uint64_t)klog__conf_int(conf, KC_POLL_SPIN_US) * 1000u;
    c->waiter.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    rc = c->waiter.efd < 0 ? -errno : 0;
    if (rc == 0 && (!(c->msgs = calloc(c->max_poll, sizeof *c->msgs)) ||
                    !(c->msgp = calloc(c->max_poll, sizeof *c->msgp))))
        rc = -ENOMEM;
    /* Set once: a poll only rewrites the other fields of msgs[0..n) */
    for (size_t i = 0; rc == 0 && i < c->max_poll; i++) {
        c->msgs[i].struct_size = sizeof c->msgs[i];
        c->msgp[i] = &c->msgs[i];
    }
    if (rc == 0)
        rc = kf_codec_new(&c->codec);
    if (rc < 0) {
        klog_consumer_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

static size_t part_hash(const char *topic, int32_t partition)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (const unsigned char *s = (const unsigned char *)topic; *s; s++)
        h = (h ^ *s) * 1099511628211u;
    h ^= (uint32_t)partition;
    h *= 0x9e3779b97f4a7c15u;
    return (size_t)(h >> 32);
}

static void pidx_put(klog_consumer *c, size_t i)
{
    size_t m = c->pidx_cap - 1, h = part_hash(c->parts[i].t->name, c->parts[i].partition) & m;
    while (c->pidx[h])
        h = (h + 1) & m;
    c->pidx[h] = (uint32_t)i + 1;
}

/* Index every entry of parts (into a table of the right size); false when
 * memory is short (lookups then scan). */
static bool pidx_build(klog_consumer *c, size_t want)
{
    size_t cap = 64;
    while (cap < 2 * want)
        cap *= 2;
    if (cap != c->pidx_cap || !c->pidx) {
        uint32_t *n = malloc(cap * sizeof *n);
        if (!n)
            return false;
        free(c->pidx);
        c->pidx = n;
        c->pidx_cap = cap;
    }
    memset(c->pidx, 0, c->pidx_cap * sizeof *c->pidx);
    for (size_t i = 0; i < c->nparts; i++)
        pidx_put(c, i);
    c->pidx_stale = false;
    return true;
}

static kc_part *find_part(klog_consumer *c, const char *topic, int32_t partition)
{
    if (c->nparts == 0)
        return NULL;
    /* the last one first: drop_all unassigns from the end */
    kc_part *last = &c->parts[c->nparts - 1];
    if (last->partition == partition && !strcmp(last->t->name, topic))
        return last;
    if ((c->pidx_stale || !c->pidx) && !pidx_build(c, c->nparts)) {
        for (size_t i = 0; i < c->nparts; i++)
            if (c->parts[i].partition == partition && !strcmp(c->parts[i].t->name, topic))
                return &c->parts[i];
        return NULL;
    }
    size_t m = c->pidx_cap - 1;
    for (size_t h = part_hash(topic, partition) & m; c->pidx[h]; h = (h + 1) & m) {
        kc_part *p = &c->parts[c->pidx[h] - 1];
        if (p->partition == partition && !strcmp(p->t->name, topic))
            return p;
    }
    return NULL;
}

/* Make room to hold one more view until the next poll. */
static int held_reserve(klog_consumer *c)
{
    if (c->nheld < c->hcap)
        return 0; /* the poll path: no call when there is room */
    return klog__vec_reserve(&c->held, &c->hcap, c->nheld + 1, sizeof *c->held);
}

/* Drop the partition's read state (views, iterator).  A view that messages
 * of this poll point into is kept until the next poll (callers made room
 * with held_reserve; without room it is released only if unused). */
static void part_reset_view(klog_consumer *c, kc_part *p)
{
    if (p->view.seg) {
        if (p->used_view && held_reserve(c) == 0)
            c->held[c->nheld++] = p->view; /* still pointed to by this poll */
        else
            ks_view_release(&p->view);
    }
    memset(&p->view, 0, sizeof p->view);
    p->off = 0;
    p->used_view = false;
    p->in_batch = false;
}

/* Resolve a requested position against the partition and the reset
 * policy.  "End" is the high watermark (what a consumer can see); an offset
 * up to the log end is in range (it waits there for the HW). */
static int resolve(klog_consumer *c, kc_part *p, int64_t offset)
{
    int64_t start = kpart_start_offset(p->part), hw = kpart_high_watermark(p->part);
    int64_t end = kpart_end_offset(p->part);
    if (offset == KLOG_OFFSET_BEGINNING)
        offset = start;
    else if (offset == KLOG_OFFSET_END)
        offset = hw;
    else if (offset == KLOG_OFFSET_DEFAULT || offset < start || offset > end) {
        if (offset < 0 && offset != KLOG_OFFSET_DEFAULT)
            return -EINVAL;
        if (c->reset == KC_RESET_NONE)
            return KLOG_EOFFSET;
        offset = c->reset == KC_RESET_EARLIEST ? start : hw;
    }
    p->pos = offset;
    p->err = 0;
    p->err_reported = false;
    return 0;
}

static int assign_part(klog_consumer *c, const char *topic, int32_t partition, int64_t offset);

KLOG_API KLOG_COLD int klog_consumer_assign(klog_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    if (!c || !topic)
        return -EINVAL;
    if (c->subscribed)
        return KLOG_ESTATE; /* the group assigns this consumer's partitions */
    int rc = assign_part(c, topic, partition, offset);
    if (rc == 0)
        c->manual = true;
    return rc;
}

static int assign_part(klog_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    kc_part *p = find_part(c, topic, partition);
    if (p) {
        part_reset_view(c, p);
        return resolve(c, p, offset);
    }
    kt_topic *t = klog__topic_get(c->k, topic);
    if (!t)
        return klog__topic_name_check(topic) < 0 ? KLOG_EBADNAME : KLOG_EUNKNOWN_TOPIC;
    if (partition < 0 || partition >= atomic_load_explicit(&t->nparts, memory_order_acquire)) {
        klog__topic_put(t);
        return KLOG_EUNKNOWN_PARTITION;
    }
    int rc = klog__vec_reserve(&c->parts, &c->pcap, c->nparts + 1, sizeof *c->parts);
    if (rc < 0) {
        klog__topic_put(t);
        return rc;
    }
    p = &c->parts[c->nparts];
    memset(p, 0, sizeof *p);
    p->t = t;
    p->partition = partition;
    p->part = t->parts[partition];
    rc = resolve(c, p, offset);
    if (rc == 0 && (rc = kpart_waiter_add(p->part, &c->waiter)) == 0) {
        p->registered = true;
        if (c->fd_armed) /* the new partition joins the armed set */
            kpart_waiter_arm(p->part, 1);
    }
    if (rc < 0) {
        klog__topic_put(t);
        return rc;
    }
    c->nparts++;
    c->seen_all = true;
    if (!c->pidx_stale && c->pidx && 2 * c->nparts <= c->pidx_cap)
        pidx_put(c, c->nparts - 1);
    else
        c->pidx_stale = true; /* grown by the next lookup */
    return 0;
}

static void release_retired(klog_consumer *c)
{
    for (size_t i = 0; i < c->nretired; i++) {
        free(c->retired[i].dbuf);
        klog__topic_put(c->retired[i].t);
    }
    c->nretired = 0;
}

/* Drop a partition.  keep_views: the last poll's messages may still point
 * into it (unassign), so its view, buffer and topic live until the next
 * poll; at close nothing is kept. */
static void part_free(klog_consumer *c, kc_part *p, bool keep_views)
{
    if (keep_views) /* without room, nothing is retired (below) */
        (void)klog__vec_reserve(&c->retired, &c->rcap, c->nretired + 1, sizeof *c->retired);
    bool retired = keep_views && c->nretired < c->rcap;
    if (retired) {
        p->used_view = p->view.seg != NULL; /* part_reset_view moves it to held */
        c->retired[c->nretired++] = (struct kc_retired){ p->dbuf, p->t };
        p->dbuf = NULL; /* and the topic reference goes with it */
    } else {
        p->used_view = false;
    }
    part_reset_view(c, p);
    if (c->fd_armed)
        kpart_waiter_arm(p->part, -1);
    if (p->registered)
        kpart_waiter_remove(p->part, &c->waiter);
    free(p->dbuf);
    if (!retired)
        klog__topic_put(p->t);
}

static int unassign_part(klog_consumer *c, const char *topic, int32_t partition);

KLOG_API KLOG_COLD int klog_consumer_unassign(klog_consumer *c, const char *topic, int32_t partition)
{
    if (!c || !topic)
        return -EINVAL;
    if (c->subscribed)
        return KLOG_ESTATE;
    int rc = unassign_part(c, topic, partition);
    if (rc == 0 && c->nparts == 0)
        c->manual = false;
    return rc;
}

static int unassign_part(klog_consumer *c, const char *topic, int32_t partition)
{
    kc_part *p = find_part(c, topic, partition);
    if (!p)
        return -ENOENT;
    part_free(c, p, true);
    size_t i = (size_t)(p - c->parts);
    memmove(p, p + 1, (c->nparts - i - 1) * sizeof *p);
    c->nparts--;
    c->seen_all = true;
    c->pidx_stale = true;
    return 0;
}

/* Load the batch at p->off into the iterator.  Returns 1 (ready), 0 (stop
 * this partition for this poll), or an error. */
static int load_batch(klog_consumer *c, kc_part *p)
{
    const uint8_t *b = p->view.data + p->off;
    ssize_t len = kf_batch_parse(b, p->view.len - p->off, &p->bi);
    if (len <= 0)
        return KLOG_ECORRUPT;
    p->batch_len = (size_t)len;
    if (kf_batch_last_offset(&p->bi) < p->pos) {
        p->off += (size_t)len; /* wholly before the position */
        return 2;
    }
    /* verified once per process: what this instance wrote, or checked
     * already, is not checked again (ks_view_verify); without check.crcs
     * neither is what the process that wrote a synced segment had proven */
    if (ks_view_verify(&p->view, p->off, (size_t)len, !c->check_crcs) != 0)
        return KLOG_ECORRUPT;
    const uint8_t *recs;
    size_t rlen;
    if (p->bi.attributes & KF_ATTR_CODEC_MASK) {
        if (p->dbuf_used)
            return 0; /* its buffer still backs messages of this poll */
        int rc = kf_batch_records(b, (size_t)len, c->codec, &recs, &rlen);
        if (rc < 0)
            return rc;
        if (rlen > p->dcap) {
            uint8_t *nb = realloc(p->dbuf, rlen);
            if (!nb)
                return -ENOMEM;
            p->dbuf = nb;
            p->dcap = rlen;
        }
        memcpy(p->dbuf, recs, rlen);
        recs = p->dbuf;
    } else {
        int rc = kf_batch_records(b, (size_t)len, NULL, &recs, &rlen);
        if (rc < 0)
            return rc;
    }
    kf_iter_init(&p->it, &p->bi, recs, rlen);
    p->in_batch = true;
    return 1;
}

/* GCC's straight-line vectoriser packs take_batch's offset and timestamp
 * stores into one 16-byte store built through a stack slot: a
 * store-forwarding wait on every record (4% of a read of cached records,
 * bench/RESULTS.md, eighth session).  Clang does not, and has no such
 * attribute. */
#if defined(__GNUC__) && !defined(__clang__)
#define KC_NO_SLP __attribute__((optimize("no-tree-slp-vectorize")))
#else
#define KC_NO_SLP
#endif

/* How far ahead of the record decoder take_batch asks for cache lines. */
#define KC_CACHE_AHEAD 2048

/* Records of the partition's current batch into c->msgs[*n...] until the
 * poll is full (returns 1) or the batch ends (0) or fails (KLOG_ECORRUPT:
 * the position stays on the bad record). */
static __attribute__((noinline)) KC_NO_SLP int take_batch(klog_consumer *c, kc_part *p, size_t *n)
{
    const kf_batch_info bi = p->bi; /* a copy: the stores below cannot touch it */
    const uint8_t *ip = p->it.p, *const iend = p->it.end;
    int32_t left = p->it.left;
    klog_message *m = c->msgs;
    size_t k = *n, lim = c->max_poll;
    int64_t pos = p->pos;
    uint64_t bytes = 0;
    const char *topic = p->t->name;
    const int32_t partition = p->partition;
    /* Prefetch frontier: the lines up to KC_CACHE_AHEAD bytes past the
     * decoder are asked for ahead of it.  A batch this instance verified
     * or wrote is not checksummed again, and that pass had streamed the
     * batch into the cache; without it every record of a few hundred
     * bytes waited for memory at its header count (telemetry consume
     * 30 M -> 5 M records/s before this). */
    const uint8_t *pf = (const uint8_t *)((uintptr_t)ip & ~(uintptr_t)63);
    /* Past the batch's end into the next ones of the view (not of a
     * decompression buffer): their headers are read as soon as this one
     * ends, and small batches (4,096 partitions: a few KiB each) waited
     * for memory at every header (kf_batch_parse, 18% of consume). */
    const uint8_t *const pend = bi.attributes & KF_ATTR_CODEC_MASK ? iend : p->view.data + p->view.len;
    int r = 1;
    while (k < lim) {
        kf_record_view rv;
        const uint8_t *next;
        for (const uint8_t *want = ip + KC_CACHE_AHEAD; pf < want && pf < pend; pf += 64)
            __builtin_prefetch(pf);
        if (KLOG_LIKELY(left > 0 && kf__rec_fast(ip, iend, &bi, &rv, &next))) {
            ip = next;
            left--;
        } else { /* the rare record, the end of the batch, or an error */
            kf_record_view srv;
            p->it.p = ip;
            p->it.left = left;
            r = kf__iter_step_slow(&p->it, &srv);
            ip = p->it.p;
            left = p->it.left;
            if (r != 1)
                break;
            rv = srv;
        }
        if (KLOG_UNLIKELY(rv.offset < pos))
            continue; /* before the position (a seek into the batch) */
        klog_message *o = &m[k++];
        o->topic = topic;
        o->partition = partition;
        o->offset = rv.offset;
        o->timestamp = rv.timestamp;
        o->key = rv.key; /* NULL for a null key, as value */
        o->key_len = kf__pos_len(rv.key_len);
        o->value = rv.value;
        o->value_len = kf__pos_len(rv.value_len);
        bytes += o->key_len + o->value_len;
        o->header_count = rv.header_count;
        o->headers_raw = rv.headers;
        o->headers_raw_len = rv.headers_len;
        pos = rv.offset + 1;
    }
    if (k > *n) {
        /* The messages point into dbuf (compressed batch) or the view:
         * that buffer must now outlive this poll. */
        if (bi.attributes & KF_ATTR_CODEC_MASK)
            p->dbuf_used = true;
        else
            p->used_view = true;
    }
    p->it.p = ip;
    p->it.left = left;
    p->pos = pos;
    c->poll_bytes += bytes;
    *n = k;
    return r;
}

/* Take records from one partition into c->msgs[*n...].  Returns 0 or an
 * error for this partition. */
static int fill(klog_consumer *c, kc_part *p, size_t *n)
{
    if (p->err)
        return 0;
    while (*n < c->max_poll) {
        if (p->in_batch) {
            /* The batch's records straight into the messages, the
             * iterator and the position in registers (take_batch). */
            int r = take_batch(c, p, n);
            if (r == 1)
                return 0; /* this poll is full */
            p->in_batch = false;
            if (r < 0)
                return KLOG_ECORRUPT; /* position stays on the bad batch */
            int64_t next = kf_batch_last_offset(&p->bi) + 1;
            if (next > p->pos)
                p->pos = next;
            p->off += p->batch_len;
            continue;
        }
        if (!p->view.seg || p->off >= p->view.len) {
            if (p->used_view && held_reserve(c) < 0)
                return 0; /* cannot keep the old view alive: next poll */
            part_reset_view(c, p);
            int rc = kpart_read(p->part, p->pos, c->fetch_max, &p->view);
            if (rc == KLOG_EOFFSET) {
                /* fell off the head (retention) or past the end (truncation) */
                if (resolve(c, p, p->pos) < 0) {
                    p->err = KLOG_EOFFSET;
                    c->err_maybe = true;
                    return KLOG_EOFFSET;
                }
                continue;
            }
            if (rc < 0)
                return rc;
            if (p->view.len == 0) {
                ks_view_release(&p->view);
                return 0; /* caught up */
            }
            /* No madvise(MADV_WILLNEED) ahead of the reader: the kernel's
             * read-around on the mapping's faults reads a dropped file in
             * large folios; WILLNEED read it in 4 KiB ones, which cost
             * every later fault more (a fresh process's read of 1M
             * records: 29 -> 14.5 ms of CPU after a dropped read, 53 ->
             * 18 ms for the dropped read itself). */
        }
        int lr = load_batch(c, p);
        if (lr == 0)
            return 0;
        if (lr < 0)
            return lr;
    }
    return 0;
}

static bool any_available(klog_consumer *c)
{
    for (size_t i = 0; i < c->nparts; i++) {
        kc_part *p = &c->parts[i];
        if (!p->err && (p->in_batch || (p->view.seg && p->off < p->view.len) ||
                        kpart_high_watermark(p->part) > p->pos))
            return true;
    }
    return false;
}

static void arm(klog_consumer *c, int delta)
{
    atomic_store(&c->waiter.armed, delta > 0);
    for (size_t i = 0; i < c->nparts; i++)
        kpart_waiter_arm(c->parts[i].part, delta);
}

/* A poll returns no record: stay armed so that the fd turns readable when
 * one arrives (and make it readable now if one slipped in, or a wakeup or
 * the group's news: the forced drain may have taken their signal, see
 * kpart_waiter_drain). */
static int empty_return(klog_consumer *c)
{
    kpart_waiter_drain(&c->waiter, true);
    arm(c, 1);
    c->fd_armed = true;
    if (any_available(c) || atomic_load(&c->wakeup) || (c->subscribed && kg_membership_changed(c->mb)))
        kpart_waiter_signal(&c->waiter);
    return 0;
}


/* ---- group membership ------------------------------------------------------------ */

/* The member state machine (join, heartbeat, rebalance, leave) is
 * lib/group/member.c; this is its host: it owns the partitions, commits
 * positions and fires the rebalance callbacks. */

#define KC_BEAT_MS KG_MEMBERSHIP_BEAT_MS /* heartbeat at least this often while polling */

/* The current assignment as kg_tp (topic strings borrowed from the parts). */
static kg_tp *current_tps(klog_consumer *c)
{
    kg_tp *t = malloc((c->nparts ? c->nparts : 1) * sizeof *t);
    for (size_t i = 0; t && i < c->nparts; i++)
        t[i] = (kg_tp){ c->parts[i].t->name, c->parts[i].partition };
    return t;
}

static void fire(klog_consumer *c, int event, const kg_tp *tp, size_t n)
{
    if (!c->rb_fn || n == 0)
        return;
    klog_partition_list *l;
    if (klog_partition_list_new(&l) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        kc_part *p = find_part(c, tp[i].topic, tp[i].partition);
        klog_partition_list_add(l, tp[i].topic, tp[i].partition, p ? p->pos : -1, NULL);
    }
    c->rb_fn(c, event, l, c->rb_opaque);
    klog_partition_list_free(l);
}

/* Commit the positions of the given assigned partitions (all when tp NULL). */
static int commit_positions(klog_consumer *c, const kg_tp *tp, size_t n, bool sync)
{
    if (!c->mb)
        return KLOG_ESTATE;
    size_t cnt = tp ? n : c->nparts;
    if (cnt == 0)
        return 0;
    kg_offset *o = calloc(cnt, sizeof *o);
    if (!o)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < cnt; i++) {
        kc_part *p = tp ? find_part(c, tp[i].topic, tp[i].partition) : &c->parts[i];
        if (p && !p->err)
            o[k++] = (kg_offset){ p->t->name, p->partition, p->pos, NULL, 0 };
    }
    int rc = k ? kg_membership_commit(c->mb, o, (unsigned)k, sync) : 0;
    free(o);
    if (rc == 0)
        c->last_commit_ms = klog__now_ns() / 1000000;
    return rc;
}

/* Let go of every partition (views of this poll's messages stay valid). */
static void drop_all(klog_consumer *c)
{
    while (c->nparts > 0)
        unassign_part(c, c->parts[c->nparts - 1].t->name, c->parts[c->nparts - 1].partition);
}

/* host.wake: the coordinator has news (any thread, its lock held). */
static void host_wake(void *arg)
{
    klog_consumer *c = arg;
    kpart_waiter_signal(&c->waiter);
}

static kg_tp *host_held(void *arg, unsigned *n)
{
    klog_consumer *c = arg;
    *n = (unsigned)c->nparts;
    return current_tps(c);
}

/* host.revoke: commit (REVOKED, auto-commit, in a generation), tell the
 * application, let go. */
static void host_revoke(void *arg, const kg_tp *tp, unsigned n, int event)
{
    klog_consumer *c = arg;
    if (event == KLOG_REBALANCE_REVOKED && c->auto_commit && kg_membership_generation(c->mb) >= 0)
        (void)commit_positions(c, tp, n, true); /* redelivery otherwise */
    if (!tp) {
        kg_tp *all = current_tps(c);
        if (all)
            fire(c, event, all, c->nparts);
        free(all);
        drop_all(c);
        return;
    }
    fire(c, event, tp, n);
    /* the names in tp may point into the parts being dropped: copy first */
    for (unsigned i = 0; i < n; i++) {
        char name[KLOG_TOPIC_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s", tp[i].topic);
        unassign_part(c, name, tp[i].partition);
    }
}

/* host.assign: new partitions start at their committed offsets. */
static int host_assign(void *arg, const kg_tp *tp, unsigned n)
{
    klog_consumer *c = arg;
    kg_tp *add = malloc((n ? n : 1) * sizeof *add);
    if (!add)
        return -ENOMEM;
    size_t nadd = 0;
    for (unsigned i = 0; i < n; i++) {
        const kg_tp *t = &tp[i];
        int64_t off = -1;
        (void)kg_membership_committed(c->mb, t->topic, t->partition, &off, NULL, 0);
        int rc = assign_part(c, t->topic, t->partition, off >= 0 ? off : KLOG_OFFSET_DEFAULT);
        if (rc == KLOG_EOFFSET) {
            /* out of range with auto.offset.reset=none: hold it, report it */
            rc = assign_part(c, t->topic, t->partition, KLOG_OFFSET_BEGINNING);
            kc_part *p = rc == 0 ? find_part(c, t->topic, t->partition) : NULL;
            if (p) {
                p->err = KLOG_EOFFSET;
                c->err_maybe = true;
            }
        }
        if (rc == 0)
            add[nadd++] = *t;
    }
    fire(c, KLOG_REBALANCE_ASSIGNED, add, nadd);
    free(add);
    return 0;
}

static int membership_new(klog_consumer *c, const klog_conf *conf)
{
    static const enum kg_strategy strat[] = { KG_RANGE, KG_ROUNDROBIN, KG_COOPERATIVE_STICKY };
    kg_membership_conf mc = {
        .group = c->group,
        .instance_id = klog__conf_str(conf, KC_GROUP_INSTANCE_ID),
        .client_id = c->client_id,
        .strategy = strat[klog__conf_int(conf, KC_ASSIGNMENT_STRATEGY)],
        .session_ms = klog__conf_int(conf, KC_SESSION_TIMEOUT_MS),
        .rebalance_ms = klog__conf_int(conf, KC_MAX_POLL_INTERVAL_MS),
    };
    kg_membership_host h = { c, host_wake, host_held, host_revoke, host_assign };
    return kg_membership_new(c->k, &mc, &h, &c->mb);
}

/* One step of the member's state machine, then the auto-commit; runs
 * inside poll. */
static int member_step(klog_consumer *c, bool force)
{
    if (!c->subscribed)
        return 0;
    int64_t now = klog__now_ns() / 1000000;
    int rc = kg_membership_step(c->mb, now, force);
    if (rc < 0)
        return rc;
    if (c->auto_commit && kg_membership_generation(c->mb) >= 0 && c->nparts &&
        now - c->last_commit_ms >= c->auto_commit_ms)
        (void)commit_positions(c, NULL, 0, false); /* fenced meanwhile: the next owner re-reads */
    return 0;
}

KLOG_API int klog_consumer_subscribe(klog_consumer *c, const char *const *topics, size_t n)
{
    if (!c || (n && !topics) || n == 0)
        return -EINVAL;
    if (!c->group[0] || c->manual)
        return KLOG_ESTATE;
    for (size_t i = 0; i < n; i++) {
        if (!topics[i])
            return -EINVAL;
        if (topics[i][0] != '^' && klog__topic_name_check(topics[i]) < 0)
            return KLOG_EBADNAME;
        if (topics[i][0] == '^') {
            regex_t re;
            if (regcomp(&re, topics[i], REG_EXTENDED | REG_NOSUB) != 0)
                return KLOG_ECONF;
            regfree(&re);
        }
    }
    int rc = kg_membership_subscribe(c->mb, topics, n); /* a joined member rejoins */
    c->subscribed = kg_membership_subscribed(c->mb);
    return rc;
}

KLOG_API int klog_consumer_unsubscribe(klog_consumer *c)
{
    if (!c)
        return -EINVAL;
    if (!c->subscribed)
        return KLOG_ESTATE;
    kg_membership_unsubscribe(c->mb);
    c->subscribed = false;
    return 0;
}

KLOG_API int klog_consumer_set_rebalance_cb(klog_consumer *c, klog_rebalance_fn fn, void *opaque)
{
    if (!c)
        return -EINVAL;
    c->rb_fn = fn;
    c->rb_opaque = opaque;
    return 0;
}

KLOG_API KLOG_COLD int klog_consumer_assignment(klog_consumer *c, klog_partition_list **out)
{
    if (!c || !out)
        return -EINVAL;
    int rc = klog_partition_list_new(out);
    for (size_t i = 0; rc == 0 && i < c->nparts; i++)
        rc = klog_partition_list_add(*out, c->parts[i].t->name, c->parts[i].partition, c->parts[i].pos, NULL);
    if (rc < 0) {
        klog_partition_list_free(*out);
        *out = NULL;
    }
    return rc;
}

KLOG_API KLOG_COLD int klog_consumer_commit(klog_consumer *c, klog_partition_list *offsets, int async)
{
    if (!c)
        return -EINVAL;
    if (!c->mb)
        return KLOG_ESTATE; /* no group.id */
    if (!offsets)
        return commit_positions(c, NULL, 0, !async);
    size_t n = klog_partition_list_count(offsets);
    if (n == 0)
        return 0;
    kg_offset *o = calloc(n, sizeof *o);
    if (!o)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *topic, *meta;
        int32_t part;
        int64_t off;
        klog_partition_list_get(offsets, i, &topic, &part, &off, &meta, NULL);
        kt_topic *t = klog__topic_get(c->k, topic);
        if (!t)
            rc = KLOG_EUNKNOWN_TOPIC;
        else if (part >= atomic_load(&t->nparts))
            rc = KLOG_EUNKNOWN_PARTITION;
        else if (off < 0 || (meta && strlen(meta) > KG_META_MAX))
            rc = -EINVAL;
        klog__topic_put(t);
        o[i] = (kg_offset){ topic, part, off, meta, 0 };
    }
    if (rc == 0)
        rc = kg_membership_commit(c->mb, o, (unsigned)n, !async);
    for (size_t i = 0; i < n; i++)
        klog__partition_list_set_error(offsets, i, rc < 0 ? rc : o[i].err);
    free(o);
    return rc;
}

KLOG_API int klog_consumer_committed(klog_consumer *c, const char *topic, int32_t partition, int64_t *offset,
                                     char *metadata, size_t metadata_size)
{
    if (!c || !topic || !offset)
        return -EINVAL;
    if (!c->mb)
        return KLOG_ESTATE; /* no group.id */
    return kg_membership_committed(c->mb, topic, partition, offset, metadata, metadata_size);
}

KLOG_API int klog_consumer_member_id(klog_consumer *c, char *buf, size_t size, int32_t *generation)
{
    if (!c)
        return -EINVAL;
    if (buf && size)
        snprintf(buf, size, "%s", c->mb ? kg_membership_id(c->mb) : "");
    if (generation)
        *generation = c->mb ? kg_membership_generation(c->mb) : -1;
    return 0;
}

/* Statistics after a poll that returned n records. */
static void note_poll(klog_consumer *c, size_t n)
{
    uint64_t lag = 0;
    atomic_fetch_add_explicit(&c->st_records, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->st_bytes, c->poll_bytes, memory_order_relaxed);
    c->poll_bytes = 0;
    atomic_store_explicit(&c->st_assigned, c->nparts, memory_order_relaxed);
    /* The lag walks every assigned partition: with thousands of them, every
     * poll doing so took 11% of a consumer's time (perf, 4,096 partitions).
     * Past 64 partitions it is refreshed every nparts / 64 polls, so a
     * poll pays for 64 partitions' worth on average. */
    uint64_t polls = atomic_load_explicit(&c->st_polls, memory_order_relaxed);
    if (c->nparts > 64 && polls % (c->nparts / 64 + 1) != 1)
        return;
    for (size_t i = 0; i < c->nparts; i++) {
        int64_t l = kpart_high_watermark(c->parts[i].part) - c->parts[i].pos;
        lag += l > 0 ? (uint64_t)l : 0;
    }
    atomic_store_explicit(&c->st_lag, lag, memory_order_relaxed);
}

KLOG_API int klog_consumer_poll(klog_consumer *c, int timeout_ms, const klog_message *const **msgs)
{
    if (!c || !msgs)
        return -EINVAL;
    atomic_fetch_add_explicit(&c->st_polls, 1, memory_order_relaxed);
    *msgs = c->msgp;
    if (c->fd_armed) {
        arm(c, -1);
        c->fd_armed = false;
    }
    /* the fd tells of records since the last poll: this poll takes them
     * (no read(2) when nothing signalled it since the last drain) */
    kpart_waiter_drain(&c->waiter, false);
    /* What the previous poll returned is no longer needed. */
    release_retired(c);
    for (size_t i = 0; i < c->nheld; i++)
        ks_view_release(&c->held[i]);
    c->nheld = 0;
    /* Set again as this poll hands out messages pointing into them. */
    size_t nclear = c->seen_all ? c->nparts : KLOG_MIN(c->seen_n, c->nparts);
    for (size_t i = 0; i < nclear; i++) {
        kc_part *p = &c->parts[c->seen_all ? i : (c->seen_from + i) % c->nparts];
        p->used_view = false;
        p->dbuf_used = false;
    }
    c->seen_all = false;
    c->seen_n = 0;
    int mrc = member_step(c, false);
    if (mrc < 0)
        return mrc;
    /* A partition that fell out of range is reported by the first poll
     * after it happened, ahead of any record (so it is never lost behind
     * records of other partitions); it is then skipped until a seek. */
    for (size_t i = 0; c->err_maybe && i < c->nparts; i++)
        if (c->parts[i].err && !c->parts[i].err_reported) {
            c->parts[i].err_reported = true;
            return c->parts[i].err;
        }
    c->err_maybe = false; /* none left to report (a fill sets it again) */
    uint64_t deadline = timeout_ms > 0 ? klog__now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    bool spun = false;
    for (;;) {
        size_t n = 0, k = 0;
        int err = 0;
        for (; k < c->nparts && n < c->max_poll; k++) {
            kc_part *p = &c->parts[(c->rr + k) % c->nparts];
            int rc = fill(c, p, &n);
            if (rc < 0 && !err)
                err = rc;
        }
        /* Visited since the flags were cleared (an empty round may come
         * before the one that returns records: both count). */
        if (c->seen_n == 0)
            c->seen_from = c->rr;
        c->seen_n = KLOG_MAX(c->seen_n, (c->rr + k + c->nparts - c->seen_from) % (c->nparts ? c->nparts : 1));
        if (k == c->nparts)
            c->seen_n = c->nparts;
        /* The next poll starts after the partition this one stopped at: a
         * turn each, in order.  Starting one further on than the last
         * start instead made every poll walk again the partitions the
         * polls before it had emptied (with 4,096 partitions of a few
         * hundred records each, most of a consumer's time). */
        if (c->nparts)
            c->rr = n >= c->max_poll ? (c->rr + k) % c->nparts : (c->rr + 1) % c->nparts;
        if (err == KLOG_EOFFSET && n == 0) {
            for (size_t i = 0; i < c->nparts; i++)
                if (c->parts[i].err && !c->parts[i].err_reported)
                    c->parts[i].err_reported = true;
            return err;
        }
        if (n > 0) {
            note_poll(c, (size_t)n);
            return (int)n; /* an out-of-range partition is reported next poll */
        }
        if (err)
            return err;
        if (atomic_exchange(&c->wakeup, false))
            return 0;
        if (timeout_ms == 0)
            return empty_return(c);
        if (c->spin_ns && !spun) {
            /* Busy-spin on the end offsets before paying for a sleep and a
             * wakeup (bounded by poll.spin.us and the timeout). */
            spun = true;
            uint64_t until = klog__now_ns() + c->spin_ns;
            if (timeout_ms > 0 && until > deadline)
                until = deadline;
            bool got = false;
            for (unsigned i = 0; !got; i++) {
                if (any_available(c) || atomic_load_explicit(&c->wakeup, memory_order_relaxed)) {
                    got = true;
                    break;
                }
                klog__cpu_relax();
                if ((i & 63) == 63 && klog__now_ns() >= until)
                    break;
            }
            if (got)
                continue;
        }
        /* Nothing yet: arm, re-check (an append between the fill and the
         * arm would otherwise be missed), then sleep on the eventfd. */
        kpart_waiter_drain(&c->waiter, true);
        arm(c, 1);
        if (any_available(c) || atomic_load(&c->wakeup)) {
            arm(c, -1);
            continue;
        }
        if (c->subscribed && kg_membership_changed(c->mb)) {
            /* the group changed after the last step (its wakeup was just
             * drained): take it in now rather than after a sleep */
            arm(c, -1);
            if ((mrc = member_step(c, false)) < 0)
                return mrc;
            continue;
        }
        int wait_ms = -1;
        if (timeout_ms > 0) {
            uint64_t now = klog__now_ns();
            if (now >= deadline) {
                arm(c, -1);
                return empty_return(c);
            }
            wait_ms = (int)((deadline - now + 999999) / 1000000u);
        }
        if (c->subscribed && (wait_ms < 0 || wait_ms > KC_BEAT_MS))
            wait_ms = KC_BEAT_MS; /* stay alive in the group while waiting */
        struct pollfd pfd = { .fd = c->waiter.efd, .events = POLLIN };
        int pr = poll(&pfd, 1, wait_ms);
        arm(c, -1);
        if (pr < 0 && errno != EINTR)
            return -errno;
        /* The eventfd is drained by the next poll or sleep, not here: that
         * read is a syscall on the way from the wakeup to the records. */
        if ((mrc = member_step(c, false)) < 0)
            return mrc;
    }
}

KLOG_API int klog_message_header(const klog_message *m, size_t i, const char **key, size_t *key_len,
                                 const void **value, size_t *value_len)
{
    if (!m || !key || !key_len || !value || !value_len)
        return -EINVAL;
    if (i >= m->header_count)
        return -ENOENT;
    kf_record_view rv = { .header_count = (uint32_t)m->header_count,
                          .headers = m->headers_raw,
                          .headers_len = m->headers_raw_len };
    size_t pos = 0;
    kf_header h;
    for (size_t k = 0;; k++) {
        int r = kf_header_next(&rv, &pos, &h);
        if (r < 0)
            return r;
        if (r == 0)
            return -ENOENT;
        if (k == i)
            break;
    }
    *key = h.key;
    *key_len = (size_t)h.key_len;
    *value = h.value_len >= 0 ? h.value : NULL;
    *value_len = h.value_len >= 0 ? (size_t)h.value_len : 0;
    return 0;
}

KLOG_API KLOG_COLD int klog_consumer_seek(klog_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    if (!c || !topic)
        return -EINVAL;
    kc_part *p = find_part(c, topic, partition);
    if (!p)
        return -ENOENT;
    part_reset_view(c, p);
    return resolve(c, p, offset);
}

KLOG_API KLOG_COLD int klog_consumer_seek_time(klog_consumer *c, const char *topic, int32_t partition, int64_t ts_ms)
{
    if (!c || !topic)
        return -EINVAL;
    kc_part *p = find_part(c, topic, partition);
    if (!p)
        return -ENOENT;
    int64_t off;
    int rc = kpart_offset_for_time(p->part, ts_ms, &off);
    if (rc < 0)
        return rc;
    part_reset_view(c, p);
    return resolve(c, p, off);
}

KLOG_API int klog_consumer_position(klog_consumer *c, const char *topic, int32_t partition, int64_t *offset)
{
    if (!c || !topic || !offset)
        return -EINVAL;
    kc_part *p = find_part(c, topic, partition);
    if (!p)
        return -ENOENT;
    *offset = p->pos;
    return 0;
}

KLOG_API int klog_consumer_lag(klog_consumer *c, const char *topic, int32_t partition, int64_t *lag)
{
    if (!c || !topic || !lag)
        return -EINVAL;
    kc_part *p = find_part(c, topic, partition);
    if (!p)
        return -ENOENT;
    int64_t end = kpart_high_watermark(p->part), start = kpart_start_offset(p->part);
    *lag = end - (p->pos < start ? start : p->pos);
    if (*lag < 0)
        *lag = 0;
    return 0;
}

KLOG_API int klog_consumer_wakeup(klog_consumer *c)
{
    if (!c)
        return -EINVAL;
    atomic_store(&c->wakeup, true);
    kpart_waiter_signal(&c->waiter);
    return 0;
}

KLOG_API int klog_consumer_fd(klog_consumer *c)
{
    if (!c)
        return -EINVAL;
    return c->waiter.efd;
}

KLOG_API KLOG_COLD int klog_consumer_close(klog_consumer *c)
{
    if (!c)
        return 0;
    if (c->sh.fn)
        klog__handle_remove(c->k, &c->sh);
    kg_membership_free(c->mb); /* leaves the group first (revoking) */
    for (size_t i = 0; i < c->nheld; i++)
        ks_view_release(&c->held[i]);
    c->nheld = 0;
    for (size_t i = 0; i < c->nparts; i++)
        part_free(c, &c->parts[i], false);
    release_retired(c);
    free(c->retired);
    free(c->parts);
    free(c->pidx);
    free(c->held);
    free(c->msgs);
    free(c->msgp);
    kf_codec_free(c->codec);
    if (c->waiter.efd >= 0)
        close(c->waiter.efd);
    free(c);
    return 0;
}
