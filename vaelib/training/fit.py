"""Train one β-VAE: ``fit(config, data_dir, run_dir)`` and the CLI ``python -m vaelib.training.fit``.

    python -m vaelib.training.fit --preset tiny --latent-dim 16 --data DIR --run-dir RUN --max-steps 40 [--resume]
    torchrun --nproc_per_node N -m vaelib.training.fit --preset paper --latent-dim 384 --data DIR --run-dir RUN

Run folder: ``config.json`` (ExperimentConfig), ``checkpoints/step_XXXXXXXX.pt`` (see ``vaelib.model.checkpoint``),
``metrics.jsonl`` (+ ``metrics.csv``) with ``/``-namespaced keys, ``run.json`` (git commit, versions, seed, device,
wall time). Under ``torchrun`` the model is wrapped in DDP (gloo on CPU, nccl on CUDA), each rank takes every
N-th batch of the same plan, and rank 0 alone logs, validates and checkpoints.

Resume is exact on CPU: the schedules are functions of the step, the batch plan is a function of (seed, epoch),
and checkpoints carry the model, optimizer, RNG states and data position, so N straight steps and N/2 + resume
+ N/2 give byte-identical weights.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import platform
import random
import subprocess
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from vaelib.model import checkpoint as ckpt_io
from vaelib.config import ExperimentConfig, get_preset
from vaelib.data.batching import iterate_batches, load_token_split, pad_batch, plan_batches, steps_per_epoch
from vaelib.data.dataset import budget_error, config_for_data
from vaelib.data.tokenizer import Tokenizer
from vaelib.model.objective import ce_by_type, elbo
from vaelib.model.vae import VAE
from vaelib.training.diagnostics import collapse_diagnostics
from vaelib.training.schedules import beta_at, lr_at, total_steps


class NonFiniteLossError(FloatingPointError):
    """Too many consecutive NaN/inf losses; the message names the last good checkpoint."""


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else cuda, then mps, then cpu."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _init_distributed(device: torch.device | None) -> tuple[int, int, torch.device | None]:
    """(rank, world_size, device) under torchrun (WORLD_SIZE > 1 in the environment), else (0, 1, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    use_cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device or torch.device("cpu")


def _run_info(config: ExperimentConfig, device, world: int) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"git_commit": commit, "seed": config.train.seed, "device": str(device), "world_size": world,
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
            "host": platform.node()}


# the VAE's parameters that ``TrainConfig.latent_lr_scale`` applies to (by name prefix)
LATENT_PATHWAY = ("to_mu", "to_logvar", "pool_", "onset_emb", "notes_", "cc_plan.")


def _make_optimizer(model, config: ExperimentConfig, device) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, LayerNorm gains and position tables' 1-D params (as in nanoGPT)."""
    t = config.train
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for scale, names in ((1.0, lambda n: not n.startswith(LATENT_PATHWAY)), (t.latent_lr_scale,
                                                                            lambda n: n.startswith(LATENT_PATHWAY))):
        params = [p for n, p in named if names(n)]
        groups += [{"params": [p for p in params if p.dim() >= 2], "weight_decay": t.weight_decay, "lr_scale": scale},
                   {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "lr_scale": scale}]
    groups = [g for g in groups if g["params"]]
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=t.lr, betas=tuple(t.betas), **fused)


