"""Consumer groups: sharing partitions, commits that survive a reopen, and
the group admin calls."""

import time

import pytest

import klog
from conftest import drain, produce


def _until_split(a, b, timeout=10.0):
    """Poll both members (one thread) until both hold partitions; returns
    the records each read meanwhile."""
    got = {id(a): [], id(b): []}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in (a, b):
            for recs in c.poll(timeout_ms=50).values():
                got[id(c)].extend(recs)
        if a.assignment() and b.assignment():
            return got[id(a)], got[id(b)]
    raise AssertionError("the group never gave both members partitions")


def test_two_members_split_partitions(inst):
    inst.create_topic("g", partitions=4)
    a = klog.Consumer("g", instance=inst, auto_offset_reset="earliest", group_id="grp")
    b = klog.Consumer("g", instance=inst, auto_offset_reset="earliest", group_id="grp")
    try:
        _until_split(a, b)
        pa, pb = a.assignment(), b.assignment()
        assert pa and pb and not (pa & pb)
        assert pa | pb == {klog.TopicPartition("g", p) for p in range(4)}
        assert a.member_id and b.member_id and a.member_id != b.member_id
        produce(inst, "g", 200)
        ra, rb = drain(a, 1, timeout=2), []
        deadline = time.monotonic() + 10
        while len(ra) + len(rb) < 200 and time.monotonic() < deadline:
            for recs in a.poll(timeout_ms=50).values():
                ra.extend(recs)
            for recs in b.poll(timeout_ms=50).values():
                rb.extend(recs)
        assert len(ra) + len(rb) == 200
        assert {(r.topic, r.partition) for r in ra} <= set(pa)
        assert {(r.topic, r.partition) for r in rb} <= set(pb)
        desc = inst.describe_group("grp")
        assert desc["group"] == "grp" and desc["state"] == "Stable"
        assert {m["member_id"] for m in desc["members"]} == {a.member_id, b.member_id}
        # the struct (klog_group_info_get) and the JSON say the same, field for field
        assert desc == inst._describe_group_json("grp")
        assert {(t["topic"], t["partition"]) for m in desc["members"] for t in m["assignment"]} == pa | pb
        assert "grp" in inst.list_groups()
    finally:
        a.close()
        b.close()
    # both left: the group is empty and can be administered
    assert inst.describe_group("grp")["members"] == []


def test_rebalance_listener(inst):
    inst.create_topic("rl", partitions=2)
    events = []

    class L(klog.ConsumerRebalanceListener):
        def on_partitions_assigned(self, assigned):
            events.append(("assigned", sorted(assigned)))

        def on_partitions_revoked(self, revoked):
            events.append(("revoked", sorted(revoked)))

    c = klog.Consumer(instance=inst, auto_offset_reset="earliest", group_id="gl")
    c.subscribe(["rl"], listener=L())
    c.poll(timeout_ms=500)
    c.close()
    tps = [klog.TopicPartition("rl", 0), klog.TopicPartition("rl", 1)]
    assert events[0] == ("assigned", tps)
    assert events[-1] == ("revoked", tps)


def test_commit_and_resume_after_reopen(data_dir):
    with klog.open(data_dir) as k:
        k.create_topic("r", partitions=2)
        produce(k, "r", 100)
        with klog.Consumer("r", instance=k, auto_offset_reset="earliest", group_id="resume", enable_auto_commit=False) as c:
            first = []
            while len(first) < 30:
                for recs in c.poll(timeout_ms=1000, max_records=30 - len(first)).values():
                    first.extend(recs)
            c.commit()
            committed = {tp: c.committed(tp) for tp in c.assignment()}
            # read more without committing: re-read after the reopen
            drain(c, 10, timeout=1)
        assert sum(committed.values()) == 30
    with klog.open(data_dir) as k:   # a new instance: offsets came back from disk
        for tp, off in committed.items():
            assert k.committed("resume", tp.topic, tp.partition) == off
        with klog.Consumer("r", instance=k, auto_offset_reset="earliest", group_id="resume") as c:
            rest = drain(c, 70)
    assert len(rest) == 70
    seen = {(r.partition, r.offset) for r in first} | {(r.partition, r.offset) for r in rest}
    assert len(seen) == 100


