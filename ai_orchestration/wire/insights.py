"""Conversions between ``crm.ai.v1`` insight messages and the insight core's records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from crm.ai.v1 import common_pb2, insight_pb2
from google.protobuf.duration_pb2 import Duration

from ai_orchestration.errors import FieldViolation, InvalidArgumentError
from ai_orchestration.insight_writing import AnswerEnd
from ai_orchestration.insights import (
    RULE_KINDS,
    AlertKind,
    AlertRules,
    Citation,
    Competitor,
    CompetitorList,
    Direction,
    ErasureCounts,
    FollowUpPolicy,
    IngestItem,
    IngestSummary,
    InsightSettings,
    Interaction,
    InteractionKind,
    JsonValue,
    Severity,
    StoredAlert,
    StoredInsight,
)
from ai_orchestration.wire.times import datetime_of, timestamp

__all__ = [
    "ALERT_KINDS",
    "ALERT_KIND_NAMES",
    "KIND_NAMES",
    "alert_message",
    "answer_chunks",
    "citation_message",
    "erase_response",
    "ingest_item",
    "ingest_response",
    "insight_message",
    "settings_message",
    "settings_of",
]

_KINDS: Final[dict[int, InteractionKind]] = {
    insight_pb2.Interaction.KIND_EMAIL: InteractionKind.EMAIL,
    insight_pb2.Interaction.KIND_CALL: InteractionKind.CALL,
    insight_pb2.Interaction.KIND_TICKET: InteractionKind.TICKET,
    insight_pb2.Interaction.KIND_CHAT: InteractionKind.CHAT,
    insight_pb2.Interaction.KIND_NOTE: InteractionKind.NOTE,
    insight_pb2.Interaction.KIND_MEETING: InteractionKind.MEETING,
}
_DIRECTIONS: Final[dict[int, Direction]] = {
    insight_pb2.Interaction.DIRECTION_UNSPECIFIED: Direction.UNKNOWN,
    insight_pb2.Interaction.DIRECTION_INBOUND: Direction.INBOUND,
    insight_pb2.Interaction.DIRECTION_OUTBOUND: Direction.OUTBOUND,
    insight_pb2.Interaction.DIRECTION_INTERNAL: Direction.INTERNAL,
}
_ECHOED_ID_CHARS: Final[int] = 128
"""An invalid id is echoed in the rejection cut to the contract's own bound."""


def ingest_item(
    request: insight_pb2.IngestInteractionsRequest, violations: list[str]
) -> IngestItem:
    """The core's view of one stream message; ``violations`` (``field: description``) make
    it a rejection."""
    message = request.interaction
    size = request.ByteSize()
    if violations:
        echoed = message.interaction_id[:_ECHOED_ID_CHARS]
        return IngestItem(size, None, echoed, tuple(violations))
    interaction = Interaction(
        interaction_id=message.interaction_id,
        customer_id=message.customer_id,
        kind=_KINDS[message.kind],
        direction=_DIRECTIONS[message.direction],
        occur_time=datetime_of(message.occur_time),
        subject=message.subject,
        body=message.body,
        participants=tuple(message.participants),
    )
    return IngestItem(size, interaction, message.interaction_id)


def ingest_response(summary: IngestSummary) -> insight_pb2.IngestInteractionsResponse:
    """The stream's summary on the wire."""
    return insight_pb2.IngestInteractionsResponse(
        received=summary.received,
        ingested=summary.ingested,
        duplicates=summary.duplicates,
        rejected=[
            insight_pb2.RejectedInteraction(
                index=r.index, interaction_id=r.interaction_id, violations=list(r.violations)
            )
            for r in summary.rejected
        ],
        alerts_raised=summary.alerts_raised,
    )


def settings_message(settings: InsightSettings) -> insight_pb2.InsightSettings:
    """Settings on the wire (every alert setting spelled out, defaults included)."""
    rules = settings.alerts
    cooldown = Duration()
    cooldown.FromTimedelta(rules.cooldown)
    return insight_pb2.InsightSettings(
        competitors=[
            insight_pb2.Competitor(name=c.name, aliases=list(c.aliases))
            for c in settings.competitors.competitors
        ],
        alerts=insight_pb2.AlertSettings(
            disabled_kinds=[ALERT_KINDS[kind.value] for kind in sorted(RULE_KINDS - rules.enabled)],
            negative_threshold=rules.negative_threshold,
            churn_drop=rules.churn_drop,
            repeated_complaints=rules.repeated_complaints,
            complaint_days=rules.complaint_days,
            cooldown=cooldown,
        ),
        follow_up=insight_pb2.FollowUpSettings(
            kinds=[ALERT_KINDS[kind.value] for kind in sorted(settings.follow_up.kinds)],
            min_severity=int(settings.follow_up.min_severity),  # type: ignore[arg-type]
        ),
    )


def settings_of(message: insight_pb2.InsightSettings, *, field_prefix: str) -> InsightSettings:
    """Checked settings from the wire: every problem of both parts at once, as
    ``INVALID_ARGUMENT`` naming ``field_prefix`` fields."""
    violations: list[FieldViolation] = []
    competitors = CompetitorList()
    rules = AlertRules()
    try:
        competitors = CompetitorList(
            (Competitor(c.name, tuple(c.aliases)) for c in message.competitors),
            field_prefix=field_prefix,
        )
    except InvalidArgumentError as error:
        violations += error.violations
    alerts = message.alerts
    disabled = {ALERT_KIND_NAMES[kind] for kind in alerts.disabled_kinds}
    try:
        rules = AlertRules.checked(
            enabled=sorted(kind.value for kind in RULE_KINDS if kind.value not in disabled),
            negative_threshold=alerts.negative_threshold or None,
            churn_drop=alerts.churn_drop or None,
            repeated_complaints=alerts.repeated_complaints or None,
            complaint_days=alerts.complaint_days or None,
            cooldown=alerts.cooldown.ToTimedelta() if alerts.HasField("cooldown") else None,
            field_prefix=f"{field_prefix}alerts.",
        )
    except InvalidArgumentError as error:
        violations += error.violations
    if violations:
        raise InvalidArgumentError("invalid insight settings", violations)
    follow_up = FollowUpPolicy(
        kinds=frozenset(AlertKind(ALERT_KIND_NAMES[k]) for k in message.follow_up.kinds),
        min_severity=Severity(max(1, int(message.follow_up.min_severity))),
    )
    return InsightSettings(competitors=competitors, alerts=rules, follow_up=follow_up)


