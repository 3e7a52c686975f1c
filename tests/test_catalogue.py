"""What a client lists, pinned: every tool's name, title, description, input and output schema
and annotations, and every resource and resource template, exactly as sent on the wire.

`tests/fixtures/catalogue.json` is the snapshot. A change to it is a change clients see: make it
on purpose, by regenerating the file with `catalogue()` below, and review the diff."""

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


async def test_the_listed_tools_and_resources_match_the_snapshot(config: ServerConfig) -> None:
    assert await catalogue(config) == json.loads(SNAPSHOT.read_text(encoding="utf-8"))
