#!/bin/bash
# tools/test_cli.sh - end-to-end test of the klog command-line tool.
#
# Usage: test_cli.sh PATH/TO/klog
#
# Creates a topic, produces keyed lines with headers, consumes them back in
# every format, consumes as a group and resets and describes the group,
# dumps a segment, verifies a clean directory (exit 0) and a damaged copy
# (exit 1), damaged small files, a leader-epoch-checkpoint, runs small perf tests, asks every command
# for --help, checks the usage (2) and locked-directory (3) exit codes, and
# that the tool links libklog.so without private symbols of the core; serves a directory to kcat
# (klog serve: the listening line, the listeners file, the lock, the exit codes, SIGTERM).  Topics are also altered:
# partitions added, configuration keys set and deleted.  Run by meson test
# (suite 'tools').
set -u

KLOG=${1:?usage: test_cli.sh PATH/TO/klog}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/klog-cli.XXXXXX")
export KLOG_DIR="$WORK/data"
BG=""
cleanup() {
    if [ -n "$BG" ]; then kill "$BG" 2>/dev/null; wait "$BG" 2>/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# `echo x | expect ...` must count in this shell, not in a pipeline's
# subshell (where a failure would be lost): the last command of a pipeline
# runs here (bash, no job control in a script).
shopt -s lastpipe
FAILS=0
CHECKS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
ok() { CHECKS=$((CHECKS + 1)); }

# expect RC CMD...: run CMD (stdout to $WORK/out, stderr to $WORK/err) and
# check its exit status.
expect() {
    local want=$1; shift
    "$@" >"$WORK/out" 2>"$WORK/err"
    local rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "exit $rc, expected $want: $*"
        sed 's/^/    stderr: /' "$WORK/err" | head -5 >&2
    else
        ok
    fi
}
# contains FILE TEXT: FILE contains TEXT (fixed string)
contains() {
    if grep -qF -- "$2" "$1"; then ok; else fail "$1 lacks '$2'"; sed 's/^/    | /' "$1" | head -10 >&2; fi
}
lines() {
    local n; n=$(wc -l <"$1")
    if [ "$n" -eq "$2" ]; then ok; else fail "$1 has $n lines, expected $2"; sed 's/^/    | /' "$1" | head -10 >&2; fi
}

# ---- topics ----------------------------------------------------------------------
expect 0 "$KLOG" topics create events --partitions 2 --config retention.ms=86400000
contains "$WORK/out" "Created topic events."
expect 1 "$KLOG" topics create events
contains "$WORK/err" "klog: topics create: events: "
expect 0 "$KLOG" topics create events --if-not-exists
expect 1 "$KLOG" topics create 'bad/name'
contains "$WORK/err" "invalid topic name"
expect 0 "$KLOG" topics list
contains "$WORK/out" "events"
expect 0 "$KLOG" topics describe events
contains "$WORK/out" "PartitionCount: 2"
contains "$WORK/out" "retention.ms=86400000"
expect 0 "$KLOG" topics create scratch
expect 0 "$KLOG" topics alter scratch --partitions 3
expect 0 "$KLOG" topics describe scratch
contains "$WORK/out" "PartitionCount: 3"
# topic configuration: set, shown by describe, deleted; a bad key changes nothing
expect 0 "$KLOG" topics alter scratch --config retention.ms=1234 --config cleanup.policy=compact
contains "$WORK/out" "Updated config for topic scratch."
expect 0 "$KLOG" topics describe scratch
contains "$WORK/out" "retention.ms=1234"
contains "$WORK/out" "cleanup.policy=compact"
expect 0 "$KLOG" topics alter scratch --delete-config retention.ms
expect 0 "$KLOG" topics describe scratch
if grep -qF "retention.ms=" "$WORK/out"; then fail "retention.ms still set after --delete-config"; else ok; fi
contains "$WORK/out" "cleanup.policy=compact"
expect 1 "$KLOG" topics alter scratch --config no.such.key=1
lines "$WORK/err" 1
contains "$WORK/err" "klog: topics alter: scratch: no.such.key: unknown configuration key"
expect 1 "$KLOG" topics alter scratch --config linger.ms=5 --config retention.ms=99
lines "$WORK/err" 1
contains "$WORK/err" "klog: topics alter: scratch: linger.ms: a producer key, not a topic key"
expect 1 "$KLOG" topics alter scratch --delete-config no.such.key
lines "$WORK/err" 1
expect 0 "$KLOG" topics describe scratch
if grep -qF "retention.ms=" "$WORK/out"; then fail "a refused alter changed the topic"; else ok; fi
expect 1 "$KLOG" topics alter nosuchtopic --config retention.ms=1
contains "$WORK/err" "no such topic"
expect 2 "$KLOG" topics alter scratch --config retention.ms
expect 2 "$KLOG" topics alter scratch
expect 0 "$KLOG" topics delete scratch
expect 1 "$KLOG" topics describe scratch

# ---- produce and consume in every format --------------------------------------------
printf 'alice:hello\nbob:world\ncarol:third line\ndave:4\n' >"$WORK/in"
expect 0 "$KLOG" produce events --key-separator : --header src=cli --header n=1 --acks all <"$WORK/in"
contains "$WORK/err" "4 records delivered, 0 failed"

expect 0 "$KLOG" consume events --from-beginning --timeout-ms 300
lines "$WORK/out" 4
contains "$WORK/out" "third line"
contains "$WORK/err" "Processed a total of 4 messages"
expect 0 "$KLOG" consume events --from-beginning --timeout-ms 300 --format kv
contains "$WORK/out" "$(printf 'carol\tthird line')"
expect 0 "$KLOG" consume events --from-beginning --timeout-ms 300 --format json
lines "$WORK/out" 4
contains "$WORK/out" '"key":"bob","value":"world","headers":[{"key":"src","value":"cli"},{"key":"n","value":"1"}]'
contains "$WORK/out" '"topic":"events"'
expect 0 "$KLOG" consume events --from-beginning --max-messages 2
lines "$WORK/out" 2
# the default start is the end: nothing new within the timeout
expect 0 "$KLOG" consume events --timeout-ms 200
lines "$WORK/out" 0
# positions: an offset on one partition, a timestamp
P=$(grep -o '"partition":[0-9]*' <("$KLOG" consume events --from-beginning --timeout-ms 200 --format json -q) | head -1 | cut -d: -f2)
expect 0 "$KLOG" consume events --partition "$P" --offset 1 --timeout-ms 200 --format json
contains "$WORK/out" '"offset":1'
expect 0 "$KLOG" consume events --timestamp 0 --timeout-ms 200
lines "$WORK/out" 4
# bytes that are not UTF-8 come back as base64 with a flag
printf 'k\377:v\001\n' | "$KLOG" produce events --key-separator : --partition 0 -q
expect 0 "$KLOG" consume events --partition 0 --from-beginning --timeout-ms 200 --format json
contains "$WORK/out" '"key":"a/8=","key_base64":true,"value":"v\u0001"'
# every codec, a fixed partition
seq 1 100 | "$KLOG" produce events --compression zstd --partition 1 -q || fail "zstd produce"
seq 1 100 | "$KLOG" produce events --compression lz4 --partition 1 -q || fail "lz4 produce"
seq 1 100 | "$KLOG" produce events --compression gzip --partition 1 -q || fail "gzip produce"
seq 1 100 | "$KLOG" produce events --compression snappy --partition 1 -q || fail "snappy produce"
expect 0 "$KLOG" consume events --partition 1 --offset earliest --timeout-ms 300
contains "$WORK/err" "Processed a total of"

# ---- consumer groups -----------------------------------------------------------------
TOTAL=$("$KLOG" consume events --from-beginning --timeout-ms 300 2>/dev/null | wc -l)
expect 0 "$KLOG" consume events --group g1 --from-beginning --max-messages 3
lines "$WORK/out" 3
expect 0 "$KLOG" consume events --group g1 --timeout-ms 500
lines "$WORK/out" $((TOTAL - 3))
expect 0 "$KLOG" groups list
contains "$WORK/out" "g1"
expect 0 "$KLOG" groups describe g1
contains "$WORK/out" "State: Empty"
if awk '$1 == "g1" && $2 == "events" && $6 != 0 { bad = 1 } END { exit bad }' "$WORK/out"; then ok; else fail "lag after consuming everything"; fi
# reset: a dry run by default (Kafka's), which prints the plan and changes nothing
expect 0 "$KLOG" groups reset g1 --topic events --to-earliest
contains "$WORK/out" "NEW-OFFSET"
contains "$WORK/err" "dry run: nothing changed"
if awk '$1 == "g1" && $2 == "events" && $4 != 0 { bad = 1 } END { exit bad }' "$WORK/out"; then ok; else fail "plan to earliest is not 0"; fi
expect 0 "$KLOG" groups describe g1 --format json
if grep -qF '"committed":0' "$WORK/out"; then fail "a dry run reset the offsets"; else ok; fi
expect 0 "$KLOG" groups reset g1 --topic events --to-earliest --dry-run
expect 2 "$KLOG" groups reset g1 --topic events --to-earliest --dry-run --execute
expect 0 "$KLOG" groups reset g1 --topic events --to-earliest --execute
contains "$WORK/out" "NEW-OFFSET"
if grep -qF "dry run" "$WORK/err"; then fail "--execute said dry run"; else ok; fi
# an unknown topic is blamed, not the group (issue 20)
expect 1 "$KLOG" groups reset g1 --topic nosuch --to-earliest
contains "$WORK/err" "klog: groups reset: nosuch: no such topic"
expect 1 "$KLOG" groups reset g1 --topic events --partition 9 --to-earliest
contains "$WORK/err" "events: no partition 9"
expect 2 "$KLOG" groups reset g1 --topic events --all-topics --to-earliest
expect 2 "$KLOG" groups reset g1 --to-earliest
contains "$WORK/err" "--all-topics"
# --to-datetime, Kafka's format: before every record = earliest, far ahead = latest
expect 0 "$KLOG" groups reset g1 --all-topics --to-datetime 2000-01-01T00:00:00.000Z
if awk '$1 == "g1" && $2 == "events" && $4 != 0 { bad = 1 } END { exit bad }' "$WORK/out"; then ok; else fail "datetime before every record is not 0"; fi
expect 0 "$KLOG" groups reset g1 --all-topics --to-datetime 2999-01-01T00:00:00+01:00
if awk '$1 == "g1" && $2 == "events" && $4 == 0 { bad = 1 } END { exit bad }' "$WORK/out"; then ok; else fail "datetime after every record is not the end"; fi
expect 0 "$KLOG" groups reset g1 --topic events --to-datetime 2000-01-01T00:00:00
expect 2 "$KLOG" groups reset g1 --topic events --to-datetime 2026-02-31T00:00:00
expect 2 "$KLOG" groups reset g1 --topic events --to-datetime 1700000000000
expect 0 "$KLOG" groups describe g1 --format json
contains "$WORK/out" '"group":"g1"'
contains "$WORK/out" '"committed":0'
expect 0 "$KLOG" consume events --group g1 --timeout-ms 500
lines "$WORK/out" "$TOTAL"
expect 0 "$KLOG" groups reset g1 --topic events --partition 1 --shift-by -2 --execute
expect 0 "$KLOG" consume events --group g1 --timeout-ms 300
lines "$WORK/out" 2
expect 2 "$KLOG" groups reset g1 --topic events
# describe: rows by topic, then partition
"$KLOG" topics create zz --partitions 3 >/dev/null && "$KLOG" topics create aa --partitions 2 >/dev/null
printf 'a\nb\nc\nd\ne\nf\n' | "$KLOG" produce zz -q && printf 'a\nb\nc\n' | "$KLOG" produce aa -q
"$KLOG" consume zz --group sorted --from-beginning --timeout-ms 300 -q >/dev/null
"$KLOG" consume aa --group sorted --from-beginning --timeout-ms 300 -q >/dev/null
expect 0 "$KLOG" groups describe sorted
awk '$1 == "sorted" { print $2, $3 }' "$WORK/out" >"$WORK/rows"
if sort -k1,1 -k2,2n "$WORK/rows" | cmp -s - "$WORK/rows" && [ "$(wc -l <"$WORK/rows")" -ge 2 ]; then ok; else fail "groups describe rows unsorted: $(tr '\n' ' ' <"$WORK/rows")"; fi
expect 0 "$KLOG" groups reset sorted --all-topics --to-latest
awk '$1 == "sorted" { print $2 }' "$WORK/out" | sort -u | tr '\n' ' ' >"$WORK/rt"
contains "$WORK/rt" "aa zz"
expect 0 "$KLOG" groups delete g1
expect 1 "$KLOG" groups describe g1
contains "$WORK/err" "no such group"

# ---- issue 20: Kafka's habits ----------------------------------------------------------
# Kafka's spellings of the topic keys, and "did you mean"
expect 0 "$KLOG" topics create kspell --config retention.hours=2 --config log.segment.bytes=1048576
expect 0 "$KLOG" topics describe kspell
contains "$WORK/out" "retention.ms=7200000"
contains "$WORK/out" "segment.bytes=1048576"
expect 0 "$KLOG" topics alter kspell --config retention.minutes=3 --config log.cleanup.policy=compact
expect 0 "$KLOG" topics describe kspell
contains "$WORK/out" "retention.ms=180000"
contains "$WORK/out" "cleanup.policy=compact"
expect 2 "$KLOG" topics create kspell2 --config retention.msx=1
contains "$WORK/err" "retention.msx: unknown configuration key (did you mean retention.ms?)"
expect 1 "$KLOG" topics alter kspell --config log.retension.hours=1
contains "$WORK/err" "did you mean log.retention.hours?"
# describe-configs: every topic key, set or default
expect 0 "$KLOG" topics describe-configs kspell
contains "$WORK/out" "All configs for topic kspell are:"
contains "$WORK/out" "$(printf 'retention.ms=180000\tsource=DYNAMIC_TOPIC_CONFIG')"
contains "$WORK/out" "$(printf 'segment.ms=604800000\tsource=DEFAULT_CONFIG')"
contains "$WORK/out" "$(printf 'cleanup.policy=compact\tsource=DYNAMIC_TOPIC_CONFIG')"
lines "$WORK/out" 15
expect 1 "$KLOG" topics describe-configs nosuch
contains "$WORK/err" "no such topic"
# a key of another scope is an error naming its scope, not ignored
expect 2 "$KLOG" produce kspell -X retention.ms=1000 <<<x
contains "$WORK/err" "retention.ms: a topic key, not a producer or consumer key"
expect 2 "$KLOG" consume kspell -X io.backend=posix --timeout-ms 10
contains "$WORK/err" "io.backend: an instance key, not a producer or consumer key"
expect 2 "$KLOG" produce kspell -X linger.msec=5 <<<x
contains "$WORK/err" "did you mean linger.ms?"

"$KLOG" topics create k20 --partitions 2 >/dev/null || fail "create k20"
# produce --property parse.key / key.separator (Kafka's console producer)
printf 'a\tone\nb\ttwo\n' | "$KLOG" produce k20 --property parse.key=true --partition 0 -q || fail "parse.key"
printf 'c=three\n' | "$KLOG" produce k20 --property parse.key=true --property key.separator== --partition 0 -q ||
    fail "key.separator"
# consume --exit-at-end (kcat -e) and Kafka's print.* properties
expect 0 "$KLOG" consume k20 --from-beginning --exit-at-end --property print.key=true --property print.offset=true
lines "$WORK/out" 3
contains "$WORK/out" "$(printf 'Offset:0\ta\tone')"
contains "$WORK/out" "$(printf 'Offset:2\tc\tthree')"
expect 0 "$KLOG" consume k20 --from-beginning -e --property print.partition=true --property print.value=false \
    --property print.key=true --property key.separator=,
contains "$WORK/out" "Partition:0,b"
expect 2 "$KLOG" consume k20 -e --property print.key=yes
expect 2 "$KLOG" consume k20 -e --property print.key=true --format json
# --exit-at-end on an empty partition and with a group
expect 0 "$KLOG" consume k20 --partition 1 --from-beginning -e
lines "$WORK/out" 0
expect 0 "$KLOG" consume k20 --group g20 --from-beginning -e
lines "$WORK/out" 3
# --format TEMPLATE (kcat -f)
expect 0 "$KLOG" consume k20 --from-beginning -e -q --format '%t/%p@%o %k=%s (%S,%K)\n'
contains "$WORK/out" "k20/0@1 b=two (3,1)"
lines "$WORK/out" 3
expect 2 "$KLOG" consume k20 -e --format '%q'
contains "$WORK/err" "unknown %-field"
expect 2 "$KLOG" consume k20 -e --format 'yaml'
# produce --json: JSON lines; a bad line sends nothing and names its line
cat >"$WORK/j" <<'JSON'
{"key":"j1","value":"v1","headers":{"h":"x"},"partition":1,"timestamp":1234}

{"key":null,"value":"v2","partition":1}
JSON
expect 0 "$KLOG" produce k20 --json <"$WORK/j"
contains "$WORK/err" "2 records delivered, 0 failed"
expect 0 "$KLOG" consume k20 --partition 1 --from-beginning -e --format json
contains "$WORK/out" '"partition":1,"offset":0,"timestamp":1234,"key":"j1","value":"v1","headers":[{"key":"h","value":"x"}]'
contains "$WORK/out" '"key":null,"value":"v2"'
# consume's json output goes back in as it is
cp "$WORK/out" "$WORK/j2"
expect 0 "$KLOG" produce k20 --json <"$WORK/j2"
contains "$WORK/err" "2 records delivered"
printf '{"value":"ok"}\n{"value":"ok"}\n{"value":5}\n' >"$WORK/jbad"
expect 1 "$KLOG" produce k20 --json <"$WORK/jbad"
contains "$WORK/err" 'line 3: "value" is not a string or null (nothing sent)'
printf '{"value":"ok"}\nnot json\n' >"$WORK/jbad"
expect 1 "$KLOG" produce k20 --json <"$WORK/jbad"
contains "$WORK/err" "line 2: not JSON"
expect 1 "$KLOG" produce k20 --json <<<'{"value":"ok","partition":7}'
contains "$WORK/err" "line 1: partition 7: the topic has 2"
expect 1 "$KLOG" produce k20 --json <<<'{"valeu":"ok"}'
contains "$WORK/err" 'unknown member "valeu"'
expect 0 "$KLOG" consume k20 --partition 1 --from-beginning -e -q
lines "$WORK/out" 4
expect 2 "$KLOG" produce k20 --json --key-separator : <<<'{}'
# escapes as Python's json.dumps writes them: a surrogate pair is one character
expect 1 "$KLOG" produce k20 --json <<<'{"value":"a\u0000b"}'
contains "$WORK/err" "line 1: \u0000 in a string"
expect 1 "$KLOG" produce k20 --json <<<'{"value":"\ud83d"}'
contains "$WORK/err" "line 1: not JSON"
expect 0 "$KLOG" produce k20 --json --partition 1 <<<'{"key":"emoji","value":"caf\u00e9 \ud83d\ude00","headers":[{"key":"b","value":"aGk=","value_base64":true}]}'
expect 0 "$KLOG" consume k20 --partition 1 --offset 4 -e -q --format '%k=%s|%h\n'
contains "$WORK/out" "$(printf 'emoji=caf\xc3\xa9 \xf0\x9f\x98\x80|b=hi')"
# delete-records (DeleteRecords)
expect 0 "$KLOG" delete-records k20 --partition 0 --offset 2
contains "$WORK/out" "$(printf 'partition: k20-0\tlow_watermark: 2')"
expect 0 "$KLOG" consume k20 --partition 0 --from-beginning -e -q
lines "$WORK/out" 1
expect 0 "$KLOG" delete-records k20 --offset latest
contains "$WORK/out" "$(printf 'partition: k20-1\tlow_watermark: 5')"
expect 1 "$KLOG" delete-records k20 --partition 0 --offset 99
contains "$WORK/err" "past the partition's end"
expect 1 "$KLOG" delete-records nosuch --offset 1
contains "$WORK/err" "nosuch: no such topic"
expect 2 "$KLOG" delete-records k20
expect 2 "$KLOG" delete-records k20 --offset soon

# ---- stats ---------------------------------------------------------------------------
"$KLOG" consume events --group g2 --from-beginning --max-messages 1 -q >/dev/null || fail "consume as g2"
expect 0 "$KLOG" stats
contains "$WORK/out" "events"
expect 0 "$KLOG" stats --format json
contains "$WORK/out" '"topic":"events"'
contains "$WORK/out" '"groups":['
cp "$WORK/out" "$WORK/stats.json"
expect 0 "$KLOG" stats --format prometheus
contains "$WORK/out" 'klog_partition_end_offset{topic="events",partition="0"}'
contains "$WORK/out" 'klog_group_lag{group="g2",topic="events",partition="0"}'

# ---- dump and verify -----------------------------------------------------------------
SEG="$KLOG_DIR/events-1/00000000000000000000.log"
expect 0 "$KLOG" dump "$SEG"
contains "$WORK/out" "baseOffset: 0"
contains "$WORK/out" " OK"
expect 0 "$KLOG" dump --records "$SEG"
contains "$WORK/out" "| offset: 0"
expect 0 "$KLOG" dump "$KLOG_DIR/events-1/00000000000000000000.index" "$KLOG_DIR/events-1/recovery.ckpt" \
    "$KLOG_DIR/topics.meta"
contains "$WORK/out" "checksum: OK"
expect 0 "$KLOG" verify "$KLOG_DIR"
contains "$WORK/out" "clean"
expect 0 "$KLOG" verify --deep "$KLOG_DIR/events-1"

# a damaged copy: flip one byte inside the first batch's records
cp -a "$KLOG_DIR" "$WORK/damaged"
DSEG="$WORK/damaged/events-1/00000000000000000000.log"
BYTE=$(od -An -tu1 -j 70 -N 1 "$DSEG" | tr -d ' ')
printf "$(printf '\\%03o' $((BYTE ^ 255)))" | dd of="$DSEG" bs=1 seek=70 conv=notrunc 2>/dev/null
expect 1 "$KLOG" verify "$WORK/damaged"
contains "$WORK/out" "checksum mismatch"
expect 1 "$KLOG" dump "$DSEG"
contains "$WORK/out" "BAD"

# a crashed copy: the zeroed tail that durable appends write ahead of
# themselves (made by hand here), left in the last segment with no index
# (a crash leaves none for the active segment): a warning, not damage; dump
# says what it is; the next open cuts it
cp -a "$KLOG_DIR" "$WORK/crashed"
CSEG=$(ls "$WORK/crashed/events-1/"*.log | tail -1)
CSIZE=$(stat -c %s "$CSEG")
rm -f "${CSEG%.log}.index" "${CSEG%.log}.timeindex"
truncate -s +1M "$CSEG"
expect 0 "$KLOG" verify "$WORK/crashed"
contains "$WORK/out" "zeroed tail of 1048576 bytes"
expect 0 "$KLOG" dump "$CSEG"
contains "$WORK/out" "zeroed tail: 1048576 bytes"
KLOG_DIR="$WORK/crashed" expect 0 "$KLOG" topics describe events
if [ "$(stat -c %s "$CSEG")" -eq "$CSIZE" ]; then ok; else fail "the open did not cut the zeroed tail of $CSEG"; fi

# damaged small files: dump and verify judge them with the library's own
# reader (lib/storage/layout.h), so what they call damage the library does
cp -a "$KLOG_DIR" "$WORK/small"
printf Z | dd of="$WORK/small/topics.meta" bs=1 seek=20 conv=notrunc 2>/dev/null
expect 1 "$KLOG" verify "$WORK/small"
contains "$WORK/out" "damage: topics.meta: damaged topic metadata"
expect 1 "$KLOG" dump "$WORK/small/topics.meta"
contains "$WORK/out" "checksum: BAD"
KLOG_DIR="$WORK/small" expect 1 "$KLOG" topics list
contains "$WORK/err" "topics.meta: damaged topic metadata"
cp "$KLOG_DIR/topics.meta" "$WORK/small/topics.meta"
SIX="$WORK/small/events-1/00000000000000000000.index"
truncate -s 30 "$SIX"
expect 1 "$KLOG" dump "$SIX"
contains "$WORK/out" "Damaged: 30 bytes: shorter than the 64-byte header"
expect 1 "$KLOG" verify "$WORK/small/events-1"
contains "$WORK/out" "00000000000000000000.index: damaged: 30 bytes"
rm -f "$SIX"
truncate -s 31 "$WORK/small/events-1/recovery.ckpt"
expect 1 "$KLOG" dump "$WORK/small/events-1/recovery.ckpt"
contains "$WORK/out" " BAD"
expect 1 "$KLOG" verify "$WORK/small"
contains "$WORK/out" "recovery.ckpt: damaged (size, magic, version or checksum wrong)"
# the library repairs what it can: the index is rebuilt, the checkpoint rewritten
KLOG_DIR="$WORK/small" expect 0 "$KLOG" topics describe events
expect 0 "$KLOG" verify "$WORK/small"
contains "$WORK/out" "clean"

# a missing topics.meta (issue 19: the next open deleted every partition
# directory as an orphan): verify calls it damage; the next open recovers
# the topics from their directories, every record kept, and writes
# topics.meta again
cp -a "$KLOG_DIR" "$WORK/nometa"
rm "$WORK/nometa/topics.meta"
expect 1 "$KLOG" verify "$WORK/nometa"
contains "$WORK/out" "damage: topics.meta: missing, but partition directories hold records"
KLOG_DIR="$WORK/nometa" expect 0 "$KLOG" topics describe events
contains "$WORK/out" "PartitionCount: 2"
contains "$WORK/out" "retention.ms=-1"
KLOG_DIR="$WORK/nometa" expect 0 "$KLOG" consume events --from-beginning --timeout-ms 300
lines "$WORK/out" "$TOTAL"
expect 0 "$KLOG" verify "$WORK/nometa"
contains "$WORK/out" "clean"

# leader-epoch-checkpoint (Kafka's file; written once a partition leads at
# an epoch above 0, so made by hand here): dump lists it, verify checks it
# with the library's parser, and a malformed one is damage
cp -a "$KLOG_DIR" "$WORK/epochs"
EPF="$WORK/epochs/events-1/leader-epoch-checkpoint"
printf '0\n2\n0 0\n3 1\n' >"$EPF"
expect 0 "$KLOG" dump "$EPF"
contains "$WORK/out" "version: 0 entries: 2"
contains "$WORK/out" "epoch: 3 startOffset: 1"
expect 0 "$KLOG" verify "$WORK/epochs"
contains "$WORK/out" "clean"
printf '0\n2\n0 0\n3 1000000\n' >"$EPF"
expect 0 "$KLOG" verify "$WORK/epochs"
contains "$WORK/out" "warning: events-1/leader-epoch-checkpoint: epoch 3 starts at 1000000, past the log end"
printf '0\n2\n3 0\n1 1\n' >"$EPF"
expect 1 "$KLOG" dump "$EPF"
contains "$WORK/out" "Damaged: line 4: epoch 1 at 1 after epoch 3 at 0"
expect 1 "$KLOG" verify "$WORK/epochs"
contains "$WORK/out" "damage: events-1/leader-epoch-checkpoint: damaged: line 4"
# the damaged partition opens damaged (read-only, KLOG_ECORRUPT); the
# instance and its other partitions work (issue 19: it did not open at all)
KLOG_DIR="$WORK/epochs" expect 0 "$KLOG" topics describe events
contains "$WORK/out" "Partition: 1"
contains "$WORK/out" "Error: KLOG_ECORRUPT"
echo x | KLOG_DIR="$WORK/epochs" expect 0 "$KLOG" produce events --partition 0
echo x | KLOG_DIR="$WORK/epochs" expect 1 "$KLOG" produce events --partition 1
expect 0 "$KLOG" verify --repair "$WORK/epochs"
contains "$WORK/out" "repair: events-1: leader-epoch-checkpoint removed: every batch is in epoch 0"
contains "$WORK/out" "clean"
expect 0 "$KLOG" verify "$WORK/epochs"

# salvage (issue 19): a segment cut below its recovery point is damage; the
# partition opens damaged, and verify --repair cuts it to its last good
# batch, saying what went
cp -a "$KLOG_DIR" "$WORK/salvage"
truncate -s -5 "$(ls "$WORK/salvage/events-1/"*.log | tail -1)"
expect 1 "$KLOG" verify "$WORK/salvage"
contains "$WORK/out" "below the recovery point"
KLOG_DIR="$WORK/salvage" expect 0 "$KLOG" topics describe events
contains "$WORK/out" "Error: KLOG_ECORRUPT"
expect 0 "$KLOG" verify --repair "$WORK/salvage"
contains "$WORK/out" "repair: events-1: cut at offset"
contains "$WORK/out" "bytes dropped"
contains "$WORK/out" "1 partition repaired, 0 failed"
expect 0 "$KLOG" verify "$WORK/salvage"
contains "$WORK/out" "clean"
expect 0 "$KLOG" verify --repair "$WORK/salvage"
contains "$WORK/out" "nothing to repair"
expect 2 "$KLOG" verify --repair --no-such-option "$WORK/salvage"
# a damaged topics.meta: moved aside, the topics come back from their directories
cp -a "$KLOG_DIR" "$WORK/salvage2"
printf Z | dd of="$WORK/salvage2/topics.meta" bs=1 seek=20 conv=notrunc 2>/dev/null
expect 0 "$KLOG" verify --repair "$WORK/salvage2"
contains "$WORK/out" "repair: topics.meta: moved aside to topics.meta.damaged"
[ -f "$WORK/salvage2/topics.meta.damaged" ] && ok || fail "topics.meta.damaged missing"
KLOG_DIR="$WORK/salvage2" expect 0 "$KLOG" topics describe events
contains "$WORK/out" "retention.ms=-1"

# ---- perf ----------------------------------------------------------------------------
expect 0 "$KLOG" topics create perf --partitions 2
expect 0 "$KLOG" perf produce perf --records 5000 --record-size 64 --throughput -1 --acks 1
contains "$WORK/out" "5000 records sent"
contains "$WORK/out" "99.9th"
expect 0 "$KLOG" perf produce perf --records 500 --record-size 16 --throughput 5000 --compression lz4
expect 0 "$KLOG" perf consume perf --records 5500 --timeout-ms 2000
contains "$WORK/out" "data.consumed.in.nMsg"
contains "$WORK/out" ", 5500, "
expect 1 "$KLOG" perf consume perf --records 6000 --timeout-ms 200

# ---- help and usage errors -------------------------------------------------------------
for cmd in "" "topics" "topics create" "topics list" "topics describe" "topics delete" "topics alter" \
           "produce" "consume" "groups" "groups list" "groups describe" "groups reset" "groups delete" \
           "delete-records" "topics describe-configs" \
           "dump" "verify" "perf" "perf produce" "perf consume" "stats" "serve" "mirror" "users" "acls"; do
    # shellcheck disable=SC2086
    expect 0 "$KLOG" $cmd --help
    contains "$WORK/out" "Usage: klog"
done
expect 2 "$KLOG"
expect 2 "$KLOG" nosuchcommand

# ---- users and acls (the files klog serve reads) ----------------------------------------
SEC="$WORK/sec"
mkdir -p "$SEC"
expect 2 "$KLOG" -d "$SEC" users add
expect 2 "$KLOG" -d "$SEC" users frob alice
echo 'pw1' | expect 0 "$KLOG" -d "$SEC" users add alice
echo 'pw2' | expect 0 "$KLOG" -d "$SEC" users add bob --iterations 5000
echo 'pw3' | expect 2 "$KLOG" -d "$SEC" users add 'no spaces'
expect 0 "$KLOG" -d "$SEC" users list
contains "$WORK/out" "alice SCRAM-SHA-256 iterations=4096"
contains "$WORK/out" "bob SCRAM-SHA-512 iterations=5000"
# a field that is the password (the salts and keys are base64: "pw1" can
# turn up inside one by chance, about once in 300 runs)
grep -qE '(^| )pw1( |$)' "$SEC/users" && fail "a password is in the users file" || ok
expect 0 "$KLOG" -d "$SEC" users delete bob
expect 1 "$KLOG" -d "$SEC" users delete bob
expect 2 "$KLOG" -d "$SEC" acls add --allow-principal User:alice --topic t
expect 2 "$KLOG" -d "$SEC" acls add --allow-principal User:alice --operation Fly --topic t
expect 2 "$KLOG" -d "$SEC" acls add --allow-principal alice --operation Read --topic t
expect 2 "$KLOG" -d "$SEC" acls remove
expect 0 "$KLOG" -d "$SEC" acls add --allow-principal User:alice --operation Read --operation Write --topic orders
expect 0 "$KLOG" -d "$SEC" acls add --deny-principal 'User:*' --operation All --topic secret- --resource-pattern-type prefixed
expect 0 "$KLOG" -d "$SEC" acls list --principal User:alice
contains "$WORK/out" "allow User:alice * Read topic literal orders"
contains "$WORK/out" "allow User:alice * Write topic literal orders"
expect 0 "$KLOG" -d "$SEC" acls list --topic secret-x --resource-pattern-type match
contains "$WORK/out" "deny User:* * All topic prefixed secret-"
expect 0 "$KLOG" -d "$SEC" acls remove --principal User:alice --operation Write
contains "$WORK/out" "Write topic literal orders"
expect 0 "$KLOG" -d "$SEC" acls list
[ "$(wc -l < "$WORK/out")" -eq 2 ] && ok || fail "acls list after remove: $(cat "$WORK/out")"
expect 2 "$KLOG" consume
expect 2 "$KLOG" consume events --format xml
contains "$WORK/err" "klog: consume: --format must be value, kv, json or a template"
expect 2 "$KLOG" produce events --no-such-option
expect 2 "$KLOG" consume events --group g --partition 0
expect 2 "$KLOG" dump
KLOG_DIR= expect 2 "$KLOG" verify
KLOG_DIR= expect 2 "$KLOG" topics list
expect 1 "$KLOG" -d "$WORK/nonexistent" topics list

# ---- a directory locked by another process ----------------------------------------------
"$KLOG" consume events --from-beginning --timeout-ms 5000 >"$WORK/bg.out" 2>"$WORK/bg.err" &
BG=$!
for _ in $(seq 1 100); do [ -s "$WORK/bg.out" ] && break; sleep 0.05; done
[ -s "$WORK/bg.out" ] || fail "background consumer did not start"
# writing commands exit 3; reading ones open it read-only (read.only) beside the holder
expect 3 "$KLOG" produce events </dev/null
contains "$WORK/err" "locked by another process"
expect 3 "$KLOG" consume events --group g --timeout-ms 100
contains "$WORK/err" "locked by another process"
expect 0 "$KLOG" topics list
contains "$WORK/out" "events"
contains "$WORK/err" "reading it read-only"
expect 0 "$KLOG" consume events --from-beginning --timeout-ms 300
contains "$WORK/out" "$(head -n 1 "$WORK/bg.out")"
contains "$WORK/err" "reading it read-only"
expect 0 "$KLOG" groups list
expect 0 "$KLOG" stats
contains "$WORK/out" "events"
contains "$WORK/err" "read-only"
# the stats file an application writes (statistics.interval.ms) is shown instead
cp "$WORK/stats.json" "$KLOG_DIR/stats.json"
expect 0 "$KLOG" stats
contains "$WORK/out" "events"
contains "$WORK/err" "open in another process"
# stamped files (klog 0.2): a live writer, a dead one, one that stopped writing
stamp() {   # PID WRITTEN_MS: $WORK/stats.json with klog's stamp
    sed "s/^{/{\"file\":{\"writer_pid\":$1,\"written_ms\":$2,\"interval_ms\":1000},/" "$WORK/stats.json" >"$KLOG_DIR/stats.json"
}
sh -c 'exit 0' &
DEAD=$!
wait "$DEAD"
stamp "$BG" "$(date +%s%3N)"
expect 0 "$KLOG" stats --format json
contains "$WORK/err" "open in another process (pid $BG)"
contains "$WORK/out" '"writer_pid"'
stamp "$DEAD" "$(date +%s%3N)"
expect 0 "$KLOG" stats
contains "$WORK/err" "stale: its writer, pid $DEAD, is gone"
stamp "$BG" "$(( $(date +%s%3N) - 3600000 ))"
expect 0 "$KLOG" stats
contains "$WORK/err" "stale: written 3600"
printf 'klog_stats_file_writer_pid %s\nklog_stats_file_timestamp_seconds %s\nklog_stats_file_interval_seconds 1.000\n' \
    "$DEAD" "$(date +%s)" >"$KLOG_DIR/stats.prom"
expect 0 "$KLOG" stats --format prometheus
contains "$WORK/err" "stale: its writer, pid $DEAD, is gone"
rm -f "$KLOG_DIR/stats.json" "$KLOG_DIR/stats.prom"
# dump and verify need no lock
expect 0 "$KLOG" verify "$KLOG_DIR"
expect 0 "$KLOG" dump "$SEG"
kill "$BG"
wait "$BG"
BGRC=$?
BG=""
[ "$BGRC" -eq 0 ] && ok || fail "background consumer exited $BGRC after SIGTERM"
expect 0 "$KLOG" topics list

# ---- serve: the listening line, the lock, SIGTERM ---------------------------------------
SRV="$WORK/srv"
expect 2 "$KLOG" -d "$SRV" serve -X nosuch.key=1
contains "$WORK/err" "nosuch.key"
expect 2 "$KLOG" -d "$SRV" serve -X num.network.threads=0
expect 2 "$KLOG" -d "$SRV" serve extra-argument
"$KLOG" -d "$SRV" serve --listen 127.0.0.1:0 -X num.partitions=2 >"$WORK/srv.out" 2>"$WORK/srv.err" &
BG=$!
for _ in $(seq 1 100); do grep -q 'listening on' "$WORK/srv.out" && break; sleep 0.05; done
contains "$WORK/srv.out" "klog serve: listening on tcp://127.0.0.1:"
ADDR=$(sed -n 's|^klog serve: listening on tcp://||p' "$WORK/srv.out")
case $ADDR in 127.0.0.1:0 | "") fail "serve printed no bound port: '$ADDR'" ;; *) ok ;; esac
# DIR/serve.listeners names the server while it runs; commands on DIR talk
# to it (remote mode, when built with librdkafka; test/server/test_cli_client.py
# tests it) instead of exiting 3
contains "$SRV/serve.listeners" "tcp://$ADDR"
if "$KLOG" --version | grep -q "remote mode: librdkafka"; then
    expect 0 "$KLOG" -d "$SRV" topics list
    # perf over the protocol (librdkafka), as Kafka's perf tools measure a broker
    expect 0 "$KLOG" -d "$SRV" topics create perf
    expect 0 "$KLOG" -d "$SRV" perf produce perf --records 2000 --record-size 10 --acks all
    contains "$WORK/out" "2000 records sent, "
    contains "$WORK/out" "99.9th."
    expect 0 "$KLOG" -d "$SRV" perf consume perf
    contains "$WORK/out" ", 2000, "
    expect 1 "$KLOG" -d "$SRV" perf consume perf --records 2500 --timeout-ms 300
    contains "$WORK/err" "2000 of 2500 records read before the timeout"
    expect 1 "$KLOG" -d "$SRV" perf produce nosuch --records 1
    contains "$WORK/err" "nosuch: no such topic"
