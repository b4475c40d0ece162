"""Fuzzing every parser of the source connectors: bytes, text and JSON in; events or per-item errors out.

Each parser gets random input and the real-world fixtures (../shared/fixtures)
broken on purpose: bytes flipped, inserted, deleted, the document truncated,
JSON fields replaced or removed.  The rule for all of them (``sources.base``):
yield an ``Event`` per thing found or an ``ItemError`` saying why not, and
never raise for one bad item.  Every event must also be one the hub would
read back (``parse_event`` of its encoding), and when one item of a document
is broken the others still come through.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import string
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from _fuzz_strategies import examples, json_values
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from creative_hub.errors import ValidationError
from creative_hub.event import Event, encode_event, parse_event
from creative_hub.sources import arxiv, bibtex, calendar, crossref, feeds, mail, stories
from creative_hub.sources._github_map import (
    commit_event,
    issue_event,
    pull_event,
    review_event,
    webhook_events,
)
from creative_hub.sources.base import Item, ItemError, Principals
from creative_hub.sources.folders import FolderSource
from creative_hub.sources.git import _FORMAT, _RS, _US, GitSource
from creative_hub.sources.mcp import McpCall, McpSource

pytestmark = [
    pytest.mark.sqlite,
    pytest.mark.fuzz,
    pytest.mark.timeout(600),
    # Reporting a failing 40 kB input is worth its cost.
    pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"),
    # BeautifulSoup's hints about odd markup (XML given as a page, a summary that is a bare
    # URL) are not failures of the parser.
    pytest.mark.filterwarnings("ignore::bs4.XMLParsedAsHTMLWarning"),
    pytest.mark.filterwarnings("ignore::bs4.MarkupResemblesLocatorWarning"),
]

FUZZ = settings(
    max_examples=examples(60),
    deadline=None,  # a hang is pytest-timeout's to catch; no timing assertions here
    database=None,  # CI keeps no example database: every run starts clean
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,  # fixtures_dir: read-only
        HealthCheck.data_too_large,
    ],
)


def fixtures() -> Path:
    here = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("CREATIVE_HUB_FIXTURES", here.parent / "shared" / "fixtures"))


# -- what every parser must give ---------------------------------------------------
def check_items(items: Iterable[Item]) -> list[Item]:
    """Events the hub reads back, or ItemErrors that say where and why; nothing else."""
    out = list(items)
    for item in out:
        if isinstance(item, ItemError):
            assert isinstance(item.ref, str)
            assert isinstance(item.reason, str) and item.reason.strip(), (
                f"an ItemError without a reason: {item!r}"
            )
            continue
        assert isinstance(item, Event), f"not an Event or an ItemError: {item!r}"
        body = encode_event(item)
        try:
            again = parse_event(body)
        except ValidationError as e:
            raise AssertionError(f"the parser made an event the hub refuses: {e}\n{body[:600]!r}") from None
        assert again.id == item.id
    return out


def events(items: Iterable[Item]) -> dict[str, bytes]:
    return {i.id: encode_event(i) for i in items if isinstance(i, Event)}


# -- mutations ----------------------------------------------------------------------
@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` with a few bytes flipped, inserted, deleted, duplicated, or cut off."""
    b = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup", "truncate", "ascii"]))
        i = draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "flip" and b:
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "ascii":  # markup-ish noise: brackets, quotes, colons, newlines
            b[i:i] = draw(st.text(alphabet='<>{}[]"\\:=,;@&#%\n\r\t ', min_size=1, max_size=6)).encode()
        elif op == "delete" and b:
            del b[i : i + draw(st.integers(1, 64))]
        elif op == "dup" and b:
            j = draw(st.integers(i, min(len(b), i + 256)))
            b[j:j] = b[i:j]
        elif op == "truncate":
            del b[i:]
    return bytes(b)


