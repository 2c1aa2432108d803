"""Python-side numbers for iok, side by side with pyzmq, against a C peer.

Run through bench/python/run (it builds the module and the peer).  Every
measurement is a separate C peer process (bench/python/peer.c) on tcp
loopback; the Python side is measured here, in one interpreter, in turn.

  rr sync        round trips/s, one request at a time (iok Req / zmq REQ
                 against a C REP)
  rr async x1    asyncio, one request at a time (iok request() / zmq.asyncio
                 REQ)
  rr async x100  asyncio, 100 requests in flight on ONE socket (iok
                 request() / zmq.asyncio DEALER with a reply dispatcher
                 against a C ROUTER, as REQ allows only one)
  pull msgs/s    messages received in Python from a C PUSH (sync recv loop)
"""
import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import iok
import zmq
import zmq.asyncio

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

PEER = None
SIZE = 16
STALL_MS = 10000  # a reply missing this long is a stall, not a slow run
_port = [27100]


def url():
    _port[0] += 1
    return "tcp://127.0.0.1:%d" % _port[0]


class Peer:
    def __init__(self, *args):
        self.p = subprocess.Popen([PEER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.p.stdout.readline()
        if line.strip() != b"READY":
            raise RuntimeError("peer %s did not start" % (args,))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.p.stdin.close()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


# ---------------------------------------------------------------- req/rep

def iok_rr_sync(n):
    u = url()
    with Peer("iok", "rep", u), iok.Req(dial=u, recv_timeout=STALL_MS) as req:
        payload = b"x" * SIZE
        for _ in range(1000):
            req.send(payload)
            req.recv()
        t = time.perf_counter()
        for _ in range(n):
            req.send(payload)
            req.recv()
        return n / (time.perf_counter() - t)


def zmq_rr_sync(n):
    u = url()
    ctx = zmq.Context()
    with Peer("zmq", "rep", u):
        s = ctx.socket(zmq.REQ)
        s.connect(u)
        payload = b"x" * SIZE
        for _ in range(1000):
            s.send(payload)
            s.recv()
        t = time.perf_counter()
        for _ in range(n):
            s.send(payload)
            s.recv()
        r = n / (time.perf_counter() - t)
        s.close(0)
    ctx.term()
    return r


def _loop(kind):
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


def iok_rr_async(n, conc, kind="asyncio"):
    u = url()
    with Peer("iok", "rep", u), iok.Req(dial=u) as req:
        payload = b"x" * SIZE

        async def worker(k):
            for _ in range(k):
                await req.request(payload)

        async def main():
            await asyncio.gather(*(worker(1000 // conc + 1) for _ in range(conc)))  # warm up
            t = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(worker(n // conc) for _ in range(conc))),
                                   STALL_MS / 1000 + n / 5000)
            return (n // conc * conc) / (time.perf_counter() - t)

        loop = _loop(kind)
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()


def zmq_rr_async1(n, kind="asyncio"):
    u = url()
    with Peer("zmq", "rep", u):
        ctx = zmq.asyncio.Context()
        s = ctx.socket(zmq.REQ)
        s.connect(u)
        payload = b"x" * SIZE

        async def main():
            for _ in range(1000):
                await s.send(payload)
                await s.recv()
            t = time.perf_counter()
            for _ in range(n):
                await s.send(payload)
                await s.recv()
            return n / (time.perf_counter() - t)

        loop = _loop(kind)
        try:
            return loop.run_until_complete(main())
        finally:
            s.close(0)
            ctx.term()
            loop.close()


def zmq_rr_async_many(n, conc, kind="asyncio"):
    """pyzmq's way to many requests in flight on one socket: DEALER, a
    request id frame, and a reader task that hands replies to futures."""
    u = url()
    with Peer("zmq", "router", u):
        ctx = zmq.asyncio.Context()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.SNDHWM, 100000)
        s.setsockopt(zmq.RCVHWM, 100000)
        s.connect(u)
        payload = b"x" * SIZE

        async def main():
            loop = asyncio.get_running_loop()
            pending = {}
            next_id = [0]

            async def reader():
                while True:
                    rid, body = await s.recv_multipart()
                    fut = pending.pop(rid, None)
                    if fut is not None and not fut.done():
                        fut.set_result(body)

            async def request(data):
                next_id[0] += 1
                rid = next_id[0].to_bytes(8, "little")
                fut = loop.create_future()
                pending[rid] = fut
                await s.send_multipart([rid, data])
                return await fut

            async def worker(k):
                for _ in range(k):
                    await request(payload)

            rt = asyncio.ensure_future(reader())
            await asyncio.gather(*(worker(1000 // conc + 1) for _ in range(conc)))
            t = time.perf_counter()
            await asyncio.gather(*(worker(n // conc) for _ in range(conc)))
            r = (n // conc * conc) / (time.perf_counter() - t)
            rt.cancel()
            return r

        loop = _loop(kind)
        try:
            return loop.run_until_complete(main())
        finally:
            s.close(0)
            ctx.term()
            loop.close()


# -------------------------------------------------------------- push/pull

def iok_pull(n):
    u = url()
    with iok.Pull(recv_buffer=65536, recv_timeout=STALL_MS) as pull, \
            Peer("iok", "push", u, str(n), str(SIZE)):
        pull.dial(u)
        pull.recv()
        t = time.perf_counter()
        for _ in range(n - 1):
            pull.recv()
        return (n - 1) / (time.perf_counter() - t)


def zmq_pull(n):
    u = url()
    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    s.setsockopt(zmq.RCVHWM, 100000)
    with Peer("zmq", "push", u, str(n), str(SIZE)):
        s.connect(u)
        s.recv()
        t = time.perf_counter()
        for _ in range(n - 1):
            s.recv()
        r = (n - 1) / (time.perf_counter() - t)
    s.close(0)
    ctx.term()
    return r


def iok_apull(n, kind="asyncio"):
    u = url()
    with iok.Pull(recv_buffer=65536) as pull, Peer("iok", "push", u, str(n), str(SIZE)):
        pull.dial(u)

        async def main():
            await pull.arecv()
            t = time.perf_counter()
            for _ in range(n - 1):
                await pull.arecv()
            return (n - 1) / (time.perf_counter() - t)

        loop = _loop(kind)
        try:
            return loop.run_until_complete(main())
        finally:
            loop.close()


def zmq_apull(n, kind="asyncio"):
    u = url()
    ctx = zmq.asyncio.Context()
    s = ctx.socket(zmq.PULL)
    s.setsockopt(zmq.RCVHWM, 100000)
    with Peer("zmq", "push", u, str(n), str(SIZE)):
        s.connect(u)

        async def main():
            await s.recv()
            t = time.perf_counter()
            for _ in range(n - 1):
                await s.recv()
            return (n - 1) / (time.perf_counter() - t)

        loop = _loop(kind)
        try:
            return loop.run_until_complete(main())
        finally:
            s.close(0)
            ctx.term()
            loop.close()


# ------------------------------------------------------------------ main

def measure(fn, repeat):
    vals, stalls = [], 0
    while len(vals) < repeat:
        try:
            vals.append(fn())
        except (iok.Timeout, asyncio.TimeoutError, zmq.Again):
            stalls += 1
            print("  (a run stalled: a message went missing for %d ms; retrying)" % STALL_MS,
                  file=sys.stderr, flush=True)
            if stalls > repeat:
                raise
    return vals


def measure_pair(fn_iok, fn_zmq, repeat):
    """Alternate iok and pyzmq runs so both see the same machine (others'
    load comes and goes); medians of each, and the median of the ratios
    of runs taken side by side."""
    iv, zv = [], []
    for _ in range(repeat):
        iv += measure(fn_iok, 1)
        zv += measure(fn_zmq, 1)
    ratio = statistics.median(a / b for a, b in zip(iv, zv))
    return statistics.median(iv), statistics.median(zv), ratio


def main():
    global PEER, SIZE
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    ap.add_argument("--size", type=int, default=16)
    a = ap.parse_args()
    PEER, SIZE = a.peer, a.size
    R = a.repeat

    def n(x):
        return max(1000, int(x * a.scale))

    rows = []

    def row(name, unit, iok_v, zmq_v, ratio):
        rows.append((name, unit, iok_v, zmq_v, ratio))
        print("  %-28s iok %12.0f   pyzmq %12.0f   iok/pyzmq %5.2f" % (
            name, iok_v, zmq_v, ratio), file=sys.stderr, flush=True)

    print("measuring (iok and pyzmq alternately, %d runs each)..." % R, file=sys.stderr)
    sync_iok, sync_zmq, r = measure_pair(lambda: iok_rr_sync(n(20000)), lambda: zmq_rr_sync(n(20000)), R)
    row("rr sync", "round trips/s", sync_iok, sync_zmq, r)
    a1_iok, a1_zmq, r = measure_pair(lambda: iok_rr_async(n(20000), 1),
                                     lambda: zmq_rr_async1(n(20000)), R)
    row("rr asyncio x1", "round trips/s", a1_iok, a1_zmq, r)
    a100_iok, a100_zmq, r = measure_pair(lambda: iok_rr_async(n(200000), 100),
                                         lambda: zmq_rr_async_many(n(200000), 100), R)
    row("rr asyncio x100 (one socket)", "round trips/s", a100_iok, a100_zmq, r)
    if uvloop is not None:
        u100_iok, u100_zmq, r = measure_pair(lambda: iok_rr_async(n(200000), 100, "uvloop"),
                                             lambda: zmq_rr_async_many(n(200000), 100, "uvloop"), R)
        row("rr uvloop x100 (one socket)", "round trips/s", u100_iok, u100_zmq, r)
    pull_iok, pull_zmq, pull_r = measure_pair(lambda: iok_pull(n(1000000)),
                                              lambda: zmq_pull(n(1000000)), R)
    row("pull recv (sync)", "msgs/s", pull_iok, pull_zmq, pull_r)
    ap_iok, ap_zmq, r = measure_pair(lambda: iok_apull(n(500000)), lambda: zmq_apull(n(500000)), R)
    row("pull arecv (asyncio)", "msgs/s", ap_iok, ap_zmq, r)

    print()
    print("Python bench: iok %s vs pyzmq %s (libzmq %s), %d-byte messages, tcp loopback, "
          "C peer; medians of %d runs, iok and pyzmq alternating; ratio = median of the "
          "side-by-side ratios" % (iok.__version__, zmq.__version__, zmq.zmq_version(), SIZE, R))
    print()
    print("| %-30s | %-14s | %12s | %12s | %9s |" % ("measurement", "unit", "iok", "pyzmq",
                                                     "iok/pyzmq"))
    print("|%s|%s|%s|%s|%s|" % ("-" * 32, "-" * 16, "-" * 14, "-" * 14, "-" * 11))
    for name, unit, iv, zv, ratio in rows:
        print("| %-30s | %-14s | %12.0f | %12.0f | %9.2f |" % (name, unit, iv, zv, ratio))
    print()
    us_iok, us_zmq = 1e6 / sync_iok, 1e6 / sync_zmq
    checks = [
        ("sync round trip <= pyzmq's", us_iok <= us_zmq,
         "%.1f us vs %.1f us" % (us_iok, us_zmq)),
        ("asyncio x100 >= 5x iok sync rate", a100_iok >= 5 * sync_iok,
         "%.1fx" % (a100_iok / sync_iok)),
        ("msgs/s received in Python >= pyzmq's", pull_r >= 1.0, "%.2fx" % pull_r),
    ]
    print("| %-40s | %-6s | %-22s |" % ("target", "met", "figure"))
    print("|%s|%s|%s|" % ("-" * 42, "-" * 8, "-" * 24))
    for name, ok, fig in checks:
        print("| %-40s | %-6s | %-22s |" % (name, "yes" if ok else "NO", fig))


if __name__ == "__main__":
    main()
