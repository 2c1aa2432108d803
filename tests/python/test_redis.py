"""iok.redis against a real redis-server: RESP encoding and decoding of
every type, the sync and asyncio clients and their commands, 1,000
concurrent coroutines over one connection (replies checked by value),
threads sharing a sync client, pub/sub on the command connection,
transactions (atomic under concurrency, WATCH), errors, AUTH, URLs."""
import asyncio
import threading

import pytest

import iok
import iok.redis as ir
from conftest import DEADLINE, wait_until
from redis_fixtures import (  # noqa: F401  (fixtures)
    Admin, fresh_redis, need_redis, redis_module_server, redis_server, wait_clients)

T = 30.0  # seconds (iok.redis's unit): bounds a hang; never what a test measures


def names():
    names.n += 1
    return "iokpy%d" % names.n


names.n = 0


# ------------------------------------------------------------------ codec

def test_encode():
    assert ir.resp_encode("SET", "k", b"v") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
    assert ir.resp_encode("X", 12, -3, 2.5, 10 ** 30, bytearray(b"ab"), memoryview(b"cd"), "é", "") \
        == (b"*9\r\n$1\r\nX\r\n$2\r\n12\r\n$2\r\n-3\r\n$3\r\n2.5\r\n$31\r\n1" + b"0" * 30 +
            b"\r\n$2\r\nab\r\n$2\r\ncd\r\n$2\r\n\xc3\xa9\r\n$0\r\n\r\n")
    big = b"x" * 100000
    assert ir.resp_encode("SET", "k", big).endswith(b"$100000\r\n" + big + b"\r\n")
    many = ["a%d" % i for i in range(100)]
    assert ir.resp_encode("MGET", *many).startswith(b"*101\r\n$4\r\nMGET\r\n$2\r\na0\r\n")
    for bad in (None, True, object(), [1]):
        with pytest.raises(TypeError):
            ir.resp_encode("SET", "k", bad)
    with pytest.raises(ValueError):
        iok._iok.resp_encode(())


