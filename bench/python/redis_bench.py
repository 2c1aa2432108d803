"""iok.redis against redis-py's redis.asyncio, on the same redis-server.

Run through bench/python/redis-run (it builds the module).  The bench
starts its own redis-server (Debian's) on a free 127.0.0.1 port in a
temporary directory (no persistence), pre-populates the keys, and measures
in one interpreter, alternating the two clients:

  GET/SET x C    C coroutines (1, 10, 100) on one event loop, each looping
                 ``await r.get(key)`` / ``await r.set(key, value)`` for
                 about --seconds; ops/s = commands completed / time.
                 iok.redis.AsyncClient: one client, ONE connection.
                 redis.asyncio.Redis (hiredis parser): its default pool (a
                 connection per concurrently running command), and for
                 x100 also a BlockingConnectionPool(max_connections=10).
  uvloop rows    the x100 rows again on uvloop (if it is importable).
  ceiling        redis-benchmark -c 1 -P 16 -t get,set: what ONE connection
                 with 16 commands in flight gets from this server, written
                 in C; the iok figures are also given as a fraction of it.

Connections: while each run is under load (half-way through), a separate
raw-socket connection asks CLIENT LIST and counts the entries other than
itself.
"""
import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import iok
import iok.redis

import redis
import redis.asyncio
import redis.utils

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"
NKEYS = 10000
STALL_S = 30  # a run taking this much longer than asked is a stall


# ------------------------------------------------------------------ server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Admin:
    """A blocking RESP2 client on a raw socket (neither client under test)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.id = self("CLIENT", "ID")

    def close(self):
        self.s.close()

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self._value()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("redis-server closed the admin connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _value(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.s.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("redis-server closed the admin connection")
                self.buf += chunk
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            return [self._value() for _ in range(int(rest))]
        raise RuntimeError("unexpected reply %r" % line)

    def clients(self):
        """Connections to the server other than this one."""
        n = 0
        for ln in self("CLIENT", "LIST").decode().splitlines():
            if ln.strip() and not ln.startswith("id=%d " % self.id):
                n += 1
        return n

    def wait_clients(self, n, timeout=10):
        """Until at most n other connections remain (closed ones go away
        once the server has seen their FIN)."""
        end = time.monotonic() + timeout
        while self.clients() > n:
            if time.monotonic() > end:
                return False
            time.sleep(0.01)
        return True


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="iok-redis-bench-")
        self.port = free_port()
        self.p = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "no", "--logfile", os.path.join(self.dir, "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while True:
            try:
                a = Admin(self.port)
                if a("PING") == "PONG":
                    a.close()
                    break
            except OSError:
                pass
            if self.p.poll() is not None or time.monotonic() > end:
                self.stop()
                raise RuntimeError("redis-server did not start (see %s/log)" % self.dir)
            time.sleep(0.02)
        self.version = Admin(self.port)("INFO", "server").decode()
        self.version = [ln.split(":", 1)[1] for ln in self.version.splitlines()
                        if ln.startswith("redis_version:")][0]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------- workload

KEYS = []
VALS = []


def make_data(port):
    rnd = random.Random(42)
    KEYS[:] = [b"bench:key:%d" % i for i in range(NKEYS)]
    VALS[:] = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789")
                     for _ in range(rnd.randint(16, 64))) for _ in range(NKEYS)]
    r = redis.Redis(host="127.0.0.1", port=port)
    r.flushdb()
    p = r.pipeline(transaction=False)
    for k, v in zip(KEYS, VALS):
        p.set(k, v)
    p.execute()
    assert r.dbsize() == NKEYS
    r.close()


async def _drive(r, opname, conc, seconds, start_index=0):
    """conc coroutines looping r.get(key) / r.set(key, value) until the
    flag drops; returns (commands completed, seconds)."""
    op = getattr(r, opname)
    stop = [False]
    keys, vals, nk = KEYS, VALS, NKEYS

    async def get_worker(i):
        n = 0
        while not stop[0]:
            await op(keys[i])
            i += 1
            if i == nk:
                i = 0
            n += 1
        return n

    async def set_worker(i):
        n = 0
        while not stop[0]:
            await op(keys[i], vals[i])
            i += 1
            if i == nk:
                i = 0
            n += 1
        return n

    worker = set_worker if opname == "set" else get_worker
    loop = asyncio.get_running_loop()
    h = loop.call_later(seconds, stop.__setitem__, 0, True)
    t = time.perf_counter()
    try:
        counts = await asyncio.wait_for(
            asyncio.gather(*(worker((start_index + j * (nk // conc)) % nk) for j in range(conc))),
            seconds + STALL_S)
    finally:
        h.cancel()
    return sum(counts), time.perf_counter() - t


def _loop(kind):
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


def _sampler(admin, delay):
    """A thread that, delay seconds from now, counts the server's
    connections other than admin's own; .box["n"] after join()."""
    box = {"n": None}

    def run():
        time.sleep(delay)
        box["n"] = admin.clients()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.box = box
    return th


