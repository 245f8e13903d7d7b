# SPDX-License-Identifier: MIT
"""The scaling policy (include/swarm/policy.h): KEDA, HPA and Knative KPA semantics as a pure
function ``(state, now, observation) -> decision`` that explains itself.

Configuration is a :class:`PolicyConfig` dataclass (or keyword arguments) that maps one-to-one
onto ``swarm_policy_opts``. Durations are in seconds (``None`` means the C default, i.e. a zero
field; a negative value keeps its C meaning "explicitly none" where the header says so).
Observations are :class:`Observation` / :class:`Metric` dataclasses; decisions come back as
:class:`Decision` with the explanation steps and the one-line text.

Threading: a policy is not thread-safe (as in C): one call at a time per policy; distinct
policies are independent. Nothing here blocks, allocates in C, or reads a clock unless you omit
``now`` (then :func:`swarm.now_ns` is used).
"""
from __future__ import annotations

import ctypes
import dataclasses
import enum
import threading
from ctypes import (POINTER, Structure, byref, c_char, c_char_p, c_double, c_int, c_int32,
                    c_int64, c_size_t, c_uint32, c_uint64, c_void_p)
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from . import errors
from ._handle import _Handle
from ._lib import cfunc
from .common import Allocator, alloc_arg, now_ns, swarm_allocator

__all__ = ["Policy", "PolicyConfig", "HpaRules", "Rate", "Metric", "Observation", "Decision",
           "Step", "Mode", "MetricKind", "FallbackBehavior", "Select", "RateType", "rule_name",
           "Disable", "Enable", "Pause", "HpaPath"]

MAX_METRICS = 8
MAX_RATES = 4
MAX_STEPS = 24
TEXT_LEN = 320


class Mode(enum.IntEnum):
    KEDA = 1
    HPA = 2
    KPA = 3
    LOAD = 4


class MetricKind(enum.IntEnum):
    TOTAL = 1
    AVERAGE = 2
    VALUE = 3


class FallbackBehavior(enum.IntEnum):
    STATIC = 0
    CURRENT = 1
    CURRENT_IF_HIGHER = 2
    CURRENT_IF_LOWER = 3


class Select(enum.IntEnum):
    DEFAULT = 0
    MAX = 1
    MIN = 2
    DISABLED = 3


class RateType(enum.IntEnum):
    PODS = 1
    PERCENT = 2


class Disable(enum.IntFlag):
    NONE = 0
    NO_COLD_START_JUMP = 1 << 0
    NO_PENDING_CAPACITY = 1 << 1
    NO_FALLBACK_AT_ZERO = 1 << 2
    STRICT_UPSTREAM = 0xFFFF


class Enable(enum.IntFlag):
    NONE = 0
    COLD_START_JUMP = 1 << 0


class Pause(enum.IntFlag):
    NONE = 0
    PAUSED = 1 << 0
    PAUSED_SCALE_IN = 1 << 1
    PAUSED_SCALE_OUT = 1 << 2
    FORCE_ACTIVATION = 1 << 3


class HpaPath(enum.IntEnum):
    AUTO = 0
    BEHAVIOR = 1
    LEGACY = 2


class DecisionFlag(enum.IntFlag):
    ACTIVE = 1 << 0
    PANIC = 1 << 1
    FALLBACK = 1 << 2
    PAUSED = 1 << 3
    HOLD = 1 << 4


# ---- struct mirrors --------------------------------------------------------------------------

class swarm_policy_rate(Structure):
    _fields_ = [("type", c_uint32), ("value", c_int32), ("period_ns", c_int64)]


class swarm_policy_hpa_rules(Structure):
    _fields_ = [("window_ns", c_int64), ("select", c_uint32), ("n_policies", c_uint32),
                ("policies", swarm_policy_rate * MAX_RATES), ("tolerance", c_double)]


