"""Logging records (logger "iok") for what iok's kernel thread saw on each
socket: connections opened, dropped and re-made, messages refused as over a
size limit.

The kernel thread never runs Python, so nothing is signalled from there: a
daemon thread reads the counters the kernel already keeps (the sockets'
stats) every INTERVAL seconds and logs what changed.  It starts only once a
socket is made while a handler other than a NullHandler would take the
records, and reads nothing while none would, so an application that does
not configure logging pays nothing.  Records come up to INTERVAL late;
counts are exact (a socket made before logging was configured is followed
from its creation all the same).
"""

import atexit
import logging
import os
import threading
import weakref

log = logging.getLogger("iok")
log.addHandler(logging.NullHandler())  # a library: silent unless configured

INTERVAL = 0.5  # seconds between two looks at the counters
_KEYS = ("stat:pipes", "stat:pipes-opened", "stat:reconnects", "stat:rx-oversize",
         "stat:tx-oversize")

_socks = weakref.WeakKeyDictionary()  # socket -> its counters at the last look
_lock = threading.Lock()
_busy = threading.Lock()  # held through a tick; a fork waits for it
_stop = threading.Event()
_thread = None


def _configured():
    """True if a record of "iok" at WARNING would reach a real handler."""
    if not log.isEnabledFor(logging.WARNING):
        return False
    lg = log
    while lg is not None:
        if any(not isinstance(h, logging.NullHandler) for h in lg.handlers):
            return True
        if not lg.propagate:
            return False
        lg = lg.parent
    return False


def _report(sock, was, now):
    pipes, opened, reconn, rxo, txo = now
    where = sock._where_text()
    links = getattr(sock, "_log_links", True)  # False, or "no-connects": the owner logs those
    dropped = (opened - pipes) - (was[1] - was[0])
    if links and dropped > 0:
        log.warning("%s: %d connection%s dropped", where, dropped, "s" if dropped > 1 else "")
    if links and reconn > was[2]:
        log.info("%s: reconnected (%d)", where, reconn - was[2])
    fresh = (opened - was[1]) - (reconn - was[2])
    if links is True and fresh > 0:
        log.info("%s: connected (%d connection%s)", where, fresh, "s" if fresh > 1 else "")
    if rxo > was[3]:
        log.warning("%s: %d received message%s over recv_max_size refused", where, rxo - was[3],
                    "s" if rxo - was[3] > 1 else "")
    if txo > was[4]:
        log.warning("%s: %d message%s refused at the sender: over the peer's recv_max_size",
                    where, txo - was[4], "s" if txo - was[4] > 1 else "")


def tick():
    """One look at every socket (the watcher's step; tests call it to
    avoid waiting for INTERVAL)."""
    if not _configured():
        return
    with _lock:
        refs = _socks.keyrefs()
    for ref in refs:
        # One socket alive at a time, and only here: the watcher never
        # delays the end of a socket the application let go.
        sock = ref()
        if sock is None:
            continue
        was = _socks.get(sock)
        try:
            if was is None or sock.closed:
                raise ValueError
            now = [sock.getopt(k, "uint64") for k in _KEYS]
        except Exception:  # closed meanwhile: nothing more to say about it
            with _lock:
                _socks.pop(sock, None)
            del sock
            continue
        if now != was:
            _report(sock, was, now)
            was[:] = now
        del sock


def _run(stop):
    while not stop.wait(INTERVAL):
        with _busy:
            if stop.is_set():
                return
            try:
                tick()
            except Exception:  # never let logging take the watcher down
                pass


def watch(sock):
    """Follow sock's counters from now on (called by Socket.__init__).  The
    watcher thread starts with the first socket made while logging is
    configured: a program that never configures it never has the thread."""
    global _thread
    with _lock:
        _socks[sock] = [0] * len(_KEYS)
        if _thread is None and _configured():
            _thread = threading.Thread(target=_run, args=(_stop,), name="iok-log", daemon=True)
            _thread.start()


@atexit.register
def _at_exit():
    # Before iok's own exit handler: no counter is read while it shuts down.
    t = _thread
    _stop.set()
    if t is not None:
        t.join(2 * INTERVAL)


def _before_fork():
    # Never fork in the middle of the watcher's calls into iok: the child
    # would inherit a half-made request of a thread it does not have.
    # (Registered after logging's own fork handlers, so it runs before
    # them: a tick may need logging's lock.)
    _busy.acquire()


def _after_fork_in_parent():
    _busy.release()


def _after_fork_in_child():
    # The watcher thread does not exist in the child: a new one starts with
    # the child's next socket made while logging is configured.
    global _lock, _busy, _stop, _thread
    _lock = threading.Lock()
    _busy = threading.Lock()
    _stop = threading.Event()
    _thread = None


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
