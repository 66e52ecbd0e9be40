/*
 * lib/group/api.c - the public face of lib/group: topic-partition lists,
 * the klog_group_* administration calls (include/klog/group.h), and the
 * klog_group_info that klog_group_info_get returns and klog_group_describe
 * renders as JSON.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <klog/klog.h>

#include "common/common.h"
#include "common/sbuf.h"
#include "group/group.h"

typedef struct kpl_entry {
    char *topic;
    int32_t partition;
    int64_t offset;
    char *metadata;
    int error;
} kpl_entry;

struct klog_partition_list {
    kpl_entry *e;
    size_t n, cap;
};

KLOG_API int klog_partition_list_new(klog_partition_list **out)
{
    if (!out)
        return -EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

KLOG_API void klog_partition_list_free(klog_partition_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->e[i].topic);
        free(l->e[i].metadata);
    }
    free(l->e);
    free(l);
}

KLOG_API int klog_partition_list_add(klog_partition_list *l, const char *topic, int32_t partition, int64_t offset,
                                     const char *metadata)
{
    if (!l || !topic || partition < 0 || offset < -1)
        return -EINVAL;
    int rc = klog__vec_reserve(&l->e, &l->cap, l->n + 1, sizeof *l->e);
    if (rc < 0)
        return rc;
    kpl_entry *e = &l->e[l->n];
    memset(e, 0, sizeof *e);
    if (!(e->topic = strdup(topic)) || (metadata && !(e->metadata = strdup(metadata)))) {
        free(e->topic);
        return -ENOMEM;
    }
    e->partition = partition;
    e->offset = offset;
    l->n++;
    return 0;
}

KLOG_API size_t klog_partition_list_count(const klog_partition_list *l) { return l ? l->n : 0; }

KLOG_API int klog_partition_list_get(const klog_partition_list *l, size_t i, const char **topic, int32_t *partition,
                                     int64_t *offset, const char **metadata, int *error)
{
    if (!l)
        return -EINVAL;
    if (i >= l->n)
        return -ENOENT;
    const kpl_entry *e = &l->e[i];
    if (topic)
        *topic = e->topic;
    if (partition)
        *partition = e->partition;
    if (offset)
        *offset = e->offset;
    if (metadata)
        *metadata = e->metadata;
    if (error)
        *error = e->error;
    return 0;
}

void klog__partition_list_set_error(klog_partition_list *l, size_t i, int err)
{
    if (l && i < l->n)
        l->e[i].error = err;
}

KLOG_API int klog_group_list(klog *k, char ***names, size_t *count)
{
    if (!k || !names || !count)
        return -EINVAL;
    kg_registry *r;
    int rc = kg_registry_get(k, true, &r);
    if (rc < 0)
        return rc;
    return kg_list(r, names, count);
}

KLOG_API void klog_group_list_free(char **names, size_t count)
{
    if (!names)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* ---- group descriptions ------------------------------------------------------ */

/* A klog_group_info under construction (kg_describe), with the room of its
 * pointer arrays.  Every struct is one allocation with its strings behind
 * it; a member's assignment is a partition list of its own. */
struct kg_info {
    klog_group_info pub;        /* first: klog_group_info_free casts back */
    klog_group_member **m;
    size_t mcap;
    klog_group_offset **o;
    size_t ocap;
    int err;                    /* the first failure; later calls do nothing */
};

/* Bytes to copy s (NULL: none). */
static size_t str_room(const char *s) { return s ? strlen(s) + 1 : 0; }

/* Copy s to *tail and step past it; NULL stays NULL. */
static const char *str_put(char **tail, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = memcpy(*tail, s, n);
    *tail += n;
    return d;
}

kg_info *kg__info_new(const char *group, const char *state, int32_t generation, const char *protocol)
{
    kg_info *gi = calloc(1, sizeof *gi + str_room(group) + str_room(state) + str_room(protocol));
    if (!gi)
        return NULL;
    char *tail = (char *)(gi + 1);
    gi->pub.struct_size = sizeof gi->pub;
    gi->pub.generation = generation;
    gi->pub.group = str_put(&tail, group);
    gi->pub.state = str_put(&tail, state);
    gi->pub.protocol = str_put(&tail, protocol);
    return gi;
}

void kg__info_member(kg_info *gi, const char *id, const char *instance, const char *client, const kg_tp *assign,
                     unsigned nassign)
{
    if (!gi || gi->err || (gi->err = klog__vec_reserve(&gi->m, &gi->mcap, gi->pub.member_count + 1, sizeof *gi->m)) < 0)
        return;
    klog_group_member *m = calloc(1, sizeof *m + str_room(id) + str_room(instance) + str_room(client));
    klog_partition_list *l = NULL;
    int rc = m ? klog_partition_list_new(&l) : -ENOMEM;
    for (unsigned i = 0; rc == 0 && i < nassign; i++)
        rc = klog_partition_list_add(l, assign[i].topic, assign[i].partition, KLOG_OFFSET_NONE, NULL);
    if (rc < 0) {
        klog_partition_list_free(l);
        free(m);
        gi->err = rc;
        return;
    }
    char *tail = (char *)(m + 1);
    m->struct_size = sizeof *m;
    m->member_id = str_put(&tail, id);
    m->instance_id = str_put(&tail, instance);
    m->client_id = str_put(&tail, client);
    m->assignment = l;
    gi->m[gi->pub.member_count++] = m;
    gi->pub.members = (const klog_group_member *const *)gi->m;
}

