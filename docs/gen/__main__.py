"""`uv run python -m docs.gen`: rewrite every generated page of the documentation."""

from __future__ import annotations

from docs.gen import configuration, tools

if __name__ == "__main__":
    tools.main()
    configuration.main()
