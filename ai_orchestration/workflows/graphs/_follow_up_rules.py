"""The customer follow-up's collaborators and its decision rules: what to do next for a customer,
and whether a human must look first.

No LLM decides anything here. The insight rules (:func:`ai_orchestration.insights.select_insights`)
find the customer's risks and opportunities and rank the next best actions; this module maps the
top-ranked one onto the contract's ``NextBestAction`` and decides the hand-off.

**Action** (first rule that matches wins):

1. no interactions stored -> ``ACTION_UNSPECIFIED``, confidence 0, nothing drafted;
2. the insight rules ranked next best actions -> the first one, through :data:`ACTIONS`
   (e.g. ``nba_retention_call`` -> ``ACTION_CALL``), with its confidence;
3. no risk or opportunity found -> ``ACTION_SEND_EMAIL``, a check-in (or the caller's goal),
   confidence ``n / (n + 3)`` for n interactions read: the more history without a finding, the
   surer a plain follow-up is the right one.

**Hand-off to a human** (an interrupt), in this order of reasons: a churn risk
(``REASON_CHURN_RISK``), an unresolved escalation (``REASON_ESCALATION``), a legal threat in the
customer's messages of the look-back window, answered or not (``REASON_LEGAL_THREAT``),
confidence below ``min_confidence`` (``REASON_LOW_CONFIDENCE``), a retrieved passage the injection
guard flagged (``REASON_GUARD_FLAGGED``; it was withheld from the model), and the caller's
``require_approval`` (``REASON_APPROVAL_REQUESTED``).

**Evidence**: the spans behind the chosen action (its trigger's mentions or interactions), then
the spans behind the churn and escalation risks that ask for a human, then the passages
retrieved for the goal; each once, at most ``max_evidence``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from ai_orchestration.insights import (
    InsightDraft,
    InsightRules,
    Passage,
    ScoredInteraction,
    StoredInteraction,
    is_customer_voice,
)
from ai_orchestration.workflows._types import JsonDoc
from ai_orchestration.workflows.graphs._decision import (
    REASON_APPROVAL_REQUESTED,
    REASON_GUARD_FLAGGED,
    REASON_LOW_CONFIDENCE,
    DecisionPolicy,
)
from ai_orchestration.workflows.graphs._documents import CHANNELS

__all__ = [
    "ACTIONS",
    "MAX_QUOTE_CHARS",
    "NO_INTERACTIONS",
    "REASON_CHURN_RISK",
    "REASON_ESCALATION",
    "REASON_LEGAL_THREAT",
    "CustomerFollowUpPolicy",
    "CustomerHistory",
    "FollowUpDecision",
    "PassageSource",
    "decide_follow_up",
    "insight_document",
    "legal_threats",
    "passage_citation",
]

REASON_CHURN_RISK: Final = "REASON_CHURN_RISK"
REASON_ESCALATION: Final = "REASON_ESCALATION"
REASON_LEGAL_THREAT: Final = "REASON_LEGAL_THREAT"

NO_INTERACTIONS: Final = (
    "Nothing to follow up on: no interactions with this customer are stored "
    "(ingest them with IngestInteractions first)."
)
"""The action's description for a customer without interactions."""
MAX_QUOTE_CHARS: Final = 300
"""A span longer than this (a whole interaction cited for a trend) is quoted by its beginning,
cut at a space: still a verbatim slice of the interaction's text."""
_CHECK_IN: Final = "check in and hear how things are going"
_UNSPECIFIED: Final = "ACTION_UNSPECIFIED"
_SEND_EMAIL: Final = "ACTION_SEND_EMAIL"

ACTIONS: Final[Mapping[str, tuple[str, str]]] = {
    # insight code: (NextBestAction.Action, what the message should achieve, said of the reader;
    # each starts with a verb, so that the template says "I'd like to <goal>").
    "nba_escalate_legal": (
        "ACTION_ESCALATE",
        "arrange a call with their account manager about the issues they raised",
    ),
    "nba_retention_call": (
        "ACTION_CALL",
        "arrange a short call about what would make the service work better for them",
    ),
    "nba_reply_escalation": (
        _SEND_EMAIL,
        "follow up on the issue they raised and agree on the next step",
    ),
    "nba_competitive_comparison": (
        _SEND_EMAIL,
        "share how our product compares with the alternatives they are considering",
    ),
    "nba_address_decline": ("ACTION_CALL", "ask how things are going and what we could do better"),
    "nba_check_in": (_SEND_EMAIL, _CHECK_IN),
    "nba_try_another_contact": ("ACTION_CALL", "check how they would prefer to stay in touch"),
    "nba_propose_expansion": (_SEND_EMAIL, "propose the additional seats or teams they mentioned"),
    "nba_present_upgrade": ("ACTION_SCHEDULE_DEMO", "walk them through the plan they asked about"),
    "nba_share_pricing": (_SEND_EMAIL, "share our pricing"),
    "nba_follow_up_referral": (
        _SEND_EMAIL,
        "thank them for the introduction and follow up on it",
    ),
}
"""The insight rules' next best actions as the contract's actions, and what a message for each
should achieve. A code missing here (a newer insight rule) becomes a follow-up e-mail."""


