"""The synchronous API: sockets, transports, send/recv, timeouts, context
managers, options, errors."""
import array
import threading

import pytest

import iok
from conftest import wait_connected, wait_until


def pair(url, **kw):
    pull = iok.Pull(listen=url, **kw)
    push = iok.Push(dial=url)
    return push, pull


# ------------------------------------------------------------ send / recv

def test_push_pull_every_transport(url):
    push, pull = pair(url, recv_timeout=30000)
    with push, pull:
        for i in range(200):
            push.send(b"msg %d" % i)
        for i in range(200):
            assert pull.recv() == b"msg %d" % i


def test_pair_both_ways(url):
    with iok.Pair0(listen=url, recv_timeout=30000) as a, iok.Pair0(dial=url, recv_timeout=30000) as b:
        b.send(b"ping")
        assert a.recv() == b"ping"
        a.send(b"pong")
        assert b.recv() == b"pong"


def test_pair1_and_socket_by_name(inproc_url):
    with iok.Socket("pair", listen=inproc_url) as a, iok.Socket("pair1", dial=inproc_url) as b:
        assert a.protocol_name == "pair1" and b.peer_name == "pair1"
        a.send(b"x")
        assert b.recv(timeout=30000) == b"x"


def test_bytes_like_objects(inproc_url):
    push, pull = pair(inproc_url, recv_timeout=30000)
    with push, pull:
        items = [b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview"),
                 array.array("B", b"array"), memoryview(b"xxsliceyy")[2:7], b""]
        for x in items:
            push.send(x)
        assert [pull.recv() for _ in items] == [bytes(x) for x in items]
        with pytest.raises(TypeError):
            push.send("a str is not bytes")
        with pytest.raises(TypeError):
            push.send(12)
        with pytest.raises((TypeError, BufferError)):
            push.send(memoryview(b"abcdef")[::2])  # not contiguous


def test_large_message(tcp_url):
    push, pull = pair(tcp_url, recv_timeout=30000, recv_max_size=8 << 20)
    with push, pull:
        big = bytes(range(256)) * (4 << 12)  # 4 MiB
        push.send(big)
        assert pull.recv() == big


def test_recv_msg_fields(inproc_url):
    push, pull = pair(inproc_url, recv_timeout=30000)
    with push, pull:
        push.send(b"abc")
        m = pull.recv_msg()
        assert isinstance(m, iok.Message)
        assert m.data == b"abc" and bytes(m) == b"abc"
        assert m.header == b"" and m.token == 0
        assert "abc" in repr(m)


# ---------------------------------------------------------------- timeouts

def test_recv_timeout_option_and_argument(inproc_url):
    with iok.Pull(listen=inproc_url, recv_timeout=50) as pull:
        with pytest.raises(iok.Timeout):
            pull.recv()
        with pytest.raises(iok.Timeout):
            pull.recv(timeout=20)
        with pytest.raises(iok.Timeout):
            pull.recv(timeout=0.5)  # float milliseconds
        with pytest.raises(iok.TryAgain):
            pull.recv(timeout=0)
        pull.recv_timeout = 0
        with pytest.raises(iok.TryAgain):
            pull.recv()


def test_send_timeout_when_queue_full(inproc_url):
    # push with no peer: the send queue fills, then send waits.
    with iok.Push(send_buffer=2, send_timeout=30) as push:
        push.send(b"1")
        push.send(b"2")
        with pytest.raises(iok.Timeout):
            push.send(b"3")
        with pytest.raises(iok.TryAgain):
            push.send(b"3", timeout=0)
        with pytest.raises(iok.Timeout):
            push.send(b"3", timeout=10)


def test_blocked_send_proceeds_when_peer_arrives(inproc_url):
    push = iok.Push(send_buffer=1)
    push.send(b"0")
    done = []

    def sender():
        for i in range(1, 50):
            push.send(b"%d" % i)  # blocks until the pull socket exists
        done.append(True)

    t = threading.Thread(target=sender)
    t.start()
    with iok.Pull(listen=inproc_url, recv_timeout=30000) as pull:
        push.dial(inproc_url)
        got = [pull.recv() for _ in range(50)]
    t.join(30)
    push.close()
    assert done and got == [b"%d" % i for i in range(50)]


# --------------------------------------------------------- lifetime, close

def test_context_manager_closes(inproc_url):
    with iok.Pull(listen=inproc_url) as pull:
        assert not pull.closed
        fd = pull.recv_fd
        assert fd >= 0
    assert pull.closed
    with pytest.raises(iok.Closed):
        pull.recv()
    with pytest.raises(iok.Closed):
        pull.recv_fd
    with pytest.raises(iok.Closed):
        pull.dial(inproc_url)
    with pytest.raises(iok.Closed):
        pull.recv_timeout = 5
    pull.close()  # idempotent


def test_close_then_operations_raise_closed(inproc_url):
    s = iok.Push()
    s.close()
    with pytest.raises(iok.Closed):
        s.send(b"x")
    with pytest.raises(iok.Closed):
        s.listen(inproc_url)


def test_dialer_listener_objects(tcp_url):
    with iok.Pull() as pull, iok.Push() as push:
        lst = pull.listen("tcp://127.0.0.1:0")
        assert isinstance(lst, iok.Listener) and lst.id > 0
        port = lst.port
        assert port > 0
        assert lst.url.startswith("tcp://")
        d = push.dial("tcp://127.0.0.1:%d" % port)
        assert isinstance(d, iok.Dialer) and d.id > 0
        push.send(b"via ephemeral port")
        assert pull.recv(timeout=30000) == b"via ephemeral port"
        d.close()
        with pytest.raises(iok.Closed):
            d.close()
        with lst:
            pass
        with pytest.raises(iok.Closed):
            lst.close()


