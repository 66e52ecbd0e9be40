/*
 * tools/remote.h - the klog tool as a Kafka client ("remote mode").
 *
 * produce, consume, topics and groups work on a data directory through
 * the public API while nothing else holds it.  While `klog serve` holds
 * it (or whenever --bootstrap-server HOST:PORT is given) they talk to a
 * server over the Kafka protocol instead, through librdkafka, and print
 * what the local commands print.
 *
 * Discovery: `klog serve` writes its listener URLs into DIR/serve.listeners
 * (cli_listeners_write: a temporary file renamed into place once every
 * listener listens) and removes it when it stops cleanly.  A command reads
 * it only when klog_open says DIR is locked, so a file left by a server
 * that was killed is never used while nobody holds DIR (the command then
 * opens DIR itself, and removes the stale file, holding the lock); and
 * when DIR is locked and the address in the file does not answer, the
 * command says so and exits 3 after a bounded connect (REMOTE_CONNECT_MS)
 * rather than waiting on a server that is gone.
 *
 * The client half (remote_*.c) is built when librdkafka is found (meson
 * option 'rdkafka', auto); without it remote_none.c says that remote mode
 * is not built.  librdkafka is linked into this tool only, never into
 * libklog.
 */
#ifndef KLOG_TOOLS_REMOTE_H
#define KLOG_TOOLS_REMOTE_H

#include "cli.h"

/* Long options every remote-capable command takes (values below 256, above
 * every short option, apart from the commands' own O_* values). */
enum { O_BOOTSTRAP = 200, O_CMDCONFIG = 201 };
#define CLI_REMOTE_OPTIONS                                                                     \
    { "bootstrap-server", required_argument, NULL, O_BOOTSTRAP },                              \
    { "command-config", required_argument, NULL, O_CMDCONFIG }

/* The help lines for them. */
#define CLI_REMOTE_HELP                                                                        \
    "  --bootstrap-server HOST:PORT[,HOST:PORT...]\n"                                          \
    "                         talk to a Kafka server (klog serve) instead of\n"              \
    "                         opening DIR (also used when klog serve holds DIR)\n"            \
    "  --command-config FILE  client properties for remote mode (key=value lines:\n"          \
    "                         security.protocol, ssl.*, sasl.*, ...)\n"

/* Set by --bootstrap-server / --command-config (before the command or
 * among its options). */
extern const char *cli_global_bootstrap;
extern const char *cli_global_command_config;

/* Handle O_BOOTSTRAP / O_CMDCONFIG in a command's option loop. */
void cli_remote_option(int c, const char *arg);

/* The name of the discovery file inside a data directory. */
#define CLI_LISTENERS_FILE "serve.listeners"

/* How long a command waits for a TCP connection to each address before
 * it reports that nothing answers. */
#define REMOTE_CONNECT_MS 5000
/* How long an administrative request, or the first metadata request,
 * may take. */
#define REMOTE_REQUEST_MS 30000

/* Where remote mode connects, and why. */
typedef struct cli_remote {
    char *bootstrap;      /* bootstrap.servers: "host:port,host:port" */
    char *origin;         /* for messages: "klog serve at tcp://... (DIR/serve.listeners)" */
    const char *command_config; /* FILE of --command-config, or NULL */
    bool from_listeners;  /* found through DIR/serve.listeners */
    bool tls;             /* a tls:// listener: security.protocol=ssl by default */
} cli_remote;

void cli_remote_free(cli_remote *r);

/* Write the listener URLs (urls[0..n-1]) into DIR/serve.listeners,
 * atomically (written beside it and renamed).  Returns 0 or -errno. */
int cli_listeners_write(const char *dir, const char *const *urls, int n);
/* Remove DIR/serve.listeners (no error when absent). */
void cli_listeners_remove(const char *dir);

/*
 * Where a command runs.  With --bootstrap-server: remote (DIR is not
 * needed).  Otherwise the data directory (opt_dir, -d, KLOG_DIR) is opened
 * as cli_open does; when it is locked and DIR/serve.listeners names a
 * server: remote.  Returns CLI_OK with exactly one of *k and *remote set,
 * or the exit status after printing the error.  A --bootstrap-server, or a
 * listeners file, whose addresses accept no TCP connection within
 * REMOTE_CONNECT_MS is such an error (1, or 3 for a file in a locked DIR).
 */
int cli_target(const char *ctx, const char *help, const char *opt_dir, bool create, const klog_conf *conf,
               klog **k, cli_remote **remote);
/* Set by a command that only reads (consume without a group, topics
 * list/describe, groups list/describe) before cli_target: a DIR locked by
 * an application with no DIR/serve.listeners (not a server) is then opened
 * read-only (read.only) instead of being an error. */
extern bool cli_target_read_only;

