"""Deterministic checks of outreach drafts and lead analyses.

A model's text can fail in ways a reader sees at once and the model often does not: the prompt's
scaffolding echoed back, a placeholder left unfilled, a paragraph looping, a text cut off by the
token limit, a greeting to the wrong person, a date the model made up. Each check finds one kind
of fault and says in one sentence how to fix it; that sentence is shown to reviewers and fed back
to the model as revision feedback, so it is written as an instruction.

Message checks run on every draft, a person's edit included. Grounding checks (the recipient
addressed, the company mentioned, no invented facts) run only on a model's draft, against the
facts the model was given, because a person may know more than the CRM does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from ai_orchestration.workflows.graphs._content import ContentPolicy

__all__ = ["CHECKS", "DraftIssue", "check_analysis", "check_draft", "normalized", "sentences"]

CHECKS: Final[tuple[str, ...]] = (
    "length", "subject", "placeholder", "scaffolding", "repetition", "truncated", "recipient",
    "banned_phrase", "tone", "invented_fact",
)  # fmt: skip
"""The ids of the checks, in the order their issues are listed."""


@dataclass(frozen=True, slots=True)
class DraftIssue:
    """One fault of a draft or an analysis."""

    check: str
    """Stable id of the check that found it, one of ``CHECKS``."""
    message: str
    """What is wrong and how to fix it, as one instruction (for reviewers and for the model)."""

    def to_json(self) -> dict[str, str]:
        """The issue as a JSON object: ``{"check": ..., "message": ...}``."""
        return {"check": self.check, "message": self.message}


# Each pattern starts with a literal character and checks the word boundary after it, so the
# regex engine can skip ahead to candidates; case-insensitive checks run on the lowercased text
# for the same reason. Every draft passes through all checks, at times in a revision loop.
_WORD = re.compile(r"[^\W_]+")
# A closing quote or bracket may follow the punctuation that ends a sentence.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'\u201d\u2019)]?(?=\s)")
_PLACEHOLDER = re.compile(
    r"\{\{(?=[^{}\n]*[^\W\d_])[^{}\n]{1,60}\}\}"  # {{name}}
    r"|\{(?=[^{}\n]*[^\W\d_])[^{}\n]{1,60}\}"  # {link}
    r"|\[(?=[^\[\]\n]*[^\W\d_])[^\[\]\n]{1,60}\](?!\()"  # [Company Name], not a markdown link
    # <First Name>, <<name>>; a space inside the brackets reads as "less than", not a slot
    r"|<(?<!<<)<?(?![<\s])(?=[^<>\n]*[^\W\d_])[^<>\n]{1,60}(?<!\s)>>?(?!>)"
    r"|X(?<!\wX)XX+(?!\w)|x(?<!\wx)xx+(?!\w)|___+|T(?<!\wT)BD(?!\w)"
)
_LINK = re.compile(r"(?:https?://|www\.|mailto:)\S+|[^@\s]+@[^@\s]+\.\w+")
_SCAFFOLD_LINE = re.compile(
    r"[ \t*#]*(draft|subject|body|revised text|system|user|assistant)[ \t*]*:"
)
_SCAFFOLD_ANY = re.compile(
    r"<<<|>>>|```|reviewer feedback|return only the revised text|as an ai\b"
    r"|as a language model|here(?: is|['\u2019]s) (?:the revised|a draft)"
)
_END_OK: Final = tuple(".!?…)\"'\u201d\u2019")
# Endings that are complete without a full stop: an emoji, a link, an SMS sign-off ("- Sam").
_EMOJI_END = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf][\ufe0f\U0001f3fb-\U0001f3ff]*$")
_LINK_END = re.compile(r"https?://\S+$")
_DASH_SIGNOFF = re.compile(r"(?:^|[.!?…)]\s+)[-\u2013\u2014~]\s*[^\W\d_][\w .'\u2019-]{0,38}$")
_NAME_LINE = re.compile(r"[^\W\d_][\w.'\u2019-]*(?: [^\W\d_][\w.'\u2019-]*){0,3}")
_TITLES: Final = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof"})
_GREETING = re.compile(
    r"[ \t]*(?:dear|hi|hello|hey|good[ \t]+(?:morning|afternoon|evening))[ \t]+"
    r"(?:(?:mr|mrs|ms|miss|dr|prof)\.?[ \t]+)?([^\W\d_][\w'\u2019-]*)",
    re.I,
)
_NOT_NAMES: Final = frozenset(
    {"there", "team", "all", "everyone", "everybody", "folks", "friend", "friends", "again",
     "guys", "sir", "madam", "colleague", "colleagues", "customer", "valued", "both", "hiring"}
)  # fmt: skip
_LEGAL_SUFFIX = re.compile(
    r"[\s,]+(?:inc|ltd|llc|gmbh|corp|corporation|co|plc|ag|sa|limited|bv)\.?$", re.I
)
_MONTHS: Final = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
)
_NUMBER = re.compile(
    r"\d(?<!\w\d)\d*(?:[.,:]\d+)*(?:%|(?:st|nd|rd|th|s|am|pm)(?!\w))?(?![\w%])", re.I
)
_DIGIT_GROUP = re.compile(r"\d+(?:[.,:]\d+)*")
_DATE_BEFORE = re.compile(rf"(?<!\w)({_MONTHS})[ \t]+$")
_DATE_AFTER = re.compile(rf"[ \t]*(?:[AaPp]\.?[Mm]\.?(?!\w)|(?:of[ \t]+)?({_MONTHS})(?!\w))")
# Capitalised only, to tell "March" from "march"; "May" counts only after a preposition or next
# to a number, so "May I ask" is no date.
_DAY_WORD = re.compile(
    rf"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|{_MONTHS})s?(?!\w)"
)
_MAY_CONTEXT: Final = frozenset(
    {"in", "by", "on", "of", "mid", "from", "until", "since", "before", "during", "early", "late",
     "next", "this"}
)  # fmt: skip
_SHOUT = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]{3,}\b")
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
_SLANG = re.compile(r"(?:gonna|wanna|lol|hey guys|btw|omg)\b")
_STRICT_TONES: Final = ("formal", "professional")


def sentences(text: str) -> list[str]:
    """The sentences of ``text``: each line split after ``.``, ``!``, ``?`` or ``…``, stripped,
    empty ones dropped. A line without such punctuation (a greeting, a list item) is one."""
    parts = []
    for line in text.splitlines():
        start = 0
        for match in _SENTENCE_END.finditer(line):
            parts.append(line[start : match.end()])
            start = match.end()
        parts.append(line[start:])
    return [part.strip() for part in parts if part.strip()]


def normalized(sentence: str) -> str:
    """``sentence`` lowercased, words only, single spaces: the form repetitions are compared in."""
    return " ".join(_WORD.findall(sentence.lower()))


def check_draft(
    draft: Mapping[str, object],
    *,
    tone: str,
    policy: ContentPolicy,
    recipient: Mapping[str, object] | None = None,
    grounding: str | None = None,
) -> list[DraftIssue]:
    """The issues of an ``OutreachDraft`` document (``subject``, ``body``, ``channel``), at most
    one per check, in the order of ``CHECKS``; empty when it may be sent.

    ``grounding`` is the text of every fact the model was given; pass it for a model's draft and
    leave it ``None`` for a person's edit, which may rightly say more than the CRM knows.
    """
    subject = str(draft.get("subject") or "")
    body = str(draft.get("body") or "")
    channel = str(draft.get("channel") or "")
    text = f"{subject}\n{body}"
    found = {
        "length": _length(body, policy.max_chars.get(channel), policy.min_body_chars, "message"),
        "subject": _subject(subject, channel, policy.max_subject_chars),
        "placeholder": _placeholders(text),
        "scaffolding": _scaffolding(subject, body, "message"),
        "repetition": _repetition(body),
        "truncated": _truncated(body),
        "recipient": _recipient(subject, body, channel, recipient, grounding),
        "banned_phrase": _banned(text, policy.banned_phrases),
        "tone": _tone(text, tone, policy.max_exclamations, _names(recipient, grounding)),
        "invented_fact": None if grounding is None else _invented(text, grounding),
    }
    return [DraftIssue(check, message) for check in CHECKS if (message := found.get(check))]


def check_analysis(text: str, *, min_chars: int = 40) -> list[DraftIssue]:
    """The issues of a lead analysis (prose shown to salespeople): too short (``length``),
    placeholders, scaffolding, repetition and a text cut off mid-sentence."""
    found = {
        "length": _length(text, None, min_chars, "analysis"),
        "placeholder": _placeholders(text),
        "scaffolding": _scaffolding("", text, "analysis"),
        "repetition": _repetition(text),
        "truncated": _truncated(text),
    }
    return [DraftIssue(check, message) for check in CHECKS if (message := found.get(check))]


def _length(body: str, limit: int | None, shortest: int, what: str) -> str | None:
    if limit is not None and len(body) > limit:
        return f"The body has {len(body)} characters; shorten it to at most {limit}."
    if len(body.strip()) >= shortest:
        return None
    if what == "message":
        return "The body is missing or too short; write a complete message."
    return "The analysis is missing or too short; write a few complete sentences."


def _subject(subject: str, channel: str, limit: int) -> str | None:
    problems = []
    if channel == "CHANNEL_EMAIL" and not subject.strip():
        problems.append("Add a subject line.")
    if len(subject) > limit:
        problems.append(f"Shorten the subject to at most {limit} characters.")
    if "\n" in subject.strip():
        problems.append("Write the subject on one line.")
    return " ".join(problems) or None


def _placeholders(text: str) -> str | None:
    slots: dict[str, None] = {}  # a dict keeps the order of appearance
    for match in _PLACEHOLDER.finditer(text):
        slot = match.group()
        if not _LINK.fullmatch(slot.strip("<>[]{}")):
            slots[slot] = None
    if not slots:
        return None
    return f"Replace the unfilled placeholders {', '.join(slots)} with real text or remove them."


def _scaffolding(subject: str, body: str, what: str) -> str | None:
    head = subject.lower()
    lowered = f"{head}\n{body.lower()}"
    hits = []
    for match in _SCAFFOLD_ANY.finditer(lowered):
        start, label = match.start(), match.group()
        if start and label[0].isalpha() and lowered[start - 1].isalnum():
            continue  # "as an ai" inside "has an ai team" is no role text
        hits.append((start, "As an AI" if label == "as an ai" else label.capitalize()))
    offset = len(head) + 1
    for line in lowered[offset:].splitlines(keepends=True):
        if prefix := _SCAFFOLD_LINE.match(line):
            hits.append((offset, f"{prefix.group(1).capitalize()}:"))
        offset += len(line)
    labels = dict.fromkeys(label for _, label in sorted(hits))
    if not labels:
        return None
    quoted = ", ".join(f'"{label}"' for label in labels)
    return f"Remove the prompt text {quoted}; write only the {what} itself."


def _repetition(body: str) -> str | None:
    seen: dict[str, str] = {}
    keys = []
    for sentence in sentences(body):
        key = normalized(sentence)
        keys.append(key)
        if key.count(" ") < 2:  # "Best regards" or "Thanks" may fairly come twice
            continue
        if key in seen:
            return _repeated(seen[key])
        seen[key] = sentence
    # A loop need not align with sentence boundaries (a cut-off copy, a run-on paragraph).
    words = " ".join(keys).split()
    runs = list(zip(*(words[i:] for i in range(8)), strict=False))
    if len(set(runs)) == len(runs):
        return None
    first = {run: i for i, run in reversed(list(enumerate(runs)))}
    i = next(i for i, run in enumerate(runs) if first[run] != i)  # the second occurrence
    spans = [match.span() for match in _WORD.finditer(body)]
    if len(spans) == len(words):  # quote the original text when the words line up
        return _repeated(body[spans[i][0] : spans[i + 7][1]])
    return _repeated(" ".join(runs[i]))


def _repeated(sentence: str) -> str:
    shown = sentence if len(sentence) <= 60 else sentence[:59].rstrip() + "…"
    return f'The sentence "{shown}" is repeated; say it once.'


def _truncated(body: str) -> str | None:
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if not lines:
        return None  # an empty body is the length check's finding
    last = lines[-1].rstrip("*_ ")  # markdown emphasis may close the last sentence
    if not last or _complete(last) or _signed(lines):
        return None
    tail = last[-40:]
    if len(last) > 40 and not last[-41].isspace() and " " in tail:
        tail = tail.split(" ", 1)[1]  # start the quote at a word
    shown = tail if tail == last else "…" + tail
    return f'The text stops mid-sentence ("{shown}"); finish the sentence or remove it.'


def _complete(line: str) -> bool:
    endings = (_EMOJI_END, _LINK_END, _DASH_SIGNOFF)
    return line.endswith(_END_OK) or any(ending.search(line) for ending in endings)


def _signed(lines: list[str]) -> bool:
    """Whether ``lines`` end with a closing ("Best regards,") and a signature of 1-3 lines."""
    for size in (1, 2, 3):
        if size >= len(lines):
            return False
        signature = lines[-size]
        if len(signature) > 60 or signature.endswith((".", "!", "?", "…")):
            return False
        closing = lines[-size - 1]
        # The first line ending with "," is the greeting ("Hi Ada,"), not a closing.
        if closing.endswith(",") and len(closing) <= 40 and size + 1 < len(lines):
            return True
        # A bare name after a finished sentence ("Shall we meet on Tuesday?" / "Sam").
        if size == 1 and _NAME_LINE.fullmatch(signature) and closing.endswith((".", "!", "?")):
            return True
    return False


def _recipient(
    subject: str,
    body: str,
    channel: str,
    recipient: Mapping[str, object] | None,
    grounding: str | None,
) -> str | None:
    if recipient is None:
        return None
    name = str(recipient.get("name") or "").strip()
    company = str(recipient.get("company") or "").strip()
    names = [word for word in _WORD.findall(name.lower()) if word not in _TITLES]
    # Greeting the company ("Hi Acme team") is no wrong name.
    known = set(names) | set(_WORD.findall(company.lower()))
    problems = []
    wrong: dict[str, None] = {}
    for line in body.splitlines() if names else ():
        if not (match := _GREETING.match(line)):
            continue
        word = match.group(1)
        parts = _WORD.findall(word.lower())
        if word[0].isupper() and parts[0] not in _NOT_NAMES and not known.intersection(parts):
            wrong[word] = None
    if wrong:
        quoted = ", ".join(f'"{word}"' for word in wrong)
        problems.append(f"The greeting names {quoted}, but the message is for {name}.")
    if grounding is not None:
        lowered = body.lower()
        # "Dear Ms. Lovelace" addresses Ada by name as well as "Hi Ada" does.
        if names and not any(_mentions(lowered, word) for word in names if len(word) > 1):
            given = (word for word in name.split() if word.lower().rstrip(".") not in _TITLES)
            first = next(given, name)
            problems.append(f"Address {first} by name.")
        if company and channel != "CHANNEL_SMS":
            core = " ".join(_LEGAL_SUFFIX.sub("", company).lower().split())
            if core not in " ".join(f"{subject}\n{body}".lower().split()):
                problems.append(f"Mention {company}.")
    return " ".join(problems) or None


@lru_cache(maxsize=512)
def _phrase(phrase: str) -> re.Pattern[str]:
    """A word-bounded pattern of ``phrase`` (lowercase), to search lowercased text with."""
    return re.compile(rf"(?<!\w){re.escape(phrase)}(?!\w)")


def _mentions(lowered: str, phrase: str) -> bool:
    """Whether ``lowered`` has ``phrase`` as whole words (a substring test first, for speed)."""
    phrase = phrase.lower()
    return phrase in lowered and _phrase(phrase).search(lowered) is not None


def _banned(text: str, phrases: tuple[str, ...]) -> str | None:
    lowered = text.lower()
    found = [phrase for phrase in phrases if _mentions(lowered, phrase)]
    if not found:
        return None
    quoted = ", ".join(f'"{phrase}"' for phrase in found)
    return f"Remove the banned phrase{'s' if len(found) > 1 else ''} {quoted}."


def _names(recipient: Mapping[str, object] | None, grounding: str | None) -> frozenset[str]:
    """Words in capitals that are someone's own spelling (a company called IKEA), not shouting."""
    known = " ".join(str(v) for v in (recipient or {}).values()) + " " + (grounding or "")
    return frozenset(_SHOUT.findall(known))


