"""GitHub objects -> hub events, shared by the webhook receiver and the REST poller.

A pull request, issue or review is built from the same object whichever way
it arrived (a webhook's ``pull_request`` and the REST API's pull are one
shape), so the webhook and the poller derive the same id and the same
payload for the same state.  Revisions of a pull request or an issue are
separate events (id from number, ``updated_at`` and action); all of them,
with their reviews and comments, share ``correlationid`` = the thread id
(``thread_id(repo, "pull", 2)``), which is also what a comment is ``on``.

Every event is written by ``github`` (the source principal; or the person who
ran the poll with their token): the login, name or e-mail GitHub shows as the
author is a claim of the payload (``data.author``, ``data.extra.author``),
and a map of it to a principal is recorded in ``data.extra.mapped``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ParamSpec

from ..event import Event
from ..origins import source_id
from ..schemas import Comment, Commit, Fork, Issue, Person, PullRequest, Ref, Release, Review
from .base import Item, ItemError, Principals, checked, commit_id, find_refs, link, make_event, with_mapped

__all__ = [
    "commit_event",
    "infer_action",
    "issue_comment_event",
    "issue_event",
    "pull_event",
    "review_comment_event",
    "review_event",
    "thread_id",
    "webhook_events",
]

_REVIEW_STATES = {"approved", "changes_requested", "commented", "dismissed", "pending"}
P = ParamSpec("P")
Claims = tuple[Any, ...]  #: (the Principals map, then the logins / names / e-mails GitHub gives)


def _per_item(build: Callable[P, Item]) -> Callable[P, Item]:
    """One malformed GitHub object is its own ItemError: never an exception that stops
    the poller or the rest of a push, never an event whose data breaks its schema."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Item:
        ref = f"{args[0]}: {build.__name__.removesuffix('_event').replace('_', ' ')}"
        try:
            item = build(*args, **kwargs)
        except (AttributeError, KeyError, TypeError, ValueError) as e:  # a field of the wrong shape
            return ItemError(ref, f"malformed GitHub object ({type(e).__name__}: {e})")
        return checked(item, ref)

    return wrapper


def thread_id(repo: str, kind: str, number: int) -> str:
    """The id of a pull request's / issue's conversation: its revisions' correlationid."""
    return source_id("github", repo, kind, str(number))


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # GitHub's times are UTC


def _person(user: Any) -> Person | None:
    if not isinstance(user, Mapping):
        return None
    return Person(
        login=user.get("login") or user.get("username"), name=user.get("name"), email=user.get("email")
    )


GITHUB = "github"  # the source principal that writes (and signs) what GitHub reports


def _event(
    type_: str,
    key: list[str],
    repo: str,
    subject: str,
    data: Any,
    claims: Claims,
    when: Any,
    thread: str | None = None,
) -> Event:
    """An event written by ``github``; ``claims`` (the principals map and the
    names GitHub gives for who did it) only ever reach ``data.extra.mapped``;
    ``thread``: the conversation it belongs to (its correlationid)."""
    principals, *names = claims
    assert isinstance(principals, Principals)
    with_mapped(data.extra, principals, *(n for n in names if isinstance(n, str)))
    ev = make_event(
        type_,
        id=source_id("github", repo, *key),
        source=f"github:{repo}",
        subject=subject,
        data=data,
        creator=GITHUB,
        time=_time(when),
    )
    ev.correlationid = thread
    return ev


def infer_action(obj: Mapping[str, Any]) -> str:
    """What happened last to a polled pull / issue, in webhook words where it can be known."""
    updated = obj.get("updated_at")
    if updated and updated == obj.get("created_at"):
        return "opened"
    if updated and updated == obj.get("closed_at"):
        return "closed"
    return "edited"


def _files(c: Mapping[str, Any]) -> dict[str, list[str]]:
    """A push commit's ``added`` / ``removed`` / ``modified`` paths (the kinds it has)."""
    out: dict[str, list[str]] = {}
    for kind in ("added", "removed", "modified"):
        paths = c.get(kind)
        if isinstance(paths, list) and paths:
            out[kind] = [str(p) for p in paths]
    return out


