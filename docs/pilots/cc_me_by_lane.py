"""Where a run's CC-ME comes from: the greedy reconstructions' squared curve error (``metrics.cc_me``'s terms) and the
unconditional baseline's (another window's z), split by style and by CC lane, on one split of a run's data.

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/cc_me_by_lane.py DATA_DIR RUN_DIR [RUN_DIR ...] [--split test]

Prints one JSON line per run: for each style (and "all") the CC-ME of the reconstructions and of the baseline, their
ratio, and per lane (by controller name) the two errors. Every window here sets every lane and decodes to the
window's length, so the mean over lanes and steps is ``metrics.cc_me`` averaged over the windows.
"""
import argparse
import json

import numpy as np
import torch

from vaelib.controllers import name_of
from vaelib.model.checkpoint import load_model
from vaelib.model.generation import decode

from scored_split import load_scored_split, posterior_means  # docs/pilots/scored_split.py, beside this script

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("runs", nargs="+")
ap.add_argument("--split", default="test")
a = ap.parse_args()
torch.set_num_threads(1)

tk, seqs, meta, refs, partner = load_scored_split(a.data, a.split)
styles = np.array([str(m.get("style", "")) for m in meta])
lanes = [name_of(c) for c in refs[0].cc_numbers]


def errors(ids) -> np.ndarray:
    """(N, lanes, steps) squared error of each decoded window's [0, 1] curves against its reference's."""
    est = [tk.decode(s, tempo_bpm=r.tempo_bpm) for s, r in zip(ids, refs)]
    for r, e in zip(refs, est):  # the split's windows: every lane set, decoded to the reference's length
        assert e.n_steps >= r.n_steps and set(r.cc_numbers) == set(e.cc_numbers), "see metrics.cc_me for this case"
    return np.stack([(r.cc_curves() - e.cc_curves()[:, :r.n_steps]) ** 2 for r, e in zip(refs, est)])


for run in a.runs:
    model, _ = load_model(run, device="cpu")
    mu = posterior_means(model, tk, seqs, partner)
    both = decode(model, np.concatenate([mu, mu[partner]]), greedy=True, tokenizer=tk, batch_size=256)
    rec, base = errors(both[:len(seqs)]), errors(both[len(seqs):])
    row = {"run": run, "split": a.split, "n": len(seqs)}
    for style in ["all", *sorted(set(styles))]:
        k = np.ones(len(styles), bool) if style == "all" else styles == style
        row[style] = {"n": int(k.sum()), "cc_me": round(float(rec[k].mean()), 4),
                      "baseline_cc_me": round(float(base[k].mean()), 4),
                      "ratio": round(float(rec[k].mean() / base[k].mean()), 3),
                      "by_lane": {name: [round(float(rec[k][:, i].mean()), 4), round(float(base[k][:, i].mean()), 4)]
                                  for i, name in enumerate(lanes)}}
    print(json.dumps(row), flush=True)
