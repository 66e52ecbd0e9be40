#!/bin/sh
# The shared libraries export the public API and nothing else.  libklog:
# every dynamic symbol it defines is a klog_ function declared in
# include/klog/, and every such function is exported, except the
# klog_testing_ ones, which are libklog-testing's (klog/testing.h), and
# the klog_mirror_ ones, which are libklog-mirror's (klog/mirror.h): each of
# those libraries exports exactly its own.  libklog-mirror is checked when
# it was built (LIBKLOG_MIRROR given); libklog never links librdkafka.
# lib/klog.map names every libklog symbol in the version node of the release
# that added it (no glob): the map lists exactly what libklog exports, and
# each symbol is exported under its node's version (nm -D's NAME@@NODE).
#   exports.sh LIBKLOG INCLUDE_DIR LIBKLOG_TESTING KLOG_MAP [LIBKLOG_MIRROR]
set -eu
lib=$1; incdir=$2; tlib=$3; map=$4; mlib=${5:-}
declared_all=$(grep -h -o -E '\bklog_[a-z0-9_]+[[:space:]]*\(' "$incdir"/*.h | sed -E 's/[[:space:]]*\($//' | sort -u)
bad=0
# check NAME LIB DECLARED: LIB's defined dynamic symbols are exactly DECLARED.
check() {
    name=$1 exported=$(nm -D --defined-only "$2" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sed 's/@.*//' | sort -u)
    declared=$3
    for s in $exported; do
        case " $(echo $declared) " in *" $s "*) ;; *) echo "$name: exported but not declared public: $s"; bad=1;; esac
    done
    for s in $declared; do
        case " $(echo $exported) " in *" $s "*) ;; *) echo "$name: declared but not exported: $s"; bad=1;; esac
    done
    echo "$name: $(echo "$exported" | wc -w) symbols"
}
check libklog "$lib" "$(echo "$declared_all" | grep -v -e '^klog_testing_' -e '^klog_mirror_')"
check libklog-testing "$tlib" "$(echo "$declared_all" | grep '^klog_testing_')"
# The version script: "NAME;" lines under "NODE {", comments stripped.
mapped=$(sed -e 's,/\*.*\*/,,g' -e '/\/\*/,/\*\//d' "$map" |
    awk '/^[A-Z0-9_.]+ *\{/ {node=$1} /^ *klog_[a-z0-9_]+;/ {sub(/;/, ""); print $1 "@@" node}' | sort -u)
if grep -v '^ *\*' "$map" | grep -q 'klog_[a-z0-9_]*\*'; then
    echo "klog.map: a glob; list each symbol in its release's node"; bad=1
fi
versioned=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sort -u)
for s in $versioned; do
    case " $(echo $mapped) " in *" $s "*) ;; *) echo "klog.map: exported but not listed (or under another node): $s"; bad=1;; esac
done
for s in $mapped; do
    case " $(echo $versioned) " in *" $s "*) ;; *) echo "klog.map: listed but not exported: $s"; bad=1;; esac
done
echo "klog.map: $(echo "$mapped" | wc -w) symbols in $(echo "$mapped" | sed 's/.*@@//' | sort -u | wc -l) version nodes"
if [ -n "$mlib" ]; then
    check libklog-mirror "$mlib" "$(echo "$declared_all" | grep '^klog_mirror_')"
fi
if ldd "$lib" | grep -q rdkafka; then
    echo "libklog: links librdkafka"; bad=1
fi
[ $bad -eq 0 ] && echo "exports: all public" && echo "1 passed, 0 failed"
exit $bad
