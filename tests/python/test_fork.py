"""Fork: os.fork(), multiprocessing with the fork start method, and a
pre-fork server (sockets made in the parent, work done in the children)."""
import asyncio
import multiprocessing
import os
import select
import sys

import pytest

import iok
from conftest import DEADLINE, need_pattern, wait_connected, wait_until

T = 30000


def child(fn):
    """Run fn() in a forked child; return its exit status (0 = fn returned
    True).  The child never returns into pytest."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if fn() else 2
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_fork_new_sockets_work_in_child(inproc_url):
    with iok.Pull(listen=inproc_url, recv_timeout=T) as pull, iok.Push(dial=inproc_url) as push:
        push.send(b"before fork")
        assert pull.recv() == b"before fork"

        def in_child():
            # the kernel thread restarts in the child
            with iok.Pull(listen="inproc://child", recv_timeout=T) as p2, \
                    iok.Push(dial="inproc://child") as q2:
                for i in range(100):
                    q2.send(b"%d" % i)
                return [p2.recv() for _ in range(100)] == [b"%d" % i for i in range(100)]

        assert child(in_child) == 0
        # the parent's traffic is unaffected
        push.send(b"after fork")
        assert pull.recv() == b"after fork"


def test_fork_inherited_dialer_redials(tcp_url):
    """The child's copy of a dialing socket re-dials: its messages reach the
    parent's listener over the child's own connection."""
    with iok.Pull(listen=tcp_url, recv_timeout=T) as pull, iok.Push(dial=tcp_url) as push:
        wait_connected(pull, 1)
        push.send(b"parent 1")
        assert pull.recv() == b"parent 1"

        def in_child():
            for i in range(10):
                push.send(b"child %d" % i)
            push.close()  # linger: flushes
            return True

        assert child(in_child) == 0
        got = sorted(pull.recv() for _ in range(10))
        assert got == sorted(b"child %d" % i for i in range(10))
        push.send(b"parent 2")
        assert pull.recv() == b"parent 2"


def test_fork_queued_messages_stay_the_parents(inproc_url):
    """Messages waiting in the parent's receive queue are not delivered in
    the child (nor twice), and the child's descriptors are its own."""
    with iok.Pull(listen=inproc_url, recv_timeout=T) as pull, iok.Push(dial=inproc_url) as push:
        for i in range(5):
            push.send(b"%d" % i)
        wait_until(lambda: pull.getopt("stat:rx-msgs", "uint64") == 5, what="deliveries")
        fd = pull.recv_fd

        def in_child():
            import select
            # our recv descriptor is the child's fresh one: not readable
            assert pull.recv_fd == fd
            assert select.select([fd], [], [], 0)[0] == []
            try:
                pull.recv(timeout=0)
            except iok.TryAgain:
                pass
            else:
                return False
            pull.close()
            return True

        assert child(in_child) == 0
        assert [pull.recv() for _ in range(5)] == [b"%d" % i for i in range(5)]


def test_fork_batched_messages_stay_the_parents(inproc_url):
    """The binding takes messages from iok in batches: those already taken
    into the socket object when the process forks are the parent's too."""
    with iok.Pull(listen=inproc_url, recv_timeout=T) as pull, iok.Push(dial=inproc_url) as push:
        for i in range(5):
            push.send(b"%d" % i)
        wait_until(lambda: pull.getopt("stat:rx-msgs", "uint64") == 5, what="deliveries")
        fd = pull.recv_fd
        assert pull.recv() == b"0"  # the other four wait in the batch

        def in_child():
            import select
            assert pull.recv_fd == fd
            assert select.select([fd], [], [], 0)[0] == []
            try:
                pull.recv(timeout=0)
            except iok.TryAgain:
                return True
            return False

        assert child(in_child) == 0
        assert [pull.recv() for _ in range(4)] == [b"%d" % i for i in range(1, 5)]


def test_fork_child_closes_and_exits_with_sockets_open(tcp_url):
    with iok.Pull(listen=tcp_url, recv_timeout=T) as pull, iok.Push(dial=tcp_url) as push:
        wait_connected(pull)

        def in_child():
            extra = iok.Pull(listen="inproc://x")  # noqa: F841 (left open)
            return True

        pid = os.fork()
        if pid == 0:
            in_child()
            os._exit(0)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        # a child exiting normally (atexit, iok's teardown) does not hurt us
        pid = os.fork()
        if pid == 0:
            iok.fini()
            os._exit(0)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        push.send(b"still here")
        assert pull.recv() == b"still here"


# ------------------------------------------------------ multiprocessing

_inherited = None


def _mp_worker(args):
    url, k = args
    with iok.Push(dial=url) as s:
        for i in range(20):
            s.send(b"w%d-%d" % (k, i))
    return os.getpid()


def _mp_inherited_worker(k):
    # a socket the parent made before the pool forked us
    for i in range(20):
        _inherited.send(b"i%d-%d" % (k, i))
    _inherited.close()  # flush before the worker process may be reused... once
    return os.getpid()


