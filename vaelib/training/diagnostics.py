"""Posterior-collapse diagnostics on held-out batches, and the training plots read from ``metrics.jsonl``.

With β_max = 8 collapse is the optimum for an autoregressive decoder (Alemi et al. 2018), and free bits pin every
dimension's KL at the threshold whether or not the decoder reads z, so KL and active units alone cannot tell a
used latent from an ignored one. The decisive number is the **latent-usage gap**: how much worse the decoder
predicts x from someone else's z (or from a prior sample) than from its own μ(x). A gap of 0 means z is ignored.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from vaelib.model.objective import kl_per_dim, token_ce

ACTIVE_THRESHOLD = 0.01  # Burda et al. 2016: unit j is active if Var_x E_q[z_j] > 0.01


def _nll(model, z, ids) -> torch.Tensor:
    """Summed CE per sequence (B,) in nats, teacher forced from z."""
    return token_ce(model.decode(z, ids[:, :-1]), ids[:, 1:]).sum(1)


def aggregate_mi(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> float:
    """MI(x; z) under q, Monte-Carlo (Hoffman & Johnson 2016; as in He et al. 2019), nats.

    MI = E_x E_{q(z|x)}[log q(z|x) − log q(z)], with the aggregate posterior q(z) approximated by the mixture of
    the N held-out posteriors and one z sample per x. Both terms use the same samples, so identical posteriors
    give exactly 0; the estimate lies in [0, log N] up to Monte-Carlo error. mu, logvar (N, D).
    """
    mu, logvar = mu.double(), logvar.double()
    N = mu.shape[0]
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
    z = mu + eps * (0.5 * logvar).exp()  # (N, D)
    diff = z[:, None, :] - mu[None, :, :]  # (N, N, D): sample i under posterior k
    log_q = -0.5 * (diff.pow(2) / logvar.exp()[None] + logvar[None] + math.log(2 * math.pi)).sum(-1)  # (N, N)
    log_qz = torch.logsumexp(log_q, dim=1) - math.log(N)  # (N,) log of the mixture density
    return float((log_q.diagonal() - log_qz).mean())


@torch.no_grad()
def collapse_diagnostics(model, batches, seed: int = 0) -> dict:
    """Collapse diagnostics over held-out batches (list of LongTensors (B, T) BOS..EOS, PAD-padded).

    Returns floats (nats; ``_tok`` per real target token, ``_seq`` per sequence) and ``kl_per_dim`` (D,) list:
      ce, kl             ELBO parts with a posterior sample z ~ q(z|x) (per sequence)
      nll_mu             NLL with z = μ(x); nll_shuffled: z = μ of another held-out sequence; nll_prior: z ~ N(0, I)
      usage_gap_shuffled_{tok,seq}, usage_gap_prior_{tok,seq}  NLL(other z) − NLL(μ(x)); 0 = z is ignored
      active_units, active_frac   Var_x μ_j > 0.01; mi  aggregate-posterior MI estimate; n_sequences
    Uses its own seeded generator, so calling it does not disturb the training RNG stream.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    batches = [b.to(device) for b in batches]
    encoded = [model.encode(ids) for ids in batches]
    mus = torch.cat([m.float() for m, _ in encoded])  # (N, D)
    logvars = torch.cat([lv.float() for _, lv in encoded])
    N, D = mus.shape
    shuffled = mus.roll(1, dims=0)  # x_i decoded from μ(x_{i-1}): a real code, never its own (N >= 2)
    sums = dict(ce=0.0, nll_mu=0.0, nll_shuffled=0.0, nll_prior=0.0)
    n_tok, offset = 0, 0
    for ids, (mu, logvar) in zip(batches, encoded):
        B = ids.shape[0]
        eps = torch.randn(mu.shape, generator=gen).to(device, mu.dtype)
        noise = torch.randn(mu.shape, generator=gen).to(device, mu.dtype)
        sums["ce"] += float(_nll(model, mu + eps * (0.5 * logvar).exp(), ids).sum())
        sums["nll_mu"] += float(_nll(model, mu, ids).sum())
        sums["nll_shuffled"] += float(_nll(model, shuffled[offset:offset + B].to(mu.dtype), ids).sum())
        sums["nll_prior"] += float(_nll(model, noise, ids).sum())
        n_tok += int((ids[:, 1:] != 0).sum())
        offset += B
    kl_bd = kl_per_dim(mus, logvars)  # (N, D)
    var_mu = mus.var(0, unbiased=False) if N > 1 else torch.zeros(D)
    out = {k: v / N for k, v in sums.items()}
    out["ce_per_token"] = sums["ce"] / max(1, n_tok)
    out["kl"] = float(kl_bd.sum(1).mean())
    out["kl_per_dim"] = kl_bd.mean(0).cpu().tolist()
    for other in ("shuffled", "prior"):
        gap = sums[f"nll_{other}"] - sums["nll_mu"]
        out[f"usage_gap_{other}_seq"] = gap / N
        out[f"usage_gap_{other}_tok"] = gap / max(1, n_tok)
    out["active_units"] = int((var_mu > ACTIVE_THRESHOLD).sum())
    out["active_frac"] = out["active_units"] / D
    out["mi"] = aggregate_mi(mus.cpu(), logvars.cpu(), gen) if N > 1 else 0.0
    out["n_sequences"] = N
    model.train(was_training)
    return out


