"""A follower that comes back behind its leader's log start (issue 16):
two `klog serve` nodes replicate a topic; the follower is stopped, the
leader takes more records and DeleteRecords moves its log start past
everything the follower holds; the follower restarts, starts its log again
at the leader's start (Kafka's truncateFullyAndStartAt) and catches up:
the same start, the same end, the same records.  Before that, it asked
below the leader's start again and again and never caught up.  Servers
are stopped by PID; every wait is bounded.
"""
import shutil
import tempfile

import pytest

from test_replication_cli import field, klog, remote_built, wait_for


@pytest.fixture
def sockdir():
    d = tempfile.mkdtemp(prefix="klbeh")   # short: a socket path has at most 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_follower_behind_the_leaders_log_start_starts_again_there(serve, sockdir):
    if not remote_built():
        pytest.skip("the klog tool was built without remote mode (librdkafka)")
    socks = ["unix://%s/n%d.sock" % (sockdir, i) for i in (1, 2)]
    peers = "1@%s,2@%s" % (socks[0], socks[1])
    common = ["replication.peers=" + peers, "replica.lag.time.max.ms=1000", "replica.fetch.wait.max.ms=100",
              "replica.heartbeat.ms=100", "replica.socket.timeout.ms=2000", "min.insync.replicas=1"]
    n1 = serve(extra=["node.id=1"] + common, listen=(socks[0], "tcp://127.0.0.1:0"))
    n2 = serve(extra=["node.id=2"] + common, listen=(socks[1], "tcp://127.0.0.1:0"))

    klog("--bootstrap-server", n1.bootstrap, "topics", "create", "t", "--partitions", "1")
    out = klog("--bootstrap-server", n1.bootstrap, "produce", "t", "-X", "acks=all",
               stdin="".join("v%d\n" % i for i in range(20)).encode())
    assert "20 records delivered, 0 failed" in out, out
    wait_for(n2, "node 2 in sync", lambda l: field(l, "Isr") in ("1,2", "2,1") and field(l, "Leader") == "1")

    # the follower goes; the leader writes on and deletes past its end
    n2.stop()
    out = klog("--bootstrap-server", n1.bootstrap, "produce", "t", "-X", "acks=all",
               stdin="".join("v%d\n" % i for i in range(20, 40)).encode())
    assert "20 records delivered, 0 failed" in out, out
    out = klog("--bootstrap-server", n1.bootstrap, "delete-records", "t", "--partition", "0", "--offset", "33")
    assert "33" in out, out

    # it comes back below the leader's start, starts again there, catches
    # up and is in sync again (the leader's view: node 2's metadata cannot
    # ask the leader's offsets, its peer address is a Unix socket); an
    # acks=all write then waits for it
    n2.start()
    wait_for(n1, "node 2 back in sync",
             lambda l: field(l, "Isr") in ("1,2", "2,1") and field(l, "End") == "40")
    out = klog("--bootstrap-server", n1.bootstrap, "produce", "t", "-X", "acks=all", stdin=b"v40\n")
    assert "1 records delivered, 0 failed" in out or "1 record delivered, 0 failed" in out, out
    wait_for(n1, "still in sync", lambda l: field(l, "Isr") in ("1,2", "2,1") and field(l, "End") == "41")
    n2.stop()
    desc = n2.cli("topics", "describe", "t")
    assert "\tStart: 33\tEnd: 41\t" in desc, desc
    got = n2.cli("consume", "t", "--from-beginning", "--exit-at-end", "-q").split()
    assert got == ["v%d" % i for i in range(33, 41)], got
