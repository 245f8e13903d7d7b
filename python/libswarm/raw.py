# SPDX-License-Identifier: MIT
"""The raw ctypes mirror of the C API, apart from the Pythonic layer.

Every exported function the binding declares, under its C name, with ``argtypes``/``restype``
set from its header prototype (``python/tests/test_abi.py`` checks each against
``include/swarm/*.h``), and every struct mirror and callback type::

    from libswarm import raw
    opts = raw.swarm_chan_opts()
    raw.swarm_chan_opts_init(ctypes.byref(opts))

Nothing here checks arguments, converts errors or manages lifetimes: return codes are the C
codes, pointers are plain integers, and freeing is the caller's job. The functions release the
GIL while they run (CDLL). Use the Pythonic classes (``libswarm.Channel``, ``Pool``, ...)
unless you are writing a binding of your own.

The namespace is built from the declarations of the package's modules, so a function declared
anywhere in ``libswarm`` appears here.
"""
from __future__ import annotations

import ctypes
import importlib
import pkgutil

from . import _lib

_pkg = importlib.import_module(__package__)
for _m in pkgutil.iter_modules(_pkg.__path__):
    if _m.name not in ("raw",) and not _m.name.startswith("__"):
        _mod = importlib.import_module(f"{__package__}.{_m.name}")
        for _name, _v in vars(_mod).items():
            if _name.startswith("swarm_") and isinstance(_v, type) and \
                    issubclass(_v, ctypes.Structure):
                globals()[_name] = _v
            elif _name.isupper() and _name.endswith("_FN") and isinstance(_v, type):
                globals()[_name] = _v      # CFUNCTYPE callback types, e.g. RESULT_FN

globals().update(_lib.functions)
__all__ = sorted(n for n in globals() if n.startswith("swarm_") or n.endswith("_FN"))
del _pkg, _m
