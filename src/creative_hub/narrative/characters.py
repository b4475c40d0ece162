"""Who is who: mentions grouped into entities, pronouns resolved, names merged, characters chosen.

Steps, each a rule of English narrative grammar rather than a list of words:

1. **Entities**: mentions with the same key (a name, or a common noun's
   lemma) are one entity, except that ``a``/``an`` brings in a new one.
2. **Gender**: the pronouns that follow an entity in its own sentence
   (``Hansel stooped and stuffed ... his coat``).
3. **Pronouns**: ``he``/``she``/``they`` go to the most recent entity of
   the same gender and number, subjects first.
4. **Merges**: naming (``a dog, called Sultan``, ``the boy was called
   Hansel``), apposition (``his wife Partlet``), the copula (``she was in
   reality a wicked witch``, ``she became queen``), vocatives
   (``‘No, wife,’ said the man`` names the one spoken to), ``my name is``
   / ``your name``, titles and spellings of one name (``Mr Korbes``,
   ``Rumplestiltskin``), and descriptions met first with ``the`` that
   nobody introduced (``said the hobgoblin`` after ``a little man`` spoke
   to her): the speaker who talked with the same person last; kinship
   ("their father" is the one whose children they are).
5. **Characters**: entities that act, speak or are spoken to, outside
   quoted speech, with a sign of being alive (speech or thought, he/she,
   ``who``, a person's name, being addressed).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from .kin import kin_kind
from .mentions import Mention, Sentence, Turn

if TYPE_CHECKING:
    from spacy.tokens import Token

__all__ = ["Entity", "animate", "resolve"]

WINDOW = 3  # sentences back a pronoun looks for its antecedent
LIVELY = 3.0  # see _resolve_pronouns
NAME_EDITS = 2  # spelling variants of one long name ("Rumpel-" / "Rumple-stiltskin")


@dataclass
class Entity:
    id: int
    mentions: list[Mention] = field(default_factory=list)
    gender: Counter[str] = field(default_factory=Counter)
    #: the gender the text itself gave, before any pronoun was resolved to it (see ``_lively``)
    seed: Counter[str] = field(default_factory=Counter)

    @cached_property
    def plural(self) -> bool:  # cached: a view's mentions are fixed once built
        nouns = [m for m in self.mentions if not m.pronoun]
        return bool(nouns) and sum(m.plural for m in nouns) * 2 > len(nouns)

    def pronoun(self) -> str | None:
        if self.plural:
            return "they"
        if not self.gender:
            return None
        (g, n), *rest = self.gender.most_common()
        return g if not rest or n > rest[0][1] else None


class _Groups:
    """Union-find over entity ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.members: dict[int, list[int]] = {}  #: root -> every id in its group (beyond itself)

    def find(self, x: int) -> int:
        while self.parent.get(x, x) != x:
            x = self.parent[x]
        return x

    def union(self, keep: int, other: int) -> None:
        a, b = self.find(keep), self.find(other)
        if a != b:
            self.parent[b] = a
            self.members.setdefault(a, []).extend([b, *self.members.pop(b, [])])

    def group(self, x: int) -> list[int]:
        root = self.find(x)
        return [root, *self.members.get(root, [])]


def _entities(mentions: list[Mention]) -> dict[int, Entity]:
    current: dict[str, int] = {}
    last_sent: dict[int, int] = {}
    ents: dict[int, Entity] = {}
    for m in mentions:
        if m.pronoun:
            continue
        eid = current.get(m.key)
        if eid is None or (m.indefinite and not m.quoted and not m.plural and m.sent - last_sent[eid] > 1):
            eid = len(ents)
            ents[eid] = Entity(eid)
            current[m.key] = eid
        m.entity = eid
        last_sent[eid] = m.sent
        ents[eid].mentions.append(m)
    return ents


def _across_speech(s: Sentence | None, m: Mention, n: Mention) -> bool:
    """Quoted speech lies between the two mentions: a turn of dialogue may change who speaks."""
    return s is not None and any(s.quoted(s.doc[j]) for j in range(m.token + 1, n.token))


