/*
 * lib/server/scram.c - the users file, SCRAM-SHA-256/512 and PLAIN
 * (scram.h).  libc and libcrypto only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "server/scram.h"
#include "server/secfile.h"

#define LINE_MAX_ 1024


int ksec_mech_of(const char *name)
{
    if (!strcmp(name, "SCRAM-SHA-256"))
        return KSEC_SCRAM_SHA_256;
    if (!strcmp(name, "SCRAM-SHA-512"))
        return KSEC_SCRAM_SHA_512;
    if (!strcmp(name, "PLAIN"))
        return KSEC_PLAIN;
    return 0;
}

const char *ksec_mech_name(int mech)
{
    switch (mech) {
    case KSEC_SCRAM_SHA_256: return "SCRAM-SHA-256";
    case KSEC_SCRAM_SHA_512: return "SCRAM-SHA-512";
    case KSEC_PLAIN: return "PLAIN";
    default: return "?";
    }
}

bool ksec_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > KSEC_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '@' || c == '+' || c == '-'))
            return false;
    }
    return true;
}

static const EVP_MD *md_of(int mech)
{
    return mech == KSEC_SCRAM_SHA_512 ? EVP_sha512() : EVP_sha256();
}

static size_t hlen(int mech)
{
    return mech == KSEC_SCRAM_SHA_512 ? 64 : 32;
}

/* ---- base64 ------------------------------------------------------------------- */

static int b64_enc(const unsigned char *p, size_t n, char *out, size_t outsz)
{
    if (outsz < 4 * ((n + 2) / 3) + 1)
        return -ENOSPC;
    return EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

/* Decode exactly; returns the length or -EINVAL. */
static int b64_dec(const char *s, size_t n, unsigned char *out, size_t outsz)
{
    if (n % 4 || n / 4 * 3 > outsz + 2 || n > 4096)
        return -EINVAL;
    unsigned char tmp[3100];
    int k = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (k < 0)
        return -EINVAL;
    if (n >= 1 && s[n - 1] == '=')
        k--;
    if (n >= 2 && s[n - 2] == '=')
        k--;
    if (k < 0 || (size_t)k > outsz)
        return -EINVAL;
    memcpy(out, tmp, (size_t)k);
    return k;
}

/* ---- credentials ------------------------------------------------------------------ */

static int derive(int mech, const char *password, size_t plen, const unsigned char *salt, size_t salt_len,
                  int iterations, unsigned char *stored, unsigned char *server)
{
    const EVP_MD *md = md_of(mech);
    size_t h = hlen(mech);
    unsigned char salted[KSEC_HASH_MAX], ckey[KSEC_HASH_MAX];
    unsigned int len;
    if (!PKCS5_PBKDF2_HMAC(password, (int)plen, salt, (int)salt_len, iterations, md, (int)h, salted))
        return -ENOMEM;
    if (!HMAC(md, salted, (int)h, (const unsigned char *)"Client Key", 10, ckey, &len) ||
        !EVP_Digest(ckey, h, stored, NULL, md, NULL) ||
        !HMAC(md, salted, (int)h, (const unsigned char *)"Server Key", 10, server, &len)) {
        OPENSSL_cleanse(salted, sizeof salted);
        return -ENOMEM;
    }
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(ckey, sizeof ckey);
    return 0;
}

static int parse_line(char *line, ksec_cred *c)
{
    char *f[6];
    int n = 0;
    for (char *tok = strtok(line, " \t"); tok && n < 7; tok = strtok(NULL, " \t"))
        f[n < 6 ? n : 5] = tok, n++;
    if (n != 6 || !ksec_name_ok(f[0]) || strlen(f[0]) > KSEC_NAME_MAX)
        return -EINVAL;
    snprintf(c->name, sizeof c->name, "%s", f[0]);
    c->mech = ksec_mech_of(f[1]);
    if (c->mech != KSEC_SCRAM_SHA_256 && c->mech != KSEC_SCRAM_SHA_512)
        return -EINVAL;
    char *end;
    long it = strtol(f[2], &end, 10);
    if (*end || it < KSEC_ITERATIONS || it > KSEC_ITERATIONS_MAX)
        return -EINVAL;
    c->iterations = (int)it;
    int k = b64_dec(f[3], strlen(f[3]), c->salt, sizeof c->salt);
    if (k <= 0)
        return -EINVAL;
    c->salt_len = (size_t)k;
    if (b64_dec(f[4], strlen(f[4]), c->stored_key, sizeof c->stored_key) != (int)hlen(c->mech) ||
        b64_dec(f[5], strlen(f[5]), c->server_key, sizeof c->server_key) != (int)hlen(c->mech))
        return -EINVAL;
    return 0;
}

int ksec_users_load(const char *path, ksec_users *out, char *errbuf, size_t errsize)
{
    out->v = NULL;
    out->n = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        int rc = -errno;
        return ksec_errf(errbuf, errsize, rc, "%s: %s", path, strerror(-rc));
    }
    char line[LINE_MAX_];
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line + strspn(line, " \t");
        if (!*p || *p == '#')
            continue;
        if (out->n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            ksec_cred *v = realloc(out->v, nc * sizeof *v);
            if (!v) {
                rc = -ENOMEM;
                break;
            }
            out->v = v;
            cap = nc;
        }
        if (parse_line(p, &out->v[out->n]) < 0) {
            rc = ksec_errf(errbuf, errsize, -EINVAL, "%s:%d: not NAME MECHANISM ITERATIONS SALT STORED_KEY SERVER_KEY",
                      path, lineno);
            break;
        }
        out->n++;
    }
    fclose(f);
    if (rc < 0)
        ksec_users_free(out);
    return rc;
}

