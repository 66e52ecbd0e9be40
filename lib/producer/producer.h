/*
 * lib/producer/producer.h - the producer subsystem (contract).
 *
 * The producer sits on top of lib/topic (it looks topics up and holds
 * references to them) and lib/partition (it appends sealed batches built
 * with lib/format, and its delivery reports complete when the partition
 * acknowledges them).  Nothing below it knows it exists.  Its public face
 * is include/klog/producer.h; it exports nothing else to the library.
 */
#ifndef KLOG_PRODUCER_INTERNAL_H
#define KLOG_PRODUCER_INTERNAL_H

#include <klog/producer.h>
#include "format/format.h"
#include "storage/storage.h"
#include "producer/conf_keys.h"

#endif
