#!/usr/bin/python3
"""lib/kafka against kafka-python's own protocol classes (python3-kafka 2.0.2).

Compatibility is what real clients do, not what our encoder agrees with:

* requests encoded by kafka-python (``Request[v](...).encode()`` behind a
  ``RequestHeader``) are decoded by klog (``kk_tool decode``) and every field
  is compared;
* responses encoded by klog (``kk_tool samples resp``) are decoded by
  kafka-python's ``Response[v].decode`` and compared, all bytes consumed;
* and the client side: requests klog encodes decode in kafka-python, and
  responses kafka-python encodes decode in klog.

Comparison is positional: klog's canonical JSON lists the fields on the
wire in wire order, kafka-python's Schema lists them in the same order.
For every API and version that both implement (kafka-python has no
InitProducerId or DeleteRecords and stops at JoinGroup v2, SyncGroup v1, ...;
those are covered by the Criterion round trips and golden frames).

Run by ``meson test`` (suite kafka) with KK_TOOL set; exits 77 (skipped)
without pytest or python3-kafka.
"""
import io
import json
import os
import random
import subprocess
import sys

try:
    import pytest
except ImportError:  # pragma: no cover
    print("python3-pytest is not installed: skipped", file=sys.stderr)
    sys.exit(77)
try:
    from kafka.protocol import admin, commit, fetch, group, metadata, offset, produce
    from kafka.protocol.api import RequestHeader
    from kafka.protocol import types as kt
except ImportError:  # pragma: no cover
    if __name__ == "__main__":
        print("python3-kafka is not installed: skipped", file=sys.stderr)
        sys.exit(77)
    raise

TOOL = os.environ.get("KK_TOOL", "")

# API key -> (kafka-python request classes, response classes), by version.
KP = {
    0: (produce.ProduceRequest, produce.ProduceResponse),
    1: (fetch.FetchRequest, fetch.FetchResponse),
    2: (offset.OffsetRequest, offset.OffsetResponse),
    3: (metadata.MetadataRequest, metadata.MetadataResponse),
    8: (commit.OffsetCommitRequest, commit.OffsetCommitResponse),
    9: (commit.OffsetFetchRequest, commit.OffsetFetchResponse),
    10: (commit.GroupCoordinatorRequest, commit.GroupCoordinatorResponse),
    11: (group.JoinGroupRequest, group.JoinGroupResponse),
    12: (group.HeartbeatRequest, group.HeartbeatResponse),
    13: (group.LeaveGroupRequest, group.LeaveGroupResponse),
    14: (group.SyncGroupRequest, group.SyncGroupResponse),
    15: (admin.DescribeGroupsRequest, admin.DescribeGroupsResponse),
    16: (admin.ListGroupsRequest, admin.ListGroupsResponse),
    17: (admin.SaslHandShakeRequest, admin.SaslHandShakeResponse),
    18: (admin.ApiVersionRequest, admin.ApiVersionResponse),
    19: (admin.CreateTopicsRequest, admin.CreateTopicsResponse),
    20: (admin.DeleteTopicsRequest, admin.DeleteTopicsResponse),
    29: (admin.DescribeAclsRequest, admin.DescribeAclsResponse),
    30: (admin.CreateAclsRequest, admin.CreateAclsResponse),
    31: (admin.DeleteAclsRequest, admin.DeleteAclsResponse),
    32: (admin.DescribeConfigsRequest, admin.DescribeConfigsResponse),
    33: (admin.AlterConfigsRequest, admin.AlterConfigsResponse),
    36: (admin.SaslAuthenticateRequest, admin.SaslAuthenticateResponse),
    37: (admin.CreatePartitionsRequest, admin.CreatePartitionsResponse),
    42: (admin.DeleteGroupsRequest, admin.DeleteGroupsResponse),
}


