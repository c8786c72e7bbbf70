"""An in-memory store: the reference driver of the contract, for tests of code that uses a store."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Sequence

from transferd.errors import IntegrityError, ManifestExistsError, ObjectNotFoundError
from transferd.stores.base import check_copy_name, check_copy_series, check_job, check_object_name


class MemoryStore:
    def __init__(self) -> None:
        self.description = "memory"
        self.objects: dict[str, dict[str, bytes]] = {}
        self.manifests: dict[str, dict[int, bytes]] = {}
        self.records: dict[tuple[str, str], dict[int, bytes]] = {}

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        check_job(job)
        check_object_name(name)
        if hashlib.sha256(data).hexdigest() != name:
            raise IntegrityError(f"object {name} does not hash to its name")
        self.objects.setdefault(job, {})[name] = bytes(data)

    async def has_objects(self, job: str, names: Sequence[str]) -> set[str]:
        held = self.objects.get(job, {})
        return {n for n in names if n in held}

    async def get_object(
        self, job: str, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        try:
            data = self.objects[job][name]
        except KeyError:
            raise ObjectNotFoundError(
                f"object {name} of job {job} is not in the store", job=job, key=name
            ) from None
        end = len(data) if length is None else offset + length
        return data[offset:end]

    async def list_objects(self, job: str) -> AsyncIterator[tuple[str, int]]:
        for name, data in list(self.objects.get(job, {}).items()):
            yield name, len(data)

    async def delete_object(self, job: str, name: str) -> None:
        self.objects.get(job, {}).pop(name, None)

    async def put_manifest(self, job: str, sequence: int, data: bytes) -> None:
        check_job(job)
        held = self.manifests.setdefault(job, {})
        if sequence in held:
            raise ManifestExistsError(f"manifest {sequence} of job {job} already exists")
        held[sequence] = bytes(data)

    async def get_manifest(self, job: str, sequence: int) -> bytes:
        try:
            return self.manifests[job][sequence]
        except KeyError:
            raise ObjectNotFoundError(
                f"manifest {sequence} of job {job} is not in the store"
            ) from None

    async def list_manifests(self, job: str) -> list[int]:
        return sorted(self.manifests.get(job, {}))

    async def list_jobs(self) -> list[str]:
        return sorted(set(self.objects) | set(self.manifests))

    async def put_copy_record(self, copy: str, series: str, sequence: int, data: bytes) -> None:
        held = self.records.setdefault((check_copy_name(copy), check_copy_series(series)), {})
        if sequence in held:
            raise ManifestExistsError(f"record {sequence} of {series} of copy {copy} exists")
        held[sequence] = bytes(data)

    async def get_copy_record(self, copy: str, series: str, sequence: int) -> bytes:
        try:
            return self.records[(copy, series)][sequence]
        except KeyError:
            raise ObjectNotFoundError(
                f"record {sequence} of {series} of copy {copy} is not in the store"
            ) from None

    async def list_copy_records(self, copy: str, series: str) -> list[int]:
        return sorted(self.records.get((copy, series), {}))

    async def delete_copy_record(self, copy: str, series: str, sequence: int) -> None:
        self.records.get((copy, series), {}).pop(sequence, None)

    async def close(self) -> None:
        pass
