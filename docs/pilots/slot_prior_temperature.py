"""The slot prior sampled at lower temperatures (``SlotPrior.sample(temperature=...)``: sharper mixture weights,
narrower components), decoded as the evaluation decodes its "(learned prior)" rows (T = 1, grammar), and scored with
the evaluation's ``prior_metrics``: the groove and polyphony it may gain, and what it costs in diversity (the overlap
areas against the test split, pitch entropy, novelty against the training split and the exact-copy rate).

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/slot_prior_temperature.py RUN_DIR DATA_DIR \\
        [--temperatures 1 0.8 0.6] [--seeds 0 1 2]

Prints one JSON line per temperature: the mean over the seeds (64 draws each) of each figure, and its spread.
"""
import argparse
import json

import torch

from vaelib.data.dataset import load_performances

from run_prior import load_run_prior, score_draws  # docs/pilots/run_prior.py, beside this script

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("data_dir")
ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.8, 0.6])
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
ap.add_argument("--n", type=int, default=64)
a = ap.parse_args()
torch.set_num_threads(1)
model, tk, prior = load_run_prior(a.run_dir, a.data_dir)
test, train = load_performances(a.data_dir, "test"), load_performances(a.data_dir, "train")
for t in a.temperatures:
    summary, m = score_draws(model, tk, prior, test, train, a.seeds, a.n, t)
    out = {"run": a.run_dir, "temperature": t, "seeds": a.seeds, "n": a.n, **summary,
           "reference": {"groove": round(m["reference_muspy"]["groove_consistency"], 3),
                         "polyphony": round(m["reference_muspy"]["polyphony"], 3),
                         "pitch_entropy": round(m["reference_muspy"]["pitch_entropy"], 3),
                         "novelty": round(m["reference_novelty"]["value"], 3)}}
    print(json.dumps(out), flush=True)
