"""Outreach drafts the code owns, with the sentences a model may write in them.

A draft is composed per channel from a greeting, an opening about the recipient's company, the
*goal* sentence, the *points* (the key points the caller listed), a closing question and a
signature; an e-mail also has a *subject*. A reply to what the reader told us (a follow-up with
``DraftSpec.passages``) also has a *context* sentence before the goal, saying back what they
said. The model is asked for the subject, the context, the goal sentence and the points sentence
(:func:`draft_parts`); each is used only when :func:`accept_draft_part` keeps it, and every part
it did not get right comes from :func:`template_parts`, so a composed draft is complete and
passes the draft checks whatever the model wrote. The template has no context sentence: the code
never words the reader's own text itself. :func:`fallback_draft` is the draft of the template
parts alone, for when no model answers or the tenant wants the template for a draft that fails
its checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from ai_orchestration.insights import Passage, fence_passages
from ai_orchestration.workflows._types import JsonDoc
from ai_orchestration.workflows.graphs._content import ContentPolicy, DraftSpec
from ai_orchestration.workflows.graphs._parts import Part, accept, content_words, covers

__all__ = [
    "CONTEXT",
    "GOAL",
    "POINTS",
    "SUBJECT",
    "accept_draft_part",
    "compose",
    "draft_parts",
    "examples",
    "fallback_draft",
    "grounding",
    "prompt_variables",
    "repaired",
    "second_person",
    "template_parts",
    "with_uncovered_points",
]

SUBJECT: Final = "subject"
GOAL: Final = "goal"
POINTS: Final = "points"
CONTEXT: Final = "context"
_SMS: Final = "CHANNEL_SMS"
_EMAIL: Final = "CHANNEL_EMAIL"
_PHONE: Final = "CHANNEL_PHONE"
_TEMPLATE_GOAL_CHARS: Final = 300
_MAX_SUBJECT: Final = 60
_GOAL_COVERAGE: Final = 0.5
"""Share of the goal's content words the goal sentence must have."""
_POINT_COVERAGE: Final = 0.5
"""Share of each key point's content words the points sentence must have."""
# Verbs a goal usually starts with ("invite her to ..."): such a goal reads "I'd like to <goal>";
# any other ("renewal of their contract") reads "I'm writing about <goal>".
_GOAL_VERBS: Final = frozenset(
    [
        "arrange",
        "ask",
        "book",
        "catch",
        "check",
        "confirm",
        "congratulate",
        "discuss",
        "explore",
        "follow",
        "get",
        "give",
        "help",
        "introduce",
        "invite",
        "learn",
        "let",
        "offer",
        "open",
        "present",
        "propose",
        "remind",
        "renew",
        "request",
        "review",
        "schedule",
        "send",
        "set",
        "share",
        "show",
        "talk",
        "thank",
        "update",
        "walk",
        "welcome",
    ]
)
_OBJECT_HER = re.compile(r"\bher\b(?=\s+(?:to|at|for|about|with|on|in|and|know)\b|\s*[.,;]|$)")
_POSSESSIVE = re.compile(r"\b(?:her|his|their)\b")
_PERSON = re.compile(r"\b(?:them|him|they|she|he)\b")
_OPENERS: Final = ("I ", "I'", "We ", "We'", "Thank", "Our ")
_REPLY_OPENERS: Final = ("Thank", "You ", "You'", "I ", "I'", "We ", "We'")
_CONTEXT_WORDS: Final = 2
"""Content words of one of the reader's passages the context sentence must have."""
# How a reply says that it heard the reader: words of manner, not facts, which the examples
# share with every good reply (they do not make a copied example).
_HEARD: Final = frozenset(
    content_words("thank thanks telling told sharing shared letting know hear heard sorry")
)
_OURS = re.compile(r"(?<!\w)our (\w+)", re.I)
_THEMSELVES = re.compile(r"\b(?:themselves|himself|herself)\b")


def second_person(goal: str) -> str:
    """``goal`` as said to its reader: "invite her to the webinar" -> "invite you to the
    webinar", "their contract" -> "your contract"."""
    text = _OBJECT_HER.sub("you", goal.strip().rstrip("."))
    text = _THEMSELVES.sub("yourself", text)
    text = _POSSESSIVE.sub("your", text)
    return _PERSON.sub("you", text)


def _points(spec: DraftSpec) -> list[str]:
    return [p.strip().rstrip(".") for p in spec.points if p.strip()]


