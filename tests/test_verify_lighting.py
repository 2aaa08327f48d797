"""The clean built-in layouts whose low sun once failed verify (issue 16), at full size.

`carla4agt generate --layouts 5000 --shard I/5000` renders exactly layout I of the default
5,000-layout run; at smaller sizes these layouts never showed the problem.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt_data.pack import pack
from carla4agt_data.verify import verify

# 919 and 4644: sunset label_fit false alarms of the old checks; 3164: of an earlier fix.
LAYOUTS = (919, 4644, 3164)


@pytest.mark.slow
def test_sunset_layouts_of_the_5000_run_pass(tmp_path):
    raw = tmp_path / "raw"
    for i in LAYOUTS:
        result = CliRunner().invoke(cli, [
            "generate", "--layouts", "5000", "--shard", f"{i}/5000", "--out", str(raw),
            "--no-pack", "--no-progress", "--backend", "builtin", "--workers", "1"])
        assert result.exit_code == 0, result.output
    h5 = pack(raw, tmp_path / "d.h5", workers=1, progress=False).path
    for path in (raw, h5):
        report = verify(path, workers=1, progress=False)
        assert report.layouts == 3
        assert report.ok and not report.warnings, report.summary()