@_per_item
def commit_event(repo: str, c: Mapping[str, Any], principals: Principals, branch: str | None = None) -> Item:
    """A commit from a push payload (``id``; ``branch`` from its ref) or the REST API (``sha``)."""
    sha = c.get("sha") or c.get("id")
    inner = c.get("commit") if isinstance(c.get("commit"), Mapping) else c
    if not isinstance(sha, str) or not isinstance(inner, Mapping):
        return ItemError(f"{repo}@?", "commit without a sha")
    author = inner.get("author") or {}
    committer = inner.get("committer") or {}
    rest = "commit" in c
    login = (c.get("author") or {}).get("login") if rest else author.get("username")
    committer_login = (c.get("committer") or {}).get("login") if rest else committer.get("username")
    message = inner.get("message") or ""
    url = c.get("html_url") or c.get("url") if not rest else c.get("html_url")
    links = [link("same-as", commit_id(sha), sha), *find_refs(message)]
    files = _files(c)
    extra: dict[str, Any] = {"links": links, **files}
    data = Commit(
        repo=repo,
        sha=sha,
        message=message,
        author=Person(name=author.get("name"), email=author.get("email"), login=login),
        committer=Person(name=committer.get("name"), email=committer.get("email"), login=committer_login)
        if isinstance(committer, Mapping) and committer
        else None,
        branch=branch,
        files=[p for kind in ("added", "modified", "removed") for p in files.get(kind, [])],
        url=url,
        extra=extra,
    )
    who = (principals, login, author.get("email"), author.get("name"))
    when = author.get("date") or c.get("timestamp")
    return _event("creative.engineering.commit", ["commit", sha], repo, repo, data, who, when)


def _revision(
    kind: str, obj: Mapping[str, Any], data: Any, act: str, principals: Principals, subject: str, thread: str
) -> Event:
    """One revision of a pull request or an issue (``kind``): an event per update and action,
    in the item's thread, written by ``github`` (the author's login only reaches the claims)."""
    updated = obj.get("updated_at")
    key = [kind, str(obj["number"]), str(updated), act]
    claims = (principals, (obj.get("user") or {}).get("login"))
    return _event(f"creative.engineering.{kind}", key, data.repo, subject, data, claims, updated, thread)


@_per_item
def pull_event(repo: str, pr: Mapping[str, Any], action: str | None, principals: Principals) -> Item:
    """One revision of a pull request."""
    number = pr.get("number")
    if not isinstance(number, int) or not pr.get("title"):
        return ItemError(f"{repo}#?", "pull request without number or title")
    state = (
        "merged"
        if pr.get("merged_at")
        else "draft"
        if pr.get("draft") and pr.get("state") == "open"
        else pr["state"]
    )
    act = action or infer_action(pr)
    data = PullRequest(
        repo=repo,
        number=number,
        title=pr["title"],
        state=state,  # type: ignore[arg-type]  # one of the Literal's values, or validation names it
        author=_person(pr.get("user")),
        body=pr.get("body"),
        base=(pr.get("base") or {}).get("ref"),
        head=(pr.get("head") or {}).get("ref"),
        url=pr.get("html_url"),
        action=act,
        extra={"links": find_refs(f"{pr['title']}\n{pr.get('body') or ''}")} if pr.get("body") else {},
    )
    return _revision(
        "pull_request", pr, data, act, principals, f"{repo}/pull/{number}", thread_id(repo, "pull", number)
    )


@_per_item
def review_event(repo: str, number: int, r: Mapping[str, Any], principals: Principals) -> Item:
    """A review of pull request ``number``."""
    state = str(r.get("state", "")).lower()
    if state not in _REVIEW_STATES or not isinstance(r.get("id"), int):
        return ItemError(f"{repo}/pull/{number}", f"review with unknown state {state!r}")
    login = (r.get("user") or {}).get("login")
    thread = thread_id(repo, "pull", number)
    data = Review(
        repo=repo,
        pull_request=number,
        state=state,  # type: ignore[arg-type]  # checked against _REVIEW_STATES above
        reviewer=_person(r.get("user")),
        body=r.get("body"),
        url=r.get("html_url"),
        extra={"links": [link("on", thread, f"{repo}#{number}")]},
    )
    return _event(
        "creative.engineering.review",
        ["review", str(r["id"]), state],
        repo,
        f"{repo}/pull/{number}",
        data,
        (principals, login),
        r.get("submitted_at"),
        thread,
    )


