"""The whole suite: Ctrl-C reaches the children the tests start, however pytest was launched.

Some tests stop a child (a send, a watch) with SIGINT, as an operator's Ctrl-C, and check how it
ends. A child inherits an *ignored* SIGINT across exec, and a shell that starts a command in the
background without job control (``cmd &`` in a script, ``nohup``) starts it with SIGINT ignored:
every child would then ignore the test's Ctrl-C. So SIGINT is given its default handler here, in
pytest's process and in each xdist worker, before any test starts a child.
"""

from __future__ import annotations

import signal

import pytest


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
