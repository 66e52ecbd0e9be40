/* klog_conf: Kafka-style keys, typed setters, errors that name the key. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <klog/klog.h>

static klog_conf *conf;
static void setup(void) { cr_assert_eq(klog_conf_new(&conf), 0); }
static void teardown(void) { klog_conf_free(conf); }
TestSuite(conf, .init = setup, .fini = teardown);

static const char *get(const char *key)
{
    static char buf[300];
    int n = klog_conf_get(conf, key, buf, sizeof buf);
    cr_assert_geq(n, 0, "get %s: %s", key, klog_strerror(n));
    return buf;
}

Test(conf, defaults)
{
    cr_assert_str_eq(get("linger.ms"), "5");
    cr_assert_str_eq(get("acks"), "1");
    cr_assert_str_eq(get("compression.type"), "none");
    cr_assert_str_eq(get("auto.offset.reset"), "latest");
    cr_assert_str_eq(get("segment.bytes"), "1073741824");
    cr_assert_str_eq(get("retention.ms"), "604800000");
    cr_assert_str_eq(get("enable.idempotence"), "true");
    cr_assert_str_eq(get("group.id"), "");
    cr_assert_str_eq(get("check.crcs"), "false"); /* librdkafka's; the writer's proof is trusted */
}

Test(conf, set_and_get_every_type)
{
    char e[256] = "";
    cr_assert_eq(klog_conf_set(conf, "linger.ms", "20", e, sizeof e), 0, "%s", e);
    cr_assert_str_eq(get("linger.ms"), "20");
    cr_assert_eq(klog_conf_set(conf, "compression.type", "zstd", e, sizeof e), 0);
    cr_assert_str_eq(get("compression.type"), "zstd");
    cr_assert_eq(klog_conf_set(conf, "acks", "all", e, sizeof e), 0);
    cr_assert_str_eq(get("acks"), "all");
    cr_assert_eq(klog_conf_set(conf, "acks", "-1", e, sizeof e), 0);
    cr_assert_str_eq(get("acks"), "all");
    cr_assert_eq(klog_conf_set(conf, "check.crcs", "true", e, sizeof e), 0);
    cr_assert_str_eq(get("check.crcs"), "true");
    cr_assert_eq(klog_conf_set(conf, "group.id", "billing", e, sizeof e), 0);
    cr_assert_str_eq(get("group.id"), "billing");
    cr_assert_eq(klog_conf_set_int(conf, "batch.size", 65536, e, sizeof e), 0);
    cr_assert_str_eq(get("batch.size"), "65536");
    cr_assert_eq(klog_conf_set_int(conf, "enable.idempotence", 0, e, sizeof e), 0);
    cr_assert_str_eq(get("enable.idempotence"), "false");
    cr_assert_eq(klog_conf_set(conf, "retention.ms", "-1", e, sizeof e), 0);
    cr_assert_str_eq(get("retention.ms"), "-1");
}

Test(conf, unknown_key_is_an_error_naming_it)
{
    char e[256] = "";
    cr_assert_eq(klog_conf_set(conf, "linger.msec", "5", e, sizeof e), KLOG_ECONF);
    cr_assert(strstr(e, "linger.msec") != NULL, "%s", e);
    cr_assert_eq(klog_conf_set_int(conf, "no.such.key", 5, e, sizeof e), KLOG_ECONF);
    cr_assert(strstr(e, "no.such.key") != NULL, "%s", e);
    char buf[16];
    cr_assert_eq(klog_conf_get(conf, "no.such.key", buf, sizeof buf), KLOG_ECONF);
}

Test(conf, bad_values_are_errors_naming_the_key)
{
    static const char *bad[][2] = {
        { "linger.ms", "soon" }, { "linger.ms", "-1" }, { "linger.ms", "5ms" }, { "linger.ms", "" },
        { "batch.size", "99999999999999999999" }, { "acks", "2" }, { "acks", "most" },
        { "compression.type", "lzo" }, { "compression.type", "brotli" }, { "check.crcs", "yes" },
        { "segment.bytes", "10" }, { "auto.offset.reset", "smallest" }, { "num.partitions", "0" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char e[256] = "";
        cr_assert_eq(klog_conf_set(conf, bad[i][0], bad[i][1], e, sizeof e), KLOG_ECONF, "%s=%s", bad[i][0],
                     bad[i][1]);
        cr_assert(strstr(e, bad[i][0]) != NULL, "message \"%s\" does not name %s", e, bad[i][0]);
    }
    /* a failed set leaves the old value */
    cr_assert_str_eq(get("linger.ms"), "5");
    char e[64];
    cr_assert_eq(klog_conf_set_int(conf, "compression.type", 1, e, sizeof e), KLOG_ECONF);
    cr_assert_eq(klog_conf_set_int(conf, "acks", 3, e, sizeof e), KLOG_ECONF);
    /* errbuf may be NULL */
    cr_assert_eq(klog_conf_set(conf, "nope", "1", NULL, 0), KLOG_ECONF);
    char longv[400];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    cr_assert_eq(klog_conf_set(conf, "group.id", longv, e, sizeof e), KLOG_ECONF);
}

Test(conf, null_arguments)
{
    char buf[8];
    cr_assert_eq(klog_conf_new(NULL), -EINVAL);
    cr_assert_eq(klog_conf_set(NULL, "acks", "1", NULL, 0), -EINVAL);
    cr_assert_eq(klog_conf_set(conf, NULL, "1", NULL, 0), -EINVAL);
    cr_assert_eq(klog_conf_set(conf, "acks", NULL, NULL, 0), -EINVAL);
    cr_assert_eq(klog_conf_set_int(NULL, "acks", 1, NULL, 0), -EINVAL);
    cr_assert_eq(klog_conf_get(NULL, "acks", buf, sizeof buf), -EINVAL);
    klog_conf *d = NULL;
    cr_assert_eq(klog_conf_dup(NULL, &d), -EINVAL);
    klog_conf_free(NULL);
}

Test(conf, dup_is_independent_and_get_truncates)
{
    cr_assert_eq(klog_conf_set(conf, "client.id", "gateway-7", NULL, 0), 0);
    klog_conf *d;
    cr_assert_eq(klog_conf_dup(conf, &d), 0);
    cr_assert_eq(klog_conf_set(conf, "client.id", "other", NULL, 0), 0);
    char buf[4];
    int n = klog_conf_get(d, "client.id", buf, sizeof buf);
    cr_assert_eq(n, 9); /* full length reported, value truncated */
    cr_assert_str_eq(buf, "gat");
    klog_conf_free(d);
}
