"""The keys of tests/sent.py, as a fixture of this folder's tests."""

from tests.sent import keys as keys
