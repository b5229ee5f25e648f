"""InsightService: thin adapter over the insight core (``ai_orchestration.insights``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc.aio
from crm.ai.v1 import insight_pb2, insight_pb2_grpc

from ai_orchestration.api._insight_messages import (
    ingest_item,
    ingest_response,
    settings_message,
    settings_of,
)
from ai_orchestration.api._interceptor import is_malformed
from ai_orchestration.api._validation import masked_paths, validate_request, validates_own_request
from ai_orchestration.errors import InvalidArgumentError, NotImplementedYetError
from ai_orchestration.insights import IngestItem, Ingestor, InsightSettingsStore
from ai_orchestration.security import current_principal

__all__ = ["InsightServicer"]

Context = grpc.aio.ServicerContext[Any, Any]
_SETTINGS_FIELDS = ("competitors",)
_MALFORMED = "interaction: the message does not decode as an IngestInteractionsRequest"


class InsightServicer(insight_pb2_grpc.InsightServiceServicer):
    """``crm.ai.v1.InsightService``; every call reads the tenant from the caller's token."""

    def __init__(self, *, ingestor: Ingestor, settings: InsightSettingsStore) -> None:
        self._ingestor = ingestor
        self._settings = settings

    @validates_own_request
    async def IngestInteractions(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[Any], context: Context
    ) -> insight_pb2.IngestInteractionsResponse:
        summary = await self._ingestor.ingest(
            current_principal().tenant_id, _items(request_iterator)
        )
        return ingest_response(summary)

    async def GetInsightSettings(  # noqa: N802 - gRPC method name
        self, request: insight_pb2.GetInsightSettingsRequest, context: Context
    ) -> insight_pb2.InsightSettings:
        return settings_message(await self._settings.get(current_principal().tenant_id))

    async def UpdateInsightSettings(  # noqa: N802 - gRPC method name
        self, request: insight_pb2.UpdateInsightSettingsRequest, context: Context
    ) -> insight_pb2.InsightSettings:
        tenant = current_principal().tenant_id
        paths = masked_paths(request.update_mask.paths, _SETTINGS_FIELDS)
        merged = settings_message(await self._settings.get(tenant))
        for path in paths:
            del getattr(merged, path)[:]
            getattr(merged, path).extend(getattr(request.settings, path))
        checked = settings_of(merged, field_prefix="settings.")
        return settings_message(await self._settings.put(tenant, checked))

    async def AskCustomer(  # noqa: N802 - gRPC method name
        self, request: insight_pb2.AskCustomerRequest, context: Context
    ) -> AsyncIterator[insight_pb2.AnswerChunk]:
        raise _unbuilt("AskCustomer", 17)
        yield  # pragma: no cover - makes this an async generator, as stream handlers must be

    async def GenerateInsights(  # noqa: N802 - gRPC method name
        self, request: insight_pb2.GenerateInsightsRequest, context: Context
    ) -> AsyncIterator[insight_pb2.GenerateInsightsEvent]:
        raise _unbuilt("GenerateInsights", 17)
        yield  # pragma: no cover - makes this an async generator, as stream handlers must be

    async def ListInsights(  # noqa: N802 - gRPC method name
        self, request: insight_pb2.ListInsightsRequest, context: Context
    ) -> insight_pb2.ListInsightsResponse:
        raise _unbuilt("ListInsights", 17)

    async def EraseCustomer(  # noqa: N802 - gRPC method name
        self, request: insight_pb2.EraseCustomerRequest, context: Context
    ) -> insight_pb2.EraseCustomerResponse:
        raise _unbuilt("EraseCustomer", 17)

    async def WatchAlerts(  # noqa: N802 - gRPC method name
        self, request: insight_pb2.WatchAlertsRequest, context: Context
    ) -> AsyncIterator[insight_pb2.Alert]:
        raise _unbuilt("WatchAlerts", 18)
        yield  # pragma: no cover - makes this an async generator, as stream handlers must be


def _unbuilt(method: str, issue: int) -> NotImplementedYetError:
    return NotImplementedYetError(
        f"InsightService.{method} is not implemented yet (issue #{issue})"
    )


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
