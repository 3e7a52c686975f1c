"""run_python_code through the in-memory FastMCP client against real kernels."""

from __future__ import annotations

import pytest
from fastmcp import Client

from python_mcp_server.config import ServerConfig
from python_mcp_server.server import create_server

pytestmark = pytest.mark.anyio


async def test_code_output_and_last_expression_come_back_typed(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool("run_python_code", {"code": "print('hi'); 6 * 7"})
    data = res.structured_content
    assert data is not None
    assert (data["status"], data["stdout"], data["result"], data["execution_count"]) == (
        "ok", "hi\n", "42", 1,
    )
    assert "hi" in res.content[0].text


async def test_an_exception_in_user_code_is_data_not_a_tool_error(config: ServerConfig) -> None:
    async with Client(create_server(config)) as client:
        res = await client.call_tool("run_python_code", {"code": "1/0"})
    assert not res.is_error
    data = res.structured_content
    assert data is not None
    assert data["status"] == "error"
    assert data["error"]["ename"] == "ZeroDivisionError"
    assert not any("\x1b[" in line for line in data["error"]["traceback"])
