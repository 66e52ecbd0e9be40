/*
 * bench/compare/be_redis.c - Redis Streams through hiredis, on the
 * redis-server run.sh starts on 127.0.0.1 (appendonly yes, save "", no
 * automatic AOF rewrite).  A record is XADD key * k <key> v <value>; a
 * batch is one pipeline of XADDs whose replies are all read before produce
 * returns.  Page-cache produce runs with appendfsync no (the AOF is written
 * to the page cache before replies go out; the kernel syncs it later);
 * durable produce sets appendfsync always (Redis fsyncs the AOF before it
 * sends the replies of an event-loop pass).  Reading: XREAD COUNT 1000 from
 * the last id seen; the tail reader is a second connection in XREAD BLOCK.
 * Stored bytes: what the AOF grew by (INFO persistence, aof_current_size).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "backend.h"

#define READ_COUNT "1000"

struct bc_store {
    redisContext *c;
    const bc_env *env;
    char key[32];
    int64_t aof0;
    bool durable;
};

struct bc_reader {
    redisContext *c;
    const char *key;
    char last[48];
};

static const char *x_check(const bc_env *env)
{
    return env->redis_host ? NULL : "no redis-server address (--redis HOST:PORT)";
}

static int fail(redisContext *c, const char *what, redisReply *rep)
{
    fprintf(stderr, "redis: %s: %s\n", what,
            rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c && c->err ? c->errstr : "unexpected reply");
    if (rep)
        freeReplyObject(rep);
    return -1;
}

static redisContext *connect_to(const bc_env *env)
{
    struct timeval tv = { 5, 0 };
    redisContext *c = redisConnectWithTimeout(env->redis_host, env->redis_port, tv);
    if (!c || c->err) {
        fail(c, "connect", NULL);
        if (c)
            redisFree(c);
        return NULL;
    }
    return c;
}

/* Run a command and expect a non-error reply; returns it or NULL. */
static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        fail(c, fmt, rep);
        return NULL;
    }
    return rep;
}

static int64_t aof_size(redisContext *c)
{
    redisReply *rep = cmd(c, "INFO persistence");
    if (!rep)
        return -1;
    const char *p = rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS ? strstr(rep->str, "aof_current_size:") : NULL;
    int64_t v = p ? strtoll(p + strlen("aof_current_size:"), NULL, 10) : -1;
    freeReplyObject(rep);
    if (v < 0)
        fprintf(stderr, "redis: no aof_current_size in INFO (appendonly off?)\n");
    return v;
}

static void x_close(bc_store *s)
{
    if (!s)
        return;
    if (s->c) {
        redisReply *rep = redisCommand(s->c, "DEL %s", s->key);
        if (rep)
            freeReplyObject(rep);
        if (s->durable && (rep = redisCommand(s->c, "CONFIG SET appendfsync no")) != NULL)
            freeReplyObject(rep);
        redisFree(s->c);
    }
    free(s);
}

static int x_open(bc_store **out, const bc_opts *o)
{
    bc_store *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    snprintf(s->key, sizeof s->key, "bc:%u", o->seq);
    if (!(s->c = connect_to(o->env))) {
        free(s);
        return -1;
    }
    s->env = o->env;
    s->durable = o->durable;
    redisReply *rep = cmd(s->c, "CONFIG SET appendfsync %s", o->durable ? "always" : "no");
    if (rep)
        freeReplyObject(rep);
    if (!rep || (rep = cmd(s->c, "DEL %s", s->key)) == NULL || (freeReplyObject(rep), (s->aof0 = aof_size(s->c)) < 0)) {
        x_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int x_produce(bc_store *s, const bc_rec *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *argv[7] = { "XADD", s->key, "*", "k", recs[i].key, "v", recs[i].val };
        size_t len[7] = { 4, strlen(s->key), 1, 1, recs[i].key_len, 1, recs[i].val_len };
        if (redisAppendCommandArgv(s->c, 7, argv, len) != REDIS_OK)
            return fail(s->c, "XADD", NULL);
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *rep;
        if (redisGetReply(s->c, (void **)&rep) != REDIS_OK || !rep || rep->type != REDIS_REPLY_STRING)
            return fail(s->c, "XADD reply", rep);
        freeReplyObject(rep);
    }
    return 0;
}

static int x_finish(bc_store *s)
{
    (void)s;
    return 0;
}

static int64_t x_stored_bytes(bc_store *s)
{
    int64_t v = aof_size(s->c);
    return v < 0 ? -1 : v - s->aof0;
}

/*
 * Deliver the entries of an XREAD reply: [[key, [[id, [k, K, v, V]], ...]]].
 * Copies the last id to last.  Returns the count, -1 if malformed.
 */
static int deliver(redisReply *rep, char *last, size_t lastcap, bc_msg_fn fn, void *arg)
{
    if (rep->type == REDIS_REPLY_NIL)
        return 0;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1)
        return -1;
    redisReply *st = rep->element[0];
    if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 || st->element[1]->type != REDIS_REPLY_ARRAY)
        return -1;
    redisReply *ents = st->element[1];
    for (size_t i = 0; i < ents->elements; i++) {
        redisReply *e = ents->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->type != REDIS_REPLY_ARRAY ||
            e->element[1]->elements != 4)
            return -1;
        redisReply **f = e->element[1]->element;
        fn(arg, f[1]->str, f[1]->len, f[3]->str, f[3]->len);
        if (i + 1 == ents->elements)
            snprintf(last, lastcap, "%s", e->element[0]->str);
    }
    return (int)ents->elements;
}

static int64_t x_consume_all(bc_store *s, bc_msg_fn fn, void *arg)
{
    char last[48] = "0-0";
    int64_t total = 0;
    for (;;) {
        redisReply *rep = cmd(s->c, "XREAD COUNT " READ_COUNT " STREAMS %s %s", s->key, last);
        if (!rep)
            return -1;
        int n = deliver(rep, last, sizeof last, fn, arg);
        if (n < 0)
            return fail(s->c, "XREAD reply", rep);
        freeReplyObject(rep);
        if (n == 0)
            return total;
        total += n;
    }
}

static int x_reader_open(bc_store *s, bc_reader **out)
{
    bc_reader *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->key = s->key;
    snprintf(r->last, sizeof r->last, "0-0");
    if (!(r->c = connect_to(s->env))) {
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

static int x_reader_wait(bc_reader *r, int timeout_ms, bc_msg_fn fn, void *arg)
{
    redisReply *rep = cmd(r->c, "XREAD COUNT " READ_COUNT " BLOCK %d STREAMS %s %s", timeout_ms, r->key, r->last);
    if (!rep)
        return -1;
    int n = deliver(rep, r->last, sizeof r->last, fn, arg);
    if (n < 0)
        return fail(r->c, "XREAD reply", rep);
    freeReplyObject(rep);
    return n;
}

static void x_reader_close(bc_reader *r)
{
    if (r) {
        redisFree(r->c);
        free(r);
    }
}

const bc_backend bc_redis = {
    .name = "redis",
    .server = true,
    .check = x_check,
    .open = x_open,
    .produce = x_produce,
    .finish = x_finish,
    .stored_bytes = x_stored_bytes,
    .consume_all = x_consume_all,
    .reader_open = x_reader_open,
    .reader_wait = x_reader_wait,
    .reader_close = x_reader_close,
    .close = x_close,
};
