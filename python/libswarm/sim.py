# SPDX-License-Identifier: MIT
"""The simulator (include/swarm/sim.h): replay an arrival-rate trace through a queueing model
driven by the real scaling policy and reconcile loop on simulated time.

    from libswarm import sim
    tr = sim.Trace.generate("flash")                      # or Trace([(0, 5), (60, 50)]),
                                                          # or Trace.parse(open(f).read())
    r = sim.simulate(tr, "hpa", startup_s=30)             # -> SimResult
    print(r.p99_wait_s, r.replica_seconds, r.flaps)
    for s in r.timeline[:3]: print(s.t_s, s.queued, s.ready)

``policy`` is ``"keda"``, ``"hpa"`` or ``"kpa"`` (upstream defaults, strict), ``"recommended"``
(SWARM_POLICY_LOAD), ``"oracle"``, ``"fixed:N"``, or a :class:`swarm.policy.PolicyConfig`.
Everything is deterministic for a seed; nothing blocks or reads a clock, and the C call runs
without the GIL (one run of a one-hour trace takes well under a second).
"""
from __future__ import annotations

import ctypes
import dataclasses
import enum
from ctypes import (POINTER, Structure, byref, c_char_p, c_double, c_int, c_int32, c_int64,
                    c_size_t, c_uint32, c_uint64, c_void_p)
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from . import errors
from ._lib import cfunc
from .common import swarm_allocator
from .policy import Disable, HpaPath, Mode, PolicyConfig, swarm_policy_opts

__all__ = ["Trace", "Shape", "Kind", "Dist", "SimResult", "Sample", "simulate", "erlang_c",
           "erlang_servers", "parse_config"]


class Shape(enum.IntEnum):
    STEP = 1
    SINE = 2
    SPIKES = 3
    FLASH = 4
    IDLE_BURSTS = 5


class Kind(enum.IntEnum):
    POLICY = 1
    FIXED = 2
    ORACLE = 3


class Dist(enum.IntEnum):
    EXP = 0
    FIXED = 1
    LOGNORMAL = 2


# ---- struct mirrors --------------------------------------------------------------------------

class swarm_sim_point(Structure):
    _fields_ = [("t_s", c_double), ("rps", c_double)]


class swarm_sim_gen_opts(Structure):
    _fields_ = [("size", c_uint32), ("shape", c_uint32), ("base_rps", c_double),
                ("peak_rps", c_double), ("duration_s", c_double), ("period_s", c_double),
                ("burst_s", c_double), ("gap_s", c_double), ("seed", c_uint64)]


class swarm_sim_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("kind", c_uint32), ("policy", POINTER(swarm_policy_opts)),
        ("alloc", POINTER(swarm_allocator)), ("interval_ns", c_int64),
        ("fixed_replicas", c_int32), ("initial_replicas", c_int32), ("max_replicas", c_int32),
        ("concurrency", c_uint32), ("service_dist", c_uint32), ("queue_cap", c_uint32),
        ("service_mean_s", c_double), ("service_cv", c_double), ("startup_s", c_double),
        ("startup_jitter_s", c_double), ("metrics_lag_s", c_double), ("target", c_double),
        ("slo_s", c_double), ("slo_quantile", c_double), ("tail_s", c_double),
        ("flap_window_s", c_double), ("seed", c_uint64), ("no_timeline", c_uint32),
        ("pad_", c_uint32), ("on_scale", c_void_p), ("on_scale_ctx", c_void_p),
        ("warm_start", c_uint32), ("pad2_", c_uint32),
    ]


class swarm_sim_result(Structure):
    _fields_ = [
        ("size", c_uint32), ("flaps", c_uint32), ("p50_wait_s", c_double),
        ("p95_wait_s", c_double), ("p99_wait_s", c_double), ("max_wait_s", c_double),
        ("mean_wait_s", c_double), ("waited_frac", c_double), ("slo_miss_frac", c_double),
        ("slo_violation_s", c_double), ("replica_seconds", c_double), ("sim_seconds", c_double),
        ("mean_in_system", c_double), ("mean_sojourn_s", c_double), ("arrivals", c_uint64),
        ("completions", c_uint64), ("dropped", c_uint64), ("unfinished", c_uint64),
        ("max_queue", c_uint64), ("decisions", c_uint64), ("scale_events", c_uint32),
        ("peak_replicas", c_int32),
    ]


class swarm_sim_sample(Structure):
    _fields_ = [("t_s", c_double), ("rate_rps", c_double), ("arrived", c_uint32),
                ("queued", c_uint32), ("in_flight", c_uint32), ("ready", c_int32),
                ("starting", c_int32), ("desired", c_int32), ("replicas", c_int32),
                ("pad_", c_uint32)]


