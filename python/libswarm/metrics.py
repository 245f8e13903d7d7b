# SPDX-License-Identifier: MIT
"""The metrics registry (include/swarm/metrics.h): one snapshot of registered channels, pools and
reconcile loops, rendered as Prometheus text or as JSON (KEDA metrics-api).

::

    m = swarm.Metrics()
    m.add("requests", channel); m.add("agents", pool); m.add("scaler", loop)
    text = m.render()                 # Prometheus exposition 0.0.4
    doc = m.render_json()             # dict, via json.loads

The C registry borrows the objects. The Python registry keeps them alive and, for the length of
every render, holds each one open (as an in-flight call), so none can be destroyed under it; a
render after one of them was closed raises HandleClosed. Thread safety: any thread; renders of one
registry serialize in C. Blocking: briefly (the registry's mutex and the objects' stats locks).
"""
from __future__ import annotations

import ctypes
import enum
import json
from ctypes import POINTER, Structure, byref, c_char_p, c_int, c_size_t, c_uint32, c_void_p
from typing import Any, Dict, List, Optional, Tuple

from . import errors
from ._handle import _Handle
from ._lib import cfunc
from .common import Allocator, alloc_arg, swarm_allocator

__all__ = ["Metrics", "MetricsFormat"]


class MetricsFormat(enum.IntEnum):
    PROMETHEUS = 1
    JSON = 2


class swarm_metrics_opts(Structure):
    _fields_ = [("size", c_uint32), ("max_objects", c_uint32),
                ("alloc", POINTER(swarm_allocator))]


@cfunc("swarm_metrics_opts_init", [POINTER(swarm_metrics_opts)], c_int)
def _swarm_metrics_opts_init(o) -> int:
    """Defaults + size."""


@cfunc("swarm_metrics_create", [POINTER(c_void_p), POINTER(swarm_metrics_opts)], c_int)
def _swarm_metrics_create(out, o) -> int:
    """Create a registry."""


@cfunc("swarm_metrics_destroy", [c_void_p], None)
def _swarm_metrics_destroy(m) -> None:
    """Destroy a registry (the objects are untouched)."""


@cfunc("swarm_metrics_add_chan", [c_void_p, c_char_p, c_void_p], c_int)
def _swarm_metrics_add_chan(m, name, ch) -> int:
    """Register a channel."""


@cfunc("swarm_metrics_add_pool", [c_void_p, c_char_p, c_void_p], c_int)
def _swarm_metrics_add_pool(m, name, p) -> int:
    """Register a pool."""


@cfunc("swarm_metrics_add_reconcile", [c_void_p, c_char_p, c_void_p], c_int)
def _swarm_metrics_add_reconcile(m, name, r) -> int:
    """Register a reconcile loop."""


@cfunc("swarm_metrics_add_engine", [c_void_p, c_char_p, c_void_p], c_int)
def _swarm_metrics_add_engine(m, name, e) -> int:
    """Register an engine decorator (retry, breaker or batcher); ENOTSUP for another kind."""


@cfunc("swarm_metrics_chan_rejected", [c_void_p, c_void_p, ctypes.c_uint64], c_int)
def _swarm_metrics_chan_rejected(m, ch, n) -> int:
    """Count n refused or failed sends to a registered channel (lock-free)."""


@cfunc("swarm_metrics_set_loop_bounds",
       [c_void_p, c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_double], c_int)
def _swarm_metrics_set_loop_bounds(m, r, min_replicas, max_replicas, target) -> int:
    """Export a registered loop's policy bounds and per-replica target."""


@cfunc("swarm_metrics_count", [c_void_p], c_uint32)
def _swarm_metrics_count(m) -> int:
    """Objects registered."""


@cfunc("swarm_metrics_render", [c_void_p, c_int, c_void_p, c_size_t, POINTER(c_size_t)], c_int)
def _swarm_metrics_render(m, fmt, buf, n, written) -> int:
    """Render into a caller buffer; ERANGE if too small."""


@cfunc("swarm_metrics_render_bound", [c_void_p, c_int, POINTER(c_size_t)], c_int)
def _swarm_metrics_render_bound(m, fmt, size) -> int:
    """Largest buffer a render can need."""


def _destroy_metrics(ptr: int, *_keep: Any) -> None:
    _swarm_metrics_destroy(ptr)


