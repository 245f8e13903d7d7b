# SPDX-License-Identifier: MIT
"""Engines (include/swarm/engine.h, engine_decorators.h, engine_mock.h): the inference contract,
Python engines, decorators, mock.

Python engines
--------------
Any object with ``infer(request) -> output`` can serve requests from C threads::

    class Echo:
        def infer(self, request):            # request: swarm.Request (a view, valid in the call)
            return request.payload.upper()   # bytes, str (UTF-8), None, or an iterable of chunks

    eng = swarm.Engine.from_python(Echo())

* ``infer`` may return bytes / bytearray / memoryview / str (written as the output), ``None``
  (the engine wrote with ``request.write``), or any other iterable of chunks (streaming: each
  chunk is written, and so reaches a stream callback, as soon as it is produced).
* Optional ``infer_batch(requests) -> list`` (one output or exception instance per request),
  ``cancel(request_id)``, ``health() -> int | bool``, ``close()`` (called once when C destroys
  the engine).
* An exception inside any of them never reaches C: it becomes the request's error, with code
  ``exc.code`` for a :class:`~swarm.SwarmError`, ``exc.swarm_code`` if the exception carries
  one, SWARM_ECANCELED for KeyboardInterrupt/SystemExit, else SWARM_EINTERNAL, and its message.
  The exception object itself is kept for the consumer: ``future.result()`` and
  :meth:`Engine.infer` raise it. One line is logged per failure (``log_level``), with a
  traceback only for the first failure of each exception type.
* Output types are checked: anything but bytes/str/None, a list/tuple of chunks or an iterator
  of chunks fails the request with a TypeError naming the type.

Threading: C worker threads call the engine through ctypes CFUNCTYPE trampolines, which take the
GIL for the duration of the Python code. The trampolines are module-level (they live as long as
the interpreter) and the engine's ``void *self`` is an integer key into a registry, never a
PyObject pointer; the registry keeps the Python object alive until C calls ``destroy``.

Handles
-------
:class:`Engine` owns one reference to a ``swarm_engine``. Decorators (``timeout``, ``retry``,
``breaker``, ``fallback``, ``split``, ``batcher``) take their own references to the engines they
wrap, so the Python objects stay independently usable and closable. ``close()`` drops the
reference; the C engine is destroyed when the last one goes.
"""
from __future__ import annotations

import collections
import collections.abc
import ctypes
import dataclasses
import enum
import itertools
import struct
import logging
import threading
import types
import weakref
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_char_p, c_double, c_int, c_int32,
                    c_int64, c_size_t, c_uint32, c_uint64, c_void_p)
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from . import errors
from ._handle import _Handle, to_ns
from ._lib import cfunc
from .chan import stats_dict
from .common import Allocator, CancelToken, alloc_arg, now_ns, swarm_allocator

__all__ = [
    "Engine", "Request", "InferRequest", "Result", "Response", "BreakerState", "MockLatency",
    "ENGINE_OPS_VERSION", "ENGINE_LOG_LEVEL", "error_retryable", "error_is_failure",
    "in_callback",
]

log = logging.getLogger("swarm")

#: SWARM_ENGINE_OPS_VERSION this binding fills in.
ENGINE_OPS_VERSION = 1


# =============================================================================================
# Struct mirrors
# =============================================================================================

class swarm_kv(Structure):
    _fields_ = [("key", c_char_p), ("value", c_char_p)]


class swarm_infer_params(Structure):
    _fields_ = [
        ("model_version", c_char_p),
        ("temperature", c_double),
        ("top_p", c_double),
        ("max_tokens", c_uint32),
        ("n_extras", c_uint32),
        ("seed", c_uint64),
        ("extras", POINTER(swarm_kv)),
    ]


class swarm_request(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("priority", c_int32),
        ("id", c_uint64),
        ("payload", c_void_p),
        ("payload_len", c_uint64),
        ("deadline_ns", c_int64),
        ("cancel", c_void_p),
        ("user", c_void_p),
        ("params", swarm_infer_params),
    ]


#: swarm_request as raw bytes, for the trampolines (checked against the mirror below).
_REQ = struct.Struct("=IiQQQqQQQddIIQQ")
assert _REQ.size == ctypes.sizeof(swarm_request), "swarm_request layout changed"
_string_at = ctypes.string_at
_RLock = threading.RLock
#: Request.extras when the request has none: shared, so read-only.
_NO_EXTRAS: Mapping[str, str] = types.MappingProxyType({})


class swarm_response_opts(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("reserved_", c_uint32),
        ("initial_capacity", c_uint64),
        ("max_bytes", c_uint64),
        ("alloc", POINTER(swarm_allocator)),
    ]


class swarm_response_info(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("status", c_int32),
        ("complete", c_uint32),
        ("attempts", c_uint32),
        ("request_id", c_uint64),
        ("output_bytes", c_uint64),
        ("n_chunks", c_uint64),
        ("n_streamed", c_uint64),
        ("input_units", c_uint64),
        ("output_units", c_uint64),
        ("retry_after_ns", c_int64),
        ("start_ns", c_int64),
        ("first_output_ns", c_int64),
        ("end_ns", c_int64),
    ]


# The request arrives as a plain address (c_void_p), not POINTER(swarm_request): the trampoline
# reads it in one struct unpack (_REQ) instead of a ctypes object per field.
INFER_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p)
INFER_BATCH_FN = CFUNCTYPE(c_int, c_void_p, POINTER(c_void_p), POINTER(c_void_p), c_size_t)
CANCEL_FN = CFUNCTYPE(c_int, c_void_p, c_uint64)
HEALTH_FN = CFUNCTYPE(c_int, c_void_p)
DESTROY_FN = CFUNCTYPE(None, c_void_p)
STREAM_FN = CFUNCTYPE(c_int, c_void_p, c_uint64, c_void_p, c_size_t)
COMPLETE_FN = CFUNCTYPE(None, c_void_p, POINTER(swarm_request), c_void_p)
CLOCK_FN = CFUNCTYPE(c_int64, c_void_p)
SLEEP_FN = CFUNCTYPE(c_int, c_void_p, c_int64, c_void_p)
TRANSITION_FN = CFUNCTYPE(None, c_void_p, c_int, c_int, c_int64)


class swarm_engine_ops(Structure):
    _fields_ = [
        ("version", c_uint32),
        ("flags", c_uint32),
        ("name", c_char_p),
        ("infer", INFER_FN),
        ("infer_batch", INFER_BATCH_FN),
        ("cancel", CANCEL_FN),
        ("health", HEALTH_FN),
        ("destroy", DESTROY_FN),
    ]


class swarm_timeout_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("reserved_", c_uint32), ("timeout_ns", c_int64),
        ("clock", CLOCK_FN), ("clock_ctx", c_void_p), ("alloc", POINTER(swarm_allocator)),
    ]


class swarm_retry_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("max_attempts", c_uint32), ("base_ns", c_int64), ("cap_ns", c_int64),
        ("budget_max_tokens", c_uint32), ("budget_ratio_milli", c_uint32), ("seed", c_uint64),
        ("honor_retry_after", c_uint32), ("reserved_", c_uint32), ("clock", CLOCK_FN),
        ("sleep", SLEEP_FN), ("clock_ctx", c_void_p), ("alloc", POINTER(swarm_allocator)),
    ]


class swarm_retry_stats(Structure):
    _fields_ = [
        ("size", c_uint32), ("budget_milli", c_uint32), ("calls", c_uint64),
        ("attempts", c_uint64), ("retries", c_uint64), ("budget_denied", c_uint64),
        ("after_stream", c_uint64), ("deadline_denied", c_uint64), ("slept_ns", c_int64),
    ]


class swarm_breaker_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("window_kind", c_uint32), ("window_size", c_uint32),
        ("minimum_calls", c_uint32), ("failure_rate_pct", c_uint32),
        ("half_open_probes", c_uint32), ("open_ns", c_int64), ("slow_call_ns", c_int64),
        ("on_transition", TRANSITION_FN), ("transition_ctx", c_void_p), ("clock", CLOCK_FN),
        ("clock_ctx", c_void_p), ("alloc", POINTER(swarm_allocator)),
    ]


class swarm_breaker_stats(Structure):
    _fields_ = [
        ("size", c_uint32), ("state", c_int32), ("window_calls", c_uint32),
        ("window_failures", c_uint32), ("calls", c_uint64), ("rejected", c_uint64),
        ("failures", c_uint64), ("slow_calls", c_uint64), ("transitions", c_uint64),
        ("opened", c_uint64), ("state_since_ns", c_int64),
    ]


class swarm_fallback_opts(Structure):
    _fields_ = [("size", c_uint32), ("reserved_", c_uint32), ("alloc", POINTER(swarm_allocator))]


class swarm_split_opts(Structure):
    _fields_ = [("size", c_uint32), ("sticky", c_uint32), ("seed", c_uint64),
                ("alloc", POINTER(swarm_allocator))]


class swarm_batcher_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("max_batch", c_uint32), ("max_wait_ns", c_int64),
        ("queue_capacity", c_uint32), ("n_preferred", c_uint32),
        ("preferred_sizes", POINTER(c_uint32)), ("alloc", POINTER(swarm_allocator)),
    ]


