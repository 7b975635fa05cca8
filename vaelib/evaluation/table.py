"""Table 1 of the paper (§5.1) from evaluated run folders, with 95 % CIs, paired tests and plots.

``build_table1(results_dir, latent_dims, out_dir)`` reads ``<results_dir>/z{D}[_s{seed}]/metrics.json`` and
``eval.csv`` (written by ``vaelib.evaluation.evaluate``) and writes to ``out_dir``:

* ``table1.csv`` (numbers: value, ci_lo, ci_hi per metric), ``table1.md`` and ``table1.tex`` ("value [lo, hi]");
* ``table1_paired.csv`` / ``.md``: paired tests between every two latent sizes on per-example metrics
  (Wilcoxon signed-rank and paired bootstrap; ``mean_diff`` = larger D minus smaller D);
* ``figures/reconstruction.png`` (per-example metrics, model vs unconditional baseline, 95 % bootstrap error bars)
  and ``figures/latent.png`` (CE, KL, active units, usage gap with their CIs).

Seeds: with one run per size the cells are that run's. With several (``z{D}_s{seed}``), per-example metrics are
averaged over seeds example by example and bootstrapped over examples; run-level cells (CE, active units, usage
gap) take the mean over seeds with the envelope [min lo, max hi] of the seeds' CIs, and ``*_seed_sd`` gives the
spread. A size is flagged ``collapsed`` unless its usage gap's CI lies above ``COLLAPSE_GAP`` nats/token and some
unit is active (``evaluate.is_collapsed``).

Controls: a ``z{D}_paper`` folder (the same architecture trained with the paper's literal objective) gets its own
row after the main sizes (``control`` True, its ``objective`` and epochs spelled out); it is never pooled with the
seeds of ``z{D}`` nor paired-tested. ``table1_runs.csv`` gives every run folder a one-line verdict ("uses z" / "collapsed").
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from vaelib.atomic import atomic_write_text
from vaelib.evaluation.evaluate import COLLAPSE_GAP, is_collapsed
from vaelib.evaluation.metrics import bootstrap_ci, paired_test
from vaelib.evaluation.table_format import markdown_notes
from vaelib.runs import CONTROL, find_runs, run_objective
from vaelib.evaluation import table_format as tf

# (column, metrics.json key, eval.csv column or None for run-level cells, header)
CELLS = (
    ("cc_me", "cc_me", "cc_me", "CC-ME ↓"),
    ("mr_stft", "mr_stft", "mr_stft", "MR-STFT ↓"),
    ("kl", "kl", "kl_nats", "Final D_KL (nats) ↓"),
    ("note_accuracy", "note_accuracy", "note_f1", "Note accuracy (onset F1) ↑"),
    ("recon_ce", "recon_ce", None, "Recon. CE (nats/token) ↓"),
    ("active_units", "active_units", None, "Active units ↑"),
    ("usage_gap", "usage_gap", None, "Usage gap (nats/token) ↑"),
    ("baseline_cc_me", "baseline_cc_me", "baseline_cc_me", "Uncond. CC-ME"),
    ("baseline_note_accuracy", "baseline_note_accuracy", "baseline_note_f1", "Uncond. note F1"),
)
PAIRED = ("cc_me", "mr_stft", "note_f1", "frame_accuracy", "kl_nats", "ce_nats_per_token", "usage_gap_nats_per_token")


def load_runs(results_dir, latent_dims, variant: str = "") -> dict[int, list[dict]]:
    """{D: [{"seed", "path", "objective", "metrics", "eval"}]} for the evaluated runs (those with metrics.json and
    eval.csv) of one ``variant`` ("" main runs, ``"paper"`` the literal-objective controls)."""
    out: dict[int, list[dict]] = {}
    for d, runs in find_runs(results_dir, latent_dims, variant=variant).items():
        for seed, path in runs:
            if (path / "metrics.json").exists() and (path / "eval.csv").exists():
                out.setdefault(d, []).append({"seed": seed, "path": path, "objective": run_objective(path),
                                              "metrics": json.loads((path / "metrics.json").read_text()),
                                              "eval": pd.read_csv(path / "eval.csv")})
    return out


def per_example(runs: list[dict]) -> pd.DataFrame:
    """Per-example metrics averaged over the seeds of one latent size (rows keyed by example and source)."""
    frames = [r["eval"] for r in runs]
    cat = pd.concat(frames, ignore_index=True)
    num = cat.select_dtypes("number").columns.drop(["example"], errors="ignore")
    return cat.groupby(["example", "source"], sort=True)[list(num)].mean().reset_index()


def _cell(runs: list[dict], key: str, col: str | None, ex: pd.DataFrame, seed: int) -> dict:
    if not all(isinstance(r["metrics"].get(key), dict) and "value" in r["metrics"][key] for r in runs):
        return {"value": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "seed_sd": np.nan}  # a metric this run lacks
    vals = np.array([r["metrics"][key]["value"] for r in runs], np.float64)
    if len(runs) == 1:
        v = runs[0]["metrics"][key]
        lo, hi = (v.get("ci95") or [np.nan, np.nan])[:2]
        return {"value": float(v["value"]), "ci_lo": float(lo), "ci_hi": float(hi), "seed_sd": np.nan}
    sd = float(vals.std(ddof=1))
    if col is not None and col in ex:
        lo, hi = bootstrap_ci(ex[col].to_numpy(np.float64), seed=seed)
        return {"value": float(np.nanmean(ex[col])), "ci_lo": lo, "ci_hi": hi, "seed_sd": sd}
    los = [r["metrics"][key]["ci95"][0] for r in runs]
    his = [r["metrics"][key]["ci95"][1] for r in runs]
    return {"value": float(vals.mean()), "ci_lo": float(min(los)), "ci_hi": float(max(his)), "seed_sd": sd}


def summarize_sizes(runs: dict[int, list[dict]], seed: int = 0, control: bool = False) -> pd.DataFrame:
    """One numeric row per latent size: ``latent_dim``, ``objective``, ``control``, ``runs`` (folder names), and for
    each cell ``{c}``, ``{c}_ci_lo``, ``{c}_ci_hi``, ``{c}_seed_sd``."""
    rows = []
    for d in sorted(runs):
        ex = per_example(runs[d])
        row = {"latent_dim": d, "objective": " / ".join(dict.fromkeys(r["objective"] for r in runs[d])),
               "control": control, "runs": " ".join(r["path"].name for r in runs[d]), "n_seeds": len(runs[d]),
               "n_examples": len(ex),
               # metrics written before the CC value rule was recorded were decoded with the mode
               "cc_value": " / ".join(dict.fromkeys(r["metrics"].get("decoding", {}).get("cc_value", "mode")
                                                    for r in runs[d]))}
        for name, key, col, _ in CELLS:
            c = _cell(runs[d], key, col, ex, seed)
            row[name] = c["value"]
            row.update({f"{name}_{k}": v for k, v in c.items() if k != "value"})
        row["n_collapsed_seeds"] = int(sum(is_collapsed(r["metrics"]["usage_gap"], r["metrics"]["active_units"])
                                           for r in runs[d]))
        row["collapsed"] = is_collapsed({"value": row["usage_gap"], "ci95": [row["usage_gap_ci_lo"]]},
                                        {"value": row["active_units"]})
        rows.append(row)
    return pd.DataFrame(rows)


def paired_tests(runs: dict[int, list[dict]], metrics=PAIRED, seed: int = 0) -> pd.DataFrame:
    """Paired tests on per-example (seed-averaged) metrics for every pair of latent sizes, matched by
    example and source; ``mean_diff`` is the larger size minus the smaller."""
    ex = {d: per_example(r) for d, r in runs.items()}
    rows = []
    for a, b in itertools.combinations(sorted(ex), 2):
        m = ex[a].merge(ex[b], on=["example", "source"], suffixes=("_a", "_b"))
        for metric in metrics:
            if f"{metric}_a" not in m:
                continue
            t = paired_test(m[f"{metric}_b"], m[f"{metric}_a"], seed=seed)
            rows.append({"metric": metric, "d_small": a, "d_large": b, "n": t["n"], "mean_diff": t["mean_diff"],
                         "ci_lo": t["ci95"][0], "ci_hi": t["ci95"][1], "p_wilcoxon": t["p_wilcoxon"],
                         "p_bootstrap": t["p_bootstrap"]})
    return pd.DataFrame(rows, columns=["metric", "d_small", "d_large", "n", "mean_diff", "ci_lo", "ci_hi",
                                       "p_wilcoxon", "p_bootstrap"])


def run_verdicts(runs: list[dict]) -> pd.DataFrame:
    """One row per loaded run (see ``load_runs``; main runs and controls): run, latent_dim, seed, objective,
    usage_gap, active_units, collapsed, and ``verdict``, a line saying whether the decoder uses z."""
    rows = []
    for r in runs:
        m = r["metrics"]
        gap, thr = m["usage_gap"]["value"], m.get("collapse_threshold_nats_per_token", COLLAPSE_GAP)
        lo, hi = m["usage_gap"].get("ci95", [gap, gap])
        collapsed = is_collapsed(m["usage_gap"], m["active_units"])
        au = m["active_units"]["value"]
        verdict = (f"collapsed (usage gap {gap:.3g} [{lo:.3g}, {hi:.3g}] nats/token, CI not above {thr:g}; "
                   f"{au:.0f} active units)" if collapsed
                   else f"uses z (usage gap {gap:.3g} [{lo:.3g}, {hi:.3g}] > {thr:g} nats/token, {au:.0f} active units)")
        rows.append({"run": r["path"].name, "latent_dim": m["run"].get("latent_dim"), "seed": r["seed"],
                     "objective": r["objective"], "usage_gap": gap, "active_units": m["active_units"]["value"],
                     "collapsed": collapsed, "verdict": verdict})
    return pd.DataFrame(rows, columns=["run", "latent_dim", "seed", "objective", "usage_gap", "active_units",
                                       "collapsed", "verdict"])


def format_table(df: pd.DataFrame) -> pd.DataFrame:
    """Readable Table 1 (``vaelib.evaluation.table_format``): short objective labels, each model metric beside its
    unconditional baseline, "value [lo, hi]" with one number of decimals per column, counts without a CI, and a
    verdict column. Columns a run lacks are left out; keys beyond ``CELLS`` in the metrics are ignored."""

    out = pd.DataFrame({"D": df["latent_dim"].astype(int),
                        "Objective": [tf.objective_short(o, c) for o, c in zip(df["objective"], df["control"])]})
    if "n_seeds" in df and df["n_seeds"].max() > 1:
        out["Seeds"] = df["n_seeds"].astype(int)
    for name, header, _ in tf.COLUMNS:
        if name not in df or df[name].isna().all():
            continue
        if name in tf.COUNTS:
            out[header] = [tf.fmt(v, 0) for v in df[name]]
            continue
        d = tf.decimals(df[name], df[f"{name}_ci_lo"], df[f"{name}_ci_hi"])
        out[header] = [tf.fmt_ci(v, lo, hi, d) for v, lo, hi in zip(df[name], df[f"{name}_ci_lo"], df[f"{name}_ci_hi"])]
    out["Verdict"] = np.where(df["collapsed"], "collapsed", "uses z")
    return out


def row_label(latent_dim: int, control: bool) -> str:
    """x-axis label of a Table 1 row: ``"128"``, or ``"128 paper"`` for a literal-objective control."""
    return f"{latent_dim} {CONTROL}" if control else str(latent_dim)


PLOT_LABELS = {  # metric -> (panel title, y-axis label with unit)
    "cc_me": ("CC-ME (lower is better)", "CC mean error (0-1 scale)"),
    "mr_stft": ("MR-STFT (lower is better)", "multi-resolution STFT distance"),
    "note_f1": ("note onset F1 (higher is better)", "F1 (0-1)"),
    "frame_accuracy": ("frame accuracy (higher is better)", "TP / (TP + FP + FN), 0-1"),
    "recon_ce": ("reconstruction CE", "nats per token"),
    "kl": ("KL(q(z|x) ‖ N(0, I))", "nats per piece"),
    "active_units": ("active units", "count (Var μ_j > 0.01)"),
    "usage_gap": ("usage gap", "nats per token"),
}


def plot_table1(runs: dict[str, list[dict]], df: pd.DataFrame, fig_dir) -> list[Path]:
    """Seaborn plots with 95 % error bars; ``runs`` keyed by ``row_label``, in ``df``'s row order.
    Returns the written PNG paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    long = []
    for label, rs in runs.items():
        ex = per_example(rs)
        for m in ("cc_me", "mr_stft", "note_f1", "frame_accuracy"):
            for who, col in (("model", m), ("unconditional", f"baseline_{m}")):
                if col in ex:
                    long.append(pd.DataFrame({"latent_dim": label, "metric": m, "decoder z": who, "value": ex[col]}))
    long = pd.concat(long, ignore_index=True)
    paths = []
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, m in zip(axes, ("cc_me", "mr_stft", "note_f1", "frame_accuracy")):
        sns.pointplot(data=long[long.metric == m], x="latent_dim", y="value", hue="decoder z", ax=ax, order=list(runs),
                      errorbar=("ci", 95), seed=0, dodge=0.3, capsize=0.1, linestyle="none")
        ax.set(title=PLOT_LABELS[m][0], xlabel="latent size D", ylabel=PLOT_LABELS[m][1])
        ax.get_legend().remove()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, [f"{lab} z" if lab == "model" else "unconditional (another piece's z)" for lab in labels],
               loc="lower center", ncol=2, frameon=False)
    fig.suptitle("Free-running reconstructions: model vs unconditional baseline (mean, 95 % bootstrap CI over "
                 "test pieces)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    paths.append(fig_dir / "reconstruction.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, m in zip(axes, ("recon_ce", "kl", "active_units", "usage_gap")):
        x = pd.Series([row_label(d, c) for d, c in zip(df["latent_dim"], df["control"])])
        colors = ["tab:red" if c else "tab:blue" for c in df["collapsed"]]
        sns.barplot(x=x, y=df[m].to_numpy(), ax=ax, palette=colors, hue=x, legend=False)
        ax.errorbar(np.arange(len(df)), df[m], yerr=[df[m] - df[f"{m}_ci_lo"], df[f"{m}_ci_hi"] - df[m]],
                    fmt="none", ecolor="black", capsize=4)
        ax.set(title=PLOT_LABELS[m][0], xlabel="latent size D", ylabel=PLOT_LABELS[m][1])
    axes[-1].axhline(COLLAPSE_GAP, ls="--", c="tab:red", lw=1, label=f"collapse threshold ({COLLAPSE_GAP:g})")
    axes[-1].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    fig.suptitle("Latent usage (red = collapsed: usage gap below threshold)")
    fig.tight_layout()
    paths.append(fig_dir / "latent.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths


def build_table1(results_dir, latent_dims, out_dir, seed: int = 0) -> pd.DataFrame:
    """Collect the evaluated runs of ``latent_dims`` under ``results_dir`` into Table 1 (see module docstring).

    Returns the numeric table (one row per latent size, then one per ``_paper`` control); ``.attrs["paired"]``
    holds the paired tests between main sizes, ``.attrs["formatted"]`` the readable table and ``.attrs["verdicts"]``
    one line per run folder."""
    runs, controls = load_runs(results_dir, latent_dims), load_runs(results_dir, latent_dims, variant=CONTROL)
    if not runs and not controls:
        raise FileNotFoundError(f"no evaluated run folders z{{D}} for D in {list(latent_dims)} under {results_dir}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = pd.concat([summarize_sizes(r, seed, control=c) for r, c in ((runs, False), (controls, True)) if r],
                   ignore_index=True)
    paired = paired_tests(runs, seed=seed)
    pretty = format_table(df)
    verdicts = run_verdicts([r for group in (runs, controls) for d in sorted(group) for r in group[d]])
    atomic_write_text(out_dir / "table1_runs.csv", verdicts.to_csv(index=False))
    atomic_write_text(out_dir / "table1.csv", df.to_csv(index=False))

    notes = markdown_notes(df["objective"], df["control"], df["n_examples"], int(df["n_seeds"].max()),
                           cc_values=df["cc_value"])
    atomic_write_text(out_dir / "table1.md",
                      (pretty.to_markdown(index=False) if _has_tabulate() else _md(pretty)).rstrip("\n") + "\n" + notes)
    atomic_write_text(out_dir / "table1.tex", _tex(pretty))
    atomic_write_text(out_dir / "table1_paired.csv", paired.to_csv(index=False))
    atomic_write_text(out_dir / "table1_paired.md", _md(format_paired(paired)))
    plot_table1({row_label(d, c): (controls if c else runs)[d] for d, c in zip(df["latent_dim"], df["control"])},
                df, out_dir / "figures")
    df.attrs["paired"] = paired
    df.attrs["formatted"] = pretty
    df.attrs["verdicts"] = verdicts
    return df


def format_paired(paired: pd.DataFrame) -> pd.DataFrame:
    """The paired tests for reading: 3 significant digits, p-values in plain or scientific notation."""
    out = paired.copy()
    for c in ("mean_diff", "ci_lo", "ci_hi"):
        out[c] = [f"{v:.3g}" for v in out[c]]
    for c in ("p_wilcoxon", "p_bootstrap"):
        out[c] = [f"{v:.2g}" if v == v else "–" for v in out[c]]
    return out


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _md(df: pd.DataFrame) -> str:
    """A GitHub Markdown table without the optional ``tabulate`` dependency."""
    cells = [[str(c) for c in df.columns]] + [[str(v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("---" for _ in df.columns) + "|")
    return "\n".join(lines) + "\n"


def _tex(df: pd.DataFrame) -> str:
    """A booktabs tabular (no jinja2 needed); arrows and underscores escaped for LaTeX."""
    subs = (("_", r"\_"), ("%", r"\%"), ("↓", r"$\downarrow$"), ("↑", r"$\uparrow$"), ("‖", r"$\|$"))

    def esc(v) -> str:
        v = str(v)
        for a, b in subs:
            v = v.replace(a, b)
        return v

    head = " & ".join(esc(c) for c in df.columns) + r" \\"
    body = "\n".join(" & ".join(esc(v) for v in row) + r" \\" for row in df.itertuples(index=False))
    return ("\\begin{tabular}{" + "l" * len(df.columns) + "}\n\\toprule\n" + head + "\n\\midrule\n" + body
            + "\n\\bottomrule\n\\end{tabular}\n")
