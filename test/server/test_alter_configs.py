"""AlterConfigs and IncrementalAlterConfigs against `klog serve`.

  * the klog tool's remote mode: `klog topics alter --config/--delete-config`
    while the server holds the directory (AlterConfigs through librdkafka),
    what it changed is in topics.meta once the server has stopped;
  * confluent-kafka's AdminClient.alter_configs (AlterConfigs: the whole set
    of the topic's own keys), validate_only, and a bad value or unknown key
    answered INVALID_CONFIG with klog's message (python3-confluent-kafka
    1.7 has no incremental_alter_configs: that one goes over the wire);
  * kafka-python's KafkaAdminClient.alter_configs;
  * IncrementalAlterConfigs v0 as raw frames: SET and DELETE, APPEND
    refused with INVALID_CONFIG, ApiVersions advertising 33 v0-1 and 44 v0;
  * ACLs: a principal with DescribeConfigs but not AlterConfigs on the
    topic is refused (TOPIC_AUTHORIZATION_FAILED) until `klog acls add`
    allows it.
"""
import os
import signal
import struct
import subprocess

import pytest

import kwire
from conftest import KLOG
from kwire import deadline_loop

try:
    import confluent_kafka
    import confluent_kafka.admin
except ImportError:  # pragma: no cover
    confluent_kafka = None
try:
    import kafka
    import kafka.admin
except ImportError:  # pragma: no cover
    kafka = None

INVALID_CONFIG = 40
TOPIC_AUTHORIZATION_FAILED = 29
PREPARE = [["topics", "create", "orders", "--partitions", "1", "--config", "retention.ms=3600000"]]


def klog(*args, want=0, stdin=None):
    p = subprocess.run([KLOG] + list(args), input=stdin, capture_output=True, timeout=60)
    assert p.returncode == want, "klog %s: exit %d (want %d)\n%s" % (
        " ".join(args), p.returncode, want, p.stderr.decode(errors="replace"))
    return p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def remote_built():
    p = subprocess.run([KLOG, "--version"], capture_output=True, timeout=30)
    return b"not built" not in p.stdout


def configs_line(out):
    head = out.splitlines()[0]
    return head.split("\tConfigs: ", 1)[1] if "\tConfigs: " in head else ""


def test_cli_remote_alter(serve):
    if not remote_built():
        pytest.skip("the klog tool was built without remote mode (librdkafka)")
    server = serve(prepare=PREPARE)
    d = server.datadir
    out, _ = klog("-d", d, "topics", "alter", "orders", "--config", "retention.ms=7200000",
                  "--config", "cleanup.policy=compact")
    assert out == "Updated config for topic orders.\n"
    out, _ = klog("-d", d, "topics", "describe", "orders")
    assert sorted(configs_line(out).split(",")) == ["cleanup.policy=compact", "retention.ms=7200000"]
    out, _ = klog("-d", d, "topics", "alter", "orders", "--delete-config", "cleanup.policy")
    out, _ = klog("-d", d, "topics", "describe", "orders")
    assert configs_line(out) == "retention.ms=7200000"
    _, err = klog("-d", d, "topics", "alter", "orders", "--config", "retention.ms=soon", want=1)
    assert "retention.ms" in err and "soon" in err, err
    _, err = klog("-d", d, "topics", "alter", "orders", "--config", "no.such.key=1", want=1)
    assert "no.such.key" in err, err
    # nothing the refused ones asked for was applied, and the change is on disk
    server.stop()
    assert configs_line(server.cli("topics", "describe", "orders")) == "retention.ms=7200000"


def cf_alter(admin, resource, validate_only=False):
    fs = admin.alter_configs([resource], request_timeout=30, validate_only=validate_only)
    return list(fs.values())[0].result(30)


def cf_own(admin, topic):
    r = confluent_kafka.admin.ConfigResource(confluent_kafka.admin.RESOURCE_TOPIC, topic)
    entries = list(admin.describe_configs([r], request_timeout=30).values())[0].result(30)
    return {k: e.value for k, e in entries.items() if e.source == confluent_kafka.admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value}


