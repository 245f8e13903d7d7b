# SPDX-License-Identifier: MIT
"""The reconcile loop (include/swarm/reconcile.h): observe -> policy.decide -> actuate.

::

    loop = swarm.ReconcileLoop(policy, observe=lambda: pool.observation(target_per_worker=4),
                               actuate=lambda n, decision: pool.resize(n), interval=0.5)
    loop.start()          # C thread; or call loop.step() from your own event loop

``observe()`` returns a :class:`~swarm.Observation`; ``actuate(desired, decision)`` makes the
actual count ``desired`` (``decision`` is a :class:`~swarm.Decision` with its explanation). Both
run on the stepping thread (the loop's C thread after :meth:`start`, holding the GIL for the
callback; the caller's thread for :meth:`step`). An exception in either becomes the step's error
code (SwarmError.code, ``exc.swarm_code`` or SWARM_EINTERNAL), is logged, and makes the loop
back off; it never reaches C.

While the loop's thread runs it owns the policy: direct calls on that Policy raise WrongState.
"""
from __future__ import annotations

import ctypes
import threading
import dataclasses
import itertools
import logging
from ctypes import CFUNCTYPE, POINTER, Structure, byref, c_double, c_int, c_int32, c_int64, \
    c_uint32, c_uint64, c_void_p
from typing import Any, Callable, Dict, Optional

from . import errors
from ._handle import _Handle, on_library_thread
from ._lib import cfunc
from .chan import stats_dict
from .common import Allocator, alloc_arg, now_ns, swarm_allocator
from .policy import Decision, Observation, Policy, swarm_policy_decision, swarm_policy_obs

__all__ = ["ReconcileLoop", "ReconcileConfig"]

log = logging.getLogger("swarm")

OBSERVE_FN = CFUNCTYPE(c_int, c_void_p, POINTER(swarm_policy_obs))
ACTUATE_FN = CFUNCTYPE(c_int, c_void_p, c_int32, POINTER(swarm_policy_decision))


class swarm_reconcile_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("sliding", c_uint32), ("policy", c_void_p), ("observe", OBSERVE_FN),
        ("actuate", ACTUATE_FN), ("user", c_void_p), ("interval_ns", c_int64),
        ("jitter", c_double), ("backoff_base_ns", c_int64), ("backoff_factor", c_double),
        ("backoff_cap_ns", c_int64), ("backoff_jitter", c_double),
        ("actuate_always", c_uint32), ("fail_after", c_uint32), ("seed", c_uint64),
        ("alloc", POINTER(swarm_allocator)), ("max_replicas", c_int32), ("reserved_", c_uint32),
    ]


class swarm_reconcile_pool_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("manual", c_uint32), ("pool", c_void_p), ("policy", c_void_p),
        ("target_per_worker", c_double), ("activation", c_double),
        ("loop", POINTER(swarm_reconcile_opts)),
    ]


class swarm_reconcile_stats(Structure):
    _fields_ = [
        ("size", c_uint32), ("running", c_uint32), ("consecutive_errors", c_uint32),
        ("last_error", c_int32), ("last_desired", c_int32), ("last_actuated", c_int32),
        ("ticks", c_uint64), ("errors", c_uint64), ("observe_errors", c_uint64),
        ("actuate_errors", c_uint64), ("decide_errors", c_uint64), ("decisions", c_uint64),
        ("actuations", c_uint64), ("kicks", c_uint64), ("last_tick_ns", c_int64),
        ("next_tick_ns", c_int64), ("backoff_ns", c_int64), ("last_lag_ns", c_int64),
        ("max_lag_ns", c_int64), ("last_step_ns", c_int64),
        ("decisions_by_reason", c_uint64 * 32),  # SWARM_RECONCILE_REASONS
    ]


@cfunc("swarm_reconcile_opts_init", [POINTER(swarm_reconcile_opts)], c_int)
def _swarm_reconcile_opts_init(o) -> int:
    """Defaults + size."""


