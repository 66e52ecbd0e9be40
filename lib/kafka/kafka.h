/*
 * lib/kafka/kafka.h - the Kafka wire protocol codec (contract).
 *
 * What the klog server (and the klog CLI as a Kafka client) uses to turn
 * Kafka frames into C structs and back.  A frame here is what
 * klog_conn_recv() hands out: the bytes after Kafka's 4-byte length prefix
 * (the transport core adds and checks that prefix).  A request frame is a
 * request header (v1, or v2 for a flexible version: api_key, api_version,
 * correlation_id, client_id, tagged fields) and a body; a response frame is
 * a response header (v0: correlation_id; v1 adds tagged fields, for
 * flexible versions except ApiVersions, whose response header is always v0)
 * and a body.  (Request header v0, without client_id, is only
 * ControlledShutdown v0's, which klog does not implement.)
 *
 * The pieces:
 *   kk_rd      a reader of Kafka's primitive types over one frame, with a
 *              sticky error state: a read past the end, a negative length
 *              or a varint too long sets the error and returns 0/empty;
 *              nothing it does can read outside [p, end).
 *   kk_wbuf    a growable writer of the same types, bounded by a maximum
 *              frame size, with a sticky error; optionally it references
 *              large records (caller memory) instead of copying them and
 *              hands out the frame as an iovec list for klog_conn_send().
 *   kk_api     the table of API keys and the versions klog implements,
 *              which is also what ApiVersions advertises (one table, so
 *              advertised is implemented).
 *   kk_request_decode / kk_response_encode  the server's two calls;
 *   kk_request_encode / kk_response_decode  the client's two.
 *   kk_json_*  a canonical JSON rendering of a decoded header and body
 *              (tests, and a server's debug log).
 *   kk_err_*   Kafka's error codes, their names, and klog's codes mapped
 *              onto them.
 *
 * The codec is table-driven: each message is a schema (msg.c) listing its
 * fields with the versions they exist in, their nullability and their
 * place in the C struct of msg.h; one interpreter decodes, encodes and
 * prints every message and version.
 *
 * Allocation.  Decoding allocates nothing per field: a first pass reads
 * and checks the whole frame and computes the exact number of bytes the
 * decoded structure needs (arrays, and NUL-terminated copies of strings);
 * only if the frame is valid and that size is within the limits does the
 * second pass take it: from the caller's scratch buffer in the kk_arena if
 * it fits, else in ONE allocation.  Every count and length is checked
 * against the bytes that remain in the frame (a count of n elements needs
 * at least n times the element's smallest wire size) and against the
 * kk_limits BEFORE anything is allocated, so a 2^31 array count in a
 * 100-byte frame fails without allocating, and the decoded structure is
 * never larger than KK_ARENA_RATIO times the frame.
 * Bytes and records are never copied: they point into the frame.
 *
 * Lifetime.  A decoded request or response points into the frame (bytes,
 * records) and into the arena (arrays, strings): it is valid while both
 * are, i.e. until the next decode with that arena, kk_arena_reset(), or
 * the frame's buffer being reused (for a klog_conn, the next
 * klog_conn_recv).
 *
 * Errors: every function returns 0 (or a count) or a negative klog code:
 *   KLOG_ECORRUPT  the frame is malformed (truncated, a bad length, null
 *                  where the version allows none, a varint too long,
 *                  tagged fields out of order, bytes left over); the
 *                  kk_fail in the result says what, where, and in which
 *                  field
 *   KLOG_ETOOBIG   a count or length is over a kk_limits cap, or the
 *                  decoded structure would exceed max_arena
 *   KLOG_EFORMAT   unknown API key, or a version klog does not implement
 *                  (the header is still returned: ApiVersions answers an
 *                  unknown version with UNSUPPORTED_VERSION and its list,
 *                  kk_api_versions_list(), encoded as version 0, which is
 *                  how clients fall back; for another API Kafka closes the
 *                  connection, having no response format to answer in)
 *   -ENOMEM        the one allocation failed
 *   -EINVAL        a bad argument (encoders: an array with n > 0 and no
 *                  elements, a string too long for its length field)
 *
 * Threading: no global state; every function is reentrant.  A kk_arena and
 * a kk_wbuf belong to one thread at a time.  Nothing here blocks or does
 * I/O.
 *
 * Depends on lib/common and the public headers only.
 */
