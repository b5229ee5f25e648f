"""The content agent (draft, validate, revise at most twice), the human review and delivery.

**Human review.** The review node builds the ``Interrupt`` document (its ``interrupt_id`` is
derived from the run id, so the re-run of the node on resume computes the same one) and calls
LangGraph's ``interrupt()``; the answer is ``run.resume``: ``{"interrupt_id", "decision":
"approve"|"edit"|"reject", "draft"?, "qualification"?, "comment"|"reason"?}``. An edit replaces
the proposed draft fields it sets (the draft is validated again, its issues recorded) and the
qualification when given.

**Delivery** hands the draft to the :class:`DeliverySink` with the idempotency key
``<run_id>:deliver``. If the process dies after the sink delivered but before the step's
checkpoint, the step re-runs and the sink refuses the second delivery (it returns False):
the message goes out once and the output still says ``delivered``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

from langgraph.types import interrupt

from ai_orchestration import errors
from ai_orchestration.workflows._content import (
    DraftSpec,
    draft_text,
    fallback_draft,
    parse_draft,
    validate_draft,
)
from ai_orchestration.workflows._context import RunContext
from ai_orchestration.workflows._decision import DISQUALIFIED, REASON_APPROVAL_REQUESTED
from ai_orchestration.workflows._documents import (
    CHANNELS,
    QUALIFICATIONS,
    TONES,
    name_from_email,
    rfc3339,
)
from ai_orchestration.workflows._steps import ask, call_tool, json_doc
from ai_orchestration.workflows._types import DeliveryRequest, JsonDoc

__all__ = [
    "DECISIONS",
    "approval_step",
    "check_answer",
    "content_generation_step",
    "deliver_step",
    "interrupt_id_of",
    "lead_content_step",
    "lead_recipient",
    "review_step",
    "should_deliver",
    "write_draft",
]

DECISIONS: Final[frozenset[str]] = frozenset({"approve", "edit", "reject"})
"""The answers a human can give to an interrupt."""
_INTERRUPT_NAMESPACE: Final = uuid.UUID("6f1d1a52-51e4-4c4e-9a43-4f1f2f0c7a11")
_GOALS: Final[dict[str, str]] = {
    "ACTION_SCHEDULE_DEMO": "book the product demo they asked for at a time that suits them",
    "ACTION_ESCALATE": "introduce their dedicated account executive and propose a short call",
    "ACTION_SEND_EMAIL": "open a conversation about what they need",
    "ACTION_CALL": "propose a short call about what they need",
    "ACTION_NURTURE_SEQUENCE": "share something useful and stay in touch, without pushing",
    "ACTION_CLOSE": "thank them for their interest",
}


def interrupt_id_of(run_id: str, node: str) -> str:
    """The id of the interrupt node ``node`` raises in run ``run_id`` (stable across re-runs)."""
    return str(uuid.uuid5(_INTERRUPT_NAMESPACE, f"{run_id}:{node}"))


def check_answer(interrupt_doc: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
    """Check a resume answer against the pending interrupt.

    Raises:
        errors.FailedPreconditionError: the answer is for another interrupt.
        errors.InvalidArgumentError: an unknown decision, or an edit with a bad draft channel or
            qualification.
    """
    if str(answer.get("interrupt_id", "")) != str(interrupt_doc.get("interrupt_id", "")):
        raise errors.FailedPreconditionError(
            "the answer is for another interrupt than the pending one",
            reason="INTERRUPT_MISMATCH",
            metadata={"pending_interrupt_id": str(interrupt_doc.get("interrupt_id", ""))},
        )
    violations = []
    if answer.get("decision") not in DECISIONS:
        violations.append(errors.FieldViolation("decision", "must be approve, edit or reject"))
    qualification = answer.get("qualification")
    if qualification and qualification not in QUALIFICATIONS:
        violations.append(errors.FieldViolation("edit.qualification", "unknown qualification"))
    channel = json_doc(answer.get("draft")).get("channel")
    if channel and channel != "CHANNEL_UNSPECIFIED" and channel not in CHANNELS:
        violations.append(errors.FieldViolation("edit.draft.channel", "unknown channel"))
    if violations:
        raise errors.InvalidArgumentError("invalid answer to the interrupt", violations)


# --- the content agent -----------------------------------------------------------------------


async def write_draft(
    context: RunContext, name: str, spec: DraftSpec, subject_key: str
) -> tuple[JsonDoc, bool]:
    """Draft, validate, revise at most ``max_revisions`` times; (draft, degraded)."""
    policy = context.deps.content
    fallback = fallback_draft(spec)
    recipient_name = str(spec.recipient.get("name", "")).strip()
    role = str(spec.recipient.get("role", "")).strip()
    variables = {
        "sender_name": spec.sender,
        "recipient_name": recipient_name or (f"the {role}" if role else "the team"),
        "company": str(spec.recipient.get("company", "")).strip() or "their company",
        "goal": spec.goal,
        "tone": spec.tone,
        "context": spec.context or "- nothing beyond the goal",
    }
    options: dict[str, Any] = {
        "model": policy.model,
        "subject_key": subject_key,
        "fallback": draft_text(fallback),
        "max_tokens": policy.max_tokens,
        # Not streamed: litellm's stream wrapper costs about a millisecond of CPU per chunk, which
        # tripled the CPU of a content run (measured with bench/bench_workflows.py); the draft is
        # parsed and validated whole anyway. The analysis streams (its text is shown as is).
        "stream": False,
    }
    text, degraded = await ask(context, name, "outreach_draft", variables, **options)
    draft = fallback if degraded else parse_draft(text, spec)
    issues = validate_draft(draft, spec.tone, policy)
    revisions = 0
    while issues and not degraded and revisions < policy.max_revisions:
        feedback = "\n".join(f"- {issue}" for issue in issues)
        revision = {"draft": draft_text(draft), "feedback": feedback}
        text, degraded = await ask(context, name, "content_revision", revision, **options)
        revisions += 1
        draft = fallback if degraded else parse_draft(text, spec)
        issues = validate_draft(draft, spec.tone, policy)
    return {**draft, "revisions": revisions, "issues": issues}, degraded


def _channel_line(channel: str, limit: int | None) -> str:
    label = channel.removeprefix("CHANNEL_").lower()
    return f"- Channel: {label}" + (f" (at most {limit} characters)" if limit else "")


def lead_recipient(lead: Mapping[str, Any]) -> JsonDoc:
    """The ``Recipient`` of a ``Lead`` document (the name guessed from the e-mail address)."""
    email = str(lead.get("email", ""))
    return {
        "name": name_from_email(email) if email else "",
        "company": str(lead.get("company_name", "")),
        "role": str(lead.get("job_title", "")),
        "email": email,
    }


async def lead_content_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """The outreach draft for a lead, in the tenant's brand voice."""
    lead = json_doc(json_doc(state.get("input")).get("lead"))
    decision = json_doc(state.get("decision"))
    action = str(json_doc(decision.get("next_best_action")).get("action", ""))
    recipient = lead_recipient(lead)
    channel = "CHANNEL_EMAIL" if recipient["email"] else "CHANNEL_PHONE"
    score = json_doc(state.get("score"))
    strengths = [f["reason"] for f in score.get("positive_factors", [])[:3] if f.get("reason")]
    policy = context.deps.content
    facts = [f"- {reason}" for reason in strengths]
    facts.append(_channel_line(channel, policy.max_chars.get(channel)))
    spec = DraftSpec(
        recipient=recipient,
        goal=_GOALS.get(action, _GOALS["ACTION_SEND_EMAIL"]),
        channel=channel,
        tone=policy.voice_for(context.run.tenant_id),
        context="\n".join(facts),
        sender=context.run.labels.get("sender_name", policy.sender_name),
    )
    draft, degraded = await write_draft(context, name, spec, str(lead.get("lead_id", "")))
    return {"draft": draft, "recipient": recipient}, degraded