@cfunc("swarm_reconcile_create", [POINTER(c_void_p), POINTER(swarm_reconcile_opts)], c_int)
def _swarm_reconcile_create(out, o) -> int:
    """Create a loop (not started)."""


@cfunc("swarm_reconcile_destroy", [c_void_p], None)
def _swarm_reconcile_destroy(r) -> None:
    """Stop and free."""


@cfunc("swarm_reconcile_step", [c_void_p, c_int64, POINTER(c_int64)], c_int)
def _swarm_reconcile_step(r, now, next_ns) -> int:
    """One tick on the caller's thread."""


@cfunc("swarm_reconcile_start", [c_void_p], c_int)
def _swarm_reconcile_start(r) -> int:
    """Start the loop's thread."""


@cfunc("swarm_reconcile_stop", [c_void_p], c_int)
def _swarm_reconcile_stop(r) -> int:
    """Stop and join (GIL released)."""


@cfunc("swarm_reconcile_kick", [c_void_p], c_int)
def _swarm_reconcile_kick(r) -> int:
    """Make the next tick due now."""


@cfunc("swarm_reconcile_get_stats", [c_void_p, POINTER(swarm_reconcile_stats)], c_int)
def _swarm_reconcile_get_stats(r, s) -> int:
    """Counters."""


@cfunc("swarm_reconcile_last_decision", [c_void_p, POINTER(swarm_policy_decision)], c_int)
def _swarm_reconcile_last_decision(r, d) -> int:
    """Last decision; EAGAIN before the first."""


@cfunc("swarm_reconcile_pool_opts_init", [POINTER(swarm_reconcile_pool_opts)], c_int)
def _swarm_reconcile_pool_opts_init(o) -> int:
    """Defaults + size."""


@cfunc("swarm_reconcile_create_for_pool", [POINTER(c_void_p), POINTER(swarm_reconcile_pool_opts)],
       c_int)
def _swarm_reconcile_create_for_pool(out, o) -> int:
    """A loop that autoscales a pool (the C counterpart of ReconcileLoop.for_pool)."""


@dataclasses.dataclass
class ReconcileConfig:
    """Mirror of ``swarm_reconcile_opts`` (seconds; None: the C default)."""
    interval: Optional[float] = None
    jitter: float = 0.0
    sliding: bool = False
    backoff_base: Optional[float] = None
    backoff_factor: Optional[float] = None
    backoff_cap: Optional[float] = None
    backoff_jitter: Optional[float] = None
    actuate_always: bool = False
    fail_after: int = 0
    seed: int = 0
    max_replicas: int = 0   # the actuator's bound: decisions above it are lowered (explained)


class _LoopState:
    def __init__(self, observe: Callable[[], Observation],
                 actuate: Callable[[int, Decision], Any]) -> None:
        self.observe = observe
        self.actuate = actuate
        self.n_metrics = 0


_loops: Dict[int, _LoopState] = {}
_loop_keys = itertools.count(1)


def _observe_tramp(ctx: Optional[int], obs_p: Any) -> int:
    st = _loops.get(ctx or 0)
    if st is None:
        return errors.InternalError.code
    try:
        ob = st.observe()
        if not isinstance(ob, Observation):
            raise TypeError(f"observe() must return a swarm.Observation, not "
                            f"{type(ob).__name__}")
        ob.fill(obs_p.contents)
        st.n_metrics = len(ob.metrics)
        return 0
    except BaseException as exc:
        from .engine import _exc_code
        log.exception("reconcile observe() raised")
        return _exc_code(exc)


def _actuate_tramp(ctx: Optional[int], desired: int, dec_p: Any) -> int:
    st = _loops.get(ctx or 0)
    if st is None:
        return errors.InternalError.code
    try:
        d = Decision.from_c(dec_p.contents, st.n_metrics or None) if dec_p else None
        rc = st.actuate(desired, d)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc < 0:
            return rc
        return 0
    except BaseException as exc:
        from .engine import _exc_code
        log.exception("reconcile actuate() raised")
        return _exc_code(exc)


