"""Bad input on some connections never disturbs the others (`klog serve`).

While a good client (kafka-python, in a thread) keeps producing a record and
reading it back, and a sentinel raw connection keeps doing ApiVersions round
trips on the one socket it opened first, other raw sockets send:
  * a truncated frame, then EOF; a truncated frame left hanging;
  * lengths over socket.request.max.bytes (set to 1 MiB here), 2^31-1, a
    negative length, a zero length;
  * random garbage (64 KiB, read as a length over the cap), 64 KiB of it
    framed with the right length, and 40 frames of a valid length around a
    random body of 1 to 2000 bytes;
  * an unknown API key; Produce at versions 99 and 2 (klog implements 3..7);
    Fetch v12 (flexible, not implemented);
  * a known request with its body cut short, and one whose array count is
    2^31-1 in a 30-byte frame;
  * ApiVersions v99 and v4: these are answered (UNSUPPORTED_VERSION, 35, with
    the list of supported versions, in the v0 form), and the connection stays
    open for an ApiVersions v0 after.
Every bad connection must be closed by the server (or answered, for random
bodies), within a bound.  After each, the sentinel still answers on its
first socket, a new connection is served, and at the end the good client
has seen no error and the server exits 0 on SIGTERM.

Then, with 1,000 idle connections held open, the good client still works,
new connections are served, and every one of the 1,000 answers an
ApiVersions at the end.
"""
import random
import socket
import struct
import threading
import time

import pytest

import kwire

kafka = pytest.importorskip("kafka", reason="kafka-python (python3-kafka) is not installed; build.sh installs it")
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

MAX_FRAME = 1 << 20


class GoodClient(threading.Thread):
    """Produce a record, read it back, again, until stopped (at most 20,000
    rounds or 300 s).  Any error is kept in self.error."""

    def __init__(self, bootstrap, topic):
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.stop_flag = threading.Event()
        self.rounds = 0
        self.error = None

    def run(self):
        p = c = None
        try:
            p = KafkaProducer(bootstrap_servers=self.bootstrap, acks=1, retries=0, linger_ms=0)
            c = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
            tp = TopicPartition(self.topic, 0)
            end = time.monotonic() + 300
            while not self.stop_flag.is_set() and self.rounds < 20000 and time.monotonic() < end:
                v = b"good-%d" % self.rounds
                md = p.send(self.topic, value=v, partition=0).get(timeout=20)
                assert md.offset == self.rounds, "good client: offset %d, want %d" % (md.offset, self.rounds)
                if self.rounds == 0:
                    c.assign([tp])
                    c.seek(tp, 0)
                got = None
                until = time.monotonic() + 20
                while got is None and time.monotonic() < until:
                    for recs in c.poll(timeout_ms=200).values():
                        for m in recs:
                            assert m.value == b"good-%d" % m.offset, m
                            if m.offset == self.rounds:
                                got = m.value
                assert got == v, "good client: record %d not read back within 20 s" % self.rounds
                self.rounds += 1
        except BaseException as e:  # kept for the test to report
            self.error = e
        finally:
            for x in (p, c):
                if x is not None:
                    try:
                        x.close(timeout=5) if x is p else x.close()
                    except Exception:
                        pass

    def finish(self):
        self.stop_flag.set()
        self.join(60)
        assert not self.is_alive(), "the good client did not stop within 60 s"
        assert self.error is None, "the good client was disturbed after %d rounds: %r" % (self.rounds, self.error)


def wait_rounds(good, n, seconds=60):
    want = good.rounds + n
    for _ in kwire.deadline_loop(seconds, 0.05):
        if good.rounds >= want or good.error or not good.is_alive():
            break
    assert good.error is None, "the good client failed: %r" % good.error
    assert good.rounds >= want, "the good client made %d rounds, wanted %d" % (good.rounds, want)


def raw(server):
    return kwire.connect(server.bootstrap)


