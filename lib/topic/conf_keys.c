/* lib/topic/conf_keys.c - the instance's configuration keys (conf_keys.h). */
#include <stdint.h>

#include "topic/conf_keys.h"

#define B(k) [(k) - KC_KEY_BASE(KC_TABLE_INSTANCE)]
enum { SI = KC_SCOPE_INSTANCE, ST = KC_SCOPE_TOPIC, SP = KC_SCOPE_PRODUCER, SC = KC_SCOPE_CONSUMER };

static const char *const v_backend[] = { "auto", "uring", "posix", NULL };
static const char *const v_budget[] = { "delete-oldest", "refuse", NULL };

static const kc_def defs[] = {
    B(KC_IO_BACKEND) = KC_ENUM("io.backend", SI, KC_BACKEND_AUTO, v_backend,
                               "I/O engine: io_uring where the kernel allows (auto), or forced"),
    B(KC_NUM_PARTITIONS) = KC_INT("num.partitions", ST, 1, 1, 10000,
                                  "partitions of a topic created with 0 partitions"),
    B(KC_DISK_BUDGET_BYTES) = KC_INT("disk.budget.bytes", SI, 0, 0, INT64_MAX / 2,
                                     "bytes every partition log together may use; 0 = no budget"),
    B(KC_DISK_BUDGET_POLICY) = KC_ENUM("disk.budget.policy", SI, KC_BUDGET_DELETE_OLDEST, v_budget,
                                       "at the budget: delete the oldest segment, or refuse the append"),
    B(KC_RETENTION_CHECK_MS) = KC_INT("log.retention.check.interval.ms", SI, 1000, 1, INT64_MAX / 2,
                                      "how often the background thread applies retention"),
    B(KC_CLEANER_ENABLE) = KC_BOOL("log.cleaner.enable", SI, 1, "run cleaner threads for compacted topics"),
    B(KC_CLEANER_THREADS) = KC_INT("log.cleaner.threads", SI, 1, 1, 16, "cleaner threads"),
    B(KC_CLEANER_BACKOFF_MS) = KC_INT("log.cleaner.backoff.ms", SI, 1000, 1, INT64_MAX / 2,
                                      "a cleaner's sleep when no partition needs cleaning"),
    B(KC_CLEANER_DEDUPE_BYTES) = KC_INT("log.cleaner.dedupe.buffer.size", SI, 32 << 20, 65536, 1ll << 36,
                                        "memory of a cleaning pass's key map"),
    B(KC_CLEANER_IO_RATE) = KC_INT("log.cleaner.io.max.bytes.per.second", SI, 0, 0, INT64_MAX / 2,
                                   "cleaner I/O shared by every cleaner thread; 0 = no limit"),
    B(KC_STATISTICS_INTERVAL_MS) = KC_INT("statistics.interval.ms", SI, 0, 0, 86400000,
                                          "write DIR/stats.json and DIR/stats.prom this often; 0 = off"),
    B(KC_CLIENT_ID) = KC_STR("client.id", SP | SC,
                             "a producer's or consumer's name in statistics (and a member id's prefix)"),
    B(KC_RECOVERY_VERIFY_ALL) = KC_BOOL("log.recovery.verify.all", SI, 0,
                                        "at open, check every batch of every partition, not only those past "
                                        "the recovery point (reads every log whole)"),
    B(KC_MAX_OPEN_FILES) = KC_INT("log.max.open.files", SI, 1024, 1, 1 << 20,
                                  "segment files the partitions keep open at most; the least recently "
                                  "used is closed past it"),
    B(KC_INDEX_CACHE_BYTES) = KC_INT("log.index.cache.max.bytes", SI, 16 << 20, 0, INT64_MAX / 2,
                                     "sealed segments' indexes in memory at most; 0 = no limit"),
    B(KC_READ_ONLY) = KC_BOOL("read.only", SI, 0,
                              "open for reading only, beside a writer in another process: no lock, "
                              "nothing written; the logs follow the writer's appends"),
    B(KC_CKPT_INTERVAL_MS) = KC_INT("log.flush.offset.checkpoint.interval.ms", SI, 60000, 0, INT64_MAX / 2,
                                    "sync each partition written to and checkpoint its recovery point this "
                                    "often, and whenever its segment grew 64 MiB (recovery after a crash "
                                    "checks what came since); 0 = only at segment roll and close"),
    B(KC_CKPT_UNCHECKED_MAX) = KC_INT("log.recovery.unchecked.max.bytes", SI, 256 << 20, 0, INT64_MAX / 2,
                                      "with checkpoints on: an append that leaves more than this written "
                                      "past the partition's checkpoint syncs and checkpoints it before it "
                                      "returns, bounding what recovery after a crash checks when writes "
                                      "outrun the disk; 0 = no bound"),
};

/* An entry for every key of the enum (a hole is caught by klog__conf_tables_check). */
_Static_assert(sizeof defs / sizeof defs[0] == KC_INSTANCE__END - KC_KEY_BASE(KC_TABLE_INSTANCE),
               "a key without an entry");

const kc_table klog__instance_conf_table = { "instance", KC_TABLE_INSTANCE, defs, sizeof defs / sizeof defs[0] };
