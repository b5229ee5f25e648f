"""Sentiment of CRM text: VADER, a CRM lexicon, and phrase rules for what VADER cannot see.

VADER is a lexicon of social-media words; business mail says its worst things in neutral words
("we are not renewing", "this is a blocker", "I will escalate this to your manager" all score
0.0 in plain VADER). Two additions fix that without a model, so scores stay deterministic,
explainable and fast enough to compute inside the ingest transaction:

* :data:`CRM_LEXICON` adds or overrides single words, so VADER's own rules (negation within three
  words, boosters, "but", capitals, exclamation marks) apply to them: "no blockers" and "it
  wasn't slow" come out right without a rule of ours. A negation stops at the end of its clause
  (see :class:`_ClauseScopedAnalyzer`).
* Phrase rules (:data:`_PHRASE_RULES`) recognise multi-word business phrases. A matched phrase is
  blanked out of the text VADER sees and its valence is added to VADER's unnormalised sum, so a
  phrase weighs like one lexicon word of that valence and nothing is counted twice. A negation
  just before a negatable phrase ("we have no plans to cancel our subscription") blanks the
  phrase and the negation and adds nothing.

Long texts are scored sentence by sentence; see :meth:`SentimentScorer.score`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer, negated

from ai_orchestration.insights._chunks import sentence_pieces
from ai_orchestration.insights._detectors import (
    CONTRACT,
    LEGAL_THREAT,
    LOOKING_ELSEWHERE,
    MEETING,
    NOT_RENEWING,
    PRICE_OBJECTION,
    STILL_WAITING,
    negation_start,
)
from ai_orchestration.insights._opportunity_terms import UPSELL_TERMS
from ai_orchestration.insights._types import Sentiment, SentimentLabel

CRM_LEXICON: Final[Mapping[str, float]] = MappingProxyType(
    {
        # Friction. VADER's scale: -4 (worst) to +4; "problem" is -1.7, "broken" -2.1.
        "blocker": -2.5, "blockers": -2.5, "showstopper": -2.5, "dealbreaker": -2.5,
        "escalate": -1.5, "escalated": -1.5, "escalating": -1.5, "escalation": -1.5,
        "churn": -2.5, "churned": -2.5, "churning": -2.5,
        "cancel": -2.0, "cancels": -2.0, "cancelled": -2.0, "canceled": -2.0,
        "cancelling": -2.0, "canceling": -2.0, "cancellation": -2.0,
        "terminate": -1.5, "termination": -1.5,
        "outage": -2.5, "outages": -2.5, "downtime": -2.0,
        "chargeback": -2.0, "overcharged": -2.0,  # "refund": see the phrase rules
        "bug": -1.5, "bugs": -1.5, "buggy": -2.0, "glitch": -1.5, "glitches": -1.5,
        "crashed": -2.0, "crashes": -2.0, "crashing": -2.0,
        # No "overdue": an overdue invoice is an account's state, not the writer's mood, and in
        # general text "long overdue" mostly welcomes a change.
        "slow": -1.0, "laggy": -1.5, "unresponsive": -2.0,
        # Mild: "issue" is also a verb ("please issue the PO", "the consulate issues visas").
        "issue": -0.5, "issues": -0.5,
        # Commercial progress. A renewal is routine, so barely positive.
        "renewal": 0.5, "renew": 0.5, "renewed": 1.0,
        # An upgrade is as often software ("upgrade your browser", "since the upgrade the
        # export fails") as a plan bought, so barely positive; "plan upgrade" is a phrase rule.
        "upgrade": 0.5, "upgraded": 0.5, "upgrading": 0.5,
        "expand": 1.5, "expanding": 1.5, "expansion": 1.5,
        "resolved": 1.5, "seamless": 2.0, "smooth": 1.5, "onboarded": 1.0,
        # Formulae VADER reads as praise: "Dear Ms Lee", "please fix this ASAP", "kindly send
        # the invoice", "honestly, it's too expensive". ("like", "free" and "support" keep
        # VADER's values: zeroing them cost accuracy on the human-rated tweets and reviews.)
        "dear": 0.0, "please": 0.0, "kindly": 0.0, "honestly": 0.0,
        # A purchase order, not VADER's slang "po" (-2.6): "please issue the PO".
        "po": 0.0,
    }
)  # fmt: skip
"""Words added to (or overriding) VADER's lexicon, in VADER's units (-4 to +4)."""

LABEL_THRESHOLDS: Final[tuple[float, float, float, float]] = (-0.6, -0.2, 0.2, 0.6)
"""Band edges: score <= -0.6 very negative, <= -0.2 negative, < 0.2 neutral, < 0.6 positive,
else very positive. Wider than VADER's customary +-0.05 neutral band: business mail is polite by
default, and one mild word ("we have an issue with SSO") should leave a text neutral."""

MAX_SENTIMENT_CHARS: Final[int] = 100_000
"""Characters of a text scored; the rest (in e-mail, mostly quoted history) is ignored."""
MAX_SENTENCES: Final[int] = 200
"""Sentences scored, from the start: the newest words of a thread come first."""
_MAX_SENTENCE_CHARS: Final[int] = 1_000
_ONE_PASS_CHARS: Final[int] = 280
"""A text this short (a tweet, a chat line, a subject) is scored in one pass, as VADER is built
to: per-sentence scoring lost VADER's own reading across sentences ("Good product. But ...")
and scored worse on the human-rated tweets (bench/bench_insights.py)."""
# VADER's "but" rule is quadratic in a sentence's words; longer runs are cut at whitespace.

_NEGATIVE_WEIGHT: Final[float] = 2.0
# Politeness is cheap: bad news comes wrapped in friendly sentences ("Thanks for the call.
# Unfortunately we are not renewing. Best, Sam"), so a negative sentence counts twice its length.

_ALPHA: Final[float] = 15.0  # VADER's normalisation constant: compound = s / sqrt(s^2 + alpha)
_EVIDENCE_WORDS: Final[float] = 4.0  # words at which the length factor of confidence is 0.5
_BAND_HALF_WIDTH: Final[float] = 0.2  # a score this far from every edge is well inside its band
_WORD = re.compile(r"\w+")
# A token that ends a clause: a word or nothing, then , ; : . ! or ? (closing quotes and brackets
# may follow). A dash or an ellipsis standing alone ends one too.
_CLAUSE_END = re.compile(r"(?:\w|^)[\"'\u2019\u201d)\]]*[,;:.!?]+[\"'\u2019\u201d)\]]*\Z")
_CLAUSE_BREAKS: Final = frozenset({"-", "--", "\u2013", "\u2014"})
_NEGATION_REACH: Final[int] = 3  # VADER looks this many words back for a negation


@dataclass(frozen=True, slots=True)
class _PhraseRule:
    name: str
    """What the rule recognises (for reading; not reported)."""
    pattern: str
    """Regex source, matched case-insensitively and word-bounded."""
    valence: float
    """Added to VADER's unnormalised sum, in lexicon units."""
    negatable: bool = False
    """A negation just before the phrase cancels it."""
    of_negative_word: bool = False
    """Applies only if the phrase's last word is negative in the lexicon."""


