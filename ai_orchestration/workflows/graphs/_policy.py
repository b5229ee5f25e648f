"""Per-tenant decision thresholds (``WorkflowService.Get/UpdateWorkflowSettings``).

Stored as one JSON document under :data:`SETTINGS_KEY` in the tenant settings table. A tenant
that never changed anything gets the server's defaults; a stored document missing a key (an
older version) takes that key's default. Read when the decision agent runs, so a change applies
to every decision made afterwards; read through a short cache, as every run reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Final

from ai_orchestration.errors import FieldViolation, InvalidArgumentError
from ai_orchestration.storage import JsonValue, TenantSettingsRepository
from ai_orchestration.workflows.graphs._decision import (
    FAILED_DRAFT_ACTIONS,
    HOLD_FOR_REVIEW,
    DecisionPolicy,
)

__all__ = ["SETTINGS_KEY", "DecisionPolicyStore", "checked_policy"]

SETTINGS_KEY: Final[str] = "workflows.decision"
CACHE_SECONDS: Final[float] = 2.0
"""How long a replica reuses a tenant's thresholds before reading them again; another
replica's change reaches this one's decisions within this delay (this replica's own at once)."""

_RANGES: Final[dict[str, tuple[float, float, bool]]] = {
    # field: (lowest, highest, whether the lowest is allowed)
    "min_confidence": (0.0, 1.0, True),
    "high_value_deal": (0.0, 1e15, False),
    "clear_margin_points": (1.0, 100.0, True),
    "stale_touch_days": (1.0, 36500.0, True),
    "stale_factor": (0.0, 1.0, True),
}
_ACTION: Final = "failed_draft_action"
assert set(_RANGES) | {_ACTION} == {f.name for f in fields(DecisionPolicy)}, "a range for each"


def checked_policy(
    values: dict[str, float], *, failed_draft_action: str = "", field_prefix: str = ""
) -> DecisionPolicy:
    """A policy from ``values`` (every threshold) and the failed-draft action (empty: the
    default), reporting everything out of range at once."""
    violations: list[FieldViolation] = []
    action = failed_draft_action or HOLD_FOR_REVIEW
    if action not in FAILED_DRAFT_ACTIONS:
        violations.append(
            FieldViolation(
                f"{field_prefix}{_ACTION}",
                f"must be one of {', '.join(FAILED_DRAFT_ACTIONS)}, got {action!r}",
                f"{_ACTION}_known",
            )
        )
    for name, (low, high, low_allowed) in _RANGES.items():
        value = values[name]
        if (value >= low if low_allowed else value > low) and value <= high:
            continue
        lowest = f"{low:g}" if low_allowed else f"above {low:g}"
        violations.append(
            FieldViolation(
                f"{field_prefix}{name}",
                f"must be from {lowest} to {high:g}, got {value:g}",
                f"{name}_range",
            )
        )
    if violations:
        raise InvalidArgumentError("invalid workflow settings", violations)
    return DecisionPolicy(
        min_confidence=values["min_confidence"],
        high_value_deal=values["high_value_deal"],
        clear_margin_points=values["clear_margin_points"],
        stale_touch_days=int(values["stale_touch_days"]),
        stale_factor=values["stale_factor"],
        failed_draft_action=action,
    )


def _from_json(document: JsonValue | None, defaults: DecisionPolicy) -> DecisionPolicy:
    values: dict[str, float] = {}
    stored_action = document.get(_ACTION) if isinstance(document, dict) else None
    for name, default in asdict(defaults).items():
        if name == _ACTION:
            continue
        stored = document.get(name) if isinstance(document, dict) else None
        usable = isinstance(stored, int | float) and not isinstance(stored, bool)
        values[name] = float(stored) if usable else float(default)  # type: ignore[arg-type]
    action = stored_action if isinstance(stored_action, str) else defaults.failed_draft_action
    try:
        return checked_policy(values, failed_draft_action=action)
    except InvalidArgumentError:  # written by hand or by another version: do not trust it
        return defaults


class DecisionPolicyStore:
    """Reads and writes the decision thresholds of a tenant."""

    def __init__(
        self,
        repository: TenantSettingsRepository,
        *,
        defaults: DecisionPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repository = repository
        self.defaults = defaults or DecisionPolicy()
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, DecisionPolicy]] = {}

    async def get(self, tenant_id: str) -> DecisionPolicy:
        """The tenant's thresholds (the defaults where never set)."""
        cached = self._cache.get(tenant_id)
        now = self._monotonic()
        if cached is not None and now < cached[0]:
            return cached[1]
        policy = _from_json(await self._repository.get(tenant_id, SETTINGS_KEY), self.defaults)
        self._cache[tenant_id] = (now + CACHE_SECONDS, policy)
        return policy

    async def put(self, tenant_id: str, policy: DecisionPolicy) -> DecisionPolicy:
        """Replaces the tenant's thresholds; returns them."""
        document: dict[str, JsonValue] = dict(asdict(policy))
        await self._repository.set(tenant_id, SETTINGS_KEY, document)
        self._cache[tenant_id] = (self._monotonic() + CACHE_SECONDS, policy)
        return policy
