"""Replication between two `klog serve` nodes over tls:// with mutual TLS
(issue 15: peers use the same transport), and over SASL PLAIN on top.

    klog -d DIR serve --listen tls://127.0.0.1:P1 -X node.id=1 \
         -X replication.peers=1@tls://127.0.0.1:P1,2@tls://127.0.0.1:P2 \
         -X ssl.certificate.location=server.pem -X ssl.key.location=server.key \
         -X ssl.ca.location=ca.pem -X ssl.client.auth=required \
         -X super.users=User:CN=localhost,O=klog

Each node's own certificate is the client certificate it shows its peers
(the server verifies it against its ssl.ca.location); the peer principal
needs ClusterAction, here through super.users.  Records produced with
acks=all (over TLS, a client certificate) reach the follower; a follower
whose certificate another CA signed is refused by the leader's handshake:
it never joins the in-sync replicas, acks=all with min.insync.replicas=2
fails, and the leader logs the refused handshake.  With
sasl.enabled.mechanisms=PLAIN on both servers, a node that authenticates
with replication.sasl.* replicates; one with a wrong password does not.

The peer URLs have to be known before the servers start: each node's
port is one the kernel chose for a socket bound to port 0 and closed just
before (a start that finds it taken is retried on new ports).
Certificates from test/tls/mkcerts.sh; servers stopped by PID.
"""
import os
import signal
import subprocess

import pytest

from kwire import deadline_loop, free_ports

PEER = "User:CN=localhost,O=klog"   # server.pem's subject, as the server names it

try:
    import confluent_kafka
    import confluent_kafka.admin
except ImportError:  # pragma: no cover
    confluent_kafka = None




def tls_keys(certs, who="server", ca="ca", supers=PEER):
    return ["ssl.certificate.location=%s" % (certs / (who + ".pem")),
            "ssl.key.location=%s" % (certs / (who + ".key")),
            "ssl.ca.location=%s" % (certs / (ca + ".pem")), "ssl.client.auth=required",
            "super.users=" + supers]


def pair(serve, certs, n2_keys=None, more=(), n1_more=(), n2_more=(), supers=PEER):
    """Node 1 (the leader) and node 2 on tls:// listeners, mutual TLS."""
    for attempt in range(5):
        ports = free_ports(2)
        urls = ["tls://127.0.0.1:%d" % p for p in ports]
        common = ["replication.peers=1@%s,2@%s" % tuple(urls), "replication.leader=1",
                  "replica.lag.time.max.ms=1000", "replica.fetch.wait.max.ms=100", "replica.heartbeat.ms=100",
                  "replica.socket.timeout.ms=2000", "replica.fetch.backoff.ms=100"] + list(more)
        try:
            n1 = serve(extra=["node.id=1"] + common + tls_keys(certs, supers=supers) + list(n1_more),
                       listen=(urls[0],))
            n2 = serve(extra=["node.id=2"] + common + (n2_keys or tls_keys(certs, supers=supers)) + list(n2_more),
                       listen=(urls[1],))
            return n1, n2
        except pytest.fail.Exception as e:
            if "in use" not in str(e).lower() or attempt == 4:
                raise
    raise AssertionError("unreachable")


def client_conf(n, certs):
    return {"bootstrap.servers": n.addr("tls"), "security.protocol": "SSL",
            "ssl.ca.location": str(certs / "ca.pem"), "ssl.certificate.location": str(certs / "server.pem"),
            "ssl.key.location": str(certs / "server.key")}


def admin_create(n, certs, topic):
    a = confluent_kafka.admin.AdminClient(client_conf(n, certs))
    fs = a.create_topics([confluent_kafka.admin.NewTopic(topic, num_partitions=1, replication_factor=2)],
                         request_timeout=30)
    fs[topic].result(30)


def produce(n, certs, topic, count, **extra):
    """acks=all; returns (delivered, errors)."""
    conf = client_conf(n, certs)
    conf.update({"acks": "all", "message.timeout.ms": 8000, "retries": 2})
    conf.update(extra)
    p = confluent_kafka.Producer(conf)
    done, errs = [], []

    def cb(err, msg):
        (errs if err else done).append(err or msg.offset())

    for i in range(count):
        p.produce(topic, value=b"rec-%d" % i, on_delivery=cb)
    left = p.flush(30)
    assert left == 0, "%d records neither delivered nor failed" % left
    return done, errs