else
    expect 3 "$KLOG" -d "$SRV" topics list
    contains "$WORK/err" "remote mode is not built"
fi
# klog stats on a served DIR: the stats files klog serve writes (every 5 s, the
# first at once)
for _ in $(seq 1 100); do [ -e "$SRV/stats.prom" ] && break; sleep 0.05; done
expect 0 "$KLOG" -d "$SRV" stats
contains "$WORK/err" "is open in another process (pid $BG): showing its $SRV/stats.json"
expect 0 "$KLOG" -d "$SRV" stats --format prometheus
contains "$WORK/out" "klog_"
expect 3 "$KLOG" -d "$SRV" serve --listen 127.0.0.1:0
expect 1 "$KLOG" -d "$WORK/srv2" serve --listen "$ADDR"
contains "$WORK/err" "klog: serve: listening on tcp://$ADDR: "
if command -v kcat >/dev/null; then
    printf 'ada:hello\nbob:world\n' | timeout 60 kcat -b "$ADDR" -P -t served -K: 2>"$WORK/kcat.err" && ok ||
        fail "kcat -P against klog serve: $(head -3 "$WORK/kcat.err")"
    expect 0 timeout 60 kcat -b "$ADDR" -C -t served -e -q -f '%k %s\n'
    contains "$WORK/out" "ada hello"
    contains "$WORK/out" "bob world"
    expect 0 timeout 60 kcat -b "$ADDR" -L -t served
    contains "$WORK/out" 'topic "served" with 2 partitions'