class swarm_batcher_stats(Structure):
    _fields_ = [("size", c_uint32), ("max_seen", c_uint32), ("requests", c_uint64),
                ("batches", c_uint64), ("skipped", c_uint64), ("queued", c_uint64)]


class swarm_mock_fault(Structure):
    _fields_ = [("code", c_int32), ("reserved_", c_uint32), ("probability", c_double),
                ("retry_after_ns", c_int64)]


class swarm_mock_opts(Structure):
    _fields_ = [
        ("size", c_uint32), ("latency_kind", c_uint32), ("latency_ns", c_int64),
        ("latency_max_ns", c_int64), ("lognormal_sigma", c_double), ("seed", c_uint64),
        ("faults", POINTER(swarm_mock_fault)), ("n_faults", c_uint32), ("chunk_bytes", c_uint32),
        ("hang_probability", c_double), ("output_bytes", c_uint64), ("batch", c_uint32),
        ("reserved_", c_uint32), ("clock", CLOCK_FN), ("sleep", SLEEP_FN),
        ("clock_ctx", c_void_p), ("alloc", POINTER(swarm_allocator)),
    ]


class swarm_mock_stats(Structure):
    _fields_ = [
        ("size", c_uint32), ("max_batch", c_uint32), ("calls", c_uint64),
        ("batch_calls", c_uint64), ("failures", c_uint64), ("hangs", c_uint64),
        ("canceled", c_uint64), ("cancel_calls", c_uint64),
    ]


