"""Per-tenant insight settings (``InsightService.Get/UpdateInsightSettings``).

Stored as one JSON document under :data:`SETTINGS_KEY` in the tenant settings table, through
any :class:`SettingsBackend` (``storage.TenantSettingsRepository`` is one). Ingest reads them
for every batch, so they are read through a short cache and the compiled competitor matcher is
kept with them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from ai_orchestration.errors import InvalidArgumentError
from ai_orchestration.insights._alert_settings import AlertRules
from ai_orchestration.insights._detectors import CompetitorList
from ai_orchestration.insights._follow_up import FollowUpPolicy
from ai_orchestration.insights._types import Competitor, JsonValue

__all__ = ["SETTINGS_KEY", "InsightSettings", "InsightSettingsStore", "SettingsBackend"]

SETTINGS_KEY: Final[str] = "insights"
CACHE_SECONDS: Final[float] = 2.0
"""How long a replica reuses a tenant's settings; another replica's change reaches this one's
ingest within this delay (this replica's own at once)."""


class SettingsBackend(Protocol):
    """Where tenant settings live: JSON documents under string keys."""

    async def get(self, tenant_id: str, key: str) -> JsonValue | None:
        """The stored document, or ``None``."""

    async def set(self, tenant_id: str, key: str, value: JsonValue) -> None:
        """Create or replace the document."""


@dataclass(frozen=True, slots=True)
class InsightSettings:
    """One tenant's insight settings."""

    competitors: CompetitorList = field(default_factory=CompetitorList)
    """Competitors detected at ingest (validated and compiled)."""
    alerts: AlertRules = field(default_factory=AlertRules)
    """Which alert rules run, their thresholds and cooldown."""
    follow_up: FollowUpPolicy = field(default_factory=FollowUpPolicy)
    """Which alerts start a ``customer_follow_up`` run by themselves."""

    def to_json(self) -> dict[str, JsonValue]:
        """The stored document."""
        return {
            "competitors": [
                {"name": c.name, "aliases": list(c.aliases)} for c in self.competitors.competitors
            ],
            "alerts": self.alerts.to_json(),
            "follow_up": self.follow_up.to_json(),
        }

    @classmethod
    def from_json(cls, document: JsonValue | None) -> InsightSettings:
        """Reads :meth:`to_json` output; a document it cannot read gives the defaults (it was
        written by hand or by another version: do not trust it)."""
        if not isinstance(document, dict):
            return cls()
        alerts = AlertRules.from_json(document.get("alerts"))
        follow_up = FollowUpPolicy.from_json(document.get("follow_up"))
        items = document.get("competitors")
        competitors: list[Competitor] = []
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                return cls(alerts=alerts, follow_up=follow_up)
            aliases = item.get("aliases")
            names = [a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else []
            competitors.append(Competitor(str(item["name"]), tuple(names)))
        try:
            return cls(competitors=CompetitorList(competitors), alerts=alerts, follow_up=follow_up)
        except InvalidArgumentError:
            return cls(alerts=alerts, follow_up=follow_up)


class InsightSettingsStore:
    """Reads and writes tenants' insight settings through a short cache."""

    def __init__(
        self, *, backend: SettingsBackend, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._backend = backend
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, InsightSettings]] = {}

    async def get(self, tenant_id: str) -> InsightSettings:
        """The tenant's settings (the defaults when never set)."""
        cached = self._cache.get(tenant_id)
        now = self._monotonic()
        if cached is not None and now < cached[0]:
            return cached[1]
        settings = InsightSettings.from_json(await self._backend.get(tenant_id, SETTINGS_KEY))
        self._cache[tenant_id] = (now + CACHE_SECONDS, settings)
        return settings

    async def put(self, tenant_id: str, settings: InsightSettings) -> InsightSettings:
        """Replace the tenant's settings; returns them."""
        await self._backend.set(tenant_id, SETTINGS_KEY, settings.to_json())
        self._cache[tenant_id] = (self._monotonic() + CACHE_SECONDS, settings)
        return settings
