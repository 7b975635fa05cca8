"""A blinded listening test (paper §5.2): build the pack, then analyse the returned ratings.

Pack layout (``build_pack``)::

    out_dir/pack/            <- send this folder to the raters, nothing else
        <hex id>.wav         44.1 kHz, loudness-matched, no metadata; ids are random hex
        rating_sheet.csv     shuffled order: order, clip_id, file, the three 1-5 scales, comment
        README.txt           instructions and the meaning of each scale
    out_dir/private_key/key.csv   clip_id -> condition (model or "reference") and source: keep it away from raters

Analysis (``analyse``): mean and 95 % t-interval per condition and scale, a Kruskal-Wallis test
per scale, pairwise Mann-Whitney U tests with Holm's step-down correction, and a plot. Ratings
made up by ``simulate_ratings`` carry ``SIMULATED`` in their file name, in a ``simulated`` column,
and in every title and output file name derived from them.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from vaelib.atomic import atomic_write_text
from vaelib.data.dataset import load_meta, load_performances, load_split, load_tokenizer
from vaelib.data.performance import Performance
from vaelib.data.tokenizer import Tokenizer
from vaelib.model.encoding import encode_split
from vaelib.model.checkpoint import load_model
from vaelib.model.generation import decode, sample, to_performances
from vaelib.model.latent_prior import PRIOR_FILE, load_slot_prior
from vaelib.synth import render
from vaelib.synth.audio import write_ogg, write_wav

SCALES = ("stylistic_authenticity", "complexity_novelty", "overall_quality")  # paper §5.2, each 1-5
SCALE_QUESTIONS = {
    "stylistic_authenticity": "Stylistic authenticity: how well does it fit the target genre (IDM / dubstep / DnB bass)?",
    "complexity_novelty": "Complexity and novelty: is the performance intricate and creative?",
    "overall_quality": "Overall quality: is it musically appealing?",
}
REFERENCE = "reference"
PRIORS = ("normal", "learned")  # where a pack's generated clips draw z: N(0, I), or the run's slot prior


def _loudness_match(audio: np.ndarray, rms_db: float = -20.0) -> np.ndarray:
    """Scale to a common RMS (so loudness is no cue) and keep peaks below 0.99."""
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if rms < 1e-8:
        return audio.astype(np.float32)
    out = audio * (10 ** (rms_db / 20) / rms)
    peak = float(np.max(np.abs(out)))
    return (out / peak * 0.99 if peak > 0.99 else out).astype(np.float32)


def build_pack(clips: dict[str, list[Performance]], out_dir, seed: int | None = 0, sample_rate: int = 44100,
               backend: str = "va") -> dict[str, Path]:
    """Render every performance of every condition into a blinded pack (see the module docstring).

    ``clips`` maps a condition label (e.g. ``"z128"``, ``"reference"``) to its performances. Ids
    and order come from ``seed`` (``None``: unpredictable). Returns the paths of pack, sheet and key.
    """

    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    pack, private = out / "pack", out / "private_key"
    pack.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    items = [(cond, p) for cond, perfs in clips.items() for p in perfs]
    ids: set[str] = set()
    while len(ids) < len(items):  # random hex, unique
        ids.add(rng.bytes(4).hex())
    ids_list = sorted(ids)
    rng.shuffle(ids_list)  # sorted then shuffled: ids carry nothing of the condition order
    order = rng.permutation(len(items))
    key_rows, sheet_rows = [], []
    for k, j in enumerate(order):
        cond, perf = items[j]
        cid = ids_list[j]
        write_wav(pack / f"{cid}.wav", _loudness_match(render(perf, sample_rate=sample_rate, backend=backend)),
                  sample_rate)
        sheet_rows.append({"order": k + 1, "clip_id": cid, "file": f"{cid}.wav", **{s: "" for s in SCALES},
                           "comment": ""})
        key_rows.append({"clip_id": cid, "condition": cond, "source": perf.source, "style": perf.style,
                         "tempo_bpm": perf.tempo_bpm, "order": k + 1})
    sheet = pack / "rating_sheet.csv"
    pd.DataFrame(sheet_rows).to_csv(sheet, index=False)
    key = private / "key.csv"
    pd.DataFrame(key_rows).to_csv(key, index=False)
    (pack / "README.txt").write_text(
        "Listening test: synthesizer basslines (4 bars each).\n"
        "Listen to the clips in the order of rating_sheet.csv and rate each on three 1-5 scales\n"
        "(1 = poor, 5 = excellent). Write your rater name in the file name when you send it back.\n\n"
        + "\n".join(f"- {s}: {q}" for s, q in SCALE_QUESTIONS.items()) + "\n")
    return {"pack": pack, "sheet": sheet, "key": key}


def build_pack_from_runs(run_dirs: dict[str, str | Path], data_dir, out_dir, n_per_model: int = 8,
                         n_references: int = 8, seed: int | None = 0, split: str = "test",
                         temperature: float = 1.0, top_p: float = 1.0, sample_rate: int = 44100,
                         priors=("normal",)) -> dict[str, Path]:
    """Prior samples of each run (``{"z128": run_dir, ...}``) plus real references from ``split``.

    ``priors`` says where z comes from, one condition each: ``"normal"`` N(0, I) (the paper's; condition ``z128``),
    ``"learned"`` the slot prior fitted to the run's checkpoint when it was evaluated (``RUN/slot_prior.pt``;
    condition ``z128_learned``; z drawn at the prior's own temperature, as the evaluation draws it). By default the
    clips are decoded as the evaluation's prior samples are (temperature 1, no nucleus cut, with the grammar), so
    raters hear what the prior table scores. Generated clips get tempos drawn
    from the references' tempos, so tempo is no cue."""

    unknown = set(priors) - set(PRIORS)
    if unknown or not priors:
        raise ValueError(f"priors must be a non-empty choice of {PRIORS}, got {list(priors)}")
    rng = np.random.default_rng(seed)
    refs = load_performances(data_dir, split)
    refs = [refs[i] for i in rng.choice(len(refs), size=min(n_references, len(refs)), replace=False)]
    tempos = np.array([p.tempo_bpm for p in refs] or [140.0])
    models = {label: load_model(run) for label, run in run_dirs.items()}
    slot_priors = {}
    if "learned" in priors:  # every run's, before any clip is drawn
        for label, run in run_dirs.items():
            slot_priors[label] = load_slot_prior(run, models[label][0].checkpoint_path)
            if slot_priors[label] is None:
                raise FileNotFoundError(
                    f"{run}: no slot prior fitted to its checkpoint ({PRIOR_FILE}, written when the run is evaluated: "
                    "vaelib-evaluate, or 02_train / 03_evaluate in make report); evaluate the run first, or leave "
                    "'learned' out of priors")
    clips: dict[str, list[Performance]] = {}
    for label, run in run_dirs.items():
        model, config = models[label]
        tk = Tokenizer(config.data.tokenizer)
        for prior in PRIORS:
            if prior not in priors:
                continue
            draw_seed, z = int(rng.integers(2 ** 31)), None
            if prior == "learned":
                z = slot_priors[label].sample(n_per_model, draw_seed)
            name = label if prior == "normal" else f"{label}_learned"
            seqs = sample(model, n_per_model, seed=draw_seed, z=z, tokenizer=tk, temperature=temperature,
                          top_p=top_p)
            perfs = to_performances(tk, seqs, source=f"{name}_prior")
            for p in perfs:
                p.tempo_bpm = float(rng.choice(tempos))
            clips[name] = perfs
    clips[REFERENCE] = refs
    return build_pack(clips, out_dir, seed=None if seed is None else seed + 1, sample_rate=sample_rate)


def simulate_ratings(key_path, out_dir, n_raters: int = 10, seed: int = 0,
                     effects: dict[str, float] | None = None) -> Path:
    """SIMULATED ratings for testing the analysis: integer 1-5 draws around 3 + ``effects[condition]``
    (default: 0 for every condition, +0.8 for references) + a rater bias + noise. Written to
    ``out_dir/ratings_SIMULATED.csv`` with ``simulated=True`` on every row. Not data."""
    rng = np.random.default_rng(seed)
    key = pd.read_csv(key_path, dtype={"clip_id": str})
    effects = effects or {REFERENCE: 0.8}
    rows = []
    for r in range(n_raters):
        bias = rng.normal(0, 0.4)
        for _, k in key.iterrows():
            base = 3 + effects.get(k["condition"], 0.0) + bias
            rows.append({"rater": f"sim{r:02d}", "clip_id": k["clip_id"], "simulated": True,
                         **{s: int(np.clip(np.rint(base + rng.normal(0, 0.8)), 1, 5)) for s in SCALES}})
    out = Path(out_dir) / "ratings_SIMULATED.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    return out


def load_ratings(ratings, key_path) -> pd.DataFrame:
    """Returned sheets (a path, a folder of CSVs, or a list of paths) joined with the key ->
    long table: rater, clip_id, condition, scale, rating, simulated. A sheet without a ``rater``
    column is named after its file; blank ratings are dropped; ratings outside 1-5 raise."""
    paths = ratings if isinstance(ratings, (list, tuple)) else [ratings]
    paths = [q for p in map(Path, paths) for q in (sorted(p.glob("*.csv")) if p.is_dir() else [p])]
    frames = []
    for p in paths:
        df = pd.read_csv(p, dtype={"clip_id": str})
        df["rater"] = df["rater"] if "rater" in df else p.stem
        df["simulated"] = df["simulated"].astype(bool) if "simulated" in df else "SIMULATED" in p.name
        frames.append(df[["rater", "clip_id", "simulated", *SCALES]])
    key = pd.read_csv(key_path, dtype={"clip_id": str})[["clip_id", "condition"]]
    wide = pd.concat(frames).merge(key, on="clip_id", how="inner", validate="many_to_one")
    long = wide.melt(id_vars=["rater", "clip_id", "condition", "simulated"], value_vars=list(SCALES),
                     var_name="scale", value_name="rating").dropna(subset=["rating"])
    long["rating"] = long["rating"].astype(float)
    if not long["rating"].between(1, 5).all():
        raise ValueError("ratings must lie on the 1-5 scales")
    return long


def _conditions(df: pd.DataFrame) -> list[str]:
    """Models by latent size (z128 < z256 ...), references last."""
    def key(c):
        digits = "".join(ch for ch in c if ch.isdigit())
        return (c == REFERENCE, int(digits) if digits else 0, c)
    return sorted(df["condition"].unique(), key=key)


def _tag(df: pd.DataFrame) -> str:
    return "SIMULATED " if bool(df["simulated"].any()) else ""


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean rating with a 95 % t-interval per scale and condition (n = ratings)."""
    from scipy import stats

    rows = []
    for scale in SCALES:
        for cond in _conditions(df):
            x = df[(df.scale == scale) & (df.condition == cond)]["rating"].to_numpy()
            half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
            rows.append({"scale": scale, "condition": cond, "n": len(x), "mean": x.mean(),
                         "ci_low": x.mean() - half, "ci_high": x.mean() + half})
    out = pd.DataFrame(rows)
    out.attrs["title"] = f"{_tag(df)}mean rating and 95 % CI"
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), same order as ``p``."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    adj = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adj, 1.0)
    return out


def compare_conditions(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Kruskal-Wallis per scale, pairwise two-sided Mann-Whitney U per scale with Holm-adjusted p
    within each scale and the rank-biserial effect size r = 2U/(n1 n2) - 1, > 0 when ``a`` rates higher)."""
    from scipy import stats

    conds, kw, pw = _conditions(df), [], []
    for scale in SCALES:
        groups = {c: df[(df.scale == scale) & (df.condition == c)]["rating"].to_numpy() for c in conds}
        h, p = stats.kruskal(*groups.values()) if len(conds) > 1 else (np.nan, np.nan)
        kw.append({"scale": scale, "H": h, "p": p, "n_conditions": len(conds)})
        rows = []
        for a, b in itertools.combinations(conds, 2):
            u, pu = stats.mannwhitneyu(groups[a], groups[b], alternative="two-sided")
            rows.append({"scale": scale, "a": a, "b": b, "U": u, "p": pu,
                         "r_rank_biserial": 2 * u / (len(groups[a]) * len(groups[b])) - 1})
        if rows:
            for r, ph in zip(rows, holm([r["p"] for r in rows])):
                r["p_holm"] = ph
        pw += rows
    kw_df, pw_df = pd.DataFrame(kw), pd.DataFrame(pw)
    kw_df.attrs["title"] = f"{_tag(df)}Kruskal-Wallis per scale"
    pw_df.attrs["title"] = f"{_tag(df)}pairwise Mann-Whitney U, Holm-corrected"
    return kw_df, pw_df


def plot_ratings(df: pd.DataFrame):
    """One panel per scale: mean and 95 % CI per condition, ratings jittered behind. Returns the Figure."""
    import matplotlib.pyplot as plt

    summ, conds = summarize(df), _conditions(df)
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, len(SCALES), figsize=(4.2 * len(SCALES), 3.6), sharey=True)
    for ax, scale in zip(axes, SCALES):
        s = summ[summ.scale == scale].set_index("condition").loc[conds]
        x = np.arange(len(conds))
        for i, c in enumerate(conds):
            r = df[(df.scale == scale) & (df.condition == c)]["rating"].to_numpy()
            ax.scatter(i + rng.uniform(-0.2, 0.2, len(r)), r + rng.uniform(-0.15, 0.15, len(r)), s=4, alpha=0.25,
                       color="grey")
        ax.errorbar(x, s["mean"], yerr=[s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]], fmt="o", capsize=4,
                    color="tab:blue")
        ax.set_xticks(x, conds, rotation=30)
        ax.set(title=f"{_tag(df)}{scale.replace('_', ' ')}", ylim=(0.5, 5.5))
        ax.set_xlabel("condition (latent size or real reference)")
    axes[0].set_ylabel("rating (1-5), mean and 95 % CI")
    fig.suptitle(f"{_tag(df)}listening test ratings".strip())
    fig.tight_layout()
    return fig


