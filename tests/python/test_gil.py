"""I/O keeps flowing while Python holds the GIL: the kernel thread never
needs it.  A peer process sends 10,000 messages while this process spins
the CPU for two seconds holding the GIL; the peer's sends complete during
the spin, and every message is there afterwards, in order."""
import select
import subprocess
import time

import pytest

from conftest import DEADLINE, popen_python, wait_until
import iok

N = 10_000
SIZE = 1000  # 10 MB in all: far more than socket buffers can hide
SPIN = 2.0

PEER = r"""
import iok, sys, time
url, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
push = iok.Push(dial=url, send_buffer=n)
while push.getopt("stat:pipes", "uint64") < 1:
    time.sleep(0.001)
print("CONNECTED", flush=True)
sys.stdin.readline()                         # go
pad = b"p" * (size - 8)
for i in range(n):
    push.send(b"%08d" % i + pad)
# Sent = the pattern handed every message to the connection.
while push.getopt("stat:tx-msgs", "uint64") < n:
    time.sleep(0.0005)
print("SENT %.6f" % time.monotonic(), flush=True)   # CLOCK_MONOTONIC: system-wide
sys.stdin.readline()                         # keep the connection until told
"""


def test_io_flows_while_python_holds_the_gil(tcp_url):
    with iok.Pull(listen=tcp_url, recv_buffer=2 * N, recv_timeout=30000) as pull:
        peer = popen_python(PEER, tcp_url, str(N), str(SIZE), stdin=subprocess.PIPE)
        try:
            assert peer.stdout.readline() == b"CONNECTED\n"
            wait_until(lambda: pull.getopt("stat:pipes", "uint64") >= 1, what="connection")
            peer.stdin.write(b"go\n")
            peer.stdin.flush()

            # Spin holding the GIL: pure bytecode, no call that releases it.
            t0 = time.monotonic()
            end = t0 + SPIN
            spins = 0
            while time.monotonic() < end:
                spins += 1
            t1 = time.monotonic()
            received_during_spin = pull.getopt("stat:rx-msgs", "uint64")

            r, _, _ = select.select([peer.stdout], [], [], DEADLINE)
            assert r, "the peer never finished sending"
            line = peer.stdout.readline().split()
            assert line[0] == b"SENT"
            sent_at = float(line[1])
            assert t0 < sent_at < t1, "peer finished at %+.3f s, spin ran [0, %.3f]" % (
                sent_at - t0, t1 - t0)
            assert received_during_spin == N

            for i in range(N):
                m = pull.recv()
                assert m[:8] == b"%08d" % i and len(m) == SIZE
            with pytest.raises(iok.TryAgain):
                pull.recv(timeout=0)  # nothing extra, nothing twice
        finally:
            peer.stdin.close()
            peer.wait(DEADLINE)