class BreakerState(enum.IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class MockLatency(enum.IntEnum):
    NONE = 0
    FIXED = 1
    UNIFORM = 2
    LOGNORMAL = 3


# =============================================================================================
# C declarations
# =============================================================================================
_REQ_P = POINTER(swarm_request)


@cfunc("swarm_request_init", [_REQ_P], c_int, keep_gil=True)
def _swarm_request_init(req) -> int:
    """Fill request defaults."""


@cfunc("swarm_request_should_stop", [_REQ_P], c_int, keep_gil=True)
def _swarm_request_should_stop(req) -> int:
    """0, ECANCELED or ETIMEDOUT."""


@cfunc("swarm_response_opts_init", [POINTER(swarm_response_opts)], c_int, keep_gil=True)
def _swarm_response_opts_init(o) -> int:
    """Fill response option defaults."""


@cfunc("swarm_response_create", [POINTER(c_void_p), POINTER(swarm_response_opts)], c_int)
def _swarm_response_create(out, o) -> int:
    """Create a response."""


@cfunc("swarm_response_destroy", [c_void_p], None)
def _swarm_response_destroy(r) -> None:
    """Destroy a response."""


@cfunc("swarm_response_reset", [c_void_p], c_int)
def _swarm_response_reset(r) -> int:
    """Ready for the next request."""


@cfunc("swarm_response_set_stream", [c_void_p, STREAM_FN, c_void_p], c_int)
def _swarm_response_set_stream(r, fn, ctx) -> int:
    """Set or clear the stream callback."""


@cfunc("swarm_response_set_complete", [c_void_p, COMPLETE_FN, c_void_p], c_int)
def _swarm_response_set_complete(r, fn, ctx) -> int:
    """Set or clear the completion callback."""


@cfunc("swarm_response_write", [c_void_p, c_void_p, c_size_t], c_int, keep_gil=True)
def _swarm_response_write(r, data, n) -> int:
    """Append output (copied); feeds the stream callback."""


@cfunc("swarm_response_set_error", [c_void_p, c_int, c_char_p, c_int64], c_int, keep_gil=True)
def _swarm_response_set_error(r, code, msg, retry_after_ns) -> int:
    """Record an error for the request being served."""


@cfunc("swarm_response_set_usage", [c_void_p, c_uint64, c_uint64], c_int, keep_gil=True)
def _swarm_response_set_usage(r, i, o) -> int:
    """Record usage counts."""


@cfunc("swarm_response_data", [c_void_p, POINTER(c_size_t)], c_void_p, keep_gil=True)
def _swarm_response_data(r, n) -> int:
    """Output so far."""


@cfunc("swarm_response_status", [c_void_p], c_int, keep_gil=True)
def _swarm_response_status(r) -> int:
    """Final status, EAGAIN while running."""


@cfunc("swarm_response_error_message", [c_void_p], c_char_p, keep_gil=True)
def _swarm_response_error_message(r) -> bytes:
    """Error message or ""."""


@cfunc("swarm_response_get_info", [c_void_p, POINTER(swarm_response_info)], c_int, keep_gil=True)
def _swarm_response_get_info(r, info) -> int:
    """Timings and usage."""


@cfunc("swarm_engine_create", [POINTER(c_void_p), POINTER(swarm_engine_ops), c_void_p,
                               POINTER(swarm_allocator)], c_int)
def _swarm_engine_create(out, ops, self_, alloc) -> int:
    """Wrap a vtable into a handle."""


@cfunc("swarm_engine_retain", [c_void_p], c_int, keep_gil=True)
def _swarm_engine_retain(e) -> int:
    """Take a reference."""


@cfunc("swarm_engine_destroy", [c_void_p], None)
def _swarm_engine_destroy(e) -> None:
    """Drop a reference."""


@cfunc("swarm_engine_name", [c_void_p], c_char_p)
def _swarm_engine_name(e) -> bytes:
    """Engine name."""


@cfunc("swarm_engine_infer", [c_void_p, _REQ_P, c_void_p], c_int)
def _swarm_engine_infer(e, req, resp) -> int:
    """Serve one request; blocks (GIL released)."""


@cfunc("swarm_engine_infer_batch", [c_void_p, POINTER(_REQ_P), POINTER(c_void_p), c_size_t], c_int)
def _swarm_engine_infer_batch(e, reqs, resps, n) -> int:
    """Serve a batch; blocks (GIL released)."""


@cfunc("swarm_engine_cancel", [c_void_p, c_uint64], c_int)
def _swarm_engine_cancel(e, rid) -> int:
    """Push a cancel notice."""


@cfunc("swarm_engine_health", [c_void_p], c_int)
def _swarm_engine_health(e) -> int:
    """0 if ready."""


@cfunc("swarm_engine_error_retryable", [c_int], c_int, keep_gil=True)
def _swarm_engine_error_retryable(code) -> int:
    """1 if retried."""


@cfunc("swarm_engine_error_is_failure", [c_int], c_int, keep_gil=True)
def _swarm_engine_error_is_failure(code) -> int:
    """1 if counted as a failure."""


@cfunc("swarm_timeout_opts_init", [POINTER(swarm_timeout_opts)], c_int)
def _swarm_timeout_opts_init(o) -> int:
    """Timeout defaults."""


@cfunc("swarm_engine_timeout_create", [POINTER(c_void_p), c_void_p, POINTER(swarm_timeout_opts)],
       c_int)
def _swarm_engine_timeout_create(out, inner, o) -> int:
    """Timeout decorator."""


@cfunc("swarm_retry_opts_init", [POINTER(swarm_retry_opts)], c_int)
def _swarm_retry_opts_init(o) -> int:
    """Retry defaults."""


@cfunc("swarm_engine_retry_create", [POINTER(c_void_p), c_void_p, POINTER(swarm_retry_opts)],
       c_int)
def _swarm_engine_retry_create(out, inner, o) -> int:
    """Retry decorator."""


@cfunc("swarm_engine_retry_get_stats", [c_void_p, POINTER(swarm_retry_stats)], c_int)
def _swarm_engine_retry_get_stats(e, s) -> int:
    """Retry counters."""


@cfunc("swarm_breaker_opts_init", [POINTER(swarm_breaker_opts)], c_int)
def _swarm_breaker_opts_init(o) -> int:
    """Breaker defaults."""


@cfunc("swarm_engine_breaker_create", [POINTER(c_void_p), c_void_p, POINTER(swarm_breaker_opts)],
       c_int)
def _swarm_engine_breaker_create(out, inner, o) -> int:
    """Circuit breaker decorator."""


@cfunc("swarm_engine_breaker_state", [c_void_p], c_int)
def _swarm_engine_breaker_state(e) -> int:
    """Breaker state."""


@cfunc("swarm_engine_breaker_get_stats", [c_void_p, POINTER(swarm_breaker_stats)], c_int)
def _swarm_engine_breaker_get_stats(e, s) -> int:
    """Breaker counters."""


@cfunc("swarm_engine_fallback_create", [POINTER(c_void_p), c_void_p, c_void_p,
                                        POINTER(swarm_allocator)], c_int)
def _swarm_engine_fallback_create(out, primary, secondary, alloc) -> int:
    """Fallback decorator."""


@cfunc("swarm_fallback_opts_init", [POINTER(swarm_fallback_opts)], c_int)
def _swarm_fallback_opts_init(o) -> int:
    """Fallback defaults."""


@cfunc("swarm_engine_fallback_create_ex", [POINTER(c_void_p), c_void_p, c_void_p,
                                           POINTER(swarm_fallback_opts)], c_int)
def _swarm_engine_fallback_create_ex(out, primary, secondary, opts) -> int:
    """Fallback decorator, options form."""


@cfunc("swarm_split_opts_init", [POINTER(swarm_split_opts)], c_int)
def _swarm_split_opts_init(o) -> int:
    """Split defaults."""


@cfunc("swarm_engine_split_create", [POINTER(c_void_p), POINTER(c_void_p), POINTER(c_uint32),
                                     c_size_t, POINTER(swarm_split_opts)], c_int)
def _swarm_engine_split_create(out, engines, weights, n, o) -> int:
    """Weighted split."""


@cfunc("swarm_engine_split_set_weights", [c_void_p, POINTER(c_uint32), c_size_t], c_int)
def _swarm_engine_split_set_weights(e, w, n) -> int:
    """Replace weights."""


@cfunc("swarm_engine_split_get_counts", [c_void_p, POINTER(c_uint64), c_size_t], c_int)
def _swarm_engine_split_get_counts(e, counts, n) -> int:
    """Per-engine call counts."""


@cfunc("swarm_batcher_opts_init", [POINTER(swarm_batcher_opts)], c_int)
def _swarm_batcher_opts_init(o) -> int:
    """Batcher defaults."""


@cfunc("swarm_engine_batcher_create", [POINTER(c_void_p), c_void_p, POINTER(swarm_batcher_opts)],
       c_int)
def _swarm_engine_batcher_create(out, inner, o) -> int:
    """Dynamic batcher."""


@cfunc("swarm_engine_batcher_get_stats", [c_void_p, POINTER(swarm_batcher_stats)], c_int)
def _swarm_engine_batcher_get_stats(e, s) -> int:
    """Batcher counters."""


@cfunc("swarm_mock_opts_init", [POINTER(swarm_mock_opts)], c_int)
def _swarm_mock_opts_init(o) -> int:
    """Mock defaults."""


@cfunc("swarm_engine_mock_create", [POINTER(c_void_p), POINTER(swarm_mock_opts)], c_int)
def _swarm_engine_mock_create(out, o) -> int:
    """Mock engine."""


@cfunc("swarm_engine_mock_script", [c_void_p, POINTER(c_int32), c_size_t], c_int)
def _swarm_engine_mock_script(e, codes, n) -> int:
    """Queue scripted outcomes."""


@cfunc("swarm_engine_mock_get_stats", [c_void_p, POINTER(swarm_mock_stats)], c_int)
def _swarm_engine_mock_get_stats(e, s) -> int:
    """Mock counters."""


def error_retryable(code: int) -> bool:
    """Whether the resilience layer retries ``code`` (``swarm_engine_error_retryable``)."""
    return bool(_swarm_engine_error_retryable(int(code)))


def error_is_failure(code: int) -> bool:
    """Whether ``code`` counts as an engine failure (``swarm_engine_error_is_failure``)."""
    return bool(_swarm_engine_error_is_failure(int(code)))


def _sized(struct_type: type, init: Callable[[Any], int]) -> Any:
    s = struct_type()
    errors.check(init(byref(s)), f"{struct_type.__name__} init")
    s.size = ctypes.sizeof(struct_type)
    return s


def _nonneg_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    if v < 0:
        raise errors.InvalidArgument(f"{name} must be >= 0, got {v}")
    return v


def _secs_ns(name: str, v: Optional[float]) -> int:
    """Seconds -> ns for durations (None -> 0 = C default)."""
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be seconds (a number), not {type(v).__name__}")
    return int(v * 1e9)


# =============================================================================================
# Caller side: requests, results, responses
# =============================================================================================

@dataclasses.dataclass
class InferRequest:
    """A request built by Python for :meth:`Engine.infer` / :meth:`Engine.infer_batch`.

    ``deadline`` is absolute on :func:`swarm.now_ns`'s clock in ns (0: none); ``timeout`` (s) is a
    convenience that sets the deadline relative to the call.
    """
    payload: Union[bytes, str] = b""
    id: int = 0
    priority: int = 0
    deadline_ns: int = 0
    timeout: Optional[float] = None
    cancel: Optional[CancelToken] = None
    model_version: Optional[str] = None
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 0
    seed: int = 0
    extras: Optional[Mapping[str, str]] = None
    user: int = 0


class _CReq:
    """A C swarm_request built from an InferRequest, with everything it points to kept alive."""

    def __init__(self, r: InferRequest) -> None:
        if isinstance(r.payload, str):
            payload = r.payload.encode()
        elif isinstance(r.payload, (bytes, bytearray, memoryview)):
            payload = bytes(r.payload)
        else:
            raise TypeError(f"payload must be bytes or str, not {type(r.payload).__name__}")
        req = swarm_request()
        errors.check(_swarm_request_init(byref(req)))
        self.keep: List[Any] = [payload]
        req.id = _nonneg_int("id", r.id)
        req.priority = int(r.priority)
        req.payload = ctypes.cast(ctypes.c_char_p(payload), c_void_p) if payload else None
        req.payload_len = len(payload)
        deadline = int(r.deadline_ns)
        if r.timeout is not None:
            rel = now_ns() + to_ns(r.timeout)
            deadline = rel if deadline == 0 else min(deadline, rel)
        req.deadline_ns = deadline
        if r.cancel is not None:
            if not isinstance(r.cancel, CancelToken):
                raise TypeError("cancel must be a swarm.CancelToken")
            req.cancel = r.cancel._ptr_or_raise()
            self.keep.append(r.cancel)
        req.user = r.user or None
        p = req.params
        if r.model_version is not None:
            mv = r.model_version.encode()
            self.keep.append(mv)
            p.model_version = mv
        p.temperature = float(r.temperature)
        p.top_p = float(r.top_p)
        p.max_tokens = _nonneg_int("max_tokens", r.max_tokens)
        p.seed = _nonneg_int("seed", r.seed)
        if r.extras:
            items = [(str(k).encode(), str(v).encode()) for k, v in r.extras.items()]
            arr = (swarm_kv * len(items))(*[swarm_kv(k, v) for k, v in items])
            self.keep.extend([items, arr])
            p.extras = arr
            p.n_extras = len(items)
        self.req = req


@dataclasses.dataclass
class Result:
    """The outcome of one request served through :meth:`Engine.infer_batch` (and the value of
    :meth:`Engine.infer`). ``status`` is 0 or a negative swarm_err; ``info`` is the response's
    timings and usage as a dict."""
    output: bytes
    status: int
    error: str
    info: Dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def raise_for_status(self) -> "Result":
        """Raise the status's exception (message attached) if it is an error."""
        if self.status < 0:
            exc = errors.error_class(self.status)(self.error or None)
            exc.code = self.status
            exc.result = self  # type: ignore[attr-defined]
            raise exc
        return self


_streams: Dict[int, Callable[[int, bytes], Any]] = {}
_completes: Dict[int, Callable[[int, "Response"], Any]] = {}
_cb_keys = itertools.count(1)


def _stream_tramp(ctx: Optional[int], rid: int, chunk: Optional[int], n: int) -> int:
    try:
        fn = _streams.get(ctx or 0)
        if fn is None:
            return 0
        data = ctypes.string_at(chunk, n) if n else b""
        return 1 if fn(rid, data) is False else 0
    except BaseException:
        log.exception("swarm stream callback raised; stopping the stream")
        return 1


def _complete_tramp(ctx: Optional[int], req: Any, resp: Optional[int]) -> None:
    try:
        fn = _completes.get(ctx or 0)
        if fn is not None:
            rid = req.contents.id if req else 0
            view = Response._borrow(resp)
            try:
                fn(rid, view)
            finally:
                view._invalidate()
    except BaseException:
        log.exception("swarm completion callback raised")


_STREAM_TRAMP = STREAM_FN(_stream_tramp)
_COMPLETE_TRAMP = COMPLETE_FN(_complete_tramp)


def _destroy_response(ptr: int, skey: List[int], ckey: List[int], *_keep: Any) -> None:
    _swarm_response_destroy(ptr)
    _streams.pop(skey[0], None)
    _completes.pop(ckey[0], None)


class Response(_Handle):
    """A library-managed response (``swarm_response``). Used by :meth:`Engine.infer`; exposed for
    hosts that drive engines directly (:meth:`Engine.infer_into`).

    Not thread-safe: one call at a time per response (as in C). Non-blocking except the stream
    and completion callbacks it runs.
    """

    _kind = "response"

    def __init__(self, initial_capacity: int = 0, max_bytes: int = 0, *,
                 allocator: Optional[Allocator] = None) -> None:
        o = _sized(swarm_response_opts, _swarm_response_opts_init)
        if initial_capacity:
            o.initial_capacity = _nonneg_int("initial_capacity", initial_capacity)
        if max_bytes:
            o.max_bytes = _nonneg_int("max_bytes", max_bytes)
        o.alloc = alloc_arg(allocator)
        out = c_void_p()
        errors.check(_swarm_response_create(byref(out), byref(o)), "swarm_response_create")
        self._skey = [0]
        self._ckey = [0]
        super().__init__(out.value, _destroy_response, self._skey, self._ckey, allocator)

    @classmethod
    def _borrow(cls, ptr: Optional[int]) -> "_BorrowedResponse":
        return _BorrowedResponse(ptr)

    def close(self) -> None:
        """Destroy the response. Idempotent."""
        self._release()

    def _call(self, fn: Callable[..., int], *args: Any) -> int:
        p = self._enter()
        try:
            return fn(p, *args)
        finally:
            self._leave()

    def reset(self) -> None:
        """Ready for the next request (``swarm_response_reset``); WrongState while in use."""
        errors.check(self._call(_swarm_response_reset))

    def set_stream(self, fn: Optional[Callable[[int, bytes], Optional[bool]]]) -> None:
        """Set (or clear with None) the stream callback ``fn(request_id, chunk)``; return False
        from it to ask the engine to stop. Runs on the engine's thread with the GIL taken."""
        if fn is not None and not callable(fn):
            raise TypeError("stream callback must be callable")
        old = self._skey[0]
        if fn is None:
            errors.check(self._call(_swarm_response_set_stream, STREAM_FN(), None))
            self._skey[0] = 0
        else:
            k = next(_cb_keys)
            _streams[k] = fn
            rc = self._call(_swarm_response_set_stream, _STREAM_TRAMP, k)
            if rc < 0:
                _streams.pop(k, None)
                errors.raise_for(rc)
            self._skey[0] = k
        _streams.pop(old, None)

    def set_complete(self, fn: Optional[Callable[[int, Any], None]]) -> None:
        """Set (or clear) the completion callback ``fn(request_id, response_view)``, called once
        per request on the completing thread."""
        if fn is not None and not callable(fn):
            raise TypeError("completion callback must be callable")
        old = self._ckey[0]
        if fn is None:
            errors.check(self._call(_swarm_response_set_complete, COMPLETE_FN(), None))
            self._ckey[0] = 0
        else:
            k = next(_cb_keys)
            _completes[k] = fn
            rc = self._call(_swarm_response_set_complete, _COMPLETE_TRAMP, k)
            if rc < 0:
                _completes.pop(k, None)
                errors.raise_for(rc)
            self._ckey[0] = k
        _completes.pop(old, None)

    def write(self, data: Union[bytes, str]) -> None:
        """Append output (``swarm_response_write``); only while a call runs on it."""
        b = _as_bytes(data)
        errors.check(self._call(_swarm_response_write, b, len(b)))

    def set_error(self, code: int, message: Optional[str] = None,
                  retry_after: float = 0.0) -> None:
        """Record an error (``swarm_response_set_error``)."""
        msg = None if message is None else message.encode()[:255]
        errors.check(self._call(_swarm_response_set_error, int(code), msg,
                                int(retry_after * 1e9)))

    def set_usage(self, input_units: int, output_units: int) -> None:
        """Record usage counts (``swarm_response_set_usage``)."""
        errors.check(self._call(_swarm_response_set_usage, input_units, output_units))

    @property
    def data(self) -> bytes:
        """A copy of the output (``swarm_response_data``)."""
        n = c_size_t()
        p = self._call(_swarm_response_data, byref(n))
        return ctypes.string_at(p, n.value) if p and n.value else b""

    @property
    def status(self) -> int:
        """Final status, SWARM_EAGAIN (-3) while not complete (``swarm_response_status``)."""
        return self._call(_swarm_response_status)

    @property
    def error_message(self) -> str:
        """The error message, "" if none (``swarm_response_error_message``)."""
        return (self._call(_swarm_response_error_message) or b"").decode("utf-8", "replace")

    def info(self) -> Dict[str, Any]:
        """Timings, usage and counters as a dict (``swarm_response_get_info``)."""
        i = swarm_response_info()
        i.size = ctypes.sizeof(swarm_response_info)
        errors.check(self._call(_swarm_response_get_info, byref(i)))
        return stats_dict(i)


class _BorrowedResponse:
    """A response pointer owned by C, valid only during a callback (read-only helpers).

    Every read holds the view's lock and checks that the callback is still running, so a view
    kept past its callback raises WrongState instead of reading freed (or reused) memory."""

    __slots__ = ("_p", "_lock")

    def __init__(self, ptr: Optional[int]) -> None:
        self._p = ptr
        self._lock = threading.RLock()

    def _invalidate(self) -> None:
        with self._lock:
            self._p = None

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            p = self._p
            if p is None:
                raise errors.WrongState("response view used after its callback returned "
                                        "(copy what you need inside the callback)")
            return fn(p, *args)

    @property
    def data(self) -> bytes:
        n = c_size_t()
        with self._lock:
            p = self._call(_swarm_response_data, byref(n))
            return ctypes.string_at(p, n.value) if p and n.value else b""

    @property
    def status(self) -> int:
        return self._call(_swarm_response_status)

    @property
    def error_message(self) -> str:
        return (self._call(_swarm_response_error_message) or b"").decode("utf-8", "replace")

    def info(self) -> Dict[str, Any]:
        i = swarm_response_info()
        i.size = ctypes.sizeof(swarm_response_info)
        errors.check(self._call(_swarm_response_get_info, byref(i)))
        return stats_dict(i)


_TEXT = (bytes, bytearray, memoryview, str)


def _as_bytes(data: Any, what: str = "engine output") -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be bytes or str, not {type(data).__name__}")


# =============================================================================================
# Engine side: the Request view handed to Python engines
# =============================================================================================

# Where the original exception of a failed Python-engine call waits for its consumer (the pool's
# result callback, Engine.infer): keyed by the request's ``user`` key, bounded.
_EXC_MAX = 4096
_last_exc: "collections.OrderedDict[int, BaseException]" = collections.OrderedDict()
_exc_lock = threading.Lock()
#: Keys for the ``user`` field of requests the binding sends (pool tasks, Engine.infer): global,
#: so that two pools never share one.
_task_keys = itertools.count(1)

# Thread-local: how deep the current thread is inside libswarm callbacks (engines, on_result,
# warm-up), so that stop/close from there raise WrongState instead of waiting for themselves.
_tls = threading.local()


def in_callback() -> int:
    """How many libswarm callbacks the calling thread is inside (0: none)."""
    return getattr(_tls, "depth", 0)


def _cb_enter() -> None:
    _tls.depth = getattr(_tls, "depth", 0) + 1


def _cb_leave() -> None:
    _tls.depth -= 1


def _keep_exc(key: int, exc: BaseException) -> None:
    if not key:
        return
    with _exc_lock:
        _last_exc[key] = exc
        _last_exc.move_to_end(key)
        while len(_last_exc) > _EXC_MAX:
            _last_exc.popitem(last=False)


def take_exception(key: int) -> Optional[BaseException]:
    """Pop the original exception recorded for request ``user`` key ``key`` (or None)."""
    if not key or not _last_exc:
        return None
    with _exc_lock:
        return _last_exc.pop(key, None)


class Request:
    """What a Python engine's ``infer`` receives: a snapshot of the C request plus the methods
    that act on the response being served. Attributes: ``id``, ``priority``, ``payload``
    (bytes), ``deadline_ns`` (0: none), ``user`` (int or None), ``model_version``,
    ``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``extras`` (a mapping; read-only
    and shared when the request has none).

    The methods are valid only while the call runs. Each holds the view's lock across its
    check and its C call, and the trampoline takes the same lock to end the view before it
    returns to C, so a late ``write`` from another thread raises :class:`~swarm.WrongState`
    atomically: it can never touch a response that was completed, reused for another request
    or freed."""

    __slots__ = ("id", "priority", "payload", "deadline_ns", "user", "model_version",
                 "temperature", "top_p", "max_tokens", "seed", "extras", "_req", "_resp",
                 "_lock")

    def __init__(self, req: int, resp: Optional[int], raw: Optional[bytes] = None, off: int = 0,
                 lock: Any = None) -> None:
        # raw/off: the request's bytes already read (a run reads its requests at once);
        # lock: shared by the views of one run (they all end on the same worker thread).
        (_size, self.priority, self.id, payload, plen, self.deadline_ns, _cancel, user,
         model, self.temperature, self.top_p, self.max_tokens, n_extras, self.seed,
         extras) = _REQ.unpack_from(raw, off) if raw is not None else \
            _REQ.unpack(_string_at(req, _REQ.size))
        self.payload = _string_at(payload, plen) if plen else b""
        self.user = user or None
        self.model_version = _string_at(model).decode() if model else None
        if n_extras and extras:
            kvs = ctypes.cast(extras, POINTER(swarm_kv))
            self.extras = {(kvs[i].key or b"").decode(): (kvs[i].value or b"").decode()
                           for i in range(n_extras)}
        else:
            self.extras = _NO_EXTRAS
        self._req = req
        self._resp = resp
        self._lock = lock or _RLock()   # reentrant: a stream callback may write again

    def _end(self) -> None:
        with self._lock:
            self._resp = None
            self._req = None

    def _call_resp(self, fn: Callable[..., int], *args: Any) -> int:
        with self._lock:
            resp = self._resp
            if resp is None:
                raise errors.WrongState("request view used after its call returned (the "
                                        "response belongs to the library again)")
            return fn(resp, *args)

    def stop_reason(self) -> int:
        """0 to go on, SWARM_ECANCELED (token fired) or SWARM_ETIMEDOUT (deadline passed)
        (``swarm_request_should_stop``). Cheap; poll it in long loops."""
        with self._lock:
            req = self._req
            if req is None:
                raise errors.WrongState("request view used after its call returned")
            return _swarm_request_should_stop(ctypes.cast(req, _REQ_P))

    def should_stop(self) -> bool:
        """Whether the engine should stop now (token fired or deadline passed)."""
        return self.stop_reason() != 0

    def write(self, data: Union[bytes, str]) -> None:
        """Append output (streamed to the stream callback, if any). Raises Canceled if the
        stream callback asked to stop, OutOfRange past max_bytes, WrongState after the call."""
        b = _as_bytes(data, "request.write data")
        errors.check(self._call_resp(_swarm_response_write, b, len(b)))

    def set_usage(self, input_units: int, output_units: int) -> None:
        """Record usage counts (e.g. tokens)."""
        _u64_arg("input_units", input_units)
        _u64_arg("output_units", output_units)
        errors.check(self._call_resp(_swarm_response_set_usage, input_units, output_units))

    def set_error(self, code: int, message: Optional[str] = None,
                  retry_after: float = 0.0) -> None:
        """Attach an error (and retry-after hint, seconds) to this request; in ``infer_batch``
        this is how one request of a batch fails."""
        msg = None if message is None else str(message).encode()[:255]
        errors.check(self._call_resp(_swarm_response_set_error, _code_arg(code), msg,
                                     _secs_ns("retry_after", retry_after)))


def _u64_arg(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    if not 0 <= v <= 0xFFFFFFFFFFFFFFFF:
        raise errors.InvalidArgument(f"{name} must be in [0, 2**64-1], got {v}")
    return v


def _code_arg(code: Any) -> int:
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"code must be a negative int swarm_err, not {type(code).__name__}")
    if not -2**31 <= code < 0:
        raise errors.InvalidArgument(f"code must be a negative swarm_err in [-2**31, -1], "
                                     f"got {code}")
    return code


def _exc_code(exc: BaseException) -> int:
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return errors.Canceled.code
    code = getattr(exc, "code", None) if isinstance(exc, errors.SwarmError) else None
    if code is None:
        code = getattr(exc, "swarm_code", None)
    if not isinstance(code, int) or isinstance(code, bool) or code >= 0:
        code = errors.InternalError.code
    return code


#: Default of ``log_level`` for Python engines: the one log line per failed call is at WARNING
#: for a :class:`~swarm.SwarmError` (an engine reporting a status) and ERROR for anything else.
ENGINE_LOG_LEVEL = "auto"


def _fail(view: Optional[Request], exc: BaseException, where: str,
          st: Optional["_PyEngineState"] = None) -> int:
    """Record ``exc`` as the failure of ``view``'s request: error code and message on the C
    response, the exception itself kept for the consumer, one log line (a traceback only for
    the first failure of each exception type on this engine)."""
    code = _exc_code(exc)
    level = st.log_level if st is not None else ENGINE_LOG_LEVEL
    if level == "auto":
        level = logging.WARNING if isinstance(exc, errors.SwarmError) else logging.ERROR
    if level is not None and log.isEnabledFor(level):
        first = True
        if st is not None:
            with st.lock:
                first = type(exc) not in st.seen
                st.seen.add(type(exc))
        log.log(level, "python engine %s %s raised %s: %s (request fails with %s)",
                st.name if st is not None else "?", where, type(exc).__name__, exc,
                errors.err_name(code),
                exc_info=(type(exc), exc, exc.__traceback__) if first else None)
    if view is not None:
        _keep_exc(view.user or 0, exc)
        msg = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:255]
        ra = getattr(exc, "retry_after", 0) or 0
        try:
            view._call_resp(_swarm_response_set_error, code, msg,
                            max(0, min(int(float(ra) * 1e9), 2**63 - 1)))
        except BaseException:
            pass
    return code


