"""Next best actions: an explicit, ordered table from risks and opportunities to what to do.

A rank is a position in :data:`_ACTIONS`, never a score: a reader can see why "escalate to legal"
comes before "propose more seats", and changing the order is a one-line review.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ai_orchestration.insights._drafts import InsightDraft, InsightKind, make_draft


def _legal(draft: InsightDraft) -> bool:
    return bool(draft.facts.get("legal_threats"))


@dataclass(frozen=True, slots=True)
class _Action:
    code: str
    trigger: str
    """The code of the risk or opportunity that calls for it."""
    when: Callable[[InsightDraft], bool] | None = None


# Rank order: what cannot wait (a legal threat, a customer on the way out, an open complaint)
# before what wins business; an action follows from exactly one insight and cites its evidence.
_ACTIONS: Final[tuple[_Action, ...]] = (
    _Action("nba_escalate_legal", "unresolved_escalation", _legal),
    _Action("nba_retention_call", "churn_intent"),
    _Action("nba_reply_escalation", "unresolved_escalation"),
    _Action("nba_competitive_comparison", "competitor_mentioned"),
    _Action("nba_address_decline", "sentiment_decline"),
    _Action("nba_check_in", "no_recent_activity"),
    _Action("nba_try_another_contact", "unanswered_outbound"),
    _Action("nba_propose_expansion", "expansion"),
    _Action("nba_present_upgrade", "upsell"),
    _Action("nba_share_pricing", "pricing_not_discussed"),
    _Action("nba_follow_up_referral", "referral"),
)


def next_best_actions(found: Sequence[InsightDraft], limit: int) -> list[InsightDraft]:
    """The first ``limit`` actions of the table whose trigger fired; each takes its trigger's
    confidence and evidence, and its facts plus ``rank`` and ``trigger``."""
    by_code = {draft.code: draft for draft in found}
    actions: list[InsightDraft] = []
    for action in _ACTIONS:
        trigger = by_code.get(action.trigger)
        if trigger is None or (action.when is not None and not action.when(trigger)):
            continue
        facts = {**trigger.facts, "rank": len(actions) + 1, "trigger": trigger.code}
        actions.append(
            make_draft(
                InsightKind.NEXT_BEST_ACTION,
                action.code,
                trigger.confidence,
                trigger.evidence,
                facts,
            )
        )
        if len(actions) == limit:
            break
    return actions