def one_run(client, opname, conc, seconds, port, admin, kind="asyncio", pool=None):
    """One timed run on a fresh event loop and client: (ops/s, connections
    counted mid-run)."""
    warm = max(0.1, seconds / 10)

    async def main():
        if client == "iok":
            r = iok.redis.AsyncClient("redis://127.0.0.1:%d" % port)
            close = r.aclose
        else:
            if pool == "blocking10":
                cp = redis.asyncio.BlockingConnectionPool(host="127.0.0.1", port=port,
                                                          max_connections=10)
                r = redis.asyncio.Redis(connection_pool=cp)

                async def close():
                    await r.close()
                    await cp.disconnect()
            else:
                r = redis.asyncio.Redis(host="127.0.0.1", port=port)
                close = r.close
        try:
            await _drive(r, opname, conc, warm, random.randrange(NKEYS))
            th = _sampler(admin, seconds / 2)
            n, dt = await _drive(r, opname, conc, seconds, random.randrange(NKEYS))
            th.join()
            return n / dt, th.box["n"]
        finally:
            await close()

    loop = _loop(kind)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def measure_pair(spec, repeat, seconds, port, admin, ceiling_n=0):
    """iok and redis.asyncio alternately, repeat runs each; with ceiling_n,
    a redis-benchmark run of the same command in each round too, so that
    iok/ceiling is a median of side-by-side ratios (this VM's speed drifts
    by a third between minutes)."""
    opname, conc, kind, pool = spec
    iv, rv, ic, rc, cv = [], [], [], [], []
    for _ in range(repeat):
        if ceiling_n:
            admin.wait_clients(0)
            cv.append(redis_benchmark(port, ceiling_n, opname)[opname.upper()])
        for client, vals, conns in (("iok", iv, ic), ("redis-py", rv, rc)):
            if not admin.wait_clients(0):
                print("  warning: %d stale connections to the server" % admin.clients(),
                      file=sys.stderr)
            v, c = one_run(client, opname, conc, seconds, port, admin, kind,
                           pool if client == "redis-py" else None)
            vals.append(v)
            conns.append(c)
    ratio = statistics.median(a / b for a, b in zip(iv, rv))
    side = [a / c for a, c in zip(iv, cv)]
    return {
        "iok": statistics.median(iv), "redis_py": statistics.median(rv), "ratio": ratio,
        "iok_min": min(iv), "iok_max": max(iv),
        "ceiling_runs": cv, "iok_of_ceiling_side": statistics.median(side) if side else None,
        "iok_conns": max(ic), "redis_py_conns": max(rc),
        "iok_runs": iv, "redis_py_runs": rv, "iok_conns_runs": ic, "redis_py_conns_runs": rc,
    }


# --------------------------------------------------------- redis-benchmark

