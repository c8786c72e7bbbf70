"""Transport tests run coroutines without a plugin and may use the small tmpfs (backends.py)."""

from __future__ import annotations

from tests.stores.backends import pytest_pyfunc_call as pytest_pyfunc_call
from tests.stores.backends import small_fs as small_fs
