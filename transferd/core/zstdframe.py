"""One zstd frame as the format stores it: size declared, no dictionary, nothing after it.

A chunk's compressed body (SPEC 7.2) and a catalog segment's records (SPEC 10.1) are each exactly
one Zstandard frame (RFC 8878 3.1.1). Its header must declare the content size, which is bounded
before anything is inflated and becomes the size of the output buffer, so a hostile frame cannot
make a reader allocate more than the bound. A frame that needs a dictionary could not be read from
the format's documents alone, and a skippable frame or bytes after the frame would give one value a
second encoding: all three are refused.
"""

from __future__ import annotations

import zstandard

from transferd.errors import FormatError

Buffer = bytes | bytearray | memoryview

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
"""Magic number of a Zstandard frame (RFC 8878 3.1.1), little-endian 0xFD2FB528."""


def declared_size(body: Buffer, what: str) -> int:
    """The content size ``body``'s frame header declares; refuses anything but one zstd frame
    with that size and no dictionary. Nothing is inflated."""
    if bytes(body[:4]) != ZSTD_MAGIC:
        raise FormatError(f"{what} is not a zstd frame")
    try:
        params = zstandard.get_frame_parameters(body)
    except zstandard.ZstdError:
        raise FormatError(f"{what} is not a zstd frame") from None
    if params.dict_id:
        raise FormatError(f"{what} needs zstd dictionary {params.dict_id}")
    if params.content_size == zstandard.CONTENTSIZE_UNKNOWN:
        raise FormatError(f"{what} does not declare its size")
    size: int = params.content_size
    return size


def inflate(body: Buffer, size: int, what: str) -> bytes:
    """The content of the one frame ``body``, which declares ``size`` (checked by the caller with
    ``declared_size``); refuses a frame that inflates to another size or is followed by bytes."""
    try:
        out = zstandard.ZstdDecompressor().decompress(
            body, max_output_size=size, allow_extra_data=False
        )
    except zstandard.ZstdError as e:
        raise FormatError(f"{what} is not one whole zstd frame: {e}") from None
    if len(out) != size:
        raise FormatError(f"{what} inflates to {len(out)} bytes, not the {size} it declares")
    return out
