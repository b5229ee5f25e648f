"""The insight domain's own vocabulary: interactions, sentiment, signals and chunks.

These records belong to the domain, not to storage or the wire: the storage layer and the gRPC
servicer import them and convert their own rows and messages, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, TypeAlias

# The same shape as ``ai_orchestration.storage.JsonValue``; declared here so that the domain does
# not import the storage package (and SQLAlchemy with it).
JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None

SIGNALS_VERSION: Final[int] = 1
"""Version of the rules that computed a stored :class:`Signals` document.

Bumped when a lexicon entry or a rule changes what a text yields, so that stored signals can be
recomputed (or at least told apart) after an upgrade.
"""


class InteractionKind(StrEnum):
    """The channel an interaction came through."""

    EMAIL = "email"
    CALL = "call"
    TICKET = "ticket"
    CHAT = "chat"
    NOTE = "note"
    MEETING = "meeting"


class Direction(StrEnum):
    """Who spoke first: the customer (inbound), us (outbound) or our own team (internal)."""

    UNKNOWN = "unknown"
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class SentimentLabel(StrEnum):
    """Five levels, as the score's bands in :mod:`._sentiment` define them."""

    VERY_NEGATIVE = "very_negative"
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"
    VERY_POSITIVE = "very_positive"


class MentionKind(StrEnum):
    """What a :class:`Mention` is evidence of."""

    COMPETITOR = "competitor"
    PRICING = "pricing"
    CHURN = "churn"
    ESCALATION = "escalation"
    LEGAL = "legal"
    EXPANSION = "expansion"
    """More seats or licences, a new team or region, growth: an opportunity to sell more."""
    UPSELL = "upsell"
    """Interest in a higher plan or tier, an add-on, premium or enterprise features."""
    REFERRAL = "referral"
    """An introduction or referral to someone else, an offer to be a reference or case study."""


@dataclass(frozen=True, slots=True)
class Interaction:
    """One e-mail, call transcript, ticket, chat, note or meeting record of a customer."""

    interaction_id: str
    """The caller's id; ingest is idempotent on it."""
    customer_id: str
    """The CRM customer (account) the interaction belongs to."""
    kind: InteractionKind
    """The channel."""
    direction: Direction
    """Inbound, outbound or internal."""
    occur_time: datetime
    """When it happened (timezone-aware)."""
    subject: str
    """Subject line or title; may be empty (calls, chats)."""
    body: str
    """The text: e-mail body, transcript, ticket description."""
    participants: tuple[str, ...] = ()
    """Addresses or names of the people involved, as the CRM sent them."""

    def __post_init__(self) -> None:
        # A naive time would be read in whatever zone the replica runs in; refuse it early.
        if self.occur_time.utcoffset() is None:
            raise ValueError("occur_time must be timezone-aware")

    @property
    def text(self) -> str:
        """The one string signals and chunks are computed on: ``subject + "\\n\\n" + body``.

        Every offset the domain hands out (:attr:`Mention.start`, :attr:`Chunk.start`) indexes
        this string, so a citation can quote the subject as well as the body. Without a subject
        it is the body alone. The blank line keeps the subject its own sentence.
        """
        if not self.subject:
            return self.body
        return f"{self.subject}\n\n{self.body}"


@dataclass(frozen=True, slots=True)
class Sentiment:
    """The tone of a text."""

    score: float
    """From -1 (most negative) to 1 (most positive)."""
    label: SentimentLabel
    """The score's band."""
    confidence: float
    """From 0 to 1: low for short texts and for scores near a band's edge."""


@dataclass(frozen=True, slots=True)
class Mention:
    """A span of text that raised a signal."""

    kind: MentionKind
    """Which signal it raised."""
    term: str
    """Canonical name of what matched: a competitor's configured name (not the alias that
    matched), or the rule's term such as ``discount`` or ``not renewing``."""
    start: int
    """Offset of the span's first character in the text."""
    end: int
    """Offset just past the span's last character."""


@dataclass(frozen=True, slots=True)
class Competitor:
    """A competitor as one tenant configures it."""

    name: str
    """The canonical name reported in signals and alerts."""
    aliases: tuple[str, ...] = ()
    """Other spellings that mean the same competitor (products, abbreviations)."""


