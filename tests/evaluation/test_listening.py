"""Listening pack blinding and the ratings analysis (on SIMULATED ratings)."""
import csv

import numpy as np
import pandas as pd
import soundfile as sf

from vaelib.evaluation.listening import (REFERENCE, SCALES, analyse, build_pack, holm, load_ratings, simulate_ratings,
                              compare_conditions)
from vaelib.data.synthetic import generate


def make_pack(tmp_path, seed=0):
    perfs = generate(6, seed=1)
    for p in perfs:
        p.tempo_bpm = 170.0  # short clips keep rendering fast
    clips = {"z128": perfs[:2], "z512": perfs[2:4], REFERENCE: perfs[4:]}
    return build_pack(clips, tmp_path / "listening", seed=seed), clips


def test_pack_is_blinded(tmp_path):
    paths, clips = make_pack(tmp_path)
    pack_files = sorted(p.name for p in paths["pack"].iterdir())
    names = ("z128", "z512", "128", "512", "reference", "synthetic", "wobble", "glitch", "reese")
    assert not any(n in f.lower() for f in pack_files for n in names)
    sheet = pd.read_csv(paths["sheet"], dtype={"clip_id": str})
    assert list(sheet.columns[:3]) == ["order", "clip_id", "file"] and set(SCALES) <= set(sheet.columns)
    assert not any(n in paths["sheet"].read_text().lower() for n in names)
    # every clip is there once, as 44.1 kHz audio, and the key is outside the pack
    assert sorted(sheet.file) == sorted(f for f in pack_files if f.endswith(".wav"))
    assert all(sf.info(str(paths["pack"] / f)).samplerate == 44100 for f in sheet.file)
    assert paths["key"].parent != paths["pack"] and not paths["key"].is_relative_to(paths["pack"])
    key = pd.read_csv(paths["key"], dtype={"clip_id": str}).set_index("clip_id")
    assert sorted(key.condition) == sorted(c for c, ps in clips.items() for _ in ps)
    # the sheet's order is not grouped by condition: over a few seeds, conditions interleave
    orders = []
    for s in range(3):
        p, _ = make_pack(tmp_path / f"s{s}", seed=s + 10)
        sh = pd.read_csv(p["sheet"], dtype={"clip_id": str})
        k = pd.read_csv(p["key"], dtype={"clip_id": str}).set_index("clip_id")
        orders.append(tuple(k.loc[sh.clip_id, "condition"]))
    assert len(set(orders)) > 1
    assert any(o != tuple(sorted(o)) for o in orders)


def test_simulated_ratings_are_labelled_and_analysed(tmp_path):
    paths, _ = make_pack(tmp_path)
    sim = simulate_ratings(paths["key"], tmp_path / "returned", n_raters=30, seed=0,
                           effects={REFERENCE: 1.5, "z128": 0.0, "z512": 0.0})
    assert "SIMULATED" in sim.name
    with open(sim) as f:
        rows = list(csv.DictReader(f))
    assert all(r["simulated"] == "True" for r in rows)
    res = analyse(sim, paths["key"], tmp_path / "analysis")
    assert res["simulated"]
    assert all("SIMULATED" in p.name for p in (tmp_path / "analysis").iterdir())
    assert res["summary"].attrs["title"].startswith("SIMULATED")
    assert res["figure"]._suptitle.get_text().startswith("SIMULATED")
    assert all(ax.get_title().startswith("SIMULATED") for ax in res["figure"].axes)
    summ = res["summary"].set_index(["scale", "condition"])
    for s in SCALES:  # the planted effect is found, and the CI brackets the mean
        assert summ.loc[(s, REFERENCE), "mean"] > summ.loc[(s, "z512"), "mean"] + 0.8
        assert (summ.ci_low < summ["mean"]).all() and (summ["mean"] < summ.ci_high).all()
    kw, pw = res["kruskal"], res["pairwise"]
    assert (kw.p < 1e-3).all()
    same = pw[(pw.a == "z128") & (pw.b == "z512")]
    assert (same.p_holm > 0.01).all()  # no planted difference between the models
    assert (pw[pw.b == REFERENCE].p_holm < 1e-3).all()


def test_real_sheets_without_rater_column_are_named_by_file(tmp_path):
    paths, _ = make_pack(tmp_path)
    sheet = pd.read_csv(paths["sheet"], dtype={"clip_id": str})
    for name, value in (("alice", 4), ("bob", 2)):
        filled = sheet.copy()
        for s in SCALES:
            filled[s] = value
        filled.to_csv(tmp_path / f"{name}.csv", index=False)
    df = load_ratings([tmp_path / "alice.csv", tmp_path / "bob.csv"], paths["key"])
    assert set(df.rater) == {"alice", "bob"} and not df.simulated.any()
    assert len(df) == 2 * len(sheet) * len(SCALES)
    kw, _ = compare_conditions(df)
    assert "SIMULATED" not in kw.attrs["title"]


def test_holm_matches_definition():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    # sorted 0.01, 0.03, 0.04, 0.5 -> x4, x3, x2, x1 with running max
    assert np.allclose(holm(p), [0.04, 0.09, 0.09, 0.5])
