"""The deterministic checks of drafts and analyses, on texts users saw delivered and close ones."""

from __future__ import annotations

from ai_orchestration.workflows.graphs._checks import (
    CHECKS,
    DraftIssue,
    check_analysis,
    check_draft,
    normalized,
    sentences,
)
from ai_orchestration.workflows.graphs._content import ContentPolicy

POLICY = ContentPolicy()
ADA = {"name": "Ada Lovelace", "company": "Analytical Engines", "role": "Head of Engineering"}
GROUNDING = """Recipient: Ada Lovelace, Head of Engineering at Analytical Engines
Goal: book a 30 minutes demo of the reporting module
Key points:
- Their team of 40 analysts builds its reports by hand
- Pilot customers cut reporting time by 20%
Sender: Sam Carter, Acme Analytics"""

GOOD_EMAIL = """Hi Ada,

Your team of 40 analysts at Analytical Engines still builds its reports by hand. Pilot \
customers of our reporting module cut their reporting time by 20%.

Would a 30-minute demo next week work for you?

Best regards,
Sam Carter
Acme Analytics"""
GOOD_SMS = (
    "Hi Ada, Sam from Acme Analytics here. Pilot customers cut reporting time by 20% with our "
    "reporting module. Open to a 30-minute demo next week?"
)
GOOD_LINKEDIN = """Hi Ada, I saw that the 40 analysts at Analytical Engines build their reports \
by hand. Pilot customers of our reporting module cut that time by 20%. Would you be open to a \
30-minute demo?

Best,
Sam"""
GOOD_ANALYSIS = (
    "Analytical Engines has 40 analysts who build reports by hand, which is the pain our "
    "reporting module removes. Ada Lovelace leads engineering and can sponsor a pilot. "
    "Offer a 30-minute demo that shows the 20% time saving of pilot customers."
)

# The texts below were delivered to users; each must be caught by the checks that name it.
_SALES = (
    "I hope this message finds you well. Our innovative platform helps businesses like yours "
    "streamline operations, cut costs and grow revenue faster than ever before.",
    "Let me know if you would like to schedule a quick call to discuss how we can help your "
    "team reach its goals this quarter.",
)
BAD_SMS = ("<<<\n\nDear [Company Name]\n\nDear [Company Name]\n\n" + "\n\n".join(_SALES * 4))[:860]
BAD_EMAIL = """<<<
Draft:
Hi Ada,

I hope you are doing well. I wanted to reach out about the reporting module at Acme Analytics.

Best regards,
Sam
>>>

Reviewer feedback: <<< - The body has 1757 characters; shorten it to at most 1500."""
_PARAGRAPH = (
    "Analytical Engines is a strong fit for the reporting module. The team builds reports by "
    "hand and has asked about automation twice this quarter."
)
BAD_ANALYSIS = "\n\n".join([_PARAGRAPH] * 3) + "\n\nThe next step is to book a demo with their"


def _email(body: str, subject: str = "Faster reporting for Analytical Engines") -> dict[str, str]:
    return {"subject": subject, "body": body, "channel": "CHANNEL_EMAIL"}


def _sms(body: str) -> dict[str, str]:
    return {"subject": "", "body": body, "channel": "CHANNEL_SMS"}


def _issues(
    draft: dict[str, str], *, grounding: str | None = GROUNDING, tone: str = "professional"
) -> dict[str, str]:
    issues = check_draft(draft, tone=tone, policy=POLICY, recipient=ADA, grounding=grounding)
    checks = [issue.check for issue in issues]
    assert checks == sorted(set(checks), key=CHECKS.index)  # one per check, in CHECKS order
    return {issue.check: issue.message for issue in issues}


def _with_body(text: str) -> dict[str, str]:
    """GOOD_EMAIL with its closing question replaced by ``text``."""
    return _email(GOOD_EMAIL.replace("Would a 30-minute demo next week work for you?", text))


