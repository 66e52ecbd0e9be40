"""confluent-kafka: three consumers of one group, each in its own process,
sharing a topic of 6 partitions through `klog serve`'s group coordinator
(Kafka's classic protocol: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
LeaveGroup, OffsetCommit, OffsetFetch).

Each member (group_member.py) commits every record synchronously after
reading it and logs its assignments and records.  Steady state is reached
when the three members' current assignments are disjoint, non-empty and
cover the 6 partitions; records produced after that must each be consumed
exactly once, by the member that owns its partition.

Commits surviving a restart of the server:
  * test_group_commits_survive_restart: the members leave, the server is
    restarted on the same directory, the committed offsets read back
    (OffsetFetch) equal the partitions' ends, and three new members given
    new records consume exactly those (none of the old ones again), each
    starting where the group had committed;
  * test_group_members_ride_through_restart: the members keep running while
    the server is restarted on the same port; they rejoin and resume from
    the committed offsets: no record from before the restart is read again,
    every record after it is read, twice only if all but one of its commits
    were refused, and in the end all is committed.  A member may read a
    record of its old assignment after the restart, before it learns that
    the partition went to another member (whose commit of it may already
    have succeeded), and its commit may wait for the coordinator: the check
    waits until every commit has returned, and wants the stale one fenced.  The members keep librdkafka's default
    client.id ("rdkafka"), as most users do: member ids the server hands out
    after its restart must not be ones the members still hold from before.
"""
import json
import os
import subprocess
import sys

import pytest

ck = pytest.importorskip("confluent_kafka",
                         reason="confluent-kafka (python3-confluent-kafka) is not installed; build.sh installs it")
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from kwire import deadline_loop  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = 6
TOPIC = "shared"
GROUP = "trio"