def _attach(exc: BaseException, result: Any) -> None:
    """Attach ``result`` (the failed request's Result/PoolResult) to an exception."""
    try:
        exc.result = result  # type: ignore[attr-defined]
    except Exception:   # pragma: no cover - exceptions with __slots__
        pass


def _chunk(x: Any, i: int) -> bytes:
    if isinstance(x, bytes):
        return x
    if isinstance(x, str):
        return x.encode()
    if isinstance(x, (bytearray, memoryview)):
        return bytes(x)
    raise TypeError(f"engine output chunk {i} must be bytes or str, not {type(x).__name__}")


def _emit(view: Request, out: Any) -> int:
    """Write an engine's return value into its response; returns 0 or a negative code.

    Accepted: bytes / bytearray / memoryview / str, None (the engine wrote itself), a list or
    tuple of such chunks (checked whole before anything is written), or any other iterator of
    chunks (streamed; a bad chunk stops it). Anything else -- a dict (llama-cpp-python's
    completion dict), a set, a number -- raises TypeError naming the type."""
    if out is None:
        return 0
    if isinstance(out, _TEXT):
        b = _as_bytes(out)
        return view._call_resp(_swarm_response_write, b, len(b)) if b else 0
    if isinstance(out, BaseException):
        raise out
    if isinstance(out, (list, tuple)):
        chunks = [_chunk(x, i) for i, x in enumerate(out)]
        for b in chunks:
            if b:
                rc = view._call_resp(_swarm_response_write, b, len(b))
                if rc < 0:
                    return rc
        return 0
    if isinstance(out, (collections.abc.Mapping, collections.abc.Set)) or \
            not isinstance(out, (collections.abc.Iterator, collections.abc.Generator)):
        hint = " (a dict: return the text, e.g. out['choices'][0]['text'])" \
            if isinstance(out, collections.abc.Mapping) else ""
        raise TypeError(f"engine output must be bytes, str, None, a list/tuple of bytes/str "
                        f"or an iterator of bytes/str chunks, not {type(out).__name__}{hint}")
    it = out
    try:
        for i, x in enumerate(it):
            b = _chunk(x, i)
            rc = view._call_resp(_swarm_response_write, b, len(b))
            if rc < 0:
                return rc
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    return 0


