"""Ctrl+C interrupts a blocking recv or send at once with KeyboardInterrupt,
and other signal handlers run while a call waits."""
import os
import platform
import signal

import pytest

from conftest import DEADLINE, popen_python, wait_until

BLOCKED_RECV = r"""
import iok, sys
s = iok.Pull(listen="inproc://sig")
print("READY", flush=True)
s.recv()
print("RETURNED", flush=True)
"""

BLOCKED_RECV_TIMEOUT = r"""
import iok, sys
s = iok.Pull(listen="inproc://sig", recv_timeout=3600 * 1000)
print("READY", flush=True)
s.recv()
"""

BLOCKED_SEND = r"""
import iok
s = iok.Push(send_buffer=1)   # no peer: the queue fills
s.send(b"fills the queue")
print("READY", flush=True)
s.send(b"blocks")
"""

BLOCKED_RECV_THREAD = r"""
import iok, threading
s = iok.Pull(listen="inproc://sig")
other = iok.Pull(listen="inproc://sig2")
t = threading.Thread(target=lambda: other.recv(timeout=3600 * 1000), daemon=True)
t.start()
print("READY", flush=True)
s.recv()
"""


@pytest.mark.parametrize("code", [BLOCKED_RECV, BLOCKED_RECV_TIMEOUT, BLOCKED_SEND,
                                  BLOCKED_RECV_THREAD],
                         ids=["recv", "recv-timeout", "send", "recv-with-thread"])
def test_ctrl_c_interrupts_blocking_call(code):
    for attempt in range(3):
        p = popen_python(code)
        try:
            assert p.stdout.readline() == b"READY\n"
            if attempt > 0:  # the first signal may land before the wait
                wait_blocked(p.pid)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=DEADLINE)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert b"KeyboardInterrupt" in err, err.decode()
        assert b"RETURNED" not in out
        assert p.returncode != 0


PPOLL = 271  # x86_64


def wait_blocked(pid):
    """Wait until the process's main thread sleeps in ppoll (our wait)."""
    def blocked():
        try:
            with open("/proc/%d/syscall" % pid) as f:
                return f.read().split()[0] == str(PPOLL)
        except (OSError, IndexError):
            return False
    if platform.machine() != "x86_64" or not os.path.exists("/proc/self/syscall"):
        pytest.skip("needs /proc/PID/syscall on x86_64")
    wait_until(blocked, what="the child to block in recv")


def test_signal_handler_runs_and_wait_resumes():
    """A Python handler that returns normally does not end the wait; one
    that raises does."""
    code = r"""
import iok, signal, sys
hits = []
def handler(sig, frame):
    hits.append(sig)
    print("HIT", len(hits), flush=True)
    if len(hits) == 2:
        raise RuntimeError("second signal")
signal.signal(signal.SIGUSR1, handler)
s = iok.Pull(listen="inproc://sig")
try:
    print("READY", flush=True)
    s.recv()
except RuntimeError as e:
    print("HANDLED", len(hits), e, flush=True)
"""
    p = popen_python(code)
    try:
        assert p.stdout.readline() == b"READY\n"
        wait_blocked(p.pid)
        p.send_signal(signal.SIGUSR1)
        assert p.stdout.readline() == b"HIT 1\n"  # handled; recv goes on waiting
        wait_blocked(p.pid)
        p.send_signal(signal.SIGUSR1)
        out, err = p.communicate(timeout=DEADLINE)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert out == b"HIT 2\nHANDLED 2 second signal\n", (out, err)
    assert p.returncode == 0


def test_sigint_unrelated_to_iok_still_works():
    """Ctrl+C in plain Python code while sockets exist (the kernel thread
    blocks every signal, so it goes to Python)."""
    code = r"""
import iok, time
s = iok.Pull(listen="inproc://x")
print("READY", flush=True)
while True:
    time.sleep(0.01)
"""
    p = popen_python(code)
    try:
        assert p.stdout.readline() == b"READY\n"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=DEADLINE)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert b"KeyboardInterrupt" in err
