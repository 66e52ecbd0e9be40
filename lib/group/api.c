/*
 * lib/group/api.c - the public face of lib/group: topic-partition lists and
 * the klog_group_* administration calls (include/klog/group.h).
 */
#include <stdlib.h>
#include <string.h>

#include <klog/klog.h>

#include "common/common.h"
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
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        kpl_entry *ne = realloc(l->e, nc * sizeof *ne);
        if (!ne)
            return -ENOMEM;
        l->e = ne;
        l->cap = nc;
    }
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

KLOG_API void klog_free(void *p) { free(p); }

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

/* A valid group name and the instance's registry, for the admin calls. */
static int admin_registry(klog *k, const char *group, kg_registry **r)
{
    int rc = kg_name_check(group);
    return rc < 0 ? rc : kg_registry_get(k, true, r);
}

KLOG_API int klog_group_describe(klog *k, const char *group, char **json)
{
    kg_registry *r;
    int rc = !k || !json ? -EINVAL : admin_registry(k, group, &r);
    return rc < 0 ? rc : kg_describe(r, group, json);
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
