#!/usr/bin/env bash
# test/install/install_test.sh - klog as its users get it (meson test, suite
# 'install'; test/install/meson.build passes the arguments).
#
#   install_test.sh install BUILD_ROOT SOURCE_ROOT SANITIZE PREFIX LIBDIR INCLUDEDIR MANDIR
#     `meson install --destdir` of BUILD_ROOT into a temporary directory, then:
#     every header of include/klog/ installed, unchanged; klog.pc; the shared
#     and static libraries; libklog-testing and klog-testing.pc, and a program
#     built with them; libklog-server and klog-server.pc, a program that
#     serves an instance built with them (shared, and static with
#     --static), and libklog.so without libssl; klog(7), klog-format(5) and every section 3 page
#     of man/, and a section 3 page for every KLOG_API function of the
#     installed headers; hello.c compiled with the flags of the installed
#     klog.pc (relocated with --define-variable=prefix=DESTDIR/PREFIX) under
#     -std=c11 -pedantic -Wall -Wextra -Werror, run against the installed
#     libklog.so (LD_LIBRARY_PATH; ldd must resolve it there), and linked
#     again against libklog.a with `pkg-config --static` (which checks the
#     private requirements of klog.pc); the headers compile as C++ too;
#     the README's hello-world (its Install section) built with pkg-config
#     and run; a CMake project with find_package(klog VERSION) and
#     klog::klog (LIBDIR/cmake/klog) built and run, C and C++, and a
#     version it cannot serve refused.
#
#   install_test.sh subproject SOURCE_ROOT SANITIZE
#     test/install/subproject/, a project that says dependency('klog'),
#     configured with klog as its subproject (subprojects/klog a symlink to
#     SOURCE_ROOT, --force-fallback-for=klog) in the parent's default
#     build type (debug) with klog's -Werror: builds everything (tool,
#     examples, benchmarks), runs hello, installs into a DESTDIR (tool, man
#     pages, Python, CMake files); then configured with -Dklog:tools=false
#     examples, bench and python off: none of those targets defined or
#     installed (meson introspect).
#
# Both skip (77) in a sanitizer build: its libraries need the sanitizer
# runtime, which a plain user program does not link.
set -eu

mode=${1:?usage: install_test.sh install|subproject ...}
shift
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# run LOG CMD...: run quietly; on failure show the log.
run() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        echo "command failed: $*"
        tail -n 40 "$log"
        return 1
    fi
}

skip_sanitized() {
    if [ "$1" != none ] && [ -n "$1" ]; then
        echo "skipped: sanitizer build (b_sanitize=$1); an installed library is checked in plain builds"
        exit 77
    fi
}

