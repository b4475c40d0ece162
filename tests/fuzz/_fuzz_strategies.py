"""Hypothesis strategies shared by the fuzz tests: JSON values, payloads, events.

Payloads are drawn from each registered schema's msgspec type information
(``msgspec.inspect``), so a type registered later is fuzzed too.  Every
strategy here draws *valid* input; the tests break it on purpose.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

from creative_hub.errors import ValidationError
from creative_hub.event import EXTENSIONS, MAX_ID_LENGTH, validate_payload
from creative_hub.schemas import PAYLOADS

# CREATIVE_HUB_FUZZ_SCALE=20 runs twenty times the examples (a deeper, slower hunt than CI's).
SCALE = float(os.environ.get("CREATIVE_HUB_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    """``n`` examples, times the scale."""
    return max(1, round(n * SCALE))


INT64 = (-(2**63), 2**63 - 1)  # msgspec decodes integers in the int64/uint64 range exactly

# Text with anything Unicode has but lone surrogates (which UTF-8 cannot carry).
texts = st.text(max_size=40)
small_ints = st.integers(*INT64)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)

json_scalars = st.none() | st.booleans() | small_ints | finite_floats | texts
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(texts, json_values, max_size=6)

# RFC 3339 offsets are whole minutes; msgspec rounds a seconds offset (LMT zones) to the minute.
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
aware_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC) | offsets
)
edge_times = st.sampled_from(
    [
        datetime(1, 1, 2, tzinfo=UTC),
        datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
        datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=14))),
        datetime(2026, 11, 24, 10, 0, tzinfo=timezone(timedelta(hours=-12))),
    ]
)
times = aware_times | edge_times


def iso(t: datetime) -> str:
    """RFC 3339 text for an aware datetime."""
    return msgspec.json.decode(msgspec.json.encode(t))  # type: ignore[no-any-return]


# -- payloads from the schemas' type information -----------------------------------
def from_type_info(t: mi.Type) -> st.SearchStrategy[Any]:
    """JSON builtins that msgspec converts to ``t``."""
    if isinstance(t, mi.StrType):
        if t.pattern:
            base = st.from_regex(t.pattern, fullmatch=True)
        else:
            base = st.text(min_size=t.min_length or 0, max_size=max(t.min_length or 0, 30))
        lo, hi = t.min_length or 0, t.max_length
        return base.filter(lambda s: len(s) >= lo and (hi is None or len(s) <= hi))
    if isinstance(t, mi.IntType):
        lo = t.ge if t.ge is not None else (t.gt + 1 if t.gt is not None else INT64[0])
        hi = t.le if t.le is not None else (t.lt - 1 if t.lt is not None else INT64[1])
        return st.integers(lo, hi)
    if isinstance(t, mi.FloatType):
        lo_f = t.ge if t.ge is not None else t.gt
        hi_f = t.le if t.le is not None else t.lt
        return st.floats(
            lo_f,
            hi_f,
            exclude_min=t.gt is not None,
            exclude_max=t.lt is not None,
            allow_nan=False,
            allow_infinity=False,
        )
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(list(t.values))
    if isinstance(t, mi.UnionType):
        return st.one_of([from_type_info(x) for x in t.types])
    if isinstance(t, mi.ListType):
        return st.lists(from_type_info(t.item_type), min_size=t.min_length or 0, max_size=3)
    if isinstance(t, mi.DictType):
        return st.dictionaries(texts, from_type_info(t.value_type), max_size=3)
    if isinstance(t, mi.AnyType):
        return json_values
    if isinstance(t, mi.DateTimeType):
        return times.map(iso)
    if isinstance(t, mi.DateType):  # all-day calendar events
        return st.dates().map(lambda d: d.isoformat())
    if isinstance(t, mi.StructType):
        required = {f.encode_name: from_type_info(f.type) for f in t.fields if f.required}
        optional = {f.encode_name: from_type_info(f.type) for f in t.fields if not f.required}
        return st.fixed_dictionaries(required, optional=optional)
    raise NotImplementedError(f"no strategy for {t!r}; add one to tests/fuzz/_fuzz_strategies.py")


def _valid(type_: str, data: dict[str, Any]) -> bool:
    try:
        validate_payload(type_, data)
    except ValidationError:
        return False
    return True


def payloads(type_: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid ``data`` for ``type_`` (cross-field rules such as end >= start filtered)."""
    info = mi.type_info(PAYLOADS[type_])
    return from_type_info(info).filter(lambda d: _valid(type_, d))


# -- events ------------------------------------------------------------------------
_non_empty = st.text(min_size=1, max_size=40)
_ids = st.text(min_size=1, max_size=MAX_ID_LENGTH).filter(lambda s: len(s) <= MAX_ID_LENGTH)
_event_ids = st.text(st.characters(codec="ascii", categories=["L", "N", "Pd"]), min_size=1, max_size=40)

# One strategy per extension the hub knows; a new extension needs one here (the test says so).
EXTENSION_VALUES: dict[str, st.SearchStrategy[str]] = {
    "creator": _non_empty,
    "partitionkey": _non_empty,
    "hub": st.just("shared") | st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True),
    "visibility": st.sampled_from(["public", "private"]),
    "causationid": _non_empty,
    "correlationid": _non_empty,
    "supersedes": _non_empty,
    "forkedfrom": _non_empty,
    "traceparent": st.from_regex(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", fullmatch=True),
    "model": st.from_regex(r"[!-~]{1,40}", fullmatch=True),
    "modelprovider": st.from_regex(r"[a-z0-9._:-]{1,40}", fullmatch=True),
    "confighash": st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    "inputs": st.lists(_event_ids, min_size=1, max_size=4).map(" ".join),
    "signature": _non_empty,
}


@st.composite
def event_objects(draw: st.DrawFn, types: list[str] | None = None) -> dict[str, Any]:
    """A valid structured-mode event object, as a publisher would send it."""
    type_ = draw(st.sampled_from(sorted(types or PAYLOADS)))
    obj: dict[str, Any] = {
        "specversion": "1.0",
        "id": draw(_ids),
        "source": draw(_non_empty),
        "type": type_,
        "data": draw(payloads(type_)),
    }
    if draw(st.booleans()):
        obj["subject"] = draw(_non_empty)
    if draw(st.booleans()):
        obj["time"] = iso(draw(times))
    if draw(st.booleans()):
        obj["datacontenttype"] = draw(
            st.sampled_from(["application/json", "application/cloudevents+json", "text/vnd.x+json"])
        )
    if draw(st.booleans()):
        obj["dataschema"] = draw(_non_empty)
    for name in draw(st.lists(st.sampled_from(EXTENSIONS), unique=True)):
        obj[name] = draw(EXTENSION_VALUES[name])
    if "model" in obj and "modelprovider" not in obj:
        obj["modelprovider"] = draw(EXTENSION_VALUES["modelprovider"])
    return obj
