#!/usr/bin/python3
"""examples/python_consumer.py - a Python consumer of a C producer.

The C event bus (examples/event_bus.c) writes keyed JSON events to the topic
"events"; this program reads them back in a consumer group through the
ctypes package (python/klog), counts them per key, checks that each key's
events arrive in order, and commits where it stopped, so a second run reads
only what was written since.

    examples/python_consumer.py DATA_DIR [--group NAME] [--expect N]

Exit status: 0 if every event was read in order (and --expect matched),
1 otherwise.  Needs no compiler: only libklog.so (KLOG_LIBRARY=/path, or an
installed klog).
"""
import argparse
import json
import sys

import klog


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--group", default="python-readers")
    ap.add_argument("--expect", type=int, default=None, help="events this run must read")
    ap.add_argument("--idle-ms", type=int, default=2000, help="stop after this long with nothing new")
    a = ap.parse_args()

    last = {}        # (producer, key) -> last sequence number seen
    per_key = {}
    disorder = 0
    n = 0
    with klog.open(a.dir) as k:
        with klog.Consumer("events", instance=k, group_id=a.group, auto_offset_reset="earliest",
                           enable_auto_commit=False, consumer_timeout_ms=a.idle_ms) as c:
            for rec in c:    # ConsumerRecord: topic, partition, offset, timestamp, key, value, headers, ...
                ev = json.loads(rec.value)
                key = rec.key.decode()
                per_key[key] = per_key.get(key, 0) + 1
                mark = (ev["producer"], key)
                if ev["seq"] <= last.get(mark, -1):
                    disorder += 1
                last[mark] = ev["seq"]
                n += 1
            c.commit()   # the next run starts here
    print(f"read {n} events of {len(per_key)} keys from the C producer's topic; "
          f"{disorder} out of order")
    ok = disorder == 0 and (a.expect is None or n == a.expect)
    if a.expect is not None and n != a.expect:
        print(f"expected {a.expect} events", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
