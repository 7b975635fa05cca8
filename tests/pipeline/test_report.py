"""The report a reader opens: a self-contained index (links resolve, audio decodes, no machine path), Table 1's
formatting, and the pipeline's plain-text rendering of widgets and its progress lines."""
import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest

from vaelib import pipeline
from vaelib.pipeline import notebook, progress
from vaelib.pipeline import report_check, report_index
from vaelib.evaluation import table_format

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "results" / "reference" / "small"


def test_table1_digits_labels_and_caption():
    # two significant digits of the narrowest CI, one count of decimals per column
    assert table_format.decimals([0.1, 0.2], [0.096, 0.15], [0.105, 0.25]) == 3
    assert table_format.fmt_ci(0.1, 0.096, 0.105, 3) == "0.100 [0.096, 0.105]"
    assert table_format.decimals([117.0], [117.0], [117.0]) == 0  # no width: three significant digits of 117
    assert table_format.fmt_ci(2.0, float("nan"), float("nan"), 2) == "2.00"
    assert table_format.objective_short("recommended (β_max=8; free bits 0.25; 6 epochs)") == "rec., 6 ep."
    assert table_format.objective_short("paper (β_max=8, no defences; 3 epochs)", control=True) == "paper, 3 ep."
    cap = table_format.caption([120, 120])
    assert "n = 120" in cap and "bootstrap" in cap and "another test piece's z" in cap
    assert "p_wilcoxon" in table_format.PAIRED_NOTE


def test_index_renders_table1_from_csv_within_a_page(tmp_path):
    import pandas as pd

    row = {"latent_dim": 128, "objective": "recommended (β_max=8; free bits 0.25; 6 epochs)", "control": False,
           "n_seeds": 1, "n_examples": 120, "collapsed": False, "extra_metric_from_a_newer_evaluate": 1.0}
    for c, _, _ in table_format.COLUMNS:
        row.update({c: 0.1, f"{c}_ci_lo": 0.096, f"{c}_ci_hi": 0.105})
    row.update(active_units=117, active_units_ci_lo=117, active_units_ci_hi=117)
    ctl = {**row, "latent_dim": 128, "control": True, "collapsed": True,
           "objective": "paper (β_max=8, no defences; 3 epochs)"}
    pd.DataFrame([row, ctl]).to_csv(tmp_path / "table1.csv", index=False)
    page = report_index.render_table1(tmp_path)
    assert "0.100<br><small>[0.096, 0.105]</small>" in page and "<td>117</td>" in page and "[117" not in page
    assert "rec., 6 ep." in page and "paper, 3 ep." in page and "Objective labels:" in page
    assert "n = 120" in page and ">collapsed<" in page and ">uses z<" in page


def test_widgets_become_plain_text(tmp_path):
    nb = nbformat.v4.new_notebook()
    state = {"bar": {"state": {"_model_name": "HBoxModel", "children": ["IPY_MODEL_a", "IPY_MODEL_b", "IPY_MODEL_c"]}},
             "a": {"state": {"_model_name": "HTMLModel", "value": "train z16: 100%"}},
             "b": {"state": {"_model_name": "FloatProgressModel", "value": 9, "max": 9}},
             "c": {"state": {"_model_name": "HTMLModel", "value": " 9/9 [00:01&lt;00:00]"}},
             "box": {"state": {"_model_name": "VBoxModel", "children": []}}}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state}}
    view = lambda mid: nbformat.v4.new_output("display_data", {notebook.WIDGET_VIEW: {"model_id": mid},  # noqa: E731
                                                               "text/plain": "HBox()"})
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[view("bar")]), nbformat.v4.new_code_cell("y", outputs=[view("box")])]
    nbformat.write(nb, str(tmp_path / "w.ipynb"))
    notebook.to_html(tmp_path / "w.ipynb", tmp_path / "w.html")
    page = (tmp_path / "w.html").read_text()
    assert "train z16: 100% | 9/9 [00:01&lt;00:00]" in page and "open the .ipynb in Jupyter" in page
    assert "widget-state" not in page and "<style" not in page.split("</head>")[0]
    css = [ref for _, ref in report_check.local_refs(tmp_path / "w.html") if ref.endswith(".css")]
    assert css and (tmp_path / css[0]).is_file()


