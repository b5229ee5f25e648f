"""Human review and delivery: the interrupts, the answers a human may give, and the one way a
draft reaches the delivery sink.

**Fail closed.** A draft that fails a check is never delivered as it is. The content step marks
it (``failed_checks``); the graph then pauses for a human (reason
``REASON_DRAFT_FAILED_CHECKS``, the failed checks in the proposed draft) unless the tenant chose
the template, in which case the content step already replaced it. A human's answer is checked
before the run resumes (:func:`accept_answer`, called by ``ResumeRun``): an edit that would be
delivered must pass the message checks, and an approval of a failing draft must say so
(``override_failed_checks``), which is recorded on the draft (``override``).
:func:`deliverable` is the rule the graph routes by and :func:`deliver_step` checks again.

**Human review.** The review node builds the ``Interrupt`` document (its ``interrupt_id`` is
derived from the run id, so the re-run of the node on resume computes the same one) and calls
LangGraph's ``interrupt()``; the answer is ``run.resume``: ``{"interrupt_id", "decision":
"approve"|"edit"|"reject", "draft"?, "qualification"?, "comment"|"reason"?, "override"?}``.

**Delivery** hands the draft to the :class:`DeliverySink` with the idempotency key
``<run_id>:deliver``. If the process dies after the sink delivered but before the step's
checkpoint, the step re-runs and the sink refuses the second delivery (it returns False):
the message goes out once and the output still says ``delivered``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from langgraph.graph import END, StateGraph
from langgraph.types import interrupt

from ai_orchestration import errors
from ai_orchestration.workflows._types import DeliveryRequest, JsonDoc
from ai_orchestration.workflows.graphs._checks import DraftIssue, check_draft
from ai_orchestration.workflows.graphs._content import ContentPolicy
from ai_orchestration.workflows.graphs._context import RunContext
from ai_orchestration.workflows.graphs._decision import (
    DISQUALIFIED,
    REASON_APPROVAL_REQUESTED,
    REASON_DRAFT_FAILED_CHECKS,
)
from ai_orchestration.workflows.graphs._documents import (
    CHANNELS,
    QUALIFICATIONS,
    lead_recipient,
    rfc3339,
)
from ai_orchestration.workflows.graphs._steps import call_tool, json_doc, step

__all__ = [
    "DECISIONS",
    "accept_answer",
    "add_review_and_delivery",
    "after_content",
    "after_human",
    "approval_step",
    "check_answer",
    "deliver_step",
    "deliverable",
    "draft_fails",
    "interrupt_id_of",
    "review_step",
    "with_issues",
]

_log = logging.getLogger(__name__)

DECISIONS: Final[frozenset[str]] = frozenset({"approve", "edit", "reject"})
"""The answers a human can give to an interrupt."""
_INTERRUPT_NAMESPACE: Final = uuid.UUID("6f1d1a52-51e4-4c4e-9a43-4f1f2f0c7a11")
DRAFT_FAILS_CHECKS: Final = "DRAFT_FAILS_CHECKS"
"""``ErrorInfo.reason`` of an answer that would deliver a draft failing checks."""


def interrupt_id_of(run_id: str, node: str) -> str:
    """The id of the interrupt node ``node`` raises in run ``run_id`` (stable across re-runs)."""
    return str(uuid.uuid5(_INTERRUPT_NAMESPACE, f"{run_id}:{node}"))


def with_issues(draft: Mapping[str, Any], issues: list[DraftIssue]) -> JsonDoc:
    """``draft`` with its failed checks (``issues`` sentences and ``failed_checks``)."""
    return {
        **draft,
        "issues": [issue.message for issue in issues],
        "failed_checks": [issue.to_json() for issue in issues],
    }


def draft_fails(draft: Mapping[str, Any]) -> bool:
    """Whether ``draft`` fails a check that no human overrode."""
    return bool(draft.get("failed_checks")) and not draft.get("override")


def deliverable(state: Mapping[str, Any]) -> bool:
    """Whether the run's draft may go out: there is one, it fails no check (or a human overrode
    them), no human rejected it, and the (final) qualification is not DISQUALIFIED."""
    draft = json_doc(state.get("draft"))
    if not draft.get("body") or draft_fails(draft):
        return False
    if json_doc(state.get("review")).get("decision") == "reject":
        return False
    return json_doc(state.get("decision")).get("qualification") != DISQUALIFIED


def after_content(state: Mapping[str, Any]) -> str:
    """Where a drafted run goes next: to a human when the decision asked for one or the draft
    fails a check (never straight to delivery then), else to delivery."""
    needs_human = json_doc(state.get("decision")).get("reasons")
    return "human_review" if needs_human or draft_fails(json_doc(state.get("draft"))) else "deliver"


def after_human(state: Mapping[str, Any]) -> str:
    """Where a reviewed run goes next: delivery if its draft may go out, else the end."""
    return "deliver" if deliverable(state) else END


def add_review_and_delivery(graph: StateGraph[Any, RunContext, Any, Any]) -> None:
    """The fail-closed tail of a drafting graph, in one place: ``content`` (the caller's node)
    goes to ``human_review`` or ``deliver`` (:func:`after_content`); ``human_review`` to
    ``deliver`` or the end (:func:`after_human`); ``deliver`` to the end."""
    graph.add_node("human_review", step("human_review", "decision_agent", review_step))
    graph.add_node("deliver", step("deliver", "delivery", deliver_step))
    graph.add_conditional_edges("content", after_content, ["human_review", "deliver"])
    graph.add_conditional_edges("human_review", after_human, ["deliver", END])
    graph.add_edge("deliver", END)


def check_answer(interrupt_doc: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
    """Check the form of a resume answer against the pending interrupt.

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


def _edited(draft: Mapping[str, Any], answer: Mapping[str, Any]) -> JsonDoc:
    edit = json_doc(answer.get("draft"))
    # A human may write the draft the workflow did not propose (e.g. for a lead it would have
    # disqualified): it starts empty, as an e-mail unless the edit names the channel.
    changed = dict(draft) or {"subject": "", "body": "", "channel": "CHANNEL_EMAIL"}
    changed.setdefault("revisions", 0)
    changed.pop("override", None)
    for key in ("subject", "body"):
        if isinstance(edit.get(key), str) and edit[key]:
            changed[key] = edit[key]
    if edit.get("channel") in CHANNELS:
        changed["channel"] = edit["channel"]
    return changed


def _tone(state: Mapping[str, Any], policy: ContentPolicy, tenant_id: str) -> str:
    return str(state.get("tone") or policy.voice_for(tenant_id))


def _recipient(state: Mapping[str, Any]) -> JsonDoc:
    return json_doc(state.get("recipient"))


def accept_answer(
    state: Mapping[str, Any],
    pending: Mapping[str, Any],
    answer: Mapping[str, Any],
    *,
    policy: ContentPolicy,
    tenant_id: str,
    now: datetime,
) -> JsonDoc:
    """The answer to store for a run paused at ``pending`` with graph ``state``.

    An edit whose draft would be delivered must pass the message checks (the checks of facts the
    model was given do not apply to a person's words). An approval of a draft that fails checks
    needs ``override_failed_checks``; the override (checks, comment, who, when) is added to the
    answer and recorded on the draft when the run resumes.

    Raises:
        errors.FailedPreconditionError, errors.InvalidArgumentError: see :func:`check_answer`;
            and INVALID_ARGUMENT with reason ``DRAFT_FAILS_CHECKS``, one violation per failed
            check (its ``rule`` is the check), when the answer would deliver a failing draft.
    """
    check_answer(pending, answer)
    decision = answer["decision"]
    qualification = answer.get("qualification") or json_doc(state.get("decision")).get(
        "qualification"
    )
    if decision == "reject" or qualification == DISQUALIFIED:
        return dict(answer)
    draft = json_doc(state.get("draft"))
    if decision == "edit":
        edited = _edited(draft, answer)
        if not edited.get("body"):
            return dict(answer)
        tone = _tone(state, policy, tenant_id)
        issues = check_draft(edited, tone=tone, policy=policy, recipient=_recipient(state))
        if issues:
            raise errors.InvalidArgumentError(
                "the edited draft fails checks: " + ", ".join(i.check for i in issues),
                [
                    errors.FieldViolation(
                        "edit.draft.subject" if i.check == "subject" else "edit.draft.body",
                        i.message,
                        i.check,
                    )
                    for i in issues
                ],
                reason=DRAFT_FAILS_CHECKS,
            )
        return dict(answer)
    failed = [json_doc(check) for check in draft.get("failed_checks", [])]
    if not failed or draft.get("override"):
        return dict(answer)
    if not answer.get("override_failed_checks"):
        raise errors.InvalidArgumentError(
            "the proposed draft fails checks: " + ", ".join(str(c.get("check")) for c in failed),
            [
                errors.FieldViolation(
                    "approve.override_failed_checks",
                    f"the draft fails the {c.get('check')} check ({c.get('message')}); edit the "
                    "draft, reject it, or set override_failed_checks to deliver it as it is",
                    str(c.get("check", "")),
                )
                for c in failed
            ],
            reason=DRAFT_FAILS_CHECKS,
        )
    override = {
        "checks": [str(c.get("check", "")) for c in failed],
        "comment": str(answer.get("comment", "")),
        "approved_by": str(answer.get("by", "")),
        "override_time": rfc3339(now),
    }
    return {**answer, "override": override}


def _review(answer: Mapping[str, Any]) -> JsonDoc:
    note = answer.get("comment") or answer.get("reason") or ""
    return {"decision": str(answer["decision"]), "comment": str(note)}


def _reviewed_draft(
    state: Mapping[str, Any], answer: Mapping[str, Any], context: RunContext
) -> JsonDoc | None:
    """The draft after the human's answer, or None when the answer leaves it as it is."""
    draft = json_doc(state.get("draft"))
    if answer["decision"] == "approve" and answer.get("override"):
        return {**draft, "override": dict(answer["override"])}
    if answer["decision"] != "edit" or not (draft or json_doc(answer.get("draft")).get("body")):
        return None
    edited = _edited(draft, answer)
    policy = context.deps.content
    tone = _tone(state, policy, context.run.tenant_id)
    return with_issues(
        edited, check_draft(edited, tone=tone, policy=policy, recipient=_recipient(state))
    )


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


def _failing(draft: JsonDoc, reasons: list[str], rationale: str) -> tuple[list[str], str]:
    """The interrupt's reasons and rationale, with the draft's failed checks when it has any."""
    if not draft_fails(draft):
        return reasons, rationale
    checks = ", ".join(str(json_doc(c).get("check")) for c in draft.get("failed_checks", []))
    note = f"the draft fails checks ({checks}): edit it, reject it, or approve with an override"
    return [*reasons, REASON_DRAFT_FAILED_CHECKS], f"{rationale}; {note}" if rationale else note


async def review_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """The decision agent's hand-off: a human approves, edits or rejects the proposal (with the
    qualification of a lead, and the evidence of a customer follow-up)."""
    decision = json_doc(state.get("decision"))
    draft = json_doc(state.get("draft"))
    reasons, rationale = _failing(
        draft, list(decision.get("reasons", [])), str(decision.get("rationale", ""))
    )
    proposal: JsonDoc = {
        "next_best_action": decision.get("next_best_action", {}),
        "rationale": rationale,
    }
    if decision.get("qualification"):
        proposal["qualification"] = decision["qualification"]
    if draft:
        proposal["draft"] = draft
    if evidence := state.get("evidence"):
        proposal["evidence"] = evidence
    answer = await _ask_human(context, name, reasons, proposal)
    update: dict[str, Any] = {"review": _review(answer)}
    if (reviewed := _reviewed_draft(state, answer, context)) is not None:
        update["draft"] = reviewed
        if not state.get("recipient"):
            lead = json_doc(json_doc(state.get("input")).get("lead"))
            update["recipient"] = lead_recipient(lead)
    if answer["decision"] == "edit" and answer.get("qualification") in QUALIFICATIONS:
        update["decision"] = {**decision, "qualification": answer["qualification"]}
    return update, False


async def approval_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """Caller-requested approval of generated content, or the hold of a draft failing checks."""
    draft = json_doc(state.get("draft"))
    requested = bool(json_doc(state.get("input")).get("require_approval"))
    reasons, rationale = _failing(
        draft,
        [REASON_APPROVAL_REQUESTED] if requested else [],
        "approval of the content was requested" if requested else "",
    )
    answer = await _ask_human(context, name, reasons, {"draft": draft, "rationale": rationale})
    update: dict[str, Any] = {"review": _review(answer)}
    if (reviewed := _reviewed_draft(state, answer, context)) is not None:
        update["draft"] = reviewed
    return update, False


async def deliver_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """Hand the draft to the delivery sink exactly once (ledger key ``<run_id>:deliver``)."""
    run = context.run
    draft = json_doc(state.get("draft"))
    if not deliverable(state):
        # The graph routes here only for a deliverable draft; this is the last line of defence.
        _log.error("run %s reached delivery with a draft that may not be sent", run.run_id)
        return {"delivered": False}, False
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