# ---- C declarations --------------------------------------------------------------------------

@cfunc("swarm_sim_trace_create", [POINTER(c_void_p), POINTER(swarm_sim_point), c_size_t,
                                  POINTER(swarm_allocator)], c_int)
def _swarm_sim_trace_create(out, rows, n, alloc) -> int:
    """Trace from rows (copied)."""


@cfunc("swarm_sim_trace_parse", [POINTER(c_void_p), c_char_p, c_size_t, POINTER(c_uint32),
                                 POINTER(swarm_allocator)], c_int)
def _swarm_sim_trace_parse(out, text, n, err_line, alloc) -> int:
    """Trace from CSV text."""


@cfunc("swarm_sim_gen_opts_init", [POINTER(swarm_sim_gen_opts)], c_int)
def _swarm_sim_gen_opts_init(o) -> int:
    """Defaults + size."""


@cfunc("swarm_sim_trace_generate", [POINTER(c_void_p), POINTER(swarm_sim_gen_opts),
                                    POINTER(swarm_allocator)], c_int)
def _swarm_sim_trace_generate(out, o, alloc) -> int:
    """Built-in shape."""


@cfunc("swarm_sim_trace_len", [c_void_p], c_size_t)
def _swarm_sim_trace_len(tr) -> int:
    """Rows."""


@cfunc("swarm_sim_trace_get", [c_void_p, c_size_t, POINTER(swarm_sim_point)], c_int)
def _swarm_sim_trace_get(tr, i, out) -> int:
    """Row i."""


@cfunc("swarm_sim_trace_destroy", [c_void_p], None)
def _swarm_sim_trace_destroy(tr) -> None:
    """Free a trace."""


@cfunc("swarm_sim_opts_init", [POINTER(swarm_sim_opts)], c_int)
def _swarm_sim_opts_init(o) -> int:
    """Defaults + size."""


@cfunc("swarm_sim_config_parse", [c_char_p, c_size_t, POINTER(swarm_sim_opts),
                                  POINTER(swarm_policy_opts), POINTER(c_uint32)], c_int)
def _swarm_sim_config_parse(text, n, sim, pol, err_line) -> int:
    """key = value policy config."""


@cfunc("swarm_sim_create", [POINTER(c_void_p), c_void_p, POINTER(swarm_sim_opts)], c_int)
def _swarm_sim_create(out, tr, o) -> int:
    """Create a simulation."""


@cfunc("swarm_sim_run", [c_void_p], c_int)
def _swarm_sim_run(s) -> int:
    """Run it (CPU only; releases the GIL)."""


@cfunc("swarm_sim_get_result", [c_void_p, POINTER(swarm_sim_result)], c_int)
def _swarm_sim_get_result(s, out) -> int:
    """Copy results."""


@cfunc("swarm_sim_timeline_len", [c_void_p], c_size_t)
def _swarm_sim_timeline_len(s) -> int:
    """Timeline samples."""


@cfunc("swarm_sim_get_timeline", [c_void_p, c_size_t, POINTER(swarm_sim_sample), c_size_t],
       c_int)
def _swarm_sim_get_timeline(s, first, buf, n) -> int:
    """Copy timeline samples."""


@cfunc("swarm_sim_destroy", [c_void_p], None)
def _swarm_sim_destroy(s) -> None:
    """Free a simulation."""


@cfunc("swarm_sim_erlang_c", [c_int32, c_double, POINTER(c_double)], c_int)
def _swarm_sim_erlang_c(c, a, out) -> int:
    """Erlang C."""


@cfunc("swarm_sim_erlang_servers", [c_double, c_double, c_double, c_double, c_int32,
                                    POINTER(c_int32)], c_int)
def _swarm_sim_erlang_servers(a, s, w, q, maxc, out) -> int:
    """Servers for a wait quantile."""


# ---- Pythonic layer --------------------------------------------------------------------------

