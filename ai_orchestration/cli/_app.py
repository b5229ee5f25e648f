"""The ``ai-orchestration`` command: its commands, and one place that turns failures into
exit codes (see :mod:`ai_orchestration.cli._exit`) and one-line messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ai_orchestration.cli._exit import EXIT_FAILURE, EXIT_INTERRUPTED
from ai_orchestration.cli._health import health
from ai_orchestration.cli._insights import alerts, ask
from ai_orchestration.cli._runs import runs
from ai_orchestration.cli._score import score
from ai_orchestration.cli._usage import usage

__all__ = ["app", "main"]

_EPILOG = (
    "Exit codes: 0 ok; 1 failure (an RPC error, a service not SERVING, bad CSV rows, a run "
    "that did not succeed, a server that cannot start); 2 usage error (command line or AIO_* "
    "configuration); 130 interrupted."
)


class _Commands(TyperGroup):
    """Every command runs under this: Ctrl-C ends it with exit code 130, not a traceback
    (RPC errors are reported by ``open_channel``, which knows the address)."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    name="ai-orchestration",
    cls=_Commands,
    help="CRM AI Orchestration Service: run the server, or operate one over gRPC.",
    epilog=_EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command(rich_help_panel="Server")
def serve(
    host: Annotated[
        str | None, typer.Option(help="bind address (AIO_HOST, default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="port, 0 for any free one (AIO_PORT, default 50051).")
    ] = None,
) -> None:
    """Migrate the database and serve gRPC (configuration: AIO_* environment variables)."""
    from ai_orchestration.cli._server import run_server_command  # noqa: PLC0415

    raise typer.Exit(run_server_command("serve", host=host, port=port))


@app.command(rich_help_panel="Server")
def migrate() -> None:
    """Apply database migrations and exit."""
    from ai_orchestration.cli._server import run_server_command  # noqa: PLC0415

    raise typer.Exit(run_server_command("migrate"))


app.command(rich_help_panel="Operate")(health)
app.command(rich_help_panel="Operate")(score)
app.add_typer(runs, rich_help_panel="Operate")
app.command(rich_help_panel="Operate")(ask)
app.add_typer(alerts, rich_help_panel="Operate")
app.command(rich_help_panel="Operate")(usage)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="ai-orchestration")
    except SystemExit as stop:
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_FAILURE)
    return 0
