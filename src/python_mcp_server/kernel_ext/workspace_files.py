"""The workspace's files, served by a kernel to a server that cannot reach its disk.

With kernels on a gateway the workspace is the kernels' folder, on their machine: the server's
file tools, scripts, notebook export and restarts reach it through one kernel that runs these
operations. Each takes its arguments as JSON and returns JSON: `{"ok": value}`, or `{"error":
kind, ...}` for a refusal (`beneath.Refused`: the server raises the same error, with the same
message, as for its own disk) or `{"error": "os", ...}` for an error of the file system.

The server checks each path first (its components below the root, with the same rules as its
own tools) and sends the components; here they are opened from the root's descriptor
(`beneath.Root`), never by a full path. The size limits are the server's, sent with each call.
Standard library only, like the rest of the package.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fnmatch
import json
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Generator
from typing import Any

from . import beneath, files, script_runs, sessions

SUBFOLDERS = ("scripts", "outputs", "uploads")
SCAN_LIMIT = 100_000
"""Most directory entries one listing or info walk visits."""
_SUBDIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

_staged: dict[str, bytearray] = {}  # uploads that arrive in pieces, by token


def root() -> beneath.Root:
    return beneath.Root(files.workspace_root())


def entry_type(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def layout(where: beneath.Root) -> None:
    """The standard subfolders, made when missing."""
    with where.fd() as fd:
        for name in SUBFOLDERS:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=fd)


def hello(args: dict[str, Any]) -> dict[str, Any]:
    """The root's real path and the interpreter; the standard subfolders made. The kernel says
    it serves the workspace, not a session: other servers sharing the gateway skip it."""
    sessions.publish(json.dumps({"role": "workspace"}))
    where = root()
    os.makedirs(where.path, exist_ok=True)
    layout(where)
    return {"root": where.path, "python": sys.executable, "pid": os.getpid()}


# ------------------------------------------------------------------------- walking


def _children(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """The entries of a folder with their lstat, last name first (popped in sorted order)."""
    try:
        with os.scandir(dir_fd) as it:
            entries = sorted(it, key=lambda e: e.name, reverse=True)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    children = []
    for entry in entries:
        try:
            children.append((entry.name, entry.stat(follow_symlinks=False)))
        except FileNotFoundError:
            continue
    return children


def walk(
    dir_fd: int, recursive: bool
) -> Generator[tuple[tuple[str, ...], os.stat_result], None, None]:
    """Entries under the folder open at `dir_fd`, sorted depth first, as their names below it;
    links are reported, never followed, and a folder swapped for a link is not entered."""
    fds = [dir_fd]
    levels: list[tuple[tuple[str, ...], list[tuple[str, os.stat_result]]]] = [
        ((), _children(dir_fd))
    ]
    try:
        while levels:
            prefix, children = levels[-1]
            if not children:
                levels.pop()
                if len(fds) > 1:
                    os.close(fds.pop())
                continue
            name, st = children.pop()
            path = (*prefix, name)
            yield path, st
            if recursive and stat.S_ISDIR(st.st_mode):
                try:
                    fd = os.open(name, _SUBDIR, dir_fd=fds[-1])
                except OSError:
                    continue
                fds.append(fd)
                levels.append((path, _children(fd)))
    finally:
        for fd in fds[1:]:
            os.close(fd)


# -------------------------------------------------------------------------- listing


def listing(args: dict[str, Any]) -> dict[str, Any]:
    """Entries of a folder: each [path, type, size, mtime], how many match, whether the scan
    stopped at `SCAN_LIMIT`."""
    pattern, limit, offset = args["pattern"], args["limit"], args["offset"]
    entries: list[list[Any]] = []
    matched, cut = 0, False
    try:
        with (
            root().open_dir(args["parts"]) as (fd, base),
            contextlib.closing(walk(fd, args["recursive"])) as found,
        ):
            for visited, (below, st) in enumerate(found, start=1):
                if visited > SCAN_LIMIT:
                    cut = True
                    break
                rel = "/".join((*base, *below))
                target = rel if pattern and "/" in pattern else below[-1]
                if pattern and not fnmatch.fnmatchcase(target, pattern):
                    continue
                matched += 1
                if matched <= offset or len(entries) >= limit:
                    continue
                kind = entry_type(st.st_mode)
                size = st.st_size if kind == "file" else None
                entries.append([rel, kind, size, st.st_mtime])
    except (FileNotFoundError, NotADirectoryError):  # a folder on the way is missing
        raise beneath.Refused("not_found") from None
    return {"base": list(base), "entries": entries, "matched": matched, "scan_cut": cut}


def info(args: dict[str, Any]) -> dict[str, Any]:
    """Counts and sizes of the whole workspace."""
    where = root()
    files_ = folders = used = 0
    truncated = False
    subfolders: list[str] = []
    with where.open_dir([]) as (fd, _), contextlib.closing(walk(fd, recursive=True)) as found:
        for visited, (below, st) in enumerate(found, start=1):
            if visited > SCAN_LIMIT:
                truncated = True
                break
            if stat.S_ISDIR(st.st_mode):
                folders += 1
                if len(below) == 1 and len(subfolders) < args["max_list_entries"]:
                    subfolders.append(below[0])
            elif stat.S_ISREG(st.st_mode):
                files_ += 1
                used += st.st_size
    return {
        "root": where.path,
        "bytes_used": used,
        "file_count": files_,
        "folder_count": folders,
        "subfolders": subfolders,
        "scan_truncated": truncated,
    }


def regular_files(args: dict[str, Any]) -> list[list[Any]]:
    """[real path, size] of each of `paths` (component lists) that is a regular file."""
    found = []
    where = root()
    for parts in args["paths"]:
        try:
            with where.locate(parts) as (_, _name, real, st):
                if st is not None and stat.S_ISREG(st.st_mode):
                    found.append(["/".join(real), st.st_size])
        except (OSError, beneath.Refused):
            continue
    return found


# -------------------------------------------------------------------------- reading


@contextlib.contextmanager
def _reading(parts: list[str]) -> Generator[tuple[Any, int, tuple[str, ...]], None, None]:
    try:
        fd, real = root().open(parts, os.O_RDONLY)
    except IsADirectoryError:
        raise beneath.Refused("not_a_file") from None
    except (FileNotFoundError, NotADirectoryError):
        raise beneath.Refused("not_found") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise beneath.Refused("not_regular", verb="read")
        yield f, st.st_size, real


def read(args: dict[str, Any]) -> dict[str, Any]:
    """`want` bytes from `offset`: the real path, the file's size, the bytes (base64)."""
    offset = args["offset"]
    with _reading(args["parts"]) as (f, total, real):
        if offset > total:
            raise beneath.Refused("offset_past_end", total=total)
        f.seek(offset)
        data = f.read(args["want"])
    return {"parts": list(real), "total": total, "data": base64.b64encode(data).decode()}


