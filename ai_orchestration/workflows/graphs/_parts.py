"""Short texts a small model writes inside text the code owns: the schema it answers under, and
the rules a part must meet before it is used.

Why parts: the bundled model (SmolLM2-135M) cannot write a whole message or analysis that is
safe to show. Asked for prose it loops, invents dates, prices and places, echoes its prompt and
leaves placeholders; asked for one sentence about facts in front of it, it is right often enough
to be useful. So a step asks for a JSON object of named parts, decoded under :func:`schema`
(constrained generation: each string is one sentence that starts with a capital and ends with a
full stop, and cannot contain brackets, braces, angle brackets, quotes, backslashes or line
breaks, so no placeholder, prompt scaffolding, second paragraph, ramble or half sentence can come
out), then keeps a part only when :func:`accept` finds nothing wrong with it. What is not kept
is asked for again with the reasons, and in the end taken from the step's template text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ai_orchestration.workflows.graphs._checks import check_draft, normalized, sentences
from ai_orchestration.workflows.graphs._content import ContentPolicy

__all__ = [
    "STOP",
    "Part",
    "accept",
    "cleaned",
    "content_words",
    "covers",
    "grounding_of",
    "parse_parts",
    "schema",
    "token_budget",
    "without_repeated_clause",
]

# Characters a part may not contain: no placeholder ([x], {x}, <x>), no quote, escape or line
# break (llama.cpp applies the pattern to the raw characters between the JSON quotes, so a quote
# or a raw line break would end or break the JSON itself), no parentheses (a small model copies
# the prompt's "(+26)" points into its prose).
_FREE: Final = r"[^\[\]{}<>()\"\\\n"
_SENTENCE_END: Final = "[.!?]"
# One sentence: no sentence end before the last character (a subject has no colon either, so
# no "Subject:" label).
_IN_SENTENCE: Final = _FREE + ".!?]"
_IN_SUBJECT: Final = _FREE + ".!?:]"
_STOPWORDS: Final = frozenset(
    [
        # Words of manner ("I would love to ..."), not of content.
        "like",
        "love",
        "writing",
        "hope",
        "glad",
        "happy",
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "their",
        "them",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "will",
        "with",
        "you",
        "your",
        "yours",
        "about",
        "into",
        "out",
        "up",
        "can",
        "could",
        "would",
        "should",
        "may",
        "might",
        "shall",
        "just",
        "also",
        "very",
        "more",
        "most",
        "some",
        "any",
        "all",
        "her",
        "his",
        "him",
        "she",
        "he",
        "my",
        "me",
        "us",
        "do",
        "does",
        "did",
        "not",
        "no",
        "than",
        "then",
        "there",
        "here",
        "what",
        "when",
        "who",
        "how",
        "which",
        "while",
        "been",
        "being",
        "am",
    ]
)
_CAPITALISED = re.compile(r"\b[A-Z][\w'\u2019-]*")
_NEGATION = re.compile(r"(?<!\w)(?:not|no|never|none|cannot|without)(?!\w)|n['\u2019]t(?!\w)", re.I)
_LABEL = re.compile(
    r"^(?:subject|goal|points?|key points?|verdict|drivers|answer|draft|body)\s*:\s*", re.I
)
_PROMPT_WORDS = re.compile(
    r"(?<!\w)(?:goal|key points?|tone|reader|sentences?|subject line|json|feedback|example)(?!\w)",
    re.I,
)
# A sentence the length limit cut: it ends on a word that cannot end one ("..., and we.").
_DANGLING = re.compile(
    r"(?<![\w-])(?:a|an|the|to|of|on|in|at|for|with|and|or|but|by|from|your|our|their|my|we)\W*$",
    re.I,
)
_FIRST_PERSON_READER = re.compile(r"(?<!\w)(?:me|my|mine|myself)(?!\w)", re.I)
_MIN_CLAUSE: Final = 20
"""Shortest first clause :func:`without_repeated_clause` keeps as a sentence."""
_JSON_TOKENS: Final = 40
"""Tokens of an answer's keys, quotes, braces and the line breaks between them."""
_RUN: Final = 6
"""Words in a row two parts may not share."""
_SHARED: Final = 0.8
"""Share of the shorter part's meaningful words two parts may not have in common."""
_ALWAYS_KNOWN: Final = frozenset({"i", "i'm", "i'd", "i'll", "i've", "ok"})


@dataclass(frozen=True, slots=True)
class Part:
    """One text a step asks the model for."""

    name: str
    """Key in the answer's JSON object."""
    description: str
    """What the part is, for the prompt (e.g. ``one sentence that ...``)."""
    min_chars: int
    """Shortest acceptable text."""
    max_chars: int
    """Longest text the schema admits."""
    sentence: bool = True
    """Whether the part is one sentence (a subject line is not: no final full stop)."""
    starts: tuple[str, ...] = ()
    """Words the part must start with (any capital letter when empty)."""


