"""A learned prior over z: an autoregressive density over z's slots, fitted to encoded training windows after the VAE
has trained (the second stage of a two-stage VAE, Dai & Wipf 2019; the latent prior of VQ-VAE).

With one z slot per beat (``pool="beat"``), N(0, I) draws the 16 beats independently, so a prior sample's bars share
no groove; the data's bars repeat. ``SlotPrior`` models

    p(z) = prod_k sum_j pi_kj(z_<k) N(z_k | mu_kj(z_<k), diag sigma_kj(z_<k)^2)      (n_mix components j)

over z's slots in time order with a small causal Transformer, so a slot can follow the slots a bar before it, and
the mixture lets a slot choose between patterns rather than average them (one Gaussian per slot can't). It is
fitted by maximum likelihood on draws from the training windows' posteriors q(z|x) = N(mu, sigma^2), with early
stopping on the validation windows' posterior means, and sampled ancestrally. It changes nothing in the VAE: the
decoder that turns its z into tokens is the same.
"""
from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vaelib.atomic import atomic_write
from vaelib.config import ModelConfig
from vaelib.model.blocks import EncoderBlock
from vaelib.model.encoding import encode_split

PRIOR_FILE = "slot_prior.pt"  # a run folder's fitted slot prior (written by the evaluation)


def n_chunks(latent_dim: int, n_pool: int = 16) -> int:
    """How many slots the prior orders z into: the VAE's beat slots (``n_pool`` of them) when they divide z, else 1
    (a mixture of diagonal Gaussians over all of z is then all it models)."""
    return n_pool if latent_dim % n_pool == 0 else 1


def model_slots(model) -> int | None:
    """The slots a prior over ``model``'s z should follow: its beat slots (``VAE.n_slots``) with ``pool="beat"``, its
    bars with ``bar_share`` (z is laid out bar by bar), else None (``n_chunks``)."""
    if model.config.pool != "beat":
        return None
    return model.config.n_bars if model.config.bar_share else model.n_slots


