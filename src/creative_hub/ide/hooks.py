"""Git hooks that publish each new commit to the hub as it happens, and never stand in the way.

``install(repo, url=...)`` writes post-commit, post-merge and post-rewrite
hooks (a hook already there is kept beside ours and still runs, after ours,
with the same arguments and input; ``uninstall`` puts it back).  Each hook
runs ``python -m creative_hub.ide.hooks HOOK``, which:

1. works out the new commits (HEAD; ``ORIG_HEAD..HEAD`` after a merge; the
   rewritten commits git names on stdin after an amend or a rebase), builds
   the events exactly as ``creative-hub ingest git`` does and the event of the
   branch moved, and appends them to a local spool (``.git/creative-hub/spool.jsonl``).
   Only the repository user's own commits (``user.email``): a pull's commits
   by others are theirs to publish;
2. starts a detached ``flush`` that sends the spool to the hub's HTTP API
   and returns at once, so the commit never waits for the network.  The
   events go out as the token's principal's own (``origins.personal``: ids
   ``alice~<id>``, source ``/peers/alice/git:...``, written and signed by
   alice), exactly as ``ingest git --token`` with alice's token makes them:
   a later such ingest adds nothing.  (The bare ids are the git source's own
   run's: no client may take them.)  A hub that cannot be reached leaves the events in
   the spool; the next hook or ``creative-hub hooks flush`` sends them.

Every failure is written to ``.git/creative-hub/hooks.log``; the hook itself
always exits 0 (the original hook's status is kept, when there was one).
The token comes from ``install --token`` (kept in ``.git/creative-hub/token``,
mode 0600, never in the work tree) or ``CREATIVE_HUB_TOKEN`` at commit time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..event import Event
from ..origins import personal
from ..sources.base import ItemError, Principals
from ..sources.git import _FORMAT, GitSource, git, repo_name

if TYPE_CHECKING:  # loaded by the flush alone: a commit does not wait for its import
    import httpx

__all__ = ["HOOKS", "MARKER", "Spool", "flush", "install", "record", "uninstall"]

HOOKS = ("post-commit", "post-merge", "post-rewrite")
MARKER = "# creative-hub hook"
ORIG_SUFFIX = ".creative-hub-orig"
BATCH = 200  # events per request when a backlog goes out
READ_TIMEOUT = 10.0  # seconds for the hub's answer (CREATIVE_HUB_HOOK_TIMEOUT); a detached flush waits
MAX_NEW = 1000  # commits one hook run records (a rebase of a long branch); the rest: `ingest git`


def git_dir(repo: Path) -> Path:
    return Path(git(repo, "rev-parse", "--absolute-git-dir").strip())


def state_dir(repo: Path) -> Path:
    d = git_dir(repo) / "creative-hub"
    d.mkdir(mode=0o700, exist_ok=True)
    return d


def hooks_dir(repo: Path) -> Path:
    """Where git runs hooks from (``core.hooksPath`` honoured)."""
    p = Path(git(repo, "rev-parse", "--git-path", "hooks").strip())
    top = Path(git(repo, "rev-parse", "--show-toplevel").strip())
    return p if p.is_absolute() else (top / p)


# -- install / uninstall -------------------------------------------------------
def _script(hook: str, python: str, here: Path) -> str:
    orig = here / (hook + ORIG_SUFFIX)
    return f"""#!/bin/sh
{MARKER} ({hook}): publishes new commits to the hub; never fails or blocks a commit.
# Installed by `creative-hub hooks install`; `creative-hub hooks uninstall` restores what was here.
input="$(mktemp 2>/dev/null || echo /tmp/creative-hub-hook.$$)"
cat > "$input"
"{python}" -m creative_hub.ide.hooks {hook} "$@" < "$input" > /dev/null 2>&1
status=0
if [ -x "{orig}" ]; then
    "{orig}" "$@" < "$input"
    status=$?
