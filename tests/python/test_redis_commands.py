"""iok.redis's redis-py surface (issue 9, item 4): the everyday commands,
their arguments and reply shapes as redis-py gives them, checked against a
real redis-server.  The cases follow the behaviour redis-py's own test
suite expects of each command (rewritten here, not copied), run on the sync
Client and, for the asyncio surface, on AsyncClient."""
import asyncio
import inspect

import pytest

import iok
import iok.redis as ir
from conftest import wait_until
from redis_fixtures import need_redis, redis_module_server, redis_server  # noqa: F401

T = 30.0

pytestmark = need_redis


@pytest.fixture
def r(redis_server):
    c = ir.Redis(redis_server.url(db=9), socket_timeout=T)
    c.flushdb()
    yield c
    c.close()


def test_strings(r):
    assert r.set("a", "1") is True
    assert r.set("a", "2", nx=True) is None
    assert r.set("missing", "x", xx=True) is None
    assert r.set("a", "3", xx=True) is True
    assert r.set("a", "4", get=True) == b"3"
    assert r.set("e", "v", ex=100) is True and 0 < r.ttl("e") <= 100
    assert r.set("e", "w", keepttl=True) is True and r.ttl("e") > 0
    assert r.set("p", "v", px=100000) is True and 0 < r.pttl("p") <= 100000
    assert r.getset("a", "5") == b"4"
    assert r.setnx("a", "6") is False and r.setnx("b", "1") is True
    assert r.mset({"m1": 1, "m2": "two"}) is True
    assert r.mget(["m1", "m2", "nope"]) == [b"1", b"two", None]
    assert r.mget("m1", "m2") == [b"1", b"two"]
    assert r.msetnx({"m1": 9, "m3": 3}) is False and r.get("m3") is None
    assert r.incr("n") == 1 and r.incr("n", 10) == 11 and r.incrby("n", 2) == 13
    assert r.decr("n") == 12 and r.decrby("n", 2) == 10
    assert r.incrbyfloat("f", 1.5) == 1.5 and r.incrbyfloat("f") == 2.5
    assert r.append("s", "ab") == 2 and r.append("s", "cd") == 4 and r.strlen("s") == 4
    assert r.getrange("s", 1, 2) == b"bc"
    assert r.setrange("s", 1, "XY") == 4 and r.get("s") == b"aXYd"
    assert r.getdel("s") == b"aXYd" and r.get("s") is None
    assert r.setex("x", 100, "v") is True and r.ttl("x") > 0
    assert r.type("a") == b"string" or r.type("a") == "string"


def test_keys(r):
    r.mset({"k1": 1, "k2": 2, "k3": 3, "other": 0})
    assert r.exists("k1", "k2", "nope") == 2
    assert r.rename("k1", "k9") is True and r.get("k9") == b"1"
    assert r.renamenx("k9", "k2") is False and r.renamenx("k9", "k1") is True
    with pytest.raises(ir.ResponseError):
        r.rename("nope", "x")
    assert r.unlink("k1", "nope") == 1
    assert r.delete("k2", "nope") == 1
    assert r.expire("k3", 100) is True and r.persist("k3") is True and r.ttl("k3") == -1
    assert r.expireat("k3", 4102444800) is True and r.ttl("k3") > 0
    assert r.expire("nope", 1) is False
    r.mset({"s:%d" % i: i for i in range(50)})
    assert sorted(r.scan_iter(match="s:*", count=7)) == sorted(b"s:%d" % i for i in range(50))
    r.sadd("aset", "x")
    assert list(r.scan_iter(_type="set")) == [b"aset"]
    cursor, keys = r.scan(0, match="s:*", count=1000)
    assert isinstance(cursor, int) and len(keys) <= 50
    assert r.dbsize() == 53
    assert r.randomkey() is not None
    assert r.keys("s:1*") and all(k.startswith(b"s:1") for k in r.keys("s:1*"))


