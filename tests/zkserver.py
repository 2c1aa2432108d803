#!/usr/bin/python3
"""zkserver - a throwaway standalone ZooKeeper for tests and benchmarks.

Debian's zookeeper package ships the server as jars (/usr/share/java/
zookeeper.jar, whose manifest names the jars it needs) and a systemd unit;
nothing here uses the unit or /etc/zookeeper.  The server runs as
`java -cp zookeeper.jar org.apache.zookeeper.server.ZooKeeperServerMain
zoo.cfg` with its own zoo.cfg in a temporary directory: dataDir there,
clientPort a free 127.0.0.1 port, admin.enableServer=false (no HTTP port),
tickTime 500 ms (sessions of 1..10 s).  A JVM takes a second or two to
start, so a test program gets ONE server (`run`) and restarts it at most
once.  Ready means the `srvr` four-letter command answers "Mode:".

As a module:
    from zkserver import Server
    with Server() as zk:
        zk.port, zk.hosts            # 12345, "127.0.0.1:12345"
        zk.restart(fresh=True)       # crash-stop, start again on the same port

As a command:
    zkserver.py run -- CMD ARGS...   # start, run CMD with IOK_ZK_* set, stop
    zkserver.py restart DIR [fresh]  # restart the server of DIR (same port);
                                     # fresh: with an empty data directory
    zkserver.py ops HOSTS OP PATH ... # create PATH (persistent, empty; an
                                     # existing one is fine) or delete PATH,
                                     # in order, through kazoo

Environment given to CMD by `run`: IOK_ZK_PORT, IOK_ZK_HOSTS
("127.0.0.1:PORT"), IOK_ZK_DIR (for `restart`), IOK_ZK_HELPER (this file).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

JAR_DIRS = ["/usr/share/java", "/usr/share/zookeeper"]
MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
START_S = 60  # a JVM on a loaded two-core machine


def find_jar():
    for d in JAR_DIRS:
        p = os.path.join(d, "zookeeper.jar")
        if os.path.exists(p):
            return p
    return None


def available():
    return find_jar() is not None and shutil.which("java") is not None


def classpath():
    # zookeeper.jar's manifest lists its dependencies; slf4j-nop (if there)
    # keeps SLF4J from printing its "no binding" warning.
    cp = [find_jar()]
    nop = "/usr/share/java/slf4j-nop.jar"
    if os.path.exists(nop):
        cp.append(nop)
    return ":".join(cp)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four(port, cmd, timeout=1.0):
    """A four-letter command's answer ("" if the server does not answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(cmd.encode())
            out = b""
            while True:
                b = s.recv(4096)
                if not b:
                    return out.decode(errors="replace")
                out += b
    except OSError:
        return ""


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


class Server:
    def __init__(self, root=None, port=None):
        if not available():
            raise RuntimeError("zookeeper (Debian package) or java not installed")
        base = os.environ.get("IOK_TEST_TMP")
        if base:
            os.makedirs(base, exist_ok=True)
        self.root = root or tempfile.mkdtemp(prefix="iok-zk-", dir=base)
        self.own_root = root is None
        self.port = port or free_port()
        self.hosts = f"127.0.0.1:{self.port}"
        self.proc = None

    # ---- files
    def _write_cfg(self):
        data = os.path.join(self.root, "data")
        os.makedirs(data, exist_ok=True)
        with open(os.path.join(self.root, "zoo.cfg"), "w") as f:
            f.write(
                f"tickTime=500\n"
                f"dataDir={data}\n"
                f"clientPort={self.port}\n"
                f"clientPortAddress=127.0.0.1\n"
                f"admin.enableServer=false\n"
                f"4lw.commands.whitelist=srvr,ruok\n"
                f"maxClientCnxns=0\n"
                f"minSessionTimeout=1000\n"
                f"maxSessionTimeout=10000\n"
            )
        with open(os.path.join(self.root, "port"), "w") as f:
            f.write(str(self.port))

    def _pidfile(self):
        return os.path.join(self.root, "pid")

    # ---- life
    def start(self):
        self._write_cfg()
        log = open(os.path.join(self.root, "server.log"), "ab")
        self.proc = subprocess.Popen(
            ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             f"-Dzookeeper.log.dir={self.root}", "-cp", classpath(), MAIN,
             os.path.join(self.root, "zoo.cfg")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
            # The Python suite of a sanitizer build preloads the ASan
            # runtime: not into the JVM.
            env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
        log.close()
        with open(self._pidfile(), "w") as f:
            f.write(str(self.proc.pid))
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"zookeeper exited ({self.proc.returncode}); see {self.root}/server.log")
            if "Mode:" in four(self.port, "srvr", 0.5):
                return self
            time.sleep(0.05)  # a JVM starting: nothing to wait on but the port
        self.stop()
        raise RuntimeError("zookeeper did not start in time")

    def stop(self):
        """Crash-stop (SIGKILL: the tests want a lost server, not a goodbye)."""
        # This object's child, and whatever a `restart` command started
        # since (its pid file).
        pids = set()
        if self.proc is not None:
            pids.add(self.proc.pid)
        if os.path.exists(self._pidfile()):
            with open(self._pidfile()) as f:
                txt = f.read().strip()
            if txt.isdigit():
                pids.add(int(txt))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            self.proc.wait()
        deadline = time.monotonic() + 30
        for pid in pids:
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)  # not our child: no wait() to block on
        self.proc = None
        if os.path.exists(self._pidfile()):
            os.unlink(self._pidfile())

    def restart(self, fresh=False):
        self.stop()
        if fresh:
            shutil.rmtree(os.path.join(self.root, "data"), ignore_errors=True)
        return self.start()

    def close(self):
        self.stop()
        if self.own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def main(argv):
    if len(argv) >= 2 and argv[1] == "run":
        cmd = argv[argv.index("--") + 1:] if "--" in argv else argv[2:]
        if not available():
            print("zkserver: zookeeper not installed; running without it", file=sys.stderr)
            return subprocess.call(cmd)
        with Server() as zk:
            env = dict(os.environ, IOK_ZK_PORT=str(zk.port), IOK_ZK_HOSTS=zk.hosts,
                       IOK_ZK_DIR=zk.root, IOK_ZK_HELPER=os.path.abspath(__file__))
            # The server is stopped even if the test is killed by ctest's
            # timeout (SIGTERM to this process).
            signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
            return subprocess.call(cmd, env=env)
    if len(argv) >= 3 and argv[1] == "restart":
        root = argv[2]
        with open(os.path.join(root, "port")) as f:
            port = int(f.read())
        zk = Server(root=root, port=port)
        # The restarted server outlives this command; `run` stops it by its
        # pid file.
        zk.restart(fresh=len(argv) > 3 and argv[3] == "fresh")
        zk.proc = None
        return 0
    if len(argv) >= 3 and argv[1] == "ops":
        return ops(argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


def ops(hosts, args):
    """The C tests change znodes from this separate process: Debian's
    single-threaded C client keeps static buffers, so it must not run on
    the test's thread while iok's kernel thread runs it too."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NodeExistsError
    kz = KazooClient(hosts=hosts)
    kz.start(timeout=START_S)
    try:
        for op, path in zip(args[0::2], args[1::2]):
            if op == "create":
                try:
                    kz.create(path, b"")
                except NodeExistsError:
                    pass
            elif op == "delete":
                kz.delete(path)
            else:
                raise ValueError("unknown op " + op)
    finally:
        kz.stop()
        kz.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
