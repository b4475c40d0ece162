"""JSON from outside, bounded in depth before it is decoded.

    obj = decode_json(raw, "body")      # ValidationError("body", "nested deeper than 64 levels ...")

msgspec (like every recursive decoder) turns a deeply nested document into a
``RecursionError`` whose depth depends on the stack it happens to run on --
and a document that just squeaks through can still overflow whatever walks
it next (validation, encoding, the index).  So depth is a rule of its own,
checked first, with a fixed limit: ``MAX_DEPTH`` levels of objects and arrays,
as System.Text.Json does by default.  The check is one pass at C speed (a regular
expression takes out strings, ``bytes.translate`` keeps only brackets, and
``itertools.accumulate`` counts the depth), so a body at the size limit made
of nothing but brackets costs a fraction of a second, not a traceback.
"""

from __future__ import annotations

import itertools
import operator
import re
from typing import Any

import msgspec

from .errors import ValidationError

__all__ = ["MAX_DEPTH", "check_depth", "decode_json"]

MAX_DEPTH = 64  #: levels of nested objects and arrays in one JSON document

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x03\x03\x01\x01")  # an opening counts 3, a closing 1: both minus 2 = +-1


def check_depth(raw: bytes | str, field: str, limit: int = MAX_DEPTH) -> None:
    """``ValidationError(field, ...)`` if ``raw`` nests objects and arrays deeper than ``limit``.

    Text that is not JSON may pass: the decoder that follows says what is wrong with it."""
    data = raw.encode() if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return  # cannot be deeper than the number of openings
    steps = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS).translate(_STEPS)
    # The depth after k brackets is (sum of the first k steps) - 2k; every step runs in C.
    depth = max(map(operator.sub, itertools.accumulate(steps), range(2, 2 * len(steps) + 2, 2)), default=0)
    if depth > limit:
        raise ValidationError(field, f"nested deeper than {limit} levels of objects and arrays")


def decode_json(raw: bytes | str, field: str, limit: int = MAX_DEPTH) -> Any:
    """``raw`` decoded, after ``check_depth``; bad JSON is a ``ValidationError`` on ``field``."""
    check_depth(raw, field, limit)
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise ValidationError(field, f"not valid JSON: {e}") from None
    except UnicodeDecodeError as e:  # msgspec raises it for bad UTF-8 inside a string
        raise ValidationError(field, f"not valid UTF-8 at byte {e.start}: {e.reason}") from None
    except RecursionError:  # a stack already deep: the limit above is the rule that counts
        raise ValidationError(field, f"nested deeper than {limit} levels of objects and arrays") from None
