#!/bin/sh
# The shared library exports the public API and nothing else: every dynamic
# symbol it defines is a klog_ function declared in include/klog/, and every
# function declared there is exported.
set -eu
lib=$1; incdir=$2
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sed 's/@.*//' | sort -u)
declared=$(grep -h -o -E '\bklog_[a-z0-9_]+[[:space:]]*\(' "$incdir"/*.h | sed -E 's/[[:space:]]*\($//' | sort -u)
bad=0
for s in $exported; do
    case " $(echo $declared) " in *" $s "*) ;; *) echo "exported but not declared public: $s"; bad=1;; esac
done
for s in $declared; do
    case " $(echo $exported) " in *" $s "*) ;; *) echo "declared but not exported: $s"; bad=1;; esac
done
n=$(echo "$exported" | wc -w)
[ $bad -eq 0 ] && echo "exports: $n symbols, all public" && echo "1 passed, 0 failed"
exit $bad
