"""_iok.Reply, the awaitable an asyncio request's reply completes: it keeps
asyncio's future protocol (a Task awaits it, cancels it, wait_for and
gather work), and when the reply reader completes it the awaiting task
runs at once, in its own context, as the current task; under the default
loop and uvloop."""
import asyncio
import contextvars

import pytest

import iok
import iok.redis as ir
from iok._iok import Reply
from conftest import have_pattern
from redis_fixtures import redis_module_server, redis_server  # noqa: F401

T = 30000


def test_protocol_result_and_callbacks(run):
    async def main():
        loop = asyncio.get_running_loop()
        r = Reply(loop)
        assert asyncio.isfuture(r) and not r.done() and r.get_loop() is loop
        with pytest.raises(asyncio.InvalidStateError):
            r.result()
        seen = []
        r.add_done_callback(seen.append)
        r.add_done_callback(lambda f: seen.append("second"))
        assert r.remove_done_callback(seen.append) == 1
        r.add_done_callback(seen.append)
        r.set_result((1, 2))  # a tuple comes back whole, not as arguments
        assert r.done() and not r.cancelled() and r.exception() is None
        assert await r == (1, 2)
        with pytest.raises(asyncio.InvalidStateError):
            r.set_result(3)
        await asyncio.sleep(0)  # set_result schedules the callbacks
        assert seen == ["second", r]
        late = []
        r.add_done_callback(late.append)  # already done: scheduled at once
        await asyncio.sleep(0)
        assert late == [r]

        # results handed back whole whether the await takes them by am_send
        # or by iteration (StopIteration would unpack a tuple, raise an
        # exception instance)
        for value in (None, KeyError("a value, not raised"), StopIteration(3), [1], 0):
            v = Reply(loop)
            v.set_result(value)
            assert await v is value
            it = iter(v)
            with pytest.raises(StopIteration) as si:
                next(it)
            assert si.value.value is value

        e = Reply(loop)
        e.set_exception(KeyError)  # a class is instantiated, as a Future does
        with pytest.raises(KeyError):
            await e
        assert isinstance(e.exception(), KeyError)
    run(main())


def test_lookups_by_c_string(run):
    """Reply answers lookups by C string (tp_getattr: asyncio's C task asks
    a foreign future for result() that way) as it answers them by str."""
    import ctypes
    get = ctypes.pythonapi.PyObject_GetAttrString
    get.restype = ctypes.py_object
    get.argtypes = (ctypes.py_object, ctypes.c_char_p)

    async def main():
        r = Reply(asyncio.get_running_loop())
        r.set_result("value")
        assert get(r, b"result")() == "value" == r.result()
        assert get(r, b"done")() is True
        assert get(r, b"_asyncio_future_blocking") is False
        with pytest.raises(AttributeError):
            get(r, b"no_such_attribute")
        e = Reply(asyncio.get_running_loop())
        e.set_exception(KeyError("k"))
        with pytest.raises(KeyError):
            get(e, b"result")()
    run(main())


def test_add_done_callback_arguments(run):
    """add_done_callback parses its arguments by hand (a task passes
    context= with every await): the forms asyncio.Future takes work, with
    the context given or the current one copied, and anything else is a
    TypeError, as Future's."""
    var = contextvars.ContextVar("var", default="default")

    async def main():
        loop = asyncio.get_running_loop()
        r = Reply(loop)
        seen = []
        ctx = contextvars.copy_context()
        ctx.run(var.set, "given")
        var.set("current")
        r.add_done_callback(lambda f: seen.append(("pos", var.get())))
        r.add_done_callback(lambda f: seen.append(("ctx", var.get())), context=ctx)
        r.add_done_callback(fn=lambda f: seen.append(("fn=", var.get())))
        r.add_done_callback(context=ctx, fn=lambda f: seen.append(("both", var.get())))
        r.add_done_callback(lambda f: seen.append(("none", var.get())), context=None)
        var.set("later")  # each callback kept the context of its registration
        for bad in [(), (print, print)]:
            with pytest.raises(TypeError):
                r.add_done_callback(*bad)
        for kw in [{"context": ctx}, {"fn": print, "ctxt": ctx}, {"callback": print}]:
            with pytest.raises(TypeError):
                r.add_done_callback(**kw)
        with pytest.raises(TypeError):
            r.add_done_callback(print, fn=print)
        r.set_result(None)
        await asyncio.sleep(0)
        assert seen == [("pos", "current"), ("ctx", "given"), ("fn=", "current"),
                        ("both", "given"), ("none", "current")]
    run(main())


