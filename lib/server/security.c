/*
 * lib/server/security.c - who a connection is and what it may do:
 * SaslHandshake and SaslAuthenticate (PLAIN, SCRAM-SHA-256/512 over the
 * credentials of scram.c), identities the transport vouches for (TLS
 * client certificates, pre-shared keys), the ACLs of acl.c with
 * CreateAcls, DescribeAcls and DeleteAcls, and ksrv_allowed, which every
 * handler asks.
 *
 * Authentication is required when SASL is on (sasl.enabled.mechanisms) or
 * TLS client certificates are (ssl.client.auth=required).  Until a
 * connection has authenticated, server.c lets through ApiVersions and the
 * SASL requests only, with frames capped at sasl.server.max.receive.size;
 * anything else closes it (as Kafka's SaslServerAuthenticator does).
 * ACLs are enforced whenever authentication is required; with it off
 * every client is User:ANONYMOUS and may do everything (the ACL APIs
 * still keep ACLs, for later).
 *
 * A failed attempt is answered after connection.failed.authentication.
 * delay.ms, doubled for each failure from the same address within a
 * minute (at most 10 s), without holding the worker (the call parks), and
 * the connection is closed after the answer.  Failures are logged (the
 * first few per address, then every power of two).
 *
 * Threading: handlers run on the workers; the users and the ACLs are read
 * under sec->lock (shared) and replaced under it (exclusive) by a reload
 * or an ACL change, which also holds the ACL file's lock across its
 * read-change-write so that a `klog acls` beside a running server is not
 * lost.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "common/conf.h"
#include "server/acl.h"
#include "server/secfile.h"
#include "server/conf_keys.h"
#include "server/internal.h"
#include "server/scram.h"
#include "topic/topic.h"
#include "transport/conf_keys.h"

#define FAIL_SLOTS 256
#define FAIL_WINDOW_NS (60LL * 1000000000LL)
#define FAIL_DELAY_MAX_MS 10000

struct fail_ent {
    char host[64];
    int fails;
    int64_t last;
};

struct ksrv_sec {
    struct klog_server *srv;
    bool sasl, required, allow_if_none;
    unsigned mechs;                  /* 1 << KSEC_* */
    char users_path[4200], acl_path[4200];
    char supers[KC_STR_MAX];
    uint32_t preauth_max;
    int64_t fail_delay_ms;
    pthread_rwlock_t lock;           /* users, acls */
    ksec_users users;
    kacl_list acls;
    pthread_mutex_t fmu;             /* fails */
    struct fail_ent fails[FAIL_SLOTS];
};

static int64_t now_ns(void)
{
    return (int64_t)klog__now_ns();
}

/* ---- set-up ------------------------------------------------------------------------ */

static int parse_mechs(const char *list, unsigned *out, char *errbuf, size_t errsize)
{
    *out = 0;
    char buf[KC_STR_MAX];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        int m = ksec_mech_of(tok);
        if (!m)
            return klog__errf(errbuf, errsize, KLOG_ECONF,
                              "sasl.enabled.mechanisms: \"%s\" is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", tok);
        *out |= 1u << m;
    }
    return 0;
}

