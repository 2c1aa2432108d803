"""asyncio integration for iok sockets.

One state object per socket and event loop.  Readiness comes from the
socket's level-triggered descriptors (our dups of IOK_OPT_RECVFD/SENDFD),
registered with loop.add_reader only while someone waits: no helper thread,
no polling.

* request(): a dict token -> future.  The reader drains every waiting reply
  in C (_dispatch) and completes the matching futures; a reply whose token
  is unknown (its request was cancelled) is dropped.
* arecv()/arecv_msg(): FIFO waiters, each given one message.
* asend()/areply()/request() on a full send queue: wait until the send
  descriptor is readable, then retry.

The reader is removed when nobody waits any more (checked one loop
iteration later, so back-to-back requests do not re-register it), and on
close.  A forked child drops the parent's states without touching the
parent's loop.
"""

import collections
import functools
import os
import weakref
from asyncio import BaseEventLoop, CancelledError, get_running_loop
from threading import get_ident

from . import Closed, Error, Timeout, TryAgain
from ._iok import AioStateBase, Reply, _loop_runs_here

_live = weakref.WeakSet()  # sockets that have a state, for fork


def _after_fork_in_child():
    # Readers and futures belong to the parent's loop; the C layer re-dups
    # the descriptors itself.
    for s in list(_live):
        s._aio = None
    _live.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def state(sock):
    """The socket's state for the running loop, made anew for another
    loop.  get_running_loop() makes a getpid() system call (CPython's
    check for a fork), about 1.25 us on a VM, a fifth of a pipelined Redis
    command, so while the state's loop runs in this thread it is the
    running loop and is taken without asking (a forked child's states are
    dropped, see above)."""
    aio = sock._aio
    if aio is not None and aio.runs_here():
        return aio
    loop = get_running_loop()
    if aio is not None and aio.loop is loop:
        return aio
    return _new_state(sock, loop)


def _new_state(sock, loop):
    if sock.closed:
        raise Closed()
    old = sock._aio
    if old is not None:
        if old.busy() and not old.loop.is_closed():
            raise RuntimeError("this iok socket is in use by another event loop")
        sock._aio = None
        old.detach(sock, cancel_requests=True)
    aio = _State(loop)
    sock._aio = aio
    _live.add(sock)
    return aio


async def call(sock, attempt, *args):
    """Issue a request with attempt(*args), which returns its token (0
    while the send queue is full: wait until the socket is writable), and
    await its reply, completed by the reader from aio.pending.  Cancelling
    the awaiting task cancels the request: a late reply is dropped."""
    aio = state(sock)
    token = attempt(*args)
    while not token:
        await aio.writable(sock)
        token = attempt(*args)
    fut = Reply(aio.loop)
    pending = aio.pending
    pending[token] = fut
    if not aio.reading:
        aio.start_reading(sock)
    try:
        return await fut
    except BaseException:
        forget(sock, aio, ((token, fut),))
        raise


def forget(sock, aio, sent):
    """Give up on requests [(token, future)] still pending: their entries
    go, the kernel cancels them, a late reply is dropped."""
    pending = aio.pending
    for token, _ in sent:
        if pending.pop(token, None) is not None:
            try:
                sock.cancel(token)
            except Error:
                pass
    if not pending:
        aio.maybe_idle(sock)


def _on_readable(sock, aio):
    try:
        if aio.pending:
            sock._dispatch(aio.pending)
        waiters = aio.waiters
        while waiters:
            w = waiters[0]
            fut = w[0]
            if fut.done():
                waiters.popleft()
                continue
            try:
                if w[1]:
                    m = sock._recv_msg(0)
                else:
                    m = sock._try_recv()
                    if m is None:
                        break
            except TryAgain:
                break
            except Closed:
                raise
            except Error as e:  # a kernel-made error completion: this waiter's
                waiters.popleft()
                fut.set_exception(e)
                continue
            waiters.popleft()
            fut.set_result(m)
    except Error as e:  # closed (from another thread) or unusable
        aio.fail(sock, e)
        return
    if not aio.pending and not aio.waiters:
        aio.maybe_idle(sock)


def _on_writable(sock, aio):
    aio.stop_writing(sock)
    ww, aio.wwaiters = aio.wwaiters, []
    for fut in ww:
        if not fut.done():
            fut.set_result(None)


def _idle(sock, aio):
    aio.idle_check = False
    if aio.reading and not aio.pending and not aio.waiters:
        aio.stop_reading(sock)