async def content_generation_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """The requested content: recipient, purpose, channel, tone and key points from the input."""
    data = json_doc(state.get("input"))
    recipient = {
        key: str(value)
        for key, value in json_doc(data.get("recipient")).items()
        if key in ("name", "company", "role", "email")
    }
    channel = str(data.get("channel", "CHANNEL_EMAIL"))
    if channel not in CHANNELS:
        channel = "CHANNEL_EMAIL"
    policy = context.deps.content
    tone = TONES.get(str(data.get("tone", "")), policy.voice_for(context.run.tenant_id))
    points = [f"- {point}" for point in data.get("key_points", []) if str(point).strip()]
    points.append(_channel_line(channel, policy.max_chars.get(channel)))
    spec = DraftSpec(
        recipient=recipient,
        goal=str(data.get("purpose", "")).strip() or "get in touch",
        channel=channel,
        tone=tone,
        context="\n".join(points),
        sender=context.run.labels.get("sender_name", policy.sender_name),
    )
    key = recipient.get("email", "") or context.run.run_id
    draft, degraded = await write_draft(context, name, spec, key)
    return {"draft": draft, "recipient": recipient, "tone": tone}, degraded


# --- the human ---------------------------------------------------------------------------------


def _edited_draft(
    draft: JsonDoc, answer: Mapping[str, Any], tone: str, context: RunContext
) -> JsonDoc:
    edit = json_doc(answer.get("draft"))
    # A human may write the draft the workflow did not propose (e.g. for a lead it would have
    # disqualified): it starts empty, as an e-mail unless the edit names the channel.
    changed = dict(draft) or {"subject": "", "body": "", "channel": "CHANNEL_EMAIL"}
    changed.setdefault("revisions", 0)
    for key in ("subject", "body"):
        if isinstance(edit.get(key), str) and edit[key]:
            changed[key] = edit[key]
    channel = edit.get("channel")
    if channel in CHANNELS:
        changed["channel"] = channel
    changed["issues"] = validate_draft(changed, tone, context.deps.content)
    return changed


