"""The debug endpoint answers while the Python main thread spins holding the
GIL: tools/iok-debug (the C client) asks a child interpreter for its stats,
its requests in flight (a req whose rep never answers) and its stacks (a
Python traceback naming the spinning function, read without the GIL, and
the C stack).  Garbage on the endpoint gets an error, never a crash."""
import os
import socket
import subprocess

import pytest

import iok
from conftest import DEADLINE, popen_python, wait_until

# <build>/bindings/python/iok/__init__.py -> <build>/tools/iok-debug
BUILD = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(iok.__file__)), "..", "..", ".."))
IOK_DEBUG = os.environ.get("IOK_DEBUG_TOOL", os.path.join(BUILD, "tools", "iok-debug"))
need_tool = pytest.mark.skipif(not os.access(IOK_DEBUG, os.X_OK),
                               reason="tools/iok-debug not built next to this iok")

# A child that leaves one request unanswered, then spins in pure Python
# (holding the GIL) until killed.
SPINNER = r"""
import os, sys
import iok
how, path, url = sys.argv[1:4]
if how == "call":
    iok.debug_listen(path)
rep = iok.Rep(listen=url)
req = iok.Req(dial=url)
req.send(b"GET /slow\x00\x01")
rep.recv()                      # it arrived; never answered
iok.counter("spins started").inc(7)
iok.marker("about to spin")
print("spinning", flush=True)

def busy_spin_holding_gil():
    n = 0
    while True:
        n += 1

busy_spin_holding_gil()
"""


def iok_debug(path, cmd):
    # The tool is a program of its own: under ASan it carries its own
    # runtime, which the interpreter's preloaded one would clash with.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    r = subprocess.run([IOK_DEBUG, path, cmd], capture_output=True, timeout=DEADLINE, env=env)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


@pytest.fixture(params=["env", "call"])
def spinner(request, tmp_path, monkeypatch):
    path = str(tmp_path / "dbg.sock")
    url = "ipc://%s/rr.ipc" % tmp_path
    if request.param == "env":
        monkeypatch.setenv("IOK_DEBUG", path)  # the child's environment
    p = popen_python(SPINNER, request.param, path, url)
    try:
        line = p.stdout.readline()
        assert line == b"spinning\n", p.stderr.read()
        yield path, url
    finally:
        p.kill()
        p.wait()


@need_tool
def test_answers_while_main_thread_spins(spinner):
    path, url = spinner
    rc, out, err = iok_debug(path, "stats")
    assert rc == 0, err
    assert "pattern=req0" in out and "inflight=1 " in out
    assert "pattern=rep0" in out

    rc, out, err = iok_debug(path, "inflight")
    assert rc == 0, err
    lines = [l for l in out.splitlines() if l.startswith("socket=")]
    assert len(lines) == 1, out
    assert "pattern=req0" in lines[0] and url in lines[0]
    assert 'bytes="GET /slow\\x00\\x01"' in lines[0]
    assert "age_ms=" in lines[0]

    rc, out, err = iok_debug(path, "peers")
    assert rc == 0, err
    assert "state=connected" in out and "inflight=1" in out

    rc, out, err = iok_debug(path, "stats")
    assert 'counter="spins started" value=7' in out

    rc, out, err = iok_debug(path, "markers")
    assert rc == 0, err
    assert 'marker="about to spin" passes=1 last_thread=' in out

    rc, out, err = iok_debug(path, "stack")
    assert rc == 0, err
    # faulthandler's dump of every thread, then the C stack.
    assert "busy_spin_holding_gil" in out, out
    assert "Current thread" in out or "Thread 0x" in out, out
    assert "C stack of the main thread" in out
    assert out.index("busy_spin_holding_gil") < out.index("C stack of the main thread")

    # Still spinning, still answering.
    rc, out, err = iok_debug(path, "stack")
    assert rc == 0 and "busy_spin_holding_gil" in out


