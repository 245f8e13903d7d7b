# SPDX-License-Identifier: MIT
"""Version queries, the monotonic clock, allocator hooks and the cancellation token
(include/swarm/common.h)."""
from __future__ import annotations

import ctypes
import itertools
import logging
import threading
import weakref
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_int, c_int64, c_size_t, c_uint32,
                    c_void_p)
from typing import Optional

from . import errors
from ._handle import _Handle
from ._lib import cfunc, lib_path

__all__ = ["version", "version_string", "version_info", "now_ns", "Allocator", "CancelToken",
           "WAIT_FOREVER", "library_path"]

log = logging.getLogger("swarm")

#: Timeout value meaning "wait as long as it takes" (SWARM_WAIT_FOREVER), in ns.
WAIT_FOREVER = -1


def library_path() -> str:
    """The path the shared library was loaded from."""
    return lib_path


@cfunc("swarm_version", [], c_uint32, keep_gil=True)
def _swarm_version() -> int:
    """Packed 0xMMmmpp. Non-blocking."""


@cfunc("swarm_version_string", [], ctypes.c_char_p, keep_gil=True)
def _swarm_version_string() -> bytes:
    """"MAJOR.MINOR.PATCH", static. Non-blocking."""


@cfunc("swarm_now_ns", [], c_int64, keep_gil=True)
def _swarm_now_ns() -> int:
    """Monotonic ns. Non-blocking."""


@cfunc("swarm_deadline_after", [c_int64], c_int64)
def _swarm_deadline_after(timeout_ns) -> int:
    """Relative timeout -> absolute deadline (negative: SWARM_NO_DEADLINE, 0)."""


@cfunc("swarm_sleep_ns", [c_int64, c_void_p], c_int)
def _swarm_sleep_ns(ns, cancel) -> int:
    """Cancel-aware sleep (GIL released by ctypes)."""


def version() -> int:
    """The library's packed version 0xMMmmpp (``swarm_version``). Non-blocking, any thread."""
    return int(_swarm_version())


def version_string() -> str:
    """The library's version "MAJOR.MINOR.PATCH" (``swarm_version_string``). Non-blocking."""
    return _swarm_version_string().decode()


def version_info() -> tuple[int, int, int]:
    """(major, minor, patch) from :func:`version`."""
    v = version()
    return (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF


def now_ns() -> int:
    """Now on libswarm's monotonic clock, in ns (``swarm_now_ns``): the time base of every
    deadline. Non-blocking, any thread."""
    return int(_swarm_now_ns())


# ---------------------------------------------------------------------------------------------
# Allocator hooks
# ---------------------------------------------------------------------------------------------

ALLOC_FN = CFUNCTYPE(c_void_p, c_void_p, c_size_t, c_size_t)
FREE_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_size_t)


class swarm_allocator(Structure):
    _fields_ = [("ctx", c_void_p), ("alloc", ALLOC_FN), ("free", FREE_FN)]


_libc = ctypes.CDLL(None)
_posix_memalign = _libc.posix_memalign
_posix_memalign.argtypes = [POINTER(c_void_p), c_size_t, c_size_t]
_posix_memalign.restype = c_int
_free = _libc.free
_free.argtypes = [c_void_p]
_free.restype = None

_alloc_registry: "weakref.WeakValueDictionary[int, Allocator]" = weakref.WeakValueDictionary()
_alloc_keys = itertools.count(1)


def _alloc_tramp(ctx: Optional[int], size: int, align: int) -> Optional[int]:
    try:
        a = _alloc_registry.get(ctx or 0)
        if a is None:
            return Allocator._libc_alloc(size, align)
        return a._do_alloc(size, align)
    except BaseException:  # never propagate into C
        log.exception("swarm allocator hook raised")
        return None


def _free_tramp(ctx: Optional[int], ptr: Optional[int], size: int) -> None:
    try:
        a = _alloc_registry.get(ctx or 0)
        if a is None:
            if ptr:
                _free(ptr)
            return
        a._do_free(ptr, size)
    except BaseException:
        log.exception("swarm free hook raised")


# Module-level trampolines: they live as long as the module, so C can never call a freed thunk.
_ALLOC_TRAMP = ALLOC_FN(_alloc_tramp)
_FREE_TRAMP = FREE_FN(_free_tramp)


