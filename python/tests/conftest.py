"""Fixtures for the klog Python tests.

KLOG_LIBRARY names the libklog.so under test and KLOG_BUILD_DIR the meson
build tree holding the C examples (meson test sets both); PYTHONPATH must
reach python/ (the package)."""

import os
import sys

import pytest

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # python/: holds klog/
sys.path.insert(0, PKG_ROOT)

import klog  # noqa: E402


@pytest.fixture
def data_dir(tmp_path):
    """A fresh data directory path (not created: klog.open creates it)."""
    return str(tmp_path / "data")


@pytest.fixture
def inst(data_dir):
    """An open instance on a fresh directory, closed after the test."""
    k = klog.open(data_dir)
    yield k
    k.close()


@pytest.fixture
def build_dir():
    """The meson build tree (KLOG_BUILD_DIR), or skip."""
    d = os.environ.get("KLOG_BUILD_DIR")
    if not d or not os.path.isdir(d):
        pytest.skip("KLOG_BUILD_DIR is not set: the C examples are not available")
    return d


def produce(k, topic, n, **kw):
    """Send n keyed records ("k<i>" -> "v<i>") and return their metadata."""
    with klog.Producer(k, **kw) as p:
        futs = [p.send(topic, "v%d" % i, key="k%d" % i) for i in range(n)]
        p.flush(timeout=30)
        return [f.get(timeout=0) for f in futs]


def drain(c, want, timeout=10.0):
    """Poll c until `want` records came back (or timeout): a list."""
    import time
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        for recs in c.poll(timeout_ms=100).values():
            out.extend(recs)
    return out
