/*
 * tools/remote_none.c - remote mode when klog was built without
 * librdkafka (meson -Drdkafka=disabled, or librdkafka not found): every
 * command says so.  cli_target has already found a server to talk to.
 */
#include "remote.h"

static int not_built(const char *ctx, const cli_remote *r)
{
    fprintf(stderr, "klog: %s: %s: remote mode is not built (this klog was built without librdkafka)\n", ctx,
            r->origin);
    return r->from_listeners ? CLI_LOCKED : CLI_USAGE;
}

const char *remote_client_version(void)
{
    return NULL;
}

int remote_produce(const cli_remote *r, const remote_produce_opts *o)
{
    (void)o;
    return not_built("produce", r);
}

int remote_consume(const cli_remote *r, const remote_consume_opts *o)
{
    (void)o;
    return not_built("consume", r);
}

int remote_topics(const cli_remote *r, const remote_topics_opts *o)
{
    return not_built(o->ctx, r);
}

int remote_groups(const cli_remote *r, const remote_groups_opts *o)
{
    return not_built(o->ctx, r);
}

int remote_delete_records(const cli_remote *r, const char *topic, int32_t partition, int64_t offset)
{
    (void)topic, (void)partition, (void)offset;
    return not_built("delete-records", r);
}

int remote_perf_produce(const cli_remote *r, const remote_perf_opts *o, int64_t *sent)
{
    *sent = 0;
    return not_built(o->ctx, r);
}

int remote_perf_consume(const cli_remote *r, const remote_perf_opts *o, int64_t *want)
{
    *want = 0;
    return not_built(o->ctx, r);
}