void ksec_users_free(ksec_users *u)
{
    if (!u)
        return;
    if (u->v)
        OPENSSL_cleanse(u->v, u->n * sizeof *u->v);
    free(u->v);
    u->v = NULL;
    u->n = 0;
}

const ksec_cred *ksec_users_find(const ksec_users *u, const char *name, int mech)
{
    for (size_t i = 0; u && i < u->n; i++)
        if (u->v[i].mech == mech && !strcmp(u->v[i].name, name))
            return &u->v[i];
    return NULL;
}

static void cred_line(FILE *f, const ksec_cred *c)
{
    char salt[128], sk[128], svk[128];
    b64_enc(c->salt, c->salt_len, salt, sizeof salt);
    b64_enc(c->stored_key, hlen(c->mech), sk, sizeof sk);
    b64_enc(c->server_key, hlen(c->mech), svk, sizeof svk);
    fprintf(f, "%s %s %d %s %s %s\n", c->name, ksec_mech_name(c->mech), c->iterations, salt, sk, svk);
}

/* Rewrite path with u's entries minus `drop`'s, plus add[0..nadd). */
static int users_write(const char *path, const ksec_users *u, const char *drop, const ksec_cred *add, int nadd,
                       char *errbuf, size_t errsize)
{
    char tmp[4200];
    FILE *f;
    int rc = ksec_file_create(path, tmp, sizeof tmp, &f, errbuf, errsize);
    if (rc < 0)
        return rc;
    fprintf(f, "# klog users (klog users add): NAME MECHANISM ITERATIONS SALT STORED_KEY SERVER_KEY\n");
    for (size_t i = 0; i < u->n; i++)
        if (!drop || strcmp(u->v[i].name, drop))
            cred_line(f, &u->v[i]);
    for (int i = 0; i < nadd; i++)
        cred_line(f, &add[i]);
    return ksec_file_commit(f, tmp, path, errbuf, errsize);
}


int ksec_users_set(const char *path, const char *name, const char *password, int iterations, char *errbuf,
                   size_t errsize)
{
    if (!ksec_name_ok(name))
        return ksec_errf(errbuf, errsize, -EINVAL, "user name '%s': 1 to %d of A-Z a-z 0-9 . _ @ + -", name,
                    KSEC_NAME_MAX);
    if (iterations == 0)
        iterations = KSEC_ITERATIONS;
    if (iterations < KSEC_ITERATIONS || iterations > KSEC_ITERATIONS_MAX)
        return ksec_errf(errbuf, errsize, -EINVAL, "iterations: %d to %d", KSEC_ITERATIONS, KSEC_ITERATIONS_MAX);
    ksec_cred add[2];
    memset(add, 0, sizeof add);
    for (int i = 0; i < 2; i++) {
        ksec_cred *c = &add[i];
        snprintf(c->name, sizeof c->name, "%s", name);
        c->mech = i == 0 ? KSEC_SCRAM_SHA_256 : KSEC_SCRAM_SHA_512;
        c->iterations = iterations;
        c->salt_len = KSEC_SALT_LEN;
        if (RAND_bytes(c->salt, (int)c->salt_len) != 1 ||
            derive(c->mech, password, strlen(password), c->salt, c->salt_len, iterations, c->stored_key,
                   c->server_key) < 0)
            return ksec_errf(errbuf, errsize, -ENOMEM, "deriving the SCRAM credentials failed");
    }
    int lk = ksec_file_lock(path); /* edits never interleave */
    if (lk < 0)
        return ksec_errf(errbuf, errsize, lk, "%s.lock: %s", path, strerror(-lk));
    ksec_users u;
    int rc = ksec_users_load(path, &u, errbuf, errsize);
    if (rc == 0)
        rc = users_write(path, &u, name, add, 2, errbuf, errsize);
    ksec_users_free(&u);
    OPENSSL_cleanse(add, sizeof add);
    close(lk);
    return rc;
}

