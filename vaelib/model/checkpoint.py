"""Checkpoints: atomic writes, rotation, safe loading (``weights_only=True``), and model loading from a run folder.

A checkpoint is a dict of tensors and plain Python types only (so ``torch.load(weights_only=True)`` accepts it and
a crafted pickle cannot run code on load):
  model, optimizer   state dicts
  step               optimizer steps done (the LR and β schedules are pure functions of it)
  epoch, batch_in_epoch  data-order position: the next batch to train is ``plan(epoch)[batch_in_epoch]``
  rng                torch CPU (and CUDA) states as uint8 tensors, numpy's MT19937 state, python's state
  config             ``ExperimentConfig.to_dict()``
  extra              small JSON-able dict (e.g. the non-finite counter)
Files are ``<run>/checkpoints/step_XXXXXXXX.pt``; each is written to a temporary file, flushed and fsynced, renamed
over the final name with ``os.replace`` and the directory fsynced, so a crash never leaves a half-written
checkpoint under a final name.
"""
from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from vaelib.atomic import atomic_write
from vaelib.config import ExperimentConfig
from vaelib.model.vae import VAE

CKPT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{8})\.pt$")
REQUIRED = ("model", "optimizer", "step", "epoch", "batch_in_epoch", "rng", "config")


class CheckpointError(RuntimeError):
    """No loadable checkpoint, or one that is not a vaelib checkpoint."""


def ckpt_path(run_dir, step: int) -> Path:
    return Path(run_dir) / CKPT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(run_dir) -> list[Path]:
    """Checkpoint files of a run, oldest first (by step; temporary files are ignored)."""
    d = Path(run_dir) / CKPT_DIR
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if _NAME.match(p.name)), key=lambda p: p.name)


def atomic_save(obj, path) -> Path:
    """torch.save to ``path`` atomically (``vaelib.atomic``: temp file, fsync, os.replace, fsync folder)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def capture_rng() -> dict:
    """All RNG states as weights_only-loadable types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir, *, model, optimizer, step: int, epoch: int, batch_in_epoch: int, config: dict,
                    rng: dict | None = None, extra: dict | None = None, keep: int = 3) -> Path:
    """Write ``checkpoints/step_XXXXXXXX.pt`` atomically and delete all but the newest ``keep``."""
    obj = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": int(step),
           "epoch": int(epoch), "batch_in_epoch": int(batch_in_epoch), "rng": rng or capture_rng(),
           "config": config, "extra": extra or {}}
    path = atomic_save(obj, ckpt_path(run_dir, step))
    for old in list_checkpoints(run_dir)[:-max(1, keep)]:
        old.unlink(missing_ok=True)
    for stale in path.parent.glob(".step_*.pt.tmp*"):  # left by a writer killed mid-save (one writer per run)
        stale.unlink(missing_ok=True)
    return path


def read_checkpoint(path, map_location="cpu") -> dict:
    """Load one checkpoint with ``weights_only=True``; raises CheckpointError if unreadable or incomplete."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, random bytes, or a pickle asking for a forbidden global
        raise CheckpointError(f"cannot load {path}: {type(e).__name__}: {e}") from e
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED):
        raise CheckpointError(f"{path} is not a vaelib checkpoint")
    return ckpt


def latest_checkpoint(run_dir, map_location="cpu") -> tuple[Path, dict] | None:
    """The newest checkpoint that loads, falling back to older ones with a warning; None if the run has none."""
    paths = list_checkpoints(run_dir)
    for path in reversed(paths):
        try:
            return path, read_checkpoint(path, map_location)
        except CheckpointError as e:
            warnings.warn(f"skipping corrupt checkpoint: {e}; falling back to the previous one", RuntimeWarning,
                          stacklevel=2)
    if paths:
        raise CheckpointError(f"no loadable checkpoint in {Path(run_dir) / CKPT_DIR}")
    return None


def load_model(run_dir, device="cpu"):
    """The newest loadable checkpoint of ``run_dir`` -> (VAE in eval mode on ``device``, ExperimentConfig). The model's
    ``checkpoint_path`` is the file it was loaded from (an older one where the newest is corrupt)."""

    found = latest_checkpoint(run_dir, map_location=device)
    if found is None:
        raise CheckpointError(f"no checkpoint in {Path(run_dir) / CKPT_DIR}")
    path, ckpt = found
    config = ExperimentConfig.from_dict(ckpt["config"])
    model = VAE(config.model)
    model.load_state_dict(ckpt["model"])
    model.checkpoint_path = path
    return model.to(device).eval(), config
