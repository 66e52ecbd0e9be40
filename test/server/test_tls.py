"""TLS listeners of `klog serve` (tls://HOST:PORT) with real clients.

Certificates are made by test/tls/mkcerts.sh (the openssl command) once for
the module: a CA, a server certificate for localhost and 127.0.0.1, client
certificates alice and bob from the CA, and mallory from another CA.

  * kcat and confluent-kafka produce and consume over TLS, without a client
    certificate and, with ssl.client.auth=required, with one (and are
    refused without one, or with mallory's);
  * garbage instead of a TLS handshake, and a TLS client on the plaintext
    listener, fail that connection alone, with a log line that says why;
  * a client that connects and never finishes its handshake does not hold
    the server: others are served meanwhile;
  * SIGHUP reloads the certificate: new connections get the new one, a
    connection that was up goes on working.
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

import kwire
from kwire import deadline_loop

KCAT = shutil.which("kcat")
TIMEOUT = 60

try:
    import confluent_kafka
except ImportError:  # pragma: no cover
    confluent_kafka = None


def tls_server(serve, certs, *extra, prepare=()):
    keys = ["ssl.certificate.location=%s" % (certs / "server.pem"),
            "ssl.key.location=%s" % (certs / "server.key")] + list(extra)
    return serve(extra=keys, listen=("tls://127.0.0.1:0", "tcp://127.0.0.1:0"), prepare=prepare)


def kcat(bootstrap, *args, stdin=None, check=True, timeout=TIMEOUT):
    argv = [KCAT, "-b", bootstrap, "-X", "socket.timeout.ms=20000"] + list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    if check:
        assert p.returncode == 0, "`%s` exited %d\nstderr:\n%s" % (" ".join(argv), p.returncode,
                                                                     p.stderr.decode(errors="replace")[-3000:])
    return p


def ssl_args(certs, who=None):
    a = ["-X", "security.protocol=ssl", "-X", "ssl.ca.location=%s" % (certs / "ca.pem")]
    if who:
        a += ["-X", "ssl.certificate.location=%s" % (certs / (who + ".pem")),
              "-X", "ssl.key.location=%s" % (certs / (who + ".key"))]
    return a


def produce_consume_kcat(server, certs, topic, who=None, n=50):
    lines = b"".join(b"%s-%d\n" % (topic.encode(), i) for i in range(n))
    kcat(server.addr("tls"), *ssl_args(certs, who), "-P", "-t", topic, stdin=lines)
    out = kcat(server.addr("tls"), *ssl_args(certs, who), "-C", "-t", topic, "-e", "-q").stdout
    assert sorted(out.split()) == sorted(lines.split())


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_over_tls(serve, certs):
    server = tls_server(serve, certs, prepare=[["topics", "create", "secure", "--partitions", "2"]])
    produce_consume_kcat(server, certs, "secure")
    # the same records through the plaintext listener: one instance, two listeners
    out = kcat(server.addr("tcp"), "-C", "-t", "secure", "-e", "-q").stdout
    assert len(out.split()) == 50
    # a client that does not trust the CA is refused by its own check
    p = kcat(server.addr("tls"), "-X", "security.protocol=ssl",
             "-X", "ssl.ca.location=%s" % (certs / "other-ca.pem"), "-L", "-m", "5", check=False, timeout=60)
    assert p.returncode != 0
    assert b"certificate verify failed" in p.stderr, p.stderr[-2000:]


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_client_certificates(serve, certs):
    server = tls_server(serve, certs, "ssl.client.auth=required", "ssl.ca.location=%s" % (certs / "ca.pem"),
                        "super.users=User:CN=alice,O=klog",
                        prepare=[["topics", "create", "mtls", "--partitions", "1"]])
    produce_consume_kcat(server, certs, "mtls", who="alice")
    # no certificate, or one from another CA: the handshake fails
    for who in (None, "mallory"):
        p = kcat(server.addr("tls"), *ssl_args(certs, who), "-L", "-m", "5", check=False, timeout=60)
        assert p.returncode != 0, "client %s was let in" % who
    # bob has a good certificate but no ACL (required client certificates
    # turn authorisation on): he sees no topic
    p = kcat(server.addr("tls"), *ssl_args(certs, "bob"), "-L", "-J", check=True)
    assert b'"topic":"mtls"' not in p.stdout.replace(b" ", b"")
    # the plaintext listener: nobody can authenticate there, nothing but ApiVersions works
    p = kcat(server.addr("tcp"), "-L", "-m", "5", check=False, timeout=60)
    assert p.returncode != 0
    for _ in deadline_loop(10):
        if "TLS handshake failed" in server.log() and "before authenticating" in server.log():
            break
    log = server.log()
    assert "TLS handshake failed" in log, log
    assert "Metadata request before authenticating" in log, log


@pytest.mark.skipif(confluent_kafka is None, reason="python3-confluent-kafka is not installed")
@pytest.mark.parametrize("client_cert", [False, True])
def test_confluent_kafka_over_tls(serve, certs, client_cert):
    server = tls_server(serve, certs, "ssl.client.auth=requested", "ssl.ca.location=%s" % (certs / "ca.pem"),
                        prepare=[["topics", "create", "ck", "--partitions", "3"]])
    conf = {"bootstrap.servers": server.addr("tls"), "security.protocol": "SSL",
            "ssl.ca.location": str(certs / "ca.pem")}
    if client_cert:
        conf.update({"ssl.certificate.location": str(certs / "bob.pem"),
                     "ssl.key.location": str(certs / "bob.key")})
    p = confluent_kafka.Producer(dict(conf, **{"enable.idempotence": True}))
    errors = []
    for i in range(300):
        p.produce("ck", key=b"k%d" % (i % 7), value=b"v%d" % i,
                  on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(60) == 0
    assert errors == []
    c = confluent_kafka.Consumer(dict(conf, **{"group.id": "ckg", "auto.offset.reset": "earliest"}))
    c.subscribe(["ck"])
    seen = set()
    for _ in deadline_loop(60, 0):
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.add(m.value())
        if len(seen) == 300:
            break
    c.close()
    assert seen == {b"v%d" % i for i in range(300)}


def test_garbage_and_wrong_protocol(serve, certs):
    server = tls_server(serve, certs)
    host, port = server.addr("tls").rsplit(":", 1)
    # garbage instead of a ClientHello
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"\x00\x00\x00\x10this is not TLS, just bytes\r\n" * 10)
    kwire.expect_closed(s)
    s.close()
    # a Kafka request in the clear on the TLS listener
    s = kwire.connect(server.addr("tls"))
    s.sendall(kwire.request(kwire.API_API_VERSIONS, 0, 1))
    kwire.expect_closed(s)
    s.close()
    # a TLS client on the plaintext listener
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    raw = socket.create_connection(tuple(server.addr("tcp").rsplit(":", 1)), timeout=10)
    with pytest.raises((ssl.SSLError, OSError)):
        ctx.wrap_socket(raw, server_hostname="localhost")
    raw.close()
    for _ in deadline_loop(10):
        if "looks like a TLS handshake" in server.log():
            break
    log = server.log()
    assert "TLS handshake failed" in log, log
    assert "looks like a TLS handshake" in log, log
    # and the server still serves TLS clients
    tls_api_versions(server, certs)


def tls_connect(server, certs, who=None):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if who:
        ctx.load_cert_chain(str(certs / (who + ".pem")), str(certs / (who + ".key")))
    host, port = server.addr("tls").rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=20)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def tls_api_versions(server, certs, sock=None):
    s = sock or tls_connect(server, certs)
    s.sendall(kwire.request(kwire.API_API_VERSIONS, 0, 7))
    corr, body = kwire.read_response(s)
    assert corr == 7
    err, keys = kwire.parse_api_versions_v0(body)
    assert err == 0 and kwire.API_METADATA in keys
    if sock is None:
        s.close()


def test_stalled_handshakes_hold_nothing(serve, certs):
    server = tls_server(serve, certs, "num.network.threads=1")
    host, port = server.addr("tls").rsplit(":", 1)
    # 50 clients that connect and say nothing, and 5 that send half a ClientHello
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(50)]
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    halves = []
    for _ in range(5):
        inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inb, outb, server_hostname="localhost")
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outb.read()
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(hello[:len(hello) // 2])
        halves.append(s)
    # one worker thread, and it serves a full client at once
    t0 = time.monotonic()
    for _ in range(3):
        tls_api_versions(server, certs)
    assert time.monotonic() - t0 < 30
    for s in idle + halves:
        s.close()


def test_sighup_reloads_the_certificate(serve, certs, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(certs / "server.pem", live / "server.pem")
    shutil.copy(certs / "server.key", live / "server.key")
    server = serve(extra=["ssl.certificate.location=%s" % (live / "server.pem"),
                          "ssl.key.location=%s" % (live / "server.key")],
                   listen=("tls://127.0.0.1:0",))
    old = tls_connect(server, certs)
    assert dict(x[0] for x in old.getpeercert()["subject"])["organizationName"] == "klog"
    tls_api_versions(server, certs, old)
    # a broken file: the reload fails, is logged, and changes nothing
    (live / "server.pem").write_text("not a certificate\n")
    os.kill(server.pid, signal.SIGHUP)
    for _ in deadline_loop(10):
        if "reload failed" in server.log():
            break
    assert "reload failed" in server.log()
    s = tls_connect(server, certs)
    assert dict(x[0] for x in s.getpeercert()["subject"])["organizationName"] == "klog"
    s.close()
    # the new certificate
    shutil.copy(certs / "server2.pem", live / "server.pem")
    shutil.copy(certs / "server2.key", live / "server.key")
    os.kill(server.pid, signal.SIGHUP)
    for _ in deadline_loop(10):
        if "reloaded certificates" in server.log():
            break
    assert "reloaded certificates" in server.log()
    s = tls_connect(server, certs)
    assert dict(x[0] for x in s.getpeercert()["subject"])["organizationName"] == "klog-reloaded"
    tls_api_versions(server, certs, s)
    s.close()
    # the connection made before both reloads is still up
    tls_api_versions(server, certs, old)
    old.close()
