"""kafka-python's consumer surface on klog.Consumer: ConsumerRecord's
fields, pause/resume, highwater, offsets_for_times, metrics,
commit_async(callback=), close(autocommit=), and the auto-commit done in
Python (periodic, on revoke, on close)."""

import pytest

import klog
from conftest import drain, produce

KAFKA_PYTHON_RECORD_FIELDS = ("topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value",
                              "headers", "checksum", "serialized_key_size", "serialized_value_size",
                              "serialized_header_size")


def test_consumer_record_fields(inst):
    assert klog.ConsumerRecord._fields == KAFKA_PYTHON_RECORD_FIELDS
    try:
        from kafka.consumer.fetcher import ConsumerRecord as KafkaRecord
    except ImportError:
        KafkaRecord = None
    if KafkaRecord is not None and "leader_epoch" not in KafkaRecord._fields:
        assert klog.ConsumerRecord._fields == KafkaRecord._fields   # the kafka-python installed
    inst.create_topic("f", retention_ms=-1)
    with klog.Producer(inst) as p:
        p.send("f", b"value", key=b"key", headers=[("h", b"12"), ("n", None)], timestamp_ms=1234).get(10)
        p.send("f", None, key=None, timestamp_ms=1235).get(10)
    with klog.Consumer("f", instance=inst, auto_offset_reset="earliest") as c:
        a, b = drain(c, 2)
    topic, partition, offset, ts, ts_type, key, value, headers, crc, ks, vs, hs = a   # kafka-python's order
    assert (topic, partition, offset, ts, ts_type, key, value) == ("f", 0, 0, 1234, 0, b"key", b"value")
    assert headers == [("h", b"12"), ("n", None)]
    assert (crc, ks, vs, hs) == (None, 3, 5, 4)
    assert (b.key, b.value, b.serialized_key_size, b.serialized_value_size, b.serialized_header_size) == \
        (None, None, -1, -1, -1)


def test_pause_resume(inst):
    inst.create_topic("p", partitions=2)
    with klog.Producer(inst) as prod:
        for i in range(10):
            prod.send("p", b"a%d" % i, partition=0)
            prod.send("p", b"b%d" % i, partition=1)
    with klog.Consumer("p", instance=inst, auto_offset_reset="earliest", max_poll_records=3) as c:
        p0 = klog.TopicPartition("p", 0)
        c.pause(p0)
        assert c.paused() == {p0}
        recs = drain(c, 10)
        assert [r.value for r in recs] == [b"b%d" % i for i in range(10)]   # nothing of p0
        assert c.poll(timeout_ms=200) == {}
        assert c.position(p0) == 0
        c.resume(p0)
        assert c.paused() == set()
        assert [r.value for r in drain(c, 10)] == [b"a%d" % i for i in range(10)]
        with pytest.raises(klog.IllegalStateError):
            c.pause(klog.TopicPartition("p", 7))


def test_pause_gives_back_buffered_records(inst):
    inst.create_topic("pb")
    produce(inst, "pb", 10)
    with klog.Consumer("pb", instance=inst, auto_offset_reset="earliest") as c:
        first = next(iter(c))                    # the rest of the poll's records are buffered
        assert first.offset == 0
        c.pause(("pb", 0))
        assert c.poll(timeout_ms=200) == {}
        c.resume(("pb", 0))
        assert [r.offset for r in drain(c, 9)] == list(range(1, 10))


def test_highwater(inst):
    inst.create_topic("h", partitions=2)
    produce(inst, "h", 7, partitioner="round_robin")
    with klog.Consumer(instance=inst) as c:
        c.assign([("h", 0)])
        ends = inst.offsets("h")
        assert c.highwater(("h", 0)) == ends[0][1]
        assert c.highwater(("h", 1)) is None      # not assigned


def test_offsets_for_times(inst):
    inst.create_topic("ts", partitions=2, retention_ms=-1)
    with klog.Producer(inst) as p:
        for i in range(5):
            p.send("ts", b"x", partition=0, timestamp_ms=1000 + 100 * i).get(10)
    with klog.Consumer(instance=inst, auto_offset_reset="earliest") as c:
        tp0, tp1 = klog.TopicPartition("ts", 0), klog.TopicPartition("ts", 1)
        c.assign([tp0])
        got = c.offsets_for_times({tp0: 1150, tp1: 0})
        assert got[tp0] == klog.OffsetAndTimestamp(2, 1200)
        assert got[tp1] is None                   # empty partition
        assert c.offsets_for_times({tp0: 0})[tp0] == (0, 1000)
        assert c.offsets_for_times({tp0: 99999})[tp0] is None
        assert c.position(tp0) == 0               # unmoved
        assert c.assignment() == {tp0}
        with pytest.raises(ValueError):
            c.offsets_for_times({tp0: -5})
        with pytest.raises(klog.UnknownTopicError):
            c.offsets_for_times({klog.TopicPartition("nope", 0): 0})


