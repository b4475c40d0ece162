"""Ceremonies: the Lotus Notes daily meeting and the Google export (.ics), and the YAML/JSON schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from creative_hub.hub import Hub
from creative_hub.sources.calendar import CalendarSource, CeremonySource
from creative_hub.sources.ingest import ingest

pytestmark = pytest.mark.sqlite

DATA = Path(__file__).parent / "data"


async def test_recurring_meeting_with_attendees(hub: Hub, stored, fixtures_dir: Path) -> None:
    ics = fixtures_dir / "calendar" / "calconnect_lotus_daily_meeting.ics"
    s = await ingest(hub, CalendarSource([ics]))
    assert (s.ingested, s.skipped) == (1, [])
    (e,) = await stored("creative.ceremony")
    d = e.data
    assert d["title"] == "5 day daily repeating meeting"
    assert d["start"] == "2005-04-11T09:00:00-04:00" and d["end"] == "2005-04-11T10:00:00-04:00"
    assert d["recurrence"] == "FREQ=DAILY;COUNT=5"
    assert d["extra"]["occurrences"] == [f"2005-04-{day}T09:00:00-04:00" for day in (11, 12, 13, 14, 15)]
    assert d["participants"] == ["icalchair-coffeebean-com", "icalparticipant-coffeebean-com"]
    assert d["extra"]["attendees"][0] == {
        "email": "iCalChair@coffeebean.com",
        "name": "iCal Chair/CoffeeBean",
        "role": "CHAIR",
        "status": "ACCEPTED",
    }
    assert d["extra"]["attendees"][1]["role"] == "REQ-PARTICIPANT"
    assert e.creator == "calendar" and e.data["extra"]["organizer"]["email"] == "iCalChair@coffeebean.com"
    assert e.subject == "ical:E88157FE01BE8A5C85256FDB006EBCC3-Lotus_Notes_Generated"
    assert (await ingest(hub, CalendarSource([ics]))).already == 1


async def test_undefined_timezone_is_one_error(hub: Hub, stored, fixtures_dir: Path, tmp_path: Path) -> None:
    raw = (fixtures_dir / "calendar" / "calconnect_lotus_daily_meeting.ics").read_text()
    broken = tmp_path / "no-vtimezone.ics"
    broken.write_text(re.sub(r"BEGIN:VTIMEZONE.*?END:VTIMEZONE\r?\n", "", raw, flags=re.S))
    garbage = tmp_path / "garbage.ics"
    garbage.write_text("this is not a calendar")
    google = fixtures_dir / "calendar" / "google_event_with_alarms.ics"
    s = await ingest(hub, CalendarSource([broken, garbage, google]))
    assert s.ingested == 1
    assert s.skipped[0].ref == f"{broken}#1 5 day daily repeating meeting"
    assert s.skipped[0].reason == "DTSTART: time zone 'Eastern' is not defined in the calendar (no VTIMEZONE)"
    assert s.skipped[1].ref == str(garbage) and "not an iCalendar file" in s.skipped[1].reason
    (e,) = await stored("creative.ceremony")
    assert e.data["title"] == "event with alarms" and e.data["start"] == "2024-10-04T18:15:00Z"
    assert e.data["end"] == "2024-10-04T19:00:00Z" and "participants" not in e.data


CEREMONY = """
ceremonies:
  - id: solstice-2026
    title: Winter solstice circle
    start: 2026-12-21T17:00:00+01:00
    place: The old oak
    intention: Let the year go
    host: Alice
    participants: [Alice, Bob]
    recurrence: FREQ=YEARLY
    phases:
      - {name: Arrival, minutes: 15}
      - {name: Silence, minutes: 20, description: Nobody speaks}
      - {name: Fire, minutes: 25}
  - title: No start
  - title: Retro
    start: 2026-12-22T10:00:00Z
    phases:
      - {name: Check-in, minutes: -5}
