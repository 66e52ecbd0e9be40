"""SASL authentication and ACLs of `klog serve` with real clients.

Users are made with `klog users add` (password on stdin), ACLs with `klog
acls add` and with Kafka's CreateAcls/DeleteAcls through kafka-python's
admin client.  Certificates from test/tls/mkcerts.sh.

  * kcat (librdkafka) over SASL_SSL with PLAIN, SCRAM-SHA-256 and
    SCRAM-SHA-512: the right password works, a wrong one is refused, logged
    and answered later each time (rate limited);
  * kafka-python over SASL_SSL (its SaslHandshake v0, raw tokens);
  * a principal allowed to produce to one topic and nothing else sees
    exactly that (confluent-kafka);
  * ACLs managed with CreateAcls/DescribeAcls/DeleteAcls take effect at once;
  * a request before authenticating, and a big frame before authenticating,
    close that connection; max.connections.per.ip; SIGHUP reads new users;
  * an authenticated client that reads nothing holds up nobody else.
"""
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

import kwire
from kwire import deadline_loop

KCAT = shutil.which("kcat")
TIMEOUT = 60
MECHS = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
PASSWORDS = {"admin": "adm1n-pw", "alice": "alice-pw", "bob": "b0b-pw"}

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


def add_user(workdir_server, name, password):
    """klog users add NAME, the password on stdin (server need not be running)."""
    klog = os.environ["KLOG_BIN"]
    p = subprocess.run([klog, "-d", workdir_server.datadir, "users", "add", name], input=password.encode() + b"\n",
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr


def sasl_server(serve, certs, *extra, prepare=(), acls=()):
    """A server with SASL on, users admin (a super user), alice and bob, and
    the given `klog acls add` argument lists."""
    keys = ["ssl.certificate.location=%s" % (certs / "server.pem"), "ssl.key.location=%s" % (certs / "server.key"),
            "sasl.enabled.mechanisms=" + MECHS, "super.users=User:admin",
            "connection.failed.authentication.delay.ms=50"] + list(extra)
    server = serve(extra=keys, listen=("tls://127.0.0.1:0", "tcp://127.0.0.1:0"), prepare=prepare)
    # users and ACLs are files beside the data: written while the server
    # runs (neither command needs the directory's lock), read on SIGHUP
    for name, pw in PASSWORDS.items():
        add_user(server, name, pw)
    for a in acls:
        klog_cli(server, "acls", "add", *a)
    reload(server)
    return server


def klog_cli(server, *args, input=None, check=True):
    klog = os.environ["KLOG_BIN"]
    p = subprocess.run([klog, "-d", server.datadir] + list(args), input=input, capture_output=True, timeout=60)
    if check:
        assert p.returncode == 0, "klog %s: %s" % (" ".join(args), p.stderr.decode(errors="replace"))
    return p.stdout.decode()


def reload(server):
    n = server.log().count("SIGHUP: reloaded")
    os.kill(server.pid, signal.SIGHUP)
    for _ in deadline_loop(20):
        if server.log().count("SIGHUP: reloaded") > n:
            return
    raise AssertionError("no reload after SIGHUP:\n" + server.log())


def kcat(bootstrap, *args, stdin=None, check=True, timeout=TIMEOUT):
    argv = [KCAT, "-b", bootstrap, "-X", "socket.timeout.ms=20000"] + list(args)
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    if check:
        assert p.returncode == 0, "`%s` exited %d\nstderr:\n%s" % (" ".join(argv), p.returncode,
                                                                     p.stderr.decode(errors="replace")[-3000:])
    return p


def sasl_args(certs, mech, user, password=None):
    return ["-X", "security.protocol=sasl_ssl", "-X", "ssl.ca.location=%s" % (certs / "ca.pem"),
            "-X", "sasl.mechanisms=" + mech, "-X", "sasl.username=" + user,
            "-X", "sasl.password=" + (password if password is not None else PASSWORDS[user])]


# ---- kcat: PLAIN and SCRAM, right and wrong passwords ----------------------------------

@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_sasl_mechanisms(serve, certs):
    server = sasl_server(serve, certs, prepare=[["topics", "create", "t", "--partitions", "2"]],
                         acls=[["--allow-principal", "User:alice", "--operation", "All", "--topic", "t"]])
    boot = server.addr("tls")
    for mech in MECHS.split(","):
        lines = b"".join(b"%s-%d\n" % (mech.encode(), i) for i in range(20))
        kcat(boot, *sasl_args(certs, mech, "alice"), "-P", "-t", "t", stdin=lines)
    out = kcat(boot, *sasl_args(certs, "SCRAM-SHA-512", "alice"), "-C", "-t", "t", "-e", "-q").stdout
    assert len(out.split()) == 60
    # wrong passwords, an unknown user: refused with SASL_AUTHENTICATION_FAILED
    for mech, user, pw in [("PLAIN", "alice", "nope"), ("SCRAM-SHA-256", "alice", "alice-pw!"),
                           ("SCRAM-SHA-512", "nobody", "x")]:
        before = server.log().count('authentication failed for user "%s" with %s' % (user, mech))
        p = kcat(boot, *sasl_args(certs, mech, user, pw), "-L", "-m", "5", check=False)
        assert p.returncode != 0
        # kcat prints "Authentication failed" from the server's answer, or,
        # after its retries, only that the broker is down
        assert b"Authentication failed" in p.stderr or b"transport failure" in p.stderr, p.stderr[-2000:]
        # the server logs a failure when it answers it, and answers repeated
        # failures from one address later and later: kcat may have given up
        # first (an ASan rehearsal read the log before the line was there)
        line = 'authentication failed for user "%s" with %s' % (user, mech)
        for _ in deadline_loop(15, 0.1):
            if server.log().count(line) > before:
                break
        assert server.log().count(line) > before, server.log()[-3000:]
    log = server.log()
    assert log.count("authentication failed for user") >= 3, log
    assert 'user "nobody"' in log
    # failures from one address are answered later and later
    delays = [int(x.split(" ms")[0]) for x in log.split("answered in ")[1:]]
    assert max(delays) > min(delays), delays
    # and the right password still works
    kcat(boot, *sasl_args(certs, "PLAIN", "alice"), "-L")
    # SASL on the plaintext listener works, with a warning in the log
    kcat(server.addr("tcp"), "-X", "security.protocol=sasl_plaintext", "-X", "sasl.mechanisms=SCRAM-SHA-256",
         "-X", "sasl.username=alice", "-X", "sasl.password=alice-pw", "-L")
    assert "SASL on a plaintext listener" in server.log()


# ---- kafka-python over SASL_SSL ---------------------------------------------------------

@pytest.mark.skipif(kafka is None, reason="python3-kafka is not installed")
@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256"])
def test_kafka_python_sasl_ssl(serve, certs, mech):
    server = sasl_server(serve, certs, prepare=[["topics", "create", "kp", "--partitions", "1"]],
                         acls=[["--allow-principal", "User:bob", "--operation", "Write", "--operation", "Read",
                                "--topic", "kp"],
                               ["--allow-principal", "User:bob", "--operation", "Read", "--group", "kpg"]])
    conf = dict(bootstrap_servers=server.addr("tls"), security_protocol="SASL_SSL", sasl_mechanism=mech,
                sasl_plain_username="bob", sasl_plain_password=PASSWORDS["bob"], ssl_cafile=str(certs / "ca.pem"),
                request_timeout_ms=30000)
    p = kafka.KafkaProducer(**conf)
    for i in range(50):
        p.send("kp", b"m%d" % i)
    p.flush(60)
    p.close()
    c = kafka.KafkaConsumer("kp", group_id="kpg", auto_offset_reset="earliest", consumer_timeout_ms=20000, **conf)
    got = []
    for m in c:               # until all 50 are in (or 20 s pass without one)
        got.append(m.value)
        if len(got) == 50:
            break
    c.close()
    assert sorted(got) == sorted(b"m%d" % i for i in range(50))
    # the wrong password
    with pytest.raises(Exception):
        kafka.KafkaProducer(**dict(conf, sasl_plain_password="wrong"))
    assert "authentication failed for user \"bob\"" in server.log()


# ---- ACLs: one topic, and nothing else ------------------------------------------------------

@pytest.mark.skipif(confluent_kafka is None, reason="python3-confluent-kafka is not installed")
def test_write_to_one_topic_and_nothing_else(serve, certs):
    server = sasl_server(serve, certs, prepare=[],
                         acls=[["--allow-principal", "User:bob", "--operation", "Write", "--topic", "orders"]])
    for t in ("orders", "payments", "secrets"):
        kcat(server.addr("tls"), *sasl_args(certs, "PLAIN", "admin"), "-P", "-t", t, stdin=b"%s-0\n" % t.encode())
    base = {"bootstrap.servers": server.addr("tls"), "security.protocol": "SASL_SSL",
            "ssl.ca.location": str(certs / "ca.pem"), "sasl.mechanisms": "SCRAM-SHA-256",
            "sasl.username": "bob", "sasl.password": PASSWORDS["bob"]}
    # Metadata: bob sees orders, and no other topic
    admin = confluent_kafka.admin.AdminClient(base)
    md = admin.list_topics(timeout=30)
    assert sorted(md.topics) == ["orders"], sorted(md.topics)
    # the admin sees them all
    adm = confluent_kafka.admin.AdminClient(dict(base, **{"sasl.username": "admin",
                                                          "sasl.password": PASSWORDS["admin"]}))
    assert {"orders", "payments", "secrets"} <= set(adm.list_topics(timeout=30).topics)
    # produce: orders yes, payments no
    results = {}
    p = confluent_kafka.Producer(dict(base, **{"message.timeout.ms": 10000}))
    for t in ("orders", "payments"):
        p.produce(t, b"from bob", on_delivery=lambda err, msg, t=t: results.__setitem__(t, err))
    p.flush(30)
    assert results["orders"] is None
    assert results["payments"] is not None
    assert results["payments"].code() == confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED, results["payments"]
    # consume: bob may not read (no Read ACL, no group ACL)
    c = confluent_kafka.Consumer(dict(base, **{"group.id": "bobs", "auto.offset.reset": "earliest"}))
    c.subscribe(["orders"])
    err = None
    for _ in deadline_loop(30, 0):
        m = c.poll(0.5)
        if m is not None and m.error():
            err = m.error()
            break
        assert m is None, "bob read a record: %r" % m.value()
    c.close()
    assert err is not None and err.code() in (confluent_kafka.KafkaError.GROUP_AUTHORIZATION_FAILED,
                                              confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED), err
    # what bob wrote is there (read as admin)
    out = kcat(server.addr("tls"), *sasl_args(certs, "PLAIN", "admin"), "-C", "-t", "orders", "-e", "-q").stdout
    assert out.split() == [b"orders-0", b"from", b"bob"] or sorted(out.splitlines()) == [b"from bob", b"orders-0"]
    # the ACL file as klog acls prints it
    assert klog_cli(server, "acls", "list").strip() == "allow User:bob * Write topic literal orders"


@pytest.mark.skipif(kafka is None, reason="python3-kafka is not installed")
def test_acls_through_the_admin_api(serve, certs):
    from kafka.admin import ACL, ACLFilter, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType
    from kafka.admin import ResourcePatternFilter, ACLResourcePatternType
    server = sasl_server(serve, certs, prepare=[])
    kcat(server.addr("tls"), *sasl_args(certs, "PLAIN", "admin"), "-P", "-t", "logs", stdin=b"line\n")
    conf = dict(bootstrap_servers=server.addr("tls"), security_protocol="SASL_SSL", sasl_mechanism="PLAIN",
                ssl_cafile=str(certs / "ca.pem"), request_timeout_ms=30000)
    admin = kafka.admin.KafkaAdminClient(sasl_plain_username="admin", sasl_plain_password=PASSWORDS["admin"], **conf)
    acls = [ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                ResourcePattern(ResourceType.TOPIC, "log", ACLResourcePatternType.PREFIXED)),
            ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                ResourcePattern(ResourceType.GROUP, "*", ACLResourcePatternType.LITERAL))]
    res = admin.create_acls(acls)
    assert len(res["succeeded"]) == 2 and not res["failed"], res
    listed, err = admin.describe_acls(ACLFilter("User:alice", None, ACLOperation.ANY, ACLPermissionType.ANY,
                                                ResourcePatternFilter(ResourceType.ANY, None,
                                                                      ACLResourcePatternType.ANY)))
    assert err is kafka.errors.NoError
    assert sorted((a.resource_pattern.resource_type, a.resource_pattern.resource_name) for a in listed) == \
        [(ResourceType.TOPIC, "log"), (ResourceType.GROUP, "*")] or len(listed) == 2
    # alice can read now: a prefixed ACL on "log" covers "logs"
    out = kcat(server.addr("tls"), *sasl_args(certs, "SCRAM-SHA-256", "alice"), "-C", "-t", "logs", "-e",
               "-q").stdout
    assert out.strip() == b"line"
    # the same ACLs are in the file klog acls reads
    text = klog_cli(server, "acls", "list", "--principal", "User:alice")
    assert "allow User:alice * Read topic prefixed log" in text and "group literal *" in text, text
    # alice may not manage ACLs
    alice = kafka.admin.KafkaAdminClient(sasl_plain_username="alice", sasl_plain_password=PASSWORDS["alice"], **conf)
    with pytest.raises(Exception):
        r = alice.create_acls([ACL("User:alice", "*", ACLOperation.ALL, ACLPermissionType.ALLOW,
                                   ResourcePattern(ResourceType.TOPIC, "*", ACLResourcePatternType.LITERAL))])
        if r["failed"]:
            raise RuntimeError(str(r["failed"]))
    alice.close()
    # delete the topic ACL: alice reads no more
    deleted = admin.delete_acls([ACLFilter("User:alice", None, ACLOperation.ANY, ACLPermissionType.ANY,
                                           ResourcePatternFilter(ResourceType.TOPIC, None,
                                                                 ACLResourcePatternType.ANY))])
    assert len(deleted) == 1 and len(deleted[0][1]) == 1, deleted
    admin.close()
    p = kcat(server.addr("tls"), *sasl_args(certs, "SCRAM-SHA-256", "alice"), "-C", "-t", "logs", "-e", "-q",
             check=False)
    assert p.returncode != 0 or p.stdout.strip() == b""
    assert "Read topic prefixed" not in klog_cli(server, "acls", "list")


