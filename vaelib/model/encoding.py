"""Token ids -> the posterior q(z|x): (μ, log σ²) for a list of sequences, batched and padded."""
from __future__ import annotations

import numpy as np
import torch

from vaelib.data.tokenizer import PAD


@torch.no_grad()
def encode_split(model, seqs, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Token id arrays -> (mu, logvar), each (N, latent_dim) float32 (N = 0 for no sequences)."""
    if not len(seqs):
        empty = np.zeros((0, model.config.latent_dim), np.float32)
        return empty, empty.copy()
    model.eval()
    dev = next(model.parameters()).device
    mus, lvs = [], []
    for i in range(0, len(seqs), batch_size):
        chunk = [torch.as_tensor(np.asarray(s), dtype=torch.long) for s in seqs[i:i + batch_size]]
        ids = torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True, padding_value=PAD).to(dev)  # (B, T)
        mu, logvar = model.encode(ids)
        mus.append(mu.float().cpu().numpy())
        lvs.append(logvar.float().cpu().numpy())
    return np.concatenate(mus), np.concatenate(lvs)


def fitted_prior(mu: np.ndarray, logvar: np.ndarray, n: int, seed: int = 0) -> torch.Tensor:
    """(n, D) draws from the Gaussian moment-matched to the aggregate posterior q(z) = mean_i N(μ_i, diag σ_i²) of
    encoded windows (``mu``, ``logvar`` (N, D), e.g. the training split's): mean E[μ], covariance Cov(μ) + diag E[σ²].

    N(0, I) draws every dimension of z independently; the data does not. With one z slot per beat, a bar's beats
    repeat in the next bar, so their slots correlate, and independent slots give up that repetition. The fitted
    Gaussian keeps the correlations (ex-post density estimation, as in Ghosh et al. 2020's regularised autoencoders);
    the E[σ²] term keeps its covariance full-rank when there are fewer windows than dimensions."""
    mu, var = np.asarray(mu, np.float64), np.exp(np.asarray(logvar, np.float64))
    if len(mu) < 2:
        raise ValueError(f"fitting a prior needs >= 2 encoded windows, got {len(mu)}")
    cov = np.cov(mu, rowvar=False) + np.diag(var.mean(0))
    chol = np.linalg.cholesky(cov + 1e-8 * np.eye(len(cov)))
    eps = np.random.default_rng(seed).standard_normal((n, mu.shape[1]))
    return torch.as_tensor(mu.mean(0) + eps @ chol.T, dtype=torch.float32)
