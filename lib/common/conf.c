/*
 * lib/common/conf.c - klog_conf: Kafka-style keys, parsed and range-checked
 * when set, read by id inside the library.  The keys themselves are in the
 * subsystems' tables (conf.h); this file knows none of them.
 *
 * A klog_conf is one allocation: a slot per possible key id (every table
 * gets KC_TABLE_KEYS slots, used or not), each holding the set flag, the
 * integer value and, for string keys, a heap copy of the string.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <klog/conf.h>
#include <klog/error.h>
#include <klog/testing.h> /* klog_conf_set_io_methods */

#include "common/common.h"
#include "common/conf.h"

typedef struct kc_slot {
    int64_t v;
    char *s;      /* KC_TYPE_STR: the value, NULL while unset */
    bool set;
} kc_slot;

struct klog_conf {
    unsigned n;   /* klog__conf_ntables * KC_TABLE_KEYS */
    const void *io_methods, *io_arg;  /* klog_conf_set_io_methods (testing) */
    kc_slot slot[];
};

#define err(errbuf, errsize, ...) klog__errf(errbuf, errsize, KLOG_ECONF, __VA_ARGS__)

const kc_def *klog__conf_def(kc_key key)
{
    unsigned t = key / KC_TABLE_KEYS, i = key % KC_TABLE_KEYS;
    if (t >= klog__conf_ntables || i >= klog__conf_tables[t]->n)
        return NULL;
    const kc_def *d = &klog__conf_tables[t]->defs[i];
    return d->name ? d : NULL;
}

/* The definition at table t, index i, or NULL for a hole. */
static const kc_def *def_at(unsigned t, unsigned i)
{
    const kc_def *d = &klog__conf_tables[t]->defs[i];
    return d->name ? d : NULL;
}

static unsigned nslots(void) { return klog__conf_ntables * KC_TABLE_KEYS; }

KLOG_API int klog_conf_new(klog_conf **out)
{
    if (!out)
        return -EINVAL;
    unsigned n = nslots();
    *out = calloc(1, sizeof **out + n * sizeof(kc_slot));
    if (!*out)
        return -ENOMEM;
    (*out)->n = n;
    return 0;
}

KLOG_API void klog_conf_free(klog_conf *conf)
{
    if (!conf)
        return;
    for (unsigned i = 0; i < conf->n; i++)
        free(conf->slot[i].s);
    free(conf);
}

KLOG_API int klog_conf_dup(const klog_conf *conf, klog_conf **out)
{
    if (!conf || !out)
        return -EINVAL;
    size_t size = sizeof *conf + conf->n * sizeof(kc_slot);
    klog_conf *c = malloc(size);
    if (!c)
        return -ENOMEM;
    memcpy(c, conf, size);
    for (unsigned i = 0; i < c->n; i++)
        c->slot[i].s = NULL;
    for (unsigned i = 0; i < c->n; i++)
        if (conf->slot[i].s && !(c->slot[i].s = strdup(conf->slot[i].s))) {
            klog_conf_free(c);
            return -ENOMEM;
        }
    *out = c;
    return 0;
}

/* The key id named key (a key's own name or an alias), with its
 * definition and the alias's unit (1 for a key's own name); -1 if none. */
static int find_unit(const char *key, const kc_def **def, int64_t *unit)
{
    for (unsigned t = 0; t < klog__conf_ntables; t++)
        for (unsigned i = 0; i < klog__conf_tables[t]->n; i++) {
            const kc_def *d = def_at(t, i);
            if (d && strcmp(d->name, key) == 0) {
                *def = d;
                *unit = 1;
                return (int)(KC_KEY_BASE(t) + i);
            }
        }
    for (unsigned l = 0; klog__conf_aliases[l]; l++)
        for (const kc_alias *a = klog__conf_aliases[l]; a->name; a++)
            if (strcmp(a->name, key) == 0 && (*def = klog__conf_def(a->key))) {
                *unit = a->unit > 1 ? a->unit : 1;
                return (int)a->key;
            }
    return -1;
}

static int find(const char *key, const kc_def **def)
{
    int64_t unit;
    return find_unit(key, def, &unit);
}

/* Levenshtein distance of a and b, or more than cap when it is (names are
 * short: two rows on the stack, longer names are simply not compared). */
