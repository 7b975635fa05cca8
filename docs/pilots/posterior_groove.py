"""What a perfect prior would score: samples decoded as the evaluation decodes prior samples (temperature 1, grammar,
``prior_samples.prior_metrics``) from z drawn from the aggregate posterior itself, i.e. mu + sigma * eps of 64 random
training windows ("posterior_sample"), and from those windows' mu ("posterior_mean").

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/posterior_groove.py RUN_DIR DATA_DIR

Prints one JSON line: groove consistency, polyphony, duration overlap area, pitch entropy and empty-beat rate of
each, and the test split's groove. A prior's samples cannot be expected to beat the posterior samples' figures.
"""
import argparse
import json

import numpy as np
import torch

from vaelib.data.dataset import load_performances, load_split, load_tokenizer
from vaelib.evaluation.prior_samples import prior_metrics
from vaelib.model.checkpoint import load_model
from vaelib.model.encoding import encode_split

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("data_dir")
ap.add_argument("--n", type=int, default=64)
a = ap.parse_args()
torch.set_num_threads(1)
model, _ = load_model(a.run_dir, device="cpu")
tk = load_tokenizer(a.data_dir)
test_perfs = load_performances(a.data_dir, "test")
train = [np.asarray(s, np.int64) for s in load_split(a.data_dir, "train")]
pick = np.random.default_rng(0).choice(len(train), a.n, replace=False)
mu, logvar = map(torch.as_tensor, encode_split(model, [train[i] for i in pick]))
g = torch.Generator().manual_seed(0)
out = {"run": a.run_dir}
for name, z in (("posterior_sample", mu + torch.randn(mu.shape, generator=g) * (0.5 * logvar).exp()),
                ("posterior_mean", mu)):
    m = prior_metrics(model, tk, a.n, test_perfs, [], seed=0, z=z)
    out[name] = {"groove": round(m["muspy"]["groove_consistency"], 3), "poly": round(m["muspy"]["polyphony"], 3),
                 "dur_overlap": round(m["overlapping_area"]["duration"], 3),
                 "pitch_entropy": round(m["muspy"]["pitch_entropy"], 2),
                 "empty_beat": round(m["muspy"]["empty_beat_rate"], 3)}
out["data_groove"] = round(m["reference_muspy"]["groove_consistency"], 3)
print(json.dumps(out))
