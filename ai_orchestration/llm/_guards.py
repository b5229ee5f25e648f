"""Guards on text around LLM calls: PII redaction and prompt-injection detection.

**PII redaction** replaces e-mail addresses, phone numbers and payment card numbers with stable
placeholders (``[EMAIL_1]``, ``[PHONE_2]``, ``[CARD_1]``) before text leaves for an external
provider. The same value always gets the same placeholder within one redaction, so a model can
still tell two addresses apart, and :meth:`Redaction.restore` puts the values back into its
answer. Phone and card candidates are validated (digit counts, date shapes, Luhn, issuer digit)
because a false positive corrupts ordinary numbers in a prompt.

**Injection detection** scores caller-supplied text with weighted heuristics, one family per kind
of attack. The strongest rule of each family that fired counts, and families combine as
independent evidence (``1 - prod(1 - w)``), so two weak signals together flag what neither flags
alone. Phrase rules run on a normalised copy of the text (NFKC, invisible characters removed,
Cyrillic/Greek look-alikes mapped to Latin), which defeats cheap obfuscation; the obfuscation is a
signal itself. Weights keep single ambiguous phrases ("disregard the above", "you are now a ...",
a ``System:`` line) below the threshold: CRM text says such things innocently. An optional
caller-supplied classifier (e.g. an LLM call) adds its probability the same way.
"""

from __future__ import annotations

import asyncio
import binascii
import enum
import math
import re
import unicodedata
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from ai_orchestration import errors
from ai_orchestration.llm._types import ChatMessage

__all__ = [
    "DEFAULT_INJECTION_THRESHOLD",
    "InjectionClassifier",
    "InjectionGuard",
    "InjectionPolicy",
    "InjectionVerdict",
    "MessagesRedaction",
    "PromptInjectionError",
    "Redaction",
    "check_input",
    "detect_injection",
    "redact_messages",
    "redact_pii",
]

# --------------------------------------------------------------------------------------------
# PII redaction
# --------------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
# 13-19 digits, single spaces or dashes between them; validated by _is_card.
_CARD = re.compile(r"(?<![\w+.,-])\d(?:[ -]?\d){12,18}(?![\w-]|[.,]\d)")
_PHONE_PATTERNS: Final[tuple[re.Pattern[str], ...]] = (
    # International: +CC then groups, optionally a (0) or (area) group.
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}(?![\w-]|[.,]\d)"),
    # North American: (415) 555-0132, 415-555-0132, 415.555.0132.
    re.compile(r"(?<![\w./-])(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w/-]|[.,]\d)"),
    # National trunk prefix 0 and groups of 3+ digits: 020 7946 0958, 07700 900123, 0171/1234567
    # (ids such as 0045-2231-77 end in a short group).
    re.compile(r"(?<![\w./-])0\d{1,4}(?:[ /-]\d{3,8}){1,3}(?![\w/-]|[.,]\d)"),
    # French pairs: 01 23 45 67 89, 01.23.45.67.89.
    re.compile(r"(?<![\w./-])0\d(?:([ .])\d{2})(?:\1\d{2}){3}(?![\w/-]|[.,]\d)"),
)
# An unseparated run counts as a phone number only right after a phone word.
_CUED_PHONE = re.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|fax|whatsapp|call me|text me|reach me)\b"
    r"[^\d\n]{0,12}(\+?\d{9,15})(?!\w)"
)
_DATE_SHAPE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")


