"""Issue 9, item 5 (typing and discoverability) and the units of item 1/3
on iok's own sockets: inspect.signature on every public callable, type
stubs that pass mypy --strict on the README's Python examples, fileno()
and iok.Poller, pyzmq's string and multipart helpers, the "iok" logger."""
import inspect
import logging
import os
import re
import shutil
import subprocess
import sys

import pytest

import iok
import iok.redis as ir
from conftest import free_tcp_port, wait_until
from redis_fixtures import need_redis, redis_module_server, redis_server  # noqa: F401

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _public_callables():
    for mod in (iok, ir):
        for n in mod.__all__:
            o = getattr(mod, n)
            if not callable(o):
                continue
            if not (isinstance(o, type) and issubclass(o, BaseException)):
                yield "%s.%s" % (mod.__name__, n), o
            if isinstance(o, type) and not issubclass(o, BaseException):
                for m in dir(o):
                    if m.startswith("_") and m != "__init__":
                        continue
                    a = getattr(o, m)
                    if callable(a) and not isinstance(a, type):
                        yield "%s.%s.%s" % (mod.__name__, n, m), a


def test_signatures():
    bad = []
    for name, obj in _public_callables():
        try:
            inspect.signature(obj)
        except (TypeError, ValueError):
            bad.append(name)
    assert not bad, bad


def test_stubs_are_shipped():
    pkg = os.path.dirname(iok.__file__)
    for f in ("py.typed", "__init__.pyi", os.path.join("redis", "__init__.pyi"),
              os.path.join("redis", "asyncio.pyi")):
        assert os.path.exists(os.path.join(pkg, f)), f


def _readme_examples():
    out = []
    for path in (os.path.join(ROOT, "bindings", "python", "README.md"),
                 os.path.join(ROOT, "README.md")):
        with open(path) as f:
            text = f.read()
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            if "import iok" in block and "await " not in block.split("async def", 1)[0]:
                out.append(block)
    return out


def test_readme_examples_pass_mypy_strict(tmp_path):
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.skip("mypy is not installed (apt: mypy)")
    examples = _readme_examples()
    assert len(examples) >= 4
    files = []
    for i, code in enumerate(examples):
        p = tmp_path / ("example_%d.py" % i)
        p.write_text(code)
        files.append(str(p))
    pkg_root = os.path.dirname(os.path.dirname(iok.__file__))
    env = dict(os.environ, MYPYPATH=pkg_root)
    p = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                        "--cache-dir", str(tmp_path / "cache"), *files],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr


def test_fileno_and_poller():
    with iok.Pair(listen="inproc://poller") as a, iok.Pair(dial="inproc://poller") as b:
        poller = iok.Poller()
        poller.register(a, iok.POLLIN | iok.POLLOUT)
        poller.register(b, iok.POLLIN)
        assert a.fileno() == a.recv_fd
        ready = dict(poller.poll(0))
        assert ready[a] == iok.POLLOUT and b not in ready   # writable, nothing to read
        poller.modify(a, iok.POLLIN)
        b.send_string("héllo")
        ready = dict(poller.poll(30000))
        assert ready[a] == iok.POLLIN
        assert a.recv_string() == "héllo"
        a.send_multipart([b"one", "two", b""])
        assert b.recv_multipart() == [b"one", b"two", b""]
        a.send(b"\x00\x00\x00\x09short")
        with pytest.raises(iok.ProtocolError):
            b.recv_multipart()
        with pytest.raises(TypeError):
            a.send_string(b"bytes")
        poller.unregister(b)
        assert dict(poller.poll(0)).get(b) is None


def test_socket_timeouts_units():
    with iok.Pull() as s:
        s.recv_timeout = None            # infinite, no confusing error
        assert s.recv_timeout == -1
        with pytest.raises(ValueError, match="milliseconds"):
            s.recv_timeout = 1.5
        s.recv_timeout = 20
        with pytest.raises(iok.Timeout):
            s.recv()
        with pytest.raises(TimeoutError):
            s.recv()


@need_redis
def test_logging_records_connects_and_failures(redis_server, caplog):
    caplog.set_level(logging.INFO, logger="iok")
    with ir.Client(redis_server.url(), socket_timeout=30.0):
        pass
    port = free_tcp_port()
    with pytest.raises(ir.ConnectionError):
        ir.Client("redis://127.0.0.1:%d" % port)
    msgs = [r.getMessage() for r in caplog.records if r.name == "iok"]
    assert any(m.startswith("connected to redis://127.0.0.1:%d" % redis_server.port)
               for m in msgs), msgs
    assert any("failed" in m and "127.0.0.1:%d" % port in m for m in msgs), msgs


def _iok_records(caplog):
    iok._watch.tick()  # what the watcher thread does every INTERVAL
    return [r for r in caplog.records if r.name == "iok"]


