"""The installed shape: console scripts resolve to their commands, `python -m vaelib.<stage>` runs, the notebooks ship
inside the package, and a pipeline without notebooks stops with a clear error."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_points_at_a_callable(name):
    module, _, attr = SCRIPTS[name].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


@pytest.mark.parametrize("stage", ["data", "synth", "model", "training", "evaluation", "pipeline"])
def test_python_m_stage_prints_its_help(stage):
    done = subprocess.run([sys.executable, "-m", f"vaelib.{stage}", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


def test_notebooks_are_package_data():
    from vaelib.pipeline.notebook import NOTEBOOKS_DIR

    assert NOTEBOOKS_DIR == ROOT / "vaelib" / "notebooks"
    assert [p.name[:2] for p in sorted(NOTEBOOKS_DIR.glob("*.ipynb"))] == ["01", "02", "03", "04", "05", "06"]
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "notebooks/*.ipynb" in data["vaelib"]


def test_pipeline_without_notebooks_says_where_they_are(tmp_path, capsys):
    from vaelib.pipeline import main

    with pytest.raises(SystemExit):
        main(["--preset", "tiny", "--latent-dims", "16", "--out", str(tmp_path / "o"), "--notebooks-dir", str(tmp_path)])
    assert "no notebooks" in capsys.readouterr().err


def test_run_names_are_built_and_parsed_in_one_place():
    from vaelib.runs import parse_run_name, run_name

    for dim, seed, control in [(128, None, False), (16, 2, False), (32, None, True), (64, 1, True)]:
        assert parse_run_name(run_name(dim, seed, control)) == (dim, seed, "paper" if control else "")
    assert run_name(128) == "z128" and run_name(128, control=True) == "z128_paper"
