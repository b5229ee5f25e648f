"""The parts a model writes inside text the code owns: the streamed text of a JSON answer, the
schema a part is decoded under, the rules a part must meet, and the drafts and analyses the
code composes around them (which must pass the checks whatever the model wrote)."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace

import pytest

from ai_orchestration.scoring import LeadFeatures, Seniority
from ai_orchestration.workflows._types import JsonDoc
from ai_orchestration.workflows.graphs._analysis import (
    ANALYSIS_PARTS,
    accept_analysis_part,
    analysis_text,
    template_analysis,
)
from ai_orchestration.workflows.graphs._checks import check_analysis, check_draft
from ai_orchestration.workflows.graphs._compose import (
    accept_draft_part,
    draft_parts,
    fallback_draft,
    grounding,
    repaired,
    second_person,
    with_uncovered_points,
)
from ai_orchestration.workflows.graphs._content import ContentPolicy, DraftSpec
from ai_orchestration.workflows.graphs._json_text import JsonTextStream
from ai_orchestration.workflows.graphs._parts import (
    Part,
    accept,
    cleaned,
    parse_parts,
    schema,
    without_repeated_clause,
)

POLICY = ContentPolicy()
CHANNELS = ("CHANNEL_EMAIL", "CHANNEL_SMS", "CHANNEL_LINKEDIN", "CHANNEL_PHONE")
ADA: JsonDoc = {"name": "Ada Lovelace", "company": "Analytical Engines", "email": "ada@ae.io"}
WEBINAR = DraftSpec(
    recipient=ADA,
    goal="invite her to the product webinar on Thursday",
    channel="CHANNEL_EMAIL",
    tone="professional",
    points=("live demo of the new reports", "30 minutes"),
    sender="Sam from Acme",
)
GOAL = Part("goal", "one sentence that tells the reader the goal", 20, 180)
POINTS = Part("points", "one or two sentences that mention every key point", 20, 260)
SUBJECT = Part("subject", "a subject line of a few words about the goal", 8, 60, False)


def _words(count: int, seed: int) -> str:
    """``count`` distinct made-up lowercase words (no sentence of them repeats another)."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    return " ".join("".join(rng.choices(syllables, k=4)) for _ in range(count))


def _text(chars: int, seed: int) -> str:
    """Made-up words, cut at a word to at most ``chars`` characters."""
    return _words(chars // 4, seed)[:chars].rsplit(" ", 1)[0]


# --- the readable text of a streamed JSON answer -----------------------------------------------

ANSWER: JsonDoc = {
    "subject": "Caf\u00e9 at Analytical Engines",
    "score": 82,
    "ratio": -1.5e3,
    "goal": 'She said "yes".\nThen a back\\slash / and a tab-free line.',
    "flag": True,
    "nothing": None,
    "points": ["live demo", "", "Q&A with the founders"],
    "nested": {"inner": "deep value", "count": 3},
}
"""Every kind of JSON value; json.dumps escapes the quotes, backslash, line break and the é."""
ANSWER_VALUES = [
    "Caf\u00e9 at Analytical Engines",
    'She said "yes".\nThen a back\\slash / and a tab-free line.',
    "live demo",
    "",
    "Q&A with the founders",
    "deep value",
]


@pytest.mark.parametrize("seed", range(25))
def test_the_string_values_come_out_in_random_pieces_joined_by_line_breaks(seed: int) -> None:
    raw = json.dumps(ANSWER, indent=seed % 3 or None)
    assert "\\u00e9" in raw and '\\"' in raw and "\\\\" in raw and "\\n" in raw
    rng = random.Random(seed)
    stream, out, start = JsonTextStream(), [], 0
    while start < len(raw):
        size = rng.randint(1, 9)
        out.append(stream.feed(raw[start : start + size]))
        start += size
    text = "".join(out)
    assert text == "\n".join(ANSWER_VALUES)
    # Keys, numbers and literals are dropped.
    for dropped in ("subject", "score", "82", "1500", "true", "null", "nested", "inner"):
        assert dropped not in text.lower()


def test_a_whole_answer_in_one_piece_gives_the_same_text() -> None:
    assert JsonTextStream().feed(json.dumps(ANSWER)) == "\n".join(ANSWER_VALUES)
    assert JsonTextStream().feed('{"a": "x", "b": "y"}') == "x\ny"


def test_a_unicode_escape_split_across_pieces_is_decoded() -> None:
    stream = JsonTextStream()
    pieces = ['{"a": "caf', "\\", "u0", "0e", "9", ' ok"}']
    assert "".join(stream.feed(p) for p in pieces) == "caf\u00e9 ok"


def test_an_escaped_surrogate_pair_comes_out_as_one_character() -> None:
    raw = json.dumps({"goal": "Thanks \U0001f600"})  # '{"goal": "Thanks \\ud83d\\ude00"}'
    text = JsonTextStream().feed(raw)
    assert text == "Thanks \U0001f600"
    text.encode("utf-8")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "}}}]]]",
        '"\\u12',
        '{"a": "\\uZZZZ"}',
        '{"a": "b\\',
        ']["x", "y"',
        '{"a": "unterminated',
        "\\\\\\\\\\",
        '{:"":::,,"',
        "not json at all",
    ],
)
def test_malformed_input_never_raises(raw: str) -> None:
    stream = JsonTextStream()
    assert isinstance(stream.feed(raw), str)
    assert isinstance(stream.feed('{"after": "more"}'), str)


