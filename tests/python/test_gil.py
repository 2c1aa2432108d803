"""I/O keeps flowing while Python holds the GIL: the kernel thread never
needs it.  A peer process sends 10,000 messages (10 MB, far more than the
socket buffers hold, so our kernel thread must be reading) while this
process spins the CPU holding the GIL; the spin ends when the peer says,
through shared memory (reading it never releases the GIL), that every
message left.  Then every message is there, in order."""
import mmap
import select
import subprocess
import tempfile
import time

import pytest

from conftest import DEADLINE, popen_python, wait_until
import iok

N = 10_000
SIZE = 1000  # 10 MB in all: far more than socket buffers can hide
SPIN_MAX = 60.0  # a bound, not an expectation: the peer ends the spin

PEER = r"""
import iok, sys, time
import mmap
url, n, size, flag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(flag, "r+b") as f:
    done = mmap.mmap(f.fileno(), 1)
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
done[0] = 1                                  # ends the receiver's spin
print("SENT %.6f" % time.monotonic(), flush=True)   # CLOCK_MONOTONIC: system-wide
sys.stdin.readline()                         # keep the connection until told
"""


def test_io_flows_while_python_holds_the_gil(tcp_url):
    with iok.Pull(listen=tcp_url, recv_buffer=2 * N, recv_timeout=30000) as pull, \
            tempfile.NamedTemporaryFile() as flag:
        flag.write(b"\0")
        flag.flush()
        done = mmap.mmap(flag.fileno(), 1)
        peer = popen_python(PEER, tcp_url, str(N), str(SIZE), flag.name, stdin=subprocess.PIPE)
        try:
            assert peer.stdout.readline() == b"CONNECTED\n"
            wait_until(lambda: pull.getopt("stat:pipes", "uint64") >= 1, what="connection")
            peer.stdin.write(b"go\n")
            peer.stdin.flush()

            # Spin holding the GIL: pure bytecode and a read of shared
            # memory, no call that releases it.
            t0 = time.monotonic()
            end = t0 + SPIN_MAX
            spins = 0
            while done[0] == 0 and time.monotonic() < end:
                spins += 1
            assert done[0] == 1, "the peer did not finish within %.0f s of spinning" % SPIN_MAX
            # The last bytes may still be on their way in.
            wait_until(lambda: pull.getopt("stat:rx-msgs", "uint64") >= N, what="every message")
            received = pull.getopt("stat:rx-msgs", "uint64")

            r, _, _ = select.select([peer.stdout], [], [], DEADLINE)
            assert r, "the peer never finished sending"
            line = peer.stdout.readline().split()
            assert line[0] == b"SENT"
            sent_at = float(line[1])
            assert t0 < sent_at, "peer finished at %+.3f s, before the spin" % (sent_at - t0)
            assert received == N

            for i in range(N):
                m = pull.recv()
                assert m[:8] == b"%08d" % i and len(m) == SIZE
            with pytest.raises(iok.TryAgain):
                pull.recv(timeout=0)  # nothing extra, nothing twice
        finally:
            peer.stdin.close()
            peer.wait(DEADLINE)