# ---- bad input ----------------------------------------------------------------------------

def tls_sock(server, certs):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    host, port = server.addr("tls").rsplit(":", 1)
    s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20), server_hostname="localhost")
    return s


def sasl_plain_login(s, user, password):
    """SaslHandshake v1 + SaslAuthenticate v0 with PLAIN on s."""
    s.sendall(kwire.request(17, 1, 11, kwire.kstr("PLAIN")))
    corr, body = kwire.read_response(s)
    assert corr == 11 and struct.unpack(">h", body[:2])[0] == 0
    tok = b"\0" + user.encode() + b"\0" + password.encode()
    s.sendall(kwire.request(36, 0, 12, struct.pack(">i", len(tok)) + tok))
    corr, body = kwire.read_response(s)
    assert corr == 12
    return struct.unpack(">h", body[:2])[0]


def test_nothing_before_authentication(serve, certs):
    server = sasl_server(serve, certs, "sasl.server.max.receive.size=4096")
    # ApiVersions is answered, and advertises the SASL keys
    s = tls_sock(server, certs)
    keys = kwire.api_versions(s)
    assert 17 in keys and 36 in keys and 29 in keys
    # then a Metadata request: the connection is closed
    s.sendall(kwire.request(kwire.API_METADATA, 0, 2, kwire.metadata_v0([])))
    kwire.expect_closed(s)
    s.close()
    # the same on the plaintext listener
    s = kwire.connect(server.addr("tcp"))
    s.sendall(kwire.request(kwire.API_METADATA, 0, 2, kwire.metadata_v0(["x"])))
    kwire.expect_closed(s)
    s.close()
    # a frame over sasl.server.max.receive.size before authenticating
    s = tls_sock(server, certs)
    s.sendall(struct.pack(">i", 100000) + b"\0" * 1000)
    kwire.expect_closed(s)
    s.close()
    # SaslAuthenticate without a handshake
    s = tls_sock(server, certs)
    s.sendall(kwire.request(36, 0, 3, struct.pack(">i", 3) + b"abc"))
    corr, body = kwire.read_response(s)
    assert struct.unpack(">h", body[:2])[0] == 34  # ILLEGAL_SASL_STATE
    kwire.expect_closed(s)
    s.close()
    # an unknown mechanism
    s = tls_sock(server, certs)
    s.sendall(kwire.request(17, 1, 4, kwire.kstr("GSSAPI")))
    corr, body = kwire.read_response(s)
    assert struct.unpack(">h", body[:2])[0] == 33  # UNSUPPORTED_SASL_MECHANISM
    kwire.expect_closed(s)
    s.close()
    # after PLAIN, the frame cap is socket.request.max.bytes and Metadata works
    s = tls_sock(server, certs)
    assert sasl_plain_login(s, "admin", PASSWORDS["admin"]) == 0
    s.sendall(kwire.request(kwire.API_METADATA, 0, 5, kwire.metadata_v0(["x" * 5000])))
    corr, body = kwire.read_response(s)
    assert corr == 5
    # a second SaslAuthenticate: no re-authentication, the connection goes
    tok = b"\0admin\0" + PASSWORDS["admin"].encode()
    s.sendall(kwire.request(36, 0, 6, struct.pack(">i", len(tok)) + tok))
    corr, body = kwire.read_response(s)
    assert corr == 6 and struct.unpack(">h", body[:2])[0] == 34  # ILLEGAL_SASL_STATE
    kwire.expect_closed(s)
    s.close()
    log = server.log()
    assert "Metadata request before authenticating" in log
    assert "sasl.server.max.receive.size" in log or "over socket.request.max.bytes (4096)" in log, log