static unsigned edit_distance(const char *a, const char *b, unsigned cap)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned row[2][65];
    if (na > 64 || nb > 64)
        return cap + 1;
    for (size_t j = 0; j <= nb; j++)
        row[0][j] = (unsigned)j;
    for (size_t i = 1; i <= na; i++) {
        unsigned *prev = row[(i - 1) & 1], *cur = row[i & 1], best = cur[0] = (unsigned)i;
        for (size_t j = 1; j <= nb; j++) {
            unsigned v = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < v)
                v = prev[j] + 1;
            if (cur[j - 1] + 1 < v)
                v = cur[j - 1] + 1;
            cur[j] = v;
            if (v < best)
                best = v;
        }
        if (best > cap)
            return cap + 1; /* every later row is at least this far */
    }
    return row[na & 1][nb];
}

static void consider(const char *key, const char *name, unsigned *best, const char **out)
{
    size_t len = strlen(name);
    unsigned cap = len < 9 ? 1 : 2; /* fewer than a third of a short name */
    if (cap >= *best)
        cap = *best - 1;
    unsigned d = edit_distance(key, name, cap);
    if (d <= cap && d < *best) {
        *best = d;
        *out = name;
    }
}

const char *klog__conf_suggest(const char *key)
{
    const char *out = NULL;
    unsigned best = 3;
    if (!key || !*key)
        return NULL;
    for (unsigned t = 0; t < klog__conf_ntables; t++)
        for (unsigned i = 0; i < klog__conf_tables[t]->n; i++) {
            const kc_def *d = def_at(t, i);
            if (d)
                consider(key, d->name, &best, &out);
        }
    for (unsigned l = 0; klog__conf_aliases[l]; l++)
        for (const kc_alias *a = klog__conf_aliases[l]; a->name; a++)
            consider(key, a->name, &best, &out);
    return out;
}

/* KLOG_ECONF for an unknown key, with a "did you mean" when one is close. */
static int unknown_key(const char *key, char *errbuf, size_t errsize)
{
    const char *near = klog__conf_suggest(key);
    if (near)
        return err(errbuf, errsize, "%s: unknown configuration key (did you mean %s?)", key, near);
    return err(errbuf, errsize, "%s: unknown configuration key", key);
}

/* An alias's value in its key's unit: v * unit, a negative v as it is
 * (Kafka's -1 hours is -1 ms: forever); out of range past what fits. */
static int scale(const kc_def *d, const char *key, int64_t v, int64_t unit, int64_t *out, char *errbuf,
                 size_t errsize)
{
    if (unit <= 1 || v < 0) {
        *out = v;
        return 0;
    }
    if (v > d->max / unit)
        return err(errbuf, errsize, "%s: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "] (%s %" PRId64
                   " at most)", key, v, d->min < 0 ? d->min : d->min / unit, d->max / unit, d->name, d->max);
    *out = v * unit;
    return 0;
}

/* name: the spelling the caller used (the key's, or an alias). */
static int set_int_checked(klog_conf *c, kc_key k, const kc_def *d, const char *name, int64_t v, char *errbuf,
                           size_t errsize)
{
    if (v < d->min || v > d->max)
        return err(errbuf, errsize, "%s: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", name, v,
                   d->min, d->max);
    c->slot[k].v = v;
    c->slot[k].set = true;
    return 0;
}

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (!strcmp(list[i], s))
            return true;
    return false;
}