class Trace:
    """An arrival-rate trace: rows ``(t_seconds, rps)``, piecewise constant. Owns a C trace,
    freed by :meth:`close` (or the garbage collector)."""

    def __init__(self, rows: Iterable[Tuple[float, float]] = (), *, _handle: int = 0) -> None:
        self._h = c_void_p(_handle or None)
        if _handle:
            return
        rs = list(rows)
        arr = (swarm_sim_point * max(1, len(rs)))()
        for i, (t, r) in enumerate(rs):
            arr[i].t_s = float(t)
            arr[i].rps = float(r)
        errors.check(_swarm_sim_trace_create(byref(self._h), arr, len(rs), None),
                     "bad trace rows (times >= 0 strictly increasing, rps >= 0)")

    @classmethod
    def parse(cls, text: Union[str, bytes]) -> "Trace":
        """Parse CSV ``t_seconds,rps`` lines. A bad row raises InvalidArgument naming its line."""
        b = text.encode() if isinstance(text, str) else bytes(text)
        h = c_void_p()
        line = c_uint32(0)
        rc = _swarm_sim_trace_parse(byref(h), b, len(b), byref(line), None)
        if rc < 0:
            errors.check(rc, f"trace line {line.value}: bad row" if line.value
                         else "trace has no rows")
        return cls(_handle=h.value)

    @classmethod
    def generate(cls, shape: Union[str, Shape], *, base_rps: float = 0, peak_rps: float = 0,
                 duration_s: float = 0, period_s: float = 0, burst_s: float = 0,
                 gap_s: float = 0, seed: int = 0) -> "Trace":
        """A built-in shape: step, sine, spikes, flash, idle-bursts (0: the shape's default)."""
        if isinstance(shape, str):
            shape = Shape[shape.upper().replace("-", "_")]
        o = swarm_sim_gen_opts()
        errors.check(_swarm_sim_gen_opts_init(byref(o)))
        o.shape = int(shape)
        o.base_rps, o.peak_rps, o.duration_s = base_rps, peak_rps, duration_s
        o.period_s, o.burst_s, o.gap_s, o.seed = period_s, burst_s, gap_s, seed
        h = c_void_p()
        errors.check(_swarm_sim_trace_generate(byref(h), byref(o), None))
        return cls(_handle=h.value)

    @property
    def rows(self) -> List[Tuple[float, float]]:
        out = []
        p = swarm_sim_point()
        for i in range(len(self)):
            errors.check(_swarm_sim_trace_get(self._h, i, byref(p)))
            out.append((p.t_s, p.rps))
        return out

    def __len__(self) -> int:
        return int(_swarm_sim_trace_len(self._h)) if self._h.value else 0

    def close(self) -> None:
        if self._h.value:
            _swarm_sim_trace_destroy(self._h)
            self._h = c_void_p()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


@dataclasses.dataclass
class Sample:
    """One timeline second (``swarm_sim_sample``)."""
    t_s: float
    rate_rps: float
    arrived: int
    queued: int
    in_flight: int
    ready: int
    starting: int
    desired: int
    replicas: int


@dataclasses.dataclass
class SimResult:
    """The outcome of :func:`simulate` (``swarm_sim_result`` fields plus the timeline)."""
    policy: str
    p50_wait_s: float
    p95_wait_s: float
    p99_wait_s: float
    max_wait_s: float
    mean_wait_s: float
    waited_frac: float
    slo_miss_frac: float
    slo_violation_s: float
    replica_seconds: float
    sim_seconds: float
    mean_in_system: float
    mean_sojourn_s: float
    arrivals: int
    completions: int
    dropped: int
    unfinished: int
    max_queue: int
    decisions: int
    flaps: int
    scale_events: int
    peak_replicas: int
    timeline: List[Sample] = dataclasses.field(default_factory=list, repr=False)


def _policy_opts(policy: Union[str, PolicyConfig], max_replicas: int, min_replicas: Optional[int],
                 slo_s: float) -> Tuple[int, Optional[swarm_policy_opts], int]:
    """(kind, policy opts or None, fixed count) for a policy name or config."""
    if isinstance(policy, PolicyConfig):
        po = policy.to_c()
    elif policy in ("keda", "hpa", "kpa"):
        cfg = PolicyConfig(mode=Mode[policy.upper()], disable=int(Disable.STRICT_UPSTREAM),
                           hpa_path=HpaPath.BEHAVIOR if policy != "kpa" else HpaPath.AUTO)
        po = cfg.to_c()
    elif policy in ("recommended", "load"):
        po = PolicyConfig(mode=Mode.LOAD, load_wait=slo_s).to_c()
    elif policy == "oracle":
        return int(Kind.ORACLE), None, 0
    elif isinstance(policy, str) and policy.startswith("fixed:"):
        return int(Kind.FIXED), None, int(policy[6:])
    else:
        raise errors.InvalidArgument(f"unknown policy {policy!r}")
    if max_replicas and (po.max_replicas == 0 or po.max_replicas > max_replicas):
        po.max_replicas = max_replicas
    if min_replicas is not None:
        po.min_replicas = min_replicas
    return int(Kind.POLICY), po, 0