def test_sasl_v0_on_a_certificate_authenticated_connection(serve, certs):
    """kafka-python's SaslHandshake v0 (bare tokens after it) on a TLS
    connection whose client certificate already authenticated it: the
    tokens are still read as tokens, and the SASL user is the principal."""
    server = sasl_server(serve, certs, "ssl.client.auth=requested", "ssl.ca.location=%s" % (certs / "ca.pem"),
                         acls=[["--allow-principal", "User:bob", "--operation", "Describe", "--topic", "bobs"]])
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.load_cert_chain(str(certs / "alice.pem"), str(certs / "alice.key"))
    host, port = server.addr("tls").rsplit(":", 1)
    s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20), server_hostname="localhost")
    s.sendall(kwire.request(17, 0, 1, kwire.kstr("PLAIN")))
    corr, body = kwire.read_response(s)
    assert corr == 1 and struct.unpack(">h", body[:2])[0] == 0
    tok = b"\0bob\0" + PASSWORDS["bob"].encode()
    s.sendall(struct.pack(">i", len(tok)) + tok)
    assert kwire.recv_exact(s, 4, 20) == b"\0\0\0\0"  # PLAIN's empty answer, bare
    # now bob (not CN=alice): he may describe "bobs", and sees nothing else
    s.sendall(kwire.request(kwire.API_METADATA, 0, 2, kwire.metadata_v0(["bobs", "other"])))
    corr, body = kwire.read_response(s)
    assert corr == 2
    r = kwire.Reader(body)
    for _ in range(r.i32()):
        r.i32(), r.string(), r.i32()
    errs = {}
    for _ in range(r.i32()):
        err, name = r.i16(), r.string()
        for _ in range(r.i32()):
            r.i16(), r.i32(), r.i32()
            for _ in range(2):
                for _ in range(r.i32()):
                    r.i32()
        errs[name] = err
    assert errs["other"] == 29, errs  # TOPIC_AUTHORIZATION_FAILED
    assert errs["bobs"] in (0, 3), errs  # allowed: it exists, or not (3: unknown, no CREATE)
    s.close()


