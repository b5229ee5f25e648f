"""The content agent's deterministic parts: draft parsing, validation and the fallback draft.

Validation checks, per draft: the length limits of its channel (and an e-mail's subject),
banned phrases (word-bounded, case-insensitive), unfilled placeholders (``{name}``,
``{{name}}``, ``[Name]``, ``<First Name>`` -- including the gateway's PII placeholders such as
``[EMAIL_1]``, which must never reach a customer) and tone heuristics (exclamation marks,
shouting, slang or emoji in a formal or professional message). Each issue is a sentence the
``content_revision`` prompt passes to the model as reviewer feedback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from ai_orchestration.workflows._types import JsonDoc

__all__ = [
    "ContentPolicy",
    "DraftSpec",
    "draft_text",
    "fallback_draft",
    "parse_draft",
    "validate_draft",
]

_DEFAULT_BANNED: Final[tuple[str, ...]] = (
    "act now",
    "as an ai",
    "buy now",
    "click here",
    "guaranteed",
    "limited time offer",
    "lorem ipsum",
    "risk-free",
    "100% free",
    "once in a lifetime",
)
_DEFAULT_LIMITS: Final[dict[str, int]] = {
    "CHANNEL_EMAIL": 1500,
    "CHANNEL_LINKEDIN": 1300,
    "CHANNEL_PHONE": 1500,
    "CHANNEL_SMS": 320,
}
_SLANG: Final[tuple[str, ...]] = ("gonna", "wanna", "lol", "hey guys", "btw", "omg")
_PLACEHOLDER = re.compile(
    r"\{\{[^{}\n]{1,40}\}\}"  # {{name}}
    r"|\{[A-Za-z_][A-Za-z0-9_ ]{0,39}\}"  # {name}
    r"|\[[A-Z][A-Za-z0-9_ ]{0,39}\]"  # [Name], [EMAIL_1]
    r"|<[A-Z][A-Za-z ]{0,39}>"  # <First Name>
)
_SHOUT = re.compile(r"\b[A-Z]{4,}\b")
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
_SUBJECT = re.compile(r"^\s*\**subject\**\s*:\s*(.*)$", re.IGNORECASE)
_STRICT_TONES: Final = frozenset({"formal", "professional"})


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """How drafts are written and checked."""

    model: str = "fast"
    """Logical model of the draft and revision calls."""
    max_revisions: int = 2
    """Revision calls after the first draft when validation finds issues."""
    max_tokens: int = 400
    """Most tokens of a draft or revision."""
    sender_name: str = "the account team"
    """Who signs the messages (a run label ``sender_name`` overrides it)."""
    brand_voice: str = "professional and warm"
    """Tone used when the caller leaves it unset."""
    brand_voices: Mapping[str, str] = field(default_factory=dict)
    """Tenant id -> that tenant's brand voice."""
    banned_phrases: tuple[str, ...] = _DEFAULT_BANNED
    """Phrases a draft must not contain (case-insensitive, whole words)."""
    max_chars: Mapping[str, int] = field(default_factory=lambda: dict(_DEFAULT_LIMITS))
    """Channel name -> longest body in characters."""
    min_body_chars: int = 20
    """Shortest acceptable body."""
    max_subject_chars: int = 120
    """Longest e-mail subject."""
    max_exclamations: int = 2
    """Most exclamation marks in a formal or professional message (twice that otherwise)."""

    def voice_for(self, tenant_id: str) -> str:
        """The tenant's brand voice."""
        return self.brand_voices.get(tenant_id, self.brand_voice)


@dataclass(frozen=True, slots=True)
class DraftSpec:
    """What the content agent is asked to write."""

    recipient: JsonDoc
    """A ``Recipient`` document (name, company, role, email)."""
    goal: str
    """What the message should achieve."""
    channel: str
    """A ``Channel`` name."""
    tone: str
    """Tone in words (``professional``, or the brand voice)."""
    context: str
    """Facts the message may use, one per line."""
    sender: str
    """Who signs."""