def test_hashes(r):
    assert r.hset("h", "a", 1) == 1
    assert r.hset("h", mapping={"b": 2, "c": 3}) == 2
    assert r.hget("h", "a") == b"1" and r.hget("h", "z") is None
    assert r.hgetall("h") == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert r.hgetall("nope") == {}
    assert r.hmget("h", ["a", "z"]) == [b"1", None]
    assert r.hexists("h", "a") is True and r.hexists("h", "z") is False
    assert r.hincrby("h", "a", 5) == 6
    assert r.hincrbyfloat("h", "f", 0.5) == 0.5
    assert r.hsetnx("h", "a", 0) is False and r.hsetnx("h", "n", 0) is True
    assert sorted(r.hkeys("h")) == [b"a", b"b", b"c", b"f", b"n"]
    assert r.hlen("h") == 5 and len(r.hvals("h")) == 5
    assert r.hstrlen("h", "a") == 1
    assert r.hdel("h", "n", "z") == 1
    assert dict(r.hscan_iter("h", match="a")) == {b"a": b"6"}
    assert dict(r.hscan_iter("h")) == r.hgetall("h")


def test_lists(r):
    assert r.rpush("l", 1, 2, 3) == 3 and r.lpush("l", 0) == 4
    assert r.lrange("l", 0, -1) == [b"0", b"1", b"2", b"3"]
    assert r.llen("l") == 4 and r.lindex("l", 1) == b"1" and r.lindex("l", 9) is None
    assert r.linsert("l", "BEFORE", "2", "1.5") == 5
    assert r.lset("l", 0, "zero") is True
    assert r.lpos("l", "2") == 3
    assert r.lrem("l", 1, "1.5") == 1
    assert r.lpop("l") == b"zero" and r.rpop("l") == b"3"
    assert r.lpop("l", 2) == [b"1", b"2"] and r.lpop("l") is None
    r.rpush("a", "x", "y")
    assert r.rpoplpush("a", "b") == b"y" and r.lmove("a", "b", "LEFT", "RIGHT") == b"x"
    assert r.lrange("b", 0, -1) == [b"y", b"x"]
    assert r.ltrim("b", 0, 0) is True and r.lrange("b", 0, -1) == [b"y"]
    assert r.lpushx("nope", 1) == 0 and r.rpushx("b", "z") == 2
    assert r.blpop(["empty", "b"], 1) == (b"b", b"y")
    assert r.brpop("b", 1) == (b"b", b"z")
    assert r.blpop("b", 0.05) is None and r.brpop(["b"], 0.05) is None
    r.rpush("c", "v")
    assert r.blmove("c", "d", 1, "LEFT", "LEFT") == b"v"
    assert r.brpoplpush("d", "c", 1) == b"v"


def test_sets(r):
    assert r.sadd("s", "a", "b", "c") == 3 and r.sadd("s", "a") == 0
    assert r.smembers("s") == {b"a", b"b", b"c"} and r.smembers("nope") == set()
    assert r.sismember("s", "a") is True and r.sismember("s", "z") is False
    assert r.smismember("s", ["a", "z"]) == [True, False]
    assert r.scard("s") == 3 and r.srem("s", "c", "z") == 1
    r.sadd("t", "b", "x")
    assert r.sinter("s", "t") == {b"b"} and r.sinter(["s", "t"]) == {b"b"}
    assert r.sunion("s", "t") == {b"a", b"b", b"x"} and r.sdiff("s", "t") == {b"a"}
    assert r.sinterstore("u", ["s", "t"]) == 1 and r.smembers("u") == {b"b"}
    assert r.smove("s", "t", "a") is True and r.smove("s", "t", "zz") is False
    assert r.spop("u") == b"b" and r.spop("u") is None
    assert r.srandmember("t") in {b"a", b"b", b"x"} and len(r.srandmember("t", 2)) == 2
    assert set(r.sscan_iter("t")) == {b"a", b"b", b"x"}


