"""Drafts of the bundled model (SmolLM2-135M) through the real server, as a new user gets them.

Starts the real server on 127.0.0.1:0 with no LLM configuration (so every call goes to the bundled
local model, as after ``make run`` without provider keys), streams ``--content`` runs of
``content_generation`` over varied recipients, channels, tones and key points and ``--leads``
runs of ``lead_qualification`` over varied leads, and prints:

- how many drafts were delivered, held for a human because they failed a check, and degraded
  (no part of the draft is the model's: the template wrote it);
- how many *delivered* drafts fail any check, checked again here from the run's input (goal: 0);
- how many drafts pass every check at the first attempt: every part of the model's first answer
  was kept, so no part was asked for again and none came from the template (goal: >= 60%);
- the share of the draft parts (subject, goal sentence, points sentence) the model wrote;
- the median and p95 time of the content step (``StepFinished.duration``), and the token deltas
  it streamed;
- three sample drafts per channel and three analyses.

A lead run the decision rules hand to a human for another reason (low confidence, a large deal)
is approved, so its draft is delivered or held like the others. Not a test: it takes minutes
on two cores. ``--quick`` runs 4 + 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import grpc.aio
from _serving import serving, token
from crm.ai.v1 import scoring_pb2, workflow_pb2, workflow_pb2_grpc

from ai_orchestration.server import Server
from ai_orchestration.wire.workflows import document
from ai_orchestration.workflows.graphs import ContentPolicy
from ai_orchestration.workflows.graphs._checks import check_analysis, check_draft
from ai_orchestration.workflows.graphs._compose import draft_parts, grounding, template_parts
from ai_orchestration.workflows.graphs._content import DraftSpec
from ai_orchestration.workflows.graphs._documents import lead_recipient
from ai_orchestration.workflows.graphs._writing import GOALS

if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    from crm.ai.v1.workflow_pb2_grpc import WorkflowServiceAsyncStub as Stub

TENANT: Final = "bench"
SENDER: Final = "Sam from Acme"
FIRST_ATTEMPT_GOAL: Final = 0.60
TEMPLATE_ANALYSIS: Final = re.compile(r"Score \d+/100 \(grade [A-D]\)\. Strengths: ")
RUN_TIMEOUT: Final = 300.0
State = workflow_pb2.Run.State
Reason = workflow_pb2.Interrupt.Reason

RECIPIENTS: Final = (
    ("Ada Lovelace", "CTO", "Analytical Engines"),
    ("Jane Doe", "Director of Operations", "Initech"),
    ("Bob Stone", "VP Sales", "Globex"),
    ("Mia Chen", "Marketing Manager", "Umbrella Corp"),
    ("Lars Berg", "Head of IT", "Nordwind"),
    ("Priya Patel", "CFO", "Stark Logistics"),
    ("Tom Weber", "Operations Lead", "Hooli"),
    ("Sara Lind", "Head of Sales", "Vandelay Industries"),
)
PURPOSES: Final = (
    (
        "invite her to the product webinar on Thursday",
        ("live demo of the new reports", "30 minutes"),
    ),
    ("follow up on their question about single sign-on", ("works with Okta and Azure AD",)),
    ("discuss the renewal of their contract next month", ("10% discount for a 2-year term",)),
    ("share our new case study about churn reduction", ()),
    ("thank them for the meeting yesterday", ("send the pricing proposal by Friday",)),
    ("book a product demo at a time that suits them", ("the demo takes 20 minutes",)),
    ("introduce the new forecasting module", ("included in their plan", "no setup needed")),
    ("ask for feedback on the onboarding", ()),
)
CHANNELS: Final = (
    workflow_pb2.CHANNEL_EMAIL,
    workflow_pb2.CHANNEL_SMS,
    workflow_pb2.CHANNEL_LINKEDIN,
    workflow_pb2.CHANNEL_PHONE,
)
TONES: Final = (
    workflow_pb2.TONE_PROFESSIONAL,
    workflow_pb2.TONE_FRIENDLY,
    workflow_pb2.TONE_FORMAL,
    workflow_pb2.TONE_CASUAL,
)
TONE_WORDS: Final = {
    workflow_pb2.TONE_PROFESSIONAL: "professional",
    workflow_pb2.TONE_FRIENDLY: "friendly",
    workflow_pb2.TONE_FORMAL: "formal",
    workflow_pb2.TONE_CASUAL: "casual",
}


@dataclass
class Outcome:
    """What one run gave."""

    workflow: str
    channel: str
    spec: DraftSpec | None
    draft: workflow_pb2.OutreachDraft | None = None
    delivered: bool = False
    held: bool = False
    degraded: bool = False
    content_ms: float = 0.0
    content_deltas: int = 0
    analysis: str = ""
    failed: str = ""
    model_parts: int = 0
    parts: int = 0
    recheck: list[str] = field(default_factory=list)


def content_inputs(count: int) -> list[tuple[workflow_pb2.ContentGenerationInput, DraftSpec]]:
    """``count`` varied content inputs (every channel and tone, cycling), with the draft spec
    the service builds from each (for checking its drafts again here)."""
    inputs = []
    for i in range(count):
        name, role, company = RECIPIENTS[i % len(RECIPIENTS)]
        # Shifted each round of recipients, so no recipient gets the same purpose twice.
        purpose, points = PURPOSES[(i * 3 + i // len(RECIPIENTS)) % len(PURPOSES)]
        channel = CHANNELS[i % len(CHANNELS)]
        tone = TONES[(i // len(CHANNELS)) % len(TONES)]
        email = f"{name.split()[0].lower()}@{company.split()[0].lower()}.example"
        message = workflow_pb2.ContentGenerationInput(
            recipient=workflow_pb2.Recipient(name=name, company=company, role=role, email=email),
            purpose=purpose,
            channel=channel,
            tone=tone,
            key_points=list(points),
        )
        spec = DraftSpec(
            recipient={"name": name, "company": company, "role": role, "email": email},
            goal=purpose,
            channel=workflow_pb2.Channel.Name(channel),
            tone=TONE_WORDS[tone],
            points=points,
            sender=SENDER,
        )
        inputs.append((message, spec))
    return inputs


def leads(count: int) -> list[scoring_pb2.Lead]:
    """``count`` varied leads: hot and lukewarm, with and without an e-mail address."""
    people = [
        ("jane.doe", "Initech", "Director of Operations"),
        ("li.wang", "Globex", "VP Engineering"),
        ("omar.haddad", "Nordwind", "Head of Finance"),
        ("eva.novak", "Umbrella Corp", "IT Manager"),
        ("carlos.ruiz", "Stark Logistics", "COO"),
    ]
    made = []
    for i in range(count):
        user, company, title = people[i % len(people)]
        made.append(
            scoring_pb2.Lead(
                lead_id=f"bench-lead-{i}",
                email=f"{user}@{company.split()[0].lower()}.example" if i % 4 != 3 else "",
                company_name=company,
                job_title=title,
                industry="software",
                employee_count=200 + 150 * i,
                seniority=scoring_pb2.SENIORITY_DIRECTOR,
                source=scoring_pb2.LEAD_SOURCE_REFERRAL,
                page_visits=10 + 3 * i,
                pricing_page_visits=2 + i % 6,
                demo_requested=i % 3 != 2,
                days_since_last_touch=1 + i,
                country="DE",
                estimated_deal_value=15_000.0 + 2_000 * i,
            )
        )
    return made


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[Server]:
    """The real server with the default LLM configuration (the bundled model only)."""
    async with serving("bench-drafts-", llm_cache_ttl_seconds=0) as server:
        yield server


async def run_to_end(
    stub: Stub, metadata: Sequence[tuple[str, str]], start: workflow_pb2.StartRunRequest
) -> tuple[list[workflow_pb2.RunEvent], workflow_pb2.Run]:
    """Stream the run; approve a hand-off the rules asked for (not one for a failing draft)."""
    events: list[workflow_pb2.RunEvent] = []
    request = workflow_pb2.StreamRunRequest(run=start)
    async for event in stub.StreamRun(request, metadata=metadata):
        events.append(event)
    run_id = events[0].run_id
    run = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=metadata)
    pending = run.pending_interrupt
    if run.state == State.STATE_WAITING_FOR_INPUT and (
        Reason.REASON_DRAFT_FAILED_CHECKS not in pending.reasons
    ):
        resume = workflow_pb2.ResumeRunRequest(
            run_id=run_id, interrupt_id=pending.interrupt_id, approve=workflow_pb2.Approval()
        )
        await stub.ResumeRun(resume, metadata=metadata)
        watch = workflow_pb2.WatchRunRequest(run_id=run_id, after_sequence=events[-1].sequence)
        async for event in stub.WatchRun(watch, metadata=metadata):
            events.append(event)
        run = await stub.GetRun(workflow_pb2.GetRunRequest(run_id=run_id), metadata=metadata)
    return events, run


def model_parts(spec: DraftSpec, draft: workflow_pb2.OutreachDraft) -> tuple[int, int]:
    """(parts the model wrote, parts asked for): a part is the template's when its template
    text is in the draft."""
    template = template_parts(spec)
    parts = draft_parts(spec)
    written = 0
    for part in parts:
        text = template.get(part.name, "")
        where = draft.subject if part.name == "subject" else draft.body
        written += bool(text) and text not in where
    return written, len(parts)


def record(outcome: Outcome, events: list[workflow_pb2.RunEvent], run: workflow_pb2.Run) -> Outcome:
    """Fill ``outcome`` from the run's events and final state."""
    for event in events:
        if event.HasField("step_finished") and event.step_finished.step == "content":
            outcome.content_ms = event.step_finished.duration.ToMilliseconds()
        if event.HasField("token_delta") and event.token_delta.step == "content":
            outcome.content_deltas += 1
    if run.state == State.STATE_WAITING_FOR_INPUT:
        outcome.held = True
        outcome.draft = run.pending_interrupt.proposal.draft
    elif run.state == State.STATE_SUCCEEDED:
        out = getattr(run.output, run.output.WhichOneof("output") or "")
        outcome.draft = out.draft if out.HasField("draft") else None
        outcome.delivered = out.delivered
        outcome.degraded = "content" in out.degraded_steps
        outcome.analysis = getattr(out, "analysis", "")
    else:
        outcome.failed = workflow_pb2.Run.State.Name(run.state) + " " + run.error.message
    if outcome.draft is not None and outcome.spec is not None:
        outcome.model_parts, outcome.parts = model_parts(outcome.spec, outcome.draft)
        if outcome.delivered:
            draft = {
                "subject": outcome.draft.subject,
                "body": outcome.draft.body,
                "channel": workflow_pb2.Channel.Name(outcome.draft.channel),
            }
            issues = check_draft(
                draft,
                tone=outcome.spec.tone,
                policy=ContentPolicy(),
                recipient=outcome.spec.recipient,
                grounding=grounding(outcome.spec),
            )
            outcome.recheck = [f"{i.check}: {i.message}" for i in issues]
    if outcome.analysis:
        outcome.recheck += [f"analysis {i.check}" for i in check_analysis(outcome.analysis)]
    return outcome