@dataclass(frozen=True, slots=True)
class Signals:
    """What ingest computes for one interaction, deterministically and without an LLM."""

    sentiment: Sentiment
    """Tone of subject and body."""
    competitors: tuple[str, ...]
    """Canonical names of the competitors mentioned, in order of first mention."""
    pricing: bool
    """Prices, quotes, discounts, budgets, invoices or amounts were discussed."""
    churn_intent: bool
    """The customer spoke of cancelling, not renewing or switching (not negated)."""
    escalation: bool
    """Escalation language: a manager asked for, repeated contacts, "unacceptable"."""
    legal_threat: bool
    """Lawyers, legal action, breach of contract, a regulator complaint."""
    mentions: tuple[Mention, ...]
    """Every span behind the flags above and the opportunity mentions (expansion, upsell,
    referral), ordered by position."""

    def has(self, kind: MentionKind) -> bool:
        """Whether any mention is of ``kind``.

        Expansion, upsell and referral have no flag of their own (a flag would change the stored
        JSON shape), so rules ask this instead; it answers for the flagged kinds too.
        """
        return any(mention.kind is kind for mention in self.mentions)

    def mentions_of(self, kind: MentionKind) -> tuple[Mention, ...]:
        """The mentions of ``kind``, in order: the spans an insight about ``kind`` cites."""
        return tuple(mention for mention in self.mentions if mention.kind is kind)

    def to_json(self) -> dict[str, JsonValue]:
        """A plain JSON document for storage."""
        return {
            "version": SIGNALS_VERSION,
            "sentiment": {
                "score": self.sentiment.score,
                "label": self.sentiment.label.value,
                "confidence": self.sentiment.confidence,
            },
            "competitors": list(self.competitors),
            "pricing": self.pricing,
            "churn_intent": self.churn_intent,
            "escalation": self.escalation,
            "legal_threat": self.legal_threat,
            "mentions": [[m.kind.value, m.term, m.start, m.end] for m in self.mentions],
        }

    @classmethod
    def from_json(cls, document: Mapping[str, JsonValue]) -> Signals:
        """Reads :meth:`to_json` output.

        Raises ``ValueError`` on a document this version cannot read: stored signals are our
        own output, so a malformed one is a bug to surface, not an input to guess around.
        """
        version = document.get("version")
        if version != SIGNALS_VERSION:
            raise ValueError(f"unsupported signals document version {version!r}")
        sentiment = document.get("sentiment")
        competitors = document.get("competitors")
        mentions = document.get("mentions")
        if (
            not isinstance(sentiment, dict)
            or not isinstance(competitors, list)
            or not isinstance(mentions, list)
        ):
            raise ValueError("malformed signals document")
        return cls(
            sentiment=Sentiment(
                score=_number(sentiment.get("score")),
                label=SentimentLabel(_text(sentiment.get("label"))),
                confidence=_number(sentiment.get("confidence")),
            ),
            competitors=tuple(_text(name) for name in competitors),
            pricing=_flag(document.get("pricing")),
            churn_intent=_flag(document.get("churn_intent")),
            escalation=_flag(document.get("escalation")),
            legal_threat=_flag(document.get("legal_threat")),
            mentions=tuple(_mention(item) for item in mentions),
        )


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a text for retrieval and citation; ``text == source[start:end]``."""

    index: int
    """Position among the text's chunks, from 0."""
    start: int
    """Offset of the first character in the source text."""
    end: int
    """Offset just past the last character."""
    text: str
    """The passage itself."""


def _number(value: JsonValue) -> float:
    # bool is an int subclass; a stored flag is never a valid score.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _integer(value: JsonValue) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _text(value: JsonValue) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _flag(value: JsonValue) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected a boolean, got {value!r}")
    return value


def _mention(item: JsonValue) -> Mention:
    # Stored as a 4-item array: signals of a long e-mail can hold many mentions.
    if not isinstance(item, list) or len(item) != 4:
        raise ValueError(f"malformed mention {item!r}")
    kind, term, start, end = item
    return Mention(MentionKind(_text(kind)), _text(term), _integer(start), _integer(end))
