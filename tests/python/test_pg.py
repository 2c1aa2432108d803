"""iok.pg against a real PostgreSQL (one private cluster per session, see
pg_fixtures): pipelining on ONE connection (checked in pg_stat_activity),
errors mid-burst, NOTIFY beside a burst, every type round-tripped against
the server's own text in its first (text) and later (binary) executions,
transactions, a dropped connection, authentication, the sync Client, and
target_session_attrs over a primary and a streaming standby.
Every asyncio test runs on asyncio's loop and on uvloop (conftest.run)."""
import asyncio
import datetime
import decimal
import itertools
import json
import logging
import os
import re
import threading
import urllib.parse
import uuid

import pytest

import iok
import iok.pg

from conftest import wait_until
from pg_fixtures import TYPES, Wire, backends, pg, pg_standby, same, wire  # noqa: F401

_names = itertools.count()


def app_name():
    return "iokpg-%d-%d" % (os.getpid(), next(_names))


@pytest.fixture
def name():
    return app_name()


@pytest.fixture
def table(pg, wire):
    t = "t_%d" % next(_names)
    wire.query("CREATE TABLE %s (k int PRIMARY KEY, v text)" % t)
    wire.query("GRANT ALL ON %s TO PUBLIC" % t)
    yield t
    wire.query("DROP TABLE IF EXISTS %s" % t)


# ------------------------------------------------------------ pipelining

def test_thousand_coroutines_one_connection(pg, wire, run, name):
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name)) as db:
            got = await asyncio.gather(*(db.fetchval("SELECT $1::int + 1", i) for i in range(1000)))
            assert got == [i + 1 for i in range(1000)]
            assert backends(wire, name) == 1
            # and while they are in flight
            tasks = [asyncio.ensure_future(db.fetchrow("SELECT $1::int AS n, pg_backend_pid() AS pid", i))
                     for i in range(1000)]
            rows = await asyncio.gather(*tasks)
            assert [r["n"] for r in rows] == list(range(1000))
            assert len({r["pid"] for r in rows}) == 1
            assert backends(wire, name) == 1
    run(main())
    wait_until(lambda: backends(wire, name) == 0, what="the connection to close")


def test_failure_mid_burst_leaves_neighbours_intact(pg, run, name):
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name)) as db:
            def q(i):
                if i % 100 == 50:
                    return db.fetchval("SELECT 1 / ($1::int - $1::int)", i)
                return db.fetchval("SELECT $1::int * 2", i)
            got = await asyncio.gather(*(q(i) for i in range(1000)), return_exceptions=True)
            for i, v in enumerate(got):
                if i % 100 == 50:
                    assert isinstance(v, iok.pg.DivisionByZeroError) and v.sqlstate == "22012"
                else:
                    assert v == 2 * i
            assert await db.fetchval("SELECT 'still fine'") == "still fine"
    run(main())


def test_notify_while_a_thousand_queries_flow(pg, wire, run, name):
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_md5", application_name=name)) as db:
            async with db.listen("burst chan") as events:
                pid = await db.fetchval("SELECT pg_backend_pid()")

                async def query(i):
                    if i == 500:  # from another connection, mid-burst
                        await asyncio.get_running_loop().run_in_executor(
                            None, wire.query, "NOTIFY \"burst chan\", 'from-outside'")
                    if i == 700:  # from the client's own connection
                        await db.execute("SELECT pg_notify('burst chan', 'from-inside')")
                    return await db.fetchval("SELECT $1::int + 1", i)
                got = await asyncio.gather(*(query(i) for i in range(1000)))
                assert got == [i + 1 for i in range(1000)]
                seen = []
                while len(seen) < 2:
                    n = await events.get()
                    if isinstance(n, iok.pg.Notification):
                        seen.append(n)
                assert sorted(n.payload for n in seen) == ["from-inside", "from-outside"]
                assert all(n.channel == "burst chan" for n in seen)
                assert pid in {n.pid for n in seen}
            assert backends(wire, name) == 1
    run(main())


# ---------------------------------------------------------------- types

def _server_text(wire, expr, typ):
    return wire.value("SELECT ((%s)::%s)::text" % (expr, typ))


