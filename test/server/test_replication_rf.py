"""Replication factors per topic (issue 16): three `klog serve` nodes, topics
with fewer replicas than nodes.

    klog -d DIR serve --listen tcp://127.0.0.1:P1 --node-id 1 \
         --peers 1@127.0.0.1:P1,2@127.0.0.1:P2,3@127.0.0.1:P3

Static controller (node 1 leads what it creates): a Kafka admin client
bootstrapped at node 3 creates a topic with replication factor 2; node 3
answers NOT_CONTROLLER and the client asks the controller Metadata names.
Every node's Metadata (and `klog topics describe`) shows the same two
Replicas and the Isr, the node outside them holds no directory of the
topic, a factor above the nodes is INVALID_REPLICATION_FACTOR, acks=all
records written are on both replicas; then the leader is killed, the
other replica promoted, and no acknowledged record is lost.

Quorum controller (raft builds): kafka-python's admin client creates a
topic of replication factor 3 over 3 partitions: the preferred leaders
(first replicas) are three different nodes (Kafka's placement); one of
factor 2 lives on its two replicas only and fails over by itself when its
leader is killed, without losing an acknowledged record.

Ports are the kernel's (bound to port 0 and released just before the
nodes start: the peers list needs them up front).  Servers are stopped by
PID; every wait is bounded.
"""
import os
import struct
import subprocess

import pytest

from conftest import KLOG, read_values
import kwire
from kwire import deadline_loop, free_ports

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TUNED = ["replica.heartbeat.ms=100", "replica.lag.time.max.ms=10000", "replica.fetch.wait.max.ms=100",
         "replica.socket.timeout.ms=2000", "replica.fetch.backoff.ms=50"]


def cluster(serve, extra):
    ports = free_ports(3)
    peers = ",".join("%d@127.0.0.1:%d" % (i + 1, p) for i, p in enumerate(ports))
    return [serve(extra=TUNED + list(extra), listen=("tcp://127.0.0.1:%d" % p,),
                  options=["--node-id", str(i + 1), "--peers", peers]) for i, p in enumerate(ports)]


def node_id(n):
    return int(n.options[1])   # --node-id N


def states(node, topic):
    """{partition: (leader, replicas, isr)} in node's Metadata, or None."""
    try:
        md = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(topic, timeout=2)
    except ck.KafkaException:
        return None
    t = md.topics.get(topic)
    if not t or t.error:
        return None
    return {p: (pm.leader, sorted(pm.replicas), sorted(pm.isrs)) for p, pm in t.partitions.items()}


def settled(nodes, topic, nparts, rf, timeout=30):
    """The partition states once every live node names a leader and a full
    ISR for each partition, and they all agree."""
    last = None
    for _ in deadline_loop(timeout, 0.1):
        seen = [states(n, topic) for n in nodes if n.alive()]
        last = seen
        if all(s and len(s) == nparts and all(l > 0 and len(r) == rf and i == r for l, r, i in s.values())
               for s in seen) and all(s == seen[0] for s in seen):
            return seen[0]
    pytest.fail("%s: the nodes never agreed on %d partitions of %d in-sync replicas: %r" % (topic, nparts, rf, last))


def create(admin, topic, parts, rf, assignment=None):
    """CreateTopics; the error code (0: created)."""
    nt = (NewTopic(topic, num_partitions=len(assignment), replica_assignment=assignment) if assignment
          else NewTopic(topic, num_partitions=parts, replication_factor=rf))
    fut = admin.create_topics([nt], request_timeout=20)[topic]
    try:
        fut.result(30)
        return 0
    except ck.KafkaException as e:
        return e.args[0].code()


