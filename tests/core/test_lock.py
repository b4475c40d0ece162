"""The lock file pins every package ``make install`` puts in the venv.

CI installs from ``requirements/dev.lock`` (versions and hashes); a
dependency added to pyproject.toml, or a lower bound raised past the pinned
version, without ``make lock`` fails here rather than installing unpinned.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dev_requirements() -> list[Requirement]:
    """pyproject's dependencies with the ``dev`` extra, self-references followed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    out = [Requirement(r) for r in project["dependencies"]]
    todo, seen = ["dev"], set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in extras[extra]:
            req = Requirement(text)
            if canon(req.name) == canon(project["name"]):
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def pinned(lock: Path) -> dict[str, str]:
    return {
        canon(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", lock.read_text(), re.M)
    }


def test_the_lock_pins_every_dependency_within_its_bounds() -> None:
    lock = pinned(ROOT / "requirements" / "dev.lock")
    missing, outside = [], []
    for req in dev_requirements():
        version = lock.get(canon(req.name))
        if version is None:
            missing.append(req.name)
        elif req.specifier and not req.specifier.contains(version, prereleases=True):
            outside.append(f"{req.name}=={version} (pyproject: {req.specifier})")
    assert not missing, f"not in requirements/dev.lock: {', '.join(sorted(set(missing)))}; run: make lock"
    assert not outside, f"pinned outside pyproject's bounds: {', '.join(outside)}; run: make lock"


def test_every_pin_has_a_hash() -> None:
    text = (ROOT / "requirements" / "dev.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text)
    unhashed = [b.split("==")[0] for b in blocks if "==" in b and "--hash=sha256:" not in b]
    assert not unhashed, f"pins without a hash: {unhashed}"
