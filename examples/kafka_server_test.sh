#!/usr/bin/env bash
# examples/kafka_server_test.sh KAFKA_SERVER - examples/kafka_server.c
# against a real Kafka client, kcat (meson test, suite 'examples'; the
# binary comes as the argument, nothing is built here).
#
#   1. start it on 127.0.0.1:0 on a fresh directory; read the bound URL
#      from its "listening on" line;
#   2. produce two records with kcat -P (one keyed), check the example
#      printed both with their partition, offset and key;
#   3. SIGTERM it by PID: it exits 0 (its consumer leaves the group,
#      committing its position);
#   4. start it again on the same directory and produce one more: only the
#      new record is printed (the group resumed from its commit); SIGTERM.
#
# Skips (77) without kcat.  Every wait is bounded; the example is stopped
# by PID.
set -u

EX=${1:?usage: kafka_server_test.sh KAFKA_SERVER}
command -v kcat >/dev/null || { echo "kcat not installed: skipped"; exit 77; }

T=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    for f in "$T"/run*.out "$T"/run*.err "$T"/kcat.err; do
        [ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
    done
    exit 1
}

# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.1 s.
wait_for() {
    local limit=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@"; do
        [ $SECONDS -ge $deadline ] && fail "timed out after $limit s waiting for: $what"
        kill -0 "$pid" 2>/dev/null || fail "the example exited while waiting for: $what"
        sleep 0.1
    done
}
has() { grep -qxF -- "$2" "$1"; }

# start RUN: the example on a free port; sets pid and ADDR (HOST:PORT).
start() {
    "$EX" "$T/data" 127.0.0.1:0 >"$T/$1.out" 2>"$T/$1.err" &
    pid=$!
    wait_for 30 "the listening line" grep -q '^kafka_server: listening on tcp://' "$T/$1.out"
    ADDR=$(sed -n 's|^kafka_server: listening on tcp://||p' "$T/$1.out")
    case $ADDR in
    127.0.0.1:0 | "") fail "no bound port in the listening line: '$ADDR'" ;;
    127.0.0.1:*) ;;
    *) fail "unexpected address '$ADDR'" ;;
    esac
}

# stop: SIGTERM by PID, the exit status must be 0.
stop() {
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -ge $deadline ] && fail "still running 30 s after SIGTERM"
        sleep 0.1
    done
    wait "$pid"
    local rc=$?
    pid=
    [ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM"
}

produce() {
    timeout 60 kcat -b "$ADDR" -P -t greetings "$@" 2>>"$T/kcat.err" || fail "kcat -P $* failed"
}

start run1
printf 'hello\n' | produce
printf 'ada:hello, ada\n' | produce -K:
wait_for 30 "the first record" has "$T/run1.out" "greetings/0@0 hello"
wait_for 30 "the keyed record" has "$T/run1.out" "greetings/0@1 key=ada hello, ada"
stop
[ "$(grep -c '^greetings/' "$T/run1.out")" -eq 2 ] || fail "run 1 printed other records than the two produced"

start run2
printf 'again\n' | produce
wait_for 30 "the record of the second run" has "$T/run2.out" "greetings/0@2 again"
stop
[ "$(grep -c '^greetings/' "$T/run2.out")" -eq 1 ] ||
    fail "run 2 printed records the group had already committed"
echo "kafka_server: kcat's records read in-process, position resumed after a restart"
