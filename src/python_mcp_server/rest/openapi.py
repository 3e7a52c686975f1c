"""The OpenAPI 3.1 document of the REST API, generated from the tools' own schemas.

`POST /execute` takes a `ToolCall`: a `oneOf` over one schema per tool (`<tool>.call`: `name`
is that tool's name, `arguments` its input schema), with `name` as the discriminator. Its answer
is `<tool>.result`, the tool's output schema; the document lists them as an `anyOf` (several tools
share one shape) and links each call to its result in `x-result`. The tools' schemas are JSON
Schema 2020-12, which OpenAPI 3.1 takes as they are.
"""

from __future__ import annotations

import copy
from typing import Any, Final

ERROR_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "Every refusal: `error.message` says what went wrong and how to fix it. "
    "The bearer-token and body-size guards answer in the same place, with a JSON-RPC shaped "
    "body (`error.code`, `error.message`).",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "type": {
                    "type": "string",
                    "description": "invalid_request, unsupported_media_type, unknown_tool, "
                    "invalid_arguments, not_found, conflict, limit, forbidden, too_large, "
                    "unavailable, tool_error or internal.",
                },
                "message": {"type": "string"},
            },
        }
    },
}

STREAM_DESCRIPTION: Final = """\
Server-Sent Events (`text/event-stream`); each `data:` is one line of JSON.

- `event: output`, data `{"stream": "stdout" | "stderr", "text": "..."}`: what the cell printed,
  as it printed it (`dropped`: characters left out for a slow reader; the result has all output).
- `event: progress`, data `{"message": "..."}`: progress of an install or an environment build.
- `event: result`, data: the tool's structured result (as `POST /execute` answers it). Last event.
- `event: error`, data `{"status": <http status>, "error": {"type", "message"}}`: the call failed
  after the stream began. Last event.
- `: keepalive` comments while nothing happens.

A call refused before it starts (unknown tool, bad arguments) is answered as by `/execute`: a
4xx JSON error. Closing the connection cancels the call and interrupts its cell."""


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "200": ok,
        "400": {"description": "The body is not a tool call.", "content": error},
        "401": {"description": "The server's bearer token is missing or wrong.", "content": error},
        "403": {"description": "A foreign Origin, or a path outside the workspace."},
        "404": {"description": "Unknown tool, session or file.", "content": error},
        "409": {"description": "The session or file exists, or is busy.", "content": error},
        "413": {"description": "The request body or a file is too large.", "content": error},
        "415": {"description": "A browser request without JSON content.", "content": error},
        "422": {"description": "Arguments the tool cannot use.", "content": error},
        "429": {"description": "A session or resource limit.", "content": error},
        "500": {"description": "A server bug (see its log).", "content": error},
        "503": {"description": "Stopping, or no kernel could start.", "content": error},
    }


def openapi_document(
    tools: list[dict[str, Any]], version: str, *, token: bool = False
) -> dict[str, Any]:
    """The document for `tools` (as `GET /tools` lists them)."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "python-mcp-server REST API",
            "version": version,
            "description": "The MCP server's tools over plain HTTP: the same tools, results "
            "and guards as MCP clients get. See docs/rest.md.",
        },
        "paths": _paths(),
        "components": {"schemas": _schemas(tools)},
    }
    if token:
        document["components"]["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The server's token (--auth-token-file or --auth-token).",
            }
        }
        document["security"] = [{"bearer": []}]
    return document


def _schemas(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """`<tool>.call` and `<tool>.result` for each tool, `ToolCall`, `ToolResult`, `Error`."""
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    calls: list[dict[str, str]] = []
    results: list[dict[str, str]] = []
    mapping: dict[str, str] = {}
    for tool in tools:
        name = str(tool["name"])
        call_ref = f"#/components/schemas/{name}.call"
        result_ref = f"#/components/schemas/{name}.result"
        schemas[f"{name}.call"] = {
            "type": "object",
            "title": f"{name} call",
            "description": tool["description"],
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"const": name},
                "arguments": copy.deepcopy(tool["input_schema"]),
            },
            "x-result": result_ref,
        }
        output = tool.get("output_schema") or {"type": "object"}
        schemas[f"{name}.result"] = {**copy.deepcopy(output), "title": f"{name} result"}
        calls.append({"$ref": call_ref})
        results.append({"$ref": result_ref})
        mapping[name] = call_ref
    schemas["ToolCall"] = {
        "oneOf": calls,
        "discriminator": {"propertyName": "name", "mapping": mapping},
    }
    schemas["ToolResult"] = {"anyOf": results}
    return schemas


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _paths() -> dict[str, Any]:
    call_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ToolCall"}}},
    }
    result = {"$ref": "#/components/schemas/ToolResult"}
    stream = {
        "description": STREAM_DESCRIPTION,
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Whether the server is up (no token needed).",
                "security": [],
                "responses": {"200": _json(_HEALTH, "Up.")},
            }
        },
        "/tools": {
            "get": {
                "operationId": "listTools",
                "summary": "Every tool with its description, input and output schema.",
                "responses": {"200": _json(_TOOL_LIST, "The tools.")},
            }
        },
        "/execute": {
            "post": {
                "operationId": "execute",
                "summary": "Call one tool; its structured result.",
                "description": "A user-code exception is a 200 with status 'error'.",
                "requestBody": call_body,
                "responses": _responses(_json(result, "The tool's structured result.")),
            }
        },
        "/execute/stream": {
            "post": {
                "operationId": "executeStream",
                "summary": "Call one tool; its output as it runs, then its result (SSE).",
                "description": STREAM_DESCRIPTION,
                "requestBody": call_body,
                "responses": _responses(stream),
            }
        },
        "/resource": {
            "get": {
                "operationId": "readResource",
                "summary": "The bytes of a kernel:// or workspace:// URI a result gave.",
                "parameters": [
                    {"name": "uri", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "download", "in": "query", "schema": {"enum": ["1", "true"]}},
                ],
                "responses": _responses({"description": "The file, with its mime type."}),
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1."}},
            }
        },
    }


_HEALTH: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"status": {"const": "ok"}, "version": {"type": "string"}},
}
_TOOL_LIST: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["tools"],
    "properties": {
        "tools": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "description", "input_schema"],
                "properties": {
                    "name": {"type": "string"},
                    "title": {"type": "string"},
                    "description": {"type": "string"},
                    "input_schema": {"type": "object"},
                    "output_schema": {"type": ["object", "null"]},
                    "annotations": {"type": "object"},
                },
            },
        }
    },
}
