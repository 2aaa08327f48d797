"""The user's literal `carla4agt verify` (no argument) after a plain `carla4agt generate`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from carla4agt.cli import cli


def test_plain_verify_checks_what_plain_generate_wrote(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    nothing = runner.invoke(cli, ["verify", "--no-progress"])
    assert nothing.exit_code == 2 and "Nothing to verify here" in nothing.output
    assert "raw/dataset.h5" in nothing.output and "Traceback" not in nothing.output
    made = runner.invoke(cli, ["generate", "--layouts", "2", "--size", "256x128", "--weathers",
                               "noon,fog", "--backend", "builtin", "--no-progress"])
    assert made.exit_code == 0, made.output
    checked = runner.invoke(cli, ["verify", "--no-progress"])
    assert checked.exit_code == 0, checked.output
    assert "Checking raw/dataset.h5 and raw." in checked.output
    assert checked.output.count("All checks passed") == 2
    # a planted fault in the raw folder is found by the same plain command
    layout = next(p for p in (tmp_path / "raw").iterdir() if p.is_dir())
    (layout / "fog.tags.png").write_bytes((layout / "noon.png").read_bytes())
    broken = runner.invoke(cli, ["verify", "--no-progress"])
    assert broken.exit_code == 1 and layout.name in broken.output, broken.output
