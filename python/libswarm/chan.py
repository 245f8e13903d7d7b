# SPDX-License-Identifier: MIT
"""Channels (include/swarm/chan.h): a bounded MPMC queue with backpressure.

Two Python faces over one C channel type:

* :class:`Channel` carries bytes. Elements have the fixed size given at creation and are copied
  in and out. With ``framed=True`` each element carries a 4-byte length, so messages of any
  length up to ``elem_size - 4`` travel intact.
* :class:`ObjectChannel` carries arbitrary Python objects. The object stays in a per-channel
  handle table (``dict[int, object]``) and only its integer handle (an 8-byte element) goes
  through C; receiving (or dropping, or destroying the channel) removes it from the table, so
  nothing leaks and no PyObject pointer ever crosses into C.

Blocking and threading: every call first tries without waiting, with the GIL held (cheap: no
GIL hand-off); only a call that must wait (``send`` on a full channel, ``recv`` on an empty one,
the timed and batch variants) then waits in C with the GIL released, so other Python threads
keep running while one waits. Any number of threads may send and receive concurrently.
Timeouts are in seconds: ``None`` waits forever, ``0`` never waits.

Ctrl-C (main thread): a blocking call raises KeyboardInterrupt within ~50 ms. Whatever C did
before is kept: a message taken goes to a per-channel stash and is returned by the next
receive; a send's KeyboardInterrupt carries ``.sent`` (1/0, or the count for ``send_batch``)
once anything may have been sent. Python's own window remains: a KeyboardInterrupt raised in
the caller's frame just after a receive returned loses that value, as with queue.Queue.

``close()`` is the C close (idempotent): later sends raise :class:`~swarm.Closed`, receivers
drain what is queued and then get :class:`~swarm.Closed`, iteration ends, and every blocked
thread wakes. ``destroy()`` (also the context-manager exit and the finalizer) closes, waits for
calls in flight to return, then frees the channel; after it every method raises
:class:`~swarm.HandleClosed`.
"""
from __future__ import annotations

import asyncio
import collections
import ctypes
import enum
import functools
import itertools
import logging
import operator
import struct
import time
import weakref
from array import array
from ctypes import (CFUNCTYPE, POINTER, Structure, addressof, byref, c_char, c_int, c_int64,
                    c_size_t, c_uint32, c_uint64, c_void_p)
from typing import (Any, AsyncIterator, Callable, Deque, Dict, Generic, Iterable, Iterator, List,
                    Optional, TypeVar)

from . import errors
from ._handle import SLICE_NS, Interrupted, _Handle, on_main_thread, sliced, to_ns
from ._lib import cfunc, pylib
from .common import Allocator, CancelToken, alloc_arg, swarm_allocator

__all__ = ["Channel", "ObjectChannel", "FullMode", "DropReason", "swarm_chan_opts",
           "swarm_chan_stats"]

log = logging.getLogger("swarm")


class FullMode(enum.IntEnum):
    """What a send does when the channel is full (``swarm_full_mode``)."""
    WAIT = 0
    DROP_OLDEST = 1
    DROP_NEWEST = 2
    DROP_WRITE = 3


class DropReason(enum.IntEnum):
    """Why an element was dropped (``swarm_drop_reason``)."""
    EVICTED_OLDEST = 1
    EVICTED_NEWEST = 2
    WRITE = 3
    DESTROY = 4


DROP_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_int)


class swarm_chan_opts(Structure):
    """Mirror of ``swarm_chan_opts`` (field order and types exactly as in chan.h)."""
    _fields_ = [
        ("size", c_uint32),
        ("full_mode", c_uint32),
        ("capacity", c_uint64),
        ("elem_size", c_uint64),
        ("drop_fn", DROP_FN),
        ("drop_ctx", c_void_p),
        ("alloc", POINTER(swarm_allocator)),
        ("spin", c_uint32),
        ("reserved_", c_uint32),
    ]


class swarm_chan_stats(Structure):
    """Mirror of ``swarm_chan_stats``."""
    _fields_ = [
        ("size", c_uint32),
        ("blocked_senders", c_uint32),
        ("blocked_receivers", c_uint32),
        ("closed", c_uint32),
        ("capacity", c_uint64),
        ("elem_size", c_uint64),
        ("length", c_uint64),
        ("sent", c_uint64),
        ("received", c_uint64),
        ("dropped", c_uint64),
        ("high_watermark", c_uint64),
        ("send_blocked_ns", c_int64),
        ("recv_blocked_ns", c_int64),
    ]


# ---- C declarations -------------------------------------------------------------------------

@cfunc("swarm_chan_opts_init", [POINTER(swarm_chan_opts)], c_int, keep_gil=True)
def _swarm_chan_opts_init(opts) -> int:
    """Fill defaults and size. Non-blocking."""


@cfunc("swarm_chan_create", [POINTER(c_void_p), POINTER(swarm_chan_opts)], c_int)
def _swarm_chan_create(out, opts) -> int:
    """Create; EINVAL / ENOMEM. Non-blocking."""


@cfunc("swarm_chan_destroy", [c_void_p], None)
def _swarm_chan_destroy(ch) -> None:
    """Free; queued elements go to the drop callback (DESTROY)."""


@cfunc("swarm_chan_close", [c_void_p], c_int)
def _swarm_chan_close(ch) -> int:
    """Idempotent close; wakes every waiter. Non-blocking."""


@cfunc("swarm_chan_send", [c_void_p, c_void_p], c_int)
def _swarm_chan_send(ch, elem) -> int:
    """Blocking send (GIL released)."""


@cfunc("swarm_chan_try_send", [c_void_p, c_void_p], c_int)
def _swarm_chan_try_send(ch, elem) -> int:
    """Non-blocking send; EAGAIN when full."""


@cfunc("swarm_chan_send_timeout", [c_void_p, c_void_p, c_int64], c_int)
def _swarm_chan_send_timeout(ch, elem, timeout_ns) -> int:
    """Timed send; ETIMEDOUT."""


@cfunc("swarm_chan_send_ex", [c_void_p, c_void_p, c_int64, c_void_p], c_int)
def _swarm_chan_send_ex(ch, elem, timeout_ns, cancel) -> int:
    """Timed, cancelable send; ECANCELED."""


@cfunc("swarm_chan_recv", [c_void_p, c_void_p], c_int)
def _swarm_chan_recv(ch, out) -> int:
    """Blocking receive (GIL released)."""


@cfunc("swarm_chan_try_recv", [c_void_p, c_void_p], c_int)
def _swarm_chan_try_recv(ch, out) -> int:
    """Non-blocking receive; EAGAIN when empty."""


@cfunc("swarm_chan_try_send", [c_void_p, c_void_p], c_int, keep_gil=True)
def _swarm_chan_try_send_fast(ch, elem) -> int:
    """swarm_chan_try_send through PyDLL: never blocks, so the GIL stays held (fast path)."""


