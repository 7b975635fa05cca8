"""Greedy reconstructions with each CC at the centre of the likeliest run of 2w + 1 neighbouring values of its lane
(``decode(cc_value="window")`` with ``generation.CC_WINDOW`` = w; w = 0 is the likeliest single value, "mode"), on a
trained run's validation split: CC-ME against the unconditional baseline (another window's z), onset F1, and the
modulation depth and motion (``metrics.cc_depth``, ``metrics.cc_motion``) next to the split's own.

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/cc_window_width.py DATA_DIR RUN_DIR [--windows 0 2 4 8] \\
        [--split val] [--n-render 40]

Prints the split's depth and motion, then one JSON line per width (MR-STFT over the first ``--n-render`` pairs).
"""
import argparse
import json

import numpy as np
import torch

import vaelib.model.generation as G
from vaelib.evaluation import metrics as M
from vaelib.evaluation.evaluate import SAMPLE_RATE
from vaelib.evaluation.mrstft import mr_stft_performances
from vaelib.model.checkpoint import load_model

from scored_split import load_scored_split, posterior_means  # docs/pilots/scored_split.py, beside this script

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("run")
ap.add_argument("--split", default="val")
ap.add_argument("--windows", type=int, nargs="+", default=[0, 2, 4, 8])
ap.add_argument("--n-render", type=int, default=0)
a = ap.parse_args()
torch.set_num_threads(1)


def mean_of(f, perfs) -> float:
    return round(float(np.mean([f(p) for p in perfs])), 4)


tk, seqs, meta, refs, partner = load_scored_split(a.data, a.split)
print(json.dumps({"split": a.split, "depth": mean_of(M.cc_depth, refs), "motion": mean_of(M.cc_motion, refs)}),
      flush=True)
model, _ = load_model(a.run, device="cpu")
mu = posterior_means(model, tk, seqs, partner)
for w in a.windows:
    G.CC_WINDOW = w
    both = G.decode(model, np.concatenate([mu, mu[partner]]), greedy=True, tokenizer=tk, batch_size=256,
                    cc_value="window" if w else "mode")
    rec = [tk.decode(s, tempo_bpm=r.tempo_bpm) for s, r in zip(both[:len(seqs)], refs)]
    base = [tk.decode(s, tempo_bpm=r.tempo_bpm) for s, r in zip(both[len(seqs):], refs)]
    cc = np.mean([M.cc_me(r, e) for r, e in zip(refs, rec)])
    base_cc = np.mean([M.cc_me(r, e) for r, e in zip(refs, base)])
    row = {"run": a.run, "split": a.split, "w": w, "cc_me": round(float(cc), 4),
           "baseline_cc_me": round(float(base_cc), 4), "ratio": round(float(cc / base_cc), 3),
           "onset_f1": round(float(np.mean([M.note_f1(r, e) for r, e in zip(refs, rec)])), 3),
           "depth": mean_of(M.cc_depth, rec), "motion": mean_of(M.cc_motion, rec),
           "baseline_depth": mean_of(M.cc_depth, base)}
    if a.n_render:
        n = a.n_render
        row["mr_stft"] = round(float(np.mean(mr_stft_performances(refs[:n], rec[:n], SAMPLE_RATE, n_workers=1))), 3)
        row["baseline_mr_stft"] = round(float(np.mean(mr_stft_performances(refs[:n], base[:n], SAMPLE_RATE,
                                                                           n_workers=1))), 3)
    print(json.dumps(row), flush=True)
