"""Sentiment: VADER with the CRM lexicon and phrase rules, bands, confidence, long texts."""

from __future__ import annotations

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from ai_orchestration.insights import (
    CRM_LEXICON,
    LABEL_THRESHOLDS,
    Sentiment,
    SentimentLabel,
    SentimentScorer,
    confidence_of,
    label_of,
)

NEG = SentimentLabel.NEGATIVE
VNEG = SentimentLabel.VERY_NEGATIVE
NEU = SentimentLabel.NEUTRAL
POS = SentimentLabel.POSITIVE
VPOS = SentimentLabel.VERY_POSITIVE


@pytest.fixture(scope="module")
def scorer() -> SentimentScorer:
    return SentimentScorer()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("We are not renewing.", NEG),
        ("We won't renew the contract when it expires in March.", NEG),
        ("We're not going to renew, the team has moved on.", NEG),
        ("We are cancelling our subscription at the end of the month.", NEG),
        ("We're switching to HubSpot next quarter.", NEG),
        ("We are looking at other vendors for next year.", NEG),
        ("Honestly, it's too expensive for us.", NEG),
        ("The renewal quote is over our budget.", NEG),
        ("The CSV export is still broken.", NEG),
        ("Still no response from your team.", NEG),
        ("We have been waiting two weeks for a fix.", NEG),
        ("Nobody answers our e-mails.", NEG),
        ("We expected much better from you.", NEG),
        ("This is a blocker for our rollout.", NEG),
        ("I will escalate this to your manager.", NEG),
        ("I want to speak to your manager today.", NEG),
        ("This is the third time we report the same outage.", VNEG),
        ("We will take legal action.", VNEG),
        ("Our lawyers will be in touch about the breach of contract.", VNEG),
        ("We'd be happy to expand to the marketing team.", POS),
        ("We want to add 20 more seats in Q3.", POS),
        ("We plan to renew early this year.", POS),
        ("Great onboarding, we are happy to refer other companies to you!", VPOS),
        ("Thanks for the quick fix, the sync is resolved and the team loves it!", VPOS),
        ("Please send the signed order form by Friday.", NEU),
        ("We have an issue with SSO.", NEU),
    ],
)
def test_crm_phrases_score_as_labelled(scorer: SentimentScorer, text: str, label: str) -> None:
    assert scorer.score(text).label == label


@pytest.mark.parametrize(
    "text",
    [
        "This is not a blocker for us.",
        "The login bug is no longer an issue.",
        "We are not unhappy with the rollout.",
        "We have no plans to cancel our subscription.",
        "We are not looking at other vendors.",
        "Don't worry, the price is not too expensive for us.",
        "Can we cancel tomorrow's call and meet on Friday instead?",
        "It works better than we expected.",
        "We enter the orders by hand.",  # manual work, not VADER's helping hand
    ],
)
def test_negations_and_scheduling_do_not_score_negative(scorer: SentimentScorer, text: str) -> None:
    assert scorer.score(text).score > LABEL_THRESHOLDS[1]


def test_non_renewal_beats_the_positive_renewal_phrase(scorer: SentimentScorer) -> None:
    assert scorer.score("We are not going to renew early.").label is NEG
    assert scorer.score("We are going to renew early.").label is POS


def test_sign_offs_do_not_count_as_praise(scorer: SentimentScorer) -> None:
    body = "The invoice is attached.\n\nBest regards,\nSam"
    assert scorer.score(body).score == 0.0


FRIENDLY = (
    "Hi Dana,\n\nThanks a lot for the session on Tuesday, the team really enjoyed it. "
    "The new dashboards are great and the import worked smoothly for all three regions. "
    "Our finance lead was pleased with how quickly the reports came together. "
    "We appreciate the help from your onboarding specialist.\n\nBest regards,\nSam"
)
ANGRY = "Frankly, the outage last week was unacceptable and it cost us a full day of sales. "