# ---- kafka-python 2.0.2's own schema bugs ------------------------------------------
# Some of its classes disagree with Kafka's message specs (apache/kafka
# clients/src/main/resources/common/message/*.json).  None is used by
# kafka-python's clients (its consumer sends ListOffsets v1, FindCoordinator
# v0, Fetch v4), so they do not matter on the wire, but they would make the
# oracle wrong: they are corrected here, and test_kafka_python_bugs_still_there
# fails when a kafka-python update fixes one (then drop its correction).

def _fix_string_class(t):
    """FetchRequest v7-v11: forgotten_topics_data's topic is the String
    class, not String('utf-8'), so kafka-python cannot encode or decode an
    element (FetchRequest.json: Topic is a string)."""
    if t is kt.String:
        return kt.String("utf-8")
    if isinstance(t, kt.Schema):
        return kt.Schema(*[(n, _fix_string_class(f)) for n, f in zip(t.names, t.fields)])
    if isinstance(t, kt.Array):
        return kt.Array(_fix_string_class(t.array_of))
    return t


def _retype(schema, path, new):
    """A copy of schema with the field at path (names) given type new."""
    name = path[0]
    fields = []
    for n, f in zip(schema.names, schema.fields):
        if n == name:
            if len(path) == 1:
                f = new
            elif isinstance(f, kt.Array):
                f = kt.Array(_retype(f.array_of, path[1:], new))
            else:
                f = _retype(f, path[1:], new)
        fields.append((n, f))
    return kt.Schema(*fields)


KP_BUGS = []  # (class, description)


def _correct_kafka_python():
    for v in range(7, 12):
        cls = fetch.FetchRequest[v]
        fixed = _fix_string_class(cls.SCHEMA)
        if repr(fixed.fields) != repr(cls.SCHEMA.fields):
            KP_BUGS.append((cls, "forgotten_topics_data.topic is the String class"))
            cls.SCHEMA = fixed
    for v in (4, 5):
        # ListOffsetsRequest.json: CurrentLeaderEpoch is an int32 (v4+).
        cls = offset.OffsetRequest[v]
        part = cls.SCHEMA.fields[2].array_of.fields[1].array_of
        if part.fields[1] is kt.Int64:
            KP_BUGS.append((cls, "current_leader_epoch is an Int64"))
            cls.SCHEMA = _retype(cls.SCHEMA, ["topics", "partitions", "current_leader_epoch"], kt.Int32)
    # DescribeGroupsResponse.json: AuthorizedOperations ends each group from
    # v3.  kafka-python's tuple puts it outside the groups array, where
    # Schema's zip drops it.  Harmless on the wire: its admin client asks
    # for one group per request and leaves the last 4 bytes unread.
    cls = admin.DescribeGroupsResponse[3]
    group_t = cls.SCHEMA.fields[1].array_of
    if "authorized_operations" not in group_t.names:
        KP_BUGS.append((cls, "no authorized_operations"))
        cls.SCHEMA = kt.Schema(
            ("throttle_time_ms", kt.Int32),
            ("groups", kt.Array(*zip(group_t.names, group_t.fields), ("authorized_operations", kt.Int32))))
    # DescribeConfigsResponse.json: v1 replaced IsDefault (bool) with
    # ConfigSource (int8); kafka-python's v1 still reads a bool there (the
    # same size on the wire: it sees True for any source but 0).
    cls = admin.DescribeConfigsResponse[1]
    entry = cls.SCHEMA.fields[1].array_of.fields[4].array_of
    if entry.names[3] == "is_default":
        KP_BUGS.append((cls, "is_default where config_source belongs"))
        cls.SCHEMA = _retype(cls.SCHEMA, ["resources", "config_entries", "is_default"], kt.Int8)
    # ListGroupsRequest_v2 says API_VERSION = 1 (v1 and v2 are the same on
    # the wire, so a broker answers in v1's format; also the same).
    cls = admin.ListGroupsRequest[2]
    if cls.API_VERSION != 2:
        KP_BUGS.append((cls, "API_VERSION is %d" % cls.API_VERSION))
        cls.API_VERSION = 2
    # AlterConfigsResponse lists AlterConfigsRequest_v1 as version 1's
    # response (a typo: kafka-python's admin client reads AlterConfigs v0).
    if admin.AlterConfigsResponse[1] is admin.AlterConfigsRequest_v1:
        KP_BUGS.append((admin.AlterConfigsResponse_v1, "AlterConfigsResponse[1] is AlterConfigsRequest_v1"))
        admin.AlterConfigsResponse[1] = admin.AlterConfigsResponse_v1
    # FindCoordinatorResponse.json: ThrottleTimeMs comes first from v1.
    cls = commit.GroupCoordinatorResponse[1]
    if cls.SCHEMA.names[0] != "throttle_time_ms":
        KP_BUGS.append((cls, "no throttle_time_ms"))
        cls.SCHEMA = kt.Schema(("throttle_time_ms", kt.Int32),
                               *zip(cls.SCHEMA.names, cls.SCHEMA.fields))


