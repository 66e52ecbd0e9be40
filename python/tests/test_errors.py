"""Errors: codes and classes, messages that name the culprit, closed handles."""

import os
import pickle
import subprocess
import sys

import pytest

import klog
from klog import errors
from conftest import PKG_ROOT


def test_error_classes_and_fields():
    e = errors.error_for(errors.KLOG_EUNKNOWN_TOPIC)
    assert isinstance(e, klog.UnknownTopicError) and isinstance(e, klog.KlogError)
    assert e.code == -30914 and e.name == "KLOG_EUNKNOWN_TOPIC" and e.message
    assert type(errors.error_for(-28)) is klog.DiskFullError          # -ENOSPC
    assert type(errors.error_for(errors.KLOG_EDISKFULL)) is klog.DiskFullError
    assert type(errors.error_for(errors.KLOG_EOFFSET)) is klog.OffsetOutOfRangeError
    assert type(errors.error_for(errors.KLOG_EFENCED)) is klog.FencedError
    assert type(errors.error_for(errors.KLOG_EQUEUEFULL)) is klog.QueueFullError
    assert isinstance(errors.error_for(-110), TimeoutError)          # -ETIMEDOUT
    assert type(errors.error_for(-12345)) is klog.KlogError
    e2 = pickle.loads(pickle.dumps(errors.error_for(errors.KLOG_ECONF, "x: bad", "ctx")))
    assert type(e2) is klog.ConfigError and e2.message == "x: bad" and e2.code == errors.KLOG_ECONF


def test_unknown_topic(inst):
    with klog.Producer(inst) as p:
        with pytest.raises(klog.UnknownTopicError) as ei:
            p.send("nope", b"v")
        assert ei.value.code == errors.KLOG_EUNKNOWN_TOPIC
        assert "nope" in str(ei.value)
    with pytest.raises(klog.UnknownTopicError):
        klog.Consumer("nope", instance=inst, auto_offset_reset="earliest")
    with pytest.raises(klog.UnknownTopicError):
        inst.describe_topic("nope")
    with pytest.raises(klog.UnknownTopicError):
        inst.delete_topic("nope")


def test_unknown_partition(inst):
    inst.create_topic("up", partitions=2)
    with klog.Producer(inst) as p:
        with pytest.raises(klog.UnknownPartitionError):
            p.send("up", b"v", partition=5)
    with klog.Consumer(instance=inst, auto_offset_reset="earliest") as c:
        with pytest.raises(klog.UnknownPartitionError):
            c.assign([("up", 7)])


def test_bad_config_key_names_the_key(inst, data_dir, tmp_path):
    inst.create_topic("t")
    with pytest.raises(klog.ConfigError) as ei:
        klog.Producer(inst, lingr_ms=5)
    assert "lingr.ms" in str(ei.value) and ei.value.name == "KLOG_ECONF"
    with pytest.raises(klog.ConfigError) as ei:
        klog.Producer(inst, compression_type="snappyish")
    assert "compression.type" in str(ei.value)
    with pytest.raises(klog.ConfigError) as ei:
        klog.Consumer("t", instance=inst, auto_offset_reset="earliest", max_poll_recs=3)
    assert "max.poll.recs" in str(ei.value)
    with pytest.raises(klog.ConfigError) as ei:
        inst.create_topic("t2", retention_millis=5)
    assert "retention.millis" in str(ei.value)
    with pytest.raises(klog.ConfigError) as ei:
        klog.open(str(tmp_path / "other"), io_backend="carrier-pigeon")
    assert "io.backend" in str(ei.value)


def test_bad_names(inst):
    with pytest.raises(klog.InvalidNameError):
        inst.create_topic("no spaces")
    with pytest.raises(ValueError):    # InvalidNameError is a ValueError too
        inst.create_topic("..")


