/*
 * lib/consumer/consumer.h - the consumer subsystem (contract).
 *
 * The consumer sits on lib/topic (topic references, append notification)
 * and lib/storage (zero-copy reads of whole batches) and decodes with
 * lib/format.  Its public face is include/klog/consumer.h.  Consumer groups
 * (lib/group) will build on it through the same assign/seek/position calls.
 */
#ifndef KLOG_CONSUMER_INTERNAL_H
#define KLOG_CONSUMER_INTERNAL_H

#include <klog/consumer.h>
#include "format/format.h"
#include "storage/storage.h"
#include "consumer/conf_keys.h"

#endif