class swarm_policy_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("mode", c_uint32), ("min_replicas", c_int32),
        ("max_replicas", c_int32), ("history_cap", c_uint32), ("disable", c_uint32),
        ("pause", c_uint32), ("paused_replicas", c_int32), ("alloc", POINTER(swarm_allocator)),
        ("tolerance", c_double),
        ("cooldown_ns", c_int64), ("initial_cooldown_ns", c_int64), ("idle_replicas", c_int32),
        ("use_idle", c_uint32), ("fallback_failures", c_uint32), ("fallback_behavior", c_uint32),
        ("fallback_replicas", c_int32), ("pad0_", c_int32),
        ("hpa_path", c_uint32), ("pad1_", c_uint32), ("scale_up", swarm_policy_hpa_rules),
        ("scale_down", swarm_policy_hpa_rules), ("legacy_window_ns", c_int64),
        ("legacy_factor", c_double), ("legacy_minimum", c_double),
        ("stable_window_ns", c_int64), ("panic_window_pct", c_double),
        ("panic_threshold_pct", c_double), ("max_scale_up_rate", c_double),
        ("max_scale_down_rate", c_double), ("scale_down_delay_ns", c_int64),
        ("activation_scale", c_int32), ("unreachable", c_uint32),
        ("target_burst_capacity", c_double), ("total_value", c_double),
        ("zero_grace_ns", c_int64), ("pending_hold_max_ns", c_int64),
        ("load_wait_ns", c_int64), ("load_percentile", c_double), ("load_drain_ns", c_int64),
        ("load_service_prior_ns", c_int64), ("load_rate_tau_ns", c_int64),
        ("load_down_window_ns", c_int64), ("load_down_band", c_double),
        ("load_up_hold_ns", c_int64), ("enable", c_uint32), ("pad3_", c_uint32),
    ]


class swarm_policy_metric(Structure):
    _fields_ = [("kind", c_uint32), ("failed", c_uint32), ("value", c_double),
                ("in_flight", c_double), ("target", c_double), ("activation", c_double)]


class swarm_policy_obs(Structure):
    _fields_ = [("size", c_uint32), ("current_replicas", c_int32), ("ready_replicas", c_int32),
                ("starting_replicas", c_int32), ("n_metrics", c_uint32), ("pad_", c_uint32),
                ("metrics", swarm_policy_metric * MAX_METRICS),
                ("arrivals", c_uint64), ("completions", c_uint64),
                ("service_total_s", c_double), ("concurrency", c_uint32), ("pad2_", c_uint32)]


class swarm_policy_step(Structure):
    _fields_ = [("rule", c_uint32), ("metric", c_int32), ("before", c_int32),
                ("after", c_int32), ("value", c_int64)]


class swarm_policy_decision(Structure):
    _fields_ = [
        ("size", c_uint32), ("flags", c_uint32), ("replicas", c_int32), ("current", c_int32),
        ("raw", c_int32), ("retire", c_int32), ("retire_starting", c_int32),
        ("prefer_idle", c_uint32), ("excess_burst_capacity", c_int32), ("n_steps", c_uint32),
        ("metric_raw", c_int32 * MAX_METRICS), ("steps", swarm_policy_step * MAX_STEPS),
        ("text", c_char * TEXT_LEN),
    ]


# ---- C declarations --------------------------------------------------------------------------

@cfunc("swarm_policy_opts_init", [POINTER(swarm_policy_opts)], c_int)
def _swarm_policy_opts_init(o) -> int:
    """Zero defaults + size."""


@cfunc("swarm_policy_create", [POINTER(c_void_p), POINTER(swarm_policy_opts)], c_int)
def _swarm_policy_create(out, o) -> int:
    """Create a policy."""


@cfunc("swarm_policy_destroy", [c_void_p], None)
def _swarm_policy_destroy(p) -> None:
    """Destroy a policy."""


@cfunc("swarm_policy_update", [c_void_p, POINTER(swarm_policy_opts)], c_int)
def _swarm_policy_update(p, o) -> int:
    """Reconfigure, keeping state."""


@cfunc("swarm_policy_decide", [c_void_p, c_int64, POINTER(swarm_policy_obs),
                               POINTER(swarm_policy_decision)], c_int)
def _swarm_policy_decide(p, now, obs, out) -> int:
    """Decide; pure apart from the policy's own state."""


@cfunc("swarm_policy_state_size", [c_void_p], c_size_t)
def _swarm_policy_state_size(p) -> int:
    """Export size."""


@cfunc("swarm_policy_export_state", [c_void_p, c_void_p, c_size_t, POINTER(c_size_t)], c_int)
def _swarm_policy_export_state(p, buf, n, written) -> int:
    """Export state."""


