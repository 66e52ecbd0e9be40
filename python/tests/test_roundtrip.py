"""Producer -> consumer round trips and the instance's admin surface."""

import threading

import pytest

import klog
from conftest import drain, produce


def test_structs_have_the_library_layout(inst):
    """The ctypes Message is the library's klog_message: a poll hands out
    pointers to records whose struct_size is ctypes' sizeof, and the
    delivery reports came back through a Delivery array walked by its
    struct_size (a mismatch would garble the metadata below)."""
    import ctypes
    from klog._lib import Message
    inst.create_topic("s", partitions=1)
    with klog.Producer(inst) as p:
        md = [p.send("s", b"v%d" % i, key=b"k").get(10) for i in range(3)]
    assert [(m.topic, m.partition, m.offset) for m in md] == [("s", 0, 0), ("s", 0, 1), ("s", 0, 2)]
    with klog.Consumer("s", instance=inst, auto_offset_reset="earliest") as c:
        recs = drain(c, 3)
        assert [(r.offset, r.key, r.value) for r in recs] == [(0, b"k", b"v0"), (1, b"k", b"v1"), (2, b"k", b"v2")]
        assert c._msgs[0].contents.struct_size == ctypes.sizeof(Message)


def test_bytes_str_keys_headers(inst):
    inst.create_topic("t", partitions=1)
    with klog.Producer(inst) as p:
        f1 = p.send("t", b"\x00\x01binary\xff", key=b"k1", headers=[("h1", b"a"), ("h2", "b")])
        f2 = p.send("t", "h\u00e9llo", key="k\u00e9")
        f3 = p.send("t", None, key="tomb")                 # null value
        f4 = p.send("t", b"", key=None, headers={"n": None})  # empty value, null key, null header value
        md = [f.get(timeout=10) for f in (f1, f2, f3, f4)]
    assert [m.offset for m in md] == [0, 1, 2, 3]
    assert all(m.topic == "t" and m.partition == 0 and m.timestamp > 0 for m in md)
    with klog.Consumer("t", instance=inst, auto_offset_reset="earliest", consumer_timeout_ms=500) as c:
        recs = list(c)
    assert [(r.key, r.value) for r in recs] == [
        (b"k1", b"\x00\x01binary\xff"), ("k\u00e9".encode(), "h\u00e9llo".encode()), (b"tomb", None), (None, b"")]
    assert recs[0].headers == [("h1", b"a"), ("h2", b"b")]
    assert recs[1].headers == []
    assert recs[3].headers == [("n", None)]
    assert [r.offset for r in recs] == [0, 1, 2, 3]
    assert recs[0].timestamp == md[0].timestamp


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
def test_compression(inst, codec):
    inst.create_topic("c", partitions=2)
    big = bytes(range(256)) * 40
    with klog.Producer(inst, compression_type=codec, linger_ms=20) as p:
        futs = [p.send("c", big + str(i).encode(), key=str(i % 7)) for i in range(300)]
        p.flush()
        assert all(f.succeeded() for f in futs)
    with klog.Consumer("c", instance=inst, auto_offset_reset="earliest") as c:
        recs = drain(c, 300)
    assert len(recs) == 300
    assert sorted(int(r.value[len(big):]) for r in recs) == list(range(300))
    assert all(r.value.startswith(big) for r in recs)
    # a key always lands in one partition
    where = {}
    for r in recs:
        assert where.setdefault(r.key, r.partition) == r.partition


def test_explicit_partition_and_timestamp(inst):
    # Timestamps from 1970 are past any time retention: without
    # retention_ms=-1 a retention pass (every second) could roll and delete
    # the partition's head between two sends, and the consumer, starting at
    # the log start, would see only the last record.
    inst.create_topic("p", partitions=3, retention_ms=-1)
    with klog.Producer(inst) as p:
        md = [p.send("p", b"x%d" % i, partition=i % 3, timestamp_ms=1000 + i).get(10) for i in range(9)]
    assert [m.partition for m in md] == [0, 1, 2] * 3
    assert [m.offset for m in md] == [0] * 3 + [1] * 3 + [2] * 3
    with klog.Consumer(instance=inst, auto_offset_reset="earliest") as c:
        c.assign([klog.TopicPartition("p", 2)])
        recs = drain(c, 3)
        assert [(r.partition, r.offset, r.timestamp, r.value) for r in recs] == [
            (2, 0, 1002, b"x2"), (2, 1, 1005, b"x5"), (2, 2, 1008, b"x8")]
        c.seek_to_timestamp(("p", 2), 1005)
        assert c.position(("p", 2)) == 1


