"""The content agent: ask the model for a draft's parts, ask again for what it got wrong, compose
the draft, check it, and apply the tenant's rule for a draft that still fails.

One call asks for every part of the draft (:func:`~._compose.draft_parts`) as a JSON object under
a schema, streamed as ``token_delta`` events: with the ``draft_parts`` prompt, or for a reply to
what the reader told us (``DraftSpec.passages``) with ``follow_up_parts``, which shows the
passages fenced as quoted data and is never answered from the cache. Each part is kept only
when it passes :func:`~._compose.accept_draft_part`; the parts it refused are asked for again,
with the reasons, at most ``max_revisions`` times, then taken from the template. The composed
draft is checked as a whole (:func:`~._checks.check_draft`, grounding checks included). A draft
that still fails is never delivered as it is: under the tenant's ``use_template`` action, or in
a workflow that cannot pause for a human, it is replaced here by the template draft (the step is
degraded); otherwise the graph holds it for a human (see :mod:`._review`). A template that fails
too (the caller's own words hold a merge field) is never sent: it stays marked as failing.
"""

from __future__ import annotations

from typing import Any, Final

from ai_orchestration.workflows._types import JsonDoc
from ai_orchestration.workflows.graphs._checks import DraftIssue, check_draft
from ai_orchestration.workflows.graphs._compose import (
    POINTS,
    SUBJECT,
    accept_draft_part,
    compose,
    draft_parts,
    examples,
    fallback_draft,
    grounding,
    prompt_variables,
    repaired,
    template_parts,
    with_uncovered_points,
)
from ai_orchestration.workflows.graphs._content import ContentPolicy, DraftSpec
from ai_orchestration.workflows.graphs._context import RunContext
from ai_orchestration.workflows.graphs._decision import USE_TEMPLATE
from ai_orchestration.workflows.graphs._documents import CHANNELS, TONES, lead_recipient
from ai_orchestration.workflows.graphs._parts import (
    STOP,
    parse_parts,
    schema,
    token_budget,
    without_repeated_clause,
)
from ai_orchestration.workflows.graphs._review import with_issues
from ai_orchestration.workflows.graphs._steps import Generation, ask, json_doc

__all__ = [
    "GOALS",
    "REPLY_TEMPLATE",
    "TEMPLATE",
    "content_generation_step",
    "lead_content_step",
    "write_draft",
]

TEMPLATE: Final = "draft_parts"
"""The prompt template of the content agent's calls."""
REPLY_TEMPLATE: Final = "follow_up_parts"
"""The prompt template of a reply to the reader's passages."""
GOALS: Final[dict[str, str]] = {  # what a lead's outreach should achieve, per chosen action
    "ACTION_SCHEDULE_DEMO": "book the product demo they asked for at a time that suits them",
    "ACTION_ESCALATE": "introduce their dedicated account executive and propose a short call",
    "ACTION_SEND_EMAIL": "open a conversation about what they need",
    "ACTION_CALL": "propose a short call about what they need",
    "ACTION_NURTURE_SEQUENCE": "share something useful and stay in touch",
    "ACTION_CLOSE": "thank them for their interest",
}