def test_random_garbage_never_raises() -> None:
    rng = random.Random(1234)
    alphabet = '{}[]":,\\u0aZ9 \n\te'
    for _ in range(300):
        stream = JsonTextStream()
        for _ in range(rng.randint(1, 6)):
            piece = "".join(rng.choices(alphabet, k=rng.randint(0, 20)))
            assert isinstance(stream.feed(piece), str)


# --- the schema of an answer --------------------------------------------------------------------


def _pattern(part: Part) -> str:
    pattern = schema([part])["properties"][part.name]["pattern"]
    assert isinstance(pattern, str)
    return pattern


def test_every_part_is_required_and_nothing_else_is_allowed() -> None:
    document = schema([SUBJECT, GOAL, POINTS])
    assert document["type"] == "object"
    assert document["required"] == ["subject", "goal", "points"]
    assert document["additionalProperties"] is False
    for part in (SUBJECT, GOAL, POINTS):
        prop = document["properties"][part.name]
        assert (prop["type"], prop["description"]) == ("string", part.description)
    json.dumps(document)  # sent as JSON in the request


@pytest.mark.parametrize(
    "text",
    [
        "I would like to invite you to the product webinar.",
        "Would Thursday at the usual time work for you?",
        "It has a live demo, and a Q&A with the founders!",
    ],
)
def test_the_pattern_admits_a_plain_sentence(text: str) -> None:
    assert re.fullmatch(_pattern(GOAL), text)


@pytest.mark.parametrize(
    "text",
    [
        "Hello [Name], I would like to invite you to the webinar.",  # bracket placeholder
        "Hello {first_name}, I would like to invite you to the webinar.",  # brace placeholder
        "Hello <First Name>, I would like to invite you to the webinar.",  # angle placeholder
        'I would like to invite you to our "exclusive" webinar.',  # quote
        "I would like to invite you to the webinar \\ the demo.",  # backslash
        "I would like to invite you to the webinar.\nSecond paragraph.",  # line break
        "I would like to invite you to the product webinar",  # no final punctuation
        "i would like to invite you to the product webinar.",  # no capital
        "Too short.",  # under min_chars
        "A" + "b" * 200 + ".",  # over max_chars
    ],
)
def test_the_pattern_refuses_what_could_be_a_placeholder_or_a_half_sentence(text: str) -> None:
    assert re.fullmatch(_pattern(GOAL), text) is None


def test_the_pattern_counts_the_parts_bounds_exactly() -> None:
    pattern = _pattern(GOAL)
    shortest, longest = "A" + "b" * 18 + ".", "A" + "b" * 178 + "."
    assert (len(shortest), len(longest)) == (GOAL.min_chars, GOAL.max_chars)
    assert re.fullmatch(pattern, shortest) and re.fullmatch(pattern, longest)
    assert not re.fullmatch(pattern, shortest[1:]) and not re.fullmatch(pattern, "A" + longest)


def test_a_subject_needs_no_final_punctuation() -> None:
    pattern = _pattern(SUBJECT)
    assert re.fullmatch(pattern, "Your product demo")
    assert not re.fullmatch(pattern, "Your product demo?")  # no sentence end, no label colon
    assert not re.fullmatch(pattern, "Demo for [Name]")
    assert not re.fullmatch(pattern, "Your demo\nnext week")
    assert not re.fullmatch(pattern, "A" * 61)


# --- the rules a part must meet ----------------------------------------------------------------

FACTS = grounding(WEBINAR)


