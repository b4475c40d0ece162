"""Mail: mbox files, .eml files and IMAP folders as message metadata events.

Only headers are read (from, to, cc, subject, date, message-id, threading),
streamed from the file: a header block over ``MAX_HEADER`` (1 MiB) or a
message over ``MAX_MESSAGE`` (64 MiB) is an ItemError, and memory stays at
about one header block whatever the file holds;
encoded words are decoded strictly, so a header in an unknown or lying
charset is an ItemError naming the header, not mojibake in the hub.

    MailSource([Path("list.mbox"), Path("reply.eml")])
    ImapSource("imap://me:pw@127.0.0.1:1143", folders=["INBOX"], state=Path("imap.json"))

IMAP is read-only (EXAMINE, ``BODY.PEEK``: nothing is marked seen) and
incremental: the highest UID stored per folder (with its UIDVALIDITY) is kept
in ``state`` after each stored batch, and the next run asks only for UIDs above
it.  The thread of a message is the first of its References, else the thread
of the message it replies to when that one is in the same run, else its parent.

Copies of one message are one message.  The Message-ID names it; what says a
second copy is the *same* message is its From address, its Date (the instant)
and its Subject (unfolded, spaces collapsed, case folded, a list's ``[tag]``
in front left out).  Everything else can differ between copies and is not
compared: headers the transport adds (Received, Return-Path, Delivered-To,
List-*, Sender, Reply-To, Resent-*, X-*), line ends and folding, To/Cc (a list
may personalise them), the thread (it depends on what else the run read), and
the body (it is never read, and lists append footers to it).  A copy is
"already there" (``message_differs``); another From, Date or Subject under a
stored Message-ID is reported as another message reusing it.  A From that a
list rewrote to its own address (DMARC's "munge From": it equals the List-Post
address) stands for the authors the copy names in X-Original-From, Reply-To
or Cc (kept in ``data.extra.on_behalf_of``).
"""

from __future__ import annotations

import asyncio
import email.header
import imaplib
import json
import mailbox as mailboxes
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.message import Message as EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import msgspec

from ..errors import ValidationError
from ..event import Event, derive_id
from ..origins import source_id
from ..schemas import Message
from . import _charsets as charsets
from ._files import files_under
from .base import Item, ItemError, Principals, find_refs, link, make_event

__all__ = [
    "FETCH_CHUNK",
    "MAIL",
    "MAX_HEADER",
    "MAX_MESSAGE",
    "ImapSource",
    "MailSource",
    "decode_header",
    "message_differs",
    "message_event_id",
]

MAIL = "mail"  # the source principal that writes (and signs) messages, and their `source`

FETCH_CHUNK = 200  # messages per IMAP FETCH
MAX_HEADER = 1024 * 1024  # bytes of one message's header block (RFC 5322 lines are <= 998 bytes)
MAX_MESSAGE = 64 * 1024 * 1024  # bytes of one message; its body is only counted, never kept
_LINE = 64 * 1024  # bytes read at a time while splitting (a longer line comes in pieces)
_MSGID = re.compile(r"<[^<>\s]+>")
_MAILTO = re.compile(r"<mailto:([^<>?\s]+)", re.I)  # List-Post: <mailto:dev@lists.example.org>
# A subject's lead: list tags ("[dev]") and reply / forward markers ("Re:", "AW:", "Fwd[2]:").
_SUBJECT_LEAD = re.compile(r"^(?:\s*(?:\[[^\[\]]{1,64}\]|\w{1,10}(?:\[\d+\])?:))*")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a Microsoft compound file (Outlook .msg)


