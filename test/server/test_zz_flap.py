import time
from test_replication_rf import cluster, AdminClient, ck
from kwire import deadline_loop

def test_flap(serve):
    nodes = cluster(serve, ["replica.session.timeout.ms=1500", "controller.quorum.election.timeout.ms=500"])
    t0 = time.time()
    last = None
    for _ in range(100):
        try:
            ids = [AdminClient({"bootstrap.servers": m.bootstrap}).list_topics(timeout=2).controller_id for m in nodes]
        except ck.KafkaException:
            ids = None
        if ids != last:
            print("%.2f %r" % (time.time() - t0, ids))
            last = ids
        time.sleep(0.1)
