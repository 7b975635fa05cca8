"""Greedy reconstructions with each CC at the value that holds the most of its lane's probability within +-K values
(K = 0 is the mode, Table 1's rule): CC-ME against the unconditional baseline, onset F1 and modulation depth.

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/cc_window.py DATA_DIR RUN_DIR [--k 0 4 8 16]

A pilot of a decoding rule between the mode and the expected value (``decode(cc_value="mean")``), not a package
option: it patches ``generation.argmax_by_event`` for the run of this script. Prints one JSON line per K.
"""
import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

import vaelib.model.generation as G
from vaelib.evaluation import metrics as M
from vaelib.model.checkpoint import load_model

from scored_split import load_scored_split, posterior_means  # docs/pilots/scored_split.py, beside this script

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("run")
ap.add_argument("--k", type=int, nargs="+", default=[0, 4, 8, 16])
a = ap.parse_args()
torch.set_num_threads(1)
tk, seqs, meta, refs, partner = load_scored_split(a.data)
mode_rule = G.argmax_by_event
half_width = [0]


def window_mode(logits, levels, values=None, window=0):  # generation.draw's call; decoded by "mode" below
    ids = mode_rule(logits, levels)
    rows = torch.nonzero(ids >= tk.cc0)[:, 0]
    if not len(rows):
        return ids
    base = tk.cc0 + (ids[rows] - tk.cc0) // 128 * 128
    lane_logits = logits[rows[:, None], base[:, None] + torch.arange(128)[None]].float()
    cum = F.pad(torch.softmax(lane_logits, -1).cumsum(-1), (1, 0))
    v, k = torch.arange(128), half_width[0]
    mass = cum[:, (v + k + 1).clamp(max=128)] - cum[:, (v - k).clamp(min=0)]
    ids = ids.clone()
    ids[rows] = base + mass.masked_fill(~torch.isfinite(lane_logits), -1).argmax(-1)
    return ids


G.argmax_by_event = window_mode
model, _ = load_model(a.run, device="cpu")
mu = posterior_means(model, tk, seqs, partner)
for k in a.k:
    half_width[0] = k
    both = G.decode(model, np.concatenate([mu, mu[partner]]), greedy=True, tokenizer=tk, batch_size=256,
                    cc_value="mode")
    rec = [tk.decode(s, tempo_bpm=r.tempo_bpm) for s, r in zip(both[:len(seqs)], refs)]
    base = [tk.decode(s, tempo_bpm=r.tempo_bpm) for s, r in zip(both[len(seqs):], refs)]
    cc_me = np.mean([M.cc_me(r, e) for r, e in zip(refs, rec)])
    base_cc_me = np.mean([M.cc_me(r, e) for r, e in zip(refs, base)])
    print(json.dumps({"run": a.run, "k": k, "cc_me": round(float(cc_me), 4),
                      "baseline_cc_me": round(float(base_cc_me), 4), "ratio": round(float(cc_me / base_cc_me), 3),
                      "onset_f1": round(float(np.mean([M.note_f1(r, e) for r, e in zip(refs, rec)])), 3),
                      "depth": round(float(np.mean([M.cc_depth(p) for p in rec])), 4),
                      "test_set_depth": round(float(np.mean([M.cc_depth(p) for p in refs])), 4)}), flush=True)
