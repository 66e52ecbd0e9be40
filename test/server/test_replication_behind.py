"""A follower that comes back behind its leader's log start (issue 16):
two `klog serve` nodes replicate a topic; the follower is stopped, the
leader takes more records and DeleteRecords moves its log start past
everything the follower holds; the follower restarts, starts its log again
at the leader's start (Kafka's truncateFullyAndStartAt) and catches up:
the same start, the same end, the same records.  Before that, it asked
below the leader's start again and again and never caught up.  Servers
are stopped by PID; every wait is bounded.
"""
from test_replication_cli import field, klog, two_nodes, wait_for


def test_follower_behind_the_leaders_log_start_starts_again_there(serve, sockdir):
    n1, n2 = two_nodes(serve, sockdir)

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
