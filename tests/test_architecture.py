"""The design as a test: imports go downward only, owned dependencies stay with their owner."""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fastmcp.tools import FunctionTool

from python_mcp_server import tools
from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server
from python_mcp_server.tools import TOOLS, domain_errors

SRC = Path(__file__).resolve().parents[1] / "src" / "python_mcp_server"

# layer -> first-party layers it may import
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": set(),
    "text": {"errors"},
    "procs": set(),
    "sandbox": {"errors", "config", "text", "procs"},
    "kernels": {"errors", "config", "text", "procs", "sandbox"},
    "workspace": {"errors", "config", "text", "procs"},
    "health": {"errors", "config"},
    "services": {"errors", "config", "text", "kernels", "workspace", "health", "sandbox"},
    "compat": {"errors", "config"},
    "runtime": {"errors", "config", "services", "compat"},
    "tools": {"errors", "config", "text", "services", "runtime", "compat"},
    "middleware": {"errors", "config", "services", "runtime", "compat"},
    # PlainJsonCalls sits inside BodyLimitMiddleware: it shares its limit and its request replay
    "transports": {"errors", "config", "text", "middleware", "compat"},
    # the playground's static files and the routes that serve them: nothing of ours below
    "playground": set(),
    "rest": {"errors", "config", "runtime", "middleware"},
    "server": {
        "errors",
        "config",
        "runtime",
        "tools",
        "middleware",
        "transports",
        "compat",
        "playground",
        "rest",
    },
    "launch": {"errors", "config", "services", "server"},
    # procs: blanking the token out of the server's own /proc command line and environment
    "auth_token": {"errors", "config", "procs"},
    "cli_options": {"errors", "config"},
    "cli": {"errors", "config", "launch", "auth_token", "cli_options"},
    "__init__": {"errors", "config"},
    "__main__": {"cli"},
    # runs inside kernels, whose interpreter may lack python_mcp_server: the stdlib only
    "kernel_ext": set(),
}
# third-party packages only one layer may import
OWNED = {"jupyter_client": "kernels", "psutil": "health"}
MAX_LINES = 600
TOOL_MODULES = [
    module for name, module in vars(tools).items() if inspect.ismodule(module) and name != "_common"
]
# other projects whose private names may be used only in compat/
QUARANTINED = ("fastmcp", "mcp", "mcp_types", "uvicorn")
# names without a leading underscore that are still not the project's public API
NOT_PUBLIC = {
    "fastmcp.server.context.set_transport",
    "fastmcp.server.context.reset_transport",
    "fastmcp.server.low_level",
    "fastmcp.utilities.json_schema",
    "mcp.server.streamable_http.check_accept_headers",
    "mcp.server.transport_security.DEFAULT_MAX_REQUEST_BODY_SIZE",
    "uvicorn.protocols",  # uvicorn documents its settings, not its protocol classes
}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _is_private(dotted: str) -> bool:
    parts = dotted.split(".")
    return any(part.startswith("_") and not part.startswith("__") for part in parts) or any(
        ".".join(parts[:n]) in NOT_PUBLIC for n in range(2, len(parts) + 1)
    )


