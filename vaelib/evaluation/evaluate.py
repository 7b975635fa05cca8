"""Evaluate one trained run on a curated split: ``RUN/metrics.json`` (cells with 95 % CIs) and ``RUN/eval.csv``.

    python -m vaelib.evaluation.evaluate --run-dir RUN --data DIR [--limit 16] [--split test] [--seed 0]

What is measured (definitions of the per-pair metrics in ``vaelib.evaluation.metrics``):

* **Teacher-forced**, z = μ(x): ``recon_ce`` nats per target token (overall; ``ce_by_type`` per token type),
  ``token_accuracy``; ``ce_sampled`` with one posterior sample (the ELBO's term) as an extra.
* **Latent**: ``kl`` nats per sequence (``kl_bits`` too) and ``kl_per_dim``; ``active_units`` (Burda:
  Var_x μ_j > 0.01; CI = bootstrap over examples); ``usage_gap`` = NLL(x | z = μ(partner)) − NLL(x | μ(x)) in nats
  per token, partner = a seeded random other example (another source where possible). A run whose gap is below
  ``COLLAPSE_GAP`` nats/token (its 95 % CI reaches below it), or with no active unit, is flagged ``collapsed``.
* **Free-running reconstructions**: greedy (event-level argmax, ``generation.argmax_by_event``; each CC at the
  centre of the likeliest run of 5 neighbouring values in its lane, ``RECON_CC_VALUE``), grammar-masked decodes of
  μ(x) scored against the tokenized reference with ``cc_me``, ``mr_stft`` (default VA synth, 22.05 kHz, per pair;
  ``mr_stft_noise_floor`` renders one reference twice and must be 0), ``note_accuracy`` (onset F1) and ``frame_accuracy``; ``cc_length_mismatch`` compares where
  the two token streams end (steps).
* **Unconditional baseline**: the same decoder from the partner's μ, scored the same way (``baseline_*``); a model
  is only better than unconditional where its cell beats the baseline's. ``by_cc_value`` has CC-ME, onset F1 and
  the modulation depth (``metrics.cc_depth``) and motion (``metrics.cc_motion``) of both, and their paired CC-ME
  test, for each way of choosing a CC's value in ``SCORED_CC_VALUES``: ``window``, the centre of the likeliest run
  of 5 neighbouring values in the lane (the headline), and ``mode``, the lane's likeliest single value (no MR-STFT
  there).
* **Prior samples** (z ~ N(0, I), temperature 1, grammar; ``N_PRIOR`` by default): validity rate, muspy
  metrics, CC activity, overlapping areas against the split, novelty against the training split (with the split's
  own values as reference). ``prior_fitted``: the same for as many z from the Gaussian fitted to the training
  split's posteriors (``encoding.fitted_prior``), which keeps the correlations between z's dimensions.
  ``prior_learned``: the same for z from the slot prior fitted to the training posteriors
  (``latent_prior.fit_slot_prior``, their spread scaled by ``TrainConfig.prior_sigma_scale``, early-stopped on the
  validation split; the kind of prior that ``vaelib-generate --learned-prior`` fits), which keeps the bars' shared
  groove, sampled at the run's ``TrainConfig.prior_temperature`` (``SlotPrior.sample``); it is kept, with that
  temperature, as ``RUN/slot_prior.pt``.

Ratios of sums (CE, usage gap: nats over tokens) get CIs by resampling examples; means get percentile bootstrap CIs.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vaelib.evaluation import metrics as M
from vaelib.atomic import atomic_write_text
from vaelib.data.dataset import load_meta, load_split, load_tokenizer
from vaelib.data.tokenizer import TYPE_NAMES
from vaelib.evaluation.mrstft import mr_stft_performances
from vaelib.model.checkpoint import list_checkpoints, load_model
from vaelib.evaluation.prior_samples import score_priors
from vaelib.evaluation.reconstruction import SAMPLE_RATE, score_reconstructions
from vaelib.evaluation.teacher_forced import teacher_forced
from vaelib.model.generation import CC_VALUES
from vaelib.model.objective import kl_per_dim
from vaelib.runs import find_runs, objective_label
from vaelib.slots import threads_per_step
from vaelib.training.diagnostics import ACTIVE_THRESHOLD, aggregate_mi

COLLAPSE_GAP = 0.01  # nats/token: below this the right z helps the decoder by < 1 % of a nat per token
# prior samples per run by default: sampling is a large share of a run's scoring (free-running decodes of ~500
# tokens). 64 still give validity, muspy means, overlap and novelty; the real-data reference is drawn at the same size.
N_PRIOR = 64
# How a reconstruction picks a CC's value within its chosen lane: the centre of the likeliest run of 5 neighbouring
# values ("window"). The likeliest single value ("mode") is scored beside it in ``by_cc_value``: it hops between
# neighbouring peaks of a lane's distribution, so its curves move up to 1.6x as much as the data's from step to step,
# with a higher CC-ME and MR-STFT. "mean" (the value nearest the lane's expected value, ``decode(cc_value="mean")``) has
# the least expected squared error but about half the data's modulation depth (docs/experiments.md, 2026-12-04).
RECON_CC_VALUE = "window"
SCORED_CC_VALUES = ("window", "mode")


def is_collapsed(usage_gap: dict, active_units: dict) -> bool:
    """Collapsed unless the usage gap's 95 % CI lies wholly above ``COLLAPSE_GAP`` and some unit is active.

    The CI, not the point estimate: a literal-paper run measured a gap of 0.024 [-0.009, 0.055] nats/token with
    KL 0.05 nats and no active unit, which a point-estimate rule called "uses z"."""
    lo = usage_gap.get("ci95", [usage_gap["value"]])[0]
    return bool(not (lo >= COLLAPSE_GAP) or active_units["value"] <= 0)


# ---------------------------------------------------------------------------- helpers
def partners(sources: list[str], seed: int = 0) -> np.ndarray:
    """(N,) index of a seeded random *other* example for each one, from another source where one exists
    (windows of one source file look alike, which would flatter the baseline)."""
    rng = np.random.default_rng(seed)
    src = np.asarray(sources, dtype=object)
    n = len(src)
    out = np.zeros(n, np.int64)
    for i in range(n):
        pool = np.nonzero(src != src[i])[0]
        if len(pool) == 0:
            pool = np.setdiff1d(np.arange(n), [i])
        out[i] = rng.choice(pool) if len(pool) else i
    return out


def active_units_summary(mu: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Burda active units (Var_x μ_j > 0.01) with a bootstrap CI over examples."""
    count = lambda m: int((m.var(0) > ACTIVE_THRESHOLD).sum())  # noqa: E731
    value = count(mu)
    if len(mu) < 2:
        return {"value": value, "ci95": [value, value], "n": int(len(mu))}
    idx = np.random.default_rng(seed).integers(0, len(mu), size=(n_boot, len(mu)))
    boots = np.array([count(mu[i]) for i in idx])
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"value": value, "ci95": [float(lo), float(hi)], "n": int(len(mu))}