def end_offset(n, topic):
    out = n.cli("topics", "describe", topic)
    for line in out.splitlines():
        if "\tPartition: 0\t" in line:
            for f in line.split("\t"):
                if f.startswith("End: "):
                    return int(f[5:])
    raise AssertionError("no partition 0 in\n" + out)


def follower_records(n, topic):
    """Records a stopped node holds of topic: 0 too when it never heard of
    the topic (no LeaderAndIsr reached it)."""
    p = subprocess.run([os.environ["KLOG_BIN"], "-d", n.datadir, "topics", "describe", topic],
                       capture_output=True, timeout=60)
    if p.returncode == 1 and b"no such topic" in p.stderr:
        return 0
    assert p.returncode == 0, p.stderr
    return end_offset(n, topic)


def wait_log(n, text, seconds=30):
    for _ in deadline_loop(seconds, 0.1):
        if text in n.log():
            return
    pytest.fail("%r never in the server's log:\n%s" % (text, n.log()))


needs_client = pytest.mark.skipif(confluent_kafka is None, reason="python3-confluent-kafka is not installed")


@needs_client
def test_peers_replicate_over_mutual_tls(serve, certs):
    n1, n2 = pair(serve, certs, more=["min.insync.replicas=2"])
    admin_create(n1, certs, "t")
    done = []
    for _ in deadline_loop(30, 0.2):   # until node 2 is in the ISR: acks=all with min 2 waits for it
        done, errs = produce(n1, certs, "t", 20)
        if done:
            break
    assert len(done) == 20, errs
    total = done[-1] + 1
    n2.stop()
    assert end_offset(n2, "t") == total


@needs_client
def test_follower_with_a_foreign_certificate_is_refused(serve, certs):
    # node 2 trusts the right CA but shows a certificate another CA signed
    n1, n2 = pair(serve, certs, n2_keys=tls_keys(certs, who="mallory"),
                  more=["min.insync.replicas=2", "ssl.endpoint.identification.algorithm=none"])
    admin_create(n1, certs, "t")
    wait_log(n1, "TLS handshake failed")   # the leader reports the refused handshakes
    done, errs = produce(n1, certs, "t", 5, **{"message.timeout.ms": 3000, "retries": 0})
    assert not done and errs, "acks=all with min.insync.replicas=2 must fail without node 2"
    assert "does not verify against ssl.ca.location" in n1.log()
    n2.stop()
    assert follower_records(n2, "t") == 0


def sasl_pair(serve, certs, password):
    """SASL PLAIN required on both (over mutual TLS); only User:peer may act
    as a peer; node 2 authenticates with password."""
    more = ["sasl.enabled.mechanisms=PLAIN", "connection.failed.authentication.delay.ms=10",
            "min.insync.replicas=%d" % (2 if password == "peer-pw" else 1)]
    n1, n2 = pair(serve, certs, more=more, supers="User:peer",
                  n1_more=["replication.sasl.mechanism=PLAIN", "replication.sasl.username=peer",
                           "replication.sasl.password=peer-pw"],
                  n2_more=["replication.sasl.mechanism=PLAIN", "replication.sasl.username=peer",
                           "replication.sasl.password=" + password])
    for n in (n1, n2):
        p = subprocess.run([os.environ["KLOG_BIN"], "-d", n.datadir, "users", "add", "peer"],
                           input=b"peer-pw\n", capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        n.proc.send_signal(signal.SIGHUP)   # read the users file
    return n1, n2


def sasl_client(n, certs):
    c = client_conf(n, certs)
    c.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "peer",
              "sasl.password": "peer-pw"})
    return c


def promote(args, timeout=60):
    return subprocess.run([os.environ["KLOG_BIN"]] + args, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)


def produce_until(node, certs, topic, n, **conf):
    """produce() until it is acknowledged (node 2 in the ISR, the users
    file read), at most 30 s: (done, errors) of the last try."""
    done, errs = [], None
    for _ in deadline_loop(30, 0.2):
        done, errs = produce(node, certs, topic, n, **conf)
        if done:
            break
    return done, errs


