"""copies/plan.py: a plan is read whole or refused with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferd.copies.plan import load_plan
from transferd.errors import ConfigError

GOOD = """
[copy]
name = "snds-2026"
store = "s3://snds-copy/v1"
sender_key = "keys/sender.key"
copy_secret = "keys/copy.secret"
recipients = ["tdr1example"]
lease_seconds = 60

[pipeline]
workers = 4

[azure]
credential_file = "keys/azure.credential"

[[job]]
name = "dcir-2019"
source = "az://hdhsnds/dcir/2019"

[[job]]
name = "pmsi-2019"
source = "exports/pmsi"

[agents]
agent-1 = ["dcir-2019"]
agent-2 = ["pmsi-2019"]
"""


def test_a_plan_reads_with_paths_relative_to_it(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(GOOD)
    plan = load_plan(path)
    assert plan.name == "snds-2026"
    assert plan.store == "s3://snds-copy/v1"
    assert plan.sender_key == tmp_path / "keys/sender.key"
    assert plan.azure["credential_file"] == str(tmp_path / "keys/azure.credential")
    assert [j.name for j in plan.jobs] == ["dcir-2019", "pmsi-2019"]
    assert plan.owner("pmsi-2019") == "agent-2"
    assert plan.lease_seconds == 60.0
    assert plan.pipeline == {"workers": 4}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('agent-2 = ["pmsi-2019"]', 'agent-2 = ["dcir-2019"]'), "is given to agent-1 and agent-2"),
        (('agent-2 = ["pmsi-2019"]', "agent-2 = []"), "job pmsi-2019 .* is given to no agent"),
        (('agent-1 = ["dcir-2019"]', 'agent-1 = ["dcir-2019", "x"]'), "given job x, not in"),
        (('name = "pmsi-2019"', 'name = "dcir-2019"'), "appears twice"),
        (("lease_seconds = 60", "lease_seconds = 0.1"), "at least"),
        (("workers = 4", "threads = 4"), "unknown setting 'threads'"),
        (('name = "snds-2026"', 'name = "SNDS"'), "copy name"),
    ],
)
def test_a_wrong_plan_is_refused_with_the_reason(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(GOOD.replace(*edit))
    with pytest.raises(ConfigError, match=message):
        load_plan(path)


def test_secrets_may_be_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transferd-agent@.service hands the copy's secrets over as credentials (LoadCredential=)."""
    path = tmp_path / "plan.toml"
    path.write_text(
        GOOD.replace('"keys/sender.key"', '"${CREDENTIALS_DIRECTORY}/sender.key"').replace(
            '"keys/azure.credential"', '"${CREDENTIALS_DIRECTORY}/azure.credential"'
        )
    )
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY is not set") as caught:
        load_plan(path)
    assert "LoadCredential=" in (caught.value.hint or "")

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/transferd-agent@x.service")
    plan = load_plan(path)
    assert plan.sender_key == Path("/run/credentials/transferd-agent@x.service/sender.key")
    assert plan.copy_secret == tmp_path / "keys" / "copy.secret"
    assert plan.azure["credential_file"].endswith("x.service/azure.credential")

    path.write_text(GOOD.replace('"keys/sender.key"', '"${CREDENTIALS_DIRECTORY}/../etc/shadow"'))
    with pytest.raises(ConfigError, match="name one credential"):
        load_plan(path)


def test_a_plans_azure_sign_in_takes_its_secret_from_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transferd.copies.setup import plan_azure

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/transferd-agent@snds.service")
    path = tmp_path / "plan.toml"
    path.write_text(GOOD.replace('credential_file = "keys/azure.credential"', (
        'auth = "client-secret"\ntenant_id = "72f988bf"\nclient_id = "2b1fd3c5"\n'
        'client_secret_file = "${CREDENTIALS_DIRECTORY}/azure-sp-secret"\nca_file = "proxy-ca.pem"'
    )))  # fmt: skip
    options = plan_azure(load_plan(path))
    sign_in = options.sign_in
    assert (sign_in.auth, sign_in.tenant_id, sign_in.client_id) == (
        "client-secret", "72f988bf", "2b1fd3c5"
    )  # fmt: skip
    assert sign_in.client_secret_file == Path(
        "/run/credentials/transferd-agent@snds.service/azure-sp-secret"
    )
    assert options.ca_file == tmp_path / "proxy-ca.pem"

    path.write_text(GOOD.replace('credential_file = "keys/azure.credential"', 'secret = "x"'))
    with pytest.raises(ConfigError, match="unknown setting 'secret' in \\[azure\\]"):
        load_plan(path)
    path.write_text(GOOD.replace('credential_file = "keys/azure.credential"', 'auth = "default"\n'
                                 'client_secret_file = "s"'))  # fmt: skip
    with pytest.raises(ConfigError, match="Azure sign-in default takes no client_secret_file"):
        plan_azure(load_plan(path))
