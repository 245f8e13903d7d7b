# SPDX-License-Identifier: MIT
"""The base class of every Python object that owns a C handle.

A handle counts the foreign calls in flight on it. ``close()`` (``destroy()`` for channels,
whose ``close()`` is the C close) first wakes whatever blocks on the object (subclass hook
:meth:`_Handle._wake`), then waits until no call is in flight, and only then calls the C destroy
function, so a Python thread can never pass a dangling pointer to C. After that every method
raises :class:`~swarm.errors.HandleClosed`.

A ``weakref.finalize`` destroys a handle that is garbage-collected (or still alive at interpreter
exit) without an explicit close. Finalizers cannot race in-flight calls: a call holds a
reference to its object.
"""
from __future__ import annotations

import atexit
import itertools
import math
import os
import threading
import time
import weakref
from typing import Any, Callable, Optional

from .errors import HandleClosed

__all__ = ["_Handle", "to_ns", "shutdown"]

# Every live handle, so that interpreter exit can release them in a safe order (newest first:
# pools and loops before the engines, channels and policies they use), *before* weakref's own
# atexit finalizers run. Releasing waits for calls in flight and wakes blocked ones, so C worker
# threads never call into a finalizing interpreter and no C object is freed under a caller.
_live: "weakref.WeakValueDictionary[int, _Handle]" = weakref.WeakValueDictionary()
_seq = itertools.count(1)
_exit_registered = False
_exit_lock = threading.Lock()


def shutdown() -> None:
    """Release every live libswarm handle, newest first: stops pools and reconcile loops (joining
    their C threads), closes channels (waking blocked threads), then frees everything.
    Registered with atexit on first use; safe to call more than once. Blocking: until C worker
    threads have left."""
    while True:
        # Loops first (they call into pools and policies), then pools (their workers call
        # engines), then everything else, newest first within each rank.
        items = sorted(_live.items(), key=lambda kv: (kv[1]._shutdown_rank, -kv[0]))
        if not items:
            return
        for _k, h in items:
            try:
                h._release()
            except Exception:  # pragma: no cover - exit path must go on
                pass
            _live.pop(_k, None)


def _register_exit() -> None:
    global _exit_registered
    with _exit_lock:
        if not _exit_registered:
            # Registered after weakref.finalize's own atexit hook (created by the first handle's
            # finalizer just before this), so atexit's LIFO order runs it first.
            atexit.register(shutdown)
            _exit_registered = True


#: The longest finite timeout the C API can express (int64 nanoseconds), in seconds.
TIMEOUT_MAX = (2**63 - 1) / 1e9


def to_ns(timeout: Optional[float], name: str = "timeout") -> int:
    """Seconds (None or math.inf = forever, 0 = never wait) to the C convention (-1 / 0 / ns).
    Out-of-range values raise InvalidArgument naming ``name`` and the bounds; nothing is
    silently truncated."""
    if timeout is None:
        return -1
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not "
                        f"{type(timeout).__name__}")
    if timeout == math.inf:
        return -1
    if not timeout >= 0:      # negative or NaN
        from .errors import InvalidArgument
        raise InvalidArgument(f"{name} must be >= 0 seconds (or None: no limit), got "
                              f"{timeout!r}")
    if timeout > TIMEOUT_MAX:
        from .errors import InvalidArgument
        raise InvalidArgument(f"{name} must be <= {TIMEOUT_MAX:.4g} seconds (or None: no "
                              f"limit), got {timeout!r}")
    return int(timeout * 1e9)


def on_library_thread() -> bool:
    """Whether the calling thread was created by libswarm (a pool worker, a reconcile loop)
    rather than by Python. Joining library threads from one of them could wait for itself."""
    t = threading._active.get(threading.get_ident())  # type: ignore[attr-defined]
    return t is None or isinstance(t, threading._DummyThread)  # type: ignore[attr-defined]


# -- Ctrl-C during blocking calls -----------------------------------------------------------
# Python runs signal handlers only on the main thread, between bytecodes; a thread blocked in C
# never sees them. So on the main thread a blocking call waits in slices of at most SLICE_NS
# with the GIL released; while it waits, SIGINT's default handler is swapped for one that only
# records the signal, so it cannot fire between "C took the item" and "Python holds it". After
# the loop the caller keeps whatever C completed (a received element goes to the object's
# stash and is returned by the next receive) and raises KeyboardInterrupt itself. Other
# threads block in one call (signals never reach them).

SLICE_NS = 50_000_000
_ETIMEDOUT = -4
_EAGAIN = -3
_main_ident = threading.main_thread().ident


class Interrupted(BaseException):
    """Internal: a sliced wait saw SIGINT; ``rc`` is what the last C call returned."""

    def __init__(self, rc: int) -> None:
        super().__init__(rc)
        self.rc = rc


def _record_sigint(signum: int, frame: Any) -> None:
    _sig_state[0] = True


_sig_state = [False]


def on_main_thread() -> bool:
    return threading.get_ident() == _main_ident


