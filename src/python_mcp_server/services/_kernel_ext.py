"""How the server reaches the kernel-side package `python_mcp_server.kernel_ext`.

The package is never imported here: it runs inside kernels, whose interpreter may not be the
server's and may not have `python_mcp_server` installed. Each kernel loads it from its directory
on disk, with importlib, under the private module name `__pmcp__`, the first time one of the
expressions below runs there. The expressions are single lines and bind no names in the user's
namespace (everything lives in lambda parameters and `sys.modules`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KERNEL_EXT_DIR = Path(__file__).resolve().parent.parent / "kernel_ext"
MODULE = "__pmcp__"


def module_expression(directory: Path = KERNEL_EXT_DIR) -> str:
    """An expression for the kernel-side module: `sys.modules["__pmcp__"]`, loaded if absent.

    The module goes into `sys.modules` before it runs, as an import would, so its relative
    imports find their package.
    """
    spec = (
        f"util.spec_from_file_location({MODULE!r}, {str(directory / '__init__.py')!r}, "
        f"submodule_search_locations=[{str(directory)!r}])"
    )
    load = (
        "(lambda spec: (lambda module: (sys.modules.__setitem__"
        f"({MODULE!r}, module), spec.loader.exec_module(module), module)[-1])"
        f"(util.module_from_spec(spec)))({spec})"
    )
    return (
        f"(lambda sys, util: sys.modules.get({MODULE!r}) or {load})"
        "(__import__('sys'), __import__('importlib.util').util)"
    )


def call_expression(function: str, *args: Any, namespace: bool = False) -> str:
    """An expression calling the kernel-side `function` with literal `args`.

    With `namespace`, the user's namespace (`globals()` of a cell) is passed last.
    """
    parts = [repr(a) for a in args] + (["globals()"] if namespace else [])
    return f"{module_expression()}.{function}({', '.join(parts)})"


def probe_call(name: str, args: Any) -> str:
    """An expression whose value is the JSON text of the kernel-side probe `name`."""
    return call_expression("probe", name, json.dumps(args), namespace=True)


def bootstrap_code(directory: Path = KERNEL_EXT_DIR) -> str:
    """A statement that loads the package in a kernel that cannot read `directory` (a kernel on a
    gateway): the sources travel with it, `bootstrap.install` serves them from memory. It runs in
    a namespace of its own, so it adds no names to the user's."""
    sources = {path.stem: path.read_text() for path in sorted(directory.glob("*.py"))}
    loader = sources.pop("bootstrap")
    program = f"{loader}\ninstall({MODULE!r}, SOURCES)\n"
    return f"exec({program!r}, {{'__name__': '__pmcp_bootstrap__', 'SOURCES': {sources!r}}})"