# abs DIR: an install dir option made absolute under the prefix.
abs() { case $1 in /*) echo "$1" ;; *) echo "$PREFIX/$1" ;; esac; }

if [ "$mode" = install ]; then
    BUILD=$1 SRC=$2 SANITIZE=$3 PREFIX=$4
    skip_sanitized "$SANITIZE"
    LIBDIR=$(abs "$5") INCDIR=$(abs "$6") MANDIR=$(abs "$7")
    DEST=$T/dest
    run "$T/install.log" meson install -C "$BUILD" --destdir "$DEST" --no-rebuild ||
        { echo "FAIL: meson install"; exit 1; }
    echo "installed into $DEST$PREFIX"

    # libklog-mirror (klog/mirror.h) is installed when it was built (librdkafka).
    MIRROR=
    [ -e "$DEST$LIBDIR/libklog-mirror.so" ] && MIRROR=1

    # Headers, unchanged.
    for h in "$SRC"/include/klog/*.h; do
        [ "$(basename "$h")" = mirror.h ] && [ -z "$MIRROR" ] && continue
        f=$DEST$INCDIR/klog/$(basename "$h")
        if [ ! -f "$f" ]; then fail "header not installed: $f"
        elif ! cmp -s "$h" "$f"; then fail "installed header differs from the source: $f"; fi
    done

    # Libraries and klog.pc.
    PC=$DEST$LIBDIR/pkgconfig/klog.pc
    [ -f "$PC" ] || fail "klog.pc not installed at $PC"
    [ -f "$DEST$LIBDIR/pkgconfig/klog-testing.pc" ] || fail "klog-testing.pc not installed"
    [ -f "$DEST$LIBDIR/pkgconfig/klog-server.pc" ] || fail "klog-server.pc not installed"
    for l in libklog.so libklog.so.0 libklog.a libklog-testing.so libklog-testing.so.0 libklog-server.so \
             libklog-server.so.0 libklog-server.a; do
        [ -e "$DEST$LIBDIR/$l" ] || fail "$l not installed in $DEST$LIBDIR"
    done

    # Man pages: the overview, the format, every page of man/, and one page
    # for every function the installed headers export.
    M=$DEST$MANDIR
    [ -f "$M/man7/klog.7" ] || fail "man7/klog.7 not installed"
    [ -f "$M/man5/klog-format.5" ] || fail "man5/klog-format.5 not installed"
    for p in "$SRC"/man/*.3; do
        [ -f "$M/man3/$(basename "$p")" ] || fail "man page in man/ not installed: $(basename "$p")"
    done
    for fn in $(sed -n 's/.*KLOG_API[^(]*[ *]\(klog_[a-z0-9_]*\)(.*/\1/p' "$DEST$INCDIR"/klog/*.h | sort -u); do
        [ -f "$M/man3/$fn.3" ] || fail "no man page installed for the public function $fn (man3/$fn.3)"
    done
    echo "checked $(ls "$DEST$INCDIR"/klog/*.h | wc -l) headers, $(ls "$M"/man3/klog_*.3 | wc -l) man3 pages"

    # A program built against the installed package.
    if [ -f "$PC" ]; then
        export PKG_CONFIG_PATH=$DEST$LIBDIR/pkgconfig
        pc() { pkg-config --define-variable=prefix="$DEST$PREFIX" "$@" klog; }
        cflags=$(pc --cflags) libs=$(pc --libs)
        echo "pkg-config: $cflags $libs"
        case " $cflags $libs " in
            *" -I$DEST"*" -L$DEST"*) ;;
            *) fail "pkg-config flags do not point into the install tree: $cflags $libs" ;;
        esac
        CC=${CC:-cc}
        # shellcheck disable=SC2086  # flag lists
        if run "$T/cc.log" $CC -std=c11 -pedantic -Wall -Wextra -Werror $cflags -o "$T/hello" "$SRC/test/install/hello.c" $libs; then
            if ! LD_LIBRARY_PATH=$DEST$LIBDIR ldd "$T/hello" | grep -q "libklog.so.0 => $DEST"; then
                fail "hello does not resolve libklog.so from the install tree: $(LD_LIBRARY_PATH=$DEST$LIBDIR ldd "$T/hello" | grep klog)"
            fi
            LD_LIBRARY_PATH=$DEST$LIBDIR "$T/hello" "$T/data" || fail "hello (shared) failed"
        else
            fail "hello.c does not build against the installed headers and klog.pc"
        fi

        # Static: libklog.a and what `pkg-config --static` says it needs.
        sl=$(pc --static --libs-only-l | tr ' ' '\n' | grep -vx -- '-lklog' | tr '\n' ' ')
        so=$(pc --static --libs-only-other) sL=$(pc --static --libs-only-L)
        # shellcheck disable=SC2086
        if run "$T/cc-static.log" $CC -std=c11 -Wall -Wextra -Werror $cflags -o "$T/hello-static" \
                "$SRC/test/install/hello.c" "$DEST$LIBDIR/libklog.a" $sL $sl $so; then
            ldd "$T/hello-static" | grep -q libklog && fail "hello-static still needs libklog.so"
            "$T/hello-static" "$T/data-static" || fail "hello (static) failed"
        else
            fail "hello.c does not link against libklog.a with pkg-config --static (Requires.private/Libs.private)"
        fi

        # A test built against the installed testing library (klog/testing.h,
        # pkg-config klog-testing): an instance on its simulated disk.
        tflags=$(pkg-config --define-variable=prefix="$DEST$PREFIX" --cflags --libs klog-testing)
        # shellcheck disable=SC2086
        if printf '%s\n' '#include <string.h>' '#include <klog/klog.h>' '#include <klog/testing.h>' \
                'int main(int argc, char **argv) {' \
                '    klog_testing_fault *f; klog_conf *c; klog *k; (void)argc;' \
                '    if (klog_testing_fault_new(&f) || klog_conf_new(&c) || klog_testing_conf_set_fault(c, f)) return 1;' \
                '    if (klog_open(&k, argv[1], c, NULL, 0)) return 1;' \
                '    int ok = strcmp(klog_io_backend(k), "fault") == 0 && klog_testing_fault_ops(f, KLOG_TESTING_OP_ALL) > 0;' \
                '    klog_close(k); klog_conf_free(c); klog_testing_fault_free(f);' \
                '    return ok ? 0 : 1; }' >"$T/fault.c" &&
           run "$T/cc-fault.log" $CC -std=c11 -pedantic -Wall -Wextra -Werror -o "$T/fault" "$T/fault.c" $tflags; then
            if LD_LIBRARY_PATH=$DEST$LIBDIR "$T/fault" "$T/data-fault"; then echo "a test on the installed libklog-testing ran"
            else fail "a program on the installed libklog-testing failed"; fi
        else
            fail "a test does not build against the installed klog/testing.h and klog-testing.pc"
        fi

        # A program on the installed libklog-server (klog/server.h,
        # klog-server.pc): serves an instance on a free port; again linked
        # statically (pkg-config --static: libklog-server.a, libklog.a and
        # their private requirements).
        printf '%s\n' '#include <stdio.h>' '#include <klog/klog.h>' '#include <klog/server.h>' \
            'int main(int argc, char **argv) {' \
            '    klog *k; klog_server *s; char err[256]; (void)argc;' \
            '    if (klog_open(&k, argv[1], NULL, err, sizeof err)) return 1;' \
            '    int rc = klog_server_new(&s, k, NULL, err, sizeof err) || klog_server_listen(s, "tcp://127.0.0.1:0") ||' \
            '             klog_server_start(s) || klog_server_listener_count(s) != 1;' \
            '    if (!rc) printf("%s\n", klog_server_listener_url(s, 0));' \
            '    klog_server_free(s); klog_close(k); return rc; }' >"$T/serve.c"
        sflags=$(pkg-config --define-variable=prefix="$DEST$PREFIX" --cflags --libs klog-server)
        # shellcheck disable=SC2086
        if run "$T/cc-serve.log" $CC -std=c11 -pedantic -Wall -Wextra -Werror -o "$T/serve" "$T/serve.c" $sflags; then
            if LD_LIBRARY_PATH=$DEST$LIBDIR "$T/serve" "$T/data-serve" >"$T/serve.out"; then
                echo "a program on the installed libklog-server served $(cat "$T/serve.out")"
            else fail "a program on the installed libklog-server failed"; fi
        else
            fail "a program does not build against the installed klog/server.h and klog-server.pc"
        fi
        sflags=$(pkg-config --define-variable=prefix="$DEST$PREFIX" --static --cflags --libs klog-server)
        # shellcheck disable=SC2086
        if run "$T/cc-serve-static.log" $CC -std=c11 -o "$T/serve-static" "$T/serve.c" \
                $(echo " $sflags" | sed -e 's/ -lklog-server / -l:libklog-server.a /' -e 's/ -lklog / -l:libklog.a /'); then
            if "$T/serve-static" "$T/data-serve-static" >/dev/null; then echo "libklog-server.a linked statically and served"
            else fail "a program on the installed libklog-server.a failed"; fi
        else
            fail "a program does not link against libklog-server.a with pkg-config --static"
        fi
        ldd "$DEST$LIBDIR/libklog.so" | grep -q libssl && fail "the installed libklog links libssl (the server's)"

        # A program on the installed libklog-mirror (klog/mirror.h, klog-mirror.pc).
        if [ -n "$MIRROR" ]; then
            [ -f "$DEST$LIBDIR/pkgconfig/klog-mirror.pc" ] || fail "klog-mirror.pc not installed"
            mflags=$(pkg-config --define-variable=prefix="$DEST$PREFIX" --cflags --libs klog-mirror)
            # shellcheck disable=SC2086
            if printf '%s\n' '#include <klog/klog.h>' '#include <klog/mirror.h>' \
                    'int main(int argc, char **argv) {' \
                    '    klog *k; klog_mirror *m; char err[256]; (void)argc;' \
                    '    if (klog_open(&k, argv[1], NULL, err, sizeof err)) return 1;' \
                    '    int rc = klog_mirror_new(&m, k, err, sizeof err) ||' \
                    '             klog_mirror_set(m, "mirror.to", "127.0.0.1:1", err, sizeof err) ||' \
                    '             klog_mirror_start(m, err, sizeof err) != KLOG_ECONF;' \
                    '    klog_mirror_free(m); klog_close(k); return rc; }' >"$T/mirror.c" &&
               run "$T/cc-mirror.log" $CC -std=c11 -pedantic -Wall -Wextra -Werror -o "$T/mirror" "$T/mirror.c" $mflags; then
                if LD_LIBRARY_PATH=$DEST$LIBDIR "$T/mirror" "$T/data-mirror"; then echo "a program on the installed libklog-mirror ran"
                else fail "a program on the installed libklog-mirror failed"; fi
            else
                fail "a program does not build against the installed klog/mirror.h and klog-mirror.pc"
            fi
            ldd "$DEST$LIBDIR/libklog.so" | grep -q rdkafka && fail "the installed libklog links librdkafka"
        fi

        # The README's hello-world, pasted whole as a newcomer does (the ```c
        # block after the "<!-- hello-world" marker of its Install section),
        # built with the command the README gives and run twice (a second
        # run finds the first one's topic).
        awk '/^<!-- hello-world/ {f=1} f && /^```$/ && b {exit} b {print} f && /^```c$/ {b=1}' \
            "$SRC/README.md" >"$T/readme_hello.c"
        if [ ! -s "$T/readme_hello.c" ]; then
            fail "README.md: no \`\`\`c block after the <!-- hello-world marker"
        # shellcheck disable=SC2086
        elif run "$T/cc-readme.log" $CC -std=c11 -Wall -Wextra -Werror -o "$T/readme_hello" "$T/readme_hello.c" $cflags $libs; then
            mkdir "$T/readme-run"
            for i in 1 2; do
                if ! out=$(cd "$T/readme-run" && LD_LIBRARY_PATH=$DEST$LIBDIR "$T/readme_hello"); then
                    fail "the README's hello-world failed (run $i): $out"
                elif [ -z "$out" ]; then fail "the README's hello-world printed nothing (run $i)"
                fi
            done
            echo "the README's hello-world ran: $out"
        else
            fail "the README's hello-world does not build with pkg-config klog"
        fi

        # CMake: find_package(klog) through LIBDIR/cmake/klog/klogConfig.cmake,
        # the klog::klog imported target, a program built and run with the
        # build tree's RPATH CMake derives from it; a version check.
        CMD=$DEST$LIBDIR/cmake/klog
        [ -f "$CMD/klogConfig.cmake" ] && [ -f "$CMD/klogConfigVersion.cmake" ] ||
            fail "klogConfig.cmake and klogConfigVersion.cmake not installed in $CMD"
        VER=$(sed -n "s/^ *version : '\([0-9.]*\)'.*/\1/p" "$SRC/meson.build" | head -1)
        if ! command -v cmake >/dev/null; then
            fail "cmake not installed (build.sh installs it): find_package(klog) not checked"
        elif [ -f "$CMD/klogConfig.cmake" ]; then
            mkdir -p "$T/cmake-user"
            cp "$SRC/test/install/hello.c" "$T/cmake-user/"
            printf '%s\n' 'cmake_minimum_required(VERSION 3.13)' 'project(klog_user C CXX)' \
                "find_package(klog $VER REQUIRED)" \
                'add_executable(hello hello.c)' 'target_link_libraries(hello PRIVATE klog::klog)' \
                'file(WRITE ${CMAKE_BINARY_DIR}/cxx.cpp "#include <klog/klog.h>\nint main() { klog_record r = KLOG_RECORD_INIT; (void)r; return klog_version(nullptr) > 0 ? 0 : 1; }\n")' \
                'add_executable(hellocxx ${CMAKE_BINARY_DIR}/cxx.cpp)' 'target_link_libraries(hellocxx PRIVATE klog::klog)' \
                'if(NOT TARGET klog::testing)' '  message(FATAL_ERROR "no klog::testing target")' 'endif()' \
                'if(NOT TARGET klog::server)' '  message(FATAL_ERROR "no klog::server target")' 'endif()' \
                'message(STATUS "klog ${klog_VERSION} at ${klog_INCLUDE_DIRS}")' >"$T/cmake-user/CMakeLists.txt"
            if run "$T/cmake.log" cmake -S "$T/cmake-user" -B "$T/cmake-build" -DCMAKE_PREFIX_PATH="$DEST$PREFIX" \
                    -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror" &&
               run "$T/cmake-build.log" cmake --build "$T/cmake-build"; then
                grep -q "klog $VER at $DEST" "$T/cmake.log" || fail "find_package(klog) found another klog: $(grep 'klog ' "$T/cmake.log")"
                if ! ldd "$T/cmake-build/hello" | grep -q "libklog.so.0 => $DEST"; then
                    fail "the CMake-built hello does not resolve libklog.so from the install tree"
                fi
                "$T/cmake-build/hello" "$T/data-cmake" || fail "hello (CMake, find_package(klog)) failed"
                "$T/cmake-build/hellocxx" || fail "hellocxx (CMake, C++) failed"
                echo "a CMake project with find_package(klog $VER) built and ran"
            else
                fail "a CMake project with find_package(klog) and klog::klog does not build"
            fi
            # A version this klog cannot serve is refused.
            sed -i "s/find_package(klog $VER REQUIRED)/find_package(klog 99.0 REQUIRED)/" "$T/cmake-user/CMakeLists.txt"
            if cmake -S "$T/cmake-user" -B "$T/cmake-build99" -DCMAKE_PREFIX_PATH="$DEST$PREFIX" >"$T/cmake99.log" 2>&1; then
                fail "find_package(klog 99.0) accepted klog $VER"
            fi
        fi

        # The headers from C++ (extern "C", no C-only constructs).
        if command -v c++ >/dev/null; then
            # shellcheck disable=SC2086
            echo '#include <klog/klog.h>
