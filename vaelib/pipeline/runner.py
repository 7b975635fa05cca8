"""The papermill pipeline behind ``make report``: curate, train per latent size, evaluate, and render the reports.
The steps come from ``experiment.plan``; each runs one notebook (``notebook.execute``).

Each step executes one notebook with papermill into ``OUT/notebooks/<step>.ipynb`` and converts it to HTML beside it.
A step is skipped when its key (a hash of its parameters, its notebook, its upstream steps' keys and run ids, its input
files and the library source) matches the one stored in ``OUT/.pipeline_state.json`` and its outputs exist.
A failing notebook keeps its partial HTML (with the traceback), blocks only the steps that depend on it, and makes
the whole run exit non-zero. Independent steps (the trainings; later the latent-space, explorer and listening
notebooks) run side by side: one per GPU with several CUDA GPUs, else in CPU workers sharing the cores (``vaelib.slots``).

Besides the main runs, one control trains the paper's literal objective (``experiment.plan``; ``--no-control`` skips
it).

CLI: ``python -m vaelib.pipeline --preset small --latent-dims 128 256 384 512 --seeds 0 --data synthetic --out results/small``
"""
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Callable

from vaelib.config import control_epochs, get_preset
from vaelib.pipeline import report_index
from vaelib.pipeline.experiment import plan
from vaelib.pipeline.notebook import NOTEBOOKS_DIR, execute, find_notebook
from vaelib.pipeline.progress import Heartbeat, _clock, _configure_logging, _log
from vaelib.pipeline.step import BLOCKED, DONE, FAILED, MISSING, OK, SKIPPED, Step, StepResult
from vaelib.pipeline.keys import (STATE_FILE, fingerprint, key_parts, library_salt, library_sources,  # noqa: F401
                                  load_state, save_state, step_key)
from vaelib.runs import CONTROL
from vaelib.slots import (CPU_SLOT, apply_slot, cpu_threads_per_step, current_slot, groups,  # noqa: F401
                          parallel_slots, workers_stop_with_us)


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
                  control_epochs=control and control_epochs(a.preset, a.epochs),
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