def test_good_drafts_pass_every_check() -> None:
    assert _issues(_email(GOOD_EMAIL)) == {}
    assert _issues(_sms(GOOD_SMS)) == {}
    linkedin = {"subject": "", "body": GOOD_LINKEDIN, "channel": "CHANNEL_LINKEDIN"}
    assert _issues(linkedin) == {}


def test_issue_json() -> None:
    issue = DraftIssue("subject", "Add a subject line.")
    assert issue.to_json() == {"check": "subject", "message": "Add a subject line."}


def test_the_delivered_sms_is_caught_by_every_check_that_names_it() -> None:
    assert len(BAD_SMS) == 860
    issues = _issues(_sms(BAD_SMS))
    assert issues["length"] == "The body has 860 characters; shorten it to at most 320."
    assert issues["placeholder"] == (
        "Replace the unfilled placeholders [Company Name] with real text or remove them."
    )
    assert '"<<<"' in issues["scaffolding"]
    assert issues["repetition"].startswith('The sentence "Dear [Company Name]" is repeated')
    # As a person's edit it fails just the same: these are message checks.
    human = _issues(_sms(BAD_SMS), grounding=None)
    assert {"length", "placeholder", "scaffolding", "repetition"} <= human.keys()


def test_the_delivered_email_with_prompt_text_and_feedback_is_caught() -> None:
    issues = _issues(_email(BAD_EMAIL))
    assert issues["scaffolding"] == (
        'Remove the prompt text "<<<", "Draft:", ">>>", "Reviewer feedback"; '
        "write only the message itself."
    )
    assert '"1757"' in issues["invented_fact"]


def test_the_delivered_analysis_that_loops_and_stops_is_caught() -> None:
    issues = {issue.check: issue.message for issue in check_analysis(BAD_ANALYSIS)}
    assert issues.keys() == {"repetition", "truncated"}
    assert issues["repetition"] == (
        'The sentence "Analytical Engines is a strong fit for the reporting module." '
        "is repeated; say it once."
    )
    assert issues["truncated"] == (
        'The text stops mid-sentence ("…next step is to book a demo with their"); '
        "finish the sentence or remove it."
    )


def test_a_good_analysis_passes() -> None:
    assert check_analysis(GOOD_ANALYSIS) == []


def test_a_short_analysis_fails_length() -> None:
    assert [issue.check for issue in check_analysis("Good lead.")] == ["length"]
    assert check_analysis("Good lead.", min_chars=5) == []


def test_analysis_with_scaffolding_or_placeholder() -> None:
    found = check_analysis(
        "Here is the revised analysis: " + GOOD_ANALYSIS.replace("Ada", "[Name]")
    )
    assert [issue.check for issue in found] == ["placeholder", "scaffolding"]
    assert found[1].message.endswith("write only the analysis itself.")


def test_length() -> None:
    assert _issues(_sms(GOOD_SMS + " " + "x" * 200))["length"] == (
        f"The body has {len(GOOD_SMS) + 201} characters; shorten it to at most 320."
    )
    assert _issues(_sms("Hi Ada, call me?"), grounding=None)["length"] == (
        "The body is missing or too short; write a complete message."
    )
    assert "length" not in _issues(_sms(GOOD_SMS.ljust(320, "!")[:320]), tone="casual")


def test_a_draft_without_a_body_fails_length_only() -> None:
    assert _issues({"channel": "CHANNEL_SMS"}, grounding=None).keys() == {"length"}


def test_subject() -> None:
    assert _issues(_email(GOOD_EMAIL, subject=""))["subject"] == "Add a subject line."
    long = _issues(_email(GOOD_EMAIL, subject="Analytical Engines " * 7))
    assert long["subject"] == "Shorten the subject to at most 120 characters."
    two_lines = _issues(_email(GOOD_EMAIL, subject="Analytical Engines\nreports"))
    assert two_lines["subject"] == "Write the subject on one line."
    assert "subject" not in _issues(_sms(GOOD_SMS))


