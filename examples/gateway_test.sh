#!/usr/bin/env bash
# examples/gateway_test.sh GATEWAY UPLINK - the store-and-forward scenario of
# examples/iot_gateway.c against examples/uplink.c (meson test, suite
# 'examples'; the binaries come as arguments, nothing is built here).
#
#   1. uplink and gateway up; readings flow.
#   2. kill -9 the gateway, restart it on the same directory: forwarding
#      resumes from the committed offsets.
#   3. stop the uplink until the disk budget has deleted readings that were
#      never forwarded; meanwhile sample the disk use, from the gateway's
#      --status (the library's count) and from the files themselves: both
#      stay within the budget plus a small slack.
#   4. start the uplink again: forwarding resumes from the log's new start;
#      SIGTERM the gateway, which drains what is left and exits.
#   5. check the uplink's output: every offset of every partition from 0 to
#      the end was forwarded or lies in a gap the gateway reported, and each
#      gap was below the log's start when it was noticed (and is still
#      below it when the test ends); every sensor's
#      sequence numbers run from 0 to the last one the log holds, any number
#      missing accounted for by gap offsets between its neighbours; a
#      sensor's readings keep their order; duplicates are allowed (counted).
#
# Every wait is for a condition, with a generous timeout; processes are
# started and stopped by PID.  GATEWAY_TEST_KEEP=1 keeps the temporary
# directory (logs, data, the uplink's output).
set -u

GW=${1:?usage: gateway_test.sh IOT_GATEWAY UPLINK}
UP=${2:?usage: gateway_test.sh IOT_GATEWAY UPLINK}
SENSORS=6
RATE=60                  # per sensor: 360 readings/s, ~48 KB/s
BUDGET=262144            # 256 KiB: about 5 s of readings
SLACK=32768              # two segments: index files and a roll in flight

T=$(mktemp -d)
D=$T/data
OUT=$T/uplink.out
gw_pid=
up_pid=
PORT=

