"""transferd: chunked, compressed, end-to-end encrypted copies to a sovereign storage host.

The package's public surface is small on purpose: the version here, the exception tree in
:mod:`transferd.errors`, and the command line (``transferd --help``).
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
