"""Raising alerts when interactions are committed, from the durable evaluation backlog.

Ingest commits interactions with ``alerts_pending`` set, then asks :meth:`AlertEvaluator.evaluate`
for them before it answers (so ``alerts_raised`` is real and an alert reaches watchers
milliseconds after the ack). The rules read each interaction's signals and its customer's recent
history; the log appends what they raise (cooldown applied under the log's lock) and takes the
interactions off the backlog in the same commit, then the bus wakes the tenant's watchers. A
crash between the ingest commit and that one leaves the interactions pending:
:meth:`AlertEvaluator.sweep` (run by each replica every few seconds) evaluates them, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Final, Protocol

from ai_orchestration.insights._alerts import AlertDraft, evaluate_alerts
from ai_orchestration.insights._records import Citation, NewAlert, StoredAlert, StoredInteraction
from ai_orchestration.insights._settings import InsightSettingsStore
from ai_orchestration.insights._trend import ScoredInteraction

__all__ = ["HISTORY_FOR_ALERTS", "AlertBacklog", "AlertEvaluator"]

_log = logging.getLogger(__name__)
HISTORY_FOR_ALERTS: Final[int] = 60
"""Latest interactions of a customer the rules read (the baseline needs 6 + 20 messages)."""
SWEEP_AFTER: Final[timedelta] = timedelta(seconds=10)
"""The sweeper leaves interactions younger than this to the stream that ingested them."""
ACT_AGAIN_WITHIN: Final[timedelta] = timedelta(hours=1)
"""How far back the sweep looks for alerts whose follow-up a crash may have left unstarted."""
ACT_AGAIN_PAGE: Final[int] = 200
"""Alerts without a run looked at per sweep; the next sweep goes on after the last one."""


class AlertBacklog(Protocol):
    """The evaluation backlog and the alert log (``storage.AlertRepository``)."""

    async def pending(
        self,
        limit: int,
        *,
        tenant_id: str | None = None,
        interaction_ids: Sequence[str] = (),
        ingested_before: datetime | None = None,
    ) -> list[tuple[str, StoredInteraction]]:
        """Interactions not evaluated yet, as (tenant, interaction)."""

    async def commit(
        self,
        tenant_id: str,
        evaluated: Sequence[str],
        alerts: Sequence[NewAlert],
        *,
        cooldown: timedelta,
    ) -> list[StoredAlert]:
        """Append alerts and take the evaluated interactions off the backlog, atomically."""


class UnstartedAlerts(Protocol):
    """Alerts without a follow-up run (``storage.AlertRepository``)."""

    async def without_run(
        self,
        *,
        raised_after: datetime,
        raised_before: datetime,
        limit: int,
        after_alert: str = "",
    ) -> list[tuple[str, StoredAlert]]:
        """(tenant, alert) of the window after (``raised_after``, ``after_alert``), oldest
        first, ties by alert id."""


class CustomerHistory(Protocol):
    """Customers' recent interactions (``storage.InteractionRepository``)."""

    async def history(
        self,
        tenant_id: str,
        customer_id: str,
        *,
        since: datetime | None = None,
        latest: int | None = None,
    ) -> list[StoredInteraction]:
        """Oldest first."""