/* A list of "key=value" strings (-X in remote mode), borrowed from argv. */
typedef struct cli_props {
    const char *kv[256];
    int n;
} cli_props;
/* Append; returns CLI_OK or CLI_USAGE after printing the error. */
int cli_props_add(const char *ctx, cli_props *p, const char *kv);

/* Read a --command-config file: calls fn(arg, key, value) for every
 * property line (Java properties: key=value, key: value or "key value";
 * '#' and '!' comments; blank lines).  A sasl.jaas.config of Kafka's
 * PlainLoginModule or ScramLoginModule is given as sasl.username and
 * sasl.password.  Returns CLI_OK, or the exit status after printing the
 * error (fn returns CLI_OK or an exit status). */
int cli_props_file(const char *ctx, const char *path,
                   int (*fn)(void *arg, const char *key, const char *value), void *arg);

/* ---- what each command does remotely (remote_*.c, or remote_none.c) -------------- */

/* "librdkafka 2.0.2", or NULL when remote mode is not built (klog -V). */
const char *remote_client_version(void);

/* Output formats of consume (cmd_consume.c), shared with remote consume:
 * value, kv, json, a kcat -f template, or Kafka's console consumer with
 * its print.* properties. */
enum cli_fmt { CLI_FMT_VALUE, CLI_FMT_KV, CLI_FMT_JSON, CLI_FMT_TEMPLATE, CLI_FMT_KAFKA };

/* Kafka's print.* properties (CLI_FMT_KAFKA): what each line shows, in
 * Kafka's order, separated by the key separator. */
enum {
    CLI_PRINT_TIMESTAMP = 1, CLI_PRINT_PARTITION = 2, CLI_PRINT_OFFSET = 4, CLI_PRINT_HEADERS = 8,
    CLI_PRINT_KEY = 16, CLI_PRINT_VALUE = 32,
};

/* How consume prints a record. */
typedef struct cli_out {
    enum cli_fmt fmt;
    const char *sep;      /* kv and print.*: between fields */
    const char *tmpl;     /* CLI_FMT_TEMPLATE */
    unsigned print;       /* CLI_FMT_KAFKA: CLI_PRINT_* */
} cli_out;

/* Check a --format template (kcat -f: %t %p %o %k %s %T %h %S %K %%, and
 * \n \t \r \\ escapes).  NULL, or what is wrong with it. */
const char *cli_template_check(const char *tmpl);

/* A record to print, from klog_message or from librdkafka. */
typedef struct cli_record {
    const char *topic;
    int32_t partition;
    int64_t offset, timestamp;
    const void *key, *value; /* NULL: null */
    size_t key_len, value_len;
    size_t header_count;
    /* header i: 0, or < 0 when it cannot be read */
    int (*header)(const void *src, size_t i, const char **k, size_t *kl, const void **v, size_t *vl);
    const void *src;
} cli_record;
void cli_print_record(FILE *f, const cli_record *r, const cli_out *out);

/* ---- produce --json (tools/jsonl.c) ------------------------------------------------------ */

/* Read f whole into *out (NUL-terminated, malloc'ed).  0, -EFBIG (more
 * than cap bytes), -ENOMEM, -EIO. */
int cli_read_all(FILE *f, size_t cap, char **out, size_t *len);

/* A record of a JSON line: {"key":..,"value":..,"headers":{..},
 * "partition":N,"timestamp":MS}; key and value strings or null (base64
 * with "key_base64"/"value_base64":true); headers an object of strings or
 * consume --format json's array; "topic" and "offset" (consume's output)
 * ignored.  Everything owned, freed by cli_jrec_free. */
typedef struct cli_jrec {
    char *key, *value;       /* NULL: null */
    size_t key_len, value_len;
    bool has_key;
    int32_t partition;       /* KLOG_PARTITION_ANY when absent */
    int64_t timestamp;       /* 0 when absent */
    klog_header *headers;
    size_t nheaders;
} cli_jrec;
/* Parse one line for a topic of nparts partitions: true, or false with
 * why it is refused in why. */
bool cli_jrec_parse(const char *line, int32_t nparts, cli_jrec *r, char *why, size_t whysize);
void cli_jrec_free(cli_jrec *r);

/* Every non-blank line of buf (len bytes) as a cli_jrec: all checked
 * first (a bad one: its line number and why, printed, and nothing sent),
 * then fn(arg, line, record) for each until one returns other than CLI_OK.
 * Returns CLI_OK or the failing status. */
int cli_jsonl_each(const char *ctx, char *buf, size_t len, int32_t nparts,
                   int (*fn)(void *arg, int64_t line, const cli_jrec *r), void *arg);

/* Cap on what produce --json reads. */
#define CLI_JSON_INPUT_MAX ((size_t)1 << 30)

