"""Signals of an interaction: subject and body, flags, offsets, JSON round trip, no grpc."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from ai_orchestration.insights import (
    SIGNALS_VERSION,
    CompetitorList,
    Direction,
    Interaction,
    InteractionKind,
    Mention,
    MentionKind,
    Sentiment,
    SentimentLabel,
    SentimentScorer,
    SignalExtractor,
    Signals,
)

COMPETITORS = CompetitorList.from_mapping(
    {"Salesforce": ("SFDC", "Sales Cloud"), "HubSpot": ("HubSpot CRM",)}
)


@pytest.fixture(scope="module")
def extractor() -> SignalExtractor:
    return SignalExtractor(scorer=SentimentScorer())


def interaction(subject: str, body: str, **changes: object) -> Interaction:
    fields: dict[str, object] = {
        "interaction_id": "em-1042",
        "customer_id": "acct-77",
        "kind": InteractionKind.EMAIL,
        "direction": Direction.INBOUND,
        "occur_time": datetime(2025, 3, 4, 9, 30, tzinfo=UTC),
        "subject": subject,
        "body": body,
        "participants": ("dana@customer.example", "sam@vendor.example"),
    }
    fields.update(changes)
    return Interaction(**fields)  # type: ignore[arg-type]


CHURN_EMAIL = interaction(
    "Re: SFDC offer and our renewal",
    "Hi Sam,\n\n"
    "Thanks for the call. Sales Cloud quoted us $38,000 for 120 seats, which is well below "
    "your renewal price. Unless you can match it we are not renewing in June.\n\n"
    "The export has been broken for three weeks and this is the third time I ask for an "
    "update, so I will escalate this to your manager. If the data is lost we will take legal "
    "action.\n\nRegards,\nDana",
)


def test_signals_of_an_unhappy_customer(extractor: SignalExtractor) -> None:
    signals = extractor.extract(CHURN_EMAIL, COMPETITORS)
    assert signals.competitors == ("Salesforce",)
    assert (signals.pricing, signals.churn_intent, signals.escalation) == (True, True, True)
    assert signals.legal_threat
    assert signals.sentiment.label in {SentimentLabel.NEGATIVE, SentimentLabel.VERY_NEGATIVE}
    text = CHURN_EMAIL.text
    quoted = {(m.kind, text[m.start : m.end]) for m in signals.mentions}
    assert (MentionKind.COMPETITOR, "SFDC") in quoted  # in the subject: offsets index .text
    assert (MentionKind.COMPETITOR, "Sales Cloud") in quoted
    assert (MentionKind.PRICING, "$38,000") in quoted
    assert (MentionKind.CHURN, "not renewing") in quoted
    assert (MentionKind.LEGAL, "legal action") in quoted
    assert list(signals.mentions) == sorted(signals.mentions, key=lambda m: (m.start, m.end))


def test_signals_of_a_happy_customer(extractor: SignalExtractor) -> None:
    happy = interaction(
        "Expansion",
        "Great quarter! The team loves the new reporting and we'd like to add 25 more seats "
        "for the Berlin office. Happy to be a reference for other customers too.",
        kind=InteractionKind.CALL,
    )
    signals = extractor.extract(happy, COMPETITORS)
    assert signals.sentiment.label is SentimentLabel.VERY_POSITIVE
    assert signals.competitors == ()
    assert not (signals.pricing or signals.churn_intent or signals.escalation)
    assert not signals.legal_threat
    text = happy.text
    assert [(m.kind, text[m.start : m.end]) for m in signals.mentions] == [
        (MentionKind.EXPANSION, "Expansion"),
        (MentionKind.EXPANSION, "add 25 more seats"),
        (MentionKind.REFERRAL, "be a reference"),
    ]
    assert signals.has(MentionKind.EXPANSION) and signals.has(MentionKind.REFERRAL)
    assert not signals.has(MentionKind.UPSELL)
    assert signals.mentions_of(MentionKind.REFERRAL) == signals.mentions[2:]


def test_competitors_in_order_of_first_mention(extractor: SignalExtractor) -> None:
    note = interaction("", "HubSpot CRM demo went badly; they still prefer SFDC over HubSpot.")
    assert extractor.extract(note, COMPETITORS).competitors == ("HubSpot", "Salesforce")


def test_extraction_is_deterministic(extractor: SignalExtractor) -> None:
    again = SignalExtractor(scorer=SentimentScorer())
    assert extractor.extract(CHURN_EMAIL, COMPETITORS) == again.extract(CHURN_EMAIL, COMPETITORS)


def test_json_round_trip(extractor: SignalExtractor) -> None:
    signals = extractor.extract(CHURN_EMAIL, COMPETITORS)
    document = json.loads(json.dumps(signals.to_json()))
    assert document["version"] == SIGNALS_VERSION
    assert Signals.from_json(document) == signals
    empty = Signals(
        sentiment=Sentiment(0.0, SentimentLabel.NEUTRAL, 0.0),
        competitors=(),
        pricing=False,
        churn_intent=False,
        escalation=False,
        legal_threat=False,
        mentions=(),
    )
    assert Signals.from_json(json.loads(json.dumps(empty.to_json()))) == empty


@pytest.mark.parametrize(
    "change",
    [
        {"version": 99},
        {"sentiment": None},
        {"pricing": "yes"},
        {"mentions": [["competitor", "Salesforce", 0]]},
        {"mentions": [["rumour", "x", 0, 1]]},
        {"sentiment": {"score": True, "label": "neutral", "confidence": 0.5}},
    ],
)
def test_malformed_documents_are_refused(change: dict[str, object]) -> None:
    signals = Signals(
        sentiment=Sentiment(-0.3, SentimentLabel.NEGATIVE, 0.6),
        competitors=("Salesforce",),
        pricing=True,
        churn_intent=False,
        escalation=False,
        legal_threat=False,
        mentions=(Mention(MentionKind.COMPETITOR, "Salesforce", 0, 4),),
    )
    document = {**signals.to_json(), **change}
    with pytest.raises(ValueError):
        Signals.from_json(document)  # type: ignore[arg-type]


def test_interaction_text_and_times() -> None:
    assert interaction("", "Body only.").text == "Body only."
    assert interaction("Hello", "Body.").text == "Hello\n\nBody."
    with pytest.raises(ValueError, match="timezone-aware"):
        interaction("x", "y", occur_time=datetime(2025, 3, 4, 9, 30))


def test_the_core_imports_neither_grpc_nor_storage() -> None:
    # A fresh interpreter: this test process may long have imported grpc for other tests.
    code = (
        "import sys, ai_orchestration.insights; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('grpc', 'crm', 'google', 'sqlalchemy') "
        "or m.startswith('ai_orchestration.storage')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
