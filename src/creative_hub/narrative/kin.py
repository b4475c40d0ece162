"""English kinship terms: a closed class, like the pronouns (not a list tuned to any tale).

Who someone's father or mother is follows from whose children they are ("a
wood-cutter with ... his two children" ... "their father"); someone who has
a daughter or a wife is a person ("the miller's daughter").
"""

from __future__ import annotations

__all__ = ["CHILDREN", "FATHER", "KIN", "MOTHER", "kin_kind"]

CHILDREN = frozenset({"child", "children", "son", "sons", "daughter", "daughters"})
FATHER = frozenset({"father", "stepfather"})
MOTHER = frozenset({"mother", "stepmother"})
KIN = CHILDREN | FATHER | MOTHER | frozenset({"wife", "husband", "brother", "sister", "brothers", "sisters"})


def kin_kind(noun: str) -> str:
    """The relation a kin noun names: "children", "father", "mother", or the noun itself."""
    if noun in CHILDREN:
        return "children"
    if noun in FATHER:
        return "father"
    return "mother" if noun in MOTHER else noun
