"""Recurrence of an iCalendar event: RRULE + RDATE - EXDATE, expanded with dateutil, bounded.

RFC 5545 lets the parts of one event disagree in kind: an all-day DTSTART
comes with a DATE ``UNTIL``, a zoned DTSTART with a UTC ``UNTIL`` (or, from
sloppy exporters, a floating one), RDATEs as periods in another zone.
dateutil wants them all naive or all aware, so each value is brought to the
kind of DTSTART first (an all-day event is expanded on naive midnights and
listed as dates).

The work is bounded, since one short hostile RRULE (``FREQ=HOURLY;BYMONTH=2;
BYMONTHDAY=30`` never matches) would otherwise walk to the year 9999:
expansion stops after ``MAX_PERIODS`` periods of the rule's FREQ (the time
window), ``MAX_OCCURRENCES`` occurrences (the count) or ``MAX_STEPS`` lines
of dateutil (the work: ``_take``), and says which cap it hit.

    got = expand(date(2024, 1, 1), ev.get("RRULE"), rdates, exdates)
    got.occurrences   # [date(2024, 1, 1), ...]
    got.capped        # None, or why the list stops before the rule ends
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from types import FrameType
from typing import Any

try:
    import dateutil.rrule
    import icalendar
    from dateutil.rrule import rrulestr
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError('The calendar sources need: pip install "creative-hub[sources]"') from e

__all__ = ["MAX_OCCURRENCES", "MAX_PERIODS", "MAX_STEPS", "Expansion", "expand"]

_RRULE_ITER = dateutil.rrule.rrule._iter.__code__  # the generator whose lines count against MAX_STEPS

MAX_OCCURRENCES = 100  # occurrences listed per event
MAX_PERIODS = 2000  # periods of the rule's FREQ examined (the time window)
MAX_STEPS = 300_000  # lines of dateutil's rrule module run per event (the work bound)
_PERIOD = {
    "YEARLY": timedelta(days=366),
    "MONTHLY": timedelta(days=31),
    "WEEKLY": timedelta(weeks=1),
    "DAILY": timedelta(days=1),
    "HOURLY": timedelta(hours=1),
    "MINUTELY": timedelta(minutes=1),
    "SECONDLY": timedelta(seconds=1),
}


@dataclass(frozen=True, slots=True)
class Expansion:
    """The listed occurrences (dates for an all-day event) and, if the list was cut, why."""

    occurrences: list[date] | list[datetime]
    capped: str | None = None


def _first(value: Any) -> Any:
    """A period ``(start, end | duration)`` -> its start; anything else unchanged."""
    return value[0] if isinstance(value, tuple) else value


def _like(value: Any, base: datetime, *, end_of_day: bool = False) -> datetime:
    """``value`` (date, naive or aware datetime) as the same kind of datetime as ``base``."""
    value = _first(value)
    if not isinstance(value, datetime):
        if not isinstance(value, date):
            raise ValueError(f"not a date or time: {value!r}")
        at = time(23, 59, 59) if end_of_day else base.time().replace(tzinfo=None)
        return datetime.combine(value, at, tzinfo=base.tzinfo)
    if base.tzinfo is None:
        return value.replace(tzinfo=None)  # floating / all-day: keep the wall time
    if value.tzinfo is None:
        return value.replace(tzinfo=base.tzinfo)
    return value


def _values(props: Any) -> Iterator[Any]:
    """Every value of RDATE / EXDATE properties (one property or a list of them)."""
    for prop in props if isinstance(props, list) else [props] if props is not None else []:
        for v in getattr(prop, "dts", []):
            yield v.dt


def _horizon(base: datetime, freq: str, interval: int) -> datetime:
    try:
        return base + _PERIOD[freq] * interval * MAX_PERIODS
    except OverflowError:
        return datetime(9999, 12, 31, tzinfo=base.tzinfo)


def expand(
    start: date | datetime,
    rrule: Any,
    rdates: Any = None,
    exdates: Any = None,
    *,
    max_occurrences: int = MAX_OCCURRENCES,
) -> Expansion:
    """The occurrences of an event starting at ``start`` (a ``date`` when all-day).

    ``rrule`` is icalendar's ``vRecur`` (or None); ``rdates`` / ``exdates`` the
    RDATE / EXDATE properties as icalendar gives them.  Raises ValueError for a
    rule dateutil cannot read."""
    all_day = not isinstance(start, datetime)
    base = datetime.combine(start, time()) if all_day else start
    assert isinstance(base, datetime)
    capped: str | None = None
    found: set[datetime] = set()
    more = False
    if rrule is not None:
        found, more, capped = _rule(base, rrule, max_occurrences + sum(1 for _ in _values(exdates)))
    found.add(base)  # DTSTART is always the first instance (RFC 5545 3.8.5.3)
    found |= {_like(v, base) for v in _values(rdates)}
    found -= {_like(v, base) for v in _values(exdates)}
    ordered = sorted(found)
    if more or len(ordered) > max_occurrences:
        ordered = ordered[:max_occurrences]
        capped = f"listed the first {max_occurrences} occurrences"
    if all_day:
        return Expansion([d.date() for d in ordered], capped)
    return Expansion(ordered, capped)


def _rule(base: datetime, rrule: Any, want: int) -> tuple[set[datetime], bool, str | None]:
    """Up to ``want`` occurrences within the window; whether the rule has more; the window cap if hit."""
    freq = str((rrule.get("FREQ") or [""])[0]).upper()
    if freq not in _PERIOD:
        raise ValueError(f"RRULE: FREQ {freq or '(none)'!r} is not one of {', '.join(_PERIOD)}")
    interval = int((rrule.get("INTERVAL") or [1])[0])
    if interval < 1:
        raise ValueError(f"RRULE: INTERVAL must be 1 or more, got {interval}")
    counts = rrule.get("COUNT")
    count = int(counts[0]) if counts else None
    untils = rrule.get("UNTIL")
    until = _like(untils[0], base, end_of_day=True) if untils else None
    # UNTIL and COUNT are applied here, in DTSTART's kind; dateutil gets the window as UNTIL.
    rest = icalendar.vRecur({k: v for k, v in rrule.items() if k not in ("UNTIL", "COUNT")})
    horizon = _horizon(base, freq, interval)
    bound = min(until, horizon) if until is not None else horizon
    text = rest.to_ical().decode()  # type: ignore[no-untyped-call]
    rule = rrulestr(text, dtstart=base).replace(until=bound)
    take = want if count is None else min(count, want)
    got, out_of_steps = _take(rule, take)
    more = len(got) == want and (count is None or count > want)
    if out_of_steps:
        return set(got), False, (
            f"expansion stopped after {MAX_STEPS} steps with {len(got)} occurrences "
            "(a rule that matches rarely or never)"
        )
    # Fewer than asked although the rule goes on: the window ended first.
    window = len(got) < take and (count is not None or until is None or until > horizon)
    capped = (
        f"expanded only up to {bound.isoformat()} "
        f"({MAX_PERIODS} periods of FREQ={freq}{f';INTERVAL={interval}' if interval > 1 else ''})"
        if window
        else None
    )
    return set(got), more, capped


class _OutOfSteps(Exception):
    pass


def _take(rule: Iterable[datetime], n: int) -> tuple[list[datetime], bool]:
    """Up to ``n`` occurrences, and whether the step budget ran out first.

    dateutil has no budget of its own, and between two occurrences its inner
    loops (a SECONDLY rule skipping minutes, BYSETPOS over a year of times)
    can run for seconds without yielding (fuzzing found 15 s for one rule
    inside the period window).  So the lines run in dateutil's rrule module
    are counted (those of this rule's generator, where those loops are), with a
    trace function on that frame only, and the expansion
    stops at MAX_STEPS: a bound in work, not in wall-clock time, so the same
    rule always gives the same list.  The caller's own tracer (a debugger,
    coverage) is put back afterwards."""
    got: list[datetime] = []
    steps = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal steps
        if event == "line":
            steps += 1
            if steps > MAX_STEPS:
                raise _OutOfSteps
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        # Only this rule's own generator: a VTIMEZONE's zone (dateutil's tzical) runs rrules
        # of its own on every comparison, and those are not this rule's work.
        if frame.f_code is _RRULE_ITER and frame.f_locals.get("self") is rule:
            return local
        return None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        for when in rule:
            got.append(when)
            if len(got) >= n:
                break
    except _OutOfSteps:
        return got, True
    finally:
        sys.settrace(previous)
    return got, False
