"""Detectors: competitors with aliases, pricing, churn (negation-aware), escalation, legal."""

from __future__ import annotations

import pytest

from ai_orchestration.errors import InvalidArgumentError
from ai_orchestration.insights import (
    MAX_ALIASES,
    MAX_COMPETITORS,
    Competitor,
    CompetitorList,
    Mention,
    MentionKind,
    detect,
)
from ai_orchestration.insights._detectors import negation_start

COMPETITORS = CompetitorList.from_mapping(
    {
        "Salesforce": ("SFDC", "Sales Cloud", "salesforce.com"),
        "HubSpot": ("HubSpot CRM",),
        "Microsoft": ("Dynamics", "Dynamics 365"),
        "Monday.com": ("monday",),
    }
)
NONE = CompetitorList()


def spans(text: str, kind: MentionKind, competitors: CompetitorList = NONE) -> list[str]:
    return [text[m.start : m.end] for m in detect(text, competitors) if m.kind is kind]


def terms(text: str, kind: MentionKind, competitors: CompetitorList = NONE) -> list[str]:
    return [m.term for m in detect(text, competitors) if m.kind is kind]


def test_aliases_report_the_canonical_name() -> None:
    text = (
        "SFDC offered us Sales Cloud at a discount, HubSpot CRM was cheaper, and "
        "salesforce.com keeps calling. We also looked at Dynamics 365 and monday."
    )
    found = COMPETITORS.find(text)
    assert [m.term for m in found] == [
        "Salesforce",
        "Salesforce",
        "HubSpot",
        "Salesforce",
        "Microsoft",
        "Monday.com",
    ]
    assert [text[m.start : m.end] for m in found] == [
        "SFDC",
        "Sales Cloud",
        "HubSpot CRM",  # the longer alias wins over the name "HubSpot"
        "salesforce.com",
        "Dynamics 365",
        "monday",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("salesforce and HUBSPOT", ["Salesforce", "HubSpot"]),
        ("Salesforce's pricing page", ["Salesforce"]),
        ("moving off Sales\n  Cloud soon", ["Salesforce"]),  # any whitespace between words
        ("(Salesforce) / [HubSpot]", ["Salesforce", "HubSpot"]),
        ("Salesforcer is not a product", []),  # whole words only
        ("the resalesforce team", []),
        ("Mondays are busy", []),
        ("SFDC2 migration", []),
    ],
)
def test_competitors_match_whole_words_case_insensitively(text: str, expected: list[str]) -> None:
    assert [m.term for m in COMPETITORS.find(text)] == expected


def test_an_empty_list_finds_nothing() -> None:
    assert NONE.find("Salesforce") == []
    assert len(NONE) == 0
    assert len(COMPETITORS) == 4


def test_list_is_cleaned() -> None:
    listed = CompetitorList(
        [Competitor("  Zoho   CRM ", ("zoho crm", "Zoho", "Zoho", "  Bigin  by Zoho "))]
    )
    assert listed.competitors == (Competitor("Zoho CRM", ("Zoho", "Bigin by Zoho")),)
    assert [m.term for m in listed.find("zoho, then Bigin by Zoho")] == ["Zoho CRM", "Zoho CRM"]


def test_a_large_list_compiles_and_matches() -> None:
    many = CompetitorList(
        Competitor(f"Vendor {i}", tuple(f"V{i}-{j}" for j in range(MAX_ALIASES)))
        for i in range(MAX_COMPETITORS)
    )
    assert [m.term for m in many.find("We compared v7-3 with Vendor 199 and Vendor 1999.")] == [
        "Vendor 7",
        "Vendor 199",
    ]


def violation_fields(competitors: list[Competitor], prefix: str = "") -> list[str]:
    with pytest.raises(InvalidArgumentError) as raised:
        CompetitorList(competitors, field_prefix=prefix)
    return [v.field for v in raised.value.violations]


def test_validation_names_every_bad_field() -> None:
    fields = violation_fields(
        [
            Competitor("  ", ("SFDC",)),
            Competitor("HubSpot", ("ok", "", "x" * 101)),
            Competitor("Pipedrive", ("sfdc", "!!")),
            Competitor("y" * 101),
        ]
    )
    assert fields == [
        "competitors[0].name",
        "competitors[1].aliases[1]",
        "competitors[1].aliases[2]",
        "competitors[2].aliases[0]",  # already an alias of competitors[0]
        "competitors[2].aliases[1]",
        "competitors[3].name",
    ]


def test_validation_of_counts_and_prefix() -> None:
    too_many = [Competitor(f"C{i}") for i in range(MAX_COMPETITORS + 1)]
    assert violation_fields(too_many) == ["competitors"]
    aliases = tuple(f"alias {j}" for j in range(MAX_ALIASES + 1))
    assert violation_fields([Competitor("Acme", aliases)], "settings.") == [
        "settings.competitors[0].aliases"
    ]
    with pytest.raises(InvalidArgumentError) as raised:
        CompetitorList([Competitor("Acme"), Competitor("ACME")])
    (violation,) = raised.value.violations
    assert violation.field == "competitors[1].name"
    assert "competitors[0]" in violation.description


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Can you send the updated quote?", ["quote"]),
        ("Is there any discount for a three-year term?", ["discount"]),
        ("Pricing for the enterprise tier, please.", ["pricing"]),
        ("Our budget for next year is fixed.", ["budget"]),
        ("The invoice was wrong again.", ["invoice"]),
        ("It is simply too expensive.", ["price objection"]),
        ("That is over our budget.", ["price objection"]),
        ("They charge $45 per seat.", ["amount", "per seat"]),
        ("The total was $12,000.", ["amount"]),
        ("Offer: EUR 900 or 1.200,50 \u20ac.", ["amount", "amount"]),
        ("Around 40k USD and US$3.5k for services.", ["amount", "amount"]),
        ("The dashboard loads fast and the team likes it.", []),
        ("We have 12 users in 3 regions.", []),
    ],
)
def test_pricing(text: str, expected: list[str]) -> None:
    assert terms(text, MentionKind.PRICING) == expected


