"""What a started server leaves behind in its process."""

from __future__ import annotations

import gc
from pathlib import Path

from ai_orchestration.config import Settings
from tests.conftest import BOOTSTRAP_ROWS, SECRET, running_server


async def test_what_start_loaded_is_kept_out_of_the_collectors_walks(tmp_path: Path) -> None:
    gc.unfreeze()  # earlier tests in this process may have started servers
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path,
        auth_hs256_secret=SECRET,
        scoring_bootstrap_rows=BOOTSTRAP_ROWS,
    )
    async with running_server(settings):
        # Models, modules and compiled graphs: hundreds of thousands of objects that a full
        # collection would otherwise walk with the event loop stalled.
        assert gc.get_freeze_count() > 100_000