else
    echo "test_cli: kcat not found: serve's client checks skipped" >&2
fi
kill -TERM "$BG"
wait "$BG"
BGRC=$?
BG=""
[ "$BGRC" -eq 0 ] && ok || fail "klog serve exited $BGRC after SIGTERM"
contains "$WORK/srv.err" "klog serve: stopping"
[ -e "$SRV/serve.listeners" ] && fail "klog serve left serve.listeners behind after SIGTERM" || ok
if command -v kcat >/dev/null; then
    expect 0 "$KLOG" -d "$SRV" consume served --from-beginning --timeout-ms 200 --format kv
    contains "$WORK/out" "hello"
fi

# ---- mirror: usage errors (its runs against Kafka sides: test/mirror) -----------------
expect 2 "$KLOG" -d "$SRV" mirror --topics t
contains "$WORK/err" "one of --to and --from"
expect 2 "$KLOG" -d "$SRV" mirror --to 127.0.0.1:1 --from 127.0.0.1:1 --topics t
# (the probe has no --topics: a build with the mirror refuses it at once,
# where a complete command would spend its 30 s connect timeout on port 1)
if "$KLOG" mirror --to 127.0.0.1:1 2>&1 | grep -q 'built without the mirror'; then
    echo "test_cli: klog built without the mirror: its usage checks skipped" >&2