#ifndef KLOG_KAFKA_H
#define KLOG_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <sys/uio.h>

#include <klog/error.h>

#include "common/sbuf.h"
#include "kafka/msg.h"

/* ======================================================================
 * Limits and why a decode failed
 * ====================================================================== */

/* The decoded structure never takes more than this many bytes per byte of
 * frame, alignment included (the worst case is an array of compact
 * strings: one wire byte for a 16-byte kk_str). */
#define KK_ARENA_RATIO 16

typedef struct kk_limits {
    uint32_t max_array;   /* elements in one array [1 << 20] */
    uint32_t max_string;  /* bytes in one string [32767, Kafka's short string] */
    uint32_t max_bytes;   /* bytes in one bytes or records field [100 MiB] */
    size_t max_arena;     /* bytes of one decoded structure [32 MiB] */
} kk_limits;

/* Fill l with the defaults in brackets above.  A NULL kk_limits pointer
 * given to a decoder means these defaults. */
void kk_limits_default(kk_limits *l);

/* Why a decode failed (kk_fail.reason). */
typedef enum kk_reason {
    KK_R_OK = 0,
    KK_R_TRUNCATED,       /* a field runs past the end of the frame */
    KK_R_BAD_LENGTH,      /* a length or count below -1 (or -1 where null is impossible) */
    KK_R_NULL,            /* null where this version does not allow it */
    KK_R_VARINT,          /* a varint longer than its type allows */
    KK_R_COUNT,           /* a count that cannot fit in what remains of the frame */
    KK_R_LIMIT,           /* a count or length over a kk_limits cap */
    KK_R_ARENA,           /* the decoded structure would exceed max_arena */
    KK_R_TAGS,            /* tagged fields out of order or larger than the frame */
    KK_R_TRAILING,        /* bytes left after the body */
    KK_R_UNKNOWN_API,     /* no such API key in klog's table */
    KK_R_UNSUPPORTED_VERSION, /* a version outside klog's range for the key */
    KK_R_NOMEM,           /* the allocation failed */
} kk_reason;

/* The name of a reason ("truncated", ...); never NULL. */
const char *kk_reason_name(int reason);

typedef struct kk_fail {
    int reason;           /* kk_reason */
    uint32_t offset;      /* byte offset in the frame where it was found */
    const char *field;    /* the field being read (static), or NULL */
} kk_fail;

/* ======================================================================
 * The primitive reader
 * ====================================================================== */

typedef struct kk_rd {
    const uint8_t *p, *end;
    const uint8_t *base;  /* start of the frame: offsets in kk_fail are from here */
    int err;              /* 0, or the first error (KLOG_ECORRUPT, KLOG_ETOOBIG) */
    kk_fail fail;
} kk_rd;

void kk_rd_init(kk_rd *r, const void *p, size_t n);
static inline size_t kk_rd_left(const kk_rd *r) { return (size_t)(r->end - r->p); }
/* Record an error (the first one sticks) and stop the reader: later reads
 * return 0 and empty values. */
void kk_rd_fail(kk_rd *r, int err, int reason);

