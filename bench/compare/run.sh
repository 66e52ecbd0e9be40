#!/usr/bin/env bash
# bench/compare/run.sh - klog side by side with SQLite, LMDB, RocksDB, Redis
# Streams, NATS JetStream and a raw floor, in one run on this machine.
#
#   bench/compare/run.sh [--quick] [--cold] [--reps N] [--dir DIR] [--out DIR] [--charts]
#                        [--bin PATH] [-- bench_compare options...]
#
#   --quick     tiny sizes, one repetition: checks that everything runs
#   --cold      also read each consume workload (consume, consume-16p) in a
#               fresh process per read and back end, as a user's first run:
#               bench_compare re-executes itself on the store the parent
#               wrote and closed, once with the page cache as the writer left
#               it and once with the store's files dropped from it
#               (posix_fadvise DONTNEED per file: no root needed, no other
#               file touched); the -cold and -dropped tables.  Back ends that
#               can reopen a store only (klog, raw, lmdb)
#   --reps N    repetitions per cell (default 3): median and min..max
#   --dir DIR   where the stores and the servers' data go (default $TMPDIR
#               or /tmp); point it at the disk you want measured
#   --out DIR   results.txt (the tables), results.tsv, *.dat and the PNG
#               charts (default bench/compare/out)
#   --charts    also copy the charts to bench/charts/ (small PNGs to commit)
#   --bin PATH  the bench_compare executable (default: ./build.sh build, then
#               build/bench/compare/bench_compare)
#   --baseline PATH  another bench_compare (an older build) run in the same
#               invocation, against the same servers, before and after --bin
#               (baseline, new, baseline, new): a before/after table whose
#               halves saw the same machine state; its tables go to
#               results.txt with the others, each under a heading
#   after --: passed to bench_compare (--backends klog,lmdb  --workloads consume)
#
# Starts redis-server and nats-server on free 127.0.0.1 ports with their data
# in a temporary directory under --dir, and always stops them (by PID) and
# removes that directory on exit.  With --quick, exits 77 (skipped) when
# either server binary is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

quick=0 cold=0 reps=3 dir=${TMPDIR:-/tmp} out="$here/out" charts=0 bin="" baseline=""
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --cold) cold=1 ;;
        --reps) reps=$2; shift ;;
        --dir) dir=$2; shift ;;
        --out) out=$2; shift ;;
        --charts) charts=1 ;;
        --bin) bin=$2; shift ;;
        --baseline) baseline=$2; shift ;;
        --) shift; extra=("$@"); break ;;
        *) echo "usage: $0 [--quick] [--cold] [--reps N] [--dir DIR] [--out DIR] [--charts] [--bin PATH] [--baseline PATH] [-- options]" >&2
           exit 2 ;;
    esac
    shift
done

redis_bin=$(command -v redis-server || true)
nats_bin=$(command -v nats-server || true)
[ -z "$nats_bin" ] && [ -x /usr/sbin/nats-server ] && nats_bin=/usr/sbin/nats-server
if [ -z "$redis_bin" ] || [ -z "$nats_bin" ]; then
    echo "run.sh: redis-server or nats-server not installed (Debian: redis-server nats-server; ./build.sh build installs them)" >&2
    [ $quick = 1 ] && exit 77
    exit 1
fi

if [ -z "$bin" ]; then
    "$root/build.sh" build
    bin="$root/build/bench/compare/bench_compare"
fi
if [ ! -x "$bin" ]; then
    echo "run.sh: $bin not built (meson builds it only when sqlite3, lmdb, rocksdb, hiredis and libnats are found)" >&2
    exit 1
fi

mkdir -p "$dir" "$out"
rm -f "$out"/compare-*.png "$out"/*.dat
tmp=$(mktemp -d "$dir/bench_compare_servers.XXXXXX")
pids=()
stop_servers() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 100); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

port_free() {   # nothing accepts connections on 127.0.0.1:$1
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() {   # PID PORT: 0 once the port accepts, 1 if PID died or 10 s passed
    for _ in $(seq 200); do
        kill -0 "$1" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# start NAME CMD...: runs CMD with @PORT@ replaced by a free port, sets $port
start() {
    local name=$1; shift
    local try p pid args a
    for try in 1 2 3 4 5 6 7 8; do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        port_free "$p" || continue
        args=()
        for a in "$@"; do args+=("${a//@PORT@/$p}"); done
        "${args[@]}" >"$tmp/$name.out" 2>&1 &
        pid=$!
        pids+=("$pid")
        if wait_port "$pid" "$p"; then
            port=$p
            echo "run.sh: $name on 127.0.0.1:$p (pid $pid)"
            return 0
        fi
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "run.sh: could not start $name; its output:" >&2
    cat "$tmp/$name.out" >&2
    exit 1
}

mkdir -p "$tmp/redis" "$tmp/nats"
start redis-server "$redis_bin" --bind 127.0.0.1 --port @PORT@ --dir "$tmp/redis" --save "" \
    --appendonly yes --appendfsync no --auto-aof-rewrite-percentage 0 --protected-mode yes --daemonize no
redis_port=$port
start nats-server "$nats_bin" -js -sd "$tmp/nats" -a 127.0.0.1 -p @PORT@
nats_port=$port

results="$out/results.txt"
{
    echo "bench_compare, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
         "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "data: $dir on $(df -T "$dir" | awk 'NR==2 {print $2 " (" $1 ")"}')"
    echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
    echo "servers: $("$redis_bin" --version | cut -d' ' -f1-3), $("$nats_bin" --version)"
    quickarg=()
    [ $quick = 1 ] && quickarg=(--quick)
    [ $cold = 1 ] && quickarg+=(--cold)
    one_run() {   # BIN OUTDIR
        "$1" "${quickarg[@]}" --reps "$reps" --dir "$dir" --out "$2" \
            --redis "127.0.0.1:$redis_port" --nats "nats://127.0.0.1:$nats_port" "${extra[@]}"
    }
    if [ -n "$baseline" ]; then
        mkdir -p "$out/baseline"
        for round in 1 2; do
            echo "=== round $round: baseline ($baseline)"
            one_run "$baseline" "$out/baseline"
            echo "=== round $round: this build ($bin)"
            one_run "$bin" "$out"
        done
    else
        one_run "$bin" "$out"
    fi
    echo "load after the run: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
} 2>&1 | tee "$results"   # pipefail: a failed run stops here

if command -v gnuplot >/dev/null; then
    gnuplot -e "indir='$out'; outdir='$out'" "$here/charts.gp"
    echo "run.sh: tables in $results, charts in $out/*.png"
    if [ $charts = 1 ]; then
        mkdir -p "$root/bench/charts"
        for f in "$out"/compare-*.png; do cp "$f" "$root/bench/charts/"; done
        echo "run.sh: charts copied to bench/charts/"
    fi
else
    echo "run.sh: gnuplot not installed (Debian: gnuplot-nox): no charts; tables in $results"
fi
