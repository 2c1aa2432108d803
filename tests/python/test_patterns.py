"""Every pattern through the sync API.  A pattern the C core does not have
yet is skipped (iok.Socket raises NotSupported), so these light up as the
patterns land."""
import threading

import pytest

import iok
from conftest import need_pattern, wait_connected, wait_until

T = 30000  # ms: bounds a hang, never measured


@pytest.mark.parametrize("cls,name", [
    (iok.Pair0, "pair0"), (iok.Pair1, "pair1"), (iok.Push0, "push0"), (iok.Pull0, "pull0"),
    (iok.Req0, "req0"), (iok.Rep0, "rep0"), (iok.Pub0, "pub0"), (iok.Sub0, "sub0"),
    (iok.Surveyor0, "surveyor0"), (iok.Respondent0, "respondent0"), (iok.Bus0, "bus0"),
    (iok.Db, "pipelined-db")])
def test_classes_open_their_pattern(cls, name):
    try:
        s = cls()
    except iok.NotSupported:
        pytest.skip("%s not in the C core yet" % name)
    with s:
        assert isinstance(s, iok.Socket)
        if name != "pipelined-db":
            assert s.protocol_name == name


def test_aliases():
    assert iok.Pair is iok.Pair1 and iok.Push is iok.Push0 and iok.Req is iok.Req0
    assert iok.Sub is iok.Sub0 and iok.Bus is iok.Bus0


@need_pattern("req0", "rep0")
def test_req_rep(url):
    with iok.Rep(listen=url, recv_timeout=T) as rep, iok.Req(dial=url, recv_timeout=T) as req:
        for i in range(20):
            req.send(b"question %d" % i)
            assert rep.recv() == b"question %d" % i
            rep.send(b"answer %d" % i)
            assert req.recv() == b"answer %d" % i


@need_pattern("req0", "rep0")
def test_rep_answers_by_token_out_of_order(inproc_url):
    """recv_msg() + reply(token): one rep socket, many requests at once."""
    with iok.Rep(listen=inproc_url, recv_timeout=T) as rep:
        reqs = [iok.Req(dial=inproc_url, recv_timeout=T) for _ in range(5)]
        try:
            for i, r in enumerate(reqs):
                r.send(b"%d" % i)
            msgs = [rep.recv_msg() for _ in reqs]
            assert sorted(m.data for m in msgs) == [b"%d" % i for i in range(5)]
            assert all(m.token for m in msgs)
            for m in reversed(msgs):
                rep.reply(m.token, b"re:" + m.data)
            for i, r in enumerate(reqs):
                assert r.recv() == b"re:%d" % i
        finally:
            for r in reqs:
                r.close()


@need_pattern("pub0", "sub0")
def test_pub_sub(url):
    with iok.Pub(listen=url) as pub, iok.Sub(dial=url, recv_timeout=T) as sub, \
            iok.Sub(dial=url, recv_timeout=T) as sub_all:
        sub.subscribe(b"news.")
        sub.subscribe("weather.")  # str is encoded
        sub_all.subscribe(b"")
        wait_connected(pub, 2)
        # Subscriptions are filtered at the subscriber: publish until the
        # connection is surely up (pub drops while no one listens).
        wait_until(lambda: _probe(pub, sub_all), what="subscriber to receive")
        _drain(sub_all)
        pub.send(b"news.one")
        pub.send(b"sports.two")
        pub.send(b"weather.three")
        assert sub.recv() == b"news.one"
        assert sub.recv() == b"weather.three"
        assert [sub_all.recv() for _ in range(3)] == [b"news.one", b"sports.two", b"weather.three"]
        sub.unsubscribe(b"news.")
        pub.send(b"news.four")
        pub.send(b"weather.five")
        assert sub.recv() == b"weather.five"


def _probe(pub, sub):
    pub.send(b"probe")
    try:
        return sub.recv(timeout=20) == b"probe"
    except iok.Timeout:
        return False


def _drain(sub):
    while True:
        try:
            sub.recv(timeout=50)
        except iok.Timeout:
            return


@need_pattern("surveyor0", "respondent0")
def test_surveyor_respondent(inproc_url):
    with iok.Surveyor(listen=inproc_url, survey_time=2000, recv_timeout=T) as sv:
        resps = [iok.Respondent(dial=inproc_url, recv_timeout=T) for _ in range(3)]
        try:
            wait_connected(sv, 3)
            sv.send(b"who is there?")
            for i, r in enumerate(resps):
                assert r.recv() == b"who is there?"
                r.send(b"me %d" % i)
            got = sorted(sv.recv() for _ in resps)
            assert got == [b"me 0", b"me 1", b"me 2"]
        finally:
            for r in resps:
                r.close()


@need_pattern("bus0")
def test_bus(inproc_url):
    with iok.Bus(listen=inproc_url, recv_timeout=T) as hub:
        a = iok.Bus(dial=inproc_url, recv_timeout=T)
        b = iok.Bus(dial=inproc_url, recv_timeout=T)
        try:
            wait_connected(hub, 2)
            hub.send(b"to all")
            assert a.recv() == b"to all" and b.recv() == b"to all"
            a.send(b"from a")
            assert hub.recv() == b"from a"
        finally:
            a.close()
            b.close()


@need_pattern("req0", "rep0")
def test_req_rep_threads(tcp_url):
    """A rep server thread and many client threads, GIL released while each
    waits."""
    with iok.Rep(listen=tcp_url, recv_timeout=T) as rep:
        stop = threading.Event()

        def serve():
            while not stop.is_set():
                try:
                    m = rep.recv(timeout=100)
                except iok.Timeout:
                    continue
                except iok.Closed:
                    return
                rep.send(m.upper())

        st = threading.Thread(target=serve)
        st.start()
        errors = []

        def client(k):
            try:
                with iok.Req(dial=tcp_url, recv_timeout=T) as req:
                    for i in range(50):
                        req.send(b"c%d-%d" % (k, i))
                        assert req.recv() == b"C%d-%d" % (k, i)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        cs = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for c in cs:
            c.start()
        for c in cs:
            c.join(60)
        stop.set()
        st.join(60)
        assert not errors
