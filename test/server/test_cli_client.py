"""The klog CLI as a Kafka client of `klog serve` (issue 15: "the klog CLI as
a client"; tools/remote.h).

While `klog serve` holds a data directory, `klog produce`, `consume`,
`topics` and `groups` on that directory find the server through
DIR/serve.listeners and talk to it over the Kafka protocol (librdkafka)
instead of exiting 3; --bootstrap-server HOST:PORT does the same without a
directory.  Checked here, each with its own server (conftest.py: port 0,
stopped by PID) and every wait bounded:

  * Kafka's quick start with three klog processes: serve, a consumer in a
    group started first, a producer; the consumer prints every line and
    commits past them when stopped (SIGTERM), as Kafka's console consumer;
  * two consumers of one group in two processes split the partitions of a
    topic: each prints only its own partitions, together every record once;
  * topics create/list/describe/alter/delete and groups
    list/describe/reset/delete through the server, and --bootstrap-server
    without a directory;
  * keys land on the partitions the library's partitioner picks when the
    directory is opened directly (the same key, the same partition, with
    and without the server);
  * the listeners file: written while serving, removed by a clean stop;
    left by a kill -9, it is removed by the next command that opens the
    directory, and while someone else holds the directory it gives a clear
    error (exit 3), not a hang; --bootstrap-server at an address where
    nothing listens fails (exit 1) with the address;
  * a group consumer whose server stopped under it exits when told to,
    saying that its last offsets are not committed (exit 1);
  * --command-config: a Kafka-style properties file reaches the client
    (client.id shows in groups describe); a key librdkafka does not know is
    a usage error (exit 2).
"""
import fcntl
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import KLOG
from kwire import deadline_loop

RUN_TIMEOUT = 120     # seconds for one klog command
WAIT = 60             # seconds for a background consumer to show something


def remote_built():
    if not KLOG or not os.access(KLOG, os.X_OK):
        return False
    p = subprocess.run([KLOG, "--version"], capture_output=True, timeout=30)
    return b"remote mode: librdkafka" in p.stdout


pytestmark = pytest.mark.skipif(not remote_built(),
                                reason="this klog has no remote mode (built without librdkafka-dev)")


def klog(*args, stdin=None, want=0, env=None):
    """Run the klog tool; its exit status must be `want`.  Returns
    (stdout, stderr) as text."""
    argv = [KLOG] + [str(a) for a in args]
    p = subprocess.run(argv, input=stdin.encode() if isinstance(stdin, str) else stdin,
                       stdin=None if stdin is not None else subprocess.DEVNULL,
                       capture_output=True, timeout=RUN_TIMEOUT, env=env)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    assert p.returncode == want, "`%s` exited %d, expected %d\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(argv), p.returncode, want, out[-3000:], err[-3000:])
    return out, err