class _PyEngineState:
    """What the trampolines need, reachable from the integer key C holds. The Python engine
    object is held weakly when it allows it: the :class:`Engine` handle holds it strongly, so
    an object that owns its own engine forms a plain cycle the garbage collector can free."""
    __slots__ = ("_obj", "_ref", "name", "has_batch", "has_cancel", "has_health", "ncalls",
                 "nerrors", "lock", "log_level", "seen")

    def __init__(self, obj: Any, name: str, log_level: Optional[int]) -> None:
        try:
            self._ref = weakref.ref(obj)
            self._obj = None
        except TypeError:           # not weak-referenceable: held strongly
            self._ref = None
            self._obj = obj
        self.name = name
        self.has_batch = callable(getattr(obj, "infer_batch", None))
        self.has_cancel = callable(getattr(obj, "cancel", None))
        self.has_health = callable(getattr(obj, "health", None))
        # Call counts: itertools.count's next() is one atomic step under the GIL, so the
        # trampolines count without a lock; the value is read back from its state.
        self.ncalls = itertools.count()
        self.nerrors = itertools.count()
        self.lock = threading.Lock()   # C threads update the counters concurrently
        self.log_level = log_level
        self.seen: set = set()

    @property
    def obj(self) -> Any:
        if self._ref is None:
            return self._obj
        o = self._ref()
        if o is None:
            raise errors.WrongState(f"python engine {self.name}: its object was garbage-"
                                    "collected (keep the Engine referenced while in use)")
        return o

    def count(self, calls: int = 0, errors_: int = 0) -> None:
        for _ in range(calls):
            next(self.ncalls)
        for _ in range(errors_):
            next(self.nerrors)

    @property
    def calls(self) -> int:
        return int(repr(self.ncalls)[6:-1])     # "count(N)"

    @property
    def errors(self) -> int:
        return int(repr(self.nerrors)[6:-1])


#: key -> state of every Python engine C still references. The key is the engine's `void *self`.
_py_engines: Dict[int, _PyEngineState] = {}
_py_keys = itertools.count(1)


def _pending_task(key: int) -> Any:
    """Replaced by the pool module: the queued pool task for a request ``user`` key."""
    return None


def _skip_cancelled(view: Request) -> bool:
    """Move a pool task's future to RUNNING; True (and the request failed with Canceled) if
    the future was cancelled while the task was queued."""
    if not view.user:
        return False
    t = _pending_task(view.user)
    if t is None or t.start():
        return False
    view._call_resp(_swarm_response_set_error, errors.Canceled.code,
                    b"future cancelled while queued", 0)
    return True


def _infer_tramp(self_: Optional[int], req: Any, resp: Optional[int]) -> int:
    st = _py_engines.get(self_ or 0)
    if st is None:
        return errors.InternalError.code
    view = None
    tls = _tls
    tls.depth = getattr(tls, "depth", 0) + 1
    try:
        next(st.ncalls)
        view = Request(req, resp)
        if view.user is not None and _skip_cancelled(view):
            return errors.Canceled.code
        rc = _emit(view, st.obj.infer(view))
        return rc if rc < 0 else 0
    except BaseException as exc:  # never into C
        st.count(errors_=1)
        return _fail(view, exc, "infer", st)
    finally:
        tls.depth -= 1
        if view is not None:
            view._end()