def test_logging_records_sp_connects_drops_reconnects_refusals(caplog, inproc_url):
    """Logger "iok": connects, drops, reconnects and refused (oversize)
    messages of plain sockets, from the counters the kernel keeps (no
    Python code ever runs on the kernel thread)."""
    caplog.set_level(logging.INFO, logger="iok")
    port = free_tcp_port()
    url = "tcp://127.0.0.1:%d" % port
    pull = iok.Pull(listen=url, recv_max_size=1000, recv_timeout=30000)
    push = iok.Push(dial=url, send_timeout=30000)
    try:
        P, Q = type(push).__name__, type(pull).__name__  # Push0, Pull0
        wait_until(lambda: pull.stats["pipes"] == 1 and push.stats["pipes"] == 1, what="connected")
        msgs = [r.getMessage() for r in _iok_records(caplog)]
        assert any(m.startswith("%s dial %s: connected (1 connection)" % (P, url)) for m in msgs), msgs
        assert any(m.startswith("%s listen %s: connected" % (Q, url)) for m in msgs), msgs

        # refused at the receiver (the sender cannot know the limit on
        # tcp), which drops that connection, as nng; the dialer redials
        push.send(b"x" * 5000)
        wait_until(lambda: pull.stats["rx-oversize"] == 1 and push.stats["reconnects"] == 1
                   and push.stats["pipes"] == 1 and pull.stats["pipes"] == 1
                   and pull.stats["pipes-opened"] == 2, what="the oversize drop and the reconnect")
        recs = _iok_records(caplog)
        msgs = [r.getMessage() for r in recs]
        refused = [r for r in recs if "over recv_max_size refused" in r.getMessage()]
        assert len(refused) == 1 and refused[0].levelno == logging.WARNING, msgs
        assert refused[0].getMessage().startswith("%s listen %s: 1 received message" % (Q, url))
        dropped = [r for r in recs if r.getMessage().startswith("%s dial %s: 1 connection dropped" % (P, url))]
        assert len(dropped) == 1 and dropped[0].levelno == logging.WARNING, msgs
        assert any(m.startswith("%s dial %s: reconnected (1)" % (P, url)) for m in msgs), msgs
        n = len(caplog.records)
        assert _iok_records(caplog) and len(caplog.records) == n  # nothing new: nothing logged
    finally:
        push.close()
        pull.close()

    # refused at an inproc sender, which knows the peer's limit
    caplog.clear()
    with iok.Pull(listen=inproc_url, recv_max_size=1000) as p2, \
            iok.Push(dial=inproc_url, send_timeout=30000) as s2:
        wait_until(lambda: s2.stats["pipes"] == 1, what="inproc connected")
        with pytest.raises(iok.MessageTooLarge):
            s2.send(b"y" * 2000)
        assert s2.stats["tx-oversize"] == 1
        msgs = [r.getMessage() for r in _iok_records(caplog)]
        assert any("1 message refused at the sender" in m for m in msgs), msgs
        assert p2.stats["rx-oversize"] == 0


def test_logging_secrets_never_logged(caplog):
    """A URL's password never reaches a log record."""
    caplog.set_level(logging.INFO, logger="iok")
    port = free_tcp_port()
    with iok.Pull(listen="tcp://127.0.0.1:%d" % port), \
            iok.Push(dial="tcp://user:s3cret@127.0.0.1:%d" % port) as push:
        wait_until(lambda: push.stats["pipes"] == 1, what="connected")
        text = " ".join(r.getMessage() for r in _iok_records(caplog))
    assert "s3cret" not in text


@need_redis
def test_logging_records_redis_refused_drop_reconnect(redis_server, caplog):
    """iok.redis: a reply refused as over recv_max_size, and a connection
    the server dropped then redialled, are logged as they happen (the client
    idle), with the URL."""
    caplog.set_level(logging.INFO, logger="iok")
    url = redis_server.url(name="logdrop")
    with ir.Client(url, socket_timeout=30.0, recv_max_size=1000,
                   reconnect_time_max=100) as r:
        r.set("biglog", b"b" * 5000)
        with pytest.raises(iok.MessageTooLarge):
            r.get("biglog")
        msgs = [m.getMessage() for m in _iok_records(caplog)]
        assert any(m.startswith("iok.redis dial %s: 1 received message over recv_max_size refused"
                                % url) for m in msgs), msgs
        assert sum("connected to %s" % url in m for m in msgs) == 1, msgs  # no duplicate
        with redis_server.admin() as a:
            (mine,) = a.clients("logdrop")
            a("CLIENT", "KILL", "ID", mine["id"])
        wait_until(lambda: r.stats["reconnects"] == 1 and r.stats["pipes"] == 1, what="redial")
        msgs = [m.getMessage() for m in _iok_records(caplog)]
        assert any(m.startswith("iok.redis dial %s: 1 connection dropped" % url) for m in msgs), msgs
        assert any(m.startswith("iok.redis dial %s: reconnected (1)" % url) for m in msgs), msgs
        with pytest.raises(iok.MessageTooLarge):  # still the same, still usable
            r.get("biglog")
        assert r.ping() is True
