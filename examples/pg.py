#!/usr/bin/python3
"""iok.pg in a page: 1,000 concurrent queries over ONE PostgreSQL
connection, a transaction, LISTEN/NOTIFY on the same connection.

    examples/pg.py [postgresql://user:password@host:port/db]

Without a URL (nor $IOK_PG_URL) it starts a throwaway cluster with
tests/pgcluster.py (Debian's postgresql package) and removes it after.
Run it with PYTHONPATH=<build>/bindings/python.
"""
import asyncio
import os
import sys

import iok.pg


async def demo(url):
    async with iok.pg.AsyncClient(url) as db:
        # 1,000 coroutines, one server connection: the queries are pipelined.
        got = await asyncio.gather(*(db.fetchval("SELECT $1::int + 1", i) for i in range(1000)))
        assert got == [i + 1 for i in range(1000)]
        pid = {r["pid"] for r in await asyncio.gather(
            *(db.fetchrow("SELECT pg_backend_pid() AS pid") for _ in range(100)))}
        print("1000 queries pipelined over %d connection(s)" % len(pid))

        await db.execute("CREATE TEMP TABLE accounts (id int PRIMARY KEY, balance numeric)")
        await db.executemany("INSERT INTO accounts VALUES ($1, $2)", [(1, 100), (2, 0)])
        async with db.transaction():  # BEGIN .. COMMIT on a pinned connection
            await db.execute("UPDATE accounts SET balance = balance - 30 WHERE id = 1")
            await db.execute("UPDATE accounts SET balance = balance + 30 WHERE id = 2")
        rows = await db.fetch("SELECT id, balance FROM accounts ORDER BY id")
        print("after the transfer:", [dict(r) for r in rows])
        try:
            await db.execute("INSERT INTO accounts VALUES ($1, $2)", 1, 5)
        except iok.pg.UniqueViolation as e:
            print("duplicate key refused: %s (SQLSTATE %s)" % (e.detail, e.sqlstate))

        async with db.listen("news") as news:  # LISTEN on the same connection
            await db.execute("NOTIFY news, 'hello'")
            n = await news.get()
            print("notification on %r: %r" % (n.channel, n.payload))


def main():
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("IOK_PG_URL")
    if url:
        asyncio.run(demo(url))
        return
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import pgcluster
    with pgcluster.Cluster() as cluster:
        asyncio.run(demo(cluster.url("iok_scram")))


if __name__ == "__main__":
    main()
