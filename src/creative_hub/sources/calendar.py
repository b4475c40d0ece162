"""Ceremonies: iCalendar files (.ics, with recurrence and attendees) and a small YAML/JSON schema.

Each VEVENT, and each ceremony in a YAML/JSON file, becomes a
``creative.ceremony.session`` event.  Ids come from the iCalendar UID (plus
RECURRENCE-ID for a moved occurrence; an event with no UID, as Microsoft CDO
writes some, from its own lines but DTSTAMP) or the ceremony's ``id``, never
from the file: the same calendar saved elsewhere is the same events.  An
edited event (SEQUENCE up, LAST-MODIFIED moved) is a new revision, not a
conflict.  An event with no SUMMARY is kept as "(no title)" (``extra.untitled``).  They are
written by ``calendar`` / ``ceremony`` (or the person who ran the ingest); an
organizer or host is a claim, kept in ``data.extra``.

    CalendarSource([Path("team.ics")])
    CeremonySource([Path("solstice.yaml")], owner="alice")

The ceremony schema (one mapping, a list, or ``{"ceremonies": [...]}``)::

    id: solstice-2026                 # optional; default: title + start
    title: Winter solstice circle     # required
    start: 2026-12-21T17:00:00+01:00  # required, with a UTC offset
    end: 2026-12-21T18:30:00+01:00    # optional; default: start + the phases' minutes
    place: The old oak
    intention: Let the year go
    host: alice                       # a claim, kept in extra.host (a --map is recorded)
    participants: [alice, bob]
    recurrence: FREQ=YEARLY           # an RRULE
    phases:
      - {name: Arrival, minutes: 15}
      - {name: Silence, minutes: 20, description: Nobody speaks}

An all-day event (``DTSTART;VALUE=DATE``) keeps its days (``all_day``,
``start_date``, ``end_date``), never a midnight in some zone.  Occurrences
(RRULE + RDATE - EXDATE) are listed in ``extra["occurrences"]``, bounded in
count and time window (``_recurrence``); a cut list says so in
``extra["occurrences_capped"]``, and a rule dateutil cannot expand (RFC
7529's ``RSCALE``) keeps its event, with why in
``extra["occurrences_not_expanded"]``.  A moved occurrence keeps its RECURRENCE-ID
and its RANGE (``THISANDFUTURE``).  A ``TZID`` the file does not define
resolves through the IANA database (so do Windows names as Outlook and
Exchange write them, and vendor paths such as
``/mozilla.org/20050126_1/Europe/Berlin``); one that names no zone is an
ItemError for that event; the rest of the calendar goes in.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from ..origins import source_id
from ..schemas import Phase, Session
from ._files import FileSource
from ._recurrence import expand
from .base import Item, ItemError, Principals, checked, make_event, with_mapped

try:
    import icalendar
    import yaml
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError('The calendar sources need: pip install "creative-hub[sources]"') from e
try:  # Windows zone name -> IANA, as icalendar resolves them (CLDR's windowsZones)
    from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON as _WINDOWS_ZONES
except ImportError:  # pragma: no cover - an icalendar without the table
    _WINDOWS_ZONES = {}
# icalendar warns when it strips a vendor prefix from a TZID; the zone is checked here.
_GUESSED_TZID: type[Warning] = getattr(icalendar, "GloballyUniqueTZIDGuessed", UserWarning)

__all__ = ["CalendarSource", "CeremonySource", "parse_calendar", "parse_ceremonies"]

CALENDAR = "calendar"  # the source principal that writes (and signs) iCalendar events, and their `source`
CEREMONY = "ceremony"  # ... and ceremonies of YAML/JSON files
UNTITLED = "(no title)"  # the title of a VEVENT with no SUMMARY (data.extra.untitled says so)


def _aware(value: Any, prop: Any, what: str, defined: set[str]) -> datetime:
    """A timezone-aware datetime from a DTSTART/DTEND value, or ValueError saying why not."""
    tzid = prop.params.get("TZID") if prop is not None else None
    if tzid and tzid not in defined and not _named_zone(tzid):
        # icalendar caches zones across calendars: check this calendar defines it.
        raise ValueError(f"{what}: time zone {tzid!r} is not defined in the calendar (no VTIMEZONE)")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            tzid = prop.params.get("TZID") if prop is not None else None
            if tzid:
                raise ValueError(f"{what}: time zone {tzid!r} is not defined in the calendar (no VTIMEZONE)")
            return value.replace(tzinfo=UTC)  # a "floating" time: read as UTC, flagged in extra
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ValueError(f"{what}: not a date or time ({value!r})")


def _day(value: Any, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()  # DTEND with a time on an all-day event: its day
    if isinstance(value, date):
        return value
    raise ValueError(f"{what}: not a date ({value!r})")


def _listed(props: Any) -> list[Any]:
    """The values of RDATE / EXDATE (one property or a list of them)."""
    props = props if isinstance(props, list) else [props] if props is not None else []
    return [v.dt for prop in props for v in getattr(prop, "dts", [])]


def _stamp(value: Any) -> str:
    """A date, time, or period (``start/end``, ISO 8601) as text."""
    if isinstance(value, tuple):
        first, second = value
        last = first + second if isinstance(second, timedelta) else second
        return f"{first.isoformat()}/{last.isoformat()}"
    return str(value.isoformat())


def _iana(name: str) -> bool:
    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


def _named_zone(tzid: str) -> bool:
    """A TZID that names its zone without a VTIMEZONE: IANA (``Europe/Berlin``), a Windows
    name as Outlook and Exchange write it (``W. Europe Standard Time``, CLDR's mapping), or
    a vendor path ending in an IANA name (``/mozilla.org/20050126_1/Europe/Berlin``)."""
    if _iana(tzid) or tzid in _WINDOWS_ZONES:
        return True
    parts = tzid.strip("/").split("/")
    return tzid.startswith("/") and any(_iana("/".join(parts[-n:])) for n in (3, 2) if len(parts) >= n)


def _address(value: Any) -> str:
    return str(value).removeprefix("mailto:").removeprefix("MAILTO:")


def parse_calendar(raw: bytes, where: str, principals: Principals | None = None) -> Iterator[Item]:
    """Session events of one iCalendar document, one per VEVENT."""
    principals = principals or Principals()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", _GUESSED_TZID)
            cal = icalendar.Calendar.from_ical(raw)
    except ValueError as e:
        yield ItemError(where, f"not an iCalendar file: {e}")
        return
    except Exception as e:  # icalendar's own failure on hostile input (a repeated TZID)
        yield ItemError(where, f"not an iCalendar file icalendar can read: {type(e).__name__}: {e}")
        return
    defined = {str(tz.get("TZID")) for tz in cal.walk("VTIMEZONE")}
    for n, ev in enumerate(cal.walk("VEVENT"), 1):
        ref = f"{where}#{n}"
        try:
            yield _vevent(ev, ref, where, principals, defined)
        except (ValueError, TypeError) as e:
            yield ItemError(f"{ref} {ev.get('SUMMARY', '')}".strip(), str(e))
        except (AttributeError, KeyError, IndexError) as e:  # a repeated property comes as a list
            yield ItemError(ref, f"malformed VEVENT (a property repeated or of the wrong kind: {e})")


def _content_key(ev: Any) -> str:
    """What names a VEVENT that has no UID: its own lines, all but DTSTAMP (every export
    stamps it anew), so the same event exported twice is one, and an edited one is another."""
    lines = sorted(str(line) for line in ev.content_lines() if not str(line).upper().startswith("DTSTAMP"))
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]  # 128 bits


def _sequence(value: Any) -> int:
    """SEQUENCE as a number (0 when absent or not one)."""
    try:
        return max(0, int(value)) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def _lenient_rule(rrule: Any) -> Any:
    """An RRULE icalendar could not read, read again without whitespace (Microsoft CDO
    writes ``BYDAY=MO, TU, WE``); else as it was (expansion then says why not)."""
    if rrule is None or isinstance(rrule, icalendar.vRecur) or not isinstance(rrule, str):
        return rrule
    try:
        return icalendar.vRecur.from_ical("".join(rrule.split()))
    except ValueError:
        return rrule


def _vevent(ev: Any, ref: str, where: str, principals: Principals, defined: set[str]) -> Item:
    uid = str(ev.get("UID") or "")
    # RFC 5545 requires a UID, yet real exports lack it (Microsoft CDO invites); SUMMARY
    # is optional (a blocked slot).  Neither loses the event.
    ident = uid or _content_key(ev)
    title = str(ev.get("SUMMARY") or "").strip()
    start_prop = ev.get("DTSTART")
    if start_prop is None:
        return ItemError(ref, f"VEVENT {uid} has no DTSTART" if uid else "VEVENT has no DTSTART")
    all_day = not isinstance(start_prop.dt, datetime)
    start: datetime | None = None
    end: datetime | None = None
    start_date: date | None = None
    end_date: date | None = None
    if all_day:  # VALUE=DATE: a day in the calendar's own sense, not an instant
        start_date = _day(start_prop.dt, "DTSTART")
        if ev.get("DTEND") is not None:
            end_date = _day(ev["DTEND"].dt, "DTEND")
        elif ev.get("DURATION") is not None:
            end_date = start_date + timedelta(days=ev["DURATION"].dt.days)
    else:
        start = _aware(start_prop.dt, start_prop, "DTSTART", defined)
        if ev.get("DTEND") is not None:
            end = _aware(ev["DTEND"].dt, ev["DTEND"], "DTEND", defined)
        elif ev.get("DURATION") is not None:
            end = start + ev["DURATION"].dt
    attendees = ev.get("ATTENDEE") or []
    if not isinstance(attendees, list):
        attendees = [attendees]
    people = []
    for a in attendees:
        params = getattr(a, "params", {})
        person = {"email": _address(a)}
        for key, name in (("CN", "name"), ("ROLE", "role"), ("PARTSTAT", "status")):
            if params.get(key):
                person[name] = str(params[key])
        people.append(person)
    organizer = ev.get("ORGANIZER")
    org_email = _address(organizer) if organizer is not None else None
    org_name = (
        str(organizer.params.get("CN")) if organizer is not None and organizer.params.get("CN") else None
    )
    rrule = _lenient_rule(ev.get("RRULE"))
    recurrence = rrule.to_ical().decode() if rrule is not None else None
    extra: dict[str, Any] = {"uid": uid} if uid else {"no_uid": True}
    sequence = _sequence(ev.get("SEQUENCE"))
    if sequence:
        extra["sequence"] = sequence
    extra["attendees"] = people
    if not title:
        title, extra["untitled"] = UNTITLED, True
    if org_email:
        extra["organizer"] = {"email": org_email, **({"name": org_name} if org_name else {})}
    if isinstance(start_prop.dt, datetime) and start_prop.dt.tzinfo is None:
        extra["floating"] = True
    if recurrence or ev.get("RDATE") is not None:
        first: date | None = start_date if all_day else start
        assert first is not None
        try:
            got = expand(first, rrule, ev.get("RDATE"), ev.get("EXDATE"))
        # RFC 7529's RSCALE/SKIP, or a rule dateutil cannot read or stumbles on (IndexError on
        # some BYSETPOS combinations): the event keeps its rule, unexpanded.
        except (ValueError, TypeError, IndexError, KeyError) as e:
            extra["occurrences"] = [first.isoformat()]  # DTSTART is always one
            extra["occurrences_not_expanded"] = f"the rule was kept but not expanded: {e}"
        else:
            extra["occurrences"] = [d.isoformat() for d in got.occurrences]
            if got.capped:
                extra["occurrences_capped"] = got.capped
    for name, key in (("RDATE", "rdates"), ("EXDATE", "exdates")):
        values = [_stamp(v) for v in _listed(ev.get(name))]
        if values:
            extra[key] = values
    rid = ev.get("RECURRENCE-ID")
    if rid is not None:
        extra["recurrence_id"] = rid.dt.isoformat()
        if rid.params.get("RANGE"):  # THISANDFUTURE: this and every later occurrence changed
            extra["recurrence_range"] = str(rid.params["RANGE"]).upper()
    with_mapped(extra, principals, org_email, org_name)
    data = Session(
        title=title,
        start=start,
        end=end,
        all_day=all_day,
        start_date=start_date,
        end_date=end_date,
        intention=str(ev["DESCRIPTION"]).strip() if ev.get("DESCRIPTION") else None,
        place=str(ev["LOCATION"]).strip() if ev.get("LOCATION") else None,
        participants=[principals.principal(p["email"], p.get("name")) for p in people],
        recurrence=recurrence,
        extra=extra,
    )
    # An edit is a new revision of the event (RFC 5545: SEQUENCE goes up, LAST-MODIFIED
    # moves), not a conflict with the stored one; a re-export that changed nothing keeps both.
    revision = [f"seq={sequence}"] if sequence else []
    modified = ev.get("LAST-MODIFIED")
    if modified is not None and hasattr(modified, "dt"):
        revision.append(f"modified={modified.dt.isoformat()}")
    return make_event(
        "creative.ceremony.session",
        id=source_id("ical", ident, rid.dt.isoformat() if rid is not None else "", *revision),
        source=CALENDAR,
        subject=f"ical:{ident}",
        data=data,
        creator=CALENDAR,  # the organizer is a claim of the calendar: data.extra.organizer
        # The envelope needs an instant to sort by; the payload keeps the day itself.
        time=start or datetime.combine(start_date or date.min, time_of_day(), tzinfo=UTC),
    )


def parse_ceremonies(
    raw: bytes, where: str, principals: Principals | None = None, owner: str | None = None
) -> Iterator[Item]:
    """Session events of a YAML/JSON ceremony file (the schema in the module docstring)."""
    principals = principals or Principals()
    try:
        doc = json.loads(raw) if where.endswith(".json") else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as e:
        yield ItemError(where, f"not valid {'JSON' if where.endswith('.json') else 'YAML'}: {e}")
        return
    except RecursionError:  # a flow collection nested thousands deep
        yield ItemError(where, "nested too deeply to be a ceremony file")
        return
    if isinstance(doc, dict) and "ceremonies" in doc:
        doc = doc["ceremonies"]
    items = doc if isinstance(doc, list) else [doc]
    for i, c in enumerate(items):
        ref = f"{where}#ceremonies[{i}]"
        try:
            yield checked(_ceremony(c, ref, where, principals, owner), ref)
        except ValueError as e:
            yield ItemError(ref, str(e))
        except (TypeError, AttributeError) as e:  # a list or a mapping where a name goes
            yield ItemError(ref, f"a field has the wrong type ({e})")


def _time(value: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{field}: {value!r} is not an ISO time like 2026-12-21T17:00:00+01:00"
            ) from None
    else:
        raise ValueError(f"{field}: required, an ISO time with a UTC offset")
    if when.tzinfo is None:
        raise ValueError(f"{field}: {value} has no UTC offset (write +01:00 or Z)")
    return when


def _ceremony(c: Any, ref: str, where: str, principals: Principals, owner: str | None) -> Item:
    if not isinstance(c, dict):
        raise ValueError(f"must be a mapping with title and start, got {type(c).__name__}")
    title = c.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("title: required, a non-empty string")
    start = _time(c.get("start"), "start")
    phases: list[Phase] = []
    at = start
    for j, p in enumerate(c.get("phases") or []):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"]:
            raise ValueError(f"phases[{j}].name: required")
        minutes = p.get("minutes")
        if minutes is not None and (not isinstance(minutes, int | float) or minutes < 0):
            raise ValueError(f"phases[{j}].minutes: must be a number of minutes >= 0, got {minutes!r}")
        phases.append(Phase(name=p["name"], minutes=minutes, start=at, description=p.get("description")))
        at = at + timedelta(minutes=minutes or 0)
    end = _time(c["end"], "end") if c.get("end") is not None else (at if at > start else None)
    participants = c.get("participants") or []
    if not isinstance(participants, list) or not all(isinstance(p, str) for p in participants):
        raise ValueError("participants: must be a list of names")
    if end is not None and end < start:
        raise ValueError("end: must not be before start")
    host = c.get("host") or owner
    data = Session(
        title=title.strip(),
        start=start,
        end=end,
        intention=c.get("intention"),
        place=c.get("place"),
        participants=[principals.principal(p) for p in participants],
        phases=phases,
        recurrence=c.get("recurrence"),
        extra=with_mapped(
            {
                **{k: v for k, v in c.items() if k in ("id", "tradition", "notes") and v is not None},
                **({"host": str(host)} if host else {}),
            },
            principals,
            str(host) if host else None,
        ),
    )
    key = str(c.get("id") or f"{title.strip()}@{start.isoformat()}")
    return make_event(
        "creative.ceremony.session",
        # An edited ceremony is a new revision (what was read is part of its id), not a conflict.
        id=source_id("ceremony", key, hashlib.sha256(msgspec.json.encode(data)).hexdigest()[:16]),
        source=CEREMONY,
        subject=f"ceremony:{key}",
        data=data,
        creator=CEREMONY,  # the host is a claim of the file: data.extra.host
        time=start,
    )


class CalendarSource(FileSource):
    """Events of iCalendar files."""

    name = "calendar"

    def parse(self, raw: bytes, where: str) -> Iterable[Item]:
        return parse_calendar(raw, where, self.principals)


class CeremonySource(FileSource):
    """Ceremonies of YAML/JSON files."""

    name = "ceremony"

    def __init__(
        self, files: Sequence[Path], *, owner: str | None = None, principals: Principals | None = None
    ) -> None:
        super().__init__(files, principals=principals)
        self.owner = owner

    def parse(self, raw: bytes, where: str) -> Iterable[Item]:
        return parse_ceremonies(raw, where, self.principals, self.owner)
