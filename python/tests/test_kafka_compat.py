"""klog.kafka over a local directory: kafka-python's classes, records,
futures, exceptions and keyword arguments (used, accepted, or refused with
the reason).  test_kafka_serve.py runs the same program over `klog serve`."""

import json
import os
import subprocess
import sys

import pytest

import klog
import klog.kafka as kk
from klog.kafka import errors as ke
from conftest import PKG_ROOT

import kafka_program

try:
    import kafka as kafka_python
except ImportError:
    kafka_python = None

needs_kafka_python = pytest.mark.skipif(kafka_python is None, reason="python3-kafka is not installed")


def _consume(c, n, timeout_ms=200, tries=100):
    out = []
    for _ in range(tries):
        if len(out) >= n:
            break
        for recs in c.poll(timeout_ms=timeout_ms).values():
            out.extend(recs)
    return out


def test_program_over_a_directory(data_dir):
    seen = kafka_program.run(kk, path=data_dir)
    assert seen["second_create"] == "TopicAlreadyExistsError"
    assert seen["listed"] and seen["deleted"] and seen["groups"]
    assert seen["partitions_for"] == [0, 1, 2]
    assert seen["metadata_type"] and seen["one_partition_per_key"] and seen["record_type"]
    assert seen["record_fields"] == ("topic", "partition", "offset", "timestamp", "timestamp_type", "key",
                                     "value", "headers")
    assert seen["records"] == sorted(("k%d" % (i % 5), i, [("src", b"prog")], 0) for i in range(kafka_program.N))
    assert seen["sizes"] == [(2, 8), (2, 9)]
    assert seen["assignment"] == [0, 1, 2] and seen["committed_is_end"]
    assert seen["committed0"] == 0 and seen["group_offsets_p0"] == (0, "rewound")
    assert seen["group_offsets"] == [0, 1, 2]


@needs_kafka_python
def test_names_are_kafka_pythons():
    """One set of classes for both modes: isinstance and except hold
    whichever side raised or built the object."""
    import kafka.errors
    import kafka.structs
    from kafka.consumer.fetcher import ConsumerRecord
    assert kk.TopicPartition is kafka.structs.TopicPartition
    assert kk.OffsetAndMetadata is kafka.structs.OffsetAndMetadata
    assert kk.ConsumerRecord is ConsumerRecord
    assert kk.ConsumerRebalanceListener is kafka_python.ConsumerRebalanceListener
    for name in ("KafkaError", "KafkaTimeoutError", "UnknownTopicOrPartitionError", "CommitFailedError",
                 "TopicAlreadyExistsError", "MessageSizeTooLargeError", "KafkaConfigurationError",
                 "OffsetOutOfRangeError", "IllegalStateError"):
        assert getattr(ke, name) is getattr(kafka.errors, name), name
    assert issubclass(ke.KafkaStorageError, kafka.errors.KafkaError)   # not in kafka-python 2.0: klog's


def test_configs_used_accepted_refused(data_dir):
    with klog.open(data_dir) as k:
        k.create_topic("t")
    # accepted: they hold here, or they are kafka-python's default
    p = kk.KafkaProducer(path=data_dir, retries=5, retry_backoff_ms=10, metadata_max_age_ms=1000,
                         max_in_flight_requests_per_connection=1, security_protocol="PLAINTEXT", api_version=None,
                         compression_type="zstd", batch_size=16384, compression_level=3)   # the last is klog's
    p.close()
    with pytest.raises(ke.KafkaConfigurationError) as ei:
        kk.KafkaProducer(path=data_dir, security_protocol="SSL")
    assert "security_protocol='SSL' is refused: it configures the network connection" in str(ei.value)
    with pytest.raises(ke.KafkaConfigurationError) as ei:
        kk.KafkaProducer(path=data_dir, ssl_cafile="/x")
    assert "bootstrap_servers=" in str(ei.value)
    with pytest.raises(ke.KafkaConfigurationError) as ei:
        kk.KafkaProducer(path=data_dir, transactional_id="tx")
    assert "no transactions" in str(ei.value)
    with pytest.raises(ke.KafkaConfigurationError) as ei:
        kk.KafkaProducer(path=data_dir, no_such_setting=1)
    assert "no.such.setting" in str(ei.value)                     # klog names the key
    with pytest.raises(ke.KafkaConfigurationError):
        kk.KafkaProducer(path=data_dir, acks=2)
    c = kk.KafkaConsumer("t", path=data_dir, request_timeout_ms=305000, fetch_max_wait_ms=100, isolation_level="read_committed",
                         max_partition_fetch_bytes=kk.KafkaConsumer.DEFAULT_CONFIG.get("max_partition_fetch_bytes", 1048576))
    c.close()
    with pytest.raises(ke.KafkaConfigurationError) as ei:
        kk.KafkaConsumer("t", path=data_dir, max_partition_fetch_bytes=1000)
    assert "no per-partition limit" in str(ei.value)
    with pytest.raises(ke.KafkaConfigurationError) as ei:
        kk.KafkaConsumer("t", path=data_dir, sasl_mechanism="PLAIN")
    assert "network connection" in str(ei.value)
    with pytest.raises(ke.KafkaConfigurationError):
        kk.KafkaConsumer("t", path=data_dir, partition_assignment_strategy=["nosuch"])
    with pytest.raises(ke.KafkaConfigurationError):
        kk.KafkaConsumer("t", path=data_dir, bootstrap_servers="127.0.0.1:1")     # both
    with pytest.raises(ke.KafkaConfigurationError) as ei:
        kk.KafkaProducer()                                                  # neither
    assert "path=" in str(ei.value) and "bootstrap_servers=" in str(ei.value)
    with pytest.raises(ke.KafkaConfigurationError):
        kk.KafkaAdminClient(path=data_dir, ssl_certfile="/x")


