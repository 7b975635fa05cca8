"""Teacher-forced CE of each CC lane's tokens (z = μ, the true prefix), and how the CC plan's bias on the decoder's
CC logits (``ModelConfig.cc_copy``, ``CCPlan.gain``) bears on one lane: the same CE with that lane's gain set to 0.

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/cc_lane_ce.py DATA_DIR RUN_DIR [RUN_DIR ...] [--lane 5]

Prints one JSON line per run: each lane's mean CE (nats per CC token of that lane, full-vocabulary softmax) and the
greedy value's mean absolute error (the likeliest value among the lane's ids), as trained and with ``--lane``'s gain
at 0. The gain is a logit bias on the lane's ids only, so setting it to 0 also moves the other lanes' CE.
"""
import argparse
import json

import numpy as np
import torch

from vaelib.controllers import name_of
from vaelib.data.dataset import load_split, load_tokenizer
from vaelib.model.checkpoint import load_model

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("runs", nargs="+")
ap.add_argument("--lane", type=int, default=5, help="the controller number whose gain is set to 0")
ap.add_argument("--split", default="test")
a = ap.parse_args()
torch.set_num_threads(1)

tk = load_tokenizer(a.data)
seqs = [np.asarray(s, np.int64) for s in load_split(a.data, a.split)]
numbers = list(tk.config.cc_numbers)
cc0 = min(k for k in range(tk.vocab_size) if tk.describe(k).startswith("CC"))  # lane-major: cc0 + 128 * lane + v


def lane_figures(model) -> dict:
    ce, err = {n: [] for n in numbers}, {n: [] for n in numbers}
    for s in seqs:
        with torch.no_grad():
            lp = model(torch.as_tensor(s)[None], sample=False)["logits"][0].float().log_softmax(-1)
        for j in range(1, len(s)):
            k = int(s[j]) - cc0
            if 0 <= k < 128 * len(numbers):
                lane, v = divmod(k, 128)
                ce[numbers[lane]].append(-float(lp[j - 1, s[j]]))
                err[numbers[lane]].append(abs(int(lp[j - 1, cc0 + 128 * lane: cc0 + 128 * (lane + 1)].argmax()) - v))
    return {name_of(n): {"n": len(ce[n]), "ce": round(float(np.mean(ce[n])), 3),
                         "abs_err": round(float(np.mean(err[n])), 1)} for n in numbers}


for run in a.runs:
    model, _ = load_model(run, device="cpu")
    model.eval()
    row = {"run": run, "split": a.split, "gain": [round(float(g), 3) for g in model.cc_plan.gain.detach()],
           "as_trained": lane_figures(model)}
    with torch.no_grad():
        model.cc_plan.gain[numbers.index(a.lane)] = 0.0
    row[f"{name_of(a.lane)}_gain_0"] = lane_figures(model)
    print(json.dumps(row), flush=True)