@cfunc("swarm_chan_try_recv", [c_void_p, c_void_p], c_int, keep_gil=True)
def _swarm_chan_try_recv_fast(ch, out) -> int:
    """swarm_chan_try_recv through PyDLL: never blocks, so the GIL stays held (fast path)."""


@cfunc("swarm_chan_try_recv", [c_void_p, POINTER(c_uint64)], c_int, keep_gil=True)
def _swarm_chan_try_recv_u64(ch, out) -> int:
    """The fast path of ObjectChannel: a c_uint64 passes straight in (no byref object)."""


@cfunc("swarm_chan_recv_timeout", [c_void_p, c_void_p, c_int64], c_int)
def _swarm_chan_recv_timeout(ch, out, timeout_ns) -> int:
    """Timed receive; ETIMEDOUT."""


@cfunc("swarm_chan_recv_ex", [c_void_p, c_void_p, c_int64, c_void_p], c_int)
def _swarm_chan_recv_ex(ch, out, timeout_ns, cancel) -> int:
    """Timed, cancelable receive."""


@cfunc("swarm_chan_send_batch", [c_void_p, c_void_p, c_size_t, c_int64, c_void_p], c_int)
def _swarm_chan_send_batch(ch, elems, n, timeout_ns, cancel) -> int:
    """Send up to n; returns the count or a code."""


@cfunc("swarm_chan_recv_batch",
       [c_void_p, c_void_p, c_size_t, c_size_t, c_int64, c_int64, c_void_p], c_int)
def _swarm_chan_recv_batch(ch, out, max_, min_, linger_ns, timeout_ns, cancel) -> int:
    """Dynamic-batching receive; returns the count or a code."""


@cfunc("swarm_chan_send_batch", [c_void_p, c_void_p, c_size_t, c_int64, c_void_p], c_int,
       keep_gil=True)
def _swarm_chan_send_batch_nb(ch, elems, n, timeout_ns, cancel) -> int:
    """swarm_chan_send_batch through PyDLL: only ever called with timeout 0 (never blocks)."""


@cfunc("swarm_chan_recv_batch",
       [c_void_p, c_void_p, c_size_t, c_size_t, c_int64, c_int64, c_void_p], c_int, keep_gil=True)
def _swarm_chan_recv_batch_nb(ch, out, max_, min_, linger_ns, timeout_ns, cancel) -> int:
    """swarm_chan_recv_batch through PyDLL: only ever called with timeout 0 (never blocks)."""


@cfunc("swarm_chan_get_stats", [c_void_p, POINTER(swarm_chan_stats)], c_int, keep_gil=True)
def _swarm_chan_get_stats(ch, stats) -> int:
    """Snapshot of counters. Lock-free."""


@cfunc("swarm_chan_len", [c_void_p], c_uint64, keep_gil=True)
def _swarm_chan_len(ch) -> int:
    """Queued now."""


@cfunc("swarm_chan_capacity", [c_void_p], c_uint64, keep_gil=True)
def _swarm_chan_capacity(ch) -> int:
    """Capacity in elements."""


@cfunc("swarm_chan_elem_size", [c_void_p], c_uint64, keep_gil=True)
def _swarm_chan_elem_size(ch) -> int:
    """Element size in bytes."""


@cfunc("swarm_chan_is_closed", [c_void_p], c_int, keep_gil=True)
def _swarm_chan_is_closed(ch) -> int:
    """1 once closed."""


# ---- the fast paths -------------------------------------------------------------------------
# Every data call first tries the non-blocking C function with the GIL held (PyDLL): when it
# succeeds, nothing else runs (no GIL hand-off, no in-flight count, no SIGINT handler swap, no
# clock). Only a call that must wait falls into the blocking machinery (_raw_*: in-flight count,
# GIL released, on the main thread sliced waits with the SIGINT handler swapped).
#
# Memory safety without the in-flight count: the fast calls take the channel pointer from a
# per-channel c_void_p cell, which destroy() sets to NULL before it frees anything. A PyDLL
# call converts its arguments and runs without releasing the GIL, so it either reads the cell
# before the NULL store (and the free, which comes later, cannot overlap it) or reads NULL, and
# C answers SWARM_EINVAL, which the caller turns into HandleClosed.
#
# Untyped twins: with argtypes None, ctypes passes a c_void_p cell, a bytes object or a ctypes
# array without calling from_param (about half the cost of a typed call). They are only ever
# called with (cell, bytes) or (cell, ctypes array).

def _untyped(name: str) -> Any:
    f = pylib[name]          # a fresh function object: its argtypes are its own
    f.argtypes = None
    f.restype = c_int
    return f


_TRY_SEND = _untyped("swarm_chan_try_send")
_TRY_RECV = _untyped("swarm_chan_try_recv")


def _subscript_call(fn: Callable[..., Any], *bound: Any) -> Any:
    """An object ``op`` such that ``op[x]`` is ``fn(*bound, x)``.

    Why a subscript: CPython runs pending signal handlers (Ctrl-C's KeyboardInterrupt) after
    every CALL instruction, so in ``rc = fn(x)`` a SIGINT that arrives while C runs raises
    after C has moved the element but before ``rc`` is stored, and the caller cannot tell
    whether it moved. BINARY_SUBSCR does not run them: ``rc = op[x]`` always stores the return
    code, and the KeyboardInterrupt fires at the next call, where the caller's handler knows
    what C did. (A staticmethod, so that nothing binds ``op`` as an argument; on another
    interpreter the worst case is the plain-call behaviour.)"""
    cls = type("_SubscriptCall", (), {"__slots__": (),
                                      "__getitem__": staticmethod(functools.partial(fn, *bound))})
    return cls()


#: ``_INVOKE[f]`` is ``f()``, with the return value always stored (see _subscript_call).
_INVOKE = _subscript_call(getattr(operator, "call", None) or (lambda f: f()))
_U1 = c_uint64 * 1
_Q0 = array("Q", [0])
_islice = itertools.islice
_starmap = itertools.starmap
_repeat = itertools.repeat
_partial = functools.partial
_UNKNOWN = -1000     # an rc no C call returns: "the call's outcome is not known"


def _consume(it: Iterable[Any]) -> None:
    collections.deque(it, maxlen=0)


# ---- drop callbacks: one module-level trampoline, user data is an integer key ----------------

_drop_handlers: Dict[int, Callable[[int, int], None]] = {}
_drop_keys = itertools.count(1)


def _drop_tramp(ctx: Optional[int], elem: Optional[int], reason: int) -> None:
    try:
        h = _drop_handlers.get(ctx or 0)
        if h is not None and elem:
            h(elem, reason)
    except BaseException:  # never propagate into C
        log.exception("swarm channel drop callback raised")


