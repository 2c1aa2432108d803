"""Shared fixtures for the iok Python tests.

Run with Debian's interpreter against a build:
    PYTHONPATH=<build>/bindings/python /usr/bin/python3 -m pytest tests/python
Real sockets only (inproc, ipc in a temp dir, tcp on 127.0.0.1 with a port
the kernel picked); no sleeps as synchronisation: wait_until() polls a
condition against a generous deadline.
"""
import asyncio
import itertools
import os
import socket
import subprocess
import sys
import time

import pytest

import iok

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

HERE = os.path.dirname(os.path.abspath(__file__))
SANITIZED = bool(os.environ.get("IOK_PY_SANITIZED"))
# Deadlines are generous (slow CI, sanitizers); they bound a hang, they are
# not what a test measures.
DEADLINE = 60.0

_names = itertools.count()


def wait_until(cond, timeout=DEADLINE, what="condition"):
    """Poll cond() until true; fail after timeout seconds."""
    end = time.monotonic() + timeout
    delay = 0.001
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def inproc_url():
    return "inproc://pytest-%d-%d" % (os.getpid(), next(_names))


@pytest.fixture
def ipc_url(tmp_path):
    return "ipc://%s/s%d.ipc" % (tmp_path, next(_names))


@pytest.fixture
def tcp_url():
    return "tcp://127.0.0.1:%d" % free_tcp_port()


@pytest.fixture(params=["inproc", "ipc", "tcp"])
def url(request, tmp_path):
    """One URL per transport."""
    if request.param == "inproc":
        return "inproc://pytest-%d-%d" % (os.getpid(), next(_names))
    if request.param == "ipc":
        return "ipc://%s/s%d.ipc" % (tmp_path, next(_names))
    return "tcp://127.0.0.1:%d" % free_tcp_port()


def have_pattern(name):
    try:
        iok.Socket(name).close()
        return True
    except iok.NotSupported:
        return False


def need_pattern(*names):
    """Skip the test until every named pattern exists in the C core."""
    missing = [n for n in names if not have_pattern(n)]
    return pytest.mark.skipif(bool(missing), reason="pattern(s) %s not in the C core yet "
                              "(iok.Socket raises NotSupported)" % ", ".join(missing))


def wait_connected(sock, n=1):
    wait_until(lambda: sock.getopt("stat:pipes", "uint64") >= n, what="%d connection(s)" % n)


def python_env():
    """Environment for a child interpreter that must import this iok."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(os.path.join(p, "iok"))]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return env


def run_python(code, *args, timeout=DEADLINE, **kw):
    """Run code in a fresh interpreter (the same one running the tests)."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          timeout=timeout, env=python_env(), **kw)


def popen_python(code, *args, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-c", code, *args], env=python_env(), **kw)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """run(coro) on a fresh loop of the parametrised kind (asyncio, uvloop),
    bounded by the suite's deadline."""
    if request.param == "uvloop" and uvloop is None:
        pytest.skip("python3-uvloop not installed")

    def runner(coro):
        loop = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, DEADLINE))
        finally:
            loop.close()
    runner.kind = request.param
    return runner
