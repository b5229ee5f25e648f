"""Alert kinds, severities and one tenant's alert rules, with their validation and stored form.

Kept apart from the rules themselves (:mod:`._alerts`): the servicer and the storage read and
write these settings without evaluating anything, and the usage accountant raises
:attr:`AlertKind.BUDGET_THRESHOLD` with the same vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Final, TypeVar

from ai_orchestration.errors import FieldViolation, InvalidArgumentError
from ai_orchestration.insights._sentiment import LABEL_THRESHOLDS
from ai_orchestration.insights._types import JsonValue


class AlertKind(StrEnum):
    """What an alert is about."""

    NEGATIVE_SENTIMENT = "negative_sentiment"
    """One customer message scored at or below the tenant's negative threshold."""
    CHURN_RISK = "churn_risk"
    """The customer spoke of leaving, or their latest messages fell below their own baseline."""
    COMPETITOR_MENTION = "competitor_mention"
    """The customer named one of the tenant's configured competitors."""
    ESCALATION = "escalation"
    """A legal threat, escalation language, or repeated complaints within a few days."""
    BUDGET_THRESHOLD = "budget_threshold"
    """The tenant's LLM spend crossed its soft budget threshold. Raised by the usage accountant,
    never by :func:`evaluate_alerts`, and configured with the budget, not here."""


