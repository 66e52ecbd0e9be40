/*
 * lib/consumer/consumer.h - the consumer subsystem (contract).
 *
 * The consumer sits on lib/topic (topic references), lib/partition
 * (zero-copy reads of whole batches below the high watermark, waiters that
 * wake it) and lib/group (a subscribed consumer is a group member: the
 * member state machine in lib/group/member.c, reached through the
 * coordinator ops of lib/group/group.h), and decodes with lib/format.  Its
 * public face is include/klog/consumer.h; it exports nothing else to the
 * library.
 */
#ifndef KLOG_CONSUMER_INTERNAL_H
#define KLOG_CONSUMER_INTERNAL_H

#include <klog/consumer.h>
#include "format/format.h"
#include "storage/storage.h"
#include "consumer/conf_keys.h"

#endif