def write(nodes, topic, values, partition=0, timeout=40):
    """acks=all writes, one at a time (retried by librdkafka while leaders
    move); the values acknowledged."""
    p = ck.Producer({"bootstrap.servers": ",".join(n.bootstrap for n in nodes if n.alive()), "acks": "all",
                     "enable.idempotence": False, "retry.backoff.ms": 50, "message.timeout.ms": 30000,
                     "topic.metadata.refresh.interval.ms": 250, "socket.timeout.ms": 2000, "max.in.flight": 1})
    acked = []
    for v in values:
        res = []
        p.produce(topic, value=v, partition=partition, on_delivery=lambda err, msg: res.append(err))
        for _ in deadline_loop(timeout, 0.01):
            p.poll(0.05)
            if res:
                break
        if res and res[0] is None:
            acked.append(v)
    return acked




def read_nodes(nodes, topic, want):
    return read_values(",".join(n.bootstrap for n in nodes if n.alive()), topic, want,
                       **{"topic.metadata.refresh.interval.ms": 250})


def create_raw(node, topic, parts, rf):
    """CreateTopics v0 straight to node (no client's routing): its error code."""
    body = (struct.pack(">i", 1) + kwire.kstr(topic) + struct.pack(">ihii", parts, rf, 0, 0)
            + struct.pack(">i", 10000))
    b = kwire.call(node.bootstrap, 19, 0, body, corr=7)
    assert struct.unpack(">i", b[:4])[0] == 1
    (nl,) = struct.unpack(">h", b[4:6])
    assert b[6:6 + nl] == topic.encode()
    return struct.unpack(">h", b[6 + nl:8 + nl])[0]


def alter_raw(node, topic, cfgs):
    """IncrementalAlterConfigs v0 of topic straight to node: (error code,
    message).  cfgs: [(key, op, value)], op 0 SET, 1 DELETE."""
    b = struct.pack(">ib", 1, 2) + kwire.kstr(topic) + struct.pack(">i", len(cfgs))
    for k, op, v in cfgs:
        b += kwire.kstr(k) + struct.pack(">b", op) + (kwire.kstr(v) if v is not None else b"\xff\xff")
    r = kwire.Reader(kwire.call(node.bootstrap, 44, 0, b + b"\x00", timeout=40))
    r.i32()
    assert r.i32() == 1
    return r.i16(), r.string()


def describe_raw(node, topic):
    """DescribeConfigs v0 of topic straight to node: (error, {key: value} of
    the topic's own keys, i.e. neither defaults nor the node's own
    min.insync.replicas)."""
    body = struct.pack(">i", 1) + struct.pack(">b", 2) + kwire.kstr(topic) + struct.pack(">i", -1)
    r = kwire.Reader(kwire.call(node.bootstrap, 32, 0, body))
    r.i32()
    assert r.i32() == 1
    err, _msg, _t, _n = r.i16(), r.string(), r.i8(), r.string()
    own = {}
    for _ in range(r.i32()):
        k, v, _ro, is_default, _sens = r.string(), r.string(), r.i8(), r.i8(), r.i8()
        if not is_default and k != "min.insync.replicas":
            own[k] = v
    return err, own


def controller_id(node, timeout=30):
    """The controller node's Metadata names (once it names one)."""
    ctl = -1
    for _ in deadline_loop(timeout, 0.1):
        try:
            ctl = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(timeout=2).controller_id
        except ck.KafkaException:
            continue
        if ctl > 0:
            break
    assert ctl > 0, "no controller named"
    return ctl


def holds(node, topic):
    """Whether node's data directory has a directory of the topic."""
    return any(e == topic or e.startswith(topic + "-") for e in os.listdir(node.datadir))


def klog(*args, timeout=60):
    p = subprocess.run([KLOG] + list(args), capture_output=True, timeout=timeout)
    assert p.returncode == 0, "klog %s: exit %d\n%s" % (" ".join(args), p.returncode, p.stderr.decode())
    return p.stdout.decode()