def test_placeholders_in_every_bracket_style() -> None:
    body = GOOD_EMAIL.replace(
        "next week", "on [insert date] at {time} ({{link}}, <First Name>, <<sender>>, [EMAIL_1])"
    )
    assert _issues(_email(body))["placeholder"] == (
        "Replace the unfilled placeholders [insert date], {time}, {{link}}, <First Name>, "
        "<<sender>>, [EMAIL_1] with real text or remove them."
    )
    markers = _issues(_with_body("Call XXX or reply by ___, date TBD."), grounding=None)
    assert markers["placeholder"] == (
        "Replace the unfilled placeholders XXX, ___, TBD with real text or remove them."
    )
    in_subject = _issues(_email(GOOD_EMAIL, subject="Reports for [company name]"))
    assert "[company name]" in in_subject["placeholder"]


def test_links_and_comparisons_are_no_placeholders() -> None:
    body = "Book a time at <https://acme.io/demo>, write to <sam@acme.io> or see [our page](https://acme.io)."
    assert "placeholder" not in _issues(_with_body(body), grounding=None)
    assert "placeholder" not in _issues(_with_body("Costs go < 2 and gains > 3."), grounding=None)


def test_scaffolding() -> None:
    body = "Subject: Demo\nHere's a draft for you.\n" + GOOD_EMAIL + "\n```"
    assert _issues(_email(body))["scaffolding"] == (
        'Remove the prompt text "Subject:", "Here\'s a draft", "```"; '
        "write only the message itself."
    )
    ai = _issues(_with_body("As an AI language model, I suggest a demo."))
    assert ai["scaffolding"].startswith('Remove the prompt text "As an AI"')
    # "Draft:" in the middle of a line is an ordinary word.
    ordinary = _with_body("I attached the plan; see the draft: it is short.")
    assert "scaffolding" not in _issues(ordinary)


def test_repetition_of_a_sentence_and_of_an_unaligned_loop() -> None:
    twice = _with_body("Would a demo work? Would a demo work?")
    assert _issues(twice)["repetition"] == (
        'The sentence "Would a demo work?" is repeated; say it once.'
    )
    loop = _with_body(
        "We can show how the reporting module saves time, and we can show how the reporting "
        "module saves time for analysts."
    )
    assert _issues(loop)["repetition"].startswith('The sentence "we can show how the reporting')
    short = _with_body("Thanks again. Thanks again.")
    assert "repetition" not in _issues(short)


def test_truncated() -> None:
    cut = _issues(_email(GOOD_EMAIL.rsplit("\n", 3)[0] + "\nWould you be free on"))
    assert cut["truncated"] == (
        'The text stops mid-sentence ("Would you be free on"); finish the sentence or remove it.'
    )
    no_name = _issues(_email(GOOD_EMAIL.removesuffix("\nSam Carter\nAcme Analytics")))
    assert no_name["truncated"].startswith('The text stops mid-sentence ("Best regards,")')
    colon = _issues(_sms("Hi Ada, Sam from Acme Analytics here. Three times for a demo:"))
    assert "truncated" in colon
    signed = _email(GOOD_EMAIL.removesuffix("\nAcme Analytics"))
    assert "truncated" not in _issues(signed)
    assert "truncated" not in _issues(_sms(GOOD_SMS.removesuffix("?") + "? - Sam"))
    assert "truncated" not in _issues(_with_body('Reply "yes" and I will send "the invite."'))


def test_a_greeting_to_someone_else_fails_in_every_mode() -> None:
    wrong = GOOD_EMAIL.replace("Hi Ada,", "Dear John,")
    expected = 'The greeting names "John", but the message is for Ada Lovelace.'
    assert _issues(_email(wrong), grounding=None)["recipient"] == expected
    assert _issues(_email(wrong))["recipient"] == f"{expected} Address Ada by name."


