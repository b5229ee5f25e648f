"""Sentence-aware chunks: exact offsets, whole sentences, overlap, long sentences, unicode."""

from __future__ import annotations

import unicodedata
from itertools import pairwise

import pytest

from ai_orchestration.insights import Chunk, chunk, sentence_spans

EMAIL = (
    "Hi Priya,\n\n"
    "Thanks for the demo on Tuesday. The team liked the forecasting view, e.g. the weekly "
    "roll-up. Mr. Okafor asked whether the EU data residency option costs extra (approx. "
    "\u20ac1.5k per year?). Could you confirm by Friday?\n\n"
    "Open points:\n"
    "- SSO with Azure AD\n"
    "- Export to S\u00e3o Paulo office \U0001f1e7\U0001f1f7\n"
    "1. Pricing for 40 seats\n"
    "2. Renewal terms\n\n"
    "Best regards,\n"
    "J\u00fcrgen M\u00fcller"
)


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in sentence_spans(text)]


def test_sentences_of_an_email() -> None:
    assert sentences(EMAIL) == [
        "Hi Priya,",
        "Thanks for the demo on Tuesday.",
        "The team liked the forecasting view, e.g. the weekly roll-up.",
        "Mr. Okafor asked whether the EU data residency option costs extra (approx. "
        "\u20ac1.5k per year?).",
        "Could you confirm by Friday?",
        "Open points:",
        "- SSO with Azure AD",
        "- Export to S\u00e3o Paulo office \U0001f1e7\U0001f1f7",
        "1. Pricing for 40 seats",
        "2. Renewal terms",
        "Best regards,\nJ\u00fcrgen M\u00fcller",
    ]


def check(text: str, chunks: list[Chunk], max_chars: int) -> None:
    """The invariants every chunking must keep."""
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.text == text[c.start : c.end]
        assert 0 < len(c.text) <= max_chars
        assert c.text == c.text.strip()
    starts = [c.start for c in chunks]
    assert starts == sorted(set(starts))
    # Every non-blank character is in some chunk.
    covered = {i for c in chunks for i in range(c.start, c.end)}
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n"])
def test_blank_text_has_no_chunks(text: str) -> None:
    assert chunk(text) == []
    assert sentence_spans(text) == []


def test_a_short_text_is_one_chunk() -> None:
    (only,) = chunk("  Please call me back.  \n")
    assert only == Chunk(index=0, start=2, end=22, text="Please call me back.")


@pytest.mark.parametrize("max_chars", [110, 200, 800])
def test_chunks_are_whole_sentences_with_exact_offsets(max_chars: int) -> None:
    # The longest sentence of the e-mail has 92 characters: none needs cutting.
    chunks = chunk(EMAIL, max_chars=max_chars)
    check(EMAIL, chunks, max_chars)
    ends = {end for _, end in sentence_spans(EMAIL)}
    starts = {start for start, _ in sentence_spans(EMAIL)}
    for c in chunks:
        assert c.start in starts
        assert c.end in ends


def test_small_chunks_cut_long_sentences_only() -> None:
    chunks = chunk(EMAIL, max_chars=60)
    check(EMAIL, chunks, 60)
    for c in chunks:
        assert c.end == len(EMAIL) or EMAIL[c.end].isspace()


def test_consecutive_chunks_share_the_last_sentence() -> None:
    text = " ".join(f"Sentence number {i} is about the renewal call." for i in range(30))
    spans = sentence_spans(text)
    chunks = chunk(text, max_chars=200)
    check(text, chunks, 200)
    for before, after in pairwise(chunks):
        last_sentence = next(s for s in spans if s[1] == before.end)
        assert after.start == last_sentence[0]
    no_overlap = chunk(text, max_chars=200, overlap_sentences=0)
    check(text, no_overlap, 200)
    for before, after in pairwise(no_overlap):
        assert after.start > before.end


def test_two_sentences_of_overlap() -> None:
    text = " ".join(f"Point {i} of the QBR agenda." for i in range(20))
    chunks = chunk(text, max_chars=120, overlap_sentences=2)
    check(text, chunks, 120)
    spans = sentence_spans(text)
    for before, after in pairwise(chunks):
        inside = [s for s in spans if before.start <= s[0] and s[1] <= before.end]
        assert after.start == inside[-2][0]


def test_overlap_gives_way_when_the_next_sentence_would_not_fit() -> None:
    text = "Short one. " + "A much longer sentence that nearly fills a chunk on its own here."
    chunks = chunk(text, max_chars=70)
    assert [c.text for c in chunks] == [
        "Short one.",
        "A much longer sentence that nearly fills a chunk on its own here.",
    ]


def test_a_sentence_longer_than_a_chunk_is_cut_at_whitespace() -> None:
    long_sentence = " ".join(["the integration keeps failing on large imports"] * 40) + "."
    text = f"Hello team. {long_sentence} Please advise."
    chunks = chunk(text, max_chars=100)
    check(text, chunks, 100)
    for c in chunks:
        assert c.start == 0 or text[c.start - 1].isspace()
        assert c.end == len(text) or text[c.end].isspace()
    assert chunks[0].text.startswith("Hello team. the integration")
    assert chunks[-1].text.endswith("Please advise.")


def test_text_without_whitespace_is_cut_hard_but_not_inside_a_character() -> None:
    combining = "e\u0301" * 300  # 600 code points, 300 user-perceived characters
    chunks = chunk(combining, max_chars=101)
    check(combining, chunks, 101)
    for c in chunks:
        assert unicodedata.combining(c.text[0]) == 0
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467" * 50  # ZWJ sequences
    chunks = chunk(family, max_chars=32)
    check(family, chunks, 32)
    for c in chunks:
        assert not c.text.startswith("\u200d")
        assert not c.text.endswith("\u200d")


def test_unicode_and_newlines_keep_offsets_exact() -> None:
    text = (
        "\u00bfQu\u00e9 tal?\r\nLe devis est trop cher \u2014 vraiment! "
        "\u4ef7\u683c\u592a\u9ad8\u4e86\u3002 Das Angebot \u00fcbersteigt unser Budget\u2026 "
        "\n\n\n\u2022 point one\n\u2022 point two\n\n  \u0928\u092e\u0938\u094d\u0924\u0947."
    )
    for max_chars in (10, 25, 60, 800):
        check(text, chunk(text, max_chars=max_chars), max_chars)
    assert chunk(text) == chunk(text)


def test_subject_and_body_are_chunked_as_one_text() -> None:
    subject = "Renewal of contract 2024-117"
    body = "We reviewed the offer. The price per seat is too high."
    text = f"{subject}\n\n{body}"
    assert sentences(text)[0] == subject


@pytest.mark.parametrize(
    ("max_chars", "overlap"),
    [(0, 1), (-5, 1), (100, -1)],
)
def test_bad_arguments(max_chars: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk("Hello.", max_chars=max_chars, overlap_sentences=overlap)


def test_long_texts_chunk_quickly_enough_to_finish() -> None:
    text = "The onboarding call went well. " * 3_300  # ~100,000 characters
    chunks = chunk(text)
    check(text, chunks, 800)
    assert len(chunks) > 100
