"""A small program written for redis-py's asyncio client (redis.asyncio).
test_redis_migration.py runs it as is with redis-py, and with only the
import line below changed to ``import iok.redis.asyncio as redis``.

Usage: redis_asyncio_app.py redis://127.0.0.1:PORT/0
"""
import asyncio
import sys

import redis.asyncio as redis


async def consumer(r, ready, out):
    ps = r.pubsub()
    await ps.subscribe("events")
    ready.set()
    while True:
        msg = await ps.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if msg is None:
            continue
        if msg["data"] == b"stop":
            break
        out.append(msg["data"])
    await ps.unsubscribe("events")
    await ps.close()


async def main(url):
    r = redis.from_url(url)
    await r.flushdb()

    # pub/sub, with a consumer task
    got = []
    ready = asyncio.Event()
    task = asyncio.create_task(consumer(r, ready, got))
    await ready.wait()
    for i in range(3):
        await r.publish("events", "e%d" % i)
    await r.publish("events", "stop")
    await task
    assert got == [b"e0", b"e1", b"e2"], got

    # a pipeline with a transaction
    async with r.pipeline(transaction=True) as pipe:
        res = await pipe.set("counter", 10).incrby("counter", 5).get("counter").execute()
    assert res == [True, 15, b"15"], res

    # optimistic locking: watch, read, multi, write
    async with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch("counter")
                value = int(await pipe.get("counter"))
                pipe.multi()
                pipe.set("counter", value * 2)
                await pipe.execute()
                break
            except redis.WatchError:
                continue
    assert await r.get("counter") == b"30"

    # a Lua script
    add = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await add(keys=["counter"], args=[12]) == 42
    await r.script_flush()
    assert await add(keys=["counter"], args=[1]) == 43   # reloaded after NOSCRIPT

    # a lock
    async with r.lock("resource", timeout=5, blocking_timeout=5):
        assert await r.exists("resource") == 1
    assert await r.exists("resource") == 0

    # SCAN
    await r.mset({"user:1": "a", "user:2": "b", "user:3": "c", "other": "x"})
    keys = sorted([k async for k in r.scan_iter(match="user:*", count=2)])
    assert keys == [b"user:1", b"user:2", b"user:3"], keys

    # errors keep their classes
    try:
        await r.lpush("other", "x")
    except redis.ResponseError as e:
        assert "WRONGTYPE" in str(e)
    else:
        raise AssertionError("no WRONGTYPE")

    await r.close()
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
