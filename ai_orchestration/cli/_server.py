"""``serve`` and ``migrate``: the server side of the command line.

The server's modules are imported inside the functions, so the client commands start without
loading the models, the workflow graphs and the database layer.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Literal

from ai_orchestration.cli._exit import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

__all__ = ["run_server_command"]


def run_server_command(
    command: Literal["serve", "migrate"], *, host: str | None = None, port: int | None = None
) -> int:
    """Run ``serve`` or ``migrate`` with the AIO_* configuration; returns the exit code.

    Exit codes: 2 for a configuration the server refuses (invalid AIO_* values, dev mode off
    loopback): fix the configuration; 1 for a start that failed at run time (the port is
    busy, the database is unreachable); 130 on Ctrl-C before the signal handlers are set.
    """
    from pydantic import ValidationError  # noqa: PLC0415

    from ai_orchestration.config import Settings  # noqa: PLC0415
    from ai_orchestration.errors import (  # noqa: PLC0415
        FailedPreconditionError,
        InvalidArgumentError,
        OrchestrationError,
    )
    from ai_orchestration.observability import configure_logging  # noqa: PLC0415

    overrides: dict[str, Any] = {"host": host, "port": port}
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        print(
            f"ai-orchestration: invalid configuration (AIO_* variables):\n{error}", file=sys.stderr
        )
        return EXIT_USAGE
    configure_logging(
        settings.log_level,
        log_format=settings.log_format,
        library_level=settings.log_library_level,
    )
    url = settings.resolved_database_url(os.environ.get("DATABASE_URL", ""))
    try:
        if command == "migrate":
            asyncio.run(_migrate(url))
            print("migrations applied")
        else:
            from ai_orchestration.server import serve  # noqa: PLC0415

            asyncio.run(serve(settings, database_url=url))
    except (FailedPreconditionError, InvalidArgumentError) as error:
        print(f"ai-orchestration: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except OrchestrationError as error:
        print(f"ai-orchestration: {error.message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


async def _migrate(url: str) -> None:
    from ai_orchestration.storage import Database  # noqa: PLC0415

    async with Database.from_url(url) as database:
        await database.migrate()