class Allocator:
    """Memory hooks for libswarm objects, backed by libc, with accounting and failure injection.

    Pass it as ``allocator=`` to any constructor. The C library calls :meth:`alloc` and
    :meth:`free` from the thread that creates (or resizes) the object, holding the GIL only for
    the hook itself. Objects created with an allocator keep it alive.

    Attributes: ``outstanding`` (bytes allocated and not yet freed), ``allocs``, ``frees``.
    ``fail_after(n)`` makes the allocation after the next ``n`` ones fail (return NULL) until
    ``fail_after(None)``: tests use it for the SWARM_ENOMEM paths.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outstanding = 0
        self.allocs = 0
        self.frees = 0
        self._fail_in: Optional[int] = None
        self._key = next(_alloc_keys)
        _alloc_registry[self._key] = self
        self._struct = swarm_allocator(self._key, _ALLOC_TRAMP, _FREE_TRAMP)

    @staticmethod
    def _libc_alloc(size: int, align: int) -> Optional[int]:
        p = c_void_p()
        if _posix_memalign(byref(p), max(align, ctypes.sizeof(c_void_p)), max(size, 1)) != 0:
            return None
        return p.value

    def fail_after(self, n: Optional[int]) -> None:
        """Let ``n`` more allocations succeed, then fail every one (None: never fail)."""
        with self._lock:
            self._fail_in = n

    def alloc(self, size: int, align: int) -> Optional[int]:
        """Return an address of ``size`` bytes aligned to ``align``, or None. Override to route
        memory elsewhere; must not raise (an exception counts as a failure)."""
        return self._libc_alloc(size, align)

    def free(self, ptr: int, size: int) -> None:
        """Release a block from :meth:`alloc`; ``size`` is the size asked for."""
        _free(ptr)

    def _do_alloc(self, size: int, align: int) -> Optional[int]:
        with self._lock:
            if self._fail_in is not None:
                if self._fail_in <= 0:
                    return None
                self._fail_in -= 1
        p = self.alloc(size, align)
        if p:
            with self._lock:
                self.outstanding += size
                self.allocs += 1
        return p

    def _do_free(self, ptr: Optional[int], size: int) -> None:
        if not ptr:
            return
        self.free(ptr, size)
        with self._lock:
            self.outstanding -= size
            self.frees += 1

    def _as_param(self) -> "ctypes._Pointer[swarm_allocator]":
        return ctypes.pointer(self._struct)


def alloc_arg(allocator: Optional[Allocator]):
    """The value to pass for a ``const swarm_allocator *`` (NULL for None)."""
    if allocator is None:
        return None
    if not isinstance(allocator, Allocator):
        raise TypeError(f"allocator must be a swarm.Allocator, not {type(allocator).__name__}")
    return allocator._as_param()


# ---------------------------------------------------------------------------------------------
# Cancellation token
# ---------------------------------------------------------------------------------------------


@cfunc("swarm_cancel_create", [POINTER(c_void_p), POINTER(swarm_allocator)], c_int)
def _swarm_cancel_create(out, alloc) -> int:
    """Create an unfired token. Non-blocking."""


@cfunc("swarm_cancel_trigger", [c_void_p], c_int)
def _swarm_cancel_trigger(c) -> int:
    """Fire; wakes watchers. Briefly takes the token's lock."""


@cfunc("swarm_cancel_is_canceled", [c_void_p], c_int, keep_gil=True)
def _swarm_cancel_is_canceled(c) -> int:
    """1 if fired. Lock-free."""


@cfunc("swarm_cancel_reset", [c_void_p], c_int)
def _swarm_cancel_reset(c) -> int:
    """Re-arm; ESTATE while watched."""


@cfunc("swarm_cancel_destroy", [c_void_p], None)
def _swarm_cancel_destroy(c) -> None:
    """Destroy; nobody may watch it."""


def _destroy_cancel(ptr: int, *_keep) -> None:
    _swarm_cancel_destroy(ptr)


class CancelToken(_Handle):
    """A cancellation token (``swarm_cancel``): :meth:`cancel` wakes every blocked libswarm call
    that watches it (those raise :class:`~swarm.Canceled`).

    Thread safety: every method may be called from any thread. Blocking: none of them blocks;
    :meth:`close` waits only for calls that are using the token right now (a channel call that
    watches it holds it until that call returns).
    """

    _kind = "cancel token"

    def __init__(self, *, allocator: Optional[Allocator] = None) -> None:
        out = c_void_p()
        errors.check(_swarm_cancel_create(byref(out), alloc_arg(allocator)), "swarm_cancel_create")
        super().__init__(out.value, _destroy_cancel, allocator)

    def cancel(self) -> None:
        """Fire the token (``swarm_cancel_trigger``). Idempotent. Non-blocking."""
        p = self._enter()
        try:
            errors.check(_swarm_cancel_trigger(p))
        finally:
            self._leave()

    trigger = cancel

    @property
    def canceled(self) -> bool:
        """Whether the token has fired (``swarm_cancel_is_canceled``). Non-blocking."""
        p = self._enter()
        try:
            return bool(_swarm_cancel_is_canceled(p))
        finally:
            self._leave()

    def is_canceled(self) -> bool:
        """Same as :attr:`canceled`."""
        return self.canceled

    def reset(self) -> None:
        """Re-arm a fired token (``swarm_cancel_reset``). Raises WrongState while a blocked call
        watches it."""
        p = self._enter()
        try:
            errors.check(_swarm_cancel_reset(p))
        finally:
            self._leave()

    def _wake(self, ptr: int) -> None:
        # Calls still watching the token must return before it can be freed: fire it.
        _swarm_cancel_trigger(ptr)

    def close(self) -> None:
        """Destroy the token (``swarm_cancel_destroy``). Calls still watching it are woken first
        by firing it (they raise Canceled); then it is freed. Idempotent. Blocking: until those
        calls have returned."""
        self._release()