def test_poll_shape_max_records_and_positions(inst):
    inst.create_topic("m", partitions=2)
    produce(inst, "m", 50)
    with klog.Consumer("m", instance=inst, auto_offset_reset="earliest", group_id="gm") as c:
        got = c.poll(timeout_ms=2000, max_records=7)
        assert sum(len(v) for v in got.values()) == 7
        assert all(isinstance(tp, klog.TopicPartition) for tp in got)
        for tp, recs in got.items():
            assert [r.partition for r in recs] == [tp.partition] * len(recs)
            # position: the next record to hand out, whatever C buffered
            assert c.position(tp) == recs[-1].offset + 1
        c.commit()  # commits exactly what was handed out
        for tp, recs in got.items():
            assert c.committed(tp) == recs[-1].offset + 1
        rest = drain(c, 43)
        assert len(rest) == 43
        seen = {(r.partition, r.offset) for recs in got.values() for r in recs} | \
               {(r.partition, r.offset) for r in rest}
        assert len(seen) == 50
        assert c.poll(timeout_ms=0) == {}


def test_seek(inst):
    inst.create_topic("s", partitions=1)
    produce(inst, "s", 10)
    tp = klog.TopicPartition("s", 0)
    with klog.Consumer("s", instance=inst, auto_offset_reset="earliest") as c:
        assert c.assignment() == {tp}
        assert len(drain(c, 10)) == 10
        assert c.position(tp) == 10
        c.seek(tp, 4)
        assert [r.offset for r in drain(c, 6)] == [4, 5, 6, 7, 8, 9]
        c.seek_to_beginning()
        assert c.position(tp) == 0
        c.poll(timeout_ms=1000, max_records=1)
        c.seek_to_end(tp)
        assert c.position(tp) == 10
        assert c.lag(tp) == 0
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 10}
        assert c.partitions_for_topic("s") == {0}
        assert c.partitions_for_topic("nope") is None


@pytest.mark.parametrize("kw", [{}, {"auto_offset_reset": "latest"}, {"group_id": "gl"}],
                         ids=["default", "explicit", "group-default"])
def test_auto_offset_reset_latest(inst, kw):
    """'latest' is the default, as in kafka-python and klog's C API: a
    consumer without a committed offset reads only what is written after
    it starts, with or without a group."""
    inst.create_topic("l", partitions=1)
    produce(inst, "l", 5)
    with klog.Consumer("l", instance=inst, **kw) as c:
        for _ in range(100):   # a group member starts at the end once it has joined
            if c.assignment():
                break
            assert c.poll(timeout_ms=100) == {}
        assert c.assignment() == {klog.TopicPartition("l", 0)}
        assert c.poll(timeout_ms=300) == {}
        assert c.position(("l", 0)) == 5
        produce(inst, "l", 1)
        assert [r.offset for r in drain(c, 1)] == [5]


def test_serializers(inst):
    import json
    inst.create_topic("j")
    with klog.Producer(inst, value_serializer=lambda v: json.dumps(v).encode(),
                       key_serializer=str.encode) as p:
        p.send("j", {"a": 1}, key="x").get(10)
    with klog.Consumer("j", instance=inst, auto_offset_reset="earliest", value_deserializer=json.loads,
                       key_deserializer=bytes.decode, consumer_timeout_ms=300) as c:
        (r,) = list(c)
    assert r.key == "x" and r.value == {"a": 1}


def test_future_callbacks(inst):
    inst.create_topic("f")
    ok, bad = [], []
    with klog.Producer(inst, linger_ms=50) as p:
        f = p.send("f", b"v")
        f.add_callback(ok.append).add_errback(bad.append)
        f.add_callback(lambda tag, md: ok.append((tag, md.offset)), "tagged")
        assert f.get(timeout=10).offset == 0
        assert f.is_done and f.succeeded() and not f.failed()
        late = []
        f.add_callback(late.append)  # already done: called at once
        assert late == [f.value]
    assert ok == [f.value, ("tagged", 0)] and bad == []


def test_producer_owns_instance(data_dir):
    with klog.open(data_dir) as k:
        k.create_topic("o")
    with klog.Producer(data_dir) as p:
        assert p.send("o", b"1").get(10).offset == 0
        assert p.instance.path == data_dir
    # closed with the producer: the directory can be opened again
    with klog.Consumer("o", path=data_dir, auto_offset_reset="earliest", consumer_timeout_ms=300) as c:
        assert [r.value for r in c] == [b"1"]


