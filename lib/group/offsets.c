/*
 * lib/group/offsets.c - committed offsets and group generations: in-memory
 * tables mirrored by records in the compacted topic __consumer_offsets.
 *
 * Two kinds of record, told apart by the key's first byte (its version);
 * all integers little-endian:
 *
 * Committed offset (key version 1)
 *   key    u8 1 | u16 group length | group | u16 topic length | topic |
 *          i32 partition
 *   value  u8 version (1) | i64 offset | i64 commit time (ms) |
 *          u16 metadata length | metadata
 *          or null (a tombstone: the offset was deleted)
 * Group generation (key version 2; Kafka's group metadata key is version 2)
 *   key    u8 2 | u16 group length | group
 *   value  u8 version (1) | i32 generation | i64 time written (ms)
 *          or null (none: read as 0; klog does not write it today)
 * Readers skip keys and values of versions they do not know, so an older
 * klog reads a newer one's offsets (it skips the generations).
 *
 * Why generations are stored.  Commits are fenced by (member id,
 * generation).  A coordinator that restarts every group from generation 0
 * hands out the numbers of the run before again: a Kafka client that held
 * generation N from before a restart, and had joined again under a new
 * member id, could commit with N while the new run's generation was N as
 * well, although its partitions had gone to another member - a record
 * consumed twice, both commits accepted.  Kafka writes each group's
 * metadata to __consumer_offsets at every generation change and reads it
 * back, so its generations only grow; klog writes the generation (members
 * are not kept: they join again) at every completed join phase, and a
 * group created again - after a restart, or after klog_group_delete, which
 * leaves the record in place - goes on from the stored number.  A group
 * name's generations therefore never repeat for the life of the directory;
 * the price is one small record per group name ever used (compaction keeps
 * one per group).
 * The record is appended without fdatasync: it survives a crash of the
 * process, and a machine crash once its partition is synced past it (the
 * group's synchronous commits go to the same partition, after it).  When its append fails (disk budget, a partition made read-only, an
 * I/O error) the rebalance goes on and the table keeps the number for the
 * rest of the run: only a restart before the group's next successful
 * generation record can hand that number out again, and while that
 * partition refuses appends the group's commits fail too.
 *
 * A group's records all go to partition XXH3(group) % partitions, so its
 * commits and generations stay in order.  Compaction keeps the latest
 * record per key, which is exactly the tables; they are rebuilt by reading
 * the topic from its start at the first use after open.
 *
 * Replicated (lib/replication replicates __consumer_offsets), a partition
 * of the topic is written only by its leader, the coordinator of its
 * groups (lib/server sends clients there).  A node that becomes its leader
 * in a new leader epoch drops that partition's groups from the tables and
 * reads them again from the log it replicated (kg__store_refresh, found by
 * the lock-free kg__store_stale at every kg_registry_get): the offsets
 * committed on the old leader, every acknowledged one among them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <klog/klog.h>

#include "common/common.h"
#include "common/conf.h"
#include "group/internal.h"
#include "partition/partition.h"

#define KEY_MAX (1 + 2 + 255 + 2 + KLOG_TOPIC_NAME_MAX + 4)
#define VAL_MAX (1 + 8 + 8 + 2 + KG_META_MAX)
#define KEY_V_OFFSET 1               /* key versions */
#define KEY_V_GENERATION 2
#define GEN_KEY_MAX (1 + 2 + 255)
#define GEN_VAL_LEN (1 + 4 + 8)

static uint64_t hkey(const char *group, const char *topic, int32_t partition)
{
    XXH3_state_t s;
    XXH3_64bits_reset(&s);
    XXH3_64bits_update(&s, group, strlen(group) + 1);
    XXH3_64bits_update(&s, topic, strlen(topic) + 1);
    XXH3_64bits_update(&s, &partition, sizeof partition);
    return XXH3_64bits_digest(&s);
}

