"""Greedy reconstructions with each CC at its lane's likeliest value ("mode") and at its expected value ("mean"):
CC-ME, MR-STFT and modulation depth of both, against the unconditional baseline, on a trained run's test split.

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/cc_value.py DATA_DIR RUN_DIR [RUN_DIR ...] [--n-render 40]

Prints one JSON line per run. ``depth`` is ``metrics.cc_depth`` (each set lane's standard deviation over time, mean
over lanes) and ``motion`` each set lane's summed step-to-step change (mean over lanes), both next to the test set's;
MR-STFT is rendered for the first ``--n-render`` pairs only (rendering dominates the run time).
"""
import argparse
import json

import numpy as np
import torch

from vaelib.evaluation import metrics as M
from vaelib.evaluation.evaluate import SAMPLE_RATE
from vaelib.evaluation.mrstft import mr_stft_performances
from vaelib.model.checkpoint import load_model
from vaelib.model.generation import CC_VALUES, decode

from scored_split import load_scored_split, posterior_means  # docs/pilots/scored_split.py, beside this script

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("runs", nargs="+")
ap.add_argument("--n-render", type=int, default=40)
a = ap.parse_args()
torch.set_num_threads(1)


def motion(perfs) -> float:
    per_lane = [np.abs(np.diff(p.cc_curves()[i])).sum() for p in perfs for i in np.nonzero((p.cc >= 0).any(1))[0]]
    return float(np.mean(per_lane))


def depth(perfs) -> float:
    return float(np.mean([M.cc_depth(p) for p in perfs]))


tk, seqs, meta, refs, partner = load_scored_split(a.data)
print(json.dumps({"test set": {"depth": round(depth(refs), 4), "motion": round(motion(refs), 3)}}), flush=True)
for run in a.runs:
    model, _ = load_model(run, device="cpu")
    mu = posterior_means(model, tk, seqs, partner)
    row = {"run": run}
    for rule in CC_VALUES:
        both = decode(model, np.concatenate([mu, mu[partner]]), greedy=True, tokenizer=tk, batch_size=256,
                      cc_value=rule)
        rec = [tk.decode(s, tempo_bpm=r.tempo_bpm) for s, r in zip(both[:len(seqs)], refs)]
        base = [tk.decode(s, tempo_bpm=r.tempo_bpm) for s, r in zip(both[len(seqs):], refs)]
        n = a.n_render
        cc_me = np.mean([M.cc_me(r, e) for r, e in zip(refs, rec)])
        base_cc_me = np.mean([M.cc_me(r, e) for r, e in zip(refs, base)])
        row[rule] = {
            "cc_me": round(float(cc_me), 4), "baseline_cc_me": round(float(base_cc_me), 4),
            "ratio": round(float(cc_me / base_cc_me), 3),
            "onset_f1": round(float(np.mean([M.note_f1(r, e) for r, e in zip(refs, rec)])), 3),
            "depth": round(depth(rec), 4), "motion": round(motion(rec), 3),
            "mr_stft": round(float(np.mean(mr_stft_performances(refs[:n], rec[:n], SAMPLE_RATE, n_workers=1))), 3),
            "baseline_mr_stft": round(float(np.mean(mr_stft_performances(refs[:n], base[:n], SAMPLE_RATE,
                                                                         n_workers=1))), 3)}
    print(json.dumps(row), flush=True)