class CustomerHistory(Protocol):
    """Where a customer's interactions come from (``storage.InteractionRepository``)."""

    async def history(
        self, tenant_id: str, customer_id: str, *, latest: int | None = None
    ) -> list[StoredInteraction]:
        """The customer's interactions of the tenant with their signals, oldest first; only
        the ``latest`` ones when given."""


class PassageSource(Protocol):
    """Retrieval over one customer's passages (``insight_writing.Retriever``)."""

    async def retrieve(
        self, tenant_id: str, customer_id: str, question: str, limit: int
    ) -> list[Passage]:
        """The passages of the tenant's customer most relevant to ``question``, best first."""


@dataclass(frozen=True, slots=True)
class CustomerFollowUpPolicy:
    """How the follow-up's insight agent reads the customer and what its decision cites."""

    history_size: int = 200
    """The customer's latest interactions the insight rules read."""
    passages: int = 3
    """Passages retrieved for the goal (or the top risk) and shown to the content agent."""
    rules: InsightRules = field(default_factory=InsightRules)
    """The insight rules' knobs (look-back, silence, trend windows)."""
    max_evidence: int = 8
    """Citations the decision keeps."""


@dataclass(frozen=True, slots=True)
class FollowUpDecision:
    """What the decision agent decided for a customer, and whether a human must look at it."""

    action: str
    """A ``NextBestAction.Action`` name."""
    description: str
    """The action in a sentence."""
    confidence: float
    """0..1, see the module docstring."""
    goal: str
    """What the message should achieve, said of the reader; empty when nothing is drafted."""
    channel: str
    """The ``Channel`` name to write for; empty when nothing is drafted."""
    insight: str
    """The insight code of the chosen action; empty when no rule ranked one."""
    rationale: str
    """Which rules fired, for the human and the audit trail."""
    reasons: tuple[str, ...]
    """``Interrupt.Reason`` names; empty when no human is needed."""
    evidence: tuple[JsonDoc, ...]
    """``Citation`` documents the decision rests on."""

    def to_json(self) -> JsonDoc:
        """The decision as stored in the graph state (its evidence is kept beside it)."""
        return {
            "next_best_action": {
                "action": self.action,
                "description": self.description,
                "confidence": self.confidence,
            },
            "goal": self.goal,
            "channel": self.channel,
            "insight": self.insight,
            "rationale": self.rationale,
            "reasons": list(self.reasons),
        }


def _quote(text: str, start: int, end: int) -> tuple[int, int]:
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    if end - start > MAX_QUOTE_CHARS:
        cut = text.rfind(" ", start, start + MAX_QUOTE_CHARS)
        end = cut if cut > start else start + MAX_QUOTE_CHARS
    return start, end


def insight_document(draft: InsightDraft, texts: Mapping[str, str]) -> JsonDoc:
    """``draft`` as the graph state keeps it, its evidence spans quoted from ``texts``
    (interaction id -> ``Interaction.text``) as ``Citation`` documents."""
    evidence: list[JsonDoc] = []
    for span in draft.evidence:
        text = texts.get(span.interaction_id)
        if text is None:
            continue
        start, end = _quote(text, span.start, span.end)
        evidence.append(
            {
                "interaction_id": span.interaction_id,
                "quote": text[start:end],
                "relevance": draft.confidence,
                "start_offset": start,
                "end_offset": end,
            }
        )
    return {
        "kind": draft.kind.value,
        "code": draft.code,
        "confidence": draft.confidence,
        "title": draft.title,
        "description": draft.description,
        "facts": dict(draft.facts),
        "evidence": evidence,
    }


def passage_citation(passage: Mapping[str, Any]) -> JsonDoc:
    """The ``Citation`` of a retrieved passage (as the graph state keeps it)."""
    return {
        "interaction_id": str(passage["interaction_id"]),
        "quote": str(passage["text"]),
        "relevance": float(passage["score"]),
        "start_offset": int(passage["start"]),
        "end_offset": int(passage["end"]),
    }