typedef struct remote_produce_opts {
    const char *topic, *keysep, *acks, *compression;
    const klog_header *headers;
    size_t nheaders;
    int32_t partition;    /* KLOG_PARTITION_ANY: the partitioner */
    bool quiet;
    bool json;            /* --json: JSON lines (cli_jrec) */
    const cli_props *props;
} remote_produce_opts;
int remote_produce(const cli_remote *r, const remote_produce_opts *o);

typedef struct remote_consume_opts {
    const char *topic, *group;
    int32_t partition;    /* -1: all */
    bool from_beginning, have_offset, have_ts, quiet;
    bool exit_at_end;     /* stop once every partition read is at its end (kcat -e) */
    int64_t offset, ts, max_messages, timeout_ms;
    const cli_out *out;
    const cli_props *props;
} remote_consume_opts;
int remote_consume(const cli_remote *r, const remote_consume_opts *o);

typedef struct remote_topics_opts {
    const char *ctx, *action;
    const char *const *topics;
    int ntopics;
    int partitions;       /* 0: not given */
    int replication_factor; /* create: 0 not given (the server's default) */
    const char *const *sets;   /* "key=value" */
    int nsets;
    const char *const *unsets;
    int nunsets;
    bool if_not_exists, if_exists, exclude_internal;
} remote_topics_opts;
int remote_topics(const cli_remote *r, const remote_topics_opts *o);

typedef struct remote_groups_opts {
    const char *ctx, *action, *group, *topic;
    bool json;
    int32_t partition;    /* -1: all (reset) */
    int kind;             /* KLOG_RESET_* (reset) */
    int64_t value;
    bool execute;         /* reset: make it (else the plan only: a dry run) */
    bool all_topics;      /* reset: every topic the group has offsets for (topic NULL) */
} remote_groups_opts;
int remote_groups(const cli_remote *r, const remote_groups_opts *o);

/* delete-records: partition -1 for every partition; offset -1: the end. */
int remote_delete_records(const cli_remote *r, const char *topic, int32_t partition, int64_t offset);

/* klog perf in remote mode (remote_perf.c): the records go through
 * librdkafka; cmd_perf.c keeps the statistics and prints the reports
 * through the callbacks, which run on the calling thread. */
typedef struct remote_perf_opts {
    const char *ctx, *topic;
    int64_t records;             /* produce: to send; consume: to read, <= 0 every one there at the start */
    int64_t record_size, throughput, timeout_ms;
    int32_t partition;           /* produce: < 0 the partitioner */
    const char *acks, *compression; /* NULL: 1, none */
    const cli_props *props;      /* -X: librdkafka properties */
    const void *payload;         /* produce: record_size bytes */
    void *arg;
    void (*begin)(void *arg);    /* connected, the clock starts */
    void (*tick)(void *arg);     /* often: progress lines */
    /* produce: a delivery report for a record sent at sent_ns (cli_now_ns),
     * err 0 or librdkafka's code with its text */
    void (*delivered)(void *arg, uint64_t sent_ns, int err, const char *errstr);
    /* consume: a record of bytes (key and value) read at now_ns */
    void (*consumed)(void *arg, uint64_t bytes, uint64_t now_ns);
} remote_perf_opts;
/* *sent: records handed to the producer.  Returns CLI_OK or the exit status
 * of an error it printed (deliveries that failed are the caller's count). */
int remote_perf_produce(const cli_remote *r, const remote_perf_opts *o, int64_t *sent);
/* *want: the records it set out to read. */
int remote_perf_consume(const cli_remote *r, const remote_perf_opts *o, int64_t *want);

/* ---- output shared by the local and the remote commands ------------------------------ */

/* topics describe-configs: the header line of a topic, then one line per
 * key with its value and Kafka's name of its source (DEFAULT_CONFIG,
 * DYNAMIC_TOPIC_CONFIG, ...). */
void topics_print_configs_header(const char *name);
void topics_print_config(const char *key, const char *value, const char *source);

/* topics describe: the first line of a topic ("k=v,k=v" configs). */
void topics_print_topic(const char *name, int partitions, const char *configs);

/* groups describe, text: the group line (generation < 0: "-"), the
 * offsets table header and rows (committed < 0: "-"; end < 0: "-"), the
 * members table header and rows (assignment "t-0,t-1" or "" for none). */
void groups_print_group(const char *group, const char *state, int32_t generation, const char *protocol,
                        size_t members);
void groups_print_offsets_header(void);
void groups_print_offset(const char *group, const char *topic, int32_t partition, int64_t committed,
                         int64_t end, int64_t lag, const char *member_id, const char *client_id);
void groups_print_members_header(void);
void groups_print_member(const char *member_id, const char *client_id, const char *instance_id,
                         const char *assignment);
/* delete-records: one partition's new low watermark (Kafka's line). */
void delete_records_print(const char *topic, int32_t partition, int64_t low_watermark);
void groups_print_reset_header(void);
void groups_print_reset(const char *group, const char *topic, int32_t partition, int64_t offset);

#endif /* KLOG_TOOLS_REMOTE_H */
