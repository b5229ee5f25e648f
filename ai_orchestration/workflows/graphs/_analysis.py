"""The lead analysis the code owns, with the sentences a model may write in it.

Like a draft (see :mod:`._parts`), the analysis is asked for as parts: a *verdict* (how promising
the lead is) and the *drivers* of its score, one short sentence each. A part is kept only when it
passes :func:`accept_analysis_part` (nothing the facts do not say, no repetition, a verdict that
agrees with the grade, drivers that name a factor of the score); any other part comes from
:func:`template_analysis`, the deterministic analysis of the score's own factors. The score and
the missing information (*gaps*) are always the code's: it knows them. The analysis is the parts
in that order: bounded, without repetition, ending on a full sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Final

from ai_orchestration.scoring import LeadFeatures
from ai_orchestration.workflows._types import JsonDoc
from ai_orchestration.workflows.graphs._content import ContentPolicy
from ai_orchestration.workflows.graphs._parts import Part, accept, content_words

__all__ = [
    "ANALYSIS_PARTS",
    "accept_analysis_part",
    "analysis_examples",
    "analysis_text",
    "template_analysis",
]

SCORE: Final = "score"
VERDICT: Final = "verdict"
DRIVERS: Final = "drivers"
GAPS: Final = "gaps"
ANALYSIS_PARTS: Final[tuple[Part, ...]] = (
    Part(VERDICT, "how promising the lead is", 20, 160),
    Part(DRIVERS, "what drives the score", 20, 200),
)
_ORDER: Final = (SCORE, VERDICT, DRIVERS, GAPS)
# A verdict must agree with the grade the model was given: the words it may not use per grade.
_EAGER: Final = r"strong|hot|ready|excellent|great"
_UPBEAT: Final = _EAGER + r"|promising|good"
_DOWNBEAT: Final = r"weak|cold|poor|not ready|unlikely|low"
_MOOD: Final[dict[str, re.Pattern[str]]] = {
    grade: re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.I)
    for grade, words in (("A", _DOWNBEAT), ("B", _EAGER), ("C", _UPBEAT), ("D", _UPBEAT))
}
"""What the model is asked to write, in the order the analysis shows them."""
EXAMPLES: Final[tuple[tuple[dict[str, str], dict[str, str]], ...]] = (
    (
        {
            "lead_profile": "Company: Nordwind\nIndustry: retail\nEmployees: 40\n"
            "Contact title: Buyer\nDemo requested: False",
            "score": "22",
            "grade": "D",
            "factors": "- No demo request (-14)\n- Company of 40 employees (-9)\n"
            "- Viewed the pricing page once (+2)",
        },
        {
            VERDICT: "This lead is not ready for sales yet.",
            DRIVERS: "The missing demo request and the small company hold the score down.",
        },
    ),
    (
        {
            "lead_profile": "Company: Kessler Bank\nIndustry: finance\nEmployees: 5000\n"
            "Contact title: CFO\nDemo requested: True",
            "score": "88",
            "grade": "A",
            "factors": "- Requested a demo (+35)\n- C-level contact (+12)\n"
            "- Company of 5000 employees (+6)",
        },
        {
            VERDICT: "This is a strong lead that is ready for a sales call.",
            DRIVERS: "The demo request and the senior contact drive the score up.",
        },
    ),
)
"""Worked examples of the ``analysis_parts`` prompt (see :data:`~._steps.Generation.examples`);
their figures and names are unlike a real lead's, so a copied one is refused as not given."""
_NEUTRAL: Final = ContentPolicy()
"""The analysis is for salespeople, not customers: only the default checks of wording apply."""
_KNOWN_FIELDS: Final = ("employee_count", "seniority", "industry", "demo_requested")
_MISSING_WORDS: Final[dict[str, str]] = {
    "employee_count": "company size",
    "seniority": "seniority",
    "industry": "industry",
    "demo_requested": "whether they asked for a demo",
}


def template_analysis(score: JsonDoc, features: LeadFeatures) -> dict[str, str]:
    """Every part from the score's own factors (for a lead without a score: one sentence)."""
    if not score:
        verdict = "No score is available for this lead (scoring failed); a person should review it."
        return {SCORE: verdict}
    strengths = [f["reason"] for f in score.get("positive_factors", [])[:3] if f.get("reason")]
    risks = [f["reason"] for f in score.get("negative_factors", [])[:3] if f.get("reason")]
    grade = str(score.get("grade", "")).removeprefix("GRADE_")
    drivers = "Strengths: " + ("; ".join(strengths) if strengths else "none stand out") + "."
    drivers += " Risks: " + ("; ".join(risks) if risks else "none stand out") + "."
    missing = [_MISSING_WORDS[name] for name in _KNOWN_FIELDS if getattr(features, name) is None]
    gaps = ("Missing: " + ", ".join(missing) + ".") if missing else ""
    return {SCORE: f"Score {score.get('score')}/100 (grade {grade}).", DRIVERS: drivers, GAPS: gaps}


def analysis_examples() -> tuple[tuple[Mapping[str, str], str], ...]:
    """The worked examples as :class:`~._steps.Generation` takes them."""
    return tuple((variables, json.dumps(answer)) for variables, answer in EXAMPLES)


def analysis_text(parts: Mapping[str, str]) -> str:
    """The analysis: its parts in order, the empty ones left out."""
    return " ".join(parts[name] for name in _ORDER if parts.get(name))


def accept_analysis_part(
    name: str, text: str, *, facts: str, factors: str, grade: str, taken: Sequence[str]
) -> str:
    """Why the model's ``text`` may not be the analysis part ``name``; empty when it may.

    ``facts`` is everything the prompt showed the model, ``factors`` the score's factor lines:
    the drivers must name at least two words of them. A verdict must not praise a lead of grade
    C or D, nor run down one of grade A or B.
    """
    part = next(p for p in ANALYSIS_PARTS if p.name == name)
    why = accept(text, part, grounding=facts, tone="", policy=_NEUTRAL, taken=taken)
    if why:
        return why
    if name == DRIVERS and len(content_words(text) & content_words(factors)) < 2:
        return "name the factors that drive the score"
    mood = _MOOD.get(grade)
    if name == VERDICT and mood is not None and mood.search(text):
        return f"say how promising a grade {grade} lead is"
    return ""