def test_every_type_round_trips(pg, wire, run, name):
    """Decoding: SELECT <literal>::type, first (text results) and again
    (binary, the statement's columns now known).  Encoding: the Python
    value sent as $1 and cast by the server reads back as the server's own
    text of the literal."""
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name)) as db:
            for expr, typ, want in TYPES:
                sql = "SELECT (%s)::%s AS v" % (expr, typ)
                for attempt in ("first", "second", "third"):
                    got = await db.fetchval(sql)
                    assert same(got, want), (sql, attempt, got, want)
                if typ.startswith("interval"):
                    # a timedelta has no months: compare values, not text
                    assert await db.fetchval("SELECT $1::%s = (%s)::%s" % (typ, expr, typ), want), expr
                    continue
                if expr.startswith("'["):
                    continue  # a Python list has no lower bound
                text = _server_text(wire, expr, typ)
                for attempt in ("first", "second"):
                    got = await db.fetchval("SELECT ($1::%s)::text" % typ, want)
                    assert got == text, (typ, expr, attempt, got, text)
                # and back as the same Python value, in both formats
                for attempt in ("first", "second"):
                    got = await db.fetchval("SELECT $1::%s" % typ, want)
                    assert same(got, want), (typ, attempt, got, want)
    run(main())


def test_types_in_a_table(pg, run, name):
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name),
                                      json_loads=json.loads) as db:
            t = "types_%d" % next(_names)
            await db.execute("CREATE TABLE %s (b bool, i int8, f float8, n numeric, s text, "
                             "y bytea, d date, tm time, ts timestamp, tz timestamptz, iv interval, "
                             "u uuid, j jsonb, a int4[], ta text[])" % t)
            now = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
            vals = (True, 2 ** 40, 0.125, decimal.Decimal("-1.50"), "x'y\"z", b"\x00\xff", now.date(),
                    now.time(), now, now.replace(tzinfo=datetime.timezone.utc),
                    datetime.timedelta(days=3, seconds=7, microseconds=5), uuid.uuid4(),
                    {"k": [1, "two", None]}, [1, None, 3], ["a,b", "{c}", None])
            assert await db.execute("INSERT INTO %s VALUES (%s)" % (
                t, ", ".join("$%d" % (i + 1) for i in range(len(vals)))), *vals) == "INSERT 0 1"
            for _ in range(2):
                r = await db.fetchrow("SELECT * FROM %s" % t)
                assert tuple(r) == vals
            nulls = await db.fetchrow("INSERT INTO %s VALUES (%s) RETURNING *" % (
                t, ", ".join("$%d" % (i + 1) for i in range(len(vals)))), *([None] * len(vals)))
            assert list(nulls.values()) == [None] * len(vals)
            assert await db.fetchval("SELECT $1::jsonb -> 'k' -> 1", iok.pg.Json({"k": [0, "v"]})) == "v"
    run(main())


# ---------------------------------------------------------- the methods

def test_methods(pg, run, name, table):
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_trust", application_name=name)) as db:
            assert await db.execute("INSERT INTO %s VALUES (1, 'a'); INSERT INTO %s VALUES (2, 'b')"
                                    % (table, table)) == "INSERT 0 1"
            assert await db.execute("UPDATE %s SET v = $1 WHERE k > $2" % table, "c", 0) == "UPDATE 2"
            rows = await db.fetch("SELECT k, v FROM %s ORDER BY k" % table)
            assert [dict(r) for r in rows] == [{"k": 1, "v": "c"}, {"k": 2, "v": "c"}]
            assert await db.fetchrow("SELECT * FROM %s WHERE k = $1" % table, 9) is None
            assert await db.fetchval("SELECT k, v FROM %s WHERE k = 2" % table, column=1) == "c"
            assert await db.fetchval("SELECT k, v FROM %s WHERE k = 2" % table, column="v") == "c"
            assert await db.fetchval("SELECT 1 WHERE false") is None
            assert await db.fetch("") == []
            with pytest.raises(iok.pg.PostgresSyntaxError):
                await db.execute("SELEC 1")
            with pytest.raises(iok.pg.UndefinedTable):
                await db.fetch("SELECT * FROM no_such_table")
    run(main())


