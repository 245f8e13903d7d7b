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

Blocking and threading: every blocking call (``send``, ``recv``, the timed and batch variants)
runs in C with the GIL released (the library is loaded with ``ctypes.CDLL``), so other Python
threads keep running while one waits. Any number of threads may send and receive concurrently.
Timeouts are in seconds: ``None`` waits forever, ``0`` never waits.

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
import itertools
import logging
import struct
import time
import weakref
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_int, c_int64, c_size_t, c_uint32,
                    c_uint64, c_void_p)
from typing import (Any, AsyncIterator, Callable, Deque, Dict, Generic, Iterable, Iterator, List,
                    Optional, TypeVar)

from . import errors
from ._handle import SLICE_NS, Interrupted, _Handle, on_main_thread, sliced, to_ns
from ._lib import cfunc
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
        # Elements C handed over while Ctrl-C interrupted the receive (or whose asyncio
        # receiver was cancelled): returned first by the next receive, so none is lost.
        self._stash: Deque[Any] = collections.deque()

    def _unstash(self, max_items: int) -> List[Any]:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise errors.InvalidArgument(f"max_items must be in [1, 2**31-1], got {max_items!r}")
        st = self._stash
        return [st.popleft() for _ in range(min(max_items, len(st)))]

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
    def _raw_send(self, elem: Any, timeout: Optional[float], cancel: Optional[CancelToken],
                  what: str = "timeout") -> int:
        tns = -1 if timeout is None else to_ns(timeout, what if what != "submit" else "block")
        if cancel is not None:
            _check_cancel(cancel)
        p = self._enter()
        try:
            rc = _swarm_chan_try_send_fast(p, elem)
            if rc != _EAGAIN or tns == 0:
                return rc
            if cancel is None and not on_main_thread():
                if tns < 0:
                    return _swarm_chan_send(p, elem)
                return _swarm_chan_send_timeout(p, elem, tns)
            cp = self._cancel_enter(cancel)
            try:
                return sliced(lambda ns: _swarm_chan_send_ex(p, elem, ns, cp), tns)
            finally:
                if cancel is not None:
                    cancel._leave()
        finally:
            self._leave()

    def _raw_recv(self, out: Any, timeout: Optional[float], cancel: Optional[CancelToken]) -> int:
        tns = -1 if timeout is None else to_ns(timeout)
        if cancel is not None:
            _check_cancel(cancel)
        p = self._enter()
        try:
            rc = _swarm_chan_try_recv_fast(p, out)
            if rc != _EAGAIN or tns == 0:
                return rc
            if cancel is None and not on_main_thread():
                if tns < 0:
                    return _swarm_chan_recv(p, out)
                return _swarm_chan_recv_timeout(p, out, tns)
            cp = self._cancel_enter(cancel)
            try:
                return sliced(lambda ns: _swarm_chan_recv_ex(p, out, ns, cp), tns)
            finally:
                if cancel is not None:
                    cancel._leave()
        finally:
            self._leave()

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

    def _raw_send_batch(self, elems: Any, n: int, timeout: Optional[float],
                        cancel: Optional[CancelToken]) -> int:
        """Returns the count sent or a negative code; raises Interrupted(count) on Ctrl-C."""
        tns = to_ns(timeout)
        p = self._enter()
        try:
            cp = self._cancel_enter(cancel)
            try:
                if tns == 0 or not on_main_thread():
                    return _swarm_chan_send_batch(p, elems, n, tns, cp)
                es = self._esize
                sent = [0]

                def part(ns: int) -> int:
                    rc = _swarm_chan_send_batch(p, byref(elems, sent[0] * es), n - sent[0],
                                                ns, cp)
                    if rc > 0:
                        sent[0] += rc
                        return 0 if sent[0] == n else _ETIMEDOUT_   # go on
                    return rc
                try:
                    rc = sliced(part, tns)
                except Interrupted:
                    raise Interrupted(sent[0]) from None
                return sent[0] if sent[0] else rc
            finally:
                if cancel is not None:
                    cancel._leave()
        finally:
            self._leave()

    def _raw_recv_batch(self, out: Any, max_items: int, min_items: int, linger: float,
                        timeout: Optional[float], cancel: Optional[CancelToken]) -> int:
        """Returns the count taken or a negative code; raises Interrupted(count) on Ctrl-C
        (the caller keeps the elements taken)."""
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
        if lns < 0:
            lns = 0
        tns = to_ns(timeout)
        p = self._enter()
        try:
            cp = self._cancel_enter(cancel)
            try:
                if tns == 0 or not on_main_thread():
                    return _swarm_chan_recv_batch(p, out, max_items, min_items, lns, tns, cp)
                es = self._esize
                got = [0]
                want = max(min_items, 1)

                def part(ns: int) -> int:
                    g = got[0]
                    rc = _swarm_chan_recv_batch(p, byref(out, g * es), max_items - g,
                                                max(want - g, 1), lns, ns, cp)
                    if rc > 0:
                        got[0] += rc
                        return 0 if got[0] >= want else _ETIMEDOUT_
                    return rc
                try:
                    rc = sliced(part, tns)
                except Interrupted:
                    raise Interrupted(got[0]) from None
                return got[0] if got[0] else rc
            finally:
                if cancel is not None:
                    cancel._leave()
        finally:
            self._leave()

    # -- lifecycle and introspection ---------------------------------------------------------
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

    def _decode(self, raw: bytes) -> bytes:
        if self._framed:
            (n,) = _LEN.unpack_from(raw)
            return raw[4:4 + n]
        return raw

    def send(self, data: bytes, timeout: Optional[float] = None,
             cancel: Optional[CancelToken] = None) -> None:
        """Send one message (copied), waiting while the channel is full (wait mode).

        ``swarm_chan_send`` / ``_send_timeout`` / ``_send_ex`` depending on the arguments.
        Raises Closed, SendTimeout (a TimedOut and queue.Full), ChannelFull for timeout 0 (a
        WouldBlock and queue.Full), Canceled. Blocking: yes, with the GIL released;
        thread-safe. Ctrl-C on the main thread raises KeyboardInterrupt within ~50 ms; the
        message is then either queued whole (``exc.sent == 1``) or not at all."""
        enc = self._encode(data)
        try:
            rc = self._raw_send(enc, timeout, cancel)
        except Interrupted as it:
            raise _interrupt(1 if it.rc >= 0 else 0) from None
        if rc < 0:
            errors.raise_send(rc)

    def try_send(self, data: bytes) -> None:
        """Send without waiting (``swarm_chan_try_send``); raises ChannelFull (a WouldBlock
        and queue.Full) when full."""
        rc = self._raw_try_send(self._encode(data))
        if rc < 0:
            errors.raise_send(rc)

    def recv(self, timeout: Optional[float] = None,
             cancel: Optional[CancelToken] = None) -> bytes:
        """Receive one message, waiting while empty (``swarm_chan_recv`` / ``_recv_timeout`` /
        ``_recv_ex``). Raises Closed once closed and drained, RecvTimeout (a TimedOut and
        queue.Empty), ChannelEmpty for timeout 0, Canceled. Blocking: yes, with the GIL
        released; thread-safe. Ctrl-C on the main thread raises KeyboardInterrupt within ~50
        ms; a message taken at that moment is kept and returned by the next receive."""
        if self._stash:
            return self._stash.popleft()
        buf = ctypes.create_string_buffer(self._esize)
        try:
            rc = self._raw_recv(buf, timeout, cancel)
        except Interrupted as it:
            if it.rc >= 0:
                self._stash.append(self._decode(buf.raw))
            raise _interrupt() from None
        if rc < 0:
            errors.raise_recv(rc)
        return self._decode(buf.raw)

    def try_recv(self) -> bytes:
        """Receive without waiting (``swarm_chan_try_recv``); raises ChannelEmpty (a
        WouldBlock and queue.Empty) when empty and open, Closed when closed and drained."""
        if self._stash:
            return self._stash.popleft()
        buf = ctypes.create_string_buffer(self._esize)
        rc = self._raw_try_recv(buf)
        if rc < 0:
            errors.raise_recv(rc)
        return self._decode(buf.raw)

    def send_batch(self, items: Iterable[bytes], timeout: Optional[float] = None,
                   cancel: Optional[CancelToken] = None) -> int:
        """Send messages in order (``swarm_chan_send_batch``), waiting for room for at most
        ``timeout`` overall. Returns how many were sent (the rest were not); raises the stopping
        error only when none was sent. Blocking: yes, GIL released. On Ctrl-C:
        KeyboardInterrupt with ``.sent`` = how many went (whole)."""
        enc = [self._encode(d) for d in items]
        if not enc:
            return 0
        buf = ctypes.create_string_buffer(b"".join(enc), len(enc) * self._esize)
        try:
            rc = self._raw_send_batch(buf, len(enc), timeout, cancel)
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
        if isinstance(max_items, int) and not isinstance(max_items, bool) and \
                0 < max_items <= 1 << 24:
            buf = ctypes.create_string_buffer(self._esize * max_items)
        else:
            buf = ctypes.create_string_buffer(self._esize)
        try:
            n = self._raw_recv_batch(buf, max_items, min_items, linger, timeout, cancel)
        except Interrupted as it:
            raw, es = buf.raw, self._esize
            self._stash.extend(self._decode(raw[i * es:(i + 1) * es]) for i in range(it.rc))
            raise _interrupt() from None
        if n < 0:
            errors.raise_recv(n)
        raw, es = buf.raw, self._esize
        if not self._framed:
            return [raw[i * es:(i + 1) * es] for i in range(n)]
        return [self._decode(raw[i * es:(i + 1) * es]) for i in range(n)]

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

    def _release(self) -> bool:
        done = super()._release()
        self._table.clear()  # the destroy's drop callbacks emptied it; belt and braces
        return done

    def send(self, obj: T, timeout: Optional[float] = None,
             cancel: Optional[CancelToken] = None) -> None:
        """Send a reference to ``obj`` (not a copy). Errors, blocking and Ctrl-C as
        :meth:`Channel.send`."""
        h = next(self._keys)
        table = self._table
        table[h] = obj
        rc = -99
        try:
            if timeout is None and cancel is None:
                # Hot path, inlined: _enter, try without waiting (GIL kept), block only if full.
                inflight = self._inflight
                inflight.append(None)
                p = self._ptr
                if p is None or self._closing:
                    inflight.pop()
                    raise self._closed_error()
                try:
                    ref = h.to_bytes(8, "little")
                    rc = _swarm_chan_try_send_fast(p, ref)
                    if rc == _EAGAIN:
                        if on_main_thread():
                            rc = sliced(lambda ns: _swarm_chan_send_ex(p, ref, ns, None), -1)
                        else:
                            rc = _swarm_chan_send(p, ref)
                finally:
                    inflight.pop()
            else:
                rc = self._raw_send(byref(c_uint64(h)), timeout, cancel)
        except Interrupted as it:
            rc = it.rc
            raise _interrupt(1 if rc >= 0 else 0) from None
        finally:
            if rc < 0:
                table.pop(h, None)
        if rc < 0:
            errors.raise_send(rc)

    def try_send(self, obj: T) -> None:
        """Send without waiting; raises ChannelFull (a WouldBlock and queue.Full) when full."""
        h = next(self._keys)
        self._table[h] = obj
        rc = -99
        try:
            rc = self._raw_try_send(byref(c_uint64(h)))
        finally:
            if rc < 0:
                self._table.pop(h, None)
        if rc < 0:
            errors.raise_send(rc)

    def _take(self, h: int) -> T:
        try:
            return self._table.pop(h)
        except KeyError:
            raise errors.InternalError(f"handle {h} not in the table") from None

    def recv(self, timeout: Optional[float] = None, cancel: Optional[CancelToken] = None) -> T:
        """Receive the next object. Errors, blocking and Ctrl-C as :meth:`Channel.recv`.

        On the main thread the plain blocking form needs no SIGINT handler swap (20 us per
        swap here): the element is an 8-byte handle written into a zeroed buffer, so if
        KeyboardInterrupt (or a custom handler's exception) fires right after C handed one
        over, the handle in the buffer says so and the object goes to the stash."""
        if self._stash:
            return self._stash.popleft()
        out = c_uint64()
        table = self._table
        try:
            if timeout is None and cancel is None:
                inflight = self._inflight   # hot path, inlined as in send()
                inflight.append(None)
                p = self._ptr
                if p is None or self._closing:
                    inflight.pop()
                    raise self._closed_error()
                try:
                    rc = _swarm_chan_try_recv_u64(p, out)
                    if rc == _EAGAIN:
                        ref = byref(out)
                        if on_main_thread():
                            while True:     # slices: signal handlers run between them
                                rc = _swarm_chan_recv_ex(p, ref, SLICE_NS, None)
                                if rc != _ETIMEDOUT_:
                                    break
                        else:
                            rc = _swarm_chan_recv(p, ref)
                finally:
                    inflight.pop()
            else:
                rc = self._raw_recv(byref(out), timeout, cancel)
            if rc < 0:
                errors.raise_recv(rc)
            obj = table.get(out.value, _MISSING)
        except Interrupted as it:
            h = out.value
            if it.rc >= 0 and h in table:
                self._stash.append(table.pop(h))
            raise _interrupt() from None
        except BaseException:
            h = out.value
            if h and h in table:
                self._stash.append(table.pop(h))
            raise
        if obj is _MISSING:
            raise errors.InternalError(f"handle {out.value} not in the table")
        del table[out.value]
        return obj

    def try_recv(self) -> T:
        """Receive without waiting; raises ChannelEmpty (a WouldBlock and queue.Empty) when
        empty, Closed when drained."""
        if self._stash:
            return self._stash.popleft()
        out = c_uint64()
        rc = self._raw_try_recv(byref(out))
        if rc < 0:
            errors.raise_recv(rc)
        return self._take(out.value)

    def send_batch(self, items: Iterable[T], timeout: Optional[float] = None,
                   cancel: Optional[CancelToken] = None) -> int:
        """Send objects in order; returns how many were sent. As :meth:`Channel.send_batch`."""
        objs = list(items)
        if not objs:
            return 0
        keys = self._keys
        hs = [next(keys) for _ in objs]
        for h, o in zip(hs, objs):
            self._table[h] = o
        arr = (c_uint64 * len(hs))(*hs)
        rc = -99
        try:
            rc = self._raw_send_batch(arr, len(hs), timeout, cancel)
        except Interrupted as it:
            rc = it.rc
            raise _interrupt(max(rc, 0)) from None
        finally:
            for h in hs[max(rc, 0):]:
                self._table.pop(h, None)
        if rc < 0:
            errors.raise_send(rc)
        return rc

    def recv_batch(self, max_items: int, min_items: int = 1, linger: float = 0.0,
                   timeout: Optional[float] = None,
                   cancel: Optional[CancelToken] = None) -> List[T]:
        """Receive up to ``max_items`` objects; as :meth:`Channel.recv_batch`."""
        if self._stash:
            return self._unstash(max_items)
        n_alloc = max_items if isinstance(max_items, int) and not isinstance(max_items, bool) \
            and 0 < max_items <= 1 << 24 else 1
        arr = (c_uint64 * n_alloc)()
        try:
            n = self._raw_recv_batch(arr, max_items, min_items, linger, timeout, cancel)
        except Interrupted as it:
            take = self._table.pop
            self._stash.extend(take(arr[i]) for i in range(it.rc))
            raise _interrupt() from None
        if n < 0:
            errors.raise_recv(n)
        take = self._table.pop
        return [take(h) for h in arr[:n]]

    def __iter__(self) -> Iterator[T]:
        """Receive until the channel is closed and drained. Blocking, GIL released."""
        while True:
            try:
                yield self.recv()
            except errors.Closed:
                return

    def __aiter__(self) -> "AsyncIterator[T]":
        return _aiter(self)
