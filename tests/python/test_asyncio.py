"""asyncio: asend/arecv/request, thousands of requests in flight on one
socket, cancellation, close while awaiting, several loops; under the
default loop and uvloop."""
import asyncio
import gc
import threading
import tracemalloc

import pytest

import iok
from conftest import DEADLINE, have_pattern, need_pattern, wait_connected

T = 30000
HAVE_REQREP = have_pattern("req0") and have_pattern("rep0")


def aio_idle(sock):
    """The socket's asyncio state holds nothing: no futures, no reader."""
    a = sock._aio
    return a is None or (not a.pending and not a.waiters and not a.reading and not a.writing
                         and not a.wwaiters)


async def settle():
    for _ in range(3):
        await asyncio.sleep(0)


# ------------------------------------------------------------ push / pull

def test_asend_arecv_order(run, inproc_url):
    async def main():
        with iok.Pull(listen=inproc_url) as pull, iok.Push(dial=inproc_url) as push:
            async def produce():
                for i in range(5000):
                    await push.asend(b"%d" % i)
            p = asyncio.ensure_future(produce())
            got = [await pull.arecv() for _ in range(5000)]
            await p
            assert got == [b"%d" % i for i in range(5000)]
            await settle()
            assert aio_idle(pull) and aio_idle(push)
    run(main())


def test_arecv_waits_for_a_message(run, inproc_url):
    async def main():
        with iok.Pull(listen=inproc_url) as pull, iok.Push(dial=inproc_url) as push:
            waiters = [asyncio.ensure_future(pull.arecv()) for _ in range(3)]
            await settle()
            assert not any(w.done() for w in waiters)
            for i in range(3):
                await push.asend(b"m%d" % i)
            assert await asyncio.gather(*waiters) == [b"m0", b"m1", b"m2"]  # FIFO
    run(main())


def test_arecv_cancel_loses_nothing(run, inproc_url):
    async def main():
        with iok.Pull(listen=inproc_url) as pull, iok.Push(dial=inproc_url) as push:
            for _ in range(50):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(pull.arecv(), 0.001)
            await settle()
            assert aio_idle(pull)  # cancelled waiters are gone, reader removed
            await push.asend(b"after")
            assert await pull.arecv() == b"after"
            # a cancelled waiter does not take the next message
            w1 = asyncio.ensure_future(pull.arecv())
            w2 = asyncio.ensure_future(pull.arecv())
            await settle()
            w1.cancel()
            await push.asend(b"for w2")
            assert await w2 == b"for w2"
            with pytest.raises(asyncio.CancelledError):
                await w1
    run(main())


def test_arecv_msg(run, inproc_url):
    async def main():
        with iok.Pull(listen=inproc_url) as pull, iok.Push(dial=inproc_url) as push:
            t = asyncio.ensure_future(pull.arecv_msg())
            await settle()
            await push.asend(b"hello")
            m = await t
            assert isinstance(m, iok.Message) and m.data == b"hello"
            await push.asend(b"ready")
            await asyncio.sleep(0.01)
            m = await pull.arecv_msg()  # fast path: already waiting
            assert m.data == b"ready"
    run(main())


def test_asend_waits_for_room(run, inproc_url):
    async def main():
        with iok.Push(send_buffer=2) as push:
            await push.asend(b"0")
            await push.asend(b"1")
            blocked = asyncio.ensure_future(push.asend(b"2"))
            await settle()
            assert not blocked.done()
            with iok.Pull(listen=inproc_url) as pull:
                push.dial(inproc_url)
                await blocked
                assert [await pull.arecv() for _ in range(3)] == [b"0", b"1", b"2"]
            await settle()
            assert aio_idle(push)
    run(main())


def test_close_while_awaiting(run, inproc_url):
    async def main():
        pull = iok.Pull(listen=inproc_url)
        push = iok.Push(send_buffer=1)
        await push.asend(b"fill")
        r = asyncio.ensure_future(pull.arecv())
        s = asyncio.ensure_future(push.asend(b"blocked"))
        await settle()
        pull.close()
        push.close()
        with pytest.raises(iok.Closed):
            await r
        with pytest.raises(iok.Closed):
            await s
        with pytest.raises(iok.Closed):
            await pull.arecv()
    run(main())