def test_executemany_is_pipelined_and_atomic(pg, wire, run, name, table):
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name)) as db:
            assert await db.executemany("INSERT INTO %s VALUES ($1, $2)" % table,
                                        [(i, str(i)) for i in range(1000)]) is None
            assert await db.fetchval("SELECT count(*) FROM %s" % table) == 1000
            with pytest.raises(iok.pg.UniqueViolation) as ei:
                await db.executemany("INSERT INTO %s VALUES ($1, $2)" % table,
                                     [(i, "x") for i in range(2000, 2100)] + [(5, "dup")] +
                                     [(i, "y") for i in range(3000, 3100)])
            assert "(k)=(5)" in ei.value.detail
            assert await db.fetchval("SELECT count(*) FROM %s" % table) == 1000  # none of them
            assert await db.executemany("INSERT INTO %s VALUES ($1, $2)" % table, []) is None
            assert backends(wire, name) == 1
    run(main())


# ---------------------------------------------------------- transactions

def test_transaction_commit_and_rollback(pg, wire, run, name, table):
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name)) as db:
            async with db.transaction() as tx:
                await db.execute("INSERT INTO %s VALUES (1, 'one')" % table)
                await tx.execute("INSERT INTO %s VALUES (2, 'two')" % table)
                # not visible from elsewhere before the commit
                assert wire.value("SELECT count(*) FROM %s" % table) == "0"
                assert await db.fetchval("SELECT count(*) FROM %s" % table) == 2
            assert wire.value("SELECT count(*) FROM %s" % table) == "2"

            with pytest.raises(ZeroDivisionError):
                async with db.transaction():
                    await db.execute("INSERT INTO %s VALUES (3, 'three')" % table)
                    1 / 0
            assert wire.value("SELECT count(*) FROM %s" % table) == "2"

            # a failing statement: the transaction is rolled back
            with pytest.raises(iok.pg.UniqueViolation):
                async with db.transaction():
                    await db.execute("INSERT INTO %s VALUES (4, 'four')" % table)
                    await db.execute("INSERT INTO %s VALUES (1, 'dup')" % table)
            assert wire.value("SELECT count(*) FROM %s" % table) == "2"

            # nested: a savepoint
            async with db.transaction():
                await db.execute("INSERT INTO %s VALUES (5, 'five')" % table)
                with pytest.raises(KeyError):
                    async with db.transaction():
                        await db.execute("INSERT INTO %s VALUES (6, 'six')" % table)
                        raise KeyError
            assert sorted(r["k"] for r in await db.fetch("SELECT k FROM %s" % table)) == [1, 2, 5]

            # other tasks are not in it
            async with db.transaction():
                await db.execute("SET LOCAL application_name = 'in-tx'")
                assert await db.fetchval("SHOW application_name") == "in-tx"
            assert await db.fetchval("SHOW application_name") == name
            async with db.transaction(isolation="serializable", readonly=True):
                assert await db.fetchval("SHOW transaction_isolation") == "serializable"
                assert await db.fetchval("SHOW transaction_read_only") == "on"
            # executemany inside: part of the transaction, rolled back with it
            with pytest.raises(RuntimeError):
                async with db.transaction():
                    await db.executemany("INSERT INTO %s VALUES ($1, $2)" % table,
                                         [(i, "m") for i in range(10, 20)])
                    assert await db.fetchval("SELECT count(*) FROM %s" % table) == 13
                    raise RuntimeError
            assert await db.fetchval("SELECT count(*) FROM %s" % table) == 3
            tx = db.transaction()
            await tx.start()
            await tx.rollback()
            with pytest.raises(iok.pg.InterfaceError):
                await tx.commit()
    run(main())


def test_abandoned_transaction_is_rolled_back(pg, wire, run, name, table):
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name)) as db:
            inside = asyncio.Event()

            async def abandon():
                async with db.transaction():
                    await db.execute("INSERT INTO %s VALUES (1, 'lost')" % table)
                    inside.set()
                    await asyncio.Event().wait()  # for ever: cancelled
            task = asyncio.ensure_future(abandon())
            await inside.wait()
            assert wire.value("SELECT state FROM pg_stat_activity WHERE application_name = '%s'"
                              % name) == "idle in transaction"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the connection serves others again, outside any transaction
            assert await db.fetchval("SELECT count(*) FROM %s" % table) == 0
            assert wire.value("SELECT count(*) FROM %s" % table) == "0"
            assert backends(wire, name) == 1
            assert wire.value("SELECT state FROM pg_stat_activity WHERE application_name = '%s'"
                              % name) == "idle"
    run(main())