def _in_relative(s: Sentence | None, n: Mention) -> bool:
    """The pronoun sits in a relative clause on some noun: it need not be the sentence's subject."""
    if s is None:
        return False
    tok = s.doc[n.token]
    while tok.head.i != tok.i:
        if tok.dep_ == "relcl":
            return True
        tok = tok.head
    return False


def _genders(mentions: list[Mention], ents: dict[int, Entity], sents: dict[int, Sentence]) -> None:
    """Vote: the first he/she/they after a noun subject, in the same sentence, before any other noun.

    Only pronouns that are themselves subjects, possessives or reflexives
    vote: an object "her" may be someone else ("proud of her, that he ...").
    """
    by_sent: dict[int, list[Mention]] = defaultdict(list)
    for m in mentions:
        if not m.quoted:
            by_sent[m.sent].append(m)
    for m in mentions:
        if m.entity >= 0 and not m.pronoun:
            ents[m.entity].gender.update(m.votes)
    for ms in by_sent.values():
        for k, m in enumerate(ms):
            if m.pronoun or m.role not in ("subj", "speaker") or m.conj or m.passive:
                continue  # "the door was locked, and she was left alone": things undergo, too
            for n in ms[k + 1 :]:
                if n.pronoun:
                    if (n.pronoun == "they") != (m.plural or bool(m.conj)):
                        break  # "said the cock: so they all four went on" says nothing of the cock
                    if _across_speech(sents.get(m.sent), m, n):
                        break  # "said the little man, ‘...’ ‘...,’ said she": the reply is the other one
                    if _in_relative(sents.get(m.sent), n):
                        break  # "the woman would listen to nothing that he had to say": another one
                    if n.role in ("subj", "speaker") or n.surface.lower().endswith("self"):
                        ents[m.entity].gender[n.pronoun] += 1
                    break
                if n.role in ("subj", "obj", "speaker", "addressee"):
                    break


def resolve(
    sentences: list[Sentence], mentions: list[Mention], turns: list[Turn]
) -> tuple[dict[int, Entity], _Groups]:
    """Entities (merged through ``groups``) with every mention and pronoun assigned."""
    ents = _entities(mentions)
    _genders(mentions, ents, {s.index: s for s in sentences})
    for e in ents.values():
        e.seed = Counter(e.gender)
    groups = _Groups()
    _merge_by_grammar(sentences, mentions, ents, groups)
    _merge_names(ents, groups)
    _resolve_pronouns(mentions, ents, groups)
    # What the pronouns went to says what each one is: "he" forty times is a he.  Then again.
    for m in mentions:
        if (
            m.pronoun in ("he", "she")
            and m.entity >= 0
            and not m.quoted
            and m.role in ("subj", "speaker", "poss")
        ):
            ents[m.entity].gender[m.pronoun] += 1
    _resolve_pronouns(mentions, ents, groups)
    _merge_by_speech(turns, mentions, ents, groups)
    _bridge(turns, mentions, ents, groups)
    _merge_kin(mentions, ents, groups)
    _resolve_pronouns(mentions, ents, groups)
    return ents, groups


def _merge_kin(mentions: list[Mention], ents: dict[int, Entity], groups: _Groups) -> None:
    rel: dict[tuple[int, str], int] = {}
    # A named possessor ("the miller's daughter") before a pronoun ("his daughter", which may
    # have gone to the wrong man): whose child someone is, is settled by the name first.
    owned = [m for m in mentions if m.possessor is not None]
    owned.sort(key=lambda m: m.possessor is not None and bool(m.possessor.pronoun))
    parent_of: dict[int, int] = {}
    for m in owned:
        if m.pronoun or m.quoted or m.entity < 0 or m.possessor is None or m.possessor.entity < 0:
            continue
        kind = kin_kind(m.key.split("-")[-1])
        parent, kin = groups.find(m.possessor.entity), groups.find(m.entity)
        if kind == "children":
            if parent_of.setdefault(kin, parent) != parent:
                continue  # one child, two parents claimed: the named one stands
        rel.setdefault((parent, kind), kin)
    for (parent, kind), kids in list(rel.items()):
        if kind != "children":
            continue
        father = rel.get((kids, "father"))
        if (
            father is not None
            and father != parent
            and _compatible(_merged(ents, groups, father), _merged(ents, groups, parent))
        ):
            groups.union(parent, father)
        mother, wife = rel.get((kids, "mother")), rel.get((parent, "wife"))
        if mother is not None and wife is not None and groups.find(mother) != groups.find(wife):
            groups.union(wife, mother)


