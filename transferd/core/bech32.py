"""Bech32 (BIP 173) with no length limit, as age uses it for key text.

The checksum catches any single mistyped character and any truncation with certainty, and most
longer errors; it is what lets ``transferd`` say "mistyped" rather than "wrong key". Its BCH code
has length 1023: in a longer text (a 1958-character hybrid key) two equal substitutions 1023
characters apart cancel out and pass, so for such keys people compare the fingerprint instead
(SPEC 3.2, keys.fingerprint).
"""

from __future__ import annotations

from transferd.errors import KeyFormatError

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_INDEX = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or (acc << (to_bits - bits)) & maxv:
        raise ValueError("non-zero padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` under the lower-case human-readable part ``hrp`` (result lower case)."""
    words = _convert_bits(data, 8, 5, pad=True)
    values = _hrp_expand(hrp) + words
    polymod = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[w] for w in words + checksum)


def decode(text: str) -> tuple[str, bytes]:
    """Return (hrp, data) of a bech32 string, upper or lower case but not mixed.

    Raises KeyFormatError naming the fault: mixed case, a character outside the alphabet, a
    missing separator, or a checksum that does not match (a mistyped or truncated key).
    """
    if text != text.lower() and text != text.upper():
        raise KeyFormatError(f"key {_shorten(text)} mixes upper and lower case")
    lowered = text.lower()
    sep = lowered.rfind("1")
    if sep < 1 or sep + 7 > len(lowered):
        raise KeyFormatError(f"key {_shorten(text)} is not a transferd key (no bech32 separator)")
    hrp, rest = lowered[:sep], lowered[sep + 1 :]
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise KeyFormatError(f"key {_shorten(text)} has a character outside printable ASCII")
    bad = [c for c in rest if c not in _CHARSET_INDEX]
    if bad:
        raise KeyFormatError(f"key {_shorten(text)} has {bad[0]!r}, which no key contains")
    values = [_CHARSET_INDEX[c] for c in rest]
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise KeyFormatError(
            f"key {_shorten(text)} is mistyped or truncated: its checksum does not match",
            hint="copy the key again from its source; one wrong character is enough to fail",
        )
    try:
        data = bytes(_convert_bits(values[:-6], 5, 8, pad=False))
    except ValueError:
        raise KeyFormatError(f"key {_shorten(text)} has non-canonical padding") from None
    return hrp, data


def _shorten(text: str) -> str:
    """A key prefix for error messages: enough to recognise it, never a whole secret."""
    return text[:12] + "…" if len(text) > 12 else text
