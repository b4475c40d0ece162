"""The dashboard in headless Chromium (Debian's, via Playwright) against the real server.

Needs /usr/bin/chromium (scripts/install-browser.sh); Playwright's own browser
download is never used.  Screenshots go to test-artifacts/ at the repo root.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer

pytestmark = [pytest.mark.sqlite, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium: run scripts/install-browser.sh", allow_module_level=True)

from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright  # noqa: E402

# Playwright's default 5 s wait for an expectation is a timing assertion on a
# 2-core CI machine that also runs a local model and four brokers: it failed
# once in eight runs while another test ran the model.  A page that is wrong
# still fails every expectation, only after 30 s instead of 5 s.
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Tab:
    """A page with its console errors recorded."""

    def __init__(self, page: Page, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.errors.append(f"console: {msg.text}")

    def open(self, hash_: str = "") -> None:
        self.page.goto(f"{self.server.url}/dashboard/{hash_}")

    def sign_in(self, who: str) -> None:
        self.page.fill("input[name=token]", self.server.tokens[who])
        self.page.click("#signin button")
        expect(self.page.locator("#me")).to_have_text(who)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser: Browser, live: LiveServer) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    t = Tab(context.new_page(), live)
    try:
        yield t
    finally:
        context.close()


def post(server: LiveServer, who: str, path: str, body: Any) -> Any:
    r = httpx.post(server.url + path, json=body, headers=server.headers(who), timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def story(live: LiveServer) -> dict[str, str]:
    """alice's draft, its publication, bob's proposal on it (open), and a feedback."""
    tag = uuid.uuid4().hex[:6]
    data = {"story": tag, "title": f"The lantern {tag}", "text": "A light in the wood."}
    draft = post(
        live,
        "alice",
        "/v1/peers/alice/drafts",
        {"type": "creative.narrative.fragment", "subject": f"story:{tag}", "data": data},
    )
    secret = post(
        live,
        "alice",
        "/v1/peers/alice/drafts",
        {
            "type": "creative.narrative.fragment",
            "subject": f"story:{tag}-secret",
            "data": {"story": tag, "title": f"Secret plan {tag}", "text": "..."},
        },
    )
    published = post(live, "alice", f"/v1/drafts/{draft['id']}/publish", None)
    proposal = post(
        live,
        "bob",
        "/v1/peers/alice/contributions",
        {"on": published["id"], "title": f"Brighter lantern {tag}", "changes": {"text": "A blaze."}},
    )
    post(live, "carol", f"/v1/events/{published['id']}/feedback", {"text": "Lovely light.", "rating": 4})
    return {
        "tag": tag,
        "draft": draft["id"],
        "secret_title": f"Secret plan {tag}",
        "secret": secret["id"],
        "published": published["id"],
        "proposal": proposal["id"],
        "proposal_title": f"Brighter lantern {tag}",
    }


def test_pages_load_without_console_errors(tab: Tab, story: dict[str, str], live: LiveServer) -> None:
    tab.open("#/stream/creative.narrative")
    expect(tab.page.locator(".status")).to_have_text("live")
    expect(tab.page.locator("#live-events li").first).to_be_visible()
    tab.shot("stream")
    tab.open(f"#/event/{story['published']}")
    expect(tab.page.locator("#lineage svg .node").first).to_be_visible()
    expect(tab.page.locator("#shaped-by tr", has_text="alice")).to_contain_text("person")
    tab.shot("event-lineage")
    tab.open("#/activity")
    expect(tab.page.locator("[data-chart=area] svg rect").first).to_be_visible()
    tab.shot("activity")
    tab.open("#/activity/24/event")  # by when it happened: the events' own times
    expect(tab.page.locator("[aria-label=Clock]")).to_have_value("event")
    expect(tab.page.locator("[data-chart=area] svg rect").first).to_be_visible()
    tab.open("#/peers")
    expect(tab.page.get_by_text("alice").first).to_be_visible()
    tab.open("#/peer/alice")
    expect(tab.page.get_by_text(story["proposal_title"])).to_be_visible()
    tab.page.set_viewport_size({"width": 390, "height": 844})  # a phone
    tab.open("#/stream/creative.narrative")
    expect(tab.page.locator("#live-events li").first).to_be_visible()
    tab.shot("stream-narrow")
    width = tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a narrow screen ({width}px)"
    assert tab.errors == []


def test_event_detail_shows_the_model_and_the_inputs(
    tab: Tab, story: dict[str, str], live: LiveServer
) -> None:
    # A person declaring the model that helped: shown with the event, its inputs linked.
    body = {
        "type": "creative.feedback.comment",
        "data": {"on": story["published"], "text": "Drafted with a model's help."},
        "model": "gpt-4o-mini",
        "modelprovider": "openai",
        "inputs": story["published"],
    }
    (receipt,) = post(live, "carol", "/v1/events", body)
    tab.open(f"#/event/{receipt['id']}")
    expect(tab.page.locator("dd", has_text="openai/gpt-4o-mini")).to_be_visible()
    expect(tab.page.locator(f"dd a[href='#/event/{story['published']}']")).to_be_visible()
    expect(tab.page.locator("#shaped-by tr", has_text="carol")).to_contain_text("person")
    assert tab.errors == []


def test_an_event_published_through_the_api_appears_live(tab: Tab, live: LiveServer) -> None:
    tab.open("#/stream/creative.narrative")
    expect(tab.page.locator(".status")).to_have_text("live")
    title = f"Fresh off the press {uuid.uuid4().hex[:6]}"
    event = {
        "type": "creative.narrative.fragment",
        "subject": "story:press",
        "data": {"story": "press", "title": title, "text": "..."},
    }
    post(live, "carol", "/v1/events", event)
    expect(tab.page.locator("#live-events li").first).to_contain_text(title, timeout=2000)
    assert tab.errors == []


def test_the_owner_accepts_a_contribution_with_a_click(
    tab: Tab, story: dict[str, str], live: LiveServer
) -> None:
    tab.open("#/peer/alice")
    tab.sign_in("alice")
    card = tab.page.locator(f"#open-contributions .card[data-id='{story['proposal']}']")
    expect(card).to_be_visible()
    expect(tab.page.locator("#peer-drafts")).to_be_visible()  # the owner sees her drafts
    tab.shot("peer-owner-before")
    card.locator("button[data-action=accept]").click()
    decided = tab.page.locator("#decided-contributions .card", has_text=story["proposal_title"])
    expect(decided.locator(".badge.accepted")).to_be_visible()
    expect(card).to_have_count(0)
    # The accepted change is now alice's newest published revision.
    expect(tab.page.locator("#peer-published li").first).to_contain_text(f"The lantern {story['tag']}")
    tab.shot("peer-owner-after")
    page = httpx.get(live.url + "/v1/topics/peer.alice.contributions/events?limit=1000").json()
    decisions = [e for e in page["events"] if e["event"].get("causationid") == story["proposal"]]
    assert [d["event"]["type"] for d in decisions] == ["creative.contributions.accepted"]
    assert tab.errors == []


@pytest.mark.parametrize("who", ["bob", None], ids=["bob", "anonymous"])
def test_a_non_owner_sees_no_drafts(tab: Tab, story: dict[str, str], who: str | None) -> None:
    tab.open("#/peer/alice")
    if who:
        tab.sign_in(who)
    expect(tab.page.locator("#peer-published")).to_be_visible()
    expect(tab.page.locator("#peer-drafts")).to_have_count(0)
    assert story["secret_title"] not in tab.page.content()
    assert not any("drafts" in url for url in tab.requests)  # not even asked for
    assert not tab.page.locator("button[data-action=accept]").count()  # no decisions for others
    tab.shot(f"peer-as-{who or 'anonymous'}")
    tab.open(f"#/event/{story['secret']}")
    expect(tab.page.get_by_text("Not found (or not yours to see).")).to_be_visible()
    assert story["secret_title"] not in tab.page.content()
