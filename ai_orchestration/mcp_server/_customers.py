"""Customer tools: answers, insights and search over a customer's interactions (the
InsightService core), and support actions with real effects (the delivery ledger, the alert
log).

Every tool first finds the customer among the caller's tenant's interactions: a customer of
another tenant, or none at all, is ``NOT_FOUND``, as a run of another tenant is for GetRun.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Final, Literal, Protocol

from mcp.types import ToolAnnotations
from pydantic import Field

from ai_orchestration.errors import NotFoundError
from ai_orchestration.insight_writing import (
    DEFAULT_SOURCES,
    AnswerEnd,
    CustomerAnswers,
    InsightGenerator,
    Retriever,
)
from ai_orchestration.insights import AlertKind, InsightKind, NewAlert, Severity, StoredInsight
from ai_orchestration.mcp_server._auth import caller
from ai_orchestration.mcp_server._messages import as_json
from ai_orchestration.mcp_server._refusals import refusals
from ai_orchestration.records import DeliveryRequest
from ai_orchestration.security import Authenticator, Principal
from ai_orchestration.storage import (
    AlertRepository,
    DeliveryLedger,
    InteractionRepository,
    StoredDelivery,
)
from ai_orchestration.wire.insights import insight_message

__all__ = ["AlertBus", "CustomerTools"]

ASK_CUSTOMER: Final = "/crm.ai.v1.InsightService/AskCustomer"
GENERATE_INSIGHTS: Final = "/crm.ai.v1.InsightService/GenerateInsights"
START_RUN: Final = "/crm.ai.v1.WorkflowService/StartRun"
INGEST: Final = "/crm.ai.v1.InsightService/IngestInteractions"
TASK_CHANNEL: Final = "TASK"
"""Ledger channel of a follow-up task (the CRM's task list, not an outgoing message)."""
ESCALATION_CHANNEL: Final = "ESCALATION"
"""Ledger channel of an escalation (the CRM's support escalation queue)."""
_ESCALATIONS: Final = uuid.UUID("5c0a9d3e-2f4b-4e61-9a57-0d1b6e8f3c21")
"""Namespace of the escalation alerts' ids (uuid5 of the tenant and the caller's key)."""

CustomerId = Annotated[
    str, Field(min_length=1, max_length=128, description="The CRM's id of the customer.")
]
CallerKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Your key for this action (e.g. a ticket id): calling again with the same "
        "key returns the first call's result and does not act twice.",
    ),
]


class AlertBus(Protocol):
    """Where a new alert is announced to the tenant's watchers (the server's bus)."""

    async def publish(self, topic: Literal["alert"], run_id: str = "", sequence: int = 0) -> None:
        """Announce ``sequence`` of tenant ``run_id``'s alert log."""


