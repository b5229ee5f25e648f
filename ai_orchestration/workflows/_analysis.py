"""The lead analysis the code owns, with the sentences a model may write in it.

Like a draft (see :mod:`._parts`), the analysis is asked for as parts: a *verdict* (how promising
the lead is), the *drivers* of its score and the *gaps* (what important information is missing),
one or two short sentences each. A part is kept only when it passes :func:`accept_analysis_part`
(nothing the facts do not say, no repetition, and the drivers must name a factor of the score);
any other part comes from :func:`template_analysis`, the deterministic analysis of the score's own
factors. The analysis is the parts in that order: bounded, without repetition, ending on a full
sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from ai_orchestration.scoring import LeadFeatures
from ai_orchestration.workflows._content import ContentPolicy
from ai_orchestration.workflows._parts import Part, accept, content_words
from ai_orchestration.workflows._types import JsonDoc

__all__ = [
    "ANALYSIS_PARTS",
    "accept_analysis_part",
    "analysis_text",
    "template_analysis",
]

VERDICT: Final = "verdict"
DRIVERS: Final = "drivers"
GAPS: Final = "gaps"
ANALYSIS_PARTS: Final[tuple[Part, ...]] = (
    Part(VERDICT, "one sentence on how promising the lead is", 20, 200, True, 1),
    Part(DRIVERS, "one or two sentences on what drives the score", 20, 260),
    Part(GAPS, "one sentence on what important information is missing", 15, 200, True, 1),
)
"""What the model is asked to write, in the order the analysis shows them."""
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
    """Every part from the score's own factors (for a lead without a score: one verdict)."""
    if not score:
        verdict = "No score is available for this lead (scoring failed); a person should review it."
        return {VERDICT: verdict, DRIVERS: "", GAPS: ""}
    strengths = [f["reason"] for f in score.get("positive_factors", [])[:3] if f.get("reason")]
    risks = [f["reason"] for f in score.get("negative_factors", [])[:3] if f.get("reason")]
    grade = str(score.get("grade", "")).removeprefix("GRADE_")
    drivers = "Strengths: " + ("; ".join(strengths) if strengths else "none stand out") + "."
    drivers += " Risks: " + ("; ".join(risks) if risks else "none stand out") + "."
    missing = [_MISSING_WORDS[name] for name in _KNOWN_FIELDS if getattr(features, name) is None]
    gaps = ("Missing: " + ", ".join(missing) + ".") if missing else ""
    return {
        VERDICT: f"Score {score.get('score')}/100 (grade {grade}).",
        DRIVERS: drivers,
        GAPS: gaps,
    }


def analysis_text(parts: Mapping[str, str]) -> str:
    """The analysis: its parts in order, the empty ones left out."""
    return " ".join(parts[p.name] for p in ANALYSIS_PARTS if parts.get(p.name))


def accept_analysis_part(
    name: str, text: str, *, facts: str, factors: str, taken: Sequence[str]
) -> str:
    """Why the model's ``text`` may not be the analysis part ``name``; empty when it may.

    ``facts`` is everything the prompt showed the model, ``factors`` the score's factor lines:
    the drivers must name at least two words of them.
    """
    part = next(p for p in ANALYSIS_PARTS if p.name == name)
    why = accept(text, part, grounding=facts, tone="", policy=_NEUTRAL, taken=taken)
    if why:
        return why
    if name == DRIVERS and len(content_words(text) & content_words(factors)) < 2:
        return "name the factors that drive the score"
    return ""