def test_certificate_alone_is_not_a_sasl_login(serve, certs):
    """Kafka's SASL_SSL: with SASL on, a client certificate that verified
    (ssl.client.auth=required) does not stand for the SASL login; a client
    that skips SASL may send ApiVersions and nothing else, however good its
    certificate (before the fix it was let in as User:CN=alice)."""
    server = sasl_server(serve, certs, "ssl.client.auth=required", "ssl.ca.location=%s" % (certs / "ca.pem"),
                         acls=[["--allow-principal", "User:CN=alice", "--operation", "All", "--topic", "*"]])
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.load_cert_chain(str(certs / "alice.pem"), str(certs / "alice.key"))
    host, port = server.addr("tls").rsplit(":", 1)
    s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20), server_hostname="localhost")
    s.sendall(kwire.request(kwire.API_METADATA, 0, 1, kwire.metadata_v0(["t"])))
    try:
        data = kwire.expect_closed(s)  # fails if the server keeps it open
    except ssl.SSLError:  # closed without TLS's close_notify
        data = b""
    assert data == b"", data  # and no Metadata answer came first
    s.close()
    assert "Metadata request before authenticating" in server.log(), server.log()


def test_connections_per_address(serve):
    server = serve(extra=["max.connections.per.ip=4"])
    socks = [kwire.connect(server.bootstrap) for _ in range(7)]
    ok = closed = 0
    for s in socks:
        try:
            kwire.api_versions(s, timeout=10)
            ok += 1
        except (kwire.Closed, OSError):
            closed += 1
    assert (ok, closed) == (4, 3), (ok, closed)
    for s in socks:
        s.close()
    # the slots come back once connections close
    for _ in deadline_loop(20):
        s = kwire.connect(server.bootstrap)
        try:
            kwire.api_versions(s, timeout=10)
            s.close()
            break
        except (kwire.Closed, OSError):
            s.close()
    else:
        raise AssertionError("no connection accepted after the others closed")
    assert "over max.connections.per.ip (4)" in server.log()


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_users_reloaded_on_sighup(serve, certs):
    server = sasl_server(serve, certs, acls=[["--allow-principal", "User:carol", "--operation", "Describe",
                                              "--cluster"]])
    carol = ["-X", "security.protocol=sasl_ssl", "-X", "ssl.ca.location=%s" % (certs / "ca.pem"),
             "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=carol", "-X", "sasl.password=c4rol"]
    p = kcat(server.addr("tls"), *carol, "-L", "-m", "3", check=False)
    assert p.returncode != 0
    add_user(server, "carol", "c4rol")
    assert "carol SCRAM-SHA-512" in klog_cli(server, "users", "list")
    with open(os.path.join(server.datadir, "users")) as f:
        assert "c4rol" not in f.read()  # credentials, not the password
    reload(server)
    kcat(server.addr("tls"), *carol, "-L")
    klog_cli(server, "users", "delete", "carol")
    reload(server)
    p = kcat(server.addr("tls"), *carol, "-L", "-m", "3", check=False)
    assert p.returncode != 0


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_authenticated_client_that_reads_nothing(serve, certs):
    server = sasl_server(serve, certs, "num.network.threads=1",
                         prepare=[], acls=[["--allow-principal", "User:alice", "--operation", "All", "--topic", "*"]])
    big = b"".join(b"%06d-" % i + b"x" * 4000 + b"\n" for i in range(1500))  # 6 MB
    kcat(server.addr("tls"), *sasl_args(certs, "PLAIN", "admin"), "-P", "-t", "bulk", stdin=big)
    # alice logs in over TLS, asks for the whole topic again and again, reads nothing
    s = tls_sock(server, certs)
    assert sasl_plain_login(s, "alice", PASSWORDS["alice"]) == 0
    req = b"".join(kwire.request(kwire.API_FETCH, 4, 100 + i, kwire.fetch_v4("bulk", 0, 0, 100, max_bytes=8 << 20))
                   for i in range(20))
    s.settimeout(5)
    try:
        s.sendall(req)
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    # meanwhile, on the one worker thread, others are served
    t0 = time.monotonic()
    out = kcat(server.addr("tls"), *sasl_args(certs, "SCRAM-SHA-256", "admin"), "-C", "-t", "bulk", "-e", "-q",
               "-o", "-5").stdout
    assert len(out.splitlines()) == 5
    kcat(server.addr("tls"), *sasl_args(certs, "PLAIN", "admin"), "-P", "-t", "other", stdin=b"fine\n")
    assert time.monotonic() - t0 < TIMEOUT
    s.close()