def _why(text: str, part: Part = POINTS, taken: tuple[str, ...] = ()) -> str:
    return accept(text, part, grounding=FACTS, tone="professional", policy=POLICY, taken=taken)


def test_a_good_sentence_is_accepted() -> None:
    assert _why("I would like to invite you to the product webinar on Thursday.", GOAL) == ""
    assert _why("It brings a live demo of the new reports and takes 30 minutes.") == ""


@pytest.mark.parametrize(
    ("text", "part", "taken", "reason"),
    [
        ("I would like to invite you. " * 10, POINTS, (), "write 20 to 260 characters"),
        ("Short.", GOAL, (), "write 20 to 180 characters"),
        ("We invite you. It is a webinar.", GOAL, (), "write one sentence"),
        ("We invite you. It is a webinar. It has a demo.", POINTS, (), "write one sentence"),
        (
            "It has a live demo of the new reports.",
            POINTS,
            ("I invite you. It has a live demo of the new reports.",),
            "say something the other parts do not say",
        ),
        ("The webinar takes 45 minutes.", POINTS, (), '"45"'),
        ("Join us on Friday for the live demo.", POINTS, (), '"Friday"'),
        ("Join the product webinar in London.", POINTS, (), "not London"),
        ("Please send me my invitation to the webinar.", POINTS, (), 'reader as "you"'),
        ("Act now, the webinar is guaranteed to help.", POINTS, (), "banned phrase"),
    ],
)
def test_a_part_is_refused_with_the_reason(
    text: str, part: Part, taken: tuple[str, ...], reason: str
) -> None:
    assert reason in _why(text, part, taken)


def test_parse_parts_keeps_the_named_strings_only() -> None:
    parts = [SUBJECT, GOAL, POINTS]
    answer = '{"subject": 3, "goal": "  I would\\n like  to  meet.  ", "extra": "x", "points": ""}'
    assert parse_parts(answer, parts) == {"goal": "I would like to meet."}
    for not_an_object in ("not json", "[1, 2]", '"a string"', "", '{"goal": "cut'):
        assert parse_parts(not_an_object, parts) == {}


# --- drafts the code composes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("goal", "said"),
    [
        ("invite her to the webinar", "invite you to the webinar"),
        ("renewal of their contract", "renewal of your contract"),
        ("thank them for the meeting", "thank you for the meeting"),
        ("remind him to sign the order.", "remind you to sign the order"),
        ("help them help themselves", "help you help yourself"),
    ],
)
def test_a_goal_is_said_to_its_reader(goal: str, said: str) -> None:
    assert second_person(goal) == said


LONG_COMPANY = ("Analytical Engines and Difference Machines " + _text(300, 3))[:256].strip()
RECIPIENTS: list[JsonDoc] = [
    ADA,
    {"name": "Ada Lovelace"},
    {"company": "Analytical Engines"},
    {},
    {"name": "Ada Lovelace", "company": LONG_COMPANY},
]
GOALS: list[tuple[str, tuple[str, ...]]] = [
    ("invite her to the product webinar on Thursday", ("live demo", "30 minutes")),
    ("renewal of their contract", ()),
    (_text(2000, 1), tuple(_text(500, 10 + i) for i in range(20))),
]


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("recipient", RECIPIENTS, ids=["full", "name", "company", "none", "long"])
@pytest.mark.parametrize("goal_points", GOALS, ids=["webinar", "renewal", "huge"])
def test_the_template_draft_passes_every_check(
    channel: str, recipient: JsonDoc, goal_points: tuple[str, tuple[str, ...]]
) -> None:
    goal, points = goal_points
    assert len(LONG_COMPANY) == 256 and len(goal) <= 2000
    spec = DraftSpec(recipient, goal, channel, "professional", points, "Sam from Acme")
    limit = POLICY.max_chars[channel]
    draft = fallback_draft(spec, limit)
    assert draft["channel"] == channel and len(draft["body"]) <= limit
    assert bool(draft["subject"]) is (channel == "CHANNEL_EMAIL")
    issues = check_draft(
        draft, tone=spec.tone, policy=POLICY, recipient=recipient, grounding=grounding(spec)
    )
    assert issues == [], draft


def test_the_template_draft_passes_for_a_company_written_in_capitals() -> None:
    recipient = {"name": "Ada", "company": "IKEA"}
    spec = DraftSpec(
        recipient, "renewal of their contract", "CHANNEL_EMAIL", "professional", (), "Sam"
    )
    draft = fallback_draft(spec, POLICY.max_chars[spec.channel])
    issues = check_draft(
        draft, tone=spec.tone, policy=POLICY, recipient=spec.recipient, grounding=grounding(spec)
    )
    assert issues == []