DECODED = [
    (b"+OK\r\n", b"OK"),                  # status replies are bytes, as in redis-py
    (b"+PONG\r\n", b"PONG"),
    (b"+\r\n", b""),
    (b":-42\r\n", -42),
    (b"$3\r\nabc\r\n", b"abc"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"_\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n_\r\n", [1, b"x", [None]]),
    (b",3.25\r\n", 3.25),
    (b",-inf\r\n", float("-inf")),
    (b"#t\r\n", True),
    (b"#f\r\n", False),
    (b"(-123456789012345678901234567890\r\n", -123456789012345678901234567890),
    (b"=15\r\ntxt:Some string\r\n", "Some string"),
    (b"~2\r\n:1\r\n$1\r\na\r\n", {1, b"a"}),
    (b"%2\r\n$1\r\na\r\n:1\r\n+b\r\n*1\r\n:2\r\n", {b"a": 1, b"b": [2]}),
    (b"%1\r\n*2\r\n:1\r\n:2\r\n+v\r\n", {(1, 2): b"v"}),            # unhashable key
    (b"|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n", b"v"),                   # attribute skipped
    (b"*2\r\n|1\r\n+a\r\n:1\r\n:5\r\n:6\r\n", [5, 6]),              # nested attribute
    (b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n", [b"message", b"ch", b"x"]),
]


@pytest.mark.parametrize("frame,value", DECODED, ids=[repr(f[:12]) for f, _ in DECODED])
def test_decode(frame, value):
    got = ir.resp_decode(frame)
    assert got == value and type(got) is type(value)


def test_decode_huge_bignum():
    """A big number over Python's int conversion limit is a DataError of the
    iok.redis hierarchy (the ValueError as its cause), not a bare ValueError."""
    frame = b"(" + b"7" * 100000 + b"\r\n"
    for decode in (False, True):
        with pytest.raises(ir.DataError) as ei:
            ir.resp_decode(frame, decode)
        assert isinstance(ei.value, ir.RedisError) and isinstance(ei.value, iok.Error)
        assert "100000 digits" in str(ei.value)
        assert isinstance(ei.value.__cause__, ValueError)
        with pytest.raises(ir.DataError):
            ir.resp_decode(b"*2\r\n:1\r\n" + frame, decode)   # inside an aggregate too
    assert ir.resp_decode(b"(" + b"9" * 4000 + b"\r\n") == int("9" * 4000)


def test_decode_errors():
    with pytest.raises(ir.ResponseError) as ei:
        ir.resp_decode(b"-ERR unknown command\r\n")
    assert ei.value.message == "ERR unknown command" and ei.value.code == "ERR"
    assert isinstance(ei.value, iok.Error)
    with pytest.raises(ir.WrongTypeError):
        ir.resp_decode(b"-WRONGTYPE Operation against a key\r\n")
    with pytest.raises(ir.ExecAbortError):
        ir.resp_decode(b"!21\r\nEXECABORT Transaction\r\n")
    # Inside an aggregate an error is the element, not raised.
    v = ir.resp_decode(b"*2\r\n:1\r\n-ERR x\r\n")
    assert v[0] == 1 and type(v[1]) is ir.ResponseError and v[1].message == "ERR x"
    for bad in (b"?\r\n", b"$5\r\nab\r\n", b"*2\r\n:1\r\n", b":1\r\n:2\r\n", b":x\r\n", b""):
        with pytest.raises(iok.ProtocolError):
            ir.resp_decode(bad)


def test_decode_responses_flag():
    assert ir.resp_decode(b"$2\r\n\xc3\xa9\r\n", True) == "é"
    assert ir.resp_decode(b"+OK\r\n", True) == "OK"
    assert ir.resp_decode(b"+hash\r\n", True) == "hash"
    assert ir.resp_decode(b"*2\r\n+OK\r\n+QUEUED\r\n", True) == ["OK", "QUEUED"]
    assert ir.resp_decode(b"*2\r\n+OK\r\n+QUEUED\r\n") == [b"OK", b"QUEUED"]
    assert ir.resp_decode(b"*1\r\n$1\r\nx\r\n", True) == ["x"]
    with pytest.raises(UnicodeDecodeError):
        ir.resp_decode(b"$1\r\n\xff\r\n", True)


# ------------------------------------------------------- RESP3 from a server

RESP3_TYPES = {
    "string": b"Hello World",
    "integer": 12345,
    "double": 3.141,
    "bignum": 1234567999999999999999999999999999999,
    "null": None,
    "array": [0, 1, 2],
    "set": {0, 1, 2},
    "map": {0: False, 1: True, 2: False},
    "attrib": b"Some real reply following the attribute",
    "verbatim": "This is a verbatim\nstring",
    "true": True,
    "false": False,
}


@need_redis
def test_resp3_types_sync(redis_server):
    with ir.Client(redis_server.url(), timeout=T) as r:
        for t, want in RESP3_TYPES.items():
            got = r.execute("DEBUG", "PROTOCOL", t)
            assert got == want and type(got) is type(want), t
        # A push (DEBUG PROTOCOL push) reaches no command: the reply after it does.
        assert r.execute("DEBUG", "PROTOCOL", "push") == b"Some real reply following the push reply"
        assert r.ping() is True


@need_redis
def test_resp3_types_async(redis_server, run):
    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=T) as r:
            got = await asyncio.gather(*(r.execute("DEBUG", "PROTOCOL", t) for t in RESP3_TYPES))
            for (t, want), g in zip(RESP3_TYPES.items(), got):
                assert g == want and type(g) is type(want), t
    run(main())


@need_redis
def test_resp2(redis_server):
    """?protocol=2: the same commands, RESP2 replies, the same results."""
    with ir.Client(redis_server.url() + "?protocol=2", timeout=T) as r:
        assert r.set("k", "v") is True and r.get("k") == b"v"
        r.hset("h", mapping={"a": 1, "b": 2})
        assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}
        r.sadd("s", "x", "y")
        assert r.smembers("s") == {b"x", b"y"}
        r.zadd("z", {"m": 1.5})
        assert r.zrange("z", 0, -1, withscores=True) == [(b"m", 1.5)]
        assert r.execute("HELLO")  # still answers; RESP2 array


# ---------------------------------------------------------------- commands

