"""The words of opportunity: expansion, upsell and referral, as regular-expression sources.

Kept apart from :mod:`._detectors` so that the vocabulary of buying more can grow without
crowding the risk rules. Each entry is ``(term, pattern)``; the detectors match them
case-insensitively and word-bounded, cancel a match negated just before it in the same clause
("we will not add seats"), and cancel one whose sentence declines or defers it
(:func:`declined`), because a polite refusal rarely negates the words that name the offer.
"""

from __future__ import annotations

import re
from typing import Final

# Seats and licences are only ever bought; users, logins and accounts are also what support
# questions are about ("how do I add users?"), so they need a count or "more" to mean growth.
_SEATS: Final[str] = r"(?:seats?|licen[cs]es?)"
_USERS: Final[str] = r"(?:users?|logins?|accounts?|agents?)"
_COUNT: Final[str] = (
    r"(?:another|an?\s+(?:extra|additional)|\d[\d,]*|a\s+few|some|several"
    r"|ten|twenty|thirty|forty|fifty|a\s+hundred)"
)
_ACQUIRE: Final[str] = (
    r"(?:add(?:s|ed|ing)?|buy(?:s|ing)?|bought|purchas(?:e|es|ed|ing)|order(?:s|ed|ing)?"
    r"|need(?:s|ed|ing)?|want(?:s|ed|ing)?|requir(?:e|es|ed|ing)|request(?:s|ed|ing)?"
    r"|provision(?:s|ed|ing)?|like|get(?:s|ting)?)"
)
_GROUPS: Final[str] = (
    r"(?:teams?|regions?|departments?|divisions?|business\s+units?|subsidiar(?:y|ies)"
    r"|offices?|sites?|countr(?:y|ies)|markets?|locations?)"
)
_HIGHER: Final[str] = (
    r"(?:higher|bigger|larger|next|top|premium|enterprise|pro|professional|business|advanced"
    r"|ultimate|plus|platinum|gold|unlimited)"
)
# No "version": "upgrade to version 5" is software, not a plan.
_OFFER: Final[str] = r"(?:plan|tier|edition|package|subscription|level)s?"
# A higher tier named without interest ("we are on the enterprise plan") is a fact, not an
# opportunity, so tiers count only after words of wanting, asking or weighing.
_INTEREST: Final[str] = (
    r"(?:interested\s+in|consider(?:ing)?|look(?:ing)?\s+(?:at|into)|explor(?:e|ing)"
    r"|evaluat(?:e|ing)|mov(?:e|ing)\s+(?:up\s+)?to|go(?:ing)?\s+for"
    r"|(?:want|need|like)s?(?:\s+to\s+(?:try|get|have|add|buy|move\s+to))?"
    r"|pric(?:e|es|ing)\s+(?:for|of|on)|quote\s+(?:for|on)"
    r"|(?:info(?:rmation)?|details)\s+(?:on|about)|(?:trial|demo)\s+of"
    r"|add(?:ing)?|buy(?:ing)?|purchas(?:e|ing)|get(?:ting)?|access\s+to)"
)
# Whom a customer refers: people and companies, not an internal team ("put you in touch with
# our billing team" is a hand-over).
_PEOPLE: Final[str] = (
    r"(?:colleagues?|friends?|contacts?|peers?|partners?|compan(?:y|ies)|firms?|businesses"
    r"|organi[sz]ations?|customers?|clients?|founders?|people|anyone|everyone|others"
    r"|teams?\s+at\s+\w+|(?:cto|ceo|cfo|coo|cio|vp|head)s?\s+(?:at|of)\s+\w+)"
)
_WHO: Final[str] = (
    r"(?:(?:a|an|my|our|some|two|three|a\s+few|several|\d+|another|other|more)\s+)?"
    rf"(?:\w+\s+){{0,2}}?{_PEOPLE}"
)

