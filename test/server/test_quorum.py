"""Three `klog serve` nodes under the quorum controller (issue 16): raft
among the peers elects the controller, and the controller elects a new
partition leader by itself when the leader dies.

    klog -d DIR serve --listen tcp://127.0.0.1:P1 --node-id 1 \
         --peers 1@127.0.0.1:P1,2@127.0.0.1:P2,3@127.0.0.1:P3

A librdkafka producer (confluent-kafka) writes with acks=all; the
partition's leader is killed with SIGKILL; the producer's next acks=all
write succeeds on the new leader without any operator.  The failover time
(leader killed -> first acknowledged acks=all write) is printed, not
asserted (no timing thresholds in tests).  Every record acknowledged before
and after is then read back from the survivors.  The second test runs two
data nodes and a witness (--witnesses 3): the pair fails over by itself.

The ports are the kernel's (bound to port 0 and released just before the
nodes start: the peers list needs them up front).  Servers are stopped by
PID; every wait is bounded.
"""
import socket
import time

import pytest

from kwire import deadline_loop

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient  # noqa: E402

TUNED = ["replica.heartbeat.ms=100", "replica.session.timeout.ms=600",
         "controller.quorum.election.timeout.ms=300", "replica.lag.time.max.ms=2000",
         "replica.fetch.wait.max.ms=100", "replica.socket.timeout.ms=2000", "replica.fetch.backoff.ms=50"]


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def start_cluster(serve, witnesses=(), extra=()):
    ports = free_ports(3)
    peers = ",".join("%d@127.0.0.1:%d" % (i + 1, p) for i, p in enumerate(ports))
    nodes = []
    for i, p in enumerate(ports):
        opts = ["--node-id", str(i + 1), "--peers", peers]
        if witnesses:
            opts += ["--witnesses", ",".join(str(w) for w in witnesses)]
        # the witness too: whichever node leads raft proposes the topics it
        # holds (a witness holds no replica of them)
        prepare = [["topics", "create", "t", "--partitions", "1"]]
        nodes.append(serve(extra=TUNED + list(extra), listen=("tcp://127.0.0.1:%d" % p,), options=opts, prepare=prepare))
    return nodes


def leader_of(nodes, topic="t", timeout=30, isr=2):
    """The node that leads partition 0, as a live node's Metadata says."""
    for _ in deadline_loop(timeout, 0.1):
        for n in nodes:
            if not n.alive():
                continue
            try:
                md = AdminClient({"bootstrap.servers": n.bootstrap}).list_topics(topic, timeout=2)
            except ck.KafkaException:
                continue
            t = md.topics.get(topic)
            if t and not t.error and 0 in t.partitions and t.partitions[0].leader > 0:
                lid = t.partitions[0].leader
                lead = [m for m in nodes if m.options[1] == str(lid)]   # --node-id N
                if len(t.partitions[0].isrs) >= isr and lead and lead[0].alive():
                    return lead[0]
    pytest.fail("no leader with %d in-sync replicas for %s-0 among %s" % (isr, topic, [n.bootstrap for n in nodes]))


class Writer:
    def __init__(self, nodes):
        self.p = ck.Producer({"bootstrap.servers": ",".join(n.bootstrap for n in nodes), "acks": "all",
                              "enable.idempotence": False, "retry.backoff.ms": 50, "message.timeout.ms": 30000,
                              "topic.metadata.refresh.interval.ms": 250, "socket.timeout.ms": 2000,
                              "max.in.flight": 1})
        self.acked = []

    def write(self, value, timeout=40):
        """One acks=all write; True once acknowledged."""
        res = []
        self.p.produce("t", value=value, partition=0, on_delivery=lambda err, msg: res.append(err))
        for _ in deadline_loop(timeout, 0.01):
            self.p.poll(0.05)
            if res:
                break
        if res and res[0] is None:
            self.acked.append(value)
            return True
        return False


def read_all(node, want, timeout=40):
    c = ck.Consumer({"bootstrap.servers": node.bootstrap, "group.id": "check-%d" % time.monotonic_ns(),
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["t"])
    got = set()
    try:
        for _ in deadline_loop(timeout, 0.01):
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.add(m.value())
            if want <= got:
                break
    finally:
        c.close()
    return got


def fail_over(nodes, label, capsys, data=None):
    data = data or nodes                  # the clients' brokers: the data nodes
    w = Writer(data)
    for i in range(20):
        assert w.write(b"before-%d" % i), "acks=all write %d before the failover" % i
    old = leader_of(data)
    t0 = time.monotonic()
    old.proc.kill()                       # kill -9 of the partition's leader
    old.proc.wait(10)
    old.proc = None
    ok = False
    for _ in deadline_loop(60, 0):
        if w.write(b"after-0"):
            ok = True
            break
    assert ok, "no acks=all write succeeded within 60 s of the leader's death"
    took = time.monotonic() - t0
    with capsys.disabled():   # shown in the test log, pass or fail
        print("\n%s: leader (node %d) killed -> first acks=all write acknowledged: %.3f s"
              % (label, nodes.index(old) + 1, took))
    for i in range(1, 20):
        assert w.write(b"after-%d" % i), "acks=all write %d after the failover" % i
    new = leader_of([n for n in data if n is not old], isr=1)
    assert new is not old
    want = set(w.acked)
    got = read_all(new, want)
    assert want <= got, "acknowledged records lost: %s" % sorted(want - got)[:10]
    # the old leader comes back as a follower and catches up
    old.start()
    return w, old, new


def test_three_nodes_fail_over_by_themselves(serve, capsys):
    nodes = start_cluster(serve)
    fail_over(nodes, "3 voters", capsys)


def witness_says(witness, topic="t"):
    """The leader of partition 0 in the witness's Metadata answer, once it names one."""
    for _ in deadline_loop(30, 0.1):
        try:
            md = AdminClient({"bootstrap.servers": witness.bootstrap}).list_topics(topic, timeout=2)
        except ck.KafkaException:
            continue
        t = md.topics.get(topic)
        if t and not t.error and 0 in t.partitions and t.partitions[0].leader > 0:
            return t.partitions[0].leader, t.partitions[0].replicas
    pytest.fail("the witness's Metadata names no leader for %s-0" % topic)


def test_two_data_nodes_and_a_witness(serve, capsys):
    # two replicas: acks=all on the survivor alone needs min.insync.replicas=1
    # (the default, min(2, replicas), refuses it: NOT_ENOUGH_REPLICAS)
    nodes = start_cluster(serve, witnesses=(3,), extra=["min.insync.replicas=1"])
    # the witness holds no replica: the partition lives on nodes 1 and 2
    lead = leader_of(nodes[:2])
    assert lead is not nodes[2]
    # A client learns the witness from the brokers list and may ask it for
    # metadata: it must name the data nodes, as the quorum committed them,
    # never itself (it once did, from its own copy of the topic, and a
    # producer that asked it wrote to the witness until it gave up).
    assert witness_says(nodes[2]) == (int(lead.options[1]), [1, 2])
    w, old, new = fail_over(nodes, "2 data nodes + witness", capsys, data=nodes[:2])
    lid = int(new.options[1])
    for _ in deadline_loop(30, 0.1):
        if witness_says(nodes[2])[0] == lid:
            break
    assert witness_says(nodes[2]) == (lid, [1, 2])
