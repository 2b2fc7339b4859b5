"""Exceptions: one class per ``dlv_status``, all subclasses of DisclvlmError."""
from __future__ import annotations

from typing import Dict, Optional, Type

from . import _ffi


class DisclvlmError(Exception):
    """A libdisclvlm call failed.

    ``status`` is the ``dlv_status`` code (an int, see ``Status``), ``message``
    the library's message (``dlv_last_error()``), which names the file, tensor,
    field or argument at fault. ``str(e)`` is the message.
    """

    status: int = -1

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        # One argument only: OSError subclasses would read (status, message)
        # as (errno, strerror).
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(DisclvlmError, ValueError):
    """DLV_E_INVALID_ARG: a bad handle, size, option or input array."""
    status = 1


class DisclvlmIOError(DisclvlmError, OSError):
    """DLV_E_IO: a file could not be opened, read or written."""
    status = 2


class FormatError(DisclvlmError):
    """DLV_E_FORMAT: a file's content is malformed."""
    status = 3


class UnsupportedError(DisclvlmError):
    """DLV_E_UNSUPPORTED: valid input that this build cannot handle."""
    status = 4


class OutOfMemoryError(DisclvlmError, MemoryError):
    """DLV_E_NOMEM: an allocation failed."""
    status = 5


class BackendError(DisclvlmError):
    """DLV_E_BACKEND: the compute backend is missing or failed."""
    status = 6


class DisclvlmNotImplementedError(DisclvlmError, NotImplementedError):
    """DLV_E_NOT_IMPLEMENTED: declared but not implemented in this version."""
    status = 7


class NumericError(DisclvlmError, ArithmeticError):
    """DLV_E_NUMERIC: a NaN or Inf appeared."""
    status = 8


class CancelledError(DisclvlmError):
    """DLV_E_CANCELLED: ``Session.cancel()`` stopped the call."""
    status = 9


class BufferTooSmallError(DisclvlmError):
    """DLV_E_BUFFER_TOO_SMALL: an output buffer was too small (a bug here)."""
    status = 10


_BY_STATUS: Dict[int, Type[DisclvlmError]] = {
    cls.status: cls
    for cls in (InvalidArgumentError, DisclvlmIOError, FormatError, UnsupportedError,
                OutOfMemoryError, BackendError, DisclvlmNotImplementedError, NumericError,
                CancelledError, BufferTooSmallError)
}


def error_for(status: int, message: str) -> DisclvlmError:
    """The exception for a status code and a message."""
    cls = _BY_STATUS.get(status, DisclvlmError)
    return cls(message, status)


def check(status: int) -> None:
    """Raises the exception for status unless it is DLV_OK (0).

    Must run on the thread that made the failing call, before any other
    libdisclvlm call: the message is thread-local in the library.
    """
    if status == 0:
        return
    raw = _ffi.lib.dlv_last_error()
    message = raw.decode("utf-8", "replace") if raw else ""
    if not message:
        name = _ffi.lib.dlv_status_str(status)
        message = name.decode("utf-8", "replace") if name else "status %d" % status
    raise error_for(status, message)
