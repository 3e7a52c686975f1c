"""Loads the kernel-side package from source text, for kernels that cannot read the server's disk.

A kernel on a gateway runs on another machine, in another environment: the package's folder
is not there. The server sends this module's source with the package's sources (one silent
request) and runs `install`, which puts a finder on `sys.meta_path` serving the package and its
submodules from that text under the private name the server uses, then imports it. Nothing is
written to the kernel's disk, and no name is added to the user's namespace (the request runs
in a namespace of its own).

Standard library only, like the rest of the package.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Mapping, Sequence


class SourceFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads `<name>` and `<name>.<module>` from source text held in memory."""

    def __init__(self, name: str, sources: Mapping[str, str]) -> None:
        self.name = name
        self.sources = dict(sources)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self.name:
            key, package = "__init__", True
        elif fullname.startswith(self.name + "."):
            key, package = fullname[len(self.name) + 1 :], False
        else:
            return None
        if key not in self.sources:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=package)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        name = module.__name__
        key = "__init__" if name == self.name else name[len(self.name) + 1 :]
        code = compile(self.sources[key], f"<{name}>", "exec")
        exec(code, module.__dict__)  # noqa: S102 (the package's own source, sent by the server)


def install(name: str, sources: Mapping[str, str]) -> types.ModuleType:
    """Serve the package `name` from `sources` (module name -> text; `__init__` is the package)
    and import it. Installing again replaces the sources (a server with a newer package)."""
    for finder in list(sys.meta_path):
        # a finder an earlier install left (its class is an earlier copy of this one)
        if type(finder).__name__ == SourceFinder.__name__ and getattr(finder, "name", 0) == name:
            sys.meta_path.remove(finder)
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]
    sys.meta_path.insert(0, SourceFinder(name, sources))
    return importlib.import_module(name)
