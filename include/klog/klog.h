/*
 * klog/klog.h - the umbrella header of klog, an embeddable streaming log.
 *
 * Include this one header.  Per-area headers beside it are included from
 * here: instance.h (open a data directory), topic.h, producer.h,
 * consumer.h, group.h, conf.h, error.h, version.h.  Only what is declared
 * in include/klog/ is API; everything under lib/ is internal and may
 * change at any time.
 *
 * Structs that can grow.  Every public struct starts with
 * `uint32_t struct_size`, so that a later version can add fields at its
 * end without breaking programs built against this header:
 *   - Memory the caller owns - a struct it passes in (klog_record) or an
 *     array klog fills (klog_partition_info for klog_topic_describe,
 *     klog_delivery for klog_producer_poll_deliveries): the caller sets
 *     struct_size to the sizeof it was compiled with (for an array, in
 *     element 0).  klog reads and writes only that many bytes of each
 *     element and walks an array by that stride, so an older or a newer
 *     library does the right thing; fields it does not know are zeroed.
 *   - Structs klog hands out (klog_message from klog_consumer_poll,
 *     klog_delivery in the delivery callback, klog_group_info): reached
 *     through pointers and arrays of pointers, never as an array of
 *     structs, so msgs[i]->offset reads the same field whatever the
 *     library's sizeof is.  Their struct_size is the library's sizeof, for
 *     a program that must know whether a field added later is present.
 * Opaque handles (klog_conf, klog_partition_list, ...) grow freely.
 */
#ifndef KLOG_KLOG_H
#define KLOG_KLOG_H

#include <klog/version.h>
#include <klog/error.h>
#include <klog/conf.h>
#include <klog/instance.h>
#include <klog/topic.h>
#include <klog/producer.h>
#include <klog/consumer.h>
#include <klog/group.h>

#endif /* KLOG_KLOG_H */
