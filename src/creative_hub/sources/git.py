"""Local git repositories: commits (author, message, files, line stats), branches and tags.

Reads through the ``git`` command (no library: git itself is the reference
parser).  Event ids come from the commit sha alone (``commit_id``), so two
clones of one repository give the same events, and a story file in the
repository can link to the commit that last touched it.  The repository is
named by its origin (or its first root commit), never by where it lies.
Events are written by ``git`` (or the person who ran the ingest); the author
and committer are claims of the commit (``data.author``), and a ``--map`` of
them to principals is recorded in ``data.extra.mapped``.

    GitSource(".", principals=Principals({"ada@example.org": "ada"}))
    GitSource(".", state=Path(".hub-git.json"))   # next run reads only new commits

Incremental: with ``state``, the tips of every ref are saved after a run and
the next run asks git only for commits not reachable from them.  Without it
the whole history is read again and the hub stores nothing twice.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from ..errors import ValidationError
from ..origins import source_id
from ..schemas import Commit, Person, Ref
from .base import Item, ItemError, Principals, commit_id, find_refs, make_event, with_mapped

__all__ = ["GIT", "GitSource", "MAX_FILES", "git", "repo_name"]

GIT = "git"  # the source principal that writes (and signs) commits and refs

MAX_FILES = 1000  # file paths kept per commit; a vendoring commit must not blow the event size limit
_SHA = re.compile(r"[0-9a-f]{4,64}")  # what Commit.sha accepts (git gives 40 or 64)
_RS, _US = "\x1e", "\x1f"  # record / unit separators: never in a sane commit message
_FORMAT = _RS + _US.join(["%H", "%P", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%B"]) + _US


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its stdout as text (invalid UTF-8 replaced)."""
    try:
        r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise ValidationError("git", "the git command is not installed") from None
    if r.returncode != 0:
        msg = r.stderr.decode("utf-8", "replace").strip()
        raise ValidationError("path", f"{repo}: git {args[0]} failed: {msg}")
    return r.stdout.decode("utf-8", "replace")


def repo_name(repo: Path) -> str:
    """The repository's own identity, never where it lies: ``github.com/owner/name``
    from an origin remote on a network host, else ``local/<first root commit>``
    (the same in every copy and clone of it; ``local/<directory>`` while it has
    no commit)."""
    try:
        url = git(repo, "config", "--get", "remote.origin.url").strip()
    except ValidationError:
        url = ""
    local = not url or url.startswith(("/", ".", "~", "file:")) or re.match(r"^[A-Za-z]:[\\/]", url)
    if not local:
        m = re.match(r"^(?:[a-z+]+://)?(?:[^@/]+@)?([^/:]+)[:/](.+?)(?:\.git)?/?$", url)
        if m:
            return f"{m.group(1)}/{m.group(2)}"
    try:
        roots = sorted(git(repo, "rev-list", "--max-parents=0", "--all").split())
    except ValidationError:
        roots = []
    if roots:
        return f"local/{roots[0][:12]}"
    top = git(repo, "rev-parse", "--show-toplevel").strip()
    return f"local/{Path(top).name}"