# ---------------------------------------------------------------------------------------------- plots
def read_metrics(run_dir) -> tuple[list[dict], list[dict]]:
    """(train rows, validation rows) of ``<run_dir>/metrics.jsonl``."""
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("split") == "train"], [r for r in rows if r.get("split") == "val"]


def _series(rows, key):
    pts = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
    return (np.array([p[0] for p in pts]), np.array([p[1] for p in pts], dtype=float)) if pts else ([], [])


def plot_losses(run_dir, ax=None):
    """Training CE, KL and total loss (nats per sequence) over steps, with validation CE/KL as markers."""
    import matplotlib.pyplot as plt

    train, val = read_metrics(run_dir)
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    for key, label in (("losses/loss", "loss"), ("losses/ce", "CE"), ("losses/kl", "KL")):
        ax.plot(*_series(train, key), label=label)
    for key, label in (("val/ce", "val CE"), ("val/kl", "val KL")):
        ax.plot(*_series(val, key), "o--", label=label)
    ax.set(xlabel="step", ylabel="nats / sequence", yscale="log", title="loss parts")
    ax.legend(fontsize=8)
    return ax.figure


def plot_schedules(run_dir, ax=None):
    """β (left axis) and learning rate (right axis) over steps."""
    import matplotlib.pyplot as plt

    train, _ = read_metrics(run_dir)
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    ax.plot(*_series(train, "losses/beta"), color="C0")
    ax.set(xlabel="step", ylabel="β", title="β and learning rate")
    ax2 = ax.twinx()
    ax2.plot(*_series(train, "lr"), color="C1")
    ax2.set_ylabel("learning rate", color="C1")
    return ax.figure


def plot_kl_histogram(run_dir, ax=None, free_bits: float | None = None):
    """Histogram of the last validation's per-dimension KL (nats), with the free-bits threshold if given."""
    import matplotlib.pyplot as plt

    _, val = read_metrics(run_dir)
    ax = ax or plt.subplots(figsize=(5, 3))[1]
    if val:
        ax.hist(val[-1]["val/kl_per_dim"], bins=30)
        if free_bits:
            ax.axvline(free_bits, color="k", ls="--", label=f"free bits {free_bits}")
            ax.legend(fontsize=8)
    ax.set(xlabel="KL per dimension (nats)", ylabel="dimensions", title="per-dimension KL (last validation)")
    return ax.figure


def plot_active_units(run_dir, ax=None):
    """Active units (left) and the latent-usage gap in nats/token (right) at each validation."""
    import matplotlib.pyplot as plt

    _, val = read_metrics(run_dir)
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    ax.plot(*_series(val, "val/active_units"), "o-", color="C0")
    ax.set(xlabel="step", ylabel="active units", title="latent use over training")
    ax2 = ax.twinx()
    ax2.plot(*_series(val, "val/usage_gap_shuffled_tok"), "s--", color="C3", label="gap, shuffled z")
    ax2.plot(*_series(val, "val/usage_gap_prior_tok"), "^--", color="C2", label="gap, prior z")
    ax2.set_ylabel("usage gap (nats/token)")
    ax2.legend(fontsize=8)
    return ax.figure