int ksrv_sec_new(struct klog_server *s, const klog_conf *conf, ksrv_sec **out, char *errbuf, size_t errsize)
{
    ksrv_sec *sec = calloc(1, sizeof *sec);
    if (!sec)
        return -ENOMEM;
    sec->srv = s;
    pthread_rwlock_init(&sec->lock, NULL);
    pthread_mutex_init(&sec->fmu, NULL);
    *out = sec;
    int rc = parse_mechs(klog__conf_str(conf, KC_SASL_ENABLED_MECHANISMS), &sec->mechs, errbuf, errsize);
    if (rc < 0)
        return rc;
    sec->sasl = sec->mechs != 0;
    sec->required = sec->sasl || klog__conf_int(conf, KC_SSL_CLIENT_AUTH) == KC_CLIENT_AUTH_REQUIRED;
    sec->allow_if_none = klog__conf_int(conf, KC_ALLOW_EVERYONE_IF_NO_ACL) != 0;
    sec->preauth_max = (uint32_t)klog__conf_int(conf, KC_SASL_SERVER_MAX_RECEIVE_SIZE);
    sec->fail_delay_ms = klog__conf_int(conf, KC_AUTH_FAILED_DELAY_MS);
    snprintf(sec->supers, sizeof sec->supers, "%s", klog__conf_str(conf, KC_SUPER_USERS));
    const char *dir = klog__dir(ksrv_klog(s));
    const char *u = klog__conf_str(conf, KC_SASL_USERS_FILE), *a = klog__conf_str(conf, KC_ACL_FILE);
    if (u[0])
        snprintf(sec->users_path, sizeof sec->users_path, "%s", u);
    else
        snprintf(sec->users_path, sizeof sec->users_path, "%s/users", dir);
    if (a[0])
        snprintf(sec->acl_path, sizeof sec->acl_path, "%s", a);
    else
        snprintf(sec->acl_path, sizeof sec->acl_path, "%s/acls", dir);
    return ksrv_sec_reload(sec, errbuf, errsize);
}

void ksrv_sec_free(ksrv_sec *sec)
{
    if (!sec)
        return;
    ksec_users_free(&sec->users);
    kacl_list_free(&sec->acls);
    pthread_rwlock_destroy(&sec->lock);
    pthread_mutex_destroy(&sec->fmu);
    free(sec);
}

int ksrv_sec_reload(ksrv_sec *sec, char *errbuf, size_t errsize)
{
    ksec_users users = { 0 };
    kacl_list acls = { 0 };
    int rc = 0;
    if (sec->sasl && (rc = ksec_users_load(sec->users_path, &users, errbuf, errsize)) < 0)
        return rc;
    if ((rc = kacl_load(sec->acl_path, &acls, errbuf, errsize)) < 0) {
        ksec_users_free(&users);
        return rc;
    }
    pthread_rwlock_wrlock(&sec->lock);
    ksec_users ou = sec->users;
    kacl_list oa = sec->acls;
    sec->users = users;
    sec->acls = acls;
    pthread_rwlock_unlock(&sec->lock);
    ksec_users_free(&ou);
    kacl_list_free(&oa);
    return 0;
}

bool ksrv_sec_required(const ksrv_sec *sec) { return sec->required; }

const char *ksrv_sec_no_users(ksrv_sec *sec)
{
    if (!sec->sasl)
        return NULL;
    pthread_rwlock_rdlock(&sec->lock);
    size_t n = sec->users.n;
    pthread_rwlock_unlock(&sec->lock);
    return n ? NULL : sec->users_path;
}
bool ksrv_sec_sasl(const ksrv_sec *sec) { return sec->sasl; }
uint32_t ksrv_sec_preauth_max(const ksrv_sec *sec) { return sec->preauth_max; }

/* ---- connections ------------------------------------------------------------------------ */

void ksrv_auth_init(ksrv_sec *sec, ksrv_auth *a, const char *peer_url)
{
    memset(a, 0, sizeof *a);
    snprintf(a->principal, sizeof a->principal, "User:ANONYMOUS");
    a->authed = !sec->required;
    /* "tcp://127.0.0.1:40312", "tls://[::1]:5" -> the address. */
    const char *p = strstr(peer_url, "://");
    if (!p || strncmp(peer_url, "unix", 4) == 0)
        return;
    p += 3;
    const char *b = p, *e;
    if (*b == '[') {
        b++;
        e = strchr(b, ']');
    } else {
        e = strrchr(b, ':');
    }
    size_t n = e ? (size_t)(e - b) : strlen(b);
    if (n >= sizeof a->host)
        n = sizeof a->host - 1;
    memcpy(a->host, b, n);
    a->host[n] = '\0';
}

