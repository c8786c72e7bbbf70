"""systemd notifications (sd_notify(3)): READY, STATUS, STOPPING and WATCHDOG over $NOTIFY_SOCKET.

The protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket systemd names in
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Without the variable every call
is a no-op, so the daemon runs the same from a terminal. Sends never block: a full socket buffer
drops the message (a late STATUS is worth less than a stalled event loop) and a vanished manager
is ignored; the next watchdog ping or status will try again.

The watchdog interval comes from ``$WATCHDOG_USEC`` (set by ``WatchdogSec=``), for this process
only when ``$WATCHDOG_PID`` names it. Pings are sent from the event loop at half the interval, so
a loop stuck for longer than ``WatchdogSec=`` stops them and systemd restarts the service: the
watchdog watches the thing that can hang.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1_000_000
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False if it could not be sent."""
        if self._sock is None or self.address is None:
            return False
        text = "\n".join(f"{k}={v.replace(chr(10), ' ')}" for k, v in fields.items())
        try:
            self._sock.sendto(text.encode(), socket.MSG_DONTWAIT, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> None:
        self.notify(READY="1", STATUS=status, MAINPID=str(os.getpid()))

    def status(self, text: str) -> None:
        self.notify(STATUS=text)

    def stopping(self, status: str) -> None:
        self.notify(STOPPING="1", STATUS=status)

    def watchdog(self) -> None:
        self.notify(WATCHDOG="1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