_SWITCH_TARGET = (
    r"(?:another|a\s+different|a\s+new|an\s+alternative|a\s+competing|a\s+cheaper)\s+\w+"
    r"|(?-i:[A-Z])(?:[\w&-]|\.(?=\w))*"
)

# "Still waiting" is a complaint when what is awaited is owed: the addressee, a definite thing
# ("for your reply", "on the fix") or nothing named ("we are still waiting."); "still waiting for
# someone to write ..." is a wish.
_AWAITED = (
    r"[ \t]*(?:[^\w\s]|$)|\s+to\s+hear"
    r"|\s+(?:for|on)\s+(?:you|your|a|an|the|any|our|my|this|that|these|those|it|them|support)\b"
)

# Order matters where two rules could start at the same word: the first listed wins, and the
# non-renewal phrases come before the positive "renew early" so that "not going to renew early"
# is a non-renewal.
_PHRASE_RULES: Final[tuple[_PhraseRule, ...]] = (
    _PhraseRule("not renewing", NOT_RENEWING, -2.5),
    _PhraseRule(
        "cancel the contract",
        r"(?:cancel(?:s|led|ed|ling|ing)?|terminat(?:e|es|ed|ing))\s+"
        rf"(?:our|the|my|this|their)\s+(?:\w+\s+)?{CONTRACT}",
        -2.5,
        negatable=True,
    ),
    _PhraseRule(
        "switching vendor",
        rf"switch(?:ing|ed)?\s+(?:over\s+)?to\s+(?:{_SWITCH_TARGET})",
        -1.5,
        negatable=True,
    ),
    _PhraseRule("looking elsewhere", LOOKING_ELSEWHERE, -1.5, negatable=True),
    # Calling off a meeting is scheduling, not a complaint ("cancel" alone is -2.0).
    _PhraseRule(
        "rescheduling",
        rf"(?:cancel|reschedul|postpon|push|mov)\w*\s+(?:\S+\s+){{0,3}}?{MEETING}",
        0.0,
    ),
    _PhraseRule("price objection", PRICE_OBJECTION, -2.0, negatable=True),
    _PhraseRule("still waiting", rf"(?!still\s+waiting(?!{_AWAITED}))(?:{STILL_WAITING})", -2.5),
    # Not the word "refund" (tax refunds, "your refund was issued"; VADER's negation would even
    # make "there's no refund" praise), only a customer asking for one.
    _PhraseRule(
        "refund demand",
        r"(?:(?:want|demand|request|expect|claim)(?:s|ed|ing)?|ask(?:s|ed|ing)?\s+for"
        r"|(?:would|(?:i|we|they)['\u2019]d)\s+like|return(?:s|ed|ing)?\s+(?:it|them|this|these)\s+for)\s+"
        r"(?:(?:a|an|our|my|the|full|partial)\s+)*refunds?",
        -1.5,
        negatable=True,
    ),
    _PhraseRule(
        "asks for a manager",
        r"(?:speak|talk)\s+(?:to|with)\s+(?:a|your|the)\s+(?:manager|supervisor|boss)"
        r"|escalat(?:e|ed|ing)\s+(?:this\s+|it\s+|the\s+\w+\s+)?to\s+"
        r"(?:your|a|the)\s+(?:manager|supervisor|management|boss)",
        -2.0,
        negatable=True,
    ),
    _PhraseRule("legal threat", LEGAL_THREAT, -3.0),
    # Unmet expectations are disappointment, not VADER's "better" (+1.9): "we expected better".
    _PhraseRule("expected better", r"(?:expected|hoped\s+for)\s+(?:much\s+|far\s+)?better", -2.0),
    # Manual work, not VADER's helping "hand" (+2.2): "we had to redo everything by hand".
    _PhraseRule("by hand", r"by\s+hand", 0.0),
    _PhraseRule(
        "repeat contact",
        r"(?:third|fourth|fifth|\d+(?:rd|th))\s+time|(?:several|multiple|many|\d+)\s+times\s+"
        r"(?:now|already)",
        -1.5,
    ),
    # "No longer an issue" reports a fix: good news that outweighs naming the old problem ("the
    # login bug is no longer an issue"). "Not a blocker" is mere relief. Both only when the last
    # word is negative: "not a good fit" is left to VADER's own negation.
    _PhraseRule(
        "resolved problem",
        r"no\s+longer(?:\s+(?:a|an|any))?\s+(?:(?:big|huge|major|real|serious)\s+)?[a-z]+",
        2.0,
        of_negative_word=True,
    ),
    # Only a negated noun ("not a blocker for us") is relief. A negated word followed by a noun
    # is an adjective ("not a bad game", "not a bad idea"): litotes, which VADER's own negation
    # rightly reads as praise.
    _PhraseRule(
        "negated problem",
        r"(?:not|never|isn['\u2019]t|wasn['\u2019]t|aren['\u2019]t)\s+(?:really\s+|much\s+of\s+)?"
        r"(?:a|an|any)\s+(?:(?:big|huge|major|real|serious)\s+)?[a-z]+"
        r"(?=[ \t]*(?:[^\w\s]|$)|\s+(?:for|to|with|at|in|on|of|here|there|now|anymore|yet|because"
        r"|since|as|but|and|or|so|though|if|either)\b)",
        0.5,
        of_negative_word=True,
    ),
    _PhraseRule(
        "expansion",
        r"(?:happy|glad|keen|excited|looking|planning|plan|ready|want|would\s+like)\s+to\s+"
        r"(?:expand|grow|extend|upgrade|roll\s+(?:it\s+)?out)",
        2.0,
        negatable=True,
    ),
    # The commercial sense of "upgrade" (the word alone is mostly software, see CRM_LEXICON).
    _PhraseRule("plan upgrade", dict(UPSELL_TERMS)["upgrade"], 1.5, negatable=True),
    _PhraseRule(
        "more seats",
        r"add(?:ing)?\s+(?:another\s+|a\s+few\s+)?(?:\d+\s+)?(?:more\s+|extra\s+|additional\s+)?"
        r"(?:seats|licen[cs]es|users)",
        2.0,
        negatable=True,
    ),
    _PhraseRule(
        "renewing gladly",
        r"renew(?:ing)?\s+(?:early|for\s+(?:another|a\s+further|two|three|\d+)\s+\w+)"
        r"|(?:happy|glad|pleased|ready|planning|plan)\s+to\s+renew",
        2.0,
        negatable=True,
    ),
    _PhraseRule(
        "referral",
        r"referrals?|refer(?:red|ring)?\s+(?:you\s+to\s+)?(?:other|more|a\s+few|our|my|a)\s+"
        r"(?:\w+\s+)?(?:customers|companies|clients|colleagues?|friends?|partners?|peers?)",
        1.5,
    ),
    # Sign-offs are formulae: "Best regards" would otherwise add VADER's +3.2 for "best".
    _PhraseRule(
        "sign-off",
        r"^[ \t]*(?:(?:(?:best|kind|warm|warmest)\s+)?(?:regards|wishes)|best|all\s+the\s+best"
        r"|sincerely|(?:many\s+)?thanks(?:\s+again)?[ \t]*,|thank\s+you[ \t]*,|cheers)[ \t]*[,.!]?"
        r"(?=[ \t]*$)",
        0.0,
    ),
)
_PHRASES = re.compile(
    r"(?<!\w)(?:"
    + "|".join(f"(?P<r{i}>{rule.pattern})" for i, rule in enumerate(_PHRASE_RULES))
    + r")(?!\w)",
    re.IGNORECASE | re.MULTILINE,
)
_LAST_WORD = re.compile(r"\w+\Z")