KLOG_API int klog_conf_set(klog_conf *conf, const char *key, const char *value, char *errbuf, size_t errsize)
{
    if (!conf || !key || !value)
        return -EINVAL;
    const kc_def *d;
    int64_t unit;
    int ki = find_unit(key, &d, &unit);
    if (ki < 0)
        return unknown_key(key, errbuf, errsize);
    kc_key k = (kc_key)ki;
    switch (d->type) {
    case KC_TYPE_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0')
            return err(errbuf, errsize, "%s: \"%s\" is not an integer", key, value);
        int64_t sv;
        int rc = scale(d, key, v, unit, &sv, errbuf, errsize);
        return rc < 0 ? rc : set_int_checked(conf, k, d, key, sv, errbuf, errsize);
    }
    case KC_TYPE_BOOL:
        if (!strcasecmp(value, "true") || !strcmp(value, "1"))
            return set_int_checked(conf, k, d, key, 1, errbuf, errsize);
        if (!strcasecmp(value, "false") || !strcmp(value, "0"))
            return set_int_checked(conf, k, d, key, 0, errbuf, errsize);
        return err(errbuf, errsize, "%s: \"%s\" is not true or false", key, value);
    case KC_TYPE_ENUM:
        for (int i = 0; d->values[i]; i++)
            if (!strcmp(value, d->values[i])) {
                conf->slot[k].v = i;
                conf->slot[k].set = true;
                return 0;
            }
        for (const kc_sym *s = d->syms; s && s->name; s++)
            if (!strcmp(value, s->name)) {
                conf->slot[k].v = s->value;
                conf->slot[k].set = true;
                return 0;
            }
        if (in_list(d->refused, value))
            return err(errbuf, errsize, "%s: \"%s\" is not supported (%s)", key, value, d->accepts);
        return err(errbuf, errsize, "%s: \"%s\" is not one of the accepted values", key, value);
    case KC_TYPE_SYM:
        for (const kc_sym *s = d->syms; s->name; s++)
            if (!strcmp(value, s->name))
                return set_int_checked(conf, k, d, key, s->value, errbuf, errsize);
        return err(errbuf, errsize, "%s: \"%s\" is not %s", key, value, d->accepts);
    case KC_TYPE_RATIO: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end != '\0' || !(v >= 0.0 && v <= 1.0))
            return err(errbuf, errsize, "%s: \"%s\" is not a number from 0 to 1", key, value);
        return set_int_checked(conf, k, d, key, (int64_t)(v * KC_RATIO_ONE + 0.5), errbuf, errsize);
    }
    case KC_TYPE_STR: {
        if (strlen(value) >= KC_STR_MAX)
            return err(errbuf, errsize, "%s: value longer than %d bytes", key, KC_STR_MAX - 1);
        char *s = strdup(value);
        if (!s)
            return -ENOMEM;
        free(conf->slot[k].s);
        conf->slot[k].s = s;
        conf->slot[k].set = true;
        return 0;
    }
    }
    return -EINVAL;
}

KLOG_API int klog_conf_set_int(klog_conf *conf, const char *key, int64_t value, char *errbuf, size_t errsize)
{
    if (!conf || !key)
        return -EINVAL;
    const kc_def *d;
    int64_t unit;
    int k = find_unit(key, &d, &unit);
    if (k < 0)
        return unknown_key(key, errbuf, errsize);
    if (d->type == KC_TYPE_INT && unit > 1) {
        int rc = scale(d, key, value, unit, &value, errbuf, errsize);
        if (rc < 0)
            return rc;
    }
    if (d->type == KC_TYPE_ENUM || d->type == KC_TYPE_STR || d->type == KC_TYPE_RATIO)
        return err(errbuf, errsize, "%s: takes a string value, not an integer", key);
    if (d->type == KC_TYPE_SYM) {
        const kc_sym *s = d->syms;
        while (s->name && s->value != value)
            s++;
        if (!s->name)
            return err(errbuf, errsize, "%s: %" PRId64 " is not %s", key, value, d->accepts_int);
    }
    return set_int_checked(conf, (kc_key)k, d, key, value, errbuf, errsize);
}

static int format_value(const klog_conf *conf, kc_key k, const kc_def *d, char *buf, size_t bufsize, int64_t unit)
{
    bool set = conf && conf->slot[k].set;
    int64_t v = set ? conf->slot[k].v : d->def;
    switch (d->type) {
    case KC_TYPE_INT:
        return snprintf(buf, bufsize, "%" PRId64, unit > 1 && v > 0 ? v / unit : v);
    case KC_TYPE_BOOL:
        return snprintf(buf, bufsize, "%s", v ? "true" : "false");
    case KC_TYPE_ENUM:
        return snprintf(buf, bufsize, "%s", d->values[v]);
    case KC_TYPE_SYM:
        for (const kc_sym *s = d->syms; s->name; s++)
            if (s->value == v)
                return snprintf(buf, bufsize, "%s", s->name);
        return snprintf(buf, bufsize, "%" PRId64, v);
    case KC_TYPE_STR:
        return snprintf(buf, bufsize, "%s", set && conf->slot[k].s ? conf->slot[k].s : "");
    case KC_TYPE_RATIO:
        return snprintf(buf, bufsize, "%g", (double)v / KC_RATIO_ONE);
    }
    return -EINVAL;
}

