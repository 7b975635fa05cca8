"""The evaluation's side tables, one row per run folder's ``metrics.json`` (``{"z128": metrics, ...}``), beside
Table 1 in ``03_evaluate``: the headline figures (``runs_frame``), the prior samples (``prior_frame``), the
reconstructions under each CC-value rule (``decoding_frame``) and what z carries (``what_z_frame``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def runs_frame(results: dict[str, dict]) -> pd.DataFrame:
    """{run name: metrics.json dict} -> one row per run with the headline values and the collapse flag."""
    keys = ("recon_ce", "kl", "cc_me", "mr_stft", "note_accuracy", "active_units", "usage_gap", "baseline_cc_me",
            "baseline_note_accuracy")
    return pd.DataFrame({run: {k: m[k]["value"] for k in keys} | {"collapsed": m["collapsed"]}
                         for run, m in results.items()}).T


PRIOR_CI = ("polyphony", "groove_consistency")  # per-piece means the prior samples are judged by


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def prior_frame(results: dict[str, dict]) -> pd.DataFrame:
    """Prior-sample statistics per run (z ~ N(0, I); a "(fitted prior)" row for z from the Gaussian fitted to the
    training posteriors and a "(learned prior)" row for z from the slot prior fitted to them, where evaluated), plus a
    "test set" row with the real split's values where defined. ``PRIOR_CI``'s figures also get their 95% bootstrap
    CI over the draws (another draw of as many samples moves them about that much)."""
    rows, ref = {}, {}
    for run, m in results.items():
        for key, name in (("prior", run), ("prior_fitted", f"{run} (fitted prior)"),
                          ("prior_learned", f"{run} (learned prior)")):
            p = m.get(key)
            if p is None:
                continue
            ci = p.get("muspy_ci95", {})
            rows[name] = {"validity_rate": p["validity_rate"], **p["muspy"], **p["cc_activity"],
                          **{f"oa_{k}": v for k, v in p["overlapping_area"].items()},
                          "novelty": p.get("novelty", {}).get("value", np.nan),
                          **{f"{k} 95% CI": _ci(ci.get(k)) for k in PRIOR_CI}}
        p = m["prior"]
        ref = {**p["reference_muspy"], **p["reference_cc_activity"],
               **{f"oa_{k}": v for k, v in p.get("reference_overlapping_area", {}).items()},
               "novelty": p.get("reference_novelty", {}).get("value", np.nan)}
    return pd.DataFrame({**rows, "test set": ref}).T


def decoding_frame(results: dict[str, dict]) -> pd.DataFrame:
    """Reconstructions under each way of choosing a CC's value (``by_cc_value``): one row per run and rule, with CC-ME
    and onset F1 of the reconstructions and of the unconditional baseline, CC-ME's ratio to the baseline's, the
    paired Wilcoxon p of CC-ME, and the modulation depth and motion next to the test set's. ``headline`` marks the
    rule Table 1 reports."""
    rows = {}
    for run, m in results.items():
        head = m.get("decoding", {}).get("cc_value")
        for rule, r in m.get("by_cc_value", {}).items():
            rows[(run, rule)] = {"CC-ME": r["cc_me"]["value"], "uncond. CC-ME": r["baseline_cc_me"]["value"],
                                 "CC-ME ratio": r["cc_me_ratio"], "p (Wilcoxon)": r["vs_baseline_cc_me"]["p_wilcoxon"],
                                 "onset F1": r["note_accuracy"]["value"],
                                 "uncond. onset F1": r["baseline_note_accuracy"]["value"],
                                 "CC depth": r.get("cc_depth", np.nan),
                                 "test set CC depth": r.get("reference_cc_depth", np.nan),
                                 "CC motion": r.get("cc_motion", np.nan),
                                 "test set CC motion": r.get("reference_cc_motion", np.nan), "headline": rule == head}
    df = pd.DataFrame(rows).T.infer_objects()  # numeric columns, so a p of 1e-12 is shown as such, not as 0.0
    if len(df):
        df.index.names = ["run", "CC value"]
    return df


def what_z_frame(results: dict[str, dict]) -> pd.DataFrame:
    """What z carries, teacher forced on the true prefix: one row per run and z (its own, another window's), with CE
    by target type split into "which event" (the token's kind; each CC lane a kind) and "which value" (the rest),
    note-start accuracy (at true note starts, is "note start" the likeliest event) and NOTE_ON pitch accuracy."""
    rows = {}
    for run, m in results.items():
        for who, label in (("own_z", "own z"), ("other_z", "other z")):
            w = m.get("what_z_carries", {}).get(who)
            if not w:
                continue
            row = {"CE": w["ce"]}
            for t in ("note_on", "note_off", "velocity", "time_shift", "cc"):
                if t in w["ce_by_type"]:
                    row[f"{t} CE"] = w["ce_by_type"][t]
                    row[f"{t} event"] = w["ce_event_by_type"][t]
                    row[f"{t} value"] = w["ce_value_by_type"][t]
            row["note-start acc."] = w["note_start_accuracy"]
            row["pitch acc."] = w["pitch_accuracy"]
            rows[(run, label)] = row
    df = pd.DataFrame(rows).T
    if len(df):
        df.index.names = ["run", "z"]
    return df