#include <klog/testing.h>
int main() { return klog_version(nullptr) > 0 ? 0 : 1; }' |
                run "$T/cxx.log" c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only $cflags -x c++ - ||
                fail "the installed headers do not compile as C++"
        fi
    fi
elif [ "$mode" = subproject ]; then
    SRC=$1 SANITIZE=$2
    skip_sanitized "$SANITIZE"
    P=$T/user
    cp -r "$SRC/test/install/subproject" "$P"
    cp "$SRC/test/install/hello.c" "$P/"
    mkdir -p "$P/subprojects"
    ln -s "$SRC" "$P/subprojects/klog"
    start=$SECONDS
    # 1. The parent's defaults (meson's buildtype=debug, which klog's own
    # debugoptimized default does not override in a subproject) and
    # klog's werror=true: the whole subproject builds -O0 -Werror (tool,
    # examples, benchmarks), hello runs, and `meson install` puts klog's
    # parts into the parent's install tree.
    if run "$T/setup.log" meson setup --force-fallback-for=klog "$T/build" "$P" &&
       run "$T/build.log" ninja -C "$T/build"; then
        grep -q 'Dependency klog found: YES.*(overridden)' "$T/setup.log" ||
            fail "dependency('klog') was not resolved from the subproject"
        bt=$(meson introspect --buildoptions "$T/build" | /usr/bin/python3 -c \
            'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "buildtype"))')
        [ "$bt" = debug ] || fail "the parent's build type is $bt, not meson's default (debug)"
        grep -q -- '-Werror' "$T/build/build.ninja" || fail "the subproject is not built with -Werror"
        "$T/build/hello" "$T/data" || fail "hello (subproject) failed"
        for t in klog event_bus quickstart bench_api; do
            [ -n "$(find "$T/build/subprojects/klog" -name "$t" -type f -perm -u+x | head -1)" ] ||
                fail "the subproject's $t was not built (all parts on by default)"
        done
        if run "$T/install.log" meson install -C "$T/build" --destdir "$T/dest" --no-rebuild; then
            for f in bin/klog share/man/man1/klog.1 share/man/man3/klog_open.3 include/klog/klog.h; do
                [ -e "$T/dest/usr/local/$f" ] || fail "meson install of the parent did not install klog's $f"
            done
            find "$T/dest" -path '*klog/__init__.py' | grep -q . ||
                fail "meson install of the parent did not install the Python package"
            find "$T/dest" -name klogConfig.cmake | grep -q . || fail "klogConfig.cmake not installed"
        else
            fail "meson install of a parent with klog as a subproject"
        fi
        echo "configured, built whole (debug, -Werror) and installed as a subproject in $((SECONDS - start)) s"
    else
        fail "a project using klog as a meson subproject does not build (buildtype debug, -Werror)"
    fi
    # 2. The parts off: only the library (and hello) is built, nothing but
    # the library, headers, pkg-config, CMake files and man pages installed.
    # meson introspection answers without building.
    if run "$T/setup2.log" meson setup --force-fallback-for=klog -Dklog:tools=false -Dklog:examples=false \
            -Dklog:bench=false -Dklog:python=false "$T/build2" "$P"; then
        meson introspect --targets "$T/build2" >"$T/targets.json"
        meson introspect --installed "$T/build2" >"$T/installed.json"
        exes=$(/usr/bin/python3 -c 'import json, sys
print(" ".join(sorted(t["name"] for t in json.load(open(sys.argv[1])) if t["type"] == "executable")))' "$T/targets.json")
        [ "$exes" = hello ] || fail "executables defined with tools, examples and bench off: $exes (only hello expected)"
        grep -Eq '/bin/klog"|man1/klog\.1"|klog/__init__\.py"' "$T/installed.json" &&
            fail "the tool, klog(1) or the Python package would still be installed: $(grep -Eo '[^"]*(bin/klog|klog\.1|__init__\.py)"' "$T/installed.json" | head -3)"
        grep -q 'libklog.so' "$T/installed.json" || fail "libklog.so is not installed with the parts off"
        echo "with tools, examples, bench and python off: executables: $exes"
    else
        fail "meson setup with -Dklog:tools=false -Dklog:examples=false -Dklog:bench=false -Dklog:python=false"
    fi
else
    echo "unknown mode $mode"
    exit 2
fi

if [ $fails -gt 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo PASS
