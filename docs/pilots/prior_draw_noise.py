"""How much the prior-sample figures of one run move between draws: the run's slot prior (``RUN/slot_prior.pt``)
sampled and decoded as the evaluation's "(learned prior)" rows are (64 draws, T = 1, grammar), under several seeds.
Seed 0 is the evaluation's own draw; the spread over seeds is the noise behind goal 4's thresholds.

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/prior_draw_noise.py RUN_DIR DATA_DIR [--seeds 0 1 2 3 4]

Prints one JSON line per seed and one with the mean and standard deviation over the seeds.
"""
import argparse
import json

import pandas as pd
import torch

from vaelib.data.dataset import load_performances
from vaelib.evaluation import metrics as M
from vaelib.model.generation import sample

from run_prior import load_run_prior  # docs/pilots/run_prior.py, beside this script

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("data_dir")
ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
ap.add_argument("--n", type=int, default=64)
a = ap.parse_args()
torch.set_num_threads(1)
model, tk, prior = load_run_prior(a.run_dir, a.data_dir)
test = load_performances(a.data_dir, "test")
rows = []
for seed in a.seeds:
    gen = [tk.decode(s) for s in sample(model, a.n, seed=seed, z=prior.sample(a.n, seed), tokenizer=tk, grammar=True)]
    mus = pd.DataFrame([M.muspy_metrics(p) for p in gen]).mean()
    rows.append({"groove": float(mus["groove_consistency"]), "polyphony": float(mus["polyphony"]),
                 "dur_overlap": M.overlapping_area(gen, test)["duration"]})
    print(json.dumps({"run": a.run_dir, "seed": seed, "n": a.n, **{k: round(v, 3) for k, v in rows[-1].items()}}),
          flush=True)
df = pd.DataFrame(rows)
print(json.dumps({"run": a.run_dir, "seeds": a.seeds, "n": a.n,
                  **{f"{k}_mean": round(float(df[k].mean()), 3) for k in df},
                  **{f"{k}_sd": round(float(df[k].std(ddof=1)), 3) for k in df}}), flush=True)
