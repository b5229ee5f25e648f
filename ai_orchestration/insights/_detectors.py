"""Deterministic detectors: competitors, pricing, churn intent, escalation, legal threats, and
the opportunities of expansion, upsell and referral.

Alerts and insights are decided by rules over these mentions, so each rule is a readable regular
expression with a span, not a model: a reviewer can see why an interaction was flagged and quote
the words that flagged it. Churn, escalation and the opportunities look a few words back for a
negation in the same clause ("we are not cancelling" is reassurance, not churn intent). An
opportunity is also dropped when its sentence declines or defers it ("thanks for the offer of
more seats, but not right now"): polite refusals rarely negate the words that name the offer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from ai_orchestration.errors import FieldViolation, InvalidArgumentError
from ai_orchestration.insights._opportunity_terms import (
    EXPANSION_TERMS,
    REFERRAL_TERMS,
    UPSELL_TERMS,
    declined,
)
from ai_orchestration.insights._types import Competitor, Mention, MentionKind

MAX_COMPETITORS: Final[int] = 200
"""Competitors per tenant."""
MAX_ALIASES: Final[int] = 20
"""Aliases per competitor."""
MAX_NAME_CHARS: Final[int] = 100
"""Characters of a name or an alias."""

# Phrase patterns the sentiment rules share, so that "what counts as not renewing" has one
# definition. Sources, not compiled: each user wraps them in its own word boundaries.
NOT_RENEWING: Final[str] = (
    r"(?:not|never|\w+n['\u2019]t|wont|dont|arent)\s+(?:be\s+|going\s+to\s+)?renew(?:ing)?"
    r"|will\s+not\s+(?:be\s+)?renew(?:ing)?"
    r"|(?:do\s+not|don['\u2019]?t)\s+(?:plan|intend|want)\s+to\s+renew"
    r"|decided\s+(?:not\s+to\s+renew|against\s+renewing)"
    r"|no\s+(?:plans?|intention)\s+(?:to\s+renew|of\s+renewing)"
)
LOOKING_ELSEWHERE: Final[str] = (
    r"look(?:ing)?\s+(?:at|for|into)\s+(?:other|alternative|different|new)\s+"
    r"(?:vendors?|options|tools?|solutions?|providers?|platforms?|suppliers?|products?)"
    r"|look(?:ing)?\s+for\s+alternatives|evaluating\s+(?:other|alternative)\s+\w+"
    r"|shopping\s+around"
)
PRICE_OBJECTION: Final[str] = (
    r"too\s+(?:expensive|pricey|costly|much\s+money)"
    r"|(?:over|out\s+of|exceeds?|beyond)\s+(?:our\s+|the\s+)?budget"
    r"|can(?:not|['\u2019]?t)\s+afford"
)
STILL_WAITING: Final[str] = (
    r"still\s+(?:waiting|not\s+(?:fixed|resolved|working)|broken|down|failing"
    r"|no\s+(?:response|reply|answer|update|fix))"
    r"|(?:no\s+one|nobody)\s+(?:has\s+|ever\s+)?(?:respond|repl|answer|gets?\s+back|got(?:ten)?\s+back)\w*"
    r"|(?:haven['\u2019]?t|have\s+not)\s+heard\s+back"
    # How long one has been waiting is a grievance ("we have been waiting two weeks for a fix").
    r"|been\s+waiting\s+(?:for\s+)?(?:over\s+|more\s+than\s+|almost\s+|nearly\s+)?"
    r"(?:a|an|two|three|four|five|six|several|many|\d+)\s+(?:hour|day|week|month)s?"
)
CONTRACT: Final[str] = (
    r"(?:contract|subscription|account|plan|licen[cs]e|seat|service|agreement|renewal"
    r"|membership)s?"
)
MEETING: Final[str] = (
    r"(?:meeting|call|demo|appointment|session|webinar|invite|invitation|training|workshop"
    r"|lunch|visit|sync|interview)s?"
)
_LEGAL_TERMS: Final[tuple[tuple[str, str], ...]] = (
    (
        "legal action",
        r"legal\s+(?:action|steps|proceedings|recourse)|court\s+action|litigation"
        # Whatever is taken to court ("this matter", "your company"): the threat is the court.
        r"|(?:take|bring|drag)\s+(?:[\w-]+\s+){1,3}?to\s+court|see\s+you\s+in\s+court",
    ),
    (
        "lawsuit",
        r"lawsuits?|su(?:e|ing)\s+(?:you|your\s+company|them)|(?:will|going\s+to|to)\s+sue",
    ),
    # Lawyers only as a threat: "our lawyers are reviewing the MSA" is ordinary procurement.
    (
        "lawyer",
        r"(?:our|my)\s+(?:lawyers?|attorneys?|solicitors?|legal\s+counsel)\s+"
        r"(?:will|shall|are\s+going\s+to|is\s+going\s+to)\s+(?:be\s+in\s+touch|contact|pursue|take)"
        r"|(?:contact|involve|consult|instruct|hear(?:ing)?\s+from|get)\s+(?:our|my)\s+"
        r"(?:lawyers?|attorneys?|solicitors?|legal\s+counsel)",
    ),
    (
        "breach of contract",
        r"breach(?:ed|ing)?\s+(?:of\s+)?(?:the\s+|our\s+|your\s+)?(?:contract|agreement|sla|dpa)"
        r"|in\s+breach",
    ),
    (
        "regulator complaint",
        r"gdpr\s+complaint|complain(?:t|ts)?\s+(?:to|with)\s+the\s+"
        r"(?:ico|regulator|data\s+protection\s+authority|supervisory\s+authority|ftc)",
    ),
)
LEGAL_THREAT: Final[str] = "|".join(pattern for _, pattern in _LEGAL_TERMS)
_DETERMINER: Final[str] = r"(?:the|our|my|this|that|these|those|their|your|its|an?|all|any)"
# Cancelling is churn when what ends is the relationship: a named object must be a contract or
# the like ("cancel the duplicate invoice" is housekeeping); with none named ("we will cancel",
# "notice of cancellation") the relationship is meant, unless a meeting follows (scheduling).
_ENDS_RELATIONSHIP: Final[str] = (
    rf"(?:\s+of)?(?:\s+{_DETERMINER})?(?:\s+[\w-]+){{0,2}}?\s+{CONTRACT}"
    rf"(?!(?:\s+[\w-]+)?\s+{MEETING}\b)"
    rf"|(?!\s+(?:of\s+)?(?:{_DETERMINER}\b|[\d#]))(?![^.!?\n]{{0,40}}?\b{MEETING}\b)"
)
_OTHER_VENDOR: Final[str] = (
    r"(?:another|a\s+different|a\s+new|an\s+alternative|a\s+competing|a\s+cheaper)\s+"
    r"(?:vendor|provider|tool|platform|solution|system|product|crm|supplier)"
)
_SENIOR: Final[str] = (
    r"(?:manager|supervisor|boss|superior|management"
    r"|(?:head|vp|director)\s+of\s+(?:customer\s+|client\s+)?\w+)"
)


@dataclass(frozen=True, slots=True)
class _Rule:
    term: str
    """Canonical term reported in the mention."""
    pattern: str
    """Regex source (matched case-insensitively, word-bounded)."""
    negatable: bool = False
    """A negation just before the match in the same clause cancels it."""
    declinable: bool = False
    """Declining or deferring words anywhere in the match's sentence cancel it."""
    requested: bool = False
    """Only after a request to reach someone earlier in the same clause ("get me ...")."""


