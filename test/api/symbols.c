/*
 * Every function declared in include/klog/ links against the shared library
 * (as librdkafka's 0006-symbols test does): this file takes the address of
 * each one, so a declaration without an exported definition fails the link.
 * It also checks the error-code space the headers promise.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <klog/klog.h>

typedef void (*fnptr)(void);
static const struct { const char *name; fnptr fn; } public_fns[] = {
    { "klog_strerror", (fnptr)klog_strerror },
    { "klog_err_name", (fnptr)klog_err_name },
    { "klog_version", (fnptr)klog_version },
    { "klog_conf_new", (fnptr)klog_conf_new },
    { "klog_conf_free", (fnptr)klog_conf_free },
    { "klog_conf_dup", (fnptr)klog_conf_dup },
    { "klog_conf_set", (fnptr)klog_conf_set },
    { "klog_conf_set_int", (fnptr)klog_conf_set_int },
    { "klog_conf_get", (fnptr)klog_conf_get },
    { "klog_open", (fnptr)klog_open },
    { "klog_close", (fnptr)klog_close },
    { "klog_io_backend", (fnptr)klog_io_backend },
    { "klog_topic_create", (fnptr)klog_topic_create },
    { "klog_topic_delete", (fnptr)klog_topic_delete },
    { "klog_topic_add_partitions", (fnptr)klog_topic_add_partitions },
    { "klog_topic_list", (fnptr)klog_topic_list },
    { "klog_topic_list_free", (fnptr)klog_topic_list_free },
    { "klog_topic_describe", (fnptr)klog_topic_describe },
    { "klog_producer_new", (fnptr)klog_producer_new },
    { "klog_producer_set_delivery_cb", (fnptr)klog_producer_set_delivery_cb },
    { "klog_producer_set_partitioner", (fnptr)klog_producer_set_partitioner },
    { "klog_producer_send", (fnptr)klog_producer_send },
    { "klog_producer_flush", (fnptr)klog_producer_flush },
    { "klog_producer_poll_deliveries", (fnptr)klog_producer_poll_deliveries },
    { "klog_producer_outstanding", (fnptr)klog_producer_outstanding },
    { "klog_producer_close", (fnptr)klog_producer_close },
    { "klog_consumer_new", (fnptr)klog_consumer_new },
    { "klog_consumer_assign", (fnptr)klog_consumer_assign },
    { "klog_consumer_unassign", (fnptr)klog_consumer_unassign },
    { "klog_consumer_poll", (fnptr)klog_consumer_poll },
    { "klog_message_header", (fnptr)klog_message_header },
    { "klog_consumer_seek", (fnptr)klog_consumer_seek },
    { "klog_consumer_seek_time", (fnptr)klog_consumer_seek_time },
    { "klog_consumer_position", (fnptr)klog_consumer_position },
    { "klog_consumer_lag", (fnptr)klog_consumer_lag },
    { "klog_consumer_wakeup", (fnptr)klog_consumer_wakeup },
    { "klog_consumer_fd", (fnptr)klog_consumer_fd },
    { "klog_consumer_close", (fnptr)klog_consumer_close },
    { "klog_disk_usage", (fnptr)klog_disk_usage },
    { "klog_stats", (fnptr)klog_stats },
    { "klog_free", (fnptr)klog_free },
    { "klog_group_list", (fnptr)klog_group_list },
    { "klog_group_list_free", (fnptr)klog_group_list_free },
    { "klog_group_describe", (fnptr)klog_group_describe },
    { "klog_group_info_get", (fnptr)klog_group_info_get },
    { "klog_group_info_free", (fnptr)klog_group_info_free },
};

Test(symbols, every_public_function_links)
{
    for (size_t i = 0; i < sizeof public_fns / sizeof public_fns[0]; i++)
        cr_assert_not_null(public_fns[i].fn, "%s", public_fns[i].name);
}

Test(version, runtime_matches_headers)
{
    const char *v = NULL;
    cr_assert_eq(klog_version(&v), KLOG_VERSION_NUM);
    cr_assert_not_null(v);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", KLOG_VERSION_MAJOR, KLOG_VERSION_MINOR, KLOG_VERSION_PATCH);
    cr_assert_str_eq(v, want);
    cr_assert_eq(klog_version(NULL), KLOG_VERSION_NUM);
}

/* The named offsets (klog/topic.h): KLOG_OFFSET_NONE keeps the value the
 * "no offset" results always had, -1, which is also KLOG_OFFSET_END's; the
 * positions are distinct from each other and from every real offset. */
Test(offsets, named_values)
{
    cr_assert_eq(KLOG_OFFSET_NONE, -1);
    cr_assert_eq(KLOG_OFFSET_END, -1);
    cr_assert_eq(KLOG_OFFSET_BEGINNING, -2);
    cr_assert_eq(KLOG_OFFSET_DEFAULT, -1000);
}

Test(errors, own_band_has_distinct_names_and_messages)
{
    int named = 0;
    for (int c = KLOG_ERR_LAST; c >= KLOG_ERR_FIRST; c--) {
        const char *n = klog_err_name(c);
        cr_assert_not_null(n);
        cr_assert_not_null(klog_strerror(c));
        if (strcmp(n, "KLOG_E?") == 0)
            continue;
        named++;
        cr_assert(strncmp(n, "KLOG_E", 6) == 0, "%d: %s", c, n);
        for (int d = c - 1; d >= KLOG_ERR_FIRST; d--)
            cr_assert(strcmp(n, klog_err_name(d)) != 0, "%s named twice", n);
    }
    cr_assert_geq(named, 18);
    cr_assert_str_eq(klog_err_name(KLOG_ECORRUPT), "KLOG_ECORRUPT");
    cr_assert_str_eq(klog_err_name(KLOG_EREADONLY), "KLOG_EREADONLY");
}

Test(errors, errno_values_pass_through)
{
    cr_assert_str_eq(klog_err_name(-ENOSPC), "ENOSPC");
    cr_assert_str_eq(klog_err_name(-EIO), "EIO");
    cr_assert_str_eq(klog_strerror(-ENOSPC), strerror(ENOSPC));
    cr_assert_str_eq(klog_strerror(0), "success");
    cr_assert_str_eq(klog_err_name(0), "OK");
    cr_assert_str_eq(klog_err_name(-31500), "KLOG_E?");
    cr_assert_str_eq(klog_strerror(-31500), "unknown error");
    cr_assert_str_eq(klog_err_name(-100000), "KLOG_E?");
}
