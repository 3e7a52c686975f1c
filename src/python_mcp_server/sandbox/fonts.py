"""matplotlib's font list for sandboxed kernels, built once per server.

matplotlib keeps the fonts it found in a cache file (`fontlist-v*.json`) in its config folder. A
sandboxed kernel starts with an empty private `/tmp` as its home, so its first plot scanned every
font on the system again: about a second, in every session. Here the server builds that file
once, in the background at the lowest CPU priority, with the kernels' own interpreter (the one
the server runs with, whose packages it already loaded itself: nothing runs that did not already
run in the server), and each kernel started afterwards gets it read-only in a config folder of
its own (`MPLCONFIGDIR`, writable, in its private `/tmp`). The fonts it lists are at the same
paths in the sandbox (`/usr` and the interpreter's folders are bound there). A kernel of another
interpreter (a session's own environment) is left to build its own.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

CONFIG_DIR = "/tmp/.matplotlib"  # the kernel's matplotlib config folder, in its own /tmp
_BUILD = "import matplotlib.font_manager"
_BUILD_TIMEOUT_S = 300.0


class FontCache:
    """The font list of `python`'s matplotlib, built in `folder` on first `start()`."""

    def __init__(self, python: str, folder: Path) -> None:
        self.python = python
        self._folder = folder
        self._file: Path | None = None
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Build it in a background thread (once); kernels started meanwhile go without."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._build, name="matplotlib-fonts", daemon=True).start()

    @property
    def file(self) -> Path | None:
        """The built font list, or None (not built yet, no matplotlib, or the build failed)."""
        return self._file

    def _build(self) -> None:
        try:
            self._folder.mkdir(mode=0o755, parents=True, exist_ok=True)
            env = {"MPLCONFIGDIR": str(self._folder), "HOME": str(self._folder), "LANG": "C.UTF-8"}
            done = subprocess.run(
                ["nice", "-n", "19", self.python, "-c", _BUILD],
                env=env,
                capture_output=True,
                timeout=_BUILD_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            logger.info("matplotlib's font list was not built for the kernels: %s", exc)
            return
        built = sorted(self._folder.glob("fontlist-v*.json"))
        if done.returncode != 0 or not built:
            logger.info("matplotlib's font list was not built for the kernels (no matplotlib?)")
            return
        built[-1].chmod(0o644)
        self._file = built[-1]

    def sandbox_args(self, python: str) -> tuple[list[str], dict[str, str]]:
        """bubblewrap's arguments and the kernel's variables that give a kernel of `python` the
        font list; none before it is built, or for another interpreter."""
        found = self._file
        if found is None or python != self.python:
            return [], {}
        args = ["--perms", "1777", "--dir", CONFIG_DIR]
        args += ["--ro-bind", str(found), f"{CONFIG_DIR}/{found.name}"]
        return args, {"MPLCONFIGDIR": CONFIG_DIR}
