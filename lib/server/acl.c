/*
 * lib/server/acl.c - ACLs, their file and the decision (acl.h).  libc only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "server/acl.h"
#include "server/secfile.h"


/* ---- names ----------------------------------------------------------------------- */

static const char *const op_names[] = { [KACL_OP_ANY] = "Any", [KACL_OP_ALL] = "All", [KACL_OP_READ] = "Read",
    [KACL_OP_WRITE] = "Write", [KACL_OP_CREATE] = "Create", [KACL_OP_DELETE] = "Delete",
    [KACL_OP_ALTER] = "Alter", [KACL_OP_DESCRIBE] = "Describe", [KACL_OP_CLUSTER_ACTION] = "ClusterAction",
    [KACL_OP_DESCRIBE_CONFIGS] = "DescribeConfigs", [KACL_OP_ALTER_CONFIGS] = "AlterConfigs",
    [KACL_OP_IDEMPOTENT_WRITE] = "IdempotentWrite" };
static const char *const res_names[] = { [KACL_RES_ANY] = "any", [KACL_RES_TOPIC] = "topic",
    [KACL_RES_GROUP] = "group", [KACL_RES_CLUSTER] = "cluster", [KACL_RES_TXN] = "transactional-id" };
static const char *const pat_names[] = { [KACL_PAT_ANY] = "any", [KACL_PAT_MATCH] = "match",
    [KACL_PAT_LITERAL] = "literal", [KACL_PAT_PREFIXED] = "prefixed" };
static const char *const perm_names[] = { [KACL_PERM_ANY] = "any", [KACL_DENY] = "deny", [KACL_ALLOW] = "allow" };

#define N_(a) ((int)(sizeof a / sizeof a[0]))

static const char *name_of(const char *const *v, int n, int code)
{
    return code > 0 && code < n && v[code] ? v[code] : "unknown";
}

/* Case and '-'/'_' insensitive: "DescribeConfigs", "describe_configs", "DESCRIBE-CONFIGS". */
static bool same(const char *a, const char *b)
{
    for (;;) {
        while (*a == '_' || *a == '-')
            a++;
        while (*b == '_' || *b == '-')
            b++;
        if (!*a || !*b)
            return !*a && !*b;
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return false;
        a++, b++;
    }
}

static int code_of(const char *const *v, int n, const char *s)
{
    for (int i = 1; i < n; i++)
        if (v[i] && same(v[i], s))
            return i;
    return 0;
}

const char *kacl_op_name(int op) { return name_of(op_names, N_(op_names), op); }
int kacl_op_of(const char *s) { return code_of(op_names, N_(op_names), s); }
const char *kacl_res_name(int t) { return name_of(res_names, N_(res_names), t); }
int kacl_res_of(const char *s) { return code_of(res_names, N_(res_names), s); }
const char *kacl_pat_name(int p) { return name_of(pat_names, N_(pat_names), p); }
int kacl_pat_of(const char *s) { return code_of(pat_names, N_(pat_names), s); }
const char *kacl_perm_name(int p) { return name_of(perm_names, N_(perm_names), p); }
int kacl_perm_of(const char *s) { return code_of(perm_names, N_(perm_names), s); }

const char *kacl_invalid(const kacl *a)
{
    if (a->res_type != KACL_RES_TOPIC && a->res_type != KACL_RES_GROUP && a->res_type != KACL_RES_CLUSTER &&
        a->res_type != KACL_RES_TXN)
        return "resource type must be topic, group, cluster or transactional-id";
    if (a->pattern != KACL_PAT_LITERAL && a->pattern != KACL_PAT_PREFIXED)
        return "pattern type must be literal or prefixed";
    if (a->op < KACL_OP_ALL || a->op > KACL_OP_IDEMPOTENT_WRITE)
        return "unknown operation";
    if (a->perm != KACL_ALLOW && a->perm != KACL_DENY)
        return "permission must be allow or deny";
    if (!a->name[0])
        return "empty resource name";
    if (a->res_type == KACL_RES_CLUSTER && strcmp(a->name, KACL_CLUSTER_NAME) != 0)
        return "the cluster's name is kafka-cluster";
    const char *colon = strchr(a->principal, ':');
    if (!colon || colon == a->principal || !colon[1])
        return "principal must be TYPE:NAME (User:alice, User:*)";
    if (!a->host[0])
        return "empty host (* is every host)";
    return NULL;
}