void ksrv_auth_identity(ksrv_sec *sec, ksrv_auth *a, const char *ident)
{
    snprintf(a->principal, sizeof a->principal, "User:%s", ident);
    /* Kafka's SASL_SSL: the certificate is checked (ssl.client.auth), but
     * with SASL on the connection must still authenticate, and the SASL
     * user is the principal.  Without SASL the certificate is the login. */
    a->authed = !sec->sasl;
}

void ksrv_auth_clear(ksrv_auth *a)
{
    if (a->scram) {
        ksec_scram_clear(a->scram);
        free(a->scram);
        a->scram = NULL;
    }
}

void ksrv_sasl_raw_call(ksrv_call *c, const void *frame, size_t len)
{
    memset(&c->req, 0, sizeof c->req);
    c->req.hdr.api_key = KK_API_SASL_AUTHENTICATE;
    c->req.hdr.api_version = -1;
    c->req.body.sasl_authenticate.auth_bytes = (kk_bytes){ frame, (int32_t)len };
}

/* ---- failures ---------------------------------------------------------------------------- */

/* Count a failure from host; the delay before answering it, in ms. */
static int64_t fail_note(ksrv_sec *sec, const char *host, int *count)
{
    int64_t now = now_ns();
    pthread_mutex_lock(&sec->fmu);
    struct fail_ent *e = NULL, *oldest = &sec->fails[0];
    for (int i = 0; i < FAIL_SLOTS; i++) {
        struct fail_ent *f = &sec->fails[i];
        if (f->fails && !strcmp(f->host, host)) {
            e = f;
            break;
        }
        if (f->last < oldest->last)
            oldest = f;
    }
    if (!e) {
        e = oldest;
        snprintf(e->host, sizeof e->host, "%s", host);
        e->fails = 0;
    }
    if (now - e->last > FAIL_WINDOW_NS)
        e->fails = 0;
    e->fails++;
    e->last = now;
    int n = e->fails;
    pthread_mutex_unlock(&sec->fmu);
    *count = n;
    int64_t d = sec->fail_delay_ms;
    for (int i = 1; i < n && d < FAIL_DELAY_MAX_MS; i++)
        d *= 2;
    return d > FAIL_DELAY_MAX_MS ? FAIL_DELAY_MAX_MS : d;
}

static void fail_forget(ksrv_sec *sec, const char *host)
{
    pthread_mutex_lock(&sec->fmu);
    for (int i = 0; i < FAIL_SLOTS; i++)
        if (sec->fails[i].fails && !strcmp(sec->fails[i].host, host))
            sec->fails[i].fails = 0;
    pthread_mutex_unlock(&sec->fmu);
}

/* ---- SASL ---------------------------------------------------------------------------- */

int ksrv_sasl_handshake(ksrv_call *c)
{
    ksrv_sec *sec = ksrv_sec_of(c->srv);
    ksrv_auth *a = ksrv_conn_auth(c->conn);
    kk_str names[3];
    int n = 0;
    for (int m = KSEC_SCRAM_SHA_256; m <= KSEC_PLAIN; m++)
        if (sec->mechs & (1u << m))
            names[n++] = KK_STR(ksec_mech_name(m));
    kk_sasl_handshake_resp r = { .error_code = KK_ERR_NONE, .mechanisms = { names, n } };
    const kk_str *want = &c->req.body.sasl_handshake.mechanism;
    int mech = want->p ? ksec_mech_of(want->p) : 0;
    if (a->mech) {
        r.error_code = KK_ERR_ILLEGAL_SASL_STATE; /* no re-authentication (KIP-368) */
        c->close_after = true;
    } else if (!mech || !(sec->mechs & (1u << mech))) {
        r.error_code = KK_ERR_UNSUPPORTED_SASL_MECHANISM;
        c->close_after = true;
        ksrv_log(c->srv, "%s: SASL mechanism \"%s\" is not enabled (sasl.enabled.mechanisms): closing",
                 ksrv_conn_peer(c->conn), want->p ? want->p : "");
    } else {
        a->mech = mech;
        a->raw = c->req.hdr.api_version == 0;
    }
    return ksrv_respond(c, &r);
}

