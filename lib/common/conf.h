/*
 * lib/common/conf.h - the machinery behind klog_conf: key tables, typed
 * reads by key id.
 *
 * conf.c knows no key.  Each subsystem declares the keys it owns in a
 * table of its own (lib/<subsystem>/conf_keys.{h,c}: name, type, scope,
 * default, range, accepted values, a one-line doc), and the library's
 * composition (lib/compose.c) lists the tables in klog__conf_tables.  A key
 * id is the table's id (KC_TABLE_* in lib/compose.h) times KC_TABLE_KEYS
 * plus the key's index in its table, so a read by id is two array loads.
 *
 * Adding keys to a subsystem: append them to its enum and table.  Adding a
 * subsystem with keys: write its conf_keys.{h,c}, give it a KC_TABLE_* id in
 * lib/compose.h and list its table in lib/compose.c.  test/common/conf_registry.c
 * walks every table and rejects a duplicate name, a hole, a default out of
 * its range or a key without a doc (klog__conf_tables_check).
 *
 * Order: names are looked up in table order, and klog__conf_dump and
 * klog__conf_check_scope walk keys in table order, then key order.
 */
#ifndef KLOG_COMMON_CONF_H
#define KLOG_COMMON_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <klog/conf.h>

/* Room for keys in one table: a key id is table * KC_TABLE_KEYS + index. */
#define KC_TABLE_KEYS 32
#define KC_KEY_BASE(table) ((table) * KC_TABLE_KEYS)

typedef unsigned kc_key;

/* Scopes: which objects read a key (klog/conf.h). */
enum { KC_SCOPE_INSTANCE = 1, KC_SCOPE_TOPIC = 2, KC_SCOPE_PRODUCER = 4, KC_SCOPE_CONSUMER = 8 };
#define KC_SCOPE_ALL 15u

enum kc_type {
    KC_TYPE_INT = 1, /* decimal integer in [min, max] */
    KC_TYPE_BOOL,    /* true|false|1|0, stored 1 or 0 */
    KC_TYPE_ENUM,    /* one of values[], stored as its index */
    KC_TYPE_STR,     /* up to KC_STR_MAX - 1 bytes */
    KC_TYPE_SYM,     /* an integer named by one of syms[] ("all" = -1) */
    KC_TYPE_RATIO,   /* a decimal number 0..1, stored in millionths */
};

/* Ratio keys are stored in millionths. */
#define KC_RATIO_ONE 1000000
/* Longest string value, NUL included. */
#define KC_STR_MAX 256

typedef struct kc_sym {
    const char *name;
    int64_t value;
} kc_sym;

typedef struct kc_def {
    const char *name;           /* Kafka's name where Kafka has the key */
    enum kc_type type;
    unsigned scope;             /* KC_SCOPE_* mask */
    int64_t def, min, max;      /* default and inclusive range (ENUM: default index) */
    const char *const *values;  /* ENUM: canonical names by stored value, NULL-terminated */
    /* ENUM: further spellings accepted ("delete,compact"); SYM: every
     * spelling accepted, the first of a value being how it is shown.
     * Terminated by a NULL name. */
    const kc_sym *syms;
    /* ENUM: values that are known (Kafka has them) but refused, with
     * "NAME: \"VALUE\" is not supported (ACCEPTS)"; NULL-terminated. */
    const char *const *refused;
    const char *accepts;        /* ENUM with refused; SYM: what the string setter takes */
    const char *accepts_int;    /* SYM: what the integer setter takes */
    const char *doc;            /* one line: what the key does */
} kc_def;

/* Table entries (a key's index in its table is its enum value minus the
 * table's KC_KEY_BASE: use designated initialisers). */
#define KC_INT(n_, sc_, def_, lo_, hi_, doc_) \
    { .name = n_, .type = KC_TYPE_INT, .scope = sc_, .def = def_, .min = lo_, .max = hi_, .doc = doc_ }
#define KC_BOOL(n_, sc_, def_, doc_) \
    { .name = n_, .type = KC_TYPE_BOOL, .scope = sc_, .def = def_, .min = 0, .max = 1, .doc = doc_ }
#define KC_ENUM(n_, sc_, def_, values_, doc_) \
    { .name = n_, .type = KC_TYPE_ENUM, .scope = sc_, .def = def_, .values = values_, .doc = doc_ }
#define KC_STR(n_, sc_, doc_) { .name = n_, .type = KC_TYPE_STR, .scope = sc_, .doc = doc_ }

/*
 * Another spelling of a key of the same table: Kafka's topic-level
 * retention.hours, or the broker-level log.retention.ms that Kafka takes as
 * every topic's default.  A subsystem lists its aliases beside its table
 * (terminated by a NULL name) and lib/compose.c lists those lists in
 * klog__conf_aliases.  An alias is not a key of its own: setting it sets
 * `key` (an integer alias's value times `unit`, a negative value as it is:
 * -1 stays "forever" as in Kafka), reading it reads `key` (divided by
 * `unit`), unsetting it unsets `key`; klog__conf_dump shows `key`.
 */