def draft_parts(spec: DraftSpec) -> tuple[Part, ...]:
    """What the model is asked to write for ``spec``: the subject (e-mail only), the context
    sentence (a reply to the reader's passages only), the goal sentence and, when there are key
    points, the points sentence (shorter for an SMS)."""
    short = spec.channel == _SMS
    parts: list[Part] = []
    if spec.channel == _EMAIL:
        parts.append(Part(SUBJECT, "a subject line about the goal", 8, _MAX_SUBJECT, False))
    if spec.passages:
        parts.append(
            Part(
                CONTEXT,
                "what the reader told us, said back to them",
                20,
                110 if short else 160,
                True,
                _REPLY_OPENERS,
            )
        )
    # In the sender's words ("I would like to ..."), never the goal's own imperative.
    parts.append(
        Part(GOAL, "the goal, said to the reader", 20, 110 if short else 160, True, _OPENERS)
    )
    if _points(spec):
        parts.append(Part(POINTS, "the key points", 20, 120 if short else 200))
    return tuple(parts)


EXAMPLES: Final[tuple[tuple[dict[str, str], dict[str, str]], ...]] = (
    (
        {
            "reader": "Tom Berg, Head of IT at Nordwind",
            "tone": "professional",
            "goal": "follow up on your question about data residency",
            "key_points": "data stays in the EU",
        },
        {
            SUBJECT: "Your question about data residency",
            GOAL: "I am following up on your question about data residency.",
            POINTS: "Your data stays in the EU at all times.",
        },
    ),
    (
        {
            "reader": "Mary Jones, Buyer at Acorn Foods",
            "tone": "friendly",
            "goal": "invite you to our spring tasting event",
            "key_points": "free entry; new seasonal menu",
        },
        {
            SUBJECT: "Join our spring tasting",
            GOAL: "I would love to invite you to our spring tasting event.",
            POINTS: "Entry is free, and you can try our new seasonal menu.",
        },
    ),
    (
        {
            "reader": "Paul Weiss, Director of Finance at Kessler Bank",
            "tone": "formal",
            "goal": "confirm the terms of your renewal",
            "key_points": "the price stays the same",
        },
        {
            SUBJECT: "The terms of your renewal",
            GOAL: "I am writing to confirm the terms of your renewal.",
            POINTS: "The price of your plan stays the same.",
        },
    ),
    (
        {
            "reader": "Lena Fischer, Office Manager at Brightway",
            "tone": "professional and warm",
            "goal": "introduce our new support portal",
            "key_points": "none",
        },
        {
            SUBJECT: "Our new support portal",
            GOAL: "I would like to introduce you to our new support portal.",
            POINTS: "",
        },
    ),
)
"""Worked examples of the ``draft_parts`` prompt (a small model copies the shape of an example;
their facts are unlike any real request's, so a copied fact is refused as not given)."""


def _quoted(*texts: str) -> str:
    """An example's passages, fenced as a real prompt fences the reader's."""
    day = datetime(2024, 5, 6, tzinfo=UTC)
    return fence_passages(
        [Passage(n, f"example-{n}", day, 0, len(text), text) for n, text in enumerate(texts, 1)]
    )


REPLY_EXAMPLES: Final[tuple[tuple[dict[str, str], dict[str, str]], ...]] = (
    (
        {
            "reader": "Tom Berg, Head of IT at Nordwind",
            "tone": "professional",
            "goal": "arrange a short call about the export errors you reported",
            "key_points": "none",
            "passages": _quoted(
                "The nightly export failed again this week and my team is losing patience."
            ),
        },
        {
            SUBJECT: "The export errors you reported",
            CONTEXT: "Thank you for telling us about the failing nightly export.",
            GOAL: "I would like to arrange a short call about the export errors you reported.",
            POINTS: "",
        },
    ),
    (
        {
            "reader": "Mary Jones, Buyer at Acorn Foods",
            "tone": "friendly",
            "goal": "propose scanners for the extra stores you mentioned",
            "key_points": "none",
            "passages": _quoted(
                "We are opening more stores in spring and want the scanner app there too."
            ),
        },
        {
            SUBJECT: "Scanners for your new stores",
            CONTEXT: "Thank you for sharing your plans to open more stores in spring.",
            GOAL: "I would love to propose scanners for the extra stores you mentioned.",
            POINTS: "",
        },
    ),
)
"""Worked examples of the ``follow_up_parts`` prompt, a reply to the reader's passages."""