_OBSERVE_TRAMP = OBSERVE_FN(_observe_tramp)
_ACTUATE_TRAMP = ACTUATE_FN(_actuate_tramp)


def _destroy_loop(ptr: int, key: int, policy: Policy, *_keep: Any) -> None:
    if on_library_thread():
        # Collected on a library thread (maybe this loop's own): joining it from here could
        # wait for itself. Finish on a helper thread.
        threading.Thread(target=_destroy_loop, args=(ptr, key, policy) + _keep,
                         name="libswarm-loop-reaper", daemon=True).start()
        return
    _swarm_reconcile_destroy(ptr)  # stops and joins the thread first
    _loops.pop(key, None)
    policy._owned_by_loop = max(0, getattr(policy, "_owned_by_loop", 0) - 1)


def _ns(v: Optional[float]) -> int:
    return 0 if v is None else int(v * 1e9)


class ReconcileLoop(_Handle):
    """A reconcile loop (``swarm_reconcile``) over a :class:`~swarm.Policy` and two Python
    callbacks. See the module docstring for threading. Raises InvalidArgument for a bad config
    (non-positive interval, jitter outside 0..10, cap below base, factor below 1)."""

    _kind = "reconcile loop"
    _shutdown_rank = 0

    def __init__(self, policy: Policy, observe: Callable[[], Observation],
                 actuate: Callable[[int, Decision], Any],
                 config: Optional[ReconcileConfig] = None, *,
                 allocator: Optional[Allocator] = None, **kwargs: Any) -> None:
        if not isinstance(policy, Policy):
            raise TypeError("policy must be a swarm.Policy")
        if not callable(observe) or not callable(actuate):
            raise TypeError("observe and actuate must be callable")
        cfg = dataclasses.replace(config or ReconcileConfig(), **kwargs)
        o = swarm_reconcile_opts()
        errors.check(_swarm_reconcile_opts_init(byref(o)))
        o.size = ctypes.sizeof(swarm_reconcile_opts)
        o.sliding = 1 if cfg.sliding else 0
        pp = policy._enter()
        policy._leave()
        o.policy = pp
        o.observe = _OBSERVE_TRAMP
        o.actuate = _ACTUATE_TRAMP
        key = next(_loop_keys)
        o.user = key
        if cfg.interval is not None:
            o.interval_ns = _ns(cfg.interval)
            if o.interval_ns <= 0:
                raise errors.InvalidArgument("interval must be > 0")
        o.jitter = float(cfg.jitter)
        if cfg.backoff_base is not None:
            o.backoff_base_ns = _ns(cfg.backoff_base)
        if cfg.backoff_factor is not None:
            o.backoff_factor = float(cfg.backoff_factor)
        if cfg.backoff_cap is not None:
            o.backoff_cap_ns = _ns(cfg.backoff_cap)
        if cfg.backoff_jitter is not None:
            o.backoff_jitter = float(cfg.backoff_jitter)
        o.actuate_always = 1 if cfg.actuate_always else 0
        if isinstance(cfg.fail_after, bool) or not isinstance(cfg.fail_after, int) or \
                cfg.fail_after < 0:
            raise TypeError("fail_after must be a non-negative int")
        o.fail_after = cfg.fail_after
        o.seed = int(cfg.seed)
        if isinstance(cfg.max_replicas, bool) or not isinstance(cfg.max_replicas, int) or \
                cfg.max_replicas < 0:
            raise TypeError("max_replicas must be a non-negative int")
        o.max_replicas = cfg.max_replicas
        o.alloc = alloc_arg(allocator)
        _loops[key] = _LoopState(observe, actuate)
        out = c_void_p()
        rc = _swarm_reconcile_create(byref(out), byref(o))
        if rc < 0:
            _loops.pop(key, None)
            errors.raise_for(rc, "swarm_reconcile_create")
        super().__init__(out.value, _destroy_loop, key, policy, allocator)
        policy._owned_by_loop = getattr(policy, "_owned_by_loop", 0) + 1
        self.policy = policy
        self.config = cfg
        self._key = key
        self._running = False

    def _call(self, fn: Callable[..., int], *args: Any) -> int:
        p = self._enter()
        try:
            return fn(p, *args)
        finally:
            self._leave()

    def step(self, now: Optional[int] = None) -> int:
        """Run one tick at ``now`` (ns; default swarm.now_ns()) on this thread: observe,
        decide, actuate if needed. Returns when the next tick is due (ns). Raises the failed
        callback's (or decide's) error after recording it; WrongState while the thread runs.
        Blocking: for as long as the callbacks take."""
        nxt = c_int64()
        t = now_ns() if now is None else int(now)
        with self.policy._serial:
            rc = self._call(_swarm_reconcile_step, t, byref(nxt))
        errors.check(rc, "swarm_reconcile_step")
        return nxt.value

    def start(self) -> None:
        """Start the loop's C thread (``swarm_reconcile_start``); WrongState if running.
        Non-blocking. The policy is owned by the loop until :meth:`stop`."""
        with self.policy._serial:
            errors.check(self._call(_swarm_reconcile_start))
            self._running = True
            self.policy._loop_running = True

    def stop(self) -> None:
        """Stop and join the loop's thread (``swarm_reconcile_stop``); idempotent. Blocking:
        until a step in progress returns (GIL released, so Python callbacks can finish)."""
        errors.check(self._call(_swarm_reconcile_stop))
        self._running = False
        self.policy._loop_running = False

    def kick(self) -> None:
        """Make the next tick due now (``swarm_reconcile_kick``). Any thread; non-blocking."""
        errors.check(self._call(_swarm_reconcile_kick))

    @property
    def running(self) -> bool:
        return bool(self.stats()["running"])

    def stats(self) -> Dict[str, Any]:
        """Counters (``swarm_reconcile_get_stats``) as a dict."""
        s = swarm_reconcile_stats()
        s.size = ctypes.sizeof(swarm_reconcile_stats)
        errors.check(self._call(_swarm_reconcile_get_stats, byref(s)))
        return stats_dict(s)

    def last_decision(self) -> Optional[Decision]:
        """The last decision with its explanation, or None before the first
        (``swarm_reconcile_last_decision``)."""
        d = swarm_policy_decision()
        d.size = ctypes.sizeof(swarm_policy_decision)
        rc = self._call(_swarm_reconcile_last_decision, byref(d))
        if rc == errors.WouldBlock.code:
            return None
        errors.check(rc)
        st = _loops.get(self._key)
        return Decision.from_c(d, st.n_metrics if st and st.n_metrics else None)

    def _wake(self, ptr: int) -> None:
        if self._running:
            _swarm_reconcile_stop(ptr)
            self._running = False
            self.policy._loop_running = False

    def close(self) -> None:
        """Stop (joining the thread) and free the loop. Idempotent."""
        self._release()

    @classmethod
    def for_pool(cls, pool: Any, policy: Policy, target_per_worker: float, *,
                 activation: float = 0.0, **kwargs: Any) -> "ReconcileLoop":
        """A loop that scales ``pool``: observes its queue and in-flight work against
        ``target_per_worker`` and actuates with ``pool.resize``; decisions above the pool's
        max_workers are lowered to it (``max_replicas``), as ``swarm_reconcile_create_for_pool``
        does in C."""
        kwargs.setdefault("max_replicas", int(pool.config.max_workers))
        return cls(policy, lambda: pool.observation(target_per_worker, activation),
                   lambda n, d: pool.resize(n), **kwargs)
