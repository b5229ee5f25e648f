"""What a started server leaves behind in its process."""

from __future__ import annotations

import gc
from pathlib import Path

from tests.conftest import running_server, server_settings


async def test_what_start_loaded_is_kept_out_of_the_collectors_walks(tmp_path: Path) -> None:
    gc.unfreeze()  # earlier tests in this process may have started servers
    async with running_server(server_settings(tmp_path)):
        # Models, modules and compiled graphs: hundreds of thousands of objects that a full
        # collection would otherwise walk with the event loop stalled.
        assert gc.get_freeze_count() > 100_000