@dataclass(frozen=True, slots=True)
class Redaction:
    """Text with its PII replaced by placeholders."""

    text: str
    """The redacted text."""
    counts: Mapping[str, int]
    """Occurrences replaced per kind (``EMAIL``, ``PHONE``, ``CARD``); kinds not found are 0."""
    replacements: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Placeholder -> original value (kept out of ``repr`` so it never reaches a log)."""

    @property
    def total(self) -> int:
        """Occurrences replaced, all kinds together."""
        return sum(self.counts.values())

    def restore(self, text: str) -> str:
        """Put the original values back where ``text`` (e.g. a model's answer) uses placeholders."""
        for placeholder, value in self.replacements.items():
            text = text.replace(placeholder, value)
        return text


@dataclass(frozen=True, slots=True)
class MessagesRedaction:
    """Chat messages with their PII replaced; placeholders are shared across the messages."""

    messages: tuple[ChatMessage, ...]
    """The redacted messages, same roles and order."""
    counts: Mapping[str, int]
    """Occurrences replaced per kind over all messages."""
    replacements: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Placeholder -> original value."""

    def restore(self, text: str) -> str:
        """Put the original values back where ``text`` uses placeholders."""
        return Redaction(text="", counts=self.counts, replacements=self.replacements).restore(text)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_card(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    # Issuers use leading 2-6 (Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover/UnionPay 6);
    # all-equal digits pass Luhn but are filler, not cards.
    return (
        13 <= len(digits) <= 19
        and digits[0] in "23456"
        and len(set(digits)) > 1
        and _luhn_ok(digits)
    )


def _is_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    if not 8 <= len(digits) <= 15:
        return False
    return candidate.startswith("+") or _DATE_SHAPE.fullmatch(candidate) is None


class _Placeholders:
    """Assigns ``[KIND_n]`` per distinct value, shared across the texts of one redaction."""

    def __init__(self) -> None:
        self.by_value: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {"EMAIL": 0, "PHONE": 0, "CARD": 0}
        self.originals: dict[str, str] = {}
        self._next: dict[str, int] = {"EMAIL": 0, "PHONE": 0, "CARD": 0}

    def placeholder(self, kind: str, key: str, original: str) -> str:
        self.counts[kind] += 1
        if (kind, key) not in self.by_value:
            self._next[kind] += 1
            self.by_value[kind, key] = f"[{kind}_{self._next[kind]}]"
            self.originals[self.by_value[kind, key]] = original
        return self.by_value[kind, key]

    def redact(self, text: str) -> str:
        spans: list[tuple[int, int, str, str]] = []  # start, end, kind, key

        def claim(start: int, end: int, kind: str, key: str) -> None:
            # Earlier kinds win overlaps: a spaced card number also has a phone number's shape.
            if all(end <= s or start >= e for s, e, _, _ in spans):
                spans.append((start, end, kind, key))

        for match in _CARD.finditer(text):
            if _is_card(match.group(0)):
                claim(*match.span(), "CARD", re.sub(r"\D", "", match.group(0)))
        for match in _EMAIL.finditer(text):
            claim(*match.span(), "EMAIL", match.group(0).lower())
        for pattern in _PHONE_PATTERNS:
            for match in pattern.finditer(text):
                if _is_phone(match.group(0)):
                    claim(*match.span(), "PHONE", re.sub(r"[^\d+]", "", match.group(0)))
        for match in _CUED_PHONE.finditer(text):
            claim(*match.span(1), "PHONE", match.group(1))
        # Numbered in reading order, so the first address in the text is [EMAIL_1].
        pieces: list[str] = []
        position = 0
        for start, end, kind, key in sorted(spans):
            pieces += [text[position:start], self.placeholder(kind, key, text[start:end])]
            position = end
        return "".join([*pieces, text[position:]])


def redact_pii(text: str) -> Redaction:
    """Replace e-mail addresses, phone numbers and card numbers in ``text``."""
    placeholders = _Placeholders()
    redacted = placeholders.redact(text)
    return Redaction(text=redacted, counts=placeholders.counts, replacements=placeholders.originals)


def redact_messages(messages: Sequence[ChatMessage]) -> MessagesRedaction:
    """Redact every message; one value gets one placeholder in all of them."""
    placeholders = _Placeholders()
    redacted = tuple(
        ChatMessage(role=message.role, content=placeholders.redact(message.content))
        for message in messages
    )
    return MessagesRedaction(
        messages=redacted, counts=placeholders.counts, replacements=placeholders.originals
    )


# --------------------------------------------------------------------------------------------
# Prompt-injection detection
# --------------------------------------------------------------------------------------------

DEFAULT_INJECTION_THRESHOLD: Final[float] = 0.6
"""Combined score at or above which text is flagged."""


@dataclass(frozen=True, slots=True)
class _Rule:
    family: str
    weight: float
    pattern: re.Pattern[str]


def _rule(family: str, weight: float, pattern: str) -> _Rule:
    return _Rule(family, weight, re.compile(pattern, re.IGNORECASE | re.MULTILINE))


_TARGETS = r"(?:instructions?|prompts?|rules|directives?|guidelines|guardrails|restrictions)"
_EARLIER = r"(?:previous|prior|above|preceding|earlier|former|foregoing|original|initial|system)"
_OVERRIDE = r"\b(?:ignore|disregard|forget|override|bypass)\b"
_VERB = r"(?:tell|say|print|output|write|reveal|respond|reply|answer|act|pretend|give|list|show)"
_AI_NOUN = r"(?:ai|assistant|chatbot|bot|language model|llm|model|character|persona)"

# Rules run on the normalised text (see _normalise). Weights are per family; the strongest hit
# of a family counts. "my previous instructions" is a customer correcting themselves, so the
# override rules need a determiner aimed at the model ("all", "any", "your", "the above").
_PHRASE_RULES: Final[tuple[_Rule, ...]] = (
    _rule(
        "instruction_override",
        0.9,
        rf"{_OVERRIDE} (?:all|any|every) (?:of )?(?:the |your |these |those )?"
        rf"(?:{_EARLIER} )?{_TARGETS}",
    ),
    _rule("instruction_override", 0.75, rf"{_OVERRIDE} your (?:{_EARLIER} )?{_TARGETS}"),
    _rule("instruction_override", 0.5, rf"{_OVERRIDE} the {_EARLIER} {_TARGETS}"),
    _rule(
        "instruction_override",
        0.8,
        rf"{_OVERRIDE} (?:everything |all )?(?:the |that was said )?above\b"
        rf"[ ,.;:-]*(?:and )?(?:instead |now |then )?{_VERB}",
    ),
    _rule("instruction_override", 0.4, rf"{_OVERRIDE} (?:everything |all )?(?:the )?above\b"),
    _rule(
        "instruction_override",
        0.75,
        rf"\bdo not (?:follow|obey) (?:your|the|any) (?:{_EARLIER} )?{_TARGETS}",
    ),
    _rule("instruction_override", 0.65, r"^[ #*>-]*new (?:system )?instructions? ?:"),
    _rule("instruction_override", 0.45, r"\bnew (?:system )?instructions? ?:"),
    _rule("instruction_override", 0.4, r"\b(?:from now on|henceforth),? you (?:will|are|must)\b"),
    _rule(
        "persona_override",
        0.75,
        r"\byou are now (?:no longer\b|free\b|unrestricted|unfiltered|jailbroken|dan\b"
        rf"|in (?:developer|god|dan) mode|an? (?:\w+ )?{_AI_NOUN}\b)",
    ),
    _rule("persona_override", 0.3, r"\byou are now (?:a|an|the|my)\b"),
    _rule(
        "persona_override",
        0.75,
        r"\b(?:act as|pretend (?:to be|you are)|roleplay as) (?:an? )?"
        r"(?:unrestricted|unfiltered|uncensored|jailbroken|evil|dan\b)",
    ),
    _rule("persona_override", 0.55, r"\b(?:developer mode|dan mode|jailbreak|do anything now)"),
    _rule(
        "prompt_exfiltration",
        0.8,
        r"\b(?:reveal|print|show|display|output|repeat|leak|dump|tell me|give me"
        r"|what (?:is|are|was|were)) (?:me )?(?:your|the) "
        r"(?:full |entire |original |hidden |initial |exact |secret )*"
        r"(?:system (?:prompt|message|instructions)|(?:hidden|initial|original|secret) "
        r"(?:prompt|instructions)|instructions you (?:were|have been) given)",
    ),
    _rule("prompt_exfiltration", 0.7, r"\brepeat (?:everything|all|the (?:text|words)) above\b"),
    _rule(
        "role_markup",
        0.9,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id"
        r"|end_header_id|begin_of_text)\|>",
    ),
    _rule("role_markup", 0.85, r"\[/?inst\]|<</?sys>>"),
    _rule(
        "role_markup",
        0.65,
        r"^[ \t]*#{1,6}[ \t]*(?:system|instructions?|assistant)(?: prompt| message)?[ \t]*:?$",
    ),
    _rule("role_markup", 0.6, r"<[ \t]*/?[ \t]*(?:system|assistant|instructions?)[ \t]*>"),
    _rule(
        "fake_role_line",
        0.7,
        r"^[ \t]*(?:system|assistant|developer)[ \t]*:[ \t]*(?:you\b|ignore|disregard|from now"
        r"|always|never|respond|reply|answer|reveal|new instructions|the assistant|the user)",
    ),
    _rule("fake_role_line", 0.35, r"^[ \t]*(?:system|assistant|developer)[ \t]*:"),
)

# Invisible characters: stripped before the phrase rules run. Only the ones with no business in
# ordinary text count as a signal (ZWNJ and LRM/RLM are normal in Persian, Hindi, Hebrew, Arabic).
_STRIPPED: Final[frozenset[str]] = frozenset(
    "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad"
)
_ZERO_WIDTH: Final[frozenset[str]] = frozenset("\u200b\u2060\u2061\u2062\u2063\u2064\ufeff\u180e")
_BIDI: Final[frozenset[str]] = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Cyrillic and Greek letters that render like Latin ones (a small, cheap subset of Unicode's
# confusables table: the letters an attacker needs for English words).
_CONFUSABLES: Final[dict[int, int]] = str.maketrans(
    "аеорсухіјѕԁԛԝһкмтвпАЕОРСУХІЈЅКМТВНαεικνορτυχΑΒΕΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdqwhkmtbnAEOPCYXIJSKMTBHaeikvoptuxABEHIKMNOPTYX",
)
_MIXED_SCRIPT_WORD = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*[\u0370-\u03ff\u0400-\u04ff])\w+\b")
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/]{48,}={0,2}")
_HEX_BLOB = re.compile(r"\b(?:0x)?[0-9a-fA-F]{48,}\b")


@dataclass(frozen=True, slots=True)
class InjectionVerdict:
    """How much a text looks like a prompt-injection attempt."""

    score: float
    """Combined evidence, 0 (none) to 1."""
    flagged: bool
    """Whether ``score`` reached the threshold."""
    reasons: tuple[str, ...]
    """Families that fired (``instruction_override``, ``role_markup``, ..., ``classifier``)."""


def _is_emoji_joiner(text: str, index: int) -> bool:
    # ZWJ inside emoji sequences (family, flags, skin tones) is ordinary text.
    before = text[index - 1] if index > 0 else ""
    after = text[index + 1] if index + 1 < len(text) else ""
    return text[index] == "\u200d" and (before >= "\u2600" or after >= "\u2600")


def _invisible_signals(text: str) -> dict[str, float]:
    if any("\U000e0000" <= char <= "\U000e007f" for char in text):
        return {"invisible_characters": 0.9}  # Unicode tag characters smuggle hidden ASCII
    if any(char in _BIDI for char in text):
        return {"invisible_characters": 0.6}  # direction overrides reorder what a reader sees
    hidden = sum(char in _ZERO_WIDTH for char in text.lstrip("\ufeff")) + sum(
        char == "\u200d" and not _is_emoji_joiner(text, i) for i, char in enumerate(text)
    )
    # One stray zero-width space comes with text pasted from the web; several split words.
    if hidden >= 3:
        return {"invisible_characters": 0.6}
    return {"invisible_characters": 0.35} if hidden else {}


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(
        char
        for char in text
        if char not in _STRIPPED and char not in _BIDI and not "\U000e0000" <= char <= "\U000e007f"
    )
    text = text.translate(_CONFUSABLES)
    return re.sub(r"[ \t]+", " ", text)


def _decoded_blob(blob: str, *, hexadecimal: bool) -> str | None:
    try:
        raw = (
            binascii.unhexlify(blob.removeprefix("0x"))
            if hexadecimal
            else binascii.a2b_base64(blob + "=" * (-len(blob) % 4))
        )
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(char.isprintable() or char.isspace() for char in decoded)
    return decoded if decoded and printable / len(decoded) > 0.95 else None


def _phrase_scores(normalised: str) -> dict[str, float]:
    scores: dict[str, float] = {}
    for rule in _PHRASE_RULES:
        if rule.weight > scores.get(rule.family, 0.0) and rule.pattern.search(normalised):
            scores[rule.family] = rule.weight
    return scores


def _blob_signals(text: str) -> dict[str, float]:
    weight = 0.0
    for pattern, hexadecimal in ((_HEX_BLOB, True), (_BASE64_BLOB, False)):
        for match in pattern.finditer(text):
            if not hexadecimal and _HEX_BLOB.fullmatch(match.group(0)):
                continue  # already judged as hex
            decoded = _decoded_blob(match.group(0), hexadecimal=hexadecimal)
            # Hidden readable text is suspicious; hidden instructions are an attack.
            if decoded is not None and _phrase_scores(_normalise(decoded)):
                weight = max(weight, 0.9)
            elif decoded is not None:
                weight = max(weight, 0.55)
            else:
                weight = max(weight, 0.3)
    return {"encoded_blob": weight} if weight else {}


def _combine(weights: Sequence[float]) -> float:
    return 1.0 - math.prod(1.0 - w for w in weights)


def detect_injection(
    text: str, *, threshold: float = DEFAULT_INJECTION_THRESHOLD
) -> InjectionVerdict:
    """Score ``text`` with the heuristics alone (synchronous, no I/O)."""
    normalised = _normalise(text)
    signals = _phrase_scores(normalised)
    lookalikes = unicodedata.normalize("NFKC", text).translate(_CONFUSABLES) != text
    if lookalikes and signals and not _phrase_scores(re.sub(r"[ \t]+", " ", text)):
        signals["homoglyphs"] = 0.5  # the phrases only appear once look-alikes are undone
    elif _MIXED_SCRIPT_WORD.search(text):
        signals["homoglyphs"] = 0.3
    signals |= _invisible_signals(text)
    signals |= _blob_signals(text)
    score = round(_combine(list(signals.values())), 4)
    return InjectionVerdict(score=score, flagged=score >= threshold, reasons=tuple(sorted(signals)))


InjectionClassifier = Callable[[str], Awaitable[float]]
"""A caller-supplied model: text -> probability (0..1) that it is an injection attempt."""


class InjectionPolicy(enum.StrEnum):
    """What happens to flagged input."""

    FLAG = "flag"
    """Let the call run; the verdict is returned for logging and metrics."""
    BLOCK = "block"
    """Refuse the call with :class:`PromptInjectionError`."""


class PromptInjectionError(errors.InvalidArgumentError):
    """Caller-supplied text looks like a prompt-injection attempt and the tenant blocks those."""

    default_reason = "PROMPT_INJECTION_BLOCKED"


async def _classifier_score(
    classifier: InjectionClassifier, text: str, timeout_seconds: float
) -> float | None:
    try:
        async with asyncio.timeout(timeout_seconds):
            probability = float(await classifier(text))
    except (TimeoutError, errors.OrchestrationError):
        # The classifier is a second opinion (often an LLM call); when it is unavailable the
        # heuristics still decide rather than failing the caller's request.
        return None
    if math.isnan(probability):
        return None
    return min(1.0, max(0.0, probability))


async def check_input(
    text: str,
    *,
    field: str,
    policy: InjectionPolicy = InjectionPolicy.FLAG,
    classifier: InjectionClassifier | None = None,
    threshold: float = DEFAULT_INJECTION_THRESHOLD,
    classifier_timeout_seconds: float = 10.0,
) -> InjectionVerdict:
    """Score caller-supplied ``text``; under ``BLOCK`` raise if it is flagged.

    ``field`` is the request field path the text came from (e.g. ``input.question``); it names
    the violation of the :class:`PromptInjectionError`. The classifier, when given, is only
    consulted if the heuristics alone do not flag the text (it cannot lower a score), and a
    classifier that times out or raises an :class:`~ai_orchestration.errors.OrchestrationError`
    is left out and noted as ``classifier_unavailable``.
    """
    verdict = detect_injection(text, threshold=threshold)
    if classifier is not None and not verdict.flagged:
        probability = await _classifier_score(classifier, text, classifier_timeout_seconds)
        if probability is None:
            reasons = (*verdict.reasons, "classifier_unavailable")
            verdict = InjectionVerdict(score=verdict.score, flagged=False, reasons=reasons)
        else:
            score = round(_combine([verdict.score, probability]), 4)
            reasons = verdict.reasons + (("classifier",) if probability >= 0.5 else ())
            verdict = InjectionVerdict(score=score, flagged=score >= threshold, reasons=reasons)
    if verdict.flagged and policy is InjectionPolicy.BLOCK:
        raise PromptInjectionError(
            "The request was refused: its text looks like a prompt-injection attempt.",
            [
                errors.FieldViolation(
                    field=field,
                    description=(
                        "looks like an attempt to override the assistant's instructions ("
                        + ", ".join(verdict.reasons)
                        + "); remove that text and retry"
                    ),
                    rule="prompt_injection",
                )
            ],
        )
    return verdict


@dataclass(frozen=True, slots=True)
class InjectionGuard:
    """Per-tenant injection policy with a shared classifier and threshold."""

    default_policy: InjectionPolicy = InjectionPolicy.FLAG
    """Policy of tenants without an entry in ``policies``."""
    policies: Mapping[str, InjectionPolicy] = field(default_factory=dict)
    """Tenant id -> policy."""
    classifier: InjectionClassifier | None = None
    """Optional second opinion combined with the heuristics."""
    threshold: float = DEFAULT_INJECTION_THRESHOLD
    """Score at or above which text is flagged."""

    def policy_for(self, tenant_id: str) -> InjectionPolicy:
        """The policy that applies to ``tenant_id``."""
        return self.policies.get(tenant_id, self.default_policy)

    async def check(self, tenant_id: str, text: str, *, field: str) -> InjectionVerdict:
        """:func:`check_input` under the tenant's policy."""
        return await check_input(
            text,
            field=field,
            policy=self.policy_for(tenant_id),
            classifier=self.classifier,
            threshold=self.threshold,
        )
