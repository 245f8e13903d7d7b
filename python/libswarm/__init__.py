# SPDX-License-Identifier: MIT
"""libswarm for Python: a ctypes binding over the C library, standard library only.

Import name and distribution name: ``libswarm`` (``import libswarm as swarm`` reads well).

Modules: :mod:`swarm.errors` (exceptions, one per SWARM_E* code), :mod:`swarm.common` (version,
clock, allocator hooks, cancellation token), :mod:`swarm.chan` (byte and object channels),
:mod:`swarm.engine` (engines, Python engines, decorators, mock), :mod:`swarm.policy` (scaling
policy), :mod:`swarm.reconcile` (reconcile loop), :mod:`swarm.pool` (agent pool),
:mod:`swarm.metrics` (Prometheus / JSON rendering). Modules whose C side is not in the loaded
library import fine; their calls raise NotSupported.

Threading: the library is loaded with ctypes.CDLL, so every blocking C call releases the GIL;
C threads that call back into Python (engines, observe/actuate callbacks) take it.
"""
from ._lib import EXPECTED_MAJOR, lib_path, has_symbol
from . import _threads  # noqa: F401  (keeps Python thread states on library threads)
from .errors import *  # noqa: F401,F403
from .errors import ERROR_TABLE, SwarmError, HandleClosed
from .common import (Allocator, CancelToken, WAIT_FOREVER, library_path, now_ns, version,
                     version_info, version_string)
from .chan import Channel, DropReason, FullMode, ObjectChannel

#: The loaded library's version ("0.1.0"): the package is versioned with the C library.
__version__ = version_string()
from .engine import (BreakerState, Engine, InferRequest, MockLatency, Request, Response, Result,
                     error_is_failure, error_retryable)
from .policy import (Decision, FallbackBehavior, HpaRules, Metric, MetricKind, Mode, Observation,
                     Policy, PolicyConfig, Rate, RateType, Select, Step, rule_name)
from .pool import Pool, PoolConfig, PoolResult
from .reconcile import ReconcileConfig, ReconcileLoop
from ._handle import shutdown
from .metrics import Metrics, MetricsFormat
from . import sim  # noqa: E402,F401  (the simulator: swarm.sim.simulate, swarm.sim.Trace)