cleanup() {
    [ -n "$gw_pid" ] && kill -9 "$gw_pid" 2>/dev/null
    [ -n "$up_pid" ] && kill -9 "$up_pid" 2>/dev/null
    wait 2>/dev/null
    if [ -n "${GATEWAY_TEST_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    echo "--- gateway log (last 40 lines)"; tail -n 40 "$T/gateway.log" 2>/dev/null
    echo "--- uplink log"; tail -n 20 "$T/uplink.log" 2>/dev/null
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
received() { grep -c '^r ' "$OUT" 2>/dev/null || true; }
at_least() { [ "$(received)" -ge "$1" ]; }
port_ready() { [ -s "$T/port" ] || { alive "$up_pid" || fail "uplink exited (port $PORT taken?)"; false; }; }
status() { "$GW" --dir "$D" --status 2>>"$T/status.err"; }

start_uplink() {
    rm -f "$T/port"
    "$UP" --out "$OUT" --port "${PORT:-0}" --port-file "$T/port" >>"$T/uplink.log" 2>&1 &
    up_pid=$!
    wait_for 30 "the uplink to listen" port_ready
    PORT=$(cat "$T/port")
}

stop_uplink() {
    kill -TERM "$up_pid"
    wait "$up_pid" || fail "uplink exited with status $?"
    up_pid=
}

start_gateway() {
    "$GW" --dir "$D" --uplink "127.0.0.1:$PORT" --sensors $SENSORS --rate $RATE --budget $BUDGET \
        --interval 1 --drain 60 >>"$T/gateway.log" 2>&1 &
    gw_pid=$!
}

# 1. Readings flow.
start_uplink
start_gateway
echo "uplink on 127.0.0.1:$PORT (pid $up_pid), gateway pid $gw_pid, data in $D"
wait_for 60 "300 readings at the uplink" at_least 300

# 2. kill -9 and restart: forwarding resumes where the commits left it.
kill -9 "$gw_pid"
wait "$gw_pid" 2>/dev/null
gw_pid=
before=$(received)
echo "killed the gateway (-9) after $before readings reached the uplink; restarting it"
start_gateway
wait_for 60 "forwarding to resume after kill -9" at_least $((before + 300))
grep -q 'from offset [0-9]* (committed)' "$T/gateway.log" ||
    fail "the restarted gateway did not resume from committed offsets"

# 3. Link down: the budget must delete readings that were never forwarded,
#    and the disk stays within the budget meanwhile.
stop_uplink
echo "uplink stopped; sampling disk use until the budget drops unforwarded readings"
max_lib=0 max_files=0 samples=0 after_loss=0
deadline=$((SECONDS + 90))
while [ $after_loss -lt 10 ]; do
    [ $SECONDS -ge $deadline ] && fail "the budget never deleted unforwarded readings (is the gateway producing?)"
    alive "$gw_pid" || fail "the gateway died while the uplink was down"
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

# 4. Link back: forwarding resumes past the deleted readings; then a clean stop.
start_uplink
echo "uplink restarted (pid $up_pid)"
gap_seen() { grep -q '^g ' "$OUT"; }
wait_for 60 "the gateway to report the deleted readings to the uplink" gap_seen
now=$(received)
wait_for 60 "forwarding to go on after the gap" at_least $((now + 300))
kill -TERM "$gw_pid"
wait "$gw_pid" || fail "the gateway exited with status $? after SIGTERM"
gw_pid=
grep -q ' 0 left to forward' "$T/gateway.log" || fail "the gateway stopped with readings left to forward"
stop_uplink
tail -n 1 "$T/uplink.log"
grep -q 'gaps not explained\|ERROR' "$T/gateway.log" && fail "the gateway reported a gap the budget does not explain"

# 5. Nothing lost that the budget did not delete.
final=$(status) || fail "iot_gateway --status on the stopped directory failed"
echo "$final" | grep -E '^(partition|lag|disk)'
awk '$1 == "lag" && $2 != 0 { exit 1 }' <<<"$final" || fail "lag is not 0 after the drain"
awk '
function bad(msg) { if (nbad++ < 10) print "  " msg; }
FNR == NR {                                     # the final --status
    if ($1 == "partition") { startoff[$2] = $4; endoff[$2] = $6; committed[$2] = $8 }
    if ($1 == "sensor") lastseq[$2] = $4
    next
}
$1 == "c" { next }
$1 == "g" {                                     # g PART FROM TO START
    ngaps++
    if (!($3 < $4)) bad("gap notice with an empty range: " $0)
    if ($5 < $4) bad("gap not below the log start when noticed: " $0)
    if (startoff[$2] < $4) bad("gap past the start of the log (" startoff[$2] ") after the run: " $0)
    for (o = $3; o < $4; o++) gap[$2, o] = 1
    next
}
$1 == "r" {                                     # r SENSOR SEQ PART OFFSET
    s = $2; q = $3 + 0; p = $4; o = $5 + 0; n++
    if ((p, o) in at) { dups++; if (at[p, o] != s " " q) bad("offset " p "/" o " carried two readings") }
    else at[p, o] = s " " q
    if ((s, q) in where) { if (where[s, q] != p " " o) bad(s " seq " q " stored twice: " where[s, q] " and " p " " o) }
    else where[s, q] = p " " o
    if (!(s in part)) part[s] = p
    else if (part[s] != p) bad(s " in two partitions")
    if (!(s in maxq) || q > maxq[s]) maxq[s] = q
    if (!(s in minq) || q < minq[s]) minq[s] = q
    next
}
{ bad("unexpected line: " $0) }
END {
    # every offset forwarded or deleted by the budget
    for (p in endoff) {
        if (committed[p] != endoff[p]) bad("partition " p ": committed " committed[p] " != end " endoff[p])
        for (o = 0; o < endoff[p]; o++)
            if (!((p, o) in at) && !((p, o) in gap)) { bad("partition " p " offset " o " neither forwarded nor deleted"); break }
    }
    # every sequence number of every sensor, or its absence explained
    for (s in minq) {
        if (minq[s] != 0) bad(s ": the first reading forwarded is seq " minq[s] ", not 0")
        if (!(s in lastseq) || lastseq[s] != maxq[s]) bad(s ": last seq forwarded " maxq[s] ", last in the log " lastseq[s])
        prev = -1
        for (q = minq[s]; q <= maxq[s]; q++) {
            if (!((s, q) in where)) continue
            if (prev >= 0) {
                split(where[s, prev], A, " "); split(where[s, q], B, " ")
                if (B[2] + 0 <= A[2] + 0) bad(s ": seq " q " stored before seq " prev)
                if (q > prev + 1) {
                    deleted = 0
                    for (o = A[2] + 1; o < B[2] + 0; o++) if (((A[1], o) in gap) && !((A[1], o) in at)) deleted++
                    if (q - prev - 1 > deleted) bad(s ": seqs " prev + 1 ".." q - 1 " missing, only " deleted " offsets between were deleted by the budget")
                    lost += q - prev - 1
                }
            }
            prev = q
        }
        nsensors++
    }
    if (nsensors != '"$SENSORS"') bad("readings of " nsensors " sensors, expected '"$SENSORS"'")
    if (ngaps == 0) bad("no gap notice: the budget deleted nothing unforwarded")
    printf "uplink output: %d readings of %d sensors, %d duplicates, %d lost to the budget in %d gap notices\n", n, nsensors, dups, lost, ngaps
    exit nbad > 0
}' <(echo "$final") "$OUT" || fail "the uplink output does not account for every reading"
echo "PASS"