/* The answer: raw bytes (SaslHandshake v0) or a SaslAuthenticate response. */
static int sasl_answer(ksrv_call *c, int16_t err, const char *msg, const void *bytes, size_t n)
{
    if (c->req.hdr.api_version < 0) {
        if (err) {
            c->close_after = true; /* Kafka closes without a word */
            return KSRV_NORESPONSE;
        }
        kk_wbuf *o = ksrv_out(c);
        kk_wbuf_reset(o);
        if (n)
            kk_w_raw(o, bytes, n);
        return o->err ? o->err : KSRV_DONE;
    }
    kk_sasl_authenticate_resp r = { .error_code = err, .error_message = msg ? KK_STR(msg) : KK_STR_NULL,
                                    .auth_bytes = { bytes ? bytes : (const uint8_t *)"", (int32_t)n } };
    return ksrv_respond(c, &r);
}

static void authed(ksrv_call *c, ksrv_auth *a, const char *user)
{
    snprintf(a->principal, sizeof a->principal, "User:%s", user);
    a->authed = true;
    a->raw = false;
    a->sasl_done = true;
    ksrv_auth_clear(a);
    ksrv_conn_set_max_frame(c->conn, ksrv_config(c->srv)->max_frame);
    fail_forget(ksrv_sec_of(c->srv), a->host);
    ksrv_metric_auth(c->srv, true);
}

/* A failed attempt: park until its delay is over, then answer and close. */
static int failed(ksrv_call *c, ksrv_auth *a, const char *user, const char *why)
{
    ksrv_sec *sec = ksrv_sec_of(c->srv);
    int count;
    int64_t delay = fail_note(sec, a->host, &count);
    ksrv_metric_auth(c->srv, false);
    if (count <= 5 || (count & (count - 1)) == 0)
        ksrv_log(c->srv, "%s: authentication failed for user \"%s\" with %s: %s (failure %d from this address "
                         "in the last minute; answered in %" PRId64 " ms)",
                 ksrv_conn_peer(c->conn), user, ksec_mech_name(a->mech), why, count, delay);
    ksrv_auth_clear(a);
    a->fail_at = now_ns() + delay * 1000000;
    c->deadline = a->fail_at;
    return KSRV_PARK;
}

static int sasl_plain(ksrv_call *c, ksrv_auth *a, const uint8_t *p, size_t n)
{
    ksrv_sec *sec = ksrv_sec_of(c->srv);
    /* [authzid] NUL authcid NUL passwd (RFC 4616) */
    const uint8_t *z1 = n ? memchr(p, 0, n) : NULL;
    const uint8_t *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(p + n - z1 - 1)) : NULL;
    char user[KSEC_NAME_MAX + 1] = "";
    if (!z2 || (size_t)(z2 - z1 - 1) > KSEC_NAME_MAX)
        return failed(c, a, "?", "malformed PLAIN message");
    memcpy(user, z1 + 1, (size_t)(z2 - z1 - 1));
    user[z2 - z1 - 1] = '\0';
    size_t zn = (size_t)(z1 - p);
    if (zn && (zn != strlen(user) || memcmp(p, user, zn)))
        return failed(c, a, user, "authorization id differs from the user");
    pthread_rwlock_rdlock(&sec->lock);
    bool ok = ksec_name_ok(user) && ksec_plain_check(&sec->users, user, (const char *)z2 + 1,
                                                     (size_t)(p + n - z2 - 1));
    pthread_rwlock_unlock(&sec->lock);
    if (!ok)
        return failed(c, a, user, "wrong password or no such user");
    authed(c, a, user);
    return sasl_answer(c, KK_ERR_NONE, NULL, NULL, 0);
}

