"""`HealthMonitor`: host memory, disk and per-kernel process figures, read through psutil.

The host reading is a seam: `HealthMonitor(sample=...)` takes any callable returning
`HostResources` (the default reads the real machine), so tests can pose as a host short of memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import anyio
import psutil

from python_mcp_server.health.models import DiskSample, ProcessSample
from python_mcp_server.health.system import HostResources, host_resources

HostSampler = Callable[[], HostResources]

_CPU_WINDOW_S = 0.1
MB = 1024 * 1024


class HealthMonitor:
    def __init__(self, sample: HostSampler = host_resources) -> None:
        self._sample = sample
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()

    def host(self) -> HostResources:
        return self._sample()

    def available_mb(self) -> int:
        return self._sample().memory_available_bytes // MB

    def disk(self, path: str) -> DiskSample:
        usage = psutil.disk_usage(path)
        return DiskSample(path=path, total_bytes=int(usage.total), free_bytes=int(usage.free))

    def process_status(self, pid: int) -> str | None:
        """psutil's status word ('sleeping', 'stopped', 'zombie', ...) or None if gone."""
        try:
            return str(psutil.Process(pid).status())
        except psutil.Error:
            return None

    async def process(self, pid: int) -> ProcessSample | None:
        """The process `pid` now, or None if it is gone. Runs in a worker thread: the first
        reading of a process measures CPU over a short window."""
        return await anyio.to_thread.run_sync(self._process_sync, pid)

    def _process_sync(self, pid: int) -> ProcessSample | None:
        with self._lock:
            proc = self._procs.get(pid)
            fresh = proc is None
            try:
                if proc is None or not proc.is_running():
                    proc = psutil.Process(pid)
                    self._procs[pid] = proc
                    fresh = True
                if fresh:
                    proc.cpu_percent(None)
            except psutil.Error:
                self._procs.pop(pid, None)
                return None
        if fresh:
            time.sleep(_CPU_WINDOW_S)
        try:
            with proc.oneshot():
                return ProcessSample(
                    pid=pid,
                    status=str(proc.status()),
                    rss_bytes=int(proc.memory_info().rss),
                    cpu_percent=round(float(proc.cpu_percent(None)), 1),
                    threads=int(proc.num_threads()),
                    open_files=int(proc.num_fds()),
                    create_time=float(proc.create_time()),
                    children=len(proc.children(recursive=True)),
                )
        except psutil.Error:
            with self._lock:
                self._procs.pop(pid, None)
            return None

    def forget(self, live_pids: set[int]) -> None:
        """Drop cached processes that are not kernels any more."""
        with self._lock:
            for pid in set(self._procs) - live_pids:
                del self._procs[pid]