def test_greetings_without_a_name_or_with_the_surname_pass() -> None:
    for greeting in (
        "Hello team,",
        "Hi there,",
        "Hello,",
        "Good morning Ada,",
        "Dear Ms. Lovelace,",
    ):
        draft = _email(GOOD_EMAIL.replace("Hi Ada,", greeting))
        assert "recipient" not in _issues(draft, grounding=None), greeting
    surname = _email(GOOD_EMAIL.replace("Hi Ada,", "Dear Ms. Lovelace,"))
    assert "recipient" not in _issues(surname)


def test_recipient_name_and_company_when_grounded() -> None:
    body = GOOD_EMAIL.replace("Hi Ada,", "Hello,").replace(" at Analytical Engines", "")
    anonymous = _email(body, subject="Faster reporting")
    issues = _issues(anonymous)
    assert issues["recipient"] == "Address Ada by name. Mention Analytical Engines."
    # An SMS need not name the company, and a person's edit need not name either.
    assert "recipient" not in _issues(_sms(GOOD_SMS))
    assert "recipient" not in _issues(anonymous, grounding=None)
    legal = {**ADA, "company": "Analytical Engines Ltd."}
    issues_legal = check_draft(
        _email(GOOD_EMAIL), tone="professional", policy=POLICY, recipient=legal, grounding=GROUNDING
    )
    assert issues_legal == []


def test_a_persons_edit_is_not_held_to_the_facts() -> None:
    body = (
        "Hello,\n\nThe reporting module could save your analysts a day each week. Are you free "
        "on Friday at 9 for a call?\n\nBest regards,\nSam"
    )
    assert _issues(_email(body, subject="Faster reporting"), grounding=None) == {}
    grounded = _issues(_email(body, subject="Faster reporting"))
    assert grounded.keys() == {"recipient", "invented_fact"}


def test_banned_phrases() -> None:
    one = _issues(_with_body("Act now to book a demo."))
    assert one["banned_phrase"] == 'Remove the banned phrase "act now".'
    two = _issues(_with_body("Act now: results are guaranteed."))
    assert two["banned_phrase"] == 'Remove the banned phrases "act now", "guaranteed".'
    assert "banned_phrase" not in _issues(_with_body("Would you react now or later?"))


def test_tone() -> None:
    loud = _issues(_with_body("Book a demo TODAY, it is AMAZING! Really! Truly! btw 🙂"))
    assert loud["tone"] == (
        "Use at most 2 exclamation marks. Do not write words in capitals (it reads as "
        "shouting). Avoid slang in a professional message: btw. Avoid emoji in a "
        "professional message."
    )
    casual = _issues(_with_body("Would a demo work? Great! Thanks! 🙂"), tone="casual")
    assert "tone" not in casual


def test_invented_facts() -> None:
    body = "Are you free on Tuesday at 2:30 PM, April 24th, for a 45-minute call?"
    assert _issues(_with_body(body))["invented_fact"] == (
        'Remove "Tuesday", "2:30 PM", "April 24th", "45": they are not in the facts you were given.'
    )
    one = _issues(_with_body("Would a demo in March work for you?"))
    assert one["invented_fact"] == 'Remove "March": it is not in the facts you were given.'


def test_facts_that_were_given_are_not_invented() -> None:
    grounding = GROUNDING + "\nAvailability: Tuesday 2:30pm, 24 April"
    body = (
        "Would Tuesday at 2:30 PM on April 24th work? It may suit you, and I will march through "
        "the agenda:\n1. Reports\n2. Pilot results"
    )
    assert "invented_fact" not in _issues(_with_body(body), grounding=grounding)
    # Without grounding (a person's edit) nothing counts as invented.
    assert "invented_fact" not in _issues(_with_body("Free on Friday at 9?"), grounding=None)


def test_sentences_and_normalized() -> None:
    assert sentences('Hi Ada,\n\nIt works. Does it? "Yes." Done') == [
        "Hi Ada,",
        "It works.",
        "Does it?",
        '"Yes."',
        "Done",
    ]
    assert normalized("  Dear [Company Name], it's   GREAT! ") == "dear company name it s great"
