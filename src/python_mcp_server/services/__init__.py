"""Services: the use cases, free of MCP types.

This package is the tools' one door into the layers below: `Services` (reached through
`runtime.services(ctx)`) for every operation, and the result types the tools annotate, listed
here. Tools import nothing from a module of this package, nor from `workspace/` or `kernels/`.
"""

from python_mcp_server.services.app import Services
from python_mcp_server.services.environment import EnvironmentInfo
from python_mcp_server.services.execution import MAX_TIMEOUT_S
from python_mcp_server.services.health import HealthReport, Responsiveness
from python_mcp_server.services.introspection import (
    CompletionResult,
    InspectionResult,
    VariableList,
)
from python_mcp_server.services.models import (
    ActionResult,
    ExecutionResult,
    RestartResult,
    SessionInfo,
    SessionList,
)
from python_mcp_server.services.notebooks import NotebookExport
from python_mcp_server.services.packages import (
    MAX_INSTALL_TIMEOUT_S,
    InstallResult,
    PackageList,
)
from python_mcp_server.services.sessions import DEFAULT_SESSION
from python_mcp_server.workspace.models import (
    DeleteResult,
    FileContent,
    FileList,
    ScriptRun,
    WorkspaceInfo,
    WriteResult,
)

__all__ = [
    "DEFAULT_SESSION",
    "MAX_INSTALL_TIMEOUT_S",
    "MAX_TIMEOUT_S",
    "ActionResult",
    "CompletionResult",
    "DeleteResult",
    "EnvironmentInfo",
    "ExecutionResult",
    "FileContent",
    "FileList",
    "HealthReport",
    "InspectionResult",
    "InstallResult",
    "NotebookExport",
    "PackageList",
    "Responsiveness",
    "RestartResult",
    "ScriptRun",
    "Services",
    "SessionInfo",
    "SessionList",
    "VariableList",
    "WorkspaceInfo",
    "WriteResult",
]
