"""The inbox and `etl submit` take regular files only: links (never followed, in particular
out of the inbox), FIFOs, directories and devices are refused with the reason, never copied."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from etl_assets.cli import main
from etl_assets.intake.publisher import (
    NotARegularFile,
    Refused,
    publish_file,
    publish_inbox,
    settled_inbox_files,
)
from etl_assets.ledger import Ledger

CSV = "order_id,order_date,customer_id,sku,quantity,unit_price,currency,store_id\n"
ROW = "O1,2024-01-05,C1,SKU-0001,1,2,EUR,S1\n"


def special_entries(folder: Path, outside: Path) -> dict[str, str]:
    """A link to a private file outside the inbox, a FIFO and a directory, each named .csv;
    returns their names and the reason each must be refused with."""
    secret = outside / "secret.csv"
    secret.write_text(CSV + "O1,2024-01-05,C1,SKU-0001,1,2,EUR,TOPSECRET\n")
    secret.chmod(0o600)
    (folder / "link.csv").symlink_to(secret)
    os.mkfifo(folder / "pipe.csv")
    (folder / "dir.csv").mkdir()
    old = time.time() - 60
    for name in ("link.csv", "pipe.csv", "dir.csv"):
        os.utime(folder / name, (old, old), follow_symlinks=False)
    return {"link.csv": "symbolic link", "pipe.csv": "FIFO", "dir.csv": "directory"}


def test_the_inbox_refuses_links_fifos_and_directories(ledger: Ledger, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sales").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    expected = special_entries(inbox / "sales", outside)
    (inbox / "sales" / "good.csv").write_text(CSV + ROW)

    refused: list[Refused] = []
    published = publish_inbox(ledger, tmp_path / "archive", inbox, 0, refused)

    assert [p.job.source_name for p in published] == ["good.csv"]
    assert {r.path.name: r.reason for r in refused}.keys() == expected.keys()
    for entry in refused:
        assert expected[entry.path.name] in entry.reason
    archived = [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]
    assert len(archived) == 1 and b"TOPSECRET" not in archived[0].read_bytes()
    assert sorted(p.name for p in (inbox / "sales").iterdir()) == sorted(expected)


def test_a_linked_dataset_folder_is_not_followed(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.csv").write_text(CSV + ROW)
    (inbox / "sales").symlink_to(elsewhere, target_is_directory=True)
    refused: list[Refused] = []
    assert list(settled_inbox_files(inbox, 0, refused)) == []
    assert [r.path.name for r in refused] == ["sales"]


def test_publish_file_opens_without_following_a_link(ledger: Ledger, tmp_path: Path) -> None:
    target = tmp_path / "real.csv"
    target.write_text(CSV + ROW)
    (tmp_path / "link.csv").symlink_to(target)
    with pytest.raises(NotARegularFile, match=r"link\.csv: refused, it is a symbolic link"):
        publish_file(ledger, tmp_path / "archive", tmp_path / "link.csv", dataset="sales")
    assert ledger.list_jobs() == []


def test_etl_submit_prints_one_line_per_refused_file_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "files"
    folder.mkdir()
    expected = special_entries(folder, tmp_path)
    (folder / "good.csv").write_text(CSV + ROW)
    names = ["good.csv", *expected]

    result = CliRunner().invoke(main, ["submit", *(str(folder / n) for n in names)])

    assert result.exit_code == 1
    assert "good.csv: submitted as" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 3
    for line, (name, reason) in zip(errors, expected.items(), strict=True):
        assert line.startswith(f"Error: {folder / name}: refused") and reason in line
    assert "Traceback" not in result.output and "TOPSECRET" not in result.output


def test_a_link_swapped_in_after_the_check_is_still_not_followed(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl_assets.intake import publisher

    target = tmp_path / "secret.csv"
    target.write_text(CSV + ROW)
    (tmp_path / "swapped.csv").symlink_to(target)
    monkeypatch.setattr(publisher, "refusal", lambda path: None)  # the first look saw a file
    with pytest.raises(NotARegularFile, match="symbolic link"):
        publish_file(ledger, tmp_path / "archive", tmp_path / "swapped.csv", dataset="sales")
