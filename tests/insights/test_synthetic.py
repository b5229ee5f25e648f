"""The evaluation set of retrieval: seeded histories with planted facts and known answers."""

from __future__ import annotations

import re
from collections import Counter

from ai_orchestration.insights._synthetic import generate_evaluation_set

INTERACTION_ID = re.compile(r"^[A-Za-z0-9._:-]+$")


def test_the_set_is_the_size_the_issue_asks_for_and_repeats_with_its_seed() -> None:
    made = generate_evaluation_set()
    assert len(made.interactions) == 50 * 30
    assert len(made.questions) >= 200
    assert made == generate_evaluation_set()  # same seed, same set
    assert made != generate_evaluation_set(seed=1)
    per_customer = Counter(i.customer_id for i in made.interactions)
    assert len(per_customer) == 50 and set(per_customer.values()) == {30}


def test_every_answer_stands_in_its_interaction_and_in_no_other_of_the_customer() -> None:
    made = generate_evaluation_set(customers=20)
    texts = {i.interaction_id: i.text for i in made.interactions}
    by_customer: dict[str, list[str]] = {}
    for interaction in made.interactions:
        by_customer.setdefault(interaction.customer_id, []).append(interaction.interaction_id)
    for question in made.questions:
        holding = [
            iid for iid in by_customer[question.customer_id] if question.answer in texts[iid]
        ]
        assert holding == [question.interaction_id], question


def test_each_fact_is_asked_in_its_own_words_and_in_others() -> None:
    made = generate_evaluation_set(customers=5)
    kinds = Counter((q.fact, q.paraphrase) for q in made.questions)
    facts = {fact for fact, _ in kinds}
    assert len(facts) == 8
    assert all(kinds[(fact, False)] == kinds[(fact, True)] == 5 for fact in facts)


def test_interactions_are_valid_for_the_contract() -> None:
    for interaction in generate_evaluation_set(customers=5).interactions:
        assert INTERACTION_ID.match(interaction.interaction_id)
        assert interaction.occur_time.utcoffset() is not None
        assert 0 < len(interaction.body) <= 100_000