def schema(parts: Iterable[Part]) -> dict[str, Any]:
    """The JSON schema of an answer made of ``parts`` (every one required, nothing else)."""
    properties: dict[str, Any] = {
        part.name: {"type": "string", "description": part.description, "pattern": _pattern(part)}
        for part in parts
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _pattern(part: Part) -> str:
    # The first and (for a sentence) the last character are fixed by the pattern, the rest
    # counted by its repetition bounds.
    fixed = 2 if part.sentence else 1
    low, high = max(0, part.min_chars - fixed), max(1, part.max_chars - fixed)
    end, inner = (_SENTENCE_END, _IN_SENTENCE) if part.sentence else ("", _IN_SUBJECT)
    start = f"(?:{'|'.join(map(_literal, part.starts))})" if part.starts else "[A-Z]"
    return f"^{start}{inner}{{{low},{high}}}{end}$"


STOP: Final[tuple[str, ...]] = ("\n\n",)
"""The stop sequence of a call for parts. A JSON object decoded under a grammar never has a blank
line (llama.cpp's JSON whitespace is one line break and an indent at most); a provider that does
not enforce the schema and wanders into prose after (or instead of) the object is cut there."""


def _literal(text: str) -> str:
    # Not re.escape: llama.cpp's pattern parser refuses "\ " (an escaped space) and then drops
    # the whole pattern, silently accepting any string.
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def token_budget(parts: Iterable[Part]) -> int:
    """Most tokens an answer of ``parts`` needs: their longest texts at three characters a token
    (English runs near four), plus the JSON around them. A channel with shorter parts (SMS) gets
    a smaller limit, and a provider that ignores the schema cannot ramble past it."""
    return _JSON_TOKENS + sum(part.max_chars for part in parts) // 3


def parse_parts(text: str, parts: Iterable[Part]) -> dict[str, str]:
    """The string values of the named ``parts`` in a model's JSON answer, cleaned (missing ones
    are left out; an answer that is no JSON object gives nothing)."""
    try:
        answer = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(answer, dict):
        return {}
    found: dict[str, str] = {}
    for part in parts:
        value = answer.get(part.name)
        if isinstance(value, str) and (text := cleaned(value)):
            found[part.name] = text
    return found


def cleaned(text: str) -> str:
    """``text`` without what a model wraps around the words it was asked for: spaces and line
    breaks run together, quotes or emphasis around it, a label before it ("Goal: ...")."""
    text = " ".join(text.split()).strip("\"'*_ \u201c\u201d")
    text = _LABEL.sub("", text)
    return text[:1].upper() + text[1:]


def content_words(text: str) -> set[str]:
    """The words of ``text`` that carry meaning, roughly stemmed (for coverage comparisons)."""
    return {_stem(word) for word in normalized(text).split() if word not in _STOPWORDS}


def covers(text: str, facts: str, share: float) -> bool:
    """Whether ``text`` has at least ``share`` of the content words of ``facts``."""
    wanted = content_words(facts)
    if not wanted:
        return True
    return len(wanted & content_words(text)) >= share * len(wanted)


def accept(
    text: str,
    part: Part,
    *,
    grounding: str,
    tone: str,
    policy: ContentPolicy,
    taken: Iterable[str] = (),
) -> str:
    """Why ``text`` may not be used as ``part``; empty when it may.

    A part is refused when it is too short or long, has too many sentences, repeats itself or a
    part already taken, fails a check of a draft (placeholder, scaffolding, banned phrase, tone,
    a figure, day or month not in ``grounding``), names anything that is not in ``grounding``
    (a capitalised word other than a sentence's first), or speaks of the reader as "me".
    """
    faults = _faults(text, part, grounding=grounding, tone=tone, policy=policy, taken=taken)
    return next(faults, "")


def _faults(
    text: str,
    part: Part,
    *,
    grounding: str,
    tone: str,
    policy: ContentPolicy,
    taken: Iterable[str],
) -> Iterator[str]:
    """Every reason to refuse ``text``, cheapest checks first (the caller takes the first)."""
    yield from _form_faults(text, part, grounding, taken)
    draft = {"subject": "", "body": text, "channel": ""}
    for issue in check_draft(draft, tone=tone, policy=policy, grounding=grounding):
        if issue.check not in ("length", "truncated", "recipient"):
            yield issue.message
    yield from _fact_faults(text, grounding)


def _form_faults(text: str, part: Part, grounding: str, taken: Iterable[str]) -> Iterator[str]:
    """What is wrong with the shape of ``text``: length, pattern, one sentence, finished, about
    the message rather than the request, not a repeat of another part."""
    if len(text) < part.min_chars or len(text) > part.max_chars:
        yield f"write {part.min_chars} to {part.max_chars} characters"
    # What the schema asks for, checked again: not every provider enforces a pattern.
    if not re.fullmatch(_pattern(part), text):
        what = "one sentence" if part.sentence else "one line without a full stop"
        yield f"write {what}, starting with a capital, without brackets, quotes or line breaks"
    if part.sentence and len(sentences(text)) > 1:
        yield "write one sentence"
    prompt_words = {m.group().lower() for m in _PROMPT_WORDS.finditer(text)}
    if prompt_words - {m.group().lower() for m in _PROMPT_WORDS.finditer(grounding)}:
        yield "write the message itself, not about the request"
    if part.sentence and _DANGLING.search(text):
        yield "finish the sentence"
    if any(_overlaps(text, other) for other in taken):
        yield "say something the other parts do not say"


def _fact_faults(text: str, grounding: str) -> Iterator[str]:
    """What ``text`` says that the facts do not: an opposite, a number with another meaning, a
    word said twice, a name, the reader as "me"."""
    if _NEGATION.search(text) and not _NEGATION.search(grounding):
        yield "say what the facts say, without turning them into their opposite"
    if counted := _numbers_out_of_place(text, grounding):
        yield f'use "{counted}" only as the facts do'
    if twice := _said_twice(text, grounding):
        yield f'say "{twice}" once'
    if unknown := _unknown_names(sentences(text), grounding):
        yield "use only names from the facts given, not " + ", ".join(unknown)
    if _FIRST_PERSON_READER.search(text) and not _FIRST_PERSON_READER.search(grounding):
        yield 'write to the reader as "you"'


def without_repeated_clause(text: str, others: Iterable[str]) -> str:
    """``text`` without a last clause (", and ...") that says what one of ``others`` says: a small
    model often ends a good sentence by repeating another part."""
    head, joint, tail = text.rpartition(", and ")
    if not joint or len(head) < _MIN_CLAUSE or not any(_overlaps(tail, o) for o in others):
        return text
    return head + text[-1]


def _numbers_out_of_place(text: str, grounding: str) -> str:
    """A number the facts have, but not with the word that follows it here ("10 years" where
    the facts say "10% discount"), or empty."""
    facts = set(_counted(grounding))
    return next((" ".join(pair) for pair in _counted(text) if pair not in facts), "")


def _counted(text: str) -> list[tuple[str, str]]:
    words = normalized(text).split()
    return [
        (word, _stem(words[i + 1]) if i + 1 < len(words) else "")
        for i, word in enumerate(words)
        if word.isdigit()
    ]


def _said_twice(text: str, grounding: str) -> str:
    """A meaningful word ``text`` has twice though the facts have it once ("by Friday by
    Friday"), or empty."""
    words = [w for w in normalized(text).split() if len(w) > 3 and w not in _STOPWORDS]
    facts = normalized(grounding).split()
    return next((w for w in words if words.count(w) > 1 and facts.count(w) < 2), "")


def _overlaps(text: str, other: str) -> bool:
    """Whether ``text`` says much of what ``other`` says: a run of six words in common, or most
    of the words that carry meaning of the shorter one."""
    words, others = normalized(text).split(), normalized(other).split()
    runs = {tuple(others[i : i + _RUN]) for i in range(len(others) - _RUN + 1)}
    if any(tuple(words[i : i + _RUN]) in runs for i in range(len(words) - _RUN + 1)):
        return True
    mine, theirs = content_words(text), content_words(other)
    shorter = min(len(mine), len(theirs))
    return shorter > 0 and len(mine & theirs) >= _SHARED * shorter


def _unknown_names(said: list[str], grounding: str) -> list[str]:
    known = {word.lower() for word in re.findall(r"[\w'\u2019-]+", grounding)}
    unknown: list[str] = []
    for sentence in said:
        for match in _CAPITALISED.finditer(sentence):
            word = match.group().lower().replace("\u2019", "'")
            first = match.start() == len(sentence) - len(sentence.lstrip())
            if first or word in known or word in _ALWAYS_KNOWN or match.group() in unknown:
                continue
            unknown.append(match.group())
    return unknown


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    # "invite" and "inviting" both become "invit".
    return word[:-1] if len(word) > 4 and word.endswith("e") else word


def grounding_of(values: Mapping[str, str]) -> str:
    """Every fact a prompt gave the model, as one text (what its parts may mention)."""
    return "\n".join(values.values())