def test_sorted_sets(r):
    assert r.zadd("z", {"a": 1, "b": 2, "c": 3}) == 3
    assert r.zadd("z", {"a": 5}, nx=True) == 0 and r.zscore("z", "a") == 1.0
    assert r.zadd("z", {"a": 0.5, "d": 4}, xx=True, ch=True) == 1 and r.zscore("z", "d") is None
    assert r.zrange("z", 0, -1) == [b"a", b"b", b"c"]
    assert r.zrange("z", 0, 1, withscores=True) == [(b"a", 0.5), (b"b", 2.0)]
    assert r.zrange("z", 0, 0, desc=True) == [b"c"]
    assert r.zrevrange("z", 0, 0, withscores=True) == [(b"c", 3.0)]
    assert r.zrangebyscore("z", 1, 3) == [b"b", b"c"]
    assert r.zrangebyscore("z", "-inf", "+inf", start=1, num=1) == [b"b"]
    assert r.zrevrangebyscore("z", 3, 1, withscores=True) == [(b"c", 3.0), (b"b", 2.0)]
    assert r.zrank("z", "c") == 2 and r.zrevrank("z", "c") == 0 and r.zrank("z", "q") is None
    assert r.zcount("z", 1, 3) == 2 and r.zcard("z") == 3
    assert r.zmscore("z", ["a", "q"]) == [0.5, None]
    assert r.zincrby("z", 2, "a") == 2.5
    assert r.zpopmin("z") == [(b"b", 2.0)] and r.zpopmax("z", 1) == [(b"c", 3.0)]
    r.zadd("y", {"m": 7})
    assert r.bzpopmin(["empty", "y"], 1) == (b"y", b"m", 7.0)
    assert r.bzpopmax("y", 0.05) is None
    r.zadd("w", {"p": 1, "q": 2, "r": 3})
    assert r.zremrangebyscore("w", 1, 1) == 1 and r.zremrangebyrank("w", 0, 0) == 1
    assert r.zrem("w", "r", "nope") == 1
    r.zadd("v", {"a": 1, "b": 2})
    assert sorted(r.zscan_iter("v")) == [(b"a", 1.0), (b"b", 2.0)]


def test_streams(r):
    i1 = r.xadd("st", {"f": "1"})
    i2 = r.xadd("st", {"f": "2"}, maxlen=100)
    assert r.xlen("st") == 2
    assert r.xrange("st") == [(i1, {b"f": b"1"}), (i2, {b"f": b"2"})]
    assert r.xrevrange("st", count=1) == [(i2, {b"f": b"2"})]
    assert r.xread({"st": i1}) == [[b"st", [(i2, {b"f": b"2"})]]]
    assert r.xread({"st": i2}) == []
    assert r.xread({"st": i2}, block=50) == []
    assert r.xgroup_create("st", "g", id="0") is True
    got = r.xreadgroup("g", "c1", {"st": ">"}, count=10)
    assert got == [[b"st", [(i1, {b"f": b"1"}), (i2, {b"f": b"2"})]]]
    assert r.xack("st", "g", i1, i2) == 2
    assert r.xgroup_create("new", "g", mkstream=True) is True and r.xlen("new") == 0
    assert r.xdel("st", i1) == 1
    assert r.xtrim("st", maxlen=0, approximate=False) == 1


def test_scripting(r):
    assert r.eval("return {KEYS[1], ARGV[1]}", 1, "k", "v") == [b"k", b"v"]
    sha = r.script_load("return 7")
    assert isinstance(sha, str) and len(sha) == 40
    assert r.script_exists(sha, "0" * 40) == [True, False]
    assert r.evalsha(sha, 0) == 7
    assert r.script_flush() is True
    with pytest.raises(ir.NoScriptError):
        r.evalsha(sha, 0)
    incr = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert incr(keys=["c"], args=[2]) == 2
    r.script_flush()
    assert incr(keys=["c"], args=[3]) == 5   # loaded again on NOSCRIPT


def test_server_and_generic(r):
    info = r.info()
    assert isinstance(info, dict) and isinstance(info["redis_version"], str)
    assert isinstance(info["connected_clients"], int)
    r.set("k", 1)
    assert r.info("keyspace")["db9"]["keys"] == 1
    old = r.config_get("maxmemory-policy")
    assert set(old) == {"maxmemory-policy"}
    assert r.config_set("maxmemory-policy", "allkeys-lru") is True
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    r.config_set("maxmemory-policy", old["maxmemory-policy"])
    assert r.execute_command("SET", "x", "y") in (b"OK", "OK")
    assert r.execute_command("GET", "x") == b"y"
    assert r.ping() is True and r.echo("hi") == b"hi"
    sec, usec = r.time()
    assert sec > 0 and 0 <= usec < 10 ** 6


