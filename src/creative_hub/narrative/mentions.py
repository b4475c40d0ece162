"""Mentions of who is who, read off spaCy's parse: names, descriptions, pronouns, turns of speech.

Everything here comes from the grammar of the text itself:

- a *mention* is a noun phrase's head (a proper name with its titles and
  hyphenated parts, or a common noun with its adjectives) or a personal
  pronoun, with its grammatical role (subject, object, possessor, the one
  spoken to), whether it sits inside quoted speech, and how it is
  introduced (``a``/``an`` or ``the``/``his``);
- a *turn* is a sentence with quoted speech: who says it (the subject of
  the verb outside the quotes), and to whom (``said to his wife``,
  ``told the captain``), with the vocatives inside it (``‘Well, Donkey,’``)
  and naming phrases (``my name is``, ``is your name ...?``).

The only word lists are closed grammatical classes of English (personal
pronouns, articles) and the lemmas of verbs of speaking: nothing names a
character or a kind of creature.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spacy.tokens import Doc, Span, Token

__all__ = ["Mention", "Sentence", "Turn", "read_doc"]

# Verbs that report speech or thought: their subject is someone.
SPEECH = frozenset(
    "say ask answer reply cry call shout whisper exclaim scream sing think tell speak add continue "
    "murmur mutter groan sigh laugh roar bark grumble begin repeat shriek yell beg pray".split()
)
# The core of those: verbs whose subject must be someone who talks or thinks ("the miller
# thought to himself"), unlike "begin" or "roar" that things do too.
SAYING = frozenset("say ask answer reply tell speak think whisper exclaim shout".split())
PRONOUNS = {
    "he": "he", "him": "he", "his": "he", "himself": "he",
    "she": "she", "her": "she", "hers": "she", "herself": "she",
    "they": "they", "them": "they", "their": "they", "themselves": "they",
}  # fmt: skip
ARTICLES = frozenset({"the", "a", "an"})
DEMONSTRATIVE = frozenset({"this", "that", "these", "those"})
INDEFINITE = frozenset({"a", "an", "one", "some", "another"})
SUBJECT = frozenset({"nsubj", "nsubjpass", "agent", "csubj", "expl"})


@dataclass
class Mention:
    """One reference to somebody (or something) in the text."""

    i: int  #: order in the story
    sent: int  #: global sentence index
    scene: int
    key: str  #: what groups mentions before merging: a name, or a common noun's lemma
    surface: str  #: the name as written, without articles ("little man", "Mr Korbes")
    proper: bool
    plural: bool
    pronoun: str | None  #: "he" / "she" / "they" for a pronoun
    role: str  #: subj, obj, poss, speaker, addressee, vocative, other
    quoted: bool
    indefinite: bool
    definite: bool
    possessor: Mention | None = None  #: "his" in "his wife"
    postmodified: bool = False  #: "the king of the land, who ..."
    person: bool = False  #: tagged PERSON by the named-entity recogniser
    relative_who: bool = False  #: "the ass, who saw ..."
    says: bool = False  #: subject of a verb of saying or thinking, outside quotes
    background: bool = False  #: in a sentence that only gives names
    passive: bool = False  #: subject of a passive ("the door was locked")
    votes: list[str] = field(default_factory=list)  #: "a wood-cutter with his wife": "he"
    reply: bool = False  #: speaker of a sentence that opens with the quote ("‘O, you fool!’ said she")
    token: int = -1  #: index of the head token in its doc
    entity: int = -1  #: the entity it is resolved to
    conj: list[Mention] = field(default_factory=list)  #: "Hansel and Gretel"
    #: "the frog followed her": the subject of the clause whose object this (not reflexive)
    #: pronoun is -- never the one it stands for (that would be "herself")
    not_same: Mention | None = None


@dataclass
class Turn:
    """A sentence with quoted speech."""

    sent: int
    speaker: Mention | None
    addressee: Mention | None
    vocatives: list[Mention] = field(default_factory=list)
    my_name: list[Mention] = field(default_factory=list)  #: "my name is X" / "X is my name"
    your_name: list[Mention] = field(default_factory=list)  #: "is your name X?"


@dataclass
class Sentence:
    """A sentence of a scene (spaCy's, joined where a quote's attribution was cut off)."""

    index: int
    scene: int
    doc: Doc
    start: int  #: token range in doc
    end: int
    quotes: list[tuple[int, int]]  #: character spans of quotations in the doc's text

    @property
    def span(self) -> Span:
        return self.doc[self.start : self.end]

    def quoted(self, tok: Token) -> bool:
        return self.depth(tok) > 0

    def depth(self, tok: Token) -> int:
        """How many quotations the token is inside (2: a song quoted in someone's speech)."""
        k = bisect.bisect_right(self.quotes, (tok.idx, 1 << 60))
        return sum(1 for a, b in self.quotes[:k] if a <= tok.idx < b)


def _sentences(doc: Doc, scene: int, first: int, quotes: list[tuple[int, int]]) -> list[Sentence]:
    """spaCy's sentences; a piece starting in lower case or inside a quote joins the one before."""
    out: list[Sentence] = []
    for s in doc.sents:
        first_word = next((t for t in s if not t.is_punct and not t.is_space), None)
        inside = any(a < s.start_char < b for a, b in quotes)
        if out and (first_word is None or first_word.text[:1].islower() or inside):
            out[-1].end = s.end
            continue
        out.append(Sentence(first + len(out), scene, doc, s.start, s.end, quotes))
    return out


def _hyphen_span(doc: Doc, tok: Token) -> tuple[int, int]:
    """The token's word with its hyphenated parts: "wood-cutter", "Red-Cap"."""
    a, b = tok.i, tok.i + 1
    while a >= 2 and doc[a - 1].text == "-" and not doc[a - 2].whitespace_ and not doc[a - 1].whitespace_:
        a -= 2
    while b + 1 < len(doc) and doc[b].text == "-" and not doc[b - 1].whitespace_ and not doc[b].whitespace_:
        b += 2
    return a, b


def read_doc(
    doc: Doc,
    scene: int,
    first_sentence: int,
    quotes: list[tuple[int, int]],
    lower_words: set[str],
    start_i: int,
) -> tuple[list[Sentence], list[Mention], list[Turn]]:
    """Sentences, mentions and turns of one scene's doc."""
    sents = _sentences(doc, scene, first_sentence, quotes)
    mentions: list[Mention] = []
    turns: list[Turn] = []
    by_token: dict[int, Mention] = {}
    for s in sents:
        s_mentions: list[Mention] = []
        for tok in doc[s.start : s.end]:
            m = _mention(doc, s, tok, lower_words, start_i + len(mentions) + len(s_mentions))
            if m is not None:
                s_mentions.append(m)
                by_token[tok.i] = m
        for m in s_mentions:
            tok = doc[m.token]
            if tok.dep_ == "poss" and tok.head.i in by_token:
                by_token[tok.head.i].possessor = m
            if m.pronoun and tok.dep_ == "poss" and m.pronoun != "they":
                # "a poor wood-cutter with his wife": the possessor's gender is the noun's
                owned = tok.head
                while owned.dep_ == "conj":
                    owned = owned.head
                if owned.dep_ == "pobj" and owned.head.dep_ == "prep" and owned.head.head.i in by_token:
                    by_token[owned.head.head.i].votes.append(m.pronoun)
            if m.pronoun and not tok.lower_.endswith(("self", "selves")) and tok.dep_ in ("dobj", "dative"):
                # (not after a preposition: "he took it with him" is himself)
                subj = _clause_subject(tok.head)
                if subj is not None and subj.i in by_token and subj.i < tok.i:
                    m.not_same = by_token[subj.i]
            if tok.dep_ == "conj" and tok.head.i in by_token:
                by_token[tok.head.i].conj.append(m)
                m.role = by_token[tok.head.i].role
        naming = [t for t in doc[s.start : s.end] if t.lemma_ in ("call", "name") and not s.quoted(t)]
        if any(c.dep_ == "nsubjpass" for t in naming for c in t.children):
            for m in s_mentions:  # "The boy was called Hansel and the girl Gretel": names given, not a scene
                m.background = True
        mentions.extend(s_mentions)
        if s.quotes and any(s.quoted(t) for t in doc[s.start : s.end]):
            turns.append(_turn(doc, s, by_token))
    return sents, mentions, turns


def _clause_subject(verb: Token) -> Token | None:
    """The subject of a verb, or of the verb it is coordinated with ("hopped in and followed")."""
    for _ in range(4):
        if verb.pos_ not in ("VERB", "AUX"):
            return None
        subj = next((c for c in verb.children if c.dep_ in ("nsubj", "nsubjpass")), None)
        if subj is not None:
            return subj
        if verb.dep_ != "conj":
            return None
        verb = verb.head
    return None


def _mention(doc: Doc, s: Sentence, tok: Token, lower_words: set[str], i: int) -> Mention | None:
    low = tok.lower_
    quoted = s.quoted(tok)
    if tok.pos_ == "PRON" and low in PRONOUNS:
        if quoted:
            return None
        return Mention(
            i, s.index, s.scene, "", tok.text, False, PRONOUNS[low] == "they", PRONOUNS[low],
            _role(tok), False, False, True, token=tok.i,
        )  # fmt: skip
    # "the eldest wanted to go": an adjective with "the", as a subject, stands for someone
    nominal = (
        tok.pos_ == "ADJ"
        and tok.dep_ in ("nsubj", "nsubjpass")
        and any(c.dep_ == "det" and c.lower_ == "the" for c in tok.children)
    )
    if (
        (tok.pos_ not in ("NOUN", "PROPN") and not nominal)
        or tok.dep_ in ("compound", "flat")
        or not tok.text[:1].isalpha()
    ):
        return None
    a, b = _hyphen_span(doc, tok)
    if a <= tok.head.i < b and tok.head.i != tok.i:
        return None  # a part of a hyphenated word ("wood-cutter") is read with its head
    word = doc[a:b].text
    proper = word[:1].isupper() and word.lower() not in lower_words
    if proper:
        # Titles and the parts of a name: capitalised compounds to its left ("Mr Korbes").
        while (
            a > s.start and doc[a - 1].dep_ in ("compound", "flat", "amod") and doc[a - 1].text[:1].isupper()
        ):
            a = _hyphen_span(doc, doc[a - 1])[0]
        surface = doc[a:b].text
        key = surface.lower()
    else:
        mods = []
        for child in tok.lefts:
            if child.dep_ == "amod" and child.pos_ == "ADJ" and child.i >= a - 3:
                mods.append(doc[_hyphen_span(doc, child)[0] : child.i + 1].text.lower())
            elif child.dep_ == "poss" and child.pos_ in ("NOUN", "PROPN"):
                mods.append(child.text.lower() + "’s")
            elif child.dep_ == "compound" and child.pos_ == "NOUN" and child.i < a:
                mods.append(child.text.lower())
        lemma = tok.lemma_.lower() if tok.tag_ in ("NNS", "NNPS") else low
        if a < tok.i:
            lemma = doc[a : tok.i].text.lower() + lemma
        key = lemma
        surface = " ".join([*mods[-2:], word.lower()])
    dets = [c.lower_ for c in tok.lefts if c.dep_ in ("det", "poss", "predet", "nummod")]
    if not dets and a > s.start and doc[a - 1].lower_ in DEMONSTRATIVE:
        dets = [doc[a - 1].lower_]  # "that dwarf came in": the parser may hang "that" elsewhere
    if (
        not proper
        and not quoted
        and not dets
        and tok.tag_ == "NN"
        and tok.dep_ not in ("conj", "appos", "attr", "oprd")
    ):
        return None  # a singular common noun with no article is stuff ("bread"), or a mis-tagged word
    indefinite = any(d in INDEFINITE for d in dets) or (
        tok.head.lower_ == "of" and tok.head.head.lower_ == "one"
    )
    definite = not indefinite and bool(dets)
    post = any(
        c.dep_ in ("prep", "relcl", "acl") and (c.dep_ != "prep" or c.lower_ == "of") for c in tok.rights
    )
    who = any(c.dep_ == "relcl" and any(g.lower_ == "who" for g in c.children) for c in tok.rights)
    return Mention(
        i, s.index, s.scene, key, surface, proper, tok.tag_ in ("NNS", "NNPS") and not proper, None,
        _role(tok), quoted, indefinite, definite, postmodified=post,
        person=tok.ent_type_ == "PERSON", relative_who=who, token=tok.i, passive=tok.dep_ == "nsubjpass",
        says=not quoted and tok.dep_ == "nsubj" and tok.head.pos_ == "VERB" and tok.head.lemma_ in SAYING,
    )  # fmt: skip


def _role(tok: Token) -> str:
    dep = tok.dep_
    verb = tok.head
    if dep in ("nsubjpass",) and verb.lemma_ in ("call", "name"):
        return "named"  # "the boy was called Hansel" names him; he does nothing
    if (
        dep in ("dobj", "attr")
        and verb.pos_ in ("VERB", "AUX")
        and not any(c.dep_ in SUBJECT and c.dep_ != "expl" for c in verb.children)
    ):
        # "there dwelt a poor wood-cutter", "there was once an old goat": the one brought in
        # is the subject ("there" only holds its place)
        return "subj"
    if dep == "pobj" and tok.head.lower_ == "of" and tok.head.head.lower_ in ("one", "some", "all", "each"):
        tok = tok.head.head  # "one of the messengers came": the messengers act
        dep = tok.dep_
    if dep in SUBJECT:
        return "subj"
    if dep == "poss":
        return "poss"
    if dep in ("dobj", "dative", "iobj", "pobj", "attr", "oprd"):
        return "obj"
    return "other"


def _turn(doc: Doc, s: Sentence, by_token: dict[int, Mention]) -> Turn:
    turn = Turn(s.index, None, None)
    tokens = doc[s.start : s.end]

    # Verbs of speaking first; then any verb right beside a quote ("‘...,’ whispered she").
    def beside_quote(t: Token) -> bool:
        return any(0 <= j < len(doc) and s.quoted(doc[j]) for j in (t.i - 2, t.i - 1, t.i + 1, t.i + 2))

    ranked = sorted(tokens, key=lambda t: (not beside_quote(t), t.lemma_.lower() not in SPEECH))
    for tok in ranked:
        if s.quoted(tok) or tok.pos_ not in ("VERB", "AUX"):
            continue
        near_quote = (
            any(0 <= j < len(doc) and s.quoted(doc[j]) for j in (tok.i - 1, tok.i - 2, tok.i + 1, tok.i + 2))
            or tok.i + 1 < len(doc)
            and doc[tok.i + 1].text == ":"
        )
        if tok.lemma_.lower() not in SPEECH and not near_quote:
            continue

        def unquoted(c: Token) -> bool:
            return c.i in by_token and not s.quoted(c)

        def part_of(c: Token) -> Token:
            """ "one of the messengers" speaks: the messengers do."""
            if c.lower_ in ("one", "some", "each", "all") and c.i not in by_token:
                for p in c.children:
                    if p.dep_ == "prep" and p.lower_ == "of":
                        for g in p.children:
                            if g.i in by_token:
                                return g
            return c

        subjects = [part_of(c) for c in tok.children if c.dep_ in SUBJECT]
        if not subjects and tok.dep_ == "conj":
            # "the door opened, and a little man hobbled in, and said": the nearest verb before
            # it in the chain that has a subject says who speaks.
            root = tok.head
            while root.dep_ == "conj":
                root = root.head
            chain = [root, *(c for c in root.subtree if c.dep_ == "conj" and c.pos_ in ("VERB", "AUX"))]
            before = [v for v in chain if v.i < tok.i and any(c.dep_ in SUBJECT for c in v.children)]
            # "the door opened, and a little man hobbled in, and said": the parser may hang the
            # clause "a little man hobbled in" on the chain as a noun ("man", conj) with its verb
            # as a modifier; that noun is the nearest subject, not the door.
            nouns = [
                c
                for v in chain
                for c in v.children
                if c.dep_ == "conj" and c.pos_ in ("NOUN", "PROPN") and c.i < tok.i
                and any(g.dep_ == "acl" and g.pos_ == "VERB" for g in c.children)
            ]  # fmt: skip
            if nouns and (not before or max(n.i for n in nouns) > max(v.i for v in before)):
                subjects = [max(nouns, key=lambda n: n.i)]
            elif before:
                verb = max(before, key=lambda v: v.i)
                subjects = [part_of(c) for c in verb.children if c.dep_ in SUBJECT]
        subj = next((by_token[c.i] for c in subjects if unquoted(c)), None)
        if subj is None:  # "answered the woman": the parser may take the inverted subject for an object
            subj = next((by_token[c.i] for c in tok.rights if c.i - tok.i <= 4 and unquoted(c)), None)
        if subj is None:
            continue
        if turn.speaker is None:
            turn.speaker = subj
            subj.role = "speaker"
            first = next((t for t in tokens if not t.is_space), None)
            subj.reply = first is not None and s.quoted(first)
        for c in tok.children:
            if c.dep_ in ("dative", "iobj", "dobj") and c.i in by_token and not s.quoted(c):
                if by_token[c.i] is not turn.speaker:  # "answered the woman": she speaks
                    turn.addressee = turn.addressee or by_token[c.i]
            if c.dep_ in ("prep", "dative") and c.lower_ == "to":
                for g in c.children:
                    if g.i in by_token:
                        turn.addressee = turn.addressee or by_token[g.i]
        went = tok.head
        if (
            turn.addressee is None
            and tok.dep_ == "conj"
            and went.pos_ == "VERB"
            and not any(c.dep_ == "dobj" for c in went.children)
        ):
            # "the wolf ran to a baker and said": the one gone to is the one spoken to (not in
            # "he led her to a chamber and said", where "to" says where the object went)
            for c in went.children:
                if c.dep_ == "prep" and c.lower_ == "to" and c.i < tok.i:
                    to = next((g for g in c.children if g.dep_ == "pobj" and g.i in by_token), None)
                    if to is not None and not by_token[to.i].pronoun and by_token[to.i] is not turn.speaker:
                        turn.addressee = by_token[to.i]
        if turn.speaker is not None:
            break
    if turn.addressee is not None:
        turn.addressee.role = "addressee"
    for tok in tokens:
        m = by_token.get(tok.i)
        if m is None or not m.quoted or m.pronoun:
            continue
        if _vocative(doc, s, tok) or (m.proper and _addressed_by_name(doc, s, tok)):
            m.role = "vocative"
            turn.vocatives.append(m)
        elif m.role in ("subj", "obj", "other"):
            # "my name is X", "X is my name", "is your name X?", "can your name be X?"
            verb = tok.head
            if verb.lemma_ == "be":
                for c in verb.children:
                    if c.i != tok.i and c.lower_ == "name":
                        owner = next((g.lower_ for g in c.children if g.dep_ == "poss"), "")
                        if s.depth(tok) > 1:
                            continue  # a name in a song the speaker repeats is the singer's, not theirs
                        if owner == "my":
                            turn.my_name.append(m)
                        elif owner == "your":
                            turn.your_name.append(m)
    return turn


def _vocative(doc: Doc, s: Sentence, tok: Token) -> bool:
    """Someone spoken to: a noun set off by commas or the quote's edge ("Be quiet, Gretel,")."""
    a = tok.i
    while (
        a > s.start
        and doc[a - 1].dep_ in ("det", "amod", "poss", "compound", "punct")
        and doc[a - 1].text not in (",", "‘", "“", '"', "!", "?", ".", ";", ":")
    ):
        a -= 1
    b = _hyphen_span(doc, tok)[1]
    before = doc[a - 1].text if a > 0 else "‘"
    after = doc[b].text if b < len(doc) else "’"
    edges_before = {",", "‘", "“", '"', "!", "?", ".", ";", ":"}
    edges_after = {",", "!", "?", ".", "’", "”", '"', ";"}
    if before not in edges_before or after not in edges_after:
        return False
    if any(doc[j].dep_ == "det" and doc[j].lower_ in ARTICLES for j in range(a, tok.i)):
        return False  # one calls out "Wind!" or "my dear", never "the wind": that names a thing
    if (
        doc[a - 1].text in (",",)
        and a >= 2
        and doc[a - 2].pos_ in ("ADP", "VERB", "DET")
        and not s.quoted(doc[a - 2])
    ):
        return False
    return tok.dep_ not in ("pobj", "dobj", "attr") or tok.head.pos_ == "INTJ"


def _addressed_by_name(doc: Doc, s: Sentence, tok: Token) -> bool:
    """A name right after "you"/"us" in speech, ending a clause: "come with us Master Chanticleer;"."""
    if not s.quoted(tok):
        return False
    j = tok.i - 1
    while j > s.start and (doc[j].is_space or (doc[j].pos_ == "PROPN" and doc[j].text[:1].isupper())):
        j -= 1
    k = tok.i + 1
    while k < len(doc) and doc[k].is_space:
        k += 1
    after = doc[k].text if k < len(doc) else "’"
    return doc[j].lower_ in ("you", "us", "ye", "thee") and after in (",", ";", "!", "?", ".", "’", "”", '"')
