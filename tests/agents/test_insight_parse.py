"""Parsing the insight agents' constrained answers (no model here: the replies are what small
models were seen to send).  A schema makes a reply parse; it does not make its strings mean
anything, so a field with no word in it ("[{", "20") is no claim, and numbering a small model
puts into a list of values ("#1. courage, honesty") is not a value."""

from __future__ import annotations

from creative_hub.agents.builtin.insight import prompts
from creative_hub.storyline import Point


def points(n: int) -> list[Point]:
    return [
        Point(id=f"p{i}", order=i, summary=f"s{i}", evidence=f"Evidence {i}.", actor="Hansel")
        for i in range(n)
    ]


SHOWN = points(4)


def test_causal_drops_needs_without_a_word_and_numbers_outside_the_list() -> None:
    reply = {
        "checks": [
            {"point": 1, "needs": "20", "established_by": 0},
            {"point": 4, "needs": "[{", "established_by": 0},
            {"point": 9, "needs": "a reason to leave", "established_by": 1},
            {"point": 3, "needs": "the pebbles", "established_by": 2},
        ],
        "setups": [{"point": 2, "note": "--"}, {"point": 2, "note": "the white bird"}],
    }
    found = prompts.parse_causal(reply, SHOWN)
    assert [f.statement for f in found] == [
        "P3 needs: the pebbles",
        "P2 sets up something never paid off: the white bird",
    ]
    assert found[0].plot_points == ["p2", "p1"] and found[0].established


def test_morals_values_are_words_and_a_lesson_has_one() -> None:
    reply = {
        "morals": [
            {"lesson": "...", "values": ["courage"], "points": [1]},
            {"lesson": "Cleverness saves the weak.", "values": ["#1. courage, honesty", "#2. kindness,"],
             "points": [1, 1, 7]},
        ]
    }  # fmt: skip
    (found,) = prompts.parse_morals(reply, SHOWN)
    assert found.statement == "Cleverness saves the weak."
    assert found.values == ["courage", "honesty", "kindness"]
    assert found.plot_points == ["p0"]


def test_continuity_needs_a_word_in_its_note_or_character() -> None:
    reply = {
        "issues": [
            {"kind": "name_clash", "character": "{", "point": 1, "note": "[]"},
            {"kind": "acts_after_exit", "character": "witch", "point": 2, "note": "she was burnt"},
            {"kind": "made_up", "character": "Gretel", "point": 1, "note": "x y"},
        ]
    }
    (found,) = prompts.parse_continuity(reply, SHOWN, "The witch came back.")
    assert (found.flag, found.character, found.statement) == ("acts_after_exit", "witch", "she was burnt")
    assert found.evidence == ["The witch came back.", "Evidence 1."]
