"""The package's public surface is exactly ``__all__``; growing it is a deliberate change."""

from __future__ import annotations

import re
import types

import transferd


def test_all_is_what_the_package_exports() -> None:
    assert transferd.__all__ == ["__version__"]
    public = {
        name
        for name, value in vars(transferd).items()
        # subpackages become attributes once imported; they are reached by their own path
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == {"annotations"}  # the `from __future__ import annotations` feature


def test_version_is_pep440() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", transferd.__version__)