def test_producer_futures_and_errors(data_dir):
    with klog.open(data_dir) as k:
        k.create_topic("t", partitions=4)
    p = kk.KafkaProducer(path=data_dir, max_request_size=1000,
                         partitioner=lambda key, parts, avail: parts[-1])       # kafka-python's signature
    try:
        md = p.send("t", b"v", key=b"k").get(timeout=10)
        assert (md.partition, md.offset) == (3, 0)                              # the partitioner chose
        assert md.topic_partition == kk.TopicPartition("t", 3)
        big = p.send("t", b"x" * 2000)                                          # over max_request_size
        assert big.failed() and isinstance(big.exception, ke.MessageSizeTooLargeError)
        with pytest.raises(ke.MessageSizeTooLargeError):
            big.get()
        nope = p.send("nosuch", b"v")
        with pytest.raises(ke.UnknownTopicOrPartitionError) as ei:
            nope.get(timeout=10)
        assert isinstance(ei.value.klog_error, klog.UnknownTopicError)
        got = []
        p.send("t", b"cb", partition=1).add_callback(got.append).add_errback(got.append)
        p.flush(timeout=10)
        assert len(got) == 1 and got[0].partition == 1 and got[0].offset == 0
        with pytest.raises(ke.UnknownTopicOrPartitionError):
            p.partitions_for("nosuch")
        with pytest.raises(AssertionError):
            p.send("t")                                                         # key and value None
        m = p.metrics()["producer-metrics"]
        assert m["record-send-total"] == 2 and m["record-error-total"] == 0
    finally:
        p.close()
    with pytest.raises(ke.KafkaError):
        p.send("t", b"late")


def test_consumer_surface(data_dir):
    with klog.open(data_dir) as k:
        k.create_topic("c", partitions=2, retention_ms=-1)
    with kk.KafkaProducer(path=data_dir) as p:
        for i in range(6):
            p.send("c", b"v%d" % i, partition=i % 2, timestamp_ms=1000 + i)
        p.flush()
    tp0, tp1 = kk.TopicPartition("c", 0), kk.TopicPartition("c", 1)
    c = kk.KafkaConsumer(path=data_dir, group_id="gc", auto_offset_reset="earliest", enable_auto_commit=True,
                         auto_commit_interval_ms=3600000)
    try:
        calls = []
        c.subscribe(["c"], listener=_Recorder(calls))
        assert c.subscription() == {"c"}
        with pytest.raises(ke.IllegalStateError):
            c.assign([tp0])                                                     # subscribed
        recs = _consume(c, 6)
        assert sorted(r.value for r in recs) == [b"v%d" % i for i in range(6)]
        assert ("assigned", {tp0, tp1}) in calls and all(type(t) is kk.TopicPartition for t in calls[0][1])
        assert c.highwater(tp0) == 3 and c.position(tp1) == 3
        assert c.offsets_for_times({tp0: 1002, tp1: 2000}) == {tp0: kk.structs.OffsetAndTimestamp(1, 1002), tp1: None}
        c.pause(tp0)
        assert c.paused() == {tp0}
        c.seek_to_beginning()
        assert {r.partition for r in _consume(c, 3)} == {1}                     # tp0 paused
        c.resume(tp0)
        assert {r.partition for r in _consume(c, 3)} == {0}
        results = []
        fut = c.commit_async(callback=lambda offsets, exc: results.append((offsets, exc)))
        assert fut.succeeded()
        assert results == [({tp0: kk.OffsetAndMetadata(3, ""), tp1: kk.OffsetAndMetadata(3, "")}, None)]
        m = c.metrics()
        assert m["consumer-fetch-manager-metrics"]["records-consumed-total"] >= 12
        assert c.topics() == {"c"} and c.partitions_for_topic("c") == {0, 1}
        assert c.beginning_offsets([tp0]) == {tp0: 0} and c.end_offsets([tp1]) == {tp1: 3}
        c.seek(tp0, 1)
        with pytest.raises(AssertionError):
            c.seek(tp0, -1)
    finally:
        c.close(autocommit=False)                                               # no commit at close
    with klog.open(data_dir) as k:
        assert k.committed("gc", "c", 0) == 3                                   # the commit_async, not 1