def test_one_angry_sentence_pulls_a_friendly_email_down(scorer: SentimentScorer) -> None:
    friendly = scorer.score(FRIENDLY)
    mixed = scorer.score(FRIENDLY.replace("Our finance lead", ANGRY + "Our finance lead"))
    assert friendly.label is VPOS
    assert mixed.score < friendly.score - 0.2


def test_plain_vader_gets_the_sign_wrong_and_the_crm_rules_do_not(
    scorer: SentimentScorer,
) -> None:
    vader = SentimentIntensityAnalyzer()
    cases = [
        ("We are not renewing.", -1),
        ("This is a blocker.", -1),
        ("I will escalate this to your manager.", -1),
        ("Honestly, it's too expensive for us.", -1),
        ("Still no response from support.", -1),
        ("The sync bug is no longer an issue.", 1),
    ]
    for text, sign in cases:
        plain = vader.polarity_scores(text)["compound"]
        ours = scorer.score(text).score
        assert plain * sign <= 0, text
        assert ours * sign > 0, text


@pytest.mark.parametrize(
    ("score", "label"),
    [
        (-1.0, VNEG),
        (-0.6, VNEG),
        (-0.5999, NEG),
        (-0.2, NEG),
        (-0.1999, NEU),
        (0.0, NEU),
        (0.1999, NEU),
        (0.2, POS),
        (0.5999, POS),
        (0.6, VPOS),
        (1.0, VPOS),
    ],
)
def test_label_thresholds(score: float, label: SentimentLabel) -> None:
    assert label_of(score) is label


def test_confidence_is_lower_for_short_texts_and_near_an_edge() -> None:
    assert confidence_of(0.4, 3) < confidence_of(0.4, 30) < 1.0
    assert confidence_of(0.21, 30) < confidence_of(0.4, 30)
    assert confidence_of(-0.19, 30) < confidence_of(0.0, 30)
    assert confidence_of(0.5, 0) == 0.0
    assert confidence_of(0.2, 10**6) == pytest.approx(0.5, abs=1e-3)


def test_confidence_of_texts(scorer: SentimentScorer) -> None:
    short = scorer.score("Not renewing.")
    long = scorer.score(
        "After two quarters of missed deadlines and an outage during our busiest week, we are "
        "not renewing. The team has lost confidence and the support experience was poor."
    )
    assert short.label is NEG
    assert long.label in {NEG, VNEG}
    assert 0.0 < short.confidence < long.confidence <= 1.0


@pytest.mark.parametrize("text", ["", "   \n\t ", "Order #4711"])
def test_texts_without_sentiment_are_neutral(scorer: SentimentScorer, text: str) -> None:
    result = scorer.score(text)
    assert (result.score, result.label) == (0.0, NEU)
    assert result.confidence == (0.0 if not text.strip() else confidence_of(0.0, 2))


def test_lexicon_is_merged_per_instance() -> None:
    scorer = SentimentScorer()
    assert scorer.score("This is a blocker.") == SentimentScorer().score("This is a blocker.")
    assert CRM_LEXICON["blocker"] < 0 < CRM_LEXICON["upgrade"]
    # A plain analyzer built afterwards is untouched: the lexicon is per instance, not global.
    assert "blocker" not in SentimentIntensityAnalyzer().lexicon


def test_very_long_texts_complete(scorer: SentimentScorer) -> None:
    paragraph = (
        "We reviewed the quarterly usage report with the operations team. Adoption grew in "
        "every region, but the export is still broken and support has not replied. "
    )
    long_text = (paragraph * (100_000 // len(paragraph) + 1))[:100_000]
    one_run = ("but it is slow and buggy " * 5_000)[:100_000]  # no punctuation, many "but"s
    no_spaces = "x" * 100_000
    for text in (long_text, one_run, no_spaces, long_text * 3):
        result = scorer.score(text)
        assert isinstance(result, Sentiment)
        assert -1.0 <= result.score <= 1.0
        assert 0.0 <= result.confidence <= 1.0
    assert scorer.score(one_run).label in {NEG, VNEG}
