"""``ai-orchestration`` command line: ``serve`` and ``migrate``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from ai_orchestration.config import Settings
from ai_orchestration.errors import OrchestrationError
from ai_orchestration.observability import configure_logging
from ai_orchestration.server import serve
from ai_orchestration.storage import Database


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ai-orchestration",
        description="CRM AI Orchestration Service. Configuration: AIO_* environment variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="migrate the database and serve gRPC")
    run.add_argument("--host", help="bind address (AIO_HOST, default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port, 0 for any free one (AIO_PORT, default 50051)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    return parser


async def _migrate(url: str) -> None:
    async with Database.from_url(url) as database:
        await database.migrate()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    overrides = {k: getattr(args, k, None) for k in ("host", "port")}
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        print(
            f"ai-orchestration: invalid configuration (AIO_* variables):\n{error}", file=sys.stderr
        )
        return 2
    configure_logging(settings.log_level)
    url = settings.resolved_database_url(os.environ.get("DATABASE_URL", ""))
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(url))
            print("migrations applied")
        else:
            asyncio.run(serve(settings, database_url=url))
    except OrchestrationError as error:
        print(f"ai-orchestration: {error.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
