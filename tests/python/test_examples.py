"""The Python demo (examples/demo.py, part of the README's Quick start)
runs and prints what it promises: every reply it checks is asserted inside
the demo itself, so a wrong value fails it."""

import os
import shutil
import subprocess
import sys

from conftest import DEADLINE, python_env

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "demo.py")


def test_demo_runs():
    p = subprocess.run([sys.executable, DEMO], capture_output=True, timeout=DEADLINE,
                       env=python_env(), text=True)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "req/rep: b'pong to ping'" in out
    assert "pub/sub: b'weather.paris sunny'" in out
    assert "1000 concurrent requests on one req socket" in out
    if shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server"):
        assert "pipelined over 1 connection(s)" in out
        assert "transaction results: [True, 70, b'70']" in out
