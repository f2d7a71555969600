"""Every `etl` error is one line with an exit status (usage 2, failure 1), and everything the
command prints from the ledger is inert: no terminal escape sequence reaches the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from etl_assets.cli import main
from etl_assets.datasets.samples import sales_frame, write_sales_csv


@pytest.fixture
def etl(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def one_line_error(result: Result, exit_code: int) -> str:
    """The single line the command printed, after checking it is an error with `exit_code`."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ")
    return line


def test_a_bad_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_SIZE", "many")
    for command in (["config"], ["jobs", "list"]):
        line = one_line_error(CliRunner().invoke(main, command), 1)
        assert line == "Error: setting BATCH_SIZE='many' is not a valid int"


@pytest.mark.parametrize(
    "url", ["postgresql://etl:hunter2@db:notaport/etl", "::::", "nosuchdb://etl:hunter2@h/x"]
)
def test_a_malformed_database_url_is_one_line(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    line = one_line_error(CliRunner().invoke(main, ["jobs", "list"]), 1)
    assert "DATABASE_URL is not a" in line and "hunter2" not in line


@pytest.mark.parametrize("priority", ["99999999999999999999", "1001", "-1001", "high"])
def test_submit_takes_only_the_priorities_the_api_takes(
    etl: CliRunner, tmp_path: Path, priority: str
) -> None:
    path = write_sales_csv(tmp_path / "x.csv", sales_frame(3))
    line = one_line_error(etl.invoke(main, ["submit", "--priority", priority, str(path)]), 2)
    assert "--priority" in line and "submit --help" in line
    assert etl.invoke(main, ["submit", "--priority", "1000", str(path)]).exit_code == 0


def test_retry_takes_only_the_priorities_the_api_takes(etl: CliRunner) -> None:
    one_line_error(etl.invoke(main, ["retry", "SOMEJOB", "--priority", "5000"]), 2)


@pytest.mark.parametrize("args", [["submit"], ["no-such-command"], ["jobs", "list", "--limit=x"]])
def test_usage_errors_are_one_line_and_exit_2(etl: CliRunner, args: list[str]) -> None:
    one_line_error(etl.invoke(main, args), 2)


def test_retrying_an_unknown_failed_row_says_so_and_exits_1(etl: CliRunner) -> None:
    line = one_line_error(etl.invoke(main, ["failed-rows", "retry", "999999999"]), 1)
    assert "no quarantined row has id 999999999" in line


def test_titles_and_file_names_are_printed_inert(etl: CliRunner, tmp_path: Path) -> None:
    hostile = "Q1 \x1b]0;owned\x07\x1b[2J\x9b31m\u202eedoc"
    path = write_sales_csv(tmp_path / "north\x1b[1m.csv", sales_frame(3))
    submitted = etl.invoke(main, ["submit", str(path), "--title", hostile])
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.split("submitted as ")[1].split()[0]

    listed = etl.invoke(main, ["jobs", "list"]).output
    shown = etl.invoke(main, ["jobs", "show", job_id]).output
    for output in (submitted.output, listed, shown):  # stdout and the log lines on stderr
        assert not any(c in output for c in "\x1b\x07\x9b\u202e"), output
    assert "\\x1b]0;owned\\x07" in shown and "\\u202e" in shown
    assert "north\\x1b[1m.csv" in submitted.output
