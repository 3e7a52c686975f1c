"""The README's examples run as written, against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import http_server

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE_URL = "http://127.0.0.1:8000/mcp"


def readme_example(name: str) -> str:
    """The Python code block between `<!-- example: NAME ... -->` and `<!-- /example -->`."""
    text = README.read_text()
    found = re.search(
        rf"<!-- example: {re.escape(name)}\b.*?-->\s*```python\n(.*?)```\s*<!-- /example -->",
        text,
        re.DOTALL,
    )
    assert found is not None, f"README.md has no example {name!r} between markers"
    return found.group(1)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_fastmcp_example_can_run_more_times_than_the_session_limit(workspace: Path) -> None:
    """The example ends the session it creates: run once more than --max-sessions allows
    sessions, every run still gets its own."""
    code = readme_example("fastmcp-client")
    assert EXAMPLE_URL in code
    limit = 2  # the shared `default` session and one the example creates
    with http_server(workspace, "--max-sessions", str(limit)) as server:
        runnable = code.replace(EXAMPLE_URL, server.url)
        for run in range(limit + 1):
            done = subprocess.run(
                [sys.executable, "-c", runnable],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, f"run {run + 1}: {done.stderr[-3000:]}"
            assert done.stdout.split() == ["6.283185307179586", "42"]
