"""A cache of each CC lane's past values, biasing the decoder's CC logits towards values the lane has taken before.

Synth automation repeats its values: a step sequencer cycles through a few levels, a toggle (glide opening on slides)
jumps between two, an LFO's cycle returns to where it was. A Transformer decoder can find an earlier value by
attention, but a value that is neither the one in force nor the next on a smooth curve (the toggle's other level, a
sequence's next step) must then be looked up among hundreds of tokens. The cache gives it directly, as the neural
cache of Grave et al. 2017 does for words: at every position, the id (lane l, value v) gets

    gain_l · log(1 + n_{l,v})

added to its logit, where n_{l,v} counts the CC tokens (l, v) among the decoder's input tokens so far (that position's
included). The counts come from the past input tokens only, so the decoder stays causal, and after word dropout, so a
dropped token is not counted; the KV-cached decoder keeps the same counts as it goes (``step``).

With the gate (``ModelConfig.cc_cache_gate``) the gain is read from the decoder's output state at each position (a
softplus of a linear map, one per lane) instead of one learned constant per lane, so the decoder can lean on the
lane's past values where they decide (a toggle jumping back to its other level) and not where a smooth curve moves
on.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

N_VALUES = 128


class CCCache(nn.Module):
    """Input ids -> (..., n_cc * 128) bias on the CC ids (the vocabulary's CC order, lane-major)."""

    def __init__(self, n_cc: int, cc0: int, init_gain: float = 0.5, d_model: int = 0):
        super().__init__()
        self.n_cc, self.cc0, self.init_gain = n_cc, cc0, init_gain
        self.gain = nn.Parameter(torch.full((n_cc,), init_gain))  # per lane
        self.gate = nn.Linear(d_model, n_cc) if d_model else None  # gated: the gain from the decoder's state

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gain, self.init_gain)
        if self.gate is not None:  # at init every position's gain is init_gain, as without the gate
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, float(torch.log(torch.expm1(torch.tensor(self.init_gain)))))

    def gains(self, h: torch.Tensor | None) -> torch.Tensor:
        """(n_cc,) the learned gains, or with the gate (..., n_cc) read from the decoder's output states h (..., d)."""
        return self.gain if self.gate is None else F.softplus(self.gate(h).float())

    def counts(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> (B, T, n_cc * 128) how often each CC id occurs among ids[:, :t + 1]."""
        k = ids - self.cc0
        is_cc = (k >= 0) & (k < self.n_cc * N_VALUES)
        hits = torch.zeros(*ids.shape, self.n_cc * N_VALUES, device=ids.device)
        hits.scatter_(2, k.clamp(0, self.n_cc * N_VALUES - 1)[..., None], is_cc.float()[..., None])
        return hits.cumsum(1)

    def bias(self, counts: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """counts (..., n_cc * 128) -> the gained log-counts, the same shape (h: the decoder's states, gated only)."""
        return self.gains(h).repeat_interleave(N_VALUES, -1) * torch.log1p(counts)

    def forward(self, ids: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        return self.bias(self.counts(ids), h)

    def start(self, batch: int, device) -> torch.Tensor:
        """The incremental decoder's counts before any token: (B, n_cc * 128) zeros."""
        return torch.zeros(batch, self.n_cc * N_VALUES, device=device)

    def step(self, counts: torch.Tensor, tokens: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """Count ``tokens`` (B,) into ``counts`` (in place) and return the bias after them: (B, n_cc * 128)."""
        k = tokens - self.cc0
        is_cc = (k >= 0) & (k < self.n_cc * N_VALUES)
        counts.scatter_add_(1, k.clamp(0, self.n_cc * N_VALUES - 1)[:, None], is_cc.float()[:, None])
        return self.bias(counts, h)