class SlotPrior(nn.Module):
    """Causal Transformer over z's ``n_slots`` slots (z (B, D) read as (B, n_slots, D / n_slots) in order); slot k's
    mixture is read from the slots before it (slot 0's from a learned start vector)."""

    def __init__(self, latent_dim: int, n_slots: int, d_model: int = 64, n_layers: int = 2, n_heads: int = 4,
                 dropout: float = 0.1, n_mix: int = 8, temperature: float = 1.0):
        super().__init__()
        self.kwargs = dict(latent_dim=latent_dim, n_slots=n_slots, d_model=d_model, n_layers=n_layers,
                           n_heads=n_heads, dropout=dropout, n_mix=n_mix,
                           temperature=temperature)  # what ``load_slot_prior`` rebuilds
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature  # what ``sample`` draws at unless told otherwise
        self.sigma_scale = 1.0  # the share of the posteriors' spread it was fitted to (``fit_slot_prior``)
        if latent_dim % n_slots:
            raise ValueError(f"latent_dim {latent_dim} does not split into {n_slots} slots")
        self.latent_dim, self.n_slots, self.slot_dim = latent_dim, n_slots, latent_dim // n_slots
        cfg = ModelConfig(d_model=d_model, n_heads=n_heads, d_ff=2 * d_model, dropout=dropout)
        self.inp = nn.Linear(self.slot_dim, d_model)
        self.start = nn.Parameter(torch.zeros(d_model))
        self.pos = nn.Parameter(torch.randn(n_slots, d_model) * 0.02)
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.n_mix = n_mix
        self.out = nn.Linear(d_model, n_mix * (1 + 2 * self.slot_dim))
        self.register_buffer("causal", torch.ones(n_slots, n_slots, dtype=torch.bool).tril(), persistent=False)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, D) -> the mixture of every slot given the slots before it: mean and log variance (B, n, M, s), log
        mixture weights (B, n, M)."""
        x = z.view(-1, self.n_slots, self.slot_dim)
        h = torch.cat([self.start.expand(x.shape[0], 1, -1), self.inp(x[:, :-1])], 1) + self.pos
        for block in self.blocks:
            h = block(h, self.causal)
        o = self.out(self.ln(h))
        B, n, M, s = o.shape[0], self.n_slots, self.n_mix, self.slot_dim
        logw = o[..., :M].log_softmax(-1)
        mean, logvar = o[..., M:].view(B, n, M, 2 * s).chunk(2, -1)
        return mean, logvar.clamp(-10.0, 4.0), logw

    def nll(self, z: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per dimension of z (B, D), in nats."""
        mean, logvar, logw = self(z)
        x = z.view(-1, self.n_slots, 1, self.slot_dim)
        comp = -0.5 * (logvar + (x - mean) ** 2 / logvar.exp() + math.log(2 * math.pi)).sum(-1)
        return -(comp + logw).logsumexp(-1).mean() / self.slot_dim

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, temperature: float | None = None) -> torch.Tensor:
        """(n, D) ancestral draws, reproducible from ``seed``, at ``temperature`` (None: the prior's own, set when it
        was fitted). Below 1 the draws keep closer to the mixture's modes, as Sketch-RNN samples its mixture density
        (Ha & Eck 2018): each slot's mixture weights are sharpened (log weights / temperature) and its components'
        standard deviations scaled by sqrt(temperature)."""
        temperature = self.temperature if temperature is None else temperature
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.eval()
        g = torch.Generator().manual_seed(seed)
        dev = self.start.device
        z = torch.zeros(n, self.n_slots, self.slot_dim, device=dev)
        for k in range(self.n_slots):
            mean, logvar, logw = self(z.view(n, -1))
            w = logw[:, k].exp() if temperature == 1 else (logw[:, k] / temperature).softmax(-1)
            j = torch.multinomial(w.cpu(), 1, generator=g).to(dev).squeeze(1)
            rows = torch.arange(n, device=dev)
            eps = torch.randn(n, self.slot_dim, generator=g).to(dev)
            z[:, k] = mean[rows, k, j] + (0.5 * logvar[rows, k, j]).exp() * math.sqrt(temperature) * eps
        return z.view(n, -1)


def fit_slot_prior(mu: np.ndarray, logvar: np.ndarray, val_mu: np.ndarray | None = None, *, n_slots: int | None = None,
                   steps: int = 4000, batch_size: int = 64, lr: float = 1e-3, eval_every: int = 50,
                   seed: int = 0, n_mix: int = 8, temperature: float = 1.0,
                   sigma_scale: float = 1.0) -> SlotPrior:
    """Fit a ``SlotPrior`` to the aggregate posterior of encoded windows (``mu``, ``logvar`` (N, D)): each step draws
    z = mu + sigma_scale * sigma * eps for a batch of windows. Below 1, ``sigma_scale`` fits the prior to a narrower
    cloud around each window's code than the posterior's own (0: its mean alone), so the prior's components stay
    closer to the codes of real windows. With ``val_mu`` (held-out windows' posterior means) the weights with the
    lowest validation NLL, scored every ``eval_every`` steps, are the ones returned. ``temperature`` is the one its
    ``sample`` draws at by default (the fit does not depend on it)."""
    if sigma_scale < 0:
        raise ValueError(f"sigma_scale must be >= 0, got {sigma_scale}")
    mu_t = torch.as_tensor(np.asarray(mu), dtype=torch.float32)
    sd_t = sigma_scale * torch.as_tensor(np.exp(0.5 * np.asarray(logvar)), dtype=torch.float32)
    if len(mu_t) < 2:
        raise ValueError(f"fitting a prior needs >= 2 encoded windows, got {len(mu_t)}")
    D = mu_t.shape[1]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    prior = SlotPrior(D, n_slots or n_chunks(D), n_mix=n_mix, temperature=temperature)
    prior.sigma_scale = float(sigma_scale)
    opt = torch.optim.AdamW(prior.parameters(), lr=lr, weight_decay=0.01)
    val = torch.as_tensor(np.asarray(val_mu), dtype=torch.float32) if val_mu is not None and len(val_mu) else None
    best, best_state = math.inf, None
    for step in range(1, steps + 1):
        prior.train()
        idx = torch.randint(len(mu_t), (min(batch_size, len(mu_t)),), generator=g)
        z = mu_t[idx] + sd_t[idx] * torch.randn(len(idx), D, generator=g)
        loss = prior.nll(z)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        opt.step()
        if val is not None and (step % eval_every == 0 or step == steps):
            prior.eval()
            with torch.no_grad():
                v = float(prior.nll(val))
            if v < best:
                best, best_state = v, copy.deepcopy(prior.state_dict())
    if best_state is not None:
        prior.load_state_dict(best_state)
    prior.eval()
    return prior


