/*
 * klog/klog.h - the umbrella header of klog, an embeddable streaming log.
 *
 * Include this one header.  Per-area headers beside it are included from
 * here.  Only what is declared in include/klog/ is API; everything under
 * lib/ is internal and may change at any time.
 */
#ifndef KLOG_KLOG_H
#define KLOG_KLOG_H

#include <klog/version.h>
#include <klog/error.h>
#include <klog/conf.h>
#include <klog/topic.h>
#include <klog/producer.h>
#include <klog/consumer.h>
#include <klog/group.h>

#endif /* KLOG_KLOG_H */
