"""iok.redis without unbounded waits, with redis-py's errors (issue 9,
items 1, 3, 6): connects and commands bounded, failing fast while there is
no connection, sessions and blocking commands on connections of their own,
Ctrl+C during a connect, errors that say what happened (and never the
password), the same class sync and asyncio, and fork with a parent thread
busy on the client.  Real redis-server; hostile servers on raw sockets.
"""
import asyncio
import builtins
import os
import signal
import socket
import threading

import pytest

import iok
import iok.redis as ir
from conftest import DEADLINE, free_tcp_port, wait_until
from redis_fixtures import FakeServer, fresh_redis, need_redis, redis_module_server, \
    redis_server  # noqa: F401

T = 30.0  # seconds: bounds a hang, never measured


class SilentServer:
    """Accepts TCP connections (the kernel's backlog does) and never says
    a word."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.url = "redis://127.0.0.1:%d" % self.port

    def close(self):
        self.ls.close()


@pytest.fixture
def silent():
    s = SilentServer()
    yield s
    s.close()


def blocked_clients(srv, cmd):
    with srv.admin() as a:
        return [c for c in a.clients() if c.get("cmd") == cmd]


# ------------------------------------------------ 1. no unbounded wait

def test_defaults_are_bounded_and_in_seconds():
    assert ir.DEFAULT_SOCKET_TIMEOUT == 30.0 and ir.DEFAULT_CONNECT_TIMEOUT == 5.0
    r = ir.Client("redis://127.0.0.1:1", wait=None)
    assert (r.timeout, r.connect_timeout) == (30.0, 5.0)
    r = ir.Client("redis://127.0.0.1:1", wait=None, socket_timeout=1.5, socket_connect_timeout=2)
    assert (r.timeout, r.connect_timeout) == (1.5, 2.0)
    with pytest.raises(ValueError, match="seconds"):
        ir.Client("redis://127.0.0.1:1", wait=None, socket_timeout=-1)


def test_refused_fails_at_once_even_without_timeouts(run):
    # No timeout at all: only an immediate error can end these calls.
    url = "redis://127.0.0.1:%d" % free_tcp_port()
    with pytest.raises(ir.ConnectionError, match="127.0.0.1") as ei:
        ir.Client(url, socket_timeout=None, socket_connect_timeout=None)
    assert isinstance(ei.value, builtins.ConnectionError)
    assert isinstance(ei.value, iok.ConnectionRefused)
    # redis-py's way: the constructor does not connect, each command tries.
    r = ir.Redis(url, socket_timeout=None, socket_connect_timeout=None)
    for _ in range(3):
        with pytest.raises(ir.ConnectionError):
            r.get("k")

    async def main():
        a = ir.asyncio.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=None)
        for _ in range(3):
            with pytest.raises(ir.ConnectionError):
                await a.get("k")
        await a.aclose()
    run(main())


@need_redis
def test_lost_connection_fails_fast_then_recovers(fresh_redis):
    srv = fresh_redis
    r = ir.Client(srv.url(), socket_timeout=2.0, reconnect_time_max=100)
    assert r.set("k", "v") is True
    srv.kill()
    wait_until(lambda: r.stats["pipes"] == 0, what="iok to see the drop")
    # The first command may wait for its timeout; every one after it fails
    # at once with ConnectionError, never a TimeoutError (a wait).
    with pytest.raises((ir.ConnectionError, ir.TimeoutError)):
        r.get("k")
    for _ in range(20):
        with pytest.raises(ir.ConnectionError) as ei:
            r.get("k")
        assert not isinstance(ei.value, builtins.TimeoutError)
        assert srv.url() in str(ei.value)
    srv.start()
    wait_until(lambda: _ok(r.ping), what="the background reconnection")
    assert r.set("k", "v2") is True
    r.close()


def _ok(f):
    try:
        return f()
    except ir.ConnectionError:
        return False


def test_connect_to_silent_server_is_bounded(silent, run):
    with pytest.raises(ir.TimeoutError, match="socket_connect_timeout") as ei:
        ir.Client(silent.url, socket_connect_timeout=0.2)
    assert isinstance(ei.value, builtins.TimeoutError) and isinstance(ei.value, iok.Timeout)

    async def main():
        # The event loop keeps running while the client connects.
        r = ir.AsyncClient(silent.url, socket_connect_timeout=None)
        ticks = 0
        task = asyncio.ensure_future(r.ping())
        while ticks < 50:
            await asyncio.sleep(0)
            ticks += 1
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r.close()
        r = ir.AsyncClient(silent.url, socket_connect_timeout=0.2)
        with pytest.raises(ir.TimeoutError):
            await r.get("k")
        r.close()
    run(main())


def test_ctrl_c_interrupts_a_connect(silent):
    # A connect with no limit, interrupted by SIGINT (Ctrl+C) from another
    # thread once the server has the connection.
    ls = silent.ls
    ls.settimeout(DEADLINE)

    def interrupt():
        c, _ = ls.accept()  # the client is connecting (and will wait for ever)
        os.kill(os.getpid(), signal.SIGINT)
        c.close()
    t = threading.Thread(target=interrupt)
    t.start()
    with pytest.raises(KeyboardInterrupt):
        ir.Client(silent.url, socket_connect_timeout=None)
    t.join()


def test_req_recv_with_nothing_outstanding():
    with iok.Req(dial="inproc://nothing-outstanding") as req:
        with pytest.raises(iok.BadState, match="no request outstanding"):
            req.recv()
        with pytest.raises(iok.BadState):
            req.recv_msg()
        req.send(b"x")
        with pytest.raises(iok.Timeout):
            req.recv(timeout=1)  # outstanding now: it waits (here: 1 ms)


@need_redis
def test_session_has_its_own_connection(redis_server, run):
    with ir.Client(redis_server.url(), socket_timeout=T) as r:
        s = r.session()
        s.watch("k")
        assert r.ping() is True          # the client's connection is free
        s2 = r.session()
        s2.watch("k")                    # and sessions do not wait for each other
        assert s2.get("k") == r.get("k")
        s.close()
        s2.close()
        # redis-py's watch/multi/execute on a pipeline
        r.set("bal", 10)
        with r.pipeline() as p:
            p.watch("bal")
            v = int(p.get("bal"))
            assert r.ping() is True
            p.multi()
            p.set("bal", v + 1)
            assert p.execute() == [True]
        with r.pipeline() as p:
            p.watch("bal")
            r.set("bal", 0)              # changed by someone else
            p.multi()
            p.set("bal", 99)
            with pytest.raises(ir.WatchError):
                p.execute()
        assert r.get("bal") == b"0"

    async def main():
        async with ir.AsyncClient(redis_server.url(), socket_timeout=T) as r:
            async with r.session() as s:
                await s.watch("k")
                assert await r.ping() is True
            async with r.pipeline(transaction=True) as p:
                await p.watch("bal")
                v = int(await p.get("bal"))
                assert await r.ping() is True
                p.multi()
                p.set("bal", v + 5)
                assert await p.execute() == [True]
            assert await r.get("bal") == b"5"
    run(main())


@need_redis
def test_blocking_commands_have_their_own_connections(redis_server, run):
    with ir.Client(redis_server.url(), socket_timeout=T) as r:
        r.delete("q1", "q2")
        got = {}

        def pop(k):
            got[k] = r.blpop(k, 0)
        ts = [threading.Thread(target=pop, args=(k,)) for k in ("q1", "q2")]
        for t in ts:
            t.start()
        wait_until(lambda: len(blocked_clients(redis_server, "blpop")) == 2,
                   what="two BLPOPs blocked")
        assert r.ping() is True          # neither stalls the pipelined connection
        r.rpush("q2", "b")
        r.rpush("q1", "a")
        for t in ts:
            t.join(DEADLINE)
        assert got == {"q1": (b"q1", b"a"), "q2": (b"q2", b"b")}
        assert r.blpop("q1", 0.05) is None   # a timeout in seconds, as redis-py
        assert r.execute("BLPOP", "q1", 0.05) is None

    async def main():
        async with ir.AsyncClient(redis_server.url(), socket_timeout=T) as r:
            await r.delete("cq")
            task = asyncio.ensure_future(r.blpop("cq", 0))
            while not blocked_clients(redis_server, "blpop"):
                await asyncio.sleep(0.01)
            assert await r.ping() is True
            # Cancelled: its connection is closed, nothing waits behind it,
            # and it takes no value pushed later.
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await r.ping() is True
            while blocked_clients(redis_server, "blpop"):
                await asyncio.sleep(0.01)
            await r.rpush("cq", "v")
            assert await r.lpop("cq") == b"v"
            xid = await r.xadd("cs", {"f": "v"})
            got = await r.xread({"cs": "0"}, block=100)
            assert got == [[b"cs", [(xid, {b"f": b"v"})]]]
    run(main())


# ------------------------------------------------------------ 3. errors

def test_builtin_bases():
    assert issubclass(iok.Timeout, TimeoutError)
    for c in (iok.ConnectionRefused, iok.ConnectionReset, iok.ConnectionAborted,
              iok.ConnectionShutdown):
        assert issubclass(c, ConnectionError)
    assert issubclass(ir.ConnectionError, ir.RedisError)
    assert issubclass(ir.ConnectionError, builtins.ConnectionError)
    assert issubclass(ir.TimeoutError, ir.RedisError)
    assert issubclass(ir.TimeoutError, builtins.TimeoutError)
    assert issubclass(ir.AuthenticationError, ir.ConnectionError)
    assert issubclass(ir.BusyLoadingError, ir.ConnectionError)
    for c in (ir.ResponseError, ir.DataError, ir.InvalidResponse, ir.PubSubError,
              ir.WatchError, ir.LockError):
        assert issubclass(c, ir.RedisError)
    for c in (ir.NoScriptError, ir.ExecAbortError, ir.ReadOnlyError):
        assert issubclass(c, ir.ResponseError)
    assert issubclass(ir.LockNotOwnedError, ir.LockError)
    m = ir.asyncio
    assert (m.RedisError, m.ConnectionError, m.TimeoutError) == \
        (ir.RedisError, ir.ConnectionError, ir.TimeoutError)


@need_redis
def test_messages_carry_the_servers_words(redis_server):
    with pytest.raises(ir.ResponseError, match="DB index is out of range") as ei:
        ir.Client(redis_server.url() + "/99", socket_timeout=T)
    assert "/99" in str(ei.value)
    with pytest.raises(TypeError, match="no_such_option"):
        ir.Client(redis_server.url(), no_such_option=1)
    with pytest.raises(TypeError, match="no_such_option"):
        iok.Pull(no_such_option=1)
    with ir.Client(redis_server.url(), socket_timeout=T) as r:
        r.set("str", "x")
        with pytest.raises(ir.ResponseError, match="WRONGTYPE"):
            r.lpush("str", 1)
        ps = r.pubsub()
        with pytest.raises(TypeError):
            ps.subscribe(123)
        ps.close()
    with iok.Sub() as s:
        with pytest.raises(TypeError):
            s.subscribe(5)
        # iok's own errors say which option, which URL (never a password)
        with pytest.raises(iok.InvalidArgument, match="recv_buffer = -1"):
            s.recv_buffer = -1  # 0 is nng's "unbuffered", valid
        with pytest.raises(iok.AddressInvalid, match="tcp://no-port"):
            s.dial("tcp://no-port")
    with iok.Db() as db:
        with pytest.raises(iok.ConnectionRefused) as ei:
            db.dial("redis://u:pa55@127.0.0.1:%d" % free_tcp_port(), block=True)
        assert "pa55" not in str(ei.value) and "127.0.0.1" in str(ei.value)


@need_redis
def test_secrets_never_shown(fresh_redis, run):
    srv = fresh_redis
    with srv.admin() as a:
        a("CONFIG", "SET", "requirepass", "s3cret")
    srv.password = "s3cret"
    good = "redis://default:s3cret@127.0.0.1:%d" % srv.port
    bad = "redis://default:wr0ng@127.0.0.1:%d" % srv.port
    with ir.Client(good, socket_timeout=T) as r:
        assert "s3cret" not in repr(r) and "s3cret" not in str(r) and "s3cret" not in r.url
        assert r.ping() is True
    r = ir.Client(host="127.0.0.1", port=srv.port, password="s3cret", socket_timeout=T)
    assert "s3cret" not in repr(r) and r.ping() is True
    r.close()
    r = ir.Redis(host="127.0.0.1", port=srv.port, username="default", password="s3cret",
                 socket_timeout=T)
    assert "s3cret" not in repr(r) and r.ping() is True
    r.close()
    with pytest.raises(ir.AuthenticationError) as ei:
        ir.Client(host="127.0.0.1", port=srv.port, username="nobody", password="s3cret",
                  socket_timeout=T)
    assert "s3cret" not in str(ei.value) and "s3cret" not in repr(ei.value)
    with pytest.raises(ir.AuthenticationError, match="WRONGPASS") as ei:
        ir.Client(bad, socket_timeout=T)
    assert isinstance(ei.value, iok.PeerAuthError)
    assert "wr0ng" not in str(ei.value) and "wr0ng" not in repr(ei.value)

    async def main():
        with pytest.raises(ir.AuthenticationError, match="WRONGPASS") as ei:
            await ir.AsyncClient(bad, socket_timeout=T).initialize()
        assert "wr0ng" not in str(ei.value)
    run(main())


def _same_class_sync_async(url, run, cmd=("PING",)):
    """The class of the error from Client and from AsyncClient."""
    classes = []
    try:
        with ir.Client(url, socket_timeout=T, reconnect_time_max=50) as r:
            r.execute(*cmd)
    except ir.RedisError as e:
        classes.append(type(e))

    async def main():
        try:
            async with ir.AsyncClient(url, socket_timeout=T, reconnect_time_max=50) as r:
                await r.execute(*cmd)
        except ir.RedisError as e:
            classes.append(type(e))
    run(main())
    return classes


def test_closed_right_after_accept_same_class(run):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    stop = []

    def serve():
        while not stop:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        classes = _same_class_sync_async("redis://127.0.0.1:%d" % ls.getsockname()[1], run)
        assert len(classes) == 2 and classes[0] is classes[1], classes
        assert issubclass(classes[0], ir.ConnectionError)
    finally:
        stop.append(1)
        ls.close()


def test_malformed_resp_is_a_protocol_error_sync_and_async(run):
    def handler(conn, cmd):
        if cmd[0].upper() == b"PING":
            return b"?this is not RESP\r\n"
        return None
    fake = FakeServer(handler)
    try:
        classes = _same_class_sync_async(fake.url(), run)
        assert len(classes) == 2 and classes[0] is classes[1], classes
        assert issubclass(classes[0], ir.InvalidResponse)
        assert issubclass(classes[0], iok.ProtocolError)
    finally:
        fake.close()


def test_same_fault_same_class_refused_timeout_oversize(redis_server, silent, run):
    """Connection refused, a server that never answers, a reply over
    recv_max_size: each the same class from Client and from AsyncClient."""
    refused = "redis://127.0.0.1:%d" % free_tcp_port()
    classes = _same_class_sync_async(refused, run)
    assert len(classes) == 2 and classes[0] is classes[1], classes
    assert issubclass(classes[0], ir.ConnectionError) and issubclass(classes[0], iok.ConnectionRefused)

    got = []
    try:
        ir.Client(silent.url, socket_connect_timeout=0.1)
    except ir.RedisError as e:
        got.append(type(e))

    async def connect():
        try:
            await ir.AsyncClient(silent.url, socket_connect_timeout=0.1).initialize()
        except ir.RedisError as e:
            got.append(type(e))
    run(connect())
    assert len(got) == 2 and got[0] is got[1] and issubclass(got[0], ir.TimeoutError), got

    big = b"b" * 5000
    with ir.Client(redis_server.url(), socket_timeout=T) as r:
        r.set("toolarge", big)
    got = []
    with ir.Client(redis_server.url(), socket_timeout=T, recv_max_size=1000) as r:
        try:
            r.get("toolarge")
        except ir.RedisError as e:
            got.append(type(e))
        assert r.ping() is True  # the connection stays

    async def get():
        async with ir.AsyncClient(redis_server.url(), socket_timeout=T, recv_max_size=1000) as r:
            try:
                await r.get("toolarge")
            except ir.RedisError as e:
                got.append(type(e))
            assert await r.ping() is True
    run(get())
    assert len(got) == 2 and got[0] is got[1], got
    assert issubclass(got[0], ir.DataError) and issubclass(got[0], iok.MessageTooLarge)


# ------------------------------------------------------------- 6. fork

@need_redis
def test_fork_with_a_parent_thread_busy_on_the_client(redis_server):
    r = ir.Client(redis_server.url(), socket_timeout=T)
    r.set("forked", "yes")
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            r.get("forked")
            s = r.session()   # sessions and side connections too
            s.get("forked")
            s.close()
    t = threading.Thread(target=busy)
    t.start()
    failures = []
    try:
        for i in range(200):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    signal.alarm(int(DEADLINE))  # a hang kills the child: a failure
                    c = ir.Client(redis_server.url(), socket_timeout=T)
                    if r.get("forked") == b"yes" and r.incr("children") >= 1 and \
                            c.ping() is True:
                        code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            if status != 0:
                failures.append((i, status))
    finally:
        stop.set()
        t.join()
    assert not failures, failures
    assert int(r.get("children")) == 200
    r.close()


def test_ctrl_c_interrupts_a_blocking_sp_dial():
    # A TCP server that takes the SP header and never answers: the dial
    # with block=True waits; Ctrl+C ends the wait at once, before iok
    # gives up on the connection (the server still has it open).
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    ls.settimeout(DEADLINE)
    held = []

    def server():
        c, _ = ls.accept()
        c.settimeout(DEADLINE)
        got = b""
        while len(got) < 8:
            got += c.recv(8 - len(got))
        held.append(c)
        os.kill(os.getpid(), signal.SIGINT)
    t = threading.Thread(target=server)
    t.start()
    try:
        with iok.Req() as s:
            with pytest.raises(KeyboardInterrupt):
                s.dial("tcp://127.0.0.1:%d" % ls.getsockname()[1], block=True)
            t.join(DEADLINE)
            c = held[0]
            c.setblocking(False)
            with pytest.raises(BlockingIOError):
                c.recv(1)  # still open: the interrupt did not wait for iok
    finally:
        for c in held:
            c.close()
        ls.close()
