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

from vaelib.data.dataset import load_meta, load_split, load_tokenizer
from vaelib.evaluation import metrics as M
from vaelib.evaluation.evaluate import SAMPLE_RATE, partners
from vaelib.evaluation.teacher_forced import teacher_forced
from vaelib.evaluation.mrstft import mr_stft_performances
from vaelib.model.checkpoint import load_model
from vaelib.model.generation import CC_VALUES, decode

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


tk = load_tokenizer(a.data)
seqs = [np.asarray(s, np.int64) for s in load_split(a.data, "test")]
meta = load_meta(a.data, "test")
refs = [tk.decode(s, tempo_bpm=float(m.get("tempo_bpm", 140.0))) for s, m in zip(seqs, meta)]
partner = partners([str(m.get("source", i)) for i, m in enumerate(meta)], 0)
print(json.dumps({"test set": {"depth": round(depth(refs), 4), "motion": round(motion(refs), 3)}}), flush=True)
for run in a.runs:
    model, _ = load_model(run, device="cpu")
    torch.manual_seed(0)
    mu = teacher_forced(model, seqs, tk, partner, seed=0)["mu"]
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