/* ---- lists -------------------------------------------------------------------------- */

static bool acl_eq(const kacl *a, const kacl *b)
{
    return a->res_type == b->res_type && a->pattern == b->pattern && a->op == b->op && a->perm == b->perm &&
           !strcmp(a->name, b->name) && !strcmp(a->principal, b->principal) && !strcmp(a->host, b->host);
}

int kacl_list_add(kacl_list *l, const kacl *a)
{
    for (size_t i = 0; i < l->n; i++)
        if (acl_eq(&l->v[i], a))
            return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 8;
        kacl *v = realloc(l->v, nc * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n++] = *a;
    return 1;
}

void kacl_list_free(kacl_list *l)
{
    if (!l)
        return;
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* Kafka's filter semantics (ResourcePatternFilter, AccessControlEntryFilter). */
bool kacl_matches(const kacl *a, const kacl_filter *f)
{
    if (f->res_type != KACL_RES_ANY && f->res_type != a->res_type)
        return false;
    if (f->op != KACL_OP_ANY && f->op != a->op)
        return false;
    if (f->perm != KACL_PERM_ANY && f->perm != a->perm)
        return false;
    if (f->principal && strcmp(f->principal, a->principal))
        return false;
    if (f->host && strcmp(f->host, a->host))
        return false;
    switch (f->pattern) {
    case KACL_PAT_ANY:
        return !f->name || !strcmp(f->name, a->name);
    case KACL_PAT_MATCH:
        /* The ACLs that would apply to a resource called f->name. */
        if (!f->name)
            return true;
        if (a->pattern == KACL_PAT_LITERAL)
            return !strcmp(a->name, f->name) || !strcmp(a->name, "*");
        return !strncmp(f->name, a->name, strlen(a->name));
    default:
        return f->pattern == a->pattern && (!f->name || !strcmp(f->name, a->name));
    }
}

size_t kacl_list_remove(kacl_list *l, const kacl_filter *f, kacl_list *removed)
{
    size_t out = 0, gone = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (kacl_matches(&l->v[i], f)) {
            if (removed)
                kacl_list_add(removed, &l->v[i]);
            gone++;
        } else {
            l->v[out++] = l->v[i];
        }
    }
    l->n = out;
    return gone;
}

/* ---- the file --------------------------------------------------------------------------- */

static void esc(const char *s, char *out, size_t outsz)
{
    size_t o = 0;
    for (; *s && o + 4 < outsz; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == '%' || c == 0x7f)
            o += (size_t)snprintf(out + o, outsz - o, "%%%02X", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

static int unesc(const char *s, char *out, size_t outsz)
{
    size_t o = 0;
    for (; *s; s++) {
        char c = *s;
        if (c == '%') {
            unsigned v;
            if (sscanf(s + 1, "%2x", &v) != 1 || !s[1] || !s[2])
                return -EINVAL;
            c = (char)v;
            s += 2;
        }
        if (o + 1 >= outsz || c == '\0')
            return -EINVAL;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

void kacl_format(const kacl *a, char *out, size_t outsz)
{
    char p[3 * KACL_FIELD_MAX], h[200], n[3 * KACL_FIELD_MAX];
    esc(a->principal, p, sizeof p);
    esc(a->host, h, sizeof h);
    esc(a->name, n, sizeof n);
    snprintf(out, outsz, "%s %s %s %s %s %s %s", kacl_perm_name(a->perm), p, h, kacl_op_name(a->op),
             kacl_res_name(a->res_type), kacl_pat_name(a->pattern), n);
}

static int parse(char *line, kacl *a)
{
    char *f[8];
    int n = 0;
    for (char *tok = strtok(line, " \t"); tok; tok = strtok(NULL, " \t")) {
        if (n == 7)
            return -EINVAL;
        f[n++] = tok;
    }
    if (n != 7)
        return -EINVAL;
    memset(a, 0, sizeof *a);
    a->perm = (int8_t)kacl_perm_of(f[0]);
    a->op = (int8_t)kacl_op_of(f[3]);
    a->res_type = (int8_t)kacl_res_of(f[4]);
    a->pattern = (int8_t)kacl_pat_of(f[5]);
    if (unesc(f[1], a->principal, sizeof a->principal) < 0 || unesc(f[2], a->host, sizeof a->host) < 0 ||
        unesc(f[6], a->name, sizeof a->name) < 0)
        return -EINVAL;
    return kacl_invalid(a) ? -EINVAL : 0;
}

int kacl_load(const char *path, kacl_list *out, char *errbuf, size_t errsize)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        int rc = -errno;
        return ksec_errf(errbuf, errsize, rc, "%s: %s", path, strerror(-rc));
    }
    char line[4 * KACL_FIELD_MAX];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line + strspn(line, " \t");
        if (!*p || *p == '#')
            continue;
        kacl a;
        if (parse(p, &a) < 0) {
            rc = ksec_errf(errbuf, errsize, -EINVAL,
                      "%s:%d: not PERMISSION PRINCIPAL HOST OPERATION TYPE PATTERN NAME", path, lineno);
            break;
        }
        if ((rc = kacl_list_add(out, &a)) < 0)
            break;
        rc = 0;
    }
    fclose(f);
    if (rc < 0)
        kacl_list_free(out);
    return rc;
}

int kacl_save(const char *path, const kacl_list *l, char *errbuf, size_t errsize)
{
    char tmp[4200];
    FILE *f;
    int rc = ksec_file_create(path, tmp, sizeof tmp, &f, errbuf, errsize);
    if (rc < 0)
        return rc;
    fprintf(f, "# klog acls: PERMISSION PRINCIPAL HOST OPERATION TYPE PATTERN NAME\n");
    char line[4 * KACL_FIELD_MAX];
    for (size_t i = 0; i < l->n; i++) {
        kacl_format(&l->v[i], line, sizeof line);
        fprintf(f, "%s\n", line);
    }
    return ksec_file_commit(f, tmp, path, errbuf, errsize);
}

/* ---- deciding ------------------------------------------------------------------------------ */

static bool is_super(const char *supers, const char *principal)
{
    if (!supers || !*supers)
        return false;
    size_t pn = strlen(principal);
    for (const char *p = supers; *p;) {
        const char *e = strchr(p, ';');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' '))
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n == pn && !memcmp(p, principal, n))
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

