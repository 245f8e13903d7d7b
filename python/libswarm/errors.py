# SPDX-License-Identifier: MIT
"""libswarm error codes as Python exceptions.

Every ``SWARM_E*`` code has one exception class. Each class carries ``code`` (the negative C
value), ``name`` (exactly ``swarm_err_name(code)``, e.g. ``"SWARM_ECLOSED"``) and ``message``
(exactly ``swarm_strerror(code)``). The classes are also reachable under their C names, e.g.
``swarm.errors.SWARM_ECLOSED is swarm.Closed``. Where a builtin exception means the same thing the
class also derives from it (``TimedOut`` is a ``TimeoutError``, ``InvalidArgument`` a
``ValueError``), so generic ``except`` clauses keep working.

The table below must equal the C table (``SWARM_ERR_MAP`` in include/swarm/common.h); the test
suite checks every code against ``swarm_err_name`` and ``swarm_strerror``.

Thread safety: everything here is immutable after import.
"""
from __future__ import annotations

import ctypes
import queue
from typing import Dict, Optional, Type

from ._lib import cfunc

__all__ = [
    "SwarmError", "InvalidArgument", "OutOfMemory", "WouldBlock", "TimedOut", "Closed",
    "Canceled", "NotSupported", "WrongState", "Unavailable", "Overloaded", "BreakerOpen",
    "BudgetExhausted", "OutOfRange", "InternalError", "HandleClosed", "ChannelEmpty",
    "ChannelFull", "RecvTimeout", "SendTimeout", "ERROR_TABLE",
    "error_class", "raise_for", "check", "strerror", "err_name", "OK",
]

OK = 0


@cfunc("swarm_strerror", [ctypes.c_int], ctypes.c_char_p, keep_gil=True)
def _swarm_strerror(err: int) -> bytes:
    """Static message for a code; never NULL. Non-blocking, any thread."""


@cfunc("swarm_err_name", [ctypes.c_int], ctypes.c_char_p, keep_gil=True)
def _swarm_err_name(err: int) -> bytes:
    """Static name for a code ("SWARM_ECLOSED"); never NULL. Non-blocking, any thread."""


def strerror(code: int) -> str:
    """``swarm_strerror(code)`` as str. Non-blocking."""
    return _swarm_strerror(int(code)).decode()


def err_name(code: int) -> str:
    """``swarm_err_name(code)`` as str. Non-blocking."""
    return _swarm_err_name(int(code)).decode()


class SwarmError(Exception):
    """Base of every libswarm error. ``code`` is the negative ``swarm_err`` value."""

    code: int = 0
    name: str = "SWARM_EUNKNOWN"
    message: str = "unknown error"

    def __init__(self, detail: Optional[str] = None, *, code: Optional[int] = None) -> None:
        if code is not None:
            self.code = code
        self.detail = detail
        text = self.message if detail is None else f"{self.message}: {detail}"
        super().__init__(text)

    def __reduce__(self):  # picklable across processes
        return (type(self), (self.detail,), {"code": self.code})


# The table: (python class name, C code, C name, C message, extra builtin base or None).
# Keep in the order of SWARM_ERR_MAP.
_SPEC = [
    ("InvalidArgument", -1, "SWARM_EINVAL", "invalid argument", ValueError),
    ("OutOfMemory", -2, "SWARM_ENOMEM", "out of memory", MemoryError),
    ("WouldBlock", -3, "SWARM_EAGAIN", "operation would block", BlockingIOError),
    ("TimedOut", -4, "SWARM_ETIMEDOUT", "timed out", TimeoutError),
    ("Closed", -5, "SWARM_ECLOSED", "object closed", None),
    ("Canceled", -6, "SWARM_ECANCELED", "operation canceled", None),
    ("NotSupported", -7, "SWARM_ENOTSUP", "not supported", NotImplementedError),
    ("WrongState", -8, "SWARM_ESTATE", "object in wrong state", None),
    ("Unavailable", -9, "SWARM_EUNAVAILABLE", "service unavailable", None),
    ("Overloaded", -10, "SWARM_EOVERLOADED", "service overloaded", None),
    ("BreakerOpen", -11, "SWARM_EBREAKER_OPEN", "circuit breaker open", None),
    ("BudgetExhausted", -12, "SWARM_EBUDGET", "retry budget exhausted", None),
    ("OutOfRange", -13, "SWARM_ERANGE", "value out of range", None),
    ("InternalError", -99, "SWARM_EINTERNAL", "internal error (bug)", None),
]

#: code -> exception class, for every code of the C table.
ERROR_TABLE: Dict[int, Type[SwarmError]] = {}
_BY_NAME: Dict[str, Type[SwarmError]] = {}