def _tone(text: str, tone: str, max_exclamations: int, names: frozenset[str]) -> str | None:
    strict = any(word in tone.lower() for word in _STRICT_TONES)
    allowed = max_exclamations if strict else max_exclamations * 2
    problems = []
    if text.count("!") > allowed:
        problems.append(f"Use at most {allowed} exclamation marks.")
    if len([word for word in _SHOUT.findall(text) if word not in names]) > 1:
        problems.append("Do not write words in capitals (it reads as shouting).")
    if strict:
        lowered = text.lower()
        slang = dict.fromkeys(
            match.group()
            for match in _SLANG.finditer(lowered)
            if not (match.start() and lowered[match.start() - 1].isalnum())
        )
        if slang:
            problems.append(f"Avoid slang in a {tone} message: {', '.join(slang)}.")
        if _EMOJI.search(text):
            problems.append(f"Avoid emoji in a {tone} message.")
    return " ".join(problems) or None


def _invented(text: str, grounding: str) -> str | None:
    known_numbers = {_digits(match.group()) for match in _NUMBER.finditer(grounding)}
    known_words = set(_WORD.findall(grounding.lower()))
    found: list[tuple[int, str]] = []
    spans: list[tuple[int, int]] = []
    for match in _NUMBER.finditer(text):
        start, end = match.span()
        if _no_fact(text, start, end):
            continue
        words = []
        # Show "April 24th" and "2:30 PM", not a bare number, and check the month as well.
        if before := _DATE_BEFORE.search(text, max(0, start - 12), start):
            start, words = before.start(1), [before.group(1)]
        if after := _DATE_AFTER.match(text, end):
            end = after.end()
            words += [after.group(1)] if after.group(1) else []
        spans.append((start, end))
        if _digits(match.group()) not in known_numbers or not all(
            _known_day(word, known_words) for word in words
        ):
            found.append((start, text[start:end]))
    for match in _DAY_WORD.finditer(text):
        start, word = match.start(), match.group()
        if (start and text[start - 1].isalnum()) or any(a <= start < b for a, b in spans):
            continue
        before_may = text[max(0, start - 8) : start].split()
        if word == "May" and (not before_may or before_may[-1].lower() not in _MAY_CONTEXT):
            continue
        if not _known_day(word, known_words):
            found.append((start, word))
    invented = dict.fromkeys(token for _, token in sorted(found))
    if not invented:
        return None
    quoted = ", ".join(f'"{token}"' for token in invented)
    verb = "they are" if len(invented) > 1 else "it is"
    return f"Remove {quoted}: {verb} not in the facts you were given."


def _no_fact(text: str, start: int, end: int) -> bool:
    """Whether the number at ``start:end`` states no fact: a list item's number ("1. Reports"),
    "24/7", or part of a name such as "COVID-19"."""
    line_start = text.rfind("\n", 0, start) + 1
    if not text[line_start:start].strip() and text[end : end + 1] in (".", ")"):
        return text[end + 1 : end + 2] in (" ", "\t")
    if text.startswith("24/7", start) or (start >= 3 and text.startswith("24/7", start - 3)):
        return True
    return start >= 2 and text[start - 1] == "-" and text[start - 2].isalpha()


def _digits(number: str) -> str:
    """The digits that identify ``number``: "3:00 PM" is "3", "1,500" is "1500", "09" is "9"."""
    core = match.group() if (match := _DIGIT_GROUP.match(number)) else number
    core = core.removesuffix(":00")
    digits = "".join(char for char in core if char.isdigit())
    return digits.lstrip("0") or "0"


def _known_day(word: str, known_words: set[str]) -> bool:
    # The facts may say "Tuesdays" or abbreviate ("Apr 24", "Tue").
    word = word.lower().removesuffix("s")
    return bool({word, f"{word}s", word[:3], word[:4]} & known_words)