def test_ten_thousand_connections_at_once(serve):
    """Opened as fast as possible, many more than max.connections: those
    over the cap are closed at once, and the server goes on serving."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 10000
    if hard != resource.RLIM_INFINITY and hard < want + 200:
        want = hard - 200
    if want < 1000:
        pytest.skip("RLIMIT_NOFILE hard limit %d: too few descriptors" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 200) if hard != resource.RLIM_INFINITY
                                                else want + 200, hard))
    cap = 500
    server = serve(extra=["max.connections=%d" % cap])
    host, port = server.bootstrap.rsplit(":", 1)
    socks = []
    try:
        for _ in range(want):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((host, int(port)))
            except BlockingIOError:
                pass
            socks.append(s)
        # the server keeps serving a client that comes now (the cap counts
        # it too: wait for the refused ones to be closed, then close ours)
        for s in socks[cap:]:
            s.close()
        socks = socks[:cap - 1]
        for _ in deadline_loop(60):
            c = kwire.connect(server.bootstrap)
            try:
                kwire.api_versions(c, timeout=10)
                c.close()
                break
            except (kwire.Closed, OSError):
                c.close()
        else:
            raise AssertionError("no client served after the burst")
        assert "over max.connections (%d)" % cap in server.log()
        assert server.alive()
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_klog_cli_as_a_client_over_sasl_ssl(serve, certs, tmp_path):
    """klog's own remote mode (--command-config, Kafka's properties) against
    a server with TLS and SCRAM: the directory's serve.listeners names the
    tls:// listener, and the properties carry the CA and the credentials."""
    server = sasl_server(serve, certs, acls=[["--allow-principal", "User:alice", "--operation", "All", "--topic", "*"],
                                             ["--allow-principal", "User:alice", "--operation", "All", "--group", "*"],
                                             ["--allow-principal", "User:alice", "--operation", "Create",
                                              "--cluster"]])
    props = tmp_path / "client.properties"
    props.write_text("security.protocol=SASL_SSL\nssl.ca.location=%s\nsasl.mechanism=SCRAM-SHA-256\n"
                     "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                     "username=\"alice\" password=\"%s\";\n" % (certs / "ca.pem", PASSWORDS["alice"]))
    base = ["--bootstrap-server", server.addr("tls"), "--command-config", str(props)]
    klog_cli(server, *base, "topics", "create", "remote", "--partitions", "2")
    klog_cli(server, *base, "produce", "remote", input=b"one\ntwo\nthree\n")
    # through DIR/serve.listeners this time, as a group member
    out = klog_cli(server, "--command-config", str(props), "consume", "remote", "--from-beginning",
                   "--timeout-ms", "3000", "--group", "remote-g")
    assert sorted(out.split()) == ["one", "three", "two"], out
    # the wrong password: refused
    bad = tmp_path / "bad.properties"
    bad.write_text(props.read_text().replace(PASSWORDS["alice"], "wrong"))
    klog = os.environ["KLOG_BIN"]
    p = subprocess.run([klog, "--bootstrap-server", server.addr("tls"), "--command-config", str(bad), "topics",
                        "list"], capture_output=True, timeout=120)
    assert p.returncode != 0, p.stdout
    assert 'authentication failed for user "alice"' in server.log()
    # and it says so: it stops at the refusal instead of retrying until
    # its request timeout (30 s), as Kafka's own tools do
    assert b"authentication" in p.stderr.lower(), p.stderr[-2000:]
