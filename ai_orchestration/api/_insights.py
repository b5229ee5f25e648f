"""InsightService: thin adapter over the insight core (``ai_orchestration.insights``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import grpc.aio
from crm.ai.v1 import insight_pb2, insight_pb2_grpc

from ai_orchestration.api._interceptor import is_malformed
from ai_orchestration.api._validation import (
    bad_page_token,
    masked_paths,
    validate_request,
    validates_own_request,
)
from ai_orchestration.errors import InvalidArgumentError
from ai_orchestration.insight_writing import (
    DEFAULT_SOURCES,
    AnswerEnd,
    CustomerAnswers,
    InsightGenerator,
    InsightProgress,
)
from ai_orchestration.insights import (
    AlertFilter,
    AlertWatcher,
    IngestItem,
    Ingestor,
    InsightKind,
    InsightSettingsStore,
    StoredAlert,
)
from ai_orchestration.security import current_principal
from ai_orchestration.storage import CustomerInsightRepository, InvalidPageTokenError
from ai_orchestration.wire.insights import (
    ALERT_KIND_NAMES,
    KIND_NAMES,
    alert_message,
    answer_chunks,
    erase_response,
    ingest_item,
    ingest_response,
    insight_message,
    settings_message,
    settings_of,
)
from ai_orchestration.workflows.engine import CustomerErasure

__all__ = ["InsightServicer"]

Context = grpc.aio.ServicerContext[Any, Any]
_SETTINGS_FIELDS = ("competitors", "alerts", "follow_up")
DEFAULT_PAGE_SIZE = 50
_MALFORMED = "interaction: the message does not decode as an IngestInteractionsRequest"


class InsightServicer(insight_pb2_grpc.InsightServiceServicer):
    """``crm.ai.v1.InsightService``; every call reads the tenant from the caller's token."""

    def __init__(
        self,
        *,
        ingestor: Ingestor,
        settings: InsightSettingsStore,
        answers: CustomerAnswers,
        generator: InsightGenerator,
        insights: CustomerInsightRepository,
        erasure: CustomerErasure,
        watcher: AlertWatcher,
    ) -> None:
        self._ingestor = ingestor
        self._settings = settings
        self._answers = answers
        self._generator = generator
        self._watcher = watcher
        self._encoded = _EncodedAlerts()
        self._insights = insights
        self._erasure = erasure

    @validates_own_request
    async def IngestInteractions(
        self, request_iterator: AsyncIterator[Any], context: Context
    ) -> insight_pb2.IngestInteractionsResponse:
        summary = await self._ingestor.ingest(
            current_principal().tenant_id, _items(request_iterator)
        )
        return ingest_response(summary)

    async def GetInsightSettings(
        self, request: insight_pb2.GetInsightSettingsRequest, context: Context
    ) -> insight_pb2.InsightSettings:
        return settings_message(await self._settings.get(current_principal().tenant_id))

    async def UpdateInsightSettings(
        self, request: insight_pb2.UpdateInsightSettingsRequest, context: Context
    ) -> insight_pb2.InsightSettings:
        tenant = current_principal().tenant_id
        paths = masked_paths(request.update_mask.paths, _SETTINGS_FIELDS)
        merged = settings_message(await self._settings.get(tenant))
        for path in paths:
            if path == "competitors":
                del merged.competitors[:]
                merged.competitors.extend(request.settings.competitors)
            else:
                getattr(merged, path).CopyFrom(getattr(request.settings, path))
        checked = settings_of(merged, field_prefix="settings.")
        return settings_message(await self._settings.put(tenant, checked))

    async def AskCustomer(
        self, request: insight_pb2.AskCustomerRequest, context: Context
    ) -> AsyncIterator[insight_pb2.AnswerChunk]:
        tenant = current_principal().tenant_id
        sources = request.max_sources or DEFAULT_SOURCES
        async for item in self._answers.ask(
            tenant, request.customer_id, request.question, sources=sources
        ):
            if isinstance(item, AnswerEnd):
                for chunk in answer_chunks(item):
                    yield chunk
            elif item:
                yield insight_pb2.AnswerChunk(text_delta=item)

    async def GenerateInsights(
        self, request: insight_pb2.GenerateInsightsRequest, context: Context
    ) -> AsyncIterator[insight_pb2.GenerateInsightsEvent]:
        since = request.since.ToDatetime(tzinfo=UTC) if request.HasField("since") else None
        async for item in self._generator.generate(
            current_principal().tenant_id,
            request.customer_id,
            kinds=[InsightKind(KIND_NAMES[kind]) for kind in request.kinds],
            since=since,
        ):
            if isinstance(item, InsightProgress):
                progress = insight_pb2.InsightProgress(
                    stage=item.stage, interactions=item.interactions
                )
                yield insight_pb2.GenerateInsightsEvent(progress=progress)
            else:
                yield insight_pb2.GenerateInsightsEvent(insight=insight_message(item))

    async def ListInsights(
        self, request: insight_pb2.ListInsightsRequest, context: Context
    ) -> insight_pb2.ListInsightsResponse:
        try:
            page, token = await self._insights.page(
                current_principal().tenant_id,
                request.customer_id,
                kinds=[KIND_NAMES[kind] for kind in request.kinds],
                page_size=request.page_size or DEFAULT_PAGE_SIZE,
                page_token=request.page_token,
            )
        except InvalidPageTokenError as error:
            raise bad_page_token(error) from error
        return insight_pb2.ListInsightsResponse(
            insights=[insight_message(i) for i in page], next_page_token=token
        )

    async def EraseCustomer(
        self, request: insight_pb2.EraseCustomerRequest, context: Context
    ) -> insight_pb2.EraseCustomerResponse:
        principal = current_principal()
        erasure_id, counts = await self._erasure.erase(
            principal.tenant_id, request.customer_id, erased_by=principal.subject
        )
        return erase_response(erasure_id, counts)

    async def WatchAlerts(
        self, request: insight_pb2.WatchAlertsRequest, context: Context
    ) -> AsyncIterator[insight_pb2.Alert]:
        # Every watcher of the tenant gets the same alerts: each is serialised once, and the
        # bytes go out as they are (the pipeline passes bytes through).
        wanted = AlertFilter.of(
            request.customer_ids,
            [ALERT_KIND_NAMES[kind] for kind in request.kinds],
            int(request.min_severity),
        )
        async for alert in self._watcher.watch(
            current_principal().tenant_id,
            wanted,
            after_sequence=request.after_sequence,
            from_start=request.from_start,
        ):
            yield self._encoded.get(alert)  # type: ignore[misc]


class _EncodedAlerts:
    """The last few thousand alerts sent, serialised (keyed with their run id, which is set
    after the alert)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._bytes: OrderedDict[tuple[int, str, str], bytes] = OrderedDict()

    def get(self, alert: StoredAlert) -> bytes:
        key = (alert.sequence, alert.alert_id, alert.run_id)
        encoded = self._bytes.get(key)
        if encoded is None:
            encoded = alert_message(alert).SerializeToString()
            self._bytes[key] = encoded
            if len(self._bytes) > self._size:
                self._bytes.popitem(last=False)
        return encoded


async def _items(requests: AsyncIterator[Any]) -> AsyncIterator[IngestItem]:
    """Each message checked on its own: a bad one becomes a rejection, the stream goes on."""
    async for request in requests:
        if is_malformed(request):
            yield IngestItem(0, None, "", (_MALFORMED,))
            continue
        try:
            validate_request(request)
        except InvalidArgumentError as error:
            violations = [f"{v.field}: {v.description}" for v in error.violations]
            yield ingest_item(request, violations or [error.message])
            continue
        yield ingest_item(request, [])