EXPANSION_TERMS: Final[tuple[tuple[str, str], ...]] = (
    (
        "more seats",
        rf"{_ACQUIRE}\s+(?:{_COUNT}\s+)?(?:(?:more|extra|additional|new)\s+)?{_SEATS}"
        rf"|{_ACQUIRE}\s+(?:{_COUNT}\s+)?(?:more|extra|additional)\s+{_USERS}"
        rf"|{_ACQUIRE}\s+{_COUNT}\s+(?:new\s+)?{_USERS}"
        rf"|for\s+(?:{_COUNT}\s+)?(?:more|extra|additional)\s+(?:{_SEATS}|{_USERS})"
        r"|(?:increas|rais|grow|expand|bump|doubl|tripl)\w*\s+(?:(?:our|the|my)\s+)?"
        r"(?:seat|licen[cs]e|user)(?:s|\s+(?:count|number|total|limit|cap)s?)",
    ),
    (
        # Intent only: "the rollout to finance went well" reports seats already sold. And
        # "roll out the fix to production" is a release: one word at most between the verbs.
        "roll out",
        r"roll(?:ing)?\s+(?:\w+\s+)?out\s+(?:to|across)"
        r"|extend(?:s|ed|ing)?\s+(?:(?:it|this|the\s+\w+|our\s+\w+)\s+)?to\s+"
        rf"(?:the|our|another|a\s+new|other|more|all)\s+(?:\w+\s+)?{_GROUPS}",
    ),
    (
        "new team",
        r"(?:onboard(?:s|ed|ing)?|add(?:s|ed|ing)?|open(?:s|ed|ing)?|launch(?:es|ed|ing)?\s+in"
        r"|bring(?:s|ing)?\s+(?:on|in)|brought\s+(?:on|in))\s+"
        r"(?:another|a\s+(?:second|third|new)|(?:two|three|four|five|\d+)\s+"
        rf"(?:more|new|additional)|more|additional|new)\s+{_GROUPS}",
    ),
    (
        "expansion",
        r"expansion"
        r"|expand(?:s|ed|ing)?\s+(?:(?:it|this|usage|the\s+\w+|our\s+\w+)\s+)?(?:to|into|across)"
        r"|expand(?:s|ed|ing)?\s+(?:our|the)\s+(?:usage|footprint|deployment|subscription"
        r"|account|contract|rollout|plan)",
    ),
    (
        "growth",
        r"(?:headcount|team|company|business|usage|user\s+base|workforce)\s+"
        r"(?:is\s+|has\s+|will\s+|keeps\s+)?(?:(?:been|be)\s+)?"
        r"(?:grow(?:s|ing|n)?|doubl(?:e|es|ed|ing)|tripl(?:e|es|ed|ing))"
        r"|hiring\s+(?:\d+|a\s+few|several|many|more|another|dozens\s+of)\s+(?:(?:new|more)\s+)?"
        r"(?:\w+\s+)?(?:people|reps|agents|engineers|staff|employees|salespeople|hires"
        r"|developers|consultants)",
    ),
)
"""More seats, licences or users; a new team, office or region; rolling out further; growth."""

UPSELL_TERMS: Final[tuple[tuple[str, str], ...]] = (
    (
        "upgrade",
        r"upgrad(?:e|es|ed|ing)\s+(?:(?:us|it|our\s+(?:\w+\s+)?(?:account|"
        rf"{_OFFER})|the\s+(?:account|{_OFFER}))\s+)?to\s+(?:(?:the|a|an|your)\s+)?{_HIGHER}\b"
        rf"(?:\s+{_OFFER})?"
        rf"|upgrad(?:e|es|ed|ing)\s+(?:our|the|my)\s+(?:\w+\s+)?(?:{_OFFER}|account|contract)"
        # "Looking to upgrade soon": an upgrade with no object is one of the plan.
        r"|(?:happy|glad|keen|ready|planning|plan|want|wants|would\s+like|looking|thinking\s+about"
        r"|considering|interested\s+in)\s+(?:to\s+)?upgrad(?:e|ing)"
        r"(?=\s*(?:[.!?,;\n]|\Z)|\s+(?:soon|next|this|now|early|in|before|once|as|when)\b)",
    ),
    (
        "higher tier",
        rf"{_INTEREST}\s+(?:(?:the|a|an|your)\s+)?(?:{_HIGHER}\s+{_OFFER}"
        r"|(?:premium|enterprise|advanced)\s+(?:features?|support|modules?|analytics|options?)"
        r"|(?:\w+\s+)?add-?ons?)",
    ),
)
"""Interest in a higher plan or tier, an add-on, premium or enterprise features."""

REFERRAL_TERMS: Final[tuple[tuple[str, str], ...]] = (
    (
        "introduction",
        rf"introduc(?:e|es|ed|ing)\s+(?:you|your\s+team|you\s+guys)\s+to\s+{_WHO}"
        rf"|introduc(?:e|es|ed|ing)\s+{_WHO}\s+to\s+you"
        rf"|(?:put\s+you\s+in\s+touch|connect\s+you)\s+with\s+{_WHO}",
    ),
    (
        "referral",
        rf"referrals?|refer(?:s|red|ring)?\s+(?:you\s+to\s+)?{_WHO}"
        r"|recommend(?:s|ed|ing)?\s+(?:you|your\s+(?:product|platform|service|team|company"
        rf"|tool))\s+to\s+{_WHO}",
    ),
    (
        "reference",
        r"(?:be|act\s+as|serve\s+as)\s+(?:a\s+)?(?:reference|referenceable)"
        r"(?:\s+(?:customer|account|site|call))?"
        r"|reference\s+(?:customer|call|account)s?|case\s+stud(?:y|ies)|testimonials?",
    ),
)
"""An introduction or referral to a colleague or another company, a reference, a case study."""

_DECLINED = re.compile(
    r"\b(?:rather\s+not|declin(?:e|es|ed|ing)|no\s+thanks|not\s+(?:right\s+)?now|not\s+yet"
    r"|not\s+(?:at\s+)?this\s+(?:time|year|quarter|stage|point)|not\s+for\s+now|pass\s+on"
    r"|hold\s+off|on\s+hold|postpon\w*|shelv\w*|paus(?:e|ed|ing)|not\s+interested"
    r"|not\s+in\s+a\s+position|freez\w*|frozen)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?\n]")


def declined(text: str, start: int, end: int) -> bool:
    """Whether the sentence around ``text[start:end]`` declines or defers what it names.

    "Thanks for the offer of more seats, but not right now" and "the expansion is on hold" name
    an opportunity while turning it down, with the refusal after the words or far before them.
    """
    before = max(text.rfind(stop, 0, start) for stop in ".!?\n")
    after = _SENTENCE_END.search(text, end)
    return _DECLINED.search(text, before + 1, after.start() if after else len(text)) is not None
