"""The index: search with filters, ranking and snippets; access at query time; rebuilds."""

from __future__ import annotations

from typing import Any

import pytest

from _world import SECRET, World
from creative_hub.access import Identity
from creative_hub.errors import NotFound, ValidationError
from creative_hub.index import HubIndex, SearchQuery
from creative_hub.index.analytics import activity, collaborators, links, open_contributions
from creative_hub.index.search import fts_query, related, search

pytestmark = pytest.mark.sqlite


async def built(world: World, name: str = "index.db", semantic: bool = False) -> HubIndex:
    ix = HubIndex(str(world.db.parent / name), semantic=semantic)
    await ix.refresh(world.hub, force=True)
    return ix


def titles(ix: HubIndex, who: Identity, **q: Any) -> list[str]:
    return [h.title for h in search(ix.store, who, SearchQuery(**q)).hits]


async def test_search_ranks_filters_and_snips(world: World) -> None:
    ix = await built(world)
    hits = search(ix.store, world.anonymous, SearchQuery(text="oven")).hits
    # A title match outranks the same word deep in a body.
    assert hits[0].title in ("Oven scene renderer", "The oven is too bright")
    assert "Gretel pushes the witch into the oven" in {h.title for h in hits}
    assert all("[" in h.snippet for h in hits)
    assert titles(ix, world.anonymous, text="oven", area="narrative") == [
        "Gretel pushes the witch into the oven"
    ]
    assert titles(ix, world.anonymous, text="oven", type="creative.engineering.issue") == [
        "The oven is too bright"
    ]
    assert titles(ix, world.anonymous, creator="dave", area="engineering") == [
        "Oven scene renderer",
        "Render the oven scene (arXiv:2101.00001)",
    ]  # no text: newest first
    assert titles(ix, world.anonymous, source="arxiv") == ["Bread ovens in folk tales"]
    assert titles(ix, world.anonymous, subject="org/tales/pull/7", text="oven") == ["Oven scene renderer"]
    window = titles(ix, world.anonymous, since="2026-03-02T10:30:00Z", until="2026-03-02T12:30:00Z")
    assert window == ["Bread ovens in folk tales", "from fear to courage"]
    assert titles(ix, world.anonymous, text='"witch into"') == ["Gretel pushes the witch into the oven"]
    assert titles(ix, world.anonymous, text="ove*", area="narrative") == [
        "Gretel pushes the witch into the oven"
    ]
    assert "Gretel pushes the witch into the oven" not in titles(ix, world.anonymous, text="oven -witch")
    page1 = search(ix.store, world.anonymous, SearchQuery(text="oven", limit=2))
    page2 = search(ix.store, world.anonymous, SearchQuery(text="oven", limit=2, offset=2))
    assert page1.more and not {h.id for h in page1.hits} & {h.id for h in page2.hits}
    ix.close()


def test_user_text_never_becomes_an_fts_syntax_error() -> None:
    assert fts_query('oven "bread trail" ove* -witch') == '("oven" "bread trail" "ove"*) NOT "witch"'
    assert fts_query("a OR b") == '"a" OR "b"'
    assert fts_query("OR OR a") == '"a"'
    assert fts_query('NEAR( ) AND : ^ "') == '"NEAR(" "AND"'  # operators are words, punctuation dropped
    assert fts_query("col:x") == '"col:x"'  # no column filters smuggled in
    with pytest.raises(ValidationError, match="q:"):
        fts_query("-only -excluded")


async def test_a_private_draft_reaches_its_owner_only(world: World) -> None:
    ix = await built(world)
    s = ix.store
    owner_view = titles(ix, world.alice, text=SECRET)
    assert owner_view == [f"Secret {SECRET} ending"]
    for who in (world.bob, world.anonymous, Identity("alice")):  # alice without a token is not alice
        assert titles(ix, who, text=SECRET) == []
        assert titles(ix, who, topic="peer.alice.drafts") == []
        assert all(h.topic != "peer.alice.drafts" for h in search(s, who, SearchQuery(limit=200)).hits)
        with pytest.raises(NotFound):
            related(s, who, world.draft_id)
        with pytest.raises(NotFound):
            await ix.get(who, world.draft_id)
        near = related(s, who, world.published_id, limit=50)
        assert world.draft_id not in {r.id for r in near}
        assert not any(SECRET in r.title for r in near)
        assert (
            sum(r.count for r in activity(s, who, by="creator") if r.key == "alice") == 1
        )  # the published one
        assert all(x.from_id != world.draft_id for x in links(s, who))
    # bob's fork is his own draft: he sees it, alice does not
    assert world.fork_id in {h.id for h in search(s, world.bob, SearchQuery(creator="bob", limit=50)).hits}
    assert world.fork_id not in {
        h.id for h in search(s, world.alice, SearchQuery(creator="bob", limit=50)).hits
    }
    assert sum(r.count for r in activity(s, world.alice, by="creator") if r.key == "alice") == 3
    assert world.draft_id in {r.id for r in related(s, world.alice, world.published_id, limit=50)}
    # The hub itself (trusted) sees everything.
    assert titles(ix, Identity("hub", trusted=True), text=SECRET) == [f"Secret {SECRET} ending"]
    ix.close()


