# SPDX-License-Identifier: MIT
"""Python thread states for the library's own threads (pool workers, reconcile loops).

A ctypes callback on a thread Python did not create gets a brand-new PyThreadState for every
call, deleted on return (with its frame stack: an mmap/munmap pair and more), which measured
330 us per callback on the test machine against 1.4 us with a kept state. So at import the
binding installs the C library's thread hooks (``swarm_thread_hooks_set``): on each library
thread, ``start`` takes one extra ``PyGILState_Ensure`` before the thread's first callback, which
keeps that thread's state between callbacks (the GIL itself is released between them as usual),
and ``stop`` releases it on the same thread just before the thread exits, so CPython deletes
the state itself. Nothing deletes a thread state from another thread.

The one rule this adds: an exiting library thread needs the GIL for its stop hook, and calls
that retire threads (pool resize/stop/destroy, loop stop) join them while holding the object's
locks. So no call through PyDLL (GIL held) may wait for a pool's or loop's lock: pool stats and
target go through CDLL (test_threads.test_stats_while_resizing_never_deadlocks).

Hooks a C host installed before the import are kept and chained (theirs run first on start and
last on stop). At interpreter exit, after every pool and loop has been stopped, the previous
hooks are put back. ``LIBSWARM_PIN_THREADS=0`` in the environment turns the pinning off
(callbacks then take the slow per-call path).
"""
from __future__ import annotations

import atexit
import ctypes
import os
import threading
from ctypes import CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_uint32, c_void_p
from typing import Any, Optional

from ._lib import cfunc

__all__ = ["THREAD_HOOK_FN", "swarm_thread_hooks", "pinned_threads"]

#: void (*)(void *user, const char *role)
THREAD_HOOK_FN = CFUNCTYPE(None, c_void_p, c_char_p)


class swarm_thread_hooks(Structure):
    _fields_ = [("size", c_uint32), ("start", THREAD_HOOK_FN), ("stop", THREAD_HOOK_FN),
                ("user", c_void_p)]


@cfunc("swarm_thread_hooks_init", [POINTER(swarm_thread_hooks)], c_int, keep_gil=True)
def _swarm_thread_hooks_init(hooks) -> int:
    """Zero and set size. Non-blocking."""


@cfunc("swarm_thread_hooks_set", [POINTER(swarm_thread_hooks)], c_int)
def _swarm_thread_hooks_set(hooks) -> int:
    """Install process-wide thread hooks (NULL removes). Non-blocking."""


@cfunc("swarm_thread_hooks_get", [POINTER(swarm_thread_hooks)], c_int)
def _swarm_thread_hooks_get(out) -> int:
    """Copy the installed hooks. Non-blocking."""


_local = threading.local()
_count_lock = threading.Lock()
_pinned = 0          # library threads holding a kept state right now
_prev: Optional[swarm_thread_hooks] = None
_ours: Optional[swarm_thread_hooks] = None

try:
    _gs_ensure = ctypes.pythonapi.PyGILState_Ensure
    _gs_ensure.argtypes = []
    _gs_ensure.restype = c_int
    _gs_release = ctypes.pythonapi.PyGILState_Release
    _gs_release.argtypes = [c_int]
    _gs_release.restype = None
    _enabled = os.environ.get("LIBSWARM_PIN_THREADS", "1") != "0"
except AttributeError:  # pragma: no cover - not CPython: no pythonapi
    _enabled = False


def pinned_threads() -> int:
    """How many library threads keep a Python thread state right now (tests, diagnostics)."""
    return _pinned


def _on_start(_user: Any, role: bytes) -> None:
    global _pinned
    prev = _prev
    if prev is not None and prev.start:
        prev.start(prev.user, role)
    # Inside a ctypes callback the GIL is held through PyGILState_Ensure; one more Ensure
    # raises this thread's count to 2, so the callback's own Release leaves the state alive.
    _local.gil_state = _gs_ensure()
    with _count_lock:
        _pinned += 1


def _on_stop(_user: Any, role: bytes) -> None:
    global _pinned
    st = _local.__dict__.pop("gil_state", None)
    if st is not None:
        with _count_lock:
            _pinned -= 1
        # Back to 1: the callback's own Release then deletes the state, on this thread.
        _gs_release(st)
    prev = _prev
    if prev is not None and prev.stop:
        prev.stop(prev.user, role)


_start_cb = THREAD_HOOK_FN(_on_start)
_stop_cb = THREAD_HOOK_FN(_on_stop)


def _install() -> None:
    global _prev, _ours
    if not _enabled or not hasattr(_swarm_thread_hooks_set, "argtypes"):
        return           # pinning off, or an older library without thread hooks
    prev = swarm_thread_hooks(size=ctypes.sizeof(swarm_thread_hooks))
    if _swarm_thread_hooks_get(ctypes.byref(prev)) != 0:
        return
    _prev = prev if (prev.start or prev.stop) else None
    _ours = swarm_thread_hooks(size=ctypes.sizeof(swarm_thread_hooks), start=_start_cb,
                               stop=_stop_cb, user=None)
    if _swarm_thread_hooks_set(ctypes.byref(_ours)) == 0:
        atexit.register(_uninstall)


def _uninstall() -> None:
    """Put the previous hooks back (interpreter exit: registered before the handles' shutdown,
    so atexit's LIFO order runs it after every pool and loop has stopped). Threads started under
    our hooks keep them until they exit."""
    if _ours is not None:
        _swarm_thread_hooks_set(ctypes.byref(_prev) if _prev is not None else None)


def _after_fork_in_child() -> None:
    global _pinned
    _pinned = 0          # the child has none of the parent's library threads


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
_install()