def _draft_part(name: str, text: str) -> str:
    return accept_draft_part(name, text, WEBINAR, POLICY, [])


def test_the_model_parts_of_a_draft_are_kept_when_they_say_what_they_must() -> None:
    assert _draft_part("subject", "Our product webinar on Thursday") == ""
    assert (
        _draft_part("goal", "I would like to invite you to our product webinar on Thursday.") == ""
    )
    assert (
        _draft_part("points", "It has a live demo of the new reports and takes 30 minutes.") == ""
    )


def test_a_subject_must_be_about_the_goal_not_the_recipient() -> None:
    assert _draft_part("subject", "Ada Lovelace") == "make the subject about the goal"
    assert _draft_part("subject", "Ada Lovelace and the webinar") == (
        "leave the recipient's name out of the subject"
    )


def test_a_goal_sentence_must_say_the_goal() -> None:
    why = _draft_part("goal", "I hope all is well at Analytical Engines this week.")
    assert why == "say the goal: invite you to the product webinar on Thursday"


def test_a_points_sentence_must_mention_a_key_point_and_the_rest_are_listed() -> None:
    assert _draft_part("points", "It has a live demo of the new reports.") == ""
    assert _draft_part("points", "It will be a lot of fun for everyone.") == (
        "mention live demo of the new reports; 30 minutes"
    )
    sentence = "It has a live demo of the new reports."
    assert with_uncovered_points(WEBINAR, sentence) == (
        f"{sentence}\n\nAlso worth knowing:\n- 30 minutes"
    )
    assert with_uncovered_points(WEBINAR, f"{sentence[:-1]} and takes 30 minutes.") == (
        f"{sentence[:-1]} and takes 30 minutes."
    )


def test_a_copied_example_is_refused_and_a_flipped_our_is_mended() -> None:
    copied = "The price of your plan stays the same for the live demo of the new reports."
    assert "example" in _draft_part("points", copied)
    spec = replace(WEBINAR, goal="share our new case study about churn")
    assert repaired("I would love to share your new case study.", spec) == (
        "I would love to share our new case study."
    )


# --- the lead analysis the code composes --------------------------------------------------------

SCORE: JsonDoc = {
    "score": 82,
    "grade": "GRADE_A",
    "positive_factors": [
        {"feature": "demo_requested", "reason": "Requested a demo (+14)"},
        {"feature": "pricing_page_visits", "reason": "Viewed the pricing page 9 times (+9)"},
        {"feature": "seniority_level", "reason": "Director-level contact (+5)"},
        {"feature": "page_visits", "reason": "40 website visits in the last 30 days (+2)"},
    ],
    "negative_factors": [
        {"feature": "days_since_last_touch", "reason": "Last touched 40 days ago (-3)"},
    ],
}
FACTORS = "\n".join(
    f"- {f['reason']}" for f in [*SCORE["positive_factors"], *SCORE["negative_factors"]]
)
ANALYSIS_FACTS = "\n".join(
    [
        "Company: Initech\nIndustry: software\nEmployees: 800\nDemo requested: yes",
        "82",
        "A",
        FACTORS,
    ]
)


@pytest.mark.parametrize(
    "features",
    [
        LeadFeatures(company_name="Initech"),
        LeadFeatures(
            employee_count=800,
            seniority=Seniority.DIRECTOR,
            industry="software",
            demo_requested=True,
        ),
    ],
    ids=["sparse", "complete"],
)
def test_the_template_analysis_of_a_scored_lead_passes_the_checks(features: LeadFeatures) -> None:
    parts = template_analysis(SCORE, features)
    text = analysis_text(parts)
    assert check_analysis(text) == []
    assert text.startswith("Score 82/100 (grade A).")
    assert "Requested a demo (+14)" in text and "Last touched 40 days ago (-3)" in text
    assert "Viewed the pricing page" in text and "40 website visits" not in text  # top 3 only
    if features.employee_count is None:
        assert text.endswith(
            "Missing: company size, seniority, industry, whether they asked for a demo."
        )
    else:
        assert parts["gaps"] == "" and text.endswith("Risks: Last touched 40 days ago (-3).")


