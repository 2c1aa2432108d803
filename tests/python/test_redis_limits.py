"""iok.redis with big values: no reply-size limit by default (a 64 MiB GET
between 100 pipelined INCRs, all correct), and a configured limit
(recv_max_size) that fails only the command whose reply is too big, with
iok.MessageTooLarge, while every command around it succeeds on the same,
never-dropped connection."""
import asyncio

import pytest

import iok
import iok.redis as ir
from redis_fixtures import redis_module_server, redis_server  # noqa: F401  (fixtures)

BIG = 64 << 20


async def burst(r):
    """50 INCRs, GET big, 50 INCRs, all in flight at once."""
    calls = ([r.execute("INCR", "n") for _ in range(50)] + [r.execute("GET", "big")] +
             [r.execute("INCR", "n") for _ in range(50)])
    return await asyncio.gather(*calls, return_exceptions=True)


def run(redis_server, name, **kw):
    value = bytes(range(256)) * (BIG // 256)

    async def main():
        r = ir.AsyncClient(redis_server.url(name), **kw)
        try:
            await r.execute("SET", "big", value)
            first = await burst(r)
            second = await burst(r)
            listed = await r.execute("CLIENT", "LIST")
            text = listed.decode() if isinstance(listed, bytes) else str(listed)
            mine = [ln for ln in text.splitlines() if " name=%s " % name in ln]
            assert len(mine) == 1  # one connection, never replaced
            return first, second, r.stats
        finally:
            await asyncio.sleep(0)
            r.close()

    first, second, stats = asyncio.run(main())
    incrs = first[:50] + first[51:] + second[:50] + second[51:]
    assert sorted(incrs) == list(range(1, 201))
    return value, first[50], second[50], stats


def test_big_get_no_limit(redis_server):  # noqa: F811
    value, a, b, stats = run(redis_server, "bigpy0")
    assert a == value and b == value
    assert stats["pipes-opened"] == 1


def test_big_get_over_limit_fails_alone(redis_server):  # noqa: F811
    _, a, b, stats = run(redis_server, "bigpy1", recv_max_size=1 << 20)
    for e in (a, b):
        assert isinstance(e, iok.MessageTooLarge), repr(e)
    assert stats["pipes-opened"] == 1
    assert stats["reconnects"] == 0
    assert stats["rx-oversize"] == 2
