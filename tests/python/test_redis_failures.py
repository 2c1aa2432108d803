"""iok.redis when things break: redis-server killed with commands in
flight (each resolves, with its result or a clear error, within its
timeout), restarted (the client reconnects, resubscribes and goes on), a
fake server sending malformed RESP (clear error, connection dropped, the
client recovers on a new connection)."""
import asyncio
import threading

import pytest

import iok
import iok.redis as ir
from conftest import DEADLINE, wait_until
from redis_fixtures import (  # noqa: F401  (fixtures)
    Admin, FakeServer, fresh_redis, need_redis, wait_clients)

T = 3.0  # seconds: the commands' timeout here (what "within its timeout" bounds)


def _ping(r):
    try:
        return r.ping()
    except (iok.Timeout, iok.ConnectionReset):
        return False


@need_redis
def test_server_killed_mid_flight_async(fresh_redis, run):
    srv = fresh_redis

    async def main():
        async with ir.AsyncClient(srv.url(), name="victim", timeout=T,
                                  reconnect_time_max=100) as r, \
                ir.AsyncClient(srv.url(), name="publisher", timeout=T,
                               reconnect_time_max=100) as pub:
            ps = r.pubsub()
            await ps.subscribe("alerts")
            await ps.psubscribe("al*")
            killed = asyncio.Event()
            outcomes = {"ok": 0, "reset": 0, "timeout": 0}

            async def worker(i):
                # Until one of its commands fails after the kill.
                n = 0
                while True:
                    key = "w%d" % i
                    try:
                        if n % 2:
                            assert await r.get(key) in (None, b"%d" % (n - 1))
                        else:
                            assert await r.set(key, n) is True
                        outcomes["ok"] += 1
                    except iok.ConnectionReset:
                        outcomes["reset"] += 1
                        if killed.is_set():
                            return n
                    except iok.Timeout:
                        outcomes["timeout"] += 1
                        if killed.is_set():
                            return n
                    n += 1

            tasks = [asyncio.ensure_future(worker(i)) for i in range(1000)]
            # Kill once commands are flowing.
            while outcomes["ok"] < 2000:
                await asyncio.sleep(0.001)
            srv.kill()
            killed.set()
            done = await asyncio.gather(*tasks)
            # Every command resolved, with a result or ConnectionReset /
            # Timeout (within its timeout: nothing waits for the server to
            # come back): every worker saw one fail and finished.
            assert len(done) == 1000
            assert outcomes["reset"] + outcomes["timeout"] >= 1000, outcomes

            # Restarted on the same port: the client reconnects, resubscribes.
            srv.start()
            while not await _aping(r):
                pass
            # A message published now reaches the subscription made before
            # the kill, once the C side has re-sent it (PUBLISH counts it).
            while await _apublish(pub, "alerts", "back") != 2:  # channel + pattern
                pass
            got = []
            while len(got) < 2:
                m = await ps.get_message(timeout=T)
                if m.data == b"back":
                    got.append(m)
            assert sorted(m.type for m in got) == ["message", "pmessage"]
            # And goes on, on one connection again.
            res = await asyncio.gather(*(r.set("after%d" % i, i) for i in range(500)))
            assert res == [True] * 500
            assert await asyncio.gather(*(r.get("after%d" % i) for i in range(500))) == \
                [b"%d" % i for i in range(500)]
            with srv.admin() as a:
                (c,) = a.clients("victim")
                assert c["sub"] == "1" and c["psub"] == "1"
            assert r.stats["reconnects"] >= 1 or r.stats["pipes-opened"] >= 2
            ps.close()
    run(main())


async def _aping(r):
    try:
        return await r.ping()
    except (iok.Timeout, iok.ConnectionReset):
        return False


async def _apublish(r, ch, msg):
    try:
        return await r.publish(ch, msg)
    except (iok.Timeout, iok.ConnectionReset):
        return -1