def test_directory_locked(inst, data_dir):
    """Another process cannot open a directory this one holds (within one
    process the instance is shared: test_shared_instance.py)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [PKG_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    code = ("import klog, sys\n"
            "try:\n    klog.open(sys.argv[1])\n"
            "except klog.LockedError as e:\n    print('locked', e.code, e.name)\n")
    out = subprocess.run([sys.executable, "-c", code, data_dir], env=env, check=True, timeout=60,
                         stdout=subprocess.PIPE, text=True).stdout
    assert out.split() == ["locked", str(errors.KLOG_ELOCKED), "KLOG_ELOCKED"]


def test_closed_handles(data_dir):
    k = klog.open(data_dir)
    k.create_topic("c")
    p = klog.Producer(k)
    c = klog.Consumer("c", instance=k, auto_offset_reset="earliest")
    p.close()
    p.close()  # idempotent
    with pytest.raises(klog.ClosedError) as ei:
        p.send("c", b"v")
    assert ei.value.code == errors.KLOG_ECLOSED
    with pytest.raises(klog.ClosedError):
        p.flush()
    k.close()  # closes the consumer still open on it first
    with pytest.raises(klog.ClosedError):
        c.poll()
    with pytest.raises(klog.ClosedError):
        c.seek(("c", 0), 0)
    with pytest.raises(klog.ClosedError):
        k.list_topics()
    with pytest.raises(klog.ClosedError):
        klog.Producer(k)
    c.close()
    k.close()


def test_consumer_needs_one_source(inst):
    with pytest.raises(TypeError):
        klog.Consumer("t")
    with pytest.raises(TypeError):
        klog.Consumer("t", path="x", instance=inst, auto_offset_reset="earliest")


def test_commit_without_group(inst):
    inst.create_topic("ng")
    with klog.Consumer("ng", instance=inst, auto_offset_reset="earliest") as c:
        with pytest.raises(klog.IllegalStateError):
            c.commit()


def test_delivery_error_through_future(tmp_path):
    # a disk budget that refuses: the append fails, the future carries it
    with klog.open(str(tmp_path / "full"), disk_budget_bytes=64 * 1024, disk_budget_policy="refuse",
                   segment_bytes=16 * 1024) as k:
        k.create_topic("full")
        failed = []
        with klog.Producer(k, linger_ms=0, batch_size=4096) as p:
            futs = [p.send("full", b"x" * 1000) for _ in range(200)]
            p.flush()
            for f in futs:
                f.add_errback(failed.append)
        assert any(f.failed() for f in futs)
        assert all(isinstance(e, klog.DiskFullError) for e in failed)
        bad = next(f for f in futs if f.failed())
        with pytest.raises(klog.DiskFullError) as ei:
            bad.get()
        assert ei.value.code in (errors.KLOG_EDISKFULL, -28)
        assert "full" in str(ei.value)


def test_future_get_timeout(inst):
    inst.create_topic("slow")
    with klog.Producer(inst, linger_ms=5000) as p:
        f = p.send("slow", b"v")
        with pytest.raises(klog.KlogTimeoutError):
            f.get(timeout=0.2)
        p.flush()
        assert f.get(timeout=0).offset == 0


def test_queue_full_at_once_with_max_block_0(inst):
    inst.create_topic("q")
    with klog.Producer(inst, buffer_memory=65536, max_block_ms=0, linger_ms=60000,
                       batch_size=32768) as p:
        with pytest.raises(klog.QueueFullError):
            for _ in range(1000):
                p.send("q", b"x" * 1000)
        p.flush(timeout=30)


def test_blocked_send_waits_for_room(inst):
    # a small buffer and a slow consumer of reports: sends block (in Python,
    # in slices) until batches complete, then go through
    inst.create_topic("qb")
    with klog.Producer(inst, buffer_memory=65536, max_block_ms=30000, linger_ms=1,
                       batch_size=16384) as p:
        futs = [p.send("qb", b"x" * 1000) for _ in range(2000)]
        p.flush(timeout=60)
    assert all(f.succeeded() for f in futs)
    assert futs[-1].value.offset == 1999


def test_offset_out_of_range(inst):
    inst.create_topic("oor")
    with pytest.raises(klog.OffsetOutOfRangeError):   # no default position with 'none'
        klog.Consumer("oor", instance=inst, auto_offset_reset="none")
    with klog.Consumer(instance=inst, auto_offset_reset="none") as c:
        c.assign({("oor", 0): klog.OFFSET_BEGINNING})
        assert c.position(("oor", 0)) == 0
        with pytest.raises(klog.OffsetOutOfRangeError) as ei:
            c.seek(("oor", 0), 100)
        assert ei.value.name == "KLOG_EOFFSET"
