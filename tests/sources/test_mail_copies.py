"""Mail: copies of one message are one message (issue 19).

A message filed in Sent, the copy the mailing list delivered (List-*, Received,
Reply-To, a subject tag), a re-delivered copy and a reply read on its own are
the same message: already there, never a "changed at the source?" skip.  A
message that really differs under a reused Message-ID (another From, Date or
Subject) is still reported, saying what differs.  The copies are made from a
real list message (the Maven dev-list thread of the shared fixtures).
"""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

import pytest

from creative_hub.hub import Hub
from creative_hub.sources.ingest import ingest
from creative_hub.sources.mail import MailSource

pytestmark = pytest.mark.sqlite

MID = b"<1552601.qlm03gC8Jt@giga>"  # Herve's reply, as dev@maven.apache.org delivered it
_TRANSPORT = re.compile(
    rb"(Return-Path|X-[\w-]+|Delivered-To|Received|Mailing-List|Precedence|List-[\w-]+|Reply-To)$", re.I
)


def the_list_copy(fixtures_dir: Path) -> bytes:
    box = mailbox.mbox(fixtures_dir / "email" / "maven-dev-2017-11_thread_download-links.mbox", create=False)
    try:
        (raw,) = [box.get_bytes(k) for k in box.keys() if b"\nMessage-ID: " + MID in box.get_bytes(k)]
    finally:
        box.close()
    return raw


def fields(raw: bytes) -> tuple[list[list[bytes]], bytes]:
    """(header fields, each its lines; the body) of an LF message."""
    head, _, body = raw.partition(b"\n\n")
    out: list[list[bytes]] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and out:
            out[-1].append(line)
        else:
            out.append([line])
    return out, body


def join(out: list[list[bytes]], body: bytes) -> bytes:
    return b"\n".join(line for f in out for line in f) + b"\n\n" + body


def name(f: list[bytes]) -> bytes:
    return f[0].split(b":", 1)[0]


def edited(raw: bytes, header: bytes, value: bytes) -> bytes:
    out, body = fields(raw)
    return join([[header + b": " + value] if name(f).lower() == header.lower() else f for f in out], body)


def the_sent_copy(raw: bytes) -> bytes:
    """What the sender's client filed in Sent: no transport headers, CRLF (as IMAP serves it),
    the To header folded by the client."""
    out, body = fields(raw)
    kept = [f for f in out if not _TRANSPORT.match(name(f))]
    kept = [
        [b"To: Maven Developers List", b" <dev@maven.apache.org>"] if name(f) == b"To" else f for f in kept
    ]
    return join(kept, body).replace(b"\n", b"\r\n")


def through_mailman(raw: bytes) -> bytes:
    """The copy a Mailman list delivers: its own List-* headers and Sender, the subject tagged."""
    out, body = fields(raw)
    out = [[b"Subject: [dev] Re: Download links"] if name(f) == b"Subject" else f for f in out]
    added = [
        [b'Sender: "dev" <dev-bounces@lists.example.org>'],
        [b"List-Id: Developers <dev.lists.example.org>"],
        [b"Errors-To: dev-bounces@lists.example.org"],
    ]
    return join(added + out, body + b"\n-- \ndev mailing list\n")


def dmarc_munged(raw: bytes) -> bytes:
    """The copy a list delivers when the sender's domain publishes DMARC p=reject (Mailman's
    and Google Groups' "munge From"): From is the list's own address, the author moves to
    Reply-To (or X-Original-From)."""
    out, body = fields(raw)
    out = [f for f in out if name(f) != b"Reply-To"]
    out = [
        [b'From: "=?ISO-8859-1?Q?Herv=E9?= BOUTEMY via dev" <dev@maven.apache.org>']
        if name(f) == b"From"
        else f
        for f in out
    ]
    return join([*out, [b"Reply-To: =?ISO-8859-1?Q?Herv=E9?= BOUTEMY <herve.boutemy@free.fr>"]], body)


def redelivered(raw: bytes) -> bytes:
    """A re-delivered copy: another hop's Received and Resent-* headers on top."""
    hop = [
        [b"Received: from mx2.example.net (mx2.example.net [192.0.2.7])",
         b"\tby mail.example.net; Sat, 18 Nov 2017 08:00:00 +0000"],
        [b"Resent-From: postmaster@example.net"],
        [b"Resent-Date: Sat, 18 Nov 2017 08:00:00 +0000"],
        [b"Resent-Message-ID: <resent-1@example.net>"],
        [b"Delivered-To: herve@example.net"],
    ]  # fmt: skip
    out, body = fields(raw)
    return join(hop + out, body)