if __name__ != "__main__":  # once, in the module pytest imports
    _correct_kafka_python()


def tool(*args, stdin=None):
    assert TOOL, "KK_TOOL is not set"
    p = subprocess.run([TOOL, *args], input=stdin, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in p.stdout.splitlines()]


def table():
    return {t["key"]: t for t in tool("table")}


def both_versions():
    """(key, version) pairs klog implements and kafka-python has classes for."""
    out = []
    for key, t in table().items():
        if key not in KP:
            continue
        for v in range(t["min"], t["max"] + 1):
            if v < len(KP[key][0]) and v < len(KP[key][1]):
                out.append((key, v))
    return out


# ---- canonical forms --------------------------------------------------------------

def canon_py(t, value):
    """kafka-python value of type t -> positional canonical form.  A struct
    of one field is that field's value (kafka-python has Array(String) where
    Kafka's spec, and klog, have an array of {name}); a nested Schema (not
    in an Array) is spliced into its parent, as it has no wire form."""
    if isinstance(t, kt.Schema):
        out = []
        for i, f in enumerate(t.fields):
            c = canon_py(f, value[i])
            if isinstance(f, kt.Schema):  # a group of fields, not on the wire itself
                out.extend(c if isinstance(c, list) and len(f.fields) > 1 else [c])
            else:
                out.append(c)
        return out[0] if len(out) == 1 else out
    if isinstance(t, kt.Array):
        return None if value is None else [canon_py(t.array_of, x) for x in value]
    if t is kt.Bytes:
        return None if value is None else {"len": len(value), "hex": value.hex()}
    if t is kt.Boolean:
        return bool(value)
    return value  # ints, strings, None


def canon_klog(value):
    """klog's JSON (objects in wire order) -> positional canonical form."""
    if isinstance(value, dict):
        if set(value) == {"len", "hex"}:
            return value
        if len(value) == 1:
            return canon_klog(next(iter(value.values())))
        return [canon_klog(v) for v in value.values()]
    if isinstance(value, list):
        return [canon_klog(v) for v in value]
    return value


def struct_values(cls, obj):
    return [getattr(obj, n) for n in cls.SCHEMA.names]


# ---- random kafka-python values ---------------------------------------------------

INT_RANGES = {kt.Int8: 8, kt.Int16: 16, kt.Int32: 32, kt.Int64: 64}
STRINGS = ["", "t", "topic-1", "g\u00e9", "a\"b\\c", "x" * 40]


def gen(t, rnd):
    if isinstance(t, kt.Schema):
        return tuple(gen(f, rnd) for f in t.fields)
    if isinstance(t, kt.Array):
        return [gen(t.array_of, rnd) for _ in range(rnd.randrange(4))]
    if isinstance(t, kt.String):
        return rnd.choice(STRINGS)
    if t is kt.Bytes:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(12)))
    if t is kt.Boolean:
        return rnd.random() < 0.5
    bits = INT_RANGES[t]
    if rnd.random() < 0.5:
        return rnd.randrange(-2, min(1000, 1 << (bits - 1)))
    return rnd.randrange(-(1 << (bits - 1)), 1 << (bits - 1))