@cfunc("swarm_policy_import_state", [c_void_p, c_void_p, c_size_t], c_int)
def _swarm_policy_import_state(p, buf, n) -> int:
    """Import state."""


@cfunc("swarm_policy_reset", [c_void_p], c_int)
def _swarm_policy_reset(p) -> int:
    """Forget state."""


@cfunc("swarm_policy_rule_name", [c_uint32], c_char_p)
def _swarm_policy_rule_name(rule) -> bytes:
    """Rule code -> name."""


def rule_name(rule: int) -> str:
    """The name of an explanation rule code (``swarm_policy_rule_name``), e.g. "tolerance"."""
    return _swarm_policy_rule_name(int(rule)).decode()


# ---- Pythonic configuration ------------------------------------------------------------------

def _ns(v: Optional[float]) -> int:
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"durations are seconds (numbers), not {type(v).__name__}")
    return int(round(v * 1e9))


def _f(v: Optional[float]) -> float:
    if v is None:
        return 0.0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"expected a number, not {type(v).__name__}")
    return float(v)


def _i(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    return v


@dataclasses.dataclass
class Rate:
    """One HPA scaling policy: at most ``value`` pods (or percent) per ``period`` seconds."""
    type: RateType
    value: int
    period: float


@dataclasses.dataclass
class HpaRules:
    """HPA behavior for one direction (``swarm_policy_hpa_rules``). ``window`` in seconds
    (None: default, negative: explicitly none); ``tolerance`` None: the policy's."""
    window: Optional[float] = None
    select: Select = Select.DEFAULT
    policies: Sequence[Rate] = ()
    tolerance: Optional[float] = None

    def _fill(self, r: swarm_policy_hpa_rules) -> None:
        r.window_ns = _ns(self.window)
        r.select = int(self.select)
        if len(self.policies) > MAX_RATES:
            raise errors.InvalidArgument(f"at most {MAX_RATES} rate policies")
        r.n_policies = len(self.policies)
        for i, p in enumerate(self.policies):
            r.policies[i].type = int(p.type)
            r.policies[i].value = _i("rate value", p.value)
            r.policies[i].period_ns = _ns(p.period)
        r.tolerance = _f(self.tolerance)


@dataclasses.dataclass
class PolicyConfig:
    """Mirror of ``swarm_policy_opts`` with seconds for durations and None for C defaults.
    See include/swarm/policy.h for each field's meaning and default."""
    mode: Mode = Mode.KEDA
    min_replicas: int = 0
    max_replicas: int = 0
    history_cap: int = 0
    disable: int = 0
    pause: int = 0
    paused_replicas: int = 0
    tolerance: Optional[float] = None
    # KEDA
    cooldown: Optional[float] = None
    initial_cooldown: Optional[float] = None
    idle_replicas: Optional[int] = None      # None: use_idle = 0
    fallback_failures: int = 0
    fallback_behavior: FallbackBehavior = FallbackBehavior.STATIC
    fallback_replicas: int = 0
    # HPA
    hpa_path: HpaPath = HpaPath.AUTO
    scale_up: Optional[HpaRules] = None
    scale_down: Optional[HpaRules] = None
    legacy_window: Optional[float] = None
    legacy_factor: Optional[float] = None
    legacy_minimum: Optional[float] = None
    # KPA
    stable_window: Optional[float] = None
    panic_window_pct: Optional[float] = None
    panic_threshold_pct: Optional[float] = None
    max_scale_up_rate: Optional[float] = None
    max_scale_down_rate: Optional[float] = None
    scale_down_delay: Optional[float] = None
    activation_scale: int = 0
    unreachable: bool = False
    target_burst_capacity: Optional[float] = None
    total_value: Optional[float] = None
    zero_grace: Optional[float] = None
    pending_hold_max: Optional[float] = None
    # LOAD (seconds; None: the C default)
    load_wait: Optional[float] = None
    load_percentile: Optional[float] = None
    load_drain: Optional[float] = None
    load_service_prior: Optional[float] = None
    load_rate_tau: Optional[float] = None
    load_down_window: Optional[float] = None
    load_down_band: Optional[float] = None
    load_up_hold: Optional[float] = None
    enable: int = 0     # Enable flags (opt-in extensions)

    def to_c(self, allocator: Optional[Allocator] = None) -> swarm_policy_opts:
        """The ``swarm_policy_opts`` this config maps to (size from ctypes.sizeof)."""
        o = swarm_policy_opts()
        errors.check(_swarm_policy_opts_init(byref(o)))
        o.size = ctypes.sizeof(swarm_policy_opts)
        o.mode = int(self.mode)
        o.min_replicas = _i("min_replicas", self.min_replicas)
        o.max_replicas = _i("max_replicas", self.max_replicas)
        o.history_cap = _i("history_cap", self.history_cap)
        o.disable = int(self.disable)
        o.pause = int(self.pause)
        o.paused_replicas = _i("paused_replicas", self.paused_replicas)
        o.alloc = alloc_arg(allocator)
        o.tolerance = _f(self.tolerance)
        o.cooldown_ns = _ns(self.cooldown)
        o.initial_cooldown_ns = _ns(self.initial_cooldown)
        if self.idle_replicas is not None:
            o.idle_replicas = _i("idle_replicas", self.idle_replicas)
            o.use_idle = 1
        o.fallback_failures = _i("fallback_failures", self.fallback_failures)
        o.fallback_behavior = int(self.fallback_behavior)
        o.fallback_replicas = _i("fallback_replicas", self.fallback_replicas)
        o.hpa_path = int(self.hpa_path)
        if self.scale_up is not None:
            self.scale_up._fill(o.scale_up)
        if self.scale_down is not None:
            self.scale_down._fill(o.scale_down)
        o.legacy_window_ns = _ns(self.legacy_window)
        o.legacy_factor = _f(self.legacy_factor)
        o.legacy_minimum = _f(self.legacy_minimum)
        o.stable_window_ns = _ns(self.stable_window)
        o.panic_window_pct = _f(self.panic_window_pct)
        o.panic_threshold_pct = _f(self.panic_threshold_pct)
        o.max_scale_up_rate = _f(self.max_scale_up_rate)
        o.max_scale_down_rate = _f(self.max_scale_down_rate)
        o.scale_down_delay_ns = _ns(self.scale_down_delay)
        o.activation_scale = _i("activation_scale", self.activation_scale)
        o.unreachable = 1 if self.unreachable else 0
        o.target_burst_capacity = _f(self.target_burst_capacity)
        o.total_value = _f(self.total_value)
        o.zero_grace_ns = _ns(self.zero_grace)
        o.pending_hold_max_ns = _ns(self.pending_hold_max)
        o.load_wait_ns = _ns(self.load_wait)
        o.load_percentile = _f(self.load_percentile)
        o.load_drain_ns = _ns(self.load_drain)
        o.load_service_prior_ns = _ns(self.load_service_prior)
        o.load_rate_tau_ns = _ns(self.load_rate_tau)
        o.load_down_window_ns = _ns(self.load_down_window)
        o.load_down_band = _f(self.load_down_band)
        o.load_up_hold_ns = _ns(self.load_up_hold)
        o.enable = int(self.enable)
        return o


@dataclasses.dataclass
class Metric:
    """One metric sample (``swarm_policy_metric``). ``kind``: TOTAL (queued ``value`` plus
    ``in_flight``), AVERAGE (per ready replica) or VALUE; ``target`` per replica (> 0)."""
    value: float
    target: float
    kind: MetricKind = MetricKind.TOTAL
    in_flight: float = 0.0
    activation: float = 0.0
    failed: bool = False

    def _fill(self, m: swarm_policy_metric) -> None:
        m.kind = int(self.kind)
        m.failed = 1 if self.failed else 0
        m.value = _f(self.value)
        m.in_flight = _f(self.in_flight)
        m.target = _f(self.target)
        m.activation = _f(self.activation)


@dataclasses.dataclass
class Observation:
    """What the host observed (``swarm_policy_obs``). ``ready`` None means all of ``current``."""
    current: int
    metrics: Sequence[Metric]
    ready: Optional[int] = None
    starting: int = 0
    # Load signals for Mode.LOAD (cumulative; the other modes ignore them).
    arrivals: int = 0
    completions: int = 0
    service_total: float = 0.0   # seconds
    concurrency: int = 0         # tasks per replica; >= 1 marks the counters as observed

    def to_c(self) -> swarm_policy_obs:
        o = swarm_policy_obs()
        o.size = ctypes.sizeof(swarm_policy_obs)
        self.fill(o)
        return o

    def fill(self, o: swarm_policy_obs) -> None:
        """Write into an existing C observation (keeps its size field)."""
        o.current_replicas = _i("current", self.current)
        o.ready_replicas = self.current if self.ready is None else _i("ready", self.ready)
        o.starting_replicas = _i("starting", self.starting)
        if self.arrivals < 0 or self.completions < 0 or self.concurrency < 0:
            raise errors.InvalidArgument("load counters must be >= 0")
        o.arrivals = int(self.arrivals)
        o.completions = int(self.completions)
        o.service_total_s = float(self.service_total)
        o.concurrency = int(self.concurrency)
        ms = list(self.metrics)
        if len(ms) > MAX_METRICS:
            raise errors.InvalidArgument(f"at most {MAX_METRICS} metrics")
        o.n_metrics = len(ms)
        for i, m in enumerate(ms):
            if not isinstance(m, Metric):
                raise TypeError(f"metrics must be swarm.Metric, not {type(m).__name__}")
            m._fill(o.metrics[i])


@dataclasses.dataclass
class Step:
    """One explanation step: ``rule`` (name) changed the count from ``before`` to ``after``."""
    rule: str
    code: int
    metric: int
    before: int
    after: int
    value: int

    def __str__(self) -> str:
        m = f" metric {self.metric}" if self.metric >= 0 else ""
        v = f" (value {self.value})" if self.value else ""
        return f"{self.rule}{m}: {self.before} -> {self.after}{v}"


@dataclasses.dataclass
class Decision:
    """A policy decision with its explanation (``swarm_policy_decision``)."""
    replicas: int
    current: int
    raw: int
    retire: int
    retire_starting: int
    prefer_idle: bool
    excess_burst_capacity: int
    flags: DecisionFlag
    metric_raw: List[int]
    steps: List[Step]
    text: str

    @classmethod
    def from_c(cls, d: swarm_policy_decision, n_metrics: Optional[int] = None) -> "Decision":
        n = min(d.n_steps, MAX_STEPS)
        steps = [Step(rule_name(s.rule), s.rule, s.metric, s.before, s.after, s.value)
                 for s in d.steps[:n]]
        k = MAX_METRICS if n_metrics is None else n_metrics
        return cls(d.replicas, d.current, d.raw, d.retire, d.retire_starting,
                   bool(d.prefer_idle), d.excess_burst_capacity, DecisionFlag(d.flags),
                   list(d.metric_raw[:k]), steps, d.text.decode("utf-8", "replace"))

    @property
    def active(self) -> bool:
        return bool(self.flags & DecisionFlag.ACTIVE)

    @property
    def panic(self) -> bool:
        return bool(self.flags & DecisionFlag.PANIC)

    @property
    def fallback(self) -> bool:
        return bool(self.flags & DecisionFlag.FALLBACK)

    @property
    def hold(self) -> bool:
        return bool(self.flags & DecisionFlag.HOLD)

    def explain(self) -> str:
        """The decision and every rule that shaped it, one per line."""
        lines = [f"{self.current} -> {self.replicas} replicas (raw {self.raw}): {self.text}"]
        lines += [f"  {s}" for s in self.steps]
        return "\n".join(lines)

    def as_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["flags"] = int(self.flags)
        return d


def _destroy_policy(ptr: int, *_keep: Any) -> None:
    _swarm_policy_destroy(ptr)


class Policy(_Handle):
    """A scaling policy (``swarm_policy``).

    ``Policy(PolicyConfig(...))`` or ``Policy(mode=Mode.HPA, max_replicas=10, ...)``.
    Raises InvalidArgument for a bad configuration (as ``swarm_policy_create``).

    Not thread-safe, like the C object: one call at a time (the binding serializes calls on one
    Policy with a lock, so concurrent Python use is safe but not parallel). Never blocks.
    """

    _kind = "policy"

    def __init__(self, config: Optional[PolicyConfig] = None, *,
                 allocator: Optional[Allocator] = None, **kwargs: Any) -> None:
        if config is None:
            config = PolicyConfig(**kwargs)
        elif kwargs:
            config = dataclasses.replace(config, **kwargs)
        if not isinstance(config, PolicyConfig):
            raise TypeError("config must be a swarm.PolicyConfig")
        o = config.to_c(allocator)
        out = c_void_p()
        errors.check(_swarm_policy_create(byref(out), byref(o)), "swarm_policy_create")
        super().__init__(out.value, _destroy_policy, allocator)
        self.config = config
        self._serial = threading.RLock()
        self._loop_running = False
        self._owned_by_loop = 0

    def _call(self, fn: Any, *args: Any) -> int:
        if self._loop_running:
            raise errors.WrongState("a running reconcile loop owns this policy")
        p = self._enter()
        try:
            with self._serial:
                return fn(p, *args)
        finally:
            self._leave()

    def close(self) -> None:
        """Destroy the policy (``swarm_policy_destroy``). Idempotent. Raises WrongState while a
        reconcile loop that uses it exists (close the loop first)."""
        if self._owned_by_loop:
            raise errors.WrongState("close the reconcile loop that uses this policy first")
        self._release()

    def update(self, config: Optional[PolicyConfig] = None, **kwargs: Any) -> None:
        """Change the configuration keeping the state (``swarm_policy_update``); mode and
        history_cap must not change (InvalidArgument)."""
        cfg = dataclasses.replace(config or self.config, **kwargs)
        o = cfg.to_c()
        errors.check(self._call(_swarm_policy_update, byref(o)), "swarm_policy_update")
        self.config = cfg

    def decide(self, obs: Union[Observation, None] = None, now: Optional[int] = None, *,
               current: Optional[int] = None, metrics: Optional[Sequence[Metric]] = None,
               ready: Optional[int] = None, starting: int = 0) -> Decision:
        """Decide at ``now`` (ns on swarm.now_ns()'s clock; default: now) for ``obs`` (or the
        keyword fields). Deterministic for a given state, now and observation. Raises
        InvalidArgument for a bad observation (state unchanged). Non-blocking."""
        if obs is None:
            if current is None or metrics is None:
                raise TypeError("decide() needs an Observation or current= and metrics=")
            obs = Observation(current, list(metrics), ready, starting)
        if not isinstance(obs, Observation):
            raise TypeError("obs must be a swarm.Observation")
        if now is None:
            now = now_ns()
        co = obs.to_c()
        d = swarm_policy_decision()
        d.size = ctypes.sizeof(swarm_policy_decision)
        errors.check(self._call(_swarm_policy_decide, int(now), byref(co), byref(d)),
                     "swarm_policy_decide")
        return Decision.from_c(d, len(obs.metrics))

    def evaluate(self, observations: Iterable[Any], start_ns: int = 0,
                 step: float = 1.0) -> List[Decision]:
        """Decide for each observation in turn; observation i is at ``start_ns + i * step``
        seconds, or at ``t`` (ns) when an item is a ``(t, Observation)`` pair."""
        out = []
        for i, item in enumerate(observations):
            if isinstance(item, tuple):
                t, ob = item
            else:
                t, ob = start_ns + int(i * step * 1e9), item
            out.append(self.decide(ob, t))
        return out

    @property
    def state_size(self) -> int:
        """Bytes of an exported state (``swarm_policy_state_size``)."""
        return int(self._call(_swarm_policy_state_size))

    def export_state(self) -> bytes:
        """All state as bytes (``swarm_policy_export_state``)."""
        n = self.state_size
        buf = ctypes.create_string_buffer(max(n, 1))
        w = c_size_t()
        errors.check(self._call(_swarm_policy_export_state, buf, n, byref(w)))
        return buf.raw[:w.value]

    def import_state(self, data: bytes) -> None:
        """Replace the state with an export (``swarm_policy_import_state``): InvalidArgument for
        garbage, NotSupported for another format version, WrongState for another mode or
        history_cap."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("state must be bytes")
        b = bytes(data)
        errors.check(self._call(_swarm_policy_import_state, b, len(b)))

    def reset(self) -> None:
        """Forget all state (``swarm_policy_reset``)."""
        errors.check(self._call(_swarm_policy_reset))