@need_redis
def test_server_killed_mid_flight_sync(fresh_redis):
    srv = fresh_redis
    errors = []
    with ir.Client(srv.url(), name="svictim", timeout=T, reconnect_time_max=100) as r:
        ps = r.pubsub()
        ps.subscribe("alerts")
        stop = threading.Event()
        started = threading.Barrier(9)
        counts = []
        fails = []

        def worker(t):
            ok = bad = 0
            started.wait()
            while not stop.is_set():
                try:
                    r.set("k%d" % t, ok)
                    # (None: read again on the restarted, empty server)
                    assert r.get("k%d" % t) in (b"%d" % ok, None)
                    ok += 1
                except (iok.ConnectionReset, iok.Timeout):
                    bad += 1
                    fails.append(t)
                except BaseException as e:  # pragma: no cover
                    errors.append(e)
                    return
            counts.append((ok, bad))
        ts = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in ts:
            t.start()
        started.wait()
        with srv.admin() as a:
            wait_until(lambda: int(a("GET", "k0") or 0) > 10, what="commands flowing")
        srv.kill()
        # Every thread's command in flight resolves (error) within its
        # timeout; the threads go on trying.
        wait_until(lambda: fails, what="a command to fail")
        srv.start()
        wait_until(lambda: _ping(r), what="the client to reconnect")
        stop.set()
        for t in ts:
            t.join(DEADLINE)
            assert not t.is_alive()
        assert not errors, errors
        assert len(counts) == 8
        with Admin(srv.port) as a:
            wait_until(lambda: a("PUBLISH", "alerts", "back") == 1, what="the resubscription")
        m = None
        while m is None or m.data != b"back":
            m = ps.get_message(timeout=T)
        assert m.channel == b"alerts"
        assert r.set("final", 1) is True and r.get("final") == b"1"
        with srv.admin() as a:
            assert len(a.clients("svictim")) == 1


@need_redis
def test_writes_in_flight_fail_reads_retry(fresh_redis, run):
    """A write in flight when the connection drops raises ConnectionReset
    (it may or may not have run); a read is sent again on the new
    connection (retry_reads) and, once the server is back, succeeds."""
    srv = fresh_redis

    async def main():
        async with ir.AsyncClient(srv.url(), timeout=DEADLINE / 2,
                                  reconnect_time_max=50) as r:
            await r.set("k", "v")
            # DEBUG SLEEP holds the connection; commands queue behind it.
            sleeper = asyncio.ensure_future(r.execute("DEBUG", "SLEEP", "10"))
            write = asyncio.ensure_future(r.set("k", "w"))
            read = asyncio.ensure_future(r.get("k"))
            # Wait until the sleep is running on the server (INFO over a
            # raw connection answers? no: the server is busy) -> wait for
            # the commands to be on the wire, then kill.
            while r.socket.getopt("db:inflight", "uint64") < 3:
                await asyncio.sleep(0.001)
            srv.kill()
            with pytest.raises(iok.ConnectionReset):
                await sleeper
            with pytest.raises(iok.ConnectionReset):
                await write
            srv.start()
            assert await read is None  # retried on the new (empty) server
            assert await r.get("k") is None
    run(main())


@need_redis
def test_no_retry_reads(fresh_redis, run):
    srv = fresh_redis

    async def main():
        async with ir.AsyncClient(srv.url(), timeout=DEADLINE / 2, retry_reads=False,
                                  reconnect_time_max=50) as r:
            sleeper = asyncio.ensure_future(r.execute("DEBUG", "SLEEP", "10"))
            read = asyncio.ensure_future(r.get("k"))
            while r.socket.getopt("db:inflight", "uint64") < 2:
                await asyncio.sleep(0.001)
            srv.kill()
            for f in (sleeper, read):
                with pytest.raises(iok.ConnectionReset):
                    await f
            srv.start()
            while not await _aping(r):
                pass
    run(main())