@dataclass(frozen=True, slots=True)
class _ClauseWords:
    """What VADER's ``sentiment_valence`` reads of its ``SentiText``, negations blanked."""

    words_and_emoticons: list[str]
    is_cap_diff: bool


class _ClauseScopedAnalyzer(SentimentIntensityAnalyzer):  # type: ignore[misc]  # untyped base
    """VADER whose negations stop at the end of their clause.

    VADER negates a lexicon word when "not", "no" or an n't word is among the three words
    before it, punctuation ignored, so "No, it's good" and "I don't know, it's great" come out
    negative. Here a negation reaches only to the next punctuation mark, the usual scope of a
    negation in sentiment analysis (Pang, Lee and Vaithyanathan, 2002); VADER's other rules are
    untouched. Overrides the per-word hook of vaderSentiment 3.3.2, the pinned version.
    """

    def sentiment_valence(
        self, valence: float, sentitext: Any, item: str, i: int, sentiments: list[float]
    ) -> list[float]:
        words: list[str] = sentitext.words_and_emoticons
        reach = range(max(0, i - _NEGATION_REACH), i)
        if item.lower() in self.lexicon and any(_is_negation(words[k]) for k in reach):
            # VADER strips the punctuation off its words; the text's own tokens still have it.
            tokens = sentitext.text.split()
            ends = [
                k for k in reach if tokens[k] in _CLAUSE_BREAKS or _CLAUSE_END.search(tokens[k])
            ]
            if ends:
                masked = [
                    "" if k <= ends[-1] and _is_negation(word) else word
                    for k, word in enumerate(words)
                ]
                sentitext = _ClauseWords(masked, sentitext.is_cap_diff)
        result: list[float] = super().sentiment_valence(valence, sentitext, item, i, sentiments)
        return result