def test_close_from_another_thread_while_awaiting(run, inproc_url):
    async def main():
        pull = iok.Pull(listen=inproc_url)
        r = asyncio.ensure_future(pull.arecv())
        await settle()
        t = threading.Thread(target=pull.close)
        t.start()
        with pytest.raises(iok.Closed):
            await r
        t.join(DEADLINE)
        await settle()
        with pytest.raises(iok.Closed):
            pull.recv_fd  # descriptors released once the loop let go
    run(main())


def test_socket_used_by_successive_loops(inproc_url):
    pull = iok.Pull(listen=inproc_url)
    push = iok.Push(dial=inproc_url)
    try:
        for _ in range(3):
            async def main():
                await push.asend(b"x")
                w = asyncio.ensure_future(pull.arecv())
                await settle()
                await push.asend(b"y")
                return await pull.arecv(), await w
            assert sorted(asyncio.run(main())) == [b"x", b"y"]
    finally:
        pull.close()
        push.close()


def test_state_follows_the_running_loop(run, inproc_url):
    """The socket's asyncio state is taken without asking for the running
    loop while its loop runs in this thread (no getpid() per call): a new
    loop of either kind, in this thread or another, still gets its own."""
    pull = iok.Pull(listen=inproc_url)
    push = iok.Push(dial=inproc_url)
    loops = []

    async def main(tag):
        loops.append(asyncio.get_running_loop())
        w = asyncio.ensure_future(pull.arecv())
        await settle()
        await push.asend(tag)
        got = await w
        assert pull._aio.loop is loops[-1]
        return got

    try:
        assert run(main(b"first")) == b"first"
        assert run(main(b"second")) == b"second"  # same thread, next loop
        out = []
        th = threading.Thread(target=lambda: out.append(run(main(b"thread"))))
        th.start()
        th.join(DEADLINE)
        assert out == [b"thread"]
        assert run(main(b"back")) == b"back"
        assert len(set(map(id, loops))) == 4
    finally:
        pull.close()
        push.close()


def test_busy_in_another_loop_is_an_error(inproc_url):
    pull = iok.Pull(listen=inproc_url)
    started = threading.Event()
    stop = threading.Event()

    def other():
        async def main():
            t = asyncio.ensure_future(pull.arecv())
            while pull._aio is None or not pull._aio.waiters:
                await asyncio.sleep(0)  # registered with this loop
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.005)
            t.cancel()
        asyncio.run(main())

    th = threading.Thread(target=other)
    th.start()
    started.wait(DEADLINE)
    try:
        async def main():
            with pytest.raises(RuntimeError):
                # not the fast path: must register with this loop
                await asyncio.wait_for(pull.arecv_msg(), DEADLINE)
        asyncio.run(main())
    finally:
        stop.set()
        th.join(DEADLINE)
        pull.close()


# ----------------------------------------------------------------- req/rep

async def echo_server(rep, n=None, transform=lambda b: b.upper()):
    """Serve n requests (None: until closed) with areply, many at once."""
    k = 0
    try:
        while n is None or k < n:
            m = await rep.arecv_msg()
            await rep.areply(m.token, transform(m.data))
            k += 1
    except iok.Closed:
        pass


@need_pattern("req0", "rep0")
def test_request_thousands_in_flight(run, tcp_url):
    N = 2000

    async def main():
        with iok.Rep(listen=tcp_url) as rep, iok.Req(dial=tcp_url) as req:
            srv = asyncio.ensure_future(echo_server(rep))
            replies = await asyncio.gather(*(req.request(b"req %d" % i) for i in range(N)))
            assert replies == [b"REQ %d" % i for i in range(N)]
            assert not req._aio.pending
            rep.close()
            await srv
            await settle()
            assert aio_idle(req)
    run(main())


@need_pattern("req0", "rep0")
def test_request_replies_out_of_order(run, inproc_url):
    """The server answers in reverse: each coroutine still gets its own."""
    N = 500

    async def main():
        with iok.Rep(listen=inproc_url) as rep, iok.Req(dial=inproc_url) as req:
            tasks = [asyncio.ensure_future(req.request(b"%d" % i)) for i in range(N)]
            msgs = [await rep.arecv_msg() for _ in range(N)]
            for m in reversed(msgs):
                await rep.areply(m.token, b"re " + m.data)
            assert await asyncio.gather(*tasks) == [b"re %d" % i for i in range(N)]
    run(main())