def sliced(call: Callable[[int], int], tns: int) -> int:
    """Run ``call(timeout_ns) -> rc`` so that Ctrl-C interrupts it within ~SLICE_NS on the main
    thread (see above); ``tns`` -1 forever. Raises :class:`Interrupted` carrying the last rc
    when SIGINT arrived; the caller decides what to keep. Other threads: one plain call."""
    if tns == 0 or threading.get_ident() != _main_ident:
        return call(tns)
    import signal
    swapped = False
    try:
        swapped = signal.getsignal(signal.SIGINT) is signal.default_int_handler
        if swapped:
            _sig_state[0] = False
            signal.signal(signal.SIGINT, _record_sigint)
    except (ValueError, TypeError):  # pragma: no cover - not the main interpreter
        swapped = False
    deadline = None if tns < 0 else time.monotonic_ns() + tns
    rc = _ETIMEDOUT
    try:
        while True:
            if deadline is None:
                sl = SLICE_NS
            else:
                left = deadline - time.monotonic_ns()
                if left <= 0:
                    rc = _ETIMEDOUT
                    break
                sl = min(SLICE_NS, left)
            rc = call(sl)
            if swapped and _sig_state[0]:
                break
            if rc != _ETIMEDOUT or (deadline is not None and sl < SLICE_NS):
                break
    finally:
        if swapped:
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            except KeyboardInterrupt:
                # A SIGINT that arrived during the restore ran the default handler at the end
                # of this call: report it like one during the wait (Interrupted with the rc),
                # so that the caller still learns what the last C call did.
                _sig_state[0] = True
    if swapped and _sig_state[0]:
        _sig_state[0] = False
        raise Interrupted(rc)
    return rc


def _after_fork_in_child() -> None:
    """os.register_at_fork hook: in the child every inherited handle is dead. Its C object was
    copied, but not the threads that serve it (pool workers, reconcile loops) nor the state of
    locks other threads held, so touching it could hang or corrupt. Each handle raises
    HandleClosed naming fork; its finalizer is detached (no C destroy, nothing to join), so the
    child's exit never waits for threads that do not exist."""
    for h in list(_live.values()):
        h._forked = True
        h._closing = True
        h._ptr = None
        h._inflight = []
        h._lock = threading.Lock()
        h._finalizer.detach()
    _live.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Handle:
    """Owns one C pointer; see the module docstring. Not meant to be instantiated directly."""

    _kind = "handle"
    _shutdown_rank = 2
    _forked = False

    def __init__(self, ptr: int, destroy: Callable[..., Any], *keepalive: Any) -> None:
        self._ptr: Optional[int] = ptr
        self._lock = threading.Lock()      # serializes _release callers only
        # Calls in flight: one entry per call. list.append/pop are atomic under the GIL, so the
        # hot path takes no lock. Ordering (sequentially consistent under the GIL): a caller
        # appends, then reads _closing; _release sets _closing, then waits for the list to
        # empty; so either the caller sees _closing and backs out, or _release sees its entry.
        self._inflight: list = []
        self._closing = False
        # The finalizer holds what C may still call back into (trampolines, tables) until the
        # C object is gone.
        self._finalizer = weakref.finalize(self, destroy, ptr, *keepalive)
        _live[next(_seq)] = self
        if not _exit_registered:
            _register_exit()

    # -- in-flight accounting ------------------------------------------------------------------
    def _enter(self) -> int:
        inflight = self._inflight
        inflight.append(None)
        p = self._ptr
        if p is None or self._closing:
            inflight.pop()
            raise self._closed_error()
        return p

    def _closed_error(self) -> HandleClosed:
        if self._forked:
            return HandleClosed(f"this {self._kind} was inherited across fork(): libswarm "
                                f"objects and their threads do not survive fork; create new "
                                f"ones in the child process")
        return HandleClosed(f"{self._kind} is closed")

    def _leave(self) -> None:
        self._inflight.pop()

    def _ptr_or_raise(self) -> int:
        """The pointer, or HandleClosed; for checks that do not call C."""
        p = self._ptr
        if p is None or self._closing:
            raise self._closed_error()
        return p

    def _wake(self, ptr: int) -> None:
        """Hook: make blocked calls on ``ptr`` return (e.g. swarm_chan_close)."""

    def _release(self) -> bool:
        """Wake, wait for in-flight calls, then run the finalizer. Idempotent; returns whether
        this call did the work. Blocking: until every in-flight call on the handle returned
        (blocked ones are woken again every 50 ms)."""
        with self._lock:   # a second caller waits here until the first has finished
            if self._ptr is None:
                return False
            self._closing = True
            ptr = self._ptr
            self._wake(ptr)
            waited = 0.0
            while self._inflight:
                time.sleep(0.0005 if waited < 0.01 else 0.005)
                waited += 0.0005 if waited < 0.01 else 0.005
                if waited >= 0.05:
                    self._wake(ptr)
                    waited = 0.01
            self._finalizer()  # runs the C destroy exactly once
            self._ptr = None
        return True

    @property
    def _alive(self) -> bool:
        return self._ptr is not None and not self._closing

    def __enter__(self):
        self._ptr_or_raise()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._release()

    def __repr__(self) -> str:
        state = "open" if self._alive else "closed"
        return f"<swarm.{type(self).__name__} {state}>"
