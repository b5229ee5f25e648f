"""A seeded generator of CRM interaction histories with planted facts, and of questions whose
answers are known: the evaluation set of retrieval and answers.

Why: no retrieval dataset with relevance labels ships in any package this service may install,
and a dataset of real customers could not be committed anyway. So each generated customer gets a
history of e-mails, calls, tickets, chats, notes and meetings: mostly everyday traffic
(scheduling, thanks, status updates, support back-and-forth), some of it deliberately close to a
planted fact (the contract is mentioned without its date, a competitor's name without the
evaluation), and a handful of *planted facts*, each stated in exactly one interaction: when the
contract renews, which competitor is being evaluated, how many seats are needed, the budget, who
signs off, which error an export fails with, which tool runs the data warehouse, where to meet.

Each fact comes with a question, worded two ways: with the fact's own words (full text finds it)
and in other words (``paraphrase``: "When is their renewal?" for "our contract renews on ...",
which only a dense model finds). Some answers are rare tokens (error codes, product names) that
full text finds and a dense model may miss. A retriever is right for a question when the planted
interaction is among the passages it returns.

Everything is drawn from ``random.Random(seed)``: the same seed gives the same set, byte for
byte, on every machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from ai_orchestration.insights._types import Direction, Interaction, InteractionKind

__all__ = [
    "EvaluationSet",
    "LabelledSnippet",
    "Question",
    "generate_evaluation_set",
    "generate_sentiment_snippets",
]

START: Final = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
"""When the first generated history begins."""

_FIRST: Final = [
    "Anna",
    "Maria",
    "Lars",
    "Priya",
    "Tom",
    "Sara",
    "Omar",
    "Eva",
    "Li",
    "Jonas",
    "Chloe",
    "Diego",
    "Mei",
    "Noah",
    "Aisha",
    "Ravi",
    "Lena",
    "Hugo",
    "Ines",
    "Kofi",
    "Yuki",
    "Elena",
    "Marco",
    "Nina",
    "Felix",
]
_LAST: Final = [
    "Berg",
    "Chen",
    "Patel",
    "Weber",
    "Lind",
    "Haddad",
    "Novak",
    "Wang",
    "Fischer",
    "Rossi",
    "Silva",
    "Kim",
    "Okafor",
    "Dubois",
    "Nowak",
    "Larsen",
    "Costa",
    "Ito",
    "Schmidt",
    "Moreau",
]
_COMPANY_A: Final = [
    "Nord",
    "Blue",
    "Acorn",
    "Stark",
    "Vandel",
    "Umbra",
    "Kessler",
    "Bright",
    "Orion",
    "Alder",
    "Granite",
]
_COMPANY_B: Final = [
    "wind",
    "works",
    "logistics",
    "systems",
    "foods",
    "health",
    "labs",
    "retail",
    "bank",
    "energy",
]
_COMPETITORS: Final = ("Salesforce", "HubSpot", "Pipedrive", "Zoho", "Freshworks", "Attio")
_TITLES: Final = ("CFO", "COO", "Head of Procurement", "VP Finance", "Managing Director")
_TEAMS: Final = ("support", "sales", "finance", "marketing", "operations", "engineering")
_TOOLS: Final = ("Snowflake", "BigQuery", "Redshift", "Databricks", "ClickHouse")
_CITIES: Final = ("Hamburg", "Lisbon", "Vienna", "Rotterdam", "Copenhagen", "Milan")
_EVENTS: Final = ("SaaS Summit", "Retail Expo", "Data Days", "Finance Forum")
_FEATURES: Final = ("invoice", "contact", "pipeline", "forecast", "ticket")
_MONTHS: Final = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


@dataclass(frozen=True, slots=True)
class Question:
    """A question about one customer whose answer is stated in one known interaction."""

    customer_id: str
    """Whose interactions answer it."""
    question: str
    """The question, in the fact's own words or in others (see ``paraphrase``)."""
    answer: str
    """The words of the answer, as they stand in the interaction."""
    interaction_id: str
    """The interaction that states the answer (the only one of the customer that does)."""
    fact: str
    """Which planted fact it asks for (``renewal``, ``competitor``, ...)."""
    paraphrase: bool
    """Whether the question avoids the fact's own key words."""


@dataclass(frozen=True, slots=True)
class EvaluationSet:
    """Generated histories and the questions about them."""

    interactions: tuple[Interaction, ...]
    """Every customer's history, oldest first per customer."""
    questions: tuple[Question, ...]
    """At least one question per planted fact, in both wordings."""