class Collector:
    """A pending entry that gathers many replies for one token (surveys).
    _dispatch pops the entry and calls set_result for each reply: we put
    ourselves back until the kernel's end-of-survey completion
    (IOK_ETIMEDOUT) arrives through set_exception."""

    __slots__ = ("fut", "replies", "pending", "token")

    def __init__(self, loop, pending, token):
        self.fut = loop.create_future()
        self.replies = []
        self.pending = pending
        self.token = token

    def set_result(self, data):
        if not self.fut.done():
            self.replies.append(data)
            self.pending[self.token] = self

    def set_exception(self, exc):
        if self.fut.done():
            return
        if isinstance(exc, Timeout):
            self.fut.set_result(self.replies)
        else:
            self.fut.set_exception(exc)

    def done(self):
        return self.fut.done()


def _runs_here(loop):
    """A test of 'loop runs in the calling thread' without a system call.
    asyncio's loops know the thread running them; for others (uvloop) it
    is 'running, and this is the thread it ran in when asked for the
    first time' (one loop runs per thread at a time), which is wrong only
    if that loop has since moved to another thread while this one runs a
    second loop: the await then fails with asyncio's 'attached to a
    different loop' error instead of switching loops."""
    if isinstance(loop, BaseEventLoop):
        return functools.partial(_loop_runs_here, loop)  # in C: no frame per command
    tid = get_ident()
    return lambda: tid == get_ident() and loop.is_running()


class _State(AioStateBase):
    # loop, runs_here, pending and reading are AioStateBase's (C fields an
    # AsyncClient command reads without a lookup).
    __slots__ = ("waiters", "wwaiters", "writing", "rfd", "sfd", "idle_check")

    def __init__(self, loop):
        self.loop = loop
        self.runs_here = _runs_here(loop)
        self.pending = {}  # token -> future
        self.waiters = collections.deque()  # [future, wants Message]
        self.wwaiters = []  # futures waiting for room to send
        self.reading = self.writing = self.idle_check = False
        self.rfd = self.sfd = -1

    def busy(self):
        return bool(self.pending) or any(not w[0].done() for w in self.waiters) or \
            any(not f.done() for f in self.wwaiters)

    # -- reader / writer registration (our descriptors stay open while
    #    registered: _pin_fds)
    def start_reading(self, sock):
        fd = sock.recv_fd
        sock._pin_fds(1)
        try:
            self.loop.add_reader(fd, _on_readable, sock, self)
        except BaseException:
            sock._pin_fds(-1)
            raise
        self.rfd = fd
        self.reading = True

    def stop_reading(self, sock):
        if self.reading:
            self.reading = False
            try:
                self.loop.remove_reader(self.rfd)
            except Exception:  # the loop is closed
                pass
            sock._pin_fds(-1)

    def start_writing(self, sock):
        fd = sock.send_fd
        sock._pin_fds(1)
        try:
            self.loop.add_reader(fd, _on_writable, sock, self)  # readable = can send
        except BaseException:
            sock._pin_fds(-1)
            raise
        self.sfd = fd
        self.writing = True

    def stop_writing(self, sock):
        if self.writing:
            self.writing = False
            try:
                self.loop.remove_reader(self.sfd)
            except Exception:
                pass
            sock._pin_fds(-1)

    def maybe_idle(self, sock):
        if not self.idle_check and self.reading:
            self.idle_check = True
            self.loop.call_soon(_idle, sock, self)

    # -- waiting
    async def wait_message(self, sock, as_msg):
        if not self.reading:
            self.start_reading(sock)
        fut = self.loop.create_future()
        w = [fut, as_msg]
        self.waiters.append(w)
        try:
            return await fut
        except CancelledError:
            try:
                self.waiters.remove(w)
            except ValueError:
                pass
            if not self.pending and not self.waiters:
                self.maybe_idle(sock)
            raise

    def writable(self, sock):
        if not self.writing:
            self.start_writing(sock)
        fut = self.loop.create_future()
        self.wwaiters.append(fut)
        return fut

    # -- ending
    def fail(self, sock, exc):
        """Complete every waiter with exc (the socket is closed) and stop."""
        self.stop_reading(sock)
        self.stop_writing(sock)
        pending, self.pending = self.pending, {}
        waiters, self.waiters = self.waiters, collections.deque()
        ww, self.wwaiters = self.wwaiters, []
        if self.loop.is_closed():
            return
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
        for w in waiters:
            if not w[0].done():
                w[0].set_exception(exc)
        for fut in ww:
            if not fut.done():
                fut.set_exception(exc)

    def detach(self, sock, cancel_requests=False):
        """The socket is closing (or moving to another loop): remove our
        readers and fail whoever still waits, on the loop's own thread."""
        if cancel_requests:
            for token in list(self.pending):
                try:
                    sock.cancel(token)
                except Error:
                    pass
        loop = self.loop
        try:
            running = get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or loop.is_closed() or not loop.is_running():
            self.fail(sock, Closed())
        else:
            try:
                loop.call_soon_threadsafe(self.fail, sock, Closed())
            except RuntimeError:  # closed meanwhile
                self.fail(sock, Closed())
