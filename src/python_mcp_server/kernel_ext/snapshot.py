"""Carry the user's variables across a kernel restart: pickle each one alone, then restore.

Each global is pickled on its own with cloudpickle (stdlib pickle if the interpreter lacks it),
so one that cannot make the trip is reported with the reason and the rest still travel.
"""

from __future__ import annotations

import json
import os
import pickle
import types
from collections.abc import Mapping, MutableMapping
from typing import Any

from . import variables

STATE_FILE = "state.pkl"
SAVED_FILE = "saved.json"
LOADED_FILE = "loaded.json"


def _pickler() -> Any:
    try:
        import cloudpickle
    except ImportError:
        return pickle
    return cloudpickle


def pickle_names(
    user_ns: Mapping[str, Any], hidden: Mapping[str, Any], limit: int
) -> tuple[dict[str, bytes], dict[str, str]]:
    """Each user global pickled alone, at most `limit` bytes in all; and why others are not."""
    pickler = _pickler()
    blobs: dict[str, bytes] = {}
    dropped: dict[str, str] = {}
    total = 0
    for name, value in list(user_ns.items()):
        if name.startswith("_") or name in variables.INTERNAL:
            continue
        if name in hidden and hidden[name] is value:
            continue
        if isinstance(value, types.ModuleType):
            dropped[name] = "it is a module; import it again"
            continue
        try:
            blob = pickler.dumps(value)
        # an object's __reduce__ may raise anything; it costs that one name, which is reported
        except BaseException as exc:  # noqa: BLE001
            dropped[name] = f"it cannot be pickled: {type(exc).__name__}: {exc}"[:300]
            continue
        if total + len(blob) > limit:
            dropped[name] = f"it is too large to carry over ({len(blob)} bytes pickled)"
            continue
        total += len(blob)
        blobs[name] = blob
    return blobs, dropped


def dump(
    user_ns: Mapping[str, Any], hidden: Mapping[str, Any], limit: int
) -> tuple[bytes, list[str], dict[str, str]]:
    """The pickled globals as one blob, the names in it, and why others are not."""
    blobs, dropped = pickle_names(user_ns, hidden, limit)
    return pickle.dumps(blobs, protocol=pickle.HIGHEST_PROTOCOL), list(blobs), dropped


def save(user_ns: Mapping[str, Any], hidden: Mapping[str, Any], folder: str, limit: int) -> None:
    """Write the pickled globals to `folder/state.pkl` and what happened to `saved.json`."""
    blob, saved, dropped = dump(user_ns, hidden, limit)
    with open(os.path.join(folder, STATE_FILE), "wb") as f:
        f.write(blob)
    with open(os.path.join(folder, SAVED_FILE), "w") as f:
        json.dump({"saved": saved, "dropped": dropped}, f)


def restore(user_ns: MutableMapping[str, Any], blob: bytes) -> tuple[list[str], dict[str, str]]:
    """Unpickle a blob of `dump` into `user_ns`: the names restored, and why others were not."""
    _pickler()  # objects pickled by value need cloudpickle importable
    blobs = pickle.loads(blob)  # noqa: S301 - written by this kernel's predecessor, same server
    restored: list[str] = []
    dropped: dict[str, str] = {}
    for name, one in blobs.items():
        try:
            user_ns[name] = pickle.loads(one)  # noqa: S301 - as above
            restored.append(name)
        # unpickling runs the object's own code: any failure costs that one name, reported
        except BaseException as exc:  # noqa: BLE001
            dropped[name] = f"it could not be restored: {type(exc).__name__}: {exc}"[:300]
    return restored, dropped


def load(user_ns: MutableMapping[str, Any], folder: str) -> None:
    """Unpickle `folder/state.pkl` into `user_ns`; write what happened to `loaded.json`."""
    with open(os.path.join(folder, STATE_FILE), "rb") as f:
        blob = f.read()
    restored, dropped = restore(user_ns, blob)
    with open(os.path.join(folder, LOADED_FILE), "w") as f:
        json.dump({"restored": restored, "dropped": dropped}, f)
