"""``python -m transferd``: the same entry point as the ``transferd`` command."""

from __future__ import annotations

from transferd.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
