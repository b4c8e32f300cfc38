"""Where the shop reaches into another library's private API: one small module per library,
each saying what it relies on and why, each pinned by a test that fails when the library
changes (tests/platform/test_compat.py) and by an upper bound in pyproject.toml."""
