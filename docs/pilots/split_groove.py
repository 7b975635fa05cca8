"""The data's own groove consistency, split by split, beside the spread of a 64-window draw and the 64 training windows
that ``posterior_groove.py`` decodes (the same pick): what a prior's samples can be held to.

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/split_groove.py DATA_DIR

Prints one JSON line: per split the number of windows, the mean groove (muspy's ``groove_consistency``), the standard
deviation of the mean of 64 windows drawn with replacement, and the groove of ``posterior_groove.py``'s 64 windows.
"""
import argparse
import json

import numpy as np

from vaelib.data.dataset import load_performances
from vaelib.evaluation import metrics as M

ap = argparse.ArgumentParser()
ap.add_argument("data_dir")
ap.add_argument("--n", type=int, default=64)
a = ap.parse_args()
out = {"data": a.data_dir}
for split in ("train", "val", "test"):
    g = np.array([M.muspy_metrics(p)["groove_consistency"] for p in load_performances(a.data_dir, split)])
    rng = np.random.default_rng(0)
    draws = [g[rng.choice(len(g), a.n)].mean() for _ in range(2000)]
    out[split] = {"n": len(g), "groove": round(float(g.mean()), 4), f"sd_of_{a.n}": round(float(np.std(draws)), 4)}
    if split == "train":  # posterior_groove.py's pick
        pick = np.random.default_rng(0).choice(len(g), a.n, replace=False)
        out[split]["posterior_groove_windows"] = round(float(g[pick].mean()), 4)
print(json.dumps(out))
