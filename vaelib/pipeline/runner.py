"""The papermill pipeline behind ``make report``: curate, train per latent size, evaluate, and render the reports.

Each step executes one notebook with papermill into ``OUT/notebooks/<step>.ipynb`` and converts it to HTML beside it.
A step is skipped when its key (a hash of its parameters, its notebook, its upstream steps' keys and run ids, its input
files and the library source) matches the one stored in ``OUT/.pipeline_state.json`` and its outputs exist.
A failing notebook keeps its partial HTML (with the traceback), blocks only the steps that depend on it, and makes
the whole run exit non-zero. Independent steps (the trainings; later the latent-space, explorer and listening
notebooks) run side by side: one per GPU with several CUDA GPUs, else in CPU workers sharing the cores (``vaelib.slots``).

Besides the main runs, one control (``02_train_z{D}_paper``, smallest D) trains the same architecture with the paper's
literal objective (the preset's ``-paper`` variant; ``small-paper`` trains half of ``small``'s epochs), so Table 1
shows the collapse next to the recommended objective (``--no-control`` skips it).

CLI: ``python -m vaelib.pipeline --preset small --latent-dims 128 256 384 512 --seeds 0 --data synthetic --out results/small``
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import html
import json
import logging
import multiprocessing
import os
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Callable

from vaelib.config import get_preset, literal_variant
from vaelib.pipeline import report_index
from vaelib.pipeline.step import BLOCKED, DONE, FAILED, MISSING, OK, SKIPPED, Step, StepResult
from vaelib.pipeline.keys import (STATE_FILE, fingerprint, key_parts, library_salt, library_sources,  # noqa: F401
                                  load_state, save_state, step_key)
from vaelib.runs import CONTROL, run_name
from vaelib.slots import (CPU_SLOT, apply_slot, cpu_threads_per_step, current_slot, groups,  # noqa: F401
                          parallel_slots, workers_stop_with_us)

# The notebooks ship inside the package (package data), so an installed vaelib finds them; --notebooks-dir overrides.
NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


# ---------------------------------------------------------------- plan

def plan(preset: str, latent_dims, seeds, data: str, out, *, n_examples: int = 0, epochs: int = 0,
         max_steps: int = 0, beta_max: float = -1.0, limit: int = 0, control: bool = True,
         cc: str = "") -> list[Step]:
    """The paper's steps: 01 once, 02 per (latent_dim, seed), 03 once, 04 per latent_dim, 05 and 06 once.

    Each 02 trains its run and then scores it on the test split in the same worker, so one papermill job per size
    also gives that size's metrics; 03 reads them back, scores only runs whose metrics are stale, and builds Table 1.

    ``n_examples`` 0 takes the preset's corpus size; ``epochs`` 0, ``max_steps`` 0 and ``beta_max`` -1 take the
    preset's training settings; ``limit`` 0 evaluates the whole test split. ``cc`` picks the controllers curation
    models ("auto", "auto:N" or "74,71,..."; "" keeps the default table; see ``vaelib.data.curation``).
    ``control`` adds ``02_train_z{D}_paper`` for the smallest D and the first seed: the preset's literal-objective
    variant (``config.literal_variant``; none for ``paper``, whose main runs are literal) trained into
    ``OUT/z{D}_paper``, so 03 can show the collapse the defences prevent. It keeps the paper's beta_max.
    """
    out = Path(out).resolve()
    latent_dims, seeds = [int(d) for d in latent_dims], [int(s) for s in seeds]
    cfg = get_preset(preset)
    data_dir = "data"
    source = data if data == "synthetic" else str(Path(data).resolve())
    report = str(out / "data" / "report.json")

    def rel(path) -> str:
        """A parameter path: relative to ``out``, the notebooks' working directory."""
        return Path(os.path.relpath(path, out)).as_posix()

    def run_dir(dim: int, seed: int) -> Path:
        return out / run_name(dim, None if len(seeds) == 1 else seed)

    steps = [Step("01_dataset_curation", "01_dataset_curation",
                  dict(source=source if data == "synthetic" else rel(source), n_examples=int(n_examples or cfg.data.n_examples), seed=cfg.data.seed,
                       preset=preset, out_dir=data_dir, **({"cc": cc} if cc else {})),
                  inputs=() if data == "synthetic" else (source,), outputs=(report,))]
    train = {}
    for dim in latent_dims:
        for seed in seeds:
            name = f"02_train_{run_dir(dim, seed).name}"
            train[dim, seed] = name
            steps.append(Step(name, "02_train",
                              dict(preset=preset, latent_dim=dim, data_dir=data_dir, run_dir=rel(run_dir(dim, seed)),
                                   seed=seed, epochs=int(epochs), beta_max=float(beta_max), max_steps=int(max_steps),
                                   limit=int(limit)),
                              depends=("01_dataset_curation",), inputs=(report,),
                              outputs=(str(run_dir(dim, seed) / "run.json"),), parallel=True))
    all_runs = ("01_dataset_curation", *train.values())
    run_records = tuple(str(run_dir(d, s) / "run.json") for d, s in train)
    variant = literal_variant(preset) if control else None
    controls, control_records = (), ()  # evaluated by 03 beside the main runs, never one of their seeds
    if variant is not None:
        dim = min(latent_dims)
        ctl = out / run_name(dim, control=True)
        controls, control_records = (f"02_train_{ctl.name}",), (str(ctl / "run.json"),)
        steps.append(Step(controls[0], "02_train",
                          dict(preset=variant, latent_dim=dim, data_dir=data_dir, run_dir=rel(ctl), seed=seeds[0],
                               epochs=int(epochs), beta_max=-1.0, max_steps=int(max_steps), limit=int(limit)),
                          depends=("01_dataset_curation",), inputs=(report,), outputs=control_records, parallel=True))
    steps.append(Step("03_evaluate", "03_evaluate",
                      dict(preset=preset, results_dir=".", latent_dims=latent_dims, data_dir=data_dir,
                           limit=int(limit), out_dir="."),
                      depends=(*all_runs, *controls), inputs=(report, *run_records, *control_records),
                      outputs=(str(out / "table1.csv"),)))
    for dim in latent_dims:
        first = run_dir(dim, seeds[0])
        steps.append(Step(f"04_latent_space_{run_name(dim)}", "04_latent_space",
                          dict(run_dir=rel(first), data_dir=data_dir, latent_dim=dim),
                          depends=("01_dataset_curation", train[dim, seeds[0]]),
                          inputs=(report, str(first / "run.json")), parallel=True))
    largest = run_dir(max(latent_dims), seeds[0])
    steps.append(Step("05_explorer", "05_explorer", dict(run_dir=rel(largest), data_dir=data_dir),
                      depends=("01_dataset_curation", train[max(latent_dims), seeds[0]]),
                      inputs=(report, str(largest / "run.json")), parallel=True))
    steps.append(Step("06_listening_test", "06_listening_test",
                      dict(results_dir=".", latent_dims=latent_dims, data_dir=data_dir, out_dir="listening",
                           priors=["normal", "learned"] if cfg.train.prior_steps else ["normal"]),
                      depends=all_runs, inputs=(report, *run_records), parallel=True))
    return steps