def lead_spec(lead: scoring_pb2.Lead, run: workflow_pb2.Run, tone: str) -> DraftSpec:
    """The draft spec the service built for a lead: its recipient, the goal of the action the
    rules chose (or the proposal's, while held), the brand voice."""
    output = run.output.lead_qualification
    action = (
        output.next_best_action.action or run.pending_interrupt.proposal.next_best_action.action
    )
    name = workflow_pb2.NextBestAction.Action.Name(action)
    recipient = lead_recipient(document(lead))
    return DraftSpec(
        recipient=recipient,
        goal=GOALS.get(name, GOALS["ACTION_SEND_EMAIL"]),
        channel="CHANNEL_EMAIL" if lead.email else "CHANNEL_PHONE",
        tone=tone,
        points=(),
        sender=ContentPolicy().sender_name,
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def report(outcomes: list[Outcome], seconds: float) -> None:
    drafts = [o for o in outcomes if o.draft is not None]
    delivered = [o for o in drafts if o.delivered]
    failing = [o for o in delivered if any(not r.startswith("analysis") for r in o.recheck)]
    first = [o for o in drafts if o.draft and o.draft.revisions == 0 and not o.degraded]
    first = [o for o in first if not o.held and o.model_parts == o.parts]
    times = [o.content_ms for o in outcomes if o.content_ms]
    written = sum(o.model_parts for o in drafts)
    asked = sum(o.parts for o in drafts)
    print(f"runs                         {len(outcomes)} in {seconds:.0f} s")
    print(f"  failed runs                {sum(1 for o in outcomes if o.failed)}")
    print(f"drafts                       {len(drafts)}")
    print(f"  delivered                  {len(delivered)}")
    print(f"  held for review            {sum(1 for o in drafts if o.held)}")
    print(f"  degraded (template only)   {sum(1 for o in drafts if o.degraded)}")
    print(f"delivered failing a check    {len(failing)}   (goal: 0)")
    share = len(first) / len(drafts) if drafts else 0.0
    mark = "met" if share >= FIRST_ATTEMPT_GOAL else "NOT met"
    print(f"pass at the first attempt    {len(first)} = {share:.0%}   (goal: >= 60%: {mark})")
    print(f"draft parts the model wrote  {written} of {asked} = {written / max(1, asked):.0%}")
    if times:
        print(
            f"content step                 median {statistics.median(times) / 1000:.1f} s, "
            f"p95 {percentile(times, 0.95) / 1000:.1f} s"
        )
    deltas = [o.content_deltas for o in outcomes if o.content_ms]
    print(f"content token deltas / run   median {statistics.median(deltas) if deltas else 0}")
    analyses = [o for o in outcomes if o.analysis]
    bad = sum(1 for o in analyses if any(r.startswith("analysis") for r in o.recheck))
    print(f"analyses failing a check     {bad} of {len(analyses)}")
    worded = sum(1 for o in analyses if not TEMPLATE_ANALYSIS.match(o.analysis))
    print(f"analyses the model worded    {worded} of {len(analyses)} (the rest: template)")
    for o in failing:
        print(f"  FAILING: {o.recheck}")
    for o in outcomes:
        if o.failed:
            print(f"  FAILED RUN: {o.failed}")


def samples(outcomes: list[Outcome]) -> None:
    for channel in ("CHANNEL_EMAIL", "CHANNEL_SMS", "CHANNEL_LINKEDIN", "CHANNEL_PHONE"):
        shown = [o for o in outcomes if o.channel == channel and o.draft is not None][:3]
        for o in shown:
            assert o.draft is not None
            state = "held" if o.held else "delivered" if o.delivered else "not delivered"
            print(
                f"\n--- {channel} ({o.workflow}, {state}, parts by the model "
                f"{o.model_parts}/{o.parts}, revisions {o.draft.revisions})"
            )
            if o.draft.subject:
                print(f"Subject: {o.draft.subject}")
            print(o.draft.body)
            for check in o.draft.failed_checks:
                print(f"  [fails {check.check}: {check.message}]")
    for o in [o for o in outcomes if o.analysis][:3]:
        print(f"\n--- analysis\n{o.analysis}")


async def main(options: argparse.Namespace) -> None:
    started = time.perf_counter()
    async with served() as server:
        print(f"server start                 {time.perf_counter() - started:.1f} s")
        metadata = (("authorization", f"Bearer {token(TENANT)}"),)
        outcomes: list[Outcome] = []
        begun = time.perf_counter()
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub: Stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
            for message, spec in content_inputs(options.content):
                start = workflow_pb2.StartRunRequest(
                    request_id=str(uuid.uuid4()),
                    labels={"sender_name": SENDER},
                    content_generation=message,
                )
                async with asyncio.timeout(RUN_TIMEOUT):
                    events, run = await run_to_end(stub, metadata, start)
                outcome = Outcome("content_generation", spec.channel, spec)
                outcomes.append(record(outcome, events, run))
                print(".", end="", flush=True)
            voice = ContentPolicy().brand_voice
            for lead in leads(options.leads):
                start = workflow_pb2.StartRunRequest(
                    request_id=str(uuid.uuid4()),
                    lead_qualification=workflow_pb2.LeadQualificationInput(lead=lead),
                )
                async with asyncio.timeout(RUN_TIMEOUT):
                    events, run = await run_to_end(stub, metadata, start)
                spec = lead_spec(lead, run, voice)
                outcome = Outcome("lead_qualification", spec.channel, spec)
                outcomes.append(record(outcome, events, run))
                print(".", end="", flush=True)
        print()
        report(outcomes, time.perf_counter() - begun)
        samples(outcomes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--content", type=int, default=32, help="content_generation runs")
    parser.add_argument("--leads", type=int, default=10, help="lead_qualification runs")
    parser.add_argument("--quick", action="store_true", help="4 content and 2 lead runs")
    args = parser.parse_args()
    if args.quick:
        args.content, args.leads = 4, 2
    try:
        asyncio.run(main(args))
    except KeyboardInterrupt:
        sys.exit(130)