def _is_negation(word: str) -> bool:
    return word.lower() == "no" or bool(negated([word]))


class SentimentScorer:
    """Scores the sentiment of CRM text; see the module docstring for the method.

    Holds one VADER analyzer with :data:`CRM_LEXICON` merged into its lexicon. Scoring only
    reads it, so one instance may be shared by every task and thread of a process.
    """

    __slots__ = ("_analyzer", "_lexicon")

    def __init__(self) -> None:
        analyzer = _ClauseScopedAnalyzer()
        analyzer.lexicon.update(CRM_LEXICON)
        self._analyzer = analyzer
        self._lexicon: Mapping[str, float] = analyzer.lexicon

    def score(self, text: str) -> Sentiment:
        """The sentiment of ``text``.

        Each sentence is scored on its own (VADER is built for sentence-length text), then the
        scores are averaged weighted by sentence length, negative sentences counting double
        and sentences without sentiment not counting, so one angry sentence in a long friendly
        e-mail pulls it down. Only the first :data:`MAX_SENTIMENT_CHARS` characters and
        :data:`MAX_SENTENCES` sentences are read, which bounds the work for any input.
        """
        head = text[:MAX_SENTIMENT_CHARS]
        if len(head) <= _ONE_PASS_CHARS:
            score = round(self._sentence_score(head), 4)
            words = len(_WORD.findall(head))
            return Sentiment(
                score=score, label=label_of(score), confidence=confidence_of(score, words)
            )
        spans = sentence_pieces(head, max_chars=_MAX_SENTENCE_CHARS)[:MAX_SENTENCES]
        weighted = 0.0
        weights = 0.0
        words = 0
        for start, end in spans:
            sentence = head[start:end]
            words += len(_WORD.findall(sentence))
            value = self._sentence_score(sentence)
            if value != 0.0:
                weight = (end - start) * (_NEGATIVE_WEIGHT if value < 0 else 1.0)
                weighted += value * weight
                weights += weight
        score = round(weighted / weights, 4) if weights else 0.0
        return Sentiment(score=score, label=label_of(score), confidence=confidence_of(score, words))

    def _sentence_score(self, sentence: str) -> float:
        kept: list[str] = []
        added = 0.0
        last = 0
        for match in _PHRASES.finditer(sentence):
            index = int(match.lastgroup[1:]) if match.lastgroup else 0
            rule = _PHRASE_RULES[index]
            start, valence = match.start(), rule.valence
            if rule.of_negative_word:
                word = _LAST_WORD.search(match.group())
                if word is None or self._lexicon.get(word.group().lower(), 0.0) >= 0:
                    continue
            elif rule.negatable:
                negation = negation_start(sentence, start)
                if negation is not None:
                    start, valence = max(negation, last), 0.0
            kept.append(sentence[last:start])
            kept.append(" ")
            added += valence
            last = match.end()
        kept.append(sentence[last:])
        compound = float(self._analyzer.polarity_scores("".join(kept))["compound"])
        return _normalise(_unnormalise(compound) + added)