def find_notebook(notebooks_dir, stem: str) -> Path | None:
    """``notebooks_dir/<stem>.ipynb``, else the one notebook sharing its number prefix (``02_*.ipynb``)."""
    exact = Path(notebooks_dir) / f"{stem}.ipynb"
    if exact.exists():
        return exact
    same_number = sorted(Path(notebooks_dir).glob(f"{stem.split('_')[0]}_*.ipynb"))
    return same_number[0] if len(same_number) == 1 else None


# ---------------------------------------------------------------- execution
def kernel_manager_class():
    """The kernel manager papermill starts each notebook's kernel with: IPC transport (Unix sockets in Jupyter's
    runtime folder) where the OS has it, so the kernel's messages never travel over TCP and ipykernel has no
    unencrypted-TCP warning to give. TCP (the Jupyter default) on Windows."""
    from jupyter_client import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import default

    if os.name == "nt":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:  # socket files <this>-<port number>, removed when the kernel shuts down
            runtime = Path(jupyter_runtime_dir())
            runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
            return str(runtime / f"kernel-{uuid.uuid4().hex[:12]}-ipc")

    return IPCKernelManager


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _widget_text(model_id: str, state: dict) -> str:
    """Plain text of a saved widget: a progress bar (tqdm's box of HTML, progress, HTML) as its final line;
    "" for any other widget."""
    import re

    def text(mid: str) -> str:
        m = state.get(mid.removeprefix("IPY_MODEL_"), {}).get("state", {})
        name = m.get("_model_name", "")
        if name in ("HTMLModel", "LabelModel"):
            return html.unescape(re.sub(r"<[^>]+>", "", str(m.get("value", "")))).replace("\u2007", " ").strip()
        if name in ("FloatProgressModel", "IntProgressModel"):
            return "|"
        if name in ("HBoxModel", "VBoxModel", "BoxModel"):
            return " ".join(t for t in (text(c) for c in m.get("children", [])) if t)
        return ""

    m = state.get(model_id, {}).get("state", {})
    kids = [state.get(c.removeprefix("IPY_MODEL_"), {}).get("state", {}).get("_model_name", "")
            for c in m.get("children", [])]
    return text(model_id) if any("Progress" in k for k in kids) else ""