static int sasl_scram(ksrv_call *c, ksrv_auth *a, const uint8_t *p, size_t n)
{
    ksrv_sec *sec = ksrv_sec_of(c->srv);
    char out[512];
    if (!a->scram) {
        if (!(a->scram = calloc(1, sizeof *a->scram)))
            return -ENOMEM;
        pthread_rwlock_rdlock(&sec->lock);
        int rc = ksec_scram_first(a->scram, &sec->users, a->mech, (const char *)p, n, out, sizeof out);
        pthread_rwlock_unlock(&sec->lock);
        if (rc < 0)
            return failed(c, a, a->scram->user[0] ? a->scram->user : "?", "malformed client-first-message");
        return sasl_answer(c, KK_ERR_NONE, NULL, out, strlen(out));
    }
    char user[KSEC_NAME_MAX + 1];
    snprintf(user, sizeof user, "%s", a->scram->user);
    int rc = ksec_scram_final(a->scram, (const char *)p, n, out, sizeof out);
    if (rc == -EACCES)
        return failed(c, a, user, "wrong password or no such user");
    if (rc < 0)
        return failed(c, a, user, "malformed client-final-message");
    authed(c, a, user);
    return sasl_answer(c, KK_ERR_NONE, NULL, out, strlen(out));
}

int ksrv_sasl_authenticate(ksrv_call *c)
{
    ksrv_auth *a = ksrv_conn_auth(c->conn);
    if (a->fail_at) {
        if (now_ns() < a->fail_at) {
            c->deadline = a->fail_at;
            return KSRV_PARK; /* woken for another call's sake */
        }
        char msg[160];
        snprintf(msg, sizeof msg, "Authentication failed: invalid credentials with SASL mechanism %s",
                 ksec_mech_name(a->mech));
        c->close_after = true;
        return sasl_answer(c, KK_ERR_SASL_AUTHENTICATION_FAILED, msg, NULL, 0);
    }
    if (!a->mech || a->sasl_done) {
        c->close_after = true;
        return sasl_answer(c, KK_ERR_ILLEGAL_SASL_STATE,
                           a->sasl_done ? "already authenticated (no re-authentication)"
                                        : "SaslAuthenticate before SaslHandshake",
                           NULL, 0);
    }
    const kk_bytes *b = &c->req.body.sasl_authenticate.auth_bytes;
    const uint8_t *p = b->p ? b->p : (const uint8_t *)"";
    size_t n = b->len > 0 ? (size_t)b->len : 0;
    if (a->mech == KSEC_PLAIN)
        return sasl_plain(c, a, p, n);
    return sasl_scram(c, a, p, n);
}

/* ---- authorisation --------------------------------------------------------------------- */

bool ksrv_allowed(ksrv_call *c, int op, int res_type, const char *name)
{
    ksrv_sec *sec = ksrv_sec_of(c->srv);
    if (!sec->required)
        return true;
    ksrv_auth *a = ksrv_conn_auth(c->conn);
    pthread_rwlock_rdlock(&sec->lock);
    bool ok = kacl_authorize(&sec->acls, sec->supers, sec->allow_if_none, a->principal, a->host, op, res_type,
                             name);
    pthread_rwlock_unlock(&sec->lock);
    return ok;
}

bool ksrv_allowed_idempotent(ksrv_call *c)
{
    ksrv_sec *sec = ksrv_sec_of(c->srv);
    if (!sec->required || ksrv_allowed(c, KACL_OP_IDEMPOTENT_WRITE, KACL_RES_CLUSTER, KACL_CLUSTER_NAME))
        return true;
    ksrv_auth *a = ksrv_conn_auth(c->conn);
    pthread_rwlock_rdlock(&sec->lock);
    bool ok = kacl_allows_any(&sec->acls, a->principal, a->host, KACL_OP_WRITE, KACL_RES_TOPIC);
    pthread_rwlock_unlock(&sec->lock);
    return ok;
}

/* ---- the ACL APIs ----------------------------------------------------------------------- */

