"""The story pipeline: parts, characters with their aliases, plot points with evidence, the outline.

    from creative_hub.narrative import outline
    o = outline(text, suffix=".txt")
    o.parts, o.characters, o.plot_points, o.journey("Gretel")

Built on spaCy's English pipeline (tokens, sentences, part of speech,
dependency parse, named entities, lemmas); see ``pipeline`` for the steps.
"""

from .model import Character, Outline, Part, PlotPoint, Scene
from .nlp import NlpUnavailable
from .pipeline import outline

__all__ = ["Character", "NlpUnavailable", "Outline", "Part", "PlotPoint", "Scene", "outline"]
