"""The decision agent's explicit rules: qualification, next best action, confidence, hand-off.

No LLM decides anything here: a salesperson (and an auditor) can read why a lead was qualified.

**Qualification** (first rule that matches wins):

1. no score (the scoring step failed) -> NURTURE, confidence 0 (so a human decides);
2. the lead converted before (recorded outcome) -> QUALIFIED (an existing customer);
3. grade A -> QUALIFIED;
4. grade B and a demo was requested -> QUALIFIED;
5. the lead was disqualified before, or grade D without a demo request -> DISQUALIFIED;
6. otherwise -> NURTURE.

**Next best action**: QUALIFIED -> SCHEDULE_DEMO when a demo was requested, else ESCALATE when
the estimated deal value reaches ``high_value_deal`` or the contact is VP / C-level, else
SEND_EMAIL when an e-mail address is known, else CALL. NURTURE -> NURTURE_SEQUENCE.
DISQUALIFIED -> CLOSE.

**Confidence** = the score's own confidence (missing features, distance from the training data)
x clarity, where clarity = ``0.5 + 0.5 * min(1, d / clear_margin_points)`` and ``d`` is the
distance of the score from the nearest grade cut-off (a score sitting on a cut-off could as
well have had the other grade), x ``stale_factor`` when the last touch is older than
``stale_touch_days`` (the features describe an old state of the lead). Rules 2 and 5 based on a
recorded outcome keep clarity at 1: the outcome is a fact, not a threshold.

**Hand-off to a human** (an interrupt) when confidence < ``min_confidence``
(REASON_LOW_CONFIDENCE), estimated deal value > ``high_value_deal`` (REASON_HIGH_VALUE), or the
injection guard flagged the notes (REASON_GUARD_FLAGGED).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ai_orchestration.scoring import GradeCutoffs, LeadFeatures, Seniority
from ai_orchestration.workflows._types import JsonDoc

__all__ = [
    "FAILED_DRAFT_ACTIONS",
    "HOLD_FOR_REVIEW",
    "REASON_APPROVAL_REQUESTED",
    "REASON_DRAFT_FAILED_CHECKS",
    "REASON_GUARD_FLAGGED",
    "REASON_HIGH_VALUE",
    "REASON_LOW_CONFIDENCE",
    "USE_TEMPLATE",
    "Decision",
    "DecisionPolicy",
    "decide",
]

REASON_LOW_CONFIDENCE: Final = "REASON_LOW_CONFIDENCE"
REASON_HIGH_VALUE: Final = "REASON_HIGH_VALUE"
REASON_GUARD_FLAGGED: Final = "REASON_GUARD_FLAGGED"
REASON_APPROVAL_REQUESTED: Final = "REASON_APPROVAL_REQUESTED"
REASON_DRAFT_FAILED_CHECKS: Final = "REASON_DRAFT_FAILED_CHECKS"

HOLD_FOR_REVIEW: Final = "hold_for_review"
"""A generated draft that still fails a check pauses the run for a human."""
USE_TEMPLATE: Final = "use_template"
"""A generated draft that still fails a check is replaced by the template draft (degraded)."""
FAILED_DRAFT_ACTIONS: Final = (HOLD_FOR_REVIEW, USE_TEMPLATE)

QUALIFIED: Final = "QUALIFICATION_QUALIFIED"
NURTURE: Final = "QUALIFICATION_NURTURE"
DISQUALIFIED: Final = "QUALIFICATION_DISQUALIFIED"

_SENIOR: Final = frozenset({Seniority.VP, Seniority.C_LEVEL})


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """Thresholds of the decision agent's rules and of the hand-off to a human."""

    min_confidence: float = 0.6
    """Below this decision confidence a human decides (REASON_LOW_CONFIDENCE)."""
    high_value_deal: float = 100_000.0
    """Deals estimated above this value always go past a human (REASON_HIGH_VALUE); at or above
    it a qualified lead is escalated to an account executive."""
    clear_margin_points: float = 15.0
    """Score points from the nearest grade cut-off at which the grade is unambiguous."""
    stale_touch_days: int = 90
    """Last touch older than this lowers confidence by ``stale_factor``."""
    stale_factor: float = 0.8
    """Confidence multiplier for stale leads."""
    failed_draft_action: str = HOLD_FOR_REVIEW
    """What happens to a generated draft that still fails a check after its revisions (one of
    :data:`FAILED_DRAFT_ACTIONS`); it is never delivered as it is."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the decision agent decided, and whether a human must look at it."""

    qualification: str
    """A ``Qualification`` name."""
    action: str
    """A ``NextBestAction.Action`` name."""
    description: str
    """The action in a sentence."""
    confidence: float
    """0..1, see the module docstring."""
    rationale: str
    """Which rules fired, for the human and the audit trail."""
    reasons: tuple[str, ...]
    """``Interrupt.Reason`` names; empty when no human is needed."""

    def to_json(self) -> JsonDoc:
        """The decision as stored in the graph state."""
        return {
            "qualification": self.qualification,
            "next_best_action": {
                "action": self.action,
                "description": self.description,
                "confidence": self.confidence,
            },
            "rationale": self.rationale,
            "reasons": list(self.reasons),
        }


