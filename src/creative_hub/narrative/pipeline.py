"""The narrative pipeline: text in, :class:`~creative_hub.narrative.model.Outline` out.

    outline(Path("tale.txt").read_text(), suffix=".txt")

Layout (parts, scenes) → spaCy over every scene in one ``nlp.pipe`` →
mentions and turns → entities, merged → characters → plot points, one per
sentence and actor, quoting the sentence verbatim and summarised in its own
words.  Deterministic: the same text gives the same outline.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

from .characters import Entity, _Groups, animate, resolve
from .kin import KIN
from .layout import Layout, SceneLayout, lay_out
from .mentions import Mention, Sentence, Turn, read_doc
from .model import Character, Outline, Part, PlotPoint, Scene
from .nlp import parse, quote_spans

if TYPE_CHECKING:
    from spacy.tokens import Token

__all__ = ["outline"]

MAX_SUMMARY = 30  # words
MAX_ALIASES = 12
MAX_TEXT = 5_000_000  # characters: a longer text is refused, not truncated
KEEP = frozenset(
    "dobj dative prt prep acomp xcomp oprd attr neg aux auxpass advmod npadvmod pobj det amod poss "
    "compound nummod quantmod case predet cc conj".split()
)
_LOWER = re.compile(r"(?<![\w’'-])[a-z][a-z-]*")


def outline(text: str, *, suffix: str = ".txt", title: str | None = None) -> Outline:
    """The outline of a story: parts and scenes, characters with aliases, plot points with evidence."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"text: {len(text)} characters, more than the {MAX_TEXT} a story may have")
    lay = lay_out(text, suffix, title or "Untitled")
    flat = [(pi, sc) for pi, p in enumerate(lay.parts) for sc in p.scenes]
    lower_words = set(_LOWER.findall(lay.text))
    sentences: list[Sentence] = []
    mentions: list[Mention] = []
    turns: list[Turn] = []
    texts = [lay.text[sc.start : sc.end] for _, sc in flat]
    quotes = [_quotes(lay, sc.start, sc.end, t) for (_, sc), t in zip(flat, texts, strict=True)]
    # A line break inside a paragraph is only layout, but the parser reads it as a token and
    # mis-attaches words around it; a space of the same length keeps every offset.
    for k, doc in enumerate(parse(t.replace("\n", " ") for t in texts)):
        s, m, t = read_doc(doc, k, len(sentences), quotes[k], lower_words, len(mentions))
        sentences += s
        mentions += m
        turns += t
    ents, groups = resolve(sentences, mentions, turns)
    chars, names = _characters(lay, ents, groups, mentions)
    parts = []
    for pi, p in enumerate(lay.parts):
        parts.append(Part(pi, p.title))
    for k, (pi, sc) in enumerate(flat):
        present = []
        for mm in mentions:
            if mm.scene == k and mm.entity >= 0 and (not mm.quoted or mm.role == "vocative"):
                name = names.get(groups.find(mm.entity))
                if name and name not in present:
                    present.append(name)
        for cue in sc.cues:
            if cue not in present:
                present.append(cue)
        parts[pi].scenes.append(Scene(k, pi, sc.title, texts[k], sc.start, present))
    points = _plot_points(sentences, mentions, turns, groups, names, flat)
    points += _fountain_lines(lay, flat, names)
    points.sort(key=lambda p: (p.scene, lay.text.find(p.evidence, flat[p.scene][1].start)))
    for n, point in enumerate(points):
        point.order = n
    return Outline(lay.title, parts, chars, points, lay.author, lay.titled)


def _quotes(lay: Layout, start: int, end: int, text: str) -> list[tuple[int, int]]:
    if lay.kind != "fountain":
        return quote_spans(text)
    # A screenplay's dialogue is speech, and its character cues are not narration.
    spans = [(a - start, b - start) for a, b, _ in lay.dialogue if start <= a < end]
    for m in re.finditer(r"^[ \t]*@?[A-Z][A-Z0-9 .'’-]*(?:\(.*\))?[ \t]*$", text, re.M):
        spans.append((m.start(), m.end()))
    for m in re.finditer(r"^[ \t]*\(.*\)[ \t]*$", text, re.M):
        spans.append((m.start(), m.end()))
    return sorted(spans)


