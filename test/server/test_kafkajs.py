"""kafkajs (npm, run with node) against `klog serve`: produce and consume in
a group (none and gzip batches, headers), and the admin calls
(node/kafkajs_check.js holds the checks).  build.sh installs the pinned
kafkajs into test/server/node/node_modules; without node or that install
the tests are skipped and say so.
"""
import os
import shutil
import subprocess

import pytest

NODE = shutil.which("node") or shutil.which("nodejs")
NODE_DIR = os.environ.get("NODE_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
HAVE_KAFKAJS = os.path.isfile(os.path.join(NODE_DIR, "node_modules", "kafkajs", "package.json"))
pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(not HAVE_KAFKAJS, reason="kafkajs is not installed in %s/node_modules (run build.sh)" % NODE_DIR),
]


def run(*args):
    env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
    argv = [NODE, os.path.join(NODE_DIR, "kafkajs_check.js")] + list(args)
    p = subprocess.run(argv, cwd=NODE_DIR, env=env, capture_output=True, timeout=180)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert p.returncode == 0, "`%s` exited %d:\n%s" % (" ".join(argv), p.returncode, out[-6000:])
    assert "kafkajs: ok" in out, out
    return out


def test_kafkajs_produce_consume(server):
    run("roundtrip", server.bootstrap, "from-node", "1000")


def test_kafkajs_admin(server):
    run("admin", server.bootstrap, "node-admin")