KLOG_API int klog_conf_get(const klog_conf *conf, const char *key, char *buf, size_t bufsize)
{
    if (!conf || !key || (!buf && bufsize))
        return -EINVAL;
    const kc_def *d;
    int64_t unit;
    int k = find_unit(key, &d, &unit);
    if (k < 0)
        return KLOG_ECONF;
    return format_value(conf, (kc_key)k, d, buf, bufsize, unit);
}

/* The reads pair with klog__conf_publish: the set flag is loaded with
 * acquire, so a value stored before the flag's release store is seen. */
int64_t klog__conf_int(const klog_conf *conf, kc_key key)
{
    if (conf && __atomic_load_n(&conf->slot[key].set, __ATOMIC_ACQUIRE))
        return __atomic_load_n(&conf->slot[key].v, __ATOMIC_RELAXED);
    return klog__conf_tables[key / KC_TABLE_KEYS]->defs[key % KC_TABLE_KEYS].def;
}

const char *klog__conf_str(const klog_conf *conf, kc_key key)
{
    return conf && conf->slot[key].set && conf->slot[key].s ? conf->slot[key].s : "";
}

/* The hook libklog-testing hands its fault backend through: stored, not
 * checked here (lib/common sits below lib/io); klog_open checks the vtable's
 * magic, version and size and fails with -EINVAL on a bad one. */
KLOG_API int klog_conf_set_io_methods(klog_conf *conf, const void *methods, const void *init_arg)
{
    if (!conf)
        return -EINVAL;
    conf->io_methods = methods;
    conf->io_arg = methods ? init_arg : NULL;
    return 0;
}

const void *klog__conf_io_methods(const klog_conf *conf, const void **init_arg)
{
    *init_arg = conf ? conf->io_arg : NULL;
    return conf ? conf->io_methods : NULL;
}

int klog__conf_isset(const klog_conf *conf, kc_key key)
{
    return conf && __atomic_load_n(&conf->slot[key].set, __ATOMIC_ACQUIRE);
}

int klog__conf_int_isset(const klog_conf *conf, kc_key key, int64_t *value)
{
    if (conf && __atomic_load_n(&conf->slot[key].set, __ATOMIC_ACQUIRE)) {
        *value = __atomic_load_n(&conf->slot[key].v, __ATOMIC_RELAXED);
        return 1;
    }
    *value = klog__conf_tables[key / KC_TABLE_KEYS]->defs[key % KC_TABLE_KEYS].def;
    return 0;
}

int klog__conf_merge(klog_conf *dst, const klog_conf *src)
{
    if (!dst)
        return -EINVAL;
    for (unsigned k = 0; src && k < src->n && k < dst->n; k++) {
        if (!src->slot[k].set)
            continue;
        if (src->slot[k].s) {
            char *s = strdup(src->slot[k].s);
            if (!s)
                return -ENOMEM;
            free(dst->slot[k].s);
            dst->slot[k].s = s;
        }
        dst->slot[k].set = true;
        dst->slot[k].v = src->slot[k].v;
    }
    return 0;
}

void klog__conf_publish(klog_conf *live, const klog_conf *next)
{
    for (unsigned k = 0; k < live->n && k < next->n; k++) {
        kc_slot *l = &live->slot[k];
        const kc_slot *n = &next->slot[k];
        if (l->s || n->s)
            continue; /* strings are not published (see conf.h) */
        if (n->set) {
            if (!l->set || l->v != n->v) {
                __atomic_store_n(&l->v, n->v, __ATOMIC_RELAXED);
                __atomic_store_n(&l->set, true, __ATOMIC_RELEASE);
            }
        } else if (l->set) {
            /* The value stays: a reader that saw set still reads a value
             * this key really had. */
            __atomic_store_n(&l->set, false, __ATOMIC_RELEASE);
        }
    }
}

