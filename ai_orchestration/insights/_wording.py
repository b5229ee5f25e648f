"""Deterministic titles and descriptions of insights, built from their facts alone.

This is the text a customer reads when no language model answers, and the yardstick for the
text one writes: plain sentences that state the figures the rule used and nothing else, so that
nothing in them can be wrong in a way the facts are not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, TypeAlias

FactValue: TypeAlias = str | int | float | bool
"""A figure an insight rests on; JSON-ready."""

Facts: TypeAlias = Mapping[str, FactValue]
_Words: TypeAlias = Callable[[Facts], tuple[str, str]]


def wording(code: str, facts: Facts) -> tuple[str, str]:
    """``(title, description)`` of the insight ``code`` with ``facts``.

    Raises ``ValueError`` for a code without wording and ``KeyError`` for a missing fact: both
    are bugs of the rule that built the facts, not inputs to word around.
    """
    words = _WORDING.get(code)
    if words is None:
        raise ValueError(f"no wording for insight code {code!r}")
    return words(facts)


def _int(facts: Facts, key: str) -> int:
    value = facts[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"fact {key!r} is not an integer: {value!r}")
    return value


def _num(facts: Facts, key: str) -> float:
    value = facts[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"fact {key!r} is not a number: {value!r}")
    return float(value)


def _str(facts: Facts, key: str) -> str:
    return str(facts[key])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _ago(days: int) -> str:
    return "today" if days == 0 else f"{_count(days, 'day')} ago"


def _window(name: str, points: int) -> str:
    """``last 30 days``; a message window by the messages it holds (``last 4 messages``, not
    the 6 it could hold)."""
    if name.endswith("_messages"):
        return f"last {_count(points, 'message')}"
    return name.replace("_", " ")


def _mentions(what: str) -> _Words:
    """Wording of a rule over mentions in the customer's messages."""

    def words(f: Facts) -> tuple[str, str]:
        return (
            "",
            f"The customer {what} in {_count(_int(f, 'interactions'), 'interaction')} in the "
            f"last {_int(f, 'lookback_days')} days ({_str(f, 'terms')}); the latest "
            f"{_ago(_int(f, 'days_since_latest'))}.",
        )

    return words


def _titled(title: str, words: _Words) -> _Words:
    return lambda f: (title, words(f)[1])


def _competitor(f: Facts) -> tuple[str, str]:
    return (
        f"Competitor mentioned: {_str(f, 'terms')}",
        _mentions("named a competitor")(f)[1],
    )


def _escalation(f: Facts) -> tuple[str, str]:
    legal = _int(f, "legal_threats")
    title = "Unresolved escalation" + (" with a legal threat" if legal else "")
    open_ = _int(f, "escalations")
    unanswered = _int(f, "unanswered")
    description = (
        f"{_count(open_, 'escalation')} from the customer ({_str(f, 'terms')}) "
        f"{'remains' if open_ == 1 else 'remain'} unresolved, "
        f"{unanswered} without any reply; the oldest was {_ago(_int(f, 'days_since_oldest'))}."
    )
    if legal:
        description += f" {_count(legal, 'message')} threatened legal action."
    return title, description


def _decline(f: Facts) -> tuple[str, str]:
    points = _int(f, "points")
    if _str(f, "window") == "baseline":
        return (
            "Sentiment below the customer's usual level",
            f"The last {_count(points, 'message')} average {_num(f, 'recent_mean'):+.2f} against "
            f"{_num(f, 'baseline_mean'):+.2f} over the "
            f"{_count(_int(f, 'baseline_points'), 'message')} before them, a drop of "
            f"{_num(f, 'drop'):.2f}.",
        )
    return (
        f"Sentiment declining over the {_window(_str(f, 'window'), points)}",
        f"The fitted sentiment changed by {_num(f, 'change'):+.2f} across "
        f"{_count(points, 'message')} ({_num(f, 'slope'):+.4f} per {_str(f, 'unit')}).",
    )