class Member:
    def __init__(self, server, workdir, name):
        self.log = os.path.join(workdir, "member-%s.jsonl" % name)
        self.name = name
        self.proc = subprocess.Popen([sys.executable, "-B", os.path.join(HERE, "group_member.py"), server.bootstrap,
                                      TOPIC, GROUP, self.log, "300"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log + ".err", "wb"))

    def events(self):
        try:
            with open(self.log) as f:
                return [json.loads(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []

    def assignment(self):
        """The partitions it holds now (eager protocol: assign replaces, revoke empties)."""
        cur = set()
        for e in self.events():
            if e["ev"] == "assign":
                cur = set(e["parts"])
            elif e["ev"] == "revoke":
                cur = set()
        return cur

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError("member %s did not exit within 60 s of SIGTERM" % self.name)
        assert rc == 0, "member %s exited %d:\n%s" % (self.name, rc, self.stderr())
        assert self.events()[-1]["ev"] == "closed"

    def stderr(self):
        try:
            with open(self.log + ".err", errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""


@pytest.fixture
def members():
    ms = []
    yield ms
    for m in ms:
        if m.proc.poll() is None:
            m.proc.kill()
            m.proc.wait(10)


def start_members(server, tmp_path, members, tag):
    new = [Member(server, str(tmp_path), "%s%d" % (tag, i)) for i in range(3)]
    members.extend(new)
    return new


def wait_steady(trio, seconds=90):
    """Until the three current assignments are disjoint, non-empty and cover
    every partition.  Returns them."""
    for _ in deadline_loop(seconds, 0.1):
        for m in trio:
            assert m.proc.poll() is None, "member %s exited early:\n%s" % (m.name, m.stderr())
        cur = [m.assignment() for m in trio]
        union = set().union(*cur)
        if all(cur) and union == set(range(PARTS)) and sum(map(len, cur)) == PARTS:
            return cur
    raise AssertionError("no steady assignment in %d s: %s\n%s" % (
        seconds, [sorted(m.assignment()) for m in trio],
        "\n".join("%s: %s" % (m.name, m.events()[-5:]) for m in trio)))


def produce(server, values):
    p = Producer({"bootstrap.servers": server.bootstrap, "acks": "all", "linger.ms": 5})
    errors = []

    def dr(err, msg):
        if err:
            errors.append(str(err))
    for i, v in enumerate(values):
        p.produce(TOPIC, value=v.encode(), partition=i % PARTS, on_delivery=dr)
        p.poll(0)
    assert p.flush(60) == 0, "records still queued after 60 s"
    assert not errors, errors[:5]


def records(trio):
    """[(member name, partition, offset, value)] in each member's order."""
    return [(m.name, e["p"], e["o"], e["v"]) for m in trio for e in m.events() if e["ev"] == "rec"]


def wait_consumed(trio, values, seconds=90):
    want = set(values)
    for _ in deadline_loop(seconds, 0.1):
        got = {v for _, _, _, v in records(trio)}
        if want <= got:
            return
    missing = sorted(want - {v for _, _, _, v in records(trio)})
    raise AssertionError("%d of %d records never consumed (first: %s); assignments %s" % (
        len(missing), len(want), missing[:5], [sorted(m.assignment()) for m in trio]))


def check_exactly_once(trio, values, owners):
    recs = [r for r in records(trio) if r[3] in set(values)]
    seen = {}
    for name, p, o, v in recs:
        assert v not in seen, "%s consumed twice: by %s (p%d@%d) and by %s (p%d@%d)" % (
            v, seen[v][0], seen[v][1], seen[v][2], name, p, o)
        seen[v] = (name, p, o)
        assert owners[p] == name, "%s read partition %d, owned by %s" % (name, p, owners[p])
    assert len(seen) == len(values)


def committed(server):
    c = Consumer({"bootstrap.servers": server.bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(TOPIC, p) for p in range(PARTS)], timeout=30)
        ends = [c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)[1] for p in range(PARTS)]
    finally:
        c.close()
    return {tp.partition: tp.offset for tp in got}, ends


def commit_outcomes(m, start):
    """[(partition, offset, value, outcome, time)] for every record m read
    from its event start on, in order: outcome "ok" or "failed" once the
    record's commit returned, None while it has not (group_member.py commits
    each record synchronously before it reads the next)."""
    out = []
    for e in m.events()[start:]:
        if e["ev"] == "rec":
            out.append([e["p"], e["o"], e["v"], None, e["t"]])
        elif e["ev"] in ("committed", "commit-failed") and out and out[-1][3] is None \
                and (out[-1][0], out[-1][1]) == (e["p"], e["o"]):
            out[-1][3] = "ok" if e["ev"] == "committed" else "failed"
    return out


def owners_of(trio, cur):
    return {p: m.name for m, parts in zip(trio, cur) for p in parts}


def no_rebalance_after(trio, count_before):
    for m, n in zip(trio, count_before):
        later = [e for e in m.events()[n:] if e["ev"] in ("assign", "revoke")]
        assert not later, "member %s saw a rebalance in steady state: %s" % (m.name, later)


def test_group_commits_survive_restart(serve, tmp_path, members):
    server = serve(prepare=[["topics", "create", TOPIC, "--partitions", str(PARTS)]])
    trio = start_members(server, tmp_path, members, "a")
    cur = wait_steady(trio)
    marks = [len(m.events()) for m in trio]
    first = ["one-%d" % i for i in range(600)]
    produce(server, first)
    wait_consumed(trio, first)
    check_exactly_once(trio, first, owners_of(trio, cur))
    no_rebalance_after(trio, marks)
    for m in trio:
        m.stop()

    server.restart()
    offs, ends = committed(server)
    assert ends == [100] * PARTS, ends
    assert offs == {p: 100 for p in range(PARTS)}, "committed offsets after the restart: %s" % offs

    trio = start_members(server, tmp_path, members, "b")
    cur = wait_steady(trio)
    for m in trio:
        for e in m.events():
            if e["ev"] == "assign" and set(e["parts"]) == m.assignment():
                assert e["committed"] == {str(p): 100 for p in e["parts"]}, \
                    "%s was assigned %s with committed offsets %s" % (m.name, e["parts"], e["committed"])
    second = ["two-%d" % i for i in range(300)]
    produce(server, second)
    wait_consumed(trio, second)
    check_exactly_once(trio, second, owners_of(trio, cur))
    old = [r for r in records(trio) if r[3].startswith("one-")]
    assert not old, "records from before the restart consumed again: %s" % old[:5]
    for m in trio:
        m.stop()


def test_group_members_ride_through_restart(serve, tmp_path, members):
    server = serve(prepare=[["topics", "create", TOPIC, "--partitions", str(PARTS)]])
    trio = start_members(server, tmp_path, members, "c")
    cur = wait_steady(trio)
    marks = [len(m.events()) for m in trio]
    first = ["one-%d" % i for i in range(300)]
    produce(server, first)
    wait_consumed(trio, first)
    check_exactly_once(trio, first, owners_of(trio, cur))
    # Before the restart every one of those commits has returned and was
    # accepted, and the coordinator holds them: what the restart must keep
    # (without this a commit still in flight, or refused, made the check
    # below fail for a reason of the test's own).
    for _ in deadline_loop(60, 0.2):
        outs = [(m.name, r) for m, n in zip(trio, marks) for r in commit_outcomes(m, n)]
        if all(r[3] is not None for _, r in outs):
            break
    failed = [(name, r[:4]) for name, r in outs if r[3] != "ok"]
    assert not failed, "commits before the restart that failed or did not return: %s\n%s" % (
        failed[:5], [e for m in trio for e in m.events() if e["ev"] in ("commit-failed", "error")][:5])
    offs, _ = committed(server)
    assert offs == {p: 300 // PARTS for p in range(PARTS)}, "committed offsets before the restart: %s" % offs
    before = [len(m.events()) for m in trio]

    server.restart(same_port=True)
    second = ["two-%d" % i for i in range(300)]
    produce(server, second)
    wait_consumed(trio, second, seconds=150)
    after = [(m.name, e["p"], e["o"], e["v"]) for m, n in zip(trio, before) for e in m.events()[n:] if e["ev"] == "rec"]
    again = [r for r in after if r[3].startswith("one-")]
    assert not again, "records committed before the restart consumed again: %s\nassignments since: %s\n%s" % (
        again[:5], [(m.name, e) for m, n in zip(trio, before) for e in m.events()[n:] if e["ev"] == "assign"],
        server.log(4000))
    # commits refused during the rebalances (REBALANCE_IN_PROGRESS, ...) make
    # the group deliver those records again: wait until all is committed
    for _ in deadline_loop(90, 0.2):
        offs, ends = committed(server)
        if offs == {p: 100 for p in range(PARTS)}:
            break
    # a commit still waiting for the coordinator has neither failed nor
    # succeeded yet: wait for every outcome
    for _ in deadline_loop(60, 0.2):
        outs = [(m.name, r) for m, n in zip(trio, before) for r in commit_outcomes(m, n)]
        if all(r[3] is not None for _, r in outs):
            break
    pending = [(name, r[:3]) for name, r in outs if r[3] is None]
    assert not pending, "commits that did not return within 60 s: %s" % pending[:5]
    # a record read twice must have had all but one of its commits refused:
    # the member that lost the partition may still read it (its fetches run
    # until it learns of the rebalance), but its commit must be fenced
    reads = {}
    for name, (p, o, v, outcome, t) in outs:
        reads.setdefault(v, []).append((name, p, o, outcome, t))
    for v, rs in reads.items():
        ok = [r for r in rs if r[3] == "ok"]
        assert len(ok) <= 1, "%s consumed %d times, and more than one commit was accepted: %s" % (v, len(rs), rs)
    for m in trio:
        m.stop()
    offs, ends = committed(server)
    assert ends == [100] * PARTS, ends
    assert offs == {p: 100 for p in range(PARTS)}, "committed offsets at the end: %s" % offs