def _review(answer: Mapping[str, Any]) -> JsonDoc:
    note = answer.get("comment") or answer.get("reason") or ""
    return {"decision": str(answer["decision"]), "comment": str(note)}


async def _ask_human(
    context: RunContext, node: str, reasons: list[str], proposal: JsonDoc
) -> Mapping[str, Any]:
    document: JsonDoc = {
        "interrupt_id": interrupt_id_of(context.run.run_id, node),
        "reasons": reasons,
        "proposal": proposal,
        "create_time": rfc3339(context.deps.clock()),
    }
    answer = interrupt(document)
    if not isinstance(answer, Mapping):
        raise errors.InvalidArgumentError("the answer to an interrupt must be a JSON object")
    check_answer(document, answer)
    return answer


async def review_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """The decision agent's hand-off: a human approves, edits or rejects the proposal."""
    decision = json_doc(state.get("decision"))
    draft = json_doc(state.get("draft"))
    proposal: JsonDoc = {
        "qualification": decision.get("qualification", ""),
        "next_best_action": decision.get("next_best_action", {}),
        "rationale": decision.get("rationale", ""),
    }
    if draft:
        proposal["draft"] = draft
    answer = await _ask_human(context, name, list(decision.get("reasons", [])), proposal)
    update: dict[str, Any] = {"review": _review(answer)}
    if answer["decision"] == "edit":
        if draft or json_doc(answer.get("draft")).get("body"):
            tone = context.deps.content.voice_for(context.run.tenant_id)
            update["draft"] = _edited_draft(draft, answer, tone, context)
        if not state.get("recipient"):
            update["recipient"] = lead_recipient(json_doc(json_doc(state.get("input")).get("lead")))
        if answer.get("qualification") in QUALIFICATIONS:
            update["decision"] = {**decision, "qualification": answer["qualification"]}
    return update, False


async def approval_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """Caller-requested approval of generated content."""
    draft = json_doc(state.get("draft"))
    proposal = {"draft": draft, "rationale": "approval of the content was requested"}
    answer = await _ask_human(context, name, [REASON_APPROVAL_REQUESTED], proposal)
    update: dict[str, Any] = {"review": _review(answer)}
    if answer["decision"] == "edit":
        update["draft"] = _edited_draft(draft, answer, str(state.get("tone", "")), context)
    return update, False


def should_deliver(state: Mapping[str, Any]) -> bool:
    """Whether the run's draft goes out: there is one, no human rejected it, and the (final)
    qualification is not DISQUALIFIED."""
    if not json_doc(state.get("draft")).get("body"):
        return False
    if json_doc(state.get("review")).get("decision") == "reject":
        return False
    return json_doc(state.get("decision")).get("qualification") != DISQUALIFIED


async def deliver_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """Hand the draft to the delivery sink exactly once (ledger key ``<run_id>:deliver``)."""
    run = context.run
    draft = json_doc(state.get("draft"))
    request = DeliveryRequest(
        idempotency_key=f"{run.run_id}:deliver",
        tenant_id=run.tenant_id,
        run_id=run.run_id,
        channel=str(draft.get("channel", "")),
        recipient=json_doc(state.get("recipient")),
        draft=draft,
    )
    arguments = {"idempotency_key": request.idempotency_key, "channel": request.channel}
    delivered_now, _ = await call_tool(
        context,
        name,
        1,
        "delivery_sink",
        arguments=arguments,
        run=lambda: context.deps.delivery.deliver(request),
        shown=lambda now: {"delivered_now": now},
    )
    if delivered_now is None:
        # No fallback for a side effect: the attempt fails and the next one resumes at this
        # step with the same key, so the message still goes out once.
        raise errors.UnavailableError(
            "the delivery sink failed; the run will retry delivery with the same key",
            reason="DELIVERY_FAILED",
        )
    return {"delivered": True}, False