def test_metrics(inst):
    inst.create_topic("m")
    with klog.Producer(inst, client_id="prod-m") as p:
        for i in range(4):
            p.send("m", b"1234").get(10)
        pm = p.metrics()
        assert p.partitions_for("m") == {0}
        with pytest.raises(klog.UnknownTopicError):
            p.partitions_for("nope")
    assert pm["records"] == 4 and pm["bytes"] == 16 and pm["delivery_errors"] == 0
    with klog.Consumer("m", instance=inst, auto_offset_reset="earliest") as c:
        assert c.client_id.startswith("klog-python-consumer-")
        drain(c, 4)
        cm = c.metrics()
    assert cm["records"] == 4 and cm["bytes"] == 16 and cm["partitions"] == 1 and cm["polls"] >= 1


def _joined(c):
    for _ in range(100):
        if c.assignment():
            return
        c.poll(timeout_ms=100)
    raise AssertionError("no assignment")


def test_commit_async_callback(inst):
    inst.create_topic("ca")
    produce(inst, "ca", 5)
    calls = []
    with klog.Consumer("ca", instance=inst, group_id="gca", auto_offset_reset="earliest",
                       enable_auto_commit=False) as c:
        assert len(drain(c, 5)) == 5
        fut = c.commit_async(callback=lambda offsets, exc: calls.append((offsets, exc)))
        assert fut.succeeded() and fut.is_done
        tp = klog.TopicPartition("ca", 0)
        assert calls == [({tp: klog.OffsetAndMetadata(5, "")}, None)]
        assert c.committed(tp) == 5
        c.commit_async({tp: klog.OffsetAndMetadata(3, "m")}, callback=lambda o, e: calls.append((o, e)))
        assert calls[-1] == ({tp: klog.OffsetAndMetadata(3, "m")}, None)
        assert c.committed(tp, metadata=True) == klog.OffsetAndMetadata(3, "m")
    with klog.Consumer(instance=inst, auto_offset_reset="earliest") as c:   # no group: the commit fails
        c.assign([("ca", 0)])
        fut = c.commit_async({("ca", 0): 1}, callback=lambda o, e: calls.append((o, e)))
        assert fut.failed() and isinstance(calls[-1][1], klog.KlogError)
        with pytest.raises(klog.KlogError):
            c.commit_async({("ca", 0): 1})        # no callback: raised


@pytest.mark.parametrize("autocommit", [True, False])
def test_close_autocommit(inst, autocommit):
    inst.create_topic("cl")
    produce(inst, "cl", 6)
    with klog.Consumer("cl", instance=inst, group_id="gcl", auto_offset_reset="earliest",
                       auto_commit_interval_ms=3600000) as c:
        assert len(drain(c, 6)) == 6
        c.close(autocommit=autocommit)
    assert inst.committed("gcl", "cl", 0) == (6 if autocommit else None)


def test_auto_commit_periodic_and_on_revoke(inst):
    inst.create_topic("ac", partitions=2)
    produce(inst, "ac", 20, partitioner="round_robin")
    a = klog.Consumer("ac", instance=inst, group_id="gac", auto_offset_reset="earliest",
                      auto_commit_interval_ms=0)                          # every poll
    try:
        assert len(drain(a, 20)) == 20
        a.poll(timeout_ms=0)                                              # commits what was handed out
        assert [inst.committed("gac", "ac", p) for p in (0, 1)] == [10, 10]
        produce(inst, "ac", 4, partitioner="round_robin")
    finally:
        a.close(autocommit=False)
    assert [inst.committed("gac", "ac", p) for p in (0, 1)] == [10, 10]  # the last 4 not committed
    b = klog.Consumer("ac", instance=inst, group_id="gac", auto_commit_interval_ms=3600000)
    try:
        assert len(drain(b, 4)) == 4
        b.unsubscribe()                                                   # revoke: auto-commit
    finally:
        b.close(autocommit=False)
    assert [inst.committed("gac", "ac", p) for p in (0, 1)] == [12, 12]
    c = klog.Consumer("ac", instance=inst, group_id="gac", enable_auto_commit=False)
    try:
        _joined(c)
        produce(inst, "ac", 2, partitioner="round_robin")
        assert len(drain(c, 2)) == 2
    finally:
        c.close()                                                         # no auto-commit
    assert [inst.committed("gac", "ac", p) for p in (0, 1)] == [12, 12]
