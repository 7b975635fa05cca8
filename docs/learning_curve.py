"""The learning curve of the `small` preset at one latent size: CE (overall and by token type), reconstruction
onset F1 and CC-ME against training tokens, up to ``--max-budget`` times the preset's own budget.

    OMP_NUM_THREADS=2 .venv/bin/python docs/learning_curve.py --latent-dim 384 --max-budget 8 \\
        --data results/small/data --out /tmp/curve --csv results/reference/learning_curve.csv

One training run whose schedules (warm-up, cosine, β cycles) span the longest budget; it stops at each multiple of
the `small` budget (1, 2, 4, 8 x by default), is scored on the test split (``evaluate_run``, no audio), and resumes.
So the early points are a longer run seen early, not separately tuned shorter runs; `small`'s learning-rate
cool-down (``cooldown_frac``) falls in the last 20 % of the longest budget, so only the last point has had it (a
`small` run of the earlier points' length cools down at its own end). The command above made the committed curve.
"""
import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from vaelib.config import get_preset  # noqa: E402
from vaelib.data.curation import curate  # noqa: E402
from vaelib.data.batching import load_token_split, steps_per_epoch  # noqa: E402
from vaelib.evaluation.evaluate import evaluate_run  # noqa: E402
from vaelib.training.fit import fit  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--latent-dim", type=int, default=128)
ap.add_argument("--max-budget", type=int, default=8)
ap.add_argument("--points", default="1,2,4,8", help="budgets (multiples of small's) to score at")
ap.add_argument("--out", default="/tmp/curve")
ap.add_argument("--data", default=None, help="a curated dataset (default: curate the embedded corpus into OUT/data)")
ap.add_argument("--limit", type=int, default=60, help="test windows scored per point")
ap.add_argument("--csv", default="results/reference/learning_curve.csv")
ap.add_argument("--overrides", default="{}", help="JSON config overrides on top of the preset")
ap.add_argument("--plot-only", action="store_true", help="redraw the figure from an existing --csv and exit")
a = ap.parse_args()
out = Path(a.out)


def write(rows):
    """CSV and figure of the points so far (rewritten after each one, so a cut run keeps what it measured)."""
    df = pd.DataFrame(rows)
    Path(a.csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.csv, index=False)
    has_cc = "cc_me" in df
    fig, axes = plt.subplots(1, 3 if has_cc else 2, figsize=(15 if has_cc else 10, 3.8))
    ax1, ax2 = axes[:2]
    for col in [c for c in df.columns if c.startswith("ce_")] + ["recon_ce"]:
        ax1.plot(df.train_tokens / 1e6, df[col], marker="o", lw=2.5 if col == "recon_ce" else 1.2,
                 label="all tokens" if col == "recon_ce" else col[3:])
    ticks = dict(xticks=list(df.train_tokens / 1e6),
                 xticklabels=[f"{t / 1e6:.1f}\n({k}x)" for t, k in zip(df.train_tokens, df.budget_x)])
    ax1.set(xlabel="training tokens, millions (x the small budget)", ylabel="teacher-forced test CE (nats/token)",
            xscale="log", **ticks,
            title=f"CE by token type, latent_dim={a.latent_dim}")
    ax1.legend(fontsize=8)
    ax2.plot(df.train_tokens / 1e6, df.onset_f1, marker="o", label="reconstruction (own z)")
    ax2.plot(df.train_tokens / 1e6, df.baseline_onset_f1, marker="s", ls="--", label="unconditional (another window's z)")
    ax2.set(xlabel="training tokens, millions (x the small budget)", ylabel="onset F1 (greedy decode)", xscale="log",
            ylim=(0, 1), **ticks,
            title="Reconstruction onset F1")
    ax2.legend(fontsize=8)
    if has_cc:
        ax3 = axes[2]
        ax3.plot(df.train_tokens / 1e6, df.cc_me, marker="o", label="reconstruction (own z)")
        ax3.plot(df.train_tokens / 1e6, df.baseline_cc_me, marker="s", ls="--", label="unconditional (another window's z)")
        ax3.set(xlabel="training tokens, millions (x the small budget)", ylabel="CC-ME (greedy decode)", xscale="log",
                ylim=(0, None), **ticks, title="CC modulation error")
        ax3.legend(fontsize=8)
    for ax in axes:
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # only the measured budgets are labelled
    fig.tight_layout()
    fig.savefig(Path(a.csv).with_suffix(".png"), dpi=110)
    plt.close(fig)


if a.plot_only:
    write(pd.read_csv(a.csv).to_dict("records"))
    raise SystemExit

base = get_preset("small", latent_dim=a.latent_dim, **json.loads(a.overrides))
cfg = base.with_overrides(epochs=base.train.epochs * a.max_budget)
data = Path(a.data) if a.data else out / "data"
if not (data / "complete").exists():
    curate("synthetic", data, cfg.data, progress=False)
t = cfg.train
train_lengths = [len(s) for s in load_token_split(data, "train")]
per_epoch = steps_per_epoch(train_lengths, t.batch_tokens, t.max_batch_size)
tokens_per_epoch = sum(n - 1 for n in train_lengths)  # target tokens: every window once per epoch
run = out / f"z{a.latent_dim}-x{a.max_budget}"

rows = []
t0 = time.time()
for k in [int(x) for x in a.points.split(",")]:
    steps = k * base.train.epochs * per_epoch
    fit(cfg, data, run, max_steps=steps, resume=True)
    tokens = steps / per_epoch * tokens_per_epoch
    m = evaluate_run(run, data, limit=a.limit, render=False, n_prior=16)
    own, other = m["what_z_carries"]["own_z"], m["what_z_carries"]["other_z"]
    rows.append({"budget_x": k, "steps": steps, "train_tokens": int(tokens), "recon_ce": m["recon_ce"]["value"],
                 **{f"ce_{n}": v for n, v in m["ce_by_type"].items() if n != "special"},
                 "onset_f1": m["note_accuracy"]["value"], "baseline_onset_f1": m["baseline_note_accuracy"]["value"],
                 "cc_me": m["cc_me"]["value"], "baseline_cc_me": m["baseline_cc_me"]["value"],
                 "kl": m["kl"]["value"], "usage_gap": m["usage_gap"]["value"],
                 "pitch_acc_own_z": own["pitch_accuracy"], "pitch_acc_other_z": other["pitch_accuracy"],
                 "wall_sec": round(time.time() - t0)})
    print(json.dumps(rows[-1]), flush=True)
    write(rows)