int8_t kk_rd_i8(kk_rd *r);
int16_t kk_rd_i16(kk_rd *r);
int32_t kk_rd_i32(kk_rd *r);
int64_t kk_rd_i64(kk_rd *r);
uint32_t kk_rd_uvarint(kk_rd *r);   /* unsigned varint, at most 5 bytes (Kafka's UNSIGNED_VARINT) */
int32_t kk_rd_varint(kk_rd *r);     /* zigzag varint, at most 5 bytes */
int64_t kk_rd_varlong(kk_rd *r);    /* zigzag varlong, at most 10 bytes */
/* A length-prefixed field: an int16 (string) or int32 (bytes) length, or,
 * when compact, an unsigned varint of length + 1.  -1 (compact: 0) is null,
 * allowed only when nullable.  The length is checked against max and
 * against the bytes left; *out points into the frame.  Returns the length
 * (-1 for null) or -1 with the error set; check r->err. */
int32_t kk_rd_string(kk_rd *r, bool compact, bool nullable, uint32_t max, const uint8_t **out);
int32_t kk_rd_bytes(kk_rd *r, bool compact, bool nullable, uint32_t max, const uint8_t **out);
/* An array count: int32, or compact uvarint of n + 1; -1 (0) null.  Checked
 * against max and against min_elem bytes per element left in the frame
 * (min_elem >= 1). */
int32_t kk_rd_count(kk_rd *r, bool compact, bool nullable, uint32_t max, size_t min_elem);
/* Skip a tagged-fields section (flexible versions): a count, then per
 * field a tag (strictly increasing) and a size; the contents are skipped. */
void kk_rd_skip_tags(kk_rd *r);

/* ======================================================================
 * The primitive writer
 * ====================================================================== */

/* Bytes of a frame that live in the caller's memory (kk_records iov). */
typedef struct kk_wref {
    size_t at;            /* position in b where these bytes go */
    const void *p;
    size_t n;
} kk_wref;

typedef struct kk_wbuf {
    uint8_t *b;           /* the bytes written (owned) */
    size_t n, cap;
    kk_wref *refs;        /* referenced, not copied (owned array) */
    int nrefs;
    size_t refcap;
    size_t ref_bytes;     /* sum of refs[i].n */
    size_t max;           /* frame size allowed (b plus refs) */
    size_t ref_min;       /* records pieces of at least this size are referenced; 0: always copy */
    int err;              /* sticky: 0, -ENOMEM, KLOG_ETOOBIG, -EINVAL */
} kk_wbuf;

/* Default max for kk_wbuf_init: Kafka's socket.request.max.bytes. */
#define KK_MAX_FRAME_DEFAULT 104857600u

/* An empty buffer allowing max bytes (0: KK_MAX_FRAME_DEFAULT); allocates
 * nothing yet.  ref_min starts at 0 (copy everything). */
void kk_wbuf_init(kk_wbuf *w, size_t max);
/* Empty it for the next frame, keeping its memory and settings. */
void kk_wbuf_reset(kk_wbuf *w);
/* Free its memory; it is then as after kk_wbuf_init. */
void kk_wbuf_free(kk_wbuf *w);
/* Total frame length (written plus referenced bytes). */
static inline size_t kk_wbuf_len(const kk_wbuf *w) { return w->n + w->ref_bytes; }
/* The frame as iovecs, in order: fills at most max entries and returns the
 * number needed (1 + 2 * nrefs at most; 0 for an empty frame).  Valid until
 * the next write, reset or free, and while referenced memory lives. */
int kk_wbuf_iov(const kk_wbuf *w, struct iovec *iov, int max);
/* Copy the whole frame to dst (kk_wbuf_len bytes). */
void kk_wbuf_copy_out(const kk_wbuf *w, void *dst);

void kk_w_i8(kk_wbuf *w, int8_t v);
void kk_w_i16(kk_wbuf *w, int16_t v);
void kk_w_i32(kk_wbuf *w, int32_t v);
void kk_w_i64(kk_wbuf *w, int64_t v);
void kk_w_uvarint(kk_wbuf *w, uint32_t v);
void kk_w_varint(kk_wbuf *w, int32_t v);
void kk_w_varlong(kk_wbuf *w, int64_t v);
void kk_w_raw(kk_wbuf *w, const void *p, size_t n);
/* n bytes of caller memory: referenced when n >= ref_min > 0, else copied. */
void kk_w_ref(kk_wbuf *w, const void *p, size_t n);
/* A string (len < 0 with p: strlen; p NULL: null, written as empty when
 * !nullable) and bytes (p NULL: null, likewise), plain or compact. */