def inputs(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """A fixture mutated, a fixture as is, or noise."""
    return (
        st.sampled_from(seeds).flatmap(mutated_bytes)
        | st.sampled_from(seeds)
        | st.binary(max_size=400)
        | st.text(max_size=200).map(str.encode)
    )


@st.composite
def mutated_json(draw: st.DrawFn, seed: Any) -> Any:
    """``seed`` with a few nodes replaced by other JSON, or removed."""
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        if not path:
            doc = draw(json_values)
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc


def _paths(doc: Any, here: tuple[Any, ...] = ()) -> Iterable[tuple[Any, ...]]:
    yield here
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*here, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*here, i))


def read(*parts: str) -> bytes:
    return fixtures().joinpath(*parts).read_bytes()


def all_of(kind: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted(fixtures().joinpath(kind).iterdir()) if p.is_file()]


@pytest.fixture(autouse=True)
def _fixtures_present(fixtures_dir: Path) -> None:
    """The shared fixtures exist (conftest's fixture fails with a hint if not)."""


# -- arXiv (Atom XML) -----------------------------------------------------------------
def lazy(seeds: Callable[[], list[bytes]]) -> st.SearchStrategy[bytes]:
    """``inputs`` of fixtures read at the first draw (after the fixtures are known to exist)."""
    return st.deferred(lambda: inputs(seeds()))


@FUZZ
@given(lazy(lambda: all_of("arxiv")))
@example(b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>x</id><title>t</title>'
         b"<published>2026-13-45</published></entry></feed>")  # fmt: skip
def test_arxiv_atom(raw: bytes) -> None:
    check_items(arxiv.parse_feed(raw, "fuzz.xml"))


# -- BibTeX -----------------------------------------------------------------------------
def _bib_entries() -> list[str]:
    text = read("bibtex", "mendeley_export_random.bib").decode()
    return ["@" + e for e in text.split("\n@") if e.strip()][1:40]


@FUZZ
@given(st.data())
def test_bibtex(data: st.DataObject) -> None:
    entries = data.draw(st.lists(st.sampled_from(_bib_entries()), min_size=1, max_size=6, unique=True))
    seed = "\n".join(entries).encode()
    raw = data.draw(inputs([seed]))
    check_items(bibtex.parse_bibtex(raw.decode("utf-8", "replace"), "fuzz.bib"))


@FUZZ
@given(st.data(), st.sampled_from(["utf-8", "utf-16-le", "utf-16-be", "utf-16", "cp1252", "latin-1"]))
def test_bibtex_bytes_in_any_encoding(data: st.DataObject, codec: str) -> None:
    # The file's bytes are read as it was saved (BOM, UTF-16 NULs, JabRef's % Encoding line):
    # any bytes give text, and entries or per-item errors.
    entries = data.draw(st.lists(st.sampled_from(_bib_entries()), min_size=1, max_size=3, unique=True))
    header = data.draw(st.sampled_from(["", "% Encoding: windows-1252\n", "% Encoding: nonsense\n"]))
    seed = (header + "\n".join(entries)).encode(codec, "replace")
    raw = data.draw(inputs([seed]))
    text = bibtex._text(raw)
    assert isinstance(text, str)
    check_items(bibtex.parse_bibtex(text, "fuzz.bib"))


@FUZZ
@given(st.data())
def test_bibtex_one_bad_entry_spares_the_others(data: st.DataObject) -> None:
    entries = data.draw(st.lists(st.sampled_from(_bib_entries()), min_size=3, max_size=5, unique=True))
    bad = data.draw(st.integers(0, len(entries) - 1))
    broken = list(entries)
    broken[bad] = data.draw(mutated_bytes(entries[bad].encode())).decode("utf-8", "replace")
    good = events(
        check_items(bibtex.parse_bibtex("\n\n".join(e for i, e in enumerate(entries) if i != bad), "f.bib"))
    )
    got = events(check_items(bibtex.parse_bibtex("\n\n".join(broken), "f.bib")))
    # A broken entry may swallow its neighbour up to the next "@" (BibTeX has no other
    # boundary), so each good one comes through unless the break runs into it.
    missing = set(good) - set(got)
    assert len(missing) <= 1, f"{len(missing)} good entries lost to one bad one"


