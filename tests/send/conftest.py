"""The keys and stores of tests/sent.py, as fixtures of this folder's tests."""

from tests.sent import keys as keys
from tests.sent import store as store