def _weight_digest(model) -> str:
    """sha1 of all parameter bytes: equal digests mean bit-identical replicas."""
    h = hashlib.sha1()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _trim_metrics(path: Path, last_step: int) -> None:
    """Drop rows logged after the checkpoint we resume from (they will be redone), and any torn last line."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step", 0) <= last_step:
            keep.append(line)
    path.write_text("".join(line + "\n" for line in keep))


def _write_csv(jsonl: Path, out: Path) -> None:
    rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    rows = [{k: v for k, v in r.items() if not isinstance(v, list)} for r in rows]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def _run_status(run_dir) -> str:
    """``status`` of ``run_dir/run.json`` ("running" until a run finishes), "" without a readable record."""
    try:
        return str(json.loads((Path(run_dir) / "run.json").read_text()).get("status", ""))
    except (OSError, ValueError):
        return ""


def fit(config: ExperimentConfig, data_dir, run_dir, max_steps: int | None = None, resume: bool | str = False,
        device: str | None = None) -> list[dict]:
    """Train ``config`` on ``data_dir`` (a curated dataset), writing the run folder ``run_dir``.

    ``max_steps`` caps the optimizer step count (absolute, so a resumed run stops at the same step as a straight
    one); the schedules stay defined by ``epochs``. ``resume`` continues from the newest loadable checkpoint
    (its config wins over ``config``); ``resume="auto"`` only continues a run that was interrupted (its run.json
    still says "running") with this very config, and otherwise starts fresh, which is what notebook 02 does so that
    a killed ``make report`` picks up where it stopped. Returns the metrics rows of the run (rank 0; others get []).
    """
    t0 = time.time()
    run_dir = Path(run_dir)
    config = config_for_data(config, data_dir)  # the data's controllers, budget and vocabulary
    rank, world, dev = _init_distributed(pick_device(device) if device else None)
    dev = dev or pick_device()
    found = ckpt_io.latest_checkpoint(run_dir) if resume else None
    ckpt_cfg = ExperimentConfig.from_dict(found[1]["config"]) if found is not None else None
    if ckpt_cfg is not None:  # the slot prior comes after training: its settings are not a reason to start over
        ckpt_cfg = replace(ckpt_cfg, train=replace(ckpt_cfg.train, prior_steps=config.train.prior_steps,
                                                   prior_temperature=config.train.prior_temperature,
                                                   prior_sigma_scale=config.train.prior_sigma_scale))
    if found is not None and resume == "auto" and not (_run_status(run_dir) == "running" and ckpt_cfg == config):
        found = None  # a finished run, or another config's: train from scratch (the stale checkpoints go)
    if found is not None:
        if ckpt_cfg != config:
            warnings.warn("resuming with the checkpoint's config, which differs from the one passed", stacklevel=2)
        config = ckpt_cfg
    elif resume is True:
        warnings.warn(f"--resume: no checkpoint in {run_dir}, starting from scratch", stacklevel=2)
    t = config.train
    torch.manual_seed(t.seed + rank)
    np.random.seed(t.seed + rank)
    random.seed(t.seed + rank)

    train_seqs = load_token_split(data_dir, "train")
    val_seqs = load_token_split(data_dir, "val")
    if not train_seqs:
        raise ValueError(f"{data_dir} has no training sequences")
    longest = max(len(s) for s in train_seqs + val_seqs)
    if longest - 1 > config.model.max_len:
        raise ValueError(budget_error(data_dir, longest, config.model.max_len, config.name))
    tok = Tokenizer(config.data.tokenizer)
    type_of = torch.as_tensor(tok.token_types(np.arange(tok.vocab_size)), dtype=torch.long)
    lengths = np.array([len(s) for s in train_seqs])
    n_per_epoch = steps_per_epoch(lengths, t.batch_tokens, t.max_batch_size, world)
    n_total = total_steps(t.epochs, n_per_epoch)
    cap = n_total if max_steps is None else min(n_total, int(max_steps))
    val_plan = plan_batches([len(s) for s in val_seqs], t.batch_tokens, t.max_batch_size, shuffle=False)
    val_batches = [pad_batch([val_seqs[j] for j in b]) for b in val_plan[:t.eval_batches]]

    model = VAE(config.model).to(dev)
    optimizer = _make_optimizer(model, config, dev)
    step, epoch, start_batch, n_bad = 0, 0, 0, 0
    last_good = None
    if found is not None:
        last_good, state = found
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, epoch, start_batch = state["step"], state["epoch"], state["batch_in_epoch"]
        n_bad = int(state.get("extra", {}).get("n_nonfinite", 0))
        rngs = state["rng"]
        ckpt_io.restore_rng(rngs[rank] if rank < len(rngs) else rngs[0])

    metrics_path = run_dir / "metrics.jsonl"
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.json")
        if found is not None:
            _trim_metrics(metrics_path, step)
        else:  # a fresh run starts a fresh log, and stale checkpoints must not pass for its own
            metrics_path.unlink(missing_ok=True)
            stale = ckpt_io.list_checkpoints(run_dir)
            if stale:
                warnings.warn(f"fresh run in {run_dir}: removing {len(stale)} old checkpoints", stacklevel=2)
                for path in stale:
                    path.unlink()
        info = _run_info(config, dev, world)
        (run_dir / "run.json").write_text(json.dumps({**info, "status": "running", "resumed_from_step": step}, indent=2))
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if t.compile and dev.type == "cuda":
        net = torch.compile(net)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" and t.bf16
                else contextlib.nullcontext())
    log_every = max(1, n_total // 2000)
    # token accuracy and CE by token type (two more passes over the logits, ~3 % of a `small` CPU step) are logged
    # on the first row, every 10th row and the last; the other rows carry the losses, beta, lr and grad norm
    detail_every = 10 * log_every
    cfg_dict = config.to_dict()

    def save(epoch_, batch_):
        rng, extra = [ckpt_io.capture_rng()], {"n_nonfinite": n_bad, "world_size": world}
        if world > 1:  # every rank's RNG stream, and a check that DDP kept the replicas identical
            rng, digests = [None] * world, [None] * world
            dist.all_gather_object(rng, ckpt_io.capture_rng())
            dist.all_gather_object(digests, _weight_digest(model))
            extra["weight_digests"] = digests
            if len(set(digests)) > 1:
                warnings.warn(f"DDP replicas diverged at step {step}: {digests}", RuntimeWarning, stacklevel=2)
        if rank == 0:
            return ckpt_io.save_checkpoint(run_dir, model=model, optimizer=optimizer, step=step, epoch=epoch_,
                                           batch_in_epoch=batch_, config=cfg_dict, rng=rng, extra=extra,
                                           keep=t.keep_ckpts)
        return None

    log = open(metrics_path, "a") if rank == 0 else None
    n_steps = config.model.steps_per_bar * config.model.n_bars

    def hold_of(ids):
        """(B, T - 1) the steps each target CC token's value holds (TrainConfig.cc_hold_weight)."""
        return model.layout.cc_hold(ids, n_steps)[:, 1:]

    def validate(epoch_) -> int:
        """Collapse diagnostics on the validation batches, logged as a ``val`` row (rank 0; own RNG)."""
        if sum(len(b) for b in val_batches) >= 2:  # shuffled-z and MI need two sequences
            diag = collapse_diagnostics(model, val_batches, seed=t.seed)
            log.write(json.dumps({"split": "val", "step": step, "epoch": epoch_,
                                  **{f"val/{k}": v for k, v in diag.items()}}) + "\n")
            log.flush()
        return step

    validated_at = step if found is not None else -1
    bar = tqdm(total=cap, initial=step, desc=f"train {run_dir.name}", disable=rank != 0, leave=False)
    saved_at = step if found is not None else -1
    model.train()
    while epoch < t.epochs and step < cap:
        batches = plan_batches(lengths, t.batch_tokens, t.max_batch_size, seed=t.seed, epoch=epoch,
                               rank=rank, world_size=world)
        for i, ids in iterate_batches(train_seqs, batches, start_batch):
            if step >= cap:
                break
            ids = ids.to(dev, non_blocking=True)
            beta = beta_at(step, n_total, t.beta_max, t.n_cycles, t.ramp_ratio, t.beta_zero_frac)
            lr = lr_at(step, n_total, t.lr, t.warmup_steps, t.min_lr_ratio, t.cooldown_frac)
            for g in optimizer.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            with autocast:
                out = net(ids, word_dropout=t.word_dropout,
                          cc_word_dropout=None if t.cc_word_dropout < 0 else t.cc_word_dropout)
            detail = step + 1 in (log_every, cap) or (step + 1) % detail_every == 0
            parts = elbo(out["logits"], out["targets"], out["mu"], out["logvar"], beta, t.free_bits,
                         with_accuracy=detail, notes_logits=out.get("notes_logits"),
                         notes_targets=out.get("notes_targets"), notes_weight=t.notes_weight,
                         per_token=t.loss_scale == "token", cc_logits=out.get("cc_logits"),
                         cc_targets=out.get("cc_targets"), cc_weight=t.cc_weight,
                         cc_hold=hold_of(ids) if t.cc_hold_weight else None, cc_hold_weight=t.cc_hold_weight,
                         cc_hold_base=t.cc_hold_base)
            bad = torch.tensor(float(not torch.isfinite(parts["loss"])), device=dev)
            if world > 1:
                dist.all_reduce(bad, op=dist.ReduceOp.MAX)  # every rank must skip together, or DDP hangs
            grad_norm = None
            if not bad:
                parts["loss"].backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                bad = torch.tensor(float(not torch.isfinite(grad_norm)), device=dev)  # same on all ranks
            start_batch = i + 1
            if bad:
                optimizer.zero_grad(set_to_none=True)
                n_bad += 1
                warnings.warn(f"non-finite loss or gradient at step {step} (epoch {epoch}, batch {i}); "
                              f"step skipped ({n_bad} in a row)", RuntimeWarning, stacklevel=2)
                if n_bad >= t.max_nonfinite:
                    raise NonFiniteLossError(
                        f"{n_bad} consecutive non-finite losses at step {step}; last good checkpoint: "
                        f"{last_good or 'none (no checkpoint written yet)'}")
                continue
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            n_bad = 0
            step += 1
            bar.update(1)
            if rank == 0 and (step % log_every == 0 or step == cap):
                parts = {k: v.detach() for k, v in parts.items()}
                row = {"split": "train", "step": step, "epoch": epoch, "losses/loss": float(parts["loss"]),
                       "losses/ce": float(parts["ce"]), "losses/kl": float(parts["kl"]),
                       "losses/kl_penalised": float(parts["kl_penalised"]), "losses/beta": beta,
                       "losses/ce_per_token": float(parts["ce_per_token"]), "lr": lr,
                       "grad_norm": float(grad_norm), "tokens": int(parts["n_tokens"]),
                       "time_sec": round(time.time() - t0, 3)}
                if "notes" in parts:
                    row["losses/notes"] = float(parts["notes"])
                if "cc" in parts:
                    row["losses/cc_head"] = float(parts["cc"])
                if detail:
                    row["accuracy"] = float(parts["accuracy"])
                    row.update({f"ce_type/{k}": v for k, v in
                                ce_by_type(out["logits"].detach(), out["targets"], type_of).items()})
                log.write(json.dumps(row) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{row['losses/loss']:.1f}", kl=f"{row['losses/kl']:.1f}", beta=f"{beta:.2f}")
            if start_batch == len(batches):  # epoch done: validate before the checkpoint that closes it
                epoch, start_batch = epoch + 1, 0
                if rank == 0:
                    validated_at = validate(epoch - 1)
            if step % t.ckpt_every == 0:
                last_good = save(epoch, start_batch) or last_good
                saved_at = step
        else:
            if start_batch == len(batches):  # an epoch with nothing left (resumed exactly at its end)
                epoch, start_batch = epoch + 1, 0
    bar.close()
    if saved_at != step:
        last_good = save(epoch, start_batch) or last_good
    history = []
    if rank == 0:
        if validated_at != step:  # a run cut mid-epoch (max_steps) still ends with diagnostics
            validate(epoch)
        log.close()
        _write_csv(metrics_path, run_dir / "metrics.csv")
        prev = json.loads((run_dir / "run.json").read_text())
        (run_dir / "run.json").write_text(json.dumps(
            {**prev, "status": "finished", "steps": step, "total_steps": n_total, "steps_per_epoch": n_per_epoch,
             "wall_time_sec": round(time.time() - t0, 3), "final_checkpoint": str(last_good)}, indent=2))
        history = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if world > 1:
        # rank 0 validates and writes after the last step; a rank that tore the group down meanwhile aborted in
        # gloo's teardown ("terminate called without an active exception") in about half the runs
        dist.barrier()
    return history


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m vaelib.training.fit", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="small", help="config preset: paper, recommended, small, tiny")
    p.add_argument("--config", default=None, help="an ExperimentConfig JSON (e.g. a run's config.json) instead "
                                                   "of the preset; the flags below still override it")
    p.add_argument("--latent-dim", type=int, default=None, help="size of z (required with --preset)")
    p.add_argument("--data", required=True, help="curated dataset folder (vaelib.data.__main__)")
    p.add_argument("--run-dir", required=True, help="output run folder")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps in total")
    p.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint")
    p.add_argument("--seed", type=int, default=None, help="training seed (TrainConfig.seed)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--beta-max", type=float, default=None)
    p.add_argument("--free-bits", type=float, default=None, help="nats per latent dimension")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: auto)")
    a = p.parse_args(argv)
    if a.config is None and a.latent_dim is None:
        p.error("--latent-dim is required with --preset")
    base = ExperimentConfig.load(a.config) if a.config else get_preset(a.preset)
    config = base.with_overrides(latent_dim=a.latent_dim, epochs=a.epochs, beta_max=a.beta_max,
                                 free_bits=a.free_bits)
    if a.seed is not None:  # set on TrainConfig explicitly: with_overrides(seed=) would hit DataConfig.seed first
        config = replace(config, train=replace(config.train, seed=a.seed))
    try:
        history = fit(config, a.data, a.run_dir, max_steps=a.max_steps, resume=a.resume, device=a.device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    last = [r for r in history if r.get("split") == "train"][-1:]
    if last:
        print(json.dumps({k: last[0][k] for k in ("step", "losses/loss", "losses/ce", "losses/kl")}))


if __name__ == "__main__":
    main()
