"""iok.pg against asyncpg, on the same PostgreSQL server.

Run through bench/python/pg-run (it builds the module and the libpq
ceiling).  The bench starts a private cluster (tests/pgcluster.py: initdb
in a temporary directory, a free 127.0.0.1 port), fills a 10,000-row table
and measures, in one interpreter, alternating the clients:

  select x C     C coroutines (1, 10, 100) each looping
                 ``await db.fetchval("SELECT $1::int", i)`` for --seconds
  pk x C         the same with ``SELECT v FROM kv WHERE k = $1`` (a
                 primary-key lookup in the 10,000-row table)

  iok.pg          AsyncClient: ONE connection, every coroutine's query
                  pipelined on it
  asyncpg 1       asyncpg.create_pool(min_size=1, max_size=1): one
                  connection (asyncpg runs one query at a time on it)
  asyncpg pool10  asyncpg.create_pool(min_size=10, max_size=10)

on asyncio's default loop and on uvloop.  Queries/s = queries completed /
time.  Connections: half-way through each run a separate raw-socket
client counts the run's backends in pg_stat_activity (by
application_name).  Ceiling: libpq's pipeline mode in C on one connection
with 100 queries in flight (pg_pipeline, built by pg-run).
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "python"))

import iok  # noqa: E402
import iok.pg  # noqa: E402
import pgcluster  # noqa: E402
from pg_fixtures import Wire  # noqa: E402

try:
    import asyncpg
except ImportError:  # pragma: no cover
    asyncpg = None
try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

NKEYS = 10000
QUERIES = {
    "select": "SELECT $1::int",
    "pk": "SELECT v FROM kv WHERE k = $1",
}


class Counter(threading.Thread):
    """Counts the run's backends half-way through it."""

    def __init__(self, cluster, name, delay):
        super().__init__(daemon=True)
        self.cluster, self.name, self.delay = cluster, name, delay
        self.count = None
        self.done = threading.Event()

    def run(self):
        if not self.done.wait(self.delay):
            with Wire(self.cluster) as w:
                self.count = int(w.value("SELECT count(*) FROM pg_stat_activity WHERE "
                                         "application_name = '%s'" % self.name))


async def drive(fetchval, sql, conc, seconds):
    """conc coroutines looping fetchval(sql, k); returns queries/s."""
    stop = False
    counts = [0] * conc

    async def worker(w):
        k = w
        n = 0
        while not stop:
            k = k % NKEYS + 1
            v = await fetchval(sql, k)
            if v is None:
                raise AssertionError("no row for %d" % k)
            n += 1
        counts[w] = n
    tasks = [asyncio.ensure_future(worker(w)) for w in range(conc)]
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(*tasks)
    return sum(counts) / (time.perf_counter() - t0)


async def run_iok(cluster, name, sql, conc, seconds):
    db = iok.pg.AsyncClient(cluster.url("iok_trust", application_name=name))
    try:
        await drive(db.fetchval, sql, conc, min(0.2, seconds))  # warm: statements prepared
        counter = Counter(cluster, name, seconds / 2)
        counter.start()
        qps = await drive(db.fetchval, sql, conc, seconds)
        counter.done.set()
        counter.join()
        return qps, counter.count
    finally:
        await db.close()


async def run_asyncpg(cluster, name, sql, conc, seconds, size):
    pool = await asyncpg.create_pool(cluster.url("iok_trust"), min_size=size, max_size=size,
                                     server_settings={"application_name": name})
    try:
        await drive(pool.fetchval, sql, conc, min(0.2, seconds))
        counter = Counter(cluster, name, seconds / 2)
        counter.start()
        qps = await drive(pool.fetchval, sql, conc, seconds)
        counter.done.set()
        counter.join()
        return qps, counter.count
    finally:
        await pool.close()