int klog__conf_dump(const klog_conf *conf, unsigned scope_mask, char *buf, size_t cap)
{
    size_t len = 0;
    if (!conf)
        return 0;
    for (unsigned t = 0; t < klog__conf_ntables; t++)
        for (unsigned i = 0; i < klog__conf_tables[t]->n; i++) {
            const kc_def *d = def_at(t, i);
            kc_key k = KC_KEY_BASE(t) + i;
            if (!d || !conf->slot[k].set || !(d->scope & scope_mask))
                continue;
            char v[KC_STR_MAX + 32];
            format_value(conf, k, d, v, sizeof v, 1);
            int n = snprintf(buf + len, cap - len, "%s=%s\n", d->name, v);
            if (n < 0 || (size_t)n >= cap - len)
                return -ENOSPC;
            len += (size_t)n;
        }
    return (int)len;
}

/* "instance", "topic", "producer or consumer", ... for a scope mask. */
static const char *scope_names(unsigned scope, char *buf, size_t size)
{
    static const char *const names[] = { "instance", "topic", "producer", "consumer" };
    size_t used = 0;
    unsigned n = 0, total = (unsigned)__builtin_popcount(scope & KC_SCOPE_ALL);
    buf[0] = '\0';
    for (unsigned i = 0; i < 4; i++) {
        if (!(scope & (1u << i)))
            continue;
        n++;
        int w = snprintf(buf + used, size - used, "%s%s", n == 1 ? "" : n == total ? " or " : ", ", names[i]);
        if (w < 0 || (size_t)w >= size - used)
            break;
        used += (size_t)w;
    }
    return buf;
}

/* KLOG_ECONF: key is of scope `scope`, not of any in `allowed`. */
static int wrong_scope(const char *key, unsigned scope, unsigned allowed, char *errbuf, size_t errsize)
{
    char is[64], want[64];
    scope_names(scope, is, sizeof is);
    scope_names(allowed, want, sizeof want);
    return err(errbuf, errsize, "%s: a%s %s key, not a%s %s key", key, is[0] == 'i' ? "n" : "", is,
               want[0] == 'i' ? "n" : "", want);
}

int klog__conf_unset(klog_conf *conf, const char *key, unsigned scope_mask, char *errbuf, size_t errsize)
{
    const kc_def *d = NULL;
    int k = key ? find(key, &d) : -1;
    if (k < 0)
        return key ? unknown_key(key, errbuf, errsize) : err(errbuf, errsize, "(null): unknown configuration key");
    if (!(d->scope & scope_mask))
        return wrong_scope(key, d->scope, scope_mask, errbuf, errsize);
    conf->slot[k].set = false;
    conf->slot[k].v = 0;
    free(conf->slot[k].s);
    conf->slot[k].s = NULL;
    return 0;
}

int klog__conf_check_scope(const klog_conf *conf, unsigned scope_mask, char *errbuf, size_t errsize)
{
    if (!conf)
        return 0;
    for (unsigned t = 0; t < klog__conf_ntables; t++)
        for (unsigned i = 0; i < klog__conf_tables[t]->n; i++) {
            const kc_def *d = def_at(t, i);
            if (d && conf->slot[KC_KEY_BASE(t) + i].set && !(d->scope & scope_mask))
                return wrong_scope(d->name, d->scope, scope_mask, errbuf, errsize);
        }
    return 0;
}

/* ---- checking the tables ---------------------------------------------------- */

