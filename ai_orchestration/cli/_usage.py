"""``usage``: the tenant's LLM usage over a window, and its budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

import typer
from crm.ai.v1 import usage_pb2, usage_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table

from ai_orchestration.cli._client import (
    DEFAULT_ADDRESS,
    AddressOption,
    JsonOption,
    Target,
    TimeoutOption,
    TlsOption,
    TokenOption,
    echo_json,
    message_dict,
    open_channel,
    stdout_console,
    when,
)

__all__ = ["usage"]

_DIMENSIONS: Final = {
    name.removeprefix("USAGE_DIMENSION_").lower(): value
    for name, value in usage_pb2.UsageDimension.items()
    if value != usage_pb2.USAGE_DIMENSION_UNSPECIFIED
}
_GROUP_FIELDS: Final = {
    "model": "model",
    "deployment": "deployment",
    "run": "run_id",
    "step": "step",
    "template": "template",
}


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _group_value(row: usage_pb2.UsageRow, dimension: str) -> str:
    if dimension == "day":
        return when(row.day_start_time)[:10]
    if dimension == "template":
        return f"{row.template} v{row.template_version}"
    return str(getattr(row, _GROUP_FIELDS[dimension])) or "-"


def _totals(totals: usage_pb2.UsageTotals) -> list[str]:
    return [
        str(totals.calls),
        str(totals.prompt_tokens),
        str(totals.completion_tokens),
        f"{totals.cost_usd:.6f}",
        str(totals.cached_calls),
        str(totals.degraded_calls),
    ]


def _usage_table(response: usage_pb2.GetUsageResponse, dimensions: list[str]) -> Table:
    table = Table(title="LLM usage")
    for name in (*dimensions, "calls", "prompt", "completion", "cost_usd", "cached", "degraded"):
        table.add_column(name, justify="left" if name in dimensions else "right")
    for row in response.rows:
        table.add_row(*(_group_value(row, d) for d in dimensions), *_totals(row.totals))
    if dimensions:
        table.add_section()
        table.add_row("total", *([""] * (len(dimensions) - 1)), *_totals(response.totals))
    return table


def _budget_table(budget: usage_pb2.Budget) -> Table:
    table = Table(title="budget", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")

    def limit(value: float) -> str:
        return f"{value:g}" if value else "none"

    rows = {
        "monthly limit (USD)": limit(budget.monthly_limit_usd),
        "monthly token limit": limit(budget.monthly_token_limit),
        "month to date (USD)": f"{budget.month_to_date_cost_usd:.6f}",
        "month to date (tokens)": str(budget.month_to_date_tokens),
        "forecast (USD)": f"{budget.forecast_cost_usd:.6f}",
        "soft threshold crossed": "yes" if budget.soft_threshold_crossed else "no",
        "requests per minute": limit(budget.requests_per_minute),
        "tokens per minute": limit(budget.tokens_per_minute),
        "month ends": when(budget.month_end_time),
    }
    for key, value in rows.items():
        table.add_row(key, value)
    return table


def usage(
    *,
    days: Annotated[int, typer.Option(min=1, max=400, help="window: the last N days.")] = 30,
    by: Annotated[
        list[str] | None,
        typer.Option(help=f"group by (repeatable): {', '.join(_DIMENSIONS)}."),
    ] = None,
    address: AddressOption = DEFAULT_ADDRESS,
    token: TokenOption = "",
    tls: TlsOption = False,
    timeout: TimeoutOption = 30.0,
    as_json: JsonOption = False,
) -> None:
    """LLM calls, tokens and cost of the token's tenant, and its budget."""
    dimensions = [item.strip().lower() for item in by or ()]
    unknown = [item for item in dimensions if item not in _DIMENSIONS]
    if unknown:
        raise typer.BadParameter(
            f"unknown dimension {unknown[0]!r}; one of {', '.join(_DIMENSIONS)}"
        )
    end = datetime.now(UTC)
    request = usage_pb2.GetUsageRequest(
        start_time=_stamp(end - timedelta(days=days)),
        end_time=_stamp(end),
        group_by=[_DIMENSIONS[item] for item in dimensions],
    )
    target = Target(address=address, token=token, tls=tls, timeout=timeout)
    rows: list[usage_pb2.UsageRow] = []
    with open_channel(target) as channel:
        stub = usage_pb2_grpc.UsageServiceStub(channel)
        while True:
            page = stub.GetUsage(request, timeout=target.timeout, metadata=target.metadata)
            rows.extend(page.rows)
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
        budget = stub.GetBudget(
            usage_pb2.GetBudgetRequest(), timeout=target.timeout, metadata=target.metadata
        )
    page.ClearField("rows")
    page.rows.extend(rows)
    if as_json:
        echo_json({"usage": message_dict(page), "budget": message_dict(budget)})
        return
    console = stdout_console()
    console.print(_usage_table(page, dimensions))
    console.print(_budget_table(budget))
