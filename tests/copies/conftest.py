"""Fixtures of the copy tests (plan, leases, agents, copy manifests)."""

from __future__ import annotations

from tests.stores.backends import pytest_pyfunc_call as pytest_pyfunc_call