else
    expect 2 "$KLOG" -d "$SRV" mirror --to 127.0.0.1:1
    contains "$WORK/err" "--topics is needed"
    expect 2 "$KLOG" -d "$SRV" mirror --to 127.0.0.1:1 --topics t -X mirror.nosuch=1
    contains "$WORK/err" "unknown key"
    expect 2 "$KLOG" -d "$SRV" mirror --to 127.0.0.1:1 --topics t -X kafka.no.such.property=1
    expect 2 "$KLOG" -d "$SRV" mirror --to 127.0.0.1:1 --topics 'a,,b'
    expect 2 "$KLOG" -d "$SRV" mirror --to 127.0.0.1:1 --topics t --rename ab
    expect 2 "$KLOG" -d "$SRV" mirror --to 127.0.0.1:1 --topics t --connect-timeout x
    expect 1 "$KLOG" -d "$WORK/no-such-dir" mirror --to 127.0.0.1:1 --topics t
fi

# ---- the tool is built on libklog.so ---------------------------------------------------
# It links the shared library and carries none of the core's private code:
# only lib/format (kf_) and lib/storage/layout.h (kl_), through klog_layout.
if command -v nm >/dev/null && command -v readelf >/dev/null; then
    readelf -d "$KLOG" | grep -q 'NEEDED.*libklog\.so' && ok || fail "klog does not link libklog.so"
    nm --defined-only "$KLOG" >"$WORK/syms" 2>&1
    contains "$WORK/syms" " kl_meta_parse" # a symbol table to look in (not stripped)
    PRIV=$(awk '{print $NF}' "$WORK/syms" | grep -E '^(ks|kg|kio|kt|kp|kc)_|^klog__' | head -5 | tr '\n' ' ')
    [ -z "$PRIV" ] && ok || fail "klog carries private symbols of the core: $PRIV"
    nm -D --defined-only "$KLOG" | awk '{print $NF}' | grep -E '^(ks|kg|kio|kt|kp|kc|kf|kl)_|^klog' >"$WORK/dsyms"
    [ -s "$WORK/dsyms" ] && fail "klog exports symbols of the core: $(head -3 "$WORK/dsyms" | tr '\n' ' ')" || ok
else
    echo "test_cli: nm or readelf not found: symbol checks skipped" >&2
fi

echo "test_cli: $CHECKS checks passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