static bool principal_matches(const kacl *a, const char *principal)
{
    if (!strcmp(a->principal, principal))
        return true;
    /* "User:*": every principal of that type. */
    size_t n = strlen(a->principal);
    return n >= 2 && a->principal[n - 1] == '*' && a->principal[n - 2] == ':' &&
           !strncmp(a->principal, principal, n - 1);
}

static bool resource_matches(const kacl *a, int res_type, const char *name)
{
    if (a->res_type != res_type)
        return false;
    if (a->pattern == KACL_PAT_LITERAL)
        return !strcmp(a->name, "*") || !strcmp(a->name, name);
    return !strncmp(name, a->name, strlen(a->name));
}

static bool implies(int acl_op, int op)
{
    if (acl_op == KACL_OP_ALL || acl_op == op)
        return true;
    if (op == KACL_OP_DESCRIBE)
        return acl_op == KACL_OP_READ || acl_op == KACL_OP_WRITE || acl_op == KACL_OP_DELETE ||
               acl_op == KACL_OP_ALTER;
    if (op == KACL_OP_DESCRIBE_CONFIGS)
        return acl_op == KACL_OP_ALTER_CONFIGS;
    return false;
}

bool kacl_authorize(const kacl_list *l, const char *supers, bool allow_if_none, const char *principal,
                    const char *host, int op, int res_type, const char *name)
{
    if (is_super(supers, principal))
        return true;
    bool any = false, allowed = false;
    for (size_t i = 0; i < l->n; i++) {
        const kacl *a = &l->v[i];
        if (!resource_matches(a, res_type, name))
            continue;
        any = true;
        if (!principal_matches(a, principal) || (strcmp(a->host, "*") && strcmp(a->host, host)))
            continue;
        if (a->perm == KACL_DENY && (a->op == KACL_OP_ALL || a->op == op))
            return false;
        if (a->perm == KACL_ALLOW && implies(a->op, op))
            allowed = true;
    }
    return allowed || (!any && allow_if_none);
}

bool kacl_allows_any(const kacl_list *l, const char *principal, const char *host, int op, int res_type)
{
    for (size_t i = 0; i < l->n; i++) {
        const kacl *a = &l->v[i];
        if (a->res_type == res_type && a->perm == KACL_ALLOW && implies(a->op, op) &&
            principal_matches(a, principal) && (!strcmp(a->host, "*") || !strcmp(a->host, host)))
            return true;
    }
    return false;
}
