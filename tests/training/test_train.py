"""Training: one-batch overfit, the CLI as written in the issue, --resume, NaN handling, collapse diagnostics."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vaelib.model.checkpoint import list_checkpoints, read_checkpoint
from vaelib.config import get_preset
from vaelib.data.dataset import load_split
from vaelib.data.batching import pad_batch, plan_batches
from vaelib.training.diagnostics import aggregate_mi, collapse_diagnostics, plot_active_units, plot_kl_histogram, \
    plot_losses, plot_schedules
from vaelib.model.vae import VAE
from vaelib.model.objective import elbo
from vaelib.training.fit import NonFiniteLossError, fit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tiny_data):
    return tiny_data


def fast_config(**kw):
    return get_preset("tiny", latent_dim=8, batch_tokens=800, max_batch_size=2, **kw)


def test_overfit_one_batch_lowers_loss_by_a_large_factor(data_dir):
    torch.manual_seed(0)
    ids = pad_batch([s[:96] for s in load_split(data_dir, "train")[:4]])  # (4, 96): short, so it is fast
    model = VAE(get_preset("tiny", latent_dim=8).model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        out = model(ids)
        parts = elbo(out["logits"], out["targets"], out["mu"], out["logvar"], beta=0.0)
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
        losses.append(float(parts["loss"].detach()))
    assert losses[-1] < losses[0] / 10
    assert float(parts["accuracy"]) > 0.8


def test_batches_respect_the_budget_and_are_deterministic():
    lengths = [50 + (i * 37) % 300 for i in range(200)]
    plan = plan_batches(lengths, 1000, 8, seed=3, epoch=1)
    assert sorted(i for b in plan for i in b) == list(range(200))  # every sequence once
    assert all(len(b) * max(lengths[i] for i in b) <= 1000 and len(b) <= 8 for b in plan)
    assert plan == plan_batches(lengths, 1000, 8, seed=3, epoch=1)
    assert plan != plan_batches(lengths, 1000, 8, seed=3, epoch=2)
    ranks = [plan_batches(lengths, 1000, 8, seed=3, epoch=1, rank=r, world_size=3) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1 and {i for r in ranks for b in r for i in b} == set(range(200))


def test_cli_as_written_then_resume_continues(data_dir, tmp_path):
    run = tmp_path / "RUN"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "vaelib.training.fit", "--preset", "tiny", "--latent-dim", "16", "--data", str(data_dir),
            "--run-dir", str(run)]
    first = subprocess.run(base + ["--max-steps", "4"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    assert {"config.json", "metrics.jsonl", "metrics.csv", "run.json", "checkpoints"} <= {p.name for p in run.iterdir()}
    assert read_checkpoint(list_checkpoints(run)[-1])["step"] == 4
    # the command, plus --resume: it continues from step 4 to the end of the tiny preset's epochs
    second = subprocess.run(base + ["--max-steps", "40", "--resume"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    info = json.loads((run / "run.json").read_text())
    assert info["resumed_from_step"] == 4 and info["status"] == "finished" and info["device"] == "cpu"
    assert {"git_commit", "versions", "seed", "wall_time_sec"} <= set(info)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["split"] == "train"]
    assert steps == list(range(1, info["total_steps"] + 1))  # no gap and no duplicate across the resume
    assert {"losses/ce", "losses/kl", "losses/beta", "lr", "ce_type/cc", "accuracy"} <= set(rows[0])
    # accuracy and CE by type come on the first row, every 10th and each invocation's last (log_every is 1 here;
    # the first invocation stopped at step 4)
    detail = [r["step"] for r in rows if r["split"] == "train" and "accuracy" in r]
    last = info["total_steps"]
    assert detail == sorted({1, 4, last} | set(range(10, last + 1, 10)))
    assert all("ce_type/cc" in r for r in rows if r["split"] == "train" and "accuracy" in r)
    val = [r for r in rows if r["split"] == "val"]
    spe = info["steps_per_epoch"]  # validation closes each epoch, and the run cut at step 4 validated there too
    assert [r["step"] for r in val] == sorted({4} | {spe * (e + 1) for e in range(get_preset("tiny").train.epochs)})
    assert {"val/active_units", "val/mi", "val/usage_gap_shuffled_tok", "val/usage_gap_prior_seq"} <= set(val[0])
    assert len(val[0]["val/kl_per_dim"]) == 16
    for plot in (plot_losses, plot_schedules, plot_kl_histogram, plot_active_units):
        assert len(plot(run).axes) >= 1


def _poison(monkeypatch, bad_calls):
    """Make VAE.forward return NaN logits on the given call numbers (0-based)."""
    real, calls = VAE.forward, {"n": 0}

    def forward(self, *a, **kw):
        out = real(self, *a, **kw)
        if calls["n"] in bad_calls:
            out["logits"] = out["logits"] * float("nan")
        calls["n"] += 1
        return out

    monkeypatch.setattr(VAE, "forward", forward)


def test_nonfinite_loss_skips_the_step(data_dir, tmp_path, monkeypatch):
    _poison(monkeypatch, {2, 3})
    with pytest.warns(RuntimeWarning, match="non-finite loss.*step skipped"):
        history = fit(fast_config(), data_dir, tmp_path / "run", max_steps=6)
    train = [r for r in history if r["split"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 7)) and all(math.isfinite(r["losses/loss"]) for r in train)
    state = read_checkpoint(list_checkpoints(tmp_path / "run")[-1])
    assert state["batch_in_epoch"] == 8  # 6 steps took 8 batches: the two bad ones were consumed, not trained
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_too_many_nonfinite_losses_stop_naming_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    _poison(monkeypatch, set(range(5, 100)))
    with pytest.warns(RuntimeWarning), pytest.raises(NonFiniteLossError, match=r"3 consecutive.*step_00000004\.pt"):
        fit(fast_config(ckpt_every=4, max_nonfinite=3), data_dir, tmp_path / "run", max_steps=20)


def test_collapse_diagnostics_see_an_ignored_latent(data_dir):
    torch.manual_seed(0)
    model = VAE(get_preset("tiny", latent_dim=8).model).eval()
    batches = [pad_batch(load_split(data_dir, "val")[:2]), pad_batch(load_split(data_dir, "test")[:2])]
    with torch.no_grad():  # cut every path from z to the decoder: the decoder now ignores z by construction
        z_paths = ([model.to_memory] + ([model.to_input] if model.to_input is not None else [])
                   + ([model.notes_in] if model.config.plan_memory else [])
                   + ([model.cc_plan.read] if model.config.cc_copy else []))
        for p in (q for m in z_paths for q in m.parameters()):
            p.zero_()
    d = collapse_diagnostics(model, batches)
    assert d["usage_gap_shuffled_tok"] == pytest.approx(0.0, abs=1e-5)
    assert d["usage_gap_prior_seq"] == pytest.approx(0.0, abs=1e-3)
    assert d["nll_mu"] == pytest.approx(d["ce"], rel=1e-5) and d["n_sequences"] == 4
    assert len(d["kl_per_dim"]) == 8 and d["kl"] == pytest.approx(sum(d["kl_per_dim"]), rel=1e-5)
    with torch.no_grad():
        mus = torch.cat([model.encode(b)[0] for b in batches])  # (4, 8)
    assert d["active_units"] == int((mus.var(0, unbiased=False) > 0.01).sum())


def test_mi_estimate_bounds():
    g = torch.Generator().manual_seed(0)
    same = aggregate_mi(torch.zeros(50, 4), torch.zeros(50, 4), g)
    assert same == pytest.approx(0.0, abs=1e-9)  # identical posteriors: z says nothing about x
    far = aggregate_mi(torch.arange(50.0)[:, None].repeat(1, 4) * 10, torch.full((50, 4), -6.0), g)
    assert far == pytest.approx(math.log(50), rel=1e-3)  # separable posteriors: MI hits its log N ceiling


def test_latent_lr_scale_speeds_only_the_latent_pathway():
    from vaelib.training.fit import LATENT_PATHWAY, _make_optimizer
    cfg = get_preset("tiny", latent_lr_scale=3.0)
    model = VAE(cfg.model)
    opt = _make_optimizer(model, cfg, torch.device("cpu"))
    scale = {id(p): g["lr_scale"] for g in opt.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert len(scale) == len(names)  # every parameter in exactly one group
    for n, p in names.items():
        assert scale[id(p)] == (3.0 if n.startswith(LATENT_PATHWAY) else 1.0), n
    assert scale[id(model.to_mu.weight)] == 3.0 and scale[id(model.decoder[0].ff.net[0].weight)] == 1.0


def test_cc_hold_weight_reaches_the_trained_loss_and_not_the_reported_ce(data_dir, tmp_path):
    """The first step of two runs that differ only in cc_hold_weight: same model, batch and sampled z, so the same
    CE; the optimised loss differs, since a CC token then counts by how long its value holds."""
    rows = [[r for r in fit(fast_config(**kw), data_dir, tmp_path / str(i), max_steps=1) if r["split"] == "train"][0]
            for i, kw in enumerate([{}, {"cc_hold_weight": 1.0, "cc_hold_base": 0.0}])]
    assert rows[0]["losses/ce"] == pytest.approx(rows[1]["losses/ce"], rel=1e-6)
    assert abs(rows[0]["losses/loss"] - rows[1]["losses/loss"]) > 1e-3
