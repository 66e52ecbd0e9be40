"""One klog instance per directory within a process: Producer(path),
Consumer(path=path) and klog.open(path) share it instead of failing with
LockedError, and the last one to close releases the directory."""

import os
import subprocess
import sys
import threading

import pytest

import klog
from klog import instance as kinstance
from conftest import PKG_ROOT, drain


def _open_elsewhere(path):
    """Try klog.open(path) in another process: "ok" or "locked"."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [PKG_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    code = ("import klog, sys\n"
            "try:\n    klog.open(sys.argv[1]).close(); print('ok')\n"
            "except klog.LockedError:\n    print('locked')\n")
    return subprocess.run([sys.executable, "-c", code, path], env=env, check=True, timeout=60,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


def test_producer_and_consumer_on_one_path(data_dir):
    with klog.open(data_dir) as k:
        k.create_topic("t", partitions=2)
    p = klog.Producer(data_dir)
    c = klog.Consumer("t", path=data_dir, auto_offset_reset="earliest")   # LockedError before
    assert p.instance is not c.instance               # each owns its handle ...
    assert p.instance._handle().value == c.instance._handle().value   # ... on one klog instance
    futs = [p.send("t", b"v%d" % i, key=b"k%d" % i) for i in range(20)]
    p.flush(timeout=30)
    assert all(f.succeeded() for f in futs)
    p.close()                                          # the consumer's instance stays open
    assert not c.instance.closed
    recs = drain(c, 20)
    assert sorted(r.value for r in recs) == sorted(b"v%d" % i for i in range(20))
    assert _open_elsewhere(data_dir) == "locked"
    c.close()
    assert os.path.realpath(data_dir) not in kinstance._shared
    assert _open_elsewhere(data_dir) == "ok"           # the last close released the directory


def test_open_twice_shares(data_dir):
    a = klog.open(data_dir)
    b = klog.open(data_dir)
    a.create_topic("x")
    assert b.list_topics() == ["x"]
    a.close()
    assert a.closed and not b.closed
    with pytest.raises(klog.ClosedError):
        a.list_topics()
    assert b.list_topics() == ["x"]                    # still usable
    b.close()
    assert _open_elsewhere(data_dir) == "ok"


def test_close_closes_only_its_own_children(data_dir):
    a = klog.open(data_dir)
    b = klog.open(data_dir)
    a.create_topic("x")
    pa = klog.Producer(a)
    pb = klog.Producer(b)
    a.close()
    with pytest.raises(klog.ClosedError):
        pa.send("x", b"1")
    assert pb.send("x", b"2").get(timeout=10).offset == 0
    b.close()
    with pytest.raises(klog.ClosedError):
        pb.send("x", b"3")


def test_another_spelling_of_the_path_shares(tmp_path, data_dir):
    with klog.open(data_dir) as a:
        link = str(tmp_path / "link")
        os.symlink(data_dir, link)
        with klog.open(link) as b, klog.open(data_dir + "/./") as c:
            assert a._handle().value == b._handle().value == c._handle().value


def test_settings_must_agree(data_dir):
    with klog.open(data_dir, disk_budget_bytes=1 << 30) as a:
        with klog.open(data_dir) as b:                 # no settings: shares
            assert b._handle().value == a._handle().value
        with klog.open(data_dir, disk_budget_bytes=1 << 30) as c:   # the same: shares
            assert c._handle().value == a._handle().value
        with pytest.raises(klog.ConfigError) as ei:
            klog.open(data_dir, disk_budget_bytes=1 << 20)
        assert "already open in this process with disk.budget.bytes=1073741824" in str(ei.value)
        assert a.disk_usage().budget == 1 << 30        # unchanged


def test_failed_open_leaves_nothing_behind(data_dir):
    with pytest.raises(klog.ConfigError):
        klog.open(data_dir, no_such_key=1)
    assert os.path.realpath(data_dir) not in kinstance._shared
    with klog.open(data_dir) as k:
        assert k.list_topics() == []


def test_concurrent_opens(data_dir):
    """Threads opening one directory at once all get it (the registry opens
    it once)."""
    got, errs = [], []
    start = threading.Barrier(8)

    def run():
        try:
            start.wait(timeout=30)
            got.append(klog.open(data_dir))
        except Exception as e:   # reported below
            errs.append(e)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errs == [] and len(got) == 8
    assert len({k._handle().value for k in got}) == 1
    for k in got:
        k.close()
    assert os.path.realpath(data_dir) not in kinstance._shared