int ksec_users_delete(const char *path, const char *name, char *errbuf, size_t errsize)
{
    int lk = ksec_file_lock(path); /* edits never interleave */
    if (lk < 0)
        return ksec_errf(errbuf, errsize, lk, "%s.lock: %s", path, strerror(-lk));
    ksec_users u;
    int rc = ksec_users_load(path, &u, errbuf, errsize);
    if (rc == 0 && !ksec_users_find(&u, name, KSEC_SCRAM_SHA_256) && !ksec_users_find(&u, name, KSEC_SCRAM_SHA_512))
        rc = ksec_errf(errbuf, errsize, -ENOENT, "no user '%s' in %s", name, path);
    if (rc == 0)
        rc = users_write(path, &u, name, NULL, 0, errbuf, errsize);
    ksec_users_free(&u);
    close(lk);
    return rc;
}

bool ksec_plain_check(const ksec_users *u, const char *name, const char *password, size_t plen)
{
    const ksec_cred *c = ksec_users_find(u, name, KSEC_SCRAM_SHA_256);
    if (!c)
        c = ksec_users_find(u, name, KSEC_SCRAM_SHA_512);
    unsigned char stored[KSEC_HASH_MAX], server[KSEC_HASH_MAX];
    if (!c) {
        /* The same work for a name that does not exist. */
        static const unsigned char salt[KSEC_SALT_LEN];
        derive(KSEC_SCRAM_SHA_256, password, plen, salt, sizeof salt, KSEC_ITERATIONS, stored, server);
        return false;
    }
    if (derive(c->mech, password, plen, c->salt, c->salt_len, c->iterations, stored, server) < 0)
        return false;
    return CRYPTO_memcmp(stored, c->stored_key, hlen(c->mech)) == 0;
}

/* ---- SCRAM ------------------------------------------------------------------------- */

void ksec_scram_clear(ksec_scram *s)
{
    free(s->auth_msg);
    OPENSSL_cleanse(s, sizeof *s);
}