@need_pattern("req0", "rep0")
def test_request_against_sync_server_thread(run, tcp_url):
    rep = iok.Rep(listen=tcp_url)

    def serve():
        try:
            while True:
                m = rep.recv_msg()
                rep.reply(m.token, m.data[::-1])
        except iok.Closed:
            pass

    th = threading.Thread(target=serve)
    th.start()
    try:
        async def main():
            with iok.Req(dial=tcp_url) as req:
                rs = await asyncio.gather(*(req.request(b"abc%d" % i) for i in range(1000)))
                assert rs == [(b"abc%d" % i)[::-1] for i in range(1000)]
        run(main())
    finally:
        rep.close()
        th.join(DEADLINE)


@need_pattern("req0", "rep0")
def test_request_cancellation_drops_late_reply(run, inproc_url):
    N = 400

    async def main():
        with iok.Rep(listen=inproc_url) as rep, iok.Req(dial=inproc_url) as req:
            tasks = [asyncio.ensure_future(req.request(b"%d" % i)) for i in range(N)]
            msgs = [await rep.arecv_msg() for _ in range(N)]  # all in flight
            for t in tasks[::2]:
                t.cancel()
            await settle()
            assert len(req._aio.pending) == N // 2
            for m in msgs:  # the server answers all, late for half
                await rep.areply(m.token, b"re " + m.data)
            for i, t in enumerate(tasks):
                if i % 2:
                    assert await t == b"re %d" % i
                else:
                    with pytest.raises(asyncio.CancelledError):
                        await t
            await settle()
            assert aio_idle(req)
            # the socket still works, late replies did not confuse it
            srv = asyncio.ensure_future(echo_server(rep, 10))
            assert await asyncio.gather(*(req.request(b"x%d" % i) for i in range(10))) == \
                [b"X%d" % i for i in range(10)]
            await srv
            st = req.stats
            assert st["rx-dropped"] + st["rx-msgs"] >= N
    run(main())


@need_pattern("req0", "rep0")
def test_request_wait_for_timeout(run, inproc_url):
    async def main():
        with iok.Rep(listen=inproc_url) as rep, iok.Req(dial=inproc_url) as req:
            for _ in range(20):
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(req.request(b"no answer yet"), 0.001)
            await settle()
            assert aio_idle(req)
            # drain what reached the server; answer nothing; then a real one
            while True:
                try:
                    rep.recv_msg(timeout=50)
                except iok.Timeout:
                    break
            srv = asyncio.ensure_future(echo_server(rep, 1))
            assert await req.request(b"ok") == b"OK"
            await srv
    run(main())


@need_pattern("req0", "rep0")
def test_request_timeout_option(run, inproc_url):
    async def main():
        with iok.Req(dial=inproc_url) as req:
            try:
                req.request_timeout = 50
            except iok.NotSupported:
                pytest.skip("req:timeout not implemented by the C core")
            with iok.Rep(listen=inproc_url):  # a server that never answers
                wait_connected(req)
                with pytest.raises(iok.Timeout):
                    await req.request(b"lost")
    run(main())


@need_pattern("req0", "rep0")
def test_close_with_requests_in_flight(run, inproc_url):
    async def main():
        rep = iok.Rep(listen=inproc_url)
        req = iok.Req(dial=inproc_url)
        tasks = [asyncio.ensure_future(req.request(b"%d" % i)) for i in range(100)]
        await settle()
        req.close()
        for t in tasks:
            with pytest.raises(iok.Closed):
                await t
        rep.close()
    run(main())


