/*
 * test/install/hello.c - a program built the way a user builds one: against
 * the installed headers and library (pkg-config klog), or with klog as a
 * meson subproject.  It writes one record and reads it back.
 *
 *   hello DATA_DIR      prints "hello from klog X.Y.Z: <value>", exit 0
 */
#include <stdio.h>
#include <string.h>

#include <klog/klog.h>

static int fail(const char *what, int rc, const char *err)
{
    fprintf(stderr, "hello: %s: %s\n", what, err && *err ? err : klog_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    char err[256] = "";
    const char *vstr = NULL;
    klog *k = NULL;
    klog_conf *conf = NULL;
    klog_producer *p = NULL;
    klog_consumer *c = NULL;
    const klog_message *const *m = NULL;
    static const char value[] = "hello, installed klog";
    int rc, status = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: hello DATA_DIR\n");
        return 2;
    }
    if (klog_version(&vstr) != KLOG_VERSION_NUM) {
        fprintf(stderr, "hello: headers of %d.%d.%d, library %s\n", KLOG_VERSION_MAJOR, KLOG_VERSION_MINOR,
                KLOG_VERSION_PATCH, vstr);
        return 1;
    }
    if ((rc = klog_open(&k, argv[1], NULL, err, sizeof err)) < 0)
        return fail("klog_open", rc, err);
    rc = klog_topic_create(k, "hello", 1, NULL, err, sizeof err);
    if (rc < 0 && rc != -EEXIST) {
        fail("klog_topic_create", rc, err);
        goto out;
    }
    if ((rc = klog_conf_new(&conf)) < 0 ||
        (rc = klog_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err)) < 0) {
        fail("klog_conf", rc, err);
        goto out;
    }
    if ((rc = klog_producer_new(k, conf, &p, err, sizeof err)) < 0) {
        fail("klog_producer_new", rc, err);
        goto out;
    }
    klog_record r = KLOG_RECORD_INIT;
    r.value = value;
    r.value_len = sizeof value - 1;
    if ((rc = klog_producer_send(p, "hello", &r)) < 0 || (rc = klog_producer_close(p)) < 0) {
        p = NULL;
        fail("klog_producer_send", rc, NULL);
        goto out;
    }
    p = NULL;
    if ((rc = klog_consumer_new(k, conf, &c, err, sizeof err)) < 0 ||
        (rc = klog_consumer_assign(c, "hello", 0, KLOG_OFFSET_BEGINNING)) < 0) {
        fail("klog_consumer", rc, err);
        goto out;
    }
    /* The topic may hold records of an earlier run: read to the last one. */
    int64_t lag = 1;
    const klog_message *last = NULL;
    while (lag > 0) {
        if ((rc = klog_consumer_poll(c, 5000, &m)) <= 0) {
            fail("klog_consumer_poll", rc ? rc : -ETIMEDOUT, NULL);
            goto out;
        }
        last = m[rc - 1];
        if ((rc = klog_consumer_lag(c, "hello", 0, &lag)) < 0) {
            fail("klog_consumer_lag", rc, NULL);
            goto out;
        }
    }
    if (last->value_len != sizeof value - 1 || memcmp(last->value, value, last->value_len)) {
        fprintf(stderr, "hello: read back %.*s\n", (int)last->value_len, (const char *)last->value);
        goto out;
    }
    printf("hello from klog %s: %.*s\n", vstr, (int)last->value_len, (const char *)last->value);
    status = 0;
out:
    klog_producer_close(p);
    klog_consumer_close(c);
    klog_conf_free(conf);
    if (klog_close(k) < 0)
        status = 1;
    return status;
}