void kk_w_string(kk_wbuf *w, bool compact, bool nullable, const char *p, int32_t len);
void kk_w_bytes(kk_wbuf *w, bool compact, bool nullable, const void *p, int32_t len);
/* An array count (n < 0: null, written as empty when !nullable). */
void kk_w_count(kk_wbuf *w, bool compact, bool nullable, int32_t n);
/* An empty tagged-fields section. */
static inline void kk_w_no_tags(kk_wbuf *w) { kk_w_uvarint(w, 0); }
/* Overwrite 4 bytes at pos (an int32 written earlier, e.g. a length). */
void kk_w_patch_i32(kk_wbuf *w, size_t pos, int32_t v);

/* ======================================================================
 * The arena decoded structures live in
 * ====================================================================== */

typedef struct kk_arena {
    uint8_t *buf;         /* caller's scratch (may be NULL) */
    size_t cap;
    void *heap;           /* the one allocation of the last decode, or NULL */
    size_t used;          /* bytes the last decode took */
    /* Optional allocator for the one allocation (NULL: malloc/free). */
    void *(*alloc)(void *ctx, size_t n);
    void (*free)(void *ctx, void *p);
    void *ctx;
} kk_arena;

/* An arena over the caller's scratch buf[0..cap) (buf may be NULL, cap 0:
 * every non-empty decode then allocates once).  The caller keeps buf
 * alive and suitably aligned (8 bytes). */
void kk_arena_init(kk_arena *a, void *buf, size_t cap);
/* Free the allocation, if any; what was decoded into the arena dies. */
void kk_arena_reset(kk_arena *a);

/* ======================================================================
 * The API table
 * ====================================================================== */

enum {
    KK_API_PRODUCE = 0, KK_API_FETCH = 1, KK_API_LIST_OFFSETS = 2, KK_API_METADATA = 3,
    KK_API_OFFSET_COMMIT = 8, KK_API_OFFSET_FETCH = 9, KK_API_FIND_COORDINATOR = 10,
    KK_API_JOIN_GROUP = 11, KK_API_HEARTBEAT = 12, KK_API_LEAVE_GROUP = 13,
    KK_API_SYNC_GROUP = 14, KK_API_DESCRIBE_GROUPS = 15, KK_API_LIST_GROUPS = 16,
    KK_API_SASL_HANDSHAKE = 17, KK_API_API_VERSIONS = 18, KK_API_CREATE_TOPICS = 19,
    KK_API_DELETE_TOPICS = 20, KK_API_DELETE_RECORDS = 21, KK_API_INIT_PRODUCER_ID = 22,
    KK_API_DESCRIBE_ACLS = 29, KK_API_CREATE_ACLS = 30, KK_API_DELETE_ACLS = 31,
    KK_API_DESCRIBE_CONFIGS = 32, KK_API_ALTER_CONFIGS = 33, KK_API_SASL_AUTHENTICATE = 36,
    KK_API_CREATE_PARTITIONS = 37, KK_API_DELETE_GROUPS = 42, KK_API_INCREMENTAL_ALTER_CONFIGS = 44,
    /* between replicas (lib/replication): */
    KK_API_LEADER_AND_ISR = 4, KK_API_OFFSET_FOR_LEADER_EPOCH = 23, KK_API_ALTER_PARTITION = 56,
    KK_API_ELECT_LEADERS = 43,
};

typedef struct kk_schema kk_schema;   /* a message's field table (opaque; msg.c) */