def test_the_analysis_of_a_lead_without_a_score_passes_the_checks() -> None:
    text = analysis_text(template_analysis({}, LeadFeatures()))
    assert check_analysis(text) == [] and "No score is available" in text


def test_analysis_text_keeps_the_parts_order_and_leaves_out_empty_ones() -> None:
    assert [p.name for p in ANALYSIS_PARTS] == ["verdict", "drivers"]  # the rest is the code's
    parts = {"gaps": "Gaps.", "verdict": "Verdict.", "drivers": "", "score": "Score."}
    assert analysis_text(parts) == "Score. Verdict. Gaps."


def _analysis_part(name: str, text: str) -> str:
    return accept_analysis_part(
        name, text, facts=ANALYSIS_FACTS, factors=FACTORS, grade="A", taken=[]
    )


def test_analysis_parts_that_keep_to_the_facts_are_kept() -> None:
    assert (
        _analysis_part("verdict", "This is a promising lead who is ready to talk to sales.") == ""
    )
    drivers = "The demo request and the visits to the pricing page drive the score."
    assert _analysis_part("drivers", drivers) == ""


def test_drivers_must_name_a_factor_of_the_score() -> None:
    why = _analysis_part("drivers", "Several good signals make this lead look promising overall.")
    assert why == "name the factors that drive the score"


def test_a_verdict_must_agree_with_the_grade() -> None:
    low = accept_analysis_part(
        "verdict",
        "This is a strong lead that is ready for a sales call.",
        facts=ANALYSIS_FACTS,
        factors=FACTORS,
        grade="D",
        taken=[],
    )
    assert low == "say how promising a grade D lead is"
    assert _analysis_part("verdict", "This lead is weak and not worth a call.") != ""


def test_a_verdict_with_an_invented_number_is_refused() -> None:
    why = _analysis_part("verdict", "This lead is 95% likely to buy within a quarter.")
    assert '"95%"' in why and "not in the facts" in why


def test_a_last_clause_repeating_another_part_is_dropped() -> None:
    goal = "I would love to follow up on your question about single sign-on."
    text = "It works with Okta and Azure AD, and I would love to follow up on your question."
    assert without_repeated_clause(text, [goal]) == "It works with Okta and Azure AD."
    own = "It works with Okta and Azure AD, and setup takes one afternoon."
    assert without_repeated_clause(own, [goal]) == own  # a clause of its own stays


def test_cleaning_strips_what_a_model_wraps_around_a_part() -> None:
    answer = json.dumps({"goal": '  "Goal: i would like to  invite you\nto our webinar."  '})
    assert parse_parts(answer, [GOAL]) == {"goal": "I would like to invite you to our webinar."}
    assert cleaned("**Subject: Your product demo**") == "Your product demo"


def test_a_part_may_not_contradict_or_stutter_or_copy_the_goals_imperative() -> None:
    assert "opposite" in _draft_part("points", "The live demo of the new reports is not ready.")
    stutter = "The live demo of the new reports takes 30 minutes on 30 minutes."
    assert _draft_part("points", stutter) == 'say "minutes" once'
    imperative = "Invite you to the product webinar on Thursday."
    assert "one sentence" in _draft_part("goal", imperative)  # the schema wants "I ..."
    assert _draft_part("goal", "I would like to invite you to the product webinar.") == ""


def test_patterns_use_only_what_the_local_models_grammar_compiler_reads() -> None:
    # llama.cpp drops a pattern it cannot parse (e.g. an escaped space) and then accepts any
    # string: every pattern we send must stay within plain classes, groups and bounds.
    spec = replace(WEBINAR, channel="CHANNEL_EMAIL")
    for part in draft_parts(spec) + ANALYSIS_PARTS:
        pattern = schema([part])["properties"][part.name]["pattern"]
        assert "\\ " not in pattern and "(?=" not in pattern and "(?<" not in pattern
    goal = next(p for p in draft_parts(spec) if p.name == "goal")
    assert re.fullmatch(schema([goal])["properties"]["goal"]["pattern"], "I'd like to meet you.")


def test_a_number_keeps_the_word_it_counts() -> None:
    renewal = replace(WEBINAR, points=("10% discount for a 2-year term",))
    facts = grounding(renewal)
    wrong = "The 10% discount will be paid back in 10 years."
    assert "10 year" in accept(wrong, POINTS, grounding=facts, tone="formal", policy=POLICY)
    right = "You get a 10% discount for a 2-year term."
    assert accept(right, POINTS, grounding=facts, tone="formal", policy=POLICY) == ""
