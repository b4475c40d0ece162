"""The GitHub MCP server: repositories, commits, pull requests, reviews and issues.

Everything comes from ``creative.engineering.*`` events already in the hub
(ingested by the GitHub and git connectors), read from the index as the
caller.  A pull request or issue has one event per revision; the views show
the newest revision of each.  ``related_work`` follows the links the
connectors wrote (``extra["links"]``: a commit message naming an arXiv id or
a DOI, a story citing a commit) to papers, stories and the rest.
"""

# No ``from __future__ import annotations``: the SDK reads the tools' type hints.

from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from pydantic import BaseModel, Field

from ..access import Identity, can_read
from ..errors import NotFound
from ..event import Event
from ..index.search import iso, to_ms
from .common import HubState, tool_errors

__all__ = ["build_github_server"]

Limit = Annotated[int, Field(ge=1, le=500, description="At most this many results")]
Repo = Annotated[str, Field(min_length=1, description="owner/name")]
REPO = "json_extract(CAST(d.body AS TEXT), '$.data.repo')"


class RepoOut(BaseModel):
    repo: str
    commits: int
    pull_requests: int = Field(description="Pull request revisions (events)")
    reviews: int
    issues: int = Field(description="Issue revisions (events)")
    last: str = Field(description="Time of the newest event, RFC 3339")


class ReposOut(BaseModel):
    repos: list[RepoOut]


class CommitOut(BaseModel):
    id: str
    sha: str
    message: str
    author: str | None
    branch: str | None
    time: str | None
    url: str | None
    files: list[str]


class CommitsOut(BaseModel):
    repo: str
    commits: list[CommitOut]


class PullOut(BaseModel):
    id: str
    number: int
    title: str
    state: str
    author: str | None
    base: str | None
    head: str | None
    url: str | None
    updated: str | None
    reviews: int


class PullsOut(BaseModel):
    repo: str
    pull_requests: list[PullOut]


class ReviewOut(BaseModel):
    id: str
    pull_request: int
    state: str
    reviewer: str | None
    body: str | None
    time: str | None


class ReviewsOut(BaseModel):
    repo: str
    reviews: list[ReviewOut]


class IssueOut(BaseModel):
    id: str
    number: int
    title: str
    state: str
    author: str | None
    labels: list[str]
    url: str | None
    updated: str | None


class IssuesOut(BaseModel):
    repo: str
    issues: list[IssueOut]


class WorkLinkOut(BaseModel):
    from_id: str
    from_title: str
    rel: str
    to_id: str
    to_ref: str
    to_type: str | None = Field(
        description="None when the linked event is not in the hub (or not yours to see)"
    )
    to_title: str | None
    direction: Literal["outgoing", "incoming"]


class RelatedWorkOut(BaseModel):
    repo: str
    links: list[WorkLinkOut]


def _who(p: Any) -> str | None:
    if isinstance(p, dict):
        return p.get("login") or p.get("name") or p.get("email")
    return None


def _time(e: Event) -> str | None:
    return e.time.isoformat().replace("+00:00", "Z") if e.time else None


