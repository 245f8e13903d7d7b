# SPDX-License-Identifier: MIT
"""Locating and loading libswarm, and the helper that declares each C function.

Search order (first hit wins):

1. ``$SWARM_LIBRARY``: a full path to ``libswarm.so.0`` (or any file name ctypes can load).
2. Beside this package: ``libswarm/libswarm.so.<major>``, the copy a wheel
   (``pip install .``) bundles.
3. The source tree, for development (``PYTHONPATH=python``): the newest
   ``<repo>/build*/libswarm.so.<major>``.
4. The system: ``ctypes.util.find_library("swarm")`` (ldconfig, LD_LIBRARY_PATH).

The library is loaded with :class:`ctypes.CDLL`, so every foreign call releases the GIL for its
duration: a thread blocked in ``swarm_chan_recv`` does not stop other Python threads.

At import the library's major version (``swarm_version() >> 16``) must equal
:data:`EXPECTED_MAJOR`; otherwise :class:`ImportError` is raised (liburing's rule: the soname
major is the ABI).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from typing import Any, Callable, Sequence

__all__ = ["EXPECTED_MAJOR", "lib", "lib_path", "cfunc", "has_symbol", "find_library"]

#: The ABI major version this binding was written against (include/swarm/version.h).
EXPECTED_MAJOR = 0

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(os.path.dirname(_PKG_DIR))


def find_library() -> str:
    """Return the path (or name) of the libswarm shared library to load.

    Raises ImportError when nothing is found. Does not load anything.
    """
    env = os.environ.get("SWARM_LIBRARY")
    if env:
        if os.sep in env and not os.path.exists(env):
            raise ImportError(f"SWARM_LIBRARY={env!r} does not exist")
        return env
    soname = f"libswarm.so.{EXPECTED_MAJOR}"
    beside = os.path.join(_PKG_DIR, soname)
    if os.path.isfile(beside):
        return beside
    cands = glob.glob(os.path.join(_REPO_ROOT, "build*", soname))
    cands = [c for c in cands if os.path.isfile(c)]
    if cands:
        cands.sort(key=os.path.getmtime, reverse=True)
        return cands[0]
    found = ctypes.util.find_library("swarm")
    if found:
        return found
    raise ImportError(
        "libswarm shared library not found: set SWARM_LIBRARY, install the package with pip "
        "(which bundles " + soname + "), build the tree with meson (build*/" + soname + "), "
        "or install the library system-wide")


def _load() -> tuple[ctypes.CDLL, str]:
    path = find_library()
    try:
        dll = ctypes.CDLL(path)
    except OSError as exc:
        raise ImportError(f"cannot load libswarm from {path!r}: {exc}") from exc
    try:
        ver = dll.swarm_version
    except AttributeError as exc:
        raise ImportError(f"{path!r} is not libswarm (no swarm_version)") from exc
    ver.argtypes = []
    ver.restype = ctypes.c_uint32
    major = ver() >> 16
    if major != EXPECTED_MAJOR:
        raise ImportError(
            f"libswarm at {path!r} has ABI major {major}, this binding needs {EXPECTED_MAJOR}")
    return dll, path


lib, lib_path = _load()
#: The same library through PyDLL: calls keep the GIL. Used only for calls that never block
#: (try_send/try_recv fast paths), where dropping and retaking the GIL would cost more than the
#: call itself and thrash the GIL between threads.
pylib = ctypes.PyDLL(lib_path)


def has_symbol(name: str) -> bool:
    """Whether the loaded library exports ``name`` (an older library may lack newer functions)."""
    try:
        getattr(lib, name)
        return True
    except AttributeError:
        return False


#: Every C function name the binding declares (tests compare it with src/libswarm.map).
declared: set = set()
#: name -> [(argtypes, restype)] of every declaration (tests compare them with the headers).
signatures: dict = {}
#: name -> the ctypes function of its first CDLL declaration (GIL released): libswarm.raw.
functions: dict = {}
_via_pydll: dict = {}


class _Missing:
    """Stands in for a C function the loaded library does not export."""

    def __init__(self, name: str) -> None:
        self.__name__ = name

    def __call__(self, *args: Any) -> Any:
        from .errors import NotSupported
        raise NotSupported(f"{self.__name__} is not exported by {lib_path}")


def cfunc(name: str, argtypes: Sequence[Any], restype: Any, *,
          keep_gil: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """Declare C function ``name`` next to its typed Python stub.

    The decorated stub only documents the signature; the returned object is the ctypes foreign
    function with ``argtypes`` and ``restype`` set (or a stub raising NotSupported when the loaded
    library lacks the symbol). ``keep_gil=True`` binds through PyDLL (the GIL stays held): only
    for functions that never block.
    """

    def deco(stub: Callable[..., Any]) -> Any:
        declared.add(name)
        signatures.setdefault(name, []).append((list(argtypes), restype))
        try:
            f = (pylib if keep_gil else lib)[name]   # a fresh object: argtypes are per declaration
        except AttributeError:
            return _Missing(name)
        f.argtypes = list(argtypes)
        f.restype = restype
        if name not in functions or (not keep_gil and _via_pydll.get(name)):
            functions[name] = f          # the first CDLL declaration wins
            _via_pydll[name] = keep_gil
        return f

    return deco