def _characters(
    lay: Layout, ents: dict[int, Entity], groups: _Groups, mentions: list[Mention]
) -> tuple[list[Character], dict[int, str]]:
    grouped: dict[int, list[Mention]] = {}
    for m in mentions:
        if m.entity >= 0:
            grouped.setdefault(groups.find(m.entity), []).append(m)
    cues = Counter(cue for p in lay.parts for sc in p.scenes for cue in sc.cues)
    chars: list[tuple[int, int, Character]] = []
    names: dict[int, str] = {}
    taken: set[str] = set()
    used: dict[str, dict[str, int]] = {}  #: per character name: how often each of its names is used
    # Someone's daughter, wife or father is had by a person: "the miller's daughter".
    kin_owner = {
        id(m.possessor)
        for m in mentions
        if m.possessor is not None
        and not m.possessor.pronoun
        and not m.quoted
        and m.key.split("-")[-1] in KIN
    }
    for root, ms in grouped.items():
        view = Entity(root, sorted(ms, key=lambda m: m.i))
        for i in groups.group(root):
            if i in ents:
                view.gender.update(ents[i].gender)
        outside = [m for m in ms if not m.quoted]
        nouns = [m for m in outside if not m.pronoun]
        acts = sum(m.role in ("subj", "speaker") for m in outside)
        speaks = sum(m.role == "speaker" for m in outside)
        cue = next((c for c in cues if c.lower() in {m.key for m in nouns}), None)
        # Alive by its own mentions: named as a speaker or the one spoken to, "who", a proper
        # name that acts, or steadily "he"/"she" -- a pronoun resolved to it is not enough.
        noun_acts = sum(m.role in ("subj", "speaker") for m in nouns)
        acting = {m.sent for m in nouns if m.role == "subj"}
        alive = (
            any(m.role in ("speaker", "addressee") for m in nouns)
            or (any(m.relative_who for m in nouns) and noun_acts >= 1)
            or (any(m.proper for m in nouns) and acts >= 2)
            or (sum(view.gender.values()) >= 1 and noun_acts >= 3)
            or (noun_acts >= 2 and any(id(m) in kin_owner or m.says for m in nouns))
            # "the parson met them, and when he saw the procession he said": it acts under its
            # own name and speaks, as "he", in that same sentence
            or any(m.pronoun and m.role == "speaker" and m.sent in acting for m in outside)
        )
        # Called to in speech ("‘Little duck, little duck, dost thou see’") and acting twice.
        called = noun_acts >= 2 and any(m.role == "vocative" and not m.proper for m in ms)
        if not cue and (not nouns or not ((alive and animate(view)) or called)):
            continue
        forms: Counter[str] = Counter()
        proper: Counter[str] = Counter()
        for m in ms:
            if m.pronoun:
                continue
            if m.proper:
                proper[m.surface] += 2 if not m.quoted else 1
            elif not m.quoted or m.role == "vocative":
                forms[m.surface] += 1
                head = m.surface.split()[-1]
                if head != m.surface:
                    forms[head] += 0
        ordered = [n for n, _ in proper.most_common()] + [n for n, _ in forms.most_common()]
        uniq: list[str] = []
        for n in ordered:
            if n.lower() not in {u.lower() for u in uniq}:
                uniq.append(n)
        if not uniq or uniq[0].lower() in taken:
            continue
        taken.add(uniq[0].lower())
        name = cue or uniq[0]
        aliases = [u for u in uniq if u.lower() != name.lower()][:MAX_ALIASES]
        names[root] = name
        pron = view.pronoun()
        ch = Character(name, aliases, len(outside), speaks, pron)
        chars.append((-(acts + speaks + cues.get(name, 0)), ms[0].i, ch))
        used[name] = {k.lower(): v for k, v in (forms + proper).items()}
    chars.sort(key=lambda c: (c[0], c[1]))
    # One alias, two characters ("the woman": the stepmother, and the old woman later): it goes
    # to the one it names most often; a character's own name stays theirs.
    for _, _, ch in chars:
        ch.aliases = [
            a
            for a in ch.aliases
            if not any(
                o is not ch
                and (
                    a.lower() == o.name.lower()
                    or used[o.name].get(a.lower(), 0) > used[ch.name].get(a.lower(), 0)
                )
                for _, _, o in chars
            )
        ]
    return [c for _, _, c in chars], names


def _text(tokens: list[Token]) -> str:
    """The tokens as written; a gap where tokens were left out becomes one space."""
    parts = []
    for k, t in enumerate(tokens):
        parts.append(t.text)
        if k + 1 < len(tokens):
            parts.append(t.whitespace_ if tokens[k + 1].i == t.i + 1 else " ")
    out = "".join(parts).strip()
    out = re.sub(r"\s+", " ", out).strip(" ,;:-—")
    return out


