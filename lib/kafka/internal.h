/*
 * lib/kafka/internal.h - what lib/kafka's files share: the schema tables
 * (msg.c) the one interpreter (codec.c) walks to decode, encode and print
 * every message.
 *
 * A schema is a message's field list in wire order.  Each field says the
 * versions it is on the wire in, the versions in which it may be null, its
 * default when absent, where it lives in the C struct (offsetof), and for
 * arrays of structs the element's schema.  This is Kafka's own JSON message
 * spec format, reduced to what the versions klog implements need.
 */
#ifndef KLOG_KAFKA_INTERNAL_H
#define KLOG_KAFKA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka/kafka.h"

enum kk_ftype {
    KK_T_BOOL,       /* bool */
    KK_T_I8,         /* int8_t */
    KK_T_I16,        /* int16_t */
    KK_T_I32,        /* int32_t */
    KK_T_I64,        /* int64_t */
    KK_T_STR,        /* kk_str */
    KK_T_BYTES,      /* kk_bytes */
    KK_T_RECORDS,    /* kk_records */
    KK_T_STRUCTS,    /* KK_ARRAY(struct of sub) */
    KK_T_I32S,       /* kk_i32_array */
    KK_T_STRS,       /* kk_str_array */
};

#define KK_VMAX 127  /* "and every later version" */

typedef struct kk_field {
    const char *name;
    uint16_t off;          /* offsetof in the struct */
    uint8_t type;          /* enum kk_ftype */
    int8_t vmin, vmax;     /* on the wire in versions [vmin, vmax] */
    int8_t nmin, nmax;     /* nullable in [nmin, nmax]; nmin > nmax: never */
    int64_t dflt;          /* integers and bool: the value when absent */
    const struct kk_schema *sub; /* KK_T_STRUCTS: the element */
} kk_field;

struct kk_schema {
    const char *name;
    uint16_t size;         /* sizeof the C struct */
    uint16_t nfields;
    const kk_field *fields;
};

/* Every array field has this layout (msg.h KK_ARRAY). */
typedef struct kk_array_any {
    void *v;
    int32_t n;
} kk_array_any;

static inline bool kk_field_on(const kk_field *f, int v) { return v >= f->vmin && v <= f->vmax; }
static inline bool kk_field_nullable(const kk_field *f, int v) { return v >= f->nmin && v <= f->nmax; }

/* The request and response schemas of each API (msg.c). */
#define KK_SCHEMA_DECL_(n) extern const kk_schema kk_##n##_req_schema, kk_##n##_resp_schema;
KK_SCHEMA_DECL_(produce)
KK_SCHEMA_DECL_(fetch)
KK_SCHEMA_DECL_(list_offsets)
KK_SCHEMA_DECL_(metadata)
KK_SCHEMA_DECL_(offset_commit)
KK_SCHEMA_DECL_(offset_fetch)
KK_SCHEMA_DECL_(find_coordinator)
KK_SCHEMA_DECL_(join_group)
KK_SCHEMA_DECL_(heartbeat)
KK_SCHEMA_DECL_(leave_group)
KK_SCHEMA_DECL_(sync_group)
KK_SCHEMA_DECL_(describe_groups)
KK_SCHEMA_DECL_(list_groups)
KK_SCHEMA_DECL_(sasl_handshake)
KK_SCHEMA_DECL_(api_versions)
KK_SCHEMA_DECL_(create_topics)
KK_SCHEMA_DECL_(delete_topics)
KK_SCHEMA_DECL_(delete_records)
KK_SCHEMA_DECL_(init_producer_id)
KK_SCHEMA_DECL_(describe_acls)
KK_SCHEMA_DECL_(create_acls)
KK_SCHEMA_DECL_(delete_acls)
KK_SCHEMA_DECL_(describe_configs)
KK_SCHEMA_DECL_(alter_configs)
KK_SCHEMA_DECL_(incremental_alter_configs)
KK_SCHEMA_DECL_(sasl_authenticate)
KK_SCHEMA_DECL_(create_partitions)
KK_SCHEMA_DECL_(delete_groups)
KK_SCHEMA_DECL_(leader_and_isr)
KK_SCHEMA_DECL_(offset_for_leader_epoch)
KK_SCHEMA_DECL_(alter_partition)
KK_SCHEMA_DECL_(elect_leaders)
#undef KK_SCHEMA_DECL_

/* Smallest wire size of one element of array field f in version v (>= 1). */
size_t kk__elem_min(const kk_field *f, int v, bool flex);

/* For tests: a schema's fields (generic walkers in test/kafka). */
static inline int kk_schema_nfields(const kk_schema *s) { return s->nfields; }
static inline const kk_field *kk_schema_field(const kk_schema *s, int i) { return &s->fields[i]; }

#endif /* KLOG_KAFKA_INTERNAL_H */
