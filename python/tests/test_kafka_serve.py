"""klog.kafka with bootstrap_servers=: kafka-python itself, against a
`klog serve` started here, running the program test_kafka_compat.py runs
over a directory - with the same results.

The server: ``klog -d DIR serve --listen tcp://127.0.0.1:0`` (the port the
kernel picks), its address read from the line it prints
("klog serve: listening on tcp://HOST:PORT"), stopped by its PID (SIGTERM,
then SIGKILL if it has not exited within 30 s).  KLOG_BIN is the klog tool
(meson sets it), else KLOG_BUILD_DIR/tools/klog.
"""

import os
import re
import signal
import subprocess
import time

import pytest

import klog.kafka as kk

import kafka_program

kafka_python = pytest.importorskip("kafka", reason="python3-kafka is not installed")

LISTEN_RE = re.compile(r"^klog serve: listening on tcp://(\S+)\s*$", re.M)
START_S = 30.0
STOP_S = 30.0


def _klog_bin():
    path = os.environ.get("KLOG_BIN")
    if not path and os.environ.get("KLOG_BUILD_DIR"):
        path = os.path.join(os.environ["KLOG_BUILD_DIR"], "tools", "klog")
    if not path or not os.access(path, os.X_OK):
        pytest.skip("the klog tool is not built (KLOG_BIN / KLOG_BUILD_DIR)")
    return path


@pytest.fixture
def serve(tmp_path):
    """A `klog serve` on a fresh directory: yields host:port."""
    out_path = tmp_path / "serve.out"
    err_path = tmp_path / "serve.err"
    argv = [_klog_bin(), "-d", str(tmp_path / "data"), "serve", "--listen", "tcp://127.0.0.1:0"]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, close_fds=True)
    try:
        deadline = time.monotonic() + START_S
        address = None
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(out_path.read_text(errors="replace"))
            if m:
                address = m.group(1)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        if address is None:
            pytest.fail("`%s` did not say where it listens (exit %r)\nstderr:\n%s"
                        % (" ".join(argv), proc.poll(), err_path.read_text(errors="replace")))
        yield address
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_S)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(STOP_S)
                pytest.fail("klog serve did not stop on SIGTERM within %.0f s" % STOP_S)
    assert proc.returncode == 0, "klog serve exited %d\nstderr:\n%s" % (
        proc.returncode, err_path.read_text(errors="replace"))


def test_bootstrap_servers_is_kafka_python(serve):
    p = kk.KafkaProducer(bootstrap_servers=serve)
    c = kk.KafkaConsumer(bootstrap_servers=serve)
    a = kk.KafkaAdminClient(bootstrap_servers=serve)
    try:
        assert type(p) is kafka_python.KafkaProducer
        assert type(c) is kafka_python.KafkaConsumer
        assert type(a) is kafka_python.KafkaAdminClient
    finally:
        p.close()
        c.close()
        a.close()


def test_same_program_same_results(serve, tmp_path):
    """The kafka-python program, its import line changed to klog.kafka,
    sees the same over `klog serve` as over a local directory."""
    remote = kafka_program.run(kk, bootstrap_servers=serve)
    local = kafka_program.run(kk, path=str(tmp_path / "local"))
    assert remote == local
    assert remote["second_create"] == "TopicAlreadyExistsError"
    assert len(remote["records"]) == kafka_program.N and remote["committed_is_end"]


def test_network_errors_are_the_same_classes(serve):
    """An error from the server through kafka-python is caught by the
    klog.kafka.errors name the local directory raises too."""
    a = kk.KafkaAdminClient(bootstrap_servers=serve)
    try:
        a.create_topics([kk.NewTopic("dup", 1, 1)])
        with pytest.raises(kk.errors.TopicAlreadyExistsError):
            a.create_topics([kk.NewTopic("dup", 1, 1)])
        with pytest.raises(kk.errors.InvalidReplicationFactorError):
            a.create_topics([kk.NewTopic("rf3", 1, 3)])
    finally:
        a.close()
