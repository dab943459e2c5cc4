"""Exceptions: one class per slstm_status, each carrying the library's last-error text."""

from typing import Optional

from ._ints import INT32, checked_int
from ._lib import lib

__all__ = ["StackLSTMError", "InvalidArgumentError", "ShapeMismatchError", "OutOfRangeError",
           "SizeOverflowError", "OutOfMemoryError", "BackendUnavailableError",
           "UnsupportedError", "BackendFailureError", "AliasingError", "InternalError",
           "SessionBusyError", "SlotsFullError",
           "status_string", "check"]


class StackLSTMError(Exception):
    """A call into libstacklstm failed. `status` is the slstm_status value, `status_name` the
    library's static text for it and `message` its per-thread last-error text."""

    status: Optional[int] = None

    def __init__(self, status: int, message: str, call: Optional[str] = None) -> None:
        self.status = status
        self.status_name = status_string(status)
        self.message = message
        self.call = call
        where = "%s: " % call if call else ""
        super().__init__("%s%s: %s" % (where, self.status_name, message))


class InvalidArgumentError(StackLSTMError, ValueError):
    status = 1


class ShapeMismatchError(StackLSTMError, ValueError):
    status = 2


class OutOfRangeError(StackLSTMError, ValueError):
    status = 3


class SizeOverflowError(StackLSTMError, OverflowError):
    status = 4


class OutOfMemoryError(StackLSTMError, MemoryError):
    status = 5


class BackendUnavailableError(StackLSTMError, RuntimeError):
    status = 6


class UnsupportedError(StackLSTMError, NotImplementedError):
    status = 7


class BackendFailureError(StackLSTMError, RuntimeError):
    status = 8


class AliasingError(StackLSTMError, ValueError):
    status = 9


class InternalError(StackLSTMError, RuntimeError):
    status = 10


class SessionBusyError(StackLSTMError, RuntimeError):
    """The session was running a call on another thread (the C library refuses, rather than
    corrupts; this package's Session also serialises its own calls with a lock)."""
    status = 11


class SlotsFullError(StackLSTMError, RuntimeError):
    """No stream slot is free: every one of the session's slots is open (or it has none);
    close a stream first (stacklstm.Streams)."""
    status = 12


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, ShapeMismatchError, OutOfRangeError, SizeOverflowError,
    OutOfMemoryError, BackendUnavailableError, UnsupportedError, BackendFailureError,
    AliasingError, InternalError, SessionBusyError, SlotsFullError)}


def status_string(status: int) -> str:
    """The library's static text for a status (read from the library at run time)."""
    return lib.slstm_status_string(checked_int(status, "status", INT32)).decode("utf-8",
                                                                                "replace")


def last_error() -> str:
    return lib.slstm_last_error().decode("utf-8", "replace")


def check(status: int, call: Optional[str] = None) -> None:
    """Raises the exception of `status` (with the last-error text) unless it is SLSTM_OK."""
    if status != 0:
        raise _BY_STATUS.get(status, StackLSTMError)(status, last_error(), call)
