"""The copy plan: a TOML file naming a copy, its store, its jobs and which agent runs which.

Every agent of a copy reads the same plan (paths in it are relative to the file, or
``${CREDENTIALS_DIRECTORY}/NAME`` for a systemd credential: systemd/transferd-agent@.service)::

    [copy]
    name = "snds-2026"
    store = "s3://snds-copy/v1"            # or a directory, or https://host:8443
    sender_key = "keys/sender.key"          # shared by every agent of the copy
    copy_secret = "keys/copy.secret"        # TD-SECRET-COPY-1…: every job key derives from it
    recipients = ["tdr1…"]                  # who can decrypt (new jobs)
    lease_seconds = 300                     # an agent silent this long loses its jobs
    settle_seconds = 2.0                    # wait before trusting a claim (stores/s3.py race)

    [pipeline]                              # optional: as `transferd send`
    workers = 8
    uploads = 4
    level = 1
    pack_size = 16777216

    [s3]                                    # optional: the store's settings (stores/s3config.py)
    endpoint = "https://s3.gra.io.cloud.ovh.net"
    credentials_file = "keys/s3.credentials"

    [azure]                                 # optional: for az:// sources (sources/azure/table.py)
    auth = "client-secret"                  # Entra ID; or key (credential_file), managed-identity…
    tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    client_id = "2b1fd3c5-0f4e-4b2c-9a1e-7c3d9e8f1a01"
    client_secret_file = "${CREDENTIALS_DIRECTORY}/azure-sp-secret"

    [[job]]
    name = "dcir-2019"
    source = "az://hdhsnds/dcir/2019"

    [agents]                                # each job assigned to exactly one agent
    agent-1 = ["dcir-2019", "dcir-2020"]
    agent-2 = ["pmsi-2019"]

The assignment says who starts a job; leases (copies/leases.py) say who runs it now, so a job
whose agent died is finished by another without editing the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transferd.core.manifest import check_job_name
from transferd.errors import ConfigError, FormatError
from transferd.sources.azure.table import check_table as check_azure_table
from transferd.util.tomlfile import config_path, read_toml

DEFAULT_LEASE_SECONDS = 300.0
"""Five minutes: long against a store's slowest answers and a pause of a busy host, short
against a copy that runs for days (a dead agent's jobs wait at most this long)."""
MIN_LEASE_SECONDS = 1.0
DEFAULT_SETTLE_SECONDS = 2.0
_TOP = frozenset({"copy", "pipeline", "s3", "azure", "job", "agents"})
_COPY = frozenset(
    {"name", "store", "sender_key", "copy_secret", "recipients", "lease_seconds", "settle_seconds"}
)
_PIPELINE = frozenset({"workers", "uploads", "level", "pack_size"})


@dataclass(frozen=True)
class PlannedJob:
    name: str
    source: str


@dataclass(frozen=True)
class CopyPlan:
    path: Path
    name: str
    store: str
    sender_key: Path
    copy_secret: Path
    recipients: tuple[str, ...]
    jobs: tuple[PlannedJob, ...]
    agents: dict[str, tuple[str, ...]]
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    pipeline: dict[str, int] = field(default_factory=dict)
    azure: dict[str, Any] = field(default_factory=dict)

    def job(self, name: str) -> PlannedJob:
        return next(j for j in self.jobs if j.name == name)

    def owner(self, job: str) -> str:
        return next(a for a, jobs in self.agents.items() if job in jobs)


def load_plan(path: Path) -> CopyPlan:
    """Read and check a plan; ConfigError naming the file and what is wrong."""
    doc = read_toml(path, "plan")
    where = f"plan {path}"
    _known(doc, _TOP, where)
    copy = _table(doc, "copy", where)
    _known(copy, _COPY, f"[copy] of {where}")
    base = path.parent

    def text(table: dict[str, Any], key: str, what: str) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f'{what} needs {key} = "…" in {where}')
        return value

    name = _name(text(copy, "name", "[copy]"), "copy", where)
    store = text(copy, "store", "[copy]")
    if "://" not in store and not Path(store).is_absolute():
        store = str(base / store)
    recipients = copy.get("recipients", [])
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise ConfigError(f"recipients in [copy] of {where} must be a list of tdr1… keys")
    jobs_doc = doc.get("job", [])
    if not isinstance(jobs_doc, list) or not jobs_doc:
        raise ConfigError(f"{where} has no [[job]]", hint="add [[job]] tables: name and source")
    jobs: list[PlannedJob] = []
    for entry in jobs_doc:
        if not isinstance(entry, dict):
            raise ConfigError(f"[[job]] entries of {where} must be tables")
        _known(entry, frozenset({"name", "source"}), f"a [[job]] of {where}")
        job = PlannedJob(_name(text(entry, "name", "[[job]]"), "job", where),
                         text(entry, "source", "[[job]]"))  # fmt: skip
        if any(j.name == job.name for j in jobs):
            raise ConfigError(f"job {job.name} appears twice in {where}")
        jobs.append(job)
    agents = _agents(_table(doc, "agents", where), {j.name for j in jobs}, where)
    lease = _seconds(copy, "lease_seconds", DEFAULT_LEASE_SECONDS, where)
    if lease < MIN_LEASE_SECONDS:
        raise ConfigError(f"lease_seconds in {where} must be at least {MIN_LEASE_SECONDS}")
    pipeline = doc.get("pipeline", {})
    if not isinstance(pipeline, dict):
        raise ConfigError(f"[pipeline] of {where} must be a table")
    _known(pipeline, _PIPELINE, f"[pipeline] of {where}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pipeline.values()):
        raise ConfigError(f"[pipeline] settings of {where} must be positive integers")
    azure = doc.get("azure", {})
    if not isinstance(azure, dict):
        raise ConfigError(f"[azure] of {where} must be a table")
    azure = check_azure_table(azure, base, where)
    return CopyPlan(
        path=path,
        name=name,
        store=store,
        sender_key=config_path(base, text(copy, "sender_key", "[copy]")),
        copy_secret=config_path(base, text(copy, "copy_secret", "[copy]")),
        recipients=tuple(recipients),
        jobs=tuple(jobs),
        agents=agents,
        lease_seconds=lease,
        settle_seconds=_seconds(copy, "settle_seconds", DEFAULT_SETTLE_SECONDS, where),
        pipeline=dict(pipeline),
        azure=azure,
    )


def _known(table: dict[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r} in {where}", hint=f"known: {', '.join(sorted(known))}"
        )


def _table(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    table = doc.get(key)
    if not isinstance(table, dict):
        raise ConfigError(f"{where} needs a [{key}] table")
    return table


def _name(value: str, what: str, where: str) -> str:
    try:
        return check_job_name(value)
    except FormatError as e:
        raise ConfigError(
            f"{what} name in {where}: {e.message.replace('job name', 'name')}"
        ) from None


def _seconds(table: dict[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{key} in {where} must be a number of seconds")
    return float(value)


def _agents(table: dict[str, Any], jobs: set[str], where: str) -> dict[str, tuple[str, ...]]:
    agents: dict[str, tuple[str, ...]] = {}
    assigned: dict[str, str] = {}
    for agent, names in table.items():
        _name(agent, "agent", where)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"agent {agent} in {where} must list job names")
        for job in names:
            if job not in jobs:
                raise ConfigError(f"agent {agent} in {where} is given job {job}, not in [[job]]")
            if job in assigned:
                raise ConfigError(f"job {job} in {where} is given to {assigned[job]} and {agent}")
            assigned[job] = agent
        agents[agent] = tuple(names)
    missing = sorted(jobs - set(assigned))
    if missing:
        raise ConfigError(f"job {missing[0]} in {where} is given to no agent")
    return agents