class Severity(IntEnum):
    """How urgently someone should look; ordered, so ``max()`` picks the most urgent."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3


# The kinds the interaction rules raise, and so the kinds AlertRules.enabled may hold.
_RULE_KINDS: Final[frozenset[AlertKind]] = frozenset(AlertKind) - {AlertKind.BUDGET_THRESHOLD}
RULE_KINDS: Final[frozenset[AlertKind]] = _RULE_KINDS
"""The kinds the alert rules raise (all but the LLM budget's)."""

_NEGATIVE_EDGE: Final[float] = LABEL_THRESHOLDS[1]
_BUDGET_MESSAGE: Final = (
    "budget_threshold alerts are raised by the usage accountant and configured with the budget"
)
_T = TypeVar("_T")
_MAX_COOLDOWN: Final = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class AlertRules:
    """One tenant's alert rules; the defaults are what a tenant that never changed them gets.

    Invalid values raise :class:`~ai_orchestration.errors.InvalidArgumentError` on construction;
    :meth:`checked` builds from wire values and names the fields under a prefix.
    """

    enabled: frozenset[AlertKind] = _RULE_KINDS
    """The rule kinds that may raise alerts; empty turns interaction alerts off. Not
    ``BUDGET_THRESHOLD``, which the usage accountant raises."""
    negative_threshold: float = -0.5
    """A customer message scoring at or below this raises NEGATIVE_SENTIMENT, from -1 to -0.2
    (the negative band's upper edge). Severity comes from the score alone: HIGH at or below
    -0.75, MEDIUM at or below -0.6, else LOW."""
    churn_drop: float = 0.35
    """A mean of the customer's last 6 messages this far below the mean of the 20 before them
    (3 of each at least) raises CHURN_RISK, when the new message is itself below that
    baseline. From above 0 to 2."""
    repeated_complaints: int = 3
    """This many negative customer messages (label negative or very negative) within
    :attr:`complaint_days`, the new one among them, raise ESCALATION. From 2 to 100."""
    complaint_days: int = 14
    """The window of :attr:`repeated_complaints`, ending at the new message. From 1 to 365."""
    cooldown: timedelta = timedelta(hours=24)
    """At most one alert per customer and kind within this time (see :func:`cooling_down`);
    whole seconds from 0 (no cooldown) to 30 days."""

    def __post_init__(self) -> None:
        violations = _violations(self, "")
        if violations:
            raise InvalidArgumentError("invalid alert rules", violations)

    @classmethod
    def checked(
        cls,
        *,
        enabled: Iterable[str] | None = None,
        negative_threshold: float | None = None,
        churn_drop: float | None = None,
        repeated_complaints: int | None = None,
        complaint_days: int | None = None,
        cooldown: timedelta | None = None,
        field_prefix: str = "",
    ) -> AlertRules:
        """Rules from wire values, ``None`` meaning the default; every problem is reported at
        once, as violations of fields named ``field_prefix + name`` (``enabled[1]`` for an
        unknown kind)."""
        violations: list[FieldViolation] = []
        kinds: set[AlertKind] = set()
        for i, name in enumerate(_RULE_KINDS if enabled is None else enabled):
            if name in _RULE_KINDS:
                kinds.add(AlertKind(name))
                continue
            message = (
                _BUDGET_MESSAGE
                if name == AlertKind.BUDGET_THRESHOLD
                else f"must be one of {', '.join(sorted(_RULE_KINDS))}, got {name!r}"
            )
            violations.append(
                FieldViolation(f"{field_prefix}enabled[{i}]", message, "enabled_known")
            )
        default = _DEFAULTS
        values = _Values(
            enabled=frozenset(kinds),
            negative_threshold=_pick(negative_threshold, default.negative_threshold),
            churn_drop=_pick(churn_drop, default.churn_drop),
            repeated_complaints=_pick(repeated_complaints, default.repeated_complaints),
            complaint_days=_pick(complaint_days, default.complaint_days),
            cooldown=_pick(cooldown, default.cooldown),
        )
        violations += _violations(values, field_prefix)
        if violations:
            raise InvalidArgumentError("invalid alert rules", violations)
        return cls(
            enabled=values.enabled,
            negative_threshold=values.negative_threshold,
            churn_drop=values.churn_drop,
            repeated_complaints=values.repeated_complaints,
            complaint_days=values.complaint_days,
            cooldown=values.cooldown,
        )

    def to_json(self) -> dict[str, JsonValue]:
        """The stored document."""
        enabled: list[JsonValue] = [kind.value for kind in sorted(self.enabled)]
        return {
            "enabled": enabled,
            "negative_threshold": self.negative_threshold,
            "churn_drop": self.churn_drop,
            "repeated_complaints": self.repeated_complaints,
            "complaint_days": self.complaint_days,
            "cooldown_seconds": int(self.cooldown.total_seconds()),
        }

    @classmethod
    def from_json(cls, document: JsonValue | None) -> AlertRules:
        """Reads :meth:`to_json` output. A missing key takes its default (a document from an
        older version); a document with any value it cannot read or that fails validation gives
        all the defaults (written by hand or by another version: do not trust any of it)."""
        if not isinstance(document, dict):
            return cls()
        enabled = document.get("enabled")
        if enabled is not None and not (
            isinstance(enabled, list) and all(isinstance(k, str) for k in enabled)
        ):
            return cls()
        try:
            seconds = _number(document.get("cooldown_seconds"))
            return cls.checked(
                enabled=None if enabled is None else [str(k) for k in enabled],
                negative_threshold=_number(document.get("negative_threshold")),
                churn_drop=_number(document.get("churn_drop")),
                repeated_complaints=_integer(document.get("repeated_complaints")),
                complaint_days=_integer(document.get("complaint_days")),
                cooldown=None if seconds is None else timedelta(seconds=seconds),
            )
        except (InvalidArgumentError, ValueError, OverflowError):
            return cls()


def cooling_down(last_raised: datetime | None, *, now: datetime, rules: AlertRules) -> bool:
    """Whether a draft raised at ``now`` falls within the cooldown of the last alert of the same
    tenant, customer and kind, raised at ``last_raised`` (``None``: never).

    This is the rule the storage applies (``storage.AlertRepository.commit`` keeps the time of
    the last alert per tenant, customer and kind, and drops a draft while this holds, under the
    tenant's log lock). ``now`` is the time of raising, not the interaction's ``occur_time``: a
    backfill of a year of mail then raises one alert per kind, not one per day of history. A
    ``last_raised`` later than ``now`` (another replica's clock) counts as cooling down.
    """
    if last_raised is None:
        return False
    return now - last_raised < rules.cooldown


@dataclass(frozen=True, slots=True)
class _Values:
    enabled: frozenset[AlertKind]
    negative_threshold: float
    churn_drop: float
    repeated_complaints: int
    complaint_days: int
    cooldown: timedelta


def _violations(values: AlertRules | _Values, prefix: str) -> list[FieldViolation]:
    found: list[FieldViolation] = []

    def check(ok: bool, name: str, message: str) -> None:
        if not ok:
            found.append(FieldViolation(f"{prefix}{name}", message, f"{name}_range"))

    if AlertKind.BUDGET_THRESHOLD in values.enabled:
        found.append(FieldViolation(f"{prefix}enabled", _BUDGET_MESSAGE, "enabled_known"))
    threshold = values.negative_threshold
    check(
        math.isfinite(threshold) and -1.0 <= threshold <= _NEGATIVE_EDGE,
        "negative_threshold",
        f"must be from -1 to {_NEGATIVE_EDGE:g}, got {threshold:g}",
    )
    drop = values.churn_drop
    check(
        math.isfinite(drop) and 0.0 < drop <= 2.0,
        "churn_drop",
        f"must be above 0 and at most 2, got {drop:g}",
    )
    complaints = values.repeated_complaints
    check(2 <= complaints <= 100, "repeated_complaints", f"must be from 2 to 100, got {complaints}")
    days = values.complaint_days
    check(1 <= days <= 365, "complaint_days", f"must be from 1 to 365, got {days}")
    cooldown = values.cooldown
    check(
        timedelta(0) <= cooldown <= _MAX_COOLDOWN and cooldown.microseconds == 0,
        "cooldown",
        f"must be whole seconds from 0 to 30 days, got {cooldown.total_seconds():g} s",
    )
    return found


def _pick(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _number(value: JsonValue | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _integer(value: JsonValue | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


_DEFAULTS: Final = AlertRules()  # after _violations, which building it calls