@_per_item
def issue_event(repo: str, issue: Mapping[str, Any], action: str | None, principals: Principals) -> Item:
    """One revision of an issue."""
    number = issue.get("number")
    if not isinstance(number, int) or not issue.get("title"):
        return ItemError(f"{repo}#?", "issue without number or title")
    act = action or infer_action(issue)
    data = Issue(
        repo=repo,
        number=number,
        title=issue["title"],
        state=issue.get("state", "open"),
        author=_person(issue.get("user")),
        body=issue.get("body"),
        labels=[lb["name"] for lb in issue.get("labels") or [] if isinstance(lb, Mapping) and lb.get("name")],
        url=issue.get("html_url"),
        action=act,
    )
    return _revision(
        "issue", issue, data, act, principals, f"{repo}/issues/{number}", thread_id(repo, "issue", number)
    )


def _comment(
    repo: str,
    kind: str,
    number: int,
    c: Mapping[str, Any],
    extra: dict[str, Any],
    principals: Principals,
    key: str,
) -> Item:
    body = c.get("body")
    if not isinstance(body, str) or not body.strip() or not isinstance(c.get("id"), int):
        return ItemError(f"{repo}/{kind}/{number}", "comment without id or text")
    thread = thread_id(repo, kind, number)
    login = (c.get("user") or {}).get("login")
    extra = {
        **extra,
        "url": c.get("html_url"),
        "author": login,
        "links": [link("on", thread, f"{repo}#{number}"), *find_refs(body)],
    }
    path = "pull" if kind == "pull" else "issues"
    if c.get("updated_at") and c.get("updated_at") != c.get("created_at"):
        extra["updated_at"] = c["updated_at"]  # an edit: the revision is in the id, the time stays
    return _event(
        "creative.feedback.comment",
        [key, str(c["id"]), str(c.get("updated_at"))],
        repo,
        f"{repo}/{path}/{number}",
        Comment(on=thread, text=body, extra=extra),
        (principals, login),
        c.get("created_at") or c.get("updated_at"),  # when it was said
        thread,
    )


@_per_item
def issue_comment_event(
    repo: str, issue: Mapping[str, Any], c: Mapping[str, Any], principals: Principals
) -> Item:
    """A comment on an issue (or on a pull request's conversation)."""
    kind = "pull" if issue.get("pull_request") else "issue"
    return _comment(repo, kind, int(issue.get("number", 0)), c, {}, principals, "issue_comment")


@_per_item
def review_comment_event(repo: str, number: int, c: Mapping[str, Any], principals: Principals) -> Item:
    """A comment on a line of a pull request's diff."""
    extra = {
        k: c[k] for k in ("path", "line", "commit_id", "pull_request_review_id", "diff_hunk") if c.get(k)
    }
    return _comment(repo, "pull", number, c, extra, principals, "review_comment")


_ZERO_SHA = "0" * 40
_REF_KINDS = {"refs/heads/": "branch", "refs/tags/": "tag"}