typedef struct kc_alias {
    const char *name;
    kc_key key;                 /* the key's id */
    int64_t unit;               /* 0 or 1: the same unit; INT keys only otherwise */
} kc_alias;

typedef struct kc_table {
    const char *owner;          /* the subsystem, for messages ("producer") */
    unsigned id;                /* KC_TABLE_*: its index in klog__conf_tables */
    const kc_def *defs;         /* by key index (key id % KC_TABLE_KEYS) */
    unsigned n;                 /* <= KC_TABLE_KEYS */
} kc_table;

/* The tables of the library, indexed by id (defined by lib/compose.c). */
extern const kc_table *const klog__conf_tables[];
extern const unsigned klog__conf_ntables;

/* The alias lists of the library, NULL-terminated (lib/compose.c). */
extern const kc_alias *const klog__conf_aliases[];

/* Check alias lists (NULL-terminated) against the library's tables: every
 * alias names a key (with a unit only for an integer key), and no alias is
 * spelled as a key or as another alias.  0 or KLOG_ECONF with the problem. */
int klog__conf_aliases_check(const kc_alias *const *lists, char *errbuf, size_t errsize);

/* Check a set of tables: ids match positions, no hole, no name twice
 * (across all of them), defaults inside their ranges, enum and symbol lists
 * present, a doc line for every key.  Returns 0 or KLOG_ECONF with the first
 * problem in errbuf. */
int klog__conf_tables_check(const kc_table *const *tables, unsigned n, char *errbuf, size_t errsize);

/* The name of the key or alias closest to `key` by edit distance, if it is
 * close enough to be a typo of it (one edit for a name under 9 characters,
 * two for a longer one); NULL otherwise.  The "did you mean" of unknown
 * keys. */
const char *klog__conf_suggest(const char *key);

/* The definition of a key id, or NULL if no table has it. */
const kc_def *klog__conf_def(kc_key key);

/*
 * Typed reads (conf NULL gives the default).  Integer, boolean, enumerated,
 * symbolic and ratio keys read as integers; string keys as strings (never
 * NULL, "" when unset).  A read is one atomic load of the set flag and one
 * of the value: see klog__conf_publish.
 */
int64_t klog__conf_int(const klog_conf *conf, kc_key key);
const char *klog__conf_str(const klog_conf *conf, kc_key key);
/* The I/O backend vtable klog_conf_set_io_methods put on conf (NULL: the
 * shipped backends, chosen by io.backend) and its init argument. */
const void *klog__conf_io_methods(const klog_conf *conf, const void **init_arg);
/* Was the key set explicitly? */
int klog__conf_isset(const klog_conf *conf, kc_key key);
/* Both at once: 1 with the set value, or 0 with the default.  On a conf
 * that klog__conf_publish may change meanwhile, use this rather than isset
 * then int: each of those reads the set flag, and the two reads may see
 * different publishes. */
int klog__conf_int_isset(const klog_conf *conf, kc_key key, int64_t *value);

/* Copy every explicitly set key of src into dst (topic overrides).  Returns
 * 0, -EINVAL (dst NULL), -ENOMEM (a string copy). */
int klog__conf_merge(klog_conf *dst, const klog_conf *src);

/*
 * Make live read as next, in place, while other threads may read live
 * (klog__conf_int/isset) without a lock: each key changes with one release
 * store of its set flag, after its value, so a reader sees each key's old
 * value or its new one, never a mix of the two.  Keys may change
 * independently of each other.  String keys are not touched: live and next
 * must hold the same strings (a topic's confs differ only in topic-scope
 * keys, none of which is a string).  One writer at a time.
 */
void klog__conf_publish(klog_conf *live, const klog_conf *next);

/* Serialise the explicitly set keys of scope_mask as "key=value\n" lines;
 * returns length or -ENOSPC.  Parsing is klog_conf_set line by line. */
int klog__conf_dump(const klog_conf *conf, unsigned scope_mask, char *buf, size_t cap);

/* Forget an explicitly set key (it reads as its default again).  Returns 0,
 * or KLOG_ECONF when the key is unknown or outside scope_mask. */
int klog__conf_unset(klog_conf *conf, const char *key, unsigned scope_mask, char *errbuf, size_t errsize);

/* KLOG_ECONF naming the first explicitly set key outside scope_mask and
 * the scope it belongs to ("retention.ms: a topic key, not a producer or
 * consumer key"). */
int klog__conf_check_scope(const klog_conf *conf, unsigned scope_mask, char *errbuf, size_t errsize);

#endif