def read_whole(args: dict[str, Any]) -> dict[str, Any]:
    """A whole file, none of it when it is over `cap`: its real name, size and bytes."""
    cap = args["cap"]
    with _reading(args["parts"]) as (f, size, real):
        data = f.read(cap + 1) if size <= cap else b""
    return {"name": real[-1], "size": size, "data": base64.b64encode(data).decode()}


# -------------------------------------------------------------------------- writing


def stage(args: dict[str, Any]) -> int:
    """Add a piece of an upload that travels in pieces; its size so far."""
    buffer = _staged.setdefault(args["token"], bytearray())
    buffer += base64.b64decode(args["data"])
    return len(buffer)


def unstage(args: dict[str, Any]) -> None:
    _staged.pop(args["token"], None)


def _payload(args: dict[str, Any]) -> bytes:
    if "staged" in args:
        return bytes(_staged.pop(args["staged"], b""))
    return base64.b64decode(args["data"])


def write(args: dict[str, Any]) -> dict[str, Any]:
    """Replace (atomically) or append to a file, making missing folders: its real path and
    whether it is new."""
    data = _payload(args)
    try:
        if args["append"]:
            rel, created = _append(args["parts"], data, args["cap"])
        else:
            rel, created = _replace(args["parts"], data, args["overwrite"])
    except NotADirectoryError:
        raise beneath.Refused("parents_blocked") from None
    except IsADirectoryError:
        raise beneath.Refused("not_a_file") from None
    return {"rel": rel, "created": created, "size": len(data)}


def _replace(parts: list[str], data: bytes, overwrite: bool) -> tuple[str, bool]:
    with root().locate(parts, make_parents=True) as (parent, name, real, st):
        if not name:
            raise beneath.Refused("outside", rule="root")
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise beneath.Refused("not_a_file")
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise beneath.Refused("not_regular", verb="written")
        if st is not None and not overwrite:
            raise beneath.Refused("exists")
        atomic_write(parent, name, data, overwrite)
        return "/".join(real), st is None


