"""close() returns at once when nothing can ever be flushed, and a
connection attempt is bounded by connect_timeout (IOK_OPT_CONNECT_TIMEOUT).

The close test gives every socket a 60 s linger: had any close waited it
out, the 200 closes could not all finish inside the bound the test gives
them (a failure bound, not a measurement)."""
import socket
import threading

import pytest

import iok
from conftest import free_tcp_port, wait_until

LINGER = 60000  # ms
BOUND = 50      # s: less than one linger


def close_all(socks):
    done = threading.Event()

    def closer():
        for s in socks:
            s.close()
        done.set()

    t = threading.Thread(target=closer, daemon=True)
    t.start()
    assert done.wait(BOUND), "a close waited out its linger"
    t.join()


def test_close_push_refused_returns_at_once():
    socks = []
    for _ in range(100):
        s = iok.Push(linger=LINGER, reconnect_time_min=10)
        s.dial("tcp://127.0.0.1:%d" % free_tcp_port())
        s.send(b"never delivered", timeout=0)
        socks.append(s)
    close_all(socks)


def test_close_pair_peer_gone_returns_at_once():
    socks = []
    for i in range(100):
        url = "inproc://close-fast-%d" % i
        peer = iok.Pair(listen=url, recv_timeout=BOUND * 1000)
        s = iok.Pair(linger=LINGER, reconnect_time_min=10)
        s.dial(url, block=True)
        s.send(b"hi")
        assert peer.recv() == b"hi"
        peer.close()
        wait_until(lambda: s.stats["pipes"] == 0, what="the peer to be gone")
        s.send(b"never delivered", timeout=0)
        socks.append(s)
    close_all(socks)


def test_connect_timeout_silent_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)  # accepted by the kernel, never answered
    url = "tcp://127.0.0.1:%d" % srv.getsockname()[1]
    try:
        s = iok.Pair(connect_timeout=100)
        assert s.connect_timeout == 100
        with pytest.raises(iok.Timeout):
            s.dial(url, block=True)
        s.close()
    finally:
        srv.close()