def check_commands(r, call):
    """The convenience methods, through call(coroutine-or-value)."""
    c = call
    assert c(r.ping()) is True
    assert c(r.set("s", "v")) is True
    assert c(r.get("s")) == b"v"
    assert c(r.set("s", "w", nx=True)) is None
    assert c(r.set("s", "w", xx=True)) is True
    assert c(r.set("s", "x", get=True)) == b"w"
    assert c(r.set("t", 1, ex=100)) is True
    assert 0 < c(r.ttl("t")) <= 100
    assert c(r.set("t", 1, px=100000)) is True and 0 < c(r.pttl("t")) <= 100000
    assert c(r.get("nosuch")) is None
    assert c(r.exists("s", "t", "nosuch")) == 2
    assert c(r.incr("n")) == 1 and c(r.incr("n", 5)) == 6 and c(r.incrby("n", 2)) == 8
    assert c(r.decr("n")) == 7 and c(r.decr("n", 3)) == 4 and c(r.decrby("n", 1)) == 3
    assert c(r.incrbyfloat("f", 1.5)) == 1.5
    assert c(r.expire("n", 100)) is True and c(r.expire("nosuch", 1)) is False
    assert c(r.persist("n")) is True and c(r.ttl("n")) == -1
    assert c(r.mset({"a": 1, "b": b"2", "c": "three"})) is True
    assert c(r.mget("a", "b", "c", "nosuch")) == [b"1", b"2", b"three", None]
    assert c(r.mget(["a", "b"])) == [b"1", b"2"]
    assert c(r.append("a", "x")) == 2 and c(r.strlen("a")) == 2
    assert c(r.type("a")) == b"string"
    assert c(r.delete("a", "b", "nosuch")) == 2
    assert c(r.hset("h", "f", "v")) == 1
    assert c(r.hset("h", mapping={"g": 2, "i": 3})) == 2
    assert c(r.hget("h", "f")) == b"v" and c(r.hget("h", "nosuch")) is None
    assert c(r.hmget("h", "f", "g")) == [b"v", b"2"]
    assert c(r.hgetall("h")) == {b"f": b"v", b"g": b"2", b"i": b"3"}
    assert c(r.hgetall("nosuch")) == {}
    assert c(r.hexists("h", "f")) is True and c(r.hlen("h")) == 3
    assert c(r.hincrby("h", "g", 5)) == 7
    assert sorted(c(r.hkeys("h"))) == [b"f", b"g", b"i"]
    assert c(r.hdel("h", "f", "g", "nosuch")) == 2
    assert c(r.rpush("l", "a", "b")) == 2 and c(r.lpush("l", "z")) == 3
    assert c(r.lrange("l", 0, -1)) == [b"z", b"a", b"b"] and c(r.llen("l")) == 3
    assert c(r.lindex("l", 1)) == b"a"
    assert c(r.lpop("l")) == b"z" and c(r.rpop("l")) == b"b" and c(r.rpop("l", 5)) == [b"a"]
    assert c(r.lpop("l")) is None
    assert c(r.sadd("set", "a", "b", "c")) == 3 and c(r.srem("set", "c")) == 1
    assert c(r.smembers("set")) == {b"a", b"b"} and c(r.scard("set")) == 2
    assert c(r.sismember("set", "a")) is True and c(r.sismember("set", "z")) is False
    assert c(r.zadd("z", {"a": 1, "b": 2.5, "c": -1})) == 3
    assert c(r.zrange("z", 0, -1)) == [b"c", b"a", b"b"]
    assert c(r.zrange("z", 0, 1, withscores=True)) == [(b"c", -1.0), (b"a", 1.0)]
    assert c(r.zrange("z", 0, 0, desc=True)) == [b"b"]
    assert c(r.zscore("z", "b")) == 2.5 and c(r.zscore("z", "nosuch")) is None
    assert c(r.zincrby("z", 2, "a")) == 3.0 and c(r.zcard("z")) == 3
    assert c(r.zrem("z", "a", "nosuch")) == 1
    assert c(r.publish("nobody", "x")) == 0
    assert c(r.echo("hi")) == b"hi"
    assert sorted(c(r.keys("s*"))) == [b"s", b"set"]
    assert "redis_version" in c(r.info("server"))
    assert c(r.dbsize()) == len(c(r.keys()))
    assert c(r.execute("SET", "e", "1")) == b"OK"
    assert c(r.execute("get", "e")) == b"1"
    assert c(r.getdel("e")) == b"1" and c(r.get("e")) is None
    assert c(r.flushdb()) is True and c(r.dbsize()) == 0