def plain_outputs(nb) -> None:
    """Replace every widget output of ``nb`` by plain text (in place) and drop the saved widget state: a static
    page cannot run widgets (offline they render as nothing), so a progress bar becomes its final text line and
    an interactive widget a note to open the notebook in Jupyter."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            line = _widget_text(data[WIDGET_VIEW].get("model_id", ""), state)
            out["data"] = {"text/plain": line or ("[interactive widget: open the .ipynb in Jupyter to use it; "
                                                  "the static results below are what this page can show]")}
    nb.metadata.pop("widgets", None)


def _share_theme_css(body: str, folder: Path) -> str:
    """Move the page's head ``<style>`` blocks (nbconvert's theme, ~260 kB, the same for every notebook) into one
    ``notebook-<hash>.css`` beside the page, linked from it."""
    import hashlib
    import re

    head_end = body.find("</head>")
    styles = re.findall(r"<style[^>]*>(.*?)</style>", body[:max(head_end, 0)], flags=re.S)
    if not styles:
        return body
    css = "\n".join(styles)
    name = f"notebook-{hashlib.sha256(css.encode()).hexdigest()[:10]}.css"
    if not (folder / name).exists():
        tmp = folder / f"{name}.{os.getpid()}.tmp"
        tmp.write_text(css, encoding="utf-8")
        os.replace(tmp, folder / name)
    head = re.sub(r"<style[^>]*>.*?</style>\s*", "", body[:head_end], flags=re.S)
    return head + f'<link rel="stylesheet" href="{name}">\n' + body[head_end:]


def to_html(ipynb, html_path) -> Path:
    """Convert an executed (possibly partial) notebook to HTML: images and audio players embedded, widgets as plain
    text (``plain_outputs``), the theme CSS shared by the pages of one folder (``_share_theme_css``)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    plain_outputs(nb)
    body, _ = HTMLExporter().from_notebook_node(nb)
    Path(html_path).write_text(_share_theme_css(body, Path(html_path).parent), encoding="utf-8")
    return Path(html_path)


def execute(step: Step, notebook: str, out: str, log_output: bool = False) -> StepResult:
    """Run one step with papermill (cwd = ``out``, which the step's parameter paths are relative to) and convert
    the result to HTML. ``log_output``
    streams the cell output to the log as it runs. Never raises for a notebook failure: the partial notebook is
    converted and the result says FAILED."""
    import papermill

    out = Path(out)
    ipynb, page = out / "notebooks" / f"{step.name}.ipynb", out / "notebooks" / f"{step.name}.html"
    ipynb.parent.mkdir(parents=True, exist_ok=True)
    for stale in (ipynb, page):  # a leftover from an earlier run must not pass for this one
        stale.unlink(missing_ok=True)
    result = StepResult(step.name, step.notebook, OK, step.parameters, ipynb=ipynb.relative_to(out).as_posix(),
                        html=page.relative_to(out).as_posix(), device=current_slot())
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(notebook), str(ipynb), parameters=step.parameters, kernel_name="python3",
                                   cwd=str(out.resolve()), progress_bar=False, log_output=log_output,
                                   kernel_manager_class=kernel_manager_class())
    except Exception as e:  # papermill has already saved the partial notebook with the error cell
        result.status = FAILED
        result.error = (f"cell {e.cell_index}: {e.ename}: {e.evalue}" if hasattr(e, "ename")  # the notebook raised
                        else f"{type(e).__name__}: {e}")[-4000:]  # the kernel died or never started
    result.wall_sec = round(time.perf_counter() - t0, 3)
    try:
        if ipynb.exists():
            to_html(ipynb, page)
        else:
            raise FileNotFoundError(f"papermill wrote no notebook for {step.name}")
    except Exception:  # the kernel never started, or the notebook is unreadable: keep the traceback visible
        page.write_text(f"<html><body><h1>{html.escape(step.name)}: {result.status}</h1><pre>"
                        f"{html.escape(result.error)}\n\n{html.escape(traceback.format_exc())}</pre></body></html>",
                        encoding="utf-8")
        if result.status == OK:
            result.status, result.error = FAILED, traceback.format_exc()[-4000:]
    if result.status == OK:
        missing = [o for o in step.outputs if not Path(o).exists()]
        if missing:
            result.status, result.error = FAILED, f"notebook finished but did not write {missing}"
    result.run_id = uuid.uuid4().hex if result.status == OK else ""
    return result