@pytest.mark.skipif(confluent_kafka is None, reason="python3-confluent-kafka is not installed")
def test_confluent_alter_configs(serve):
    server = serve(prepare=PREPARE)
    a = confluent_kafka.admin.AdminClient({"bootstrap.servers": server.bootstrap})
    CR = confluent_kafka.admin.ConfigResource
    assert cf_own(a, "orders") == {"retention.ms": "3600000"}
    # AlterConfigs sets the whole set: retention.ms goes back to the broker's
    cf_alter(a, CR(confluent_kafka.admin.RESOURCE_TOPIC, "orders", set_config={"segment.ms": "600000"}))
    assert cf_own(a, "orders") == {"segment.ms": "600000"}
    # validate_only changes nothing
    cf_alter(a, CR(confluent_kafka.admin.RESOURCE_TOPIC, "orders", set_config={"segment.ms": "1000"}),
             validate_only=True)
    assert cf_own(a, "orders") == {"segment.ms": "600000"}
    # a bad value, an unknown key, a broker key: INVALID_CONFIG with klog's message
    for cfg, words in (({"retention.ms": "soon"}, "retention.ms"), ({"no.such.key": "1"}, "no.such.key"),
                       ({"num.partitions": "3"}, "num.partitions")):
        with pytest.raises(confluent_kafka.KafkaException) as ei:
            cf_alter(a, CR(confluent_kafka.admin.RESOURCE_TOPIC, "orders", set_config=cfg))
        e = ei.value.args[0]
        assert e.code() == INVALID_CONFIG, e
        assert words in e.str(), e
    assert cf_own(a, "orders") == {"segment.ms": "600000"}
    # an unknown topic
    with pytest.raises(confluent_kafka.KafkaException) as ei:
        cf_alter(a, CR(confluent_kafka.admin.RESOURCE_TOPIC, "nosuch", set_config={"segment.ms": "1000"}))
    assert ei.value.args[0].code() == confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART


@pytest.mark.skipif(kafka is None, reason="python3-kafka is not installed")
def test_kafka_python_alter_configs(serve):
    server = serve(prepare=PREPARE)
    a = kafka.admin.KafkaAdminClient(bootstrap_servers=server.bootstrap, request_timeout_ms=30000)
    try:
        R = kafka.admin.ConfigResource
        resp = a.alter_configs([R(kafka.admin.ConfigResourceType.TOPIC, "orders",
                                  configs={"retention.ms": "60000", "segment.bytes": "1048576"})])
        assert [(r[0], r[3]) for r in resp.resources] == [(0, "orders")]
        resp = a.alter_configs([R(kafka.admin.ConfigResourceType.TOPIC, "orders",
                                  configs={"retention.bytes": "lots"})])
        assert resp.resources[0][0] == INVALID_CONFIG and "retention.bytes" in resp.resources[0][1]
    finally:
        a.close()
    server.stop()
    assert sorted(configs_line(server.cli("topics", "describe", "orders")).split(",")) == [
        "retention.ms=60000", "segment.bytes=1048576"]


def incremental_v0(resources, validate_only=False):
    """IncrementalAlterConfigs v0 body: [(type, name, [(key, op, value)])]."""
    b = struct.pack(">i", len(resources))
    for rtype, name, cfgs in resources:
        b += struct.pack(">b", rtype) + kwire.kstr(name) + struct.pack(">i", len(cfgs))
        for k, op, v in cfgs:
            b += kwire.kstr(k) + struct.pack(">b", op) + (kwire.kstr(v) if v is not None else b"\xff\xff")
    return b + struct.pack(">b", 1 if validate_only else 0)


def parse_alter_resp(body):
    r = kwire.Reader(body)
    r.i32()   # throttle
    out = []
    for _ in range(r.i32()):
        err, msg, rtype, name = r.i16(), r.string(), r.i8(), r.string()
        out.append((err, msg, rtype, name))
    return out


