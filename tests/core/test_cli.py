"""The CLI as a person uses it: real processes, exit codes, one shared SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from creative_hub.cli import app
from creative_hub.testing.servers import free_port

pytestmark = pytest.mark.sqlite

CLI = [sys.executable, "-m", "creative_hub"]


def run(db: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CREATIVE_HUB_LOG": f"sqlite:///{db}",
        "CREATIVE_HUB_PRINCIPAL": "alice",
        "COLUMNS": "200",
    }
    return subprocess.run([*CLI, *args], input=input, capture_output=True, text=True, env=env, timeout=120)


def count(db: Path) -> int:
    r = run(db, "topics", "--json")
    assert r.returncode == 0, r.stderr
    return sum(t["count"] for t in json.loads(r.stdout))


FRAG = '{"story": "s1", "title": "Hello", "text": "Once upon a time"}'


def test_publish_tail_replay(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    r = run(db, "publish", "--type", "creative.narrative.fragment", "--data", FRAG, "--subject", "story:s1")
    assert r.returncode == 0, r.stderr
    assert "creative.narrative" in r.stdout
    r = run(db, "tail", "creative.narrative", "--json")
    (line,) = r.stdout.splitlines()
    ev = json.loads(line)
    assert ev["data"]["title"] == "Hello" and ev["creator"] == "alice" and ev["specversion"] == "1.0"
    out = tmp_path / "replay.jsonl"
    r = run(db, "replay", "creative.narrative", "--to", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["id"] == ev["id"]
    r = run(db, "stats", "--json")
    assert json.loads(r.stdout)[0]["count"] == 1


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["publish", "--type", "creative.narrative.nope", "--data", "{}"], None, "type: unknown type"),
        (
            ["publish", "--type", "creative.narrative.fragment", "--data", '{"story": "s"}'],
            None,
            "data.title: required",
        ),
        (
            ["publish", "--type", "creative.narrative.fragment", "--data", "{nope"],
            None,
            "data: not valid JSON",
        ),
        (["publish", "-"], "this is not json", "not valid JSON"),
        (
            ["publish", "-"],
            '{"type": "creative.narrative.fragment", "specversion": "1.0", "id": "x"}',
            "data: must be a JSON object",
        ),
        (["publish", "-"], '{"specversion": "1.0", "id": "x", "source": "/s", "data": {}}', "type: required"),
    ],
)
def test_bad_input_is_refused_with_field_and_rule(
    tmp_path: Path, args: list[str], stdin: str | None, message: str
) -> None:
    db = tmp_path / "hub.db"
    r = run(db, *args, input=stdin)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert count(db) == 0


def test_a_batch_with_one_bad_event_appends_none(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    good = {"type": "creative.narrative.fragment", "data": json.loads(FRAG)}
    bad = {"type": "creative.narrative.fragment", "data": {"story": "s1", "title": 3, "text": ""}}
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([good, good, bad, good]))
    r = run(db, "publish", str(batch))
    assert r.returncode == 2
    assert "event[2].data.title" in r.stderr
    assert count(db) == 0
    lines = tmp_path / "ok.jsonl"
    lines.write_text("\n".join(json.dumps(good) for _ in range(3)))
    assert run(db, "publish", str(lines)).returncode == 0
    assert count(db) == 3


def test_a_10_mb_payload_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    big = tmp_path / "big.json"
    big.write_text(
        json.dumps(
            {
                "type": "creative.narrative.fragment",
                "data": {"story": "s", "title": "t", "text": "x" * 10_000_000},
            }
        )
    )
    r = run(db, "publish", str(big))
    assert r.returncode == 2
    assert "exceeds the limit of 1048576 bytes" in r.stderr
    assert count(db) == 0


def test_a_publisher_process_and_a_subscriber_process_share_one_file(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    script = f"""
import asyncio, sys
from creative_hub.hub import Hub
async def main():
    async with Hub.connect("sqlite:///{db}") as hub:
        async with hub.subscribe("creative.narrative", "printer", ack_timeout=10) as sub:
            print("ready", flush=True)
            for _ in range(5):
                d = await sub.next(timeout=60)
                print(d.event.data["title"], d.event.creator, flush=True)
                await d.ack()
