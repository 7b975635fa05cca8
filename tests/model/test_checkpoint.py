"""Atomic checkpoint writes, rotation, corrupt-latest fallback, safe loading, load_model."""
import os
import warnings

import pytest
import torch

from vaelib.model import checkpoint as ck
from vaelib.config import ExperimentConfig, get_preset
from vaelib.model.vae import VAE
from vaelib.training.fit import fit


@pytest.fixture(scope="module")
def data_dir(tiny_data):
    return tiny_data


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    """A finished tiny run with checkpoints at steps 4, 8, 12 (keep 3)."""
    run = tmp_path_factory.mktemp("run")
    config = get_preset("tiny", latent_dim=8, batch_tokens=800, max_batch_size=2, ckpt_every=4, keep_ckpts=3)
    fit(config, data_dir, run, max_steps=12)
    return run


def test_rotation_and_contents(run_dir):
    names = [p.name for p in ck.list_checkpoints(run_dir)]
    assert names == ["step_00000004.pt", "step_00000008.pt", "step_00000012.pt"]
    state = ck.read_checkpoint(ck.list_checkpoints(run_dir)[-1])
    assert state["step"] == 12 and set(ck.REQUIRED) <= set(state)
    assert ExperimentConfig.from_dict(state["config"]) == ExperimentConfig.load(run_dir / "config.json")
    assert not [p for p in (run_dir / "checkpoints").iterdir() if ".tmp" in p.name]


def test_atomic_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "step_00000001.pt"

    def crash(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        ck.atomic_save({"x": 1}, target)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_load_model_gives_eval_model_and_config(run_dir):
    model, config = ck.load_model(run_dir)
    assert isinstance(model, VAE) and not model.training
    assert config == ExperimentConfig.load(run_dir / "config.json")
    state = ck.read_checkpoint(ck.list_checkpoints(run_dir)[-1])
    assert all(torch.equal(v, state["model"][k]) for k, v in model.state_dict().items())


def test_corrupt_latest_falls_back_with_a_warning_and_resume_continues(run_dir, data_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").mkdir()
    for p in ck.list_checkpoints(run_dir):
        (run / "checkpoints" / p.name).write_bytes(p.read_bytes())
    (run / "config.json").write_bytes((run_dir / "config.json").read_bytes())
    latest = ck.list_checkpoints(run)[-1]
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # torn write
    with pytest.warns(RuntimeWarning, match="corrupt checkpoint.*step_00000012"):
        path, state = ck.latest_checkpoint(run)
    assert path.name == "step_00000008.pt" and state["step"] == 8
    config = ExperimentConfig.load(run / "config.json")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        fit(config, data_dir, run, max_steps=14, resume=True)
    assert ck.read_checkpoint(ck.list_checkpoints(run)[-1])["step"] == 14


class Exploit:
    """Unpickling this runs ``os.system``: the classic malicious checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(run_dir, tmp_path):
    marker = tmp_path / "pwned"
    run = tmp_path / "evil"
    good = ck.list_checkpoints(run_dir)[0]
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / good.name).write_bytes(good.read_bytes())
    evil = run / "checkpoints" / "step_00000099.pt"
    state = ck.read_checkpoint(good)
    state["extra"] = {"payload": Exploit(marker)}
    with open(evil, "wb") as f:
        torch.save(state, f)
    with pytest.raises(ck.CheckpointError, match="cannot load"):
        ck.read_checkpoint(evil)
    with pytest.warns(RuntimeWarning, match="step_00000099"):
        model, _ = ck.load_model(run)  # refuses the exploit, falls back to the good one
    assert not marker.exists()
    evil.rename(run / "checkpoints" / "step_00000100.pt")
    (run / "checkpoints" / good.name).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ck.CheckpointError, match="no loadable checkpoint"):
            ck.load_model(run)
    assert not marker.exists()
    torch.load(run / "checkpoints" / "step_00000100.pt", weights_only=False)  # the payload is real: unsafe load runs it
    assert marker.exists()