static int check_def(const kc_table *t, unsigned i, char *errbuf, size_t errsize)
{
    const kc_def *d = &t->defs[i];
    if (!d->name || !d->name[0])
        return err(errbuf, errsize, "table %s: key %u has no name (a hole in the table)", t->owner, i);
    if (!d->doc || !d->doc[0])
        return err(errbuf, errsize, "%s (table %s): no doc line", d->name, t->owner);
    if (!d->scope || (d->scope & ~KC_SCOPE_ALL))
        return err(errbuf, errsize, "%s (table %s): bad scope %#x", d->name, t->owner, d->scope);
    switch (d->type) {
    case KC_TYPE_ENUM: {
        int64_t nv = 0;
        while (d->values && d->values[nv])
            nv++;
        if (nv == 0 || d->def < 0 || d->def >= nv)
            return err(errbuf, errsize, "%s (table %s): no values, or default outside them", d->name, t->owner);
        for (const kc_sym *s = d->syms; s && s->name; s++)
            if (s->value < 0 || s->value >= nv)
                return err(errbuf, errsize, "%s (table %s): spelling %s names no value", d->name, t->owner,
                           s->name);
        if (d->refused && !d->accepts)
            return err(errbuf, errsize, "%s (table %s): refused values need an accepts text", d->name, t->owner);
        return 0;
    }
    case KC_TYPE_SYM: {
        if (!d->syms || !d->accepts || !d->accepts_int)
            return err(errbuf, errsize, "%s (table %s): symbols and accepts texts missing", d->name, t->owner);
        bool has_def = false;
        for (const kc_sym *s = d->syms; s->name; s++) {
            if (s->value < d->min || s->value > d->max)
                return err(errbuf, errsize, "%s (table %s): %s is out of range", d->name, t->owner, s->name);
            has_def |= s->value == d->def;
        }
        if (!has_def)
            return err(errbuf, errsize, "%s (table %s): no symbol for the default", d->name, t->owner);
        return 0;
    }
    case KC_TYPE_INT:
    case KC_TYPE_BOOL:
    case KC_TYPE_RATIO:
        if (d->min > d->max || d->def < d->min || d->def > d->max)
            return err(errbuf, errsize, "%s (table %s): default %" PRId64 " outside [%" PRId64 ", %" PRId64 "]",
                       d->name, t->owner, d->def, d->min, d->max);
        if (d->type == KC_TYPE_BOOL && (d->min != 0 || d->max != 1))
            return err(errbuf, errsize, "%s (table %s): a boolean ranges over 0..1", d->name, t->owner);
        return 0;
    case KC_TYPE_STR:
        return 0;
    }
    return err(errbuf, errsize, "%s (table %s): unknown type %d", d->name, t->owner, (int)d->type);
}

int klog__conf_tables_check(const kc_table *const *tables, unsigned n, char *errbuf, size_t errsize)
{
    for (unsigned ti = 0; ti < n; ti++) {
        const kc_table *t = tables[ti];
        if (!t || !t->owner || !t->defs)
            return err(errbuf, errsize, "table %u is missing", ti);
        if (t->id != ti)
            return err(errbuf, errsize, "table %s has id %u but is listed at %u", t->owner, t->id, ti);
        if (t->n == 0 || t->n > KC_TABLE_KEYS)
            return err(errbuf, errsize, "table %s: %u keys (1 to %d)", t->owner, t->n, KC_TABLE_KEYS);
        for (unsigned i = 0; i < t->n; i++) {
            int rc = check_def(t, i, errbuf, errsize);
            if (rc < 0)
                return rc;
            /* unique across every table seen so far, this one included */
            for (unsigned tj = 0; tj <= ti; tj++)
                for (unsigned j = 0; j < (tj == ti ? i : tables[tj]->n); j++)
                    if (!strcmp(tables[tj]->defs[j].name, t->defs[i].name))
                        return err(errbuf, errsize, "%s: defined twice (tables %s and %s)", t->defs[i].name,
                                   tables[tj]->owner, t->owner);
        }
    }
    return 0;
}

int klog__conf_aliases_check(const kc_alias *const *lists, char *errbuf, size_t errsize)
{
    for (unsigned l = 0; lists && lists[l]; l++)
        for (const kc_alias *a = lists[l]; a->name; a++) {
            const kc_def *d = klog__conf_def(a->key), *same;
            if (!d)
                return err(errbuf, errsize, "alias %s: names no key", a->name);
            if (a->unit > 1 && d->type != KC_TYPE_INT)
                return err(errbuf, errsize, "alias %s: a unit on %s, which is not an integer key", a->name, d->name);
            if (a->unit < 0)
                return err(errbuf, errsize, "alias %s: a negative unit", a->name);
            for (unsigned t = 0; t < klog__conf_ntables; t++)
                for (unsigned i = 0; i < klog__conf_tables[t]->n; i++)
                    if ((same = def_at(t, i)) && !strcmp(same->name, a->name))
                        return err(errbuf, errsize, "%s: both a key and an alias", a->name);
            for (unsigned m = 0; lists[m]; m++)
                for (const kc_alias *b = lists[m]; b->name; b++)
                    if (b != a && !strcmp(b->name, a->name))
                        return err(errbuf, errsize, "%s: an alias twice", a->name);
        }
    return 0;
}