kg_committed_t *kg__store_find(kg_store *st, const char *group, const char *topic, int32_t partition)
{
    if (!st->tab)
        return NULL;
    for (kg_committed_t *c = st->tab[hkey(group, topic, partition) & st->mask]; c; c = c->next)
        if (c->partition == partition && !strcmp(c->group, group) && !strcmp(c->topic, topic))
            return c;
    return NULL;
}

static void entry_free(kg_committed_t *c)
{
    free(c->group);
    free(c->topic);
    free(c->meta);
    free(c);
}

static int table_grow(kg_store *st)
{
    size_t ncap = st->tab ? (st->mask + 1) * 2 : 256;
    kg_committed_t **nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return -ENOMEM;
    for (size_t i = 0; st->tab && i <= st->mask; i++)
        for (kg_committed_t *c = st->tab[i], *nx; c; c = nx) {
            nx = c->next;
            size_t b = hkey(c->group, c->topic, c->partition) & (ncap - 1);
            c->next = nt[b];
            nt[b] = c;
        }
    free(st->tab);
    st->tab = nt;
    st->mask = ncap - 1;
    return 0;
}

/* Set (offset >= 0) or remove (offset < 0) an entry. */
static int table_set(kg_store *st, const char *group, const char *topic, int32_t partition, int64_t offset,
                     int64_t ts, const char *meta, size_t mlen)
{
    if (offset < 0) {
        if (!st->tab)
            return 0;
        kg_committed_t **pp = &st->tab[hkey(group, topic, partition) & st->mask];
        for (; *pp; pp = &(*pp)->next)
            if ((*pp)->partition == partition && !strcmp((*pp)->group, group) && !strcmp((*pp)->topic, topic)) {
                kg_committed_t *c = *pp;
                *pp = c->next;
                entry_free(c);
                st->n--;
                return 0;
            }
        return 0;
    }
    kg_committed_t *c = kg__store_find(st, group, topic, partition);
    char *m = malloc(mlen + 1);
    if (!m)
        return -ENOMEM;
    memcpy(m, meta ? meta : "", mlen);
    m[mlen] = '\0';
    if (c) {
        free(c->meta);
    } else {
        if ((!st->tab || st->n >= st->mask + 1) && table_grow(st) < 0) {
            free(m);
            return -ENOMEM;
        }
        c = calloc(1, sizeof *c);
        if (!c || !(c->group = strdup(group)) || !(c->topic = strdup(topic))) {
            if (c)
                entry_free(c);
            free(m);
            return -ENOMEM;
        }
        c->partition = partition;
        size_t b = hkey(group, topic, partition) & st->mask;
        c->next = st->tab[b];
        st->tab[b] = c;
        st->n++;
    }
    c->offset = offset;
    c->ts = ts;
    c->meta = m;
    return 0;
}

void kg__store_each(kg_store *st, const char *group, void (*fn)(void *arg, kg_committed_t *c), void *arg)
{
    for (size_t i = 0; st->tab && i <= st->mask; i++)
        for (kg_committed_t *c = st->tab[i]; c; c = c->next)
            if (!group || !strcmp(c->group, group))
                fn(arg, c);
}

/* ---- generations ---------------------------------------------------------------- */

static uint64_t hgroup(const char *group) { return XXH3_64bits(group, strlen(group)); }

static kg_gen_t *gen_find(kg_store *st, const char *group)
{
    if (!st->gtab)
        return NULL;
    for (kg_gen_t *e = st->gtab[hgroup(group) & st->gmask]; e; e = e->next)
        if (!strcmp(e->group, group))
            return e;
    return NULL;
}

int32_t kg__store_generation(kg_store *st, const char *group)
{
    kg_gen_t *e = gen_find(st, group);
    return e ? e->generation : 0;
}

