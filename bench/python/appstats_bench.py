"""What a Python application pays per iok.counter(...).inc(), per
iok.marker(name) call and per ``with iok.marker(name):`` block.

    PYTHONPATH=<build>/bindings/python /usr/bin/python3 bench/python/appstats_bench.py
"""
import timeit

import iok

N = 2_000_000


def main():
    c = iok.counter("bench.py.counter")
    t = iok.timer("bench.py.timer")
    m = iok.marker
    cases = [
        ("counter.inc()", lambda: timeit.timeit(c.inc, number=N)),
        ("timer.record(1000)", lambda: timeit.timeit("t.record(1000)", globals={"t": t}, number=N)),
        ("iok.marker(name)", lambda: timeit.timeit("m('bench.py.marker')", globals={"m": m}, number=N)),
        ("with iok.marker(name)", lambda: timeit.timeit("with m('bench.py.marker'): pass",
                                                        globals={"m": m}, number=N)),
    ]
    for name, fn in cases:
        print("%-24s %7.1f ns/call" % (name, min(fn() for _ in range(3)) * 1e9 / N))
    assert c.value == 3 * N


if __name__ == "__main__":
    main()