def _claim_device(queue, log_output: bool = False) -> None:
    """Pool initializer: pin this worker to one GPU (a slot from ``queue``) for its lifetime."""
    apply_slot(queue.get())
    if log_output:
        _configure_logging()


def _execute_on(slot: str, step: Step, notebook: str, out: str, log_output: bool = False) -> StepResult:
    """``execute`` in a pool worker, under ``slot`` when one is given (CPU workers get their threads per step)."""
    if log_output:
        _configure_logging()
    if slot:
        apply_slot(slot)
    _log(f"{step.name}: running {Path(notebook).name} in a worker on {slot or 'GPU ' + current_slot()}")
    return execute(step, notebook, out, log_output)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def _log(msg: str) -> None:
    print(f"[pipeline {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- progress
def _clock(sec: float) -> str:
    sec = max(int(sec), 0)
    return f"{sec // 3600}:{sec // 60 % 60:02d}:{sec % 60:02d}" if sec >= 3600 else f"{sec // 60}:{sec % 60:02d}"


def training_progress(run_dir, max_steps: int = 0) -> tuple[str, float | None]:
    """(what a training run is doing, fraction done or None) from the files it writes as it goes: ``config.json``
    (epochs), ``metrics.jsonl`` (step and epoch per logged row; the first validation row, at the end of epoch 1,
    gives the steps per epoch), ``run.json`` (status) and ``metrics.json`` (written when it has been scored)."""
    run_dir = Path(run_dir)
    try:
        epochs = int(json.loads((run_dir / "config.json").read_text())["train"]["epochs"])
    except (OSError, ValueError, KeyError):
        return "starting", None
    try:
        status = json.loads((run_dir / "run.json").read_text()).get("status", "")
    except (OSError, ValueError):
        status = ""
    if status == "finished":
        return "training done, scoring on the test split", None
    rows = []
    try:
        with open(run_dir / "metrics.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        pass
    if not rows:
        return f"training, epoch 1/{epochs}", None
    step, epoch = int(rows[-1].get("step", 0)), int(rows[-1].get("epoch", 0))
    val = next((r for r in rows if r.get("split") == "val"), None)
    if val is None:
        return f"training, step {step}, epoch {epoch + 1}/{epochs}", None
    total = int(val["step"]) // (int(val.get("epoch", 0)) + 1) * epochs
    total = min(total, max_steps) if max_steps else total
    return f"training, step {step}/{total}, epoch {min(epoch + 1, epochs)}/{epochs}", min(step / max(total, 1), 1.0)


class Heartbeat:
    """One progress line every ``every`` seconds while steps run: elapsed time, steps done, and each running step
    with its elapsed time, what it is doing (trainings: ``training_progress``) and an ETA where one can be measured
    (a training's pace so far; otherwise the step's wall time in the last run that finished it)."""

    def __init__(self, steps: list[Step], out: Path, state: dict, every: float = 30.0):
        import threading

        self.steps, self.out, self.every, self.t0 = {s.name: s for s in steps}, out, every, time.time()
        self.previous = {n: float(v.get("wall_sec", 0)) for n, v in state.items() if n in self.steps}
        self.started: dict[str, float] = {}
        self.waiting: list[str] = []  # submitted to a pool, not started yet
        self.workers = 1
        self.done = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pipeline-heartbeat")

    def __enter__(self):
        if self.every > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def submit(self, names: list[str], workers: int) -> None:
        """Steps handed to a pool of ``workers``: the first ones run, the rest wait their turn (FIFO)."""
        with self._lock:
            self.workers, self.waiting = workers, list(names)
            self._promote()

    def start(self, name: str) -> None:
        with self._lock:
            self.started[name] = time.time()

    def finish(self, name: str, counted: bool = True) -> None:
        with self._lock:
            self.started.pop(name, None)
            self.done += counted
            self._promote()

    def _promote(self) -> None:
        while self.waiting and len(self.started) < self.workers:
            self.started[self.waiting.pop(0)] = time.time()

    def describe(self, name: str, now: float) -> str:
        step, ran = self.steps[name], now - self.started[name]
        what, frac = "", None
        if step.notebook == "02_train" and "run_dir" in step.parameters:
            what, frac = training_progress(self.out / step.parameters["run_dir"],
                                           int(step.parameters.get("max_steps", 0)))
        if frac:
            eta = f"training ETA {_clock(ran / frac - ran)}"
        elif self.previous.get(name):
            eta = f"ETA ~{_clock(self.previous[name] - ran)} (took {_clock(self.previous[name])} last time)"
        else:
            eta = "ETA unknown (first run of this step)"
        return f"{name} {_clock(ran)}" + (f", {what}" if what else "") + f", {eta}"

    def line(self) -> str:
        now = time.time()
        with self._lock:
            running = [self.describe(n, now) for n in self.started]
            waiting = len(self.waiting)
            done = self.done
        return (f"elapsed {_clock(now - self.t0)}, {done}/{len(self.steps)} steps done; running: "
                + ("; ".join(running) or "none") + (f"; {waiting} queued" if waiting else ""))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            _log(self.line())


def run_steps(steps: list[Step], notebooks_dir, out, *, force: bool = False, salt: str | Callable = "",
              devices: list[str] | None = None, log_output: bool = False,
              heartbeat_sec: float = 30.0) -> list[StepResult]:
    """Run ``steps`` in order (consecutive ``parallel`` steps side by side, one per device when ``devices``).

    ``salt`` is a string or ``salt(notebook_path) -> str`` (the library code the notebook depends on).
    Returns one StepResult per step; writes the executed notebooks, their HTML and the state file under ``out``.
    Every ``heartbeat_sec`` (0: never) a progress line goes to stderr (``Heartbeat``).
    """
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    state = load_state(out)
    results: dict[str, StepResult] = {}
    parts_seen: dict[str, dict] = {}  # key parts of the steps about to run, stored so a later rerun can say why

    def prepare(step: Step):
        """-> (notebook, key, why it runs) to execute, or None when the step got a final result here."""
        failed = [d for d in step.depends if d in results and results[d].status not in DONE]
        if failed:
            results[step.name] = StepResult(step.name, step.notebook, BLOCKED, step.parameters,
                                            error=f"upstream step(s) did not succeed: {', '.join(failed)}")
            return None
        notebook = find_notebook(notebooks_dir, step.notebook)
        if notebook is None:
            results[step.name] = StepResult(step.name, step.notebook, MISSING, step.parameters,
                                            error=f"no {step.notebook}.ipynb in {notebooks_dir}")
            return None
        upstream = [{"key": results[d].key, "run_id": results[d].run_id} for d in step.depends if d in results]
        step_salt = salt(notebook) if callable(salt) else salt
        parts = key_parts(step, notebook, upstream, step_salt)
        key = step_key(step, notebook, upstream, step_salt)
        old = state.get(step.name, {})
        page = out / "notebooks" / f"{step.name}.html"
        kept = [page, page.with_suffix(".ipynb"), *map(Path, step.outputs)]
        if not force and old.get("key") == key and all(p.exists() for p in kept):
            results[step.name] = StepResult(step.name, step.notebook, SKIPPED, step.parameters, key=key,
                                            run_id=old.get("run_id", ""), ipynb=f"notebooks/{step.name}.ipynb",
                                            html=f"notebooks/{step.name}.html", wall_sec=old.get("wall_sec", 0.0))
            _log(f"{step.name}: unchanged, skipped")
            return None
        changed = [k for k, v in parts.items() if old.get("parts", {}).get(k) != v]
        why = ("forced" if force else "no earlier success" if not old else "outputs missing" if old.get("key") == key
               else f"changed: {', '.join(changed)}" if "parts" in old else "key changed")
        parts_seen[step.name] = parts
        return notebook, key, why

    def record(step: Step, key: str, result: StepResult) -> None:
        result.key = key
        results[step.name] = result
        if result.status == OK:
            state[step.name] = dict(key=key, parts=parts_seen.get(step.name, {}), run_id=result.run_id,
                                    wall_sec=result.wall_sec, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        else:
            state.pop(step.name, None)
        save_state(out, state)
        _log(f"{step.name}: {result.status} ({_clock(result.wall_sec)}) {result.error[:300]}".rstrip())
        beat.finish(step.name)

    with Heartbeat(steps, out, dict(state), heartbeat_sec) as beat:
        for group in groups(steps) if devices else [[s] for s in steps]:
            todo = [(s, *p) for s in group if (p := prepare(s)) is not None]
            beat.done += len(group) - len(todo)  # skipped, blocked or missing
            if devices and len(todo) > 1:
                beat.submit([t[0].name for t in todo], min(len(devices), len(todo)))
                _run_parallel(todo, out, devices, record, log_output)
                continue
            for step, notebook, key, why in todo:
                _log(f"{step.name}: running {notebook.name} ({why})")
                beat.start(step.name)
                record(step, key, execute(step, str(notebook), str(out), log_output))
    return [results[s.name] for s in steps]


def _run_parallel(todo, out: Path, devices: list[str], record, log_output: bool = False) -> None:
    """Run ``todo`` in a pool of ``len(devices)`` workers. GPU workers each claim one GPU at start-up; CPU workers
    take a thread count per step (``cpu_threads_per_step``). Papermill kernels inherit the worker's environment."""
    ctx = multiprocessing.get_context("spawn")  # fork after CUDA/threads is unsafe
    cpu = all(d.startswith(CPU_SLOT) for d in devices)
    slots = cpu_threads_per_step(len(todo), devices) if cpu else [""] * len(todo)  # "": the worker's own GPU
    queue = ctx.Queue()
    for d in [] if cpu else devices:
        queue.put(d)
    init = {} if cpu else dict(initializer=_claim_device, initargs=(queue, log_output))
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(len(devices), len(todo)), mp_context=ctx,
                                                **init) as pool, workers_stop_with_us():
        futures = {}
        for slot, (step, notebook, key, why) in zip(slots, todo):
            _log(f"{step.name}: queued for {len(devices)} parallel workers ({why})")
            futures[pool.submit(_execute_on, slot, step, str(notebook), str(out), log_output)] = (step, key)
        for fut in concurrent.futures.as_completed(futures):
            step, key = futures[fut]
            try:
                result = fut.result()
            except Exception as e:  # the worker itself died (e.g. out of host memory)
                result = StepResult(step.name, step.notebook, FAILED, step.parameters, error=f"worker died: {e!r}")
            record(step, key, result)


# ---------------------------------------------------------------- whole run
REPO = Path(__file__).resolve().parents[2]


def portable_path(path, out) -> str:
    """A path as a report may record it: relative to ``out`` when it is inside it, else relative to the
    repository when it is inside that (``notebooks``), else relative to ``out`` (``../midi``)."""
    p, out = Path(path).resolve(), Path(out).resolve()
    if p == out or out in p.parents or not (p == REPO or REPO in p.parents):
        return Path(os.path.relpath(p, out)).as_posix()
    return p.relative_to(REPO).as_posix() or "."


def portable_command(argv: list[str], out) -> str:
    """The pipeline's command line with the output folder written ``OUT`` and any other absolute path made
    relative to it, so the record names no folder of the machine that ran it."""
    words = []
    for a in argv:
        if os.path.isabs(a):
            a = "OUT" if Path(a).resolve() == Path(out).resolve() else portable_path(a, out)
        words.append(a)
    return " ".join(["python -m vaelib.pipeline", *words])



def run_pipeline(steps: list[Step], notebooks_dir, out, *, config: dict | None = None, force: bool = False,
                 salt: str | Callable = "", devices: list[str] | None = None, log_output: bool = False) -> dict:
    """Run the steps, then write ``pipeline.json``, ``run_record.json`` and ``index.html`` into ``out``.

    ``config`` (preset, latent dims, seeds, data, preset config, ...) is shown in the index and recorded.
    Returns the pipeline summary (``summary["ok"]`` is False when any step failed, was blocked or is missing).
    """
    out = Path(out).resolve()
    t0 = time.time()
    results = run_steps(steps, notebooks_dir, out, force=force, salt=salt, devices=devices, log_output=log_output)
    summary = dict(ok=all(r.status in DONE for r in results), config=config or {},
                   notebooks_dir=portable_path(notebooks_dir, out),
                   started=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
                   wall_sec=round(time.time() - t0, 3), parallel_devices=devices or [],
                   steps=[dataclasses.asdict(r) for r in results])
    summary.update(report_index.collect_artifacts(out))
    (out / "pipeline.json").write_text(json.dumps(summary, indent=2, default=str))
    report_index.write_run_record(out / "run_record.json", summary)
    report_index.write_index(out, summary)
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vaelib.pipeline", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--latent-dims", type=int, nargs="+", default=[128, 256, 384, 512])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--data", default="synthetic", help='"synthetic" or a folder of MIDI files')
    p.add_argument("--cc", default="", help='controllers to model: "auto", "auto:N" or "74,71,..." (default: the table)')
    p.add_argument("--out", default=None, help="output folder (default results/<preset>)")
    p.add_argument("--n-examples", type=int, default=0, help="synthetic corpus size (0 = the preset's)")
    p.add_argument("--epochs", type=int, default=0, help="0 = the preset's")
    p.add_argument("--max-steps", type=int, default=0, help="cap on optimizer steps per run (0 = none)")
    p.add_argument("--limit", type=int, default=0, help="test examples evaluated per run (0 = all)")
    p.add_argument("--notebooks-dir", default=str(NOTEBOOKS_DIR),
                   help="folder of the numbered notebooks (default: the ones installed with vaelib)")
    p.add_argument("--no-control", action="store_true",
                   help="skip the literal-paper-objective control run (z{smallest D}_paper)")
    p.add_argument("--force", action="store_true", help="rerun every step")
    p.add_argument("--sequential", action="store_true", help="run one step at a time")
    p.add_argument("--log-output", action="store_true", help="stream the notebooks' cell output while they run")
    a = p.parse_args(argv)

    if a.log_output:
        _configure_logging()
    out = Path(a.out or f"results/{a.preset}").resolve()
    if not sorted(Path(a.notebooks_dir).glob("[0-9][0-9]_*.ipynb")):
        p.error(f"no notebooks (NN_name.ipynb) in --notebooks-dir {a.notebooks_dir}; the installed package ships "
                f"them in {NOTEBOOKS_DIR}: reinstall vaelib or pass the folder of your own copies")
    try:
        preset_cfg = get_preset(a.preset)
    except KeyError as e:
        p.error(str(e))
    steps = plan(a.preset, a.latent_dims, a.seeds, a.data, out, n_examples=a.n_examples, epochs=a.epochs,
                 max_steps=a.max_steps, limit=a.limit, control=not a.no_control, cc=a.cc)
    control = next((s.parameters["preset"] for s in steps if s.name.endswith(f"_{CONTROL}")), None)
    resolved = get_preset(a.preset, epochs=a.epochs or None).to_dict()
    resolved["model"]["latent_dim"] = f"one run per size: {', '.join(map(str, a.latent_dims))}"
    resolved["data"]["n_examples"] = steps[0].parameters["n_examples"]
    config = dict(preset=a.preset, latent_dims=a.latent_dims, seeds=a.seeds,
                  data=a.data if a.data == "synthetic" else portable_path(a.data, out),
                  control=control, **({"cc": a.cc} if a.cc else {}),
                  control_epochs=control and get_preset(control, epochs=a.epochs or None).train.epochs,
                  n_examples=steps[0].parameters["n_examples"], epochs=resolved["train"]["epochs"],
                  max_steps=a.max_steps or "none", limit=a.limit or "the whole test split",
                  preset_config=resolved,
                  command=portable_command(sys.argv[1:] if argv is None else argv, out))
    devices = [] if a.sequential else parallel_slots(max(len(g) for g in groups(steps)))
    _log(f"{len(steps)} steps -> {out}" + (f", independent steps in parallel on {devices}" if devices else ""))
    summary = run_pipeline(steps, a.notebooks_dir, out, config=config, force=a.force,
                           salt=lambda nb: library_salt(a.preset, nb), devices=devices, log_output=a.log_output)
    bad = [s["name"] + ": " + s["status"] for s in summary["steps"] if s["status"] not in DONE]
    _log(f"index: {out / 'index.html'}" + (f"; NOT OK: {', '.join(bad)}" if bad else "; all steps ok"))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
