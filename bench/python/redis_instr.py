"""Instructions per pipelined GET (or SET) through iok.redis, counted by callgrind.

Wall-clock figures on a shared VM move by 2x from minute to minute; the
instructions a GET costs do not (three runs agree to 0.05%).  This starts
its own redis-server (as redis_bench.py does), then runs, under
``valgrind --tool=callgrind``, a script making N GETs (``--command set``: SETs) by 100 coroutines
over one iok.redis.AsyncClient, once with N = 0 and once with N, and
prints (total(N) - total(0)) / N: every thread of the process (the Python
thread and iok's kernel thread), user space only.

    PYTHONPATH=build-pybench/bindings/python /usr/bin/python3 \\
        bench/python/redis_instr.py [--gets 20000] [--runs 1] [--command get|set]

Build the module first (bench/python/redis-run does, into build-pybench).
Needs valgrind and Debian's redis-server.
"""
import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile

COROUTINES = 100


async def _gets(port, n, command):
    import iok.redis
    r = iok.redis.AsyncClient("redis://127.0.0.1:%d" % port)
    value = b"v" * 40
    await r.set("k", value)

    async def worker():
        if command == "set":
            for _ in range(n // COROUTINES):
                await r.set("k", value)
        else:
            for _ in range(n // COROUTINES):
                await r.get("k")

    await asyncio.gather(*(worker() for _ in range(COROUTINES)))
    await r.close()


def _callgrind(port, n, command):
    """Instructions the whole process ran for n commands (and its set-up)."""
    with tempfile.TemporaryDirectory(prefix="iok-callgrind-") as d:
        out = os.path.join(d, "callgrind.out")
        p = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
             sys.executable, os.path.abspath(__file__), "--workload", str(port), str(n), command],
            capture_output=True, text=True, check=True)
    m = re.search(r"Collected : (\d+)", p.stderr)
    if m is None:
        raise RuntimeError("no callgrind total in:\n" + p.stderr[-2000:])
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gets", type=int, default=20000, help="commands in the measured run")
    ap.add_argument("--runs", type=int, default=1, help="measured runs (each against one base)")
    ap.add_argument("--command", choices=("get", "set"), default="get",
                    help="the command measured (a 40-byte value)")
    ap.add_argument("--workload", nargs=3, metavar=("PORT", "N", "COMMAND"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.workload:
        asyncio.run(_gets(int(a.workload[0]), int(a.workload[1]), a.workload[2]))
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from redis_bench import Server
    srv = Server()
    try:
        base = _callgrind(srv.port, 0, a.command)
        name = a.command.upper()
        for _ in range(a.runs):
            total = _callgrind(srv.port, a.gets, a.command)
            print("instructions per %s: %.0f  (%d %ss by %d coroutines, one connection; "
                  "%d - %d)" % (name, (total - base) / a.gets, a.gets, name, COROUTINES,
                                total, base))
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