def _pushed_at(repo_obj: Mapping[str, Any]) -> str | None:
    """``repository.pushed_at`` as epoch seconds: the time of the push a ref change came with.

    A push delivery gives it as an integer, a ``create`` / ``delete`` delivery of
    the same push as an ISO time (GitHub's own examples agree to the second), so
    both name the same change.  Only a hint: anything else is None (never a refusal)."""
    value = repo_obj.get("pushed_at")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    try:
        when = _time(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return str(int(when.timestamp())) if when is not None else None


def _canonical(payload: Mapping[str, Any]) -> str:
    """A delivery's content, however it was saved (compact, pretty-printed, via the API)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))  # ASCII: lone surrogates too
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _ref_event(
    repo: str, html: str, ref: str, kind: str, name: str, who: Claims, occurrence: list[str]
) -> Event:
    """A branch or tag created / deleted.  Each creation and deletion is its own event,
    told apart by ``occurrence`` (the push's time, else its SHAs or the delivery's content),
    never by the ref name alone: a branch deleted and made again is three events.
    A ``create`` delivery and the push that made the same branch name the same push
    (same id, same data), so that one change is stored once."""
    data = Ref(
        repo=repo,
        ref=ref,
        ref_type=kind,  # type: ignore[arg-type]  # "branch" or "tag", checked by the callers
        action="created" if name == "create" else "deleted",
        url=f"{html}/tree/{ref}",
    )
    return _event("creative.engineering.ref", [name, kind, ref, *occurrence], repo, repo, data, who, None)


def _push(
    repo: str, repo_obj: Mapping[str, Any], payload: Mapping[str, Any], principals: Principals
) -> list[Item]:
    """The commits of a push, on their branch; a branch or tag created or deleted by it, as a ref event."""
    full = str(payload.get("ref") or "")
    short, kind = full, None
    for prefix, k in _REF_KINDS.items():
        if full.startswith(prefix):
            short, kind = full.removeprefix(prefix), k
    items: list[Item] = []
    sender = (payload.get("sender") or {}).get("login") or (payload.get("pusher") or {}).get("name")
    html = repo_obj.get("html_url") or f"https://github.com/{repo}"
    created = payload.get("created") is True or payload.get("before") == _ZERO_SHA
    deleted = payload.get("deleted") is True or payload.get("after") == _ZERO_SHA
    if kind is not None and (created or deleted):
        name = "create" if created else "delete"
        at = _pushed_at(repo_obj)
        sha = payload.get("after") if created else payload.get("before")
        occurrence = ["pushed", at] if at else ["sha", str(sha)]
        items.append(_ref_event(repo, html, short, kind, name, (principals, sender), occurrence))
    branch = short if kind == "branch" else None
    items += [commit_event(repo, c, principals, branch) for c in payload.get("commits") or []]
    return items


def webhook_events(name: str, payload: Mapping[str, Any], principals: Principals) -> list[Item]:
    """Events for one webhook delivery (``X-GitHub-Event: name``); [] for events with nothing to store.

    A malformed object of a delivery is an ItemError; a payload missing what the
    event needs raises KeyError, TypeError or ValueError (the route's 422)."""
    try:
        items = _webhook_events(name, payload, principals)
    except AttributeError as e:  # a string or a list where GitHub sends an object
        raise TypeError(f"a field has the wrong shape ({e})") from None
    return [checked(i, f"{name} delivery") for i in items]


def _webhook_events(name: str, payload: Mapping[str, Any], principals: Principals) -> list[Item]:
    repo_obj = payload.get("repository") or {}
    if not isinstance(repo_obj, Mapping):
        return [ItemError(name, "payload's repository is not an object")]
    repo = repo_obj.get("full_name")
    if not isinstance(repo, str):
        return [ItemError(name, "payload has no repository.full_name")]
    sender = (payload.get("sender") or {}).get("login")
    action = payload.get("action")
    if name == "push":
        return _push(repo, repo_obj, payload, principals)
    if name == "pull_request":
        return [pull_event(repo, payload["pull_request"], action, principals)]
    if name == "pull_request_review":
        return [review_event(repo, payload["pull_request"]["number"], payload["review"], principals)]
    if name == "pull_request_review_comment":
        return [review_comment_event(repo, payload["pull_request"]["number"], payload["comment"], principals)]
    if name == "issues":
        return [issue_event(repo, payload["issue"], action, principals)]
    if name == "issue_comment":
        return [issue_comment_event(repo, payload["issue"], payload["comment"], principals)]
    html = repo_obj.get("html_url") or f"https://github.com/{repo}"
    if name in ("create", "delete"):
        ref, kind = payload.get("ref"), payload.get("ref_type")
        if kind not in ("branch", "tag"):
            return [ItemError(name, f"ref_type {kind!r} is neither branch nor tag")]
        at = _pushed_at(repo_obj)
        occurrence = ["pushed", at] if at else ["delivery", _canonical(payload)]
        return [_ref_event(repo, html, str(ref), kind, name, (principals, sender), occurrence)]
    if name == "fork":
        f = payload["forkee"]
        owner = f.get("owner") or {}
        data_f = Fork(repo=repo, fork=str(f.get("full_name")), owner=_person(owner), url=f.get("html_url"))
        who = (principals, owner.get("login"), sender)
        key = ["fork", str(f.get("full_name"))]
        return [_event("creative.engineering.fork", key, repo, repo, data_f, who, f.get("created_at"))]
    if name == "release":
        r = payload["release"]
        data_r = Release(
            repo=repo,
            tag=r["tag_name"],
            name=r.get("name"),
            body=r.get("body"),
            action=action,
            prerelease=bool(r.get("prerelease")),
            draft=bool(r.get("draft")),
            author=_person(r.get("author")),
            url=r.get("html_url"),
        )
        who = (principals, (r.get("author") or {}).get("login"), sender)
        when = r.get("published_at") or r.get("created_at")
        key = ["release", str(r.get("id")), str(action)]
        return [
            _event("creative.engineering.release", key, repo, f"{repo}@{r['tag_name']}", data_r, who, when)
        ]
    return []