def examples(spec: DraftSpec, parts: Sequence[Part]) -> tuple[tuple[Mapping[str, str], str], ...]:
    """The worked examples for a call asking for ``parts`` of ``spec``: each prompt's variables
    and its answer with only those parts (replies to passages have their own examples)."""
    names = [part.name for part in parts]
    return tuple(
        ({**variables, "feedback": "none"}, json.dumps({name: answer[name] for name in names}))
        for variables, answer in (REPLY_EXAMPLES if spec.passages else EXAMPLES)
        if all(answer[name] for name in names)  # an example without key points has no points
    )


def prompt_variables(spec: DraftSpec, feedback: str) -> dict[str, str]:
    """The variables of the ``draft_parts`` prompt."""
    name = str(spec.recipient.get("name", "")).strip() or "the reader"
    role = str(spec.recipient.get("role", "")).strip()
    company = str(spec.recipient.get("company", "")).strip()
    reader = name + (f", {role}" if role else "") + (f" at {company}" if company else "")
    variables = {
        "reader": reader,
        "tone": spec.tone,
        "goal": second_person(spec.goal),
        "key_points": "; ".join(_points(spec)) or "none",
        "feedback": feedback or "none",
    }
    if spec.passages:  # the variables of the ``follow_up_parts`` prompt
        variables["passages"] = fence_passages(spec.passages)
    return variables


def grounding(spec: DraftSpec) -> str:
    """Every fact the model is given for ``spec``: what its parts may mention (the reader's own
    passages included)."""
    recipient = " ".join(str(v) for v in spec.recipient.values())
    facts = [recipient, spec.goal, second_person(spec.goal), *spec.points, spec.sender]
    return "\n".join([*facts, *(passage.text for passage in spec.passages)])


def repaired(text: str, spec: DraftSpec) -> str:
    """The model's part with what cleaning can safely mend: "share our case study" said back as
    "share your case study" (a small model flips the pronoun it reads in the goal)."""
    for thing in _OURS.findall(f"{spec.goal} {' '.join(spec.points)}"):
        text = re.sub(rf"(?<!\w)your {re.escape(thing)}(?!\w)", f"our {thing}", text, flags=re.I)
    return text


def accept_draft_part(
    name: str, text: str, spec: DraftSpec, policy: ContentPolicy, taken: Sequence[str]
) -> str:
    """Why the model's ``text`` may not be the draft's part ``name``; empty when it may.

    On top of :func:`~._parts.accept`: the subject must be about the goal (not just the
    recipient's name), the goal sentence must say the goal, the points sentence every key point,
    and neither may speak of the reader by name (the greeting does).
    """
    part = next(p for p in draft_parts(spec) if p.name == name)
    why = accept(text, part, grounding=grounding(spec), tone=spec.tone, policy=policy, taken=taken)
    return why or next(_draft_faults(name, text, spec), "")


def _draft_faults(name: str, text: str, spec: DraftSpec) -> Iterator[str]:
    reader = str(spec.recipient.get("name", "")).strip().lower()
    if name == SUBJECT:
        if not covers(text, f"{spec.goal} {' '.join(spec.points)}", 0.01):  # one word of them
            yield "make the subject about the goal"
        if reader and reader in text.lower():
            yield "leave the recipient's name out of the subject"
        return
    if reader and reader in text.lower():
        yield 'write to the reader as "you", not about them'
    if name == GOAL and not covers(text, second_person(spec.goal), _GOAL_COVERAGE):
        yield f"say the goal: {second_person(spec.goal)}"
    # "share our case study" must not become "share your case study".
    for thing in _OURS.findall(f"{spec.goal} {' '.join(spec.points)}"):
        if re.search(rf"(?<!\w)your {re.escape(thing)}(?!\w)", text, re.I):
            yield f'write "our {thing}", not "your {thing}"'

    if name == POINTS and not any(covers(text, p, _POINT_COVERAGE) for p in _points(spec)):
        yield "mention " + "; ".join(_points(spec))
    if name == CONTEXT and not any(
        len(content_words(text) & content_words(p.text)) >= _CONTEXT_WORDS for p in spec.passages
    ):
        yield "say back what the reader told us, in their own terms"
    # A small model copies its worked examples; their facts are not this message's.
    invented = content_words(text) - content_words(grounding(spec)) - _HEARD
    for _, answer in (*EXAMPLES, *REPLY_EXAMPLES):
        if len(invented) >= 2 and invented <= content_words(" ".join(answer.values())):
            yield "write about this message's goal and points, not the example's"


