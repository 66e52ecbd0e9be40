/*
 * test/partition/held_hw.c - producers and consumers on a partition whose
 * high watermark is held back, as a replicated leader's is until its
 * followers have the records.  Public API plus one internal hook
 * (kpart_set_replicated / kpart_advance_hw on the topic's partition), so
 * this links the static core library.
 *
 * What it pins down: an acks=all delivery report waits until the HW passes
 * its batch and reports come in order; acks=1 reports do not wait;
 * consumers see nothing above the HW, and one blocked in poll wakes when
 * the HW moves; flush waits for the acknowledgements; deleting the topic
 * fails the reports still waiting.
 */
#include <poll.h>

#include "../api/util.h"

#include "topic/topic.h"

TestSuite(held_hw, .init = ut_mkdir, .fini = ut_rmdir);

/* The partition object behind topic/part (a reference is held on the
 * topic while the test runs: *t). */
static kpart *part_of(klog *k, const char *topic, int part, kt_topic **t)
{
    *t = klog__topic_get(k, topic);
    cr_assert_not_null(*t);
    return (*t)->parts[part];
}

static int poll_count(klog_consumer *c, int timeout_ms, int64_t *first_offset)
{
    const klog_message *const *m = NULL;
    int n = klog_consumer_poll(c, timeout_ms, &m);
    if (n > 0 && first_offset)
        *first_offset = m[0]->offset;
    return n;
}

typedef struct poller {
    klog_consumer *c;
    int n;
    int64_t first;
    int64_t waited_ms;
} poller;

static void *poll_thread(void *arg)
{
    poller *pl = arg;
    int64_t t0 = ut_mono_ms();
    pl->n = poll_count(pl->c, 20000, &pl->first);
    pl->waited_ms = ut_mono_ms() - t0;
    return NULL;
}

Test(held_hw, acks_all_reports_wait_for_the_hw_and_consumers_stay_below_it)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    kt_topic *t;
    kpart *part = part_of(k, "t", 0, &t);
    kpart_set_replicated(part, true);

    ut_dr dr;
    ut_dr_init(&dr);
    klog_producer *p = ut_producer(k, "acks", "all", "linger.ms", "0", NULL);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);

    /* linger.ms=0: each send is appended at once, one batch each */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ut_send(p, "t", 0, NULL, "v"), 0);
    cr_assert_eq(kpart_end_offset(part), 3, "appended");
    cr_assert_eq(kpart_high_watermark(part), 0, "held");
    cr_assert_eq(ut_dr_count(&dr), 0, "a report came before the HW passed its record");
    cr_assert_eq(klog_producer_outstanding(p), 3);
    cr_assert_eq(klog_producer_flush(p, 50), -ETIMEDOUT, "flush waits for the acknowledgements");
    cr_assert_eq(poll_count(c, 0, NULL), 0, "a consumer saw records above the HW");

    /* a consumer blocked in poll wakes when the HW moves */
    poller pl = { .c = c };
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, poll_thread, &pl), 0);
    ut_sleep_ms(100); /* let it block (a head start, not a measure) */
    cr_assert_eq(kpart_advance_hw(part, 1), 1);
    cr_assert_eq(ut_join_within(th, 15), 0, "the blocked poll did not wake");
    cr_assert_eq(pl.n, 1, "exactly the record below the HW, got %d", pl.n);
    cr_assert_eq(pl.first, 0);
    cr_assert_lt(pl.waited_ms, 15000);
    cr_assert_eq(ut_dr_wait(&dr, 1, 5000), 1);
    cr_assert_eq(dr.d[0].err, 0);
    cr_assert_eq(dr.d[0].offset, 0);
    cr_assert_eq(poll_count(c, 0, NULL), 0);

    /* the rest, in order */
    cr_assert_eq(kpart_advance_hw(part, 3), 3);
    cr_assert_eq(ut_dr_wait(&dr, 3, 5000), 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(dr.d[i].err, 0);
        cr_assert_eq(dr.d[i].offset, i, "report %d has offset %lld", i, (long long)dr.d[i].offset);
    }
    cr_assert_eq(klog_producer_flush(p, 5000), 0);
    cr_assert_eq(klog_producer_outstanding(p), 0);
    size_t n;
    ut_msg *m = ut_consume(c, 2, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(m[0].offset, 1);
    cr_assert_eq(m[1].offset, 2);
    ut_msgs_free(m, n);

    klog_consumer_close(c);
    cr_assert_eq(klog_producer_close(p), 0);
    ut_dr_fini(&dr);
    klog__topic_put(t);
    cr_assert_eq(klog_close(k), 0);
}