def animate(e: Entity) -> bool:
    """A sign of life: speaks or thinks, is spoken to, is "he"/"she", "who", or a person's name."""
    return bool(e.gender) or any(
        (m.role in ("speaker", "addressee") and not m.pronoun) or m.relative_who or m.person or m.proper
        for m in e.mentions
        if not m.quoted
    )


def _lively(e: Entity) -> bool:
    """Alive by the text's own signs, not by pronouns this module resolved to it."""
    return sum(e.seed.values()) >= 2 or any(
        (m.role in ("speaker", "addressee") and not m.pronoun)
        or m.votes
        or m.relative_who
        or m.person
        or m.proper
        for m in e.mentions
        if not m.quoted
    )


def _alive_by_name(e: Entity) -> bool:
    """Alive by what its own names do (speaks, is spoken to, "who", a proper name), or often he/she."""
    return sum(e.gender.values()) >= 3 or any(
        not m.pronoun and not m.quoted and (m.role in ("speaker", "addressee") or m.relative_who or m.proper)
        for m in e.mentions
    )


def _named_apart(ents: dict[int, Entity], groups: _Groups, named: int, other: int) -> bool:
    """``named`` has a proper name and ``other`` speaks under its own common name."""
    a, b = _merged(ents, groups, named), _merged(ents, groups, other)
    return any(m.proper for m in a.mentions) and any(
        not m.pronoun and not m.quoted and m.role == "speaker" for m in b.mentions
    )


def _compatible(a: Entity | None, b: Entity | None) -> bool:
    if a is None or b is None:
        return False
    pa, pb = a.pronoun(), b.pronoun()
    return pa is None or pb is None or pa == pb


def _merged(ents: dict[int, Entity], groups: _Groups, eid: int) -> Entity:
    """A view of one group of entities as one (gender summed)."""
    root = groups.find(eid)
    view = Entity(root)
    for i in groups.group(root):
        if i in ents:
            view.mentions.extend(ents[i].mentions)
            view.gender.update(ents[i].gender)
            view.seed.update(ents[i].seed)
    view.mentions.sort(key=lambda m: m.i)
    return view


