"""One pilot training of the `small` preset with overrides, scored on the test split (no audio).

    OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/pilot.py NAME '{"latent_dim": 128, "beta_max": 2}' [--out DIR]

Curates the embedded corpus once into OUT/data (as `make report` does), trains OUT/NAME with
``fit(get_preset("small", **overrides))`` on one thread, then ``evaluate_run`` (render=False: MR-STFT is left out,
it does not depend on the variant's notes) and prints one JSON line of the figures the model-learning issue asks for.
Variants compared with this script share data, seed and token budget.
"""
import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from vaelib.config import get_preset
from vaelib.data.curation import curate
from vaelib.evaluation.evaluate import evaluate_run
from vaelib.training.fit import fit

ap = argparse.ArgumentParser()
ap.add_argument("name")
ap.add_argument("overrides", nargs="?", default="{}")
ap.add_argument("--out", default="/tmp/pilots")
ap.add_argument("--limit", type=int, default=60)
ap.add_argument("--n-prior", type=int, default=32)
a = ap.parse_args()
torch.set_num_threads(1)
# the code this pilot runs: read now, not after training, when HEAD may have moved on
commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
out = Path(a.out)
cfg = get_preset("small", **{"latent_dim": 128, **json.loads(a.overrides)})
data = out / "data"
if not (data / "complete").exists():
    curate("synthetic", data, cfg.data, progress=False)
t0 = time.time()
fit(cfg, data, out / a.name)
t_train = time.time() - t0
m = evaluate_run(out / a.name, data, limit=a.limit, render=False, n_prior=a.n_prior)
pm = m["prior"]
summary = {
    "date": datetime.date.today().isoformat(), "commit": commit or None,
    "command": "OMP_NUM_THREADS=1 .venv/bin/python docs/pilots/pilot.py " + " ".join(
        f"'{x}'" if x.startswith("{") else x for x in sys.argv[1:]),
    "name": a.name, "overrides": json.loads(a.overrides), "train_sec": round(t_train),
    "recon_ce": round(m["recon_ce"]["value"], 3), "ce_by_type": {k: round(v, 3) for k, v in m["ce_by_type"].items()},
    "kl": round(m["kl"]["value"], 1), "usage_gap": round(m["usage_gap"]["value"], 3),
    "active_units": m["active_units"]["value"],
    "onset_f1": round(m["note_accuracy"]["value"], 3), "baseline_onset_f1": round(m["baseline_note_accuracy"]["value"], 3),
    "cc_me": round(m["cc_me"]["value"], 4), "baseline_cc_me": round(m["baseline_cc_me"]["value"], 4),
    "prior_polyphony": round(pm["muspy"].get("polyphony", float("nan")), 2),
    "prior_overlap": {k: round(v, 2) for k, v in pm["overlapping_area"].items()},
    "prior_groove": round(pm["muspy"].get("groove_consistency", float("nan")), 3),
    "fitted_prior_polyphony": round(m.get("prior_fitted", pm)["muspy"].get("polyphony", float("nan")), 2),
    "fitted_prior_groove": round(m.get("prior_fitted", pm)["muspy"].get("groove_consistency", float("nan")), 3),
    "learned_prior_polyphony": round(m.get("prior_learned", pm)["muspy"].get("polyphony", float("nan")), 2),
    "learned_prior_overlap": {k: round(v, 2) for k, v in m.get("prior_learned", pm)["overlapping_area"].items()},
    "learned_prior_groove": round(m.get("prior_learned", pm)["muspy"].get("groove_consistency", float("nan")), 3),
    "cc_me_ratio_by_rule": {k: round(v["cc_me_ratio"], 3) for k, v in m.get("by_cc_value", {}).items()},
    "what_z_carries": m.get("what_z_carries"),
}
print(json.dumps(summary))
with open(out / "pilots.jsonl", "a") as f:
    f.write(json.dumps(summary) + "\n")