class Background:
    """A klog command in the background (a consumer), stdout and stderr to
    files; stopped by its PID."""

    def __init__(self, workdir, name, *args):
        self.out_path = os.path.join(str(workdir), name + ".out")
        self.err_path = os.path.join(str(workdir), name + ".err")
        self.argv = [KLOG] + [str(a) for a in args]
        with open(self.out_path, "wb") as fo, open(self.err_path, "wb") as fe:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)

    def out(self):
        with open(self.out_path, "r", errors="replace") as f:
            return f.read()

    def err(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def lines(self):
        return [l for l in self.out().split("\n") if l]

    def wait_lines(self, n, what):
        for _ in deadline_loop(WAIT, 0.05):
            if len(self.lines()) >= n:
                return self.lines()
            assert self.proc.poll() is None, "`%s` exited %d early\n%s" % (" ".join(self.argv), self.proc.returncode,
                                                                          self.err()[-3000:])
        pytest.fail("%s: %d of %d lines after %d s\nstdout:\n%s\nstderr:\n%s"
                    % (what, len(self.lines()), n, WAIT, self.out()[-2000:], self.err()[-3000:]))

    def stop(self, want=0):
        """SIGTERM by PID; the exit status must be `want`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            pytest.fail("`%s` did not exit within %d s of SIGTERM\n%s" % (" ".join(self.argv), WAIT, self.err()))
        assert rc == want, "`%s` exited %d\n%s" % (" ".join(self.argv), rc, self.err()[-3000:])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def background(tmp_path):
    """A factory of background klog commands; any left running are killed."""
    started = []

    def make(name, *args):
        b = Background(tmp_path, name, *args)
        started.append(b)
        return b

    yield make
    for b in started:
        b.kill()


def listeners_file(server):
    return os.path.join(server.datadir, "serve.listeners")


def wait_group(server, group, members):
    """Until the group is Stable with `members` members, each assigned at
    least one partition.  Returns the json description."""
    last = None
    for _ in deadline_loop(WAIT, 0.2):
        out, _ = run_loose("-d", server.datadir, "groups", "describe", group, "--format", "json")
        if out:
            last = json.loads(out)
            if (last["state"] == "Stable" and len(last["members"]) == members
                    and all(m["assignment"] for m in last["members"])):
                return last
    pytest.fail("group %s did not become Stable with %d assigned members in %d s: %r" % (group, members, WAIT, last))


def wait_no_members(server, group):
    """Until the group has no member (a stopped consumer's LeaveGroup is
    processed by the server on its own connection)."""
    last = None
    for _ in deadline_loop(WAIT, 0.1):
        out, _ = run_loose("-d", server.datadir, "groups", "describe", group, "--format", "json")
        if out:
            last = json.loads(out)
            if not last["members"]:
                return last
    pytest.fail("group %s still has members after %d s: %r" % (group, WAIT, last))


def run_loose(*args):
    """Run klog; (stdout, stderr) whatever its status (stdout "" unless 0)."""
    p = subprocess.run([KLOG] + [str(a) for a in args], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=RUN_TIMEOUT)
    return (p.stdout.decode(errors="replace") if p.returncode == 0 else ""), p.stderr.decode(errors="replace")


# ---- the quick start -----------------------------------------------------------------------

def test_quick_start_three_processes(server, background):
    """Kafka's quick start, with klog in each terminal: `klog serve` (the
    fixture), `klog consume` in a second, `klog produce` in a third."""
    d = server.datadir
    with open(listeners_file(server)) as f:
        listed = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    assert listed == server.urls, "serve.listeners %r, serve printed %r" % (listed, server.urls)

    out, _ = klog("-d", d, "topics", "create", "quickstart-events")
    assert out == "Created topic quickstart-events.\n"
    out, _ = klog("-d", d, "topics", "list")
    assert "quickstart-events" in out.split()

    consumer = background("consumer", "-d", d, "consume", "quickstart-events", "--group", "quick",
                          "--from-beginning")
    wait_group(server, "quick", 1)
    lines = ["This is my first event", "This is my second event", "ünïcödé and\ttabs"]
    _, err = klog("-d", d, "produce", "quickstart-events", stdin="\n".join(lines) + "\n")
    assert "3 lines read, 3 records delivered, 0 failed" in err
    assert consumer.wait_lines(3, "the consumer") == lines
    consumer.stop()
    assert "Processed a total of 3 messages" in consumer.err()

    # committed past what it printed, at exit: nothing left to read
    desc = wait_no_members(server, "quick")
    assert [(o["topic"], o["committed"], o["lag"]) for o in desc["offsets"]] == [("quickstart-events", 3, 0)]
    out, _ = klog("-d", d, "groups", "list")
    assert "quick" in out.split()
    # a new member of the group starts where the first stopped
    more = background("consumer2", "-d", d, "consume", "quickstart-events", "--group", "quick",
                      "--from-beginning")
    wait_group(server, "quick", 1)
    klog("-d", d, "produce", "quickstart-events", "-q", stdin="fourth\n")
    assert more.wait_lines(1, "the second consumer") == ["fourth"]
    more.stop()

    server.stop()
    assert not os.path.exists(listeners_file(server)), "a clean stop leaves serve.listeners behind"
    # and the directory is the CLI's again: every record is there
    out, _ = klog("-d", d, "consume", "quickstart-events", "--from-beginning", "--timeout-ms", "500")
    assert out.splitlines() == lines + ["fourth"]


def test_two_consumers_one_group(serve, background):
    """Two `klog consume --group` processes split a topic's partitions."""
    server = serve(prepare=[["topics", "create", "split", "--partitions", "2"]])
    d = server.datadir
    a = background("a", "-d", d, "consume", "split", "--group", "pair", "--from-beginning", "--format", "json")
    wait_group(server, "pair", 1)
    b = background("b", "-d", d, "consume", "split", "--group", "pair", "--from-beginning", "--format", "json")
    desc = wait_group(server, "pair", 2)
    owned = [sorted(p["partition"] for p in m["assignment"]) for m in desc["members"]]
    assert sorted(owned) == [[0], [1]], desc

    keyed = ["k%d:v%d" % (i, i) for i in range(40)]
    _, err = klog("-d", d, "produce", "split", "--key-separator", ":", stdin="\n".join(keyed) + "\n")
    assert "40 records delivered, 0 failed" in err
    got = {}
    for _ in deadline_loop(WAIT, 0.1):
        got = {name: [json.loads(l) for l in c.lines()] for name, c in (("a", a), ("b", b))}
        if len(got["a"]) + len(got["b"]) >= 40:
            break
    recs = got["a"] + got["b"]
    assert sorted(r["value"] for r in recs) == sorted("v%d" % i for i in range(40)), got
    pa, pb = {r["partition"] for r in got["a"]}, {r["partition"] for r in got["b"]}
    assert pa and pb and not (pa & pb), "each consumer reads only its own partitions: a %r, b %r" % (pa, pb)
    for r in recs:
        assert r["key"] == "k" + r["value"][1:]
    a.stop()
    b.stop()
    desc = json.loads(klog("-d", d, "groups", "describe", "pair", "--format", "json")[0])
    assert sum(o["committed"] for o in desc["offsets"]) == 40 and all(o["lag"] == 0 for o in desc["offsets"])