@need_redis
def test_sync_commands(redis_server):
    with ir.Client(redis_server.url(), timeout=T) as r:
        check_commands(r, lambda v: v)
        r.mset({"k%d" % i: i for i in range(250)})
        assert sorted(r.scan_iter(match="k*", count=20)) == sorted(b"k%d" % i for i in range(250))


@need_redis
def test_async_commands(redis_server, run):
    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=T) as r:
            await check_async_commands(r)
            await r.mset({"k%d" % i: i for i in range(250)})
            keys = [k async for k in r.scan_iter(match="k*", count=20)]
            assert sorted(keys) == sorted(b"k%d" % i for i in range(250))
    run(main())


async def check_async_commands(r):
    """check_commands against an AsyncClient: check_commands runs in a
    worker thread and has each command's coroutine run on the loop."""
    loop = asyncio.get_running_loop()

    def call(co):
        return asyncio.run_coroutine_threadsafe(co, loop).result(DEADLINE)
    await loop.run_in_executor(None, check_commands, r, call)


@need_redis
def test_decode_responses(redis_server, run):
    with ir.Client(redis_server.url(), timeout=T, decode_responses=True) as r:
        r.set("k", "é")
        assert r.get("k") == "é"
        r.hset("h", "f", "v")
        assert r.hgetall("h") == {"f": "v"}
        r.set("bin", b"\xff")
        with pytest.raises(UnicodeDecodeError):
            r.get("bin")
        assert r.get("k") == "é"  # the connection is fine
        # Status replies decode too (and are bytes without decode_responses).
        assert r.type("k") == "string" and r.execute("SET", "k2", "v") == "OK"
    with ir.Client(redis_server.url(), timeout=T) as r:
        assert r.type("k") == b"string" and r.execute("SET", "k2", "v") == b"OK"
        assert r.set("k3", "v") is True and r.ping() is True

    async def main():
        async with ir.AsyncClient(redis_server.url(), decode_responses=True) as r:
            assert await r.get("k") == "é"
            with pytest.raises(UnicodeDecodeError):
                await r.get("bin")
            assert await r.mget("k", "nosuch") == ["é", None]
    run(main())


@need_redis
def test_error_replies(redis_server, run):
    with ir.Client(redis_server.url(), timeout=T) as r:
        r.set("s", "x")
        with pytest.raises(ir.ResponseError) as ei:
            r.incr("s")
        assert ei.value.code == "ERR"
        with pytest.raises(ir.WrongTypeError):
            r.lpush("s", "y")
        with pytest.raises(ir.ResponseError):
            r.execute("NOSUCHCOMMAND")
        with pytest.raises(ir.NoScriptError):
            r.execute("EVALSHA", "0" * 40, 0)
        assert r.get("s") == b"x"  # matching stays right after errors

    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=T) as r:
            res = await asyncio.gather(r.get("s"), r.incr("s"), r.get("s"), return_exceptions=True)
            assert res[0] == b"x" and type(res[1]) is ir.ResponseError and res[2] == b"x"
    run(main())


# ------------------------------------------- many requests, one connection

@need_redis
def test_1000_coroutines_one_connection(redis_server, run):
    name = names()

    async def main():
        async with ir.AsyncClient(redis_server.url(), name=name, timeout=T) as r:
            async def worker(i):
                got = []
                for rnd in range(5):
                    v = "v%d.%d" % (i, rnd)
                    assert await r.set("k%d" % i, v) is True
                    got.append(await r.get("k%d" % i))
                    assert got[-1] == v.encode(), (i, rnd, got[-1])
                n = await r.incr("counter")
                return i, got, n
            res = await asyncio.gather(*(worker(i) for i in range(1000)))
            for i, (j, got, _) in enumerate(res):
                assert j == i and got == [b"v%d.%d" % (i, rnd) for rnd in range(5)]
            assert sorted(n for _, _, n in res) == list(range(1, 1001))
            assert r.stats["pipes-opened"] == 1 and r.stats["pipes"] == 1
            with redis_server.admin() as a:
                assert len(a.clients(name)) == 1
                assert a("GET", "k999") == b"v999.4"
    run(main())