def decode_header(value: str, name: str) -> str:
    """An RFC 2047 header as text; raises ValueError naming the header and charset."""
    try:
        parts = email.header.decode_header(value)
    except email.errors.HeaderParseError as e:
        raise ValueError(f"{name}: cannot parse encoded words ({e})") from None
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            if any("\udc80" <= c <= "\udcff" for c in chunk):
                # Raw 8-bit bytes with no declared charset: accept UTF-8, refuse guessing.
                raw = chunk.encode("ascii", "surrogateescape")
                try:
                    chunk = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise ValueError(f"{name}: raw 8-bit bytes that are not UTF-8") from None
            out.append(chunk)
            continue
        cs = (charset or "ascii").lower()
        try:
            out.append(charsets.decode(chunk, "utf-8" if cs in ("unknown-8bit", "utf8") else cs))
        except LookupError:
            raise ValueError(f"{name}: unknown charset {charset!r}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{name}: bytes that are not valid {charset} ({e.reason})") from None
    # decode_header splits around encoded words; adjacent plain parts keep their spaces.
    return re.sub(r"\s+", " ", "".join(out) if len(parts) > 1 else out[0] if out else "").strip()


def _addresses(values: Iterable[str]) -> list[str]:
    return [f"{n} <{a}>" if n else a for n, a in getaddresses(list(values)) if a]


class _Threader:
    """Message-id -> thread root, for the messages of one run."""

    def __init__(self) -> None:
        self.roots: dict[str, str] = {}

    def thread(self, mid: str, parent: str | None, refs: list[str]) -> str:
        root = refs[0] if refs else self.roots.get(parent, parent) if parent else mid
        self.roots[mid] = root
        return root


def message_event(raw: bytes, ref: str, principals: Principals, threader: _Threader) -> Item:
    """The metadata event of one message (headers only), or why it cannot be read.

    Its id is the Message-ID's (``message_event_id``): the same message in
    another mbox, a renamed .eml or another IMAP folder is the same event, and
    nothing in the event says where it was filed.  It is written by ``mail``;
    the sender is a claim of the message (``data.sender``)."""
    try:
        msg: EmailMessage = BytesHeaderParser(policy=compat32).parsebytes(raw)
    except Exception as e:  # the parser is lenient; this is for truly unparseable bytes
        return ItemError(ref, f"not a mail message: {e}")
    try:
        pairs = [(k.lower(), decode_header(str(v), k)) for k, v in msg.items() if k.lower() != "received"]
    except ValueError as e:
        return ItemError(ref, str(e))
    get = dict(reversed(pairs))  # the first of a repeated header wins
    ids = _MSGID.findall(get.get("message-id", ""))
    if ids:
        mid = ids[0]
    else:
        # No Message-ID: the headers themselves name it (stable across runs).
        head = raw.split(b"\n\n", 1)[0].decode("latin-1")
        mid = f"<{derive_id('mail', head)}@no-message-id>"
    sender_raw = get.get("from") or get.get("sender") or ""
    name, addr = parseaddr(sender_raw)
    if not addr and not name:
        return ItemError(ref, f"message {mid} has no From")
    date = None
    if get.get("date"):
        try:
            date = parsedate_to_datetime(get["date"])
            if date.tzinfo is None:
                date = date.replace(tzinfo=UTC)  # RFC 5322 "-0000": time is UTC, zone unknown
        except (TypeError, ValueError):
            date = None
    parent_ids = _MSGID.findall(get.get("in-reply-to", ""))
    parent = parent_ids[0] if parent_ids else None
    refs = _MSGID.findall(get.get("references", ""))
    subject = get.get("subject", "")
    links = [link("reply-to", message_event_id(parent), parent)] if parent else []
    links += find_refs(subject)
    extra: dict[str, object] = {"links": links} if links else {}
    mapped = principals.mapped(addr, name)
    if mapped:
        extra["mapped"] = mapped
    if get.get("date") and date is None:
        extra["unparsed_date"] = get["date"]
    behalf = _list_author(get, pairs, addr)
    if behalf:
        extra["on_behalf_of"] = behalf
    data = Message(
        message_id=mid,
        subject=subject,
        sender=f"{name} <{addr}>" if name and addr else addr or name,
        to=_addresses(v for k, v in pairs if k == "to"),
        cc=_addresses(v for k, v in pairs if k == "cc"),
        date=date,
        in_reply_to=parent,
        references=refs,
        thread=threader.thread(mid, parent, refs),
        extra=extra,
    )
    return make_event(
        "creative.metadata.message",
        id=message_event_id(mid),
        source=MAIL,
        subject=mid,
        data=data,
        creator=MAIL,  # the sender is a claim of the message: data.sender, never the writer
        time=date,
    )


