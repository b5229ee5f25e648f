"""``score``: a CSV of leads scored by BatchScoreLeads; bad rows reported by line, not scored."""

from __future__ import annotations

import csv
from pathlib import Path

from ai_orchestration.cli._lead_csv import SCORE_COLUMNS
from tests.cli.conftest import Cli
from tests.conftest import make_token

HEADER = (
    "lead_id,email,employee_count,seniority,source,page_visits,demo_requested,"
    "create_time,crm_owner\n"
)


def _good(n: int) -> str:
    return f"lead-{n},cto{n}@bigco.example,{100 + n},c_level,REFERRAL,{n},yes,2026-11-02,ann\n"


def _scores(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as opened:
        return list(csv.DictReader(opened))


async def test_good_rows_are_scored_in_file_order(cli: Cli, tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(HEADER + "".join(_good(n) for n in range(5)))
    out = tmp_path / "scores.csv"
    done = await cli("score", str(leads), "-o", str(out), "--batch-size", "2")
    assert done.code == 0, done.stderr
    rows = _scores(out)
    assert [row["lead_id"] for row in rows] == [f"lead-{n}" for n in range(5)]
    for row in rows:
        assert 0 <= int(row["score"]) <= 100
        assert row["grade"] in {"A", "B", "C", "D"}
        assert 0 <= float(row["probability"]) <= 1
        assert 0 <= float(row["confidence"]) <= 1
        assert row["model_version"]
        assert row["top_positive_factors"] or row["top_negative_factors"]
    assert "ignoring columns: crm_owner" in done.stderr
    assert "5/5" in done.stderr  # the progress bar's last state
    assert "scored 5 leads" in done.stderr


async def test_bad_rows_are_reported_by_line_and_the_rest_scored(cli: Cli, tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    lines = [
        HEADER,  # line 1
        _good(1),  # 2
        'lead-2,"two\nline"@x.example,10,manager,web,1,no,,\n',  # 3-4, refused by the server
        _good(3),  # 5
        "\n",  # 6: blank, skipped
        "lead-7,a@b.example,12,boss,web,3,no,,\n",  # 7
        "lead-8,a@b.example,many,vp,fax,3,maybe,yesterday,\n",  # 8
        ",a@b.example,12,vp,web,3,no,,\n",  # 9
        "lead 10,a@b.example,12,vp,web,3,no,,\n",  # 10: refused by the server (pattern)
        _good(11),  # 11
    ]
    leads.write_text("".join(lines))
    out = tmp_path / "scores.csv"
    done = await cli("score", str(leads), "-o", str(out))
    assert done.code == 1
    assert [row["lead_id"] for row in _scores(out)] == ["lead-1", "lead-3", "lead-11"]
    reported = [line for line in done.stderr.splitlines() if line.startswith("line ")]
    assert reported[0].startswith("line 3: email: ")
    assert reported[1:6] == [
        "line 7: seniority: unknown value 'boss' "
        "(one of individual_contributor, manager, director, vp, c_level, ic)",
        "line 8: employee_count: not an integer: 'many'",
        "line 8: source: unknown value 'fax' (one of web, paid, outbound, event, referral)",
        "line 8: demo_requested: not true or false: 'maybe'",
        "line 8: create_time: not an ISO 8601 date or time: 'yesterday'",
    ]
    assert reported[6] == "line 9: lead_id: missing"
    assert reported[7].startswith("line 10: lead_id: ")
    assert len(reported) == 8
    assert "scored 3 leads" in done.stderr and "8 bad rows" not in done.stderr
    assert "5 bad rows" in done.stderr
    assert "Traceback" not in done.stderr


async def test_scores_to_standard_output_and_a_file_without_lead_id(
    cli: Cli, tmp_path: Path
) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(HEADER + _good(1))
    done = await cli("score", str(leads), "-o", "-")
    assert done.code == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("lead_id,score,grade,probability,confidence")
    assert done.stdout.splitlines()[1].startswith("lead-1,")
    headless = tmp_path / "headless.csv"
    headless.write_text("id,email\n1,a@b.example\n")
    refused = await cli("score", str(headless), "-o", str(tmp_path / "out.csv"))
    assert refused.code == 2
    assert "lead_id column" in refused.stderr
    assert not (tmp_path / "out.csv").exists()


async def test_more_refusals_than_one_error_lists_are_all_found(cli: Cli, tmp_path: Path) -> None:
    """The server lists at most 50 violations per error: the rest come on the next tries."""
    refused = [f"bad-{n},not-an-email,10,vp,web,1,no,,\n" for n in range(120)]
    leads = tmp_path / "leads.csv"
    leads.write_text(HEADER + _good(1) + "".join(refused) + _good(2))
    out = tmp_path / "scores.csv"
    done = await cli("score", str(leads), "-o", str(out))
    assert done.code == 1
    assert [row["lead_id"] for row in _scores(out)] == ["lead-1", "lead-2"]
    reported = [line for line in done.stderr.splitlines() if line.startswith("line ")]
    assert [int(line.split()[1].rstrip(":")) for line in reported] == list(range(3, 123))
    assert all(": email: " in line for line in reported)
    assert "122/122" in done.stderr


async def test_a_refused_call_is_one_error_line_and_exit_1(cli: Cli, tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(HEADER + _good(1))
    out = tmp_path / "scores.csv"
    reader = make_token(roles=["workflow.reader"])
    done = await cli("score", str(leads), "-o", str(out), token=reader)
    assert done.code == 1
    assert done.stderr.count("error: PERMISSION_DENIED: ") == 1
    assert "Traceback" not in done.stderr
    assert "scored 0 leads" in done.stderr
    assert out.read_text() == ",".join(SCORE_COLUMNS) + "\n"  # what was scored: nothing