class GitSource:
    """Commits of a local repository, oldest first."""

    name = "git"

    def __init__(
        self,
        path: Path | str,
        *,
        principals: Principals | None = None,
        rev: str = "--all",
        state: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.principals = principals or Principals()
        self.rev = rev
        self.state = state
        self._tips: list[str] = []

    def _web_base(self, repo: str) -> str | None:
        # Commit pages are only knowable for the forges whose URL shape we know.
        if repo.startswith(("github.com/", "gitlab.com/", "codeberg.org/")):
            return f"https://{repo}/commit/"
        return None

    async def iter_items(self) -> AsyncIterator[Item]:
        """One commit event per commit; a commit git cannot describe is an ItemError."""
        if not self.path.exists():
            raise ValidationError("path", f"{self.path}: no such directory")
        repo = repo_name(self.path)
        web = self._web_base(repo)
        self._tips = sorted(set(git(self.path, "for-each-ref", "--format=%(objectname)").split()))
        exclude = self._load_state()
        args = ["log", "--reverse", "--no-renames", "--numstat", f"--format={_FORMAT}", self.rev]
        if exclude:
            args += ["--not", *exclude]
        out = git(self.path, *args)
        for record in out.split(_RS)[1:]:
            item = self._commit(record, repo, web)
            yield item
        for ref in self._refs(repo, set(exclude)):
            yield ref

    def _refs(self, repo: str, unchanged: set[str]) -> list[Item]:
        """Branches and tags as they point now: a ref that moves is a new event."""
        fmt = _US.join(
            ["%(refname)", "%(objectname)", "%(*objectname)", "%(creatordate:iso-strict)",
             "%(taggeremail)", "%(committeremail)", "%(taggername)", "%(committername)"]
        )  # fmt: skip
        out = git(self.path, "for-each-ref", f"--format={fmt}", "refs/heads", "refs/tags")
        items: list[Item] = []
        for line in out.splitlines():
            f = line.split(_US)
            if len(f) != 8:
                items.append(ItemError(f"{repo} ref", "git for-each-ref record is incomplete"))
                continue
            refname, obj, peeled, date, temail, cemail, tname, cname = f
            if obj in unchanged:
                continue  # read on an earlier run (state), and not moved since
            kind: Literal["branch", "tag"] = "branch" if refname.startswith("refs/heads/") else "tag"
            short = refname.split("/", 2)[2]
            sha = peeled or obj  # an annotated tag points at a tag object: name its commit
            email = (temail or cemail).strip("<>")
            try:
                when = datetime.fromisoformat(date) if date else None
            except ValueError:
                when = None
            items.append(
                make_event(
                    "creative.engineering.ref",
                    id=source_id("git", repo, "ref", refname, sha),
                    source=f"git:{repo}",
                    subject=repo,
                    data=Ref(
                        repo=repo,
                        ref=short,
                        ref_type=kind,
                        action="created",
                        sha=sha,
                        extra=with_mapped({}, self.principals, email or None, tname or cname or None),
                    ),
                    creator=GIT,  # the tagger / committer is a claim of the repository
                    time=when,
                )
            )
        return items

    def _commit(self, record: str, repo: str, web: str | None) -> Item:
        fields = record.split(_US)
        if len(fields) < 10:
            return ItemError(f"{repo}@{fields[0][:12] if fields else '?'}", "git log record is incomplete")
        sha, parents, an, ae, ad, cn, ce, cd, message, numstat = fields[:10]
        if not _SHA.fullmatch(sha):
            return ItemError(f"{repo}@{sha[:12]!r}", "git log record has no commit id")
        files: list[str] = []
        additions = deletions = 0
        for line in numstat.strip().splitlines():
            parts = line.split("\t", 2)
            if len(parts) != 3:
                continue
            a, d, file = parts
            files.append(file)
            # "-" marks a binary file: no line counts.
            additions += int(a) if a.isdigit() else 0
            deletions += int(d) if d.isdigit() else 0
        extra: dict[str, Any] = with_mapped({}, self.principals, ae, an)
        links = find_refs(message)
        if links:
            extra["links"] = links
        if len(files) > MAX_FILES:
            extra["files_total"] = len(files)
            files = files[:MAX_FILES]
        try:
            when = datetime.fromisoformat(ad)
        except ValueError:
            return ItemError(f"{repo}@{sha[:12]}", f"author date {ad!r} is not ISO 8601")
        if when.tzinfo is None:
            return ItemError(f"{repo}@{sha[:12]}", f"author date {ad!r} has no UTC offset")
        data = Commit(
            repo=repo,
            sha=sha,
            message=message.strip(),
            author=Person(name=an or None, email=ae or None),
            committer=Person(name=cn or None, email=ce or None),
            files=files,
            additions=additions,
            deletions=deletions,
            parents=parents.split(),
            url=f"{web}{sha}" if web else None,
            extra=extra,
        )
        return make_event(
            "creative.engineering.commit",
            id=commit_id(sha),
            source=f"git:{repo}",
            subject=repo,
            data=data,
            creator=GIT,  # the author is a claim of the commit: data.author, never the writer
            time=when,
        )

    def _load_state(self) -> list[str]:
        if self.state is None or not self.state.exists():
            return []
        try:
            saved = json.loads(self.state.read_text())
            tips = saved.get(str(self.path.resolve()), [])
        except (OSError, ValueError, AttributeError):
            return []  # a broken state file only costs a full re-read
        known = set(git(self.path, "rev-list", "--all", "--no-walk").split()) | set(self._tips)
        # A tip deleted since (a dropped branch) would make git log fail: leave it out.
        return [t for t in tips if isinstance(t, str) and _exists(self.path, t, known)]

    def checkpoint(self) -> None:
        """Remember the ref tips read this run (with ``state``)."""
        if self.state is None or not self._tips:
            return
        try:
            saved = json.loads(self.state.read_text()) if self.state.exists() else {}
            if not isinstance(saved, dict):
                saved = {}
        except (OSError, ValueError):
            saved = {}
        saved[str(self.path.resolve())] = self._tips
        tmp = self.state.with_name(self.state.name + ".tmp")
        tmp.write_text(json.dumps(saved, indent=1))
        tmp.replace(self.state)


def _exists(repo: Path, sha: str, known: set[str]) -> bool:
    if sha in known:
        return True
    r = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "-e", f"{sha}^{{commit}}"], capture_output=True, check=False
    )
    return r.returncode == 0