# ---------------------------------------------------------------------------- the run
def evaluate_run(run_dir, data_dir, limit: int | None = None, split: str = "test", seed: int = 0,
                 n_prior: int | None = None, render: bool = True, n_workers: int = 1,
                 device: str | None = None, cc_value: str = RECON_CC_VALUE, prior_steps: int | None = None) -> dict:
    """Evaluate the newest checkpoint of ``run_dir`` on ``split`` of ``data_dir`` (first ``limit`` examples).

    Writes ``run_dir/metrics.json`` (each headline key ``{"value", "ci95": [lo, hi], "n"}``, plus extras) and
    ``run_dir/eval.csv`` (one row per example), both atomically, and returns the metrics dict. ``n_prior`` prior
    samples (default: as many as examples, at most ``N_PRIOR``); ``render=False`` skips MR-STFT; ``n_workers``
    render processes; ``device`` for the model (default: CUDA when available, else CPU); ``cc_value`` the headline
    reconstructions' CC value rule; ``prior_steps`` the slot prior's fitting steps (default: the run's
    ``TrainConfig.prior_steps``; 0: no ``prior_learned``)."""

    if cc_value not in CC_VALUES:
        raise ValueError(f"cc_value must be one of {CC_VALUES}, got {cc_value!r}")
    rules = (cc_value, *(r for r in SCORED_CC_VALUES if r != cc_value))
    t0 = time.time()
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    model, config = load_model(run_dir, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tk = load_tokenizer(data_dir)
    seqs = [np.asarray(s, np.int64) for s in load_split(data_dir, split)]
    meta = load_meta(data_dir, split)
    if limit:
        seqs, meta = seqs[:limit], meta[:limit]
    if len(seqs) < 2:
        raise ValueError(f"need >= 2 {split} examples in {data_dir}, got {len(seqs)}")
    refs = [tk.decode(s, tempo_bpm=float(m.get("tempo_bpm", 140.0))) for s, m in zip(seqs, meta)]
    sources = [str(m.get("source", i)) for i, m in enumerate(meta)]
    partner = partners(sources, seed)
    torch.manual_seed(seed)

    say = lambda what: print(f"[evaluate {Path(run_dir).resolve().name} {time.time() - t0:5.1f} s] {what}",  # noqa: E731
                             file=sys.stderr, flush=True)
    say(f"teacher-forced pass over {len(seqs)} {split} pieces (1/3)")
    tf = teacher_forced(model, seqs, tk, partner, seed=seed)
    kl_bd = kl_per_dim(tf["mu"], tf["logvar"])  # (N, D) nats
    kl_seq = kl_bd.sum(1)

    say(f"greedy decodes of {2 * len(seqs)} latents: reconstructions and the unconditional baseline, CC values at "
        f"by {' and by '.join(rules)}, and scoring the pairs"
        + (" (rendering audio for MR-STFT)" if render else "") + " (2/3)")
    rec, base, recon_ids, by_rule = score_reconstructions(model, tk, tf["mu"], partner, refs, seqs, rules,
                                                          render, n_workers, seed)
    floor = math.nan
    if render:

        floor = float(mr_stft_performances([refs[0]], [refs[0]], sample_rate=SAMPLE_RATE, n_workers=1)[0])

    try:
        train_seqs = load_split(data_dir, "train")
        train_perfs = [tk.decode(np.asarray(s, np.int64)) for s in train_seqs]
    except (FileNotFoundError, OSError):
        train_seqs, train_perfs = [], []
    say(f"{n_prior or min(len(seqs), N_PRIOR)} prior samples each from N(0, I), the Gaussian fitted to the training "
        "posteriors and the slot prior fitted to them (3/3)")
    n_prior = n_prior or min(len(seqs), N_PRIOR)
    prior, prior_fitted, prior_learned = score_priors(
        model, tk, n_prior, refs, train_seqs, train_perfs, data_dir, run_dir, seed,
        config.train.prior_steps if prior_steps is None else prior_steps, config.train.prior_temperature,
        config.train.prior_sigma_scale)

    S = lambda x: M.summarize(x, seed)  # noqa: E731
    gap = M.ratio_summary(tf["ce_partner"] - tf["ce_mu"], tf["n_tokens"], seed=seed)
    ce_type_tot, n_type_tot = tf["ce_type"].sum(0), tf["n_type"].sum(0)
    by_type = lambda tot: {TYPE_NAMES[t]: float(tot[t] / n_type_tot[t]) for t in range(len(TYPE_NAMES))  # noqa: E731
                           if n_type_tot[t] > 0}

    def carries(who: str) -> dict:
        ce, ev = tf["ce_type" if who == "mu" else "ce_type_partner"].sum(0), tf[f"ce_event_{who}"].sum(0)
        return {"ce": float(tf[f"ce_{who}"].sum() / tf["n_tokens"].sum()), "ce_by_type": by_type(ce),
                "ce_event_by_type": by_type(ev), "ce_value_by_type": by_type(ce - ev),
                "note_start_accuracy": float(tf[f"start_hit_{who}"].sum() / max(tf[f"start_n_{who}"].sum(), 1)),
                "pitch_accuracy": float(tf[f"pitch_hit_{who}"].sum() / max(tf[f"pitch_n_{who}"].sum(), 1))}
    ckpts = list_checkpoints(run_dir)
    out = {
        "recon_ce": M.ratio_summary(tf["ce_mu"], tf["n_tokens"], seed=seed),
        "kl": S(kl_seq),
        "cc_me": S(rec["cc_me"]),
        "mr_stft": S(rec["mr_stft"]),
        "note_accuracy": S(rec["note_f1"]),
        "active_units": active_units_summary(tf["mu"], seed=seed),
        "usage_gap": gap,
        # extras
        "collapsed": None,  # set below from the usage gap's CI and the active units
        "collapse_threshold_nats_per_token": COLLAPSE_GAP,
        "kl_bits": S(kl_seq / math.log(2)),
        "kl_per_dim": kl_bd.mean(0).tolist(),
        "ce_sampled": M.ratio_summary(tf["ce_sampled"], tf["n_tokens"], seed=seed),
        "ce_by_type": by_type(ce_type_tot),
        # teacher forced with the window's own z and with the partner's: what z carries beyond the prefix
        "what_z_carries": {"own_z": carries("mu"), "other_z": carries("partner")},
        "pitch_accuracy_gain": M.ratio_summary(tf["pitch_hit_mu"] - tf["pitch_hit_partner"], tf["pitch_n_mu"],
                                               seed=seed),
        "token_accuracy": M.ratio_summary(tf["correct"], tf["n_tokens"], seed=seed),
        "usage_gap_seq": S((tf["ce_partner"] - tf["ce_mu"])),
        "frame_accuracy": S(rec["frame_accuracy"]),
        "cc_length_mismatch": S(rec["cc_length_mismatch"]),
        "mr_stft_nan": int(np.isnan(rec["mr_stft"]).sum()),
        "mr_stft_noise_floor": floor,
        "baseline_cc_me": S(base["cc_me"]),
        "baseline_mr_stft": S(base["mr_stft"]),
        "baseline_note_accuracy": S(base["note_f1"]),
        "baseline_frame_accuracy": S(base["frame_accuracy"]),
        "decoding": {"rule": "greedy", "cc_value": cc_value},
        "by_cc_value": by_rule,
        "vs_baseline": {"cc_me": M.paired_test(rec["cc_me"], base["cc_me"], seed=seed),
                        "note_accuracy": M.paired_test(rec["note_f1"], base["note_f1"], seed=seed),
                        "mr_stft": M.paired_test(rec["mr_stft"], base["mr_stft"], seed=seed)},
        "recon_validity_rate": float(np.mean([M.is_valid(s, tk) for s in recon_ids])),
        "prior": prior,
        **({"prior_fitted": prior_fitted} if prior_fitted else {}),
        **({"prior_learned": prior_learned} if prior_learned else {}),
        # paths relative to the run folder, so the record stays valid when the results folder is moved
        "run": {"run_dir": run_dir.resolve().name, "data_dir": Path(os.path.relpath(data_dir.resolve(),
                                                                                   run_dir.resolve())).as_posix(),
                "split": split, "limit": limit, "seed": seed,
                "n_examples": len(seqs), "checkpoint": ckpts[-1].name if ckpts else None,
                "latent_dim": config.model.latent_dim, "preset": config.name, "sample_rate": SAMPLE_RATE,
                "objective": objective_label(config.to_dict()["train"]),
                "wall_sec": None},
    }
    out["collapsed"] = is_collapsed(out["usage_gap"], out["active_units"])
    # two numbers training's validation rows log too, from teacher_forced's passes: the aggregate-posterior MI,
    # and the usage gap against a prior sample instead of a partner's code
    out["diagnostics"] = {
        "mi": aggregate_mi(torch.as_tensor(tf["mu"]), torch.as_tensor(tf["logvar"]),
                           torch.Generator().manual_seed(seed)),
        "usage_gap_prior_tok": float((tf["ce_prior"] - tf["ce_mu"]).sum() / tf["n_tokens"].sum())}
    out["run"]["wall_sec"] = round(time.time() - t0, 2)

    rows = pd.DataFrame({
        "example": np.arange(len(seqs)), "source": sources, "style": [m.get("style", "") for m in meta],
        "n_tokens": tf["n_tokens"].astype(int), "ce_nats_per_token": tf["ce_mu"] / tf["n_tokens"],
        "token_accuracy": tf["correct"] / tf["n_tokens"], "kl_nats": kl_seq,
        "usage_gap_nats_per_token": (tf["ce_partner"] - tf["ce_mu"]) / tf["n_tokens"], "partner": partner,
        **{k: rec[k] for k in ("cc_me", "cc_length_mismatch", "note_f1", "frame_accuracy", "mr_stft")},
        **{f"baseline_{k}": base[k] for k in ("cc_me", "note_f1", "frame_accuracy", "mr_stft")},
    })
    atomic_write_text(run_dir / "eval.csv", rows.to_csv(index=False))
    atomic_write_text(run_dir / "metrics.json", json.dumps(out, indent=2, default=float))
    return out


def is_fresh(run_dir, limit: int | None = None, split: str = "test", seed: int = 0) -> bool:
    """True when ``run_dir/metrics.json`` is newer than the run's newest checkpoint, was made with the same limit,
    split and seed, and has every section this version writes (``by_cc_value`` with the headline CC value rule, the
    prior samples' CIs)."""

    m, ck = Path(run_dir) / "metrics.json", list_checkpoints(run_dir)
    if not (m.exists() and (Path(run_dir) / "eval.csv").exists() and ck and m.stat().st_mtime > ck[-1].stat().st_mtime):
        return False
    metrics = json.loads(m.read_text())
    run = metrics.get("run", {})
    return ((run.get("limit"), run.get("split"), run.get("seed")) == (limit, split, seed)
            and RECON_CC_VALUE in metrics.get("by_cc_value", {}) and "muspy_ci95" in metrics.get("prior", {}))


def _evaluate_in_worker(threads: int, run, data_dir, kw: dict) -> dict:
    """``evaluate_run`` in a pool process limited to ``threads`` torch threads."""
    torch.set_num_threads(threads)
    return evaluate_run(run, data_dir, **kw)


def evaluate_results(results_dir, latent_dims, data_dir, limit: int | None = None, split: str = "test",
                     force: bool = False, n_jobs: int = 1, **kw) -> dict[str, dict]:
    """``evaluate_run`` every run folder of ``latent_dims`` under ``results_dir`` (main runs and ``_paper``
    controls) whose metrics are stale (all of them with ``force``); returns {run name: metrics}.

    ``n_jobs`` > 1 evaluates that many runs at once in spawned processes that share this process's torch threads
    (decoding, rendering and the metrics are largely single-threaded Python); 0 = one per thread. A run's result
    does not depend on ``n_jobs``."""
    runs = [run for _, rs in sorted(find_runs(results_dir, latent_dims, variant=None).items()) for _, run in rs]
    stale = [r for r in runs if force or not is_fresh(r, limit, split, kw.get("seed", 0))]
    kw = dict(kw, limit=limit, split=split)
    n_jobs = n_jobs or torch.get_num_threads()
    if n_jobs > 1 and len(stale) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        workers = min(n_jobs, len(stale))
        # each worker's share of this process's threads; a short last round gets the idle workers' threads
        threads = threads_per_step(len(stale), workers * max(1, torch.get_num_threads() // workers), workers)
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {r: pool.submit(_evaluate_in_worker, n, r, data_dir, kw) for r, n in zip(stale, threads)}
            done = {r: f.result() for r, f in futures.items()}
    else:
        done = {r: evaluate_run(r, data_dir, **kw) for r in stale}
    return {r.name: done[r] if r in done else json.loads((r / "metrics.json").read_text()) for r in runs}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--data", required=True, help="curated dataset folder")
    ap.add_argument("--limit", type=int, default=None, help="evaluate the first N examples of the split")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-prior", type=int, default=None,
                    help=f"prior samples (default: as many as examples, at most {N_PRIOR})")
    ap.add_argument("--no-render", action="store_true", help="skip MR-STFT (no audio rendering)")
    ap.add_argument("--workers", type=int, default=1, help="processes for rendering")
    ap.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    a = ap.parse_args(argv)
    out = evaluate_run(a.run_dir, a.data, limit=a.limit, split=a.split, seed=a.seed, n_prior=a.n_prior,
                       render=not a.no_render, n_workers=a.workers, device=a.device)
    for k in ("recon_ce", "kl", "cc_me", "mr_stft", "note_accuracy", "active_units", "usage_gap",
              "baseline_cc_me", "baseline_note_accuracy"):
        v = out[k]
        print(f"{k:24s} {v['value']:.4f}  [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]")
    print(f"{'collapsed':24s} {out['collapsed']}")
    print(f"wrote {Path(a.run_dir) / 'metrics.json'} and eval.csv")


if __name__ == "__main__":
    main()
