"""Benchmarks, each one command: `uv run python bench/<name>.py` (see README, Development)."""
