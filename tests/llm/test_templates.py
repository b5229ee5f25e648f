"""Prompt templates: strict parsing, rendering, versions, tenant overrides and A/B splits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ai_orchestration import errors
from ai_orchestration.llm._templates import (
    BUILTIN_TEMPLATES,
    PromptTemplate,
    PromptTemplateRegistry,
    choose_version,
)
from ai_orchestration.llm._types import CallContext, ChatMessage
from ai_orchestration.scoring import CHALLENGER_ARM, experiment_arm
from ai_orchestration.storage import Database, PromptTemplateRepository

ANSWER = "customer_answer"
ANSWER_VARIABLES = {"customer_name": "Acme", "sources": "[S1] Renewal call", "question": "Why?"}
SUBJECTS = [f"lead-{i}" for i in range(5_000)]


class ManualClock:
    """A monotonic clock the test moves by hand (drives the registry's cache TTL)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _builtin(name: str) -> PromptTemplate:
    return next(t for t in BUILTIN_TEMPLATES if t.name == name)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async with Database.from_url(f"sqlite:///{tmp_path}/templates.db") as db:
        await db.migrate()
        yield db


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def registry(database: Database, clock: ManualClock) -> PromptTemplateRegistry:
    registry = PromptTemplateRegistry(
        repository=PromptTemplateRepository(database=database), clock=clock
    )
    await registry.seed_builtins()
    return registry


def _violations(raised: pytest.ExceptionInfo[errors.InvalidArgumentError]) -> list[str]:
    return [violation.field for violation in raised.value.violations]


# --------------------------------------------------------------------------------------------
# PromptTemplate


def test_render_inserts_values_and_names_the_version() -> None:
    template = PromptTemplate(
        name="greeting", version=3, system="You greet {audience}.", user="Say hi to {name}!"
    )

    rendered = template.render({"audience": "buyers", "name": "Ada"})

    assert template.variables == {"audience", "name"}
    assert rendered.messages == (
        ChatMessage("system", "You greet buyers."),
        ChatMessage("user", "Say hi to Ada!"),
    )
    assert (rendered.template, rendered.version) == ("greeting", 3)
    context = rendered.context_for(CallContext(tenant_id="acme", run_id="run-1", step="draft"))
    assert context == CallContext(
        tenant_id="acme", run_id="run-1", step="draft", template="greeting", template_version=3
    )


def test_no_system_text_means_only_a_user_message() -> None:
    rendered = PromptTemplate(name="bare", version=1, system="", user="{q}").render({"q": "?"})

    assert rendered.messages == (ChatMessage("user", "?"),)


def test_missing_variables_are_one_violation_each_at_the_callers_path() -> None:
    template = _builtin(ANSWER)

    with pytest.raises(errors.InvalidArgumentError) as raised:
        template.render({"question": "Why?"}, field="request.variables")

    assert _violations(raised) == [
        "request.variables.customer_name",
        "request.variables.sources",
    ]
    assert all("customer_answer v1" in v.description for v in raised.value.violations)


def test_unknown_and_non_string_variables_are_refused() -> None:
    template = PromptTemplate(name="t", version=1, system="", user="{customer_name} {n}")

    with pytest.raises(errors.InvalidArgumentError) as raised:
        template.render({"customer_name": "Acme", "n": 3, "custmer_name": "typo"})  # type: ignore[dict-item]

    assert _violations(raised) == ["variables.custmer_name", "variables.n"]
    assert "not used" in raised.value.violations[0].description
    assert raised.value.violations[1].description == "must be a string"


def test_doubled_braces_are_literal_and_not_variables() -> None:
    template = PromptTemplate(
        name="json_reply", version=1, system='Reply as {{"answer": ...}}.', user="{{q}} is {q}"
    )

    rendered = template.render({"q": "x"})

    assert template.variables == {"q"}
    assert [m.content for m in rendered.messages] == ['Reply as {"answer": ...}.', "{q} is x"]


@pytest.mark.parametrize(
    "value",
    ["{customer_name}", "{x.__class__}", "{0}", "{{", "}", "{x!r:>{width}}", "%(name)s"],
)
def test_values_are_data_and_never_formatted_again(value: str) -> None:
    template = PromptTemplate(name="t", version=1, system="", user="<{text}> {customer_name}")

    rendered = template.render({"text": value, "customer_name": "Acme"})

    assert rendered.messages[0].content == f"<{value}> Acme"


@pytest.mark.parametrize(
    ("user", "complaint"),
    [
        ("{x.__class__}", "not a plain variable name"),
        ("{x.__class__.__init__.__globals__}", "not a plain variable name"),
        ("{x[0]}", "not a plain variable name"),
        ("{0}", "not a plain variable name"),
        ("{}", "not a plain variable name"),
        ("{naïve}", "not a plain variable name"),
        ("{x!r}", "conversion or format spec"),
        ("{x:>10}", "conversion or format spec"),
        ("{x:{y}}", "conversion or format spec"),
        ("open { brace", "literal braces"),
        ("close } brace", "literal braces"),
    ],
)
def test_placeholders_other_than_plain_names_are_refused(user: str, complaint: str) -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        PromptTemplate(name="t", version=1, system="ok {fine}", user=user)

    assert _violations(raised) == ["user"]
    assert complaint in raised.value.violations[0].description


def test_every_bad_part_is_reported_at_once() -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        PromptTemplate(name="Bad Name", version=1, system="{a.b}", user="   ")

    assert _violations(raised) == ["name", "user", "system"]


def test_builtins_are_the_six_workflow_templates_and_render() -> None:
    assert [t.name for t in BUILTIN_TEMPLATES] == [
        "analysis_parts",
        "next_best_action",
        "draft_parts",
        "follow_up_parts",
        ANSWER,
        "insight_summary",
    ]
    for template in BUILTIN_TEMPLATES:
        assert template.version == 1
        assert template.system and template.variables
        values = {name: f"<{name} value>" for name in template.variables}
        rendered = template.render(values)
        assert [m.role for m in rendered.messages] == ["system", "user"]
        assert all(f"<{name} value>" in rendered.messages[1].content for name in values)


# --------------------------------------------------------------------------------------------
# A/B assignment


def test_choose_version_splits_by_share_and_is_stable_per_key() -> None:
    arms = ((1, 0.2), (2, 0.3), (5, 0.5))

    chosen = [choose_version(ANSWER, arms, key) for key in SUBJECTS]

    for version, share in arms:
        assert abs(chosen.count(version) / len(SUBJECTS) - share) <= 0.03
    assert chosen == [choose_version(ANSWER, arms, key) for key in SUBJECTS]


def test_choose_version_uses_the_scoring_experiment_assignment() -> None:
    arms = ((1, 0.4), (2, 0.6))

    for key in SUBJECTS[:500]:
        in_first = experiment_arm(f"{ANSWER}\x00{key}", 0.4) == CHALLENGER_ARM
        assert choose_version(ANSWER, arms, key) == (1 if in_first else 2)


def test_splits_of_different_templates_are_independent() -> None:
    arms = ((1, 0.5), (2, 0.5))

    same = sum(
        choose_version("lead_analysis", arms, key) == choose_version(ANSWER, arms, key)
        for key in SUBJECTS
    )

    assert abs(same / len(SUBJECTS) - 0.5) <= 0.03


def test_without_a_subject_key_the_largest_arm_answers() -> None:
    assert choose_version(ANSWER, ((1, 0.3), (2, 0.7)), "") == 2
    assert choose_version(ANSWER, ((4, 0.5), (7, 0.5)), "") == 4


# --------------------------------------------------------------------------------------------
# PromptTemplateRegistry


async def test_seeding_is_idempotent(database: Database) -> None:
    repository = PromptTemplateRepository(database=database)
    first = PromptTemplateRegistry(repository=repository)
    assert await first.seed_builtins() == len(BUILTIN_TEMPLATES)
    # Replicas starting together, and a later start with changed built-in text.
    changed = tuple(
        PromptTemplate(name=t.name, version=1, system="changed", user=t.user)
        for t in BUILTIN_TEMPLATES
    )
    again = [PromptTemplateRegistry(repository=repository, builtins=changed) for _ in range(3)]

    assert await asyncio.gather(*(r.seed_builtins() for r in again)) == [0, 0, 0]
    for builtin in BUILTIN_TEMPLATES:
        versions = await first.list_versions(None, builtin.name)
        assert versions == (builtin,)


async def test_render_uses_the_newest_version_and_records_it(
    registry: PromptTemplateRegistry,
) -> None:
    rendered = await registry.render("acme", ANSWER, ANSWER_VARIABLES)
    assert (rendered.template, rendered.version) == (ANSWER, 1)
    assert "Customer: Acme" in rendered.messages[1].content

    version = await registry.publish(
        None, ANSWER, "Cite [S1].", "{customer_name}|{sources}|{question}"
    )

    rendered = await registry.render("acme", ANSWER, ANSWER_VARIABLES)
    assert version == 2
    assert (rendered.version, rendered.messages[1].content) == (2, "Acme|[S1] Renewal call|Why?")


async def test_versions_are_immutable(registry: PromptTemplateRegistry) -> None:
    original = await registry.get(None, ANSWER, 1)

    await registry.publish(None, ANSWER, "new system", "{question} {customer_name} {sources}")
    await registry.publish("acme", ANSWER, "acme system", "{question}{customer_name}{sources}")

    assert await registry.get(None, ANSWER, 1) == original
    assert await registry.get("acme", ANSWER, 1) == original
    assert [t.version for t in await registry.list_versions(None, ANSWER)] == [1, 2]


async def test_tenant_override_shadows_global_only_for_that_tenant(
    registry: PromptTemplateRegistry,
) -> None:
    version = await registry.publish(
        "acme", ANSWER, "Acme house style.", "{question} about {customer_name}: {sources}"
    )

    acme = await registry.render("acme", ANSWER, ANSWER_VARIABLES)
    other = await registry.render("globex", ANSWER, ANSWER_VARIABLES)
    assert (acme.version, acme.messages[0].content) == (version, "Acme house style.")
    assert (other.version, other.messages[0].content) == (1, _builtin(ANSWER).system)
    assert (await registry.get("acme", ANSWER)).tenant_id == "acme"
    assert (await registry.get("globex", ANSWER)).tenant_id is None
    assert [t.tenant_id for t in await registry.list_versions("acme", ANSWER)] == ["acme"]


async def test_override_must_keep_the_global_variables(
    registry: PromptTemplateRegistry,
) -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        await registry.publish("acme", ANSWER, "", "{question} {customer}")

    assert _violations(raised) == ["user"]
    assert "missing: customer_name, sources; unknown: customer" in (
        raised.value.violations[0].description
    )
    assert [t.tenant_id for t in await registry.list_versions("acme", ANSWER)] == [None]


async def test_publish_refuses_unsafe_templates_and_stores_nothing(
    registry: PromptTemplateRegistry,
) -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        await registry.publish(None, ANSWER, "{question.__class__}", "{question}")

    assert _violations(raised) == ["system"]
    assert len(await registry.list_versions(None, ANSWER)) == 1


async def test_unknown_template_or_version_is_not_found(
    registry: PromptTemplateRegistry,
) -> None:
    with pytest.raises(errors.NotFoundError):
        await registry.render("acme", "no_such_template", {})
    with pytest.raises(errors.NotFoundError):
        await registry.get("acme", ANSWER, 7)


async def test_render_reports_variable_errors_at_the_given_path(
    registry: PromptTemplateRegistry,
) -> None:
    with pytest.raises(errors.InvalidArgumentError) as raised:
        await registry.render(
            "acme", ANSWER, {"question": "q", "extra": "x"}, field="input.variables"
        )

    assert _violations(raised) == [
        "input.variables.customer_name",
        "input.variables.sources",
        "input.variables.extra",
    ]


async def _publish_answer_versions(registry: PromptTemplateRegistry, count: int) -> list[int]:
    return [
        await registry.publish(None, ANSWER, f"variant {i}", "{customer_name}{sources}{question}")
        for i in range(count)
    ]


async def test_ab_split_follows_the_shares_and_is_stable(
    registry: PromptTemplateRegistry,
) -> None:
    await _publish_answer_versions(registry, 2)
    await registry.set_experiment("acme", ANSWER, {1: 0.2, 2: 0.3, 3: 0.5})

    first = [
        (await registry.render("acme", ANSWER, ANSWER_VARIABLES, key)).version for key in SUBJECTS
    ]
    second = [
        (await registry.render("acme", ANSWER, ANSWER_VARIABLES, key)).version for key in SUBJECTS
    ]

    assert first == second
    for version, share in {1: 0.2, 2: 0.3, 3: 0.5}.items():
        assert abs(first.count(version) / len(SUBJECTS) - share) <= 0.03
    assert await registry.experiment("acme", ANSWER) == {1: 0.2, 2: 0.3, 3: 0.5}
    # Another tenant has no split: always the newest version.
    others = {
        (await registry.render("globex", ANSWER, ANSWER_VARIABLES, k)).version
        for k in SUBJECTS[:50]
    }
    assert others == {3}


async def test_global_split_applies_until_a_tenant_overrides(
    registry: PromptTemplateRegistry,
) -> None:
    await _publish_answer_versions(registry, 1)
    await registry.set_experiment(None, ANSWER, {1: 0.5, 2: 0.5})

    versions = {
        (await registry.render("globex", ANSWER, ANSWER_VARIABLES, k)).version
        for k in SUBJECTS[:200]
    }
    assert versions == {1, 2}

    own = await registry.publish("acme", ANSWER, "acme", "{question}{sources}{customer_name}")
    acme = {
        (await registry.render("acme", ANSWER, ANSWER_VARIABLES, k)).version for k in SUBJECTS[:200]
    }
    assert acme == {own}


async def test_ending_a_split_returns_to_the_newest_version(
    registry: PromptTemplateRegistry,
) -> None:
    await _publish_answer_versions(registry, 1)
    await registry.set_experiment("acme", ANSWER, {1: 1.0})
    assert (await registry.render("acme", ANSWER, ANSWER_VARIABLES, "lead-1")).version == 1

    await registry.set_experiment("acme", ANSWER, {})

    assert (await registry.render("acme", ANSWER, ANSWER_VARIABLES, "lead-1")).version == 2
    assert await registry.experiment("acme", ANSWER) == {}


@pytest.mark.parametrize(
    ("split", "fields"),
    [
        ({1: 0.5, 2: 0.4}, ["versions_with_shares"]),
        ({1: 0.0, 2: 1.0}, ["versions_with_shares[1]"]),
        ({1: 1.5}, ["versions_with_shares[1]"]),
        ({1: float("nan"), 2: 0.5}, ["versions_with_shares[1]"]),
        ({1: 0.5, 9: 0.5}, ["versions_with_shares[9]"]),
        ({1: 0.5, 3: 0.5}, ["versions_with_shares[3]"]),
    ],
)
async def test_bad_splits_are_refused(
    registry: PromptTemplateRegistry, split: dict[int, float], fields: list[str]
) -> None:
    await _publish_answer_versions(registry, 1)
    # Version 3 takes other variables than versions 1 and 2.
    await registry.publish(None, ANSWER, "", "{question}")

    with pytest.raises(errors.InvalidArgumentError) as raised:
        await registry.set_experiment("acme", ANSWER, split)

    assert _violations(raised) == fields
    assert await registry.experiment("acme", ANSWER) == {}


async def test_another_replicas_publish_shows_after_the_cache_ttl(
    database: Database, clock: ManualClock
) -> None:
    def replica() -> PromptTemplateRegistry:
        repository = PromptTemplateRepository(database=database)
        return PromptTemplateRegistry(repository=repository, clock=clock, cache_ttl_seconds=5)

    writer, reader = replica(), replica()
    await writer.seed_builtins()
    assert (await reader.render("acme", ANSWER, ANSWER_VARIABLES)).version == 1

    await writer.publish(None, ANSWER, "", "{customer_name}{sources}{question}")
    assert (await writer.render("acme", ANSWER, ANSWER_VARIABLES)).version == 2
    clock.now += 4.9
    assert (await reader.render("acme", ANSWER, ANSWER_VARIABLES)).version == 1
    clock.now += 0.2
    assert (await reader.render("acme", ANSWER, ANSWER_VARIABLES)).version == 2
