"""The ``%hub`` magics: connect, publish, draft, tail, show, lineage, outline, record.

    %hub connect [URL] [--token TOKEN]     # default: $CREATIVE_HUB_URL, $CREATIVE_HUB_TOKEN
    %%hub publish TYPE [--subject S]       # the cell body is the data (YAML or JSON)
    %%hub draft TYPE --subject S           # the same, as a private draft in your hub
    %hub draft                             # your latest drafts
    %%hub revise ID                        # a new revision of a draft (the body: fields to change)
    %hub publish-draft ID                  # publish one of them
    %hub tail TOPIC [-n N]                 # the last N events (default 10)
    %hub show ID | %hub lineage [ID] | %hub outline STORY
    %hub record on|off|publish|status      # each executed cell -> a private draft

Recording: every cell run after ``%hub record on`` (except ``%hub`` cells)
becomes a ``creative.engineering.cell`` draft in the caller's own hub
(``peer.<me>.drafts``, readable by nobody else), all with the subject
``session:<id>`` -- a coding session.  ``%hub record publish`` publishes that
session's drafts; ``%hub publish-draft ID`` one of them.  A hub that cannot
be reached costs a warning, never the cell.

The last receipt is kept in the user's namespace as ``hub_last``, so
``%hub lineage`` with no id shows the lineage of what was just published.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..topics import drafts as drafts_topic
from .client import DEFAULT_URL, HubClient, HubHTTPError
from .display import EventTable, EventView, LineageView, OutlineView, ReceiptView, outline_of

__all__ = ["HubMagics"]

MAX_SOURCE = 100_000  # characters of a recorded cell kept (as in `ingest notebook`)
MAX_TEXT = 2_000


class _Args(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would exit the kernel
        raise UsageError(f"%hub {self.prog}: {message}")


def _parser(name: str, *args: tuple[list[str], dict[str, Any]]) -> _Args:
    p = _Args(prog=name, add_help=False)
    for flags, kw in args:
        p.add_argument(*flags, **kw)
    return p


PARSERS = {
    "connect": _parser("connect", (["url"], {"nargs": "?"}), (["--token"], {})),
    "publish": _parser("publish", (["type"], {}), (["--subject"], {})),
    "draft": _parser("draft", (["type"], {"nargs": "?"}), (["--subject"], {}), (["-n"], {"type": int})),
    "publish-draft": _parser("publish-draft", (["id"], {})),
    "revise": _parser("revise", (["id"], {})),
    "tail": _parser("tail", (["topic"], {}), (["-n"], {"type": int, "default": 10})),
    "show": _parser("show", (["id"], {})),
    "lineage": _parser("lineage", (["id"], {"nargs": "?"})),
    "outline": _parser("outline", (["story"], {})),
    "record": _parser("record", (["state"], {"choices": ["on", "off", "publish", "status"]})),
}


def parse_data(body: str) -> dict[str, Any]:
    """A cell body as an event's data: JSON, else YAML; it must be a mapping."""
    text = body.strip()
    if not text:
        raise UsageError("the cell body is the event's data (YAML or JSON); it is empty")
    try:
        data = json.loads(text)
    except ValueError:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"the cell body is neither JSON nor YAML: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"the data must be a mapping (key: value), got {type(data).__name__}")
    return data