def test_lock(r):
    lock = r.lock("L", timeout=10)
    assert lock.acquire(blocking=False) is True
    assert lock.locked() and lock.owned()
    other = r.lock("L", timeout=10)
    assert other.acquire(blocking=False) is False
    assert other.acquire(blocking_timeout=0.05) is False
    assert lock.extend(10) is True and r.pttl("L") > 10000
    lock.release()
    assert not lock.locked()
    with pytest.raises(ir.LockError):
        lock.release()
    short = r.lock("L", timeout=0.05)
    assert short.acquire() is True
    wait_until(lambda: r.get("L") is None, what="the lock to expire")
    with pytest.raises(ir.LockNotOwnedError):
        short.extend(1)


def test_lock_not_owned_on_release(r):
    with pytest.raises(ir.LockNotOwnedError):
        with r.lock("L2", timeout=10):
            r.set("L2", "taken by another")


def test_transaction_helper(r):
    r.set("acct", 10)

    def double(pipe):
        v = int(pipe.get("acct"))
        if v == 10:
            r.set("acct", 11)  # someone else writes: WATCH fails, func runs again
        pipe.multi()
        pipe.set("acct", v * 2)
        return v
    assert r.transaction(double, "acct") == [True]
    assert r.get("acct") == b"22"
    assert r.transaction(double, "acct", value_from_callable=True) == 22
    assert r.get("acct") == b"44"


def test_decode_responses(redis_server):
    with ir.Redis(redis_server.url(db=9), decode_responses=True, socket_timeout=T) as r:
        r.hset("dh", mapping={"a": "é"})
        assert r.hgetall("dh") == {"a": "é"}
        assert r.get("nope") is None
        assert r.type("dh") == "hash"


def test_async_surface(redis_server, run):
    for name, fn in vars(ir.Commands).items():
        if name.startswith("_") or not callable(fn) or name == "execute_command":
            continue
        m = getattr(ir.AsyncClient, name)
        assert inspect.iscoroutinefunction(m), name
        assert m.__doc__, name
        inspect.signature(m)
    for name in ("execute", "execute_command", "initialize", "aclose"):
        assert inspect.iscoroutinefunction(getattr(ir.AsyncClient, name)), name
    assert inspect.isasyncgenfunction(ir.AsyncClient.scan_iter)
    assert ir.asyncio.Redis is ir.AsyncRedis and ir.StrictRedis is ir.Redis

    async def main():
        r = ir.asyncio.Redis(host="127.0.0.1", port=redis_server.port, db=9, socket_timeout=T)
        await r.flushdb()
        assert await r.set("a", 1, ex=100) is True
        assert await r.incr("a") == 2
        assert await r.hset("h", mapping={"x": 1}) == 1
        assert await r.hgetall("h") == {b"x": b"1"}
        assert await r.zadd("z", {"m": 1}) == 1
        assert await r.zrange("z", 0, -1, withscores=True) == [(b"m", 1.0)]
        assert await r.blpop("nope", 0.05) is None
        assert (await r.info())["redis_version"]
        xid = await r.xadd("s", {"k": "v"})
        assert await r.xrange("s") == [(xid, {b"k": b"v"})]
        assert sorted([k async for k in r.scan_iter()]) == [b"a", b"h", b"s", b"z"]
        ps1, ps2 = r.pubsub(), r.pubsub()
        await ps1.subscribe("c")
        await ps2.subscribe("c")
        m = await ps1.get_message(timeout=T)
        assert m["type"] == "subscribe"  # redis-py's default: not ignored
        assert await ps1.get_message() is None
        assert await r.publish("c", "d") == 2
        assert (await ps1.get_message(ignore_subscribe_messages=True, timeout=T))["data"] == b"d"
        assert (await ps2.get_message(ignore_subscribe_messages=True, timeout=T))["data"] == b"d"
        await ps1.close()
        await ps2.aclose()
        async with r.lock("L", timeout=5) as lk:
            assert await lk.owned()
        await r.aclose()
    run(main())


def _stand_ins():
    """Arguments a command method might treat differently from a plain
    key: None, numbers, containers, a datetime, a timedelta."""
    import datetime
    return [None, 0, 7, 1.5, "k", b"k", ["a", "b"], ("a",), {"f": 1},
            datetime.datetime(2030, 1, 2), datetime.timedelta(seconds=5)]


