from __future__ import annotations

from functools import partial

import pytest
import yaml
from click.testing import CliRunner

from carla4agt.cli import cli
from carla4agt_data import __version__
from generator.weather import presets_dir

from .test_layout import make_layout


@pytest.fixture
def invoke():
    return partial(CliRunner().invoke, cli)


def test_help_and_version(invoke):
    result = invoke(["--help"])
    assert result.exit_code == 0
    assert "weathers" in result.output and "layouts" in result.output
    result = invoke(["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_weathers_lists_presets_and_folder(invoke):
    result = invoke(["weathers"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines[1:5]] == ["noon", "sunset", "night", "fog"]
    assert str(presets_dir()) in result.output


def test_weathers_shows_one_in_full(invoke):
    result = invoke(["weathers", "fog"])
    assert result.exit_code == 0, result.output
    body = yaml.safe_load(result.output)
    assert body["name"] == "fog" and len(body["weather"]) == 14


def test_user_error_is_one_paragraph_without_traceback(invoke):
    result = invoke(["weathers", "foggy"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Unknown weather preset 'foggy'.")
    assert "Traceback" not in result.output


def test_debug_shows_the_original_exception(invoke):
    result = invoke(["--debug", "weathers", "foggy"])
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "UserError"


def test_layouts_check(invoke, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(make_layout().to_yaml())
    result = invoke(["layouts", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "town10-000042" in result.output

    data = make_layout().to_dict()
    data.pop("camera")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    result = invoke(["layouts", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.yaml: field 'camera': is missing" in result.stderr
    assert "1 of 2 layout files are invalid" in result.stderr


def test_layouts_check_single_bad_file_is_one_message(invoke, tmp_path):
    path = tmp_path / "v99.yaml"
    path.write_text(make_layout().to_yaml().replace("version: 1", "version: 99"))
    result = invoke(["layouts", "check", str(path)])
    assert result.exit_code == 1
    assert result.stderr.count("Error:") == 1 and "schema version 1" in result.stderr


def test_console_script_exit_code(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "carla4agt", "weathers", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Unknown weather preset 'nope'" in proc.stderr


def test_file_system_errors_are_one_message(invoke, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke(["preview", str(tmp_path), "-o", str(blocker / "sheet.png")])
    # the raw folder is empty, so this fails first with a user error, not a traceback
    assert result.exit_code == 1 and "Traceback" not in result.output
    result = invoke(["generate", "--layouts", "1", "--out", str(blocker / "raw"),
                     "--backend", "builtin", "--no-progress"])
    assert result.exit_code == 1
    assert str(blocker) in result.stderr and "Check the path" in result.stderr
