# SPDX-License-Identifier: MIT
"""The agent pool (include/swarm/pool.h): N C worker threads that take tasks from a channel,
run them through an engine (a Python engine included), and deliver each result once.

::

    with swarm.Pool(engine, workers=4) as pool:
        fut = pool.submit(b"prompt", id=1)       # concurrent.futures.Future[PoolResult]
        print(fut.result().output)

Tasks carry their payload (bytes, kept alive by the pool until the result is delivered) and an
optional Python ``user`` object. Only an integer key crosses into C (the task's ``user`` field);
the pool's task table maps it back, so nothing is lost or leaked across resize and stop.

Threading: ``submit`` may be called from any thread; it blocks (GIL released) while the input
queue is full unless a timeout says otherwise. The C workers send results into a result channel
(no GIL needed); one Python thread per pool, the result thread ("libswarm-pool-results"),
receives them in batches, completes the futures and calls ``on_result(result)`` (if given),
in completion order; exceptions from ``on_result`` are logged. So a worker takes the GIL once
per task (for a Python engine), not twice, and never waits for a slow ``on_result`` unless the
result channel is full. ``stop`` and ``close`` block (GIL released) until every worker has left
and every result has been delivered.

Runs: a Python engine without its own ``infer_batch`` is flagged SWARM_ENGINE_F_SEQUENTIAL_BATCH,
so when its calls are fast (under 20 us) and tasks are queued, a worker hands it a run of up to 64
of them (at most its share of the queue) in one callback: one GIL acquisition per run instead of
one per task. Each task of a run is still served by its own ``infer`` call with its own outcome;
its :class:`PoolResult` reports ``batch`` = the run's length and the run's start/end times.
``Engine.from_python(obj, runs=False)`` turns runs off (one callback per task).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import dataclasses
import itertools
import logging
import struct
import sys
import threading
import time
import weakref
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_double, c_int, c_int32, c_int64,
                    c_size_t, c_uint32, c_uint64, c_void_p)
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from . import errors
from ._handle import Interrupted, _Handle, on_library_thread, to_ns
from ._lib import cfunc
from .chan import Channel, stats_dict
from .chan import _swarm_chan_close, _swarm_chan_recv_batch
from .chan import _swarm_chan_try_send_fast as _try_send
from .common import _swarm_now_ns
from .common import Allocator, alloc_arg, swarm_allocator
from . import engine as _eng
from .policy import swarm_policy_obs
from .engine import (Engine, _swarm_engine_destroy, _swarm_engine_retain,
                     _swarm_response_error_message)

__all__ = ["Pool", "PoolResult", "PoolConfig"]

log = logging.getLogger("swarm")


class swarm_task(Structure):
    _fields_ = [
        ("id", c_uint64), ("payload", c_void_p), ("payload_len", c_uint64), ("user", c_void_p),
        ("enqueued_ns", c_int64), ("deadline_ns", c_int64), ("priority", c_int32),
        ("reserved_", c_uint32), ("params", c_void_p),
    ]


class swarm_pool_result(Structure):
    _fields_ = [
        ("size", c_uint32), ("status", c_int32), ("worker", c_uint32), ("batch", c_uint32),
        ("task", swarm_task), ("start_ns", c_int64), ("end_ns", c_int64),
        ("output_len", c_uint64), ("response", c_void_p), ("output", c_void_p),
        ("owned", c_uint32), ("reserved2_", c_uint32),
    ]


# The result arrives as a plain address: the trampoline reads it in one unpack (_RESULT).
RESULT_FN = CFUNCTYPE(None, c_void_p, c_void_p)
WARMUP_FN = CFUNCTYPE(c_int, c_void_p, c_uint32, c_void_p)


class swarm_pool_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("workers", c_uint32), ("max_workers", c_uint32),
        ("batch_max", c_uint32), ("batch_min", c_uint32), ("reserved_", c_uint32),
        ("batch_linger_ns", c_int64), ("input", c_void_p), ("engine", c_void_p),
        ("on_result", RESULT_FN), ("result_ctx", c_void_p), ("results", c_void_p),
        ("warmup", WARMUP_FN), ("warmup_ctx", c_void_p), ("response_capacity", c_uint64),
        ("alloc", POINTER(swarm_allocator)), ("keep_input_open", c_uint32),
        ("timing", c_uint32), ("on_stream", c_void_p), ("stream_ctx", c_void_p),
    ]


class swarm_pool_stats(Structure):
    _fields_ = [
        ("size", c_uint32), ("target", c_uint32), ("live", c_uint32), ("starting", c_uint32),
        ("ready", c_uint32), ("busy", c_uint32), ("idle", c_uint32), ("retiring", c_uint32),
        ("stopped", c_uint32), ("reserved_", c_uint32), ("in_flight", c_uint64),
        ("queued", c_uint64), ("taken", c_uint64), ("completed", c_uint64), ("failed", c_uint64),
        ("undelivered", c_uint64), ("batches", c_uint64), ("started", c_uint64),
        ("retired", c_uint64), ("start_failures", c_uint64), ("wait_p50_ns", c_int64),
        ("wait_p90_ns", c_int64), ("wait_p99_ns", c_int64), ("service_p50_ns", c_int64),
        ("service_p90_ns", c_int64), ("service_p99_ns", c_int64), ("wait_max_ns", c_int64),
        ("service_max_ns", c_int64), ("wait_sum_ns", c_int64), ("service_sum_ns", c_int64),
        ("held", c_uint64), ("outputs_dropped", c_uint64),
    ]


@cfunc("swarm_pool_opts_init", [POINTER(swarm_pool_opts)], c_int, keep_gil=True)
def _swarm_pool_opts_init(o) -> int:
    """Defaults + size."""


@cfunc("swarm_pool_create", [POINTER(c_void_p), POINTER(swarm_pool_opts)], c_int)
def _swarm_pool_create(out, o) -> int:
    """Create and start workers."""


@cfunc("swarm_pool_resize", [c_void_p, c_uint32], c_int)
def _swarm_pool_resize(p, n) -> int:
    """Set the worker count."""


@cfunc("swarm_pool_stop", [c_void_p, c_int64, POINTER(swarm_task), c_size_t, POINTER(c_uint64)],
       c_int)
def _swarm_pool_stop(p, timeout_ns, left, cap, n_left) -> int:
    """Stop: drain or deadline; joins workers (GIL released)."""


@cfunc("swarm_pool_destroy", [c_void_p], None)
def _swarm_pool_destroy(p) -> None:
    """Stop if needed and free."""


@cfunc("swarm_pool_get_histogram", [c_void_p, c_uint32, POINTER(c_int64), c_uint32,
                                    POINTER(c_uint64), POINTER(c_uint64), POINTER(c_int64)], c_int)
def _swarm_pool_get_histogram(p, kind, le, n, cum, count, sum_ns) -> int:
    ...


# Not through PyDLL: stats and target take the pool's locks, which a resize or stop holds while
# it joins exiting workers, whose thread-stop hook needs the GIL (libswarm._threads). Holding
# the GIL while waiting for those locks would deadlock.
@cfunc("swarm_pool_get_stats", [c_void_p, POINTER(swarm_pool_stats)], c_int)
def _swarm_pool_get_stats(p, s) -> int:
    """Snapshot."""


@cfunc("swarm_pool_target", [c_void_p], c_uint32)
def _swarm_pool_target(p) -> int:
    """Target worker count."""


@cfunc("swarm_pool_submit", [c_void_p, POINTER(swarm_task), c_int64], c_int)
def _swarm_pool_submit(p, task, timeout_ns) -> int:
    """Stamp enqueued_ns, normalise the deadline, send to the input channel."""


@cfunc("swarm_pool_result_release", [c_void_p, POINTER(swarm_pool_result)], c_int)
def _swarm_pool_result_release(p, r) -> int:
    """Give an owned output (result channel) back to the pool."""


@cfunc("swarm_pool_result_release", [c_void_p, c_void_p], c_int, keep_gil=True)
def _release_at(p, r_addr) -> int:
    """swarm_pool_result_release on a result given by address (the result thread's buffer);
    never blocks, so the GIL stays held."""


@cfunc("swarm_pool_take_undelivered", [c_void_p, POINTER(swarm_pool_result), c_size_t], c_int)
def _swarm_pool_take_undelivered(p, out, cap) -> int:
    """After stop: results the result channel could not take."""


@cfunc("swarm_pool_observe", [c_void_p, c_double, c_double, POINTER(swarm_policy_obs)], c_int)
def _swarm_pool_observe(p, target_per_worker, activation, obs) -> int:
    """The pool's state as a swarm_policy_obs (pointer; set its size first)."""


# Enqueue stamps: libswarm's clock is CLOCK_MONOTONIC, which time.monotonic_ns reads too on
# Linux, without a foreign call; checked once, else the library's own clock.
_now_ns = time.monotonic_ns if abs(time.monotonic_ns() - _swarm_now_ns()) < 50_000_000 \
    else _swarm_now_ns
_TASK = struct.Struct("=QQQQqqiIQ")  # ... priority, reserved_, params (NULL: defaults)
assert _TASK.size == ctypes.sizeof(swarm_task), "swarm_task layout changed"
#: swarm_pool_result as raw bytes: size, status, worker, batch, task (9), start, end,
#: output_len, response, output, owned, reserved2_.
_RESULT = struct.Struct("=IiII" + _TASK.format[1:] + "qqQQQII")
assert _RESULT.size == ctypes.sizeof(swarm_pool_result), "swarm_pool_result layout changed"
_string_at = ctypes.string_at
_probe = b"probe"
#: Offset of a bytes object's data from id(obj) (CPython: PyBytesObject.ob_sval).
_BYTES_DATA = ctypes.cast(ctypes.c_char_p(_probe), c_void_p).value - id(_probe)
del _probe
id_ = id
_EAGAIN = errors.WouldBlock.code


@dataclasses.dataclass(**({"slots": True} if sys.version_info >= (3, 10) else {}))
class PoolResult:
    """The outcome of one task: ``status`` 0 or a negative swarm_err, the engine's ``output``
    (copied), ``error`` message, the worker slot, batch size (the tasks in the engine call: a
    dynamic batch, or a run of queued tasks for a Python engine) and engine-call times (ns)."""
    id: int
    status: int
    output: bytes
    error: str
    worker: int
    batch: int
    start_ns: int
    end_ns: int
    enqueued_ns: int
    user: Any = None
    key: int = dataclasses.field(default=0, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == 0

    def raise_for_status(self) -> "PoolResult":
        if self.status < 0:
            exc = errors.error_class(self.status)(self.error or None)
            exc.code = self.status
            exc.result = self  # type: ignore[attr-defined]
            raise exc
        return self


@dataclasses.dataclass
class PoolConfig:
    """Mirror of ``swarm_pool_opts`` (durations in seconds; 0/None: the C default)."""
    workers: int = 1
    max_workers: int = 64
    batch_max: int = 0
    batch_min: int = 0
    batch_linger: Optional[float] = None
    queue_capacity: int = 1024
    response_capacity: int = 0


class _Task:
    __slots__ = ("id", "payload", "user", "future", "started")

    def __init__(self, id_: int, payload: bytes, user: Any,
                 future: "concurrent.futures.Future[PoolResult]") -> None:
        self.id = id_
        self.payload = payload
        self.user = user
        self.future = future
        self.started = False

    def start(self) -> bool:
        """Move the future to RUNNING; False if it was cancelled while queued (skip it)."""
        if self.started:
            return not self.future.cancelled()
        self.started = True
        return self.future.set_running_or_notify_cancel()


def _pending_task(key: int) -> Optional[_Task]:
    """The queued pool task whose request ``user`` key is ``key`` (engine trampolines)."""
    return _all_tasks.get(key)


#: Every task queued or running in any pool, by its global key (the request's ``user``): lets
#: a Python engine move the task's future to RUNNING, or skip a task cancelled while queued.
_all_tasks: Dict[int, _Task] = {}
_eng._pending_task = _pending_task


class _PoolState:
    """What the C callbacks need, held by the Pool; the registry maps the integer ctx key to a
    weak reference, so a Pool (and whatever its callbacks reference) can be collected."""

    def __init__(self, on_result: Optional[Callable[[PoolResult], Any]],
                 warmup: Optional[Callable[[int], Any]]) -> None:
        self.tasks: Dict[int, _Task] = {}
        self.on_result = on_result
        self.warmup = warmup
        self.warmup_errors: List[BaseException] = []
        self.delivered = 0
        self.duplicates = 0

    def pop(self, key: int) -> Optional[_Task]:
        _all_tasks.pop(key, None)
        return self.tasks.pop(key, None)


_pools: "Dict[int, weakref.ref[_PoolState]]" = {}
_pool_keys = itertools.count(1)


def _state(ctx: Optional[int]) -> Optional[_PoolState]:
    ref = _pools.get(ctx or 0)
    return ref() if ref is not None else None


def _failure(t: _Task, pr: PoolResult) -> BaseException:
    """The exception a failed task's future raises: the Python engine's own exception when it
    is what failed the task, else the status's SwarmError; ``.result`` is the PoolResult."""
    exc = _eng.take_exception(pr.key)
    if exc is None or _eng._exc_code(exc) != pr.status:
        exc = errors.error_class(pr.status)(pr.error or None)
        exc.code = pr.status
    _eng._attach(exc, pr)
    return exc


def _deliver(st: Optional[_PoolState], buf: Any, off: int) -> None:
    """Deliver the swarm_pool_result at byte offset ``off`` of ``buf``: complete its future and
    call on_result. Runs on the result thread, GIL held; never raises."""
    try:
        if st is None:
            return
        (_size, status, worker, batch, tid, _payload, _plen, key, enqueued, _dl, _prio, _r,
         _params, start, end, out_len, response, output, _owned, _r2) = \
            _RESULT.unpack_from(buf, off)
        key = key or 0
        t = st.tasks.pop(key, None)
        _all_tasks.pop(key, None)
        if t is None:
            st.duplicates += 1
            log.error("pool delivered a task the table does not hold (id %d)", tid)
            return
        out = _string_at(output, out_len) if output and out_len else b""
        err = ""
        if status < 0 and response:
            err = (_swarm_response_error_message(response) or b"").decode("utf-8", "replace")
        pr = PoolResult(t.id, status, out, err, worker, batch, start, end, enqueued, t.user, key)
        st.delivered += 1
        f = t.future
        if not t.started:
            try:
                t.start()
            except RuntimeError:     # already finished (closed meanwhile): nothing to start
                pass
        # set_result/set_exception refuse a cancelled or finished future (InvalidStateError):
        # one lock round instead of asking done() and cancelled() first.
        try:
            if status < 0:
                f.set_exception(_failure(t, pr))
            else:
                f.set_result(pr)
        except concurrent.futures.InvalidStateError:
            pass                     # cancelled or finished already; _failure took the error
        if st.on_result is not None:
            st.on_result(pr)
    except BaseException:  # the result thread must go on
        log.exception("pool result callback raised")


def _warmup_tramp(ctx: Optional[int], worker: int, cancel: Optional[int]) -> int:
    _eng._cb_enter()
    st = None
    try:
        st = _state(ctx)
        if st is None or st.warmup is None:
            return 0
        rc = st.warmup(worker)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc < 0:
            st.warmup_errors.append(errors.error_class(rc)(f"warm-up of worker {worker} "
                                                            f"returned {errors.err_name(rc)}"))
            return rc
        return 0
    except BaseException as exc:
        log.warning("pool warm-up hook raised %s: %s", type(exc).__name__, exc)
        if st is not None:
            st.warmup_errors.append(exc)
        return _eng._exc_code(exc)
    finally:
        _eng._cb_leave()


_WARMUP_TRAMP = WARMUP_FN(_warmup_tramp)

#: Results the result thread takes per receive, and the result channel's capacity.
_RESULT_BATCH = 256
_RESULT_CAPACITY = 1024
_collector_tls = threading.local()


def _collect(key: int, pool_ptr: int, ch: int) -> None:
    """A pool's result thread: receive results in batches (GIL released while waiting), deliver
    each (future, on_result) and give its output back to the pool. Ends when the result channel
    is closed and drained (stop/close close it once the workers have left). Holds no reference to
    the Pool, so a dropped Pool is still collected."""
    _collector_tls.active = True
    buf = (swarm_pool_result * _RESULT_BATCH)()
    base = ctypes.addressof(buf)
    while True:
        n = _swarm_chan_recv_batch(ch, buf, _RESULT_BATCH, 1, 0, -1, None)
        if n <= 0:
            return       # SWARM_ECLOSED: closed and drained
        _deliver_all(key, pool_ptr, buf, base, n)


def _deliver_all(key: int, pool_ptr: int, buf: Any, base: int, n: int) -> None:
    """Deliver n results from buf, then give each one's output back to the pool. Counts as a
    callback (in_callback()), so on_result cannot stop or close its own pool."""
    st = _state(key)
    size = _RESULT.size
    _eng._cb_enter()
    try:
        for i in range(n):
            _deliver(st, buf, i * size)
            _release_at(pool_ptr, base + i * size)
    finally:
        _eng._cb_leave()


def _finish_results(key: int, pool_ptr: int, ch: int, collector: threading.Thread) -> None:
    """After the C pool has stopped (its workers have sent everything): close the result channel,
    wait for the result thread to deliver what is in it, then deliver what the pool held back
    (results a stop deadline kept out of a full channel)."""
    _swarm_chan_close(ch)
    if collector is not threading.current_thread() and collector.ident is not None:
        collector.join()
    held = (swarm_pool_result * 64)()
    base = ctypes.addressof(held)
    while True:
        n = _swarm_pool_take_undelivered(pool_ptr, held, 64)
        if n <= 0:
            return
        _deliver_all(key, pool_ptr, held, base, n)


def _on_result_thread() -> bool:
    return getattr(_collector_tls, "active", False)


def _destroy_pool(ptr: int, key: int, engine_ptr: int, st_ref: Any, results: Channel,
                  collector: threading.Thread, *_keep: Any) -> None:
    if _eng.in_callback() or on_library_thread() or _on_result_thread():
        # Collected (or closed by the finalizer) on one of the library's own worker threads or
        # on the result thread: joining those from here would wait for itself. Finish on a
        # helper thread.
        threading.Thread(target=_destroy_pool,
                         args=(ptr, key, engine_ptr, st_ref, results, collector) + _keep,
                         name="libswarm-pool-reaper", daemon=True).start()
        return
    _swarm_pool_stop(ptr, 0, None, 0, None)   # joins workers (SWARM_ESTATE if stopped already)
    _finish_results(key, ptr, results._ptr, collector)
    _swarm_pool_destroy(ptr)
    results.destroy()
    _swarm_engine_destroy(engine_ptr)   # the reference the pool took
    _pools.pop(key, None)
    st = st_ref()
    if st is not None:
        for k, t in list(st.tasks.items()):
            st.pop(k)
            if not t.future.done():
                if t.started or t.future.set_running_or_notify_cancel():
                    t.future.set_exception(errors.Canceled("pool destroyed before the task ran"))


class Pool(_Handle):
    """An elastic pool of C worker threads serving ``engine`` (``swarm_pool``).

    Args:
        engine: a :class:`~swarm.Engine` (Python engines included). The pool holds its own
            reference, so closing the Engine object early is safe.
        config / keywords: :class:`PoolConfig` fields (workers, max_workers, batch_max,
            batch_min, batch_linger, queue_capacity, response_capacity).
        on_result: optional ``on_result(PoolResult)``, called once per task on the pool's
            result thread, after the task's future is completed (GIL held). It may submit and
            resize; stop/close/shutdown(wait=True) from it raise WrongState. It must not block
            for long: while it runs no other result is delivered, workers wait once the result
            channel (1024 results) is full, and stop() waits until every result is delivered.
        warmup: optional ``warmup(worker_index)``, run on each new worker before it takes work;
            raise or return a negative code to fail the start.

    Raises InvalidArgument (bad config, e.g. workers > max_workers), OutOfMemory, InternalError
    (a thread could not start).
    """

    _kind = "pool"
    _shutdown_rank = 1

    def __init__(self, engine: Engine, config: Optional[PoolConfig] = None, *,
                 on_result: Optional[Callable[[PoolResult], Any]] = None,
                 warmup: Optional[Callable[[int], Any]] = None,
                 warmup_timeout: Optional[float] = None,
                 allocator: Optional[Allocator] = None, **kwargs: Any) -> None:
        if not isinstance(engine, Engine):
            raise TypeError(f"engine must be a swarm.Engine, not {type(engine).__name__}")
        if on_result is not None and not callable(on_result):
            raise TypeError("on_result must be callable")
        if warmup is not None and not callable(warmup):
            raise TypeError("warmup must be callable")
        cfg = dataclasses.replace(config or PoolConfig(), **kwargs)
        for nm in ("workers", "max_workers", "batch_max", "batch_min", "queue_capacity",
                   "response_capacity"):
            v = getattr(cfg, nm)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{nm} must be an int, not {type(v).__name__}")
            if v < 0:
                raise errors.InvalidArgument(f"{nm} must be >= 0")
        if cfg.max_workers == 0 or cfg.max_workers > 4096:
            raise errors.InvalidArgument(f"max_workers must be in [1, 4096], got "
                                         f"{cfg.max_workers}")
        if cfg.workers > cfg.max_workers:
            raise errors.InvalidArgument(f"workers must be in [0, max_workers={cfg.max_workers}]"
                                         f", got {cfg.workers}")
        if cfg.batch_max > 4096:
            raise errors.InvalidArgument(f"batch_max must be in [0, 4096], got {cfg.batch_max}")
        if cfg.queue_capacity == 0 or cfg.queue_capacity > 2**32:
            raise errors.InvalidArgument(f"queue_capacity must be in [1, 2**32], got "
                                         f"{cfg.queue_capacity}")
        if warmup_timeout is not None:
            to_ns(warmup_timeout, "warmup_timeout")
        self.config = cfg
        self._input = Channel(cfg.queue_capacity, ctypes.sizeof(swarm_task), allocator=allocator)
        st = _PoolState(on_result, warmup)
        key = next(_pool_keys)
        o = swarm_pool_opts()
        errors.check(_swarm_pool_opts_init(byref(o)))
        o.size = ctypes.sizeof(swarm_pool_opts)
        o.workers = cfg.workers
        o.max_workers = cfg.max_workers
        o.batch_max = cfg.batch_max
        o.batch_min = cfg.batch_min
        if cfg.batch_linger is not None:
            o.batch_linger_ns = to_ns(cfg.batch_linger)
        o.input = self._input._ptr
        ep = engine._enter()
        try:
            errors.check(_swarm_engine_retain(ep))
        finally:
            engine._leave()
        o.engine = ep
        self._results = Channel(_RESULT_CAPACITY, ctypes.sizeof(swarm_pool_result),
                                allocator=allocator)
        o.results = self._results._ptr
        if warmup is not None:
            o.warmup = _WARMUP_TRAMP
            o.warmup_ctx = key
        o.response_capacity = cfg.response_capacity
        o.alloc = alloc_arg(allocator)
        _pools[key] = weakref.ref(st)
        out = c_void_p()
        rc = _swarm_pool_create(byref(out), byref(o))
        if rc < 0:
            _pools.pop(key, None)
            _swarm_engine_destroy(ep)
            self._input.destroy()
            self._results.destroy()
            errors.raise_for(rc, "swarm_pool_create")
        # The finalizer holds only what C needs until the pool is destroyed (the input channel,
        # the allocator) and a weak reference to the state: no user object, so a service that
        # owns its Pool (and is referenced from on_result or the engine) stays collectable.
        self._collector = threading.Thread(target=_collect,
                                           args=(key, out.value, self._results._ptr),
                                           name="libswarm-pool-results", daemon=True)
        self._collector.start()
        super().__init__(out.value, _destroy_pool, key, ep, weakref.ref(st), self._results,
                         self._collector, self._input, allocator)
        self.engine = engine
        self._st = st
        self._st_key = key
        self._ids = itertools.count(1)
        self._stopped = False
        self._left: List[_Task] = []
        if warmup is not None and cfg.workers:
            self._await_warmup(warmup_timeout)

    def _await_warmup(self, timeout: Optional[float]) -> None:
        """Wait until no initial worker is starting; if a warm-up failed, close the pool and
        raise that failure (a pool never silently runs with no ready worker)."""
        end = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while True:
            s = self.stats()
            if self._st.warmup_errors or s["starting"] == 0:
                break
            if end is not None and time.monotonic() >= end:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        if self._st.warmup_errors:
            exc = self._st.warmup_errors[0]
            self.close()
            if isinstance(exc, errors.SwarmError):
                raise exc
            raise errors.Unavailable(f"pool warm-up failed: {type(exc).__name__}: {exc}") \
                from exc

    # -- work --------------------------------------------------------------------------------
    def submit(self, payload: Any = b"", *, id: Optional[int] = None, user: Any = None,
               priority: int = 0, deadline_ns: int = 0, timeout: Optional[float] = None,
               block: Optional[float] = None) -> "concurrent.futures.Future[PoolResult]":
        """Queue one task; returns a Future completed with its :class:`PoolResult`.

        ``timeout`` (s) sets the engine deadline; ``block`` (s, None: forever) bounds the wait
        for room in the queue (TimedOut / WouldBlock when it elapses). Raises Closed once the
        pool is stopping. Blocking: while the queue is full, GIL released; any thread.
        """
        if self._ptr is None or self._closing:
            raise self._closed_error()
        if type(payload) is not bytes:
            if isinstance(payload, str):
                payload = payload.encode()
            elif isinstance(payload, (bytes, bytearray, memoryview)):
                payload = bytes(payload)
            else:
                raise TypeError(f"payload must be bytes or str, not {type(payload).__name__}")
        tid = next(self._ids) if id is None else id
        if type(tid) is not int:
            if isinstance(tid, bool) or not isinstance(tid, int):
                raise TypeError(f"id must be an int, not {type(tid).__name__}")
            tid = int(tid)
        if not 0 <= tid <= 0xFFFFFFFFFFFFFFFF:
            raise errors.InvalidArgument(f"id must be in [0, 2**64-1], got {tid}")
        if type(priority) is not int or not -2**31 <= priority < 2**31:
            if isinstance(priority, bool) or not isinstance(priority, int):
                raise TypeError(f"priority must be an int, not {type(priority).__name__}")
            if not -2**31 <= priority < 2**31:
                raise errors.InvalidArgument(f"priority must be in [-2**31, 2**31-1], got "
                                             f"{priority}")
            priority = int(priority)
        if type(deadline_ns) is not int or not 0 <= deadline_ns < 2**63:
            if isinstance(deadline_ns, bool) or not isinstance(deadline_ns, int) or \
                    not 0 <= deadline_ns < 2**63:
                raise errors.InvalidArgument(f"deadline_ns must be an int in [0, 2**63-1], "
                                             f"got {deadline_ns!r}")
            deadline_ns = int(deadline_ns)
        fut: "concurrent.futures.Future[PoolResult]" = concurrent.futures.Future()
        key = next(_eng._task_keys)
        now = _now_ns()
        dl = deadline_ns
        if timeout is not None:
            rel = min(now + to_ns(timeout, "timeout"), 2**63 - 1)
            dl = rel if dl == 0 else min(dl, rel)
        # The swarm_task, packed in one call (same bytes as the ctypes mirror; checked at
        # import). The payload pointer is the bytes object's own buffer, kept alive by _Task.
        elem = _TASK.pack(tid, id_(payload) + _BYTES_DATA if payload else 0, len(payload), key,
                          now, dl, priority, 0, 0)
        task = _Task(tid, payload, user, fut)
        self._st.tasks[key] = task
        _all_tasks[key] = task
        rc = -99
        try:
            if block is None:
                inp = self._input
                inflight = inp._inflight          # the channel's fast path, inlined
                inflight.append(None)
                try:
                    p = inp._ptr
                    rc = _try_send(p, elem) if p is not None and not inp._closing else -99
                finally:
                    inflight.pop()
                if rc == -99:
                    rc = inp._raw_send(elem, None, None, what="submit")
                elif rc == _EAGAIN:
                    rc = inp._raw_send(elem, None, None, what="submit")
            else:
                rc = self._input._raw_send(elem, block, None, what="submit")
        except Interrupted as it:
            # Ctrl-C while waiting for room: the task is either queued whole (it will run;
            # its future is attached) or not at all.
            rc = it.rc
            ki = KeyboardInterrupt()
            ki.sent = 1 if rc >= 0 else 0  # type: ignore[attr-defined]
            ki.future = fut if rc >= 0 else None  # type: ignore[attr-defined]
            raise ki from None
        finally:
            if rc < 0:
                self._st.pop(key)
        if rc < 0:
            errors.raise_send(rc)
        return fut

    async def submit_async(self, payload: Any = b"", **kwargs: Any) -> PoolResult:
        """``await pool.submit_async(payload)`` (asyncio): queue the task without blocking the
        event loop (waiting on the loop while the queue is full) and await its result. No
        thread per waiter: the future completes through ``call_soon_threadsafe``. Cancelling
        the awaiting task cancels the task if it is still queued (a Python engine skips it);
        once running, it runs to the end and its result is dropped. Raises as
        ``future.result()`` does. Keywords as :meth:`submit` (``block`` is not accepted)."""
        if "block" in kwargs:
            raise TypeError("submit_async does not take block=; cancel the awaiting task")
        delay = 0.0
        while True:
            try:
                fut = self.submit(payload, block=0, **kwargs)
                break
            except errors.ChannelFull:
                pass
            await asyncio.sleep(delay)
            delay = min(max(delay * 2, 0.00005), 0.002)
        return await asyncio.wrap_future(fut)

    def map(self, payloads: Iterable[Any], timeout: Optional[float] = None) -> List[PoolResult]:
        """Submit every payload and wait for all results, in order: one PoolResult per
        payload, failures included (check ``.ok``; nothing is raised for a failed task).
        Blocking."""
        futs = [self.submit(p) for p in payloads]
        out = []
        for f in futs:
            exc = f.exception(timeout)
            out.append(f.result() if exc is None else exc.result)  # type: ignore[attr-defined]
        return out

    def resize(self, n: int) -> None:
        """Set the number of workers (``swarm_pool_resize``): OutOfRange above max_workers,
        WrongState once stopping. Any thread; briefly blocking (thread start/join)."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError("n must be an int")
        if n < 0:
            raise errors.InvalidArgument("n must be >= 0")
        errors.check(self._call(_swarm_pool_resize, n))

    @property
    def target(self) -> int:
        """The current target worker count (``swarm_pool_target``)."""
        return int(self._call(_swarm_pool_target))

    def _call(self, fn: Callable[..., int], *args: Any) -> int:
        p = self._enter()
        try:
            return fn(p, *args)
        finally:
            self._leave()

    def stats(self) -> Dict[str, Any]:
        """A snapshot (``swarm_pool_get_stats``) as a dict: target, live, starting, ready, busy,
        idle, retiring, stopped, in_flight, queued, taken, completed, failed, batches, started,
        retired, start_failures, queue-wait and service-time percentiles (ns)..."""
        s = swarm_pool_stats()
        s.size = ctypes.sizeof(swarm_pool_stats)
        errors.check(self._call(_swarm_pool_get_stats, byref(s)))
        d = stats_dict(s)
        d["pending_python"] = len(self._st.tasks)
        return d

    @property
    def pending(self) -> int:
        """Tasks submitted whose result has not been delivered yet."""
        return len(self._st.tasks)

    def observation(self, target_per_worker: float, activation: float = 0.0):
        """The pool's state as a policy :class:`~swarm.Observation` (``swarm_pool_observe``):
        current = target workers, ready/starting without the retiring ones, one TOTAL metric of
        queued plus in-flight tasks."""
        from .policy import Metric, Observation
        o = swarm_policy_obs()
        o.size = ctypes.sizeof(swarm_policy_obs)
        errors.check(self._call(_swarm_pool_observe, float(target_per_worker), float(activation),
                                byref(o)))
        m = o.metrics[0]
        return Observation(o.current_replicas, [Metric(m.value, m.target, in_flight=m.in_flight,
                                                       activation=m.activation)],
                           ready=o.ready_replicas, starting=o.starting_replicas)

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self, timeout: Optional[float] = None) -> List[Tuple[int, bytes, Any]]:
        """Stop (``swarm_pool_stop``): close the queue, run what is queued until ``timeout``
        (None: drain everything), then retire and join every worker. Tasks not run are returned
        as ``(id, payload, user)`` and their futures fail with Canceled. WrongState if already
        stopped. Blocking: until the workers have left (GIL released)."""
        self._no_self_wait("stop")
        tns = to_ns(timeout)
        cap = max(1, self.config.queue_capacity)
        left = (swarm_task * cap)()
        n_left = c_uint64()
        def stop_and_deliver(p: int) -> int:
            rc = _swarm_pool_stop(p, tns, left, cap, byref(n_left))
            if rc >= 0:       # every worker has left: deliver every result before returning
                _finish_results(self._st_key, p, self._results._ptr, self._collector)
            return rc
        n = errors.check(self._interruptible(lambda: self._call(stop_and_deliver), "stop"))
        self._stopped = True
        out: List[Tuple[int, bytes, Any]] = []
        tasks = [left[i] for i in range(n)]
        # Any beyond the buffer stay in the (closed) input channel: take them too.
        buf = swarm_task()
        while True:
            rc = self._input._raw_try_recv(byref(buf))
            if rc < 0:
                break
            tasks.append(swarm_task.from_buffer_copy(buf))
        for t in tasks:
            tk = self._st.pop(t.user or 0)
            if tk is None:
                continue
            if not tk.future.done():
                if tk.started or tk.future.set_running_or_notify_cancel():
                    tk.future.set_exception(errors.Canceled("pool stopped before the task ran"))
            out.append((tk.id, tk.payload, tk.user))
        return out

    def close(self) -> None:
        """Stop at once if still running (queued tasks are not run; their futures fail with
        Canceled), join the workers, free the pool and its queue. Idempotent. Blocking: until
        in-flight engine calls return. WrongState from a pool callback or engine (it would
        wait for its own worker): use ``shutdown(wait=False)`` there."""
        if self._alive:
            self._no_self_wait("close")
        self._interruptible(self._release, "close")

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """concurrent.futures.Executor.shutdown: no new tasks; ``cancel_futures`` cancels the
        futures of tasks not yet started (they are skipped); ``wait`` runs the rest to the end
        and frees the pool before returning, else that happens on a helper thread.
        Idempotent."""
        if not self._alive:
            return
        if cancel_futures:
            for t in list(self._st.tasks.values()):
                if not t.started:
                    t.future.cancel()
        if not wait:
            threading.Thread(target=self._drain_and_close, name="libswarm-pool-shutdown",
                             daemon=True).start()
            return
        self._no_self_wait("shutdown(wait=True)")
        self._drain_and_close()

    def _drain_and_close(self) -> None:
        try:
            if not self._stopped:
                self.stop()
        except (errors.WrongState, errors.HandleClosed):
            pass
        finally:
            self._release()

    def _no_self_wait(self, what: str) -> None:
        if _eng.in_callback() or on_library_thread() or _on_result_thread():
            raise errors.WrongState(
                f"Pool.{what} called from inside a pool callback or engine (a library worker "
                f"thread): it would wait for that worker to finish, i.e. for itself. Call it "
                f"from another thread, or use shutdown(wait=False)")

    def _interruptible(self, fn: Callable[[], Any], what: str) -> Any:
        """Run a long, non-resumable blocking call (stop, close): on the main thread it runs
        on a helper thread while this one waits in an interruptible way, so Ctrl-C raises
        KeyboardInterrupt at once; the operation itself completes in the background."""
        if threading.current_thread() is not threading.main_thread():
            return fn()
        box: List[Any] = []
        done = threading.Event()

        def run() -> None:
            try:
                box.append((True, fn()))
            except BaseException as exc:  # handed to the caller
                box.append((False, exc))
            finally:
                done.set()
        th = threading.Thread(target=run, name=f"libswarm-pool-{what}", daemon=True)
        th.start()
        done.wait()
        ok, val = box[0]
        if ok:
            return val
        raise val

    def _wake(self, ptr: int) -> None:
        # Wake submitters blocked on a full queue; the destroy that follows stops the workers.
        p = self._input._ptr
        if p is not None:
            from .chan import _swarm_chan_close
            _swarm_chan_close(p)
