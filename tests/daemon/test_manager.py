"""The job manager in process, against a local store: definitions, restarts, the verbs' refusals."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.daemon.harness import make_source
from tests.integration.harness import Keys
from transferd.core.keys import RecipientIdentity, SenderSecretKey, parse_key_file
from transferd.daemon.config import load_config
from transferd.daemon.manager import Manager
from transferd.errors import ConfigError, JobNotFoundError


def _manager(tmp_path: Path, keys: Keys) -> Manager:
    path = tmp_path / "t.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[send]\nstore = "{tmp_path / "store"}"\nrecipients = ["{keys.owner}"]\n'
        'pack_size = "1M"\nworkers = 1\n'
    )
    sender = parse_key_file(keys.sender_key.read_text())
    assert isinstance(sender, SenderSecretKey)
    return Manager(load_config(path, {}), sender)


def test_a_definition_survives_the_manager_and_a_paused_job_stays_paused(
    tmp_path: Path, keys: Keys
) -> None:
    source = make_source(tmp_path / "src", mib=1)
    (tmp_path / "store").mkdir()

    async def first() -> None:
        m = _manager(tmp_path, keys)
        await m.start()
        status = await m.start_job("forms", str(source), None, [], None)
        assert status["phase"] == "queued"
        assert m.pause("forms")["phase"] == "paused"
        with pytest.raises(ConfigError, match="already running"):
            await m.start_job("forms", str(source), None, [], None)
        await m.stop()

    async def second() -> None:
        m = _manager(tmp_path, keys)
        await m.start()
        job = m.get("forms")
        assert job.phase == "paused"
        assert not job.running
        with pytest.raises(ConfigError, match=r"copies .*/src, not /elsewhere"):
            await m.start_job("forms", "/elsewhere", None, [], None)
        assert (await m.cancel("forms", purge=False))["phase"] == "cancelled"
        with pytest.raises(ConfigError, match="was cancelled"):
            m.resume("forms")
        m.set_limit("forms", 1 << 20)
        await m.stop()

    async def third() -> None:
        m = _manager(tmp_path, keys)
        await m.start()
        assert m.get("forms").phase == "cancelled"
        assert m.get("forms").bucket.rate == 1 << 20
        await m.start_job("forms", None, None, [], 0)  # an ended job runs again
        job = m.get("forms")
        assert job.task is not None
        await asyncio.wait_for(asyncio.shield(job.task), 30)
        assert job.phase == "done"
        assert job.definition.sequence == 1
        with pytest.raises(JobNotFoundError):
            m.get("nosuch")
        await m.stop()

    asyncio.run(first())
    saved = json.loads((tmp_path / "state/daemon/jobs/forms.json").read_text())
    assert saved["desired"] == "pause"
    # no secret key's text in the definition (it used to look for the letters "key", which
    # 6% of random hybrid public keys hold by chance)
    assert "td-secret" not in json.dumps(saved).lower()
    asyncio.run(second())
    asyncio.run(third())


def test_start_refuses_what_cannot_run(tmp_path: Path, keys: Keys) -> None:
    async def main() -> None:
        m = _manager(tmp_path, keys)
        with pytest.raises(ConfigError, match="job name 'Bad Name' is not valid"):
            await m.start_job("Bad Name", str(tmp_path), None, [], None)
        with pytest.raises(ConfigError, match="give its source"):
            await m.start_job("new", None, None, [], None)
        with pytest.raises(ConfigError, match="holds a password"):
            await m.start_job("pg", "postgresql://u:pw@db/x", None, [], None)

    asyncio.run(main())


CLASSIC = RecipientIdentity(bytes(range(32))).public().to_text()
"""An X25519 recipient (keygen's owner key, keys.owner, is hybrid)."""


def test_require_pq_refuses_a_job_with_a_classic_recipient_before_it_starts(
    tmp_path: Path, keys: Keys
) -> None:
    """[send] require_pq = true: the daemon's form of ``send --require-pq``."""
    source = make_source(tmp_path / "src", mib=1)
    (tmp_path / "store").mkdir()
    path = tmp_path / "t.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[send]\nstore = "{tmp_path / "store"}"\nrequire_pq = true\n'
    )
    sender = parse_key_file(keys.sender_key.read_text())
    assert isinstance(sender, SenderSecretKey)
    config = load_config(path, {})
    assert config.send.require_pq

    async def run() -> None:
        m = Manager(config, sender)
        await m.start()
        with pytest.raises(ConfigError, match="refused by require_pq in \\[send\\]") as caught:
            await m.start_job("forms", str(source), None, [keys.owner, CLASSIC], None)
        assert "rekey" in (caught.value.hint or "")
        assert m.jobs == {}
        await m.stop()

    asyncio.run(run())