def parse_draft(text: str, spec: DraftSpec) -> JsonDoc:
    """An ``OutreachDraft`` document of a model's answer (``Subject: ...`` line, then the body).

    An e-mail answer without a subject line gets a deterministic one from the goal.
    """
    lines = text.strip().splitlines()
    subject = ""
    if lines and (match := _SUBJECT.match(lines[0])):
        subject = match.group(1).strip()
        lines = lines[1:]
    body = "\n".join(lines).strip()
    if spec.channel == "CHANNEL_EMAIL" and not subject:
        subject = _default_subject(spec)
    if spec.channel != "CHANNEL_EMAIL":
        subject = ""
    return {"subject": subject, "body": body, "channel": spec.channel, "revisions": 0, "issues": []}


def draft_text(draft: Mapping[str, object]) -> str:
    """The draft as the model writes it, for a revision prompt."""
    subject = str(draft.get("subject", ""))
    body = str(draft.get("body", ""))
    return f"Subject: {subject}\n\n{body}" if subject else body


def _default_subject(spec: DraftSpec) -> str:
    company = str(spec.recipient.get("company", "")).strip()
    goal = spec.goal.strip().rstrip(".")
    goal = goal[:1].upper() + goal[1:]
    subject = f"{company}: {goal}" if company else goal
    return subject[:100]


def validate_draft(draft: Mapping[str, object], tone: str, policy: ContentPolicy) -> list[str]:
    """The issues of ``draft``; empty when it may be sent."""
    body = str(draft.get("body", ""))
    subject = str(draft.get("subject", ""))
    channel = str(draft.get("channel", ""))
    issues: list[str] = []
    limit = policy.max_chars.get(channel)
    if limit is not None and len(body) > limit:
        issues.append(f"The body has {len(body)} characters; shorten it to at most {limit}.")
    if len(body.strip()) < policy.min_body_chars:
        issues.append("The body is missing or too short; write a complete message.")
    if channel == "CHANNEL_EMAIL":
        if not subject.strip():
            issues.append("Add a subject line.")
        elif len(subject) > policy.max_subject_chars:
            issues.append(f"Shorten the subject to at most {policy.max_subject_chars} characters.")
    text = f"{subject}\n{body}"
    lowered = text.lower()
    for phrase in policy.banned_phrases:
        if re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", lowered):
            issues.append(f'Remove the banned phrase "{phrase}".')
    placeholders = sorted(set(_PLACEHOLDER.findall(text)))
    if placeholders:
        issues.append(
            "Replace the unfilled placeholders "
            + ", ".join(placeholders)
            + " with real text or remove them."
        )
    issues.extend(_tone_issues(text, tone, policy))
    return issues


def _tone_issues(text: str, tone: str, policy: ContentPolicy) -> list[str]:
    strict = any(word in tone.lower() for word in _STRICT_TONES)
    issues: list[str] = []
    allowed = policy.max_exclamations if strict else policy.max_exclamations * 2
    if text.count("!") > allowed:
        issues.append(f"Use at most {allowed} exclamation marks.")
    if len(_SHOUT.findall(text)) > 1:
        issues.append("Do not write words in capitals (it reads as shouting).")
    if strict:
        lowered = text.lower()
        slang = [s for s in _SLANG if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", lowered)]
        if slang:
            issues.append(f"Avoid slang in a {tone} message: {', '.join(slang)}.")
        if _EMOJI.search(text):
            issues.append(f"Avoid emoji in a {tone} message.")
    return issues


def fallback_draft(spec: DraftSpec) -> JsonDoc:
    """A deterministic draft from the spec alone, for when no model answers; it passes
    validation for any recipient and goal within the channel limits."""
    name = str(spec.recipient.get("name", "")).strip()
    first = name.split()[0] if name else ""
    greeting = f"Hello {first}," if first else "Hello,"
    goal = spec.goal.strip().rstrip(".")
    points = [line.strip("- ").strip() for line in spec.context.splitlines() if line.strip()]
    if spec.channel == "CHANNEL_SMS":
        body = f"{greeting} {spec.sender} here. I'd like to {goal[:150]}. Could we talk this week?"
    else:
        parts = [greeting, "", f"I am reaching out to {goal}."]
        if points:
            parts += ["", "A few points that may be relevant:"]
            parts += [f"- {point[:200]}" for point in points[:3]]
        parts += ["", "Would a short conversation this week work for you?", "", "Best regards,"]
        parts.append(spec.sender)
        body = "\n".join(parts)
    limit = _DEFAULT_LIMITS.get(spec.channel, 1500)
    draft = parse_draft(body[:limit], spec)
    return draft
