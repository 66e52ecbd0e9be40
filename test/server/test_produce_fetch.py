"""Produce and fetch semantics through `klog serve`, from kafka-python and
from raw frames:

  * acks 0, 1 and all (kafka-python): every record arrives, in order; with
    acks=0 the server answers nothing and the connection keeps working;
  * ListOffsets by time (kafka-python offsets_for_times), on a topic whose
    records share one batch and on one with a batch per record, and the
    earliest/latest offsets;
  * the long poll: a Fetch parked at the end of a partition (max_wait 60 s)
    is answered when a record arrives, not when the wait ends; one with
    nothing arriving waits its max_wait out (at least most of it) and
    answers empty; a Fetch with min_bytes stays parked while less than
    min_bytes has arrived, and is answered once enough has; a kafka-python
    consumer with fetch_max_wait_ms=60000 gets a record sent while it waits.

No figure is compared with a threshold: the waits are bounds far from the
values they separate (30 s against a 60 s max_wait).
"""
import select
import time

import pytest

import kwire

kafka = pytest.importorskip("kafka", reason="kafka-python (python3-kafka) is not installed; build.sh installs it")
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

N = 500


def consume_all(server, topic, want, partition=0):
    c = KafkaConsumer(bootstrap_servers=server.bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=30000,
                      enable_auto_commit=False)
    tp = TopicPartition(topic, partition)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got = []
    for m in c:
        got.append(m)
        if len(got) >= want:
            break
    c.close()
    return got


@pytest.mark.parametrize("acks", [0, 1, "all"], ids=["acks0", "acks1", "acksall"])
def test_acks(server, acks):
    topic = "acks-%s" % acks
    p = KafkaProducer(bootstrap_servers=server.bootstrap, acks=acks, linger_ms=5, retries=0)
    futs = [p.send(topic, key=b"k%d" % (i % 5), value=b"v-%d" % i, partition=0) for i in range(N)]
    p.flush(timeout=30)
    mds = [f.get(timeout=30) for f in futs]
    if acks == 0:
        assert all(md.offset == -1 for md in mds), "acks=0 yet offsets came back"
    else:
        assert [md.offset for md in mds] == list(range(N)), "acks=%s: offsets not 0..%d" % (acks, N - 1)
    # the same producer connection goes on working after acks=0 requests
    more = p.send(topic, value=b"after", partition=0).get(timeout=30)
    p.close(timeout=10)
    got = consume_all(server, topic, N + 1)
    assert [m.value for m in got] == [b"v-%d" % i for i in range(N)] + [b"after"]
    assert [m.key for m in got[:N]] == [b"k%d" % (i % 5) for i in range(N)]
    assert [m.offset for m in got] == list(range(N + 1))
    if acks != 0:
        assert more.offset == N


# An hour ago: records stamped in 2023 are past the default retention
# (7 days), and the retention pass could delete them mid-test.
BASE_TS = (int(time.time()) - 3600) * 1000


@pytest.mark.parametrize("one_batch", [True, False], ids=["one-batch", "batch-per-record"])
def test_offsets_for_times(server, one_batch):
    topic = "times-%s" % ("one" if one_batch else "many")
    p = KafkaProducer(bootstrap_servers=server.bootstrap, acks=1, linger_ms=100 if one_batch else 0)
    for i in range(10):
        f = p.send(topic, value=b"t%d" % i, timestamp_ms=BASE_TS + i * 1000, partition=0)
        if not one_batch:
            f.get(timeout=30)
    p.flush(timeout=30)
    p.close(timeout=10)
    c = KafkaConsumer(bootstrap_servers=server.bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    try:
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 10}
        cases = {BASE_TS - 5000: 0, BASE_TS: 0, BASE_TS + 1: 1, BASE_TS + 3000: 3, BASE_TS + 3500: 4,
                 BASE_TS + 9000: 9}
        for ts, want in cases.items():
            got = c.offsets_for_times({tp: ts})[tp]
            assert got is not None, "offsets_for_times(%d) found nothing (want offset %d)" % (ts, want)
            assert (got.offset, got.timestamp) == (want, BASE_TS + want * 1000), \
                "offsets_for_times(BASE+%d) = %s, want offset %d" % (ts - BASE_TS, got, want)
        assert c.offsets_for_times({tp: BASE_TS + 9001})[tp] is None, "a timestamp after every record"
    finally:
        c.close()