# ---- administration ------------------------------------------------------------------------

def test_topics_and_groups_through_the_server(server, background):
    d = server.datadir
    out, _ = klog("-d", d, "topics", "create", "orders", "--partitions", "3", "--config", "retention.ms=3600000")
    assert out == "Created topic orders.\n"
    _, err = klog("-d", d, "topics", "create", "orders", want=1)
    assert "orders: topic already exists" in err
    klog("-d", d, "topics", "create", "orders", "--if-not-exists")
    _, err = klog("-d", d, "topics", "create", "bad/name", want=1)
    assert "invalid topic name" in err

    out, _ = klog("-d", d, "topics", "describe", "orders")
    head, *parts = out.splitlines()
    assert head == "Topic: orders\tPartitionCount: 3\tConfigs: retention.ms=3600000"
    assert [p.split("\t")[2] for p in parts] == ["Partition: 0", "Partition: 1", "Partition: 2"]
    assert all("\tStart: 0\tEnd: 0\t" in p and "\tError: none\tLeader: " in p for p in parts)

    klog("-d", d, "produce", "orders", "--partition", "2", "-q", stdin="a\nb\n")
    out, _ = klog("-d", d, "topics", "describe", "orders")
    assert "\tPartition: 2\tStart: 0\tEnd: 2\t" in out
    out, _ = klog("-d", d, "topics", "alter", "orders", "--partitions", "4")
    assert out == "Topic orders now has 4 partitions.\n"
    _, err = klog("-d", d, "topics", "alter", "orders", "--partitions", "2", want=1)
    assert "never shrinks" in err
    _, err = klog("-d", d, "produce", "orders", "--partition", "9", stdin="x\n", want=1)
    assert "no partition 9 (the topic has 4)" in err
    _, err = klog("-d", d, "consume", "nosuch", "--timeout-ms", "100", want=1)
    assert "nosuch: no such topic" in err

    # consume without a group: --partition, --offset, --max-messages
    out, _ = klog("-d", d, "consume", "orders", "--partition", "2", "--offset", "1", "--timeout-ms", "1000")
    assert out == "b\n"
    out, _ = klog("-d", d, "consume", "orders", "--from-beginning", "--max-messages", "1", "--format", "kv")
    assert out == "null\ta\n"

    # groups: a group with committed offsets, described, reset, deleted
    klog("-d", d, "consume", "orders", "--group", "audit", "--from-beginning", "--max-messages", "2",
         "--timeout-ms", "60000", "-q")
    out, _ = klog("-d", d, "groups", "list")
    assert out.split() == ["audit"]
    out, _ = klog("-d", d, "groups", "describe", "audit")
    assert out.startswith("Group: audit\tState: Empty\tGeneration: -\t")
    row = [l.split() for l in out.splitlines() if l.startswith("audit ")]
    assert row == [["audit", "orders", "2", "2", "2", "0", "-", "-"]]
    # a dry run by default (Kafka's): the plan, nothing changed
    out, err = klog("-d", d, "groups", "reset", "audit", "--topic", "orders", "--partition", "2", "--to-earliest")
    assert out.splitlines()[1].split() == ["audit", "orders", "2", "0"]
    assert "dry run: nothing changed" in err
    desc = json.loads(klog("-d", d, "groups", "describe", "audit", "--format", "json")[0])
    assert [(o["partition"], o["committed"]) for o in desc["offsets"]] == [(2, 2)]
    _, err = klog("-d", d, "groups", "reset", "audit", "--topic", "nosuch", "--to-earliest", want=1)
    assert "nosuch: no such topic" in err
    out, _ = klog("-d", d, "groups", "reset", "audit", "--all-topics", "--to-datetime", "2000-01-01T00:00:00Z")
    assert [l.split() for l in out.splitlines()[1:]] == [["audit", "orders", "2", "0"]]
    out, err = klog("-d", d, "groups", "reset", "audit", "--topic", "orders", "--partition", "2", "--to-earliest",
                    "--execute")
    assert out.splitlines()[1].split() == ["audit", "orders", "2", "0"]
    assert "dry run" not in err
    desc = json.loads(klog("-d", d, "groups", "describe", "audit", "--format", "json")[0])
    assert [(o["partition"], o["committed"], o["lag"]) for o in desc["offsets"]] == [(2, 0, 2)]
    _, err = klog("-d", d, "groups", "describe", "nosuch", want=1)
    assert "nosuch: no such group" in err

    # a member present: reset and delete are refused
    live = background("live", "-d", d, "consume", "orders", "--group", "audit")
    wait_group(server, "audit", 1)
    _, err = klog("-d", d, "groups", "reset", "audit", "--topic", "orders", "--to-latest", want=1)
    assert "active members" in err
    _, err = klog("-d", d, "groups", "delete", "audit", want=1)
    assert "active members" in err
    live.stop()
    wait_no_members(server, "audit")
    out, _ = klog("-d", d, "groups", "delete", "audit")
    assert out == "Deleted group audit.\n"

    out, _ = klog("-d", d, "topics", "delete", "orders")
    assert out == "Deleted topic orders.\n"
    _, err = klog("-d", d, "topics", "delete", "orders", want=1)
    assert "orders: no such topic" in err
    klog("-d", d, "topics", "delete", "orders", "--if-exists")
    out, _ = klog("-d", d, "topics", "list", "--exclude-internal")
    assert out == ""