def _opportunity(term: str, pattern: str) -> _Rule:
    return _Rule(term, pattern, negatable=True, declinable=True)


_RULES: Final[dict[MentionKind, tuple[_Rule, ...]]] = {
    MentionKind.PRICING: (
        _Rule("price objection", PRICE_OBJECTION),
        _Rule("pricing", r"pric(?:e|es|ed|ing)"),
        _Rule("quote", r"quot(?:e|es|ed|ation|ations)"),
        _Rule("discount", r"discount(?:s|ed|ing)?"),
        _Rule("budget", r"budget(?:s|ed|ing|ary)?"),
        _Rule("invoice", r"invoic(?:e|es|ed|ing)"),
        _Rule("cost", r"costs?|costing"),
        _Rule("per seat", r"per\s+(?:seat|user|licen[cs]e|head)"),
        # $1,200 / US$ 3.5k / EUR 900 / 1.200,50 € / 40k USD
        _Rule(
            "amount",
            r"(?:US|AU|CA)?[$\u20ac\u00a3]\s?\d(?:[,.']?\d)*(?:\s?(?:k|m|bn|million|thousand))?"
            r"|(?:usd|eur|gbp)\s?\d(?:[,.']?\d)*(?:\s?(?:k|m|bn))?"
            r"|\d(?:[,.']?\d)*\s?(?:k\s?)?(?:usd|eur|gbp|dollars|euros|pounds|[$\u20ac\u00a3])",
        ),
    ),
    MentionKind.CHURN: (
        _Rule("not renewing", NOT_RENEWING),
        _Rule(
            "cancel",
            rf"cancel(?:s|led|ed|ling|ing|lation)?(?:{_ENDS_RELATIONSHIP})",
            negatable=True,
        ),
        _Rule("terminate", rf"terminat(?:e|es|ed|ing|ion)(?:{_ENDS_RELATIONSHIP})", negatable=True),
        _Rule(
            "switching",
            # A capitalised word after "switching to" is most often a product name; after
            # "moving to" it is as often a place or a date, so only another vendor counts there.
            rf"switch(?:ing|ed)?\s+(?:over\s+)?to\s+(?:{_OTHER_VENDOR}|(?-i:[A-Z])(?:[\w&-]|\.(?=\w))*)"
            rf"|(?:(?:mov|migrat)(?:e|es|ed|ing)\s+(?:over\s+)?to|go(?:es|ing)?\s+with|went\s+with)"
            rf"\s+{_OTHER_VENDOR}",
            negatable=True,
        ),
        _Rule("looking elsewhere", LOOKING_ELSEWHERE, negatable=True),
        _Rule("churn", r"churn(?:s|ed|ing)?", negatable=True),
    ),
    MentionKind.ESCALATION: (
        _Rule("escalate", r"escalat(?:e|es|ed|ing|ion)", negatable=True),
        _Rule(
            "manager",
            rf"(?:speak|talk)\s+(?:to|with)\s+(?:a|your|the)\s+{_SENIOR}"
            r"|someone\s+(?:more\s+senior|in\s+charge)",
            negatable=True,
        ),
        # Naming a manager is not escalating ("pass our thanks to your manager"); asking to
        # reach one is ("get me your supervisor", "a call from your head of support").
        _Rule("manager", rf"(?:your|a|the)\s+{_SENIOR}", negatable=True, requested=True),
        _Rule("unacceptable", r"unacceptable|not\s+acceptable"),
        _Rule(
            "repeat contact",
            r"(?:third|fourth|fifth|\d+(?:rd|th))\s+time"
            r"|(?:several|multiple|many|\d+)\s+times\s+(?:now|already)|again\s+and\s+again",
        ),
        _Rule("still waiting", STILL_WAITING),
    ),
    MentionKind.LEGAL: tuple(_Rule(term, pattern) for term, pattern in _LEGAL_TERMS),
    MentionKind.EXPANSION: tuple(_opportunity(t, p) for t, p in EXPANSION_TERMS),
    MentionKind.UPSELL: tuple(_opportunity(t, p) for t, p in UPSELL_TERMS),
    MentionKind.REFERRAL: tuple(_opportunity(t, p) for t, p in REFERRAL_TERMS),
}