def bad_cases():
    """(name, bytes to send, what the server must do: 'close', 'answer-or-close', or a callable)."""
    rnd = random.Random(14)
    hdr = kwire.header
    yield "truncated-then-eof", struct.pack(">i", 1000) + hdr(18, 0, 1)[:8], "close-after-eof"
    yield "over-max-frame", struct.pack(">i", MAX_FRAME + 1), "close"
    yield "length-2^31-1", struct.pack(">i", 0x7FFFFFFF) + b"\0" * 100, "close"
    yield "negative-length", struct.pack(">i", -1) + b"\0" * 100, "close"
    yield "zero-length", struct.pack(">i", 0), "close"
    # garbage: its first bytes read as a length of about 1.5 GB (over the cap)
    yield "garbage-64k", b"\x5a" + bytes(rnd.getrandbits(8) for _ in range(65535)), "close"
    # garbage inside a frame of the right length
    yield "garbage-framed-64k", kwire.frame(bytes(rnd.getrandbits(8) for _ in range(65536))), "close"
    for i in range(40):
        n = rnd.choice([1, 2, 5, 9, 14, 30, 200, 2000])
        yield "random-body-%d" % i, kwire.frame(bytes(rnd.getrandbits(8) for _ in range(n))), "answer-or-close"
    yield "unknown-api-9999", kwire.request(9999, 0, 1, b"\0" * 16), "close"
    yield "unknown-api-32767", kwire.request(32767, 3, 1), "close"
    yield "produce-v99", kwire.request(kwire.API_PRODUCE, 99, 1, b"\0" * 32), "close"
    yield "produce-v2", kwire.request(kwire.API_PRODUCE, 2, 1, kwire.kstr(None) + struct.pack(">hii", 1, 1000, 0)), \
        "close"
    yield "fetch-v12", kwire.request(kwire.API_FETCH, 12, 1, b"\0" * 40, flexible=True), "close"
    # Produce v7, cut after transactional_id and acks
    yield "produce-v7-truncated", kwire.request(kwire.API_PRODUCE, 7, 1, kwire.kstr(None) + struct.pack(">h", 1)), \
        "close"
    # Metadata v1 claiming 2^31-1 topics in a tiny frame
    yield "metadata-huge-count", kwire.request(kwire.API_METADATA, 1, 1, struct.pack(">i", 0x7FFFFFFF)), "close"


def check_unsupported_api_versions(sock, version):
    body = kwire.compact_str("klog-test") + kwire.compact_str("1.0") + b"\x00"
    sock.sendall(kwire.request(kwire.API_API_VERSIONS, version, 42, body, flexible=True))
    corr, resp = kwire.read_response(sock, 20)
    assert corr == 42
    err, keys = kwire.parse_api_versions_v0(resp)
    assert err == kwire.UNSUPPORTED_VERSION, "ApiVersions v%d answered with error %d, want 35" % (version, err)
    assert kwire.API_API_VERSIONS in keys, "the UNSUPPORTED_VERSION answer carries no ApiVersions range: %r" % keys
    lo, hi = keys[kwire.API_API_VERSIONS]
    assert lo == 0 and hi < version
    kwire.api_versions(sock, corr=43)  # still open, and served


def test_bad_frames_leave_others_alone(serve):
    server = serve(extra=["socket.request.max.bytes=%d" % MAX_FRAME])
    sentinel = raw(server)
    kwire.api_versions(sentinel, corr=1)
    good = GoodClient(server.bootstrap, "good")
    good.start()
    hanging = []
    try:
        wait_rounds(good, 3)
        corr = 2
        for name, data, expect in bad_cases():
            s = raw(server)
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # already closed on us: fine
            if expect == "close-after-eof":
                s.shutdown(socket.SHUT_WR)
            try:
                if expect.startswith("close"):
                    kwire.expect_closed(s, 20)
                else:
                    try:
                        kwire.read_response(s, 20)
                    except kwire.Closed:
                        pass
            except (AssertionError, socket.timeout) as e:
                raise AssertionError("%s: %s" % (name, e))
            finally:
                s.close()
            assert server.alive(), "the server died on %s" % name
            kwire.api_versions(sentinel, corr=corr)
            corr += 1
            fresh = raw(server)
            kwire.api_versions(fresh)
            fresh.close()
        # a truncated frame left hanging, on a few connections
        for _ in range(5):
            h = raw(server)
            h.sendall(struct.pack(">i", 5000) + kwire.header(kwire.API_METADATA, 1, 1))
            hanging.append(h)
        for v in (99, 4):
            s = raw(server)
            try:
                check_unsupported_api_versions(s, v)
            finally:
                s.close()
        wait_rounds(good, 3)
        kwire.api_versions(sentinel, corr=corr)
        good.finish()
    finally:
        good.stop_flag.set()
        for h in hanging:
            h.close()
        sentinel.close()
    assert server.log().strip(), "the server logged no reason for the connections it closed"


def test_thousand_idle_connections(server):
    idle = []
    try:
        for i in range(1000):
            idle.append(kwire.connect(server.bootstrap, timeout=30))
        rss = server.rss_kib()
        good = GoodClient(server.bootstrap, "busy")
        good.start()
        try:
            wait_rounds(good, 50, seconds=120)
            fresh = raw(server)
            kwire.api_versions(fresh)
            fresh.close()
            good.finish()
        finally:
            good.stop_flag.set()
        for i, s in enumerate(idle):
            s.sendall(kwire.request(kwire.API_API_VERSIONS, 0, i))
        for i, s in enumerate(idle):
            corr, body = kwire.read_response(s, 30)
            assert corr == i and kwire.parse_api_versions_v0(body)[0] == 0, "idle connection %d" % i
        print("klog serve RSS with 1,000 connections: %s KiB" % rss)
    finally:
        for s in idle:
            s.close()
