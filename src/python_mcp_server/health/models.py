"""Values the health monitor reads: one process, one disk."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessSample:
    """One process as psutil sees it now. `cpu_percent` is of one core (can exceed 100)."""

    pid: int
    status: str
    rss_bytes: int
    cpu_percent: float
    threads: int
    open_files: int
    create_time: float
    children: int


@dataclass(frozen=True)
class DiskSample:
    """The filesystem holding a folder, in bytes."""

    path: str
    total_bytes: int
    free_bytes: int
