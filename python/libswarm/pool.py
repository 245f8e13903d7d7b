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
queue is full unless a timeout says otherwise. Results are delivered on the C worker thread that
ran the task, holding the GIL: the future is completed there and ``on_result(result)`` (if given)
is called there; exceptions from ``on_result`` are logged, never propagated into C. ``stop`` and
``close`` block (GIL released) until every worker has left.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import itertools
import logging
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_int, c_int32, c_int64, c_size_t,
                    c_uint32, c_uint64, c_void_p)
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from . import errors
from ._handle import _Handle, to_ns
from ._lib import cfunc
from .chan import Channel, stats_dict
from .common import Allocator, alloc_arg, now_ns, swarm_allocator
from .engine import (Engine, _swarm_engine_destroy, _swarm_engine_retain,
                     _swarm_response_data, _swarm_response_error_message)

__all__ = ["Pool", "PoolResult", "PoolConfig"]

log = logging.getLogger("swarm")


class swarm_task(Structure):
    _fields_ = [
        ("id", c_uint64), ("payload", c_void_p), ("payload_len", c_uint64), ("user", c_void_p),
        ("enqueued_ns", c_int64), ("deadline_ns", c_int64), ("priority", c_int32),
        ("reserved_", c_uint32),
    ]


class swarm_pool_result(Structure):
    _fields_ = [
        ("size", c_uint32), ("status", c_int32), ("worker", c_uint32), ("batch", c_uint32),
        ("task", swarm_task), ("start_ns", c_int64), ("end_ns", c_int64),
        ("output_len", c_uint64), ("response", c_void_p),
    ]


RESULT_FN = CFUNCTYPE(None, c_void_p, POINTER(swarm_pool_result))
WARMUP_FN = CFUNCTYPE(c_int, c_void_p, c_uint32, c_void_p)


class swarm_pool_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("workers", c_uint32), ("max_workers", c_uint32),
        ("batch_max", c_uint32), ("batch_min", c_uint32), ("reserved_", c_uint32),
        ("batch_linger_ns", c_int64), ("input", c_void_p), ("engine", c_void_p),
        ("on_result", RESULT_FN), ("result_ctx", c_void_p), ("results", c_void_p),
        ("warmup", WARMUP_FN), ("warmup_ctx", c_void_p), ("response_capacity", c_uint64),
        ("alloc", POINTER(swarm_allocator)),
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
        ("service_max_ns", c_int64),
    ]


@cfunc("swarm_pool_opts_init", [POINTER(swarm_pool_opts)], c_int)
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


@cfunc("swarm_pool_get_stats", [c_void_p, POINTER(swarm_pool_stats)], c_int)
def _swarm_pool_get_stats(p, s) -> int:
    """Snapshot."""


@cfunc("swarm_pool_target", [c_void_p], c_uint32)
def _swarm_pool_target(p) -> int:
    """Target worker count."""


@dataclasses.dataclass
class PoolResult:
    """The outcome of one task: ``status`` 0 or a negative swarm_err, the engine's ``output``
    (copied), ``error`` message, the worker slot, batch size and engine-call times (ns)."""
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
    __slots__ = ("id", "payload", "user", "future")

    def __init__(self, id_: int, payload: bytes, user: Any,
                 future: "concurrent.futures.Future[PoolResult]") -> None:
        self.id = id_
        self.payload = payload
        self.user = user
        self.future = future


class _PoolState:
    """What the C callbacks need: reachable from the integer ctx key, never from the Pool."""

    def __init__(self, on_result: Optional[Callable[[PoolResult], Any]],
                 warmup: Optional[Callable[[int], Any]]) -> None:
        self.tasks: Dict[int, _Task] = {}
        self.on_result = on_result
        self.warmup = warmup
        self.delivered = 0
        self.duplicates = 0


_pools: Dict[int, _PoolState] = {}
_pool_keys = itertools.count(1)


def _result_tramp(ctx: Optional[int], res_p: Any) -> None:
    try:
        st = _pools.get(ctx or 0)
        if st is None or not res_p:
            return
        r = res_p.contents
        t = st.tasks.pop(r.task.user or 0, None)
        if t is None:
            st.duplicates += 1
            log.error("pool delivered a task the table does not hold (id %d)", r.task.id)
            return
        out = b""
        err = ""
        if r.response:
            n = c_size_t()
            p = _swarm_response_data(r.response, byref(n))
            out = ctypes.string_at(p, n.value) if p and n.value else b""
            err = (_swarm_response_error_message(r.response) or b"").decode("utf-8", "replace")
        pr = PoolResult(t.id, r.status, out, err, r.worker, r.batch, r.start_ns, r.end_ns,
                        r.task.enqueued_ns, t.user)
        st.delivered += 1
        if not t.future.done():
            t.future.set_result(pr)
        if st.on_result is not None:
            st.on_result(pr)
    except BaseException:  # never into C
        log.exception("pool result callback raised")


def _warmup_tramp(ctx: Optional[int], worker: int, cancel: Optional[int]) -> int:
    try:
        st = _pools.get(ctx or 0)
        if st is None or st.warmup is None:
            return 0
        rc = st.warmup(worker)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc < 0:
            return rc
        return 0
    except BaseException as exc:
        from .engine import _exc_code
        log.exception("pool warm-up hook raised")
        return _exc_code(exc)


_RESULT_TRAMP = RESULT_FN(_result_tramp)
_WARMUP_TRAMP = WARMUP_FN(_warmup_tramp)


def _destroy_pool(ptr: int, key: int, engine_ptr: int, *_keep: Any) -> None:
    _swarm_pool_destroy(ptr)      # stops (joins workers) if needed
    _swarm_engine_destroy(engine_ptr)   # the reference the pool took
    st = _pools.pop(key, None)
    if st is not None:
        for t in list(st.tasks.values()):
            if not t.future.done():
                t.future.set_exception(errors.Canceled("pool destroyed before the task ran"))
        st.tasks.clear()


