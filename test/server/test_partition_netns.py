"""A real network partition of the partition's leader (issue 16's process-
level proof; test_quorum.py's SIGSTOP only stands in for one), in network
namespaces this test makes itself and always deletes:

    hub netns   h1 10.201.1.1/24   h2 10.201.2.1/24   h3 10.201.3.1/24
                (routes between them; the test's Kafka clients run here)
    node i      eth0 10.201.i.2/24, default route via 10.201.i.1:
                klog serve --listen tcp://10.201.i.2:9092 --node-id i
                           --peers 1@10.201.1.2:9092,2@...,3@...

Nothing is done to the root namespace's interfaces or routes: the veth
pairs are made straight into the namespaces.  Each node runs under `ip
netns exec`, which execs klog (the server's PID is klog's); this thread
enters the hub (setns) before it makes any client, so librdkafka's threads
are born there, and leaves it at the end.  Two faults, done in the hub:

  split    the leader is cut off from the other nodes, not from the
           clients: blackhole rules in the hub's routing drop every packet
           between them, both ways, silently
  isolate  the leader's link in the hub goes down: cut off from everyone

In both, a second producer made in the leader's own namespace (a client
on its box) writes on to it while it is cut off: the old leader must
acknowledge none of it.

Under the quorum controller (klog built with raft) the others elect a new
leader by themselves; under the static one this test promotes one, as an
operator would, and only the isolation is done: an old static leader cut
off from its followers but not from the clients shrinks its ISR to itself
and answers their writes NOT_ENOUGH_REPLICAS at once, and librdkafka, on a
connection that stays healthy, goes on asking it for metadata and never
moves to the promoted node (no acknowledged write is at risk; the clients
just wait for the heal).  An acks=all producer (confluent-kafka) writes
through all three nodes throughout.  After the heal, checked over what the
clients saw acknowledged and what the cluster serves: every acknowledged
record at its offset with its value (lost = 0; the old leader's
acknowledgements included: nothing it acknowledged while cut off may be
gone), dense offsets (and, idempotent, no value twice), and,
once the nodes are stopped, every replica's log equal to the leader's at
every offset (no divergent values).  It cannot pass without a failover
(a new leader, an acknowledged write after the cut), acknowledged
records on both sides of it, and writes sent to the cut-off leader.  Printed: faults, acknowledged, lost, the
failover time (cut -> first acks=all write acknowledged), what the old
leader truncated.  No timing is asserted.

The producer that writes throughout is idempotent (librdkafka's
enable.idempotence), so the check also finds no value served twice;
KLOG_PARTITION_IDEMPOTENT=0 runs it without (duplicates from its retries
are then allowed, and counted).  A leader split off from the controller
and not from the clients is fenced once the controller has had time to
elect another (replica.session.timeout.ms and a heartbeat): it takes no
writes (NOT_LEADER_OR_FOLLOWER), names no leader in Metadata and closes
the connection after answering it, so that librdkafka, which asks the
node it last sent to, asks another (without that its idempotent producer
stayed with the old leader for the whole cut: every run, 60 s).

Skipped (with the reason) when not root or when `ip netns` fails.  The
namespaces are named klogpt<pid>...; ones a killed run left behind are
deleted at the next start.  KLOG_PARTITION_ROUNDS=N (long mode) repeats
split and isolate N times; the default is one of each (about 20 s).
"""
import ctypes
import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from kwire import deadline_loop

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient  # noqa: E402
from test_replication_faults import klog  # noqa: E402  (the CLI, its exit status checked)

ROUNDS = int(os.environ.get("KLOG_PARTITION_ROUNDS", "1"))
QUORUM = bool(os.environ.get("KLOG_RAFT"))
IDEMPOTENT = os.environ.get("KLOG_PARTITION_IDEMPOTENT", "1") != "0"
TOPIC = "t"
PORT = 9092               # each node has its own namespace: no port to share
NET = "10.201"            # 10.201.i.0/24 per node, inside the namespaces only
TUNED = ["replica.heartbeat.ms=100", "replica.session.timeout.ms=600",
         "controller.quorum.election.timeout.ms=300", "replica.lag.time.max.ms=1000",
         "replica.fetch.wait.max.ms=100", "replica.socket.timeout.ms=2000", "replica.fetch.backoff.ms=50"]
CLONE_NEWNET = 0x40000000
NS_RE = re.compile(r"^klogpt(\d+)(h|n\d)$")


def ip_bin():
    for p in (shutil.which("ip"), "/usr/sbin/ip", "/sbin/ip"):
        if p and os.access(p, os.X_OK):
            return p
    return None


