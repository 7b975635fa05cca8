"""Pure evaluation metrics on ``Performance`` objects, token ids and per-example arrays.

Definitions (the paper leaves them open):

* **CC-ME** (``cc_me``): mean squared error between sample-and-hold CC curves on the 1/32 grid,
  divided by 127 (so in [0, 1]), over the *reference* length. A shorter estimate holds its last
  value, a longer one is truncated (the mismatch is reported by ``length_mismatch_steps``). The mean
  runs over the controllers present (set at least once) in ref ∪ est; a lane missing or never set on
  one side counts as that controller's default curve. No time warping. Constant 0 vs constant 127 = 1.
* **Note onset F1** (``note_f1``): ``mir_eval.transcription`` with intervals in grid steps, an onset
  tolerance of 0.5 step, exact semitone (50-cent tolerance on integer pitches) and offsets ignored.
  Both empty = 1, one empty = 0.
* **Frame accuracy** (``frame_accuracy``): TP/(TP+FP+FN) of binary (pitch, step) piano-roll cells.
* **Token accuracy** (``token_accuracy``): teacher-forced argmax == target over non-PAD targets.
* **Overlapping area** (``overlapping_area``): FIGARO-style histogram overlap sum_i min(p_i, q_i)
  of pooled feature distributions (pitch, velocity, duration, CC value, CC slope) of two sets.
* **muspy metrics** (``muspy_metrics``): pitch entropy and polyphony from muspy; groove consistency
  and empty-beat rate from muspy on a copy pinned to exactly ``n_steps`` (see the function).
* **Novelty** (``novelty``): distance to the nearest training example, in [0, 1]:
  0.5 * RMS difference of the [0, 1] CC curves + 0.5 * Jaccard distance of the binary piano rolls.
* **Uncertainty**: percentile bootstrap CIs (``bootstrap_ci``; ``ratio_summary`` for ratios of sums such as
  nats per token), paired Wilcoxon signed-rank and paired bootstrap tests (``paired_test``), all seeded.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from vaelib.controllers import default_value
from vaelib.data.performance import DURATION, ONSET, PITCH, VELOCITY, Performance

ONSET_TOLERANCE_STEPS = 0.5  # half a grid step, so a one-step shift is a miss
OA_FEATURES = ("pitch", "velocity", "duration", "cc_value", "cc_slope")


# ---------------------------------------------------------------------------- CC-ME
def _lane_curves(perf: Performance) -> dict[int, np.ndarray]:
    """cc number -> (n_steps,) float curve in [0, 1] (defaults filled)."""
    curves = perf.cc_curves()
    return {c: curves[i] for i, c in enumerate(perf.cc_numbers)}


def _present(perf: Performance) -> set[int]:
    return {c for i, c in enumerate(perf.cc_numbers) if (perf.cc[i] >= 0).any()}


def _fit_length(curve: np.ndarray, n_steps: int, default: float) -> np.ndarray:
    """Truncate a longer curve; extend a shorter one by holding its last value (default if empty)."""
    if len(curve) >= n_steps:
        return curve[:n_steps]
    hold = curve[-1] if len(curve) else default
    return np.concatenate([curve, np.full(n_steps - len(curve), hold)])


def cc_me_per_lane(ref: Performance, est: Performance) -> dict[int, float]:
    """Per-controller MSE of [0, 1] curves over ``ref.n_steps`` for the lanes present in ref ∪ est."""
    n = ref.n_steps
    rc, ec = _lane_curves(ref), _lane_curves(est)
    out = {}
    for c in sorted(_present(ref) | _present(est)):
        d = default_value(c) / 127.0
        r = rc.get(c, np.full(n, d))
        e = _fit_length(ec.get(c, np.full(est.n_steps, d)), n, d)
        out[c] = float(np.mean((r - e) ** 2))
    return out


def cc_me(ref: Performance, est: Performance) -> float:
    """CC modulation error in [0, 1] (see module docstring). 0 when no lane is set on either side."""
    per = cc_me_per_lane(ref, est)
    return float(np.mean(list(per.values()))) if per else 0.0


def cc_depth(perf: Performance) -> float:
    """Modulation depth: the standard deviation over time of each set lane's [0, 1] curve, averaged over the set
    lanes (0 with none). CC-ME rewards a curve that hedges towards its lane's middle; this shows what it gave up."""
    curves = perf.cc_curves()
    present = (perf.cc >= 0).any(1)
    return float(curves[present].std(1).mean()) if present.any() else 0.0