_DROP_TRAMP = DROP_FN(_drop_tramp)


def _destroy_chan(ptr: int, key: int, *_keep: Any) -> None:
    _swarm_chan_destroy(ptr)  # runs the drop handler for queued elements (DESTROY)
    _drop_handlers.pop(key, None)


def stats_dict(s: Structure) -> Dict[str, Any]:
    """A ctypes stats struct as a dict (without the ``size`` field)."""
    return {name: getattr(s, name) for name, _t in s._fields_
            if name != "size" and not name.endswith("_")}


_LEN = struct.Struct("<I")
_EAGAIN = errors.WouldBlock.code
_EINVAL = errors.InvalidArgument.code
_ETIMEDOUT_ = errors.TimedOut.code
_MISSING = object()


def _interrupt(sent: Optional[int] = None) -> KeyboardInterrupt:
    ki = KeyboardInterrupt()
    if sent is not None:
        ki.sent = sent  # type: ignore[attr-defined]
    return ki


async def _aiter(ch: Any) -> AsyncIterator[Any]:
    """``async for item in channel``: until closed and drained."""
    while True:
        try:
            item = await ch.recv_async()
        except errors.Closed:
            return
        yield item


class _Table(dict):
    """The ObjectChannel handle table (a dict that can be weakly referenced)."""
    __slots__ = ("__weakref__",)


def _check_cancel(cancel: Any) -> None:
    if not isinstance(cancel, CancelToken):
        raise TypeError(f"cancel must be a swarm.CancelToken, not {type(cancel).__name__}")
    cancel._ptr_or_raise()


#: The C calls behind _ChanBase._raw_move, per direction.
_SEND_OPS = (_swarm_chan_try_send_fast, _swarm_chan_send, _swarm_chan_send_timeout,
             _swarm_chan_send_ex)
_RECV_OPS = (_swarm_chan_try_recv_fast, _swarm_chan_recv, _swarm_chan_recv_timeout,
             _swarm_chan_recv_ex)


