"""Write every transferd v1 test vector file from fixed inputs.

    .venv/bin/python protocol/vectors/gen/generate.py [OUTPUT_DIR]

OUTPUT_DIR defaults to protocol/vectors. The output is deterministic: every key, nonce, ephemeral
secret and timestamp is injected (common.det), so a second run writes the same bytes, and
tests/protocol/test_vectors.py checks that it does. The compressed bytes inside some vectors
(zstd level 3) are what the pinned zstandard library produces; they are not normative, and a
reader MUST accept any valid zstd frame.

One module per vector group: gen_keys, gen_wrap, gen_chunks, gen_envelope, gen_pack,
gen_objectlist, gen_catalog, gen_catalog_stream, gen_stream, gen_manifest, gen_copy,
gen_rowset, gen_copy_manifest, gen_changes, gen_lease_epoch; hybrid_seal seals hybrid stanzas
from injected randomness and
rules.py names the rule of SPEC Appendix D each invalid vector breaks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gen_catalog
import gen_catalog_stream
import gen_changes
import gen_chunks
import gen_copy
import gen_copy_manifest
import gen_envelope
import gen_keys
import gen_lease_epoch
import gen_manifest
import gen_objectlist
import gen_pack
import gen_rowset
import gen_stream
import gen_wrap
from common import write_json

FILES = {
    "keys.json": gen_keys.generate,
    "wrap.json": gen_wrap.generate,
    "chunk_ids.json": gen_chunks.generate_chunk_ids,
    "chunking.json": gen_chunks.generate_chunking,
    "envelope.json": gen_envelope.generate,
    "pack.json": gen_pack.generate,
    "object_list.json": gen_objectlist.generate,
    "catalog.json": gen_catalog.generate,
    "catalog_stream.json": gen_catalog_stream.generate,
    "stream.json": gen_stream.generate,
    "manifest.json": gen_manifest.generate,
    "rowset.json": gen_rowset.generate,
    "copy_secret.json": gen_copy_manifest.generate_secret,
    "copy_manifest.json": gen_copy_manifest.generate,
    "changes.json": gen_changes.generate,
    "lease_epoch.json": gen_lease_epoch.generate,
}


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    for name, build in FILES.items():
        write_json(out / name, build())
    gen_copy.generate(out / "copy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