"""


async def test_ceremony_yaml_and_json(hub: Hub, stored, tmp_path: Path) -> None:
    f = tmp_path / "ceremonies.yaml"
    f.write_text(CEREMONY)
    bad_json = tmp_path / "broken.json"
    bad_json.write_text('{"title": "x", "start": ')
    good_json = tmp_path / "one.json"
    good_json.write_text(
        json.dumps(
            {
                "title": "Morning pages",
                "start": "2026-01-05T07:00:00+00:00",
                "end": "2026-01-05T07:30:00+00:00",
                "participants": ["carol"],
            }
        )
    )
    s = await ingest(hub, CeremonySource([f, bad_json, good_json], owner="host"))
    assert s.ingested == 2
    assert [(e.ref, e.reason) for e in s.skipped[:2]] == [
        (f"{f}#ceremonies[1]", "start: required, an ISO time with a UTC offset"),
        (f"{f}#ceremonies[2]", "phases[0].minutes: must be a number of minutes >= 0, got -5"),
    ]
    assert s.skipped[2].ref == str(bad_json) and s.skipped[2].reason.startswith("not valid JSON")
    solstice, pages = await stored("creative.ceremony")
    d = solstice.data
    assert (
        d["title"] == "Winter solstice circle"
        and d["place"] == "The old oak"
        and d["intention"] == "Let the year go"
    )
    assert d["participants"] == ["alice", "bob"] and solstice.creator == "ceremony"
    assert solstice.data["extra"]["host"] == "Alice"
    assert [(p["name"], p.get("minutes"), p["start"]) for p in d["phases"]] == [
        ("Arrival", 15, "2026-12-21T17:00:00+01:00"),
        ("Silence", 20, "2026-12-21T17:15:00+01:00"),
        ("Fire", 25, "2026-12-21T17:35:00+01:00"),
    ]
    assert d["end"] == "2026-12-21T18:00:00+01:00" and d["recurrence"] == "FREQ=YEARLY"
    assert solstice.subject == "ceremony:solstice-2026"
    assert pages.data["title"] == "Morning pages" and pages.data["extra"]["host"] == "host"
    assert (await ingest(hub, CeremonySource([f, good_json], owner="host"))).already == 2


# -- fidelity (issue 19) -------------------------------------------------------------
def _ics(*events: str) -> bytes:
    head = "BEGIN:VEVENT\r\nDTSTAMP:20240101T000000Z\r\n"
    body = "".join(f"{head}{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n".encode()


async def test_all_day_recurring_event_with_a_date_until_keeps_its_days(
    hub: Hub, stored, tmp_path: Path
) -> None:
    # RFC 5545: with DTSTART;VALUE=DATE, UNTIL is a DATE too (it was refused as "not UTC").
    ics = tmp_path / "holidays.ics"
    ics.write_bytes(
        _ics(
            "UID:standup-days\r\nSUMMARY:Planning day\r\nDTSTART;VALUE=DATE:20240101\r\n"
            "DTEND;VALUE=DATE:20240102\r\nRRULE:FREQ=WEEKLY;UNTIL=20240129\r\nEXDATE;VALUE=DATE:20240108",
            "UID:one-day\r\nSUMMARY:Offsite\r\nDTSTART;VALUE=DATE:20240315",
        )
    )
    s = await ingest(hub, CalendarSource([ics]))
    assert (s.ingested, s.skipped) == (2, [])
    planning, offsite = (e.data for e in await stored("creative.ceremony"))
    assert planning["all_day"] is True and "start" not in planning and "end" not in planning
    assert (planning["start_date"], planning["end_date"]) == ("2024-01-01", "2024-01-02")
    assert planning["extra"]["occurrences"] == ["2024-01-01", "2024-01-15", "2024-01-22", "2024-01-29"]
    assert planning["extra"]["exdates"] == ["2024-01-08"]
    assert offsite["all_day"] is True and offsite["start_date"] == "2024-03-15" and "end_date" not in offsite
    assert (await ingest(hub, CalendarSource([ics]))).already == 2


async def test_rdate_periods_with_a_quoted_tzid_and_a_thisandfuture_range(hub: Hub, stored) -> None:
    # A real Lotus Notes event as khal saw it: RDATE;TZID="Western/Central Europe";VALUE=PERIOD.
    ics = DATA / "khal_lotus_rdate_period_quoted_tzid.ics"
    s = await ingest(hub, CalendarSource([ics]))
    assert (s.ingested, s.skipped) == (1, [])
    (e,) = await stored("creative.ceremony")
    d = e.data
    assert d["start"] == "2021-11-01T16:00:00+01:00" and d["end"] == "2021-11-01T16:30:00+01:00"
    assert d["extra"]["occurrences"] == [
        "2021-11-01T16:00:00+01:00",
        "2021-12-06T16:00:00+01:00",
        "2022-01-03T16:00:00+01:00",
        "2022-02-07T16:00:00+01:00",
    ]
    assert d["extra"]["rdates"][1] == "2021-12-06T16:00:00+01:00/2021-12-06T16:30:00+01:00"
    assert d["extra"]["recurrence_id"] == "2021-11-01T15:00:00+00:00"
    assert d["extra"]["recurrence_range"] == "THISANDFUTURE"


async def test_a_tzid_with_no_vtimezone_resolves_through_iana(hub: Hub, stored, tmp_path: Path) -> None:
    ics = tmp_path / "berlin.ics"
    ics.write_bytes(
        _ics(
            "UID:iana\r\nSUMMARY:Probe\r\nDTSTART;TZID=Europe/Berlin:20240704T100000\r\n"
            "DTEND;TZID=America/New_York:20240704T060000\r\nRDATE;TZID=Asia/Tokyo:20240705T170000"
        )
    )
    s = await ingest(hub, CalendarSource([ics]))
    assert (s.ingested, s.skipped) == (1, [])
    (e,) = await stored("creative.ceremony")
    assert e.data["start"] == "2024-07-04T10:00:00+02:00" and e.data["end"] == "2024-07-04T06:00:00-04:00"
    assert e.data["extra"]["occurrences"] == ["2024-07-04T10:00:00+02:00", "2024-07-05T17:00:00+09:00"]


async def test_windows_and_vendor_tzids_with_no_vtimezone_resolve(hub: Hub, stored, tmp_path: Path) -> None:
    # Outlook/Exchange write Windows zone names, old Lightning/Sunbird a vendor path before the
    # IANA name; without a VTIMEZONE both were refused as "not defined in the calendar".
    ics = tmp_path / "invites.ics"
    ics.write_bytes(
        _ics(
            "UID:exchange\r\nSUMMARY:Jour fixe\r\nDTSTART;TZID=W. Europe Standard Time:20260910T140000\r\n"
            "DTEND;TZID=W. Europe Standard Time:20260910T150000\r\nRRULE:FREQ=WEEKLY;COUNT=2",
            "UID:lightning\r\nSUMMARY:Moz\r\nDTSTART;TZID=/mozilla.org/20050126_1/America/New_York:20260105T100000",
            "UID:slash\r\nSUMMARY:Slash\r\nDTSTART;TZID=/Europe/Stockholm:20260105T100000",
            "UID:nowhere\r\nSUMMARY:Unknown\r\nDTSTART;TZID=Nowhere Standard Time:20260105T100000",
        )
    )
    s = await ingest(hub, CalendarSource([ics]))
    assert s.ingested == 3
    assert [e.reason for e in s.skipped] == [
        "DTSTART: time zone 'Nowhere Standard Time' is not defined in the calendar (no VTIMEZONE)"
    ]
    exchange, lightning, slash = (e.data for e in await stored("creative.ceremony"))
    assert slash["start"] == "2026-01-05T10:00:00+01:00"
    assert (exchange["start"], exchange["end"]) == ("2026-09-10T14:00:00+02:00", "2026-09-10T15:00:00+02:00")
    assert exchange["extra"]["occurrences"] == ["2026-09-10T14:00:00+02:00", "2026-09-17T14:00:00+02:00"]
    assert lightning["start"] == "2026-01-05T10:00:00-05:00"


async def test_an_exchange_invite_with_no_uid_is_known_by_its_content(
    hub: Hub, stored, tmp_path: Path
) -> None:
    # A real Microsoft CDO (Exchange) invite with no UID (RFC 5545 requires one; it was
    # dropped whole: "VEVENT has no UID"). Its content names it, all but DTSTAMP, which
    # every export stamps anew.
    ics = DATA / "exchange_cdo_invite_without_uid.ics"
    s = await ingest(hub, CalendarSource([ics]))
    assert (s.ingested, s.skipped) == (1, [])
    (e,) = await stored("creative.ceremony")
    d = e.data
    assert d["title"] == "Sprint 25 Daily Standup" and d["start"] == "2015-07-03T10:00:00+02:00"
    assert d["extra"]["no_uid"] is True and "uid" not in d["extra"]
    weekdays = d["extra"]["occurrences"]  # BYDAY=MO, TU, WE, TH, FR until 2015-07-22 08:00 UTC
    assert (len(weekdays), weekdays[0], weekdays[-1]) == (
        14,
        "2015-07-03T10:00:00+02:00",
        "2015-07-22T10:00:00+02:00",
    )
    again = tmp_path / "exported-again.ics"
    again.write_bytes(ics.read_bytes().replace(b"DTSTAMP:20150703T071009Z", b"DTSTAMP:20260101T000000Z"))
    assert (await ingest(hub, CalendarSource([again]))).already == 1
    edited = tmp_path / "standup.ics"
    edited.write_bytes(ics.read_bytes().replace(b"Sprint 25", b"Sprint 26"))  # no UID to link: another
    assert (await ingest(hub, CalendarSource([edited]))).ingested == 1


async def test_a_rule_that_cannot_be_expanded_keeps_its_event(hub: Hub, stored) -> None:
    # RFC 7529's examples: non-Gregorian calendars (RSCALE) and SKIP, which dateutil cannot
    # expand. The events were dropped ("unknown parameter 'RSCALE'"); they keep their rule.
    s = await ingest(hub, CalendarSource([DATA / "rfc7529_rscale_rules.ics"]))
    assert (s.ingested, s.skipped) == (4, [])
    chinese, *_ = (e.data for e in await stored("creative.ceremony"))
    assert chinese["title"] == "Chinese New Year" and chinese["start_date"] == "2013-02-10"
    assert chinese["recurrence"] == "RSCALE=CHINESE;FREQ=YEARLY"
    assert chinese["extra"]["occurrences"] == ["2013-02-10"]  # DTSTART, always one
    assert "RSCALE" in chinese["extra"]["occurrences_not_expanded"]


async def test_an_event_with_no_summary_is_kept_untitled(hub: Hub, stored, tmp_path: Path) -> None:
    # SUMMARY is optional in RFC 5545 (a blocked slot, a quick entry): the event is not lost.
    ics = tmp_path / "busy.ics"
    ics.write_bytes(_ics("UID:busy-1\r\nDTSTART:20260105T090000Z\r\nDTEND:20260105T100000Z"))
    s = await ingest(hub, CalendarSource([ics]))
    assert (s.ingested, s.skipped) == (1, [])
    (e,) = await stored("creative.ceremony")
    assert e.data["title"] == "(no title)" and e.data["extra"]["untitled"] is True


async def test_recurrence_expansion_is_capped_and_says_so(hub: Hub, stored, tmp_path: Path) -> None:
    # 150 bytes that never match (February 30th, every hour) walked to the year 9999 before.
    ics = tmp_path / "hostile.ics"
    ics.write_bytes(
        _ics(
            "UID:never\r\nSUMMARY:Never\r\nDTSTART:20240101T100000Z\r\nRRULE:FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30",
            "UID:many\r\nSUMMARY:Many\r\nDTSTART:20240101T100000Z\r\nRRULE:FREQ=DAILY;COUNT=100000",
            "UID:rare\r\nSUMMARY:Leap days\r\nDTSTART;VALUE=DATE:20240229\r\nRRULE:FREQ=YEARLY;INTERVAL=1000",
        )
    )
    s = await ingest(hub, CalendarSource([ics]))
    assert (s.ingested, s.skipped) == (3, [])
    never, many, rare = (e.data["extra"] for e in await stored("creative.ceremony"))
    assert never["occurrences"] == ["2024-01-01T10:00:00+00:00"]  # DTSTART is always one
    assert never["occurrences_capped"] == (
        "expansion stopped after 300000 steps with 0 occurrences (a rule that matches rarely or never)"
    )
    assert len(many["occurrences"]) == 100
    assert many["occurrences_capped"] == "listed the first 100 occurrences"
    # Every thousandth year: the time window (2000 periods) ends before 100 are found.
    assert rare["occurrences"][:2] == ["2024-02-29", "3024-02-29"] and len(rare["occurrences"]) == 8
    assert rare["occurrences_capped"].startswith("expanded only up to ")


async def test_an_edited_event_is_a_new_revision_not_a_skip(hub: Hub, stored, tmp_path: Path) -> None:
    # The same UID exported again after an edit (RFC 5545: SEQUENCE goes up, LAST-MODIFIED
    # moves) was skipped as "already in the hub with other content (changed at the source?)"
    # and the new time was lost. An export that changed nothing (DTSTAMP only) adds 0.
    first = "UID:standup\r\nSUMMARY:Standup\r\nDTSTART:20260105T090000Z\r\nLAST-MODIFIED:20260101T000000Z"
    moved = (
        "UID:standup\r\nSUMMARY:Standup\r\nDTSTART:20260105T100000Z\r\nSEQUENCE:1\r\n"
        "LAST-MODIFIED:20260102T000000Z"
    )
    for name, ev in (("v1.ics", first), ("v2.ics", moved)):
        (tmp_path / name).write_bytes(_ics(ev))
    assert (await ingest(hub, CalendarSource([tmp_path / "v1.ics"]))).ingested == 1
    again = tmp_path / "v1-again.ics"
    again.write_bytes(_ics(first).replace(b"DTSTAMP:20240101T000000Z", b"DTSTAMP:20260103T000000Z"))
    assert (await ingest(hub, CalendarSource([again]))).already == 1
    s = await ingest(hub, CalendarSource([tmp_path / "v2.ics"]))
    assert (s.ingested, s.skipped) == (1, [])
    old, new = await stored("creative.ceremony")
    assert (old.subject, new.subject) == ("ical:standup", "ical:standup")
    assert (old.data["start"], new.data["start"]) == ("2026-01-05T09:00:00Z", "2026-01-05T10:00:00Z")
    assert new.data["extra"]["sequence"] == 1


async def test_an_edited_ceremony_is_a_new_revision(hub: Hub, stored, tmp_path: Path) -> None:
    f = tmp_path / "circle.yaml"
    f.write_text("id: circle\ntitle: Circle\nstart: 2026-12-21T17:00:00+01:00\nplace: The oak\n")
    assert (await ingest(hub, CeremonySource([f]))).ingested == 1
    f.write_text("id: circle\ntitle: Circle\nstart: 2026-12-21T17:00:00+01:00\nplace: The old oak\n")
    s = await ingest(hub, CeremonySource([f]))
    assert (s.ingested, s.skipped) == (1, [])  # was "changed at the source?", the edit lost
    assert [e.data["place"] for e in await stored("creative.ceremony")] == ["The oak", "The old oak"]