Test(held_hw, acks_1_reports_do_not_wait_for_the_hw)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    kt_topic *t;
    kpart *part = part_of(k, "t", 0, &t);
    kpart_set_replicated(part, true);

    ut_dr dr;
    ut_dr_init(&dr);
    klog_producer *p = ut_producer(k, "acks", "1", "linger.ms", "0", NULL);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "a"), 0);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "b"), 0);
    cr_assert_eq(klog_producer_flush(p, 5000), 0);
    cr_assert_eq(ut_dr_count(&dr), 2);
    cr_assert_eq(dr.d[0].offset, 0);
    cr_assert_eq(dr.d[1].offset, 1);
    cr_assert_eq(kpart_high_watermark(part), 0);

    /* still invisible to consumers, and the fd turns readable on the move */
    klog_consumer *c = ut_consumer(k, NULL);
    cr_assert_eq(klog_consumer_assign(c, "t", 0, KLOG_OFFSET_BEGINNING), 0);
    cr_assert_eq(poll_count(c, 0, NULL), 0);
    int fd = klog_consumer_fd(c);
    cr_assert_geq(fd, 0);
    struct pollfd pfd = { fd, POLLIN, 0 };
    cr_assert_eq(poll(&pfd, 1, 0), 0, "nothing visible yet");
    kpart_advance_hw(part, 2);
    cr_assert_eq(poll(&pfd, 1, 5000), 1, "the fd did not turn readable when the HW moved");
    cr_assert_eq(poll_count(c, 0, NULL), 2);

    klog_consumer_close(c);
    cr_assert_eq(klog_producer_close(p), 0);
    ut_dr_fini(&dr);
    klog__topic_put(t);
    cr_assert_eq(klog_close(k), 0);
}

Test(held_hw, deleting_the_topic_fails_the_waiting_reports)
{
    klog *k = ut_open();
    ut_topic(k, "t", 1, NULL);
    kt_topic *t;
    kpart *part = part_of(k, "t", 0, &t);
    kpart_set_replicated(part, true);

    ut_dr dr;
    ut_dr_init(&dr);
    klog_producer *p = ut_producer(k, "acks", "all", "linger.ms", "0", NULL);
    cr_assert_eq(klog_producer_set_delivery_cb(p, ut_dr_cb, &dr), 0);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "a"), 0);
    cr_assert_eq(ut_send(p, "t", 0, NULL, "b"), 0);
    cr_assert_eq(ut_dr_count(&dr), 0);
    cr_assert_eq(klog_topic_delete(k, "t"), 0);
    cr_assert_eq(ut_dr_wait(&dr, 2, 5000), 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(dr.d[i].err, KLOG_EUNKNOWN_TOPIC, "report %d: %s", i, klog_err_name(dr.d[i].err));
        cr_assert_eq(dr.d[i].offset, -1);
    }
    cr_assert_eq(klog_producer_flush(p, 5000), 0, "nothing left to wait for");
    cr_assert_eq(klog_producer_close(p), KLOG_EUNKNOWN_TOPIC, "close returns the first delivery error");
    ut_dr_fini(&dr);
    klog__topic_put(t);
    cr_assert_eq(klog_close(k), 0);
}
