"""Fuzzing the limits of the sources: huge, slow, deep and hostile inputs end within their bounds.

Each test draws inputs built to hurt -- recurrence rules that never match or
never end, mbox files with giant or unterminated header lines, documents
nested thousands deep, folders of links out and devices, HTTP servers on
loopback that trickle (the body or the headers), bloat (plain or as a gzip
bomb), loop redirects or point inside -- and checks the rule of
``sources.base``: every input ends (pytest-timeout would catch a hang; no
timing is asserted) as events or per-item errors that say which limit was
hit.  The servers are real (``http.server`` on 127.0.0.1/127.0.0.2), never
mocked.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote_from_bytes

import pytest
from _fuzz_strategies import examples
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_parsers import FUZZ, check_items

from creative_hub.event import Event, encode_event
from creative_hub.sources import bibtex, calendar, crossref, feeds, mail
from creative_hub.sources._fetch import FetchLimits
from creative_hub.sources._recurrence import MAX_OCCURRENCES
from creative_hub.sources.base import Item, ItemError, Principals
from creative_hub.sources.feeds import PageSource
from creative_hub.sources.folders import FolderSource
from creative_hub.sources.github import DeliveryRefused, delivery_items, form_payload

pytestmark = [
    pytest.mark.sqlite,
    pytest.mark.fuzz,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"),
    pytest.mark.filterwarnings("ignore::bs4.XMLParsedAsHTMLWarning"),
    pytest.mark.filterwarnings("ignore::bs4.MarkupResemblesLocatorWarning"),
]


# -- recurrence -----------------------------------------------------------------------
_BY = {
    "BYMONTH": st.lists(st.integers(1, 12), min_size=1, max_size=3),
    "BYMONTHDAY": st.lists(st.sampled_from([1, 15, 28, 29, 30, 31, -1, -31]), min_size=1, max_size=3),
    "BYDAY": st.lists(st.sampled_from(["MO", "TU", "SU", "1MO", "-1FR", "53SU"]), min_size=1, max_size=3),
    "BYHOUR": st.lists(st.integers(0, 23), min_size=1, max_size=4),
    "BYMINUTE": st.lists(st.integers(0, 59), min_size=1, max_size=4),
    "BYYEARDAY": st.lists(st.sampled_from([1, 60, 366, -1, -366]), min_size=1, max_size=2),
    "BYSETPOS": st.lists(st.sampled_from([1, -1, 2, 366]), min_size=1, max_size=2),
}


@st.composite
def rrules(draw: st.DrawFn) -> str:
    freqs = ["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY"]
    parts = [f"FREQ={draw(st.sampled_from(freqs))}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 10_000))}")
    end = draw(st.sampled_from(["none", "count", "until", "until-date"]))
    if end == "count":
        parts.append(f"COUNT={draw(st.integers(1, 10**9))}")
    elif end == "until":
        parts.append(f"UNTIL={draw(st.integers(2024, 9999))}0101T000000Z")
    elif end == "until-date":
        parts.append(f"UNTIL={draw(st.integers(2024, 9999))}1231")
    for key in draw(st.lists(st.sampled_from(sorted(_BY)), unique=True, max_size=4)):
        parts.append(f"{key}={','.join(map(str, draw(_BY[key])))}")
    return ";".join(parts)


_STARTS = [
    "DTSTART:20240101T100000Z",
    "DTSTART;VALUE=DATE:20240101",
    "DTSTART;TZID=Europe/Berlin:20240331T023000",
    "DTSTART:20240101T100000",
]


@FUZZ
@given(rrules(), st.sampled_from(_STARTS))
@example("FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30", "DTSTART:20240101T100000Z")  # the 5.5 s one
@example("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=30;COUNT=5", "DTSTART:20240101T100000Z")
@example("FREQ=YEARLY;INTERVAL=10000", "DTSTART;VALUE=DATE:20240101")
@example("FREQ=YEARLY;BYSETPOS=366", "DTSTART:20240101T100000Z")
@example("FREQ=YEARLY;BYDAY=53SU;BYMONTH=2", "DTSTART:20240101T100000Z")  # IndexError inside dateutil
def test_recurrence_ends_within_its_caps(rule: str, start: str) -> None:
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\nBEGIN:VEVENT\r\nUID:u\r\nSUMMARY:s\r\n"
        f"{start}\r\nRRULE:{rule}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()
    (item,) = check_items(calendar.parse_calendar(ics, "fuzz.ics"))
    assert isinstance(item, Event), item  # a rule it cannot expand keeps its event
    extra = json.loads(encode_event(item))["data"]["extra"]
    if "occurrences_not_expanded" in extra:  # a rule dateutil refuses (BYSETPOS=366 ...), said why
        assert len(extra["occurrences"]) == 1
        return
    assert len(extra["occurrences"]) <= MAX_OCCURRENCES
    if "COUNT=" not in rule and "UNTIL=" not in rule:  # an endless rule is always cut, and says so
        assert extra["occurrences_capped"]


# -- mbox --------------------------------------------------------------------------------
_MESSAGE = b"From: Ada <ada@example.org>\nSubject: hello\nMessage-ID: <m%d@example.org>\n\nbody\n"


@settings(FUZZ, max_examples=examples(40))
@given(
    st.lists(
        st.sampled_from(["ok", "huge-header", "long-line", "huge-body", "no-newline"]), min_size=1, max_size=6
    )
)
def test_hostile_mbox_messages_are_one_error_each(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, kinds: list[str]
) -> None:
    monkeypatch.setattr(mail, "MAX_HEADER", 4096)
    monkeypatch.setattr(mail, "MAX_MESSAGE", 256 * 1024)
    parts = []
    for n, kind in enumerate(kinds):
        msg = _MESSAGE % n
        if kind == "huge-header":
            msg = msg.replace(b"\n\n", b"\n" + b"X-Pad: a\n" * 1000 + b"\n", 1)
        elif kind == "long-line":  # one header line far past the reader's piece size
            msg = msg.replace(b"Subject: hello", b"Subject: " + b"h" * 100_000, 1)
        elif kind == "huge-body":
            msg += b"line\n" * 60_000
        elif kind == "no-newline" and n == len(kinds) - 1:
            msg = msg.rstrip(b"\n") + b"x" * 70_000
        parts.append(b"From ada@example.org Mon Jan  1 00:00:00 2024\n" + msg)
    box = tmp_path_factory.mktemp("mbox") / "fuzz.mbox"
    box.write_bytes(b"".join(parts))

    async def run() -> list[Item]:
        return [i async for i in mail.MailSource([box]).iter_items()]

    items = check_items(asyncio.run(run()))
    assert len(items) == len(kinds), "one item per message, whatever it holds"
    for kind, item in zip(kinds, items, strict=True):
        if kind in ("huge-header", "long-line"):
            assert isinstance(item, ItemError) and "header block over 4096 bytes" in item.reason
        elif kind == "huge-body":
            assert isinstance(item, ItemError) and "message over 262144 bytes" in item.reason
        elif kind == "ok":
            assert isinstance(item, Event)


# -- deep documents --------------------------------------------------------------------------
def _deep(kind: str, depth: int) -> list[Item]:
    if kind == "crossref":
        return list(crossref.parse_response(b"[" * depth + b"]" * depth, "deep.json"))
    if kind == "ceremony-json":
        return list(calendar.parse_ceremonies(b'{"a":' * depth + b"1" + b"}" * depth, "deep.json"))
    if kind == "ceremony-yaml":
        return list(calendar.parse_ceremonies(b"[" * depth + b"]" * depth, "deep.yaml"))
    if kind in ("github", "github-form"):
        body = b'{"a":' * depth + b"1" + b"}" * depth
        try:
            if kind == "github-form":  # the webhook's other content type: the JSON is a form field
                body = form_payload(b"payload=" + quote_from_bytes(body).encode())
            return delivery_items("push", body, Principals())
        except DeliveryRefused as e:
            return [ItemError("delivery", str(e))]
    if kind == "bibtex":
        text = "@article{k, title = " + "{" * depth + "x" + "}" * depth + "}\n"
        return list(bibtex.parse_bibtex(text, "deep.bib"))
    if kind == "page":
        return [feeds.parse_page(b"<div>" * depth + b"<title>deep</title>", "https://example.org/")]
    if kind == "feed":
        body = b"<rss><channel><item><title>t</title><link>https://example.org/1</link><description>"
        body += b"&lt;b&gt;" * depth + b"x</description></item></channel></rss>"
        return list(feeds.parse_feed(body, "deep.rss"))
    assert kind == "ics"
    nested = b"BEGIN:X\r\n" * depth + b"END:X\r\n" * depth
    return list(calendar.parse_calendar(b"BEGIN:VCALENDAR\r\n" + nested + b"END:VCALENDAR\r\n", "deep.ics"))


@settings(FUZZ, max_examples=examples(24))
@given(
    st.sampled_from(
        [
            "crossref",
            "ceremony-json",
            "ceremony-yaml",
            "github",
            "github-form",
            "bibtex",
            "page",
            "feed",
            "ics",
        ]
    ),
    st.sampled_from([10, 1_000, 20_000]),
)
def test_deep_documents_end_as_events_or_one_error(kind: str, depth: int) -> None:
    items = check_items(_deep(kind, depth))
    if depth == 20_000 and kind in ("crossref", "ceremony-json", "ceremony-yaml", "github", "github-form"):
        (item,) = items
        assert isinstance(item, ItemError) and "deep" in item.reason


# -- folders ------------------------------------------------------------------------------
@settings(FUZZ, max_examples=examples(30))
@given(
    st.lists(
        st.sampled_from(["file", "link-in", "link-out", "dev-zero", "dangling", "fifo", "dir-link", "loop"]),
        min_size=1,
        max_size=8,
    )
)
def test_folders_of_links_and_devices(tmp_path_factory: pytest.TempPathFactory, kinds: list[str]) -> None:
    base = tmp_path_factory.mktemp("drive")
    root, outside = base / "root", base / "outside.txt"
    root.mkdir()
    outside.write_text("not in the folder")
    (root / "anchor.txt").write_text("anchor")
    for n, kind in enumerate(kinds):
        p = root / f"{n}-{kind}"
        if kind == "file":
            p.write_bytes(os.urandom(n))
        elif kind == "link-in":
            p.symlink_to(root / "anchor.txt")
        elif kind == "link-out":
            p.symlink_to(outside)
        elif kind == "dev-zero":
            p.symlink_to("/dev/zero")
        elif kind == "dangling":
            p.symlink_to(base / "gone")
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "dir-link":
            p.symlink_to(base)
        else:
            p.symlink_to(p)

    async def run() -> list[Item]:
        return [i async for i in FolderSource(root).iter_items()]

    items = check_items(asyncio.run(run()))
    got = {(i.subject if isinstance(i, Event) else i.ref): i for i in items}
    for n, kind in enumerate(kinds):
        name = f"{n}-{kind}"
        if kind in ("file", "link-in"):
            assert isinstance(got[name], Event)
        elif kind == "fifo":
            assert name not in got  # not a file: not listed, and nothing blocked on it
        else:
            assert isinstance(got[name], ItemError), name


# -- hostile HTTP servers -------------------------------------------------------------------
class _Hostile:
    """One server on 127.0.0.2 ("outside") whose route ``/<behaviour>/<n>`` misbehaves."""

    def __init__(self, inside_port: int) -> None:
        self.stop = threading.Event()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    outer.serve(self, inside_port)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.2", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.2:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, r: BaseHTTPRequestHandler, inside_port: int) -> None:
        _, kind, n = (r.path.split("/") + ["0", "0"])[:3]
        count = int(n) if n.isdigit() else 0
        if kind == "loop":  # redirects forever
            r.send_response(302)
            r.send_header("Location", f"/loop/{count + 1}")
            r.end_headers()
        elif kind == "inside":
            r.send_response(301)
            r.send_header("Location", f"http://127.0.0.1:{inside_port}/")
            r.end_headers()
        elif kind == "trickle":
            r.send_response(200)
            r.end_headers()
            while not self.stop.is_set():
                r.wfile.write(b"<")
                r.wfile.flush()
                time.sleep(0.1)
        elif kind == "bloat":
            r.send_response(200)
            r.end_headers()
            for _ in range(10_000):
                if self.stop.is_set():
                    return
                r.wfile.write(b"<p>" * 4096)
        elif kind == "gzip":  # a few KiB on the wire, 16 MiB once inflated
            r.send_response(200)
            r.send_header("Content-Encoding", "gzip")
            r.send_header("Content-Length", str(len(_BOMB)))
            r.end_headers()
            r.wfile.write(_BOMB)
        elif kind == "slow-headers":  # the status line, then a header a byte at a time, forever
            r.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self.stop.is_set():
                r.wfile.write(b"a")
                r.wfile.flush()
                time.sleep(0.1)
        elif kind == "liar":  # says 10 bytes, sends more, closes
            r.send_response(200)
            r.send_header("Content-Length", "10")
            r.end_headers()
            r.wfile.write(b"<title>" * 100)
        elif kind == "status":
            r.send_response(300 + count % 300)
            r.end_headers()
        else:
            body = b"<html><title>fine</title></html>"
            r.send_response(200)
            r.send_header("Content-Length", str(len(body)))
            r.end_headers()
            r.wfile.write(body)

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hostile() -> Iterator[_Hostile]:
    server = _Hostile(inside_port=9)  # nothing listens inside; the address check comes first
    yield server
    server.close()


_BOMB = gzip.compress(b"<p>" * (16 * 2**20 // 3))
_KINDS = ["loop", "inside", "trickle", "slow-headers", "bloat", "gzip", "liar", "status", "fine"]
_LIMITS = FetchLimits(trusted=("127.0.0.2",), deadline=0.5, max_bytes=64 * 1024, max_redirects=3)


@settings(FUZZ, max_examples=examples(15))
@given(st.lists(st.tuples(st.sampled_from(_KINDS), st.integers(0, 299)), min_size=1, max_size=4))
@example([("gzip", 0), ("slow-headers", 0), ("fine", 0)])
def test_hostile_servers_end_within_the_limits(hostile: _Hostile, urls: list[tuple[str, int]]) -> None:
    targets: list[str | Path] = [f"{hostile.url}/{kind}/{n}" for kind, n in urls]

    async def run() -> list[Item]:
        return [i async for i in PageSource(targets, limits=_LIMITS).iter_items()]

    items = check_items(asyncio.run(run()))
    assert len(items) == len(urls), "one item per URL"
    why = {
        "loop": "more than 3 redirects",
        "inside": "not a public address",
        "trickle": "took longer than 0.5 s",
        "slow-headers": "took longer than 0.5 s",
        "bloat": "over the 65536-byte limit",
        "gzip": "over the 65536-byte limit",
    }
    for (kind, _), item in zip(urls, items, strict=True):
        if kind in why:
            assert isinstance(item, ItemError) and why[kind] in item.reason, (kind, item)
        elif kind == "fine":
            assert isinstance(item, Event)
