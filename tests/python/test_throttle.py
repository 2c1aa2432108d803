"""Throttling seen from Python: a req socket capped at 2 requests in flight
with a 1-message send queue.  Blocking sends time out (iok.Timeout),
non-blocking ones say iok.TryAgain, and asyncio requests wait for room
without blocking the event loop, then all complete."""
import asyncio
import threading

import pytest

import iok


def test_sync_outcomes():
    with iok.Push() as push:  # no peer: everything stays queued
        push.setopt("send-buffer-bytes", 100000)
        push.send(b"x" * 65536, timeout=0)  # an empty queue takes any size
        with pytest.raises(iok.TryAgain):
            push.send(b"x" * 65536, timeout=0)
        with pytest.raises(iok.Timeout):
            push.send(b"x" * 65536, timeout=20)
        push.send(b"small", timeout=0)
        assert push.stats["send-waits"] >= 2
        assert push.getopt("send-buffer-bytes", "size") == 100000


def test_asyncio_waits_without_blocking_the_loop(run, ipc_url):
    rep = iok.Rep(listen=ipc_url)
    req = iok.Req(dial=ipc_url)
    req.set_option("req:max-inflight", 2)
    req.set_option("send-buffer", 1)
    stop = threading.Event()

    def answer():
        rep.setopt("recv-timeout", 50)
        while not stop.is_set():
            try:
                m = rep.recv_msg()
            except iok.Timeout:
                continue
            rep.reply(m.token, m.data.upper())

    t = threading.Thread(target=answer)
    t.start()
    try:
        async def main():
            ticks = 0

            async def heartbeat():
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            hb = asyncio.ensure_future(heartbeat())
            replies = await asyncio.gather(*(req.request(b"q%d" % i) for i in range(50)))
            hb.cancel()
            return replies, ticks

        replies, ticks = run(main())
        assert replies == [b"Q%d" % i for i in range(50)]
        assert ticks > 0
        assert req.stats["requests"] == 50
        assert req.stats["send-waits"] >= 1
    finally:
        stop.set()
        t.join()
        req.close()
        rep.close()