@need_redis
def test_gather_values_in_one_burst(redis_server, run):
    """Thousands of different commands pipelined at once: each coroutine
    gets its own reply."""
    with redis_server.admin() as a:
        for i in range(0, 3000, 500):
            a("MSET", *[x for j in range(i, i + 500) for x in ("g%d" % j, "val%d" % j)])

    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=T) as r:
            got = await asyncio.gather(*(r.get("g%d" % i) for i in range(3000)))
            assert got == [b"val%d" % i for i in range(3000)]
            got = await asyncio.gather(*(r.strlen("g%d" % i) if i % 2 else r.get("g%d" % i)
                                         for i in range(3000)))
            assert got == [len("val%d" % i) if i % 2 else b"val%d" % i for i in range(3000)]
    run(main())


@need_redis
def test_threads_share_a_sync_client(redis_server):
    name = names()
    errors = []
    with ir.Client(redis_server.url(), name=name, timeout=T) as r:
        def worker(t):
            try:
                for i in range(300):
                    key, val = "t%d:%d" % (t, i), "v%d:%d" % (t, i)
                    assert r.set(key, val) is True
                    assert r.get(key) == val.encode()
                    with r.pipeline() as p:
                        p.get(key).strlen(key).incr("tcount")
                    assert p.results[:2] == [val.encode(), len(val)]
            except BaseException as e:  # pragma: no cover
                errors.append(e)
        ts = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(DEADLINE)
        assert not errors, errors
        assert r.get("tcount") == b"2400"
        with redis_server.admin() as a:
            assert len(a.clients(name)) == 1
        assert not r._demux.waiting and not r._demux.results and not r._demux.reading


@need_redis
def test_cancelled_requests_keep_matching(redis_server, run):
    """A coroutine cancelled while its command is in flight: the late
    reply is dropped and every later reply still finds its own request."""
    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=T) as r:
            await r.set("k", "v")
            for _ in range(3):
                slow = asyncio.ensure_future(r.execute("DEBUG", "SLEEP", "0.05"))
                gets = [asyncio.ensure_future(r.get("k")) for _ in range(50)]
                await asyncio.sleep(0)  # let them all send
                slow.cancel()
                for g in gets[::2]:
                    g.cancel()
                for g in gets[1::2]:
                    assert await g == b"v"
            assert await asyncio.gather(*(r.echo("e%d" % i) for i in range(100))) == \
                [b"e%d" % i for i in range(100)]
            aio = r.socket._aio
            wait_until(lambda: not aio.pending, what="no request left pending")
    run(main())


# ----------------------------------------------------------------- pub/sub

@need_redis
def test_pubsub_on_the_command_connection(redis_server, run):
    """Messages arrive while 1,000 coroutines' commands flow on the same
    connection; CLIENT LIST shows one connection, subscribed."""
    name = names()

    async def main():
        async with ir.AsyncClient(redis_server.url(), name=name, timeout=T) as r, \
                ir.AsyncClient(redis_server.url(), name=name + "pub", timeout=T) as pub:
            ps = r.pubsub()
            await ps.subscribe("news", "sport")
            await ps.psubscribe("w*")
            with redis_server.admin() as a:
                (c,) = a.clients(name)
                assert c["sub"] == "2" and c["psub"] == "1"

            async def commands(i):
                for rnd in range(3):
                    await r.set("k%d" % i, rnd)
                    assert await r.get("k%d" % i) == b"%d" % rnd

            async def publish():
                for i in range(300):
                    assert await pub.publish("news" if i % 2 else "weather", "m%d" % i) == 1

            async def receive():
                got = []
                async for m in ps:
                    got.append(m)
                    if len(got) == 300:
                        return got
            rx = asyncio.ensure_future(receive())
            await asyncio.gather(publish(), *(commands(i) for i in range(1000)))
            got = await rx
            for i, m in enumerate(got):
                if i % 2:
                    assert m == ir.PubSubMessage("message", b"news", b"m%d" % i)
                else:
                    assert m == ir.PubSubMessage("pmessage", b"weather", b"m%d" % i, b"w*")
                    assert m["pattern"] == b"w*" and m["data"] == b"m%d" % i
            # Still one connection, carrying commands and subscriptions.
            with redis_server.admin() as a:
                assert len(a.clients(name)) == 1
            # Unsubscribed channels yield nothing more.
            await ps.unsubscribe("news")
            await ps.punsubscribe()
            await r.publish("sport", "last")  # from the subscribed connection itself
            m = await ps.get_message()
            assert (m.type, m.channel, m.data) == ("message", b"sport", b"last")
            assert await ps.get_message(timeout=0) is None
            assert set(ps.channels) == {b"sport"} and not ps.patterns
            ps.close()
            assert [x async for x in ps] == []
            wait_until(lambda: int(Admin(redis_server.port).clients(name)[0]["sub"]) == 0,
                       what="the closed pubsub to unsubscribe")
            assert await r.get("k0") == b"2"
    run(main())