class _ChanBase(_Handle):
    _kind = "channel"

    def __init__(self, *, capacity: int, elem_size: int, full_mode: int, spin: int,
                 allocator: Optional[Allocator],
                 drop_handler: Optional[Callable[[int, int], None]]) -> None:
        for nm, v, lo, hi in (("capacity", capacity, 1, 2**40), ("elem_size", elem_size, 1,
                                                                   1 << 20),
                              ("spin", spin, 0, 2**32 - 1)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{nm} must be an int, not {type(v).__name__}")
            if not lo <= v <= hi:
                raise errors.InvalidArgument(f"{nm} must be in [{lo}, {hi}], got {v}")
        if full_mode not in FullMode._value2member_map_ or isinstance(full_mode, bool):
            raise errors.InvalidArgument(
                f"full_mode must be a FullMode ({', '.join(m.name for m in FullMode)}), got "
                f"{full_mode!r}")
        opts = swarm_chan_opts()
        errors.check(_swarm_chan_opts_init(byref(opts)))
        opts.size = ctypes.sizeof(swarm_chan_opts)
        opts.full_mode = int(full_mode)
        opts.capacity = capacity
        opts.elem_size = elem_size
        opts.spin = spin
        opts.alloc = alloc_arg(allocator)
        key = 0
        if drop_handler is not None:
            key = next(_drop_keys)
            _drop_handlers[key] = drop_handler
            opts.drop_fn = _DROP_TRAMP
            opts.drop_ctx = key
        out = c_void_p()
        rc = _swarm_chan_create(byref(out), byref(opts))
        if rc < 0:
            _drop_handlers.pop(key, None)
            errors.raise_for(rc, "swarm_chan_create: capacity x slot size must be <= 2**40 "
                             f"bytes (capacity={capacity}, elem_size={elem_size})"
                             if rc == errors.InvalidArgument.code else "swarm_chan_create")
        super().__init__(out.value, _destroy_chan, key, allocator, drop_handler)
        self._esize = elem_size
        # The most elements one recv_batch call takes (see _batch_args): its buffer is
        # allocated per call, so max_items=2**31-1 must not allocate 2**31 elements.
        self._batch_cap = max(capacity, 1 << 16)
        # The fast paths' pointer (see "the fast paths" above); NULL from destroy() on.
        cell = c_void_p(out.value)
        self._cell = cell
        self._sendop = _subscript_call(_TRY_SEND, cell)
        self._recvop = _subscript_call(_TRY_RECV, cell)
        # Elements C handed over while Ctrl-C interrupted the receive (or whose asyncio
        # receiver was cancelled): returned first by the next receive, so none is lost.
        self._stash: Deque[Any] = collections.deque()

    def _unstash(self, max_items: int) -> List[Any]:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise errors.InvalidArgument(f"max_items must be in [1, 2**31-1], got {max_items!r}")
        st = self._stash
        # Taken and returned in one C-level step: no Ctrl-C can fire between the two.
        return _INVOKE[_partial(list, _starmap(st.popleft, _repeat((), min(max_items,
                                                                          len(st)))))]

    # -- asyncio -------------------------------------------------------------------------------
    # No thread per waiter: an awaiting coroutine polls the non-blocking fast path and sleeps
    # on the event loop between attempts (backoff from 50 us to 2 ms while nothing moves).
    # Only try_send/try_recv touch the channel, and they complete synchronously, so cancelling
    # the awaiting task can never leave an element taken but undelivered, or half sent.
    async def recv_async(self, timeout: Optional[float] = None) -> Any:
        """``await ch.recv_async()``: the next element (asyncio). Raises Closed once closed
        and drained, RecvTimeout after ``timeout`` seconds (None: no limit). Cancel-safe."""
        tns = to_ns(timeout)
        end = None if tns < 0 else time.monotonic() + tns / 1e9
        delay = 0.0
        while True:
            try:
                return self.try_recv()
            except errors.ChannelEmpty:
                pass
            if end is not None and time.monotonic() >= end:
                raise errors.RecvTimeout(None)
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, 0.00005), 0.002)

    async def send_async(self, item: Any, timeout: Optional[float] = None) -> None:
        """``await ch.send_async(item)`` (asyncio): waits while full. Raises Closed,
        SendTimeout after ``timeout`` seconds. Cancel-safe: either sent whole or not at all."""
        tns = to_ns(timeout)
        end = None if tns < 0 else time.monotonic() + tns / 1e9
        delay = 0.0
        while True:
            try:
                return self.try_send(item)
            except errors.ChannelFull:
                pass
            if end is not None and time.monotonic() >= end:
                raise errors.SendTimeout(None)
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, 0.00005), 0.002)

    # -- raw calls on ctypes buffers ---------------------------------------------------------
    def _cancel_enter(self, cancel: Optional[CancelToken]) -> Optional[int]:
        if cancel is None:
            return None
        if not isinstance(cancel, CancelToken):
            raise TypeError(f"cancel must be a swarm.CancelToken, not {type(cancel).__name__}")
        return cancel._enter()

    # Blocking calls first try without waiting, keeping the GIL (PyDLL): when that succeeds
    # (or fails for good) no GIL hand-off happens at all. Only a call that must wait goes
    # through CDLL, which releases the GIL while C blocks; on the main thread it waits in
    # slices so that Ctrl-C is seen (_handle.sliced). The C semantics are unchanged: a fired
    # token or a zero timeout still lets an element through that needs no waiting.
    # The blocking paths below, and every caller of theirs, keep a C outcome exact under
    # Ctrl-C: a result is stored through _INVOKE (no KeyboardInterrupt between the C call and
    # the store), and a KeyboardInterrupt that Python raises later in the function becomes
    # Interrupted(outcome so far). So the caller always learns whether the element moved.

    def _raw_send(self, elem: Any, timeout: Optional[float], cancel: Optional[CancelToken],
                  what: str = "timeout") -> int:
        """Send ``elem`` (bytes, a ctypes buffer or an address), waiting as ``timeout`` and
        ``cancel`` say. Returns the rc; raises Interrupted(rc) on Ctrl-C (rc >= 0: sent).
        Call it through _INVOKE."""
        tns = -1 if timeout is None else to_ns(timeout, what if what != "submit" else "block")
        return self._raw_move(_SEND_OPS, elem, tns, cancel)

    def _raw_recv(self, out: Any, timeout: Optional[float], cancel: Optional[CancelToken]) -> int:
        """Receive into ``out`` (a ctypes buffer or an address), waiting as ``timeout`` and
        ``cancel`` say. Returns the rc; raises Interrupted(rc) on Ctrl-C (rc >= 0: ``out``
        holds an element). Call it through _INVOKE."""
        tns = -1 if timeout is None else to_ns(timeout)
        return self._raw_move(_RECV_OPS, out, tns, cancel)

    def _raw_move(self, ops: Any, buf: Any, tns: int, cancel: Optional[CancelToken]) -> int:
        """One element through ``ops`` = (try without waiting, wait forever, wait tns, wait with
        a token): the shared body of _raw_send and _raw_recv."""
        fast, forever, timed, ex = ops
        if cancel is not None:
            _check_cancel(cancel)
        rc = _EAGAIN                    # nothing moved
        try:
            p = self._enter()
            try:
                rc = _INVOKE[_partial(fast, p, buf)]
                if rc != _EAGAIN or tns == 0:
                    return rc
                if cancel is None and not on_main_thread():
                    return forever(p, buf) if tns < 0 else timed(p, buf, tns)
                cp = self._cancel_enter(cancel)
                try:
                    rc = _INVOKE[_partial(sliced, lambda ns: ex(p, buf, ns, cp), tns)]
                    return rc
                finally:
                    if cancel is not None:
                        cancel._leave()
            finally:
                self._leave()
        except KeyboardInterrupt:
            raise Interrupted(rc) from None

    def _raw_try_send(self, elem: Any) -> int:
        p = self._enter()
        try:
            return _swarm_chan_try_send_fast(p, elem)
        finally:
            self._leave()

    def _raw_try_recv(self, out: Any) -> int:
        p = self._enter()
        try:
            return _swarm_chan_try_recv_fast(p, out)
        finally:
            self._leave()

    def _raw_batch(self, send: bool, buf: int, limit: int, want: int, lns: int, tns: int,
                   cancel: Optional[CancelToken]) -> int:
        """The blocking send_batch (``send``) or recv_batch of at most ``limit`` elements at
        the address ``buf``, done once ``want`` have moved (send: all of them; recv: its
        min_items, ``lns`` its linger). Returns the count moved or a negative code; raises
        Interrupted(count) on Ctrl-C (the caller keeps what moved). Call it through _INVOKE."""
        done = [0]
        es = self._esize
        try:
            p = self._enter()
            try:
                cp = self._cancel_enter(cancel)

                def one(ns: int) -> int:
                    d = done[0]
                    if send:
                        rc = _INVOKE[_partial(_swarm_chan_send_batch, p, buf + d * es, limit - d,
                                              ns, cp)]
                    else:
                        rc = _INVOKE[_partial(_swarm_chan_recv_batch, p, buf + d * es, limit - d,
                                              max(want - d, 1), lns, ns, cp)]
                    if rc > 0:
                        done[0] += rc
                    return rc

                def part(ns: int) -> int:
                    rc = one(ns)
                    if rc > 0:
                        return 0 if done[0] >= want else _ETIMEDOUT_   # go on
                    return rc
                try:
                    if tns == 0 or not on_main_thread():
                        return one(tns)
                    rc = _INVOKE[_partial(sliced, part, tns)]
                    return done[0] if done[0] else rc
                finally:
                    if cancel is not None:
                        cancel._leave()
            finally:
                self._leave()
        except (Interrupted, KeyboardInterrupt):
            raise Interrupted(done[0]) from None

    def _fast_failed(self, rc: int) -> bool:
        """After a fast call returned ``rc`` < 0: raise HandleClosed if the channel was
        destroyed (NULL cell: SWARM_EINVAL) or is being destroyed; True if the call must go
        on in the blocking path (EAGAIN), False if ``rc`` is the final answer."""
        if rc == _EINVAL and self._cell.value is None:
            raise self._closed_error()
        return rc == _EAGAIN

    def _batch_args(self, max_items: int, min_items: int, linger: Optional[float],
                    timeout: Optional[float]) -> "tuple[int, int]":
        """Validate recv_batch's arguments; returns (linger_ns, timeout_ns)."""
        if isinstance(max_items, bool) or not isinstance(max_items, int):
            raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
        if isinstance(min_items, bool) or not isinstance(min_items, int):
            raise TypeError(f"min_items must be an int, not {type(min_items).__name__}")
        if not 1 <= max_items <= 2**31 - 1:
            raise errors.InvalidArgument(f"max_items must be in [1, 2**31-1], got {max_items}")
        if not 0 <= min_items <= max_items:
            raise errors.InvalidArgument(f"min_items must be in [0, max_items={max_items}], "
                                         f"got {min_items}")
        lns = to_ns(linger if linger is not None else 0, "linger")
        return (0 if lns < 0 else lns), to_ns(timeout)

    def _batch_max(self, max_items: int, min_items: int) -> int:
        """The count one recv_batch call asks C for: ``max_items``, but at most
        max(capacity, 65536, min_items) (a receive returns up to max_items, so fewer is
        allowed; this bounds the per-call buffer)."""
        return min(max_items, max(self._batch_cap, min_items))

    def _recv_batch_into(self, addr: int, max_items: int, min_items: int, lns: int, tns: int,
                         cancel: Optional[CancelToken]) -> int:
        """recv_batch into the buffer at ``addr``: a non-blocking attempt with the GIL held,
        then, only if that does not settle the call, the blocking path for the rest. Returns
        the count or a code; raises Interrupted(count) on Ctrl-C, also for Python's own
        KeyboardInterrupt (a plain one means nothing was taken). Call it through _INVOKE."""
        got = 0
        try:
            if cancel is None:
                if self._closing:
                    raise self._closed_error()
                n = _INVOKE[_partial(_swarm_chan_recv_batch_nb, self._cell, addr, max_items,
                                     min_items, lns, 0, None)]
                if n < 0:
                    if n != _EAGAIN or tns == 0:
                        if n == _EINVAL and self._cell.value is None:
                            raise self._closed_error()
                        return n
                else:
                    got = n
                    if n == max_items or tns == 0 or (n >= min_items and lns == 0):
                        return n
            if got == 0:
                return _INVOKE[_partial(self._raw_batch, False, addr, max_items,
                                        max(min_items, 1), lns, tns, cancel)]
            # Some taken already: wait for the rest of min_items, or (min reached) for at most
            # the linger, which C counts from the first element, taken just now.
            if got >= min_items:
                rest_min, tns = 1, (lns if tns < 0 else min(tns, lns))
            else:
                rest_min = min_items - got
            rest = _INVOKE[_partial(self._raw_batch, False, addr + got * self._esize,
                                    max_items - got, rest_min, lns, tns, cancel)]
            return got + rest if rest > 0 else got
        except Interrupted as it:
            raise Interrupted(got + max(it.rc, 0)) from None
        except KeyboardInterrupt:   # not from the blocking part (it raises Interrupted)
            raise Interrupted(got) from None

    def _send_batch_from(self, addr: int, k: int, timeout: Optional[float],
                         cancel: Optional[CancelToken]) -> int:
        """send_batch of the ``k`` packed elements at ``addr``: a non-blocking attempt with
        the GIL held, then the blocking path for whatever did not fit. Returns the count sent
        or a code; raises Interrupted(count) on Ctrl-C once anything may have been sent (a
        plain KeyboardInterrupt means nothing was). Call it through _INVOKE."""
        tns = to_ns(timeout)
        sent = 0
        try:
            if cancel is None:
                if self._closing:
                    raise self._closed_error()
                rc = _INVOKE[_partial(_swarm_chan_send_batch_nb, self._cell, addr, k, 0, None)]
                if rc >= 0:
                    sent = rc
                    if sent == k or tns == 0:
                        return sent
                elif rc != _EAGAIN or tns == 0:
                    if rc == _EINVAL and self._cell.value is None:
                        raise self._closed_error()
                    return rc
            rest = _INVOKE[_partial(self._raw_batch, True, addr + sent * self._esize, k - sent,
                                    k - sent, 0, tns, cancel)]
            return sent + rest if rest > 0 else (sent if sent else rest)
        except Interrupted as it:
            raise Interrupted(sent + max(it.rc, 0)) from None
        except KeyboardInterrupt:   # not from the blocking part (it raises Interrupted)
            raise Interrupted(sent) from None

    # -- lifecycle and introspection ---------------------------------------------------------
    def _release(self) -> bool:
        self._cell.value = None     # fast calls from now on see NULL (before anything is freed)
        return super()._release()

    def _wake(self, ptr: int) -> None:
        _swarm_chan_close(ptr)

    def close(self) -> None:
        """Close the channel (``swarm_chan_close``): sends fail with Closed, receivers drain
        then get Closed, every blocked thread wakes. Idempotent; a no-op after destroy.
        Non-blocking."""
        p = self._ptr
        if p is None or self._closing:
            return
        p = self._enter()
        try:
            errors.check(_swarm_chan_close(p))
        finally:
            self._leave()

    def destroy(self) -> None:
        """Close, wait until every call in flight has returned, then free the channel
        (``swarm_chan_destroy``); queued elements go to the drop callback with reason DESTROY.
        Idempotent. Blocking: until in-flight calls return (they wake promptly on close)."""
        self._release()

    @property
    def closed(self) -> bool:
        """True once the channel is closed (``swarm_chan_is_closed``) or destroyed."""
        p = self._ptr
        if p is None or self._closing:
            return True
        p = self._enter()
        try:
            return bool(_swarm_chan_is_closed(p))
        finally:
            self._leave()

    @property
    def destroyed(self) -> bool:
        """True once :meth:`destroy` has run."""
        return not self._alive

    def _u64(self, fn: Callable[[int], int]) -> int:
        p = self._enter()
        try:
            return int(fn(p))
        finally:
            self._leave()

    def __len__(self) -> int:
        """Elements queued now (``swarm_chan_len``); approximate under traffic."""
        return self._u64(_swarm_chan_len)

    @property
    def capacity(self) -> int:
        """Capacity in elements (``swarm_chan_capacity``)."""
        return self._u64(_swarm_chan_capacity)

    @property
    def elem_size(self) -> int:
        """Bytes per C element (``swarm_chan_elem_size``)."""
        return self._u64(_swarm_chan_elem_size)

    def stats(self) -> Dict[str, Any]:
        """A snapshot of the counters (``swarm_chan_get_stats``) as a dict: capacity, elem_size,
        length, sent, received, dropped, high_watermark, blocked_senders, blocked_receivers,
        closed, send_blocked_ns, recv_blocked_ns. Lock-free, any thread."""
        s = swarm_chan_stats()
        s.size = ctypes.sizeof(swarm_chan_stats)
        p = self._enter()
        try:
            errors.check(_swarm_chan_get_stats(p, byref(s)), "swarm_chan_get_stats")
        finally:
            self._leave()
        return stats_dict(s)


