/*
 * test/server/security.c - the self-contained security pieces of lib/server:
 * ACL decisions in Kafka's model (acl.c), the ACL and users files, and the
 * SCRAM exchange (scram.c) against RFC 7677's example and against
 * malformed messages.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "server/acl.h"
#include "server/scram.h"

static kacl mk(int perm, const char *principal, const char *host, int op, int res, int pat, const char *name)
{
    kacl a = { .perm = (int8_t)perm, .op = (int8_t)op, .res_type = (int8_t)res, .pattern = (int8_t)pat };
    snprintf(a.principal, sizeof a.principal, "%s", principal);
    snprintf(a.host, sizeof a.host, "%s", host);
    snprintf(a.name, sizeof a.name, "%s", name);
    cr_assert_null(kacl_invalid(&a), "%s", kacl_invalid(&a));
    return a;
}

#define CAN(l, p, op, res, name) kacl_authorize(l, "User:root", false, p, "10.0.0.1", op, res, name)

Test(acl, kafka_rules)
{
    kacl_list l = { 0 };
    kacl a[] = {
        mk(KACL_ALLOW, "User:alice", "*", KACL_OP_WRITE, KACL_RES_TOPIC, KACL_PAT_LITERAL, "orders"),
        mk(KACL_ALLOW, "User:alice", "*", KACL_OP_READ, KACL_RES_TOPIC, KACL_PAT_PREFIXED, "logs-"),
        mk(KACL_DENY, "User:alice", "*", KACL_OP_READ, KACL_RES_TOPIC, KACL_PAT_LITERAL, "logs-secret"),
        mk(KACL_ALLOW, "User:*", "*", KACL_OP_DESCRIBE, KACL_RES_TOPIC, KACL_PAT_LITERAL, "public"),
        mk(KACL_ALLOW, "User:bob", "10.0.0.2", KACL_OP_ALL, KACL_RES_TOPIC, KACL_PAT_LITERAL, "*"),
        mk(KACL_ALLOW, "User:carol", "*", KACL_OP_ALTER_CONFIGS, KACL_RES_CLUSTER, KACL_PAT_LITERAL, "kafka-cluster"),
    };
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
        cr_assert_eq(kacl_list_add(&l, &a[i]), 1);
    cr_assert_eq(kacl_list_add(&l, &a[0]), 0, "no duplicates");
    /* literal, and what it implies */
    cr_assert(CAN(&l, "User:alice", KACL_OP_WRITE, KACL_RES_TOPIC, "orders"));
    cr_assert(CAN(&l, "User:alice", KACL_OP_DESCRIBE, KACL_RES_TOPIC, "orders"));
    cr_assert_not(CAN(&l, "User:alice", KACL_OP_READ, KACL_RES_TOPIC, "orders"));
    cr_assert_not(CAN(&l, "User:alice", KACL_OP_WRITE, KACL_RES_TOPIC, "orders2"));
    /* prefixed, and a deny beating it */
    cr_assert(CAN(&l, "User:alice", KACL_OP_READ, KACL_RES_TOPIC, "logs-app"));
    cr_assert_not(CAN(&l, "User:alice", KACL_OP_READ, KACL_RES_TOPIC, "logs-secret"));
    cr_assert_not(CAN(&l, "User:alice", KACL_OP_READ, KACL_RES_TOPIC, "logs"));
    /* every user */
    cr_assert(CAN(&l, "User:zed", KACL_OP_DESCRIBE, KACL_RES_TOPIC, "public"));
    cr_assert_not(CAN(&l, "User:zed", KACL_OP_READ, KACL_RES_TOPIC, "public"));
    /* hosts */
    cr_assert_not(CAN(&l, "User:bob", KACL_OP_READ, KACL_RES_TOPIC, "orders"));
    cr_assert(kacl_authorize(&l, NULL, false, "User:bob", "10.0.0.2", KACL_OP_READ, KACL_RES_TOPIC, "orders"));
    /* resource types do not mix; AlterConfigs implies DescribeConfigs only */
    cr_assert_not(CAN(&l, "User:alice", KACL_OP_WRITE, KACL_RES_GROUP, "orders"));
    cr_assert(CAN(&l, "User:carol", KACL_OP_DESCRIBE_CONFIGS, KACL_RES_CLUSTER, "kafka-cluster"));
    cr_assert_not(CAN(&l, "User:carol", KACL_OP_DESCRIBE, KACL_RES_CLUSTER, "kafka-cluster"));
    /* super users, and the default */
    cr_assert(CAN(&l, "User:root", KACL_OP_DELETE, KACL_RES_TOPIC, "anything"));
    cr_assert(kacl_authorize(&l, "User:x; User:root ;User:y", false, "User:root", "h", KACL_OP_ALL,
                             KACL_RES_CLUSTER, "kafka-cluster"));
    cr_assert_not(kacl_authorize(&l, "User:rootless", false, "User:root", "h", KACL_OP_READ, KACL_RES_GROUP, "g"));
    cr_assert(kacl_authorize(&l, NULL, true, "User:zed", "h", KACL_OP_READ, KACL_RES_GROUP, "nobody-mentions-it"));
    cr_assert_not(kacl_authorize(&l, NULL, true, "User:zed", "h", KACL_OP_WRITE, KACL_RES_TOPIC, "orders"),
                  "allow.everyone.if.no.acl.found only where no ACL matches the resource");
    cr_assert(kacl_allows_any(&l, "User:alice", "h", KACL_OP_WRITE, KACL_RES_TOPIC));
    cr_assert_not(kacl_allows_any(&l, "User:zed", "h", KACL_OP_WRITE, KACL_RES_TOPIC));
    /* filters: MATCH finds what applies to a name */
    kacl_filter f = { .res_type = KACL_RES_TOPIC, .pattern = KACL_PAT_MATCH, .op = KACL_OP_ANY,
                      .perm = KACL_PERM_ANY, .name = "logs-secret" };
    int n = 0;
    for (size_t i = 0; i < l.n; i++)
        n += kacl_matches(&l.v[i], &f);
    cr_assert_eq(n, 3, "logs- prefixed, logs-secret literal, bob's *");
    kacl_filter rm = { .res_type = KACL_RES_ANY, .pattern = KACL_PAT_ANY, .op = KACL_OP_ANY,
                       .perm = KACL_PERM_ANY, .principal = "User:alice" };
    kacl_list gone = { 0 };
    cr_assert_eq(kacl_list_remove(&l, &rm, &gone), 3);
    cr_assert_eq(gone.n, 3);
    cr_assert_eq(l.n, 3);
    kacl_list_free(&gone);
    kacl_list_free(&l);
}