def test_static_replication_factor_two(serve):
    nodes = cluster(serve, ["replication.controller=static", "min.insync.replicas=1"])
    # node 3 is not the controller: it refuses, and names it in Metadata
    for _ in deadline_loop(20, 0.1):
        md = AdminClient({"bootstrap.servers": nodes[2].bootstrap}).list_topics(timeout=5)
        if md.controller_id == 1:
            break
    assert md.controller_id == 1
    assert create_raw(nodes[2], "nope", 1, 2) == 41       # NOT_CONTROLLER
    assert create_raw(nodes[0], "bad", 1, 0) == 38        # INVALID_REPLICATION_FACTOR
    admin = AdminClient({"bootstrap.servers": nodes[2].bootstrap})   # librdkafka asks the controller
    assert create(admin, "one", 1, 2) == 0
    assert create(admin, "three", 3, 2) == 0
    assert create(admin, "toomany", 1, 4) == ck.KafkaError.INVALID_REPLICATION_FACTOR
    assert create(admin, "one", 1, 2) == ck.KafkaError.TOPIC_ALREADY_EXISTS

    # an assignment of one's own (the static controller must be in each)
    assert create(admin, "manual", 0, 0, [[1, 3], [2, 1]]) == 0
    assert create(admin, "nolead", 0, 0, [[2, 3]]) == ck.KafkaError.INVALID_REPLICA_ASSIGNMENT
    assert create(admin, "twice", 0, 0, [[1, 1]]) == ck.KafkaError.INVALID_REPLICA_ASSIGNMENT
    manual = settled(nodes, "manual", 2, 2)
    assert manual[0][1] == [1, 3] and manual[1][1] == [1, 2] and manual[0][0] == manual[1][0] == 1

    one = settled(nodes, "one", 1, 2)
    leader, reps, isr = one[0]
    assert leader == 1 and 1 in reps          # the static controller leads what it creates
    three = settled(nodes, "three", 3, 2)
    assert all(s[0] == 1 and 1 in s[1] for s in three.values())
    # the others spread over nodes 2 and 3
    assert {r for s in three.values() for r in s[1]} == {1, 2, 3}

    # klog topics describe through any node: the real Replicas and Isr
    for n in nodes:
        out = klog("--bootstrap-server", n.bootstrap, "topics", "describe", "one")
        line = [l for l in out.splitlines() if "\tPartition: 0\t" in l][0]
        assert "\tReplicas: %s\t" % ",".join(map(str, reps)) in line + "\t", line
        assert "Isr: " in line

    # only the replicas hold it
    for n in nodes:
        assert holds(n, "one") == (node_id(n) in reps), (node_id(n), reps, os.listdir(n.datadir))

    # a write to the node outside the replicas is refused (the client follows Metadata)
    before = write(nodes, "one", [b"a%d" % i for i in range(30)])
    assert len(before) == 30

    # the leader dies; the other replica is promoted and leads
    other = [n for n in nodes if node_id(n) in reps and node_id(n) != 1][0]
    nodes[0].proc.kill()
    nodes[0].proc.wait(10)
    nodes[0].proc = None
    out = klog("promote", "--bootstrap-server", other.bootstrap)
    assert "leads" in out, out
    for _ in deadline_loop(30, 0.1):
        s = states(other, "one")
        if s and s[0][0] == node_id(other):
            break
    assert states(other, "one")[0][0] == node_id(other)
    # partitions of "three" it holds no replica of went to their other replica
    for _ in deadline_loop(30, 0.1):
        s = states(other, "three")
        if s and all(v[0] in (2, 3) for v in s.values()):
            break
    assert all(v[0] in (2, 3) and v[0] in v[1] for v in states(other, "three").values()), states(other, "three")
    after = write(nodes, "one", [b"b%d" % i for i in range(10)])
    assert len(after) == 10
    want = set(before + after)
    got = read_nodes(nodes, "one", want)
    assert want <= got, "acknowledged records lost: %s" % sorted(want - got)[:10]


def raft_built():
    return os.environ.get("KLOG_RAFT") == "1"   # meson sets it in raft builds