typedef struct kk_api {
    int16_t key;
    const char *name;     /* Kafka's name: "Produce", "ApiVersions", ... */
    int16_t min, max;     /* versions implemented = versions advertised */
    int16_t flex_from;    /* Kafka's first flexible version (INT16_MAX: none) */
    const kk_schema *req, *resp;
} kk_api;

/* The entry for key, or NULL if klog does not implement it. */
const kk_api *kk_api_find(int16_t key);
/* The table, in key order: kk_api_count() entries. */
int kk_api_count(void);
const kk_api *kk_api_at(int i);
/* Whether key/version is implemented: 0, or KLOG_EFORMAT. */
int kk_api_check(int16_t key, int16_t version);
/* Whether a request of key/version uses header v2 and compact encodings
 * (Kafka's flexibleVersions); also answers for versions klog does not
 * implement of keys it knows (false for unknown keys). */
bool kk_api_flexible(int16_t key, int16_t version);
/* ApiVersions' list: writes min(max, kk_api_count()) entries to out and
 * returns kk_api_count(). */
int kk_api_versions_list(kk_api_versions_resp_key *out, int max);

/* ======================================================================
 * Requests and responses
 * ====================================================================== */

typedef struct kk_req_header {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    kk_str client_id;     /* nullable */
} kk_req_header;

typedef struct kk_request {
    kk_req_header hdr;
    const kk_api *api;    /* hdr.api_key's entry, NULL if unknown */
    bool flexible;
    kk_req_body body;     /* the member for hdr.api_key */
    kk_fail fail;         /* why, when the decode failed */
} kk_request;

typedef struct kk_response {
    int32_t correlation_id;
    kk_resp_body body;
    kk_fail fail;
} kk_response;

/*
 * Decode a request frame (the bytes after the length prefix) into out,
 * arrays and strings in a, bytes and records pointing into frame.  Each
 * call first resets a.  On KLOG_EFORMAT (unknown key or version) out->hdr
 * holds api_key, api_version and correlation_id (client_id null) and
 * out->api the key's entry if known; out->fail says which.  On any failure
 * the arena holds nothing.  Returns 0, KLOG_ECORRUPT, KLOG_ETOOBIG,
 * KLOG_EFORMAT, -ENOMEM.
 */
int kk_request_decode(const void *frame, size_t len, const kk_limits *lim, kk_arena *a,
                      kk_request *out);

/*
 * Append a response frame for api_key/version (header, then body, a
 * pointer to the kk_<api>_resp) to w.  Returns 0, KLOG_EFORMAT (key or
 * version not implemented), KLOG_ETOOBIG (over w->max), -EINVAL, -ENOMEM;
 * on failure w's contents are unspecified (reset it).
 */
int kk_response_encode(kk_wbuf *w, int16_t api_key, int16_t version, int32_t correlation_id,
                       const void *body);

/*
 * Append klog's answer to an ApiVersions request with header h (decoded,
 * or returned with KLOG_EFORMAT by kk_request_decode): the whole table at
 * h->api_version with error NONE if klog implements that version; else,
 * as Kafka does, version 0 with UNSUPPORTED_VERSION (35) and the table, so
 * that the client retries with a version both know.  Returns what
 * kk_response_encode returns; -EINVAL if h is not an ApiVersions request.
 */
int kk_api_versions_answer(kk_wbuf *w, const kk_req_header *h, int32_t throttle_time_ms);

/* The client side: append a request frame for h (api_key, api_version,
 * correlation_id, client_id) with body (a kk_<api>_req).  Same returns. */
int kk_request_encode(kk_wbuf *w, const kk_req_header *h, const void *body);

/* Decode a response frame to a request of api_key/version (the client
 * knows them from the correlation id).  Same returns and rules as
 * kk_request_decode. */
int kk_response_decode(const void *frame, size_t len, int16_t api_key, int16_t version,
                       const kk_limits *lim, kk_arena *a, kk_response *out);