# ------------------------------------------------------- failures, errors

def test_reply_over_limit_fails_alone(pg, wire, run, name, caplog):
    """No reply-size limit by default (a 16 MB value comes back); with
    recv_max_size, a reply over it fails only its own query with
    iok.MessageTooLarge: the 100 queries pipelined around it succeed on the
    same, never-dropped connection."""
    async def main():
        url = pg.url("iok_scram", application_name=name)
        async with iok.pg.AsyncClient(url) as db:
            assert len(await db.fetchval("SELECT repeat('v', 16000000)")) == 16000000
        async with iok.pg.AsyncClient(url, recv_max_size=64 * 1024) as db:
            def q(i):
                if i == 50:
                    return db.fetchval("SELECT repeat('x', 4000000)")
                if i == 75:
                    return db.fetch("SELECT repeat('y', 1000) FROM generate_series(1, 200)")
                return db.fetchval("SELECT $1::int", i)
            got = await asyncio.gather(*(q(i) for i in range(101)), return_exceptions=True)
            for i, v in enumerate(got):
                if i in (50, 75):
                    assert isinstance(v, iok.MessageTooLarge), repr(v)
                else:
                    assert v == i
            assert await db.fetchval("SELECT length(repeat('x', 60000))") == 60000
            stats = db.stats
            assert stats["rx-oversize"] == 2
            assert stats["pipes-opened"] == 1 and stats["reconnects"] == 0
            assert backends(wire, name) == 1
            # logged (logger "iok"), without the URL's password
            caplog.set_level(logging.INFO, logger="iok")
            iok._watch.tick()
            msgs = [r.getMessage() for r in caplog.records if r.name == "iok"]
            # (the watcher thread may have logged the first one already)
            counts = [re.match(r"iok\.pg dial postgresql://[^ ]*: (\d+) received messages? over "
                               r"recv_max_size refused$", m) for m in msgs]
            assert sum(int(c.group(1)) for c in counts if c) == 2, msgs
            pw = urllib.parse.urlsplit(url).password
            assert not pw or not any(pw in m for m in msgs)
    run(main())


def test_statement_timeout_and_client_timeout(pg, run, name):
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name)) as db:
            await db.execute("SET statement_timeout = 50")
            with pytest.raises(iok.pg.QueryCanceledError) as ei:
                await db.execute("SELECT pg_sleep(30)")
            assert ei.value.sqlstate == "57014"
            await db.execute("SET statement_timeout = 0")
            assert await db.fetchval("SELECT 1") == 1
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name), timeout=200) as db:
            with pytest.raises(iok.pg.QueryTimeoutError) as ei:
                await db.fetchval("SELECT pg_sleep(30)")
            assert isinstance(ei.value, TimeoutError) and isinstance(ei.value, iok.Timeout)
            assert await db.fetchval("SELECT 2") == 2
    run(main())


def test_connection_lost_mid_flight(pg, wire, run, name):
    async def main():
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name)) as db:
            async with db.listen("lost") as events:
                pid = await db.fetchval("SELECT pg_backend_pid()")
                sleeping = asyncio.ensure_future(db.fetchval("SELECT pg_sleep(30)"))
                await asyncio.sleep(0)  # the task sends its request: the kernel thread does the rest
                wait_until(lambda: wire.value("SELECT count(*) FROM pg_stat_activity WHERE pid = %d "
                                              "AND query LIKE '%%pg_sleep%%'" % pid) == "1",
                           what="the query to run")
                wire.query("SELECT pg_terminate_backend(%d)" % pid)
                with pytest.raises(ConnectionError) as ei:
                    await sleeping
                assert isinstance(ei.value, iok.pg.ConnectionLostError)
                # reconnected, and LISTENing again
                assert await db.fetchval("SELECT 3") == 3
                n = await events.get()
                assert isinstance(n, iok.pg.Reconnected)
                await events.ready()  # a round trip behind the re-issued LISTEN
                await asyncio.get_running_loop().run_in_executor(None, wire.query, "NOTIFY lost, 'again'")
                n = await events.get()
                assert isinstance(n, iok.pg.Notification) and n.payload == "again"
    run(main())


