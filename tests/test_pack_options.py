"""Options shared by pack and generate: one behaviour in both commands."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt_data.dataset import open_dataset


def test_bad_split_is_a_usage_error_in_pack_too(small_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.h5"
    res = CliRunner().invoke(cli, ["pack", str(small_raw), "-o", str(out),
                                   "--split", "nan,0.5,0.5"])
    assert res.exit_code == 2, res.output
    assert "nan,0.5,0.5" in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_generate_overwrite_replaces_another_runs_dataset(tmp_path: Path) -> None:
    dataset = tmp_path / "d.h5"

    def generate(out: str, seed: str, *extra: str):
        return CliRunner().invoke(cli, [
            "generate", "--layouts", "1", "--size", "64x32", "--seed", seed, "--weathers",
            "noon,night", "--out", str(tmp_path / out), "--dataset", str(dataset),
            "--no-progress", "--backend", "builtin", *extra])

    assert generate("a", "1").exit_code == 0
    refused = generate("b", "2")
    assert refused.exit_code == 1 and str(dataset) in refused.output, refused.output
    assert list(open_dataset(dataset).layout_ids) == ["builtin-1-000000"]
    replaced = generate("b", "2", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert list(open_dataset(dataset).layout_ids) == ["builtin-2-000000"]