def _infer_batch_tramp(self_: Optional[int], reqs: Any, resps: Any, n: int) -> int:
    st = _py_engines.get(self_ or 0)
    if st is None:
        return errors.InternalError.code
    views: List[Request] = []
    _cb_enter()
    try:
        st.count(calls=n)
        views = [Request(reqs[i], resps[i]) for i in range(n)]  # reqs[i]: an address
        live = [v for v in views if not _skip_cancelled(v)]
        if len(live) != n:
            if not live:
                return 0
            outs = st.obj.infer_batch(live)
            outs = list(outs) if outs is not None else [None] * len(live)
            if len(outs) != len(live):
                raise TypeError(f"infer_batch returned {len(outs)} results for {len(live)} "
                                "requests")
            full: List[Any] = [None] * n
            pos = {id(v): i for i, v in enumerate(views)}
            for v, o in zip(live, outs):
                full[pos[id(v)]] = o
            outs = full
        else:
            outs = st.obj.infer_batch(views)
        outs = list(outs) if outs is not None else [None] * n
        if len(outs) != n:
            raise TypeError(f"infer_batch returned {len(outs)} results for {n} requests")
        for i, out in enumerate(outs):
            try:
                if isinstance(out, BaseException):
                    raise out
                rc = _emit(views[i], out)
                if rc < 0:
                    views[i]._call_resp(_swarm_response_set_error, rc, None, 0)
            except BaseException as exc:
                st.count(errors_=1)
                _fail(views[i], exc, f"infer_batch[{i}]", st)
        return 0
    except BaseException as exc:
        st.count(errors_=1)
        for v in views:
            _keep_exc(v.user or 0, exc)
        return _fail(None, exc, "infer_batch", st)
    finally:
        _cb_leave()
        for v in views:
            v._end()


def _infer_run_tramp(self_: Optional[int], reqs: Any, resps: Any, n: int) -> int:
    """infer_batch of an engine without its own: ``infer`` for each request in turn, each with
    the single call's handling (the engine is flagged SWARM_ENGINE_F_SEQUENTIAL_BATCH, so a pool
    hands it runs of queued tasks: one GIL acquisition and one callback entry per run instead of
    per task). A failure fails its own request only."""
    st = _py_engines.get(self_ or 0)
    if st is None:
        return errors.InternalError.code
    tls = _tls
    tls.depth = getattr(tls, "depth", 0) + 1
    try:
        try:
            addrs = reqs[:n]
            rs = resps[:n]
            size = _REQ.size
            r0 = addrs[0]
            # The pool's requests lie back to back: read them in one go.
            raw = _string_at(r0, n * size) if addrs == list(range(r0, r0 + n * size, size)) \
                else None
            lock = _RLock()
        except BaseException as exc:  # never into C: the whole call fails
            st.count(errors_=1)
            return _fail(None, exc, "infer (run)", st)
        for i in range(n):
            view = None
            try:
                next(st.ncalls)
                view = Request(addrs[i], rs[i], raw, i * size, lock) if raw is not None \
                    else Request(addrs[i], rs[i], None, 0, lock)
                if view.user is not None and _skip_cancelled(view):
                    continue
                rc = _emit(view, st.obj.infer(view))
                if rc < 0:
                    view._call_resp(_swarm_response_set_error, rc, None, 0)
            except BaseException as exc:  # never into C
                st.count(errors_=1)
                code = _fail(view, exc, "infer", st)
                if view is None:     # the view itself failed: fail the response directly
                    try:
                        msg = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:255]
                        _swarm_response_set_error(rs[i], code, msg, 0)
                    except BaseException:
                        pass
            finally:
                if view is not None:
                    view._end()
        return 0
    finally:
        tls.depth -= 1


def _cancel_tramp(self_: Optional[int], rid: int) -> int:
    st = _py_engines.get(self_ or 0)
    if st is None or not st.has_cancel:
        return errors.NotSupported.code
    try:
        rc = st.obj.cancel(rid)
        return rc if isinstance(rc, int) and not isinstance(rc, bool) and rc < 0 else 0
    except BaseException as exc:
        return _fail(None, exc, "cancel", st)


def _health_tramp(self_: Optional[int]) -> int:
    st = _py_engines.get(self_ or 0)
    if st is None:
        return errors.InternalError.code
    if not st.has_health:
        return 0
    try:
        h = st.obj.health()
        if h is True or h is None:
            return 0
        if h is False:
            return errors.Unavailable.code
        return int(h) if int(h) < 0 else 0
    except BaseException as exc:
        return _fail(None, exc, "health", st)


def _destroy_tramp(self_: Optional[int]) -> None:
    st = _py_engines.pop(self_ or 0, None)
    if st is None:
        return
    try:
        o = st._obj if st._ref is None else st._ref()
        close = getattr(o, "close", None)
        if callable(close):
            close()
    except BaseException:
        log.exception("python engine close() raised")


# Module-level: alive as long as the interpreter, so C never calls a freed thunk.
_INFER_TRAMP = INFER_FN(_infer_tramp)
_INFER_BATCH_TRAMP = INFER_BATCH_FN(_infer_batch_tramp)
_INFER_RUN_TRAMP = INFER_BATCH_FN(_infer_run_tramp)
#: swarm_engine_ops.flags: infer_batch serves its requests one by one, as infer would.
ENGINE_F_SEQUENTIAL_BATCH = 0x1
_CANCEL_TRAMP = CANCEL_FN(_cancel_tramp)
_HEALTH_TRAMP = HEALTH_FN(_health_tramp)
_DESTROY_TRAMP = DESTROY_FN(_destroy_tramp)


def python_engines_alive() -> int:
    """How many Python engines C still references (for leak checks)."""
    return len(_py_engines)


# =============================================================================================
# The Engine handle
# =============================================================================================

def _destroy_engine(ptr: int, *_keep: Any) -> None:
    _swarm_engine_destroy(ptr)


def _clock_hooks(clock: Optional[Callable[[], int]],
                 sleep: Optional[Callable[[int], Any]]) -> tuple:
    """CFUNCTYPE clock/sleep hooks from Python callables (ns). Kept alive by the Engine."""
    cfn = CLOCK_FN()
    sfn = SLEEP_FN()
    if clock is not None:
        def _c(ctx: Any) -> int:
            try:
                return int(clock())
            except BaseException:
                log.exception("clock hook raised")
                return 0
        cfn = CLOCK_FN(_c)
    if sleep is not None:
        def _s(ctx: Any, ns: int, cancel: Any) -> int:
            try:
                rc = sleep(ns)
                return rc if isinstance(rc, int) and rc < 0 else 0
            except BaseException:
                log.exception("sleep hook raised")
                return 0
        sfn = SLEEP_FN(_s)
    return cfn, sfn