def _private_uses(source: str) -> list[str]:
    """The private FastMCP or MCP SDK names `source` uses: imported from, imported, or (in a module
    that imports either) reached as an attribute of anything but `self` and `cls`."""
    tree = ast.parse(source)
    found: list[str] = []
    imports_them = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in QUARANTINED:
                    imports_them = True
                    if _is_private(alias.name):
                        found.append(alias.name)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] in QUARANTINED
        ):
            imports_them = True
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found += [name for name in names if _is_private(name)]
    if imports_them:
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute) and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            ):
                name = node.attr
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr", "setattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                name = node.args[1].value
            if name is not None and name.startswith("_") and not name.startswith("__"):
                found.append(f"{ast.unparse(node)}")
    return found


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_modules_import_only_downward_layers(path: Path) -> None:
    layer = _layer(path)
    assert layer in ALLOWED, f"{layer} is not a known layer; add it to ALLOWED"
    upward = set()
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] == "python_mcp_server" and len(parts) > 1:
            target = parts[1]
            if target == "__init__" or (len(parts) == 2 and target == "__version__"):
                continue
            if target != layer and target not in ALLOWED[layer]:
                upward.add(target)
    assert not upward, f"{layer} may not import {sorted(upward)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_owned_dependencies_stay_with_their_owner(path: Path) -> None:
    layer = _layer(path)
    for name in _imports(path):
        owner = OWNED.get(name.split(".")[0])
        assert owner is None or owner == layer, f"{name} may only be imported in {owner}/"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_private_names_of_fastmcp_and_the_sdk_are_used_only_in_compat(path: Path) -> None:
    if _layer(path) == "compat":
        return
    used = _private_uses(path.read_text())
    assert not used, (
        f"{path.relative_to(SRC)} uses private FastMCP/MCP SDK/uvicorn names {used}; wrap each in "
        "compat/fastmcp_private.py, compat/mcp_private.py or compat/uvicorn_private.py with a "
        "contract test in test_compat.py"
    )


def test_the_architecture_test_catches_private_names() -> None:
    planted = """
import fastmcp
from mcp.server._streamable_http_modern import handle_modern_request
from fastmcp.server.context import set_transport
from fastmcp.utilities.json_schema import dereference_refs
from mcp.server.streamable_http import StreamableHTTPServerTransport
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
mcp._lifespan_manager()
getattr(manager, "_task_group", None)
self._own = 1
"""
    assert sorted(_private_uses(planted)) == [
        "fastmcp.server.context.set_transport",
        "fastmcp.utilities.json_schema.dereference_refs",
        "getattr(manager, '_task_group', None)",
        "mcp._lifespan_manager",
        "mcp.server._streamable_http_modern.handle_modern_request",
        "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol",
    ]
    assert _private_uses("from python_mcp_server.middleware._responses import send_json\n") == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines; split it (cap {MAX_LINES})"


