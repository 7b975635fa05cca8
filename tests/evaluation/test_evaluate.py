"""End-to-end evaluation of a tiny trained run, Table 1 from it, and the evaluation helpers."""
import importlib.util
import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from vaelib.evaluation.evaluate import evaluate_results, evaluate_run, is_fresh, main, partners
from vaelib.runs import find_runs
from vaelib.evaluation.metrics import ratio_summary

LANDED = all(importlib.util.find_spec(m) is not None
             for m in ("vaelib.data.curation", "vaelib.training.fit", "vaelib.model.generation", "vaelib.evaluation.mrstft", "vaelib.data.synthetic"))
HEADLINE = ("recon_ce", "kl", "cc_me", "mr_stft", "note_accuracy", "active_units", "usage_gap")


def test_partners_are_other_examples_from_other_sources():
    src = ["a", "a", "b", "b", "c", "c"]
    p = partners(src, seed=3)
    assert all(src[j] != src[i] for i, j in enumerate(p))
    assert np.array_equal(p, partners(src, seed=3))
    one_source = partners(["a"] * 4, seed=0)
    assert all(j != i for i, j in enumerate(one_source))


def test_ratio_summary_is_ratio_of_sums():
    s = ratio_summary([10.0, 30.0, 20.0], [10, 10, 20], seed=0)
    assert s["value"] == pytest.approx(60 / 40)
    assert s["ci95"][0] <= s["value"] <= s["ci95"][1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    if not LANDED:
        pytest.skip("curation/train/generate/mrstft/synthetic not all landed yet")
    from vaelib.config import get_preset
    from vaelib.data.curation import curate
    from vaelib.training.fit import fit

    root = tmp_path_factory.mktemp("eval")
    cfg = get_preset("tiny")
    curate("synthetic", root / "data", config=cfg.data, n_examples=60, progress=False)
    fit(cfg, root / "data", root / "z16", max_steps=20)
    return root


@pytest.mark.slow
def test_evaluate_run_end_to_end(tiny_run):
    out = evaluate_run(tiny_run / "z16", tiny_run / "data", limit=16)
    saved = json.loads((tiny_run / "z16" / "metrics.json").read_text())
    for k in HEADLINE:
        lo, hi = saved[k]["ci95"]
        assert lo - 1e-9 <= saved[k]["value"] <= hi + 1e-9, k
    assert saved["run"]["n_examples"] == out["run"]["n_examples"] >= 2
    rows = pd.read_csv(tiny_run / "z16" / "eval.csv")
    assert len(rows) == saved["run"]["n_examples"]
    # the headline cells are the means / ratios of the per-example rows
    assert saved["cc_me"]["value"] == pytest.approx(rows["cc_me"].mean())
    assert saved["note_accuracy"]["value"] == pytest.approx(rows["note_f1"].mean())
    assert saved["recon_ce"]["value"] == pytest.approx(
        (rows["ce_nats_per_token"] * rows["n_tokens"]).sum() / rows["n_tokens"].sum())
    assert ((rows["cc_me"] >= 0) & (rows["cc_me"] <= 1)).all()
    assert (rows["partner"] != rows["example"]).all()
    assert saved["kl_bits"]["value"] == pytest.approx(saved["kl"]["value"] / math.log(2))
    assert len(saved["kl_per_dim"]) == 16 and sum(saved["kl_per_dim"]) == pytest.approx(saved["kl"]["value"])
    assert saved["mr_stft_noise_floor"] == pytest.approx(0.0, abs=1e-6)
    assert 0 < saved["recon_ce"]["value"] < math.log(1603) + 1
    assert saved["collapsed"] == (saved["usage_gap"]["value"] < saved["collapse_threshold_nats_per_token"])
    for k in ("baseline_cc_me", "baseline_note_accuracy", "baseline_mr_stft"):
        assert np.isfinite(saved[k]["value"])
    from vaelib.data.dataset import load_split, load_tokenizer
    from vaelib.evaluation.metrics import is_valid

    tk = load_tokenizer(tiny_run / "data")
    assert all(is_valid(s, tk) for s in load_split(tiny_run / "data", "train"))  # real encodings are well formed
    prior = saved["prior"]
    assert 0 <= prior["validity_rate"] <= 1 and set(prior["overlapping_area"]) >= {"pitch", "cc_slope"}
    assert 0 <= prior["novelty"]["value"] <= 1
    for k, v in prior["muspy"].items():  # each per-piece mean with its bootstrap CI over the draws
        lo, hi = prior["muspy_ci95"][k]
        assert np.isnan(v) or lo - 1e-9 <= v <= hi + 1e-9, k
    # what z carries: own z and another window's, CE by type = "which event" + "which value"
    own, other = saved["what_z_carries"]["own_z"], saved["what_z_carries"]["other_z"]
    assert own["ce"] == pytest.approx(saved["recon_ce"]["value"])
    assert own["ce_by_type"] == pytest.approx(saved["ce_by_type"])
    for w in (own, other):
        for t, ce in w["ce_by_type"].items():
            assert w["ce_event_by_type"][t] >= -1e-6 and w["ce_value_by_type"][t] >= -1e-6
            assert w["ce_event_by_type"][t] + w["ce_value_by_type"][t] == pytest.approx(ce)
        assert 0 <= w["note_start_accuracy"] <= 1 and 0 <= w["pitch_accuracy"] <= 1
    assert saved["pitch_accuracy_gain"]["value"] == pytest.approx(own["pitch_accuracy"] - other["pitch_accuracy"])
    from vaelib.evaluation.frames import what_z_frame

    frame = what_z_frame({"z16": saved})
    assert list(frame.index) == [("z16", "own z"), ("z16", "other z")]
    assert frame.loc[("z16", "own z"), "pitch acc."] == pytest.approx(own["pitch_accuracy"])
    # both CC value rules decode the same latents, scored the same way; the headline is the window rule's
    assert saved["decoding"] == {"rule": "greedy", "cc_value": "window"}
    window, mode = saved["by_cc_value"]["window"], saved["by_cc_value"]["mode"]
    assert window["cc_me"] == saved["cc_me"] and window["baseline_cc_me"] == saved["baseline_cc_me"]
    assert window["note_accuracy"] == saved["note_accuracy"]
    assert window["cc_me_ratio"] == pytest.approx(saved["cc_me"]["value"] / saved["baseline_cc_me"]["value"])
    assert window["reference_cc_depth"] == mode["reference_cc_depth"] > 0
    assert window["reference_cc_motion"] == mode["reference_cc_motion"] > 0
    for r in (window, mode):
        assert 0 <= r["cc_me"]["value"] <= 1 and 0 <= r["cc_depth"] <= 0.5 and r["cc_motion"] >= 0
    from vaelib.evaluation.frames import decoding_frame

    dec = decoding_frame({"z16": saved})
    assert list(dec.index) == [("z16", "window"), ("z16", "mode")] and list(dec["headline"]) == [True, False]
    # the slot prior's samples (the tiny preset fits it for its own prior_steps), scored like the others
    learned = saved["prior_learned"]
    assert learned["fit"] == {"steps": 100, "n_mix": 8, "temperature": 1.0, "sigma_scale": 1.0,
                              "early_stopped_on": "val"}
    assert learned["n_samples"] == prior["n_samples"] and set(learned["muspy"]) == set(prior["muspy"])
    # the CLI writes the same file (deterministic: same seed, same checkpoint)
    main(["--run-dir", str(tiny_run / "z16"), "--data", str(tiny_run / "data"), "--limit", "16"])
    again = json.loads((tiny_run / "z16" / "metrics.json").read_text())
    assert again["cc_me"] == saved["cc_me"] and again["recon_ce"] == saved["recon_ce"]
    # fresh metrics (newer than the checkpoint, same limit) are read back, a different limit is stale
    assert is_fresh(tiny_run / "z16", 16) and not is_fresh(tiny_run / "z16", 8)
    stamp = (tiny_run / "z16" / "metrics.json").stat().st_mtime_ns
    assert evaluate_results(tiny_run, [16], tiny_run / "data", limit=16)["z16"]["cc_me"] == saved["cc_me"]
    assert (tiny_run / "z16" / "metrics.json").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_runs_evaluated_in_worker_processes_match_one_at_a_time(tiny_run, tmp_path):
    if not (tiny_run / "z16" / "metrics.json").exists():
        evaluate_run(tiny_run / "z16", tiny_run / "data", limit=16)
    one = json.loads((tiny_run / "z16" / "metrics.json").read_text())
    for name in ("z16_s0", "z16_s1"):  # two stale copies of the same model
        shutil.copytree(tiny_run / "z16", tmp_path / name)
        (tmp_path / name / "metrics.json").unlink()
    both = evaluate_results(tmp_path, [16], tiny_run / "data", limit=16, n_jobs=2)
    assert sorted(both) == ["z16_s0", "z16_s1"]
    for name, m in both.items():
        assert (tmp_path / name / "metrics.json").exists() and m["run"]["run_dir"] == name  # no machine path
        for k in HEADLINE:  # other thread counts may reorder float sums, nothing more
            assert m[k]["value"] == pytest.approx(one[k]["value"], rel=1e-5, abs=1e-9), (name, k)


@pytest.mark.slow
def test_table1_from_runs_with_seeds(tiny_run):
    from vaelib.evaluation.frames import prior_frame, runs_frame
    from vaelib.evaluation.table import build_table1

    if not (tiny_run / "z16" / "metrics.json").exists():
        evaluate_run(tiny_run / "z16", tiny_run / "data", limit=16)
    res = tiny_run / "results"
    for name in ("z16_s0", "z16_s1", "z8"):  # two seeds of one size (same model) and a second size
        shutil.copytree(tiny_run / "z16", res / name)
    assert sorted(find_runs(res)) == [8, 16] and len(find_runs(res)[16]) == 2
    assert list(find_runs(res, "[16]")) == [16]
    df = build_table1(res, [8, 16], tiny_run / "table")
    assert list(df["latent_dim"]) == [8, 16] and list(df["n_seeds"]) == [1, 2]
    one = json.loads((tiny_run / "z16" / "metrics.json").read_text())
    # identical seeds: the aggregate equals the single run, and the seed spread is 0
    assert df.loc[1, "cc_me"] == pytest.approx(one["cc_me"]["value"])
    assert df.loc[1, "cc_me_seed_sd"] == pytest.approx(0.0)
    assert df.loc[0, "kl"] == pytest.approx(one["kl"]["value"])
    assert list(df["collapsed"]) == [one["collapsed"]] * 2
    paired = df.attrs["paired"]
    assert (paired["mean_diff"] == 0).all() and (paired["p_wilcoxon"] == 1).all()
    for f in ("table1.csv", "table1.md", "table1.tex", "table1_paired.csv", "figures/reconstruction.png",
              "figures/latent.png"):
        assert (tiny_run / "table" / f).stat().st_size > 0, f
    md = (tiny_run / "table" / "table1.md").read_text()
    assert "CC-ME" in md and "MR-STFT" in md and ("collapsed" in md) == one["collapsed"]
    assert "the likeliest run of 5 neighbouring values" in md and list(df["cc_value"]) == ["window", "window"]
    assert runs_frame({"z16": one}).loc["z16", "cc_me"] == one["cc_me"]["value"]
    prior = prior_frame({"z16": one})
    assert list(prior.index) == ["z16", "z16 (fitted prior)", "z16 (learned prior)", "test set"]
    assert prior.loc["z16", "validity_rate"] == one["prior"]["validity_rate"]
    lo, hi = one["prior_learned"]["muspy_ci95"]["groove_consistency"]
    assert prior.loc["z16 (learned prior)", "groove_consistency 95% CI"] == f"[{lo:.3f}, {hi:.3f}]"
    # the fitted prior's samples are other draws of z, scored the same way
    fitted = one["prior_fitted"]
    assert fitted["n_samples"] == one["prior"]["n_samples"] and set(fitted["muspy"]) == set(one["prior"]["muspy"])
    assert prior.loc["z16 (fitted prior)", "validity_rate"] == fitted["validity_rate"]


@pytest.mark.slow
def test_table1_shows_a_paper_control_as_its_own_row(tiny_run):
    from vaelib.config import ExperimentConfig, get_preset
    from vaelib.runs import objective_label, parse_run_name
    from vaelib.evaluation.table import build_table1

    if not (tiny_run / "z16" / "metrics.json").exists():
        evaluate_run(tiny_run / "z16", tiny_run / "data", limit=16)
    res = tiny_run / "with_control"
    for name in ("z16_s0", "z16_s1", "z16_paper"):
        shutil.copytree(tiny_run / "z16", res / name)
    literal = get_preset("tiny-paper", latent_dim=16)
    literal.save(res / "z16_paper" / "config.json")  # the control's own config: the paper's literal objective
    assert parse_run_name("z16_paper") == (16, None, "paper") and parse_run_name("z16_s1") == (16, 1, "")
    assert parse_run_name("z16_paperx") is None
    assert [p.name for _, p in find_runs(res)[16]] == ["z16_s0", "z16_s1"]  # never one of the seeds
    assert [p.name for _, p in find_runs(res, variant="paper")[16]] == ["z16_paper"]
    assert len(find_runs(res, variant=None)[16]) == 3
    df = build_table1(res, [16], tiny_run / "table_control")
    assert list(df["control"]) == [False, True] and list(df["latent_dim"]) == [16, 16]
    assert list(df["n_seeds"]) == [2, 1] and df.loc[1, "runs"] == "z16_paper"
    main_obj = objective_label(ExperimentConfig.load(tiny_run / "z16" / "config.json").to_dict()["train"])
    assert df.loc[0, "objective"] == main_obj and main_obj.startswith("recommended")
    control_obj = objective_label(literal.to_dict()["train"])
    assert df.loc[1, "objective"] == control_obj == "paper (β_max=8, no defences; 10 epochs)"
    one = json.loads((tiny_run / "z16" / "metrics.json").read_text())
    assert df.loc[1, "collapsed"] == one["collapsed"] and df.loc[1, "cc_me"] == pytest.approx(one["cc_me"]["value"])
    csv = pd.read_csv(tiny_run / "table_control" / "table1.csv")
    assert list(csv["control"]) == [False, True]
    md = (tiny_run / "table_control" / "table1.md").read_text()
    assert "paper, 10 ep.: paper (β_max=8, no defences; 10 epochs) (control row)" in md
    verdicts = pd.read_csv(tiny_run / "table_control" / "table1_runs.csv")
    assert list(verdicts["run"]) == ["z16_s0", "z16_s1", "z16_paper"]
    assert all(v.startswith("collapsed" if c else "uses z") for v, c in zip(verdicts["verdict"], verdicts["collapsed"]))


@pytest.mark.slow
def test_the_evaluations_slot_prior_is_kept_for_the_reports_audio(tiny_run, tmp_path):
    from vaelib.evaluation.listening import build_pack_from_runs, export_run_audio
    from vaelib.model.checkpoint import list_checkpoints
    from vaelib.model.latent_prior import PRIOR_FILE, load_slot_prior
    from vaelib.pipeline.report_index import render_audio

    if not (tiny_run / "z16" / "metrics.json").exists():
        evaluate_run(tiny_run / "z16", tiny_run / "data", limit=16)
    run = tmp_path / "z16"
    shutil.copytree(tiny_run / "z16", run)
    newest = list_checkpoints(run)[-1]
    prior = load_slot_prior(run, newest)
    assert prior is not None and prior.latent_dim == 16 and prior.n_mix == 8
    other = shutil.copy2(newest, newest.with_name("other.pt"))
    assert load_slot_prior(run, other) is None  # fitted to another checkpoint: not used
    os.unlink(other)
    os.utime(newest, ns=(newest.stat().st_atime_ns, newest.stat().st_mtime_ns + 10 ** 9))
    assert load_slot_prior(run, newest) is None  # a newer file of the same name (the run was trained again)
    os.utime(newest, ns=(newest.stat().st_atime_ns, newest.stat().st_mtime_ns - 10 ** 9))
    a, b = prior.sample(3, seed=4), prior.sample(3, seed=4)
    assert a.shape == (3, 16) and torch.equal(a, b)
    man = export_run_audio(run, tiny_run / "data", n_pairs=1, n_prior=2)
    assert [p["file"] for p in man["learned_prior"]] == ["audio/learned_00.ogg", "audio/learned_01.ogg"]
    assert all((run / p["file"]).stat().st_size > 0 for p in man["learned_prior"])
    page = render_audio(tmp_path, {"z16": ["z16/audio/audio.json"]})
    assert "learned slot prior" in page and page.count("<audio") == 2 + 2 + 2 and "<em>missing</em>" not in page
    assert man["learned_prior_sigma_scale"] == 1.0 and "of each window's spread" not in page  # the whole spread
    man = {**man, "learned_prior_sigma_scale": 0.5}  # as `small` fits it: the page says so
    (run / "audio" / "audio.json").write_text(json.dumps(man))
    assert "fitted to the training posteriors, at 0.5 of each window's spread" in render_audio(
        tmp_path, {"z16": ["z16/audio/audio.json"]})
    # the listening kit's conditions: z from N(0, I) and from this slot prior, each its own condition
    paths = build_pack_from_runs({"z16": run}, tiny_run / "data", tmp_path / "kit", n_per_model=2, n_references=2,
                                 priors=["normal", "learned"])
    key = pd.read_csv(paths["key"], dtype={"clip_id": str})
    assert key.condition.value_counts().to_dict() == {"z16": 2, "z16_learned": 2, "reference": 2}
    paths = build_pack_from_runs({"z16": run}, tiny_run / "data", tmp_path / "kit1", n_per_model=2, n_references=2)
    key = pd.read_csv(paths["key"], dtype={"clip_id": str})  # by default N(0, I) only, the paper's condition
    assert key.condition.value_counts().to_dict() == {"z16": 2, "reference": 2}
    with pytest.raises(ValueError, match="priors"):
        build_pack_from_runs({"z16": run}, tiny_run / "data", tmp_path / "kit2", priors=["fitted"])
    # evaluated again without a slot prior: the old one goes, and the audio has N(0, I) samples only
    m = evaluate_run(run, tiny_run / "data", limit=16, prior_steps=0)
    assert "prior_learned" not in m and not (run / PRIOR_FILE).exists()
    assert "learned_prior" not in export_run_audio(run, tiny_run / "data", n_pairs=1, n_prior=2)
    with pytest.raises(FileNotFoundError, match="no slot prior"):
        build_pack_from_runs({"z16": run}, tiny_run / "data", tmp_path / "kit3", priors=["learned"])
    # metrics written before the CC value rules were scored are stale
    saved = json.loads((run / "metrics.json").read_text())
    assert is_fresh(run, 16)
    del saved["by_cc_value"]
    (run / "metrics.json").write_text(json.dumps(saved))
    assert not is_fresh(run, 16)
