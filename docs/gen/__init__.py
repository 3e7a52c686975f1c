"""Writers of the documentation's generated pages: the tools reference from the live catalogue
(`docs.gen.tools`) and the configuration table from the real command line
(`docs.gen.configuration`). `uv run python -m docs.gen` rewrites both; the tests in
tests/test_docs_reference.py fail while a committed page differs from what they write."""