def test_multiprocessing_fork_workers(tcp_url):
    ctx = multiprocessing.get_context("fork")
    with iok.Pull(listen=tcp_url, recv_timeout=T) as pull:
        with ctx.Pool(3) as pool:
            pids = pool.map(_mp_worker, [(tcp_url, k) for k in range(6)], chunksize=1)
        assert os.getpid() not in pids
        got = sorted(pull.recv() for _ in range(6 * 20))
        assert got == sorted(b"w%d-%d" % (k, i) for k in range(6) for i in range(20))


def test_multiprocessing_fork_inherited_socket(tcp_url):
    global _inherited
    ctx = multiprocessing.get_context("fork")
    with iok.Pull(listen=tcp_url, recv_timeout=T) as pull:
        _inherited = iok.Push(dial=tcp_url)
        try:
            procs = [ctx.Process(target=_mp_inherited_worker, args=(k,)) for k in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(DEADLINE)
                assert p.exitcode == 0
            got = sorted(pull.recv() for _ in range(3 * 20))
            assert got == sorted(b"i%d-%d" % (k, i) for k in range(3) for i in range(20))
            # the parent's own copy still works
            _inherited.send(b"parent")
            assert pull.recv() == b"parent"
        finally:
            _inherited.close()
            _inherited = None


def _mp_result_error():
    with iok.Pull(recv_timeout=1) as s:
        s.recv()


def test_multiprocessing_error_crosses_back():
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        with pytest.raises(iok.Timeout):
            pool.apply(_mp_result_error)


# --------------------------------------------------------- pre-fork server

@need_pattern("req0", "rep0")
def test_prefork_server(tcp_url):
    """The parent binds a rep socket, forks workers that serve on it (the
    inherited listening descriptor accepts in each child), and closes its
    own copy.  Every request is answered, by a worker."""
    rep = iok.Rep(listen=tcp_url)
    stop_r, stop_w = os.pipe()  # EOF on stop_r: workers finish
    workers = []
    for w in range(2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(stop_w)
                served = 0
                while True:
                    try:
                        m = rep.recv(timeout=50)
                    except iok.Timeout:
                        if select.select([stop_r], [], [], 0)[0]:
                            break
                        continue
                    rep.send(b"%d:%s" % (os.getpid(), m))
                    served += 1
                rep.close()
                code = 0
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                os._exit(code)
        workers.append(pid)
    os.close(stop_r)
    rep.close()  # the parent serves nothing itself

    answered_by = set()
    clients = [iok.Req(dial=tcp_url, recv_timeout=T) for _ in range(8)]
    try:
        for rnd in range(5):
            for k, c in enumerate(clients):
                c.send(b"q%d-%d" % (rnd, k))
            for k, c in enumerate(clients):
                pid, _, body = c.recv().partition(b":")
                assert body == b"q%d-%d" % (rnd, k)
                assert int(pid) in workers
                answered_by.add(int(pid))
    finally:
        for c in clients:
            c.close()
        os.close(stop_w)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in workers]
    assert codes == [0, 0]
    assert answered_by and answered_by <= set(workers)


@need_pattern("req0", "rep0")
def test_fork_in_asyncio_program(tcp_url):
    """A socket used with asyncio in the parent is usable in a forked child
    with the child's own event loop; the parent's loop and readers are not
    touched."""
    with iok.Rep(listen=tcp_url, recv_timeout=T) as rep:
        req = iok.Req(dial=tcp_url)

        async def serve(n):
            for _ in range(n):
                m = await rep.arecv_msg()
                await rep.areply(m.token, m.data.upper())

        async def parent_round(tag):
            srv = asyncio.ensure_future(serve(3))
            rs = await asyncio.gather(*(req.request(b"%s%d" % (tag, i)) for i in range(3)))
            await srv
            return rs

        loop = asyncio.new_event_loop()
        try:
            assert loop.run_until_complete(parent_round(b"a")) == [b"A0", b"A1", b"A2"]

            def in_child():
                # A new loop in the child; the socket re-dials.
                async def main():
                    return await asyncio.wait_for(req.request(b"from child"), 30)
                return asyncio.run(main()) == b"FROM CHILD"

            pid = os.fork()
            if pid == 0:
                ok = False
                try:
                    ok = in_child()
                except BaseException:
                    import traceback
                    traceback.print_exc()
                os._exit(0 if ok else 1)
            # serve the child's request from the parent
            loop.run_until_complete(serve(1))
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
            assert loop.run_until_complete(parent_round(b"b")) == [b"B0", b"B1", b"B2"]
        finally:
            req.close()
            loop.close()


def test_fork_child_releases_descriptors_the_parents_loop_held(inproc_url):
    """The parent's loop had our recv descriptor registered (pinned); the
    child drops that state, and closing the socket there frees our
    descriptors."""
    pull = iok.Pull(listen=inproc_url)

    def is_open(fd):
        try:
            os.fstat(fd)
            return True
        except OSError:
            return False

    async def main():
        t = asyncio.ensure_future(pull.arecv())
        while pull._aio is None or not pull._aio.reading:
            await asyncio.sleep(0)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                assert pull._aio is None  # the parent's loop state is gone
                fd = pull.recv_fd  # the child's own descriptor
                assert is_open(fd)
                pull.close()
                code = 0 if not is_open(fd) else 3
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                os._exit(code)
        st = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        t.cancel()
        return st

    try:
        assert asyncio.run(main()) == 0
    finally:
        pull.close()