asyncio.run(main())
"""
    sub = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert sub.stdout is not None
        assert sub.stdout.readline().strip() == "ready"
        for i in range(5):
            data = json.dumps({"story": "s1", "title": f"part-{i}", "text": "..."})
            r = run(db, "publish", "--type", "creative.narrative.fragment", "--data", data)
            assert r.returncode == 0, r.stderr
        out, _ = sub.communicate(timeout=120)
    finally:
        if sub.poll() is None:
            sub.kill()
    assert sub.returncode == 0
    assert out.splitlines() == [f"part-{i} alice" for i in range(5)]
    r = run(db, "stats", "--json")
    (topic,) = json.loads(r.stdout)
    assert topic["groups"][0]["group"] == "printer" and topic["groups"][0]["lag"] == 0


def test_migrate_twice_adds_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    for i in range(3):
        run(
            src,
            "publish",
            "--type",
            "creative.narrative.fragment",
            "--data",
            json.dumps({"story": "s", "title": f"t{i}", "text": "x"}),
        )
    r = subprocess.run(
        [*CLI, "migrate", "--from", f"sqlite:///{src}", "--to", f"sqlite:///{dst}"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 0, r.stderr
    assert count(dst) == 3
    r = subprocess.run(
        [*CLI, "migrate", "--from", f"sqlite:///{src}", "--to", f"sqlite:///{dst}"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert r.returncode == 0
    assert count(dst) == 3
    src_ids = [
        json.loads(x)["id"] for x in run(src, "tail", "creative.narrative", "--json").stdout.splitlines()
    ]
    dst_ids = [
        json.loads(x)["id"] for x in run(dst, "tail", "creative.narrative", "--json").stdout.splitlines()
    ]
    assert src_ids == dst_ids


def test_unknown_engine_and_unreachable_file(tmp_path: Path) -> None:
    r = subprocess.run([*CLI, "topics", "--log", "mongo://x"], capture_output=True, text=True)
    assert r.returncode == 5 and "no engine for this scheme" in r.stderr
    r = subprocess.run(
        [*CLI, "topics", "--log", f"sqlite:///{tmp_path}/missing/dir/hub.db"], capture_output=True, text=True
    )
    assert r.returncode == 5 and "does not exist" in r.stderr


def test_up_starts_and_says_where_to_look(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    started = time.monotonic()
    port = free_port()
    r = run(db, "up", "--exit-after", "0.5", "--refresh", "0.2", "--port", str(port))
    assert r.returncode == 0, r.stderr
    assert "creative-hub is up" in r.stdout and str(db) in r.stdout.replace("\n", "")
    assert f"http://127.0.0.1:{port}" in r.stdout
    assert time.monotonic() - started < 60


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for group in app.registered_groups:
        assert group.typer_instance is not None, group.name
        assert group.typer_instance.info.help, f"{group.name} has no help"
        assert f"creative-hub {group.name}" in readme, f"README does not mention `creative-hub {group.name}`"
    for command in app.registered_commands:
        name = command.name or command.callback.__name__  # type: ignore[union-attr]
        assert command.callback is not None and command.callback.__doc__, f"{name} has no help"
        assert f"creative-hub {name}" in readme, f"README does not mention `creative-hub {name}`"


def test_tail_prints_the_last_n_and_warns_once_about_a_bad_record(tmp_path: Path) -> None:
    import asyncio

    from creative_hub.log import Entry, open_log

    db = tmp_path / "hub.db"
    events = "\n".join(
        json.dumps(
            {"type": "creative.narrative.fragment", "data": {"story": "s", "title": f"t{i}", "text": "."}}
        )
        for i in range(6)
    )
    assert run(db, "publish", "-", input=events).returncode == 0

    async def junk() -> None:
        log = open_log(f"sqlite:///{db}")
        await log.open()
        await log.append("creative.narrative", [Entry("junk-1", "k", b"not an event", "d")])
        await log.close()

    asyncio.run(junk())
    after = "\n".join(events.replace('"title": "t', '"title": "u').splitlines()[:2])
    assert run(db, "publish", "-", input=after).returncode == 0  # the bad record is among the last three
    r = run(db, "tail", "creative.narrative", "-n", "3", "--json")
    assert r.returncode == 0, r.stderr
    assert [json.loads(line)["data"]["title"] for line in r.stdout.splitlines()] == ["t5", "u0", "u1"]
    assert r.stderr.count("not a valid event") == 1, r.stderr  # one pass over the history