def test_cancel_wakes_the_task_with_cancelled_error(run):
    async def main():
        loop = asyncio.get_running_loop()
        r = Reply(loop)

        async def waiter():
            return await r
        t = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        assert not t.done()
        t.cancel("bye")
        with pytest.raises(asyncio.CancelledError):
            await t
        assert r.cancelled() and not r.cancel()
        with pytest.raises(asyncio.CancelledError):
            r.result()
        # wait_for over a Reply that never completes times out cleanly.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(_await(Reply(loop)), 0.01)
    run(main())


async def _await(r):
    return await r


@pytest.mark.skipif(not (have_pattern("req0") and have_pattern("rep0")),
                    reason="req0/rep0 not built")
def test_request_tasks_resume_in_their_own_context(run, inproc_url):
    """Every task woken by the reply reader runs as itself: its context
    variables, current_task(), and a cancel of one leaves the rest."""
    var = contextvars.ContextVar("who")

    async def main():
        with iok.Rep(listen=inproc_url) as rep, iok.Req(dial=inproc_url) as req:
            async def serve():
                while True:
                    m = await rep.arecv_msg()
                    if m.data != b"never":
                        await rep.areply(m.token, m.data)

            server = asyncio.ensure_future(serve())

            async def client(i):
                var.set(i)
                me = asyncio.current_task()
                for k in range(20):
                    assert await req.request(b"%d-%d" % (i, k)) == b"%d-%d" % (i, k)
                    assert var.get() == i and asyncio.current_task() is me
                return i

            stuck = asyncio.ensure_future(req.request(b"never"))
            got = await asyncio.gather(*(client(i) for i in range(50)))
            assert got == list(range(50)) and not stuck.done()
            stuck.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stuck
            server.cancel()
    run(main())


def test_redis_commands_resume_in_their_own_context(run, redis_server):  # noqa: F811
    var = contextvars.ContextVar("who")

    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=T) as r:
            async def client(i):
                var.set(i)
                me = asyncio.current_task()
                for k in range(20):
                    await r.set("k%d" % i, k)
                    assert await r.get("k%d" % i) == b"%d" % k
                    assert var.get() == i and asyncio.current_task() is me
                return i
            assert await asyncio.gather(*(client(i) for i in range(50))) == list(range(50))
            # A task cancelled while its GET waits: the others carry on.
            slow = asyncio.ensure_future(r.execute("BLPOP", "nothing", 0))
            await asyncio.sleep(0)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            assert await r.get("k3") == b"19"
    run(main())


def test_dispatch_pending_names_the_running_dispatcher(run, redis_server):  # noqa: F811
    """Socket._dispatch_pending is the pending dict of the reply dispatcher
    running in this thread (an AsyncClient command takes its state's loop
    from it): a task the dispatcher woke sees its state's dict, the same
    task resumed by the loop, another thread and code outside any
    dispatcher see None."""
    import threading

    async def main():
        r = ir.AsyncClient(redis_server.url(db=9), socket_timeout=T / 1000)
        assert await r.ping() is True  # woken by the dispatcher, in it
        sock = r._sock
        assert sock._aio.pending is not None
        assert sock._dispatch_pending is sock._aio.pending
        seen = []
        t = threading.Thread(target=lambda: seen.append(sock._dispatch_pending))
        t.start()
        t.join()  # lets the thread run while this dispatcher is still on the stack
        assert seen == [None]
        await asyncio.sleep(0)  # resumed by the loop: no dispatcher
        assert sock._dispatch_pending is None
        assert await r.get("nothing") is None
        await r.aclose()
    run(main())


def test_busy_replies_leave_the_loop_its_turn(run, redis_server):  # noqa: F811
    """50 coroutines keep GETs flowing (each woken task sends the next one
    while the reader is still at work); another task that only yields to
    the loop must still get its 200 turns, and a timer must fire: the
    reader returns to the loop after a bounded number of replies."""
    async def main():
        async with ir.AsyncClient(redis_server.url(), timeout=T) as r:
            stop = False
            done = [0]

            async def worker():
                while not stop:
                    await r.get("k")
                    done[0] += 1

            workers = [asyncio.ensure_future(worker()) for _ in range(50)]
            while done[0] < 1000:  # the stream is flowing
                await asyncio.sleep(0)
            fired = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.01, fired.set_result, True)
            for _ in range(200):
                await asyncio.sleep(0)
            assert await fired
            stop = True
            await asyncio.gather(*workers)
    run(main())
