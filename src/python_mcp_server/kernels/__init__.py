"""Kernels: the only layer that talks to jupyter_client."""

from python_mcp_server.kernels.backend import (
    ExecutionRun,
    ExitInfo,
    KernelBackend,
    KernelHandle,
    KernelLimits,
    KernelSpec,
    OutputCallback,
    Reply,
)
from python_mcp_server.kernels.launching import KERNEL_MIN_PROCESSES
from python_mcp_server.kernels.local import LocalBackend

__all__ = [
    "KERNEL_MIN_PROCESSES",
    "ExecutionRun",
    "ExitInfo",
    "KernelBackend",
    "KernelHandle",
    "KernelLimits",
    "KernelSpec",
    "LocalBackend",
    "OutputCallback",
    "Reply",
]
