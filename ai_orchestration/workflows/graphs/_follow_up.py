"""The ``customer_follow_up`` workflow: the customer's insights, a next best action decided by
rules, a reply grounded in what the customer said, a human where the rules ask, one delivery.

::

    START -> customer_insights -> decision -+-> content -+-> deliver -> END
                                            |            +-> human_review -+-> deliver -> END
                                            |                              +-> END (rejected)
                                            +-> END (no interactions: nothing to follow up on)

**Insight agent** (no LLM): reads the customer's latest interactions of the run's tenant,
decides their insights with :func:`ai_orchestration.insights.select_insights`, and retrieves the
passages relevant to the caller's goal (or, without one, to the top risk, else the top
opportunity). Each passage is read by the injection guard first; a flagged one is withheld from
the model and a human is asked. Retrieval failing or finding nothing leaves the insights alone
(the step is degraded when the retrieval failed); a customer without interactions ends the run
after the decision, which says so. **Decision agent**: the rules of :mod:`._follow_up_rules`.
**Content agent**: the parts-based drafting of :mod:`._writing` with the ``follow_up_parts``
prompt, which shows the passages fenced as quoted data; the draft may state nothing the facts
and the passages do not, and falls back to the template (degraded) when no model answers.
**Human review and delivery**: :mod:`._review` (fail closed: a draft failing a check is never
delivered as it is).

The state holds the customer's words (passages, quotes): erasing the customer deletes the run
with its checkpoints, events and deliveries (:mod:`._erasure`); the run's input names the
customer (``customer_id``) so the erasure can find it.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from ai_orchestration import errors
from ai_orchestration.insights import (
    InsightDraft,
    InsightKind,
    Passage,
    ScoredInteraction,
    StoredInteraction,
    select_insights,
)
from ai_orchestration.workflows._types import JsonDoc
from ai_orchestration.workflows.graphs._content import DraftSpec
from ai_orchestration.workflows.graphs._context import RunContext
from ai_orchestration.workflows.graphs._documents import name_from_email, rfc3339
from ai_orchestration.workflows.graphs._external import consult
from ai_orchestration.workflows.graphs._follow_up_rules import (
    decide_follow_up,
    insight_document,
    legal_threats,
)
from ai_orchestration.workflows.graphs._review import add_review_and_delivery
from ai_orchestration.workflows.graphs._steps import call_tool, flagged, json_doc, step
from ai_orchestration.workflows.graphs._writing import write_draft

__all__ = [
    "CustomerFollowUpState",
    "customer_follow_up_graph",
    "customer_insights_step",
    "follow_up_content_step",
    "follow_up_decision_step",
    "follow_up_output",
]


class CustomerFollowUpState(TypedDict, total=False):
    """Shared state of the customer follow-up agents."""

    input: JsonDoc
    """The ``CustomerFollowUpInput`` document."""
    insights: list[JsonDoc]
    """The insight rules' findings: ``kind``, ``code``, ``confidence``, ``title``,
    ``description``, ``facts`` and ``evidence`` (``Citation`` documents)."""
    facts: JsonDoc
    """The insight agent's counts: ``interactions``, ``legal_threats``, ``flagged_passages``, and
    the retrieval ``question``."""
    passages: list[JsonDoc]
    """The retrieved passages the guard let through (what the content agent may show)."""
    decision: JsonDoc
    """``next_best_action``, ``goal``, ``channel``, ``insight``, ``rationale``, ``reasons``."""
    evidence: list[JsonDoc]
    """``Citation`` documents the decision and the draft rest on."""
    draft: JsonDoc
    """The ``OutreachDraft`` document."""
    recipient: JsonDoc
    """The ``Recipient`` the draft is for, with the ``customer_id``."""
    tone: str
    """The tone the draft was written in (the tenant's brand voice)."""
    review: JsonDoc
    """The human's answer: ``decision`` and ``comment``."""
    delivered: bool
    """Whether the draft was handed to the delivery sink."""
    degraded_steps: Annotated[list[str], operator.add]
    """Steps that used their deterministic fallback."""


def _question(goal: str, drafts: Sequence[InsightDraft]) -> str:
    """What to retrieve passages for: the goal, else the top risk, else the top opportunity
    (its title and the terms that raised it); empty when there is nothing to ask."""
    if goal.strip():
        return goal.strip()
    for kind in (InsightKind.RISK, InsightKind.OPPORTUNITY):
        top = next((draft for draft in drafts if draft.kind is kind), None)
        if top is not None:
            terms = top.facts.get("terms")
            return f"{top.title}: {terms}" if terms else top.title
    return ""


def _passage_document(passage: Passage) -> JsonDoc:
    return {
        "passage_id": passage.passage_id,
        "interaction_id": passage.interaction_id,
        "occur_time": rfc3339(passage.occur_time),
        "start": passage.start,
        "end": passage.end,
        "text": passage.text,
        "score": passage.score,
    }


def _passage(document: Mapping[str, Any]) -> Passage:
    return Passage(
        passage_id=int(document["passage_id"]),
        interaction_id=str(document["interaction_id"]),
        occur_time=datetime.fromisoformat(str(document["occur_time"])),
        start=int(document["start"]),
        end=int(document["end"]),
        text=str(document["text"]),
        score=float(document["score"]),
    )


def _located(passages: Sequence[Passage] | None) -> list[JsonDoc]:
    """A retrieval's tool result: where each passage is, not what it says (the event log is no
    place for the customer's words)."""
    return [
        {"interaction_id": p.interaction_id, "start": p.start, "end": p.end, "score": p.score}
        for p in passages or []
    ]


async def _history(context: RunContext, name: str, customer: str) -> list[StoredInteraction]:
    histories = context.deps.histories
    if histories is None:
        raise errors.FailedPreconditionError(
            "customer_follow_up needs the customers' interactions, which this server lacks",
            reason="WORKFLOW_UNAVAILABLE",
        )
    tenant, latest = context.run.tenant_id, context.deps.follow_up.history_size
    stored, _ = await call_tool(
        context,
        name,
        1,
        "customer_history",
        arguments={"customer_id": customer, "latest": latest},
        run=lambda: histories.history(tenant, customer, latest=latest),
        shown=lambda rows: {"interactions": len(rows or [])},
    )
    if stored is None:
        # Without the history nothing can be decided, and "no interactions" would be untrue.
        raise errors.UnavailableError(
            "the customer's interactions could not be read; start the run again",
            reason="HISTORY_UNAVAILABLE",
        )
    return stored


async def _passages(
    context: RunContext, name: str, customer: str, question: str
) -> tuple[list[JsonDoc], int, bool]:
    """(passages shown to the model, passages the guard withheld, retrieval ok)."""
    retriever = context.deps.retriever
    if retriever is None or not question:
        return [], 0, retriever is not None
    tenant, limit = context.run.tenant_id, context.deps.follow_up.passages
    found, ok = await call_tool(
        context,
        name,
        2,
        "retrieve_passages",
        arguments={"customer_id": customer, "question": question, "limit": limit},
        run=lambda: retriever.retrieve(tenant, customer, question, limit),
        shown=_located,
    )
    shown: list[JsonDoc] = []
    withheld = 0
    for passage in found or []:
        if await flagged(context, passage.text, "interaction.body"):
            withheld += 1
        else:
            shown.append(_passage_document(passage))
    return shown, withheld, ok


async def customer_insights_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """Read the customer's history, decide its insights, retrieve the relevant passages.

    Degraded when the retrieval failed (the decision then rests on the insights alone), or a
    configured external tool did not answer.
    """
    data = json_doc(state.get("input"))
    customer = str(data.get("customer_id", ""))
    stored = await _history(context, name, customer)
    if not stored:
        facts: JsonDoc = {"interactions": 0, "legal_threats": 0, "flagged_passages": 0}
        return {"insights": [], "passages": [], "facts": {**facts, "question": ""}}, False
    policy = context.deps.follow_up
    now = context.deps.clock()
    scored = [ScoredInteraction.of(s.interaction, s.signals) for s in stored]
    drafts = select_insights(scored, now=now, rules=policy.rules)
    texts = {s.interaction.interaction_id: s.interaction.text for s in stored}
    question = _question(str(data.get("goal", "")), drafts)
    passages, flagged, retrieved = await _passages(context, name, customer, question)
    company = str(json_doc(data.get("recipient")).get("company", ""))
    fields = {"customer_id": customer, "company": company, "goal": str(data.get("goal", ""))}
    external, external_ok = await consult(context, name, 3, "customer_follow_up", fields)
    facts = {
        "interactions": len(stored),
        "legal_threats": legal_threats(scored, now=now, days=policy.rules.lookback_days),
        "flagged_passages": flagged,
        "question": question,
    }
    if external:
        # For the reviewer and the record; the draft quotes only the customer's own passages.
        facts["external"] = external
    update = {
        "insights": [insight_document(draft, texts) for draft in drafts],
        "passages": passages,
        "facts": facts,
    }
    return update, not (retrieved and external_ok)


async def follow_up_decision_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """Apply the follow-up's decision rules; never degraded (no model involved)."""
    data = json_doc(state.get("input"))
    decision = decide_follow_up(
        insights=[json_doc(doc) for doc in state.get("insights") or []],
        facts=json_doc(state.get("facts")),
        passages=[json_doc(doc) for doc in state.get("passages") or []],
        goal=str(data.get("goal", "")),
        channel=str(data.get("channel", "")),
        require_approval=bool(data.get("require_approval")),
        policy=await context.decision_policy(),
        max_evidence=context.deps.follow_up.max_evidence,
    )
    return {"decision": decision.to_json(), "evidence": list(decision.evidence)}, False


def _recipient(data: Mapping[str, Any]) -> JsonDoc:
    given = json_doc(data.get("recipient"))
    email = str(given.get("email", ""))
    return {
        "name": str(given.get("name", "")) or (name_from_email(email) if email else ""),
        "company": str(given.get("company", "")),
        "role": str(given.get("role", "")),
        "email": email,
    }


async def follow_up_content_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """The follow-up draft, in the tenant's brand voice, replying to the passages."""
    data = json_doc(state.get("input"))
    decision = json_doc(state.get("decision"))
    customer = str(data.get("customer_id", ""))
    recipient = _recipient(data)
    policy = context.deps.content
    tone = policy.voice_for(context.run.tenant_id)
    spec = DraftSpec(
        recipient=recipient,
        goal=str(decision.get("goal", "")),
        channel=str(decision.get("channel", "")),
        tone=tone,
        points=(),
        sender=context.run.labels.get("sender_name", policy.sender_name),
        passages=tuple(_passage(json_doc(doc)) for doc in state.get("passages") or []),
    )
    draft, degraded = await write_draft(context, name, spec, customer)
    # The customer's id goes to the sending side with the draft: it picks the contact.
    update = {"draft": draft, "recipient": {**recipient, "customer_id": customer}, "tone": tone}
    return update, degraded


def _after_decision(state: Mapping[str, Any]) -> str:
    # No goal: the customer has no interactions, there is nothing to write about.
    return "content" if json_doc(state.get("decision")).get("goal") else END


def customer_follow_up_graph() -> StateGraph[Any, RunContext, Any, Any]:
    """The graph of the module docstring, to compile with a checkpointer."""
    graph: StateGraph[Any, RunContext, Any, Any] = StateGraph(
        CustomerFollowUpState, context_schema=RunContext
    )
    graph.add_node(
        "customer_insights", step("customer_insights", "insight_agent", customer_insights_step)
    )
    graph.add_node("decision", step("decision", "decision_agent", follow_up_decision_step))
    graph.add_node("content", step("content", "content_agent", follow_up_content_step))
    graph.add_edge(START, "customer_insights")
    graph.add_edge("customer_insights", "decision")
    graph.add_conditional_edges("decision", _after_decision, ["content", END])
    add_review_and_delivery(graph)
    return graph


def follow_up_output(state: Mapping[str, Any], degraded: list[str]) -> JsonDoc:
    """The ``CustomerFollowUpOutput`` document of a finished run's state."""
    decision = json_doc(state.get("decision"))
    output: JsonDoc = {
        "next_best_action": json_doc(decision.get("next_best_action")),
        "delivered": bool(state.get("delivered")),
        "evidence": [json_doc(doc) for doc in state.get("evidence") or []],
        "degraded_steps": degraded,
        "rationale": str(decision.get("rationale", "")),
        "interaction_count": int(json_doc(state.get("facts")).get("interactions", 0)),
    }
    if draft := json_doc(state.get("draft")):
        output["draft"] = draft
    return output