class Metrics(_Handle):
    """A metrics registry (``swarm_metrics``). ``max_objects`` slots (C default 16, at most
    1024). Raises InvalidArgument for bad options, OutOfMemory."""

    _kind = "metrics registry"
    _shutdown_rank = 0

    def __init__(self, max_objects: int = 0, *, allocator: Optional[Allocator] = None) -> None:
        if isinstance(max_objects, bool) or not isinstance(max_objects, int) or max_objects < 0:
            raise TypeError("max_objects must be a non-negative int")
        o = swarm_metrics_opts()
        errors.check(_swarm_metrics_opts_init(byref(o)))
        o.size = ctypes.sizeof(swarm_metrics_opts)
        if max_objects:
            o.max_objects = max_objects
        o.alloc = alloc_arg(allocator)
        out = c_void_p()
        errors.check(_swarm_metrics_create(byref(out), byref(o)), "swarm_metrics_create")
        self._objects: List[Tuple[str, _Handle]] = []
        super().__init__(out.value, _destroy_metrics, allocator, self._objects)

    def close(self) -> None:
        """Destroy the registry (the registered objects stay). Idempotent."""
        self._release()

    def add(self, name: str, obj: Any) -> None:
        """Export a :class:`~swarm.Channel`/:class:`~swarm.ObjectChannel`, :class:`~swarm.Pool`
        or :class:`~swarm.ReconcileLoop` under ``name`` ([A-Za-z_][A-Za-z0-9_-]{0,62}).
        InvalidArgument for a bad or duplicate name or a full registry; TypeError for another
        kind of object."""
        from .chan import _ChanBase
        from .pool import Pool
        from .reconcile import ReconcileLoop
        if not isinstance(name, str):
            raise TypeError("name must be a str")
        if isinstance(obj, _ChanBase):
            fn = _swarm_metrics_add_chan
        elif isinstance(obj, Pool):
            fn = _swarm_metrics_add_pool
        elif isinstance(obj, ReconcileLoop):
            fn = _swarm_metrics_add_reconcile
        else:
            raise TypeError(f"cannot export a {type(obj).__name__}")
        p = self._enter()
        try:
            op = obj._enter()
            try:
                errors.check(fn(p, name.encode(), op), f"add {name!r}")
            finally:
                obj._leave()
            self._objects.append((name, obj))
        finally:
            self._leave()

    def __len__(self) -> int:
        """Objects registered (``swarm_metrics_count``)."""
        p = self._enter()
        try:
            return int(_swarm_metrics_count(p))
        finally:
            self._leave()

    def render_bound(self, fmt: MetricsFormat = MetricsFormat.PROMETHEUS) -> int:
        """The largest buffer a render in ``fmt`` can need (``swarm_metrics_render_bound``)."""
        n = c_size_t()
        p = self._enter()
        try:
            errors.check(_swarm_metrics_render_bound(p, int(fmt), byref(n)))
        finally:
            self._leave()
        return n.value

    def render(self, fmt: MetricsFormat = MetricsFormat.PROMETHEUS) -> str:
        """One snapshot of every registered object (``swarm_metrics_render``), as text."""
        p = self._enter()
        held: List[_Handle] = []
        try:
            for name, obj in self._objects:
                try:
                    obj._enter()
                except errors.HandleClosed:
                    raise errors.HandleClosed(
                        f"{obj._kind} {name!r} was closed; the registry still refers to it")
                held.append(obj)
            size = c_size_t()
            errors.check(_swarm_metrics_render_bound(p, int(fmt), byref(size)))
            for _ in range(4):
                buf = ctypes.create_string_buffer(max(size.value, 1))
                w = c_size_t()
                rc = _swarm_metrics_render(p, int(fmt), buf, len(buf), byref(w))
                if rc == errors.OutOfRange.code:
                    size.value = max(w.value, 2 * len(buf))
                    continue
                errors.check(rc)
                return buf.raw[:w.value].decode("utf-8", "replace")
            raise errors.OutOfRange("render kept outgrowing its buffer")
        finally:
            for obj in held:
                obj._leave()
            self._leave()

    def render_json(self) -> Dict[str, Any]:
        """The JSON rendering, parsed."""
        return json.loads(self.render(MetricsFormat.JSON))

    def _render_into(self, fmt: int, buf: Any, n: int) -> Tuple[int, int]:
        """Low level: render into a caller buffer; returns (rc, written)."""
        p = self._enter()
        try:
            w = c_size_t()
            return _swarm_metrics_render(p, int(fmt), buf, n, byref(w)), w.value
        finally:
            self._leave()
