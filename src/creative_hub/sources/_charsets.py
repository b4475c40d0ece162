"""Charset labels as mailers really use them: the WHATWG Encoding Standard's reading.

A message says ``gb2312`` and is written in GBK, says ``ks_c_5601-1987`` and
is CP949, says ``shift_jis`` or ``iso-2022-jp`` and carries Windows' NEC
characters (①), says ``iso-8859-1`` and has Windows-1252's curly quotes.
Python's codecs read each label strictly and refuse such bytes; browsers
and mail clients read the label as the superset its writers meant
(https://encoding.spec.whatwg.org/#names-and-labels).  ``decode`` does the
same: the superset first, then the codec as labelled; bytes neither can
read still raise ``UnicodeDecodeError``, and an unknown label ``LookupError``.

    decode(b"\\xd6\\xec\\xe9F\\xbb\\xf9", "gb2312")   # "朱镕基"
"""

from __future__ import annotations

import codecs
import re

__all__ = ["decode"]

# Python codec name (as codecs.lookup names it) -> the superset the WHATWG standard decodes.
_SUPERSET = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
}

_ESCAPE = re.compile(rb"\x1b(\$[@B]|\([BJI])")  # ISO-2022-JP's shifts: JIS X 0208, ASCII/Roman, katakana


def decode(data: bytes, label: str) -> str:
    """``data`` as text in the charset ``label`` names, read as mailers write it."""
    name = codecs.lookup(label).name
    superset = _SUPERSET.get(name)
    if superset is not None:
        try:
            return data.decode(superset)
        except UnicodeDecodeError:
            pass
    try:
        return data.decode(name)
    except UnicodeDecodeError:
        if name != "iso2022_jp":
            raise
    return _iso_2022_jp_windows(data)


def _iso_2022_jp_windows(data: bytes) -> str:
    """ISO-2022-JP as Windows writes it (CP50220): its JIS X 0208 runs may hold NEC and
    IBM extensions, so each run is moved to Shift_JIS and read as CP932."""
    out: list[str] = []
    mode = b"(B"
    pos = 0
    for m in [*_ESCAPE.finditer(data), None]:
        end = m.start() if m is not None else len(data)
        out.append(_run(data[pos:end], mode))
        if m is None:
            break
        mode, pos = m.group(1), m.end()
    return "".join(out)


def _run(chunk: bytes, mode: bytes) -> str:
    if mode in (b"(B", b"(J"):
        return chunk.decode("ascii")
    bad = next((i for i, b in enumerate(chunk) if not 0x21 <= b <= 0x7E), None)
    if bad is not None:
        raise UnicodeDecodeError("iso2022_jp", chunk, bad, bad + 1, "not a JIS X 0208 / 0201 byte")
    if mode == b"(I":  # half-width katakana: 0x21-0x5f -> Shift_JIS 0xa1-0xdf
        return bytes(b + 0x80 for b in chunk).decode("cp932")
    if len(chunk) % 2:
        raise UnicodeDecodeError("iso2022_jp", chunk, len(chunk) - 1, len(chunk), "a half JIS character")
    sjis = bytearray()
    for j1, j2 in zip(chunk[::2], chunk[1::2], strict=True):
        s1 = (j1 + 1) // 2 + (0x70 if j1 <= 0x5E else 0xB0)
        s2 = j2 + (0x1F if j1 % 2 else 0x7E)
        sjis += bytes((s1, s2 + 1 if j1 % 2 and s2 >= 0x7F else s2))
    return bytes(sjis).decode("cp932")