def test_quorum_spreads_leaders_and_fails_over(serve):
    if not raft_built():
        pytest.skip("klog was built without raft (no quorum controller)")
    kafka = pytest.importorskip("kafka")
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic
    nodes = cluster(serve, ["replica.session.timeout.ms=1500", "controller.quorum.election.timeout.ms=500"])
    # kafka-python's admin client sends CreateTopics to the controller its
    # Metadata names (the raft leader), whichever node it bootstrapped at
    want = [("spread", 3, 3), ("q", 1, 2)]
    done, last = set(), None
    for _ in deadline_loop(60, 0.2):
        try:
            admin = KafkaAdminClient(bootstrap_servers=nodes[1].bootstrap, request_timeout_ms=20000)
        except kafka.errors.KafkaError as e:   # no raft leader yet, or not known yet
            last = e
            continue
        try:
            for name, n, r in want:
                if name not in done:
                    try:
                        admin.create_topics([KNewTopic(name, n, r)])
                    except kafka.errors.TopicAlreadyExistsError:
                        pass   # an earlier try that timed out on the client's side
                    done.add(name)
        except kafka.errors.KafkaError as e:
            last = e
        finally:
            admin.close()
        if len(done) == len(want):
            break
    assert len(done) == len(want), "kafka-python could not create the topics: %r" % last
    settled(nodes, "spread", 3, 3)
    # Kafka's placement: the preferred leaders (first replicas) are three
    # nodes; each leads its partition if it was alive when the topic was
    # created (on a loaded machine a node may miss its session and the
    # controller picks the next replica: printed, not asserted)
    md = AdminClient({"bootstrap.servers": nodes[0].bootstrap}).list_topics("spread", timeout=10)
    first = {p: pm.replicas[0] for p, pm in md.topics["spread"].partitions.items()}
    assert sorted(first.values()) == [1, 2, 3], first
    leaders = {p: pm.leader for p, pm in md.topics["spread"].partitions.items()}
    print("spread: preferred leaders %r, leaders %r" % (first, leaders))
    q = settled(nodes, "q", 1, 2)
    leader, reps, _ = q[0]
    for n in nodes:
        assert holds(n, "q") == (node_id(n) in reps), (node_id(n), reps)

    before = write(nodes, "q", [b"a%d" % i for i in range(20)])
    assert len(before) == 20
    old = [n for n in nodes if node_id(n) == leader][0]
    old.proc.kill()
    old.proc.wait(10)
    old.proc = None
    # the controller elects the other replica by itself
    other = [n for n in nodes if node_id(n) in reps and n is not old][0]
    s = None
    for _ in deadline_loop(30, 0.1):
        s = states(other, "q")
        if s and s[0][0] == node_id(other):
            break
    assert s and s[0][0] == node_id(other), "the partition did not fail over: %r" % s
    # alone, it refuses acks=all (min.insync.replicas: min(2, 2)) until
    # the old leader is back, follows and catches up
    old.start()
    after = write(nodes, "q", [b"b%d" % i for i in range(10)])
    assert len(after) == 10
    want = set(before + after)
    got = read_nodes(nodes, "q", want)
    assert want <= got, "acknowledged records lost: %s" % sorted(want - got)[:10]


