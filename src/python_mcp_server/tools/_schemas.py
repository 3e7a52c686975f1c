"""How the tools are listed: input and output schemas shaped for the ones who read them.

A model reads every tool's name, description and input schema on every connection, so the input
schemas say each thing once: an optional argument is its type and description, without pydantic's
`anyOf: [T, null]` and `default: null` (leaving it out is how a model says "none"; an explicit
null is still accepted, since pydantic validates the arguments, not the schema). Descriptions
come from docstrings; their hard line breaks are joined (paragraphs kept).

Clients check every result against its output schema: the MCP SDK validates it with jsonschema
and the FastMCP Client walks, hashes and converts it (`bench/client_schemas.py`). Their cost grows
with the schema's nodes and unions, so the output schemas are the serialization schema with
`$defs` inlined, every field required (a result always carries every field), a nullable field as
`type: [T, "null"]` rather than an `anyOf`, no defaults and no titles but the objects' (the class
names typed clients build). Every field keeps its type and description.
"""

from __future__ import annotations

from typing import Any

from fastmcp.tools import Tool
from pydantic import BaseModel

from python_mcp_server.compat.fastmcp_private import inline_refs

_NULL = {"type": "null"}


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s results as clients receive and check them (see the module's docstring)."""
    shaped: dict[str, Any] = _shape_output(
        inline_refs(model.model_json_schema(mode="serialization"))
    )
    return shaped


def listed(tool: Tool) -> Tool:
    """`tool` with its description's line breaks joined and its input schema lean."""
    params = dict(tool.parameters)
    properties = params.get("properties")
    if isinstance(properties, dict):
        params["properties"] = {k: _omittable(p) for k, p in properties.items()}
    return tool.model_copy(
        update={"parameters": params, "description": _reflow(tool.description or "")}
    )


def _reflow(text: str) -> str:
    return "\n\n".join(" ".join(p.split()) for p in text.strip().split("\n\n"))


def _nullable_arm(node: dict[str, Any]) -> dict[str, Any] | None:
    """The non-null arm of `anyOf: [T, null]`, or None when `node` is not that."""
    arms = node.get("anyOf")
    if isinstance(arms, list) and len(arms) == 2 and _NULL in arms:
        arm = arms[1] if arms[0] == _NULL else arms[0]
        if isinstance(arm, dict):
            return arm
    return None


def _omittable(prop: Any) -> Any:
    """An optional argument defaulting to None as its type alone (see the module's docstring)."""
    if not isinstance(prop, dict) or "default" not in prop or prop["default"] is not None:
        return prop
    arm = _nullable_arm(prop)
    if arm is None:
        return prop
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**arm, **rest}


def _shape_output(node: Any) -> Any:
    if isinstance(node, list):
        return [_shape_output(item) for item in node]
    if not isinstance(node, dict):
        return node
    arm = _nullable_arm(node)
    if arm is not None and isinstance(arm.get("type"), str) and "const" not in arm:
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**arm, **rest, "type": [arm["type"], "null"]}
        if "enum" in arm:
            node["enum"] = [*arm["enum"], None]
    shaped: dict[str, Any] = {}
    for key, value in node.items():
        if key == "default" or (key == "title" and "properties" not in node):
            continue
        if key in ("properties", "patternProperties", "$defs"):
            shaped[key] = {name: _shape_output(sub) for name, sub in value.items()}
        elif key in ("enum", "const", "examples", "required"):
            shaped[key] = value
        else:
            shaped[key] = _shape_output(value)
    if isinstance(shaped.get("properties"), dict):
        shaped["required"] = list(shaped["properties"])
    return shaped
