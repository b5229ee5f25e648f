"""The side-effect ledger: messages workflows hand to the CRM's sending side, once per key.

The ledger row *is* the hand-off (a transactional outbox): a workflow "delivers" a message by
inserting its row, and the CRM's sending side reads the rows and sends them. Nothing is sent from
this service, so there is no window between "sent" and "recorded" for a crash to fall into: a
workflow that crashes after :meth:`DeliveryLedger.deliver` and runs the step again (on this or
another replica) finds the key taken and does not hand the message over a second time. The
sending side must in turn send each row at most once, keyed by ``(tenant_id, idempotency_key)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ai_orchestration.records import DeliveryRequest, JsonDoc
from ai_orchestration.storage._common import (
    Clock,
    require_aware,
    require_tenant,
    require_text,
    utc_now,
)
from ai_orchestration.storage._engine import Database
from ai_orchestration.storage._models import WorkflowDeliveryModel

__all__ = ["DeliveryLedger", "StoredDelivery"]

_Delivery = WorkflowDeliveryModel


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A message in the ledger, handed to the CRM's sending side."""

    tenant_id: str
    """Tenant the message is sent for."""
    idempotency_key: str
    """The key that made the hand-off happen once (unique per tenant)."""
    run_id: str
    """The run that produced the message."""
    channel: str
    """``CHANNEL_EMAIL`` ... (the ``Channel`` enum name)."""
    recipient: JsonDoc
    """A ``Recipient`` document."""
    draft: JsonDoc
    """An ``OutreachDraft`` document."""
    created_at: datetime
    """When the message was handed over (aware, UTC)."""


class DeliveryLedger:
    """A :class:`~ai_orchestration.workflows.DeliverySink` backed by the ``workflow_deliveries``
    table: each ``(tenant, idempotency_key)`` is handed over exactly once, across retries,
    crashes and replicas."""

    def __init__(self, *, database: Database, clock: Clock = utc_now) -> None:
        """``clock`` supplies ``created_at``."""
        self._database = database
        self._clock = clock

    async def deliver(self, request: DeliveryRequest) -> bool:
        """Hand the message over unless its key was handed over before.

        The unique key decides between concurrent callers (``INSERT ... ON CONFLICT DO
        NOTHING``): exactly one of them gets True, whatever the timing.

        Returns:
            True when this call handed the message over, False when the key already was.

        Raises:
            ValueError: an empty tenant, key, run id or channel, or documents that are not
                JSON objects.
        """
        if not isinstance(request.recipient, dict) or not isinstance(request.draft, dict):
            raise ValueError("recipient and draft must be JSON objects (dicts)")
        values: dict[str, Any] = {
            "tenant_id": require_tenant(request.tenant_id),
            "idempotency_key": require_text("idempotency_key", request.idempotency_key),
            "run_id": require_text("run_id", request.run_id),
            "channel": require_text("channel", request.channel),
            "recipient": request.recipient,
            "draft": request.draft,
            "created_at": require_aware("clock()", self._clock()),
        }
        writes = self._database.writes
        statement, params = writes.insert_or_skip(_Delivery, _KEY, values)
        return await writes.statements(lambda rows: rows.execute(statement, params) > 0)

    async def list_for_run(self, tenant_id: str, run_id: str) -> list[StoredDelivery]:
        """The messages the tenant's run handed over, oldest first."""
        statement = (
            select(_Delivery)
            .where(
                _Delivery.tenant_id == require_tenant(tenant_id),
                _Delivery.run_id == require_text("run_id", run_id),
            )
            .order_by(_Delivery.created_at, _Delivery.idempotency_key)
        )
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
        return [_stored(row) for row in rows]


_KEY = [_Delivery.tenant_id, _Delivery.idempotency_key]


def _stored(row: WorkflowDeliveryModel) -> StoredDelivery:
    return StoredDelivery(
        tenant_id=row.tenant_id,
        idempotency_key=row.idempotency_key,
        run_id=row.run_id,
        channel=row.channel,
        recipient=dict(row.recipient),
        draft=dict(row.draft),
        created_at=row.created_at,
    )