def simulate(trace: Trace, policy: Union[str, PolicyConfig] = "hpa", *,
             service_s: float = 0.1, service_dist: Union[str, Dist] = Dist.EXP,
             service_cv: float = 0, concurrency: int = 1, startup_s: float = 0,
             startup_jitter_s: float = 0, metrics_lag_s: float = 0, target: float = 0,
             min_replicas: Optional[int] = None, max_replicas: int = 100,
             interval_s: float = 0, slo_s: float = 1.0, slo_quantile: float = 0,
             tail_s: Optional[float] = None, queue_cap: int = 0, seed: int = 1,
             timeline: bool = True, initial_replicas: int = 0,
             warm_start: bool = False) -> SimResult:
    """Run one simulation (``swarm_sim_create`` + ``swarm_sim_run``); see include/swarm/sim.h
    for each knob. ``interval_s`` 0 uses the mode's upstream interval; ``tail_s`` None: 600.
    Raises InvalidArgument for bad options, or when this library lacks the policy's mode."""
    if isinstance(service_dist, str):
        service_dist = Dist[service_dist.upper()]
    kind, po, fixed = _policy_opts(policy, max_replicas, min_replicas, slo_s)
    o = swarm_sim_opts()
    errors.check(_swarm_sim_opts_init(byref(o)))
    o.kind = kind
    if po is not None:
        o.policy = ctypes.pointer(po)
    o.fixed_replicas = fixed
    o.initial_replicas = initial_replicas
    o.max_replicas = max_replicas
    o.concurrency = concurrency
    o.service_dist = int(service_dist)
    o.queue_cap = queue_cap
    o.service_mean_s = service_s
    o.service_cv = service_cv
    o.startup_s = startup_s
    o.startup_jitter_s = startup_jitter_s
    o.metrics_lag_s = metrics_lag_s
    o.target = target
    o.slo_s = slo_s
    o.slo_quantile = slo_quantile
    o.tail_s = 0 if tail_s is None else (tail_s if tail_s > 0 else -1)
    o.interval_ns = int(round(interval_s * 1e9))
    o.seed = seed
    o.no_timeline = 0 if timeline else 1
    o.warm_start = 1 if warm_start else 0
    s = c_void_p()
    errors.check(_swarm_sim_create(byref(s), trace._h, byref(o)),
                 f"cannot simulate {policy!r}")
    try:
        errors.check(_swarm_sim_run(s))
        r = swarm_sim_result()
        r.size = ctypes.sizeof(r)
        errors.check(_swarm_sim_get_result(s, byref(r)))
        samples: List[Sample] = []
        n = int(_swarm_sim_timeline_len(s))
        if n:
            buf = (swarm_sim_sample * n)()
            got = errors.check(_swarm_sim_get_timeline(s, 0, buf, n))
            names = [f[0] for f in swarm_sim_sample._fields_ if f[0] != "pad_"]
            samples = [Sample(*(getattr(buf[i], k) for k in names)) for i in range(got)]
    finally:
        _swarm_sim_destroy(s)
    fields = {f[0]: getattr(r, f[0]) for f in swarm_sim_result._fields_ if f[0] != "size"}
    name = policy if isinstance(policy, str) else "custom"
    return SimResult(policy=name, timeline=samples, **fields)


def erlang_c(servers: int, offered: float) -> float:
    """P(wait) in an M/M/c queue with ``servers`` servers and ``offered`` Erlangs."""
    out = c_double()
    errors.check(_swarm_sim_erlang_c(servers, offered, byref(out)))
    return out.value


def erlang_servers(offered: float, service_s: float, wait_s: float, quantile: float = 0.99,
                   max_servers: int = 100000) -> int:
    """Fewest servers with P(wait > wait_s) <= 1 - quantile (raises OutOfRange past max)."""
    out = c_int32()
    errors.check(_swarm_sim_erlang_servers(offered, service_s, wait_s, quantile, max_servers,
                                           byref(out)))
    return out.value


def parse_config(text: Union[str, bytes]) -> Tuple[swarm_sim_opts, swarm_policy_opts]:
    """Parse a ``key = value`` custom-policy file into (sim opts, policy opts) C structs."""
    b = text.encode() if isinstance(text, str) else bytes(text)
    so, po = swarm_sim_opts(), swarm_policy_opts()
    errors.check(_swarm_sim_opts_init(byref(so)))
    from .policy import _swarm_policy_opts_init
    errors.check(_swarm_policy_opts_init(byref(po)))
    line = c_uint32(0)
    rc = _swarm_sim_config_parse(b, len(b), byref(so), byref(po), byref(line))
    if rc < 0:
        errors.check(rc, f"config line {line.value}: unknown key or bad value")
    return so, po