class CustomerTools:
    """``ask_customer``, ``customer_insights``, ``search_interactions``,
    ``create_follow_up_task`` and ``escalate_customer``."""

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        interactions: InteractionRepository,
        retriever: Retriever,
        answers: CustomerAnswers,
        generator: InsightGenerator,
        ledger: DeliveryLedger,
        alerts: AlertRepository,
        bus: AlertBus,
    ) -> None:
        """The insight core's parts, the delivery ledger and the alert log with its bus."""
        self._authenticator = authenticator
        self._interactions = interactions
        self._retriever = retriever
        self._answers = answers
        self._generator = generator
        self._ledger = ledger
        self._alerts = alerts
        self._bus = bus

    def tools(self) -> list[tuple[Callable[..., Any], ToolAnnotations]]:
        """Each tool with its hints for clients."""
        return [
            (self.ask_customer, ToolAnnotations(title="Ask about a customer", read_only_hint=True)),
            (self.customer_insights, ToolAnnotations(title="Customer risks and opportunities")),
            (
                self.search_interactions,
                ToolAnnotations(title="Search a customer's interactions", read_only_hint=True),
            ),
            (
                self.create_follow_up_task,
                ToolAnnotations(title="Create a follow-up task", idempotent_hint=True),
            ),
            (
                self.escalate_customer,
                ToolAnnotations(title="Escalate a customer", idempotent_hint=True),
            ),
        ]

    async def _customer(self, method: str, customer_id: str) -> Principal:
        """The caller, once the role of ``method`` and the customer are checked."""
        principal = caller(self._authenticator, method)
        tenant = principal.tenant_id
        if not await self._interactions.history(tenant, customer_id, latest=1):
            raise NotFoundError(f"customer {customer_id!r} has no interactions in this tenant")
        return principal

    async def ask_customer(
        self,
        customer_id: CustomerId,
        question: Annotated[
            str, Field(min_length=1, max_length=2000, description="The question to answer.")
        ],
        max_sources: Annotated[
            int, Field(ge=1, le=20, description="Most interactions to cite.")
        ] = DEFAULT_SOURCES,
    ) -> dict[str, Any]:
        """Answer a question about one customer from their interactions (emails, calls,
        tickets, chats, notes), citing them as [n]; citations give the interaction id and the
        quoted passage. degraded: the text quotes the passages because no model answered.
        Needs the role insight.reader."""
        with refusals():
            tenant = (await self._customer(ASK_CUSTOMER, customer_id)).tenant_id
            text: list[str] = []
            end = AnswerEnd((), None, degraded=False)
            async for item in self._answers.ask(tenant, customer_id, question, sources=max_sources):
                if isinstance(item, AnswerEnd):
                    end = item
                else:
                    text.append(item)
            return {
                "answer": "".join(text),
                "citations": [citation.to_json() for citation in end.citations],
                "degraded": end.degraded,
            }

    async def customer_insights(
        self,
        customer_id: CustomerId,
        kinds: Annotated[
            list[Literal["risk", "opportunity", "sentiment_trend", "next_best_action"]],
            Field(max_length=4, description="Kinds to generate; empty: all."),
        ] = [],  # noqa: B006 - the SDK copies validated arguments; never mutated
    ) -> dict[str, Any]:
        """Generate a customer's insights now: risks, opportunities, sentiment trend and next
        best actions, each with a confidence and evidence quoting the interactions behind it.
        Decided by rules over the interactions' signals, worded by a model. Needs the role
        insight.reader."""
        with refusals():
            tenant = (await self._customer(GENERATE_INSIGHTS, customer_id)).tenant_id
            found: list[dict[str, Any]] = []
            async for item in self._generator.generate(
                tenant, customer_id, kinds=[InsightKind(kind) for kind in kinds]
            ):
                if isinstance(item, StoredInsight):
                    found.append(as_json(insight_message(item)))
            return {"insights": found}

    async def search_interactions(
        self,
        customer_id: CustomerId,
        query: Annotated[
            str, Field(min_length=1, max_length=2000, description="Words or a question.")
        ],
        limit: Annotated[int, Field(ge=1, le=20, description="Most interactions.")] = 5,
    ) -> dict[str, Any]:
        """Search one customer's interactions by words and meaning (hybrid retrieval); the best
        passage of each matching interaction, best first, with its relevance 0-1. Needs the
        role insight.reader."""
        with refusals():
            tenant = (await self._customer(ASK_CUSTOMER, customer_id)).tenant_id
            passages = await self._retriever.retrieve(tenant, customer_id, query, limit)
            return {
                "results": [
                    {
                        "interaction_id": p.interaction_id,
                        "occur_time": p.occur_time.isoformat(),
                        "text": p.text,
                        "relevance": round(p.score, 4),
                    }
                    for p in passages
                ]
            }

    async def create_follow_up_task(
        self,
        *,
        key: CallerKey,
        customer_id: CustomerId,
        title: Annotated[str, Field(min_length=1, max_length=200, description="What to do.")],
        details: Annotated[str, Field(max_length=4000, description="Context for the owner.")] = "",
        due_date: Annotated[date | None, Field(description="When it is due (YYYY-MM-DD).")] = None,
        assignee: Annotated[
            str, Field(max_length=128, description="CRM user to assign; empty: the owner.")
        ] = "",
    ) -> dict[str, Any]:
        """Create a follow-up task for a customer in the CRM (handed to the CRM through the
        service's delivery ledger, once per key). Needs the role workflow.operator."""
        with refusals():
            tenant = (await self._customer(START_RUN, customer_id)).tenant_id
            task: dict[str, Any] = {"title": title, "details": details}
            if due_date is not None:
                task["due_date"] = due_date.isoformat()
            delivery = await self._hand_over(
                tenant,
                key,
                TASK_CHANNEL,
                {"customer_id": customer_id, "assignee": assignee},
                task,
            )
            return _result(delivery)

    async def escalate_customer(
        self,
        *,
        key: CallerKey,
        customer_id: CustomerId,
        reason: Annotated[
            str, Field(min_length=1, max_length=1000, description="Why, in one or two sentences.")
        ],
        severity: Annotated[
            Literal["low", "medium", "high"], Field(description="How urgent.")
        ] = "high",
    ) -> dict[str, Any]:
        """Escalate a customer: hands the escalation to the CRM's support side (delivery
        ledger) and raises an escalation alert that WatchAlerts watchers receive; once per
        key. Needs the role insight.writer."""
        with refusals():
            principal = await self._customer(INGEST, customer_id)
            tenant = principal.tenant_id
            level = Severity[severity.upper()]
            document = {"reason": reason, "severity": severity}
            ledger_key = f"mcp:escalation:{key}"
            # The alert first, under an id made of the key: a retry after a crash anywhere
            # raises it once, and the ledger row (idempotent too) is written after it.
            message = f"Escalated by {principal.subject}: {reason}"
            kind = AlertKind.ESCALATION.value
            alert = NewAlert("", customer_id, kind, int(level), message, ())
            alert_id = str(uuid.uuid5(_ESCALATIONS, f"{tenant}:{key}"))
            raised = await self._alerts.append_once(tenant, alert, alert_id=alert_id)
            if raised is not None:
                await self._bus.publish("alert", tenant, raised.sequence)
            await self._ledger.deliver(
                DeliveryRequest(
                    ledger_key,
                    tenant,
                    ledger_key,
                    ESCALATION_CHANNEL,
                    {"customer_id": customer_id, "alert_id": alert_id},
                    document,
                )
            )
            return _result(await self._stored(tenant, ledger_key))

    async def _hand_over(
        self, tenant: str, key: str, channel: str, recipient: dict[str, Any], draft: dict[str, Any]
    ) -> StoredDelivery:
        ledger_key = f"mcp:{channel.lower()}:{key}"
        await self._ledger.deliver(
            DeliveryRequest(ledger_key, tenant, ledger_key, channel, recipient, draft)
        )
        return await self._stored(tenant, ledger_key)

    async def _stored(self, tenant: str, ledger_key: str) -> StoredDelivery:
        # The ledger row's run id is the key itself, so the first call's row is found again.
        return (await self._ledger.list_for_run(tenant, ledger_key))[0]


def _result(delivery: StoredDelivery) -> dict[str, Any]:
    """What the caller gets, from the ledger row: the same for every call with the key."""
    return {
        "key": delivery.idempotency_key.split(":", 2)[2],
        "channel": delivery.channel,
        **delivery.recipient,
        **delivery.draft,
        "created_at": delivery.created_at.isoformat(),
    }