class _Recorder(kk.ConsumerRebalanceListener):
    def __init__(self, calls):
        self.calls = calls

    def on_partitions_revoked(self, revoked):
        self.calls.append(("revoked", set(revoked)))

    def on_partitions_assigned(self, assigned):
        self.calls.append(("assigned", set(assigned)))


def test_consumer_without_group_and_deserializers(data_dir):
    with klog.open(data_dir) as k:
        k.create_topic("j", partitions=2)
    with kk.KafkaProducer(path=data_dir, value_serializer=lambda v: json.dumps(v).encode()) as p:
        for i in range(4):
            p.send("j", {"i": i})
        p.flush()
    c = kk.KafkaConsumer("j", path=data_dir, auto_offset_reset="earliest", value_deserializer=json.loads,
                         consumer_timeout_ms=500, fetch_min_bytes=1 << 20, fetch_max_wait_ms=100)
    try:
        assert c.subscription() == {"j"} and len(c.assignment()) == 2           # every partition, no group
        assert sorted(r.value["i"] for r in c) == [0, 1, 2, 3]                  # the iterator stops after 500 ms
        c.seek_to_beginning()
        got = c.poll(timeout_ms=5000)                                           # fetch_min_bytes: waits, then all
        assert sum(len(v) for v in got.values()) == 4
        with pytest.raises(ke.IllegalStateError):
            c.commit()                                                          # no group
        c.unsubscribe()
        assert c.assignment() == set() and c.subscription() is None
        c.assign([kk.TopicPartition("j", 1)])
        assert c.assignment() == {kk.TopicPartition("j", 1)}
    finally:
        c.close()


def test_commit_failed_after_rebalance(data_dir):
    """A member that lost its partitions (removed after its session
    timeout) and commits gets kafka-python's CommitFailedError."""
    with klog.open(data_dir) as k:
        k.create_topic("r", partitions=2)
    a = kk.KafkaConsumer("r", path=data_dir, group_id="gr", session_timeout_ms=200, heartbeat_interval_ms=50)
    b = None
    try:
        for _ in range(100):
            a.poll(timeout_ms=100)
            if a.assignment():
                break
        assert a.assignment()
        b = kk.KafkaConsumer("r", path=data_dir, group_id="gr")
        for _ in range(300):     # a does not poll: it is removed, and b takes every partition
            b.poll(timeout_ms=100)
            if len(b.assignment()) == 2:
                break
        assert len(b.assignment()) == 2
        with pytest.raises(ke.CommitFailedError) as ei:
            a.commit({kk.TopicPartition("r", 0): kk.OffsetAndMetadata(0, "")})
        assert isinstance(ei.value.klog_error, (klog.UnknownMemberError, klog.FencedError,
                                                klog.RebalanceInProgressError))
    finally:
        if b is not None:
            b.close()
        a.close()


def test_error_translation():
    from klog import errors as kerr
    for code, where, cls in [(kerr.KLOG_EFENCED, "commit", ke.CommitFailedError),
                             (kerr.KLOG_EREBALANCE, "commit", ke.CommitFailedError),
                             (kerr.KLOG_EUNKNOWN_TOPIC, None, ke.UnknownTopicOrPartitionError),
                             (kerr.KLOG_EBADNAME, "group", ke.InvalidGroupIdError),
                             (kerr.KLOG_EBADNAME, None, ke.InvalidTopicError),
                             (kerr.KLOG_ECONF, "admin", ke.InvalidConfigurationError),
                             (kerr.KLOG_EQUEUEFULL, None, ke.KafkaTimeoutError),
                             (kerr.KLOG_EDISKFULL, None, ke.KafkaStorageError),
                             (-17, "admin", ke.TopicAlreadyExistsError)]:
        e = ke.translate(kerr.error_for(code), where)
        assert type(e) is cls and e.klog_error.code == code, (code, where)
    assert type(ke.translate(kerr.error_for(-5))) is ke.KafkaStorageError    # -EIO


