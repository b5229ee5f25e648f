"""``score leads.csv -o scores.csv``: BatchScoreLeads over a CSV file, with a progress bar.

Every bad row is reported by its line and skipped; the good ones are scored. Rows the server
refuses (INVALID_ARGUMENT naming ``leads[i]`` fields) are mapped back to their lines, reported,
and the rest of their batch is sent again. The exit code is 1 when any row was bad.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Final, TextIO

import grpc
import typer
from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc
from crm_ai_client import ServiceError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ai_orchestration.cli._client import (
    DEFAULT_ADDRESS,
    AddressOption,
    Target,
    TlsOption,
    TokenOption,
    open_channel,
    stderr_console,
)
from ai_orchestration.cli._exit import EXIT_FAILURE, EXIT_USAGE
from ai_orchestration.cli._lead_csv import (
    SCORE_COLUMNS,
    BadRow,
    LeadRow,
    read_leads,
    score_row,
)

__all__ = ["score"]

_LEAD_FIELD: Final = re.compile(r"^leads\[(\d+)\]\.?(.*)$")
_MORE: Final = "MORE_VIOLATIONS"
"""Reason of the violation saying the server left some out."""


def _refused(error: grpc.RpcError, batch: Sequence[LeadRow]) -> list[BadRow] | None:
    """The rows an INVALID_ARGUMENT names, or ``None`` if it is not about single leads."""
    decoded = ServiceError.from_rpc_error(error)
    if decoded.code is not grpc.StatusCode.INVALID_ARGUMENT or not decoded.field_violations:
        return None
    problems: dict[int, list[str]] = {}
    for violation in decoded.field_violations:
        if violation.reason == _MORE and not violation.field:
            continue  # the server listed only some: the batch is sent again without these
        match = _LEAD_FIELD.match(violation.field)
        if match is None or int(match.group(1)) >= len(batch):
            return None
        field = match.group(2) or "lead"
        problems.setdefault(int(match.group(1)), []).append(f"{field}: {violation.description}")
    if not problems:
        return None
    return [BadRow(batch[index].line, tuple(found)) for index, found in sorted(problems.items())]


def _score_batch(
    stub: scoring_pb2_grpc.ScoringServiceStub,
    batch: list[LeadRow],
    target: Target,
    progress: Progress,
    task: TaskID,
) -> tuple[list[tuple[LeadRow, scoring_pb2.LeadScore]], list[BadRow]]:
    """Scores of ``batch`` and the rows the server refused (the rest is sent again)."""
    refused: list[BadRow] = []
    while batch:
        request = scoring_pb2.BatchScoreLeadsRequest(leads=[row.lead for row in batch])
        scored: list[tuple[LeadRow, scoring_pb2.LeadScore]] = []
        try:
            for chunk in stub.BatchScoreLeads(request, metadata=target.metadata):
                scored.extend(zip(batch[chunk.first_index :], chunk.scores, strict=False))
                progress.advance(task, len(chunk.scores))
            return scored, refused
        except grpc.RpcError as error:
            bad = _refused(error, batch) if not scored else None
            if not bad:
                raise
            refused.extend(bad)
            progress.advance(task, len(bad))
            lines = {row.line for row in bad}
            batch = [row for row in batch if row.line not in lines]
    return [], refused


@contextmanager
def _output(path: Path) -> Iterator[TextIO]:
    if str(path) == "-":
        yield sys.stdout
        return
    with path.open("w", newline="", encoding="utf-8") as opened:
        yield opened


def score(
    *,
    leads: Annotated[
        Path,
        typer.Argument(
            help="CSV of leads with a header row (columns: see the README's Ops CLI section).",
            exists=True,
            dir_okay=False,
            readable=True,
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="scores CSV to write; - for standard output.")
    ] = Path("scores.csv"),
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="leads per BatchScoreLeads call.")
    ] = 1000,
    address: AddressOption = DEFAULT_ADDRESS,
    token: TokenOption = "",
    tls: TlsOption = False,
) -> None:
    """Score a CSV of leads; bad rows are reported by line and skipped (exit 1 if any)."""
    target = Target(address=address, token=token, tls=tls)
    errors = stderr_console()
    try:
        with leads.open(newline="", encoding="utf-8-sig") as source:
            table = read_leads(source)
    except (ValueError, csv.Error, UnicodeDecodeError) as error:
        typer.echo(f"error: {leads}: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if table.ignored_columns:
        typer.echo(f"ignoring columns: {', '.join(table.ignored_columns)}", err=True)
    bad = list(table.bad)
    scored: list[tuple[LeadRow, scoring_pb2.LeadScore]] = []
    columns = (
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with (
            open_channel(target) as channel,
            Progress(*columns, console=errors, transient=False) as progress,
        ):
            stub = scoring_pb2_grpc.ScoringServiceStub(channel)
            task = progress.add_task("scoring", total=len(table.rows))
            for start in range(0, len(table.rows), batch_size):
                batch = table.rows[start : start + batch_size]
                done, refused = _score_batch(stub, batch, target, progress, task)
                scored.extend(done)
                bad.extend(refused)
    finally:  # after a failed call too: the batches scored before it are kept
        _write(output, scored, bad)
    if bad:
        raise typer.Exit(EXIT_FAILURE)


def _write(
    output: Path, scored: list[tuple[LeadRow, scoring_pb2.LeadScore]], bad: list[BadRow]
) -> None:
    """The scores file in the input's order, then the bad rows and a summary on stderr."""
    with _output(output) as sink:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(SCORE_COLUMNS)
        for _, result in sorted(scored, key=lambda pair: pair[0].line):
            writer.writerow(score_row(result))
    for row in sorted(bad, key=lambda item: item.line):
        for line in row.lines():
            typer.echo(line, err=True)
    where = "standard output" if str(output) == "-" else str(output)
    typer.echo(f"scored {len(scored)} leads into {where}; {len(bad)} bad rows", err=True)
