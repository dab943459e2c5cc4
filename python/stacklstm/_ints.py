"""Integers on their way into C: ctypes keeps only the low bits of a Python int that does
not fit the C type (2**64 + 4 becomes 4) and truncates nothing else for us, so every integer
argument is checked here first."""

from __future__ import annotations

import operator
from typing import Any, Tuple

__all__ = ["INT32", "INT64", "UINT64", "checked_int"]

INT32 = (-2 ** 31, 2 ** 31 - 1)
INT64 = (-2 ** 63, 2 ** 63 - 1)
UINT64 = (0, 2 ** 64 - 1)
_NAMES = {INT32: "int32_t", INT64: "int64_t", UINT64: "uint64_t"}


def checked_int(value: Any, name: str, bounds: Tuple[int, int] = INT64) -> int:
    """`value` as a Python int that fits the C integer type of `bounds`, else OverflowError.
    Integers only (operator.index): a float such as 2.7 is a TypeError, not 2."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, got %r (%s)"
                        % (name, value, type(value).__name__)) from None
    lo, hi = bounds
    if not lo <= v <= hi:
        raise OverflowError("%s = %d does not fit the library's %s (range [%d, %d])"
                            % (name, v, _NAMES[bounds], lo, hi))
    return v
