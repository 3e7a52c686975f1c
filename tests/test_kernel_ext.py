"""The kernel-side package, tested in this interpreter, in bare ones, and in real kernels."""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import traceback
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastmcp import Client

from python_mcp_server import kernel_ext
from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import KernelBusyError, KernelError
from python_mcp_server.kernel_ext import (
    PROBES,
    files,
    images,
    interrupts,
    packages,
    probe,
    snapshot,
    streams,
    variables,
)
from python_mcp_server.server import create_server
from python_mcp_server.services import Services
from python_mcp_server.services._kernel_ext import KERNEL_EXT_DIR, MODULE
from python_mcp_server.services._probe import (
    RESULT_KEY,
    probe_expression,
    probe_result,
    probe_timeout_error,
)
from python_mcp_server.services.artifacts import DRAIN_EXPRESSION, kernel_setup_code
from python_mcp_server.services.outcome import CELL_KEY

# --- previews of large images -------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buf, "PNG")
    return buf.getvalue()


class _Printers:
    """An IPython PNG formatter with no printer for any type."""

    def lookup(self, obj: Any) -> Any:
        raise KeyError(type(obj))


def test_a_large_png_gets_a_preview_in_its_metadata_and_a_small_one_none() -> None:
    import base64

    big, small = (base64.b64encode(_png(*s)).decode() for s in ((3000, 1000), (100, 50)))
    fmt = images.wrap_format(
        lambda obj: ({"image/png": obj, "text/plain": "x"}, {}),
        {"image/png": _Printers()},
        512,
        10**6,
    )
    data, md = fmt(big)
    assert data == {"image/png": big, "text/plain": "x"}
    entry = md[images.PREVIEW_KEY]
    assert (entry["source"], entry["mime_type"]) == ("image/png", "image/png")
    assert images.png_size(base64.b64decode(entry["data"])[:24]) == (512, 171)
    assert fmt(small) == ({"image/png": small, "text/plain": "x"}, {})


def test_a_preview_that_fails_leaves_the_display_as_it_was() -> None:
    class Broken:
        def lookup(self, obj: Any) -> Any:
            raise RuntimeError("a printer that breaks")

    fmt = images.wrap_format(
        lambda obj: ({"image/png": "not base64!"}, {}), {"image/png": Broken()}, 8, 8
    )
    assert fmt(None) == ({"image/png": "not base64!"}, {})
    assert images.png_size(b"GIF89a" + bytes(30)) is None


# --- changed-file tracking ----------------------------------------------------------------------


def tracker(root: Path, limit: int = 10) -> files.ChangeTracker:
    return files.ChangeTracker(str(root), limit)