def test_bootstrap_server_without_a_directory(server, tmp_path):
    env = dict(os.environ)
    env.pop("KLOG_DIR", None)
    b = server.bootstrap
    out, _ = klog("topics", "create", "direct", "--bootstrap-server", b, env=env)
    assert out == "Created topic direct.\n"
    klog("--bootstrap-server", b, "produce", "direct", "-q", stdin="one\ntwo\n", env=env)
    out, _ = klog("consume", "direct", "--bootstrap-server", b, "--from-beginning", "--max-messages", "2", env=env)
    assert out == "one\ntwo\n"
    out, _ = klog("topics", "list", "--bootstrap-server=" + b, env=env)
    assert "direct" in out.split()

    # nothing listens there: a clear error at once, exit 1
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    _, err = klog("--bootstrap-server", "127.0.0.1:%d" % port, "topics", "list", want=1, env=env)
    assert "--bootstrap-server 127.0.0.1:%d does not answer" % port in err
    for bad in ("nonsense", "127.0.0.1:", ":9092", "127.0.0.1:9092,", "host:port"):
        _, err = klog("--bootstrap-server", bad, "topics", "list", want=2, env=env)
        assert "expected HOST:PORT" in err


def test_command_config(server, tmp_path, background):
    d = server.datadir
    props = tmp_path / "client.properties"
    props.write_text("# Kafka's --command-config: key=value lines\n\n! a comment too\n"
                     "client.id = from-the-file\nsocket.timeout.ms: 30000\n")
    klog("-d", d, "topics", "create", "cfg", "--command-config", props)
    c = background("c", "-d", d, "consume", "cfg", "--group", "gc", "--command-config", props)
    desc = wait_group(server, "gc", 1)
    assert desc["members"][0]["client_id"] == "from-the-file"
    c.stop()
    bad = tmp_path / "bad.properties"
    bad.write_text("no.such.property=1\n")
    _, err = klog("-d", d, "topics", "list", "--command-config", bad, want=2)
    assert "no.such.property" in err and "--command-config" in err
    _, err = klog("-d", d, "topics", "list", "--command-config", tmp_path / "missing", want=1)
    assert "missing" in err
    _, err = klog("-d", d, "produce", "cfg", "-X", "no.such.property=1", stdin="x\n", want=2)
    assert "no.such.property" in err


