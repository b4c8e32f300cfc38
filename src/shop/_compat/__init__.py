"""Where the shop reaches into other libraries' private APIs: one small module per library.

Each module says what it fixes and why; a test in ``tests/platform/test_compat_<library>.py``
fails loudly when the library changes under it, and pyproject.toml bounds the
library's version from above.
"""