async def _model_parts(
    context: RunContext, name: str, spec: DraftSpec, subject_key: str
) -> tuple[dict[str, str], int]:
    """The parts the model got right, and how many calls it took (0 when none answered)."""
    policy = context.deps.content
    kept: dict[str, str] = {}
    feedback = ""
    calls = 0
    for attempt in range(1 + policy.max_revisions):
        missing = [part for part in draft_parts(spec) if part.name not in kept]
        if not missing:
            break
        generation = Generation(
            model=policy.model,
            max_tokens=min(policy.max_tokens, token_budget(missing)),
            temperature=policy.temperature if attempt == 0 else policy.revision_temperature,
            frequency_penalty=policy.frequency_penalty,
            schema=schema(missing),
            stop=STOP,
            stream=True,
            attempt=attempt,
            examples=examples(spec, missing),
            # The reader's own words are in the prompt: no cache entry may be built from them.
            use_cache=not spec.passages,
        )
        variables = prompt_variables(spec, feedback)
        template = REPLY_TEMPLATE if spec.passages else TEMPLATE
        text, degraded = await ask(
            context, name, template, variables, generation, subject_key=subject_key, fallback=""
        )
        if degraded:
            break
        calls += 1
        answer = parse_parts(text, missing)
        reasons: list[str] = []
        for part in missing:
            value = answer.get(part.name)
            if value is None:
                reasons.append(f"{part.name}: it was missing from your answer")
                continue
            # The body's sentences may not repeat each other; the subject may sum them up.
            body = [text for key, text in kept.items() if key != SUBJECT]
            value = without_repeated_clause(repaired(value, spec), body)
            why = accept_draft_part(part.name, value, spec, policy, body)
            if why:
                reasons.append(f"{part.name}: {why}")
            else:
                kept[part.name] = value
        feedback = "; ".join(reasons)
    return kept, calls


async def write_draft(
    context: RunContext, name: str, spec: DraftSpec, subject_key: str
) -> tuple[JsonDoc, bool]:
    """The draft for ``spec`` and whether the step is degraded (no part is the model's, or the
    tenant's rule replaced a failing draft by the template)."""
    policy = context.deps.content
    limit = policy.max_chars.get(spec.channel)
    kept, calls = await _model_parts(context, name, spec, subject_key)
    parts = {**template_parts(spec), **kept}
    if POINTS in kept:
        parts[POINTS] = with_uncovered_points(spec, kept[POINTS])
    draft = compose(spec, parts, limit)
    draft["revisions"] = max(0, calls - 1)
    issues = _check(draft, spec, policy)
    if issues and (
        not context.interruptible
        or (await context.decision_policy()).failed_draft_action == USE_TEMPLATE
    ):
        # The tenant chose the template, or no human can review the draft.
        template = {**fallback_draft(spec, limit), "revisions": draft["revisions"]}
        # The template is made of the caller's own words: a merge field left in a key point
        # fails it too, and then only a human can fix the draft.
        if not _check(template, spec, policy):
            return template, True
    return with_issues(draft, issues), not kept


def _check(draft: JsonDoc, spec: DraftSpec, policy: ContentPolicy) -> list[DraftIssue]:
    return check_draft(
        draft, tone=spec.tone, policy=policy, recipient=spec.recipient, grounding=grounding(spec)
    )


async def lead_content_step(
    state: dict[str, Any], context: RunContext, name: str
) -> tuple[dict[str, Any], bool]:
    """The outreach draft for a lead, in the tenant's brand voice."""
    lead = json_doc(json_doc(state.get("input")).get("lead"))
    decision = json_doc(state.get("decision"))
    action = str(json_doc(decision.get("next_best_action")).get("action", ""))
    recipient = lead_recipient(lead)
    policy = context.deps.content
    tone = policy.voice_for(context.run.tenant_id)
    spec = DraftSpec(
        recipient=recipient,
        goal=GOALS.get(action, GOALS["ACTION_SEND_EMAIL"]),
        channel="CHANNEL_EMAIL" if recipient["email"] else "CHANNEL_PHONE",
        tone=tone,
        points=(),
        sender=context.run.labels.get("sender_name", policy.sender_name),
    )
    draft, degraded = await write_draft(context, name, spec, str(lead.get("lead_id", "")))
    return {"draft": draft, "recipient": recipient, "tone": tone}, degraded


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
    spec = DraftSpec(
        recipient=recipient,
        goal=str(data.get("purpose", "")).strip() or "get in touch",
        channel=channel,
        tone=tone,
        points=tuple(str(p) for p in data.get("key_points", []) if str(p).strip()),
        sender=context.run.labels.get("sender_name", policy.sender_name),
    )
    key = recipient.get("email", "") or context.run.run_id
    draft, degraded = await write_draft(context, name, spec, key)
    return {"draft": draft, "recipient": recipient, "tone": tone}, degraded