Test(acl, invalid_acls_are_refused)
{
    kacl a = { .perm = KACL_ALLOW, .op = KACL_OP_READ, .res_type = KACL_RES_TOPIC, .pattern = KACL_PAT_LITERAL };
    strcpy(a.name, "t");
    strcpy(a.host, "*");
    strcpy(a.principal, "alice");
    cr_assert_not_null(kacl_invalid(&a), "a principal without a type");
    strcpy(a.principal, "User:alice");
    cr_assert_null(kacl_invalid(&a));
    a.pattern = KACL_PAT_MATCH;
    cr_assert_not_null(kacl_invalid(&a));
    a.pattern = KACL_PAT_LITERAL;
    a.op = KACL_OP_ANY;
    cr_assert_not_null(kacl_invalid(&a));
    a.op = KACL_OP_READ;
    a.res_type = KACL_RES_CLUSTER;
    cr_assert_not_null(kacl_invalid(&a), "the cluster is kafka-cluster");
    cr_assert_eq(kacl_op_of("describe_configs"), KACL_OP_DESCRIBE_CONFIGS);
    cr_assert_eq(kacl_op_of("IdempotentWrite"), KACL_OP_IDEMPOTENT_WRITE);
    cr_assert_eq(kacl_op_of("nope"), 0);
}

