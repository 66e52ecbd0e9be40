/*
 * tools/cli.h - what the files of the klog command-line tool share.
 *
 * The tool is one executable, `klog`, with Kafka-shaped subcommands.  Every
 * subcommand is a function `int cmd_x(int argc, char **argv)` whose argv[0]
 * is its own name and whose return value is the process exit status:
 *
 *   0  success
 *   1  failure (an operation failed, a delivery failed, damage found)
 *   2  usage error (bad option, missing argument, unsupported request)
 *   3  the data directory is locked by another process (KLOG_ELOCKED)
 *
 * Errors are reported as ONE line on stderr, "klog: <what>: <why>".
 * Everything but dump and verify goes through the public API
 * (include/klog/); dump and verify read the files themselves with the
 * record batch parser of lib/format (the internal core is linked statically
 * into this tool) and their own readers of the index and checkpoint files.
 */
#ifndef KLOG_TOOLS_CLI_H
#define KLOG_TOOLS_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <klog/klog.h>

enum {
    CLI_OK = 0,
    CLI_FAIL = 1,
    CLI_USAGE = 2,
    CLI_LOCKED = 3,
};

/* The data directory from -d/--dir at the top level (NULL: not given;
 * subcommands fall back to KLOG_DIR). */
extern const char *cli_global_dir;

/* Set by SIGINT/SIGTERM once cli_signals() has been called. */
extern volatile sig_atomic_t cli_stop;
void cli_signals(void);

/* "klog: <ctx>: <message>\n" on stderr; returns CLI_USAGE, adding a hint to
 * run `klog <help> --help`. */
__attribute__((format(printf, 3, 4)))
int cli_usage(const char *ctx, const char *help, const char *fmt, ...);
/* The topic of a one-topic command: *topic from --topic, or the one
 * operand left after getopt (argv[optind]); CLI_USAGE printed when there is
 * none, or more than one. */
int cli_topic_operand(const char *ctx, int argc, char **argv, int optind_, const char **topic);
/* "klog: <ctx>: <message>\n"; returns CLI_FAIL. */
__attribute__((format(printf, 2, 3)))
int cli_err(const char *ctx, const char *fmt, ...);
/* "klog: <ctx>: <what>: <errbuf or klog_strerror(rc)>\n" (what may be
 * NULL); returns the exit status for rc: CLI_LOCKED for KLOG_ELOCKED,
 * CLI_FAIL otherwise. */
int cli_fail(const char *ctx, const char *what, int rc, const char *errbuf);
/* Exit status for a klog return code. */
int cli_status(int rc);

/*
 * Parse the options of a subcommand with getopt_long (opterr off, our own
 * messages).  Call with *state = 0 first; returns the option value, -1 at
 * the end (positional arguments are then argv[optind..argc-1]), or '?'
 * after printing a usage error (the caller returns CLI_USAGE).
 */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *lo,
               const char *ctx, const char *help);

/* Strict integer parsing: the whole string, in range.  Return false when
 * the text is not such a number. */
bool cli_i64(const char *s, int64_t *out);
bool cli_int(const char *s, int min, int max, int *out);

/* The data directory for a command: -d, then KLOG_DIR.  Prints a usage
 * error and returns NULL when there is none. */
const char *cli_dir(const char *ctx, const char *help, const char *opt_dir);

/* Open the data directory through the public API.  Unless `create`, the
 * directory must already exist (a typo must not create a new data
 * directory).  conf may be NULL.  Returns CLI_OK with *k set, or the exit
 * status after printing the error. */
int cli_open(const char *ctx, const char *dir, bool create, const klog_conf *conf, klog **k);

/* Check that topic exists in k and has `partition` (ignored when < 0).
 * Returns CLI_OK with *nparts set, or the exit status after printing the
 * error. */
int cli_check_topic(const char *ctx, klog *k, const char *topic, int32_t partition, int *nparts);

/* Parse "key=value" into conf (ctx for errors).  Returns CLI_OK, CLI_USAGE
 * (no '='), or CLI_USAGE with the library's message for a bad key/value. */
int cli_conf_kv(const char *ctx, klog_conf *conf, const char *kv);
int cli_conf_set(const char *ctx, klog_conf *conf, const char *key, const char *value);

/* Kafka's --to-datetime: YYYY-MM-DDTHH:mm:SS[.sss] then Z, +HH:MM, -HH:MM
 * (or +HHMM) or nothing (local time, as Kafka's tool takes it).  False when
 * the text is not such a time. */
bool cli_datetime_ms(const char *s, int64_t *ms);

/* Wall clock in ms; monotonic clock in ns. */
int64_t cli_wall_ms(void);
uint64_t cli_now_ns(void);

/* JSON output helpers.  cli_json_bytes writes a JSON string for bytes that
 * are valid UTF-8, and otherwise base64; it returns true when it used
 * base64 (the caller then adds a "<name>_base64":true flag). */
void cli_json_str(FILE *f, const char *s);
bool cli_json_bytes(FILE *f, const void *p, size_t n);
bool cli_utf8_valid(const void *p, size_t n);
void cli_base64(FILE *f, const void *p, size_t n);
/* Bytes for a human: printable ASCII as is, the rest as \xNN, \n, \t... */
void cli_escaped(FILE *f, const void *p, size_t n);

/* A tiny JSON reader, enough for the stats.json that an application
 * holding the data directory writes (statistics.interval.ms), which
 * `klog stats` shows as text.  Nothing the library returns in memory is
 * parsed: groups are read through klog_group_info_get. */
typedef enum { CJ_NULL, CJ_BOOL, CJ_NUM, CJ_STR, CJ_ARR, CJ_OBJ } cj_type;
typedef struct cj {
    cj_type type;
    double num;
    char *str;              /* CJ_STR; object member name in key */
    char *key;
    struct cj *child, *next; /* first element/member, next sibling */
} cj;
cj *cj_parse(const char *text); /* NULL on malformed input or no memory */
void cj_free(cj *v);
const cj *cj_get(const cj *obj, const char *key);   /* NULL when absent */
const char *cj_str(const cj *obj, const char *key); /* NULL when absent/not a string */
int64_t cj_int(const cj *obj, const char *key, int64_t dflt);

/* Subcommands. */
int cmd_topics(int argc, char **argv);
int cmd_produce(int argc, char **argv);
int cmd_consume(int argc, char **argv);
int cmd_groups(int argc, char **argv);
int cmd_delete_records(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_perf(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_serve(int argc, char **argv);
/* The consumer groups in Prometheus text (cmd_stats.c): klog_group_members,
 * klog_group_committed_offset, klog_group_lag, and with exporter_names
 * kafka_exporter's kafka_consumergroup_* too.  0 or an error code. */
int cli_prom_groups(FILE *f, klog *k, bool exporter_names);
int cmd_mirror(int argc, char **argv);
int cmd_promote(int argc, char **argv);
int cmd_users(int argc, char **argv);
int cmd_acls(int argc, char **argv);

#endif /* KLOG_TOOLS_CLI_H */