static int16_t filter_of(kacl_filter *f, int8_t rt, const kk_str *name, int8_t pt, const kk_str *principal,
                         const kk_str *host, int8_t op, int8_t perm)
{
    if (rt < KACL_RES_ANY || rt > KACL_RES_TXN || pt < KACL_PAT_ANY || pt > KACL_PAT_PREFIXED ||
        op < KACL_OP_ANY || op > KACL_OP_IDEMPOTENT_WRITE || perm < KACL_PERM_ANY || perm > KACL_ALLOW)
        return KK_ERR_INVALID_REQUEST;
    *f = (kacl_filter){ .res_type = rt, .pattern = pt, .op = op, .perm = perm, .name = name->p,
                        .principal = principal->p, .host = host->p };
    return KK_ERR_NONE;
}

static char *dup_str(ksrv_call *c, const char *s)
{
    size_t n = strlen(s);
    char *d = ksrv_alloc(c, n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

int ksrv_describe_acls(ksrv_call *c)
{
    ksrv_sec *sec = ksrv_sec_of(c->srv);
    const kk_describe_acls_req *q = &c->req.body.describe_acls;
    kk_describe_acls_resp r = { .error_code = KK_ERR_NONE, .error_message = KK_STR_NULL };
    kacl_filter f;
    if (!ksrv_allowed(c, KACL_OP_DESCRIBE, KACL_RES_CLUSTER, KACL_CLUSTER_NAME)) {
        r.error_code = KK_ERR_CLUSTER_AUTHORIZATION_FAILED;
        return ksrv_respond(c, &r);
    }
    if ((r.error_code = filter_of(&f, q->resource_type_filter, &q->resource_name_filter, q->pattern_type_filter,
                                  &q->principal_filter, &q->host_filter, q->operation, q->permission_type))) {
        r.error_message = KK_STR("a filter code out of range");
        return ksrv_respond(c, &r);
    }
    pthread_rwlock_rdlock(&sec->lock);
    size_t n = sec->acls.n;
    kk_describe_acls_resp_resource *res = ksrv_alloc(c, (n + 1) * sizeof *res);
    kk_acl_description *ds = ksrv_alloc(c, (n + 1) * sizeof *ds);
    int32_t nres = 0, nd = 0;
    int rc = res && ds ? 0 : -ENOMEM;
    /* Group the ACLs by resource pattern; each group's descriptions are
     * contiguous in ds (a group is filled before the next one starts). */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const kacl *a = &sec->acls.v[i];
        if (!kacl_matches(a, &f))
            continue;
        bool seen = false;
        for (int32_t k = 0; k < nres; k++)
            if (res[k].resource_type == a->res_type && res[k].pattern_type == a->pattern &&
                !strcmp(res[k].resource_name.p, a->name))
                seen = true;
        if (seen)
            continue;
        char *rn = dup_str(c, a->name);
        if (!rn) {
            rc = -ENOMEM;
            break;
        }
        kk_describe_acls_resp_resource *rr = &res[nres++];
        *rr = (kk_describe_acls_resp_resource){ a->res_type, KK_STR(rn), a->pattern, { ds + nd, 0 } };
        for (size_t j = i; j < n; j++) {
            const kacl *b = &sec->acls.v[j];
            if (b->res_type != a->res_type || b->pattern != a->pattern || strcmp(b->name, a->name) ||
                !kacl_matches(b, &f))
                continue;
            char *pp = dup_str(c, b->principal), *hh = dup_str(c, b->host);
            if (!pp || !hh) {
                rc = -ENOMEM;
                break;
            }
            ds[nd++] = (kk_acl_description){ KK_STR(pp), KK_STR(hh), b->op, b->perm };
            rr->acls.n++;
        }
    }
    pthread_rwlock_unlock(&sec->lock);
    if (rc < 0)
        return rc;
    r.resources.v = res;
    r.resources.n = nres;
    return ksrv_respond(c, &r);
}

/* Read-change-write of the ACL file under its lock; the result becomes
 * the server's list.  change returns < 0 to abandon. */
typedef int (*acl_change)(ksrv_call *c, kacl_list *l, void *arg);

static int acl_edit(ksrv_call *c, acl_change fn, void *arg, char *err, size_t errsize)
{
    ksrv_sec *sec = ksrv_sec_of(c->srv);
    int lk = ksec_file_lock(sec->acl_path);
    if (lk < 0)
        return klog__errf(err, errsize, lk, "%s.lock: %s", sec->acl_path, klog_strerror(lk));
    kacl_list l;
    int rc = kacl_load(sec->acl_path, &l, err, errsize);
    if (rc == 0)
        rc = fn(c, &l, arg);
    if (rc > 0)
        rc = kacl_save(sec->acl_path, &l, err, errsize);
    if (rc >= 0) {
        pthread_rwlock_wrlock(&sec->lock);
        kacl_list old = sec->acls;
        sec->acls = l;
        pthread_rwlock_unlock(&sec->lock);
        kacl_list_free(&old);
    } else {
        kacl_list_free(&l);
    }
    close(lk);
    return rc;
}

struct create_arg {
    kk_create_acls_resp_result *res;
};

static int create_fn(ksrv_call *c, kacl_list *l, void *arg)
{
    struct create_arg *ca = arg;
    const kk_create_acls_req *q = &c->req.body.create_acls;
    int changed = 0;
    for (int32_t i = 0; i < q->creations.n; i++) {
        const kk_create_acls_req_creation *k = &q->creations.v[i];
        kk_create_acls_resp_result *out = &ca->res[i];
        *out = (kk_create_acls_resp_result){ KK_ERR_NONE, KK_STR_NULL };
        kacl a = { .res_type = k->resource_type, .pattern = k->resource_pattern_type, .op = k->operation,
                   .perm = k->permission_type };
        const char *why = NULL;
        if (!k->resource_name.p || !k->principal.p || !k->host.p || k->resource_name.len >= KACL_FIELD_MAX ||
            k->principal.len >= KACL_FIELD_MAX || k->host.len >= (int32_t)sizeof a.host) {
            why = "a name, principal or host too long";
        } else {
            snprintf(a.name, sizeof a.name, "%s", k->resource_name.p);
            snprintf(a.principal, sizeof a.principal, "%s", k->principal.p);
            snprintf(a.host, sizeof a.host, "%s", k->host.p);
            why = kacl_invalid(&a);
        }
        if (why) {
            out->error_code = KK_ERR_INVALID_REQUEST;
            out->error_message = KK_STR(why);
            continue;
        }
        int rc = kacl_list_add(l, &a);
        if (rc < 0)
            return rc;
        changed |= rc;
    }
    return changed;
}

int ksrv_create_acls(ksrv_call *c)
{
    const kk_create_acls_req *q = &c->req.body.create_acls;
    kk_create_acls_resp r = { 0 };
    kk_create_acls_resp_result *res = ksrv_alloc(c, ((size_t)q->creations.n + 1) * sizeof *res);
    if (!res)
        return -ENOMEM;
    r.results.v = res;
    r.results.n = q->creations.n;
    if (!ksrv_allowed(c, KACL_OP_ALTER, KACL_RES_CLUSTER, KACL_CLUSTER_NAME)) {
        for (int32_t i = 0; i < q->creations.n; i++)
            res[i] = (kk_create_acls_resp_result){ KK_ERR_CLUSTER_AUTHORIZATION_FAILED, KK_STR_NULL };
        return ksrv_respond(c, &r);
    }
    char err[256] = "";
    struct create_arg ca = { res };
    int rc = acl_edit(c, create_fn, &ca, err, sizeof err);
    if (rc < 0) {
        ksrv_log(c->srv, "CreateAcls: %s", err[0] ? err : klog_strerror(rc));
        char *m = dup_str(c, err[0] ? err : klog_strerror(rc));
        for (int32_t i = 0; i < q->creations.n; i++)
            res[i] = (kk_create_acls_resp_result){ KK_ERR_UNKNOWN_SERVER_ERROR, m ? KK_STR(m) : KK_STR_NULL };
    }
    return ksrv_respond(c, &r);
}

struct delete_arg {
    kk_delete_acls_resp_result *res;
    kk_delete_acls_resp_match *pool;
    kacl_list removed;
};

static int delete_fn(ksrv_call *c, kacl_list *l, void *arg)
{
    struct delete_arg *da = arg;
    const kk_delete_acls_req *q = &c->req.body.delete_acls;
    int changed = 0;
    for (int32_t i = 0; i < q->filters.n; i++) {
        const kk_delete_acls_req_filter *k = &q->filters.v[i];
        kk_delete_acls_resp_result *out = &da->res[i];
        *out = (kk_delete_acls_resp_result){ KK_ERR_NONE, KK_STR_NULL, { NULL, 0 } };
        kacl_filter f;
        if ((out->error_code = filter_of(&f, k->resource_type_filter, &k->resource_name_filter,
                                         k->pattern_type_filter, &k->principal_filter, &k->host_filter,
                                         k->operation, k->permission_type))) {
            out->error_message = KK_STR("a filter code out of range");
            continue;
        }
        size_t before = da->removed.n;
        if (kacl_list_remove(l, &f, &da->removed))
            changed = 1;
        out->matching_acls.n = (int32_t)(da->removed.n - before);
        out->matching_acls.v = (void *)(uintptr_t)(before + 1); /* an index until the pool exists */
    }
    return changed;
}

int ksrv_delete_acls(ksrv_call *c)
{
    const kk_delete_acls_req *q = &c->req.body.delete_acls;
    kk_delete_acls_resp r = { 0 };
    kk_delete_acls_resp_result *res = ksrv_alloc(c, ((size_t)q->filters.n + 1) * sizeof *res);
    if (!res)
        return -ENOMEM;
    r.filter_results.v = res;
    r.filter_results.n = q->filters.n;
    if (!ksrv_allowed(c, KACL_OP_ALTER, KACL_RES_CLUSTER, KACL_CLUSTER_NAME)) {
        for (int32_t i = 0; i < q->filters.n; i++)
            res[i] = (kk_delete_acls_resp_result){ KK_ERR_CLUSTER_AUTHORIZATION_FAILED, KK_STR_NULL, { NULL, 0 } };
        return ksrv_respond(c, &r);
    }
    char err[256] = "";
    struct delete_arg da = { .res = res };
    int rc = acl_edit(c, delete_fn, &da, err, sizeof err);
    if (rc < 0) {
        kacl_list_free(&da.removed);
        ksrv_log(c->srv, "DeleteAcls: %s", err[0] ? err : klog_strerror(rc));
        char *m = dup_str(c, err[0] ? err : klog_strerror(rc));
        for (int32_t i = 0; i < q->filters.n; i++)
            res[i] = (kk_delete_acls_resp_result){ KK_ERR_UNKNOWN_SERVER_ERROR, m ? KK_STR(m) : KK_STR_NULL,
                                                   { NULL, 0 } };
        return ksrv_respond(c, &r);
    }
    /* The matches, a filter's after the previous filter's in da.removed.
     * (An ACL two filters match is reported by the first.) */
    kk_delete_acls_resp_match *pool = ksrv_alloc(c, (da.removed.n + 1) * sizeof *pool);
    for (size_t i = 0; pool && i < da.removed.n; i++) {
        const kacl *a = &da.removed.v[i];
        char *nm = dup_str(c, a->name), *pp = dup_str(c, a->principal), *hh = dup_str(c, a->host);
        if (!nm || !pp || !hh) {
            pool = NULL;
            break;
        }
        pool[i] = (kk_delete_acls_resp_match){ KK_ERR_NONE, KK_STR_NULL, a->res_type, KK_STR(nm), a->pattern,
                                               KK_STR(pp), KK_STR(hh), a->op, a->perm };
    }
    kacl_list_free(&da.removed);
    if (!pool)
        return -ENOMEM;
    for (int32_t i = 0; i < q->filters.n; i++) {
        uintptr_t at = (uintptr_t)res[i].matching_acls.v;
        res[i].matching_acls.v = at ? pool + (at - 1) : NULL;
    }
    return ksrv_respond(c, &r);
}
