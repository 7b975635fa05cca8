"""Run folders of a results directory: their names (``z{D}``, ``z{D}_s{seed}``, ``z{D}_paper``), discovery, and
the training objective each was trained with, read from its ``config.json``."""
from __future__ import annotations

import json
import re
from pathlib import Path

# z{D}, z{D}_s{seed}; a trailing _paper marks the control trained with the paper's literal objective
RUN_NAME = re.compile(r"^z(\d+)(?:_s(\d+))?(?:_(paper))?$")
CONTROL = "paper"  # run-name suffix of the literal-objective control (``z{D}_paper``)


def run_name(latent_dim: int, seed: int | None = None, control: bool = False) -> str:
    """The run folder's name: ``z{D}``, ``z{D}_s{seed}`` (when an experiment has several seeds), ``_paper`` for
    the literal-objective control. ``parse_run_name`` reads it back."""
    return f"z{int(latent_dim)}" + ("" if seed is None else f"_s{int(seed)}") + (f"_{CONTROL}" if control else "")


def parse_run_name(name: str) -> tuple[int, int | None, str] | None:
    """``"z128_s1"`` -> (128, 1, ""), ``"z128_paper"`` -> (128, None, "paper"); None for any other folder name."""
    m = RUN_NAME.match(name)
    return None if m is None else (int(m.group(1)), None if m.group(2) is None else int(m.group(2)), m.group(3) or "")


def find_runs(results_dir, latent_dims=None, variant: str | None = "") -> dict[int, list[tuple[int | None, Path]]]:
    """Run folders under ``results_dir`` -> {D: [(seed or None, path)]}.

    ``variant`` "" takes the main runs ``z{D}`` / ``z{D}_s{seed}``, ``"paper"`` the literal-objective controls
    ``z{D}[_s{seed}]_paper``, None both (a control is never one of the main runs' seeds)."""
    if isinstance(latent_dims, str):  # `papermill -p latent_dims "[128, 256]"` passes the list as text
        latent_dims = json.loads(latent_dims)
    runs: dict[int, list] = {}
    for p in sorted(Path(results_dir).iterdir()) if Path(results_dir).is_dir() else []:
        parsed = parse_run_name(p.name)
        if not (p.is_dir() and parsed):
            continue
        dim, seed, kind = parsed
        if (variant is None or kind == variant) and (latent_dims is None or dim in [int(d) for d in latent_dims]):
            runs.setdefault(dim, []).append((seed, p))
    return runs


def objective_label(train: dict) -> str:
    """The training objective of a run in words, from its config's ``train`` section (``config.json``)."""
    beta = f"β_max={train.get('beta_max', float('nan')):g}"
    fb, bz, wd = (float(train.get(k, 0.0)) for k in ("free_bits", "beta_zero_frac", "word_dropout"))
    budget = f"; {train['epochs']} epochs" if "epochs" in train else ""
    if fb == bz == wd == 0:
        return f"paper ({beta}, no defences{budget})"
    return f"recommended ({beta}; free bits {fb:g}, β=0 for {bz:.0%} of a cycle, word dropout {wd:g}{budget})"


def run_objective(run_dir) -> str:
    """``objective_label`` of ``run_dir/config.json``; "" when the run has no config."""
    try:
        return objective_label(json.loads((Path(run_dir) / "config.json").read_text())["train"])
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return ""

