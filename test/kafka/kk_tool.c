/*
 * test/kafka/kk_tool.c - lib/kafka on the command line, for the
 * compatibility tests against other implementations
 * (test_kafka_python.py) and for the fuzz corpus.
 *
 *   kk_tool table                 the API table, as JSON lines
 *   kk_tool decode                read lines from stdin and decode them:
 *                                   req HEX            a request frame
 *                                   resp KEY VER HEX   a response frame
 *                                 printing one JSON line each: the decoded
 *                                 message (canonical JSON, lib/kafka/json.c)
 *                                 or {"error":..,"reason":..,"offset":..,
 *                                 "field":..}
 *   kk_tool samples req|resp N    for every API, version and seed < N, a
 *                                 sample message: {"api_key","api_version",
 *                                 "seed","hex" (the frame),"body"}
 *   kk_tool corpus DIR [N]        write sample request frames (seeds < N,
 *                                 default 2) to DIR/<Api>-v<V>-<seed>, the
 *                                 libFuzzer seed corpus
 *
 * Frames are without Kafka's 4-byte length prefix (what klog_conn_recv
 * returns).  Exit status 0, or 2 on bad usage or I/O errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

static int unhex(const char *s, uint8_t **out, size_t *len)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        n--;
    if (n % 2)
        return -1;
    uint8_t *b = malloc(n / 2 ? n / 2 : 1);
    if (!b)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) {
            free(b);
            return -1;
        }
        b[i] = (uint8_t)v;
    }
    *out = b;
    *len = n / 2;
    return 0;
}

static void print_fail(int rc, const kk_fail *f)
{
    printf("{\"error\":\"%s\",\"reason\":\"%s\",\"offset\":%u,\"field\":%s%s%s}\n", klog_err_name(rc),
           kk_reason_name(f->reason), f->offset, f->field ? "\"" : "", f->field ? f->field : "null",
           f->field ? "\"" : "");
}

static int cmd_decode(void)
{
    char *line = NULL;
    size_t cap = 0;
    kk_arena a;
    kk_arena_init(&a, NULL, 0);
    while (getline(&line, &cap, stdin) > 0) {
        char kind[8];
        int key = 0, ver = 0, used = 0;
        uint8_t *frame = NULL;
        size_t len = 0;
        if (strncmp(line, "req ", 4) == 0) {
            if (unhex(line + 4, &frame, &len) < 0)
                return fprintf(stderr, "kk_tool: bad hex\n"), 2;
            kk_request r;
            int rc = kk_request_decode(frame, len, NULL, &a, &r);
            if (rc < 0) {
                print_fail(rc, &r.fail);
            } else {
                klog_sbuf b = { 0 };
                kk_json_request(&b, &r, 0);
                printf("%s\n", b.p);
                free(b.p);
            }
        } else if (sscanf(line, "%7s %d %d %n", kind, &key, &ver, &used) == 3 &&
                   strcmp(kind, "resp") == 0) {
            if (unhex(line + used, &frame, &len) < 0)
                return fprintf(stderr, "kk_tool: bad hex\n"), 2;
            kk_response r;
            int rc = kk_response_decode(frame, len, (int16_t)key, (int16_t)ver, NULL, &a, &r);
            if (rc < 0) {
                print_fail(rc, &r.fail);
            } else {
                klog_sbuf b = { 0 };
                kk_json_body(&b, kk_api_find((int16_t)key)->resp, (int16_t)ver, &r.body, 0);
                printf("{\"correlation_id\":%d,\"body\":%s}\n", r.correlation_id, b.p);
                free(b.p);
            }
        } else {
            return fprintf(stderr, "kk_tool: bad line: %s", line), 2;
        }
        kk_arena_reset(&a);
        free(frame);
        fflush(stdout);
    }
    free(line);
    return 0;
}

static int cmd_samples(bool req, int n)
{
    for (int i = 0; i < kk_api_count(); i++) {
        const kk_api *api = kk_api_at(i);
        for (int v = api->min; v <= api->max; v++) {
            for (int seed = 0; seed < n; seed++) {
                kks_pool p = { 0 };
                kk_wbuf w;
                kk_wbuf_init(&w, 0);
                void *body;
                int rc = req ? kks_request(&w, &p, api, v, (uint64_t)seed, &body)
                             : kks_response(&w, &p, api, v, (uint64_t)seed, &body);
                if (rc < 0)
                    return fprintf(stderr, "kk_tool: %s v%d: %d\n", api->name, v, rc), 2;
                size_t len;
                uint8_t *f = kks_flat(&w, &len);
                printf("{\"api_key\":%d,\"api_version\":%d,\"seed\":%d,\"hex\":\"", api->key, v, seed);
                for (size_t k = 0; k < len; k++)
                    printf("%02x", f[k]);
                char *j = kks_json(req ? api->req : api->resp, v, body);
                printf("\",\"body\":%s}\n", j);
                free(j);
                free(f);
                kk_wbuf_free(&w);
                kks_pool_free(&p);
            }
        }
    }
    return 0;
}

static int cmd_corpus(const char *dir, int n)
{
    for (int i = 0; i < kk_api_count(); i++) {
        const kk_api *api = kk_api_at(i);
        for (int v = api->min; v <= api->max; v++) {
            for (int seed = 0; seed < n; seed++) {
                kks_pool p = { 0 };
                kk_wbuf w;
                kk_wbuf_init(&w, 0);
                if (kks_request(&w, &p, api, v, (uint64_t)seed, NULL) < 0)
                    return 2;
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s-v%d-%d", dir, api->name, v, seed);
                FILE *fp = fopen(path, "wb");
                if (!fp)
                    return perror(path), 2;
                size_t len;
                uint8_t *f = kks_flat(&w, &len);
                if (fwrite(f, 1, len, fp) != len || fclose(fp) != 0)
                    return perror(path), 2;
                free(f);
                kk_wbuf_free(&w);
                kks_pool_free(&p);
            }
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "table") == 0) {
        for (int i = 0; i < kk_api_count(); i++) {
            const kk_api *a = kk_api_at(i);
            printf("{\"key\":%d,\"name\":\"%s\",\"min\":%d,\"max\":%d,\"flex_from\":%d}\n", a->key,
                   a->name, a->min, a->max, a->flex_from);
        }
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "decode") == 0)
        return cmd_decode();
    if (argc >= 3 && strcmp(argv[1], "samples") == 0)
        return cmd_samples(strcmp(argv[2], "req") == 0, argc > 3 ? atoi(argv[3]) : 4);
    if (argc >= 3 && strcmp(argv[1], "corpus") == 0)
        return cmd_corpus(argv[2], argc > 3 ? atoi(argv[3]) : 2);
    fprintf(stderr, "usage: kk_tool table | decode | samples req|resp [N] | corpus DIR [N]\n");
    return 2;
}