# ---- the same partitions with and without the server ----------------------------------------

def test_keys_partitioned_as_the_library_does(serve):
    server = serve(prepare=[["topics", "create", "keys", "--partitions", "5"]])
    d = server.datadir
    lines = "".join("key-%d:remote\n" % i for i in range(50))
    klog("-d", d, "produce", "keys", "--key-separator", ":", "-q", stdin=lines)
    server.stop()
    klog("-d", d, "produce", "keys", "--key-separator", ":", "-q",
         stdin="".join("key-%d:local\n" % i for i in range(50)))
    out, _ = klog("-d", d, "consume", "keys", "--from-beginning", "--timeout-ms", "500", "--format", "json")
    where = {}
    for r in map(json.loads, out.splitlines()):
        where.setdefault(r["key"], {})[r["value"]] = r["partition"]
    assert len(where) == 50
    for k, by in where.items():
        assert by["remote"] == by["local"], "%s: partition %d through the server, %d directly" % (
            k, by["remote"], by["local"])
    assert len({by["local"] for by in where.values()}) == 5


# ---- the listeners file ---------------------------------------------------------------------

def locked(datadir):
    with open(os.path.join(datadir, ".lock"), "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_stale_listeners_file_after_kill9(serve, background):
    server = serve(prepare=[["topics", "create", "t"]])
    d = server.datadir
    path = listeners_file(server)
    with open(path) as f:
        stale = f.read()
    server.proc.send_signal(signal.SIGKILL)
    server.kill()    # reaps it; the fixture has nothing left to stop
    assert os.path.exists(path)

    # nobody holds the directory: the command opens it itself (and, holding
    # it, removes the file the killed server left)
    klog("-d", d, "produce", "t", "-q", stdin="after the kill\n")
    assert not os.path.exists(path)

    # someone holds it and the file names a server that is gone: exit 3, said
    # (once it prints, it is past opening the directory, and past removing
    # a listeners file there: the stale one is put back after that)
    holder = background("holder", "-d", d, "consume", "t", "--from-beginning", "--timeout-ms", "60000")
    assert holder.wait_lines(1, "the consumer holding the directory") == ["after the kill"]
    assert locked(d), "the background consumer does not hold the directory"
    with open(path, "w") as f:
        f.write(stale)
    for cmd, stdin in ((["produce", "t"], "x\n"), (["consume", "t", "--timeout-ms", "100"], None),
                       (["topics", "list"], None), (["groups", "list"], None)):
        _, err = klog("-d", d, *cmd, stdin=stdin, want=3)
        assert "locked by another process" in err and "does not answer" in err and "serve.listeners" in err, err
    # and without a file: a command that writes is refused, locked, exit 3;
    # one that only reads opens the directory read-only beside the holder
    os.unlink(path)
    _, err = klog("-d", d, "produce", "t", stdin="x\n", want=3)
    assert "locked by another process" in err
    out, err = klog("-d", d, "topics", "list")
    assert out.split() == ["t"] and "read-only" in err, (out, err)
    out, err = klog("-d", d, "consume", "t", "--from-beginning", "--timeout-ms", "200")
    assert out.splitlines() == ["after the kill"] and "read-only" in err, (out, err)
    _, err = klog("-d", d, "consume", "t", "--group", "g", "--timeout-ms", "100", want=3)
    assert "locked by another process" in err
    assert not os.path.exists(path), "a read-only open wrote into the directory"
    holder.stop()


def test_consumer_outlives_its_server(serve, background):
    """The server stops under a group consumer: the consumer keeps waiting
    (as Kafka's do), and when stopped it says what it could not commit."""
    server = serve(prepare=[["topics", "create", "t"]])
    d = server.datadir
    c = background("c", "-d", d, "consume", "t", "--group", "g", "--from-beginning")
    wait_group(server, "g", 1)
    klog("-d", d, "produce", "t", "-q", stdin="one\ntwo\n")
    assert c.wait_lines(2, "the consumer") == ["one", "two"]
    server.stop()
    assert c.proc.poll() is None, "the consumer exited with its server: %s" % c.err()
    c.stop(want=1)
    assert "commit: no answer from the group coordinator" in c.err()
    assert "Processed a total of 2 messages" in c.err()


def test_issue20_options_through_the_server(server):
    """consume --exit-at-end, --format TEMPLATE and print.*, produce --json
    and parse.key, delete-records and topics describe-configs work in
    remote mode as directly (issue 20)."""
    d = server.datadir
    klog("-d", d, "topics", "create", "i20", "--partitions", "2", "--config", "retention.hours=1")
    klog("-d", d, "produce", "i20", "--partition", "0", "--property", "parse.key=true", "-q", stdin="a\tone\nb\ttwo\n")
    out, _ = klog("-d", d, "consume", "i20", "--from-beginning", "-e", "-q", "--property", "print.key=true",
                  "--property", "print.offset=true")
    assert out == "Offset:0\ta\tone\nOffset:1\tb\ttwo\n"
    out, _ = klog("-d", d, "consume", "i20", "--from-beginning", "--exit-at-end", "-q", "--format", "%p@%o %k=%s\\n")
    assert out == "0@0 a=one\n0@1 b=two\n"
    # a recent timestamp: one from 1970 is past retention.hours=1, and the
    # retention pass may delete it before the consume below reads it
    ts = int(time.time() * 1000) - 60000
    klog("-d", d, "produce", "i20", "--json", "-q",
         stdin='{"key":"j","value":"v","headers":{"h":"x"},"partition":1,"timestamp":%d}\n' % ts)
    out, _ = klog("-d", d, "consume", "i20", "--partition", "1", "--from-beginning", "-e", "-q", "--format", "json")
    rec = json.loads(out)
    assert (rec["key"], rec["value"], rec["timestamp"], rec["headers"]) == ("j", "v", ts, [{"key": "h", "value": "x"}])
    _, err = klog("-d", d, "produce", "i20", "--json", stdin='{"value":"ok"}\n{"value":1}\n', want=1)
    assert 'line 2: "value" is not a string or null (nothing sent)' in err
    out, _ = klog("-d", d, "delete-records", "i20", "--partition", "0", "--offset", "1")
    assert out == "partition: i20-0\tlow_watermark: 1\n"
    out, _ = klog("-d", d, "consume", "i20", "--partition", "0", "--from-beginning", "-e", "-q")
    assert out == "two\n"
    out, _ = klog("-d", d, "topics", "describe-configs", "i20")
    assert out.startswith("All configs for topic i20 are:\n")
    assert "  retention.ms=3600000\tsource=DYNAMIC_TOPIC_CONFIG\n" in out
