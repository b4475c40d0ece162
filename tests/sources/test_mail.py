"""Mail: the Maven dev-list thread (mbox), a Gmail reply (.eml), and the same over IMAP (a real Dovecot)."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

import pytest

from _dovecot import DovecotServer
from creative_hub.hub import Hub
from creative_hub.sources.base import Principals
from creative_hub.sources.ingest import ingest
from creative_hub.sources.mail import ImapSource, MailSource

pytestmark = pytest.mark.sqlite

ROOT = "<op.y9uh4nywkdkhrr@desktop-2khsk44>"


def mbox(fixtures_dir: Path) -> Path:
    return fixtures_dir / "email" / "maven-dev-2017-11_thread_download-links.mbox"


def raw_messages(fixtures_dir: Path, from_line: bool = False) -> list[bytes]:
    box = mailbox.mbox(mbox(fixtures_dir), create=False)
    try:
        return [box.get_bytes(k, from_=from_line) for k in box.keys()]
    finally:
        box.close()


def check_thread(events: list) -> None:
    assert len(events) == 8
    first, second = events[0].data, events[1].data
    assert first["message_id"] == ROOT and first["subject"] == "Download links"
    assert first["sender"] == "Robert Scholte <rfscholte@apache.org>"
    assert first["to"] == ["dev@maven.apache.org"] and first["cc"] == ["sebb <sebbaz@gmail.com>"]
    # Where a message is filed is not part of it: no mailbox, and one source.
    assert first["date"] == "2017-11-17T12:27:49+01:00" and "mailbox" not in first
    assert {e.source for e in events} == {"mail"}
    # Encoded words in two charsets, decoded.
    assert second["sender"] == "Hervé BOUTEMY <herve.boutemy@free.fr>"
    assert events[-1].data["sender"] == "Arnaud Héritier <aheritier@gmail.com>"
    assert second["in_reply_to"] == ROOT and second["subject"] == "Re: Download links"
    assert {e.data["thread"] for e in events} == {ROOT}
    assert second["extra"]["links"][0] == {"rel": "reply-to", "id": events[0].id, "ref": ROOT}
    # Written by mail; senders are claims; the map is recorded where it applied.
    assert {e.creator for e in events} == {"mail"}
    assert first["extra"]["mapped"] == [{"claim": "rfscholte@apache.org", "principal": "robert"}]
    assert "mapped" not in second.get("extra", {})
    assert events[1].subject == "<5773884.Nuuv0DKoVJ@giga>"


async def test_mbox_thread_and_eml(hub: Hub, stored, fixtures_dir: Path) -> None:
    eml = fixtures_dir / "email" / "gmail_reply.eml"
    principals = Principals({"rfscholte@apache.org": "robert"})
    s = await ingest(hub, MailSource([mbox(fixtures_dir), eml], principals=principals))
    assert (s.ingested, s.skipped) == (9, [])
    events = await stored("creative.metadata")
    check_thread(events[:8])
    reply = events[8].data
    assert reply["message_id"] == "<CAKsfaBW4hj0Gek6TwbR3erng4P1y0CZzJ0d=pXtCNnYnbe7PLg@mail.gmail.com>"
    assert reply["subject"] == "Re: Test" and reply["sender"] == "Megan One <xxx@gmail.com>"
    assert reply["to"] == ["bob@example.com"] and reply["date"] == "2012-04-02T20:21:52+04:00"
    again = await ingest(hub, MailSource([mbox(fixtures_dir), eml], principals=principals))
    assert (again.ingested, again.already) == (0, 9)


async def test_broken_charset_is_one_error(hub: Hub, stored, fixtures_dir: Path, tmp_path: Path) -> None:
    msgs = raw_messages(fixtures_dir, from_line=True)
    broken = msgs[1].replace(b"=?ISO-8859-1?Q?Herv=E9?=", b"=?x-no-such-charset?Q?Herv=E9?=")
    lying = msgs[3].replace(b"=?ISO-8859-1?Q?Herv=E9?=", b"=?UTF-8?Q?Herv=E9?=")  # é in Latin-1 is not UTF-8
    box = tmp_path / "broken.mbox"
    box.write_bytes(b"".join([msgs[0], broken, msgs[2], lying, *msgs[4:]]))
    s = await ingest(hub, MailSource([box]))
    assert s.ingested == 6
    assert [e.ref for e in s.skipped] == [f"{box}#2", f"{box}#4"]
    assert s.skipped[0].reason == "From: unknown charset 'x-no-such-charset'"
    assert s.skipped[1].reason.startswith("From: bytes that are not valid utf-8")
    assert "6 ingested, 0 already there, 2 skipped" in s.line()


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotServer]:
    server = DovecotServer(tmp_path_factory.mktemp("dovecot"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_imap_read_only_incremental_by_uid(
    hub: Hub, stored, fixtures_dir: Path, tmp_path: Path, dovecot: DovecotServer
) -> None:
    msgs = raw_messages(fixtures_dir)
    dovecot.load("Lists/maven", msgs[:5])
    dovecot.load("INBOX", [(fixtures_dir / "email" / "gmail_reply.eml").read_bytes()])
    state = tmp_path / "imap.json"
    principals = Principals({"rfscholte@apache.org": "robert"})

    def source(**kw: object) -> ImapSource:
        return ImapSource(
            dovecot.url, folders=["Lists/maven", "INBOX"], state=state, principals=principals, **kw
        )  # type: ignore[arg-type]

    s = await ingest(hub, source())
    assert (s.ingested, s.skipped) == (6, [])
    # Three more arrive; the next run fetches only those (UID > the saved one).
    dovecot.load("Lists/maven", msgs[5:])
    s = await ingest(hub, source())
    assert (s.ingested, s.already, s.seen) == (3, 0, 3)
    assert (await ingest(hub, source())).seen == 0
    events = await stored("creative.metadata")
    maven = [e for e in events if e.data["subject"] != "Re: Test"]  # all but gmail_reply.eml
    assert len(maven) == 8
    assert (
        maven[0].data["message_id"] == ROOT
        and maven[1].data["sender"] == "Hervé BOUTEMY <herve.boutemy@free.fr>"
    )
    assert {e.data["thread"] for e in maven[:5]} == {ROOT}
    assert maven[0].source == "mail" and maven[0].creator == "mail"
    # Without state, every folder is read again and the hub stores nothing twice.
    s = await ingest(hub, ImapSource(dovecot.url, principals=principals))
    assert (s.ingested, s.already) == (0, 9)


async def test_imap_wrong_password_is_a_clear_error(hub: Hub, dovecot: DovecotServer) -> None:
    from creative_hub.errors import ValidationError

    with pytest.raises(ValidationError, match="login refused"):
        await ingest(hub, ImapSource(dovecot.url, password="wrong"))


async def test_header_and_message_caps_while_parsing(
    hub: Hub, stored, fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from creative_hub.sources import mail

    real = (fixtures_dir / "email" / "maven-dev-2017-11_thread_download-links.mbox").read_bytes()
    starts = [i for i in range(len(real)) if real.startswith(b"From ", i) and (i == 0 or real[i - 1] == 10)]
    first, second, rest = real[: starts[1]], real[starts[1] : starts[2]], real[starts[2] :]
    # A 3 MB header line in the second message (the mailbox module held it all, and more).
    line_end = second.index(b"\n") + 1
    huge = second[:line_end] + b"X-Padding: " + b"a" * (3 * 2**20) + b"\n" + second[line_end:]
    box = tmp_path / "hostile.mbox"
    box.write_bytes(first + huge + rest)
    s = await ingest(hub, MailSource([box]))
    assert s.ingested == 7
    (e,) = s.skipped
    assert (e.ref, e.reason) == (f"{box}#2", f"header block over {mail.MAX_HEADER} bytes: left out")
    # A message past the size cap: its body is counted as it streams by, never kept.
    monkeypatch.setattr(mail, "MAX_MESSAGE", 64 * 1024)
    big = tmp_path / "big.eml"
    big.write_bytes(b"From: a@example.org\nMessage-ID: <big@example.org>\n\n" + b"body line\n" * 10_000)
    s = await ingest(hub, MailSource([big]))
    assert [(e.ref, e.reason) for e in s.skipped] == [(str(big), "message over 65536 bytes: left out")]


async def test_a_hostile_mbox_is_read_in_bounded_memory(tmp_path: Path) -> None:
    # The caps hold while parsing, not after: an 8 MiB header line and an 8 MiB body are
    # never held (before, a 100 MB header took 1.2 GB). Python allocations are measured.
    import tracemalloc

    huge_header = b"From: a@example.org\nMessage-ID: <h@example.org>\nX-Pad: " + b"a" * (8 * 2**20)
    long_body = b"From: b@example.org\nMessage-ID: <b@example.org>\n\n" + b"line\n" * (8 * 2**20 // 5)
    box = tmp_path / "hostile.mbox"
    box.write_bytes(
        b"From a@example.org Mon Jan  1 00:00:00 2024\n" + huge_header + b"\n\nbody\n"
        b"From b@example.org Mon Jan  1 00:00:00 2024\n" + long_body
    )
    tracemalloc.start()
    try:
        items = [i async for i in MailSource([box]).iter_items()]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [type(i).__name__ for i in items] == ["ItemError", "Event"]
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB while reading a 16 MiB mbox"


def _encoded_word(text: str, label: str, codec: str) -> str:
    import base64

    return f"=?{label}?B?{base64.b64encode(text.encode(codec)).decode()}?="


@pytest.mark.parametrize(
    ("text", "label", "codec"),
    [
        ("朱镕基", "gb2312", "gb18030"),  # labelled GB2312, written in GBK (as most Chinese mailers do)
        ("똠방각하", "ks_c_5601-1987", "cp949"),  # Korean Outlook: the label of EUC-KR, the bytes of CP949
        ("①会議のお知らせ", "shift_jis", "cp932"),  # Japanese Windows: NEC special characters
        ("“quoted” – 5 €", "iso-8859-1", "cp1252"),  # Western Windows: curly quotes in "Latin-1"
    ],
)
def test_charset_labels_mean_what_mailers_write_under_them(text: str, label: str, codec: str) -> None:
    # The WHATWG Encoding Standard's reading of these labels (what browsers and mail
    # clients do): the strict codec refused them ("bytes that are not valid gb2312").
    from creative_hub.sources.mail import decode_header

    assert decode_header(_encoded_word(text, label, codec), "Subject") == text


def test_iso_2022_jp_with_windows_characters() -> None:
    # Japanese Outlook writes ISO-2022-JP with NEC's row 13 (circled numbers): CP50220.
    from creative_hub.sources.mail import decode_header

    jis = b"\x1b$B-!2q5D\x1b(B 10:00"  # ①会議 10:00
    word = "=?ISO-2022-JP?B?" + __import__("base64").b64encode(jis).decode() + "?="
    assert decode_header(word, "Subject") == "①会議 10:00"
    # Any bytes: text, or UnicodeDecodeError (decode_header's "not valid" ItemError), never else.
    import random

    from creative_hub.sources._charsets import decode

    rng = random.Random(19)
    for _ in range(2000):
        junk = bytes(rng.choice(b"\x1b$B(IJ@!-~\x80\xff\x00 ") for _ in range(rng.randint(0, 12)))
        for label in ("iso-2022-jp", "gb2312", "shift_jis", "ks_c_5601-1987"):
            try:
                assert isinstance(decode(junk, label), str)
            except UnicodeDecodeError:
                pass


async def test_an_outlook_msg_file_says_what_it_is(hub: Hub, tmp_path: Path) -> None:
    # Outlook's "Save as" .msg is a compound file, not MIME: it gave "message ... has no From".
    msg = tmp_path / "meeting.eml"
    msg.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    s = await ingest(hub, MailSource([msg]))
    assert [(e.ref, e.reason) for e in s.skipped] == [
        (str(msg), "an Outlook .msg file, not an e-mail message: save it as .eml (MIME)")
    ]


async def test_a_folder_of_mail_reads_no_links_out(hub: Hub, fixtures_dir: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "saved"
    inbox.mkdir()
    (inbox / "reply.eml").write_bytes((fixtures_dir / "email" / "gmail_reply.eml").read_bytes())
    private = tmp_path / "private.eml"
    private.write_bytes(raw_messages(fixtures_dir)[0])
    (inbox / "theirs.eml").symlink_to(private)  # would publish a message nobody filed here
    s = await ingest(hub, MailSource([inbox]))
    assert s.ingested == 1
    assert [(e.ref, e.reason) for e in s.skipped] == [
        (str(inbox / "theirs.eml"), f"a link out of the folder (to {private}): left out")
    ]