@pytest.mark.parametrize("user", ["iok_scram", "iok_md5", "iok_password"])
def test_wrong_password(pg, run, user):
    secret = "Not-The-Password-%d" % next(_names)
    url = pg.url(user, password=secret)
    with pytest.raises(iok.PeerAuthError) as ei:
        iok.pg.Client(url)
    e = ei.value
    assert isinstance(e, iok.pg.InvalidPasswordError) and isinstance(e, iok.pg.PostgresError)
    assert e.errno == iok._iok.IOK_EPEERAUTH
    for text in (str(e), repr(e), repr(e.__context__), repr(e.__cause__)):
        assert secret not in text

    async def main():
        with pytest.raises(iok.pg.InvalidPasswordError):
            iok.pg.AsyncClient(url)
    run(main())


def test_repr_hides_password(pg):
    with iok.pg.Client(pg.url("iok_scram")) as db:
        assert "scram-secret" not in repr(db) and "scram-secret" not in db.url
        assert "iok_scram@127.0.0.1" in repr(db)
    assert "closed" in repr(db)


def test_connection_refused(run):
    from conftest import free_tcp_port
    with pytest.raises(ConnectionRefusedError):
        iok.pg.Client("postgresql://u:pw@127.0.0.1:%d/db" % free_tcp_port())


def test_closed_client(pg, run):
    async def main():
        db = iok.pg.AsyncClient(pg.url("iok_trust"))
        await db.close()
        with pytest.raises(iok.Closed):
            await db.fetchval("SELECT 1")
    run(main())


# ------------------------------------------------------------------ sync

def test_sync_client(pg, wire, name, table):
    with iok.pg.Client(pg.url("iok_md5", application_name=name)) as db:
        assert db.fetchval("SELECT $1::int + 1", 1) == 2
        assert db.execute("INSERT INTO %s VALUES ($1, $2)" % table, 1, "a") == "INSERT 0 1"
        assert db.executemany("INSERT INTO %s VALUES ($1, $2)" % table, [(2, "b"), (3, "c")]) is None
        assert [tuple(r) for r in db.fetch("SELECT * FROM %s ORDER BY k" % table)] == \
            [(1, "a"), (2, "b"), (3, "c")]
        assert db.fetchrow("SELECT v FROM %s WHERE k = 3" % table)["v"] == "c"
        with pytest.raises(iok.pg.UniqueViolation):
            db.execute("INSERT INTO %s VALUES ($1, $2)" % table, 1, "dup")
        with db.transaction():
            db.execute("DELETE FROM %s" % table)
            assert wire.value("SELECT count(*) FROM %s" % table) == "3"
        assert wire.value("SELECT count(*) FROM %s" % table) == "0"
        with pytest.raises(KeyError):
            with db.transaction():
                db.execute("INSERT INTO %s VALUES (9, 'no')" % table)
                raise KeyError
        assert db.fetchval("SELECT count(*) FROM %s" % table) == 0

        # threads share the one connection
        errors, results = [], {}

        def worker(t):
            try:
                results[t] = [db.fetchval("SELECT $1::int * 3", t * 1000 + i) for i in range(200)]
            except Exception as e:  # pragma: no cover
                errors.append(e)
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        for t in range(4):
            assert results[t] == [(t * 1000 + i) * 3 for i in range(200)]
        assert backends(wire, name) == 1

        with db.listen("sync_ch") as lst:
            db.execute("NOTIFY sync_ch, 'hi'")
            n = lst.get(timeout=30000)
            assert (n.channel, n.payload) == ("sync_ch", "hi")


def test_example_runs(pg):
    import subprocess
    import sys
    from conftest import DEADLINE, python_env
    ex = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "pg.py")
    p = subprocess.run([sys.executable, ex, pg.url("iok_scram")], capture_output=True,
                       timeout=DEADLINE, env=python_env(), text=True)
    assert p.returncode == 0, p.stderr
    assert "1000 queries pipelined over 1 connection(s)" in p.stdout
    assert "after the transfer: [{'id': 1, 'balance': Decimal('70')}, " \
           "{'id': 2, 'balance': Decimal('30')}]" in p.stdout
    assert "duplicate key refused: Key (id)=(1) already exists. (SQLSTATE 23505)" in p.stdout
    assert "notification on 'news': 'hello'" in p.stdout