def frame_of(req, corr, client_id):
    """Header and body as kafka-python's client sends them (its Structs hold
    their encode method weakly: keep the objects alive across the call)."""
    hdr = RequestHeader(req, correlation_id=corr, client_id=client_id)
    return hdr.encode() + req.encode()


def kp_request(key, v, rnd):
    cls = KP[key][0][v]
    return cls(*gen(cls.SCHEMA, rnd))


# ---- tests ------------------------------------------------------------------------

def test_kafka_python_bugs_still_there():
    """The corrections above apply to the installed kafka-python."""
    assert sorted((c.__name__, d) for c, d in KP_BUGS) == sorted(
        [("FetchRequest_v%d" % v, "forgotten_topics_data.topic is the String class") for v in range(7, 12)]
        + [("OffsetRequest_v4", "current_leader_epoch is an Int64"),
           ("OffsetRequest_v5", "current_leader_epoch is an Int64"),
           ("DescribeGroupsResponse_v3", "no authorized_operations"),
           ("DescribeConfigsResponse_v1", "is_default where config_source belongs"),
           ("ListGroupsRequest_v2", "API_VERSION is 1"),
           ("AlterConfigsResponse_v1", "AlterConfigsResponse[1] is AlterConfigsRequest_v1"),
           ("GroupCoordinatorResponse_v1", "no throttle_time_ms")])


def test_coverage_is_broad():
    pairs = both_versions()
    keys = {k for k, _ in pairs}
    assert len(pairs) >= 60, pairs
    assert keys == set(KP), set(KP) - keys


@pytest.mark.parametrize("seed", range(3))
def test_kafka_python_requests_decode_in_klog(seed):
    rnd = random.Random(seed)
    lines, expect = [], []
    for key, v in both_versions():
        for i in range(4):
            req = kp_request(key, v, rnd)
            corr = rnd.randrange(1 << 31)
            frame = frame_of(req, corr, "kafka-python")
            lines.append("req " + frame.hex())
            expect.append((key, v, corr, req))
    out = tool("decode", stdin="\n".join(lines) + "\n")
    assert len(out) == len(expect)
    for got, (key, v, corr, req) in zip(out, expect):
        where = "%s v%d" % (type(req).__name__, v)
        assert "error" not in got, (where, got, req)
        assert (got["api_key"], got["api_version"], got["correlation_id"]) == (key, v, corr), where
        assert got["client_id"] == "kafka-python"
        want = canon_py(req.SCHEMA, struct_values(type(req), req))
        assert canon_klog(got["body"]) == want, where


def test_klog_responses_decode_in_kafka_python():
    pairs = set(both_versions())
    n = 0
    for s in tool("samples", "resp", "6"):
        key, v = s["api_key"], s["api_version"]
        if (key, v) not in pairs:
            continue
        cls = KP[key][1][v]
        frame = bytes.fromhex(s["hex"])
        assert int.from_bytes(frame[:4], "big") == s["seed"]  # response header v0
        body = io.BytesIO(frame[4:])
        obj = cls.decode(body)
        where = "%s v%d seed %d" % (cls.__name__, v, s["seed"])
        assert body.tell() == len(frame) - 4, where + ": bytes left over"
        assert canon_py(cls.SCHEMA, struct_values(cls, obj)) == canon_klog(s["body"]), where
        n += 1
    assert n >= 60 * 6