def _compile(rules: Sequence[_Rule]) -> re.Pattern[str]:
    groups = "|".join(f"(?P<t{i}>{rule.pattern})" for i, rule in enumerate(rules))
    return re.compile(rf"(?<!\w)(?:{groups})(?!\w)", re.IGNORECASE)


_PATTERNS: Final[dict[MentionKind, re.Pattern[str]]] = {
    kind: _compile(rules) for kind, rules in _RULES.items()
}
# "switching to <competitor>" and "going with <competitor>": the lead-in, matched so that it ends
# where a competitor mention starts.
_SWITCH_LEAD_IN = re.compile(
    r"(?<!\w)(?:switch(?:ing|ed)?|mov(?:e|ing|ed)|migrat(?:e|ing|ed)|go(?:ing)?|went|gone)\s+"
    r"(?:over\s+)?(?:to|with)\s+\Z",
    re.IGNORECASE,
)

_CLAUSE_BREAK = re.compile(
    r"[.!?;:,()\n]|\b(?:and|but|so|because|then|or|however|although|though|yet|if|unless)\b",
    re.IGNORECASE,
)
_REQUEST = re.compile(
    r"\b(?:get\s+me|put\s+me\s+through|(?:connect|transfer)\s+me|escalat\w*|involve|loop\s+in"
    r"|(?:call|answer|reply|response|word|hear)\s+(?:back\s+)?from)\b",
    re.IGNORECASE,
)
_NEGATOR = re.compile(
    r"\b(?:not|no|never|without|nor|neither|cannot|dont|wont|cant|isnt|arent|didnt|doesnt)\b"
    r"|\b\w+n['\u2019]t\b",
    re.IGNORECASE,
)
# A negative subject negates its clause ("nobody here is talking about cancelling"), so it
# reaches further back than "not" does, up to a new subject ("if nobody fixes it we cancel").
_NEGATIVE_SUBJECT = re.compile(
    r"\b(?:nobody|no[\s-]one|noone|none)\b(?!.*\b(?:i|we|you|they|he|she)\b)", re.IGNORECASE
)
_WORD = re.compile(r"[\w'\u2019]+")
_CHARS_PER_WORD: Final[int] = 12
_NEGATION_WINDOW_WORDS: Final[int] = 4
_SUBJECT_WINDOW_WORDS: Final[int] = 7
_REQUEST_WINDOW_WORDS: Final[int] = 5


