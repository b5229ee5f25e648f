"""A seeded, labelled set of short customer e-mails for measuring the single-interaction alert
rules: negative sentiment, churn intent, competitor mentions, and escalation by legal or
management language.

Why: no labelled set of CRM alerts ships in any package this service may install, and real
customer mail could not be committed. Each e-mail is a greeting, an optional line of context,
one core passage from a family of hand-written variants, and a sign-off. The core says what the
e-mail should raise, so the labels are known by construction; they state what a reader of the
e-mail would want flagged, not what the detectors happen to match. Negatives are everyday
mail and near misses: negated cancellations, pricing questions, a cancelled meeting, a lawyer
reviewing a contract, competitors the tenant did not list.

A calm notice ("we have decided not to renew") is bad news in a level voice: whether it also
deserves a negative-sentiment alert is a matter of taste, so such a case leaves that kind
:attr:`AlertCase.unscored`. Everything is drawn from ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ai_orchestration.insights._alert_settings import AlertKind

ALERT_CASE_COMPETITORS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "Salesforce": ("SFDC", "Sales Cloud"),
        "HubSpot": (),
        "Pipedrive": (),
        "Microsoft Dynamics": ("Dynamics 365",),
    }
)
"""The competitor list the cases are labelled against (``CompetitorList.from_mapping``)."""

_NEG, _CHURN = AlertKind.NEGATIVE_SENTIMENT, AlertKind.CHURN_RISK
_COMP, _ESC = AlertKind.COMPETITOR_MENTION, AlertKind.ESCALATION


@dataclass(frozen=True, slots=True)
class AlertCase:
    """One inbound customer e-mail and the alerts it should raise on its own."""

    subject: str
    body: str
    expected: frozenset[AlertKind]
    """The kinds a reader would want raised by this e-mail alone."""
    unscored: frozenset[AlertKind]
    """Kinds on which the case takes no position (negative sentiment of a calm notice of
    bad news); leave them out of precision and recall."""
    family: str
    """The template family (``polite``, ``churn``, ...), for reading the misses."""


# Tones of a core: "angry" also expects NEGATIVE_SENTIMENT, "calm" leaves it unscored, "plain"
# expects it absent.
_Core = tuple[frozenset[AlertKind], str, str]


def _cores(kinds: frozenset[AlertKind], tone: str, *texts: str) -> tuple[_Core, ...]:
    return tuple((kinds, tone, text) for text in texts)


_NONE: Final = frozenset[AlertKind]()
_POLITE: Final = _cores(
    _NONE,
    "plain",
    "Please issue the PO for the renewal by {day} so finance can process it.",
    "No problem, we can move the call to {day} afternoon.",
    "The missing {feature} field is not a blocker for us, we can wait for the next release.",
    "We will not cancel our subscription; the {team} team is happy with the product.",
    "To be clear, we have no plans to cancel. We only want to understand the new price list.",
    "Could you send a quote for {n} more seats?",
    "What would the Enterprise plan cost per seat for {n} users?",
    "Thanks for the quick fix, the {feature} export works again.",
    "I need to cancel our call on {day}, could we move it to next week?",
    "We compared you with {other} last year and chose you for the {feature} module.",
    "We are not switching to {other}; the team prefers your {feature} reports.",
    "Please invoice us annually instead of monthly from {month}.",
    "Attached is the signed order form for the renewal.",
    "Can we schedule a training session for the {team} team on {day}?",
    "Our lawyers are reviewing the MSA and will send their comments by {day}.",
    "The {feature} issue from last week is no longer a problem, thanks for the help.",
    "Is there a discount if we pay two years upfront?",
    "Sorry for the late reply, I was out of office last week.",
    "The new {feature} dashboard looks great, the {team} team loves it.",
    "We would like to add {n} more seats for the {team} team.",
    "Can you confirm that the data migration is still planned for {day}?",
    "I was wondering whether you offer a discount for nonprofits.",
    "We would be happy to be a reference customer.",
    "Our {title} approved the budget for next year, so we can go ahead.",
    "Could you explain the difference between the Pro and Enterprise plans?",
    "We won't need the extra sandbox after {month}, please leave it off the next invoice.",
    "We never had any problems with the {feature} module.",
    "No complaints so far, the rollout is going well.",
    "We use {other} for invoicing; is there an integration with it?",
    "Our contract renews in {month}. Please send the paperwork to our {title}.",
    "Great workshop yesterday, everyone found it useful.",
    "Could you add {rep2} from the {team} team as an admin?",
    "There is no rush on the {feature} request, whenever it fits your roadmap.",
    "We are not going anywhere, we just need the price for {n} additional licences.",
    "Thank you for your patience with our procurement process, the PO is on its way.",
    "How much would it cost to add the {feature} add-on for the {team} team?",
    "We are not looking at other vendors, we just need the renewal quote.",
    # Near misses the detectors are known to take at their word.
    "Please cancel the duplicate invoice #{ticket}; we already paid the original.",
    "Please pass our thanks to your manager for the smooth rollout.",
    "Nobody here is talking about cancelling, we just need the renewal quote.",
)
_ANGRY: Final = _cores(
    frozenset({_NEG}),
    "angry",
    "The {feature} export failed again this morning and my team lost a full day of work. "
    "I am really disappointed.",
    "Your latest release broke our {feature} reports and nobody told us. "
    "This is a terrible experience.",
    "We are very frustrated: the app has been extremely slow all week and our sales team "
    "cannot work.",
    "Honestly, the onboarding has been a mess. Nothing works as promised and we feel misled.",
    "I am angry that our invoice was wrong for the second month in a row. This is sloppy.",
    "The answer from support was useless and rude. We expected much better from you.",
    "Data from the {feature} import is missing and corrupted. This is a disaster for the "
    "{team} team.",
    "Awful week. The integration crashed twice and we had to redo everything by hand.",
    "I'm disappointed and annoyed: the {feature} dashboard shows wrong numbers and our "
    "{title} noticed.",
    "The mobile app keeps crashing and my reps hate it.",
    "We are extremely unhappy with how the migration was handled.",
    "This update made everything worse. The {feature} page is broken and confusing.",
    "What a waste of time. The {feature} sync deleted our notes and the team is furious.",
)
_CHURN_CALM: Final = _cores(
    frozenset({_CHURN}),
    "calm",
    "After a long review we have decided not to renew our contract when it ends in {month}.",
    "Please cancel our subscription at the end of the current term.",
    "We will be terminating the agreement as of {month} 1st; please confirm the next steps.",
    "We are moving to another provider next quarter and need an export of our data.",
    "Our board asked us to look at other vendors before the renewal in {month}.",
    "We are evaluating alternative solutions and will most likely not renew.",
    "I am writing to give notice of cancellation of our {n} licences.",
    "We do not plan to renew, the budget for next year was cut.",
    "Could you tell us how to close our account? We are switching to a different platform.",
    "Unfortunately we won't be renewing in {month}.",
)
_CHURN_ANGRY: Final = _cores(
    frozenset({_CHURN, _NEG}),
    "angry",
    "We are fed up with the outages and will cancel our subscription at the end of the month.",
    "After three terrible months we are done: we will not renew in {month}.",
    "The product keeps failing us. We are shopping around and will leave at renewal.",
    "Frankly this has been a disaster, and we are terminating the contract.",
)
_COMPETITOR: Final = _cores(
    frozenset({_COMP}),
    "plain",
    "We currently use {comp} for marketing emails; can your CRM sync with it?",
    "Our {title} asked how your forecasting compares with {comp}.",
    "{comp} sent us a proposal last week, could you send yours by {day}?",
    "Some of our reps used {comp} at their old company and miss its mobile app.",
    "Do you have a migration guide for customers coming from {comp}?",
    "We are comparing your offer with {comp} for the {team} team.",
    "{comp} offered us a {pct}% discount, can you match it?",
    "The {team} team still keeps a few contacts in {comp}; can we import them?",
)
_COMPETITOR_CHURN: Final = _cores(
    frozenset({_COMP, _CHURN}),
    "calm",
    "We have decided to move to {comp} when our contract ends in {month}.",
    "Our {team} team will be switching to {comp} next quarter.",
    "We are going with {comp} for the new region, so we will not renew there.",
) + _cores(
    frozenset({_COMP, _CHURN, _NEG}),
    "angry",
    "We are sick of the bugs and are switching to {comp} in {month}.",
)
_ESCALATION: Final = _cores(
    frozenset({_ESC}),
    "calm",
    "I would like to speak to your manager about ticket #{ticket}.",
    "Please escalate this to your head of support, we need an answer by {day}.",
    "This is the third time I am reporting the same {feature} bug.",
    "I am escalating this to our account executive and to your management.",
    "Can someone more senior call me today? The {team} team has been blocked since {day}.",
    "We are still waiting for a reply on ticket #{ticket}.",
    "If the data is not restored by {day}, our lawyers will contact you.",
    "The outage is a breach of the SLA and we are considering legal action.",
    "We will file a GDPR complaint with the regulator if our data is not deleted.",
    "Our legal counsel will be in touch regarding the breach of contract.",
    "Unless the overcharges are refunded by {day}, we will sue.",
    "We reserve the right to take this matter to court.",
    "I expect a call from your head of customer success today.",
) + _cores(
    frozenset({_ESC, _NEG}),
    "angry",
    "We have been waiting two weeks for a fix and this is unacceptable.",
    "I have written to you several times already and nobody answers. Get me your supervisor.",
    "This is a disgrace. Our lawyers will be in touch about the lost data.",
)
_FAMILIES: Final[tuple[tuple[str, tuple[_Core, ...]], ...]] = (
    ("negative_sentiment", _ANGRY),
    ("churn", _CHURN_CALM + _CHURN_ANGRY),
    ("competitor", _COMPETITOR + _COMPETITOR_CHURN),
    ("escalation", _ESCALATION),
)

_GREETINGS: Final = ("Hi {rep},", "Hello {rep},", "Dear {rep},", "Hi team,", "Hi,", "")
_CONTEXT: Final = (
    "",
    "",
    "I am writing about our account.",
    "Following up on ticket #{ticket}.",
    "Quick note from the {team} team.",
    "I am writing about the {feature} module.",
)
_SIGN_OFFS: Final = ("Thanks,", "Best regards,", "Kind regards,", "Regards,", "Cheers,", "Best,")
_SUBJECTS: Final = (
    "Re: ticket #{ticket}",
    "Our account",
    "Question",
    "{feature}",
    "Follow-up",
    "Contract and licences",
    "Re: {feature} module",
    "",
)
_SLOTS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
        "month": ("January", "March", "April", "June", "September", "November"),
        "team": ("support", "sales", "finance", "marketing", "operations"),
        "feature": ("export", "reporting", "calendar sync", "forecast", "email", "billing"),
        "title": ("CFO", "COO", "head of sales", "VP Finance", "managing director"),
        "other": ("Zoho", "Freshworks", "Attio", "Copper", "Insightly"),
        "comp": (
            "Salesforce",
            "SFDC",
            "Sales Cloud",
            "salesforce",
            "HubSpot",
            "Hubspot",
            "Pipedrive",
            "Dynamics 365",
            "Microsoft Dynamics",
        ),
        "rep": ("Anna", "Lars", "Priya", "Tom", "Omar", "Mei", "Diego"),
        "rep2": ("Sara Lind", "Kofi Okafor", "Ines Costa", "Yuki Ito"),
        "name": ("Eva Weber", "Noah Kim", "Lena Rossi", "Ravi Patel", "Hugo Dubois"),
        "pct": ("10", "15", "20", "25"),
        "n": ("5", "10", "12", "25", "40"),
        "ticket": ("4411", "5521", "60817", "7302", "88190"),
    }
)


def generate_alert_cases(*, seed: int = 20251218, count: int = 500) -> list[AlertCase]:
    """``count`` labelled e-mails: two fifths polite or neutral negatives (the remainder of the
    split too), the rest split evenly between angry complaints, churn notices, competitor
    mentions and escalations. The default gives 200 negatives and at least 75 positives of each
    kind. The same seed gives the same cases on every machine."""
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(seed)
    per_family = (count - count * 2 // 5) // len(_FAMILIES)
    plan = [("polite", _POLITE)] * (count - per_family * len(_FAMILIES))
    for family in _FAMILIES:
        plan += [family] * per_family
    return [_case(rng, family, cores) for family, cores in plan]


def _case(rng: random.Random, family: str, cores: tuple[_Core, ...]) -> AlertCase:
    kinds, tone, core = rng.choice(cores)
    slots = {name: rng.choice(values) for name, values in _SLOTS.items()}
    lines = [
        rng.choice(_GREETINGS),
        " ".join(part for part in (rng.choice(_CONTEXT), core) if part),
        f"{rng.choice(_SIGN_OFFS)}\n{{name}}",
    ]
    body = "\n\n".join(line for line in lines if line).format(**slots)
    expected = kinds | {_NEG} if tone == "angry" else kinds
    unscored = frozenset({_NEG}) if tone == "calm" else frozenset[AlertKind]()
    return AlertCase(
        subject=rng.choice(_SUBJECTS).format(**slots),
        body=body,
        expected=frozenset(expected),
        unscored=unscored,
        family=family,
    )