def _silence(f: Facts) -> tuple[str, str]:
    days = _int(f, "days_silent")
    direction = _str(f, "last_direction")
    what = _str(f, "last_kind") if direction == "unknown" else f"{direction} {_str(f, 'last_kind')}"
    article = "an" if what[:1] in "aeiou" else "a"
    return (
        f"No activity for {_count(days, 'day')}",
        f"The last interaction was {article} {what} {_ago(days)}; "
        f"{_int(f, 'silence_days')} days without one count as a risk.",
    )


def _unanswered(f: Facts) -> tuple[str, str]:
    sent = _int(f, "outbound")
    if "days_since_reply" in f:
        since = f"since the customer last spoke, {_ago(_int(f, 'days_since_reply'))}"
    else:
        since = "and the customer has not written at all"
    return (
        f"{_count(sent, 'outbound message')} without a reply",
        f"We sent {_count(sent, 'message')} {since}.",
    )


def _pricing(f: Facts) -> tuple[str, str]:
    return (
        "Pricing not discussed",
        f"Pricing has not come up in {_count(_int(f, 'interactions'), 'interaction')} over "
        f"{_count(_int(f, 'days_since_first'), 'day')}.",
    )


def _trend(f: Facts) -> tuple[str, str]:
    parts = []
    for window in _str(f, "windows").split(","):
        unit = "message" if window.endswith("_messages") else "day"
        points = _int(f, window + "_points")
        parts.append(
            f"{_window(window, points).capitalize()}: {_str(f, window + '_direction')} "
            f"({_num(f, window + '_slope'):+.4f} per {unit}, {_count(points, 'message')})."
        )
    return (
        f"Sentiment {_str(f, 'direction')} over the "
        f"{_window(_str(f, 'window'), _int(f, 'points'))}",
        " ".join(parts),
    )


def _action(title: str, lead: str) -> _Words:
    """An action's wording: what to do, then why, in the words of the insight behind it."""

    def words(f: Facts) -> tuple[str, str]:
        return title, f"{lead} {wording(_str(f, 'trigger'), f)[1]}"

    return words


_WORDING: Final[Mapping[str, _Words]] = {
    "churn_intent": _titled("Churn intent", _mentions("spoke of leaving")),
    "competitor_mentioned": _competitor,
    "unresolved_escalation": _escalation,
    "sentiment_decline": _decline,
    "no_recent_activity": _silence,
    "unanswered_outbound": _unanswered,
    "pricing_not_discussed": _pricing,
    "expansion": _titled("Expansion opportunity", _mentions("spoke of growing their use")),
    "upsell": _titled("Upsell opportunity", _mentions("showed interest in a higher plan")),
    "referral": _titled("Referral opportunity", _mentions("offered a referral or reference")),
    "sentiment_trend": _trend,
    "nba_escalate_legal": _action(
        "Escalate to the account manager and legal today",
        "Bring in the account manager and legal counsel today.",
    ),
    "nba_retention_call": _action(
        "Schedule a retention call", "Call the customer about what would make them stay."
    ),
    "nba_reply_escalation": _action(
        "Reply to the escalation", "Answer the open escalation and agree on the next step."
    ),
    "nba_competitive_comparison": _action(
        "Send a competitive comparison", "Send a comparison with the competitor named."
    ),
    "nba_address_decline": _action(
        "Ask the customer what changed", "Call the customer to find out what changed."
    ),
    "nba_check_in": _action("Check in with the customer", "Reach out with a check-in."),
    "nba_try_another_contact": _action(
        "Try another contact or channel", "Try another contact or a call instead of e-mail."
    ),
    "nba_propose_expansion": _action(
        "Propose a seat expansion", "Send a proposal for the additional seats or teams."
    ),
    "nba_present_upgrade": _action(
        "Present the higher plan", "Walk the customer through the plan or add-on they asked about."
    ),
    "nba_share_pricing": _action("Share pricing", "Share pricing before the deal goes further."),
    "nba_follow_up_referral": _action(
        "Follow up on the referral", "Thank the customer and follow up on the introduction."
    ),
}
