"""One composition of a send for every caller: the options' checks and the store's layers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from transferd.core.constants import PACK_TARGET, PACK_TARGET_MAX
from transferd.errors import ConfigError
from transferd.send.compose import SendOptions, compose_send
from transferd.sources.directory import DirectorySource
from transferd.stores.memory import MemoryStore
from transferd.stores.ratelimit import TokenBucket
from transferd.stores.retry import RetryingStore
from transferd.stores.throttle import ThrottledStore


def test_the_defaults_are_those_of_transferd_send() -> None:
    options = SendOptions()
    config = options.pipeline_config()
    assert (config.level, config.uploads, config.pack_target) == (1, 4, PACK_TARGET)
    assert options.retries == 8
    assert options.bandwidth == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pack_size": PACK_TARGET_MAX + 1}, "the pack size is at most 48.0 MiB"),
        ({"pack_size": 0}, "the pack size"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"uploads": 0}, "uploads must be at least 1"),
        ({"retries": 0}, "retries must be at least 1"),
        ({"level": 23}, "the zstd level is 1 to 22"),
        ({"bandwidth": -1}, "cannot be negative"),
    ],
)
def test_an_option_no_send_can_run_with_is_refused(changes: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SendOptions(**changes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        SendOptions().but(**changes)


def test_a_table_gives_options_by_their_names() -> None:
    options = SendOptions.from_table({"workers": 3, "pack_size": 32 << 20}, retries=2)
    assert (options.workers, options.pack_size, options.retries) == (3, 32 << 20, 2)
    assert options.pipeline_config().pack_target == 32 << 20
    with pytest.raises(ConfigError, match="unknown send settings: packsize"):
        SendOptions.from_table({"packsize": 1})


def test_the_store_is_retried_around_its_flow_control(tmp_path: Path) -> None:
    shared = TokenBucket(1 << 20)
    inner = MemoryStore()
    composed = compose_send(
        SendOptions(bandwidth=512 << 10, retries=3),
        source=str(tmp_path),
        to=inner,
        sender=None,
        buckets=[shared],
    )
    assert isinstance(composed.store, RetryingStore)
    assert composed.store.attempts == 3
    assert isinstance(composed.flow, ThrottledStore)
    assert composed.store.inner is composed.flow
    assert composed.flow.inner is inner
    assert composed.flow.buckets[0] is shared
    assert [b.rate for b in composed.flow.buckets] == [1 << 20, 512 << 10]
    assert isinstance(composed.source, DirectorySource)
    assert composed.source.description == str(tmp_path)
    asyncio.run(composed.close())


def test_a_store_location_is_opened_and_checked(tmp_path: Path) -> None:
    composed = compose_send(
        SendOptions(), source=str(tmp_path), to=str(tmp_path / "s"), sender=None
    )
    assert composed.store.description == composed.flow.inner.description
    asyncio.run(composed.close())
    with pytest.raises(ConfigError, match="needs a key to sign requests"):
        compose_send(SendOptions(), source=str(tmp_path), to="https://host:8443", sender=None)
    with pytest.raises(ConfigError, match="unknown store location"):
        compose_send(SendOptions(), source=str(tmp_path), to="ftp://x", sender=None)