@need_redis
def test_publish_right_after_subscribe(redis_server, run):
    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=T) as r:
            async with r.pubsub() as ps:
                for i in range(50):
                    ch = "c%d" % i
                    await ps.subscribe(ch)
                    # The subscription is confirmed: a PUBLISH sent now,
                    # even on the same connection, reaches it.
                    assert await r.publish(ch, "x%d" % i) == 1
                    m = await ps.get_message()
                    assert (m.channel, m.data) == (ch.encode(), b"x%d" % i)
                await ps.subscribe("c0", "c1")  # already: returns at once
                assert len(ps.channels) == 50
            # Several pubsubs per client (the others on connections of
            # their own).
            async with r.pubsub() as p1, r.pubsub() as p2:
                await p1.subscribe("multi")
                await p2.subscribe("multi")
                assert await r.publish("multi", "m") == 2
                for p in (p1, p2):
                    m = await p.get_message(timeout=T)
                    assert (m.channel, m.data) == (b"multi", b"m")
    run(main())


@need_redis
def test_pubsub_confirmations_not_ignored(redis_server, run):
    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=T, decode_responses=True) as r:
            async with r.pubsub(ignore_subscribe_messages=False) as ps:
                await ps.subscribe("a")
                m = await ps.get_message()
                assert (m.type, m.channel, m.data) == ("subscribe", "a", 1)
                await r.publish("a", "é")
                m = await ps.get_message()
                assert (m.type, m.channel, m.data) == ("message", "a", "é")
    run(main())


@need_redis
def test_sync_pubsub(redis_server):
    name = names()
    with ir.Client(redis_server.url(), name=name, timeout=T) as r, \
            ir.Client(redis_server.url(), timeout=T) as other:
        with r.pubsub() as ps:
            ps.subscribe("news")
            assert r.publish("news", "one") == 1
            assert ps.get_message(timeout=T) == ir.PubSubMessage("message", b"news", b"one")
            assert ps.get_message(timeout=0) is None
            assert ps.get_message(timeout=0.02) is None
            ps.psubscribe("n*")
            other.publish("news", "two")
            got = [ps.get_message(timeout=T), ps.get_message(timeout=T)]
            assert sorted(m.type for m in got) == ["message", "pmessage"]
            # Commands from other threads flow meanwhile on the same connection.
            stop = threading.Event()

            def commands():
                i = 0
                while not stop.is_set():
                    r.set("x", i)
                    assert r.get("x") == b"%d" % i
                    i += 1
            t = threading.Thread(target=commands)
            t.start()
            for i in range(100):
                other.publish("news", "m%d" % i)
            seen = []
            for m in ps.listen():
                if m.type == "message":
                    seen.append(m.data)
                    if len(seen) == 100:
                        break
            stop.set()
            t.join()
            assert seen == [b"m%d" % i for i in range(100)]
            with redis_server.admin() as a:
                assert len(a.clients(name)) == 1
            ps.unsubscribe()
            ps.punsubscribe()
            other.publish("news", "gone")
            assert r.ping() is True
            assert ps.get_message(timeout=0) is None


# ------------------------------------------------------------ transactions

