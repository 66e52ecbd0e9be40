#!/bin/sh
# Every public header compiles warning-free as C++ (C++11, 14, 17 and 20,
# -Wall -Wextra -Werror -pedantic), alone and through klog/klog.h, and the
# initialiser macros users write in C++ (KLOG_RECORD_INIT) compile there
# too: C++ programs include these headers as they are.  Skips (77) without
# a C++ compiler.
#   cxx_headers.sh INCLUDE_DIR
set -eu
inc=$1
cxx=${CXX:-c++}
command -v "$cxx" >/dev/null 2>&1 || { echo "skipped: no C++ compiler ($cxx)"; exit 77; }
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
bad=0 n=0
for std in c++11 c++14 c++17 c++20; do
    for h in "$inc"/klog/*.h; do
        name=klog/$(basename "$h")
        printf '#include <%s>\nint main() { return 0; }\n' "$name" >"$t/one.cpp"
        if ! "$cxx" -std=$std -Wall -Wextra -Werror -pedantic -I"$inc" -fsyntax-only "$t/one.cpp" >"$t/log" 2>&1; then
            echo "FAIL: $name as $std:"; sed 's/^/  /' "$t/log" | head -20; bad=1
        fi
        n=$((n + 1))
    done
    cat >"$t/use.cpp" <<'EOF'
#include <klog/klog.h>
#include <klog/testing.h>
#include <klog/transport.h>
int main()
{
    klog_record r = KLOG_RECORD_INIT;
    r.value = "v";
    r.value_len = 1;
    const char *v = nullptr;
    return klog_version(&v) > 0 && r.struct_size == sizeof r && r.partition == KLOG_PARTITION_ANY ? 0 : 1;
}
EOF
    if ! "$cxx" -std=$std -Wall -Wextra -Werror -pedantic -I"$inc" -fsyntax-only "$t/use.cpp" >"$t/log" 2>&1; then
        echo "FAIL: KLOG_RECORD_INIT as $std:"; sed 's/^/  /' "$t/log" | head -20; bad=1
    fi
done
echo "$n header compilations as C++ (c++11..c++20)"
[ $bad -eq 0 ] && echo "1 passed, 0 failed"
exit $bad
