"""Prior samples, scored: what a run's samples look like next to real data, for z from N(0, I) and from the priors
fitted to its training posteriors (the Gaussian of ``encoding.fitted_prior`` and the slot prior of
``latent_prior``). ``evaluate.evaluate_run`` calls ``score_priors``; definitions are in ``evaluate``'s docstring.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vaelib.data.dataset import load_split
from vaelib.data.tokenizer import EOS
from vaelib.evaluation import metrics as M
from vaelib.model.encoding import encode_split, fitted_prior
from vaelib.model.generation import sample
from vaelib.model.latent_prior import PRIOR_FILE, checkpoint_label, fit_to_model, save_slot_prior


def prior_metrics(model, tokenizer, n: int, test_perfs, train_perfs, seed: int = 0,
                  z: torch.Tensor | None = None) -> dict:
    """Validity, muspy metrics, CC activity, overlapping areas vs the split and novelty vs train for n prior samples
    (z ~ N(0, I), or the given ``z``), each next to the same statistic of the real split (``reference_*``)."""

    seqs = sample(model, n, seed=seed, z=z, tokenizer=tokenizer, grammar=True)
    gen = [tokenizer.decode(s) for s in seqs]
    per = lambda perfs, f: pd.DataFrame([f(p) for p in perfs]).mean().to_dict()  # noqa: E731
    mus = pd.DataFrame([M.muspy_metrics(p) for p in gen])
    out = {"n_samples": n, "validity_rate": float(np.mean([M.is_valid(s, tokenizer) for s in seqs])),
           "eos_rate": float(np.mean([s[-1] == EOS for s in seqs])),
           "mean_tokens": float(np.mean([len(s) for s in seqs])),
           "muspy": mus.mean().to_dict(), "reference_muspy": per(test_perfs, M.muspy_metrics),
           "cc_activity": per(gen, M.cc_activity), "reference_cc_activity": per(test_perfs, M.cc_activity),
           "overlapping_area": M.overlapping_area(gen, test_perfs),
           # how much each per-piece mean moves with the draw: bootstrap over the n samples. Not for the overlaps:
           # a resample repeats pieces, which thins their pooled histograms and biases the overlap down
           "muspy_ci95": {k: list(M.bootstrap_ci(mus[k].to_numpy(), seed=seed)) for k in mus}}
    if train_perfs:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(train_perfs), size=min(n, len(train_perfs)), replace=False)
        # what real data of the same size scores: the ceiling for overlap, the floor-to-beat for copying
        out["reference_overlapping_area"] = M.overlapping_area([train_perfs[i] for i in pick], test_perfs)
        nov = M.novelty(gen, train_perfs)
        out["novelty"] = M.summarize(nov, seed)
        out["exact_copy_rate"] = float(np.mean(nov == 0))
        out["reference_novelty"] = M.summarize(M.novelty(test_perfs, train_perfs), seed)
    return out


def score_priors(model, tokenizer, n: int, test_perfs, train_seqs, train_perfs, data_dir, run_dir, seed: int = 0,
                 prior_steps: int = 0, prior_temperature: float = 1.0,
                 prior_sigma_scale: float = 1.0) -> tuple[dict, dict | None, dict | None]:
    """``prior_metrics`` for n samples with z from N(0, I), from the Gaussian fitted to the training posteriors, and
    from the slot prior fitted to them (their spread scaled by ``prior_sigma_scale``) for ``prior_steps``
    (early-stopped on ``data_dir``'s val split) and sampled at ``prior_temperature`` (kept, with its temperature, as
    ``run_dir/slot_prior.pt`` for the report's audio). The fitted priors are None with fewer than 2 training windows,
    the slot prior also with ``prior_steps`` 0 (and an earlier ``slot_prior.pt`` is then removed, so the report's
    audio never draws from a prior these metrics do not describe). ``model.checkpoint_path`` (set by ``load_model``)
    labels the saved prior."""
    label = checkpoint_label(model.checkpoint_path)
    prior = prior_metrics(model, tokenizer, n, test_perfs, train_perfs, seed)
    prior_fitted = prior_learned = None
    if len(train_perfs) >= 2:  # the same statistics for z from priors fitted to the training posteriors
        mu_train, logvar_train = encode_split(model, train_seqs)
        z_fit = fitted_prior(mu_train, logvar_train, n, seed)
        prior_fitted = prior_metrics(model, tokenizer, n, test_perfs, train_perfs, seed, z=z_fit)
        if prior_steps:
            try:
                val_seqs = load_split(data_dir, "val")
            except (FileNotFoundError, OSError):
                val_seqs = []
            slot_prior = fit_to_model(model, train_seqs, val_seqs, steps=prior_steps, seed=seed,
                                      temperature=prior_temperature, sigma_scale=prior_sigma_scale,
                                      posteriors=(mu_train, logvar_train))
            z_learned = slot_prior.sample(n, seed)
            prior_learned = prior_metrics(model, tokenizer, n, test_perfs, train_perfs, seed, z=z_learned)
            prior_learned["fit"] = {"steps": prior_steps, "n_mix": slot_prior.n_mix, "temperature": prior_temperature,
                                    "sigma_scale": prior_sigma_scale,
                                    "early_stopped_on": "val" if len(val_seqs) else None}
            # kept for the report's audio (``listening.export_run_audio``)
            save_slot_prior(slot_prior, run_dir, label, steps=prior_steps)
    if prior_learned is None:
        (Path(run_dir) / PRIOR_FILE).unlink(missing_ok=True)
    return prior, prior_fitted, prior_learned
