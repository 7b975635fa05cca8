"""Latent space tools: attributes, attribute vectors, nearest neighbours, plots, and an attribute
vector that moves its attribute on a tiny trained model."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vaelib.evaluation import latent  # noqa: E402
from vaelib.data.performance import Performance  # noqa: E402


def perf_with(pitches, onsets, cutoff_curve=None, n_steps=128):
    notes = np.stack([onsets, np.full(len(onsets), 4), pitches, np.full(len(onsets), 100)], 1)
    ev = [] if cutoff_curve is None else [(t, 0, int(v)) for t, v in enumerate(cutoff_curve)]
    return Performance.from_events(notes, ev, n_steps=n_steps)


def test_attributes_known_values():
    t = np.arange(128)
    sine = np.rint(64 + 50 * np.sin(2 * np.pi * 2 * t / 32))  # 2 cycles per bar on the cutoff lane
    p = perf_with([40, 44, 48, 52], [0, 32, 64, 96], sine)
    a = latent.attributes([p, perf_with([], [])]).iloc
    assert a[0]["note_density"] == 1.0 and a[0]["register"] == 46.0
    assert a[0]["wobble_rate"] == 2.0
    assert a[0]["cc_activity_cutoff"] > 1.0 and a[0]["cc_activity_volume"] == 0.0
    assert np.isnan(a[1]["register"]) and a[1]["wobble_rate"] == 0.0


def test_attribute_vector_recovers_planted_direction():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=8)
    value = rng.uniform(0, 1, 400)
    mu = rng.normal(size=(400, 8)) * 0.3 + value[:, None] * direction
    import pandas as pd

    vecs = latent.attribute_vectors(mu, pd.DataFrame({"x": value, "flat": np.ones(400)}))
    assert "flat" not in vecs  # no spread, no vector
    cos = vecs["x"] @ direction / np.linalg.norm(vecs["x"]) / np.linalg.norm(direction)
    assert cos > 0.95
    z = latent.apply_attribute(np.zeros(8), "x", 2.0, vecs)
    assert np.allclose(z, 2 * vecs["x"])


def test_nearest_neighbours_find_copies():
    from vaelib.data.synthetic import generate

    pool = generate(12, seed=0)
    idx, dist = latent.nearest_neighbours([pool[7], pool[2]], pool, k=2, chunk=5)
    assert idx[:, 0].tolist() == [7, 2] and np.allclose(dist[:, 0], 0, atol=1e-3)
    assert (dist[:, 1] > 0.01).all() and (dist[:, 1] >= dist[:, 0]).all()


def test_kl_per_dim_and_pca_plots():
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(60, 6)) * np.array([3, 1, 0.1, 0.1, 0.1, 0.1])
    logvar = np.zeros_like(mu)
    kl = latent.kl_per_dim(mu, logvar)
    assert np.allclose(kl, 0.5 * (mu ** 2).mean(0))
    pca = latent.fit_pca(mu)
    assert pca.explained_variance_ratio_[0] > 0.8
    dirs = latent.pca_directions(pca, 2)
    assert np.isclose(np.linalg.norm(dirs["pc1"]), np.sqrt(pca.explained_variance_[0]))
    styles = np.array(["wobble", "glitch", "reese"] * 20)
    f1 = latent.plot_pca(pca, mu, styles, prior_z=rng.normal(size=(5, 6)), title="style")
    f2 = latent.plot_pca(pca, mu, mu[:, 0], title="attr")
    f3 = latent.plot_variance_and_kl(pca, kl)
    assert len(f1.axes[0].collections) == 4 and len(f2.axes) == 2 and len(f3.axes) == 2


def test_strip_and_neighbour_plots():
    from vaelib.data.synthetic import generate

    perfs = generate(4, seed=2)
    idx, dist = latent.nearest_neighbours(perfs[:2], perfs[2:])
    fig = latent.plot_neighbours(perfs[:2], perfs[2:], idx, dist)
    assert "novelty" in fig.axes[0].get_title()
    assert len(latent.plot_strip(perfs).axes) == 8


@pytest.fixture(scope="module")
def register_run(tmp_path_factory):
    """A tiny model trained (vaelib.training.fit.fit) on a corpus whose only latent factor is the register:
    each window repeats one pitch, low (36-38) or high (72-74), on a random rhythm."""
    from vaelib.config import get_preset
    from vaelib.data.curation import curate
    from vaelib.data.midi_write import write_midi
    from vaelib.training.fit import fit

    tmp = tmp_path_factory.mktemp("register")
    (tmp / "midi").mkdir()
    rng = np.random.default_rng(0)
    for i in range(120):
        on = np.sort(rng.choice(np.arange(0, 128, 8), 8, replace=False))
        pitch = (36 if i % 2 else 72) + rng.integers(0, 3)
        cut = rng.integers(0, 128, 8)
        p = Performance.from_events(np.stack([on, np.full(8, 4), np.full(8, pitch), np.full(8, 100)], 1),
                                    [(t, 0, int(v)) for t, v in zip(range(0, 128, 16), cut)])
        write_midi(p, tmp / "midi" / f"{i:03d}.mid")
    curate(str(tmp / "midi"), tmp / "data", progress=False, max_len=384)
    # heavy word dropout: the decoder cannot read the register off earlier notes, so it must use z. The z-to-input
    # path is on here: the 1-layer tiny decoder learns to read z through it within 400 steps, and through the
    # memory tokens alone (the default since z_to_input stalled `small`) it did not (register moved 0 semitones).
    # The latent pathway learns at the Transformer's rate here: tiny's lr is already 2x small's, and at 3x that the
    # register is encoded so sharply that the step down from a high window stayed high (73.0 -> 72.5 semitones at
    # alpha=-2; up from low moved 37 -> 58), while at 1x both directions moved (37 -> 52, 73 -> 48.5).
    cfg = get_preset("tiny", beta_max=0.0, epochs=80, word_dropout=0.85, z_to_input=True, latent_lr_scale=1.0)
    fit(cfg, tmp / "data", tmp / "run", max_steps=400)
    return tmp


@pytest.mark.slow
def test_register_vector_moves_register(register_run):
    from vaelib.model.checkpoint import load_model
    from vaelib.data.dataset import load_performances, load_split, load_tokenizer
    from vaelib.model.generation import decode

    model, _ = load_model(register_run / "run")
    tk = load_tokenizer(register_run / "data")
    mu, _ = latent.encode_split(model, load_split(register_run / "data", "train"))
    attrs = latent.attributes(load_performances(register_run / "data", "train"))
    vecs = latent.attribute_vectors(mu, attrs)
    reg = attrs["register"].to_numpy()

    def decoded_register(z):
        seqs = decode(model, z, greedy=True, tokenizer=tk)
        return float(np.nanmean(latent.attributes([tk.decode(s) for s in seqs])["register"]))

    low, high = mu[reg < 50][:12], mu[reg > 60][:12]
    up = [decoded_register(latent.apply_attribute(low, "register", a, vecs)) for a in (0.0, 2.0)]
    down = [decoded_register(latent.apply_attribute(high, "register", a, vecs)) for a in (0.0, -2.0)]
    print(f"register moved up {up[0]:.1f} -> {up[1]:.1f}, down {down[0]:.1f} -> {down[1]:.1f}")
    assert up[1] > up[0] + 4 and down[1] < down[0] - 4, (up, down)  # semitones, on average
