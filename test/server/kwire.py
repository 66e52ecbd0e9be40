"""Raw Kafka frames for the tests that must see the wire (test/server).

Just enough of the protocol, written out by hand so that a test controls
every byte: request headers v1 and v2, ApiVersions v0 (and its v0 answer to
an unsupported version), Metadata v0, and Fetch v4.  Every read has a
deadline; a connection the server closes is reported as Closed.
"""
import socket
import struct
import time

API_PRODUCE = 0
API_FETCH = 1
API_METADATA = 3
API_API_VERSIONS = 18

UNSUPPORTED_VERSION = 35


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


def deadline_loop(seconds, step=0.05):
    """Yield until `seconds` have passed, sleeping `step` between: the body
    of a bounded polling loop."""
    end = time.monotonic() + seconds
    while True:
        yield
        if time.monotonic() >= end:
            return
        time.sleep(step)


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC32C = _crc32c_table()


def crc32c(data):
    """CRC-32C (Castagnoli), what a record batch v2 carries."""
    c = 0xFFFFFFFF
    t = _CRC32C
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def kstr(s):
    """Kafka STRING (int16 length) or null for None."""
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">h", len(b)) + b


def uvarint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def compact_str(s):
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def header(api_key, version, corr, client_id="klog-wire-test", flexible=False):
    """Request header v1 (v2 when flexible: an empty tagged-field section)."""
    h = struct.pack(">hhi", api_key, version, corr) + kstr(client_id)
    return h + (b"\x00" if flexible else b"")


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def request(api_key, version, corr, body=b"", flexible=False, client_id="klog-wire-test"):
    return frame(header(api_key, version, corr, client_id, flexible) + body)


def connect(bootstrap, timeout=10.0):
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(sock, n, timeout):
    """n bytes, or Closed at EOF/reset, or socket.timeout after `timeout` s."""
    end = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        left = end - time.monotonic()
        if left <= 0:
            raise socket.timeout("read %d of %d bytes in %.1f s" % (len(buf), n, timeout))
        sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(buf))
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(str(e))
        if not chunk:
            raise Closed("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def read_response(sock, timeout=20.0, max_size=64 << 20):
    """One response frame: (correlation_id, the bytes after it)."""
    (size,) = struct.unpack(">i", recv_exact(sock, 4, timeout))
    assert 4 <= size <= max_size, "response frame size %d" % size
    body = recv_exact(sock, size, timeout)
    return struct.unpack(">i", body[:4])[0], body[4:]


def call(bootstrap, api_key, version, body, corr=9, timeout=20.0):
    """One request on a fresh connection to bootstrap: the response's bytes
    after its correlation id (checked)."""
    s = connect(bootstrap)
    try:
        s.sendall(request(api_key, version, corr, body))
        got, b = read_response(s, timeout=timeout)
    finally:
        s.close()
    assert got == corr, "correlation id %d, sent %d" % (got, corr)
    return b


def expect_closed(sock, seconds=20.0):
    """Read until the server closes sock; returns the bytes it sent before.
    Fails (AssertionError) if it is still open after `seconds`."""
    sock.settimeout(0.2)
    data = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError("the server kept the connection open %.0f s (read %d bytes: %r)"
                         % (seconds, len(data), data[:64]))


class Reader:
    """Big-endian reads over a response body."""

    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        assert self.i + n <= len(self.b), "response truncated at %d (+%d of %d)" % (self.i, n, len(self.b))
        v = self.b[self.i:self.i + n]
        self.i += n
        return v

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def bytes_(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def left(self):
        return len(self.b) - self.i


def parse_api_versions_v0(body):
    """ApiVersions response v0: (error_code, {key: (min, max)})."""
    r = Reader(body)
    err = r.i16()
    keys = {}
    for _ in range(r.i32()):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        keys[k] = (lo, hi)
    return err, keys


def api_versions(sock, corr=1, timeout=20.0):
    """ApiVersions v0 round trip on sock: {key: (min, max)}; the error code
    must be 0."""
    sock.sendall(request(API_API_VERSIONS, 0, corr))
    got, body = read_response(sock, timeout)
    assert got == corr, "correlation id %d, want %d" % (got, corr)
    err, keys = parse_api_versions_v0(body)
    assert err == 0, "ApiVersions v0 error %d" % err
    assert API_API_VERSIONS in keys, "ApiVersions does not advertise itself: %r" % keys
    return keys


def fetch_v4(topic, partition, offset, max_wait_ms, min_bytes=1, max_bytes=1 << 20):
    """Fetch v4 body (no isolation: READ_UNCOMMITTED)."""
    return (struct.pack(">iiiib", -1, max_wait_ms, min_bytes, max_bytes, 0) +
            struct.pack(">i", 1) + kstr(topic) +
            struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, max_bytes))


def parse_fetch_v4(body):
    """Fetch response v4: [(topic, partition, error, high_watermark, records bytes)]."""
    r = Reader(body)
    r.i32()  # throttle_time_ms
    out = []
    for _ in range(r.i32()):
        t = r.string()
        for _ in range(r.i32()):
            p, err, hw = r.i32(), r.i16(), r.i64()
            r.i64()  # last_stable_offset
            na = r.i32()
            for _ in range(max(na, 0)):
                r.i64(), r.i64()
            out.append((t, p, err, hw, r.bytes_() or b""))
    return out


def metadata_v0(topics):
    """Metadata v0 body for these topics (auto-creates them where enabled)."""
    b = struct.pack(">i", len(topics))
    for t in topics:
        b += kstr(t)
    return b


def batches_of(records):
    """Split a Fetch response's records bytes into magic-2 batches:
    [(base_offset, attributes, count, crc_ok)]."""
    out, i = [], 0
    while i + 12 <= len(records):
        base, length = struct.unpack_from(">qi", records, i)
        if i + 12 + length > len(records):
            break  # a partial batch at the end of a fetch is allowed
        magic = records[i + 16]
        assert magic == 2, "batch at offset %d has magic %d" % (base, magic)
        (crc,) = struct.unpack_from(">I", records, i + 17)
        (attrs,) = struct.unpack_from(">h", records, i + 21)
        (count,) = struct.unpack_from(">i", records, i + 57)
        body = records[i + 21:i + 12 + length]
        out.append((base, attrs, count, crc32c(body) == crc))
        i += 12 + length
    return out


def free_ports(n):
    """n distinct 127.0.0.1 ports the kernel gives out now (a cluster's
    peers list needs them before its servers start)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports
