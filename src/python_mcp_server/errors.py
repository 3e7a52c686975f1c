"""The exception hierarchy. Every message is written for the model: what happened, then what to do.

```
ServerError                        the model can act on this (reaches it as an `isError` tool result)
├── ConfigError                    a flag or environment variable has an unusable value
├── KernelError
│   ├── KernelNotFoundError        unknown session id -> call list_sessions
│   ├── SessionExpiredError        the session idled out -> create a new one
│   ├── SessionExistsError         create_session with an id that is taken
│   ├── SessionLimitError          --max-sessions reached -> delete_session
│   ├── KernelStartError           the kernel process could not start
│   │   └── GatewayError           the kernel gateway is unreachable, refused us, or lost the kernel
│   ├── KernelDiedError            the kernel process is gone
│   ├── KernelBusyError            an operation that needs an idle kernel met a busy one
│   └── KernelCallError            a call into the kernel-side package raised (callers reword it)
├── WorkspaceError
│   ├── PathOutsideWorkspaceError  traversal, absolute path or symlink escape, NUL byte
│   ├── WorkspaceFileNotFoundError
│   ├── WorkspaceFileExistsError
│   ├── NotAFileError / NotADirectoryError_
│   ├── FileTooLargeError
│   └── ScriptNotFoundError        run_script with a name not in scripts/
├── PackageError                   a requirement that is refused or an installer failure
├── InvalidArgumentError           a value the schema allows but the tool cannot use
│   └── InvalidTextError           text with unpaired surrogates (not encodable as UTF-8)
├── ArtifactNotFoundError          a kernel:// file that a session never produced
├── OutputNotKeptError             a session output file was not kept (the result says why)
│   ├── OutputLimitError           --max-outputs-mb reached
│   └── SessionOutputsGoneError    the session ended: its outputs were deleted with it
├── ResourceLimitError             host memory below the floor, and similar limits
└── ServerStoppingError            the server is shutting down: no new cells or sessions
```
"""

from __future__ import annotations


class ServerError(Exception):
    """Base of every error the model can act on."""


class ConfigError(ServerError):
    """A configuration value is unusable."""


class InvalidArgumentError(ServerError):
    """An argument passed the schema but cannot be used."""


class InvalidTextError(InvalidArgumentError):
    """Text that JSON allowed (`\\ud800`-style escapes) but that is not valid Unicode."""

    def __init__(self, what: str, text: str, at: int) -> None:
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        code = ord(text[at])
        super().__init__(
            f"The {what} contains an unpaired surrogate character (U+{code:04X}) at line {line}, "
            f"column {column}: it is not valid Unicode and cannot be encoded as UTF-8. Remove it, "
            f"or write it as the escape '\\u{code:04x}' inside a string literal."
        )


class ResourceLimitError(ServerError):
    """A host or server limit refuses the request."""


class ServerStoppingError(ServerError):
    def __init__(self) -> None:
        super().__init__(
            "The server is shutting down, so it starts no new code or session; call again once "
            "it is back (variables are not kept across a server restart)."
        )


class KernelError(ServerError):
    """Base for kernel and session problems."""


class KernelNotFoundError(KernelError):
    def __init__(self, session_id: str, known: list[str] | None = None) -> None:
        hint = f" Live sessions: {', '.join(known)}." if known else ""
        super().__init__(
            f"No session {session_id!r}.{hint} Call list_sessions to see live sessions, "
            "or create_session to start one."
        )
        self.session_id = session_id


class SessionExpiredError(KernelError):
    def __init__(self, session_id: str, idle_s: float) -> None:
        super().__init__(
            f"Session {session_id!r} expired after {idle_s:.0f} s without use and its kernel was "
            "shut down; its variables are gone. Call create_session to start a new one."
        )
        self.session_id = session_id


class SessionDeletedError(KernelNotFoundError):
    def __init__(self, session_id: str, known: list[str] | None = None) -> None:
        hint = f" Live sessions: {', '.join(known)}." if known else ""
        KernelError.__init__(
            self,
            f"Session {session_id!r} was deleted (delete_session) and its variables are gone."
            f"{hint} Pass another session_id (on a connection that keeps a current session, "
            "switch_session changes it), or call create_session to start a new one.",
        )
        self.session_id = session_id


class SessionExistsError(KernelError):
    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"A session named {session_id!r} already exists. Use it as it is, pick another "
            "session_id, or call delete_session first."
        )
        self.session_id = session_id


