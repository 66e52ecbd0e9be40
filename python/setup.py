"""Build hooks of the klog Python package (the metadata is in pyproject.toml).

* The version is the C library's: KLOG_VERSION_MAJOR/MINOR/PATCH of
  include/klog/version.h in the source tree this directory belongs to
  (from an sdist, the Version of its PKG-INFO).
* klog/_buildinfo.py records where the installed library lives: the
  environment variable KLOG_LIBDIR at build time, else
  `pkg-config --variable=libdir klog`, else nothing (klog then relies on
  KLOG_LIBRARY, a bundled copy, or the dynamic linker's search path).
* KLOG_BUNDLE_LIBRARY=/path/to/libklog.so at build time copies that library
  into the package (klog/libklog.so): the wheel is then platform-specific and
  needs no libklog installed (its own dependencies still do: liburing, zstd,
  lz4, zlib, snappy, xxhash).
"""

import os
import re
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def c_version():
    header = os.path.join(HERE, "..", "include", "klog", "version.h")
    if os.path.isfile(header):
        with open(header, encoding="utf-8") as f:
            text = f.read()
        parts = []
        for what in ("MAJOR", "MINOR", "PATCH"):
            m = re.search(r"^\s*#\s*define\s+KLOG_VERSION_%s\s+(\d+)\s*$" % what, text, re.M)
            if not m:
                raise SystemExit("klog: %s has no KLOG_VERSION_%s" % (header, what))
            parts.append(m.group(1))
        return ".".join(parts)
    pkg_info = os.path.join(HERE, "PKG-INFO")
    if os.path.isfile(pkg_info):
        with open(pkg_info, encoding="utf-8") as f:
            m = re.search(r"^Version:\s*(\S+)\s*$", f.read(), re.M)
        if m:
            return m.group(1)
    raise SystemExit("klog: cannot tell the version: %s is missing (build from the klog source tree, "
                     "where python/ sits beside include/)" % os.path.normpath(header))


def installed_libdir():
    libdir = os.environ.get("KLOG_LIBDIR")
    if libdir is not None:
        return libdir
    try:
        r = subprocess.run(["pkg-config", "--variable=libdir", "klog"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def bundled_library():
    lib = os.environ.get("KLOG_BUNDLE_LIBRARY")
    if lib and not os.path.isfile(lib):
        raise SystemExit("klog: KLOG_BUNDLE_LIBRARY=%s is not a file" % lib)
    return lib or None


class BuildPy(build_py):
    """Also writes klog/_buildinfo.py (and copies a bundled libklog.so)."""

    def run(self):
        super().run()
        pkg = os.path.join(self.build_lib, "klog")
        with open(os.path.join(HERE, "klog", "_buildinfo.py.in"), encoding="utf-8") as f:
            text = f.read()
        text = text.replace("Written by meson at install time", "Written by setup.py at build time")
        with open(os.path.join(pkg, "_buildinfo.py"), "w", encoding="utf-8") as f:
            f.write(text.replace("'@LIBDIR@'", repr(installed_libdir())))
        lib = bundled_library()
        if lib:
            shutil.copyfile(os.path.realpath(lib), os.path.join(pkg, "libklog.so"))


class KlogDistribution(Distribution):
    def has_ext_modules(self):
        return bundled_library() is not None   # a bundled .so makes the wheel platform-specific


setup(version=c_version(), cmdclass={"build_py": BuildPy}, distclass=KlogDistribution)
