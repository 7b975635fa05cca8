"""Plots of performances and of a curated dataset (matplotlib; every function returns its Figure).

* ``plot_performance(perf)``: piano roll on top, the CC lanes stacked below (names from the controller table).
* ``plot_cc_lanes(perfs, labels)``: one panel per controller, the performances overlaid (e.g. reference vs
  reconstruction).
* Curation: ``plot_token_lengths``, ``plot_cc_activity``, ``plot_style_mix`` read a data folder (``load_meta`` /
  ``report.json``); ``plot_curation`` puts the three side by side.
"""
from __future__ import annotations

from collections import Counter

import matplotlib.pyplot as plt
import numpy as np

from vaelib.controllers import name_of
from vaelib.data.dataset import load_meta, load_report
from vaelib.data.performance import Performance

SPLITS = ("train", "val", "test")


def plot_performance(perf: Performance, title: str | None = None, fig=None, pitch_pad: int = 3):
    """Piano roll (pitch vs grid step, colour = velocity) above the CC lanes (value 0..127 per step).

    Bar lines are drawn every ``steps_per_bar``; never-set CC steps are shown at the controller default, dashed."""
    fig = fig or plt.figure(figsize=(10, 6.5))
    gs = fig.add_gridspec(2, 1, height_ratios=(1.0, 1.6), hspace=0.08)
    ax_roll = fig.add_subplot(gs[0])
    ax_cc = fig.add_subplot(gs[1], sharex=ax_roll)
    T = perf.n_steps
    if perf.n_notes:
        lo = max(int(perf.notes[:, 2].min()) - pitch_pad, 0)
        hi = min(int(perf.notes[:, 2].max()) + pitch_pad, 127)
    else:
        lo, hi = 24, 60
    roll = perf.piano_roll()[lo:hi + 1].astype(float)
    roll[roll == 0] = np.nan
    ax_roll.imshow(roll, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=127, interpolation="nearest",
                   extent=(-0.5, T - 0.5, lo - 0.5, hi + 0.5))
    ax_roll.set_ylabel("pitch")
    ax_roll.set_title(title if title is not None else _describe(perf), fontsize=10)
    _lanes_stacked(ax_cc, perf)
    for ax in (ax_roll, ax_cc):
        for b in range(0, T + 1, perf.steps_per_bar):
            ax.axvline(b - 0.5, color="0.7", lw=0.6, zorder=0)
    ax_cc.set_xlim(-0.5, T - 0.5)
    ax_cc.set_xlabel(f"step (1/{perf.steps_per_bar} note)")
    plt.setp(ax_roll.get_xticklabels(), visible=False)
    return fig


def _describe(perf: Performance) -> str:
    parts = [perf.style or None, f"{perf.tempo_bpm:.0f} BPM", f"{perf.n_notes} notes",
             f"{int(perf.cc_changes()[:, 1:].sum())} CC changes"]
    return " | ".join(p for p in parts if p)


def _lanes_stacked(ax, perf: Performance, color=None, label=None, lw=1.2):
    """Each lane in its own band of height 1 (lane 0 on top), sample-and-hold steps."""
    n = len(perf.cc_numbers)
    curves = perf.cc_curves()
    unset = perf.cc < 0
    t = np.arange(perf.n_steps)
    for i in range(n):
        y = n - 1 - i + 0.08 + 0.84 * curves[i]
        line, = ax.step(t, np.where(unset[i], np.nan, y), where="post", lw=lw, color=color,
                        label=label if i == 0 else None)
        if unset[i].any():
            ax.step(t, np.where(unset[i], y, np.nan), where="post", lw=lw * 0.7, ls="--", color=line.get_color())
    ax.set_yticks(np.arange(n) + 0.5)
    ax.set_yticklabels([name_of(c) for c in perf.cc_numbers][::-1], fontsize=8)
    ax.set_ylim(0, n)
    for k in range(1, n):
        ax.axhline(k, color="0.85", lw=0.5, zorder=0)