@dataclass(frozen=True, slots=True)
class _Fact:
    name: str
    sentence: str
    answer: str
    asked: str
    paraphrased: str


def _facts(rng: random.Random, signer: str) -> list[_Fact]:
    """The facts planted in one customer's history (``signer`` writes none of its messages)."""
    month, day = rng.choice(_MONTHS), rng.randint(1, 28)
    competitor = rng.choice(_COMPETITORS)
    seats, team = rng.randint(5, 120), rng.choice(_TEAMS)
    budget = f"{rng.randint(2, 90) * 5},000 euros"
    title = rng.choice(_TITLES)
    code = f"E{rng.randint(1000, 9999)}-{rng.choice('ABCDEFGHJK')}"
    feature, tool = rng.choice(_FEATURES), rng.choice(_TOOLS)
    city, event = rng.choice(_CITIES), rng.choice(_EVENTS)
    return [
        _Fact(
            "renewal",
            f"For planning on your side: our contract renews on {month} {day}.",
            f"{month} {day}",
            "On which date does the contract renew?",
            "When is their renewal due?",
        ),
        _Fact(
            "competitor",
            f"To be transparent, we are also evaluating {competitor} this quarter.",
            competitor,
            "Which other vendor is the customer evaluating?",
            "Are they looking at alternatives to us, and which one?",
        ),
        _Fact(
            "seats",
            f"We would need {seats} more seats for the {team} team after the reorganisation.",
            f"{seats} more seats",
            "How many more seats does the customer need?",
            "How much bigger will their licence have to be?",
        ),
        _Fact(
            "budget",
            f"Our budget for this project is {budget} for the whole year.",
            budget,
            "What is the customer's budget for the project?",
            "How much money can they spend this year?",
        ),
        _Fact(
            "signer",
            f"{signer}, our {title}, signs off on every purchase above that amount.",
            signer,
            "Who signs off on purchases at the customer?",
            "Whose approval do we need to close the deal?",
        ),
        _Fact(
            "error",
            f"The {feature} export keeps failing with error {code} since the last update.",
            code,
            f"Which error does the {feature} export fail with?",
            "What exactly goes wrong when they download their data?",
        ),
        _Fact(
            "warehouse",
            f"We load everything into {tool}, which is our data warehouse.",
            tool,
            "Which tool does the customer use as its data warehouse?",
            "Where does their analytics data end up?",
        ),
        _Fact(
            "meeting",
            f"Let us meet in person in {city} during the {event}.",
            city,
            "In which city does the customer want to meet?",
            "Where could we see them face to face?",
        ),
    ]


_FILLER: Final = (
    ("Scheduling", "Could we move our call to {day} afternoon? Something came up on my side."),
    ("Thanks", "Thanks for the quick help yesterday, the team is happy with the new dashboard."),
    ("Status update", "Quick update: the rollout to the {team} team went well, no issues so far."),
    ("Question", "How do I add a new user to the {team} workspace? I could not find the button."),
    ("Contract", "Please send me a copy of our current contract for the files, no rush."),
    ("Support", "The {feature} page loads slowly in the mornings. Is that a known issue?"),
    ("Follow-up", "Following up on our last meeting: the notes are attached, let me know."),
    ("Training", "Can you run another training session for the new people in {team}?"),
    ("Invoice", "Our accounting asks for the invoice address to be updated to the new office."),
    ("Feedback", "Overall we are satisfied, though the mobile app could be faster."),
    ("Vendors", "Our IT team keeps a list of all vendors; please fill in the attached form."),
    ("Reminder", "Friendly reminder that the quarterly review is on {day}."),
    ("Outage", "Was there an outage last night? Some of our reports were empty this morning."),
    ("Renewal process", "Who on your side handles contract questions in general?"),
    ("Workshop", "The workshop was useful; could we get the slides?"),
)
_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_KINDS: Final = tuple(InteractionKind)