def _summary_tokens(verb: Token, subj: Token, s: Sentence) -> list[Token]:
    keep: set[int] = set()
    for t in subj.subtree:
        keep.add(t.i)
    keep.add(verb.i)
    stack = [c for c in verb.children if c.i not in keep]
    while stack:
        c = stack.pop()
        if s.quoted(c) or c.dep_ not in KEEP or not (s.start <= c.i < s.end):
            continue
        if c.dep_ == "conj" and any(g.dep_ in ("nsubj", "nsubjpass") for g in c.children):
            continue
        keep.add(c.i)
        stack.extend(c.children)
    for i in list(keep):  # a hyphen or apostrophe inside a kept word ("pebble-stones")
        for j in (i - 1, i + 1):
            if j - 1 in keep and j + 1 in keep and not s.doc[j - 1].whitespace_ and not s.doc[j].whitespace_:
                keep.add(j)
    toks = [s.doc[i] for i in sorted(keep) if not s.quoted(s.doc[i]) and s.start <= i < s.end]
    while toks and (toks[-1].dep_ in ("cc", "punct") or toks[-1].is_punct):
        toks.pop()
    while toks and (toks[0].dep_ in ("cc", "punct") or toks[0].is_punct):
        toks.pop(0)
    return toks


def _words(text: str, limit: int) -> str:
    words = text.split()
    return " ".join(words[:limit])


def _plot_points(
    sentences: list[Sentence],
    mentions: list[Mention],
    turns: list[Turn],
    groups: _Groups,
    names: dict[int, str],
    flat: list[tuple[int, SceneLayout]],
) -> list[PlotPoint]:
    find = groups.find
    by_sent: dict[int, list[Mention]] = {}
    for m in mentions:
        by_sent.setdefault(m.sent, []).append(m)
    turn_of = {t.sent: t for t in turns}
    out: list[PlotPoint] = []
    for s in sentences:
        ms = by_sent.get(s.index, [])
        named = []
        for m in ms:
            n = names.get(find(m.entity)) if m.entity >= 0 else None
            if n and n not in named and (not m.quoted or m.role == "vocative"):
                named.append(n)
        evidence = _text(list(s.span))
        if not evidence:
            continue
        done: set[str] = set()
        turn = turn_of.get(s.index)
        for m in ms:
            if m.quoted or m.role not in ("subj", "speaker") or m.entity < 0:
                continue
            group = [m, *m.conj] if m.conj else [m]
            actors = [names[find(g.entity)] for g in group if g.entity >= 0 and find(g.entity) in names]
            actors = list(dict.fromkeys(actors))
            if not actors:
                continue
            actor = " and ".join(actors)
            if actor in done:
                continue
            done.add(actor)
            tok = s.doc[m.token]
            verb = tok.head
            if tok.dep_ == "pobj" and verb.lower_ == "of":  # "one of the messengers came back"
                tok = verb.head
                verb = tok.head
            while (
                verb.dep_ in ("conj", "appos") and verb.pos_ not in ("VERB", "AUX") and verb.head.i != verb.i
            ):
                verb = verb.head
            speech = turn is not None and turn.speaker is m
            words = _summary_tokens(verb, tok, s)
            summary = _text(words)
            if speech:
                said = _text([t for t in s.span if s.quoted(t) and t.text not in '‘’“”"'])
                summary = f"{summary}: {said}" if summary else said
            summary = _words(summary, MAX_SUMMARY)
            if not summary:
                continue
            pi = flat[s.scene][0]
            out.append(
                PlotPoint(0, actor, summary, evidence, pi, s.scene, verb.lemma_.lower(), speech, named)
            )
    return out


def _fountain_lines(
    lay: Layout, flat: list[tuple[int, SceneLayout]], names: dict[int, str]
) -> list[PlotPoint]:
    if lay.kind != "fountain":
        return []
    out = []
    for a, b, speaker in lay.dialogue:
        k = next((k for k, (_, sc) in enumerate(flat) if sc.start <= a < sc.end), None)
        if k is None:
            continue
        evidence = re.sub(r"\s+", " ", lay.text[a:b]).strip()
        summary = f"{_words(evidence, MAX_SUMMARY - 1)}"
        out.append(PlotPoint(0, speaker, summary, evidence, flat[k][0], k, "say", True, [speaker]))
    return out