def label_of(score: float) -> SentimentLabel:
    """The band of ``score`` (see :data:`LABEL_THRESHOLDS`)."""
    very_negative, negative, positive, very_positive = LABEL_THRESHOLDS
    if score <= very_negative:
        return SentimentLabel.VERY_NEGATIVE
    if score <= negative:
        return SentimentLabel.NEGATIVE
    if score < positive:
        return SentimentLabel.NEUTRAL
    if score < very_positive:
        return SentimentLabel.POSITIVE
    return SentimentLabel.VERY_POSITIVE


def confidence_of(score: float, words: int) -> float:
    """How far to trust the label: ``words / (words + 4) * (0.5 + 0.5 * margin)``.

    The first factor grows with the evidence (1 word: 0.2, 4 words: 0.5, 36 words: 0.9); the
    margin is the score's distance to the nearest band edge over 0.2, capped at 1, so a score
    on an edge keeps half the confidence its length earns and one mid-band keeps all of it.
    """
    if words <= 0:
        return 0.0
    evidence = words / (words + _EVIDENCE_WORDS)
    distance = min(abs(score - edge) for edge in LABEL_THRESHOLDS)
    margin = min(1.0, distance / _BAND_HALF_WIDTH)
    return round(evidence * (0.5 + 0.5 * margin), 4)


def _normalise(total: float) -> float:
    return total / math.sqrt(total * total + _ALPHA)


def _unnormalise(compound: float) -> float:
    # VADER reports compound rounded to 4 places; +-1 would mean an infinite sum.
    bounded = max(-0.9999, min(0.9999, compound))
    return bounded * math.sqrt(_ALPHA / (1.0 - bounded * bounded))