class SessionLimitError(KernelError):
    def __init__(
        self, limit: int, live: list[str], default: str | None = None, one_shot: int = 0
    ) -> None:
        if one_shot:
            names = f"{', '.join(live)}; " if live else ""
            super().__init__(
                f"The server already runs its limit of {limit} kernels ({names}{one_shot} "
                "one-shot execute_python run(s), whose kernels go when they end). Try again "
                "when a run has ended, or call delete_session on a session you no longer need."
            )
        elif default is None or not live:
            super().__init__(
                f"The server already runs its limit of {limit} sessions ({', '.join(live)}). "
                "Call delete_session on one you no longer need, or reuse an existing session_id."
            )
        else:
            super().__init__(
                f"No session_id was given, so this call needs the {default!r} session, which is "
                f"not running, and the server already runs its limit of {limit} sessions "
                f"({', '.join(live)}). Pass session_id={live[0]!r} (or another of those), or "
                "call delete_session on one you no longer need."
            )
        self.limit = limit
        self.one_shot = one_shot


class KernelStartError(KernelError):
    """The kernel process could not be started."""


class GatewayError(KernelStartError):
    """The kernel gateway could not be reached, refused this server, or lost the kernel."""


class ListingRefusedError(GatewayError):
    """The gateway does not list its kernels (Kernel Gateway without list_kernels)."""


class KernelDiedError(KernelError):
    """The kernel process died and the operation could not finish."""


class KernelBusyError(KernelError):
    """The kernel is busy and the operation needs it idle."""


class KernelCallError(KernelError):
    """A function of the kernel-side package raised (its name and message), or its value could
    not be read; the caller says what it was doing."""


class WorkspaceError(ServerError):
    """Base for workspace file problems."""


class PathOutsideWorkspaceError(WorkspaceError):
    def __init__(self, path: str, rule: str) -> None:
        super().__init__(
            f"Path {path!r} is refused: {rule}. Use a path relative to the workspace root, "
            "for example 'data/input.csv'."
        )
        self.path = path


class WorkspaceFileNotFoundError(WorkspaceError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"No file or folder {path!r} in the workspace. Call list_files to see what exists."
        )
        self.path = path


class WorkspaceFileExistsError(WorkspaceError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"{path!r} already exists. Pass overwrite=true to replace it, or choose another path."
        )
        self.path = path


class NotAFileError(WorkspaceError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path!r} is a folder, not a file. Call list_files to see inside it.")
        self.path = path


class NotADirectoryError_(WorkspaceError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path!r} is a file, not a folder. Use read_file to read it.")
        self.path = path


class FileTooLargeError(WorkspaceError):
    def __init__(self, path: str, size: int, limit: int, hint: str) -> None:
        super().__init__(f"{path!r} is {size} bytes, over the limit of {limit} bytes. {hint}")
        self.path = path


class PackageError(ServerError):
    """A package request was refused or the installer failed as a whole."""


class ScriptNotFoundError(WorkspaceError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"No script {name!r} in scripts/. Call list_files(path='scripts') to see the saved "
            "scripts, or save_script to create it."
        )
        self.name = name


class ArtifactNotFoundError(ServerError):
    def __init__(self, session_id: str, filename: str, earlier: bool = False) -> None:
        past = (
            f" An earlier session named {session_id!r} ended, and its outputs were deleted with "
            "it; a link from that session no longer works."
            if earlier
            else ""
        )
        super().__init__(
            f"No file {filename!r} among the outputs of session {session_id!r}.{past} Use a "
            "kernel:// URI exactly as a run_python_code result gave it; files are listed in its "
            "images, displays and output_files."
        )
        self.session_id = session_id
        self.filename = filename


class OutputNotKeptError(ServerError):
    """A session output file the server did not keep; the result says so, and why."""


class OutputLimitError(OutputNotKeptError):
    def __init__(self, limit_mb: int) -> None:
        super().__init__(
            f"Session outputs are at this server's limit of {limit_mb} MB (--max-outputs-mb): "
            "delete sessions you no longer need (their outputs go with them), or raise "
            "--max-outputs-mb."
        )
        self.limit_mb = limit_mb


class SessionOutputsGoneError(OutputNotKeptError):
    def __init__(self, session_id: str, how: str) -> None:
        super().__init__(
            f"Session {session_id!r} {how}, and its outputs (the files behind its kernel:// "
            "links) were deleted with it. Run the code again in a live session to make them "
            "again."
        )
        self.session_id = session_id
