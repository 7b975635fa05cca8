"""What the decoder predicts at the glide lane's events, teacher-forced (z = μ, the true prefix): split by whether the
true value is above 0 (a glide opening) and whether a note is sounding at that position (in the corpus a glide opens
where the previous note slides into the next one, so it is still sounding), the probability of the glide lane, of the
value 0 within the lane, of the true value ±2 within the lane, and how often the lane's likeliest value is 0.

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/glide_events.py DATA_DIR RUN_DIR [RUN_DIR ...] [--cc 5]

Prints one JSON line per run and group (test split).
"""
import argparse
import json

import numpy as np
import torch

from vaelib.data.dataset import load_split, load_tokenizer
from vaelib.model.checkpoint import load_model

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("runs", nargs="+")
ap.add_argument("--cc", type=int, default=5, help="the controller number of the lane (5: glide)")
a = ap.parse_args()
torch.set_num_threads(1)
seqs = [np.asarray(s, np.int64) for s in load_split(a.data, "test")]
lane = list(load_tokenizer(a.data).config.cc_numbers).index(a.cc)

for run in a.runs:
    model, _ = load_model(run, device="cpu")
    model.eval()
    lay = model.layout
    lo = lay.cc0 + 128 * lane
    rows = []
    for s in seqs:
        ids = torch.as_tensor(s)[None]
        with torch.no_grad():
            p = model(ids, sample=False)["logits"][0].float().softmax(-1)[:, lo:lo + 128]  # (T - 1, 128)
        sounding = lay.sounding(ids)[0].sum(-1) > 0.5  # after each token
        for j in np.flatnonzero((s >= lo) & (s < lo + 128)):
            v, q = int(s[j]) - lo, p[j - 1]
            lane_p = float(q.sum())
            rows.append((v > 0, bool(sounding[j - 1]), lane_p, float(q[0]) / lane_p,
                         float(q[max(v - 2, 0):v + 3].sum()) / lane_p, int(q.argmax()) == 0))
    r = np.array(rows, dtype=float)
    for opens in (1, 0):
        for snd in (1, 0):
            k = (r[:, 0] == opens) & (r[:, 1] == snd)
            if k.any():
                print(json.dumps({"run": run, "value_above_0": bool(opens), "note_sounding": bool(snd),
                                  "n": int(k.sum()), "p_lane": round(float(r[k, 2].mean()), 3),
                                  "p_0_in_lane": round(float(r[k, 3].mean()), 3),
                                  "p_true_pm2_in_lane": round(float(r[k, 4].mean()), 3),
                                  "argmax_is_0": round(float(r[k, 5].mean()), 2)}), flush=True)