def test_admin(data_dir):
    a = kk.KafkaAdminClient(path=data_dir)
    try:
        r = a.create_topics([kk.NewTopic("a1", 2, 1, topic_configs={"retention.ms": "60000"}),
                             kk.NewTopic("a2", 1, 1)])
        assert r.topic_errors == [("a1", 0, None), ("a2", 0, None)]
        with pytest.raises(ke.InvalidReplicationFactorError):
            a.create_topics([kk.NewTopic("a3", 1, 3)])
        with pytest.raises(ke.InvalidTopicError):
            a.create_topics([kk.NewTopic("bad name", 1, 1)], validate_only=True)
        with pytest.raises(ke.InvalidConfigurationError):
            a.create_topics([kk.NewTopic("a4", 1, 1, topic_configs={"retention.ms": "soon"})])
        a.create_topics([kk.NewTopic("a5", 1, 1)], validate_only=True)
        assert "a5" not in a.list_topics()
        a.create_topics([kk.NewTopic("a6", -1, -1, replica_assignments={0: [0], 1: [0], 2: [0]})])
        with pytest.raises(ke.InvalidReplicationAssignmentError):
            a.create_topics([kk.NewTopic("a7", -1, -1, replica_assignments={0: [1]})])
        d = {t["topic"]: t for t in a.describe_topics(["a1", "a6", "nosuch"])}
        assert len(d["a1"]["partitions"]) == 2 and len(d["a6"]["partitions"]) == 3
        assert d["nosuch"]["error_code"] == 3
        a.create_partitions({"a1": kk.NewPartitions(4)})
        with pytest.raises(ke.InvalidPartitionsError):
            a.create_partitions({"a1": kk.NewPartitions(3)})
        cr = kk.ConfigResource(kk.ConfigResourceType.TOPIC, "a1")
        rows = a.describe_configs([cr])[0].resources
        assert rows[0][0] == 0 and ("retention.ms", "60000", False, False, False) in rows[0][4]
        a.alter_configs([kk.ConfigResource(kk.ConfigResourceType.TOPIC, "a1", configs={"cleanup.policy": "compact"})])
        entries = dict((e[0], e[1]) for e in a.describe_configs([cr])[0].resources[0][4])
        assert entries == {"cleanup.policy": "compact"}                        # not incremental: retention.ms went
        with kk.KafkaProducer(path=data_dir) as p:
            for i in range(5):
                p.send("a2", b"x", partition=0)
            p.flush()
        assert a.delete_records({kk.TopicPartition("a2", 0): 3}) == {kk.TopicPartition("a2", 0): {"low_watermark": 3}}
        c = kk.KafkaConsumer("a2", path=data_dir, group_id="ga", auto_offset_reset="earliest")
        try:
            assert len(_consume(c, 2)) == 2
            c.commit()
            info = a.describe_consumer_groups(["ga", "nosuch"])
            assert info[0].group == "ga" and info[0].state == "Stable" and len(info[0].members) == 1
            assert info[0].members[0].member_assignment.partitions() == [kk.TopicPartition("a2", 0)]
            assert info[1].state == "Dead"
            assert dict(a.delete_consumer_groups(["ga"]))["ga"] is ke.NonEmptyGroupError
        finally:
            c.close()
        assert ("ga", "consumer") in a.list_consumer_groups()
        assert a.list_consumer_group_offsets("ga") == {kk.TopicPartition("a2", 0): kk.OffsetAndMetadata(5, "")}
        assert dict(a.delete_consumer_groups(["ga", "nosuch"])) == {"ga": ke.NoError, "nosuch": ke.GroupIdNotFoundError}
        r = a.delete_topics(["a6"])
        assert r.topic_error_codes == [("a6", 0)]
        with pytest.raises(ke.UnknownTopicOrPartitionError):
            a.delete_topics(["a6"])
    finally:
        a.close()


def test_without_kafka_python(data_dir):
    """Without kafka-python installed, klog.kafka still works over a
    directory with look-alike classes, and says what bootstrap_servers= needs."""
    code = r"""
import sys
sys.modules["kafka"] = None          # import kafka -> ImportError
import klog.kafka as kk
from klog.kafka import errors as ke
assert kk._compat.kafka_python is None
a = kk.KafkaAdminClient(path=sys.argv[1])
a.create_topics([kk.NewTopic("t", 1, 1)])
try:
    a.create_topics([kk.NewTopic("t", 1, 1)])
except ke.TopicAlreadyExistsError as e:
    assert isinstance(e, ke.BrokerResponseError) and e.errno == 36
p = kk.KafkaProducer(path=sys.argv[1])
md = p.send("t", b"v").get(10)
p.close()
c = kk.KafkaConsumer("t", path=sys.argv[1], auto_offset_reset="earliest", consumer_timeout_ms=1000)
r = next(iter(c))
assert r.value == b"v" and r.timestamp_type == 0 and type(r).__name__ == "ConsumerRecord"
c.close()
a.close()
try:
    kk.KafkaProducer(bootstrap_servers="127.0.0.1:1")
except ke.KafkaConfigurationError as e:
    print("refused:", e)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [PKG_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    out = subprocess.run([sys.executable, "-c", code, data_dir], env=env, timeout=120, check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    assert "refused:" in out and "kafka-python, which is not installed" in out
