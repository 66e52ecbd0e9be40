/*
 * lib/server/acl.h - access control lists in Kafka's model, and the file
 * they live in.
 *
 * An ACL says: PRINCIPAL from HOST is allowed (or denied) OPERATION on the
 * resources of TYPE whose name is NAME (literal; "*" is every name) or
 * starts with NAME (prefixed).  The codes are Kafka's (AclOperation,
 * ResourceType, PatternType, AclPermissionType), as CreateAcls,
 * DescribeAcls and DeleteAcls carry them.
 *
 * Deciding (kacl_authorize), as Kafka's AclAuthorizer: a super user may do
 * everything; otherwise an ACL that denies the operation wins over any that
 * allows it; an ACL allows an operation it names, ALL, and DESCRIBE when it
 * allows READ, WRITE, DELETE or ALTER (DESCRIBE_CONFIGS with
 * ALTER_CONFIGS); with no matching ACL the answer is the default
 * (allow.everyone.if.no.acl.found: no).
 *
 * The file (acl.file; klog acls writes it, CreateAcls and DeleteAcls
 * rewrite it), one ACL a line, fields separated by spaces, '%' escapes
 * (%20 for a space, %25 for '%') in the principal, host and name:
 *
 *     # klog acls: PERMISSION PRINCIPAL HOST OPERATION TYPE PATTERN NAME
 *     allow User:alice * Write topic literal orders
 *     deny User:* 10.1.2.3 All topic prefixed secret-
 *
 * Self-contained (libc only), linked by the klog tool (tools/cmd_acls.c).
 * Threading: a kacl_list is a plain value; the server guards its own.
 */
#ifndef KLOG_SERVER_ACL_H
#define KLOG_SERVER_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kafka's codes. */
enum { KACL_RES_ANY = 1, KACL_RES_TOPIC = 2, KACL_RES_GROUP = 3, KACL_RES_CLUSTER = 4, KACL_RES_TXN = 5 };
enum { KACL_PAT_ANY = 1, KACL_PAT_MATCH = 2, KACL_PAT_LITERAL = 3, KACL_PAT_PREFIXED = 4 };
enum {
    KACL_OP_ANY = 1, KACL_OP_ALL = 2, KACL_OP_READ = 3, KACL_OP_WRITE = 4, KACL_OP_CREATE = 5,
    KACL_OP_DELETE = 6, KACL_OP_ALTER = 7, KACL_OP_DESCRIBE = 8, KACL_OP_CLUSTER_ACTION = 9,
    KACL_OP_DESCRIBE_CONFIGS = 10, KACL_OP_ALTER_CONFIGS = 11, KACL_OP_IDEMPOTENT_WRITE = 12,
};
enum { KACL_PERM_ANY = 1, KACL_DENY = 2, KACL_ALLOW = 3 };

#define KACL_CLUSTER_NAME "kafka-cluster"
#define KACL_FIELD_MAX 512

typedef struct kacl {
    int8_t res_type;
    int8_t pattern;                  /* LITERAL or PREFIXED */
    int8_t op;
    int8_t perm;                     /* ALLOW or DENY */
    char name[KACL_FIELD_MAX];
    char principal[KACL_FIELD_MAX];  /* "User:alice", "User:*" */
    char host[64];                   /* "*" or an address */
} kacl;

typedef struct kacl_list {
    kacl *v;
    size_t n, cap;
} kacl_list;

/* A filter (DescribeAcls, DeleteAcls, klog acls list|remove): a code ANY
 * (or pattern MATCH), and a NULL string, match everything. */
typedef struct kacl_filter {
    int8_t res_type, pattern, op, perm;
    const char *name, *principal, *host;
} kacl_filter;

/* Names: "Read" <-> KACL_OP_READ ("read", "READ" accepted), "topic" <->
 * KACL_RES_TOPIC, "literal", "allow".  The parsers return 0 for an
 * unknown name. */
const char *kacl_op_name(int op);
int kacl_op_of(const char *s);
const char *kacl_res_name(int t);
int kacl_res_of(const char *s);
const char *kacl_pat_name(int p);
int kacl_pat_of(const char *s);
const char *kacl_perm_name(int p);
int kacl_perm_of(const char *s);

/* Is a an ACL that can be stored (codes in range, not ANY, a principal
 * "Type:name", a name; the cluster's name is "kafka-cluster")?  NULL or a
 * reason. */
const char *kacl_invalid(const kacl *a);

/* Add a (a copy) unless an equal one is there.  1 added, 0 there, -ENOMEM. */
int kacl_list_add(kacl_list *l, const kacl *a);
/* Remove every ACL f matches; returns how many, copying them to removed
 * when it is not NULL (appended). */
size_t kacl_list_remove(kacl_list *l, const kacl_filter *f, kacl_list *removed);
void kacl_list_free(kacl_list *l);
bool kacl_matches(const kacl *a, const kacl_filter *f);

/* Read path (missing: empty), write it (a temporary file, fsync, rename,
 * mode 0600).  0, -errno, -EINVAL for a malformed line (errbuf says
 * where). */
int kacl_load(const char *path, kacl_list *out, char *errbuf, size_t errsize);
int kacl_save(const char *path, const kacl_list *l, char *errbuf, size_t errsize);
/* A read-change-write of the file holds ksec_file_lock(path) (secfile.h). */

/* One line of the file for a (no newline). */
void kacl_format(const kacl *a, char *out, size_t outsz);

/*
 * May principal, connected from host, do op on the resource (res_type,
 * name)?  supers: "User:a;User:b" (super.users) or NULL.
 */
bool kacl_authorize(const kacl_list *l, const char *supers, bool allow_if_none, const char *principal,
                    const char *host, int op, int res_type, const char *name);
/* Does principal have any ACL allowing op on some resource of res_type
 * (InitProducerId: WRITE on any topic)? */
bool kacl_allows_any(const kacl_list *l, const char *principal, const char *host, int op, int res_type);

#endif
