"""Host facts read through psutil: memory and CPU count."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class HostResources:
    """This machine's CPU count and memory, in bytes."""

    cpu_count: int
    memory_total_bytes: int
    memory_available_bytes: int


def host_resources() -> HostResources:
    """Read the host's logical CPU count and its total and available memory now."""
    memory = psutil.virtual_memory()
    return HostResources(
        cpu_count=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        memory_total_bytes=int(memory.total),
        memory_available_bytes=int(memory.available),
    )
