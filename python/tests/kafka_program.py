"""A kafka-python program, written against kafka-python's names only; the
tests run it with `klog.kafka` in place of `kafka` (the import line is the
only change), over a directory (path=) and over `klog serve`
(bootstrap_servers=), and compare what it saw.

run(kafka, **where): `kafka` is the module the names come from, `where`
either path=DIR or bootstrap_servers=HOST:PORT.  Returns a dict of what
the program observed, free of timestamps and of partition placement
(a directory uses klog's partitioner, kafka-python its own).
"""

import json
import time

N = 30
WAIT_S = 60.0


def _poll_until(consumer, n, timeout=WAIT_S):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=200).values():
            out.extend(recs)
    return out


def run(kafka, topic="orders", group="billing", **where):
    seen = {}
    errors = kafka.errors
    admin = kafka.KafkaAdminClient(client_id="prog-admin", **where)
    admin.create_topics([kafka.NewTopic(name=topic, num_partitions=3, replication_factor=1)])
    try:
        admin.create_topics([kafka.NewTopic(name=topic, num_partitions=3, replication_factor=1)])
        seen["second_create"] = "created"
    except errors.TopicAlreadyExistsError:
        seen["second_create"] = "TopicAlreadyExistsError"
    seen["listed"] = topic in admin.list_topics()

    producer = kafka.KafkaProducer(client_id="prog-producer", acks="all", linger_ms=5, retries=3,
                                   max_in_flight_requests_per_connection=1,
                                   key_serializer=str.encode,
                                   value_serializer=lambda v: json.dumps(v).encode(), **where)
    seen["partitions_for"] = sorted(producer.partitions_for(topic))
    futures = [producer.send(topic, {"n": i}, key="k%d" % (i % 5), headers=[("src", b"prog")])
               for i in range(N)]
    producer.flush(timeout=WAIT_S)
    metas = [f.get(timeout=WAIT_S) for f in futures]
    seen["metadata_type"] = all(isinstance(m, tuple) and m.topic_partition == kafka.TopicPartition(m.topic, m.partition)
                                for m in metas)
    seen["sizes"] = sorted({(m.serialized_key_size, m.serialized_value_size) for m in metas})
    placement = {}
    for i, m in enumerate(metas):
        placement.setdefault("k%d" % (i % 5), set()).add(m.partition)
    seen["one_partition_per_key"] = all(len(p) == 1 for p in placement.values())
    producer.close()

    consumer = kafka.KafkaConsumer(topic, group_id=group, client_id="prog-consumer", auto_offset_reset="earliest",
                                   enable_auto_commit=False, key_deserializer=bytes.decode,
                                   value_deserializer=json.loads, request_timeout_ms=40000,
                                   session_timeout_ms=30000, **where)
    records = _poll_until(consumer, N)
    seen["records"] = sorted((r.key, r.value["n"], r.headers, r.timestamp_type) for r in records)
    seen["record_type"] = all(isinstance(r, kafka.ConsumerRecord) for r in records)
    seen["record_fields"] = type(records[0])._fields[:8] if records else None
    consumer.commit()
    assignment = consumer.assignment()
    seen["assignment"] = sorted(tp.partition for tp in assignment)
    ends = consumer.end_offsets(list(assignment))
    seen["committed_is_end"] = all(consumer.committed(tp) == ends[tp] for tp in assignment)
    tp0 = kafka.TopicPartition(topic, 0)
    consumer.commit({tp0: kafka.OffsetAndMetadata(0, "rewound")})
    seen["committed0"] = consumer.committed(tp0)
    consumer.close()

    seen["groups"] = group in [g for g, _ in admin.list_consumer_groups()]
    offsets = admin.list_consumer_group_offsets(group)
    seen["group_offsets"] = sorted(tp.partition for tp in offsets)
    seen["group_offsets_p0"] = (offsets[tp0].offset, offsets[tp0].metadata)
    admin.delete_topics([topic])
    seen["deleted"] = topic not in admin.list_topics()
    admin.close()
    return seen
