"""DDP on CPU: torchrun with 2 gloo processes trains, rank 0 alone writes, and the replicas agree bit for bit."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vaelib.model.checkpoint import list_checkpoints, read_checkpoint
from vaelib.config import get_preset
from vaelib.data.curation import curate
from vaelib.data.dataset import load_split
from vaelib.data.batching import steps_per_epoch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # torchrun + 2 interpreter starts: ~9 s on an idle machine
def test_torchrun_two_cpu_processes_agree_on_weights(tmp_path):
    data = tmp_path / "data"
    curate("synthetic", data, config=get_preset("tiny").data, n_examples=40, progress=False)
    config = get_preset("tiny", latent_dim=8, batch_tokens=800, max_batch_size=2, epochs=1, ckpt_every=3,
                        dropout=0.1)
    config.save(tmp_path / "config.json")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "vaelib.training.fit", "--config", str(tmp_path / "config.json"), "--data", str(data),
           "--run-dir", str(run), "--max-steps", "6", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2 and info["steps"] == 6
    lengths = [len(x) for x in load_split(data, "train")]
    alone = steps_per_epoch(lengths, 800, 2, world_size=1)
    assert info["steps_per_epoch"] == steps_per_epoch(lengths, 800, 2, world_size=2) == -(-alone // 2)  # split over 2 ranks
    for path in list_checkpoints(run):  # at steps 3 and 6
        extra = read_checkpoint(path)["extra"]
        assert extra["world_size"] == 2 and len(extra["weight_digests"]) == 2
        assert extra["weight_digests"][0] == extra["weight_digests"][1], path.name
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 7))  # rank 0 alone logs
