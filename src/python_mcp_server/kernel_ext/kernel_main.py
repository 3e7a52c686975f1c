"""A kernel's main program: `python kernel_main.py -f CONNECTION_FILE [ipykernel flags]`.

It does what `python -m ipykernel_launcher` does, less the debugger. ipykernel imports debugpy as
it starts, for the Debug Adapter Protocol, which nothing reaches through this server (its
kernelspec says `"debugger": false`); that import is about half of a kernel's start. Here it is
refused while the kernel initialises (ipykernel then runs without its debugger) and allowed again
before any cell runs, so the user's code can still `import debugpy`.

Runs by path, with the kernel's interpreter: the standard library, and the ipykernel it starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REFUSED = "debugpy"


def main() -> None:
    # Python put this file's folder first on sys.path: its siblings (files, packages, streams...)
    # must not stand in for the user's modules of those names
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]
    sys.modules[_REFUSED] = None  # type: ignore[assignment]  # `import debugpy` raises ImportError
    try:
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        app.initialize()  # type: ignore[no-untyped-call]
    finally:
        if _REFUSED in sys.modules and sys.modules[_REFUSED] is None:
            del sys.modules[_REFUSED]
    app.start()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
