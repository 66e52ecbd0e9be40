#!/usr/bin/env bash
# examples/gateway_test.sh GATEWAY KLOG - the store-and-forward scenario of
# examples/iot_gateway.c, forwarding through klog's mirror to a Kafka
# cluster: `klog serve` on a second directory, in its own process (meson
# test, suite 'examples'; the binaries come as arguments, nothing is built
# here).
#
#   1. the Kafka side and the gateway up; readings flow.
#   2. kill -9 the gateway, restart it on the same directory: forwarding
#      resumes from the committed offsets.
#   3. stop the Kafka side until the disk budget has deleted readings that
#      were never forwarded; meanwhile sample the disk use, from the
#      gateway's --status (the library's count) and from the files
#      themselves: both stay within the budget plus a small slack.
#   4. start the Kafka side again (same port): forwarding resumes from the
#      log's new start and the mirror logs the gap; SIGTERM the gateway,
#      which drains what is left and exits.
#   5. check what Kafka holds (read back from the served directory, each
#      record naming its klog source in the header klog.src): every offset
#      of every partition from 0 to the end was forwarded or lies in a gap
#      the mirror logged, below the log's start; every sensor's sequence
#      numbers run from 0 to the last one the log holds, any number missing
#      accounted for by gap offsets between its neighbours; a sensor's
#      readings keep their order; duplicates are allowed (counted).
#
# Every wait is for a condition, with a generous timeout; processes are
# started and stopped by PID.  GATEWAY_TEST_KEEP=1 keeps the temporary
# directory (logs, both data directories).
set -u

GW=${1:?usage: gateway_test.sh IOT_GATEWAY KLOG}
KLOG=${2:?usage: gateway_test.sh IOT_GATEWAY KLOG}
SENSORS=6
RATE=60                  # per sensor: 360 readings/s, ~48 KB/s
BUDGET=262144            # 256 KiB: about 5 s of readings
SLACK=32768              # two segments: index files and a roll in flight

T=$(mktemp -d)
D=$T/data
K=$T/kafka
gw_pid=
srv_pid=
PORT=0