@magics_class
class HubMagics(Magics):
    """``%hub`` and ``%%hub``; one connection per kernel."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.client: HubClient | None = None
        self.me = ""
        self.session: str | None = None
        self.recorded: list[str] = []
        self._started: datetime | None = None
        self._warned = False

    # -- the magic -------------------------------------------------------------
    @line_cell_magic
    def hub(self, line: str, cell: str | None = None) -> Any:
        """Talk to a creative-hub from a notebook (``%hub help`` lists the commands)."""
        words = shlex.split(line)
        if not words or words[0] in ("help", "-h", "--help"):
            print(__doc__.split("\n\n")[1] if __doc__ else "")
            return None
        cmd, rest = words[0], words[1:]
        if cmd not in PARSERS:
            raise UsageError(f"%hub: unknown command {cmd!r}; try one of {', '.join(PARSERS)}")
        args = PARSERS[cmd].parse_args(rest)
        try:
            return getattr(self, "_" + cmd.replace("-", "_"))(args, cell)
        except HubHTTPError as e:
            raise UsageError(str(e)) from None

    def _client(self) -> HubClient:
        if self.client is None:
            self._connect(argparse.Namespace(url=None, token=None), None)
        assert self.client is not None
        return self.client

    @property
    def _shell(self) -> Any:
        assert self.shell is not None  # set by IPython when the magics are registered
        return self.shell

    def _keep(self, receipt: dict[str, Any]) -> dict[str, Any]:
        self._shell.user_ns["hub_last"] = receipt
        return receipt

    # -- commands --------------------------------------------------------------
    def _connect(self, args: argparse.Namespace, cell: str | None) -> None:
        url = args.url or os.environ.get("CREATIVE_HUB_URL") or DEFAULT_URL
        token = args.token or os.environ.get("CREATIVE_HUB_TOKEN") or None
        client = HubClient(url, token=token)
        try:
            me = client.me()
        except HubHTTPError:
            client.close()
            raise
        if self.client is not None:
            self.client.close()
        self.client, self.me = client, str(me.get("principal", ""))
        how = "with a token" if me.get("authenticated") else "anonymously (read-only, public streams)"
        print(f"connected to {url} as {self.me} {how}")

    def _publish(self, args: argparse.Namespace, cell: str | None) -> ReceiptView:
        if cell is None:
            raise UsageError("%%hub publish TYPE is a cell magic: the cell body is the data")
        event: dict[str, Any] = {"type": args.type, "data": parse_data(cell)}
        if args.subject:
            event["subject"] = args.subject
        return ReceiptView(self._keep(self._client().publish(event)))

    def _draft(self, args: argparse.Namespace, cell: str | None) -> ReceiptView | EventTable:
        client = self._client()
        if cell is None:  # list my drafts
            topic = drafts_topic(self.me)
            return EventTable(topic, client.tail(topic, args.n or 20))
        if not args.type or not args.subject:
            raise UsageError("%%hub draft TYPE --subject S: a draft needs its type and subject")
        receipt = client.draft(self.me, args.type, args.subject, parse_data(cell))
        return ReceiptView(self._keep(receipt), "drafted")

    def _revise(self, args: argparse.Namespace, cell: str | None) -> ReceiptView:
        if cell is None:
            raise UsageError("%%hub revise ID is a cell magic: the cell body holds the fields to change")
        return ReceiptView(self._keep(self._client().revise(args.id, parse_data(cell))), "revised")

    def _publish_draft(self, args: argparse.Namespace, cell: str | None) -> ReceiptView:
        return ReceiptView(self._keep(self._client().publish_draft(args.id)))

    def _tail(self, args: argparse.Namespace, cell: str | None) -> EventTable:
        return EventTable(args.topic, self._client().tail(args.topic, args.n))

    def _show(self, args: argparse.Namespace, cell: str | None) -> EventView:
        return EventView(self._client().get(args.id))

    def _lineage(self, args: argparse.Namespace, cell: str | None) -> LineageView:
        event_id = args.id or (self._shell.user_ns.get("hub_last") or {}).get("id")
        if not event_id:
            raise UsageError("%hub lineage ID (or publish something first)")
        return LineageView(self._client().lineage(event_id))

    def _outline(self, args: argparse.Namespace, cell: str | None) -> OutlineView:
        outline = outline_of(args.story, [s["event"] for s in self._client().events("creative.narrative")])
        if not outline["parts"] and not outline["plot_points"]:
            raise UsageError(f"no story {args.story!r} in creative.narrative")
        return OutlineView(outline)

    def _record(self, args: argparse.Namespace, cell: str | None) -> Any:
        events = self._shell.events
        if args.state == "on":
            self._client()
            if not self.me or self.me == "anonymous":
                raise UsageError("recording makes drafts in your own hub: connect with a token first")
            if self.session is None:
                self.session = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
                self.recorded = []
                events.register("pre_run_cell", self._pre)
                events.register("post_run_cell", self._post)
            print(f"recording cells as private drafts of session:{self.session}")
        elif args.state == "off":
            if self.session is not None:
                events.unregister("pre_run_cell", self._pre)
                events.unregister("post_run_cell", self._post)
                print(f"stopped recording session:{self.session} ({len(self.recorded)} cells)")
                self.session = None
        elif args.state == "publish":
            if not self.recorded:
                raise UsageError("nothing recorded to publish")
            for draft_id in self.recorded:
                self._keep(self._client().publish_draft(draft_id))
            n, self.recorded = len(self.recorded), []
            print(f"published {n} recorded cells")
        else:
            state = f"recording session:{self.session}" if self.session else "not recording"
            print(f"{state}; {len(self.recorded)} drafts not yet published")
        return None

    # -- recording hooks -------------------------------------------------------
    def _pre(self, info: Any) -> None:
        self._started = datetime.now(UTC)

    def _post(self, result: Any) -> None:
        source = str(getattr(result.info, "raw_cell", "") or "")
        first = source.lstrip().split("\n", 1)[0]
        started, self._started = self._started, None
        if started is None:  # the cell that turned recording on: it began before
            return
        if not source.strip() or first.startswith(("%hub", "%%hub")) or self.session is None:
            return
        finished = datetime.now(UTC)
        outputs: list[dict[str, Any]] = []
        if result.error_in_exec is not None or result.error_before_exec is not None:
            e = result.error_in_exec or result.error_before_exec
            outputs.append({"output_type": "error", "ename": type(e).__name__, "evalue": str(e)[:MAX_TEXT]})
        elif result.result is not None:
            text = repr(result.result)
            outputs.append({"output_type": "execute_result", "text": text[:MAX_TEXT], "chars": len(text)})
        n = len(self.recorded)
        data: dict[str, Any] = {
            "notebook": self.session,
            "cell": str(getattr(result.info, "cell_id", None) or f"exec-{result.execution_count}"),
            "order": result.execution_count or n,
            "kind": "code",
            "language": "python",
            "source": source[:MAX_SOURCE],
            "started": started.isoformat(),
            "finished": finished.isoformat(),
            "duration_ms": int((finished - started).total_seconds() * 1000),
            "outputs": outputs,
        }
        if result.execution_count is not None:
            data["execution_count"] = result.execution_count
        try:
            receipt = self._client().draft(
                self.me, "creative.engineering.cell", f"session:{self.session}", data
            )
        except (HubHTTPError, UsageError) as e:
            if not self._warned:  # once: a hub gone away must not fill every cell with errors
                print(f"%hub record: this cell was not recorded ({e})", file=sys.stderr)
                self._warned = True
            return
        self._warned = False
        self.recorded.append(str(receipt["id"]))
