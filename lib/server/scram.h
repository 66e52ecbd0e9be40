/*
 * lib/server/scram.h - SASL credentials: the users file, SCRAM-SHA-256 and
 * SCRAM-SHA-512 (RFC 5802, RFC 7677) on the server's side, and PLAIN
 * checked against the same SCRAM credentials.
 *
 * The users file (sasl.users.file; klog users add writes it) holds, per
 * user and mechanism, what RFC 5802 has a server keep, never a password:
 *
 *     # klog users: NAME MECHANISM ITERATIONS SALT STORED_KEY SERVER_KEY
 *     alice SCRAM-SHA-256 4096 <base64> <base64> <base64>
 *     alice SCRAM-SHA-512 4096 <base64> <base64> <base64>
 *
 * StoredKey = H(HMAC(SaltedPassword, "Client Key")) and ServerKey =
 * HMAC(SaltedPassword, "Server Key"), SaltedPassword = PBKDF2(password,
 * salt, iterations): what Kafka keeps in its SCRAM credentials.  PLAIN
 * recomputes StoredKey from the password it is given and compares.
 *
 * Self-contained: libc and OpenSSL's libcrypto, no other part of klog, so
 * the klog tool links it (tools/cmd_users.c) as it links lib/format.
 * Threading: a ksec_users is read-only once loaded (any number of
 * readers); a ksec_scram belongs to one connection.
 */
#ifndef KLOG_SERVER_SCRAM_H
#define KLOG_SERVER_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { KSEC_SCRAM_SHA_256 = 1, KSEC_SCRAM_SHA_512 = 2, KSEC_PLAIN = 3 };

#define KSEC_NAME_MAX 128       /* a user name: [A-Za-z0-9._@+-], 1..128 bytes */
#define KSEC_HASH_MAX 64
#define KSEC_SALT_LEN 24
#define KSEC_ITERATIONS 4096    /* Kafka's minimum and klog users add's default */
#define KSEC_ITERATIONS_MAX 100000

/* "SCRAM-SHA-256" -> KSEC_SCRAM_SHA_256 ...; 0 for anything else. */
int ksec_mech_of(const char *name);
const char *ksec_mech_name(int mech);
bool ksec_name_ok(const char *name);

typedef struct ksec_cred {
    char name[KSEC_NAME_MAX + 1];
    int mech;                        /* KSEC_SCRAM_SHA_256 or _512 */
    int iterations;
    unsigned char salt[64];
    size_t salt_len;
    unsigned char stored_key[KSEC_HASH_MAX], server_key[KSEC_HASH_MAX];
} ksec_cred;

typedef struct ksec_users {
    ksec_cred *v;
    size_t n;
} ksec_users;

/* Read path.  A missing file is no users (0).  Returns 0, -errno, or -EINVAL
 * for a malformed line (errbuf says which). */
int ksec_users_load(const char *path, ksec_users *out, char *errbuf, size_t errsize);
void ksec_users_free(ksec_users *u);
const ksec_cred *ksec_users_find(const ksec_users *u, const char *name, int mech);

/* Add or replace name's credentials for both SCRAM mechanisms, from
 * password (iterations 0: KSEC_ITERATIONS), rewriting path atomically
 * (a temporary file, fsync, rename) with mode 0600; delete removes them.
 * Returns 0, -ENOENT (delete: no such user), -EINVAL (bad name), -errno. */
int ksec_users_set(const char *path, const char *name, const char *password, int iterations, char *errbuf,
                   size_t errsize);
int ksec_users_delete(const char *path, const char *name, char *errbuf, size_t errsize);

/* PLAIN: does password match name's credentials?  (PBKDF2 with the stored
 * salt and iterations: a few milliseconds.) */
bool ksec_plain_check(const ksec_users *u, const char *name, const char *password, size_t password_len);

/*
 * A SCRAM exchange on the server's side: two client messages in, two
 * server messages out.
 *
 *   ksec_scram_first(s, users, mech, client_first, n, out, outsz)
 *       parses client-first-message, answers server-first-message.  An
 *       unknown user gets a made-up salt and fails at the end (nobody
 *       learns which names exist).  0 or -EINVAL (malformed, channel
 *       binding asked for, an extension).
 *   ksec_scram_final(s, client_final, n, out, outsz)
 *       checks the proof; 0 with server-final-message in out, -EACCES (the
 *       wrong password or no such user), -EINVAL (malformed).
 *
 * s->user is the authenticated name once final returned 0.
 */
typedef struct ksec_scram {
    int mech;
    int step;                        /* 0, 1 after first, 2 done */
    bool known;                      /* the user exists */
    ksec_cred cred;
    char user[KSEC_NAME_MAX + 1];
    char nonce[128];                 /* client nonce + server nonce */
    char *auth_msg;                  /* client-first-bare "," server-first (malloc) */
} ksec_scram;

int ksec_scram_first(ksec_scram *s, const ksec_users *users, int mech, const char *msg, size_t n, char *out,
                     size_t outsz);
int ksec_scram_final(ksec_scram *s, const char *msg, size_t n, char *out, size_t outsz);
void ksec_scram_clear(ksec_scram *s);

#endif