cleanup() {
    [ -n "$gw_pid" ] && kill -9 "$gw_pid" 2>/dev/null
    [ -n "$srv_pid" ] && kill -9 "$srv_pid" 2>/dev/null
    wait 2>/dev/null
    if [ -n "${GATEWAY_TEST_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    echo "--- gateway log (last 40 lines)"; tail -n 40 "$T/gateway.log" 2>/dev/null
    echo "--- klog serve log"; tail -n 20 "$T/serve.log" 2>/dev/null
    exit 1
}

# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s.
wait_for() {
    local limit=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@"; do
        [ $SECONDS -ge $deadline ] && fail "timed out after $limit s waiting for: $what"
        sleep 0.2
    done
}

alive() { kill -0 "$1" 2>/dev/null; }
status() { "$GW" --dir "$D" --status 2>>"$T/status.err"; }
# forwarded by the running gateway (its status file names its pid)
forwarded() { status | awk -v pid="$gw_pid" '$1 == "pid" && $2 == pid { mine = 1 } $1 == "forwarded" && mine { print $2 }'; }
forwarded_at_least() { local f; f=$(forwarded); [ -n "$f" ] && [ "$f" -ge "$1" ]; }

# The Kafka side: klog serve on $K, port 0 the first time, the same port after.
listening() { grep -q 'listening on' "$T/serve.out" 2>/dev/null || { alive "$srv_pid" || return 2; false; }; }
start_kafka() {
    local try
    for try in $(seq 1 50); do
        : >"$T/serve.out"
        "$KLOG" -d "$K" serve --listen "tcp://127.0.0.1:$PORT" >"$T/serve.out" 2>>"$T/serve.log" &
        srv_pid=$!
        local deadline=$((SECONDS + 30)) rc=1
        while [ $SECONDS -lt $deadline ]; do
            listening; rc=$?
            [ $rc -ne 1 ] && break
            sleep 0.1
        done
        [ $rc -eq 0 ] && break
        wait "$srv_pid" 2>/dev/null   # exited (the port still held a moment): again
        srv_pid=
        sleep 0.2
    done
    [ -n "$srv_pid" ] || fail "klog serve could not listen on port $PORT"
    PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.out")
}

stop_kafka() {
    kill -TERM "$srv_pid"
    wait "$srv_pid" || fail "klog serve exited with status $?"
    srv_pid=
}

start_gateway() {
    "$GW" --dir "$D" --kafka "127.0.0.1:$PORT" --sensors $SENSORS --rate $RATE --budget $BUDGET \
        --interval 1 --drain 60 >>"$T/gateway.log" 2>&1 &
    gw_pid=$!
}

# 1. Readings flow.
start_kafka
start_gateway
echo "klog serve on 127.0.0.1:$PORT (pid $srv_pid), gateway pid $gw_pid, data in $D"
wait_for 60 "300 readings acknowledged by Kafka" forwarded_at_least 300

# 2. kill -9 and restart: forwarding resumes where the commits left it.
kill -9 "$gw_pid"
wait "$gw_pid" 2>/dev/null
gw_pid=
echo "killed the gateway (-9); restarting it"
start_gateway
wait_for 60 "forwarding to resume after kill -9" forwarded_at_least 300
grep -q 'mirror: readings\[[0-9]*\] -> readings: from offset [0-9]* (committed)' "$T/gateway.log" ||
    fail "the restarted gateway did not resume from committed offsets"

# 3. Link down: the budget must delete readings that were never forwarded,
#    and the disk stays within the budget meanwhile.
stop_kafka
echo "Kafka side stopped; sampling disk use until the budget drops unforwarded readings"
max_lib=0 max_files=0 samples=0 after_loss=0
deadline=$((SECONDS + 90))
while [ $after_loss -lt 10 ]; do
    [ $SECONDS -ge $deadline ] && fail "the budget never deleted unforwarded readings (is the gateway producing?)"
    alive "$gw_pid" || fail "the gateway died while the Kafka side was down"
    s=$(status) || fail "iot_gateway --status failed"
    used=$(awk '$1 == "disk_used" { print $2 }' <<<"$s")
    files=$(find "$D" -type f \( -name '*.log' -o -name '*.index' -o -name '*.timeindex' \) -printf '%s\n' \
                2>/dev/null | awk '{ n += $1 } END { print n + 0 }')
    [ -n "$used" ] || fail "no disk_used in --status: $s"
    [ "$used" -gt "$max_lib" ] && max_lib=$used
    [ "$files" -gt "$max_files" ] && max_files=$files
    [ "$used" -le $((BUDGET + SLACK)) ] || fail "disk use $used (library) over the budget $BUDGET + $SLACK"
    [ "$files" -le $((BUDGET + SLACK)) ] || fail "disk use $files (files) over the budget $BUDGET + $SLACK"
    samples=$((samples + 1))
    # Lost: a partition's log now starts past what the group committed.
    if [ $after_loss -gt 0 ] || awk '$1 == "partition" && $6 > $4 && $4 > ($8 < 0 ? 0 : $8) { f = 1 }
                                     END { exit !f }' <<<"$s"; then
        after_loss=$((after_loss + 1))
    fi
    sleep 0.3
done
echo "disk use over $samples samples: at most $max_lib bytes (library), $max_files bytes (files);" \
     "budget $BUDGET"
grep -q 'mirror: link down' "$T/gateway.log" || fail "the mirror did not notice the link going down"

# 4. Link back: forwarding resumes past the deleted readings; then a clean stop.
start_kafka
echo "Kafka side restarted (pid $srv_pid, port $PORT)"
gap_seen() { grep -q 'mirror: gap: readings\[' "$T/gateway.log"; }
wait_for 90 "the mirror to report the deleted readings" gap_seen
now=$(forwarded)
wait_for 90 "forwarding to go on after the gap" forwarded_at_least $((now + 300))
kill -TERM "$gw_pid"
wait "$gw_pid" || fail "the gateway exited with status $? after SIGTERM"
gw_pid=
grep -q ' 0 left to forward' "$T/gateway.log" || fail "the gateway stopped with readings left to forward"
stop_kafka

# 5. Nothing lost that the budget did not delete.
final=$(status) || fail "iot_gateway --status on the stopped directory failed"
echo "$final" | grep -E '^(partition|lag|disk)'
awk '$1 == "lag" && $2 != 0 { exit 1 }' <<<"$final" || fail "lag is not 0 after the drain"
"$KLOG" -d "$K" consume readings --from-beginning --format json --timeout-ms 3000 -q >"$T/kafka.json" \
    2>"$T/consume.err" || fail "reading the Kafka side back: $(cat "$T/consume.err")"
echo "$final" >"$T/final.status"
/usr/bin/python3 - "$T/kafka.json" "$T/gateway.log" "$SENSORS" "$T/final.status" <<'PY' ||
import json, re, sys
kafka_file, log_file, nsensors, status_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
bad = []
def error(msg):
    if len(bad) < 10:
        print("  " + msg)
    bad.append(msg)
start, end, committed, lastseq = {}, {}, {}, {}
for line in open(status_file):
    f = line.split()
    if f and f[0] == "partition":
        p = int(f[1]); start[p], end[p], committed[p] = int(f[3]), int(f[5]), int(f[7])
    elif f and f[0] == "sensor":
        lastseq[f[1]] = int(f[3])
gaps = set()
ngaps = 0
for line in open(log_file):
    m = re.search(r"mirror: gap: readings\[(\d+)\]: \d+ records? \(offsets (\d+)\.\.(\d+)\)", line)
    if m:
        p, a, b = int(m.group(1)), int(m.group(2)), int(m.group(3))
        ngaps += 1
        if b >= start[p]:
            error("gap %d..%d of partition %d not below the log start %d after the run" % (a, b, p, start[p]))
        gaps.update((p, o) for o in range(a, b + 1))
at, where, dups, n = {}, {}, 0, 0
last_kafka = {}
for line in open(kafka_file):
    r = json.loads(line)
    src = [h["value"] for h in r["headers"] if h["key"] == "klog.src"]
    if len(src) != 1:
        error("a record without klog.src: %s" % line.strip()); continue
    _, sp, so = src[0].rsplit("/", 2)
    p, o = int(sp), int(so)
    if r["partition"] != p:
        error("klog partition %d went to Kafka partition %d" % (p, r["partition"]))
    v = json.loads(r["value"])
    s, q = v["sensor"], v["seq"]
    if r["key"] != s:
        error("key %r for %s" % (r["key"], s))
    n += 1
    if (p, o) in at:
        dups += 1
        if at[(p, o)] != (s, q):
            error("offset %d/%d carried two readings" % (p, o))
        continue
    at[(p, o)] = (s, q)
    if o <= last_kafka.get(p, -1):
        error("partition %d: offset %d after %d in Kafka" % (p, o, last_kafka[p]))
    last_kafka[p] = o
    if (s, q) in where and where[(s, q)] != (p, o):
        error("%s seq %d stored twice" % (s, q))
    where[(s, q)] = (p, o)
for p in end:
    if committed[p] != end[p]:
        error("partition %d: committed %d != end %d" % (p, committed[p], end[p]))
    for o in range(end[p]):
        if (p, o) not in at and (p, o) not in gaps:
            error("partition %d offset %d neither forwarded nor in a gap" % (p, o)); break
lost = 0
sensors = sorted({s for s, _ in where})
for s in sensors:
    qs = sorted(q for ss, q in where if ss == s)
    if qs[0] != 0:
        error("%s: the first reading forwarded is seq %d, not 0" % (s, qs[0]))
    if lastseq.get(s) != qs[-1]:
        error("%s: last seq forwarded %d, last in the log %s" % (s, qs[-1], lastseq.get(s)))
    for a, b in zip(qs, qs[1:]):
        (pa, oa), (pb, ob) = where[(s, a)], where[(s, b)]
        if pa != pb:
            error("%s in two partitions" % s)
        if ob <= oa:
            error("%s: seq %d stored before seq %d" % (s, b, a))
        if b > a + 1:
            deleted = sum(1 for o in range(oa + 1, ob) if (pa, o) in gaps and (pa, o) not in at)
            if b - a - 1 > deleted:
                error("%s: seqs %d..%d missing, only %d offsets between deleted by the budget" % (s, a + 1, b - 1, deleted))
            lost += b - a - 1
if len(sensors) != nsensors:
    error("readings of %d sensors, expected %d" % (len(sensors), nsensors))
if ngaps == 0:
    error("no gap logged: the budget deleted nothing unforwarded")
print("Kafka holds %d readings of %d sensors, %d duplicates, %d lost to the budget in %d gaps logged"
      % (n, len(sensors), dups, lost, ngaps))
sys.exit(1 if bad else 0)
PY
    fail "Kafka does not account for every reading"
echo "PASS"