Test(acl, file_round_trip_and_malformed_lines)
{
    char path[] = "/tmp/klog-acl-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    kacl_list l = { 0 };
    kacl a = mk(KACL_DENY, "User:CN=Alice Smith,O=Example %1", "*", KACL_OP_ALL, KACL_RES_GROUP, KACL_PAT_PREFIXED,
                "team a");
    kacl_list_add(&l, &a);
    char eb[256];
    cr_assert_eq(kacl_save(path, &l, eb, sizeof eb), 0, "%s", eb);
    kacl_list back;
    cr_assert_eq(kacl_load(path, &back, eb, sizeof eb), 0, "%s", eb);
    cr_assert_eq(back.n, 1);
    cr_assert_str_eq(back.v[0].principal, "User:CN=Alice Smith,O=Example %1");
    cr_assert_str_eq(back.v[0].name, "team a");
    cr_assert_eq(back.v[0].perm, KACL_DENY);
    kacl_list_free(&back);
    kacl_list_free(&l);
    static const char *const bad[] = {
        "allow User:a * Read topic literal\n",           /* six fields */
        "allow User:a * Read topic literal t extra\n",   /* eight */
        "maybe User:a * Read topic literal t\n",
        "allow User:a * Read topic literal %zz\n",
        "allow User:a * Read topic literal %00\n",
        "allow a * Read topic literal t\n",
        "allow User:a * Fly topic literal t\n",
        "allow User:a * Read cluster literal other\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs("# comment\n\nallow User:a * Read topic literal t\n", f);
        fputs(bad[i], f);
        fclose(f);
        eb[0] = '\0';
        cr_assert_eq(kacl_load(path, &back, eb, sizeof eb), -EINVAL, "line %s", bad[i]);
        cr_assert(strstr(eb, ":4:") != NULL, "%s", eb);
        cr_assert_eq(back.n, 0);
    }
    unlink(path);
}

