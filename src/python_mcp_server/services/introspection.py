"""`IntrospectionService`: completion, object inspection and the variable list of a session.

None of these leave a trace in the session: completion and inspection are plain shell requests,
and the variable list is a silent probe (see `_probe.py`).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from python_mcp_server.config import ServerConfig
from python_mcp_server.errors import InvalidArgumentError
from python_mcp_server.kernels.messages import strip_ansi
from python_mcp_server.services._probe import PROBE_TIMEOUT_S, evaluate, locked
from python_mcp_server.services.sessions import SessionManager
from python_mcp_server.text import require_text

MAX_MATCHES = 200
REPR_CHARS = 200

# IPython's inspector prints "Header:  value" sections; a section may run over several lines.
_SECTION = re.compile(
    r"^(Signature|Init signature|Call signature|Type|String form|Namespace|Length|File|"
    r"Definition|Source|Docstring|Init docstring|Class docstring|Call docstring|Subclasses):"
    r"[ \t]*",
    re.MULTILINE,
)


class CompletionMatch(BaseModel):
    text: str = Field(description="The text that replaces code[cursor_start:cursor_end].")
    type: str | None = Field(
        default=None, description="'function', 'module', 'instance', ... when the kernel says."
    )
    signature: str | None = Field(default=None, description="Call signature, for callables.")


class CompletionResult(BaseModel):
    session_id: str
    cursor_start: int = Field(description="Start of the text the matches replace.")
    cursor_end: int = Field(description="End of the text the matches replace.")
    matches: list[CompletionMatch]
    total: int = Field(description="How many matches the kernel found.")
    truncated: bool = Field(description="True when only the first matches are listed.")


class InspectionResult(BaseModel):
    session_id: str
    found: bool = Field(description="False when there is no object at the cursor.")
    name: str | None = Field(default=None, description="The expression that was inspected.")
    type: str | None = None
    signature: str | None = None
    docstring: str | None = None
    file: str | None = None
    source: str | None = Field(default=None, description="Source code (detail_level=1 only).")
    text: str = Field(default="", description="The kernel's full help text, plain, bounded.")
    truncated: bool = False
    message: str | None = None


class VariableInfo(BaseModel):
    name: str
    type: str = Field(description="Type name, with its module unless it is a builtin.")
    repr: str | None = Field(
        default=None, description="A short, bounded repr (functions: their signature)."
    )
    size: int | None = Field(default=None, description="len() for containers and strings.")
    shape: list[int] | None = Field(default=None, description="Arrays and DataFrames.")
    dtype: str | None = Field(default=None, description="Arrays, Series; DataFrames: a summary.")


class VariableList(BaseModel):
    session_id: str
    variables: list[VariableInfo]
    total: int = Field(description="How many user variables the session has.")
    truncated: bool
    message: str | None = None


def _check_cursor(code: str, cursor_pos: int | None) -> int:
    require_text(code, "code")
    if cursor_pos is None:
        return len(code)
    if not 0 <= cursor_pos <= len(code):
        raise InvalidArgumentError(
            f"cursor_pos {cursor_pos} is outside the code, which is {len(code)} characters long. "
            f"Use a value from 0 to {len(code)}, or omit it to mean the end of the code."
        )
    return cursor_pos


def _sections(text: str) -> dict[str, str]:
    found = list(_SECTION.finditer(text))
    sections: dict[str, str] = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        sections.setdefault(match.group(1), text[match.end() : end].strip())
    return sections


def _first(sections: dict[str, str], *keys: str) -> str | None:
    for key in keys:
        if sections.get(key):
            return sections[key]
    return None


class IntrospectionService:
    def __init__(self, config: ServerConfig, sessions: SessionManager) -> None:
        self._config = config
        self._sessions = sessions

    async def complete(
        self, session_id: str, code: str, cursor_pos: int | None = None
    ) -> CompletionResult:
        """What could be typed at `cursor_pos` (default: end of `code`)."""
        pos = _check_cursor(code, cursor_pos)
        session = await self._sessions.acquire(session_id)
        async with locked(session):
            reply = await session.request(
                "complete_request", {"code": code, "cursor_pos": pos}, PROBE_TIMEOUT_S
            )
        content = reply.content
        texts = [str(m) for m in content.get("matches", [])]
        typed = content.get("metadata", {}).get("_jupyter_types_experimental", [])
        kinds = {
            str(t.get("text")): t for t in typed if isinstance(t, dict) and t.get("text") in texts
        }
        matches = []
        for text in texts[:MAX_MATCHES]:
            info = kinds.get(text, {})
            kind = info.get("type")
            matches.append(
                CompletionMatch(
                    text=text,
                    type=kind if kind and kind != "<unknown>" else None,
                    signature=info.get("signature") or None,
                )
            )
        return CompletionResult(
            session_id=session_id,
            cursor_start=int(content.get("cursor_start", pos)),
            cursor_end=int(content.get("cursor_end", pos)),
            matches=matches,
            total=len(texts),
            truncated=len(texts) > MAX_MATCHES,
        )

    async def inspect(
        self, session_id: str, code: str, cursor_pos: int | None = None, detail_level: int = 0
    ) -> InspectionResult:
        """The signature and docstring (and source at detail_level 1) of the object at the cursor."""
        pos = _check_cursor(code, cursor_pos)
        if detail_level not in (0, 1):
            raise InvalidArgumentError(
                f"detail_level must be 0 (signature and docstring) or 1 (also the source); "
                f"got {detail_level}."
            )
        session = await self._sessions.acquire(session_id)
        async with locked(session):
            reply = await session.request(
                "inspect_request",
                {"code": code, "cursor_pos": pos, "detail_level": detail_level},
                PROBE_TIMEOUT_S,
            )
        content = reply.content
        raw = content.get("data", {}).get("text/plain", "")
        if not content.get("found") or not raw:
            return InspectionResult(
                session_id=session_id,
                found=False,
                message=f"No object found at cursor_pos {pos}. Put the cursor on or just after a "
                "name that exists in the session, for example code='np.mean' after importing "
                "numpy as np.",
            )
        text = strip_ansi(str(raw))
        sections = _sections(text)
        budget = self._config.max_output_chars
        return InspectionResult(
            session_id=session_id,
            found=True,
            name=_name_at(code, pos),
            type=sections.get("Type"),
            signature=_first(sections, "Signature", "Init signature", "Call signature"),
            docstring=_first(sections, "Docstring", "Init docstring", "Class docstring"),
            file=sections.get("File"),
            source=sections.get("Source"),
            text=text[:budget],
            truncated=len(text) > budget,
        )

    async def variables(self, session_id: str) -> VariableList:
        """The user's variables: name, type, short repr, size or shape. Modules are left out."""
        limit = self._config.max_list_entries
        session = await self._sessions.acquire(session_id)
        async with locked(session):
            data = await evaluate(session, "variables", {"limit": limit, "width": REPR_CHARS})
        total = int(data["total"])
        variables = [VariableInfo.model_validate(v) for v in data["variables"]]
        truncated = total > len(variables)
        return VariableList(
            session_id=session_id,
            variables=variables,
            total=total,
            truncated=truncated,
            message=f"Only the first {len(variables)} of {total} variables (by name) are listed."
            if truncated
            else None,
        )


_NAME_CHARS = re.compile(r"[\w.]+$")


def _name_at(code: str, pos: int) -> str | None:
    """The dotted name that ends at (or runs through) `pos`."""
    head = _NAME_CHARS.search(code[:pos])
    tail = re.match(r"\w*", code[pos:])
    name = (head.group(0) if head else "") + (tail.group(0) if tail else "")
    return name.strip(".") or None
