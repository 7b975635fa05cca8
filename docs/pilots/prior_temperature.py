"""Prior samples from the run's slot prior (``RUN/slot_prior.pt``) decoded at several token temperatures: how the
groove, polyphony, duration overlap, pitch entropy and novelty of the samples trade as the decoder samples less
widely. The evaluation's "(learned prior)" rows are the T = 1 column (64 draws, seed 0, grammar).

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/prior_temperature.py RUN_DIR DATA_DIR [--t 1.0 0.9 0.8]

Prints one JSON line per temperature.
"""
import argparse
import json

import numpy as np
import pandas as pd
import torch

from vaelib.data.dataset import load_performances
from vaelib.evaluation import metrics as M
from vaelib.model.generation import sample

from run_prior import load_run_prior  # docs/pilots/run_prior.py, beside this script

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("data_dir")
ap.add_argument("--t", type=float, nargs="+", default=[1.0, 0.9, 0.8])
ap.add_argument("--n", type=int, default=64)
a = ap.parse_args()
torch.set_num_threads(1)
model, tk, prior = load_run_prior(a.run_dir, a.data_dir)
test, train = load_performances(a.data_dir, "test"), load_performances(a.data_dir, "train")
z = prior.sample(a.n, 0)
for t in a.t:
    gen = [tk.decode(s) for s in sample(model, a.n, seed=0, z=z, tokenizer=tk, grammar=True, temperature=t)]
    mus = pd.DataFrame([M.muspy_metrics(p) for p in gen]).mean()
    print(json.dumps({"run": a.run_dir, "temperature": t, "n": a.n,
                      "groove": round(float(mus["groove_consistency"]), 3),
                      "polyphony": round(float(mus["polyphony"]), 3),
                      "pitch_entropy": round(float(mus["pitch_entropy"]), 2),
                      "dur_overlap": round(M.overlapping_area(gen, test)["duration"], 3),
                      "novelty": round(float(np.mean(M.novelty(gen, train))), 3)}), flush=True)
