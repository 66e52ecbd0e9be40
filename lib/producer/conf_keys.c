/* lib/producer/conf_keys.c - the producer's configuration keys (conf_keys.h). */
#include <stdint.h>

#include "producer/conf_keys.h"

#define B(k) [(k) - KC_KEY_BASE(KC_TABLE_PRODUCER)]
enum { SP = KC_SCOPE_PRODUCER };

static const kc_sym s_acks[] = { { "all", -1 }, { "-1", -1 }, { "0", 0 }, { "1", 1 }, { NULL, 0 } };
static const char *const v_partitioner[] = { "default", "hash", "sticky", "round_robin", NULL };

static const kc_def defs[] = {
    B(KC_ACKS) = { .name = "acks", .type = KC_TYPE_SYM, .scope = SP, .def = 1, .min = -1, .max = 1, .syms = s_acks,
                   .accepts = "0, 1, all or -1", .accepts_int = "0, 1 or -1",
                   .doc = "report a record once written (1), once durable (all), or at once (0)" },
    B(KC_LINGER_MS) = KC_INT("linger.ms", SP, 5, 0, 900000, "how long a batch waits for more records"),
    B(KC_BATCH_SIZE) = KC_INT("batch.size", SP, 1000000, 128, 64 * 1024 * 1024 - 65536,
                              "seal a partition's batch at this many bytes"),
    B(KC_BATCH_NUM_MESSAGES) = KC_INT("batch.num.messages", SP, 10000, 1, 1000000,
                                      "seal a partition's batch at this many records"),
    B(KC_COMPRESSION_LEVEL) = KC_INT("compression.level", SP, -1, -1, 22, "codec level; -1 = the codec's default"),
    B(KC_BUFFER_MEMORY) = KC_INT("buffer.memory", SP, 33554432, 65536, INT64_MAX / 2,
                                 "bytes of batches a producer may hold"),
    B(KC_MAX_BLOCK_MS) = KC_INT("max.block.ms", SP, 60000, 0, INT64_MAX / 2,
                                "how long a send waits for buffer memory; 0 = fail at once"),
    B(KC_ENABLE_IDEMPOTENCE) = KC_BOOL("enable.idempotence", SP, 1,
                                       "sequence numbers: a retried batch is written once"),
    B(KC_PARTITIONER) = KC_ENUM("partitioner", SP, KC_PARTITIONER_DEFAULT, v_partitioner,
                                "how a record without a partition gets one"),
    B(KC_DELIVERY_REPORT_QUEUE) = KC_BOOL("delivery.report.queue", SP, 0,
                                          "queue delivery reports for klog_producer_poll_deliveries"),
    B(KC_COMPRESSION_THREADS) = KC_INT("compression.threads", SP, -1, -1, 64,
                                       "threads compressing sealed batches; 0 = the sender and the writer, "
                                       "-1 = min(4, CPUs), 0 on one CPU"),
};

/* An entry for every key of the enum (a hole is caught by klog__conf_tables_check). */
_Static_assert(sizeof defs / sizeof defs[0] == KC_PRODUCER__END - KC_KEY_BASE(KC_TABLE_PRODUCER),
               "a key without an entry");

const kc_table klog__producer_conf_table = { "producer", KC_TABLE_PRODUCER, defs, sizeof defs / sizeof defs[0] };
