"""The generated pages of the documentation match what their generators write now: the tools
reference from the live catalogue, the configuration table from the real command line. A change
to a tool or a flag regenerates them with `uv run python -m docs.gen`."""

from __future__ import annotations

import pytest

from docs.gen import configuration, tools


def _stale(page: str, command: str) -> str:
    return f"{page} is stale: regenerate it with `{command}` and commit the result"


@pytest.mark.anyio
async def test_the_tools_reference_is_the_live_catalogue() -> None:
    written = tools.PAGE.read_text(encoding="utf-8")
    assert written == await tools.page(), _stale("docs/reference/tools.md", tools.COMMAND)


def test_the_configuration_table_is_the_command_line() -> None:
    written = configuration.PAGE.read_text(encoding="utf-8")
    expected = configuration.replaced(written, configuration.table())
    assert written == expected, _stale("docs/configuration.md's table", configuration.COMMAND)


def test_a_page_without_its_markers_is_refused_naming_them() -> None:
    with pytest.raises(ValueError, match="END GENERATED"):
        configuration.replaced("# Configuration\n\nno table here\n", "| a |")