def _customer(
    rng: random.Random, number: int, interactions: int
) -> tuple[list[Interaction], list[Question]]:
    customer_id = f"cust-{number:04d}"
    company = f"{rng.choice(_COMPANY_A)}{rng.choice(_COMPANY_B)}"
    names = rng.sample([f"{first} {last}" for first in _FIRST for last in _LAST], 4)
    people, signer = names[:3], names[3]
    facts = _facts(rng, signer)
    planted = rng.sample(range(interactions), len(facts))
    when = START + timedelta(days=rng.randint(0, 60))
    history: list[Interaction] = []
    questions: list[Question] = []
    for index in range(interactions):
        when += timedelta(days=rng.randint(1, 6), hours=rng.randint(0, 8))
        subject, body = rng.choice(_FILLER)
        body = body.format(
            day=rng.choice(_DAYS), team=rng.choice(_TEAMS), feature=rng.choice(_FEATURES)
        )
        interaction_id = f"{customer_id}-i{index:03d}"
        if index in planted:
            fact = facts[planted.index(index)]
            body = f"{body} {fact.sentence}"
            for wording, paraphrase in ((fact.asked, False), (fact.paraphrased, True)):
                questions.append(
                    Question(
                        customer_id, wording, fact.answer, interaction_id, fact.name, paraphrase
                    )
                )
        sender = rng.choice(people)
        history.append(
            Interaction(
                interaction_id=interaction_id,
                customer_id=customer_id,
                kind=rng.choice(_KINDS),
                direction=rng.choice((Direction.INBOUND, Direction.INBOUND, Direction.OUTBOUND)),
                occur_time=when,
                subject=f"{subject} ({company})",
                body=f"Hello,\n\n{body}\n\nBest regards,\n{sender}",
                participants=(sender,),
            )
        )
    return history, questions


def generate_evaluation_set(
    *, customers: int = 50, interactions: int = 30, seed: int = 20261206
) -> EvaluationSet:
    """``customers`` histories of ``interactions`` each (at least 8: one per planted fact), and
    two questions per planted fact."""
    if interactions < 8:
        raise ValueError("a history needs at least 8 interactions, one per planted fact")
    rng = random.Random(seed)
    all_interactions: list[Interaction] = []
    all_questions: list[Question] = []
    for number in range(customers):
        history, questions = _customer(rng, number, interactions)
        all_interactions += history
        all_questions += questions
    return EvaluationSet(tuple(all_interactions), tuple(all_questions))


@dataclass(frozen=True, slots=True)
class LabelledSnippet:
    """A CRM-style sentence and the sign of its sentiment, known by construction."""

    text: str
    polarity: int
    """-1 negative, 0 neutral, 1 positive."""


_SNIPPETS: Final[tuple[tuple[int, str], ...]] = (
    (-1, "We are not renewing our contract with you this year."),
    (-1, "We will not renew unless the {feature} export works by {day}."),
    (-1, "Please cancel our subscription at the end of the month."),
    (-1, "This is a blocker for the {team} team and we are still waiting for a fix."),
    (-1, "I want to speak to your manager about this ticket."),
    (-1, "Your pricing is too expensive for a company of our size."),
    (-1, "We are looking at other vendors because of the outages."),
    (-1, "Our lawyers will be in touch about the breach of contract."),
    (-1, "This is the third time I report the same bug, still no response."),
    (-1, "The {feature} page has been down since {day}, which is unacceptable."),
    (-1, "We are switching to {competitor} next quarter."),
    (-1, "The new release broke our {feature} reports again."),
    (1, "We are happy to expand to the {team} team next quarter."),
    (1, "Please add 20 more seats, the rollout went really well."),
    (1, "We would like to renew early for another two years."),
    (1, "The {feature} issue is no longer a problem, thanks for the quick fix."),
    (1, "Your support team was fantastic during the migration."),
    (1, "I have referred a colleague at another company to you."),
    (1, "The {team} team loves the new {feature} dashboard."),
    (1, "Great workshop, everyone found it useful."),
    (0, "Could we move our call to {day} afternoon?"),
    (0, "Please send the invoice to our new office address."),
    (0, "The quarterly review is scheduled for {day}."),
    (0, "Who on your side handles contract questions?"),
    (0, "Attached are the notes from the meeting on {day}."),
    (0, "We use the {feature} module mostly for monthly reporting."),
    (0, "The outage on {day} did not affect us."),
    (0, "This is not a blocker for us, just a question about the {feature} export."),
)


def generate_sentiment_snippets(
    *, count: int = 600, seed: int = 20261206
) -> tuple[LabelledSnippet, ...]:
    """``count`` CRM-style sentences with their sentiment sign: churn, outages, escalation,
    price objections and legal threats; expansion, praise, early renewal and referrals; and
    everyday admin, including negated complaints ("not a blocker"). The labels are known by
    construction, so the set measures what CRM wording does to a scorer, not a human's view of a
    free text."""
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        polarity, template = rng.choice(_SNIPPETS)
        text = template.format(
            day=rng.choice(_DAYS),
            team=rng.choice(_TEAMS),
            feature=rng.choice(_FEATURES),
            competitor=rng.choice(_COMPETITORS),
        )
        made.append(LabelledSnippet(text, polarity))
    return tuple(made)