def negation_start(text: str, start: int) -> int | None:
    """Offset of a negation among the four words before ``start`` in the same clause, if any.

    "We have no plans to cancel" and "we won't be cancelling" are negated; "No, we are
    cancelling" and "we are not happy and will cancel" are not (a comma or a conjunction ends
    the negation's reach). A negative subject reaches seven words: "nobody here is talking
    about cancelling" is negated.
    """
    found = [
        _in_clause_before(text, start, _NEGATOR, _NEGATION_WINDOW_WORDS),
        _in_clause_before(text, start, _NEGATIVE_SUBJECT, _SUBJECT_WINDOW_WORDS),
    ]
    return min((offset for offset in found if offset is not None), default=None)


def _in_clause_before(text: str, start: int, pattern: re.Pattern[str], words: int) -> int | None:
    """Offset of ``pattern`` among the ``words`` words before ``start`` in the same clause."""
    window_start = max(0, start - words * _CHARS_PER_WORD)
    window = text[window_start:start]
    clause = 0
    for match in _CLAUSE_BREAK.finditer(window):
        clause = match.end()
    before = list(_WORD.finditer(window, clause))[-words:]
    if not before:
        return None
    found = pattern.search(window, before[0].start())
    return None if found is None else window_start + found.start()


class CompetitorList:
    """One tenant's competitors, compiled once into a single matcher.

    Names and aliases match whole words, case-insensitively, with any whitespace between their
    words; "Salesforce" is not found in "Salesforcer" but is in "Salesforce's". Where a longer
    alias and a shorter one start at the same place, the longer wins ("Sales Cloud" over
    "Sales"). A match reports the competitor's configured name, never the alias. Immutable once
    built, so one instance may serve concurrent requests.
    """

    __slots__ = ("_canonical", "_competitors", "_pattern")

    def __init__(self, competitors: Iterable[Competitor] = (), *, field_prefix: str = "") -> None:
        """Validates and compiles; every problem is reported at once.

        Raises :class:`~ai_orchestration.errors.InvalidArgumentError` whose violations name the
        field, e.g. ``competitors[2].aliases[0]`` (``field_prefix`` is prepended).
        """
        self._competitors, self._canonical = _checked(tuple(competitors), field_prefix)
        self._pattern = (
            re.compile(rf"(?<!\w){_trie_pattern(self._canonical)}(?!\w)", re.IGNORECASE)
            if self._canonical
            else None
        )

    @classmethod
    def from_mapping(
        cls, competitors: Mapping[str, Sequence[str]], *, field_prefix: str = ""
    ) -> CompetitorList:
        """From ``{"Salesforce": ("SFDC", "Sales Cloud")}``; indexes follow the mapping's order."""
        return cls(
            (Competitor(name, tuple(aliases)) for name, aliases in competitors.items()),
            field_prefix=field_prefix,
        )

    @property
    def competitors(self) -> tuple[Competitor, ...]:
        """The configured competitors, names and aliases trimmed, duplicates within one dropped."""
        return self._competitors

    def find(self, text: str) -> list[Mention]:
        """Every competitor mention in ``text``, in order."""
        if self._pattern is None:
            return []
        return [
            Mention(MentionKind.COMPETITOR, self._name_of(m.group()), m.start(), m.end())
            for m in self._pattern.finditer(text)
        ]

    def _name_of(self, matched: str) -> str:
        name = self._canonical.get(_key(matched))
        if name is not None:
            return name
        # Unicode case rules where lower() and the regex's case-insensitivity disagree.
        for alias, canonical in self._canonical.items():
            if re.fullmatch(_trie_pattern([alias]), matched, re.IGNORECASE):
                return canonical
        raise AssertionError(f"no competitor for matched text {matched!r}")  # pragma: no cover

    def __len__(self) -> int:
        return len(self._competitors)

    def __repr__(self) -> str:
        return f"CompetitorList({[c.name for c in self._competitors]!r})"