def test_amount_spans_end_at_the_number() -> None:
    text = "The quote came to $12,000. Then EUR 450."
    assert spans(text, MentionKind.PRICING) == ["quote", "$12,000", "EUR 450"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We are not renewing.", ["not renewing"]),
        ("We won't be renewing the contract.", ["not renewing"]),
        ("We are not going to renew in March.", ["not renewing"]),
        ("We have decided not to renew.", ["not renewing"]),
        ("We want to cancel our subscription.", ["cancel"]),
        ("Please terminate the agreement at the end of the term.", ["terminate"]),
        ("What is your cancellation policy?", ["cancel"]),
        ("We're switching to Pipedrive next month.", ["switching"]),
        ("We are moving to another vendor.", []),
        ("We are switching to a different vendor.", ["switching"]),
        ("We are looking at other vendors.", ["looking elsewhere"]),
        ("We are not happy and will cancel.", ["cancel"]),
        ("No, we are cancelling.", ["cancel"]),
        # Negated
        ("We are not cancelling.", []),
        ("We have no plans to cancel our subscription.", []),
        ("We won't cancel, don't worry.", []),
        ("We are not looking at other vendors.", []),
        ("We never switched to Pipedrive.", []),
        # Scheduling, not churn
        ("Can we cancel tomorrow's call?", []),
        ("I had to cancel the demo with your team.", []),
        ("We are switching to annual billing.", []),
    ],
)
def test_churn_intent(text: str, expected: list[str]) -> None:
    assert terms(text, MentionKind.CHURN) == expected


def test_switching_to_a_competitor_covers_its_whole_name() -> None:
    text = "We're switching to Sales Cloud in Q3, and Ops is going with HubSpot."
    assert spans(text, MentionKind.CHURN, COMPETITORS) == [
        "switching to Sales Cloud",
        "going with HubSpot",
    ]
    assert spans("We will not be going with HubSpot.", MentionKind.CHURN, COMPETITORS) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I will escalate this to your manager.", ["escalate", "manager"]),
        ("Please put me through to a supervisor.", ["manager"]),
        ("This is unacceptable.", ["unacceptable"]),
        ("This is the third time I report it.", ["repeat contact"]),
        ("I have asked 4 times already.", ["repeat contact"]),
        ("We are still waiting for a fix.", ["still waiting"]),
        ("Still no response from anyone.", ["still waiting"]),
        ("No need to escalate, it works now.", []),
        ("Our account manager was very helpful.", []),
    ],
)
def test_escalation(text: str, expected: list[str]) -> None:
    assert terms(text, MentionKind.ESCALATION) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We will take legal action.", ["legal action"]),
        ("Our lawyers will be in touch.", ["lawyer"]),
        ("You will be hearing from our attorney.", ["lawyer"]),
        ("This is a breach of contract.", ["breach of contract"]),
        ("You breached the SLA twice.", ["breach of contract"]),
        ("We are prepared to sue you.", ["lawsuit"]),
        ("We will file a GDPR complaint.", ["regulator complaint"]),
        ("We complained to the ICO.", []),
        ("Our lawyers are reviewing the MSA this week.", []),
        ("Sue from finance will send the PO.", []),
        ("There was a data breach at another vendor.", []),
    ],
)
def test_legal_threats(text: str, expected: list[str]) -> None:
    assert terms(text, MentionKind.LEGAL) == expected


def test_mentions_are_ordered_spans_of_the_text() -> None:
    text = (
        "Subject: renewal\n\nSFDC quoted us $30k. Unless you match it we are not renewing, "
        "and frankly this is the third time we ask. Our lawyers will be in touch."
    )
    mentions = detect(text, COMPETITORS)
    assert mentions == sorted(mentions, key=lambda m: (m.start, m.end, m.kind))
    assert {m.kind for m in mentions} == set(MentionKind)
    assert Mention(MentionKind.COMPETITOR, "Salesforce", 18, 22) in mentions
    for mention in mentions:
        assert 0 <= mention.start < mention.end <= len(text)
    assert detect(text, COMPETITORS) == mentions  # deterministic


@pytest.mark.parametrize(
    ("text", "negated"),
    [
        ("we have no plans to cancel", True),
        ("we won't be cancelling", True),
        ("we won\u2019t be cancelling", True),
        ("we don't want to cancel", True),
        ("no, we cancel", False),
        ("we are not happy and will cancel", False),
        ("not that we ever said we would cancel", False),  # more than four words back
        ("we will cancel", False),
    ],
)
def test_negation_start(text: str, negated: bool) -> None:
    start = negation_start(text, text.rindex("cancel"))
    assert (start is not None) is negated
    if start is not None:
        assert text[start:].startswith(("no", "won", "don"))