/* The consumer protocol's Subscription and Assignment (JoinGroup
 * metadata, SyncGroup assignment): an int16 version, then the body.  A
 * version above 3 is read as 3 and bytes left over are ignored (Kafka's
 * rule, so that newer clients stay readable); below 0 is KLOG_ECORRUPT.
 * *version gets the version read.  Same returns as kk_request_decode
 * otherwise. */
int kk_consumer_subscription_decode(const void *p, size_t len, const kk_limits *lim,
                                    kk_arena *a, int16_t *version, kk_consumer_subscription *out,
                                    kk_fail *fail);
int kk_consumer_assignment_decode(const void *p, size_t len, const kk_limits *lim, kk_arena *a,
                                  int16_t *version, kk_consumer_assignment *out, kk_fail *fail);
/* Append one, version 0-3, to w (the caller frames it as bytes). */
int kk_consumer_subscription_encode(kk_wbuf *w, int16_t version, const kk_consumer_subscription *s);
int kk_consumer_assignment_encode(kk_wbuf *w, int16_t version, const kk_consumer_assignment *s);

/* ======================================================================
 * Schemas, for generic code (tests, the JSON renderer)
 * ====================================================================== */

/* The schemas of the consumer protocol structs. */
extern const kk_schema kk_consumer_subscription_schema;
extern const kk_schema kk_consumer_assignment_schema;

/* The message's name ("ProduceRequest") and the size of its C struct. */
const char *kk_schema_name(const kk_schema *s);
size_t kk_schema_size(const kk_schema *s);

/* Decode one body of schema s at version (flexible or not) from the whole
 * of p[0..len) into out (a struct of kk_schema_size(s) bytes).  What
 * kk_request_decode does after the header.  Same returns. */
int kk_body_decode(const kk_schema *s, int16_t version, bool flexible, const void *p, size_t len,
                   const kk_limits *lim, kk_arena *a, void *out, kk_fail *fail);
/* Append one body of schema s to w.  Same returns as kk_response_encode. */
int kk_body_encode(kk_wbuf *w, const kk_schema *s, int16_t version, bool flexible, const void *body);

/* ======================================================================
 * JSON
 * ====================================================================== */

/* Append body (of schema s at version) to b as a JSON object whose keys
 * are the fields on the wire in that version, in wire order: integers as
 * numbers, booleans, strings as JSON strings (bytes >= 0x80 passed
 * through, control characters escaped), bytes and records as
 * {"len":N,"hex":"..."} with at most max_hex bytes shown (0: all),
 * null as null. */
void kk_json_body(klog_sbuf *b, const kk_schema *s, int16_t version, const void *body,
                  size_t max_hex);
/* A request kk_request_decode returned 0 for: {"api_key":..,
 * "api_version":..,"correlation_id":..,"client_id":..,"body":{...}}. */
void kk_json_request(klog_sbuf *b, const kk_request *r, size_t max_hex);

/* ======================================================================
 * Kafka error codes
 * ====================================================================== */

