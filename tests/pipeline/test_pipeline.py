"""The papermill pipeline on throwaway notebooks: injection, HTML, index, skipping, failures, parallel workers, CLI plan."""
import json
import os
from pathlib import Path

import nbformat
import pytest

from vaelib import pipeline
from vaelib import slots
from vaelib.pipeline import Step, groups, plan, run_pipeline

pytestmark = pytest.mark.timeout(120)


def write_notebook(path, parameters: str, body: str):
    """A notebook in the project's shape: title, one tagged parameters cell, one code cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test notebook"), params, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, str(path))
    return path


WRITE_VALUE = ("import json, pathlib\n"
               "pathlib.Path(out_file).write_text(json.dumps({'value': value}))\n"
               "print('the value is', value * 1000)")


@pytest.fixture
def notebooks(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    write_notebook(d / "ok.ipynb", 'value: int = 1  # a number\nout_file: str = "x.json"  # where it goes', WRITE_VALUE)
    write_notebook(d / "boom.ipynb", 'out_file: str = "x.txt"  # marker written before the failure',
                   "import pathlib\npathlib.Path(out_file).write_text('started')\n"
                   "raise RuntimeError('boom on purpose')")
    write_notebook(d / "device.ipynb", 'out_file: str = "x.txt"  # records the GPU this kernel was given',
                   "import os, pathlib\npathlib.Path(out_file).write_text(os.environ.get('CUDA_VISIBLE_DEVICES', ''))")
    write_notebook(d / "threads.ipynb", 'out_file: str = "x.txt"  # records the kernel\'s torch thread cap',
                   "import os, pathlib, torch\n"
                   "pathlib.Path(out_file).write_text(f\"{torch.get_num_threads()} {os.environ['CUDA_VISIBLE_DEVICES']!r}\")")
    return d


def statuses(summary):
    return {s["name"]: s["status"] for s in summary["steps"]}


def two_steps(out, value_a=3, value_b=4):
    return [Step("a", "ok", {"value": value_a, "out_file": str(out / "a.json")}, outputs=(str(out / "a.json"),)),
            Step("b", "ok", {"value": value_b, "out_file": str(out / "b.json")}, depends=("a",),
                 inputs=(str(out / "a.json"),))]


def test_runs_injects_converts_indexes_then_skips_and_reruns(notebooks, tmp_path, capsys):
    out = tmp_path / "out"
    summary = run_pipeline(two_steps(out), notebooks, out, config={"preset": "tiny", "seeds": [0]})
    assert summary["ok"] and statuses(summary) == {"a": "ok", "b": "ok"}
    assert json.loads((out / "a.json").read_text()) == {"value": 3}  # injected, not the default 1
    executed = nbformat.read(str(out / "notebooks" / "a.ipynb"), as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    page = (out / "notebooks" / "a.html").read_text()
    assert "the value is 3000" in page  # the executed output, rendered
    index = (out / "index.html").read_text()
    assert 'href="notebooks/a.html"' in index and 'href="notebooks/b.html"' in index
    assert "All steps succeeded" in index and "tiny" in index
    record = json.loads((out / "run_record.json").read_text())
    assert record["seeds"] == [0] and set(record["steps"]) == {"a", "b"} and record["packages"]["papermill"]
    assert json.loads((out / "pipeline.json").read_text())["steps"][0]["parameters"]["value"] == 3

    mtime = (out / "notebooks" / "b.html").stat().st_mtime_ns
    again = run_pipeline(two_steps(out), notebooks, out)
    assert statuses(again) == {"a": "skipped-unchanged", "b": "skipped-unchanged"} and again["ok"]
    assert (out / "notebooks" / "b.html").stat().st_mtime_ns == mtime

    capsys.readouterr()
    changed_b = run_pipeline(two_steps(out, value_b=5), notebooks, out)
    assert statuses(changed_b) == {"a": "skipped-unchanged", "b": "ok"}
    assert "b: running ok.ipynb (changed: parameters)" in capsys.readouterr().err
    assert json.loads((out / "b.json").read_text()) == {"value": 5}

    # an upstream rerun reruns its dependants even when their own parameters are unchanged
    changed_a = run_pipeline(two_steps(out, value_a=7, value_b=5), notebooks, out)
    assert statuses(changed_a) == {"a": "ok", "b": "ok"}
    assert "b: running ok.ipynb (changed: upstream, inputs)" in capsys.readouterr().err


def test_deleted_output_or_edited_notebook_or_force_reruns(notebooks, tmp_path):
    out = tmp_path / "out"
    steps = two_steps(out)[:1]
    run_pipeline(steps, notebooks, out)
    (out / "a.json").unlink()  # a declared output is gone: the skip would be a lie
    assert statuses(run_pipeline(steps, notebooks, out)) == {"a": "ok"}
    nb = nbformat.read(str(notebooks / "ok.ipynb"), as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("an edit"))
    nbformat.write(nb, str(notebooks / "ok.ipynb"))
    assert statuses(run_pipeline(steps, notebooks, out)) == {"a": "ok"}
    assert statuses(run_pipeline(steps, notebooks, out)) == {"a": "skipped-unchanged"}
    assert statuses(run_pipeline(steps, notebooks, out, force=True)) == {"a": "ok"}


def test_failure_keeps_partial_html_blocks_dependants_only(notebooks, tmp_path):
    out = tmp_path / "out"
    steps = [Step("a", "ok", {"value": 1, "out_file": str(out / "a.json")}),
             Step("boom", "boom", {"out_file": str(out / "boom.txt")}, depends=("a",)),
             Step("after_boom", "ok", {"value": 2, "out_file": str(out / "c.json")}, depends=("boom",)),
             Step("independent", "ok", {"value": 4, "out_file": str(out / "d.json")}, depends=("a",)),
             Step("not_written_yet", "05_explorer", {})]
    summary = run_pipeline(steps, notebooks, out)
    assert not summary["ok"]
    assert statuses(summary) == {"a": "ok", "boom": "FAILED", "after_boom": "blocked", "independent": "ok",
                                 "not_written_yet": "missing"}
    assert (out / "boom.txt").read_text() == "started"  # the cells before the error ran
    partial = (out / "notebooks" / "boom.html").read_text()
    assert "RuntimeError" in partial and "boom on purpose" in partial
    boom = next(s for s in summary["steps"] if s["name"] == "boom")
    assert boom["error"].endswith(": RuntimeError: boom on purpose") and boom["html"] == "notebooks/boom.html"
    assert (out / "a.json").exists() and (out / "d.json").exists() and not (out / "c.json").exists()
    index = (out / "index.html").read_text()
    assert "FAILED" in index and 'href="notebooks/boom.html"' in index and "Not complete" in index
    assert "boom" not in json.loads((out / pipeline.STATE_FILE).read_text())  # a failure is never skipped later
    assert statuses(run_pipeline(steps[:2], notebooks, out))["boom"] == "FAILED"


def test_parallel_steps_get_one_device_each(notebooks, tmp_path):
    out = tmp_path / "out"
    steps = [Step(f"train{i}", "device", {"out_file": str(out / f"dev{i}.txt")}, parallel=True) for i in range(2)]
    summary = run_pipeline(steps, notebooks, out, devices=["7", "9"])
    assert summary["ok"]
    seen = {(out / f"dev{i}.txt").read_text() for i in range(2)}
    assert seen == {"7", "9"} == {s["device"] for s in summary["steps"]}


def test_cpu_slots_share_the_cores():
    assert slots.cpu_slots(2) == ["cpu:1", "cpu:1"]
    assert slots.cpu_slots(16, max_workers=5) == ["cpu:3"] * 5
    assert slots.cpu_slots(1) == [] and slots.cpu_slots(8, max_workers=1) == []
    # 5 trainings on 2 cores: two rounds of two 1-thread steps, then the last one alone with both threads
    assert slots.cpu_threads_per_step(5, ["cpu:1", "cpu:1"]) == ["cpu:1"] * 4 + ["cpu:2"]
    assert slots.cpu_threads_per_step(2, ["cpu:3"] * 5) == ["cpu:7"] * 2  # 2 left of 5: the 15 threads shared


def test_cpu_slot_keeps_malloc_in_the_heap_unless_the_user_set_it(monkeypatch):
    monkeypatch.setattr(os, "environ", dict(os.environ))  # apply_slot writes a copy; the real one stays as it was
    os.environ["GLIBC_TUNABLES"] = "glibc.rtld.optional_static_tls=2048"
    slots.apply_slot("cpu:1")
    assert os.environ["GLIBC_TUNABLES"] == "glibc.rtld.optional_static_tls=2048:" + slots.MALLOC_TUNABLES
    os.environ["GLIBC_TUNABLES"] = "glibc.malloc.trim_threshold=0"
    slots.apply_slot("cpu:1")
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.trim_threshold=0"


def test_parallel_cpu_workers_cap_the_kernels_threads(notebooks, tmp_path):
    out = tmp_path / "out"
    steps = [Step(f"train{i}", "threads", {"out_file": str(out / f"t{i}.txt")}, parallel=True) for i in range(2)]
    summary = run_pipeline(steps, notebooks, out, devices=slots.cpu_slots(2))
    assert summary["ok"] and {s["device"] for s in summary["steps"]} == {"cpu:1"}
    assert {(out / f"t{i}.txt").read_text() for i in range(2)} == {"1 ''"}  # one thread each, no GPU visible
    assert "cpu:1" in (out / "index.html").read_text()
    assert json.loads((out / "run_record.json").read_text())["device"] == "cpu, independent steps in 2 parallel workers of 1 thread"


def test_plan_follows_the_contract(tmp_path):
    steps = plan("tiny", [16, 32], [0, 1], "synthetic", tmp_path / "o", n_examples=40, control=False)
    names = [s.name for s in steps]
    assert names == ["01_dataset_curation", "02_train_z16_s0", "02_train_z16_s1", "02_train_z32_s0",
                     "02_train_z32_s1", "03_evaluate", "04_latent_space_z16", "04_latent_space_z32", "05_explorer",
                     "06_listening_test"]
    by = {s.name: s for s in steps}
    out = (tmp_path / "o").resolve()
    assert by["01_dataset_curation"].parameters == dict(source="synthetic", n_examples=40, seed=0, preset="tiny",
                                                        out_dir="data")  # relative to OUT, the notebooks' cwd
    assert by["02_train_z32_s1"].parameters["run_dir"] == "z32_s1"
    assert by["05_explorer"].parameters["run_dir"] == "z32_s0"  # the largest latent size
    # the listening kit draws z from N(0, I) and from the slot prior the evaluation fits (tiny fits one)
    assert by["06_listening_test"].parameters["priors"] == ["normal", "learned"]
    assert set(by["03_evaluate"].depends) == {"01_dataset_curation", *[n for n in names if n.startswith("02_")]}
    # curation and evaluation run alone; the trainings side by side, then the notebooks that read one run each
    assert [[s.name for s in g] for g in groups(steps)] == [names[:1], names[1:5], names[5:6], names[6:]]
    single = plan("tiny", [16], [3], "synthetic", out)
    assert single[1].parameters["run_dir"] == "z16" and single[1].parameters["seed"] == 3
    assert single[0].parameters["n_examples"] == 120  # the preset's corpus size


def test_plan_adds_one_literal_objective_control_unless_told_not_to(tmp_path):
    from vaelib.config import control_epochs, get_preset, literal_variant

    out = (tmp_path / "o").resolve()
    steps = plan("tiny", [32, 16], [3, 4], "synthetic", out, epochs=2, beta_max=2.0)
    by = {s.name: s for s in steps}
    control = by["02_train_z16_paper"]  # the smallest size, once, whatever the number of seeds
    assert [s.name for s in steps].count("02_train_z16_paper") == 1 and control.parallel
    assert control.parameters["preset"] == literal_variant("tiny")
    assert control.parameters["run_dir"] == "z16_paper" and control.parameters["seed"] == 3
    assert control.parameters["epochs"] == 2 and control.parameters["beta_max"] < 0  # tiny-paper: the same budget
    literal = get_preset(control.parameters["preset"]).train
    assert literal.free_bits == literal.word_dropout == literal.beta_zero_frac == 0
    small, small_ctl = get_preset("small"), get_preset(literal_variant("small"))
    assert small_ctl.model == small.model and small_ctl.data == small.data and small_ctl.train.beta_max == 8
    # the small control trains half the budget (all 4 beta cycles, each half as long), and half of an EPOCHS override
    assert small_ctl.train.epochs * 2 == small.train.epochs and small_ctl.train.n_cycles == small.train.n_cycles
    by_small = {s.name: s for s in plan("small", [128, 256], [0], "synthetic", out, epochs=12)}
    assert by_small["02_train_z128_paper"].parameters["epochs"] == 6
    assert by_small["02_train_z256"].parameters["epochs"] == 12
    assert plan("small", [128], [0], "synthetic", out)[2].parameters["epochs"] == 0  # 0: the preset's own (3)
    assert control_epochs("small") == 3 and control_epochs("small", 12) == 6 and control_epochs("small", 1) == 1
    assert control.name in by["03_evaluate"].depends and str(out / "z16_paper" / "run.json") in by["03_evaluate"].inputs
    assert control.name not in by["06_listening_test"].depends  # the listening kit compares the main runs only
    without = plan("tiny", [16, 32], [0], "synthetic", out, control=False)
    assert not any("paper" in s.name for s in without)
    assert [s.name for s in without] == [s.name for s in plan("tiny", [16, 32], [0], "synthetic", out)
                                         if s.name != "02_train_z16_paper"]
    assert not any("paper" in s.name for s in plan("paper", [128], [0], "synthetic", out))  # main runs are literal


STAND_INS = {  # minimal notebooks with the contract's parameter names, writing what the real ones write
    "01_dataset_curation": ('source: str = "synthetic"  # corpus\nn_examples: int = 8  # windows\nseed: int = 0  # seed\n'
                            'preset: str = "tiny"  # preset\nout_dir: str = "../results/nbval/data"  # where',
                            "import json, pathlib\npathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
                            "pathlib.Path(out_dir, 'report.json').write_text(json.dumps({'n': n_examples}))"),
    "02_train": ('preset: str = "tiny"  # p\nlatent_dim: int = 16  # z\ndata_dir: str = "d"  # data\n'
                 'run_dir: str = "r"  # run\nseed: int = 0  # s\nepochs: int = 0  # e\nbeta_max: float = -1.0  # b\n'
                 'max_steps: int = 0  # m',
                 "import json, pathlib\nassert pathlib.Path(data_dir, 'report.json').exists()\n"
                 "pathlib.Path(run_dir).mkdir(parents=True, exist_ok=True)\n"
                 "pathlib.Path(run_dir, 'run.json').write_text(json.dumps({'latent_dim': latent_dim}))"),
    "03_evaluate": ('preset: str = "tiny"  # p\nresults_dir: str = "r"  # runs\nlatent_dims: list = [16]  # sizes\n'
                    'data_dir: str = "d"  # data\nlimit: int = 0  # all\nout_dir: str = "o"  # table',
                    "import json, pathlib, base64\n"
                    "rows = [json.loads(pathlib.Path(results_dir, f'z{d}', 'run.json').read_text()) for d in latent_dims]\n"
                    "pathlib.Path(out_dir, 'table1.csv').write_text('latent_dim,note_f1\\n' + ''.join("
                    "f\"{r['latent_dim']},0.5\\n\" for r in rows))\n"
                    "pathlib.Path(out_dir, 'table1.md').write_text('| D | note F1 |\\n|---:|---|\\n' + ''.join("
                    "f\"| {r['latent_dim']} | 0.50 [0.40, 0.60] |\\n\" for r in rows))\n"
                    "pathlib.Path(out_dir, 'figures').mkdir(exist_ok=True)\n"
                    "pathlib.Path(out_dir, 'figures', 'table1_bars.png').write_bytes(base64.b64decode("
                    "'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='))"),
    "04_latent_space": ('run_dir: str = "r"  # run\ndata_dir: str = "d"  # data\nlatent_dim: int = 16  # z',
                        "import pathlib\nassert pathlib.Path(run_dir, 'run.json').exists()"),
    "05_explorer": ('run_dir: str = "r"  # run\ndata_dir: str = "d"  # data',
                    "import pathlib\nassert pathlib.Path(run_dir, 'run.json').exists()"),
    "06_listening_test": ('results_dir: str = "r"  # runs\nlatent_dims: list = [16]  # sizes\n'
                          'data_dir: str = "d"  # data\nout_dir: str = "o"  # pack',
                          "import pathlib\npathlib.Path(out_dir).mkdir(parents=True, exist_ok=True)"),
}


def test_cli_runs_the_plan_and_shows_table1(tmp_path, monkeypatch):
    # The real salt hashes vaelib's sources; pinned here so a library edit landing mid-test can't force a rerun.
    monkeypatch.setattr(pipeline, "library_salt", lambda preset, notebook: f"pinned-{preset}")
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    for stem, (params, body) in STAND_INS.items():
        write_notebook(nbdir / f"{stem}.ipynb", params, body)
    out = tmp_path / "report"
    argv = ["--preset", "tiny", "--latent-dims", "16", "32", "--seeds", "0", "--data", "synthetic", "--out", str(out),
            "--n-examples", "40", "--notebooks-dir", str(nbdir), "--sequential"]
    assert pipeline.main(argv) == 0
    assert (out / "table1.csv").read_text().splitlines() == ["latent_dim,note_f1", "16,0.5", "32,0.5"]
    index = (out / "index.html").read_text()
    assert json.loads((out / "z16_paper" / "run.json").read_text()) == {"latent_dim": 16}  # the control trained
    for stem in ["01_dataset_curation", "02_train_z16", "02_train_z32", "02_train_z16_paper", "03_evaluate",
                 "04_latent_space_z16",
                 "04_latent_space_z32", "05_explorer", "06_listening_test"]:
        assert f'href="notebooks/{stem}.html"' in index and (out / "notebooks" / f"{stem}.html").exists()
    assert "<td>32</td><td>0.50 [0.40, 0.60]</td>" in index  # Table 1 inline, from its Markdown
    assert 'src="figures/table1_bars.png"' in index and 'href="table1.csv"' in index
    assert json.loads((out / "data" / "report.json").read_text()) == {"n": 40}
    assert json.loads((out / "pipeline.json").read_text())["config"]["preset_config"]["name"] == "tiny"
    assert json.loads((out / "pipeline.json").read_text())["config"]["control"] == "tiny-paper"

    # a broken notebook: exit 1, its steps FAILED with the traceback in their HTML, everything upstream kept
    write_notebook(nbdir / "04_latent_space.ipynb", STAND_INS["04_latent_space"][0], "raise ValueError('no z')")
    assert pipeline.main(argv) == 1
    got = statuses(json.loads((out / "pipeline.json").read_text()))
    assert got["04_latent_space_z16"] == got["04_latent_space_z32"] == "FAILED"
    assert got["02_train_z16"] == got["03_evaluate"] == "skipped-unchanged" and got["05_explorer"] == "skipped-unchanged", got
    assert (out / "table1.csv").exists() and "ValueError" in (out / "notebooks" / "04_latent_space_z16.html").read_text()


def test_key_tracks_notebook_inputs_and_salt(tmp_path):
    nb = write_notebook(tmp_path / "n.ipynb", "x: int = 1  # x", "print(x)")
    data = tmp_path / "report.json"
    data.write_text("{}")
    step = Step("s", "n", {"x": 1}, inputs=(str(data),))
    key = pipeline.step_key(step, nb, [])
    assert key == pipeline.step_key(step, nb, [])
    assert key != pipeline.step_key(Step("s", "n", {"x": 2}, inputs=(str(data),)), nb, [])
    assert key != pipeline.step_key(step, nb, [], salt="other library")
    assert key != pipeline.step_key(step, nb, [{"key": "k", "run_id": "r"}])
    data.write_text('{"n": 1}')
    assert key != pipeline.step_key(step, nb, [])


def test_library_salt_follows_the_preset_and_the_imported_modules(tmp_path):
    uses_config = write_notebook(tmp_path / "a.ipynb", "x: int = 1  # x", "%matplotlib inline\nfrom vaelib.config import get_preset")
    uses_pipeline = write_notebook(tmp_path / "b.ipynb", "x: int = 1  # x", "import vaelib.pipeline as p")
    pkg = Path(pipeline.__file__).resolve().parents[1]

    def names(nb):
        return {f.relative_to(pkg).as_posix() for f in pipeline.library_sources(nb)}

    # transitively, via vaelib/__init__ and vaelib/pipeline/__init__
    assert {"__init__.py", "config.py", "pipeline/runner.py", "pipeline/report_index.py"} <= names(uses_pipeline)
    assert "pipeline/runner.py" not in names(uses_config)
    salt = pipeline.library_salt("tiny", uses_config)
    assert salt == pipeline.library_salt("tiny", uses_config) != pipeline.library_salt("small", uses_config)
    assert salt != pipeline.library_salt("tiny", uses_pipeline)


def test_find_notebook_falls_back_to_number_prefix(tmp_path):
    write_notebook(tmp_path / "04_latent.ipynb", "x: int = 1  # x", "print(x)")
    assert pipeline.find_notebook(tmp_path, "04_latent_space").name == "04_latent.ipynb"
    assert pipeline.find_notebook(tmp_path, "05_explorer") is None
    os.remove(tmp_path / "04_latent.ipynb")
    assert pipeline.find_notebook(tmp_path, "04_latent_space") is None


def test_table_renders_from_csv_when_there_is_no_markdown(tmp_path):
    from vaelib.pipeline.report_index import render_table

    assert "No table1 yet" in render_table(tmp_path)
    (tmp_path / "table1.csv").write_text("latent_dim,cc_me\n128,0.123456\n256,0.2\n")
    page = render_table(tmp_path)
    assert "<td>128</td>" in page and "<td>0.1235</td>" in page


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = open(f"/proc/{pid}/stat").read() if os.path.exists(f"/proc/{pid}/stat") else ""
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.mark.skipif(not os.path.exists("/proc"), reason="reads /proc")
def test_sigterm_to_the_pipeline_alone_stops_its_workers_and_their_kernels(notebooks, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    write_notebook(notebooks / "sleepy.ipynb", 'out_file: str = "x.txt"  # gets "kernel_pid worker_pid"',
                   "import os, pathlib, time\n"
                   "pathlib.Path(out_file).write_text(f'{os.getpid()} {os.getppid()}')\ntime.sleep(120)")
    out = tmp_path / "out"
    script = (f"from vaelib.pipeline import Step, run_pipeline\n"
              f"steps = [Step(f's{{i}}', 'sleepy', {{'out_file': r'{out}/s%d.txt' % i}}, parallel=True) for i in range(3)]\n"
              f"run_pipeline(steps, r'{notebooks}', r'{out}', devices=['cpu:1', 'cpu:1'])\n")
    proc = subprocess.Popen([sys.executable, "-c", script])
    files = [out / f"s{i}.txt" for i in range(2)]
    deadline = time.time() + 90
    while not all(f.exists() and f.read_text() for f in files) and time.time() < deadline:
        time.sleep(0.5)
    pids = [int(p) for f in files for p in f.read_text().split()]  # two kernels and their two workers
    proc.send_signal(signal.SIGTERM)  # to the pipeline process only, not to its group
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    deadline = time.time() + 30
    while any(map(_alive, pids)) and time.time() < deadline:
        time.sleep(0.5)
    assert not any(map(_alive, pids)), "a worker or its kernel outlived the pipeline"
    time.sleep(2)
    assert not (out / "s2.txt").exists()  # the queued third step never started
