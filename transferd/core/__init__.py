"""The transferd format v1, free of I/O.

Nothing here opens a file or a socket, reads the clock or draws randomness: keys, nonces and
timestamps are passed in, so every construction is deterministic and covered by test vectors in
both directions. The sending, storing, verifying and restoring code composes these functions.

Modules: ``constants`` (every size the spec names), ``bech32`` and ``keys`` (key text forms),
``jobkey`` (job key, subkeys, recipient stanzas), ``chunking`` (FastCDC cut points, chunk ids),
``envelope`` (seal and open one chunk), ``zstdframe`` (the one zstd frame of a compressed body),
``packs`` (chunks grouped into stored objects), ``objectlist`` (the public list of packs),
``catalog`` (the encrypted list of what was copied, its segments and records),
``catalog_stream`` (a whole catalog checked: members, order, streams, totals), ``manifest`` (the
signed root of a job version).
"""