class Lab:
    """The hub and one namespace per node; enter() puts this thread in the hub."""

    def __init__(self, ip, n=3):
        self.ip = ip
        self.n = n
        self.hub = "klogpt%dh" % os.getpid()
        self.ns = ["klogpt%dn%d" % (os.getpid(), i + 1) for i in range(n)]
        self.made = []
        self.home = None       # this thread's own netns, while in the hub
        self.rules = []
        self.down = set()

    def run(self, *args, check=True):
        p = subprocess.run([self.ip] + list(args), capture_output=True, timeout=30)
        if check and p.returncode != 0:
            raise RuntimeError("ip %s: %s" % (" ".join(args), p.stderr.decode(errors="replace").strip()))
        return p

    def sweep(self):
        """Delete the namespaces of runs whose process is gone (kill -9)."""
        p = self.run("netns", "list", check=False)
        for line in p.stdout.decode(errors="replace").splitlines():
            name = line.split()[0] if line.split() else ""
            m = NS_RE.match(name)
            if not m or int(m.group(1)) == os.getpid():
                continue
            try:
                os.kill(int(m.group(1)), 0)
            except ProcessLookupError:
                self.run("netns", "delete", name, check=False)
            except PermissionError:
                pass

    def build(self):
        self.sweep()
        for name in [self.hub] + self.ns:
            self.run("netns", "add", name)
            self.made.append(name)
        self.run("-n", self.hub, "link", "set", "lo", "up")
        for i, ns in enumerate(self.ns):
            h = "h%d" % (i + 1)
            # made in the namespaces themselves: the root one never sees them
            self.run("link", "add", h, "netns", self.hub, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.run("-n", self.hub, "addr", "add", "%s.%d.1/24" % (NET, i + 1), "dev", h)
            self.run("-n", self.hub, "link", "set", h, "up")
            self.run("-n", ns, "link", "set", "lo", "up")
            self.run("-n", ns, "addr", "add", "%s.%d.2/24" % (NET, i + 1), "dev", "eth0")
            self.run("-n", ns, "link", "set", "eth0", "up")
            self.run("-n", ns, "route", "add", "default", "via", "%s.%d.1" % (NET, i + 1))
        self.run("netns", "exec", self.hub, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    def addr(self, i):
        return "%s.%d.2:%d" % (NET, i + 1, PORT)

    def enter(self):
        libc = ctypes.CDLL(None, use_errno=True)
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open("/var/run/netns/" + self.hub, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns into %s: %s" % (self.hub, os.strerror(e)))
        finally:
            os.close(fd)

    def leave(self):
        if self.home is None:
            return
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.setns(self.home, CLONE_NEWNET)
        os.close(self.home)
        self.home = None
        if rc != 0:
            raise OSError(ctypes.get_errno(), "setns back to this process's network namespace")

    def beside(self, i, make):
        """make() run on a thread that entered node i's namespace first: a
        client made there (its librdkafka threads are born there) reaches
        only what node i reaches, node i itself included."""
        out = []

        def run():
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open("/var/run/netns/" + self.ns[i], os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns into " + self.ns[i])
            finally:
                os.close(fd)
            out.append(make())
        t = threading.Thread(target=run)
        t.start()
        t.join(60)
        assert out, "could not make a client in %s" % self.ns[i]
        return out[0]

    # -- faults ---------------------------------------------------------------------
    def split(self, i):
        """Node i and the other nodes no longer reach each other; the hub
        (the clients) still reaches every node."""
        for j in range(self.n):
            if j == i:
                continue
            for a, b in ((i, j), (j, i)):
                r = ("iif", "h%d" % (a + 1), "to", "%s.%d.0/24" % (NET, b + 1), "blackhole")
                self.run("-n", self.hub, "rule", "add", *r)
                self.rules.append(r)

    def isolate(self, i):
        self.run("-n", self.hub, "link", "set", "h%d" % (i + 1), "down")
        self.down.add(i)

    def heal(self):
        while self.rules:
            self.run("-n", self.hub, "rule", "del", *self.rules.pop())
        for i in sorted(self.down):
            self.run("-n", self.hub, "link", "set", "h%d" % (i + 1), "up")
        self.down.clear()

    def destroy(self):
        try:
            self.leave()
        finally:
            for name in reversed(self.made):
                self.run("netns", "delete", name, check=False)
            self.made = []


@pytest.fixture
def lab():
    """The namespaces, this thread in the hub; always torn down (the nodes,
    started after, are stopped before: fixtures end in reverse order)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    ip = ip_bin()
    if ip is None:
        pytest.skip("no ip command (iproute2) to make network namespaces")
    lb = Lab(ip)
    try:
        try:
            lb.build()
            lb.enter()
        except (RuntimeError, OSError) as e:
            pytest.skip("network namespaces unavailable here: %s" % e)
        yield lb
    finally:
        lb.destroy()



class Writer:
    """An acks=all producer writing as fast as it is let: what it saw acknowledged."""

    def __init__(self, addrs, tag, idempotent=True, rate=1000):
        self.conf = {"bootstrap.servers": ",".join(addrs), "acks": "all", "enable.idempotence": idempotent,
                     "linger.ms": 5, "message.timeout.ms": 60000, "retry.backoff.ms": 50,
                     "topic.metadata.refresh.interval.ms": 500, "reconnect.backoff.ms": 50,
                     "reconnect.backoff.max.ms": 500, "socket.connection.setup.timeout.ms": 2000,
                     "socket.timeout.ms": 1000, "request.timeout.ms": 1000}
        if os.environ.get("KLOG_PARTITION_DEBUG"):
            self.conf["debug"] = os.environ["KLOG_PARTITION_DEBUG"]
        self.p = ck.Producer(self.conf)
        self.tag = tag
        self.errs = []
        self.rate = rate
        self.seq = 0
        self.acked = {}        # value -> offset
        self.acks = []         # (ack time, produce time, value)
        self.failed = 0
        self.fatals = []

    def _dr(self, err, msg, t0):
        if err is not None:
            self.failed += 1
            if len(self.errs) < 5:
                self.errs.append(err.str())
            if err.fatal():
                self.fatals.append(err.str())
            return
        self.acked[msg.value().decode()] = msg.offset()
        self.acks.append((time.monotonic(), t0, msg.value().decode()))

    def _renew(self):
        """A fatal error of the idempotent producer: an application makes a
        new one; what the old one did not see acknowledged is not counted."""
        self.p = ck.Producer(self.conf)

    def write_for(self, seconds):
        end = time.monotonic() + seconds
        while True:
            for _ in range(max(1, self.rate // 100)):
                v = "%s%02d-%09d" % (self.tag, len(self.fatals), self.seq)
                t0 = time.monotonic()
                try:
                    self.p.produce(TOPIC, value=v.encode(), partition=0,
                                   on_delivery=lambda e, m, t0=t0: self._dr(e, m, t0))
                    self.seq += 1
                except BufferError:
                    break
                except ck.KafkaException as e:      # fatal: a new producer
                    self.fatals.append(str(e))
                    self._renew()
                    break
            nfatal = len(self.fatals)
            try:
                self.p.poll(0.01)
            except ck.KafkaException as e:
                self.fatals.append(str(e))
            if len(self.fatals) > nfatal:
                self._renew()
            if time.monotonic() >= end:
                return

    def flush(self, seconds=60):
        left = 1
        for _ in deadline_loop(seconds, 0):
            nfatal = len(self.fatals)
            try:
                left = self.p.flush(2)
            except ck.KafkaException as e:
                self.fatals.append(str(e))
            if len(self.fatals) > nfatal:
                self._renew()
                continue
            if left == 0:
                return 0
        return left

    def first_ack_after(self, t):
        ts = [a for a, t0, _ in self.acks if t0 >= t]
        return min(ts) - t if ts else None

    def close(self):
        self.flush(10)
        self.p = None


def node_id(nd):
    return int(nd.options[nd.options.index("--node-id") + 1])


def views(nodes):
    """What every node says of t-0 (for failure messages)."""
    out = []
    for n in nodes:
        rc, txt = klog("--bootstrap-server", n.bootstrap, "topics", "describe", TOPIC, want=None, timeout=20)
        rows = [l for l in txt.splitlines() if "Partition: 0" in l]
        hw = "?"
        c = ck.Consumer({"bootstrap.servers": n.bootstrap, "group.id": "views"})
        try:
            hw = c.get_watermark_offsets(ck.TopicPartition(TOPIC, 0), timeout=3)[1]
        except ck.KafkaException as e:
            hw = str(e)[:80]
        finally:
            c.close()
        out.append("node %d: %s HW (its leader's, as it says): %s" % (
            node_id(n), rows[0].strip() if rows else txt.strip()[-200:], hw))
    return "\n".join(out)


def leader_of(nodes, isr, timeout=60, exclude=()):
    """The node that leads t-0 with at least isr in-sync replicas, as every
    node not in exclude says in its Metadata (all must agree: an old
    leader may say it leads a moment after the heal)."""
    seen = None
    for _ in deadline_loop(timeout, 0.1):
        said = set()
        for n in nodes:
            if n in exclude or not n.alive():
                continue
            try:
                md = AdminClient({"bootstrap.servers": n.bootstrap}).list_topics(TOPIC, timeout=2)
            except ck.KafkaException:
                said.add(None)
                continue
            t = md.topics.get(TOPIC)
            ok = t and not t.error and 0 in t.partitions and t.partitions[0].leader > 0
            said.add((t.partitions[0].leader, len(t.partitions[0].isrs)) if ok else None)
        seen = said
        if len(said) == 1 and None not in said:
            lid, nisr = said.pop()
            lead = [m for m in nodes if node_id(m) == lid and m not in exclude]
            if lead and nisr >= isr:
                return lead[0]
    pytest.fail("no agreed leader of %s-0 with %d in-sync replicas within %d s: %r" % (TOPIC, isr, timeout, seen))


def read_all(addr):
    """Every record of t-0 served by the cluster, read from its start up to
    the high watermark: [(offset, value), ...], high watermark."""
    c = ck.Consumer({"bootstrap.servers": addr, "group.id": "checker-%d" % time.monotonic_ns(),
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        _, hi = c.get_watermark_offsets(ck.TopicPartition(TOPIC, 0), timeout=20)
        c.assign([ck.TopicPartition(TOPIC, 0, ck.OFFSET_BEGINNING)])
        got = []
        for _ in deadline_loop(120, 0):
            if (got[-1][0] + 1 if got else 0) >= hi:
                break
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    got.append((m.offset(), m.value().decode()))
        return got, hi
    finally:
        c.close()


def read_dir(node):
    """A stopped node's log of t-0, read from its directory with the klog tool."""
    out = node.cli("consume", TOPIC, "--partition", "0", "--from-beginning", "--format", "json",
                   "--timeout-ms", "1500", "-q")
    return [(r["offset"], r["value"]) for r in map(json.loads, out.splitlines())]


def truncated(node):
    """Offsets node said it truncated (its log callback's lines, klog serve's stderr)."""
    n = 0
    for m in re.finditer(r"truncated offsets \d+-\d+ \((\d+) offsets?\)", node.log(tail=10 ** 7)):
        n += int(m.group(1))
    return n


def start_cluster(lab, serve):
    peers = ",".join("%d@%s" % (i + 1, lab.addr(i)) for i in range(lab.n))
    nodes = []
    for i in range(lab.n):
        opts = ["--node-id", str(i + 1), "--peers", peers]
        extra = TUNED + ([] if QUORUM else ["replication.controller=static"])
        # quorum: every voter proposes the topics it holds, as test_quorum
        prepare = [["topics", "create", TOPIC, "--partitions", "1"]] if QUORUM else []
        nodes.append(serve(extra=extra, listen=("tcp://" + lab.addr(i),), options=opts, prepare=prepare,
                           wrap=[lab.ip, "netns", "exec", lab.ns[i]]))
    if not QUORUM:
        klog("--bootstrap-server", lab.addr(0), "topics", "create", TOPIC, "--partitions", "1")
    return nodes


def promote(addr, timeout=30):
    """The static controller: the operator promotes a node of the majority side."""
    out = ""
    for _ in deadline_loop(timeout, 0.2):
        rc, out = klog("promote", "--bootstrap-server", addr, want=None)
        if rc == 0:
            return out
    pytest.fail("klog promote of %s never succeeded: %s" % (addr, out))


def test_partitioned_leader_loses_no_acknowledged_write(lab, serve, capsys):
    nodes = start_cluster(lab, serve)
    addrs = [lab.addr(i) for i in range(lab.n)]
    leader_of(nodes, isr=3)
    w = Writer(addrs, "m", idempotent=IDEMPOTENT)
    pinned = []            # producers beside a leader that was then cut off
    report = []
    try:
        w.write_for(1)
        assert w.flush(30) == 0 and w.acked, "no acks=all write acknowledged before any fault"
        # static: isolate only (see the module's comment)
        plan = (["split", "isolate"] if QUORUM else ["isolate"]) * ROUNDS
        for r, fault in enumerate(plan):
            old = leader_of(nodes, isr=3)
            oi = nodes.index(old)
            others = [n for n in nodes if n is not old]
            before = truncated(old)
            # a client beside the old leader, in its namespace: cut off
            # with it, it reaches nothing else
            pw = lab.beside(oi, lambda: Writer([lab.addr(oi)], "p%d-" % r, idempotent=False, rate=200))
            pinned.append(pw)
            pw.write_for(0.3)
            assert pw.flush(30) == 0 and pw.acked, "the client beside the leader got no acks=all write through"
            t_cut = time.monotonic()
            if fault == "split":
                lab.split(oi)
            else:
                lab.isolate(oi)
            promoted = ""
            if not QUORUM:
                promoted = promote(others[0].bootstrap)
            fail = None
            sent_cut = pw.seq
            for _ in deadline_loop(60, 0):
                w.write_for(0.2)
                pw.write_for(0)
                fail = w.first_ack_after(t_cut)
                if fail is not None:
                    break
            if fail is None:
                got, _ = read_all(others[0].bootstrap)
                vals = [v for _, v in got]
                pytest.fail("%s: no acks=all write acknowledged within 60 s of the cut (%d acks, %d failed, "
                            "fatal %r, errors %r); the majority serves %d records, %d distinct\n%s"
                            % (fault, len(w.acks), w.failed, w.fatals[-3:], w.errs, len(vals), len(set(vals)),
                               views(nodes)))
            # writes go on while it lasts (and the old leader's neighbour's to it)
            for _ in range(10):
                w.write_for(0.2)
                pw.write_for(0)
            new = leader_of(others, isr=2, exclude=(old,))
            assert new is not old, "no new leader while node %d was cut off" % node_id(old)
            sent_cut = pw.seq - sent_cut
            # of what the neighbour wrote after the cut, what the old leader
            # (all it reaches) acknowledged before the heal: nothing, as it
            # cannot commit without a follower (min.insync.replicas=2)
            pw.p.poll(0.5)
            acked_cut = len([1 for a, t0, _ in pw.acks if t0 >= t_cut])
            t_heal = time.monotonic()
            lab.heal()
            w.write_for(1)
            leader_of(nodes, isr=3)          # healed: every replica in sync again
            pw.flush(60)
            report.append((fault, node_id(old), node_id(new), fail, t_heal - t_cut, sent_cut, acked_cut,
                           truncated(old) - before, promoted))
        left = w.flush(60)
        assert left == 0, "%d acks=all records still unacknowledged 60 s after the heal" % left
        for pw in pinned:
            pw.flush(60)
    finally:
        lab.heal()

    leader = leader_of(nodes, isr=3)
    served, hi = read_all(leader.bootstrap)
    by_off = dict(served)
    acked = dict(w.acked)
    for pw in pinned:
        acked.update(pw.acked)
    lost = sorted((off, v) for v, off in acked.items() if by_off.get(off) != v)
    mine = [v for _, v in served if v.startswith("m")]
    dups = len(mine) - len(set(mine))
    dense = [o for o, _ in served] == list(range(served[0][0], hi)) if served else False
    with capsys.disabled():   # in the test log, pass or fail
        print("\npartition in network namespaces (%s controller), %d faults:" % (
            "quorum" if QUORUM else "static", len(report)))
        for fault, o, n, fail, lasted, sent, ack, trunc, promoted in report:
            print("  %-7s of leader node %d -> node %d leads; failover (cut -> first acks=all ack) %.3f s; "
                  "cut for %.1f s; a client beside the old leader wrote %d records to it meanwhile, %d "
                  "acknowledged; the old leader truncated %d offsets after the heal"
                  % (fault, o, n, fail, lasted,
                     sent, ack, trunc))
            for line in promoted.splitlines():
                print("    " + line)
        print("  produced %d, acknowledged %d (%d of them by the clients beside old leaders), "
              "failed %d; served %d; lost %d, duplicates %d; producers replaced after a fatal error %d"
              % (w.seq + sum(p.seq for p in pinned), len(acked), sum(len(p.acked) for p in pinned),
                 w.failed + sum(p.failed for p in pinned), len(served), len(lost), dups, len(w.fatals)))
    assert not lost, "acknowledged records lost: %d, e.g. %r" % (len(lost), lost[:5])
    assert dups == 0 or not IDEMPOTENT, "%d values of the idempotent producer served twice" % dups
    assert dense, "offsets not dense up to the high watermark %d" % hi
    assert len(w.acked) > 0 and all(x[3] is not None for x in report) and len(report) == len(plan)
    # writes were acknowledged after every cut, on the other side
    for fault, o, n, *_ in report:
        assert o != n
    assert all(x[5] > 0 for x in report), "nothing sent to a cut-off leader"
    # the old leader acknowledged nothing once cut off from its followers
    assert all(x[6] == 0 for x in report), [(x[0], x[6]) for x in report]

    # every replica holds the leader's log: no offset with two values
    w.close()
    for pw in pinned:
        pw.close()
    for nd in nodes:
        nd.stop()
    for nd in nodes:
        got = read_dir(nd)
        assert got[:len(served)] == served, "node %d's log differs from what the leader served" % node_id(nd)