_DESCRIPTIONS: Final[dict[str, str]] = {
    "ACTION_SCHEDULE_DEMO": "Book the product demo the lead asked for.",
    "ACTION_ESCALATE": "Hand the lead to an account executive for a personal call.",
    "ACTION_SEND_EMAIL": "Send the drafted e-mail to open a conversation.",
    "ACTION_CALL": "Call the contact to qualify the need.",
    "ACTION_NURTURE_SEQUENCE": "Enrol the lead in the nurture sequence.",
    "ACTION_CLOSE": "Close the lead as not a fit.",
}


def _qualify(grade: str, features: LeadFeatures, outcome: Any) -> tuple[str, str, bool]:
    """(qualification, rule that fired, whether the rule rests on a recorded outcome)."""
    demo = bool(features.demo_requested)
    recorded = isinstance(outcome, dict) and bool(outcome.get("recorded"))
    converted = recorded and bool(outcome.get("converted"))
    if converted:
        return QUALIFIED, "the lead converted before (existing customer)", True
    if grade == "A":
        return QUALIFIED, "grade A", False
    if grade == "B" and demo:
        return QUALIFIED, "grade B and a demo was requested", False
    if recorded:
        return DISQUALIFIED, "the lead was disqualified before", True
    if grade == "D" and not demo:
        return DISQUALIFIED, "grade D and no demo request", False
    return NURTURE, f"grade {grade or '?'} without a strong buying signal", False


def _action(qualification: str, features: LeadFeatures, policy: DecisionPolicy) -> str:
    if qualification == DISQUALIFIED:
        return "ACTION_CLOSE"
    if qualification == NURTURE:
        return "ACTION_NURTURE_SEQUENCE"
    if features.demo_requested:
        return "ACTION_SCHEDULE_DEMO"
    deal = features.estimated_deal_value or 0.0
    if deal >= policy.high_value_deal or features.seniority in _SENIOR:
        return "ACTION_ESCALATE"
    return "ACTION_SEND_EMAIL" if features.email else "ACTION_CALL"


def _clarity(score: int, cutoffs: GradeCutoffs, policy: DecisionPolicy) -> float:
    distance = min(abs(score - cut) for cut in (cutoffs.a, cutoffs.b, cutoffs.c))
    return 0.5 + 0.5 * min(1.0, distance / policy.clear_margin_points)


def decide(
    *,
    score: JsonDoc,
    features: LeadFeatures,
    facts: JsonDoc,
    guard_flagged: bool,
    policy: DecisionPolicy,
) -> Decision:
    """Apply the rules of the module docstring.

    ``score`` is the ``LeadScore`` document (empty when scoring failed); ``facts`` the analysis
    agent's tool results (``outcome`` and ``cutoffs``).
    """
    reasons: list[str] = []
    deal = features.estimated_deal_value or 0.0
    if not score:
        qualification, rule, confidence = NURTURE, "no score (the scoring step failed)", 0.0
    else:
        grade = str(score.get("grade", "")).removeprefix("GRADE_")
        qualification, rule, factual = _qualify(grade, features, facts.get("outcome"))
        raw = facts.get("cutoffs")
        cutoffs = GradeCutoffs(**raw) if isinstance(raw, dict) else GradeCutoffs()
        clarity = 1.0 if factual else _clarity(int(score.get("score", 0)), cutoffs, policy)
        confidence = float(score.get("confidence", 0.0)) * clarity
        touch = features.days_since_last_touch
        if touch is not None and touch > policy.stale_touch_days:
            confidence *= policy.stale_factor
            rule += f"; last touch {touch} days ago"
    confidence = round(min(1.0, max(0.0, confidence)), 3)
    if confidence < policy.min_confidence:
        reasons.append(REASON_LOW_CONFIDENCE)
    if deal > policy.high_value_deal:
        reasons.append(REASON_HIGH_VALUE)
    if guard_flagged:
        reasons.append(REASON_GUARD_FLAGGED)
    action = _action(qualification, features, policy)
    rationale = f"{qualification.removeprefix('QUALIFICATION_')}: {rule}"
    if score:
        rationale += f" (score {score.get('score')}, confidence {confidence:.2f})"
    if reasons:
        rationale += "; needs a human: " + ", ".join(r.removeprefix("REASON_") for r in reasons)
    return Decision(
        qualification=qualification,
        action=action,
        description=_DESCRIPTIONS[action],
        confidence=confidence,
        rationale=rationale,
        reasons=tuple(reasons),
    )