def test_async_plans_in_c_match_the_methods():
    """An AsyncClient command whose method passes its arguments on plans in
    C (_pass_through_plan); for every kind of argument that plan must equal
    the method's own, options and keywords must reach the method, and a
    method that looks at an argument (EXPIREAT converts a datetime, MGET
    flattens a list) must keep its own plan."""
    planned = []
    for name, fn in vars(ir.Commands).items():
        if name.startswith("_") or not callable(fn):
            continue
        plan = ir._pass_through_plan(fn)
        if plan is None:
            continue
        planned.append(name)
        code = fn.__code__
        varargs = code.co_flags & 0x04
        required = code.co_argcount - 1 - len(fn.__defaults__ or ())
        for n in ((0, 1, 2, 5) if varargs else (required,)):
            for v in _stand_ins():
                args = (v,) * n
                assert _same(plan(*args), fn(ir._PLAN, *args)), (name, v, n)
        params = code.co_varnames[1:code.co_argcount]
        if params and not varargs:
            kw = dict(zip(params, range(len(params))))  # every parameter by keyword
            assert _same(plan(**kw), fn(ir._PLAN, **kw)), name
        if not fn.__defaults__ and not varargs:
            with pytest.raises(TypeError) as e:
                plan(*range(required + 1))
            assert name in str(e.value)
    assert {"get", "set", "delete", "exists", "incr", "hget", "ttl", "ping"} <= set(planned)
    for name in ("expireat", "mget", "hset", "zadd", "incrbyfloat"):
        assert ir._pass_through_plan(getattr(ir.Commands, name)) is None, name
    p = ir._pass_through_plan(ir.Commands.set)
    assert p("k", "v") == (("SET", "k", "v"), ir._ok_or_none, 0)
    assert p("k", "v", ex=5) == ir.Commands.set(ir._PLAN, "k", "v", ex=5)
    assert p("k", "v", 5)[0] == ["SET", "k", "v", "EX", 5]  # an option given by position
    assert ir._pass_through_plan(ir.Commands.incr)("n", 3)[0] == ("INCRBY", "n", 3)


def _same(a, b):
    """Two plans alike: the same command (a tuple or a list), transform and
    flags."""
    return list(a[0]) == list(b[0]) and a[1] is b[1] and a[2] == b[2]


def test_marked_method_must_pass_its_arguments_on():
    """@_passes_on on a method that changes an argument is refused when the
    plan is made (at import for Commands), never a wrong command sent."""
    @ir._passes_on
    def touched(self, name, flag=False):
        return self._cmd(("X", str(name)))

    @ir._passes_on
    def varied(self, *names):
        return self._cmd(("Y",) + names[:1])
    for fn in (touched, varied):
        with pytest.raises(TypeError, match="does not pass its arguments on"):
            ir._pass_through_plan(fn)


def test_async_commands_planned_in_c(redis_server, run):
    """The C-planned path end to end: positional, keyword, the wrong count;
    and EXPIREAT's datetime still converted on the path that keeps its plan."""
    import datetime

    async def main():
        r = ir.AsyncClient(redis_server.url(db=9), socket_timeout=T)
        await r.flushdb()
        assert await r.set("k", "v") is True
        assert await r.get("k") == b"v"
        assert await r.get(name="k") == b"v"
        assert await r.hsetnx("h", "f", 1) is True and await r.hget("h", "f") == b"1"
        with pytest.raises(TypeError):
            await r.get("k", "extra")
        with pytest.raises(TypeError):
            await r.get()
        assert await r.expireat("k", datetime.datetime.now() + datetime.timedelta(hours=1))
        assert 3000 < await r.ttl("k") <= 3600
        # marked methods: the plain call in C, options through the method
        assert await r.set("s", "1") is True and await r.ttl("s") == -1
        assert await r.set("s", "2", ex=100) is True and 0 < await r.ttl("s") <= 100
        assert await r.set("s", "3", nx=True) is None and await r.get("s") == b"2"
        assert await r.incr("n") == 1 and await r.incr("n", 5) == 6 and await r.decr("n") == 5
        assert await r.exists("s", "n", "nope") == 2
        assert await r.delete("s", "n") == 2 and await r.exists("s", "n") == 0
        await r.aclose()
    run(main())


