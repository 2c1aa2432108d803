"""Fixtures for the iok.redis tests: a real redis-server (Debian's) started
on a free 127.0.0.1 port in a temporary directory, killed and restarted on
the same port when a test asks; a tiny independent RESP2 admin client (a
raw socket, so what the tests check does not go through iok); and a fake
server on a raw socket that speaks whatever bytes a test scripts (the
asyncio/uvloop runner, ``run``, is conftest's).

Import the fixtures into a test module (``from redis_fixtures import
redis_server, ...``).  Waiting is always on a condition (the server
answering PING, a client list changing), never a fixed sleep.
"""
import os
import shutil
import signal
import socket
import subprocess
import threading

import pytest

from conftest import DEADLINE, free_tcp_port, wait_until

REDIS_SERVER = shutil.which("redis-server")
need_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")


# ------------------------------------------------------------ admin client

class Admin:
    """A minimal blocking RESP2 client on a raw socket (no iok)."""

    def __init__(self, port=None, password=None, unix=None):
        if unix is not None:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.connect(unix)
        else:
            self.s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.s.settimeout(DEADLINE)
        self.buf = b""
        if password is not None:
            self("AUTH", password)

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self._value()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the admin connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _value(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the admin connection")
                self.buf += chunk
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._value() for _ in range(n)]
        raise RuntimeError("admin: unexpected reply %r" % line)

    def clients(self, name=None):
        """CLIENT LIST as dicts; only those named name if given."""
        out = []
        for line in self("CLIENT", "LIST").decode().splitlines():
            d = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
            if name is None or d.get("name") == name:
                out.append(d)
        return out


# ----------------------------------------------------------------- servers

def _answers(port, unix=None):
    try:
        if unix is not None:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            s.connect(unix)
        else:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError:
        return False
    try:
        s.settimeout(2)
        s.sendall(b"PING\r\n")
        r = s.recv(64)
        return r.startswith(b"+PONG") or r.startswith(b"-NOAUTH")
    except OSError:
        return False
    finally:
        s.close()


class RedisServer:
    """redis-server on 127.0.0.1:<free port> in dir (and a unix socket
    there), with DEBUG enabled and no persistence."""

    def __init__(self, dir, password=None):
        self.dir = str(dir)
        self.password = password
        self.port = None
        self.proc = None
        self.unix = os.path.join(self.dir, "redis.sock")

    def url(self, name=None, db=None, password=None):
        pw = password if password is not None else self.password
        auth = ":%s@" % pw if pw else ""
        u = "redis://%s127.0.0.1:%d" % (auth, self.port)
        q = []
        if db is not None:
            u += "/%d" % db
        if name is not None:
            q.append("name=" + name)
        return u + ("?" + "&".join(q) if q else "")

    def start(self):
        """Start (on the same port as before, if any) and wait until it
        answers."""
        if self.port is None:
            self.port = free_tcp_port()
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--unixsocket", self.unix, "--unixsocketperm", "700",
                "--enable-debug-command", "yes"]
        if self.password:
            args += ["--requirepass", self.password]
        with open(os.path.join(self.dir, "redis.log"), "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        wait_until(lambda: self.proc.poll() is not None or _answers(self.port),
                   what="redis-server to answer")
        if self.proc.poll() is not None:
            self.proc = None
            raise RuntimeError("redis-server did not start; see %s/redis.log" % self.dir)
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None

    def admin(self):
        return Admin(self.port, self.password)


@pytest.fixture(scope="module")
def redis_module_server(tmp_path_factory):
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    srv = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield srv
    srv.kill()


@pytest.fixture
def redis_server(redis_module_server):
    """A shared server, emptied for each test (restarted if a test left it
    dead)."""
    srv = redis_module_server
    if srv.proc is None or srv.proc.poll() is not None:
        srv.start()
    with srv.admin() as a:
        a("FLUSHALL")
    return srv


@pytest.fixture
def fresh_redis(tmp_path):
    """A server of the test's own (to kill, restart, or configure)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    srv = RedisServer(tmp_path).start()
    yield srv
    srv.kill()


def wait_clients(srv, name, n, what=None):
    """Wait until the server lists exactly n connections named name."""
    def ok():
        with srv.admin() as a:
            return len(a.clients(name)) == n
    wait_until(ok, what=what or "%d connection(s) named %s" % (n, name))


# ------------------------------------------------------------- fake server

class FakeServer:
    """A TCP server on 127.0.0.1:<free port> that reads RESP commands and
    answers each with whatever handler(conn_index, command) returns (bytes
    to send; None: close the connection).  HELLO gets a RESP3 map unless
    the handler answers it.  Counts connections and records commands."""

    HELLO = b"%2\r\n+server\r\n+fake\r\n+proto\r\n:3\r\n"

    def __init__(self, handler):
        self.handler = handler
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.connections = 0
        self.closed_by_peer = 0
        self.commands = []
        self.lock = threading.Lock()
        self.stop = False
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, name=None):
        return "redis://127.0.0.1:%d%s" % (self.port, "?name=" + name if name else "")

    def _accept(self):
        while not self.stop:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                idx = self.connections
                self.connections += 1
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, idx), daemon=True).start()

    @staticmethod
    def _parse(buf):
        """One command (list of bytes) from buf, or None if incomplete."""
        if not buf.startswith(b"*"):
            raise ValueError("fake server: not a command: %r" % buf[:40])
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        n, pos, args = int(buf[1:end]), end + 2, []
        for _ in range(n):
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            ln = int(buf[pos + 1:end])
            if len(buf) < end + 2 + ln + 2:
                return None
            args.append(buf[end + 2:end + 2 + ln])
            pos = end + 2 + ln + 2
        return args, buf[pos:]

    def _serve(self, c, idx):
        buf = b""
        try:
            while True:
                got = self._parse(buf) if buf else None
                if got is None:
                    chunk = c.recv(65536)
                    if not chunk:
                        with self.lock:
                            self.closed_by_peer += 1
                        return
                    buf += chunk
                    continue
                cmd, buf = got
                with self.lock:
                    self.commands.append((idx, cmd))
                out = self.handler(idx, cmd)
                if out is None and cmd[0].upper() == b"HELLO":
                    out = self.HELLO
                if out is None:
                    return
                c.sendall(out)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.ls.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass
