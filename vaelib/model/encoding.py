"""Token ids -> the posterior q(z|x): (μ, log σ²) for a list of sequences, batched and padded."""
from __future__ import annotations

import numpy as np
import torch

from vaelib.data.tokenizer import PAD


@torch.no_grad()
def encode_split(model, seqs, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Token id arrays -> (mu, logvar), each (N, latent_dim) float32."""
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
