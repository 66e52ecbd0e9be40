"""The seed's kafka-python example against `klog serve`, as a user writes it.

    producer = KafkaProducer(bootstrap_servers=...)
    producer.send('test-topic', b'Hello, Kafka!')
    consumer = KafkaConsumer('test-topic', bootstrap_servers=..., auto_offset_reset='earliest')
    for message in consumer: ...

Nothing is pinned (no api_version): kafka-python probes the server with
ApiVersions v0 + Metadata v0 and picks its request versions from the
answer; the topic does not exist beforehand (auto-creation).  The only
change to the example is consumer_timeout_ms, so that a consumer that never
sees the record ends the loop and fails the test instead of hanging.
"""
import pytest

kafka = pytest.importorskip("kafka", reason="kafka-python (python3-kafka) is not installed; build.sh installs it")
from kafka import KafkaConsumer, KafkaProducer  # noqa: E402


def read_all(consumer, want, limit=30000):
    got = []
    for message in consumer:
        got.append(message)
        if len(got) >= want:
            break
    return got


def test_hello_kafka(server):
    producer = KafkaProducer(bootstrap_servers=server.bootstrap)
    fut = producer.send('test-topic', b'Hello, Kafka!')
    producer.flush(timeout=30)
    md = fut.get(timeout=30)
    assert md.topic == 'test-topic' and md.offset == 0
    producer.close(timeout=10)

    consumer = KafkaConsumer('test-topic', bootstrap_servers=server.bootstrap,
                             auto_offset_reset='earliest', consumer_timeout_ms=30000)
    got = read_all(consumer, 1)
    consumer.close()
    assert [m.value for m in got] == [b'Hello, Kafka!']
    assert got[0].offset == 0 and got[0].key is None


def test_hello_kafka_in_a_group(server):
    """The same with group_id: the consumer joins a group through the
    server's coordinator, and a second consumer of the group after it
    resumes from its commit (sees only the record sent after)."""
    producer = KafkaProducer(bootstrap_servers=server.bootstrap)
    producer.send('test-topic', b'Hello, Kafka!').get(timeout=30)

    consumer = KafkaConsumer('test-topic', bootstrap_servers=server.bootstrap, group_id='my-group',
                             auto_offset_reset='earliest', consumer_timeout_ms=30000)
    got = read_all(consumer, 1)
    assert [m.value for m in got] == [b'Hello, Kafka!']
    consumer.commit()
    consumer.close()

    producer.send('test-topic', b'Hello again').get(timeout=30)
    producer.close(timeout=10)
    consumer = KafkaConsumer('test-topic', bootstrap_servers=server.bootstrap, group_id='my-group',
                             auto_offset_reset='earliest', consumer_timeout_ms=30000)
    got = read_all(consumer, 1)
    consumer.close()
    assert [m.value for m in got] == [b"Hello again"]