def ceiling(cluster, binary, sql, seconds):
    if not binary or not os.path.exists(binary):
        return None
    conninfo = "host=127.0.0.1 port=%d user=iok_trust dbname=postgres" % cluster.port
    r = subprocess.run([binary, conninfo, sql, str(seconds), "100", str(NKEYS)],
                       capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        print("pg_pipeline failed: %s" % r.stderr.strip(), file=sys.stderr)
        return None
    return float(r.stdout.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=1, help="runs per cell (the median is shown)")
    ap.add_argument("--concurrency", default="1,10,100")
    ap.add_argument("--no-uvloop", action="store_true")
    ap.add_argument("--ceiling", default=None, help="the pg_pipeline binary")
    ap.add_argument("--json", default=None, help="write the results there too")
    args = ap.parse_args()
    concs = [int(c) for c in args.concurrency.split(",")]
    if asyncpg is None:
        print("pg_bench: asyncpg is not installed (apt-get install python3-asyncpg); "
              "iok.pg alone", file=sys.stderr)
    loops = [("asyncio", asyncio.new_event_loop)]
    if uvloop is not None and not args.no_uvloop:
        loops.append(("uvloop", uvloop.new_event_loop))

    cluster = pgcluster.Cluster()
    cluster.start()
    results = []
    try:
        cluster.psql("CREATE TABLE kv (k int PRIMARY KEY, v text);"
                     "INSERT INTO kv SELECT g, 'value-' || g FROM generate_series(1, %d) g;"
                     "GRANT SELECT ON kv TO PUBLIC; VACUUM ANALYZE kv;" % NKEYS)
        clients = [("iok.pg", lambda *a: run_iok(*a))]
        if asyncpg is not None:
            clients.append(("asyncpg 1", lambda *a: run_asyncpg(*a, 1)))
            clients.append(("asyncpg pool10", lambda *a: run_asyncpg(*a, 10)))
        n = 0
        for loop_name, new_loop in loops:
            for qname, sql in QUERIES.items():
                for conc in concs:
                    for cname, fn in clients:
                        samples, conns = [], None
                        for _ in range(args.repeat):
                            n += 1
                            name = "bench-%d" % n
                            loop = new_loop()
                            try:
                                qps, c = loop.run_until_complete(
                                    fn(cluster, name, sql, conc, args.seconds))
                            finally:
                                loop.close()
                            samples.append(qps)
                            conns = c
                        row = {"loop": loop_name, "query": qname, "coroutines": conc,
                               "client": cname, "qps": statistics.median(samples),
                               "connections": conns}
                        results.append(row)
                        print("%-8s %-6s x%-4d %-15s %10.0f q/s  %s connection(s)" % (
                            loop_name, qname, conc, cname, row["qps"], conns), flush=True)
        ceil = {q: ceiling(cluster, args.ceiling, sql, args.seconds) for q, sql in QUERIES.items()}
    finally:
        cluster.cleanup()

    print()
    for q, v in ceil.items():
        if v is not None:
            print("ceiling  %-6s libpq pipeline, 1 connection, 100 in flight: %10.0f q/s" % (q, v))
    print()

    def get(loop, q, conc, client):
        for r in results:
            if (r["loop"], r["query"], r["coroutines"], r["client"]) == (loop, q, conc, client):
                return r["qps"]
        return None
    top = max(concs)
    for loop_name, _ in loops:
        for q in QUERIES:
            mine = get(loop_name, q, top, "iok.pg")
            pool = get(loop_name, q, top, "asyncpg pool10")
            one = get(loop_name, q, top, "asyncpg 1")
            parts = ["%s %s x%d:" % (loop_name, q, top)]
            if pool:
                parts.append("iok/asyncpg-pool10 = %.2f" % (mine / pool))
            if one:
                parts.append("iok/asyncpg-1conn = %.2f" % (mine / one))
            if ceil.get(q):
                parts.append("iok/libpq-pipeline = %.2f" % (mine / ceil[q]))
            print("  ".join(parts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "ceiling": ceil, "seconds": args.seconds}, f, indent=1)


if __name__ == "__main__":
    main()