def test_dial_block(tcp_url):
    with iok.Push() as push:
        with pytest.raises(iok.ConnectionRefused):
            push.dial(tcp_url, block=True)
    with iok.Pull(listen=tcp_url) as pull, iok.Push() as push:
        push.dial(tcp_url, block=True)
        wait_connected(pull)


def test_dial_and_listen_lists(tmp_path):
    u1 = "ipc://%s/a.ipc" % tmp_path
    u2 = "inproc://lists-%d" % id(tmp_path)
    with iok.Pull(listen=[u1, u2], recv_timeout=30000) as pull, \
            iok.Push(dial=u1) as p1, iok.Push(dial=u2) as p2:
        p1.send(b"1")
        p2.send(b"2")
        assert sorted([pull.recv(), pull.recv()]) == [b"1", b"2"]


def test_repr(inproc_url):
    s = iok.Pull()
    assert "pull0" in repr(s)
    s.close()
    assert "closed" in repr(s)


def test_threads_share_a_socket(inproc_url):
    """Several threads receive from one socket; every message goes to exactly
    one of them."""
    n_threads, per = 4, 500
    got = [[] for _ in range(n_threads)]
    with iok.Pull(listen=inproc_url, recv_timeout=30000) as pull, iok.Push(dial=inproc_url) as push:
        def worker(k):
            for _ in range(per):
                got[k].append(pull.recv())

        ts = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
        for t in ts:
            t.start()
        for i in range(n_threads * per):
            push.send(b"%d" % i)
        for t in ts:
            t.join(60)
    allmsgs = sorted(int(m) for g in got for m in g)
    assert allmsgs == list(range(n_threads * per))
    for g in got:  # each thread saw its share in order
        assert [int(m) for m in g] == sorted(int(m) for m in g)


# ------------------------------------------------------- batched receive

def _readable(fd):
    import select
    r, _, _ = select.select([fd], [], [], 0)
    return bool(r)


def test_batched_receive_keeps_order_and_readiness(inproc_url):
    """A receive takes what waits in one batch; every way of receiving sees
    the batch first (order kept), and the descriptor stays readable exactly
    while a message waits, in the batch or in iok."""
    import asyncio
    push, pull = pair(inproc_url, recv_timeout=30000)
    with push, pull:
        n = 300
        for i in range(n):
            push.send(b"%d" % i)
        wait_until(lambda: pull.getopt("stat:rx-msgs", "uint64") >= n, what="all queued")
        got = [pull.recv()]  # takes a batch; the rest wait in it or in iok
        assert _readable(pull.fileno())
        got.append(pull.recv_msg().data)
        got.append(pull._try_recv())
        got.append(asyncio.run(pull.arecv()))
        got.append(pull.recv(timeout=0))
        while _readable(pull.fileno()):
            got.append(pull.recv(timeout=0))
        assert got == [b"%d" % i for i in range(n)]
        assert not _readable(pull.fileno())
        with pytest.raises(iok.TryAgain):
            pull.recv(timeout=0)
        push.send(b"late")
        wait_until(lambda: _readable(pull.fileno()), what="readable again")
        assert pull.recv() == b"late"
        assert not _readable(pull.fileno())


def test_receive_of_many_leaves_readiness_right(inproc_url):
    """A receive of up to max (one batch from iok, no descriptor writes
    while it takes) that stops with messages still batched leaves the
    descriptor readable; the one that takes the rest leaves it clear."""
    push, pull = pair(inproc_url, recv_timeout=30000)
    with push, pull:
        for i in range(10):
            push.send(b"%d" % i)
        wait_until(lambda: pull.getopt("stat:rx-msgs", "uint64") >= 10, what="all queued")
        first = pull._recv_many(3)
        assert [d for _, _, d in first] == [b"0", b"1", b"2"]
        assert _readable(pull.fileno())  # 7 wait in the batch, none in iok
        rest = pull._recv_many(100)
        assert [d for _, _, d in rest] == [b"%d" % i for i in range(3, 10)]
        assert not _readable(pull.fileno())
        assert pull._recv_many(100) == []


def test_batched_receive_blocked_threads(inproc_url):
    """Threads blocked in recv() share what arrives: each message is
    received exactly once, none is stranded in a batch."""
    push, pull = pair(inproc_url, recv_timeout=30000)
    with push, pull:
        n, got, lock = 2000, [], threading.Lock()

        def reader():
            while True:
                m = pull.recv()
                if m == b"end":
                    return
                with lock:
                    got.append(m)

        ts = [threading.Thread(target=reader) for _ in range(3)]
        for t in ts:
            t.start()
        for i in range(n):
            push.send(b"%d" % i)
        for _ in ts:
            push.send(b"end")
        for t in ts:
            t.join(60)
            assert not t.is_alive()
        assert sorted(got) == sorted(b"%d" % i for i in range(n))


def test_batched_messages_dropped_at_close(inproc_url):
    push, pull = pair(inproc_url, recv_timeout=30000)
    with push:
        for i in range(10):
            push.send(b"x")
        wait_until(lambda: pull.getopt("stat:rx-msgs", "uint64") >= 10, what="all queued")
        assert pull.recv() == b"x"
        pull.close()
        with pytest.raises(iok.Closed):
            pull.recv(timeout=0)
