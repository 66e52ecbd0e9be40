"""Issue 16's process-level fault test, Jepsen's way: three `klog serve`
nodes on 127.0.0.1 replicating two partitions, a librdkafka producer
(confluent-kafka) writing with acks=all and idempotence through all of
them, and faults done to the processes while it writes:

  kill-follower   kill -9 of a follower, restarted 2 s later
  pause-follower  SIGSTOP of a follower for 3 s (it leaves the ISR), SIGCONT
  kill-leader     kill -9 of the leader; the operator (this test) promotes
                  an in-sync follower with `klog promote`; the old leader
                  restarts and must come back as a follower
  pause-leader    SIGSTOP of the leader, promote, SIGCONT: the old leader
                  wakes up believing it leads and must never acknowledge
                  again (controller epochs fence it)

The static controller makes leadership an operator's decision, so the
failover time measured here (leader killed -> first acks=all write
acknowledged after it) is the promote's and the client's, not a
detector's.  The quorum controller is what makes it automatic.

Checked at the end, over what the producer saw acknowledged and what the
cluster serves once healed: every acknowledged record at its offset with
its value (lost = 0), no value twice (the idempotent producer), values in
order along the offsets of each partition, and every replica's log equal
to the leader's.  A network partition proper is not done here (the
deterministic simulation does them, test/replication/sim.c, and
test_partition_netns.py in network namespaces); a pause is what a
partition looks like from the other nodes.

KLOG_FAULTS_ROUNDS=N (default 1) repeats the four faults N times in a
seeded order (KLOG_FAULTS_SEED); the long run is in bench/RESULTS.md.
Every wait is bounded; servers are stopped by PID.
"""
import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import KLOG
from kwire import deadline_loop, free_ports

ck = pytest.importorskip("confluent_kafka")

TOPIC = "jt"
PARTS = 2
ROUNDS = int(os.environ.get("KLOG_FAULTS_ROUNDS", "1"))
SEED = int(os.environ.get("KLOG_FAULTS_SEED", str(int(time.time()) % 100000)))


def remote_built():
    p = subprocess.run([KLOG, "--version"], capture_output=True, timeout=30)
    return b"not built" not in p.stdout


def klog(*args, want=0, timeout=60):
    p = subprocess.run([KLOG] + list(args), capture_output=True, timeout=timeout)
    if want is not None:
        assert p.returncode == want, "klog %s: exit %d (want %d)\n%s" % (
            " ".join(args), p.returncode, want, p.stderr.decode(errors="replace"))
    return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")




def describe(addr):
    """{partition: {"Leader":.., "Isr":.., "End":..}} from one node, or {}."""
    rc, out = klog("--bootstrap-server", addr, "topics", "describe", TOPIC, want=None, timeout=30)
    if rc != 0:
        return {}
    rows = {}
    for line in out.splitlines():
        f = dict(p.split(": ", 1) for p in line.strip().split("\t") if ": " in p)
        if "Partition" in f:
            rows[int(f["Partition"])] = f
    return rows