def fit_to_model(model, train_seqs, val_seqs, *, steps: int, seed: int = 0, temperature: float = 1.0,
                 sigma_scale: float = 1.0, posteriors: tuple[np.ndarray, np.ndarray] | None = None) -> SlotPrior:
    """``fit_slot_prior`` over ``model``'s slots (``model_slots``) to the posteriors of the token sequences
    ``train_seqs`` (their spread scaled by ``sigma_scale``), early-stopped on those of ``val_seqs`` (none: no early
    stopping), sampling at ``temperature``. ``posteriors`` is ``encode_split(model, train_seqs)`` when the caller
    already has it."""
    mu, logvar = encode_split(model, train_seqs) if posteriors is None else posteriors
    val_mu = encode_split(model, val_seqs)[0]
    return fit_slot_prior(mu, logvar, val_mu, n_slots=model_slots(model), steps=steps, seed=seed,
                          temperature=temperature, sigma_scale=sigma_scale)


def checkpoint_label(checkpoint) -> dict:
    """What identifies a VAE checkpoint file: its name and modification time (a retrained run reuses names)."""
    checkpoint = Path(checkpoint)
    return {"checkpoint": checkpoint.name, "checkpoint_mtime_ns": checkpoint.stat().st_mtime_ns}


def save_slot_prior(prior: SlotPrior, run_dir, label: dict, **info) -> Path:
    """Write ``prior`` to ``run_dir/slot_prior.pt`` atomically, with the ``checkpoint_label`` of the VAE checkpoint
    whose posteriors it was fitted to (taken when that checkpoint was loaded), the share of their spread it was fitted
    to (``sigma_scale``, restored by ``load_slot_prior``) and any ``info`` (steps, ...)."""
    state = {"kwargs": prior.kwargs, "state": prior.state_dict(), **label, "sigma_scale": prior.sigma_scale, **info}
    return atomic_write(Path(run_dir) / PRIOR_FILE, lambda f: torch.save(state, f))


def load_slot_prior(run_dir, checkpoint) -> SlotPrior | None:
    """The slot prior saved in ``run_dir`` for the VAE ``checkpoint`` (its path), in eval mode; None when there is
    none, or when it was fitted to another checkpoint (or to an earlier file of the same name), or (with a warning
    that names it) when the file cannot be read as one."""
    path = Path(run_dir) / PRIOR_FILE
    if not path.is_file() or not Path(checkpoint).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if {k: state.get(k) for k in ("checkpoint", "checkpoint_mtime_ns")} != checkpoint_label(checkpoint):
            return None
        prior = SlotPrior(**state["kwargs"])
        prior.load_state_dict(state["state"])
        prior.sigma_scale = float(state.get("sigma_scale", 1.0))  # a file from before the option: the whole spread
    except Exception as e:  # truncated, not a torch file, or another layout: no prior, and say why
        warnings.warn(f"{path}: not a readable slot prior ({type(e).__name__}: {e}); ignored", RuntimeWarning,
                      stacklevel=2)
        return None
    return prior.eval()
