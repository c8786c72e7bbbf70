"""``transferd.core`` stays free of I/O: importing it loads no event loop, socket or RNG module.

STYLE.md's one rule: the core imports pure standard modules, nacl, zstandard, blake3, pyfastcdc
and (for hybrid recipients) cryptography, and is passed keys, nonces and timestamps rather than
drawing them; the one exception, a hybrid stanza's HPKE randomness, is drawn inside OpenSSL
(core/jobkey.py says why). A module that
pulls in asyncio or socket has started doing I/O; one that pulls in random or secrets has
started drawing randomness, which would make its output impossible to pin with test vectors.

Each module is imported alone in a fresh interpreter: in the test process something else may
already have loaded asyncio, and an import that happens only in one order would be missed.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import transferd.core

REPO = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "asyncio": "an event loop is the transport's job",
    "aiohttp": "HTTP is the transport's job",
    "socket": "the network is the transport's job",
    "ssl": "the network is the transport's job",
    "selectors": "waiting on file descriptors is I/O",
    "subprocess": "running programs is I/O",
    "uvloop": "only daemon/run.py installs uvloop",
    "rich": "terminal output is the CLI's job",
    "random": "randomness is passed in, so vectors can pin every output",
    "secrets": "randomness is passed in, so vectors can pin every output",
    "tempfile": "files are the jobs' and stores' job",
}

SUBMODULES = pkgutil.iter_modules(transferd.core.__path__, "transferd.core.")
MODULES = ["transferd.core", *sorted(info.name for info in SUBMODULES)]

# argv: the module to import, the checkout to import it from
PROBE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[2])
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("module", MODULES)
def test_importing_core_loads_no_io_module(module: str) -> None:
    # -I: ignore PYTHON* variables and user site-packages: only what the import itself loads.
    proc = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, module, str(REPO)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout))
    assert module in loaded
    offending = {name: FORBIDDEN[name] for name in sorted(FORBIDDEN.keys() & loaded)}
    assert offending == {}, f"importing {module} loads modules the core must not use"


def test_the_probe_sees_what_it_looks_for() -> None:
    """Guard against a probe that passes because it checks nothing."""
    proc = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, "asyncio", str(REPO)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert {"asyncio", "socket", "selectors"} <= set(json.loads(proc.stdout))