def build_github_server(hub_state: HubState) -> MCPServer:
    """The ``creative-hub-github`` MCP server over ``state``."""
    server = hub_state.server(
        "creative-hub-github",
        "GitHub work in the hub: repos, commits, pull requests, reviews, issues, and the papers "
        "and stories they link to.",
    )

    async def events(
        type_: str, repo: str, extra: str = "", args: tuple[Any, ...] = (), limit: int = 500
    ) -> list[Event]:
        ix = await hub_state.fresh()
        where = f"d.type = ? AND {REPO} = ?{extra}"
        found = await ix.events(
            hub_state.caller().identity, where, (type_, repo, *args), limit=limit, newest=True
        )
        return [e for _, e in found]

    def latest(items: list[Event], key: str) -> list[Event]:
        """The newest revision of each pull request / issue (``items`` newest first)."""
        seen: set[Any] = set()
        out = []
        for e in items:
            if e.data.get(key) not in seen:
                seen.add(e.data.get(key))
                out.append(e)
        return out

    @server.tool()
    @tool_errors
    async def list_repos() -> ReposOut:
        """Repositories with GitHub / git activity in the hub, with counts per kind."""
        ix = await hub_state.fresh()
        # Counts over many events: grants on someone's drafts do not count (nobody audits a count).
        topics = ix.store.readable(hub_state.caller().identity.without_grants())
        if not topics:
            return ReposOut(repos=[])
        rows = ix.store.query(
            f"SELECT {REPO} AS r, d.type, count(DISTINCT d.id), max(d.time_ms) FROM docs d "
            f"WHERE d.area = 'engineering' AND d.topic IN ({','.join('?' * len(topics))}) "
            "GROUP BY r, d.type",
            topics,
        )
        repos: dict[str, RepoOut] = {}
        for repo, type_, n, last in rows:
            if not repo:
                continue
            r = repos.setdefault(
                repo, RepoOut(repo=repo, commits=0, pull_requests=0, reviews=0, issues=0, last="")
            )
            kind = type_.rsplit(".", 1)[-1]
            field = {
                "commit": "commits",
                "pull_request": "pull_requests",
                "review": "reviews",
                "issue": "issues",
            }
            if kind in field:
                setattr(r, field[kind], getattr(r, field[kind]) + n)
            r.last = max(r.last, iso(last))
        return ReposOut(repos=sorted(repos.values(), key=lambda r: r.last, reverse=True))

    @server.tool()
    @tool_errors
    async def commits(
        repo: Repo,
        author: Annotated[str | None, Field(description="Login, name or e-mail")] = None,
        since: Annotated[str | None, Field(description="ISO 8601 time")] = None,
        until: Annotated[str | None, Field(description="ISO 8601 time")] = None,
        limit: Limit = 50,
    ) -> CommitsOut:
        """Commits of a repository, newest first."""
        extra, args = "", list[Any]()
        lo, hi = to_ms(since, "since"), to_ms(until, "until")
        if lo is not None:
            extra, args = extra + " AND d.time_ms >= ?", [*args, lo]
        if hi is not None:
            extra, args = extra + " AND d.time_ms < ?", [*args, hi]
        out = []
        for e in await events("creative.engineering.commit", repo, extra, tuple(args), limit=5000):
            d = e.data
            who = _who(d.get("author"))
            if author and author.lower() not in {str(v).lower() for v in (d.get("author") or {}).values()}:
                continue
            out.append(
                CommitOut(
                    id=e.id,
                    sha=d["sha"],
                    message=d.get("message", ""),
                    author=who,
                    branch=d.get("branch"),
                    time=_time(e),
                    url=d.get("url"),
                    files=d.get("files", []),
                )
            )
            if len(out) >= limit:
                break
        return CommitsOut(repo=repo, commits=out)

    @server.tool()
    @tool_errors
    async def pull_requests(
        repo: Repo,
        state: Annotated[
            Literal["open", "closed", "merged", "draft"] | None, Field(description="Only this")
        ] = None,
        limit: Limit = 50,
    ) -> PullsOut:
        """Pull requests of a repository (newest revision of each), most recently updated first."""
        reviews_by_pr: dict[int, int] = {}
        for r in await events("creative.engineering.review", repo):
            reviews_by_pr[r.data["pull_request"]] = reviews_by_pr.get(r.data["pull_request"], 0) + 1
        out = []
        for e in latest(await events("creative.engineering.pull_request", repo), "number"):
            d = e.data
            if state and d.get("state") != state:
                continue
            out.append(
                PullOut(
                    id=e.id,
                    number=d["number"],
                    title=d["title"],
                    state=d["state"],
                    author=_who(d.get("author")),
                    base=d.get("base"),
                    head=d.get("head"),
                    url=d.get("url"),
                    updated=_time(e),
                    reviews=reviews_by_pr.get(d["number"], 0),
                )
            )
        return PullsOut(repo=repo, pull_requests=out[:limit])

    @server.tool()
    @tool_errors
    async def reviews(
        repo: Repo,
        number: Annotated[int | None, Field(ge=1, description="Only this pull request")] = None,
        limit: Limit = 100,
    ) -> ReviewsOut:
        """Reviews of a repository's pull requests, newest first."""
        out = []
        for e in await events("creative.engineering.review", repo):
            d = e.data
            if number is not None and d.get("pull_request") != number:
                continue
            out.append(
                ReviewOut(
                    id=e.id,
                    pull_request=d["pull_request"],
                    state=d["state"],
                    reviewer=_who(d.get("reviewer")),
                    body=d.get("body"),
                    time=_time(e),
                )
            )
        return ReviewsOut(repo=repo, reviews=out[:limit])

    @server.tool()
    @tool_errors
    async def issues(
        repo: Repo,
        state: Annotated[Literal["open", "closed"] | None, Field(description="Only this state")] = None,
        label: str | None = None,
        limit: Limit = 50,
    ) -> IssuesOut:
        """Issues of a repository (newest revision of each), most recently updated first."""
        out = []
        for e in latest(await events("creative.engineering.issue", repo), "number"):
            d = e.data
            if (state and d.get("state") != state) or (label and label not in d.get("labels", [])):
                continue
            out.append(
                IssueOut(
                    id=e.id,
                    number=d["number"],
                    title=d["title"],
                    state=d["state"],
                    author=_who(d.get("author")),
                    labels=d.get("labels", []),
                    url=d.get("url"),
                    updated=_time(e),
                )
            )
        return IssuesOut(repo=repo, issues=out[:limit])

    @server.tool()
    @tool_errors
    async def related_work(
        repo: Repo,
        sha: Annotated[str | None, Field(description="Only this commit")] = None,
        number: Annotated[int | None, Field(ge=1, description="Only this pull request / issue")] = None,
    ) -> RelatedWorkOut:
        """Papers, stories and other work linked from or to a repository's events (or one commit / PR)."""
        ix = await hub_state.fresh()
        who = hub_state.caller().identity.without_grants()  # link views: no grant reads (unaudited)
        cond, args = f"d.area = 'engineering' AND {REPO} = ?", list[Any]([repo])
        if sha:
            cond += " AND json_extract(CAST(d.body AS TEXT), '$.data.sha') LIKE ?"
            args.append(sha.lower() + "%")
        if number is not None:
            cond += " AND (json_extract(CAST(d.body AS TEXT), '$.data.number') = ? OR "
            cond += "json_extract(CAST(d.body AS TEXT), '$.data.pull_request') = ?)"
            args += [number, number]
        mine = ix.store.query(f"SELECT d.rowid, d.id, d.title, d.topic FROM docs d WHERE {cond}", args)
        mine = [r for r in mine if can_read(who, r[3])]
        if not mine and (sha or number is not None):
            raise NotFound(f"nothing in {repo} for {'commit ' + sha if sha else f'#{number}'}")
        return RelatedWorkOut(repo=repo, links=_links(ix.store, who, mine))

    return server


