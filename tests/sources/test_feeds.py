"""Web: the Medium RSS and GitHub releases Atom feeds in the fixtures; pages from a local server."""

from __future__ import annotations

from pathlib import Path

import pytest

from creative_hub.hub import Hub
from creative_hub.sources._fetch import FetchLimits
from creative_hub.sources.base import ItemError
from creative_hub.sources.feeds import FeedSource, PageSource
from creative_hub.sources.ingest import ingest

pytestmark = pytest.mark.sqlite


async def test_rss_entries(hub: Hub, stored, fixtures_dir: Path) -> None:
    rss = fixtures_dir / "feeds" / "medium_content-encoded.rss"
    s = await ingest(hub, FeedSource([rss]))
    assert (s.ingested, s.skipped) == (7, [])
    events = await stored("creative.metadata")
    first = events[0]
    assert first.data["title"] == "THE CREATIVE FORAGER"
    assert first.data["url"].startswith("https://medium.com/invironment/the-creative-forager-125af37d838f")
    assert first.data["site_name"] == "Food in Invironment on Medium"
    assert first.data["published"] == "2018-04-09T18:55:38Z"
    assert first.data["extra"]["author"] == "Jeremy Puma" and first.creator == "feeds"
    assert first.data["extra"]["entry_id"] == "https://medium.com/p/125af37d838f"
    assert "plants" in first.data["extra"]["tags"]
    assert first.data["description"].startswith("Using Wild Ingredients in the Kitchen")
    assert events[1].data["title"] == "Eight Reasons You Shouldn’t Grow Your Own Food"
    assert (await ingest(hub, FeedSource([rss]))).already == 7


async def test_atom_relative_links_resolve(hub: Hub, stored, fixtures_dir: Path) -> None:
    s = await ingest(hub, FeedSource([fixtures_dir / "feeds" / "github_releases_gulp.atom"]))
    assert s.ingested == 10
    first = (await stored("creative.metadata"))[0]
    assert first.data["title"] == "v3.9.0"
    assert first.data["url"] == "https://github.com/gulpjs/gulp/releases/tag/v3.9.0"
    assert first.data["published"] == "2015-06-01T21:49:41Z" and first.creator == "feeds"
    assert first.data["site_name"] == "Release notes from gulp" and first.data["description"] == "3.9.0"


