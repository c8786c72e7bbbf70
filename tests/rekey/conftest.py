"""The keys and stores of tests/sent.py, and the CLI runner of tests/cli, as fixtures here."""

from tests.cli.conftest import run as run
from tests.sent import keys as keys
from tests.sent import store as store