@need_pattern("req0", "rep0")
def test_no_leaks_across_many_requests(run, inproc_url):
    async def main():
        with iok.Rep(listen=inproc_url) as rep, iok.Req(dial=inproc_url) as req:
            srv = asyncio.ensure_future(echo_server(rep))

            async def burst(n):
                await asyncio.gather(*(req.request(b"%d" % i) for i in range(n)))
                # and some cancelled ones
                ts = [asyncio.ensure_future(req.request(b"c")) for _ in range(20)]
                await asyncio.sleep(0)
                for t in ts:
                    t.cancel()
                await asyncio.gather(*ts, return_exceptions=True)

            await burst(500)
            await settle()
            gc.collect()
            futs0 = sum(1 for o in gc.get_objects() if isinstance(o, asyncio.Future))
            tracemalloc.start()
            s0 = tracemalloc.take_snapshot()
            for _ in range(10):
                await burst(500)
            await settle()
            gc.collect()
            s1 = tracemalloc.take_snapshot()
            tracemalloc.stop()
            futs1 = sum(1 for o in gc.get_objects() if isinstance(o, asyncio.Future))
            grown = sum(st.size_diff for st in s1.compare_to(s0, "filename"))
            assert futs1 <= futs0 + 5
            assert grown < 256 * 1024, grown
            assert not req._aio.pending
            rep.close()
            await srv
    run(main())


# ------------------------------------------------------------ other patterns

@need_pattern("surveyor0", "respondent0")
def test_survey_gathers_every_reply(run, inproc_url):
    async def main():
        with iok.Surveyor(listen=inproc_url, survey_time=300) as sv:
            resps = [iok.Respondent(dial=inproc_url) for _ in range(3)]
            try:
                wait_connected(sv, 3)

                async def answer(r, k):
                    m = await r.arecv_msg()
                    await r.areply(m.token, b"%d:%s" % (k, m.data))

                ans = [asyncio.ensure_future(answer(r, k)) for k, r in enumerate(resps)]
                replies = await sv.survey(b"census")
                await asyncio.gather(*ans)
                assert sorted(replies) == [b"0:census", b"1:census", b"2:census"]
            finally:
                for r in resps:
                    r.close()
    run(main())


@need_pattern("pub0", "sub0")
def test_sub_arecv(run, inproc_url):
    async def main():
        with iok.Pub(listen=inproc_url) as pub, iok.Sub(dial=inproc_url) as sub:
            sub.subscribe(b"")
            wait_connected(pub)
            got = asyncio.ensure_future(sub.arecv())
            while not got.done():
                await pub.asend(b"tick")
                await asyncio.sleep(0.01)
            assert got.result() == b"tick"
    run(main())


def test_request_not_supported_on_push(run):
    async def main():
        with iok.Push() as s:
            with pytest.raises(iok.NotSupported):
                await s.request(b"x")
            await settle()
            assert aio_idle(s)
    run(main())


# ------------------------------------------------------------- pipelined-db

def _resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


@pytest.fixture
def redis_url(tmp_path):
    import shutil
    import subprocess
    import time
    from conftest import free_tcp_port
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    port = free_tcp_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = "redis://127.0.0.1:%d" % port
        end = time.monotonic() + DEADLINE
        while True:  # until it accepts connections
            try:
                with iok.Db() as probe:
                    probe.dial(url, block=True)
                break
            except iok.ConnectionRefused:
                assert time.monotonic() < end and p.poll() is None, "redis-server did not start"
                time.sleep(0.02)
        yield url
    finally:
        p.terminate()
        p.wait(DEADLINE)


@need_pattern("pipelined-db")
def test_db_thousands_in_flight(run, redis_url):
    """pipelined-db over redis://: 2,000 commands in flight on one socket,
    each coroutine gets its own reply."""
    N = 2000

    async def main():
        with iok.Db() as db:
            db.dial(redis_url, block=True)
            r = await asyncio.gather(*(db.request(_resp("SET", "k%d" % i, "v%d" % i))
                                       for i in range(N)))
            assert set(r) == {b"+OK\r\n"}
            r = await asyncio.gather(*(db.request(_resp("GET", "k%d" % i)) for i in range(N)))
            assert r == [b"$%d\r\nv%d\r\n" % (len(b"v%d" % i), i) for i in range(N)]
            # cancelled commands do not confuse the matching
            ts = [asyncio.ensure_future(db.request(_resp("GET", "k%d" % i))) for i in range(100)]
            await asyncio.sleep(0)
            for t in ts[::3]:
                t.cancel()
            done = await asyncio.gather(*ts, return_exceptions=True)
            for i, x in enumerate(done):
                if i % 3:
                    assert x == b"$%d\r\nv%d\r\n" % (len(b"v%d" % i), i)
            assert await db.request(_resp("PING")) == b"+PONG\r\n"
            await settle()
            assert aio_idle(db)
    run(main())