def sasl_create_topic(conf, topic):
    """CreateTopics over SASL_SSL, retried until the users file is read."""
    ok = None
    for _ in deadline_loop(20, 0.2):
        a = confluent_kafka.admin.AdminClient(conf)
        try:
            a.create_topics([confluent_kafka.admin.NewTopic(topic, 1, 2)], request_timeout=10)[topic].result(15)
            return
        except confluent_kafka.KafkaException as e:
            ok = e
    assert False, ok


@needs_client
@pytest.mark.parametrize("password,replicates", [("peer-pw", True), ("wrong", False)])
def test_peers_authenticate_with_sasl_plain(serve, certs, password, replicates):
    """Right password: acks=all with min.insync.replicas=2 succeeds, so node
    2 holds the records.  Wrong: node 1 logs the failed attempts, acks=all
    with min.insync.replicas=1 succeeds on node 1 alone, node 2 has none."""
    n1, n2 = sasl_pair(serve, certs, password)
    conf = sasl_client(n1, certs)
    sasl_create_topic(conf, "t")
    done, errs = produce_until(n1, certs, "t", 10, **{k: v for k, v in conf.items() if k.startswith("s")})
    assert len(done) == 10, errs
    if replicates:
        n2.stop()
        assert end_offset(n2, "t") == 10
    else:
        wait_log(n1, 'authentication failed for user "peer"')
        n2.stop()
        assert follower_records(n2, "t") == 0




@needs_client
def test_promote_over_tls_with_the_client_properties(serve, certs, tmp_path):
    """klog promote dials a tls:// node with the ssl.* client properties
    (--command-config, -X) and shows its certificate: refused without it."""
    n1, n2 = pair(serve, certs, more=["min.insync.replicas=2"])
    admin_create(n1, certs, "t")
    done, errs = produce_until(n1, certs, "t", 5)   # node 2 in the ISR (a clean promote)
    assert done, errs
    # no client certificate: the node's server (ssl.client.auth=required) refuses
    p = promote(["promote", "--bootstrap-server", "tls://" + n2.addr("tls"), "--timeout-ms", "5000",
                 "-X", "ssl.ca.location=%s" % (certs / "ca.pem")])
    assert p.returncode == 1, p.stdout + p.stderr
    # the client properties file of the other remote commands
    cfg = tmp_path / "client.properties"
    cfg.write_text("security.protocol=SSL\nclient.id=ops\nssl.ca.location=%s\nssl.certificate.location=%s\n"
                   "ssl.key.location=%s\n" % (certs / "ca.pem", certs / "server.pem", certs / "server.key"))
    p = promote(["--command-config", str(cfg), "promote", "--bootstrap-server", n2.addr("tls"),
                 "--timeout-ms", "10000"])
    assert p.returncode == 0, p.stderr
    assert b"leads" in p.stdout
    # node 2 leads: acks=all writes through it are acknowledged (node 1 follows)
    done, errs = produce_until(n2, certs, "t", 5)
    assert len(done) == 5, errs


@needs_client
def test_promote_authenticates_with_sasl_plain(serve, certs, tmp_path):
    """Over SASL_SSL: the right password promotes, a wrong one is refused."""
    n1, n2 = sasl_pair(serve, certs, "peer-pw")
    conf = sasl_client(n1, certs)
    sasl_create_topic(conf, "t")
    done, errs = produce_until(n1, certs, "t", 5, **{k: v for k, v in conf.items() if k.startswith("s")})
    assert done, errs
    tls = ["-X", "ssl.ca.location=%s" % (certs / "ca.pem"), "-X", "ssl.certificate.location=%s" % (certs / "server.pem"),
           "-X", "ssl.key.location=%s" % (certs / "server.key")]
    base = ["promote", "--bootstrap-server", n2.addr("tls"), "--timeout-ms", "10000", "-X", "security.protocol=SASL_SSL",
            "-X", "sasl.mechanism=PLAIN", "-X", "sasl.username=peer"] + tls
    p = promote(base + ["-X", "sasl.password=wrong"])
    assert p.returncode == 1 and b"SASL PLAIN as peer: refused" in p.stderr, p.stdout + p.stderr
    p = promote(base + ["-X", "sasl.password=peer-pw"])
    assert p.returncode == 0, p.stderr
    assert b"leads" in p.stdout