async def test_copies_of_one_message_are_already_there(hub: Hub, fixtures_dir: Path, tmp_path: Path) -> None:
    listed = the_list_copy(fixtures_dir)
    (tmp_path / "list.eml").write_bytes(listed)
    first = await ingest(hub, MailSource([tmp_path / "list.eml"]))
    assert (first.ingested, first.skipped) == (1, []), first
    for label, copy in [
        ("sent", the_sent_copy(listed)),
        ("mailman", through_mailman(listed)),
        ("dmarc", dmarc_munged(listed)),
        ("redelivered", redelivered(listed)),
    ]:
        (tmp_path / f"{label}.eml").write_bytes(copy)
        s = await ingest(hub, MailSource([tmp_path / f"{label}.eml"]))
        assert (s.ingested, s.already, s.skipped) == (0, 1, []), (label, [str(e) for e in s.skipped])


def message(
    sender: str, subject: str, at: str, mid: str, refs: str | None = None, parent: str | None = None
) -> bytes:
    lines = [f"From: {sender}", "To: list@example.org", f"Subject: {subject}"]
    lines += [f"Date: Mon, 1 Jan 2024 {at}:00 +0000", f"Message-ID: {mid}"]
    if refs or parent:
        lines.append(f"In-Reply-To: {parent or refs}")
    if refs:
        lines.append(f"References: {refs}")
    return ("\n".join(lines) + "\n\nhello\n").encode()


async def test_a_list_rewritten_from_stands_for_the_author_it_names(
    hub: Hub, fixtures_dir: Path, tmp_path: Path
) -> None:
    """The munged copy read first, the author's own copy next: one message.  A munged copy
    naming someone else as its author is another message."""
    listed = the_list_copy(fixtures_dir)
    (tmp_path / "dmarc.eml").write_bytes(dmarc_munged(listed))
    first = await ingest(hub, MailSource([tmp_path / "dmarc.eml"]))
    assert (first.ingested, first.skipped) == (1, []), first
    (tmp_path / "sent.eml").write_bytes(the_sent_copy(listed))
    s = await ingest(hub, MailSource([tmp_path / "sent.eml"]))
    assert (s.ingested, s.already, s.skipped) == (0, 1, []), [str(e) for e in s.skipped]
    other = edited(dmarc_munged(listed), b"Reply-To", b"Mallory <mallory@example.org>")
    (tmp_path / "other.eml").write_bytes(edited(other, b"Cc", b"dev@maven.apache.org"))
    s = await ingest(hub, MailSource([tmp_path / "other.eml"]))
    assert len(s.skipped) == 1 and "its From differs" in s.skipped[0].reason, s


async def test_a_reply_read_alone_is_the_reply_read_with_its_thread(hub: Hub, tmp_path: Path) -> None:
    """A reply naming only its parent (In-Reply-To, no References) is threaded under the root
    when the parent is read in the same run: read again on its own, it is still the same message."""
    root = message("Ada <ada@example.org>", "Plan", "10:00", "<root@example.org>")
    reply = message("Bo <bo@example.org>", "Re: Plan", "11:00", "<reply@example.org>", "<root@example.org>")
    late = message(
        "Cy <cy@example.org>", "Re: Plan", "12:00", "<late@example.org>", None, "<reply@example.org>"
    )
    box = mailbox.mbox(tmp_path / "thread.mbox")
    for m in (root, reply, late):
        box.add(m)
    box.close()
    first = await ingest(hub, MailSource([tmp_path / "thread.mbox"]))
    assert (first.ingested, first.skipped) == (3, []), first
    (tmp_path / "late.eml").write_bytes(late)
    s = await ingest(hub, MailSource([tmp_path / "late.eml"]))
    assert (s.ingested, s.already, s.skipped) == (0, 1, []), [str(e) for e in s.skipped]


async def test_another_message_under_a_reused_message_id_is_reported(
    hub: Hub, fixtures_dir: Path, tmp_path: Path
) -> None:
    listed = the_list_copy(fixtures_dir)
    (tmp_path / "list.eml").write_bytes(listed)
    assert (await ingest(hub, MailSource([tmp_path / "list.eml"]))).ingested == 1
    for header, value in [
        (b"From", b"Mallory <mallory@example.org>"),
        (b"Date", b"Sat, 18 Nov 2017 09:00:00 +0100"),
        (b"Subject", b"Re: Download links (corrected)"),
    ]:
        (tmp_path / "other.eml").write_bytes(edited(listed, header, value))
        s = await ingest(hub, MailSource([tmp_path / "other.eml"]))
        assert (s.ingested, s.already, len(s.skipped)) == (0, 0, 1), (header, s)
        reason = s.skipped[0].reason
        assert "another message" in reason and header.decode() in reason, reason
