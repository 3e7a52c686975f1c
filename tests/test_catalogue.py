"""What a client lists, pinned: every tool's name, title, description, input and output schema
and annotations, and every resource and resource template, exactly as sent on the wire.

`tests/fixtures/catalogue.json` is the snapshot. A change to it is a change clients see: make it
on purpose, by regenerating the file with `catalogue()` below, and review the diff.

What a model reads of it on every connection (`model_view`) is kept within `MODEL_VIEW_BUDGET`
bytes; `bench/catalogue.py` shows it tool by tool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "fixtures" / "catalogue.json"
MODEL_VIEW_BUDGET = 15_000
"""Bytes of `model_view` (issue 17: at or under 15 KB for the whole catalogue)."""


async def catalogue(config: ServerConfig) -> dict[str, Any]:
    """The tools, resources and resource templates a client lists, as JSON."""
    async with Client(create_server(config)) as client:
        listed = {
            "tools": await client.list_tools(),
            "resources": await client.list_resources(),
            "resourceTemplates": await client.list_resource_templates(),
        }
    return {
        kind: [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in items]
        for kind, items in listed.items()
    }


def model_view(listed: dict[str, Any]) -> list[dict[str, Any]]:
    """What a model reads of the tool list: each tool's name, description and input schema."""
    return [
        {
            "name": t["name"],
            "description": t.get("description", ""),
            "inputSchema": t["inputSchema"],
        }
        for t in listed["tools"]
    ]


def compact_bytes(value: Any) -> int:
    """Bytes of `value` as compact JSON in UTF-8, as a client would put it before a model."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


async def test_the_listed_tools_and_resources_match_the_snapshot(config: ServerConfig) -> None:
    assert await catalogue(config) == json.loads(SNAPSHOT.read_text(encoding="utf-8"))


async def test_what_a_model_reads_of_the_tools_stays_within_budget(config: ServerConfig) -> None:
    view = model_view(await catalogue(config))
    assert compact_bytes(view) <= MODEL_VIEW_BUDGET, sorted(
        ((compact_bytes(t), t["name"]) for t in view), reverse=True
    )


async def test_optional_arguments_are_listed_as_their_type_and_still_take_null(
    config: ServerConfig,
) -> None:
    listed = await catalogue(config)
    run = next(t for t in listed["tools"] if t["name"] == "run_python_code")
    assert run["inputSchema"]["properties"]["timeout_s"] == {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 86400.0,
        "description": run["inputSchema"]["properties"]["timeout_s"]["description"],
    }
    for tool in listed["tools"]:
        for name, prop in tool["inputSchema"].get("properties", {}).items():
            assert "anyOf" not in prop, (tool["name"], name)
            assert prop.get("default", 0) is not None, (tool["name"], name)
    async with Client(create_server(config)) as client:
        res = await client.call_tool(
            "list_files", {"pattern": None, "max_entries": None}, raise_on_error=False
        )
    assert not res.is_error, res.content
