"""Alert settings: defaults, validation naming fields under a prefix, the stored document, and
the cooldown rule the alert log applies."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from ai_orchestration.errors import InvalidArgumentError
from ai_orchestration.insights import AlertKind, AlertRules, cooling_down

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
RULE_KINDS = [k for k in AlertKind if k is not AlertKind.BUDGET_THRESHOLD]


# --- settings --------------------------------------------------------------------------------


def test_defaults() -> None:
    rules = AlertRules()
    assert rules.enabled == frozenset(RULE_KINDS)
    assert (rules.negative_threshold, rules.churn_drop) == (-0.5, 0.35)
    assert (rules.repeated_complaints, rules.complaint_days) == (3, 14)
    assert rules.cooldown == timedelta(hours=24)


def test_json_round_trip() -> None:
    rules = AlertRules(
        enabled=frozenset({AlertKind.CHURN_RISK, AlertKind.ESCALATION}),
        negative_threshold=-0.7,
        churn_drop=0.5,
        repeated_complaints=4,
        complaint_days=7,
        cooldown=timedelta(hours=6),
    )
    document = rules.to_json()
    assert document == {
        "enabled": ["churn_risk", "escalation"],
        "negative_threshold": -0.7,
        "churn_drop": 0.5,
        "repeated_complaints": 4,
        "complaint_days": 7,
        "cooldown_seconds": 21600,
    }
    assert AlertRules.from_json(document) == rules
    assert AlertRules.from_json(AlertRules().to_json()) == AlertRules()


@pytest.mark.parametrize(
    "document",
    [
        None,
        "alerts",
        [],
        {"negative_threshold": 0.5},
        {"negative_threshold": "low"},
        {"repeated_complaints": 2.5},
        {"repeated_complaints": True},
        {"complaint_days": 0},
        {"cooldown_seconds": -1},
        {"cooldown_seconds": math.inf},
        {"enabled": ["escalation", "weather"]},
        {"enabled": ["budget_threshold"]},
        {"enabled": "escalation"},
        {"enabled": [1]},
        {"churn_drop": 0.4, "complaint_days": 400},
    ],
)
def test_a_document_that_fails_validation_gives_the_defaults(document: object) -> None:
    assert AlertRules.from_json(document) == AlertRules()  # type: ignore[arg-type]


def test_missing_keys_take_their_defaults() -> None:
    rules = AlertRules.from_json({"churn_drop": 0.5, "enabled": []})
    assert rules == AlertRules(churn_drop=0.5, enabled=frozenset())


def test_checked_names_every_bad_field_under_the_prefix() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        AlertRules.checked(
            enabled=["churn_risk", "weather", "budget_threshold"],
            negative_threshold=-0.1,
            churn_drop=math.nan,
            repeated_complaints=1,
            complaint_days=366,
            cooldown=timedelta(days=31),
            field_prefix="settings.alerts.",
        )
    fields = [v.field for v in raised.value.violations]
    assert fields == [
        "settings.alerts.enabled[1]",
        "settings.alerts.enabled[2]",
        "settings.alerts.negative_threshold",
        "settings.alerts.churn_drop",
        "settings.alerts.repeated_complaints",
        "settings.alerts.complaint_days",
        "settings.alerts.cooldown",
    ]
    assert "usage accountant" in raised.value.violations[1].description


def test_checked_fills_defaults_and_construction_validates() -> None:
    assert AlertRules.checked() == AlertRules()
    assert AlertRules.checked(enabled=["escalation"], cooldown=timedelta(0)) == AlertRules(
        enabled=frozenset({AlertKind.ESCALATION}), cooldown=timedelta(0)
    )
    with pytest.raises(InvalidArgumentError) as raised:
        AlertRules(enabled=frozenset({AlertKind.BUDGET_THRESHOLD}), churn_drop=0.0)
    assert [v.field for v in raised.value.violations] == ["enabled", "churn_drop"]
    with pytest.raises(InvalidArgumentError):
        AlertRules(cooldown=timedelta(seconds=1.5))


# --- cooldown --------------------------------------------------------------------------------


def test_cooling_down() -> None:
    rules = AlertRules(cooldown=timedelta(hours=24))
    assert not cooling_down(None, now=NOW, rules=rules)
    assert cooling_down(NOW - timedelta(hours=23, minutes=59), now=NOW, rules=rules)
    assert not cooling_down(NOW - timedelta(hours=24), now=NOW, rules=rules)
    assert cooling_down(NOW + timedelta(seconds=5), now=NOW, rules=rules)  # a replica's clock
    assert not cooling_down(NOW, now=NOW, rules=AlertRules(cooldown=timedelta(0)))