def test_malformed_resp_fake_server(run):
    """The fake server answers the first GET of each of its first two
    connections with garbage: iok closes that connection (stat
    proto-errors), the command fails with a clear error (a write) or is
    sent again on the next connection (a read), and the client goes on."""
    def handler(conn, cmd):
        name = cmd[0].upper()
        if name == b"HELLO":
            return None
        if name == b"GET":
            if conn < 3:
                return b"?this is not RESP\r\n"
            return b"$5\r\nvalue\r\n"
        if name == b"SET":
            if conn == 0:
                return b"*1\r\n$99\r\nshort\r\n:1\r\n" + b"%" * 200  # bad bulk length
            return b"+OK\r\n"
        if name == b"PING":
            return b"+PONG\r\n"
        return b"-ERR unknown\r\n"

    fake = FakeServer(handler)
    try:
        with ir.Client(fake.url(), timeout=T, reconnect_time_max=50) as r:
            # A write answered with garbage: a clear error, not a hang.
            with pytest.raises((iok.ConnectionReset, iok.ProtocolError)):
                r.set("k", "v")
            wait_until(lambda: fake.closed_by_peer >= 1, what="iok to drop the connection")
            assert r.stats["proto-errors"] >= 1
            # A read answered with garbage twice: sent again once, then a
            # clear error.  (While there is no connection, commands fail at
            # once: send it once iok has reconnected.)
            wait_until(lambda: r.stats["pipes"] >= 1, what="the reconnection")
            with pytest.raises((iok.ConnectionReset, iok.ProtocolError)):
                r.get("k")
            wait_until(lambda: fake.closed_by_peer >= 3, what="the third drop")
            # The client recovers on a new connection.
            wait_until(lambda: r.stats["pipes"] >= 1, what="the reconnection")
            assert r.get("k") == b"value"
            assert r.set("k", "v") is True
            assert r.ping() is True
            assert fake.connections == 4
            assert r.stats["proto-errors"] >= 3

        async def main():
            fake2 = FakeServer(lambda conn, cmd: None if cmd[0].upper() == b"HELLO" else (
                b"-ERR\r\n\r\n:garbage\r\n" if conn == 0 else b"+PONG\r\n"))
            try:
                async with ir.AsyncClient(fake2.url(), timeout=T, reconnect_time_max=50) as r:
                    res = await asyncio.gather(r.ping(), r.ping(), return_exceptions=True)
                    # The stray bytes after the first reply are no reply to
                    # anything: connection dropped, the pings retried or failed.
                    assert all(x is True or isinstance(x, (iok.ConnectionReset, ir.ResponseError))
                               for x in res), res
                    while not await _aping(r):
                        pass
                    assert fake2.connections >= 2
            finally:
                fake2.close()
        run(main())
    finally:
        fake.close()


def test_fake_server_refuses_auth():
    def handler(conn, cmd):
        if cmd[0].upper() == b"HELLO":
            return b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        return b"+OK\r\n"
    fake = FakeServer(handler)
    try:
        with pytest.raises(iok.PeerAuthError):
            ir.Client("redis://:pw@127.0.0.1:%d" % fake.port, timeout=T)
    finally:
        fake.close()


@need_redis
def test_kill_with_transactions_in_flight(fresh_redis, run):
    """Transactions cut by a lost connection fail with ConnectionReset
    (never retried, never half-matched); the client then goes on."""
    srv = fresh_redis

    async def main():
        async with ir.AsyncClient(srv.url(), timeout=T, reconnect_time_max=50) as r:
            async def tx(i):
                try:
                    async with r.transaction() as t:
                        t.incr("c")
                        t.incr("c")
                    a, b = t.results
                    assert b == a + 1
                    return "ok"
                except (iok.ConnectionReset, iok.Timeout):
                    return "failed"
            first = [asyncio.ensure_future(tx(i)) for i in range(200)]
            while r.socket.getopt("db:inflight", "uint64") == 0 and not all(f.done() for f in first):
                await asyncio.sleep(0)
            srv.kill()
            res = await asyncio.gather(*first)
            assert set(res) <= {"ok", "failed"}
            srv.start()
            while not await _aping(r):
                pass
            assert await asyncio.gather(*(tx(i) for i in range(100))) == ["ok"] * 100
            assert int(await r.get("c")) == 200
    run(main())
