"""`klog serve --metrics HOST:PORT`: Prometheus text at /metrics and a
liveness answer at /healthz, parsed with the Prometheus client's own
parser (Debian python3-prometheus-client), not by grep.

/metrics holds the instance's families (klog_stats), the server's
(klog_server_stats: connections per listener, requests and their latency
histogram per API, bytes, SASL results, throttles) and the groups', under
klog's names and kafka_exporter's (kafka_consumergroup_lag{consumergroup,
topic,partition}) so that Kafka's Grafana dashboards work.
"""
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover
    text_string_to_metric_families = None

KCAT = shutil.which("kcat")
pytestmark = [pytest.mark.skipif(text_string_to_metric_families is None,
                                 reason="python3-prometheus-client is not installed (build.sh installs it)"),
              pytest.mark.skipif(KCAT is None, reason="kcat is not installed")]


def scrape(url):
    with urllib.request.urlopen(url, timeout=20) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    return fams


def samples(fams, family, sample_name=None, **labels):
    f = fams[family]
    return [s for s in f.samples if (sample_name is None or s.name == sample_name)
            and all(s.labels.get(k) == v for k, v in labels.items())]


def test_metrics_endpoint(serve):
    server = serve(prepare=[["topics", "create", "m", "--partitions", "2"]], options=["--metrics", "127.0.0.1:0"])
    url = server.metrics_url()
    boot = server.bootstrap
    subprocess.run([KCAT, "-b", boot, "-P", "-t", "m", "-K:"], input=b"".join(b"k%d:v%d\n" % (i, i) for i in range(50)),
                   check=True, timeout=60)
    subprocess.run([KCAT, "-b", boot, "-G", "mg", "m", "-e", "-q", "-X", "auto.offset.reset=earliest"],
                   check=True, timeout=60, capture_output=True)
    fams = scrape(url)
    # the server's
    lst = "tcp://" + boot
    assert samples(fams, "klog_server_connections_accepted", listener=lst)[0].value >= 2
    produce = samples(fams, "klog_server_requests", api="Produce")
    assert produce and produce[0].value >= 1
    h = fams["klog_server_request_seconds"]
    assert h.type == "histogram"
    count = samples(fams, "klog_server_request_seconds", "klog_server_request_seconds_count", api="Produce")[0].value
    inf = samples(fams, "klog_server_request_seconds", "klog_server_request_seconds_bucket", api="Produce",
                  le="+Inf")[0].value
    assert count == inf == produce[0].value
    assert samples(fams, "klog_server_received_bytes")[0].value > 50 * 4
    # the instance's (klog_stats) and the groups', also under kafka_exporter's names
    assert any(n.startswith("klog_partition") for n in fams), sorted(fams)
    lag = samples(fams, "kafka_consumergroup_lag", consumergroup="mg", topic="m")
    assert sorted(s.labels["partition"] for s in lag) == ["0", "1"], lag
    assert all(s.value == 0 for s in lag)
    cur = samples(fams, "kafka_consumergroup_current_offset", consumergroup="mg", topic="m")
    assert sum(s.value for s in cur) == 50
    # more records: the lag shows them
    subprocess.run([KCAT, "-b", boot, "-P", "-t", "m", "-p", "0"], input=b"x\ny\nz\n", check=True, timeout=60)
    fams = scrape(url)
    assert samples(fams, "kafka_consumergroup_lag", consumergroup="mg", topic="m", partition="0")[0].value == 3
    assert samples(fams, "klog_group_lag", group="mg", topic="m", partition="0")[0].value == 3
    # /healthz, and anything else
    base = url[:-len("/metrics")]
    with urllib.request.urlopen(base + "/healthz", timeout=20) as r:
        assert r.status == 200 and r.read() == b"ok\n"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/nope", timeout=20)
    assert e.value.code == 404
