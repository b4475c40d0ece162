"""Narrative pipeline speed: the whole outline against spaCy's own pipeline alone, same text, same run.

    .venv/bin/python bench/bench_story.py            # ~110,000 words: the shared tales, repeated
    .venv/bin/python bench/bench_story.py --repeat 4  # a quicker run

The text is novel-length, made by concatenating the shared public-domain tales
(../shared/fixtures/story-gold and stories) as numbered parts.  Each side runs
in its own child process, so each has its own peak memory (ru_maxrss) and
loads the model once, before the clock starts: the figure is words per second
of processing.  "spaCy alone" is ``nlp.pipe`` over the same scene texts.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "fixtures"


def novel(repeat: int) -> str:
    tales = sorted((SHARED / "story-gold").glob("*.txt")) + sorted((SHARED / "stories").glob("*.txt"))
    bodies = [t.read_text(encoding="utf-8-sig").split("\n\n", 1)[1] for t in tales]
    parts = [f"{i + 1}. PART {i + 1}\n\n{b}" for i, b in enumerate(bodies * repeat)]
    return "A NOVEL OF TALES\n\n" + "\n\n".join(parts)


def child(mode: str, path: Path) -> None:
    from creative_hub.narrative import nlp, outline
    from creative_hub.narrative.layout import lay_out

    text = path.read_text(encoding="utf-8")
    nlp.load()
    t0 = time.perf_counter()
    if mode == "spacy":
        lay = lay_out(text, ".txt", "novel")
        for _ in nlp.parse([text[sc.start : sc.end] for p in lay.parts for sc in p.scenes]):
            pass
        extra: dict[str, int] = {}
    else:
        o = outline(text, suffix=".txt")
        extra = {"parts": len(o.parts), "characters": len(o.characters), "plot_points": len(o.plot_points)}
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mib": peak, **extra}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20, help="times the tales are repeated (20: ~110k words)")
    ap.add_argument("--child", choices=["spacy", "outline"], help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.file)
        return
    path = Path("bench/results/story-novel.txt")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = novel(a.repeat)
    path.write_text(text, encoding="utf-8")
    words = len(re.findall(r"\S+", text))
    rows = {}
    for mode in ("spacy", "outline"):
        run = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--file", str(path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows[mode] = json.loads(run.stdout)
        r = rows[mode]
        print(f"{mode:8} {words:7d} words  {r['seconds']:7.1f} s  {words / r['seconds']:7.0f} words/s  "
              f"peak {r['peak_mib']:6.0f} MiB", flush=True)  # fmt: skip
    ratio = rows["spacy"]["seconds"] / rows["outline"]["seconds"]
    print(f"outline speed = {ratio:.2f} x spaCy's pipeline alone (target >= 0.8)")
    path.unlink()


if __name__ == "__main__":
    main()
