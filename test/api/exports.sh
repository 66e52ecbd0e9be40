#!/bin/sh
# The shared libraries export the public API and nothing else.  libklog:
# every dynamic symbol it defines is a klog_ function declared in
# include/klog/, and every such function is exported, except the
# klog_testing_ ones, which are libklog-testing's (klog/testing.h), and
# the klog_mirror_ ones, which are libklog-mirror's (klog/mirror.h): each of
# those libraries exports exactly its own, and so does libklog-server (the
# functions of klog/server.h, klog/transport.h, klog/replication.h).
# libklog-mirror is checked when it was built (LIBKLOG_MIRROR given);
# libklog never links librdkafka, nor libssl since the server left it.
# lib/klog.map names every libklog symbol in the version node of the release
# that added it (no glob): the map lists exactly what libklog exports, and
# each symbol is exported under its node's version (nm -D's NAME@@NODE);
# the same for lib/klog-server.map and libklog-server.  libklog's
# KLOG_PRIVATE node (internals for libklog-server) is no API: left out of
# the checks, but none of its names may be declared in include/klog/.
#   exports.sh LIBKLOG INCLUDE_DIR LIBKLOG_TESTING KLOG_MAP LIBKLOG_SERVER SERVER_MAP [LIBKLOG_MIRROR]
set -eu
lib=$1; incdir=$2; tlib=$3; map=$4; slib=$5; smap=$6; mlib=${7:-}
declared_all=$(grep -h -o -E '\bklog_[a-z0-9_]+[[:space:]]*\(' "$incdir"/*.h | sed -E 's/[[:space:]]*\($//' | sort -u)
# (names the server's headers mention that another header declares, as
# klog_open in an example, are libklog's)
declared_other=$(ls "$incdir"/*.h | grep -v -e '/server\.h$' -e '/transport\.h$' -e '/replication\.h$' |
    xargs grep -h -o -E '\bklog_[a-z0-9_]+[[:space:]]*\(' | sed -E 's/[[:space:]]*\($//' | sort -u)
declared_server=$(cat "$incdir"/server.h "$incdir"/transport.h "$incdir"/replication.h |
    grep -h -o -E '\bklog_[a-z0-9_]+[[:space:]]*\(' | sed -E 's/[[:space:]]*\($//' | sort -u |
    grep -v -x -F "$declared_other")
bad=0
# check NAME LIB DECLARED: LIB's defined dynamic symbols are exactly DECLARED.
check() {
    name=$1 exported=$(nm -D --defined-only "$2" | awk '$2 ~ /^[TDBR]$/ {print $3}' | grep -v '@@KLOG_PRIVATE$' |
        sed 's/@.*//' | sort -u)
    declared=$3
    for s in $exported; do
        case " $(echo $declared) " in *" $s "*) ;; *) echo "$name: exported but not declared public: $s"; bad=1;; esac
    done
    for s in $declared; do
        case " $(echo $exported) " in *" $s "*) ;; *) echo "$name: declared but not exported: $s"; bad=1;; esac
    done
    echo "$name: $(echo "$exported" | wc -w) symbols"
}
check libklog "$lib" "$(echo "$declared_all" | grep -v -e '^klog_testing_' -e '^klog_mirror_' |
    grep -v -x -F "$declared_server")"
check libklog-testing "$tlib" "$(echo "$declared_all" | grep '^klog_testing_')"
check libklog-server "$slib" "$declared_server"
# checkmap NAME MAP LIB: the version script's "NAME;" lines under "NODE {"
# (comments stripped; KLOG_PRIVATE left out) against LIB's NAME@@NODE.
checkmap() {
    mapped=$(sed -e 's,/\*.*\*/,,g' -e '/\/\*/,/\*\//d' "$2" |
        awk '/^[A-Z0-9_.]+ *\{/ {node=$1} /^ *klog_[a-z0-9_]+;/ && node != "KLOG_PRIVATE" {sub(/;/, ""); print $1 "@@" node}' |
        sort -u)
    if grep -v '^ *\*' "$2" | grep -q 'klog_[a-z0-9_]*\*'; then
        echo "$1: a glob; list each symbol in its release's node"; bad=1
    fi
    versioned=$(nm -D --defined-only "$3" | awk '$2 ~ /^[TDBR]$/ {print $3}' | grep -v '@@KLOG_PRIVATE$' | sort -u)
    for s in $versioned; do
        case " $(echo $mapped) " in *" $s "*) ;; *) echo "$1: exported but not listed (or under another node): $s"; bad=1;; esac
    done
    for s in $mapped; do
        case " $(echo $versioned) " in *" $s "*) ;; *) echo "$1: listed but not exported: $s"; bad=1;; esac
    done
    echo "$1: $(echo "$mapped" | wc -w) symbols in $(echo "$mapped" | sed 's/.*@@//' | sort -u | wc -l) version nodes"
}
checkmap klog.map "$map" "$lib"
checkmap klog-server.map "$smap" "$slib"
for s in $(nm -D --defined-only "$lib" | awk '$3 ~ /@@KLOG_PRIVATE$/ {print $3}' | sed 's/@.*//'); do
    case " $(echo $declared_all) " in *" $s "*) echo "KLOG_PRIVATE: declared public: $s"; bad=1;; esac
done
if [ -n "$mlib" ]; then
    check libklog-mirror "$mlib" "$(echo "$declared_all" | grep '^klog_mirror_')"
fi
if ldd "$lib" | grep -q -e rdkafka -e libssl; then
    echo "libklog: links librdkafka or libssl"; bad=1
fi
[ $bad -eq 0 ] && echo "exports: all public" && echo "1 passed, 0 failed"
exit $bad