class AlertEvaluator:
    """Runs the alert rules over committed interactions."""

    def __init__(
        self,
        *,
        backlog: AlertBacklog,
        histories: CustomerHistory,
        settings: InsightSettingsStore,
        announce: Callable[[str, int], Awaitable[None]],
        clock: Callable[[], datetime],
        on_raised: Callable[[str, list[StoredAlert]], Awaitable[None]] | None = None,
        unstarted: UnstartedAlerts | None = None,
    ) -> None:
        """``announce(tenant, last_sequence)`` wakes the tenant's watchers after a commit;
        ``on_raised(tenant, alerts)`` acts on new alerts (starts follow-up runs, idempotently),
        and is called again by the sweep for the ``unstarted`` alerts a crash left behind."""
        self._on_raised = on_raised
        self._unstarted = unstarted
        self._backlog = backlog
        self._histories = histories
        self._settings = settings
        self._announce = announce
        self._clock = clock
        self._act_cursor: tuple[datetime, str] | None = None
        """Where the next sweep goes on through the alerts without a run (``None``: from the
        window's start). Most such alerts are ones no tenant wants a run for: paging makes
        every one of the window be looked at, not only the oldest page again and again."""

    async def evaluate(self, tenant_id: str, interaction_ids: Sequence[str]) -> list[StoredAlert]:
        """Evaluate these just-committed interactions of the tenant; the alerts raised."""
        pending = await self._backlog.pending(
            len(interaction_ids), tenant_id=tenant_id, interaction_ids=interaction_ids
        )
        return await self._evaluate(tenant_id, [stored for _, stored in pending])

    async def sweep(self, limit: int = 500) -> int:
        """Evaluate interactions left pending by a crash, and act again on recent alerts that
        a crash left without their follow-up; how many alerts were raised."""
        now = self._clock()
        await self._act_again(now)
        left = await self._backlog.pending(limit, ingested_before=now - SWEEP_AFTER)
        by_tenant: defaultdict[str, list[StoredInteraction]] = defaultdict(list)
        for tenant_id, stored in left:
            by_tenant[tenant_id].append(stored)
        raised = 0
        for tenant_id, interactions in by_tenant.items():
            raised += len(await self._evaluate(tenant_id, interactions))
        return raised

    async def _act_again(self, now: datetime) -> None:
        if self._on_raised is None or self._unstarted is None:
            return
        start = now - ACT_AGAIN_WITHIN
        after, after_alert = self._act_cursor or (start, "")
        if after < start:
            after, after_alert = start, ""
        waiting = await self._unstarted.without_run(
            raised_after=after,
            after_alert=after_alert,
            raised_before=now - SWEEP_AFTER,
            limit=ACT_AGAIN_PAGE,
        )
        last = waiting[-1][1] if len(waiting) == ACT_AGAIN_PAGE else None
        self._act_cursor = None if last is None else (last.created_at, last.alert_id)
        by_tenant: defaultdict[str, list[StoredAlert]] = defaultdict(list)
        for tenant_id, alert in waiting:
            by_tenant[tenant_id].append(alert)
        for tenant_id, alerts in by_tenant.items():
            await self._on_raised(tenant_id, alerts)  # it starts only what the tenant wants

    async def run_sweeper(self, seconds: float) -> None:
        """Sweep every ``seconds`` until cancelled; a failed sweep is logged and retried."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.sweep()
            except Exception:
                _log.exception("alert sweep failed")

    async def _evaluate(
        self, tenant_id: str, interactions: list[StoredInteraction]
    ) -> list[StoredAlert]:
        if not interactions:
            return []
        rules = (await self._settings.get(tenant_id)).alerts
        by_customer: defaultdict[str, list[StoredInteraction]] = defaultdict(list)
        for stored in interactions:
            by_customer[stored.interaction.customer_id].append(stored)
        alerts: list[NewAlert] = []
        for customer_id, new in by_customer.items():
            history = await self._histories.history(
                tenant_id, customer_id, latest=HISTORY_FOR_ALERTS + len(new)
            )
            texts = {s.interaction.interaction_id: s.interaction.text for s in [*history, *new]}
            scored = [ScoredInteraction.of(s.interaction, s.signals) for s in history]
            for stored in sorted(new, key=lambda s: s.interaction.occur_time):
                own = ScoredInteraction.of(stored.interaction, stored.signals)
                before = [s for s in scored if s.interaction_id != own.interaction_id]
                for draft in evaluate_alerts(own, customer_id, before, rules=rules):
                    alerts.append(_new_alert(stored.interaction.interaction_id, draft, texts))
        raised = await self._backlog.commit(
            tenant_id,
            [s.interaction.interaction_id for s in interactions],
            alerts,
            cooldown=rules.cooldown,
        )
        if raised:
            with contextlib.suppress(Exception):  # watchers also poll: a lost wake-up only delays
                await self._announce(tenant_id, raised[-1].sequence)
            if self._on_raised is not None:
                try:
                    await self._on_raised(tenant_id, raised)
                except Exception:
                    _log.exception("acting on new alerts failed")
        return raised


def _new_alert(interaction_id: str, draft: AlertDraft, texts: dict[str, str]) -> NewAlert:
    citations = []
    for evidence in draft.evidence:
        text = texts.get(evidence.interaction_id, "")
        end = min(evidence.end, evidence.start + 300, len(text))
        citations.append(
            Citation(evidence.interaction_id, text[evidence.start : end], 1.0, evidence.start, end)
        )
    return NewAlert(
        interaction_id=interaction_id,
        customer_id=draft.customer_id,
        kind=draft.kind.value,
        severity=int(draft.severity),
        message=draft.message,
        evidence=tuple(citations),
    )
