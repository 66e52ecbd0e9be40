/* poll.spin.us: a blocking poll that spins before it sleeps still sees
 * records appended while it spins, and while it sleeps, and times out. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <klog/klog.h>

static char dir[64];
static klog *k;

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/klog-spin-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(klog_open(&k, dir, NULL, NULL, 0), 0);
    cr_assert_eq(klog_topic_create(k, "t", 1, NULL, NULL, 0), 0);
}

static void teardown(void)
{
    klog_close(k);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(spin, .init = setup, .fini = teardown);

static void *send_later(void *arg)
{
    usleep((useconds_t)(uintptr_t)arg);
    klog_conf *c;
    klog_conf_new(&c);
    klog_conf_set(c, "linger.ms", "0", NULL, 0);
    klog_producer *p;
    if (klog_producer_new(k, c, &p, NULL, 0) == 0) {
        klog_record r = KLOG_RECORD_INIT;
        r.value = "x";
        r.value_len = 1;
        r.partition = 0;
        klog_producer_send(p, "t", &r);
        klog_producer_close(p);
    }
    klog_conf_free(c);
    return NULL;
}

static klog_consumer *consumer(const char *spin)
{
    klog_conf *c;
    cr_assert_eq(klog_conf_new(&c), 0);
    char err[128];
    cr_assert_eq(klog_conf_set(c, "poll.spin.us", spin, err, sizeof err), 0, "%s", err);
    klog_consumer *cs;
    cr_assert_eq(klog_consumer_new(k, c, &cs, NULL, 0), 0);
    klog_conf_free(c);
    cr_assert_eq(klog_consumer_assign(cs, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    return cs;
}

/* delay_us: when the record is sent; spin: poll.spin.us */
static void check(unsigned delay_us, const char *spin)
{
    klog_consumer *cs = consumer(spin);
    pthread_t th;
    pthread_create(&th, NULL, send_later, (void *)(uintptr_t)delay_us);
    const klog_message *const *m;
    int n = klog_consumer_poll(cs, 10000, &m);
    pthread_join(th, NULL);
    cr_assert_eq(n, 1, "poll returned %d", n);
    cr_assert_eq(m[0]->value_len, 1);
    klog_consumer_close(cs);
}

Test(spin, record_arrives_during_the_spin) { check(1000, "200000"); }
Test(spin, record_arrives_after_the_spin_during_the_sleep) { check(100000, "1000"); }

Test(spin, a_spin_longer_than_the_timeout_still_times_out)
{
    klog_consumer *cs = consumer("1000000");
    const klog_message *const *m;
    cr_assert_eq(klog_consumer_poll(cs, 50, &m), 0);
    klog_consumer_close(cs);
}

Test(spin, the_key_is_range_checked)
{
    klog_conf *c;
    klog_conf_new(&c);
    cr_assert_eq(klog_conf_set(c, "poll.spin.us", "-1", NULL, 0), KLOG_ECONF);
    cr_assert_eq(klog_conf_set(c, "poll.spin.us", "1000001", NULL, 0), KLOG_ECONF);
    klog_conf_free(c);
}