def test_incremental_alter_configs_wire(serve):
    server = serve(prepare=PREPARE)
    s = kwire.connect(server.bootstrap)
    try:
        keys = kwire.api_versions(s)
        assert keys[33] == (0, 1) and keys[44] == (0, 0), keys
        corr = 10

        def call(resources, validate_only=False):
            nonlocal corr
            corr += 1
            s.sendall(kwire.request(44, 0, corr, incremental_v0(resources, validate_only)))
            got, body = kwire.read_response(s)
            assert got == corr
            return parse_alter_resp(body)

        # SET one key, DELETE another: the rest of the topic's keys stay
        assert call([(2, "orders", [("segment.ms", 0, "600000")])]) == [(0, None, 2, "orders")]
        assert call([(2, "orders", [("retention.ms", 1, None)])]) == [(0, None, 2, "orders")]
        # APPEND and an unknown operation are refused, with a message
        (err, msg, _, _), = call([(2, "orders", [("cleanup.policy", 2, "compact")])])
        assert err == INVALID_CONFIG and "APPEND" in msg
        (err, msg, _, _), = call([(2, "orders", [("segment.ms", 9, "1")])])
        assert err == 42 and "operation" in msg     # INVALID_REQUEST
        # a key named twice, a broker resource
        (err, _, _, _), = call([(2, "orders", [("segment.ms", 0, "1"), ("segment.ms", 0, "2")])])
        assert err == 42
        (err, msg, _, _), = call([(4, "0", [("log.retention.ms", 0, "1")])])
        assert err == 42 and "restart" in msg
        # validate_only applies nothing
        assert call([(2, "orders", [("segment.ms", 0, "1000")])], validate_only=True) == [(0, None, 2, "orders")]
    finally:
        s.close()
    server.stop()
    assert configs_line(server.cli("topics", "describe", "orders")) == "segment.ms=600000"


@pytest.mark.skipif(confluent_kafka is None, reason="python3-confluent-kafka is not installed")
def test_alter_configs_needs_the_acl(serve):
    server = serve(extra=["sasl.enabled.mechanisms=PLAIN", "super.users=User:admin"], prepare=PREPARE)
    for name in ("admin", "alice"):
        p = subprocess.run([KLOG, "-d", server.datadir, "users", "add", name], input=b"pw-" + name.encode() + b"\n",
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
    klog("-d", server.datadir, "acls", "add", "--allow-principal", "User:alice", "--operation", "Describe",
         "--operation", "DescribeConfigs", "--topic", "orders")
    server.proc.send_signal(signal.SIGHUP)
    conf = {"bootstrap.servers": server.bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": "alice", "sasl.password": "pw-alice"}
    CR = confluent_kafka.admin.ConfigResource
    res = CR(confluent_kafka.admin.RESOURCE_TOPIC, "orders", set_config={"segment.ms": "600000"})
    err = None
    for _ in deadline_loop(20, 0.2):   # until the users are read
        try:
            cf_alter(confluent_kafka.admin.AdminClient(conf), res)
            err = "altered without AlterConfigs"
            break
        except confluent_kafka.KafkaException as e:
            err = e.args[0]
            if err.code() == TOPIC_AUTHORIZATION_FAILED:
                break
    assert getattr(err, "code", lambda: None)() == TOPIC_AUTHORIZATION_FAILED, err
    klog("-d", server.datadir, "acls", "add", "--allow-principal", "User:alice", "--operation", "AlterConfigs",
         "--topic", "orders")
    server.proc.send_signal(signal.SIGHUP)
    done = False
    for _ in deadline_loop(20, 0.2):
        try:
            cf_alter(confluent_kafka.admin.AdminClient(conf), res)
            done = True
            break
        except confluent_kafka.KafkaException as e:
            assert e.args[0].code() == TOPIC_AUTHORIZATION_FAILED, e
    assert done
    server.stop()
    assert configs_line(server.cli("topics", "describe", "orders")) == "segment.ms=600000"