def _imports_kernel_ext(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        if any(m.startswith("python_mcp_server.kernel_ext") for m in modules):
            return True
    return False


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_the_server_never_imports_the_kernel_side_package(path: Path) -> None:
    # the server only needs kernel_ext's location on disk; kernels load it from there
    assert _layer(path) == "kernel_ext" or not _imports_kernel_ext(path), (
        f"{path.name} imports kernel_ext; it runs in kernels, so refer to it by its directory"
    )


KERNEL_EXT = sorted((SRC / "kernel_ext").glob("*.py"))


@pytest.mark.parametrize("path", KERNEL_EXT, ids=lambda p: p.name)
def test_kernel_side_code_imports_only_the_standard_library_and_its_siblings(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert node.level == 1, f"{path.name}: {ast.unparse(node)}"
            assert node.module is None, f"{path.name}: {ast.unparse(node)}"
    # optional, each imported inside try/except ImportError with a fallback: cloudpickle (pickle),
    # Pillow (previews of images other than figures are then made by the server); kernel_main is
    # the kernel's main program: it starts ipykernel
    allowed = {"cloudpickle", "PIL"} | ({"ipykernel"} if path.name == "kernel_main.py" else set())
    third_party = {n.split(".")[0] for n in _imports(path)} - set(sys.stdlib_module_names)
    assert third_party <= allowed, f"{path.name} imports {sorted(third_party)}"


_STATEMENTS = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Import,
    ast.ImportFrom,
    ast.For,
    ast.While,
    ast.With,
    ast.Try,
)


_PLACEHOLDER = re.compile(r"\{[^{}\n]*\}")


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _python_in_strings(source: str) -> list[int]:
    """Lines of string literals (docstrings aside) that hold a multi-line Python program."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        text = textwrap.dedent(node.value).strip()
        if id(node) in docstrings or text.count("\n") < 1:
            continue
        try:
            program = ast.parse(text)
        except SyntaxError:
            try:  # a template: fill its {placeholders} in
                program = ast.parse(_PLACEHOLDER.sub("_", text))
            except SyntaxError:
                continue
        if any(isinstance(n, _STATEMENTS) for n in ast.walk(program)):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_python_program_is_held_in_a_string(path: Path) -> None:
    found = _python_in_strings(path.read_text())
    assert not found, (
        f"{path.name}:{found} holds Python source in a string; code that runs elsewhere belongs "
        "in kernel_ext (a real module), reached by a one-line expression"
    )


def test_the_string_check_catches_a_program_but_not_prose_or_docstrings() -> None:
    planted = (
        '"""A module.\n\nimport os\nfor x in y:\n    pass\n"""\n'
        'SETUP = """\nimport os\nprint(os.getcwd())\n"""\n'
        'MESSAGE = "Could not start.\\nTry again."\n'
        'ONE_LINE = "import json; print(json.dumps(1))"\n'
        'TEMPLATE = """\ndef f(x):\n    return x\nf({value!r})\n"""\n'
    )
    assert _python_in_strings(planted) == [7, 13]


def test_tests_do_not_mock_our_code() -> None:
    for test in Path(__file__).parent.rglob("*.py"):
        text = test.read_text()
        assert "unittest.mock" not in text or test.name == "test_architecture.py", test


def test_the_architecture_test_catches_an_upward_import(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("from python_mcp_server.tools import MODULES\n")
    assert "python_mcp_server.tools" in _imports(planted)
    assert "tools" not in ALLOWED["kernels"]


async def _probe() -> None:
    """Stands for a tool, to get at the code of the wrapper `domain_errors` returns."""


@pytest.mark.anyio
async def test_every_tool_turns_our_errors_into_model_readable_results(tmp_path: Path) -> None:
    wrapper_code = domain_errors(_probe).__code__
    for module in TOOL_MODULES:
        for name, value in vars(module).items():
            meta = getattr(value, "__fastmcp__", None)
            if getattr(meta, "type", None) == "tool":
                assert value in TOOLS, f"{module.__name__}.{name} is a @tool missing from TOOLS"
    mcp = create_server(ServerConfig(workspace_dir=tmp_path))
    listed = [tool for tool in await mcp.list_tools() if isinstance(tool, FunctionTool)]
    assert [tool.name for tool in listed] == [fn.__name__ for fn in TOOLS]
    for tool in listed:
        fn: Any = tool.fn
        chain: list[Any] = []
        while fn is not None:
            chain.append(fn)
            fn = getattr(fn, "__wrapped__", None)
        assert any(getattr(f, "__code__", None) is wrapper_code for f in chain), (
            f"{tool.name} was added without domain_errors"
        )


def test_the_exceptions_module_holds_exceptions_and_nothing_else() -> None:
    tree = ast.parse((SRC / "errors.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Expr | ast.ImportFrom):
            continue
        assert isinstance(node, ast.ClassDef), f"errors.py line {node.lineno} is not a class"


@pytest.mark.parametrize("path", sorted((SRC / "tools").glob("*.py")), ids=lambda p: p.name)
def test_tools_reach_services_through_the_package_door(path: Path) -> None:
    inner = {n for n in _imports(path) if n.startswith("python_mcp_server.services.")}
    assert not inner, (
        f"{path.name} imports {sorted(inner)}; take it from python_mcp_server.services"
    )


MAX_FUNCTION_LINES = 80


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{node.name} ({lines} lines)")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_functions_stay_short(path: Path) -> None:
    long = _long_functions(path)
    assert not long, f"{path.name}: {', '.join(long)}; split them (cap {MAX_FUNCTION_LINES})"


def test_the_function_length_check_catches_a_long_function(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    planted.write_text(f"def long():\n{body}\n")
    assert _long_functions(planted) == [f"long ({MAX_FUNCTION_LINES + 1} lines)"]
