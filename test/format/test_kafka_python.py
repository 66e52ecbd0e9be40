"""klog's wire conversion against a real Kafka client's batches (kafka-python).

kafka-python's DefaultRecordBatchBuilder writes record batches v2 as its
producer sends them (gzip, snappy in snappy-java's framing, an LZ4 frame,
zstd); wire_tool (test/format/wire_tool.c) converts one to klog's stored
form with lib/format and prints what it stored and the records it reads back.
The other way, wire_tool builds a batch with klog's encoder, converts it to
the wire, and kafka-python's DefaultRecordBatch reads it: CRC validated,
every field and record compared.  Run by run_kafka_python.py (meson test
kafka_python).
"""
import os
import random
import subprocess

import pytest

from kafka.record import default_records
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka import codec as kcodec

TOOL = os.environ["WIRE_TOOL"]
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def records(n, seed):
    """Varied records: null and empty keys and values, headers (a null
    value among them), timestamps that go back and forth."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        key = None if i % 5 == 0 else (b"" if i % 11 == 0 else b"key-%d" % (i % 17))
        value = None if i % 13 == 0 else (b"" if i % 7 == 0 else
                                           b'{"n": %d, "name": "sensor-%d", "ok": true}' % (i, i % 9) * rnd.randint(1, 4))
        headers = [] if i % 3 else [("trace", b"t-%d" % i), ("empty", b""), ("none", None)][: 1 + i % 3]
        ts = 1700000000000 + i * 10 - rnd.randint(0, 25)
        out.append((ts, key, value, headers))
    return out


def build(recs, codec, producer=(-1, -1, -1)):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=CODECS[codec], is_transactional=0,
                                  producer_id=producer[0], producer_epoch=producer[1],
                                  base_sequence=producer[2], batch_size=1 << 24)
    for off, (ts, key, value, headers) in enumerate(recs):
        assert b.append(off, timestamp=ts, key=key, value=value, headers=headers) is not None
    return bytes(b.build())


def tok(b):
    return "-" if b is None else ("=" if b == b"" else b.hex())


def untok(t):
    return None if t == "-" else (b"" if t == "=" else bytes.fromhex(t))


def to_klog(wire):
    p = subprocess.run([TOOL, "to-klog"], input=wire, capture_output=True)
    if p.returncode:
        return None, p.stderr.decode().strip()
    lines = p.stdout.decode().splitlines()
    info = dict(kv.split("=", 1) for kv in lines[0].split()[1:])
    got = []
    for line in lines[1:]:
        f = line.split()
        hs = [(untok(f[i]).decode(), untok(f[i + 1])) for i in range(4, len(f), 2)]
        got.append((int(f[0]), int(f[1]), untok(f[2]), untok(f[3]), hs))
    return info, got


def expect_records(got, recs, base=0):
    assert len(got) == len(recs)
    for i, ((off, ts, key, value, hs), (wts, wkey, wvalue, whs)) in enumerate(zip(got, recs)):
        assert (off, ts, key, value, hs) == (base + i, wts, wkey, wvalue, list(whs)), "record %d" % i


@pytest.mark.parametrize("codec", list(CODECS))
def test_kafka_python_batches_are_stored_as_sent(codec):
    recs = records(400, 1)
    wire = build(recs, codec, producer=(1234, 5, 42))
    assert DefaultRecordBatch(wire).compression_type == CODECS[codec], "kafka-python compressed it"
    info, got = to_klog(wire)
    assert info is not None, got
    assert int(info["codec"]) == CODECS[codec]
    assert int(info["magic"]) == (2 if codec == "none" else 3)
    assert int(info["count"]) == 400
    assert (int(info["producer_id"]), int(info["producer_epoch"]), int(info["base_sequence"])) == (1234, 5, 42)
    # stored as sent: the records section is Kafka's, byte for byte
    assert bytes.fromhex(info["stored"]) == wire[61:]
    expect_records(got, recs)


def test_raw_snappy_as_librdkafka_sends_it(monkeypatch):
    """librdkafka writes raw snappy, without snappy-java's framing."""
    monkeypatch.setattr(default_records, "snappy_encode",
                        lambda data: kcodec.snappy_encode(data, xerial_compatible=False))
    recs = records(300, 2)
    wire = build(recs, "snappy")
    assert wire[61:69] != b"\x82SNAPPY\x00"
    info, got = to_klog(wire)
    assert info is not None, got
    assert int(info["codec"]) == 2
    expect_records(got, recs)


@pytest.mark.parametrize("codec", list(CODECS))
def test_damage_is_refused(codec):
    wire = bytearray(build(records(50, 3), codec))
    for pos in (21, 30, 61, len(wire) // 2, len(wire) - 1):
        bad = bytearray(wire)
        bad[pos] ^= 0x20
        info, err = to_klog(bytes(bad))
        assert info is None and "KLOG_ECORRUPT" in err, "byte %d: %s" % (pos, err)
    bad = bytearray(wire)
    bad[16] = 1  # magic 1: an old message set
    info, err = to_klog(bytes(bad))
    assert info is None and "KLOG_EFORMAT" in err


def from_klog(recs, codec, base, v2=False):
    lines = "".join("%d %s %s%s\n" % (ts, tok(k), tok(v), "".join(" %s %s" % (tok(hk.encode()), tok(hv))
                                                                    for hk, hv in hs))
                    for ts, k, v, hs in recs)
    args = [TOOL, "to-wire"] + (["--v2"] if v2 else []) + [codec, str(base)]
    p = subprocess.run(args, input=lines.encode(), capture_output=True)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


def expect_kafka_reads(wire, recs, codec, base):
    batch = DefaultRecordBatch(wire)
    assert batch.validate_crc(), "Kafka's CRC-32C"
    assert batch.magic == 2
    assert batch.base_offset == base
    assert batch.compression_type == CODECS[codec]
    assert batch.last_offset_delta == len(recs) - 1
    # kafka-python 2.0 has no accessors for these: its own header layout
    fields = DefaultRecordBatch.HEADER_STRUCT.unpack_from(wire)
    assert fields[9:13] == (4242, 3, 17, len(recs)), "producer id, epoch, base sequence, count"
    assert fields[2] == 9, "partition leader epoch"
    got = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch]
    want = [(base + i, ts, k, v, list(hs)) for i, (ts, k, v, hs) in enumerate(recs)]
    assert got == want


@pytest.mark.parametrize("codec", list(CODECS))
def test_klog_batches_read_by_kafka_python(codec):
    recs = records(400, 4)
    wire = from_klog(recs, codec, 987654321)
    expect_kafka_reads(wire, recs, codec, 987654321)


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_klog_0_1_batches_read_by_kafka_python(codec):
    """Batches in klog 0.1's framing, served: zstd from after its length,
    lz4 wrapped as an LZ4 frame."""
    recs = records(400, 5)
    wire = from_klog(recs, codec, 77, v2=True)
    expect_kafka_reads(wire, recs, codec, 77)


@pytest.mark.parametrize("codec", list(CODECS))
def test_round_trip_through_both(codec):
    """kafka-python -> klog -> kafka-python: what a fetch serves is what was
    produced."""
    recs = records(200, 6)
    wire = build(recs, codec)
    info, got = to_klog(wire)
    assert info is not None, got
    expect_records(got, recs)
    back = from_klog([(ts, k, v, hs) for _, ts, k, v, hs in got], codec, 0)
    expect_kafka_reads(back, recs, codec, 0)
