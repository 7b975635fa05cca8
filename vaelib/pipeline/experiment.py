"""The experiment's step graph: which notebooks ``make report`` runs, with which parameters, in which order.

Besides the main runs, one control (``02_train_z{D}_paper``, smallest D) trains the same architecture with the paper's
literal objective (the preset's ``-paper`` variant; ``small-paper`` trains half of ``small``'s epochs), so Table 1
shows the collapse next to the recommended objective (``control=False`` skips it).
"""
from __future__ import annotations

import os
from pathlib import Path

from vaelib.config import control_epochs, get_preset, literal_variant
from vaelib.pipeline.step import Step
from vaelib.runs import run_name


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
    ``OUT/z{D}_paper``, so 03 can show the collapse the defences prevent. It keeps the paper's beta_max, and an
    ``epochs`` override gives it the preset's share of that budget (``config.control_epochs``: half for ``small``).
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
                               epochs=control_epochs(preset, int(epochs)) if epochs else 0, beta_max=-1.0,
                               max_steps=int(max_steps), limit=int(limit)),
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