static int gen_grow(kg_store *st)
{
    size_t ncap = st->gtab ? (st->gmask + 1) * 2 : 64;
    kg_gen_t **nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return -ENOMEM;
    for (size_t i = 0; st->gtab && i <= st->gmask; i++)
        for (kg_gen_t *e = st->gtab[i], *nx; e; e = nx) {
            nx = e->next;
            size_t b = hgroup(e->group) & (ncap - 1);
            e->next = nt[b];
            nt[b] = e;
        }
    free(st->gtab);
    st->gtab = nt;
    st->gmask = ncap - 1;
    return 0;
}

/* Set a group's generation (generation < 0: remove it). */
static int gen_set(kg_store *st, const char *group, int32_t generation)
{
    if (generation < 0) {
        if (!st->gtab)
            return 0;
        for (kg_gen_t **pp = &st->gtab[hgroup(group) & st->gmask]; *pp; pp = &(*pp)->next)
            if (!strcmp((*pp)->group, group)) {
                kg_gen_t *e = *pp;
                *pp = e->next;
                free(e);
                st->gn--;
                break;
            }
        return 0;
    }
    kg_gen_t *e = gen_find(st, group);
    if (!e) {
        if ((!st->gtab || st->gn >= st->gmask + 1) && gen_grow(st) < 0)
            return -ENOMEM;
        size_t gl = strlen(group);
        if (!(e = malloc(sizeof *e + gl + 1)))
            return -ENOMEM;
        memcpy(e->group, group, gl + 1);
        size_t b = hgroup(group) & st->gmask;
        e->next = st->gtab[b];
        st->gtab[b] = e;
        st->gn++;
    }
    e->generation = generation;
    return 0;
}

