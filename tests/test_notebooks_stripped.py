"""Committed notebooks are stripped and in the project's shape; the nbval sanitize file masks volatile output."""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "vaelib" / "notebooks").glob("*.ipynb"))
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
DEF_OR_CLASS = re.compile(r"^\s*(async\s+def|def|class)\s", re.MULTILINE)
# `name: type = default  # why`: typed, commented, runnable (papermill infers the parameters from these lines)
PARAMETER_LINE = re.compile(r"^[A-Za-z_]\w*\s*:\s*[^=]+=\s*\S.*#\s*\S")


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    nb = nbformat.read(str(request.param), as_version=4)
    nbformat.validate(nb)
    return nb


def test_notebooks_are_named_by_number():
    assert all(re.fullmatch(r"\d{2}_[a-z0-9_]+\.ipynb", p.name) for p in NOTEBOOKS), [p.name for p in NOTEBOOKS]


def test_outputs_and_execution_counts_are_stripped(notebook):
    for cell in code_cells(notebook):
        assert cell.outputs == [], f"outputs left in: {cell.source[:80]!r}"
        assert cell.execution_count is None, f"execution count left in: {cell.source[:80]!r}"


def test_exactly_one_parameters_cell_first_after_a_title(notebook):
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert tagged[0].cell_type == "code" and tagged[0] is code_cells(notebook)[0]
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.lstrip().startswith("#")
    lines = [ln for ln in tagged[0].source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines, "the parameters cell is empty"
    for line in lines:
        assert PARAMETER_LINE.match(line), f"parameter not typed and commented: {line!r}"


def test_papermill_reads_every_parameter(notebook):
    """papermill's parser must see each line (a stray quote in a comment hides the rest from --help-notebook)."""
    from papermill.translators import PythonTranslator

    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    names = [p.name for p in PythonTranslator.inspect(cell)]
    assert names == [ln.split(":")[0].split("=")[0].strip() for ln in lines]


def test_no_functions_or_classes_in_code_cells(notebook):
    for cell in code_cells(notebook):
        assert not DEF_OR_CLASS.search(cell.source), f"def/class belongs in vaelib: {cell.source[:120]!r}"


def test_kernel_is_python3(notebook):
    assert notebook.metadata.get("kernelspec", {}).get("name", "python3") == "python3"


def sanitize(text: str) -> str:
    from nbval.plugin import get_sanitize_patterns

    for regex, replacement in get_sanitize_patterns(SANITIZE.read_text()):
        text = re.sub(regex, replacement, text)
    return text


@pytest.mark.parametrize("a, b", [
    ("run at 2026-11-25T09:33:50.123", "run at 2025-01-02 23:59:01"),
    ("epoch 1:  45%|████▌     | 9/20 [00:03<00:04,  2.71it/s]", "epoch 1:  90%|█████████ | 18/20 [00:07<00:01,  2.02it/s]"),
    ("<vaelib.model.vae.VAE object at 0x7f3a2b4c5d60>", "<vaelib.model.vae.VAE object at 0x7f00deadbeef>"),
    ("wrote /tmp/pytest-of-a/test_0/z16/run.json", "wrote /home/b/results/nbval/z16/run.json"),
    ("trained in 12.3 s on cpu, peak 512.0 MiB", "trained in 3 s on cuda:0, peak 2.1 GiB"),
    ("{'wall_sec': 3.21, 'kl': 1.5}", "{'wall_sec': 120.0, 'kl': 1.5}"),
    ("commit beea10c688643ef41e920328745addb3590b39d2", "commit 0123456789abcdef0123456789abcdef01234567"),
])
def test_sanitize_masks_volatile_output(a, b):
    assert a != b and sanitize(a) == sanitize(b)


@pytest.mark.parametrize("a, b", [
    ("note F1 0.512", "note F1 0.498"),
    ("{'wall_sec': 3.21, 'kl': 1.5}", "{'wall_sec': 3.21, 'kl': 2.5}"),
    ("../results/nbval/z16", "../results/nbval/z32"),
    ("<Figure size 640x480 with 1 Axes>", "<Figure size 640x480 with 2 Axes>"),
])
def test_sanitize_keeps_results(a, b):
    assert sanitize(a) != sanitize(b)