for _pyname, _code, _cname, _msg, _extra in _SPEC:
    _bases = (SwarmError,) if _extra is None else (SwarmError, _extra)
    _cls = type(_pyname, _bases, {
        "code": _code, "name": _cname, "message": _msg, "__module__": __name__,
        "__doc__": f"{_cname} ({_code}): {_msg}.",
        "__reduce__": SwarmError.__reduce__,
        "__str__": Exception.__str__,
    })
    globals()[_pyname] = _cls
    globals()[_cname] = _cls
    ERROR_TABLE[_code] = _cls
    _BY_NAME[_cname] = _cls
del _pyname, _code, _cname, _msg, _extra, _bases, _cls

# Names for type checkers (the loop above defines them at runtime).
InvalidArgument: Type[SwarmError] = ERROR_TABLE[-1]
OutOfMemory: Type[SwarmError] = ERROR_TABLE[-2]
WouldBlock: Type[SwarmError] = ERROR_TABLE[-3]
TimedOut: Type[SwarmError] = ERROR_TABLE[-4]
Closed: Type[SwarmError] = ERROR_TABLE[-5]
Canceled: Type[SwarmError] = ERROR_TABLE[-6]
NotSupported: Type[SwarmError] = ERROR_TABLE[-7]
WrongState: Type[SwarmError] = ERROR_TABLE[-8]
Unavailable: Type[SwarmError] = ERROR_TABLE[-9]
Overloaded: Type[SwarmError] = ERROR_TABLE[-10]
BreakerOpen: Type[SwarmError] = ERROR_TABLE[-11]
BudgetExhausted: Type[SwarmError] = ERROR_TABLE[-12]
OutOfRange: Type[SwarmError] = ERROR_TABLE[-13]
InternalError: Type[SwarmError] = ERROR_TABLE[-99]


class HandleClosed(InvalidArgument):  # type: ignore[misc, valid-type]
    """Misuse: a method was called on a handle after ``close()``/``destroy()``.

    Raised by the binding before anything reaches C (a SWARM_EINVAL in spirit: the C library
    would have been handed a dangling pointer).
    """


class ChannelEmpty(WouldBlock, queue.Empty):  # type: ignore[misc, valid-type]
    """A receive that may not wait found the channel empty (SWARM_EAGAIN); also a
    :class:`queue.Empty`."""


class RecvTimeout(TimedOut, queue.Empty):  # type: ignore[misc, valid-type]
    """A receive's timeout elapsed with nothing to take (SWARM_ETIMEDOUT); also a
    :class:`queue.Empty` (and a TimeoutError)."""


class ChannelFull(WouldBlock, queue.Full):  # type: ignore[misc, valid-type]
    """A send that may not wait found the channel full (SWARM_EAGAIN); also a
    :class:`queue.Full`."""


class SendTimeout(TimedOut, queue.Full):  # type: ignore[misc, valid-type]
    """A send's timeout elapsed with no room (SWARM_ETIMEDOUT); also a :class:`queue.Full`
    (and a TimeoutError)."""


_RECV_CLS = {-3: ChannelEmpty, -4: RecvTimeout}
_SEND_CLS = {-3: ChannelFull, -4: SendTimeout}


def raise_recv(code: int, detail: Optional[str] = None) -> None:
    """raise_for, with the queue.Empty flavours for EAGAIN / ETIMEDOUT."""
    cls = _RECV_CLS.get(code)
    if cls is not None:
        raise cls(detail)
    raise_for(code, detail)


def raise_send(code: int, detail: Optional[str] = None) -> None:
    """raise_for, with the queue.Full flavours for EAGAIN / ETIMEDOUT."""
    cls = _SEND_CLS.get(code)
    if cls is not None:
        raise cls(detail)
    raise_for(code, detail)


def error_class(code: int) -> Type[SwarmError]:
    """The exception class for ``code`` (SwarmError for an unknown negative code)."""
    return ERROR_TABLE.get(code, SwarmError)


def raise_for(code: int, detail: Optional[str] = None) -> None:
    """Raise the exception for negative ``code``; return for ``code >= 0``."""
    if code >= 0:
        return
    cls = ERROR_TABLE.get(code)
    if cls is None:
        raise SwarmError(detail or f"unknown code {code}", code=code)
    raise cls(detail)


def check(code: int, detail: Optional[str] = None) -> int:
    """Return ``code`` if it is >= 0 (success or a count), else raise its exception."""
    if code < 0:
        raise_for(code, detail)
    return code


def errcheck(result: int, func, args) -> int:  # ctypes errcheck protocol
    """ctypes ``errcheck`` hook: negative results raise, others pass through."""
    if result < 0:
        raise_for(result, getattr(func, "__name__", None))
    return result
