"""The latent space: posterior means of a split, PCA, musical attributes and attribute vectors,
nearest training neighbours (novelty), and the plots of paper §5.2 (PCA manifold, generated CC
curves beside their nearest training examples, interpolation strips).

Attributes (one value per Performance, see ``attributes``):

* ``note_density``: notes per bar;
* ``register``: mean MIDI pitch (NaN without notes);
* ``wobble_rate``: dominant modulation frequency of the cutoff lane, cycles per bar (0 if flat);
* ``cc_activity_<name>``: total variation of each controller's curve in [0, 1] units per bar.

An attribute vector is mean mu(top quartile) - mean mu(bottom quartile) (MusicVAE's recipe);
``apply_attribute(z, name, amount, vectors)`` moves z by ``amount`` of it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from vaelib.controllers import name_of
from vaelib.data.performance import PITCH, Performance
from vaelib.model import objective
from vaelib.model.encoding import encode_split  # noqa: F401 (public here: notebooks and listening call latent.encode_split)
from vaelib.model.generation import decode
from vaelib.synth import render


def kl_per_dim(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """(D,) KL(q(z|x) || N(0, I)) per dimension in nats, averaged over the N rows of (N, D) inputs."""
    return objective.kl_per_dim(mu, logvar).mean(0)


def fit_pca(mu: np.ndarray, n_components: int | None = None):
    """A scikit-learn PCA fitted on (N, D) latent vectors (all components by default)."""
    from sklearn.decomposition import PCA

    k = min(n_components or mu.shape[1], *mu.shape)
    return PCA(n_components=k).fit(mu)


def pca_directions(pca, k: int = 3) -> dict[str, np.ndarray]:
    """Top-k principal axes as latent directions scaled to one standard deviation: {"pc1": (D,), ...}."""
    return {f"pc{i + 1}": pca.components_[i] * np.sqrt(pca.explained_variance_[i]) for i in range(k)}


def wobble_rate(perf: Performance, lane: str = "cutoff") -> float:
    """Dominant modulation frequency of one controller's curve, in cycles per bar (0 if flat)."""
    names = [name_of(c) for c in perf.cc_numbers]
    if lane not in names:
        return 0.0
    x = perf.cc_curves()[names.index(lane)]
    x = x - x.mean()
    if np.allclose(x, 0):
        return 0.0
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = 1 + int(np.argmax(spec[1:]))
    return k / perf.n_bars


def attributes(perfs: list[Performance]) -> pd.DataFrame:
    """One row per performance, the module docstring's attributes as columns."""
    rows = []
    for p in perfs:
        curves = p.cc_curves()  # (n_cc, n_steps) in [0, 1]
        tv = np.abs(np.diff(curves, axis=1)).sum(1) / p.n_bars
        row = {"note_density": p.n_notes / p.n_bars,
               "register": float(p.notes[:, PITCH].mean()) if p.n_notes else np.nan,
               "wobble_rate": wobble_rate(p)}
        row.update({f"cc_activity_{name_of(c)}": float(v) for c, v in zip(p.cc_numbers, tv)})
        rows.append(row)
    return pd.DataFrame(rows)


def attribute_vectors(mu: np.ndarray, attrs: pd.DataFrame, quantile: float = 0.25) -> dict[str, np.ndarray]:
    """{attribute: (D,)} = mean mu of the rows in the top quantile - mean mu of the bottom quantile.
    Rows with NaN are left out; an attribute without spread (top == bottom set) is skipped."""
    out = {}
    for name in attrs.columns:
        a = attrs[name].to_numpy(float)
        ok = np.isfinite(a)
        lo, hi = np.quantile(a[ok], [quantile, 1 - quantile]) if ok.sum() >= 4 else (0.0, 0.0)
        low, high = ok & (a <= lo), ok & (a >= hi)
        if lo < hi and low.any() and high.any():
            out[name] = mu[high].mean(0) - mu[low].mean(0)
    return out


def apply_attribute(z, name: str, amount: float, vectors: dict[str, np.ndarray]) -> np.ndarray:
    """z (..., D) moved by ``amount`` times the attribute vector ``name`` (1.0 = bottom -> top quartile)."""
    return np.asarray(z, np.float32) + np.float32(amount) * vectors[name].astype(np.float32)