def test_heartbeat_reports_training_progress_with_an_eta(tmp_path):
    run = tmp_path / "z16"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": {"epochs": 4}}))
    rows = [{"split": "train", "step": 5, "epoch": 0}, {"split": "val", "step": 10, "epoch": 0},
            {"split": "train", "step": 20, "epoch": 1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert progress.training_progress(run) == ("training, step 20/40, epoch 2/4", 0.5)
    step = pipeline.Step("02_train_z16", "02_train", {"run_dir": "z16"})
    beat = progress.Heartbeat([step], tmp_path, {}, every=0)
    beat.start(step.name)
    beat.started[step.name] -= 60  # a minute in, half done
    line = beat.line()
    assert "0/1 steps done" in line and "02_train_z16 1:00, training, step 20/40" in line and "ETA 1:00" in line


def test_check_report_finds_dead_links_missing_audio_and_machine_paths(tmp_path):
    from vaelib.synth.audio import write_ogg

    (tmp_path / "a").mkdir()
    write_ogg(tmp_path / "a" / "clip.ogg", 0.1 * np.sin(np.arange(22050) / 10.0), 22050)
    (tmp_path / "index.html").write_text('<a href="a/clip.ogg">x</a><audio controls src="a/clip.ogg"></audio>'
                                         '<a href="https://example.org/x">web</a><a href="#top">top</a>')
    (tmp_path / "r.json").write_text(json.dumps({"run_dir": "z16", "data_dir": "../data"}))
    # an embedded figure's base64 can spell a path by chance, in a page or in a JSON record: not a machine path
    (tmp_path / "fig.html").write_text('<img src="data:image/png;base64,iVBORw0K+/tmp/Gg\n+/home/x==">')
    (tmp_path / "nb.json").write_text(json.dumps({"text/html": '<img src="data:image/png;base64,AB+/tmp/CD">'}))
    assert report_check.check_report(tmp_path) == []
    (tmp_path / "index.html").write_text('<audio src="a/gone.ogg"></audio><img src="/abs/x.png">')
    (tmp_path / "r.json").write_text(json.dumps({"final_checkpoint": "/tmp/fresh/z16/checkpoints/s.pt"}))
    problems = "\n".join(report_check.check_report(tmp_path))
    assert "a/gone.ogg does not resolve" in problems and "/abs/x.png does not resolve" in problems
    assert "r.json: absolute path" in problems and "no <audio>" in problems


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tiny_pipeline_report_is_self_contained(tmp_path):
    """The real notebooks on a minimal tiny run: every href/src of the index resolves inside the output folder,
    its <audio> elements decode, and no HTML or JSON record holds an absolute path; a moved copy still passes."""
    out = tmp_path / "report"
    argv = ["--preset", "tiny", "--latent-dims", "8", "--data", "synthetic", "--out", str(out), "--n-examples", "60",
            "--max-steps", "4", "--limit", "6", "--no-control", "--sequential"]
    assert pipeline.main(argv) == 0
    assert report_check.check_report(out) == []
    index = (out / "index.html").read_text()
    assert index.count("<audio") >= 2 * 6 + 8 and "Table 1." in index and "z8/figures/" in index
    assert index.index("SIMULATED listening-test analysis") > index.index("Listen</h2>")  # simulated material last
    moved = shutil.copytree(out, tmp_path / "moved")
    shutil.rmtree(out)
    assert report_check.check_report(moved) == []


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="no committed reference")
def test_committed_reference_is_self_contained():
    assert report_check.check_report(REFERENCE) == []
    size = sum(f.stat().st_size for f in REFERENCE.rglob("*") if f.is_file())
    assert size < 16e6, f"{size / 1e6:.1f} MB"