def _subject_key(subject: str) -> str:
    """A subject as a copy of the message may show it: unfolded, case folded, the tags a
    list puts in front (``[dev] Re: x``, ``Re: [dev] x``) left out, its reply markers kept."""
    text = " ".join(subject.split())
    lead = _SUBJECT_LEAD.match(text)
    end = lead.end() if lead else 0
    head = re.sub(r"\[[^\[\]]*\]", " ", text[:end])
    return " ".join(f"{head} {text[end:]}".split()).casefold()


def _list_author(get: Mapping[str, str], pairs: list[tuple[str, str]], sender: str) -> list[str]:
    """Who a list sent a message for, when it rewrote From to its own address (DMARC's
    "munge From", as Mailman and Google Groups do for p=reject senders): the addresses
    of X-Original-From, Reply-To and Cc other than the list's.  [] for any other message."""
    post = _MAILTO.findall(get.get("list-post", ""))
    if not sender or sender.casefold() not in {p.casefold() for p in post}:
        return []
    named = [v for k, v in pairs if k in ("x-original-from", "reply-to", "cc")]
    return [a for _, a in getaddresses(named) if a and a.casefold() != sender.casefold()]


def _copy_key(event: Event) -> dict[str, object]:
    """What names a message's content (see the module doc), from its event."""
    data = event.data if isinstance(event.data, Mapping) else msgspec.to_builtins(event.data)
    sender = str(data.get("sender") or "")
    extra = data.get("extra") or {}
    date = data.get("date")
    when: object = extra.get("unparsed_date") if isinstance(extra, Mapping) else None
    if isinstance(date, str):
        try:
            when = datetime.fromisoformat(date).timestamp()
        except ValueError:
            when = date
    elif isinstance(date, datetime):
        when = date.timestamp()
    behalf = extra.get("on_behalf_of") if isinstance(extra, Mapping) else None
    return {
        "From": (parseaddr(sender)[1] or sender).casefold(),
        "for": {str(a).casefold() for a in behalf} if isinstance(behalf, list) else set(),
        "Date": when,
        "Subject": _subject_key(str(data.get("subject") or "")),
    }


def message_differs(stored: Event, new: Event) -> str | None:
    """None when ``new`` is a copy of the stored message (the same From address, Date and
    Subject); else which of them differ: another message reusing the Message-ID.  A From
    a list rewrote to its own address stands for the author it names (``on_behalf_of``)."""
    a, b = _copy_key(stored), _copy_key(new)
    differ = [name for name in ("Date", "Subject") if a[name] != b[name]]
    authors: list[set[str]] = []  # who wrote it, as each copy says
    for k in (a, b):
        named = k["for"]
        authors.append({str(x) for x in named} if isinstance(named, set) and named else {str(k["From"])})
    if not authors[0] & authors[1]:
        differ.insert(0, "From")
    if not differ:
        return None
    verb = "differs" if len(differ) == 1 else "differ"
    what = " and ".join(differ)
    return f"another message uses Message-ID {new.subject}: its {what} {verb} from the stored one's"


def message_event_id(message_id: str) -> str:
    """The event id of the message with this Message-ID, wherever it is filed."""
    return source_id("mail", message_id)