def test_explicit_commit_offsets_and_metadata(inst):
    inst.create_topic("e", partitions=1)
    produce(inst, "e", 10)
    tp = klog.TopicPartition("e", 0)
    with klog.Consumer("e", instance=inst, auto_offset_reset="earliest", group_id="ge", enable_auto_commit=False) as c:
        drain(c, 10)
        c.commit({tp: klog.OffsetAndMetadata(4, "half")})
        assert c.committed(tp) == 4
        assert c.committed(tp, metadata=True) == klog.OffsetAndMetadata(4, "half")
        c.commit({tp: 6})
        assert c.committed(tp) == 6
    assert inst.committed("ge", "e", 0) == 6


def test_group_admin(inst):
    inst.create_topic("ad", partitions=2)
    produce(inst, "ad", 40)
    with klog.Consumer("ad", instance=inst, auto_offset_reset="earliest", group_id="adm") as c:
        drain(c, 40)
        with pytest.raises(klog.IllegalStateError):   # members active
            inst.reset_offsets("adm", "ad", to="earliest")
    assert inst.committed("adm", "ad", 0) is not None
    assert inst.reset_offsets("adm", "ad", to="earliest") == 2
    assert [inst.committed("adm", "ad", p) for p in (0, 1)] == [0, 0]
    assert inst.reset_offsets("adm", "ad", partition=1, offset=3) == 1
    assert inst.committed("adm", "ad", 1) == 3
    assert inst.reset_offsets("adm", "ad", partition=1, shift=2) == 1
    assert inst.committed("adm", "ad", 1) == 5
    assert inst.reset_offsets("adm", "ad", to="latest") == 2
    ends = inst.offsets("ad")
    assert [inst.committed("adm", "ad", p) for p in (0, 1)] == [ends[0][1], ends[1][1]]
    assert inst.reset_offsets("adm", "ad", partition=0, timestamp=0) == 1
    assert inst.committed("adm", "ad", 0) == 0
    with pytest.raises(TypeError):
        inst.reset_offsets("adm", "ad", to="earliest", offset=1)
    desc = inst.describe_group("adm")
    offs = {o["partition"]: o["committed"] for o in desc["offsets"]}
    assert offs == {0: 0, 1: ends[1][1]}
    assert {o["partition"]: (o["end"], o["lag"]) for o in desc["offsets"]} == {
        0: (ends[0][1], ends[0][1]), 1: (ends[1][1], 0)}
    assert desc == inst._describe_group_json("adm")
    # the ctypes structures have the library's layout
    import ctypes
    from klog._lib import GroupInfo, GroupOffset, lib
    info = ctypes.POINTER(GroupInfo)()
    assert lib.klog_group_info_get(inst._handle(), b"adm", ctypes.byref(info)) == 0
    try:
        assert info.contents.struct_size == ctypes.sizeof(GroupInfo)
        assert info.contents.offsets[0].contents.struct_size == ctypes.sizeof(GroupOffset)
    finally:
        lib.klog_group_info_free(info)
    inst.delete_group("adm")
    assert "adm" not in inst.list_groups()
    with pytest.raises(klog.UnknownGroupError):
        inst.describe_group("adm")


def test_manual_assign_with_group_starts_at_committed(inst):
    inst.create_topic("ma", partitions=1)
    produce(inst, "ma", 10)
    tp = klog.TopicPartition("ma", 0)
    with klog.Consumer(instance=inst, auto_offset_reset="earliest", group_id="gma") as c:
        assert c.subscription() is None
        c.assign([tp])
        assert c.position(tp) == 0
        c.commit({tp: 7})
    with klog.Consumer(instance=inst, auto_offset_reset="earliest", group_id="gma") as c:
        c.assign([tp])
        assert [r.offset for r in drain(c, 3)] == [7, 8, 9]
    with klog.Consumer("ma", instance=inst, auto_offset_reset="earliest", group_id="gsub") as c:
        assert c.subscription() == {"ma"}
        c.unsubscribe()
        assert c.subscription() is None and c.assignment() == set()