def plot_cc_lanes(perfs: list[Performance], labels, names=None, fig=None):
    """Overlay the CC lanes of several performances, one panel per controller (``names`` selects a subset)."""
    if not perfs:
        raise ValueError("plot_cc_lanes needs at least one performance")
    numbers = perfs[0].cc_numbers
    lanes = [i for i, c in enumerate(numbers) if names is None or name_of(c) in names]
    n_cols = 2 if len(lanes) > 3 else 1
    n_rows = int(np.ceil(len(lanes) / n_cols))
    fig = fig or plt.figure(figsize=(11, 1.4 * n_rows + 0.8))
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, sharex=True, squeeze=False)).ravel()
    for ax, i in zip(axes, lanes):
        for p, lab in zip(perfs, labels):
            ax.step(np.arange(p.n_steps), p.cc_filled()[i], where="post", lw=1.1, label=lab)
        ax.set_ylim(-4, 131)
        ax.set_ylabel(name_of(numbers[i]), fontsize=8)
        for b in range(0, perfs[0].n_steps + 1, perfs[0].steps_per_bar):
            ax.axvline(b, color="0.8", lw=0.5, zorder=0)
    for ax in axes[len(lanes):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8, loc="upper right")
    fig.supxlabel("step", fontsize=9)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- curation
def _metas(data_dir) -> dict[str, list[dict]]:

    return {s: load_meta(data_dir, s) for s in SPLITS}


def plot_token_lengths(data_dir, ax=None):
    """Histogram of tokens per window (BOS/EOS included) per split, with the budget as a line."""

    rep = load_report(data_dir)
    ax = ax or plt.figure(figsize=(5, 3.5)).add_subplot()
    budget = rep["thresholds"]["max_len"]
    bins = np.linspace(0, budget, 33)
    metas = _metas(data_dir)
    ax.hist([[m["n_tokens"] for m in metas[s]] for s in SPLITS], bins=bins, stacked=True, label=list(SPLITS))
    ax.axvline(budget, color="k", ls="--", lw=1, label=f"budget {budget}")
    ax.set_xlabel("tokens per window")
    ax.set_ylabel("windows")
    ax.set_title(f"token length (median {rep['token_length'].get('median', 0):.0f}, "
                 f"thinned {rep['windows']['thinned']})", fontsize=10)
    ax.legend(fontsize=8)
    return ax.figure


def plot_cc_activity(data_dir, ax=None):
    """Mean CC changes per window for each controller (bars) and the share of windows where it moves (dots)."""

    per = load_report(data_dir)["cc_density"]["per_controller"]
    names = list(per)
    ax = ax or plt.figure(figsize=(6, 3.5)).add_subplot()
    ax.bar(names, [per[n]["mean_changes"] for n in names], color="tab:blue")
    ax.set_ylabel("mean changes / window", color="tab:blue")
    ax.tick_params(axis="x", rotation=60, labelsize=8)
    ax2 = ax.twinx()
    ax2.plot(names, [per[n]["frac_windows_moving"] for n in names], "o", color="tab:orange")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("share of windows moving", color="tab:orange")
    ax.set_title("CC activity per controller", fontsize=10)
    return ax.figure


def plot_style_mix(data_dir, ax=None):
    """Windows per style and split (stacked bars)."""
    metas = _metas(data_dir)
    styles = sorted({m["style"] for s in SPLITS for m in metas[s]})
    ax = ax or plt.figure(figsize=(4, 3.5)).add_subplot()
    bottom = np.zeros(len(styles))
    for s in SPLITS:
        counts = Counter(m["style"] for m in metas[s])
        h = np.array([counts.get(st, 0) for st in styles], float)
        ax.bar(styles, h, bottom=bottom, label=s)
        bottom += h
    ax.set_ylabel("windows")
    ax.set_title("style mix", fontsize=10)
    ax.legend(fontsize=8)
    return ax.figure


def plot_curation(data_dir):
    """Token lengths, CC activity and style mix of a curated folder, side by side."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4), gridspec_kw={"width_ratios": (1.2, 1.4, 0.8)})
    plot_token_lengths(data_dir, axes[0])
    plot_cc_activity(data_dir, axes[1])
    plot_style_mix(data_dir, axes[2])
    fig.tight_layout()
    return fig


__all__ = ["plot_performance", "plot_cc_lanes", "plot_token_lengths", "plot_cc_activity", "plot_style_mix",
           "plot_curation"]