def test_server_restart_mid_burst(pg, run, name):
    """Every request resolves (a result or a connection error), then the
    client reconnects by itself and its listener LISTENs again."""
    async def main():
        loop = asyncio.get_running_loop()
        async with iok.pg.AsyncClient(pg.url("iok_scram", application_name=name)) as db:
            async with db.listen("restart_ch") as events:
                futs = [asyncio.ensure_future(db.fetchval("SELECT $1::int", i)) for i in range(500)]
                await asyncio.sleep(0)  # all sent to the kernel thread
                await loop.run_in_executor(None, pg.restart)
                got = await asyncio.gather(*futs, return_exceptions=True)
                for i, v in enumerate(got):
                    assert v == i or isinstance(v, (ConnectionError, iok.pg.AdminShutdownError)), v
                # the next queries reach the restarted server
                while True:
                    try:
                        assert await db.fetchval("SELECT 42") == 42
                        break
                    except (ConnectionError, iok.pg.AdminShutdownError,
                            iok.pg.CannotConnectNowError):
                        continue  # sent on the dying connection, or while the server started
                while not isinstance(await events.get(), iok.pg.Reconnected):
                    pass
                await events.ready()
                with Wire(pg) as w:
                    await loop.run_in_executor(None, w.query, "NOTIFY restart_ch, 'back'")
                n = await events.get()
                while isinstance(n, iok.pg.Reconnected):
                    n = await events.get()
                assert n.payload == "back"
    run(main())


# ---------------------------------------------------- target_session_attrs

def two_hosts(pg, sb, user="iok_scram", **params):
    """One URL naming the standby, then the primary (libpq's comma form)."""
    url = pg.url(user, **params)
    return url.replace("127.0.0.1:%d" % pg.port, "127.0.0.1:%d,127.0.0.1:%d" % (sb.port, pg.port), 1)


@pytest.mark.parametrize("attrs,standby", [
    ("read-write", False), ("primary", False), ("read-only", True), ("standby", True),
])
def test_target_session_attrs(pg, pg_standby, run, name, attrs, standby):
    url = two_hosts(pg, pg_standby, application_name=name, target_session_attrs=attrs)
    want = pg_standby.port if standby else pg.port
    with iok.pg.Client(url) as db:
        assert "scram-secret" not in repr(db)
        for _ in range(5):
            assert db.fetchval("SELECT inet_server_port()") == want
        assert db.fetchval("SELECT pg_is_in_recovery()") is standby

    async def main():
        async with iok.pg.AsyncClient(url) as adb:
            ports = await asyncio.gather(*(adb.fetchval("SELECT inet_server_port()") for _ in range(50)))
            assert set(ports) == {want}
    run(main())


def test_prefer_standby(pg, pg_standby, run, name):
    url = two_hosts(pg, pg_standby, application_name=name, target_session_attrs="prefer-standby")

    async def main():
        async with iok.pg.AsyncClient(url) as db:
            # Both servers fit; once both are up, the standby takes all.
            wait_until(lambda: db._sock.peers_live == 2, what="both connections")
            ports = await asyncio.gather(*(db.fetchval("SELECT inet_server_port()") for _ in range(50)))
            assert set(ports) == {pg_standby.port}
    run(main())


def test_target_session_attrs_nothing_fits(pg, pg_standby):
    url = pg_standby.url("iok_scram", target_session_attrs="read-write")
    with pytest.raises(iok.pg.TargetSessionAttrsError) as ei:
        iok.pg.Client(url)
    assert isinstance(ei.value, iok.pg.CannotConnectError)
    assert "in_hot_standby=on" in str(ei.value) and "read-write" in str(ei.value)
    assert "scram-secret" not in str(ei.value)
    with pytest.raises(iok.AddressInvalid):
        iok.pg.Client(pg.url("iok_scram", target_session_attrs="writable"))
