"""Leads read from a CSV file, each with its line number, and the scores written back.

Columns (a header row names them; order free; empty cells are unknown values):

==========================  ===================================================================
``lead_id``                 required; the CRM's id (letters, digits, ``._:-``)
``email``                   contact e-mail
``company_name``            company
``industry``                free text, e.g. ``software``
``employee_count``          integer >= 1
``seniority``               ``individual_contributor`` (or ``ic``), ``manager``, ``director``,
                            ``vp``, ``c_level``
``source``                  ``web``, ``paid``, ``outbound``, ``event``, ``referral``
``page_visits``             integer >= 0, last 30 days
``pricing_page_visits``     integer >= 0, last 30 days
``demo_requested``          ``true``/``false`` (also ``yes``/``no``, ``1``/``0``)
``days_since_last_touch``   integer >= 0
``country``                 ISO 3166-1 alpha-2, e.g. ``DE``
``job_title``               free text
``estimated_deal_value``    number >= 0
``create_time``             ISO 8601, e.g. ``2026-11-02`` or ``2026-11-02T09:30:00Z`` (UTC if
                            no offset)
==========================  ===================================================================

Enum values are case-insensitive and may carry their proto prefix (``SENIORITY_VP``). Columns
not listed are ignored (CRM exports carry many).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TextIO

from crm.ai.v1 import scoring_pb2

__all__ = ["COLUMNS", "SCORE_COLUMNS", "BadRow", "LeadRow", "LeadTable", "read_leads", "score_row"]


def _enum_values(prefix: str, enum: Iterable[tuple[str, int]]) -> dict[str, int]:
    return {name.removeprefix(prefix).lower(): value for name, value in enum if value != 0}


_SENIORITY: Final = _enum_values("SENIORITY_", scoring_pb2.Seniority.items()) | {
    "ic": scoring_pb2.SENIORITY_INDIVIDUAL_CONTRIBUTOR
}
_SOURCE: Final = _enum_values("LEAD_SOURCE_", scoring_pb2.LeadSource.items())
_TRUE: Final = frozenset({"true", "yes", "y", "1"})
_FALSE: Final = frozenset({"false", "no", "n", "0"})


def _text(lead: scoring_pb2.Lead, field: str, cell: str) -> None:
    setattr(lead, field, cell)


def _integer(lead: scoring_pb2.Lead, field: str, cell: str) -> None:
    try:
        value = int(cell)
    except ValueError:
        raise ValueError(f"not an integer: {cell!r}") from None
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"out of range: {cell!r}")
    setattr(lead, field, value)


def _number(lead: scoring_pb2.Lead, field: str, cell: str) -> None:
    try:
        setattr(lead, field, float(cell))
    except ValueError:
        raise ValueError(f"not a number: {cell!r}") from None


def _boolean(lead: scoring_pb2.Lead, field: str, cell: str) -> None:
    word = cell.lower()
    if word not in _TRUE | _FALSE:
        raise ValueError(f"not true or false: {cell!r}")
    setattr(lead, field, word in _TRUE)


def _enum(values: dict[str, int], prefix: str) -> Callable[[scoring_pb2.Lead, str, str], None]:
    def parse(lead: scoring_pb2.Lead, field: str, cell: str) -> None:
        key = cell.lower().replace("-", "_").replace(" ", "_").removeprefix(prefix)
        if key not in values:
            raise ValueError(f"unknown value {cell!r} (one of {', '.join(values)})")
        setattr(lead, field, values[key])

    return parse


def _time(lead: scoring_pb2.Lead, field: str, cell: str) -> None:
    try:
        moment = datetime.fromisoformat(cell)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date or time: {cell!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    getattr(lead, field).FromDatetime(moment)


COLUMNS: Final[dict[str, Callable[[scoring_pb2.Lead, str, str], None]]] = {
    "lead_id": _text,
    "email": _text,
    "company_name": _text,
    "industry": _text,
    "employee_count": _integer,
    "seniority": _enum(_SENIORITY, "seniority_"),
    "source": _enum(_SOURCE, "lead_source_"),
    "page_visits": _integer,
    "pricing_page_visits": _integer,
    "demo_requested": _boolean,
    "days_since_last_touch": _integer,
    "country": _text,
    "job_title": _text,
    "estimated_deal_value": _number,
    "create_time": _time,
}
"""CSV column → parser setting the ``crm.ai.v1.Lead`` field of the same name."""

SCORE_COLUMNS: Final = (
    "lead_id",
    "score",
    "grade",
    "probability",
    "confidence",
    "model_version",
    "top_positive_factors",
    "top_negative_factors",
)
"""Columns of the scores file; factors are their reasons joined by ``; ``, strongest first."""


@dataclass(frozen=True)
class LeadRow:
    """A row that parsed into a lead."""

    line: int
    """Line of the file where the row starts (the header is line 1)."""
    lead: scoring_pb2.Lead


@dataclass(frozen=True)
class BadRow:
    """A row that was not scored, and why (``field: problem``, one per field)."""

    line: int
    problems: tuple[str, ...]

    def lines(self) -> list[str]:
        """``line 7: seniority: unknown value 'boss' ...``, one per problem."""
        return [f"line {self.line}: {problem}" for problem in self.problems]


@dataclass(frozen=True)
class LeadTable:
    """What a CSV file held."""

    rows: list[LeadRow]
    bad: list[BadRow]
    ignored_columns: list[str]


def _row(line: int, header: Sequence[str], cells: Sequence[str]) -> LeadRow | BadRow:
    if len(cells) > len(header):
        return BadRow(line, (f"{len(cells)} cells, but the header names {len(header)}",))
    lead = scoring_pb2.Lead()
    problems: list[str] = []
    for column, cell in zip(header, cells, strict=False):
        parse = COLUMNS.get(column)
        value = cell.strip()
        if parse is None or not value:
            continue
        try:
            parse(lead, column, value)
        except ValueError as error:
            problems.append(f"{column}: {error}")
    if not lead.lead_id and not any(p.startswith("lead_id:") for p in problems):
        problems.insert(0, "lead_id: missing")
    return BadRow(line, tuple(problems)) if problems else LeadRow(line, lead)


def read_leads(source: TextIO) -> LeadTable:
    """Parse ``source``; rows that do not parse are returned as :class:`BadRow`.

    Raises:
        ValueError: the file has no header row, or no ``lead_id`` column.
    """
    reader = csv.reader(source)
    header = [name.strip().lower() for name in next(reader, [])]
    if "lead_id" not in header:
        raise ValueError("the first row must be a header naming a lead_id column")
    table = LeadTable(rows=[], bad=[], ignored_columns=[c for c in header if c not in COLUMNS])
    while True:
        line = reader.line_num + 1  # where the next row starts (quoted cells may span lines)
        cells = next(reader, None)
        if cells is None:
            return table
        if not any(cell.strip() for cell in cells):
            continue
        parsed = _row(line, header, cells)
        if isinstance(parsed, LeadRow):
            table.rows.append(parsed)
        else:
            table.bad.append(parsed)


def score_row(score: scoring_pb2.LeadScore) -> list[str]:
    """A scores-file row (:data:`SCORE_COLUMNS`) of ``score``."""
    return [
        score.lead_id,
        str(score.score),
        scoring_pb2.Grade.Name(score.grade).removeprefix("GRADE_"),
        f"{score.probability:.4f}",
        f"{score.confidence:.4f}",
        score.model_version,
        "; ".join(factor.reason for factor in score.positive_factors),
        "; ".join(factor.reason for factor in score.negative_factors),
    ]