def with_uncovered_points(spec: DraftSpec, sentence: str) -> str:
    """The model's points sentence, followed by the key points it does not mention."""
    left = [_shortened(p, 150) for p in _points(spec) if not covers(sentence, p, _POINT_COVERAGE)]
    if not left:
        return sentence
    if spec.channel == _SMS:
        return f"{sentence} Also: {'; '.join(left)}."
    return sentence + "\n\nAlso worth knowing:\n" + "\n".join(f"- {point}" for point in left)


def template_parts(spec: DraftSpec) -> dict[str, str]:
    """The deterministic text of every part of ``spec``."""
    goal = second_person(spec.goal)
    first_word = goal.split(maxsplit=1)[0].lower() if goal else ""
    lead = "I'd like to" if first_word in _GOAL_VERBS else "I'm writing about"
    said = _shortened(goal, _TEMPLATE_GOAL_CHARS).removesuffix("...")
    parts = {GOAL: f"{lead} {said}." if goal else "I'd like to get in touch."}
    points = [_shortened(point, 150) for point in _points(spec)[:5]]
    if points:
        if spec.channel == _SMS:
            parts[POINTS] = "In short: " + "; ".join(points) + "."
        else:
            parts[POINTS] = "A few points that may be relevant:\n" + "\n".join(
                f"- {point}" for point in points
            )
    if spec.channel == _EMAIL:
        parts[SUBJECT] = _default_subject(spec, goal)
    return parts


def _default_subject(spec: DraftSpec, goal: str) -> str:
    company = str(spec.recipient.get("company", "")).strip()
    text = goal[:1].upper() + goal[1:]
    subject = f"{company}: {text}" if company else text
    return subject if len(subject) <= _MAX_SUBJECT else _shortened(subject, _MAX_SUBJECT - 3)


def compose(spec: DraftSpec, parts: Mapping[str, str], limit: int | None) -> JsonDoc:
    """The ``OutreachDraft`` document of ``spec`` with ``parts`` (the goal at least; the
    context sentence, when there is one, goes before it) in the channel's message, its body at
    most ``limit`` characters (the context is left out, then the points, then the goal sentence
    shortened, where it is longer)."""
    context = parts.get(CONTEXT, "")
    said = f"{context} {parts[GOAL]}" if context else parts[GOAL]
    body = _body(spec, said, parts.get(POINTS, ""))
    if limit is not None and len(body) > limit and context:
        body = _body(spec, parts[GOAL], parts.get(POINTS, ""))
    if limit is not None and len(body) > limit:
        body = _body(spec, parts[GOAL], "")
    if limit is not None and len(body) > limit:
        room = max(20, len(parts[GOAL]) - (len(body) - limit) - 3)
        body = _body(spec, _shortened(parts[GOAL], room), "")
    return {
        "subject": parts.get(SUBJECT, "") if spec.channel == _EMAIL else "",
        "body": body,
        "channel": spec.channel,
        "revisions": 0,
        "issues": [],
        "failed_checks": [],
    }


def _shortened(text: str, room: int) -> str:
    if len(text) <= room:
        return text
    return text[:room].rsplit(" ", 1)[0].rstrip(",;:") + "..."


def _body(spec: DraftSpec, goal: str, points: str) -> str:
    first = str(spec.recipient.get("name", "")).strip().split(" ", 1)[0]
    if spec.channel == _SMS:
        greeting = f"Hi {first}, {spec.sender} here." if first else f"Hi, {spec.sender} here."
        return " ".join(f"{greeting} {goal} {points} Could we talk this week?".split())
    company = str(spec.recipient.get("company", "")).strip()
    opening = f"I hope all is well at {company}. " if company else ""
    paragraphs = [f"Hello {first}," if first else "Hello,"]
    if spec.channel == _PHONE:
        paragraphs.append(f"This is {spec.sender}. {opening}{goal}")
    else:
        paragraphs.append(f"{opening}{goal}")
    if points:
        paragraphs.append(points)
    if spec.channel == _PHONE:
        paragraphs.append("Would you have a few minutes to talk about it now?")
    else:
        paragraphs.append("Would a short conversation this week work for you?")
        paragraphs.append(f"Best regards,\n{spec.sender}")
    return "\n\n".join(paragraphs)


def fallback_draft(spec: DraftSpec, limit: int | None) -> JsonDoc:
    """The draft of the template parts alone; it passes every check for any recipient and goal."""
    return compose(spec, template_parts(spec), limit)