def citation_message(citation: Citation) -> common_pb2.Citation:
    """One piece of evidence on the wire."""
    return common_pb2.Citation(
        interaction_id=citation.interaction_id,
        quote=citation.quote,
        relevance=max(0.0, min(1.0, citation.relevance)),
        start_offset=citation.start,
        end_offset=citation.end,
    )


def answer_chunks(end: AnswerEnd) -> list[insight_pb2.AnswerChunk]:
    """The chunks after an answer's text: its citations, then its usage."""
    completion = end.completion
    usage = common_pb2.Usage(degraded=end.degraded)
    if completion is not None:
        usage.prompt_tokens = completion.usage.prompt_tokens
        usage.completion_tokens = completion.usage.completion_tokens
        usage.total_tokens = completion.usage.total_tokens
        usage.cost_usd = completion.usage.cost_usd
        usage.model = f"{completion.model}/{completion.deployment}"
    citations = insight_pb2.AnswerCitations(citations=[citation_message(c) for c in end.citations])
    return [insight_pb2.AnswerChunk(citations=citations), insight_pb2.AnswerChunk(usage=usage)]


_INSIGHT_KINDS: Final[dict[str, int]] = {
    "risk": insight_pb2.INSIGHT_KIND_RISK,
    "opportunity": insight_pb2.INSIGHT_KIND_OPPORTUNITY,
    "sentiment_trend": insight_pb2.INSIGHT_KIND_SENTIMENT_TREND,
    "next_best_action": insight_pb2.INSIGHT_KIND_NEXT_BEST_ACTION,
}
KIND_NAMES: Final[dict[int, str]] = {number: name for name, number in _INSIGHT_KINDS.items()}
"""Wire kind -> the core's kind name."""


def insight_message(insight: StoredInsight) -> insight_pb2.Insight:
    """A stored insight on the wire."""
    usage = insight.usage
    return insight_pb2.Insight(
        insight_id=insight.insight_id,
        customer_id=insight.customer_id,
        kind=_INSIGHT_KINDS.get(insight.kind, insight_pb2.INSIGHT_KIND_UNSPECIFIED),  # type: ignore[arg-type]
        title=insight.title,
        description=insight.description,
        confidence=insight.confidence,
        evidence=[_stored_citation(item) for item in insight.evidence],
        create_time=timestamp(insight.created_at),
        usage=common_pb2.Usage(
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            total_tokens=_int(usage.get("prompt_tokens")) + _int(usage.get("completion_tokens")),
            cost_usd=float(_int(usage.get("cost_micro_usd"))) / 1e6,
            model=str(usage.get("model") or ""),
            degraded=bool(usage.get("degraded")),
        ),
    )


def _stored_citation(item: Mapping[str, JsonValue]) -> common_pb2.Citation:
    relevance = item.get("relevance")
    return common_pb2.Citation(
        interaction_id=str(item.get("interaction_id") or ""),
        quote=str(item.get("quote") or ""),
        relevance=float(relevance) if isinstance(relevance, int | float) else 0.0,
        start_offset=_int(item.get("start")),
        end_offset=_int(item.get("end")),
    )


def _int(value: JsonValue) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


ALERT_KINDS: Final[dict[str, insight_pb2.Alert.Kind.ValueType]] = {
    "negative_sentiment": insight_pb2.Alert.KIND_NEGATIVE_SENTIMENT,
    "churn_risk": insight_pb2.Alert.KIND_CHURN_RISK,
    "competitor_mention": insight_pb2.Alert.KIND_COMPETITOR_MENTION,
    "escalation": insight_pb2.Alert.KIND_ESCALATION,
    "budget_threshold": insight_pb2.Alert.KIND_BUDGET_THRESHOLD,
}
ALERT_KIND_NAMES: Final[dict[insight_pb2.Alert.Kind.ValueType, str]] = {
    number: name for name, number in ALERT_KINDS.items()
}
"""Wire alert kind -> the core's kind name."""


def alert_message(alert: StoredAlert) -> insight_pb2.Alert:
    """An alert of the log on the wire."""
    return insight_pb2.Alert(
        alert_id=alert.alert_id,
        sequence=alert.sequence,
        customer_id=alert.customer_id,
        kind=ALERT_KINDS.get(alert.kind, insight_pb2.Alert.KIND_UNSPECIFIED),
        severity=alert.severity,  # type: ignore[arg-type]
        message=alert.message,
        evidence=[citation_message(c) for c in alert.evidence],
        create_time=timestamp(alert.created_at),
        run_id=alert.run_id,
    )


def erase_response(erasure_id: str, counts: ErasureCounts) -> insight_pb2.EraseCustomerResponse:
    """What an erasure deleted."""
    return insight_pb2.EraseCustomerResponse(
        interactions=counts.interactions,
        passages=counts.passages,
        insights=counts.insights,
        alerts=counts.alerts,
        cache_entries=counts.cache_entries,
        erasure_id=erasure_id,
        runs=counts.runs,
    )
