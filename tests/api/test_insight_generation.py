"""GenerateInsights and ListInsights over real gRPC, with the LLM test server, on SQLite and
PostgreSQL: the rules decide, the model only words, unchecked words never show."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeAlias

import grpc.aio
import pytest
from crm.ai.v1 import insight_pb2, insight_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ai_orchestration.server import Server
from tests.api._leads import metadata
from tests.api.test_insight_ingest import stream
from tests.conftest import TokenFactory
from tests.fixtures.llm_server import LlmTestServer

if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    Stub: TypeAlias = insight_pb2_grpc.InsightServiceAsyncStub

Kind = insight_pb2.Interaction
HISTORY = [
    # (days ago, direction, body)
    (60, Kind.DIRECTION_INBOUND, "Thanks, the onboarding went really well. The team loves it."),
    (45, Kind.DIRECTION_OUTBOUND, "Great to hear! Here is the training schedule."),
    (30, Kind.DIRECTION_INBOUND, "We would like to add 25 more seats for the Berlin team."),
    (12, Kind.DIRECTION_INBOUND, "The sync has been broken for a week. This is unacceptable."),
    (5, Kind.DIRECTION_INBOUND, "Still broken. I want to speak to your manager today."),
    (2, Kind.DIRECTION_INBOUND, "If this is not fixed by Friday we are cancelling the contract."),
]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def _seed(stub: Stub, token: TokenFactory, *, tenant: str = "acme") -> dict[str, str]:
    texts: dict[str, str] = {}
    messages = []
    for n, (days, direction, body) in enumerate(HISTORY):
        stamp = Timestamp()
        stamp.FromDatetime(_now() - timedelta(days=days))
        message = insight_pb2.Interaction(
            interaction_id=f"h-{n}",
            customer_id="cust-9",
            kind=Kind.KIND_EMAIL,
            direction=direction,
            occur_time=stamp,
            subject=f"Update {n}",
            body=body,
        )
        texts[message.interaction_id] = f"{message.subject}\n\n{body}"
        messages.append(message)
    md = metadata(token(tenant_id=tenant, roles=["insight.writer"]))
    reply = await stub.IngestInteractions(stream(*messages), metadata=md)
    assert reply.ingested == len(HISTORY)
    return texts


async def _generate(
    stub: Stub,
    token: TokenFactory,
    *kinds: insight_pb2.InsightKind.ValueType,
    tenant: str = "acme",
) -> tuple[list[insight_pb2.InsightProgress], list[insight_pb2.Insight]]:
    md = metadata(token(tenant_id=tenant, roles=["insight.reader"]))
    request = insight_pb2.GenerateInsightsRequest(customer_id="cust-9", kinds=list(kinds))
    events = [event async for event in stub.GenerateInsights(request, metadata=md)]
    progress = [e.progress for e in events if e.WhichOneof("event") == "progress"]
    insights = [e.insight for e in events if e.WhichOneof("event") == "insight"]
    first_insight = next(
        (i for i, e in enumerate(events) if e.WhichOneof("event") == "insight"), len(events)
    )
    assert all(e.WhichOneof("event") == "progress" for e in events[:first_insight])
    return progress, insights


async def test_rules_decide_and_evidence_quotes_the_interactions(
    stub: Stub, llm_server: LlmTestServer, token: TokenFactory
) -> None:
    texts = await _seed(stub, token)
    progress, insights = await _generate(stub, token)
    assert progress[0].stage and progress[-1].interactions == len(HISTORY)
    kinds = {i.kind for i in insights}
    assert insight_pb2.INSIGHT_KIND_RISK in kinds
    assert insight_pb2.INSIGHT_KIND_OPPORTUNITY in kinds
    assert insight_pb2.INSIGHT_KIND_NEXT_BEST_ACTION in kinds
    actions = [i for i in insights if i.kind == insight_pb2.INSIGHT_KIND_NEXT_BEST_ACTION]
    assert 1 <= len(actions) <= 3
    risks = [i.title.lower() for i in insights if i.kind == insight_pb2.INSIGHT_KIND_RISK]
    assert any("churn" in title or "cancel" in title for title in risks)
    for insight in insights:
        assert 0 < insight.confidence <= 1
        assert insight.evidence, insight.title
        for citation in insight.evidence:
            source = texts[citation.interaction_id]
            assert source[citation.start_offset : citation.end_offset] == citation.quote
    # The default reply of the test model is no usable wording: the rules' own text, degraded.
    assert all(i.usage.degraded for i in insights)
    # The model never saw the customer's words, only the facts (terms of our own lexicon).
    prompt = json.dumps(llm_server.requests[-1].body)
    assert "Berlin" not in prompt and "has been broken" not in prompt


async def test_checked_wording_is_used_and_invented_figures_are_not(
    stub: Stub, llm_server: LlmTestServer, token: TokenFactory
) -> None:
    await _seed(stub, token)
    _, plain = await _generate(stub, token, insight_pb2.INSIGHT_KIND_OPPORTUNITY)
    words = [
        {"code": "x", "title": f"Worded: {i.title}", "description": i.description} for i in plain
    ]
    words[0]["description"] = "They will surely buy 500 more seats next quarter."
    llm_server.reply_with(json.dumps({"items": words}))
    _, worded = await _generate(stub, token, insight_pb2.INSIGHT_KIND_OPPORTUNITY)
    assert [i.kind for i in worded] == [i.kind for i in plain]
    assert worded[0].usage.degraded and worded[0].title == plain[0].title  # "500": invented
    for before, after in zip(plain[1:], worded[1:], strict=True):
        assert after.title == f"Worded: {before.title}" and not after.usage.degraded
    assert worded[0].usage.model.startswith("fast/")


async def test_list_pages_newest_first_per_tenant(
    stub: Stub, insight_server: Server, token: TokenFactory
) -> None:
    await _seed(stub, token)
    await _generate(stub, token)
    _, second = await _generate(stub, token, insight_pb2.INSIGHT_KIND_RISK)
    md = metadata(token(roles=["insight.reader"]))
    listed: list[insight_pb2.Insight] = []
    page_token = ""
    while True:
        reply = await stub.ListInsights(
            insight_pb2.ListInsightsRequest(
                customer_id="cust-9", page_size=2, page_token=page_token
            ),
            metadata=md,
        )
        listed += reply.insights
        page_token = reply.next_page_token
        if not page_token:
            break
    assert {i.insight_id for i in second} <= {i.insight_id for i in listed[: len(second)]}
    times = [i.create_time.ToDatetime() for i in listed]
    assert times == sorted(times, reverse=True)
    risks = await stub.ListInsights(
        insight_pb2.ListInsightsRequest(
            customer_id="cust-9", kinds=[insight_pb2.INSIGHT_KIND_RISK], page_size=100
        ),
        metadata=md,
    )
    assert risks.insights and all(i.kind == insight_pb2.INSIGHT_KIND_RISK for i in risks.insights)
    # Another tenant: nothing to decide from, nothing listed.
    _, theirs = await _generate(stub, token, tenant="globex")
    assert theirs == []
    other = metadata(token(tenant_id="globex", roles=["insight.reader"]))
    empty = await stub.ListInsights(
        insight_pb2.ListInsightsRequest(customer_id="cust-9"), metadata=other
    )
    assert list(empty.insights) == []
    # Erasing the customer erases its insights.
    admin = metadata(token(roles=["insight.admin"]))
    erased = await stub.EraseCustomer(
        insight_pb2.EraseCustomerRequest(customer_id="cust-9"), metadata=admin
    )
    assert erased.insights == len(listed)


async def test_without_a_model_the_rules_text_is_served(
    stub: Stub, llm_server: LlmTestServer, token: TokenFactory
) -> None:
    await _seed(stub, token)
    llm_server.down()
    _, insights = await _generate(stub, token)
    assert insights and all(i.usage.degraded and i.title for i in insights)


async def test_bad_requests(stub: Stub, token: TokenFactory) -> None:
    md = metadata(token(roles=["insight.reader"]))
    request = insight_pb2.GenerateInsightsRequest(
        customer_id="c", kinds=[insight_pb2.INSIGHT_KIND_RISK, insight_pb2.INSIGHT_KIND_RISK]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.GenerateInsights(request, metadata=md):
            pass
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