def detect(text: str, competitors: CompetitorList) -> list[Mention]:
    """Every competitor, pricing, churn, escalation, legal, expansion, upsell and referral
    mention in ``text``, in order."""
    found = competitors.find(text)
    switches = _switching_to_competitor(text, found)
    switch_starts = {mention.start for mention in switches}
    mentions = [*found, *switches]
    for kind, pattern in _PATTERNS.items():
        rules = _RULES[kind]
        for match in pattern.finditer(text):
            rule = rules[int(match.lastgroup[1:])] if match.lastgroup else rules[0]
            if rule.negatable and negation_start(text, match.start()) is not None:
                continue
            if rule.declinable and declined(text, match.start(), match.end()):
                continue
            if (
                rule.requested
                and _in_clause_before(text, match.start(), _REQUEST, _REQUEST_WINDOW_WORDS) is None
            ):
                continue
            if match.start() in switch_starts:
                continue  # "switching to Sales Cloud": the competitor's span, not one word of it
            mentions.append(Mention(kind, rule.term, match.start(), match.end()))
    mentions.sort(key=lambda m: (m.start, m.end, m.kind))
    return mentions


def _switching_to_competitor(text: str, found: Sequence[Mention]) -> list[Mention]:
    switches: list[Mention] = []
    for competitor in found:
        lead_in = _SWITCH_LEAD_IN.search(text, max(0, competitor.start - 40), competitor.start)
        if lead_in is not None and negation_start(text, lead_in.start()) is None:
            switches.append(
                Mention(MentionKind.CHURN, "switching", lead_in.start(), competitor.end)
            )
    return switches


def _key(name: str) -> str:
    return " ".join(name.split()).lower()


def _checked(
    competitors: tuple[Competitor, ...], prefix: str
) -> tuple[tuple[Competitor, ...], dict[str, str]]:
    """The cleaned competitors and a lookup from normalised name or alias to canonical name."""
    violations: list[FieldViolation] = []
    if len(competitors) > MAX_COMPETITORS:
        message = f"at most {MAX_COMPETITORS} competitors, got {len(competitors)}"
        violations.append(FieldViolation(f"{prefix}competitors", message, "competitors_max"))
    canonical: dict[str, str] = {}
    owner: dict[str, int] = {}
    cleaned: list[Competitor] = []
    for i, competitor in enumerate(competitors):
        path = f"{prefix}competitors[{i}]"
        if len(competitor.aliases) > MAX_ALIASES:
            message = f"at most {MAX_ALIASES} aliases, got {len(competitor.aliases)}"
            violations.append(FieldViolation(f"{path}.aliases", message, "aliases_max"))
        name = " ".join(competitor.name.split())
        spellings = [(f"{path}.name", name)] + [
            (f"{path}.aliases[{j}]", " ".join(alias.split()))
            for j, alias in enumerate(competitor.aliases)
        ]
        aliases: list[str] = []
        for position, (field, value) in enumerate(spellings):
            key = _key(value)
            problem = _name_problem(value)
            if not problem and owner.setdefault(key, i) != i:
                problem = f"{value!r} is already a name or alias of competitors[{owner[key]}]"
            if problem:
                violations.append(FieldViolation(field, problem, "competitor_name"))
            elif key not in canonical:  # repeats within one competitor are harmless: dropped
                canonical[key] = name
                if position > 0:
                    aliases.append(value)
        cleaned.append(Competitor(name, tuple(aliases)))
    if violations:
        raise InvalidArgumentError("invalid competitor list", violations)
    return tuple(cleaned), canonical


def _name_problem(name: str) -> str:
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME_CHARS:
        return f"at most {MAX_NAME_CHARS} characters, got {len(name)}"
    if not any(ch.isalnum() for ch in name):
        return "must contain a letter or a digit"
    return ""


_Trie: TypeAlias = dict[str, "_Trie"]


def _trie_pattern(names: Iterable[str]) -> str:
    """One regex over all names as a character trie: a position is tried against each first
    character once, not against every alias (4,200 plain alternatives made matching ~100x
    slower). Greedy optional tails make the longest name win, backtracking to a shorter one when
    the longer is not followed by a word boundary."""
    trie: _Trie = {}
    for name in names:
        node = trie
        for char in _key(name):
            node = node.setdefault(char, {})
        node[""] = {}  # a name ends here

    def emit(node: _Trie) -> str:
        branches = [
            (r"\s+" if char == " " else re.escape(char)) + emit(child)
            for char, child in sorted(node.items())
            if char
        ]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)
