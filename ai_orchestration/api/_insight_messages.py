"""Conversions between ``crm.ai.v1`` insight messages and the insight core's records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from crm.ai.v1 import common_pb2, insight_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from ai_orchestration.insights import (
    Competitor,
    CompetitorList,
    Direction,
    IngestItem,
    IngestSummary,
    InsightSettings,
    Interaction,
    InteractionKind,
)

__all__ = [
    "citation",
    "ingest_item",
    "ingest_response",
    "settings_message",
    "settings_of",
]

_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)
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


def _time(stamp: Timestamp) -> datetime:
    return _EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


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
        occur_time=_time(message.occur_time),
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
    """Settings on the wire."""
    return insight_pb2.InsightSettings(
        competitors=[
            insight_pb2.Competitor(name=c.name, aliases=list(c.aliases))
            for c in settings.competitors.competitors
        ]
    )


def settings_of(message: insight_pb2.InsightSettings, *, field_prefix: str) -> InsightSettings:
    """Checked settings from the wire (``INVALID_ARGUMENT`` naming ``field_prefix`` fields)."""
    competitors = CompetitorList(
        (Competitor(c.name, tuple(c.aliases)) for c in message.competitors),
        field_prefix=field_prefix,
    )
    return InsightSettings(competitors=competitors)


def citation(
    interaction_id: str, quote: str, relevance: float, start: int, end: int
) -> common_pb2.Citation:
    """One piece of evidence on the wire."""
    return common_pb2.Citation(
        interaction_id=interaction_id,
        quote=quote,
        relevance=max(0.0, min(1.0, relevance)),
        start_offset=start,
        end_offset=end,
    )