def produce_one(server, topic, value):
    p = KafkaProducer(bootstrap_servers=server.bootstrap, acks=1)
    md = p.send(topic, value=value, partition=0).get(timeout=30)
    p.close(timeout=10)
    return md.offset


def fetch(sock, corr, topic, offset, max_wait_ms, min_bytes):
    sock.sendall(kwire.request(kwire.API_FETCH, 4, corr, kwire.fetch_v4(topic, 0, offset, max_wait_ms, min_bytes)))


def fetch_answer(sock, corr, timeout):
    got, body = kwire.read_response(sock, timeout)
    assert got == corr
    (t, p, err, hw, records), = kwire.parse_fetch_v4(body)
    assert err == 0, "Fetch error %d" % err
    return hw, kwire.batches_of(records)


def readable(sock, seconds):
    return bool(select.select([sock], [], [], seconds)[0])


def test_long_poll_answers_when_data_arrives(server):
    assert produce_one(server, "lp", b"first") == 0
    s = kwire.connect(server.bootstrap)
    try:
        kwire.api_versions(s)
        fetch(s, 7, "lp", 1, 60000, 1)
        assert not readable(s, 0.5), "a Fetch at the end with max_wait 60 s answered before any record arrived"
        assert produce_one(server, "lp", b"second") == 1
        hw, batches = fetch_answer(s, 7, 30)
        assert hw == 2 and batches and batches[0][0] == 1, (hw, batches)
    finally:
        s.close()


def test_long_poll_waits_out_max_wait(server):
    produce_one(server, "lp-idle", b"only")
    s = kwire.connect(server.bootstrap)
    try:
        kwire.api_versions(s)
        t0 = time.monotonic()
        fetch(s, 8, "lp-idle", 1, 1500, 1)
        hw, batches = fetch_answer(s, 8, 30)
        took = time.monotonic() - t0
        assert (hw, batches) == (1, []), (hw, batches)
        assert took >= 1.0, "a Fetch with max_wait 1500 ms and nothing to read answered after %.3f s" % took
    finally:
        s.close()


def test_fetch_min_bytes(server):
    produce_one(server, "lp-min", b"x")
    s = kwire.connect(server.bootstrap)
    try:
        kwire.api_versions(s)
        fetch(s, 9, "lp-min", 1, 60000, 8000)
        produce_one(server, "lp-min", b"small")
        assert not readable(s, 1.0), "a Fetch with min_bytes 8000 answered with one small record to read"
        p = KafkaProducer(bootstrap_servers=server.bootstrap, acks=1, linger_ms=0)
        for i in range(20):
            p.send("lp-min", value=b"%04d" % i + b"y" * 996, partition=0).get(timeout=30)
        p.close(timeout=10)
        hw, batches = fetch_answer(s, 9, 30)  # once 8000 bytes are there: 8 or more of the 1 KB records
        assert hw >= 10 and batches and batches[0][0] == 1, (hw, batches[:3])
    finally:
        s.close()


def test_consumer_long_poll(server):
    """kafka-python consumer with fetch_max_wait_ms=60000 at the end of a
    partition: a record sent meanwhile is delivered well before 60 s."""
    produce_one(server, "lp-client", b"old")
    c = KafkaConsumer(bootstrap_servers=server.bootstrap, fetch_max_wait_ms=60000, fetch_min_bytes=1,
                      enable_auto_commit=False)
    tp = TopicPartition("lp-client", 0)
    c.assign([tp])
    c.seek_to_end(tp)
    assert c.position(tp) == 1
    assert c.poll(timeout_ms=500) == {}  # its Fetch now waits in the server
    produce_one(server, "lp-client", b"new")
    got = []
    end = time.monotonic() + 30
    while not got and time.monotonic() < end:
        for recs in c.poll(timeout_ms=500).values():
            got += [m.value for m in recs]
    c.close()
    assert got == [b"new"], "the consumer did not get the record within 30 s (max wait 60 s): %r" % got
