"""The user's variables in brief: name, type, a bounded repr, and size, shape or dtype."""

from __future__ import annotations

import collections
import contextlib
import inspect
import io
import reprlib
import types
from collections.abc import Mapping, Sized
from typing import Any

# IPython's own names in the user namespace
INTERNAL = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
# packages whose objects have a shape or dtype worth showing
ARRAYS = ("numpy", "pandas", "torch", "xarray", "polars", "jax", "tensorflow", "dask")
_MISSING = object()


def user_names(user_ns: Mapping[str, Any], hidden: Mapping[str, Any]) -> list[str]:
    """The user's own names, sorted: no private names, IPython's names or modules."""
    return sorted(
        name
        for name, value in list(user_ns.items())
        if not name.startswith("_")
        and name not in INTERNAL
        and hidden.get(name, _MISSING) is not value
        and not isinstance(value, types.ModuleType)
    )


def short_repr(width: int) -> reprlib.Repr:
    short = reprlib.Repr()
    short.maxlevel, short.maxdict, short.maxstring, short.maxother = 2, 8, width, width
    short.maxlist = short.maxtuple = short.maxset = short.maxfrozenset = short.maxdeque = 12
    return short


def _type_name(t: type) -> str:
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _repr(name: str, value: Any, short: reprlib.Repr) -> str:
    callables = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
    try:
        if isinstance(value, callables):
            prefix = "class " if isinstance(value, type) else ""
            try:
                return prefix + name + str(inspect.signature(value))
            except (TypeError, ValueError):
                return prefix + name + "(...)"
        return short.repr(value)
    # the user's own __repr__ may raise anything; the row says so instead of failing the list
    except Exception as exc:  # noqa: BLE001
        return f"<repr failed: {type(exc).__name__}>"


def _array_details(value: Any, row: dict[str, Any]) -> None:
    # shape, dtype and dtypes are the user's objects' properties: any of them may raise anything,
    # and a missing detail is better than a missing list
    try:
        shape = getattr(value, "shape", None)
        if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
            row["shape"] = list(shape)
        dtype = getattr(value, "dtype", None)
        if dtype is not None:
            row["dtype"] = str(dtype)
        elif getattr(value, "dtypes", None) is not None:
            counts = collections.Counter(str(d) for d in value.dtypes)
            row["dtype"] = ", ".join(f"{k}({n})" for k, n in counts.most_common(6))
    except Exception:  # noqa: BLE001, S110
        pass


def describe(
    name: str, value: Any, width: int, short: reprlib.Repr | None = None
) -> dict[str, Any]:
    """One variable's row. Anything the object prints while being looked at is discarded."""
    t = type(value)
    row: dict[str, Any] = {"name": name, "type": _type_name(t)}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        row["repr"] = _repr(name, value, short or short_repr(width))[:width]
        if t.__module__.split(".")[0] in ARRAYS:
            _array_details(value, row)
        if not isinstance(value, type) and isinstance(value, Sized):
            size = _size(value)
            if size is not None:
                row["size"] = size
    return row


def _size(value: Sized) -> int | None:
    # a user's __len__ may raise anything; the row then has no size
    try:
        return len(value)
    except Exception:  # noqa: BLE001
        return None


def summarise(
    user_ns: Mapping[str, Any], hidden: Mapping[str, Any], limit: int, width: int
) -> dict[str, Any]:
    """The first `limit` user variables by name, and how many there are."""
    names = user_names(user_ns, hidden)
    short = short_repr(width)
    return {
        "total": len(names),
        "variables": [describe(name, user_ns[name], width, short) for name in names[:limit]],
    }
