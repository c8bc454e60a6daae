"""`huleedu-pipelines import-csv` on files it cannot import: one line on stderr, exit code 2,
never a traceback; and a file with bad lines still imports its good ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from huleedu_pipelines.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04" + bytes(100), "is a ZIP archive (an .xlsx or .ods workbook?), not a CSV"),
        (bytes(range(256)) * 4, "looks like a binary file"),
        (b"essay,Essay\nAn essay.,Again.\n", "names the column 'essay' twice"),
        (b"\xff\xfe" + "essay\n".encode("utf-16-le") + b"\x00\xdc", "looks like UTF-16"),
        (b"text,band\nAn essay.,6\n", "has no 'essay' column"),
    ],
    ids=["xlsx", "binary", "duplicate-columns", "broken-utf16", "no-essay-column"],
)
def test_unimportable_files_give_one_line_and_exit_code_2(
    home: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "input.csv"
    path.write_bytes(content)
    result = runner.invoke(app, ["import-csv", str(path), "--source", "x"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_a_real_process_prints_no_traceback(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "workbook.csv"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    script = Path(sys.executable).with_name("huleedu-pipelines")
    result = subprocess.run(
        [str(script), "import-csv", str(path), "--source", "x"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {path} is a ZIP archive (an .xlsx or .ods workbook?), not a CSV file; export "
        "it as CSV (UTF-8)"
    ]


def test_bad_lines_are_listed_and_good_rows_import(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "school.csv"
    path.write_bytes(
        "essay_id,essay,band\nx1,“Quoted” essay – one.,6\nx2,extra,field,7\nx3,Fine.,5\n".encode(
            "cp1252"
        )
    )
    result = runner.invoke(app, ["import-csv", str(path), "--source", "school"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "3 rows read: 2 essays and 2 labels imported, 0 rows skipped as duplicates, "
        "1 values quarantined (file read as Windows-1252)"
    )
    assert "malformed_csv_line: line 3 has 4 fields but the header has 3" in result.stdout
