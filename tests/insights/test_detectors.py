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
        ("We are moving to another vendor.", ["switching"]),
        ("We are migrating to a different platform in May.", ["switching"]),
        ("We are going with a different provider.", ["switching"]),
        ("We are switching to a different vendor.", ["switching"]),
        ("We are looking at other vendors.", ["looking elsewhere"]),
        ("We are not happy and will cancel.", ["cancel"]),
        ("Please cancel our subscription at the end of the term.", ["cancel"]),
        ("This is notice of cancellation of our 12 licences.", ["cancel"]),
        ("We will be terminating as of June 1st.", ["terminate"]),
        ("No, we are cancelling.", ["cancel"]),
        # Negated
        ("We are not cancelling.", []),
        ("We have no plans to cancel our subscription.", []),
        ("We won't cancel, don't worry.", []),
        ("We are not looking at other vendors.", []),
        ("We never switched to Pipedrive.", []),
        ("We are not moving to another provider.", []),
        ("Nobody here is talking about cancelling.", []),  # a negative subject
        ("None of us wants to terminate the contract.", []),
        # Ending a document, an order or a session is housekeeping, not churn
        ("Please cancel the duplicate invoice #4411.", []),
        ("Could you cancel my last order?", []),
        ("Please terminate the session for that user.", []),
        ("We will cancel our account review meeting.", []),
        ("We are moving to Berlin next month.", []),  # a place, not a vendor
        # Scheduling, not churn
        ("Can we cancel tomorrow's call?", []),
        ("I had to cancel the demo with your team.", []),
        ("We are switching to annual billing.", []),
    ],
)
def test_churn_intent(text: str, expected: list[str]) -> None:
    assert terms(text, MentionKind.CHURN) == expected


def test_a_cancellation_cites_what_ends() -> None:
    text = "Please cancel our subscription and the duplicate invoice."
    assert spans(text, MentionKind.CHURN) == ["cancel our subscription"]


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
        ("Nobody answers our e-mails.", ["still waiting"]),
        ("We have been waiting two weeks for a fix.", ["still waiting"]),
        ("Get me your supervisor.", ["manager"]),
        ("I expect a call from your head of customer success today.", ["manager"]),
        ("Please loop in your manager.", ["manager"]),
        ("No need to escalate, it works now.", []),
        ("Our account manager was very helpful.", []),
        # A manager named without a request to reach them
        ("Please pass our thanks to your manager for the smooth rollout.", []),
        ("We had a good call with your manager, thanks.", []),
        ("Your head of support sent the notes.", []),
        ("No need to involve your manager.", []),
        ("We will be waiting two weeks before the rollout.", []),
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
        ("We reserve the right to take this matter to court.", ["legal action"]),
        ("We will bring your company to court.", ["legal action"]),
        ("Lunch is at the food court.", []),
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
    risks = set(MentionKind) - {MentionKind.EXPANSION, MentionKind.UPSELL, MentionKind.REFERRAL}
    assert {m.kind for m in mentions} == risks
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
        ("nobody here is talking about cancelling", True),  # a subject reaches seven words
        ("none of us wants to cancel", True),
        ("nobody answered, so we cancel", False),
        ("if nobody fixes it we will cancel", False),  # a new subject, a new clause
    ],
)
def test_negation_start(text: str, negated: bool) -> None:
    start = negation_start(text, text.rindex("cancel"))
    assert (start is not None) is negated
    if start is not None:
        assert text[start:].startswith(("no", "won", "don"))  # "nobody", "none" too


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We would like to add 25 more seats for the Berlin office.", ["add 25 more seats"]),
        ("We will add seats next month.", ["add seats"]),
        ("We would need 40 more seats after the reorganisation.", ["need 40 more seats"]),
        ("Could you send a quote for 50 additional licences?", ["for 50 additional licences"]),
        ("We want to increase our seat count to 300.", ["increase our seat count"]),
        ("We plan to roll it out to the marketing team in Q3.", ["roll it out to"]),
        ("We are happy to expand to the support team next quarter.", ["expand to"]),
        ("We're onboarding another team in Singapore.", ["onboarding another team"]),
        (
            "Our headcount is growing and we are hiring 20 more reps.",
            ["headcount is growing", "hiring 20 more reps"],
        ),
        # Negated or declined
        ("We will not add seats.", []),
        ("We won't need more seats this year.", []),
        ("Thanks, but we don't need more licences right now.", []),
        ("Thanks for the offer of more seats, but not right now.", []),
        ("We have no plans to roll it out to other teams.", []),
        ("The expansion is on hold until the budget is approved.", []),
        # Not growth
        ("We have 12 users in 3 regions.", []),
        ("How do I add users to a group?", []),
        ("More users are complaining about the login page.", []),
        ("Please send the invoice to our new office address.", []),
        ("The rollout to the finance team went well.", []),
        ("We will roll out the fix to production tonight.", []),
    ],
)
def test_expansion(text: str, expected: list[str]) -> None:
    assert spans(text, MentionKind.EXPANSION) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We are interested in the Enterprise plan.", ["interested in the Enterprise plan"]),
        ("We'd like to upgrade to the premium tier.", ["upgrade to the premium tier"]),
        ("Can we get pricing for the analytics add-on?", ["pricing for the analytics add-on"]),
        ("We are looking to upgrade soon.", ["looking to upgrade"]),
        ("Could we upgrade our plan before the renewal?", ["upgrade our plan"]),
        # Negated or declined
        ("We are not interested in the enterprise plan.", []),
        ("We do not need the premium support.", []),
        ("Thanks, we will hold off on the upgrade to Enterprise.", []),
        # Not an upsell
        ("We are on the enterprise plan already.", []),
        ("We upgraded the Outlook plugin to version 5.", []),
        ("Please upgrade the firmware.", []),
    ],
)
def test_upsell(text: str, expected: list[str]) -> None:
    assert spans(text, MentionKind.UPSELL) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'd be happy to introduce you to a friend at Northwind.", ["introduce you to a friend"]),
        ("I have referred a colleague at another company to you.", ["referred a colleague"]),
        ("Happy to be a reference for other customers.", ["be a reference"]),
        ("We'd love to do a case study with you.", ["case study"]),
        ("I would recommend you to anyone.", ["recommend you to anyone"]),
        # Negated or declined
        ("I would not recommend you to anyone.", []),
        ("We can't be a reference at this time.", []),
        ("We'd rather not do a case study.", []),
        # Not a referral
        ("Please refer to the attached ticket.", []),
        ("I'll put you in touch with our billing team.", []),
    ],
)
def test_referral(text: str, expected: list[str]) -> None:
    assert spans(text, MentionKind.REFERRAL) == expected


def test_a_declined_opportunity_leaves_the_next_sentence_alone() -> None:
    text = "The case study is not for now. We want to add 30 more seats in May."
    assert spans(text, MentionKind.REFERRAL) == []
    assert spans(text, MentionKind.EXPANSION) == ["add 30 more seats"]
