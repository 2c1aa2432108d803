"""The Python half of the demo (scripts/demo runs it after the C one).

    PYTHONPATH=build/bindings/python /usr/bin/python3 examples/demo.py

1. req/rep and pub/sub, sync;
2. asyncio: 1,000 requests in flight on ONE req socket;
3. Redis (if redis-server is installed): a throwaway redis-server in a temp
   dir, 1,000 concurrent coroutines pipelined over ONE connection, pub/sub
   on that same connection, and a MULTI/EXEC transaction.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time

import iok
import iok.redis


def sync_part(tmp):
    url = "ipc://%s/rr.sock" % tmp
    with iok.Rep(listen=url) as rep, iok.Req(dial=url) as req:
        req.send(b"ping")
        rep.send(b"pong to " + rep.recv())
        print("req/rep:", req.recv(timeout=2000))

    url = "ipc://%s/ps.sock" % tmp
    with iok.Pub(listen=url) as pub, iok.Sub(dial=url, recv_timeout=2000) as sub:
        sub.subscribe(b"weather.")  # prefix match; b"" = everything
        while pub.stats["pipes"] < 1:  # a publisher drops what nobody takes
            time.sleep(0.01)
        pub.send(b"sport.rugby 21-17")  # filtered out at the subscriber
        pub.send(b"weather.paris sunny")
        print("pub/sub:", sub.recv())


async def async_part(tmp):
    url = "ipc://%s/many.sock" % tmp
    with iok.Rep(listen=url) as rep, iok.Req(dial=url) as req:
        async def serve():
            while True:
                m = await rep.arecv_msg()
                await rep.areply(m.token, b"re: " + m.data)
        server = asyncio.ensure_future(serve())
        t0 = time.perf_counter()
        replies = await asyncio.gather(*(req.request(b"q%d" % i) for i in range(1000)))
        dt = time.perf_counter() - t0
        assert replies == [b"re: q%d" % i for i in range(1000)]
        print("asyncio: 1000 concurrent requests on one req socket, every reply matched "
              "(%.1f ms)" % (dt * 1e3))
        server.cancel()


def start_redis(tmp):
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(server):
        return None, None
    sock = os.path.join(tmp, "redis.sock")
    proc = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
         "--dir", tmp, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Connect in the background (wait=False) and let the first command wait
    # for the server to come up: iok redials with backoff.
    return proc, "redis+unix://" + sock


async def redis_part(url):
    async with iok.redis.AsyncClient(url, wait=False, name="demo", socket_timeout=5.0) as r, \
            iok.redis.AsyncClient(url, wait=False, name="demo-admin", socket_timeout=5.0) as admin:
        await r.ping()

        async def one(i):
            await r.set("key:%d" % i, "value %d" % i)
            return await r.get("key:%d" % i)

        t0 = time.perf_counter()
        values = await asyncio.gather(*(one(i) for i in range(1000)))
        dt = time.perf_counter() - t0
        assert values == [b"value %d" % i for i in range(1000)]
        clients = [line for line in (await admin.execute("CLIENT", "LIST")).splitlines()
                   if " name=demo " in str(line)]
        print("redis: 1000 coroutines, 2000 commands pipelined over %d connection(s), "
              "every value checked (%.1f ms)" % (len(clients), dt * 1e3))

        # Pub/sub on the same connection while commands keep flowing.
        ps = r.pubsub()
        await ps.subscribe("news")
        await admin.publish("news", "hello subscribers")
        counter = await r.incr("counter")
        msg = await ps.get_message(timeout=5.0)
        print("redis: pub/sub on the command connection: %r on %r (and INCR -> %d meanwhile)"
              % (msg.data, msg.channel, counter))
        ps.close()

        # MULTI/EXEC on a pinned connection: nothing else interleaves.
        async with r.transaction() as tx:
            tx.set("balance", 100)
            tx.incrby("balance", -30)
            tx.get("balance")
        print("redis: transaction results:", tx.results)


def main():
    print("iok", iok.__version__)
    with tempfile.TemporaryDirectory(prefix="iok-demo-") as tmp:
        sync_part(tmp)
        asyncio.run(async_part(tmp))
        proc, url = start_redis(tmp)
        if proc is None:
            print("redis: redis-server not installed, Redis part skipped")
            return 0
        try:
            asyncio.run(redis_part(url))
        finally:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
