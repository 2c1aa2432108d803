"""Discovery and health from Python: a dialer following a static list of
loopback addresses, peers_live and the awaitable wait_peers (woken by
iok's peers-fd), under the default loop and uvloop."""
import pytest

import iok
from conftest import free_tcp_port, have_pattern, wait_until

pytestmark = pytest.mark.skipif(not (have_pattern("req0") and have_pattern("rep0")),
                                reason="needs req0/rep0")


def rep_on(host, port):
    return iok.Rep(listen="tcp://%s:%d" % (host, port), recv_timeout=20000)


def test_static_list_both_connected():
    port = free_tcp_port()
    with rep_on("127.0.0.2", port) as a, rep_on("127.0.0.3", port) as b, \
            iok.Req(recv_timeout=20000) as req:
        d = req.dial("tcp://127.0.0.2:%d,127.0.0.3:%d" % (port, port))
        # Connected before anything is sent: the names resolve at dial time.
        wait_until(lambda: req.peers_live == 2, what="two peers")
        ups = d.get_option("upstreams", "string")
        assert "127.0.0.2:%d" % port in ups and "127.0.0.3:%d" % port in ups
        assert a.stats["pipes"] == 1 and b.stats["pipes"] == 1


def test_wait_peers(run):
    port = free_tcp_port()

    async def main():
        with iok.Req() as req:
            req.dial("tcp://127.0.0.2:%d" % port)
            assert req.peers_live == 0
            rep = rep_on("127.0.0.2", port)
            try:
                assert await req.wait_peers() == 1
                assert req.stats["tx-msgs"] == 0  # ready before use
            finally:
                rep.close()
            assert await req.wait_peers(live=False) == 0
            with rep_on("127.0.0.2", port):
                assert await req.wait_peers(True) == 1
    run(main())
