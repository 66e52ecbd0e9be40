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
Another commits a consumer group's offsets and kills -9 the leader of
__consumer_offsets (the group's coordinator): a new consumer of the group
resumes, on the node elected in its place, at the offsets committed.
The third freezes the leader with SIGSTOP instead: a leader that is alive
but cut off, the stand-in for a network partition of the leader (a real one,
in network namespaces, is test_partition_netns.py's).  The others elect a new leader while it
is frozen; after SIGCONT it must give up its term, take no write, and lose
no acknowledged record.  KLOG_QUORUM_ROUNDS=N (long mode, not in the default
run) repeats kill -9 and SIGSTOP of whichever node leads, N rounds of each.

The ports are the kernel's (bound to port 0 and released just before the
nodes start: the peers list needs them up front).  Servers are stopped by
PID; every wait is bounded.
"""
import os
import signal
import time

import pytest

from conftest import read_values
from kwire import deadline_loop, free_ports

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient  # noqa: E402

TUNED = ["replica.heartbeat.ms=100", "replica.session.timeout.ms=600",
         "controller.quorum.election.timeout.ms=300", "replica.lag.time.max.ms=2000",
         "replica.fetch.wait.max.ms=100", "replica.socket.timeout.ms=2000", "replica.fetch.backoff.ms=50"]
# issue 16's "tuned timeouts" for the failover figure: the servers' and the
# client's (librdkafka asks for metadata every 50 ms, and 20 ms after an
# error: it otherwise learns the new leader at its next periodic refresh or
# topic scan, up to a second later)
FAST = ["replica.heartbeat.ms=50", "replica.session.timeout.ms=300",
        "controller.quorum.election.timeout.ms=100", "replica.lag.time.max.ms=2000",
        "replica.fetch.wait.max.ms=50", "replica.socket.timeout.ms=1000", "replica.fetch.backoff.ms=20"]
FAST_CLIENT = {"retry.backoff.ms": 20, "topic.metadata.refresh.fast.interval.ms": 20, "topic.metadata.refresh.interval.ms": 50,
               "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100}
# librdkafka's own defaults, which Writer's settings would otherwise replace
DEFAULT_CLIENT = {"retry.backoff.ms": 100, "topic.metadata.refresh.interval.ms": 300000, "socket.timeout.ms": 60000}




def start_cluster(serve, witnesses=(), extra=(), base=TUNED):
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
        nodes.append(serve(extra=list(base) + list(extra), listen=("tcp://127.0.0.1:%d" % p,), options=opts, prepare=prepare))
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
    def __init__(self, nodes, conf=None):
        c = {"bootstrap.servers": ",".join(n.bootstrap for n in nodes), "acks": "all",
             "enable.idempotence": False, "retry.backoff.ms": 50, "message.timeout.ms": 30000,
             "topic.metadata.refresh.interval.ms": 250, "socket.timeout.ms": 2000, "max.in.flight": 1}
        c.update(conf or {})
        self.p = ck.Producer(c)
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




def controller_id(nodes):
    for n in nodes:
        if n.alive():
            try:
                return AdminClient({"bootstrap.servers": n.bootstrap}).list_topics("t", timeout=2).controller_id
            except ck.KafkaException:
                pass
    return -1


def kill_until_written(old, w, value, what):
    """kill -9 of old (a partition's leader), then acks=all writes of value
    until one is acknowledged (60 s at most): the seconds from the kill."""
    t0 = time.monotonic()
    old.proc.kill()
    old.proc.wait(10)
    old.proc = None
    for _ in deadline_loop(60, 0):
        if w.write(value):
            return time.monotonic() - t0
    pytest.fail("%s: no acks=all write succeeded within 60 s of the leader's kill -9" % what)


def fail_over(nodes, label, capsys, data=None, client=None):
    data = data or nodes                  # the clients' brokers: the data nodes
    w = Writer(data, client)
    for i in range(20):
        assert w.write(b"before-%d" % i), "acks=all write %d before the failover" % i
    old = leader_of(data)
    ctl = controller_id(data)
    took = kill_until_written(old, w, b"after-0", label)
    with capsys.disabled():   # shown in the test log, pass or fail
        print("\n%s: leader (node %d%s) killed -> first acks=all write acknowledged: %.3f s"
              % (label, nodes.index(old) + 1, ", the controller" if ctl == nodes.index(old) + 1 else "", took))
    for i in range(1, 20):
        assert w.write(b"after-%d" % i), "acks=all write %d after the failover" % i
    new = leader_of([n for n in data if n is not old], isr=1)
    assert new is not old
    want = set(w.acked)
    got = read_values(new.bootstrap, "t", want)
    assert want <= got, "acknowledged records lost: %s" % sorted(want - got)[:10]
    # the old leader comes back as a follower and catches up
    old.start()
    return w, old, new


def test_three_nodes_fail_over_by_themselves(serve, capsys):
    nodes = start_cluster(serve)
    fail_over(nodes, "3 voters", capsys)


def test_fail_over_with_default_timeouts(serve, capsys):
    # the servers' defaults and the client's: a dead process's port refuses
    # connections, and the controller (or, when the controller died, the
    # raft followers) act on that instead of waiting out a session
    nodes = start_cluster(serve, base=[])
    fail_over(nodes, "3 voters, default timeouts", capsys, client=DEFAULT_CLIENT)


@pytest.mark.skipif(not os.environ.get("KLOG_QUORUM_FAILOVERS"), reason="long mode: set KLOG_QUORUM_FAILOVERS=N")
@pytest.mark.parametrize("mode", ["fast", "default"])
def test_failover_times(serve, capsys, mode):
    """N kill -9 of whichever node leads t-0 (restarted each time, back in
    the ISR before the next): the failover times, those where the leader was
    also the controller apart."""
    rounds = int(os.environ["KLOG_QUORUM_FAILOVERS"])
    # (librdkafka waits up to reconnect.backoff.max.ms, 10 s by default,
    # before it connects again to a broker it found down: here the new
    # leader is often the node killed a round earlier)
    base, client = (FAST, FAST_CLIENT) if mode == "fast" else ([], dict(DEFAULT_CLIENT, **{"reconnect.backoff.max.ms": 1000}))
    nodes = start_cluster(serve, base=base)
    w = Writer(nodes, client)
    times = {False: [], True: []}
    for r in range(rounds):
        assert w.write(b"round-%d" % r)
        old = leader_of(nodes, isr=3)
        was_ctl = controller_id(nodes) == int(old.options[1])
        times[was_ctl].append(kill_until_written(old, w, b"k%d-after" % r, "round %d" % r))
        old.start()
    check_acked(leader_of(nodes), w)
    with capsys.disabled():
        for k, v in times.items():
            v.sort()
            if v:
                print("\n%s timeouts, leader %s the controller: %d failovers, min %.3f median %.3f max %.3f s"
                      % (mode, "was" if k else "was not", len(v), v[0], v[len(v) // 2], v[-1]))
                print("  " + " ".join("%.3f" % x for x in v))


def witness_says(witness, topic="t"):
    """The leader of partition 0 in the witness's Metadata answer, once it names one."""
    for _ in deadline_loop(30, 0.1):
        try:
            md = AdminClient({"bootstrap.servers": witness.bootstrap}).list_topics(topic, timeout=2)
        except ck.KafkaException:
            continue
        t = md.topics.get(topic)
        if t and not t.error and 0 in t.partitions and t.partitions[0].leader > 0:
            return t.partitions[0].leader, sorted(t.partitions[0].replicas)  # (placement order)
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


def freeze_over(nodes, w, label, capsys, tag):
    """SIGSTOP of the partition's leader while w writes; SIGCONT after the
    others elected a new one.  Returns the new leader."""
    old = leader_of(nodes)
    others = [n for n in nodes if n is not old]
    t0 = time.monotonic()
    os.kill(old.pid, signal.SIGSTOP)      # alive, silent: cut off from everyone
    try:
        ok = False
        for _ in deadline_loop(60, 0):
            if w.write(b"%s-frozen-0" % tag):
                ok = True
                break
        assert ok, "no acks=all write succeeded within 60 s of the leader's SIGSTOP"
        took = time.monotonic() - t0
        with capsys.disabled():
            print("\n%s: leader (node %d) stopped -> first acks=all write acknowledged: %.3f s"
                  % (label, nodes.index(old) + 1, took))
        for i in range(1, 5):
            assert w.write(b"%s-frozen-%d" % (tag, i)), "acks=all write %d while the old leader is stopped" % i
        new = leader_of(others)
        assert new is not old
    finally:
        os.kill(old.pid, signal.SIGCONT)
    # the old leader wakes up believing it leads: what it takes now it
    # cannot commit (its followers follow another), and it learns the new
    # epoch, truncates and follows
    for i in range(5):
        assert w.write(b"%s-thawed-%d" % (tag, i)), "acks=all write %d after SIGCONT" % i
    return new


def check_acked(node, w):
    """Every acknowledged record, read from the partition's leader (the
    client is sent there from node's bootstrap)."""
    want = set(w.acked)
    got = read_values(node.bootstrap, "t", want)
    assert want <= got, "acknowledged records lost: %s" % sorted(want - got)[:10]


def test_leader_stopped_then_resumed(serve, capsys):
    nodes = start_cluster(serve)
    w = Writer(nodes)
    for i in range(5):
        assert w.write(b"before-%d" % i), "acks=all write %d before the SIGSTOP" % i
    new = freeze_over(nodes, w, "3 voters, SIGSTOP", capsys, b"r0")
    check_acked(new, w)


@pytest.mark.skipif(not os.environ.get("KLOG_QUORUM_ROUNDS"), reason="long mode: set KLOG_QUORUM_ROUNDS=N")
def test_rounds_of_kill_and_stop(serve, capsys):
    rounds = int(os.environ["KLOG_QUORUM_ROUNDS"])
    nodes = start_cluster(serve)
    w = Writer(nodes)
    for r in range(rounds):
        assert w.write(b"round-%d" % r)
        freeze_over(nodes, w, "round %d, SIGSTOP" % r, capsys, b"s%d" % r)
        old = leader_of(nodes)
        kill_until_written(old, w, b"k%d-after" % r, "round %d" % r)
        old.start()
        check_acked(leader_of(nodes), w)


def offsets_leader(nodes, timeout=30):
    """The node that leads __consumer_offsets-0 (the coordinator of every
    group: offsets.topic.num.partitions is 1), as a live node's Metadata says."""
    for _ in deadline_loop(timeout, 0.1):
        for n in nodes:
            if not n.alive():
                continue
            try:
                md = AdminClient({"bootstrap.servers": n.bootstrap}).list_topics("__consumer_offsets", timeout=2)
            except ck.KafkaException:
                continue
            t = md.topics.get("__consumer_offsets")
            if t and not t.error and 0 in t.partitions and t.partitions[0].leader > 0:
                lead = [m for m in nodes if m.options[1] == str(t.partitions[0].leader)]
                if lead and lead[0].alive() and len(t.partitions[0].isrs) >= 2:
                    return lead[0]
    pytest.fail("no leader with 2 in-sync replicas for __consumer_offsets-0")


def group_consumer(nodes):
    return ck.Consumer({"bootstrap.servers": ",".join(n.bootstrap for n in nodes if n.alive()),
                        "group.id": "resume", "auto.offset.reset": "earliest", "enable.auto.commit": False,
                        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "socket.timeout.ms": 2000,
                        "topic.metadata.refresh.interval.ms": 250})


def first_message(c, timeout=60):
    for _ in deadline_loop(timeout, 0):
        m = c.poll(0.2)
        if m is not None and not m.error():
            return m
    pytest.fail("the group's consumer got no record within %d s" % timeout)


def test_group_resumes_at_committed_offsets_after_leader_kill(serve, capsys):
    nodes = start_cluster(serve)
    w = Writer(nodes)
    for i in range(30):
        assert w.write(b"g-%d" % i)
    c = group_consumer(nodes)
    c.subscribe(["t"])
    try:
        m = first_message(c)
        assert m.offset() == 0            # joined, assigned t-0
        # a synchronous commit: acknowledged once every in-sync replica of
        # __consumer_offsets holds it
        got = c.commit(offsets=[ck.TopicPartition("t", 0, 12)], asynchronous=False)
        assert got[0].error is None and got[0].offset == 12
    finally:
        c.close()
    coord = offsets_leader(nodes)
    coord.proc.kill()                     # kill -9 of the group's coordinator
    coord.proc.wait(10)
    coord.proc = None
    t0 = time.monotonic()
    c = group_consumer(nodes)
    c.subscribe(["t"])
    try:
        m = first_message(c)
        took = time.monotonic() - t0
        with capsys.disabled():
            print("\ncoordinator (node %s) killed -> the group's first record on the new one: %.3f s"
                  % (coord.options[1], took))
        assert m.offset() == 12, "the group resumed at %d, not at its committed 12" % m.offset()
        assert m.value() == b"g-12"
    finally:
        c.close()