def analyse(ratings, key_path, out_dir=None) -> dict:
    """Load, summarise, test and plot; with ``out_dir`` also write the tables (CSV) and the figure
    (PNG), their names prefixed ``SIMULATED_`` when the ratings are simulated."""
    df = load_ratings(ratings, key_path)
    summ = summarize(df)
    kw, pw = compare_conditions(df)
    fig = plot_ratings(df)
    import matplotlib.pyplot as plt

    plt.close(fig)  # returned for the caller to show once; an open figure would be drawn again at the cell's end
    res = {"ratings": df, "summary": summ, "kruskal": kw, "pairwise": pw, "figure": fig,
           "simulated": bool(df["simulated"].any())}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        pre = "SIMULATED_" if res["simulated"] else ""
        summ.to_csv(out / f"{pre}summary.csv", index=False)
        kw.to_csv(out / f"{pre}kruskal.csv", index=False)
        pw.to_csv(out / f"{pre}pairwise.csv", index=False)
        fig.savefig(out / f"{pre}ratings.png", dpi=120, bbox_inches="tight")
    return res


# ------------------------------------------------------------------------------------------ report audio
CLIP_RATE = 22050  # the evaluation's render rate (MR-STFT)
AUDIO_MANIFEST, EXPLORER_MANIFEST = "audio.json", "explorer.json"  # in RUN/audio/