def _append(parts: list[str], data: bytes, cap: int) -> tuple[str, bool]:
    flags = os.O_WRONLY | os.O_APPEND
    where = root()
    try:
        try:
            fd, real = where.open(parts, flags)
            created = False
        except FileNotFoundError:
            fd, real = where.open(parts, flags | os.O_CREAT | os.O_EXCL, make_parents=True)
            created = True
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a fifo no one reads, or a socket
            raise beneath.Refused("not_regular", verb="written") from None
        raise
    with os.fdopen(fd, "wb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise beneath.Refused("not_regular", verb="written")
        if st.st_size + len(data) > cap:
            raise beneath.Refused("too_large", size=st.st_size + len(data))
        os.set_blocking(fd, True)
        f.write(data)
    return "/".join(real), created


def atomic_write(parent: int, name: str, data: bytes, overwrite: bool) -> None:
    """Write `data` to a temporary file beside `name`, then move it into place (rename, or
    link when nothing may be replaced). The new file keeps the old one's mode."""
    token = secrets.token_hex(4)
    tmp = f".{name}.{token}.tmp" if len(os.fsencode(name)) < 200 else f".{token}.tmp"
    fd = os.open(tmp, _NEW, 0o600, dir_fd=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            try:
                mode = stat.S_IMODE(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
            except FileNotFoundError:
                mode = 0o644
            os.fchmod(f.fileno(), mode)
        if overwrite:
            os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        else:
            try:
                os.link(tmp, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
            except FileExistsError:
                raise beneath.Refused("exists") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent)


# ------------------------------------------------------------------------- deleting


def delete(args: dict[str, Any]) -> dict[str, Any]:
    """Delete a file, a link (not its target) or, when `recursive`, a folder and all in it."""
    where = root()
    try:
        with where.locate(args["parts"], follow_last=False) as (parent, name, real, st):
            what = _delete(parent, name, st, args["recursive"])
            rel, mode = "/".join(real) or ".", st.st_mode if st is not None else 0
    except (FileNotFoundError, NotADirectoryError):  # a folder on the way is missing
        raise beneath.Refused("not_found") from None
    layout(where)
    return {"rel": rel, "type": entry_type(mode), "what": what}


def _delete(parent: int, name: str, st: os.stat_result | None, recursive: bool) -> str:
    if not name:
        raise beneath.Refused("outside", rule="root")
    if st is None:
        raise beneath.Refused("not_found")
    kind = entry_type(st.st_mode)
    if kind == "directory":
        if not recursive:
            raise beneath.Refused("is_folder")
        shutil.rmtree(name, dir_fd=parent)  # descriptor-based: it never follows a link
        return "folder"
    os.unlink(name, dir_fd=parent)
    return "link" if kind == "symlink" else "file"


# ------------------------------------------------------------------------- scripts


def script_start(args: dict[str, Any]) -> str:
    """Start `scripts/<name>` (found beneath the root) with `args`; the run's id."""
    where = root()
    try:
        with where.locate(["scripts", args["name"]]) as (_, _name, real, st):
            found = st is not None and stat.S_ISREG(st.st_mode)
    except (FileNotFoundError, NotADirectoryError):
        found = False
    if not found:
        raise beneath.Refused("no_script")
    path = os.path.join(where.path, *real)
    return script_runs.start(path, args["args"], where.path, args["budget"])


def _found(result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:  # this kernel never ran it: the one that did was replaced
        raise beneath.Refused("run_lost")
    return result


OPS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "hello": hello,
    "list": listing,
    "info": info,
    "regular_files": regular_files,
    "read": read,
    "read_whole": read_whole,
    "stage": stage,
    "unstage": unstage,
    "write": write,
    "delete": delete,
    "script_start": script_start,
    "script_poll": lambda args: _found(script_runs.poll(args["id"], args["linger_s"])),
    "script_kill": lambda args: script_runs.kill(args["id"]),
}


def call(op: str, args_json: str) -> str:
    """Run the operation `op` with JSON arguments; its outcome as JSON."""
    try:
        outcome: dict[str, Any] = {"ok": OPS[op](json.loads(args_json))}
    except beneath.Refused as refused:
        outcome = {"error": refused.kind, **refused.info}
    except OSError as exc:
        outcome = {"error": "os", "errno": exc.errno, "strerror": exc.strerror or str(exc)}
    return json.dumps(outcome, ensure_ascii=True)