/* saslname: "=2C" is ',' and "=3D" is '='; the rest as is. */
static int saslname(const char *p, size_t n, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '=') {
            if (i + 2 >= n)
                return -EINVAL;
            if (p[i + 1] == '2' && p[i + 2] == 'C')
                c = ',';
            else if (p[i + 1] == '3' && p[i + 2] == 'D')
                c = '=';
            else
                return -EINVAL;
            i += 2;
        }
        if (o + 1 >= outsz)
            return -EINVAL;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int ksec_scram_first(ksec_scram *s, const ksec_users *users, int mech, const char *msg, size_t n, char *out,
                     size_t outsz)
{
    memset(s, 0, sizeof *s);
    s->mech = mech;
    if (n == 0 || n > 1024 || memchr(msg, '\0', n))
        return -EINVAL;
    /* gs2-header: "n,," or "y,," (no channel binding), an optional "a=" authzid. */
    if (n < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
        return -EINVAL;
    const char *p = msg + 2, *end = msg + n;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    if (!comma)
        return -EINVAL;
    const char *bare = comma + 1;
    /* client-first-message-bare: n=user,r=nonce[,extensions] */
    if (end - bare < 5 || bare[0] != 'n' || bare[1] != '=')
        return -EINVAL;
    const char *u = bare + 2;
    const char *uend = memchr(u, ',', (size_t)(end - u));
    if (!uend || saslname(u, (size_t)(uend - u), s->user, sizeof s->user) < 0 || !s->user[0])
        return -EINVAL;
    const char *r = uend + 1;
    if (end - r < 3 || r[0] != 'r' || r[1] != '=')
        return -EINVAL;
    const char *rn = r + 2;
    const char *rend = memchr(rn, ',', (size_t)(end - rn));
    if (rend)
        return -EINVAL; /* extensions (Kafka's tokenauth): none taken */
    size_t cn = (size_t)(end - rn);
    if (cn == 0 || cn > 64)
        return -EINVAL;
    for (size_t i = 0; i < cn; i++)
        if (rn[i] < 0x21 || rn[i] > 0x7e || rn[i] == ',')
            return -EINVAL;
    /* The server's half of the nonce. */
    unsigned char rnd[18];
    char snonce[32];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return -ENOMEM;
    b64_enc(rnd, sizeof rnd, snonce, sizeof snonce);
    snprintf(s->nonce, sizeof s->nonce, "%.*s%s", (int)cn, rn, snonce);
    const ksec_cred *c = ksec_name_ok(s->user) ? ksec_users_find(users, s->user, mech) : NULL;
    if (c) {
        s->cred = *c;
        s->known = true;
    } else {
        /* A made-up salt, the same for a name each time it is asked. */
        unsigned int len;
        s->cred.mech = mech;
        s->cred.iterations = KSEC_ITERATIONS;
        s->cred.salt_len = KSEC_SALT_LEN;
        unsigned char h[64];
        HMAC(EVP_sha256(), "klog-unknown-user", 17, (const unsigned char *)s->user, strlen(s->user), h, &len);
        memcpy(s->cred.salt, h, KSEC_SALT_LEN);
    }
    char salt[128];
    b64_enc(s->cred.salt, s->cred.salt_len, salt, sizeof salt);
    int k = snprintf(out, outsz, "r=%s,s=%s,i=%d", s->nonce, salt, s->cred.iterations);
    if (k < 0 || (size_t)k >= outsz)
        return -ENOSPC;
    size_t bn = (size_t)(end - bare);
    if (!(s->auth_msg = malloc(bn + 1 + (size_t)k + 1)))
        return -ENOMEM;
    memcpy(s->auth_msg, bare, bn);
    s->auth_msg[bn] = ',';
    memcpy(s->auth_msg + bn + 1, out, (size_t)k + 1);
    s->step = 1;
    return 0;
}

int ksec_scram_final(ksec_scram *s, const char *msg, size_t n, char *out, size_t outsz)
{
    if (s->step != 1 || n == 0 || n > 1024 || memchr(msg, '\0', n))
        return -EINVAL;
    /* c=<b64 gs2 header>,r=<nonce>,p=<proof> */
    const char *end = msg + n;
    const char *pp = NULL;
    for (const char *q = msg; q + 3 <= end; q++)
        if (q[0] == ',' && q[1] == 'p' && q[2] == '=')
            pp = q;
    if (!pp || n < 2 || msg[0] != 'c' || msg[1] != '=')
        return -EINVAL;
    const char *r = memchr(msg, ',', (size_t)(end - msg));
    if (!r || r + 3 > end || r[1] != 'r' || r[2] != '=')
        return -EINVAL;
    const char *rn = r + 3;
    const char *rend = memchr(rn, ',', (size_t)(end - rn));
    /* The nonce must end with the server's (Kafka's ScramSaslServer checks
     * endsWith: librdkafka sends its own nonce in front of the server's
     * whole one, which already starts with it). */
    size_t nn = strlen(s->nonce);
    if (!rend || rend != pp || (size_t)(rend - rn) < nn || memcmp(rend - nn, s->nonce, nn))
        return -EINVAL;
    size_t h = hlen(s->mech);
    unsigned char proof[KSEC_HASH_MAX];
    const char *ps = pp + 3;
    if (b64_dec(ps, (size_t)(end - ps), proof, sizeof proof) != (int)h)
        return -EINVAL;
    /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
    size_t an = strlen(s->auth_msg), wn = (size_t)(pp - msg);
    char *am = malloc(an + 1 + wn);
    if (!am)
        return -ENOMEM;
    memcpy(am, s->auth_msg, an);
    am[an] = ',';
    memcpy(am + an + 1, msg, wn);
    const EVP_MD *md = md_of(s->mech);
    unsigned char sig[KSEC_HASH_MAX], ckey[KSEC_HASH_MAX], stored[KSEC_HASH_MAX], ssig[KSEC_HASH_MAX];
    unsigned int len;
    int rc = 0;
    if (!HMAC(md, s->cred.stored_key, (int)h, (unsigned char *)am, an + 1 + wn, sig, &len)) {
        rc = -ENOMEM;
    } else {
        for (size_t i = 0; i < h; i++)
            ckey[i] = proof[i] ^ sig[i];
        if (!EVP_Digest(ckey, h, stored, NULL, md, NULL))
            rc = -ENOMEM;
        else if (!s->known || CRYPTO_memcmp(stored, s->cred.stored_key, h) != 0)
            rc = -EACCES;
        else if (!HMAC(md, s->cred.server_key, (int)h, (unsigned char *)am, an + 1 + wn, ssig, &len))
            rc = -ENOMEM;
    }
    free(am);
    if (rc < 0)
        return rc;
    char v[128];
    b64_enc(ssig, h, v, sizeof v);
    int k = snprintf(out, outsz, "v=%s", v);
    if (k < 0 || (size_t)k >= outsz)
        return -ENOSPC;
    s->step = 2;
    return 0;
}
