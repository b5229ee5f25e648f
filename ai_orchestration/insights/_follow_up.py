"""Which alerts start a ``customer_follow_up`` run by themselves (per tenant)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ai_orchestration.insights._alert_settings import RULE_KINDS, AlertKind, Severity
from ai_orchestration.insights._records import StoredAlert
from ai_orchestration.insights._types import JsonValue

__all__ = ["FOLLOW_UP_WORKFLOW", "FollowUpPolicy"]

FOLLOW_UP_WORKFLOW: Final[str] = "customer_follow_up"


@dataclass(frozen=True, slots=True)
class FollowUpPolicy:
    """Alerts of these kinds, at or above this severity, start a follow-up run; none by
    default (a run drafts a message for a human to review: opt in)."""

    kinds: frozenset[AlertKind] = frozenset()
    min_severity: Severity = Severity.LOW

    def __post_init__(self) -> None:
        if not self.kinds <= RULE_KINDS:
            raise ValueError("only the customer alert rules can start a follow-up")

    def wants(self, alert: StoredAlert) -> bool:
        """Whether ``alert`` starts a run (it must concern a customer)."""
        return (
            bool(alert.customer_id)
            and alert.kind in self.kinds
            and alert.severity >= int(self.min_severity)
        )

    def to_json(self) -> dict[str, JsonValue]:
        """The stored document."""
        kinds: list[JsonValue] = [kind.value for kind in sorted(self.kinds)]
        return {"kinds": kinds, "min_severity": int(self.min_severity)}

    @classmethod
    def from_json(cls, document: JsonValue | None) -> FollowUpPolicy:
        """Reads :meth:`to_json` output; anything else gives the default (no follow-ups)."""
        if not isinstance(document, dict):
            return cls()
        kinds, severity = document.get("kinds"), document.get("min_severity")
        try:
            return cls(
                kinds=frozenset(AlertKind(k) for k in kinds if isinstance(k, str))
                if isinstance(kinds, list)
                else frozenset(),
                min_severity=Severity(severity) if isinstance(severity, int) else Severity.LOW,
            )
        except ValueError:
            return cls()