class MailSource:
    """Messages of mbox files, .eml files, and directories of them (or a Maildir)."""

    name = "mail"
    differs = staticmethod(message_differs)  #: a copy of a stored message is already there

    def __init__(self, paths: Sequence[Path], *, principals: Principals | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.principals = principals or Principals()

    async def iter_items(self) -> AsyncIterator[Item]:
        """Every message of every path, in file order."""
        threader = _Threader()
        for path in self.paths:
            for ref, raw in _messages(path):
                if isinstance(raw, str):
                    yield ItemError(ref, raw)
                    continue
                yield message_event(raw, ref, self.principals, threader)

    def checkpoint(self) -> None:
        """Stateless: ids make re-runs safe."""


def _messages(path: Path) -> Iterable[tuple[str, bytes | str]]:
    """(ref, header bytes) per message, or (ref, error text); never more than the caps in memory."""
    if path.is_dir():
        if (path / "cur").is_dir() and (path / "new").is_dir():
            md = mailboxes.Maildir(path, create=False)
            for key in sorted(md.keys()):
                with md.get_file(key) as f:
                    yield from _split(f, f"{path}/{key}", mbox=False)
            return
        for child in files_under(path):  # a link out of the folder is not read (ingest folder's rule)
            if isinstance(child, ItemError):
                if child.ref.endswith((".eml", ".mbox")):
                    yield child.ref, child.reason
            elif child.suffix in (".eml", ".mbox"):
                yield from _messages(child)
        return
    if path.exists() and not path.is_file():  # a FIFO would block the open, a device never end
        yield str(path), "not a regular file (a device, FIFO or socket)"
        return
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if head == _OLE_MAGIC:  # Outlook's .msg (a compound file), often saved under .eml
                yield str(path), "an Outlook .msg file, not an e-mail message: save it as .eml (MIME)"
                return
            f.seek(0)
            yield from _split(f, str(path), mbox=head[:5] == b"From " or path.suffix == ".mbox")
    except OSError as e:
        yield str(path), f"cannot read: {e.strerror}"


class _Message:
    """One message as it streams by: its header block kept (up to MAX_HEADER), its size counted."""

    def __init__(self) -> None:
        self.header = bytearray()
        self.size = 0
        self.in_header = True
        self.error: str | None = None

    def feed(self, piece: bytes, line_start: bool) -> None:
        self.size += len(piece)
        if self.error is None and self.size > MAX_MESSAGE:
            self.error = f"message over {MAX_MESSAGE} bytes: left out"
        if self.error is not None or not self.in_header:
            return
        self.header += piece
        if line_start and piece in (b"\n", b"\r\n"):
            self.in_header = False  # the blank line: headers end, the body is only counted
        elif len(self.header) > MAX_HEADER:
            self.error = f"header block over {MAX_HEADER} bytes: left out"
        if self.error is not None:
            self.header = bytearray()

    def result(self) -> bytes | str:
        return self.error if self.error is not None else bytes(self.header)


class _Lines(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


def _split(f: _Lines, where: str, *, mbox: bool) -> Iterator[tuple[str, bytes | str]]:
    """The messages of an mbox (split at "From " lines, as the mailbox module does) or of
    one message file, read a bounded line piece at a time: a 100 MB header line never
    sits in memory (it cost 1.2 GB through the mailbox module)."""
    n = 0
    current: _Message | None = None if mbox else _Message()
    at_start = True  # the next piece begins a line
    while piece := f.readline(_LINE):
        line_start, at_start = at_start, piece.endswith(b"\n")
        if mbox and line_start and piece.startswith(b"From "):
            if current is not None:
                n += 1
                yield f"{where}#{n}", current.result()
            current = _Message()
            while not at_start and (rest := f.readline(_LINE)):  # the rest of a long From line
                at_start = rest.endswith(b"\n")
            continue
        if current is not None:  # (bytes before an mbox's first From line belong to no message)
            current.feed(piece, line_start)
    if current is not None:
        yield (f"{where}#{n + 1}" if mbox else where), current.result()


# -- IMAP ----------------------------------------------------------------------
class ImapSource:
    """Message headers of IMAP folders, read-only, new UIDs only."""

    name = "imap"
    differs = staticmethod(message_differs)  #: the same message in two folders is one

    def __init__(
        self,
        url: str,
        *,
        folders: Sequence[str] | None = None,
        password: str | None = None,
        state: Path | None = None,
        principals: Principals | None = None,
    ) -> None:
        u = urlsplit(url)
        if u.scheme not in ("imap", "imaps") or not u.hostname:
            raise ValidationError("imap", f"{url!r} is not imap://user@host[:port][/folder] (or imaps://)")
        self.ssl = u.scheme == "imaps"
        self.host = u.hostname
        self.port = u.port or (993 if self.ssl else 143)
        self.user = unquote(u.username or "")
        self.password = password if password is not None else unquote(u.password or "")
        path_folder = unquote(u.path.lstrip("/"))
        self.folders = list(folders) if folders else ([path_folder] if path_folder else [])
        self.state = state
        self.principals = principals or Principals()
        self._pending: dict[str, dict[str, int]] = {}
        self._saved = self._load()

    @property
    def where(self) -> str:
        return f"imap://{self.user}@{self.host}:{self.port}"

    def _load(self) -> dict[str, dict[str, int]]:
        if self.state is None or not self.state.exists():
            return {}
        try:
            data = json.loads(self.state.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}  # a broken state file costs one full re-read, no duplicates

    def _connect(self) -> imaplib.IMAP4:
        try:
            imap = (
                imaplib.IMAP4_SSL(self.host, self.port) if self.ssl else imaplib.IMAP4(self.host, self.port)
            )
        except OSError as e:
            raise ValidationError("imap", f"{self.where}: cannot connect ({e})") from None
        try:
            imap.login(self.user, self.password)
        except imaplib.IMAP4.error as e:
            imap.shutdown()
            raise ValidationError("imap", f"{self.where}: login refused ({e})") from None
        return imap

    async def iter_items(self) -> AsyncIterator[Item]:
        """Headers of messages above the saved UID, folder by folder."""
        imap = await asyncio.to_thread(self._connect)
        try:
            folders = self.folders or await asyncio.to_thread(_list_folders, imap)
            threader = _Threader()
            for folder in folders:
                async for item in self._folder(imap, folder, threader):
                    yield item
        finally:
            await asyncio.to_thread(_logout, imap)

    async def _folder(self, imap: imaplib.IMAP4, folder: str, threader: _Threader) -> AsyncIterator[Item]:
        key = f"{self.where}/{folder}"
        typ, data = await asyncio.to_thread(imap.select, _quote(folder), True)  # readonly: EXAMINE
        if typ != "OK":
            yield ItemError(key, f"cannot open folder: {data[0]!r}")
            return
        validity = int((imap.response("UIDVALIDITY")[1] or [b"0"])[0] or 0)
        saved = self._saved.get(key, {})
        last = saved.get("last_uid", 0) if saved.get("uidvalidity") == validity else 0
        typ, data = await asyncio.to_thread(imap.uid, "SEARCH", f"UID {last + 1}:*")
        # "n:*" always matches the highest UID, even below n: filter.
        uids = [int(u) for u in (data[0] or b"").split() if int(u) > last] if typ == "OK" else []
        for i in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[i : i + FETCH_CHUNK]
            typ, resp = await asyncio.to_thread(
                imap.uid, "FETCH", ",".join(map(str, chunk)), "(UID BODY.PEEK[HEADER])"
            )
            if typ != "OK":
                yield ItemError(key, f"FETCH failed: {resp!r}")
                return
            for part in resp:
                if not isinstance(part, tuple):
                    continue
                m = re.search(rb"UID (\d+)", part[0])
                uid = int(m.group(1)) if m else 0
                if len(part[1]) > MAX_HEADER:
                    yield ItemError(f"{key};UID={uid}", f"header block over {MAX_HEADER} bytes: left out")
                    continue
                yield message_event(part[1], f"{key};UID={uid}", self.principals, threader)
                last = max(uid, last)
                self._pending[key] = {"uidvalidity": validity, "last_uid": last}

    def checkpoint(self) -> None:
        """Save the highest UID stored per folder (with ``state``)."""
        if self.state is None or not self._pending:
            return
        self._saved.update(self._pending)
        self._pending = {}
        tmp = self.state.with_name(self.state.name + ".tmp")
        tmp.write_text(json.dumps(self._saved, indent=1, sort_keys=True))
        tmp.replace(self.state)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list_folders(imap: imaplib.IMAP4) -> list[str]:
    typ, data = imap.list()
    out = []
    for line in data if typ == "OK" else []:
        if not isinstance(line, bytes) or b"\\Noselect" in line:
            continue
        m = re.match(rb'\((?P<flags>[^)]*)\) (?P<sep>"[^"]*"|NIL) (?P<name>.+)$', line)
        if m:
            out.append(m.group("name").decode("utf-8", "replace").strip('"'))
    return out


def _logout(imap: imaplib.IMAP4) -> None:
    try:
        imap.logout()
    except (imaplib.IMAP4.error, OSError):
        pass