fi
rm -f "$input"
exit $status
"""


@dataclass
class Installed:
    hook: str
    path: Path
    kept: Path | None  #: the hook that was there before, now beside ours


def install(repo: Path, *, url: str, token: str | None = None, python: str | None = None) -> list[Installed]:
    """Install the three hooks (again: idempotent); returns what was done."""
    here = hooks_dir(repo)
    here.mkdir(parents=True, exist_ok=True)
    state = state_dir(repo)
    (state / "config.json").write_text(json.dumps({"url": url}, indent=1))
    if token:
        tok = state / "token"
        tok.touch(mode=0o600)
        tok.chmod(0o600)
        tok.write_text(token)
    done = []
    for hook in HOOKS:
        path = here / hook
        kept = here / (hook + ORIG_SUFFIX)
        if path.exists() and not _ours(path):
            if kept.exists():
                raise FileExistsError(f"{kept} is in the way: move it, then install again")
            path.rename(kept)  # content and mode as they were
        path.write_text(_script(hook, python or sys.executable, here))
        path.chmod(0o755)
        done.append(Installed(hook, path, kept if kept.exists() else None))
    return done


def uninstall(repo: Path) -> list[Installed]:
    """Remove our hooks and put back the ones that were there before."""
    here = hooks_dir(repo)
    done = []
    for hook in HOOKS:
        path, kept = here / hook, here / (hook + ORIG_SUFFIX)
        if path.exists() and _ours(path):
            path.unlink()
            if kept.exists():
                kept.rename(path)
            done.append(Installed(hook, path, kept if path.exists() else None))
    return done


def _ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(errors="replace")[:500]
    except OSError:
        return False


# -- the spool -----------------------------------------------------------------
class Spool:
    """Events waiting for the hub, one JSON object a line, in commit order."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.dir = state_dir(repo)
        self.path = self.dir / "spool.jsonl"
        self.rejected = self.dir / "rejected.jsonl"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time (two hooks, or a hook and a flush)."""
        with open(self.dir / "spool.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a torn last line from a killed hook
                out.append(json.loads(line))
        return out

    def append(self, events: list[dict[str, Any]]) -> None:
        """Add events; a branch that moved again replaces its older position (only the tip matters)."""
        moved = {_ref_key(e) for e in events} - {None}
        kept = [e for e in self.read() if _ref_key(e) not in moved] if moved else None
        if kept is not None:
            self.replace(kept + events)
            return
        with open(self.path, "a") as f:
            f.writelines(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
            f.flush()
            os.fsync(f.fileno())

    def commits(self) -> int:
        """How many commits wait (each spooled with its branch's new position)."""
        return sum(1 for e in self.read() if e.get("type") == "creative.engineering.commit")

    def replace(self, events: list[dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)


def _ref_key(event: dict[str, Any]) -> tuple[str, str] | None:
    if event.get("type") != "creative.engineering.ref":
        return None
    data = event.get("data") or {}
    return (str(data.get("repo")), str(data.get("ref")))


def log(repo: Path, message: str) -> None:
    with contextlib.suppress(OSError):
        with open(state_dir(repo) / "hooks.log", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {message}\n")


# -- what a hook records -------------------------------------------------------
def new_commits(repo: Path, hook: str, args: list[str], stdin: str) -> list[str]:
    """The shas a hook run brings, oldest first."""
    if hook == "post-rewrite":
        shas = [line.split()[1] for line in stdin.splitlines() if len(line.split()) >= 2]
        return list(dict.fromkeys(shas))[:MAX_NEW]
    if hook == "post-merge":
        try:
            out = git(repo, "rev-list", "--reverse", f"--max-count={MAX_NEW}", "ORIG_HEAD..HEAD")
            shas = out.split()
            if shas:
                return shas
        except Exception:  # no ORIG_HEAD (a first pull): HEAD alone
            pass
    return [git(repo, "rev-parse", "HEAD").strip()]


def _me(repo: Path) -> str | None:
    r = subprocess.run(
        ["git", "-C", str(repo), "config", "user.email"], capture_output=True, text=True, check=False
    )
    return r.stdout.strip().lower() or None


def _committed_by(event: Event, me: str | None) -> bool:
    person = getattr(event.data, "committer", None)
    email = (getattr(person, "email", None) or "").lower()
    return me is None or email == me


def commit_events(repo: Path, shas: list[str]) -> list[Event]:
    """The events ``ingest git`` gives these commits, and the current branch as it points now.

    Only commits this repository's user committed (``user.email``) go out: the hub
    publishes as the token's principal, and a pull brings other people's commits,
    which are theirs to publish (or ``ingest git``'s, with a map of who is who).
    """
    src = GitSource(repo, principals=Principals())
    name = repo_name(repo)
    web = src._web_base(name)
    me = _me(repo)
    out = git(repo, "log", "--no-walk=unsorted", "--no-renames", "--numstat", f"--format={_FORMAT}", *shas)
    events: list[Event] = []
    others = 0
    for record in out.split("\x1e")[1:]:
        item = src._commit(record, name, web)
        if isinstance(item, ItemError):
            log(repo, f"skipped {item}")
        elif _committed_by(item, me):
            events.append(item)
        else:
            others += 1
    if others:
        log(repo, f"left {others} commits by other committers to their own hooks or `ingest git`")
    head = subprocess.run(
        ["git", "-C", str(repo), "symbolic-ref", "-q", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    tip = git(repo, "rev-parse", "HEAD").strip()
    mine = any(getattr(e.data, "sha", None) == tip for e in events)
    if head.startswith("refs/heads/") and mine:  # the branch moved to a commit of ours
        for ref in src._refs(name, set()):
            if isinstance(ref, Event) and getattr(ref.data, "ref", None) == head.removeprefix("refs/heads/"):
                if getattr(ref.data, "ref_type", None) == "branch":
                    events.append(ref)
    return events


def record(repo: Path, hook: str, args: list[str], stdin: str) -> int:
    """Spool the events of one hook run; how many."""
    events = commit_events(repo, new_commits(repo, hook, args, stdin))
    spool = Spool(repo)
    with spool.locked():
        spool.append([e.to_dict() for e in events])
    return len(events)


# -- delivery ------------------------------------------------------------------
def _settings(repo: Path, url: str | None, token: str | None) -> tuple[str, str | None]:
    state = state_dir(repo)
    if url is None:
        try:
            url = str(json.loads((state / "config.json").read_text())["url"])
        except (OSError, ValueError, KeyError):
            url = os.environ.get("CREATIVE_HUB_URL") or "http://127.0.0.1:8080"
    if token is None:
        tok = state / "token"
        token = tok.read_text().strip() if tok.exists() else os.environ.get("CREATIVE_HUB_TOKEN") or None
    return url, token


@dataclass
class Flushed:
    delivered: int = 0
    waiting: int = 0  #: still in the spool (the hub could not be reached)
    rejected: int = 0  #: refused by the hub (kept in rejected.jsonl with why)
    error: str | None = None


def flush(repo: Path, *, url: str | None = None, token: str | None = None, wait: bool = True) -> Flushed:
    """Send the spool to the hub, oldest first; what could not go stays.

    The spool is locked only to read it and to strike what went out, never
    while talking to the hub, so a commit's hook never waits on the network.
    One flush runs at a time (``wait=False``: leave it to the one running,
    which looks again for events spooled meanwhile before it stops).
    """
    import httpx  # here, not at the top: the hook forks its flush before this runs

    url, token = _settings(repo, url, token)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    spool = Spool(repo)
    result = Flushed()
    while True:
        with _flusher(spool, wait) as running:
            if not running:
                result.waiting = len(spool.read())
                return result
            read = float(os.environ.get("CREATIVE_HUB_HOOK_TIMEOUT") or READ_TIMEOUT)
            with httpx.Client(
                base_url=url, headers=headers, timeout=httpx.Timeout(read, connect=2.0)
            ) as http:
                _send(http, spool, result, url)
        with spool.locked():
            result.waiting = len(spool.read())
        # Events spooled while we held the flush lock, by a hook whose own flush gave way: go again.
        if result.error or not result.waiting or wait:
            break
    if result.error:
        log(repo, f"flush: {result.error}; {result.waiting} events wait in the spool")
    return result


@contextlib.contextmanager
def _flusher(spool: Spool, wait: bool) -> Iterator[bool]:
    with open(spool.dir / "flush.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _send(http: httpx.Client, spool: Spool, result: Flushed, url: str) -> None:
    import httpx  # loaded by flush() already

    with spool.locked():
        pending = spool.read()
    if not pending:
        return
    try:
        owner = _whoami(http)  # the events go out as the token's principal's own
    except httpx.HTTPStatusError as e:  # a bad token, say: ours to fix; keep the spool
        result.error = f"{url}: {e.response.status_code} {_detail(e.response)}"
        return
    except httpx.HTTPError as e:
        result.error = f"{url}: cannot reach the hub ({type(e).__name__})"
        return
    except (ValueError, KeyError) as e:
        result.error = f"{url}: /v1/me did not say who the token is ({type(e).__name__})"
        return
    while pending:
        batch, pending = pending[:BATCH], pending[BATCH:]
        done: list[dict[str, Any]] = []  # delivered or refused: out of the spool (as spooled)
        refused: list[dict[str, Any]] = []
        try:
            r = http.post("/v1/events", json=[_theirs(ev, owner) for ev in batch])
            if r.status_code < 300:
                done = batch
                result.delivered += len(batch)
            elif r.status_code >= 500 or r.status_code in (401, 403, 429):
                # the hub's trouble, or a token to fix: keep them for later
                result.error = f"{url}: {r.status_code} {_detail(r)}"
            else:  # one bad event refuses the batch: one at a time, the refused put aside
                for ev in batch:
                    one = http.post("/v1/events", json=_theirs(ev, owner))
                    done.append(ev)
                    if one.status_code < 300:
                        result.delivered += 1
                    else:
                        refused.append({"event": ev, "status": one.status_code, "reason": _detail(one)})
        except httpx.HTTPError as e:
            result.error = f"{url}: cannot reach the hub ({type(e).__name__})"
        _strike(spool, done, refused)
        result.rejected += len(refused)
        if result.error:
            return


def _strike(spool: Spool, done: list[dict[str, Any]], refused: list[dict[str, Any]]) -> None:
    """Take what went out (or was refused) off the spool, keeping what hooks added meanwhile."""
    if not done:
        return
    gone = {e.get("id") for e in done}
    with spool.locked():
        spool.replace([e for e in spool.read() if e.get("id") not in gone])
        if refused:
            with open(spool.rejected, "a") as f:
                f.writelines(json.dumps(x) + "\n" for x in refused)
    for x in refused:
        log(spool.repo, f"flush: the hub refused {x['event'].get('id')}: {x['status']} {x['reason']}")
def _whoami(http: httpx.Client) -> str:
    """The principal the token names (``anonymous`` without one)."""
    r = http.get("/v1/me")
    r.raise_for_status()
    return str(r.json()["principal"])


def _theirs(ev: dict[str, Any], owner: str) -> dict[str, Any]:
    """A spooled event as ``owner``'s own: see ``origins.personal``."""
    e = Event(type=str(ev.get("type", "")), id=str(ev.get("id", "")), source=str(ev.get("source", "")))
    personal(e, owner)
    out = {**ev, "id": e.id, "source": e.source}
    out.pop("creator", None)  # the hub sets it: the token's principal
    out.pop("partitionkey", None)
    return out


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
        return str(body.get("detail") or body.get("title") or r.text)[:300]
    except ValueError:
        return r.text[:300]


def _background_flush(repo: Path) -> None:
    """A detached ``flush``: the hook returns while it talks to the hub.

    A fork of this process, so no second interpreter has to start (that is
    most of the time between a commit and its event in the hub).
    """
    log_path = state_dir(repo) / "hooks.log"
    try:
        pid = os.fork()
    except OSError:
        pid = -1
    if pid > 0:
        return  # the hook: done
    if pid < 0:  # no fork: start one
        with open(log_path, "a") as out:
            subprocess.Popen(
                [sys.executable, "-m", "creative_hub.ide.hooks", "flush", str(repo)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                close_fds=True,
            )
        return
    try:  # the child: its own session, nothing of git's terminal or pipes
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        out_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(null, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        flush(repo, wait=False)
    except BaseException as e:  # nothing may escape into the hook's exit path
        with contextlib.suppress(Exception):
            log(repo, f"flush: {type(e).__name__}: {e}")
    finally:
        os._exit(0)


def main(argv: list[str]) -> int:
    """``python -m creative_hub.ide.hooks HOOK [args]`` (from a hook) or ``flush REPO``."""
    if len(argv) >= 2 and argv[0] == "flush":  # the detached one a hook starts
        flush(Path(argv[1]), wait=False)
        return 0
    hook, args = (argv[0] if argv else ""), argv[1:]
    repo = Path.cwd()
    try:
        stdin = sys.stdin.read() if hook == "post-rewrite" else ""
        top = Path(git(repo, "rev-parse", "--show-toplevel").strip())
        n = record(top, hook, args, stdin)
        log(top, f"{hook}: {n} events spooled")
        _background_flush(top)
    except Exception as e:  # never fail the commit: say why in the log
        with contextlib.suppress(Exception):
            log(repo, f"{hook}: {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