def _merge_by_grammar(
    sentences: list[Sentence], mentions: list[Mention], ents: dict[int, Entity], groups: _Groups
) -> None:
    """Naming, apposition and the copula, read off the parse."""
    by_token: dict[tuple[int, int], Mention] = {}
    for m in mentions:
        by_token[(m.sent, m.token)] = m
    for s in sentences:
        doc = s.doc
        for tok in doc[s.start : s.end]:
            here = by_token.get((s.index, tok.i))
            if s.quoted(tok):
                # In speech only a name in apposition to a description: "‘My wife Ilsabill ...’"
                head = by_token.get((s.index, tok.head.i)) if tok.dep_ == "appos" else None
                if (
                    here
                    and here.proper
                    and head
                    and not head.proper
                    and not head.pronoun
                    and head.entity >= 0
                ):
                    groups.union(head.entity, here.entity)
                continue
            if here is None and tok.dep_ == "acomp" and tok.head.lemma_ in ("become", "turn"):
                # "she really became queen": the parser may read a bare role noun as an adjective;
                # it is the one the story calls "the queen" (the nearest such mention, after first)
                here = _role_noun(mentions, tok.lower_, s.index)
            # Apposition: "his wife Partlet", "the girl Gretel".
            if tok.dep_ == "appos" and here and not here.pronoun:
                head = by_token.get((s.index, tok.head.i))
                if head and not head.pronoun and head.entity >= 0:
                    groups.union(head.entity, here.entity)
            # Naming and the copula: "X was called Y", "a dog, called Y", "she was a witch", "became queen".
            if (
                (tok.dep_ in ("oprd", "attr", "acomp") or _but_instead(tok))
                and here
                and not here.pronoun
                and here.entity >= 0
            ):
                verb = tok.head
                if any(c.dep_ == "neg" for c in verb.children):
                    continue
                if any(c.dep_ == "det" and c.lower_ == "no" for c in tok.children):
                    continue  # "he was no frog": what he is not
                if verb.lemma_ not in ("call", "name", "be", "become", "turn"):
                    continue
                subj = next((c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass")), None)
                if subj is None and verb.dep_ == "acl":
                    subj = verb.head  # "a dog, called Sultan"
                other = by_token.get((s.index, subj.i)) if subj is not None else None
                if other is not None and (other.pronoun is None and other.entity >= 0):
                    if not (here.proper and other.proper) or verb.lemma_ in ("call", "name"):
                        groups.union(other.entity, here.entity)
                elif other is not None and other.pronoun:
                    here.relative_who = True  # linked once pronouns are resolved (see _merge_copula)
                    other.conj = [here]


def _but_instead(tok: Token) -> bool:
    """ "He was no frog but a king's son": the parser hangs the second noun on the verb."""
    verb = tok.head
    return (
        tok.dep_ == "conj"
        and verb.lemma_ == "be"
        and any(c.dep_ == "cc" and c.lower_ == "but" for c in verb.children)
        and any(
            c.dep_ == "attr" and any(d.dep_ == "det" and d.lower_ == "no" for d in c.children)
            for c in verb.children
        )
    )


def _role_noun(mentions: list[Mention], key: str, sent: int) -> Mention | None:
    same = [m for m in mentions if m.key == key and not m.pronoun and not m.quoted and not m.plural]
    after = [m for m in same if m.sent > sent]
    before = [m for m in same if m.sent < sent]
    return after[0] if after else before[-1] if before else None


def _norm(key: str) -> str:
    return "".join(c for c in key.lower() if c.isalpha())


def _edits(a: str, b: str) -> int:
    if abs(len(a) - len(b)) > NAME_EDITS:
        return NAME_EDITS + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _merge_names(ents: dict[int, Entity], groups: _Groups) -> None:
    """One name in several spellings, or with a title before it, is one name."""
    proper: dict[str, int] = {}
    for e in ents.values():
        for m in e.mentions:
            if m.proper:
                proper.setdefault(_norm(m.key), e.id)
    last: dict[str, int] = {}
    for e in ents.values():
        for m in e.mentions:
            if m.proper:
                last.setdefault(_norm(m.key.split()[-1]), e.id)  # "Mr Korbes" is Korbes
    keys = list(last)
    for i, a in enumerate(keys):
        for b in keys[i:]:
            same = a == b or (len(a) >= 8 and a[0] == b[0] and _edits(a, b) <= NAME_EDITS)
            if same:
                groups.union(last[a], last[b])
    for e in ents.values():
        for m in e.mentions:
            if m.proper:
                groups.union(last[_norm(m.key.split()[-1])], e.id)


def _resolve_pronouns(mentions: list[Mention], ents: dict[int, Entity], groups: _Groups) -> None:
    recent: list[Mention] = []
    views: dict[int, Entity] = {}

    def view(eid: int) -> Entity:
        root = groups.find(eid)
        if root not in views:
            views[root] = _merged(ents, groups, root)
        return views[root]

    for m in mentions:
        if m.quoted:
            continue
        if not m.pronoun:
            if m.entity >= 0:
                recent.append(m)
            continue
        best: Mention | None = None
        best_score = -1e9
        for r in reversed(recent[-30:]):
            if m.sent - r.sent > WINDOW:
                break
            if r.entity < 0 or r.role == "poss" and False:
                continue
            e = view(r.entity)
            want = m.pronoun
            plural = bool(r.conj) or e.plural
            if (want == "they") != plural:
                continue
            if want != "they" and e.pronoun() not in (None, want):
                continue
            score = -(m.sent - r.sent) * 2.0 - (m.i - r.i) * 0.05
            # Centering: a pronoun most often continues the last subject.
            score += 3.0 if r.role in ("subj", "speaker") else 0.0
            score -= 6.0 if r.background else 0.0  # only when nobody else will do
            if m.reply and r.role == "speaker" and 0 <= m.sent - r.sent <= 1:
                continue  # dialogue alternates: "said she" just after "said the man" is not the man
            score += 0.5 if e.pronoun() == want else 0.0
            if want != "they" and not animate(e):
                score -= 2.5  # nothing yet says it is alive: possible, not likely
            elif want != "they" and not _lively(e):
                score -= LIVELY  # alive only by pronouns resolved to it before: one guess feeds the next
            if m.possessor is not None or r is m.possessor:
                continue
            ns = m.not_same
            if ns is not None and ns.entity >= 0 and groups.find(ns.entity) == groups.find(r.entity):
                continue  # "the frog followed her": not the frog (that would be "herself")
            if score > best_score:
                best, best_score = r, score
        if best is not None:
            m.entity = best.entity if not best.conj else best.entity
            if best.conj and m.pronoun == "they":
                m.conj = [best, *best.conj]
            recent.append(m)
        # a "he"/"she" linked by the copula ("she was in reality a wicked witch")
        if m.entity >= 0 and m.conj and m.pronoun != "they":
            for other in m.conj:
                if other.entity >= 0 and not other.pronoun:
                    groups.union(m.entity, other.entity)
                    views.clear()
            m.conj = []


def _turn_people(turns: list[Turn], groups: _Groups) -> list[tuple[int, int | None, int | None]]:
    """(sentence, speaker, addressee) groups per turn; an addressee not said is who spoke last."""
    out: list[tuple[int, int | None, int | None]] = []
    for k, t in enumerate(turns):
        sp = groups.find(t.speaker.entity) if t.speaker and t.speaker.entity >= 0 else None
        ad = groups.find(t.addressee.entity) if t.addressee and t.addressee.entity >= 0 else None
        if ad is None and sp is not None:
            for j in (k - 1, k + 1):
                if 0 <= j < len(turns) and abs(turns[j].sent - t.sent) <= 2:
                    other = turns[j].speaker
                    if other is not None and other.entity >= 0 and groups.find(other.entity) != sp:
                        ad = groups.find(other.entity)
                        break
        out.append((t.sent, sp, ad))
    return out


def _merge_by_speech(
    turns: list[Turn], mentions: list[Mention], ents: dict[int, Entity], groups: _Groups
) -> None:
    """Vocatives name the one spoken to; "my name is" the speaker; "your name" the one spoken to."""
    nouns = {m.key for m in mentions if not m.quoted and not m.pronoun}
    people = _turn_people(turns, groups)
    for k, (t, (_, sp, ad)) in enumerate(zip(turns, people, strict=True)):
        if t.addressee is None:
            # A name called out in a reply names the one who spoke just before; nobody else is sure.
            prev = turns[k - 1] if k > 0 else None
            ad = None
            if prev is not None and t.sent - prev.sent == 1 and prev.speaker and prev.speaker.entity >= 0:
                ad = groups.find(prev.speaker.entity)
                ad = None if ad == sp else ad
        for v in t.vocatives:
            if ad is not None and v.entity >= 0 and not v.proper and _named_apart(ents, groups, ad, v.entity):
                continue  # "‘River, give me some water’" to Partlet: the river speaks for itself
            if ad is not None and not _lively(_merged(ents, groups, ad)):
                continue  # "him" guessed for "the foliage": a name is not given to what shows no life
            if ad is not None and v.entity >= 0 and (v.proper or v.key in nouns) and not v.plural:
                if groups.find(v.entity) != sp and _compatible(
                    _merged(ents, groups, ad), _merged(ents, groups, v.entity)
                ):
                    groups.union(ad, v.entity)
        for n in t.my_name:
            if sp is not None and n.entity >= 0 and n.proper:
                groups.union(sp, n.entity)
        for n in t.your_name:
            if ad is not None and n.entity >= 0 and n.proper:
                groups.union(ad, n.entity)


def _bridge(turns: list[Turn], mentions: list[Mention], ents: dict[int, Entity], groups: _Groups) -> None:
    """A description nobody introduced ("said the hobgoblin") names someone already there."""
    seen_keys: set[str] = set()
    firsts: list[Mention] = []
    for m in mentions:
        if m.pronoun or m.role == "vocative":
            continue  # "‘Now, lady, ...’" before "said the lady": a name called out introduces nobody
        if m.key not in seen_keys:
            seen_keys.add(m.key)
            if (
                not m.quoted and not m.proper and not m.plural and m.definite and not m.postmodified
                and m.role in ("subj", "speaker")
            ):  # fmt: skip
                firsts.append(m)
    turn_at = {t.sent: k for k, t in enumerate(turns)}
    _index = {x.i: j for j, x in enumerate(mentions)}
    people: list[tuple[int, int | None, int | None]] | None = None
    for m in firsts:
        group = _merged(ents, groups, m.entity)
        if any(x.proper for x in group.mentions) or any(
            x.i < m.i for x in group.mentions if not x.pronoun and x.role != "vocative"
        ):
            continue
        target = None
        if people is None:  # recomputed only after a merge
            people = _turn_people(turns, groups)
        k = turn_at.get(m.sent)
        me = groups.find(m.entity)
        if m.role == "speaker" and k is not None:
            _, _, partner = people[k]
            if partner is None:
                prev = [p for p in people[:k] if p[1] is not None and p[1] != me and m.sent - p[0] <= 3]
                partner = prev[-1][1] if prev else None
            if partner is not None:
                for _sent, sp, ad in reversed(people[:k]):
                    other = ad if sp == partner else sp if ad == partner else None
                    if other is not None and other not in (me, partner):
                        target = other
                        break
        if target is None and m.role in ("speaker", "subj"):
            # A definite description first met as the one who acts ("the poor maiden said that
            # ...") refers back, like a pronoun, to someone alive in the last sentences: the most
            # recent one who can be it (same gender), other than the names beside it.
            owner = groups.find(m.possessor.entity) if m.possessor and m.possessor.entity >= 0 else None
            here = {
                groups.find(x.entity)
                for x in mentions
                if x.sent == m.sent and x.entity >= 0 and x is not m and not x.pronoun
            }
            roles = ("subj", "speaker") if m.role == "speaker" else ("subj", "speaker", "obj")
            pos = _index[m.i]
            for r in reversed(mentions[max(0, pos - 200) : pos]):
                if r.quoted or r.entity < 0:
                    continue
                if m.sent - r.sent > WINDOW:
                    break
                g = groups.find(r.entity)
                if g in (me, owner) or g in here or r.role not in roles:
                    continue
                cand = _merged(ents, groups, g)
                if not _alive_by_name(cand):
                    continue  # "his greediness was raised": resolved to by a pronoun, never itself alive
                if m.role == "subj" and (
                    group.pronoun() not in ("he", "she") or cand.pronoun() != group.pronoun()
                ):
                    continue  # without speech to go by, only a he for a he and a she for a she
                target = g
                break
        if not animate(group):
            continue
        if (
            target is not None
            and _alive_by_name(_merged(ents, groups, target))
            and _compatible(_merged(ents, groups, target), group)
        ):
            cand = _merged(ents, groups, target)
            if not cand.plural:
                groups.union(target, me)
                people = None
