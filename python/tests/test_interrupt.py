"""Ctrl-C during a blocking wait: the consumer polls C in short slices, so
KeyboardInterrupt arrives promptly; wakeup() ends a wait from another thread."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import klog

CHILD = textwrap.dedent("""
    import sys, time
    import klog
    k = klog.open(sys.argv[1])
    k.create_topic("quiet", exist_ok=True)
    c = klog.Consumer("quiet", instance=k, auto_offset_reset="earliest", group_id=sys.argv[2] if len(sys.argv) > 2 else None)
    print("ready", flush=True)
    try:
        if len(sys.argv) > 2:
            c.poll(timeout_ms=None)          # one blocking poll, no timeout
        else:
            for rec in c:                    # blocking iteration
                pass
    except KeyboardInterrupt:
        c.close()
        k.close()
        print("interrupted", flush=True)
        sys.exit(0)
    sys.exit(3)
""")


def _run_and_interrupt(data_dir, *extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(klog.__file__))) + \
        os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-c", CHILD, data_dir, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(0.3)   # well inside the blocking wait
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "interrupted" in out
    assert elapsed < 2.0, "took %.2fs to stop" % elapsed


def test_ctrl_c_interrupts_iteration(data_dir):
    _run_and_interrupt(data_dir)


def test_ctrl_c_interrupts_group_poll(data_dir):
    _run_and_interrupt(data_dir, "grp")


def test_wakeup_from_another_thread(inst):
    inst.create_topic("w")
    with klog.Consumer("w", instance=inst, auto_offset_reset="earliest") as c:
        threading.Timer(0.2, c.wakeup).start()
        t0 = time.monotonic()
        assert c.poll(timeout_ms=10000) == {}
        assert time.monotonic() - t0 < 5
