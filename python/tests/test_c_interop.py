"""Records written by the C examples (built by meson, found through
KLOG_BUILD_DIR) read back from Python."""

import os
import subprocess

import pytest

import klog
from conftest import drain


def _binary(build_dir, name):
    path = os.path.join(build_dir, "examples", name)
    if not os.access(path, os.X_OK):
        pytest.skip("%s is not built" % path)
    return path


def test_quickstart_records(build_dir, data_dir):
    subprocess.run([_binary(build_dir, "quickstart"), data_dir], check=True, timeout=60,
                   stdout=subprocess.DEVNULL)
    with klog.open(data_dir) as k:
        assert "greetings" in k.list_topics()
        with klog.Consumer("greetings", instance=k, auto_offset_reset="earliest") as c:
            recs = drain(c, 3)
    assert sorted((r.key, r.value) for r in recs) == [
        (b"ada", b"hello, ada"), (b"edsger", b"hello, edsger"), (b"grace", b"hello, grace")]
    assert all(r.headers == [("lang", b"en")] for r in recs)


def test_event_bus_records(build_dir, data_dir):
    n = 3000
    subprocess.run([_binary(build_dir, "event_bus"), "--records", str(n), "--producers", "2",
                    "--consumers", "2", "--partitions", "3", "--compression", "lz4", data_dir],
                   check=True, timeout=120, stdout=subprocess.DEVNULL)
    with klog.open(data_dir) as k:
        d = k.describe_topic("events")
        assert len(d["partitions"]) == 3
        assert sum(p["end_offset"] for p in d["partitions"]) == n
        # the C consumers' group committed its offsets; a Python member resumes there
        assert k.describe_group("event-bus")["offsets"]
        with klog.Consumer("events", instance=k, auto_offset_reset="earliest") as c:
            recs = drain(c, n, timeout=30)
    assert len(recs) == n
    assert all(r.key.startswith(b"user-") for r in recs)
    where = {}
    for r in recs:   # a key always lives in one partition
        assert where.setdefault(r.key, r.partition) == r.partition