@pytest.mark.parametrize("controller", ["static", "quorum"])
def test_auto_create_through_the_controller(serve, controller):
    """A producer's Metadata for a topic nobody created, sent to a node that
    is not the controller: the node has the controller create it with the
    defaults (Kafka's forwarding, KIP-590), answers LEADER_NOT_AVAILABLE
    meanwhile, and the producer's records land on every replica."""
    if controller == "quorum" and not raft_built():
        pytest.skip("klog was built without raft (no quorum controller)")
    extra = ["replication.controller=static"] if controller == "static" else \
        ["replica.session.timeout.ms=1500", "controller.quorum.election.timeout.ms=500"]
    nodes = cluster(serve, extra + ["num.partitions=2"])
    ctl = controller_id(nodes[0])
    other = [n for n in nodes if node_id(n) != ctl][0]
    # the producer knows only a node that is not the controller
    p = ck.Producer({"bootstrap.servers": other.bootstrap, "acks": "all", "enable.idempotence": False,
                     "message.timeout.ms": 30000, "retry.backoff.ms": 50})
    res = []
    for i in range(4):
        p.produce("made-on-demand", value=b"v%d" % i, partition=i % 2, on_delivery=lambda err, msg: res.append(err))
    assert p.flush(40) == 0
    assert res == [None] * 4, res
    # created by the controller with the defaults: 2 partitions, 3 replicas
    settled(nodes, "made-on-demand", 2, 3)
    assert set(read_nodes(nodes, "made-on-demand", {b"v0", b"v1", b"v2", b"v3"})) >= {b"v0", b"v1", b"v2", b"v3"}
    for n in nodes:
        assert holds(n, "made-on-demand"), "node %d holds no replica" % node_id(n)



@pytest.mark.parametrize("controller", ["static", "quorum"])
def test_alter_configs_through_any_node(serve, controller):
    """AlterConfigs of a replicated topic sent to a node that is not the
    controller (kafka-python sends it to any node): the node checks it,
    forwards it to the controller (KIP-590) and answers once it applied the
    change itself; every node then shows it."""
    if controller == "quorum" and not raft_built():
        pytest.skip("klog was built without raft (no quorum controller)")
    extra = ["replication.controller=static"] if controller == "static" else \
        ["replica.session.timeout.ms=1500", "controller.quorum.election.timeout.ms=500"]
    nodes = cluster(serve, extra)
    ctl = controller_id(nodes[0])
    rc = None
    for _ in deadline_loop(30, 0.2):   # (a quorum's new controller may not be known everywhere yet)
        rc = create(AdminClient({"bootstrap.servers": nodes[0].bootstrap}), "cfg", 1, 3)
        if rc not in (ck.KafkaError.NOT_CONTROLLER, ck.KafkaError.REQUEST_TIMED_OUT):
            break
    assert rc in (0, ck.KafkaError.TOPIC_ALREADY_EXISTS), rc
    settled(nodes, "cfg", 1, 3)
    others = [n for n in nodes if node_id(n) != ctl]

    def retention(n):
        err, own = describe_raw(n, "cfg")
        assert err == 0, err
        return own.get("retention.ms")
    for i, n in enumerate(nodes):
        value = str(3600000 + i)
        assert alter_raw(n, "cfg", [("retention.ms", 0, value)]) == (0, None), "node %d" % node_id(n)
        if node_id(n) != ctl:   # forwarded: answered once applied where it was asked
            assert retention(n) == value
        for m in nodes:
            for _ in deadline_loop(10, 0.05):
                if retention(m) == value:
                    break
            assert retention(m) == value, "node %d" % node_id(m)
    # checked on the node asked, with klog's message
    err, msg = alter_raw(others[0], "cfg", [("retention.ms", 0, "soon")])
    assert err == 40 and "retention.ms" in msg, (err, msg)     # INVALID_CONFIG
    err, msg = alter_raw(others[0], "nosuch", [("retention.ms", 0, "1000")])
    assert err == 3, (err, msg)                                  # UNKNOWN_TOPIC_OR_PARTITION

    # kafka-python's admin client: AlterConfigs to its least loaded node
    pytest.importorskip("kafka")
    from kafka.admin import KafkaAdminClient, ConfigResource, ConfigResourceType
    admin = KafkaAdminClient(bootstrap_servers=others[-1].bootstrap, request_timeout_ms=30000)
    try:
        for v in ("600000", "700000", "800000"):
            resp = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg", configs={"retention.ms": v})])
            assert [r[0] for r in resp.resources] == [0], resp.resources
            for m in nodes:
                for _ in deadline_loop(10, 0.05):
                    if retention(m) == v:
                        break
                assert retention(m) == v, "node %d" % node_id(m)
    finally:
        admin.close()
