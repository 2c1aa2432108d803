"""ZooKeeper discovery from Python, pipelined-db: iok.redis over
"redis+zk://127.0.0.1:Z/path", whose children name two real redis-servers.
Requests flow from a thread while the child moves from one server to the
other: the commands follow it, and every one either succeeds or fails
clearly (none is lost).  One ZooKeeper for the module (tests/zkserver.py,
a JVM: slow to start)."""
import os
import sys
import threading

import pytest

from conftest import wait_until
from redis_fixtures import REDIS_SERVER, RedisServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import zkserver  # noqa: E402

import iok  # noqa: E402
import iok.redis  # noqa: E402

try:
    from kazoo.client import KazooClient
except ImportError:  # python3-kazoo (scripts/install-deps)
    KazooClient = None

pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None or KazooClient is None or not zkserver.available(),
    reason="needs redis-server, zookeeper and python3-kazoo")

# The serving server's port, read by a script (the test's own witness).
WHO = "return string.match(redis.call('INFO', 'server'), 'tcp_port:(%d+)')"


@pytest.fixture(scope="module")
def zk(tmp_path_factory):
    srv = zkserver.Server(root=str(tmp_path_factory.mktemp("zk"))).start()
    kz = KazooClient(hosts=srv.hosts)
    kz.start(timeout=60)
    yield srv, kz
    kz.stop()
    kz.close()
    srv.close()


def test_redis_follows_children(zk, tmp_path):
    srv, kz = zk
    a = RedisServer(tmp_path / "a")
    b = RedisServer(tmp_path / "b")
    os.makedirs(a.dir)
    os.makedirs(b.dir)
    a.start()
    b.start()
    base = "/py/db"
    kz.ensure_path(base)
    kz.create("%s/127.0.0.1:%d" % (base, a.port))
    try:
        client = iok.redis.Client("redis+zk://%s%s" % (srv.hosts, base), socket_timeout=20)
    except iok.NoEntry:  # no "zk" backend: libzookeeper-st-dev was missing
        a.kill()
        b.kill()
        pytest.skip("built without the ZooKeeper backend")
    seen = {a.port: 0, b.port: 0}
    errors = []
    stop = threading.Event()
    sent = [0]

    def flow():
        while not stop.is_set():
            sent[0] += 1
            try:
                seen[int(client.execute("EVAL", WHO, 0))] += 1
            except iok.redis.ConnectionError as e:  # clear, not silent
                errors.append(e)

    try:
        th = threading.Thread(target=flow)
        th.start()
        wait_until(lambda: seen[a.port] > 20, what="traffic on a")
        kz.create("%s/127.0.0.1:%d" % (base, b.port))
        kz.delete("%s/127.0.0.1:%d" % (base, a.port))
        wait_until(lambda: seen[b.port] > 20, what="traffic on b")
        before = seen[a.port]
        n = seen[b.port]
        wait_until(lambda: seen[b.port] > n + 20, what="more traffic on b")
        assert seen[a.port] == before  # a drained: nothing new goes there
        stop.set()
        th.join(60)
        assert sent[0] == sum(seen.values()) + len(errors)  # none lost
        # Drained, not cut: requests in flight on a completed.
        assert not errors, errors
    finally:
        stop.set()
        client.close()
        a.kill()
        b.kill()