def test_async_command_is_a_coroutine(redis_server, run):
    """r.get("k") is an _iok.Command: asyncio takes it as a coroutine
    (create_task, wait_for, gather), and by hand send, throw and close
    behave as a coroutine's; a throw or close while it awaits forgets its
    reply, and the late reply reaches nobody else."""
    from iok import _iok

    async def main():
        r = ir.AsyncClient(redis_server.url(db=9), socket_timeout=T)
        await r.flushdb()
        await r.set("k", "v")
        c = r.get("k")
        assert isinstance(c, _iok.Command) and asyncio.iscoroutine(c)
        assert c.__qualname__ == "AsyncClient.get" and "AsyncClient.get" in repr(c)
        assert await asyncio.create_task(c) == b"v"
        assert await asyncio.wait_for(r.get("k"), T) == b"v"
        assert await asyncio.gather(r.get("k"), r.exists("k"), r.set("j", 1)) == [b"v", 1, True]
        assert await ir.AsyncClient.get(r, "k") == b"v"  # the method, unbound
        g = r.get  # and bound, kept as a value
        assert await g("k") == b"v" and await g(name="j") == b"1"
        assert g.__self__ is r and g.__func__ is ir.AsyncClient.get and g.__name__ == "get"
        assert list(inspect.signature(g).parameters) == ["name"]
        assert inspect.iscoroutinefunction(g) and asyncio.iscoroutinefunction(r.get)
        pending = r._sock._aio.pending
        for end in ("throw", "close"):
            c = r.get("k")
            reply = c.send(None)  # sent: it yields its Reply to the task
            assert isinstance(reply, _iok.Reply) and list(pending.values()) == [reply]
            if end == "throw":
                with pytest.raises(KeyError, match="thrown"):
                    c.throw(KeyError("thrown"))
            else:
                assert c.close() is None
            assert not pending, end
            with pytest.raises(RuntimeError, match="already awaited"):
                c.send(None)
            assert await r.get("j") == b"1", end  # not the dropped reply
        with pytest.raises(ValueError):
            r.get("k").throw(ValueError)  # before it starts: raised, nothing sent
        assert not pending
        with pytest.raises(ir.ResponseError, match="not an integer") as e:
            await r.incr("k")  # the server's error, through the C path
        assert e.traceback
        c = r.get("k")
        with pytest.raises(TypeError, match="non-None"):
            c.send(1)
        c.close()  # still unstarted: closed, no warning
        await r.aclose()
    run(main())


def test_async_command_never_awaited_warns(redis_server):
    """A command never awaited sends nothing and warns as an unawaited
    coroutine does."""
    r = ir.AsyncClient(redis_server.url(db=9), socket_timeout=T)
    with pytest.warns(RuntimeWarning, match="'AsyncClient.get' was never awaited"):
        r.get("k")
    r.close()


def test_async_command_runs_its_coroutine_when_needed(redis_server, run):
    """The C path hands over to the command's coroutine (from its start,
    nothing sent) before the first connection and when the link check is
    due; otherwise no Python frame runs for a command."""
    import sys
    code = ir.AsyncClient.get.__code__
    frames = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code is code:
            frames.append(frame.f_code.co_name)

    async def main():
        r = ir.AsyncClient(redis_server.url(db=9), socket_timeout=T)
        sys.setprofile(profile)
        try:
            assert await r.exists("k") in (0, 1) and frames, "no connection yet"
            del frames[:]
            assert await r.set("k", "v") is True and await r.get("k") == b"v"
            assert not frames, "connected: no frame"
            r._check_at = 0
            assert await r.get("k") == b"v" and frames, "link check due"
            del frames[:]
            assert await r.get("k") == b"v" and not frames
            r._suspect = True  # a C field (ClientBase), as _check_at
            assert await r.get("k") == b"v" and frames, "link suspect"
            assert r._suspect is False and r._check_at > 0  # looked at, found up
            del frames[:]
            assert await r.get("k") == b"v" and not frames
        finally:
            sys.setprofile(None)
        await r.aclose()
    run(main())


