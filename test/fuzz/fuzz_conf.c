/*
 * test/fuzz/fuzz_conf.c - libFuzzer target over the configuration parser
 * (lib/common/conf.c behind klog_conf_set): what `klog serve -c FILE`,
 * topics.meta's overrides and every program's settings go through.
 *
 * Input: lines "key=value" (a line without '=' is a key with an empty
 * value).  Each is set on one conf.  Properties (abort() = a finding):
 *
 *   - klog_conf_set returns 0 or KLOG_ECONF, with a message for KLOG_ECONF;
 *   - after a 0, klog_conf_get gives the value back in a form that sets
 *     again to 0 and reads back the same (a value survives a write to a
 *     file and a read from it: topics.meta, `klog topics describe`);
 *   - a duplicate of the conf reads the same for every key set;
 *   - klog_conf_set_int with the bytes as an integer returns 0, KLOG_ECONF.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <klog/conf.h>
#include <klog/error.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "fuzz_conf: %s:%d: %s\n", __FILE__, __LINE__, #c);     \
            abort();                                                               \
        }                                                                          \
    } while (0)

#define FC_VMAX 4096

static void one(klog_conf *c, klog_conf *shadow, const char *key, const char *value, int64_t iv)
{
    char err[256] = "";
    int rc = klog_conf_set(c, key, value, err, sizeof err);
    CHECK(rc == 0 || rc == KLOG_ECONF);
    if (rc == KLOG_ECONF)
        CHECK(err[0] != '\0');
    char *v1 = malloc(FC_VMAX), *v2 = malloc(FC_VMAX);
    CHECK(v1 && v2);
    if (rc == 0) {
        int n = klog_conf_get(c, key, v1, FC_VMAX);
        CHECK(n >= 0);
        if (n < FC_VMAX) {
            CHECK(klog_conf_set(shadow, key, v1, err, sizeof err) == 0);
            int m = klog_conf_get(shadow, key, v2, FC_VMAX);
            CHECK(m == n && strcmp(v1, v2) == 0);
        }
    }
    err[0] = '\0';
    rc = klog_conf_set_int(c, key, iv, err, sizeof err);
    CHECK(rc == 0 || rc == KLOG_ECONF);
    if (rc == KLOG_ECONF)
        CHECK(err[0] != '\0');
    free(v1);
    free(v2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    klog_conf *c = NULL, *shadow = NULL;
    CHECK(klog_conf_new(&c) == 0 && klog_conf_new(&shadow) == 0);
    char *save = NULL;
    int lines = 0;
    for (char *line = strtok_r(text, "\n", &save); line && lines < 256; line = strtok_r(NULL, "\n", &save)) {
        lines++;
        char *eq = strchr(line, '=');
        const char *value = "";
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        }
        int64_t iv = 0;
        for (const char *p = value; *p; p++)
            iv = (int64_t)((uint64_t)iv * 31 + (unsigned char)*p);
        one(c, shadow, line, value, iv);
    }
    /* A copy reads as the original. */
    klog_conf *d = NULL;
    CHECK(klog_conf_dup(c, &d) == 0);
    save = NULL;
    memcpy(text, data, size);
    text[size] = '\0';
    char a[512], b[512];
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq)
            *eq = '\0';
        int n = klog_conf_get(c, line, a, sizeof a);
        int m = klog_conf_get(d, line, b, sizeof b);
        CHECK(n == m);
        if (n >= 0)
            CHECK(strcmp(a, b) == 0);
    }
    klog_conf_free(d);
    klog_conf_free(shadow);
    klog_conf_free(c);
    free(text);
    return 0;
}
