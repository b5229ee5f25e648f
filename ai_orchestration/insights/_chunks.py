"""Sentence-aware chunking with exact character offsets.

Retrieval cites passages, and a citation is only checkable if the passage is a verbatim slice of
the stored text: every :class:`Chunk` is ``text[start:end]`` of the string it was cut from. The
caller chunks :attr:`Interaction.text` (``subject + "\\n\\n" + body``), the same string mention
offsets index, so one offset space serves signals, chunks and citations.

Chunks end at sentence ends, so a passage never starts or stops mid-thought; only a sentence that
alone is longer than a chunk is cut, at whitespace. Consecutive chunks share their edge sentence(s)
so that a fact spanning a boundary is whole in at least one chunk.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from ai_orchestration.insights._types import Chunk

DEFAULT_CHUNK_CHARS: Final[int] = 160
"""One or two sentences: a passage's vector then stands for one fact rather than an e-mail's
mix of greetings, small talk and the fact (``bench/bench_insights.py`` measures the recall),
and a citation quotes just the sentence behind a statement."""

# Terminal punctuation, closing quotes or brackets, then whitespace or the end of the text.
_TERMINAL = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s|\Z)")
# A blank line, or a line break before a bullet ("- ", "* ", "\u2022 ", "1. ", "2) "): e-mails
# and tickets put one point per line without closing punctuation.
_PARAGRAPH = re.compile(r"\n[ \t]*\n|\n(?=[ \t]*(?:[-*\u2022]|\d{1,3}[.)])[ \t])")
_WORD_BEFORE = re.compile(r"([\w.]+)\Z")
_NEXT_VISIBLE = re.compile(r"\s*(\S)")
_LAST_SPACE = re.compile(r"\s+(?=\S*\Z)")
_SPACES = re.compile(r"\s*")

# A full stop after these is not a sentence end (checked lower-case, inner dots kept).
_ABBREVIATIONS: Final[frozenset[str]] = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "inc", "ltd", "co", "corp", "llc",
        "gmbh", "vs", "etc", "approx", "dept", "est", "no", "nr", "tel", "ref", "fig", "e.g",
        "i.e", "cf", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
        "nov", "dec", "mon", "tue", "wed", "thu", "fri", "sat", "sun",
    }
)  # fmt: skip


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence, without surrounding whitespace, in order.

    A sentence ends at ``.``, ``!``, ``?`` or ``\u2026`` followed by whitespace (not after a
    known abbreviation or an initial, nor before a lower-case word), at a blank line, and before
    a bulleted or numbered line.
    """
    breaks = {m.end() for m in _TERMINAL.finditer(text) if _ends_sentence(text, m)}
    breaks.update(m.start() for m in _PARAGRAPH.finditer(text))
    spans: list[tuple[int, int]] = []
    start = 0
    for stop in [*sorted(breaks), len(text)]:
        span = _stripped(text, start, stop)
        if span is not None:
            spans.append(span)
        start = stop
    return spans


def sentence_pieces(text: str, *, max_chars: int) -> list[tuple[int, int]]:
    """:func:`sentence_spans`, with every sentence over ``max_chars`` cut at whitespace."""
    return [
        piece
        for start, end in sentence_spans(text)
        for piece in _split_long(text, start, end, max_chars)
    ]


def chunk(
    text: str, *, max_chars: int = DEFAULT_CHUNK_CHARS, overlap_sentences: int = 1
) -> list[Chunk]:
    """Cuts ``text`` into passages of whole sentences, each at most ``max_chars`` long.

    Each chunk after the first repeats the last ``overlap_sentences`` sentences of the one
    before, as many of them as fit beside at least one new sentence. Deterministic: the same
    text and arguments give the same chunks. Empty or blank text gives none.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    if overlap_sentences < 0:
        raise ValueError(f"overlap_sentences must not be negative, got {overlap_sentences}")
    pieces = sentence_pieces(text, max_chars=max_chars)
    chunks: list[Chunk] = []
    first = 0
    while first < len(pieces):
        stop = first + 1
        while stop < len(pieces) and pieces[stop][1] - pieces[first][0] <= max_chars:
            stop += 1
        start, end = pieces[first][0], pieces[stop - 1][1]
        chunks.append(Chunk(index=len(chunks), start=start, end=end, text=text[start:end]))
        if stop == len(pieces):
            break
        # Step back for the overlap, then give up overlap until the next new sentence fits.
        following = max(first + 1, stop - overlap_sentences)
        while following < stop and pieces[stop][1] - pieces[following][0] > max_chars:
            following += 1
        first = following
    return chunks


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    following = _NEXT_VISIBLE.match(text, match.end())
    if following is not None and following.group(1).islower():
        return False  # "e.g. the", "approx. ten", "Really? not yet"
    if match.group().rstrip("\"'\u201d\u2019)]") != ".":
        return True
    # Abbreviations are short: look a few characters back, not at the whole text before.
    before = _WORD_BEFORE.search(text, max(0, match.start() - 24), match.start())
    if before is None:
        return True
    word = before.group(1)
    if word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper()):
        return False
    if not word.isdigit():
        return True
    # "1. " opening a line is a list number, not a one-word sentence.
    line_start = text.rfind("\n", 0, before.start()) + 1
    return bool(text[line_start : before.start()].strip())


def _stripped(text: str, start: int, stop: int) -> tuple[int, int] | None:
    while start < stop and text[start].isspace():
        start += 1
    while stop > start and text[stop - 1].isspace():
        stop -= 1
    return (start, stop) if start < stop else None


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    pieces: list[tuple[int, int]] = []
    while end - start > max_chars:
        limit = start + max_chars
        space = _LAST_SPACE.search(text, start + 1, limit + 1)
        if space is not None:
            cut, resume = space.start(), space.end()
        else:
            cut = limit
            # Keep combining marks, variation selectors and ZWJ sequences with their base.
            while cut > start + 1 and _joins_previous(text, cut):
                cut -= 1
            resume = cut
        pieces.append((start, cut))
        resume_match = _SPACES.match(text, resume, end)
        start = resume_match.end() if resume_match is not None else resume
    if start < end:
        pieces.append((start, end))
    return pieces


def _joins_previous(text: str, index: int) -> bool:
    char, previous = text[index], text[index - 1]
    return (
        unicodedata.combining(char) != 0
        or unicodedata.category(char) == "Mn"
        or "\ufe00" <= char <= "\ufe0f"
        or char == "\u200d"
        or previous == "\u200d"
    )
