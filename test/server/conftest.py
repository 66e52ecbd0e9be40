"""What every test of `klog serve` through real Kafka clients shares.

The `serve` fixture starts the CLI daemon on a fresh data directory:

    klog -d DIR serve --listen tcp://127.0.0.1:0 [-X key=value ...]

reads the line it prints once it listens ("klog serve: listening on
tcp://127.0.0.1:PORT"), and at the end of the test stops it by its PID
(SIGTERM) and checks that it exited 0.  Every wait is bounded.  The server's
stderr goes to a file beside the data directory; a failing test shows it.

KLOG_BIN (set by test/server/meson.build) is the klog tool under test.
A module whose every test was skipped exits 77, so that meson reports SKIP
(a client genuinely missing on the machine) rather than OK.
"""
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from kwire import deadline_loop

KLOG = os.environ.get("KLOG_BIN", "")
START_TIMEOUT = 30.0     # seconds for `klog serve` to print its listening lines
STOP_TIMEOUT = 30.0      # seconds for it to exit after SIGTERM
LISTEN_RE = re.compile(r"^klog serve: listening on (\S+)\s*$")


def read_values(bootstrap, topic, want, timeout=40, **extra):
    """The values a fresh confluent-kafka group reads from topic, from the
    start, until it has every value of the set want or timeout seconds
    pass; extra: more consumer properties."""
    import confluent_kafka
    conf = {"bootstrap.servers": bootstrap, "group.id": "check-%d" % time.monotonic_ns(),
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    conf.update(extra)
    c = confluent_kafka.Consumer(conf)
    c.subscribe([topic])
    got = set()
    try:
        for _ in deadline_loop(timeout, 0.01):
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.add(m.value())
            if want <= got:
                break
    finally:
        c.close()
    return got


def _raise_nofile():
    """The server holds a thousand connections in one test: lift the soft
    limit on open files to the hard one (in the child, before exec)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """One `klog serve` process on a data directory (kept across restarts)."""

    def __init__(self, workdir, extra=(), listen=("tcp://127.0.0.1:0",), options=(), wrap=()):
        self.workdir = str(workdir)
        self.wrap = list(wrap)         # argv before klog's (ip netns exec NS): exec's, same PID
        self.datadir = os.path.join(self.workdir, "data")
        self.extra = list(extra)
        self.listen = list(listen)
        self.options = list(options)   # more `klog serve` options (--metrics ADDR)
        self.proc = None
        self.urls = []
        self.runs = 0
        self.logs = []     # stderr file of every run, in order

    # -- addresses ------------------------------------------------------------------
    @property
    def tcp(self):
        for u in self.urls:
            if u.startswith("tcp://"):
                return u[len("tcp://"):]
        raise AssertionError("klog serve has no tcp listener: %r" % self.urls)

    def metrics_url(self, seconds=10):
        """The URL of `klog serve --metrics` from its "metrics on" line."""
        for _ in deadline_loop(seconds, 0.02):
            with open(self.out, "r", errors="replace") as f:
                for line in f:
                    if line.startswith("klog serve: metrics on "):
                        return line.split()[-1]
        raise AssertionError("no 'klog serve: metrics on URL' line")

    def addr(self, scheme):
        """host:port of the first listener of scheme ("tls", "tcp")."""
        for u in self.urls:
            if u.startswith(scheme + "://"):
                return u[len(scheme) + 3:]
        raise AssertionError("klog serve has no %s listener: %r" % (scheme, self.urls))

    @property
    def host(self):
        return self.tcp.rsplit(":", 1)[0]

    @property
    def port(self):
        return int(self.tcp.rsplit(":", 1)[1])

    @property
    def bootstrap(self):
        """host:port, what every Kafka client takes as bootstrap.servers."""
        return self.tcp

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    # -- life -----------------------------------------------------------------------
    def start(self, listen=None):
        assert self.proc is None, "klog serve already running"
        if not KLOG or not os.access(KLOG, os.X_OK):
            pytest.fail("KLOG_BIN is not set to the klog tool (run through meson test): %r" % KLOG)
        if listen is not None:
            self.listen = list(listen)
        self.runs += 1
        out = os.path.join(self.workdir, "serve.%d.out" % self.runs)
        self.out = out
        err = os.path.join(self.workdir, "serve.%d.err" % self.runs)
        self.logs.append(err)
        argv = self.wrap + [KLOG, "-d", self.datadir, "serve"]
        for u in self.listen:
            argv += ["--listen", u]
        for kv in self.extra:
            argv += ["-X", kv]
        argv += self.options
        self.argv = argv
        with open(out, "wb") as fo, open(err, "wb") as fe:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe,
                                         preexec_fn=_raise_nofile, close_fds=True)
        self.urls = []
        for _ in deadline_loop(START_TIMEOUT, 0.02):
            with open(out, "r", errors="replace") as f:
                lines = f.read().splitlines()
            urls = [m.group(1) for m in map(LISTEN_RE.match, lines) if m]
            if len(urls) >= len(self.listen):
                self.urls = urls
                return self
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                pytest.fail("`%s` exited with status %d before listening (is `klog serve` built?)\n"
                            "stdout:\n%s\nstderr:\n%s" % (" ".join(argv), rc, "\n".join(lines), self.log()))
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None
        pytest.fail("`%s` printed no 'klog serve: listening on URL' line per listener in %.0f s\nstderr:\n%s"
                    % (" ".join(argv), START_TIMEOUT, self.log()))

    def cli(self, *args, timeout=60):
        """Run `klog -d DATADIR ARGS...` (the server must not be running: the
        tool takes the directory's lock); it must exit 0.  Returns stdout."""
        if not KLOG or not os.access(KLOG, os.X_OK):
            pytest.fail("KLOG_BIN is not set to the klog tool (run through meson test): %r" % KLOG)
        argv = [KLOG, "-d", self.datadir] + list(args)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if p.returncode != 0:
            pytest.fail("`%s` exited %d\n%s" % (" ".join(argv), p.returncode, p.stderr.decode(errors="replace")))
        return p.stdout.decode(errors="replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM by PID; the exit status must be 0.  Returns it."""
        if self.proc is None:
            return 0
        p, self.proc = self.proc, None
        rc = p.poll()
        if rc is not None:
            pytest.fail("klog serve (pid %d) had already exited with status %d before it was stopped\nstderr:\n%s"
                        % (p.pid, rc, self.log()))
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
            pytest.fail("klog serve (pid %d) did not exit within %.0f s of SIGTERM\nstderr:\n%s"
                        % (p.pid, STOP_TIMEOUT, self.log()))
        if rc != 0:
            pytest.fail("klog serve (pid %d) exited with status %d after SIGTERM (want 0)\nstderr:\n%s"
                        % (p.pid, rc, self.log()))
        return rc

    def kill(self):
        """For teardown after a failure: no checks."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def restart(self, same_port=False):
        """Stop (status 0 checked) and start again on the same data directory;
        with same_port, listen on the port it had (clients keep their
        bootstrap address)."""
        listen = None
        if same_port:
            listen = ["tcp://%s" % self.tcp] + [u for u in self.listen if not u.startswith("tcp://")]
        self.stop()
        start_end = time.monotonic() + 20
        while True:
            try:
                return self.start(listen)
            except pytest.fail.Exception as e:
                # the old port may still be held for an instant after the exit
                if not same_port or time.monotonic() > start_end or "in use" not in str(e).lower():
                    raise
                time.sleep(0.2)

    def log(self, tail=12000):
        """The server's stderr (every run), the last `tail` characters."""
        text = ""
        for i, path in enumerate(self.logs):
            try:
                with open(path, "r", errors="replace") as f:
                    text += "--- run %d ---\n%s" % (i + 1, f.read())
            except OSError:
                pass
        return text[-tail:]

    def rss_kib(self):
        """The server's resident memory (VmRSS) in KiB, or None."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, AttributeError):
            return None
        return None


@pytest.fixture
def sockdir():
    """A short-named temporary directory for unix sockets (a socket path
    has at most 107 bytes; tmp_path's are longer)."""
    d = tempfile.mkdtemp(prefix="klsock")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def serve(tmp_path, request):
    """A factory: serve(extra=("key=value", ...), listen=(...)) starts a
    `klog serve` on its own data directory; all are stopped at the end."""
    started = []
    request.node.klog_servers = started

    def make(extra=(), listen=("tcp://127.0.0.1:0",), prepare=(), options=(), wrap=()):
        """prepare: klog CLI commands run on the data directory before the
        server starts, e.g. [["topics", "create", "t", "--partitions", "3"]];
        wrap: a command that execs klog serve (its PID stays the server's)."""
        s = Server(tmp_path / ("srv%d" % len(started)), extra, listen, options, wrap)
        os.makedirs(s.workdir)
        for args in prepare:
            s.cli(*args)
        started.append(s)
        return s.start()

    yield make
    failed = None
    for s in started:
        try:
            s.stop()
        except BaseException as e:  # stop every one, then report the first failure
            s.kill()
            failed = failed or e
    if failed:
        raise failed


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, a server certificate for localhost and a client certificate,
    made once per module by test/tls/mkcerts.sh (MKCERTS, set by meson)."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is not installed (build.sh installs it)")
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["sh", os.environ.get("MKCERTS", ""), str(d)], check=True, timeout=120)
    return d


@pytest.fixture
def server(serve):
    """One `klog serve` with default settings."""
    return serve()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Show the server's stderr with a failing test."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, s in enumerate(getattr(item, "klog_servers", [])):
            rep.sections.append(("klog serve %d stderr (%s)" % (i, s.workdir), s.log() or "(empty)"))


def pytest_sessionfinish(session, exitstatus):
    """Every test skipped: exit 77 (meson's SKIP)."""
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is None or exitstatus != 0:
        return
    st = tr.stats
    if st.get("skipped") and not st.get("passed") and not st.get("failed") and not st.get("error"):
        session.exitstatus = 77