@need_redis
def test_transaction_sync(redis_server):
    with ir.Client(redis_server.url(), timeout=T) as r:
        with r.transaction() as tx:
            tx.set("a", 1)
            tx.incr("a")
            tx.get("a")
            tx.hset("h", "f", "v")
            tx.hgetall("h")
        assert tx.results == [True, 2, b"2", 1, {b"f": b"v"}]
        # A command refused when queued aborts the whole transaction.
        with pytest.raises(ir.ExecAbortError) as ei:
            with r.transaction() as tx:
                tx.set("a", 5)
                tx.execute_command("INCR")  # wrong number of arguments
        assert "INCR" in str(ei.value)
        assert r.get("a") == b"2"
        # A command failing when run: the others still ran (Redis has no rollback).
        r.set("s", "x")
        with pytest.raises(ir.ResponseError):
            with r.transaction() as tx:
                tx.incr("s")
                tx.set("b", "y")
        assert tx.results[1] is True and isinstance(tx.results[0], ir.ResponseError)
        assert r.get("b") == b"y"
        tx = r.transaction()
        tx.incr("s")
        tx.get("b")
        res = tx.execute(raise_on_error=False)
        assert isinstance(res[0], ir.ResponseError) and res[1] == b"y"
        # Plain pipelines (no MULTI).
        p = r.pipeline()
        for i in range(100):
            p.set("p%d" % i, i)
        p.mget(["p%d" % i for i in range(100)])
        res = p.execute()
        assert res[:100] == [True] * 100 and res[100] == [b"%d" % i for i in range(100)]
        assert r.pipeline().execute() == []


@need_redis
def test_transactions_atomic_under_concurrency(redis_server, run):
    """Transactions interleaved with plain commands of 100s of coroutines:
    nothing lands between a transaction's commands (its INCRs are
    consecutive), on one connection."""
    name = names()

    async def main():
        async with ir.AsyncClient(redis_server.url(), name=name, timeout=T) as r:
            async def tx_worker(i):
                async with r.transaction() as tx:
                    tx.incr("c")
                    tx.incr("c")
                    tx.incr("c")
                    tx.set("tx%d" % i, i)
                return tx.results

            async def plain_worker(i):
                return [await r.incr("c") for _ in range(3)]

            jobs = [tx_worker(i) if i % 2 else plain_worker(i) for i in range(400)]
            res = await asyncio.gather(*jobs)
            seen = []
            for i, out in enumerate(res):
                if i % 2:
                    a, b, c, ok = out
                    assert (b, c, ok) == (a + 1, a + 2, True), out
                    seen += [a, b, c]
                else:
                    seen += out
            assert sorted(seen) == list(range(1, 1201))
            assert int(await r.get("c")) == 1200
            with redis_server.admin() as a:
                assert len(a.clients(name)) == 1
    run(main())


@need_redis
def test_transactions_atomic_threads(redis_server):
    errors = []
    with ir.Client(redis_server.url(), timeout=T, pool_size=2) as r:
        def worker(t):
            try:
                for i in range(100):
                    if (t + i) % 2:
                        with r.transaction() as tx:
                            tx.incr("c")
                            tx.incr("c")
                        a, b = tx.results
                        assert b == a + 1
                    else:
                        r.incr("c")
            except BaseException as e:  # pragma: no cover
                errors.append(e)
        ts = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(DEADLINE)
        assert not errors, errors
        assert r.get("c") == b"900"


@need_redis
def test_watch_session(redis_server, run):
    with ir.Client(redis_server.url(), timeout=T) as r, \
            ir.Client(redis_server.url(), timeout=T) as other:
        r.set("bal", 10)
        with r.session() as s:
            s.watch("bal")
            v = int(s.get("bal"))
            with s.transaction() as tx:
                tx.set("bal", v + 1)
            assert tx.results == [True]
        assert r.get("bal") == b"11"
        with r.session() as s:
            s.watch("bal")
            v = int(s.get("bal"))
            other.set("bal", 100)  # someone else changes it
            with pytest.raises(ir.WatchError):
                with s.transaction() as tx:
                    tx.set("bal", v + 1)
        assert r.get("bal") == b"100"
        # A session left with a WATCH standing undoes it on close: a later
        # transaction on that connection is not aborted by the old WATCH.
        with r.session() as s:
            s.watch("bal")
        other.set("bal", 1)
        with r.transaction() as tx:
            tx.incr("bal")
        assert tx.results == [2]
        # An open MULTI is discarded on close.
        with r.session() as s:
            s.execute("MULTI")
            s.set("never", 1)
        assert r.get("never") is None and r.ping() is True

    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=T) as r:
            await r.set("bal", 5)

            async def add(n):
                while True:  # the optimistic-transaction loop
                    async with r.session() as s:
                        await s.watch("bal")
                        v = int(await s.get("bal"))
                        try:
                            async with s.transaction() as tx:
                                tx.set("bal", v + n)
                            return
                        except ir.WatchError:
                            continue
            await asyncio.gather(*(add(1) for _ in range(50)))
            assert await r.get("bal") == b"55"
    run(main())