@need_tool
def test_garbage_gets_an_error(tmp_path):
    path = str(tmp_path / "g.sock")
    iok.debug_listen(path)
    try:
        with pytest.raises(iok.Busy):
            iok.debug_listen(path)
        for junk in (b"\xff\xfe\x00\n", b"x" * 5000, b"drop tables\n"):
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            try:
                s.sendall(junk)
            except OSError:
                pass
            s.settimeout(DEADLINE)
            data = b""
            try:
                while True:
                    d = s.recv(4096)
                    if not d:
                        break
                    data += d
            except ConnectionResetError:
                pass
            s.close()
            assert data.startswith(b"error: ") and data.endswith(b"\n.\n"), data
        rc, out, err = iok_debug(path, "nonsense")
        assert rc == 1 and out.startswith("error: unknown command")
        rc, out, err = iok_debug(path, "help")
        assert rc == 0 and "inflight" in out
    finally:
        iok.debug_close()
    assert not os.path.exists(path)


def test_taken_path_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("not a socket")
    with pytest.raises(iok.AddressInUse):
        iok.debug_listen(str(path))
    assert path.read_text() == "not a socket"


def test_stats_dict_and_socket_stats(inproc_url):
    with iok.Rep(listen=inproc_url) as rep, iok.Req(dial=inproc_url) as req:
        for _ in range(20):
            req.send(b"ping")
            rep.send(rep.recv())
            assert req.recv() == b"ping"
        st = req.stats
        assert st["requests"] == 20 and st["replies"] == 20
        assert st["latency-count"] == 20
        assert 0 < st["latency-p50"] <= st["latency-p99"] <= st["latency-max"]
        every = iok.stats()
        mine = every[req.id]
        assert mine["pattern"] == "req0" and mine["tx-msgs"] == 20
        assert mine["latency_count"] == 20 and mine["latency_p50_us"] > 0
        assert mine["send_queue"].endswith("/1024")
        assert every[rep.id]["pattern"] == "rep0"
        # The kernel loop's spin: every spin ended one of three ways.
        k = every["kernel"]
        assert k["spin_us"] >= 0
        assert k["spins"] == k["spin-caught"] + k["spin-io"] + k["spin-timed-out"]
        assert k["wakeups"] > 0  # the first command of all woke a sleeping loop
        assert k["posted-awake"] >= 0
    wait_until(lambda: req.id not in iok.stats(), what="closed socket gone from stats")


def test_counters_timers_markers():
    import threading
    c = iok.counter("py test counter")
    before = c.value

    def work():
        for _ in range(10000):
            c.inc()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c.inc(5)
    assert c.value == before + 40005
    assert iok.stats()["counters"]["py test counter"] == before + 40005
    with pytest.raises(ValueError):
        iok.counter("")
    with pytest.raises(ValueError):
        iok.marker("x" * 64)
    with pytest.raises(TypeError):
        c.inc(1, 2)

    t = iok.timer("py test timer")
    t.record(2000)
    assert iok.stats()["timers"]["py test timer"]["count"] >= 1

    iok.marker("py plain")
    with iok.marker("py section"):
        pass
    m = iok.markers()
    assert m["py plain"]["passes"] >= 1 and "left" not in m["py plain"]
    assert m["py section"]["left"] >= 1
    assert m["py section"]["last_thread"] == threading.get_native_id()


@need_tool
def test_forked_child_serves_its_own_stack(tmp_path):
    parent_path = str(tmp_path / "parent.sock")
    child_path = str(tmp_path / "child.sock")
    iok.debug_listen(parent_path)
    try:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(r)
                iok.debug_listen(child_path)

                # The pipe is written from inside the function, so any
                # stack taken after the parent reads it names the function.
                def child_spins_here():
                    os.write(w, b"k")
                    while True:
                        pass
                child_spins_here()
            finally:
                os._exit(1)
        os.close(w)
        try:
            assert os.read(r, 1) == b"k"
            rc, out, err = iok_debug(child_path, "stack")
            assert rc == 0, err
            assert "child_spins_here" in out, out
            # The parent's endpoint still answers for the parent.
            rc, out, err = iok_debug(parent_path, "stack")
            assert rc == 0, err
            assert "child_spins_here" not in out
            assert "test_forked_child_serves_its_own_stack" in out
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(r)
    finally:
        iok.debug_close()