#define KK_ERRORS(X) \
    X(-1, UNKNOWN_SERVER_ERROR) X(0, NONE) X(1, OFFSET_OUT_OF_RANGE) X(2, CORRUPT_MESSAGE) \
    X(3, UNKNOWN_TOPIC_OR_PARTITION) X(4, INVALID_FETCH_SIZE) X(5, LEADER_NOT_AVAILABLE) \
    X(6, NOT_LEADER_OR_FOLLOWER) X(7, REQUEST_TIMED_OUT) X(8, BROKER_NOT_AVAILABLE) \
    X(9, REPLICA_NOT_AVAILABLE) X(10, MESSAGE_TOO_LARGE) X(11, STALE_CONTROLLER_EPOCH) \
    X(12, OFFSET_METADATA_TOO_LARGE) X(13, NETWORK_EXCEPTION) X(14, COORDINATOR_LOAD_IN_PROGRESS) \
    X(15, COORDINATOR_NOT_AVAILABLE) X(16, NOT_COORDINATOR) X(17, INVALID_TOPIC_EXCEPTION) \
    X(18, RECORD_LIST_TOO_LARGE) X(19, NOT_ENOUGH_REPLICAS) X(20, NOT_ENOUGH_REPLICAS_AFTER_APPEND) \
    X(21, INVALID_REQUIRED_ACKS) X(22, ILLEGAL_GENERATION) X(23, INCONSISTENT_GROUP_PROTOCOL) \
    X(24, INVALID_GROUP_ID) X(25, UNKNOWN_MEMBER_ID) X(26, INVALID_SESSION_TIMEOUT) \
    X(27, REBALANCE_IN_PROGRESS) X(28, INVALID_COMMIT_OFFSET_SIZE) X(29, TOPIC_AUTHORIZATION_FAILED) \
    X(30, GROUP_AUTHORIZATION_FAILED) X(31, CLUSTER_AUTHORIZATION_FAILED) X(32, INVALID_TIMESTAMP) \
    X(33, UNSUPPORTED_SASL_MECHANISM) X(34, ILLEGAL_SASL_STATE) X(35, UNSUPPORTED_VERSION) \
    X(36, TOPIC_ALREADY_EXISTS) X(37, INVALID_PARTITIONS) X(38, INVALID_REPLICATION_FACTOR) \
    X(39, INVALID_REPLICA_ASSIGNMENT) X(40, INVALID_CONFIG) X(41, NOT_CONTROLLER) \
    X(42, INVALID_REQUEST) X(43, UNSUPPORTED_FOR_MESSAGE_FORMAT) X(44, POLICY_VIOLATION) \
    X(45, OUT_OF_ORDER_SEQUENCE_NUMBER) X(46, DUPLICATE_SEQUENCE_NUMBER) \
    X(47, INVALID_PRODUCER_EPOCH) X(48, INVALID_TXN_STATE) X(49, INVALID_PRODUCER_ID_MAPPING) \
    X(50, INVALID_TRANSACTION_TIMEOUT) X(51, CONCURRENT_TRANSACTIONS) \
    X(52, TRANSACTION_COORDINATOR_FENCED) X(53, TRANSACTIONAL_ID_AUTHORIZATION_FAILED) \
    X(54, SECURITY_DISABLED) X(55, OPERATION_NOT_ATTEMPTED) X(56, KAFKA_STORAGE_ERROR) \
    X(57, LOG_DIR_NOT_FOUND) X(58, SASL_AUTHENTICATION_FAILED) X(59, UNKNOWN_PRODUCER_ID) \
    X(60, REASSIGNMENT_IN_PROGRESS) X(61, DELEGATION_TOKEN_AUTH_DISABLED) \
    X(62, DELEGATION_TOKEN_NOT_FOUND) X(63, DELEGATION_TOKEN_OWNER_MISMATCH) \
    X(64, DELEGATION_TOKEN_REQUEST_NOT_ALLOWED) X(65, DELEGATION_TOKEN_AUTHORIZATION_FAILED) \
    X(66, DELEGATION_TOKEN_EXPIRED) X(67, INVALID_PRINCIPAL_TYPE) X(68, NON_EMPTY_GROUP) \
    X(69, GROUP_ID_NOT_FOUND) X(70, FETCH_SESSION_ID_NOT_FOUND) X(71, INVALID_FETCH_SESSION_EPOCH) \
    X(72, LISTENER_NOT_FOUND) X(73, TOPIC_DELETION_DISABLED) X(74, FENCED_LEADER_EPOCH) \
    X(75, UNKNOWN_LEADER_EPOCH) X(76, UNSUPPORTED_COMPRESSION_TYPE) X(77, STALE_BROKER_EPOCH) \
    X(78, OFFSET_NOT_AVAILABLE) X(79, MEMBER_ID_REQUIRED) X(80, PREFERRED_LEADER_NOT_AVAILABLE) \
    X(81, GROUP_MAX_SIZE_REACHED) X(82, FENCED_INSTANCE_ID) X(83, ELIGIBLE_LEADERS_NOT_AVAILABLE) \
    X(84, ELECTION_NOT_NEEDED) X(85, NO_REASSIGNMENT_IN_PROGRESS) X(86, GROUP_SUBSCRIBED_TO_TOPIC) \
    X(87, INVALID_RECORD) X(88, UNSTABLE_OFFSET_COMMIT) X(89, THROTTLING_QUOTA_EXCEEDED) \
    X(90, PRODUCER_FENCED) X(91, RESOURCE_NOT_FOUND) X(92, DUPLICATE_RESOURCE) \
    X(93, UNACCEPTABLE_CREDENTIAL) X(94, INCONSISTENT_VOTER_SET) X(95, INVALID_UPDATE_VERSION) \
    X(96, FEATURE_UPDATE_FAILED) X(97, PRINCIPAL_DESERIALIZATION_FAILURE) X(98, SNAPSHOT_NOT_FOUND) \
    X(99, POSITION_OUT_OF_RANGE) X(100, UNKNOWN_TOPIC_ID) X(101, DUPLICATE_BROKER_REGISTRATION) \
    X(102, BROKER_ID_NOT_REGISTERED) X(103, INCONSISTENT_TOPIC_ID) X(104, INCONSISTENT_CLUSTER_ID) \
    X(105, TRANSACTIONAL_ID_NOT_FOUND) X(106, FETCH_SESSION_TOPIC_ID_ERROR) \
    X(107, INELIGIBLE_REPLICA) X(108, NEW_LEADER_ELECTED) X(109, OFFSET_MOVED_TO_TIERED_STORAGE) \
    X(110, FENCED_MEMBER_EPOCH) X(111, UNRELEASED_INSTANCE_ID) X(112, UNSUPPORTED_ASSIGNOR) \
    X(113, STALE_MEMBER_EPOCH) X(114, MISMATCHED_ENDPOINT_TYPE) X(115, UNSUPPORTED_ENDPOINT_TYPE) \
    X(116, UNKNOWN_CONTROLLER_ID) X(117, UNKNOWN_SUBSCRIPTION_ID) X(118, TELEMETRY_TOO_LARGE) \
    X(119, INVALID_REGISTRATION) X(120, TRANSACTION_ABORTABLE)

