"""What the pipeline tells its user while it runs: log lines, and a heartbeat line with each running step's
progress and ETA (a training's from the files it writes as it goes)."""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from vaelib.pipeline.step import Step


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def _log(msg: str) -> None:
    print(f"[pipeline {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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