def cc_motion(perf: Performance) -> float:
    """Modulation motion: each set lane's summed step-to-step change of its [0, 1] curve, averaged over the set lanes
    (0 with none). A curve that jitters between neighbouring values moves far more than the data's for the same
    depth."""
    curves = perf.cc_curves()
    present = (perf.cc >= 0).any(1)
    return float(np.abs(np.diff(curves[present], axis=1)).sum(1).mean()) if present.any() else 0.0


def length_mismatch_steps(ref: Performance, est: Performance) -> int:
    """est.n_steps - ref.n_steps (grid steps); CC-ME itself holds/truncates, this reports the gap."""
    return int(est.n_steps - ref.n_steps)


# ---------------------------------------------------------------------------- notes
def _note_arrays(perf: Performance) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) float intervals in grid steps and (n,) pitches in Hz for mir_eval."""
    n = perf.notes
    iv = np.stack([n[:, ONSET], n[:, ONSET] + n[:, DURATION]], axis=1).astype(np.float64).reshape(-1, 2)
    hz = 440.0 * 2.0 ** ((n[:, PITCH].astype(np.float64) - 69.0) / 12.0)
    return iv, hz


def note_prf(ref: Performance, est: Performance) -> tuple[float, float, float]:
    """Onset-only note precision, recall, F1 (mir_eval.transcription, tolerance 0.5 step, exact pitch)."""
    if ref.n_notes == 0 and est.n_notes == 0:
        return 1.0, 1.0, 1.0
    if ref.n_notes == 0 or est.n_notes == 0:
        return 0.0, 0.0, 0.0
    import mir_eval.transcription as mt

    ri, rp = _note_arrays(ref)
    ei, ep = _note_arrays(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = mt.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=ONSET_TOLERANCE_STEPS,
                                                    pitch_tolerance=50.0, offset_ratio=None)
    return float(p), float(r), float(f)


def note_f1(ref: Performance, est: Performance) -> float:
    """Note-level onset F1 in [0, 1]: the paper's "note accuracy"."""
    return note_prf(ref, est)[2]


def frame_accuracy(ref: Performance, est: Performance) -> float:
    """TP / (TP + FP + FN) over binary (pitch, step) cells on ref's grid; both silent = 1."""
    a = ref.piano_roll() > 0
    b = est.piano_roll() > 0
    n = a.shape[1]
    b = b[:, :n] if b.shape[1] >= n else np.pad(b, ((0, 0), (0, n - b.shape[1])))
    tp = int((a & b).sum())
    denom = int((a | b).sum())
    return 1.0 if denom == 0 else tp / denom


def token_accuracy(logits, targets, pad_id: int = 0) -> np.ndarray:
    """Teacher-forced accuracy per sequence: logits (B, T, V), targets (B, T) -> (B,) in [0, 1]."""
    pred = np.asarray(logits.argmax(-1) if hasattr(logits, "argmax") else np.argmax(logits, -1))
    tgt = np.asarray(targets)
    mask = tgt != pad_id
    hit = (pred == tgt) & mask
    return hit.sum(1) / np.maximum(mask.sum(1), 1)


# ---------------------------------------------------------------------------- uncertainty
def bootstrap_ci(x, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0, stat=np.mean) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) CI of ``stat`` over the finite values of ``x`` (seeded).

    One value gives (x, x); none gives (nan, nan)."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    stats = stat(x[idx], axis=1) if stat in (np.mean, np.median) else np.array([stat(x[i]) for i in idx])
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def summarize(x, seed: int = 0) -> dict:
    """``{"value": mean, "ci95": [lo, hi]}`` over the finite values of ``x``."""
    x = np.asarray(x, np.float64)
    fin = x[np.isfinite(x)]
    lo, hi = bootstrap_ci(fin, seed=seed)
    return {"value": float(fin.mean()) if len(fin) else math.nan, "ci95": [lo, hi], "n": int(len(fin))}