void kg__info_offset(kg_info *gi, const char *topic, int32_t partition, int64_t committed, int64_t end,
                     const char *metadata)
{
    if (!gi || gi->err || (gi->err = klog__vec_reserve(&gi->o, &gi->ocap, gi->pub.offset_count + 1, sizeof *gi->o)) < 0)
        return;
    if (!metadata)
        metadata = "";
    klog_group_offset *o = calloc(1, sizeof *o + str_room(topic) + str_room(metadata));
    if (!o) {
        gi->err = -ENOMEM;
        return;
    }
    char *tail = (char *)(o + 1);
    o->struct_size = sizeof *o;
    o->partition = partition;
    o->topic = str_put(&tail, topic);
    o->committed = committed;
    o->end = end;
    o->lag = end >= 0 ? KLOG_MAX(end - committed, 0) : KLOG_OFFSET_NONE;
    o->metadata = str_put(&tail, metadata);
    gi->o[gi->pub.offset_count++] = o;
    gi->pub.offsets = (const klog_group_offset *const *)gi->o;
}

int kg__info_end(kg_info *gi, klog_group_info **out)
{
    if (!gi)
        return -ENOMEM;
    int rc = gi->err;
    if (rc < 0)
        klog_group_info_free(&gi->pub);
    else
        *out = &gi->pub;
    return rc;
}

KLOG_API void klog_group_info_free(klog_group_info *info)
{
    if (!info)
        return;
    kg_info *gi = (kg_info *)info;
    for (size_t i = 0; i < info->member_count; i++) {
        klog_partition_list_free((klog_partition_list *)gi->m[i]->assignment);
        free(gi->m[i]);
    }
    for (size_t i = 0; i < info->offset_count; i++)
        free(gi->o[i]);
    free(gi->m);
    free(gi->o);
    free(gi);
}

/* A valid group name and the instance's registry, for the admin calls. */
static int admin_registry(klog *k, const char *group, kg_registry **r)
{
    int rc = kg_name_check(group);
    return rc < 0 ? rc : kg_registry_get(k, true, r);
}

KLOG_API int klog_group_info_get(klog *k, const char *group, klog_group_info **out)
{
    kg_registry *r;
    int rc = !k || !out ? -EINVAL : admin_registry(k, group, &r);
    return rc < 0 ? rc : kg_describe(r, group, out);
}

/* The JSON document of klog_group_describe, rendered from the struct so
 * that the two never disagree. */
static void render_json(klog_sbuf *b, const klog_group_info *gi)
{
    klog__sbuf_printf(b, "{\"group\":");
    klog__sbuf_quote(b, gi->group, true);
    klog__sbuf_printf(b, ",\"state\":\"%s\",\"generation\":%d,\"protocol\":\"%s\",\"members\":[", gi->state,
                      gi->generation, gi->protocol);
    for (size_t i = 0; i < gi->member_count; i++) {
        const klog_group_member *m = gi->members[i];
        klog__sbuf_printf(b, "%s{\"member_id\":", i ? "," : "");
        klog__sbuf_quote(b, m->member_id, true);
        klog__sbuf_printf(b, ",\"instance_id\":");
        klog__sbuf_quote(b, m->instance_id, true);
        klog__sbuf_printf(b, ",\"client_id\":");
        klog__sbuf_quote(b, m->client_id, true);
        klog__sbuf_printf(b, ",\"assignment\":[");
        for (size_t j = 0; j < klog_partition_list_count(m->assignment); j++) {
            const char *topic;
            int32_t part;
            klog_partition_list_get(m->assignment, j, &topic, &part, NULL, NULL, NULL);
            klog__sbuf_printf(b, "%s{\"topic\":", j ? "," : "");
            klog__sbuf_quote(b, topic, true);
            klog__sbuf_printf(b, ",\"partition\":%d}", part);
        }
        klog__sbuf_printf(b, "]}");
    }
    klog__sbuf_printf(b, "],\"offsets\":[");
    for (size_t i = 0; i < gi->offset_count; i++) {
        const klog_group_offset *o = gi->offsets[i];
        klog__sbuf_printf(b, "%s{\"topic\":", i ? "," : "");
        klog__sbuf_quote(b, o->topic, true);
        klog__sbuf_printf(b, ",\"partition\":%d,\"committed\":%" PRId64 ",\"end\":%" PRId64 ",\"lag\":%" PRId64
                          ",\"metadata\":", o->partition, o->committed, o->end, o->lag);
        klog__sbuf_quote(b, o->metadata, true);
        klog__sbuf_printf(b, "}");
    }
    klog__sbuf_printf(b, "]}");
}

KLOG_API int klog_group_describe(klog *k, const char *group, char **json)
{
    klog_group_info *gi = NULL;
    int rc = !json ? -EINVAL : klog_group_info_get(k, group, &gi);
    if (rc < 0)
        return rc;
    klog_sbuf b = { 0 };
    render_json(&b, gi);
    klog_group_info_free(gi);
    if (b.err) {
        free(b.p);
        return b.err;
    }
    *json = b.p;
    return 0;
}

KLOG_API int klog_group_committed(klog *k, const char *group, const char *topic, int32_t partition,
                                  int64_t *offset)
{
    kg_registry *r;
    int rc = !k || !topic || !offset ? -EINVAL : admin_registry(k, group, &r);
    return rc < 0 ? rc : kg_committed(r, group, topic, partition, offset, NULL, 0);
}

KLOG_API int klog_group_reset_offsets(klog *k, const char *group, const char *topic, int32_t partition, int kind,
                                      int64_t value)
{
    kg_registry *r;
    int rc = !k ? -EINVAL : admin_registry(k, group, &r);
    return rc < 0 ? rc : kg_reset(r, group, topic, partition, kind, value);
}

KLOG_API int klog_group_delete(klog *k, const char *group)
{
    kg_registry *r;
    int rc = !k ? -EINVAL : admin_registry(k, group, &r);
    return rc < 0 ? rc : kg_delete(r, group);
}
