"""The storyline page in headless Chromium against the real server (``creative-hub up``).

* the shared Grimm tales ingested from their files with ``creative-hub ingest story``: one SVG line
  per character the outline found, the parts shown as bands, a click on a character highlighting its
  journey (its line, its plot points, the journey panel);
* a story built live: a person publishes fragments one by one over the API and the page (opened
  before the first one) redraws over SSE, never reloading;
* a phone-sized screen: the chart scrolls inside its box, the page does not scroll sideways.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer
from playwright.sync_api import Browser, expect
from test_dashboard import ARTIFACTS, Tab, browser, post  # noqa: F401 -- browser is a fixture

pytestmark = [pytest.mark.sqlite, pytest.mark.browser]


@pytest.fixture
def tab(browser: Browser, live: LiveServer) -> Any:  # noqa: F811
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    t = Tab(context.new_page(), live)
    try:
        yield t
    finally:
        context.close()


def _tales() -> list[Path]:
    here = Path(__file__).resolve().parents[2]
    fixtures = Path(os.environ.get("CREATIVE_HUB_FIXTURES", here.parent / "shared" / "fixtures"))
    files = sorted((fixtures / "story-gold").glob("*.txt"))
    assert len(files) == 3
    return files


@pytest.fixture(scope="module")
def outlines() -> dict[str, dict[str, Any]]:
    """What ``creative-hub story outline --json`` finds in each gold tale, read from the file alone."""
    out = {}
    for f in _tales():
        cmd = [sys.executable, "-m", "creative_hub", "story", "outline", "--json", str(f)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        out[f.stem] = json.loads(done.stdout)
    return out


@pytest.fixture(scope="module")
def grimm(live: LiveServer) -> dict[str, dict[str, Any]]:
    """The three gold tales, ingested from their files; their storylines as the API gives them."""
    files = _tales()
    cmd = [sys.executable, "-m", "creative_hub", "ingest", "story", *map(str, files), "--log", live.log_url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    listed = httpx.get(live.url + "/v1/stories", timeout=30).json()
    out = {}
    for f in files:
        (row,) = [
            s for s in listed if _norm(s["story"]) in _norm(f.stem) or _norm(f.stem) in _norm(s["story"])
        ]
        out[f.stem] = httpx.get(live.url + f"/v1/stories/{row['story']}", timeout=30).json()
    return out


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _placed(story: dict[str, Any]) -> list[str]:
    """The characters that are in at least one scene (each gets a line)."""
    return [
        c["name"] for c in story["characters"] if any(c["name"] in s["characters"] for s in story["scenes"])
    ]


def test_grimm_storylines_one_line_per_character(
    tab: Tab, grimm: dict[str, dict[str, Any]], outlines: dict[str, dict[str, Any]]
) -> None:
    for stem, story in grimm.items():
        placed = _placed(story)
        assert placed, f"{stem}: the outline placed no character in a scene"
        # The lines are the characters the outline found (each in some scene), no more, no fewer:
        # a plot point's wording of its actor ("Hansel and Gretel") is not one more character.
        outline = outlines[stem]
        in_scenes = {c for p in outline["parts"] for sc in p["scenes"] for c in sc["characters"]}
        assert sorted(placed) == sorted(c["name"] for c in outline["characters"] if c["name"] in in_scenes)
        tab.open(f"#/story/{story['story']}")
        chart = tab.page.locator("#storyline svg")
        expect(chart).to_be_visible()
        expect(chart.locator("path.char-line")).to_have_count(len(placed))
        lines = chart.locator("path.char-line")
        assert sorted(lines.evaluate_all("els => els.map(e => e.dataset.character)")) == sorted(placed)
        expect(chart.locator(".part-band")).to_have_count(max(1, len(story["parts"])))
        expect(tab.page.locator("#plot-points li")).to_have_count(len(story["plot_points"]))
        tab.shot(f"story-{stem}")
    assert tab.errors == []


def test_clicking_a_character_highlights_its_journey(tab: Tab, grimm: dict[str, dict[str, Any]]) -> None:
    story = next(s for stem, s in grimm.items() if "hansel" in stem)
    who = max(_placed(story), key=lambda c: sum(c in p["characters"] for p in story["plot_points"]))
    mine = [p for p in story["plot_points"] if who in p["characters"]]
    assert mine, f"{who} has no plot point: nothing to highlight"
    tab.open(f"#/story/{story['story']}")
    chart = tab.page.locator("#storyline svg")
    expect(chart.locator("path.char-line")).to_have_count(len(_placed(story)))
    tab.page.locator(f"#storyline text.char-label[data-character='{who}']").click()
    expect(chart).to_have_class("focused")
    expect(chart.locator("path.char-line.on")).to_have_count(1)
    assert chart.locator("path.char-line.on").get_attribute("data-character") == who
    expect(tab.page.locator("#journey")).to_be_visible()
    expect(tab.page.locator("#journey h2")).to_have_text(f"{who}'s journey")
    expect(tab.page.locator("#journey li")).to_have_count(len(mine))
    expect(tab.page.locator("#plot-points li.on")).to_have_count(len(mine))
    tab.shot("story-journey")
    tab.page.screenshot(path=str(ARTIFACTS / "storyline.png"))  # the README's docs/storyline.png
    tab.page.locator(f"#cast button[data-character='{who}']").click()  # again: off
    expect(chart.locator("path.char-line.on")).to_have_count(0)
    expect(tab.page.locator("#journey")).to_be_hidden()
    assert tab.errors == []


def test_a_live_story_updates_without_reload(tab: Tab, live: LiveServer) -> None:
    story = f"live-{uuid.uuid4().hex[:6]}"
    tab.open(f"#/story/{story}")
    expect(tab.page.locator("#story-waiting")).to_be_visible()
    expect(tab.page.locator(".status")).to_have_text("live")
    tab.page.evaluate("window.__sameDocument = true")
    scenes = [
        ("At the well", ["Ida", "Frog"], "Ida dropped her golden ball into the well. The frog fetched it."),
        (
            "At the table",
            ["Ida", "Frog", "King"],
            "The frog ate from Ida's plate. The king made her keep her word.",
        ),
        ("In the chamber", ["Frog", "Prince"], "The frog became a prince."),
    ]
    for i, (title, chars, text) in enumerate(scenes):
        data = {
            "story": story,
            "title": title,
            "text": text,
            "order": i,
            "scene": str(i + 1),
            "characters": chars,
        }
        post(
            live,
            "carol",
            "/v1/events",
            {"type": "creative.narrative.fragment", "subject": f"story:{story}", "data": data},
        )
        names = {c for _, cs, _ in scenes[: i + 1] for c in cs}
        expect(tab.page.locator("#storyline path.char-line")).to_have_count(len(names), timeout=30_000)
        expect(tab.page.locator("#storyline rect.meet")).to_have_count(i + 1)
    point = {"story": story, "summary": "Ida threw the frog against the wall.", "actor": "Ida", "scene": "3"}
    post(
        live,
        "carol",
        "/v1/events",
        {"type": "creative.narrative.plot_point", "subject": f"story:{story}", "data": point},
    )
    expect(tab.page.locator("#plot-points li")).to_have_count(1, timeout=30_000)
    expect(tab.page.locator("#storyline path.char-line[data-character='Ida']")).to_have_count(1)
    assert tab.page.evaluate("window.__sameDocument") is True, "the page reloaded"
    # The continuity check posts on the writer's feedback stream: the page follows that one too.
    feedback = "/v1/topics/peer.carol.feedback/stream"
    for _ in range(300):  # up to 30 s, as the expectations above
        if any(feedback in u for u in tab.requests):
            break
        tab.page.wait_for_timeout(100)
    assert any(feedback in u for u in tab.requests), "the page does not follow carol's feedback"
    tab.shot("story-live")
    assert tab.errors == []


def test_the_story_page_fits_a_phone(tab: Tab, grimm: dict[str, dict[str, Any]]) -> None:
    story = next(s for stem, s in grimm.items() if "hansel" in stem)
    tab.page.set_viewport_size({"width": 390, "height": 844})
    tab.open(f"#/story/{story['story']}")
    expect(tab.page.locator("#storyline svg")).to_be_visible()
    expect(tab.page.locator("#storyline svg path.char-line")).to_have_count(len(_placed(story)))
    width = tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a narrow screen ({width}px)"
    tab.shot("story-narrow")
    tab.open("#/stories")
    expect(tab.page.locator("#stories a", has_text=story["title"])).to_be_visible()
    assert tab.errors == []


def test_revisions_and_forks_of_a_story(tab: Tab, live: LiveServer) -> None:
    """alice publishes a scene, accepts bob's change to it (a revision), carol forks and publishes it:
    the story page lists the revision and the fork, who made each and of what, and draws the newest
    text; the draft that never went out stays out of everyone else's page."""
    story = f"lamp-{uuid.uuid4().hex[:6]}"
    frag = {"story": story, "title": "The lamp", "text": "A lamp in the wood.", "order": 0, "scene": "1",
            "characters": ["Ida"]}  # fmt: skip
    body = {"type": "creative.narrative.fragment", "subject": f"story:{story}", "data": frag}
    draft = post(live, "alice", "/v1/peers/alice/drafts", body)
    published = post(live, "alice", f"/v1/drafts/{draft['id']}/publish", None)
    change = {"on": published["id"], "title": "A brighter lamp", "changes": {"text": "A blazing lamp."}}
    proposal = post(live, "bob", "/v1/peers/alice/contributions", change)
    accepted = post(live, "alice", f"/v1/contributions/{proposal['id']}/accept", {"reason": "yes"})
    revision = next(r for r in accepted if r["topic"].startswith("peer.alice.published"))
    fork = post(live, "carol", f"/v1/events/{revision['id']}/fork", {})
    carols = post(live, "carol", f"/v1/drafts/{fork['id']}/publish", None)
    secret = {**body, "data": {**frag, "title": "Unsent", "text": "Nobody reads this.", "scene": "9"}}
    post(live, "alice", "/v1/peers/alice/drafts", secret)

    view = httpx.get(live.url + f"/v1/stories/{story}", timeout=30).json()
    changes = {(r["relation"], r["creator"], r["of"]) for r in view["revisions"]}
    assert ("revision", "alice", published["id"]) in changes
    assert ("fork", "carol", revision["id"]) in changes
    assert len(view["revisions"]) == 2, "a publication whose draft nobody else sees is no change"
    mine = httpx.get(live.url + f"/v1/stories/{story}", headers=live.headers("alice"), timeout=30).json()
    assert ("published", "alice", draft["id"]) in {
        (r["relation"], r["creator"], r["of"]) for r in mine["revisions"]
    }
    assert "Unsent" not in str(view)
    tab.open(f"#/story/{story}")
    items = tab.page.locator("#revisions li")
    expect(items.filter(has_text="fork")).not_to_have_count(0)
    expect(items.filter(has_text="revision")).not_to_have_count(0)
    expect(items.filter(has_text="carol")).not_to_have_count(0)
    expect(tab.page.locator(f"#revisions a[href='#/event/{carols['id']}']")).to_have_count(1)
    assert "A blazing lamp." in str(view["scenes"]) and "A lamp in the wood." not in str(view["scenes"])
    tab.shot("story-revisions")
    assert tab.errors == []


