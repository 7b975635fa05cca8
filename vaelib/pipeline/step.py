"""A pipeline step (one papermill execution) and its result; the statuses a step ends in."""
from __future__ import annotations

from dataclasses import dataclass, field

OK, SKIPPED, FAILED, BLOCKED, MISSING = "ok", "skipped-unchanged", "FAILED", "blocked", "missing"
DONE = (OK, SKIPPED)  # statuses that let dependent steps run


@dataclass(frozen=True)
class Step:
    """One papermill execution. Paths in ``parameters`` are relative to the output folder (the notebooks run with it
    as their working directory, so no executed notebook records a machine path); ``inputs`` and ``outputs`` are
    absolute."""

    name: str  # unique; the executed notebook is OUT/notebooks/<name>.ipynb
    notebook: str  # notebook stem in the notebooks folder, e.g. "02_train"
    parameters: dict = field(default_factory=dict)  # injected by papermill into the `parameters` cell
    depends: tuple[str, ...] = ()  # steps that must succeed first
    inputs: tuple[str, ...] = ()  # files or folders whose content enters the key
    outputs: tuple[str, ...] = ()  # files that must exist (besides the notebook and HTML) for a skip
    parallel: bool = False  # may run concurrently with its neighbours, one per GPU or CPU slot


@dataclass
class StepResult:
    name: str
    notebook: str
    status: str  # OK, SKIPPED, FAILED, BLOCKED or MISSING
    parameters: dict
    key: str = ""
    run_id: str = ""  # changes each time the step really executes, so dependants rerun
    wall_sec: float = 0.0
    ipynb: str = ""  # relative to OUT
    html: str = ""  # relative to OUT
    error: str = ""
    device: str = ""  # the worker's slot: a CUDA_VISIBLE_DEVICES id or "cpu:<threads>", "" when inherited