def test_klog_requests_decode_in_kafka_python():
    """The client side: what klog's request encoders send."""
    pairs = set(both_versions())
    n = 0
    for s in tool("samples", "req", "4"):
        key, v = s["api_key"], s["api_version"]
        if (key, v) not in pairs:
            continue
        cls = KP[key][0][v]
        data = io.BytesIO(bytes.fromhex(s["hex"]))
        hdr = RequestHeader.SCHEMA.decode(data)
        assert hdr == (key, v, s["seed"], "kks")
        obj = cls.decode(data)
        where = "%s v%d seed %d" % (cls.__name__, v, s["seed"])
        assert data.tell() == len(data.getvalue()), where + ": bytes left over"
        assert canon_py(cls.SCHEMA, struct_values(cls, obj)) == canon_klog(s["body"]), where
        n += 1
    assert n >= 60 * 4


def test_kafka_python_responses_decode_in_klog():
    """The client side: responses as kafka-python (standing in for a broker) encodes them."""
    rnd = random.Random(7)
    lines, expect = [], []
    for key, v in both_versions():
        for i in range(4):
            cls = KP[key][1][v]
            resp = cls(*gen(cls.SCHEMA, rnd))
            corr = rnd.randrange(1 << 31)
            lines.append("resp %d %d %s" % (key, v, (corr.to_bytes(4, "big") + resp.encode()).hex()))
            expect.append((cls, v, corr, resp))
    out = tool("decode", stdin="\n".join(lines) + "\n")
    for got, (cls, v, corr, resp) in zip(out, expect):
        where = "%s v%d" % (cls.__name__, v)
        assert "error" not in got, (where, got)
        assert got["correlation_id"] == corr
        assert canon_klog(got["body"]) == canon_py(cls.SCHEMA, struct_values(cls, resp)), where


def test_what_kafka_python_clients_send():
    """Requests as kafka-python's client code builds them, nulls included."""
    frames = [
        (admin.ApiVersionRequest[0](), None),
        (metadata.MetadataRequest[0]([]), lambda b: b["topics"] == []),
        (metadata.MetadataRequest[1](None), lambda b: b["topics"] is None),
        (metadata.MetadataRequest[4](None, True), lambda b: b["allow_auto_topic_creation"] is True),
        (produce.ProduceRequest[7](None, 1, 30000, [("t", [(0, b"\x00" * 61)])]),
         lambda b: b["transactional_id"] is None and b["topics"][0]["partitions"][0]["records"]["len"] == 61),
        (commit.OffsetFetchRequest[2]("g", None), lambda b: b["topics"] is None),
        (fetch.FetchRequest[4](-1, 500, 1, 52428800, 0, [("t", [(0, 5, 1048576)])]),
         lambda b: b["topics"][0]["partitions"][0]["fetch_offset"] == 5),
        (group.JoinGroupRequest[2]("g", 10000, 300000, "", "consumer", [("range", b"\x00\x00")]),
         lambda b: b["member_id"] == "" and b["protocols"][0]["name"] == "range"),
        (commit.GroupCoordinatorRequest[0]("g"), lambda b: b["key"] == "g"),
    ]
    lines = []
    for i, (req, _) in enumerate(frames):
        lines.append("req " + frame_of(req, i, "kafka-python").hex())
    out = tool("decode", stdin="\n".join(lines) + "\n")
    for got, (req, check) in zip(out, frames):
        assert "error" not in got, (req, got)
        assert canon_klog(got["body"]) == canon_py(req.SCHEMA, struct_values(type(req), req))
        if check:
            assert check(got["body"]), (req, got)


def test_truncated_kafka_python_requests_fail_cleanly():
    rnd = random.Random(3)
    lines = []
    for key, v in both_versions():
        req = kp_request(key, v, rnd)
        frame = frame_of(req, 1, "kp")
        for cut in range(0, len(frame), max(1, len(frame) // 16)):
            lines.append("req " + frame[:cut].hex())
    out = tool("decode", stdin="\n".join(lines) + "\n")
    assert len(out) == len(lines)
    for got in out:
        assert got.get("error") == "KLOG_ECORRUPT", got
        assert got["reason"] in ("truncated", "array count larger than the frame"), got


if __name__ == "__main__":
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", __file__] + sys.argv[1:]))
