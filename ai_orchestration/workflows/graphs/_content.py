"""What the content agent writes and how drafts are checked: :class:`ContentPolicy` (the server's
and each tenant's settings of drafting) and :class:`DraftSpec` (one draft to write). How a
draft is composed is in :mod:`._compose`, how it is checked in :mod:`._checks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from ai_orchestration.insights import Passage
from ai_orchestration.workflows._types import JsonDoc

__all__ = ["ContentPolicy", "DraftSpec"]

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


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """How drafts are written and checked."""

    model: str = "fast"
    """Logical model of the draft and revision calls."""
    max_revisions: int = 2
    """Calls after the first one that ask again for the parts of a draft the model got wrong."""
    max_tokens: int = 200
    """Most tokens of one answer (the parts of a draft, as JSON); a call asking for shorter
    parts (an SMS, a revision of one part) gets fewer (:func:`~._parts.token_budget`)."""
    temperature: float = 0.0
    """Sampling temperature of the first call (0: the most likely text, repeatable)."""
    revision_temperature: float = 0.3
    """Sampling temperature of the calls that ask again (the same prompt needs another answer)."""
    frequency_penalty: float = 0.3
    """Penalty on tokens an answer already used, against the small model's loops."""
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
    points: tuple[str, ...]
    """Key points the message should cover (may be empty)."""
    sender: str
    """Who signs."""
    passages: tuple[Passage, ...] = ()
    """What the reader told us, quoted from their interactions: the model sees them fenced as
    data, the draft acknowledges them (its ``context`` part) and may say nothing they and the
    facts above do not. Empty for a message that answers nothing."""
