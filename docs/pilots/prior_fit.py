"""Ways of fitting the slot prior, refitted to a trained run's posteriors and scored as the evaluation scores its
"(learned prior)" rows (``prior_samples.prior_metrics``, decoded at T = 1 with the grammar), over several seeds of
draws at each temperature:

- ``posterior``: what the evaluation fits (``fit_slot_prior``: each step draws z = mu + sigma * eps per window);
- ``means``: fitted to the training windows' posterior means only (sigma 0);
- ``half_sigma``: z = mu + sigma / 2 * eps;
- ``mix16``: the posterior draws with 16 mixture components instead of 8.

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/prior_fit.py RUN_DIR DATA_DIR \\
        [--variants posterior means] [--temperatures 1 0.8] [--seeds 0 1 2]

Prints one JSON line per variant and temperature: the mean over the seeds (64 draws each) and the spread.
"""
import argparse
import json
import time

import torch

from vaelib.model.latent_prior import fit_slot_prior, model_slots

from run_prior import load_run_posteriors, score_draws  # docs/pilots/run_prior.py, beside this script

VARIANTS = {"posterior": (1.0, 8), "means": (0.0, 8), "half_sigma": (0.5, 8), "mix16": (1.0, 16)}

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("data_dir")
ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.8])
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
ap.add_argument("--steps", type=int, default=1500)
ap.add_argument("--n", type=int, default=64)
a = ap.parse_args()
torch.set_num_threads(1)
model, tk, test, train, (mu, logvar), val_mu = load_run_posteriors(a.run_dir, a.data_dir)
for name in a.variants:
    sigma_scale, n_mix = VARIANTS[name]
    t0 = time.time()
    prior = fit_slot_prior(mu, logvar, val_mu, n_slots=model_slots(model), steps=a.steps, seed=0, n_mix=n_mix,
                           sigma_scale=sigma_scale)
    fit_sec = time.time() - t0
    with torch.no_grad():
        val_nll = float(prior.nll(torch.as_tensor(val_mu, dtype=torch.float32)))
    for t in a.temperatures:
        summary = score_draws(model, tk, prior, test, train, a.seeds, a.n, t)[0]
        out = {"run": a.run_dir, "variant": name, "temperature": t, "seeds": a.seeds, "n": a.n,
               "fit_sec": round(fit_sec, 1), "val_nll": round(val_nll, 3), **summary}
        print(json.dumps(out), flush=True)