def test_insights_on_the_story_page(tab: Tab, live: LiveServer) -> None:
    """An insight about the story (as an agent publishes one: model, provider, inputs) is on the page
    with its provenance, and its flagged finding sits on the plot point it names."""
    story = f"oven-{uuid.uuid4().hex[:6]}"
    frag = {"story": story, "title": "The oven", "text": "Gretel pushed the witch.", "order": 0,
            "scene": "1", "characters": ["Gretel", "witch"]}  # fmt: skip
    post(live, "carol", "/v1/events", {"type": "creative.narrative.fragment", "subject": f"story:{story}",
                                       "data": frag})  # fmt: skip
    point = {
        "story": story,
        "summary": "Gretel pushed the witch into the oven.",
        "actor": "Gretel",
        "scene": "1",
    }
    (pp,) = post(live, "carol", "/v1/events", {"type": "creative.narrative.plot_point",
                                               "subject": f"story:{story}", "data": point})  # fmt: skip
    finding = {"statement": "P1 needs: an oven", "plot_points": [pp["id"]], "established": False,
               "flag": "unexplained_turn", "evidence": ["Gretel pushed the witch."]}  # fmt: skip
    insight = {
        "type": "creative.narrative.insight",
        "subject": f"story:{story}",
        "model": "SmolLM2-135M-Instruct",
        "modelprovider": "local",
        "inputs": pp["id"],
        "data": {
            "story": story,
            "kind": "causal",
            "summary": "1 key plot point checked",
            "findings": [finding],
        },
    }
    (made,) = post(live, "carol", "/v1/events", insight)
    tab.open(f"#/story/{story}")
    card = tab.page.locator("#insights .card[data-kind='causal']")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("P1 needs: an oven")
    expect(card).to_contain_text("local/SmolLM2-135M-Instruct")
    expect(card).to_contain_text("from 1 input")
    expect(card.locator(f"a[href='#/event/{made['id']}']")).to_have_count(1)  # its lineage
    flag = tab.page.locator(f"#plot-points li[data-id='{pp['id']}'] .flag.unexplained_turn")
    expect(flag).to_contain_text("P1 needs: an oven")
    assert tab.errors == []