class Channel(_ChanBase):
    """A channel of bytes (copied in and out).

    Args:
        capacity: elements the channel holds (C default 1024).
        elem_size: bytes per element (1 .. 1 MiB). Without ``framed`` every message must be
            exactly this long; with ``framed`` up to ``elem_size - 4`` bytes.
        full_mode: a :class:`FullMode`; the drop modes never block a sender.
        on_drop: ``on_drop(data: bytes, reason: DropReason)``, called on the thread of the send
            (or destroy) that dropped an element; exceptions are logged, never propagated.
        framed: carry variable-length messages with a 4-byte length prefix.
        spin: busy-wait rounds before parking (0: library default).
        allocator: optional :class:`~swarm.Allocator`.

    Raises InvalidArgument (SWARM_EINVAL) for bad options, OutOfMemory (SWARM_ENOMEM).
    """

    def __init__(self, capacity: int = 1024, elem_size: int = 8, *,
                 full_mode: FullMode = FullMode.WAIT,
                 on_drop: Optional[Callable[[bytes, DropReason], None]] = None,
                 framed: bool = False, spin: int = 0,
                 allocator: Optional[Allocator] = None) -> None:
        self._framed = bool(framed)
        if self._framed and isinstance(elem_size, int) and elem_size < 5:
            raise errors.InvalidArgument("framed channels need elem_size >= 5")
        handler = None
        if on_drop is not None:
            if not callable(on_drop):
                raise TypeError("on_drop must be callable")
            es, framed_ = elem_size, self._framed

            def handler(elem: int, reason: int) -> None:
                data = ctypes.string_at(elem, es)
                if framed_:
                    (n,) = _LEN.unpack_from(data)
                    data = data[4:4 + n]
                on_drop(data, DropReason(reason))
        super().__init__(capacity=capacity, elem_size=elem_size, full_mode=full_mode, spin=spin,
                         allocator=allocator, drop_handler=handler)
        self._maxmsg = elem_size - 4 if self._framed else elem_size
        # Unframed bytes of exactly this length go to C as they are (no copy, no checks).
        self._rawlen = -1 if self._framed else elem_size
        self._Buf = c_char * elem_size

    @property
    def max_message(self) -> int:
        """The longest message :meth:`send` accepts."""
        return self._maxmsg

    def _encode(self, data: Any) -> bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"Channel carries bytes-like data, not {type(data).__name__}; "
                            "use ObjectChannel for Python objects")
        b = bytes(data)
        if self._framed:
            if len(b) > self._maxmsg:
                raise errors.InvalidArgument(
                    f"message of {len(b)} bytes exceeds {self._maxmsg}")
            return _LEN.pack(len(b)) + b + bytes(self._maxmsg - len(b))
        if len(b) != self._esize:
            raise errors.InvalidArgument(
                f"message must be exactly elem_size={self._esize} bytes, got {len(b)}")
        return b

    def _decode(self, raw: Any) -> bytes:
        """One element (bytes or a buffer of elem_size bytes) as the message it carries."""
        if self._framed:
            (n,) = _LEN.unpack_from(raw)
            return bytes(raw[4:4 + n])
        return bytes(raw)

    def _split(self, buf: Any, n: int) -> List[bytes]:
        """The first ``n`` elements of a batch buffer, decoded."""
        raw, es = buf.raw, self._esize
        if not self._framed:
            return [raw[i:i + es] for i in range(0, n * es, es)]
        return [self._decode(raw[i:i + es]) for i in range(0, n * es, es)]

    def send(self, data: bytes, timeout: Optional[float] = None,
             cancel: Optional[CancelToken] = None) -> None:
        """Send one message (copied), waiting while the channel is full (wait mode).

        ``swarm_chan_send`` / ``_send_timeout`` / ``_send_ex`` depending on the arguments.
        Raises Closed, SendTimeout (a TimedOut and queue.Full), ChannelFull for timeout 0 (a
        WouldBlock and queue.Full), Canceled. Blocking: yes, with the GIL released;
        thread-safe. Ctrl-C on the main thread raises KeyboardInterrupt within ~50 ms; the
        message is then either queued whole (``exc.sent == 1``) or not at all."""
        if type(data) is not bytes or len(data) != self._rawlen:
            data = self._encode(data)
        try:
            if timeout is None and cancel is None:
                if self._closing:
                    raise self._closed_error()
                rc = self._sendop[data]             # try_send, GIL held
                if rc == 0 or not self._fast_failed(rc):
                    pass
                else:
                    rc = _INVOKE[_partial(self._raw_send, data, None, None)]
            else:
                rc = _INVOKE[_partial(self._raw_send, data, timeout, cancel)]
        except Interrupted as it:
            raise _interrupt(1 if it.rc >= 0 else 0) from None
        if rc < 0:
            errors.raise_send(rc)

    def try_send(self, data: bytes) -> None:
        """Send without waiting (``swarm_chan_try_send``); raises ChannelFull (a WouldBlock
        and queue.Full) when full."""
        if type(data) is not bytes or len(data) != self._rawlen:
            data = self._encode(data)
        if self._closing:
            raise self._closed_error()
        rc = self._sendop[data]
        if rc < 0:
            self._fast_failed(rc)
            errors.raise_send(rc)

    def recv(self, timeout: Optional[float] = None,
             cancel: Optional[CancelToken] = None) -> bytes:
        """Receive one message, waiting while empty (``swarm_chan_recv`` / ``_recv_timeout`` /
        ``_recv_ex``). Raises Closed once closed and drained, RecvTimeout (a TimedOut and
        queue.Empty), ChannelEmpty for timeout 0, Canceled. Blocking: yes, with the GIL
        released; thread-safe. Ctrl-C on the main thread raises KeyboardInterrupt within ~50
        ms; a message taken at that moment is kept and returned by the next receive."""
        if self._stash:
            return _INVOKE[self._stash.popleft]   # no Ctrl-C between pop and return
        buf = self._Buf()
        rc = _UNKNOWN
        try:
            if timeout is None and cancel is None:
                if self._closing:
                    raise self._closed_error()
                rc = self._recvop[buf]              # try_recv, GIL held; rc always stored
                if rc < 0 and self._fast_failed(rc):
                    rc = _UNKNOWN
                    rc = _INVOKE[_partial(self._raw_recv, buf, None, None)]
            else:
                rc = _INVOKE[_partial(self._raw_recv, buf, timeout, cancel)]
            if rc == 0:
                # A call, inside the try: a Ctrl-C that arrived while C ran fires here at the
                # latest, and the handler below keeps the message.
                return self._decode(buf)
        except Interrupted as it:
            if it.rc >= 0:
                self._stash.append(self._decode(buf))
            raise _interrupt() from None
        except BaseException:
            if rc == 0:
                self._stash.append(self._decode(buf))
            raise
        errors.raise_recv(rc)
        raise AssertionError("unreachable")  # pragma: no cover

    def try_recv(self) -> bytes:
        """Receive without waiting (``swarm_chan_try_recv``); raises ChannelEmpty (a
        WouldBlock and queue.Empty) when empty and open, Closed when closed and drained."""
        if self._stash:
            return _INVOKE[self._stash.popleft]   # no Ctrl-C between pop and return
        if self._closing:
            raise self._closed_error()
        buf = self._Buf()
        rc = _UNKNOWN
        try:
            rc = self._recvop[buf]
            if rc == 0:
                return self._decode(buf)
        except BaseException:
            if rc == 0:
                self._stash.append(self._decode(buf))
            raise
        self._fast_failed(rc)
        errors.raise_recv(rc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _pack(self, items: Iterable[bytes]) -> "tuple[Any, int]":
        """The messages of a batch packed back to back: (ctypes buffer, count)."""
        if type(items) is not list:
            items = list(items)
        k, es = len(items), self._esize
        if not self._framed:
            try:
                data = b"".join(items)
            except TypeError:
                data = None
            # Every len() == elem_size and the total == k * elem_size: then every item's byte
            # size is elem_size too (a buffer's byte size is never below its len()).
            if data is not None and len(data) == k * es and set(map(len, items)) <= {es}:
                return (c_char * max(len(data), 1)).from_buffer_copy(data or b"\0"), k
        data = b"".join([self._encode(d) for d in items])
        return (c_char * max(len(data), 1)).from_buffer_copy(data or b"\0"), k

    def send_batch(self, items: Iterable[bytes], timeout: Optional[float] = None,
                   cancel: Optional[CancelToken] = None) -> int:
        """Send messages in order (``swarm_chan_send_batch``), waiting for room for at most
        ``timeout`` overall. Returns how many were sent (the rest were not); raises the stopping
        error only when none was sent. Blocking: yes, GIL released. On Ctrl-C:
        KeyboardInterrupt with ``.sent`` = how many went (whole)."""
        buf, k = self._pack(items)
        if not k:
            return 0
        try:
            rc = _INVOKE[_partial(self._send_batch_from, addressof(buf), k, timeout, cancel)]
        except Interrupted as it:
            raise _interrupt(max(it.rc, 0)) from None
        if rc < 0:
            errors.raise_send(rc)
        return rc

    def recv_batch(self, max_items: int, min_items: int = 1, linger: float = 0.0,
                   timeout: Optional[float] = None,
                   cancel: Optional[CancelToken] = None) -> List[bytes]:
        """Receive up to ``max_items`` (``swarm_chan_recv_batch``): returns once ``max_items``
        are taken, or ``min_items`` are and ``linger`` seconds passed since the first, or on
        timeout/close/cancel with whatever was taken. Raises (RecvTimeout, ChannelEmpty, Closed,
        Canceled) only when nothing was taken. Blocking: yes, GIL released. On Ctrl-C the
        elements already taken are kept for the next receive."""
        if self._stash:
            return self._unstash(max_items)
        lns, tns = self._batch_args(max_items, min_items, linger, timeout)
        if cancel is not None:
            _check_cancel(cancel)
        max_items = self._batch_max(max_items, min_items)
        buf = (c_char * (self._esize * max_items))()
        n = _UNKNOWN
        try:
            n = _INVOKE[_partial(self._recv_batch_into, addressof(buf), max_items, min_items,
                                 lns, tns, cancel)]
            if n > 0:
                return self._split(buf, n)
        except Interrupted as it:
            self._stash.extend(self._split(buf, it.rc))
            raise _interrupt() from None
        except BaseException:
            if n > 0:
                self._stash.extend(self._split(buf, n))
            raise
        errors.raise_recv(n)
        raise AssertionError("unreachable")  # pragma: no cover

    def __iter__(self) -> Iterator[bytes]:
        """Receive until the channel is closed and drained. Blocking, GIL released."""
        while True:
            try:
                yield self.recv()
            except errors.Closed:
                return

    def __aiter__(self) -> "AsyncIterator[bytes]":
        return _aiter(self)


T = TypeVar("T")


class ObjectChannel(_ChanBase, Generic[T]):
    """A channel of arbitrary Python objects, through an integer handle table.

    The object itself never enters C: ``send`` stores it under a fresh integer handle and sends
    the 8-byte handle; ``recv`` pops it. Drops (drop modes) and ``destroy`` on a non-empty
    channel release the dropped handles (and call ``on_drop(obj, reason)`` if given), so the
    table never leaks. :attr:`pending` is the table size.

    Blocking, threading and errors as :class:`Channel`.
    """

    def __init__(self, capacity: int = 1024, *, full_mode: FullMode = FullMode.WAIT,
                 on_drop: Optional[Callable[[Any, DropReason], None]] = None, spin: int = 0,
                 allocator: Optional[Allocator] = None) -> None:
        if on_drop is not None and not callable(on_drop):
            raise TypeError("on_drop must be callable")
        table = _Table()
        self._table = table
        self._keys = itertools.count(1)
        # The drop handler lives in a module registry and in the finalizer: it must not hold
        # the table (whose objects may reference this channel) strongly, or a channel carrying
        # a message that refers to the channel would never be collected.
        tref = weakref.ref(table)

        def handler(elem: int, reason: int) -> None:
            h = c_uint64.from_address(elem).value
            t = tref()
            obj = t.pop(h, None) if t is not None else None
            if on_drop is not None:
                on_drop(obj, DropReason(reason))
        super().__init__(capacity=capacity, elem_size=8, full_mode=full_mode, spin=spin,
                         allocator=allocator, drop_handler=handler)

    @property
    def pending(self) -> int:
        """Objects held by the handle table (queued, or in flight in a send)."""
        return len(self._table)

    # No table.clear() after destroy: the destroy's drop callbacks release every handle still
    # queued, and a fast receive that C handed a handle just before destroy (it runs without
    # the in-flight count) must still find its object in the table.

    def send(self, obj: T, timeout: Optional[float] = None,
             cancel: Optional[CancelToken] = None) -> None:
        """Send a reference to ``obj`` (not a copy). Errors, blocking and Ctrl-C as
        :meth:`Channel.send`."""
        h = next(self._keys)
        table = self._table
        table[h] = obj
        rc = -99            # not sent (yet)
        try:
            ref = h.to_bytes(8, "little")
            if timeout is None and cancel is None:
                if self._closing:
                    raise self._closed_error()
                rc = self._sendop[ref]          # try_send, GIL held; rc always stored
                if rc == 0:
                    return
                if rc == _EAGAIN:
                    # Any exception but Interrupted from _raw_send means nothing was sent.
                    rc = _INVOKE[_partial(self._raw_send, ref, None, None)]
                elif rc == _EINVAL and self._cell.value is None:
                    raise self._closed_error()
            else:
                rc = _INVOKE[_partial(self._raw_send, ref, timeout, cancel)]
        except Interrupted as it:
            rc = it.rc
            raise _interrupt(1 if rc >= 0 else 0) from None
        except KeyboardInterrupt as ki:
            ki.sent = 1 if rc >= 0 else 0  # type: ignore[attr-defined]
            raise
        finally:
            if rc < 0:
                table.pop(h, None)
        if rc < 0:
            errors.raise_send(rc)

    def try_send(self, obj: T) -> None:
        """Send without waiting; raises ChannelFull (a WouldBlock and queue.Full) when full."""
        if self._closing:
            raise self._closed_error()
        h = next(self._keys)
        table = self._table
        table[h] = obj
        rc = -99
        try:
            rc = self._sendop[h.to_bytes(8, "little")]
        finally:
            if rc < 0:
                table.pop(h, None)
        if rc < 0:
            self._fast_failed(rc)
            errors.raise_send(rc)

    def _take(self, h: int) -> T:
        try:
            return self._table.pop(h)
        except KeyError:
            raise errors.InternalError(f"handle {h} not in the table") from None

    def _recv_into(self, out: Any, timeout: Optional[float],
                   cancel: Optional[CancelToken]) -> int:
        """Receive one handle into ``out`` (a zeroed c_uint64 array): try with the GIL held,
        then wait. Returns the rc; raises Interrupted from a sliced wait."""
        if timeout is not None or cancel is not None:
            return self._raw_recv(out, timeout, cancel)
        if self._closing:
            raise self._closed_error()
        rc = _TRY_RECV(self._cell, out)
        if rc != _EAGAIN:
            if rc == _EINVAL and self._cell.value is None:
                raise self._closed_error()
            return rc
        # Must wait. On the main thread in slices without a SIGINT handler swap (20 us per
        # swap here): the handle lands in the zeroed buffer, so if KeyboardInterrupt (or a
        # custom handler's exception) fires right after C handed one over, the caller finds
        # it there and stashes the object.
        p = self._enter()
        try:
            if on_main_thread():
                while True:     # slices: signal handlers run between them
                    rc = _swarm_chan_recv_ex(p, out, SLICE_NS, None)
                    if rc != _ETIMEDOUT_:
                        return rc
            return _swarm_chan_recv(p, out)
        finally:
            self._leave()

    def recv(self, timeout: Optional[float] = None, cancel: Optional[CancelToken] = None) -> T:
        """Receive the next object. Errors, blocking and Ctrl-C as :meth:`Channel.recv`.

        Exactly once under Ctrl-C without a SIGINT handler swap: the element is an 8-byte
        handle (never 0) written into a zeroed buffer, so if KeyboardInterrupt (or a custom
        handler's exception) fires after C handed one over, the handle in the buffer says so
        and the object goes to the stash, returned by the next receive."""
        if self._stash:
            return _INVOKE[self._stash.popleft]   # no Ctrl-C between pop and return
        out = _U1()
        table = self._table
        try:
            if timeout is None and cancel is None and not self._closing:
                rc = _TRY_RECV(self._cell, out)     # inlined _recv_into fast path
                if rc != 0:
                    rc = self._recv_into(out, None, None)
            else:
                rc = self._recv_into(out, timeout, cancel)
            if rc < 0:
                errors.raise_recv(rc)
            h = out[0]
            obj = table.get(h, _MISSING)    # a call: a pending Ctrl-C fires here at the latest
        except Interrupted:
            h = out[0]
            if h and h in table:
                self._stash.append(table.pop(h))
            raise _interrupt() from None
        except BaseException:
            h = out[0]
            if h and h in table:
                self._stash.append(table.pop(h))
            raise
        if obj is _MISSING:
            raise errors.InternalError(f"handle {h} not in the table")
        del table[h]
        return obj

    def try_recv(self) -> T:
        """Receive without waiting; raises ChannelEmpty (a WouldBlock and queue.Empty) when
        empty, Closed when drained."""
        if self._stash:
            return _INVOKE[self._stash.popleft]   # no Ctrl-C between pop and return
        if self._closing:
            raise self._closed_error()
        out = _U1()
        table = self._table
        try:
            rc = _TRY_RECV(self._cell, out)
            if rc < 0:
                self._fast_failed(rc)
                errors.raise_recv(rc)
            h = out[0]
            obj = table.get(h, _MISSING)
        except BaseException:
            h = out[0]
            if h and h in table:
                self._stash.append(table.pop(h))
            raise
        if obj is _MISSING:
            raise errors.InternalError(f"handle {h} not in the table")
        del table[h]
        return obj

    def send_batch(self, items: Iterable[T], timeout: Optional[float] = None,
                   cancel: Optional[CancelToken] = None) -> int:
        """Send objects in order; returns how many were sent. As :meth:`Channel.send_batch`."""
        objs = items if type(items) is list else list(items)
        k = len(objs)
        if not k:
            return 0
        table = self._table
        hs = list(_islice(self._keys, k))    # unique handles (count is atomic per item)
        rc = -99                             # nothing sent
        try:
            table.update(zip(hs, objs))
            arr = array("Q", hs)
            # Any exception but Interrupted from _send_batch_from means nothing was sent.
            rc = _INVOKE[_partial(self._send_batch_from, arr.buffer_info()[0], k, timeout,
                                  cancel)]
        except Interrupted as it:
            rc = max(it.rc, 0)
            raise _interrupt(rc) from None
        finally:
            if rc < k:
                for h in hs[max(rc, 0):]:
                    table.pop(h, None)
        if rc < 0:
            errors.raise_send(rc)
        return rc

    def recv_batch(self, max_items: int, min_items: int = 1, linger: float = 0.0,
                   timeout: Optional[float] = None,
                   cancel: Optional[CancelToken] = None) -> List[T]:
        """Receive up to ``max_items`` objects; as :meth:`Channel.recv_batch`."""
        if self._stash:
            return self._unstash(max_items)
        lns, tns = self._batch_args(max_items, min_items, linger, timeout)
        if cancel is not None:
            _check_cancel(cancel)
        max_items = self._batch_max(max_items, min_items)
        arr = _Q0 * max_items       # zeroed: a handle (never 0) in it was handed over
        table = self._table
        objs = None
        try:
            n = self._recv_batch_into(arr.buffer_info()[0], max_items, min_items, lns, tns,
                                      cancel)
            if n < 0:
                errors.raise_recv(n)
            hs = arr[:n]
            objs = list(map(table.__getitem__, hs))    # KeyError: a bug, see below
            _consume(map(table.__delitem__, hs))
            return objs
        except KeyError as exc:
            raise errors.InternalError(f"handle {exc} not in the table") from None
        except BaseException as exc:
            # Ctrl-C (Interrupted from a sliced wait, or Python's own KeyboardInterrupt at
            # any call above): keep every element taken, found in the buffer.
            if objs is not None:
                for h in arr:
                    if not h:
                        break
                    table.pop(h, None)
            else:
                objs = []
                for h in arr:
                    if not h:
                        break
                    if h in table:
                        objs.append(table.pop(h))
            self._stash.extend(objs)
            if isinstance(exc, Interrupted):
                raise _interrupt() from None
            raise

    def __iter__(self) -> Iterator[T]:
        """Receive until the channel is closed and drained. Blocking, GIL released."""
        while True:
            try:
                yield self.recv()
            except errors.Closed:
                return

    def __aiter__(self) -> "AsyncIterator[T]":
        return _aiter(self)
