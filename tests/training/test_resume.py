"""Exact resume on CPU: N straight steps == N/2 + resume + N/2, and SIGKILL at 5 random moments + resume."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vaelib.model.checkpoint import latest_checkpoint, list_checkpoints, read_checkpoint
from vaelib.config import get_preset
from vaelib.data.curation import curate
from vaelib.data.dataset import load_split
from vaelib.data.batching import steps_per_epoch
from vaelib.training.fit import fit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    curate("synthetic", out, config=get_preset("tiny").data, n_examples=40, progress=False)
    return out


def fast_config(**kw):
    """tiny, 2 sequences per step (~16 steps per epoch on 32 training windows), with dropout so RNG state matters."""
    return get_preset("tiny", latent_dim=8, batch_tokens=800, max_batch_size=2, dropout=0.1, **kw)


def final_state(run_dir) -> dict:
    _, ckpt = latest_checkpoint(run_dir)
    return ckpt


def assert_bit_identical(a: dict, b: dict):
    assert a["step"] == b["step"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert a["model"][k].numpy().tobytes() == b["model"][k].numpy().tobytes(), k
    for (pa, sa), (pb, sb) in zip(a["optimizer"]["state"].items(), b["optimizer"]["state"].items()):
        assert pa == pb and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_is_bit_identical(data_dir, tmp_path):
    config = fast_config(epochs=2, ckpt_every=1000)  # only the final checkpoints
    fit(config, data_dir, tmp_path / "straight", max_steps=24)  # crosses the epoch boundary at 16
    fit(config, data_dir, tmp_path / "split", max_steps=12)
    assert final_state(tmp_path / "split")["step"] == 12
    fit(config, data_dir, tmp_path / "split", max_steps=24, resume=True)
    assert_bit_identical(final_state(tmp_path / "straight"), final_state(tmp_path / "split"))
    rows = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 25))
    straight = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["losses/loss"] for r in straight if r["split"] == "train"] == \
           [r["losses/loss"] for r in rows if r["split"] == "train"]


def _max_logged_step(path: Path) -> int:
    if not path.exists():
        return 0
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass  # a torn line from the previous kill
    return max(steps, default=0)


@pytest.mark.slow  # 6 interpreter starts: ~17 s on an idle core
def test_sigkill_at_random_moments_then_resume_is_bit_identical(data_dir, tmp_path):
    config = fast_config(epochs=4, ckpt_every=5, keep_ckpts=2)  # ~60-80 steps
    cfg_path = tmp_path / "config.json"
    config.save(cfg_path)
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "vaelib.training.fit", "--config", str(cfg_path), "--data", str(data_dir),
           "--run-dir", str(run), "--resume"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    rng = np.random.default_rng(8)
    # checkpoints exist from step 5 on; stop by 48 so a lagging poller on a loaded machine still kills before the end
    targets = np.sort(rng.choice(np.arange(6, 48), size=5, replace=False))
    killed_at = []
    for target in targets:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while _max_logged_step(run / "metrics.jsonl") < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.03))  # land anywhere in the step: forward, backward, checkpoint write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        killed_at.append(_max_logged_step(run / "metrics.jsonl"))
        for path in list_checkpoints(run):  # never a half-written file under a final name
            read_checkpoint(path)
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    fit(config, data_dir, tmp_path / "straight")
    assert_bit_identical(final_state(tmp_path / "straight"), final_state(run))
    lengths = [len(x) for x in load_split(data_dir, "train")]
    n_steps = config.train.epochs * steps_per_epoch(lengths, config.train.batch_tokens, config.train.max_batch_size)
    assert final_state(run)["step"] == n_steps and len(set(killed_at)) == 5


def test_auto_resume_continues_only_an_interrupted_run_of_the_same_config(data_dir, tmp_path):
    """What notebook 02 (and so `make report`) does: a run killed mid-way continues from its last checkpoint; a
    finished run, or one of another config, trains from scratch."""
    run, config = tmp_path / "run", fast_config(epochs=2, ckpt_every=4)

    def interrupted():  # what a kill leaves: run.json still says "running"
        rec = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**rec, "status": "running"}))

    def resumed_from() -> int:
        return json.loads((run / "run.json").read_text())["resumed_from_step"]

    fit(config, data_dir, run, max_steps=8)
    interrupted()
    fit(config, data_dir, run, max_steps=12, resume="auto")
    assert resumed_from() == 8 and final_state(run)["step"] == 12
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 13))
    fit(config, data_dir, run, max_steps=12, resume="auto")  # finished: from scratch
    assert resumed_from() == 0 and final_state(run)["step"] == 12
    interrupted()
    fit(fast_config(epochs=2, ckpt_every=4, lr=1e-3), data_dir, run, max_steps=4, resume="auto")  # another config
    assert resumed_from() == 0 and final_state(run)["step"] == 4
    # the slot prior's settings (fitting steps, spread, temperature) come after training: a changed value resumes,
    # and the new value is kept
    interrupted()
    more_prior = fast_config(epochs=2, ckpt_every=4, lr=1e-3, prior_steps=7, prior_temperature=0.8,
                             prior_sigma_scale=0.5)
    fit(more_prior, data_dir, run, max_steps=8, resume="auto")
    assert resumed_from() == 4 and final_state(run)["step"] == 8
    train = json.loads((run / "config.json").read_text())["train"]
    assert train["prior_steps"] == 7 and train["prior_temperature"] == 0.8 and train["prior_sigma_scale"] == 0.5