def _evidence(groups: Sequence[Sequence[Any]], limit: int) -> tuple[JsonDoc, ...]:
    kept: dict[tuple[str, int, int], JsonDoc] = {}
    for group in groups:
        for citation in group:
            key = (citation["interaction_id"], citation["start_offset"], citation["end_offset"])
            kept.setdefault(key, dict(citation))
    return tuple(list(kept.values())[:limit])


def _reasons(
    by_code: Mapping[str, JsonDoc],
    facts: Mapping[str, Any],
    confidence: float,
    *,
    require_approval: bool,
    policy: DecisionPolicy,
) -> list[str]:
    reasons = []
    if "churn_intent" in by_code:
        reasons.append(REASON_CHURN_RISK)
    escalation = by_code.get("unresolved_escalation")
    if escalation is not None:
        reasons.append(REASON_ESCALATION)
    open_legal = escalation is not None and bool(escalation["facts"].get("legal_threats"))
    if open_legal or int(facts.get("legal_threats", 0)) > 0:
        reasons.append(REASON_LEGAL_THREAT)
    if confidence < policy.min_confidence:
        reasons.append(REASON_LOW_CONFIDENCE)
    if int(facts.get("flagged_passages", 0)) > 0:
        reasons.append(REASON_GUARD_FLAGGED)
    if require_approval:
        reasons.append(REASON_APPROVAL_REQUESTED)
    return reasons


def decide_follow_up(
    *,
    insights: Sequence[JsonDoc],
    facts: Mapping[str, Any],
    passages: Sequence[Mapping[str, Any]],
    goal: str,
    channel: str,
    require_approval: bool,
    policy: DecisionPolicy,
    max_evidence: int,
) -> FollowUpDecision:
    """Apply the rules of the module docstring.

    ``insights`` are :func:`insight_document` documents in the insight rules' order; ``facts``
    the insight agent's counts (``interactions``, ``legal_threats``, ``flagged_passages``);
    ``passages`` the retrieved passages shown to the model; ``goal`` and ``channel`` the
    caller's (either may be empty).
    """
    interactions = int(facts.get("interactions", 0))
    if interactions == 0:
        return FollowUpDecision(
            action=_UNSPECIFIED,
            description=NO_INTERACTIONS,
            confidence=0.0,
            goal="",
            channel="",
            insight="",
            rationale="no interactions stored for the customer: nothing was drafted",
            reasons=(),
            evidence=(),
        )
    by_code = {str(doc["code"]): doc for doc in insights}
    chosen = next((doc for doc in insights if doc["kind"] == "next_best_action"), None)
    if chosen is not None:
        code = str(chosen["code"])
        action, achieve = ACTIONS.get(code, (_SEND_EMAIL, "follow up on what they raised"))
        confidence = float(chosen["confidence"])
        description = f"{chosen['title']}."
        rule = f"{chosen['title']}: {chosen['description']} (rule {code}"
    else:
        code, action, achieve = "", _SEND_EMAIL, _CHECK_IN
        confidence = round(interactions / (interactions + 3), 4)
        description = "Send a follow-up: no risk or opportunity calls for another action."
        rule = f"no risk or opportunity in {interactions} interactions (a follow-up"
    rule += f", confidence {confidence:.2f})"
    reasons = _reasons(by_code, facts, confidence, require_approval=require_approval, policy=policy)
    rationale = rule
    if reasons:
        rationale += "; needs a human: " + ", ".join(r.removeprefix("REASON_") for r in reasons)
    behind = [
        by_code[c]["evidence"] for c in ("churn_intent", "unresolved_escalation") if c in by_code
    ]
    groups = [chosen["evidence"] if chosen is not None else [], *behind]
    groups.append([passage_citation(p) for p in passages])
    if channel not in CHANNELS:
        channel = "CHANNEL_PHONE" if action == "ACTION_CALL" else "CHANNEL_EMAIL"
    return FollowUpDecision(
        action=action,
        description=description,
        confidence=confidence,
        goal=goal.strip() or achieve,
        channel=channel,
        insight=code,
        rationale=rationale,
        reasons=tuple(reasons),
        evidence=_evidence(groups, max_evidence),
    )


def legal_threats(history: Sequence[ScoredInteraction], *, now: datetime, days: int) -> int:
    """The customer's messages of the ``days`` before ``now`` that threaten legal action."""
    start = now - timedelta(days=days)
    return sum(
        1
        for item in history
        if start <= item.occur_time <= now and item.signals.legal_threat and is_customer_voice(item)
    )
