"""Precision and recall of the alert rules on labelled cases (the benchmark and its test)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ai_orchestration.insights._alert_settings import RULE_KINDS, AlertKind, AlertRules
from ai_orchestration.insights._alerts import evaluate_alerts
from ai_orchestration.insights._detectors import CompetitorList
from ai_orchestration.insights._sentiment import SentimentScorer
from ai_orchestration.insights._signals import SignalExtractor
from ai_orchestration.insights._synthetic_alerts import ALERT_CASE_COMPETITORS, AlertCase
from ai_orchestration.insights._trend import ScoredInteraction
from ai_orchestration.insights._types import Direction, Interaction, InteractionKind

__all__ = ["KindScore", "score_alert_cases"]


@dataclass(frozen=True, slots=True)
class KindScore:
    """How one kind's rule did on the cases."""

    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def precision(self) -> float:
        """Raised alerts that were wanted (1 when none was raised)."""
        raised = self.true_positives + self.false_positives
        return self.true_positives / raised if raised else 1.0

    @property
    def recall(self) -> float:
        """Wanted alerts that were raised (1 when none was wanted)."""
        wanted = self.true_positives + self.false_negatives
        return self.true_positives / wanted if wanted else 1.0


def score_alert_cases(
    cases: Sequence[AlertCase], *, rules: AlertRules | None = None
) -> dict[AlertKind, KindScore]:
    """Each case as a first inbound e-mail of a customer with no history, through the real
    signal extraction (the cases' competitor list) and the rules; the counts per kind."""
    extractor = SignalExtractor(scorer=SentimentScorer())
    competitors = CompetitorList.from_mapping(ALERT_CASE_COMPETITORS)
    applied = rules or AlertRules()
    counts = {kind: [0, 0, 0, 0] for kind in RULE_KINDS}
    for n, case in enumerate(cases):
        interaction = Interaction(
            interaction_id=f"case-{n}",
            customer_id="acct",
            kind=InteractionKind.EMAIL,
            direction=Direction.INBOUND,
            occur_time=datetime(2025, 3, 1, tzinfo=UTC),
            subject=case.subject,
            body=case.body,
        )
        new = ScoredInteraction.of(interaction, extractor.extract(interaction, competitors))
        raised = {d.kind for d in evaluate_alerts(new, "acct", [], rules=applied)}
        for kind in RULE_KINDS:
            if kind in case.unscored:
                continue
            wanted = kind in case.expected
            slot = (0 if wanted else 1) if kind in raised else (2 if wanted else 3)
            counts[kind][slot] += 1
    return {kind: KindScore(*values) for kind, values in sorted(counts.items())}