class Engine(_Handle):
    """A reference to a ``swarm_engine``. Build with the class methods (:meth:`from_python`,
    :meth:`mock`) and the decorator methods; call with :meth:`infer` / :meth:`infer_batch`.

    Thread safety: every method may be called from any thread; :meth:`infer` may run
    concurrently from many threads. Blocking: :meth:`infer` and :meth:`infer_batch` block for as
    long as the engine takes, with the GIL released (a Python engine underneath takes it back
    for its own code).
    """

    _kind = "engine"

    def __init__(self, ptr: int, *keepalive: Any, kind: str = "engine",
                 inners: Sequence["Engine"] = ()) -> None:
        # keepalive: what C may call until the engine is destroyed (hooks); it goes into the
        # finalizer. Inner engines are plain attributes: C holds its own references to them,
        # and keeping Python objects out of the finalizer keeps cycles collectable.
        super().__init__(ptr, _destroy_engine, *keepalive)
        self._inners = tuple(inners)
        self.kind = kind

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_python(cls, obj: Any, name: Optional[str] = None, *,
                    allocator: Optional[Allocator] = None,
                    log_level: Any = ENGINE_LOG_LEVEL, runs: bool = True) -> "Engine":
        """Wrap a Python object with ``infer(request)`` (see the module docstring) into an
        engine that C threads (pool workers, decorators) can call.

        ``runs`` (default True, for an object without its own ``infer_batch``): the engine is
        flagged SWARM_ENGINE_F_SEQUENTIAL_BATCH, so a pool may hand it runs of queued tasks in
        one callback (one GIL acquisition per run; see :mod:`libswarm.pool`). False: one
        callback per task, the GIL released between tasks (another thread waiting for it gets
        in sooner), at a higher cost per task.

        ``log_level``: the level of the one log line written per failed call (logger
        ``"swarm"``; the traceback only with the first failure of each exception type);
        None: no log; default ``"auto"``: WARNING for SwarmError, ERROR for other exceptions.
        The exception itself reaches the caller (``future.result()`` raises it).
        The Engine holds ``obj`` strongly; the library's registry holds it weakly."""
        if not callable(getattr(obj, "infer", None)):
            if callable(obj):
                obj = _CallableEngine(obj)
            else:
                raise TypeError("a Python engine needs an infer(request) method or must be "
                                "callable")
        nm = name or getattr(obj, "name", None) or type(obj).__name__
        if log_level is not None and log_level != "auto" and (
                isinstance(log_level, bool) or not isinstance(log_level, int)):
            raise TypeError(f"log_level must be a logging level (int) or None, not "
                            f"{type(log_level).__name__}")
        st = _PyEngineState(obj, str(nm), log_level)
        key = next(_py_keys)
        ops = swarm_engine_ops()
        ops.version = ENGINE_OPS_VERSION
        ops.name = st.name.encode()
        ops.infer = _INFER_TRAMP
        if not isinstance(runs, bool):
            raise TypeError(f"runs must be a bool, not {type(runs).__name__}")
        if st.has_batch:
            ops.infer_batch = _INFER_BATCH_TRAMP
        elif runs:
            ops.infer_batch = _INFER_RUN_TRAMP
            ops.flags = ENGINE_F_SEQUENTIAL_BATCH
        if st.has_cancel:
            ops.cancel = _CANCEL_TRAMP
        ops.health = _HEALTH_TRAMP
        ops.destroy = _DESTROY_TRAMP
        _py_engines[key] = st
        out = c_void_p()
        rc = _swarm_engine_create(byref(out), byref(ops), key, alloc_arg(allocator))
        if rc < 0:
            _py_engines.pop(key, None)  # on error C does not call destroy
            errors.raise_for(rc, "swarm_engine_create")
        e = cls(out.value, allocator, kind="python")
        e._state = st
        e._obj = obj
        # The trampolines are module-level (never freed while C could call them); the engine
        # also references them so their lifetime visibly covers the engine's.
        e._trampolines = (_INFER_TRAMP, _INFER_BATCH_TRAMP, _CANCEL_TRAMP, _HEALTH_TRAMP,
                          _DESTROY_TRAMP)
        return e

    @classmethod
    def mock(cls, *, latency: Optional[float] = None, latency_max: Optional[float] = None,
             latency_kind: Optional[MockLatency] = None, lognormal_sigma: float = 0.0,
             seed: int = 0, faults: Sequence[tuple] = (), chunk_bytes: int = 0,
             hang_probability: float = 0.0, output_bytes: int = 0, batch: bool = False,
             clock: Optional[Callable[[], int]] = None,
             sleep: Optional[Callable[[int], Any]] = None,
             allocator: Optional[Allocator] = None) -> "Engine":
        """The configurable mock engine (``swarm_engine_mock_create``).

        ``latency`` (s) with ``latency_kind`` (FIXED if only latency is given, UNIFORM if
        latency_max too); ``faults``: sequence of ``(code, probability[, retry_after_s])``;
        ``clock``/``sleep``: optional Python hooks in ns (tests). Echoes the payload unless
        ``output_bytes``."""
        o = _sized(swarm_mock_opts, _swarm_mock_opts_init)
        if latency_kind is None:
            latency_kind = MockLatency.NONE if latency is None else (
                MockLatency.UNIFORM if latency_max is not None else MockLatency.FIXED)
        o.latency_kind = int(latency_kind)
        o.latency_ns = _secs_ns("latency", latency)
        o.latency_max_ns = _secs_ns("latency_max", latency_max)
        if lognormal_sigma:
            o.lognormal_sigma = float(lognormal_sigma)
        o.seed = _nonneg_int("seed", seed)
        fl = list(faults)
        farr = (swarm_mock_fault * max(1, len(fl)))()
        for i, f in enumerate(fl):
            farr[i].code = int(f[0])
            farr[i].probability = float(f[1])
            farr[i].retry_after_ns = _secs_ns("retry_after", f[2]) if len(f) > 2 else 0
        o.faults = farr if fl else None
        o.n_faults = len(fl)
        o.chunk_bytes = _nonneg_int("chunk_bytes", chunk_bytes)
        o.hang_probability = float(hang_probability)
        o.output_bytes = _nonneg_int("output_bytes", output_bytes)
        o.batch = 1 if batch else 0
        cfn, sfn = _clock_hooks(clock, sleep)
        o.clock, o.sleep = cfn, sfn
        o.alloc = alloc_arg(allocator)
        out = c_void_p()
        errors.check(_swarm_engine_mock_create(byref(out), byref(o)), "swarm_engine_mock_create")
        return cls(out.value, cfn, sfn, allocator, kind="mock")

    def _wrap(self, create: Callable[..., int], make_args: Callable[[List[int]], tuple], *,
              keep: tuple = (), kind: str, inners: Sequence["Engine"] = ()) -> "Engine":
        """Create a decorator over ``inners`` (default: self). Each inner gets an extra C
        reference that the decorator takes over, so the Python objects keep their own."""
        inners = list(inners) or [self]
        for e in inners:
            if not isinstance(e, Engine):
                raise TypeError(f"expected a swarm.Engine, not {type(e).__name__}")
        ptrs: List[int] = []
        try:
            for e in inners:
                p = e._enter()
                try:
                    errors.check(_swarm_engine_retain(p))
                finally:
                    e._leave()
                ptrs.append(p)
            out = c_void_p()
            errors.check(create(byref(out), *make_args(ptrs)), f"swarm_engine_{kind}_create")
        except BaseException:
            for p in ptrs:
                _swarm_engine_destroy(p)  # give the extra references back
            raise
        return Engine(out.value, *keep, kind=kind, inners=inners)

    def timeout(self, timeout: float, *, clock: Optional[Callable[[], int]] = None,
                allocator: Optional[Allocator] = None) -> "Engine":
        """Per-call deadline decorator (``swarm_engine_timeout_create``); ``timeout`` seconds."""
        o = _sized(swarm_timeout_opts, _swarm_timeout_opts_init)
        o.timeout_ns = _secs_ns("timeout", timeout)
        cfn, _ = _clock_hooks(clock, None)
        o.clock = cfn
        o.alloc = alloc_arg(allocator)
        return self._wrap(_swarm_engine_timeout_create,
                          lambda p: (p[0], byref(o)), keep=(o, cfn, allocator), kind="timeout")

    def retry(self, max_attempts: int = 3, *, base: Optional[float] = None,
              cap: Optional[float] = None, budget_max_tokens: int = 0,
              budget_ratio_milli: int = 0, seed: int = 0, honor_retry_after: bool = True,
              clock: Optional[Callable[[], int]] = None,
              sleep: Optional[Callable[[int], Any]] = None,
              allocator: Optional[Allocator] = None) -> "Engine":
        """Retry decorator with exponential backoff and full jitter
        (``swarm_engine_retry_create``); durations in seconds, None for the C default."""
        o = _sized(swarm_retry_opts, _swarm_retry_opts_init)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise TypeError("max_attempts must be an int")
        o.max_attempts = max_attempts if max_attempts >= 0 else 0
        if max_attempts < 0:
            raise errors.InvalidArgument("max_attempts must be >= 1")
        if base is not None:
            o.base_ns = _secs_ns("base", base)
        if cap is not None:
            o.cap_ns = _secs_ns("cap", cap)
        if budget_max_tokens:
            o.budget_max_tokens = budget_max_tokens
        if budget_ratio_milli:
            o.budget_ratio_milli = budget_ratio_milli
        o.seed = _nonneg_int("seed", seed)
        o.honor_retry_after = 1 if honor_retry_after else 2
        cfn, sfn = _clock_hooks(clock, sleep)
        o.clock, o.sleep = cfn, sfn
        o.alloc = alloc_arg(allocator)
        return self._wrap(_swarm_engine_retry_create, lambda p: (p[0], byref(o)),
                          keep=(o, cfn, sfn, allocator), kind="retry")

    def breaker(self, *, window_size: int = 0, time_window: bool = False,
                minimum_calls: int = 0, failure_rate_pct: int = 0, half_open_probes: int = 0,
                open_time: Optional[float] = None, slow_call: Optional[float] = None,
                on_transition: Optional[Callable[[BreakerState, BreakerState, int], None]] = None,
                clock: Optional[Callable[[], int]] = None,
                allocator: Optional[Allocator] = None) -> "Engine":
        """Circuit breaker decorator (``swarm_engine_breaker_create``). ``on_transition(from,
        to, now_ns)`` runs on the thread whose call caused the change (GIL taken)."""
        o = _sized(swarm_breaker_opts, _swarm_breaker_opts_init)
        o.window_kind = 1 if time_window else 0
        for nm in ("window_size", "minimum_calls", "failure_rate_pct", "half_open_probes"):
            v = _nonneg_int(nm, locals()[nm])
            if v:
                setattr(o, nm, v)
        if open_time is not None:
            o.open_ns = _secs_ns("open_time", open_time)
        if slow_call is not None:
            o.slow_call_ns = _secs_ns("slow_call", slow_call)
        tfn = TRANSITION_FN()
        if on_transition is not None:
            def _t(ctx: Any, a: int, b: int, now: int) -> None:
                try:
                    on_transition(BreakerState(a), BreakerState(b), now)
                except BaseException:
                    log.exception("breaker on_transition raised")
            tfn = TRANSITION_FN(_t)
        o.on_transition = tfn
        cfn, _ = _clock_hooks(clock, None)
        o.clock = cfn
        o.alloc = alloc_arg(allocator)
        return self._wrap(_swarm_engine_breaker_create, lambda p: (p[0], byref(o)),
                          keep=(o, tfn, cfn, allocator), kind="breaker")

    def fallback(self, secondary: "Engine", *,
                 allocator: Optional[Allocator] = None) -> "Engine":
        """Primary (self), then ``secondary`` on failure (``swarm_engine_fallback_create``)."""
        return self._wrap(_swarm_engine_fallback_create,
                          lambda p: (p[0], p[1], alloc_arg(allocator)),
                          keep=(allocator,), kind="fallback", inners=[self, secondary])

    @staticmethod
    def split(engines: Sequence["Engine"], weights: Sequence[int], *, sticky: bool = True,
              seed: int = 0, allocator: Optional[Allocator] = None) -> "Engine":
        """Weighted routing over ``engines`` (``swarm_engine_split_create``)."""
        engines = list(engines)
        if not engines:
            raise errors.InvalidArgument("split needs at least one engine")
        if len(weights) != len(engines):
            raise errors.InvalidArgument("one weight per engine")
        w = (c_uint32 * len(engines))(*[_nonneg_int("weight", x) for x in weights])
        o = _sized(swarm_split_opts, _swarm_split_opts_init)
        o.sticky = 1 if sticky else 2
        o.seed = _nonneg_int("seed", seed)
        o.alloc = alloc_arg(allocator)
        n = len(engines)

        def args(ptrs: List[int]) -> tuple:
            arr = (c_void_p * n)(*ptrs)
            return (arr, w, n, byref(o))
        e = engines[0]._wrap(_swarm_engine_split_create, args, keep=(o, allocator), kind="split",
                             inners=engines)
        e._n_split = n
        return e

    def batcher(self, max_batch: int = 0, *, max_wait: Optional[float] = None,
                queue_capacity: int = 0, preferred_sizes: Sequence[int] = (),
                allocator: Optional[Allocator] = None) -> "Engine":
        """Dynamic batching decorator (``swarm_engine_batcher_create``)."""
        o = _sized(swarm_batcher_opts, _swarm_batcher_opts_init)
        if max_batch:
            o.max_batch = _nonneg_int("max_batch", max_batch)
        if max_wait is not None:
            o.max_wait_ns = _secs_ns("max_wait", max_wait)
        if queue_capacity:
            o.queue_capacity = _nonneg_int("queue_capacity", queue_capacity)
        ps = (c_uint32 * max(1, len(preferred_sizes)))(*preferred_sizes)
        o.n_preferred = len(preferred_sizes)
        o.preferred_sizes = ps if preferred_sizes else None
        o.alloc = alloc_arg(allocator)
        return self._wrap(_swarm_engine_batcher_create, lambda p: (p[0], byref(o)),
                          keep=(o, ps, allocator), kind="batcher")

    # -- calls ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Drop this reference (``swarm_engine_destroy``) once no call through it is running.
        Engines wrapped by decorators stay alive while the decorators hold them. Idempotent."""
        self._release()

    def _call(self, fn: Callable[..., int], *args: Any) -> int:
        p = self._enter()
        try:
            return fn(p, *args)
        finally:
            self._leave()

    @property
    def name(self) -> str:
        """The engine's name, e.g. ``"retry(breaker(mock))"`` (``swarm_engine_name``)."""
        return self._call(_swarm_engine_name).decode()

    def infer_into(self, request: InferRequest, response: Response) -> int:
        """Low level: ``swarm_engine_infer`` into a caller-owned :class:`Response`. Returns the
        status (does not raise for engine errors; raises for EINVAL/ESTATE misuse)."""
        cr = _CReq(request)
        rp = response._enter()
        try:
            pre = _swarm_response_status(rp)
            rc = self._call(_swarm_engine_infer, byref(cr.req), rp)
            post = _swarm_response_status(rp)
        finally:
            response._leave()
        # Misuse (bad request, response not fresh) leaves the response untouched: raise. An
        # engine's own EINVAL completes the response and is returned as a status.
        if rc in (errors.InvalidArgument.code, errors.WrongState.code) and \
                (pre != errors.WouldBlock.code or post == errors.WouldBlock.code):
            errors.raise_for(rc, "swarm_engine_infer")
        return rc

    def infer(self, request: Union[InferRequest, bytes, str, None] = None, *,
              stream: Optional[Callable[[bytes], Optional[bool]]] = None,
              **fields: Any) -> Result:
        """Serve one request and return its :class:`Result`; raise the status's exception
        (with ``.result`` attached) if it failed.

        ``request`` is an :class:`InferRequest`, or the payload (bytes/str) with the other
        fields as keywords (``id``, ``timeout``, ``cancel``, ``temperature``, ...).
        ``stream(chunk)`` sees each chunk as it is written (return False to stop). Blocking:
        yes, GIL released.
        """
        req = _as_request(request, fields)
        key = 0
        if not req.user:
            key = next(_task_keys)
            req = dataclasses.replace(req, user=key)
        resp = Response()
        try:
            if stream is not None:
                resp.set_stream(lambda rid, chunk: stream(chunk))
            self.infer_into(req, resp)
            res = Result(resp.data, resp.status, resp.error_message, resp.info())
        finally:
            resp.close()
        exc = take_exception(key)
        if res.status < 0 and exc is not None and _exc_code(exc) == res.status:
            _attach(exc, res)
            raise exc
        return res.raise_for_status()

    def infer_batch(self, requests: Iterable[Union[InferRequest, bytes, str]]) -> List[Result]:
        """Serve requests as one batch (``swarm_engine_infer_batch``). Returns one Result per
        request (per-request failures are in ``status``/``error``, not raised); raises only if
        the whole batch failed before running (bad arguments). Blocking: yes, GIL released."""
        reqs = [_as_request(r, {}) for r in requests]
        if not reqs:
            raise errors.InvalidArgument("empty batch")
        crs = [_CReq(r) for r in reqs]
        resps = [Response() for _ in reqs]
        try:
            n = len(reqs)
            rarr = (POINTER(swarm_request) * n)(*[ctypes.pointer(c.req) for c in crs])
            parr = (c_void_p * n)(*[r._ptr for r in resps])
            rc = self._call(_swarm_engine_infer_batch, rarr, parr, n)
            if rc < 0 and all(r.status == errors.WouldBlock.code for r in resps):
                errors.raise_for(rc, "swarm_engine_infer_batch")
            return [Result(r.data, r.status, r.error_message, r.info()) for r in resps]
        finally:
            for r in resps:
                r.close()

    def cancel(self, request_id: int) -> None:
        """Push a cancel notice (``swarm_engine_cancel``); raises NotSupported if the engine
        has no cancel slot."""
        errors.check(self._call(_swarm_engine_cancel, _nonneg_int("request_id", request_id)))

    def health(self) -> int:
        """0 if ready, else the negative code (``swarm_engine_health``); never raises for an
        unhealthy engine."""
        return self._call(_swarm_engine_health)

    @property
    def healthy(self) -> bool:
        return self.health() == 0

    # -- kind-specific introspection -----------------------------------------------------------
    def _stats(self, struct_type: type, fn: Callable[..., int]) -> Dict[str, Any]:
        s = struct_type()
        s.size = ctypes.sizeof(struct_type)
        errors.check(self._call(fn, byref(s)))
        return stats_dict(s)

    def retry_stats(self) -> Dict[str, Any]:
        """Counters of a retry engine (``swarm_engine_retry_get_stats``); InvalidArgument for
        another kind."""
        return self._stats(swarm_retry_stats, _swarm_engine_retry_get_stats)

    def breaker_stats(self) -> Dict[str, Any]:
        """Counters of a breaker (``swarm_engine_breaker_get_stats``)."""
        d = self._stats(swarm_breaker_stats, _swarm_engine_breaker_get_stats)
        d["state"] = BreakerState(d["state"])
        return d

    @property
    def breaker_state(self) -> BreakerState:
        """The breaker's state (``swarm_engine_breaker_state``)."""
        return BreakerState(errors.check(self._call(_swarm_engine_breaker_state)))

    def batcher_stats(self) -> Dict[str, Any]:
        """Counters of a batcher (``swarm_engine_batcher_get_stats``)."""
        return self._stats(swarm_batcher_stats, _swarm_engine_batcher_get_stats)

    def mock_stats(self) -> Dict[str, Any]:
        """Counters of a mock engine (``swarm_engine_mock_get_stats``)."""
        return self._stats(swarm_mock_stats, _swarm_engine_mock_get_stats)

    def mock_script(self, codes: Sequence[int]) -> None:
        """Queue scripted outcomes for a mock (``swarm_engine_mock_script``); OutOfRange past
        256 queued."""
        arr = (c_int32 * max(1, len(codes)))(*codes)
        errors.check(self._call(_swarm_engine_mock_script, arr, len(codes)))

    def split_set_weights(self, weights: Sequence[int]) -> None:
        """Replace a split's weights (``swarm_engine_split_set_weights``)."""
        arr = (c_uint32 * max(1, len(weights)))(*[_nonneg_int("weight", w) for w in weights])
        errors.check(self._call(_swarm_engine_split_set_weights, arr, len(weights)))

    def split_counts(self) -> List[int]:
        """Per-engine call counts of a split (``swarm_engine_split_get_counts``)."""
        arr = (c_uint64 * 256)()
        n = errors.check(self._call(_swarm_engine_split_get_counts, arr, 256))
        return list(arr[:n])

    def python_stats(self) -> Dict[str, int]:
        """For an engine from :meth:`from_python`: calls and errors seen by the trampolines."""
        st = getattr(self, "_state", None)
        if st is None:
            raise errors.InvalidArgument("not a Python engine")
        return {"calls": st.calls, "errors": st.errors}


class _CallableEngine:
    """Adapts a plain callable ``f(request) -> output`` to the engine protocol."""

    def __init__(self, fn: Callable[[Request], Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "callable")

    def infer(self, request: Request) -> Any:
        return self.fn(request)


def _as_request(r: Any, fields: Dict[str, Any]) -> InferRequest:
    if isinstance(r, InferRequest):
        if fields:
            return dataclasses.replace(r, **fields)
        return r
    if r is None:
        r = b""
    if isinstance(r, Mapping):
        return InferRequest(**{**r, **fields})
    return InferRequest(payload=r, **fields)
