"""Erasing a customer (GDPR): the insight store's data and the runs that hold the customer's
words.

A ``customer_follow_up`` run keeps what the customer said: passages and quotes in its
checkpoints, its events and its output, the reply in its delivery. Erasing the customer takes
those runs too, in an order that leaves nothing behind whatever stops it halfway:

1. the runs that have not ended are cancelled, and the erasure waits until they have (a worker
   still executing one would write a checkpoint after its deletion);
2. their checkpoints are deleted;
3. one transaction deletes the customer's insight data, the runs with their events and
   deliveries, and writes the erasure record.

A failure before 3 leaves the runs findable (their rows name the customer), so erasing again
finishes the work. A run started while the erasure runs is not covered (like an interaction
ingested meanwhile).
"""

from __future__ import annotations

from ai_orchestration.insights import FOLLOW_UP_WORKFLOW, ErasureCounts
from ai_orchestration.storage import CustomerInsightRepository, RunRepository
from ai_orchestration.workflows.engine._engine import RunEngine

__all__ = ["CustomerErasure"]


class CustomerErasure:
    """``EraseCustomer``: everything the service stores about one customer of a tenant."""

    def __init__(
        self, *, insights: CustomerInsightRepository, runs: RunRepository, engine: RunEngine
    ) -> None:
        self._insights = insights
        self._runs = runs
        self._engine = engine

    async def erase(
        self, tenant_id: str, customer_id: str, *, erased_by: str
    ) -> tuple[str, ErasureCounts]:
        """Erase the customer; returns the erasure record's id and what was deleted.

        Raises:
            errors.UnavailableError: a cancelled run did not stop in time; nothing was erased.
        """
        runs = await self._runs.about_customer(tenant_id, FOLLOW_UP_WORKFLOW, customer_id)
        run_ids = [run.run_id for run in runs]
        await self._engine.retire(tenant_id, run_ids, "the customer was erased")
        return await self._insights.erase(tenant_id, customer_id, erased_by=erased_by, runs=run_ids)
