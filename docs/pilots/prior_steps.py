"""The slot prior's fitting steps against its samples' groove, polyphony and duration overlap, scored as the
evaluation scores its "(learned prior)" rows (``prior_samples.prior_metrics``, 64 draws, seed 0).

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/prior_steps.py RUN_DIR DATA_DIR [--steps 1500 4000]

Prints one JSON line per step count (with the fit's wall time).
"""
import argparse
import json
import time

import numpy as np
import torch

from vaelib.data.dataset import load_meta, load_split, load_tokenizer
from vaelib.evaluation.prior_samples import prior_metrics
from vaelib.model.checkpoint import load_model
from vaelib.model.encoding import encode_split
from vaelib.model.latent_prior import fit_slot_prior, model_slots

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("data_dir")
ap.add_argument("--steps", type=int, nargs="+", default=[1500, 4000])
ap.add_argument("--n", type=int, default=64)
a = ap.parse_args()
torch.set_num_threads(1)
model, _ = load_model(a.run_dir, device="cpu")
tk = load_tokenizer(a.data_dir)
test = [tk.decode(np.asarray(s, np.int64), tempo_bpm=float(m.get("tempo_bpm", 140.0)))
        for s, m in zip(load_split(a.data_dir, "test"), load_meta(a.data_dir, "test"))]
train_seqs = load_split(a.data_dir, "train")
train = [tk.decode(np.asarray(s, np.int64)) for s in train_seqs]
mu, logvar = encode_split(model, train_seqs)
val_mu = encode_split(model, load_split(a.data_dir, "val"))[0]
for steps in a.steps:
    t0 = time.time()
    prior = fit_slot_prior(mu, logvar, val_mu, n_slots=model_slots(model), steps=steps, seed=0)
    fit_sec = time.time() - t0
    p = prior_metrics(model, tk, a.n, test, train, 0, z=prior.sample(a.n, 0))
    print(json.dumps({"run": a.run_dir, "steps": steps, "fit_sec": round(fit_sec, 1),
                      "groove": round(p["muspy"]["groove_consistency"], 3),
                      "polyphony": round(p["muspy"]["polyphony"], 2),
                      "duration_overlap": round(p["overlapping_area"]["duration"], 3)}), flush=True)