def redis_benchmark(port, n, ops="get,set"):
    out = subprocess.run(
        [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", "1", "-P", "16",
         "-t", ops, "-n", str(n), "-d", "40", "-q", "--csv"],
        check=True, capture_output=True, text=True, timeout=120).stdout
    rates = {}
    for ln in out.splitlines():
        f = [x.strip('"') for x in ln.split(",")]
        if len(f) >= 2 and f[0] in ("GET", "SET"):
            rates[f[0]] = float(f[1])
    if set(rates) != set(ops.upper().split(",")):
        raise RuntimeError("could not parse redis-benchmark output:\n" + out)
    return rates


def measure_ceiling(port, repeat, seconds):
    probe = redis_benchmark(port, 50000)
    n = max(50000, int(min(probe.values()) * seconds))
    runs = [redis_benchmark(port, n) for _ in range(repeat)]
    return {op: statistics.median(r[op] for r in runs) for op in ("GET", "SET")}, n, runs


# ------------------------------------------------------------------ main

def check_hiredis(port):
    if not redis.utils.HIREDIS_AVAILABLE:
        raise SystemExit("redis-py's hiredis parser is not available (install python3-hiredis)")

    async def parser_name():
        r = redis.asyncio.Redis(host="127.0.0.1", port=port)
        try:
            assert await r.get(KEYS[0]) == VALS[0]
            return type(r.connection_pool._available_connections[0]._parser).__name__
        finally:
            await r.close()

    loop = asyncio.new_event_loop()
    try:
        name = loop.run_until_complete(parser_name())
    finally:
        loop.close()
    if name != "HiredisParser":
        raise SystemExit("redis.asyncio uses %s, not HiredisParser" % name)
    return name


def check_iok(port):
    async def go():
        async with iok.redis.AsyncClient("redis://127.0.0.1:%d" % port) as r:
            got = await asyncio.gather(*(r.get(KEYS[i]) for i in range(100)))
            assert got == VALS[:100], "iok.redis returned wrong values"

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(go())
    finally:
        loop.close()