def test_threads_share_a_producer(inst):
    inst.create_topic("mt", partitions=4)
    with klog.Producer(inst) as p:
        futs = []
        lock = threading.Lock()

        def work(t):
            mine = [p.send("mt", b"%d-%d" % (t, i), key=b"%d" % t) for i in range(500)]
            for f in mine:
                f.get(timeout=30)
            with lock:
                futs.extend(mine)
        ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert len(futs) == 2000 and all(f.succeeded() for f in futs)
    assert len({(f.value.partition, f.value.offset) for f in futs}) == 2000


def test_admin(inst):
    inst.create_topic("a1", partitions=2, retention_ms=3600000, cleanup_policy="delete")
    inst.create_topic("a2")
    inst.create_topic("a2", exist_ok=True)
    with pytest.raises(klog.AlreadyExistsError):
        inst.create_topic("a2")
    assert inst.list_topics() == ["a1", "a2"]
    d = inst.describe_topic("a1")
    assert d["name"] == "a1" and [p["partition"] for p in d["partitions"]] == [0, 1]
    assert d["config"]["retention.ms"] == "3600000"
    produce(inst, "a1", 20)
    d = inst.describe_topic("a1")
    assert sum(p["end_offset"] for p in d["partitions"]) == 20
    p0_end = d["partitions"][0]["end_offset"]
    assert inst.delete_records("a1", 0, p0_end) == p0_end
    assert inst.describe_topic("a1")["partitions"][0]["start_offset"] == p0_end
    used, budget = inst.disk_usage()
    assert used > 0 and budget == 0
    inst.add_partitions("a2", 3)
    assert inst.partition_count("a2") == 3
    inst.delete_topic("a2")
    assert inst.list_topics() == ["a1"]
    assert inst.io_backend in ("uring", "posix")
    assert klog.version() == klog.__version__


def test_alter_topic_config(inst):
    inst.create_topic("ac", partitions=2, retention_ms=3600000)
    inst.alter_topic_config("ac", retention_ms=1234, cleanup_policy="compact", segment_bytes=1 << 20)
    cfg = inst.describe_topic("ac")["config"]
    assert cfg["retention.ms"] == "1234"
    assert cfg["cleanup.policy"] == "compact" and cfg["segment.bytes"] == str(1 << 20)
    inst.alter_topic_config("ac", delete=("retention_ms", "segment.bytes"))
    assert inst.describe_topic("ac")["config"] == {"cleanup.policy": "compact"}
    inst.alter_topic_config("ac", delete="cleanup.policy")
    assert inst.describe_topic("ac")["config"] == {}
    # a bad key changes nothing, the other keys of the call included
    with pytest.raises(klog.ConfigError) as ei:
        inst.alter_topic_config("ac", retention_ms=5, linger_ms=5)
    assert "linger.ms" in str(ei.value)
    with pytest.raises(klog.ConfigError) as ei:
        inst.alter_topic_config("ac", delete=["no_such_key"])
    assert "no.such.key" in str(ei.value)
    with pytest.raises(klog.ConfigError):
        inst.alter_topic_config("ac", retention_ms="soon")
    assert inst.describe_topic("ac")["config"] == {}
    with pytest.raises(klog.UnknownTopicError):
        inst.alter_topic_config("nope", retention_ms=5)
    with pytest.raises(klog.InvalidNameError):
        inst.alter_topic_config("bad/name", retention_ms=5)
    # recorded: the change survives a reopen
    inst.alter_topic_config("ac", retention_bytes=4096)
    path = inst.path
    inst.close()
    with klog.open(path) as k:
        assert k.describe_topic("ac")["config"] == {"retention.bytes": "4096"}
        produce(k, "ac", 10)


def test_failing_deserializer_skips_nothing(inst):
    inst.create_topic("bad", partitions=1)
    produce(inst, "bad", 5)
    calls = []

    def de(v):
        calls.append(v)
        if len(calls) == 3:
            raise ValueError("poison")
        return v
    with klog.Consumer("bad", instance=inst, auto_offset_reset="earliest", value_deserializer=de) as c:
        with pytest.raises(ValueError):
            c.poll(timeout_ms=1000)
        assert c.position(("bad", 0)) == 0      # the batch was given back
        assert [r.offset for r in drain(c, 5)] == [0, 1, 2, 3, 4]