async def test_analytics(world: World) -> None:
    ix = await built(world)
    s = ix.store
    by_area = {(r.bucket, r.key): r.count for r in activity(s, world.anonymous, by="area", bucket="day")}
    assert by_area[("2026-03-02", "engineering")] == 4
    assert by_area[("2026-03-02", "narrative")] == 3
    weekly = activity(s, world.anonymous, by="creator", bucket="week", area="engineering")
    assert {r.key: r.count for r in weekly} == {"dave": 2, "carol": 2}
    with pytest.raises(ValidationError, match="bucket"):
        activity(s, world.anonymous, bucket="fortnight")  # type: ignore[arg-type]

    pairs = {(p.a, p.b): p for p in collaborators(s, world.anonymous)}
    assert pairs[("carol", "dave")].subjects >= 2  # story:hansel, org/tales/pull/7
    ab = pairs[("alice", "bob")]
    assert (ab.contributions, ab.feedback, ab.forks) == (1, 1, 0)  # the fork is bob's private draft
    bob_view = {(p.a, p.b): p for p in collaborators(s, world.bob)}
    assert bob_view[("alice", "bob")].forks == 1  # bob may read his own fork

    found = links(s, world.anonymous, cross_source=True)
    commit_to_paper = [x for x in found if x.from_id == world.commit_id]
    assert commit_to_paper and commit_to_paper[0].to_title == "Bread ovens in folk tales"
    assert commit_to_paper[0].rel == "mentions"

    open_ = open_contributions(s, world.anonymous)
    assert [c.id for c in open_] == [world.proposal_id]
    assert open_[0].to == "alice" and open_[0].creator == "bob"
    from creative_hub.peers import PeerHub

    await PeerHub(world.hub.acting("alice", authenticated=True)).reject(world.proposal_id, "not now")
    await ix.refresh(world.hub, force=True)
    assert open_contributions(s, world.anonymous) == []
    ix.close()


async def test_catch_up_is_idempotent_and_a_rebuild_gives_the_same_answers(world: World) -> None:
    ix = await built(world)
    assert await ix.refresh(world.hub, force=True) == 0  # nothing new: nothing added
    before = ix.store.count()

    def answers(index: HubIndex) -> list[Any]:
        s = index.store
        out: list[Any] = []
        for who in (world.alice, world.bob, world.anonymous):
            for q in ("oven", "bread", SECRET, "witch OR trail", ""):
                out.append(
                    [(h.id, h.topic, h.snippet) for h in search(s, who, SearchQuery(text=q, limit=50)).hits]
                )
            out.append([r.to_dict() for r in activity(s, who, by="creator")])
            out.append([p.to_dict() for p in collaborators(s, who)])
            out.append([x.to_dict() for x in links(s, who)])
            out.append([r.to_dict() for r in related(s, who, world.published_id)])
        return out

    first = answers(ix)
    # A rebuild of the same file, and a fresh index built elsewhere, agree with it.
    assert await ix.rebuild(world.hub) == before
    assert answers(ix) == first
    other = await built(world, "other.index.db")
    assert answers(other) == first
    ix.close()
    other.close()


async def test_compaction_leaves_the_index_as_a_rebuild_would(world: World) -> None:
    from creative_hub.lineage import compact
    from creative_hub.peers import PeerHub

    alice = PeerHub(world.hub.acting("alice", authenticated=True))
    r2 = await alice.revise(world.draft_id, {"title": f"Secret {SECRET} ending, take two"})
    ix = await built(world)
    assert len(titles(ix, world.alice, text=SECRET)) == 2
    await compact(world.hub, "peer.alice.drafts")
    await ix.refresh(world.hub, force=True)
    kept = [h.id for h in search(ix.store, world.alice, SearchQuery(text=SECRET)).hits]
    fresh = await built(world, "fresh.index.db")
    assert kept == [h.id for h in search(fresh.store, world.alice, SearchQuery(text=SECRET)).hits] == [r2.id]
    ix.close()
    fresh.close()


def test_bad_arguments_name_the_field(tmp_path: Any) -> None:
    ix = HubIndex(str(tmp_path / "i.db"), semantic=False)
    who = Identity("x")
    bad = (
        (SearchQuery(limit=0), "limit"),
        (SearchQuery(offset=-1), "offset"),
        (SearchQuery(since="soon"), "since"),
    )
    for q, field in bad:
        with pytest.raises(ValidationError, match=f"^{field}:"):
            search(ix.store, who, q)
    assert search(ix.store, who, SearchQuery(text="anything")).hits == []  # an empty index is fine
    ix.close()
