"""kcat (librdkafka) against `klog serve`: produce (-P), consume (-C -e) and
metadata (-L), once per batch codec (-z none, gzip, snappy, lz4, zstd).

Per codec, on a topic of 3 partitions created beforehand with the klog CLI:
  * 40 files of binary bytes (every byte value, NULs and newlines, some
    compressible, some not, 1 byte to 60 KB), each file one record;
  * 2,000 keyed text lines (-K:), so that batches hold many records;
then kcat -C -e reads the topic back and every record's key and value must
come back byte for byte, each partition's offsets 0, 1, 2, ... with its
records in the order they were sent.  A raw Fetch of each partition then
checks what the server sends: magic-2 batches with a valid CRC-32C, each
with the codec kcat gave it (the server stores and serves a batch as sent,
never re-encodes it; librdkafka sends a batch uncompressed when the codec
would not shrink it, the lines always compress).  kcat -L (and -L -J) must list the topic with its three
partitions, each led by a broker it lists.
"""
import json
import random
import re
import shutil
import subprocess

import pytest

import kwire

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not installed (Debian kcat; build.sh installs it)")

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
PARTS = 3
TIMEOUT = 120  # seconds for one kcat run


def kcat(server, *args, stdin=None):
    argv = [KCAT, "-b", server.bootstrap, "-X", "socket.timeout.ms=30000"] + list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=TIMEOUT)
    assert p.returncode == 0, "`%s` exited %d\nstderr:\n%s" % (" ".join(argv), p.returncode,
                                                                 p.stderr.decode(errors="replace")[-4000:])
    return p.stdout


def payloads(seed):
    rnd = random.Random(seed)
    out = [bytes(range(256)), b"\n", b"\x00", b"\n\n\x00\n"]
    while len(out) < 40:
        n = rnd.choice([1, 7, 100, 1000, 5000, 20000, 60000])
        if rnd.random() < 0.5:
            v = bytes(rnd.getrandbits(8) for _ in range(n))
        else:
            word = b"klog-%d " % rnd.randint(0, 9)
            v = (word * (n // len(word) + 1))[:n]
        out.append(v + b"#%d" % len(out))  # no two alike
    return out


def parse_consumed(out):
    """kcat -f '%p:%o:%K:%S:%k%s' output: [(partition, offset, key, value)]."""
    recs, i = [], 0
    head = re.compile(rb"(-?\d+):(-?\d+):(-?\d+):(-?\d+):")
    while i < len(out):
        m = head.match(out, i)
        assert m, "cannot parse kcat output at byte %d: %r" % (i, out[i:i + 80])
        p, o, kl, vl = map(int, m.groups())
        i = m.end()
        key = None if kl < 0 else out[i:i + kl]
        i += max(kl, 0)
        val = None if vl < 0 else out[i:i + vl]
        i += max(vl, 0)
        recs.append((p, o, key, val))
    return recs


@pytest.mark.parametrize("codec", list(CODECS))
def test_kcat_produce_consume_metadata(serve, tmp_path, codec):
    topic = "kcat-" + codec
    server = serve(prepare=[["topics", "create", topic, "--partitions", str(PARTS)]])

    # -P: files, one record each, then keyed lines
    vals = payloads(CODECS[codec])
    files = []
    for i, v in enumerate(vals):
        f = tmp_path / ("v%02d" % i)
        f.write_bytes(v)
        files.append(str(f))
    kcat(server, "-P", "-t", topic, "-z", codec, *files)
    lines = [(b"key-%d" % (i % 37), b"line %d of the %s run %s" % (i, codec.encode(), b"x" * (i % 50)))
             for i in range(2000)]
    kcat(server, "-P", "-t", topic, "-z", codec, "-K:", stdin=b"".join(k + b":" + v + b"\n" for k, v in lines))
    sent = [(None, v) for v in vals] + lines

    # -C -e: everything back, exactly
    out = kcat(server, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p:%o:%K:%S:%k%s")
    got = parse_consumed(out)
    def norm(k, v):
        return (k is None, k or b"", v)
    assert sorted(norm(k, v) for _, _, k, v in got) == sorted(norm(k, v) for k, v in sent), \
        "records consumed differ from those produced (%d got, %d sent)" % (len(got), len(sent))
    order = {rec: i for i, rec in enumerate(sent)}
    assert len(order) == len(sent)
    for p in range(PARTS):
        mine = [(o, k, v) for pp, o, k, v in got if pp == p]
        assert [o for o, _, _ in mine] == list(range(len(mine))), "partition %d offsets not 0..n-1" % p
        idx = [order[(k, v)] for _, k, v in mine]
        assert idx == sorted(idx), "partition %d: records out of send order" % p
    assert len({p for p, _, _, _ in got}) > 1, "every record went to one partition"

    # what the server sends: the batches as produced (codec kept), valid CRC
    s = kwire.connect(server.bootstrap)
    codecs_seen = set()
    try:
        kwire.api_versions(s)
        for p in range(PARTS):
            s.sendall(kwire.request(kwire.API_FETCH, 4, 100 + p, kwire.fetch_v4(topic, p, 0, 100, 1, 8 << 20)))
            corr, body = kwire.read_response(s)
            assert corr == 100 + p
            (t, pp, err, hw, records), = kwire.parse_fetch_v4(body)
            assert (t, pp, err) == (topic, p, 0)
            assert hw == len([1 for q, _, _, _ in got if q == p])
            bs = kwire.batches_of(records)
            assert bs, "partition %d: no complete batch in an 8 MiB fetch" % p
            for base, attrs, count, crc_ok in bs:
                assert crc_ok, "partition %d: batch at %d has a bad CRC-32C" % (p, base)
                # librdkafka sends a batch uncompressed when the codec would
                # not make it smaller (random bytes)
                assert attrs & 7 in (0, CODECS[codec]), \
                    "partition %d: batch at %d has codec %d, kcat sent %s" % (p, base, attrs & 7, codec)
            codecs_seen |= {attrs & 7 for _, attrs, _, _ in bs}
    finally:
        s.close()
    assert CODECS[codec] in codecs_seen, "no batch fetched carries %s" % codec

    # -L: the topic and its partitions
    md = json.loads(kcat(server, "-L", "-J"))
    brokers = {b["id"] for b in md["brokers"]}
    assert brokers, md
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, "kcat -L does not list %s: %s" % (topic, sorted(topics))
    parts = topics[topic]["partitions"]
    assert sorted(x["partition"] for x in parts) == list(range(PARTS))
    for x in parts:
        assert x["leader"] in brokers, x
    text = kcat(server, "-L", "-t", topic).decode()
    assert re.search(r'topic "%s" with %d partitions' % (re.escape(topic), PARTS), text), text


def test_kcat_auto_create(server):
    """kcat -P to a topic nobody created: auto.create.topics.enable (default
    true) creates it with the instance's defaults (one partition)."""
    kcat(server, "-P", "-t", "fresh", stdin=b"one\ntwo\nthree\n")
    out = kcat(server, "-C", "-t", "fresh", "-o", "beginning", "-e", "-f", "%p:%o:%K:%S:%k%s")
    assert [(p, o, v) for p, o, _, v in parse_consumed(out)] == [(0, 0, b"one"), (0, 1, b"two"), (0, 2, b"three")]
    md = json.loads(kcat(server, "-L", "-J", "-t", "fresh"))
    (t,) = [t for t in md["topics"] if t["topic"] == "fresh"]
    assert [x["partition"] for x in t["partitions"]] == [0]