def fmt(v):
    return "%.0f" % v if v is not None else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    ap.add_argument("--seconds", type=float, default=1.5, help="traffic per run")
    ap.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    ap.add_argument("--no-uvloop", action="store_true", help="skip the uvloop rows")
    a = ap.parse_args()
    R, S = a.repeat, a.seconds

    srv = Server()
    try:
        make_data(srv.port)
        parser = check_hiredis(srv.port)
        check_iok(srv.port)
        admin = Admin(srv.port)
        load = os.getloadavg()
        print("redis-server %s on 127.0.0.1:%d; %d keys, values 16-64 B; %d runs of %.1f s "
              "per figure; load average %.2f" % (srv.version, srv.port, NKEYS, R, S, load[0]),
              file=sys.stderr, flush=True)

        specs = []
        for opname in ("get", "set"):
            for conc in (1, 10, 100):
                specs.append(("%s x%d" % (opname.upper(), conc), (opname, conc, "asyncio", None)))
            specs.append(("%s x100, redis-py pool 10" % opname.upper(),
                          (opname, 100, "asyncio", "blocking10")))
        if uvloop is not None and not a.no_uvloop:
            for opname in ("get", "set"):
                specs.append(("%s x100 uvloop" % opname.upper(), (opname, 100, "uvloop", None)))

        probe = redis_benchmark(srv.port, 50000)
        side_n = max(50000, int(min(probe.values()) * S))
        rows = []
        for name, spec in specs:
            res = measure_pair(spec, R, S, srv.port, admin, side_n if spec[1] == 100 else 0)
            res.update(name=name, op=spec[0].upper(), coroutines=spec[1], loop=spec[2],
                       redis_py_pool="BlockingConnectionPool(max_connections=10)"
                       if spec[3] == "blocking10" else "default ConnectionPool")
            rows.append(res)
            print("  %-28s iok %8.0f/s (%s conn)   redis.asyncio %8.0f/s (%s conns)   "
                  "iok/redis-py %5.2f" % (name, res["iok"], res["iok_conns"], res["redis_py"],
                                          res["redis_py_conns"], res["ratio"]),
                  file=sys.stderr, flush=True)

        admin.wait_clients(0)
        ceiling, ceil_n, ceil_runs = measure_ceiling(srv.port, R, S)
        print("  redis-benchmark -c1 -P16: GET %.0f/s  SET %.0f/s (-n %d)"
              % (ceiling["GET"], ceiling["SET"], ceil_n), file=sys.stderr, flush=True)
        admin.close()
    finally:
        srv.stop()

    for row in rows:
        # Side by side where measured (the x100 rows), else against the
        # ceiling measured at the end.
        row["iok_of_ceiling"] = row["iok_of_ceiling_side"] or row["iok"] / ceiling[row["op"]]

    print()
    print("Redis bench: iok %s AsyncClient (one connection) vs redis.asyncio %s (%s), "
          "redis-server %s on 127.0.0.1, %d CPUs; medians of %d runs of ~%.1f s, the two "
          "clients alternating; ratio = median of the side-by-side ratios; conns = server "
          "connections counted mid-run (CLIENT LIST); ceiling = redis-benchmark -c 1 -P 16 "
          "(GET %.0f/s, SET %.0f/s)" % (iok.__version__, redis.__version__, parser, srv.version,
                                       os.cpu_count(), R, S, ceiling["GET"], ceiling["SET"]))
    print()
    hdr = ("workload", "iok ops/s", "iok min-max", "redis.asyncio ops/s", "iok/redis-py",
           "iok conns", "redis-py conns", "iok/ceiling")
    print("| %-28s | %10s | %15s | %19s | %12s | %9s | %14s | %11s |" % hdr)
    print("|%s|%s|%s|%s|%s|%s|%s|%s|" % ("-" * 30, "-" * 12, "-" * 17, "-" * 21, "-" * 14,
                                         "-" * 11, "-" * 16, "-" * 13))
    for r in rows:
        print("| %-28s | %10s | %15s | %19s | %12.2f | %9s | %14s | %10.0f%%%s |" % (
            r["name"], fmt(r["iok"]), "%s-%s" % (fmt(r["iok_min"]), fmt(r["iok_max"])),
            fmt(r["redis_py"]), r["ratio"], r["iok_conns"], r["redis_py_conns"],
            100 * r["iok_of_ceiling"], "*" if r["iok_of_ceiling_side"] else " "))
    print()
    print("ceiling, redis-benchmark -c 1 -P 16 -d 40 (one connection, 16 commands in flight, "
          "C): GET %.0f/s, SET %.0f/s; * = median of ratios to a ceiling run in the same round"
          % (ceiling["GET"], ceiling["SET"]))
    print("target (not asserted): GET/SET x100 over one connection >= 2x redis.asyncio "
          "(default pool):", ", ".join(
              "%s %.2fx" % (r["name"], r["ratio"]) for r in rows
              if r["coroutines"] == 100 and r["loop"] == "asyncio"
              and r["redis_py_pool"].startswith("default")))

    if a.json:
        with open(a.json, "w") as f:
            json.dump({
                "iok_version": iok.__version__, "redis_py_version": redis.__version__,
                "redis_py_parser": parser, "redis_server_version": srv.version,
                "cpus": os.cpu_count(), "loadavg_at_start": load, "repeat": R, "seconds": S,
                "keys": NKEYS, "value_bytes": [16, 64], "python": sys.version,
                "uvloop": getattr(uvloop, "__version__", None),
                "rows": rows,
                "ceiling": {"command": "redis-benchmark -c 1 -P 16 -t get,set -d 40 -n %d"
                            % ceil_n, "median": ceiling, "runs": ceil_runs},
            }, f, indent=2)


if __name__ == "__main__":
    main()
