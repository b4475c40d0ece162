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
    assert e.creator == "icalchair-coffeebean-com"
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
    assert d["participants"] == ["alice", "bob"] and solstice.creator == "alice"
    assert [(p["name"], p.get("minutes"), p["start"]) for p in d["phases"]] == [
        ("Arrival", 15, "2026-12-21T17:00:00+01:00"),
        ("Silence", 20, "2026-12-21T17:15:00+01:00"),
        ("Fire", 25, "2026-12-21T17:35:00+01:00"),
    ]
    assert d["end"] == "2026-12-21T18:00:00+01:00" and d["recurrence"] == "FREQ=YEARLY"
    assert solstice.subject == "ceremony:solstice-2026"
    assert pages.data["title"] == "Morning pages" and pages.creator == "host"
    assert (await ingest(hub, CeremonySource([f, good_json], owner="host"))).already == 2