class Pool(_Handle):
    """An elastic pool of C worker threads serving ``engine`` (``swarm_pool``).

    Args:
        engine: a :class:`~swarm.Engine` (Python engines included). The pool holds its own
            reference, so closing the Engine object early is safe.
        config / keywords: :class:`PoolConfig` fields (workers, max_workers, batch_max,
            batch_min, batch_linger, queue_capacity, response_capacity).
        on_result: optional ``on_result(PoolResult)``, called once per task on the worker
            thread (GIL held).
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
        o.on_result = _RESULT_TRAMP
        o.result_ctx = key
        if warmup is not None:
            o.warmup = _WARMUP_TRAMP
            o.warmup_ctx = key
        o.response_capacity = cfg.response_capacity
        o.alloc = alloc_arg(allocator)
        _pools[key] = st
        out = c_void_p()
        rc = _swarm_pool_create(byref(out), byref(o))
        if rc < 0:
            _pools.pop(key, None)
            _swarm_engine_destroy(ep)
            self._input.destroy()
            errors.raise_for(rc, "swarm_pool_create")
        super().__init__(out.value, _destroy_pool, key, ep, self._input, engine, allocator)
        self.engine = engine
        self._st = st
        self._ids = itertools.count(1)
        self._keys = itertools.count(1)
        self._stopped = False
        self._left: List[_Task] = []

    # -- work --------------------------------------------------------------------------------
    def submit(self, payload: Any = b"", *, id: Optional[int] = None, user: Any = None,
               priority: int = 0, deadline_ns: int = 0, timeout: Optional[float] = None,
               block: Optional[float] = None) -> "concurrent.futures.Future[PoolResult]":
        """Queue one task; returns a Future completed with its :class:`PoolResult`.

        ``timeout`` (s) sets the engine deadline; ``block`` (s, None: forever) bounds the wait
        for room in the queue (TimedOut / WouldBlock when it elapses). Raises Closed once the
        pool is stopping. Blocking: while the queue is full, GIL released; any thread.
        """
        if isinstance(payload, str):
            payload = payload.encode()
        elif isinstance(payload, (bytearray, memoryview)):
            payload = bytes(payload)
        elif not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes or str, not {type(payload).__name__}")
        tid = next(self._ids) if id is None else id
        if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0:
            raise TypeError("id must be a non-negative int")
        fut: "concurrent.futures.Future[PoolResult]" = concurrent.futures.Future()
        fut.set_running_or_notify_cancel()
        key = next(self._keys)
        t = swarm_task()
        t.id = tid
        t.payload = ctypes.cast(ctypes.c_char_p(payload), c_void_p).value if payload else None
        t.payload_len = len(payload)
        t.user = key
        t.enqueued_ns = now_ns()
        dl = int(deadline_ns)
        if timeout is not None:
            rel = t.enqueued_ns + to_ns(timeout)
            dl = rel if dl == 0 else min(dl, rel)
        t.deadline_ns = dl
        t.priority = int(priority)
        self._st.tasks[key] = _Task(tid, payload, user, fut)
        rc = -99
        try:
            rc = self._input._raw_send(ctypes.string_at(ctypes.addressof(t), ctypes.sizeof(t)),
                                      block, None)
        finally:
            if rc < 0:
                self._st.tasks.pop(key, None)
        errors.check(rc)
        return fut

    def map(self, payloads: Iterable[Any], timeout: Optional[float] = None) -> List[PoolResult]:
        """Submit every payload and wait for all results, in order. Blocking."""
        futs = [self.submit(p) for p in payloads]
        return [f.result(timeout) for f in futs]

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
        """The pool's state as a policy :class:`~swarm.Observation`: current = target workers,
        ready/starting from the stats, one TOTAL metric of queued plus in-flight tasks."""
        from .policy import Metric, Observation
        s = self.stats()
        cur = s["target"]
        ready = min(s["ready"], cur)
        starting = min(s["starting"], cur - ready)
        return Observation(cur, [Metric(float(s["queued"]), float(target_per_worker),
                                        in_flight=float(s["in_flight"]),
                                        activation=activation)],
                           ready=ready, starting=starting)

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self, timeout: Optional[float] = None) -> List[Tuple[int, bytes, Any]]:
        """Stop (``swarm_pool_stop``): close the queue, run what is queued until ``timeout``
        (None: drain everything), then retire and join every worker. Tasks not run are returned
        as ``(id, payload, user)`` and their futures fail with Canceled. WrongState if already
        stopped. Blocking: until the workers have left (GIL released)."""
        tns = to_ns(timeout)
        cap = max(1, self.config.queue_capacity)
        left = (swarm_task * cap)()
        n_left = c_uint64()
        n = errors.check(self._call(_swarm_pool_stop, tns, left, cap, byref(n_left)))
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
            tk = self._st.tasks.pop(t.user or 0, None)
            if tk is None:
                continue
            if not tk.future.done():
                tk.future.set_exception(errors.Canceled("pool stopped before the task ran"))
            out.append((tk.id, tk.payload, tk.user))
        return out

    def close(self) -> None:
        """Stop at once if still running (queued tasks are not run; their futures fail with
        Canceled), join the workers, free the pool and its queue. Idempotent. Blocking: until
        in-flight engine calls return."""
        self._release()

    def _wake(self, ptr: int) -> None:
        # Wake submitters blocked on a full queue; the destroy that follows stops the workers.
        p = self._input._ptr
        if p is not None:
            from .chan import _swarm_chan_close
            _swarm_chan_close(p)
