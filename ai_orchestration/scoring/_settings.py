"""Per-tenant scoring settings: grade cut-offs, score freshness and the A/B experiment.

Stored as one JSON document under :data:`SETTINGS_KEY` in the tenant settings table; a tenant
that never changed anything gets :class:`ScoringSettings` defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from ai_orchestration.errors import FieldViolation, InvalidArgumentError
from ai_orchestration.scoring._explain import GradeCutoffs
from ai_orchestration.storage import JsonValue, TenantSettingsRepository

SETTINGS_KEY: Final[str] = "scoring"
MIN_TTL: Final[timedelta] = timedelta(minutes=1)
MAX_TTL: Final[timedelta] = timedelta(days=365)
DEFAULT_TTL: Final[timedelta] = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class ScoringSettings:
    """One tenant's scoring settings."""

    cutoffs: GradeCutoffs = field(default_factory=GradeCutoffs)
    """Lowest scores of grades A, B and C."""
    score_ttl: timedelta = DEFAULT_TTL
    """How long a score stays fresh."""
    champion_version: str = ""
    """The tenant's own published version scoring the control arm; empty: the global model."""
    challenger_version: str = ""
    """Version scoring the challenger arm; empty when no experiment runs."""
    challenger_share: float = 0.0
    """Share of leads the challenger scores."""

    def to_json(self) -> dict[str, JsonValue]:
        """The stored form."""
        return {
            "grade_a": self.cutoffs.a,
            "grade_b": self.cutoffs.b,
            "grade_c": self.cutoffs.c,
            "score_ttl_seconds": self.score_ttl.total_seconds(),
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "challenger_share": self.challenger_share,
        }

    @classmethod
    def from_json(cls, document: JsonValue) -> ScoringSettings:
        """Reads :meth:`to_json` output; missing keys take their defaults."""
        if not isinstance(document, dict):
            return cls()
        default = cls()

        def number(key: str, fallback: float) -> float:
            value = document.get(key)
            return float(value) if isinstance(value, int | float) else fallback

        def text(key: str) -> str:
            value = document.get(key)
            return value if isinstance(value, str) else ""

        return cls(
            cutoffs=GradeCutoffs(
                a=int(number("grade_a", default.cutoffs.a)),
                b=int(number("grade_b", default.cutoffs.b)),
                c=int(number("grade_c", default.cutoffs.c)),
            ),
            score_ttl=timedelta(seconds=number("score_ttl_seconds", DEFAULT_TTL.total_seconds())),
            champion_version=text("champion_version"),
            challenger_version=text("challenger_version"),
            challenger_share=number("challenger_share", 0.0),
        )


def checked_settings(
    *,
    grade_a: int,
    grade_b: int,
    grade_c: int,
    score_ttl: timedelta,
    champion_version: str,
    challenger_version: str,
    challenger_share: float,
    field_prefix: str = "",
) -> ScoringSettings:
    """Builds settings, reporting every inconsistency as a field violation at once."""
    violations: list[FieldViolation] = []
    if not 0 <= grade_c < grade_b < grade_a <= 100:
        violations.append(
            FieldViolation(
                f"{field_prefix}grade_b_min_score",
                f"grade cut-offs must descend: A ({grade_a}) > B ({grade_b}) > C ({grade_c}) >= 0",
                "grades_descending",
            )
        )
    if not MIN_TTL <= score_ttl <= MAX_TTL:
        violations.append(
            FieldViolation(
                f"{field_prefix}score_ttl",
                f"must be between 1 minute and 365 days, got {score_ttl.total_seconds():g} s",
                "score_ttl_range",
            )
        )
    if not 0.0 <= challenger_share < 1.0:
        violations.append(
            FieldViolation(
                f"{field_prefix}challenger_share", "must be in [0, 1)", "challenger_share_range"
            )
        )
    if (challenger_share > 0.0) != bool(challenger_version):
        violations.append(
            FieldViolation(
                f"{field_prefix}challenger_version",
                "an experiment needs both a challenger_version and a challenger_share above 0; "
                "clear both to end it",
                "experiment_complete",
            )
        )
    if violations:
        raise InvalidArgumentError("invalid scoring settings", violations)
    return ScoringSettings(
        cutoffs=GradeCutoffs(grade_a, grade_b, grade_c),
        score_ttl=score_ttl,
        champion_version=champion_version,
        challenger_version=challenger_version,
        challenger_share=challenger_share,
    )


class ScoringSettingsStore:
    """Reads and writes :class:`ScoringSettings` of a tenant."""

    def __init__(self, repository: TenantSettingsRepository) -> None:
        self._repository = repository

    async def get(self, tenant_id: str) -> ScoringSettings:
        """The tenant's settings (defaults if never set)."""
        return ScoringSettings.from_json(await self._repository.get(tenant_id, SETTINGS_KEY))

    async def put(self, tenant_id: str, settings: ScoringSettings) -> None:
        """Replaces the tenant's settings."""
        await self._repository.set(tenant_id, SETTINGS_KEY, settings.to_json())