def _links(store: Any, who: Identity, mine: list[Any]) -> list[WorkLinkOut]:
    """Links out of and into the given engineering documents, to non-engineering work."""
    out: list[WorkLinkOut] = []
    seen: set[tuple[str, str, str]] = set()
    by_rowid = {r[0]: r for r in mine}
    ids = {r[1]: r for r in mine}
    for chunk_start in range(0, len(mine), 500):
        chunk = mine[chunk_start : chunk_start + 500]
        marks = ",".join("?" * len(chunk))
        outgoing = store.query(
            f"SELECT l.doc, l.rel, l.target, l.ref, t.type, t.title, t.topic, t.area FROM links l "
            f"LEFT JOIN docs t ON t.id = l.target WHERE l.doc IN ({marks})",
            [r[0] for r in chunk],
        )
        for doc, rel, target, ref, ttype, ttitle, ttopic, tarea in outgoing:
            visible = ttopic is not None and can_read(who, ttopic)
            if visible and tarea == "engineering":
                continue  # a commit's same-as twin, a review's pull request: not "related work"
            key = (by_rowid[doc][1], rel, target)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                WorkLinkOut(
                    from_id=by_rowid[doc][1],
                    from_title=by_rowid[doc][2],
                    rel=rel,
                    to_id=target,
                    to_ref=ref,
                    to_type=ttype if visible else None,
                    to_title=ttitle if visible else None,
                    direction="outgoing",
                )
            )
        incoming = store.query(
            f"SELECT l.target, l.rel, d.id, d.type, d.title, d.topic, d.area FROM links l "
            f"JOIN docs d ON d.rowid = l.doc WHERE l.target IN ({marks})",
            [r[1] for r in chunk],
        )
        for target, rel, sid, stype, stitle, stopic, sarea in incoming:
            if sarea == "engineering" or not can_read(who, stopic):
                continue
            key = (sid, rel, target)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                WorkLinkOut(
                    from_id=target,
                    from_title=ids[target][2],
                    rel=rel,
                    to_id=sid,
                    to_ref="",
                    to_type=stype,
                    to_title=stitle,
                    direction="incoming",
                )
            )
    return out
