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
from python_mcp_server.kernels.local import LocalBackend

__all__ = [
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
