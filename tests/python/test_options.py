"""Options: constructor keywords, properties, the generic calls, stats."""
import pytest

import iok
from conftest import wait_connected


def test_constructor_keywords_and_properties():
    with iok.Pull(recv_timeout=1234, recv_buffer=64, recv_max_size=4096, linger=10,
                  reconnect_time_min=50, reconnect_time_max=500, tcp_nodelay=False,
                  tcp_keepalive=True, name="worker", ttl_max=4) as s:
        assert s.recv_timeout == 1234
        assert s.recv_buffer == 64
        assert s.recv_max_size == 4096
        assert s.linger == 10
        assert s.reconnect_time_min == 50
        assert s.reconnect_time_max == 500
        assert s.tcp_nodelay is False
        assert s.tcp_keepalive is True
        assert s.name == "worker"
        assert s.ttl_max == 4


def test_defaults():
    with iok.Push() as s:
        assert s.send_timeout == -1 and s.recv_timeout == -1
        assert s.send_buffer == 1024 and s.recv_buffer == 1024
        assert s.recv_max_size == 1 << 20
        assert s.tcp_nodelay is True
        assert s.raw is False
        assert s.protocol == 0x50 and s.peer == 0x51
        assert s.protocol_name == "push0" and s.peer_name == "pull0"
        assert s.name == str(s.id)


def test_property_set_get_roundtrip():
    with iok.Pull() as s:
        s.recv_timeout = 250
        assert s.recv_timeout == 250
        s.recv_timeout = iok.INFINITE
        assert s.recv_timeout == -1
        s.recv_buffer = 8
        assert s.recv_buffer == 8
        s.name = "renamed"
        assert s.name == "renamed"
        s.tcp_nodelay = 0  # any number for a bool
        assert s.tcp_nodelay is False


def test_recv_spin_us():
    """A socket's receive spin: the process's budget until set, 0 turns it
    off, -1 goes back to the process's; out of range is refused."""
    with iok.Req() as s:
        default = s.recv_spin_us
        assert 0 <= default <= 1000000
        s.recv_spin_us = 0
        assert s.recv_spin_us == 0
        s.recv_spin_us = 200
        assert s.recv_spin_us == 200
        s.recv_spin_us = -1
        assert s.recv_spin_us == default
        with pytest.raises(iok.Error):
            s.recv_spin_us = 1000001


def test_generic_calls():
    with iok.Pull() as s:
        s.set_option("recv_timeout", 77)
        assert s.get_option("recv_timeout") == 77
        assert s.getopt("recv-timeout", "ms") == 77
        assert s.getopt("recv-timeout") == 77  # auto
        s.setopt("recv-buffer", 16)
        assert s.getopt("recv-buffer", "int") == 16
        assert s.getopt("recv-buffer", "uint64") == 16
        assert s.getopt("protocol-name") == "pull0"  # auto: not a number
        assert s.getopt("socket-name", "string") == s.name
        with pytest.raises(ValueError):
            s.getopt("recv-buffer", "no-such-kind")


def test_numeric_types_convert():
    with iok.Pull() as s:
        # Durations are whole milliseconds: a fraction is refused, not
        # truncated silently; None is infinite (-1).
        with pytest.raises(ValueError, match="milliseconds"):
            s.recv_timeout = 12.7
        s.recv_timeout = 12.0
        assert s.recv_timeout == 12
        s.recv_timeout = None
        assert s.recv_timeout == -1
        s.set_option("recv_timeout", None)
        assert s.recv_timeout == -1
        s.recv_max_size = 2 ** 33  # larger than an int
        assert s.recv_max_size == 2 ** 33
        s.recv_timeout = True
        assert s.recv_timeout == 1


def test_timeouts_bind_blocking_calls():
    with iok.Pull(recv_timeout=5) as s:
        with pytest.raises(iok.Timeout):
            s.recv()
        s.setopt("recv-timeout", 0)  # through the generic call too
        with pytest.raises(iok.TryAgain):
            s.recv()


def test_raw_socket():
    with iok.Socket("pair0", raw=True) as s:
        assert s.raw is True
    with iok.Pair1(raw=True) as s:
        assert s.raw is True


def test_stats(inproc_url):
    with iok.Pull(listen=inproc_url, recv_timeout=30000) as pull, iok.Push(dial=inproc_url) as push:
        wait_connected(pull)
        for i in range(10):
            push.send(b"0123456789")
        for i in range(10):
            pull.recv()
        st = pull.stats
        assert set(st) == set(iok.STATS)
        assert st["rx-msgs"] == 10 and st["rx-bytes"] == 100
        assert st["pipes"] == 1
        assert push.stats["tx-msgs"] == 10


def test_endpoint_options(tcp_url):
    with iok.Pull() as s:
        d = s.dial(tcp_url)
        d.set_option("reconnect_time_min", 20)
        assert d.get_option("reconnect_time_min") == 20
        assert d.get_option("url", "string").startswith("tcp://127.0.0.1:")
        lst = s.listen("tcp://127.0.0.1:0")
        assert lst.get_option("tcp-bound-port", "int") == lst.port


def test_subscribe_needs_sub():
    with iok.Pull() as s:
        with pytest.raises(iok.NotSupported):
            s.subscribe(b"x")


def test_bad_keyword():
    with pytest.raises(iok.NotSupported):
        iok.Pull(no_such_option=1)
    with pytest.raises(TypeError):
        iok.Socket()


def test_health_options():
    with iok.Socket("pipelined-db", health_interval=250, health_timeout=100,
                    health_eject_errors=3, health_eject_ms=1500,
                    max_inflight_per_upstream=8) as s:
        assert s.health_interval == 250 and s.health_timeout == 100
        assert s.health_eject_errors == 3 and s.health_eject_ms == 1500
        assert s.max_inflight_per_upstream == 8
        s.health_interval = 0  # off
        assert s.health_interval == 0
        with pytest.raises(iok.Error):
            s.health_timeout = 0
        for name in ("probes", "probe-timeouts", "ejections", "upstream-waits"):
            assert s.stats[name] == 0