/* RFC 7677's SCRAM-SHA-256 example, with the credentials computed here. */
Test(scram, rfc7677_example)
{
    static const unsigned char salt[] = { 0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                          0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81 };
    ksec_cred c = { .mech = KSEC_SCRAM_SHA_256, .iterations = 4096, .salt_len = sizeof salt };
    strcpy(c.name, "user");
    memcpy(c.salt, salt, sizeof salt);
    unsigned char sp[32], ck[32];
    unsigned int len;
    PKCS5_PBKDF2_HMAC("pencil", 6, salt, sizeof salt, 4096, EVP_sha256(), 32, sp);
    HMAC(EVP_sha256(), sp, 32, (const unsigned char *)"Client Key", 10, ck, &len);
    EVP_Digest(ck, 32, c.stored_key, NULL, EVP_sha256(), NULL);
    HMAC(EVP_sha256(), sp, 32, (const unsigned char *)"Server Key", 10, c.server_key, &len);
    ksec_users users = { &c, 1 };
    ksec_scram s;
    char out[512];
    const char *first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    cr_assert_eq(ksec_scram_first(&s, &users, KSEC_SCRAM_SHA_256, first, strlen(first), out, sizeof out), 0);
    cr_assert(strncmp(out, "r=rOprNGfwEbeRWgbNEkqO", 22) == 0, "%s", out);
    cr_assert(strstr(out, ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") != NULL, "%s", out);
    /* put the RFC's server nonce in place of the random one */
    static const char server_first[] = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                                       "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    strcpy(s.nonce, "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    free(s.auth_msg);
    s.auth_msg = malloc(256);
    snprintf(s.auth_msg, 256, "n=user,r=rOprNGfwEbeRWgbNEkqO,%s", server_first);
    const char *final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    cr_assert_eq(ksec_scram_final(&s, final, strlen(final), out, sizeof out), 0);
    cr_assert_str_eq(out, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    cr_assert_str_eq(s.user, "user");
    ksec_scram_clear(&s);
    /* a wrong proof */
    cr_assert_eq(ksec_scram_first(&s, &users, KSEC_SCRAM_SHA_256, first, strlen(first), out, sizeof out), 0);
    char wrong[256];
    snprintf(wrong, sizeof wrong, "c=biws,r=%s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", s.nonce);
    cr_assert_eq(ksec_scram_final(&s, wrong, strlen(wrong), out, sizeof out), -EACCES);
    ksec_scram_clear(&s);
}

Test(scram, malformed_messages_are_errors)
{
    ksec_users none = { NULL, 0 };
    static const char *const firsts[] = {
        "", "n", "n,", "n,,", "p=tls-unique,,n=u,r=abc", "n,,n=,r=abc", "n,,n=u", "n,,n=u,r=", "n,,r=abc,n=u",
        "n,,n=u=2X,r=abc", "n,,n=u,r=abc,ext=1", "x,,n=u,r=abc", "n,,n=u,r=ab c",
    };
    char out[512];
    for (size_t i = 0; i < sizeof firsts / sizeof firsts[0]; i++) {
        ksec_scram s;
        cr_assert_eq(ksec_scram_first(&s, &none, KSEC_SCRAM_SHA_512, firsts[i], strlen(firsts[i]), out, sizeof out),
                     -EINVAL, "'%s'", firsts[i]);
        ksec_scram_clear(&s);
    }
    /* an unknown user gets a salt, the same each time, and fails at the end */
    ksec_scram s;
    const char *first = "n,,n=ghost,r=abcdef";
    cr_assert_eq(ksec_scram_first(&s, &none, KSEC_SCRAM_SHA_512, first, strlen(first), out, sizeof out), 0);
    char salt1[128];
    snprintf(salt1, sizeof salt1, "%s", strstr(out, ",s="));
    char fin[512];
    static const char *const finals[] = { "", "c=biws", "c=biws,r=x,p=AAAA", "c=biws,r=%s", "c=biws,r=%s,p=!!",
                                          "c=biws,p=AAAA" };
    for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++) {
        snprintf(fin, sizeof fin, finals[i], s.nonce);
        cr_assert_eq(ksec_scram_final(&s, fin, strlen(fin), out, sizeof out), -EINVAL, "'%s'", fin);
    }
    char proof[100] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    snprintf(fin, sizeof fin, "c=biws,r=%s,p=%s", s.nonce, proof);
    cr_assert_eq(ksec_scram_final(&s, fin, strlen(fin), out, sizeof out), -EACCES);
    ksec_scram_clear(&s);
    cr_assert_eq(ksec_scram_first(&s, &none, KSEC_SCRAM_SHA_512, first, strlen(first), out, sizeof out), 0);
    cr_assert_str_eq(strstr(out, ",s="), salt1);
    ksec_scram_clear(&s);
}

Test(scram, users_file)
{
    char path[] = "/tmp/klog-users-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    unlink(path);
    char eb[256];
    cr_assert_eq(ksec_users_set(path, "alice", "pw-a", 0, eb, sizeof eb), 0, "%s", eb);
    cr_assert_eq(ksec_users_set(path, "bob", "pw-b", 5000, eb, sizeof eb), 0, "%s", eb);
    cr_assert_eq(ksec_users_set(path, "alice", "pw-a2", 0, eb, sizeof eb), 0, "%s", eb);
    cr_assert_eq(ksec_users_set(path, "bad name", "x", 0, eb, sizeof eb), -EINVAL);
    cr_assert_eq(ksec_users_set(path, "carol", "x", 10, eb, sizeof eb), -EINVAL);
    ksec_users u;
    cr_assert_eq(ksec_users_load(path, &u, eb, sizeof eb), 0, "%s", eb);
    cr_assert_eq(u.n, 4);
    cr_assert(ksec_plain_check(&u, "alice", "pw-a2", 5));
    cr_assert_not(ksec_plain_check(&u, "alice", "pw-a", 4));
    cr_assert(ksec_plain_check(&u, "bob", "pw-b", 4));
    cr_assert_not(ksec_plain_check(&u, "nobody", "pw-b", 4));
    cr_assert_eq(ksec_users_find(&u, "bob", KSEC_SCRAM_SHA_512)->iterations, 5000);
    ksec_users_free(&u);
    FILE *f = fopen(path, "r");
    char text[4096] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    cr_assert_null(strstr(text, "pw-"), "no password in the file");
    cr_assert_eq(ksec_users_delete(path, "alice", eb, sizeof eb), 0);
    cr_assert_eq(ksec_users_delete(path, "alice", eb, sizeof eb), -ENOENT);
    cr_assert_eq(ksec_users_load(path, &u, eb, sizeof eb), 0);
    cr_assert_eq(u.n, 2);
    ksec_users_free(&u);
    f = fopen(path, "a");
    fputs("bob SCRAM-SHA-256 4096 notbase64 x y\n", f);
    fclose(f);
    cr_assert_eq(ksec_users_load(path, &u, eb, sizeof eb), -EINVAL);
    unlink(path);
    char lk[64];
    snprintf(lk, sizeof lk, "%s.lock", path);
    unlink(lk);
}