def test_async_commands_wait_for_room_to_send(redis_server, run, monkeypatch):
    """A full send queue (one message, a send rate of 2000/s) makes
    _redis_submit say so; each command waits for the socket to be writable
    and sends again, and every reply reaches its own command."""
    from iok import _aio
    waits = []
    writable = _aio._State.writable

    def counted(self, sock):
        waits.append(1)
        return writable(self, sock)
    monkeypatch.setattr(_aio._State, "writable", counted)

    async def main():
        r = ir.AsyncClient(redis_server.url(db=9), socket_timeout=T)
        await r.flushdb()
        r._sock.setopt("send-buffer", 1)
        r._sock.setopt("send-rate", 2000)
        n = 300
        got = await asyncio.gather(*(r.incrby("n:%d" % i, i + 1) for i in range(n)))
        assert got == [i + 1 for i in range(n)]
        assert await r.dbsize() == n
        waited = len(waits)
        async with r.pipeline(transaction=False) as p:  # a pipeline's commands, too
            for i in range(n):
                p.get("n:%d" % i)
            assert await p.execute() == [b"%d" % (i + 1) for i in range(n)]
        assert len(waits) > waited, "the pipeline never found the queue full"
        assert waits, "the queue never filled: the test did not test"
        await r.aclose()
    run(main())


def test_ok_transforms():
    """SET's and the writes' reply transforms (C): "OK" as str or bytes,
    the decoder's own objects or not, is True; anything else is passed on
    (_ok) or None (_ok_or_none)."""
    for ok in ("OK", b"OK", "".join(["O", "K"]), bytes(bytearray(b"OK"))):
        assert ir._ok(ok) is True and ir._ok_or_none(ok) is True
    for other in (None, "ok", b"OKK", "", 1, ["OK"]):
        assert ir._ok(other) is other
        assert ir._ok_or_none(other) is None


def test_sync_pubsub_redis_py_semantics(redis_server):
    with ir.Redis(redis_server.url(db=9), socket_timeout=T) as r:
        ps = r.pubsub()
        assert ps.get_message() is None          # nothing subscribed: at once
        ps.subscribe("ch")
        assert ps.get_message(timeout=T)["type"] == "subscribe"
        assert ps.get_message() is None          # no timeout: returns at once
        assert ps.get_message(timeout=0.05) is None
        r.publish("ch", "x")
        assert ps.get_message(timeout=1.0)["data"] == b"x"
        r.publish("ch", "y")
        assert next(iter(ps.listen()))["data"] == b"y"
        ps.close()


def test_get_message_waits_its_timeout_in_seconds(redis_server, run):
    """get_message(timeout=s) waits up to s seconds (not milliseconds, not
    at once) and is woken by a message published meanwhile, sync and
    asyncio; Client(timeout=5) is 5 seconds."""
    import threading
    import time
    assert ir.Client("redis://127.0.0.1:1", wait=None, timeout=5).timeout == 5.0
    with ir.Redis(redis_server.url(db=9), socket_timeout=T) as r:
        ps = r.pubsub(ignore_subscribe_messages=True)
        ps.subscribe("wait-ch")
        t0 = time.monotonic()
        assert ps.get_message(timeout=0.3) is None
        assert time.monotonic() - t0 >= 0.25  # waited (a timer may round: not 0.3 exactly)
        go = threading.Event()

        def publish():
            go.wait(T)
            r.publish("wait-ch", "late")
        th = threading.Thread(target=publish)
        th.start()
        go.set()
        assert ps.get_message(timeout=T)["data"] == b"late"  # woken by it
        th.join()
        ps.close()

    async def main():
        r = ir.asyncio.Redis.from_url(redis_server.url(db=9), socket_timeout=T)
        ps = r.pubsub()
        await ps.subscribe("wait-ch")
        t0 = time.monotonic()
        assert await ps.get_message(ignore_subscribe_messages=True, timeout=0.3) is None
        assert time.monotonic() - t0 >= 0.25
        waiter = asyncio.ensure_future(ps.get_message(ignore_subscribe_messages=True, timeout=T))
        await asyncio.sleep(0)
        await r.publish("wait-ch", "late")
        assert (await waiter)["data"] == b"late"
        await ps.aclose()
        await r.close()  # redis.asyncio's habit: close() is awaitable
        assert r.closed
        with pytest.raises(iok.Closed):
            await r.get("k")
    run(main())