static void gen_free_all(kg_store *st)
{
    for (size_t i = 0; st->gtab && i <= st->gmask; i++)
        for (kg_gen_t *e = st->gtab[i], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
    free(st->gtab);
}

/* ---- records ------------------------------------------------------------------- */

static size_t key_encode(uint8_t *k, const char *group, const char *topic, int32_t partition)
{
    size_t gl = strlen(group), tl = strlen(topic), n = 0;
    k[n++] = KEY_V_OFFSET;
    klog__st16(k + n, (uint16_t)gl);
    memcpy(k + n + 2, group, gl);
    n += 2 + gl;
    klog__st16(k + n, (uint16_t)tl);
    memcpy(k + n + 2, topic, tl);
    n += 2 + tl;
    klog__st32(k + n, (uint32_t)partition);
    return n + 4;
}

/* Decode a key into NUL-terminated copies in g (256) and t (250). */
static bool key_decode(const uint8_t *k, size_t len, char *g, char *t, int32_t *partition)
{
    if (len < 1 + 2 || k[0] != KEY_V_OFFSET)
        return false;
    size_t gl = klog__ld16(k + 1);
    if (gl > 255 || 3 + gl + 2 > len)
        return false;
    memcpy(g, k + 3, gl);
    g[gl] = '\0';
    size_t tl = klog__ld16(k + 3 + gl);
    if (tl > KLOG_TOPIC_NAME_MAX || 3 + gl + 2 + tl + 4 != len)
        return false;
    memcpy(t, k + 5 + gl, tl);
    t[tl] = '\0';
    *partition = (int32_t)klog__ld32(k + 5 + gl + tl);
    return true;
}

static size_t gen_key_encode(uint8_t *k, const char *group)
{
    size_t gl = strlen(group);
    k[0] = KEY_V_GENERATION;
    klog__st16(k + 1, (uint16_t)gl);
    memcpy(k + 3, group, gl);
    return 3 + gl;
}

/* A generation record (key version 2); anything malformed is skipped. */
static void load_generation(kg_store *st, const kf_record_view *r)
{
    const uint8_t *k = r->key;
    size_t len = (size_t)r->key_len;
    char g[256];
    if (len < 3)
        return;
    size_t gl = klog__ld16(k + 1);
    if (gl > 255 || 3 + gl != len)
        return;
    memcpy(g, k + 3, gl);
    g[gl] = '\0';
    if (r->value_len < 0) {
        gen_set(st, g, -1);
        return;
    }
    const uint8_t *v = r->value;
    if (r->value_len != GEN_VAL_LEN || v[0] != 1)
        return;
    int32_t gen = (int32_t)klog__ld32(v + 1);
    if (gen >= 0 && gen >= kg__store_generation(st, g))
        gen_set(st, g, gen); /* -ENOMEM: the group would start lower.  The
                              * larger one: a reload (kg__store_refresh)
                              * never lowers what this node handed out */
}

static void load_record(kg_store *st, const kf_record_view *r)
{
    char g[256], t[KLOG_TOPIC_NAME_MAX + 1];
    int32_t part;
    if (r->key_len >= 1 && r->key[0] == KEY_V_GENERATION) {
        load_generation(st, r);
        return;
    }
    if (r->key_len < 0 || !key_decode(r->key, (size_t)r->key_len, g, t, &part))
        return; /* not ours: ignore */
    if (r->value_len < 0) {
        table_set(st, g, t, part, -1, 0, NULL, 0);
        return;
    }
    const uint8_t *v = r->value;
    if (r->value_len < 19 || v[0] != 1)
        return;
    size_t ml = klog__ld16(v + 17);
    if (19 + ml != (size_t)r->value_len)
        return;
    table_set(st, g, t, part, (int64_t)klog__ld64(v + 1), (int64_t)klog__ld64(v + 9), (const char *)v + 19, ml);
}

/* Rebuild the table from one partition, up to its log end (as Kafka's
 * coordinator loads its partitions: the offsets it wrote itself count,
 * acknowledged or not). */
static int load_partition(kg_store *st, kpart *part)
{
    int64_t off = kpart_start_offset(part);
    for (;;) {
        ks_view v;
        int rc = kpart_read_log(part, off, 1u << 20, &v);
        if (rc < 0)
            return rc;
        if (v.len == 0) {
            ks_view_release(&v);
            return 0;
        }
        for (size_t p = 0; p < v.len;) {
            kf_batch_info bi;
            ssize_t len = kf_batch_parse(v.data + p, v.len - p, &bi);
            const uint8_t *recs;
            size_t rlen;
            if (len <= 0 || kf_batch_verify(v.data + p, (size_t)len) != 0 ||
                kf_batch_records(v.data + p, (size_t)len, st->codec, &recs, &rlen) < 0) {
                ks_view_release(&v);
                return KLOG_ECORRUPT;
            }
            kf_iter it;
            kf_record_view r;
            kf_iter_init(&it, &bi, recs, rlen);
            while ((rc = kf_iter_next(&it, &r)) == 1)
                if (r.offset >= off)
                    load_record(st, &r);
            if (rc < 0) {
                ks_view_release(&v);
                return KLOG_ECORRUPT;
            }
            p += (size_t)len;
        }
        off = v.next_offset;
        ks_view_release(&v);
    }
}

/* The epoch a partition counts as loaded at: its leader epoch when it is
 * replicated and led here, else INT32_MIN (a follower's tables are not
 * served: the coordinator is the partition's leader). */
static int32_t lead_epoch(kpart *part)
{
    if (!kpart_replicated(part) || kpart_role(part) != KPART_LEADER)
        return INT32_MIN;
    return kpart_leader_epoch(part);
}

static bool part_stale(kg_store *st, kt_topic *t, int p)
{
    kpart *part = t->parts[p];
    if (!kpart_replicated(part) || kpart_role(part) != KPART_LEADER)
        return false;
    return p < KG_STORE_PARTS_MAX && atomic_load_explicit(&st->seen[p], memory_order_relaxed) != kpart_leader_epoch(part);
}

bool kg__store_stale(kg_store *st)
{
    kt_topic *t = atomic_load_explicit(&st->at, memory_order_acquire);
    if (!t)
        return false;
    int np = atomic_load_explicit(&t->nparts, memory_order_acquire);
    for (int p = 0; p < np; p++)
        if (part_stale(st, t, p))
            return true;
    return false;
}

/* Drop the entries of the groups whose records live in partition p. */
static void clear_partition(kg_store *st, int p, int np)
{
    for (size_t i = 0; st->tab && i <= st->mask; i++)
        for (kg_committed_t **pp = &st->tab[i]; *pp;) {
            kg_committed_t *c = *pp;
            if (hgroup(c->group) % (uint64_t)np == (uint64_t)p) {
                *pp = c->next;
                entry_free(c);
                st->n--;
            } else {
                pp = &c->next;
            }
        }
}

int kg__store_refresh(kg_registry *r)
{
    kg_store *st = &r->st;
    if (!st->t)
        return kg__store_open(r, false);
    int np = atomic_load_explicit(&st->t->nparts, memory_order_acquire);
    for (int p = 0; p < np && p < KG_STORE_PARTS_MAX; p++) {
        if (!part_stale(st, st->t, p))
            continue;
        /* A promoted leader: what it replicated is the committed state
         * (generations only grow: a stored one never lowers the table's) */
        int32_t epoch = lead_epoch(st->t->parts[p]);
        clear_partition(st, p, np);
        int rc = load_partition(st, st->t->parts[p]);
        if (rc < 0)
            return rc;
        atomic_store_explicit(&st->seen[p], epoch, memory_order_relaxed);
    }
    return 0;
}

int kg__store_open(kg_registry *r, bool create)
{
    kg_store *st = &r->st;
    if (st->t)
        return 0;
    int rc;
    if (!st->codec && (rc = kf_codec_new(&st->codec)) < 0)
        return rc;
    kt_topic *t = klog__topic_get(r->k, KG_OFFSETS_TOPIC);
    if (!t && !create)
        return 0;
    if (!t) {
        klog_conf *c;
        if ((rc = klog_conf_new(&c)) < 0)
            return rc;
        char eb[256];
        klog_conf_set(c, "cleanup.policy", "compact", NULL, 0);
        klog_conf_set_int(c, "segment.bytes", 16 << 20, NULL, 0);
        int np = (int)klog__conf_int(klog__conf(r->k), KC_OFFSETS_PARTITIONS);
        rc = klog_topic_create(r->k, KG_OFFSETS_TOPIC, np, c, eb, sizeof eb);
        klog_conf_free(c);
        if (rc < 0 && rc != -EEXIST)
            return rc;
        if (!(t = klog__topic_get(r->k, KG_OFFSETS_TOPIC)))
            return KLOG_EUNKNOWN_TOPIC;
    }
    int np = atomic_load_explicit(&t->nparts, memory_order_acquire);
    for (int p = 0; p < np; p++) {
        if (p < KG_STORE_PARTS_MAX)
            atomic_store_explicit(&st->seen[p], lead_epoch(t->parts[p]), memory_order_relaxed);
        if ((rc = load_partition(st, t->parts[p])) < 0) {
            klog__topic_put(t);
            return rc;
        }
    }
    st->t = t;
    atomic_store_explicit(&st->at, t, memory_order_release);
    return 0;
}

void kg__store_close(kg_store *st)
{
    for (size_t i = 0; st->tab && i <= st->mask; i++)
        for (kg_committed_t *c = st->tab[i], *nx; c; c = nx) {
            nx = c->next;
            entry_free(c);
        }
    free(st->tab);
    gen_free_all(st);
    klog__topic_put(st->t);
    kf_codec_free(st->codec);
    free(st->buf);
    memset(st, 0, sizeof *st);
}

int32_t kg__store_partition(kg_store *st, const char *group)
{
    int np = atomic_load_explicit(&st->t->nparts, memory_order_acquire);
    return (int32_t)(hgroup(group) % (uint64_t)np);
}

/* Finish the batch in b and append it to the group's partition. */
static int batch_append(kg_store *st, const char *group, kf_builder *b, bool sync)
{
    const uint8_t *batch;
    size_t blen;
    int rc = kf_builder_finish(b, NULL, NULL, &batch, &blen);
    if (rc < 0)
        return rc;
    int np = atomic_load_explicit(&st->t->nparts, memory_order_acquire);
    kpart *part = st->t->parts[hgroup(group) % (uint64_t)np];
    ks_batch kb = { (void *)batch, blen, 0, 0 };
    return kpart_append(part, &kb, 1, sync ? KS_APPEND_SYNC : 0);
}

int kg__store_put(kg_registry *r, const char *group, kg_offset *o, unsigned n, bool sync)
{
    kg_store *st = &r->st;
    int rc = kg__store_open(r, true);
    if (rc < 0)
        return rc;
    size_t need = KF_HDR_SIZE;
    for (unsigned i = 0; i < n; i++) {
        const char *m = o[i].metadata ? o[i].metadata : "";
        if (strlen(m) > KG_META_MAX || strlen(o[i].topic) > KLOG_TOPIC_NAME_MAX)
            return -EINVAL;
        need += 64 + KEY_MAX + VAL_MAX;
    }
    if ((rc = klog__vec_reserve(&st->buf, &st->cap, need, 1)) < 0)
        return rc;
    kf_builder b;
    kf_builder_init(&b, st->buf, st->cap, KEY_MAX + VAL_MAX);
    int64_t now = klog__wall_ms();
    for (unsigned i = 0; i < n; i++) {
        uint8_t key[KEY_MAX], val[VAL_MAX];
        size_t kl = key_encode(key, group, o[i].topic, o[i].partition);
        const char *m = o[i].metadata ? o[i].metadata : "";
        size_t ml = strlen(m);
        val[0] = 1;
        klog__st64(val + 1, (uint64_t)o[i].offset);
        klog__st64(val + 9, (uint64_t)now);
        klog__st16(val + 17, (uint16_t)ml);
        memcpy(val + 19, m, ml);
        kf_record rec = { key, (int32_t)kl, o[i].offset >= 0 ? val : NULL,
                          o[i].offset >= 0 ? (int32_t)(19 + ml) : -1, now, NULL, 0 };
        if ((rc = kf_builder_add(&b, &rec)) < 0)
            return rc;
    }
    if ((rc = batch_append(st, group, &b, sync)) < 0)
        return rc;
    for (unsigned i = 0; i < n; i++) {
        const char *m = o[i].metadata ? o[i].metadata : "";
        o[i].err = table_set(st, group, o[i].topic, o[i].partition, o[i].offset, now, m, strlen(m));
    }
    return 0;
}

int kg__store_put_generation(kg_registry *r, const char *group, int32_t generation)
{
    kg_store *st = &r->st;
    /* the table whatever happens to the record: a group created again in
     * this run (klog_group_delete) goes on from it */
    int orc = kg__store_open(r, true), rc = gen_set(st, group, generation);
    if (orc < 0)
        return orc;
    if (rc < 0)
        return rc;
    if ((rc = klog__vec_reserve(&st->buf, &st->cap, KF_HDR_SIZE + 64 + GEN_KEY_MAX + GEN_VAL_LEN, 1)) < 0)
        return rc;
    kf_builder b;
    kf_builder_init(&b, st->buf, st->cap, GEN_KEY_MAX + GEN_VAL_LEN);
    uint8_t key[GEN_KEY_MAX], val[GEN_VAL_LEN];
    int64_t now = klog__wall_ms();
    size_t kl = gen_key_encode(key, group);
    val[0] = 1;
    klog__st32(val + 1, (uint32_t)generation);
    klog__st64(val + 5, (uint64_t)now);
    kf_record rec = { key, (int32_t)kl, val, GEN_VAL_LEN, now, NULL, 0 };
    if ((rc = kf_builder_add(&b, &rec)) < 0)
        return rc;
    return batch_append(st, group, &b, false);
}