async def test_truncated_feed_keeps_whole_entries(
    hub: Hub, stored, fixtures_dir: Path, tmp_path: Path
) -> None:
    raw = (fixtures_dir / "feeds" / "medium_content-encoded.rss").read_bytes()
    cut = tmp_path / "cut.rss"
    cut.write_bytes(raw[: len(raw) // 2])
    not_xml = tmp_path / "nope.rss"
    not_xml.write_bytes(b"\x00\x01 this is no feed")
    s = await ingest(hub, FeedSource([cut, not_xml, fixtures_dir / "feeds" / "github_releases_gulp.atom"]))
    assert s.ingested == 3 + 10
    assert [e.ref for e in s.skipped] == [f"{cut}#4", str(not_xml)]
    assert "Wild Flavors All Year Round" in s.skipped[0].reason and "not well-formed" in s.skipped[0].reason
    assert "not a feed" in s.skipped[1].reason


PAGE = b"""<!doctype html><html><head>
<title>Plain title</title>
<meta name="description" content="A page about foraging.">
<meta property="og:title" content="The Creative Forager">
<meta property="og:site_name" content="Invironment">
<meta property="og:image" content="/img/forager.png">
<meta property="article:published_time" content="2018-04-09T18:55:38Z">
<link rel="canonical" href="/invironment/the-creative-forager">
</head><body><p>Hello</p></body></html>"""


async def test_page_title_description_opengraph_canonical(
    hub: Hub, stored, http_server, tmp_path: Path
) -> None:
    http_server.routes["/post"] = (200, {"Content-Type": "text/html"}, PAGE)
    saved = tmp_path / "saved.html"
    saved.write_bytes(b"<html><head><title>Saved</title></head></html>")
    # The test server is on loopback, which a URL from outside may not reach by default.
    lan = FetchLimits(allow_private=True)
    targets = [f"{http_server.url}/post", f"{http_server.url}/gone", saved]
    s = await ingest(hub, PageSource(targets, limits=lan))
    assert s.ingested == 2 and s.skipped[0].reason == "HTTP 404"
    page, local = await stored("creative.metadata")
    assert page.data["title"] == "The Creative Forager" and page.data["site_name"] == "Invironment"
    assert page.data["description"] == "A page about foraging."
    assert page.data["canonical_url"] == f"{http_server.url}/invironment/the-creative-forager"
    assert page.data["image"] == f"{http_server.url}/img/forager.png"
    assert page.data["published"] == "2018-04-09T18:55:38Z"
    assert page.subject == page.data["canonical_url"]
    assert local.data["title"] == "Saved" and local.data["url"].startswith("urn:sha256:")
    assert (await ingest(hub, PageSource(targets, limits=lan))).already == 2


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Notizen</title>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <updated>2026-11-02T18:30:02Z</updated>
  <author><name>J\xc3\xbcrgen M\xc3\xbcller</name></author>
  <link href="https://example.org/"/>
  <entry>
    <title>Ohne Autor</title>
    <link href="https://example.org/1"/>
    <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
    <updated>2026-11-01T18:30:02Z</updated>
  </entry>
  <entry>
    <title>Mit Autorin</title>
    <link href="https://example.org/2"/>
    <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6b</id>
    <updated>2026-11-02T18:30:02Z</updated>
    <author><name>Anna Schmidt</name></author>
  </entry>
</feed>
"""


async def test_entries_without_an_author_inherit_the_feeds(hub: Hub, stored, tmp_path: Path) -> None:
    f = tmp_path / "notizen.atom"
    f.write_bytes(ATOM)
    s = await ingest(hub, FeedSource([f]))
    assert (s.ingested, s.skipped) == (2, [])
    inherited, own = await stored("creative.metadata")
    assert inherited.data["extra"]["author"] == "Jürgen Müller" and inherited.creator == "feeds"
    assert own.data["extra"]["author"] == "Anna Schmidt" and own.creator == "feeds"


async def test_a_real_german_atom_feed_gives_its_author_to_every_entry(hub: Hub, stored) -> None:
    # heise developer's Atom feed: <author><name>heise online</name> on the feed, none on entries.
    feed = Path(__file__).parent / "data" / "heise_online.atom"
    s = await ingest(hub, FeedSource([feed]))
    assert (s.ingested, s.skipped) == (15, [])
    entries = await stored("creative.metadata")
    assert {e.data["extra"]["author"] for e in entries} == {"heise online"}
    assert {e.creator for e in entries} == {"feeds"}  # the author is a claim; the feeds source wrote it
    assert entries[0].data["title"] == "Java-Anwendungsserver: Red Hat gibt WildFly 10 frei"


async def test_a_feed_with_whitespace_before_its_xml_declaration_is_whole(hub: Hub, stored) -> None:
    # SWR2's podcast feed (via rbren/rss-parser) starts with a newline before <?xml ...?>,
    # as feeds written by templates often do: feedparser calls that not well-formed, and its
    # one entry was left out as "may be cut short".
    s = await ingest(hub, FeedSource([Path(__file__).parent / "data" / "podcast_leading_newline.rss"]))
    assert (s.ingested, s.skipped) == (1, [])
    (e,) = await stored("creative.metadata")
    assert e.data["title"] == "Ostafrika stellt sich auf die nächste Heuschreckenplage ein"
    assert e.data["extra"]["entry_id"] == "c88fbba9-c228-4724-bf41-8c193b72491c"


@pytest.mark.parametrize(
    ("declared", "codec", "title"),
    [
        ('<meta charset="shift_jis">', "cp932", "①会議のお知らせ"),  # Japanese Windows: NEC characters
        ('<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">', "cp1252", "“Café” €"),
        ("<meta charset='gb2312'>", "gb18030", "朱镕基讲话"),
    ],
)
def test_a_page_in_the_charset_it_declares_as_browsers_read_it(declared: str, codec: str, title: str) -> None:
    # Browsers read these labels as the supersets pages are written in (the WHATWG Encoding
    # Standard); a strict codec failed and the whole page came out as Windows-1252 mojibake.
    from creative_hub.sources.feeds import parse_page

    html = f"<html><head>{declared}<title>{title}</title></head><body>x</body></html>"
    page = parse_page(html.encode(codec), "https://example.org/p")
    assert not isinstance(page, ItemError) and page.data.title == title


BLOG = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
<id>tag:ana.example,2024:blog</id><title>Ana's blog</title><link href="https://ana.example/"/>
<updated>2024-01-02T00:00:00Z</updated><author><name>Ana</name></author>
<entry><id>tag:ana.example,2024:post-1</id><title>Post one</title><link href="https://ana.example/1"/>
<updated>2024-01-02T00:00:00Z</updated><summary>Hello</summary></entry></feed>"""

# A planet: the same entry, naming the feed it came from (RFC 4287 4.2.11 atom:source).
PLANET = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">
<id>tag:planet.example,2024:planet</id><title>Planet Example</title><link href="https://planet.example/"/>
<updated>2024-01-03T00:00:00Z</updated>
<entry><id>tag:ana.example,2024:post-1</id><title>Post one</title><link href="https://ana.example/1"/>
<updated>2024-01-02T00:00:00Z</updated><summary>Hello</summary><author><name>Ana</name></author>
<source><id>tag:ana.example,2024:blog</id><title>Ana's blog</title><link href="https://ana.example/"/></source>
</entry></feed>"""

# A digest that carries the entry without saying where it came from.
DIGEST = PLANET.replace(b"planet", b"digest").replace(b"Planet", b"Digest").split(b"<source>")[0] + (
    b"</entry></feed>"
)


async def test_the_same_entry_in_another_feed_is_no_false_change(hub: Hub, stored, tmp_path: Path) -> None:
    # It was "already in the hub with other content (changed at the source?)": nothing changed.
    for name, body in (("blog.atom", BLOG), ("planet.atom", PLANET), ("digest.atom", DIGEST)):
        (tmp_path / name).write_bytes(body)
    assert (await ingest(hub, FeedSource([tmp_path / "blog.atom"]))).ingested == 1
    planet = await ingest(hub, FeedSource([tmp_path / "planet.atom"]))  # it names its origin: the same
    assert (planet.ingested, planet.already, planet.skipped) == (0, 1, [])
    digest = await ingest(hub, FeedSource([tmp_path / "digest.atom"]))  # as that feed carries it
    assert (digest.ingested, digest.skipped) == (1, [])
    blog, carried = await stored("creative.metadata")
    assert blog.data["feed"] == "tag:ana.example,2024:blog"
    assert carried.data["feed"] == "tag:digest.example,2024:digest"
    post = "tag:ana.example,2024:post-1"
    assert blog.data["extra"]["entry_id"] == carried.data["extra"]["entry_id"] == post