def test_a_file_opened_for_writing_inside_the_workspace_is_listed(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    t.hook("open", (str(tmp_path / "a.txt"), "w", 0))
    t.hook("open", (tmp_path / "sub" / "b.bin", "ab", 0))
    t.hook("open", (os.fsencode(tmp_path / "c.txt"), "r+", 0))
    t.hook("open", (str(tmp_path / "d.txt"), None, os.O_WRONLY | os.O_CREAT))
    assert t.take() == (["a.txt", "c.txt", "d.txt", "sub/b.bin"], 0)
    assert t.take() == ([], 0)


def test_reads_files_outside_and_descriptors_are_not_listed(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    t = tracker(workspace)
    t.hook("open", (str(workspace / "read.txt"), "r", 0))
    t.hook("open", (str(workspace / "raw.txt"), None, os.O_RDONLY))
    t.hook("open", (str(tmp_path / "outside.txt"), "w", 0))
    t.hook("open", (str(tmp_path / "ws-sibling" / "x.txt"), "w", 0))
    t.hook("open", (3, "w", 0))
    t.hook("os.remove", (str(workspace / "gone.txt"),))
    assert t.take() == ([], 0)


def test_renames_copies_truncates_and_databases_are_listed(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    t.hook("os.rename", (str(tmp_path / "old"), str(tmp_path / "new"), None, None))
    t.hook("shutil.copyfile", (str(tmp_path / "new"), str(tmp_path / "copy")))
    t.hook("os.truncate", (str(tmp_path / "cut"), 0))
    t.hook("sqlite3.connect", (str(tmp_path / "db.sqlite"),))
    assert t.take() == (["copy", "cut", "db.sqlite", "new"], 0)


def test_writes_past_the_limit_are_counted_not_named(tmp_path: Path) -> None:
    t = tracker(tmp_path, limit=2)
    for name in ("a", "b", "a", "c", "d", "c"):
        t.hook("open", (str(tmp_path / name), "w", 0))
    assert t.take() == (["a", "b"], 3)


def test_the_audit_hook_never_raises_into_the_users_code(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    t.hook("open", ("short",))  # wrong arity
    t.hook("open", (object(), "w", 0))  # not a path
    t.hook("os.rename", ())
    assert t.take() == ([], 0)


# --- messages and streams -----------------------------------------------------------------------


def strict_pack(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def lenient_pack(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", errors="surrogateescape")


def test_unpaired_surrogates_are_escaped_everywhere_in_a_message() -> None:
    message = {"k\ud800": ["a\udfff", ("\udc80",), 1], "ok": "😀"}
    assert streams.clean(message) == {"k\\ud800": ["a\\udfff", ["\\udc80"], 1], "ok": "😀"}


@pytest.mark.parametrize("pack", [strict_pack, lenient_pack])
def test_a_message_that_is_not_utf8_is_packed_with_the_character_escaped(pack: Any) -> None:
    packed = streams.safe_pack(pack)
    assert json.loads(packed({"text": "x\udc80y"})) == {"text": "x\\udc80y"}
    assert packed({"text": "fine é"}) == pack({"text": "fine é"})


def test_long_stream_text_is_cut_into_pieces_of_the_chunk_size() -> None:
    assert streams.split_text("abcdefg", 3) == (["abc", "def"], "g")
    assert streams.split_text("abcdef", 3) == (["abc"], "def")
    assert streams.split_text("ab", 3) == ([], "ab")


class Unclosable:
    """A stream whose `closed` attribute raises."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        raise OSError("gone")


def test_a_stream_that_cannot_be_written_or_flushed_is_named() -> None:
    closed = io.StringIO()
    closed.close()
    assert streams.broken(None) == "None"
    assert streams.broken(object()) == "an object of type 'object' without a write() method"
    assert streams.broken(io.BytesIO().read) == (
        "an object of type 'builtin_function_or_method' without a write() method"
    )
    assert streams.broken(closed) == "a closed StringIO"
    assert streams.broken(Unclosable()) == (
        "an object of type 'Unclosable' whose 'closed' attribute fails"
    )
    assert streams.broken(io.StringIO()) is None


def test_a_broken_sys_stdout_or_stderr_is_put_back_and_reported_once() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    mine = io.StringIO()
    saved = sys.stdout, sys.stderr
    put_back: tuple[Any, Any]
    try:
        sys.stdout, sys.stderr = stdout, stderr
        repair = streams.Repair(stdout, stderr)
        setattr(sys, "stdout", None)  # noqa: B010 - as a cell would
        sys.stderr = mine  # a stream of the user's that works is left alone
        repair.check()
        put_back = (sys.stdout, sys.stderr)
    finally:
        sys.stdout, sys.stderr = saved
    assert put_back == (stdout, mine)
    assert repair.take() == [{"stream": "stdout", "was": "None"}]
    assert repair.take() == []


# --- interrupts ---------------------------------------------------------------------------------


def run_code_recorder(ran: list[Any]) -> Any:
    async def run_code(code_obj: Any, result: Any = None, *, async_: bool = False) -> bool:
        ran.append(code_obj)
        return False

    return run_code


def test_an_interrupt_before_the_users_code_is_raised_as_it_starts() -> None:
    guard, ran = interrupts.Guard(), list[Any]()
    guarded = guard.wrap(run_code_recorder(ran))
    guard.on_sigint(2, None)  # while the kernel parses the cell
    assert guard.report() == interrupts.OUTSIDE
    asyncio.run(guarded("user code", None, async_=True))
    assert ran == [interrupts.INTERRUPTED]
    assert guard.report() == interrupts.LANDED
    with pytest.raises(KeyboardInterrupt):
        exec(interrupts.INTERRUPTED, {})


def test_an_interrupt_in_the_users_code_raises_and_one_after_it_is_dropped() -> None:
    guard = interrupts.Guard()

    async def interrupted(code_obj: Any, *args: Any, **kwargs: Any) -> bool:
        guard.on_sigint(2, None)
        return False

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(guard.wrap(interrupted)("user code"))
    assert guard.report() == interrupts.LANDED
    assert guard.depth == 0
    guard.pending = guard.landed = False
    asyncio.run(guard.wrap(run_code_recorder([]))("user code"))
    guard.on_sigint(2, None)  # the cell had finished: dropped, reported as outside
    assert guard.report() == interrupts.OUTSIDE


def test_a_sigint_delivered_in_run_codes_own_lines_after_the_cell_is_dropped_not_raised() -> None:
    # The interpreter runs a Python signal handler at the next bytecode of the main thread: a
    # SIGINT sent as a short cell ends can be delivered in run_code's lines after the cell's
    # code returned. Raised there it would escape run_code (as IPython's does, this one shows
    # only errors from the cell's code), and ipykernel would send no reply at all.
    guard, shown = interrupts.Guard(), list[str]()

    async def run_code(code_obj: Any, result: Any = None, *, async_: bool = False) -> bool:
        try:
            exec(code_obj, {})
        except BaseException as error:  # noqa: BLE001 (as IPython's run_code: shows any)
            shown.append(type(error).__name__)
            return True
        signal.raise_signal(signal.SIGINT)  # handled here, in run_code's own frame
        return False

    previous = signal.getsignal(signal.SIGINT)
    try:
        guard.arm()
        assert asyncio.run(guard.wrap(run_code)(compile("x = 1", "<cell>", "exec"))) is False
        assert guard.report() == interrupts.OUTSIDE
        guard.arm()
        cell = compile("import signal\nsignal.raise_signal(signal.SIGINT)\n", "<cell>", "exec")
        assert asyncio.run(guard.wrap(run_code)(cell)) is True
        assert (shown, guard.report()) == (["KeyboardInterrupt"], interrupts.LANDED)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ipykernel_still_runs_async_cells_inside_the_hook_the_guard_replaces() -> None:
    # ipykernel's private context manager around an async cell: the guard puts its own in its
    # place, so that an interrupt cancels an awaiting cell. A rename would silently bring back
    # the restart of every interrupted async cell.
    from ipykernel.ipkernel import IPythonKernel

    assert callable(getattr(IPythonKernel, interrupts.ASYNC_CELL_HOOK, None))
    assert f"self.{interrupts.ASYNC_CELL_HOOK}" in inspect.getsource(IPythonKernel.do_execute)


def test_an_interrupt_is_shown_without_the_guards_own_frame() -> None:
    guard = interrupts.Guard()
    guard.depth = 1

    def users_code() -> None:
        guard.on_sigint(2, None)

    shown: list[Any] = []
    show = interrupts.without_own_frame(lambda exc_tuple=None: shown.append(sys.exc_info()[2]))
    try:
        users_code()
    except KeyboardInterrupt:
        show()
    frames = [frame.f_code.co_name for frame, _ in traceback.walk_tb(shown[0])]
    assert frames[-1] == "users_code"


def test_the_server_reads_the_cell_report_under_the_key_the_kernel_writes() -> None:
    assert kernel_ext.CELL_KEY == CELL_KEY


# --- variables ----------------------------------------------------------------------------------


class LoudRepr:
    def __repr__(self) -> str:
        sys.stdout.write("noise")
        raise RuntimeError("no repr")


class BrokenList(list[int]):
    def __iter__(self) -> Any:
        raise RuntimeError("no items")


BrokenList.__name__ = "list"  # reprlib picks its method by the type's name


class BadLen(list[int]):
    def __len__(self) -> int:
        raise ValueError("no len")


def greet(name: str, times: int = 1) -> str:
    return name * times


def test_the_variable_summary_lists_user_names_with_type_repr_and_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    hidden_value = object()
    ns: dict[str, Any] = {
        "n": 42,
        "text": "x" * 500,
        "items": [1, 2, 3],
        "greet": greet,
        "Point": LoudRepr,
        "loud": LoudRepr(),
        "broken": BrokenList([1]),
        "bad": BadLen([1]),
        "arr": np.zeros((2, 3), dtype=np.float32),
        "df": pd.DataFrame({"a": [1, 2], "b": [1.0, 2.0], "c": [3, 4]}),
        "os": os,
        "_private": 1,
        "In": [],
        "shown_by_ipython": hidden_value,
    }
    data = variables.summarise(ns, {"shown_by_ipython": hidden_value}, limit=100, width=60)
    rows = {row["name"]: row for row in data["variables"]}
    assert data["total"] == len(rows) == 10
    assert rows["n"] == {"name": "n", "type": "int", "repr": "42"}
    assert len(rows["text"]["repr"]) == 60
    assert rows["text"]["size"] == 500
    assert rows["items"]["size"] == 3
    assert rows["greet"]["repr"] == "greet(name: 'str', times: 'int' = 1) -> 'str'"
    assert rows["Point"]["repr"] == "class Point()"
    assert rows["loud"]["repr"].startswith("<LoudRepr instance at")
    assert rows["broken"]["repr"] == "<repr failed: RuntimeError>"
    assert capsys.readouterr() == ("", "")
    assert rows["bad"]["type"] == "tests.test_kernel_ext.BadLen"
    assert "size" not in rows["bad"]
    assert (rows["arr"]["shape"], rows["arr"]["dtype"]) == ([2, 3], "float32")
    assert (rows["df"]["shape"], rows["df"]["dtype"]) == ([2, 3], "int64(2), float64(1)")


def test_the_variable_summary_stops_at_the_limit_but_counts_all() -> None:
    ns = {f"v{i:02d}": i for i in range(30)}
    data = variables.summarise(ns, {}, limit=5, width=10)
    assert data["total"] == 30
    assert [row["name"] for row in data["variables"]] == ["v00", "v01", "v02", "v03", "v04"]


def test_a_probe_answers_json_by_name() -> None:
    text = probe("variables", json.dumps({"limit": 1, "width": 10}), {"x": "é"})
    assert text.isascii()
    assert json.loads(text) == {
        "total": 1,
        "variables": [{"name": "x", "type": "str", "repr": "'é'", "size": 1}],
    }
    assert set(PROBES) == {"variables", "versions", "refresh", "install"}


# --- packages -----------------------------------------------------------------------------------


def test_installed_versions_are_keyed_by_normalized_name() -> None:
    found = packages.versions()
    assert found["pytest"][1] == pytest.__version__
    assert found["typing-extensions"][0].lower().replace("_", "-") == "typing-extensions"


def test_a_changed_version_of_an_imported_package_asks_for_a_restart() -> None:
    after = packages.refresh({"pytest": "0.0.1", "numpy": np.__version__})
    assert after["versions"]["pytest"][1] == pytest.__version__
    assert "pytest" in after["restart"]["pytest"]
    assert "numpy" not in after["restart"]


# --- snapshots ----------------------------------------------------------------------------------


def test_variables_survive_a_save_and_load_round_trip(tmp_path: Path) -> None:
    hidden_value = [0]
    ns: dict[str, Any] = {
        "numbers": [1, 2, 3],
        "square": lambda x: x * x,
        "lock": threading.Lock(),
        "np": np,
        "_private": 1,
        "Out": {},
        "hidden": hidden_value,
    }
    snapshot.save(ns, {"hidden": hidden_value}, str(tmp_path), limit=1 << 20)
    saved = json.loads((tmp_path / snapshot.SAVED_FILE).read_text())
    assert saved["saved"] == ["numbers", "square"]
    assert saved["dropped"]["np"] == "it is a module; import it again"
    assert saved["dropped"]["lock"].startswith("it cannot be pickled: TypeError")

    fresh: dict[str, Any] = {}
    snapshot.load(fresh, str(tmp_path))
    assert fresh["numbers"] == [1, 2, 3]
    assert fresh["square"](4) == 16
    loaded = json.loads((tmp_path / snapshot.LOADED_FILE).read_text())
    assert loaded == {"restored": ["numbers", "square"], "dropped": {}}


def test_variables_past_the_size_limit_are_dropped_with_the_reason(tmp_path: Path) -> None:
    blobs, dropped = snapshot.pickle_names({"small": 1, "big": b"x" * 1000}, {}, limit=200)
    assert list(blobs) == ["small"]
    assert dropped["big"].startswith("it is too large to carry over (")


def test_a_variable_that_cannot_be_restored_is_reported(tmp_path: Path) -> None:
    blobs = {"ok": pickle.dumps(1), "broken": b"not a pickle"}
    (tmp_path / snapshot.STATE_FILE).write_bytes(pickle.dumps(blobs))
    ns: dict[str, Any] = {}
    snapshot.load(ns, str(tmp_path))
    loaded = json.loads((tmp_path / snapshot.LOADED_FILE).read_text())
    assert ns == {"ok": 1}
    assert loaded["restored"] == ["ok"]
    assert loaded["dropped"]["broken"].startswith("it could not be restored: UnpicklingError")


# --- probe requests and replies, server side -------------------------------------------------


def test_a_probe_is_one_line_that_names_its_function_and_arguments() -> None:
    expression = probe_expression("refresh", {"numpy": "2.0"})
    assert "\n" not in expression
    assert expression.endswith(""".probe('refresh', '{"numpy": "2.0"}', globals())""")


def test_a_probe_reply_gives_its_value() -> None:
    content = {
        "user_expressions": {
            RESULT_KEY: {"status": "ok", "data": {"text/plain": repr('{"total": 0}')}}
        }
    }
    assert probe_result(content, "s1") == {"total": 0}


def test_a_failed_probe_says_what_failed_and_what_to_do() -> None:
    content = {
        "user_expressions": {
            RESULT_KEY: {"status": "error", "ename": "TypeError", "evalue": "boom", "traceback": []}
        }
    }
    with pytest.raises(KernelError) as failed:
        probe_result(content, "s1")
    assert str(failed.value) == (
        "Could not look inside session 's1': TypeError: boom. If your code rebound a builtin "
        "such as exec, globals or __import__, delete that name (del exec) and try again."
    )
    assert isinstance(probe_timeout_error("s1", 2.5), KernelBusyError)
    assert "took longer than 2.5 s and was interrupted" in str(probe_timeout_error("s1", 2.5))


# --- loading from its directory -----------------------------------------------------------------


def _bare_interpreters() -> list[list[str]]:
    # -I -S: no site-packages, so python_mcp_server cannot be imported
    found = [[sys.executable, "-I", "-S"]]
    for version in ("3.12.1", "3.13.0"):
        other = Path(f"/root/.pyenv/versions/{version}/bin/python")
        if other.exists():
            found.append([str(other), "-I"])
    return found


# The program a bare interpreter runs: the server's own expressions, then a write and a probe.
_BARE = (
    "import json, sys\n"
    "expr = json.loads(sys.argv[1])\n"
    "try:\n"
    "    import python_mcp_server\n"
    "    importable = True\n"
    "except ImportError:\n"
    "    importable = False\n"
    "eval(expr['setup'])\n"
    "open('written.txt', 'w').close()\n"
    "open(sys.argv[2], 'w').close()\n"
    "x = [1, 2]\n"
    "print(json.dumps({'importable': importable, 'drain': json.loads(eval(expr['drain'])),\n"
    "                  'probe': json.loads(eval(expr['probe'])),\n"
    "                  'loaded': sorted(m for m in sys.modules if 'python_mcp' in m)}))\n"
)


@pytest.mark.parametrize("argv", _bare_interpreters(), ids=lambda a: Path(a[0]).name)
def test_the_package_loads_from_its_directory_without_the_server_installed(
    argv: list[str], tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    expressions = {
        "setup": kernel_setup_code(),
        "drain": DRAIN_EXPRESSION,
        "probe": probe_expression("variables", {"limit": 5, "width": 20}),
    }
    assert all("\n" not in e for e in expressions.values())
    out = subprocess.run(
        [*argv, "-c", _BARE, json.dumps(expressions), str(tmp_path / "outside.txt")],
        cwd=workspace,
        env={"PYTHON_MCP_SERVER_WORKSPACE": str(workspace), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["importable"] is False
    assert report["loaded"] == []
    assert report["drain"] == {"files": ["written.txt"], "plotlyjs": None, "more": 0}
    assert [v["name"] for v in report["probe"]["variables"]] == ["expr", "importable", "x"]


def test_the_server_finds_the_package_on_disk() -> None:
    assert (KERNEL_EXT_DIR / "__init__.py").is_file()
    assert MODULE == "__pmcp__"
    assert isinstance(sys.modules["python_mcp_server.kernel_ext"], types.ModuleType)


# --- in real kernels ----------------------------------------------------------------------------

_CHECK = (
    "import sys\n"
    "loaded = sorted(m for m in sys.modules if m.startswith(('python_mcp_server', '__pmcp__')))\n"
    "open('written.txt', 'w').close()\n"
    "try:\n"
    "    import python_mcp_server\n"
    "    importable = True\n"
    "except ImportError:\n"
    "    importable = False\n"
    "loaded, importable"
)


LOADED = [MODULE] + [
    f"{MODULE}.{m}"
    for m in (
        "files",
        "images",
        "interrupts",
        "packages",
        "relay",
        "sessions",
        "snapshot",
        "streams",
        "variables",
    )
]


async def check(config: ServerConfig) -> dict[str, Any]:
    async with Client(create_server(config)) as client:
        # a probe before any cell loads the package; the first cell then installs the hooks
        first = await client.call_tool("list_variables", {})
        res = await client.call_tool("run_python_code", {"code": _CHECK})
        after = await client.call_tool("list_variables", {})
        names = await client.call_tool("run_python_code", {"code": "sorted(dir())"})
    assert res.structured_content is not None
    assert names.structured_content is not None
    assert first.structured_content is not None
    assert after.structured_content is not None
    assert first.structured_content["variables"] == []
    assert [v["name"] for v in after.structured_content["variables"]] == ["importable", "loaded"]
    return {
        "result": ast.literal_eval(res.structured_content["result"]),
        "files": [f["path"] for f in res.structured_content["files"]],
        "names": ast.literal_eval(names.structured_content["result"]),
    }


@pytest.mark.anyio
async def test_a_kernel_loads_the_package_without_importing_the_server(
    config: ServerConfig,
) -> None:
    # the kernel runs the server's interpreter here, so the server package is importable (the
    # cell itself imports it), but setting the kernel up did not import it
    seen = await check(config)
    assert seen["result"] == (LOADED, True)
    assert seen["files"] == ["written.txt"]
    assert not {"__pmcp__", "files", "install", "tracker"} & set(seen["names"])


@pytest.mark.anyio
async def test_a_kernel_whose_interpreter_cannot_import_the_server_is_set_up(
    config: ServerConfig, tmp_path: Path
) -> None:
    # the server's interpreter with a package of the same name first on its path, which refuses
    # to import: python_mcp_server cannot be imported, yet ipykernel can. It is laid out as an
    # installed interpreter is (<prefix>/bin/python), readable by everyone, so that a sandboxed
    # kernel (which sees the interpreter's prefixes, and runs as another user) can use it too.
    prefix = tmp_path / "without-server"
    hidden = prefix / "hide" / "python_mcp_server"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('not for this interpreter')\n")
    (prefix / "bin").mkdir()
    wrapper = prefix / "bin" / "python"
    wrapper.write_text(
        f'#!/bin/sh\nPYTHONPATH={prefix / "hide"} exec {sys.executable} "$@"\n', encoding="utf-8"
    )
    for path in (prefix, prefix / "bin", prefix / "hide", hidden, wrapper):
        path.chmod(0o755)
    seen = await check(replace(config, kernel_python=str(wrapper)))
    assert seen["result"] == (LOADED, False)
    assert seen["files"] == ["written.txt"]


def repaired(stream: str, was: str) -> str:
    return (
        f"The code set sys.{stream} to {was}; the kernel sends your output through it, so it was "
        f"put back and later output reaches you again. To silence {stream}, run the code inside "
        f"`with contextlib.redirect_{stream}(io.StringIO()):`."
    )


@pytest.mark.anyio
async def test_code_that_breaks_sys_stdout_or_stderr_gets_them_put_back_and_is_told(
    config: ServerConfig,
) -> None:
    breakers = (
        "import sys\nsys.stdout = None",
        "import sys\nsys.stderr = object()",
        "import io, sys\nclosed = io.StringIO()\nclosed.close()\nsys.stdout = closed",
    )
    async with Client(create_server(config)) as client:
        told = []
        for code in breakers:
            broke = await client.call_tool("run_python_code", {"code": code})
            # without the repair this call waits out its whole limit: ipykernel cannot flush
            after = await client.call_tool(
                "run_python_code",
                {
                    "code": "import sys\nprint('out'); print('err', file=sys.stderr); 7",
                    "timeout_s": 10,
                },
            )
            assert broke.structured_content is not None
            assert after.structured_content is not None
            told.append(broke.structured_content["message"])
            assert (
                after.structured_content["status"],
                after.structured_content["stdout"],
                after.structured_content["stderr"],
                after.structured_content["result"],
                after.structured_content["message"],
            ) == ("ok", "out\n", "err\n", "7", None)
        # a broken displayhook is put back by IPython itself, around every cell
        await client.call_tool("run_python_code", {"code": "import sys\nsys.displayhook = None"})
        shown = await client.call_tool("run_python_code", {"code": "6 * 7"})
    assert told == [
        repaired("stdout", "None"),
        repaired("stderr", "an object of type 'object' without a write() method"),
        repaired("stdout", "a closed StringIO"),
    ]
    assert shown.structured_content is not None
    assert shown.structured_content["result"] == "42"


@pytest.mark.anyio
async def test_a_probe_stuck_in_a_users_repr_is_interrupted_and_the_kernel_goes_on(
    config: ServerConfig,
) -> None:
    slow = (
        "import time\n"
        "class Slow:\n"
        "    def __repr__(self):\n"
        "        time.sleep(60)\n"
        "        return 'slow'\n"
        "slow = Slow()"
    )
    async with Services.open(config) as svc:
        await svc.execution.run("default", slow)
        session = svc.sessions.get("default")
        async with session.turn():
            with pytest.raises(TimeoutError):
                await session.evaluate({"r": "repr(slow)"}, 1.0)
        # the interrupt stopped the repr: the kernel takes the next cell at once
        after = await svc.execution.run("default", "1 + 1", timeout_s=10)
    assert (after.status, after.result) == ("ok", "2")


def _relay_run(*command: str, socket_path: str = "/nonexistent/egress.sock") -> tuple[int, str]:
    env = {"PATH": os.environ["PATH"], "PYTHON_MCP_SERVER_PROXY_SOCKET": socket_path}
    done = subprocess.run(
        [sys.executable, "-I", str(KERNEL_EXT_DIR / "relay.py"), *command],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_the_relay_runs_a_command_behind_the_proxy_and_passes_its_exit_code() -> None:
    show = (
        "import os; print(os.environ['HTTPS_PROXY'], os.environ['http_proxy']); raise SystemExit(3)"
    )
    code, out = _relay_run("--", sys.executable, "-c", show)
    assert code == 3
    first, second = out.split()
    assert first == second
    assert first.startswith("http://127.0.0.1:")
    assert int(first.rsplit(":", 1)[1]) > 0


def test_the_relay_without_a_command_says_how_to_call_it() -> None:
    assert _relay_run() == (2, "usage: relay.py -- COMMAND [ARG...]\n")
    assert _relay_run("--")[0] == 2
    code, out = _relay_run("--", "/nonexistent/installer")
    assert (code, out.startswith("cannot run /nonexistent/installer:")) == (127, True)
