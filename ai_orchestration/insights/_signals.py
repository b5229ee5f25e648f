"""Signals of one interaction, computed at ingest.

Ingest stores these in the same transaction as the interaction, and alert rules read them on
commit, so extraction is deterministic, needs no LLM or network, and costs about a millisecond
per e-mail.
"""

from __future__ import annotations

from ai_orchestration.insights._detectors import CompetitorList, detect
from ai_orchestration.insights._sentiment import SentimentScorer
from ai_orchestration.insights._types import Interaction, MentionKind, Signals


class SignalExtractor:
    """Computes :class:`Signals` from an interaction's subject and body.

    Stateless apart from its scorer; safe to share like the scorer is. The tenant's competitor
    list is an argument rather than a field because it changes with the tenant's settings while
    the extractor lives as long as the process.
    """

    __slots__ = ("_scorer",)

    def __init__(self, *, scorer: SentimentScorer) -> None:
        self._scorer = scorer

    def extract(self, interaction: Interaction, competitors: CompetitorList) -> Signals:
        """Sentiment and mentions of :attr:`Interaction.text`; mention offsets index that text."""
        text = interaction.text
        mentions = detect(text, competitors)
        kinds = {mention.kind for mention in mentions}
        named = (m.term for m in mentions if m.kind is MentionKind.COMPETITOR)
        return Signals(
            sentiment=self._scorer.score(text),
            competitors=tuple(dict.fromkeys(named)),
            pricing=MentionKind.PRICING in kinds,
            churn_intent=MentionKind.CHURN in kinds,
            escalation=MentionKind.ESCALATION in kinds,
            legal_threat=MentionKind.LEGAL in kinds,
            mentions=tuple(mentions),
        )
