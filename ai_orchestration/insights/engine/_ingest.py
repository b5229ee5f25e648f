"""Ingest: a stream of interactions in, each validated on its own, committed in batches.

The servicer converts each message into an :class:`IngestItem` (an interaction, or the
violations that make it invalid) and hands the stream to :meth:`Ingestor.ingest`. Valid items
gather into a batch bounded in count and bytes; a full batch gets its signals and passages
computed (in a worker thread: pure-Python sentiment must not stall the event loop) and is
committed in one transaction before the next messages are read, so memory stays bounded
however long the stream is, and everything counted as ingested is committed before the
summary exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ai_orchestration.errors import ResourceExhaustedError
from ai_orchestration.insights._chunks import chunk
from ai_orchestration.insights._detectors import CompetitorList
from ai_orchestration.insights._records import IngestOutcome, NewInteraction
from ai_orchestration.insights._settings import InsightSettingsStore
from ai_orchestration.insights._signals import SignalExtractor
from ai_orchestration.insights._types import Interaction
from ai_orchestration.insights.engine._alerting import AlertEvaluator

__all__ = [
    "IngestItem",
    "IngestLimits",
    "IngestSummary",
    "Ingestor",
    "InteractionSink",
    "Rejection",
]


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Bounds of one ingest stream and of one committed batch."""

    max_items: int = 10_000
    """Messages per stream; past it the stream ends with RESOURCE_EXHAUSTED."""
    max_bytes: int = 64 * 1024 * 1024
    """Serialized bytes per stream."""
    batch_items: int = 200
    """Interactions per transaction."""
    batch_bytes: int = 4 * 1024 * 1024
    """Serialized bytes per transaction (bounds the memory a stream holds)."""


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One message of the stream: a valid interaction, or why it is not one."""

    size: int
    """Its serialized size in bytes."""
    interaction: Interaction | None
    """The interaction, when the message is valid."""
    interaction_id: str = ""
    """The id the message carried, valid or not (for the rejection)."""
    violations: tuple[str, ...] = ()
    """``field: description`` for each problem of an invalid message."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """An interaction that was not stored, and why."""

    index: int
    """0-based position in the stream."""
    interaction_id: str
    violations: tuple[str, ...]


@dataclass(slots=True)
class IngestSummary:
    """What a stream did; ``ingested`` counts only committed interactions."""

    received: int = 0
    ingested: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    alerts_raised: int = 0


class InteractionSink(Protocol):
    """Where batches are committed (``storage.InteractionRepository``)."""

    async def add(self, tenant_id: str, items: Sequence[NewInteraction]) -> list[IngestOutcome]:
        """Store ``items`` in one transaction; the outcome of each, in order."""


_log = logging.getLogger(__name__)
_CONFLICT = (
    "interaction_id: already ingested with different content; stored interactions are never "
    "overwritten (send the edit under a new interaction_id, or erase the customer first)"
)


class Ingestor:
    """Validates nothing itself (the servicer does); batches, extracts, commits, counts."""

    def __init__(
        self,
        *,
        sink: InteractionSink,
        extractor: SignalExtractor,
        settings: InsightSettingsStore,
        limits: IngestLimits = IngestLimits(),
        on_committed: Callable[[int], None] | None = None,
        alerts: AlertEvaluator | None = None,
    ) -> None:
        """``on_committed`` is told how many interactions each batch stored (to wake the
        embedding worker at once instead of at its next poll); ``alerts`` evaluates each
        committed batch before the stream is answered."""
        self._alerts = alerts
        self._sink = sink
        self._extractor = extractor
        self._settings = settings
        self._limits = limits
        self._on_committed = on_committed

    async def ingest(self, tenant_id: str, items: AsyncIterable[IngestItem]) -> IngestSummary:
        """Read ``items`` to the end, committing batch by batch; the summary of the stream.

        Raises:
            ResourceExhaustedError: the stream passed :attr:`IngestLimits.max_items` or
                ``max_bytes``. Batches before it are committed; its metadata counts them.
        """
        summary = IngestSummary()
        batch: list[tuple[int, Interaction]] = []
        batch_bytes = total_bytes = 0
        # One batch is committed while the next one is read: the stream keeps flowing while
        # signals are computed in a thread and the transaction runs. At most one in flight, so
        # memory stays within two batches.
        in_flight: asyncio.Task[None] | None = None
        try:
            async for item in items:
                index = summary.received
                summary.received += 1
                total_bytes += item.size
                limits = self._limits
                if summary.received > limits.max_items or total_bytes > limits.max_bytes:
                    await _finished(in_flight)
                    in_flight = None
                    await self._commit(tenant_id, batch, summary)
                    raise _over_limit(limits, summary)
                if item.interaction is None:
                    summary.rejected.append(Rejection(index, item.interaction_id, item.violations))
                    continue
                batch.append((index, item.interaction))
                batch_bytes += item.size
                if len(batch) >= limits.batch_items or batch_bytes >= limits.batch_bytes:
                    await _finished(in_flight)
                    in_flight = asyncio.create_task(self._commit(tenant_id, batch, summary))
                    batch, batch_bytes = [], 0
            await _finished(in_flight)
            in_flight = None
            await self._commit(tenant_id, batch, summary)
        finally:
            if in_flight is not None:  # the stream failed or was cancelled: let it land
                await asyncio.shield(_finished(in_flight))
        summary.rejected.sort(key=lambda r: r.index)
        return summary

    async def _commit(
        self, tenant_id: str, batch: list[tuple[int, Interaction]], summary: IngestSummary
    ) -> None:
        if not batch:
            return
        competitors = (await self._settings.get(tenant_id)).competitors
        prepared = await asyncio.to_thread(self._prepare, [i for _, i in batch], competitors)
        outcomes = await self._sink.add(tenant_id, prepared)
        stored: list[str] = []
        for (index, interaction), outcome in zip(batch, outcomes, strict=True):
            if outcome is IngestOutcome.INGESTED:
                stored.append(interaction.interaction_id)
            elif outcome is IngestOutcome.DUPLICATE:
                summary.duplicates += 1
            else:
                summary.rejected.append(Rejection(index, interaction.interaction_id, (_CONFLICT,)))
        summary.ingested += len(stored)
        if stored and self._on_committed is not None:
            self._on_committed(len(stored))
        if stored and self._alerts is not None:
            try:
                summary.alerts_raised += len(await self._alerts.evaluate(tenant_id, stored))
            except Exception:
                _log.exception("alert evaluation after ingest failed; the sweeper will retry")

    def _prepare(
        self, interactions: list[Interaction], competitors: CompetitorList
    ) -> list[NewInteraction]:
        return [
            NewInteraction(
                interaction=interaction,
                signals=self._extractor.extract(interaction, competitors),
                chunks=tuple(chunk(interaction.text)),
            )
            for interaction in interactions
        ]


async def _finished(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        await task


def _over_limit(limits: IngestLimits, summary: IngestSummary) -> ResourceExhaustedError:
    return ResourceExhaustedError(
        f"an ingest stream may carry at most {limits.max_items} interactions and "
        f"{limits.max_bytes} bytes; the first {summary.received - 1} messages were processed "
        f"({summary.ingested} ingested, {summary.duplicates} duplicates, "
        f"{len(summary.rejected)} rejected) and are safe to send again: split the rest into "
        "further streams",
        reason="INGEST_STREAM_TOO_LARGE",
        metadata={
            "received": str(summary.received - 1),
            "ingested": str(summary.ingested),
            "duplicates": str(summary.duplicates),
            "rejected": str(len(summary.rejected)),
        },
    )
