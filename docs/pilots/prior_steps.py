"""The slot prior's fitting steps against its samples' groove, polyphony and duration overlap, scored as the
evaluation scores its "(learned prior)" rows (``prior_samples.prior_metrics``, 64 draws, seed 0).

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/prior_steps.py RUN_DIR DATA_DIR [--steps 1500 4000]

Prints one JSON line per step count (with the fit's wall time).
"""
import argparse
import json
import time

import torch

from vaelib.evaluation.prior_samples import prior_metrics
from vaelib.model.latent_prior import fit_slot_prior, model_slots

from run_prior import load_run_posteriors  # docs/pilots/run_prior.py, beside this script

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("data_dir")
ap.add_argument("--steps", type=int, nargs="+", default=[1500, 4000])
ap.add_argument("--n", type=int, default=64)
a = ap.parse_args()
torch.set_num_threads(1)
model, tk, test, train, (mu, logvar), val_mu = load_run_posteriors(a.run_dir, a.data_dir)
for steps in a.steps:
    t0 = time.time()
    prior = fit_slot_prior(mu, logvar, val_mu, n_slots=model_slots(model), steps=steps, seed=0)
    fit_sec = time.time() - t0
    p = prior_metrics(model, tk, a.n, test, train, 0, z=prior.sample(a.n, 0))
    print(json.dumps({"run": a.run_dir, "steps": steps, "fit_sec": round(fit_sec, 1),
                      "groove": round(p["muspy"]["groove_consistency"], 3),
                      "polyphony": round(p["muspy"]["polyphony"], 2),
                      "duration_overlap": round(p["overlapping_area"]["duration"], 3)}), flush=True)
