/* lib/consumer/conf_keys.c - the consumer's configuration keys (conf_keys.h). */
#include <stdint.h>

#include "consumer/conf_keys.h"

#define B(k) [(k) - KC_KEY_BASE(KC_TABLE_CONSUMER)]
enum { SC = KC_SCOPE_CONSUMER };

static const char *const v_reset[] = { "latest", "earliest", "none", NULL };

static const kc_def defs[] = {
    B(KC_AUTO_OFFSET_RESET) = KC_ENUM("auto.offset.reset", SC, KC_RESET_LATEST, v_reset,
                                      "where to start without a committed offset (none = fail)"),
    B(KC_FETCH_MAX_BYTES) = KC_INT("fetch.max.bytes", SC, 1048576, 1024, 64 * 1024 * 1024,
                                   "bytes of batches one poll reads"),
    B(KC_MAX_POLL_RECORDS) = KC_INT("max.poll.records", SC, 500, 1, 1000000, "records one poll returns"),
    B(KC_CHECK_CRCS) = KC_BOOL("check.crcs", SC, 0,
                               "verify every batch's checksum once per process, even where its writer left a proof"),
    B(KC_POLL_SPIN_US) = KC_INT("poll.spin.us", SC, 0, 0, 1000000,
                                "how long a blocking poll spins on the end offsets before it sleeps"),
};

/* An entry for every key of the enum (a hole is caught by klog__conf_tables_check). */
_Static_assert(sizeof defs / sizeof defs[0] == KC_CONSUMER__END - KC_KEY_BASE(KC_TABLE_CONSUMER),
               "a key without an entry");

const kc_table klog__consumer_conf_table = { "consumer", KC_TABLE_CONSUMER, defs, sizeof defs / sizeof defs[0] };
