"""BulkInsert refuses what it cannot insert, before touching the database."""

from __future__ import annotations

from typing import cast

import pytest
from sqlalchemy import Table

from ai_orchestration.storage import Database
from ai_orchestration.storage._bulk import BulkInsert
from ai_orchestration.storage._models import LeadOutcomeModel

_TABLE = cast(Table, LeadOutcomeModel.__table__)


def test_an_unknown_column_is_refused() -> None:
    with pytest.raises(ValueError, match="no column nope"):
        BulkInsert(_TABLE, ("tenant_id", "nope"))


async def test_a_row_of_the_wrong_length_is_refused(database: Database) -> None:
    insert = BulkInsert(_TABLE, ("tenant_id", "lead_id"))
    async with database.core_transaction() as connection:
        with pytest.raises(ValueError, match="each row needs 2 values"):
            await insert.execute(connection, [("t", "l", "extra")])