class Cluster:
    def __init__(self, serve, n=3):
        ports = free_ports(n)
        self.addrs = ["127.0.0.1:%d" % p for p in ports]
        peers = ",".join("%d@tcp://%s" % (i + 1, a) for i, a in enumerate(self.addrs))
        common = ["replication.peers=" + peers, "replica.lag.time.max.ms=1000",
                  "replica.fetch.wait.max.ms=100", "replica.fetch.backoff.ms=100",
                  "replica.heartbeat.ms=100", "replica.socket.timeout.ms=2000",
                  # the operator's controller: three peers get the quorum one by default
                  "replication.controller=static"]
        self.nodes = [serve(extra=["node.id=%d" % (i + 1)] + common, listen=("tcp://" + a,))
                      for i, a in enumerate(self.addrs)]
        self.paused = set()

    def start(self, i):
        end = time.monotonic() + 20
        while True:
            try:
                return self.nodes[i].start()
            except pytest.fail.Exception as e:   # the port, an instant after a kill
                if time.monotonic() > end or "in use" not in str(e).lower():
                    raise
                time.sleep(0.2)

    def kill9(self, i):
        nd = self.nodes[i]
        nd.proc.send_signal(signal.SIGKILL)
        nd.proc.wait(10)
        nd.proc = None

    def pause(self, i):
        os.kill(self.nodes[i].pid, signal.SIGSTOP)
        self.paused.add(i)

    def resume(self, i):
        os.kill(self.nodes[i].pid, signal.SIGCONT)
        self.paused.discard(i)

    def resume_all(self):
        for i in list(self.paused):
            self.resume(i)

    def leader(self, timeout=30):
        """The node every live node names as leader of every partition."""
        for _ in deadline_loop(timeout, 0.1):
            votes = set()
            for i, nd in enumerate(self.nodes):
                if nd.proc is None or i in self.paused:
                    continue
                rows = describe(self.addrs[i])
                votes |= {rows[p]["Leader"] for p in rows} if len(rows) == PARTS else {"?"}
            if len(votes) == 1 and votes != {"?"} and votes != {"-1"}:
                return int(votes.pop()) - 1
        pytest.fail("no agreed leader within %d s" % timeout)

    def wait_in_sync(self, timeout=60):
        """Every partition's ISR holds every node (asked of the leader)."""
        want = ",".join(str(i + 1) for i in range(len(self.nodes)))
        rows = {}
        for _ in deadline_loop(timeout, 0.1):
            ld = self.leader()
            rows = describe(self.addrs[ld])
            if len(rows) == PARTS and all(
                    ",".join(sorted(r["Isr"].split(","))) == want for r in rows.values()):
                return ld
        pytest.fail("ISR never full again in %d s: %r" % (timeout, rows))

    def promote(self, i, timeout=30):
        last = ""
        for _ in deadline_loop(timeout, 0.2):
            rc, last = klog("promote", "--bootstrap-server", self.addrs[i], want=None)
            if rc == 0:
                return
        pytest.fail("klog promote of node %d never succeeded: %s" % (i + 1, last))


