"""Bad command-line input is one clear line naming the option, never a traceback.

Each case fails before any service is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agents.cli import main


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["produce", "--synthetic", "-5"], "--synthetic"),
        (["produce", "--synthetic", "10", "--users", "0"], "--users"),
        (["produce", "--synthetic", "10", "--limit", "-1"], "--limit"),
        (["up", "--kafka-port", "70000"], "--kafka-port"),
        (["replay", "--version", "-3"], "--version"),
        (["promote", "0"], "VERSION"),
        (["simulate", "--ctr", "A=x"], "--ctr"),
        (["simulate", "--shift-ctr", "B=2"], "--shift-ctr"),
    ],
)
def test_a_bad_option_is_a_usage_error_naming_it(args: list[str], named: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "Traceback" not in result.output


def test_an_unreadable_input_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    result = CliRunner().invoke(main, ["produce", str(notes)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "unknown format" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