@FUZZ
@given(st.sampled_from(["year", "month", "doi", "eprint", "author", "title"]), st.text(max_size=12))
@example("year", "0")
@example("year", "²")
@example("year", "99999")
@example("year", "١٩٩٩")
def test_bibtex_odd_field_values(name: str, value: str) -> None:
    fields = {"title": "A title", "author": "Renes, Joseph M.", "year": "2001", "archiveprefix": "arXiv"}
    fields[name] = value.replace("}", "").replace("{", "")
    entry = "@article{k1,\n" + "".join(f"  {k} = {{{v}}},\n" for k, v in fields.items()) + "}\n"
    items = check_items(bibtex.parse_bibtex(entry, "odd.bib"))
    assert len(items) == 1, items


# -- calendars and ceremonies --------------------------------------------------------
@FUZZ
@given(lazy(lambda: all_of("calendar")))
def test_icalendar(raw: bytes) -> None:
    check_items(calendar.parse_calendar(raw, "fuzz.ics"))


_VEVENT = (
    "BEGIN:VEVENT\r\nUID:{uid}\r\nSUMMARY:Meeting {uid}\r\nDTSTART:20260101T100000Z\r\n"
    "DTEND:20260101T110000Z\r\n{extra}END:VEVENT\r\n"
)


@FUZZ
@given(
    st.sampled_from(["RRULE", "DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "ATTENDEE", "ORGANIZER"]),
    st.text(alphabet=string.ascii_uppercase + string.digits + "=;:,-+TZ", max_size=40),
)
@example("RRULE", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30")  # never happens (a sub-daily one takes ~5 s)
@example("DTSTART", "99991231T235959Z")
@example("DURATION", "P99999999D")
def test_icalendar_one_bad_property_spares_the_other_events(name: str, value: str) -> None:
    bad = _VEVENT.format(uid="bad", extra=f"{name}:{value}\r\n")
    good = _VEVENT.format(uid="good", extra="")
    raw = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:fuzz\r\n{bad}{good}END:VCALENDAR\r\n".encode()
    items = check_items(calendar.parse_calendar(raw, "one-bad.ics"))
    assert any(isinstance(i, Event) and i.subject == "ical:good" for i in items), items


_CEREMONY = {
    "id": "solstice",
    "title": "Winter solstice circle",
    "start": "2026-12-21T17:00:00+01:00",
    "place": "The old oak",
    "participants": ["alice", "bob"],
    "recurrence": "FREQ=YEARLY",
    "phases": [{"name": "Arrival", "minutes": 15}, {"name": "Silence", "minutes": 20}],
}


@FUZZ
@given(st.data())
def test_ceremonies(data: st.DataObject) -> None:
    doc = data.draw(mutated_json({"ceremonies": [_CEREMONY, {**_CEREMONY, "id": "second"}]}))
    raw = json.dumps(doc).encode()
    check_items(calendar.parse_ceremonies(raw, "fuzz.json"))
    mangled = data.draw(mutated_bytes(raw))
    check_items(calendar.parse_ceremonies(mangled, "fuzz.yaml"))
    check_items(calendar.parse_ceremonies(mangled, "fuzz.json"))


# -- CrossRef (JSON) ---------------------------------------------------------------------
def _crossref() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(read("crossref", "works_10.1371_journal.pone.0033693.json"))
    return body


@FUZZ
@given(st.data())
def test_crossref(data: st.DataObject) -> None:
    body = _crossref()
    check_items(crossref.parse_response(data.draw(mutated_bytes(json.dumps(body).encode())), "w.json"))
    check_items(crossref.parse_response(json.dumps(data.draw(mutated_json(body))).encode(), "w.json"))


@FUZZ
@given(st.data())
def test_crossref_one_bad_work_spares_the_others(data: st.DataObject) -> None:
    work = _crossref()["message"]
    works = [{**work, "DOI": f"10.1234/fuzz.{i}"} for i in range(3)]
    bad = data.draw(st.integers(0, 2))
    broken = list(works)
    broken[bad] = data.draw(mutated_json(works[bad]))

    def listing(items: list[Any]) -> bytes:
        return json.dumps({"message-type": "work-list", "message": {"items": items}}).encode()

    good = events(check_items(crossref.parse_response(listing(works), "list.json")))
    got = events(check_items(crossref.parse_response(listing(broken), "list.json")))
    for i, w in enumerate(works):
        if i != bad:
            ids = [k for k, v in good.items() if w["DOI"] in v.decode()]
            assert ids and all(k in got for k in ids), f"work {i} lost to a bad neighbour"


@FUZZ
@given(json_values)
def test_crossref_any_work_object(work: Any) -> None:
    check_items([crossref.work_event(work, "w", Principals())])


# -- feeds and pages ---------------------------------------------------------------------
@FUZZ
@given(lazy(lambda: all_of("feeds")))
@example(b"<rss><channel><item><title>t</title><link>http://[::1</link></item></channel></rss>")
def test_feeds(raw: bytes) -> None:
    check_items(feeds.parse_feed(raw, "https://example.org/feed.xml"))


_PAGE = (
    b'<html><head><title>A post</title><meta property="og:title" content="Post">'
    b'<meta name="description" content="About things"><link rel="canonical" href="/post">'
    b'<meta property="article:published_time" content="2026-01-02T03:04:05Z">'
    b'<meta property="og:image" content="/img.png"><meta name="author" content="Alice"></head>'
    b"<body><p>Hello</p></body></html>"
)


@FUZZ
@given(lazy(lambda: [_PAGE, *all_of("feeds")]))
@example(b'<link rel="canonical" href="http://[::1"><title>x</title>')
@example(b'<title>x</title><meta property="og:image" content="http://[oops">')
def test_pages(raw: bytes) -> None:
    check_items([feeds.parse_page(raw, "https://example.org/post")])


# -- mail ---------------------------------------------------------------------------------
def _mbox_messages() -> list[bytes]:
    text = read("email", "maven-dev-2017-11_thread_download-links.mbox")
    return [b"From " + m for m in text.split(b"\nFrom ") if m.strip()][1:] + [
        read("email", "gmail_reply.eml")
    ]


@FUZZ
@given(lazy(_mbox_messages))
@example(b"From: =?utf-8?b?////?= <a@b>\nSubject: =?x-unknown?q?hi?=\n\n")
@example(b"From: a@b\nDate: Mon, 99 Foo 2012 99:99:99 +9999\n\n")
def test_mail_message(raw: bytes) -> None:
    item = mail.message_event(raw, "m#1", Principals(), mail._Threader())
    check_items([item])


@settings(FUZZ, max_examples=examples(20))
@given(st.data())
def test_mbox_file_one_bad_message_spares_the_others(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    messages = _mbox_messages()[:5]
    bad = data.draw(st.integers(0, len(messages) - 1))
    broken = list(messages)
    broken[bad] = b"From fuzz\n" + data.draw(mutated_bytes(messages[bad].split(b"\n", 1)[1]))
    folder = tmp_path_factory.mktemp("mbox")
    (folder / "good.mbox").write_bytes(b"\n".join(m for i, m in enumerate(messages) if i != bad))
    (folder / "broken.mbox").write_bytes(b"\n".join(broken))

    def run(name: str) -> list[Item]:
        async def go() -> list[Item]:
            return [i async for i in mail.MailSource([folder / name]).iter_items()]

        import asyncio

        return check_items(asyncio.run(go()))

    good = {i.subject for i in run("good.mbox") if isinstance(i, Event)}
    got = {i.subject for i in run("broken.mbox") if isinstance(i, Event)}
    # A broken message can swallow the next one only if its "From " line went missing.
    assert len(good - got) <= 1, f"lost {good - got}"


# -- GitHub (webhooks and REST objects) ----------------------------------------------------
_HOOKS = {
    "push": ("push", "payload.json"),
    "pull_request": ("pull_request", "opened.payload.json"),
    "pull_request_review": ("pull_request_review", "submitted.payload.json"),
    "issues": ("issues", "opened.payload.json"),
    "issue_comment": ("issue_comment", "created.payload.json"),
    "create": ("create", "payload.json"),
    "fork": ("fork", "payload.json"),
}


@FUZZ
@given(st.sampled_from(sorted(_HOOKS)), st.data())
def test_github_webhook_payloads(name: str, data: st.DataObject) -> None:
    payload = json.loads(read("github", *_HOOKS[name]))
    doc = data.draw(mutated_json(payload))
    if not isinstance(doc, dict):
        return  # the route answers 400 before mapping
    for event_name in (name, data.draw(st.sampled_from(sorted(_HOOKS)))):
        try:
            items = webhook_events(event_name, doc, Principals())
        except (KeyError, TypeError, ValueError) as e:
            # The documented per-delivery refusal: webhook_route answers 422 naming it.
            assert str(e) or type(e).__name__
            continue
        check_items(items)


# A commit as a push webhook lists it, and as the REST API's commits list does.
_PUSHED = {
    "id": "0123456789abcdef0123456789abcdef01234567",
    "message": "Fix the engine (arXiv:2101.00001)",
    "timestamp": "2026-01-02T03:04:05+01:00",
    "url": "https://github.com/octo/repo/commit/0123456789abcdef0123456789abcdef01234567",
    "author": {"name": "Ada", "email": "ada@example.org", "username": "ada"},
    "committer": {"name": "Ada", "email": "ada@example.org", "username": "ada"},
}
_LISTED = {
    "sha": "0123456789abcdef0123456789abcdef01234567",
    "commit": {"author": {"name": "Ada", "email": "ada@example.org", "date": "2026-01-02T02:04:05Z"},
               "message": "Fix the engine"},
    "author": {"login": "ada"},
    "html_url": "https://github.com/octo/repo/commit/0123456789abcdef0123456789abcdef01234567",
}  # fmt: skip


@FUZZ
@given(st.data())
def test_github_push_one_bad_commit_spares_the_others(data: st.DataObject) -> None:
    payload = json.loads(read("github", "push", "payload.json"))
    commits = [{**_PUSHED, "id": f"{i:040x}"} for i in range(1, 4)]
    bad = data.draw(st.integers(0, 2))
    broken = list(commits)
    broken[bad] = data.draw(mutated_json(commits[bad]))
    items = check_items(webhook_events("push", {**payload, "commits": broken}, Principals()))
    commits_out = [i for i in items if isinstance(i, Event) and i.type.endswith(".commit")]
    subjects = {json.loads(encode_event(i))["data"]["sha"] for i in commits_out}
    for i, c in enumerate(commits):
        if i != bad:
            assert c["id"] in subjects, f"commit {i} lost to a bad neighbour"


_REST: dict[str, Callable[[Any], Item]] = {
    "commit": lambda o: commit_event("octo/repo", o, Principals()),
    "pull": lambda o: pull_event("octo/repo", o, None, Principals()),
    "issue": lambda o: issue_event("octo/repo", o, None, Principals()),
    "review": lambda o: review_event("octo/repo", 7, o, Principals()),
}


@FUZZ
@given(st.sampled_from(sorted(_REST)), st.data())
def test_github_rest_objects(kind: str, data: st.DataObject) -> None:
    # The poller hands each listed object to its mapper: a bad one must be an ItemError.
    seeds = {
        "commit": data.draw(st.sampled_from([_PUSHED, _LISTED])),
        "pull": json.loads(read("github", "pull_request", "opened.payload.json"))["pull_request"],
        "issue": json.loads(read("github", "issues", "opened.payload.json"))["issue"],
        "review": json.loads(read("github", "pull_request_review", "submitted.payload.json"))["review"],
    }
    obj = data.draw(mutated_json(seeds[kind]) | json_values)
    if not isinstance(obj, dict):
        return  # a page of the REST API lists objects; the poller skips what is not one
    check_items([_REST[kind](obj)])


# -- git log records ------------------------------------------------------------------
_RECORD = _US.join(
    [
        "0123456789abcdef0123456789abcdef01234567",
        "89abcdef0123456789abcdef0123456789abcdef",
        "Ada Lovelace",
        "ada@example.org",
        "2026-01-02T03:04:05+01:00",
        "Ada Lovelace",
        "ada@example.org",
        "2026-01-02T03:04:05+01:00",
        "Fix the engine\n\nSee arXiv:2101.00001 and doi:10.1234/x.y\n",
        "\n3\t1\tsrc/engine.py\n-\t-\timg/logo.png\n",
    ]
)


@FUZZ
@given(st.data())
def test_git_log_records(data: st.DataObject) -> None:
    assert _FORMAT.count("%") == 9 and _RS not in _RECORD
    raw = data.draw(mutated_bytes(_RECORD.encode()) | st.text(max_size=200).map(str.encode))
    source = GitSource(".", principals=Principals())
    check_items([source._commit(raw.decode("utf-8", "replace"), "github.com/octo/repo", None)])


# -- stories ------------------------------------------------------------------------------
def _story_pieces() -> list[bytes]:
    seed = read("stories", "grimm_hansel-and-gretel.txt")
    return [seed[i : i + 3000] for i in range(0, len(seed), 1500)]


@settings(FUZZ, max_examples=examples(40))
@given(lazy(_story_pieces), st.sampled_from([".txt", ".md", ".fountain", ""]))
@example(b"# T\n\n## A\n\n### B\n\n", ".md")
@example(b"Title: x\n\nINT. HOUSE\n\nBOB\n(quietly)\n", ".fountain")
def test_stories(raw: bytes, suffix: str) -> None:
    # Outside any git repository, so no git history is looked up.
    path = Path("/nonexistent-fuzz") / f"story{suffix}"
    check_items(stories.story_events(path, raw, None, Principals()))


# -- folders (file names are bytes on Linux) ----------------------------------------------
# Any byte but "/" and NUL; names of one to twelve bytes, some of them not UTF-8.
_name_bytes = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\0" not in b)
_names = _name_bytes.filter(lambda b: b not in (b".", b".."))


@settings(FUZZ, max_examples=examples(30))
@given(st.lists(st.tuples(st.lists(_names, min_size=1, max_size=3), st.binary(max_size=64)), max_size=6))
@example([([b"caf\xe9.txt"], b"latin-1 name"), ([b"ok.md"], b"# fine")])
@example([([b"d\xff", b"a.txt"], b""), ([b"line\nbreak"], b"x")])
def test_folder_file_names(
    tmp_path_factory: pytest.TempPathFactory, files: list[tuple[list[bytes], bytes]]
) -> None:
    root = tmp_path_factory.mktemp("folder")
    made: dict[bytes, bytes] = {}
    for parts, content in files:
        path = os.fsencode(root).rstrip(b"/")
        for depth, part in enumerate(parts):
            path = os.path.join(path, part)
            if depth < len(parts) - 1 and not os.path.isdir(path):
                if os.path.exists(path):
                    break  # a file of that name already: not a directory
                os.mkdir(path)
        else:
            if not os.path.isdir(path):
                Path(os.fsdecode(path)).write_bytes(content)
                made[os.path.relpath(path, os.fsencode(root))] = content

    async def run() -> list[Item]:
        return [item async for item in FolderSource(root).iter_items()]

    items = check_items(asyncio.run(run()))
    visible = {rel for rel in made if not any(p.startswith(b".") for p in rel.split(b"/"))}
    assert len(items) == len(visible), "one item per visible file"
    for item in items:
        if isinstance(item, Event):
            assert os.fsencode(item.subject or "") in visible
        else:
            assert "not UTF-8" in item.reason


# -- MCP results --------------------------------------------------------------------------
@FUZZ
@given(
    st.sampled_from(
        [
            "creative.metadata.paper",
            "creative.metadata.webpage",
            "creative.metadata.message",
            "creative.metadata.file",
        ]
    ),  # fmt: skip
    json_values,
    st.text(max_size=200),
)
def test_mcp_results(type_: str, obj: Any, text: str) -> None:
    source = McpSource(None, name="fuzz", calls=[])
    typed = McpCall(tool="search", type=type_, items="results")
    check_items([source._typed(typed, "mcp://fuzz/tools/search", 0, obj)])
    record = McpCall(tool="lookup", arguments={"q": text})
    check_items([source._record(record, "mcp://fuzz/tools/lookup", text, obj)])