class Writer:
    """An idempotent acks=all producer; what it saw acknowledged."""

    def __init__(self, addrs):
        self.conf = {
            "bootstrap.servers": ",".join(addrs), "acks": "all", "enable.idempotence": True,
            "linger.ms": 5, "message.timeout.ms": 120000, "retry.backoff.ms": 50,
            "topic.metadata.refresh.interval.ms": 500, "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500, "socket.connection.setup.timeout.ms": 2000,
            # a paused leader holds what is in flight to it until these
            # pass (librdkafka's defaults: 60 s and 30 s); retries are safe
            # with idempotence
            "socket.timeout.ms": 3000, "request.timeout.ms": 3000}
        self.p = ck.Producer(self.conf)
        self.seq = 0
        self.acked = {}        # value -> (partition, offset)
        self.failed = 0
        self.ack_times = []    # (monotonic time of the ack, produce time)
        self.fatal = None      # the current producer's fatal error
        self.fatals = []       # every one: the producer was replaced

    def _dr(self, err, msg, t0):
        if err is not None:
            self.failed += 1
            if err.fatal():
                self.fatal = err
            return
        self.acked[msg.value().decode()] = (msg.partition(), msg.offset())
        self.ack_times.append((time.monotonic(), t0))

    def write_for(self, seconds, rate=2000):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(rate // 100):
                v = "g%02d-%09d" % (len(self.fatals), self.seq)   # producer, then order
                t0 = time.monotonic()
                try:
                    self.p.produce(TOPIC, value=v.encode(), key=str(self.seq % 7).encode(),
                                   on_delivery=lambda e, m, t0=t0: self._dr(e, m, t0))
                    self.seq += 1
                except BufferError:
                    break
                except ck.KafkaException as e:
                    self._replace(e.args[0])
                    break
            try:
                self.p.poll(0.01)
            except ck.KafkaException as e:
                self._replace(e.args[0])
            if self.fatal is not None:
                self._replace(self.fatal)

    def _replace(self, err):
        """A fatal error of the idempotent producer (librdkafka raises
        OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence desynchronization", when
        records it sent to a leader that then died timed out and the new
        leader never had them): as an application must, drop the producer
        and make a new one.  What the old one had not seen acknowledged is
        not counted as acknowledged; nothing it did see may be lost.
        produce() on a producer already failed raises _FATAL ("Local:
        Fatal error"), whose own fatal flag is not set: the same case."""
        if not (err.fatal() or err.code() == ck.KafkaError._FATAL):
            raise ck.KafkaException(err)
        self.fatals.append(err.str())
        self.fatal = None
        self.p = ck.Producer(self.conf)

    def first_ack_after(self, t):
        ts = [a for a, t0 in self.ack_times if t0 >= t]
        return min(ts) - t if ts else None


def read_all(addr):
    """Every record of the topic, read through the protocol from addr:
    {partition: [(offset, value), ...]}."""
    c = ck.Consumer({"bootstrap.servers": addr, "group.id": "checker", "enable.auto.commit": False,
                     "auto.offset.reset": "earliest"})
    try:
        highs = {}
        for p in range(PARTS):
            lo, hi = c.get_watermark_offsets(ck.TopicPartition(TOPIC, p), timeout=20)
            highs[p] = hi
        c.assign([ck.TopicPartition(TOPIC, p, ck.OFFSET_BEGINNING) for p in range(PARTS)])
        got = {p: [] for p in range(PARTS)}
        for _ in deadline_loop(120, 0):
            if all((got[p][-1][0] + 1 if got[p] else 0) >= highs[p] for p in range(PARTS)):
                break
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    got[m.partition()].append((m.offset(), m.value().decode()))
        return got, highs
    finally:
        c.close()


def read_dir(node):
    """A stopped node's log, read from its directory with the klog tool."""
    got = {p: [] for p in range(PARTS)}
    for p in range(PARTS):
        out = node.cli("consume", TOPIC, "--partition", str(p), "--from-beginning", "--format", "json",
                       "--timeout-ms", "1500", "-q")
        for line in out.splitlines():
            r = json.loads(line)
            got[p].append((r["offset"], r["value"]))
    return got


def test_faults_lose_no_acknowledged_write(serve):
    if not remote_built():
        pytest.skip("the klog tool was built without remote mode (librdkafka)")
    rnd = random.Random(SEED)
    print("seed %d, rounds %d" % (SEED, ROUNDS))
    cl = Cluster(serve)
    klog("--bootstrap-server", cl.addrs[0], "topics", "create", TOPIC, "--partitions", str(PARTS))
    cl.wait_in_sync()
    w = Writer(cl.addrs)
    faults, failovers = [], []
    try:
        w.write_for(2)
        plan = []
        for _ in range(ROUNDS):
            r = ["kill-follower", "pause-follower", "kill-leader", "pause-leader"]
            rnd.shuffle(r)
            plan += r
        for f in plan:
            ld = cl.leader()
            fo = rnd.choice([i for i in range(3) if i != ld])
            faults.append(f)
            if f == "kill-follower":
                cl.kill9(fo)
                w.write_for(2)
                cl.start(fo)
            elif f == "pause-follower":
                cl.pause(fo)
                w.write_for(3)
                cl.resume(fo)
            elif f in ("kill-leader", "pause-leader"):
                t = time.monotonic()
                if f == "kill-leader":
                    cl.kill9(ld)
                else:
                    cl.pause(ld)
                # the operator: promote an in-sync follower (ISR as the
                # remaining follower sees it; both were in sync before)
                cl.promote(fo)
                fail = None
                for _ in deadline_loop(60, 0):
                    w.write_for(0.2)
                    fail = w.first_ack_after(t)
                    if fail is not None:
                        break
                failovers.append(fail)
                w.write_for(1)
                if f == "kill-leader":
                    cl.start(ld)
                else:
                    cl.resume(ld)
            cl.wait_in_sync()
            w.write_for(1)
        left = 1
        for _ in deadline_loop(60, 0):
            try:
                left = w.p.flush(5)
            except ck.KafkaException as e:
                w._replace(e.args[0])
                continue
            if w.fatal is not None:
                w._replace(w.fatal)
                continue
            if left == 0:
                break
        assert left == 0, "%d records still unacknowledged after 60 s" % left
    finally:
        cl.resume_all()

    ld = cl.wait_in_sync()
    served, highs = read_all(cl.addrs[ld])
    by_off = {p: dict(served[p]) for p in range(PARTS)}
    lost = [(v, po) for v, po in w.acked.items() if by_off[po[0]].get(po[1]) != v]
    values = [v for p in range(PARTS) for _, v in served[p]]
    dups = len(values) - len(set(values))
    # each producer's records in its order (a replaced producer's last
    # requests may still land after its successor's first)
    disorder = 0
    for p in range(PARTS):
        last = {}
        for _, v in served[p]:
            g = v[:3]
            disorder += g in last and v < last[g]
            last[g] = v
    dense = all([o for o, _ in served[p]] == list(range(served[p][0][0], highs[p]))
                for p in range(PARTS) if served[p])
    fo_txt = ", ".join("%.3f s" % x if x is not None else "none" for x in failovers)
    print("faults %d (%s); produced %d, acknowledged %d, failed %d; served %d; lost %d, duplicates %d, "
          "out of order %d; failover (kill/pause -> first ack) %s; producers replaced after a fatal error %d%s"
          % (len(faults), ",".join(faults), w.seq, len(w.acked), w.failed, len(values), len(lost), dups,
             disorder, fo_txt, len(w.fatals), (" (%s)" % w.fatals[0][:200]) if w.fatals else ""))
    assert not lost, "acknowledged records lost: %d, e.g. %r" % (len(lost), lost[:5])
    assert dups == 0, "%d values served twice" % dups
    assert disorder == 0, "%d records out of order" % disorder
    assert dense, "offsets not dense"
    assert len(w.acked) > 0 and all(x is not None for x in failovers), failovers

    # every replica holds the leader's log, record for record
    for nd in cl.nodes:
        nd.stop()
    for i, nd in enumerate(cl.nodes):
        got = read_dir(nd)
        for p in range(PARTS):
            assert got[p][:len(served[p])] == served[p], \
                "node %d partition %d differs from what the leader served" % (i + 1, p)


def test_checker_sees_an_unclean_promote_lose_writes(serve):
    """The checker's own test: a follower paused out of the ISR, the other
    two killed, the stale one promoted with --unclean.  What only the
    others held is gone once they come back and follow it, and the
    checker must say so."""
    if not remote_built():
        pytest.skip("the klog tool was built without remote mode (librdkafka)")
    cl = Cluster(serve)
    klog("--bootstrap-server", cl.addrs[0], "topics", "create", TOPIC, "--partitions", str(PARTS))
    cl.wait_in_sync()
    w = Writer(cl.addrs)
    try:
        w.write_for(1)
        ld = cl.leader()
        stale, other = [i for i in range(3) if i != ld]
        cl.pause(stale)
        w.write_for(3)            # out of the ISR; the other two go on acknowledging
        assert w.p.flush(30) == 0
        cl.kill9(ld)
        cl.kill9(other)
        cl.resume(stale)
        rc, out = klog("promote", "--bootstrap-server", cl.addrs[stale], want=None)
        assert rc == 1, "a node out of the ISR was promoted without --unclean: %s" % out
        _, said = klog("promote", "--unclean", "--bootstrap-server", cl.addrs[stale])
        cl.start(ld)
        cl.start(other)
    finally:
        cl.resume_all()
    cl.wait_in_sync()
    served, _ = read_all(cl.addrs[stale])
    by_off = {p: dict(served[p]) for p in range(PARTS)}
    lost = [v for v, po in w.acked.items() if by_off[po[0]].get(po[1]) != v]
    print("unclean promote: acknowledged %d, lost %d" % (len(w.acked), len(lost)))
    assert lost, "the checker saw no loss after an unclean promote of a stale node"
    # klog promote said, per partition, where the stale node leads from:
    # every lost acknowledged record is at or above it, none below
    print(said)
    leads, unclean = {}, 0
    for line in said.splitlines():
        f = dict(x.split(": ", 1) for x in line.split("\t") if ": " in x)
        if line.startswith(TOPIC + "\t") and "Leads from" in f:
            leads[int(f["Partition"])] = int(f["Leads from"])
            # (a partition whose ISR the paused node last knew it in is
            # reported clean: it never heard that it left)
            unclean += f["Lost"] != "none"
    assert sorted(leads) == list(range(PARTS)), said
    assert unclean >= 1 and "unclean" in said, said
    for v in lost:
        p, off = w.acked[v]
        assert off >= leads[p], "%s lost at %d-%d, below where klog promote said it leads from (%d)" % (
            v, p, off, leads[p])
    below = [v for v, (p, off) in w.acked.items() if off < leads[p]]
    assert below and not set(below) & set(lost), "records below the promote's end lost"
