"""One member of a consumer group, in its own process (test_confluent_group.py).

    group_member.py BOOTSTRAP TOPIC GROUP OUTFILE [MAX_SECONDS]

A confluent-kafka Consumer subscribed to TOPIC in GROUP (auto commit off,
auto.offset.reset=earliest) that commits every record synchronously after
reading it, and writes what happens to OUTFILE as JSON lines, flushed:
  {"ev": "assign", "parts": [...], "committed": {part: offset}}
  {"ev": "revoke", "parts": [...]}
  {"ev": "rec", "p": part, "o": offset, "v": value}
  {"ev": "committed", "p": ..., "o": ...}      (the record's commit returned)
  {"ev": "commit-failed", "p": ..., "o": ..., "err": ...}
  {"ev": "error", "err": ...}      (consumer errors, e.g. while the server restarts)
  {"ev": "closed"}
SIGTERM ends the loop: close() leaves the group, then exit 0.  The process
also ends by itself after MAX_SECONDS (default 300), so nothing outlives a
test that forgot it.
"""
import json
import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException

bootstrap, topic, group, outfile = sys.argv[1:5]
max_seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 300.0
out = open(outfile, "a")
stop = False


def emit(**ev):
    ev["t"] = time.time()
    out.write(json.dumps(ev) + "\n")
    out.flush()


def on_term(sig, frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

c = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "session.timeout.ms": 10000,
    "heartbeat.interval.ms": 500,
    "socket.timeout.ms": 30000,
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 500,
    "error_cb": lambda e: emit(ev="error", err=str(e)),
})


def on_assign(consumer, parts):
    committed = {}
    try:
        for tp in consumer.committed(parts, timeout=20):
            committed[tp.partition] = tp.offset
    except KafkaException as e:
        committed = {"error": str(e)}
    emit(ev="assign", parts=sorted(tp.partition for tp in parts), committed=committed)


def on_revoke(consumer, parts):
    emit(ev="revoke", parts=sorted(tp.partition for tp in parts))


c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
end = time.monotonic() + max_seconds
while not stop and time.monotonic() < end:
    m = c.poll(0.2)
    if m is None:
        continue
    if m.error():
        emit(ev="error", err=str(m.error()))
        continue
    emit(ev="rec", p=m.partition(), o=m.offset(), v=m.value().decode())
    try:
        c.commit(message=m, asynchronous=False)
        emit(ev="committed", p=m.partition(), o=m.offset())
    except KafkaException as e:
        emit(ev="commit-failed", p=m.partition(), o=m.offset(), err=str(e))
c.close()
emit(ev="closed")
out.close()
# out at once: the group and its commits are done with, and nothing after
# this is under test (librdkafka 2.0's handle teardown has hung in
# test_groups_clients.py's members, confluentinc/librdkafka#3470)
os._exit(0)
