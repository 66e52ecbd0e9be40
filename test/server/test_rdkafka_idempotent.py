"""librdkafka from C with enable.idempotence=true against `klog serve`
(rdk_idempotent.c does the work and the checks; see its comment).

  * plain: 20,000 keyed records to a topic of 4 partitions, acks=all; all
    delivered, each consumed once, in send order per partition, where its
    delivery report put it; the producer got a producer id (InitProducerId);
  * auto-created: the same to a topic that did not exist;
  * retried: every connection goes through a proxy that cuts it right after
    passing on every 7th Produce request (the batch reaches the server, the
    answer never reaches the client), 8 times: librdkafka resends those
    batches with the same producer id and sequence numbers and the server
    must not store them twice.
"""
import os
import subprocess

import pytest

RDK = os.environ.get("RDK_IDEMPOTENT", "")
pytestmark = pytest.mark.skipif(not (RDK and os.access(RDK, os.X_OK)),
                                reason="rdk_idempotent was not built: librdkafka-dev (pkg-config rdkafka) is missing")


def run(server, topic, n, *extra):
    argv = [RDK, server.bootstrap, topic, str(n)] + list(extra)
    p = subprocess.run(argv, capture_output=True, timeout=400)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, "`%s` exited %d:\n%s" % (" ".join(argv), p.returncode, err[-8000:])
    assert "rdk_idempotent: ok" in err
    return err


def test_idempotent_producer(serve):
    server = serve(prepare=[["topics", "create", "idem", "--partitions", "4"]])
    run(server, "idem", 20000)


def test_idempotent_producer_auto_created_topic(server):
    run(server, "idem-auto", 5000)


def test_idempotent_producer_retries_are_not_duplicated(serve):
    server = serve(prepare=[["topics", "create", "idem-cut", "--partitions", "4"]])
    run(server, "idem-cut", 20000, "--cut-every", "7", "--max-cuts", "8")