def write_clips(perfs: list[Performance], folder, stems: list[str], sample_rate: int = CLIP_RATE) -> list[str]:
    """Render each performance with the built-in voice into ``folder/<stem>.ogg`` (Ogg Vorbis); returns the file
    names."""

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for perf, stem in zip(perfs, stems):
        write_ogg(folder / f"{stem}.ogg", render(perf, sample_rate=sample_rate), sample_rate)
    return [f"{stem}.ogg" for stem in stems]


def _write_manifest(path: Path, manifest: dict) -> Path:
    import json

    atomic_write_text(path, json.dumps(manifest, indent=2))
    return path


def export_run_audio(run_dir, data_dir, n_pairs: int = 8, n_prior: int = 8, split: str = "test", seed: int = 0,
                     sample_rate: int = CLIP_RATE) -> dict:
    """What a reader of the report listens to for one run, as Ogg Vorbis files in ``run_dir/audio/``:

    * ``pair_<i>_original.ogg`` / ``pair_<i>_reconstruction.ogg``: the first ``n_pairs`` windows of ``split``
      (tokenized, as the evaluation scores them) and the greedy decode of their posterior mean μ(x), as in Table 1;
    * ``prior_<i>.ogg``: ``n_prior`` samples z ~ N(0, I) decoded at temperature 1 with the grammar, at the tempos
      of the originals;
    * ``learned_<i>.ogg``: as many samples with z from the run's slot prior (``RUN/slot_prior.pt``, fitted by the
      evaluation to the posteriors of the same checkpoint as the model here, drawn at its own temperature, which
      the manifest records), where there is one.

    Writes the manifest ``run_dir/audio/audio.json`` (file paths relative to ``run_dir``) and returns it."""

    run_dir = Path(run_dir)
    folder = run_dir / "audio"
    model, _ = load_model(run_dir, device="cpu")
    tk = load_tokenizer(data_dir)
    seqs = [np.asarray(s, np.int64) for s in load_split(data_dir, split)][:n_pairs]
    meta = load_meta(data_dir, split)[:n_pairs]
    tempos = [float(m.get("tempo_bpm", 140.0)) for m in meta] or [140.0]
    mu, _ = encode_split(model, seqs)
    recon_ids = decode(model, mu, greedy=True, tokenizer=tk)
    originals = [tk.decode(s, tempo_bpm=t) for s, t in zip(seqs, tempos)]
    recons = [tk.decode(s, tempo_bpm=t) for s, t in zip(recon_ids, tempos)]
    pairs = []
    for i, (o, r, m) in enumerate(zip(originals, recons, meta)):
        a, b = write_clips([o, r], folder, [f"pair_{i:02d}_original", f"pair_{i:02d}_reconstruction"], sample_rate)
        pairs.append({"example": i, "source": Path(str(m.get("source", ""))).name, "style": m.get("style", ""),
                      "tempo_bpm": o.tempo_bpm, "original": f"audio/{a}", "reconstruction": f"audio/{b}",
                      "notes": [o.n_notes, r.n_notes]})

    def prior_clips(stem: str, z=None) -> list[dict]:
        """``n_prior`` samples from ``z`` (None: N(0, I)) as ``<stem>_<i>.ogg``, at the originals' tempos."""
        perfs = [tk.decode(s, tempo_bpm=tempos[i % len(tempos)])
                 for i, s in enumerate(sample(model, n_prior, seed=seed, z=z, tokenizer=tk, grammar=True))]
        files = write_clips(perfs, folder, [f"{stem}_{i:02d}" for i in range(len(perfs))], sample_rate)
        return [{"file": f"audio/{f}", "tempo_bpm": p.tempo_bpm, "notes": p.n_notes} for f, p in zip(files, perfs)]

    manifest = {"run": run_dir.resolve().name, "split": split, "sample_rate": sample_rate, "format": "Ogg Vorbis",
                "pairs": pairs, "prior": prior_clips("prior")}
    slot_prior = load_slot_prior(run_dir, model.checkpoint_path)
    if slot_prior is not None and n_prior:
        manifest["learned_prior"] = prior_clips("learned", slot_prior.sample(n_prior, seed))
        manifest["learned_prior_temperature"] = slot_prior.temperature
        manifest["learned_prior_sigma_scale"] = slot_prior.sigma_scale
    _write_manifest(folder / AUDIO_MANIFEST, manifest)
    return manifest


def export_grid_audio(run_dir, perfs: list[Performance], directions: list[str], amounts,
                      sample_rate: int = CLIP_RATE) -> dict:
    """The explorer's static variation grid (``latent.variation_grid``: one row per direction, one column per
    amount) as ``run_dir/audio/explorer/<row>_<col>.ogg`` with the manifest ``run_dir/audio/explorer.json``
    (paths relative to ``run_dir``); returns the manifest."""
    run_dir = Path(run_dir)
    amounts = [float(a) for a in amounts]
    stems = [f"{r:02d}_{c:02d}" for r in range(len(directions)) for c in range(len(amounts))]
    files = write_clips(perfs, run_dir / "audio" / "explorer", stems, sample_rate)
    cells = [[f"audio/explorer/{files[r * len(amounts) + c]}" for c in range(len(amounts))]
             for r in range(len(directions))]
    manifest = {"run": run_dir.resolve().name, "sample_rate": sample_rate, "format": "Ogg Vorbis",
                "directions": list(directions), "amounts": amounts, "cells": cells}
    _write_manifest(run_dir / "audio" / EXPLORER_MANIFEST, manifest)
    return manifest
