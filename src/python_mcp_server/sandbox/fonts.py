"""matplotlib's font list for sandboxed kernels, built once per server.

matplotlib keeps the fonts it found in a cache file (`fontlist-v*.json`) in its config folder. A
sandboxed kernel starts with an empty private `/tmp` as its home, so its first plot scanned every
font on the system again: about a second, in every session. Here the server builds that file as
it starts its first kernel, in the background at the lowest CPU priority, with the kernels' own
interpreter (the one the server runs with, whose packages it already loaded itself: nothing runs
that did not already run in the server), into a folder of `--env-dir` kept across restarts (the
last one's file serves until the new one is there; each is a new file, so a kernel reading one
never sees it half written), and each kernel started gets it read-only in a config folder of its
own (`MPLCONFIGDIR`, writable, in its private `/tmp`). The fonts it lists are at the same paths in
the sandbox (`/usr` and the interpreter's folders are bound there). A kernel of another
interpreter (a session's own environment) is left to build its own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import subprocess
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

CONFIG_DIR = "/tmp/.matplotlib"  # the kernel's matplotlib config folder, in its own /tmp
_BUILD = "import matplotlib.font_manager"
_BUILD_TIMEOUT_S = 300.0


class FontCache:
    """The font list of `python`'s matplotlib, under `root` (a folder per interpreter), built
    again on the first `start()`."""

    def __init__(self, python: str, root: Path) -> None:
        self.python = python
        self._folder = root / hashlib.sha256(python.encode()).hexdigest()[:16]
        self._file: Path | None = _newest(self._folder)
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Build it in a background thread (once); kernels started meanwhile get the last
        server's, or none."""
        with self._lock:
            if self._started:
                return
            self._started = True
        try:
            threading.Thread(target=self._build, name="matplotlib-fonts", daemon=True).start()
        except RuntimeError as exc:  # out of threads (a process limit): next start tries again
            logger.info("matplotlib's font list is not built yet: %s", exc)
            with self._lock:
                self._started = False

    @property
    def file(self) -> Path | None:
        """The built font list, or None (not built yet, no matplotlib, or the build failed)."""
        return self._file

    def _build(self) -> None:
        work = self._folder / f".build-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            work.mkdir(mode=0o755, parents=True)
            env = {"MPLCONFIGDIR": str(work), "HOME": str(work), "LANG": "C.UTF-8"}
            done = subprocess.run(
                ["nice", "-n", "19", self.python, "-c", _BUILD],
                env=env,
                capture_output=True,
                timeout=_BUILD_TIMEOUT_S,
                check=False,
            )
            built = _newest(work)
            if done.returncode != 0 or built is None:
                logger.info("matplotlib's font list was not built for the kernels (no matplotlib?)")
                return
            built.chmod(0o644)
            final = self._folder / built.name
            os.replace(built, final)  # a new file: a kernel bound to the last one keeps it whole
            self._file = final
        except (OSError, subprocess.SubprocessError) as exc:
            logger.info("matplotlib's font list was not built for the kernels: %s", exc)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def sandbox_args(self, python: str) -> tuple[list[str], dict[str, str]]:
        """bubblewrap's arguments and the kernel's variables that give a kernel of `python` the
        font list; none before it is built, or for another interpreter."""
        found = self._file
        if found is None or python != self.python:
            return [], {}
        args = ["--perms", "1777", "--dir", CONFIG_DIR]
        args += ["--ro-bind", str(found), f"{CONFIG_DIR}/{found.name}"]
        return args, {"MPLCONFIGDIR": CONFIG_DIR}


def _newest(folder: Path) -> Path | None:
    try:
        found = sorted(folder.glob("fontlist-v*.json"))
    except OSError:
        return None
    return found[-1] if found else None