/* KK_ERR_NONE = 0, KK_ERR_OFFSET_OUT_OF_RANGE = 1, ... (int16 on the wire). */
typedef enum kk_err {
#define KK_ERR_ENUM_(code, name) KK_ERR_##name = (code),
    KK_ERRORS(KK_ERR_ENUM_)
#undef KK_ERR_ENUM_
} kk_err;

/* Kafka's name of a code ("NOT_COORDINATOR"); "UNKNOWN_ERROR_CODE" for a
 * code not in the list.  Never NULL. */
const char *kk_err_name(int code);

/* Where a klog error happened decides some Kafka codes (a stale epoch is
 * INVALID_PRODUCER_EPOCH for a producer, ILLEGAL_GENERATION in a group). */
typedef enum kk_errctx {
    KK_CTX_PARTITION,     /* Produce, Fetch, ListOffsets, DeleteRecords, InitProducerId */
    KK_CTX_GROUP,         /* FindCoordinator, Join/Sync/Heartbeat/Leave, offsets, groups admin */
    KK_CTX_TOPIC_ADMIN,   /* CreateTopics, DeleteTopics, CreatePartitions, Describe/AlterConfigs, Metadata */
} kk_errctx;

/* The Kafka code for a klog return code (0 for rc >= 0); codes with no
 * Kafka counterpart map to UNKNOWN_SERVER_ERROR (-1). */
int16_t kk_err_from_klog(int rc, kk_errctx ctx);

#endif /* KLOG_KAFKA_H */
