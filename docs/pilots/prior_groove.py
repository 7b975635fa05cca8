"""Why prior samples groove less than the data: decode one run's prior draws four ways and print muspy's groove
consistency and polyphony (means over the samples).

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/prior_groove.py RUN_DIR DATA_DIR [--n 32] [--n-mix 8] [--steps 4000]

* z ~ N(0, I), sampled at temperature 1 (what the evaluation does) and greedy;
* "bar-tied": the same draws with bar 1's four beat slots copied into bars 2-4 (pool="beat" only);
* z from the Gaussian fitted to the training posteriors (``encoding.fitted_prior``), sampled and greedy;
* z from the slot prior fitted to the same posteriors (``latent_prior.fit_slot_prior``: an autoregressive density
  over z's beat slots with ``--n-mix`` Gaussians per slot, early-stopped on the validation windows), sampled and
  greedy.
"""
import argparse
import json

import numpy as np
import torch

from vaelib.data.dataset import load_split, load_tokenizer
from vaelib.evaluation import metrics as M
from vaelib.model.checkpoint import load_model
from vaelib.model.encoding import encode_split, fitted_prior
from vaelib.model.generation import decode, prior
from vaelib.model.latent_prior import fit_slot_prior, model_slots

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("data_dir")
ap.add_argument("--n", type=int, default=32)
ap.add_argument("--n-mix", type=int, default=8)
ap.add_argument("--steps", type=int, default=4000)
a = ap.parse_args()
torch.set_num_threads(1)
model, _ = load_model(a.run_dir)
tk = load_tokenizer(a.data_dir)
z = prior(model, a.n, 0)
n_slot = z.shape[1] // 16
tied = z.clone().view(a.n, 4, 4 * n_slot)  # (n, bar, 4 beat slots); bar_pattern runs lay z out otherwise
tied[:, 1:] = tied[:, :1]
mu, lv = encode_split(model, load_split(a.data_dir, "train"))
z_fit = fitted_prior(mu, lv, a.n, 0)
slot = fit_slot_prior(mu, lv, encode_split(model, load_split(a.data_dir, "val"))[0], n_slots=model_slots(model),
                      n_mix=a.n_mix, steps=a.steps)
z_slot = slot.sample(a.n, 0)


def score(zz, greedy):
    seqs = decode(model, zz, greedy=greedy, generator=torch.Generator().manual_seed(1), tokenizer=tk)
    mm = [M.muspy_metrics(tk.decode(s)) for s in seqs]
    return {k: round(float(np.nanmean([m[k] for m in mm])), 3) for k in ("groove_consistency", "polyphony")}


out = {f"{name} {'greedy' if g else 'sampled'}": score(zz, g)
       for name, zz in (("N(0, I)", z), ("bar-tied", tied.view(a.n, -1)), ("fitted", z_fit), ("slot prior", z_slot)) for g in (False, True)}
print(json.dumps(out))