def cc_features(perfs: list[Performance]) -> np.ndarray:
    """(N, n_cc * n_steps) float32 flattened CC curves in [0, 1], the space novelty is measured in."""
    return np.stack([p.cc_curves().ravel() for p in perfs]).astype(np.float32)


def nearest_neighbours(queries: list[Performance], pool: list[Performance], k: int = 1,
                       chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Indices (N, k) into ``pool`` of each query's nearest performances and their novelty distances
    (N, k): RMS difference of the CC curves, in [0, 1] units (0 = a copy of a training example)."""
    q, n_feat = cc_features(queries), None
    best_d = np.full((len(q), k), np.inf)
    best_i = np.zeros((len(q), k), np.int64)
    for s in range(0, len(pool), chunk):
        P = cc_features(pool[s:s + chunk])
        n_feat = P.shape[1]
        d2 = (q ** 2).sum(1)[:, None] - 2 * q @ P.T + (P ** 2).sum(1)[None]  # (N, chunk)
        d = np.sqrt(np.maximum(d2, 0) / n_feat)
        cand_d = np.concatenate([best_d, d], 1)
        cand_i = np.concatenate([best_i, s + np.arange(d.shape[1])[None].repeat(len(q), 0)], 1)
        order = np.argsort(cand_d, 1)[:, :k]
        best_d, best_i = np.take_along_axis(cand_d, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i, best_d


# ---------------------------------------------------------------------------------- plots
ATTRIBUTE_LABELS = {"note_density": "note density (notes per bar)", "register": "register (mean MIDI pitch)",
                    "wobble_rate": "wobble rate (cutoff cycles per bar)"}


def attribute_label(name: str) -> str:
    """An attribute's name with its unit, for axes and colour bars."""
    if name.startswith("cc_activity_"):
        return f"{name.removeprefix('cc_activity_')} activity (total variation per bar, 0-1 scale)"
    return ATTRIBUTE_LABELS.get(name, name.replace("_", " "))


def plot_pca(pca, mu: np.ndarray, color, prior_z: np.ndarray | None = None, title: str = "", ax=None,
             color_label: str = ""):
    """Scatter of mu projected on PC1/PC2, coloured by a categorical (e.g. style) or numeric
    (an attribute) array of length N; prior samples (M, D) on top as black crosses. A numeric colour gets a
    colour bar labelled ``color_label`` (default: ``attribute_label(title)``); the legend sits outside the axes,
    so it covers no point. Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 4.5))
    xy = pca.transform(mu)[:, :2]
    color = np.asarray(color)
    if color.dtype.kind in "OUS":
        for lab in sorted(set(color.tolist())):
            ax.scatter(*xy[color == lab].T, s=10, alpha=0.7, label=str(lab))
    else:
        sc = ax.scatter(*xy.T, c=color, s=10, cmap="viridis", alpha=0.8)
        fig.colorbar(sc, ax=ax, label=color_label or attribute_label(title))
    if prior_z is not None:
        pz = pca.transform(np.asarray(prior_z))[:, :2]
        ax.scatter(*pz.T, marker="x", c="k", s=25, label="prior samples")
    if color.dtype.kind in "OUS" or prior_z is not None:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, frameon=False)
    ev = pca.explained_variance_ratio_
    ax.set(xlabel=f"PC1 of μ ({ev[0]:.0%} of variance)",
           ylabel=f"PC2 of μ ({ev[1]:.0%} of variance)" if len(ev) > 1 else "PC2 of μ", title=title)
    return fig


def plot_variance_and_kl(pca, kl: np.ndarray, title: str = ""):
    """Two panels: cumulative explained variance of the PCA, and per-dimension KL (nats, sorted)."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.2))
    ev = np.cumsum(pca.explained_variance_ratio_)
    a.plot(np.arange(1, len(ev) + 1), ev, marker=".")
    a.set(xlabel="number of principal components", ylabel="cumulative share of variance", ylim=(0, 1.02),
          title="PCA of mu")
    order = np.argsort(kl)[::-1]
    b.bar(np.arange(len(kl)), kl[order])
    b.axhline(0.01, color="r", lw=0.8, ls="--", label="0.01 nats (inactive below)")
    b.set(xlabel="latent dimension (sorted by KL)", ylabel="KL per dimension (nats)", title="per-dimension KL")
    b.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def shown_lanes(lanes, names: list[str]) -> list[str]:
    """The wanted lanes the data models, or its first lanes (as many) when it models none of them."""
    return [lane for lane in lanes if lane in names] or names[:len(lanes)]


def plot_neighbours(generated: list[Performance], pool: list[Performance], idx: np.ndarray, dist: np.ndarray,
                    lanes=("cutoff", "resonance", "volume")):
    """Generated CC curves (solid) beside their nearest training example (dashed), one row per
    generated performance, one column per lane; novelty distance in each row's title."""
    import matplotlib.pyplot as plt

    lanes = shown_lanes(lanes, [name_of(c) for c in generated[0].cc_numbers])

    fig, axes = plt.subplots(len(generated), len(lanes), figsize=(3.2 * len(lanes), 1.7 * len(generated)),
                             squeeze=False, sharex=True, sharey=True)
    for r, (g, j, d) in enumerate(zip(generated, idx[:, 0], dist[:, 0])):
        names = [name_of(c) for c in g.cc_numbers]
        for c, lane in enumerate(lanes):
            li = names.index(lane)
            axes[r, c].step(np.arange(g.n_steps), g.cc_curves()[li], where="post", lw=1.2, label="generated")
            axes[r, c].step(np.arange(g.n_steps), pool[j].cc_curves()[li], where="post", lw=1, ls="--",
                            label=f"nearest train ({pool[j].style})")
            axes[r, c].set_title(f"{g.source}: {lane}, novelty {d:.3f}" if c == 0 else lane, fontsize=8)
    axes[0, -1].legend(fontsize=6)
    for ax in axes[-1]:
        ax.set_xlabel(f"step (1/{generated[0].steps_per_bar} note)")
    for ax in axes[:, 0]:
        ax.set_ylabel("CC value / 127")
    fig.tight_layout()
    return fig


def plot_strip(perfs: list[Performance], titles=None, lanes=("cutoff", "resonance", "volume")):
    """Interpolation strip: piano roll (top) and CC lanes (bottom) of each performance, left to right."""
    import matplotlib.pyplot as plt

    lanes = shown_lanes(lanes, [name_of(c) for c in perfs[0].cc_numbers])

    n = len(perfs)
    fig, axes = plt.subplots(2, n, figsize=(2.3 * n, 3.6), squeeze=False, sharex=True,
                             gridspec_kw={"height_ratios": [2, 1]})
    pitches = np.concatenate([p.notes[:, PITCH] for p in perfs] + [np.array([36, 48])])
    lo, hi = pitches.min() - 2, pitches.max() + 2
    for i, p in enumerate(perfs):
        axes[0, i].imshow(p.piano_roll()[lo:hi + 1] > 0, aspect="auto", origin="lower", cmap="Greys",
                          extent=(0, p.n_steps, lo - 0.5, hi + 0.5), interpolation="nearest")
        axes[0, i].set_title(titles[i] if titles is not None else p.source, fontsize=8)
        names = [name_of(c) for c in p.cc_numbers]
        for lane in lanes:
            axes[1, i].step(np.arange(p.n_steps), p.cc_curves()[names.index(lane)], where="post", lw=0.9,
                            label=lane)
        axes[1, i].set_ylim(-0.05, 1.05)
    axes[0, 0].set_ylabel("pitch (MIDI note)")
    axes[1, 0].set_ylabel("CC value / 127")
    for ax in axes[1]:
        ax.set_xlabel(f"step (1/{perfs[0].steps_per_bar} note)")
    axes[1, -1].legend(fontsize=6)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------- explorer
def _moved(z0, directions: dict, amounts: dict) -> np.ndarray:
    z = np.asarray(z0, np.float32).copy()
    for name, a in amounts.items():
        z = z + np.float32(a) * np.asarray(directions[name], np.float32)
    return z


def variation_grid(model, tokenizer, z0, directions: dict[str, np.ndarray], amounts=(-2, -1, 0, 1, 2),
                   temperature: float = 1.0, seed: int = 0, greedy: bool = True, tempo_bpm: float = 140.0):
    """Static grid of decodes: one row per direction, one column per amount (z0 + amount * direction).
    Each cell shows the piano roll with the cutoff lane on a second axis. Returns (Figure, performances)."""
    import matplotlib.pyplot as plt

    names = list(directions)
    zs = np.stack([_moved(z0, directions, {n: a}) for n in names for a in amounts])
    seqs = decode(model, zs, greedy=greedy, temperature=temperature, tokenizer=tokenizer,
                  generator=torch.Generator().manual_seed(seed))
    perfs = [tokenizer.decode(s, tempo_bpm=tempo_bpm) for s in seqs]
    fig, axes = plt.subplots(len(names), len(amounts), figsize=(2.2 * len(amounts), 1.6 * len(names)),
                             squeeze=False, sharex=True, sharey=True)
    for k, (ax, p) in enumerate(zip(axes.ravel(), perfs)):
        p.source = f"{names[k // len(amounts)]}{amounts[k % len(amounts)]:+g}"
        ax.imshow(p.piano_roll()[20:100] > 0, aspect="auto", origin="lower", cmap="Greys",
                  extent=(0, p.n_steps, 19.5, 99.5), interpolation="nearest")
        twin = ax.twinx()
        twin.plot(p.cc_curves()[0], color="tab:orange", lw=0.8)
        twin.set_ylim(-0.05, 1.05)
        twin.set_yticks([])
        ax.set_title(f"{p.source}  ({p.n_notes} notes)", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("pitch (MIDI)", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(f"step (1/{perfs[0].steps_per_bar} note)", fontsize=7)
    fig.suptitle("Decodes of z0 + amount × direction (rows: directions, columns: amounts); piano roll in grey, "
                 "cutoff CC in orange (0-127)", fontsize=8)
    fig.tight_layout()
    return fig, perfs


def explorer(model, tokenizer, z0, directions: dict[str, np.ndarray], sample_rate: int = 22050,
             tempo_bpm: float = 140.0):
    """ipywidgets explorer: one slider per direction, plus temperature, seed and greedy. Each change
    decodes z0 + sum(amount * direction) and shows the piano roll, the CC lanes and an audio player.

    The audio goes to an ``ipywidgets.Audio`` widget, not into the Output area: a large embedded
    player captured by an Output widget stalls headless runs (papermill/nbclient)."""
    import io

    import ipywidgets as w
    import matplotlib.pyplot as plt
    import soundfile as sf
    from IPython.display import display

    sliders = {n: w.FloatSlider(value=0.0, min=-3.0, max=3.0, step=0.25, description=n) for n in directions}
    extra = {"temperature": w.FloatSlider(value=1.0, min=0.1, max=2.0, step=0.1, description="temperature"),
             "seed": w.IntSlider(value=0, min=0, max=99, description="seed"),
             "greedy": w.Checkbox(value=True, description="greedy")}
    player = w.Audio(format="wav", autoplay=False, loop=False)

    def show(temperature, seed, greedy, **amounts):
        z = _moved(z0, directions, amounts)
        seq = decode(model, z[None], greedy=greedy, temperature=temperature, tokenizer=tokenizer,
                     generator=torch.Generator().manual_seed(seed))[0]
        perf = tokenizer.decode(seq, tempo_bpm=tempo_bpm)
        perf.source = ", ".join(f"{n}{a:+g}" for n, a in amounts.items() if a) or "z0"
        display(plot_strip([perf], lanes=("cutoff", "resonance", "volume")))
        plt.close("all")
        buf = io.BytesIO()
        sf.write(buf, render(perf, sample_rate=sample_rate), sample_rate, format="WAV", subtype="PCM_16")
        player.value = buf.getvalue()

    out = w.interactive_output(show, {**sliders, **extra})
    return w.VBox([w.HBox([w.VBox(list(sliders.values())), w.VBox(list(extra.values()))]), player, out])