# ------------------------------------------------------------------ errors

@need_redis
def test_timeout(redis_server, run):
    with ir.Client(redis_server.url(), timeout=0.1) as r:
        with pytest.raises(iok.Timeout):
            r.execute("DEBUG", "SLEEP", "0.5")
        # Once the server answers again, so does the client.
        wait_until(lambda: _pings(r), what="the client to answer again")

    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=0.1) as r:
            with pytest.raises(iok.Timeout):
                await r.execute("DEBUG", "SLEEP", "0.5")
            while True:
                try:
                    assert await r.ping() is True
                    break
                except iok.Timeout:
                    pass
            await r.set("k", "v")
            assert await r.get("k") == b"v"
    run(main())


def _pings(r):
    try:
        return r.ping()
    except iok.Timeout:
        return False


@need_redis
def test_auth(fresh_redis):
    srv = fresh_redis
    with srv.admin() as a:
        a("CONFIG", "SET", "requirepass", "s3cret:@/")
    srv.password = "s3cret:@/"
    for bad in ("redis://:wrong@127.0.0.1:%d" % srv.port, "redis://127.0.0.1:%d" % srv.port,
                "redis://default:wrong@127.0.0.1:%d" % srv.port):
        with pytest.raises(iok.PeerAuthError):
            ir.Client(bad, timeout=T)
        with pytest.raises(iok.PeerAuthError):
            asyncio.run(ir.AsyncClient(bad, timeout=T).initialize())
    # Percent-encoded credentials.
    with ir.Client("redis://default:s3cret%%3A%%40%%2F@127.0.0.1:%d/2" % srv.port, timeout=T) as r:
        assert r.ping() is True
        r.set("in2", 1)
    with srv.admin() as a:
        a("SELECT", 2)
        assert a("GET", "in2") == b"1"


@need_redis
def test_connection_refused_and_background_connect(tmp_path):
    from conftest import free_tcp_port
    port = free_tcp_port()
    with pytest.raises(iok.ConnectionRefused):
        ir.Client("redis://127.0.0.1:%d" % port, timeout=T)
    # wait=False: commands wait for the connection (up to their timeout).
    with ir.Client("redis://127.0.0.1:%d" % port, wait=False, timeout=0.05,
                   reconnect_time_max=50) as r:
        with pytest.raises(iok.Timeout):
            r.ping()
        from redis_fixtures import RedisServer
        srv = RedisServer(tmp_path)
        srv.port = port
        srv.start()
        try:
            wait_until(lambda: _pings(r), what="the background connection")
        finally:
            srv.kill()


@need_redis
def test_unix_socket_and_db(redis_server):
    with ir.Client("redis+unix://%s?db=3" % redis_server.unix, timeout=T) as r:
        r.set("u", "x")
        assert r.get("u") == b"x"
    with ir.Client(redis_server.url(), db=3, timeout=T) as r:
        assert r.get("u") == b"x"
    with ir.Client(redis_server.url(), timeout=T) as r:
        assert r.get("u") is None
    for bad in ("/notanumber", "/?db=x", "/?protocol=7", "/?name=a%20b"):
        with pytest.raises(iok.AddressInvalid):
            ir.Client(redis_server.url() + bad, timeout=T)
    with pytest.raises(iok.AddressInvalid):
        ir.Client(redis_server.url(), name="two words")


@need_redis
def test_closed_client(redis_server, run):
    r = ir.Client(redis_server.url(), timeout=T)
    r.close()
    assert r.closed
    with pytest.raises(iok.Closed):
        r.get("k")

    async def main():
        r = ir.AsyncClient(redis_server.url(), timeout=T)
        blocked = asyncio.ensure_future(r.execute("DEBUG", "SLEEP", "0.2"))
        await asyncio.sleep(0)
        r.close()
        with pytest.raises(iok.Closed):
            await blocked
        with pytest.raises(iok.Closed):
            await r.get("k")
    run(main())
