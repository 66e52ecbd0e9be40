"""`pip install ./python` into a venv, offline, and the package used from
another directory: its version is the C library's, and it finds
libklog.so through the recorded library directory, a copy bundled in the
package, or KLOG_LIBRARY.

Exactly what python/README.md tells users:

    /usr/bin/python3 -m venv --system-site-packages VENV
    VENV/bin/pip install --no-build-isolation --no-index ./python

(--system-site-packages: Debian's python3-setuptools and python3-wheel are
the build backend; --no-build-isolation: use them instead of fetching
them; --no-index: nothing from the network.)  The source is copied first:
setuptools builds in the tree it is given.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import PKG_ROOT

INCLUDE = os.environ.get("KLOG_INCLUDE_DIR") or os.path.join(os.path.dirname(PKG_ROOT), "include")
PIP_TIMEOUT = 600

PROBE = r"""
import importlib.metadata, json, os, sys, tempfile
import klog
with klog.open(os.path.join(tempfile.mkdtemp(), "d")) as k:
    k.create_topic("t")
    with klog.Producer(k) as p:
        offset = p.send("t", b"installed").get(10).offset
    with klog.Consumer("t", instance=k, auto_offset_reset="earliest", consumer_timeout_ms=2000) as c:
        values = [r.value.decode() for r in c]
import klog.kafka
print(json.dumps({"file": klog.__file__, "library": klog.library_path, "lib_version": klog.__version__,
                  "dist_version": importlib.metadata.version("klog"), "offset": offset, "values": values,
                  "kafka": klog.kafka.__name__}))
"""


def _header_version():
    text = open(os.path.join(INCLUDE, "klog", "version.h"), encoding="utf-8").read()
    import re
    return ".".join(re.search(r"#define KLOG_VERSION_%s (\d+)" % w, text).group(1) for w in ("MAJOR", "MINOR", "PATCH"))


def _clean_env(**extra):
    """The environment of a user's shell: no KLOG_LIBRARY, no PYTHONPATH
    reaching the source tree, no pkg-config finding a klog elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in ("KLOG_LIBRARY", "PYTHONPATH", "KLOG_LIBDIR",
                                                            "KLOG_BUNDLE_LIBRARY", "PYTHONHOME",
                                                            "LD_LIBRARY_PATH")}
    env["PKG_CONFIG_LIBDIR"] = "/nonexistent"
    env["PKG_CONFIG_PATH"] = ""
    env["PIP_NO_INPUT"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    lib = os.environ.get("KLOG_LIBRARY")
    if not lib or not os.path.isfile(lib):
        pytest.skip("KLOG_LIBRARY does not name the built libklog.so")
    if not os.path.isfile(os.path.join(INCLUDE, "klog", "version.h")):
        pytest.skip("include/klog/version.h is not at %s" % INCLUDE)
    try:
        import setuptools  # noqa: F401 - the offline build backend
        import wheel  # noqa: F401
    except ImportError:
        pytest.skip("python3-setuptools and python3-wheel are needed to build offline")
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    shutil.copytree(PKG_ROOT, src / "python",
                    ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "tests"))
    os.makedirs(src / "include" / "klog")
    shutil.copy(os.path.join(INCLUDE, "klog", "version.h"), src / "include" / "klog" / "version.h")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   timeout=PIP_TIMEOUT, env=_clean_env())
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return {"lib": os.path.realpath(lib), "src": src / "python", "python": str(venv / "bin" / "python"),
            "cwd": str(elsewhere), "venv": str(venv)}


def _pip_install(s, **env):
    r = subprocess.run([s["python"], "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-deps",
                        "--force-reinstall", str(s["src"])], cwd=s["cwd"], env=_clean_env(**env),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=PIP_TIMEOUT)
    assert r.returncode == 0, r.stdout


def _probe(s, **env):
    r = subprocess.run([s["python"], "-c", PROBE], cwd=s["cwd"], env=_clean_env(**env), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=120)
    return r


def _site(s, got):
    pkg = os.path.dirname(got["file"])
    assert pkg.startswith(s["venv"] + os.sep), "klog imported from %s, not the venv" % got["file"]
    return pkg


def test_install_with_the_library_directory(setup):
    """KLOG_LIBDIR at install time (pkg-config's libdir when unset) is
    recorded: the installed package finds the library there, from any
    directory, with nothing in the environment."""
    libdir = os.path.dirname(setup["lib"])
    _pip_install(setup, KLOG_LIBDIR=libdir)
    r = _probe(setup)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    _site(setup, got)
    assert os.path.dirname(got["library"]) == libdir
    assert got["dist_version"] == got["lib_version"] == _header_version()
    assert got["offset"] == 0 and got["values"] == ["installed"] and got["kafka"] == "klog.kafka"


def test_install_with_the_library_bundled(setup, tmp_path):
    """KLOG_BUNDLE_LIBRARY copies the library into the package; KLOG_LIBRARY
    at run time still wins over it."""
    _pip_install(setup, KLOG_BUNDLE_LIBRARY=setup["lib"], KLOG_LIBDIR="")
    r = _probe(setup)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    pkg = _site(setup, got)
    assert got["library"] == os.path.join(pkg, "libklog.so")
    assert got["values"] == ["installed"]
    other = tmp_path / "libklog-copy.so"
    shutil.copy(setup["lib"], other)
    r = _probe(setup, KLOG_LIBRARY=str(other))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["library"] == str(other)


def test_no_library_says_what_to_set(setup):
    """Installed with no library directory and nothing bundled, and no
    libklog where the dynamic linker looks: the import names KLOG_LIBRARY."""
    found = subprocess.run([setup["python"], "-c", "import ctypes.util; print(ctypes.util.find_library('klog'))"],
                           cwd=setup["cwd"], env=_clean_env(), stdout=subprocess.PIPE, text=True, timeout=60,
                           check=True).stdout.strip()
    if found != "None":
        pytest.skip("a libklog is installed on this machine (%s): the import would find it" % found)
    _pip_install(setup, KLOG_LIBDIR="")
    r = _probe(setup)
    assert r.returncode != 0 and "set KLOG_LIBRARY to its path" in r.stderr, r.stderr
