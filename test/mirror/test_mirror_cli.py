#!/usr/bin/python3
"""`klog mirror` in its own process, against a Kafka side in another one.

The Kafka side is `klog serve` on a second data directory, or librdkafka's
mock cluster held by ``kafka_tool mock`` (test/mirror/kafka_tool.c).  The
mirror runs with ``-X mirror.source.header=true``, so every record on the
Kafka side names its klog source (topic, partition, offset) and
``kafka_tool dump`` gives the whole picture.  Covered:

* kill -9 of the mirror mid-stream, then a restart: every record arrives,
  in per-partition order; duplicates only of records at or above the
  offsets committed when it died (counted);
* the Kafka side going away and coming back while the mirror runs;
* bad input, each with a clear message, exit status 1 and the klog
  offsets left where they were: nobody at the bootstrap address, a login
  the cluster refuses, a topic missing with and without auto-create (and
  created by --create-topics), a record over the Kafka side's
  max.message.bytes;
* --from: a served topic mirrored into another directory.

Every wait is bounded; servers are stopped by PID.  Run by ``meson test``
(suite mirror) with KLOG and KAFKA_TOOL set; exits 77 (skipped) without
pytest.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

try:
    import pytest
except ImportError:  # pragma: no cover
    print("python3-pytest is not installed: skipped", file=sys.stderr)
    sys.exit(77)

KLOG = os.environ.get("KLOG", "")
TOOL = os.environ.get("KAFKA_TOOL", "")
WAIT_S = 120
GROUP = "klog-mirror"


def wait_until(fn, what, timeout=WAIT_S, step=0.1, log=None):
    end = time.time() + timeout
    while time.time() < end:
        got = fn()
        if got:
            return got
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what + ("\n" + log.text()[-3000:] if log else ""))


def klog(d, *args, inp=None, check=True, timeout=WAIT_S):
    p = subprocess.run([KLOG, "-d", d] + list(args), input=inp, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("klog %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p


class Serve:
    """`klog serve` on a directory, 127.0.0.1, a port the kernel picks (or one given)."""

    def __init__(self, d, *sets, port=0):
        args = [KLOG, "-d", d, "serve", "--listen", "tcp://127.0.0.1:%d" % port, "-q"]
        for s in sets:
            args += ["-X", s]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        m = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.p.kill()
            raise AssertionError("klog serve did not listen: %r %s" % (line, self.p.stderr.read()))
        self.port = int(m.group(1))
        self.boot = "127.0.0.1:%d" % self.port

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()


class Mock:
    """librdkafka's mock cluster in kafka_tool, driven on stdin."""

    def __init__(self, brokers=3):
        self.p = subprocess.Popen([TOOL, "mock", str(brokers)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1)
        line = self.p.stdout.readline()
        assert line.startswith("bootstrap "), line
        self.boot = line.split()[1]

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "ok"

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
                self.p.wait(timeout=30)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.p.kill()
                self.p.wait()
        self.p.stdout.close()


RUNNING = []  # mirrors started by the current test: killed at its end, whatever happened


class Mirror:
    """`klog mirror` in the background; its stderr goes to a file."""

    def __init__(self, d, tmp, *args):
        self.log = os.path.join(tmp, "mirror-%d.log" % time.monotonic_ns())
        self.f = open(self.log, "w")
        self.p = subprocess.Popen([KLOG, "-d", d, "mirror", "--interval", "0.05"] + list(args),
                                  stdout=subprocess.DEVNULL, stderr=self.f)
        RUNNING.append(self)

    def reap(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if not self.f.closed:
            self.f.close()

    def text(self):
        with open(self.log) as f:
            return f.read()

    def commits(self):
        """Commits the last progress line reports."""
        got = re.findall(r"commits (\d+)", self.text())
        return int(got[-1]) if got else 0

    def wait(self, timeout=WAIT_S):
        try:
            rc = self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            self.f.close()
        return rc

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        self.f.close()


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory(prefix="klog-mirror-cli-") as t:
        try:
            yield t
        finally:
            while RUNNING:
                RUNNING.pop().reap()


def fill(d, topic, parts, n, first=0, size=100):
    """n records with keys k0..k12 (the key hash spreads them), values of `size` bytes."""
    klog(d, "topics", "create", topic, "--partitions", str(parts), check=False)
    pad = "x" * size
    lines = "".join("k%d:%s\n" % (i % 13, ("v%d-" % i + pad)[:size]) for i in range(first, first + n))
    klog(d, "produce", topic, "--key-separator", ":", "-q", "-X", "linger.ms=5", inp=lines)


def offsets(d, topic):
    """{partition: (start, end)} from `klog topics describe`."""
    out = klog(d, "topics", "describe", topic).stdout
    return {int(m.group(1)): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"Partition: (\d+)\tStart: (\d+)\tEnd: (\d+)", out)}


def committed(d, topic, group=GROUP):
    """{partition: committed offset} of the group ({} when it has none)."""
    p = klog(d, "groups", "describe", group, check=False)
    got = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == group and f[1] == topic and f[2].isdigit():
            got[int(f[2])] = int(f[3])
    return got


def count(boot, topic):
    p = subprocess.run([TOOL, "count", boot, topic], capture_output=True, text=True, timeout=WAIT_S)
    return int(p.stdout) if p.returncode == 0 and p.stdout.strip() else 0


def dump(boot, topic):
    p = subprocess.run([TOOL, "dump", boot, topic], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return [line.split() for line in p.stdout.splitlines()]


def check(recs, src_topic, offs, floor=None, allow_below_start=False):
    """Every source offset of every partition is on the Kafka side, first
    occurrences in increasing order; duplicates only at or above floor[p].
    Returns the number of duplicates."""
    seen = {p: set() for p in offs}
    last = {p: -1 for p in offs}
    dups = 0
    for r in recs:
        if r[2] != src_topic:
            continue
        p, o = int(r[3]), int(r[4])
        if o in seen[p]:
            dups += 1
            if floor is not None:
                assert o >= floor.get(p, 0), "%s[%d] offset %d arrived twice, below the commit %d" % (
                    src_topic, p, o, floor.get(p, 0))
            continue
        seen[p].add(o)
        assert o > last[p], "%s[%d]: offset %d after %d" % (src_topic, p, o, last[p])
        last[p] = o
    for p, (start, end) in offs.items():
        missing = [o for o in range(0, end) if o not in seen[p] and not (allow_below_start and o < start)]
        assert not missing, "%s[%d]: %d offsets never arrived, first %d" % (src_topic, p, len(missing), missing[0])
    return dups


# Slow the producer down enough for a kill or an outage to land mid-stream:
# small batches, one request in flight per broker (klog serve answers
# acks=all after an fdatasync), frequent commits.
THROTTLE = ["-X", "mirror.source.header=true", "-X", "mirror.commit.interval.ms=20",
            "-X", "kafka.linger.ms=20", "-X", "kafka.batch.num.messages=200",
            "-X", "kafka.max.in.flight.requests.per.connection=1"]


# The mock keeps at most 5 MB per partition (older data goes): fewer records there.
RECORDS = {"serve": 200000, "mock": 60000}


def mock_slow():
    """A mock cluster whose brokers answer 5 ms late: the mirror takes a while."""
    kafka = Mock(3)
    kafka.cmd("topic t 3")
    kafka.cmd("rtt 5")
    return kafka


@pytest.mark.parametrize("side", ["serve", "mock"])
def test_kill9_and_restart(tmp, side):
    d1 = os.path.join(tmp, "src")
    fill(d1, "t", 3, RECORDS[side])
    kafka = Serve(os.path.join(tmp, "dst")) if side == "serve" else mock_slow()
    try:
        m = Mirror(d1, tmp, "--to", kafka.boot, "--topics", "t", "--create-topics", *THROTTLE)
        # mid-stream, after a commit or two
        wait_until(lambda: m.commits() >= 2 or m.p.poll() is not None, "two commits", log=m, step=0.02)
        assert m.p.poll() is None, "the mirror exited early:\n" + m.text()
        m.kill9()
        offs = offsets(d1, "t")
        floor = committed(d1, "t")
        assert any(floor.get(p, 0) < end for p, (_, end) in offs.items()), "nothing was left to forward"
        m2 = Mirror(d1, tmp, "--to", kafka.boot, "--topics", "t", "--exit-idle", *THROTTLE)
        rc = m2.wait()
        log = m2.text()
        assert rc == 0, log
        assert "(committed)" in log, log
        dups = check(dump(kafka.boot, "t"), "t", offs, floor)
        print("kill -9 against %s: %d duplicates after the commit at %s" % (side, dups, floor))
        assert committed(d1, "t") == {p: end for p, (_, end) in offs.items()}
    finally:
        kafka.stop()


@pytest.mark.parametrize("side", ["serve", "mock"])
def test_cluster_down_and_up(tmp, side):
    d1 = os.path.join(tmp, "src")
    fill(d1, "t", 3, RECORDS[side])
    d2 = os.path.join(tmp, "dst")
    kafka = Serve(d2) if side == "serve" else mock_slow()
    try:
        m = Mirror(d1, tmp, "--to", kafka.boot, "--topics", "t", "--create-topics", "--exit-idle", *THROTTLE)
        wait_until(lambda: m.commits() >= 2 or m.p.poll() is not None, "two commits", log=m, step=0.02)
        assert m.p.poll() is None, "the mirror exited early:\n" + m.text()
        if side == "serve":
            port = kafka.port
            kafka.stop()
        else:
            kafka.cmd("down")
        wait_until(lambda: "link down" in m.text(), "the mirror to see the link down")
        assert m.p.poll() is None, "the mirror gave up while the link was down:\n" + m.text()
        if side == "serve":
            # the same port again (a TIME_WAIT socket may hold it a moment)
            for attempt in range(50):
                try:
                    kafka = Serve(d2, port=port)
                    break
                except AssertionError:
                    time.sleep(0.2)
            else:
                raise AssertionError("could not serve on port %d again" % port)
        else:
            kafka.cmd("up")
        rc = m.wait()
        log = m.text()
        assert rc == 0, log
        assert "link up again" in log, log
        offs = offsets(d1, "t")
        dups = check(dump(kafka.boot, "t"), "t", offs)
        print("down and up against %s: %d duplicates" % (side, dups))
    finally:
        kafka.stop()


def test_unreachable_bootstrap(tmp):
    d1 = os.path.join(tmp, "src")
    fill(d1, "t", 1, 10)
    p = klog(d1, "mirror", "--to", "127.0.0.1:1", "--topics", "t", "--connect-timeout", "1", check=False)
    assert p.returncode == 1, p.stderr
    assert "cannot reach the Kafka cluster at 127.0.0.1:1" in p.stderr, p.stderr
    assert committed(d1, "t") == {}


def test_authentication_refused(tmp):
    d1 = os.path.join(tmp, "src")
    fill(d1, "t", 1, 10)
    fake = subprocess.Popen([TOOL, "saslfail"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(fake.stdout.readline().split()[1])
        p = klog(d1, "mirror", "--to", "127.0.0.1:%d" % port, "--topics", "t",
                 "-X", "kafka.security.protocol=SASL_PLAINTEXT", "-X", "kafka.sasl.mechanism=PLAIN",
                 "-X", "kafka.sasl.username=gw", "-X", "kafka.sasl.password=wrong", check=False)
    finally:
        fake.stdin.close()
        fake.wait(timeout=30)
        fake.stdout.close()
    assert p.returncode == 1, p.stderr
    assert "authentication with the Kafka cluster" in p.stderr and "Invalid username or password" in p.stderr, p.stderr
    assert committed(d1, "t") == {}


def test_missing_topic(tmp):
    d1 = os.path.join(tmp, "src")
    fill(d1, "t", 2, 200)
    d2 = os.path.join(tmp, "dst")
    kafka = Serve(d2, "auto.create.topics.enable=false")
    try:
        base = ["--to", kafka.boot, "--topics", "t", "--exit-idle", "-X", "mirror.source.header=true"]
        p = klog(d1, "mirror", *base, check=False)
        assert p.returncode == 1, p.stderr
        assert 'Kafka topic "t" (for klog topic "t") does not exist' in p.stderr, p.stderr
        assert "--create-topics" in p.stderr, p.stderr
        assert committed(d1, "t") == {}
        p = klog(d1, "mirror", *base, "--create-topics", check=False)
        assert p.returncode == 0, p.stderr
        assert 'created Kafka topic "t" with 2 partitions' in p.stderr, p.stderr
        check(dump(kafka.boot, "t"), "t", offsets(d1, "t"))
    finally:
        kafka.stop()
    # A cluster that creates topics on first use (its default: 1 partition).
    kafka = Serve(os.path.join(tmp, "dst2"))
    try:
        p = klog(d1, "mirror", "--to", kafka.boot, "--topics", "t", "--exit-idle", "--group", "g2",
                 "-X", "mirror.source.header=true", check=False)
        assert p.returncode == 0, p.stderr
        assert "partition by key hash" in p.stderr, p.stderr
        assert len(dump(kafka.boot, "t")) == 200
    finally:
        kafka.stop()
    # The mock cluster, told the topic does not exist.
    mock = Mock(1)
    try:
        mock.cmd("missing t")
        p = klog(d1, "mirror", "--to", mock.boot, "--topics", "t", "--group", "g3", check=False)
        assert p.returncode == 1 and "does not exist" in p.stderr, p.stderr
        assert committed(d1, "t", "g3") == {}
    finally:
        mock.stop()


def test_record_over_max_message_bytes(tmp):
    d1 = os.path.join(tmp, "src")
    klog(d1, "topics", "create", "t", "--partitions", "1")
    small = "".join("s%d\n" % i for i in range(10))
    klog(d1, "produce", "t", "-q", inp=small)
    kafka = Serve(os.path.join(tmp, "dst"), "max.message.bytes=2000")
    try:
        p = klog(d1, "mirror", "--to", kafka.boot, "--topics", "t", "--create-topics", "--exit-idle", check=False)
        assert p.returncode == 0, p.stderr
        assert committed(d1, "t") == {0: 10}
        klog(d1, "produce", "t", "-q", inp="B" * 5000 + "\n")
        klog(d1, "produce", "t", "-q", inp=small)
        p = klog(d1, "mirror", "--to", kafka.boot, "--topics", "t", check=False)
        assert p.returncode == 1, p.stderr
        # the batch holding offset 10 is refused; the message names the culprit
        assert re.search(r"(offset 10 \(5000 bytes\)|largest is offset 10 \(5000 bytes\))", p.stderr), p.stderr
        assert "too large" in p.stderr.lower(), p.stderr
        assert committed(d1, "t") == {0: 10}, committed(d1, "t")
        assert count(kafka.boot, "t") == 10
    finally:
        kafka.stop()


def test_from_kafka(tmp):
    d2 = os.path.join(tmp, "served")
    fill(d2, "cmds", 2, 500)
    kafka = Serve(d2)
    d3 = os.path.join(tmp, "gateway")
    try:
        p = klog(d3, "mirror", "--from", kafka.boot, "--topics", "cmds", "--rename", "cmds:commands",
                 "--create-topics", "--exit-idle", check=False)
        assert p.returncode == 0, p.stderr
    finally:
        kafka.stop()
    src, dst = offsets(d2, "cmds"), offsets(d3, "commands")
    assert src == dst, (src, dst)
    a = klog(d2, "consume", "cmds", "--from-beginning", "--max-messages", "500", "--timeout-ms", "5000").stdout
    b = klog(d3, "consume", "commands", "--from-beginning", "--max-messages", "500", "--timeout-ms", "5000").stdout
    assert sorted(a.splitlines()) == sorted(b.splitlines()) and len(a.splitlines()) == 500


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v", "-s"] + sys.argv[1:]))
