"""CC-ME of z's CC plan read directly, without the decoder: each lane's likeliest ("mode") or expected ("mean") value
at every grid step of ``model.cc_plan`` from mu(x), with the window's own notes, against the free-running decoder's
CC-ME in the run's ``eval.csv`` (the same test windows, as Table 1 scores them).

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/plan_cc_me.py RUN_DIR DATA_DIR

Prints one JSON line. Needs a run trained with ``ModelConfig.cc_plan``.
"""
import argparse
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from vaelib.data.dataset import load_split, load_tokenizer
from vaelib.evaluation import metrics as M
from vaelib.model.checkpoint import load_model
from vaelib.model.encoding import encode_split

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("data_dir")
a = ap.parse_args()
torch.set_num_threads(1)
model, _ = load_model(a.run_dir, device="cpu")
tk = load_tokenizer(a.data_dir)
seqs = [np.asarray(s, np.int64) for s in load_split(a.data_dir, "test")]
mu, _ = encode_split(model, seqs)
with torch.no_grad():
    lp = model.cc_plan(model.slots(torch.as_tensor(mu)))  # (B, n_steps, n_cc, 128) log-probabilities
rules = {"mode": lp.argmax(-1).numpy(),
         "mean": (lp.exp() * torch.arange(128.0)).sum(-1).round().clamp(0, 127).numpy()}
cc_me, depth = {r: [] for r in rules}, {r: [] for r in rules}
for i, s in enumerate(seqs):
    ref = tk.decode(s)
    for r, values in rules.items():
        est = replace(ref, cc=values[i].T[:, :ref.n_steps].astype(np.int16))
        cc_me[r].append(M.cc_me(ref, est))
        depth[r].append(M.cc_depth(est))
ev = pd.read_csv(f"{a.run_dir}/eval.csv")
out = {"run": a.run_dir, "n": len(seqs), "decoder_cc_me": round(float(ev["cc_me"].mean()), 4),
       "baseline_cc_me": round(float(ev["baseline_cc_me"].mean()), 4)}
for r in rules:
    out[f"plan_{r}_cc_me"] = round(float(np.mean(cc_me[r])), 4)
    out[f"plan_{r}_depth"] = round(float(np.mean(depth[r])), 3)
print(json.dumps(out))