def ratio_summary(num, den, n_boot: int = 2000, seed: int = 0) -> dict:
    """sum(num) / sum(den) with a bootstrap CI over examples (e.g. nats / tokens)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    value = float(num.sum() / max(den.sum(), 1e-12))
    if len(num) < 2:
        return {"value": value, "ci95": [value, value], "n": int(len(num))}
    idx = np.random.default_rng(seed).integers(0, len(num), size=(n_boot, len(num)))
    boots = num[idx].sum(1) / np.maximum(den[idx].sum(1), 1e-12)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"value": value, "ci95": [float(lo), float(hi)], "n": int(len(num))}


def paired_test(a, b, n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired comparison of per-example metrics a[i] vs b[i] (pairs with a non-finite side dropped).

    Returns mean_diff (a - b), its bootstrap ci95, a two-sided paired-bootstrap p value
    (2 * min(P(d* <= 0), P(d* >= 0)), capped at 1) and the Wilcoxon signed-rank p value
    (1.0 when every difference is 0)."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    out = {"n": int(len(d)), "mean_diff": float(d.mean()) if len(d) else math.nan}
    out["ci95"] = list(bootstrap_ci(d, n_boot=n_boot, seed=seed))
    if len(d) < 2:
        out.update(p_bootstrap=math.nan, p_wilcoxon=math.nan)
        return out
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(1)
    out["p_bootstrap"] = float(min(1.0, 2 * min((means <= 0).mean(), (means >= 0).mean())))
    if np.all(d == 0):
        out["p_wilcoxon"] = 1.0
    else:
        out["p_wilcoxon"] = float(wilcoxon(a[ok], b[ok], zero_method="wilcox").pvalue)
    return out


# ---------------------------------------------------------------------------- distributions
def features(perfs: list[Performance]) -> dict[str, np.ndarray]:
    """Pooled integer features of a set: note pitch, velocity, duration (steps); CC value (filled
    curves, every lane and step, 0..127); CC slope (non-zero per-step changes of the filled curves)."""
    notes = [p.notes for p in perfs]
    n = np.concatenate(notes) if notes else np.zeros((0, 4), np.int32)
    cc_val, cc_slope = [], []
    for p in perfs:
        f = p.cc_filled().astype(np.int64)
        cc_val.append(f.ravel())
        d = np.diff(f, axis=1).ravel()
        cc_slope.append(d[d != 0])
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)  # noqa: E731
    return {"pitch": n[:, PITCH].astype(np.int64), "velocity": n[:, VELOCITY].astype(np.int64),
            "duration": n[:, DURATION].astype(np.int64), "cc_value": cat(cc_val), "cc_slope": cat(cc_slope)}


def histogram_overlap(x, y, lo: int, hi: int) -> float:
    """sum_i min(p_i, q_i) of normalised integer histograms on [lo, hi]; 0 if either side is empty."""
    x, y = np.asarray(x, np.int64), np.asarray(y, np.int64)
    if len(x) == 0 or len(y) == 0:
        return 0.0
    bins = np.arange(lo, hi + 2) - 0.5
    p = np.histogram(np.clip(x, lo, hi), bins)[0] / len(x)
    q = np.histogram(np.clip(y, lo, hi), bins)[0] / len(y)
    return float(np.minimum(p, q).sum())


_OA_RANGES = {"pitch": (0, 127), "velocity": (0, 127), "duration": (1, 512), "cc_value": (0, 127),
              "cc_slope": (-127, 127)}


def overlapping_area(gen: list[Performance], ref: list[Performance]) -> dict[str, float]:
    """FIGARO-style overlapping area in [0, 1] (1 = identical distributions) per feature."""
    fg, fr = features(gen), features(ref)
    return {k: histogram_overlap(fg[k], fr[k], *_OA_RANGES[k]) for k in OA_FEATURES}


def muspy_metrics(perf: Performance, measure_resolution: int = 32) -> dict[str, float]:
    """muspy's pitch entropy (bits), polyphony, groove consistency and empty-beat rate.

    muspy sizes the groove and empty-beat grids from the last event, so a window whose notes stop
    early would count fewer bars and one whose last note ends on step ``n_steps`` one extra. The copy
    given to those two is pinned to exactly ``n_steps`` steps (note ends clipped to ``n_steps - 1``,
    a sentinel annotation at ``n_steps - 1``); one grid step is one muspy tick."""
    import muspy

    music = perf.to_muspy()  # resolution = steps_per_bar // 4 ticks per beat: 1 tick = 1 step
    last = perf.n_steps - 1
    pinned = perf.to_muspy()
    tr = pinned.tracks[0]
    for note in tr.notes:
        note.duration = max(0, min(note.end, last) - note.time)
    tr.annotations.append(muspy.Annotation(time=last, group="window_end", annotation="end"))
    return {
        "pitch_entropy": float(muspy.pitch_entropy(music)),
        "polyphony": float(muspy.polyphony(music)),
        "groove_consistency": float(muspy.groove_consistency(pinned, measure_resolution=measure_resolution)),
        "empty_beat_rate": float(muspy.empty_beat_rate(pinned)),
    }


def cc_activity(perf: Performance) -> dict[str, float]:
    """CC changes per bar (all lanes) and the number of lanes that move after step 0."""
    ch = perf.cc_changes()
    moving = ch[:, 1:].any(1)
    return {"cc_changes_per_bar": float(ch.sum() / max(perf.n_bars, 1)), "cc_moving_lanes": float(moving.sum())}


# ---------------------------------------------------------------------------- validity and novelty
def is_valid(ids, tokenizer) -> bool:
    """A well-formed sequence: BOS first, one EOS last, each VELOCITY directly followed by a NOTE_ON
    and each NOTE_ON directly preceded by one, NOTE_OFF only of a sounding pitch, NOTE_ON only of a
    silent one, total time within the window, and at least one note."""
    ids = np.asarray(ids, np.int64)
    if len(ids) < 2 or ids[0] != 1 or ids[-1] != 2 or (ids[1:-1] <= 2).any():
        return False
    body = ids[1:-1]
    typ = tokenizer.token_types(body)
    sounding: set[int] = set()
    t, n_on = 0, 0
    for i, (tok, ty) in enumerate(zip(body, typ)):
        if ty == 1 and (i + 1 >= len(body) or typ[i + 1] != 2):
            return False
        if ty == 2:
            p = int(tok - tokenizer.on0)
            if i == 0 or typ[i - 1] != 1 or p in sounding:
                return False
            sounding.add(p)
            n_on += 1
        elif ty == 3:
            p = int(tok - tokenizer.off0)
            if p not in sounding:
                return False
            sounding.discard(p)
        elif ty == 4:
            t += int(tok - tokenizer.shift0 + 1)
            if t > tokenizer.config.n_steps:
                return False
    return n_on > 0


def _novelty_features(perfs: list[Performance]) -> tuple[np.ndarray, np.ndarray]:
    cc = np.stack([p.cc_curves().ravel() for p in perfs])  # float64: the expansion below cancels
    roll = np.stack([(p.piano_roll() > 0).ravel() for p in perfs]).astype(np.float32)
    return cc, roll


def novelty(gen: list[Performance], train: list[Performance], chunk: int = 256) -> np.ndarray:
    """(n_gen,) distance in [0, 1] from each generated piece to its nearest training piece:
    0.5 * RMS difference of the [0, 1] CC curves + 0.5 * Jaccard distance of the binary piano rolls
    (both silent = 0). 0 means an exact copy. All pieces must share n_steps and cc_numbers."""
    if not gen:
        return np.zeros(0)
    gc, gr = _novelty_features(gen)
    best = np.full(len(gen), np.inf)
    for s in range(0, len(train), chunk):
        tc, tr = _novelty_features(train[s:s + chunk])
        sq = (gc ** 2).sum(1)[:, None] + (tc ** 2).sum(1)[None, :] - 2 * gc @ tc.T
        rms = np.sqrt(np.maximum(sq, 0) / gc.shape[1])
        inter = gr @ tr.T
        union = gr.sum(1)[:, None] + tr.sum(1)[None, :] - inter
        jac = np.where(union > 0, 1 - inter / np.maximum(union, 1), 0.0)
        best = np.minimum(best, (0.5 * rms + 0.5 * jac).min(1))
    return best
